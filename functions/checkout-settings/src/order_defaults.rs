//! `GET /settings` and `POST /settings`: the order defaults of the key's mode (live and
//! test are kept apart). New orders take what they leave out from here, once, when they
//! are created. Changes are partial (`null` resets a field to its default), need a signed
//! request, and are written under the organization's version, so concurrent changes of
//! different fields all stick.

use payorders::http::request::nullable;
use payorders::http::{self, ApiError, Body, Params, Request, Response};
use payorders::runtime::Services;
use payorders::store::{StoreError, Versioned};
use payorders::*;
use serde::Deserialize;
use std::collections::BTreeMap;

/// How often a change is tried again when another change of the organization won the race.
const ATTEMPTS: usize = 8;

/// The body of `POST /settings`: each field left out stays as it is; `null` resets it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsUpdate {
    /// Seconds new orders stay payable when they give no `expires_in`/`expires_at`: 60 to
    /// 604800 (default 1800).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>, minimum = 60, maximum = 604800))]
    default_expires_in: Option<Option<i64>>,
    /// Seconds after expiry that payments to an order are still recorded (as late
    /// payments): 0 to 604800 (default 86400).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>, minimum = 0, maximum = 604800))]
    late_payment_window: Option<Option<i64>>,
    /// Confirmations per chain id of the key's mode (1 to 1000); `null` for a chain resets it
    /// to the chain's default.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, Option<u32>>>))]
    confirmations: Option<Option<BTreeMap<String, Option<u32>>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ToleranceUpdate>))]
    payment_tolerance: Option<Option<ToleranceUpdate>>,
    /// The merchant's own fee on new orders, in basis points: 0 to 1000 (default 0).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, maximum = 1000))]
    custom_fee_bps: Option<Option<u32>>,
}

/// The tolerance defaults; each left out stays, `null` resets it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToleranceUpdate {
    /// 0 to 5000 (default 0).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, maximum = 5000))]
    underpayment_bps: Option<Option<u32>>,
    /// 0 to 10000 (default 0).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, maximum = 10000))]
    overpayment_threshold_bps: Option<Option<u32>>,
    /// `accept` (the only action offered).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<OverpaymentAction>))]
    overpayment_action: Option<Option<String>>,
}

impl Params for SettingsUpdate {
    fn code(field: &str) -> &'static str {
        match field {
            "default_expires_in" => "INVALID_EXPIRY",
            "confirmations" => "INVALID_CONFIRMATIONS",
            "payment_tolerance" => "INVALID_PAYMENT_TOLERANCE",
            _ => "INVALID_PARAMETER",
        }
    }
}

impl SettingsUpdate {
    fn into_patch(self) -> SettingsPatch {
        SettingsPatch {
            default_expires_in: self.default_expires_in,
            late_payment_window: self.late_payment_window,
            confirmations: self
                .confirmations
                .map(|c| c.map(|chains| chains.into_iter().collect())),
            payment_tolerance: self.payment_tolerance.map(|t| {
                t.map(|t| TolerancePatch {
                    underpayment_bps: t.underpayment_bps,
                    overpayment_threshold_bps: t.overpayment_threshold_bps,
                    overpayment_action: t.overpayment_action,
                })
            }),
            custom_fee_bps: self.custom_fee_bps,
        }
    }
}

pub(crate) async fn settings(
    svc: &Services,
    req: &Request,
    rid: String,
) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    if req.method() == "GET" {
        http::no_body(req)?;
        let org = organization(svc, &ctx.org_id).await?;
        return view(svc, &org, ctx.mode).await;
    }
    ctx.require_signed("changing settings")?;
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let body: SettingsUpdate =
            http::request::signed_json(&*svc.store, &ctx, req, false).await?;
        let patch = body.into_patch();
        for _ in 0..ATTEMPTS {
            let org = organization(svc, &ctx.org_id).await?;
            let mut next = org.next_version();
            next.settings_mut(ctx.mode)
                .apply(ctx.mode, &patch)
                .map_err(|e| ApiError::invalid(e.code, e.param, e.message))?;
            match svc.store.update_organization(&next, org.version).await {
                Ok(()) => {
                    tracing::info!(org_id = %ctx.org_id, mode = %ctx.mode, "settings changed");
                    return view(svc, &next, ctx.mode).await;
                }
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            "CONCURRENT_UPDATE",
            "the settings kept changing while this request ran; retry it",
        ))
    })
    .await
}

async fn organization(svc: &Services, id: &OrgId) -> Result<Organization, ApiError> {
    svc.store.get_organization(id).await?.ok_or_else(|| {
        ApiError::forbidden(
            "UNKNOWN_ORGANIZATION",
            "the key's organization no longer exists",
        )
    })
}

/// The settings object: the mode's order defaults, and the checkout page's branding (one
/// set for both modes, changed at `/settings/checkout`).
async fn view(
    svc: &Services,
    org: &Organization,
    mode: KeyMode,
) -> Result<Response<Body>, ApiError> {
    let checkout = svc
        .store
        .get_checkout_settings(&org.id)
        .await?
        .unwrap_or_default();
    let mut v = org.settings(mode).api_view(mode);
    v["checkout"] = crate::view(&checkout);
    Ok(http::json(200, &v))
}
