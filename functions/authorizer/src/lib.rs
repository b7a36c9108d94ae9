//! The HTTP API Lambda authorizer (payload 2.0, simple responses).
//!
//! It authenticates the key (X-API-KEY or Bearer), checks any `Authorization-Signature`
//! (v1, legacy, v2 with single-use nonces) and the route's scope, and returns
//! `org_id, key_id, mode, scopes, signed` (and the signature) as context.
//!
//! A refusal is *carried* to the function rather than denied here: an HTTP API answers a
//! denying authorizer with its own fixed 403 body, and cannot answer 401 at all, while we
//! owe callers 401 vs 403 in our error shape. So the authorizer always allows, with either
//! the caller's identity or `auth_error` in the context; every handler reads it through
//! `payorders::http::auth`, which turns `auth_error` into the 401/403 before any other
//! work. Result caching is off (each signature differs).

use lambda_http::LambdaEvent;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use payorders::Timestamp;
use payorders::auth::{self, AuthRequest, MasterKey};
use payorders::runtime::{InitError, Services};
use serde_json::Value;
use std::sync::Arc;

pub struct Deps {
    pub store: Arc<dyn payorders::store::Store>,
    pub master: MasterKey,
}

impl Deps {
    pub fn from_services(s: Services) -> Result<Self, InitError> {
        let master = s.master()?.clone();
        Ok(Self {
            store: s.store,
            master,
        })
    }
}

pub async fn handler(
    deps: &Deps,
    event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, lambda_http::Error> {
    Ok(authorize(deps, &event.payload).await)
}

/// Decides for one request; never fails (see the module docs).
pub async fn authorize(
    deps: &Deps,
    ev: &ApiGatewayV2CustomAuthorizerV2Request,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
    let method = ev.request_context.http.method.as_str().to_owned();
    let route_key = ev.route_key.as_deref().unwrap_or_default();
    let route_path = route_key
        .split_once(' ')
        .map(|(_, p)| p)
        .unwrap_or(route_key);
    let raw_path = ev.raw_path.as_deref().unwrap_or("/");
    // With a named stage the raw path starts with it; routes (and signatures) do not.
    let path = payorders::http::without_stage(raw_path, ev.request_context.stage.as_deref());
    let req = AuthRequest {
        method: &method,
        path,
        raw_query: ev.raw_query_string.as_deref().unwrap_or_default(),
        route_path,
        headers: &ev.headers,
    };
    let context = match auth::authenticate(
        &*deps.store,
        &*deps.store,
        &deps.master,
        &req,
        Timestamp::now(),
    )
    .await
    {
        Ok(ctx) => {
            tracing::info!(org_id = %ctx.org_id, key_id = %ctx.key_id, route = route_key, "authorized");
            ctx.to_authorizer()
        }
        Err(f) => {
            tracing::info!(code = f.code, route = route_key, "refused");
            f.to_authorizer()
        }
    };
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    response.is_authorized = true;
    response.context = Value::Object(context);
    response
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    let deps = &payorders::runtime::OnFirstUse::new(|| async {
        let services = payorders::runtime::Services::from_env().await?;
        Ok::<_, payorders::runtime::BoxError>(Deps::from_services(services)?)
    });
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        handler(deps.get().await?, ev).await
    }))
    .await
}
