//! A local X-Ray endpoint: plain HTTP/1.1 with keep-alive, answering `PutTraceSegments` with
//! `{"UnprocessedTraceSegments":[]}` (after an optional delay, to stand in for a round trip)
//! and counting the documents of every body.
//!
//! Documents are counted by scanning each body for the escaped id every bench segment starts
//! with (`"{\"id\":\"<16 hex>`); one body in `verify_every` is fully decoded with serde_json and
//! every document compared byte for byte with what the sender sent.

use crate::sender::{Segments, parse_id};
use crate::spans::span_seqs;
use crate::tracker::Tracker;
use serde::Deserialize;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use xray_relay::otlp::gzip::gunzip;

/// How the sink behaves.
#[derive(Clone)]
pub struct SinkOptions {
    /// Added before each answer (a stand-in for the round trip to X-Ray).
    pub delay: Duration,
    /// Decode and compare one body in this many (the first always).
    pub verify_every: u64,
    /// Size of the documents, to rebuild the expected ones.
    pub segment_size: usize,
    /// While `false`, `PutTraceSegments` gets a 503 (an X-Ray outage) and counts nothing.
    pub up: Arc<AtomicBool>,
    /// The documents are translated OTLP spans (ids anywhere in the document, no byte
    /// comparison), and `POST /v1/traces` is served: its spans are counted by id.
    pub otlp: bool,
    /// An account without Transaction Search, whose policy lacks
    /// `xray:GetTraceSegmentDestination`: `POST /v1/traces` gets X-Ray's 400 and counts
    /// nothing, and the destination call gets 403 (`OTLP.Destination: auto` must switch).
    pub no_transaction_search: bool,
}

/// X-Ray's answer to OTLP from an account without Transaction Search: a `google.rpc.Status`
/// (code 3) with its message.
const NEEDS_TRANSACTION_SEARCH: &[u8] =
    b"\x08\x03\x12\x4eThe OTLP API is supported with CloudWatch Logs as a Trace Segment Destination.";

/// A running sink; stops accepting when dropped.
pub struct Sink {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Sink {
    pub fn start(tracker: Arc<Tracker>, options: SinkOptions) -> io::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let bodies = Arc::new(AtomicU64::new(0));
        std::thread::Builder::new()
            .name("sink-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (tracker, options, bodies) =
                        (tracker.clone(), options.clone(), bodies.clone());
                    let _ = std::thread::Builder::new()
                        .name("sink-conn".into())
                        .spawn(move || {
                            let _ = serve(stream, &tracker, &options, &bodies);
                        });
                }
            })?;
        Ok(Sink { address, stop })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.address);
    }
}

#[derive(Deserialize)]
struct PutTraceSegments {
    #[serde(rename = "TraceSegmentDocuments")]
    documents: Vec<String>,
}

const MARKER: &[u8] = b"\"{\\\"id\\\":\\\"";

/// The ids of the documents in a `PutTraceSegments` body, found without decoding it.
fn scan_ids(body: &[u8], ids: &mut Vec<u64>) -> usize {
    let mut unreadable = 0;
    let mut at = 0;
    while let Some(found) = body[at..].iter().position(|&b| b == b'"') {
        let start = at + found;
        at = start + 1;
        if !body[start..].starts_with(MARKER) {
            continue;
        }
        let hex_start = start + MARKER.len();
        match body.get(hex_start..hex_start + 16).and_then(parse_id) {
            Some(id) => ids.push(id),
            None => unreadable += 1,
        }
        at = hex_start;
    }
    unreadable
}

const DOCUMENT_ID: &[u8] = b"\\\"id\\\":\\\"";

/// The seqs of the translated spans in a `PutTraceSegments` body: every document's `id` (its
/// span id, `seq + 1` in hex), wherever it is in the document (`parent_id` is not an `id`).
fn scan_translated(body: &[u8], seqs: &mut Vec<u64>) -> usize {
    let mut unreadable = 0;
    let mut at = 1;
    while let Some(found) = body[at..]
        .windows(DOCUMENT_ID.len())
        .position(|w| w == DOCUMENT_ID)
    {
        let start = at + found;
        at = start + DOCUMENT_ID.len();
        if !matches!(body[start - 1], b'{' | b',') {
            continue;
        }
        match body.get(at..at + 16).and_then(parse_id) {
            Some(id) if id > 0 => seqs.push(id - 1),
            _ => unreadable += 1,
        }
    }
    unreadable
}

/// Decodes `body` and compares each document with what was sent; returns `false` on any
/// difference or if the count differs from the scan.
fn verify(body: &[u8], scanned: usize, segments: &mut Segments) -> bool {
    let Ok(put) = serde_json::from_slice::<PutTraceSegments>(body) else {
        return false;
    };
    put.documents.len() == scanned
        && put.documents.iter().all(|doc| {
            let id = doc.as_bytes().get(7..23).and_then(parse_id);
            id.is_some_and(|id| segments.document(id) == doc.as_bytes())
        })
}

fn serve(
    stream: TcpStream,
    tracker: &Tracker,
    options: &SinkOptions,
    bodies: &AtomicU64,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream.try_clone()?);
    let mut writer = stream;
    let mut segments = Segments::new(options.segment_size);
    let mut head = Vec::new();
    let mut body = Vec::new();
    let mut ids = Vec::new();
    loop {
        head.clear();
        loop {
            let line_start = head.len();
            if reader.read_until(b'\n', &mut head)? == 0 {
                return Ok(());
            }
            if &head[line_start..] == b"\r\n" {
                break;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if !matches!(request.parse(&head), Ok(httparse::Status::Complete(_))) {
            return Ok(());
        }
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let gzipped = header("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let path = request.path.unwrap_or("").to_string();
        body.resize(length, 0);
        reader.read_exact(&mut body)?;

        let (status, reply): (u16, &[u8]) = match path.as_str() {
            "/TraceSegments" if !options.up.load(Ordering::Relaxed) => {
                tracker.refused.fetch_add(1, Ordering::Relaxed);
                (
                    503,
                    b"{\"__type\":\"ServiceUnavailableException\",\"message\":\"outage\"}",
                )
            }
            "/TraceSegments" if options.otlp => {
                ids.clear();
                let unreadable = scan_translated(&body, &mut ids);
                tracker
                    .corrupt
                    .fetch_add(unreadable as u64, Ordering::Relaxed);
                tracker.requests.fetch_add(1, Ordering::Relaxed);
                (200, b"{\"UnprocessedTraceSegments\":[]}")
            }
            "/v1/traces" if options.no_transaction_search => (400, NEEDS_TRANSACTION_SEARCH),
            "/GetTraceSegmentDestination" if options.no_transaction_search => (
                403,
                b"{\"__type\":\"AccessDeniedException\",\"message\":\"not authorized to perform: xray:GetTraceSegmentDestination\"}",
            ),
            "/v1/traces" if options.otlp => {
                ids.clear();
                let plain = if gzipped {
                    gunzip(&body, 64 << 20).ok()
                } else {
                    Some(std::mem::take(&mut body))
                };
                if plain.is_none_or(|plain| span_seqs(&plain, &mut ids).is_none()) {
                    tracker.corrupt.fetch_add(1, Ordering::Relaxed);
                }
                tracker.requests.fetch_add(1, Ordering::Relaxed);
                (200, b"")
            }
            "/TraceSegments" => {
                ids.clear();
                let unreadable = scan_ids(&body, &mut ids);
                tracker
                    .corrupt
                    .fetch_add(unreadable as u64, Ordering::Relaxed);
                let n = bodies.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(options.verify_every.max(1)) {
                    tracker.verified.fetch_add(1, Ordering::Relaxed);
                    if !verify(&body, ids.len(), &mut segments) {
                        tracker.corrupt.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tracker.requests.fetch_add(1, Ordering::Relaxed);
                (200, b"{\"UnprocessedTraceSegments\":[]}")
            }
            "/TelemetryRecords" => {
                tracker.telemetry.fetch_add(1, Ordering::Relaxed);
                (200, b"{}")
            }
            _ => (404, b"{\"message\":\"not found\"}"),
        };
        if !options.delay.is_zero() {
            std::thread::sleep(options.delay);
        }
        let now = tracker.now_ns();
        for &id in &ids {
            tracker.mark_acked(id, now);
        }
        ids.clear();
        let response = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
            match status {
                200 => "OK",
                400 => "Bad Request",
                403 => "Forbidden",
                404 => "Not Found",
                _ => "Service Unavailable",
            },
            if path == "/v1/traces" {
                "application/x-protobuf"
            } else {
                "application/x-amz-json-1.1"
            },
            reply.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        writer.write_all(response.as_bytes())?;
        writer.write_all(reply)?;
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanning_finds_every_id_and_verification_compares_documents() {
        let mut segments = Segments::new(1024);
        let docs: Vec<String> = [3u64, 70, 1 << 40]
            .iter()
            .map(|&id| String::from_utf8(segments.document(id)).unwrap())
            .collect();
        let body =
            serde_json::to_vec(&serde_json::json!({ "TraceSegmentDocuments": docs })).unwrap();
        let mut ids = Vec::new();
        assert_eq!(scan_ids(&body, &mut ids), 0);
        assert_eq!(ids, [3, 70, 1 << 40]);
        assert!(verify(&body, 3, &mut segments));
        let tampered = String::from_utf8(body)
            .unwrap()
            .replace("xray-bench", "xray-bEnch");
        assert!(!verify(tampered.as_bytes(), 3, &mut segments));
    }
}

#[cfg(test)]
mod translated_tests {
    use super::*;
    use xray_relay::otlp::translate::{Indexing, Translated, request};

    #[test]
    fn the_ids_of_translated_spans_are_found_and_parent_ids_are_not() {
        let mut requests = crate::spans::Requests::new(8, 1024);
        let mut out = Translated::default();
        request(requests.request(40), &Indexing::default(), &mut out);
        assert_eq!(out.documents.len(), 8);
        let docs: Vec<String> = out
            .documents
            .iter()
            .map(|d| String::from_utf8(d.clone()).unwrap())
            .collect();
        let body =
            serde_json::to_vec(&serde_json::json!({ "TraceSegmentDocuments": docs })).unwrap();
        let mut seqs = Vec::new();
        assert_eq!(scan_translated(&body, &mut seqs), 0);
        seqs.sort_unstable();
        assert_eq!(seqs, (40..48).collect::<Vec<_>>());
    }
}
