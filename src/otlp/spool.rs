//! With `--spool-dir`: OTLP data still undelivered at shutdown is kept in a spool of its own
//! (the `otlp` directory inside the spool directory, same file format as segments) and
//! delivered at the next start, oldest file first; a file is deleted only once everything in
//! it was delivered. Records are requests of at most [`RECORD_BYTES`], cut at span
//! boundaries, since spool records are small.

use super::forward::{Delivery, Forwarder};
use super::split::{self, Chunk, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS};
use super::{OtlpStats, protobuf, schema};
use crate::spool::{self, Spool, Unsent};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The OTLP spool's directory inside the spool directory.
pub const SUBDIRECTORY: &str = "otlp";

/// Spool records hold requests up to this size (the spool's records take 64 KB).
pub const RECORD_BYTES: usize = 60 * 1024;

/// What [`keep`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Spans written to the spool.
    pub spooled: u64,
    /// Spans that could not be (a span over a record's size, a full or failing spool).
    pub lost: u64,
}

/// The OTLP spool's [`spool::Counts`]: a record weighs its spans, written ones count in
/// `spans_spooled`, lost ones in `spans_lost`, so the segment counters see none of them.
pub struct SpoolCounts(pub Arc<OtlpStats>);

impl spool::Counts for SpoolCounts {
    fn weight(&self, record: &[u8]) -> u64 {
        split::count_spans(record)
    }

    fn lost(&self, _: Unsent, spans: u64) {
        OtlpStats::add(&self.0.spans_lost, spans);
    }

    fn spooled(&self, spans: u64) {
        OtlpStats::add(&self.0.spans_spooled, spans);
    }

    fn weighs_documents(&self) -> bool {
        true
    }
}

/// Writes `chunks` to `spool`, cut into records. The spool's writer counts what it writes
/// and loses later through its [`SpoolCounts`].
pub fn keep(spool: &Spool, chunks: &[Chunk]) -> Kept {
    let mut kept = Kept::default();
    for chunk in chunks {
        let pieces = split::split(&chunk.bytes, RECORD_BYTES, MAX_REQUEST_SPANS, None);
        kept.lost += pieces.refused;
        for piece in &pieces.chunks {
            // A record the queue cannot take is counted by the caller, in spans.
            let lost = spool.enqueue([piece.bytes.as_slice()], true);
            if lost == 0 {
                kept.spooled += u64::from(piece.spans);
            } else {
                kept.lost += u64::from(piece.spans);
            }
        }
    }
    kept
}

/// Delivers the spool's files through `forwarder` on a thread of its own, until the spool is
/// stopped or a delivery is abandoned (then the file stays for the next start).
pub fn spawn_replay(
    spool: Arc<Spool>,
    forwarder: Arc<Forwarder>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("otlp-replay".into())
        .spawn(move || replay(&spool, &forwarder))
}

fn replay(spool: &Spool, forwarder: &Forwarder) {
    while let Some(file) = spool.next_file_to_replay() {
        let mut chunks = Vec::new();
        let read = spool::read_file(&file.path, |record| {
            // A record is a request the relay checked before it was written; a damaged one
            // that still passes the record checksum is left out rather than sent.
            // Split again for the chunks' times (a record is one chunk's worth).
            if protobuf::check(record, &schema::REQUEST).is_ok() {
                chunks.extend(
                    split::split(record, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None).chunks,
                );
            }
        });
        if let Err(error) = read {
            log::error!(
                "Cannot read OTLP spool file {}: {error}; removing it",
                file.path.display()
            );
            spool.finished_replaying(file);
            continue;
        }
        let spans: u64 = chunks.iter().map(|c| u64::from(c.spans)).sum();
        log::info!(
            "Replaying {spans} spooled OTLP spans from {}",
            file.path.display()
        );
        for group in groups(&chunks) {
            if forwarder.deliver(group) == Delivery::Abandoned {
                log::info!(
                    "Stopped replaying {}; it stays for the next start",
                    file.path.display()
                );
                spool.release(file);
                return;
            }
        }
        OtlpStats::add(&forwarder.stats.spans_replayed, spans);
        spool.finished_replaying(file);
    }
}

/// `chunks` in runs that fit one request.
fn groups(chunks: &[Chunk]) -> Vec<&[Chunk]> {
    let mut groups = Vec::new();
    let (mut start, mut bytes, mut spans) = (0, 0, 0);
    let (mut first, mut last) = (u64::MAX, 0);
    for (i, chunk) in chunks.iter().enumerate() {
        if i > start
            && (bytes + chunk.bytes.len() > MAX_REQUEST_BYTES
                || spans + chunk.spans as usize > MAX_REQUEST_SPANS
                || !split::within_window(first.min(chunk.first), last.max(chunk.last)))
        {
            groups.push(&chunks[start..i]);
            (start, bytes, spans) = (i, 0, 0);
            (first, last) = (u64::MAX, 0);
        }
        bytes += chunk.bytes.len();
        spans += chunk.spans as usize;
        (first, last) = (first.min(chunk.first), last.max(chunk.last));
    }
    if start < chunks.len() {
        groups.push(&chunks[start..]);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::forward::Destination;
    use crate::otlp::json;
    use crate::otlp::queue::Queue;
    use crate::sink::LocalSink;
    use std::sync::Mutex;

    fn request(spans: usize, pad: usize) -> Vec<u8> {
        let spans: Vec<String> = (0..spans)
            .map(|i| {
                format!(
                    r#"{{"spanId":"{i:016x}","name":"s{i}","attributes":[{{"key":"p","value":{{"stringValue":"{}"}}}}]}}"#,
                    "p".repeat(pad)
                )
            })
            .collect();
        let text = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        );
        json::to_protobuf(text.as_bytes(), &schema::REQUEST).unwrap()
    }

    #[test]
    fn kept_spans_are_replayed_through_the_forwarder_and_the_file_deleted() {
        let dir = crate::test_support::TempDir::new("otlp-spool");
        let spool = Arc::new(
            Spool::open(
                &dir.0.join(SUBDIRECTORY),
                10 << 20,
                Arc::new(crate::stats::Stats::default()),
            )
            .unwrap(),
        );
        // 100 spans of ~2 KB: more than one record.
        let chunk = Chunk {
            bytes: request(100, 2000),
            spans: 100,
            gzipped: None,
            first: 0,
            last: 0,
        };
        let kept = keep(&spool, &[chunk]);
        spool.flush();
        assert_eq!(
            kept,
            Kept {
                spooled: 100,
                lost: 0
            }
        );
        let sink_path = dir.0.join("sink.jsonl");
        let sink = Arc::new(LocalSink::open(sink_path.to_str().unwrap()).unwrap());
        let forwarder = Arc::new(Forwarder {
            queue: Arc::new(Queue::new(1 << 20)),
            stats: Arc::new(OtlpStats::default()),
            destination: Destination::Local(sink),
            logged: Mutex::new(Vec::new()),
            leftovers: Mutex::new(Vec::new()),
            relay_stats: None,
        });
        let replayer = spawn_replay(spool.clone(), forwarder.clone()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while forwarder.stats.snapshot().spans_replayed < 100 {
            assert!(std::time::Instant::now() < deadline, "not replayed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        spool.stop();
        replayer.join().unwrap();
        assert!(spool.files().is_empty());
        let text = std::fs::read_to_string(&sink_path).unwrap();
        let names: usize = text
            .lines()
            .map(|l| l.matches("\"name\":\"s").count())
            .sum();
        assert_eq!(names, 100);
        assert!(text.lines().count() > 1);
    }

    #[test]
    fn spans_in_files_deleted_for_room_count_as_lost_in_the_otlp_counters() {
        let dir = crate::test_support::TempDir::new("otlp-spool-full");
        let otlp = Arc::new(OtlpStats::default());
        let spool = Spool::open(
            &dir.0.join(SUBDIRECTORY),
            256 * 1024,
            Arc::new(SpoolCounts(otlp.clone())),
        )
        .unwrap();
        // 10 × 20 spans of ~2 KB: about 420 KB into a spool of 256 KB.
        for _ in 0..10 {
            let chunk = Chunk {
                bytes: request(20, 2000),
                spans: 20,
                gzipped: None,
                first: 0,
                last: 0,
            };
            assert_eq!(keep(&spool, &[chunk]).spooled, 20);
            spool.flush();
        }
        spool.stop();
        let mut on_disk = 0;
        for file in spool.files() {
            spool::read_file(&file, |record| on_disk += split::count_spans(record)).unwrap();
        }
        let stats = otlp.snapshot();
        assert_eq!(stats.spans_spooled, 200);
        assert!(stats.spans_lost > 0 && on_disk > 0, "{stats:?}");
        assert_eq!(stats.spans_lost, 200 - on_disk, "{stats:?}");
    }

    #[test]
    fn groups_fit_one_request_each() {
        let chunk = |size: usize, spans: u32, hour: u64| Chunk {
            bytes: vec![0; size],
            spans,
            gzipped: None,
            first: hour * 3_600_000_000_000,
            last: hour * 3_600_000_000_000,
        };
        let chunks = [
            chunk(3_000_000, 1, 0),
            chunk(3_000_000, 1, 0),
            chunk(10, 9_999, 0),
            chunk(10, 1, 0),
            chunk(10, 1, 25),
        ];
        let sizes: Vec<usize> = groups(&chunks).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [1, 2, 1, 1], "the last is 25 h after the others");
        assert!(groups(&[]).is_empty());
    }
}
