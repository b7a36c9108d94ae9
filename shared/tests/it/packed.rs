//! Records in DynamoDB as `store::packed` writes them: what it buys (an order and its event
//! each fit one write unit), and that records written as JSON text before still read.

use crate::support::{self, order, t0};
use aws_sdk_dynamodb::types::AttributeValue;
use payorders::store::*;
use payorders::*;
use std::collections::HashMap;

/// DynamoDB's size of an item: each attribute's name and value (strings and binaries by
/// their bytes, numbers about one byte per two digits, the rest one byte).
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    _ => 1,
                }
        })
        .sum()
}

/// The item under `pk`/`sk` as DynamoDB holds it (read strongly consistent).
async fn stored_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("no item {pk} / {sk}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_and_its_event_are_packed_and_each_fit_one_write_unit() {
    let store = support::dynamo_store().await;
    let client = aws_sdk_dynamodb::Client::new(&support::sdk_config().await);
    let mut o = order(&OrgId::generate(), false, t0());
    o.payment = Some(payorders::testing::payment(
        "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
        25_000_000,
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ));
    let new = NewOrder::new(o.clone()).unwrap();
    store.create_order(&new).await.unwrap();
    for (pk, sk, json_len) in [
        (
            format!("ORDER#{}", o.id),
            "ORDER",
            serde_json::to_vec(&o).unwrap().len(),
        ),
        (
            format!("EVENT#{}", new.event().id),
            "EVENT",
            serde_json::to_vec(new.event()).unwrap().len(),
        ),
    ] {
        let item = stored_item(&client, store.table(), &pk, sk).await;
        let Some(AttributeValue::B(packed)) = item.get("doc") else {
            panic!("{pk}: doc is not packed: {:?}", item.get("doc"));
        };
        assert_eq!(packed.as_ref()[0], 1, "format 1");
        assert!(
            json_len > 1024,
            "{pk}: the JSON alone ({json_len} bytes) is over 1 KB"
        );
        assert!(
            item_size(&item) <= 1024,
            "{pk}: {} bytes, over one write unit",
            item_size(&item)
        );
    }
    assert_eq!(store.get_order(&o.id).await.unwrap(), Some(o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stored_as_json_text_before_still_read_and_update() {
    let store = support::dynamo_store().await;
    let client = aws_sdk_dynamodb::Client::new(&support::sdk_config().await);
    let o = order(&OrgId::generate(), false, t0());
    store
        .create_order(&NewOrder::new(o.clone()).unwrap())
        .await
        .unwrap();
    // The item as it was written before records were packed: its doc as JSON text.
    let mut item = stored_item(&client, store.table(), &format!("ORDER#{}", o.id), "ORDER").await;
    item.insert(
        "doc".into(),
        AttributeValue::S(serde_json::to_string(&o).unwrap()),
    );
    client
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    assert_eq!(store.get_order(&o.id).await.unwrap().as_ref(), Some(&o));
    // Updating it under its version works and writes it packed.
    let u = o
        .transition(t0().plus_seconds(60), OrderStatus::Cancelled, |_| {})
        .unwrap();
    store.update_order(&u).await.unwrap();
    assert_eq!(
        store.get_order(&o.id).await.unwrap().as_ref(),
        Some(u.order())
    );
    // A damaged doc is reported as a corrupt record, not a panic or a wrong order.
    client
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("ORDER#{}", o.id)))
        .key("sk", AttributeValue::S("ORDER".into()))
        .update_expression("SET #d = :d")
        .expression_attribute_names("#d", "doc")
        .expression_attribute_values(":d", AttributeValue::B(vec![1, 0xff, 0xfe].into()))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        store.get_order(&o.id).await,
        Err(StoreError::Corrupt(_))
    ));
}
