//! `POST /pay-orders`: creates a pay order (seed 002 shape, seed 001 compatible fields).
//!
//! Honours `Idempotency-Key` and `nonce`; SALE orders need a signed request; emits
//! `order.created` in the same write as the order.

use payorders::auth;
use payorders::http::{self, ApiError, Body, Params, Request, Response, render};
use payorders::registry::{Currency, CurrencyRef, registry};
use payorders::runtime::Services;
use payorders::webhooks;
use payorders::*;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_limited(&*svc.store, &req, |rid| create(svc, &req, rid)).await)
}

#[tracing::instrument(skip_all, fields(request_id = %rid))]
async fn create(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let now = Timestamp::now();
        let body: CreateOrderRequest =
            http::request::signed_json(&*svc.store, &ctx, req, false).await?;
        // The one read of the organization: it must exist, and its settings for this mode
        // give the order what the body leaves out.
        let Some(org) = svc.store.get_organization(&ctx.org_id).await? else {
            return Err(ApiError::forbidden("UNKNOWN_ORGANIZATION", "the key's organization no longer exists"));
        };
        let idempotency_key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let order = parse_order(body, &ctx, org.settings(ctx.mode), now, idempotency_key)?;
        // A SALE priced in fiat settles in the organization's wallets' currencies.
        if order.mode == OrderMode::Sale && order.fulfillment.asset.is_none() {
            let wallets = svc.store.list_wallets(&ctx.org_id, ctx.mode).await?;
            if wallets.iter().all(|w| w.currencies.is_empty()) {
                return Err(ApiError::unprocessable(
                    "WALLET_NOT_CONFIGURED",
                    "this organization has no merchant wallet in this mode; name a currency or add one at /merchant-wallets",
                ));
            }
        }
        let new = NewOrder::new(order).map_err(|_| ApiError::internal())?;
        // The answer is kept for the Idempotency-Key by the order's own write.
        let resp = http::json(201, &render::order_view(new.order(), &http::links(req)));
        let new = new.completing(http::completion(&resp));
        svc.store.create_order(&new).await?;
        tracing::info!(order_id = %new.order().id, mode = %new.order().mode, "order created");
        Ok(http::kept(resp))
    })
    .await
}

/// Fiat units a SALE can be priced in, with their decimals.
const FIAT_UNITS: &[(&str, u8)] = &[("USD", 2)];
const MAX_METADATA_BYTES: usize = 16 * 1024;
const MAX_URL_LEN: usize = 2048;

/// The body of `POST /pay-orders`. Explicit `null`s read as absent. What depends on other
/// fields (the amount's decimals, the recipient's chain, the expiry window from now) is
/// read by [`parse_order`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateOrderRequest {
    mode: Option<OrderMode>,
    /// A decimal string such as `"100.00"` (numbers lose precision).
    amount: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::currency))]
    currency: Option<CurrencyInput>,
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::blockchain))]
    blockchain: Option<Blockchain>,
    fiat_unit: Option<String>,
    recipient: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>))]
    metadata: Option<Map<String, Value>>,
    /// seed 001: `metadata` as a string holding a JSON object.
    order_info: Option<String>,
    /// Seconds from now: 60 to 604800; by default the organization's `default_expires_in`
    /// (30 minutes unless it set another).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    expires_in: Option<ExpiresIn>,
    expires_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    webhook_url: Option<HttpUrl>,
    /// Where the checkout page sends the payer once paid: http(s), https in live mode.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    redirect_url: Option<HttpUrl>,
    /// The checkout page's link back while unpaid: http(s), https in live mode.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    cancel_url: Option<HttpUrl>,
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::nonce))]
    nonce: Option<Nonce>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ToleranceInput>))]
    payment_tolerance: Option<Tolerance>,
    /// 1 to 1000.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    confirmations: Option<Confirmations>,
}

impl Params for CreateOrderRequest {
    fn code(field: &str) -> &'static str {
        match field {
            "mode" => "INVALID_MODE",
            "amount" => "INVALID_AMOUNT",
            "currency" => "INVALID_CURRENCY",
            "blockchain" => "INVALID_BLOCKCHAIN",
            "fiat_unit" => "UNSUPPORTED_FIAT_UNIT",
            "recipient" => "INVALID_ADDRESS",
            "metadata" | "order_info" => "INVALID_ORDER_INFO",
            "expires_in" | "expires_at" => "INVALID_EXPIRY",
            "webhook_url" | "redirect_url" | "cancel_url" => "INVALID_URL",
            "nonce" => "INVALID_NONCE",
            "payment_tolerance" => "INVALID_PAYMENT_TOLERANCE",
            "confirmations" => "INVALID_CONFIRMATIONS",
            _ => "INVALID_REQUEST",
        }
    }
}

/// `currency`: `{"chain_id", "address"}` (seed 002), or a symbol with `blockchain`
/// (seed 001: `"currency": "USDC", "blockchain": "base"`).
#[derive(Debug)]
enum CurrencyInput {
    Ref(CurrencyRef),
    Symbol(String),
}

impl<'de> Deserialize<'de> for CurrencyInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self::Symbol(s)),
            v @ Value::Object(_) => CurrencyRef::deserialize(v).map(Self::Ref).map_err(|e| {
                D::Error::custom(format!(
                    "currency must be {{\"chain_id\": <id>, \"address\": <token address or null>}}: {e}"
                ))
            }),
            _ => Err(D::Error::custom("currency must be an object or a symbol")),
        }
    }
}

/// `blockchain`: a slug such as `base`, or a chain id (number or text).
#[derive(Debug)]
struct Blockchain(String);

impl<'de> Deserialize<'de> for Blockchain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self(s)),
            Value::Number(n) => Ok(Self(n.to_string())),
            _ => Err(serde::de::Error::custom(
                "blockchain must be a slug such as base, or a chain id",
            )),
        }
    }
}

/// Seconds from now: 60 s to 7 days.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
struct ExpiresIn(i64);

impl TryFrom<i64> for ExpiresIn {
    type Error = String;

    fn try_from(secs: i64) -> Result<Self, Self::Error> {
        check_expiry(secs)
            .map(Self)
            .map_err(|e| format!("expires_in {e}"))
    }
}

/// An http(s) URL with a host and no credentials, at most 2048 characters; kept as parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct HttpUrl(String);

impl TryFrom<String> for HttpUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.len() > MAX_URL_LEN {
            return Err("the URL is longer than 2048 characters".into());
        }
        let url = url::Url::parse(&text).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err("the URL must be http(s) with a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the URL must not carry credentials".into());
        }
        Ok(Self(url.to_string()))
    }
}

/// A merchant's single-use `nonce`: a non-negative integer, or 1-128 printable characters
/// without spaces. Kept as text.
#[derive(Debug, Clone)]
struct Nonce(String);

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bad = || {
            serde::de::Error::custom(
                "nonce must be a non-negative integer or 1-128 printable characters without spaces",
            )
        };
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_u64().map(|n| Self(n.to_string())).ok_or_else(bad),
            Value::String(s)
                if !s.is_empty()
                    && s.len() <= 128
                    && s.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
            {
                Ok(Self(s))
            }
            _ => Err(bad()),
        }
    }
}

/// `{"underpayment_bps": 0-5000, "overpayment_threshold_bps": 0-10000}`; each left out is
/// the organization's default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToleranceInput {
    /// 0 to 5000: how far below the amount a payment may fall and count as paid.
    #[serde(default)]
    underpayment_bps: Option<u32>,
    /// 0 to 10000: how far above the amount a payment may go before it is an overpayment.
    #[serde(default)]
    overpayment_threshold_bps: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "ToleranceInput")]
struct Tolerance {
    underpayment_bps: Option<u32>,
    overpayment_threshold_bps: Option<u32>,
}

impl TryFrom<ToleranceInput> for Tolerance {
    type Error = String;

    fn try_from(t: ToleranceInput) -> Result<Self, Self::Error> {
        let within = |v: Option<u32>, max: u32, name: &str| match v {
            Some(b) if b > max => Err(format!("payment_tolerance.{name} must be from 0 to {max}")),
            _ => Ok(v),
        };
        Ok(Self {
            underpayment_bps: within(t.underpayment_bps, MAX_UNDERPAYMENT_BPS, "underpayment_bps")?,
            overpayment_threshold_bps: within(
                t.overpayment_threshold_bps,
                MAX_OVERPAYMENT_THRESHOLD_BPS,
                "overpayment_threshold_bps",
            )?,
        })
    }
}

impl Tolerance {
    /// The order's tolerance: what it gave, the organization's default for the rest.
    fn over(self, defaults: PaymentTolerance) -> PaymentTolerance {
        PaymentTolerance {
            underpayment_bps: self.underpayment_bps.unwrap_or(defaults.underpayment_bps),
            overpayment_threshold_bps: self
                .overpayment_threshold_bps
                .unwrap_or(defaults.overpayment_threshold_bps),
            ..defaults
        }
    }
}

/// Confirmations the order waits for: 1-1000.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u32")]
struct Confirmations(u32);

impl TryFrom<u32> for Confirmations {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        bounded_confirmations(n)
            .map(Self)
            .map_err(|e| format!("confirmations {e}"))
    }
}

/// Turns a create body into a new PENDING order: the rules across fields. What the body
/// leaves out comes from the organization's `settings` for the key's mode (expiry,
/// tolerance, the chain's confirmations, the late-payment window, the merchant's fee), so
/// the order shows what applied.
pub fn parse_order(
    body: CreateOrderRequest,
    ctx: &auth::AuthContext,
    settings: &ModeSettings,
    now: Timestamp,
    idempotency_key: Option<String>,
) -> Result<PayOrder, ApiError> {
    let mode = body.mode.ok_or_else(|| {
        ApiError::invalid("INVALID_MODE", "mode", "mode is required: SALE or DEPOSIT")
    })?;
    if !mode.is_supported() {
        return Err(ApiError::unprocessable(
            "MODE_NOT_SUPPORTED",
            format!("{mode} orders are not supported yet"),
        )
        .with_param("mode"));
    }
    if mode == OrderMode::Sale {
        ctx.require_signed("creating a SALE order")?;
    }

    let currency = parse_currency(body.currency, body.blockchain)?;
    // Test keys pay on test networks, live keys on mainnets (the recipient is on this chain).
    if let Some(c) = &currency {
        registry()
            .chain(c.chain_id)
            .map_err(|_| ApiError::internal())?
            .check_mode(ctx.mode)
            .map_err(|e| ApiError::from(e).with_param("currency"))?;
    }
    let fiat_unit = match body.fiat_unit {
        None => None,
        Some(u) => Some(
            FIAT_UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&u))
                .copied()
                .ok_or_else(|| {
                    ApiError::unprocessable("UNSUPPORTED_FIAT_UNIT", "fiat_unit must be USD")
                        .with_param("fiat_unit")
                })?,
        ),
    };

    let amount_text = body
        .amount
        .ok_or_else(|| ApiError::invalid("INVALID_AMOUNT", "amount", "amount is required"))?;
    let money = |e: MoneyError| ApiError::invalid("INVALID_AMOUNT", "amount", format!("{e}"));

    let mut fulfillment = Fulfillment::default();
    match (mode, &currency, fiat_unit) {
        (OrderMode::Deposit, _, Some(_)) => {
            return Err(ApiError::invalid(
                "INVALID_REQUEST",
                "fiat_unit",
                "DEPOSIT amounts are in the deposited currency; fiat_unit is for SALE",
            ));
        }
        (OrderMode::Deposit, None, None) => {
            return Err(ApiError::invalid(
                "MISSING_CURRENCY",
                "currency",
                "a DEPOSIT needs a currency",
            ));
        }
        (_, None, None) => {
            return Err(ApiError::invalid(
                "MISSING_CURRENCY",
                "currency",
                "a SALE needs a currency or a fiat_unit",
            ));
        }
        // Priced in fiat; with a currency too, the SALE receives that currency, converted
        // when the payment details are chosen.
        (_, _, Some((unit, decimals))) => {
            let raw = parse_order_amount(&amount_text, decimals).map_err(money)?;
            fulfillment.fiat_amount = Some(raw.to_ui(decimals));
            fulfillment.fiat_unit = Some(unit.to_owned());
        }
        (_, Some(c), None) => {
            let raw = parse_order_amount(&amount_text, c.decimals).map_err(money)?;
            fulfillment.amount = Some(Amount::new(raw, c.decimals));
        }
    }

    let recipient = match body.recipient {
        None if mode == OrderMode::Deposit => {
            return Err(ApiError::invalid(
                "MISSING_RECIPIENT",
                "recipient",
                "a DEPOSIT needs a recipient address",
            ));
        }
        None => None,
        Some(r) => {
            let c = currency.as_ref().ok_or_else(|| {
                ApiError::invalid(
                    "INVALID_ADDRESS",
                    "recipient",
                    "a recipient needs a currency to say which chain it is on",
                )
            })?;
            let family = registry()
                .chain(c.chain_id)
                .map_err(|_| ApiError::internal())?
                .family;
            let addr = Address::parse(family, &r)
                .map_err(|e| ApiError::invalid("INVALID_ADDRESS", "recipient", e.to_string()))?;
            Some(addr.to_string())
        }
    };
    // Without a currency the chain is chosen with the payment details; the payment then
    // takes the organization's confirmations for it.
    let confirmations = body.confirmations.map(|c| c.0).or_else(|| {
        currency
            .as_ref()
            .and_then(|c| {
                settings
                    .confirmations
                    .iter()
                    .find(|s| s.chain_id == c.chain_id)
            })
            .map(|s| s.confirmations)
    });
    fulfillment.recipient = recipient;
    fulfillment.asset = currency;
    fulfillment.custom_fee_bps = settings.custom_fee_bps;

    let metadata = parse_metadata(body.metadata, body.order_info)?;
    let webhook_url = body
        .webhook_url
        .map(|u| order_webhook_url(u, ctx.livemode()))
        .transpose()?;
    let redirect_url = body
        .redirect_url
        .map(|u| page_url(u, "redirect_url", ctx.livemode()))
        .transpose()?;
    let cancel_url = body
        .cancel_url
        .map(|u| page_url(u, "cancel_url", ctx.livemode()))
        .transpose()?;
    let expires_at = parse_expiry(
        body.expires_in,
        body.expires_at,
        now,
        settings.default_expires_in(),
    )?;

    Ok(PayOrder {
        id: OrderId::generate(),
        organization_id: ctx.org_id.clone(),
        livemode: ctx.livemode(),
        mode,
        status: OrderStatus::Pending,
        created_at: now,
        updated_at: now,
        expires_at,
        expired_at: None,
        fulfillment,
        payment: None,
        metadata,
        webhook_url,
        redirect_url,
        cancel_url,
        nonce: body.nonce.map(|n| n.0),
        payment_tolerance: match body.payment_tolerance {
            Some(t) => t.over(settings.payment_tolerance()),
            None => settings.payment_tolerance(),
        },
        confirmations,
        late_payment_window: Some(settings.late_payment_window()),
        paid_over: false,
        paid_late: false,
        underpaid_within_tolerance: false,
        transfers: Vec::new(),
        refunds: Vec::new(),
        cancellation_reason: None,
        idempotency_key,
        check_round: 0,
        version: 1,
    })
}

/// The order's own `webhook_url`, refused where its deliveries would refuse it: the form
/// check every delivery makes ([`webhooks::check_url`]: https only in live mode), and in
/// live mode a private, loopback or reserved address written as an IP
/// ([`webhooks::check_literal_address`]). A host name is not resolved here (the order must
/// not wait on, or fail with, the merchant's DNS); each delivery resolves and checks it.
/// Test mode keeps http and any address, as before.
fn order_webhook_url(url: HttpUrl, livemode: bool) -> Result<String, ApiError> {
    let checked = webhooks::check_url(&url.0, livemode)
        .map_err(|e| ApiError::invalid("INVALID_URL", "webhook_url", e.to_string()))?;
    if livemode {
        webhooks::check_literal_address(&checked, false).map_err(|e| {
            ApiError::unprocessable("WEBHOOK_URL_FORBIDDEN", e.to_string())
                .with_param("webhook_url")
        })?;
    }
    Ok(url.0)
}

/// Where the checkout page sends the payer (`redirect_url`, `cancel_url`): in live mode
/// https only, as for webhooks, since a page reached over plain http can be rewritten on the
/// way by anyone between the payer and the shop (an order "thanks, now pay here" page).
/// Test mode keeps http, for a shop on the developer's machine.
fn page_url(url: HttpUrl, field: &'static str, livemode: bool) -> Result<String, ApiError> {
    // `HttpUrl` holds the URL as parsed and written back: its scheme in lower case.
    if livemode && url.0.starts_with("http:") {
        return Err(ApiError::invalid(
            "INVALID_URL",
            field,
            format!("live-mode {field} must use https: the payer is sent there"),
        ));
    }
    Ok(url.0)
}

/// The currency an order names, resolved in the registry.
fn parse_currency(
    currency: Option<CurrencyInput>,
    blockchain: Option<Blockchain>,
) -> Result<Option<Currency>, ApiError> {
    match (currency, blockchain) {
        (None, Some(_)) => Err(ApiError::invalid(
            "MISSING_CURRENCY",
            "currency",
            "blockchain is given with a currency symbol",
        )),
        (None, None) => Ok(None),
        (Some(CurrencyInput::Ref(_)), Some(_)) => Err(ApiError::invalid(
            "INVALID_REQUEST",
            "blockchain",
            "blockchain goes with a currency symbol; a currency object names its chain_id",
        )),
        (Some(CurrencyInput::Ref(r)), None) => {
            registry().currency(&r).map(Some).map_err(registry_error)
        }
        (Some(CurrencyInput::Symbol(_)), None) => Err(ApiError::invalid(
            "INVALID_BLOCKCHAIN",
            "blockchain",
            "a currency symbol needs a blockchain (e.g. base)",
        )),
        (Some(CurrencyInput::Symbol(symbol)), Some(Blockchain(chain))) => {
            // An unknown name is the `blockchain` field's fault, not a chain id's.
            let chain = registry()
                .chain_by_name(&chain)
                .map_err(|e| registry_error(e).with_param("blockchain"))?;
            chain
                .currency_by_symbol(&symbol)
                .map(Some)
                .map_err(registry_error)
        }
    }
}

fn registry_error(e: registry::RegistryError) -> ApiError {
    match e {
        registry::RegistryError::UnsupportedChain(_) => {
            ApiError::unprocessable("INVALID_BLOCKCHAIN", e.to_string())
                .with_param("currency.chain_id")
        }
        registry::RegistryError::UnsupportedCurrency { .. } => {
            ApiError::unprocessable("UNSUPPORTED_CURRENCY", e.to_string()).with_param("currency")
        }
    }
}

/// `metadata`, or seed 001's `order_info` (a string holding a JSON object); at most 16 KB.
fn parse_metadata(
    metadata: Option<Map<String, Value>>,
    order_info: Option<String>,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let bad =
        |param: &str, msg: &str| ApiError::invalid("INVALID_ORDER_INFO", param, msg.to_owned());
    let map = match (metadata, order_info) {
        (Some(_), Some(_)) => {
            return Err(bad("order_info", "give metadata or order_info, not both"));
        }
        (None, None) => return Ok(None),
        (Some(m), None) => m,
        (None, Some(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(bad(
                    "order_info",
                    "order_info must be a string holding a JSON object",
                ));
            }
        },
    };
    let size = serde_json::to_vec(&map)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(bad("metadata", "metadata must be at most 16 KB of JSON"));
    }
    Ok(Some(map))
}

/// `expires_in` or `expires_at` (60 s to 7 days from now), or `default_secs` from now.
fn parse_expiry(
    expires_in: Option<ExpiresIn>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
    default_secs: i64,
) -> Result<Timestamp, ApiError> {
    match (expires_in, expires_at) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "INVALID_EXPIRY",
            "expires_at",
            "give expires_in or expires_at, not both",
        )),
        (None, None) => Ok(now.plus_seconds(default_secs)),
        (Some(ExpiresIn(secs)), None) => Ok(now.plus_seconds(secs)),
        (None, Some(at)) => {
            let secs = now.seconds_until(at);
            if !(MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&secs) {
                return Err(ApiError::invalid(
                    "INVALID_EXPIRY",
                    "expires_at",
                    format!("expires_at must be from {MIN_EXPIRY_SECS} s to 7 days from now"),
                ));
            }
            Ok(at)
        }
    }
}

/// Schemas of the fields read by hand-written `Deserialize` impls.
#[cfg(feature = "openapi")]
mod openapi {
    use payorders::openapi::schema;
    use serde_json::json;
    use utoipa::openapi::{RefOr, schema::Schema};

    pub fn currency() -> RefOr<Schema> {
        schema(json!({
            "description": "`{\"chain_id\", \"address\"}` (`address` null for the native coin), or a symbol with `blockchain`.",
            "oneOf": [
                { "$ref": "#/components/schemas/CurrencyRef" },
                { "type": "string", "examples": ["USDC"] }
            ]
        }))
    }

    pub fn blockchain() -> RefOr<Schema> {
        schema(json!({
            "description": "With a symbol `currency`: a chain slug such as `base`, or a chain id.",
            "oneOf": [{ "type": "string" }, { "type": "integer" }]
        }))
    }

    pub fn nonce() -> RefOr<Schema> {
        schema(json!({
            "description": "Single use per organization and mode: a non-negative integer, or 1-128 printable characters without spaces.",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$" }
            ]
        }))
    }
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
