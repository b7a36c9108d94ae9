//! `GET /public/pay-orders/{id}/events`: the order's changes as Server-Sent Events (see
//! [`payorders::checkout::sse`]). API Gateway HTTP APIs do not stream, so in AWS this
//! function sits behind a Lambda Function URL with response streaming; the local host
//! serves the same handler at the same path and streams its body as it is written.
//!
//! A Function URL event has no path parameters: the id is read from the path. Per-IP
//! limit: views (each stream counts once; a browser reconnects every stream lifetime).

use bytes::Bytes;
use lambda_http::lambda_runtime::streaming::{Body as StreamBody, channel};
use payorders::PayOrder;
use payorders::checkout::sse::{self, Follow};
use payorders::checkout::view;
use payorders::http::public::{self, Limit};
use payorders::http::{self, ApiError, Body, Request, RequestExt, Response};
use payorders::runtime::Services;

/// The order id: the route's path parameter, or (under a Function URL) the path segment
/// before `events`.
fn order_id(req: &Request) -> String {
    if let Some(id) = req.path_parameters().first("id") {
        return id.to_owned();
    }
    let segments = http::path_segments(req);
    match segments.as_slice() {
        [.., "pay-orders", id, "events"] => (*id).to_owned(),
        _ => String::new(),
    }
}

pub async fn handler(
    svc: &Services,
    follow: Follow,
    req: Request,
) -> Result<Response<StreamBody>, lambda_http::Error> {
    let mut opened: Option<PayOrder> = None;
    let answer = public::guarded(&*svc.store, Limit::Views, &req, |_| async {
        http::no_body(&req)?;
        let order = view::load_public_order(svc, &order_id(&req)).await?;
        opened = Some(order);
        Ok::<_, ApiError>(Response::new(Body::Empty))
    })
    .await;
    let (mut parts, body) = answer.into_parts();
    let Some(order) = opened.filter(|_| parts.status.is_success()) else {
        // An error in our shape, whole.
        let bytes = match body {
            Body::Text(t) => t.into_bytes(),
            Body::Binary(b) => b,
            _ => Vec::new(),
        };
        return Ok(Response::from_parts(parts, StreamBody::from(bytes)));
    };
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let links = http::links(&req);
    let h = &mut parts.headers;
    h.insert("content-type", "text/event-stream".parse()?);
    h.insert("cache-control", "no-cache".parse()?);
    // Proxies that buffer would hold every event back.
    h.insert("x-accel-buffering", "no".parse()?);
    let (tx, body) = channel();
    let svc = svc.clone();
    tokio::spawn(async move {
        let mut out = Stream(tx);
        sse::follow(&svc, order, last_event_id, &links, follow, &mut out).await;
    });
    Ok(Response::from_parts(parts, body))
}

/// The response stream's sending half.
struct Stream(lambda_http::lambda_runtime::streaming::Sender);

#[async_trait::async_trait]
impl sse::Sink for Stream {
    async fn push_chunk(&mut self, chunk: String) -> bool {
        self.0.send_data(Bytes::from(chunk)).await.is_ok()
    }
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    let services = &payorders::runtime::OnFirstUse::services();
    let follow = payorders::checkout::sse::Follow::from_env();
    // Served by a Lambda Function URL with RESPONSE_STREAM: the body is written as it goes.
    lambda_http::run_with_streaming_response(lambda_http::service_fn(move |req| async move {
        handler(services.get().await?, follow, req).await
    }))
    .await
}
