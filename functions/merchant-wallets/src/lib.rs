//! `/merchant-wallets`: where an organization is paid, one wallet per chain (and mode),
//! addressed by chain id. A wallet is one receiving `address`, or (EVM chains) an `xpub`
//! from which each order gets its own address (`xpub/0/i`, non-custodial). Its `currencies`
//! (`"native"` or token addresses) are the organization's settlement currencies.
//!
//! A wallet says where money goes, so creating, updating or deleting one needs a signed
//! request (the API secret, not just the key), as creating a SALE does; and a wallet is on
//! a network of the key's mode (test networks for test keys, mainnets for live keys).

use payorders::auth;
use payorders::http::{self, ApiError, Body, Params, Request, Response};
use payorders::registry::{ChainInfo, registry};
use payorders::runtime::Services;
use payorders::store::{StoreError, Versioned};
use payorders::wallets;
use payorders::*;
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_CURRENCIES: usize = 50;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_limited(&*svc.store, &req, |rid| route(svc, &req, rid)).await)
}

/// What every write refuses without a signature.
const SIGNED_WRITE: &str = "changing a merchant wallet";

async fn route(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let has_chain = http::path_segments(req).len() == 2;
    if matches!(req.method().as_str(), "POST" | "DELETE") {
        ctx.require_signed(SIGNED_WRITE)?;
    }
    match (req.method().as_str(), has_chain) {
        ("POST", false) => {
            http::idempotent(&*svc.store, &ctx, req, &rid, || create(svc, &ctx, req)).await
        }
        ("GET", false) => {
            http::no_body(req)?;
            let all = svc.store.list_wallets(&ctx.org_id, ctx.mode).await?;
            let data: Vec<Value> = all.iter().map(MerchantWallet::api_view).collect();
            Ok(http::json(
                200,
                &json!({"object": "list", "data": data, "has_more": false, "next_cursor": null}),
            ))
        }
        (method, true) => {
            let chain = http::path_id(req, "chain_id", "merchant wallet", ChainId::parse)?;
            match method {
                "GET" => {
                    http::no_body(req)?;
                    Ok(http::json(200, &load(svc, &ctx, chain).await?.api_view()))
                }
                "POST" => {
                    http::idempotent(&*svc.store, &ctx, req, &rid, || {
                        update(svc, &ctx, req, chain)
                    })
                    .await
                }
                "DELETE" => {
                    http::request::signed_no_body(&*svc.store, &ctx, req).await?;
                    if !svc
                        .store
                        .delete_wallet(&ctx.org_id, ctx.mode, chain)
                        .await?
                    {
                        return Err(not_found());
                    }
                    Ok(http::json(
                        200,
                        &json!({"object": "merchant_wallet", "chain_id": chain, "deleted": true}),
                    ))
                }
                _ => Err(ApiError::not_found("route")),
            }
        }
        _ => Err(ApiError::not_found("route")),
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("merchant wallet").with_param("chain_id")
}

async fn load(
    svc: &Services,
    ctx: &auth::AuthContext,
    chain: ChainId,
) -> Result<MerchantWallet, ApiError> {
    svc.store
        .get_wallet(&ctx.org_id, ctx.mode, chain)
        .await?
        .ok_or_else(not_found)
}

/// The body of `POST /merchant-wallets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateWallet {
    chain_id: ChainId,
    address: Option<String>,
    xpub: Option<String>,
    /// 1 or more of `native` or token addresses.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    currencies: Currencies,
}

/// The body of `POST /merchant-wallets/{chain_id}`: what changes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateWallet {
    address: Option<String>,
    xpub: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    currencies: Option<Currencies>,
}

fn wallet_code(field: &str) -> &'static str {
    match field {
        "chain_id" => "INVALID_BLOCKCHAIN",
        "xpub" => "INVALID_XPUB",
        "currencies" => "INVALID_CURRENCY",
        _ => "INVALID_ADDRESS",
    }
}

impl Params for CreateWallet {
    fn code(field: &str) -> &'static str {
        wallet_code(field)
    }
}

impl Params for UpdateWallet {
    fn code(field: &str) -> &'static str {
        wallet_code(field)
    }
}

/// 1-50 settlement currencies: `"native"` or token addresses, resolved on the wallet's chain.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Vec<String>")]
struct Currencies(Vec<String>);

impl TryFrom<Vec<String>> for Currencies {
    type Error = &'static str;

    fn try_from(list: Vec<String>) -> Result<Self, Self::Error> {
        if (1..=MAX_CURRENCIES).contains(&list.len()) {
            Ok(Self(list))
        } else {
            Err("currencies must be a non-empty list of \"native\" or token addresses")
        }
    }
}

/// `address` xor `xpub`, validated for the chain; returns (address, xpub) in canonical form.
fn destination(
    chain: &ChainInfo,
    address: Option<&str>,
    xpub: Option<&str>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    match (address, xpub) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::invalid(
            "INVALID_REQUEST",
            "address",
            "give exactly one of address (one receiving address) or xpub (an address per order)",
        )),
        (Some(a), None) => {
            let addr = Address::parse(chain.family, a)
                .map_err(|e| ApiError::invalid("INVALID_ADDRESS", "address", e.to_string()))?;
            Ok((Some(addr.to_string()), None))
        }
        (None, Some(x)) => {
            if chain.family != ChainFamily::Evm {
                return Err(ApiError::unprocessable(
                    "XPUB_NOT_SUPPORTED",
                    format!(
                        "xpub wallets are supported on EVM chains, not on {}",
                        chain.name
                    ),
                )
                .with_param("xpub"));
            }
            let key = wallets::parse_xpub(x)
                .map_err(|e| ApiError::invalid("INVALID_XPUB", "xpub", e.to_string()))?;
            Ok((None, Some(wallets::xpub_text(&key))))
        }
    }
}

/// `["native", "0x…"]` → currency ids on the chain, each in the registry, no duplicates.
fn currencies(chain: &ChainInfo, list: &Currencies) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for text in &list.0 {
        let c = chain.currency(Some(text)).map_err(|e| {
            ApiError::unprocessable("UNSUPPORTED_CURRENCY", e.to_string()).with_param("currencies")
        })?;
        if !out.contains(&c.id) {
            out.push(c.id);
        }
    }
    Ok(out)
}

/// A wallet's chain must be a network of the key's mode.
fn check_mode(chain: &ChainInfo, ctx: &auth::AuthContext) -> Result<(), ApiError> {
    chain
        .check_mode(ctx.mode)
        .map_err(|e| ApiError::from(e).with_param("chain_id"))
}

async fn create(
    svc: &Services,
    ctx: &auth::AuthContext,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: CreateWallet = http::request::signed_json(&*svc.store, ctx, req, false).await?;
    let chain = registry().chain(body.chain_id).map_err(|e| {
        ApiError::unprocessable("INVALID_BLOCKCHAIN", e.to_string()).with_param("chain_id")
    })?;
    check_mode(chain, ctx)?;
    let (address, xpub) = destination(chain, body.address.as_deref(), body.xpub.as_deref())?;
    let currencies = currencies(chain, &body.currencies)?;
    let now = Timestamp::now();
    let wallet = MerchantWallet {
        organization_id: ctx.org_id.clone(),
        livemode: ctx.livemode(),
        chain_id: chain.id,
        address,
        xpub,
        currencies,
        next_index: 0,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    match svc.store.create_wallet(&wallet).await {
        Ok(()) => Ok(http::json(201, &wallet.api_view())),
        Err(StoreError::AlreadyExists) => Err(ApiError::conflict(
            "WALLET_EXISTS",
            format!(
                "there is a wallet on chain {} already; update it instead",
                chain.id
            ),
        )
        .with_param("chain_id")),
        Err(e) => Err(e.into()),
    }
}

async fn update(
    svc: &Services,
    ctx: &auth::AuthContext,
    req: &Request,
    chain_id: ChainId,
) -> Result<Response<Body>, ApiError> {
    let body: UpdateWallet = http::request::signed_json(&*svc.store, ctx, req, false).await?;
    let chain = registry().chain(chain_id).map_err(|_| not_found())?;
    check_mode(chain, ctx)?;
    let dest = (body.address.is_some() || body.xpub.is_some())
        .then(|| destination(chain, body.address.as_deref(), body.xpub.as_deref()))
        .transpose()?;
    let currencies = body
        .currencies
        .as_ref()
        .map(|c| currencies(chain, c))
        .transpose()?;
    for _ in 0..3 {
        let current = load(svc, ctx, chain_id).await?;
        let mut next = current.next_version();
        if let Some((address, xpub)) = &dest {
            // A new xpub starts its own index sequence; the same xpub keeps its place.
            if xpub.is_some() && *xpub != current.xpub {
                next.next_index = 0;
            }
            next.address = address.clone();
            next.xpub = xpub.clone();
        }
        if let Some(c) = &currencies {
            next.currencies = c.clone();
        }
        next.updated_at = Timestamp::now();
        match svc.store.update_wallet(&next, current.version).await {
            Ok(()) => return Ok(http::json(200, &next.api_view())),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_UPDATE",
        "the wallet kept changing; retry",
    ))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
