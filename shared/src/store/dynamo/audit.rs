//! The audit log: each entry is two items written together, one in its organization's
//! partition of the `events_by_org` index and one in its object's, so both listings are a
//! query; DynamoDB's TTL drops them after a year.

use super::keys::{mode_of, org_partition, sort_key};
use super::*;

fn object_partition(e: &AuditEntry, object: &str) -> String {
    format!(
        "{}#{object}",
        org_partition("AUDITOF", &e.organization_id, mode_of(e.livemode))
    )
}

fn entry_item(pk: String, partition: String, e: &AuditEntry) -> Item {
    let mut item = base_item(pk, "AUDIT");
    item.insert("doc".into(), to_doc(e));
    item.insert("gsi3pk".into(), s(partition));
    item.insert("gsi3sk".into(), s(sort_key(e.created_at, e.id.as_str())));
    item.insert("ttl".into(), n(e.expires_at().unix()));
    if let AuditActor::ApiKey { key_id } = &e.actor {
        item.insert("key_id".into(), s(key_id.as_str()));
    }
    item
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn put_audit_entry(&self, e: &AuditEntry) -> StoreResult<()> {
        let org = org_partition("AUDIT", &e.organization_id, mode_of(e.livemode));
        let mut puts = vec![self.put(entry_item(format!("AUDIT#{}", e.id), org, e), NEW)?];
        if let Some(object) = &e.object_id {
            let item = entry_item(format!("AUDITOF#{}", e.id), object_partition(e, object), e);
            puts.push(self.put(item, NEW)?);
        }
        match self.transact(puts).await? {
            Ok(()) => Ok(()),
            Err(failed) if failed.iter().any(|(_, c)| failed_code_is_condition(c)) => {
                Err(StoreError::AlreadyExists)
            }
            Err(failed) => Err(cancelled(&failed)),
        }
    }

    async fn list_audit_entries(
        &self,
        w: &ListWindow,
        f: &AuditFilter,
    ) -> StoreResult<Page<AuditEntry>> {
        let mut filter = Filter::default();
        if let Some(k) = &f.key_id {
            filter.eq("key_id", s(k.as_str()));
        }
        let (partition, prefix) = match &f.object_id {
            Some(object) => (
                format!(
                    "{}#{object}",
                    org_partition("AUDITOF", &w.organization_id, w.mode)
                ),
                "AUDITOF",
            ),
            None => (org_partition("AUDIT", &w.organization_id, w.mode), "AUDIT"),
        };
        self.page_newest_first(
            "events_by_org",
            "gsi3pk",
            "gsi3sk",
            partition,
            w,
            |id| (format!("{prefix}#{id}"), "AUDIT".into()),
            filter,
        )
        .await
    }
}
