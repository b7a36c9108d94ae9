//! Test harness: fresh, isolated stores per test and sample data builders.

use payorders::registry::{CurrencyRef, registry};
use payorders::store::Store;
use payorders::store::dynamo::{DynamoStore, create_table};
use payorders::store::embedded::EmbeddedStore;
use payorders::*;

/// The moto server endpoint `make test` exported. Missing is a failure, never a skip.
pub fn aws_endpoint() -> String {
    std::env::var("PAYORDERS_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "PAYORDERS_TEST_AWS_ENDPOINT is not set. The DynamoDB and Secrets Manager tests \
             run against moto server: use `make test`, which installs and starts it."
        )
    })
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    payorders::config::aws_sdk_loader()
        .endpoint_url(aws_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        OrderId::generate().as_str().trim_start_matches("po_")
    )
}

/// A DynamoDB store on a brand-new table in moto.
pub async fn dynamo_store() -> DynamoStore {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique("conformance");
    create_table(&client, &table)
        .await
        .expect("create the table in moto");
    DynamoStore::new(client, table)
}

/// An embedded store in a fresh SQLite file (WAL mode, as `make dev` uses), in a temporary
/// directory removed with it.
pub async fn embedded_store() -> TempStore {
    let dir = tempfile::Builder::new()
        .prefix("payorders-conformance-")
        .tempdir()
        .expect("a temporary directory");
    let store = EmbeddedStore::open(&dir.path().join("store.db")).expect("open a SQLite file");
    TempStore { store, _dir: dir }
}

/// An embedded store and the directory of its file (removed after the store is dropped).
pub struct TempStore {
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

/// A store adapter as the conformance suite takes it.
pub trait Adapter {
    fn store(&self) -> &dyn Store;
}

impl Adapter for TempStore {
    fn store(&self) -> &dyn Store {
        &self.store
    }
}

impl Adapter for DynamoStore {
    fn store(&self) -> &dyn Store {
        self
    }
}

pub fn base_usdc() -> registry::Currency {
    registry()
        .currency(&CurrencyRef {
            chain_id: ChainId::new(8453).unwrap(),
            address: Some("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913".into()),
        })
        .unwrap()
}

pub fn currency(chain: u64, symbol: &str) -> registry::Currency {
    registry()
        .chain(ChainId::new(chain).unwrap())
        .unwrap()
        .currency_by_symbol(symbol)
        .unwrap()
}

/// A PENDING order of `org` created at `created_at`.
pub fn order(org: &OrgId, livemode: bool, created_at: Timestamp) -> PayOrder {
    payorders::testing::order(org, livemode, created_at)
}

pub fn t0() -> Timestamp {
    Timestamp::parse("2026-06-01T12:00:00Z").unwrap()
}
