//! The audit log: each entry is a row in its organization's partition and one in its
//! object's; rows past their year are dropped as entries are written.

use super::keys::{org_partition, sort_key};
use super::*;
use crate::model::AuditActor;
use rusqlite::params;

#[async_trait]
impl AuditStore for EmbeddedStore {
    async fn put_audit_entry(&self, e: &AuditEntry) -> StoreResult<()> {
        let mode = KeyMode::of(e.livemode);
        let mut partitions = vec![org_partition("AUDIT", &e.organization_id, mode)];
        if let Some(object) = &e.object_id {
            partitions.push(format!(
                "{}#{object}",
                org_partition("AUDITOF", &e.organization_id, mode)
            ));
        }
        let (id, key, expires, doc) = (
            e.id.to_string(),
            sort_key(e.created_at, e.id.as_str()),
            e.expires_at().unix(),
            to_doc(e),
        );
        let now = Timestamp::now().unix();
        // Lazy: the change it records is already durable (see `writer`).
        self.tx_lazy(move |tx| {
            exec(
                tx,
                "DELETE FROM audit_log WHERE expires_at < ?1",
                params![now],
            )
            .map_err(sql)?;
            for partition in &partitions {
                insert_new(
                    tx,
                    "INSERT INTO audit_log (id, partition_key, sort_key, expires_at, doc) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, partition, key, expires, doc],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn list_audit_entries(
        &self,
        w: &ListWindow,
        f: &AuditFilter,
    ) -> StoreResult<Page<AuditEntry>> {
        let (w, f) = (w.clone(), f.clone());
        self.read(move |tx| {
            let partition = match &f.object_id {
                Some(object) => format!(
                    "{}#{object}",
                    org_partition("AUDITOF", &w.organization_id, w.mode)
                ),
                None => org_partition("AUDIT", &w.organization_id, w.mode),
            };
            let (rows, stopped_at) =
                newest_first(tx, "audit_log", &partition, &w, |e: &AuditEntry| {
                    f.key_id.as_ref().is_none_or(
                        |k| matches!(&e.actor, AuditActor::ApiKey { key_id } if key_id == k),
                    )
                })?;
            Ok(keys::page_read(rows, w.page_size(), stopped_at))
        })
        .await
    }
}
