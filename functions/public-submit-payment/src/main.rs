#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let deps = &payorders::runtime::OnFirstUse::services_and_settler();
    payorders::runtime::serve_http(move |req| async move {
        let (services, settler) = deps.get().await?;
        public_submit_payment::handler(services, settler, req).await
    })
    .await
}
