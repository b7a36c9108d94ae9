//! Config loads secrets from Secrets Manager (moto) when a secret id is set, env otherwise.

use crate::support;
use payorders::ChainId;
use payorders::config::Config;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn secrets_come_from_secrets_manager_when_configured() {
    let sm = aws_sdk_secretsmanager::Client::new(&support::sdk_config().await);
    let id = support::unique("payorders-secret");
    sm.create_secret()
        .name(&id)
        .secret_string(
            r#"{"master_key":"mk-from-sm","coingecko_api_key":"cg","rpc_urls":{"8453":"https://base.example"}}"#,
        )
        .send()
        .await
        .unwrap();
    let cfg = Config::load_from(
        &env(&[
            ("PAYORDERS_SECRET_ID", &id),
            ("PAYORDERS_TABLE", "orders-x"),
            ("PAYORDERS_MASTER_KEY", "ignored-when-a-secret-is-set"),
            ("PAYORDERS_RPC_31337", "http://127.0.0.1:8545"),
        ]),
        &sm,
    )
    .await
    .unwrap();
    assert_eq!(cfg.table_name, "orders-x");
    assert_eq!(cfg.secrets.master_key.unwrap().expose(), "mk-from-sm");
    assert_eq!(cfg.secrets.coingecko_api_key.unwrap().expose(), "cg");
    assert!(cfg.secrets.changenow_api_key.is_none());
    let cfg_rpc = |c: u64| ChainId::new(c).unwrap();
    let reloaded = Config::load_from(
        &env(&[
            ("PAYORDERS_SECRET_ID", &id),
            ("PAYORDERS_RPC_31337", "http://127.0.0.1:8545"),
        ]),
        &sm,
    )
    .await
    .unwrap();
    assert_eq!(
        reloaded.rpc_url(cfg_rpc(8453)),
        Some("https://base.example")
    );
    assert_eq!(
        reloaded.rpc_url(cfg_rpc(31337)),
        Some("http://127.0.0.1:8545")
    );
    assert_eq!(reloaded.rpc_url(cfg_rpc(1)), None);
}

/// The functions that price, route and read chains read the providers' secret only: it
/// never holds the master key (refused there), and its settings win over any a master
/// key's secret of an older stack still holds.
#[tokio::test]
async fn providers_come_from_their_own_secret_which_never_holds_the_master_key() {
    let sm = aws_sdk_secretsmanager::Client::new(&support::sdk_config().await);
    let secret = |name: &str, text: &str| {
        let sm = sm.clone();
        let id = support::unique(name);
        let text = text.to_owned();
        async move {
            sm.create_secret()
                .name(&id)
                .secret_string(text)
                .send()
                .await
                .unwrap();
            id
        }
    };
    let providers = secret(
        "payorders-providers",
        r#"{"changenow_api_key":"cn","rpc_urls":{"8453":"https://base.example"}}"#,
    )
    .await;
    // A public function's view: the providers, and no master key at all.
    let public = Config::load_from(&env(&[("PAYORDERS_PROVIDERS_SECRET_ID", &providers)]), &sm)
        .await
        .unwrap();
    assert!(public.secrets.master_key.is_none());
    assert_eq!(
        public.secrets.changenow_api_key.as_ref().unwrap().expose(),
        "cn"
    );
    let base = ChainId::new(8453).unwrap();
    assert_eq!(public.rpc_url(base), Some("https://base.example"));
    // Both (an older stack's secret still holding the providers too): the providers' win.
    let older = secret(
        "payorders-master",
        r#"{"master_key":"mk","changenow_api_key":"old","coingecko_api_key":"cg","rpc_urls":{"8453":"https://old.example","1":"https://eth.example"}}"#,
    )
    .await;
    let both = Config::load_from(
        &env(&[
            ("PAYORDERS_SECRET_ID", &older),
            ("PAYORDERS_PROVIDERS_SECRET_ID", &providers),
        ]),
        &sm,
    )
    .await
    .unwrap();
    assert_eq!(both.secrets.master_key.as_ref().unwrap().expose(), "mk");
    assert_eq!(
        both.secrets.changenow_api_key.as_ref().unwrap().expose(),
        "cn"
    );
    assert_eq!(
        both.secrets.coingecko_api_key.as_ref().unwrap().expose(),
        "cg"
    );
    assert_eq!(both.rpc_url(base), Some("https://base.example"));
    assert_eq!(
        both.rpc_url(ChainId::new(1).unwrap()),
        Some("https://eth.example")
    );
    // The master key put in the providers' secret by mistake: refused, not used.
    let leaked = secret("payorders-leaked", r#"{"master_key":"mk"}"#).await;
    let refused = Config::load_from(&env(&[("PAYORDERS_PROVIDERS_SECRET_ID", &leaked)]), &sm).await;
    assert!(matches!(
        refused,
        Err(payorders::config::ConfigError::SecretFormat { .. })
    ));
}

#[tokio::test]
async fn env_is_used_without_a_secret_id_and_bad_input_is_an_error() {
    let sm = aws_sdk_secretsmanager::Client::new(&support::sdk_config().await);
    let cfg = Config::load_from(
        &env(&[
            ("PAYORDERS_MASTER_KEY", "mk-env"),
            ("PAYORDERS_WEBHOOKS_QUEUE_URL", "http://q"),
        ]),
        &sm,
    )
    .await
    .unwrap();
    assert_eq!(cfg.table_name, "payorders");
    assert_eq!(cfg.secrets.master_key.unwrap().expose(), "mk-env");
    assert_eq!(cfg.webhooks_queue_url.as_deref(), Some("http://q"));

    let missing = Config::load_from(&env(&[("PAYORDERS_SECRET_ID", "no-such-secret")]), &sm).await;
    assert!(matches!(
        missing,
        Err(payorders::config::ConfigError::SecretFetch { .. })
    ));

    let id = support::unique("payorders-bad-secret");
    sm.create_secret()
        .name(&id)
        .secret_string("not json")
        .send()
        .await
        .unwrap();
    let bad = Config::load_from(&env(&[("PAYORDERS_SECRET_ID", &id)]), &sm).await;
    assert!(matches!(
        bad,
        Err(payorders::config::ConfigError::SecretFormat { .. })
    ));

    let bad_rpc = Config::load_from(&env(&[("PAYORDERS_RPC_base", "http://x")]), &sm).await;
    assert!(matches!(
        bad_rpc,
        Err(payorders::config::ConfigError::Invalid { .. })
    ));

    // The record format: packed or json, nothing else.
    for ok in ["packed", "json"] {
        let loaded = Config::load_from(&env(&[("PAYORDERS_RECORD_FORMAT", ok)]), &sm).await;
        assert!(loaded.is_ok(), "{ok}: {loaded:?}");
    }
    let bad_format = Config::load_from(&env(&[("PAYORDERS_RECORD_FORMAT", "gzip")]), &sm).await;
    assert!(matches!(
        bad_format,
        Err(payorders::config::ConfigError::Invalid { ref var, .. }) if var == "PAYORDERS_RECORD_FORMAT"
    ));
}

/// A function's AWS configuration comes from Lambda's variables alone, and its clients work
/// with it: the region, the role's credentials (with their session token) and the endpoint.
#[tokio::test]
async fn a_function_configures_aws_from_the_lambda_environment_alone() {
    let vars = env(&[
        ("AWS_REGION", "eu-west-3"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
        ("AWS_ACCESS_KEY_ID", "AKIDFUNCTION"),
        ("AWS_SECRET_ACCESS_KEY", "function-secret"),
        ("AWS_SESSION_TOKEN", "function-session"),
        ("AWS_ENDPOINT_URL", &support::aws_endpoint()),
    ]);
    let sdk = payorders::config::lambda_sdk_config_from(|k| vars.get(k).cloned());
    assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-3"));
    use aws_sdk_dynamodb::config::ProvideCredentials;
    let creds = sdk
        .credentials_provider()
        .expect("the role's credentials")
        .provide_credentials()
        .await
        .unwrap();
    assert_eq!(creds.access_key_id(), "AKIDFUNCTION");
    assert_eq!(creds.session_token(), Some("function-session"));

    // A round trip through the reqwest connector: create a table, read it back, and a
    // refusal comes back as the service's error, not as a transport failure.
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let name = support::unique("lambda-config");
    payorders::store::dynamo::create_table(&ddb, &name)
        .await
        .unwrap();
    let tables = ddb.list_tables().send().await.unwrap();
    assert!(
        tables.table_names().iter().any(|t| t == &name),
        "{tables:?}"
    );
    let err = ddb
        .describe_table()
        .table_name("no-such-table")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );

    // Without the role's credentials a call fails, and says why.
    let bare = payorders::config::lambda_sdk_config_from(|k| match k {
        "AWS_REGION" => Some("eu-west-3".into()),
        "AWS_ENDPOINT_URL" => Some(support::aws_endpoint()),
        _ => None,
    });
    let err = aws_sdk_dynamodb::Client::new(&bare)
        .list_tables()
        .send()
        .await
        .unwrap_err();
    let text = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
    assert!(text.contains("credentials"), "{text}");
}
