//! Merchant wallets (in their organization's partition) and xpub derivation counters.

use super::keys::mode_of;
use super::*;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

fn wallet_key(org: &OrgId, mode: KeyMode, chain: ChainId) -> (String, String) {
    (format!("ORG#{org}"), format!("WALLET#{mode}#{chain}"))
}

fn wallet_item(w: &MerchantWallet) -> Item {
    let (pk, sk) = wallet_key(&w.organization_id, mode_of(w.livemode), w.chain_id);
    let mut item = base_item(pk, &sk);
    item.insert("doc".into(), to_doc(w));
    item.insert("version".into(), n(w.version));
    // When this wallet was created, to the microsecond: a wallet deleted and created again
    // starts at version 1 again, and this tells the two apart, even within one second
    // (`created`, in seconds, is what older versions wrote and compared).
    item.insert("created_us".into(), n(w.created_at.unix_micros()));
    item
}

#[async_trait]
impl WalletStore for DynamoStore {
    async fn create_wallet(&self, w: &MerchantWallet) -> StoreResult<()> {
        match self.transact(vec![self.put(wallet_item(w), NEW)?]).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn get_wallet(
        &self,
        org: &OrgId,
        mode: KeyMode,
        chain: ChainId,
    ) -> StoreResult<Option<MerchantWallet>> {
        let (pk, sk) = wallet_key(org, mode, chain);
        self.get_doc(&pk, &sk).await?.map(|i| doc(&i)).transpose()
    }

    async fn list_wallets(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<MerchantWallet>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :prefix)")
            .expression_attribute_values(":p", s(format!("ORG#{org}")))
            .expression_attribute_values(":prefix", s(format!("WALLET#{mode}#")))
            .consistent_read(true)
            .send()
            .await
            .map_err(fault)?;
        let mut wallets = out
            .items()
            .iter()
            .map(doc::<MerchantWallet>)
            .collect::<StoreResult<Vec<_>>>()?;
        wallets.sort_by_key(|w| w.chain_id);
        Ok(wallets)
    }

    async fn update_wallet(&self, w: &MerchantWallet, expected_version: u64) -> StoreResult<()> {
        // The version read, of the same wallet: one deleted and created again starts at
        // version 1 again, so its creation time tells it from the one the copy was read from.
        self.put_guarded_same(
            wallet_item(w),
            "version",
            Guard::version(expected_version),
            Some(("created_us", n(w.created_at.unix_micros()))),
        )
        .await
    }

    async fn delete_wallet(&self, org: &OrgId, mode: KeyMode, chain: ChainId) -> StoreResult<bool> {
        let (pk, sk) = wallet_key(org, mode, chain);
        // Read first: the SDK sends a delete again when its answer is lost, and that second
        // attempt finds nothing, which answered "no such wallet" for the one it deleted.
        if self.get_doc(&pk, &sk).await?.is_none() {
            return Ok(false);
        }
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

    async fn next_xpub_index(&self, xpub: &str) -> StoreResult<u32> {
        // The counter's write carries a fresh write token, as `put_if`'s do: the SDK sends
        // the request again when its answer is lost, and that second attempt, meeting its
        // own token, is refused and answered with the counter as the first one left it. An
        // `ADD` counted twice there and skipped an index (a gap in the wallet's addresses).
        // (Another allocation of the xpub landing between the attempt and its retry moves
        // the token on: the retry then takes the next index, and one is skipped, never
        // handed out twice.)
        let token = write_token();
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(xpub_counter(xpub)))
            .update_expression("SET #n = if_not_exists(#n, :zero) + :one, #wt = :token")
            .condition_expression("attribute_not_exists(#wt) OR #wt <> :token")
            .expression_attribute_names("#n", "next")
            .expression_attribute_names("#wt", WRITE_TOKEN)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":token", token.clone())
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let counter = match res {
            Ok(out) => out.attributes,
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let UpdateItemError::ConditionalCheckFailedException(refused) = e.err() else {
                    unreachable!("checked just above")
                };
                match own_write(refused.item(), &token) {
                    Some(item) => Some(item.clone()),
                    None => {
                        return Err(StoreError::Corrupt("xpub counter refused its write".into()));
                    }
                }
            }
            Err(e) => return Err(fault(e)),
        };
        let next: u64 = match counter.as_ref().and_then(|a| a.get("next")) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("xpub counter {v}")))?,
            _ => return Err(StoreError::Corrupt("xpub counter without a value".into())),
        };
        next.checked_sub(1)
            .and_then(|i| u32::try_from(i).ok())
            .filter(|i| *i < 1 << 31)
            .ok_or_else(|| StoreError::Corrupt("derivation indexes exhausted".into()))
    }

    async fn return_xpub_index(&self, xpub: &str, index: u32) -> StoreResult<bool> {
        // Sent once, never retried by the SDK: a retry of a give-back whose answer was lost
        // could meet the counter after another order took the index again, and give it
        // back a second time (two orders, one address). Unanswered, it counts as kept.
        let once = aws_sdk_dynamodb::config::Builder::default()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled());
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(xpub_counter(xpub)))
            .update_expression("SET #n = :index")
            .condition_expression("#n = :after")
            .expression_attribute_names("#n", "next")
            .expression_attribute_values(":index", n(index))
            .expression_attribute_values(":after", n(u64::from(index) + 1))
            .customize()
            .config_override(once)
            .send()
            .await;
        match written(res) {
            Ok(given_back) => Ok(given_back),
            Err(e) => {
                tracing::warn!(error = %e, index, "a give-back of an xpub index went unanswered; the index is kept");
                Ok(false)
            }
        }
    }
}

/// The key of `xpub`'s derivation counter item.
fn xpub_counter(xpub: &str) -> Item {
    base_item(
        format!("XPUB#{}", crate::store::xpub_counter_key(xpub)),
        "XPUB",
    )
}
