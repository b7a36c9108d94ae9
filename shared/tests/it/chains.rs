//! Balances: EVM on the anvil `make test` starts (a real chain, the test token deployed
//! from its committed artifact); Solana against a local fake serving mainnet-shaped JSON.

use alloy::primitives::U256;
use payorders::RawAmount;
use payorders::chains::{BalanceReader, ChainError, EvmChain, SolanaChain, TxReader};
use payorders::registry::{Currency, registry};
use payorders::testing::anvil;
use payorders::{ChainFamily, TxHash};
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn anvil_url() -> String {
    std::env::var("PAYORDERS_TEST_ANVIL_URL").expect(
        "PAYORDERS_TEST_ANVIL_URL is not set: the chain tests use the anvil `make test` starts",
    )
}

fn local(id: &str) -> Currency {
    registry().currency_by_id(id).unwrap()
}

#[tokio::test]
async fn evm_native_and_erc20_balances_on_anvil() {
    let url = anvil_url();
    let payer = anvil::fresh_address();
    anvil::fund(
        &url,
        payer,
        U256::from(1_500_000_000_000_000_000u128),
        U256::from(123_450_000u64),
    )
    .await;
    let chain = EvmChain::new(&url).unwrap();
    let eth = local("31337:native");
    let tusd = local("31337:0x5fbdb2315678afecb367f032d93f642f64180aa3");
    let got = chain
        .balances(&payer.to_string(), &[eth.clone(), tusd.clone()])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            RawAmount::from_u128(1_500_000_000_000_000_000),
            RawAmount::from_u128(123_450_000)
        ]
    );
    // Fees: gas price x 21000 for ETH, more for a token transfer.
    let native_fee = chain.transfer_fee(&eth).await.unwrap();
    let token_fee = chain.transfer_fee(&tusd).await.unwrap();
    assert!(
        !native_fee.is_zero() && token_fee > native_fee,
        "{native_fee} {token_fee}"
    );
    // An empty address holds nothing; a malformed one is refused before any call.
    let empty = anvil::fresh_address();
    assert_eq!(
        chain
            .balances(&empty.to_string(), &[eth.clone(), tusd])
            .await
            .unwrap(),
        vec![RawAmount::ZERO; 2]
    );
    assert!(matches!(
        chain.balances("0x1234", std::slice::from_ref(&eth)).await,
        Err(ChainError::BadAddress(_))
    ));
    // A registry token with no contract at its address on a chain holds nothing.
    let mut ghost = local("31337:0x5fbdb2315678afecb367f032d93f642f64180aa3");
    ghost.address = Some(anvil::fresh_address().to_string());
    assert_eq!(
        chain.balances(&payer.to_string(), &[ghost]).await.unwrap(),
        vec![RawAmount::ZERO]
    );
    // Nobody listening.
    let dead = EvmChain::new("http://127.0.0.1:9").unwrap();
    assert!(matches!(
        dead.balances(&empty.to_string(), &[eth]).await,
        Err(ChainError::Rpc(_))
    ));
}

#[tokio::test]
async fn evm_transactions_transfers_and_blocks_on_anvil() {
    let url = anvil_url();
    let chain = EvmChain::new(&url).unwrap();
    let to = anvil::fresh_address();
    let dev = anvil::dev_address().to_string();

    // A native transfer: one transfer without a log index, mined with success.
    let h = anvil::send_native(&url, to, U256::from(7_000_000_000_000_000u64)).await;
    let hash = TxHash::parse(ChainFamily::Evm, &format!("{h:#x}")).unwrap();
    let tx = chain.transaction(&hash).await.unwrap().unwrap();
    assert_eq!(tx.transfers.len(), 1);
    let t = &tx.transfers[0];
    assert_eq!(
        (t.token.as_deref(), t.from.as_str(), t.to.as_str()),
        (None, dev.as_str(), to.to_string().as_str())
    );
    assert_eq!(t.amount, RawAmount::from_u128(7_000_000_000_000_000));
    assert_eq!(t.log_index, None);
    let inc = tx.inclusion.unwrap();
    assert!(inc.success);
    // The block is on the chain, and the head is at or past it.
    assert_eq!(
        chain.block_hash(inc.block_number).await.unwrap(),
        Some(inc.block_hash.clone())
    );
    assert!(chain.head().await.unwrap() >= inc.block_number);

    // An ERC-20 transfer: the Transfer log, with its log index and token contract.
    let h = anvil::send_token(&url, to, U256::from(4_200_000u64), None).await;
    let tx = chain
        .transaction(&TxHash::parse(ChainFamily::Evm, &format!("{h:#x}")).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.transfers.len(), 1, "{tx:?}");
    let t = &tx.transfers[0];
    assert_eq!(t.token.as_deref(), Some(anvil::TOKEN));
    assert_eq!(
        (t.from.as_str(), t.to.as_str()),
        (dev.as_str(), to.to_string().as_str())
    );
    assert_eq!(t.amount, RawAmount::from_u128(4_200_000));
    assert!(t.log_index.is_some());
    assert!(tx.inclusion.unwrap().success);

    // A transfer that reverts is mined with a failed status and moves nothing.
    let h = anvil::send_token(&url, to, U256::MAX, Some(100_000)).await;
    let tx = chain
        .transaction(&TxHash::parse(ChainFamily::Evm, &format!("{h:#x}")).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!tx.inclusion.unwrap().success);
    assert!(tx.transfers.is_empty());

    // Unknown transactions and future blocks are absent, not errors.
    let unknown = TxHash::parse(ChainFamily::Evm, &format!("0x{}", "ab".repeat(32))).unwrap();
    assert_eq!(chain.transaction(&unknown).await.unwrap(), None);
    assert_eq!(chain.block_hash(u64::MAX / 2).await.unwrap(), None);
    // A Solana signature is not an EVM hash.
    let sig = TxHash::parse(ChainFamily::Solana, &bs58::encode([1u8; 64]).into_string()).unwrap();
    assert!(matches!(
        chain.transaction(&sig).await,
        Err(ChainError::Malformed(_))
    ));
}

const OWNER: &str = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";
const USDC_MINT: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

fn token_account(amount: &str) -> serde_json::Value {
    serde_json::json!({
        "pubkey": "BGocb4GEpbTFm8UFV2VsDSaBXHELPfAXrvd4vtt8QWrA",
        "account": {
            "data": {"parsed": {"info": {"isNative": false, "mint": USDC_MINT, "owner": OWNER, "state": "initialized",
                "tokenAmount": {"amount": amount, "decimals": 6, "uiAmount": 0.0, "uiAmountString": "0"}}, "type": "account"},
                "program": "spl-token", "space": 165},
            "executable": false, "lamports": 2039280, "owner": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "rentEpoch": 18446744073709551615u64, "space": 165
        }
    })
}

#[tokio::test]
async fn solana_sol_and_spl_balances_from_json_rpc() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(serde_json::json!({"method": "getBalance", "params": [OWNER]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "result": {"context": {"apiVersion": "2.1.21", "slot": 341197053}, "value": 2_500_000_000u64}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(serde_json::json!({"method": "getTokenAccountsByOwner"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "jsonrpc": "2.0", "id": 1,
            "result": {"context": {"apiVersion": "2.1.21", "slot": 341197053}, "value": [token_account("12000000"), token_account("500000")]}
        })))
        .mount(&server)
        .await;
    let sol = SolanaChain::new(&server.uri());
    let currencies = [
        local("30000000000001:native"),
        local(&format!("30000000000001:{USDC_MINT}")),
    ];
    let got = sol.balances(OWNER, &currencies).await.unwrap();
    assert_eq!(
        sol.transfer_fee(&currencies[1]).await.unwrap(),
        RawAmount::from_u128(5_000)
    );
    assert_eq!(
        got,
        vec![
            RawAmount::from_u128(2_500_000_000),
            RawAmount::from_u128(12_500_000)
        ],
        "token accounts are summed"
    );
    assert!(matches!(
        sol.balances("0xnot-solana", &currencies).await,
        Err(ChainError::BadAddress(_))
    ));

    // A JSON-RPC error, an HTTP error and a malformed answer are all typed.
    for (response, check) in [
        (ResponseTemplate::new(200).set_body_json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Invalid param"}})),
         (|e: &ChainError| matches!(e, ChainError::Rpc(m) if m.contains("Invalid param"))) as fn(&ChainError) -> bool),
        (ResponseTemplate::new(503), |e| matches!(e, ChainError::Rpc(_))),
        (ResponseTemplate::new(200).set_body_json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"value": "lots"}})), |e| matches!(e, ChainError::Malformed(_))),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(response).mount(&server).await;
        let err = SolanaChain::new(&server.uri()).balances(OWNER, &currencies[..1]).await.unwrap_err();
        assert!(check(&err), "{err:?}");
    }
}
