//! URLs from the command line and cfg.yaml (`Endpoint`, `-p` / `ProxyAddress`) read as the
//! original reads them with Go's `net/url.Parse`, and checked at start for what the original
//! could never use, so that the relay starts with every value the original works with, means
//! the same by it, and refuses the rest with a clear message instead of failing every upload.

use std::fmt;

/// The parts of a URL Go's `url.Parse` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoUrl {
    /// Lower-cased scheme; empty when there is none.
    pub scheme: String,
    /// Whether there was a `user[:password]@`.
    pub has_user_info: bool,
    /// `host[:port]` as written; empty when there is no `//` authority.
    pub host: String,
    /// The path; for a URL without scheme or authority (`xray.local`), all of it.
    pub path: String,
    /// What follows `scheme:` when no `/` does (`localhost:4566` → scheme `localhost`,
    /// opaque `4566`).
    pub opaque: String,
}

/// Go's `*url.Error` for a failed parse: `parse "…": why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    url: String,
    reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parse {}: {}", go_quote(&self.url), self.reason)
    }
}

/// Go's `strconv.Quote` (`%q`): how the original quotes values in its messages.
pub fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                quoted.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if c.is_control() || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}') => {
                quoted.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

impl GoUrl {
    /// Go's `url.Parse`, for the parts and the errors that matter to an endpoint or a proxy.
    pub fn parse(raw: &str) -> Result<GoUrl, ParseError> {
        let without_fragment = raw.split_once('#').map_or(raw, |(url, _)| url);
        let fail = |reason: &str| ParseError {
            url: without_fragment.to_string(),
            reason: reason.to_string(),
        };
        if without_fragment.bytes().any(|b| b < b' ' || b == 0x7f) {
            return Err(fail("net/url: invalid control character in URL"));
        }
        let (scheme, rest) = split_scheme(without_fragment).map_err(fail)?;
        let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
        let mut url = GoUrl {
            scheme: scheme.to_ascii_lowercase(),
            has_user_info: false,
            host: String::new(),
            path: String::new(),
            opaque: String::new(),
        };
        if !rest.starts_with('/') {
            if !url.scheme.is_empty() {
                url.opaque = rest.to_string();
                return Ok(url);
            }
            let first_segment = rest.split('/').next().unwrap_or("");
            if first_segment.contains(':') {
                return Err(fail("first path segment in URL cannot contain colon"));
            }
        }
        let mut path = rest;
        if let Some(after_slashes) = rest.strip_prefix("//")
            && (!url.scheme.is_empty() || !rest.starts_with("///"))
        {
            let (authority, after) = match after_slashes.find('/') {
                Some(at) => after_slashes.split_at(at),
                None => (after_slashes, ""),
            };
            let host = match authority.rfind('@') {
                Some(at) => {
                    url.has_user_info = true;
                    check_user_info(&authority[..at]).map_err(fail)?;
                    &authority[at + 1..]
                }
                None => authority,
            };
            check_host(host).map_err(|reason| fail(&reason))?;
            url.host = host.to_string();
            path = after;
        }
        check_escapes(path).map_err(|reason| fail(&reason))?;
        url.path = path.to_string();
        Ok(url)
    }

    /// The host without the port (and without IPv6 brackets' port).
    pub fn hostname(&self) -> &str {
        match self.host.strip_prefix('[') {
            Some(_) => self
                .host
                .rfind(']')
                .map_or(self.host.as_str(), |end| &self.host[..=end]),
            None => self
                .host
                .rsplit_once(':')
                .map_or(self.host.as_str(), |(host, _)| host),
        }
    }

    /// The port as written after the host; empty when absent.
    pub fn port(&self) -> &str {
        let after_host = &self.host[self.hostname().len()..];
        after_host.strip_prefix(':').unwrap_or("")
    }
}

/// Go's `getScheme`.
fn split_scheme(raw: &str) -> Result<(&str, &str), &'static str> {
    for (at, byte) in raw.bytes().enumerate() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if at > 0 => {}
            b':' if at == 0 => return Err("missing protocol scheme"),
            b':' => return Ok((&raw[..at], &raw[at + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn check_user_info(user_info: &str) -> Result<(), &'static str> {
    let valid = user_info.bytes().all(|byte| {
        byte.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&byte) || !byte.is_ascii()
    });
    match valid {
        true => check_escapes(user_info).map_err(|_| "net/url: invalid userinfo"),
        false => Err("net/url: invalid userinfo"),
    }
}

/// Go's `parseHost`: a valid optional `:port` after the host, and only characters a host may
/// hold.
fn check_host(host: &str) -> Result<(), String> {
    let port = if host.starts_with('[') {
        let close = host.rfind(']').ok_or("missing ']' in host")?;
        &host[close + 1..]
    } else {
        host.rfind(':').map_or("", |at| &host[at..])
    };
    if !(port.is_empty()
        || (port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit())))
    {
        return Err(format!("invalid port {} after host", go_quote(port)));
    }
    check_escapes(host)?;
    match host.bytes().find(|&byte| {
        byte.is_ascii()
            && !byte.is_ascii_alphanumeric()
            && !b"-_.~!$&'()*+,;=:[]<>\"%".contains(&byte)
    }) {
        Some(bad) => Err(format!(
            "invalid character {} in host name",
            go_quote(&char::from(bad).to_string())
        )),
        None => Ok(()),
    }
}

/// Every `%` starts a two-digit hex escape.
fn check_escapes(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        if byte == b'%' {
            let escape = bytes.get(at + 1..at + 3);
            if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                let shown = &text[at..(at + 3).min(text.len())];
                return Err(format!("invalid URL escape {}", go_quote(shown)));
            }
        }
    }
    Ok(())
}

/// A port the original could dial: 1 to 65535, or none for the scheme's default.
fn port_usable(port: &str) -> bool {
    port.is_empty() || port.parse::<u16>().is_ok_and(|port| port != 0)
}

/// The X-Ray endpoint as the relay should use it, or the start-up error.
///
/// The original hands `Endpoint` to the AWS SDK, which keeps only the URL's scheme, host and
/// path: user info, query and fragment are dropped, and an empty port means the scheme's. What
/// `url.Parse` refuses stops the original at start (its proxy server cannot be created), in the
/// words returned here. What parses but has no http(s) scheme or no host fails every upload
/// there (`unsupported protocol scheme ""`, `http: no Host in request URL`): refused at start.
pub fn usable_endpoint(endpoint: &str) -> Result<String, String> {
    let url = GoUrl::parse(endpoint).map_err(|error| {
        format!("Unable to start http proxy server: unable to parse xray endpoint: {error}")
    })?;
    let never = |why: &str| {
        Err(format!(
            "Endpoint {} cannot be used: {why}; the AWS X-Ray daemon starts with it but fails every upload",
            go_quote(endpoint)
        ))
    };
    if url.scheme != "http" && url.scheme != "https" {
        let example = match url.scheme.is_empty() {
            true => format!(" (https://{endpoint}?)"),
            false => String::new(),
        };
        return never(&format!(
            "it needs an http:// or https:// scheme{example}, not {}",
            go_quote(&url.scheme)
        ));
    }
    if url.hostname().is_empty() || url.hostname() == "[]" {
        return never("it has no host");
    }
    if !port_usable(url.port()) {
        return never(&format!("port {} cannot be dialled", go_quote(url.port())));
    }
    if url.has_user_info {
        log::warn!(
            "Endpoint {}: the user name and password are not sent, as the AWS X-Ray daemon does not send them",
            url.hostname()
        );
    }
    let port = match url.port() {
        "" => String::new(),
        port => format!(":{port}"),
    };
    Ok(format!(
        "{}://{}{port}{}",
        url.scheme,
        url.hostname(),
        url.path
    ))
}

/// The `-p` / `ProxyAddress` value as the relay should use it, or the start-up error.
///
/// The original parses it with `url.Parse` and exits with `Bad proxy URL: …` when that fails
/// (`10.0.0.1:3128`). Go's transport then dials the URL's host and port and speaks HTTP to it
/// whatever the scheme, unless the scheme is `https` (TLS to the proxy) or `socks5`/`socks5h`
/// (SOCKS5, the target's name resolved by the proxy, a password if the URL has one). Without
/// a host (`proxy:3128` parses as scheme `proxy`) or a port it could dial, it never connects:
/// refused at start here.
pub fn usable_proxy(proxy: &str) -> Result<String, String> {
    let url = GoUrl::parse(proxy).map_err(|error| format!("Bad proxy URL: {error}"))?;
    let shown = crate::aws::proxy::redact_user_info(proxy);
    let quoted = go_quote(&shown);
    let never = |why: String| {
        Err(format!(
            "Bad proxy URL: {quoted} {why}; the AWS X-Ray daemon starts with it but never reaches the proxy"
        ))
    };
    if url.hostname().is_empty() {
        return never(format!(
            "has no host (it reads as scheme {}): write it as http://{shown}",
            go_quote(&url.scheme)
        ));
    }
    let default_port = match url.scheme.as_str() {
        "http" => "80",
        "https" => "443",
        "socks5" | "socks5h" => "1080",
        _ => "",
    };
    let port = match url.port() {
        "" => default_port,
        port => port,
    };
    if port.is_empty() || !port_usable(port) {
        return never(format!(
            "has no port it could connect to ({})",
            go_quote(port)
        ));
    }
    // Any other scheme is spoken to as an HTTP proxy, as Go's transport does. Go hands a
    // SOCKS5 proxy the target's host name to resolve with either scheme: `socks5h` here.
    let scheme = match url.scheme.as_str() {
        "https" => "https",
        "socks5" | "socks5h" => "socks5h",
        _ => "http",
    };
    let user_info = match proxy.find("://") {
        Some(start) => {
            let authority = &proxy[start + 3..];
            let authority =
                &authority[..authority.find(['/', '?', '#']).unwrap_or(authority.len())];
            authority.rfind('@').map_or("", |at| &authority[..=at])
        }
        None => "",
    };
    Ok(format!("{scheme}://{user_info}{}:{port}", url.hostname()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(raw: &str) -> String {
        GoUrl::parse(raw).unwrap_err().to_string()
    }

    /// Go 1.25 `url.Parse` results, as fixtures.
    #[test]
    fn parses_like_go() {
        let url = GoUrl::parse("xray.local").unwrap();
        assert_eq!(
            (url.scheme.as_str(), url.host.as_str(), url.path.as_str()),
            ("", "", "xray.local")
        );
        let url = GoUrl::parse("localhost:4566").unwrap();
        assert_eq!(
            (url.scheme.as_str(), url.opaque.as_str(), url.host.as_str()),
            ("localhost", "4566", "")
        );
        let url = GoUrl::parse("HTTP://user:pw@H:8080/p?q=1#f").unwrap();
        assert_eq!(url.scheme, "http");
        assert!(url.has_user_info);
        assert_eq!(
            (url.hostname(), url.port(), url.path.as_str()),
            ("H", "8080", "/p")
        );
        let url = GoUrl::parse("http://[::1]:4566").unwrap();
        assert_eq!((url.hostname(), url.port()), ("[::1]", "4566"));
        assert_eq!(
            parse_error("10.0.0.1:3128"),
            r#"parse "10.0.0.1:3128": first path segment in URL cannot contain colon"#
        );
        assert_eq!(
            parse_error("://x"),
            r#"parse "://x": missing protocol scheme"#
        );
        assert_eq!(
            parse_error("http://h:abc"),
            r#"parse "http://h:abc": invalid port ":abc" after host"#
        );
        assert_eq!(
            parse_error("http://h x"),
            r#"parse "http://h x": invalid character " " in host name"#
        );
        assert_eq!(
            parse_error("http://h/%zz"),
            r#"parse "http://h/%zz": invalid URL escape "%zz""#
        );
        assert_eq!(
            parse_error("http://h\n"),
            "parse \"http://h\\n\": net/url: invalid control character in URL"
        );
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\t\n\u{1}\u{7f}é"), r#""\t\n\x01\x7fé""#);
        assert_eq!(go_quote("\u{85}"), r#""\u0085""#);
    }

    #[test]
    fn endpoints_the_original_uploads_to() {
        for (given, used) in [
            (
                "https://xray.us-east-1.amazonaws.com",
                "https://xray.us-east-1.amazonaws.com",
            ),
            ("http://localhost:4566", "http://localhost:4566"),
            // The SDK keeps scheme, host and path only.
            ("http://user:pw@h", "http://h"),
            ("https://h/prefix?x=1#frag", "https://h/prefix"),
            ("HTTPS://h:", "https://h"),
            ("http://[::1]:2000/", "http://[::1]:2000/"),
        ] {
            assert_eq!(usable_endpoint(given).as_deref(), Ok(used), "{given}");
        }
    }

    #[test]
    fn endpoints_the_original_never_uploads_to_are_refused() {
        for given in [
            "xray.local",
            "123",
            "ftp://x",
            "localhost:4566",
            "https://",
            "http://h:0",
            "http://h:70000",
        ] {
            let message = usable_endpoint(given).unwrap_err();
            assert!(
                message.starts_with(&format!("Endpoint {given:?} cannot be used: ")),
                "{message}"
            );
        }
        assert!(
            usable_endpoint("xray.local")
                .unwrap_err()
                .contains("(https://xray.local?)")
        );
        // What url.Parse refuses stops the original at start, in these words.
        assert_eq!(
            usable_endpoint("127.0.0.1:4566").unwrap_err(),
            r#"Unable to start http proxy server: unable to parse xray endpoint: parse "127.0.0.1:4566": first path segment in URL cannot contain colon"#
        );
    }

    #[test]
    fn proxies_as_the_original_reaches_them() {
        for (given, used) in [
            ("http://proxy:3128", "http://proxy:3128"),
            ("http://proxy", "http://proxy:80"),
            ("https://proxy", "https://proxy:443"),
            ("http://u:p@proxy:3128/", "http://u:p@proxy:3128"),
            // Go's transport speaks HTTP to any other scheme with a host and port.
            ("tcp://proxy:3128", "http://proxy:3128"),
        ] {
            assert_eq!(usable_proxy(given).as_deref(), Ok(used), "{given}");
        }
        assert_eq!(
            usable_proxy("10.0.0.1:3128").unwrap_err(),
            r#"Bad proxy URL: parse "10.0.0.1:3128": first path segment in URL cannot contain colon"#
        );
        let message = usable_proxy("proxy:3128").unwrap_err();
        assert!(
            message.starts_with(r#"Bad proxy URL: "proxy:3128" has no host (it reads as scheme "proxy"): write it as http://proxy:3128"#),
            "{message}"
        );
        assert!(usable_proxy("tcp://proxy").is_err());
        for (given, used) in [
            ("socks5://proxy", "socks5h://proxy:1080"),
            ("socks5h://u:p@proxy:9050", "socks5h://u:p@proxy:9050"),
        ] {
            assert_eq!(usable_proxy(given).as_deref(), Ok(used), "{given}");
        }
        // Passwords stay out of messages.
        assert!(
            !usable_proxy("u:secret@proxy:1")
                .unwrap_err()
                .contains("secret")
        );
    }
}
