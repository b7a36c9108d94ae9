//! SQS → one webhook attempt per message. The delivery state machine (lease, outcome,
//! retry schedule, endpoint health) is `payorders::webhooks::delivery`'s; this crate reads
//! the queue message ([`DeliveryMessage`]), posts the signed request over HTTP and hands
//! SQS the outcome. The messages of a batch are sent concurrently, at most
//! [`CONCURRENCY`] at a time.
//!
//! A request goes only to the addresses its URL resolves to once checked against the SSRF
//! rules and the endpoint's `allowed_ips` (redirects are not followed), within the
//! endpoint's timeout (10 s unless it chose 1-30 s) for the exchange, after at most 5 s
//! for the host's DNS lookup; of the answer, the status, `Retry-After` and the first 1 KB of the body are
//! read and no more. A host that does not resolve is retried like one that does not answer.

#[cfg(feature = "aws")]
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
#[cfg(feature = "aws")]
use futures::StreamExt;
#[cfg(feature = "aws")]
use lambda_http::LambdaEvent;
use payorders::auth::MasterKey;
use payorders::queue::Outcome;
#[cfg(feature = "aws")]
use payorders::queue::SqsQueue;
use payorders::store::{Store, StoreError};
use payorders::webhooks::delivery::{self, Response, WebhookRequest, WebhookSender};
use payorders::webhooks::{self, DeliveryMessage, UrlRefusal};
use std::sync::Arc;
use std::time::Duration;

pub use payorders::webhooks::delivery::RESPONSE_LOG_BYTES;

/// How many deliveries of one SQS batch are in flight at once.
pub const CONCURRENCY: usize = 8;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
    /// Multiplies retry delays: 1 in AWS; the local host shortens them.
    pub retry_scale: f64,
    /// Lets test-mode deliveries reach loopback addresses (a receiver on the developer's
    /// machine). Only the local host sets it: in AWS a test-mode URL that resolves to
    /// loopback is refused like any private address.
    pub allow_loopback: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("malformed message: {0}")]
    Poison(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Processes one queue message ([`DeliveryMessage`]).
#[tracing::instrument(skip_all)]
pub async fn process(deps: &Deps, body: &str) -> Result<Outcome, DeliverError> {
    let message = DeliveryMessage::parse(body).map_err(|e| {
        let excerpt: String = body.chars().take(200).collect();
        DeliverError::Poison(format!("{e}: {excerpt}"))
    })?;
    let sender = Http {
        allow_loopback: deps.allow_loopback,
    };
    let outcome = delivery::attempt_delivery(
        deps.store.as_ref(),
        &deps.master,
        deps.retry_scale,
        &sender,
        &message,
    )
    .await?;
    Ok(outcome)
}

/// The longest a webhook attempt waits for its host's DNS lookup.
const LOOKUP_SECS: u64 = 5;

/// Posts webhook requests over HTTP.
struct Http {
    allow_loopback: bool,
}

#[async_trait::async_trait]
impl WebhookSender for Http {
    async fn post(&self, r: &WebhookRequest) -> Result<Response, UrlRefusal> {
        let url = webhooks::check_url(&r.url, r.livemode)?;
        let timeout = u64::from(r.timeout_secs.max(1));
        // A lookup that fails or takes more than LOOKUP_SECS (the merchant's DNS down for a
        // while, a resolver timing out) is an attempt that got no answer, retried on the
        // schedule like a refused connection; only an address the rules refuse fails the
        // delivery for good. (The lookup and the exchange together stay inside the lease.)
        let lookup = webhooks::resolve_destination(&url, !r.livemode && self.allow_loopback);
        let addrs = match tokio::time::timeout(Duration::from_secs(LOOKUP_SECS), lookup).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(UrlRefusal::Unresolvable)) => {
                return Ok(Response::NoAnswer(format!(
                    "the host {} did not resolve",
                    url.host_str().unwrap_or_default()
                )));
            }
            Ok(Err(refused)) => return Err(refused),
            Err(_) => {
                return Ok(Response::NoAnswer(format!(
                    "resolving the host timed out after {LOOKUP_SECS} s"
                )));
            }
        };
        let addrs = webhooks::keep_allowed(addrs, &r.allowed_ips)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        // Connect only to the addresses just checked, and never follow redirects: either
        // could otherwise lead the request to a private address.
        let client = match payorders::net::http_client()
            .timeout(Duration::from_secs(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addrs)
            .user_agent("PayOrders-Webhooks/1")
            .build()
        {
            Ok(client) => client,
            Err(e) => return Ok(Response::NoAnswer(e.to_string())),
        };
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &r.webhook_id)
            .header("webhook-timestamp", r.timestamp.to_string())
            .header("webhook-signature", &r.signature)
            .body(r.body.clone())
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) if e.is_timeout() => {
                return Ok(Response::NoAnswer(format!("timed out after {timeout} s")));
            }
            Err(e) => return Ok(Response::NoAnswer(e.to_string())),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let excerpt = read_capped(resp, RESPONSE_LOG_BYTES).await;
        Ok(Response::Answered {
            status,
            body: String::from_utf8_lossy(&excerpt).into_owned(),
            retry_after,
        })
    }
}

/// The first `limit` bytes of a response body, reading no further: a huge or endless body
/// costs neither memory nor time (the rest is left unread and the connection dropped). A
/// body that fails midway keeps what arrived.
async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

#[cfg(feature = "aws")]
/// The SQS handler: an outcome per message, up to [`CONCURRENCY`] messages at a time (one
/// slow endpoint does not hold up the rest of the batch). `RetryAfter` keeps the message,
/// invisible until the next attempt is due; a failure leaves it to SQS's redrive (and the
/// DLQ). Each kept message is reported as a batch item failure, in batch order.
pub async fn handler(
    deps: &Deps,
    queue: &SqsQueue,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_http::Error> {
    // Unordered, so a finished message frees its slot at once; reported in batch order.
    let mut kept: Vec<(usize, Option<String>)> =
        futures::stream::iter(event.payload.records.into_iter().enumerate())
            .map(|(i, record)| async move { (i, handle_record(deps, queue, record).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    kept.sort_by_key(|(i, _)| *i);
    let mut response = SqsBatchResponse::default();
    for id in kept.into_iter().filter_map(|(_, id)| id) {
        let mut f = BatchItemFailure::default();
        f.item_identifier = id;
        response.batch_item_failures.push(f);
    }
    Ok(response)
}

#[cfg(feature = "aws")]
/// One message of a batch: its id if SQS should keep it.
async fn handle_record(
    deps: &Deps,
    queue: &SqsQueue,
    record: aws_lambda_events::event::sqs::SqsMessage,
) -> Option<String> {
    let id = record.message_id.clone().unwrap_or_default();
    let keep = match process(deps, record.body.as_deref().unwrap_or_default()).await {
        Ok(Outcome::Done) => false,
        Ok(Outcome::RetryAfter(secs)) => {
            if let Some(receipt) = &record.receipt_handle
                && let Err(e) = queue.retry_after(receipt, secs).await
            {
                tracing::warn!(error = %e, "could not delay the message; SQS's default visibility applies");
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, message_id = %id, "delivery failed to process");
            true
        }
    };
    keep.then_some(id)
}

impl Deps {
    /// As in AWS: the real retry schedule, and public destinations only, whatever the mode.
    pub fn new(store: Arc<dyn Store>, master: MasterKey) -> Self {
        Self {
            store,
            master,
            retry_scale: 1.0,
            allow_loopback: false,
        }
    }

    /// For the Lambda function: the store, the master key and the webhooks queue (whose
    /// messages this function delays for retries).
    #[cfg(feature = "aws")]
    pub async fn from_env() -> Result<(Self, SqsQueue), lambda_http::Error> {
        let sdk = payorders::config::lambda_sdk_config();
        let s = payorders::runtime::Services::from_sdk(&sdk).await?;
        let url = std::env::var("PAYORDERS_WEBHOOKS_QUEUE_URL")
            .map_err(|_| "PAYORDERS_WEBHOOKS_QUEUE_URL is not set")?;
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), url);
        Ok((Self::new(s.store.clone(), s.master()?.clone()), queue))
    }
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    let deps = &payorders::runtime::OnFirstUse::new(Deps::from_env);
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        let (deps, queue) = deps.get().await?;
        handler(deps, queue, ev).await
    }))
    .await
}
