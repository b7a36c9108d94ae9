//! Analytics counters: one item per organization, mode and UTC hour (`ANALYTICS#org#mode` /
//! `HOUR#<hour>`), each counter an attribute `c#<name>` grown with `ADD` (atomic, so
//! concurrent additions never lose one); and a marker item per applied contribution
//! (`AGG#<marker>` / `AGG`), put in the same transaction under `attribute_not_exists`, so
//! a contribution offered twice is added once.

use super::keys::org_partition;
use super::*;
use aws_sdk_dynamodb::types::Update;

/// Markers outlive any redelivery (a stream keeps records 24 h; an order's events end with
/// its late-payment window) by far.
const MARKER_TTL_SECS: i64 = 400 * 24 * 3600;

fn hour_key(hour: i64) -> String {
    format!("HOUR#{:012}", hour.max(0))
}

#[async_trait]
impl AnalyticsStore for DynamoStore {
    /// One by one: a transaction per contribution, as [`Self::add_analytics`] writes it
    /// (contributions to one hour's item in one transaction would touch it twice).
    async fn add_analytics_all(&self, cs: &[Contribution]) -> StoreResult<usize> {
        let mut applied = 0;
        for c in cs {
            applied += usize::from(self.add_analytics(c).await?);
        }
        Ok(applied)
    }

    async fn add_analytics(&self, c: &Contribution) -> StoreResult<bool> {
        // Every event of an order offers its value again: a marker already there is found
        // with a read (half a read unit: eventually consistent is enough, as a marker is
        // never removed before its TTL) instead of a refused transaction (2 write units per
        // item). A marker the read misses is still refused by the transaction's condition,
        // which decides a race too.
        if self
            .read_doc(&format!("AGG#{}", c.marker), "AGG", false)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let mut marker = base_item(format!("AGG#{}", c.marker), "AGG");
        marker.insert(
            "ttl".into(),
            n(Timestamp::now().plus_seconds(MARKER_TTL_SECS).unix()),
        );
        let put = self.put(marker, NEW)?;
        let mut adds = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        for (i, (name, v)) in c.counters.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            names.insert(format!("#c{i}"), format!("c#{name}"));
            values.insert(format!(":c{i}"), n(v));
        }
        if adds.is_empty() {
            return Ok(false);
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key(
                "pk",
                s(org_partition("ANALYTICS", &c.organization_id, c.mode)),
            )
            .key("sk", s(hour_key(c.hour)))
            .update_expression(format!("ADD {}", adds.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(StoreError::unavailable)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        // Concurrent transactions on one hour's item cancel each other
        // (`TransactionConflict`): try again a few times before giving up to the caller.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(true),
                Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tc) = e.err() else {
                        unreachable!("checked just above")
                    };
                    let codes: Vec<(usize, String)> = tc
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter_map(|(i, r)| match r.code() {
                            Some("None") | None => None,
                            Some(c) => Some((i, c.to_owned())),
                        })
                        .collect();
                    if codes
                        .iter()
                        .any(|(i, c)| *i == 0 && failed_code_is_condition(c))
                    {
                        // The marker is there: applied before.
                        return Ok(false);
                    }
                    let conflict = codes.iter().all(|(_, c)| c == "TransactionConflict");
                    if !conflict || attempt >= 8 {
                        return Err(cancelled(&codes));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(fault(e)),
            }
        }
    }

    async fn read_analytics(
        &self,
        org: &OrgId,
        mode: KeyMode,
        first_hour: i64,
        last_hour: i64,
    ) -> StoreResult<Vec<Bucket>> {
        let mut out = Vec::new();
        if last_hour < first_hour {
            return Ok(out);
        }
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":p", s(org_partition("ANALYTICS", org, mode)))
                .expression_attribute_values(":lo", s(hour_key(first_hour)))
                .expression_attribute_values(":hi", s(hour_key(last_hour)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(fault)?;
            for item in page.items() {
                let sk = string_attr(item, "sk")?;
                let hour = sk
                    .strip_prefix("HOUR#")
                    .and_then(|h| h.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("analytics key {sk}")))?;
                let mut counters = crate::analytics::Counters::new();
                for (k, v) in item {
                    if let (Some(name), AttributeValue::N(v)) = (k.strip_prefix("c#"), v) {
                        // DynamoDB adds up to 38 digits: a sum past an i64 saturates.
                        let v = v
                            .parse::<i64>()
                            .or_else(|_| v.parse::<f64>().map(crate::analytics::counter_value))
                            .map_err(|_| {
                                StoreError::Corrupt(format!("analytics counter {k} is {v}"))
                            })?;
                        counters.insert(name.to_owned(), v);
                    }
                }
                out.push(Bucket { hour, counters });
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}
