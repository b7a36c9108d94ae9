#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let services = payorders::runtime::Services::from_env().await?;
    let deps = confirm_payment::Deps {
        settler: services.settler()?,
        router: services.router.clone(),
    };
    lambda_http::lambda_runtime::run(lambda_http::service_fn(|ev| {
        confirm_payment::handler(&deps, ev)
    }))
    .await
}
