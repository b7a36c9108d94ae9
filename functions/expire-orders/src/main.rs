#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let settler = payorders::runtime::Services::from_env().await?.settler()?;
    lambda_http::lambda_runtime::run(lambda_http::service_fn(|ev| {
        expire_orders::handler(&settler, ev)
    }))
    .await
}
