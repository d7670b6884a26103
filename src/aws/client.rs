//! The HTTP client for X-Ray: one keep-alive agent, signed JSON POSTs, classified errors.
//!
//! Built once and shared through an `Arc` by the blocking uploader threads.

use super::backend_error::BackendError;
use super::credentials::CredentialsProvider;
use super::endpoint::{EndpointError, EndpointUrl};
use super::env::Env;
use super::proxy::{proxy_for_endpoint, redact_user_info};
use super::signing::{RequestToSign, Signer, XRAY_SERVICE};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// How long an idle connection is kept: longer than the 60 s telemetry interval, so
/// that call reuses a connection too (the original uses 90 s).
const IDLE_CONNECTION_AGE: Duration = Duration::from_secs(90);

/// Per-connection buffers. ureq's defaults (128 KB each way) are written through when first
/// used, so each of the `Concurrency` connections would hold 256 KB: 2 MB with 8 uploaders.
/// X-Ray's answers are small (the buffer needs to hold only the response head), and a body is
/// streamed through the output buffer in pieces of this size. 8 KB + 16 KB rather than 16 + 32
/// kept the peak RSS at 20,000/s of 1 KB under the buffer + 4 MB goal (VmHWM 19.93 → 19.74 MiB
/// with `-m 16`, xray-bench) for one more `send` per 16 KB of body (CPU within the noise).
const CONNECTION_INPUT_BUFFER: usize = 8 * 1024;
const CONNECTION_OUTPUT_BUFFER: usize = 16 * 1024;

/// What the client is built from.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The endpoint URL, e.g. from [`xray_endpoint`](super::endpoint::xray_endpoint).
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// `-p` / cfg `ProxyAddress`; None or empty falls back to the environment's proxy for the
    /// endpoint's scheme (see [`proxy_for_endpoint`]).
    pub proxy_address: Option<String>,
    /// Skip TLS certificate verification (cfg `NoVerifySSL`).
    pub no_verify_ssl: bool,
    /// The whole-request timeout (the original: 2 s).
    pub request_timeout: Duration,
    /// Idle connections kept open: at least the number of concurrent uploaders.
    pub max_idle_connections: usize,
}

impl ClientSettings {
    /// Settings with the original daemon's defaults: no proxy, verified TLS, 2 s timeout,
    /// 8 idle connections.
    pub fn new(endpoint: impl Into<String>, region: impl Into<String>) -> Self {
        ClientSettings {
            endpoint: endpoint.into(),
            region: region.into(),
            proxy_address: None,
            no_verify_ssl: false,
            request_timeout: Duration::from_secs(2),
            max_idle_connections: 8,
        }
    }
}

/// The client could not be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientBuildError {
    /// The endpoint URL is unusable.
    Endpoint(EndpointError),
    /// The proxy URL is unusable (user info redacted).
    Proxy {
        /// The proxy URL, without user info.
        proxy: String,
    },
}

impl fmt::Display for ClientBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientBuildError::Endpoint(error) => write!(f, "{error}"),
            ClientBuildError::Proxy { proxy } => write!(f, "Bad proxy URL: {proxy}"),
        }
    }
}

impl std::error::Error for ClientBuildError {}

/// A 2xx answer from X-Ray.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body (X-Ray answers with small JSON documents).
    pub body: Vec<u8>,
}

/// A request an SDK sent the relay's proxy, to be passed on to X-Ray signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRequest {
    /// The method as received (`POST`).
    pub method: String,
    /// Path and query as received (`/GetSamplingRules`), sent to the endpoint's scheme and host.
    pub target: String,
    /// The headers to send and sign: no hop-by-hop headers, `Host`, `Content-Length` or
    /// signature headers (the client adds its own).
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub body: Vec<u8>,
}

/// X-Ray's answer to a forwarded request, whatever its status, with the body still to be read.
pub struct ForwardResponse {
    /// The HTTP status.
    pub status: u16,
    /// The response headers as received (ureq has already decoded any chunked framing).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, read as it arrives.
    pub body: Box<dyn std::io::Read + Send>,
}

impl fmt::Debug for ForwardResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .finish_non_exhaustive()
    }
}

/// Sends signed requests to X-Ray.
pub struct XRayClient {
    agent: ureq::Agent,
    endpoint: EndpointUrl,
    signer: Signer,
    credentials: Arc<CredentialsProvider>,
    user_agent: String,
}

impl XRayClient {
    /// Builds the client; `env` supplies the proxy variables and `AWS_EXECUTION_ENV`.
    pub fn new(
        settings: &ClientSettings,
        credentials: Arc<CredentialsProvider>,
        env: &Env,
    ) -> Result<Self, ClientBuildError> {
        let endpoint =
            EndpointUrl::parse(&settings.endpoint).map_err(ClientBuildError::Endpoint)?;
        let proxy = proxy_for_endpoint(settings.proxy_address.as_deref(), &endpoint, env)
            .map(|proxy| {
                ureq::Proxy::new(&proxy).map_err(|_| ClientBuildError::Proxy {
                    proxy: redact_user_info(&proxy),
                })
            })
            .transpose()?;
        if settings.no_verify_ssl {
            log::warn!(
                "NoVerifySSL is set: TLS certificates of {} are not verified",
                endpoint.host
            );
        }
        let user_agent = user_agent(env);
        let idle = settings.max_idle_connections.max(1);
        let config = ureq::Agent::config_builder()
            // Non-2xx answers carry X-Ray's error body; keep them as responses.
            .http_status_as_error(false)
            // X-Ray does not redirect; a 3xx is reported rather than followed with the
            // signed body turned into a GET.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(settings.request_timeout))
            .max_idle_connections(idle)
            .max_idle_connections_per_host(idle)
            .max_idle_age(IDLE_CONNECTION_AGE)
            .input_buffer_size(CONNECTION_INPUT_BUFFER)
            .output_buffer_size(CONNECTION_OUTPUT_BUFFER)
            .proxy(proxy)
            .user_agent(user_agent.as_str())
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(settings.no_verify_ssl)
                    .build(),
            )
            .build();
        log::debug!("Using Endpoint: {}", endpoint.url_for(""));
        Ok(XRayClient {
            agent: ureq::Agent::with_parts(
                config,
                DefaultConnector::default(),
                CachingResolver::default(),
            ),
            endpoint,
            signer: Signer::new(settings.region.clone(), XRAY_SERVICE),
            credentials,
            user_agent,
        })
    }

    /// The parsed endpoint.
    pub fn endpoint(&self) -> &EndpointUrl {
        &self.endpoint
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        self.signer.region()
    }

    /// POSTs `body` as JSON to `path` (e.g. `/TraceSegments`), signed; a non-2xx answer
    /// is [`BackendError::Http`].
    pub fn post_json(&self, path: &str, body: &[u8]) -> Result<Response, BackendError> {
        let url = self.endpoint.url_for(path);
        let credentials = self
            .credentials
            .credentials()
            .map_err(BackendError::Credentials)?;
        let now = SystemTime::now();
        let timestamp = xray_timestamp(now);
        let headers = [
            ("Content-Type", "application/json"),
            ("X-Amzn-Xray-Timestamp", timestamp.as_str()),
        ];
        let request = RequestToSign {
            method: "POST",
            url: &url,
            headers: &headers,
            body,
        };
        let signature = self
            .signer
            .sign(&request, &credentials, now)
            .map_err(BackendError::Signing)?;
        let mut builder = self
            .agent
            .post(&url)
            .header("User-Agent", self.user_agent.as_str());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        for (name, value) in &signature {
            builder = builder.header(*name, value.as_str());
        }
        let failed = |error| BackendError::from_transport(error, "POST", &url);
        let mut response = builder.send(body).map_err(failed)?;
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let error_type = header("x-amzn-errortype");
        let request_id = header("x-amzn-requestid");
        let body = response.body_mut().read_to_vec().map_err(failed)?;
        log::debug!("POST {url}: HTTP {status}, {} bytes", body.len());
        if (200..300).contains(&status) {
            Ok(Response { status, body })
        } else {
            Err(BackendError::from_response(
                status,
                error_type.as_deref(),
                request_id.as_deref(),
                &body,
            ))
        }
    }
}

/// Any answer to [`XRayClient::post_signed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, when given as a number.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

impl XRayClient {
    /// POSTs `body` to `url` with `headers`, signed over the exact bytes; any status X-Ray
    /// answers with is `Ok` (the OTLP endpoint answers errors with a protobuf
    /// `google.rpc.Status`, which the caller reads).
    pub fn post_signed(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<RawResponse, BackendError> {
        let credentials = self
            .credentials
            .credentials()
            .map_err(BackendError::Credentials)?;
        let request = RequestToSign {
            method: "POST",
            url,
            headers,
            body,
        };
        let signature = self
            .signer
            .sign(&request, &credentials, SystemTime::now())
            .map_err(BackendError::Signing)?;
        let mut builder = self
            .agent
            .post(url)
            .header("User-Agent", self.user_agent.as_str());
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        for (name, value) in &signature {
            builder = builder.header(*name, value.as_str());
        }
        let mut response = builder
            .send(body)
            .map_err(|err| BackendError::from_transport(err, "POST", url))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse().ok());
        let body = response
            .body_mut()
            .read_to_vec()
            .map_err(|err| BackendError::from_transport(err, "POST", url))?;
        log::debug!("POST {url}: HTTP {status}, {} bytes", body.len());
        Ok(RawResponse {
            status,
            retry_after,
            body,
        })
    }
}

impl XRayClient {
    /// Sends `request` to the endpoint (never anywhere else), signed with the relay's
    /// credentials and region, through the same agent as uploads (proxy, TLS settings), with
    /// `timeout` for the whole exchange. Any status X-Ray answers with is `Ok`.
    pub fn forward(
        &self,
        request: &ForwardRequest,
        timeout: Duration,
    ) -> Result<ForwardResponse, BackendError> {
        // As the original: the endpoint's scheme and host, the request's own path (an
        // endpoint's path prefix applies to the relay's uploads, not to forwarded requests).
        let url = self.endpoint.origin_url_for(&request.target);
        let credentials = self
            .credentials
            .credentials()
            .map_err(BackendError::Credentials)?;
        let length = request.body.len().to_string();
        let mut headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let has_body =
            !request.body.is_empty() || matches!(request.method.as_str(), "POST" | "PUT" | "PATCH");
        if has_body {
            headers.push(("Content-Length", length.as_str()));
        }
        let signature = self
            .signer
            .sign(
                &RequestToSign {
                    method: &request.method,
                    url: &url,
                    headers: &headers,
                    body: &request.body,
                },
                &credentials,
                SystemTime::now(),
            )
            .map_err(BackendError::Signing)?;
        let mut builder = ureq::http::Request::builder()
            .method(request.method.as_str())
            .uri(url.as_str());
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
        {
            builder = builder.header("User-Agent", self.user_agent.as_str());
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        for (name, value) in &signature {
            builder = builder.header(*name, value.as_str());
        }
        let unsendable = |error: &dyn fmt::Display| BackendError::Transport {
            class: super::backend_error::ErrorClass::Other,
            detail: format!("cannot send {} {url}: {error}", request.method),
        };
        let http_request = builder
            .body(request.body.as_slice())
            .map_err(|error| unsendable(&error))?;
        let http_request = self
            .agent
            .configure_request(http_request)
            .timeout_global(Some(timeout))
            .build();
        let response = self
            .agent
            .run(http_request)
            .map_err(|error| BackendError::from_transport(error, &request.method, &url))?;
        let status = response.status().as_u16();
        log::debug!("{} {url}: HTTP {status} (forwarded)", request.method);
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        Ok(ForwardResponse {
            status,
            headers,
            body: Box::new(response.into_body().into_reader()),
        })
    }
}

impl fmt::Debug for XRayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayClient")
            .field("endpoint", &self.endpoint)
            .field("region", &self.signer.region())
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// How long a resolved address is reused.
const RESOLVED_FOR: Duration = Duration::from_secs(30);

/// ureq's resolver, remembering answers for [`RESOLVED_FOR`].
///
/// ureq resolves the host before every request, even one that goes out on a pooled
/// connection, and with a timeout it does so on a new thread: a thread and a DNS lookup per
/// batch. Addresses are only used for new connections, so a cached answer is as good; a
/// changed address is picked up within [`RESOLVED_FOR`].
#[derive(Debug, Default)]
struct CachingResolver {
    resolver: DefaultResolver,
    /// (scheme://authority, when resolved, addresses); one entry per host the agent talks to.
    cache: Mutex<Vec<(String, Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let scheme = uri.scheme_str().unwrap_or("");
        let authority = uri.authority().map_or("", |a| a.as_str());
        let matches = |key: &str| {
            key.strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix("://"))
                .is_some_and(|rest| rest == authority)
        };
        let now = Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, _, addrs)) = cache
                .iter()
                .find(|(key, at, _)| matches(key) && now.duration_since(*at) < RESOLVED_FOR)
            {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.resolver.resolve(uri, config, timeout)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(key, _, _)| !matches(key));
        cache.push((format!("{scheme}://{authority}"), now, addrs.clone()));
        Ok(addrs)
    }
}

/// Seconds since the epoch with 9 decimals, as the original sends in `X-Amzn-Xray-Timestamp`.
pub fn xray_timestamp(time: SystemTime) -> String {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:09}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
}

/// `xray-relay/<version> xray-agent/xray-daemon/3.6.6 exec-env/<AWS_EXECUTION_ENV or UNKNOWN>
/// OS/<os>-<arch>`, with Go's names for OS and architecture.
///
/// The original appends `xray-agent/xray-daemon/<its version> exec-env/… OS/…` to its SDK's
/// product token; X-Ray's side tells daemon traffic by that agent token, so the relay sends it
/// unchanged, claiming the daemon version whose behaviour it reproduces, with its own product
/// token in the SDK's place.
pub fn user_agent(env: &Env) -> String {
    let exec_env = env.get("AWS_EXECUTION_ENV").unwrap_or("UNKNOWN");
    format!(
        "xray-relay/{} xray-agent/xray-daemon/{} exec-env/{exec_env} OS/{}-{}",
        env!("CARGO_PKG_VERSION"),
        crate::cli::DAEMON_VERSION,
        go_os_name(std::env::consts::OS),
        go_arch_name(std::env::consts::ARCH)
    )
}

fn go_os_name(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        other => other,
    }
}

fn go_arch_name(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests;
