//! `/api-keys`: a merchant's own key management (list, create, get, revoke, roll), and
//! `POST /auth/token`, which trades an API key for a short-lived access token.
//!
//! Keys are per mode: a test key sees and manages test keys only. A key hands out only the
//! scopes it holds itself (`*` only when it holds `*`), and so rolls or revokes only keys
//! whose scopes it holds (a roll hands out the old key's scopes). The key text and its API
//! secret are in the answer that creates (or rolls) a key, and never again. Creating,
//! revoking and rolling need a signed request (the API secret, which an access token never
//! stands in for). Under an `Idempotency-Key`, the kept answers of creating and rolling
//! (which hold a key and its secret) are sealed with the master key, and replayed only to
//! the key that made the request.
//!
//! `/auth/token` is a public route (no authorizer): the API key is in its body, and is
//! checked here exactly as the authorizer checks it.

use payorders::auth::{self, AuthContext, token};
use payorders::http::{self, ApiError, Body, Params, Request, Response};
use payorders::runtime::Services;
use payorders::store::StoreError;
use payorders::*;
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_NAME: usize = 100;
const SIGNED_WRITE: &str = "creating, revoking or rolling an API key";

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let token = matches!(
        (req.method().as_str(), http::path_segments(&req).as_slice()),
        ("POST", ["auth", "token"])
    );
    if token {
        // No API key has been checked yet: limited per address, as the public routes are.
        let mut resp = http::serve(&req, |_| async {
            http::public::check_limit(&*svc.store, http::public::Limit::Tokens, &req).await?;
            issue_token(svc, &req).await
        })
        .await;
        http::public::retry_after_on_429(&mut resp);
        return Ok(resp);
    }
    Ok(http::limits::serve_limited(&*svc.store, &req, |rid| route(svc, &req, rid)).await)
}

async fn route(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let parts = http::path_segments(req);
    let method = req.method().as_str();
    let ctx = http::auth(req)?;
    match (method, parts.as_slice()) {
        ("GET", ["api-keys"]) => {
            http::no_body(req)?;
            let now = Timestamp::now();
            let keys = svc.store.list_api_keys(&ctx.org_id, ctx.mode).await?;
            let data: Vec<Value> = keys.iter().map(|k| k.api_view(now)).collect();
            Ok(http::json(
                200,
                &json!({"object": "list", "data": data, "has_more": false, "next_cursor": null}),
            ))
        }
        ("POST", ["api-keys"]) => {
            ctx.require_signed(SIGNED_WRITE)?;
            // The answer holds the new key and its secret: kept sealed.
            http::idempotent_sealed(&*svc.store, master(svc)?, &ctx, req, &rid, || {
                create(svc, &ctx, req)
            })
            .await
        }
        (_, ["api-keys", _, rest @ ..]) => {
            let id = http::path_id(req, "id", "API key", KeyId::parse)?;
            match (method, rest) {
                ("GET", []) => {
                    http::no_body(req)?;
                    let key = load(svc, &ctx, &id).await?;
                    Ok(http::json(200, &key.api_view(Timestamp::now())))
                }
                ("POST", ["revoke"]) => {
                    ctx.require_signed(SIGNED_WRITE)?;
                    http::idempotent(&*svc.store, &ctx, req, &rid, || revoke(svc, &ctx, req, &id))
                        .await
                }
                ("POST", ["roll"]) => {
                    ctx.require_signed(SIGNED_WRITE)?;
                    http::idempotent_sealed(&*svc.store, master(svc)?, &ctx, req, &rid, || {
                        roll(svc, &ctx, req, &id)
                    })
                    .await
                }
                _ => Err(ApiError::not_found("route")),
            }
        }
        _ => Err(ApiError::not_found("route")),
    }
}

/// A key hands out only the scopes it holds (`*` only when it holds `*`): it creates a key
/// with such scopes only, and rolls (which hands out a new key with the old one's scopes)
/// or revokes only a key whose scopes it could grant. Else `403 INSUFFICIENT_SCOPE`, naming
/// `param`.
fn may_grant_scopes(ctx: &AuthContext, scopes: &[Scope], param: &str) -> Result<(), ApiError> {
    may_grant(&ctx.scopes, scopes).map_err(|s| {
        ApiError::forbidden(
            "INSUFFICIENT_SCOPE",
            format!(
                "this API key cannot grant {s}: a key grants only scopes it holds, and rolls \
                 or revokes only keys whose scopes it holds"
            ),
        )
        .with_param(param)
    })
}

/// [`load`], for a change to the key (revoking, rolling): only a key whose scopes the
/// caller could grant. A narrower key must not stop a wider one, nor roll it and be handed
/// its new key and secret.
async fn load_to_manage(svc: &Services, ctx: &AuthContext, id: &KeyId) -> Result<ApiKey, ApiError> {
    let key = load(svc, ctx, id).await?;
    may_grant_scopes(ctx, &key.scopes, "id")?;
    Ok(key)
}

/// The caller's own key, of its own mode, or a 404 that does not say whether it exists.
async fn load(svc: &Services, ctx: &AuthContext, id: &KeyId) -> Result<ApiKey, ApiError> {
    svc.store
        .get_api_key(id)
        .await?
        .filter(|k| k.organization_id == ctx.org_id && k.mode == ctx.mode)
        .ok_or_else(|| ApiError::not_found("API key").with_param("id"))
}

fn master(svc: &Services) -> Result<&auth::MasterKey, ApiError> {
    svc.master.as_ref().ok_or_else(|| {
        tracing::error!("api-keys runs without a master key");
        ApiError::internal()
    })
}

/// The body of `POST /api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateKey {
    /// What the key is for, 1 to 100 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "checkout server"))]
    name: KeyName,
    /// What the key may do: scopes the calling key holds itself (`*` only from a `*` key).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Scope>))]
    scopes: KeyScopes,
}

impl Params for CreateKey {
    fn code(field: &str) -> &'static str {
        match field {
            "name" => "INVALID_NAME",
            "scopes" => "INVALID_SCOPE",
            _ => "INVALID_PARAMETER",
        }
    }
}

/// The body of `POST /api-keys/{id}/roll` (may be empty).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RollKey {
    /// Seconds the old key keeps working, 0 (it stops now) to 604800 (7 days); 86400 when
    /// absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>, minimum = 0, maximum = 604800))]
    expires_in: Option<Grace>,
}

impl Params for RollKey {
    fn code(field: &str) -> &'static str {
        match field {
            "expires_in" => "INVALID_EXPIRES_IN",
            _ => "INVALID_PARAMETER",
        }
    }
}

/// The body of `POST /auth/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// Always `api_key`.
    #[cfg_attr(feature = "openapi", schema(example = "api_key"))]
    grant_type: String,
    /// The API key (`sk_live_…` / `sk_test_…`) the token acts for.
    api_key: String,
    /// Scopes the token grants, each held by the key (not `*`); the key's own when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Scope>>))]
    scope: Option<TokenScopes>,
    /// Lifetime in seconds, 60 to 3600; 900 when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>, minimum = 60, maximum = 3600))]
    expires_in: Option<TokenTtl>,
}

impl Params for TokenRequest {
    fn code(field: &str) -> &'static str {
        match field {
            "grant_type" => "UNSUPPORTED_GRANT_TYPE",
            "api_key" => "INVALID_API_KEY",
            "scope" => "INVALID_SCOPE",
            "expires_in" => "INVALID_EXPIRES_IN",
            _ => "INVALID_PARAMETER",
        }
    }
}

/// 1 to 100 characters, trimmed.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct KeyName(String);

impl TryFrom<String> for KeyName {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > MAX_NAME || s.chars().any(char::is_control) {
            return Err("name must be 1 to 100 characters, without control characters");
        }
        Ok(Self(s.to_owned()))
    }
}

/// A non-empty list of known scopes, duplicates dropped.
fn read_scopes(names: Vec<String>) -> Result<Vec<Scope>, String> {
    if names.is_empty() || names.len() > Scope::ALL.len() * 2 {
        return Err("scopes must be a non-empty list of scopes".into());
    }
    let mut out: Vec<Scope> = Vec::new();
    for n in names {
        let s = Scope::parse(&n).ok_or_else(|| format!("unknown scope {n}"))?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Vec<String>")]
struct KeyScopes(Vec<Scope>);

impl TryFrom<Vec<String>> for KeyScopes {
    type Error = String;

    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        read_scopes(names).map(Self)
    }
}

/// A token's scopes: as a key's, but never `*` (full access is for API keys only).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Vec<String>")]
struct TokenScopes(Vec<Scope>);

impl TryFrom<Vec<String>> for TokenScopes {
    type Error = String;

    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        let scopes = read_scopes(names)?;
        if scopes.contains(&Scope::All) {
            return Err("* is for API keys only; name the scopes the token needs".into());
        }
        Ok(Self(scopes))
    }
}

/// A rolled key's grace period: 0 to 7 days, in seconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
struct Grace(i64);

impl TryFrom<i64> for Grace {
    type Error = &'static str;

    fn try_from(v: i64) -> Result<Self, Self::Error> {
        if (0..=auth::ROLL_GRACE_MAX_SECS).contains(&v) {
            Ok(Self(v))
        } else {
            Err("expires_in must be 0 to 604800 seconds")
        }
    }
}

/// A token's lifetime: 60 to 3600 seconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
struct TokenTtl(i64);

impl TryFrom<i64> for TokenTtl {
    type Error = &'static str;

    fn try_from(v: i64) -> Result<Self, Self::Error> {
        if (token::TOKEN_TTL_MIN..=token::TOKEN_TTL_MAX).contains(&v) {
            Ok(Self(v))
        } else {
            Err("expires_in must be 60 to 3600 seconds")
        }
    }
}

/// A key as its creation (or roll) answers it: the only time the key and secret are shown.
fn with_secrets(issued: &auth::IssuedKey, now: Timestamp) -> Value {
    let mut v = issued.record.api_view(now);
    v["key"] = json!(issued.key);
    v["secret"] = json!(issued.secret);
    v
}

async fn create(
    svc: &Services,
    ctx: &AuthContext,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: CreateKey = http::request::signed_json(&*svc.store, ctx, req, false).await?;
    may_grant_scopes(ctx, &body.scopes.0, "scopes")?;
    let now = Timestamp::now();
    let mut issued = auth::issue_api_key(
        &ctx.org_id,
        ctx.mode,
        body.scopes.0,
        master(svc)?,
        now,
        None,
    )
    .map_err(|e| {
        tracing::error!(error = %e, "issuing a random key failed");
        ApiError::internal()
    })?;
    issued.record.name = body.name.0;
    // The answer (sealed) is kept for the Idempotency-Key by the key's own write: a retry
    // after a crash replays this key, never creates a second one.
    let resp = http::json(201, &with_secrets(&issued, now));
    let completion = http::completion(&resp);
    match svc
        .store
        .create_api_key(&issued.record, completion.as_ref())
        .await
    {
        Ok(()) => {}
        Err(StoreError::LimitReached { limit }) => {
            return Err(too_many_keys(
                limit,
                "revoke one it no longer uses (POST /api-keys/{id}/revoke) before creating another",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(key_id = %issued.record.id, by = %ctx.key_id, "API key created");
    Ok(http::kept(resp))
}

async fn revoke(
    svc: &Services,
    ctx: &AuthContext,
    req: &Request,
    id: &KeyId,
) -> Result<Response<Body>, ApiError> {
    let _: http::request::NoFields =
        http::request::signed_json(&*svc.store, ctx, req, true).await?;
    load_to_manage(svc, ctx, id).await?;
    let now = Timestamp::now();
    let key = match svc.store.revoke_api_key(id, now).await {
        Ok(k) => k,
        Err(StoreError::NotFound) => {
            return Err(ApiError::not_found("API key").with_param("id"));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(key_id = %id, by = %ctx.key_id, "API key revoked");
    Ok(http::json(200, &key.api_view(now)))
}

async fn roll(
    svc: &Services,
    ctx: &AuthContext,
    req: &Request,
    id: &KeyId,
) -> Result<Response<Body>, ApiError> {
    let body: RollKey = http::request::signed_json(&*svc.store, ctx, req, true).await?;
    let grace = body
        .expires_in
        .map_or(auth::ROLL_GRACE_DEFAULT_SECS, |g| g.0);
    // A revocation or another roll between the read and the write: read the key again.
    for _ in 0..ROLL_ATTEMPTS {
        let old = load_to_manage(svc, ctx, id).await?;
        let now = Timestamp::now();
        if !old.is_active(now) {
            return Err(ApiError::conflict(
                "API_KEY_INACTIVE",
                "only an active key can be rolled; create a new key instead",
            )
            .with_param("id"));
        }
        let (issued, until) = auth::roll_api_key(&old, grace, master(svc)?, now);
        let mut v = with_secrets(&issued, now);
        v["rolled_from"] = json!({"id": old.id, "expires_at": until});
        // The new key, the old key's expiry and the answer kept (sealed) for the
        // Idempotency-Key in one write: a retry after a crash replays this roll, never makes
        // a second new key.
        let resp = http::json(201, &v);
        let completion = http::completion(&resp);
        match svc
            .store
            .roll_api_key(&old, &issued.record, until, completion.as_ref())
            .await
        {
            Ok(_) => {
                tracing::info!(key_id = %id, new_key_id = %issued.record.id, by = %ctx.key_id, "API key rolled");
                return Ok(http::kept(resp));
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(StoreError::NotFound) => {
                return Err(ApiError::not_found("API key").with_param("id"));
            }
            Err(StoreError::LimitReached { limit }) => {
                return Err(too_many_keys(
                    limit,
                    "roll with expires_in 0 (the old key stops at once), or revoke a key it \
                     no longer uses first",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::VersionConflict { expected: 0 }.into())
}

/// `422 TOO_MANY_KEYS`: the organization has `limit` active keys in this mode; `what_to_do`
/// says how to make room.
fn too_many_keys(limit: usize, what_to_do: &str) -> ApiError {
    ApiError::limit_reached(
        "TOO_MANY_KEYS",
        "active API keys in each mode (a rolled key counts until its grace period ends)",
        limit,
        what_to_do,
    )
}

/// How many times a roll reads the key again when it changed under it.
const ROLL_ATTEMPTS: usize = 3;

async fn issue_token(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: TokenRequest = http::request::json(req, false)?;
    if body.grant_type != "api_key" {
        return Err(
            ApiError::bad_request("UNSUPPORTED_GRANT_TYPE", "grant_type must be api_key")
                .with_param("grant_type"),
        );
    }
    let now = Timestamp::now();
    let key = auth::find_active_key(&*svc.store, body.api_key.trim(), now).await?;
    let scopes = match body.scope {
        Some(s) => {
            if let Err(missing) = may_grant(&key.scopes, &s.0) {
                return Err(ApiError::forbidden(
                    "INSUFFICIENT_SCOPE",
                    format!("the API key lacks the {missing} scope"),
                )
                .with_param("scope"));
            }
            s.0
        }
        // The key's own scopes, `*` spelled out (a token never carries `*`).
        None => Scope::concrete().filter(|s| key.allows(*s)).collect(),
    };
    let ttl = body.expires_in.map_or(token::TOKEN_TTL_DEFAULT, |t| t.0);
    let minted = token::mint(master(svc)?, &key, &scopes, ttl, now);
    tracing::info!(key_id = %key.id, jti = %minted.claims.jti, "access token issued");
    let mut resp = http::json(
        200,
        &json!({
            "access_token": minted.token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scopes,
        }),
    );
    // RFC 6749 §5.1: a token answer is never cached.
    resp.headers_mut().insert(
        "cache-control",
        lambda_http::http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
