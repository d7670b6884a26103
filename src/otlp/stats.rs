//! The OTLP path's counters, for `/metrics` and `/healthz`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// The statuses OTLP requests are answered with, each counted apart.
pub const STATUSES: [u16; 12] = [200, 400, 404, 405, 408, 411, 413, 415, 429, 431, 500, 503];

/// Counters of the OTLP receiver and forwarder.
#[derive(Debug, Default)]
pub struct OtlpStats {
    /// Requests answered, by status (index in [`STATUSES`]; the last slot for others).
    answered: [AtomicU64; STATUSES.len() + 1],
    /// Spans in requests that were decoded.
    pub spans_received: AtomicU64,
    /// Spans refused: over X-Ray's per-span size, or refused by X-Ray (partial success or a
    /// 400), or dropped for good after failures.
    pub spans_refused: AtomicU64,
    /// Spans X-Ray accepted (or the local sink wrote, or translation put into the pool).
    pub spans_forwarded: AtomicU64,
    /// Of those, the spans X-Ray's OTLP endpoint accepted (translated ones count as sent
    /// when the segment uploads send them).
    pub spans_exported: AtomicU64,
    /// Spans sent again after a transient failure (each retry counts).
    pub spans_retried: AtomicU64,
    /// Spans in requests answered 503/429 because the buffer was full. A request refused
    /// before its body was read (no room for the body itself), or a JSON one there was no
    /// room to decode, counts only as an answer.
    pub spans_backpressured: AtomicU64,
    /// Upstream requests that failed (any reason).
    pub forward_failures: AtomicU64,
    /// Upstream requests sent without gzip, though asked for, because the buffer had no
    /// room for the compressed copy.
    pub sent_uncompressed: AtomicU64,
    /// Spans written to the spool (at shutdown).
    pub spans_spooled: AtomicU64,
    /// Spans read back from the spool and delivered.
    pub spans_replayed: AtomicU64,
    /// Spans the spool lost: no room in its queue, an oldest file deleted for room (the
    /// spool at its `--spool-max-mb`), a failed write.
    pub spans_lost: AtomicU64,
    /// `OTLP.Destination: segments`: metadata entries (rarely other parts) cut from
    /// translated documents to keep them under X-Ray's 64 KB.
    pub metadata_cut: AtomicU64,
    /// Where spans go now: [`super::auto::OTLP`] or [`super::auto::SEGMENTS`] (`auto`
    /// moves it to segments; see [`super::auto`]).
    pub destination: AtomicU8,
    /// Times `auto` moved from OTLP to segments.
    pub destination_switches: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpSnapshot {
    /// (status, requests) for every status answered at least once; 0 means "other".
    pub answered: Vec<(u16, u64)>,
    /// See [`OtlpStats::spans_received`].
    pub spans_received: u64,
    /// See [`OtlpStats::spans_refused`].
    pub spans_refused: u64,
    /// See [`OtlpStats::spans_forwarded`].
    pub spans_forwarded: u64,
    /// See [`OtlpStats::spans_exported`].
    pub spans_exported: u64,
    /// See [`OtlpStats::spans_retried`].
    pub spans_retried: u64,
    /// See [`OtlpStats::spans_backpressured`].
    pub spans_backpressured: u64,
    /// See [`OtlpStats::forward_failures`].
    pub forward_failures: u64,
    /// See [`OtlpStats::spans_spooled`].
    pub spans_spooled: u64,
    /// See [`OtlpStats::spans_replayed`].
    pub spans_replayed: u64,
    /// See [`OtlpStats::spans_lost`].
    pub spans_lost: u64,
}

impl OtlpStats {
    /// Counts a request answered with `status`.
    pub fn answered(&self, status: u16) {
        let slot = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len());
        self.answered[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> OtlpSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OtlpSnapshot {
            answered: STATUSES
                .iter()
                .copied()
                .chain([0])
                .zip(self.answered.iter().map(get))
                .filter(|(_, n)| *n > 0)
                .collect(),
            spans_received: get(&self.spans_received),
            spans_refused: get(&self.spans_refused),
            spans_forwarded: get(&self.spans_forwarded),
            spans_exported: get(&self.spans_exported),
            spans_retried: get(&self.spans_retried),
            spans_backpressured: get(&self.spans_backpressured),
            forward_failures: get(&self.forward_failures),
            spans_spooled: get(&self.spans_spooled),
            spans_replayed: get(&self.spans_replayed),
            spans_lost: get(&self.spans_lost),
        }
    }
}

/// The `otlp` object of `/healthz`: requests by status, spans by fate, the buffer.
pub fn health(stats: &OtlpStats, buffered: usize, capacity: usize) -> serde_json::Value {
    let counts = stats.snapshot();
    let requests: serde_json::Map<String, serde_json::Value> = counts
        .answered
        .iter()
        .map(|(status, n)| {
            let key = if *status == 0 {
                "other".to_owned()
            } else {
                status.to_string()
            };
            (key, (*n).into())
        })
        .collect();
    serde_json::json!({
        "requests": requests,
        "spans": {
            "received": counts.spans_received,
            "forwarded": counts.spans_forwarded,
            "refused": counts.spans_refused,
            "retried": counts.spans_retried,
            "backpressured": counts.spans_backpressured,
            "spooled": counts.spans_spooled,
            "replayed": counts.spans_replayed,
            "lost": counts.spans_lost,
        },
        "buffer": { "used_bytes": buffered, "capacity_bytes": capacity },
    })
}

/// Appends the OTLP metrics in the Prometheus text format; `buffered` and `capacity` are the
/// OTLP buffer's bytes in use and size.
pub fn render_metrics(stats: &OtlpStats, buffered: usize, capacity: usize, out: &mut String) {
    let counts = stats.snapshot();
    let mut family = |name: &str, help: &str, kind: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        "xray_relay_otlp_requests_total",
        "OTLP export requests answered, by HTTP status.",
        "counter",
    );
    for (status, n) in &counts.answered {
        let _ = writeln!(
            out,
            "xray_relay_otlp_requests_total{{status=\"{}\"}} {n}",
            if *status == 0 {
                "other".to_owned()
            } else {
                status.to_string()
            }
        );
    }
    let counters = [
        (
            "received",
            "Spans in decoded OTLP requests.",
            counts.spans_received,
        ),
        (
            "refused",
            "Spans refused (over 200 KB, refused by X-Ray, or dropped after failures).",
            counts.spans_refused,
        ),
        (
            "forwarded",
            "Spans X-Ray accepted (or the local sink wrote).",
            counts.spans_forwarded,
        ),
        (
            "retried",
            "Spans sent again after a transient failure.",
            counts.spans_retried,
        ),
        (
            "backpressured",
            "Spans in requests answered 503 because the OTLP buffer was full.",
            counts.spans_backpressured,
        ),
        (
            "spooled",
            "Spans written to the spool.",
            counts.spans_spooled,
        ),
        (
            "replayed",
            "Spans read back from the spool and delivered.",
            counts.spans_replayed,
        ),
        (
            "lost",
            "Spans the spool lost (full: oldest file deleted for room; failed writes).",
            counts.spans_lost,
        ),
    ];
    for (name, help, value) in counters {
        let name = format!("xray_relay_otlp_spans_{name}_total");
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP xray_relay_otlp_forward_failures_total Failed requests to X-Ray's OTLP endpoint.\n# TYPE xray_relay_otlp_forward_failures_total counter\nxray_relay_otlp_forward_failures_total {}",
        counts.forward_failures
    );
    let _ = writeln!(
        out,
        "# HELP xray_relay_otlp_sent_uncompressed_total Requests to X-Ray's OTLP endpoint sent without gzip: the buffer had no room for the compressed copy.\n# TYPE xray_relay_otlp_sent_uncompressed_total counter\nxray_relay_otlp_sent_uncompressed_total {}",
        stats.sent_uncompressed.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP xray_relay_otlp_metadata_cut_total Metadata entries cut from translated segments to fit 64 KB.\n# TYPE xray_relay_otlp_metadata_cut_total counter\nxray_relay_otlp_metadata_cut_total {}",
        stats
            .metadata_cut
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let segments = stats.destination.load(Ordering::Relaxed) == super::auto::SEGMENTS;
    let _ = writeln!(
        out,
        "# HELP xray_relay_otlp_destination 1 for where spans go now: otlp (X-Ray's OTLP endpoint, or OTLP JSON lines offline) or segments (translated).\n# TYPE xray_relay_otlp_destination gauge\nxray_relay_otlp_destination{{destination=\"otlp\"}} {}\nxray_relay_otlp_destination{{destination=\"segments\"}} {}",
        u8::from(!segments),
        u8::from(segments)
    );
    let _ = writeln!(
        out,
        "# HELP xray_relay_otlp_destination_switches_total Times OTLP.Destination auto moved spans from the OTLP endpoint to segments.\n# TYPE xray_relay_otlp_destination_switches_total counter\nxray_relay_otlp_destination_switches_total {}",
        stats.destination_switches.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP xray_relay_otlp_buffer_used_bytes Bytes of OTLP data held.\n# TYPE xray_relay_otlp_buffer_used_bytes gauge\nxray_relay_otlp_buffer_used_bytes {buffered}"
    );
    let _ = writeln!(
        out,
        "# HELP xray_relay_otlp_buffer_capacity_bytes The OTLP share of the buffer.\n# TYPE xray_relay_otlp_buffer_capacity_bytes gauge\nxray_relay_otlp_buffer_capacity_bytes {capacity}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_counted_apart_and_rendered() {
        let stats = OtlpStats::default();
        stats.answered(200);
        stats.answered(200);
        stats.answered(503);
        stats.answered(418);
        OtlpStats::add(&stats.spans_received, 7);
        OtlpStats::add(&stats.spans_lost, 2);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.answered, vec![(200, 2), (503, 1), (0, 1)]);
        let mut out = String::new();
        render_metrics(&stats, 10, 100, &mut out);
        assert!(
            out.contains("xray_relay_otlp_requests_total{status=\"200\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("xray_relay_otlp_requests_total{status=\"other\"} 1\n"));
        assert!(out.contains("xray_relay_otlp_spans_received_total 7\n"));
        assert!(out.contains("xray_relay_otlp_spans_lost_total 2\n"));
        assert!(out.contains("xray_relay_otlp_buffer_used_bytes 10\n"));
        assert!(out.contains("xray_relay_otlp_destination{destination=\"otlp\"} 1\n"));
        assert!(out.contains("xray_relay_otlp_destination{destination=\"segments\"} 0\n"));
        let health = health(&stats, 10, 100);
        assert_eq!(health["requests"]["200"], 2);
        assert_eq!(health["requests"]["other"], 1);
        assert_eq!(health["spans"]["received"], 7);
        assert_eq!(health["spans"]["lost"], 2);
        assert_eq!(health["buffer"]["capacity_bytes"], 100);
    }
}
