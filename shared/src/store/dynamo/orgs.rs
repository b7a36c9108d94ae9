//! Organizations (with their per-mode settings, under a version) and their checkout page
//! settings.

use super::*;

fn org_item(org: &Organization) -> Item {
    let mut item = base_item(format!("ORG#{}", org.id), "ORG");
    item.insert("doc".into(), to_doc(org));
    item.insert("version".into(), n(org.version));
    item
}

#[async_trait]
impl OrgStore for DynamoStore {
    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        let item = org_item(org);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(NEW);
        if self.put_if(put).await.map_err(fault)? {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists)
        }
    }

    async fn get_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        self.get_doc(&format!("ORG#{id}"), "ORG")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn update_organization(
        &self,
        org: &Organization,
        expected_version: u64,
    ) -> StoreResult<()> {
        let guard = Guard::existing(expected_version);
        // Records written before versions have no `version`: they are at 0.
        let condition = if expected_version == 0 {
            "attribute_exists(pk) AND (attribute_not_exists(#v) OR #v = :v)"
        } else {
            "#v = :v"
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(org_item(org)))
            .condition_expression(condition)
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", n(expected_version));
        if self.put_if(put).await.map_err(fault)? {
            return Ok(());
        }
        let now = self.get_organization(&org.id).await?;
        Err(guard.refused(now.map(|o| o.version)))
    }

    async fn get_checkout_settings(&self, org: &OrgId) -> StoreResult<Option<CheckoutSettings>> {
        self.get_doc(&format!("ORG#{org}"), "CHECKOUT")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn put_checkout_settings(&self, org: &OrgId, st: &CheckoutSettings) -> StoreResult<()> {
        let mut item = base_item(format!("ORG#{org}"), "CHECKOUT");
        item.insert("doc".into(), to_doc(st));
        self.put_item(item).await
    }
}
