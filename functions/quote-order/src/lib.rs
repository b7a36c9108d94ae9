//! `POST /pay-orders/{id}/quote {wallet_address, chain_type, chain_ids?}` (seed 000): reads
//! the payer's wallet balances on the chosen chains, prices them, and answers, for each
//! currency held, its balance, what paying the order in it requires (seed 002's breakdown:
//! base, protocol fee from the organization's setting, gas, provider fee), the estimated
//! network fee (in the chain's native coin) and whether the balances cover both. Only for PENDING orders. A requested chain without an RPC endpoint is
//! a 503 for that chain.

use payorders::chains::ChainError;
use payorders::http::{self, ApiError, Body, Params, Request, Response};
use payorders::registry::{Currency, registry};
use payorders::runtime::Services;
use payorders::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// A currency the wallet holds, with what paying in it also takes.
struct Held {
    currency: Currency,
    balance: RawAmount,
    /// The chain's native coin, its balance, and the estimated fee of one transfer in it.
    native: Currency,
    native_balance: RawAmount,
    fee: RawAmount,
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_limited(&*svc.store, &req, |_| quote(svc, &req)).await)
}

/// The body of `POST /pay-orders/{id}/quote`. The address is read for `chain_type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteRequest {
    wallet_address: String,
    /// `EVM` or `SOLANA` (any case; `SOL` too).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    chain_type: ChainType,
    /// 1 to 20 chain ids.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<ChainId>>))]
    chain_ids: Option<ChainIds>,
}

impl Params for QuoteRequest {
    fn code(field: &str) -> &'static str {
        match field {
            "chain_type" => "INVALID_CHAIN_TYPE",
            "chain_ids" => "INVALID_BLOCKCHAIN",
            _ => "INVALID_ADDRESS",
        }
    }
}

/// `EVM` or `SOLANA` (`SOL`), any case.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct ChainType(ChainFamily);

impl TryFrom<String> for ChainType {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.to_ascii_uppercase().as_str() {
            "EVM" => Ok(Self(ChainFamily::Evm)),
            "SOLANA" | "SOL" => Ok(Self(ChainFamily::Solana)),
            _ => Err("chain_type must be EVM or SOLANA"),
        }
    }
}

/// 1-20 chain ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Vec<ChainId>")]
struct ChainIds(Vec<ChainId>);

impl TryFrom<Vec<ChainId>> for ChainIds {
    type Error = &'static str;

    fn try_from(ids: Vec<ChainId>) -> Result<Self, Self::Error> {
        if (1..=20).contains(&ids.len()) {
            Ok(Self(ids))
        } else {
            Err("chain_ids must be a list of 1 to 20 chain ids")
        }
    }
}

fn unavailable(chain: ChainId, e: &ChainError) -> ApiError {
    tracing::warn!(chain = %chain, error = %e, "chain unavailable for a quote");
    ApiError::unavailable(
        "CHAIN_UNAVAILABLE",
        format!("chain {chain} cannot be read now: {e}"),
    )
    .with_param("chain_ids")
}

async fn quote(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    let body: QuoteRequest = http::request::signed_json(&*svc.store, &ctx, req, false).await?;
    let family = body.chain_type.0;
    let wallet = Address::parse(family, &body.wallet_address)
        .map_err(|e| ApiError::invalid("INVALID_ADDRESS", "wallet_address", e.to_string()))?
        .to_string();
    let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
    if order.status != OrderStatus::Pending {
        return Err(ApiError::unprocessable(
            "ORDER_NOT_PENDING",
            format!(
                "quotes are for PENDING orders; this one is {}",
                order.status
            ),
        ));
    }

    // The chains to read: the requested ones (each must be readable), or every configured
    // one; either way only networks of the key's mode (test networks for test keys).
    let chains: Vec<ChainId> = match body.chain_ids {
        None => svc
            .chains
            .ids()
            .filter(|c| {
                registry()
                    .chain(*c)
                    .is_ok_and(|i| i.family == family && i.check_mode(ctx.mode).is_ok())
            })
            .collect(),
        Some(ChainIds(list)) => {
            let mut ids = Vec::new();
            for id in list {
                let info = registry().chain(id).map_err(|e| {
                    ApiError::unprocessable("INVALID_BLOCKCHAIN", e.to_string())
                        .with_param("chain_ids")
                })?;
                if info.family != family {
                    return Err(ApiError::invalid(
                        "INVALID_BLOCKCHAIN",
                        "chain_ids",
                        format!("chain {id} is not a {family:?} chain"),
                    ));
                }
                info.check_mode(ctx.mode)
                    .map_err(|e| ApiError::from(e).with_param("chain_ids"))?;
                svc.chains.get(id).map_err(|e| unavailable(id, &e))?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            ids
        }
    };

    // Balances of every registry currency on those chains; keep what is held, with the
    // chain's native coin (which pays the network fee) and its balance.
    let mut held: Vec<Held> = Vec::new();
    for chain in chains {
        let info = registry().chain(chain).map_err(|_| ApiError::internal())?;
        let currencies: Vec<Currency> = info
            .currencies()
            .filter_map(|t| info.currency(t.address.as_deref()).ok())
            .collect();
        let reader = svc.chains.get(chain).map_err(|e| unavailable(chain, &e))?;
        let balances = reader
            .balances(&wallet, &currencies)
            .await
            .map_err(|e| unavailable(chain, &e))?;
        // The registry lists a chain's native coin first.
        let (Some(native), Some(&native_balance)) = (currencies.first().cloned(), balances.first())
        else {
            tracing::error!(chain = %chain, "no native coin or balance for a chain");
            return Err(ApiError::internal());
        };
        for (c, b) in currencies.into_iter().zip(balances) {
            if b.is_zero() {
                continue;
            }
            let fee = reader
                .transfer_fee(&c)
                .await
                .map_err(|e| unavailable(chain, &e))?;
            held.push(Held {
                currency: c,
                balance: b,
                native: native.clone(),
                native_balance,
                fee,
            });
        }
    }

    let prices_source = svc.prices.as_ref().ok_or_else(ApiError::internal)?;
    let mut to_price: Vec<Currency> = held
        .iter()
        .flat_map(|h| [h.currency.clone(), h.native.clone()])
        .collect();
    to_price.dedup_by(|a, b| a.id == b.id);
    if let Some(asset) = &order.fulfillment.asset {
        to_price.push(asset.clone());
    }
    let prices = if to_price.is_empty() {
        Default::default()
    } else {
        // A held currency without a (fresh) price is left out of the options below; the
        // order's own currency, which prices the order, still needs one.
        prices_source.usd_prices_known(&to_price).await?
    };
    let price_of = |c: &Currency| {
        prices
            .get(&c.id)
            .copied()
            .ok_or_else(|| ApiError::from(payorders::pricing::PriceError::Missing(c.id.clone())))
    };
    // What the order is worth in USD (display and conversion only). Order amounts are
    // bounded at creation; the arithmetic is checked all the same, so no amount can panic.
    let out_of_range = || {
        ApiError::unprocessable(
            "AMOUNT_OUT_OF_RANGE",
            "the order's amount is too large to price",
        )
    };
    let order_usd: Decimal = match (
        &order.fulfillment.asset,
        &order.fulfillment.amount,
        &order.fulfillment.fiat_amount,
    ) {
        (Some(asset), Some(amount), _) => {
            let price = price_of(asset)?;
            amount
                .decimal()
                .and_then(|ui| ui.checked_mul(price))
                .ok_or_else(out_of_range)?
        }
        (_, _, Some(fiat)) => Decimal::from_str(fiat).map_err(|_| out_of_range())?,
        _ => return Err(ApiError::internal()),
    };
    let fee_bps = svc
        .store
        .get_organization(&ctx.org_id)
        .await?
        .map(|o| o.settings(ctx.mode).protocol_fee_bps)
        .unwrap_or(0);

    let usd = |raw: RawAmount, c: &Currency| -> Option<serde_json::Number> {
        let ui = Decimal::from_str(&raw.to_ui(c.decimals)).ok()?;
        let v = ui.checked_mul(*prices.get(&c.id)?)?.round_dp(2);
        serde_json::Number::from_str(&v.normalize().to_string()).ok()
    };
    let amount = |raw: RawAmount, c: &Currency| {
        let mut a = Amount::new(raw, c.decimals);
        a.value_usd = usd(raw, c);
        a
    };
    let mut options = Vec::new();
    for h in &held {
        let c = &h.currency;
        let base = match (&order.fulfillment.asset, &order.fulfillment.amount) {
            (Some(asset), Some(a)) if asset.id == c.id => a.raw,
            _ => {
                let Some(price) = prices.get(&c.id).copied() else {
                    tracing::warn!(currency = %c.id, "no price: left out of the quote");
                    continue;
                };
                fiat_to_raw_ceil(order_usd, price, c.decimals).ok_or_else(|| {
                    ApiError::unprocessable(
                        "AMOUNT_OUT_OF_RANGE",
                        format!("the order cannot be expressed in {}", c.id),
                    )
                })?
            }
        };
        let protocol_fee = base.mul_bps(fee_bps).ok_or_else(ApiError::internal)?;
        // The merchant's own fee (set when the order was created) adds to the protocol fee.
        let custom_fee = base
            .mul_bps(order.fulfillment.custom_fee_bps.unwrap_or(0))
            .ok_or_else(ApiError::internal)?;
        let total_fee = protocol_fee
            .checked_add(custom_fee)
            .ok_or_else(ApiError::internal)?;
        // The network fee is paid in the native coin: part of the total when paying in it,
        // beside it (and needed in the native balance) when paying in a token.
        let paying_native = c.id == h.native.id;
        let gas = if paying_native {
            h.fee
        } else {
            RawAmount::ZERO
        };
        let total = base
            .checked_add(total_fee)
            .and_then(|t| t.checked_add(gas))
            .ok_or_else(ApiError::internal)?;
        let affordable = h.balance >= total && (paying_native || h.native_balance >= h.fee);
        options.push(json!({
            "currency": c,
            "balance": amount(h.balance, c),
            "required": {
                "amount": amount(total, c),
                "breakdown": {
                    "base": amount(base, c),
                    "fees": {
                        "protocol_fee": amount(protocol_fee, c),
                        "custom_fee": amount(custom_fee, c),
                        "provider_fee": amount(RawAmount::ZERO, c),
                        "total_fee": amount(total_fee, c),
                    },
                    "gas": amount(gas, c),
                    "total": amount(total, c),
                },
            },
            "network_fee": {"currency": h.native, "amount": amount(h.fee, &h.native)},
            "affordable": affordable,
        }));
    }
    Ok(http::json(
        200,
        &json!({
            "object": "quote",
            "order_id": order.id,
            "wallet_address": wallet,
            "value_usd": serde_json::Number::from_str(&order_usd.round_dp(2).normalize().to_string()).ok(),
            "options": options,
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
