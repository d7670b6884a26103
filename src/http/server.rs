//! The server side of connections, shared by the proxy and the OTLP receiver: listeners
//! accepted on one thread under one connection cap, each connection's requests read in order
//! within the head, idle and body time limits and handed to its listener's [`Service`].
//! Every refusal is answered with its HTTP error, counted, and ends the connection.

use super::chunked::read_chunked;
use super::request::{BodyError, Head, HeadError, HeadLimits, Reader};
use super::response::{self, Answer};
use crate::stats::{Refusal, Stats};
use async_net::{TcpListener, TcpStream};
use smol::io::AsyncReadExt;
use smol::lock::Semaphore;
use std::future::Future;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`): a burst of
/// connections waits in the kernel instead of being dropped.
const LISTEN_BACKLOG: i32 = 4096;

/// How long a refused connection is drained before it is closed, so the client reads the
/// answer instead of a reset.
const LINGER: Duration = Duration::from_secs(1);

/// At most this much is drained from a refused connection.
const LINGER_BYTES: usize = 256 * 1024;

/// What every connection of a [`Server`] is held to, whichever listener it came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of request line and headers (431 above).
    pub max_head_bytes: usize,
    /// Header lines per request (431 above; at most [`super::request::MAX_HEADERS_CAP`]).
    pub max_headers: usize,
    /// For a request head, from its first byte, and for a new connection's first byte (408).
    pub head_timeout: Duration,
    /// For a body, from the end of the head (408), and for a body slot ([`BodyRules::slots`]).
    pub body_timeout: Duration,
    /// For the next request on a kept-alive connection; then it is closed quietly.
    pub idle_timeout: Duration,
    /// For each write of an answer; a client that does not read is dropped.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
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

/// Whether the connection can serve another request after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The answer was complete.
    Continue,
    /// The answer was cut off, refused, or the client stopped reading: close.
    Close,
}

/// What answers the requests of one listener: given a request whose head has been read
/// (and passed the checks every request gets), read its body if it wants it and answer.
pub trait Service: Send + Sync + 'static {
    /// Answers the request of `exchange`; [`After::Close`] ends the connection.
    fn respond(&self, exchange: &mut Exchange<'_>) -> impl Future<Output = After> + Send;

    /// Counts (and logs) a refusal answered on this listener's behalf: a head the server
    /// could not read, a connection over the cap, or [`Exchange::refuse`]. Each service
    /// counts in its own counters, so a bad OTLP client shows in OTLP's.
    fn refused(&self, reason: Refusal, answer: &Answer);
}

/// A [`Service`] behind a pointer, so the accept and request loops are compiled once rather
/// than once per service (the binary's size counts), at one small allocation per request.
trait Erased: Send + Sync {
    fn respond_boxed<'a>(
        &'a self,
        exchange: &'a mut Exchange<'_>,
    ) -> Pin<Box<dyn Future<Output = After> + Send + 'a>>;

    fn refused_erased(&self, reason: Refusal, answer: &Answer);
}

impl<S: Service> Erased for S {
    fn respond_boxed<'a>(
        &'a self,
        exchange: &'a mut Exchange<'_>,
    ) -> Pin<Box<dyn Future<Output = After> + Send + 'a>> {
        Box::pin(self.respond(exchange))
    }

    fn refused_erased(&self, reason: Refusal, answer: &Answer) {
        self.refused(reason, answer);
    }
}

/// How a service takes request bodies.
#[derive(Clone, Copy)]
pub struct BodyRules<'a> {
    /// The largest body taken, as declared or, chunked, as it arrives.
    pub max_bytes: usize,
    /// Whether `Transfer-Encoding: chunked` bodies are taken.
    pub chunked: bool,
    /// Bodies read at once: each may be large, and the connection cap times the largest
    /// body would be too much memory. A body waits at most the body timeout for one.
    pub slots: &'a Arc<Semaphore>,
    /// Bodies of a known length up to this are read without a slot; `None`: every body
    /// takes one.
    pub small_bytes: Option<usize>,
    /// Asked with each chunk's size before a chunked body takes it; `false` refuses the
    /// body ([`BodyFailure::NoRoom`]). `None`: bounded by `max_bytes` alone.
    pub room: Option<&'a (dyn Fn(usize) -> bool + Sync)>,
}

/// Why a body was not read; the service answers it in its own words (or closes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFailure {
    /// Larger than [`BodyRules::max_bytes`], as declared or as it arrived.
    TooLarge,
    /// Chunked, where the service takes `Content-Length` only.
    LengthRequired,
    /// No body slot came free within the body timeout.
    Busy,
    /// It did not arrive within the body timeout.
    Timeout,
    /// A chunked body's framing is broken; says where.
    Malformed(String),
    /// The connection closed or failed: there is nobody to answer.
    Closed,
    /// A chunked body grew past the room [`BodyRules::room`] gave it.
    NoRoom,
}

/// One request on a connection as a [`Service`] sees it: its head, its body still to be
/// read, and the connection to answer on. Answers are written in the request's HTTP version.
pub struct Exchange<'a> {
    head: &'a Head,
    stream: &'a TcpStream,
    reader: &'a mut Reader,
    connections: &'a Connections,
    service: &'a dyn Erased,
}

impl<'a> Exchange<'a> {
    /// The request head.
    pub fn head(&self) -> &'a Head {
        self.head
    }

    /// The server's limits.
    pub fn limits(&self) -> &'a Limits {
        &self.connections.limits
    }

    /// The connection, for an answer streamed as it arrives (a complete one goes through
    /// [`Exchange::answer`]).
    pub fn output(&self) -> TcpStream {
        self.stream.clone()
    }

    /// Reads the body within `rules` and the body timeout; bodies of a known length are read
    /// into one buffer of that length.
    pub async fn body(&mut self, rules: &BodyRules<'_>) -> Result<Vec<u8>, BodyFailure> {
        let head = self.head;
        let timeout = self.connections.limits.body_timeout;
        let length = if head.chunked {
            if !rules.chunked {
                return Err(BodyFailure::LengthRequired);
            }
            None
        } else {
            match usize::try_from(head.content_length) {
                Ok(length) if length <= rules.max_bytes => Some(length),
                _ => return Err(BodyFailure::TooLarge),
            }
        };
        let needs_slot = match (rules.small_bytes, length) {
            (Some(small), Some(length)) => length > small,
            _ => true,
        };
        if !needs_slot && length == Some(0) {
            return Ok(Vec::new());
        }
        let _slot = if needs_slot {
            let slot = super::take_slot(rules.slots, timeout).await;
            Some(slot.ok_or(BodyFailure::Busy)?)
        } else {
            None
        };
        if head.expect_continue && self.reader.buffered() == 0 {
            let go_on = b"HTTP/1.1 100 Continue\r\n\r\n";
            let mut output = self.stream.clone();
            let write = response::write_within(&mut output, go_on, self.limits().write_timeout);
            if write.await.is_err() {
                return Err(BodyFailure::Closed);
            }
        }
        let mut input = self.stream.clone();
        let body = match length {
            Some(length) => self.reader.body(&mut input, length, timeout).await,
            None => {
                let room = rules.room.unwrap_or(&|_| true);
                read_chunked(self.reader, &mut input, rules.max_bytes, room, timeout).await
            }
        };
        body.map_err(|error| match error {
            BodyError::Timeout => BodyFailure::Timeout,
            BodyError::Closed => BodyFailure::Closed,
            BodyError::TooLarge => BodyFailure::TooLarge,
            BodyError::Malformed(why) => BodyFailure::Malformed(why),
            BodyError::NoRoom => BodyFailure::NoRoom,
        })
    }

    /// Reads and drops a body of a known length of at most `max_bytes` (`Content-Length`,
    /// no `Expect: 100-continue`), so the request can be answered without keeping its body
    /// and the connection stay open; `false` when that cannot be done (then refuse and
    /// close).
    pub async fn skip_body(&mut self, max_bytes: usize) -> bool {
        let head = self.head;
        let Ok(length) = usize::try_from(head.content_length) else {
            return false;
        };
        if head.chunked || head.expect_continue || length > max_bytes {
            return false;
        }
        let timeout = self.connections.limits.body_timeout;
        let mut input = self.stream.clone();
        self.reader.skip(&mut input, length, timeout).await.is_ok()
    }

    /// Writes `answer`; the connection stays open if the client asked for that.
    pub async fn answer(&self, answer: Answer) -> After {
        let keep_alive = self.head.keep_alive;
        let bytes = response::for_version(answer.encode(keep_alive), self.head.version);
        let mut output = self.stream.clone();
        match response::write_within(&mut output, &bytes, self.limits().write_timeout).await {
            Ok(()) if keep_alive => After::Continue,
            _ => After::Close,
        }
    }

    /// Counts `reason` in the listener's service ([`Service::refused`]), sends `answer` and
    /// closes the connection.
    pub async fn refuse(&self, reason: Refusal, answer: Answer) -> After {
        self.service.refused_erased(reason, &answer);
        self.close_with(answer).await
    }

    /// Sends `answer` and closes the connection gracefully; counting is the caller's.
    pub async fn close_with(&self, answer: Answer) -> After {
        let bytes = response::for_version(answer.encode(false), self.head.version);
        close_with(self.stream, &bytes).await;
        After::Close
    }
}

/// What the connections of a server share: limits, counters and gauges.
struct Connections {
    limits: Limits,
    stats: Arc<Stats>,
    /// Connections over the cap being answered.
    refusing: AtomicU64,
}

/// Keeps a gauge one higher while it lives.
struct Gauge {
    connections: Arc<Connections>,
    gauge: fn(&Connections) -> &AtomicU64,
}

impl Gauge {
    fn new(connections: &Arc<Connections>, gauge: fn(&Connections) -> &AtomicU64) -> (Gauge, u64) {
        let before = gauge(connections).fetch_add(1, Ordering::Relaxed);
        let guard = Gauge {
            connections: connections.clone(),
            gauge,
        };
        (guard, before)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.gauge)(&self.connections).fetch_sub(1, Ordering::Relaxed);
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

/// Listeners to serve together on one thread of their own, with its own executor (whatever
/// clients do cannot take another thread): one connection cap, one set of limits, and the
/// connection counters of [`crate::stats::ProxyStats`] (refusals are each service's).
pub struct Server {
    connections: Arc<Connections>,
    executor: Arc<smol::Executor<'static>>,
}

impl Server {
    /// A server with no listeners yet.
    pub fn new(limits: Limits, stats: Arc<Stats>) -> Server {
        Server {
            connections: Arc::new(Connections {
                limits,
                stats,
                refusing: AtomicU64::new(0),
            }),
            executor: Arc::new(smol::Executor::new()),
        }
    }

    /// Serves the connections of `listener` with `service` once the server runs.
    pub fn serve<S: Service>(&mut self, listener: Listener, service: Arc<S>) -> io::Result<()> {
        let address = listener.address;
        let listener = TcpListener::try_from(listener.listener)?;
        // The accept loop holds the executor weakly: the thread's is the only strong
        // reference, so stopping drops the executor and every connection with it.
        let executor = Arc::downgrade(&self.executor);
        let connections = self.connections.clone();
        self.executor
            .spawn(accept(listener, address, connections, service, executor))
            .detach();
        Ok(())
    }

    /// Starts serving on a thread named `name`.
    pub fn spawn(self, name: &str) -> io::Result<Running> {
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let executor = self.executor;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                smol::block_on(executor.run(async {
                    let _ = stopped.recv().await;
                }));
            })?;
        Ok(Running {
            stop,
            thread: Some(thread),
        })
    }
}

/// A server, running on its own thread.
#[derive(Debug)]
pub struct Running {
    stop: smol::channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
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

async fn accept(
    listener: TcpListener,
    address: SocketAddr,
    connections: Arc<Connections>,
    service: Arc<dyn Erased>,
    executor: Weak<smol::Executor<'static>>,
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
        let Some(executor) = executor.upgrade() else {
            return;
        };
        connections
            .stats
            .proxy
            .accepted
            .fetch_add(1, Ordering::Relaxed);
        let (open, before) = Gauge::new(&connections, |c| &c.stats.proxy.open_connections);
        if before >= connections.limits.max_connections as u64 {
            drop(open);
            refuse_connection(stream, &connections, &*service, &executor);
            continue;
        }
        let _ = stream.set_nodelay(true);
        executor
            .spawn(serve(stream, connections.clone(), service.clone(), open))
            .detach();
    }
}

/// Serves `stream` until the client is done or a limit ends it; `_open` counts it as open.
async fn serve(
    stream: TcpStream,
    connections: Arc<Connections>,
    service: Arc<dyn Erased>,
    _open: Gauge,
) {
    let limits = connections.limits;
    let head_limits = limits.head();
    let mut reader = Reader::new();
    let mut input = stream.clone();
    let mut first = true;
    loop {
        let wait = if first {
            limits.head_timeout
        } else {
            limits.idle_timeout
        };
        let head = match reader.head(&mut input, &head_limits, wait).await {
            Ok(head) => head,
            Err(HeadError::Closed) => return,
            // A kept-alive connection with nothing more to ask is closed quietly.
            Err(HeadError::Idle) if !first => return,
            Err(error) => {
                let (reason, answer) = refusal(&error);
                service.refused_erased(reason, &answer);
                close_with(&stream, &answer.encode(false)).await;
                return;
            }
        };
        first = false;
        if let Some(problem) = host_header_problem(&head) {
            // Go's server writes these itself, in HTTP/1.1 whatever the request's version.
            let answer = Answer::go_server_error(400, problem);
            service.refused_erased(Refusal::BadRequest, &answer);
            close_with(&stream, &answer.encode(false)).await;
            return;
        }
        let mut exchange = Exchange {
            head: &head,
            stream: &stream,
            reader: &mut reader,
            connections: &connections,
            service: &*service,
        };
        let after = service.respond_boxed(&mut exchange).await;
        if after == After::Close {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// The refusal and answer for a head that could not be read (or, [`HeadError::LengthRequired`],
/// a body framed in a way the service does not take).
pub fn refusal(error: &HeadError) -> (Refusal, Answer) {
    match error {
        HeadError::Idle | HeadError::Timeout | HeadError::Closed => (
            Refusal::Timeout,
            Answer::error(
                408,
                "RequestTimeoutException",
                "the request did not arrive in time",
            ),
        ),
        HeadError::TooLarge => (
            Refusal::HeadTooLarge,
            Answer::error(
                431,
                "RequestHeaderFieldsTooLargeException",
                "the request head is larger than the relay takes",
            ),
        ),
        HeadError::TooManyHeaders => (
            Refusal::TooManyHeaders,
            Answer::error(
                431,
                "RequestHeaderFieldsTooLargeException",
                "the request has more headers than the relay takes",
            ),
        ),
        HeadError::Malformed(why) => (
            Refusal::BadRequest,
            Answer::error(400, "BadRequestException", why),
        ),
        HeadError::VersionNotSupported => (
            Refusal::BadRequest,
            Answer::go_server_error(505, "unsupported protocol version"),
        ),
        HeadError::LengthRequired => (
            Refusal::LengthRequired,
            Answer::error(
                411,
                "LengthRequiredException",
                "send the body with a Content-Length; Transfer-Encoding is not accepted",
            ),
        ),
    }
}

/// What Go's server (the original's) finds wrong with the `Host` header before any handler
/// runs, in its words: none on HTTP/1.1, more than one, or a byte no host name has.
fn host_header_problem(head: &Head) -> Option<&'static str> {
    let mut hosts = head
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (None, _) if head.version >= 1 => Some("missing required Host header"),
        (Some(_), Some(_)) => Some("too many Host headers"),
        (Some((_, host)), None) if !host.bytes().all(is_host_byte) => Some("malformed Host header"),
        _ => None,
    }
}

/// The bytes Go's `httpguts.ValidHostHeader` lets through: those of a host name, an IP
/// literal with zone, and a port, leniently (any order).
fn is_host_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!$%&()*+,-.:;=[']_~".contains(&byte)
}

/// Answers a connection over the cap with 503. Up to the cap again, refusals linger so the
/// client reads the answer; beyond that the answer is only written if the socket takes it.
fn refuse_connection(
    stream: TcpStream,
    connections: &Arc<Connections>,
    service: &dyn Erased,
    executor: &smol::Executor<'static>,
) {
    let answer = Answer::busy("the relay has too many connections open; try again");
    service.refused_erased(Refusal::TooManyConnections, &answer);
    let (refusing, before) = Gauge::new(connections, |c| &c.refusing);
    if before < connections.limits.max_connections as u64 {
        executor
            .spawn(async move {
                let _refusing = refusing;
                close_with(&stream, &answer.encode(false)).await;
            })
            .detach();
    } else {
        drop(refusing);
        let socket: Arc<smol::Async<std::net::TcpStream>> = stream.into();
        let _ = socket.get_ref().write(&answer.encode(false));
    }
}

/// Sends `bytes` (a whole answer) and closes the connection gracefully.
async fn close_with(stream: &TcpStream, bytes: &[u8]) {
    let mut output = stream.clone();
    if response::write_within(&mut output, bytes, LINGER)
        .await
        .is_ok()
    {
        linger_close(stream).await;
    }
}

/// Closes the sending side, then reads and drops what the client still sends for a moment:
/// closing with unread data would reset the connection, and the client might lose the answer.
async fn linger_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let mut input = stream.clone();
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    let mut scratch = [0u8; 2048];
    while drained < LINGER_BYTES {
        let read = smol::future::or(async { Some(input.read(&mut scratch).await) }, async {
            smol::Timer::at(deadline).await;
            None
        })
        .await;
        match read {
            Some(Ok(count)) if count > 0 => drained += count,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Answers with the body it read, or with the failure, within its own rules.
    struct Echo {
        chunked: bool,
        slots: Arc<Semaphore>,
        stats: Arc<Stats>,
    }

    impl Service for Echo {
        async fn respond(&self, exchange: &mut Exchange<'_>) -> After {
            let rules = BodyRules {
                max_bytes: 8,
                chunked: self.chunked,
                slots: &self.slots,
                small_bytes: None,
                room: None,
            };
            let answer = match exchange.body(&rules).await {
                Ok(body) => Answer::json(200, body),
                Err(failure) => Answer::json(400, format!("{failure:?}")),
            };
            exchange.answer(answer).await
        }

        fn refused(&self, reason: Refusal, _answer: &Answer) {
            self.stats.proxy.refused(reason);
        }
    }

    /// Sends each request on a connection of its own to a server of one `Echo`, and returns
    /// the answers whole.
    fn echo(chunked: bool, requests: &[&[u8]]) -> Vec<String> {
        let listener = bind("127.0.0.1:0").unwrap();
        let address = listener.address();
        let stats = Arc::new(Stats::default());
        let mut server = Server::new(Limits::default(), stats.clone());
        let slots = Arc::new(Semaphore::new(1));
        server
            .serve(
                listener,
                Arc::new(Echo {
                    chunked,
                    slots,
                    stats: stats.clone(),
                }),
            )
            .unwrap();
        let running = server.spawn("test-server").unwrap();
        let answers = requests
            .iter()
            .map(|request| {
                let mut stream = std::net::TcpStream::connect(address).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                stream.write_all(request).unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                answer
            })
            .collect();
        running.stop();
        assert_eq!(stats.proxy.open_connections.load(Ordering::Relaxed), 0);
        answers
    }

    #[test]
    fn a_service_reads_bodies_within_its_own_rules_and_answers_in_the_clients_version() {
        let chunked: &[u8] =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let too_large: &[u8] = b"POST / HTTP/1.0\r\nContent-Length: 9\r\n\r\n";
        let answers = echo(true, &[chunked, too_large]);
        assert!(
            answers[0].starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            answers[0]
        );
        assert!(answers[0].ends_with("\r\n\r\nabcde"), "{}", answers[0]);
        assert!(
            answers[1].starts_with("HTTP/1.0 400 Bad Request\r\n"),
            "{}",
            answers[1]
        );
        assert!(answers[1].ends_with("TooLarge"), "{}", answers[1]);
        let answers = echo(false, &[chunked]);
        assert!(answers[0].ends_with("LengthRequired"), "{}", answers[0]);
    }

    /// Stopping drops the executor, and with it every connection, even one waiting for its
    /// first byte: nothing holds the executor but the server's thread.
    #[test]
    fn stopping_closes_open_connections_at_once() {
        let listener = bind("127.0.0.1:0").unwrap();
        let address = listener.address();
        let stats = Arc::new(Stats::default());
        let mut server = Server::new(Limits::default(), stats.clone());
        let slots = Arc::new(Semaphore::new(1));
        let echo = Arc::new(Echo {
            chunked: false,
            slots,
            stats: stats.clone(),
        });
        server.serve(listener, echo).unwrap();
        let running = server.spawn("test-server").unwrap();
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        while stats.proxy.open_connections.load(Ordering::Relaxed) == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "never accepted");
            std::thread::sleep(Duration::from_millis(5));
        }
        running.stop();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        // Well before the head timeout, which would have answered 408.
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
        assert!(started.elapsed() < Limits::default().head_timeout);
        assert_eq!(stats.proxy.open_connections.load(Ordering::Relaxed), 0);
    }
}
