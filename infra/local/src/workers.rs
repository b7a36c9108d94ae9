//! The async steps under the local host, with the same code as in AWS: a poller over the
//! embedded store's outbox stands in for the DynamoDB stream (→ dispatch-events, and with a
//! cursor of its own → aggregate-analytics), a timer
//! for each EventBridge schedule (→ scan-deposits, → expire-orders), and a queue kept in
//! the store ([`crate::queue`]) stands in for each SQS queue (→ deliver-webhook,
//! → confirm-payment; delays and retries as timers, kept through a restart).

use crate::queue::Receiver;
use payorders::queue::Outcome;
use payorders::runtime::{CheckDelays, Services};
use payorders::store::embedded::EmbeddedStore;
use std::sync::Arc;
use std::time::Duration;

/// Each stream consumer's position in the outbox, as Lambda keeps one per event source.
const CURSOR: &str = "dispatch-events";
const ANALYTICS_CURSOR: &str = "aggregate-analytics";

/// Confirmation checks under the local host: every second, then at most every 2 s.
pub const DEV_CHECK_DELAYS: CheckDelays = CheckDelays {
    first_secs: 1,
    max_secs: 2,
};

pub struct Config {
    /// Multiplies webhook retry delays (1 = the real schedule).
    pub retry_scale: f64,
    /// How often the outbox is polled.
    pub poll: Duration,
    /// How often the deposit scan runs (EventBridge's schedule in AWS).
    pub scan_every: Duration,
    /// How often expiry and the stalled-check sweep run (every minute in AWS).
    pub upkeep_every: Duration,
}

/// The consuming ends of the host's queues.
pub struct Receivers {
    pub webhooks: Receiver,
    pub confirmations: Receiver,
}

/// Starts the workers; they run until the process ends.
pub fn start(
    services: &Services,
    embedded: Option<EmbeddedStore>,
    rx: Receivers,
    cfg: Config,
) -> anyhow::Result<()> {
    let master = services.master()?.clone();
    let queue = services.webhooks()?.clone();
    // The developer's own receiver usually runs on this machine: test mode may reach it.
    let deliver = Arc::new(deliver_webhook::Deps {
        retry_scale: cfg.retry_scale,
        allow_loopback: true,
        ..deliver_webhook::Deps::new(services.store.clone(), master)
    });
    tokio::spawn(consume(rx.webhooks, move |body| {
        let deps = deliver.clone();
        async move {
            match deliver_webhook::process(&deps, &body).await {
                Ok(Outcome::Done) => Step::Done,
                Ok(Outcome::RetryAfter(secs)) => Step::RetryAfter(secs),
                Err(deliver_webhook::DeliverError::Poison(m)) => Step::Poison(m),
                Err(e) => Step::Fault(e.to_string()),
            }
        }
    }));
    let confirm = Arc::new(confirm_payment::Deps {
        settler: services.settler()?,
        router: services.router.clone(),
    });
    tokio::spawn(consume(rx.confirmations, move |body| {
        let deps = confirm.clone();
        async move {
            match confirm_payment::process(&deps, &body).await {
                Ok(_) => Step::Done,
                Err(confirm_payment::ConfirmError::Poison(m)) => Step::Poison(m),
                Err(e) => Step::Fault(e.to_string()),
            }
        }
    }));
    tokio::spawn(scan_on_schedule(services.settler()?, cfg.scan_every));
    tokio::spawn(upkeep_on_schedule(services.settler()?, cfg.upkeep_every));
    match embedded {
        Some(store) => {
            let dispatch = dispatch_events::Deps {
                store: services.store.clone(),
                queue,
            };
            tokio::spawn(poll_outbox(store.clone(), dispatch, cfg.poll));
            let aggregate = aggregate_analytics::Deps {
                store: services.store.clone(),
            };
            tokio::spawn(poll_outbox_for_analytics(store, aggregate, cfg.poll));
        }
        None => tracing::warn!(
            "with --store dynamodb the local host does not read the table's stream; \
             webhooks are dispatched and analytics counted only by the stream's functions in AWS"
        ),
    }
    Ok(())
}

/// The stream: every event in order, dispatched before the cursor moves past it.
async fn poll_outbox(store: EmbeddedStore, deps: dispatch_events::Deps, every: Duration) {
    let deps = &deps;
    consume_outbox(&store, CURSOR, every, move |events| async move {
        let mut endpoints = dispatch_events::BatchEndpoints::default();
        for (handled, event) in events.iter().enumerate() {
            if let Err(e) = dispatch_events::dispatch_in(deps, event, &mut endpoints).await {
                return (handled, Err(e.into()));
            }
        }
        (events.len(), Ok(()))
    })
    .await
}

/// The stream's second consumer: every event counted before its cursor moves, a batch at
/// a time (one write for the batch's contributions).
async fn poll_outbox_for_analytics(
    store: EmbeddedStore,
    deps: aggregate_analytics::Deps,
    every: Duration,
) {
    let deps = &deps;
    consume_outbox(&store, ANALYTICS_CURSOR, every, move |events| async move {
        match aggregate_analytics::aggregate_all(deps, &events).await {
            Ok(_) => (events.len(), Ok(())),
            Err(e) => (0, Err(e.into())),
        }
    })
    .await
}

/// A stream consumer's loop: passes of [`read_outbox`] one after the other while they read
/// full batches, then one every `every`; a failed pass is logged and tried again then.
async fn consume_outbox<F, Fut>(store: &EmbeddedStore, cursor: &str, every: Duration, handle: F)
where
    F: Fn(Vec<payorders::Event>) -> Fut,
    Fut: std::future::Future<Output = (usize, anyhow::Result<()>)>,
{
    loop {
        match read_outbox(store, cursor, &handle).await {
            // A full batch: more may be waiting, so read on at once.
            Ok(More::Yes) => continue,
            Ok(More::No) => {}
            Err(e) => tracing::warn!(error = %e, consumer = cursor, "outbox pass failed; retrying"),
        }
        tokio::time::sleep(every).await;
    }
}

/// The most events a consumer's pass reads (a stream batch).
const BATCH: u32 = 100;

/// Whether a pass read a full batch, so more events may be waiting.
#[derive(Debug, PartialEq)]
enum More {
    Yes,
    No,
}

/// One pass of a stream consumer: the events after its cursor (a batch of at most 100),
/// handed over in order, then the cursor moved past those handled, once per batch as Lambda
/// checkpoints a stream batch (one durable write per batch instead of one per event).
/// `handle` answers how many of the batch's first events it handled, and its error if it
/// stopped before the end: the cursor still moves past what was handled, and the next pass
/// starts at the first event not handled. A crash before the cursor moves hands the batch
/// over again, which both consumers take: a delivery's id is one per event and endpoint,
/// and an analytics contribution is counted once by its marker.
///
/// A full batch handled whole answers [`More::Yes`]: its caller reads on at once instead of
/// waiting for the next poll, so the consumers keep up with any rate of events (a pause
/// after every batch capped each at 400 events a second, and under load webhooks fell
/// further and further behind).
async fn read_outbox<F, Fut>(store: &EmbeddedStore, cursor: &str, handle: F) -> anyhow::Result<More>
where
    F: FnOnce(Vec<payorders::Event>) -> Fut,
    Fut: std::future::Future<Output = (usize, anyhow::Result<()>)>,
{
    let from = store.stream_cursor(cursor).await?;
    let (seqs, events): (Vec<i64>, Vec<payorders::Event>) =
        store.events_after(from, BATCH).await?.into_iter().unzip();
    let read = events.len();
    let (handled, outcome) = handle(events).await;
    if let Some(&last) = handled.checked_sub(1).and_then(|i| seqs.get(i)) {
        store.set_stream_cursor(cursor, last).await?;
    }
    outcome?;
    Ok(if read == BATCH as usize && handled == read {
        More::Yes
    } else {
        More::No
    })
}

/// The schedule: one deposit scan of every chain, then a pause. While a chain fails (its
/// RPC is down), the pause doubles up to a minute, so the log is not flooded.
async fn scan_on_schedule(settler: payorders::payments::Settler, every: Duration) {
    let mut pause = every;
    loop {
        let (_, failures) = scan_deposits::run(&settler, None).await;
        pause = if failures.is_empty() {
            every
        } else {
            (pause * 2).min(Duration::from_secs(60))
        };
        tokio::time::sleep(pause).await;
    }
}

/// The upkeep schedule (expire-orders). The first run re-queues the check of every order
/// waiting on one, whatever its age: a host killed mid-confirmation resumes its orders as
/// soon as it is back, also with `--store dynamodb`, whose queues live in memory. Each
/// starts a new check series, so a check the store's queue kept from before is dropped as
/// stale when it comes (or, handed over before the upkeep ran, makes one extra check).
async fn upkeep_on_schedule(settler: payorders::payments::Settler, every: Duration) {
    let now = payorders::Timestamp::now();
    match payorders::payments::requeue_stalled(&settler, now, now, u32::MAX).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            orders = n,
            "resumed the confirmation checks of in-flight orders"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not resume in-flight orders; the next upkeep retries")
        }
    }
    loop {
        if let Err(e) = payorders::payments::upkeep(&settler, payorders::Timestamp::now()).await {
            tracing::warn!(error = %e, "order upkeep failed; the next run retries");
        }
        tokio::time::sleep(every).await;
    }
}

/// What a consumer made of one message.
enum Step {
    Done,
    RetryAfter(u64),
    /// Unreadable: SQS would dead-letter it after its redrive count.
    Poison(String),
    /// Failed to process: SQS would deliver it again.
    Fault(String),
}

/// A queue: each message processed until done, retries after their delay, as SQS would; a
/// message is forgotten once done (or dropped as malformed), and a retry's time is kept
/// with it. One that keeps failing (or panics its consumer) is given up on for this run and
/// kept, as SQS would dead-letter it: the next start tries it again.
async fn consume<F, Fut>(mut rx: Receiver, process: F)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Step> + Send + 'static,
{
    let process = Arc::new(process);
    while let Some(message) = rx.recv().await {
        let process = process.clone();
        tokio::spawn(async move {
            let mut faults = 0u32;
            loop {
                // In a task of its own, so that a panic is a fault of this message.
                let step = tokio::spawn(process(message.body.clone()))
                    .await
                    .unwrap_or_else(|e| Step::Fault(format!("the consumer panicked: {e}")));
                match step {
                    Step::Done => break,
                    Step::RetryAfter(secs) => {
                        message.retry_in(secs).await;
                        tokio::time::sleep(Duration::from_secs(secs)).await;
                    }
                    Step::Poison(m) => {
                        tracing::error!(message = %m, "dropping a malformed message (SQS would dead-letter it)");
                        break;
                    }
                    Step::Fault(e) => {
                        faults += 1;
                        if faults > 10 {
                            tracing::error!(error = %e, "giving up on a message after 10 faults until the next start (SQS would dead-letter it)");
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            message.finished().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use payorders::store::OrderStore;
    use payorders::{NewOrder, OrgId, Timestamp, testing};
    use std::sync::Mutex;

    /// Creates `n` orders of `org`, each with its `order.created` event in the outbox.
    async fn create_orders(store: &EmbeddedStore, org: &OrgId, n: usize) {
        for _ in 0..n {
            let order = testing::order(org, false, Timestamp::now());
            store
                .create_order(&NewOrder::new(order).unwrap())
                .await
                .unwrap();
        }
    }

    /// Runs one pass of a consumer that records each event it is handed and fails on the
    /// `fail_at`-th of the pass (1-based); the ids it was handed, in order, and whether the
    /// pass succeeded.
    async fn pass(store: &EmbeddedStore, fail_at: Option<usize>) -> (Vec<String>, bool) {
        let seen = Mutex::new(Vec::new());
        let record = &seen;
        let outcome = read_outbox(store, "test-consumer", |events| async move {
            for (handled, event) in events.iter().enumerate() {
                record.lock().unwrap().push(event.id.to_string());
                if fail_at == Some(handled + 1) {
                    return (
                        handled,
                        Err(anyhow::anyhow!("the consumer's dependency is down")),
                    );
                }
            }
            (events.len(), Ok(()))
        })
        .await;
        (seen.into_inner().unwrap(), outcome.is_ok())
    }

    #[tokio::test]
    async fn a_full_batch_asks_to_read_on_at_once() {
        let store = EmbeddedStore::in_memory().unwrap();
        let org = OrgId::generate();
        create_orders(&store, &org, BATCH as usize + 1).await;
        let count = |store| async move {
            let seen = Mutex::new(0);
            let record = &seen;
            let more = read_outbox(store, "test-consumer", |events| async move {
                *record.lock().unwrap() = events.len();
                (events.len(), Ok(()))
            })
            .await
            .unwrap();
            (seen.into_inner().unwrap(), more)
        };
        assert_eq!(count(&store).await, (BATCH as usize, More::Yes));
        assert_eq!(count(&store).await, (1, More::No));
        assert_eq!(count(&store).await, (0, More::No));
    }

    #[tokio::test]
    async fn a_pass_moves_the_cursor_past_what_it_handled_and_the_next_resumes_at_a_failure() {
        let store = EmbeddedStore::in_memory().unwrap();
        let org = OrgId::generate();
        create_orders(&store, &org, 3).await;
        let all: Vec<String> = store
            .events_after(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.id.to_string())
            .collect();
        assert_eq!(all.len(), 3);

        // The third event fails: the first two are not handed over again.
        let (seen, ok) = pass(&store, Some(3)).await;
        assert!(!ok, "a failed event fails the pass");
        assert_eq!(seen, all);
        let (seen, ok) = pass(&store, None).await;
        assert!(ok);
        assert_eq!(seen, all[2..], "the next pass starts at the failed event");
        let (seen, ok) = pass(&store, None).await;
        assert!(
            ok && seen.is_empty(),
            "nothing is handed over twice once the cursor moved"
        );

        // A failure on the first event of a pass leaves the cursor where it was.
        create_orders(&store, &org, 1).await;
        let (first, ok) = pass(&store, Some(1)).await;
        assert!(!ok && first.len() == 1);
        let (again, ok) = pass(&store, None).await;
        assert!(ok);
        assert_eq!(again, first);
    }
}
