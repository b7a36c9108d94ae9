//! The local host: plays API Gateway for the functions in `template.yaml`. For each request
//! it finds the route, runs the authorizer on the same payload 2.0 event API Gateway sends,
//! puts its context into the request event as API Gateway does, and calls the function's
//! handler with that event.

use crate::template::Template;
use anyhow::bail;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest,
};
use lambda_http::http::{HeaderMap, Method, StatusCode};
use lambda_http::lambda_runtime::streaming::Body as StreamBody;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Response};
use payorders::RequestId;
use payorders::http::ApiError;
use payorders::runtime::Services;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Functions the local host can run, by binary name. A template function missing here is a
/// start-up error; a test checks both lists match.
pub const HTTP_FUNCTIONS: &[&str] = &[
    "create-order",
    "get-order",
    "list-orders",
    "cancel-order",
    "webhook-endpoints",
    "api-keys",
    "list-events",
    "audit-log",
    "transactions",
    "analytics",
    "merchant-wallets",
    "payment-details",
    "quote-order",
    "submit-payment",
    "simulate-payment",
    "refunds",
    "health",
    "public-order",
    "public-payment-details",
    "public-submit-payment",
    "public-qr",
    "public-events",
    "checkout-page",
    "checkout-settings",
];
/// Functions that are not HTTP routes: the authorizer, and the async steps the local host
/// runs in-process (see `workers`).
pub const OTHER_FUNCTIONS: &[&str] = &[
    "authorizer",
    "dispatch-events",
    "aggregate-analytics",
    "deliver-webhook",
    "confirm-payment",
    "scan-deposits",
    "expire-orders",
];

#[derive(Debug, Clone)]
struct Route {
    method: String,
    path: String,
    segments: Vec<String>,
    binary: String,
    /// No authorizer runs for it (`Auth: { Authorizer: NONE }` in the template).
    public: bool,
    /// Its answer is streamed (a Function URL with response streaming in AWS).
    stream: bool,
}

impl Route {
    /// Path parameters if `path` matches this route's template (`/pay-orders/{id}`).
    fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = BTreeMap::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !part.is_empty() => {
                    let decoded = url::form_urlencoded::parse(format!("x={part}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    params.insert(name.to_owned(), decoded);
                }
                Some(_) => return None,
                None if seg == part => {}
                None => return None,
            }
        }
        Some(params)
    }
}

pub struct Host {
    services: Services,
    /// How event streams run here: the store is local, so it is read more often.
    follow: payorders::checkout::sse::Follow,
    settler: payorders::payments::Settler,
    authorizer: authorizer::Deps,
    routes: Vec<Route>,
}

/// What a function answered: a whole body, or (a streaming route) a body written as the
/// handler goes.
pub enum Answer {
    Whole(Response<Body>),
    Stream(Response<StreamBody>),
}

/// A request as it arrived at the local host.
pub struct IncomingRequest {
    pub method: Method,
    pub path: String,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub source_ip: String,
}

impl Host {
    pub fn new(services: Services, template: &Template) -> anyhow::Result<Self> {
        let authorizer = authorizer::Deps::from_services(services.clone())?;
        let mut routes = Vec::new();
        for f in &template.functions {
            let known = HTTP_FUNCTIONS.contains(&f.binary.as_str())
                || OTHER_FUNCTIONS.contains(&f.binary.as_str());
            if !known {
                bail!(
                    "template.yaml has function {} (binary {}) that the local host cannot run",
                    f.logical_id,
                    f.binary
                );
            }
        }
        for (f, r) in template.routes() {
            if !HTTP_FUNCTIONS.contains(&f.binary.as_str()) {
                bail!(
                    "template.yaml routes {} {} to {}, which is not an HTTP function",
                    r.method,
                    r.path,
                    f.binary
                );
            }
            routes.push(Route {
                method: r.method.clone(),
                path: r.path.clone(),
                segments: r
                    .path
                    .trim_start_matches('/')
                    .split('/')
                    .map(str::to_owned)
                    .collect(),
                binary: f.binary.clone(),
                public: r.public,
                stream: r.stream,
            });
        }
        Ok(Self {
            follow: payorders::checkout::sse::Follow {
                poll: std::time::Duration::from_millis(200),
                ..payorders::checkout::sse::Follow::from_env()
            },
            settler: services.settler()?,
            services,
            authorizer,
            routes,
        })
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// `METHOD /path` of every route, for the start-up banner.
    pub fn route_keys(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub async fn handle(&self, req: IncomingRequest) -> Answer {
        let request_id = RequestId::generate().to_string();
        let found = self.routes.iter().find_map(|r| {
            (r.method == req.method.as_str())
                .then(|| r.matches(&req.path).map(|p| (r, p)))
                .flatten()
        });
        let Some((route, params)) = found else {
            let mut e = ApiError::not_found("route");
            e.code = "ROUTE_NOT_FOUND";
            e.message = format!("no route for {} {}", req.method, req.path);
            let mut resp = payorders::http::error_response(&e, &request_id);
            resp.headers_mut()
                .insert("x-request-id", request_id.parse().expect("ids are ASCII"));
            return Answer::Whole(resp);
        };
        let route_key = format!("{} {}", route.method, route.path);
        let mut context = request_context(&req, &route_key, &request_id);
        // A public route has no authorizer: its event carries no authorizer context.
        if !route.public {
            let authorizer_event = json!({
                "version": "2.0",
                "type": "REQUEST",
                "routeArn": format!("arn:aws:execute-api:local:000000000000:local/$default/{}{}", route.method, route.path),
                "identitySource": [],
                "routeKey": route_key,
                "rawPath": req.path,
                "rawQueryString": req.raw_query,
                "headers": headers_json(&req.headers),
                "queryStringParameters": query_json(&req.raw_query),
                "requestContext": context,
                "pathParameters": params,
                "stageVariables": {},
            });
            let auth_event: ApiGatewayV2CustomAuthorizerV2Request =
                serde_json::from_value(authorizer_event)
                    .expect("the local host builds valid authorizer events");
            let decision = authorizer::authorize(&self.authorizer, &auth_event).await;
            if !decision.is_authorized {
                // What API Gateway answers for a denying simple-response authorizer.
                let mut resp = Response::new(Body::Text(r#"{"message":"Forbidden"}"#.into()));
                *resp.status_mut() = StatusCode::FORBIDDEN;
                return Answer::Whole(resp);
            }
            context["authorizer"] = json!({ "lambda": decision.context });
        }
        let (body, is_base64) = match String::from_utf8(req.body.clone()) {
            Ok(text) => (text, false),
            Err(_) => {
                use base64::Engine;
                (
                    base64::engine::general_purpose::STANDARD.encode(&req.body),
                    true,
                )
            }
        };
        // Links in answers use the address the client reached the host at, as a deployment
        // uses its public base URL (PAYORDERS_PUBLIC_BASE_URL, when set, wins over both).
        let own = req
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": req.path,
            "rawQueryString": req.raw_query,
            "headers": headers_json(&req.headers),
            "requestContext": context,
            "stageVariables": { "public_base_url": own },
            "isBase64Encoded": is_base64,
        });
        let query = query_json(&req.raw_query);
        if !query.is_empty() {
            event["queryStringParameters"] = Value::Object(query);
        }
        if !params.is_empty() {
            event["pathParameters"] = json!(params);
        }
        if !req.body.is_empty() {
            event["body"] = json!(body);
        }
        // The event as Lambda would hand it to lambda_http (its HTTP API payload, version
        // 2.0), read from the JSON value without printing it and parsing it back.
        let lambda_req = match serde_json::from_value::<ApiGatewayV2httpRequest>(event) {
            Ok(ev) => lambda_http::Request::from(LambdaRequest::ApiGatewayV2(ev)),
            Err(e) => {
                tracing::error!(error = %e, "could not build the function event");
                return Answer::Whole(payorders::http::error_response(
                    &ApiError::internal(),
                    &request_id,
                ));
            }
        };
        if route.stream {
            let result = match route.binary.as_str() {
                "public-events" => {
                    public_events::handler(&self.services, self.follow, lambda_req).await
                }
                other => unreachable!("{other} does not stream"),
            };
            return match result {
                Ok(r) => Answer::Stream(r),
                Err(e) => Answer::Whole(invocation_failed(&route.binary, &*e)),
            };
        }
        let result = match route.binary.as_str() {
            "create-order" => create_order::handler(&self.services, lambda_req).await,
            "get-order" => get_order::handler(&self.services, lambda_req).await,
            "list-orders" => list_orders::handler(&self.services, lambda_req).await,
            "cancel-order" => cancel_order::handler(&self.services, lambda_req).await,
            "webhook-endpoints" => webhook_endpoints::handler(&self.services, lambda_req).await,
            "api-keys" => api_keys::handler(&self.services, lambda_req).await,
            "list-events" => list_events::handler(&self.services, lambda_req).await,
            "audit-log" => audit_log::handler(&self.services, lambda_req).await,
            "transactions" => transactions::handler(&self.services, lambda_req).await,
            "analytics" => analytics::handler(&self.services, lambda_req).await,
            "merchant-wallets" => merchant_wallets::handler(&self.services, lambda_req).await,
            "payment-details" => payment_details::handler(&self.services, lambda_req).await,
            "quote-order" => quote_order::handler(&self.services, lambda_req).await,
            "submit-payment" => {
                submit_payment::handler(&self.services, &self.settler, lambda_req).await
            }
            "simulate-payment" => {
                simulate_payment::handler(&self.services, &self.settler, lambda_req).await
            }
            "refunds" => refunds::handler(&self.services, &self.settler, lambda_req).await,
            "health" => health::handler(&self.services, lambda_req).await,
            "public-order" => public_order::handler(&self.services, lambda_req).await,
            "public-payment-details" => {
                public_payment_details::handler(&self.services, lambda_req).await
            }
            "public-qr" => public_qr::handler(&self.services, lambda_req).await,
            "public-submit-payment" => {
                public_submit_payment::handler(&self.services, &self.settler, lambda_req).await
            }
            "checkout-page" => checkout_page::handler(&self.services, lambda_req).await,
            "checkout-settings" => checkout_settings::handler(&self.services, lambda_req).await,
            other => unreachable!("route to {other} was refused at start-up"),
        };
        Answer::Whole(result.unwrap_or_else(|e| invocation_failed(&route.binary, &*e)))
    }
}

/// What API Gateway answers when the function invocation itself fails.
fn invocation_failed(function: &str, e: &(dyn std::error::Error + Send + Sync)) -> Response<Body> {
    tracing::error!(error = %e, function, "function failed");
    let mut resp = Response::new(Body::Text(r#"{"message":"Internal Server Error"}"#.into()));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp
}

fn request_context(req: &IncomingRequest, route_key: &str, request_id: &str) -> Value {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": "localhost",
        "domainPrefix": "localhost",
        "http": {
            "method": req.method.as_str(),
            "path": req.path,
            "protocol": "HTTP/1.1",
            "sourceIp": req.source_ip,
            "userAgent": req.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default(),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": now.format(fmt).unwrap_or_default(),
        "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
    })
}

/// Headers as API Gateway passes them: lowercase names, repeated values joined by commas.
fn headers_json(h: &HeaderMap) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (name, value) in h {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match out.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(v));
            }
        }
    }
    out
}

/// Query parameters as API Gateway passes them: decoded, repeated values joined by commas.
fn query_json(raw: &str) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        match out.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                out.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_templates() {
        let r = Route {
            method: "GET".into(),
            path: "/pay-orders/{id}".into(),
            segments: vec!["pay-orders".into(), "{id}".into()],
            binary: "get-order".into(),
            public: false,
            stream: false,
        };
        assert_eq!(r.matches("/pay-orders/po_1").unwrap()["id"], "po_1");
        assert_eq!(r.matches("/pay-orders/a%20b").unwrap()["id"], "a b");
        assert!(r.matches("/pay-orders/").is_none());
        assert!(r.matches("/pay-orders").is_none());
        assert!(r.matches("/pay-orders/x/y").is_none());
        assert!(r.matches("/events/x").is_none());
    }

    #[test]
    fn query_and_headers_join_repeats() {
        let q = query_json("a=1&b=x%20y&a=2");
        assert_eq!(q["a"], "1,2");
        assert_eq!(q["b"], "x y");
        let mut h = HeaderMap::new();
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        assert_eq!(headers_json(&h)["x-a"], "1,2");
    }
}
