//! OpenTelemetry in: an OTLP/HTTP traces receiver (`POST /v1/traces`, protobuf or JSON,
//! gzip or not) whose spans are kept in the OTLP share of the relay's buffer and forwarded,
//! signed, to X-Ray's OTLP endpoint, or written to the local sink.
//!
//! The steps, one file each: [`http`] (the service that answers `POST /v1/traces` on the
//! OTLP port and, handed it by the proxy, on the proxy's), [`receive`] (what a request may be
//! and what it becomes), [`protobuf`] and [`json`] (decoding, driven by the tables in
//! [`schema`]), [`split`] (within X-Ray's limits), [`queue`] (the buffer share and its
//! backpressure; [`count`] counts the spans of a gzip body it has no room for), [`forward`]
//! ([`gzip`] both ways), or [`translate`] into the segment pool ([`segments`]), with [`auto`]
//! choosing between them. Connections, heads, body reading and their limits are the
//! server's that the proxy uses too, in [`crate::http`].

pub mod auto;
pub mod count;
pub mod forward;
pub mod gzip;
pub mod http;
pub mod json;
pub mod protobuf;
pub mod queue;
pub mod receive;
pub mod schema;
pub mod segments;
pub mod split;
pub mod spool;
pub mod stats;
pub mod translate;

pub use stats::OtlpStats;

use forward::{Destination, Forwarder};
use queue::Queue;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// The largest OTLP request body taken, before and after decompression (413 above); less
/// with a small buffer ([`body_limit`]).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The OTLP share of the buffer is at least this (two of the largest requests) when
/// `--buffer-memory` allows it ([`share_buffer`]).
pub const MIN_BUFFER_BYTES: usize = 2 * MAX_BODY_BYTES;

/// OTLP request bodies read at once (each up to [`MAX_BODY_BYTES`]); more wait, then 503.
pub const BODIES_AT_ONCE: usize = 2;

/// Forwarder threads: requests are merged up to X-Ray's limits, so a few carry a lot.
pub const FORWARDERS: usize = 2;

/// What the receiver needs while serving requests.
#[derive(Debug)]
pub struct Receiver {
    /// The OTLP buffer.
    pub queue: Arc<Queue>,
    /// The counters.
    pub stats: Arc<OtlpStats>,
    /// See [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Refuse spans X-Ray's OTLP endpoint refuses for their times (more than 14 days old,
    /// more than 2 h ahead): at once, in `partial_success`, rather than after the buffer and
    /// a call. Only for that destination: the local sink writes whatever came, and X-Ray
    /// documents have rules of their own.
    pub refuse_out_of_time: bool,
    /// Keep a gzip protobuf body beside its decompressed bytes, for a destination that sends
    /// it on as it came ([`forward::Export::takes_gzip`]); elsewhere it would only take room.
    pub keep_gzip: bool,
}

/// How `buffer_bytes` (`--buffer-memory`) is shared when OTLP is on: a quarter for OTLP,
/// but at least [`MIN_BUFFER_BYTES`] or, when that would be more than half (under 16 MiB),
/// half; the rest for segments, less an eighth with `segments` (`OTLP.Destination:
/// segments`). Returns (segments, OTLP).
///
/// Split rather than shared: segments arrive by UDP and cannot be asked to wait, so a burst
/// of OTLP must not push them out; OTLP clients can, so they get a fixed share and a 503
/// when it is full. Segments keep at least half, so a small `-m` still buffers them; OTLP
/// keeps room for two of its largest requests ([`body_limit`]), one being forwarded while
/// the next is taken; its requests in flight are in its share ([`queue::Reserved`]).
///
/// Translated spans are held twice over: in the OTLP share until translated, then in the
/// pool, both full while X-Ray is slow; and their uploads (batches and request bodies, up
/// to `Concurrency` at once) and the translating threads hold them outside both. The
/// eighth is their room, so the whole stays within `--buffer-memory`.
pub fn share_buffer(buffer_bytes: usize, segments: bool) -> (usize, usize) {
    let otlp = (buffer_bytes / 4).max(MIN_BUFFER_BYTES.min(buffer_bytes / 2));
    let in_flight = if segments {
        translation_room(buffer_bytes)
    } else {
        0
    };
    (buffer_bytes - otlp - in_flight, otlp)
}

/// The eighth of `buffer_bytes` left for the uploads of translated spans ([`share_buffer`]):
/// from the pool with `segments`, from the OTLP share once `auto` turns to segments.
pub fn translation_room(buffer_bytes: usize) -> usize {
    buffer_bytes / 8
}

/// The largest request body for an OTLP share of `otlp_bytes`: [`MAX_BODY_BYTES`], or half
/// the share when that is less (`--buffer-memory` under 16 MiB), so two always fit: bodies
/// in flight take their room in the share ([`queue::Reserved`]) before they are read.
pub fn body_limit(otlp_bytes: usize) -> usize {
    MAX_BODY_BYTES.min(otlp_bytes / 2)
}

/// The forwarders, running.
pub struct Running {
    /// The receiver to serve requests with.
    pub receiver: Arc<Receiver>,
    forwarder: Arc<Forwarder>,
    threads: Vec<JoinHandle<()>>,
    spool: Option<(Arc<crate::spool::Spool>, JoinHandle<()>)>,
}

impl Running {
    /// With `auto`: once spans go to segments, the OTLP share gives up `bytes` (at most a
    /// quarter of it) for the uploads of translated spans ([`translation_room`]).
    pub fn giving_up_for_segments(self, bytes: usize) -> Running {
        if let Destination::Auto { .. } = self.forwarder.destination {
            let queue = &self.receiver.queue;
            queue.set_translated_capacity(queue.capacity() - bytes.min(queue.capacity() / 4));
        }
        self
    }

    /// Stops taking requests, forwards what is buffered until `deadline`, then gives up on
    /// retries, and spools what is left (or counts it as lost, and says so).
    pub fn shut_down(self, deadline: Instant) {
        let queue = &self.receiver.queue;
        queue.close();
        let busy = |threads: &[JoinHandle<()>]| threads.iter().any(|t| !t.is_finished());
        while Instant::now() < deadline && busy(&self.threads) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        queue.abandon();
        // A forwarder stuck in a call (an endpoint that never answers) is left behind rather
        // than stretch shutdown past its bound; the chunks it holds stay counted in the queue.
        let grace = deadline + crate::relay::ABANDON_GRACE;
        while Instant::now() < grace && busy(&self.threads) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for thread in self.threads.into_iter().filter(JoinHandle::is_finished) {
            let _ = thread.join();
        }
        let mut left = queue.take_waiting();
        left.append(
            &mut self
                .forwarder
                .leftovers
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let spans: u64 = left.iter().map(|c| u64::from(c.spans)).sum();
        let stats = &self.receiver.stats;
        match self.spool {
            Some((spool, replayer)) => {
                // The writer counts what it writes (spans_spooled) and loses (spans_lost).
                let kept = spool::keep(&spool, &left);
                OtlpStats::add(&stats.spans_lost, kept.lost);
                if spans > 0 {
                    log::warn!(
                        "Spooled {} OTLP spans not forwarded before shutdown ({} lost)",
                        kept.spooled,
                        kept.lost
                    );
                }
                // The replayer stops at its next delivery (the queue is abandoned) or wait.
                spool.stop();
                while Instant::now() < grace && !replayer.is_finished() {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            None if spans > 0 => {
                OtlpStats::add(&stats.spans_refused, spans);
                log::error!(
                    "{spans} OTLP spans were not forwarded before shutdown (configure --spool-dir to keep them)"
                );
            }
            None => {}
        }
    }
}

/// Starts [`FORWARDERS`] threads sending to `destination` from a buffer of `buffer_bytes`;
/// with `spool_dir` (directory, most bytes), also the replay of what an earlier run spooled.
/// Failed calls also count in `relay_stats`' backend errors.
pub fn start(
    buffer_bytes: usize,
    destination: Destination,
    spool_dir: Option<(&std::path::Path, u64)>,
    relay_stats: Arc<crate::stats::Stats>,
) -> std::io::Result<Running> {
    let receiver = Arc::new(Receiver {
        queue: Arc::new(Queue::new(buffer_bytes)),
        stats: Arc::new(OtlpStats::default()),
        max_body_bytes: body_limit(buffer_bytes),
        refuse_out_of_time: matches!(destination, Destination::Export(_)),
        keep_gzip: match &destination {
            Destination::Export(export) | Destination::Auto { export, .. } => export.takes_gzip(),
            Destination::Local(_) | Destination::Segments(_) => false,
        },
    });
    let forwarder = Arc::new(Forwarder {
        queue: receiver.queue.clone(),
        stats: receiver.stats.clone(),
        destination,
        logged: Mutex::new(Vec::new()),
        leftovers: Mutex::new(Vec::new()),
        relay_stats: Some(relay_stats),
    });
    if receiver.max_body_bytes < MAX_BODY_BYTES {
        log::info!(
            "OTLP request bodies are limited to {} bytes (413 above) to fit a small --buffer-memory",
            receiver.max_body_bytes
        );
    }
    let mut threads = Vec::new();
    for n in 0..FORWARDERS {
        let forwarder = forwarder.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("otlp-{n}"))
                .spawn(move || forwarder.run())?,
        );
    }
    let spool = match spool_dir {
        Some((dir, max_bytes)) => {
            // What it writes and loses counts in spans, in the OTLP counters.
            let spool = Arc::new(crate::spool::Spool::open(
                &dir.join(spool::SUBDIRECTORY),
                max_bytes,
                Arc::new(spool::SpoolCounts(receiver.stats.clone())),
            )?);
            let replayer = spool::spawn_replay(spool.clone(), forwarder.clone())?;
            Some((spool, replayer))
        }
        None => None,
    };
    Ok(Running {
        receiver,
        forwarder,
        threads,
        spool,
    })
}

/// The URL spans are sent to: `configured` (cfg `OTLP.Endpoint`), else `/v1/traces` under
/// the relay's X-Ray endpoint, so region, partition, FIPS and `Endpoint` carry over.
pub fn endpoint_url(configured: Option<&str>, xray: &crate::aws::EndpointUrl) -> String {
    match configured.filter(|c| !c.is_empty()) {
        Some(url) => url.to_owned(),
        None => xray.url_for(receive::TRACES_PATH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_shared_a_quarter_for_otlp_with_a_floor() {
        assert_eq!(share_buffer(64 << 20, false), (48 << 20, 16 << 20));
        assert_eq!(share_buffer(16 << 20, false), (8 << 20, 8 << 20));
        assert_eq!(share_buffer(32 << 20, false), (24 << 20, 8 << 20));
        // Under 16 MiB the floor would take more than half: halves, and smaller bodies.
        assert_eq!(share_buffer(3 << 20, false), (3 << 19, 3 << 19));
        assert_eq!(share_buffer(11 << 20, false), (11 << 19, 11 << 19));
        assert_eq!(body_limit(3 << 19), 3 << 18);
        assert_eq!(body_limit(8 << 20), MAX_BODY_BYTES);
        // Translation leaves an eighth for its uploads, from the pool.
        assert_eq!(share_buffer(16 << 20, true), (6 << 20, 8 << 20));
        assert_eq!(share_buffer(64 << 20, true), (40 << 20, 16 << 20));
        for mb in 3..100 {
            let (segments, otlp) = share_buffer(mb << 20, false);
            assert_eq!(segments + otlp, mb << 20);
            assert!(segments >= otlp && otlp >= 2 * body_limit(otlp), "{mb}");
            let (pool, same) = share_buffer(mb << 20, true);
            assert_eq!((pool + same + (mb << 17), same), (mb << 20, otlp));
            assert!(pool >= 1 << 20, "{mb}");
        }
    }

    #[test]
    fn the_endpoint_follows_x_ray_unless_configured() {
        let xray = crate::aws::EndpointUrl::parse("https://xray.us-east-1.amazonaws.com").unwrap();
        assert_eq!(
            endpoint_url(None, &xray),
            "https://xray.us-east-1.amazonaws.com/v1/traces"
        );
        let local = crate::aws::EndpointUrl::parse("http://127.0.0.1:4000").unwrap();
        assert_eq!(
            endpoint_url(Some(""), &local),
            "http://127.0.0.1:4000/v1/traces"
        );
        assert_eq!(
            endpoint_url(Some("https://otlp.example/v1/traces"), &xray),
            "https://otlp.example/v1/traces"
        );
    }
}
