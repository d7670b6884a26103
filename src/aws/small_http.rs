//! The blocking HTTP calls of the credential and metadata sources: small requests, small
//! answers, short timeouts, one retry on a transport error or a 5xx, each URL through the
//! proxy the environment names for it.

use super::proxy::{EnvProxies, redact_user_info};
use std::time::Duration;

/// Answers larger than this are refused: credentials and metadata are a few KiB.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// An HTTP answer of any status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why no answer arrived (connection refused, timeout, TLS, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A ureq agent with the settings these calls share.
#[derive(Debug, Clone)]
pub struct SmallHttp {
    agent: ureq::Agent,
    attempts: u32,
    proxies: EnvProxies,
}

impl SmallHttp {
    /// `timeout` covers one whole attempt; `attempts` ≥ 1; `proxies` decides per URL which
    /// proxy, if any, a request goes through ([`EnvProxies::none`]: always directly).
    pub fn new(timeout: Duration, attempts: u32, proxies: EnvProxies, user_agent: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(timeout))
            // Requests connect directly unless `proxies` names one (ureq would otherwise
            // read the proxy variables itself, with other rules).
            .proxy(None)
            .user_agent(user_agent)
            .build();
        SmallHttp {
            agent: ureq::Agent::new_with_config(config),
            attempts: attempts.max(1),
            proxies,
        }
    }

    /// The proxy for `url`, if any; an unusable proxy URL fails the request, as in Go.
    fn proxy_for(&self, url: &str) -> Result<Option<ureq::Proxy>, Unreachable> {
        let Some(proxy) = self.proxies.proxy_for_url(url) else {
            return Ok(None);
        };
        ureq::Proxy::new(proxy).map(Some).map_err(|_| {
            Unreachable(format!(
                "invalid proxy address {} for {url}",
                redact_user_info(proxy)
            ))
        })
    }

    /// Sends the request, retrying once more (up to `attempts`) after a transport error or
    /// a 5xx; the last answer or error is returned.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, Unreachable> {
        let mut attempt = 1;
        loop {
            let result = self.send_once(method, url, headers, body);
            let retry = match &result {
                Ok(reply) => reply.status >= 500,
                Err(_) => true,
            };
            if !retry || attempt >= self.attempts {
                return result;
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, Unreachable> {
        let failed = |error: ureq::Error| Unreachable(format!("{method} {url}: {error}"));
        let proxy = self.proxy_for(url)?;
        let response = match method {
            "GET" => {
                let mut request = self.agent.get(url);
                if proxy.is_some() {
                    request = request.config().proxy(proxy).build();
                }
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
            "PUT" | "POST" => {
                let mut request = if method == "PUT" {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                if proxy.is_some() {
                    request = request.config().proxy(proxy).build();
                }
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                match body {
                    Some(body) => request.send(body),
                    None => request.send_empty(),
                }
            }
            other => return Err(Unreachable(format!("unsupported method {other}"))),
        };
        let mut response = response.map_err(failed)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(failed)?;
        Ok(Reply { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_http::TestServer;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn retries_once_after_a_server_error() {
        let calls = AtomicUsize::new(0);
        let server = TestServer::start(move |_| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                (503, "busy".to_owned())
            } else {
                (200, "ok".to_owned())
            }
        });
        let http = SmallHttp::new(Duration::from_secs(2), 2, EnvProxies::none(), "test");
        let reply = http
            .send("GET", &server.url(), &[("X-Test", "1")], None)
            .unwrap();
        assert_eq!(
            reply,
            Reply {
                status: 200,
                body: "ok".to_owned()
            }
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].header("x-test"), Some("1"));
    }

    #[test]
    fn client_errors_are_not_retried() {
        let server = TestServer::start(|_| (404, "nope".to_owned()));
        let http = SmallHttp::new(Duration::from_secs(2), 2, EnvProxies::none(), "test");
        let reply = http.send("PUT", &server.url(), &[], Some(b"x")).unwrap();
        assert_eq!(reply.status, 404);
        assert!(!reply.is_success());
        assert_eq!(server.seen().len(), 1);
        assert_eq!(server.seen()[0].body, "x");
    }

    #[test]
    fn a_closed_port_is_unreachable_and_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = SmallHttp::new(Duration::from_millis(500), 2, EnvProxies::none(), "test");
        let url = format!("http://127.0.0.1:{port}/x");
        let error = http.send("GET", &url, &[], None).unwrap_err();
        assert!(error.0.contains(&url), "{error}");
    }

    #[test]
    fn http_urls_go_through_http_proxy_and_localhost_never_does() {
        use crate::aws::env::Env;
        use crate::aws::test_http::TestProxy;
        let server = TestServer::start(|_| (200, "creds".to_owned()));
        let proxy = TestProxy::start("agent.test-only.invalid", server.port);
        let env = Env::from_pairs([("HTTP_PROXY", proxy.url().as_str())]);
        let http = SmallHttp::new(Duration::from_secs(2), 1, EnvProxies::from_env(&env), "t");
        // A name only the proxy knows: the answer can only have come through it.
        let reply = http
            .send(
                "GET",
                "http://agent.test-only.invalid:8080/creds",
                &[],
                None,
            )
            .unwrap();
        assert_eq!(reply.body, "creds");
        assert_eq!(proxy.connects(), ["agent.test-only.invalid:8080"]);
        // Loopback is reached directly, HTTP_PROXY or not.
        let direct = http.send("GET", &server.url(), &[], None).unwrap();
        assert_eq!(direct.body, "creds");
        assert_eq!(proxy.connects().len(), 1);
        assert_eq!(server.seen().len(), 2);
    }

    #[test]
    fn an_https_proxy_leaves_plain_http_calls_alone() {
        use crate::aws::env::Env;
        use crate::aws::test_http::TestProxy;
        let server = TestServer::start(|_| (200, "ok".to_owned()));
        let proxy = TestProxy::start("agent.test-only.invalid", server.port);
        let env = Env::from_pairs([("HTTPS_PROXY", proxy.url().as_str())]);
        let http = SmallHttp::new(Duration::from_secs(2), 1, EnvProxies::from_env(&env), "t");
        let local = format!("http://localhost:{}/x", server.port);
        assert_eq!(http.send("GET", &local, &[], None).unwrap().body, "ok");
        // The made-up name cannot be resolved without the proxy, so the call fails: it was
        // not tunnelled through the HTTPS proxy.
        assert!(
            http.send("GET", "http://agent.test-only.invalid:8080/x", &[], None)
                .is_err()
        );
        assert!(proxy.connects().is_empty(), "{:?}", proxy.connects());
    }

    #[test]
    fn an_unusable_proxy_fails_the_call_and_says_so() {
        use crate::aws::env::Env;
        let env = Env::from_pairs([("HTTP_PROXY", "http://me:pw@[bad")]);
        let http = SmallHttp::new(Duration::from_secs(1), 1, EnvProxies::from_env(&env), "t");
        let error = http
            .send("GET", "http://agent.example:8080/x", &[], None)
            .unwrap_err();
        assert!(
            error.0.starts_with("invalid proxy address http://***@[bad"),
            "{error}"
        );
    }
}
