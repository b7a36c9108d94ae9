//! Where a webhook may be sent. Live mode: https only, and the host must resolve only to
//! public addresses (no private, loopback, link-local, metadata, CGNAT, multicast or
//! reserved ranges, IPv4-mapped or NAT64 forms included). Test mode may also use http, and
//! loopback (`http://localhost:…`) where the caller allows it: the local host does, the
//! Lambda functions in AWS do not deliver there. Checked when an endpoint is saved and again
//! before each delivery, which then connects to the address that was checked (no DNS
//! rebinding). An order's own `webhook_url` is checked for its form when the order is
//! created, and in live mode for a private address written as an IP
//! ([`check_literal_address`]); its host name is resolved only when delivered to.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("not a valid URL")]
    Malformed,
    #[error("live-mode webhook URLs must use https")]
    NotHttps,
    #[error("webhook URLs must use http or https")]
    Scheme,
    #[error("webhook URLs must not carry credentials")]
    Credentials,
    #[error("the host does not resolve")]
    Unresolvable,
    #[error("the host resolves to {0}, a private, loopback, link-local or reserved address")]
    Forbidden(IpAddr),
    #[error("the host resolves to {0}, outside the endpoint's allowed_ips")]
    NotAllowed(IpAddr),
}

/// Checks a URL's form for the mode.
pub fn check_url(text: &str, livemode: bool) -> Result<Url, UrlRefusal> {
    let url = Url::parse(text).map_err(|_| UrlRefusal::Malformed)?;
    match url.scheme() {
        "https" => {}
        "http" if !livemode => {}
        "http" => return Err(UrlRefusal::NotHttps),
        _ => return Err(UrlRefusal::Scheme),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlRefusal::Malformed);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    Ok(url)
}

/// Resolves the URL's host and checks every address; returns the addresses to connect to.
/// Only public addresses pass, and loopback too when `allow_loopback` (test mode on a
/// developer's machine).
pub async fn resolve_destination(
    url: &Url,
    allow_loopback: bool,
) -> Result<Vec<SocketAddr>, UrlRefusal> {
    let port = url.port_or_known_default().ok_or(UrlRefusal::Malformed)?;
    let addrs: Vec<SocketAddr> = match (literal_ip(url), url.host()) {
        (Some(ip), _) => vec![SocketAddr::new(ip, port)],
        (None, Some(url::Host::Domain(d))) => tokio::net::lookup_host((d, port))
            .await
            .map_err(|_| UrlRefusal::Unresolvable)?
            .collect(),
        (None, _) => return Err(UrlRefusal::Malformed),
    };
    if addrs.is_empty() {
        return Err(UrlRefusal::Unresolvable);
    }
    for a in &addrs {
        if is_forbidden(a.ip(), allow_loopback) {
            return Err(UrlRefusal::Forbidden(a.ip()));
        }
    }
    Ok(addrs)
}

/// Refuses a URL whose host is written as an IP address that [`resolve_destination`] would
/// refuse, without resolving anything: the check for a URL that is only stored, where a DNS
/// lookup is not worth its cost (an order's own `webhook_url`). A host name passes here; it
/// is resolved and checked before each delivery.
pub fn check_literal_address(url: &Url, allow_loopback: bool) -> Result<(), UrlRefusal> {
    match literal_ip(url) {
        Some(ip) if is_forbidden(ip, allow_loopback) => Err(UrlRefusal::Forbidden(ip)),
        _ => Ok(()),
    }
}

/// The URL's host when it is written as an IP address.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The resolved addresses inside an endpoint's `allowed_ips` (all of them when it has
/// none); refused when none is inside.
pub fn keep_allowed(
    addrs: Vec<SocketAddr>,
    allowed: &[ipnet::IpNet],
) -> Result<Vec<SocketAddr>, UrlRefusal> {
    if allowed.is_empty() {
        return Ok(addrs);
    }
    let first = addrs.first().map(SocketAddr::ip);
    let inside: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| allowed.iter().any(|net| net.contains(&a.ip())))
        .collect();
    match (inside.is_empty(), first) {
        (false, _) => Ok(inside),
        (true, Some(ip)) => Err(UrlRefusal::NotAllowed(ip)),
        (true, None) => Err(UrlRefusal::Unresolvable),
    }
}

fn is_forbidden(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4, allow_loopback);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let v4 = Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                );
                return forbidden_v4(v4, allow_loopback);
            }
            if v6.is_loopback() {
                return !allow_loopback;
            }
            v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || v6.to_ipv4().is_some_and(|v4| forbidden_v4(v4, allow_loopback) && seg[..5] == [0; 5])
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let o = ip.octets();
    if ip.is_loopback() {
        return !allow_loopback;
    }
    ip.is_private()
        || ip.is_link_local() // 169.254/16, the cloud metadata range
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_ips_keep_only_the_addresses_inside() {
        let a = |t: &str| t.parse::<SocketAddr>().unwrap();
        let net = |t: &str| t.parse::<ipnet::IpNet>().unwrap();
        let resolved = vec![a("93.184.216.34:443"), a("[2606:2800:220:1::]:443")];
        assert_eq!(keep_allowed(resolved.clone(), &[]), Ok(resolved.clone()));
        assert_eq!(
            keep_allowed(resolved.clone(), &[net("93.184.216.0/24")]),
            Ok(vec![a("93.184.216.34:443")])
        );
        assert_eq!(
            keep_allowed(
                resolved.clone(),
                &[net("93.184.216.34/32"), net("2606:2800::/32")]
            ),
            Ok(resolved.clone())
        );
        // Nothing inside: refused, naming the first address.
        assert_eq!(
            keep_allowed(resolved.clone(), &[net("93.184.217.0/24")]),
            Err(UrlRefusal::NotAllowed("93.184.216.34".parse().unwrap()))
        );
        // An IPv4 block does not admit the IPv4-mapped IPv6 form by accident, nor the reverse.
        assert!(
            keep_allowed(
                vec![a("[::ffff:93.184.216.34]:443")],
                &[net("93.184.216.0/24")]
            )
            .is_err()
        );
        assert_eq!(
            keep_allowed(vec![], &[net("0.0.0.0/0")]),
            Err(UrlRefusal::Unresolvable)
        );
    }

    #[test]
    fn forbidden_ranges() {
        for ip in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "127.0.0.1",
            "127.8.8.8",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap(), false), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap(), false), "{ip}");
        }
        // Test mode allows loopback, and nothing else more.
        assert!(!is_forbidden("127.0.0.1".parse().unwrap(), true));
        assert!(!is_forbidden("::1".parse().unwrap(), true));
        assert!(is_forbidden("10.0.0.1".parse().unwrap(), true));
        assert!(is_forbidden("169.254.169.254".parse().unwrap(), true));
    }

    #[test]
    fn url_forms() {
        assert!(check_url("https://example.com/hook", true).is_ok());
        assert_eq!(
            check_url("http://example.com/hook", true),
            Err(UrlRefusal::NotHttps)
        );
        assert!(check_url("http://localhost:8080/hook", false).is_ok());
        assert_eq!(
            check_url("ftp://example.com/", false),
            Err(UrlRefusal::Scheme)
        );
        assert_eq!(
            check_url("https://u:p@example.com/", true),
            Err(UrlRefusal::Credentials)
        );
        assert_eq!(check_url("not a url", true), Err(UrlRefusal::Malformed));
    }

    #[test]
    fn literal_addresses_are_checked_without_resolving() {
        let live = |u: &str| check_url(u, true).unwrap();
        for u in [
            "https://10.0.0.5/x",
            "https://127.0.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[::ffff:192.168.1.1]/x",
        ] {
            assert!(
                matches!(
                    check_literal_address(&live(u), false),
                    Err(UrlRefusal::Forbidden(_))
                ),
                "{u}"
            );
        }
        // Public addresses and host names pass (a name is checked when delivered to).
        for u in [
            "https://93.184.216.34/x",
            "https://localhost/x",
            "https://example.com/x",
        ] {
            assert_eq!(check_literal_address(&live(u), false), Ok(()), "{u}");
        }
        // Loopback where the caller allows it, and nothing else more.
        let local = check_url("http://127.0.0.1:8080/x", false).unwrap();
        assert_eq!(check_literal_address(&local, true), Ok(()));
        let private = check_url("http://10.0.0.5/x", false).unwrap();
        assert!(check_literal_address(&private, true).is_err());
    }

    #[tokio::test]
    async fn resolution_checks_every_address() {
        let live = |u: &str| check_url(u, true).unwrap();
        for u in [
            "https://10.1.2.3/",
            "https://172.16.5.4/",
            "https://192.168.0.10/",
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://localhost/",
        ] {
            assert!(
                matches!(
                    resolve_destination(&live(u), false).await,
                    Err(UrlRefusal::Forbidden(_))
                ),
                "{u}"
            );
        }
        // Loopback only where the caller allows it.
        let local = check_url("http://localhost:9/x", false).unwrap();
        assert!(resolve_destination(&local, true).await.is_ok());
        assert!(matches!(
            resolve_destination(&local, false).await,
            Err(UrlRefusal::Forbidden(_))
        ));
        let public = live("https://93.184.216.34/");
        assert_eq!(
            resolve_destination(&public, false).await.unwrap()[0].port(),
            443
        );
    }
}
