//! `GET /events` (newest first; `type`, `limit`, `cursor`, `created_gte`, `created_lte`;
//! the last 30 days) and `GET /events/{id}`: what a merchant reconciles against when a
//! webhook was missed.

use payorders::http::list::{Limit, PageCursor, Window};
use payorders::http::{self, ApiError, Body, Params, Request, Response, render};
use payorders::runtime::Services;
use payorders::store::EventFilter;
use payorders::*;
use serde::Deserialize;

/// How far back events are listed.
pub const RETENTION_SECS: i64 = 30 * 24 * 3600;

/// The query string of `GET /events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListEventsQuery {
    #[serde(rename = "type")]
    event_type: Option<EventType>,
    limit: Option<Limit>,
    cursor: Option<PageCursor>,
    created_gte: Option<Timestamp>,
    created_lte: Option<Timestamp>,
}

impl Params for ListEventsQuery {
    fn code(field: &str) -> &'static str {
        match field {
            "type" => "INVALID_EVENT_TYPE",
            f => http::list::code(f).unwrap_or("INVALID_PARAMETER"),
        }
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_read(&*svc.store, &req, |_| route(svc, &req)).await)
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
    let q: ListEventsQuery = http::request::query(req)?;
    let mut w = Window {
        limit: q.limit,
        cursor: q.cursor,
        created_gte: q.created_gte,
        created_lte: q.created_lte,
    }
    .for_caller(&ctx)?;
    let oldest = Timestamp::now().plus_seconds(-RETENTION_SECS);
    w.created_gte = Some(w.created_gte.map_or(oldest, |t| t.max(oldest)));
    let filter = EventFilter {
        event_type: q.event_type,
    };
    let page = svc.store.list_events(&w, &filter).await?;
    Ok(http::json(200, &render::list(&page, render::event)))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
