//! `GET /analytics`: which local days a request covers, which UTC hours that reads, and the
//! report summed from those hours' counters.
//!
//! Days are calendar days in the caller's IANA time zone (bundled tz database, so daylight
//! saving is followed). Counters are kept per UTC hour and an hour is filed under the local
//! day it starts in: exact for every zone whose offset is a whole number of hours; in zones
//! with half- or quarter-hour offsets (Asia/Kolkata, Asia/Kathmandu, …) orders from the last
//! 30 or 45 minutes of an hour that straddles midnight land on the neighbouring day.

use super::{Bucket, Counters, counter};
use crate::http::ApiError;
use crate::model::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The longest range a report covers, in days.
pub const MAX_DAYS: usize = 366;

/// How the time series is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    /// ISO weeks, Monday to Sunday.
    Week,
}

/// A checked report request: the local days it covers, in one time zone.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub period: String,
    pub group_by: GroupBy,
    pub timezone: String,
    tz: TimeZone,
    /// Every local day covered, oldest first (1 to [`MAX_DAYS`]).
    days: Vec<Date>,
}

/// The query parameters as sent (each optional).
#[derive(Debug, Clone, Default)]
pub struct ReportParams<'a> {
    pub period: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub group_by: Option<&'a str>,
    pub timezone: Option<&'a str>,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("INVALID_PARAMETER", param, message)
}

fn parse_date(param: &str, v: &str) -> Result<Date, ApiError> {
    // Exactly YYYY-MM-DD.
    let ok = v.len() == 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-';
    ok.then(|| v.parse::<Date>().ok())
        .flatten()
        .ok_or_else(|| bad(param, format!("{param} must be a date such as 2026-01-31")))
}

impl ReportRequest {
    /// Checks the parameters; `now` fixes "today" for the rolling periods.
    pub fn parse(p: ReportParams<'_>, now: Timestamp) -> Result<Self, ApiError> {
        let timezone = p.timezone.unwrap_or("UTC").to_owned();
        let tz = (timezone.len() <= 64)
            .then(|| TimeZone::get(&timezone).ok())
            .flatten()
            .ok_or_else(|| {
                bad(
                    "timezone",
                    "timezone must be an IANA time zone name such as UTC or Europe/Berlin",
                )
            })?;
        let group_by = match p.group_by.unwrap_or("day") {
            "day" => GroupBy::Day,
            "week" => GroupBy::Week,
            _ => return Err(bad("group_by", "group_by must be day or week")),
        };
        let period = p.period.unwrap_or("30d").to_owned();
        let (from, to) = match period.as_str() {
            "7d" | "30d" | "90d" => {
                for (name, v) in [("from", p.from), ("to", p.to)] {
                    if v.is_some() {
                        return Err(bad(name, format!("{name} is read only with period=custom")));
                    }
                }
                let n: i64 = period.trim_end_matches('d').parse().expect("listed above");
                let today = local_date(&tz, now.unix());
                let from = today
                    .checked_sub(jiff::Span::new().days(n - 1))
                    .map_err(|_| bad("period", "the period starts before the calendar does"))?;
                (from, today)
            }
            "custom" => {
                fn need<'v>(name: &str, v: Option<&'v str>) -> Result<&'v str, ApiError> {
                    v.ok_or_else(|| bad(name, format!("{name} is required with period=custom")))
                }
                let from = parse_date("from", need("from", p.from)?)?;
                let to = parse_date("to", need("to", p.to)?)?;
                if from > to {
                    return Err(bad("from", "from must not be after to"));
                }
                (from, to)
            }
            _ => return Err(bad("period", "period must be 7d, 30d, 90d or custom")),
        };
        let mut days = vec![from];
        while *days.last().expect("not empty") < to {
            if days.len() == MAX_DAYS {
                return Err(bad(
                    "to",
                    format!("a report covers at most {MAX_DAYS} days"),
                ));
            }
            let next = days
                .last()
                .expect("not empty")
                .tomorrow()
                .map_err(|_| bad("to", "to is past the end of the calendar"))?;
            days.push(next);
        }
        Ok(Self {
            period,
            group_by,
            timezone,
            tz,
            days,
        })
    }

    pub fn from(&self) -> Date {
        self.days[0]
    }

    pub fn to(&self) -> Date {
        *self.days.last().expect("at least one day")
    }

    /// The UTC hours (first, last) whose counters the report reads.
    pub fn hours(&self) -> (i64, i64) {
        let start = start_of_day(&self.tz, self.from());
        let end = self
            .to()
            .tomorrow()
            .ok()
            .map(|d| start_of_day(&self.tz, d))
            .unwrap_or(start + (self.days.len() as i64) * 86_400);
        (start.div_euclid(3600), (end - 1).div_euclid(3600))
    }
}

/// The local calendar day of `unix` seconds in `tz`.
fn local_date(tz: &TimeZone, unix: i64) -> Date {
    jiff::Timestamp::from_second(unix)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
        .date()
}

/// When local day `d` starts in `tz` (its first instant, if midnight is skipped).
fn start_of_day(tz: &TimeZone, d: Date) -> i64 {
    d.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_second())
        .unwrap_or(0)
}

/// Totals of a range (`metrics`) or of one day or week (a `time_series` point).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Metrics {
    /// Orders created.
    pub orders_created: i64,
    /// Of those, orders that reached COMPLETED.
    pub orders_paid: i64,
    pub orders_expired: i64,
    pub orders_cancelled: i64,
    /// USD value of the orders created (each at the value locked for it), e.g. `"1534.50"`.
    pub amount_created_usd: String,
    /// USD value of the orders paid.
    pub amount_paid_usd: String,
    /// `orders_paid / orders_created`, in percent with one decimal; null without orders.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub conversion_rate: Option<serde_json::Number>,
    /// Average USD value of an order with a known value; null without one.
    pub average_amount_usd: Option<String>,
    /// Average seconds from creation to completion of the paid orders; null without one.
    pub average_time_to_pay_seconds: Option<i64>,
}

/// One day or week of the time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Point {
    /// The local day, or the Monday that starts the week (`YYYY-MM-DD`).
    pub date: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// Paid orders by what the payer paid in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrencyBreakdown {
    /// `<chain_id>:<address|native>`.
    pub currency: String,
    pub chain_id: u64,
    pub symbol: Option<String>,
    pub orders_paid: i64,
    pub amount_paid_usd: String,
}

/// Paid orders by the chain the payer paid on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainBreakdown {
    pub chain_id: u64,
    pub orders_paid: i64,
    pub amount_paid_usd: String,
}

/// The answer of `GET /analytics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    /// Always `analytics`.
    pub object: &'static str,
    pub livemode: bool,
    /// `7d`, `30d`, `90d` or `custom`.
    pub period: String,
    /// First local day covered (`YYYY-MM-DD`).
    pub from: String,
    /// Last local day covered, inclusive.
    pub to: String,
    pub timezone: String,
    /// `day` or `week`.
    pub group_by: &'static str,
    pub metrics: Metrics,
    /// Paid orders per payer currency, most orders first.
    pub currencies: Vec<CurrencyBreakdown>,
    /// Paid orders per chain, most orders first.
    pub chains: Vec<ChainBreakdown>,
    /// Every day (or week) of the range, oldest first, empty ones included.
    pub time_series: Vec<Point>,
}

fn usd(cents: i64) -> String {
    Decimal::new(cents, 2).to_string()
}

/// Counters add up saturating: a range of huge orders reads as the largest figure, never
/// as a negative one or a failure.
fn add(into: &mut Counters, from: &Counters) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_default();
        *e = e.saturating_add(*v);
    }
}

fn metrics(c: &Counters) -> Metrics {
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    let (created, paid, valued) = (
        get(counter::CREATED),
        get(counter::PAID),
        get(counter::VALUED),
    );
    let conversion = (created > 0).then(|| {
        let rate = (Decimal::from(paid) * Decimal::ONE_HUNDRED / Decimal::from(created))
            .round_dp_with_strategy(1, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        serde_json::Number::from_f64(rate.to_f64().unwrap_or(0.0)).expect("finite")
    });
    Metrics {
        orders_created: created,
        orders_paid: paid,
        orders_expired: get(counter::EXPIRED),
        orders_cancelled: get(counter::CANCELLED),
        amount_created_usd: usd(get(counter::CREATED_USD)),
        amount_paid_usd: usd(get(counter::PAID_USD)),
        conversion_rate: conversion,
        average_amount_usd: (valued > 0).then(|| {
            (Decimal::new(get(counter::CREATED_USD), 2) / Decimal::from(valued))
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                .to_string()
        }),
        average_time_to_pay_seconds: (paid > 0).then(|| {
            let s = get(counter::PAY_SECONDS);
            s.saturating_add(paid / 2) / paid
        }),
    }
}

/// The report of `req` from the buckets of its hours ([`ReportRequest::hours`]).
pub fn report(req: &ReportRequest, livemode: bool, buckets: &[Bucket]) -> Report {
    // Each local day's index in the series (a week's points are keyed by their Monday).
    let key_of = |d: Date| match req.group_by {
        GroupBy::Day => d,
        GroupBy::Week => d
            .checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset())))
            .unwrap_or(d),
    };
    let mut series: BTreeMap<Date, Counters> = BTreeMap::new();
    let mut day_index: HashMap<Date, Date> = HashMap::new();
    for d in &req.days {
        let k = key_of(*d);
        series.entry(k).or_default();
        day_index.insert(*d, k);
    }
    let mut total = Counters::new();
    for b in buckets {
        let day = local_date(&req.tz, b.hour * 3600);
        let Some(k) = day_index.get(&day) else {
            continue;
        };
        add(
            series.get_mut(k).expect("every key has a point"),
            &b.counters,
        );
        add(&mut total, &b.counters);
    }
    let mut currencies: Vec<CurrencyBreakdown> = Vec::new();
    let mut per_currency: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (name, v) in &total {
        if let Some((cur, is_usd)) = counter::per_currency(name) {
            let e = per_currency.entry(cur).or_default();
            if is_usd {
                e.1 = e.1.saturating_add(*v)
            } else {
                e.0 = e.0.saturating_add(*v)
            }
        }
    }
    let mut per_chain: BTreeMap<u64, (i64, i64)> = BTreeMap::new();
    for (cur, (n, cents)) in per_currency {
        let chain_id = cur
            .split(':')
            .next()
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0);
        let e = per_chain.entry(chain_id).or_default();
        e.0 = e.0.saturating_add(n);
        e.1 = e.1.saturating_add(cents);
        currencies.push(CurrencyBreakdown {
            currency: cur.to_owned(),
            chain_id,
            symbol: crate::registry::registry()
                .currency_by_id(cur)
                .ok()
                .map(|c| c.symbol.clone()),
            orders_paid: n,
            amount_paid_usd: usd(cents),
        });
    }
    currencies.sort_by_key(|c| std::cmp::Reverse(c.orders_paid));
    let mut chains: Vec<ChainBreakdown> = per_chain
        .into_iter()
        .map(|(chain_id, (n, cents))| ChainBreakdown {
            chain_id,
            orders_paid: n,
            amount_paid_usd: usd(cents),
        })
        .collect();
    chains.sort_by_key(|c| std::cmp::Reverse(c.orders_paid));
    Report {
        object: "analytics",
        livemode,
        period: req.period.clone(),
        from: req.from().to_string(),
        to: req.to().to_string(),
        timezone: req.timezone.clone(),
        group_by: match req.group_by {
            GroupBy::Day => "day",
            GroupBy::Week => "week",
        },
        metrics: metrics(&total),
        currencies,
        chains,
        time_series: series
            .into_iter()
            .map(|(d, c)| Point {
                date: d.to_string(),
                metrics: metrics(&c),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &[(&str, &'a str)]) -> ReportParams<'a> {
        let mut p = ReportParams::default();
        for (k, v) in pairs {
            match *k {
                "period" => p.period = Some(v),
                "from" => p.from = Some(v),
                "to" => p.to = Some(v),
                "group_by" => p.group_by = Some(v),
                "timezone" => p.timezone = Some(v),
                _ => unreachable!(),
            }
        }
        p
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-12-02T23:30:00Z").unwrap()
    }

    fn param_of(pairs: &[(&str, &str)]) -> String {
        let e = ReportRequest::parse(params(pairs), now()).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.code, "INVALID_PARAMETER");
        e.param.clone().unwrap_or_default()
    }

    #[test]
    fn every_bad_parameter_is_named() {
        assert_eq!(param_of(&[("period", "8d")]), "period");
        assert_eq!(param_of(&[("group_by", "month")]), "group_by");
        assert_eq!(param_of(&[("timezone", "Mars/Olympus")]), "timezone");
        assert_eq!(
            param_of(&[("period", "custom"), ("to", "2026-01-01")]),
            "from"
        );
        assert_eq!(
            param_of(&[("period", "custom"), ("from", "2026-01-01")]),
            "to"
        );
        assert_eq!(
            param_of(&[
                ("period", "custom"),
                ("from", "2026-02-01"),
                ("to", "2026-01-01")
            ]),
            "from"
        );
        assert_eq!(
            param_of(&[
                ("period", "custom"),
                ("from", "2026-1-1"),
                ("to", "2026-01-02")
            ]),
            "from"
        );
        assert_eq!(
            param_of(&[
                ("period", "custom"),
                ("from", "2025-01-01"),
                ("to", "2026-01-02")
            ]),
            "to"
        );
        assert_eq!(
            param_of(&[("period", "7d"), ("from", "2026-01-01")]),
            "from"
        );
    }

    #[test]
    fn rolling_periods_end_today_in_the_time_zone() {
        let r = ReportRequest::parse(params(&[("period", "7d")]), now()).unwrap();
        assert_eq!(
            (r.from().to_string(), r.to().to_string()),
            ("2026-11-26".into(), "2026-12-02".into())
        );
        let (a, b) = r.hours();
        assert_eq!(b - a + 1, 7 * 24);
        // 23:30 UTC is already tomorrow in Berlin.
        let r = ReportRequest::parse(
            params(&[("period", "7d"), ("timezone", "Europe/Berlin")]),
            now(),
        )
        .unwrap();
        assert_eq!(r.to().to_string(), "2026-12-03");
        let (a, _) = r.hours();
        assert_eq!(
            a * 3600,
            Timestamp::parse("2026-11-26T23:00:00Z").unwrap().unix()
        );
        // A year of 366 days is fine; 367 is not.
        let r = ReportRequest::parse(
            params(&[
                ("period", "custom"),
                ("from", "2024-01-01"),
                ("to", "2024-12-31"),
            ]),
            now(),
        )
        .unwrap();
        assert_eq!(r.days.len(), 366);
    }

    fn bucket(at: &str, pairs: &[(&str, i64)]) -> Bucket {
        Bucket {
            hour: Timestamp::parse(at).unwrap().unix() / 3600,
            counters: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn huge_sums_saturate_instead_of_turning_negative() {
        let usdc = "84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e";
        let big = i64::MAX / 2 + 1;
        let hour = |at: &str| {
            bucket(
                at,
                &[
                    ("created", 1),
                    ("valued", 1),
                    ("created_usd_cents", big),
                    ("paid", 1),
                    ("paid_usd_cents", big),
                    ("pay_seconds", big),
                    (&format!("paid:{usdc}"), 1),
                    (&format!("paid_usd_cents:{usdc}"), big),
                ],
            )
        };
        let buckets = vec![hour("2026-11-30T10:00:00Z"), hour("2026-12-01T10:00:00Z")];
        let req = ReportRequest::parse(params(&[("period", "7d")]), now()).unwrap();
        let r = report(&req, false, &buckets);
        let most = usd(i64::MAX);
        assert_eq!(r.metrics.amount_created_usd, most);
        assert_eq!(r.metrics.amount_paid_usd, most);
        assert!(r.metrics.average_time_to_pay_seconds.unwrap() > 0);
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            !json.contains(":-") && !json.contains("\"-"),
            "a negative figure: {json}"
        );
    }

    #[test]
    fn sums_days_weeks_and_currencies() {
        let usdc = "84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e";
        let buckets = vec![
            bucket(
                "2026-11-30T10:00:00Z",
                &[("created", 2), ("valued", 2), ("created_usd_cents", 3050)],
            ),
            bucket(
                "2026-12-01T23:00:00Z",
                &[
                    ("created", 1),
                    ("valued", 1),
                    ("created_usd_cents", 1000),
                    ("paid", 1),
                    ("paid_usd_cents", 1000),
                    ("pay_seconds", 60),
                    (&format!("paid:{usdc}"), 1),
                    (&format!("paid_usd_cents:{usdc}"), 1000),
                ],
            ),
            // Outside the range: ignored.
            bucket("2026-11-01T00:00:00Z", &[("created", 5)]),
        ];
        let req = ReportRequest::parse(params(&[("period", "7d")]), now()).unwrap();
        let r = report(&req, false, &buckets);
        assert_eq!(r.metrics.orders_created, 3);
        assert_eq!(r.metrics.orders_paid, 1);
        assert_eq!(r.metrics.amount_created_usd, "40.50");
        assert_eq!(r.metrics.amount_paid_usd, "10.00");
        assert_eq!(
            r.metrics.conversion_rate,
            serde_json::Number::from_f64(33.3)
        );
        assert_eq!(r.metrics.average_amount_usd.as_deref(), Some("13.50"));
        assert_eq!(r.metrics.average_time_to_pay_seconds, Some(60));
        assert_eq!(r.time_series.len(), 7);
        let dec1 = r
            .time_series
            .iter()
            .find(|p| p.date == "2026-12-01")
            .unwrap();
        assert_eq!(dec1.metrics.orders_paid, 1);
        assert_eq!(r.currencies.len(), 1);
        assert_eq!(r.currencies[0].symbol.as_deref(), Some("USDC"));
        assert_eq!(r.chains[0].chain_id, 84532);

        // In Berlin the 23:00 UTC order is on December 2nd.
        let req = ReportRequest::parse(
            params(&[("period", "7d"), ("timezone", "Europe/Berlin")]),
            now(),
        )
        .unwrap();
        let r = report(&req, false, &buckets);
        let dec2 = r
            .time_series
            .iter()
            .find(|p| p.date == "2026-12-02")
            .unwrap();
        assert_eq!(dec2.metrics.orders_created, 1);

        // Weeks start on Monday (2026-11-30 is one); partial weeks count their days only.
        let req =
            ReportRequest::parse(params(&[("period", "7d"), ("group_by", "week")]), now()).unwrap();
        let r = report(&req, false, &buckets);
        let dates: Vec<_> = r.time_series.iter().map(|p| p.date.as_str()).collect();
        assert_eq!(dates, ["2026-11-23", "2026-11-30"]);
        assert_eq!(r.time_series[1].metrics.orders_created, 3);
        assert_eq!(r.time_series[0].metrics.conversion_rate, None);
    }
}
