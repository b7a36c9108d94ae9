//! Every `events/<function>.json` runs through its function's handler, so
//! `sam local invoke <Fn> -e events/<fn>.json` is known to work against a seeded store.

use crate::support::repo_root;
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
    org.test.settlement_currencies = vec![payorders::registry::CurrencyRef {
        chain_id: ChainId::new(84532).unwrap(),
        address: Some("0x036CbD53842c5426634e7929541eC2318f3dCF7e".into()),
    }];
    store.create_organization(&org).await.unwrap();
    let issued = auth::issue_api_key(
        &org.id,
        KeyMode::Test,
        vec![Scope::All],
        &master,
        now,
        Some((KEY_TEXT.into(), "ss_sample_events_secret_0000000000".into())),
    )
    .unwrap();
    store.create_api_key(&issued.record).await.unwrap();
    for id in [GET_ID, CANCEL_ID] {
        let asset = payorders::registry::registry()
            .currency_by_id("84532:native")
            .unwrap();
        let order = PayOrder {
            id: OrderId::parse(id).unwrap(),
            organization_id: org.id.clone(),
            livemode: false,
            mode: OrderMode::Deposit,
            status: OrderStatus::Pending,
            created_at: now,
            updated_at: now,
            expires_at: now.plus_seconds(1800),
            fulfillment: Fulfillment {
                amount: Some(Amount::new(RawAmount::from_u128(10u128.pow(16)), 18)),
                asset: Some(asset),
                recipient: Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into()),
                ..Default::default()
            },
            metadata: None,
            webhook_url: None,
            redirect_url: None,
            cancel_url: None,
            nonce: None,
            payment_tolerance: Default::default(),
            confirmations: None,
            paid_over: false,
            paid_late: false,
            underpaid_within_tolerance: false,
            cancellation_reason: None,
            idempotency_key: None,
            version: 1,
        };
        store
            .create_order(&NewOrder::new(order).unwrap())
            .await
            .unwrap();
    }
    Services {
        store,
        master: Some(master),
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
