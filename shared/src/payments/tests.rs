//! The payment pipeline attacked the way money gets lost: old transfers, another tenant's
//! submission, the same transfer twice at once, reorgs, lagging RPC nodes, failed block
//! reads, expiry races and lost queue messages. On the embedded store with a scripted chain.

use super::*;
use crate::chains::{
    BalanceReader, ChainError, ChainTx, Inclusion, Sighting, Transfer, TxReader, Watch,
};
use crate::model::*;
use crate::queue::QueueError;
use crate::registry::Currency;
use crate::store::embedded::EmbeddedStore;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

mod model;
mod refunds;

const CHAIN: u64 = 84532;
const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const SHOP: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const OTHER: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
/// Who pays, unless a test says otherwise (never one of the deposit addresses).
const PAYER: &str = "0x2222222222222222222222222222222222222222";

/// A chain whose transactions, blocks and failures the test scripts.
#[derive(Default)]
struct ScriptedChain {
    txs: Mutex<HashMap<String, ChainTx>>,
    blocks: Mutex<HashMap<u64, String>>,
    head: Mutex<u64>,
    /// Transactions the node cannot show (a lagging or load-balanced RPC).
    hidden: Mutex<Vec<String>>,
    /// Sightings fail (a block the node could not read).
    broken_blocks: Mutex<bool>,
    /// Every request fails (the provider is down or rate-limits us).
    down: Mutex<bool>,
    /// How many transactions were mined (their hashes are numbered).
    mined: std::sync::atomic::AtomicU64,
    /// How many reorgs there were (each branch's blocks have hashes of their own).
    forks: std::sync::atomic::AtomicU8,
    /// The node answering is this many blocks behind: it reports an older head and has no
    /// blocks above it (a load-balanced provider's slower node).
    behind: Mutex<u64>,
    /// How the next transaction reads are answered, one each (then as the chain is): a
    /// load-balanced provider's nodes erring, or lagging behind each other.
    tx_reads: Mutex<std::collections::VecDeque<TxRead>>,
    /// The most blocks one sightings request may span (a provider's log range cap).
    max_range: Mutex<Option<u64>>,
    /// A sightings request over more blocks than this times out (a slow provider).
    slow_over: Mutex<Option<u64>>,
    /// The node answering log queries (sightings) is this many blocks behind the one that
    /// answers the head, and answers the blocks it lacks with no logs.
    logs_behind: Mutex<u64>,
    /// How many transaction reads were asked of the node.
    tx_read_count: std::sync::atomic::AtomicU32,
    /// How long each transaction read takes (a slow node).
    read_delay: Mutex<Option<std::time::Duration>>,
    /// How many sightings requests timed out.
    slow_tries: std::sync::atomic::AtomicU32,
    /// Another writer that changes this order whenever the head is read, which recording
    /// does between reading the order and writing the payment (so the write keeps losing).
    meddler: Mutex<Option<(Arc<dyn crate::store::Store>, OrderId)>>,
    /// An order another request moves on (to AWAITING_CONFIRMATION) just before the next
    /// blocks are read, after the scan listed the orders it watches.
    paid_meanwhile: Mutex<Option<(Arc<dyn crate::store::Store>, OrderId)>>,
}

/// How one transaction read is answered (see `ScriptedChain::tx_reads`).
#[derive(Debug, Clone, Copy)]
enum TxRead {
    /// As the chain is.
    AsIs,
    /// The request fails.
    Fail,
    /// From a node that still has the transaction in its mempool.
    Mempool,
}

fn block_hash(n: u64, fork: u8) -> String {
    format!("0x{:02x}{:062x}", fork, n)
}

impl ScriptedChain {
    /// The head the answering node reports (see `behind`).
    fn seen_head(&self) -> u64 {
        let behind = *self.behind.lock().unwrap();
        self.head.lock().unwrap().saturating_sub(behind)
    }

    fn answer(&self) -> Result<(), ChainError> {
        if *self.down.lock().unwrap() {
            return Err(ChainError::Rpc("503 Service Unavailable".into()));
        }
        Ok(())
    }

    /// The node stops showing `tx` (a lagging node, or a transaction back in the mempool).
    fn hide(&self, tx: &TxHash) {
        self.hidden.lock().unwrap().push(tx.to_string());
    }

    /// A reorg from block `from` drops `tx` back to the mempool: the node does not show it
    /// until [`Self::show_all`], which finds it mined again at `to_block`.
    fn drop_to_mempool(&self, from: u64, tx: &TxHash, to_block: u64) {
        self.reorg(from, &[tx], to_block);
        self.hide(tx);
    }

    /// `tx`, waiting in the mempool (after a reorg), is mined at `block`, now.
    fn mine_again(&self, tx: &TxHash, block: u64) {
        if *self.head.lock().unwrap() < block {
            self.set_head(block);
        }
        let block_hash = self.blocks.lock().unwrap()[&block].clone();
        let mut txs = self.txs.lock().unwrap();
        txs.get_mut(&tx.to_string()).unwrap().inclusion = Some(Inclusion {
            success: true,
            block_number: block,
            block_hash,
            timestamp: Timestamp::now().unix() as u64,
        });
    }

    /// `tx` is back in the mempool (a reorg dropped it): the node shows it, in no block.
    fn to_mempool(&self, tx: &TxHash) {
        self.txs
            .lock()
            .unwrap()
            .get_mut(&tx.to_string())
            .unwrap()
            .inclusion = None;
    }

    /// `tx`, mined again, reverted there (the state it ran against changed).
    fn fail_again(&self, tx: &TxHash) {
        let mut txs = self.txs.lock().unwrap();
        let tx = txs.get_mut(&tx.to_string()).unwrap();
        tx.inclusion.as_mut().unwrap().success = false;
    }

    /// The node shows every transaction it has again.
    fn show_all(&self) {
        self.hidden.lock().unwrap().clear();
    }

    fn set_head(&self, n: u64) {
        *self.head.lock().unwrap() = n;
        let mut blocks = self.blocks.lock().unwrap();
        for b in 0..=n {
            blocks.entry(b).or_insert_with(|| block_hash(b, 0));
        }
    }

    /// Mines a transaction at `block` (mined `age` seconds ago) with `transfers`
    /// (token, to, amount); returns its hash.
    fn mine(&self, block: u64, age: i64, transfers: &[(&str, &str, u128)]) -> TxHash {
        self.mine_from(block, age, PAYER, transfers)
    }

    /// [`Self::mine`] with the transfers sent from `from`.
    fn mine_from(
        &self,
        block: u64,
        age: i64,
        from: &str,
        transfers: &[(&str, &str, u128)],
    ) -> TxHash {
        // Numbered, not random: a history replays the same hashes (and so the same order
        // of sightings).
        let n = self
            .mined
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let hash = TxHash::Evm(alloy_primitives::B256::left_padding_from(&n.to_be_bytes()));
        if *self.head.lock().unwrap() < block {
            self.set_head(block);
        }
        let tx = ChainTx {
            inclusion: Some(Inclusion {
                success: true,
                block_number: block,
                block_hash: self.blocks.lock().unwrap()[&block].clone(),
                timestamp: (Timestamp::now().unix() - age) as u64,
            }),
            transfers: transfers
                .iter()
                .enumerate()
                .map(|(i, (token, to, amount))| Transfer {
                    token: Some(token.to_string()),
                    from: from.into(),
                    to: to.to_string(),
                    amount: RawAmount::from_u128(*amount),
                    position: Some(i as u64),
                })
                .collect(),
            // Each sent with a nonce of its own, unless made a replacement of another.
            sender_nonce: Some(crate::model::SenderNonce {
                sender: from.into(),
                nonce: n,
            }),
        };
        self.txs.lock().unwrap().insert(hash.to_string(), tx);
        hash
    }

    /// Makes `tx` signed by `signer` (a smart account's owner or a relayer), with a nonce of
    /// the signer's.
    fn sign_as(&self, tx: &TxHash, signer: &str) {
        let mut txs = self.txs.lock().unwrap();
        let t = txs.get_mut(&tx.to_string()).unwrap();
        t.sender_nonce.as_mut().unwrap().sender = signer.into();
    }

    /// Makes `tx` spend the nonce the refund transfer `original` was recorded with (a
    /// wallet's speed-up or cancel of it).
    fn spend_nonce_of(&self, tx: &TxHash, original: &crate::model::RefundTransfer) {
        let nonce = original.sender_nonce.clone();
        assert!(nonce.is_some(), "the original's nonce was recorded");
        let mut txs = self.txs.lock().unwrap();
        txs.get_mut(&tx.to_string()).unwrap().sender_nonce = nonce;
    }

    /// A reorg replaces every block from `from` on; `moved` transactions are mined again
    /// at `to_block` of the new branch, the others are gone.
    fn reorg(&self, from: u64, moved: &[&TxHash], to_block: u64) {
        let fork = 1 + self
            .forks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let head = *self.head.lock().unwrap();
        let mut blocks = self.blocks.lock().unwrap();
        for b in from..=head.max(to_block) {
            blocks.insert(b, block_hash(b, fork));
        }
        let mut txs = self.txs.lock().unwrap();
        let keep: Vec<String> = moved.iter().map(|h| h.to_string()).collect();
        txs.retain(|h, tx| {
            keep.contains(h) || tx.inclusion.as_ref().is_some_and(|i| i.block_number < from)
        });
        for h in &keep {
            if let Some(i) = txs.get_mut(h).and_then(|t| t.inclusion.as_mut()) {
                i.block_number = to_block;
                i.block_hash = blocks[&to_block].clone();
            }
        }
        drop(blocks);
        drop(txs);
        let new_head = head.max(to_block);
        *self.head.lock().unwrap() = new_head;
    }
}

#[async_trait]
impl TxReader for ScriptedChain {
    async fn transaction(&self, hash: &TxHash) -> Result<Option<ChainTx>, ChainError> {
        self.answer()?;
        self.tx_read_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let delay = *self.read_delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let scripted = self.tx_reads.lock().unwrap().pop_front();
        if let Some(TxRead::Fail) = scripted {
            return Err(ChainError::Rpc("502 Bad Gateway".into()));
        }
        let key = hash.to_string();
        if self.hidden.lock().unwrap().contains(&key) {
            return Ok(None);
        }
        let mut tx = self.txs.lock().unwrap().get(&key).cloned();
        if let (Some(TxRead::Mempool), Some(tx)) = (scripted, tx.as_mut()) {
            tx.inclusion = None;
        }
        Ok(tx)
    }
    async fn head(&self) -> Result<u64, ChainError> {
        self.answer()?;
        let meddler = self.meddler.lock().unwrap().clone();
        if let Some((store, id)) = meddler {
            let order = store.get_order(&id).await.unwrap().unwrap();
            let touch = order.edit(Timestamp::now(), |_| {}).unwrap();
            store.update_order(&touch).await.unwrap();
        }
        Ok(self.seen_head())
    }
    async fn block_hash(&self, number: u64) -> Result<Option<String>, ChainError> {
        self.answer()?;
        if number > self.seen_head() {
            return Ok(None);
        }
        Ok(self.blocks.lock().unwrap().get(&number).cloned())
    }
    async fn nonce_at(&self, account: &str, number: u64) -> Result<Option<u64>, ChainError> {
        self.answer()?;
        // Past the highest nonce the account spent in a block up to `number` (mined failed
        // or not): the scripted chain's nonces are unique, not consecutive.
        let txs = self.txs.lock().unwrap();
        let spent = txs.values().filter_map(|t| {
            let n = t.sender_nonce.as_ref()?;
            let mined = t.inclusion.as_ref()?.block_number <= number;
            (mined && n.sender.eq_ignore_ascii_case(account)).then_some(n.nonce + 1)
        });
        Ok(Some(spent.max().unwrap_or(0)))
    }
    async fn sightings(
        &self,
        from: u64,
        to: u64,
        watch: &Watch,
    ) -> Result<Vec<Sighting>, ChainError> {
        self.answer()?;
        if *self.broken_blocks.lock().unwrap() {
            return Err(ChainError::Rpc("block 7 is not available".into()));
        }
        if let Some(most) = *self.max_range.lock().unwrap()
            && to - from + 1 > most
        {
            return Err(ChainError::Rpc(format!(
                "server returned an error response: error code -32602: block range limit exceeded, at most {most} blocks"
            )));
        }
        if let Some(most) = *self.slow_over.lock().unwrap()
            && to - from + 1 > most
        {
            // As the EVM reader words a logs request given up after RPC_TIMEOUT.
            self.slow_tries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(ChainError::Rpc(format!(
                "the node took too long for the block range {from}-{to}: error sending request for url (<redacted URL>): operation timed out"
            )));
        }
        let paid = self.paid_meanwhile.lock().unwrap().take();
        if let Some((store, id)) = paid {
            let order = store.get_order(&id).await.unwrap().unwrap();
            let u = order
                .transition(Timestamp::now(), OrderStatus::AwaitingConfirmation, |_| {})
                .unwrap();
            store.update_order(&u).await.unwrap();
        }
        let mut out = Vec::new();
        let has = self
            .head
            .lock()
            .unwrap()
            .saturating_sub(*self.logs_behind.lock().unwrap());
        for (h, tx) in self.txs.lock().unwrap().iter() {
            let Some(i) = &tx.inclusion else { continue };
            if i.block_number < from || i.block_number > to.min(has) {
                continue;
            }
            for t in &tx.transfers {
                let kind = match t.token {
                    Some(_) => !watch.tokens.is_empty(),
                    None => watch.native,
                };
                if kind
                    && watch
                        .addresses
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(&t.to))
                {
                    out.push(Sighting {
                        tx_hash: TxHash::parse(ChainFamily::Evm, h).unwrap(),
                        block_number: i.block_number,
                        to: t.to.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (a.block_number, a.tx_hash.to_string()).cmp(&(b.block_number, b.tx_hash.to_string()))
        });
        Ok(out)
    }
}

#[async_trait]
impl BalanceReader for ScriptedChain {
    async fn balances(&self, _: &str, c: &[Currency]) -> Result<Vec<RawAmount>, ChainError> {
        Ok(vec![RawAmount::ZERO; c.len()])
    }
    async fn transfer_fee(&self, _: &Currency) -> Result<RawAmount, ChainError> {
        Ok(RawAmount::ZERO)
    }
}

/// A queue that keeps what was sent.
#[derive(Default)]
struct Sent(Mutex<Vec<CheckMessage>>);

#[async_trait]
impl crate::queue::Queue for Sent {
    async fn send(&self, body: &str, _delay: u32) -> Result<(), QueueError> {
        self.0
            .lock()
            .unwrap()
            .push(serde_json::from_str(body).unwrap());
        Ok(())
    }
}

struct Rig {
    s: Settler,
    chain: Arc<ScriptedChain>,
    sent: Arc<Sent>,
}

fn rig() -> Rig {
    let chain = Arc::new(ScriptedChain::default());
    chain.set_head(10);
    let mut chains = Chains::default();
    chains.insert(ChainId::new(CHAIN).unwrap(), chain.clone());
    let sent = Arc::new(Sent::default());
    Rig {
        s: Settler {
            store: Arc::new(EmbeddedStore::in_memory().unwrap()),
            chains: Arc::new(chains),
            confirmations: sent.clone(),
            check_delay_secs: 1,
            max_check_delay_secs: 2,
        },
        chain,
        sent,
    }
}

impl Rig {
    /// A test-mode order of `org` waiting for `amount` USDC at `deposit`, its payment
    /// details chosen now (or `expires_in` seconds before expiry is up).
    async fn waiting(&self, org: &OrgId, deposit: &str, amount: u128) -> PayOrder {
        self.waiting_until(org, deposit, amount, 1800).await
    }

    /// A new organization's order of 25 USDC waiting for payment to `SHOP` on the test
    /// chain: the organization, the chain and the order.
    async fn waiting_at_shop(&self) -> (OrgId, ChainId, PayOrder) {
        let org = OrgId::generate();
        let o = self.waiting(&org, SHOP, 25_000_000).await;
        (org, ChainId::new(CHAIN).unwrap(), o)
    }

    async fn waiting_until(
        &self,
        org: &OrgId,
        deposit: &str,
        amount: u128,
        expires_in: i64,
    ) -> PayOrder {
        let now = Timestamp::now();
        let mut o = crate::testing::order(org, false, now.plus_seconds(-10));
        o.expires_at = now.plus_seconds(expires_in);
        self.s
            .store
            .create_order(&NewOrder::new(o.clone()).unwrap())
            .await
            .unwrap();
        let mut p =
            crate::testing::payment(&format!("{CHAIN}:{}", USDC.to_lowercase()), amount, deposit);
        p.created_at = Some(now);
        let u = o
            .transition(now, OrderStatus::AwaitingPayment, |o| o.payment = Some(p))
            .unwrap();
        self.s.store.update_order(&u).await.unwrap();
        u.order().clone()
    }

    async fn events(&self, org: &OrgId) -> Vec<Event> {
        let w = crate::store::ListWindow::new(org.clone(), KeyMode::Test);
        let page = self.s.store.list_events(&w, &Default::default()).await;
        page.unwrap().data
    }

    async fn get(&self, id: &OrderId) -> PayOrder {
        self.s.store.get_order(id).await.unwrap().unwrap()
    }

    async fn pay(&self, id: &OrderId, hash: &TxHash) -> Result<Recorded, PaymentError> {
        record_payment(&self.s, id, hash, Timestamp::now()).await
    }

    /// An order of `org` waiting for 25 USDC at SHOP (as it was before paying), and the
    /// transfer of all of it, mined in block 11, recorded on it.
    async fn paid_in_full(&self, org: &OrgId) -> (PayOrder, TxHash) {
        let o = self.waiting(org, SHOP, 25_000_000).await;
        let tx = self.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
        self.pay(&o.id, &tx).await.unwrap();
        (o, tx)
    }

    /// A scan with the head at `head` records nothing, and `id` keeps its one transfer.
    async fn counts_nothing_twice(&self, chain: ChainId, id: &OrderId, head: u64) {
        self.chain.set_head(head);
        let again = scan_chain(&self.s, chain, Timestamp::now()).await.unwrap();
        assert_eq!(again.recorded, 0);
        assert_eq!(self.get(id).await.transfers.len(), 1);
    }

    /// The merchant cancels the order as it is stored now.
    async fn cancel(&self, id: &OrderId) {
        let o = self.get(id).await;
        let cancel = o
            .transition(Timestamp::now(), OrderStatus::Cancelled, |_| {})
            .unwrap();
        self.s.store.update_order(&cancel).await.unwrap();
    }

    /// The order asks for `n` confirmations from now on.
    async fn ask_confirmations(&self, id: &OrderId, n: u32) {
        let o = self.get(id).await;
        let u = o
            .edit(Timestamp::now(), |o| o.confirmations = Some(n))
            .unwrap();
        self.s.store.update_order(&u).await.unwrap();
    }

    /// One run of the upkeep's sweep of lost checks at `at`: how many it queued again.
    async fn requeue_at(&self, at: Timestamp) -> usize {
        let stale_before = at.plus_seconds(-i64::from(self.s.stale_after_secs()));
        requeue_stalled(&self.s, stale_before, at, 100)
            .await
            .unwrap()
    }

    async fn check(&self, id: &OrderId) -> Progress {
        let round = self.get(id).await.check_round;
        self.check_in(id, Some(round)).await
    }

    /// A confirmation check of the order in check series `round` (as a queued message says).
    async fn check_in(&self, id: &OrderId, round: Option<u32>) -> Progress {
        advance(&self.s, None, id, round, Timestamp::now())
            .await
            .unwrap()
    }

    /// The check message queued last.
    fn last_queued(&self) -> CheckMessage {
        self.sent.0.lock().unwrap().pop().expect("a check queued")
    }
}

fn code(r: Result<Recorded, PaymentError>) -> &'static str {
    match r {
        Ok(_) => "OK",
        Err(e) => e.code(),
    }
}

/// What the order's payment has received so far.
fn received(o: &PayOrder) -> RawAmount {
    o.payment.as_ref().unwrap().received.as_ref().unwrap().raw
}

#[tokio::test]
async fn a_transfer_older_than_the_payment_details_pays_nothing() {
    let r = rig();
    let org = OrgId::generate();
    // The merchant's single address got 25 USDC an hour ago (another sale, a refund…).
    let old = r.chain.mine(5, 3_600, &[(USDC, SHOP, 25_000_000)]);
    let order = r.waiting(&org, SHOP, 25_000_000).await;
    assert_eq!(code(r.pay(&order.id, &old).await), "TX_BEFORE_ORDER");
    // The scan sees it in its range and ignores it too.
    let report = scan_chain(&r.s, ChainId::new(CHAIN).unwrap(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(report.recorded, 0);
    let after = r.get(&order.id).await;
    assert_eq!(after.status, OrderStatus::AwaitingPayment);
    assert!(after.transfers.is_empty());
    // A fresh transfer (within the clock skew) pays it.
    let fresh = r.chain.mine(11, 30, &[(USDC, SHOP, 25_000_000)]);
    assert_eq!(code(r.pay(&order.id, &fresh).await), "OK");
}

#[tokio::test]
async fn another_tenant_cannot_block_or_steal_a_transfer() {
    let r = rig();
    let (ours, theirs) = (OrgId::generate(), OrgId::generate());
    let our_order = r.waiting(&ours, SHOP, 25_000_000).await;
    // Another organization makes an order paying *our* address and submits our
    // customer's transaction first.
    let their_order = r.waiting(&theirs, SHOP, 25_000_000).await;
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    assert_eq!(code(r.pay(&their_order.id, &tx).await), "OK");
    // Ours is not refused: claims are per organization and mode.
    assert_eq!(code(r.pay(&our_order.id, &tx).await), "OK");
    assert_eq!(
        r.get(&our_order.id).await.status,
        OrderStatus::AwaitingConfirmation
    );
    // Inside one organization and mode, a transfer still pays one order, ever.
    let second = r.waiting(&ours, SHOP, 25_000_000).await;
    let refused = r.pay(&second.id, &tx).await.expect_err("refused");
    assert_eq!(refused.code(), "TX_ALREADY_USED");
    // The message names the order the transfer paid.
    assert!(
        refused.to_string().contains(&our_order.id.to_string()),
        "{refused}"
    );
    assert!(r.get(&second.id).await.transfers.is_empty());
}

/// The scan too: another organization's older orders of the same amount on our address
/// neither take our payment's detection nor keep it from us. Each organization's orders
/// there are matched on their own, as a submitted transfer's claims are.
#[tokio::test]
async fn another_tenant_on_our_address_cannot_take_the_scan_s_detection() {
    let r = rig();
    let (ours, theirs) = (OrgId::generate(), OrgId::generate());
    let chain = ChainId::new(CHAIN).unwrap();
    let their_order = r.waiting(&theirs, SHOP, 25_000_000).await;
    let our_order = r.waiting(&ours, SHOP, 25_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    r.chain.mine(12, 5, &[(USDC, SHOP, 25_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(
        r.get(&our_order.id).await.status,
        OrderStatus::AwaitingConfirmation
    );
    // Theirs counts it as a submission would: they named an address they do not hold.
    assert_eq!(
        r.get(&their_order.id).await.status,
        OrderStatus::AwaitingConfirmation
    );
    assert_eq!(report.recorded, 2, "{report:?}");
    // Within one organization a transfer still pays one order.
    let second = r.waiting(&ours, SHOP, 25_000_000).await;
    r.chain.set_head(13);
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert!(r.get(&second.id).await.transfers.is_empty());
}

/// A reorg can put a payment into a block the scan has already read: each scan reads the
/// chain's last blocks again (its default confirmations), so the next one finds it.
#[tokio::test]
async fn a_payment_a_reorg_puts_into_a_block_already_scanned_is_found() {
    let r = rig();
    let (_, chain, o) = r.waiting_at_shop().await;
    r.chain.set_head(12);
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(12));
    // Block 12 is replaced by one carrying the payment, and one more block comes.
    r.chain.reorg(12, &[], 12);
    r.chain.mine(12, 5, &[(USDC, SHOP, 25_000_000)]);
    r.chain.set_head(13);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    let depth = crate::payments::scan::log_depth(chain);
    assert_eq!(report.blocks, Some((13u64.saturating_sub(depth), 13)));
    assert_eq!(report.recorded, 1);
    assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
    // Read again by the next runs, it counts nothing twice.
    r.counts_nothing_twice(chain, &o.id, 14).await;
}

/// A load-balanced provider may answer the head from one node and the log query from
/// another that is behind, which answers the blocks it lacks with no logs: the run moves
/// its cursor past the payment. The next runs read token transfers again further back than
/// reorgs need (the chain's blocks of the last two minutes), so a node that has caught up
/// shows it, and it is recorded once.
#[tokio::test]
async fn a_payment_a_lagging_node_left_out_of_its_logs_is_found_by_a_later_run() {
    let r = rig();
    let (_, chain, o) = r.waiting_at_shop().await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    // Paid in block 15 with the head at 20; the logs come from a node at block 12.
    r.chain.mine(15, 5, &[(USDC, SHOP, 25_000_000)]);
    r.chain.set_head(20);
    *r.chain.logs_behind.lock().unwrap() = 8;
    let missed = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(missed.recorded, 0);
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(20));
    // Block 15 is further back than reorgs are read again for.
    assert!(21 - crate::payments::scan::reorg_depth(chain) > 15);
    *r.chain.logs_behind.lock().unwrap() = 0;
    r.chain.set_head(21);
    let found = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(found.recorded, 1, "{found:?}");
    assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
    // Read again by the next run, it counts nothing twice.
    r.counts_nothing_twice(chain, &o.id, 22).await;
}

/// A run short of time (a range full of transfers, a slow node) stops at its deadline and
/// keeps what it finished: its cursor moves to the last block whose transfers were all
/// offered, and the next run goes on from there. Cut off by the function's timeout instead,
/// it moved nothing, and every run after it met the same range.
#[tokio::test]
async fn a_scan_out_of_time_keeps_the_blocks_it_finished() {
    use crate::payments::scan::scan_chain_until;
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    let mut orders = Vec::new();
    let third = "0x3333333333333333333333333333333333333333";
    for deposit in [SHOP, OTHER, third] {
        orders.push(r.waiting(&org, deposit, 25_000_000).await);
    }
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(10));
    for (block, deposit) in [(12, SHOP), (13, OTHER), (14, third)] {
        r.chain.mine(block, 5, &[(USDC, deposit, 25_000_000)]);
    }
    r.chain.set_head(16);
    // The node takes 1 s a read (recording a payment reads it once); 2.5 s are left: two
    // are recorded, and the third, still being read at the deadline, is dropped there (as
    // a killed process would leave it). (Real time: the store answers from a
    // thread of its own, which paused tokio time would run past.)
    *r.chain.read_delay.lock().unwrap() = Some(std::time::Duration::from_secs(1));
    let reads = || {
        r.chain
            .tx_read_count
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = reads();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(2500);
    let cut = scan_chain_until(&r.s, chain, Timestamp::now(), Some(deadline))
        .await
        .unwrap();
    assert!(cut.cut_short, "{cut:?}");
    assert_eq!(cut.recorded, 2, "{cut:?}");
    assert_eq!(reads() - before, 3, "the third payment was being read");
    *r.chain.read_delay.lock().unwrap() = None;
    assert_eq!(cut.blocks.map(|(_, to)| to), Some(13));
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(13));
    assert_eq!(
        r.get(&orders[2].id).await.status,
        OrderStatus::AwaitingPayment
    );
    // The next run, with time enough, records the third, and the two again count nothing.
    let next = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert!(!next.cut_short);
    assert_eq!(next.recorded, 1, "{next:?}");
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(16));
    for o in &orders {
        assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
        assert_eq!(r.get(&o.id).await.transfers.len(), 1);
    }
    // Out of time before its first new block, a run moves nothing.
    let fourth = "0x4444444444444444444444444444444444444444";
    r.waiting(&org, fourth, 25_000_000).await;
    r.chain.mine(17, 5, &[(USDC, fourth, 25_000_000)]);
    r.chain.set_head(18);
    let none = scan_chain_until(
        &r.s,
        chain,
        Timestamp::now(),
        Some(tokio::time::Instant::now()),
    )
    .await
    .unwrap();
    assert!(none.cut_short);
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(16));
}

/// Blocks read again (for reorgs and lagging nodes) are offered after the new ones, and a
/// run out of time among them still moves its cursor over the new blocks: offered first,
/// in the chain's order, they held the cursor back at every run once the blocks read again
/// took longer than a run (transfers to a shared merchant address, each read again).
#[tokio::test]
async fn a_scan_out_of_time_among_blocks_read_again_still_moves_on() {
    use crate::payments::scan::scan_chain_until;
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    let five = r.waiting(&org, SHOP, 5_000_000).await;
    let seven = r.waiting(&org, SHOP, 7_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    // Transfers to the shared address that pay neither order: left to the payer.
    for block in 11..=13 {
        r.chain.mine(block, 5, &[(USDC, SHOP, 2_000_000)]);
    }
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(13));
    let paid = r.waiting(&org, OTHER, 25_000_000).await;
    r.chain.mine(15, 5, &[(USDC, OTHER, 25_000_000)]);
    r.chain.set_head(16);
    // 1 s a read, 2.5 s left: the new payment, then two of the three read again.
    *r.chain.read_delay.lock().unwrap() = Some(std::time::Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(2500);
    let run = scan_chain_until(&r.s, chain, Timestamp::now(), Some(deadline))
        .await
        .unwrap();
    assert!(!run.cut_short, "{run:?}");
    assert_eq!(run.recorded, 1);
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(16));
    assert_eq!(
        r.get(&paid.id).await.status,
        OrderStatus::AwaitingConfirmation
    );
    for o in [&five, &seven] {
        assert!(r.get(&o.id).await.transfers.is_empty());
    }
}

/// The window of [`crate::payments::scan::log_depth`] on each chain: at least two minutes
/// of its blocks, and never less than its reorg depth.
#[test]
fn token_transfers_are_read_again_for_two_minutes_of_blocks() {
    use crate::payments::scan::{log_depth, reorg_depth};
    for c in crate::registry::registry().chains() {
        let depth = log_depth(c.id);
        assert!(depth >= reorg_depth(c.id), "{}", c.slug);
        assert!(depth * u64::from(c.block_time_ms) >= 120_000, "{}", c.slug);
    }
    let id = |n| ChainId::new(n).unwrap();
    // Ethereum's 12 confirmations already span more than two minutes; Arbitrum's 10 are
    // 2.5 s, and its window 480 blocks.
    assert_eq!(log_depth(id(1)), 12);
    assert_eq!(log_depth(id(42161)), 480);
}

/// A node that missed a reorg still returns the payment's receipt in its old block, while
/// another node of the same provider answers the head: deep enough by the head, the
/// transfer is still not final, since the chain has another block at that height. Once the
/// lagging node catches up, the reorg shows and the order waits for a payment again.
#[tokio::test]
async fn a_receipt_from_a_node_that_missed_a_reorg_completes_nothing() {
    let r = rig();
    let org = OrgId::generate();
    let (o, tx) = r.paid_in_full(&org).await;
    let stale = r.chain.txs.lock().unwrap()[&tx.to_string()].clone();
    r.chain.reorg(11, &[], 11);
    r.chain.txs.lock().unwrap().insert(tx.to_string(), stale);
    r.chain.set_head(40);
    assert_eq!(r.check(&o.id).await, Progress::Waiting);
    let after = r.get(&o.id).await;
    assert_eq!(after.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(after.transfers[0].status, TransferStatus::Confirming);
    // The node catches up: the transaction is gone from block 11.
    r.chain.txs.lock().unwrap().remove(&tx.to_string());
    r.check(&o.id).await;
    let gone = r.get(&o.id).await;
    assert_eq!(gone.status, OrderStatus::AwaitingPayment);
    assert_eq!(gone.transfers[0].status, TransferStatus::Reorged);
}

/// A load-balanced provider may answer a head a little below the one it answered the last
/// run: the scan waits, moving nothing (going back would read blocks again as if new). The
/// blocks a run reads again for reorgs come on top of its cap of new blocks.
#[tokio::test]
async fn a_head_behind_the_cursor_waits_and_re_reads_do_not_eat_the_cap() {
    let r = rig();
    let (_, chain, o) = r.waiting_at_shop().await;
    r.chain.set_head(12);
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    r.chain.set_head(11);
    let behind = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(behind.blocks, None);
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(12));
    // Far ahead again: the new blocks up to the cap, and the last ones before the cursor.
    r.chain.set_head(12 + SCAN_MAX_BLOCKS + 50);
    r.chain
        .mine(12 + SCAN_MAX_BLOCKS, 5, &[(USDC, SHOP, 25_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    let depth = crate::payments::scan::log_depth(chain);
    assert_eq!(
        report.blocks,
        Some((13u64.saturating_sub(depth), 12 + SCAN_MAX_BLOCKS))
    );
    assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
}

/// A transfer left to the payer on a shared address (it matched no order's amount due) is
/// not given to the order left alone there on a later run, which reads its block again for
/// reorgs after the other order was paid: it may be that order's customer's, or nobody's.
#[tokio::test]
async fn a_transfer_left_to_the_payer_is_not_given_away_when_its_block_is_read_again() {
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    let five = r.waiting(&org, SHOP, 5_000_000).await;
    let seven = r.waiting(&org, SHOP, 7_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    // 2 while both wait: it pays neither amount due, and is left to the payer.
    r.chain.mine(12, 5, &[(USDC, SHOP, 2_000_000)]);
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert!(r.get(&five.id).await.transfers.is_empty());
    // Then 7, which pays the order of 7.
    r.chain.mine(13, 5, &[(USDC, SHOP, 7_000_000)]);
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(
        r.get(&seven.id).await.status,
        OrderStatus::AwaitingConfirmation
    );
    assert!(r.get(&five.id).await.transfers.is_empty());
    // The next run reads block 12 again, with the order of 5 alone on the address now.
    r.chain.set_head(14);
    let again = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert!(
        again.blocks.is_some_and(|(from, _)| from <= 12),
        "{again:?}"
    );
    assert!(r.get(&five.id).await.transfers.is_empty());
    assert_eq!(r.get(&five.id).await.status, OrderStatus::AwaitingPayment);
}

/// A partly paid order waits on checks of its transfers, and can still expire: a lost
/// check of it is queued again by the deposit scan, which watches it (the upkeep's sweep
/// reads an index that, on DynamoDB, keeps such an order under its expiry only).
#[tokio::test]
async fn the_scan_queues_again_a_lost_check_of_a_partly_paid_order() {
    let r = rig();
    let (_, chain, o) = r.waiting_at_shop().await;
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 10_000_000)]);
    r.pay(&o.id, &tx).await.unwrap();
    let partly = r.get(&o.id).await;
    assert_eq!(partly.status, OrderStatus::PartialPayment);
    assert!(partly.awaits_check());
    r.sent.0.lock().unwrap().clear();
    // Not stale yet: nothing queued.
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert!(r.sent.0.lock().unwrap().is_empty());
    // An hour later (its check was lost): one check, in a new series.
    let later = Timestamp::now().plus_seconds(3_600);
    r.chain.set_head(12);
    scan_chain(&r.s, chain, later).await.unwrap();
    let msg = r.last_queued();
    assert_eq!(msg.order_id, o.id);
    let touched = r.get(&o.id).await;
    assert_eq!(msg.round, Some(touched.check_round));
    assert_ne!(touched.check_round, partly.check_round);
    r.chain.set_head(40);
    r.check_in(&o.id, msg.round).await;
    assert_eq!(
        r.get(&o.id).await.transfers[0].status,
        TransferStatus::Confirmed
    );
}

/// A provider that caps the block range of a log query (some at a few blocks) refuses a
/// run's whole range: the scan reads it in smaller spans, finds the payment, and moves on.
#[tokio::test]
async fn a_node_capping_the_block_range_is_read_in_smaller_spans() {
    let r = rig();
    let chain = ChainId::new(CHAIN).unwrap();
    let report =
        paid_in_block_30_found_through(&r, |c| *c.max_range.lock().unwrap() = Some(3)).await;
    let depth = crate::payments::scan::log_depth(chain);
    assert_eq!(report.blocks, Some((11u64.saturating_sub(depth), 30)));
}

/// An order waiting for 25 USDC, a scan, then `limit` set on the chain and the order paid
/// in block 30: the next scan finds it all the same (its report), and its cursor is at 30.
async fn paid_in_block_30_found_through(
    r: &Rig,
    limit: impl FnOnce(&ScriptedChain),
) -> crate::payments::scan::ScanReport {
    let chain = ChainId::new(CHAIN).unwrap();
    let o = r.waiting(&OrgId::generate(), SHOP, 25_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    limit(&r.chain);
    r.chain.mine(30, 5, &[(USDC, SHOP, 25_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1);
    assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(30));
    report
}

/// A node too slow to answer the whole range within a request's timeout is read in smaller
/// spans too: taken for any other failure, the scan failed on every run and its cursor
/// never moved.
#[tokio::test]
async fn a_node_too_slow_for_the_whole_range_is_read_in_smaller_spans() {
    let r = rig();
    let chain = ChainId::new(CHAIN).unwrap();
    paid_in_block_30_found_through(&r, |c| *c.slow_over.lock().unwrap() = Some(4)).await;
    // A node too slow for any span is given up on after four tries in a row (each costs a
    // whole RPC timeout): the run fails, well within the function's time, and the cursor
    // stays.
    r.waiting(&OrgId::generate(), SHOP, 7_000_000).await;
    *r.chain.slow_over.lock().unwrap() = Some(0);
    r.chain.set_head(60);
    let before = r
        .chain
        .slow_tries
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(scan_chain(&r.s, chain, Timestamp::now()).await.is_err());
    let tries = r
        .chain
        .slow_tries
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    assert_eq!(tries, 4);
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(30));
}

/// A stream of tiny transfers to one order stops at MAX_ORDER_TRANSACTIONS: each is kept
/// on the order, and an order grown past what one write holds (400 KB on DynamoDB) would
/// fail every write, and with it every run of its chain's deposit scan. One more short of
/// what is due is refused, by a submission and by the scan alike, and the scan moves on;
/// one that pays all that is due is still recorded.
#[tokio::test]
async fn an_order_takes_at_most_max_order_transactions() {
    let r = rig();
    let (_, chain, o) = r.waiting_at_shop().await;
    let mut first = None;
    for i in 0..MAX_ORDER_TRANSACTIONS as u64 {
        let tx = r.chain.mine(11 + i, 5, &[(USDC, SHOP, 1)]);
        assert_eq!(code(r.pay(&o.id, &tx).await), "OK");
        first.get_or_insert(tx);
    }
    let full = r.get(&o.id).await;
    assert_eq!(full.transfers.len(), MAX_ORDER_TRANSACTIONS);
    let one_more = r.chain.mine(200, 5, &[(USDC, SHOP, 24_000_000)]);
    assert_eq!(code(r.pay(&o.id, &one_more).await), "TOO_MANY_PAYMENTS");
    // A transaction already recorded is still answered as recorded.
    assert_eq!(code(r.pay(&o.id, &first.unwrap()).await), "OK");
    // The scan passes it over as the refusal it is, and its cursor moves on.
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(200));
    assert_eq!(r.get(&o.id).await.transfers.len(), MAX_ORDER_TRANSACTIONS);
    // The dust cannot keep the real payment out: one paying all that is due is recorded.
    let due = 25_000_000 - MAX_ORDER_TRANSACTIONS as u128;
    let rest = r.chain.mine(201, 5, &[(USDC, SHOP, due)]);
    assert_eq!(code(r.pay(&o.id, &rest).await), "OK");
    let paid = r.get(&o.id).await;
    assert_eq!(paid.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(paid.transfers.len(), MAX_ORDER_TRANSACTIONS + 1);
}

/// The limit holds under races: two transfers recorded from copies both read with one slot
/// left, before either write (both pass the check on their copy, as two requests at once
/// would), take one slot between them, the loser's conditional write failing and its retry
/// refusing; and the transfer paying the rest is recorded whichever of two writes goes first.
#[tokio::test]
async fn the_last_transaction_slot_is_taken_once_under_races() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.waiting(&org, SHOP, 25_000_000).await;
    for i in 0..MAX_ORDER_TRANSACTIONS as u64 - 1 {
        let tx = r.chain.mine(11 + i, 5, &[(USDC, SHOP, 1)]);
        assert_eq!(code(r.pay(&o.id, &tx).await), "OK");
    }
    let one_left = r.get(&o.id).await;
    let now = Timestamp::now();

    // Two more dust transfers at once, each from the copy with one slot left.
    let a = r.chain.mine(300, 5, &[(USDC, SHOP, 1)]);
    let b = r.chain.mine(301, 5, &[(USDC, SHOP, 1)]);
    let (x, y) = tokio::join!(
        record_payment_on(&r.s, one_left.clone(), &a, now),
        record_payment_on(&r.s, one_left.clone(), &b, now)
    );
    let mut codes = [code(x), code(y)];
    codes.sort_unstable();
    assert_eq!(codes, ["OK", "TOO_MANY_PAYMENTS"]);
    let full = r.get(&o.id).await;
    assert_eq!(full.transfers.len(), MAX_ORDER_TRANSACTIONS);
    assert_eq!(full.status, OrderStatus::PartialPayment);
    assert_eq!(received(&full), RawAmount::from_u128(100));

    // The rest, recorded from the copy read before that slot was taken, is still recorded:
    // the retry from a fresh read sees it pays all that is due.
    let rest = r.chain.mine(302, 5, &[(USDC, SHOP, 25_000_000 - 99)]);
    let rec = record_payment_on(&r.s, one_left.clone(), &rest, now)
        .await
        .unwrap();
    assert!(rec.new);
    let paid = r.get(&o.id).await;
    assert_eq!(paid.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(paid.transfers.len(), MAX_ORDER_TRANSACTIONS + 1);
    // 99 + 1 + the rest: one unit over, announced as overpaid, every transfer counted once.
    assert_eq!(received(&paid), RawAmount::from_u128(25_000_001));

    // The other order: the rest goes first, and a dust transfer from the same old copy is
    // then refused for the status the order reached, not recorded as a 101st.
    let p = r.waiting(&org, OTHER, 25_000_000).await;
    for i in 0..MAX_ORDER_TRANSACTIONS as u64 - 1 {
        let tx = r.chain.mine(400 + i, 5, &[(USDC, OTHER, 1)]);
        assert_eq!(code(r.pay(&p.id, &tx).await), "OK");
    }
    let copy = r.get(&p.id).await;
    let rest = r.chain.mine(600, 5, &[(USDC, OTHER, 25_000_000 - 99)]);
    let dust = r.chain.mine(601, 5, &[(USDC, OTHER, 1)]);
    assert!(
        record_payment_on(&r.s, copy.clone(), &rest, now)
            .await
            .unwrap()
            .new
    );
    assert_eq!(
        code(record_payment_on(&r.s, copy, &dust, now).await),
        "ORDER_NOT_PAYABLE"
    );
    let p = r.get(&p.id).await;
    assert_eq!(p.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(p.transfers.len(), MAX_ORDER_TRANSACTIONS);
    assert_eq!(received(&p), RawAmount::from_u128(25_000_000));
}

#[tokio::test]
async fn the_same_transfer_submitted_twice_at_once_pays_once() {
    let r = rig();
    let org = OrgId::generate();
    let a = r.waiting(&org, SHOP, 25_000_000).await;
    let b = r.waiting(&org, SHOP, 25_000_000).await;
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    // To two orders of the same organization at once: exactly one takes it.
    let (ra, rb) = tokio::join!(r.pay(&a.id, &tx), r.pay(&b.id, &tx));
    // The loser's message names the winner, whichever path (read or write) refused it.
    let (winner, refused) = match (&ra, &rb) {
        (Ok(_), Err(e)) => (&a.id, e),
        (Err(e), Ok(_)) => (&b.id, e),
        _ => panic!("exactly one pays: {ra:?} {rb:?}"),
    };
    assert!(
        refused.to_string().contains(&winner.to_string()),
        "{refused}"
    );
    let mut codes = [code(ra), code(rb)];
    codes.sort_unstable();
    assert_eq!(codes, ["OK", "TX_ALREADY_USED"]);
    let paid: Vec<bool> = [r.get(&a.id).await, r.get(&b.id).await]
        .iter()
        .map(|o| !o.transfers.is_empty())
        .collect();
    assert_eq!(paid.iter().filter(|p| **p).count(), 1);
    // To the same order twice at once: recorded once, counted once.
    let c = r.waiting(&org, OTHER, 10_000_000).await;
    let top = r.chain.mine(12, 5, &[(USDC, OTHER, 4_000_000)]);
    let (x, y) = tokio::join!(r.pay(&c.id, &top), r.pay(&c.id, &top));
    assert_eq!((code(x), code(y)), ("OK", "OK"));
    let c = r.get(&c.id).await;
    assert_eq!(c.transfers.len(), 1);
    assert_eq!(
        c.payment.unwrap().received.unwrap().raw,
        RawAmount::from_u128(4_000_000)
    );
}

#[tokio::test]
async fn a_payment_recorded_from_a_stale_copy_keeps_what_changed_since() {
    // The payments route reads the order (to check its owner) and records from that copy.
    // Another transfer recorded meanwhile must survive: the write is conditional on the
    // copy's version, so it is retried from a fresh read instead of overwriting it.
    let r = rig();
    let org = OrgId::generate();
    let order = r.waiting(&org, SHOP, 25_000_000).await;
    let stale = r.get(&order.id).await;
    let first = r.chain.mine(11, 5, &[(USDC, SHOP, 10_000_000)]);
    let second = r.chain.mine(12, 4, &[(USDC, SHOP, 15_000_000)]);
    r.pay(&order.id, &first).await.unwrap();
    assert_eq!(r.get(&order.id).await.status, OrderStatus::PartialPayment);

    let recorded = record_payment_on(&r.s, stale, &second, Timestamp::now())
        .await
        .unwrap();
    assert!(recorded.new);
    let after = r.get(&order.id).await;
    assert_eq!(after, recorded.order);
    assert_eq!(after.status, OrderStatus::AwaitingConfirmation);
    let hashes: Vec<_> = after.transfers.iter().map(|t| t.tx_hash.clone()).collect();
    assert_eq!(hashes, [first.to_string(), second.to_string()]);
    assert_eq!(received(&after), RawAmount::from_u128(25_000_000));
}

#[tokio::test]
async fn the_same_transfer_submitted_twice_at_once_from_route_copies_pays_once() {
    // Two payments routes, each with the copy it read to check the owner, at once.
    let r = rig();
    let org = OrgId::generate();
    let order = r.waiting(&org, SHOP, 25_000_000).await;
    let other = r.waiting(&org, SHOP, 25_000_000).await;
    let copy = r.get(&order.id).await;
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    let now = Timestamp::now();
    let (x, y) = tokio::join!(
        record_payment_on(&r.s, copy.clone(), &tx, now),
        record_payment_on(&r.s, copy, &tx, now)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(u8::from(x.new) + u8::from(y.new), 1, "recorded once");
    let after = r.get(&order.id).await;
    assert_eq!(after.transfers.len(), 1);
    assert_eq!(received(&after), RawAmount::from_u128(25_000_000));
    // Another order of the organization, from its own copy, cannot take it afterwards.
    let other = r.get(&other.id).await;
    assert_eq!(
        code(record_payment_on(&r.s, other.clone(), &tx, Timestamp::now()).await),
        "TX_ALREADY_USED"
    );
    assert!(r.get(&other.id).await.transfers.is_empty());
}

#[tokio::test]
async fn a_payment_recorded_from_a_copy_read_before_a_cancel_is_late_and_refundable() {
    let r = rig();
    let org = OrgId::generate();
    let order = r.waiting(&org, SHOP, 25_000_000).await;
    let stale = r.get(&order.id).await;
    r.cancel(&order.id).await;
    let paid = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);

    // Recorded from the copy read before the cancel: the write meets the cancel, and the
    // retry records the transfer on the cancelled order as a late payment. The cancel
    // stands; the money shows on the order, to be refunded.
    let rec = record_payment_on(&r.s, stale, &paid, Timestamp::now())
        .await
        .unwrap();
    assert!(rec.new);
    let after = r.get(&order.id).await;
    assert_eq!(after.status, OrderStatus::Cancelled);
    assert!(after.paid_late);
    assert_eq!(received(&after), RawAmount::from_u128(25_000_000));
    // Refundable once confirmed, not before: a reorg could still take it away.
    assert_eq!(refundable(&after), RawAmount::ZERO);
    // Its confirmations are followed like any late payment's.
    assert!(
        r.sent
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.order_id == order.id)
    );
    r.chain.set_head(40);
    assert_eq!(r.check(&order.id).await, Progress::Settled);
    let confirmed = r.get(&order.id).await;
    assert_eq!(confirmed.status, OrderStatus::Cancelled);
    assert_eq!(confirmed.transfers[0].status, TransferStatus::Confirmed);
    assert_eq!(refundable(&confirmed), RawAmount::from_u128(25_000_000));
    // And the transfer is claimed: no other order of the merchant's takes it as well.
    let other = r.waiting(&org, SHOP, 25_000_000).await;
    assert_eq!(code(r.pay(&other.id, &paid).await), "TX_ALREADY_USED");
}

#[tokio::test]
async fn paid_late_holds_only_while_a_late_payment_counts() {
    let r = rig();
    let org = OrgId::generate();
    let order = r.waiting_until(&org, SHOP, 25_000_000, -60).await;
    expire_orders(&*r.s.store, Timestamp::now(), 10)
        .await
        .unwrap();
    let late = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    r.pay(&order.id, &late).await.unwrap();
    let paid = r.get(&order.id).await;
    assert_eq!(paid.status, OrderStatus::Expired);
    assert!(paid.paid_late && paid.transfers[0].late);
    let refund_all = |o: &PayOrder| o.transition(Timestamp::now(), OrderStatus::Refunded, |_| {});
    assert!(refund_all(&paid).is_ok());
    // A reorg drops the late transfer back to the mempool: the order no longer has a late
    // payment, nor may it be marked refunded for one.
    r.chain.drop_to_mempool(11, &late, 12);
    r.check(&order.id).await;
    let dropped = r.get(&order.id).await;
    assert_eq!(dropped.transfers[0].status, TransferStatus::Reorged);
    assert!(!dropped.paid_late);
    assert!(matches!(
        refund_all(&dropped),
        Err(TransitionError::NeedsPaidLate { .. })
    ));
    // Mined again and submitted again (or found by the scan), it counts again, late.
    r.chain.show_all();
    r.pay(&order.id, &late).await.unwrap();
    let again = r.get(&order.id).await;
    assert_eq!(again.transfers[0].status, TransferStatus::Confirming);
    assert_eq!(again.transfers[0].block_number, 12);
    assert!(again.paid_late && again.transfers[0].late);
}

#[tokio::test]
async fn a_payment_mined_while_the_merchant_cancels_is_found_and_kept_on_the_order() {
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    let a = r.waiting(&org, SHOP, 25_000_000).await;
    let b = r.waiting(&org, OTHER, 9_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    // The customer pays from the checkout page; the merchant cancels before the scan
    // (once a minute) has seen the transfer.
    let tx = r.chain.mine(12, 5, &[(USDC, SHOP, 25_000_000)]);
    r.cancel(&a.id).await;
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    let kept = r.get(&a.id).await;
    assert_eq!(kept.status, OrderStatus::Cancelled);
    assert!(kept.paid_late);
    assert_eq!(kept.transfers[0].tx_hash, tx.to_string());
    let types: Vec<EventType> = r.events(&org).await.iter().map(|e| e.event_type).collect();
    assert!(types.contains(&EventType::OrderPaymentLate), "{types:?}");

    // On an address shared with an order still waiting for the same amount, the waiting
    // order takes the transfer, not the cancelled one.
    let c = r.waiting(&org, OTHER, 9_000_000).await;
    r.cancel(&b.id).await;
    r.chain.mine(13, 5, &[(USDC, OTHER, 9_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    assert_eq!(r.get(&c.id).await.status, OrderStatus::AwaitingConfirmation);
    assert!(r.get(&b.id).await.transfers.is_empty());
}

#[tokio::test]
async fn a_hash_written_in_upper_case_is_the_same_transfer() {
    let r = rig();
    let org = OrgId::generate();
    let a = r.waiting(&org, SHOP, 25_000_000).await;
    let b = r.waiting(&org, SHOP, 25_000_000).await;
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    assert_eq!(code(r.pay(&a.id, &tx).await), "OK");
    // The same hash in capitals (hex is case-blind) names the same transfer: it cannot pay
    // a second order, nor be recorded twice on the first.
    let upper = format!("0x{}", tx.to_string()[2..].to_uppercase());
    let same = TxHash::parse(ChainFamily::Evm, &upper).unwrap();
    assert_eq!(same, tx);
    assert_eq!(code(r.pay(&b.id, &same).await), "TX_ALREADY_USED");
    let rec = r.pay(&a.id, &same).await.unwrap();
    assert!(!rec.new);
    assert_eq!(r.get(&a.id).await.transfers.len(), 1);
}

#[tokio::test]
async fn a_reorg_is_confirmed_on_chain_and_never_credits_twice() {
    let r = rig();
    let org = OrgId::generate();
    let (a, tx) = r.paid_in_full(&org).await;

    // A lagging node does not find the transaction, but the recorded block is still
    // there: not a reorg. Nothing changes.
    r.chain.hide(&tx);
    assert_eq!(r.check(&a.id).await, Progress::Waiting);
    let still = r.get(&a.id).await;
    assert_eq!(still.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(still.transfers[0].status, TransferStatus::Confirming);
    r.chain.show_all();

    // A real reorg: block 11 is replaced, and the transaction is mined again in block 13,
    // which the node checked does not show yet: the transfer is reorged away.
    r.chain.drop_to_mempool(11, &tx, 13);
    assert_eq!(r.check(&a.id).await, Progress::Settled);
    let back = r.get(&a.id).await;
    assert_eq!(back.status, OrderStatus::AwaitingPayment);
    assert_eq!(back.transfers[0].status, TransferStatus::Reorged);
    r.chain.show_all();

    // Re-mined: recorded again on the same order (its claims written again), counted once.
    assert_eq!(code(r.pay(&a.id, &tx).await), "OK");
    let again = r.get(&a.id).await;
    assert_eq!(again.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(again.transfers.len(), 1);
    assert_eq!(again.transfers[0].block_number, 13);
    assert_eq!(received(&again), RawAmount::from_u128(25_000_000));
    // And it cannot pay another order of the organization after the reorg either.
    let b = r.waiting(&org, SHOP, 25_000_000).await;
    assert_eq!(code(r.pay(&b.id, &tx).await), "TX_ALREADY_USED");
    // Deep enough on the new branch: completed.
    r.chain.set_head(40);
    assert_eq!(r.check(&a.id).await, Progress::Settled);
    assert_eq!(r.get(&a.id).await.status, OrderStatus::Completed);
}

/// A transaction a reorg moved is followed on one answer of the node's. A failed read is
/// no answer (the check fails, and is tried again), and a second read that says otherwise
/// (another node of the provider's, still holding it in its mempool) is never asked: taken
/// for "the payment is gone", either sent the paid order back to waiting for a payment
/// nobody would make again, with the scan past the new block.
#[tokio::test]
async fn a_moved_transaction_is_followed_on_one_answer_of_the_node() {
    let r = rig();
    let org = OrgId::generate();
    let (a, tx) = r.paid_in_full(&org).await;
    r.chain.reorg(11, &[&tx], 13);
    let check = async || {
        let round = r.get(&a.id).await.check_round;
        advance(&r.s, None, &a.id, Some(round), Timestamp::now()).await
    };
    // The node fails: the check fails, and nothing changes.
    r.chain.tx_reads.lock().unwrap().push_back(TxRead::Fail);
    assert!(check().await.is_err());
    let after = r.get(&a.id).await;
    assert_eq!(after.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(
        (after.transfers[0].status, after.transfers[0].block_number),
        (TransferStatus::Confirming, 11)
    );
    // One node shows it mined at 13, the next one still in its mempool: followed to 13.
    r.chain
        .tx_reads
        .lock()
        .unwrap()
        .extend([TxRead::AsIs, TxRead::Mempool, TxRead::Mempool]);
    assert_eq!(check().await.unwrap(), Progress::Waiting);
    r.chain.tx_reads.lock().unwrap().clear();
    let moved = r.get(&a.id).await;
    assert_eq!(moved.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(
        (moved.transfers[0].status, moved.transfers[0].block_number),
        (TransferStatus::Confirming, 13)
    );
    assert_eq!(received(&moved), RawAmount::from_u128(25_000_000));
}

#[tokio::test]
async fn a_transaction_mined_again_after_a_reorg_is_followed_to_its_new_block() {
    let r = rig();
    let org = OrgId::generate();
    let (a, tx) = r.paid_in_full(&org).await;
    // Block 11 is replaced and the same transaction is mined again in block 13: the check
    // follows it there instead of sending a paid order back to wait for a payment (which
    // nobody would make again, and the scan has passed block 13).
    r.chain.reorg(11, &[&tx], 13);
    assert_eq!(r.check(&a.id).await, Progress::Waiting);
    let moved = r.get(&a.id).await;
    assert_eq!(moved.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(moved.transfers.len(), 1);
    assert_eq!(moved.transfers[0].status, TransferStatus::Confirming);
    assert_eq!(moved.transfers[0].block_number, 13);
    assert_eq!(moved.transfers[0].block_hash, block_hash(13, 1));
    assert_eq!(received(&moved), RawAmount::from_u128(25_000_000));
    // Still this order's: no other order of the organization can take it.
    let b = r.waiting(&org, SHOP, 25_000_000).await;
    assert_eq!(code(r.pay(&b.id, &tx).await), "TX_ALREADY_USED");
    // Confirmations count from the new block: 3 are needed here, block 13 at head 14 has 2.
    r.chain.set_head(14);
    assert_eq!(r.check(&a.id).await, Progress::Waiting);
    assert_eq!(r.get(&a.id).await.status, OrderStatus::AwaitingConfirmation);
    r.chain.set_head(15);
    assert_eq!(r.check(&a.id).await, Progress::Settled);
    assert_eq!(r.get(&a.id).await.status, OrderStatus::Completed);

    // Two transactions mined again by one reorg are followed one per check (each write's
    // claims must fit one DynamoDB transaction), neither reorged away meanwhile.
    let d = r.waiting(&org, SHOP, 25_000_000).await;
    let one = r.chain.mine(16, 5, &[(USDC, SHOP, 10_000_000)]);
    let two = r.chain.mine(17, 5, &[(USDC, SHOP, 15_000_000)]);
    r.pay(&d.id, &one).await.unwrap();
    r.pay(&d.id, &two).await.unwrap();
    r.chain.reorg(16, &[&one, &two], 18);
    assert_eq!(r.check(&d.id).await, Progress::Waiting);
    let blocks = |o: &PayOrder| {
        let mut b: Vec<u64> = o.transfers.iter().map(|t| t.block_number).collect();
        b.sort();
        b
    };
    let once = r.get(&d.id).await;
    assert!(
        once.transfers
            .iter()
            .all(|t| t.status == TransferStatus::Confirming)
    );
    assert_eq!(
        blocks(&once).iter().filter(|b| **b == 18).count(),
        1,
        "{:?}",
        blocks(&once)
    );
    assert_eq!(r.check(&d.id).await, Progress::Waiting);
    assert_eq!(blocks(&r.get(&d.id).await), [18, 18]);
    assert_eq!(
        received(&r.get(&d.id).await),
        RawAmount::from_u128(25_000_000)
    );

    // Mined again, but on the new branch it pays less (its sender's state differed): that
    // is not the payment that was recorded, so it is reorged away and the order waits.
    let c = r.waiting(&org, SHOP, 25_000_000).await;
    let short = r.chain.mine(41, 5, &[(USDC, SHOP, 25_000_000)]);
    r.pay(&c.id, &short).await.unwrap();
    r.chain.reorg(41, &[&short], 42);
    r.chain
        .txs
        .lock()
        .unwrap()
        .get_mut(&short.to_string())
        .unwrap()
        .transfers[0]
        .amount = RawAmount::from_u128(10_000_000);
    assert_eq!(r.check(&c.id).await, Progress::Settled);
    let back = r.get(&c.id).await;
    assert_eq!(back.status, OrderStatus::AwaitingPayment);
    assert_eq!(back.transfers[0].status, TransferStatus::Reorged);
    assert_eq!(received(&back), RawAmount::ZERO);
}

#[tokio::test]
async fn a_transfer_reorged_away_from_a_paid_order_and_mined_again_counts_again() {
    let r = rig();
    let org = OrgId::generate();
    let a = r.waiting(&org, SHOP, 25_000_000).await;
    r.ask_confirmations(&a.id, 10).await;
    let big = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    let extra = r.chain.mine(12, 5, &[(USDC, SHOP, 1_000_000)]);
    r.pay(&a.id, &extra).await.unwrap();
    r.pay(&a.id, &big).await.unwrap();
    // Block 12 is replaced and the extra transfer drops back to the mempool: the node does
    // not show it. Reorged away; the 25 still pay the order, which keeps being checked.
    r.chain.drop_to_mempool(12, &extra, 13);
    assert_eq!(r.check(&a.id).await, Progress::Waiting);
    let dropped = r.get(&a.id).await;
    assert_eq!(dropped.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(received(&dropped), RawAmount::from_u128(25_000_000));
    // Mined again in block 13: the next check finds it and counts it again, where nothing
    // else would (the order takes no payments, and the transfer's claims are its own).
    r.chain.show_all();
    assert_eq!(r.check(&a.id).await, Progress::Waiting);
    let back = r.get(&a.id).await;
    let t = back
        .transfers
        .iter()
        .find(|t| t.tx_hash == extra.to_string())
        .unwrap();
    assert_eq!((t.status, t.block_number), (TransferStatus::Confirming, 13));
    assert_eq!(received(&back), RawAmount::from_u128(26_000_000));
    r.chain.set_head(40);
    assert_eq!(r.check(&a.id).await, Progress::Settled);
    let done = r.get(&a.id).await;
    assert_eq!(done.status, OrderStatus::Completed);
    assert!(
        done.transfers
            .iter()
            .all(|t| t.status == TransferStatus::Confirmed)
    );
    assert_eq!(received(&done), RawAmount::from_u128(26_000_000));
}

#[tokio::test]
async fn a_reorged_transfer_mined_again_completes_the_order_waiting_for_it() {
    let r = rig();
    let org = OrgId::generate();
    let a = r.waiting(&org, SHOP, 25_000_000).await;
    r.ask_confirmations(&a.id, 10).await;
    let first = r.chain.mine(11, 5, &[(USDC, SHOP, 10_000_000)]);
    let second = r.chain.mine(12, 5, &[(USDC, SHOP, 15_000_000)]);
    r.pay(&a.id, &first).await.unwrap();
    r.pay(&a.id, &second).await.unwrap();
    // The 15 drop back to the mempool: what is left is short, the order waits for payment,
    // its 10 still followed.
    r.chain.drop_to_mempool(12, &second, 13);
    assert_eq!(r.check(&a.id).await, Progress::Waiting);
    assert_eq!(r.get(&a.id).await.status, OrderStatus::AwaitingPayment);
    // Mined again: the next check finds them, and the order, paid in full again, waits
    // for confirmations (not for a payment nobody will make again), then completes.
    r.chain.show_all();
    assert_eq!(r.check(&a.id).await, Progress::Waiting);
    let back = r.get(&a.id).await;
    assert_eq!(back.status, OrderStatus::AwaitingConfirmation);
    assert!(back.payment.as_ref().unwrap().remaining.is_none());
    r.chain.set_head(40);
    assert_eq!(r.check(&a.id).await, Progress::Settled);
    assert_eq!(r.get(&a.id).await.status, OrderStatus::Completed);
}

#[tokio::test]
async fn a_reorg_of_one_transfer_leaves_an_order_the_others_pay_waiting_for_them() {
    let r = rig();
    let org = OrgId::generate();
    let a = r.waiting(&org, SHOP, 25_000_000).await;
    // A part of the amount, then the whole of it, in later and earlier blocks.
    let big = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    let dust = r.chain.mine(12, 5, &[(USDC, SHOP, 1_000_000)]);
    r.pay(&a.id, &dust).await.unwrap();
    assert_eq!(r.get(&a.id).await.status, OrderStatus::PartialPayment);
    r.pay(&a.id, &big).await.unwrap();
    assert_eq!(r.get(&a.id).await.status, OrderStatus::AwaitingConfirmation);
    // Block 12 is reorged away with the dust; the 25 in block 11 still pay the order.
    r.chain.reorg(12, &[], 12);
    assert_eq!(r.check(&a.id).await, Progress::Waiting);
    let after = r.get(&a.id).await;
    assert_eq!(after.status, OrderStatus::AwaitingConfirmation);
    let status = |h: &TxHash| {
        let t = after.transfers.iter().find(|t| t.tx_hash == h.to_string());
        t.unwrap().status
    };
    assert_eq!(status(&dust), TransferStatus::Reorged);
    assert_eq!(status(&big), TransferStatus::Confirming);
    assert_eq!(received(&after), RawAmount::from_u128(25_000_000));
    // Its confirmations are still followed, to the end.
    r.chain.set_head(40);
    assert_eq!(r.check(&a.id).await, Progress::Settled);
    let done = r.get(&a.id).await;
    assert_eq!(done.status, OrderStatus::Completed);
    assert_eq!(received(&done), RawAmount::from_u128(25_000_000));

    // When what is left is short, the order waits for the rest of the payment again.
    let b = r.waiting(&org, SHOP, 25_000_000).await;
    let first = r.chain.mine(41, 5, &[(USDC, SHOP, 10_000_000)]);
    let second = r.chain.mine(42, 5, &[(USDC, SHOP, 15_000_000)]);
    r.pay(&b.id, &first).await.unwrap();
    r.pay(&b.id, &second).await.unwrap();
    assert_eq!(r.get(&b.id).await.status, OrderStatus::AwaitingConfirmation);
    r.chain.reorg(42, &[], 42);
    // The 10 left are still followed to final (only confirmed money can be refunded).
    assert_eq!(r.check(&b.id).await, Progress::Waiting);
    let short = r.get(&b.id).await;
    assert_eq!(short.status, OrderStatus::AwaitingPayment);
    assert_eq!(received(&short), RawAmount::from_u128(10_000_000));
    // A lost check of it is queued again by the upkeep (the local store finds it at once).
    r.sent.0.lock().unwrap().clear();
    let later = Timestamp::now().plus_seconds(3_600);
    assert_eq!(requeue_stalled(&r.s, later, later, 100).await.unwrap(), 1);
    assert!(r.sent.0.lock().unwrap().iter().any(|m| m.order_id == b.id));
    r.chain.set_head(60);
    assert_eq!(r.check(&b.id).await, Progress::Settled);
    let final_ = r.get(&b.id).await;
    assert_eq!(final_.status, OrderStatus::AwaitingPayment);
    assert_eq!(final_.transfers[0].status, TransferStatus::Confirmed);
}

#[tokio::test]
async fn the_scan_credits_every_watched_address_and_never_skips_a_failed_read() {
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    let a = r.waiting(&org, SHOP, 5_000_000).await;
    let b = r.waiting(&org, OTHER, 7_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    let start = r.s.store.scan_cursor(chain).await.unwrap();

    // A block the node cannot read: the scan fails and its cursor stays.
    let batch = r
        .chain
        .mine(12, 5, &[(USDC, SHOP, 5_000_000), (USDC, OTHER, 7_000_000)]);
    *r.chain.broken_blocks.lock().unwrap() = true;
    assert!(scan_chain(&r.s, chain, Timestamp::now()).await.is_err());
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), start);
    *r.chain.broken_blocks.lock().unwrap() = false;

    // A sighted transaction the node cannot show yet: the same.
    r.chain.hide(&batch);
    assert!(scan_chain(&r.s, chain, Timestamp::now()).await.is_err());
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), start);
    r.chain.show_all();

    // One transaction paying both orders' addresses (a batch payout) credits both.
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 2, "{report:?}");
    for id in [&a.id, &b.id] {
        assert_eq!(r.get(id).await.status, OrderStatus::AwaitingConfirmation);
    }
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(12));
}

#[tokio::test]
async fn one_scan_credits_each_of_several_payments_to_a_shared_address() {
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    // Two orders of the same price on one merchant address, and a third topped up in two
    // parts; all their transfers land in the range of one scan.
    let a = r.waiting(&org, SHOP, 25_000_000).await;
    let b = r.waiting(&org, SHOP, 25_000_000).await;
    let c = r.waiting(&org, OTHER, 30_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    r.chain.mine(12, 5, &[(USDC, SHOP, 25_000_000)]);
    r.chain.mine(12, 5, &[(USDC, SHOP, 25_000_000)]);
    r.chain.mine(12, 5, &[(USDC, OTHER, 10_000_000)]);
    r.chain.mine(13, 5, &[(USDC, OTHER, 20_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    // Each transfer is matched against the orders as the scan left them: the first order
    // paid no longer takes the second payment, and the top-up matches what is still due.
    assert_eq!(report.recorded, 4, "{report:?}");
    for id in [&a.id, &b.id, &c.id] {
        let o = r.get(id).await;
        assert_eq!(o.status, OrderStatus::AwaitingConfirmation, "{id}");
    }
    assert_eq!(r.get(&a.id).await.transfers.len(), 1);
    assert_eq!(r.get(&b.id).await.transfers.len(), 1);
    assert_eq!(
        received(&r.get(&c.id).await),
        RawAmount::from_u128(30_000_000)
    );
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(13));
}

/// A wallet's batch (or a contract) paying in two transfers of one transaction is one
/// payment of their sum: the scan matches the sum on a shared address, and neither half is
/// left for another order, by the scan or by submitting the same hash to it.
#[tokio::test]
async fn a_payment_split_over_two_transfers_pays_one_order_with_their_sum() {
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    let whole = r.waiting(&org, SHOP, 25_000_000).await;
    let part = r.waiting(&org, SHOP, 10_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    let split = r
        .chain
        .mine(12, 5, &[(USDC, SHOP, 10_000_000), (USDC, SHOP, 15_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    let paid = r.get(&whole.id).await;
    assert_eq!(paid.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(paid.transfers.len(), 1);
    assert_eq!(received(&paid), RawAmount::from_u128(25_000_000));
    // Its first transfer alone is what the other order asks: it is not that order's.
    let e = record_payment(&r.s, &part.id, &split, Timestamp::now())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PaymentError::AlreadyUsed { order: Some(o) } if *o == whole.id),
        "{e:?}"
    );
    let unpaid = r.get(&part.id).await;
    assert_eq!(unpaid.status, OrderStatus::AwaitingPayment);
    assert!(unpaid.transfers.is_empty());
}

#[tokio::test]
async fn on_a_shared_address_the_scan_gives_a_transfer_to_the_order_it_can_pay() {
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    // Past its expiry (the upkeep has not come yet), older, same price: it must not take
    // the payment of an order still waiting.
    let stale = r.waiting_until(&org, SHOP, 25_000_000, -30).await;
    let live = r.waiting(&org, SHOP, 25_000_000).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    r.chain.mine(12, 5, &[(USDC, SHOP, 25_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    assert_eq!(
        r.get(&live.id).await.status,
        OrderStatus::AwaitingConfirmation
    );
    assert!(r.get(&stale.id).await.transfers.is_empty());

    // Listed, then paid by another request before its block is read: the transfer goes to
    // the next order it pays, not lost on the first's refusal.
    let first = r.waiting(&org, OTHER, 9_000_000).await;
    let second = r.waiting(&org, OTHER, 9_000_000).await;
    *r.chain.paid_meanwhile.lock().unwrap() = Some((r.s.store.clone(), first.id.clone()));
    r.chain.mine(13, 5, &[(USDC, OTHER, 9_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    let paid = r.get(&second.id).await;
    assert_eq!(paid.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(paid.transfers.len(), 1);
    assert!(r.get(&first.id).await.transfers.is_empty());
}

/// A transfer to an address many waiting orders share is read from the node once to be
/// matched against all of them (then once more as it is recorded): each scan reads the last
/// minutes' token transfers again, and a merchant address may have many orders waiting.
#[tokio::test]
async fn a_transfer_to_a_shared_address_is_read_once_for_all_its_orders() {
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    let mut orders = Vec::new();
    for due in 1..=6u128 {
        orders.push(r.waiting(&org, SHOP, due * 1_000_000).await);
    }
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    r.chain.mine(12, 5, &[(USDC, SHOP, 6_000_000)]);
    let reads = || {
        r.chain
            .tx_read_count
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = reads();
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1);
    assert_eq!(
        r.get(&orders[5].id).await.status,
        OrderStatus::AwaitingConfirmation
    );
    assert_eq!(reads() - before, 2);
}

#[tokio::test]
async fn a_late_order_on_a_merchant_address_takes_only_what_it_has_due() {
    let r = rig();
    let org = OrgId::generate();
    let chain = ChainId::new(CHAIN).unwrap();
    // Cancelled, so watched for a day for a late payment, alone on the merchant's address.
    let o = r.waiting(&org, SHOP, 25_000_000).await;
    r.cancel(&o.id).await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    // Other money reaching the merchant's address is not this order's.
    r.chain.mine(12, 5, &[(USDC, SHOP, 7_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 0, "{report:?}");
    assert!(r.get(&o.id).await.transfers.is_empty());
    // What it has due is its late payment.
    let late = r.chain.mine(13, 5, &[(USDC, SHOP, 25_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    let after = r.get(&o.id).await;
    assert_eq!(after.transfers.len(), 1);
    assert_eq!(after.transfers[0].tx_hash, late.to_string());
    assert!(after.paid_late);
    // Paid in full (late): nothing more is due, so the same amount again is not its.
    r.chain.mine(14, 5, &[(USDC, SHOP, 25_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 0, "{report:?}");
    assert_eq!(r.get(&o.id).await.transfers.len(), 1);

    // Waiting, alone on the address, past its expiry by the clock but not expired yet: a
    // part of the amount mined before the expiry is an on-time partial payment.
    let w = r.waiting_until(&org, OTHER, 25_000_000, 1).await;
    let part = r.chain.mine(15, 0, &[(USDC, OTHER, 10_000_000)]);
    let later = Timestamp::now().plus_seconds(5);
    let report = scan_chain(&r.s, chain, later).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    let on_time = r.get(&w.id).await;
    assert_eq!(on_time.status, OrderStatus::PartialPayment);
    assert_eq!(on_time.transfers[0].tx_hash, part.to_string());
    assert!(!on_time.paid_late);
}

#[tokio::test]
async fn a_swarm_of_dust_or_zero_transfers_neither_pays_nor_stops_the_scan() {
    let r = rig();
    let (_, chain, o) = r.waiting_at_shop().await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    // Anyone can emit zero-value transfers to a deposit address shown on a checkout page
    // (`transferFrom(anyone, deposit, 0)` needs no tokens), and tiny ones cost next to
    // nothing: one transaction of 60 of each. Recording them would claim two items per
    // transfer in one write, past what one DynamoDB transaction takes, so that write, and
    // the scan of the chain with it, would fail on every run.
    let zeros = [(USDC, SHOP, 0u128); 60];
    let dust = [(USDC, SHOP, 1u128); 60];
    let z = r.chain.mine(12, 5, &zeros);
    let d = r.chain.mine(13, 5, &dust);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 0, "{report:?}");
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(13));
    let untouched = r.get(&o.id).await;
    assert_eq!(untouched.status, OrderStatus::AwaitingPayment);
    assert!(untouched.transfers.is_empty());
    // Submitted, each is refused with its reason, and nothing changes.
    assert_eq!(code(r.pay(&o.id, &z).await), "WRONG_RECIPIENT");
    assert_eq!(code(r.pay(&o.id, &d).await), "TOO_MANY_TRANSFERS");
    assert!(r.get(&o.id).await.transfers.is_empty());
    // The next real payment is found by the scan as usual.
    let real = r.chain.mine(14, 5, &[(USDC, SHOP, 25_000_000)]);
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    let paid = r.get(&o.id).await;
    assert_eq!(paid.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(paid.transfers.len(), 1);
    assert_eq!(paid.transfers[0].tx_hash, real.to_string());
}

#[tokio::test]
async fn the_scan_keeps_its_cursor_while_an_order_keeps_changing() {
    let r = rig();
    let (org, chain, o) = r.waiting_at_shop().await;
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    let start = r.s.store.scan_cursor(chain).await.unwrap();

    // The transfer is sighted, but every write of it loses to another writer of the
    // order: not recorded this time, so the scan fails and its cursor stays.
    let tx = r.chain.mine(12, 5, &[(USDC, SHOP, 25_000_000)]);
    *r.chain.meddler.lock().unwrap() = Some((r.s.store.clone(), o.id.clone()));
    let err = scan_chain(&r.s, chain, Timestamp::now())
        .await
        .expect_err("a transfer that could not be recorded fails the scan");
    assert!(
        matches!(&err, ScanError::Busy { order, tx: t } if order == &o.id && t == &tx),
        "{err}"
    );
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), start);
    let untouched = r.get(&o.id).await;
    assert_eq!(untouched.status, OrderStatus::AwaitingPayment);
    assert!(untouched.transfers.is_empty());

    // Once the order settles, the next scan reads the block again and credits it.
    *r.chain.meddler.lock().unwrap() = None;
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 1, "{report:?}");
    let paid = r.get(&o.id).await;
    assert_eq!(paid.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(paid.transfers[0].tx_hash, tx.to_string());
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(12));

    // A refusal for good is still passed over: read again for another waiting order at
    // the same address, the transfer is claimed already, and the cursor moves on.
    let other = r.waiting(&org, SHOP, 25_000_000).await;
    r.s.store
        .set_scan_cursor(chain, Some(12), 11)
        .await
        .unwrap();
    let report = scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    assert_eq!(report.recorded, 0, "{report:?}");
    assert_eq!(r.s.store.scan_cursor(chain).await.unwrap(), Some(12));
    assert!(r.get(&other.id).await.transfers.is_empty());
}

#[tokio::test]
async fn orders_expire_and_late_payments_are_recorded_inside_the_window() {
    let r = rig();
    let org = OrgId::generate();
    let partial = r.waiting_until(&org, SHOP, 25_000_000, 1).await;
    let unpaid = r.waiting_until(&org, OTHER, 25_000_000, 1).await;
    let part = r.chain.mine(11, 5, &[(USDC, SHOP, 10_000_000)]);
    r.pay(&partial.id, &part).await.unwrap();
    assert_eq!(r.get(&partial.id).await.status, OrderStatus::PartialPayment);

    let later = Timestamp::now().plus_seconds(5);
    let expired = expire_orders(&*r.s.store, later, 100).await.unwrap();
    assert!(expired >= 2, "{expired}");
    let p = r.get(&partial.id).await;
    assert_eq!(p.status, OrderStatus::Expired);
    // What it received stays visible.
    assert_eq!(received(&p), RawAmount::from_u128(10_000_000));
    assert_eq!(p.transfers.len(), 1);
    let events = r.events(&org).await;
    assert!(
        events
            .iter()
            .any(|e| e.event_type == EventType::OrderExpired
                && e.data.object["id"] == serde_json::json!(unpaid.id))
    );
    // Running again expires nothing twice.
    assert_eq!(expire_orders(&*r.s.store, later, 100).await.unwrap(), 0);

    // Still watched: a late payment is verified and recorded, the order stays EXPIRED.
    let watched =
        r.s.store
            .list_watched_orders(ChainId::new(CHAIN).unwrap(), Timestamp::now())
            .await
            .unwrap();
    assert!(watched.iter().any(|o| o.id == unpaid.id));
    // Mined after the expiry, by the chain's clock.
    let late = r.chain.mine(12, -10, &[(USDC, OTHER, 25_000_000)]);
    let rec = r.pay(&unpaid.id, &late).await.unwrap();
    assert_eq!(rec.order.status, OrderStatus::Expired);
    assert!(rec.order.paid_late);
    let events = r.events(&org).await;
    assert!(
        events
            .iter()
            .any(|e| e.event_type == EventType::OrderPaymentLate
                && e.data.object["id"] == serde_json::json!(unpaid.id)
                && e.data.object["paid_late"] == true)
    );

    // After the monitoring window: refused, and no longer watched.
    let after_window = unpaid.watch_until().plus_seconds(1);
    let another = r.chain.mine(13, 1, &[(USDC, SHOP, 1)]);
    assert!(matches!(
        record_payment(&r.s, &partial.id, &another, after_window).await,
        Err(PaymentError::WindowClosed(_))
    ));
    assert!(
        r.s.store
            .list_watched_orders(ChainId::new(CHAIN).unwrap(), after_window)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_order_paid_while_it_expires_is_not_expired() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.waiting_until(&org, SHOP, 25_000_000, 1).await;
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    // Paid just before its expiry: past `expires_at`, the upkeep leaves it alone.
    r.pay(&o.id, &tx).await.unwrap();
    let later = Timestamp::now().plus_seconds(5);
    assert_eq!(expire_orders(&*r.s.store, later, 100).await.unwrap(), 0);
    assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
}

#[tokio::test]
async fn a_lost_confirmation_check_is_queued_again_once() {
    let r = rig();
    let org = OrgId::generate();
    let (o, _) = r.paid_in_full(&org).await;
    // The first check was queued; pretend the message was lost.
    let first = r.last_queued();
    assert_eq!(first.order_id, o.id);
    let paid = r.get(&o.id).await;
    assert_eq!(first.round, Some(paid.check_round));

    // Not stale yet: nothing queued.
    let now = Timestamp::now();
    assert_eq!(r.requeue_at(now).await, 0);
    // An hour later it is: one new check, in a new series.
    let later = now.plus_seconds(3_600);
    assert_eq!(r.requeue_at(later).await, 1);
    let msg = r.last_queued();
    let touched = r.get(&o.id).await;
    assert_eq!(msg.round, Some(touched.check_round));
    assert_ne!(touched.check_round, paid.check_round);
    // The same run again queues nothing more (the order was touched).
    assert_eq!(r.requeue_at(later).await, 0);
    // A late message of the old series is dropped without reading the chain.
    assert_eq!(r.check_in(&o.id, first.round).await, Progress::Settled);
    assert_eq!(r.get(&o.id).await.version, touched.version);
    // The new series completes the order.
    r.chain.set_head(40);
    assert_eq!(r.check_in(&o.id, msg.round).await, Progress::Settled);
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Completed);
}

#[tokio::test]
async fn a_crash_between_recording_and_queueing_is_recovered() {
    /// A queue that is down.
    struct Down;
    #[async_trait]
    impl crate::queue::Queue for Down {
        async fn send(&self, _: &str, _: u32) -> Result<(), QueueError> {
            Err(QueueError("connection refused".into()))
        }
    }
    let mut r = rig();
    let org = OrgId::generate();
    let o = r.waiting(&org, SHOP, 25_000_000).await;
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    let up = r.s.confirmations.clone();
    r.s.confirmations = Arc::new(Down);
    // The payment is written, then queueing its check fails (as a crash right after the
    // write would leave it).
    assert!(matches!(
        r.pay(&o.id, &tx).await,
        Err(PaymentError::Queue(_))
    ));
    assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
    // Submitting again changes nothing and counts nothing twice…
    r.s.confirmations = up;
    let again = r.pay(&o.id, &tx).await.unwrap();
    assert!(!again.new);
    // …and the upkeep queues the check that was never sent.
    let later = Timestamp::now().plus_seconds(3_600);
    let report = upkeep(&r.s, later).await.unwrap();
    assert_eq!(report.requeued, 1);
    let msg = r.last_queued();
    r.chain.set_head(40);
    r.check_in(&o.id, msg.round).await;
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Completed);
}

/// More unpaid orders ending in one minute than one batch holds are all expired by that
/// minute's run (in batches), not 200 a minute while the rest wait.
#[tokio::test]
async fn one_upkeep_run_expires_more_than_one_batch() {
    let r = rig();
    let org = OrgId::generate();
    let n = UPKEEP_BATCH as usize * 2 + 50;
    for _ in 0..n {
        r.waiting_until(&org, SHOP, 25_000_000, 1).await;
    }
    let later = Timestamp::now().plus_seconds(5);
    assert_eq!(upkeep(&r.s, later).await.unwrap().expired, n);
    assert_eq!(upkeep(&r.s, later).await.unwrap().expired, 0);
}

#[tokio::test]
async fn a_payment_mined_in_time_but_seen_after_expiry_is_not_late() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.waiting_until(&org, SHOP, 25_000_000, 1).await;
    // Mined a second before the order's expiry…
    let in_time = r.chain.mine(11, 0, &[(USDC, SHOP, 25_000_000)]);
    // …but the upkeep expires the order before the scan or the payer reports it.
    let later = Timestamp::now().plus_seconds(5);
    assert_eq!(expire_orders(&*r.s.store, later, 100).await.unwrap(), 1);
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Expired);
    let rec = r.pay(&o.id, &in_time).await.unwrap();
    // The customer kept the price lock: confirmed as any on-time payment, not late.
    assert_eq!(rec.order.status, OrderStatus::AwaitingConfirmation);
    assert!(!rec.order.paid_late);
    assert!(r.sent.0.lock().unwrap().iter().any(|m| m.order_id == o.id));
    r.chain.set_head(40);
    assert_eq!(r.check(&o.id).await, Progress::Settled);
    let done = r.get(&o.id).await;
    assert_eq!(done.status, OrderStatus::Completed);
    assert!(done.expired_at.is_some(), "it did expire once");
    // Analytics count it paid, not expired, whichever order its events come in (and however
    // often): the completion takes back the expiry's count.
    let mut events = r.events(&org).await;
    for round in 0..2 {
        let cs: Vec<_> = events
            .iter()
            .flat_map(|e| crate::analytics::contributions(e).unwrap())
            .collect();
        use crate::store::AnalyticsStore;
        let store = crate::store::embedded::EmbeddedStore::in_memory().unwrap();
        store.add_analytics_all(&cs).await.unwrap();
        store.add_analytics_all(&cs).await.unwrap();
        let hour = crate::analytics::hour_of(done.created_at);
        let got = store
            .read_analytics(&org, KeyMode::Test, hour, hour)
            .await
            .unwrap();
        let c = &got[0].counters;
        assert_eq!(
            (c["paid"], c.get("expired").copied().unwrap_or(0)),
            (1, 0),
            "round {round}: {c:?}"
        );
        events.reverse();
    }

    // Paid in time only in part, the rest after expiry: late, and it stays EXPIRED.
    let p = r.waiting_until(&org, OTHER, 25_000_000, 1).await;
    let part = r.chain.mine(12, 0, &[(USDC, OTHER, 10_000_000)]);
    r.pay(&p.id, &part).await.unwrap();
    expire_orders(&*r.s.store, later, 100).await.unwrap();
    // Mined after the expiry (the chain's clock says so).
    let rest = r.chain.mine(13, -10, &[(USDC, OTHER, 15_000_000)]);
    let rec = r.pay(&p.id, &rest).await.unwrap();
    assert_eq!(rec.order.status, OrderStatus::Expired);
    assert!(rec.order.paid_late);
}

#[tokio::test]
async fn a_transfer_mined_after_expiry_is_late_though_the_upkeep_has_not_run_yet() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.waiting_until(&org, SHOP, 25_000_000, 1).await;
    // The upkeep has not reached the order (it runs once a minute, a batch at a time):
    // the order still says AWAITING_PAYMENT when a transfer mined after its expiry comes.
    let late = r.chain.mine(11, -10, &[(USDC, SHOP, 25_000_000)]);
    let later = Timestamp::now().plus_seconds(15);
    let rec = record_payment(&r.s, &o.id, &late, later).await.unwrap();
    // Late, as it would be had the upkeep run first: the order is EXPIRED, the transfer
    // recorded on it as a late payment (refundable), and no price lock is kept.
    assert_eq!(rec.order.status, OrderStatus::Expired);
    assert!(rec.order.paid_late);
    assert_eq!(received(&rec.order), RawAmount::from_u128(25_000_000));
    let types: Vec<EventType> = r.events(&org).await.iter().map(|e| e.event_type).collect();
    assert!(types.contains(&EventType::OrderExpired), "{types:?}");
    assert!(types.contains(&EventType::OrderPaymentLate), "{types:?}");
    assert!(
        !types.contains(&EventType::OrderPaymentDetected),
        "{types:?}"
    );
    // Expired once, by the payment's recording: the upkeep, when it comes, adds nothing.
    expire_orders(&*r.s.store, later, 100).await.unwrap();
    let expired = r.events(&org).await;
    let expired = expired
        .iter()
        .filter(|e| e.event_type == EventType::OrderExpired);
    assert_eq!(expired.count(), 1);

    // A partly paid order topped up after its expiry: the same.
    let p = r.waiting_until(&org, OTHER, 25_000_000, 1).await;
    let part = r.chain.mine(12, 0, &[(USDC, OTHER, 10_000_000)]);
    r.pay(&p.id, &part).await.unwrap();
    assert_eq!(r.get(&p.id).await.status, OrderStatus::PartialPayment);
    let rest = r.chain.mine(13, -10, &[(USDC, OTHER, 15_000_000)]);
    let rec = record_payment(&r.s, &p.id, &rest, later).await.unwrap();
    assert_eq!(rec.order.status, OrderStatus::Expired);
    assert!(rec.order.paid_late);

    // Mined before the expiry and seen after it, the upkeep not run: on time, as before.
    let q = r.waiting_until(&org, SHOP, 7_000_000, 1).await;
    let in_time = r.chain.mine(14, 0, &[(USDC, SHOP, 7_000_000)]);
    let rec = record_payment(&r.s, &q.id, &in_time, later).await.unwrap();
    assert_eq!(rec.order.status, OrderStatus::AwaitingConfirmation);
    assert!(!rec.order.paid_late);
}

#[tokio::test]
async fn a_partial_payment_mined_in_time_is_not_late_when_seen_after_expiry() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.waiting_until(&org, SHOP, 25_000_000, 1).await;
    // 10 of 25 USDC, mined before the order's expiry…
    let part = r.chain.mine(11, 0, &[(USDC, SHOP, 10_000_000)]);
    // …and reported only after the upkeep expired the order.
    let later = Timestamp::now().plus_seconds(5);
    assert_eq!(expire_orders(&*r.s.store, later, 100).await.unwrap(), 1);
    let rec = r.pay(&o.id, &part).await.unwrap();
    // Recorded as the partial payment it was: the order keeps it, EXPIRED, not late.
    assert_eq!(rec.order.status, OrderStatus::Expired);
    assert!(!rec.order.paid_late);
    let p = rec.order.payment.as_ref().unwrap();
    assert_eq!(
        p.received.as_ref().unwrap().raw,
        RawAmount::from_u128(10_000_000)
    );
    let types = |events: Vec<Event>| -> Vec<EventType> {
        events
            .into_iter()
            .filter(|e| e.data.object["id"] == serde_json::json!(o.id))
            .map(|e| e.event_type)
            .collect()
    };
    let seen = types(r.events(&org).await);
    assert!(!seen.contains(&EventType::OrderPaymentLate), "{seen:?}");
    assert!(seen.contains(&EventType::OrderPartialPayment), "{seen:?}");

    // The rest, mined after the expiry by the chain's clock: that transfer is late.
    let rest = r.chain.mine(12, -10, &[(USDC, SHOP, 15_000_000)]);
    let rec = r.pay(&o.id, &rest).await.unwrap();
    assert_eq!(rec.order.status, OrderStatus::Expired);
    assert!(rec.order.paid_late);
    let seen = types(r.events(&org).await);
    assert!(seen.contains(&EventType::OrderPaymentLate), "{seen:?}");
}

#[tokio::test]
async fn a_late_payment_is_followed_to_final_or_reorged_away() {
    let r = rig();
    let org = OrgId::generate();
    let a = r.waiting_until(&org, SHOP, 25_000_000, 1).await;
    let b = r.waiting_until(&org, OTHER, 25_000_000, 1).await;
    expire_orders(&*r.s.store, Timestamp::now().plus_seconds(5), 100)
        .await
        .unwrap();
    let late_a = r.chain.mine(11, -10, &[(USDC, SHOP, 25_000_000)]);
    let late_b = r.chain.mine(12, -10, &[(USDC, OTHER, 25_000_000)]);
    for (o, tx) in [(&a, &late_a), (&b, &late_b)] {
        let rec = r.pay(&o.id, tx).await.unwrap();
        assert_eq!(rec.order.status, OrderStatus::Expired);
        assert!(rec.order.paid_late);
        // Its confirmations are checked like any payment's.
        assert!(rec.order.awaits_check());
        assert!(r.sent.0.lock().unwrap().iter().any(|m| m.order_id == o.id));
    }
    // b's block is reorged away: the late payment no longer counts, visibly.
    r.chain.reorg(12, &[], 12);
    assert_eq!(r.check(&b.id).await, Progress::Settled);
    let b = r.get(&b.id).await;
    assert_eq!(b.status, OrderStatus::Expired);
    assert_eq!(b.transfers[0].status, TransferStatus::Reorged);
    assert_eq!(received(&b), RawAmount::ZERO);
    // a's is final: confirmed, and the order stays EXPIRED (the merchant decides).
    r.chain.set_head(40);
    assert_eq!(r.check(&a.id).await, Progress::Settled);
    let a = r.get(&a.id).await;
    assert_eq!(a.status, OrderStatus::Expired);
    assert_eq!(a.transfers[0].status, TransferStatus::Confirmed);
    assert!(!a.awaits_check());
}

#[tokio::test]
async fn a_payment_under_an_idempotency_key_keeps_its_answer_in_its_own_write() {
    use crate::store::{IdempotencyBegin, IdempotencyCompletion, IdempotencyScope, StoredResponse};
    let r = rig();
    let org = OrgId::generate();
    let order = r.waiting(&org, SHOP, 25_000_000).await;
    let scope = IdempotencyScope {
        organization_id: org.clone(),
        mode: KeyMode::Test,
        key: "pay-1".into(),
    };
    let begin =
        r.s.store
            .idempotency_begin(&scope, "fp", Timestamp::now())
            .await;
    let Ok(IdempotencyBegin::Started(hold)) = begin else {
        panic!("the key is free: {begin:?}")
    };
    // The answer is made from the order as it is about to be recorded.
    let keep = |o: &PayOrder| {
        Some(IdempotencyCompletion {
            hold: hold.clone(),
            response: StoredResponse {
                status: 200,
                body: format!("{} transfers", o.transfers.len()),
            },
            at: Timestamp::now(),
        })
    };
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 10_000_000)]);
    let copy = r.get(&order.id).await;
    let recorded = record_payment_keeping(&r.s, copy, &tx, Timestamp::now(), &keep)
        .await
        .unwrap();
    assert!(recorded.new);
    // Nothing else wrote the key: the payment's write completed it, so a crash right after
    // leaves the payment and its answer both. The same request replays; it does not pay.
    assert_eq!(
        r.s.store
            .idempotency_begin(&scope, "fp", Timestamp::now())
            .await
            .unwrap(),
        IdempotencyBegin::Replay(StoredResponse {
            status: 200,
            body: "1 transfers".into()
        })
    );
    // A transfer already recorded writes nothing, the key's answer included.
    let fresh = r.get(&order.id).await;
    let again = record_payment_keeping(&r.s, fresh, &tx, Timestamp::now(), &|_| {
        panic!("nothing to keep: the payment is not written again")
    })
    .await
    .unwrap();
    assert!(!again.new);
    assert_eq!(r.get(&order.id).await.transfers.len(), 1);

    // A key no longer the request's (taken over after its lock ran out) refuses the
    // payment with it: nothing is recorded under an answer another request keeps.
    let stale_hold = crate::store::IdempotencyHold {
        locked_until: hold.locked_until - 1,
        ..hold.clone()
    };
    let other = r.waiting(&org, SHOP, 25_000_000).await;
    let tx2 = r.chain.mine(12, 5, &[(USDC, SHOP, 10_000_000)]);
    let stale = |_: &PayOrder| {
        Some(IdempotencyCompletion {
            hold: stale_hold.clone(),
            response: StoredResponse {
                status: 200,
                body: "stale".into(),
            },
            at: Timestamp::now(),
        })
    };
    let refused = record_payment_keeping(&r.s, other.clone(), &tx2, Timestamp::now(), &stale).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(r.get(&other.id).await.transfers.is_empty());
}
