//! The AWS SDK's HTTP client: the workspace's one reqwest client (rustls on ring, HTTP/1.1).
//!
//! The SDK's own client (aws-smithy-http-client) is a second hyper client stack beside
//! reqwest's, with HTTP/2 always compiled in; DynamoDB, SQS and Secrets Manager answer over
//! HTTP/1.1, and every function already links reqwest. Handing the SDK a connector over
//! reqwest keeps one client, one connection pool and one TLS setup per binary.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::time::Duration;

/// How long opening a connection may take (aws-config's default, 3.1 s, so that a lost SYN
/// is retried once by TCP before the SDK's own retry).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The SDK's HTTP client over reqwest. Cheap to clone: clients share one connection pool.
pub fn sdk_http_client() -> SharedHttpClient {
    let client = super::http_client()
        .connect_timeout(CONNECT_TIMEOUT)
        // The SDK signs every request; a proxy from the environment would be a surprise.
        .no_proxy()
        .build()
        .expect("a plain reqwest client builds");
    SharedHttpClient::new(Reqwest(client))
}

#[derive(Debug, Clone)]
struct Reqwest(reqwest::Client);

impl HttpClient for Reqwest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            client: self.0.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct Connector {
    client: reqwest::Client,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // The SDK's bodies are in memory (JSON documents): send them as bytes, which keeps
            // their length known; anything streamed goes through as a stream.
            let body = match body.bytes() {
                Some(bytes) => reqwest::Body::from(bytes.to_vec()),
                None => reqwest::Body::wrap(body),
            };
            let mut request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|e| ConnectorError::user(e.into()))?;
            if let Some(t) = read_timeout {
                *request.timeout_mut() = Some(t);
            }
            let response = client.execute(request).await.map_err(connector_error)?;
            let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
            HttpResponse::try_from(http::Response::from_parts(
                parts,
                SdkBody::from_body_1_x(body),
            ))
            .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK retries timeouts and I/O errors (transient); a request it could not even build
/// is the caller's.
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else if e.is_builder() {
        ConnectorError::user(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}
