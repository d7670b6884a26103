//! The X-Ray endpoint URL: configured, from the environment, or derived from the region's
//! partition; and a minimal parser for `scheme://host[:port][/path]`.

use super::env::Env;
use std::fmt;

/// An AWS partition: a group of regions sharing a DNS suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// Commercial regions.
    Aws,
    /// China (`cn-*`).
    AwsCn,
    /// GovCloud (`us-gov-*`).
    AwsUsGov,
    /// US ISO (`us-iso-*`).
    AwsIso,
    /// US ISO-B (`us-isob-*`).
    AwsIsoB,
}

impl Partition {
    /// The partition a region belongs to; unknown prefixes are commercial.
    pub fn of_region(region: &str) -> Partition {
        if region.starts_with("cn-") {
            Partition::AwsCn
        } else if region.starts_with("us-gov-") {
            Partition::AwsUsGov
        } else if region.starts_with("us-isob-") {
            Partition::AwsIsoB
        } else if region.starts_with("us-iso-") {
            Partition::AwsIso
        } else {
            Partition::Aws
        }
    }

    /// The partition id used in ARNs.
    pub fn id(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsIso => "aws-iso",
            Partition::AwsIsoB => "aws-iso-b",
        }
    }

    /// The DNS suffix of service hosts.
    pub fn dns_suffix(self) -> &'static str {
        match self {
            Partition::Aws | Partition::AwsUsGov => "amazonaws.com",
            Partition::AwsCn => "amazonaws.com.cn",
            Partition::AwsIso => "c2s.ic.gov",
            Partition::AwsIsoB => "sc2s.sgov.gov",
        }
    }
}

/// Regions with an `xray-fips.` host, per the AWS X-Ray "endpoints and quotas" page.
const FIPS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// The endpoint the environment configures for a service, as the AWS SDKs read it:
/// `AWS_ENDPOINT_URL_<service>` (e.g. `STS`, `SSO`, `SSO_OIDC`), else `AWS_ENDPOINT_URL`; none
/// when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`.
pub fn endpoint_from_env<'a>(env: &'a Env, service: &str) -> Option<&'a str> {
    if env.is_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
        return None;
    }
    env.get(&format!("AWS_ENDPOINT_URL_{service}"))
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
}

/// The endpoint to send to: the cfg file's `Endpoint` when set, else `AWS_ENDPOINT_URL_XRAY`
/// or `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), else the
/// region's default, using the FIPS host when `AWS_USE_FIPS_ENDPOINT=true` and one exists.
pub fn xray_endpoint(configured: Option<&str>, region: &str, env: &Env) -> String {
    // The caller logs the original's `Using Endpoint read from Config file` line, at the
    // point the original does (before the region is known).
    if let Some(endpoint) = configured.map(str::trim).filter(|e| !e.is_empty()) {
        return endpoint.to_owned();
    }
    if let Some(endpoint) = endpoint_from_env(env, "XRAY") {
        log::debug!("Using Endpoint: {endpoint} (from the environment)");
        return endpoint.to_owned();
    }
    let use_fips = env.is_true("AWS_USE_FIPS_ENDPOINT");
    if use_fips && !FIPS_REGIONS.contains(&region) {
        log::warn!(
            "AWS_USE_FIPS_ENDPOINT is set but X-Ray has no FIPS endpoint in {region}; using the standard one"
        );
    }
    let endpoint = default_xray_endpoint(region, use_fips);
    log::debug!("Using default X-Ray endpoint {endpoint}");
    endpoint
}

/// `https://xray[-fips].{region}.{partition suffix}`; FIPS only where the host exists.
pub fn default_xray_endpoint(region: &str, use_fips: bool) -> String {
    let service = if use_fips && FIPS_REGIONS.contains(&region) {
        "xray-fips"
    } else {
        "xray"
    };
    let suffix = Partition::of_region(region).dns_suffix();
    format!("https://{service}.{region}.{suffix}")
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (local test endpoints).
    Http,
    /// HTTPS.
    Https,
}

impl Scheme {
    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `"http"` / `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// An endpoint URL split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or IP; IPv6 addresses keep their brackets.
    pub host: String,
    /// The explicit port, or the scheme's default.
    pub port: u16,
    /// The base path without a trailing `/` (often empty).
    pub base_path: String,
}

/// An endpoint URL that is not `http(s)://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid endpoint URL {:?}: {}", self.url, self.reason)
    }
}

impl std::error::Error for EndpointError {}

impl EndpointUrl {
    /// Parses `scheme://host[:port][/path]`; queries, fragments and user info are refused.
    pub fn parse(url: &str) -> Result<EndpointUrl, EndpointError> {
        let fail = |reason| EndpointError {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or(fail("missing scheme://"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(fail("scheme must be http or https")),
        };
        if rest.contains(['?', '#']) {
            return Err(fail("query and fragment are not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(fail("user info is not allowed"));
        }
        let (host, port) = split_host_port(authority).ok_or(fail("bad host or port"))?;
        if host.is_empty() {
            return Err(fail("missing host"));
        }
        Ok(EndpointUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(scheme.default_port()),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `host` or `host:port` when the port is not the scheme's default: the `Host` header.
    pub fn authority(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host without IPv6 brackets, for NO_PROXY matching and DNS.
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The full URL of `path` (e.g. `/TraceSegments`) under this endpoint.
    pub fn url_for(&self, path: &str) -> String {
        let separator = if path.is_empty() || path.starts_with('/') {
            ""
        } else {
            "/"
        };
        format!(
            "{}://{}{}{separator}{path}",
            self.scheme.as_str(),
            self.authority(),
            self.base_path,
        )
    }

    /// The URL of `target` (path and query) at the endpoint's scheme and host, without its
    /// base path: where the original's sampling proxy sends an SDK's request (its reverse
    /// proxy takes only the scheme and host from the endpoint and keeps the request's path).
    pub fn origin_url_for(&self, target: &str) -> String {
        let separator = if target.starts_with('/') { "" } else { "/" };
        format!(
            "{}://{}{separator}{target}",
            self.scheme.as_str(),
            self.authority()
        )
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => Some(port.parse::<u16>().ok().filter(|port| *port != 0)?),
        None => None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_by_region_prefix() {
        let cases = [
            ("us-east-1", "aws", "https://xray.us-east-1.amazonaws.com"),
            ("eu-west-1", "aws", "https://xray.eu-west-1.amazonaws.com"),
            (
                "cn-north-1",
                "aws-cn",
                "https://xray.cn-north-1.amazonaws.com.cn",
            ),
            (
                "cn-northwest-1",
                "aws-cn",
                "https://xray.cn-northwest-1.amazonaws.com.cn",
            ),
            (
                "us-gov-west-1",
                "aws-us-gov",
                "https://xray.us-gov-west-1.amazonaws.com",
            ),
            (
                "us-iso-east-1",
                "aws-iso",
                "https://xray.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "us-isob-east-1",
                "aws-iso-b",
                "https://xray.us-isob-east-1.sc2s.sgov.gov",
            ),
        ];
        for (region, partition, endpoint) in cases {
            assert_eq!(Partition::of_region(region).id(), partition, "{region}");
            assert_eq!(default_xray_endpoint(region, false), endpoint, "{region}");
        }
    }

    #[test]
    fn fips_hosts_only_where_they_exist() {
        assert_eq!(
            default_xray_endpoint("us-east-1", true),
            "https://xray-fips.us-east-1.amazonaws.com"
        );
        assert_eq!(
            default_xray_endpoint("us-west-2", true),
            "https://xray-fips.us-west-2.amazonaws.com"
        );
        assert_eq!(
            default_xray_endpoint("us-gov-east-1", true),
            "https://xray-fips.us-gov-east-1.amazonaws.com"
        );
        assert_eq!(
            default_xray_endpoint("eu-west-1", true),
            "https://xray.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            default_xray_endpoint("cn-north-1", true),
            "https://xray.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn fips_is_switched_on_by_the_environment() {
        let fips = Env::from_pairs([("AWS_USE_FIPS_ENDPOINT", "true")]);
        assert_eq!(
            xray_endpoint(None, "us-east-2", &fips),
            "https://xray-fips.us-east-2.amazonaws.com"
        );
        let off = Env::from_pairs([("AWS_USE_FIPS_ENDPOINT", "false")]);
        assert_eq!(
            xray_endpoint(None, "us-east-2", &off),
            "https://xray.us-east-2.amazonaws.com"
        );
    }

    #[test]
    fn configured_endpoint_wins_then_environment() {
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL_XRAY", "http://xray-env:2000"),
            ("AWS_ENDPOINT_URL", "http://generic-env:2000"),
            ("AWS_USE_FIPS_ENDPOINT", "true"),
        ]);
        assert_eq!(
            xray_endpoint(Some("http://cfg:1234"), "us-east-1", &env),
            "http://cfg:1234"
        );
        assert_eq!(
            xray_endpoint(Some(""), "us-east-1", &env),
            "http://xray-env:2000"
        );
        let generic = Env::from_pairs([("AWS_ENDPOINT_URL", "http://generic-env:2000")]);
        assert_eq!(
            xray_endpoint(None, "us-east-1", &generic),
            "http://generic-env:2000"
        );
        let ignored = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "http://generic-env:2000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(
            xray_endpoint(None, "us-east-1", &ignored),
            "https://xray.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn service_endpoints_from_the_environment() {
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL_SSO", "http://portal:1"),
            ("AWS_ENDPOINT_URL", "http://generic:2"),
        ]);
        assert_eq!(endpoint_from_env(&env, "SSO"), Some("http://portal:1"));
        assert_eq!(
            endpoint_from_env(&env, "SSO_OIDC"),
            Some("http://generic:2")
        );
        let ignored = Env::from_pairs([
            ("AWS_ENDPOINT_URL_SSO", "http://portal:1"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
        ]);
        assert_eq!(endpoint_from_env(&ignored, "SSO"), None);
        assert_eq!(endpoint_from_env(&Env::from_pairs([]), "STS"), None);
    }

    #[test]
    fn parses_scheme_host_port_and_path() {
        let url = EndpointUrl::parse("https://xray.us-east-1.amazonaws.com").unwrap();
        assert_eq!(url.scheme, Scheme::Https);
        assert_eq!(url.host, "xray.us-east-1.amazonaws.com");
        assert_eq!(url.port, 443);
        assert_eq!(url.base_path, "");
        assert_eq!(url.authority(), "xray.us-east-1.amazonaws.com");
        assert_eq!(
            url.url_for("/TraceSegments"),
            "https://xray.us-east-1.amazonaws.com/TraceSegments"
        );

        let url = EndpointUrl::parse("HTTP://LocalHost:2000/prefix/").unwrap();
        assert_eq!(url.scheme, Scheme::Http);
        assert_eq!(url.host, "localhost");
        assert_eq!(url.port, 2000);
        assert_eq!(url.authority(), "localhost:2000");
        assert_eq!(
            url.url_for("/TraceSegments"),
            "http://localhost:2000/prefix/TraceSegments"
        );

        assert_eq!(
            url.url_for("TraceSegments"),
            "http://localhost:2000/prefix/TraceSegments"
        );
        assert_eq!(url.url_for(""), "http://localhost:2000/prefix");
        assert_eq!(
            url.origin_url_for("/GetSamplingRules?x=1"),
            "http://localhost:2000/GetSamplingRules?x=1"
        );

        let url = EndpointUrl::parse("http://127.0.0.1:80").unwrap();
        assert_eq!(url.authority(), "127.0.0.1");

        let url = EndpointUrl::parse("https://[::1]:8443/").unwrap();
        assert_eq!(url.host, "[::1]");
        assert_eq!(url.bare_host(), "::1");
        assert_eq!(url.port, 8443);
        assert_eq!(url.authority(), "[::1]:8443");
        assert_eq!(EndpointUrl::parse("https://[::1]").unwrap().port, 443);
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for (url, reason) in [
            ("xray.us-east-1.amazonaws.com", "missing scheme://"),
            ("ftp://host", "scheme must be http or https"),
            ("https://", "missing host"),
            ("https://:443", "missing host"),
            ("https://host:notaport", "bad host or port"),
            ("https://host:0", "bad host or port"),
            ("https://host:70000", "bad host or port"),
            ("https://[::1", "bad host or port"),
            ("https://[::1]x", "bad host or port"),
            ("https://user:pw@host", "user info is not allowed"),
            ("https://host/?q=1", "query and fragment are not allowed"),
        ] {
            let error = EndpointUrl::parse(url).unwrap_err();
            assert_eq!(error.reason, reason, "{url}");
            assert!(error.to_string().contains(url));
        }
    }
}
