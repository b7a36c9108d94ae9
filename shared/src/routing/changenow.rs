//! ChangeNOW v2 adapter: `GET /exchange/estimated-amount` (fixed-rate, reverse), `POST
//! /exchange`, `GET /exchange/by-id`, with the key in `x-changenow-api-key`. Amounts are
//! read from the JSON number text exactly; currencies map to ChangeNOW's ticker and network
//! through the registry.

use super::{Exchange, ExchangeStatus, Payout, RouteError, RouteQuote, Router};
use crate::model::Timestamp;
use crate::registry::{Currency, ExchangeTicker, registry};
use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Duration;

pub const BASE_URL: &str = "https://api.changenow.io/v2";

pub struct ChangeNow {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl ChangeNow {
    pub fn new(base_url: &str, api_key: impl Into<String>, timeout: Duration) -> Self {
        Self {
            http: crate::net::provider_client(timeout),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, RouteError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                RouteError::Timeout
            } else {
                RouteError::Unreachable(crate::net::error_text(e))
            }
        };
        let resp = req
            .header("x-changenow-api-key", &self.api_key)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(transport)?.to_vec();
        match status {
            200..=299 => Ok(body),
            429 => Err(RouteError::RateLimited),
            400..=499 => Err(refusal(status, &body)),
            s => Err(RouteError::Upstream(s)),
        }
    }
}

/// ChangeNOW's error body: `{"error": "out_of_range", "message": "…"}`.
fn refusal(status: u16, body: &[u8]) -> RouteError {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        message: Option<String>,
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|b| b.error.clone())
        .unwrap_or_else(|| status.to_string());
    let message = parsed.and_then(|b| b.message).unwrap_or_default();
    match code.as_str() {
        "out_of_range" | "deposit_too_small" => RouteError::OutOfRange(message),
        "pair_is_inactive" | "fixed_rate_not_enabled" => RouteError::PairInactive(message),
        _ => RouteError::Rejected { code, message },
    }
}

fn ticker(c: &Currency) -> Result<ExchangeTicker, RouteError> {
    registry()
        .chain(c.chain_id)
        .ok()
        .and_then(|chain| chain.token(c))
        .and_then(|t| t.exchange.clone())
        .ok_or_else(|| RouteError::Unsupported(c.id.clone()))
}

fn number(raw: Option<&RawValue>, what: &str) -> Result<Decimal, RouteError> {
    let text = raw
        .map(RawValue::get)
        .ok_or_else(|| RouteError::Malformed(format!("{what} is missing")))?;
    let text = text.trim_matches('"');
    crate::model::exact_decimal(text)
        .filter(|d| d.is_sign_positive() && !d.is_zero())
        .ok_or_else(|| RouteError::Malformed(format!("{what} {text} is not a positive number")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EstimateBody<'a> {
    #[serde(borrow)]
    from_amount: Option<&'a RawValue>,
    #[serde(borrow)]
    to_amount: Option<&'a RawValue>,
    rate_id: Option<String>,
    valid_until: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeBody<'a> {
    id: Option<String>,
    payin_address: Option<String>,
    #[serde(borrow)]
    from_amount: Option<&'a RawValue>,
    #[serde(borrow)]
    to_amount: Option<&'a RawValue>,
}

#[async_trait]
impl Router for ChangeNow {
    async fn estimate_reverse(
        &self,
        from: &Currency,
        to: &Currency,
        to_amount: Decimal,
    ) -> Result<RouteQuote, RouteError> {
        let (f, t) = (ticker(from)?, ticker(to)?);
        let amount = to_amount.normalize().to_string();
        let req = self
            .http
            .get(format!("{}/exchange/estimated-amount", self.base_url))
            .query(&[
                ("fromCurrency", f.ticker.as_str()),
                ("toCurrency", t.ticker.as_str()),
                ("fromNetwork", f.network.as_str()),
                ("toNetwork", t.network.as_str()),
                ("toAmount", amount.as_str()),
                ("flow", "fixed-rate"),
                ("type", "reverse"),
            ]);
        let body = self.send(req).await?;
        let e: EstimateBody =
            serde_json::from_slice(&body).map_err(|e| RouteError::Malformed(e.to_string()))?;
        // A fixed rate is only held under its rate id, until its deadline.
        let valid_until = e
            .valid_until
            .map(|v| {
                Timestamp::parse(&v)
                    .map_err(|_| RouteError::Malformed(format!("validUntil {v:?} is not a time")))
            })
            .transpose()?;
        Ok(RouteQuote {
            from_amount: number(e.from_amount, "fromAmount")?,
            to_amount: number(e.to_amount, "toAmount")?,
            rate_id: e
                .rate_id
                .filter(|r| !r.is_empty())
                .ok_or_else(|| RouteError::Malformed("rateId is missing".into()))?,
            valid_until,
        })
    }

    async fn create_reverse(
        &self,
        from: &Currency,
        to: &Currency,
        quote: &RouteQuote,
        payout_address: &str,
        refund_address: Option<&str>,
    ) -> Result<Exchange, RouteError> {
        let (f, t) = (ticker(from)?, ticker(to)?);
        let req = self
            .http
            .post(format!("{}/exchange", self.base_url))
            .json(&serde_json::json!({
                "fromCurrency": f.ticker,
                "toCurrency": t.ticker,
                "fromNetwork": f.network,
                "toNetwork": t.network,
                "fromAmount": "",
                "toAmount": quote.to_amount.normalize().to_string(),
                "address": payout_address,
                "refundAddress": refund_address.unwrap_or_default(),
                "flow": "fixed-rate",
                "type": "reverse",
                "rateId": quote.rate_id,
            }));
        let body = self.send(req).await?;
        let x: ExchangeBody =
            serde_json::from_slice(&body).map_err(|e| RouteError::Malformed(e.to_string()))?;
        Ok(Exchange {
            id: x
                .id
                .filter(|i| !i.is_empty())
                .ok_or_else(|| RouteError::Malformed("id is missing".into()))?,
            payin_address: x
                .payin_address
                .filter(|a| !a.is_empty())
                .ok_or_else(|| RouteError::Malformed("payinAddress is missing".into()))?,
            from_amount: number(x.from_amount, "fromAmount")?,
            to_amount: number(x.to_amount, "toAmount")?,
        })
    }

    async fn status(&self, exchange_id: &str) -> Result<ExchangeStatus, RouteError> {
        let req = self
            .http
            .get(format!("{}/exchange/by-id", self.base_url))
            .query(&[("id", exchange_id)]);
        let body = self.send(req).await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct StatusBody<'a> {
            status: Option<String>,
            payout_address: Option<String>,
            #[serde(borrow)]
            amount_to: Option<&'a RawValue>,
        }
        let s: StatusBody =
            serde_json::from_slice(&body).map_err(|e| RouteError::Malformed(e.to_string()))?;
        Ok(match s.status.as_deref() {
            Some("new" | "waiting" | "confirming" | "verifying") => ExchangeStatus::AwaitingDeposit,
            Some("exchanging" | "sending") => ExchangeStatus::InProgress,
            // Finished says what was paid out and where, for the order to check.
            Some("finished") => ExchangeStatus::Finished(Payout {
                address: s
                    .payout_address
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| RouteError::Malformed("payoutAddress is missing".into()))?,
                amount: number(s.amount_to, "amountTo")?,
            }),
            Some("refunded") => ExchangeStatus::Refunded,
            Some("failed") => ExchangeStatus::Failed,
            Some("expired" | "overdue") => ExchangeStatus::Expired,
            other => {
                return Err(RouteError::Malformed(format!(
                    "unknown exchange status {other:?}"
                )));
            }
        })
    }
}
