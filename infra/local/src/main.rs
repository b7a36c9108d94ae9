//! `payorders`: the local host (`serve`), operator commands (organizations, keys, tables)
//! and developer commands (`api`, `listen`, `trigger`; see `devcli`).

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use payorders::runtime::Services;
use payorders::*;
use payorders_local::devcli::{self, Credentials};
use payorders_local::setup::{self, StoreChoice};
use std::path::PathBuf;
use std::sync::Arc;

/// The host answers many small requests on a few threads, each allocating and freeing
/// per request (and freeing on another thread than it allocated, for writes): under load
/// glibc's malloc took a sixth of the host's time, mimalloc's per-thread heaps far less
/// (docs/performance.md, "Where a create's time goes"). The Lambda functions keep the
/// system allocator: one request at a time, and size counts there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "payorders", about = "PayOrders local host and operator CLI")]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    credentials: Credentials,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct StoreArgs {
    /// Where orders live: an embedded SQLite file, or DynamoDB (AWS, or moto through
    /// AWS_ENDPOINT_URL).
    #[arg(long, global = true, value_enum, default_value_t = StoreKind::Embedded, env = "PAYORDERS_STORE")]
    store: StoreKind,
    /// Directory for the embedded database, its development master key and demo.env.
    #[arg(
        long,
        global = true,
        default_value = ".local",
        env = "PAYORDERS_LOCAL_DIR"
    )]
    dir: PathBuf,
    /// DynamoDB table (with --store dynamodb).
    #[arg(long, global = true, env = "PAYORDERS_TABLE", default_value = payorders::config::DEFAULT_TABLE)]
    table: String,
    /// Create the DynamoDB table if it does not exist (with --store dynamodb).
    #[arg(long, global = true)]
    create_table: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum StoreKind {
    Embedded,
    Dynamodb,
}

impl StoreArgs {
    fn choice(&self) -> StoreChoice {
        match self.store {
            StoreKind::Embedded => StoreChoice::Embedded(self.dir.join("payorders.db")),
            StoreKind::Dynamodb => StoreChoice::Dynamo {
                table: self.table.clone(),
                create: self.create_table,
            },
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve every function of template.yaml on one port, as API Gateway would.
    Serve {
        #[arg(long, default_value_t = 3000, env = "PORT")]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
    /// Organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The DynamoDB table.
    Tables {
        #[command(subcommand)]
        command: TablesCommand,
    },
    /// Send one API request and print the JSON answer (non-zero exit on an error status).
    /// Writes are signed (Authorization-Signature, v2) when the API secret is known.
    #[command(after_help = "Example: payorders api POST /pay-orders \
                        '{\"mode\":\"SALE\",\"amount\":\"49.99\",\"fiat_unit\":\"USD\"}'")]
    Api {
        /// GET, POST, DELETE, …
        method: String,
        /// The path, with its query if any: /pay-orders?status=PENDING
        path: String,
        /// The JSON body; `-` reads it from stdin.
        json: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Send without a signature even when the secret is known.
        #[arg(long)]
        no_sign: bool,
    },
    /// Show this organization's webhook deliveries live, verifying each signature, through a
    /// temporary endpoint on a local port (removed on exit); optionally forward them.
    Listen {
        /// Forward each delivery, body and webhook-* headers unchanged, to this URL.
        #[arg(long)]
        forward_to: Option<String>,
        /// Event types to receive (comma-separated), or * for all.
        #[arg(long, default_value = "*", value_delimiter = ',')]
        events: Vec<String>,
        /// The local port to receive on (0: a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Print each delivery's whole body too.
        #[arg(long)]
        print_json: bool,
        /// Poll GET /events instead of receiving deliveries (the default when the API is
        /// not on this machine: a deployed API cannot reach it).
        #[arg(long)]
        poll: bool,
    },
    /// Create a test SALE and pay it through the sandbox (simulate-payment), then wait until
    /// it is COMPLETED.
    Trigger {
        /// The amount in USD.
        #[arg(long, default_value = "25.00")]
        amount: String,
        /// Seconds to wait for COMPLETED (0: do not wait).
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization; prints its id and a test key with its secret.
    Create {
        #[arg(long)]
        name: String,
    },
    /// Set an organization's own hourly limit per API key for a class of routes (create,
    /// read, list, analytics, webhooks, settings), or with --default go back to the default.
    Limit {
        #[arg(long)]
        org: String,
        #[arg(long)]
        class: String,
        #[arg(long, conflicts_with = "default", required_unless_present = "default")]
        per_hour: Option<u64>,
        #[arg(long)]
        default: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key; prints the key and its secret once.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long, value_parser = ["live", "test"])]
        mode: String,
        /// Comma-separated: orders:create, orders:read, orders:cancel, orders:refund,
        /// analytics:read, webhooks:manage, settings:manage, keys:manage, *
        #[arg(long, default_value = "*")]
        scopes: String,
        /// What the key is for, shown in `GET /api-keys`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke an API key by id (key_…); it stops working at once.
    Revoke { key_id: String },
}

#[derive(Subcommand)]
enum TablesCommand {
    /// Create the DynamoDB table with its GSIs, stream and TTL.
    Create,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line for an operator; no backtrace for an ordinary error.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A command whose output is piped into `head` (or anything that stops reading) ends
/// quietly, as other Unix tools do, instead of panicking on the next line it prints. Not
/// for `serve` and `listen`, which run until stopped and (`listen`) remove their endpoint
/// on the way out: a closed pipe must not end them before that.
fn quiet_on_closed_pipe() {
    // SAFETY: signal(2) may be called from any thread; it only restores the default
    // handling of SIGPIPE (which Rust's runtime set to ignored) for this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,payorders=info".into()),
        )
        .with_target(false)
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. } | Command::Listen { .. }) {
        quiet_on_closed_pipe();
    }
    match cli.command {
        Command::Tables {
            command: TablesCommand::Create,
        } => {
            let table = &cli.store.table;
            if payorders_local::setup::create_dynamo_table(table).await? {
                println!(
                    "created table {table} (GSIs orders_by_org, orders_by_expiry, events_by_org; stream; TTL on `ttl`)"
                )
            } else {
                println!("table {table} already exists")
            }
        }
        Command::Org {
            command: OrgCommand::Create { name },
        } => {
            let master = setup::master_key(&cli.store.choice(), &cli.store.dir).await?;
            let store = setup::open_store(&cli.store.choice()).await?.store;
            let (org, issued) = setup::create_org(&*store, &master, &name, None).await?;
            println!("organization  {}", org.id);
            println!("test key id   {}", issued.record.id);
            println!("test key      {}", issued.key);
            println!("test secret   {}", issued.secret);
        }
        Command::Org {
            command:
                OrgCommand::Limit {
                    org,
                    class,
                    per_hour,
                    default: _,
                },
        } => {
            let store = setup::open_store(&cli.store.choice()).await?.store;
            let org_id = OrgId::parse(&org)?;
            store
                .get_organization(&org_id)
                .await?
                .with_context(|| format!("no organization {org_id}"))?;
            let class = RateClass::parse(&class).with_context(|| {
                format!(
                    "unknown class {class}: create, read, list, analytics, webhooks or settings"
                )
            })?;
            let mut limits = store.get_rate_limits(&org_id).await?;
            limits.set(class, per_hour);
            store.put_rate_limits(&org_id, &limits).await?;
            // Limits apply to both modes: one entry in each mode's log.
            for live in [false, true] {
                operator_audit(&*store, &org_id, live, "org limit", Some(org_id.as_str())).await?;
            }
            println!(
                "{org_id}: {} requests an hour per API key for {class} routes",
                limits.per_hour(class)
            );
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    org,
                    mode,
                    scopes,
                    name,
                },
        } => {
            let master = setup::master_key(&cli.store.choice(), &cli.store.dir).await?;
            let store = setup::open_store(&cli.store.choice()).await?.store;
            let org_id = OrgId::parse(&org)?;
            store
                .get_organization(&org_id)
                .await?
                .with_context(|| format!("no organization {org_id}"))?;
            let scopes = scopes
                .split(',')
                .map(|s| Scope::parse(s.trim()).with_context(|| format!("unknown scope {s}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mode = KeyMode::parse(&mode).context("mode is live or test")?;
            let mut issued = payorders::auth::issue_api_key(
                &org_id,
                mode,
                scopes,
                &master,
                Timestamp::now(),
                None,
            )
            .map_err(anyhow::Error::msg)?;
            issued.record.name = name.trim().to_owned();
            store.create_api_key(&issued.record, None).await?;
            operator_audit(
                &*store,
                &org_id,
                mode.is_live(),
                "keys create",
                Some(issued.record.id.as_str()),
            )
            .await?;
            println!("key id  {}", issued.record.id);
            println!("key     {}", issued.key);
            println!("secret  {}", issued.secret);
        }
        Command::Keys {
            command: KeysCommand::Revoke { key_id },
        } => {
            let store = setup::open_store(&cli.store.choice()).await?.store;
            let id = KeyId::parse(&key_id)?;
            match store.revoke_api_key(&id, Timestamp::now()).await {
                Ok(k) => {
                    let live = k.mode.is_live();
                    operator_audit(
                        &*store,
                        &k.organization_id,
                        live,
                        "keys revoke",
                        Some(id.as_str()),
                    )
                    .await?;
                    println!(
                        "revoked {} ({}…) at {}",
                        k.id,
                        k.prefix,
                        k.revoked_at.expect("just revoked")
                    )
                }
                Err(payorders::store::StoreError::NotFound) => anyhow::bail!("no API key {id}"),
                Err(e) => return Err(e.into()),
            }
        }
        Command::Serve {
            port,
            host,
            template,
        } => serve(&cli.store, &host, port, &template).await?,
        Command::Api {
            method,
            path,
            json,
            idempotency_key,
            no_sign,
        } => {
            let client = devcli::Client::resolve(&cli.credentials, &cli.store.dir)?;
            let signing = if no_sign {
                devcli::Signing::Never
            } else {
                devcli::Signing::Auto
            };
            devcli::api(
                &client,
                &method,
                &path,
                json.as_deref(),
                idempotency_key.as_deref(),
                signing,
            )
            .await?
        }
        Command::Listen {
            forward_to,
            events,
            port,
            print_json,
            poll,
        } => {
            let client = devcli::Client::resolve(&cli.credentials, &cli.store.dir)?;
            let opts = payorders_local::listen::Options {
                port,
                events,
                forward_to,
                print_json,
                poll,
            };
            payorders_local::listen::listen(&client, opts).await?
        }
        Command::Trigger { amount, wait } => {
            let client = devcli::Client::resolve(&cli.credentials, &cli.store.dir)?;
            devcli::trigger(&client, &amount, std::time::Duration::from_secs(wait)).await?;
        }
    }
    Ok(())
}

/// The chains with `PAYORDERS_RPC_<chain_id>` set (e.g. a local anvil for 31337).
fn dev_chains() -> anyhow::Result<payorders::chains::Chains> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let urls = payorders::config::rpc_urls_from(&env)?;
    Ok(payorders::chains::Chains::from_rpc_urls(
        urls.iter().map(|(id, u)| (*id, u.as_str())),
    )?)
}

/// ChangeNOW, when `PAYORDERS_CHANGENOW_API_KEY` is set (`PAYORDERS_CHANGENOW_URL` points
/// it elsewhere, e.g. at a fake); without it, payments needing an exchange are refused.
fn dev_router() -> Option<Arc<dyn payorders::routing::Router>> {
    use payorders::routing::changenow::{BASE_URL, ChangeNow};
    let key = std::env::var("PAYORDERS_CHANGENOW_API_KEY").ok()?;
    let url = std::env::var("PAYORDERS_CHANGENOW_URL").unwrap_or_else(|_| BASE_URL.to_owned());
    Some(Arc::new(ChangeNow::new(
        &url,
        key,
        std::time::Duration::from_secs(10),
    )))
}

/// The local host's prices: `PAYORDERS_PRICES` (`ethereum=3000,usd-coin=1`) or a default
/// table, so quotes are deterministic and need no network.
fn dev_prices() -> anyhow::Result<payorders::pricing::fixed::FixedPrices> {
    use payorders::pricing::fixed::FixedPrices;
    match std::env::var("PAYORDERS_PRICES") {
        Ok(text) => FixedPrices::parse(&text).context("PAYORDERS_PRICES"),
        Err(_) => Ok(FixedPrices::dev_default()),
    }
}

/// A local-host setting given as a number in the environment (`PAYORDERS_DEV_…`), if it
/// reads as one.
fn dev_number(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok())
}

async fn serve(
    args: &StoreArgs,
    host: &str,
    port: u16,
    template: &std::path::Path,
) -> anyhow::Result<()> {
    let master = setup::master_key(&args.choice(), &args.dir).await?;
    let opened = setup::open_store(&args.choice()).await?;
    let store = opened.store;
    let fixed = match (
        std::env::var("PAYORDERS_DEMO_API_KEY"),
        std::env::var("PAYORDERS_DEMO_API_SECRET"),
    ) {
        (Ok(k), Ok(s)) => Some((k, s)),
        (Err(_), Err(_)) => None,
        _ => anyhow::bail!(
            "set both PAYORDERS_DEMO_API_KEY and PAYORDERS_DEMO_API_SECRET, or neither"
        ),
    };
    let demo = setup::ensure_demo(&*store, &master, &args.dir, fixed).await?;
    // A restarted local chain is a new chain with the same id and the same transaction
    // hashes: its predecessor's claims are forgotten before any request is served.
    if let Some(embedded) = &opened.embedded {
        let env: std::collections::HashMap<String, String> = std::env::vars().collect();
        let urls = payorders::config::rpc_urls_from(&env)?
            .into_iter()
            .filter(|(id, _)| id.get() == payorders_local::epochs::LOCAL_CHAIN)
            .map(|(id, url)| (id, url.to_string()))
            .collect();
        let epochs = payorders_local::epochs::ChainEpochs::new(&args.dir, embedded.clone(), urls);
        for (chain, r) in epochs.check().await {
            if let Ok(
                payorders_local::epochs::Epoch::New { forgotten }
                | payorders_local::epochs::Epoch::First { forgotten },
            ) = r
                && forgotten > 0
            {
                println!(
                    "Chain {chain}: a new run; forgot {forgotten} transfer claims of its previous run"
                );
            }
        }
        tokio::spawn(epochs.watch(std::time::Duration::from_secs(2)));
    }
    // SQS's stand-ins, kept in the host's own store (in memory with --store dynamodb).
    let (queue, webhooks_rx) =
        payorders_local::queue::HostQueue::open("webhooks", opened.embedded.clone()).await?;
    let (confirmations, confirmations_rx) =
        payorders_local::queue::HostQueue::open("confirmations", opened.embedded.clone()).await?;
    let services = Services {
        store,
        master: Some(master),
        webhooks: Some(Arc::new(queue)),
        confirmations: Some(Arc::new(confirmations)),
        check_delays: payorders_local::workers::DEV_CHECK_DELAYS,
        prices: Some(Arc::new(dev_prices()?)),
        router: dev_router(),
        chains: Arc::new(dev_chains()?),
    };
    // Webhook retries run on the real schedule scaled down (5 s -> 1 s, 5 min -> 5 s, ...).
    let retry_scale = dev_number("PAYORDERS_DEV_RETRY_SCALE").unwrap_or(1.0 / 60.0);
    // How often the deposit scan runs (it also runs once at start).
    let scan_every = dev_number("PAYORDERS_DEV_SCAN_SECS")
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(std::time::Duration::from_secs(2), |s| {
            std::time::Duration::from_secs_f64(s.min(86_400.0))
        });
    payorders_local::workers::start(
        &services,
        opened.embedded,
        payorders_local::workers::Receivers {
            webhooks: webhooks_rx,
            confirmations: confirmations_rx,
        },
        payorders_local::workers::Config {
            retry_scale,
            poll: std::time::Duration::from_millis(250),
            scan_every,
            upkeep_every: std::time::Duration::from_secs(5),
        },
    )?;
    let tpl = payorders_local::template::Template::load(template)?;
    let app = Arc::new(payorders_local::host::Host::new(services, &tpl)?);
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| {
            format!("binding {host}:{port} (is another server on it? try PORT=3001)")
        })?;
    let api_host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
    let api = format!("http://{api_host}:{}", listener.local_addr()?.port());
    let chain_rpc = std::env::var("PAYORDERS_RPC_31337").ok();
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    setup::write_demo_env(
        &args.dir,
        &demo,
        Some(&api),
        chain_rpc.as_deref(),
        bin_dir.as_deref(),
    )?;
    let store_text = match args.choice() {
        StoreChoice::Embedded(p) => format!("embedded ({})", p.display()),
        StoreChoice::Dynamo { table, .. } => format!("dynamodb (table {table})"),
    };
    println!("PayOrders local host on {api}  store: {store_text}");
    for r in app.route_keys() {
        println!("  {r}");
    }
    let chains: Vec<String> = app.services().chains.ids().map(|c| c.to_string()).collect();
    if chains.is_empty() {
        println!(
            "Chains read: none (set PAYORDERS_RPC_<chain_id>; `make dev` runs 31337 unless CHAIN=0)"
        );
    } else {
        println!("Chains read: {}", chains.join(", "));
    }
    println!();
    println!("Demo organization {} (test mode)", demo.org_id);
    println!("  API key     {}", demo.key);
    println!("  API secret  {}", demo.secret);
    let what = if chain_rpc.is_some() {
        "API and the chain's RPC"
    } else {
        "API"
    };
    println!(
        "  (with {what} in {}/demo.env: `. {}/demo.env`)",
        args.dir.display(),
        args.dir.display()
    );
    println!();
    println!(
        "Try, in another terminal:  . {}/demo.env",
        args.dir.display()
    );
    println!("  payorders trigger        a test order paid through the sandbox");
    println!("  payorders listen         webhook deliveries, live and verified");
    println!("  make demo                a signed SALE paid, its webhook verified");
    payorders_local::server::serve(app, listener).await?;
    Ok(())
}

/// The audit entry of an operator command that changed an organization's keys or limits.
async fn operator_audit(
    store: &dyn payorders::store::Store,
    org: &OrgId,
    livemode: bool,
    action: &str,
    object_id: Option<&str>,
) -> anyhow::Result<()> {
    let entry = AuditEntry {
        id: AuditId::generate(),
        organization_id: org.clone(),
        livemode,
        created_at: Timestamp::now(),
        actor: AuditActor::Operator,
        action: action.to_owned(),
        object_id: object_id.map(str::to_owned),
        request_id: None,
        ip: None,
        user_agent: Some(format!("payorders-cli/{}", env!("CARGO_PKG_VERSION"))),
        outcome: AuditOutcome {
            status: 200,
            code: None,
        },
    };
    store.put_audit_entry(&entry).await?;
    Ok(())
}
