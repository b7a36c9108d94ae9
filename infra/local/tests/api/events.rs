//! Every `events/<function>.json` runs through its function's handler, so
//! `sam local invoke <Fn> -e events/<fn>.json` is known to work against a seeded store.

use crate::support::{in_memory_queue, repo_root};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_http::{Body, Context, LambdaEvent};
use payorders::auth::{self, MasterKey};
use payorders::runtime::Services;
use payorders::store::Store;
use payorders::store::embedded::EmbeddedStore;
use payorders::*;
use serde_json::Value;
use std::sync::Arc;

const ORG: &str = "org_ABrYB8eR5ZuAn3YWtigZ1P";
const KEY_TEXT: &str = "sk_test_sample_events_key_0000000000";
const GET_ID: &str = "po_P7YcaQR7QGGrVRY31EyJkN";
const CANCEL_ID: &str = "po_5HZ7vRqEtWAUw3SZhjXZar";

fn event_text(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("events").join(format!("{name}.json"))).unwrap()
}

fn http_event(name: &str) -> lambda_http::Request {
    lambda_http::request::from_str(&event_text(name))
        .unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
}

fn json_body(resp: &lambda_http::Response<Body>) -> Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

/// The organization, key and orders the sample events name.
async fn seeded() -> Services {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().unwrap());
    let master = MasterKey::from_text(&MasterKey::generate_text()).unwrap();
    let now = Timestamp::now();
    let mut org = Organization::new("Sample", now);
    org.id = OrgId::parse(ORG).unwrap();
    store.create_organization(&org).await.unwrap();
    store
        .create_wallet(&MerchantWallet {
            organization_id: org.id.clone(),
            livemode: false,
            chain_id: ChainId::new(84532).unwrap(),
            address: Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into()),
            xpub: None,
            currencies: vec!["84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e".into()],
            next_index: 0,
            created_at: now,
            updated_at: now,
            version: 1,
        })
        .await
        .unwrap();
    let issued = auth::issue_api_key(
        &org.id,
        KeyMode::Test,
        vec![Scope::All],
        &master,
        now,
        Some((KEY_TEXT.into(), "ss_sample_events_secret_0000000000".into())),
    )
    .unwrap();
    store.create_api_key(&issued.record, None).await.unwrap();
    for id in [GET_ID, CANCEL_ID] {
        let mut order = payorders::testing::order(&org.id, false, now);
        order.id = OrderId::parse(id).unwrap();
        // A test-mode order is on a test network: USDC on Base Sepolia.
        order.fulfillment.asset = Some(
            payorders::registry::registry()
                .currency_by_id("84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e")
                .unwrap(),
        );
        store
            .create_order(&NewOrder::new(order).unwrap())
            .await
            .unwrap();
    }
    Services {
        store,
        master: Some(master),
        webhooks: None,
        confirmations: None,
        check_delays: Default::default(),
        prices: Some(Arc::new(
            payorders::pricing::fixed::FixedPrices::dev_default(),
        )),
        router: None,
        chains: Default::default(),
    }
}

#[tokio::test]
async fn authorizer_event() {
    let svc = seeded().await;
    let deps = authorizer::Deps::from_services(svc).unwrap();
    let payload: ApiGatewayV2CustomAuthorizerV2Request =
        serde_json::from_str(&event_text("authorizer")).unwrap();
    let out = authorizer::handler(&deps, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    assert!(out.is_authorized);
    assert_eq!(out.context["org_id"], ORG);
    assert_eq!(out.context["mode"], "test");
    assert_eq!(out.context["signed"], "false");
    assert!(out.context.get("auth_error").is_none(), "{}", out.context);
}

#[tokio::test]
async fn health_event() {
    // Readiness over the seeded store: it answers.
    let svc = seeded().await;
    let resp = health::handler(&svc, http_event("health")).await.unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(resp.headers()["x-request-id"], "Vnd7QjQbIAMEbNH=");
}

#[tokio::test]
async fn create_order_event() {
    let svc = seeded().await;
    let resp = create_order::handler(&svc, http_event("create-order"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 201, "{body}");
    assert_eq!(body["mode"], "SALE");
    assert_eq!(body["organization_id"], ORG);
    assert_eq!(body["fulfillment"]["fiat_amount"], "49.99");
    assert_eq!(resp.headers()["x-request-id"], "Vnd7QjQbIAMEbNQ=");
}

#[tokio::test]
async fn get_order_event() {
    let svc = seeded().await;
    let resp = get_order::handler(&svc, http_event("get-order"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["id"], GET_ID);
}

#[tokio::test]
async fn list_orders_event() {
    let svc = seeded().await;
    let resp = list_orders::handler(&svc, http_event("list-orders"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn cancel_order_event() {
    let svc = seeded().await;
    let resp = cancel_order::handler(&svc, http_event("cancel-order"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["id"], CANCEL_ID);
    assert_eq!(body["status"], "CANCELLED");
    assert_eq!(body["cancellation_reason"], "customer asked");
}

#[tokio::test]
async fn refunds_event() {
    let (svc, _rx) = awaiting_payment().await;
    let settler = svc.settler().unwrap();
    let resp = refunds::handler(&svc, &settler, http_event("refunds"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"], serde_json::json!([]));
}

const EVENT_ID: &str = "evt_5FDvNnXRUF1CRLivsUT2yn";
const DELIVERY_ID: &str = "msg_2Yipn2YAp5gWKZ5Zztt2Pv";
const ENDPOINT_ID: &str = "we_RAMn1Crn9u4a8mfRJFkykQ";

/// The endpoint the webhook sample events name, pointing at `url`.
async fn seed_endpoint(svc: &Services, url: &str) -> WebhookEndpoint {
    let (e, _) = payorders::testing::endpoint_with_id(
        WebhookEndpointId::parse(ENDPOINT_ID).unwrap(),
        &OrgId::parse(ORG).unwrap(),
        false,
        url,
        svc.master.as_ref().unwrap(),
        Timestamp::now(),
    );
    svc.store.create_endpoint(&e, None).await.unwrap();
    e
}

#[tokio::test]
async fn dispatch_events_event() {
    let svc = seeded().await;
    let ep = seed_endpoint(&svc, "https://merchant.example/hooks").await;
    let (queue, mut rx) = in_memory_queue().await;
    let deps = dispatch_events::Deps {
        store: svc.store.clone(),
        queue: Arc::new(queue),
    };
    let payload = serde_json::from_str(&event_text("dispatch-events")).unwrap();
    let out = dispatch_events::handler(&deps, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    assert!(out.batch_item_failures.is_empty());
    // One first attempt, to the endpoint; the delivery is written when it is leased.
    let message =
        payorders::webhooks::DeliveryMessage::parse(&rx.recv().await.unwrap().body).unwrap();
    let payorders::webhooks::DeliveryMessage::First(first) = message else {
        panic!("not a first attempt: {message:?}");
    };
    assert_eq!(first.event_id, EventId::parse(EVENT_ID).unwrap());
    assert_eq!(first.endpoint_id.as_ref(), Some(&ep.id));
    let id = Delivery::id_for(&first.event_id, Some(&ep.id));
    assert_eq!(first.delivery_id(), id);
    assert!(svc.store.get_delivery(&id).await.unwrap().is_none());
    assert!(rx.try_recv().is_err(), "one destination, one message");
}

#[tokio::test]
async fn deliver_webhook_event() {
    let svc = seeded().await;
    let receiver = crate::webhooks::Receiver::start(&serde_json::json!({}));
    let ep = seed_endpoint(&svc, &format!("{}/hooks", receiver.url)).await;
    // The event and the delivery the sample message names.
    let org = OrgId::parse(ORG).unwrap();
    let order = svc
        .store
        .get_order(&OrderId::parse(GET_ID).unwrap())
        .await
        .unwrap()
        .unwrap();
    let u = order
        .edit(Timestamp::now(), |_| {})
        .unwrap()
        .with_event(EventType::OrderPaymentLate);
    svc.store.update_order(&u).await.unwrap();
    let now = Timestamp::now();
    let delivery = Delivery {
        id: DeliveryId::parse(DELIVERY_ID).unwrap(),
        organization_id: org,
        livemode: false,
        endpoint_id: Some(ep.id.clone()),
        url: ep.url.clone(),
        event_id: u.event().unwrap().id.clone(),
        event_type: EventType::OrderPaymentLate,
        status: DeliveryStatus::Pending,
        attempts: vec![],
        next_attempt_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    svc.store.create_delivery(&delivery).await.unwrap();
    // As the local host runs it (the receiver is on loopback).
    let deps = deliver_webhook::Deps {
        allow_loopback: true,
        ..deliver_webhook::Deps::new(svc.store.clone(), svc.master.clone().unwrap())
    };
    // Not called on this path (no retry), but the handler takes the queue it would delay on.
    let sdk = payorders::config::aws_sdk_loader()
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let queue = payorders::queue::SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        "http://127.0.0.1:9/unused",
    );
    let payload = serde_json::from_str(&event_text("deliver-webhook")).unwrap();
    let out =
        deliver_webhook::handler(&deps, &queue, LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
    assert!(
        out.batch_item_failures.is_empty(),
        "{:?}",
        out.batch_item_failures
    );
    let d = svc.store.get_delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(receiver.log().len(), 1);
    assert_eq!(receiver.log()[0]["webhook_id"], DELIVERY_ID);
}

#[tokio::test]
async fn webhook_endpoints_event() {
    let svc = seeded().await;
    seed_endpoint(&svc, "https://merchant.example/hooks").await;
    let resp = webhook_endpoints::handler(&svc, http_event("webhook-endpoints"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["data"][0]["id"], ENDPOINT_ID);
    assert!(body["data"][0].get("secret").is_none());
}

#[tokio::test]
async fn api_keys_event() {
    let svc = seeded().await;
    let resp = api_keys::handler(&svc, http_event("api-keys"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["data"][0]["masked_key"], "sk_test_samp…0000");
    assert!(body["data"][0].get("key").is_none() && body["data"][0].get("secret").is_none());
}

#[tokio::test]
async fn list_events_event() {
    let svc = seeded().await;
    let resp = list_events::handler(&svc, http_event("list-events"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    // The two seeded orders' order.created events.
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] == "order.created")
    );
}

#[tokio::test]
async fn audit_log_event() {
    let svc = seeded().await;
    // The sample cancellation is a change: it leaves an entry the sample listing shows.
    let cancel = cancel_order::handler(&svc, http_event("cancel-order"))
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200, "{}", json_body(&cancel));
    let resp = audit_log::handler(&svc, http_event("audit-log"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{body}");
    assert_eq!(data[0]["action"], "POST /pay-orders/{id}/cancel");
    assert_eq!(data[0]["outcome"]["status"], 200);
    assert_eq!(
        data[0]["request_id"],
        cancel.headers()["x-request-id"].to_str().unwrap()
    );
    assert_eq!(data[0]["ip"], "203.0.113.10");
}

#[tokio::test]
async fn merchant_wallets_event() {
    let svc = seeded().await;
    let resp = merchant_wallets::handler(&svc, http_event("merchant-wallets"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["data"][0]["chain_id"], 84532);
    assert_eq!(body["data"][0]["object"], "merchant_wallet");
}

#[tokio::test]
async fn payment_details_event() {
    let svc = seeded().await;
    let resp = payment_details::handler(&svc, http_event("payment-details"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["id"], CANCEL_ID);
    assert_eq!(body["status"], "AWAITING_PAYMENT");
    assert_eq!(
        body["payment"]["steps"][0]["deposit_address"],
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    );
}

#[tokio::test]
async fn quote_order_event() {
    // No chain has an RPC endpoint in this seeded service set: a quote with no options.
    let svc = seeded().await;
    let resp = quote_order::handler(&svc, http_event("quote-order"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["object"], "quote");
    assert_eq!(body["options"], serde_json::json!([]));
}

/// The seeded services with a confirmations queue, the sample order given its payment
/// details (25 USDC on Base Sepolia) by the payment-details event.
async fn awaiting_payment() -> (Services, payorders_local::queue::Receiver) {
    let mut svc = seeded().await;
    let (queue, rx) = in_memory_queue().await;
    svc.confirmations = Some(Arc::new(queue));
    let resp = payment_details::handler(&svc, http_event("payment-details"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["payment"]["input"]["amount"]["raw"], "25000000");
    (svc, rx)
}

/// [`awaiting_payment`], with payment details chosen before the sample transfer was mined
/// (a transfer older than them would pay nothing).
async fn awaiting_the_sample_transfer() -> (Services, payorders_local::queue::Receiver) {
    let (svc, rx) = awaiting_payment().await;
    let id = OrderId::parse(CANCEL_ID).unwrap();
    let o = svc.store.get_order(&id).await.unwrap().unwrap();
    let u = o
        .edit(Timestamp::now(), |o| {
            if let Some(p) = o.payment.as_mut() {
                p.created_at = Timestamp::parse("2025-11-01T00:00:00Z").ok();
            }
        })
        .unwrap();
    svc.store.update_order(&u).await.unwrap();
    (svc, rx)
}

#[tokio::test]
async fn submit_payment_and_confirm_payment_events() {
    // The sample hash is a sandbox transfer of exactly 25 USDC mined in November 2025,
    // so it is long confirmed by now.
    let (svc, _rx) = awaiting_the_sample_transfer().await;
    let settler = svc.settler().unwrap();
    let resp = submit_payment::handler(&svc, &settler, http_event("submit-payment"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["status"], "AWAITING_CONFIRMATION");
    assert_eq!(body["transfers"][0]["sandbox"], true);
    assert_eq!(body["payment"]["received"]["raw"], "25000000");

    let deps = confirm_payment::Deps {
        settler,
        router: None,
    };
    let payload = serde_json::from_str(&event_text("confirm-payment")).unwrap();
    let out = confirm_payment::handler(&deps, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    assert!(out.batch_item_failures.is_empty());
    let order = svc
        .store
        .get_order(&OrderId::parse(CANCEL_ID).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, OrderStatus::Completed);
    assert_eq!(order.transfers[0].status, TransferStatus::Confirmed);

    // Redelivered: nothing changes and no second event is written.
    let payload = serde_json::from_str(&event_text("confirm-payment")).unwrap();
    let out = confirm_payment::handler(&deps, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    assert!(out.batch_item_failures.is_empty());
    let again = svc.store.get_order(&order.id).await.unwrap().unwrap();
    assert_eq!(again.version, order.version);
}

/// Checks start only while the invocation has time for them: with less than the margin
/// left, the batch's messages are handed back untouched (reported, so SQS delivers them
/// again), rather than cut off by the function's timeout with the done ones.
#[tokio::test]
async fn confirm_payment_hands_back_what_it_has_no_time_for() {
    let (svc, _rx) = awaiting_the_sample_transfer().await;
    let settler = svc.settler().unwrap();
    let resp = submit_payment::handler(&svc, &settler, http_event("submit-payment"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", json_body(&resp));
    let id = OrderId::parse(CANCEL_ID).unwrap();
    let before = svc.store.get_order(&id).await.unwrap().unwrap();
    let deps = confirm_payment::Deps {
        settler,
        router: None,
    };
    let due_in = |d: std::time::Duration| {
        let mut c = Context::default();
        c.deadline = (std::time::SystemTime::now() + d)
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        c
    };
    let payload: lambda_http::aws_lambda_events::sqs::SqsEvent =
        serde_json::from_str(&event_text("confirm-payment")).unwrap();
    let ids: Vec<_> = payload
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let short = due_in(confirm_payment::ANSWER_MARGIN / 2);
    let out = confirm_payment::handler(&deps, LambdaEvent::new(payload.clone(), short))
        .await
        .unwrap();
    let reported: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(reported, ids);
    assert_eq!(
        svc.store.get_order(&id).await.unwrap().unwrap().version,
        before.version
    );
    // With the time a check takes, it runs.
    let ample = due_in(std::time::Duration::from_secs(30));
    let out = confirm_payment::handler(&deps, LambdaEvent::new(payload, ample))
        .await
        .unwrap();
    assert!(out.batch_item_failures.is_empty());
    let after = svc.store.get_order(&id).await.unwrap().unwrap();
    assert_eq!(after.status, OrderStatus::Completed);
}

#[tokio::test]
async fn confirm_payment_reports_failures_for_the_dlq() {
    let (svc, _rx) = awaiting_payment().await;
    let settler = svc.settler().unwrap();
    // A real-looking hash on a chain with no RPC here: the check fails and is retried.
    let id = OrderId::parse(CANCEL_ID).unwrap();
    let order = svc.store.get_order(&id).await.unwrap().unwrap();
    let hash = format!("0x{}", "ab".repeat(32));
    let transfer = ReceivedTransfer {
        amount: order.payment.as_ref().unwrap().input.amount.clone(),
        required_confirmations: 3,
        block_number: 10,
        block_hash: format!("0x{}", "cd".repeat(32)),
        ..payorders::testing::transfer(&hash, 0, 6, TransferStatus::Confirming)
    };
    let update =
        payorders::payments::apply_transfer(&order, transfer, vec![], Timestamp::now()).unwrap();
    svc.store.update_order(&update).await.unwrap();
    let deps = confirm_payment::Deps {
        settler,
        router: None,
    };
    let mut payload: lambda_http::aws_lambda_events::sqs::SqsEvent =
        serde_json::from_str(&event_text("confirm-payment")).unwrap();
    let mut poison = payload.records[0].clone();
    poison.message_id = Some("poison".into());
    poison.body = Some("{\"order\": 1".into());
    payload.records.push(poison);
    let out = confirm_payment::handler(&deps, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    let failed: Vec<&str> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["7b1c4f0e-2a55-4f63-9d1e-3c8f0b6a9e21", "poison"]);
    let after = svc.store.get_order(&id).await.unwrap().unwrap();
    assert_eq!(
        after.version,
        update.order().version,
        "a failed check writes nothing"
    );
}

#[tokio::test]
async fn simulate_payment_event() {
    let (svc, mut rx) = awaiting_payment().await;
    let settler = svc.settler().unwrap();
    let resp = simulate_payment::handler(&svc, &settler, http_event("simulate-payment"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    // 10 of 25 USDC: a partial payment, nothing queued for confirmation yet.
    assert_eq!(body["status"], "PARTIAL_PAYMENT");
    assert_eq!(body["payment"]["remaining"]["ui"], "15.0");
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn scan_deposits_event() {
    let (mut svc, _rx) = awaiting_payment().await;
    svc.chains = Arc::new(crate::support::test_chains());
    let settler = svc.settler().unwrap();
    let payload = serde_json::from_str(&event_text("scan-deposits")).unwrap();
    let out = scan_deposits::handler(&settler, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    assert_eq!(out["failed"], serde_json::json!([]), "{out}");
    assert_eq!(out["scanned"][0]["chain_id"], 31337, "{out}");
    let last = out["scanned"][0]["blocks"][1].as_u64().unwrap();
    let chain = ChainId::new(31337).unwrap();
    assert_eq!(svc.store.scan_cursor(chain).await.unwrap(), Some(last));
}

#[tokio::test]
async fn expire_orders_event() {
    // The sample order awaiting payment, its expiry a minute gone; the other sample order
    // is PENDING and expires in half an hour.
    let (svc, _rx) = awaiting_payment().await;
    let id = OrderId::parse(CANCEL_ID).unwrap();
    let now = Timestamp::now();
    let o = svc.store.get_order(&id).await.unwrap().unwrap();
    let u = o
        .edit(now, |o| o.expires_at = now.plus_seconds(-60))
        .unwrap();
    svc.store.update_order(&u).await.unwrap();
    let settler = svc.settler().unwrap();
    let run = async || {
        let payload = serde_json::from_str(&event_text("expire-orders")).unwrap();
        expire_orders::handler(&settler, LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap()
    };
    assert_eq!(
        run().await,
        serde_json::json!({"expired": 1, "requeued": 0})
    );
    let expired = svc.store.get_order(&id).await.unwrap().unwrap();
    assert_eq!(expired.status, OrderStatus::Expired);
    // It keeps its payment details, so a transfer mined in time still finds it.
    assert!(expired.payment.is_some());
    let other = OrderId::parse(GET_ID).unwrap();
    let pending = svc.store.get_order(&other).await.unwrap().unwrap();
    assert_eq!(pending.status, OrderStatus::Pending);
    let w = payorders::store::ListWindow::new(OrgId::parse(ORG).unwrap(), KeyMode::Test);
    let events = svc.store.list_events(&w, &Default::default()).await;
    assert!(
        events
            .unwrap()
            .data
            .iter()
            .any(|e| e.event_type == EventType::OrderExpired && e.order_id.as_ref() == Some(&id))
    );
    // The next minute's run finds nothing more to do.
    assert_eq!(
        run().await,
        serde_json::json!({"expired": 0, "requeued": 0})
    );
}

#[tokio::test]
async fn public_order_event() {
    let svc = seeded().await;
    let resp = public_order::handler(&svc, http_event("public-order"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["object"], "public_pay_order");
    assert_eq!(body["id"], GET_ID);
    assert_eq!(body["merchant"]["name"], "Sample");
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    // Links from the API's own address, with the stage (`$default`: none).
    assert_eq!(
        body["hosted_url"],
        format!("https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/pay/{GET_ID}")
    );
}

#[tokio::test]
async fn public_payment_details_and_public_qr_events() {
    let svc = seeded().await;
    let resp = public_payment_details::handler(&svc, http_event("public-payment-details"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["status"], "AWAITING_PAYMENT");
    assert_eq!(
        body["payment"]["uri"],
        "ethereum:0x036CbD53842c5426634e7929541eC2318f3dCF7e@84532/transfer?address=0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed&uint256=25000000"
    );
    let resp = public_qr::handler(&svc, http_event("public-qr"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    match resp.body() {
        Body::Text(svg) => assert!(svg.contains("<svg"), "{svg}"),
        other => panic!("an SVG is text: {other:?}"),
    }
}

#[tokio::test]
async fn checkout_page_event() {
    let svc = seeded().await;
    let resp = checkout_page::handler(&svc, http_event("checkout-page"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(matches!(resp.body(), Body::Text(t) if t.contains("<!doctype html>")));
}

#[tokio::test]
async fn checkout_settings_event() {
    let svc = seeded().await;
    let resp = checkout_settings::handler(&svc, http_event("checkout-settings"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["display_name"], "Sample Store");
    assert_eq!(body["theme_color"], "#0f766e");
    let saved = svc
        .store
        .get_checkout_settings(&OrgId::parse(ORG).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(saved.hide_footer);
}

#[tokio::test]
async fn public_events_event() {
    // A Function URL event: the id comes from the path; the stream opens with `retry:`
    // and the order's current view, and ends after its lifetime.
    use futures::StreamExt;
    let svc = seeded().await;
    let follow = payorders::checkout::sse::Follow {
        poll: std::time::Duration::from_millis(50),
        lifetime: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let resp = public_events::handler(&svc, follow, http_event("public-events"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(text.starts_with("retry: "), "{text}");
    assert!(text.contains("event: pay_order\n"), "{text}");
    assert!(text.contains(&format!("\"id\":\"{GET_ID}\"")), "{text}");
    // One event: the order did not change while the stream lasted.
    assert_eq!(text.matches("event: pay_order").count(), 1, "{text}");
}

#[tokio::test]
async fn public_submit_payment_event() {
    // The sample sandbox transfer (25 USDC, November 2025), named by the customer's wallet.
    let (svc, _rx) = awaiting_the_sample_transfer().await;
    let settler = svc.settler().unwrap();
    let resp = public_submit_payment::handler(&svc, &settler, http_event("public-submit-payment"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["object"], "public_pay_order");
    assert_eq!(body["status"], "AWAITING_CONFIRMATION");
    assert_eq!(body["payment_progress"]["percent"], 100.0);
}

#[tokio::test]
async fn aggregate_analytics_event() {
    let svc = seeded().await;
    let deps = aggregate_analytics::Deps {
        store: svc.store.clone(),
    };
    // Delivered twice, as a stream may: counted once.
    for _ in 0..2 {
        let payload = serde_json::from_str(&event_text("aggregate-analytics")).unwrap();
        let out =
            aggregate_analytics::handler(&deps, LambdaEvent::new(payload, Context::default()))
                .await
                .unwrap();
        assert!(out.batch_item_failures.is_empty());
    }
    let hour = payorders::analytics::hour_of(Timestamp::parse("2026-11-21T13:40:00Z").unwrap());
    let got = svc
        .store
        .read_analytics(&OrgId::parse(ORG).unwrap(), KeyMode::Test, hour, hour)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].counters["created"], 1);
    assert_eq!(got[0].counters["valued"], 1);
    assert_eq!(got[0].counters["created_usd_cents"], 4999);
}

#[tokio::test]
async fn analytics_event() {
    let svc = seeded().await;
    let resp = ::analytics::handler(&svc, http_event("analytics"))
        .await
        .unwrap();
    let body = json_body(&resp);
    assert_eq!(resp.status(), 200, "{body}");
    assert_eq!(body["timezone"], "Europe/Berlin");
    assert_eq!(body["time_series"].as_array().unwrap().len(), 7);
}
