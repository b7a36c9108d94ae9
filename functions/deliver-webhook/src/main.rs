#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let deps = &payorders::runtime::OnFirstUse::new(deliver_webhook::Deps::from_env);
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        let (deps, queue) = deps.get().await?;
        deliver_webhook::handler(deps, queue, ev).await
    }))
    .await
}
