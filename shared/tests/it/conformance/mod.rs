//! One conformance suite for every store adapter. Each test body is written once against
//! `&dyn Store`; `suite!` instantiates it per adapter so the adapter shows in the test name.

use crate::support::{self, order, t0};
use payorders::store::*;
use payorders::*;
use std::collections::HashSet;

macro_rules! suite {
    ($adapter:ident, $make:path; $($test:ident),+ $(,)?) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let store = $make().await;
                    super::$test(crate::support::Adapter::store(&store)).await;
                }
            )+
        }
    };
}

macro_rules! all_adapters {
    (puts: $($put:ident),+ ; others: $($other:ident),+ $(,)?) => {
        suite!(dynamo, crate::support::dynamo_store; $($put),+, $($other),+);
        suite!(embedded, crate::support::embedded_store; $($put),+, $($other),+);
        suite!(dynamo_lost_answers, crate::support::dynamo_store_losing_answers; $($put),+);
    };
}

// Every test runs on both adapters. Those whose writes include a single conditional
// PutItem (`puts`) run again on DynamoDB with the answer of each written PutItem lost
// (`support::dynamo_store_losing_answers`): a write retried by the SDK must not be refused
// by its own first try. (The others write through transactions, counters and deletes, or
// only read, and pass there with or without the fix; they would only add time.)
all_adapters!(
    puts:
    organizations_and_api_keys,
    organization_settings_under_a_version,
    checkout_settings_last_write_wins,
    idempotency_life_cycle,
    idempotency_kept_by_the_change_or_not_at_all,
    idempotency_taken_over_keeps_nothing,
    endpoints_and_keys_keep_their_idempotency_key,
    an_endpoint_update_keeps_its_idempotency_key,
    endpoints_are_capped_per_organization_and_mode,
    event_exists_iff_transition_written,
    claim_once_until_expiry,
    deliveries_created_once_and_listed,
    wallets_one_per_chain_and_indexes_never_reused,
    a_wallet_created_again_is_not_written_over_with_the_old_one,
    watched_orders_and_scan_cursors,
    stalled_orders_oldest_first,
    xpub_indexes_never_reused,
    audit_entries_are_written_once_and_listed,
    the_largest_payment_write_fits_one_transaction;
    others:
    a_filter_matching_little_reads_a_bounded_span_per_page,
    api_keys_listed_revoked_and_expired,
    a_revocation_and_a_roll_at_once,
    create_and_get_order,
    list_with_every_filter,
    pagination_across_pages,
    cursor_outside_the_window,
    concurrent_conflicting_updates,
    same_tx_claimed_by_two_orders,
    active_keys_are_capped_per_organization_and_mode,
    duplicate_nonce,
    list_events_by_type_and_page,
    expirable_orders_by_expiry,
    webhook_endpoints_crud_and_versions,
    an_xpub_index_is_given_back_only_while_it_is_the_last,
    rate_counters_count_per_window,
    rate_limits_per_organization,
    analytics_counted_once_without_lost_updates,
    analytics_added_as_a_batch_count_each_once,
    analytics_sums_past_an_i64_read_as_its_largest,
    refunds_ride_on_the_order_write,
);

fn window(org: &OrgId, mode: KeyMode, limit: u32) -> ListWindow {
    ListWindow {
        limit,
        ..ListWindow::new(org.clone(), mode)
    }
}

async fn create(store: &dyn Store, o: PayOrder) -> PayOrder {
    store
        .create_order(&NewOrder::new(o.clone()).unwrap())
        .await
        .unwrap();
    o
}

async fn organizations_and_api_keys(store: &dyn Store) {
    let org = Organization::new("Acme", t0());
    store.create_organization(&org).await.unwrap();
    assert_eq!(
        store.get_organization(&org.id).await.unwrap(),
        Some(org.clone())
    );
    assert!(matches!(
        store.create_organization(&org).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        store.get_organization(&OrgId::generate()).await.unwrap(),
        None
    );

    let material = payorders::auth::generate_api_key(KeyMode::Test);
    let key = ApiKey {
        id: KeyId::generate(),
        organization_id: org.id.clone(),
        mode: KeyMode::Test,
        name: "checkout server".into(),
        key_hash: material.hash.clone(),
        prefix: material.prefix.clone(),
        last4: material.last4.clone(),
        secret_sealed: "v1.sealed-secret".into(),
        scopes: vec![Scope::OrdersRead, Scope::OrdersCreate],
        created_at: t0(),
        revoked_at: None,
        expires_at: None,
    };
    store.create_api_key(&key, None).await.unwrap();
    assert_eq!(
        store.get_api_key_by_hash(&material.hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.get_api_key(&key.id).await.unwrap(), Some(key.clone()));
    // Same hash under a new id: refused, and the first key is untouched.
    let dup = ApiKey {
        id: KeyId::generate(),
        ..key.clone()
    };
    assert!(matches!(
        store.create_api_key(&dup, None).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(store.get_api_key(&dup.id).await.unwrap(), None);

    let revoked = store
        .revoke_api_key(&key.id, t0().plus_seconds(60))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(t0().plus_seconds(60)));
    let by_hash = store
        .get_api_key_by_hash(&material.hash)
        .await
        .unwrap()
        .unwrap();
    assert!(!by_hash.is_active(t0().plus_seconds(61)));
    // Revoking again keeps the first revocation time.
    let again = store
        .revoke_api_key(&key.id, t0().plus_seconds(999))
        .await
        .unwrap();
    assert_eq!(again.revoked_at, Some(t0().plus_seconds(60)));
    assert!(matches!(
        store.revoke_api_key(&KeyId::generate(), t0()).await,
        Err(StoreError::NotFound)
    ));
}

fn api_key(org: &OrgId, mode: KeyMode, created_at: Timestamp) -> ApiKey {
    let material = payorders::auth::generate_api_key(mode);
    ApiKey {
        id: KeyId::generate(),
        organization_id: org.clone(),
        mode,
        name: format!("key {}", material.last4),
        key_hash: material.hash,
        prefix: material.prefix,
        last4: material.last4,
        secret_sealed: "v1.sealed-secret".into(),
        scopes: vec![Scope::OrdersRead],
        created_at,
        revoked_at: None,
        expires_at: None,
    }
}

async fn api_keys_listed_revoked_and_expired(store: &dyn Store) {
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let older = api_key(&org, KeyMode::Test, t0());
    let newer = api_key(&org, KeyMode::Test, t0().plus_seconds(10));
    let live = api_key(&org, KeyMode::Live, t0().plus_seconds(5));
    let foreign = api_key(&other, KeyMode::Test, t0());
    for k in [&older, &newer, &live, &foreign] {
        store.create_api_key(k, None).await.unwrap();
    }
    let ids = |keys: Vec<ApiKey>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_api_keys(&org, KeyMode::Test).await.unwrap()),
        vec![newer.id.clone(), older.id.clone()],
        "one organization and mode, newest first"
    );
    assert_eq!(
        ids(store.list_api_keys(&org, KeyMode::Live).await.unwrap()),
        vec![live.id.clone()]
    );
    assert!(
        store
            .list_api_keys(&OrgId::generate(), KeyMode::Test)
            .await
            .unwrap()
            .is_empty()
    );

    // A roll: the new key and the old key's expiry in one write, the expiry only ever
    // brought forward, seen by id, hash and list.
    let at = t0().plus_seconds(3600);
    let successor = || api_key(&org, KeyMode::Test, t0().plus_seconds(15));
    let first = successor();
    let expiring = store.roll_api_key(&older, &first, at, None).await.unwrap();
    assert_eq!(expiring.expires_at, Some(at));
    assert_eq!(
        store.get_api_key_by_hash(&first.key_hash).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.get_api_key(&first.id).await.unwrap(),
        Some(first.clone())
    );
    let later = store
        .roll_api_key(&expiring, &successor(), at.plus_seconds(60), None)
        .await
        .unwrap();
    assert_eq!(
        later.expires_at,
        Some(at),
        "a later expiry does not extend the key"
    );
    let sooner = at.plus_seconds(-1800);
    let rolled = store
        .roll_api_key(&later, &successor(), sooner, None)
        .await
        .unwrap();
    assert_eq!(rolled.expires_at, Some(sooner));
    let by_hash = store
        .get_api_key_by_hash(&older.key_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_hash, rolled);
    assert_eq!(by_hash.state(sooner.plus_seconds(-1)), KeyState::Active);
    assert_eq!(by_hash.state(sooner), KeyState::Expired);

    // A roll of the key as it was before it changed writes nothing: not the new key, not
    // the expiry.
    let stale = successor();
    assert!(matches!(
        store.roll_api_key(&older, &stale, t0(), None).await,
        Err(StoreError::VersionConflict { .. })
    ));
    assert_eq!(store.get_api_key(&stale.id).await.unwrap(), None);
    assert_eq!(
        store.get_api_key_by_hash(&stale.key_hash).await.unwrap(),
        None
    );
    // Nor does a roll to a key that exists (its id or its hash).
    for taken in [
        first.clone(),
        ApiKey {
            id: KeyId::generate(),
            ..first.clone()
        },
    ] {
        assert!(matches!(
            store.roll_api_key(&rolled, &taken, t0(), None).await,
            Err(StoreError::AlreadyExists)
        ));
    }
    assert_eq!(
        store.get_api_key(&older.id).await.unwrap(),
        Some(rolled.clone())
    );

    // A revocation and a roll never undo each other: a roll of the key as read before the
    // revocation is refused, the revocation keeps the expiry.
    store
        .revoke_api_key(&older.id, t0().plus_seconds(20))
        .await
        .unwrap();
    assert!(matches!(
        store
            .roll_api_key(&rolled, &successor(), t0().plus_seconds(30), None)
            .await,
        Err(StoreError::VersionConflict { .. })
    ));
    let listed = store.list_api_keys(&org, KeyMode::Test).await.unwrap();
    let listed_older = listed.iter().find(|k| k.id == older.id).unwrap();
    assert_eq!(listed_older.revoked_at, Some(t0().plus_seconds(20)));
    assert_eq!(listed_older.expires_at, Some(sooner));
    assert_eq!(
        store.get_api_key(&older.id).await.unwrap().as_ref(),
        Some(listed_older)
    );
    assert_eq!(listed_older.state(t0().plus_seconds(25)), KeyState::Revoked);
    assert_eq!(
        listed.iter().find(|k| k.id == newer.id).unwrap(),
        &newer,
        "the other key is untouched"
    );
    assert!(listed.contains(&first), "the new key is listed");
    let unknown = api_key(&org, KeyMode::Test, t0());
    assert!(matches!(
        store.roll_api_key(&unknown, &successor(), t0(), None).await,
        Err(StoreError::NotFound)
    ));

    // By organization, mode and id: what an access token names.
    assert_eq!(
        store
            .get_org_api_key(&org, KeyMode::Test, &older.id)
            .await
            .unwrap()
            .as_ref(),
        Some(listed_older)
    );
    for (o, m) in [(&org, KeyMode::Live), (&other, KeyMode::Test)] {
        assert_eq!(store.get_org_api_key(o, m, &older.id).await.unwrap(), None);
    }
}

/// A revocation and a roll of the same key at once (each reads the key, then writes it on
/// the condition that it is still as read): the revocation always holds, and the roll
/// either holds beside it (its expiry and its new key kept) or is refused as a conflict
/// with nothing of it written: never a revocation undone, never half a roll.
async fn a_revocation_and_a_roll_at_once(store: &dyn Store) {
    let org = OrgId::generate();
    let (mut rolled, mut refused) = (0, 0);
    for round in 0..8 {
        let key = api_key(&org, KeyMode::Test, t0().plus_seconds(round));
        store.create_api_key(&key, None).await.unwrap();
        let new = api_key(&org, KeyMode::Test, t0().plus_seconds(100 + round));
        let (revoked_at, until) = (t0().plus_seconds(200), t0().plus_seconds(3600));
        let (revoke, roll) = tokio::join!(
            store.revoke_api_key(&key.id, revoked_at),
            store.roll_api_key(&key, &new, until, None),
        );
        let revoked = revoke.unwrap();
        assert_eq!(revoked.revoked_at, Some(revoked_at));
        let stored = store.get_api_key(&key.id).await.unwrap().unwrap();
        assert_eq!(stored.revoked_at, Some(revoked_at), "the revocation holds");
        assert_eq!(
            store
                .get_api_key_by_hash(&key.key_hash)
                .await
                .unwrap()
                .as_ref(),
            Some(&stored)
        );
        let listed = store.list_api_keys(&org, KeyMode::Test).await.unwrap();
        assert!(
            listed.contains(&stored),
            "the listing copy follows the record"
        );
        match roll {
            Ok(_) => {
                rolled += 1;
                assert_eq!(stored.expires_at, Some(until), "the roll's expiry holds");
                assert_eq!(store.get_api_key(&new.id).await.unwrap(), Some(new.clone()));
                assert!(listed.contains(&new));
            }
            Err(StoreError::VersionConflict { .. }) => {
                refused += 1;
                assert_eq!(stored.expires_at, None, "a refused roll leaves no expiry");
                assert_eq!(store.get_api_key(&new.id).await.unwrap(), None);
                assert_eq!(
                    store.get_api_key_by_hash(&new.key_hash).await.unwrap(),
                    None
                );
                assert!(!listed.iter().any(|k| k.id == new.id));
            }
            Err(e) => panic!("a roll beside a revocation failed with {e:?}"),
        }
    }
    assert_eq!(rolled + refused, 8);
}

async fn create_and_get_order(store: &dyn Store) {
    let org = OrgId::generate();
    let o = order(&org, false, t0());
    let new = NewOrder::new(o.clone()).unwrap();
    store.create_order(&new).await.unwrap();
    let got = store.get_order(&o.id).await.unwrap().unwrap();
    assert_eq!(got, o, "every field survives the round trip");
    let ev = store.get_event(&new.event().id).await.unwrap().unwrap();
    assert_eq!(ev.event_type, EventType::OrderCreated);
    assert_eq!(ev.order_id, Some(o.id.clone()));
    assert_eq!(ev.data.object["id"], o.id.as_str());
    // Creating the same order twice is refused and leaves no second event.
    let again = NewOrder::new(o.clone()).unwrap();
    assert!(matches!(
        store.create_order(&again).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(store.get_event(&again.event().id).await.unwrap(), None);
    assert_eq!(store.get_order(&OrderId::generate()).await.unwrap(), None);
}

async fn list_with_every_filter(store: &dyn Store) {
    let org = OrgId::generate();
    let other = OrgId::generate();
    let eth_native = support::currency(1, "ETH");
    let sol_usdc = support::currency(30000000000001, "USDC");
    let mut expected_all = Vec::new();
    for i in 0..12i64 {
        let mut o = order(&org, false, t0().plus_seconds(i * 60));
        if i % 3 == 1 {
            o.fulfillment.asset = Some(eth_native.clone());
        }
        if i % 3 == 2 {
            o.fulfillment.asset = Some(sol_usdc.clone());
        }
        if i % 2 == 0 {
            o.mode = OrderMode::Sale;
        }
        let o = create(store, o).await;
        let o = if i % 4 == 0 {
            let u = o
                .transition(o.created_at, OrderStatus::Cancelled, |_| {})
                .unwrap();
            store.update_order(&u).await.unwrap();
            u.order().clone()
        } else {
            o
        };
        expected_all.push(o);
    }
    // Noise: another organization, and the same organization's live mode.
    create(store, order(&other, false, t0().plus_seconds(30))).await;
    create(store, order(&org, true, t0().plus_seconds(30))).await;

    expected_all.reverse(); // newest first
    let ids = |v: &[PayOrder]| v.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    let list = |f: OrderFilter, gte: Option<Timestamp>, lte: Option<Timestamp>| {
        let w = ListWindow {
            created_gte: gte,
            created_lte: lte,
            ..window(&org, KeyMode::Test, 100)
        };
        async move { store.list_orders(&w, &f).await.unwrap() }
    };
    let expect = |pred: &dyn Fn(&PayOrder) -> bool| {
        expected_all
            .iter()
            .filter(|o| pred(o))
            .map(|o| o.id.clone())
            .collect::<Vec<_>>()
    };

    let all = list(OrderFilter::default(), None, None).await;
    assert_eq!(ids(&all.data), expect(&|_| true));
    assert!(!all.has_more);
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.data, expected_all, "listed orders are complete records");

    let cancelled = list(
        OrderFilter {
            status: Some(OrderStatus::Cancelled),
            ..Default::default()
        },
        None,
        None,
    )
    .await;
    assert_eq!(
        ids(&cancelled.data),
        expect(&|o| o.status == OrderStatus::Cancelled)
    );
    assert_eq!(cancelled.data.len(), 3);

    let sales = list(
        OrderFilter {
            mode: Some(OrderMode::Sale),
            ..Default::default()
        },
        None,
        None,
    )
    .await;
    assert_eq!(ids(&sales.data), expect(&|o| o.mode == OrderMode::Sale));

    let on_eth = list(
        OrderFilter {
            chain_id: Some(ChainId::new(1).unwrap()),
            ..Default::default()
        },
        None,
        None,
    )
    .await;
    assert_eq!(
        ids(&on_eth.data),
        expect(&|o| o.chain_id() == Some(ChainId::new(1).unwrap()))
    );
    assert_eq!(on_eth.data.len(), 4);

    let sol = list(
        OrderFilter {
            currency: Some(sol_usdc.id.clone()),
            ..Default::default()
        },
        None,
        None,
    )
    .await;
    assert_eq!(
        ids(&sol.data),
        expect(&|o| o.currency_id() == Some(sol_usdc.id.as_str()))
    );

    // Creation window, inclusive at both ends: minutes 3..=7.
    let (lo, hi) = (t0().plus_seconds(180), t0().plus_seconds(420));
    let window_only = list(OrderFilter::default(), Some(lo), Some(hi)).await;
    assert_eq!(
        ids(&window_only.data),
        expect(&|o| o.created_at >= lo && o.created_at <= hi)
    );
    assert_eq!(window_only.data.len(), 5);

    // Everything at once.
    let combined = list(
        OrderFilter {
            status: Some(OrderStatus::Pending),
            mode: Some(OrderMode::Deposit),
            chain_id: Some(ChainId::new(8453).unwrap()),
            currency: Some(support::base_usdc().id),
        },
        Some(t0()),
        Some(hi),
    )
    .await;
    assert_eq!(
        ids(&combined.data),
        expect(&|o| o.status == OrderStatus::Pending
            && o.mode == OrderMode::Deposit
            && o.currency_id() == Some(support::base_usdc().id.as_str())
            && o.created_at <= hi)
    );
    assert!(!combined.data.is_empty());

    // Isolation: live mode and the other organization see only their own.
    let live = store
        .list_orders(&window(&org, KeyMode::Live, 100), &OrderFilter::default())
        .await
        .unwrap();
    assert_eq!(live.data.len(), 1);
    assert!(live.data[0].livemode);
    let theirs = store
        .list_orders(&window(&other, KeyMode::Test, 100), &OrderFilter::default())
        .await
        .unwrap();
    assert_eq!(theirs.data.len(), 1);
    assert_eq!(theirs.data[0].organization_id, other);
}

async fn pagination_across_pages(store: &dyn Store) {
    let org = OrgId::generate();
    let mut created = Vec::new();
    for i in 0..25i64 {
        let mut o = order(&org, false, t0().plus_seconds(i));
        if i % 2 == 1 {
            o.mode = OrderMode::Sale;
        }
        created.push(create(store, o).await);
    }
    created.reverse();

    async fn walk(store: &dyn Store, w: ListWindow, f: OrderFilter) -> Vec<Vec<PayOrder>> {
        let mut pages = Vec::new();
        let mut w = w;
        loop {
            let page = store.list_orders(&w, &f).await.unwrap();
            let more = page.has_more;
            assert_eq!(more, page.next_cursor.is_some());
            let cursor = page.next_cursor.clone();
            pages.push(page.data);
            if !more {
                return pages;
            }
            w.cursor = Some(Cursor::decode(&cursor.unwrap()).unwrap());
            assert!(pages.len() < 50, "pagination does not terminate");
        }
    }

    let pages = walk(
        store,
        window(&org, KeyMode::Test, 7),
        OrderFilter::default(),
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![7, 7, 7, 4]
    );
    let flat: Vec<_> = pages.concat();
    assert_eq!(flat, created, "newest first, nothing skipped or repeated");

    // Exactly a multiple of the page size: the last full page says there is no more.
    let pages = walk(
        store,
        window(&org, KeyMode::Test, 5),
        OrderFilter::default(),
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![5, 5, 5, 5, 5]
    );

    // With a filter, across pages (the DynamoDB adapter filters after reading).
    let sales: Vec<_> = created
        .iter()
        .filter(|o| o.mode == OrderMode::Sale)
        .cloned()
        .collect();
    let pages = walk(
        store,
        window(&org, KeyMode::Test, 4),
        OrderFilter {
            mode: Some(OrderMode::Sale),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![4, 4, 4]
    );
    assert_eq!(pages.concat(), sales);

    // A window plus a cursor.
    let w = ListWindow {
        created_gte: Some(t0().plus_seconds(5)),
        created_lte: Some(t0().plus_seconds(14)),
        ..window(&org, KeyMode::Test, 3)
    };
    let pages = walk(store, w, OrderFilter::default()).await;
    let got: Vec<_> = pages.concat().iter().map(|o| o.created_at).collect();
    let want: Vec<_> = (5..=14).rev().map(|i| t0().plus_seconds(i)).collect();
    assert_eq!(got, want);
}

/// A filter that matches little (here one order under 260 others) does not read the whole
/// partition in one request: a page stops after a bounded read (10 reads of 25 items for a
/// page of one), answering what it found (nothing) with a cursor after the last item read,
/// and the next page goes on from there. Both adapters stop at the same item.
async fn a_filter_matching_little_reads_a_bounded_span_per_page(store: &dyn Store) {
    let org = OrgId::generate();
    let mut sale = order(&org, false, t0());
    sale.mode = OrderMode::Sale;
    let sale = create(store, sale).await;
    let others: Vec<_> = (1..=260i64)
        .map(|i| order(&org, false, t0().plus_seconds(i)))
        .collect();
    for chunk in others.chunks(20) {
        futures::future::join_all(chunk.iter().map(|o| create(store, o.clone()))).await;
    }
    let sales = OrderFilter {
        mode: Some(OrderMode::Sale),
        ..Default::default()
    };
    let mut w = window(&org, KeyMode::Test, 1);
    let first = store.list_orders(&w, &sales).await.unwrap();
    assert!(first.data.is_empty());
    assert!(first.has_more);
    w.cursor = Some(Cursor::decode(first.next_cursor.as_deref().unwrap()).unwrap());
    let second = store.list_orders(&w, &sales).await.unwrap();
    assert_eq!(second.data, vec![sale]);
    assert!(!second.has_more);
    // Without a filter, pages are full as ever.
    let all = store
        .list_orders(&window(&org, KeyMode::Test, 100), &OrderFilter::default())
        .await
        .unwrap();
    assert_eq!(all.data.len(), 100);
}

/// A cursor from another window (older than `created_gte`, newer than `created_lte`) and
/// an empty window page like any other: an empty page, or the window from its top.
async fn cursor_outside_the_window(store: &dyn Store) {
    let org = OrgId::generate();
    for i in 0..10i64 {
        create(store, order(&org, false, t0().plus_seconds(i * 60))).await;
        let o = create(store, order(&org, false, t0().plus_seconds(i * 60 + 1))).await;
        let u = o
            .transition(
                t0().plus_seconds(i * 60 + 2),
                OrderStatus::Cancelled,
                |_| {},
            )
            .unwrap();
        store.update_order(&u).await.unwrap();
    }
    // Two orders a minute; after 5 of the unbounded list, the cursor is the order of 7:01.
    let first = store
        .list_orders(&window(&org, KeyMode::Test, 5), &OrderFilter::default())
        .await
        .unwrap();
    let cursor = Cursor::decode(first.next_cursor.as_deref().unwrap()).unwrap();
    let events = store
        .list_events(&window(&org, KeyMode::Test, 5), &EventFilter::default())
        .await
        .unwrap();
    let event_cursor = Cursor::decode(events.next_cursor.as_deref().unwrap()).unwrap();
    let at = |i: i64| Some(t0().plus_seconds(i * 60));

    let cases: [(&str, Option<Timestamp>, Option<Timestamp>, usize); 4] = [
        ("cursor older than created_gte", at(8), None, 0),
        ("cursor newer than created_lte", at(1), at(4), 7),
        ("cursor inside the window", at(5), at(9), 5),
        ("created_gte after created_lte", at(9), at(1), 0),
    ];
    for (what, gte, lte, want) in cases {
        let w = ListWindow {
            created_gte: gte,
            created_lte: lte,
            cursor: Some(cursor.clone()),
            ..window(&org, KeyMode::Test, 100)
        };
        let page = store
            .list_orders(&w, &OrderFilter::default())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(page.data.len(), want, "{what}");
        assert!(!page.has_more && page.next_cursor.is_none(), "{what}");
        assert!(
            page.data
                .iter()
                .all(|o| gte.is_none_or(|t| o.created_at >= t)
                    && lte.is_none_or(|t| o.created_at <= t)),
            "{what}"
        );
        let w = ListWindow {
            cursor: Some(event_cursor.clone()),
            ..w
        };
        store
            .list_events(&w, &EventFilter::default())
            .await
            .unwrap_or_else(|e| panic!("events, {what}: {e}"));
    }
    // An events cursor older than the window (as list-events' 30 days make it).
    let w = ListWindow {
        created_gte: Some(t0().plus_seconds(86_400)),
        cursor: Some(event_cursor),
        ..window(&org, KeyMode::Test, 100)
    };
    let page = store
        .list_events(&w, &EventFilter::default())
        .await
        .unwrap();
    assert!(page.data.is_empty() && !page.has_more);
}

async fn concurrent_conflicting_updates(store: &dyn Store) {
    let org = OrgId::generate();
    for round in 0..5 {
        let o = create(store, order(&org, false, t0().plus_seconds(round))).await;
        let now = t0().plus_seconds(100 + round);
        let a = o.transition(now, OrderStatus::Cancelled, |_| {}).unwrap();
        let b = o
            .transition(now, OrderStatus::AwaitingPayment, |_| {})
            .unwrap();
        let (ra, rb) = tokio::join!(store.update_order(&a), store.update_order(&b));
        let (winner, loser, loser_result) = match (&ra, &rb) {
            (Ok(()), Err(_)) => (&a, &b, rb),
            (Err(_), Ok(())) => (&b, &a, ra),
            other => panic!("exactly one update must win, got {other:?}"),
        };
        assert!(
            matches!(
                loser_result,
                Err(StoreError::VersionConflict { expected: 1 })
            ),
            "{loser_result:?}"
        );
        let stored = store.get_order(&o.id).await.unwrap().unwrap();
        assert_eq!(&stored, winner.order());
        assert_eq!(stored.version, 2);
        let winner_event = winner.event().unwrap();
        let loser_event = loser.event().unwrap();
        assert!(store.get_event(&winner_event.id).await.unwrap().is_some());
        assert!(store.get_event(&loser_event.id).await.unwrap().is_none());
    }
}

async fn same_tx_claimed_by_two_orders(store: &dyn Store) {
    let org = OrgId::generate();
    let awaiting = |o: PayOrder| async move {
        let o = create(store, o).await;
        let u = o
            .transition(t0(), OrderStatus::AwaitingPayment, |_| {})
            .unwrap();
        store.update_order(&u).await.unwrap();
        u.order().clone()
    };
    let pay = |o: &PayOrder, claim: &TxClaim| {
        o.transition(
            t0().plus_seconds(500),
            OrderStatus::AwaitingConfirmation,
            |_| {},
        )
        .unwrap()
        .with_tx_claim(claim.clone())
    };
    for round in 0..5i64 {
        let mut orders = Vec::new();
        for k in 0..2 {
            orders.push(awaiting(order(&org, false, t0().plus_seconds(round * 10 + k))).await);
        }
        let claim = TxClaim::for_order(
            &orders[0],
            ChainId::new(8453).unwrap(),
            &format!("0x{:064x}", 0xabc0 + round),
            3,
        );
        let (a, b) = (pay(&orders[0], &claim), pay(&orders[1], &claim));
        let (ra, rb) = tokio::join!(store.update_order(&a), store.update_order(&b));
        let (winner, loser, loser_result) = match (&ra, &rb) {
            (Ok(()), Err(_)) => (&a, &b, rb),
            (Err(_), Ok(())) => (&b, &a, ra),
            other => panic!("exactly one order may take the transfer, got {other:?}"),
        };
        match loser_result {
            Err(StoreError::TxAlreadyClaimed { claim: c }) => assert_eq!(c, claim.key()),
            other => panic!("expected TxAlreadyClaimed, got {other:?}"),
        }
        assert_eq!(
            store.get_tx_claim(&claim.key()).await.unwrap(),
            Some(winner.order().id.clone())
        );
        // The losing order is exactly as it was, and its event was never written.
        let lost = store.get_order(&loser.order().id).await.unwrap().unwrap();
        assert_eq!(lost.status, OrderStatus::AwaitingPayment);
        assert_eq!(lost.version, 2);
        assert!(
            store
                .get_event(&loser.event().unwrap().id)
                .await
                .unwrap()
                .is_none()
        );
        // The winner claims the same transfer again (a reorged transfer re-recorded):
        // accepted, and it still owns it.
        let won = store.get_order(&winner.order().id).await.unwrap().unwrap();
        let again = won
            .edit(t0().plus_seconds(600), |_| {})
            .unwrap()
            .with_tx_claim(claim.clone());
        store.update_order(&again).await.unwrap();
        assert_eq!(
            store.get_tx_claim(&claim.key()).await.unwrap(),
            Some(won.id.clone())
        );
        // Another transfer of the same transaction is free.
        let other_position = TxClaim {
            position: 4,
            ..claim.clone()
        };
        let u = pay(&lost, &other_position);
        store.update_order(&u).await.unwrap();
        // Another organization, or the live mode of the same one, claims the very same
        // transfer for its own order: its claim is its own and blocks nobody.
        for o in [
            order(&OrgId::generate(), false, t0()),
            order(&org, true, t0()),
        ] {
            let o = awaiting(o).await;
            let theirs = TxClaim::for_order(&o, claim.chain_id, &claim.tx_hash, claim.position);
            assert_ne!(theirs.key(), claim.key());
            store.update_order(&pay(&o, &theirs)).await.unwrap();
            assert_eq!(
                store.get_tx_claim(&theirs.key()).await.unwrap(),
                Some(o.id.clone())
            );
        }
        assert_eq!(
            store.get_tx_claim(&claim.key()).await.unwrap(),
            Some(won.id.clone())
        );
    }
    assert_eq!(
        store
            .get_tx_claim("org#test#8453#0xnothing#0")
            .await
            .unwrap(),
        None
    );
}

/// The hold a request got for a key it took; any other answer fails the test.
fn started(b: IdempotencyBegin) -> IdempotencyHold {
    match b {
        IdempotencyBegin::Started(hold) => hold,
        other => panic!("expected the key to be taken, got {other:?}"),
    }
}

async fn idempotency_life_cycle(store: &dyn Store) {
    let scope = IdempotencyScope {
        organization_id: OrgId::generate(),
        mode: KeyMode::Test,
        key: "order-789-attempt-1".into(),
    };
    let now = t0();
    let resp = StoredResponse {
        status: 201,
        body: r#"{"id":"po_x"}"#.into(),
    };
    use IdempotencyBegin::*;
    let begin = async |fp: &str, at| store.idempotency_begin(&scope, fp, at).await.unwrap();

    let first = started(begin("fp-a", now).await);
    assert_eq!(first.locked_until, now.unix() + IDEMPOTENCY_LOCK_SECS);
    assert_eq!(begin("fp-a", now).await, InFlight);
    assert_eq!(begin("fp-b", now).await, Mismatch);

    // Released (a retryable failure): the next attempt starts afresh.
    store.idempotency_release(&first).await.unwrap();
    let hold = started(begin("fp-a", now).await);

    assert!(store.idempotency_complete(&hold, &resp, now).await.unwrap());
    assert_eq!(
        begin("fp-a", now.plus_seconds(10)).await,
        Replay(resp.clone())
    );
    assert_eq!(begin("fp-b", now.plus_seconds(10)).await, Mismatch);
    // Releasing or completing again a completed record does nothing.
    store.idempotency_release(&hold).await.unwrap();
    let other = StoredResponse {
        status: 200,
        body: "{}".into(),
    };
    assert!(
        !store
            .idempotency_complete(&hold, &other, now)
            .await
            .unwrap()
    );
    assert_eq!(
        begin("fp-a", now.plus_seconds(20)).await,
        Replay(resp.clone())
    );
    // Still kept just before 24 h; gone after, whatever TTL did or did not delete.
    assert_eq!(
        begin("fp-a", now.plus_seconds(IDEMPOTENCY_TTL_SECS - 1)).await,
        Replay(resp.clone())
    );
    let later = now.plus_seconds(IDEMPOTENCY_TTL_SECS + 5);
    started(begin("fp-b", later).await);

    // An in-flight lock left by a crashed request can be taken over once it lapses.
    assert_eq!(begin("fp-b", later).await, InFlight);
    let lapsed = later.plus_seconds(IDEMPOTENCY_LOCK_SECS + 1);
    started(begin("fp-b", lapsed).await);

    // Keys are scoped per organization and mode.
    let live = IdempotencyScope {
        mode: KeyMode::Live,
        ..scope.clone()
    };
    started(store.idempotency_begin(&live, "fp-z", now).await.unwrap());
    let other = IdempotencyScope {
        organization_id: OrgId::generate(),
        ..scope.clone()
    };
    started(store.idempotency_begin(&other, "fp-z", now).await.unwrap());
}

/// The key a request took, and the answer it is to keep, for the conformance tests of
/// changes that complete their key.
async fn take_key(
    store: &dyn Store,
    org: &OrgId,
    key: &str,
    fp: &str,
    body: &str,
    at: Timestamp,
) -> IdempotencyCompletion {
    let scope = IdempotencyScope {
        organization_id: org.clone(),
        mode: KeyMode::Test,
        key: key.into(),
    };
    IdempotencyCompletion {
        hold: started(store.idempotency_begin(&scope, fp, at).await.unwrap()),
        response: StoredResponse {
            status: 201,
            body: body.into(),
        },
        at,
    }
}

/// What the key of `c` answers a retry of its own request at `at`.
async fn retry(store: &dyn Store, c: &IdempotencyCompletion, at: Timestamp) -> IdempotencyBegin {
    store
        .idempotency_begin(&c.hold.scope, &c.hold.fingerprint, at)
        .await
        .unwrap()
}

/// A change that carries its request's idempotency completion writes both or neither: a
/// refused write leaves the key in flight (a retry runs the request), a written one leaves
/// it answering the change (a retry replays it, even once the lock has run out).
async fn idempotency_kept_by_the_change_or_not_at_all(store: &dyn Store) {
    use IdempotencyBegin::*;
    let org = OrgId::generate();
    let now = t0();
    let later = now.plus_seconds(IDEMPOTENCY_LOCK_SECS + 1);

    // A create: taken, then written with its order.
    let c = take_key(
        store,
        &org,
        "create-1",
        "fp-create",
        r#"{"id":"first"}"#,
        now,
    )
    .await;
    let mut first = order(&org, false, now);
    first.nonce = Some("1640995200999999".into());
    let new = NewOrder::new(first.clone())
        .unwrap()
        .completing(Some(c.clone()));
    store.create_order(&new).await.unwrap();
    assert_eq!(retry(store, &c, later).await, Replay(c.response.clone()));

    // A create refused (its nonce is taken): no order, and its key stays in flight, so that
    // once the lock runs out a retry runs again.
    let refused = take_key(store, &org, "create-2", "fp-refused", r#"{"id":"2"}"#, now).await;
    let mut second = order(&org, false, now.plus_seconds(1));
    second.nonce = first.nonce.clone();
    let new = NewOrder::new(second.clone())
        .unwrap()
        .completing(Some(refused.clone()));
    assert!(matches!(
        store.create_order(&new).await,
        Err(StoreError::DuplicateNonce)
    ));
    assert_eq!(store.get_order(&second.id).await.unwrap(), None);
    assert_eq!(retry(store, &refused, now).await, InFlight);
    started(retry(store, &refused, later).await);

    // An update: the one that loses on its version keeps nothing, the winner keeps both.
    let a = first
        .transition(now.plus_seconds(2), OrderStatus::Cancelled, |_| {})
        .unwrap();
    let b = first
        .transition(now.plus_seconds(2), OrderStatus::AwaitingPayment, |_| {})
        .unwrap();
    let ca = take_key(
        store,
        &org,
        "cancel-1",
        "fp-cancel",
        r#"{"s":"CANCELLED"}"#,
        now,
    )
    .await;
    let cb = take_key(store, &org, "pay-1", "fp-pay", r#"{"s":"AWAITING"}"#, now).await;
    store
        .update_order(&a.completing(Some(ca.clone())))
        .await
        .unwrap();
    assert!(matches!(
        store.update_order(&b.completing(Some(cb.clone()))).await,
        Err(StoreError::VersionConflict { expected: 1 })
    ));
    assert_eq!(retry(store, &ca, later).await, Replay(ca.response.clone()));
    assert_eq!(retry(store, &cb, now).await, InFlight);
    assert_eq!(
        store.get_order(&first.id).await.unwrap().unwrap().status,
        OrderStatus::Cancelled
    );
}

/// A request that outlived its key's lock, whose retry took the key over, keeps nothing:
/// its change is refused whole (no second order, no second payment recorded), and neither
/// its completion nor its release touches the retry's key. The retry's own change goes on.
async fn idempotency_taken_over_keeps_nothing(store: &dyn Store) {
    use IdempotencyBegin::*;
    let org = OrgId::generate();
    let now = t0();
    let late = now.plus_seconds(IDEMPOTENCY_LOCK_SECS + 1);
    let body = r#"{"id":"po"}"#;

    // A create stalled past its lock; its retry (the same request) takes the key over.
    let stalled = take_key(store, &org, "create", "fp-create", body, now).await;
    let retried = take_key(store, &org, "create", "fp-create", body, late).await;
    assert_ne!(stalled.hold, retried.hold);
    let mine = order(&org, false, now);
    let new = NewOrder::new(mine.clone())
        .unwrap()
        .completing(Some(stalled.clone()));
    assert!(matches!(
        store.create_order(&new).await,
        Err(StoreError::IdempotencyKeyTakenOver)
    ));
    assert_eq!(store.get_order(&mine.id).await.unwrap(), None);
    assert_eq!(store.get_event(&new.event().id).await.unwrap(), None);
    // Its answer is not kept and its release frees nothing: the retry still holds the key.
    let answer = StoredResponse {
        status: 201,
        body: "{}".into(),
    };
    assert!(
        !store
            .idempotency_complete(&stalled.hold, &answer, late)
            .await
            .unwrap()
    );
    store.idempotency_release(&stalled.hold).await.unwrap();
    assert_eq!(retry(store, &retried, late).await, InFlight);
    // The retry's order is written with its key.
    let theirs = order(&org, false, late);
    let new = NewOrder::new(theirs.clone())
        .unwrap()
        .completing(Some(retried.clone()));
    store.create_order(&new).await.unwrap();
    assert_eq!(
        retry(store, &retried, late).await,
        Replay(retried.response.clone())
    );
    // The stalled request, finishing after its retry completed, changes nothing either.
    store.idempotency_release(&stalled.hold).await.unwrap();
    assert!(
        !store
            .idempotency_complete(&stalled.hold, &answer, late)
            .await
            .unwrap()
    );
    assert_eq!(
        retry(store, &retried, late).await,
        Replay(retried.response.clone())
    );

    // An update that claims a transfer (a payment recorded) under a key taken over: neither
    // the order, its event nor the claim is written; under its own key it is.
    let awaiting = async |at: Timestamp| {
        let o = create(store, order(&org, false, at)).await;
        let u = o
            .transition(at, OrderStatus::AwaitingPayment, |_| {})
            .unwrap();
        store.update_order(&u).await.unwrap();
        u.order().clone()
    };
    let stored = awaiting(now.plus_seconds(5)).await;
    let claim = TxClaim::for_order(
        &stored,
        ChainId::new(8453).unwrap(),
        &format!("0x{:064x}", 0xfeed),
        0,
    );
    let pay = stored
        .transition(
            now.plus_seconds(6),
            OrderStatus::AwaitingConfirmation,
            |_| {},
        )
        .unwrap()
        .with_tx_claim(claim.clone());
    let stalled = take_key(store, &org, "pay", "fp-pay", body, now).await;
    let retried = take_key(store, &org, "pay", "fp-pay", body, late).await;
    assert!(matches!(
        store
            .update_order(&pay.clone().completing(Some(stalled.clone())))
            .await,
        Err(StoreError::IdempotencyKeyTakenOver)
    ));
    assert_eq!(store.get_tx_claim(&claim.key()).await.unwrap(), None);
    assert_eq!(
        store.get_order(&stored.id).await.unwrap().unwrap().version,
        stored.version
    );
    assert_eq!(
        store.get_event(&pay.event().unwrap().id).await.unwrap(),
        None
    );
    assert_eq!(retry(store, &retried, late).await, InFlight);
    store
        .update_order(&pay.clone().completing(Some(retried.clone())))
        .await
        .unwrap();
    assert_eq!(
        store.get_tx_claim(&claim.key()).await.unwrap(),
        Some(stored.id.clone())
    );
    assert_eq!(
        retry(store, &retried, late).await,
        Replay(retried.response.clone())
    );

    // A transfer claimed by another order refuses the change and leaves its key in flight
    // (the claim's refusal is reported as such, not as the key's).
    let other = awaiting(now.plus_seconds(7)).await;
    let steal = other
        .transition(
            now.plus_seconds(8),
            OrderStatus::AwaitingConfirmation,
            |_| {},
        )
        .unwrap()
        .with_tx_claim(TxClaim::for_order(
            &other,
            claim.chain_id,
            &claim.tx_hash,
            0,
        ));
    let c = take_key(store, &org, "steal", "fp-steal", body, now).await;
    match store.update_order(&steal.completing(Some(c.clone()))).await {
        Err(StoreError::TxAlreadyClaimed { .. }) => {}
        other => panic!("expected TxAlreadyClaimed, got {other:?}"),
    }
    assert_eq!(retry(store, &c, now).await, InFlight);
    assert_eq!(
        store.get_tx_claim(&claim.key()).await.unwrap(),
        Some(stored.id.clone())
    );
}

/// Creating a webhook endpoint or an API key, or rolling a key, completes the request's
/// idempotency key in the same write: kept together (a retry after a crash replays the
/// answer, never makes a second endpoint or key), refused together (a record already there, or a key a retry
/// took over: nothing written, the key as it was).
async fn endpoints_and_keys_keep_their_idempotency_key(store: &dyn Store) {
    use IdempotencyBegin::*;
    let org = OrgId::generate();
    let now = t0();
    let later = now.plus_seconds(IDEMPOTENCY_LOCK_SECS + 1);
    let made = |at| {
        [
            Created::Endpoint(endpoint(&org, false, at)),
            Created::Key(api_key(&org, KeyMode::Test, at)),
            Created::Roll {
                from: Box::new(api_key(&org, KeyMode::Test, at)),
                to: Box::new(api_key(&org, KeyMode::Test, at)),
                until: at.plus_seconds(3600),
            },
        ]
    };
    for (first, late) in made(now).into_iter().zip(made(now.plus_seconds(1))) {
        let name = first.name();
        let key = |n: u8| format!("{name}-{n}");
        // Written with its key: replayed once the lock has run out.
        let c = take_key(store, &org, &key(1), &key(1), r#"{"id":"1"}"#, now).await;
        first.create(store, Some(&c)).await.unwrap();
        assert!(first.stored(store).await, "{name}");
        assert_eq!(retry(store, &c, later).await, Replay(c.response.clone()));
        // The same record again under another key: refused, that key still in flight.
        let again = take_key(store, &org, &key(2), &key(2), "{}", now).await;
        assert!(matches!(
            first.create(store, Some(&again)).await,
            Err(StoreError::AlreadyExists)
        ));
        assert_eq!(retry(store, &again, now).await, InFlight);
        // A request that outlived its lock: nothing written, and its retry still holds
        // the key.
        let stalled = take_key(store, &org, &key(3), &key(3), "{}", now).await;
        let retried = take_key(store, &org, &key(3), &key(3), "{}", later).await;
        assert!(matches!(
            late.create(store, Some(&stalled)).await,
            Err(StoreError::IdempotencyKeyTakenOver)
        ));
        assert!(!late.stored(store).await, "{name}");
        assert_eq!(retry(store, &retried, later).await, InFlight);
    }
}

/// Changing a webhook endpoint (a secret rotated) completes the request's idempotency key
/// in the same write: kept together (a retry once the lock has run out replays the change,
/// never rotates again), refused together (a stale version, a gone endpoint, or a key a
/// retry took over: nothing written, no event, the key as it was).
async fn an_endpoint_update_keeps_its_idempotency_key(store: &dyn Store) {
    use IdempotencyBegin::*;
    let org = OrgId::generate();
    let now = t0();
    let later = now.plus_seconds(IDEMPOTENCY_LOCK_SECS + 1);
    let e = endpoint(&org, false, now);
    store.create_endpoint(&e, None).await.unwrap();
    let changed = |from: &WebhookEndpoint, what: &str| {
        let mut next = from.next_version();
        next.description = Some(what.into());
        next.secrets.push(next.secrets[0].clone());
        next
    };
    let stored = async || store.get_endpoint(&org, &e.id).await.unwrap().unwrap();

    // Written with its key: replayed once the lock has run out.
    let c = take_key(store, &org, "rotate-1", "fp-1", r#"{"secret":"s1"}"#, now).await;
    let first = changed(&e, "first");
    store
        .update_endpoint(&first, 1, None, Some(&c))
        .await
        .unwrap();
    assert_eq!(stored().await, first);
    assert_eq!(retry(store, &c, later).await, Replay(c.response.clone()));

    // A stale version: nothing written, its key still in flight.
    let stale = take_key(store, &org, "rotate-2", "fp-2", "{}", now).await;
    assert!(matches!(
        store
            .update_endpoint(&changed(&e, "stale"), 1, None, Some(&stale))
            .await,
        Err(StoreError::VersionConflict { expected: 1 })
    ));
    assert_eq!(stored().await, first);
    assert_eq!(retry(store, &stale, now).await, InFlight);

    // A request that outlived its lock: nothing written (its event neither), and its retry
    // still holds the key; the retry's own change goes on.
    let stalled = take_key(store, &org, "rotate-3", "fp-3", "{}", now).await;
    let retried = take_key(store, &org, "rotate-3", "fp-3", r#"{"secret":"s3"}"#, later).await;
    let second = changed(&first, "second");
    let ev = Event::for_endpoint(&second, EventType::WebhookEndpointDisabled, now);
    assert!(matches!(
        store
            .update_endpoint(&second, 2, Some(&ev), Some(&stalled))
            .await,
        Err(StoreError::IdempotencyKeyTakenOver)
    ));
    assert_eq!(stored().await, first);
    assert_eq!(store.get_event(&ev.id).await.unwrap(), None);
    assert_eq!(retry(store, &retried, later).await, InFlight);
    store
        .update_endpoint(&second, 2, Some(&ev), Some(&retried))
        .await
        .unwrap();
    assert_eq!(stored().await, second);
    assert!(store.get_event(&ev.id).await.unwrap().is_some());
    assert_eq!(
        retry(store, &retried, later).await,
        Replay(retried.response.clone())
    );

    // An endpoint that is gone: NotFound, and its key still in flight.
    assert!(store.delete_endpoint(&org, &e.id).await.unwrap());
    let gone = take_key(store, &org, "rotate-4", "fp-4", "{}", now).await;
    assert!(matches!(
        store
            .update_endpoint(&changed(&second, "gone"), 3, None, Some(&gone))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(retry(store, &gone, now).await, InFlight);
}

/// An organization has at most `MAX_WEBHOOK_ENDPOINTS` endpoints per mode (disabled ones
/// too): the next is refused with nothing written and its idempotency key left in flight,
/// even when several are created at once; deleting one makes room. The other mode and other
/// organizations have their own.
async fn endpoints_are_capped_per_organization_and_mode(store: &dyn Store) {
    use IdempotencyBegin::*;
    let org = OrgId::generate();
    let at = |n: i64| t0().plus_seconds(n);
    let mut made = Vec::new();
    for n in 0..MAX_WEBHOOK_ENDPOINTS - 3 {
        let mut e = endpoint(&org, false, at(n as i64));
        e.enabled = n % 2 == 0;
        store.create_endpoint(&e, None).await.unwrap();
        made.push(e);
    }
    // Eight at once for the last three places: three are made, five refused.
    let racing: Vec<WebhookEndpoint> = (0..8).map(|n| endpoint(&org, false, at(100 + n))).collect();
    let outcomes =
        futures::future::join_all(racing.iter().map(|e| store.create_endpoint(e, None))).await;
    let (mut won, mut refused) = (0, 0);
    for (e, outcome) in racing.iter().zip(outcomes) {
        let stored = store.get_endpoint(&org, &e.id).await.unwrap();
        match outcome {
            Ok(()) => {
                won += 1;
                assert_eq!(stored.as_ref(), Some(e));
                made.push(e.clone());
            }
            Err(StoreError::LimitReached { limit }) => {
                refused += 1;
                assert_eq!(limit, MAX_WEBHOOK_ENDPOINTS);
                assert_eq!(stored, None, "a refused endpoint is not written");
            }
            Err(other) => panic!("a create at the limit failed with {other:?}"),
        }
    }
    assert_eq!((won, refused), (3, 5));
    let listed = store.list_endpoints(&org, KeyMode::Test).await.unwrap();
    assert_eq!(listed.len(), MAX_WEBHOOK_ENDPOINTS);

    // The next one, under an idempotency key: refused, and the key not completed.
    let next = endpoint(&org, false, at(200));
    let c = take_key(store, &org, "create-17", "fp-17", r#"{"id":"17"}"#, at(200)).await;
    assert!(matches!(
        store.create_endpoint(&next, Some(&c)).await,
        Err(StoreError::LimitReached {
            limit: MAX_WEBHOOK_ENDPOINTS
        })
    ));
    assert_eq!(store.get_endpoint(&org, &next.id).await.unwrap(), None);
    assert_eq!(retry(store, &c, at(200)).await, InFlight);

    // The live mode and another organization have their own.
    store
        .create_endpoint(&endpoint(&org, true, at(201)), None)
        .await
        .unwrap();
    store
        .create_endpoint(&endpoint(&OrgId::generate(), false, at(202)), None)
        .await
        .unwrap();

    // Deleting one makes room for one.
    assert!(store.delete_endpoint(&org, &made[4].id).await.unwrap());
    store.create_endpoint(&next, Some(&c)).await.unwrap();
    assert_eq!(retry(store, &c, at(300)).await, Replay(c.response.clone()));
    assert!(matches!(
        store
            .create_endpoint(&endpoint(&org, false, at(301)), None)
            .await,
        Err(StoreError::LimitReached { .. })
    ));
}

/// An organization has at most `MAX_ACTIVE_API_KEYS` active keys per mode: revoked and
/// expired keys do not count, a rolled key counts until its grace period ends. The next
/// key (or a roll that keeps its old key working) is refused with nothing written, even
/// when several are created at once; a roll whose old key stops at once is not, and
/// revoking one makes room.
async fn active_keys_are_capped_per_organization_and_mode(store: &dyn Store) {
    let org = OrgId::generate();
    let at = |n: i64| t0().plus_seconds(n);
    let now = at(1000);
    // Revoked and expired keys, which do not count.
    let mut revoked = api_key(&org, KeyMode::Test, at(0));
    revoked.revoked_at = Some(at(1));
    let mut expired = api_key(&org, KeyMode::Test, at(0));
    expired.expires_at = Some(at(2));
    for k in [&revoked, &expired] {
        store.create_api_key(k, None).await.unwrap();
    }
    let mut active = Vec::new();
    for n in 0..MAX_ACTIVE_API_KEYS - 2 {
        let k = api_key(&org, KeyMode::Test, at(10 + n as i64));
        store.create_api_key(&k, None).await.unwrap();
        active.push(k);
    }
    // Five at once for the last two places.
    let racing: Vec<ApiKey> = (0..5).map(|_| api_key(&org, KeyMode::Test, now)).collect();
    let outcomes =
        futures::future::join_all(racing.iter().map(|k| store.create_api_key(k, None))).await;
    let (mut won, mut refused) = (0, 0);
    for (k, outcome) in racing.iter().zip(outcomes) {
        let (by_id, by_hash) = (
            store.get_api_key(&k.id).await.unwrap(),
            store.get_api_key_by_hash(&k.key_hash).await.unwrap(),
        );
        match outcome {
            Ok(()) => {
                won += 1;
                assert_eq!(by_id.as_ref(), Some(k));
                active.push(k.clone());
            }
            Err(StoreError::LimitReached { limit }) => {
                refused += 1;
                assert_eq!(limit, MAX_ACTIVE_API_KEYS);
                assert_eq!(
                    (by_id, by_hash),
                    (None, None),
                    "a refused key is not written"
                );
            }
            Err(other) => panic!("a create at the limit failed with {other:?}"),
        }
    }
    assert_eq!((won, refused), (2, 3));
    let listed = store.list_api_keys(&org, KeyMode::Test).await.unwrap();
    assert_eq!(
        listed.iter().filter(|k| k.is_active(now)).count(),
        MAX_ACTIVE_API_KEYS
    );

    // The next key is refused; so is a roll that keeps the old key working beside the new.
    let next = api_key(&org, KeyMode::Test, now);
    assert!(matches!(
        store.create_api_key(&next, None).await,
        Err(StoreError::LimitReached {
            limit: MAX_ACTIVE_API_KEYS
        })
    ));
    assert_eq!(store.get_api_key(&next.id).await.unwrap(), None);
    let old = &active[0];
    let rolled_to = api_key(&org, KeyMode::Test, now);
    assert!(matches!(
        store
            .roll_api_key(old, &rolled_to, now.plus_seconds(3600), None)
            .await,
        Err(StoreError::LimitReached { .. })
    ));
    assert_eq!(store.get_api_key(&rolled_to.id).await.unwrap(), None);
    assert_eq!(
        store.get_api_key(&old.id).await.unwrap().as_ref(),
        Some(old)
    );
    // A roll whose old key stops at once replaces it.
    store
        .roll_api_key(old, &rolled_to, now, None)
        .await
        .unwrap();
    assert!(matches!(
        store.create_api_key(&next, None).await,
        Err(StoreError::LimitReached { .. })
    ));

    // The live mode and another organization have their own.
    store
        .create_api_key(&api_key(&org, KeyMode::Live, now), None)
        .await
        .unwrap();
    store
        .create_api_key(&api_key(&OrgId::generate(), KeyMode::Test, now), None)
        .await
        .unwrap();

    // Revoking one makes room for one.
    store.revoke_api_key(&active[1].id, now).await.unwrap();
    store.create_api_key(&next, None).await.unwrap();
    assert!(matches!(
        store
            .create_api_key(&api_key(&org, KeyMode::Test, now), None)
            .await,
        Err(StoreError::LimitReached { .. })
    ));
}

/// A record whose creation can complete an idempotency key.
enum Created {
    Endpoint(WebhookEndpoint),
    Key(ApiKey),
    /// `from` rolled to `to`: the new key and `from`'s expiry.
    Roll {
        from: Box<ApiKey>,
        to: Box<ApiKey>,
        until: Timestamp,
    },
}

impl Created {
    fn name(&self) -> &'static str {
        match self {
            Created::Endpoint(_) => "endpoint",
            Created::Key(_) => "key",
            Created::Roll { .. } => "roll",
        }
    }

    async fn create(
        &self,
        store: &dyn Store,
        c: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        match self {
            Created::Endpoint(e) => store.create_endpoint(e, c).await,
            Created::Key(k) => store.create_api_key(k, c).await,
            Created::Roll { from, to, until } => {
                // The key rolled, as it is now (made on first use).
                let old = match store.get_api_key(&from.id).await? {
                    Some(old) => old,
                    None => {
                        store.create_api_key(from, None).await?;
                        (**from).clone()
                    }
                };
                store.roll_api_key(&old, to, *until, c).await.map(drop)
            }
        }
    }

    /// Whether the store holds it, whole (an API key by id and by hash; a roll's new key
    /// and the old key's expiry, or neither).
    async fn stored(&self, store: &dyn Store) -> bool {
        match self {
            Created::Endpoint(e) => {
                let got = store.get_endpoint(&e.organization_id, &e.id).await.unwrap();
                got.is_some_and(|got| got == *e)
            }
            Created::Key(k) => {
                let by_id = store.get_api_key(&k.id).await.unwrap();
                let by_hash = store.get_api_key_by_hash(&k.key_hash).await.unwrap();
                assert_eq!(by_id, by_hash, "a key is stored whole or not at all");
                by_id.is_some_and(|got| got == *k)
            }
            Created::Roll { from, to, until } => {
                let new = Box::pin(Created::Key((**to).clone()).stored(store)).await;
                let old = store.get_api_key(&from.id).await.unwrap().unwrap();
                assert_eq!(
                    new,
                    old.expires_at == Some(*until),
                    "a roll is written whole or not at all"
                );
                new
            }
        }
    }
}

async fn duplicate_nonce(store: &dyn Store) {
    let org = OrgId::generate();
    let mut first = order(&org, false, t0());
    first.nonce = Some("1640995200123456".into());
    create(store, first.clone()).await;

    let mut second = order(&org, false, t0().plus_seconds(1));
    second.nonce = first.nonce.clone();
    let new = NewOrder::new(second.clone()).unwrap();
    assert!(matches!(
        store.create_order(&new).await,
        Err(StoreError::DuplicateNonce)
    ));
    // Nothing of the refused order was written.
    assert_eq!(store.get_order(&second.id).await.unwrap(), None);
    assert_eq!(store.get_event(&new.event().id).await.unwrap(), None);

    // The same nonce is free in the other mode and in another organization.
    let mut live = order(&org, true, t0().plus_seconds(2));
    live.nonce = first.nonce.clone();
    create(store, live).await;
    let mut theirs = order(&OrgId::generate(), false, t0().plus_seconds(3));
    theirs.nonce = first.nonce.clone();
    create(store, theirs).await;
}

async fn event_exists_iff_transition_written(store: &dyn Store) {
    let org = OrgId::generate();
    let o = create(store, order(&org, false, t0())).await;
    let to_awaiting = o
        .transition(t0().plus_seconds(1), OrderStatus::AwaitingPayment, |_| {})
        .unwrap();
    store.update_order(&to_awaiting).await.unwrap();
    let ev = store
        .get_event(&to_awaiting.event().unwrap().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event_type, EventType::OrderAwaitingPayment);
    assert_eq!(ev.data.object["status"], "AWAITING_PAYMENT");
    // A change announcing a fact beside its transition writes both events with it.
    let current = store.get_order(&o.id).await.unwrap().unwrap();
    let with_two = current
        .edit(t0().plus_seconds(1), |o| o.paid_over = true)
        .unwrap()
        .with_event(EventType::OrderPartialPayment)
        .and_event(EventType::OrderOverpaid)
        .and_event(EventType::OrderOverpaid);
    assert_eq!(with_two.events().len(), 2, "once per type");
    store.update_order(&with_two).await.unwrap();
    for e in with_two.events() {
        let stored = store.get_event(&e.id).await.unwrap().unwrap();
        assert_eq!(stored.event_type, e.event_type);
        assert_eq!(stored.data.object["paid_over"], true);
    }

    // A write from a stale read fails and leaves none of its events.
    let stale = o
        .transition(t0().plus_seconds(2), OrderStatus::Cancelled, |_| {})
        .unwrap()
        .and_event(EventType::OrderOverpaid);
    assert_eq!(stale.events().len(), 2);
    assert!(matches!(
        store.update_order(&stale).await,
        Err(StoreError::VersionConflict { expected: 1 })
    ));
    for e in stale.events() {
        assert!(store.get_event(&e.id).await.unwrap().is_none());
    }
    assert_eq!(
        store.get_order(&o.id).await.unwrap().unwrap().status,
        OrderStatus::AwaitingPayment
    );

    // A write that fails on its tx claim writes neither the order nor the event.
    let claim = TxClaim {
        organization_id: org.clone(),
        livemode: false,
        chain_id: ChainId::new(1).unwrap(),
        tx_hash: "0xfeed".into(),
        position: 0,
        refund: false,
    };
    let other = create(store, order(&org, false, t0().plus_seconds(3))).await;
    let other = {
        let u = other
            .transition(t0(), OrderStatus::AwaitingPayment, |_| {})
            .unwrap();
        store.update_order(&u).await.unwrap();
        u.order().clone()
    };
    let cur = store.get_order(&o.id).await.unwrap().unwrap();
    store
        .update_order(
            &other
                .transition(t0(), OrderStatus::PartialPayment, |_| {})
                .unwrap()
                .with_tx_claim(claim.clone()),
        )
        .await
        .unwrap();
    let blocked = cur
        .transition(t0(), OrderStatus::AwaitingConfirmation, |_| {})
        .unwrap()
        .with_tx_claim(claim);
    assert!(matches!(
        store.update_order(&blocked).await,
        Err(StoreError::TxAlreadyClaimed { .. })
    ));
    assert!(
        store
            .get_event(&blocked.event().unwrap().id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.get_order(&o.id).await.unwrap().unwrap(), cur);

    // A plain edit with no status change writes no event unless asked to.
    let edit = cur.edit(t0(), |o| o.paid_over = true).unwrap();
    assert!(edit.event().is_none());
    store.update_order(&edit).await.unwrap();
    let all = store
        .list_events(&window(&org, KeyMode::Test, 100), &EventFilter::default())
        .await
        .unwrap();
    // created ×2, awaiting_payment ×2, partial_payment ×2, overpaid ×1, and nothing else.
    assert_eq!(
        all.data.len(),
        7,
        "{:?}",
        all.data.iter().map(|e| e.event_type).collect::<Vec<_>>()
    );
}

async fn list_events_by_type_and_page(store: &dyn Store) {
    let org = OrgId::generate();
    for i in 0..9i64 {
        let o = create(store, order(&org, false, t0().plus_seconds(i * 10))).await;
        if i % 3 == 0 {
            let u = o
                .transition(
                    t0().plus_seconds(i * 10 + 1),
                    OrderStatus::Cancelled,
                    |_| {},
                )
                .unwrap();
            store.update_order(&u).await.unwrap();
        }
    }
    create(store, order(&org, true, t0())).await; // live: not visible in test mode

    let mut w = window(&org, KeyMode::Test, 4);
    let mut seen = Vec::new();
    loop {
        let page = store
            .list_events(&w, &EventFilter::default())
            .await
            .unwrap();
        seen.extend(page.data);
        match page.next_cursor {
            Some(c) => w.cursor = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert!(
        seen.windows(2).all(|p| p[0].created_at >= p[1].created_at),
        "newest first"
    );
    assert_eq!(
        seen.iter()
            .map(|e| e.id.clone())
            .collect::<HashSet<_>>()
            .len(),
        12
    );
    assert!(seen.iter().all(|e| !e.livemode && e.organization_id == org));

    let cancelled = store
        .list_events(
            &window(&org, KeyMode::Test, 100),
            &EventFilter {
                event_type: Some(EventType::OrderCancelled),
            },
        )
        .await
        .unwrap();
    assert_eq!(cancelled.data.len(), 3);
    assert!(
        cancelled
            .data
            .iter()
            .all(|e| e.event_type == EventType::OrderCancelled)
    );

    let recent = store
        .list_events(
            &ListWindow {
                created_gte: Some(t0().plus_seconds(60)),
                ..window(&org, KeyMode::Test, 100)
            },
            &EventFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        recent.data.len(),
        4,
        "created at 60, 70, 80 and the cancel at 61"
    );
}

async fn expirable_orders_by_expiry(store: &dyn Store) {
    // The expiry index is global: use a far-future clock so other tests' orders, which
    // share a DynamoDB table only within one test, cannot interfere.
    let org = OrgId::generate();
    let base = Timestamp::parse("2091-01-01T00:00:00Z").unwrap();
    let mut due = Vec::new();
    for i in 0..6i64 {
        let mut o = order(&org, false, base.plus_seconds(i));
        o.expires_at = base.plus_seconds(100 - i);
        due.push(create(store, o).await);
    }
    // Leaves the expirable set: cancelled.
    let u = due[0]
        .transition(base, OrderStatus::Cancelled, |_| {})
        .unwrap();
    store.update_order(&u).await.unwrap();
    // Stays in it: awaiting payment.
    let u = due[1]
        .transition(base, OrderStatus::AwaitingPayment, |_| {})
        .unwrap();
    store.update_order(&u).await.unwrap();
    // Not due yet.
    let mut later = order(&org, false, base);
    later.expires_at = base.plus_seconds(10_000);
    create(store, later).await;

    let now = base.plus_seconds(1000);
    let found = store.list_expirable_orders(now, 100).await.unwrap();
    let found_ids: Vec<_> = found.iter().map(|o| o.id.clone()).collect();
    let mut want: Vec<_> = due[1..].to_vec();
    want.sort_by_key(|o| o.expires_at);
    assert_eq!(
        found_ids,
        want.iter().map(|o| o.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(found[found.len() - 1].status, OrderStatus::AwaitingPayment);
    assert_eq!(store.list_expirable_orders(now, 2).await.unwrap().len(), 2);
    assert!(
        store
            .list_expirable_orders(base, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn claim_once_until_expiry(store: &dyn Store) {
    let key = format!("sig#{}", OrderId::generate());
    let now = t0();
    let until = now.plus_seconds(300);
    assert!(store.claim_once(&key, now, until).await.unwrap());
    assert!(
        !store
            .claim_once(&key, now.plus_seconds(299), until)
            .await
            .unwrap()
    );
    // Concurrent claims of a fresh key: exactly one wins.
    let fresh = format!("nonce#{}", OrderId::generate());
    let results =
        futures::future::join_all((0..8).map(|_| store.claim_once(&fresh, now, until))).await;
    assert_eq!(results.iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    // After expiry the key can be claimed again.
    assert!(
        store
            .claim_once(&key, now.plus_seconds(301), now.plus_seconds(600))
            .await
            .unwrap()
    );
    // A released claim can be made again before it would have expired; releasing one
    // that is gone is no error.
    store.release_claim(&fresh, until).await.unwrap();
    assert!(store.claim_once(&fresh, now, until).await.unwrap());
    assert!(!store.claim_once(&fresh, now, until).await.unwrap());
    store.release_claim("nothing#here", until).await.unwrap();
    // A holder that outlived its claim releases nothing of the claim made since.
    let later = now.plus_seconds(400);
    assert!(
        store
            .claim_once(&fresh, later, later.plus_seconds(300))
            .await
            .unwrap()
    );
    store.release_claim(&fresh, until).await.unwrap();
    assert!(
        !store
            .claim_once(&fresh, later, later.plus_seconds(300))
            .await
            .unwrap()
    );
}

fn endpoint(org: &OrgId, livemode: bool, at: Timestamp) -> WebhookEndpoint {
    let master = payorders::testing::master_key();
    payorders::testing::endpoint(org, livemode, "https://merchant.example/hooks", &master, at).0
}

async fn webhook_endpoints_crud_and_versions(store: &dyn Store) {
    let org = OrgId::generate();
    let a = endpoint(&org, false, t0());
    let b = endpoint(&org, false, t0().plus_seconds(1));
    let live = endpoint(&org, true, t0());
    for e in [&a, &b, &live] {
        store.create_endpoint(e, None).await.unwrap();
    }
    assert!(matches!(
        store.create_endpoint(&a, None).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        store.get_endpoint(&org, &a.id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.get_endpoint(&OrgId::generate(), &a.id).await.unwrap(),
        None,
        "other orgs cannot see it"
    );
    let test_ids: Vec<_> = store
        .list_endpoints(&org, KeyMode::Test)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(test_ids, vec![a.id.clone(), b.id.clone()]);
    assert_eq!(
        store.list_endpoints(&org, KeyMode::Live).await.unwrap(),
        vec![live.clone()]
    );

    // Versioned update with its event; a stale one fails and writes no event.
    let mut disabled = a.clone();
    disabled.enabled = false;
    disabled.version = 2;
    let ev = Event::for_endpoint(&disabled, EventType::WebhookEndpointDisabled, t0());
    store
        .update_endpoint(&disabled, 1, Some(&ev), None)
        .await
        .unwrap();
    assert_eq!(
        store.get_event(&ev.id).await.unwrap().unwrap().event_type,
        EventType::WebhookEndpointDisabled
    );
    let stale_ev = Event::for_endpoint(&disabled, EventType::WebhookEndpointDisabled, t0());
    assert!(matches!(
        store
            .update_endpoint(&disabled, 1, Some(&stale_ev), None)
            .await,
        Err(StoreError::VersionConflict { expected: 1 })
    ));
    assert!(store.get_event(&stale_ev.id).await.unwrap().is_none());
    assert!(
        !store
            .get_endpoint(&org, &a.id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );

    assert!(store.delete_endpoint(&org, &b.id).await.unwrap());
    assert!(!store.delete_endpoint(&org, &b.id).await.unwrap());
    assert!(matches!(
        store.update_endpoint(&b, 1, None, None).await,
        Err(StoreError::NotFound)
    ));
    // To another organization an endpoint does not exist, even at the right version.
    let foreign = WebhookEndpoint {
        organization_id: OrgId::generate(),
        version: 3,
        ..disabled.clone()
    };
    assert!(matches!(
        store.update_endpoint(&foreign, 2, None, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        !store
            .delete_endpoint(&OrgId::generate(), &a.id)
            .await
            .unwrap()
    );
}

async fn deliveries_created_once_and_listed(store: &dyn Store) {
    let org = OrgId::generate();
    let ep = endpoint(&org, false, t0());
    let mut made = Vec::new();
    for i in 0..7i64 {
        let ev = EventId::generate();
        let d = Delivery {
            id: Delivery::id_for(&ev, Some(&ep.id)),
            organization_id: org.clone(),
            livemode: false,
            endpoint_id: Some(ep.id.clone()),
            url: ep.url.clone(),
            event_id: ev,
            event_type: EventType::OrderCreated,
            status: DeliveryStatus::Pending,
            attempts: vec![],
            next_attempt_at: None,
            created_at: t0().plus_seconds(i),
            updated_at: t0().plus_seconds(i),
            version: 1,
        };
        // Concurrent creators of the same delivery: exactly one creates it.
        let (x, y) = tokio::join!(store.create_delivery(&d), store.create_delivery(&d));
        assert!(x.unwrap() ^ y.unwrap());
        made.push(d);
    }
    let mut d = made[0].clone();
    d.status = DeliveryStatus::Delivered;
    d.version = 2;
    store.update_delivery(&d, 1).await.unwrap();
    assert!(matches!(
        store.update_delivery(&d, 1).await,
        Err(StoreError::VersionConflict { .. })
    ));
    // A delivery that was never made cannot be updated: a conflict, nothing written.
    let ghost = Delivery {
        id: Delivery::id_for(&EventId::generate(), Some(&ep.id)),
        ..d.clone()
    };
    assert!(matches!(
        store.update_delivery(&ghost, 1).await,
        Err(StoreError::VersionConflict { expected: 1 })
    ));
    assert_eq!(store.get_delivery(&ghost.id).await.unwrap(), None);
    assert_eq!(
        store.get_delivery(&d.id).await.unwrap().unwrap().status,
        DeliveryStatus::Delivered
    );

    let mut w = window(&org, KeyMode::Test, 3);
    let mut seen = Vec::new();
    loop {
        let page = store.list_deliveries(&ep.id, &w).await.unwrap();
        seen.extend(page.data.into_iter().map(|d| d.id));
        match page.next_cursor {
            Some(c) => w.cursor = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    let want: Vec<_> = made.iter().rev().map(|d| d.id.clone()).collect();
    assert_eq!(seen, want);
    assert!(
        store
            .list_deliveries(
                &WebhookEndpointId::generate(),
                &window(&org, KeyMode::Test, 10)
            )
            .await
            .unwrap()
            .data
            .is_empty()
    );
}

async fn wallets_one_per_chain_and_indexes_never_reused(store: &dyn Store) {
    let org = OrgId::generate();
    let base = ChainId::new(8453).unwrap();
    let wallet = |livemode: bool, chain: ChainId| {
        MerchantWallet {
        organization_id: org.clone(),
        livemode,
        chain_id: chain,
        address: None,
        xpub: Some("xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB".into()),
        currencies: vec![format!("{chain}:native")],
        next_index: 0,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
    };
    let w = wallet(false, base);
    store.create_wallet(&w).await.unwrap();
    assert!(
        matches!(
            store.create_wallet(&w).await,
            Err(StoreError::AlreadyExists)
        ),
        "one per chain and mode"
    );
    store.create_wallet(&wallet(true, base)).await.unwrap();
    store
        .create_wallet(&wallet(false, ChainId::new(1).unwrap()))
        .await
        .unwrap();
    let test_chains: Vec<_> = store
        .list_wallets(&org, KeyMode::Test)
        .await
        .unwrap()
        .iter()
        .map(|w| w.chain_id.get())
        .collect();
    assert_eq!(test_chains, vec![1, 8453]);
    assert_eq!(
        store.list_wallets(&org, KeyMode::Live).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.get_wallet(&org, KeyMode::Test, base).await.unwrap(),
        Some(w.clone())
    );
    assert_eq!(
        store
            .get_wallet(&OrgId::generate(), KeyMode::Test, base)
            .await
            .unwrap(),
        None
    );

    // Concurrent allocations all get different indexes, and none is lost.
    let results = futures::future::join_all(
        (0..10).map(|_| allocate_wallet_index(store, &org, KeyMode::Test, base)),
    )
    .await;
    let mut indexes: Vec<u32> = results.into_iter().map(|r| r.unwrap().1).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..10).collect::<Vec<_>>());
    let after = store
        .get_wallet(&org, KeyMode::Test, base)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.next_index, 10);
    assert!(matches!(
        store.update_wallet(&after, 1).await,
        Err(StoreError::VersionConflict { .. })
    ));

    assert!(
        store
            .delete_wallet(&org, KeyMode::Test, base)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_wallet(&org, KeyMode::Test, base)
            .await
            .unwrap()
    );
    assert!(matches!(
        allocate_wallet_index(store, &org, KeyMode::Test, base).await,
        Err(StoreError::NotFound)
    ));
}

/// A wallet deleted and created again starts at version 1 again: a write over a copy of
/// the old one (its display count, a merchant's update) must not land on the new one. (That
/// an index of the old xpub is not counted on the new wallet is
/// `store::allocation_tests`'.)
async fn a_wallet_created_again_is_not_written_over_with_the_old_one(store: &dyn Store) {
    use payorders::testing::{XPUBS, xpub_wallet};
    let org = OrgId::generate();
    let base = ChainId::new(8453).unwrap();
    let old = xpub_wallet(&org, base, XPUBS[0], t0());
    store.create_wallet(&old).await.unwrap();
    let copy = store
        .get_wallet(&org, KeyMode::Test, base)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .delete_wallet(&org, KeyMode::Test, base)
            .await
            .unwrap()
    );
    // Created again within the same second.
    let half_a_second_later = Timestamp::from_unix_micros(t0().unix_micros() + 500_000).unwrap();
    let new = xpub_wallet(&org, base, XPUBS[1], half_a_second_later);
    store.create_wallet(&new).await.unwrap();

    let mut counted = copy.next_version();
    counted.next_index += 1;
    assert!(
        matches!(
            store.update_wallet(&counted, copy.version).await,
            Err(StoreError::VersionConflict { .. })
        ),
        "the old wallet's copy is refused though the version matches"
    );
    assert_eq!(
        store.get_wallet(&org, KeyMode::Test, base).await.unwrap(),
        Some(new.clone())
    );
    // A write over a copy of the new wallet still goes through.
    let mut counted_on_new = new.next_version();
    counted_on_new.next_index = 3;
    store
        .update_wallet(&counted_on_new, new.version)
        .await
        .unwrap();
    assert_eq!(
        store.get_wallet(&org, KeyMode::Test, base).await.unwrap(),
        Some(counted_on_new)
    );
}

/// Orders are watched for deposits exactly while they await a payment on that chain; the
/// scan cursor moves only from the value it was read at.
async fn watched_orders_and_scan_cursors(store: &dyn Store) {
    let org = OrgId::generate();
    let base = ChainId::new(8453).unwrap();
    let usdc = "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913";
    let mut awaiting = Vec::new();
    for (k, deposit) in [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ]
    .into_iter()
    .enumerate()
    {
        let o = create(store, order(&org, false, t0().plus_seconds(k as i64))).await;
        let u = o
            .transition(t0(), OrderStatus::AwaitingPayment, |o| {
                o.payment = Some(payorders::testing::payment(usdc, 1_000, deposit))
            })
            .unwrap();
        store.update_order(&u).await.unwrap();
        awaiting.push(u.order().clone());
    }
    // Still PENDING (no payment): not watched.
    create(store, order(&org, false, t0())).await;
    let ids = |v: Vec<PayOrder>| v.into_iter().map(|o| o.id).collect::<HashSet<_>>();
    assert_eq!(
        ids(store.list_watched_orders(base, t0()).await.unwrap()),
        ids(awaiting.clone())
    );
    assert!(
        store
            .list_watched_orders(ChainId::new(1).unwrap(), t0())
            .await
            .unwrap()
            .is_empty()
    );
    // A partial payment stays watched, and so does a cancelled order (a customer may pay
    // from a page opened before the cancel: a late payment, to be refunded).
    let partial = awaiting[0]
        .transition(t0(), OrderStatus::PartialPayment, |_| {})
        .unwrap();
    store.update_order(&partial).await.unwrap();
    let cancelled = awaiting[1]
        .transition(t0(), OrderStatus::Cancelled, |_| {})
        .unwrap();
    store.update_order(&cancelled).await.unwrap();
    assert_eq!(
        ids(store.list_watched_orders(base, t0()).await.unwrap()),
        ids(vec![
            partial.order().clone(),
            cancelled.order().clone(),
            awaiting[2].clone()
        ])
    );
    // A cancelled order, too, leaves the watch list once its monitoring window ends.
    let cancelled_end = cancelled.order().watch_until();
    for (at, watched) in [
        (cancelled_end.plus_seconds(-1), true),
        (cancelled_end.plus_seconds(1), false),
    ] {
        let now_watched = store.list_watched_orders(base, at).await.unwrap();
        assert_eq!(
            now_watched.iter().any(|o| o.id == cancelled.order().id),
            watched,
            "{at}"
        );
    }
    // An expired order stays watched (late payments) until its monitoring window ends,
    // then leaves the watch list; so does a waiting order the expiry has not reached yet.
    // (The cancelled order, seen above, is left out from here on.)
    let cancelled_id = cancelled.order().id.clone();
    let ids = |v: Vec<PayOrder>| {
        v.into_iter()
            .map(|o| o.id)
            .filter(|id| id != &cancelled_id)
            .collect::<HashSet<_>>()
    };
    let expired = partial
        .order()
        .transition(t0(), OrderStatus::Expired, |_| {})
        .unwrap();
    store.update_order(&expired).await.unwrap();
    let window_end = expired.order().watch_until();
    assert_eq!(
        window_end,
        expired
            .order()
            .expires_at
            .plus_seconds(LATE_PAYMENT_WINDOW_SECS)
    );
    assert_eq!(
        ids(store
            .list_watched_orders(base, window_end.plus_seconds(-1))
            .await
            .unwrap()),
        ids(vec![expired.order().clone(), awaiting[2].clone()])
    );
    assert_eq!(
        ids(store
            .list_watched_orders(base, window_end.plus_seconds(1))
            .await
            .unwrap()),
        ids(vec![awaiting[2].clone()])
    );
    assert!(
        store
            .list_watched_orders(base, awaiting[2].watch_until().plus_seconds(1))
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.scan_cursor(base).await.unwrap(), None);
    store.set_scan_cursor(base, None, 100).await.unwrap();
    assert!(matches!(
        store.set_scan_cursor(base, None, 50).await,
        Err(StoreError::VersionConflict { .. })
    ));
    assert!(matches!(
        store.set_scan_cursor(base, Some(99), 150).await,
        Err(StoreError::VersionConflict { .. })
    ));
    store.set_scan_cursor(base, Some(100), 150).await.unwrap();
    assert_eq!(store.scan_cursor(base).await.unwrap(), Some(150));
    assert_eq!(
        store.scan_cursor(ChainId::new(1).unwrap()).await.unwrap(),
        None
    );
}

/// Orders waiting on a confirmation check are found by their last write, oldest first;
/// other statuses never are.
async fn stalled_orders_oldest_first(store: &dyn Store) {
    let org = OrgId::generate();
    // Far in the future, so other tests' orders in the same table stay out of the way.
    let base = Timestamp::parse("2126-01-01T00:00:00Z").unwrap();
    let mut waiting = Vec::new();
    for (k, to) in [
        OrderStatus::AwaitingConfirmation,
        OrderStatus::AwaitingConfirmation,
        OrderStatus::AwaitingPayment,
    ]
    .into_iter()
    .enumerate()
    {
        let o = create(store, order(&org, false, t0())).await;
        let at = base.plus_seconds(k as i64 * 10);
        let u = o
            .transition(at, OrderStatus::AwaitingPayment, |_| {})
            .unwrap();
        store.update_order(&u).await.unwrap();
        let u = if to == OrderStatus::AwaitingPayment {
            u
        } else {
            let u2 = u.order().transition(at, to, |_| {}).unwrap();
            store.update_order(&u2).await.unwrap();
            u2
        };
        waiting.push(u.order().clone());
    }
    let org = &org;
    let stalled = |before: Timestamp| async move {
        store
            .list_stalled_orders(before, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| &o.organization_id == org)
            .map(|o| o.id)
            .collect::<Vec<_>>()
    };
    assert!(stalled(base).await.is_empty());
    assert_eq!(stalled(base.plus_seconds(5)).await, [waiting[0].id.clone()]);
    assert_eq!(
        stalled(base.plus_seconds(60)).await,
        [waiting[0].id.clone(), waiting[1].id.clone()]
    );
    // A write makes it fresh; a final status takes it out.
    let touched = waiting[0].edit(base.plus_seconds(100), |_| {}).unwrap();
    store.update_order(&touched).await.unwrap();
    assert_eq!(
        stalled(base.plus_seconds(60)).await,
        [waiting[1].id.clone()]
    );
    let done = waiting[1]
        .transition(base.plus_seconds(20), OrderStatus::Completed, |_| {})
        .unwrap();
    store.update_order(&done).await.unwrap();
    assert_eq!(
        stalled(base.plus_seconds(200)).await,
        [waiting[0].id.clone()]
    );
}

/// An xpub's derivation indexes are handed out once each, ever: under concurrency, and
/// across deleting and re-creating the wallet or switching to another xpub and back.
async fn xpub_indexes_never_reused(store: &dyn Store) {
    let org = OrgId::generate();
    let chain = ChainId::new(84532).unwrap();
    let xpub_a = format!("xpub-a-{}", OrgId::generate());
    let xpub_b = format!("xpub-b-{}", OrgId::generate());
    let wallet = |xpub: &str| MerchantWallet {
        organization_id: org.clone(),
        livemode: false,
        chain_id: chain,
        address: None,
        xpub: Some(xpub.to_owned()),
        currencies: vec!["84532:native".into()],
        next_index: 0,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    };
    store.create_wallet(&wallet(&xpub_a)).await.unwrap();
    let results = futures::future::join_all(
        (0..6).map(|_| allocate_wallet_index(store, &org, KeyMode::Test, chain)),
    )
    .await;
    let mut seen: Vec<u32> = results.into_iter().map(|r| r.unwrap().1).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..6).collect::<Vec<_>>());
    // Delete and re-create with the same xpub: the counter goes on.
    assert!(
        store
            .delete_wallet(&org, KeyMode::Test, chain)
            .await
            .unwrap()
    );
    store.create_wallet(&wallet(&xpub_a)).await.unwrap();
    let (_, i) = allocate_wallet_index(store, &org, KeyMode::Test, chain)
        .await
        .unwrap();
    assert_eq!(i, 6);
    // Switch to another xpub (its own counter) and back: still no index twice.
    assert!(
        store
            .delete_wallet(&org, KeyMode::Test, chain)
            .await
            .unwrap()
    );
    store.create_wallet(&wallet(&xpub_b)).await.unwrap();
    let (_, i) = allocate_wallet_index(store, &org, KeyMode::Test, chain)
        .await
        .unwrap();
    assert_eq!(i, 0);
    assert!(
        store
            .delete_wallet(&org, KeyMode::Test, chain)
            .await
            .unwrap()
    );
    store.create_wallet(&wallet(&xpub_a)).await.unwrap();
    let (w, i) = allocate_wallet_index(store, &org, KeyMode::Test, chain)
        .await
        .unwrap();
    assert_eq!(i, 7);
    assert_eq!(
        w.next_index, 1,
        "the wallet record counts its own derivations"
    );
}

async fn an_xpub_index_is_given_back_only_while_it_is_the_last(store: &dyn Store) {
    let xpub = format!("xpub-back-{}", OrgId::generate());
    assert_eq!(store.next_xpub_index(&xpub).await.unwrap(), 0);
    assert_eq!(store.next_xpub_index(&xpub).await.unwrap(), 1);
    // Not the last one handed out, or never handed out: kept.
    assert!(!store.return_xpub_index(&xpub, 0).await.unwrap());
    assert!(!store.return_xpub_index(&xpub, 5).await.unwrap());
    assert!(!store.return_xpub_index("xpub-never-used", 0).await.unwrap());
    // The last one: handed out next, once.
    assert!(store.return_xpub_index(&xpub, 1).await.unwrap());
    assert!(!store.return_xpub_index(&xpub, 1).await.unwrap());
    assert_eq!(store.next_xpub_index(&xpub).await.unwrap(), 1);
    assert_eq!(store.next_xpub_index(&xpub).await.unwrap(), 2);
    // Two at once give back one index once.
    let (a, b) = tokio::join!(
        store.return_xpub_index(&xpub, 2),
        store.return_xpub_index(&xpub, 2)
    );
    assert!(a.unwrap() ^ b.unwrap());
    assert_eq!(store.next_xpub_index(&xpub).await.unwrap(), 2);
}

async fn organization_settings_under_a_version(store: &dyn Store) {
    let org = Organization::new("Acme", t0());
    store.create_organization(&org).await.unwrap();
    assert_eq!(org.version, 0);
    let mut next = org.next_version();
    next.test.default_expires_in = Some(3600);
    store.update_organization(&next, 0).await.unwrap();
    let stored = store.get_organization(&org.id).await.unwrap().unwrap();
    assert_eq!(stored, next);
    // A writer that read version 0 lost: the record moved on.
    let mut stale = org.next_version();
    stale.live.custom_fee_bps = Some(10);
    assert!(matches!(
        store.update_organization(&stale, 0).await,
        Err(StoreError::VersionConflict { expected: 0 })
    ));
    assert_eq!(store.get_organization(&org.id).await.unwrap(), Some(next));
    // A missing organization is not found.
    let ghost = Organization::new("Ghost", t0());
    assert!(matches!(
        store.update_organization(&ghost.next_version(), 0).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_organization(&ghost.id).await.unwrap(), None);

    // Concurrent read-modify-write loops of different settings: every change sticks.
    let changes = (0..8u32).map(|i| {
        let id = org.id.clone();
        async move {
            loop {
                let read = store.get_organization(&id).await.unwrap().unwrap();
                let mut next = read.next_version();
                next.test.confirmations.push(ChainConfirmations {
                    chain_id: ChainId::new(1000 + u64::from(i)).unwrap(),
                    confirmations: i + 1,
                });
                match store.update_organization(&next, read.version).await {
                    Ok(()) => break,
                    Err(StoreError::VersionConflict { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    });
    futures::future::join_all(changes).await;
    let done = store.get_organization(&org.id).await.unwrap().unwrap();
    assert_eq!(done.test.confirmations.len(), 8);
    assert_eq!(done.version, 9);
    assert_eq!(done.test.default_expires_in, Some(3600));
}

async fn checkout_settings_last_write_wins(store: &dyn Store) {
    let org = Organization::new("Acme", t0());
    store.create_organization(&org).await.unwrap();
    assert_eq!(store.get_checkout_settings(&org.id).await.unwrap(), None);
    let first = CheckoutSettings {
        display_name: Some("Acme Shop".into()),
        logo_url: Some("https://acme.example/logo.png".into()),
        theme_color: Some("#0a7d4f".into()),
        hide_footer: false,
    };
    store.put_checkout_settings(&org.id, &first).await.unwrap();
    assert_eq!(
        store.get_checkout_settings(&org.id).await.unwrap(),
        Some(first.clone())
    );
    let second = CheckoutSettings {
        hide_footer: true,
        ..first
    };
    store.put_checkout_settings(&org.id, &second).await.unwrap();
    assert_eq!(
        store.get_checkout_settings(&org.id).await.unwrap(),
        Some(second)
    );
    // Other organizations have none, and the organization record is unchanged.
    assert_eq!(
        store
            .get_checkout_settings(&OrgId::generate())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_organization(&org.id).await.unwrap(), Some(org));
}

async fn rate_counters_count_per_window(store: &dyn Store) {
    let ends = Timestamp::now().plus_seconds(60);
    let key = format!("view#127.0.0.1#{}", OrgId::generate());
    for want in 1..=3 {
        assert_eq!(store.count_hit(&key, ends).await.unwrap(), want);
    }
    // Another window (or caller) counts from one.
    assert_eq!(
        store.count_hit(&format!("{key}-next"), ends).await.unwrap(),
        1
    );
    // Concurrent hits are each counted once.
    let hits = futures::future::join_all((0..10).map(|_| store.count_hit(&key, ends))).await;
    let mut seen: Vec<u64> = hits.into_iter().map(|h| h.unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (4..=13).collect::<Vec<_>>());

    // Reading a counter does not count; an unknown one is 0, a finished one too.
    assert_eq!(store.hits(&key).await.unwrap(), 13);
    assert_eq!(store.hits(&key).await.unwrap(), 13);
    assert_eq!(store.hits(&format!("{key}-never")).await.unwrap(), 0);
    let past = Timestamp::now().plus_seconds(-5);
    store.count_hit(&format!("{key}-old"), past).await.unwrap();
    assert_eq!(store.hits(&format!("{key}-old")).await.unwrap(), 0);
}

async fn rate_limits_per_organization(store: &dyn Store) {
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let defaults = store.get_rate_limits(&org).await.unwrap();
    assert_eq!(defaults, RateLimits::default());
    assert_eq!(defaults.per_hour(RateClass::Create), 1000);
    assert_eq!(defaults.per_hour(RateClass::Webhooks), 100);
    let mut mine = RateLimits::default();
    mine.set(RateClass::Create, Some(5));
    mine.set(RateClass::List, Some(50_000));
    store.put_rate_limits(&org, &mine).await.unwrap();
    let got = store.get_rate_limits(&org).await.unwrap();
    assert_eq!(got, mine);
    assert_eq!(
        (
            got.per_hour(RateClass::Create),
            got.per_hour(RateClass::List),
            got.per_hour(RateClass::Read)
        ),
        (5, 50_000, 5000)
    );
    // Another organization keeps the defaults; the last write wins.
    assert_eq!(
        store.get_rate_limits(&other).await.unwrap(),
        RateLimits::default()
    );
    mine.set(RateClass::Create, None);
    store.put_rate_limits(&org, &mine).await.unwrap();
    assert_eq!(
        store
            .get_rate_limits(&org)
            .await
            .unwrap()
            .per_hour(RateClass::Create),
        1000
    );
}

fn audit_entry(
    org: &OrgId,
    livemode: bool,
    at: Timestamp,
    object: Option<&str>,
    key: &KeyId,
) -> AuditEntry {
    AuditEntry {
        id: AuditId::generate(),
        organization_id: org.clone(),
        livemode,
        created_at: at,
        actor: AuditActor::ApiKey {
            key_id: key.clone(),
        },
        action: "POST /pay-orders/{id}/cancel".into(),
        object_id: object.map(str::to_owned),
        request_id: Some("req_1".into()),
        ip: Some("203.0.113.9".into()),
        user_agent: Some("shop/1.0".into()),
        outcome: AuditOutcome {
            status: 200,
            code: None,
        },
    }
}

async fn audit_entries_are_written_once_and_listed(store: &dyn Store) {
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let (k1, k2) = (KeyId::generate(), KeyId::generate());
    let order = OrderId::generate().to_string();
    let mut written = Vec::new();
    for i in 0..5 {
        let object = (i % 2 == 0).then_some(order.as_str());
        let key = if i < 3 { &k1 } else { &k2 };
        let e = audit_entry(&org, false, t0().plus_seconds(i), object, key);
        store.put_audit_entry(&e).await.unwrap();
        written.push(e);
    }
    // Never replaced: the same id again is refused and the first stays.
    let mut changed = written[0].clone();
    changed.outcome.status = 500;
    assert!(matches!(
        store.put_audit_entry(&changed).await,
        Err(StoreError::AlreadyExists)
    ));
    // Other organizations and the other mode are apart.
    store
        .put_audit_entry(&audit_entry(&other, false, t0(), Some(&order), &k1))
        .await
        .unwrap();
    store
        .put_audit_entry(&audit_entry(&org, true, t0(), Some(&order), &k1))
        .await
        .unwrap();

    let all = store
        .list_audit_entries(&window(&org, KeyMode::Test, 100), &AuditFilter::default())
        .await
        .unwrap();
    let ids = |p: &Page<AuditEntry>| p.data.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let newest_first: Vec<_> = written.iter().rev().map(|e| e.id.clone()).collect();
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all.data[4], written[0], "the first write stands");
    // One object's entries, one key's, and both.
    let of_order = store
        .list_audit_entries(
            &window(&org, KeyMode::Test, 100),
            &AuditFilter {
                object_id: Some(order.clone()),
                key_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&of_order),
        [&written[4], &written[2], &written[0]].map(|e| e.id.clone())
    );
    let of_k2 = store
        .list_audit_entries(
            &window(&org, KeyMode::Test, 100),
            &AuditFilter {
                object_id: None,
                key_id: Some(k2.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&of_k2),
        [&written[4], &written[3]].map(|e| e.id.clone())
    );
    let both = store
        .list_audit_entries(
            &window(&org, KeyMode::Test, 100),
            &AuditFilter {
                object_id: Some(order.clone()),
                key_id: Some(k1.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&both), [&written[2], &written[0]].map(|e| e.id.clone()));
    // Pages follow the cursor.
    let first = store
        .list_audit_entries(&window(&org, KeyMode::Test, 2), &AuditFilter::default())
        .await
        .unwrap();
    assert!(first.has_more);
    let cursor = Cursor::decode(first.next_cursor.as_deref().unwrap()).unwrap();
    let second = store
        .list_audit_entries(
            &ListWindow {
                cursor: Some(cursor),
                ..window(&org, KeyMode::Test, 2)
            },
            &AuditFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(ids(&second), newest_first[2..4].to_vec());
    let live = store
        .list_audit_entries(&window(&org, KeyMode::Live, 100), &AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(live.data.len(), 1);
}

fn contribution(
    marker: &str,
    org: &OrgId,
    mode: KeyMode,
    hour: i64,
    counters: &[(&str, i64)],
) -> payorders::analytics::Contribution {
    payorders::analytics::Contribution {
        marker: marker.to_owned(),
        organization_id: org.clone(),
        mode,
        hour,
        counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

/// A stream consumer's batch of contributions: each counted once, whether it was applied
/// before, comes twice in the batch, or the whole batch is offered again (a redelivery).
async fn analytics_added_as_a_batch_count_each_once(store: &dyn Store) {
    let org = OrgId::generate();
    let h = payorders::analytics::hour_of(t0());
    let c = |fact: &str, order: &OrderId, n: i64| {
        contribution(
            &format!("{order}#{fact}"),
            &org,
            KeyMode::Test,
            h,
            &[(fact, n)],
        )
    };
    let (a, b) = (OrderId::generate(), OrderId::generate());
    let before = c("created", &a, 1);
    assert!(store.add_analytics(&before).await.unwrap());
    let batch = vec![
        before.clone(),
        c("created", &b, 1),
        c("paid", &a, 1),
        c("paid", &a, 1),
        c("expired", &b, 1),
    ];
    assert_eq!(store.add_analytics_all(&batch).await.unwrap(), 3);
    assert_eq!(
        store.add_analytics_all(&batch).await.unwrap(),
        0,
        "offered again"
    );
    assert_eq!(store.add_analytics_all(&[]).await.unwrap(), 0);
    let got = store
        .read_analytics(&org, KeyMode::Test, h, h)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let counters = &got[0].counters;
    assert_eq!(
        (counters["created"], counters["paid"], counters["expired"]),
        (2, 1, 1)
    );
}

/// An hour of huge orders (each up to 10^17 cents) adds up past an i64: the counter reads
/// as the largest i64, and the organization's analytics keep answering.
async fn analytics_sums_past_an_i64_read_as_its_largest(store: &dyn Store) {
    let org = OrgId::generate();
    let h = payorders::analytics::hour_of(t0());
    let batch: Vec<_> = (0..100)
        .map(|i| {
            contribution(
                &format!("{}#valued-{i}", OrderId::generate()),
                &org,
                KeyMode::Test,
                h,
                &[
                    ("created_usd_cents", 100_000_000_000_000_000),
                    ("valued", 1),
                ],
            )
        })
        .collect();
    assert_eq!(store.add_analytics_all(&batch).await.unwrap(), 100);
    let got = store
        .read_analytics(&org, KeyMode::Test, h, h)
        .await
        .unwrap();
    assert_eq!(got[0].counters["created_usd_cents"], i64::MAX);
    assert_eq!(got[0].counters["valued"], 100);
}

async fn analytics_counted_once_without_lost_updates(store: &dyn Store) {
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let h = payorders::analytics::hour_of(t0());
    let order = OrderId::generate();
    let cur = "paid:84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e";
    let created = contribution(
        &format!("{order}#created"),
        &org,
        KeyMode::Test,
        h,
        &[("created", 1), ("created_usd_cents", 1050)],
    );
    assert!(store.add_analytics(&created).await.unwrap());
    // Offered again (a redelivered event): applied once.
    assert!(!store.add_analytics(&created).await.unwrap());
    // Another fact of the same order, and counters of other hours, modes and organizations.
    let paid = contribution(
        &format!("{order}#paid"),
        &org,
        KeyMode::Test,
        h,
        &[("paid", 1), ("pay_seconds", 30), (cur, 1)],
    );
    assert!(store.add_analytics(&paid).await.unwrap());
    for (marker, o, mode, hour) in [
        ("next-hour", &org, KeyMode::Test, h + 1),
        ("far-hour", &org, KeyMode::Test, h + 48),
        ("live", &org, KeyMode::Live, h),
        ("other-org", &other, KeyMode::Test, h),
    ] {
        let c = contribution(
            &format!("{}#{marker}", OrderId::generate()),
            o,
            mode,
            hour,
            &[("created", 7)],
        );
        assert!(store.add_analytics(&c).await.unwrap());
    }
    // Concurrent additions to one hour are all kept; concurrent offers of one are one.
    let adds = futures::future::join_all((0..12).map(|i| {
        let c = contribution(
            &format!("{}#paid", OrderId::generate()),
            &org,
            KeyMode::Test,
            h,
            &[("paid", 1), ("pay_seconds", i)],
        );
        async move { store.add_analytics(&c).await }
    }))
    .await;
    assert!(adds.into_iter().all(|r| r.unwrap()));
    let dup = contribution(
        &format!("{}#expired", OrderId::generate()),
        &org,
        KeyMode::Test,
        h,
        &[("expired", 1)],
    );
    let offers = futures::future::join_all((0..6).map(|_| store.add_analytics(&dup))).await;
    let applied = offers.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(applied, 1);

    let got = store
        .read_analytics(&org, KeyMode::Test, h, h + 24)
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].hour, h);
    let c = &got[0].counters;
    assert_eq!(c["created"], 1);
    assert_eq!(c["created_usd_cents"], 1050);
    assert_eq!(c["paid"], 13);
    assert_eq!(c["pay_seconds"], 30 + (0..12).sum::<i64>());
    assert_eq!(c["expired"], 1);
    assert_eq!(c[cur], 1);
    assert_eq!(got[1].hour, h + 1);
    assert_eq!(got[1].counters["created"], 7);
    // The range is inclusive at both ends and reads nothing outside it.
    let edge = store
        .read_analytics(&org, KeyMode::Test, h + 1, h + 48)
        .await
        .unwrap();
    assert_eq!(
        edge.iter().map(|b| b.hour).collect::<Vec<_>>(),
        vec![h + 1, h + 48]
    );
    assert!(
        store
            .read_analytics(&org, KeyMode::Test, h + 2, h + 47)
            .await
            .unwrap()
            .is_empty()
    );
    let live = store
        .read_analytics(&org, KeyMode::Live, h, h)
        .await
        .unwrap();
    assert_eq!(live[0].counters["created"], 7);
    let theirs = store
        .read_analytics(&other, KeyMode::Test, h - 10, h + 10)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].counters.len(), 1);
}

/// A pending refund of `raw` base units of the order's currency to a fixed address.
fn refund_of(o: &PayOrder, raw: u128, status: RefundStatus) -> OrderRefund {
    let currency = o.fulfillment.asset.clone().unwrap();
    let amount = Amount::new(RawAmount::from_u128(raw), currency.decimals);
    OrderRefund {
        id: RefundId::generate(),
        status,
        amount: amount.clone(),
        chain_id: currency.chain_id,
        address: "0x1111111111111111111111111111111111111111".into(),
        reason: "conformance".into(),
        created_at: t0(),
        instructions: RefundInstructions {
            chain_id: currency.chain_id,
            token: currency.address.clone(),
            from: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into(),
            to: "0x1111111111111111111111111111111111111111".into(),
            amount,
        },
        currency,
        transfer: None,
        succeeded_at: None,
        cancelled_at: None,
    }
}

/// Refunds live in the order document: two refunds written from the same version never
/// both land (the second would be decided on money the first already took), they read
/// back as written, a refund transfer's claim is its own namespace, and an order whose
/// refund transfer is confirming is a stalled order like one whose payment is.
async fn refunds_ride_on_the_order_write(store: &dyn Store) {
    let org = OrgId::generate();
    let o = create(store, order(&org, false, t0())).await;
    let base = Timestamp::parse("2127-01-01T00:00:00Z").unwrap();
    let mut o = o;
    for to in [
        OrderStatus::AwaitingPayment,
        OrderStatus::AwaitingConfirmation,
        OrderStatus::Completed,
    ] {
        let u = o.transition(base, to, |_| {}).unwrap();
        store.update_order(&u).await.unwrap();
        o = u.order().clone();
    }
    let (ra, rb) = (
        refund_of(&o, 15, RefundStatus::Pending),
        refund_of(&o, 15, RefundStatus::Pending),
    );
    let a = o
        .edit(base, |x| x.refunds.push(ra.clone()))
        .unwrap()
        .with_event(EventType::RefundCreated);
    let b = o
        .edit(base, |x| x.refunds.push(rb.clone()))
        .unwrap()
        .with_event(EventType::RefundCreated);
    let (wa, wb) = tokio::join!(store.update_order(&a), store.update_order(&b));
    let (winner, loser) = match (&wa, &wb) {
        (Ok(()), Err(StoreError::VersionConflict { .. })) => (&a, &b),
        (Err(StoreError::VersionConflict { .. }), Ok(())) => (&b, &a),
        other => panic!("exactly one refund write may land, got {other:?}"),
    };
    let stored = store.get_order(&o.id).await.unwrap().unwrap();
    assert_eq!(stored.refunds, winner.order().refunds);
    assert_eq!(stored.refunds.len(), 1);
    assert!(
        store
            .get_event(&loser.event().unwrap().id)
            .await
            .unwrap()
            .is_none()
    );

    // The same transfer claimed as a payment by one order and as a refund by another: two
    // claims, two keys (the domain refuses the second by reading the first).
    let other = create(store, order(&org, false, t0().plus_seconds(1))).await;
    let chain = ChainId::new(8453).unwrap();
    let pay = TxClaim::for_order(&other, chain, "0xfeedbeef", 0);
    let refund = TxClaim::for_refund(&stored, chain, "0xfeedbeef", 0);
    assert_ne!(pay.key(), refund.key());
    assert_eq!(pay.other_purpose(), refund);
    let confirming = stored
        .edit(base.plus_seconds(1), |x| {
            x.refunds[0].status = RefundStatus::Confirming;
        })
        .unwrap()
        .with_tx_claim(refund.clone());
    store.update_order(&confirming).await.unwrap();
    assert_eq!(
        store.get_tx_claim(&refund.key()).await.unwrap(),
        Some(stored.id.clone())
    );
    assert_eq!(store.get_tx_claim(&pay.key()).await.unwrap(), None);

    // Waiting on a refund's confirmations, a COMPLETED order is followed like any other.
    let stalled: Vec<OrderId> = store
        .list_stalled_orders(base.plus_seconds(60), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.organization_id == org)
        .map(|x| x.id)
        .collect();
    assert_eq!(stalled, std::slice::from_ref(&stored.id));
}

/// The largest write recording a payment makes: one transaction paying with the most
/// transfers taken ([`payments::MAX_PAYING_TRANSFERS`], each claimed with its refund-side
/// twin), overpaying (two events), under an `Idempotency-Key`. One DynamoDB transaction takes
/// at most 100 items, and a payment that could not be written would keep failing, and the
/// deposit scan of its chain with it; raising the limit past what fits fails here.
async fn the_largest_payment_write_fits_one_transaction(store: &dyn Store) {
    let org = OrgId::generate();
    let now = t0();
    let o = create(store, order(&org, false, now)).await;
    let usdc = "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913";
    let deposit = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let u = o
        .transition(now, OrderStatus::AwaitingPayment, |o| {
            o.payment = Some(payorders::testing::payment(usdc, 1_000, deposit));
        })
        .unwrap();
    store.update_order(&u).await.unwrap();
    let waiting = u.order().clone();
    let chain = ChainId::new(8453).unwrap();
    let hash = format!("0x{:064x}", 0xb16);
    let mut claims = Vec::new();
    for position in 0..payments::MAX_PAYING_TRANSFERS as u64 {
        let claim = TxClaim::for_order(&waiting, chain, &hash, position);
        claims.push(claim.other_purpose());
        claims.push(claim);
    }
    let transfer = ReceivedTransfer {
        required_confirmations: 3,
        block_number: 7,
        block_hash: "0x07".into(),
        detected_at: now,
        mined_at: Some(now),
        ..payorders::testing::transfer(&hash, 5_000, 6, TransferStatus::Confirming)
    };
    let key = take_key(store, &org, "pay-max", "fp-pay-max", r#"{"id":"p"}"#, now).await;
    let update = payments::apply_transfer(&waiting, transfer, claims.clone(), now)
        .unwrap()
        .completing(Some(key.clone()));
    assert!(
        update.order().paid_over,
        "overpaid: the write carries two events"
    );
    assert_eq!(update.tx_claims().len(), 2 * payments::MAX_PAYING_TRANSFERS);
    store.update_order(&update).await.unwrap();
    let paid = store.get_order(&waiting.id).await.unwrap().unwrap();
    assert_eq!(paid.status, OrderStatus::AwaitingConfirmation);
    for claim in [&claims[0], &claims[claims.len() - 1]] {
        assert_eq!(
            store.get_tx_claim(&claim.key()).await.unwrap(),
            Some(waiting.id.clone())
        );
    }
    assert_eq!(
        retry(store, &key, now.plus_seconds(IDEMPOTENCY_LOCK_SECS + 1)).await,
        IdempotencyBegin::Replay(key.response.clone())
    );
}

/// Each kind of conditional PutItem, with its answer lost once: the write stands and is
/// answered as written, and a second request of the same write (another caller's, not a
/// retry) is still refused, though its item would be the same but for its write token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_whose_answer_was_lost_is_written_not_refused() {
    let lossy = support::dynamo_store_losing_answers().await;
    let store: &dyn Store = &lossy.store;

    // A record created under `attribute_not_exists` (an organization).
    let org = Organization::new("Acme", t0());
    store.create_organization(&org).await.unwrap();
    assert_eq!(lossy.lost(), 1);
    assert!(matches!(
        store.create_organization(&org).await,
        Err(StoreError::AlreadyExists)
    ));

    // A versioned record's update.
    let next = org.next_version();
    store.update_organization(&next, 0).await.unwrap();
    assert_eq!(lossy.lost(), 2);
    assert_eq!(store.get_organization(&org.id).await.unwrap(), Some(next));

    // An order's update with nothing beside it (one put, not a transaction).
    let o = create(store, order(&org.id, false, t0())).await;
    let u = o
        .edit(t0().plus_seconds(1), |o| {
            o.metadata = Some(serde_json::Map::from_iter([("note".into(), "kept".into())]));
        })
        .unwrap();
    store.update_order(&u).await.unwrap();
    assert_eq!(lossy.lost(), 3);
    assert_eq!(
        store.get_order(&o.id).await.unwrap().as_ref(),
        Some(u.order())
    );
    assert!(matches!(
        store.update_order(&u).await,
        Err(StoreError::VersionConflict { .. })
    ));

    // A single-use claim: the same claim made again is a replay, refused.
    let key = format!("nonce#{}", OrderId::generate());
    let until = t0().plus_seconds(300);
    assert!(store.claim_once(&key, t0(), until).await.unwrap());
    assert_eq!(lossy.lost(), 4);
    assert!(!store.claim_once(&key, t0(), until).await.unwrap());

    // An idempotency key taken: the same request again is in flight, not started twice.
    let scope = IdempotencyScope {
        organization_id: org.id.clone(),
        mode: KeyMode::Test,
        key: "order-1".into(),
    };
    let begin = || store.idempotency_begin(&scope, "fp", t0());
    assert!(matches!(
        begin().await.unwrap(),
        IdempotencyBegin::Started(_)
    ));
    assert_eq!(lossy.lost(), 5);
    assert_eq!(begin().await.unwrap(), IdempotencyBegin::InFlight);
}

/// A give-back of an xpub index is sent once, never retried: a retry after a lost answer
/// could meet the counter after another order took the index again, and give it back a
/// second time, handing one address to two orders. Unanswered, the index counts as kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_give_back_whose_answer_was_lost_is_not_sent_again() {
    let lossy = support::dynamo_store_losing("UpdateItem").await;
    let store: &dyn Store = &lossy.store;
    let xpub = format!("xpub-lost-{}", OrgId::generate());
    let first = store.next_xpub_index(&xpub).await.unwrap();
    let sent = lossy.attempts();
    assert_eq!(lossy.lost(), 1);
    assert!(!store.return_xpub_index(&xpub, first).await.unwrap());
    assert_eq!(lossy.attempts(), sent + 1, "one request, no retry");
    assert_eq!(lossy.lost(), 2);
}

/// An xpub index whose answer was lost is retried by the SDK, and that retry meets the
/// counter its first attempt moved: it is answered with that index, so none is skipped
/// (wallet software stops looking after a run of unused addresses). A wallet delete whose
/// answer was lost is answered as made, not as "no such wallet".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_or_a_delete_whose_answer_was_lost_is_answered_as_made() {
    let lossy = support::dynamo_store_losing("UpdateItem").await;
    let store: &dyn Store = &lossy.store;
    let xpub = format!("xpub-lost-{}", OrgId::generate());
    for expected in 0..3 {
        assert_eq!(store.next_xpub_index(&xpub).await.unwrap(), expected);
    }
    assert_eq!(lossy.lost(), 3);
    // Another xpub's counter is its own.
    let other = format!("xpub-other-{}", OrgId::generate());
    assert_eq!(store.next_xpub_index(&other).await.unwrap(), 0);

    let lossy = support::dynamo_store_losing("DeleteItem").await;
    let store: &dyn Store = &lossy.store;
    let org = OrgId::generate();
    let base = ChainId::new(8453).unwrap();
    let wallet = MerchantWallet {
        organization_id: org.clone(),
        livemode: false,
        chain_id: base,
        address: Some("0x1111111111111111111111111111111111111111".into()),
        xpub: None,
        currencies: vec![format!("{base}:native")],
        next_index: 0,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    };
    store.create_wallet(&wallet).await.unwrap();
    assert!(
        store
            .delete_wallet(&org, KeyMode::Test, base)
            .await
            .unwrap()
    );
    assert_eq!(lossy.lost(), 1);
    assert!(
        store
            .get_wallet(&org, KeyMode::Test, base)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .delete_wallet(&org, KeyMode::Test, base)
            .await
            .unwrap()
    );
}
