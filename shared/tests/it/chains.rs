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
    let inc = tx.inclusion.unwrap();
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
    let head = chain.head().await.unwrap();
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
