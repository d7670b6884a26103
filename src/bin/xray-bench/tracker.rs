//! Per-segment times on one clock, shared by the sender and the sink (both in this process).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Send and acknowledgement times of every segment of one run, and the sink's counters.
pub struct Tracker {
    clock: Instant,
    /// Nanoseconds since `clock` + 1 (0: not yet).
    sent: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    /// Distinct segments acknowledged.
    pub delivered: AtomicU64,
    /// Segments acknowledged more than once.
    pub duplicates: AtomicU64,
    /// Documents whose id was not one we sent.
    pub foreign: AtomicU64,
    /// `PutTraceSegments` calls.
    pub requests: AtomicU64,
    /// `PutTelemetryRecords` calls.
    pub telemetry: AtomicU64,
    /// `PutTraceSegments` calls answered 503 during an outage.
    pub refused: AtomicU64,
    /// Bodies fully decoded and compared with what was sent.
    pub verified: AtomicU64,
    /// Bodies that were not valid or whose documents differed from what was sent.
    pub corrupt: AtomicU64,
}

impl Tracker {
    pub fn new(segments: u64) -> Tracker {
        let slots = || (0..segments).map(|_| AtomicU64::new(0)).collect();
        Tracker {
            clock: Instant::now(),
            sent: slots(),
            acked: slots(),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            telemetry: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64 + 1
    }

    pub fn mark_sent(&self, seq: u64) {
        self.sent[seq as usize].store(self.now_ns(), Ordering::Relaxed);
    }

    /// Records that `seq` was acknowledged at `now_ns`.
    pub fn mark_acked(&self, seq: u64, now_ns: u64) {
        let Some(slot) = self.acked.get(seq as usize) else {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if slot.swap(now_ns, Ordering::Relaxed) == 0 {
            self.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Latencies (send → acknowledgement) of the delivered segments, in microseconds, sorted.
    pub fn latencies_us(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .sent
            .iter()
            .zip(&self.acked)
            .filter_map(|(s, a)| {
                let (s, a) = (s.load(Ordering::Relaxed), a.load(Ordering::Relaxed));
                (s != 0 && a != 0).then(|| a.saturating_sub(s) / 1000)
            })
            .collect();
        out.sort_unstable();
        out
    }
}

/// The `p`-th percentile (0–100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[rank.min(sorted.len() - 1)])
}
