//! What a function's `main` needs: tracing at init, and the services (store, queues, master
//! key) chosen from config, built once on the first invocation ([`OnFirstUse`]).

use crate::auth::MasterKey;
use crate::pricing::PriceSource;
use crate::queue::Queue;
use crate::routing::Router;
use crate::store::Store;
use std::future::Future;
use std::pin::Pin;
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
    #[error("a queue URL is configured, and this function is built without SQS (feature `sqs`)")]
    NoSqs,
}

#[cfg(feature = "aws")]
impl Services {
    /// Services for a Lambda function ([`crate::config::lambda_sdk_config`]): DynamoDB store,
    /// master key if configured, and what the binary's features include.
    pub async fn from_env() -> Result<Self, InitError> {
        Self::from_sdk(&crate::config::lambda_sdk_config()).await
    }

    /// As [`Services::from_env`], for a `main` that uses the AWS config itself too.
    ///
    /// What a function links is what it builds here, so the optional parts follow the
    /// binary's features: the SQS queues (`sqs`, where `PAYORDERS_*_QUEUE_URL` is set), the
    /// price and exchange clients (`pricing`), the chain readers (`chains`). A function's
    /// Cargo features name what it uses; a test (iam.rs) checks them against its code.
    pub async fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, InitError> {
        use crate::config::Config;
        use crate::store::dynamo::DynamoStore;
        let config = Config::load(sdk).await?;
        let master = config
            .secrets
            .master_key
            .as_ref()
            .map(|k| MasterKey::from_text(k.expose()))
            .transpose()?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name);
        #[cfg(feature = "sqs")]
        let (webhooks, confirmations) = {
            use crate::queue::SqsQueue;
            let sqs = aws_sdk_sqs::Client::new(sdk);
            let queue = |url: &String| Arc::new(SqsQueue::new(sqs.clone(), url)) as Arc<dyn Queue>;
            (
                config.webhooks_queue_url.as_ref().map(queue),
                config.confirmations_queue_url.as_ref().map(queue),
            )
        };
        #[cfg(not(feature = "sqs"))]
        let (webhooks, confirmations) =
            match (&config.webhooks_queue_url, &config.confirmations_queue_url) {
                (None, None) => (None, None),
                _ => return Err(InitError::NoSqs),
            };
        #[cfg(feature = "pricing")]
        let (prices, router) = pricing_clients(&config);
        #[cfg(not(feature = "pricing"))]
        let (prices, router) = (None, None);
        Ok(Self {
            store: Arc::new(store),
            master,
            webhooks,
            confirmations,
            check_delays: CheckDelays::default(),
            prices,
            router,
            #[cfg(feature = "chains")]
            chains: Arc::new(
                crate::chains::Chains::from_rpc_urls(config.rpc_urls()).map_err(|e| {
                    InitError::Config(crate::config::ConfigError::Invalid {
                        var: "rpc_urls".into(),
                        reason: e.to_string(),
                    })
                })?,
            ),
        })
    }
}

/// CoinGecko (on the pro endpoint when a key is configured; answers cached 30 s) and
/// ChangeNOW (when its key is configured).
#[cfg(all(feature = "aws", feature = "pricing"))]
#[allow(clippy::type_complexity)]
fn pricing_clients(
    config: &crate::config::Config,
) -> (Option<Arc<dyn PriceSource>>, Option<Arc<dyn Router>>) {
    use crate::pricing::coingecko::{self, CoinGecko};
    use crate::routing::changenow::{self, ChangeNow};
    use std::time::Duration;
    let key = config
        .secrets
        .coingecko_api_key
        .as_ref()
        .map(|k| k.expose().to_owned());
    let (base, pro) = match key {
        Some(_) => (coingecko::PRO_BASE_URL, true),
        None => (coingecko::DEMO_BASE_URL, false),
    };
    let prices = Arc::new(CoinGecko::new(
        base,
        key,
        pro,
        Duration::from_secs(5),
        Duration::from_secs(30),
    )) as Arc<dyn PriceSource>;
    let router = config.secrets.changenow_api_key.as_ref().map(|k| {
        Arc::new(ChangeNow::new(
            changenow::BASE_URL,
            k.expose(),
            Duration::from_secs(10),
        )) as Arc<dyn Router>
    });
    (Some(prices), router)
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

/// The error a Lambda handler may return (the same as `lambda_runtime::Error`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Make<T> =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>> + Send + Sync>;

/// What a function builds on its first invocation rather than at init, so that a cold start
/// does no more than a hello-world function: the SDK configuration, the secret's read and the
/// clients wait for the first event, which needs them anyway. A failure there fails that one
/// invocation (Lambda reports it) and is tried again on the next, instead of ending the
/// sandbox. Later invocations get the built value at once.
pub struct OnFirstUse<T> {
    cell: tokio::sync::OnceCell<T>,
    make: Make<T>,
}

impl<T: Send + Sync> OnFirstUse<T> {
    pub fn new<F, Fut, E>(make: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self {
            cell: tokio::sync::OnceCell::new(),
            make: Box::new(move || {
                let fut = make();
                Box::pin(async move { fut.await.map_err(Into::into) })
            }),
        }
    }

    /// The value, built by the first caller (concurrent callers wait for that one build).
    pub async fn get(&self) -> Result<&T, BoxError> {
        self.cell.get_or_try_init(|| (self.make)()).await
    }
}

#[cfg(feature = "aws")]
impl OnFirstUse<Services> {
    /// [`Services::from_env`], built on the first invocation.
    pub fn services() -> Self {
        Self::new(Services::from_env)
    }
}

#[cfg(all(feature = "sqs", feature = "chains"))]
impl OnFirstUse<crate::payments::Settler> {
    /// The payment pipeline alone (the deposit scan, the upkeep), built on the first event.
    pub fn settler() -> Self {
        Self::new(|| async { Ok::<_, BoxError>(Services::from_env().await?.settler()?) })
    }
}

#[cfg(all(feature = "sqs", feature = "chains"))]
impl OnFirstUse<(Services, crate::payments::Settler)> {
    /// The services and the payment pipeline (the routes that record payments), built on the
    /// first event.
    pub fn services_and_settler() -> Self {
        Self::new(|| async {
            let services = Services::from_env().await?;
            let settler = services.settler()?;
            Ok::<_, BoxError>((services, settler))
        })
    }
}

/// JSON logs in Lambda (CloudWatch parses them), level from `RUST_LOG` (default info).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `target=level` directives (`info`, `payorders=debug,warn`), without EnvFilter's span and
    // field matching: that would link a regex engine into every function for nothing.
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time() // CloudWatch stamps every line
                .with_target(false),
        )
        .with(filter)
        .init();
}
