//! The payment pipeline, one stage per file, shared by every way a payment arrives
//! (submitted by hash, found by the deposit scan, simulated in test mode):
//!
//! - [`rules`]: pure matching, assessment, tallies and confirmation rules;
//! - [`verify`]: reading a transaction on its chain and checking it pays the order;
//! - [`record`]: writing a verified payment with its claims in one conditional update;
//! - [`confirm`]: confirmation checks up to the final status;
//! - [`scan`]: finding payments to waiting orders block by block;
//! - [`expire`]: expiring unpaid orders and re-queuing stalled confirmation checks;
//! - [`refunds`]: refunds the merchant sends, verified and confirmed like payments.

pub mod confirm;
pub mod expire;
pub mod record;
pub mod refunds;
pub mod rules;
pub mod scan;
pub mod verify;

#[cfg(test)]
mod tests;

pub use confirm::*;
pub use expire::*;
pub use record::*;
pub use refunds::*;
pub use rules::*;
pub use scan::*;
pub use verify::*;

use crate::chains::Chains;
use crate::queue::Queue;
use crate::store::Store;
use std::sync::Arc;

/// How many times a write is retried after another writer changed the order first.
const ATTEMPTS: usize = 4;

/// What the pipeline needs.
#[derive(Clone)]
pub struct Settler {
    pub store: Arc<dyn Store>,
    pub chains: Arc<Chains>,
    /// The confirmation-check queue.
    pub confirmations: Arc<dyn Queue>,
    /// First delay between confirmation checks, doubled after each (capped).
    pub check_delay_secs: u32,
    /// Longest delay between confirmation checks (SQS allows 900 s).
    pub max_check_delay_secs: u32,
}

impl Settler {
    /// How long an order may wait on a confirmation check without any write before the
    /// upkeep queues a new check: four times the longest delay between checks (so a live
    /// chain of checks is never doubled), and at least a minute.
    pub fn stale_after_secs(&self) -> u32 {
        self.max_check_delay_secs.saturating_mul(4).max(60)
    }
}
