//! `OTLP.Destination: segments`: the spans of each chunk translated into X-Ray documents
//! ([`super::translate`]) and put into the relay's segment pool beside the UDP segments, so
//! batching, retries, `UnprocessedTraceSegments`, the spool, telemetry, `/metrics` and the
//! local sink apply to them unchanged.
//!
//! Backpressure stays with the OTLP client: while the pool is fuller than [`MAX_FILL`], the
//! forwarders wait, the OTLP buffer fills and new requests are answered 503; the pool's last
//! quarter stays for UDP segments, whose senders cannot be asked to wait.

use super::OtlpStats;
use super::queue::Queue;
use super::split::Chunk;
use super::translate::{self, Indexing, Translated};
use crate::pool::Pool;
use crate::spool::{Spool, Unsent, count_lost, spool_or_count_lost};
use crate::stats::Stats;
use std::sync::Arc;
use std::time::Duration;

/// OTLP documents wait while the pool is fuller than this.
pub const MAX_FILL: f64 = 0.75;

/// How long a forwarder waits before it looks at the pool again.
const POLL: Duration = Duration::from_millis(20);

/// The translation buffer's first size: most documents fit, so it rarely grows.
const DOCUMENT_BUFFER_BYTES: usize = 8192;

/// Where translated documents go.
pub struct ToPool {
    /// The relay's segment pool.
    pub pool: Arc<Pool>,
    /// The relay's segment counters (spillover, spooled).
    pub stats: Arc<Stats>,
    /// The spool, for documents the pool pushes out at shutdown.
    pub spool: Option<Arc<Spool>>,
    /// Which attributes become annotations.
    pub indexing: Indexing,
}

impl ToPool {
    /// A destination putting documents into `pool`.
    pub fn new(
        pool: Arc<Pool>,
        stats: Arc<Stats>,
        spool: Option<Arc<Spool>>,
        indexing: Indexing,
    ) -> ToPool {
        ToPool {
            pool,
            stats,
            spool,
            indexing,
        }
    }

    /// Translates `chunks` and puts their documents into the pool, waiting for room (see the
    /// module's documentation) unless `queue` is abandoned.
    pub fn deliver(&self, chunks: &[Chunk], otlp: &OtlpStats, queue: &Queue) {
        // One document at a time, written into one buffer and copied into the pool: no
        // allocation per span, and no chunk's worth of documents held and freed at once.
        let mut buffer = Vec::with_capacity(DOCUMENT_BUFFER_BYTES);
        for chunk in chunks {
            let mut translated = Translated::default();
            let (mut documents, mut stored) = (0u64, 0u64);
            translate::request_each(
                &chunk.bytes,
                &self.indexing,
                &mut translated,
                &mut buffer,
                |document| {
                    documents += 1;
                    while self.pool.fill().ratio() >= MAX_FILL && queue.backoff_sleep(POLL) {}
                    if self.push(document) {
                        stored += 1;
                    }
                },
            );
            OtlpStats::add(&otlp.spans_forwarded, stored);
            let lost = documents - stored + translated.refused;
            OtlpStats::add(&otlp.spans_refused, lost);
            if let Some(why) = &translated.first_refusal {
                log::warn!(
                    "OTLP: {} spans could not be translated to X-Ray segments; the first: {why}",
                    translated.refused
                );
            }
            if translated.cut > 0 {
                OtlpStats::add(&otlp.metadata_cut, translated.cut);
                log::debug!(
                    "OTLP: {} metadata entries cut to keep segments under {} bytes",
                    translated.cut,
                    translate::MAX_DOCUMENT_BYTES
                );
            }
        }
    }

    /// Pushes one document, as the UDP receiver does: with a spool, one that does not fit
    /// goes there; without, the oldest make room and are counted lost. `false` when it is in
    /// neither the pool nor the spool.
    fn push(&self, document: &[u8]) -> bool {
        if let Some(spool) = &self.spool {
            return self.pool.push_if_room(document)
                || spool_or_count_lost(Some(spool), &self.stats, Unsent::Evicted, [document]) == 0;
        }
        let pushed = self.pool.push(document);
        // A document that did not fit is counted by the caller, as a refused span.
        count_lost(
            &self.stats,
            Unsent::Evicted,
            u64::from(pushed.evicted_waiting),
        );
        pushed.stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::protobuf::{I64, put_bytes, put_tag};
    use crate::pool::{Batch, MIN_POOL_BYTES};
    use std::sync::atomic::Ordering;

    fn request(spans: u8) -> Vec<u8> {
        let mut scope = Vec::new();
        for n in 1..=spans {
            let mut span = Vec::new();
            put_bytes(&mut span, 1, &[7; 16]);
            put_bytes(&mut span, 2, &[n; 8]);
            put_bytes(&mut span, 5, b"work");
            put_tag(&mut span, 7, I64);
            span.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
            put_bytes(&mut scope, 2, &span);
        }
        if spans > 0 {
            // One span without an id: refused, counted.
            put_bytes(&mut scope, 2, &[0x0a, 0x00]);
        }
        let mut resource_spans = Vec::new();
        put_bytes(&mut resource_spans, 2, &scope);
        let mut request = Vec::new();
        put_bytes(&mut request, 1, &resource_spans);
        request
    }

    #[test]
    fn translated_spans_land_in_the_pool_and_refusals_are_counted() {
        let pool = Arc::new(Pool::with_memory(MIN_POOL_BYTES));
        let to_pool = ToPool::new(
            pool.clone(),
            Arc::new(Stats::default()),
            None,
            Indexing::default(),
        );
        let otlp = OtlpStats::default();
        let queue = Queue::new(1 << 20);
        let chunk = Chunk {
            bytes: request(3),
            spans: 4,
            gzipped: None,
            first: 0,
            last: 0,
        };
        to_pool.deliver(&[chunk], &otlp, &queue);
        assert_eq!(otlp.spans_forwarded.load(Ordering::Relaxed), 3);
        assert_eq!(otlp.spans_refused.load(Ordering::Relaxed), 1);
        pool.close();
        let mut batch = Batch::new();
        assert!(pool.take_batch(&mut batch));
        let ids: Vec<String> = batch
            .documents()
            .map(|d| {
                let doc: serde_json::Value = serde_json::from_slice(d).unwrap();
                doc["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            ids,
            ["0101010101010101", "0202020202020202", "0303030303030303"]
        );
    }

    #[test]
    fn documents_handed_one_by_one_are_those_collected() {
        let bytes = request(3);
        let mut collected = Translated::default();
        translate::request(&bytes, &Indexing::default(), &mut collected);
        let (mut streamed, mut handed) = (Translated::default(), Vec::new());
        // A buffer holding an earlier, longer document: each one is written over it.
        let mut buffer = vec![b'x'; 10_000];
        translate::request_each(
            &bytes,
            &Indexing::default(),
            &mut streamed,
            &mut buffer,
            |document| handed.push(document.to_vec()),
        );
        assert_eq!(collected.documents.len(), 3);
        assert_eq!(handed, collected.documents);
        assert!(streamed.documents.is_empty());
        assert_eq!((streamed.refused, collected.refused), (1, 1));
        assert_eq!(streamed.first_refusal, collected.first_refusal);
    }

    #[test]
    fn a_full_pool_makes_the_forwarder_wait_until_abandoned() {
        let pool = Arc::new(Pool::with_memory(MIN_POOL_BYTES));
        let filler = vec![b'x'; 60_000];
        while pool.fill().ratio() < MAX_FILL {
            pool.push(&filler);
        }
        let to_pool = ToPool::new(
            pool.clone(),
            Arc::new(Stats::default()),
            None,
            Indexing::default(),
        );
        let otlp = OtlpStats::default();
        let queue = Arc::new(Queue::new(1 << 20));
        let abandon = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                queue.abandon();
            })
        };
        let started = std::time::Instant::now();
        let chunk = Chunk {
            bytes: request(1),
            spans: 2,
            gzipped: None,
            first: 0,
            last: 0,
        };
        to_pool.deliver(&[chunk], &otlp, &queue);
        assert!(started.elapsed() >= Duration::from_millis(90));
        // Abandoned (shutdown): the document goes into the pool all the same.
        assert_eq!(otlp.spans_forwarded.load(Ordering::Relaxed), 1);
        let _ = abandon.join();
    }
}
