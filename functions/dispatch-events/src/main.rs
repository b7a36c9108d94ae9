#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    payorders::runtime::init_tracing();
    let s = payorders::runtime::Services::from_env().await?;
    let deps = dispatch_events::Deps {
        queue: s.webhooks()?.clone(),
        store: s.store,
    };
    lambda_http::lambda_runtime::run(lambda_http::service_fn(|ev| {
        dispatch_events::handler(&deps, ev)
    }))
    .await
}
