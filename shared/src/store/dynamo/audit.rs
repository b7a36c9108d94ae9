//! The audit log: each entry is one item, in its organization's partition of the
//! `events_by_org` index and, when it is about an object, in that object's partition of the
//! `deliveries_by_endpoint` index (free for other entries: that index is sparse), so both
//! listings are a query of one partition; DynamoDB's TTL drops entries after a year.

use super::keys::{mode_of, org_partition, sort_key};
use super::*;
use crate::model::AuditActor;

fn object_partition(org: &OrgId, mode: KeyMode, object: &str) -> String {
    format!("{}#{object}", org_partition("AUDITOF", org, mode))
}

fn entry_item(e: &AuditEntry) -> Item {
    let mode = mode_of(e.livemode);
    let mut item = base_item(format!("AUDIT#{}", e.id), "AUDIT");
    item.insert("doc".into(), to_doc(e));
    let sk = sort_key(e.created_at, e.id.as_str());
    item.insert(
        "gsi3pk".into(),
        s(org_partition("AUDIT", &e.organization_id, mode)),
    );
    item.insert("gsi3sk".into(), s(&sk));
    if let Some(object) = &e.object_id {
        item.insert(
            "gsi4pk".into(),
            s(object_partition(&e.organization_id, mode, object)),
        );
        item.insert("gsi4sk".into(), s(sk));
    }
    item.insert("ttl".into(), n(e.expires_at().unix()));
    if let AuditActor::ApiKey { key_id } = &e.actor {
        item.insert("key_id".into(), s(key_id.as_str()));
    }
    item
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn put_audit_entry(&self, e: &AuditEntry) -> StoreResult<()> {
        match self.transact(vec![self.put(entry_item(e), NEW)?]).await? {
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
        let (index, pk_attr, sk_attr, partition) = match &f.object_id {
            Some(object) => (
                "deliveries_by_endpoint",
                "gsi4pk",
                "gsi4sk",
                object_partition(&w.organization_id, w.mode, object),
            ),
            None => (
                "events_by_org",
                "gsi3pk",
                "gsi3sk",
                org_partition("AUDIT", &w.organization_id, w.mode),
            ),
        };
        self.page_newest_first(
            index,
            pk_attr,
            sk_attr,
            partition,
            w,
            |id| (format!("AUDIT#{id}"), "AUDIT".into()),
            filter,
            |_: &AuditEntry| true,
        )
        .await
    }
}
