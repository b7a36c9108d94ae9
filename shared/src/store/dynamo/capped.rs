//! Additions to an organization's capped lists (its webhook endpoints, its API keys, per
//! mode): counted and written as one, so two additions at once never pass the limit
//! together. Each list has an item in the organization's partition (`ORG#org` /
//! `ADDED#<list>#mode`) that every addition moves to its next `version`: an addition reads
//! it, then counts the list (consistent reads), and writes its records on the condition
//! that the item is still as read. Another addition in between moved it: the write is
//! refused and counted again. Removals leave the item alone (they only make room).

use super::*;

/// Which capped list.
#[derive(Debug, Clone, Copy)]
pub(super) enum Capped {
    WebhookEndpoints,
    ApiKeys,
}

impl Capped {
    fn key(self, org: &OrgId, mode: KeyMode) -> (String, String) {
        let list = match self {
            Capped::WebhookEndpoints => "WHEP",
            Capped::ApiKeys => "APIKEY",
        };
        (format!("ORG#{org}"), format!("ADDED#{list}#{mode}"))
    }
}

/// How many times an addition counts again after another one moved the list first.
const ATTEMPTS: u32 = 5;

impl DynamoStore {
    /// The version of `list`'s additions item as stored now (`None`: never added to).
    async fn additions_read(
        &self,
        list: Capped,
        org: &OrgId,
        mode: KeyMode,
    ) -> StoreResult<Option<u64>> {
        let (pk, sk) = list.key(org, mode);
        let Some(item) = self.get_doc(&pk, &sk).await? else {
            return Ok(None);
        };
        let v = number_attr(&item, "version")?;
        u64::try_from(v)
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("additions version {v}")))
    }

    /// The put of `list`'s additions item at the version after `read`, on the condition that
    /// it is still at `read`.
    fn additions_put(
        &self,
        list: Capped,
        org: &OrgId,
        mode: KeyMode,
        read: Option<u64>,
    ) -> StoreResult<Put> {
        let (pk, sk) = list.key(org, mode);
        let mut item = base_item(pk, &sk);
        item.insert("version".into(), n(read.map_or(1, |v| v + 1)));
        guarded_put(&self.table, item, Guard::value(read))
    }

    /// `LimitReached` if `list` is full (counted now, with consistent reads); API keys count
    /// when active at `at`.
    async fn check_limit(
        &self,
        list: Capped,
        org: &OrgId,
        mode: KeyMode,
        at: Timestamp,
    ) -> StoreResult<()> {
        match list {
            Capped::WebhookEndpoints => {
                check_endpoint_limit(self.list_endpoints(org, mode).await?.len())
            }
            Capped::ApiKeys => check_key_limit(&self.list_api_keys(org, mode).await?, at),
        }
    }

    /// Writes `puts` (the first `guarded` of them guarded on their records as read, the rest
    /// new records) with `completing`, as [`Self::write_completing`] does, as an addition to
    /// `list` made at `at`: refused (`LimitReached`) when the list, counted after its
    /// additions item was read, is full. Without records of its own to guard, an addition
    /// that another got in before counts again; with them, that is a `VersionConflict` for
    /// the caller, which reads its records again.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn add_capped(
        &self,
        list: Capped,
        org: &OrgId,
        mode: KeyMode,
        at: Timestamp,
        puts: Vec<Put>,
        guarded: usize,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let attempts = if guarded == 0 { ATTEMPTS } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let read = self.additions_read(list, org, mode).await?;
            self.check_limit(list, org, mode, at).await?;
            let mut all = Vec::with_capacity(puts.len() + 1);
            all.extend(puts[..guarded].iter().cloned());
            all.push(self.additions_put(list, org, mode, read)?);
            all.extend(puts[guarded..].iter().cloned());
            match self.write_completing(all, guarded + 1, completing).await {
                Err(StoreError::VersionConflict { .. }) if attempt < attempts => {
                    // Another addition got in first, or is being written: count again.
                    let wait = std::time::Duration::from_millis(10 * u64::from(attempt));
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}
