#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let deps = &payorders::runtime::OnFirstUse::services_and_settler();
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        let (services, settler) = deps.get().await?;
        refunds::handler(services, settler, req).await
    }))
    .await
}
