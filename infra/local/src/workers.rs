//! The async steps under the local host, with the same code as in AWS: a poller over the
//! embedded store's outbox stands in for the DynamoDB stream (→ dispatch-events), and an
//! in-process queue stands in for SQS (→ deliver-webhook, retries as timers).

use payorders::queue::{LocalReceiver, Outcome};
use payorders::runtime::Services;
use payorders::store::embedded::EmbeddedStore;
use std::sync::Arc;
use std::time::Duration;

const CURSOR: &str = "dispatch-events";

pub struct Config {
    /// Multiplies webhook retry delays (1 = the real schedule).
    pub retry_scale: f64,
    /// How often the outbox is polled.
    pub poll: Duration,
}

/// Starts the workers; they run until the process ends.
pub fn start(
    services: &Services,
    embedded: Option<EmbeddedStore>,
    rx: LocalReceiver,
    cfg: Config,
) -> anyhow::Result<()> {
    let master = services.master()?.clone();
    let queue = services.webhooks()?.clone();
    let deliver = Arc::new(deliver_webhook::Deps {
        store: services.store.clone(),
        master,
        retry_scale: cfg.retry_scale,
    });
    tokio::spawn(consume(deliver, rx));
    match embedded {
        Some(store) => {
            let dispatch = dispatch_events::Deps {
                store: services.store.clone(),
                queue,
            };
            tokio::spawn(poll_outbox(store, dispatch, cfg.poll));
        }
        None => tracing::warn!(
            "with --store dynamodb the local host does not read the table's stream; \\
             webhooks are dispatched only by the dispatch-events function in AWS"
        ),
    }
    Ok(())
}

/// The stream: every event in order, each dispatched before the cursor moves past it.
async fn poll_outbox(store: EmbeddedStore, deps: dispatch_events::Deps, every: Duration) {
    loop {
        if let Err(e) = poll_once(&store, &deps).await {
            tracing::warn!(error = %e, "outbox poll failed; retrying");
        }
        tokio::time::sleep(every).await;
    }
}

async fn poll_once(store: &EmbeddedStore, deps: &dispatch_events::Deps) -> anyhow::Result<()> {
    let cursor = store.stream_cursor(CURSOR).await?;
    for (seq, event) in store.events_after(cursor, 100).await? {
        dispatch_events::dispatch(deps, &event).await?;
        store.set_stream_cursor(CURSOR, seq).await?;
    }
    Ok(())
}

/// The queue: each message processed until done, retries after their delay.
async fn consume(deps: Arc<deliver_webhook::Deps>, mut rx: LocalReceiver) {
    while let Some(body) = rx.recv().await {
        let deps = deps.clone();
        tokio::spawn(async move {
            let mut faults = 0u32;
            loop {
                match deliver_webhook::process(&deps, &body).await {
                    Ok(Outcome::Done) => return,
                    Ok(Outcome::RetryAfter(secs)) => {
                        tokio::time::sleep(Duration::from_secs(secs)).await
                    }
                    Err(deliver_webhook::DeliverError::Poison(m)) => {
                        tracing::error!(message = %m, "dropping a malformed message (SQS would dead-letter it)");
                        return;
                    }
                    Err(e) => {
                        faults += 1;
                        if faults > 10 {
                            tracing::error!(error = %e, "giving up on a message after 10 faults (SQS would dead-letter it)");
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}
