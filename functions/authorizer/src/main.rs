#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let deps = &payorders::runtime::OnFirstUse::new(|| async {
        let services = payorders::runtime::Services::from_env().await?;
        Ok::<_, payorders::runtime::BoxError>(authorizer::Deps::from_services(services)?)
    });
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        authorizer::handler(deps.get().await?, ev).await
    }))
    .await
}
