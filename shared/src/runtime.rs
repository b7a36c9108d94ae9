//! What a function's `main` needs, built once at init outside the handler: tracing and the
//! services (store, master key) chosen from config.

use crate::auth::MasterKey;
use crate::pricing::PriceSource;
use crate::queue::Queue;
use crate::routing::Router;
use crate::store::Store;
use std::sync::Arc;

/// The adapters a handler uses. Functions depend on the traits, never on an adapter.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    /// Present where secrets must be sealed or opened (authorizer, key and webhook admin).
    pub master: Option<MasterKey>,
    /// Where webhook deliveries are queued, when this function sends any.
    pub webhooks: Option<Arc<dyn Queue>>,
    /// Where confirmation checks are queued, when this function records payments.
    pub confirmations: Option<Arc<dyn Queue>>,
    /// Delays between confirmation checks.
    pub check_delays: CheckDelays,
    /// USD prices (CoinGecko in AWS; a fixed table under the local host and in tests).
    pub prices: Option<Arc<dyn PriceSource>>,
    /// Exchange routing (ChangeNOW when its key is configured).
    pub router: Option<Arc<dyn Router>>,
    /// The chains with a configured RPC endpoint.
    #[cfg(feature = "chains")]
    pub chains: Arc<crate::chains::Chains>,
}

/// First and longest delay between two confirmation checks of an order (the delay doubles
/// from the first); the local host shortens them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckDelays {
    pub first_secs: u32,
    pub max_secs: u32,
}

impl Default for CheckDelays {
    fn default() -> Self {
        Self {
            first_secs: 5,
            max_secs: 900,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("master key: {0}")]
    MasterKey(#[from] crate::auth::SealError),
    #[error("this function needs the master key, and none is configured")]
    NoMasterKey,
    #[error("this function needs a queue, and {0} is not set")]
    NoQueue(&'static str),
}

#[cfg(feature = "aws")]
impl Services {
    /// Services for a Lambda function: DynamoDB store, master key if configured.
    pub async fn from_env() -> Result<Self, InitError> {
        Self::from_sdk(&crate::config::aws_sdk_config().await).await
    }

    /// As [`Services::from_env`], for a `main` that uses the AWS config itself too.
    pub async fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, InitError> {
        use crate::config::Config;
        use crate::pricing::coingecko::{self, CoinGecko};
        use crate::queue::SqsQueue;
        use crate::routing::changenow::{self, ChangeNow};
        use crate::store::dynamo::DynamoStore;
        use std::time::Duration;
        let config = Config::load(sdk).await?;
        let master = config
            .secrets
            .master_key
            .as_ref()
            .map(|k| MasterKey::from_text(k.expose()))
            .transpose()?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name);
        let webhooks = config.webhooks_queue_url.as_ref().map(|url| {
            Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url)) as Arc<dyn Queue>
        });
        // CoinGecko, on the pro endpoint when a key is configured; answers cached 30 s.
        let key = config
            .secrets
            .coingecko_api_key
            .as_ref()
            .map(|k| k.expose().to_owned());
        let base = if key.is_some() {
            coingecko::PRO_BASE_URL
        } else {
            coingecko::DEMO_BASE_URL
        };
        let pro = key.is_some();
        let prices: Arc<dyn PriceSource> = Arc::new(CoinGecko::new(
            base,
            key,
            pro,
            Duration::from_secs(5),
            Duration::from_secs(30),
        ));
        let confirmations = config.confirmations_queue_url.as_ref().map(|url| {
            Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url)) as Arc<dyn Queue>
        });
        Ok(Self {
            store: Arc::new(store),
            master,
            webhooks,
            confirmations,
            check_delays: CheckDelays::default(),
            prices: Some(prices),
            #[cfg(feature = "chains")]
            chains: Arc::new(
                crate::chains::Chains::from_rpc_urls(config.rpc_urls()).map_err(|e| {
                    InitError::Config(crate::config::ConfigError::Invalid {
                        var: "rpc_urls".into(),
                        reason: e.to_string(),
                    })
                })?,
            ),
            router: config.secrets.changenow_api_key.as_ref().map(|k| {
                Arc::new(ChangeNow::new(
                    changenow::BASE_URL,
                    k.expose(),
                    Duration::from_secs(10),
                )) as Arc<dyn Router>
            }),
        })
    }
}

impl Services {
    pub fn master(&self) -> Result<&MasterKey, InitError> {
        self.master.as_ref().ok_or(InitError::NoMasterKey)
    }

    /// The payment pipeline (recording payments, confirmation checks).
    #[cfg(feature = "chains")]
    pub fn settler(&self) -> Result<crate::payments::Settler, InitError> {
        Ok(crate::payments::Settler {
            store: self.store.clone(),
            chains: self.chains.clone(),
            confirmations: self
                .confirmations
                .clone()
                .ok_or(InitError::NoQueue("PAYORDERS_CONFIRMATIONS_QUEUE_URL"))?,
            check_delay_secs: self.check_delays.first_secs,
            max_check_delay_secs: self.check_delays.max_secs,
        })
    }

    pub fn webhooks(&self) -> Result<&Arc<dyn Queue>, InitError> {
        self.webhooks
            .as_ref()
            .ok_or(InitError::NoQueue("PAYORDERS_WEBHOOKS_QUEUE_URL"))
    }
}

/// JSON logs in Lambda (CloudWatch parses them), level from `RUST_LOG` (default info).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time() // CloudWatch stamps every line
        .with_target(false)
        .init();
}
