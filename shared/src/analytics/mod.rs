//! Analytics: counters of what happened to an organization's orders, per mode and per UTC
//! hour of the orders' creation, grown as events arrive (`aggregate-analytics`) and summed
//! by `GET /analytics` ([`report`]), which so reads one record per active hour and never
//! the orders.
//!
//! Every number is filed under the hour the order was *created* (a cohort): the orders a
//! report counts are the orders created in its range, and what became of them. So a
//! conversion rate is never above 100 %, and a day's paid count can still grow while its
//! orders are open (a payment an hour after creation counts on the creation day).
//!
//! Which event moves which counter, each at most once per order (a contribution carries a
//! marker `<order id>#<fact>` that the store applies once ever, in the same atomic write as
//! the addition — so a redelivered event, or a second `order.awaiting_payment` after a
//! reorg, changes nothing):
//!
//! | event | fact | counters |
//! |---|---|---|
//! | `order.created` | `created` | `created` +1 |
//! | any order event whose order has a USD value | `valued` | `valued` +1, `created_usd_cents` + value |
//! | `order.completed` | `paid` | `paid` +1, `paid_usd_cents` + value, `pay_seconds` + (completion − creation), per payer currency |
//! | `order.expired` | `expired` | `expired` +1 |
//! | `order.completed` of an order that had expired (`expired_at`) | `unexpired` | `expired` −1 |
//! | `order.cancelled` | `cancelled` | `cancelled` +1 |
//!
//! The USD value is the one locked for the order ([`usd_cents`]): its price when priced in
//! USD (known at creation), else its amount at the USD rate locked by payment details (known
//! from `order.awaiting_payment` on). An order never given payment details and not priced in
//! USD has no value: it counts as created but adds no amount.
//!
//! Paid means COMPLETED. A partial payment that never completes is not paid; a payment
//! after expiry (`paid_late`) leaves the order EXPIRED and counts as expired; an order that
//! expired and was then completed by a payment mined before its expiry counts as paid, not
//! expired; a refund after completion does not undo the paid count.

pub mod report;

use crate::model::{Event, EventType, Fulfillment, KeyMode, OrgId, Timestamp};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Counter name → value. Names are [`counter`]'s.
pub type Counters = BTreeMap<String, i64>;

/// The counters' names.
pub mod counter {
    pub const CREATED: &str = "created";
    /// Orders with a USD value, and the sum of their values (cents).
    pub const VALUED: &str = "valued";
    pub const CREATED_USD: &str = "created_usd_cents";
    pub const PAID: &str = "paid";
    pub const PAID_USD: &str = "paid_usd_cents";
    /// Seconds from creation to completion, summed over paid orders.
    pub const PAY_SECONDS: &str = "pay_seconds";
    pub const EXPIRED: &str = "expired";
    pub const CANCELLED: &str = "cancelled";

    /// Paid orders the payer paid in `currency` (`<chain_id>:<address|native>`).
    pub fn paid_in(currency: &str) -> String {
        format!("{PAID}:{currency}")
    }

    /// Their USD value (cents).
    pub fn paid_usd_in(currency: &str) -> String {
        format!("{PAID_USD}:{currency}")
    }

    /// The currency of a per-currency counter name, and whether it is the USD one.
    pub fn per_currency(name: &str) -> Option<(&str, bool)> {
        if let Some(c) = name.strip_prefix("paid_usd_cents:") {
            Some((c, true))
        } else {
            name.strip_prefix("paid:").map(|c| (c, false))
        }
    }
}

/// A stored counter as an `i64`: a sum past its range (huge orders, added up by a store
/// that does not stop at 2^63) reads as the nearest `i64`, not as a failure.
pub fn counter_value(v: f64) -> i64 {
    // `as` saturates at the bounds (and reads NaN as 0).
    v as i64
}

/// A UTC hour: hours since the Unix epoch.
pub fn hour_of(t: Timestamp) -> i64 {
    t.unix().div_euclid(3600)
}

/// An addition to one hour's counters, applied once ever under its marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    /// `<order id>#<fact>`: a second contribution with the same marker is ignored.
    pub marker: String,
    pub organization_id: OrgId,
    pub mode: KeyMode,
    /// The UTC hour the order was created in.
    pub hour: i64,
    pub counters: Counters,
}

/// One hour's counters, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bucket {
    pub hour: i64,
    pub counters: Counters,
}

/// An event that names an order but does not carry one the aggregator can read.
#[derive(Debug, thiserror::Error)]
#[error("event {event} does not carry a readable order: {reason}")]
pub struct Unreadable {
    pub event: String,
    pub reason: String,
}

/// What the aggregator reads of an event's order: the fields below, each as the API shows
/// it (anything else in the snapshot is ignored, so the order may grow fields freely).
#[derive(Debug, Deserialize)]
struct OrderView {
    id: String,
    created_at: Timestamp,
    #[serde(default)]
    fulfillment: Fulfillment,
    #[serde(default)]
    payment: Option<PaymentView>,
    #[serde(default)]
    expired_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize)]
struct PaymentView {
    input: InputView,
}

#[derive(Debug, Deserialize)]
struct InputView {
    currency: CurrencyView,
}

#[derive(Debug, Deserialize)]
struct CurrencyView {
    id: String,
}

/// What `event` adds to the counters (nothing for events not about an order).
pub fn contributions(event: &Event) -> Result<Vec<Contribution>, Unreadable> {
    if event.order_id.is_none() {
        return Ok(Vec::new());
    }
    let order: OrderView =
        serde_json::from_value(event.data.object.clone()).map_err(|e| Unreadable {
            event: event.id.to_string(),
            reason: e.to_string(),
        })?;
    let value = usd_cents(&order.fulfillment);
    let one = |fact: &str, counters: Vec<(String, i64)>| Contribution {
        marker: format!("{}#{fact}", order.id),
        organization_id: event.organization_id.clone(),
        mode: KeyMode::of(event.livemode),
        hour: hour_of(order.created_at),
        counters: counters.into_iter().collect(),
    };
    let mut out = Vec::new();
    match event.event_type {
        EventType::OrderCreated => out.push(one("created", vec![(counter::CREATED.into(), 1)])),
        EventType::OrderCompleted => {
            let secs = order.created_at.seconds_until(event.created_at).max(0);
            let mut c = vec![
                (counter::PAID.into(), 1),
                (counter::PAY_SECONDS.into(), secs),
            ];
            // What the payer paid in; the order's own currency if no payment says.
            let currency = order
                .payment
                .as_ref()
                .map(|p| p.input.currency.id.clone())
                .or_else(|| order.fulfillment.asset.as_ref().map(|a| a.id.clone()));
            if let Some(cur) = &currency {
                c.push((counter::paid_in(cur), 1));
            }
            if let Some(v) = value {
                c.push((counter::PAID_USD.into(), v));
                if let Some(cur) = &currency {
                    c.push((counter::paid_usd_in(cur), v));
                }
            }
            out.push(one("paid", c));
            // Expired first, then paid by a transfer mined in time but found after the
            // expiry: its `expired` count is taken back, once (the order is paid, not
            // expired; its `order.expired` counted it, in whichever order the two come).
            if order.expired_at.is_some() {
                out.push(one("unexpired", vec![(counter::EXPIRED.into(), -1)]));
            }
        }
        EventType::OrderExpired => out.push(one("expired", vec![(counter::EXPIRED.into(), 1)])),
        EventType::OrderCancelled => {
            out.push(one("cancelled", vec![(counter::CANCELLED.into(), 1)]))
        }
        _ => {}
    }
    if let Some(v) = value {
        out.push(one(
            "valued",
            vec![
                (counter::VALUED.into(), 1),
                (counter::CREATED_USD.into(), v),
            ],
        ));
    }
    Ok(out)
}

/// An order's USD value at lock time, in cents (half up): its price when priced in USD,
/// else its amount at the USD rate payment details locked; `None` before either is known.
pub fn usd_cents(f: &Fulfillment) -> Option<i64> {
    let usd = match (f.fiat_unit.as_deref(), f.fiat_amount.as_deref()) {
        (Some(unit), Some(amount)) if unit.eq_ignore_ascii_case("USD") => {
            Decimal::from_str(amount).ok()?
        }
        _ => {
            let amount = Decimal::from_str(&f.amount.as_ref()?.ui).ok()?;
            let rate = Decimal::from_str(f.rate_usd.as_deref()?).ok()?;
            amount.checked_mul(rate)?
        }
    };
    usd.checked_mul(Decimal::ONE_HUNDRED)?
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
        .filter(|c| *c >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::testing::order as sample_order;

    fn event(order: &PayOrder, t: EventType, at: Timestamp) -> Event {
        Event::for_order(order, t, at)
    }

    fn fiat(order: &mut PayOrder, usd: &str) {
        order.fulfillment.fiat_unit = Some("USD".into());
        order.fulfillment.fiat_amount = Some(usd.into());
        order.fulfillment.amount = None;
        order.fulfillment.rate_usd = None;
    }

    fn get(c: &Contribution, name: &str) -> Option<i64> {
        c.counters.get(name).copied()
    }

    #[test]
    fn created_counts_the_order_and_a_usd_price_values_it_at_once() {
        let now = Timestamp::parse("2026-12-01T23:30:00Z").unwrap();
        let mut o = sample_order(&OrgId::generate(), false, now);
        fiat(&mut o, "49.99");
        let cs = contributions(&event(&o, EventType::OrderCreated, now)).unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].marker, format!("{}#created", o.id));
        assert_eq!(get(&cs[0], counter::CREATED), Some(1));
        assert_eq!(cs[0].hour, now.unix() / 3600);
        assert_eq!(cs[0].mode, KeyMode::Test);
        assert_eq!(cs[1].marker, format!("{}#valued", o.id));
        assert_eq!(get(&cs[1], counter::VALUED), Some(1));
        assert_eq!(get(&cs[1], counter::CREATED_USD), Some(4999));
    }

    #[test]
    fn a_crypto_priced_order_is_valued_once_its_rate_is_locked() {
        let now = Timestamp::now();
        let o = sample_order(&OrgId::generate(), true, now);
        assert_eq!(
            usd_cents(&o.fulfillment),
            None,
            "an amount without a locked rate"
        );
        let mut unlocked = o.clone();
        unlocked.fulfillment.fiat_unit = None;
        unlocked.fulfillment.rate_usd = None;
        unlocked.fulfillment.amount = Some(Amount::new(RawAmount::from_u128(10_500_000), 6));
        let cs = contributions(&event(&unlocked, EventType::OrderCreated, now)).unwrap();
        assert_eq!(cs.len(), 1, "no value yet: created only");
        let mut locked = unlocked.clone();
        locked.fulfillment.rate_usd = Some("0.999".into());
        // 10.5 × 0.999 = 10.4895 → 10.49
        assert_eq!(usd_cents(&locked.fulfillment), Some(1049));
        let cs = contributions(&event(&locked, EventType::OrderAwaitingPayment, now)).unwrap();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].marker, format!("{}#valued", o.id));
        assert_eq!(get(&cs[0], counter::CREATED_USD), Some(1049));
    }

    #[test]
    fn completion_counts_paid_amount_time_and_payer_currency() {
        let created = Timestamp::parse("2026-12-01T10:00:00Z").unwrap();
        let mut o = sample_order(&OrgId::generate(), false, created);
        fiat(&mut o, "20");
        let done = created.plus_seconds(425);
        let cs = contributions(&event(&o, EventType::OrderCompleted, done)).unwrap();
        let paid = &cs[0];
        assert_eq!(paid.marker, format!("{}#paid", o.id));
        assert_eq!(
            paid.hour,
            created.unix() / 3600,
            "filed under the creation hour"
        );
        assert_eq!(get(paid, counter::PAID), Some(1));
        assert_eq!(get(paid, counter::PAID_USD), Some(2000));
        assert_eq!(get(paid, counter::PAY_SECONDS), Some(425));
        // No payment in the sample: the order's own currency (fiat() left the asset).
        let cur = o.currency_id().unwrap();
        assert_eq!(get(paid, &counter::paid_in(cur)), Some(1));
        assert_eq!(get(paid, &counter::paid_usd_in(cur)), Some(2000));
        // The value rides along (and is applied once, whichever event brings it first).
        assert_eq!(cs[1].marker, format!("{}#valued", o.id));
    }

    #[test]
    fn expiry_cancel_and_other_events() {
        let now = Timestamp::now();
        let mut o = sample_order(&OrgId::generate(), false, now);
        o.fulfillment.rate_usd = None;
        o.fulfillment.fiat_unit = None;
        let exp = contributions(&event(&o, EventType::OrderExpired, now)).unwrap();
        assert_eq!(get(&exp[0], counter::EXPIRED), Some(1));
        let can = contributions(&event(&o, EventType::OrderCancelled, now)).unwrap();
        assert_eq!(get(&can[0], counter::CANCELLED), Some(1));
        // Partial and late payments, confirmations: no counter of their own.
        for t in [
            EventType::OrderPartialPayment,
            EventType::OrderPaymentLate,
            EventType::OrderConfirmed,
        ] {
            let cs = contributions(&event(&o, t, now)).unwrap();
            assert!(cs.iter().all(|c| c.marker.ends_with("#valued")), "{t}");
        }
    }

    #[test]
    fn events_not_about_orders_add_nothing_and_garbage_is_unreadable() {
        let now = Timestamp::now();
        let o = sample_order(&OrgId::generate(), false, now);
        let mut e = event(&o, EventType::OrderCreated, now);
        e.data.object = serde_json::json!({"id": "x", "created_at": "yesterday"});
        assert!(contributions(&e).is_err());
        e.order_id = None;
        assert!(contributions(&e).unwrap().is_empty());
    }

    #[test]
    fn usd_value_rounds_half_up_to_cents() {
        let now = Timestamp::now();
        let mut o = sample_order(&OrgId::generate(), false, now);
        fiat(&mut o, "0.005");
        assert_eq!(usd_cents(&o.fulfillment), Some(1));
        fiat(&mut o, "0.004");
        assert_eq!(usd_cents(&o.fulfillment), Some(0));
        o.fulfillment.fiat_unit = Some("EUR".into());
        assert_eq!(
            usd_cents(&o.fulfillment),
            None,
            "a non-USD price needs a locked rate"
        );
    }
}
