//! What a function's `main` needs: tracing at init, and the services (store, queues, master
//! key) chosen from config, built once on the first invocation ([`OnFirstUse`]).

use crate::auth::MasterKey;
use crate::pricing::PriceSource;
use crate::queue::Queue;
use crate::routing::Router;
use crate::store::Store;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The adapters a handler uses. Functions depend on the traits, never on an adapter.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    /// Present where secrets must be sealed or opened (authorizer, key and webhook admin).
    pub master: Option<MasterKey>,
    /// Where webhook deliveries are queued, when this function sends any.
    pub webhooks: Option<Arc<dyn Queue>>,
    /// Where confirmation checks are queued, when this function records payments.
    pub confirmations: Option<Arc<dyn Queue>>,
    /// Delays between confirmation checks.
    pub check_delays: CheckDelays,
    /// USD prices (CoinGecko in AWS; a fixed table under the local host and in tests).
    pub prices: Option<Arc<dyn PriceSource>>,
    /// Exchange routing (ChangeNOW when its key is configured).
    pub router: Option<Arc<dyn Router>>,
    /// The chains with a configured RPC endpoint.
    #[cfg(feature = "chains")]
    pub chains: Arc<crate::chains::Chains>,
}

/// First and longest delay between two confirmation checks of an order (the delay doubles
/// from the first); the local host shortens them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckDelays {
    pub first_secs: u32,
    pub max_secs: u32,
}

impl Default for CheckDelays {
    fn default() -> Self {
        Self {
            first_secs: 5,
            max_secs: 900,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("master key: {0}")]
    MasterKey(#[from] crate::auth::SealError),
    #[error("this function needs the master key, and none is configured")]
    NoMasterKey,
    #[error("this function needs a queue, and {0} is not set")]
    NoQueue(&'static str),
    #[error("a queue URL is configured, and this function is built without SQS (feature `sqs`)")]
    NoSqs,
}

#[cfg(feature = "aws")]
impl Services {
    /// Services for a Lambda function ([`crate::config::lambda_sdk_config`]): DynamoDB store,
    /// master key if configured, and what the binary's features include.
    pub async fn from_env() -> Result<Self, InitError> {
        Self::from_sdk(&crate::config::lambda_sdk_config()).await
    }

    /// As [`Services::from_env`], for a `main` that uses the AWS config itself too.
    ///
    /// What a function links is what it builds here, so the optional parts follow the
    /// binary's features: the SQS queues (`sqs`, where `PAYORDERS_*_QUEUE_URL` is set), the
    /// price and exchange clients (`pricing`), the chain readers (`chains`). A function's
    /// Cargo features name what it uses; a test (iam.rs) checks them against its code.
    pub async fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, InitError> {
        use crate::config::Config;
        use crate::store::dynamo::DynamoStore;
        let config = Config::load(sdk).await?;
        let master = config
            .secrets
            .master_key
            .as_ref()
            .map(|k| MasterKey::from_text(k.expose()))
            .transpose()?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name);
        #[cfg(feature = "sqs")]
        let (webhooks, confirmations) = {
            use crate::queue::SqsQueue;
            let sqs = aws_sdk_sqs::Client::new(sdk);
            let queue = |url: &String| Arc::new(SqsQueue::new(sqs.clone(), url)) as Arc<dyn Queue>;
            (
                config.webhooks_queue_url.as_ref().map(queue),
                config.confirmations_queue_url.as_ref().map(queue),
            )
        };
        #[cfg(not(feature = "sqs"))]
        let (webhooks, confirmations) =
            match (&config.webhooks_queue_url, &config.confirmations_queue_url) {
                (None, None) => (None, None),
                _ => return Err(InitError::NoSqs),
            };
        #[cfg(feature = "pricing")]
        let (prices, router) = pricing_clients(&config);
        #[cfg(not(feature = "pricing"))]
        let (prices, router) = (None, None);
        Ok(Self {
            store: Arc::new(store),
            master,
            webhooks,
            confirmations,
            check_delays: CheckDelays::default(),
            prices,
            router,
            #[cfg(feature = "chains")]
            chains: Arc::new(
                crate::chains::Chains::from_rpc_urls(config.rpc_urls()).map_err(|e| {
                    InitError::Config(crate::config::ConfigError::Invalid {
                        var: "rpc_urls".into(),
                        reason: e.to_string(),
                    })
                })?,
            ),
        })
    }
}

/// CoinGecko (on the pro endpoint when a key is configured; answers cached 30 s) and
/// ChangeNOW (when its key is configured).
#[cfg(all(feature = "aws", feature = "pricing"))]
#[allow(clippy::type_complexity)]
fn pricing_clients(
    config: &crate::config::Config,
) -> (Option<Arc<dyn PriceSource>>, Option<Arc<dyn Router>>) {
    use crate::pricing::coingecko::{self, CoinGecko};
    use crate::routing::changenow::{self, ChangeNow};
    use std::time::Duration;
    let key = config
        .secrets
        .coingecko_api_key
        .as_ref()
        .map(|k| k.expose().to_owned());
    let (base, pro) = match key {
        Some(_) => (coingecko::PRO_BASE_URL, true),
        None => (coingecko::DEMO_BASE_URL, false),
    };
    let prices = Arc::new(CoinGecko::new(
        base,
        key,
        pro,
        Duration::from_secs(5),
        Duration::from_secs(30),
    )) as Arc<dyn PriceSource>;
    let router = config.secrets.changenow_api_key.as_ref().map(|k| {
        Arc::new(ChangeNow::new(
            changenow::BASE_URL,
            k.expose(),
            Duration::from_secs(10),
        )) as Arc<dyn Router>
    });
    (Some(prices), router)
}

impl Services {
    pub fn master(&self) -> Result<&MasterKey, InitError> {
        self.master.as_ref().ok_or(InitError::NoMasterKey)
    }

    /// The payment pipeline (recording payments, confirmation checks).
    #[cfg(feature = "chains")]
    pub fn settler(&self) -> Result<crate::payments::Settler, InitError> {
        Ok(crate::payments::Settler {
            store: self.store.clone(),
            chains: self.chains.clone(),
            confirmations: self
                .confirmations
                .clone()
                .ok_or(InitError::NoQueue("PAYORDERS_CONFIRMATIONS_QUEUE_URL"))?,
            check_delay_secs: self.check_delays.first_secs,
            max_check_delay_secs: self.check_delays.max_secs,
        })
    }

    pub fn webhooks(&self) -> Result<&Arc<dyn Queue>, InitError> {
        self.webhooks
            .as_ref()
            .ok_or(InitError::NoQueue("PAYORDERS_WEBHOOKS_QUEUE_URL"))
    }
}

/// The error a Lambda handler may return (the same as `lambda_runtime::Error`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Make<T> =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>> + Send + Sync>;

/// What a function builds on its first invocation rather than at init, so that a cold start
/// does no more than a hello-world function: the SDK configuration, the secret's read and the
/// clients wait for the first event, which needs them anyway. A failure there fails that one
/// invocation (Lambda reports it) and is tried again on the next, instead of ending the
/// sandbox. Later invocations get the built value at once.
pub struct OnFirstUse<T> {
    cell: tokio::sync::OnceCell<T>,
    make: Make<T>,
}

impl<T: Send + Sync> OnFirstUse<T> {
    pub fn new<F, Fut, E>(make: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self {
            cell: tokio::sync::OnceCell::new(),
            make: Box::new(move || {
                let fut = make();
                Box::pin(async move { fut.await.map_err(Into::into) })
            }),
        }
    }

    /// The value, built by the first caller (concurrent callers wait for that one build).
    pub async fn get(&self) -> Result<&T, BoxError> {
        self.cell.get_or_try_init(|| (self.make)()).await
    }
}

#[cfg(feature = "aws")]
impl OnFirstUse<Services> {
    /// [`Services::from_env`], built on the first invocation.
    pub fn services() -> Self {
        Self::new(Services::from_env)
    }
}

#[cfg(all(feature = "sqs", feature = "chains"))]
impl OnFirstUse<crate::payments::Settler> {
    /// The payment pipeline alone (the deposit scan, the upkeep), built on the first event.
    pub fn settler() -> Self {
        Self::new(|| async { Ok::<_, BoxError>(Services::from_env().await?.settler()?) })
    }
}

#[cfg(all(feature = "sqs", feature = "chains"))]
impl OnFirstUse<(Services, crate::payments::Settler)> {
    /// The services and the payment pipeline (the routes that record payments), built on the
    /// first event.
    pub fn services_and_settler() -> Self {
        Self::new(|| async {
            let services = Services::from_env().await?;
            let settler = services.settler()?;
            Ok::<_, BoxError>((services, settler))
        })
    }
}

/// The invocation's deadline as a tokio instant; `None` for a context that has none (a
/// test, the local host), which sets no limit.
pub fn invocation_deadline(ctx: &lambda_http::Context) -> Option<tokio::time::Instant> {
    (ctx.deadline != 0).then(|| {
        let left = ctx
            .deadline()
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tokio::time::Instant::now() + left
    })
}

/// JSON logs in Lambda (CloudWatch parses them), level from `RUST_LOG` (default info).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `target=level` directives (`info`, `payorders=debug,warn`), without EnvFilter's span and
    // field matching: that would link a regex engine into every function for nothing.
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time() // CloudWatch stamps every line
                .with_target(false),
        )
        .with(filter)
        .init();
}

/// Which of a bundle's functions this sandbox runs: the one its `Handler` setting names
/// (Lambda passes it as `_HANDLER`). A bundle is one binary that several functions of
/// template.yaml deploy (`bundles/`), since each fat-LTO link of the whole stack costs about
/// a minute of CPU: 12 links for the 31 functions instead of 31. Anything else is an error
/// that names what the binary serves; the sandbox then fails its init, before any event.
pub fn bundled_function<'a>(handler: Option<&str>, served: &[&'a str]) -> Result<&'a str, String> {
    match handler {
        Some(h) => served.iter().copied().find(|s| *s == h).ok_or_else(|| {
            format!(
                "this binary serves {}, not the Handler {h:?}",
                served.join(", ")
            )
        }),
        None => Err(format!(
            "this binary serves {}: set the function's Handler (_HANDLER) to one of them",
            served.join(", ")
        )),
    }
}

/// The `main` of a bundle (`bundles/<name>/src/main.rs`): each `"function" => crate` pair is a
/// function of template.yaml and its crate under `functions/`, whose `serve_lambda` runs when
/// the function's `Handler` names it ([`bundled_function`]).
#[macro_export]
macro_rules! bundle_main {
    ($($function:literal => $krate:ident),+ $(,)?) => {
        #[tokio::main]
        async fn main() -> Result<(), lambda_http::Error> {
            $crate::runtime::init_tracing();
            let handler = std::env::var("_HANDLER").ok();
            match $crate::runtime::bundled_function(handler.as_deref(), &[$($function),+])? {
                $($function => $krate::serve_lambda().await,)+
                _ => unreachable!("bundled_function answers one of the names it was given"),
            }
        }
    };
}

/// The Lambda loop of a scheduled function whose handler takes the payment pipeline, built
/// on the first event ([`OnFirstUse::settler`]): the deposit scan and the order upkeep.
#[cfg(all(feature = "aws", feature = "sqs", feature = "chains"))]
pub async fn serve_schedule_with_settler<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(
        &'static crate::payments::Settler,
        lambda_http::lambda_runtime::LambdaEvent<serde_json::Value>,
    ) -> Fut,
    Fut: Future<Output = Result<serde_json::Value, lambda_http::Error>>,
{
    let settler: &'static OnFirstUse<crate::payments::Settler> =
        Box::leak(Box::new(OnFirstUse::settler()));
    let handler = &handler;
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        handler(settler.get().await?, ev).await
    }))
    .await
}

/// Serves an HTTP API route (payload 2.0) in Lambda: what `lambda_http::run` does, without
/// its response conversion. That conversion reads each answer's body back as text in the
/// charset its `Content-Type` names (encoding_rs, with every legacy encoding's tables:
/// about 150 KB in each function); our handlers already answer text as text and bytes as
/// bytes, so the answer goes to API Gateway as it is.
#[cfg(feature = "aws")]
pub async fn serve_http<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(lambda_http::Request) -> Fut,
    Fut: Future<Output = Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error>>,
{
    let handler = &handler;
    lambda_http::lambda_runtime::run(lambda_http::lambda_runtime::service_fn(move |event| {
        invoke(handler, event)
    }))
    .await
}

/// The Lambda loop of an HTTP route whose handler takes the [`Services`], built on the first
/// event ([`OnFirstUse::services`]): most functions' `serve_lambda`. The services live as
/// long as the sandbox, as the loop does; being `'static`, a handler can borrow them.
#[cfg(feature = "aws")]
pub async fn serve_http_with_services<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static Services, lambda_http::Request) -> Fut,
    Fut: Future<Output = Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error>>,
{
    let services: &'static OnFirstUse<Services> = Box::leak(Box::new(OnFirstUse::services()));
    let handler = &handler;
    serve_http(move |req| async move { handler(services.get().await?, req).await }).await
}

/// [`serve_http_with_services`] for the routes that record payments: the handler takes the
/// payment pipeline too ([`OnFirstUse::services_and_settler`]).
#[cfg(all(feature = "sqs", feature = "chains"))]
pub async fn serve_http_with_settler<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static Services, &'static crate::payments::Settler, lambda_http::Request) -> Fut,
    Fut: Future<Output = Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error>>,
{
    let deps: &'static OnFirstUse<(Services, crate::payments::Settler)> =
        Box::leak(Box::new(OnFirstUse::services_and_settler()));
    let handler = &handler;
    serve_http(move |req| async move {
        let (services, settler) = deps.get().await?;
        handler(services, settler, req).await
    })
    .await
}

/// One invocation of an HTTP route: the event as lambda_http reads it (with the invocation's
/// context and X-Ray trace header), and the handler's answer as API Gateway takes it.
#[cfg(feature = "aws")]
async fn invoke<F, Fut>(
    handler: &F,
    event: lambda_http::lambda_runtime::LambdaEvent<lambda_http::request::LambdaRequest>,
) -> Result<aws_lambda_events::apigw::ApiGatewayV2httpResponse, lambda_http::Error>
where
    F: Fn(lambda_http::Request) -> Fut,
    Fut: Future<Output = Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error>>,
{
    use lambda_http::RequestExt;
    let lambda_http::lambda_runtime::LambdaEvent { payload, context } = event;
    let mut req = lambda_http::Request::from(payload);
    if let Some(trace) = context
        .xray_trace_id
        .as_deref()
        .and_then(|t| t.parse().ok())
    {
        req.headers_mut().insert("x-amzn-trace-id", trace);
    }
    Ok(gateway_response(
        handler(req.with_lambda_context(context)).await?,
    ))
}

/// An answer as API Gateway's HTTP API takes it from a function (payload 2.0): bytes in
/// base64, `Set-Cookie` headers as `cookies`, the other headers as they are.
#[cfg(feature = "aws")]
fn gateway_response(
    resp: lambda_http::Response<lambda_http::Body>,
) -> aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    use lambda_http::Body;
    use lambda_http::http::header::SET_COOKIE;
    let (mut parts, body) = resp.into_parts();
    let mut out = aws_lambda_events::apigw::ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.cookies = parts
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    parts.headers.remove(SET_COOKIE);
    out.headers = parts.headers;
    (out.is_base64_encoded, out.body) = match body {
        Body::Text(t) => (false, Some(Body::Text(t))),
        Body::Binary(b) => (true, Some(Body::Binary(b))),
        _ => (false, None),
    };
    out
}

#[cfg(test)]
mod bundle_tests {
    use super::bundled_function;

    #[test]
    fn a_bundle_runs_the_function_its_handler_names_and_refuses_any_other() {
        let served = ["get-order", "list-orders"];
        assert_eq!(
            bundled_function(Some("list-orders"), &served),
            Ok("list-orders")
        );
        assert_eq!(
            bundled_function(Some("get-order"), &served),
            Ok("get-order")
        );
        // The runtimes' default Handler, a function of another bundle, a prefix, nothing.
        for wrong in [
            Some("bootstrap"),
            Some("create-order"),
            Some("get"),
            Some(""),
            None,
        ] {
            let err = bundled_function(wrong, &served).unwrap_err();
            assert!(err.contains("get-order, list-orders"), "{wrong:?}: {err}");
        }
    }
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use super::*;
    use lambda_http::lambda_runtime::{Context, LambdaEvent};
    use lambda_http::request::LambdaRequest;
    use lambda_http::{Body, RequestExt, Response};

    fn event() -> LambdaEvent<LambdaRequest> {
        let payload = serde_json::from_value(serde_json::json!({
            "version": "2.0",
            "routeKey": "GET /pay-orders/{id}",
            "rawPath": "/pay-orders/po_1",
            "rawQueryString": "expand=payment&a=1",
            "headers": {"x-api-key": "sk_test_1", "content-type": "application/json"},
            "queryStringParameters": {"expand": "payment", "a": "1"},
            "pathParameters": {"id": "po_1"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example",
                "http": {"method": "GET", "path": "/pay-orders/po_1", "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.9", "userAgent": "t"},
                "requestId": "r1", "routeKey": "GET /pay-orders/{id}", "stage": "$default",
                "time": "03/Dec/2026:09:00:00 +0000", "timeEpoch": 1796288400000i64,
                "authorizer": {"lambda": {"organization_id": "org_1"}}
            },
            "isBase64Encoded": false
        }))
        .unwrap();
        let mut context = Context::default();
        context.request_id = "inv-1".into();
        context.xray_trace_id = Some("Root=1-5e1b4151-5ac6c58f5b5dbd6a5f5e5e5e".into());
        LambdaEvent::new(payload, context)
    }

    #[tokio::test]
    async fn a_route_sees_the_request_as_lambda_http_reads_it() {
        let seen = std::sync::Mutex::new(None);
        let handler = |req: lambda_http::Request| {
            let summary = (
                req.method().to_string(),
                req.uri().path().to_owned(),
                req.query_string_parameters()
                    .first("expand")
                    .map(str::to_owned),
                req.path_parameters().first("id").map(str::to_owned),
                req.headers()["x-api-key"].to_str().unwrap().to_owned(),
                req.headers()["x-amzn-trace-id"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
                req.lambda_context_ref().map(|c| c.request_id.clone()),
            );
            *seen.lock().unwrap() = Some(summary);
            async { Ok(Response::new(Body::Text("{}".into()))) }
        };
        invoke(&handler, event()).await.unwrap();
        let (method, path, expand, id, key, trace, invocation) =
            seen.lock().unwrap().take().unwrap();
        assert_eq!(method, "GET");
        assert_eq!(path, "/pay-orders/po_1");
        assert_eq!(expand.as_deref(), Some("payment"));
        assert_eq!(id.as_deref(), Some("po_1"));
        assert_eq!(key, "sk_test_1");
        assert_eq!(trace, "Root=1-5e1b4151-5ac6c58f5b5dbd6a5f5e5e5e");
        assert_eq!(invocation.as_deref(), Some("inv-1"));
    }

    #[tokio::test]
    async fn answers_go_to_api_gateway_as_they_are() {
        // Text stays text, whatever its content type (lambda_http would decode it again).
        let text = |_req| async {
            Ok(Response::builder()
                .status(201)
                .header("content-type", "application/json; charset=utf-8")
                .header("set-cookie", "a=1; Secure")
                .header("set-cookie", "b=2")
                .header("x-request-id", "req_1")
                .body(Body::Text(r#"{"id":"po_1","name":"café"}"#.into()))
                .unwrap())
        };
        let out = invoke(&text, event()).await.unwrap();
        assert_eq!(out.status_code, 201);
        assert!(!out.is_base64_encoded);
        assert_eq!(
            out.body,
            Some(Body::Text(r#"{"id":"po_1","name":"café"}"#.into()))
        );
        assert_eq!(out.cookies, ["a=1; Secure", "b=2"]);
        assert!(out.headers.get("set-cookie").is_none());
        assert_eq!(out.headers["x-request-id"], "req_1");
        let wire = serde_json::to_value(&out).unwrap();
        assert_eq!(wire["statusCode"], 201);
        assert_eq!(
            wire["headers"]["content-type"],
            "application/json; charset=utf-8"
        );
        // Bytes go in base64, flagged so.
        let png = |_req| async {
            Ok(Response::builder()
                .header("content-type", "image/png")
                .body(Body::Binary(vec![0x89, b'P', b'N', b'G', 0xff]))
                .unwrap())
        };
        let out = invoke(&png, event()).await.unwrap();
        assert!(out.is_base64_encoded);
        let wire = serde_json::to_value(&out).unwrap();
        assert_eq!(wire["body"], "iVBOR/8=");
        assert_eq!(wire["isBase64Encoded"], true);
        // No body at all: none sent.
        let empty = |_req| async { Ok(Response::builder().status(204).body(Body::Empty).unwrap()) };
        let out = invoke(&empty, event()).await.unwrap();
        assert_eq!(
            (out.status_code, out.body, out.is_base64_encoded),
            (204, None, false)
        );
        // A handler's error is the invocation's error (Lambda reports it; API Gateway 500s).
        let failing = |_req| async { Err::<Response<Body>, _>("store down".into()) };
        assert!(invoke(&failing, event()).await.is_err());
    }
}
