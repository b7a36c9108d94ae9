//! `POST /pay-orders`: creates a pay order (seed 002 shape, seed 001 compatible fields).
//!
//! Honours `Idempotency-Key` and `nonce`; SALE orders need a signed request; emits
//! `order.created` in the same write as the order.

use payorders::auth;
use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::registry::{Currency, CurrencyRef, registry};
use payorders::runtime::Services;
use payorders::*;
use serde_json::{Map, Value};

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |rid| create(svc, &req, rid)).await)
}

#[tracing::instrument(skip_all, fields(request_id = %rid))]
async fn create(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let now = Timestamp::now();
        let body = http::json_object(req, false)?;
        auth::verify_body(&*svc.store, &ctx, http::body_bytes(req)?, now).await?;
        if svc.store.get_organization(&ctx.org_id).await?.is_none() {
            return Err(ApiError::forbidden("UNKNOWN_ORGANIZATION", "the key's organization no longer exists"));
        }
        let idempotency_key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let order = parse_order(body, &ctx, now, idempotency_key)?;
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
        svc.store.create_order(&new).await?;
        tracing::info!(order_id = %new.order().id, mode = %new.order().mode, "order created");
        Ok(http::json(201, &render::order(new.order())))
    })
    .await
}

const FIELDS: &[&str] = &[
    "mode",
    "amount",
    "currency",
    "blockchain",
    "fiat_unit",
    "recipient",
    "metadata",
    "order_info",
    "expires_in",
    "expires_at",
    "webhook_url",
    "redirect_url",
    "cancel_url",
    "nonce",
    "payment_tolerance",
    "confirmations",
];

/// Fiat units a SALE can be priced in, with their decimals.
const FIAT_UNITS: &[(&str, u8)] = &[("USD", 2)];
const MAX_METADATA_BYTES: usize = 16 * 1024;
const MIN_EXPIRY_SECS: i64 = 60;
const MAX_EXPIRY_SECS: i64 = 7 * 24 * 3600;
const DEFAULT_EXPIRY_SECS: i64 = 30 * 60;
const MAX_URL_LEN: usize = 2048;

/// The body's fields with explicit `null`s treated as absent.
struct Fields(Map<String, Value>);

impl Fields {
    fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    fn string(&self, k: &str, code: &'static str) -> Result<Option<&str>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ApiError::invalid(code, k, format!("{k} must be a string"))),
        }
    }

    fn integer(
        &self,
        k: &str,
        code: &'static str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid(
                        code,
                        k,
                        format!("{k} must be an integer from {min} to {max}"),
                    )
                }),
        }
    }
}

/// Validates a create body into a new PENDING order.
pub fn parse_order(
    body: Map<String, Value>,
    ctx: &auth::AuthContext,
    now: Timestamp,
    idempotency_key: Option<String>,
) -> Result<PayOrder, ApiError> {
    http::only_fields(&body, FIELDS)?;
    let f = Fields(body);

    let mode_text = f.string("mode", "INVALID_MODE")?.ok_or_else(|| {
        ApiError::invalid("INVALID_MODE", "mode", "mode is required: SALE or DEPOSIT")
    })?;
    let mode = OrderMode::parse(mode_text)
        .ok_or_else(|| ApiError::invalid("INVALID_MODE", "mode", "mode must be SALE or DEPOSIT"))?;
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

    let currency = parse_currency(&f)?;
    // Test keys pay on test networks, live keys on mainnets (the recipient is on this chain).
    if let Some(c) = &currency {
        registry()
            .chain(c.chain_id)
            .map_err(|_| ApiError::internal())?
            .check_mode(ctx.mode)
            .map_err(|e| ApiError::from(e).with_param("currency"))?;
    }
    let fiat_unit = match f.string("fiat_unit", "UNSUPPORTED_FIAT_UNIT")? {
        None => None,
        Some(u) => Some(
            FIAT_UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(u))
                .copied()
                .ok_or_else(|| {
                    ApiError::unprocessable("UNSUPPORTED_FIAT_UNIT", "fiat_unit must be USD")
                        .with_param("fiat_unit")
                })?,
        ),
    };

    let amount_text = match f.get("amount") {
        None => {
            return Err(ApiError::invalid(
                "INVALID_AMOUNT",
                "amount",
                "amount is required",
            ));
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(ApiError::invalid(
                "INVALID_AMOUNT",
                "amount",
                "amount must be a decimal string such as \"100.00\" (numbers lose precision)",
            ));
        }
    };
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
            let raw = parse_order_amount(amount_text, decimals).map_err(money)?;
            fulfillment.fiat_amount = Some(raw.to_ui(decimals));
            fulfillment.fiat_unit = Some(unit.to_owned());
        }
        (_, Some(c), None) => {
            let raw = parse_order_amount(amount_text, c.decimals).map_err(money)?;
            fulfillment.amount = Some(Amount::new(raw, c.decimals));
        }
    }

    let recipient = match f.string("recipient", "INVALID_ADDRESS")? {
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
            let addr = Address::parse(family, r)
                .map_err(|e| ApiError::invalid("INVALID_ADDRESS", "recipient", e.to_string()))?;
            Some(addr.to_string())
        }
    };
    fulfillment.recipient = recipient;
    fulfillment.asset = currency;

    let metadata = parse_metadata(&f)?;
    let expires_at = parse_expiry(&f, now)?;
    let webhook_url = parse_url(&f, "webhook_url")?;
    let redirect_url = parse_url(&f, "redirect_url")?;
    let cancel_url = parse_url(&f, "cancel_url")?;
    let nonce = parse_nonce(&f)?;
    let payment_tolerance = match f.get("payment_tolerance") {
        None => PaymentTolerance::default(),
        Some(v) => {
            let bad = || {
                ApiError::invalid(
                    "INVALID_PAYMENT_TOLERANCE",
                    "payment_tolerance",
                    "payment_tolerance must be {\"underpayment_bps\": 0-5000}",
                )
            };
            let obj = v.as_object().ok_or_else(bad)?;
            if obj.keys().any(|k| k != "underpayment_bps") {
                return Err(bad());
            }
            let bps = obj
                .get("underpayment_bps")
                .and_then(Value::as_u64)
                .filter(|b| *b <= 5000)
                .ok_or_else(bad)?;
            PaymentTolerance {
                underpayment_bps: bps as u32,
            }
        }
    };
    let confirmations = f
        .integer("confirmations", "INVALID_CONFIRMATIONS", 1, 1000)?
        .map(|n| n as u32);

    Ok(PayOrder {
        id: OrderId::generate(),
        organization_id: ctx.org_id.clone(),
        livemode: ctx.livemode(),
        mode,
        status: OrderStatus::Pending,
        created_at: now,
        updated_at: now,
        expires_at,
        fulfillment,
        payment: None,
        metadata,
        webhook_url,
        redirect_url,
        cancel_url,
        nonce,
        payment_tolerance,
        confirmations,
        paid_over: false,
        paid_late: false,
        underpaid_within_tolerance: false,
        transfers: Vec::new(),
        cancellation_reason: None,
        idempotency_key,
        check_round: 0,
        version: 1,
    })
}

/// `currency` as `{"chain_id", "address"}` (seed 002), or a symbol with `blockchain`
/// (seed 001: `"currency": "USDC", "blockchain": "base"`).
fn parse_currency(f: &Fields) -> Result<Option<Currency>, ApiError> {
    let blockchain = f.get("blockchain");
    match f.get("currency") {
        None if blockchain.is_some() => Err(ApiError::invalid(
            "MISSING_CURRENCY",
            "currency",
            "blockchain is given with a currency symbol",
        )),
        None => Ok(None),
        Some(Value::Object(_)) if blockchain.is_some() => Err(ApiError::invalid(
            "INVALID_REQUEST",
            "blockchain",
            "blockchain goes with a currency symbol; a currency object names its chain_id",
        )),
        Some(v @ Value::Object(_)) => {
            let r: CurrencyRef = serde_json::from_value(v.clone()).map_err(|e| {
                ApiError::invalid(
                    "INVALID_CURRENCY",
                    "currency",
                    format!("currency must be {{\"chain_id\": <id>, \"address\": <token address or null>}}: {e}"),
                )
            })?;
            registry().currency(&r).map(Some).map_err(registry_error)
        }
        Some(Value::String(symbol)) => {
            let chain = match blockchain {
                Some(Value::String(b)) => b.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => {
                    return Err(ApiError::invalid(
                        "INVALID_BLOCKCHAIN",
                        "blockchain",
                        "blockchain must be a slug such as base, or a chain id",
                    ));
                }
                None => {
                    return Err(ApiError::invalid(
                        "INVALID_BLOCKCHAIN",
                        "blockchain",
                        "a currency symbol needs a blockchain (e.g. base)",
                    ));
                }
            };
            let chain = registry().chain_by_name(&chain).map_err(registry_error)?;
            chain
                .currency_by_symbol(symbol)
                .map(Some)
                .map_err(registry_error)
        }
        Some(_) => Err(ApiError::invalid(
            "INVALID_CURRENCY",
            "currency",
            "currency must be an object or a symbol",
        )),
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

fn parse_metadata(f: &Fields) -> Result<Option<Map<String, Value>>, ApiError> {
    let bad =
        |param: &str, msg: &str| ApiError::invalid("INVALID_ORDER_INFO", param, msg.to_owned());
    let map = match (f.get("metadata"), f.get("order_info")) {
        (Some(_), Some(_)) => {
            return Err(bad("order_info", "give metadata or order_info, not both"));
        }
        (None, None) => return Ok(None),
        (Some(Value::Object(m)), None) => m.clone(),
        (Some(_), None) => return Err(bad("metadata", "metadata must be a JSON object")),
        (None, Some(Value::String(s))) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(bad(
                    "order_info",
                    "order_info must be a string holding a JSON object",
                ));
            }
        },
        (None, Some(_)) => {
            return Err(bad(
                "order_info",
                "order_info must be a string holding a JSON object",
            ));
        }
    };
    let size = serde_json::to_vec(&map)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(bad("metadata", "metadata must be at most 16 KB of JSON"));
    }
    Ok(Some(map))
}

fn parse_expiry(f: &Fields, now: Timestamp) -> Result<Timestamp, ApiError> {
    let window = format!("from {MIN_EXPIRY_SECS} s to 7 days from now");
    match (f.get("expires_in"), f.get("expires_at")) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "INVALID_EXPIRY",
            "expires_at",
            "give expires_in or expires_at, not both",
        )),
        (None, None) => Ok(now.plus_seconds(DEFAULT_EXPIRY_SECS)),
        (Some(_), None) => {
            let secs = f
                .integer(
                    "expires_in",
                    "INVALID_EXPIRY",
                    MIN_EXPIRY_SECS,
                    MAX_EXPIRY_SECS,
                )?
                .unwrap_or_default();
            Ok(now.plus_seconds(secs))
        }
        (None, Some(_)) => {
            let text = f
                .string("expires_at", "INVALID_EXPIRY")?
                .unwrap_or_default();
            let at = Timestamp::parse(text)
                .map_err(|e| ApiError::invalid("INVALID_EXPIRY", "expires_at", e.to_string()))?;
            let secs = now.seconds_until(at);
            if !(MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&secs) {
                return Err(ApiError::invalid(
                    "INVALID_EXPIRY",
                    "expires_at",
                    format!("expires_at must be {window}"),
                ));
            }
            Ok(at)
        }
    }
}

fn parse_url(f: &Fields, k: &str) -> Result<Option<String>, ApiError> {
    let Some(text) = f.string(k, "INVALID_URL")? else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::invalid("INVALID_URL", k, format!("{k} {why}"));
    if text.len() > MAX_URL_LEN {
        return Err(bad("is longer than 2048 characters"));
    }
    let url = url::Url::parse(text).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must be an http(s) URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    Ok(Some(url.to_string()))
}

fn parse_nonce(f: &Fields) -> Result<Option<String>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "INVALID_NONCE",
            "nonce",
            "nonce must be a non-negative integer or 1-128 printable characters without spaces",
        )
    };
    match f.get("nonce") {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(|n| Some(n.to_string())).ok_or_else(bad),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(bad()),
    }
}
