//! Forwarding: threads that take chunks from the OTLP buffer, merge them up to X-Ray's
//! limits, and send them to X-Ray's OTLP endpoint (gzip, signed over the exact bytes), or
//! write them to the local sink as OTLP JSON lines. Failures are retried like segment
//! uploads ([`crate::retry`]); a refusal X-Ray explains (400) is logged once per message.

use super::protobuf::{self, Value};
use super::queue::{Queue, Reserved};
use super::split::{Chunk, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS};
use super::{OtlpStats, auto, gzip, schema};
use crate::aws::{BackendError, XRayClient};
use crate::retry::{self, Backoff, Verdict};
use crate::sink::LocalSink;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `Retry-After` longer than this is cut to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// At most this many distinct refusal messages are remembered (and so logged once each).
const REMEMBERED_MESSAGES: usize = 64;

/// What X-Ray made of a request it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    /// Spans it refused (`partial_success.rejected_spans`).
    pub rejected_spans: u64,
    /// Why (`partial_success.error_message`).
    pub message: String,
}

/// A failed export, with the wait X-Ray asked for.
#[derive(Debug)]
pub struct ExportError {
    /// The failure, sorted like segment uploads' failures.
    pub error: BackendError,
    /// `Retry-After`, when X-Ray gave one.
    pub retry_after: Option<Duration>,
}

/// Something that takes an `ExportTraceServiceRequest` in protobuf.
pub trait Export: Send + Sync {
    /// Sends `request`, or `gzipped` (its gzip compression) when given; `Ok` only when it was
    /// accepted (maybe partly).
    fn export(&self, request: &[u8], gzipped: Option<&[u8]>) -> Result<Exported, ExportError>;

    /// Whether requests should go out gzipped: the forwarder then compresses them, or hands
    /// over a client's gzip body, and only then is that body worth keeping.
    fn takes_gzip(&self) -> bool {
        false
    }
}

/// X-Ray's OTLP endpoint through the relay's signed client.
pub struct XRayOtlp {
    /// The client (credentials, region, proxy, TLS settings).
    pub client: Arc<XRayClient>,
    /// The full URL, `…/v1/traces`.
    pub url: String,
    /// Compress request bodies (`OTLP.Compression`).
    pub gzip: bool,
}

impl Export for XRayOtlp {
    fn takes_gzip(&self) -> bool {
        self.gzip
    }

    fn export(&self, request: &[u8], gzipped: Option<&[u8]>) -> Result<Exported, ExportError> {
        let (body, mut headers) = match gzipped {
            Some(gzipped) => (gzipped, vec![("Content-Encoding", "gzip")]),
            None => (request, Vec::new()),
        };
        headers.push(("Content-Type", "application/x-protobuf"));
        let failed = |error| ExportError {
            error,
            retry_after: None,
        };
        let response = self
            .client
            .post_signed(&self.url, &headers, body)
            .map_err(failed)?;
        if (200..300).contains(&response.status) {
            return Ok(partial_success(&response.body));
        }
        Err(ExportError {
            error: error_of(response.status, &response.body),
            retry_after: response.retry_after.map(Duration::from_secs),
        })
    }
}

/// Reads an `ExportTraceServiceResponse`'s partial success (nothing when it is unreadable).
pub fn partial_success(body: &[u8]) -> Exported {
    let mut exported = Exported::default();
    for entry in protobuf::fields(body, "ExportTraceServiceResponse").flatten() {
        if let (1, Value::Bytes(partial)) = (entry.number, entry.value) {
            for field in protobuf::fields(partial, "ExportTracePartialSuccess").flatten() {
                match (field.number, field.value) {
                    (1, Value::Varint(n)) => exported.rejected_spans = n,
                    (2, Value::Bytes(text)) => {
                        exported.message = String::from_utf8_lossy(text).into_owned()
                    }
                    _ => {}
                }
            }
        }
    }
    exported
}

/// The error for a non-2xx answer: its `google.rpc.Status` message verbatim when the body is
/// one, else whatever the body says.
pub fn error_of(status: u16, body: &[u8]) -> BackendError {
    let mut message = None;
    if protobuf::check(body, &schema::RPC_STATUS).is_ok() {
        for entry in protobuf::fields(body, "Status").flatten() {
            if let (2, Value::Bytes(text)) = (entry.number, entry.value) {
                message = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    match message {
        Some(message) if !message.is_empty() => BackendError::Http {
            status,
            error_type: None,
            message,
            request_id: String::new(),
            undecodable: None,
        },
        _ => BackendError::from_response(status, None, None, body),
    }
}

/// Where chunks go.
#[derive(Clone)]
pub enum Destination {
    /// X-Ray (or anything else that takes OTLP).
    Export(Arc<dyn Export>),
    /// The local sink, one OTLP JSON `ExportTraceServiceRequest` per line.
    Local(Arc<LocalSink>),
    /// Translated to X-Ray documents in the segment pool (`OTLP.Destination: segments`).
    Segments(Arc<super::segments::ToPool>),
    /// `OTLP.Destination: auto`: `export` until the account turns out to need segments (see
    /// [`super::auto`]), then `segments`.
    Auto {
        /// X-Ray's OTLP endpoint.
        export: Arc<dyn Export>,
        /// The segment pool.
        segments: Arc<super::segments::ToPool>,
    },
}

/// Joins `chunks` (taken together, so one request's worth) into one, freeing each as it
/// is copied: the merged request takes the room the chunks had in the buffer, not twice
/// that. Repeated fields concatenate, so the chunks joined are one request.
pub fn merge(chunks: &mut Vec<Chunk>) {
    if chunks.len() < 2 {
        return;
    }
    let total: usize = chunks.iter().map(|c| c.bytes.len()).sum();
    let mut taken = std::mem::take(chunks).into_iter();
    let Some(mut merged) = taken.next() else {
        return;
    };
    merged.bytes.reserve_exact(total - merged.bytes.len());
    for next in taken {
        merged.bytes.extend_from_slice(&next.bytes);
        merged.spans += next.spans;
        merged.first = merged.first.min(next.first);
        merged.last = merged.last.max(next.last);
    }
    // A client's gzip body goes out only with its chunk alone (the queue takes it so).
    merged.gzipped = None;
    chunks.push(merged);
}

/// One forwarder's view of the OTLP path.
pub struct Forwarder {
    /// The OTLP buffer.
    pub queue: Arc<Queue>,
    /// The counters.
    pub stats: Arc<OtlpStats>,
    /// Where chunks go.
    pub destination: Destination,
    /// Refusal messages already logged.
    pub logged: Mutex<Vec<String>>,
    /// Chunks given up on at shutdown (to spool, or count as lost).
    pub leftovers: Mutex<Vec<Chunk>>,
    /// The relay's counters: failed calls count in its backend errors by class, which the
    /// telemetry record reports (`BackendConnectionErrors`) as for segment uploads.
    pub relay_stats: Option<Arc<crate::stats::Stats>>,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted, or refused for good (counted and logged).
    Done,
    /// Still failing when the queue was abandoned (shutdown): the chunks are not delivered.
    Abandoned,
}

impl Forwarder {
    /// Forwards until the queue is closed and empty.
    pub fn run(&self) {
        let mut chunks = Vec::new();
        while self
            .queue
            .take(MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, &mut chunks)
        {
            if let Destination::Export(_) | Destination::Auto { .. } = self.destination {
                merge(&mut chunks);
            }
            if self.deliver(&chunks) == Delivery::Abandoned {
                self.leftovers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(chunks.iter().cloned());
            }
            // Freed before their room is given back, so the room is never taken twice.
            let size: usize = chunks.iter().map(Chunk::size).sum();
            chunks.clear();
            self.queue.release_bytes(size);
        }
    }

    /// Delivers `chunks` (one request's worth), retrying transient failures until the queue
    /// is abandoned.
    pub fn deliver(&self, chunks: &[Chunk]) -> Delivery {
        let spans: u64 = chunks.iter().map(|c| u64::from(c.spans)).sum();
        let export = match &self.destination {
            Destination::Local(sink) => {
                self.write_locally(sink, chunks, spans);
                return Delivery::Done;
            }
            Destination::Segments(to_pool) => {
                to_pool.deliver(chunks, &self.stats, &self.queue);
                return Delivery::Done;
            }
            Destination::Export(export) | Destination::Auto { export, .. } => export,
        };
        if self.to_segments(chunks) {
            return Delivery::Done;
        }
        // Repeated fields concatenate: chunks joined are one request. One chunk is sent as is,
        // with the client's gzip body when it came with one.
        let joined;
        let request: &[u8] = match chunks {
            [one] => &one.bytes,
            _ => {
                joined = chunks
                    .iter()
                    .flat_map(|c| c.bytes.iter().copied())
                    .collect::<Vec<u8>>();
                &joined
            }
        };
        // Compressed here, once for every try.
        let compressed;
        let gzipped = match chunks {
            _ if !export.takes_gzip() => None,
            [one] if one.gzipped.is_some() => one.gzipped.as_deref(),
            _ => {
                compressed = self.compress(request);
                compressed.as_ref().map(|(copy, _room)| &copy[..])
            }
        };
        let mut backoff = Backoff::new(retry::seed());
        loop {
            let failure = match export.export(request, gzipped) {
                Ok(exported) => {
                    let rejected = exported.rejected_spans.min(spans);
                    OtlpStats::add(&self.stats.spans_forwarded, spans - rejected);
                    OtlpStats::add(&self.stats.spans_exported, spans - rejected);
                    if rejected > 0 {
                        OtlpStats::add(&self.stats.spans_refused, rejected);
                        self.log_once(
                            &exported.message,
                            &format!("X-Ray refused {rejected} of {spans} spans"),
                        );
                    }
                    return Delivery::Done;
                }
                Err(failure) => failure,
            };
            OtlpStats::add(&self.stats.forward_failures, 1);
            if let Some(relay_stats) = &self.relay_stats {
                relay_stats.backend_error(failure.error.class());
            }
            if retry::verdict(&failure.error) == Verdict::Drop {
                if let Destination::Auto { .. } = &self.destination
                    && auto::is_refusal(&failure.error)
                {
                    // The refused chunks go the new way too: nothing is lost by the switch.
                    auto::switch(
                        &self.stats,
                        &format!("X-Ray's OTLP endpoint refused them ({})", failure.error),
                    );
                    self.to_segments(chunks);
                    return Delivery::Done;
                }
                OtlpStats::add(&self.stats.spans_refused, spans);
                self.log_once(
                    &failure.error.to_string(),
                    &format!("X-Ray's OTLP endpoint refused {spans} spans"),
                );
                return Delivery::Done;
            }
            let delay = backoff
                .next_delay()
                .max(failure.retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
            log::warn!(
                "OTLP: sending {spans} spans failed ({}); retrying in {:.1} s",
                failure.error,
                delay.as_secs_f64()
            );
            if self.queue.is_abandoned() || !self.queue.backoff_sleep(delay) {
                log::warn!(
                    "OTLP: {spans} spans were not delivered before shutdown: {}",
                    failure.error
                );
                return Delivery::Abandoned;
            }
            if self.to_segments(chunks) {
                return Delivery::Done;
            }
            OtlpStats::add(&self.stats.spans_retried, spans);
        }
    }

    /// With `auto` once it chose segments, translates `chunks` into the pool; `false` (and
    /// nothing done) otherwise.
    fn to_segments(&self, chunks: &[Chunk]) -> bool {
        match &self.destination {
            Destination::Auto { segments, .. } if auto::to_segments(&self.stats) => {
                self.queue.translating();
                segments.deliver(chunks, &self.stats, &self.queue);
                true
            }
            _ => false,
        }
    }

    fn write_locally(&self, sink: &LocalSink, chunks: &[Chunk], spans: u64) {
        for chunk in chunks {
            let mut line = String::with_capacity(chunk.bytes.len() * 2);
            protobuf::write_json(&chunk.bytes, &schema::REQUEST, &mut line);
            line.push('\n');
            if let Err(error) = sink.write_line(line.as_bytes()) {
                log::error!("OTLP: cannot write spans to the local sink: {error}");
                OtlpStats::add(&self.stats.spans_refused, u64::from(chunk.spans));
                return;
            }
        }
        OtlpStats::add(&self.stats.spans_forwarded, spans);
    }

    /// `request` gzipped, with the room the OTLP buffer gave its copy as it grew (held as
    /// long as the copy); `None`, counted, when the buffer had none: the request then goes
    /// out as it is (X-Ray takes both).
    fn compress(&self, request: &[u8]) -> Option<(Vec<u8>, Reserved)> {
        let mut room = self.queue.copy_room();
        match gzip::gzip_within(request, |more| room.grow(more)) {
            Some(copy) => {
                room.shrink_to(copy.capacity());
                Some((copy, room))
            }
            None => {
                OtlpStats::add(&self.stats.sent_uncompressed, 1);
                None
            }
        }
    }

    /// Logs `what: message` at error level the first time `message` is seen (later at debug).
    fn log_once(&self, message: &str, what: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.iter().any(|seen| seen == message) {
            log::debug!("OTLP: {what}: {message}");
            return;
        }
        log::error!("OTLP: {what}: {message}");
        if logged.len() < REMEMBERED_MESSAGES {
            logged.push(message.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::protobuf::{put_bytes, put_tag, put_varint};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Scripted {
        answers: Mutex<VecDeque<Result<Exported, ExportError>>>,
        bodies: Mutex<Vec<Vec<u8>>>,
        gzipped: Mutex<Vec<Option<Vec<u8>>>>,
        takes_gzip: AtomicBool,
    }

    impl Export for Scripted {
        fn takes_gzip(&self) -> bool {
            self.takes_gzip.load(Ordering::Relaxed)
        }

        fn export(&self, request: &[u8], gzipped: Option<&[u8]>) -> Result<Exported, ExportError> {
            self.gzipped
                .lock()
                .unwrap()
                .push(gzipped.map(<[u8]>::to_vec));
            self.bodies.lock().unwrap().push(request.to_vec());
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(Exported::default()))
        }
    }

    fn http(status: u16, message: &str) -> Result<Exported, ExportError> {
        Err(ExportError {
            error: BackendError::Http {
                status,
                error_type: None,
                message: message.into(),
                request_id: String::new(),
                undecodable: None,
            },
            retry_after: None,
        })
    }

    fn forwarder(answers: Vec<Result<Exported, ExportError>>) -> (Forwarder, Arc<Scripted>) {
        let scripted = Arc::new(Scripted {
            answers: Mutex::new(answers.into()),
            bodies: Mutex::new(Vec::new()),
            gzipped: Mutex::new(Vec::new()),
            takes_gzip: false.into(),
        });
        let forwarder = Forwarder {
            queue: Arc::new(Queue::new(1 << 20)),
            stats: Arc::new(OtlpStats::default()),
            destination: Destination::Export(scripted.clone()),
            logged: Mutex::new(Vec::new()),
            leftovers: Mutex::new(Vec::new()),
            relay_stats: Some(Arc::new(crate::stats::Stats::default())),
        };
        (forwarder, scripted)
    }

    fn chunk(tag: u8, spans: u32) -> Chunk {
        let mut bytes = Vec::new();
        put_bytes(&mut bytes, 1, &[tag]);
        Chunk {
            bytes,
            spans,
            gzipped: None,
            first: 0,
            last: 0,
        }
    }

    #[test]
    fn throttling_and_5xx_are_retried_then_merged_chunks_delivered() {
        let (forwarder, scripted) = forwarder(vec![http(429, "slow down"), http(503, "busy")]);
        forwarder.deliver(&[chunk(1, 2), chunk(2, 3)]);
        let bodies = scripted.bodies.lock().unwrap();
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[2], [10, 1, 1, 10, 1, 2]);
        let stats = forwarder.stats.snapshot();
        assert_eq!((stats.spans_forwarded, stats.spans_retried), (5, 10));
        assert_eq!(stats.forward_failures, 2);
        let relay = forwarder.relay_stats.as_ref().unwrap().snapshot();
        assert_eq!(relay.backend_errors(crate::stats::ErrorClass::Http5xx), 1);
        assert_eq!(relay.backend_errors(crate::stats::ErrorClass::Http4xx), 1);
    }

    #[test]
    fn merged_chunks_are_one_request_of_their_spans_and_times() {
        let mut chunks = vec![
            Chunk {
                first: 5,
                last: 9,
                ..chunk(1, 2)
            },
            Chunk {
                first: 3,
                last: 7,
                ..chunk(2, 3)
            },
        ];
        merge(&mut chunks);
        assert_eq!(
            chunks,
            [Chunk {
                bytes: vec![10, 1, 1, 10, 1, 2],
                spans: 5,
                gzipped: None,
                first: 3,
                last: 9,
            }]
        );
        merge(&mut chunks);
        assert_eq!(chunks.len(), 1);
    }

    #[test]
    fn a_chunk_with_the_clients_gzip_body_hands_it_to_the_exporter_and_merged_ones_are_compressed()
    {
        let (forwarder, scripted) = forwarder(Vec::new());
        scripted.takes_gzip.store(true, Ordering::Relaxed);
        let gzipped = Chunk {
            gzipped: Some(gzip::gzip(&chunk(1, 2).bytes)),
            ..chunk(1, 2)
        };
        forwarder.deliver(std::slice::from_ref(&gzipped));
        forwarder.deliver(&[chunk(2, 1), chunk(3, 1)]);
        let handed = scripted.gzipped.lock().unwrap();
        assert_eq!(handed[0], gzipped.gzipped);
        let merged = handed[1].as_deref().expect("compressed by the forwarder");
        assert_eq!(gzip::gunzip(merged, 100).unwrap(), [10, 1, 2, 10, 1, 3]);
        // An exporter that does not take gzip gets neither.
        scripted.takes_gzip.store(false, Ordering::Relaxed);
        drop(handed);
        forwarder.deliver(std::slice::from_ref(&gzipped));
        assert_eq!(scripted.gzipped.lock().unwrap()[2], None);
    }

    #[test]
    fn the_compressed_copy_takes_room_in_the_buffer_or_the_request_goes_as_it_is() {
        let (forwarder, scripted) = forwarder(Vec::new());
        scripted.takes_gzip.store(true, Ordering::Relaxed);
        let queue = forwarder.queue.clone();
        let request = chunk(1, 2);
        forwarder.deliver(std::slice::from_ref(&request));
        // Too little room left for the compressed copy's first buffer.
        let capacity = queue.capacity();
        let _taken = queue.reserve(capacity - gzip::first_buffer_bytes(3) + 1);
        let used = queue.used_bytes();
        forwarder.deliver(std::slice::from_ref(&request));
        let handed = scripted.gzipped.lock().unwrap();
        let first = handed[0]
            .as_deref()
            .expect("compressed while there was room");
        assert_eq!(gzip::gunzip(first, 100).unwrap(), request.bytes);
        assert_eq!(handed[1], None, "no room: sent as it is");
        assert_eq!(scripted.bodies.lock().unwrap()[1], request.bytes);
        assert_eq!(forwarder.stats.snapshot().spans_forwarded, 4);
        assert_eq!(forwarder.stats.sent_uncompressed.load(Ordering::Relaxed), 1);
        assert_eq!(queue.used_bytes(), used, "the copy's room is given back");
    }

    #[test]
    fn a_400_is_not_retried_and_its_message_logged_once() {
        let search = "Transaction Search is not enabled for this account";
        let (forwarder, scripted) = forwarder(vec![http(400, search), http(400, search)]);
        forwarder.deliver(&[chunk(1, 4)]);
        forwarder.deliver(&[chunk(2, 1)]);
        assert_eq!(scripted.bodies.lock().unwrap().len(), 2);
        assert_eq!(forwarder.stats.snapshot().spans_refused, 5);
        assert_eq!(forwarder.logged.lock().unwrap().len(), 1);
        assert!(forwarder.logged.lock().unwrap()[0].contains(search));
    }

    /// A request of one span with id `[n; 8]`, which translates to one segment.
    fn span_chunk(n: u8) -> Chunk {
        let mut span = Vec::new();
        put_bytes(&mut span, 1, &[7; 16]);
        put_bytes(&mut span, 2, &[n; 8]);
        put_bytes(&mut span, 5, b"work");
        put_tag(&mut span, 7, protobuf::I64);
        span.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
        let mut scope = Vec::new();
        put_bytes(&mut scope, 2, &span);
        let mut resource_spans = Vec::new();
        put_bytes(&mut resource_spans, 2, &scope);
        let mut bytes = Vec::new();
        put_bytes(&mut bytes, 1, &resource_spans);
        Chunk {
            bytes,
            spans: 1,
            gzipped: None,
            first: 1_700_000_000_000_000_000,
            last: 1_700_000_000_000_000_000,
        }
    }

    /// A forwarder with `auto`, and the segment pool it switches to.
    fn auto_forwarder(
        answers: Vec<Result<Exported, ExportError>>,
    ) -> (Forwarder, Arc<Scripted>, Arc<crate::pool::Pool>) {
        let (mut forwarder, scripted) = forwarder(answers);
        let pool = Arc::new(crate::pool::Pool::with_memory(crate::pool::MIN_POOL_BYTES));
        forwarder.destination = Destination::Auto {
            export: scripted.clone(),
            segments: Arc::new(super::super::segments::ToPool::new(
                pool.clone(),
                Arc::new(crate::stats::Stats::default()),
                None,
                Default::default(),
            )),
        };
        (forwarder, scripted, pool)
    }

    fn pooled(pool: &crate::pool::Pool) -> usize {
        pool.close();
        let mut batch = crate::pool::Batch::new();
        let mut n = 0;
        while pool.take_batch(&mut batch) {
            n += batch.documents().count();
            pool.release(&batch);
        }
        n
    }

    #[test]
    fn auto_switches_on_the_transaction_search_400_and_resends_the_refused_spans() {
        let refusal =
            "The OTLP API is supported with CloudWatch Logs as a Trace Segment Destination.";
        let (forwarder, scripted, pool) = auto_forwarder(vec![http(400, refusal)]);
        assert_eq!(forwarder.deliver(&[span_chunk(1)]), Delivery::Done);
        assert_eq!(
            forwarder.deliver(&[span_chunk(2), span_chunk(3)]),
            Delivery::Done
        );
        // One call to the OTLP endpoint; the refused span and the later ones are segments.
        assert_eq!(scripted.bodies.lock().unwrap().len(), 1);
        assert_eq!(pooled(&pool), 3);
        let stats = forwarder.stats.snapshot();
        assert_eq!((stats.spans_forwarded, stats.spans_refused), (3, 0));
        assert!(auto::to_segments(&forwarder.stats));
        assert!(forwarder.logged.lock().unwrap().is_empty());
    }

    #[test]
    fn auto_keeps_other_400s_and_explicit_otlp_keeps_the_transaction_search_400() {
        let refusal =
            "The OTLP API is supported with CloudWatch Logs as a Trace Segment Destination.";
        let (forwarder, _, pool) = auto_forwarder(vec![http(400, "too old")]);
        forwarder.deliver(&[span_chunk(1)]);
        assert!(!auto::to_segments(&forwarder.stats));
        assert_eq!(forwarder.stats.snapshot().spans_refused, 1);
        assert_eq!(pooled(&pool), 0);
        let (explicit, scripted) = self::forwarder(vec![http(400, refusal), http(400, refusal)]);
        explicit.deliver(&[span_chunk(1)]);
        explicit.deliver(&[span_chunk(2)]);
        assert_eq!(scripted.bodies.lock().unwrap().len(), 2);
        assert_eq!(explicit.stats.snapshot().spans_refused, 2);
        assert!(!auto::to_segments(&explicit.stats));
    }

    #[test]
    fn partial_success_from_x_ray_is_counted() {
        let (forwarder, _) = forwarder(vec![Ok(Exported {
            rejected_spans: 2,
            message: "too old".into(),
        })]);
        forwarder.deliver(&[chunk(1, 5)]);
        let stats = forwarder.stats.snapshot();
        assert_eq!((stats.spans_forwarded, stats.spans_refused), (3, 2));
    }

    #[test]
    fn an_abandoned_queue_stops_retrying() {
        let (forwarder, scripted) = forwarder((0..100).map(|_| http(500, "down")).collect());
        forwarder.queue.abandon();
        assert_eq!(forwarder.deliver(&[chunk(1, 1)]), Delivery::Abandoned);
        assert_eq!(scripted.bodies.lock().unwrap().len(), 1);
        assert_eq!(forwarder.stats.snapshot().spans_refused, 0);
    }

    #[test]
    fn x_ray_answers_are_read() {
        let mut partial = Vec::new();
        put_tag(&mut partial, 1, protobuf::VARINT);
        put_varint(&mut partial, 3);
        put_bytes(&mut partial, 2, b"spans too old");
        let mut body = Vec::new();
        put_bytes(&mut body, 1, &partial);
        assert_eq!(
            partial_success(&body),
            Exported {
                rejected_spans: 3,
                message: "spans too old".into()
            }
        );
        let mut status = Vec::new();
        put_tag(&mut status, 1, protobuf::VARINT);
        put_varint(&mut status, 3);
        put_bytes(&mut status, 2, b"Transaction Search is not enabled");
        match error_of(400, &status) {
            BackendError::Http { message, .. } => {
                assert_eq!(message, "Transaction Search is not enabled")
            }
            other => panic!("{other:?}"),
        }
        match error_of(400, br#"{"message":"json error"}"#) {
            BackendError::Http { message, .. } => assert_eq!(message, "json error"),
            other => panic!("{other:?}"),
        }
    }
}
