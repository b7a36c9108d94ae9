//! Outbound HTTP to the provider APIs we call (prices, exchange, EVM and Solana RPC): one client
//! setup with a timeout and our user agent, and one way to describe a failed call without
//! the URL it went to. Webhook delivery builds its own client, as it pins resolved
//! addresses and never follows redirects.

use std::time::Duration;

/// The AWS SDK's HTTP client, over the same reqwest.
#[cfg(feature = "aws")]
pub mod aws;

/// Makes ring the process's TLS crypto provider (once; later calls do nothing). Every
/// outbound HTTPS client here is rustls on ring: reqwest has no provider of its own and
/// panics when building a client before this ran, so build clients with [`http_client`]
/// (alloy's providers too, with [`plain_client`]).
pub fn use_ring_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with the TLS provider in place, and the process's one TLS
/// configuration (see [`shared_tls`]).
pub fn http_client() -> reqwest::ClientBuilder {
    use_ring_tls();
    let builder = reqwest::Client::builder();
    match shared_tls() {
        Some(tls) => builder.tls_backend_preconfigured(tls),
        // reqwest builds its own, and reports the same failure to load the roots.
        None => builder,
    }
}

/// What reqwest would build for a client (ring, TLS 1.2 and 1.3, the platform's verifier over
/// the system's root store, SNI, HTTP/1.1 by ALPN), built once per process. reqwest builds it
/// anew for every client, and loading and parsing the system's root store is nearly all
/// of a client's cost: a few milliseconds each, paid by every webhook delivery (which needs a
/// client of its own) and, in a debug build, most of the test suite's CPU. Clones share the
/// verifier and its roots, and one TLS session cache (a session resumes only with a
/// ticket its own server issued). `None` when the roots cannot be loaded.
fn shared_tls() -> Option<rustls::ClientConfig> {
    use std::sync::{Arc, OnceLock};
    static TLS: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();
    TLS.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| tracing::warn!(error = %e, "the system's TLS roots did not load"))
            .ok()?;
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Some(tls)
    })
    .clone()
}

/// A client with [`http_client`]'s settings and no others: for alloy's providers
/// (`ProviderBuilder::connect_reqwest`), since `connect_http` builds a client, and loads the
/// TLS roots, of its own.
pub fn plain_client() -> reqwest::Client {
    http_client()
        .build()
        .expect("a plain reqwest client builds")
}

/// A client for a provider API, giving up after `timeout`.
pub(crate) fn provider_client(timeout: Duration) -> reqwest::Client {
    http_client()
        .timeout(timeout)
        .user_agent("PayOrders/1")
        .build()
        .expect("a plain reqwest client builds")
}

/// What went wrong with a provider call, without its URL. RPC and provider URLs often
/// carry an API key (`https://…/v2/<key>`), and this text reaches logs and, in 502 and
/// 503 answers, API callers.
pub(crate) fn error_text(e: reqwest::Error) -> String {
    redact_urls(&e.without_url().to_string())
}

/// `text` with everything URL-like (`scheme://…` up to a space, quote or bracket)
/// replaced by `<redacted URL>`: for the errors of clients whose error type cannot drop
/// its URL (alloy's transports).
pub(crate) fn redact_urls(text: &str) -> String {
    const REDACTED: &str = "<redacted URL>";
    let is_scheme = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    let ends_url = |c: char| c.is_whitespace() || "\"'`<>()[]{}|\\^,;".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_scheme(c))
            .last()
            .map_or(at, |(i, _)| i);
        let after = &rest[at + 3..];
        let end = at + 3 + after.find(ends_url).unwrap_or(after.len());
        out.push_str(&rest[..start]);
        out.push_str(REDACTED);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for `localhost` that no root store holds (self-signed, P-256), and its key.
    const SELF_SIGNED_CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBljCCATugAwIBAgIUcgf0qBkTGtdwP2yF+6rvjFQ0qtgwCgYIKoZIzj0EAwIw\n\
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMzA2MTAxNloYDzIxMjYxMTA5\n\
MDYxMDE2WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO\n\
PQMBBwNCAAQ7zh5l2VjqrrvsIiF4ypTG9vOxI7EONlT/MCpdAgOaWeFob8cpeQFL\n\
XhFZ0nWrIli2PszoKZNYYyhWFSSnIpMDo2kwZzAdBgNVHQ4EFgQUFSLsnQZjsdFI\n\
RaMR//YITWA4igQwHwYDVR0jBBgwFoAUFSLsnQZjsdFIRaMR//YITWA4igQwDwYD\n\
VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglsb2NhbGhvc3QwCgYIKoZIzj0EAwID\n\
SQAwRgIhAP8LNMVfwEOWvYrmlrVqXz2qaZrvi1uGpQLaFoxG+c8BAiEAsS5/0E8C\n\
4EAWpsHm3jKk/AStvpkBrKWXqO+fpCYBdzY=\n\
-----END CERTIFICATE-----";
    const SELF_SIGNED_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZh8yVh8vYl1I3BE0\n\
G30PaPtFt5R5qH4H6b5e5mGxX7WhRANCAAQ7zh5l2VjqrrvsIiF4ypTG9vOxI7EO\n\
NlT/MCpdAgOaWeFob8cpeQFLXhFZ0nWrIli2PszoKZNYYyhWFSSnIpMD\n\
-----END PRIVATE KEY-----";

    /// Every client shares one TLS configuration, and it still verifies servers: a TLS server
    /// on localhost with a self-signed certificate is refused by two clients in turn (the
    /// second one built from the same shared configuration), as an attacker's would be.
    #[tokio::test]
    async fn shared_tls_still_refuses_an_untrusted_certificate() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let certs = CertificateDer::pem_slice_iter(SELF_SIGNED_CERT.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(SELF_SIGNED_KEY.as_bytes()).unwrap();
            let config = Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
            );
            let mut alerts = Vec::new();
            for _ in 0..2 {
                let (mut tcp, _) = listener.accept().unwrap();
                let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
                while conn.is_handshaking() {
                    if let Err(e) = conn.complete_io(&mut tcp) {
                        alerts.push(e.to_string());
                        break;
                    }
                }
            }
            alerts
        });
        assert!(shared_tls().is_some(), "the system's roots load here");
        for _ in 0..2 {
            let err = plain_client()
                .get(format!("https://localhost:{port}/"))
                .send()
                .await
                .expect_err("an untrusted certificate is refused");
            let mut chain = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(e) = source {
                chain.push_str(&format!(": {e}"));
                source = e.source();
            }
            assert!(chain.contains("invalid peer certificate"), "{chain}");
        }
        let alerts = server.join().unwrap();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert!(
            alerts.iter().all(|a| a.contains("received fatal alert")),
            "{alerts:?}"
        );
    }

    #[test]
    fn urls_are_redacted_and_the_rest_is_kept() {
        assert_eq!(
            redact_urls(
                "error sending request for url (https://base.g.alchemy.com/v2/SECRETKEY?x=1)"
            ),
            "error sending request for url (<redacted URL>)"
        );
        assert_eq!(
            redact_urls("a wss://k:SECRET@host/p, then http://1.2.3.4:8545/KEY and ://KEY"),
            "a <redacted URL>, then <redacted URL> and <redacted URL>"
        );
        assert_eq!(redact_urls("é→https://x/SECRET"), "é→<redacted URL>");
        assert_eq!(redact_urls("no url: 12:30 here"), "no url: 12:30 here");
    }

    #[tokio::test]
    async fn reqwest_errors_lose_their_url() {
        let e = provider_client(Duration::from_secs(5))
            .get("http://127.0.0.1:1/v2/SECRETKEY")
            .send()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("SECRETKEY"), "the case this guards");
        let text = error_text(e);
        assert!(!text.contains("SECRETKEY"), "{text}");
        assert!(!text.is_empty());
    }

    /// The first bytes an HTTPS client sends to a local listener: a TLS handshake record
    /// (0x16) opens a ClientHello, so the client got as far as speaking TLS on ring.
    async fn first_bytes_of<F: std::future::Future<Output = ()>>(
        call: impl FnOnce(u16) -> F,
    ) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let read = async {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 5];
            conn.read_exact(&mut buf).await.unwrap();
            buf
        };
        let (bytes, ()) = tokio::join!(read, async {
            // The call fails (the listener never answers the handshake); only what it sent
            // counts.
            let _ = tokio::time::timeout(Duration::from_secs(5), call(port)).await;
        });
        bytes
    }

    #[tokio::test]
    async fn every_https_client_speaks_tls_on_ring() {
        use aws_sdk_sqs::config::{Credentials, Region};
        // reqwest (ours, and alloy's) panics if no provider was installed.
        let bytes = first_bytes_of(|port| async move {
            let url = format!("https://127.0.0.1:{port}/");
            let _ = http_client()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap()
                .get(url)
                .send()
                .await;
        })
        .await;
        assert_eq!(bytes[0], 0x16, "a TLS handshake record: {bytes:?}");

        // The AWS SDK's client is ours too (it has none of its own).
        let bytes = first_bytes_of(|port| async move {
            let sdk = crate::config::aws_sdk_loader()
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
                .endpoint_url(format!("https://127.0.0.1:{port}"))
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .load()
                .await;
            let _ = aws_sdk_sqs::Client::new(&sdk).list_queues().send().await;
        })
        .await;
        assert_eq!(bytes[0], 0x16, "a TLS handshake record: {bytes:?}");
    }
}
