//! Choosing the store, the development master key, and the demo organization.

use anyhow::{Context, bail};
use payorders::auth::{self, MasterKey};
use payorders::store::Store;
use payorders::store::embedded::EmbeddedStore;
use payorders::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which store to use.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// SQLite file (the default for `make dev`).
    Embedded(PathBuf),
    /// DynamoDB (AWS, or moto via `AWS_ENDPOINT_URL`); creates the table if asked.
    Dynamo { table: String, create: bool },
}

/// An open store; `embedded` is set for the SQLite store, whose outbox the local host
/// reads in place of the DynamoDB stream.
pub struct OpenStore {
    pub store: Arc<dyn Store>,
    pub embedded: Option<EmbeddedStore>,
}

pub async fn open_store(choice: &StoreChoice) -> anyhow::Result<OpenStore> {
    Ok(match choice {
        StoreChoice::Embedded(path) => {
            let e =
                EmbeddedStore::open(path).with_context(|| format!("opening {}", path.display()))?;
            OpenStore {
                store: Arc::new(e.clone()),
                embedded: Some(e),
            }
        }
        StoreChoice::Dynamo { table, create } => {
            if *create {
                create_dynamo_table(table).await?;
            }
            OpenStore {
                store: aws::dynamo_store(table).await?,
                embedded: None,
            }
        }
    })
}

/// Creates the DynamoDB table with its indexes, stream and TTL; `false` when it exists.
pub async fn create_dynamo_table(table: &str) -> anyhow::Result<bool> {
    aws::create_table(table).await
}

/// What needs the AWS SDK, which `make dev` leaves out of its build.
#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use payorders::store::dynamo::{self, DynamoStore};

    async fn client() -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&payorders::config::aws_sdk_config().await)
    }

    pub async fn create_table(table: &str) -> anyhow::Result<bool> {
        match dynamo::create_table(&client().await, table).await {
            Ok(()) => Ok(true),
            Err(payorders::store::StoreError::AlreadyExists) => Ok(false),
            Err(e) => bail!("could not create table {table}: {e}"),
        }
    }

    pub async fn dynamo_store(table: &str) -> anyhow::Result<Arc<dyn Store>> {
        Ok(Arc::new(DynamoStore::new(client().await, table)))
    }

    pub async fn secrets() -> anyhow::Result<payorders::config::Secrets> {
        let sdk = payorders::config::aws_sdk_config().await;
        Ok(payorders::config::Config::load(&sdk).await?.secrets)
    }
}

#[cfg(not(feature = "aws"))]
mod aws {
    use super::*;

    const NOT_BUILT: &str = "this `payorders` was built without AWS support (`make dev` builds \
        it so, for a faster first build); build it with `cargo build --bin payorders` for \
        DynamoDB and Secrets Manager";

    pub async fn create_table(_: &str) -> anyhow::Result<bool> {
        bail!(NOT_BUILT)
    }

    pub async fn dynamo_store(_: &str) -> anyhow::Result<Arc<dyn Store>> {
        bail!(NOT_BUILT)
    }

    pub async fn secrets() -> anyhow::Result<payorders::config::Secrets> {
        bail!(NOT_BUILT)
    }
}

/// The master key the commands seal and open secrets with. DynamoDB holds what the deployed
/// functions serve, so its key is theirs: `master_key` in the Secrets Manager secret named
/// by `PAYORDERS_SECRET_ID` (unset is an error; no key is ever made up for it). The
/// embedded store uses the development key of [`dev_master_key`].
pub async fn master_key(choice: &StoreChoice, dir: &Path) -> anyhow::Result<MasterKey> {
    match choice {
        StoreChoice::Embedded(_) => dev_master_key(dir),
        StoreChoice::Dynamo { .. } => {
            let Some(id) = std::env::var("PAYORDERS_SECRET_ID")
                .ok()
                .filter(|v| !v.is_empty())
            else {
                bail!(
                    "--store dynamodb needs the functions' master key: set PAYORDERS_SECRET_ID \
                     to their Secrets Manager secret (the stack output AppSecretArn)"
                );
            };
            let key = aws::secrets()
                .await?
                .master_key
                .with_context(|| format!("secret {id} has no master_key"))?;
            MasterKey::from_text(key.expose()).with_context(|| format!("master_key in secret {id}"))
        }
    }
}

/// The development master key: `PAYORDERS_MASTER_KEY` if set, else `<dir>/master.key`,
/// created on first use (owner-only permissions).
pub fn dev_master_key(dir: &Path) -> anyhow::Result<MasterKey> {
    if let Ok(text) = std::env::var("PAYORDERS_MASTER_KEY") {
        return MasterKey::from_text(&text).context("PAYORDERS_MASTER_KEY");
    }
    let path = dir.join("master.key");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().to_owned(),
        Err(_) => {
            std::fs::create_dir_all(dir)?;
            let t = MasterKey::generate_text();
            write_private(&path, &t)?;
            t
        }
    };
    MasterKey::from_text(&text).with_context(|| format!("{}", path.display()))
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

/// Where the demo organization's test-mode wallets receive payments on EVM test networks.
pub const DEMO_RECEIVING_ADDRESS: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

/// Where the demo organization receives payments on Solana Devnet.
pub const DEMO_SOLANA_ADDRESS: &str = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";

/// The test networks a new organization's test mode settles on: chain, receiving address,
/// and the token it takes beside the native coin. Test keys use test networks only.
pub const DEMO_WALLETS: &[(u64, &str, &str)] = &[
    // The local chain (anvil) and its test token TUSD.
    (
        31337,
        DEMO_RECEIVING_ADDRESS,
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    ),
    // Base Sepolia and its USDC.
    (
        84532,
        DEMO_RECEIVING_ADDRESS,
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    ),
    // Solana Devnet and its USDC.
    (
        30000000000101,
        DEMO_SOLANA_ADDRESS,
        "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
    ),
];

/// The demo organization's test credentials.
#[derive(Debug, Clone)]
pub struct Demo {
    pub org_id: OrgId,
    pub key: String,
    pub secret: String,
}

/// Creates an organization with a test key holding every scope.
pub async fn create_org(
    store: &dyn Store,
    master: &MasterKey,
    name: &str,
    fixed: Option<(String, String)>,
) -> anyhow::Result<(Organization, auth::IssuedKey)> {
    let now = Timestamp::now();
    let mut org = Organization::new(name, now);
    for mode in [KeyMode::Test, KeyMode::Live] {
        let secret = payorders::webhooks::generate_secret();
        org.settings_mut(mode).order_webhook_secret_sealed = Some(master.seal(
            &payorders::webhooks::order_secret_context(&org.id, mode),
            &secret,
        ));
    }
    let issued = auth::issue_api_key(&org.id, KeyMode::Test, vec![Scope::All], master, now, fixed)
        .map_err(anyhow::Error::msg)?;
    store.create_organization(&org).await?;
    store.create_api_key(&issued.record, None).await?;
    // Test mode settles on test networks (native coin and one token each).
    for &(chain, address, token) in DEMO_WALLETS {
        let chain_id = ChainId::new(chain).expect("valid chain id");
        let info = payorders::registry::registry().chain(chain_id)?;
        let token = info.currency(Some(token))?;
        store
            .create_wallet(&MerchantWallet {
                organization_id: org.id.clone(),
                livemode: false,
                chain_id,
                address: Some(address.into()),
                xpub: None,
                currencies: vec![info.currency(None)?.id, token.id],
                next_index: 0,
                created_at: now,
                updated_at: now,
                version: 1,
            })
            .await?;
    }
    Ok((org, issued))
}

/// Finds or creates the demo organization. With a fixed key, reuses the organization that
/// key belongs to; otherwise reuses the one recorded in `<dir>/demo.env`, if its key still
/// works, and creates a new one if not.
pub async fn ensure_demo(
    store: &dyn Store,
    master: &MasterKey,
    dir: &Path,
    fixed: Option<(String, String)>,
) -> anyhow::Result<Demo> {
    let wanted = fixed.or_else(|| read_demo_env(dir));
    if let Some((key, secret)) = &wanted
        && let Some(record) = store.get_api_key_by_hash(&auth::hash_api_key(key)).await?
    {
        let stored = master
            .open(&auth::api_secret_context(&record.id), &record.secret_sealed)
            .ok();
        if stored.as_deref() == Some(secret.as_str())
            && record.is_active(payorders::Timestamp::now())
        {
            return Ok(Demo {
                org_id: record.organization_id,
                key: key.clone(),
                secret: secret.clone(),
            });
        }
        bail!(
            "the demo key {}… exists with another secret (or is revoked); pick another \
                 PAYORDERS_DEMO_API_KEY or remove {}",
            &key[..12.min(key.len())],
            dir.display()
        );
    }
    let (org, issued) = create_org(store, master, "Demo Store", wanted).await?;
    let demo = Demo {
        org_id: org.id,
        key: issued.key,
        secret: issued.secret,
    };
    write_demo_env(dir, &demo, None, None, None)?;
    Ok(demo)
}

/// Writes `<dir>/demo.env` (owner-only): the demo credentials and, when known, the API's
/// base URL (`API`), the local chain's RPC URL (`PAYORDERS_RPC_31337`, and `ETH_RPC_URL`,
/// which `cast` reads) and the `payorders` binary's directory on `PATH`, so
/// `. .local/demo.env` is all a second terminal needs.
pub fn write_demo_env(
    dir: &Path,
    demo: &Demo,
    api: Option<&str>,
    chain_rpc: Option<&str>,
    bin_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let mut text = format!(
        "export PAYORDERS_ORG_ID={}\nexport PAYORDERS_API_KEY={}\nexport PAYORDERS_API_SECRET={}\n",
        demo.org_id, demo.key, demo.secret
    );
    if let Some(api) = api {
        text.push_str(&format!("export API={api}\n"));
    }
    if let Some(rpc) = chain_rpc {
        text.push_str(&format!(
            "export PAYORDERS_RPC_31337={rpc}\nexport ETH_RPC_URL={rpc}\n"
        ));
    }
    if let Some(bin) = bin_dir {
        text.push_str(&format!("export PATH=\"{}:$PATH\"\n", bin.display()));
    }
    std::fs::create_dir_all(dir)?;
    write_private(&dir.join("demo.env"), &text)
}

/// A variable exported by `<dir>/demo.env`, if the file and the variable exist.
pub fn demo_env_value(dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("demo.env")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("export {name}=")))
        .map(str::to_owned)
}

fn read_demo_env(dir: &Path) -> Option<(String, String)> {
    Some((
        demo_env_value(dir, "PAYORDERS_API_KEY")?,
        demo_env_value(dir, "PAYORDERS_API_SECRET")?,
    ))
}
