//! The routing port: exchanging what the payer sends into what the destination receives.
//! The direct route needs no provider; [`changenow`] routes through ChangeNOW's reverse
//! exchange (the payout amount is fixed, the provider says what to send).

pub mod changenow;

use crate::model::{Address, ChainFamily, Timestamp};
use crate::registry::Currency;
use async_trait::async_trait;
use rust_decimal::Decimal;

/// A provider's fixed-rate offer: send `from_amount` to receive `to_amount`, at the rate
/// `rate_id` names, until `valid_until` (when the provider says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteQuote {
    pub from_amount: Decimal,
    pub to_amount: Decimal,
    pub rate_id: String,
    pub valid_until: Option<Timestamp>,
}

impl RouteQuote {
    /// The offer, if it pays out at least `wanted` and its rate is held for at least a
    /// minute after `now`: a provider's answer is checked against what was asked, never
    /// trusted to match it, and a rate about to lapse leaves the payer no time to pay.
    pub fn usable(self, wanted: Decimal, now: Timestamp) -> Result<Self, RouteError> {
        if self.to_amount < wanted {
            return Err(RouteError::Malformed(format!(
                "the estimate pays out {} where {wanted} was asked",
                self.to_amount
            )));
        }
        if let Some(until) = self.valid_until.filter(|u| *u <= now.plus_seconds(60)) {
            return Err(RouteError::Malformed(format!(
                "the rate is held only until {until}"
            )));
        }
        Ok(self)
    }
}

/// An exchange the provider opened: the payer sends `from_amount` to `payin_address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub id: String,
    pub payin_address: String,
    pub from_amount: Decimal,
    pub to_amount: Decimal,
}

impl Exchange {
    /// The exchange, if it pays out at least `wanted` and its pay-in address is an address
    /// of the payer's chain family (in its canonical form); else the provider's answer is
    /// malformed and nothing is handed to the payer.
    pub fn checked(mut self, wanted: Decimal, payer: ChainFamily) -> Result<Self, RouteError> {
        if self.to_amount < wanted {
            return Err(RouteError::Malformed(format!(
                "exchange {} pays out {} where {wanted} was asked",
                self.id, self.to_amount
            )));
        }
        let payin = Address::parse(payer, &self.payin_address).map_err(|e| {
            RouteError::Malformed(format!("payinAddress {:?}: {e}", self.payin_address))
        })?;
        self.payin_address = payin.to_string();
        Ok(self)
    }
}

/// What a finished exchange paid out, and where, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub address: String,
    pub amount: Decimal,
}

impl Payout {
    /// Whether this payout is at least `wanted`, sent to `recipient` (an address of
    /// `family`): only then has the destination been paid.
    pub fn pays(&self, family: ChainFamily, recipient: &str, wanted: Decimal) -> bool {
        self.amount >= wanted && Address::same(family, &self.address, recipient)
    }
}

/// Where an exchange is, in our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeStatus {
    /// Waiting for, or confirming, the payer's deposit.
    AwaitingDeposit,
    /// Exchanging or sending the payout.
    InProgress,
    /// Paid out, as [`Payout`] says.
    Finished(Payout),
    Refunded,
    Failed,
    /// The fixed-rate window passed without a deposit.
    Expired,
}

/// Why routing failed. Provider refusals are 422s to the caller; provider faults 502s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{0} cannot be exchanged by the provider")]
    Unsupported(String),
    #[error("the amount is outside the provider's limits: {0}")]
    OutOfRange(String),
    #[error("the provider does not exchange this pair now: {0}")]
    PairInactive(String),
    #[error("the provider refused the request ({code}): {message}")]
    Rejected { code: String, message: String },
    #[error("the provider is rate limiting us")]
    RateLimited,
    #[error("the provider answered {0}")]
    Upstream(u16),
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider is unreachable: {0}")]
    Unreachable(String),
    #[error("the provider's answer is malformed: {0}")]
    Malformed(String),
}

impl RouteError {
    /// Whether the provider said no (as opposed to failing to answer).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            RouteError::Unsupported(_)
                | RouteError::OutOfRange(_)
                | RouteError::PairInactive(_)
                | RouteError::Rejected { .. }
        )
    }
}

#[async_trait]
pub trait Router: Send + Sync {
    /// What to send of `from` so that `to_amount` of `to` arrives (fixed rate).
    async fn estimate_reverse(
        &self,
        from: &Currency,
        to: &Currency,
        to_amount: Decimal,
    ) -> Result<RouteQuote, RouteError>;
    /// Opens the exchange for a quote, paying out to `payout_address`.
    async fn create_reverse(
        &self,
        from: &Currency,
        to: &Currency,
        quote: &RouteQuote,
        payout_address: &str,
        refund_address: Option<&str>,
    ) -> Result<Exchange, RouteError>;
    async fn status(&self, exchange_id: &str) -> Result<ExchangeStatus, RouteError>;
}
