//! The TCP proxy on `-t` / `Socket.TCPAddress`: SDKs' unsigned X-Ray API calls go out signed,
//! `GET /healthz` and `GET /metrics` are answered locally, and so, offline, are the sampling
//! APIs.
//!
//! It is a [`crate::http::server::Service`], served (with the OTLP port, when that is on)
//! on a thread of its own with its own executor: whatever clients do here cannot take the
//! thread of the UDP receiver. Every limit in [`Limits`] refuses with an HTTP error and is
//! counted in [`crate::stats::ProxyStats`]. Forwarded calls are blocking ureq calls on
//! smol's blocking pool, at most [`Limits::forwards`] at a time, so thousands of
//! connections cannot become thousands of threads.

pub mod forward;
pub mod local;
pub mod metrics;
mod service;
// Kept as `proxy::request` and `proxy::response`: they moved to `http` to be shared.
pub use crate::http::{request, response};
// The proxy's port is bound and run by the shared server.
pub use crate::http::server::{Listener, Running, bind};

pub use forward::Forward;
pub use local::HealthPolicy;

use crate::http::server::{self, Server};
use crate::otlp::http::Traces;
use crate::pool::Pool;
use crate::stats::Stats;
use smol::lock::Semaphore;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the proxy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections, heads and time limits, shared with the OTLP port.
    pub connection: server::Limits,
    /// Bytes of body (413 above). X-Ray's sampling calls send a few KB.
    pub max_body_bytes: usize,
    /// Requests forwarded to X-Ray at once.
    pub forwards: usize,
    /// How long a request waits for a forwarding slot (503 then).
    pub forward_wait: Duration,
    /// For X-Ray's whole answer to a forwarded request.
    pub forward_timeout: Duration,
    /// Bodies larger than 16 KB read at once (503 for a request that waits too long).
    pub large_bodies: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connection: server::Limits::default(),
            max_body_bytes: 1024 * 1024,
            forwards: 8,
            forward_wait: Duration::from_secs(5),
            forward_timeout: Duration::from_secs(10),
            large_bodies: 16,
        }
    }
}

/// Where forwarded requests go.
#[derive(Clone)]
pub enum Upstream {
    /// To X-Ray through this client.
    XRay(Arc<dyn Forward>),
    /// Offline mode: nowhere; the sampling APIs are answered with the default rule.
    Offline,
}

/// Everything the proxy runs with.
#[derive(Clone)]
pub struct Proxy {
    /// The limits.
    pub limits: Limits,
    /// Where requests go.
    pub upstream: Upstream,
    /// When `/healthz` says 503.
    pub health: HealthPolicy,
    /// The relay's counters (read by `/healthz` and `/metrics`, written by the proxy).
    pub stats: Arc<Stats>,
    /// The segment buffer, for its fill.
    pub pool: Arc<Pool>,
    /// Forward only the sampling APIs ([`local::is_sampling_api`]); others get 403.
    pub sampling_only: bool,
    /// The OTLP receiver, when OTLP is on: `POST /v1/traces` goes there.
    pub otlp: Option<Arc<crate::otlp::Receiver>>,
}

/// State shared by the proxy's requests.
struct Shared {
    limits: Limits,
    upstream: Upstream,
    health: HealthPolicy,
    stats: Arc<Stats>,
    pool: Arc<Pool>,
    sampling_only: bool,
    otlp: Option<Arc<Traces>>,
    started: Instant,
    started_at: SystemTime,
    forward_slots: Arc<Semaphore>,
    large_bodies: Arc<Semaphore>,
}

/// Starts serving `listener` on a thread named `proxy`.
pub fn spawn(listener: Listener, proxy: Proxy) -> io::Result<Running> {
    spawn_with_otlp(listener, None, proxy)
}

/// Starts serving `listener`, and `otlp_listener` (OTLP only, given with [`Proxy::otlp`])
/// beside it, on a thread named `proxy`: both share the connection cap, the limits and the
/// counters, and the OTLP receiver's body slots.
pub fn spawn_with_otlp(
    listener: Listener,
    otlp_listener: Option<Listener>,
    proxy: Proxy,
) -> io::Result<Running> {
    let traces = proxy.otlp.map(|receiver| Arc::new(Traces::new(receiver)));
    let mut server = Server::new(proxy.limits.connection, proxy.stats.clone());
    match (otlp_listener, &traces) {
        (Some(otlp_listener), Some(traces)) => server.serve(otlp_listener, traces.clone())?,
        (Some(otlp_listener), None) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "an OTLP port ({}) without an OTLP receiver to serve it",
                    otlp_listener.address()
                ),
            ));
        }
        (None, _) => {}
    }
    let shared = Arc::new(Shared {
        forward_slots: Arc::new(Semaphore::new(proxy.limits.forwards.max(1))),
        large_bodies: Arc::new(Semaphore::new(proxy.limits.large_bodies.max(1))),
        limits: proxy.limits,
        upstream: proxy.upstream,
        health: proxy.health,
        stats: proxy.stats,
        pool: proxy.pool,
        sampling_only: proxy.sampling_only,
        otlp: traces,
        started: Instant::now(),
        started_at: SystemTime::now(),
    });
    server.serve(listener, shared)?;
    server.spawn("proxy")
}
