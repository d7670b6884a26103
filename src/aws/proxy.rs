//! Which outbound proxy, if any, each outbound call goes through.
//!
//! The rules of Go's `http.ProxyFromEnvironment`, which every HTTP client on the host is
//! likely to follow: `HTTPS_PROXY` / `https_proxy` for https URLs, `HTTP_PROXY` /
//! `http_proxy` for http URLs (the upper-case spelling wins), never for `localhost` or a
//! loopback address, and not for hosts `NO_PROXY` / `no_proxy` names. For the X-Ray endpoint
//! the `-p` / cfg `ProxyAddress` comes first and is always used, as in the original daemon.

use super::endpoint::{EndpointUrl, Scheme};
use super::env::Env;
use std::fmt;
use std::net::IpAddr;

/// The proxy URL to use for the X-Ray `endpoint`, or None to connect directly.
///
/// An explicit `configured` proxy is always used, as in the original daemon; otherwise the
/// environment's proxy for the endpoint's scheme, as [`EnvProxies::proxy_for`] decides.
pub fn proxy_for_endpoint(
    configured: Option<&str>,
    endpoint: &EndpointUrl,
    env: &Env,
) -> Option<String> {
    let configured = configured.map(str::trim).filter(|proxy| !proxy.is_empty());
    // The original's line, with the -p / ProxyAddress value (empty when none is given).
    log::debug!(
        "Using proxy address: {}",
        configured.map(redact_user_info).unwrap_or_default()
    );
    if let Some(proxy) = configured {
        return Some(proxy.to_owned());
    }
    let proxies = EnvProxies::from_env(env);
    let proxy = proxies.proxy_for(endpoint.scheme, endpoint.bare_host(), endpoint.port)?;
    log::debug!(
        "Using proxy {} from the environment for {}",
        redact_user_info(proxy),
        endpoint.host
    );
    Some(proxy.to_owned())
}

/// The environment's proxy variables, read once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvProxies {
    http: Option<String>,
    https: Option<String>,
    no_proxy: Option<String>,
}

impl EnvProxies {
    /// Reads `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`, each upper case first, then lower.
    pub fn from_env(env: &Env) -> Self {
        let first = |names: &[&str]| env.get_first(names).map(str::trim).map(resolved_by_proxy);
        EnvProxies {
            http: first(&["HTTP_PROXY", "http_proxy"]),
            https: first(&["HTTPS_PROXY", "https_proxy"]),
            no_proxy: first(&["NO_PROXY", "no_proxy"]),
        }
    }

    /// No proxy for anything: for instance metadata, which is never proxied.
    pub fn none() -> Self {
        EnvProxies::default()
    }

    /// The proxy for a URL with this scheme, host (IPv6 without brackets) and port, or None
    /// to connect directly.
    pub fn proxy_for(&self, scheme: Scheme, host: &str, port: u16) -> Option<&str> {
        let proxy = match scheme {
            Scheme::Http => self.http.as_deref(),
            Scheme::Https => self.https.as_deref(),
        }
        .filter(|proxy| !proxy.is_empty())?;
        if is_local(host) {
            return None;
        }
        if let Some(no_proxy) = &self.no_proxy
            && no_proxy_matches(no_proxy, host, port)
        {
            return None;
        }
        Some(proxy)
    }

    /// [`proxy_for`](Self::proxy_for) a whole URL; None for URLs that are not http(s).
    pub fn proxy_for_url(&self, url: &str) -> Option<&str> {
        let uri = url.parse::<ureq::http::Uri>().ok()?;
        let scheme = match uri.scheme_str()?.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        self.proxy_for(scheme, host, port)
    }
}

/// Go hands a SOCKS5 proxy the target's host name to resolve, `socks5://` as `socks5h://`;
/// ureq resolves it first for `socks5://`, which fails where only the proxy knows the name.
fn resolved_by_proxy(proxy: &str) -> String {
    match proxy.get(..9) {
        Some(scheme) if scheme.eq_ignore_ascii_case("socks5://") => {
            format!("socks5h://{}", &proxy[9..])
        }
        _ => proxy.to_owned(),
    }
}

/// Proxy URLs can hold a password, so Debug shows them redacted.
impl fmt::Debug for EnvProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |proxy: &Option<String>| proxy.as_deref().map(redact_user_info);
        f.debug_struct("EnvProxies")
            .field("http", &redacted(&self.http))
            .field("https", &redacted(&self.https))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// Go's rule: `localhost` and loopback addresses (IPv4-mapped ones included) never go
/// through a proxy, whatever `NO_PROXY` says.
fn is_local(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(address)) => address.is_loopback(),
        Ok(IpAddr::V6(address)) => {
            address.is_loopback() || address.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
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

    #[test]
    fn each_scheme_takes_its_own_variable() {
        let both = EnvProxies::from_env(&Env::from_pairs([
            ("HTTPS_PROXY", "http://secure:3128"),
            ("http_proxy", "http://plain:3128"),
        ]));
        assert_eq!(
            both.proxy_for(Scheme::Https, "sts.amazonaws.com", 443),
            Some("http://secure:3128")
        );
        assert_eq!(
            both.proxy_for(Scheme::Http, "169.254.170.2", 80),
            Some("http://plain:3128")
        );
        // Go's rule, unlike a fallback: an http URL does not use HTTPS_PROXY.
        let https_only =
            EnvProxies::from_env(&Env::from_pairs([("https_proxy", "http://secure:3128")]));
        assert_eq!(https_only.proxy_for(Scheme::Http, "localstack", 4566), None);
        let http_only = EnvProxies::from_env(&Env::from_pairs([("HTTP_PROXY", "http://p:1")]));
        assert_eq!(http_only.proxy_for(Scheme::Https, "xray.aws", 443), None);
        let upper_wins = EnvProxies::from_env(&Env::from_pairs([
            ("HTTP_PROXY", "http://upper:1"),
            ("http_proxy", "http://lower:1"),
        ]));
        assert_eq!(
            upper_wins.proxy_for(Scheme::Http, "h", 80),
            Some("http://upper:1")
        );
    }

    #[test]
    fn a_socks5_proxy_resolves_the_target_itself_as_in_go() {
        let socks = EnvProxies::from_env(&Env::from_pairs([
            ("HTTPS_PROXY", "SOCKS5://u:p@gate:1080"),
            ("HTTP_PROXY", "socks5h://gate"),
        ]));
        assert_eq!(
            socks.proxy_for(Scheme::Https, "xray.us-east-1.amazonaws.com", 443),
            Some("socks5h://u:p@gate:1080")
        );
        assert_eq!(
            socks.proxy_for(Scheme::Http, "169.254.170.2", 80),
            Some("socks5h://gate")
        );
    }

    #[test]
    fn localhost_and_loopback_are_never_proxied() {
        let proxies = EnvProxies::from_env(&Env::from_pairs([
            ("HTTPS_PROXY", "http://secure:3128"),
            ("HTTP_PROXY", "http://plain:3128"),
        ]));
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(proxies.proxy_for(Scheme::Http, host, 4566), None, "{host}");
            assert_eq!(proxies.proxy_for(Scheme::Https, host, 443), None, "{host}");
        }
        // Only the name localhost itself: its subdomains are ordinary names.
        assert_eq!(
            proxies.proxy_for(Scheme::Http, "app.localhost.example", 80),
            Some("http://plain:3128")
        );
        assert_eq!(
            proxies.proxy_for(Scheme::Http, "10.0.0.1", 80),
            Some("http://plain:3128")
        );
        assert_eq!(EnvProxies::none().proxy_for(Scheme::Http, "h", 80), None);
    }

    #[test]
    fn whole_urls_are_split_for_the_decision() {
        let proxies = EnvProxies::from_env(&Env::from_pairs([
            ("HTTPS_PROXY", "http://secure:3128"),
            ("HTTP_PROXY", "http://plain:3128"),
            ("NO_PROXY", "169.254.170.2"),
        ]));
        assert_eq!(
            proxies.proxy_for_url("https://sts.us-east-1.amazonaws.com/"),
            Some("http://secure:3128")
        );
        assert_eq!(
            proxies.proxy_for_url("http://agent.internal:8080/v2/credentials?x=1"),
            Some("http://plain:3128")
        );
        assert_eq!(
            proxies.proxy_for_url("http://169.254.170.2/v2/credentials"),
            None
        );
        assert_eq!(proxies.proxy_for_url("http://[::1]:1234/creds"), None);
        assert_eq!(proxies.proxy_for_url("http://localhost:4566/"), None);
        assert_eq!(proxies.proxy_for_url("ftp://example.com/"), None);
        assert_eq!(proxies.proxy_for_url("not a url"), None);
    }

    #[test]
    fn a_local_http_endpoint_is_reached_directly_under_a_corporate_https_proxy() {
        let env = Env::from_pairs([("HTTPS_PROXY", "http://corporate:3128")]);
        for url in [
            "http://localhost:4566",
            "http://127.0.0.1:2000",
            "http://localstack:4566",
        ] {
            assert_eq!(
                proxy_for_endpoint(None, &endpoint(url), &env),
                None,
                "{url}"
            );
        }
        let env = Env::from_pairs([("HTTP_PROXY", "http://corporate:3128")]);
        assert_eq!(
            proxy_for_endpoint(None, &endpoint("http://localstack:4566"), &env).as_deref(),
            Some("http://corporate:3128")
        );
        assert_eq!(
            proxy_for_endpoint(None, &endpoint("http://localhost:4566"), &env),
            None
        );
    }

    #[test]
    fn debug_output_hides_proxy_passwords() {
        let proxies = EnvProxies::from_env(&Env::from_pairs([(
            "HTTPS_PROXY",
            "http://me:secret@p:3128",
        )]));
        let shown = format!("{proxies:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("http://***@p:3128"), "{shown}");
    }
}
