//! Organizations and their checkout page settings.

use super::*;

#[async_trait]
impl OrgStore for DynamoStore {
    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        let mut item = base_item(format!("ORG#{}", org.id), "ORG");
        item.insert("doc".into(), to_doc(org));
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(NEW)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(StoreError::AlreadyExists)
            }
            Err(e) => Err(fault(e)),
        }
    }

    async fn get_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        self.get_doc(&format!("ORG#{id}"), "ORG")
            .await?
            .map(|i| doc(&i))
            .transpose()
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
