//! The relay's own telemetry: every 60 s, a `PutTelemetryRecords` call with its counters.
//!
//! As in the original: nothing is reported until the first datagram arrives; records that could
//! not be sent are kept (at most 30, oldest dropped first) and sent with the next ones, at most
//! 10 per call; a last record is sent at shutdown.
//!
//! OTLP spans count where X-Ray's fields fit ([`Telemetry::with_otlp`]): a span is what
//! X-Ray makes a segment or subsegment of, so spans received, sent and refused are added to
//! the segment counts; backpressured requests are not (nothing is lost, the client sends
//! them again), and failed calls to the OTLP endpoint are in `BackendConnectionErrors`
//! already (the forwarders count them in the relay's counters).

use crate::otlp::OtlpStats;
use crate::sink::PostJson;
use crate::stats::{ErrorClass, Snapshot, Stats};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a record is cut.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Records kept while X-Ray cannot be reached.
const MAX_QUEUED: usize = 30;

/// Records per `PutTelemetryRecords` call.
const RECORDS_PER_CALL: usize = 10;

/// Who is reporting: the fields sent with every call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reporter {
    /// EC2 instance id (`AWS_INSTANCE_ID` or instance metadata), or empty.
    pub instance_id: String,
    /// Host name (`AWS_HOSTNAME` or instance metadata), or empty.
    pub hostname: String,
    /// The `-a` resource ARN, or empty.
    pub resource_arn: String,
}

/// One interval's record, ready to send.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    timestamp: f64,
    counts: Snapshot,
}

impl Record {
    fn to_json(&self) -> Value {
        let c = &self.counts;
        let mut errors = serde_json::Map::new();
        for class in ErrorClass::ALL {
            errors.insert(
                class.telemetry_field().into(),
                json!(c.backend_errors(class)),
            );
        }
        json!({
            "Timestamp": self.timestamp,
            "SegmentsReceivedCount": c.received,
            "SegmentsSentCount": c.sent,
            "SegmentsSpilloverCount": c.spillover,
            "SegmentsRejectedCount": c.rejected,
            "BackendConnectionErrors": errors,
        })
    }
}

/// Cuts records from the counters and sends them.
pub struct Telemetry<P> {
    client: P,
    stats: Arc<Stats>,
    reporter: Reporter,
    otlp: Option<Arc<OtlpStats>>,
    last: Snapshot,
    queue: heapless::Deque<Record, MAX_QUEUED>,
}

impl<P: PostJson> Telemetry<P> {
    /// Telemetry for `stats`, sent through `client`.
    pub fn new(client: P, stats: Arc<Stats>, reporter: Reporter) -> Self {
        Telemetry {
            client,
            stats,
            reporter,
            otlp: None,
            last: Snapshot::default(),
            queue: heapless::Deque::new(),
        }
    }

    /// Adds OTLP spans to the record: `SegmentsReceivedCount` the spans received (in
    /// requests taken; a request answered 503 is sent again and counted then),
    /// `SegmentsRejectedCount` the spans refused (over 200 KB, out of X-Ray's times,
    /// refused by X-Ray or by translation, as invalid and unprocessed segments are),
    /// `SegmentsSentCount` the spans X-Ray's OTLP endpoint accepted (translated spans go
    /// through the segment uploads, which count them as sent), `SegmentsSpilloverCount` the
    /// spans the OTLP spool lost (as the segment spool's losses count there).
    pub fn with_otlp(mut self, stats: Arc<OtlpStats>) -> Self {
        self.otlp = Some(stats);
        self
    }

    /// The counters now, OTLP's included.
    fn snapshot(&self) -> Snapshot {
        let mut now = self.stats.snapshot();
        if let Some(otlp) = &self.otlp {
            let spans = otlp.snapshot();
            now.received += spans.spans_received;
            now.rejected += spans.spans_refused;
            // The OTLP spool's losses, as the segment spool's count as spillover.
            now.spillover += spans.spans_lost;
            now.sent += spans.spans_exported;
        }
        now
    }

    /// Cuts a record of what happened since the last one, and sends everything queued.
    pub fn report(&mut self) {
        let now = self.snapshot();
        let counts = now.since(&self.last);
        self.last = now;
        // Silent until the first datagram (or span), as the original: a relay nobody uses
        // reports nothing.
        if now.received == 0 {
            log::debug!("Skipped telemetry data as no segments found");
            return;
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        if self.queue.is_full() {
            self.queue.pop_front();
            log::debug!("Telemetry Buffers truncated");
        }
        let _ = self.queue.push_back(Record { timestamp, counts });
        self.send_queued();
    }

    fn send_queued(&mut self) {
        while !self.queue.is_empty() {
            let records: Vec<Value> = self
                .queue
                .iter()
                .take(RECORDS_PER_CALL)
                .map(Record::to_json)
                .collect();
            let body = json!({
                "TelemetryRecords": records,
                "EC2InstanceId": self.reporter.instance_id,
                "Hostname": self.reporter.hostname,
                "ResourceARN": self.reporter.resource_arn,
            });
            let body = body.to_string();
            match self.client.post_json("/TelemetryRecords", body.as_bytes()) {
                Ok(_) => {
                    for _ in 0..records.len() {
                        self.queue.pop_front();
                    }
                    log::debug!("Send {} telemetry record(s)", records.len());
                }
                Err(err) => {
                    self.stats.backend_error(err.class());
                    log::debug!(
                        "Failed to send telemetry {} record(s). Re-queue records. {}",
                        self.queue.len(),
                        err.sdk_text("PutTelemetryRecords")
                    );
                    return;
                }
            }
        }
    }

    /// Records waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// Runs telemetry on its own thread: a record every [`INTERVAL`], and a last one when `stop`
/// fires or closes. The returned channel receives a message when the last record is sent.
pub fn spawn<P: PostJson + 'static>(
    mut telemetry: Telemetry<P>,
    stop: Receiver<()>,
) -> std::io::Result<Receiver<()>> {
    let (finished_tx, finished) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("telemetry".into())
        .spawn(move || {
            // A message or a closed channel both mean stop; only a timeout means report.
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
                telemetry.report();
            }
            telemetry.report();
            log::debug!("telemetry: done!");
            let _ = finished_tx.send(());
        })?;
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::BackendError;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Backend {
        up: Mutex<bool>,
        calls: Mutex<Vec<Value>>,
    }

    impl PostJson for &Backend {
        fn post_json(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, BackendError> {
            assert_eq!(path, "/TelemetryRecords");
            if !*self.up.lock().unwrap() {
                return Err(BackendError::Transport {
                    class: ErrorClass::ConnectionRefused,
                    detail: "refused".into(),
                });
            }
            self.calls
                .lock()
                .unwrap()
                .push(serde_json::from_slice(body).unwrap());
            Ok(b"{}".to_vec())
        }
    }

    fn reporter() -> Reporter {
        Reporter {
            instance_id: "i-0123".into(),
            hostname: "edge-1".into(),
            resource_arn: "arn:aws:ec2:us-east-1:123456789012:instance/i-0123".into(),
        }
    }

    #[test]
    fn nothing_is_reported_before_the_first_datagram() {
        let backend = Backend {
            up: Mutex::new(true),
            ..Default::default()
        };
        let mut telemetry = Telemetry::new(&backend, Arc::new(Stats::default()), reporter());
        telemetry.report();
        telemetry.report();
        assert!(backend.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn a_record_carries_the_interval_counts_and_the_reporter() {
        let backend = Backend {
            up: Mutex::new(true),
            ..Default::default()
        };
        let stats = Arc::new(Stats::default());
        let mut telemetry = Telemetry::new(&backend, stats.clone(), reporter());
        Stats::add(&stats.received, 10);
        Stats::add(&stats.sent, 7);
        Stats::add(&stats.rejected, 2);
        Stats::add(&stats.spillover, 1);
        stats.backend_error(ErrorClass::Http4xx);
        telemetry.report();
        Stats::add(&stats.received, 5);
        telemetry.report();

        let calls = backend.calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        let first = &calls[0];
        assert_eq!(first["EC2InstanceId"], "i-0123");
        assert_eq!(first["Hostname"], "edge-1");
        assert_eq!(first["ResourceARN"], reporter().resource_arn);
        let record = &first["TelemetryRecords"][0];
        assert_eq!(record["SegmentsReceivedCount"], 10);
        assert_eq!(record["SegmentsSentCount"], 7);
        assert_eq!(record["SegmentsRejectedCount"], 2);
        assert_eq!(record["SegmentsSpilloverCount"], 1);
        assert_eq!(record["BackendConnectionErrors"]["HTTPCode4XXCount"], 1);
        assert_eq!(record["BackendConnectionErrors"]["TimeoutCount"], 0);
        assert!(record["Timestamp"].as_f64().unwrap() > 1.6e9);
        assert_eq!(calls[1]["TelemetryRecords"][0]["SegmentsReceivedCount"], 5);
        assert_eq!(calls[1]["TelemetryRecords"][0]["SegmentsSentCount"], 0);
    }

    #[test]
    fn records_wait_for_the_backend_and_go_ten_per_call() {
        let backend = Backend::default();
        let stats = Arc::new(Stats::default());
        let mut telemetry = Telemetry::new(&backend, stats.clone(), reporter());
        for _ in 0..35 {
            Stats::add(&stats.received, 1);
            telemetry.report();
        }
        assert_eq!(telemetry.queued(), MAX_QUEUED);
        // Each failed call is itself counted as a backend error.
        assert_eq!(
            stats
                .snapshot()
                .backend_errors(ErrorClass::ConnectionRefused),
            35
        );

        *backend.up.lock().unwrap() = true;
        Stats::add(&stats.received, 1);
        telemetry.report();
        assert_eq!(telemetry.queued(), 0);
        let calls = backend.calls.lock().unwrap();
        let sizes: Vec<usize> = calls
            .iter()
            .map(|c| c["TelemetryRecords"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [10, 10, 10]);
    }

    #[test]
    fn the_thread_sends_a_last_record_when_stopped() {
        let backend: &'static Backend = Box::leak(Box::new(Backend {
            up: Mutex::new(true),
            ..Default::default()
        }));
        let stats = Arc::new(Stats::default());
        Stats::add(&stats.received, 3);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let finished = spawn(Telemetry::new(backend, stats, reporter()), stop_rx).unwrap();
        stop_tx.send(()).unwrap();
        finished
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let calls = backend.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["TelemetryRecords"][0]["SegmentsReceivedCount"], 3);
    }

    #[test]
    fn otlp_spans_count_where_x_rays_fields_fit() {
        let backend = Backend {
            up: Mutex::new(true),
            ..Default::default()
        };
        let stats = Arc::new(Stats::default());
        let otlp = Arc::new(OtlpStats::default());
        let mut telemetry =
            Telemetry::new(&backend, stats.clone(), reporter()).with_otlp(otlp.clone());
        telemetry.report();
        assert!(
            backend.calls.lock().unwrap().is_empty(),
            "silent until used"
        );
        Stats::add(&stats.received, 2);
        Stats::add(&stats.sent, 2);
        OtlpStats::add(&otlp.spans_received, 10);
        OtlpStats::add(&otlp.spans_forwarded, 7);
        OtlpStats::add(&otlp.spans_exported, 7);
        OtlpStats::add(&otlp.spans_refused, 3);
        OtlpStats::add(&otlp.spans_backpressured, 50);
        OtlpStats::add(&otlp.spans_lost, 4);
        telemetry.report();
        // Translated spans (forwarded into the pool, not exported): the pool's uploads
        // count what is sent.
        let otlp = Arc::new(OtlpStats::default());
        OtlpStats::add(&otlp.spans_received, 10);
        OtlpStats::add(&otlp.spans_forwarded, 10);
        let mut by_segments =
            Telemetry::new(&backend, Arc::new(Stats::default()), reporter()).with_otlp(otlp);
        by_segments.report();
        let calls = backend.calls.lock().unwrap();
        let record = &calls[0]["TelemetryRecords"][0];
        assert_eq!(record["SegmentsReceivedCount"], 12);
        assert_eq!(record["SegmentsSentCount"], 9);
        assert_eq!(record["SegmentsRejectedCount"], 3);
        assert_eq!(
            record["SegmentsSpilloverCount"], 4,
            "the spool's losses; backpressure loses nothing"
        );
        let record = &calls[1]["TelemetryRecords"][0];
        assert_eq!(record["SegmentsReceivedCount"], 10);
        assert_eq!(record["SegmentsSentCount"], 0);
    }
}
