//! Webhook endpoints (in their organization's partition) and deliveries.

use super::capped::Capped;
use super::events::event_item;
use super::idempotency::{completion_put, taken_over};
use super::keys::{mode_of, sort_key};
use super::*;

fn endpoint_key(org: &OrgId, mode: KeyMode, id: &WebhookEndpointId) -> (String, String) {
    (format!("ORG#{org}"), format!("WHEP#{mode}#{id}"))
}

fn endpoint_item(e: &WebhookEndpoint) -> Item {
    let (pk, sk) = endpoint_key(&e.organization_id, mode_of(e.livemode), &e.id);
    let mut item = base_item(pk, &sk);
    item.insert("doc".into(), to_doc(e));
    item.insert("version".into(), n(e.version));
    item
}

fn delivery_item(d: &Delivery) -> Item {
    let mut item = base_item(format!("DELIVERY#{}", d.id), "DELIVERY");
    item.insert("doc".into(), to_doc(d));
    item.insert("version".into(), n(d.version));
    item.insert("gsi4pk".into(), s(delivery_partition(d)));
    item.insert("gsi4sk".into(), s(sort_key(d.created_at, d.id.as_str())));
    item
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn create_endpoint(
        &self,
        e: &WebhookEndpoint,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let (org, mode) = (&e.organization_id, mode_of(e.livemode));
        let puts = vec![self.put(endpoint_item(e), NEW)?];
        let list = Capped::WebhookEndpoints;
        self.add_capped(list, org, mode, e.created_at, puts, 0, completing)
            .await
    }

    async fn get_endpoint(
        &self,
        org: &OrgId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        for mode in [KeyMode::Test, KeyMode::Live] {
            let (pk, sk) = endpoint_key(org, mode, id);
            if let Some(item) = self.get_doc(&pk, &sk).await? {
                return doc(&item).map(Some);
            }
        }
        Ok(None)
    }

    async fn update_endpoint(
        &self,
        e: &WebhookEndpoint,
        expected_version: u64,
        event: Option<&Event>,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let guard = Guard::existing(expected_version);
        let mut puts = vec![guarded_put(&self.table, endpoint_item(e), guard)?];
        if let Some(ev) = event {
            puts.push(self.put(event_item(ev), NEW)?);
        }
        let at = puts.len();
        puts.extend(completion_put(&self.table, completing)?);
        match self.transact(puts).await? {
            Ok(()) => Ok(()),
            Err(failed) if taken_over(&failed, at, completing) => {
                Err(StoreError::IdempotencyKeyTakenOver)
            }
            Err(failed)
                if failed
                    .iter()
                    .any(|(i, c)| *i == 0 && condition_or_conflict(c)) =>
            {
                let stored = self.get_endpoint(&e.organization_id, &e.id).await?;
                Err(guard.refused(stored.map(|s| s.version)))
            }
            Err(failed) => Err(cancelled(&failed)),
        }
    }

    async fn delete_endpoint(&self, org: &OrgId, id: &WebhookEndpointId) -> StoreResult<bool> {
        let Some(e) = self.get_endpoint(org, id).await? else {
            return Ok(false);
        };
        let (pk, sk) = endpoint_key(org, mode_of(e.livemode), id);
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(fault)?;
        Ok(true)
    }

    async fn list_endpoints(
        &self,
        org: &OrgId,
        mode: KeyMode,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let mut out: Vec<WebhookEndpoint> = self.org_records(org, &format!("WHEP#{mode}#")).await?;
        out.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        Ok(out)
    }

    async fn create_delivery(&self, d: &Delivery) -> StoreResult<bool> {
        match self
            .transact(vec![self.put(delivery_item(d), NEW)?])
            .await?
        {
            Ok(()) => Ok(true),
            Err(failed) if failed.iter().all(|(_, c)| failed_code_is_condition(c)) => Ok(false),
            Err(failed) => Err(cancelled(&failed)),
        }
    }

    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        self.get_doc(&format!("DELIVERY#{id}"), "DELIVERY")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn update_delivery(&self, d: &Delivery, expected_version: u64) -> StoreResult<()> {
        self.put_guarded(
            delivery_item(d),
            "version",
            Guard::version(expected_version),
        )
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint: &WebhookEndpointId,
        w: &ListWindow,
    ) -> StoreResult<Page<Delivery>> {
        self.page_newest_first(
            "deliveries_by_endpoint",
            "gsi4pk",
            "gsi4sk",
            format!("DELIVERIES#{endpoint}"),
            w,
            |id| (format!("DELIVERY#{id}"), "DELIVERY".into()),
            Filter::default(),
            |_: &Delivery| true,
        )
        .await
    }
}
