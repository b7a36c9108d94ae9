//! Balances, transactions and payment checks: EVM on the anvil `make test` starts (a real chain, the test token deployed
//! from its committed artifact); Solana against a local fake serving mainnet-shaped JSON.

use alloy::primitives::U256;
use payorders::RawAmount;
use payorders::chains::{BalanceReader, ChainError, Chains, EvmChain, SolanaChain, TxReader};
use payorders::payments::{
    Assessment, ConfirmationCheck, assess, check_confirmations, required_confirmations,
    verify_transaction,
};
use payorders::registry::{Currency, registry};
use payorders::testing::{self, anvil};
use payorders::{ChainFamily, ChainId, OrderStatus, OrgId, Payment, Timestamp, TxHash};
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
    assert_eq!(t.position, None);
    // Who sent it, and the nonce it spent (a refund's replacement must spend the same).
    let first = tx.sender_nonce.clone().expect("an EVM transaction's nonce");
    assert_eq!(first.sender, dev);
    let inc = tx.inclusion.unwrap();
    // The account's nonces spent as of a block: past this one's from its block on, not
    // before it.
    let spent = |block: u64| {
        let chain = &chain;
        let dev = dev.clone();
        async move { chain.nonce_at(&dev, block).await.unwrap().unwrap() }
    };
    assert!(spent(inc.block_number).await > first.nonce);
    assert!(spent(inc.block_number - 1).await <= first.nonce);
    assert!(inc.success);
    // The block's time is read with it (anvil stamps blocks with the wall clock).
    let now = payorders::Timestamp::now().unix() as u64;
    assert!(inc.timestamp.abs_diff(now) < 600, "{inc:?} vs {now}");
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
    // Its position is the log's place among the transaction's logs, not in the block.
    assert_eq!(t.position, Some(0));
    // The same account's later transaction spent a later nonce.
    let later = tx.sender_nonce.clone().expect("an EVM transaction's nonce");
    assert_eq!(later.sender, dev);
    assert!(later.nonce > first.nonce, "{first:?} then {later:?}");
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

/// Anvil mines one transaction per block, where a log's index in its block and in its
/// transaction are the same. Two transfers mined in one block tell them apart: the second
/// transaction's transfer is at position 0 of its transaction, log 1 of its block. A reorg
/// may mine a transaction again beside other transactions, which moves its logs' indexes
/// in the block but not their places inside it: only the latter is a stable claim key.
#[tokio::test]
async fn a_transfer_position_is_inside_its_transaction_not_its_block() {
    // Its own anvil: mining stops while both transfers wait for the same block.
    let private = anvil::PrivateAnvil::start().await;
    let url = private.url.clone();
    let chain = EvmChain::new(&url).unwrap();
    let sent = [
        (anvil::fresh_address(), 1_000u64),
        (anvil::fresh_address(), 2_000u64),
    ];
    let hashes =
        anvil::send_tokens_in_one_block(&url, &sent.map(|(to, amount)| (to, U256::from(amount))))
            .await;
    assert_eq!(hashes.len(), 2);
    let mut blocks = Vec::new();
    for (i, (h, (to, amount))) in hashes.iter().zip(sent).enumerate() {
        // The block-wide log index, as the node reports it.
        let receipt = anvil::rpc(
            &url,
            "eth_getTransactionReceipt",
            serde_json::json!([format!("{h:#x}")]),
        )
        .await;
        assert_eq!(
            receipt["logs"][0]["logIndex"],
            serde_json::json!(format!("{i:#x}")),
            "{receipt}"
        );
        let hash = TxHash::parse(ChainFamily::Evm, &format!("{h:#x}")).unwrap();
        let tx = chain.transaction(&hash).await.unwrap().unwrap();
        assert_eq!(tx.transfers.len(), 1, "{tx:?}");
        let t = &tx.transfers[0];
        assert_eq!(
            (t.to.as_str(), t.amount),
            (to.to_string().as_str(), RawAmount::from_u128(amount.into()))
        );
        // The transfer's position: its log's place in the transaction, 0 for both.
        assert_eq!(t.position, Some(0), "transaction {i}: {tx:?}");
        blocks.push(tx.inclusion.unwrap().block_number);

        // And what a payment claims: the transaction hash and that position.
        let deposit = to.to_string();
        let p = testing::payment(
            "31337:0x5fbdb2315678afecb367f032d93f642f64180aa3",
            amount.into(),
            &deposit,
        );
        let mut order = testing::order(&OrgId::generate(), false, Timestamp::now());
        order.payment = Some(p.clone());
        order.status = OrderStatus::AwaitingPayment;
        let v = verify_transaction(&chain, &order, &p, &hash).await.unwrap();
        assert_eq!(
            v.claims
                .iter()
                .filter(|c| !c.refund)
                .map(|c| (c.tx_hash.as_str(), c.position))
                .collect::<Vec<_>>(),
            [(format!("{h:#x}").as_str(), 0)]
        );
    }
    assert_eq!(blocks[0], blocks[1], "both transfers are in one block");
    // Mining is back on: a later transfer is mined at once, in a block of its own.
    let later = anvil::send_token(&url, anvil::fresh_address(), U256::from(1u64), None).await;
    let later = TxHash::parse(ChainFamily::Evm, &format!("{later:#x}")).unwrap();
    let inc = chain.transaction(&later).await.unwrap().unwrap().inclusion;
    assert!(inc.unwrap().block_number > blocks[0]);
}

#[tokio::test]
async fn a_scan_range_the_node_does_not_have_is_a_failed_read() {
    let url = anvil_url();
    let local_id = ChainId::new(31337).unwrap();
    let chains = Chains::from_rpc_urls([(local_id, url.as_str())]).unwrap();
    let chain: &dyn TxReader = &**chains.get(local_id).unwrap();
    let to = anvil::fresh_address();
    let hash = anvil::send_token(&url, to, U256::from(1_000u64), None).await;
    // Its own block (other tests mine on the same anvil meanwhile: the head moves on).
    let tx = TxHash::parse(ChainFamily::Evm, &format!("{hash:#x}")).unwrap();
    let mined = chain
        .transaction(&tx)
        .await
        .unwrap()
        .unwrap()
        .inclusion
        .unwrap();
    let block = mined.block_number;
    let watch = payorders::chains::Watch {
        addresses: vec![to.to_string()],
        tokens: vec![anvil::TOKEN.to_owned()],
        native: true,
    };
    // The range it has: the transfer is sighted.
    let seen = chain.sightings(block, block, &watch).await.unwrap();
    assert!(
        seen.iter()
            .any(|s| s.tx_hash.to_string() == format!("{hash:#x}")),
        "{seen:?}"
    );
    // A transfer of nothing (anyone may emit one to any address) is not sighted: it pays
    // nothing, and a swarm of them must cost the scan no reads.
    let zero = anvil::send_token(&url, to, U256::ZERO, None).await;
    let zero = TxHash::parse(ChainFamily::Evm, &format!("{zero:#x}")).unwrap();
    let zero_block = chain
        .transaction(&zero)
        .await
        .unwrap()
        .unwrap()
        .inclusion
        .unwrap()
        .block_number;
    let seen = chain
        .sightings(zero_block, zero_block, &watch)
        .await
        .unwrap();
    assert!(seen.iter().all(|s| s.tx_hash != zero), "{seen:?}");
    let head = chain.head().await.unwrap();
    // Blocks past its head (what a lagging node looks like): an error, never an empty
    // range the scan would then step over. Token logs alone, and native value alone.
    for (tokens, native) in [(vec![anvil::TOKEN.to_owned()], false), (vec![], true)] {
        let w = payorders::chains::Watch {
            addresses: vec![to.to_string()],
            tokens,
            native,
        };
        assert!(
            chain
                .sightings(head + 1_000, head + 1_010, &w)
                .await
                .is_err(),
            "native {native}"
        );
    }
}

#[tokio::test]
async fn payments_verified_and_confirmed_on_anvil() {
    let url = anvil_url();
    // Through the per-chain readers the functions use, as configured from RPC URLs.
    let local_id = ChainId::new(31337).unwrap();
    let chains = Chains::from_rpc_urls([(local_id, url.as_str())]).unwrap();
    let chain: &dyn TxReader = &**chains.get(local_id).unwrap();
    let deposit = anvil::fresh_address().to_string();
    let tusd = "31337:0x5fbdb2315678afecb367f032d93f642f64180aa3";
    let order_payment = testing::payment(tusd, 4_200_000, &deposit);
    let order_of = |p: &Payment| {
        let mut o = testing::order(&OrgId::generate(), false, Timestamp::now());
        o.payment = Some(p.clone());
        o.status = OrderStatus::AwaitingPayment;
        o
    };
    let order = order_of(&order_payment);

    // A real ERC-20 transfer of part of the amount: verified, and 1.2 TUSD still due.
    let h = anvil::send_token(
        &url,
        deposit.parse().unwrap(),
        U256::from(3_000_000u64),
        None,
    )
    .await;
    let hash = TxHash::parse(ChainFamily::Evm, &format!("{h:#x}")).unwrap();
    let v = verify_transaction(chain, &order, &order_payment, &hash)
        .await
        .unwrap();
    assert_eq!(v.amount, RawAmount::from_u128(3_000_000));
    // The transfer's claim and its refund-side twin.
    assert_eq!(v.claims.len(), 2);
    assert_eq!(v.claims[1], v.claims[0].other_purpose());
    assert_eq!(v.claims[0].tx_hash, format!("{h:#x}"));
    assert_eq!(
        assess(
            RawAmount::from_u128(4_200_000),
            v.amount,
            Default::default()
        ),
        Assessment::Partial {
            remaining: RawAmount::from_u128(1_200_000)
        }
    );

    // The same transaction checked against other orders: another deposit address, and
    // an order paid in the native coin.
    let elsewhere = testing::payment(tusd, 1, &anvil::fresh_address().to_string());
    let in_eth = testing::payment("31337:native", 1, &deposit);
    for (p, code) in [(&elsewhere, "WRONG_RECIPIENT"), (&in_eth, "WRONG_TOKEN")] {
        let err = verify_transaction(chain, &order_of(p), p, &hash)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }
    let unknown = TxHash::parse(ChainFamily::Evm, &format!("0x{}", "cd".repeat(32))).unwrap();
    let err = verify_transaction(chain, &order, &order_payment, &unknown)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TX_NOT_FOUND");

    // The same real transfer against an order whose payment details were chosen an hour
    // after it was mined: the block's own timestamp shows it is older, so it pays nothing.
    let mut later = order_payment.clone();
    later.created_at = Some(Timestamp::now().plus_seconds(3_600));
    let err = verify_transaction(chain, &order_of(&later), &later, &hash)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TX_BEFORE_ORDER");

    // The local chain needs 2 confirmations: 1 in its own block, 2 once another is mined.
    let required = required_confirmations(None, None, order_payment.input.currency.chain_id);
    assert_eq!(required, 2);
    let block = v.inclusion.block_number;
    let recorded_hash = v.inclusion.block_hash.as_str();
    let now = chain.transaction(&hash).await.unwrap().unwrap().inclusion;
    assert_eq!(
        check_confirmations(block, recorded_hash, now.as_ref(), None, block, required),
        ConfirmationCheck::Pending { confirmations: 1 }
    );
    anvil::send_native(&url, anvil::fresh_address(), U256::from(1u64)).await;
    let head = chain.head().await.unwrap();
    let now = chain.transaction(&hash).await.unwrap().unwrap().inclusion;
    assert!(matches!(
        check_confirmations(block, recorded_hash, now.as_ref(), None, head, required),
        ConfirmationCheck::Confirmed { confirmations } if confirmations >= 2
    ));
    // A node that does not find the transaction while the chain still has the recorded
    // block (what a lagging RPC answers) is not a reorg; another block there is.
    let canonical = chain.block_hash(block).await.unwrap();
    assert_eq!(canonical.as_deref(), Some(recorded_hash));
    assert_eq!(
        check_confirmations(
            block,
            recorded_hash,
            None,
            canonical.as_deref(),
            head,
            required
        ),
        ConfirmationCheck::Unsure
    );
    let other_block = chain.block_hash(block - 1).await.unwrap();
    assert_eq!(
        check_confirmations(
            block,
            recorded_hash,
            None,
            other_block.as_deref(),
            head,
            required
        ),
        ConfirmationCheck::Reorged
    );
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

const PAYER: &str = "7EYnhQoR9YM3N7UoaKRoA44Uy8JeaZV3qyouov87awMs";
const PAYER_ATA: &str = "3emsAVdmGKERbHjmGfQ6oZ1e35dkf5iYcS6U4CPKFVaa";
const OWNER_ATA: &str = "BGocb4GEpbTFm8UFV2VsDSaBXHELPfAXrvd4vtt8QWrA";

/// A `getTransaction` (jsonParsed) answer shaped like mainnet's: a SOL transfer and a USDC
/// `transferChecked` from the payer's token account to the owner's.
fn solana_tx(err: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1,
        "result": {
            "blockTime": 1763732400, "slot": 341197053, "version": 0,
            "meta": {
                "err": err, "fee": 5000, "computeUnitsConsumed": 6200,
                "preBalances": [1000000000u64, 2039280, 2039280, 1, 934087680],
                "postBalances": [749995000u64, 2039280, 2039280, 1, 934087680],
                "preTokenBalances": [
                    {"accountIndex": 1, "mint": USDC_MINT, "owner": PAYER, "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                     "uiTokenAmount": {"amount": "9000000", "decimals": 6, "uiAmount": 9.0, "uiAmountString": "9"}},
                    {"accountIndex": 2, "mint": USDC_MINT, "owner": OWNER, "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                     "uiTokenAmount": {"amount": "0", "decimals": 6, "uiAmount": null, "uiAmountString": "0"}}
                ],
                "postTokenBalances": [
                    {"accountIndex": 1, "mint": USDC_MINT, "owner": PAYER, "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                     "uiTokenAmount": {"amount": "6500000", "decimals": 6, "uiAmount": 6.5, "uiAmountString": "6.5"}},
                    {"accountIndex": 2, "mint": USDC_MINT, "owner": OWNER, "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                     "uiTokenAmount": {"amount": "2500000", "decimals": 6, "uiAmount": 2.5, "uiAmountString": "2.5"}}
                ],
                "innerInstructions": [], "logMessages": [], "rewards": []
            },
            "transaction": {
                "signatures": ["5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"],
                "message": {
                    "accountKeys": [
                        {"pubkey": PAYER, "signer": true, "writable": true, "source": "transaction"},
                        {"pubkey": PAYER_ATA, "signer": false, "writable": true, "source": "transaction"},
                        {"pubkey": OWNER_ATA, "signer": false, "writable": true, "source": "transaction"},
                        {"pubkey": "11111111111111111111111111111111", "signer": false, "writable": false, "source": "transaction"},
                        {"pubkey": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "signer": false, "writable": false, "source": "transaction"}
                    ],
                    "instructions": [
                        {"parsed": {"info": {"destination": OWNER, "lamports": 250000000, "source": PAYER}, "type": "transfer"},
                         "program": "system", "programId": "11111111111111111111111111111111", "stackHeight": null},
                        {"parsed": {"info": {"authority": PAYER, "destination": OWNER_ATA, "mint": USDC_MINT, "source": PAYER_ATA,
                                             "tokenAmount": {"amount": "2500000", "decimals": 6, "uiAmount": 2.5, "uiAmountString": "2.5"}},
                                    "type": "transferChecked"},
                         "program": "spl-token", "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "stackHeight": null}
                    ],
                    "recentBlockhash": "EkSnNWid2cvwEVnVx9aBqawnmiCNiDgp3gUdkDPTKN1N"
                }
            }
        }
    })
}

#[tokio::test]
async fn a_solana_transaction_whose_block_the_node_cannot_show_is_a_failed_read() {
    // A lagging node knows the transaction but answers `null` for its block: the read
    // fails (and is retried) rather than giving an inclusion with an empty block hash,
    // which the next confirmation check would take for a reorg.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(serde_json::json!({"method": "getBlock"})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": null})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            serde_json::json!({"method": "getTransaction"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(solana_tx(serde_json::Value::Null)))
        .mount(&server)
        .await;
    let sig =
        "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW";
    let read = SolanaChain::new(&server.uri())
        .transaction(&TxHash::parse(ChainFamily::Solana, sig).unwrap())
        .await;
    assert!(
        matches!(&read, Err(ChainError::Rpc(m)) if m.contains("block")),
        "{read:?}"
    );
}

#[tokio::test]
async fn solana_transactions_from_json_parsed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(serde_json::json!({"method": "getBlock", "params": [341197053u64]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "jsonrpc": "2.0", "id": 1,
            "result": {"blockHeight": 319468730, "blockTime": 1763732400, "blockhash": "9xTzYRYLNnAZSJFiP3ZDkvBH3rCJwqwMWSMrJKbGyJ7N",
                       "parentSlot": 341197052, "previousBlockhash": "EkSnNWid2cvwEVnVx9aBqawnmiCNiDgp3gUdkDPTKN1N"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(serde_json::json!({"method": "getSlot"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": 341197080u64}),
            ),
        )
        .mount(&server)
        .await;
    let ok_sig =
        "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW";
    let failed_sig = bs58::encode([2u8; 64]).into_string();
    let unknown_sig = bs58::encode([3u8; 64]).into_string();
    for (sig, answer) in [
        (ok_sig.to_owned(), solana_tx(serde_json::Value::Null)),
        (
            failed_sig.clone(),
            solana_tx(serde_json::json!({"InstructionError": [1, {"Custom": 1}]})),
        ),
        (
            unknown_sig.clone(),
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": null}),
        ),
    ] {
        Mock::given(method("POST"))
            .and(body_partial_json(
                serde_json::json!({"method": "getTransaction", "params": [sig]}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .mount(&server)
            .await;
    }
    let sol = SolanaChain::new(&server.uri());
    let tx = sol
        .transaction(&TxHash::parse(ChainFamily::Solana, ok_sig).unwrap())
        .await
        .unwrap()
        .unwrap();
    let inc = tx.inclusion.clone().unwrap();
    assert!(inc.success);
    assert_eq!(
        (inc.block_number, inc.block_hash.as_str()),
        (341197053, "9xTzYRYLNnAZSJFiP3ZDkvBH3rCJwqwMWSMrJKbGyJ7N")
    );
    assert_eq!(tx.transfers.len(), 2, "{tx:?}");
    let sol_t = &tx.transfers[0];
    assert_eq!(
        (
            sol_t.token.as_deref(),
            sol_t.from.as_str(),
            sol_t.to.as_str()
        ),
        (None, PAYER, OWNER)
    );
    assert_eq!(sol_t.amount, RawAmount::from_u128(250_000_000));
    // The SPL transfer lands in a token account; it is reported to that account's owner.
    let spl = &tx.transfers[1];
    assert_eq!(
        (spl.token.as_deref(), spl.from.as_str(), spl.to.as_str()),
        (Some(USDC_MINT), PAYER, OWNER)
    );
    assert_eq!(spl.amount, RawAmount::from_u128(2_500_000));
    assert_eq!(spl.position, Some(1));

    let failed = sol
        .transaction(&TxHash::parse(ChainFamily::Solana, &failed_sig).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!failed.inclusion.unwrap().success);
    assert_eq!(
        sol.transaction(&TxHash::parse(ChainFamily::Solana, &unknown_sig).unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(sol.head().await.unwrap(), 341197080);
    let evm_hash = TxHash::parse(ChainFamily::Evm, &format!("0x{}", "ab".repeat(32))).unwrap();
    assert!(matches!(
        sol.transaction(&evm_hash).await,
        Err(ChainError::Malformed(_))
    ));
}

/// One token balance of a Solana transaction's `preTokenBalances` / `postTokenBalances`.
fn spl_balance(index: u64, owner: &str, amount: u64) -> serde_json::Value {
    serde_json::json!({"accountIndex": index, "mint": USDC_MINT, "owner": owner,
        "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
        "uiTokenAmount": {"amount": amount.to_string(), "decimals": 6, "uiAmountString": "0"}})
}

/// A USDC `transferChecked` of `amount` from token account `source` to `destination`.
fn spl_transfer(source: &str, destination: &str, amount: u64) -> serde_json::Value {
    serde_json::json!({"parsed": {"info": {"authority": PAYER, "destination": destination, "mint": USDC_MINT,
        "source": source, "tokenAmount": {"amount": amount.to_string(), "decimals": 6}}, "type": "transferChecked"},
        "program": "spl-token", "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "stackHeight": null})
}

/// The USDC transfers a Solana node reports for a transaction of `instructions` over the
/// accounts `[PAYER, PAYER_ATA, account]` with these balances before and after.
async fn spl_transfers_read(
    account: &str,
    before: Vec<serde_json::Value>,
    after: Vec<serde_json::Value>,
    instructions: Vec<serde_json::Value>,
) -> Vec<payorders::chains::Transfer> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(serde_json::json!({"method": "getBlock"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "result": {"blockhash": "9xTzYRYLNnAZSJFiP3ZDkvBH3rCJwqwMWSMrJKbGyJ7N"}
        })))
        .mount(&server)
        .await;
    let key = |k: &str| serde_json::json!({"pubkey": k, "signer": k == PAYER, "writable": true});
    Mock::given(method("POST"))
        .and(body_partial_json(serde_json::json!({"method": "getTransaction"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "jsonrpc": "2.0", "id": 1,
            "result": {
                "blockTime": 1763732400, "slot": 341197053,
                "meta": {"err": null, "fee": 5000, "preTokenBalances": before, "postTokenBalances": after,
                         "innerInstructions": []},
                "transaction": {"message": {
                    "accountKeys": [key(PAYER), key(PAYER_ATA), key(account)],
                    "instructions": instructions}}
            }
        })))
        .mount(&server)
        .await;
    let sig = bs58::encode([9u8; 64]).into_string();
    let tx = SolanaChain::new(&server.uri())
        .transaction(&TxHash::parse(ChainFamily::Solana, &sig).unwrap())
        .await
        .unwrap()
        .unwrap();
    tx.transfers
}

/// The SPL Token program lets a token account's owner hand it to anyone (`setAuthority`).
/// An attacker moves tokens into an account of theirs and back out again, then hands the
/// emptied account to the deposit address, all in one transaction: read by its
/// instructions and the owners after it, the deposit address was paid, twice over if the
/// pair is repeated, though it holds nothing. Only transfers its balances back count.
#[tokio::test]
async fn a_solana_token_account_handed_to_the_deposit_address_after_its_transfers_pays_nothing() {
    let account = bs58::encode([7u8; 32]).into_string();
    let set_owner = serde_json::json!({"parsed": {"info": {"account": account, "authority": PAYER,
        "authorityType": "accountOwner", "newAuthority": OWNER}, "type": "setAuthority"},
        "program": "spl-token", "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "stackHeight": null});
    let round_trip = || {
        vec![
            spl_transfer(PAYER_ATA, &account, 2_500_000),
            spl_transfer(&account, PAYER_ATA, 2_500_000),
            spl_transfer(PAYER_ATA, &account, 2_500_000),
            spl_transfer(&account, PAYER_ATA, 2_500_000),
            set_owner.clone(),
        ]
    };
    // An account of the attacker's, handed over.
    let handed = spl_transfers_read(
        &account,
        vec![spl_balance(1, PAYER, 9_000_000), spl_balance(2, PAYER, 0)],
        vec![spl_balance(1, PAYER, 9_000_000), spl_balance(2, OWNER, 0)],
        round_trip(),
    )
    .await;
    assert!(handed.iter().all(|t| t.to != OWNER), "{handed:?}");
    // An account opened in the transaction itself, and handed over.
    let opened = spl_transfers_read(
        &account,
        vec![spl_balance(1, PAYER, 9_000_000)],
        vec![spl_balance(1, PAYER, 9_000_000), spl_balance(2, OWNER, 0)],
        round_trip(),
    )
    .await;
    assert!(opened.iter().all(|t| t.to != OWNER), "{opened:?}");
    // A real payment into the deposit address's account opened in the same transaction
    // (as wallets open one when it has none), in two transfers: both count.
    let paid = spl_transfers_read(
        OWNER_ATA,
        vec![spl_balance(1, PAYER, 9_000_000)],
        vec![
            spl_balance(1, PAYER, 4_000_000),
            spl_balance(2, OWNER, 5_000_000),
        ],
        vec![
            spl_transfer(PAYER_ATA, OWNER_ATA, 2_500_000),
            spl_transfer(PAYER_ATA, OWNER_ATA, 2_500_000),
        ],
    )
    .await;
    assert_eq!(paid.len(), 2, "{paid:?}");
    for t in &paid {
        assert_eq!(
            (t.token.as_deref(), t.from.as_str(), t.to.as_str()),
            (Some(USDC_MINT), PAYER, OWNER)
        );
        assert_eq!(t.amount, RawAmount::from_u128(2_500_000));
    }
    // Transfers that say more than the balances gained count nothing.
    let overstated = spl_transfers_read(
        OWNER_ATA,
        vec![spl_balance(1, PAYER, 9_000_000), spl_balance(2, OWNER, 0)],
        vec![
            spl_balance(1, PAYER, 6_500_000),
            spl_balance(2, OWNER, 2_500_000),
        ],
        vec![
            spl_transfer(PAYER_ATA, OWNER_ATA, 2_500_000),
            spl_transfer(PAYER_ATA, OWNER_ATA, 2_500_000),
        ],
    )
    .await;
    assert!(overstated.is_empty(), "{overstated:?}");
}

/// RPC URLs often carry the provider's key: a failed call must not repeat it, since the
/// error text reaches logs and API answers.
#[tokio::test]
async fn rpc_errors_do_not_repeat_the_url_and_its_key() {
    let url = "http://127.0.0.1:1/v2/SECRETKEY";
    let eth = local("31337:native");
    let evm = EvmChain::new(url).unwrap();
    let solana = SolanaChain::new(url);
    let hash = TxHash::parse(ChainFamily::Evm, &format!("0x{}", "ab".repeat(32))).unwrap();
    let errors = [
        evm.balances(
            "0x0000000000000000000000000000000000000001",
            std::slice::from_ref(&eth),
        )
        .await
        .unwrap_err(),
        evm.transaction(&hash).await.unwrap_err(),
        evm.head().await.unwrap_err(),
        solana.head().await.unwrap_err(),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(matches!(e, ChainError::Rpc(_)), "{text}");
        assert!(!text.contains("SECRETKEY"), "{text}");
    }
}

/// A fake EVM JSON-RPC node: `answer(method, params)` gives a call's `result` (`None`: a
/// method it does not serve, answered with JSON-RPC's "method not found"). The request's
/// `id` is echoed, as alloy's client expects.
struct FakeEvmNode<F>(F);

impl<F> wiremock::Respond for FakeEvmNode<F>
where
    F: Fn(&str, &serde_json::Value) -> Option<serde_json::Value> + Send + Sync + 'static,
{
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let call: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let method = call["method"].as_str().unwrap_or_default();
        let body = match (self.0)(method, &call["params"]) {
            Some(result) => {
                serde_json::json!({"jsonrpc": "2.0", "id": call["id"], "result": result})
            }
            None => serde_json::json!({"jsonrpc": "2.0", "id": call["id"],
                "error": {"code": -32601, "message": format!("the method {method} does not exist")}}),
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

async fn fake_evm_node(
    answer: impl Fn(&str, &serde_json::Value) -> Option<serde_json::Value> + Send + Sync + 'static,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(FakeEvmNode(answer))
        .mount(&server)
        .await;
    server
}

/// An L2 block as `eth_getBlockByNumber`/`eth_getBlockByHash` give it: its header (the
/// chain's own fields in `extra`), and `txs` in full or, unless `full`, their hashes.
fn l2_block(header: serde_json::Value, txs: &[serde_json::Value], full: bool) -> serde_json::Value {
    let mut block = header;
    block["transactions"] = if full {
        serde_json::Value::Array(txs.to_vec())
    } else {
        txs.iter().map(|t| t["hash"].clone()).collect()
    };
    block
}

/// Answers the block calls of a one-block chain: by number (`number`) and by hash, hashes
/// only or in full, `null` for any other block; `eth_blockNumber` is that block.
fn one_block_node(
    block: serde_json::Value,
    txs: Vec<serde_json::Value>,
    receipts: Vec<serde_json::Value>,
) -> impl Fn(&str, &serde_json::Value) -> Option<serde_json::Value> + Send + Sync + 'static {
    move |method, params| {
        let full = params[1].as_bool().unwrap_or(false);
        Some(match method {
            "eth_blockNumber" => block["number"].clone(),
            "eth_getBlockByNumber" if params[0] == block["number"] => {
                l2_block(block.clone(), &txs, full)
            }
            "eth_getBlockByHash" if params[0] == block["hash"] => {
                l2_block(block.clone(), &txs, full)
            }
            "eth_getBlockByNumber" | "eth_getBlockByHash" => serde_json::Value::Null,
            "eth_getTransactionByHash" => txs
                .iter()
                .find(|t| t["hash"] == params[0])
                .cloned()
                .unwrap_or_default(),
            "eth_getTransactionReceipt" => receipts
                .iter()
                .find(|r| r["transactionHash"] == params[0])
                .cloned()
                .unwrap_or_default(),
            "eth_getLogs" => serde_json::json!([]),
            _ => return None,
        })
    }
}

/// The watched deposit address and a payer, on every fake L2 below.
const L2_DEPOSIT: &str = "0x25eaf95a62feec44da6e2ff4caa772edb2b34489";
const L2_PAYER: &str = "0xa306ca719e2b603db176c7d7f9cc0bca2b836428";

const BASE_BLOCK_HASH: &str = "0xbdc60403b9f662a90360de68295c3fd2e0b3f280b5bcb1b4887db9801c1f826e";
const BASE_L1_INFO_TX: &str = "0x39fe2b3fed3c891165921f5d65c72dd0bf491d181e1267b64fcd5e50d45a2628";
const BASE_BRIDGED_TX: &str = "0x009a280bb859fedf20f1929d1ae7a36272cf42d27f3177a4b68b9504f28f1717";
const BASE_MINT_ONLY_TX: &str =
    "0xf500e800d0890f09b601baffbbacdae36f2e850e258c35639a7033a4d4b6ae3e";
const BASE_TRANSFER_TX: &str = "0x35312ef19fcedf49b647abce90e1c60bda5e45a4aead921f9d30a66eea9fba63";

/// A Base mainnet block header (Isthmus), as op-geth and op-reth give it.
fn base_header() -> serde_json::Value {
    serde_json::json!({
        "baseFeePerGas": "0x4c4b40", "blobGasUsed": "0x0", "difficulty": "0x0", "excessBlobGas": "0x0",
        "extraData": "0x00000000fa00000006", "gasLimit": "0x8f0d180", "gasUsed": "0x1a4f2c3",
        "hash": BASE_BLOCK_HASH,
        "logsBloom": format!("0x{}", "00".repeat(256)),
        "miner": "0x4200000000000000000000000000000000000011",
        "mixHash": "0xe85443fae4ce1b53796dc2b55c7f04114d47ded16c6a279aaa7034c390c8a1b1",
        "nonce": "0x0000000000000000", "number": "0x1e8b9a0",
        "parentBeaconBlockRoot": "0xa197dc1b1c726d8aeb89b7692bd6705590bb20d918504f62b852863f5921dfcc",
        "parentHash": "0x8767c5311dfa26943772291b36ba7d86c5a35fb9053a5243ffb6b119cc22d7f3",
        "receiptsRoot": "0x09c5ee50e3c299aa41469da30397953bc51c87aed3fb5a49867145dc83df691f",
        "requestsHash": "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "size": "0x1b2f4", "stateRoot": "0x08c99cf6cf58857ed6ec1b88cc37937a35c426206cc12c503bd98011a12a8c84",
        "timestamp": "0x68d3f0a1", "totalDifficulty": "0x0",
        "transactionsRoot": "0x60e1efe5c86c1df2747373121dd0bb6c67707824aa4430e4a84aead2c471692c",
        "uncles": [], "withdrawals": [],
        "withdrawalsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
    })
}

/// An OP-stack deposit transaction (type 0x7e): no signature, a `sourceHash`, the ETH it
/// mints to its sender on L2 (`mint`), then a call of `to` with `value`.
fn op_deposit(
    hash: &str,
    index: u64,
    from: &str,
    to: &str,
    mint: &str,
    value: &str,
    input: &str,
) -> serde_json::Value {
    serde_json::json!({
        "blockHash": BASE_BLOCK_HASH, "blockNumber": "0x1e8b9a0",
        "depositReceiptVersion": "0x1", "from": from, "gas": "0xf4240", "gasPrice": "0x0",
        "hash": hash, "input": input, "isSystemTx": false, "mint": mint, "nonce": "0x1e8b9a",
        "r": "0x0", "s": "0x0", "v": "0x0",
        "sourceHash": "0xbee44d44e9f9bd47299c496764391e8ba1f165be5aac4258af45228e99da9c4b",
        "to": to, "transactionIndex": format!("{index:#x}"), "type": "0x7e", "value": value
    })
}

/// Every OP-stack block's first transaction: the L1 attributes deposit to the L1Block
/// predeploy, from the depositor account, moving no value.
fn op_l1_info_deposit() -> serde_json::Value {
    op_deposit(
        BASE_L1_INFO_TX,
        0,
        "0xdeaddeaddeaddeaddeaddeaddeaddeaddead0001",
        "0x4200000000000000000000000000000000000015",
        "0x0",
        "0x0",
        "0x098999be00000558000c5fc500000000000000050000000068d3f07f000000000156ab0e",
    )
}

/// A plain EIP-1559 ETH transfer of `value` to `to`.
fn eip1559_transfer(
    hash: &str,
    block: (&str, &str),
    index: u64,
    chain_id: &str,
    to: &str,
    value: &str,
) -> serde_json::Value {
    serde_json::json!({
        "accessList": [], "blockHash": block.0, "blockNumber": block.1, "chainId": chain_id,
        "from": L2_PAYER, "gas": "0x5208", "gasPrice": "0x4d3f64", "hash": hash, "input": "0x",
        "maxFeePerGas": "0x5f5e100", "maxPriorityFeePerGas": "0xf4240", "nonce": "0x2a",
        "r": "0xa7c1f1d1c997aae59c432905b7067a8029b88fe69472f89deff63c25ee0f4896",
        "s": "0x3a745fa2d09145952d46b39de4ffb0ac8b8fb184aa57c6108899ef0e75f11819",
        "to": to, "transactionIndex": format!("{index:#x}"), "type": "0x2", "v": "0x1",
        "value": value, "yParity": "0x1"
    })
}

/// What a native-value scan of block `n` sights on `node`, watching the deposit address:
/// (transaction, block, address) of each.
async fn native_sightings(node: &MockServer, n: u64) -> Vec<(String, u64, String)> {
    let watch = payorders::chains::Watch {
        addresses: vec![L2_DEPOSIT.to_owned()],
        tokens: vec![],
        native: true,
    };
    let chain = EvmChain::new(&node.uri()).unwrap();
    let found = chain.sightings(n, n, &watch).await.unwrap();
    found
        .iter()
        .map(|s| (s.tx_hash.to_string(), s.block_number, s.to.to_lowercase()))
        .collect()
}

/// Every OP-stack block (Base, OP Mainnet, Base Sepolia) starts with a type 0x7e deposit,
/// which alloy's Ethereum types do not know: a native scan still reads the block, and finds
/// the plain transfer after it.
#[tokio::test]
async fn evm_sightings_read_op_stack_blocks_with_deposit_transactions() {
    let txs = vec![
        op_l1_info_deposit(),
        eip1559_transfer(
            BASE_TRANSFER_TX,
            (BASE_BLOCK_HASH, "0x1e8b9a0"),
            1,
            "0x2105",
            L2_DEPOSIT,
            "0x2386f26fc10000",
        ),
    ];
    let node = fake_evm_node(one_block_node(base_header(), txs, vec![])).await;
    assert_eq!(
        native_sightings(&node, 0x1e8b9a0).await,
        [(
            BASE_TRANSFER_TX.to_owned(),
            0x1e8b9a0,
            L2_DEPOSIT.to_owned()
        )]
    );
}

/// Arbitrum blocks start with an internal transaction (type 0x6a, from and to ArbOS at
/// 0xa4b05, no value): skipped, and the transfer after it found.
#[tokio::test]
async fn evm_sightings_read_arbitrum_blocks_with_internal_transactions() {
    let block_hash = "0xcf40641c415a6dc5573edf7f7fe4ad8a6576f37f1eb925eb9410f9232f9c75d5";
    let internal = "0xd316ab4da4a8142fe9b3316f6510f7a983d5c3597a201ff9c26e6b3c2edadc20";
    let transfer = "0xba745fa2d09145952d46b39de4ffb0ac8b8fb184aa57c6108899ef0e75f11819";
    let header = serde_json::json!({
        "baseFeePerGas": "0x989680", "difficulty": "0x1", "extraData": "0x5f1e1ab3d8e3c0a44bd5b2c8ae2e25d6b42ba6e7e7a9e0c0d9c2d3f7e8a1b6c4",
        "gasLimit": "0x4000000000000", "gasUsed": "0x2f5c1", "hash": block_hash,
        "l1BlockNumber": "0x1575a2c", "logsBloom": format!("0x{}", "00".repeat(256)),
        "miner": "0xa4b000000000000000000073657175656e636572",
        "mixHash": "0x00000000000239d50000000001575a2c0000000000000000000000000000000a",
        "nonce": "0x00000000001e4f6b", "number": "0x17d7a3c1",
        "parentHash": "0x8767c5311dfa26943772291b36ba7d86c5a35fb9053a5243ffb6b119cc22d7f3",
        "receiptsRoot": "0x09c5ee50e3c299aa41469da30397953bc51c87aed3fb5a49867145dc83df691f",
        "sendCount": "0x239d5", "sendRoot": "0x5f1e1ab3d8e3c0a44bd5b2c8ae2e25d6b42ba6e7e7a9e0c0d9c2d3f7e8a1b6c4",
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "size": "0x4f1", "stateRoot": "0x08c99cf6cf58857ed6ec1b88cc37937a35c426206cc12c503bd98011a12a8c84",
        "timestamp": "0x68d3f0a2", "totalDifficulty": "0x17d7a3c2",
        "transactionsRoot": "0x60e1efe5c86c1df2747373121dd0bb6c67707824aa4430e4a84aead2c471692c",
        "uncles": []
    });
    let txs = vec![
        serde_json::json!({
            "blockHash": block_hash, "blockNumber": "0x17d7a3c1", "chainId": "0xa4b1",
            "from": "0x00000000000000000000000000000000000a4b05", "gas": "0x0", "gasPrice": "0x0",
            "hash": internal,
            "input": "0x6bf6a42d00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001575a2c0000000000000000000000000000000000000000000000000000000017d7a3c00000000000000000000000000000000000000000000000000000000000000000",
            "nonce": "0x0", "r": "0x0", "s": "0x0", "to": "0x00000000000000000000000000000000000a4b05",
            "transactionIndex": "0x0", "type": "0x6a", "v": "0x0", "value": "0x0"
        }),
        eip1559_transfer(
            transfer,
            (block_hash, "0x17d7a3c1"),
            1,
            "0xa4b1",
            L2_DEPOSIT,
            "0x470de4df820000",
        ),
    ];
    let node = fake_evm_node(one_block_node(header, txs, vec![])).await;
    assert_eq!(
        native_sightings(&node, 0x17d7a3c1).await,
        [(transfer.to_owned(), 0x17d7a3c1, L2_DEPOSIT.to_owned())]
    );
}

/// A Base block with a bridged deposit to the deposit address (its receipt too) and one
/// that only mints to its sender.
async fn base_node_with_bridged_deposits() -> MockServer {
    let bridged = op_deposit(
        BASE_BRIDGED_TX,
        1,
        L2_PAYER,
        L2_DEPOSIT,
        "0xb1a2bc2ec50000",
        "0xb1a2bc2ec50000",
        "0x",
    );
    // Mints to the sender and calls the deposit address with nothing.
    let mint_only = op_deposit(
        BASE_MINT_ONLY_TX,
        2,
        L2_PAYER,
        L2_DEPOSIT,
        "0x2386f26fc10000",
        "0x0",
        "0x",
    );
    let receipt = serde_json::json!({
        "blockHash": BASE_BLOCK_HASH, "blockNumber": "0x1e8b9a0", "contractAddress": null,
        "cumulativeGasUsed": "0x1a6f4", "depositNonce": "0x1e8b9a", "depositReceiptVersion": "0x1",
        "effectiveGasPrice": "0x0", "from": L2_PAYER, "gasUsed": "0x5208", "logs": [],
        "logsBloom": format!("0x{}", "00".repeat(256)), "status": "0x1", "to": L2_DEPOSIT,
        "transactionHash": BASE_BRIDGED_TX, "transactionIndex": "0x1", "type": "0x7e"
    });
    let txs = vec![op_l1_info_deposit(), bridged, mint_only];
    fake_evm_node(one_block_node(base_header(), txs, vec![receipt])).await
}

/// An OP deposit transaction (0x7e) sends its `value` to `to` once it has minted `mint`
/// to its sender: ETH bridged from L1 straight to the deposit address (OptimismPortal's
/// `depositTransaction(to, value, ...)`) pays it like a transfer, and a scan sights it.
/// Its `mint` alone pays nobody but the sender.
#[tokio::test]
async fn an_op_deposit_transaction_with_value_to_the_deposit_address_is_sighted() {
    let node = base_node_with_bridged_deposits().await;
    assert_eq!(
        native_sightings(&node, 0x1e8b9a0).await,
        [(BASE_BRIDGED_TX.to_owned(), 0x1e8b9a0, L2_DEPOSIT.to_owned())]
    );
}

/// The same deposit read by hash (a submitted payment, or a sighting verified): one native
/// transfer of its `value`, mined with success in its block, at the block's time.
#[tokio::test]
async fn an_op_deposit_transaction_reads_by_hash_as_a_native_transfer() {
    let node = base_node_with_bridged_deposits().await;
    let chain = EvmChain::new(&node.uri()).unwrap();
    let hash = TxHash::parse(ChainFamily::Evm, BASE_BRIDGED_TX).unwrap();
    let tx = chain.transaction(&hash).await.unwrap().unwrap();
    assert_eq!(tx.transfers.len(), 1, "{tx:?}");
    let t = &tx.transfers[0];
    assert_eq!(
        (
            t.token.as_deref(),
            t.from.to_lowercase(),
            t.to.to_lowercase()
        ),
        (None, L2_PAYER.to_owned(), L2_DEPOSIT.to_owned())
    );
    assert_eq!(
        (t.amount, t.position),
        (RawAmount::from_u128(50_000_000_000_000_000), None)
    );
    let inc = tx.inclusion.unwrap();
    assert!(inc.success);
    assert_eq!(
        (inc.block_number, inc.block_hash.as_str(), inc.timestamp),
        (0x1e8b9a0, BASE_BLOCK_HASH, 0x68d3f0a1)
    );
    // The L1 attributes deposit reads too (no receipt here: still pending), moving nothing.
    let l1_info = TxHash::parse(ChainFamily::Evm, BASE_L1_INFO_TX).unwrap();
    let tx = chain.transaction(&l1_info).await.unwrap().unwrap();
    assert_eq!((tx.inclusion, tx.transfers), (None, vec![]));
}

/// A node that takes the connection and never answers: each request is given up after the
/// reader's timeout, an RPC error like any other, instead of holding the check (and the
/// checks after it in the same batch) until the function times out.
#[tokio::test]
async fn a_node_that_never_answers_is_given_up_on() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(std::time::Duration::from_secs(600))
                .set_body_json(serde_json::json!({"jsonrpc": "2.0", "id": 0, "result": "0x10"})),
        )
        .mount(&server)
        .await;
    let chain =
        EvmChain::with_timeout(&server.uri(), std::time::Duration::from_millis(300)).unwrap();
    let head = tokio::time::timeout(std::time::Duration::from_secs(20), chain.head())
        .await
        .expect("the reader gives up on its own");
    // Said so, for the scan to read a slow node's ranges in smaller spans.
    assert!(
        matches!(&head, Err(ChainError::Rpc(m)) if m.contains("timed out") && !m.contains("127.0.0.1")),
        "{head:?}"
    );
}

/// An RPC URL of another network (a testnet's, set for a mainnet) would have its coin's
/// transfers taken for the mainnet's: a reader built for a chain reads nothing until the
/// node says it serves that chain (`eth_chainId`), and says which one it serves instead.
#[tokio::test]
async fn a_node_serving_another_chain_than_configured_is_not_read() {
    let node =
        |chain_id: &'static str| async move {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(body_partial_json(
                    serde_json::json!({"method": "eth_chainId"}),
                ))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"jsonrpc": "2.0", "id": 0, "result": chain_id}),
                ))
                .mount(&server)
                .await;
            Mock::given(method("POST"))
                .and(body_partial_json(
                    serde_json::json!({"method": "eth_blockNumber"}),
                ))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"jsonrpc": "2.0", "id": 0, "result": "0x10"}),
                ))
                .mount(&server)
                .await;
            server
        };
    let base = ChainId::new(8453).unwrap();
    // Sepolia's node, configured as Base's.
    let sepolia = node("0xaa36a7").await;
    let chains = Chains::from_rpc_urls([(base, sepolia.uri().as_str())]).unwrap();
    let reader = chains.get(base).unwrap();
    for _ in 0..2 {
        let refused = reader.head().await;
        assert!(
            matches!(&refused, Err(ChainError::Rpc(m)) if m.contains("serves chain 11155111")),
            "{refused:?}"
        );
    }
    let hash = TxHash::parse(ChainFamily::Evm, &format!("0x{}", "ab".repeat(32))).unwrap();
    assert!(reader.transaction(&hash).await.is_err());
    // Base's own node: read, and asked which chain it serves once.
    let right = node("0x2105").await;
    let chains = Chains::from_rpc_urls([(base, right.uri().as_str())]).unwrap();
    let reader = chains.get(base).unwrap();
    assert_eq!(reader.head().await.unwrap(), 16);
    assert_eq!(reader.head().await.unwrap(), 16);
    let asked = right
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("eth_chainId"))
        .count();
    assert_eq!(asked, 1);
}

/// The same for Solana, whose nodes name their cluster by its genesis hash: a devnet URL
/// set for mainnet would have devnet SOL, free from a faucet, taken for mainnet SOL.
#[tokio::test]
async fn a_solana_node_of_another_cluster_than_configured_is_not_read() {
    const MAINNET: &str = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d";
    const DEVNET: &str = "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG";
    let node = |genesis: &'static str| async move {
        let server = MockServer::start().await;
        for (rpc_method, result) in [
            ("getGenesisHash", serde_json::json!(genesis)),
            ("getSlot", serde_json::json!(341_197_053u64)),
            (
                "getBalance",
                serde_json::json!({"context": {"slot": 341_197_053u64}, "value": 2_500_000_000u64}),
            ),
        ] {
            Mock::given(method("POST"))
                .and(body_partial_json(serde_json::json!({"method": rpc_method})))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": result}),
                ))
                .mount(&server)
                .await;
        }
        server
    };
    let mainnet = ChainId::new(30000000000001).unwrap();
    let sol = local("30000000000001:native");
    // Devnet's node, configured as mainnet's: nothing it says is used.
    let devnet_node = node(DEVNET).await;
    let chains = Chains::from_rpc_urls([(mainnet, devnet_node.uri().as_str())]).unwrap();
    let reader = chains.get(mainnet).unwrap();
    for _ in 0..2 {
        let refused = reader.head().await;
        assert!(
            matches!(&refused, Err(ChainError::Rpc(m)) if m.contains(&format!("serves genesis {DEVNET}"))),
            "{refused:?}"
        );
    }
    assert!(
        reader
            .balances(OWNER, std::slice::from_ref(&sol))
            .await
            .is_err()
    );
    let hash = TxHash::parse(ChainFamily::Solana, &bs58::encode([1u8; 64]).into_string()).unwrap();
    assert!(reader.transaction(&hash).await.is_err());
    assert!(reader.block_hash(341_197_053).await.is_err());
    let read = devnet_node
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| !String::from_utf8_lossy(&r.body).contains("getGenesisHash"))
        .count();
    assert_eq!(
        read, 0,
        "only the genesis hash is asked of another cluster's node"
    );
    // Mainnet's own node: read, and asked its genesis hash once.
    let mainnet_node = node(MAINNET).await;
    let chains = Chains::from_rpc_urls([(mainnet, mainnet_node.uri().as_str())]).unwrap();
    let reader = chains.get(mainnet).unwrap();
    assert_eq!(reader.head().await.unwrap(), 341_197_053);
    assert_eq!(
        reader
            .balances(OWNER, std::slice::from_ref(&sol))
            .await
            .unwrap(),
        vec![RawAmount::from_u128(2_500_000_000)]
    );
    let asked = mainnet_node
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("getGenesisHash"))
        .count();
    assert_eq!(asked, 1);
}
