//! The HTTP front of the local host (axum): `GET /openapi.json` and `GET /docs` (the API's
//! document and a self-contained page rendering it); every other request goes to
//! [`Host::handle`].

use crate::host::{Answer, Host, IncomingRequest};
use axum::extract::{ConnectInfo, Request};
use axum::response::IntoResponse;
use lambda_http::Body as LambdaBody;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// API Gateway's own payload limit; our handlers refuse above 256 KB with our error.
const MAX_GATEWAY_BODY: usize = 10 * 1024 * 1024;

pub async fn serve(host: Arc<Host>, listener: TcpListener) -> std::io::Result<()> {
    // Generated from the code when built with it; `make dev`'s build (without the feature,
    // which saves compiling utoipa) serves the committed copy, which a test keeps equal.
    #[cfg(feature = "openapi")]
    let document = crate::openapi::json();
    #[cfg(not(feature = "openapi"))]
    let document = include_str!("../../../docs/openapi.json");
    let app = axum::Router::new()
        .route(
            "/openapi.json",
            axum::routing::get(move || async move {
                ([("content-type", "application/json")], document)
            }),
        )
        .route(
            "/docs",
            axum::routing::get(|| async {
                (
                    [("content-type", "text/html; charset=utf-8")],
                    include_str!("docs.html"),
                )
            }),
        )
        .fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
                let host = host.clone();
                async move { handle(&host, peer, req).await }
            },
        );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

async fn handle(host: &Host, peer: SocketAddr, req: Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_GATEWAY_BODY).await {
        Ok(b) => b.to_vec(),
        Err(_) => {
            return (
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                [("content-type", "application/json")],
                r#"{"message":"Request Entity Too Large"}"#,
            )
                .into_response();
        }
    };
    let incoming = IncomingRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        raw_query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
        source_ip: peer.ip().to_string(),
    };
    let resp = match host.handle(incoming).await {
        Answer::Whole(r) => r,
        Answer::Stream(r) => {
            let (parts, body) = r.into_parts();
            return axum::response::Response::from_parts(parts, axum::body::Body::new(body));
        }
    };
    let (parts, body) = resp.into_parts();
    let bytes: Vec<u8> = match body {
        LambdaBody::Text(t) => t.into_bytes(),
        LambdaBody::Binary(b) => b,
        _ => Vec::new(),
    };
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}
