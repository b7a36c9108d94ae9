//! The table itself: what `template.yaml` declares, for tests and local tools.

use super::*;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

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
    let gsi = |name: &str, pk: &str, sk: &str| -> Result<GlobalSecondaryIndex, StoreError> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(StoreError::unavailable)
    };
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(gsi("orders_by_org", "gsi1pk", "gsi1sk")?)
        .global_secondary_indexes(gsi("orders_by_expiry", "gsi2pk", "gsi2sk")?)
        .global_secondary_indexes(gsi("events_by_org", "gsi3pk", "gsi3sk")?)
        .global_secondary_indexes(gsi("deliveries_by_endpoint", "gsi4pk", "gsi4sk")?)
        .global_secondary_indexes(gsi("deposits_by_chain", "gsi5pk", "gsi5sk")?)
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
