//! `GET /pay-orders/{id}`: one order of the caller's organization and mode; anything else
//! (another organization's, the other mode's, a malformed id) is a 404. With
//! `include=audit_log` (and the `settings:manage` scope, as `GET /audit-log` needs), the
//! order carries its own audit trail too (`audit_log`: the newest 100 entries about it, as
//! `GET /audit-log?object_id=` lists them).

use payorders::http::{self, ApiError, Body, Params, Request, Response, render};
use payorders::runtime::Services;
use payorders::store::{AuditFilter, ListWindow};
use payorders::{AuditEntry, OrderId, Scope};
use serde::Deserialize;

/// The query string of `GET /pay-orders/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct GetOrderQuery {
    /// `audit_log`: add the order's audit trail (needs the `settings:manage` scope).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    include: Option<Include>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Include {
    AuditLog,
}

impl Params for GetOrderQuery {
    fn code(_field: &str) -> &'static str {
        "INVALID_PARAMETER"
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_read(&*svc.store, &req, |_| get(svc, &req)).await)
}

async fn get(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    let q: GetOrderQuery = http::request::query(req)?;
    let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
    let mut view = render::order_view(&order, &http::links(req));
    if let Some(Include::AuditLog) = q.include {
        // The trail names the merchant's keys, addresses and clients: as `GET /audit-log`,
        // for those who manage the organization's settings, not every reader of orders.
        if !ctx.allows(Scope::SettingsManage) {
            return Err(ApiError::forbidden(
                "INSUFFICIENT_SCOPE",
                "include=audit_log needs the settings:manage scope, as GET /audit-log does",
            ));
        }
        let w = ListWindow {
            limit: 100,
            ..ListWindow::new(ctx.org_id.clone(), ctx.mode)
        };
        let filter = AuditFilter {
            object_id: Some(id.to_string()),
            key_id: None,
        };
        let page = svc.store.list_audit_entries(&w, &filter).await?;
        let entries: Vec<_> = page
            .data
            .iter()
            .map(|e: &AuditEntry| e.api_view(None))
            .collect();
        view.push("audit_log", serde_json::json!(entries));
    }
    Ok(http::json(200, &view))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
