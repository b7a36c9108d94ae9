//! Recording the audit entry of a mutating request, after its answer is made: who (the key),
//! what (the route and the object), the request id of the answer, where from (address and
//! user agent) and how it went (status, error code).

use super::{Body, Request, RequestExt, Response};
use crate::auth::AuthContext;
use crate::model::{AuditActor, AuditEntry, AuditId, AuditOutcome, Timestamp};
use crate::store::AuditStore;
use lambda_http::request::RequestContext;

/// Whether a request changes something: every method but GET/HEAD/OPTIONS, and the older
/// clients' `GET …/process`, which records a payment.
pub fn is_mutating(req: &Request) -> bool {
    match req.method().as_str() {
        "GET" | "HEAD" => super::route_path(req).ends_with("/process"),
        "OPTIONS" => false,
        _ => true,
    }
}

/// The route as API Gateway names it (`POST /pay-orders/{id}/cancel`), else method and path.
fn action(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.route_key.clone(),
        _ => None,
    }
    .filter(|k| !k.is_empty() && k != "$default")
    .unwrap_or_else(|| format!("{} {}", req.method(), super::route_path(req)))
}

/// The entry of a request and its answer.
pub fn entry(
    ctx: &AuthContext,
    req: &Request,
    request_id: &str,
    resp: &Response<Body>,
) -> AuditEntry {
    let status = resp.status().as_u16();
    let body: Option<serde_json::Value> = match resp.body() {
        Body::Text(t) => serde_json::from_str(t).ok(),
        Body::Binary(b) => serde_json::from_slice(b).ok(),
        _ => None,
    };
    let code = (status >= 400)
        .then(|| body.as_ref()?["error"]["code"].as_str().map(str::to_owned))
        .flatten();
    // The object named in the path, else the one a creation answered with.
    let object_id = req
        .path_parameters_ref()
        .and_then(|p| p.first("id").map(str::to_owned))
        .or_else(|| {
            (200..300)
                .contains(&status)
                .then(|| body.as_ref()?["id"].as_str().map(str::to_owned))
                .flatten()
        });
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    AuditEntry {
        id: AuditId::generate(),
        organization_id: ctx.org_id.clone(),
        livemode: ctx.livemode(),
        created_at: Timestamp::now(),
        actor: AuditActor::ApiKey {
            key_id: ctx.key_id.clone(),
        },
        action: action(req),
        object_id,
        request_id: Some(request_id.to_owned()),
        ip: Some(super::public::source_ip(req)),
        user_agent,
        outcome: AuditOutcome { status, code },
    }
}

/// Writes the entry of a mutating request. A failure to write is logged, not answered: the
/// change it records has already happened.
pub async fn record(
    store: &dyn AuditStore,
    ctx: &AuthContext,
    req: &Request,
    request_id: &str,
    resp: &Response<Body>,
) {
    let e = entry(ctx, req, request_id, resp);
    if let Err(error) = store.put_audit_entry(&e).await {
        tracing::error!(%error, action = %e.action, request_id, "audit entry not written");
    }
}
