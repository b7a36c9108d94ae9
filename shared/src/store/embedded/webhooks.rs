//! Webhook endpoints and deliveries.

use super::events::insert_event;
use super::keys::sort_key;
use super::*;
use rusqlite::params;

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn create_endpoint(
        &self,
        e: &WebhookEndpoint,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let (e, completing) = (e.clone(), completing.cloned());
        self.tx(move |tx| {
            // Counted inside the write's transaction: no other addition falls in between.
            let count: i64 = row(
                tx,
                "SELECT COUNT(*) FROM webhook_endpoints WHERE org_id = ?1 AND mode = ?2",
                params![
                    e.organization_id.as_str(),
                    keys::mode_of(e.livemode).as_str()
                ],
                |r| r.get(0),
            )
            .map_err(sql)?;
            crate::store::check_endpoint_limit(usize::try_from(count).unwrap_or(usize::MAX))?;
            insert_new(tx, "INSERT INTO webhook_endpoints (id, org_id, mode, sort_key, version, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", params![
                    e.id.as_str(),
                    e.organization_id.as_str(),
                    keys::mode_of(e.livemode).as_str(),
                    sort_key(e.created_at, e.id.as_str()),
                    e.version as i64,
                    to_doc(&e)
                ])?;
            super::idempotency::write_completion(tx, completing.as_ref())
        })
        .await
    }

    async fn get_endpoint(
        &self,
        org: &OrgId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let (org, id) = (org.clone(), id.to_string());
        self.point(move |tx| {
            let e: Option<WebhookEndpoint> =
                one_doc(tx, "SELECT doc FROM webhook_endpoints WHERE id = ?1", &id)?;
            Ok(e.filter(|e| e.organization_id == org))
        })
        .await
    }

    async fn update_endpoint(
        &self,
        e: &WebhookEndpoint,
        expected_version: u64,
        event: Option<&Event>,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let (e, event, completing) = (e.clone(), event.cloned(), completing.cloned());
        self.tx(move |tx| {
            let (id, org) = (e.id.as_str(), e.organization_id.as_str());
            check_guard(
                tx,
                Guard::existing(expected_version),
                "SELECT version FROM webhook_endpoints WHERE id = ?1 AND org_id = ?2",
                params![id, org],
            )?;
            exec(
                tx,
                "UPDATE webhook_endpoints SET version = ?3, doc = ?4 WHERE id = ?1 AND org_id = ?2",
                params![id, org, e.version as i64, to_doc(&e)],
            )
            .map_err(sql)?;
            if let Some(ev) = &event {
                insert_event(tx, ev)?;
            }
            super::idempotency::write_completion(tx, completing.as_ref())
        })
        .await
    }

    async fn delete_endpoint(&self, org: &OrgId, id: &WebhookEndpointId) -> StoreResult<bool> {
        let (org, id) = (org.to_string(), id.to_string());
        self.tx(move |tx| {
            let n = exec(
                tx,
                "DELETE FROM webhook_endpoints WHERE id = ?1 AND org_id = ?2",
                params![id, org],
            )
            .map_err(sql)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_endpoints(
        &self,
        org: &OrgId,
        mode: KeyMode,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let org = org.to_string();
        self.read(move |tx| {
            docs(tx, "SELECT doc FROM webhook_endpoints WHERE org_id = ?1 AND mode = ?2 ORDER BY sort_key", params![org, mode.as_str()])
        })
        .await
    }

    async fn create_delivery(&self, d: &Delivery) -> StoreResult<bool> {
        let d = d.clone();
        self.tx(move |tx| {
            let n = exec(
                tx,
                    "INSERT INTO deliveries (id, partition_key, sort_key, version, doc) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (id) DO NOTHING",
                    params![
                        d.id.as_str(),
                        crate::store::delivery_partition(&d),
                        sort_key(d.created_at, d.id.as_str()),
                        d.version as i64,
                        to_doc(&d)
                    ],
                )
                .map_err(sql)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        let id = id.to_string();
        self.point(move |tx| one_doc(tx, "SELECT doc FROM deliveries WHERE id = ?1", &id))
            .await
    }

    async fn update_delivery(&self, d: &Delivery, expected_version: u64) -> StoreResult<()> {
        let d = d.clone();
        self.tx(move |tx| {
            check_guard(
                tx,
                Guard::version(expected_version),
                "SELECT version FROM deliveries WHERE id = ?1",
                [d.id.as_str()],
            )?;
            exec(
                tx,
                "UPDATE deliveries SET version = ?2, doc = ?3 WHERE id = ?1",
                params![d.id.as_str(), d.version as i64, to_doc(&d)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint: &WebhookEndpointId,
        w: &ListWindow,
    ) -> StoreResult<Page<Delivery>> {
        let (partition, w) = (format!("DELIVERIES#{endpoint}"), w.clone());
        self.read(move |tx| {
            let (rows, stopped_at) =
                newest_first(tx, "deliveries", &partition, &w, |_: &Delivery| true)?;
            Ok(keys::page_read(rows, w.page_size(), stopped_at))
        })
        .await
    }
}
