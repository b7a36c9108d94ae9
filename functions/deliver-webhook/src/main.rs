#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let (deps, queue) = deliver_webhook::Deps::from_env().await?;
    lambda_http::lambda_runtime::run(lambda_http::service_fn(|ev| {
        deliver_webhook::handler(&deps, &queue, ev)
    }))
    .await
}
