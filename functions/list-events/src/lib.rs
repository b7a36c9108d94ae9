//! `GET /events` (newest first; `type`, `limit`, `cursor`, `created_gte`, `created_lte`;
//! the last 30 days) and `GET /events/{id}`: what a merchant reconciles against when a
//! webhook was missed.

use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::runtime::Services;
use payorders::store::{EventFilter, ListWindow};
use payorders::*;

/// How far back events are listed.
pub const RETENTION_SECS: i64 = 30 * 24 * 3600;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |_| route(svc, &req)).await)
}

async fn route(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    let has_id = http::path_segments(req).len() == 2;
    if has_id {
        let id = http::path_id(req, "id", "event", EventId::parse)?;
        let ev = svc
            .store
            .get_event(&id)
            .await?
            .filter(|e| e.organization_id == ctx.org_id && e.livemode == ctx.livemode())
            .ok_or_else(|| ApiError::not_found("event").with_param("id"))?;
        return Ok(http::json(200, &render::event(&ev)));
    }
    let q = http::query(
        req,
        &["type", "limit", "cursor", "created_gte", "created_lte"],
    )?;
    let mut w = list_orders::parse_window(&q, ListWindow::new(ctx.org_id.clone(), ctx.mode))?;
    let oldest = Timestamp::now().plus_seconds(-RETENTION_SECS);
    w.created_gte = Some(w.created_gte.map_or(oldest, |t| t.max(oldest)));
    let filter = EventFilter {
        event_type: q
            .get("type")
            .map(|t| {
                EventType::parse(t).ok_or_else(|| {
                    ApiError::invalid(
                        "INVALID_EVENT_TYPE",
                        "type",
                        format!("unknown event type {t}"),
                    )
                })
            })
            .transpose()?,
    };
    let page = svc.store.list_events(&w, &filter).await?;
    Ok(http::json(200, &render::list(&page, render::event)))
}
