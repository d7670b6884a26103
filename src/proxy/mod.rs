//! The TCP proxy on `-t` / `Socket.TCPAddress`: SDKs' unsigned X-Ray API calls go out signed,
//! `GET /healthz` and `GET /metrics` are answered locally, and so, offline, are the sampling
//! APIs.
//!
//! It runs on a thread of its own with its own executor: whatever clients do here cannot take
//! the thread of the UDP receiver. Every limit in [`Limits`] refuses with an HTTP error and is
//! counted in [`crate::stats::ProxyStats`]. Forwarded calls are blocking ureq calls on smol's
//! blocking pool, at most [`Limits::forwards`] at a time, so thousands of connections cannot
//! become thousands of threads.

mod connection;
pub mod forward;
pub mod local;
pub mod metrics;
mod otlp;
// Kept as `proxy::request` and `proxy::response`: they moved to `http` to be shared.
pub use crate::http::{request, response};

pub use forward::Forward;
pub use local::HealthPolicy;

use crate::pool::Pool;
use crate::stats::{Refusal, Stats};
use async_net::{TcpListener, TcpStream};
use request::HeadLimits;
use response::Answer;
use smol::lock::Semaphore;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`): a burst of
/// connections waits in the kernel instead of being dropped.
const LISTEN_BACKLOG: i32 = 4096;

/// What the proxy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of request line and headers (431 above).
    pub max_head_bytes: usize,
    /// Header lines per request (431 above; at most [`request::MAX_HEADERS_CAP`]).
    pub max_headers: usize,
    /// Bytes of body (413 above). X-Ray's sampling calls send a few KB.
    pub max_body_bytes: usize,
    /// For a request head, from its first byte, and for a new connection's first byte (408).
    pub head_timeout: Duration,
    /// For a body, from the end of the head (408).
    pub body_timeout: Duration,
    /// For the next request on a kept-alive connection; then it is closed quietly.
    pub idle_timeout: Duration,
    /// For each write of an answer; a client that does not read is dropped.
    pub write_timeout: Duration,
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
            max_connections: 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 1024 * 1024,
            head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            forwards: 8,
            forward_wait: Duration::from_secs(5),
            forward_timeout: Duration::from_secs(10),
            large_bodies: 16,
        }
    }
}

impl Limits {
    fn head(&self) -> HeadLimits {
        HeadLimits {
            max_bytes: self.max_head_bytes,
            max_headers: self.max_headers,
            timeout: self.head_timeout,
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

/// Which port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The proxy's (`-t`).
    Proxy,
    /// The OTLP receiver's (`--otlp-address`).
    Otlp,
}

/// State shared by the connections.
struct Shared {
    limits: Limits,
    upstream: Upstream,
    health: HealthPolicy,
    stats: Arc<Stats>,
    pool: Arc<Pool>,
    sampling_only: bool,
    otlp: Option<Arc<crate::otlp::Receiver>>,
    otlp_bodies: Arc<Semaphore>,
    started: Instant,
    started_at: SystemTime,
    forward_slots: Arc<Semaphore>,
    large_bodies: Arc<Semaphore>,
    refusing: AtomicU64,
}

/// Keeps a gauge one higher while it lives.
struct Gauge {
    shared: Arc<Shared>,
    gauge: fn(&Shared) -> &AtomicU64,
}

impl Gauge {
    fn new(shared: &Arc<Shared>, gauge: fn(&Shared) -> &AtomicU64) -> (Gauge, u64) {
        let before = gauge(shared).fetch_add(1, Ordering::Relaxed);
        let guard = Gauge {
            shared: shared.clone(),
            gauge,
        };
        (guard, before)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.gauge)(&self.shared).fetch_sub(1, Ordering::Relaxed);
    }
}

/// A bound TCP socket, not yet served.
#[derive(Debug)]
pub struct Listener {
    listener: std::net::TcpListener,
    address: SocketAddr,
}

impl Listener {
    /// The address it is bound to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Binds `address` like Go's `net.Listen("tcp", …)`: `host:port`, `[v6]:port`, or `:port`
/// for every interface, IPv6 and IPv4 both where the host has IPv6. Empty (`-t ''`) is Go's
/// `http.Server` default, `:http`: port 80 on every interface.
pub fn bind(address: &str) -> io::Result<Listener> {
    let address = if address.is_empty() { ":80" } else { address };
    let candidates: Vec<SocketAddr> = match address.strip_prefix(':') {
        Some(port) => {
            let port: u16 = port.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad port in {address}"),
                )
            })?;
            vec![
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
                SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
            ]
        }
        None => address
            .to_socket_addrs()
            .map_err(|err| io::Error::new(err.kind(), format!("cannot resolve {address}: {err}")))?
            .take(1)
            .collect(),
    };
    let mut last_error =
        io::Error::new(io::ErrorKind::NotFound, format!("no address for {address}"));
    for candidate in candidates {
        match std::net::TcpListener::bind(candidate) {
            Ok(listener) => {
                // std listens with a backlog of 128; a second listen() only raises it.
                // SAFETY: the descriptor is the open, listening socket `listener` owns.
                unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
                let address = listener.local_addr()?;
                return Ok(Listener { listener, address });
            }
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// The proxy, running on its own thread.
#[derive(Debug)]
pub struct Running {
    stop: smol::channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
    address: SocketAddr,
}

impl Running {
    /// The address it serves.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, drops every connection and waits for the thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Starts serving `listener` on a thread named `proxy`.
pub fn spawn(listener: Listener, proxy: Proxy) -> io::Result<Running> {
    spawn_with_otlp(listener, None, proxy)
}

/// Starts serving `listener`, and `otlp_listener` (OTLP only) beside it, on a thread named
/// `proxy`: both share the connection cap, the limits and the counters.
pub fn spawn_with_otlp(
    listener: Listener,
    otlp_listener: Option<Listener>,
    proxy: Proxy,
) -> io::Result<Running> {
    let address = listener.address;
    let listener = TcpListener::try_from(listener.listener)?;
    let otlp_listener = match otlp_listener {
        Some(otlp) => Some((otlp.address, TcpListener::try_from(otlp.listener)?)),
        None => None,
    };
    let shared = Arc::new(Shared {
        forward_slots: Arc::new(Semaphore::new(proxy.limits.forwards.max(1))),
        large_bodies: Arc::new(Semaphore::new(proxy.limits.large_bodies.max(1))),
        limits: proxy.limits,
        upstream: proxy.upstream,
        health: proxy.health,
        stats: proxy.stats,
        pool: proxy.pool,
        sampling_only: proxy.sampling_only,
        otlp: proxy.otlp,
        otlp_bodies: Arc::new(Semaphore::new(crate::otlp::BODIES_AT_ONCE)),
        started: Instant::now(),
        started_at: SystemTime::now(),
        refusing: AtomicU64::new(0),
    });
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let thread = std::thread::Builder::new()
        .name("proxy".into())
        .spawn(move || {
            let executor = smol::Executor::new();
            let otlp_shared = shared.clone();
            let both = smol::future::zip(
                accept(listener, shared, &executor, address, Role::Proxy),
                async {
                    match otlp_listener {
                        Some((address, listener)) => {
                            accept(listener, otlp_shared, &executor, address, Role::Otlp).await
                        }
                        None => std::future::pending().await,
                    }
                },
            );
            smol::block_on(executor.run(smol::future::or(
                async {
                    both.await;
                },
                async {
                    let _ = stopped.recv().await;
                },
            )));
        })?;
    Ok(Running {
        stop,
        thread: Some(thread),
        address,
    })
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    executor: &smol::Executor<'_>,
    address: SocketAddr,
    role: Role,
) {
    let mut last_warning: Option<Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    log::warn!("Proxy: cannot accept a connection on {address}: {error}");
                    last_warning = Some(Instant::now());
                }
                // Out of descriptors or memory: give the open connections time to end.
                smol::Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let proxy = &shared.stats.proxy;
        proxy.accepted.fetch_add(1, Ordering::Relaxed);
        let (open, before) = Gauge::new(&shared, |s| &s.stats.proxy.open_connections);
        if before >= shared.limits.max_connections as u64 {
            drop(open);
            refuse_connection(stream, &shared, executor);
            continue;
        }
        let _ = stream.set_nodelay(true);
        executor
            .spawn(connection::serve(stream, shared.clone(), open, role))
            .detach();
    }
}

/// Answers a connection over the cap with 503. Up to the cap again, refusals linger so the
/// client reads the answer; beyond that the answer is only written if the socket takes it.
fn refuse_connection(stream: TcpStream, shared: &Arc<Shared>, executor: &smol::Executor<'_>) {
    shared.stats.proxy.refused(Refusal::TooManyConnections);
    let answer = Answer::error(
        503,
        "ServiceUnavailableException",
        "the relay's proxy has too many connections open; try again",
    )
    .with_header("Retry-After", "1");
    let (refusing, before) = Gauge::new(shared, |s| &s.refusing);
    if before < shared.limits.max_connections as u64 {
        executor
            .spawn(async move {
                let _refusing = refusing;
                let mut output = stream.clone();
                let bytes = answer.encode(false);
                if response::write_within(&mut output, &bytes, Duration::from_secs(1))
                    .await
                    .is_ok()
                {
                    connection::linger_close(&stream).await;
                }
            })
            .detach();
    } else {
        drop(refusing);
        let socket: Arc<smol::Async<std::net::TcpStream>> = stream.into();
        let _ = socket.get_ref().write(&answer.encode(false));
    }
}
