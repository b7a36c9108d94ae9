//! Organizations (with their per-mode settings, under a version) and their checkout page
//! settings.

use super::*;
use rusqlite::params;

#[async_trait]
impl OrgStore for EmbeddedStore {
    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        let (id, doc) = (org.id.to_string(), to_doc(org));
        self.tx(move |tx| {
            insert_new(
                tx,
                "INSERT INTO organizations (id, doc) VALUES (?1, ?2)",
                params![id, doc],
            )
        })
        .await
    }

    async fn get_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        let id = id.to_string();
        self.point(move |tx| one_doc(tx, "SELECT doc FROM organizations WHERE id = ?1", &id))
            .await
    }

    async fn update_organization(
        &self,
        org: &Organization,
        expected_version: u64,
    ) -> StoreResult<()> {
        let (id, doc) = (org.id.to_string(), to_doc(org));
        self.tx(move |tx| {
            let stored: Option<Organization> =
                one_doc(tx, "SELECT doc FROM organizations WHERE id = ?1", &id)?;
            Guard::existing(expected_version).check(stored.map(|o| o.version))?;
            exec(
                tx,
                "UPDATE organizations SET doc = ?2 WHERE id = ?1",
                params![id, doc],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn get_checkout_settings(&self, org: &OrgId) -> StoreResult<Option<CheckoutSettings>> {
        let id = org.to_string();
        self.point(move |tx| {
            one_doc(
                tx,
                "SELECT doc FROM checkout_settings WHERE org_id = ?1",
                &id,
            )
        })
        .await
    }

    async fn put_checkout_settings(&self, org: &OrgId, s: &CheckoutSettings) -> StoreResult<()> {
        let (id, doc) = (org.to_string(), to_doc(s));
        self.tx(move |tx| {
            exec(
                tx,
                "INSERT INTO checkout_settings (org_id, doc) VALUES (?1, ?2) \
                 ON CONFLICT (org_id) DO UPDATE SET doc = excluded.doc",
                params![id, doc],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
