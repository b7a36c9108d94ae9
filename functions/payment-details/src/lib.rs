//! `POST /pay-orders/{id}/payment-details {source_currency, refund_address?}`: fixes how a
//! PENDING order is paid and moves it to AWAITING_PAYMENT with seed 002's `payment` object.
//!
//! Direct route: the payer's currency is what the destination receives, so the payer pays
//! the destination itself: a DEPOSIT's `recipient`, or for a SALE the merchant wallet of
//! that currency (its address, or the next address derived from its xpub). A fiat-priced
//! SALE is converted at the current USD price, rounded up so the merchant gets at least the
//! price; the amounts hold until the order expires. Paying in another currency needs an
//! exchange route (ChangeNow), which is not built yet: 422 `ROUTE_UNAVAILABLE`. Any failure
//! leaves the order as it was.

use payorders::auth;
use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::registry::{Currency, CurrencyRef, registry};
use payorders::runtime::Services;
use payorders::store::{StoreError, allocate_wallet_index};
use payorders::wallets;
use payorders::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::*;
use serde_json::{Map, Value};

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |rid| details(svc, &req, rid)).await)
}

async fn details(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let now = Timestamp::now();
        let body = http::json_object(req, false)?;
        auth::verify_body(&*svc.store, &ctx, http::body_bytes(req)?, now).await?;
        if let Some(k) = body
            .keys()
            .find(|k| !["source_currency", "refund_address"].contains(&k.as_str()))
        {
            return Err(ApiError::invalid(
                "UNKNOWN_PARAMETER",
                k,
                format!("unknown parameter {k}"),
            ));
        }
        let order = get_order::load_own_order(&*svc.store, &ctx, &id).await?;
        if order.status != OrderStatus::Pending {
            return Err(ApiError::unprocessable(
                "ORDER_NOT_PENDING",
                format!(
                    "payment details are chosen once, while the order is PENDING; it is {}",
                    order.status
                ),
            ));
        }
        if order.expires_at <= now {
            return Err(ApiError::unprocessable(
                "ORDER_EXPIRED",
                "the order has expired",
            ));
        }
        let source = source_currency(&body)?;
        let refund = refund_address(&body, &source)?;
        let plan = plan(svc, &ctx, &order, &source).await?;
        let (deposit_address, derivation_index) = deposit_address(svc, &ctx, &plan).await?;
        let payment = Payment {
            route: "direct".into(),
            payment_rail: "CRYPTO".into(),
            input: PaymentInput {
                currency: source.clone(),
                amount: plan.amount.clone(),
                breakdown: Breakdown {
                    base: plan.amount.clone(),
                    fees: Fees {
                        protocol_fee: zero(&source),
                        provider_fee: zero(&source),
                        total_fee: zero(&source),
                    },
                    gas: zero(&source),
                    total: plan.amount.clone(),
                },
            },
            output: PaymentOutput {
                currency: source.clone(),
                amount: plan.amount.clone(),
            },
            steps: vec![PaymentStep {
                kind: "deposit".into(),
                rail: "CRYPTO".into(),
                deposit_address: deposit_address.clone(),
            }],
            recipient: deposit_address,
            expires_at: order.expires_at,
            refund,
            derivation_index,
        };
        let update = order
            .transition(now, OrderStatus::AwaitingPayment, |o| {
                o.fulfillment.asset = Some(source.clone());
                o.fulfillment.amount = Some(plan.amount.clone());
                o.fulfillment.recipient = Some(payment.recipient.clone());
                if let Some(rate) = plan.rate_usd {
                    o.fulfillment.rate_usd = Some(rate.normalize().to_string());
                }
                o.payment = Some(payment.clone());
            })
            .map_err(|_| ApiError::internal())?;
        match svc.store.update_order(&update).await {
            Ok(()) => Ok(http::json(200, &render::order(update.order()))),
            Err(StoreError::VersionConflict { .. }) => Err(ApiError::conflict(
                "CONCURRENT_UPDATE",
                "the order changed while its payment details were chosen; read it again",
            )),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

fn zero(c: &Currency) -> Amount {
    Amount::new(RawAmount::ZERO, c.decimals)
}

fn source_currency(body: &Map<String, Value>) -> Result<Currency, ApiError> {
    let v = body.get("source_currency").ok_or_else(|| {
        ApiError::invalid(
            "MISSING_CURRENCY",
            "source_currency",
            "source_currency is required",
        )
    })?;
    let r: CurrencyRef = serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::invalid(
            "INVALID_CURRENCY",
            "source_currency",
            format!("source_currency must be {{\"chain_id\": <id>, \"address\": <token address or null>}}: {e}"),
        )
    })?;
    registry().currency(&r).map_err(|e| match e {
        registry::RegistryError::UnsupportedChain(_) => {
            ApiError::unprocessable("INVALID_BLOCKCHAIN", e.to_string())
                .with_param("source_currency.chain_id")
        }
        registry::RegistryError::UnsupportedCurrency { .. } => {
            ApiError::unprocessable("UNSUPPORTED_CURRENCY", e.to_string())
                .with_param("source_currency")
        }
    })
}

fn refund_address(
    body: &Map<String, Value>,
    source: &Currency,
) -> Result<Option<Refund>, ApiError> {
    match body.get("refund_address") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(a)) => {
            let family = registry()
                .chain(source.chain_id)
                .map_err(|_| ApiError::internal())?
                .family;
            let addr = Address::parse(family, a).map_err(|e| {
                ApiError::invalid("INVALID_ADDRESS", "refund_address", e.to_string())
            })?;
            Ok(Some(Refund {
                address: addr.to_string(),
            }))
        }
        Some(_) => Err(ApiError::invalid(
            "INVALID_ADDRESS",
            "refund_address",
            "refund_address must be a string",
        )),
    }
}

/// Where the money goes and how much, before any address is handed out.
struct Plan {
    amount: Amount,
    rate_usd: Option<Decimal>,
    /// Pay this fixed address (a DEPOSIT's recipient, a SALE's explicit recipient)…
    address: Option<String>,
    /// …or the merchant wallet on this chain.
    wallet_chain: Option<ChainId>,
}

async fn plan(
    svc: &Services,
    ctx: &auth::AuthContext,
    order: &PayOrder,
    source: &Currency,
) -> Result<Plan, ApiError> {
    let route_unavailable = |wanted: &str| {
        ApiError::unprocessable(
            "ROUTE_UNAVAILABLE",
            format!(
                "paying in {} needs an exchange route to {wanted}, which is not available yet",
                source.id
            ),
        )
        .with_param("source_currency")
    };
    match (&order.fulfillment.asset, &order.fulfillment.amount) {
        // The order names its currency: the payer pays in it, directly.
        (Some(asset), Some(amount)) => {
            if asset.id != source.id {
                return Err(route_unavailable(&asset.id));
            }
            let explicit = order.fulfillment.recipient.clone();
            if explicit.is_none() {
                wallet_for(svc, ctx, source).await?;
            }
            Ok(Plan {
                amount: amount.clone(),
                rate_usd: None,
                wallet_chain: explicit.is_none().then_some(source.chain_id),
                address: explicit,
            })
        }
        // A SALE priced in fiat: the payer pays in one of the merchant's currencies.
        (None, _) => {
            wallet_for(svc, ctx, source).await.map_err(|e| {
                if e.code == "WALLET_NOT_CONFIGURED" {
                    route_unavailable("a settlement currency")
                } else {
                    e
                }
            })?;
            let fiat = order
                .fulfillment
                .fiat_amount
                .as_deref()
                .and_then(|f| Decimal::from_str(f).ok())
                .ok_or_else(ApiError::internal)?;
            let prices = svc.prices.as_ref().ok_or_else(|| {
                tracing::error!("payment-details runs without a price source");
                ApiError::internal()
            })?;
            let price = prices.usd_price(source).await?;
            let raw = fiat_to_raw_ceil(fiat, price, source.decimals).ok_or_else(|| {
                ApiError::unprocessable(
                    "AMOUNT_OUT_OF_RANGE",
                    "the price converts to an amount this currency cannot express",
                )
            })?;
            let mut amount = Amount::new(raw, source.decimals);
            amount.value_usd = serde_json::Number::from_str(&fiat.normalize().to_string()).ok();
            Ok(Plan {
                amount,
                rate_usd: Some(price),
                address: None,
                wallet_chain: Some(source.chain_id),
            })
        }
        (Some(_), None) => Err(ApiError::internal()),
    }
}

/// The merchant wallet that accepts `source`, or `WALLET_NOT_CONFIGURED`.
async fn wallet_for(
    svc: &Services,
    ctx: &auth::AuthContext,
    source: &Currency,
) -> Result<MerchantWallet, ApiError> {
    svc.store
        .get_wallet(&ctx.org_id, ctx.mode, source.chain_id)
        .await?
        .filter(|w| w.currencies.contains(&source.id))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "WALLET_NOT_CONFIGURED",
                format!("no merchant wallet accepts {} in this mode", source.id),
            )
            .with_param("source_currency")
        })
}

/// The address the payer sends to, and the xpub index it was derived at, if it was.
async fn deposit_address(
    svc: &Services,
    ctx: &auth::AuthContext,
    plan: &Plan,
) -> Result<(String, Option<u32>), ApiError> {
    if let Some(a) = &plan.address {
        return Ok((a.clone(), None));
    }
    let chain = plan.wallet_chain.ok_or_else(ApiError::internal)?;
    let wallet = svc
        .store
        .get_wallet(&ctx.org_id, ctx.mode, chain)
        .await?
        .ok_or_else(ApiError::internal)?;
    match (&wallet.address, &wallet.xpub) {
        (Some(a), _) => Ok((a.clone(), None)),
        (None, Some(xpub)) => {
            // Each order gets the next index; an index is never handed out twice.
            let (_, index) =
                allocate_wallet_index(&*svc.store, &ctx.org_id, ctx.mode, chain).await?;
            let key = wallets::parse_xpub(xpub).map_err(|_| ApiError::internal())?;
            let addr =
                wallets::derive_evm_address(&key, index).map_err(|_| ApiError::internal())?;
            Ok((addr.to_string(), Some(index)))
        }
        (None, None) => Err(ApiError::internal()),
    }
}
