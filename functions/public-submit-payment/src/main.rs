#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let services = payorders::runtime::Services::from_env().await?;
    let settler = services.settler()?;
    lambda_http::run(lambda_http::service_fn(|req| {
        public_submit_payment::handler(&services, &settler, req)
    }))
    .await
}
