//! The UDP receiver: reads datagrams, checks them, and stores their segments in the pool.
//!
//! One thread blocks in a read on the socket: a sparse datagram costs one system call and one
//! wake-up, with no reactor in between (an async socket costs an epoll re-arm, an epoll wait
//! and a second, failed read per datagram). Under steady traffic it naps between reads
//! instead, so one wake-up collects many datagrams (`MAX_NAP` below), read up to eight per
//! system call ([`crate::reader`]). With no traffic the thread sleeps in the kernel and never
//! wakes.
//!
//! Nothing here allocates per datagram: the reader's buffers are reused, and the pool copies
//! the segment into its arena. A bad datagram is counted and logged with the original's warning
//! (at most about once a second, see [`crate::throttle`]), and the loop goes on; only the stop
//! signal ends it. An empty datagram is ignored, as the original ignores it.

use crate::datagram;
use crate::pool::{Pool, Spilled};
use crate::reader::{DatagramReader, READ_AT_ONCE};
use crate::spool::{Spool, Unsent, count_lost, spool_or_count_lost};
use crate::stats::Stats;
use crate::throttle::Throttled;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The receive buffer the relay asks the kernel for. The original keeps the default (about
/// 200 KB), which is where its only losses at 20,000 segments/s come from.
pub const SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Resolves an address the way Go's `net.ResolveUDPAddr` accepts it: `host:port`,
/// `[v6]:port`, or `:port` for every interface; empty (`-b ''`) for every interface on a port
/// the kernel picks.
pub fn resolve(address: &str) -> io::Result<SocketAddr> {
    let address = if address.is_empty() { ":0" } else { address };
    let full = match address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => address.to_string(),
    };
    full.to_socket_addrs()
        .map_err(|err| io::Error::new(err.kind(), format!("cannot resolve {address}: {err}")))?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no address for {address}")))
}

/// Binds the UDP socket, with a large receive buffer. Returns it and the buffer size the
/// kernel actually granted.
pub fn bind(address: &str) -> io::Result<(UdpSocket, usize)> {
    let addr = resolve(address)?;
    let socket = UdpSocket::bind(addr)
        .map_err(|err| io::Error::new(err.kind(), format!("cannot listen on UDP {addr}: {err}")))?;
    let granted = set_receive_buffer(&socket, SOCKET_BUFFER_BYTES);
    Ok((socket, granted))
}

/// Asks for `bytes` of receive buffer; returns what the kernel granted.
///
/// `SO_RCVBUFFORCE` passes `net.core.rmem_max` when the relay has CAP_NET_ADMIN; otherwise
/// `SO_RCVBUF` gets as much as that limit allows.
fn set_receive_buffer(socket: &UdpSocket, bytes: usize) -> usize {
    let fd = socket.as_raw_fd();
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |option| {
        // SAFETY: fd is an open socket owned by `socket`; value outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        set(libc::SO_RCVBUF);
    }
    let mut granted: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: fd is open; granted and len are valid for writes of their sizes.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut granted as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ok == 0 { granted.max(0) as usize } else { 0 }
}

/// The receiving thread, started by [`spawn`].
pub struct Receiving {
    socket: Arc<UdpSocket>,
    stopping: Arc<AtomicBool>,
    finished: smol::channel::Receiver<()>,
    thread: JoinHandle<()>,
}

/// Starts the thread that receives datagrams into the pool (see the module notes). With a
/// spool, segments the full pool pushes out are written there instead of being lost.
///
/// An error means the thread could not start: the relay cannot work without it.
pub fn spawn(
    socket: UdpSocket,
    pool: Arc<Pool>,
    stats: Arc<Stats>,
    spool: Option<Arc<Spool>>,
) -> io::Result<Receiving> {
    let socket = Arc::new(socket);
    let stopping = Arc::new(AtomicBool::new(false));
    let (done, finished) = smol::channel::bounded::<()>(1);
    let thread = {
        let (socket, stopping) = (socket.clone(), stopping.clone());
        std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || {
                receive(&socket, &pool, &stats, spool.as_deref(), &stopping);
                drop(done);
            })?
    };
    Ok(Receiving {
        socket,
        stopping,
        finished,
        thread,
    })
}

impl Receiving {
    /// Completes when the thread ends by itself, which only a panic makes it do.
    pub async fn ended(&self) {
        let _ = self.finished.recv().await;
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the thread blocked in recv (which then returns 0 bytes). Linux does this for a
        // UDP socket even though it reports ENOTCONN for an unconnected one.
        // SAFETY: the socket is open: `self.socket` holds it.
        unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RD) };
        let _ = self.thread.join();
    }
}

/// The longest pause between two reads while datagrams keep coming.
const MAX_NAP: Duration = Duration::from_millis(20);

/// What a queued datagram of `len` bytes takes of the socket buffer: the kernel charges the
/// whole buffer it allocated, measured on Linux 6 as 2,304 bytes for 1 KB, 16,644 for 8 KB and
/// 61,680 for 60 KB.
fn charged_bytes(len: usize) -> usize {
    2 * len + 1280
}

/// The receiving loop, until `stopping` is set.
///
/// A thread that blocks in `recv` wakes once per datagram, and on a small (virtual) host that
/// wake-up costs more than everything else the relay does with a segment. So datagrams are
/// awaited in a blocking read only while they are sparse. When one comes less than
/// [`MAX_NAP`] after the previous one, the thread instead naps and then reads everything that
/// queued meanwhile (without blocking), until a nap brings nothing. The nap is short enough
/// (see [`nap_length`]) that the socket buffer stays at most an eighth full at the rate just
/// seen. With no traffic the thread sleeps in the blocking read and never wakes.
fn receive(
    socket: &UdpSocket,
    pool: &Pool,
    stats: &Stats,
    spool: Option<&Spool>,
    stopping: &AtomicBool,
) {
    let budget = receive_buffer(socket) / 8;
    if let Err(err) = crate::reader::count_kernel_drops(socket) {
        log::warn!("Cannot count the kernel's drops on the UDP socket (SO_RXQ_OVFL): {err}");
    }
    let mut receiver = Receiver {
        pool,
        stats,
        spool,
        spilled: Spilled::new(),
        kernel_drops_seen: 0,
        rejected_log: [Throttled::new(), Throttled::new(), Throttled::new()],
        spillover_log: Throttled::new(),
        error_log: Throttled::new(),
    };
    let mut reader = DatagramReader::new();
    let mut previous: Option<Instant> = None;
    loop {
        receiver.flush_warnings_when_idle(socket);
        let bytes = receiver.read(socket, &mut reader, true);
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        if bytes == 0 {
            continue;
        }
        receiver.handle_all(&reader);
        let now = Instant::now();
        let sparse = previous.is_none_or(|p| now.duration_since(p) >= MAX_NAP);
        previous = Some(now);
        if sparse {
            continue;
        }
        // Traffic: read in naps until a nap brings nothing.
        let mut nap = nap_length(2 * bytes, MAX_NAP, budget);
        loop {
            let started = Instant::now();
            std::thread::sleep(nap);
            let mut bytes = 0;
            loop {
                let read = receiver.read(socket, &mut reader, false);
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                receiver.handle_all(&reader);
                bytes += read;
                // A short read means the socket is empty: no need to ask again.
                if reader.datagrams().count() < READ_AT_ONCE {
                    break;
                }
            }
            receiver.flush_due_warnings();
            if bytes == 0 {
                previous = Some(Instant::now());
                break;
            }
            nap = nap_length(bytes, started.elapsed(), budget);
        }
    }
}

/// How long to nap so that, at the rate of `bytes` in `elapsed`, at most `budget` bytes queue.
fn nap_length(bytes: usize, elapsed: Duration, budget: usize) -> Duration {
    let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-6);
    MAX_NAP.min(Duration::from_secs_f64(budget as f64 / rate))
}

/// The receive buffer the kernel granted the socket, in bytes.
fn receive_buffer(socket: &UdpSocket) -> usize {
    let mut granted: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the socket is open; granted and len are valid for writes of their sizes.
    let ok = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut granted as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ok == 0 { granted.max(0) as usize } else { 0 }
}

/// The receiving thread's state: where segments go and the throttled warnings.
struct Receiver<'a> {
    pool: &'a Pool,
    stats: &'a Stats,
    spool: Option<&'a Spool>,
    spilled: Spilled,
    /// The socket's drop counter at the last read (it wraps at 2^32).
    kernel_drops_seen: u32,
    /// One per kind of rejection, so a flood of one kind hides no other.
    rejected_log: [Throttled; 3],
    spillover_log: Throttled,
    error_log: Throttled,
}

impl Receiver<'_> {
    /// Reads what is queued (waiting for the first datagram if `wait`) and returns what the
    /// datagrams were charged in the socket buffer, 0 when none was read. Errors are logged.
    fn read(&mut self, socket: &UdpSocket, reader: &mut DatagramReader, wait: bool) -> usize {
        match reader.read(socket, wait) {
            Ok(_) => reader.datagrams().map(|d| charged_bytes(d.len())).sum(),
            Err(err) => {
                self.error_log
                    .warn(|| format!("Error reading from the UDP socket: {err}"));
                // Errors that repeat at once (none are expected) must not spin a core.
                std::thread::sleep(Duration::from_millis(10));
                0
            }
        }
    }

    /// Checks and stores every datagram of the last read, then hands the segments the pool
    /// had no room for to the spool's queue in one go (no disk I/O, no waiting: see
    /// [`crate::spool`]).
    fn handle_all(&mut self, reader: &DatagramReader) {
        for datagram in reader.datagrams() {
            self.handle(datagram);
        }
        if let Some(drops) = reader.kernel_drops() {
            let new = drops.wrapping_sub(self.kernel_drops_seen);
            self.kernel_drops_seen = drops;
            Stats::add(&self.stats.kernel_drops, u64::from(new));
        }
        if self.spilled.is_empty() {
            return;
        }
        let lost = spool_or_count_lost(
            self.spool,
            self.stats,
            Unsent::Evicted,
            self.spilled.documents(),
        );
        self.spilled.clear();
        if lost > 0 {
            self.spillover_log.warn(|| {
                format!("Segment dropped ({lost} with the buffer and the spool's queue full). Consider increasing memory limit")
            });
        }
    }

    /// Checks one datagram and stores its segment.
    fn handle(&mut self, datagram: &[u8]) {
        // The original reads an empty datagram as nothing read: not counted, not logged.
        if datagram.is_empty() {
            return;
        }
        let stats = self.stats;
        Stats::add(&stats.received, 1);
        match datagram::segment_body(datagram) {
            Ok(segment) => {
                log::trace!("Segment: {}", String::from_utf8_lossy(segment));
                // With a spool, a segment the full pool has no room for is kept for the
                // spool (by `handle_all`); without, the oldest make room and are lost.
                if self.spool.is_some() {
                    if !self.pool.push_if_room(segment) {
                        self.spilled.push(segment);
                    }
                    return;
                }
                let pushed = self.pool.push(segment);
                let lost = u64::from(pushed.evicted_waiting) + u64::from(!pushed.stored);
                if lost > 0 {
                    count_lost(stats, Unsent::Evicted, lost);
                    // The original's two lines: oldest dropped from a full buffer, or the
                    // new segment itself dropped; our count only where it says more.
                    self.spillover_log.warn(|| match (pushed.stored, lost) {
                        (true, 1) => {
                            "Segment buffer is full. Dropping oldest segment document.".to_owned()
                        }
                        (true, _) => format!(
                            "Segment buffer is full. Dropping oldest segment document. ({lost} dropped to make room)"
                        ),
                        (false, _) => "Segment dropped. Consider increasing memory limit".to_owned(),
                    });
                }
            }
            Err(rejection) => {
                Stats::add(&stats.rejected, 1);
                let kind = match rejection {
                    datagram::Rejection::InvalidHeader => 0,
                    datagram::Rejection::MissingBody => 1,
                    _ => 2,
                };
                self.rejected_log[kind].warn(|| rejection.warning(datagram));
            }
        }
    }

    fn throttles(&mut self) -> impl Iterator<Item = &mut Throttled> {
        self.rejected_log
            .iter_mut()
            .chain([&mut self.spillover_log, &mut self.error_log])
    }

    /// Logs the warnings held back whose second is over.
    fn flush_due_warnings(&mut self) {
        let now = Instant::now();
        for throttle in self.throttles() {
            throttle.flush_due(now);
        }
    }

    /// Before a read that may block for good: while warnings are held back, waits for a
    /// datagram only until they are due, and logs them if none came, so the end of a burst
    /// is logged when the traffic stops.
    fn flush_warnings_when_idle(&mut self, socket: &UdpSocket) {
        while let Some(due) = self.throttles().filter_map(|t| t.due()).min() {
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() && readable_within(socket, wait) {
                return;
            }
            self.flush_due_warnings();
        }
    }
}

impl Drop for Receiver<'_> {
    /// The receiver stops: what is held back is logged now.
    fn drop(&mut self) {
        for throttle in self.throttles() {
            throttle.flush();
        }
    }
}

/// Waits up to `wait` for `socket` to have something to read (or to be shut down).
fn readable_within(socket: &UdpSocket, wait: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Rounded up: a wait cut to 0 ms would spin until the warnings are due.
    let millis = libc::c_int::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `poll` is one valid pollfd for an open socket, and the count says one.
    let ready = unsafe { libc::poll(&mut poll, 1, millis) };
    ready > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Batch, MIN_POOL_BYTES};

    #[test]
    fn resolves_the_spellings_go_accepts() {
        assert_eq!(
            resolve("127.0.0.1:2000").unwrap(),
            "127.0.0.1:2000".parse().unwrap()
        );
        assert_eq!(
            resolve("[::1]:2000").unwrap(),
            "[::1]:2000".parse().unwrap()
        );
        assert_eq!(resolve(":2000").unwrap(), "0.0.0.0:2000".parse().unwrap());
        // `-b ''`: Go's ResolveUDPAddr gives the zero address, every interface, any port.
        assert_eq!(resolve("").unwrap(), "0.0.0.0:0".parse().unwrap());
        assert!(resolve("localhost:2000").unwrap().ip().is_loopback());
        assert!(resolve("127.0.0.1").is_err());
        assert!(resolve("127.0.0.1:notaport").is_err());
    }

    #[test]
    fn naps_keep_the_socket_buffer_from_filling() {
        // 100,000 datagrams of 1 KB per second charge about 333 MB/s: with 1 MB to spare the
        // nap must end before 1 MB queues (3.15 ms), and never last longer than MAX_NAP.
        let bytes_per_second = 100_000 * charged_bytes(1024);
        let nap = nap_length(bytes_per_second, Duration::from_secs(1), 1 << 20);
        assert!(nap <= Duration::from_micros(3151), "{nap:?}");
        assert!(nap >= Duration::from_micros(3150), "{nap:?}");
        assert_eq!(
            nap_length(charged_bytes(1024), Duration::from_secs(1), 1 << 20),
            MAX_NAP
        );
    }

    #[test]
    fn receives_valid_segments_and_counts_the_rest() {
        let (socket, granted) = bind("127.0.0.1:0").unwrap();
        assert!(granted > 0);
        let address = socket.local_addr().unwrap();
        let pool = Arc::new(Pool::with_memory(MIN_POOL_BYTES));
        let stats = Arc::new(Stats::default());
        let receiver = spawn(socket, pool.clone(), stats.clone(), None).unwrap();

        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let header = "{\"format\":\"json\",\"version\":1}\n";
        let big = format!(
            "{header}{{\"id\":\"big\",\"pad\":\"{}\"}}",
            "x".repeat(65_000)
        );
        let datagrams: Vec<Vec<u8>> = vec![
            format!("{header}{{\"id\":\"1\"}}").into_bytes(),
            b"no header at all".to_vec(),
            format!("{header}{{\"id\":\"2\"}}").into_bytes(),
            b"{\"format\":\"json\",\"version\":2}\n{\"id\":\"x\"}".to_vec(),
            Vec::new(),
            vec![0xff; 300],
            big.clone().into_bytes(),
            // After a valid header any body is kept, as the original keeps it: X-Ray judges.
            format!("{header}{{not json\t\u{0}").into_bytes(),
            [format!("{header}{{\"name\":\"caf").as_bytes(), b"\xe9\"}"].concat(),
            format!("{header}{{\"id\":\"3\"}}").into_bytes(),
        ];
        for d in &datagrams {
            sender.send_to(d, address).unwrap();
        }
        // The empty datagram is not counted, as in the original.
        let counted = datagrams.len() as u64 - 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.snapshot().received < counted && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        receiver.stop();

        let counts = stats.snapshot();
        assert_eq!(counts.received, counted);
        assert_eq!(counts.rejected, 3);
        pool.close();
        let mut batch = Batch::new();
        assert!(pool.take_batch(&mut batch));
        let kept: Vec<&[u8]> = batch.documents().collect();
        let expected: Vec<&[u8]> = [0, 2, 6, 7, 8, 9]
            .iter()
            .map(|&i| &datagrams[i][header.len()..])
            .collect();
        assert_eq!(kept, expected);
        assert_eq!(kept[2].len(), big.len() - header.len());
    }
}
