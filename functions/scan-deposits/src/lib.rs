//! EventBridge schedule → one deposit scan of every chain with an RPC endpoint: transfers
//! to the deposit addresses of orders waiting for a payment are found without the payer
//! submitting a hash, and go through the same verification and recording as a submitted
//! one (see `payorders::payments::scan_chain`). Each chain keeps a cursor, so no block is
//! skipped or counted twice. Chains whose reader cannot scan (Solana, for now) are skipped.

use lambda_http::LambdaEvent;
use payorders::chains::ChainError;
use payorders::payments::{self, ScanError, ScanReport, Settler};
use payorders::*;
use serde_json::{Value, json};

/// How long before the invocation's deadline each chain's scan stops offering transfers, to
/// write its cursor and answer.
pub const CURSOR_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Scans every configured chain once, all at once (a slow chain does not hold back the
/// others within the function's time); a chain that fails is reported and retried by the
/// next run, the others go on. Each stops at `deadline`, keeping what it finished (see
/// [`payments::scan_chain_until`]).
pub async fn run(
    settler: &Settler,
    deadline: Option<tokio::time::Instant>,
) -> (Vec<ScanReport>, Vec<(ChainId, String)>) {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let scans = settler.chains.ids().map(|chain| async move {
        (
            chain,
            payments::scan_chain_until(settler, chain, Timestamp::now(), deadline).await,
        )
    });
    for (chain, scanned) in futures::future::join_all(scans).await {
        match scanned {
            Ok(r) => {
                if r.recorded > 0 {
                    tracing::info!(chain = %chain, recorded = r.recorded, blocks = ?r.blocks, "deposits found");
                }
                reports.push(r)
            }
            Err(ScanError::Chain(ChainError::Unsupported(_))) => {}
            Err(e) => {
                tracing::warn!(chain = %chain, error = %e, "deposit scan failed; the next run retries");
                failures.push((chain, e.to_string()));
            }
        }
    }
    (reports, failures)
}

/// The scheduled handler; the event's content does not matter.
pub async fn handler(
    settler: &Settler,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_http::Error> {
    let deadline =
        payorders::runtime::invocation_deadline(&event.context).map(|d| d - CURSOR_MARGIN);
    let (reports, failures) = run(settler, deadline).await;
    Ok(json!({
        "scanned": reports,
        "failed": failures
            .iter()
            .map(|(c, e)| json!({"chain_id": c, "error": e}))
            .collect::<Vec<_>>(),
    }))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_schedule_with_settler(handler).await
}
