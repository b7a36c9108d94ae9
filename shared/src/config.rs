//! Configuration, loaded once at init outside any handler.
//!
//! Names (table, queues) come from the environment. Secrets come from Secrets Manager
//! (JSON objects) when their ids are set, from the environment otherwise: the master key
//! from the secret `PAYORDERS_SECRET_ID` names, given only to the functions that derive API
//! and webhook secrets; the price, exchange and RPC settings from the one
//! `PAYORDERS_PROVIDERS_SECRET_ID` names, given to the functions that price, route and read
//! chains (and read from the first secret too, where a stack deployed before the split
//! still keeps them there).
//! `PAYORDERS_RPC_<chain_id>` sets or overrides a chain's RPC URL in either case. A Lambda
//! function's AWS endpoints follow `AWS_ENDPOINT_URL` ([`lambda_sdk_config`]); the local
//! host and the tests use `aws-config`'s chain, which also honours
//! `AWS_ENDPOINT_URL_<SERVICE>`.

use crate::model::ChainId;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub const DEFAULT_TABLE: &str = "payorders";

/// A secret value: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The secrets the functions use. In AWS they are two Secrets Manager JSON secrets, the
/// master key's `{"master_key": "…"}` and the providers' `{"coingecko_api_key": "…",
/// "changenow_api_key": "…", "rpc_urls": {"8453": "https://…"}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Secrets {
    /// Key from which API secrets and webhook signing secrets are derived.
    #[serde(default)]
    pub master_key: Option<Secret>,
    #[serde(default)]
    pub coingecko_api_key: Option<Secret>,
    #[serde(default)]
    pub changenow_api_key: Option<Secret>,
    /// RPC endpoints by chain id; they often embed provider keys, hence secret.
    #[serde(default)]
    pub rpc_urls: BTreeMap<String, Secret>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub confirmations_queue_url: Option<String>,
    pub webhooks_queue_url: Option<String>,
    pub secrets: Secrets,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read secret {id}: {reason}")]
    SecretFetch { id: String, reason: String },
    #[error("secret {id} is not the expected JSON object: {reason}")]
    SecretFormat { id: String, reason: String },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: String, reason: String },
}

impl Config {
    /// Loads from the process environment and, if configured, Secrets Manager.
    #[cfg(feature = "aws")]
    pub async fn load(sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let sm = aws_sdk_secretsmanager::Client::new(sdk);
        Self::load_from(&env, &sm).await
    }

    /// Loads from the given variables; fetches the secret only when a secret id is set.
    #[cfg(feature = "aws")]
    pub async fn load_from(
        env: &HashMap<String, String>,
        sm: &aws_sdk_secretsmanager::Client,
    ) -> Result<Self, ConfigError> {
        let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let mut secrets = match var("PAYORDERS_SECRET_ID") {
            Some(id) => fetch_secret(sm, &id).await?,
            None => Secrets {
                master_key: var("PAYORDERS_MASTER_KEY").map(Secret),
                coingecko_api_key: var("PAYORDERS_COINGECKO_API_KEY").map(Secret),
                changenow_api_key: var("PAYORDERS_CHANGENOW_API_KEY").map(Secret),
                rpc_urls: BTreeMap::new(),
            },
        };
        if let Some(id) = var("PAYORDERS_PROVIDERS_SECRET_ID") {
            secrets.add_providers(&id, fetch_secret(sm, &id).await?)?;
        }
        for (id, url) in rpc_urls_from(env)? {
            secrets.rpc_urls.insert(id.to_string(), Secret(url));
        }
        let format = crate::store::packed::FORMAT_VAR;
        crate::store::packed::writes_packed(env.get(format).map(String::as_str)).map_err(
            |reason| ConfigError::Invalid {
                var: format.to_owned(),
                reason,
            },
        )?;
        Ok(Config {
            table_name: var("PAYORDERS_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
            confirmations_queue_url: var("PAYORDERS_CONFIRMATIONS_QUEUE_URL"),
            webhooks_queue_url: var("PAYORDERS_WEBHOOKS_QUEUE_URL"),
            secrets,
        })
    }

    /// The RPC URL configured for a chain, if any.
    pub fn rpc_url(&self, chain: ChainId) -> Option<&str> {
        self.secrets
            .rpc_urls
            .get(&chain.to_string())
            .map(Secret::expose)
    }
}

/// The `PAYORDERS_RPC_<chain_id>=<url>` variables, checked.
pub fn rpc_urls_from(
    env: &HashMap<String, String>,
) -> Result<BTreeMap<ChainId, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, v) in env {
        if let Some(chain) = k.strip_prefix("PAYORDERS_RPC_") {
            let id = ChainId::parse(chain).map_err(|e| ConfigError::Invalid {
                var: k.clone(),
                reason: e.to_string(),
            })?;
            out.insert(id, v.clone());
        }
    }
    Ok(out)
}

impl Config {
    /// Every configured RPC URL, by chain.
    pub fn rpc_urls(&self) -> impl Iterator<Item = (ChainId, &str)> {
        self.secrets
            .rpc_urls
            .iter()
            .filter_map(|(k, v)| ChainId::parse(k).ok().map(|id| (id, v.expose())))
    }
}

impl Secrets {
    /// Takes the price, exchange and RPC settings of the providers' secret `id` (over any the
    /// master key's secret still holds). The master key is refused there: that secret is
    /// readable by every function that prices or reads chains, the public ones included.
    pub fn add_providers(&mut self, id: &str, providers: Secrets) -> Result<(), ConfigError> {
        if providers.master_key.is_some() {
            return Err(ConfigError::SecretFormat {
                id: id.to_owned(),
                reason: "the providers' secret holds a master_key; keep it in the master key's \
                         secret only (PAYORDERS_SECRET_ID), which only the functions that \
                         derive API and webhook secrets may read"
                    .into(),
            });
        }
        if providers.coingecko_api_key.is_some() {
            self.coingecko_api_key = providers.coingecko_api_key;
        }
        if providers.changenow_api_key.is_some() {
            self.changenow_api_key = providers.changenow_api_key;
        }
        self.rpc_urls.extend(providers.rpc_urls);
        Ok(())
    }
}

#[cfg(feature = "aws")]
async fn fetch_secret(
    sm: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> Result<Secrets, ConfigError> {
    let out = sm
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| ConfigError::SecretFetch {
            id: id.to_owned(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    let text = out
        .secret_string()
        .ok_or_else(|| ConfigError::SecretFormat {
            id: id.to_owned(),
            reason: "the secret has no string value".into(),
        })?;
    serde_json::from_str(text).map_err(|e| ConfigError::SecretFormat {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

/// The shared AWS configuration of the local host, the operator CLI and the tests: aws-config's
/// full default chain (environment, profiles and SSO, web identity, container and instance
/// credentials; `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`).
#[cfg(feature = "aws")]
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_sdk_loader().load().await
}

/// The SDK's configuration loader with our HTTPS client (reqwest: rustls on ring, the
/// workspace's one TLS stack and HTTP client). Everything but a Lambda function builds its
/// AWS clients from here; the SDK has no client of its own.
#[cfg(feature = "aws")]
pub fn aws_sdk_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::net::aws::sdk_http_client())
}

/// The AWS configuration of a Lambda function, from the variables Lambda sets and nothing
/// else: `AWS_REGION`, the execution role's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
/// `AWS_SESSION_TOKEN`, and `AWS_ENDPOINT_URL` when set (moto, `make bench`). aws-config's
/// default chain (profiles, SSO, STS web identity, the container and instance metadata
/// services) has nothing to find in a function, yet would be linked into every binary and
/// probed by its first event; this configuration never reads a file or calls a service.
#[cfg(feature = "aws")]
pub fn lambda_sdk_config() -> aws_config::SdkConfig {
    lambda_sdk_config_from(|k| std::env::var(k).ok())
}

/// [`lambda_sdk_config`] from the variables `var` gives.
#[cfg(feature = "aws")]
pub fn lambda_sdk_config_from(var: impl Fn(&str) -> Option<String>) -> aws_config::SdkConfig {
    use aws_sdk_dynamodb::config::Credentials;
    use aws_types::sdk_config::{RetryConfig, SharedCredentialsProvider};
    let var = |k: &str| var(k).filter(|v| !v.is_empty());
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
    let mut config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(region.map(aws_config::Region::new))
        .http_client(crate::net::aws::sdk_http_client())
        .retry_config(RetryConfig::standard())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .time_source(aws_smithy_async::time::SystemTimeSource::new());
    // Lambda hands the execution role's credentials to the sandbox once, for its lifetime.
    // Without them a call fails with the SDK's "no credentials" error.
    let session_token = var("AWS_SESSION_TOKEN");
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let credentials = Credentials::new(id, secret, session_token, None, "lambda");
        config = config.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    if let Some(url) = var("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(url);
    }
    config.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secrets {
            master_key: Some(Secret::new("hunter2")),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
