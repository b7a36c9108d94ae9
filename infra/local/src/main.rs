//! `payorders`: operator CLI (and, with the merchant API, the local host).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "payorders", about = "PayOrders operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the DynamoDB table.
    Tables {
        #[command(subcommand)]
        command: TablesCommand,
    },
}

#[derive(Subcommand)]
enum TablesCommand {
    /// Create the table with its GSIs, stream and TTL. Honours AWS_ENDPOINT_URL (moto).
    Create {
        #[arg(long, env = "PAYORDERS_TABLE", default_value = payorders::config::DEFAULT_TABLE)]
        table: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Tables {
            command: TablesCommand::Create { table },
        } => {
            let sdk = payorders::config::aws_sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            match payorders::store::dynamo::create_table(&client, &table).await {
                Ok(()) => println!(
                    "created table {table} (GSIs orders_by_org, orders_by_expiry, \
                     events_by_org; stream; TTL on `ttl`)"
                ),
                Err(payorders::store::StoreError::AlreadyExists) => {
                    println!("table {table} already exists")
                }
                Err(e) => anyhow::bail!("could not create table {table}: {e}"),
            }
        }
    }
    Ok(())
}
