#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let services = &payorders::runtime::OnFirstUse::services();
    payorders::runtime::serve_http(move |req| async move {
        public_payment_details::handler(services.get().await?, req).await
    })
    .await
}
