//! The outbound HTTP client (webhook deliveries, RPC nodes, price and exchange APIs) checks
//! the server's certificate: its chain to a trusted root, and the name it was asked for.
//! `net::http_client` assembles its TLS configuration by hand (a custom verifier over the
//! system's roots), so this is tested against real TLS servers on loopback.
//!
//! The client loads its roots once per process, from the system's store, which
//! `SSL_CERT_FILE` overrides: the client's side runs in a process of its own (this test
//! binary again, running only [`client_side`]) whose only trusted root is a test CA.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{Read, Write};
use std::sync::Arc;

const PROBE: &str = "PAYORDERS_TLS_PROBE";

/// A CA of its own, named `name`.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A TLS server on loopback, for `name`, its certificate issued by `issuer`; answers every
/// request `200 ok`. Returns its port.
fn serve(name: &str, issuer: &Issuer<'static, KeyPair>) -> u16 {
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    let chain = vec![CertificateDer::from(leaf.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let (mut request, mut buf) = (Vec::new(), [0u8; 4096]);
            // A refused handshake ends the read with an error: the next connection.
            while let Ok(n @ 1..) = tls.read(&mut buf) {
                request.extend_from_slice(&buf[..n]);
                if request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let _ = tls.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn the_http_client_checks_the_chain_and_the_name_of_a_servers_certificate() {
    let (trusted_pem, trusted) = ca("PayOrders test CA");
    let (_, rogue) = ca("Nobody's CA");
    let good = serve("good.test", &trusted);
    let forged = serve("good.test", &rogue);
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, trusted_pem).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "tls::client_side", "--nocapture"])
        .env("SSL_CERT_FILE", &roots)
        .env(PROBE, format!("{good} {forged}"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the client's side failed:\n{said}");
    assert!(
        said.contains("1 passed"),
        "the client's side did not run:\n{said}"
    );
}

/// The client's side of the test above, run by it in a process of its own.
#[tokio::test]
#[ignore = "run by the_http_client_checks_the_chain_and_the_name_of_a_servers_certificate"]
async fn client_side() {
    let ports = std::env::var(PROBE).expect("run by the test above, which sets the ports");
    let [good, forged]: [u16; 2] = ports
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let loopback = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let client = |port| {
        payorders::net::http_client()
            .resolve("good.test", loopback(port))
            .resolve("other.test", loopback(port))
            .build()
            .unwrap()
    };
    let get = |port: u16, name: &str| {
        let url = format!("https://{name}:{port}/");
        let client = client(port);
        async move { client.get(url).send().await }
    };
    let refused = |r: reqwest::Result<reqwest::Response>| {
        let e = r.expect_err("the certificate should have been refused");
        format!("{e:?}")
    };

    // The name it was issued for, from the trusted CA: accepted.
    let ok = get(good, "good.test").await.expect("a trusted certificate");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "ok");
    // The same certificate for another name: refused.
    let e = refused(get(good, "other.test").await);
    assert!(e.contains("NotValidForName"), "{e}");
    // The right name from a CA nobody trusts: refused.
    let e = refused(get(forged, "good.test").await);
    assert!(e.contains("UnknownIssuer"), "{e}");
}
