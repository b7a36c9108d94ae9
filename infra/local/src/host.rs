//! The local host: plays API Gateway for the functions in `template.yaml`. For each request
//! it finds the route, runs the authorizer on the same payload 2.0 event API Gateway sends,
//! puts its context into the request event as API Gateway does, and calls the function's
//! handler with that event.

use crate::template::Template;
use anyhow::bail;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest,
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::lambda_runtime::streaming::Body as StreamBody;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Response};
use payorders::RequestId;
use payorders::http::ApiError;
use payorders::runtime::Services;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Functions the local host can run, by name (their `Handler`). A template function missing here is a
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
    function: String,
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
    /// A named stage the host answers under, as a deployed API does (`/dev/events`); `None`
    /// is API Gateway's `$default` stage, with no prefix (`make dev`).
    stage: Option<String>,
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
            let known = HTTP_FUNCTIONS.contains(&f.function.as_str())
                || OTHER_FUNCTIONS.contains(&f.function.as_str());
            if !known {
                bail!(
                    "template.yaml has function {} (Handler {}) that the local host cannot run",
                    f.logical_id,
                    f.function
                );
            }
        }
        for (f, r) in template.routes() {
            if !HTTP_FUNCTIONS.contains(&f.function.as_str()) {
                bail!(
                    "template.yaml routes {} {} to {}, which is not an HTTP function",
                    r.method,
                    r.path,
                    f.function
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
                function: f.function.clone(),
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
            stage: None,
        })
    }

    /// The host answering under the named stage `stage` only (`/{stage}/…`), with events
    /// as API Gateway makes them there: the stage in `rawPath` and in the request context.
    pub fn staged(mut self, stage: &str) -> Self {
        self.stage = Some(stage.to_owned());
        self
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
        // Under a named stage, a path outside it is no route (API Gateway: 404 Not Found).
        let route_path = match &self.stage {
            None => Some(req.path.as_str()),
            Some(stage) => payorders::http::under_stage(&req.path, stage),
        };
        let found = route_path.and_then(|path| {
            self.routes.iter().find_map(|r| {
                (r.method == req.method.as_str())
                    .then(|| r.matches(path).map(|p| (r, p)))
                    .flatten()
            })
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
        let stage = self.stage.as_deref().unwrap_or("$default");
        let mut context = request_context(&req, &route_key, &request_id, stage);
        let headers = gateway_headers(&req.headers);
        // A public route has no authorizer: its event carries no authorizer context.
        if !route.public {
            let mut auth_event = ApiGatewayV2CustomAuthorizerV2Request::default();
            auth_event.version = Some("2.0".into());
            auth_event.type_ = Some("REQUEST".into());
            auth_event.route_arn = Some(format!(
                "arn:aws:execute-api:local:000000000000:local/{stage}/{}{}",
                route.method, route.path
            ));
            auth_event.identity_source = Some(Vec::new());
            auth_event.route_key = Some(route_key.clone());
            auth_event.raw_path = Some(req.path.clone());
            auth_event.raw_query_string = Some(req.raw_query.clone());
            auth_event.headers = headers.clone();
            auth_event.query_string_parameters = query_joined(&req.raw_query);
            auth_event.request_context = context.clone();
            auth_event.path_parameters = params.clone().into_iter().collect();
            let decision = authorizer::authorize(&self.authorizer, &auth_event).await;
            if !decision.is_authorized {
                // What API Gateway answers for a denying simple-response authorizer.
                let mut resp = Response::new(Body::Text(r#"{"message":"Forbidden"}"#.into()));
                *resp.status_mut() = StatusCode::FORBIDDEN;
                return Answer::Whole(resp);
            }
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            if let Value::Object(fields) = decision.context {
                authorizer.fields = fields.into_iter().collect();
            }
            context.authorizer = Some(authorizer);
        }
        // Links in answers use the address the client reached the host at, as a deployment
        // uses its public base URL (PAYORDERS_PUBLIC_BASE_URL, when set, wins over both).
        let own = req
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(|h| match &self.stage {
                Some(stage) => format!("http://{h}/{stage}"),
                None => format!("http://{h}"),
            })
            .unwrap_or_default();
        // The event as Lambda hands it to lambda_http (the HTTP API payload, version 2.0),
        // built as its fields, as API Gateway fills them.
        let mut event = ApiGatewayV2httpRequest::default();
        event.version = Some("2.0".into());
        event.route_key = Some(route_key);
        event.raw_path = Some(req.path);
        event.raw_query_string = Some(req.raw_query);
        event.headers = headers;
        event.path_parameters = params.into_iter().collect();
        event.request_context = context;
        event.stage_variables = [("public_base_url".to_owned(), own)].into();
        if !req.body.is_empty() {
            let (body, is_base64) = match String::from_utf8(req.body) {
                Ok(text) => (text, false),
                Err(e) => {
                    use base64::Engine;
                    let bytes = e.into_bytes();
                    (
                        base64::engine::general_purpose::STANDARD.encode(bytes),
                        true,
                    )
                }
            };
            event.body = Some(body);
            event.is_base64_encoded = is_base64;
        }
        let lambda_req = lambda_http::Request::from(LambdaRequest::ApiGatewayV2(event));
        if route.stream {
            let result = match route.function.as_str() {
                "public-events" => {
                    public_events::handler(&self.services, self.follow, lambda_req).await
                }
                other => unreachable!("{other} does not stream"),
            };
            return match result {
                Ok(r) => Answer::Stream(r),
                Err(e) => Answer::Whole(invocation_failed(&route.function, &*e)),
            };
        }
        let result = match route.function.as_str() {
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
        Answer::Whole(result.unwrap_or_else(|e| invocation_failed(&route.function, &*e)))
    }
}

/// What API Gateway answers when the function invocation itself fails.
fn invocation_failed(function: &str, e: &(dyn std::error::Error + Send + Sync)) -> Response<Body> {
    tracing::error!(error = %e, function, "function failed");
    let mut resp = Response::new(Body::Text(r#"{"message":"Internal Server Error"}"#.into()));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp
}

fn request_context(
    req: &IncomingRequest,
    route_key: &str,
    request_id: &str,
    stage: &str,
) -> ApiGatewayV2httpRequestContext {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = req.method.clone();
    http.path = Some(req.path.clone());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some(req.source_ip.clone());
    http.user_agent = Some(
        req.headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    let mut c = ApiGatewayV2httpRequestContext::default();
    c.account_id = Some("000000000000".into());
    c.apiid = Some("local".into());
    c.domain_name = Some("localhost".into());
    c.domain_prefix = Some("localhost".into());
    c.http = http;
    c.request_id = Some(request_id.to_owned());
    c.route_key = Some(route_key.to_owned());
    c.stage = Some(stage.to_owned());
    c.time = Some(now.format(fmt).unwrap_or_default());
    c.time_epoch = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    c
}

/// Headers as API Gateway passes them: lowercase names, repeated values joined by commas
/// into one.
fn gateway_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(h.keys_len());
    for name in h.keys() {
        let mut values = h.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        let joined = match values.next() {
            None => first.clone(),
            Some(second) => {
                let mut v = first.as_bytes().to_vec();
                for next in std::iter::once(second).chain(values) {
                    v.push(b',');
                    v.extend_from_slice(next.as_bytes());
                }
                HeaderValue::from_bytes(&v).expect("joined header values stay valid")
            }
        };
        out.insert(name.clone(), joined);
    }
    out
}

/// Query parameters as API Gateway passes them to the authorizer: decoded, repeated values
/// joined by commas. (The function's event needs none: lambda_http reads the parameters
/// from the raw query string when there is one.)
fn query_joined(raw: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        match out.get_mut(k.as_ref()) {
            Some(existing) => {
                existing.push(',');
                existing.push_str(&v);
            }
            None => {
                out.insert(k.into_owned(), v.into_owned());
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
            function: "get-order".into(),
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
        let q = query_joined("a=1&b=x%20y&a=2");
        assert_eq!(q["a"], "1,2");
        assert_eq!(q["b"], "x y");
        let mut h = HeaderMap::new();
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        h.append("x-b", "3".parse().unwrap());
        let g = gateway_headers(&h);
        assert_eq!(g.get_all("x-a").iter().collect::<Vec<_>>(), ["1,2"]);
        assert_eq!(g["x-b"], "3");
        assert_eq!(g.len(), 2);
    }
}
