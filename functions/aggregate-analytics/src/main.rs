#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let deps = &payorders::runtime::OnFirstUse::new(|| async {
        let s = payorders::runtime::Services::from_env().await?;
        Ok::<_, payorders::runtime::BoxError>(aggregate_analytics::Deps { store: s.store })
    });
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        aggregate_analytics::handler(deps.get().await?, ev).await
    }))
    .await
}
