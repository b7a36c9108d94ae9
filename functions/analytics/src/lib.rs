//! `GET /analytics?period=7d|30d|90d|custom&from=&to=&group_by=day|week&timezone=`: the
//! caller's orders created, paid, expired and cancelled, their USD amounts, conversion,
//! average amount and time to pay, paid orders per currency and chain, and a series per day
//! or week in an IANA time zone. Read from the hourly counters `aggregate-analytics` keeps
//! (one record per active hour), never from the orders.

use payorders::analytics::report::{self, ReportParams, ReportRequest};
use payorders::http::{self, ApiError, Body, Params, Request, Response};
use payorders::runtime::Services;
use payorders::*;
use serde::Deserialize;

/// The query string of `GET /analytics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct AnalyticsQuery {
    /// `7d`, `30d` (the default), `90d`: that many local days up to today; or `custom`.
    period: Option<String>,
    /// With `period=custom`: the first local day, `YYYY-MM-DD`.
    from: Option<String>,
    /// With `period=custom`: the last local day, inclusive (at most 366 days after `from`).
    to: Option<String>,
    /// `day` (the default) or `week` (ISO weeks, from Monday).
    group_by: Option<String>,
    /// An IANA time zone name (`Europe/Berlin`); `UTC` by default.
    timezone: Option<String>,
}

impl Params for AnalyticsQuery {
    fn code(_field: &str) -> &'static str {
        "INVALID_PARAMETER"
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_read(&*svc.store, &req, |_| route(svc, &req)).await)
}

async fn route(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    let q: AnalyticsQuery = http::request::query(req)?;
    let r = ReportRequest::parse(
        ReportParams {
            period: q.period.as_deref(),
            from: q.from.as_deref(),
            to: q.to.as_deref(),
            group_by: q.group_by.as_deref(),
            timezone: q.timezone.as_deref(),
        },
        Timestamp::now(),
    )?;
    let (first, last) = r.hours();
    let mode = KeyMode::of(ctx.livemode());
    let buckets = svc
        .store
        .read_analytics(&ctx.org_id, mode, first, last)
        .await?;
    let body = serde_json::to_value(report::report(&r, ctx.livemode(), &buckets))
        .map_err(|_| ApiError::internal())?;
    Ok(http::json(200, &body))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
