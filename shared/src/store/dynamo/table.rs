//! The table itself: what `template.yaml` declares, for tests and local tools.

use super::*;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

/// The GSIs: name, partition and sort key, and the attributes they project beside the keys
/// (none: `KEYS_ONLY`). Entries hold only what their queries filter on; the records are read
/// from the table (`fill_docs`), so rewriting a record costs an index nothing unless its
/// key or one of these attributes changes.
pub const INDEXES: &[(&str, &str, &str, &[&str])] = &[
    (
        "orders_by_org",
        "gsi1pk",
        "gsi1sk",
        &["status", "mode", "chain_id", "currency_id"],
    ),
    ("orders_by_expiry", "gsi2pk", "gsi2sk", &[]),
    ("events_by_org", "gsi3pk", "gsi3sk", &["type", "key_id"]),
    // Also the audit entries of one object (`AUDITOF#…` partitions), filtered by key.
    ("deliveries_by_endpoint", "gsi4pk", "gsi4sk", &["key_id"]),
    ("deposits_by_chain", "gsi5pk", "gsi5sk", &[]),
];

/// Creates the table with its GSIs, stream and TTL, as `template.yaml` declares it.
/// Used by the tests and by `payorders tables create`. `AlreadyExists` if it exists.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(StoreError::unavailable)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(StoreError::unavailable)
    };
    let gsi = |(name, pk, sk, include): &(&str, &str, &str, &[&str])| {
        let projection = match include {
            [] => Projection::builder().projection_type(ProjectionType::KeysOnly),
            attrs => Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(attrs.iter().map(|a| a.to_string()).collect())),
        };
        GlobalSecondaryIndex::builder()
            .index_name(*name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(projection.build())
            .build()
            .map_err(StoreError::unavailable)
    };
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .set_global_secondary_indexes(Some(
            INDEXES.iter().map(gsi).collect::<Result<Vec<_>, _>>()?,
        ))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(StoreError::unavailable)?,
        );
    for a in [
        "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk", "gsi4pk", "gsi4sk",
        "gsi5pk", "gsi5sk",
    ] {
        req = req.attribute_definitions(attr(a)?);
    }
    match req.send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if e.err().is_resource_in_use_exception() => {
            return Err(StoreError::AlreadyExists);
        }
        Err(e) => return Err(fault(e)),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(StoreError::unavailable)?,
        )
        .send()
        .await
        .map_err(fault)?;
    Ok(())
}
