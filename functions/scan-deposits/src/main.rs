#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let settler = &payorders::runtime::OnFirstUse::settler();
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        scan_deposits::handler(settler.get().await?, ev).await
    }))
    .await
}
