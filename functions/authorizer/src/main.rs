#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let deps = authorizer::Deps::from_services(payorders::runtime::Services::from_env().await?)?;
    lambda_http::lambda_runtime::run(lambda_http::service_fn(|ev| authorizer::handler(&deps, ev)))
        .await
}
