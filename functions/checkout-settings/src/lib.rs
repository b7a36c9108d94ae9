//! The organization's settings, scope `settings:manage`:
//! - `GET /settings` and `POST /settings` ([`order_defaults`]): the order defaults of the
//!   key's mode (expiry, late-payment window, confirmations, payment tolerance, the
//!   merchant's fee); a change needs a signed request.
//! - `GET /settings/checkout` and `POST /settings/checkout`: how the hosted checkout page
//!   presents the organization (display name, logo, theme colour, footer), one set for
//!   both modes.
//!
//! A POST changes the fields it names; `null` resets one to its default.

pub mod order_defaults;

use payorders::http::request::nullable;
use payorders::http::{self, ApiError, Body, Params, Request, Response};
use payorders::runtime::Services;
use payorders::*;
use serde::Deserialize;
use serde_json::json;

/// The body of `POST /settings/checkout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckoutSettingsUpdate {
    /// The name customers see (1-100 characters); `null` shows the organization's name.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    display_name: Option<Option<String>>,
    /// An `https` URL of the logo image.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = "uri"))]
    logo_url: Option<Option<String>>,
    /// The accent colour, `#rrggbb`.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^#[0-9a-fA-F]{6}$"))]
    theme_color: Option<Option<String>>,
    /// Leave out the "Powered by PayOrders" footer.
    hide_footer: Option<bool>,
}

impl Params for CheckoutSettingsUpdate {
    fn code(field: &str) -> &'static str {
        match field {
            "logo_url" => "INVALID_URL",
            _ => "INVALID_PARAMETER",
        }
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let req = &req;
    let checkout = http::path_segments(req).last() == Some(&"checkout");
    Ok(
        http::limits::serve_limited(&*svc.store, req, |rid| async move {
            if checkout {
                settings(svc, req, rid).await
            } else {
                order_defaults::settings(svc, req, rid).await
            }
        })
        .await,
    )
}

async fn settings(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    if req.method() == "GET" {
        http::no_body(req)?;
        let current = svc.store.get_checkout_settings(&ctx.org_id).await?;
        return Ok(http::json(200, &view(&current.unwrap_or_default())));
    }
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let body: CheckoutSettingsUpdate =
            http::request::signed_json(&*svc.store, &ctx, req, false).await?;
        let mut next = svc
            .store
            .get_checkout_settings(&ctx.org_id)
            .await?
            .unwrap_or_default();
        if let Some(v) = body.display_name {
            next.display_name = v.map(display_name).transpose()?;
        }
        if let Some(v) = body.logo_url {
            next.logo_url = v.map(logo_url).transpose()?;
        }
        if let Some(v) = body.theme_color {
            next.theme_color = v.map(theme_color).transpose()?;
        }
        if let Some(v) = body.hide_footer {
            next.hide_footer = v;
        }
        svc.store.put_checkout_settings(&ctx.org_id, &next).await?;
        Ok(http::json(200, &view(&next)))
    })
    .await
}

pub(crate) fn view(s: &CheckoutSettings) -> serde_json::Value {
    json!({
        "object": "checkout_settings",
        "display_name": s.display_name,
        "logo_url": s.logo_url,
        "theme_color": s.theme_color,
        "hide_footer": s.hide_footer,
    })
}

fn display_name(v: String) -> Result<String, ApiError> {
    let v = v.trim().to_owned();
    let ok = (1..=100).contains(&v.chars().count()) && !v.chars().any(char::is_control);
    if ok {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            "INVALID_PARAMETER",
            "display_name",
            "display_name must be 1-100 characters without control characters",
        ))
    }
}

fn logo_url(v: String) -> Result<String, ApiError> {
    let ok = v.len() <= 2048
        && url::Url::parse(&v).is_ok_and(|u| u.scheme() == "https" && u.host().is_some());
    if ok {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            "INVALID_URL",
            "logo_url",
            "logo_url must be an https URL of at most 2048 characters",
        ))
    }
}

fn theme_color(v: String) -> Result<String, ApiError> {
    let ok = v.len() == 7 && v.starts_with('#') && v[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(ApiError::invalid(
            "INVALID_PARAMETER",
            "theme_color",
            "theme_color must be a colour as #rrggbb",
        ))
    }
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
