//! Choosing how an order is paid: one rule behind the merchant's
//! `POST /pay-orders/{id}/payment-details` and the customer's
//! `POST /public/pay-orders/{id}/payment-details`.
//!
//! The destination is a DEPOSIT's `recipient`, or for a SALE the merchant wallet of the
//! currency it receives (its address, or the next address derived from its xpub). A
//! fiat-priced SALE receives its `currency` if it names one, else the payer's currency when
//! a wallet takes it, else the first of its wallets' currencies the router can reach; the
//! fiat price is converted at the current USD price, rounded up so the merchant gets at
//! least the price. The source currency must be on a network of the order's mode.
//!
//! Direct route: the payer's currency is what the destination receives; the payer pays the
//! destination itself. Routed (ChangeNOW): a fixed-rate reverse exchange is opened so that
//! the destination receives the amount; the payer pays the provider's pay-in address. The
//! amounts hold until the order expires. Any failure leaves the order as it was.

use crate::http::{ApiError, Params};
use crate::registry::{self, Currency, CurrencyRef, registry};
use crate::runtime::Services;
use crate::store::{KeepAnswer, StoreError, allocate_wallet_index, give_back_wallet_index};
use crate::wallets;
use crate::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::*;
use serde::Deserialize;

/// The body of `POST /pay-orders/{id}/payment-details` (and of its public twin).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentDetailsRequest {
    /// What the payer pays in: `{"chain_id", "address"}` (`address` null for the native coin).
    pub source_currency: Option<CurrencyRef>,
    /// Where a routed payment is refunded if the exchange fails; on the source chain.
    pub refund_address: Option<String>,
}

impl Params for PaymentDetailsRequest {
    fn code(field: &str) -> &'static str {
        match field {
            "refund_address" => "INVALID_ADDRESS",
            _ => "INVALID_CURRENCY",
        }
    }
}

/// Whose wallets and which networks: the order's organization and mode.
struct Owner {
    org_id: OrgId,
    mode: KeyMode,
}

/// Fixes how `order` is paid and writes it (PENDING -> AWAITING_PAYMENT with its
/// `payment`); returns the order as written. `keep` gives the answer to keep for the
/// request's `Idempotency-Key`, which the write then carries: no crash falls between the
/// choice and its kept answer (after which a retry would find the order no longer PENDING
/// and keep `ORDER_NOT_PENDING` for a choice that was made).
pub async fn choose(
    svc: &Services,
    order: &PayOrder,
    body: PaymentDetailsRequest,
    keep: Option<KeepAnswer<'_>>,
) -> Result<PayOrder, ApiError> {
    let now = Timestamp::now();
    let ctx = Owner {
        org_id: order.organization_id.clone(),
        mode: KeyMode::of(order.livemode),
    };
    if order.status != OrderStatus::Pending {
        return Err(ApiError::unprocessable(
            "ORDER_NOT_PENDING",
            format!(
                "payment details are chosen once, while the order is PENDING; it is {}",
                order.status
            ),
        ));
    }
    if order.expires_at <= now {
        return Err(ApiError::unprocessable(
            "ORDER_EXPIRED",
            "the order has expired",
        ));
    }
    let source = source_currency(body.source_currency)?;
    registry()
        .chain(source.chain_id)
        .map_err(|_| ApiError::internal())?
        .check_mode(ctx.mode)
        .map_err(|e| ApiError::from(e).with_param("source_currency"))?;
    let refund = refund_address(body.refund_address, &source)?;
    let plan = plan_output(svc, &ctx, order, &source).await?;
    // Handing out an xpub's next address or opening an exchange cannot be undone: only one
    // request per version of the order does it. Others asking at once (a double click, a
    // burst from anyone holding the link) would each use up an address, leaving gaps wallet
    // software stops scanning at, or open an exchange nobody pays, and then lose the write.
    let held = if plan.has_side_effects(&source) {
        Some(hold_choice(svc, order, now).await?)
    } else {
        None
    };
    let chosen = write_choice(svc, &ctx, order, &source, plan, refund, now, keep).await;
    // A choice that failed gives the order back at once, so the payer can try again.
    if let (Err(_), Some(hold)) = (&chosen, &held)
        && let Err(e) = svc.store.release_claim(&hold.0, hold.1).await
    {
        tracing::warn!(order_id = %order.id, error = %e, "could not release the payment choice; it ends on its own");
    }
    chosen
}

/// The confirmations `order`'s payments on `chain` (the payer's) need, fixed when its
/// payment is chosen, so that no later change of the organization's settings moves them:
/// the order's own number (from its request, or from the settings when it was created with
/// its currency; it applies whichever chain the payment is made on), else, paid on the
/// chain it was created with, that chain's default (no setting applied then), else the
/// settings' value for `chain` now, else `chain`'s default.
async fn fixed_confirmations(
    svc: &Services,
    order: &PayOrder,
    chain: ChainId,
) -> Result<u32, ApiError> {
    let known_at_creation = order
        .fulfillment
        .asset
        .as_ref()
        .is_some_and(|a| a.chain_id == chain);
    if order.confirmations.is_some() || known_at_creation {
        return Ok(required_confirmations(order.confirmations, None, chain));
    }
    let org = svc.store.get_organization(&order.organization_id).await?;
    let setting = org.and_then(|o| o.confirmations(KeyMode::of(order.livemode), chain));
    Ok(required_confirmations(None, setting, chain))
}

/// Makes the payment and writes it on the order (PENDING -> AWAITING_PAYMENT), with the
/// answer `keep` gives.
#[allow(clippy::too_many_arguments)]
async fn write_choice(
    svc: &Services,
    ctx: &Owner,
    order: &PayOrder,
    source: &Currency,
    plan: Plan,
    refund: Option<Refund>,
    now: Timestamp,
    keep: Option<KeepAnswer<'_>>,
) -> Result<PayOrder, ApiError> {
    let payment_rate = plan.rate_usd.map(|r| r.normalize().to_string());
    // Before the payment is made: a failure then has handed out nothing.
    let confirmations = fixed_confirmations(svc, order, source.chain_id).await?;
    let payment = make_payment(svc, ctx, source, plan, refund, (order.expires_at, now)).await?;
    let update = order
        .transition(now, OrderStatus::AwaitingPayment, |o| {
            o.confirmations = Some(confirmations);
            o.fulfillment.asset = Some(payment.output.currency.clone());
            o.fulfillment.amount = Some(payment.output.amount.clone());
            o.fulfillment.recipient = Some(payment.recipient.clone());
            if let Some(rate) = &payment_rate {
                o.fulfillment.rate_usd = Some(rate.clone());
            }
            o.payment = Some(payment.clone());
        })
        .map_err(|_| ApiError::internal())?;
    let completion = keep.and_then(|keep| keep(update.order()));
    let update = update.completing(completion);
    match svc.store.update_order(&update).await {
        Ok(()) => Ok(update.order().clone()),
        Err(StoreError::VersionConflict { .. }) => Err(ApiError::conflict(
            "CONCURRENT_UPDATE",
            "the order changed while its payment details were chosen; read it again",
        )),
        Err(e) => Err(e.into()),
    }
}

fn zero(c: &Currency) -> Amount {
    Amount::new(RawAmount::ZERO, c.decimals)
}

fn source_currency(r: Option<CurrencyRef>) -> Result<Currency, ApiError> {
    let r = r.ok_or_else(|| {
        ApiError::invalid(
            "MISSING_CURRENCY",
            "source_currency",
            "source_currency is required",
        )
    })?;
    registry().currency(&r).map_err(|e| match e {
        registry::RegistryError::UnsupportedChain(_) => {
            ApiError::unprocessable("INVALID_BLOCKCHAIN", e.to_string())
                .with_param("source_currency.chain_id")
        }
        registry::RegistryError::UnsupportedCurrency { .. } => {
            ApiError::unprocessable("UNSUPPORTED_CURRENCY", e.to_string())
                .with_param("source_currency")
        }
    })
}

fn refund_address(a: Option<String>, source: &Currency) -> Result<Option<Refund>, ApiError> {
    let Some(a) = a else {
        return Ok(None);
    };
    let addr = Address::parse(source.family(), &a)
        .map_err(|e| ApiError::invalid("INVALID_ADDRESS", "refund_address", e.to_string()))?;
    Ok(Some(Refund {
        address: addr.to_string(),
    }))
}

/// What the destination receives and where, before any address is handed out.
struct Plan {
    output: Currency,
    amount: Amount,
    rate_usd: Option<Decimal>,
    /// Pay this fixed address (a DEPOSIT's recipient, a SALE's explicit recipient), or the
    /// merchant wallet on the output's chain.
    address: Option<String>,
    /// The merchant wallet that accepted the output, when planning read it (so handing out
    /// its address does not read it again).
    wallet: Option<MerchantWallet>,
}

impl Plan {
    /// The address paid when it is known without handing one out: the order's own
    /// recipient, or the merchant wallet's fixed address on the output's chain.
    fn fixed_address(&self) -> Option<&str> {
        self.address.as_deref().or_else(|| {
            self.wallet
                .as_ref()
                .filter(|w| w.chain_id == self.output.chain_id)
                .and_then(|w| w.address.as_deref())
        })
    }

    /// Whether making the payment does what cannot be undone: open an exchange (paying in
    /// another currency than `output`), or hand out an xpub wallet's next address.
    fn has_side_effects(&self, source: &Currency) -> bool {
        source.id != self.output.id || self.fixed_address().is_none()
    }
}

async fn plan_output(
    svc: &Services,
    ctx: &Owner,
    order: &PayOrder,
    source: &Currency,
) -> Result<Plan, ApiError> {
    // Pay this fixed address (a DEPOSIT's recipient, a SALE's explicit recipient), or the
    // merchant wallet on the output's chain.
    let explicit = order.fulfillment.recipient.clone();
    let (output, wallet) = match (&order.fulfillment.asset, &order.fulfillment.amount) {
        // The order names the currency it receives: the merchant's wallet must take it,
        // unless a fixed address is paid.
        (Some(asset), amount) => {
            let wallet = match explicit {
                None => Some(wallet_for(svc, ctx, asset).await?),
                Some(_) => None,
            };
            // And how much: its USD rate now is locked beside it when a price source knows
            // it, what the order is worth in analytics. Only reported, so a missing price is
            // no error.
            if let Some(amount) = amount {
                let rate_usd = match &svc.prices {
                    Some(p) => p.usd_price(asset).await.ok(),
                    None => None,
                };
                return Ok(Plan {
                    output: asset.clone(),
                    amount: amount.clone(),
                    rate_usd,
                    address: explicit,
                    wallet,
                });
            }
            // Else a SALE priced in fiat, converted below.
            (asset.clone(), wallet)
        }
        // A SALE priced in fiat: received in the payer's currency if a wallet takes it, else
        // in the first wallet currency an exchange can reach.
        (None, _) => match wallet_for(svc, ctx, source).await {
            Ok(w) => (source.clone(), Some(w)),
            Err(e) if e.code == "WALLET_NOT_CONFIGURED" => {
                (routable_settlement(svc, ctx, source).await?, None)
            }
            Err(e) => return Err(e),
        },
    };
    // The fiat price converted at the output currency's USD price, rounded up.
    let fiat = order
        .fulfillment
        .fiat_amount
        .as_deref()
        .and_then(|f| Decimal::from_str(f).ok())
        .ok_or_else(ApiError::internal)?;
    let prices = svc.prices.as_ref().ok_or_else(|| {
        tracing::error!("payment-details runs without a price source");
        ApiError::internal()
    })?;
    let price = prices.usd_price(&output).await?;
    let raw = fiat_to_raw_ceil(fiat, price, output.decimals).ok_or_else(|| {
        ApiError::unprocessable(
            "AMOUNT_OUT_OF_RANGE",
            "the price converts to an amount this currency cannot express",
        )
    })?;
    let mut amount = Amount::new(raw, output.decimals);
    amount.value_usd = serde_json::Number::from_str(&fiat.normalize().to_string()).ok();
    Ok(Plan {
        output,
        amount,
        rate_usd: Some(price),
        address: explicit,
        wallet,
    })
}

/// The first settlement currency (by chain) an exchange from `source` can reach.
async fn routable_settlement(
    svc: &Services,
    ctx: &Owner,
    source: &Currency,
) -> Result<Currency, ApiError> {
    let unavailable = || route_unavailable(source, "a settlement currency");
    if svc.router.is_none() {
        return Err(unavailable());
    }
    let wallets = svc.store.list_wallets(&ctx.org_id, ctx.mode).await?;
    wallets
        .iter()
        .flat_map(|w| w.currencies.iter())
        .filter_map(|id| registry().currency_by_id(id).ok())
        .find(|c| {
            registry()
                .chain(c.chain_id)
                .ok()
                .filter(|chain| chain.check_mode(ctx.mode).is_ok())
                .and_then(|chain| chain.token(c))
                .is_some_and(|t| t.exchange.is_some())
        })
        .ok_or_else(unavailable)
}

fn route_unavailable(source: &Currency, wanted: &str) -> ApiError {
    ApiError::unprocessable(
        "ROUTE_UNAVAILABLE",
        format!(
            "paying in {} needs an exchange route to {wanted}, and none is available",
            source.id
        ),
    )
    .with_param("source_currency")
}

/// Decimal `ui` of an amount (exact: the UI text is the amount).
fn ui_decimal(a: &Amount) -> Result<Decimal, ApiError> {
    a.decimal().ok_or_else(|| {
        ApiError::unprocessable("AMOUNT_OUT_OF_RANGE", "the amount is too precise to route")
    })
}

/// Chooses the route and makes it real: the destination address, and for a routed payment
/// the provider's exchange. Returns the payment to record.
async fn make_payment(
    svc: &Services,
    ctx: &Owner,
    source: &Currency,
    plan: Plan,
    refund: Option<Refund>,
    (expires_at, now): (Timestamp, Timestamp),
) -> Result<Payment, ApiError> {
    let output = PaymentOutput {
        currency: plan.output.clone(),
        amount: plan.amount.clone(),
    };
    let direct = source.id == plan.output.id;
    // A routed payment is priced before any address is handed out.
    let quote = if direct {
        None
    } else {
        let router = svc
            .router
            .as_ref()
            .ok_or_else(|| route_unavailable(source, &plan.output.id))?;
        let wanted = ui_decimal(&plan.amount)?;
        let quote = router
            .estimate_reverse(source, &plan.output, wanted)
            .await?
            .usable(wanted, now)?;
        Some((router, wanted, quote))
    };
    let (destination, derived) = match plan.fixed_address() {
        Some(a) => (a.to_owned(), None),
        None => receiving_address(svc, ctx, plan.output.chain_id, plan.wallet).await?,
    };
    let derivation_index = derived.as_ref().map(|(index, _)| *index);
    // A routed payment can be made while the provider holds its rate, at most.
    let expires_at = match quote.as_ref().and_then(|(_, _, q)| q.valid_until) {
        Some(until) if until < expires_at => until,
        _ => expires_at,
    };
    let (route, input_amount, deposit, exchange_id) = match quote {
        None => ("direct", plan.amount.clone(), destination.clone(), None),
        Some((router, wanted, quote)) => {
            // What the exchange itself says (the amount to send, where to), checked
            // against what the destination must receive before the payer is shown it.
            let opened = async {
                let exchange = router
                    .create_reverse(
                        source,
                        &plan.output,
                        &quote,
                        &destination,
                        refund.as_ref().map(|r| r.address.as_str()),
                    )
                    .await?
                    .checked(wanted, source.family())?;
                let raw = fiat_to_raw_ceil(exchange.from_amount, Decimal::ONE, source.decimals)
                    .ok_or_else(|| {
                        ApiError::unprocessable(
                            "AMOUNT_OUT_OF_RANGE",
                            "the exchange amount cannot be expressed in this currency",
                        )
                    })?;
                Ok::<_, ApiError>((raw, exchange))
            }
            .await;
            let (raw, exchange) = match opened {
                Ok(opened) => opened,
                Err(e) => {
                    // The address was shown to no one: its index goes back to the xpub,
                    // so failed tries leave no gap in the merchant's addresses.
                    if let Some((index, wallet)) = &derived
                        && let Err(back) = give_back_wallet_index(&*svc.store, wallet, *index).await
                    {
                        tracing::warn!(error = %back, index, "could not give back an unused derivation index");
                    }
                    return Err(e);
                }
            };
            (
                "changenow",
                Amount::new(raw, source.decimals),
                exchange.payin_address,
                Some(exchange.id),
            )
        }
    };
    Ok(Payment {
        route: route.into(),
        payment_rail: "CRYPTO".into(),
        input: PaymentInput {
            currency: source.clone(),
            amount: input_amount.clone(),
            breakdown: Breakdown {
                base: input_amount.clone(),
                fees: Fees {
                    protocol_fee: zero(source),
                    custom_fee: None,
                    provider_fee: zero(source),
                    total_fee: zero(source),
                },
                gas: zero(source),
                total: input_amount,
            },
        },
        output,
        steps: vec![PaymentStep {
            kind: "deposit".into(),
            rail: "CRYPTO".into(),
            deposit_address: deposit,
        }],
        recipient: destination,
        expires_at,
        refund,
        derivation_index,
        exchange_id,
        received: None,
        remaining: None,
        source_tx_hash: None,
        created_at: Some(Timestamp::now()),
    })
}

/// How long one request holds the choice of an order's payment (a version of it) for
/// itself: longer than pricing and opening an exchange take, with their timeouts.
const CHOICE_HOLD_SECS: i64 = 30;

/// Claims the choice of `order`'s payment at its current version for this request: the
/// claim's key and when it ends (which [`crate::store::ClaimStore::release_claim`] needs),
/// or `409 CONCURRENT_UPDATE` when another request holds it. Once the order is written it
/// is at a new version; a request that fails gives the claim back, and one that crashes
/// leaves it to end after [`CHOICE_HOLD_SECS`].
async fn hold_choice(
    svc: &Services,
    order: &PayOrder,
    now: Timestamp,
) -> Result<(String, Timestamp), ApiError> {
    let key = format!("choice#{}#{}", order.id, order.version);
    let until = now.plus_seconds(CHOICE_HOLD_SECS);
    if svc.store.claim_once(&key, now, until).await? {
        Ok((key, until))
    } else {
        Err(ApiError::conflict(
            "CONCURRENT_UPDATE",
            "the order's payment is being chosen by another request; read the order again \
             in a few seconds",
        ))
    }
}

/// The merchant wallet that accepts `source`, or `WALLET_NOT_CONFIGURED`.
async fn wallet_for(
    svc: &Services,
    ctx: &Owner,
    source: &Currency,
) -> Result<MerchantWallet, ApiError> {
    svc.store
        .get_wallet(&ctx.org_id, ctx.mode, source.chain_id)
        .await?
        .filter(|w| w.currencies.contains(&source.id))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "WALLET_NOT_CONFIGURED",
                format!("no merchant wallet accepts {} in this mode", source.id),
            )
            .with_param("source_currency")
        })
}

/// The merchant wallet's receiving address on `chain`, and when it is an xpub's next one,
/// the index it was derived at and the wallet it was derived through. `known` is the
/// wallet planning read, if it did: a fixed address is taken from it, not read again. An
/// xpub wallet is read again by the allocation, whose count write must not be made over a
/// copy read before planning's outside calls (a wallet deleted and created again meanwhile
/// starts at the same version), and the address is derived from that fresh copy's xpub,
/// the one whose counter gave the index.
async fn receiving_address(
    svc: &Services,
    ctx: &Owner,
    chain: ChainId,
    known: Option<MerchantWallet>,
) -> Result<(String, Option<(u32, MerchantWallet)>), ApiError> {
    let wallet = match known.filter(|w| w.chain_id == chain) {
        Some(w) => w,
        None => svc
            .store
            .get_wallet(&ctx.org_id, ctx.mode, chain)
            .await?
            .ok_or_else(ApiError::internal)?,
    };
    match (&wallet.address, &wallet.xpub) {
        (Some(a), _) => Ok((a.clone(), None)),
        (None, Some(_)) => {
            // Each order gets the next index; an index is never handed out twice.
            let (fresh, index) =
                allocate_wallet_index(&*svc.store, &ctx.org_id, ctx.mode, chain).await?;
            let xpub = fresh.xpub.as_deref().ok_or_else(ApiError::internal)?;
            let key = wallets::parse_xpub(xpub).map_err(|_| ApiError::internal())?;
            let addr =
                wallets::derive_evm_address(&key, index).map_err(|_| ApiError::internal())?;
            Ok((addr.to_string(), Some((index, fresh))))
        }
        (None, None) => Err(ApiError::internal()),
    }
}
