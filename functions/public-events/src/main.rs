#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let services = &payorders::runtime::OnFirstUse::services();
    let follow = payorders::checkout::sse::Follow::from_env();
    // Served by a Lambda Function URL with RESPONSE_STREAM: the body is written as it goes.
    lambda_http::run_with_streaming_response(lambda_http::service_fn(move |req| async move {
        public_events::handler(services.get().await?, follow, req).await
    }))
    .await
}
