//! Test harness: fresh, isolated stores per test and sample data builders.

use payorders::registry::{CurrencyRef, registry};
use payorders::store::Store;
use payorders::store::dynamo::{DynamoStore, create_table};
use payorders::store::embedded::EmbeddedStore;
use payorders::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

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

/// A DynamoDB store on a brand-new table in moto, whose client loses the answer of every
/// PutItem that succeeds on its first attempt: moto has made the write, and the SDK is told
/// `500 InternalServerError` instead, as when a connection drops or a load balancer times
/// out after DynamoDB wrote. The SDK then sends the same request again, as it would in AWS.
pub async fn dynamo_store_losing_answers() -> LosingAnswers {
    dynamo_store_losing("PutItem").await
}

/// [`dynamo_store_losing_answers`] for the DynamoDB operation `operation`.
pub async fn dynamo_store_losing(operation: &'static str) -> LosingAnswers {
    let lost = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1)),
        )
        .interceptor(LoseFirstAnswers {
            operation,
            lost: lost.clone(),
            attempts: attempts.clone(),
        })
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = unique("lost-answers");
    create_table(&client, &table)
        .await
        .expect("create the table in moto");
    LosingAnswers {
        store: DynamoStore::new(client, table),
        lost,
        attempts,
    }
}

/// A DynamoDB store whose answers [`LoseFirstAnswers`] loses, and how many it lost.
pub struct LosingAnswers {
    pub store: DynamoStore,
    pub lost: Arc<AtomicUsize>,
    /// Every attempt of the operation sent, retries included.
    pub attempts: Arc<AtomicUsize>,
}

impl LosingAnswers {
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

impl Adapter for LosingAnswers {
    fn store(&self) -> &dyn Store {
        &self.store
    }
}

/// An SDK interceptor that replaces the successful answer of each first attempt of
/// `operation` with a 500, after the service has acted on the request.
#[derive(Debug)]
pub struct LoseFirstAnswers {
    operation: &'static str,
    lost: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
}

impl Intercept for LoseFirstAnswers {
    fn name(&self) -> &'static str {
        "LoseFirstAnswers"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let first = cfg
            .load::<RequestAttempts>()
            .is_none_or(|a| a.attempts() <= 1);
        let ours = cfg
            .load::<Metadata>()
            .is_some_and(|m| m.name() == self.operation);
        if ours {
            self.attempts.fetch_add(1, Ordering::SeqCst);
        }
        if first && ours && context.response().status().is_success() {
            self.lost.fetch_add(1, Ordering::SeqCst);
            *context.response_mut() = HttpResponse::new(
                StatusCode::try_from(500u16).expect("a status code"),
                SdkBody::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"the answer was lost"}"#,
                ),
            );
        }
        Ok(())
    }
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
