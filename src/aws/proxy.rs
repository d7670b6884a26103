//! Which outbound proxy, if any, to use for the X-Ray endpoint.
//!
//! The relay talks to one endpoint, so the decision is made once: the `-p` / cfg
//! `ProxyAddress` when given, else `HTTPS_PROXY` / `https_proxy` unless `NO_PROXY` /
//! `no_proxy` names the endpoint host.

use super::endpoint::EndpointUrl;
use super::env::Env;
use std::net::IpAddr;

/// The proxy URL to use for `endpoint`, or None to connect directly.
///
/// An explicit `configured` proxy is always used, as in the original daemon; `NO_PROXY`
/// only filters the proxy taken from the environment.
pub fn proxy_for_endpoint(
    configured: Option<&str>,
    endpoint: &EndpointUrl,
    env: &Env,
) -> Option<String> {
    if let Some(proxy) = configured.map(str::trim).filter(|proxy| !proxy.is_empty()) {
        log::debug!("Using proxy address: {}", redact_user_info(proxy));
        return Some(proxy.to_owned());
    }
    let proxy = env.get_first(&["HTTPS_PROXY", "https_proxy"])?;
    if let Some(no_proxy) = env.get_first(&["NO_PROXY", "no_proxy"])
        && no_proxy_matches(no_proxy, endpoint.bare_host(), endpoint.port)
    {
        log::debug!(
            "Not using proxy {} for {}: NO_PROXY matches",
            redact_user_info(proxy),
            endpoint.host
        );
        return None;
    }
    log::debug!("Using proxy address: {}", redact_user_info(proxy));
    Some(proxy.to_owned())
}

/// `http://user:password@host:3128` → `http://***@host:3128`, for log lines.
pub fn redact_user_info(proxy: &str) -> String {
    let (scheme, rest) = proxy.split_once("://").unwrap_or(("", proxy));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if scheme.is_empty() => format!("***{}", &rest[at..]),
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => proxy.to_owned(),
    }
}

/// Whether a `NO_PROXY` list (comma separated) covers `host:port`.
///
/// Entries: `*` (everything); a domain, matching itself and its subdomains, with an
/// optional leading `.` or `*.`; an IP address; an IP network `10.0.0.0/8`; any of these
/// with `:port` (IPv6 as `[::1]:port`) to match only that port.
pub fn no_proxy_matches(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| entry_matches(&entry.to_ascii_lowercase(), &host, port))
}

fn entry_matches(entry: &str, host: &str, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    let (pattern, entry_port) = split_entry_port(entry);
    if entry_port.is_some_and(|entry_port| entry_port != port) {
        return false;
    }
    if let Some((network, prefix)) = pattern.split_once('/') {
        return network_contains(network, prefix, host);
    }
    let domain = pattern
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .trim_end_matches('.');
    if domain.is_empty() {
        return false;
    }
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// `host:port` → (host, port); bare IPv6 (several colons) has no port.
fn split_entry_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((address, after)) => (
                address,
                after.strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (entry, None),
        };
    }
    match entry.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn network_contains(network: &str, prefix: &str, host: &str) -> bool {
    let (Ok(network), Ok(prefix), Ok(address)) = (
        network.parse::<IpAddr>(),
        prefix.parse::<u32>(),
        host.parse::<IpAddr>(),
    ) else {
        return false;
    };
    match (network, address) {
        (IpAddr::V4(network), IpAddr::V4(address)) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(network) & mask == u32::from(address) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(address)) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(network) & mask == u128::from(address) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> EndpointUrl {
        EndpointUrl::parse(url).unwrap()
    }

    #[test]
    fn star_matches_everything() {
        assert!(no_proxy_matches("*", "xray.us-east-1.amazonaws.com", 443));
        assert!(no_proxy_matches("localhost, *", "anything", 1));
    }

    #[test]
    fn domains_match_themselves_and_subdomains_only() {
        let list = "amazonaws.com";
        assert!(no_proxy_matches(list, "amazonaws.com", 443));
        assert!(no_proxy_matches(list, "xray.us-east-1.amazonaws.com", 443));
        assert!(no_proxy_matches(list, "XRAY.US-EAST-1.AMAZONAWS.COM.", 443));
        assert!(!no_proxy_matches(list, "notamazonaws.com", 443));
        assert!(!no_proxy_matches(list, "amazonaws.com.evil.net", 443));
        for dotted in [".amazonaws.com", "*.amazonaws.com", "amazonaws.com."] {
            assert!(
                no_proxy_matches(dotted, "xray.us-east-1.amazonaws.com", 443),
                "{dotted}"
            );
        }
    }

    #[test]
    fn lists_are_comma_separated_with_spaces_and_empties() {
        let list = " localhost ,, .internal ,169.254.169.254";
        assert!(no_proxy_matches(list, "localhost", 80));
        assert!(no_proxy_matches(list, "svc.internal", 80));
        assert!(no_proxy_matches(list, "169.254.169.254", 80));
        assert!(!no_proxy_matches(list, "example.com", 80));
        assert!(!no_proxy_matches("", "example.com", 80));
        assert!(!no_proxy_matches(".", "example.com", 80));
    }

    #[test]
    fn ports_restrict_the_match() {
        assert!(no_proxy_matches(
            "amazonaws.com:443",
            "xray.amazonaws.com",
            443
        ));
        assert!(!no_proxy_matches(
            "amazonaws.com:8443",
            "xray.amazonaws.com",
            443
        ));
        assert!(no_proxy_matches("[::1]:2000", "::1", 2000));
        assert!(!no_proxy_matches("[::1]:2000", "::1", 2001));
        assert!(no_proxy_matches("::1", "::1", 2000));
        assert!(no_proxy_matches("[::1]", "::1", 2000));
    }

    #[test]
    fn ip_networks_match_addresses_inside_them() {
        assert!(no_proxy_matches("10.0.0.0/8", "10.1.2.3", 443));
        assert!(!no_proxy_matches("10.0.0.0/8", "11.1.2.3", 443));
        assert!(no_proxy_matches("0.0.0.0/0", "8.8.8.8", 443));
        assert!(no_proxy_matches("192.168.1.7/32", "192.168.1.7", 443));
        assert!(no_proxy_matches("fd00::/8", "fd12::1", 443));
        assert!(!no_proxy_matches("fd00::/8", "10.1.2.3", 443));
        assert!(!no_proxy_matches("10.0.0.0/8", "ten.example", 443));
        assert!(!no_proxy_matches("10.0.0.0/99", "10.1.2.3", 443));
    }

    #[test]
    fn user_info_is_redacted_for_logs() {
        assert_eq!(
            redact_user_info("http://me:pw@proxy:3128"),
            "http://***@proxy:3128"
        );
        assert_eq!(redact_user_info("me:pw@proxy:3128"), "***@proxy:3128");
        assert_eq!(
            redact_user_info("http://proxy:3128/a@b"),
            "http://proxy:3128/a@b"
        );
        assert_eq!(redact_user_info("http://proxy:3128"), "http://proxy:3128");
    }

    #[test]
    fn the_configured_proxy_wins_and_ignores_no_proxy() {
        let env = Env::from_pairs([("HTTPS_PROXY", "http://env-proxy:3128"), ("NO_PROXY", "*")]);
        let proxy = proxy_for_endpoint(
            Some("http://flag-proxy:8080"),
            &endpoint("https://xray.us-east-1.amazonaws.com"),
            &env,
        );
        assert_eq!(proxy.as_deref(), Some("http://flag-proxy:8080"));
    }

    #[test]
    fn the_environment_proxy_honours_no_proxy() {
        let xray = endpoint("https://xray.us-east-1.amazonaws.com");
        let env = Env::from_pairs([("https_proxy", "http://lower:3128")]);
        assert_eq!(
            proxy_for_endpoint(None, &xray, &env).as_deref(),
            Some("http://lower:3128")
        );
        let env = Env::from_pairs([
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
        ]);
        assert_eq!(
            proxy_for_endpoint(Some(""), &xray, &env).as_deref(),
            Some("http://upper:3128")
        );
        let env = Env::from_pairs([
            ("HTTPS_PROXY", "http://upper:3128"),
            ("no_proxy", ".amazonaws.com"),
        ]);
        assert_eq!(proxy_for_endpoint(None, &xray, &env), None);
        let local = endpoint("http://127.0.0.1:2000");
        let env = Env::from_pairs([
            ("HTTPS_PROXY", "http://upper:3128"),
            ("NO_PROXY", "127.0.0.1:2000"),
        ]);
        assert_eq!(proxy_for_endpoint(None, &local, &env), None);
        assert_eq!(proxy_for_endpoint(None, &xray, &Env::from_pairs([])), None);
    }
}
