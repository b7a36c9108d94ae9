//! The customer's view of an order (`GET /public/pay-orders/{id}`, each Server-Sent Event):
//! built field by field from what a payer needs, so nothing merchant-only can slip in —
//! no metadata beyond the items' names, quantities and prices, no webhook URL, nonce,
//! version, idempotency key, organization id or derivation index.

use super::Links;
use super::uri::payment_uri;
use crate::http::ApiError;
use crate::model::*;
use crate::registry::{Currency, registry};
use crate::runtime::Services;
use alloy_primitives::U256;
use serde_json::{Map, Value, json};

/// Who the customer is paying, as the checkout page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub name: String,
    pub logo_url: Option<String>,
    pub theme_color: Option<String>,
    pub hide_footer: bool,
}

impl Merchant {
    /// The organization's checkout settings, its name when it set no display name.
    pub async fn for_org(svc: &Services, org: &OrgId) -> Result<Self, ApiError> {
        let settings = svc
            .store
            .get_checkout_settings(org)
            .await?
            .unwrap_or_default();
        let name = match settings.display_name {
            Some(n) => n,
            None => svc
                .store
                .get_organization(org)
                .await?
                .map(|o| o.name)
                .unwrap_or_default(),
        };
        Ok(Self {
            name,
            logo_url: settings.logo_url,
            theme_color: settings.theme_color,
            hide_footer: settings.hide_footer,
        })
    }
}

/// The order, or a 404 (a malformed id too: it cannot exist).
pub async fn load_public_order(svc: &Services, id: &str) -> Result<PayOrder, ApiError> {
    let not_found = || ApiError::not_found("pay order").with_param("id");
    let id = OrderId::parse(id).map_err(|_| not_found())?;
    svc.store.get_order(&id).await?.ok_or_else(not_found)
}

/// What the customer may pay in while the order is PENDING: the order's own currency when
/// it names one, else every currency the merchant's wallets take on networks of the
/// order's mode. Empty once the payment details are chosen.
pub async fn currency_choices(svc: &Services, order: &PayOrder) -> Result<Vec<Currency>, ApiError> {
    if order.status != OrderStatus::Pending {
        return Ok(Vec::new());
    }
    if let Some(asset) = &order.fulfillment.asset {
        return Ok(vec![asset.clone()]);
    }
    let mode = KeyMode::of(order.livemode);
    let wallets = svc.store.list_wallets(&order.organization_id, mode).await?;
    Ok(wallets
        .iter()
        .flat_map(|w| w.currencies.iter())
        .filter_map(|id| registry().currency_by_id(id).ok())
        .filter(|c| {
            registry()
                .chain(c.chain_id)
                .is_ok_and(|chain| chain.check_mode(mode).is_ok())
        })
        .collect())
}

/// The whole public view, loaded: the order, its merchant and its currency choices.
pub async fn load_view(
    svc: &Services,
    id: &str,
    links: &Links,
) -> Result<(PayOrder, Value), ApiError> {
    let order = load_public_order(svc, id).await?;
    let merchant = Merchant::for_org(svc, &order.organization_id).await?;
    let choices = currency_choices(svc, &order).await?;
    let view = public_view(&order, &merchant, &choices, links, Timestamp::now());
    Ok((order, view))
}

fn network(chain: ChainId) -> Value {
    match registry().chain(chain) {
        Ok(c) => json!({
            "chain_id": c.id,
            "name": c.name,
            "family": match c.family { ChainFamily::Evm => "evm", ChainFamily::Solana => "solana" },
            "testnet": c.testnet,
        }),
        Err(_) => json!({ "chain_id": chain }),
    }
}

fn currency(c: &Currency) -> Value {
    json!({
        "id": c.id,
        "chain_id": c.chain_id,
        "address": c.address,
        "symbol": c.symbol,
        "name": c.name,
        "decimals": c.decimals,
        "network": network(c.chain_id),
    })
}

/// The items of a SALE as the customer sees them: each item's name, quantity and unit
/// price only (the rest of `metadata` is the merchant's).
fn items(order: &PayOrder) -> Vec<Value> {
    let Some(list) = order
        .metadata
        .as_ref()
        .and_then(|m| m.get("items"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .map(|item| {
            let mut out = Map::new();
            if let Some(name) = item.get("name").and_then(Value::as_str) {
                out.insert("name".into(), json!(name));
            }
            for k in ["quantity", "unit_price"] {
                if let Some(v) = item.get(k).filter(|v| v.is_number() || v.is_string()) {
                    out.insert(k.into(), v.clone());
                }
            }
            Value::Object(out)
        })
        .filter(|v| v.get("name").is_some())
        .collect()
}

/// Received, required and remaining in the payment currency, and the percentage paid
/// (for display: two decimals, capped at 100). While part is still due, what is shown as
/// received is what counts toward the amount (what arrived, less what was refunded), so
/// that received and remaining add up to the amount on the customer's page.
fn progress(order: &PayOrder, payment: &Payment) -> Value {
    let decimals = payment.input.currency.decimals;
    let required = payment.input.amount.raw;
    let (received, remaining) = match &payment.remaining {
        Some(r) => (required.saturating_sub(r.raw), r.raw),
        None => {
            let received = payment
                .received
                .as_ref()
                .map(|a| a.raw)
                .unwrap_or_else(|| crate::model::counted(&order.transfers));
            let remaining = if received.is_zero() {
                required
            } else {
                RawAmount::ZERO
            };
            (received, remaining)
        }
    };
    let bps = if required.is_zero() {
        U256::from(10_000u32)
    } else {
        (received.value().saturating_mul(U256::from(10_000u32)) / required.value())
            .min(U256::from(10_000u32))
    };
    let bps: u64 = bps.to::<u64>();
    let percent = serde_json::Number::from_f64(bps as f64 / 100.0).unwrap_or(0.into());
    json!({
        "received": Amount::new(received, decimals),
        "required": Amount::new(required, decimals),
        "remaining": Amount::new(remaining, decimals),
        "percent": percent,
    })
}

/// The public view of `order` at `now`.
pub fn public_view(
    order: &PayOrder,
    merchant: &Merchant,
    choices: &[Currency],
    links: &Links,
    now: Timestamp,
) -> Value {
    let payment = order.payment.as_ref().map(|p| {
        json!({
            "currency": currency(&p.input.currency),
            "network": network(p.input.currency.chain_id),
            "amount": p.input.amount,
            "deposit_address": p.deposit_address(),
            "uri": payment_uri(p),
            "route": p.route,
            "expires_at": p.expires_at,
        })
    });
    let transfers: Vec<Value> = order
        .transfers
        .iter()
        .map(|t| {
            json!({
                "tx_hash": t.tx_hash,
                "amount": t.amount,
                "status": t.status,
                "confirmations": t.confirmations,
                "required_confirmations": t.required_confirmations,
                "detected_at": t.detected_at,
                "confirmed_at": t.confirmed_at,
            })
        })
        .collect();
    let price = match (&order.fulfillment.fiat_amount, &order.fulfillment.fiat_unit) {
        (Some(amount), Some(unit)) => json!({ "amount": amount, "currency": unit }),
        _ => match (&order.fulfillment.amount, &order.fulfillment.asset) {
            (Some(a), Some(c)) => json!({ "amount": a.ui, "currency": c.symbol }),
            _ => Value::Null,
        },
    };
    json!({
        "id": order.id,
        "object": "public_pay_order",
        "status": order.status,
        "mode": order.mode,
        "livemode": order.livemode,
        "created_at": order.created_at,
        "expires_at": order.expires_at,
        // Until the order expires, or a routed payment's rate does if that comes first.
        "time_remaining": now
            .seconds_until(order.payment.as_ref().map_or(order.expires_at, |p| p.expires_at.min(order.expires_at)))
            .max(0),
        "merchant": {
            "name": merchant.name,
            "logo_url": merchant.logo_url,
            "theme_color": merchant.theme_color,
            "hide_footer": merchant.hide_footer,
        },
        "price": price,
        "items": items(order),
        "asset": order.fulfillment.asset.as_ref().map(currency),
        "amount": order.fulfillment.amount,
        "currencies": choices.iter().map(currency).collect::<Vec<_>>(),
        "payment": payment,
        "payment_progress": order.payment.as_ref().map(|p| progress(order, p)),
        "transfers": transfers,
        "paid_over": order.paid_over,
        "paid_late": order.paid_late,
        // Where the page returns the payer once paid, and only then: shown before, it would
        // let a payer open the merchant's success page without paying.
        "redirect_url": order
            .redirect_url
            .as_ref()
            .filter(|_| order.status == OrderStatus::Completed),
        "cancel_url": order.cancel_url,
        "hosted_url": links.hosted(&order.id),
        "qr_code_url": order.payment.as_ref().map(|_| links.qr(&order.id)),
        "events_url": links.events(&order.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_adds_up_to_the_amount_once_part_was_refunded() {
        let mut o = crate::testing::order(&OrgId::generate(), false, Timestamp::now());
        let mut p = crate::testing::payment(
            "8453:native",
            25_000_000,
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        );
        // 10 paid and refunded, then 15: 25 arrived, 10 still due.
        p.received = Some(Amount::new(RawAmount::from_u128(25_000_000), 6));
        p.remaining = Some(Amount::new(RawAmount::from_u128(10_000_000), 6));
        o.payment = Some(p.clone());
        let shown = progress(&o, &p);
        assert_eq!(shown["received"]["raw"], "15000000", "{shown}");
        assert_eq!(shown["remaining"]["raw"], "10000000", "{shown}");
        assert_eq!(shown["percent"], 60.0, "{shown}");
        // Paid in full: everything that arrived.
        p.remaining = None;
        let shown = progress(&o, &p);
        assert_eq!(shown["received"]["raw"], "25000000", "{shown}");
        assert_eq!(shown["percent"], 100.0, "{shown}");
    }

    /// The merchant's success page is in the view only once the order is COMPLETED: a payer
    /// reading the view of an unpaid (or expired, or cancelled) order does not learn it.
    #[test]
    fn the_success_page_is_shown_only_once_paid() {
        let mut o = crate::testing::order(&OrgId::generate(), false, Timestamp::now());
        o.redirect_url = Some("https://merchant.example/thanks".into());
        let merchant = Merchant {
            name: "A".into(),
            logo_url: None,
            theme_color: None,
            hide_footer: false,
        };
        let links = Links::new("https://pay.example", None);
        for status in OrderStatus::ALL {
            o.status = *status;
            let v = public_view(&o, &merchant, &[], &links, Timestamp::now());
            let shown = v["redirect_url"].as_str();
            if *status == OrderStatus::Completed {
                assert_eq!(shown, Some("https://merchant.example/thanks"));
            } else {
                assert_eq!(shown, None, "{status}");
            }
        }
    }
}
