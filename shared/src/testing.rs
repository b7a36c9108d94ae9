//! Test fixtures shared by the crate's own tests and the workspace's integration tests
//! (feature `testing`): one valid object of each kind, for tests to adjust.

use crate::auth::MasterKey;
use crate::model::*;
use crate::registry::registry;

/// A PENDING DEPOSIT of 25 USDC on Base to a fixed recipient, with some metadata.
pub fn order(org: &OrgId, livemode: bool, created_at: Timestamp) -> PayOrder {
    let asset = registry()
        .currency_by_id("8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913")
        .expect("Base USDC is in the registry");
    PayOrder {
        id: OrderId::generate(),
        organization_id: org.clone(),
        livemode,
        mode: OrderMode::Deposit,
        status: OrderStatus::Pending,
        created_at,
        updated_at: created_at,
        expires_at: created_at.plus_seconds(1800),
        expired_at: None,
        fulfillment: Fulfillment {
            amount: Some(Amount::new(
                RawAmount::from_u128(25_000_000),
                asset.decimals,
            )),
            asset: Some(asset),
            recipient: Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into()),
            ..Default::default()
        },
        payment: None,
        metadata:
            serde_json::json!({"items": [{"name": "Widget", "quantity": 2, "unit_price": 49.99}]})
                .as_object()
                .cloned(),
        webhook_url: None,
        redirect_url: None,
        cancel_url: None,
        nonce: None,
        payment_tolerance: PaymentTolerance::default(),
        confirmations: None,
        late_payment_window: None,
        paid_over: false,
        paid_late: false,
        underpaid_within_tolerance: false,
        transfers: Vec::new(),
        refunds: Vec::new(),
        cancellation_reason: None,
        idempotency_key: None,
        check_round: 0,
        version: 1,
    }
}

/// An enabled endpoint subscribed to everything, with a fresh `whsec_` secret sealed with
/// `master`; returns the secret too.
pub fn endpoint(
    org: &OrgId,
    livemode: bool,
    url: &str,
    master: &MasterKey,
    at: Timestamp,
) -> (WebhookEndpoint, String) {
    endpoint_with_id(
        WebhookEndpointId::generate(),
        org,
        livemode,
        url,
        master,
        at,
    )
}

/// As [`endpoint`] with a given id (the secret is sealed for that id).
pub fn endpoint_with_id(
    id: WebhookEndpointId,
    org: &OrgId,
    livemode: bool,
    url: &str,
    master: &MasterKey,
    at: Timestamp,
) -> (WebhookEndpoint, String) {
    let secret = crate::webhooks::generate_secret();
    let endpoint = WebhookEndpoint {
        secrets: vec![SealedWebhookSecret {
            sealed: master.seal(&crate::webhooks::endpoint_secret_context(&id), &secret),
            created_at: at,
            expires_at: None,
        }],
        id,
        organization_id: org.clone(),
        livemode,
        url: url.to_owned(),
        description: None,
        events: vec!["*".into()],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        last_failed_at: None,
        options: DeliveryOptions::default(),
        created_at: at,
        updated_at: at,
        version: 1,
    };
    (endpoint, secret)
}

/// A transfer `hash` of `amount` (raw units, `decimals`) recorded on an order, in `status`,
/// in block 1 with one confirmation of one required.
pub fn transfer(
    hash: &str,
    amount: u128,
    decimals: u8,
    status: TransferStatus,
) -> ReceivedTransfer {
    ReceivedTransfer {
        tx_hash: hash.into(),
        amount: Amount::new(RawAmount::from_u128(amount), decimals),
        status,
        confirmations: 1,
        required_confirmations: 1,
        block_number: 1,
        block_hash: "0x1".into(),
        from_address: None,
        detected_at: Timestamp::now(),
        confirmed_at: None,
        sandbox: false,
        mined_at: None,
        late: false,
    }
}

/// A direct payment of `amount` (raw units) of a registry currency to `deposit`,
/// expiring now; fees and gas are placeholders equal to the amount.
pub fn payment(currency_id: &str, amount: u128, deposit: &str) -> Payment {
    let c = registry().currency_by_id(currency_id).unwrap();
    let amount = Amount::new(RawAmount::from_u128(amount), c.decimals);
    Payment {
        route: "direct".into(),
        payment_rail: "CRYPTO".into(),
        input: PaymentInput {
            currency: c.clone(),
            amount: amount.clone(),
            breakdown: Breakdown {
                base: amount.clone(),
                fees: Fees {
                    protocol_fee: amount.clone(),
                    custom_fee: None,
                    provider_fee: amount.clone(),
                    total_fee: amount.clone(),
                },
                gas: amount.clone(),
                total: amount.clone(),
            },
        },
        output: PaymentOutput {
            currency: c,
            amount,
        },
        steps: vec![PaymentStep {
            kind: "deposit".into(),
            rail: "CRYPTO".into(),
            deposit_address: deposit.into(),
        }],
        recipient: deposit.into(),
        expires_at: Timestamp::now(),
        refund: None,
        derivation_index: None,
        exchange_id: None,
        received: None,
        remaining: None,
        source_tx_hash: None,
        created_at: None,
    }
}

/// Two valid BIP-32 extended public keys, for wallets that derive their addresses.
pub const XPUBS: [&str; 2] = [
    "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
    "xpub661MyMwAqRbcGczjuMoRm6dXaLDEhW1u34gKenbeYqAix21mdUKJyuyu5F1rzYGVxyL6tmgBUAEPrEz92mBXjByMRiJdba9wpnN37RLLAXa",
];

/// A test-mode merchant wallet on `chain` deriving its addresses from `xpub`, accepting the
/// chain's native coin, at version 1, made at `created_at`.
pub fn xpub_wallet(
    org: &OrgId,
    chain: ChainId,
    xpub: &str,
    created_at: Timestamp,
) -> MerchantWallet {
    MerchantWallet {
        organization_id: org.clone(),
        livemode: false,
        chain_id: chain,
        address: None,
        xpub: Some(xpub.to_owned()),
        currencies: vec![format!("{chain}:native")],
        next_index: 0,
        created_at,
        updated_at: created_at,
        version: 1,
    }
}

/// A master key for tests.
pub fn master_key() -> MasterKey {
    MasterKey::from_text(&MasterKey::generate_text()).expect("generated keys are long enough")
}

/// A local anvil for chain tests: the test token deployed at the registry's TUSD address,
/// and funded payers. Setup is serialised, so parallel tests share one deployment.
pub mod anvil {
    use alloy::network::TransactionBuilder;
    use alloy::primitives::{Address, Bytes, U256};
    use alloy::providers::{Provider, ProviderBuilder};

    fn anvil_url(url: &str) -> url::Url {
        url.parse().expect("valid URL")
    }
    use alloy::rpc::types::TransactionRequest;
    use alloy::signers::local::PrivateKeySigner;
    use alloy::sol;

    /// Anvil's well-known first dev account (the deployer).
    const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    /// Where the first contract of that account lands: the registry's local TUSD.
    pub const TOKEN: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    const ARTIFACT: &str = include_str!("../../infra/contracts/TestToken.json");

    sol! {
        #[sol(rpc)]
        interface ITestToken {
            function transfer(address to, uint256 value) external returns (bool);
        }
    }

    static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// Deploys the test token (1,000,000 TUSD to the deployer) unless it is there already.
    pub async fn ensure_token(url: &str) -> Address {
        let _guard = SETUP.lock().await;
        let token: Address = TOKEN.parse().expect("valid address");
        let signer: PrivateKeySigner = DEV_KEY.parse().expect("valid key");
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_reqwest(crate::net::plain_client(), anvil_url(url));
        if !provider
            .get_code_at(token)
            .await
            .expect("anvil answers")
            .is_empty()
        {
            return token;
        }
        let artifact: serde_json::Value = serde_json::from_str(ARTIFACT).expect("artifact is JSON");
        let mut code = hex::decode(
            artifact["bytecode"]
                .as_str()
                .expect("bytecode")
                .trim_start_matches("0x"),
        )
        .expect("hex");
        code.extend_from_slice(&U256::from(1_000_000_000_000u64).to_be_bytes::<32>());
        let tx = TransactionRequest::default().with_deploy_code(Bytes::from(code));
        let receipt = provider
            .send_transaction(tx)
            .await
            .expect("deploy sent")
            .get_receipt()
            .await
            .expect("deployed");
        assert_eq!(
            receipt.contract_address,
            Some(token),
            "the test token must be the deployer's first contract (is this anvil fresh?)"
        );
        token
    }

    /// Gives `to` exactly `wei` of ETH and sends it `tusd` base units of the test token.
    pub async fn fund(url: &str, to: Address, wei: U256, tusd: U256) {
        let token = ensure_token(url).await;
        let _guard = SETUP.lock().await;
        let signer: PrivateKeySigner = DEV_KEY.parse().expect("valid key");
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_reqwest(crate::net::plain_client(), anvil_url(url));
        provider
            .raw_request::<_, ()>("anvil_setBalance".into(), (to, wei))
            .await
            .expect("anvil_setBalance");
        if !tusd.is_zero() {
            ITestToken::new(token, &provider)
                .transfer(to, tusd)
                .send()
                .await
                .expect("transfer sent")
                .get_receipt()
                .await
                .expect("transfer mined");
        }
    }

    /// Sends `wei` from the dev account to `to`; returns the mined transaction's hash.
    pub async fn send_native(url: &str, to: Address, wei: U256) -> alloy::primitives::B256 {
        let _guard = SETUP.lock().await;
        let signer: PrivateKeySigner = DEV_KEY.parse().expect("valid key");
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_reqwest(crate::net::plain_client(), anvil_url(url));
        let tx = TransactionRequest::default().with_to(to).with_value(wei);
        let receipt = provider
            .send_transaction(tx)
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("mined");
        receipt.transaction_hash
    }

    /// Sends `amount` of the test token from the dev account to `to`. With `gas` set, no
    /// estimate is made, so a transfer that reverts is still mined (with a failed status).
    pub async fn send_token(
        url: &str,
        to: Address,
        amount: U256,
        gas: Option<u64>,
    ) -> alloy::primitives::B256 {
        let token = ensure_token(url).await;
        let _guard = SETUP.lock().await;
        let signer: PrivateKeySigner = DEV_KEY.parse().expect("valid key");
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_reqwest(crate::net::plain_client(), anvil_url(url));
        let contract = ITestToken::new(token, &provider);
        let mut call = contract.transfer(to, amount);
        if let Some(g) = gas {
            call = call.gas(g);
        }
        let receipt = call
            .send()
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("mined");
        receipt.transaction_hash
    }

    /// Sends `tx` from `from` (any address: anvil impersonates it and gives it 1 ETH for
    /// gas first), e.g. a refund out of an order's deposit address; returns the mined
    /// transaction's hash.
    async fn send_as(url: &str, from: Address, tx: TransactionRequest) -> alloy::primitives::B256 {
        let _guard = SETUP.lock().await;
        let provider =
            ProviderBuilder::new().connect_reqwest(crate::net::plain_client(), anvil_url(url));
        let gas_money = U256::from(1_000_000_000_000_000_000u128);
        provider
            .raw_request::<_, ()>("anvil_setBalance".into(), (from, gas_money))
            .await
            .expect("anvil_setBalance");
        provider
            .raw_request::<_, ()>("anvil_impersonateAccount".into(), (from,))
            .await
            .expect("anvil_impersonateAccount");
        let receipt = provider
            .send_transaction(tx.with_from(from))
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("mined");
        provider
            .raw_request::<_, ()>("anvil_stopImpersonatingAccount".into(), (from,))
            .await
            .expect("anvil_stopImpersonatingAccount");
        receipt.transaction_hash
    }

    /// Sends `amount` of the test token from `from` (impersonated) to `to`.
    pub async fn send_token_from(
        url: &str,
        from: Address,
        to: Address,
        amount: U256,
    ) -> alloy::primitives::B256 {
        use alloy::sol_types::SolCall;
        let token = ensure_token(url).await;
        let input = ITestToken::transferCall { to, value: amount }.abi_encode();
        let tx = TransactionRequest::default()
            .with_to(token)
            .with_input(Bytes::from(input));
        send_as(url, from, tx).await
    }

    /// Sends `wei` from `from` (impersonated, topped up to 1 ETH first) to `to`.
    pub async fn send_native_from(
        url: &str,
        from: Address,
        to: Address,
        wei: U256,
    ) -> alloy::primitives::B256 {
        let tx = TransactionRequest::default().with_to(to).with_value(wei);
        send_as(url, from, tx).await
    }

    /// Calls an anvil/EVM JSON-RPC method and returns its result.
    pub async fn rpc(url: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
        let provider =
            ProviderBuilder::new().connect_reqwest(crate::net::plain_client(), anvil_url(url));
        provider
            .raw_request::<_, serde_json::Value>(method.to_owned().into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Mines `n` empty blocks.
    pub async fn mine(url: &str, n: u64) {
        rpc(url, "anvil_mine", serde_json::json!([format!("{n:#x}")])).await;
    }

    /// Sends `amount` of the test token from the dev account to each `(to, amount)`, all
    /// mined in one block: automine is turned off, the transfers are sent with consecutive
    /// nonces, one block is mined and automine is turned back on (whatever happened in
    /// between). Returns the mined transactions' hashes in sending order. It stops the chain's mining for a
    /// moment, so use it on a [`PrivateAnvil`] only.
    pub async fn send_tokens_in_one_block(
        url: &str,
        transfers: &[(Address, U256)],
    ) -> Vec<alloy::primitives::B256> {
        let token = ensure_token(url).await;
        let _guard = SETUP.lock().await;
        let signer: PrivateKeySigner = DEV_KEY.parse().expect("valid key");
        let from = signer.address();
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_reqwest(crate::net::plain_client(), anvil_url(url));
        let call = |method: &'static str, params: serde_json::Value| {
            provider.raw_request::<_, serde_json::Value>(method.into(), params)
        };
        call("evm_setAutomine", serde_json::json!([false]))
            .await
            .expect("evm_setAutomine false");
        let sent: Result<Vec<alloy::primitives::B256>, String> = async {
            let mut nonce = provider
                .get_transaction_count(from)
                .await
                .map_err(|e| e.to_string())?;
            let mut pending = Vec::new();
            for (to, amount) in transfers {
                let tx = ITestToken::new(token, &provider)
                    .transfer(*to, *amount)
                    .nonce(nonce)
                    .gas(100_000)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                pending.push(*tx.tx_hash());
                nonce += 1;
            }
            call("evm_mine", serde_json::json!([]))
                .await
                .map_err(|e| e.to_string())?;
            Ok(pending)
        }
        .await;
        // Mining comes back on before anything can fail, so nothing else waits forever.
        call("evm_setAutomine", serde_json::json!([true]))
            .await
            .expect("evm_setAutomine true");
        sent.unwrap_or_else(|e| panic!("transfers sent and mined: {e}"))
    }

    /// An anvil of a test's own (for tests that rewind the chain, set its clock or stop
    /// its mining, which would disturb other tests on a shared one), on a free port, with
    /// the binary `make test` installs; stopped when dropped.
    pub struct PrivateAnvil {
        pub url: String,
        child: std::process::Child,
    }

    impl PrivateAnvil {
        pub async fn start() -> Self {
            let bin =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules/.bin/anvil");
            assert!(
                bin.exists(),
                "{} is missing: `make test` installs it",
                bin.display()
            );
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .expect("a free port")
                .local_addr()
                .expect("its address")
                .port();
            let child = std::process::Command::new(bin)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--silent",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("anvil starts");
            let anvil = Self {
                url: format!("http://127.0.0.1:{port}"),
                child,
            };
            let client = crate::net::http_client().build().expect("an HTTP client");
            for _ in 0..100 {
                let up = client
                    .post(&anvil.url)
                    .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
                    .send()
                    .await
                    .is_ok();
                if up {
                    return anvil;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("the private anvil did not start on port {port}");
        }

        /// Chain 31337 read from this anvil.
        pub fn chains(&self) -> crate::chains::Chains {
            crate::chains::Chains::from_rpc_urls([(
                crate::model::ChainId::new(31337).expect("a chain id"),
                self.url.as_str(),
            )])
            .expect("a valid RPC URL")
        }
    }

    impl Drop for PrivateAnvil {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The dev account (the sender of `send_native` and `send_token`).
    pub fn dev_address() -> Address {
        DEV_KEY
            .parse::<PrivateKeySigner>()
            .expect("valid key")
            .address()
    }

    /// A fresh address nobody holds keys for in these tests.
    pub fn fresh_address() -> Address {
        Address::from(crate::model::random_bytes::<20>())
    }
}
