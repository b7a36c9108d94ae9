//! `GET /audit-log`: who changed what in this organization and mode, newest first
//! (`limit`, `cursor`, `created_gte`, `created_lte`, and `object_id` for one object's
//! entries, `key_id` for one key's). Entries are kept a year and never change.

use payorders::http::list::{Limit, PageCursor, Window};
use payorders::http::{self, ApiError, Body, Params, Request, Response, render};
use payorders::runtime::Services;
use payorders::store::AuditFilter;
use payorders::*;
use serde::Deserialize;
use std::collections::HashMap;

/// The query string of `GET /audit-log`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListAuditQuery {
    limit: Option<Limit>,
    cursor: Option<PageCursor>,
    created_gte: Option<Timestamp>,
    created_lte: Option<Timestamp>,
    /// Only the entries about this object (`po_…`, `we_…`, `key_…`, …).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    object_id: Option<ObjectId>,
    /// Only the entries of requests made with this key (`key_…`).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    key_id: Option<KeyId>,
}

/// An object id: a short prefix, `_`, and letters or digits (at most 64 characters).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct ObjectId(String);

impl TryFrom<String> for ObjectId {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = s.len() <= 64
            && s.split_once('_').is_some_and(|(prefix, body)| {
                !prefix.is_empty()
                    && prefix.chars().all(|c| c.is_ascii_lowercase())
                    && !body.is_empty()
                    && body.chars().all(|c| c.is_ascii_alphanumeric())
            });
        if ok {
            Ok(Self(s))
        } else {
            Err("object_id must be an object id such as po_…")
        }
    }
}

impl Params for ListAuditQuery {
    fn code(field: &str) -> &'static str {
        http::list::code(field).unwrap_or("INVALID_PARAMETER")
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_read(&*svc.store, &req, |_| route(svc, &req)).await)
}

async fn route(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    let q: ListAuditQuery = http::request::query(req)?;
    let w = Window {
        limit: q.limit,
        cursor: q.cursor,
        created_gte: q.created_gte,
        created_lte: q.created_lte,
    }
    .for_caller(&ctx)?;
    let filter = AuditFilter {
        object_id: q.object_id.map(|o| o.0),
        key_id: q.key_id,
    };
    let (page, keys) = tokio::try_join!(
        svc.store.list_audit_entries(&w, &filter),
        svc.store.list_api_keys(&ctx.org_id, ctx.mode),
    )?;
    // Keys are named the way people recognise them (`sk_test_4f9a…wxyz`).
    let masked: HashMap<KeyId, String> = keys.iter().map(|k| (k.id.clone(), k.masked())).collect();
    Ok(http::json(
        200,
        &render::list(&page, |e: &AuditEntry| {
            let key = match &e.actor {
                AuditActor::ApiKey { key_id } => masked.get(key_id).map(String::as_str),
                AuditActor::Operator => None,
            };
            e.api_view(key)
        }),
    ))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
