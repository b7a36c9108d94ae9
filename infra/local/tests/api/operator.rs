//! The operator CLI (`payorders`): on DynamoDB it seals secrets with the deployed
//! functions' master key from Secrets Manager, never with a key of its own.

use crate::support::{moto, sdk_at};
use payorders::auth::{self, MasterKey};
use payorders::store::dynamo::DynamoStore;
use payorders::store::{KeyStore, RateLimitStore};
use payorders::*;
use std::path::Path;
use std::process::{Command, Output};

async fn sdk() -> aws_config::SdkConfig {
    sdk_at(&moto()).await
}

/// Runs `payorders --dir DIR ARGS…` against moto, with only `env` of our own variables set.
fn payorders(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payorders"));
    for var in [
        "PAYORDERS_SECRET_ID",
        "PAYORDERS_MASTER_KEY",
        "PAYORDERS_STORE",
        "PAYORDERS_TABLE",
        "PAYORDERS_LOCAL_DIR",
        "AWS_PROFILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT_URL", moto())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "t")
        .env("AWS_SECRET_ACCESS_KEY", "t")
        .envs(env.iter().copied())
        .arg("--dir")
        .arg(dir)
        .args(args);
    cmd.output().expect("run the payorders binary")
}

/// The value printed after `label` (`label   value`).
fn printed(out: &Output, label: &str) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` in {out:?}"))
        .trim()
        .to_owned()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        OrderId::generate().as_str().trim_start_matches("po_")
    )
}

#[tokio::test]
async fn on_dynamodb_the_cli_uses_the_functions_master_key_from_secrets_manager() {
    let dir = std::env::temp_dir().join(unique("payorders-cli"));
    let table = unique("cli");
    let dynamo = ["--store", "dynamodb", "--table", &table, "--create-table"];

    // No secret id: a clear error, and no key of its own on disk.
    let refused = payorders(
        &dir,
        &[],
        &[&dynamo[..], &["org", "create", "--name", "Acme"]].concat(),
    );
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("PAYORDERS_SECRET_ID"), "{stderr}");
    assert!(
        !dir.join("master.key").exists(),
        "no local master key is made up"
    );

    // With the secret the functions read, what the CLI seals opens with their key.
    let master_text = MasterKey::generate_text();
    let secret_id = unique("payorders-app");
    aws_sdk_secretsmanager::Client::new(&sdk().await)
        .create_secret()
        .name(&secret_id)
        .secret_string(serde_json::json!({ "master_key": master_text }).to_string())
        .send()
        .await
        .unwrap();
    let functions_key = MasterKey::from_text(&master_text).unwrap();
    let env = [("PAYORDERS_SECRET_ID", secret_id.as_str())];
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk().await), table.clone());
    let opens_with_the_functions_key = async |key_id: &str, secret: &str| {
        let id = KeyId::parse(key_id).unwrap();
        let record = store
            .get_api_key(&id)
            .await
            .unwrap()
            .expect("the key is stored");
        assert_eq!(
            functions_key
                .open(&auth::api_secret_context(&id), &record.secret_sealed)
                .unwrap(),
            secret
        );
    };

    let created = payorders(
        &dir,
        &env,
        &[&dynamo[..], &["org", "create", "--name", "Acme"]].concat(),
    );
    assert!(created.status.success(), "{created:?}");
    opens_with_the_functions_key(
        &printed(&created, "test key id"),
        &printed(&created, "test secret"),
    )
    .await;
    let org = printed(&created, "organization");
    let key = payorders(
        &dir,
        &env,
        &[
            &dynamo[..],
            &["keys", "create", "--org", &org, "--mode", "live"],
        ]
        .concat(),
    );
    assert!(key.status.success(), "{key:?}");
    opens_with_the_functions_key(&printed(&key, "key id"), &printed(&key, "secret")).await;
    assert!(!dir.join("master.key").exists());

    // An organization's own rate limit, set and removed by the operator.
    let org_id = OrgId::parse(&org).unwrap();
    let limit = |args: &[&str]| {
        payorders(
            &dir,
            &env,
            &[&dynamo[..], &["org", "limit", "--org", &org], args].concat(),
        )
    };
    let set = limit(&["--class", "create", "--per-hour", "7"]);
    assert!(set.status.success(), "{set:?}");
    assert!(
        String::from_utf8_lossy(&set.stdout)
            .contains("7 requests an hour per API key for create routes")
    );
    let stored = store.get_rate_limits(&org_id).await.unwrap();
    assert_eq!(
        (
            stored.per_hour(RateClass::Create),
            stored.per_hour(RateClass::List)
        ),
        (7, 2000)
    );
    let back = limit(&["--class", "create", "--default"]);
    assert!(back.status.success(), "{back:?}");
    assert_eq!(
        store
            .get_rate_limits(&org_id)
            .await
            .unwrap()
            .per_hour(RateClass::Create),
        1000
    );
    for bad in [
        &["--class", "teleport", "--per-hour", "7"][..],
        &["--class", "create"][..],
        &["--class", "create", "--per-hour", "7", "--default"][..],
    ] {
        let out = limit(bad);
        assert!(!out.status.success(), "{bad:?} was accepted: {out:?}");
    }

    // A secret without a master key is an error too.
    let empty_id = unique("payorders-empty");
    aws_sdk_secretsmanager::Client::new(&sdk().await)
        .create_secret()
        .name(&empty_id)
        .secret_string("{}")
        .send()
        .await
        .unwrap();
    let no_key = payorders(
        &dir,
        &[("PAYORDERS_SECRET_ID", empty_id.as_str())],
        &[&dynamo[..], &["org", "create", "--name", "Acme"]].concat(),
    );
    assert!(!no_key.status.success(), "{no_key:?}");
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("no master_key"));

    // The embedded store keeps its development key under the local directory.
    let local = payorders(&dir, &[], &["org", "create", "--name", "Local"]);
    assert!(local.status.success(), "{local:?}");
    assert!(dir.join("master.key").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
