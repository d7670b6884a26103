//! EC2 instance metadata (IMDS), the IMDSv2 way: a session token from `PUT /latest/api/token`
//! (TTL 6 h, reused until shortly before it lapses), then `GET`s carrying it. IMDSv1 (no token)
//! is used only when the token call is refused with 403, 404 or 405, as the AWS SDKs do, and
//! never when `AWS_EC2_METADATA_V1_DISABLED=true`.
//!
//! One client is shared by the region lookup, the telemetry host name and instance id, and the
//! instance-profile credentials. Timeouts are short (1 s, one retry) so a host that is not on
//! EC2 finds out quickly, and once the service could not be reached, calls fail at once for a
//! minute instead of each waiting again.
//!
//! Environment: `AWS_EC2_METADATA_DISABLED=true` turns every call into an error;
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` replaces `http://169.254.169.254`;
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6` selects `http://[fd00:ec2::254]`.

use super::env::Env;
use super::proxy::EnvProxies;
use super::small_http::{SmallHttp, Unreachable};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The whole-request timeout of one attempt.
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts per call (the first and one retry).
pub const IMDS_ATTEMPTS: u32 = 2;
/// How long a session token is asked to live.
const TOKEN_TTL_SECONDS: u64 = 21_600;
/// A token is replaced this long before its TTL runs out.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// After the service could not be reached, calls fail without trying for this long.
const UNREACHABLE_BACKOFF: Duration = Duration::from_secs(60);

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const DEFAULT_IPV6_ENDPOINT: &str = "http://[fd00:ec2::254]";
const TOKEN_PATH: &str = "/latest/api/token";

/// Why a metadata call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImdsError {
    /// `AWS_EC2_METADATA_DISABLED=true`.
    Disabled,
    /// No answer (not on EC2, blocked, timed out), or a recent attempt had none.
    Unreachable(String),
    /// The token call was refused and IMDSv1 is not an option.
    TokenRefused {
        /// The token call's status.
        status: u16,
        /// Why there is no fallback.
        reason: &'static str,
    },
    /// A metadata path answered with an error status.
    Status {
        /// The path asked for.
        path: String,
        /// The status.
        status: u16,
    },
}

impl fmt::Display for ImdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImdsError::Disabled => {
                f.write_str("instance metadata is disabled by AWS_EC2_METADATA_DISABLED")
            }
            ImdsError::Unreachable(reason) => {
                write!(f, "instance metadata is unreachable: {reason}")
            }
            ImdsError::TokenRefused { status, reason } => write!(
                f,
                "instance metadata refused a session token (HTTP {status}) and {reason}"
            ),
            ImdsError::Status { path, status } => {
                write!(f, "instance metadata answered HTTP {status} for {path}")
            }
        }
    }
}

impl std::error::Error for ImdsError {}

/// The session-token state.
enum Token {
    /// Not asked yet, or the last one lapsed or was rejected.
    None,
    /// A token and when to stop using it.
    Valid { value: String, until: Instant },
    /// The token call was refused: use IMDSv1.
    V1,
}

/// A shared IMDSv2 client; see the module documentation.
pub struct ImdsClient {
    /// None when disabled.
    endpoint: Option<String>,
    v1_disabled: bool,
    http: SmallHttp,
    token: Mutex<Token>,
    unreachable: Mutex<Option<(Instant, String)>>,
}

impl ImdsClient {
    /// A client configured from `env` with the standard timeouts.
    pub fn from_env(env: &Env) -> Self {
        ImdsClient::with_timeout(env, IMDS_TIMEOUT)
    }

    /// A client configured from `env` with another per-attempt timeout.
    pub fn with_timeout(env: &Env, timeout: Duration) -> Self {
        let endpoint = if env.is_true("AWS_EC2_METADATA_DISABLED") {
            None
        } else if let Some(endpoint) = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            Some(endpoint.trim().trim_end_matches('/').to_owned())
        } else {
            match env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") {
                Some(mode) if mode.trim().eq_ignore_ascii_case("ipv6") => {
                    Some(DEFAULT_IPV6_ENDPOINT.to_owned())
                }
                Some(mode) if !mode.trim().eq_ignore_ascii_case("ipv4") => {
                    log::warn!(
                        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE={mode} is neither IPv4 nor IPv6; using IPv4"
                    );
                    Some(DEFAULT_ENDPOINT.to_owned())
                }
                _ => Some(DEFAULT_ENDPOINT.to_owned()),
            }
        };
        ImdsClient {
            endpoint,
            v1_disabled: env.is_true("AWS_EC2_METADATA_V1_DISABLED"),
            http: SmallHttp::new(
                timeout,
                IMDS_ATTEMPTS,
                // Instance metadata is link-local and never proxied.
                EnvProxies::none(),
                "xray-relay-imds",
            ),
            token: Mutex::new(Token::None),
            unreachable: Mutex::new(None),
        }
    }

    /// The base URL, or None when disabled.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The region the instance runs in.
    pub fn region(&self) -> Result<String, ImdsError> {
        self.get("/latest/meta-data/placement/region")
    }

    /// The instance's private DNS host name.
    pub fn hostname(&self) -> Result<String, ImdsError> {
        self.get("/latest/meta-data/hostname")
    }

    /// The instance id (`i-…`).
    pub fn instance_id(&self) -> Result<String, ImdsError> {
        self.get("/latest/meta-data/instance-id")
    }

    /// `GET path` (e.g. `/latest/meta-data/instance-id`) with a session token; the body, trimmed.
    pub fn get(&self, path: &str) -> Result<String, ImdsError> {
        let endpoint = self.endpoint.as_deref().ok_or(ImdsError::Disabled)?;
        self.check_reachable()?;
        let url = format!("{endpoint}{path}");
        // A token the service no longer accepts (401) is replaced once.
        for attempt in 0..2 {
            let token = self.token(endpoint)?;
            let headers: Vec<(&str, &str)> = token
                .as_deref()
                .map(|token| ("X-aws-ec2-metadata-token", token))
                .into_iter()
                .collect();
            let reply = self
                .http
                .send("GET", &url, &headers, None)
                .map_err(|error| self.mark_unreachable(error))?;
            if reply.status == 401 && token.is_some() && attempt == 0 {
                log::debug!(
                    "Instance metadata rejected its session token for {path}; asking for a new one"
                );
                *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Token::None;
                continue;
            }
            if !reply.is_success() {
                return Err(ImdsError::Status {
                    path: path.to_owned(),
                    status: reply.status,
                });
            }
            return Ok(reply.body.trim().to_owned());
        }
        Err(ImdsError::Status {
            path: path.to_owned(),
            status: 401,
        })
    }

    fn check_reachable(&self) -> Result<(), ImdsError> {
        let unreachable = self
            .unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match unreachable.as_ref() {
            Some((until, reason)) if Instant::now() < *until => {
                Err(ImdsError::Unreachable(format!(
                    "{reason} (not retried for up to {} s)",
                    UNREACHABLE_BACKOFF.as_secs()
                )))
            }
            _ => Ok(()),
        }
    }

    fn mark_unreachable(&self, error: Unreachable) -> ImdsError {
        *self
            .unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now() + UNREACHABLE_BACKOFF, error.0.clone()));
        ImdsError::Unreachable(error.0)
    }

    /// The token to send: Some(token), or None for IMDSv1.
    fn token(&self, endpoint: &str) -> Result<Option<String>, ImdsError> {
        let mut state = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        match &*state {
            Token::Valid { value, until } if Instant::now() < *until => {
                return Ok(Some(value.clone()));
            }
            Token::V1 => return Ok(None),
            _ => {}
        }
        let ttl = TOKEN_TTL_SECONDS.to_string();
        let reply = self
            .http
            .send(
                "PUT",
                &format!("{endpoint}{TOKEN_PATH}"),
                &[("X-aws-ec2-metadata-token-ttl-seconds", ttl.as_str())],
                None,
            )
            .map_err(|error| self.mark_unreachable(error))?;
        match reply.status {
            200..=299 if !reply.body.trim().is_empty() => {
                let value = reply.body.trim().to_owned();
                *state = Token::Valid {
                    value: value.clone(),
                    until: Instant::now() + Duration::from_secs(TOKEN_TTL_SECONDS) - TOKEN_MARGIN,
                };
                Ok(Some(value))
            }
            200..=299 => Err(ImdsError::Status {
                path: TOKEN_PATH.to_owned(),
                status: reply.status,
            }),
            403..=405 if self.v1_disabled => Err(ImdsError::TokenRefused {
                status: reply.status,
                reason: "AWS_EC2_METADATA_V1_DISABLED forbids IMDSv1",
            }),
            403..=405 => {
                log::warn!(
                    "Instance metadata refused a session token (HTTP {}); falling back to IMDSv1",
                    reply.status
                );
                *state = Token::V1;
                Ok(None)
            }
            status => Err(ImdsError::TokenRefused {
                status,
                reason: "only 403, 404 and 405 allow IMDSv1",
            }),
        }
    }
}

impl fmt::Debug for ImdsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImdsClient")
            .field("endpoint", &self.endpoint)
            .field("v1_disabled", &self.v1_disabled)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_http::{Seen, TestServer};

    const TOKEN: &str = "AQAEAtestTOKENvalue==";

    /// An IMDSv2 stand-in: refuses GETs without the token it issued.
    fn imds_v2() -> TestServer {
        TestServer::start(
            |request: &Seen| match (request.method.as_str(), request.path.as_str()) {
                ("PUT", TOKEN_PATH) => {
                    match request.header("x-aws-ec2-metadata-token-ttl-seconds") {
                        Some("21600") => (200, TOKEN.to_owned()),
                        _ => (400, "missing TTL".to_owned()),
                    }
                }
                (_, _) if request.header("x-aws-ec2-metadata-token") != Some(TOKEN) => {
                    (401, String::new())
                }
                ("GET", "/latest/meta-data/placement/region") => (200, "eu-west-3".to_owned()),
                ("GET", "/latest/meta-data/instance-id") => {
                    (200, "i-0123456789abcdef0\n".to_owned())
                }
                _ => (404, String::new()),
            },
        )
    }

    fn client(server: &TestServer, extra: &[(&str, &str)]) -> ImdsClient {
        let url = server.url();
        let mut pairs = vec![("AWS_EC2_METADATA_SERVICE_ENDPOINT", url.as_str())];
        pairs.extend_from_slice(extra);
        ImdsClient::from_env(&Env::from_pairs(pairs))
    }

    #[test]
    fn asks_for_a_token_once_then_sends_it() {
        let server = imds_v2();
        let imds = client(&server, &[]);
        assert_eq!(imds.region().unwrap(), "eu-west-3");
        assert_eq!(imds.instance_id().unwrap(), "i-0123456789abcdef0");
        let seen = server.seen();
        let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["PUT", "GET", "GET"]);
        assert_eq!(
            imds.hostname(),
            Err(ImdsError::Status {
                path: "/latest/meta-data/hostname".to_owned(),
                status: 404
            })
        );
    }

    #[test]
    fn a_rejected_token_is_replaced_once() {
        let server = imds_v2();
        let imds = client(&server, &[]);
        *imds.token.lock().unwrap() = Token::Valid {
            value: "stale".to_owned(),
            until: Instant::now() + Duration::from_secs(600),
        };
        assert_eq!(imds.region().unwrap(), "eu-west-3");
        let seen = server.seen();
        let calls: Vec<(&str, Option<&str>)> = seen
            .iter()
            .map(|r| (r.method.as_str(), r.header("x-aws-ec2-metadata-token")))
            .collect();
        assert_eq!(
            calls,
            [("GET", Some("stale")), ("PUT", None), ("GET", Some(TOKEN))]
        );
    }

    fn imds_v1_only(token_status: u16) -> TestServer {
        TestServer::start(move |request: &Seen| match request.method.as_str() {
            "PUT" => (token_status, String::new()),
            _ if request.header("x-aws-ec2-metadata-token").is_some() => (400, String::new()),
            _ if request.path == "/latest/meta-data/instance-id" => (200, "i-v1".to_owned()),
            _ => (404, String::new()),
        })
    }

    #[test]
    fn falls_back_to_imdsv1_only_when_the_token_call_is_refused() {
        for status in [403, 404, 405] {
            let server = imds_v1_only(status);
            let imds = client(&server, &[]);
            assert_eq!(imds.instance_id().unwrap(), "i-v1", "status {status}");
            assert_eq!(imds.instance_id().unwrap(), "i-v1");
            // The token call is not repeated once refused.
            assert_eq!(
                server.seen().iter().filter(|r| r.method == "PUT").count(),
                1
            );
        }
        let server = imds_v1_only(400);
        let error = client(&server, &[]).instance_id().unwrap_err();
        assert!(
            matches!(error, ImdsError::TokenRefused { status: 400, .. }),
            "{error}"
        );
    }

    #[test]
    fn v1_disabled_forbids_the_fallback() {
        let server = imds_v1_only(403);
        let imds = client(&server, &[("AWS_EC2_METADATA_V1_DISABLED", "true")]);
        let error = imds.instance_id().unwrap_err();
        assert!(
            error.to_string().contains("AWS_EC2_METADATA_V1_DISABLED"),
            "{error}"
        );
        assert!(server.seen().iter().all(|r| r.method == "PUT"));
    }

    #[test]
    fn disabled_means_no_request_at_all() {
        let server = imds_v2();
        let imds = client(&server, &[("AWS_EC2_METADATA_DISABLED", "TRUE")]);
        assert_eq!(imds.region(), Err(ImdsError::Disabled));
        assert_eq!(imds.endpoint(), None);
        assert!(server.seen().is_empty());
        assert!(
            ImdsError::Disabled
                .to_string()
                .contains("AWS_EC2_METADATA_DISABLED")
        );
    }

    #[test]
    fn endpoint_selection() {
        let default = ImdsClient::from_env(&Env::from_pairs([]));
        assert_eq!(default.endpoint(), Some("http://169.254.169.254"));
        let ipv6 = ImdsClient::from_env(&Env::from_pairs([(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
            "IPv6",
        )]));
        assert_eq!(ipv6.endpoint(), Some("http://[fd00:ec2::254]"));
        let explicit = ImdsClient::from_env(&Env::from_pairs([
            (
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                "http://127.0.0.1:1234/",
            ),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"),
        ]));
        assert_eq!(explicit.endpoint(), Some("http://127.0.0.1:1234"));
    }

    #[test]
    fn an_unreachable_service_fails_fast_afterwards() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let imds = ImdsClient::with_timeout(
            &Env::from_pairs([("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint.as_str())]),
            Duration::from_millis(300),
        );
        let first = imds.region().unwrap_err();
        assert!(matches!(first, ImdsError::Unreachable(_)), "{first}");
        assert!(first.to_string().contains(&endpoint), "{first}");
        let started = Instant::now();
        let second = imds.instance_id().unwrap_err();
        assert!(second.to_string().contains("not retried"), "{second}");
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn the_token_never_appears_in_debug_output_or_errors() {
        let server = imds_v2();
        let imds = client(&server, &[]);
        imds.region().unwrap();
        let printed = format!("{imds:?} {}", imds.hostname().unwrap_err());
        assert!(!printed.contains(TOKEN), "{printed}");
    }
}
