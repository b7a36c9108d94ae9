#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let deps = &payorders::runtime::OnFirstUse::new(|| async {
        let services = payorders::runtime::Services::from_env().await?;
        let settler = services.settler()?;
        Ok::<_, payorders::runtime::BoxError>((services, settler))
    });
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        let (services, settler) = deps.get().await?;
        simulate_payment::handler(services, settler, req).await
    }))
    .await
}
