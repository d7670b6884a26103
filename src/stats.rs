//! Lifetime counters shared by the receiver, the uploaders, telemetry, `/healthz` and `/metrics`.
//!
//! Counters only ever grow; telemetry reports the difference since its last record, so nobody
//! has to reset anything under contention. Besides the counters: the uploads in flight, a
//! histogram of upload latency, the last upload outcome, and the TCP proxy's counters.

use crate::aws::BackendError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Why a call to the X-Ray backend failed, in the classes of the telemetry record's
/// `BackendConnectionErrors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request or connection timed out.
    Timeout,
    /// The TCP connection was refused.
    ConnectionRefused,
    /// The backend answered with a 4xx status.
    Http4xx,
    /// The backend answered with a 5xx status.
    Http5xx,
    /// The endpoint's host name did not resolve.
    UnknownHost,
    /// Anything else (TLS, reset connections, unreadable responses).
    Other,
}

impl ErrorClass {
    /// All classes, in the order the telemetry record lists them.
    pub const ALL: [ErrorClass; 6] = [
        ErrorClass::Timeout,
        ErrorClass::ConnectionRefused,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::UnknownHost,
        ErrorClass::Other,
    ];

    /// The field name X-Ray's `BackendConnectionErrors` uses for this class.
    pub fn telemetry_field(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "TimeoutCount",
            ErrorClass::ConnectionRefused => "ConnectionRefusedCount",
            ErrorClass::Http4xx => "HTTPCode4XXCount",
            ErrorClass::Http5xx => "HTTPCode5XXCount",
            ErrorClass::UnknownHost => "UnknownHostCount",
            ErrorClass::Other => "OtherCount",
        }
    }

    /// The `class` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::ConnectionRefused => "connection_refused",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::UnknownHost => "unknown_host",
            ErrorClass::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The relay's counters since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams read from the UDP socket, valid or not (the original counts them this way).
    pub received: AtomicU64,
    /// Datagrams refused (no header, bad header, nothing after it) plus documents X-Ray reported
    /// as unprocessed.
    pub rejected: AtomicU64,
    /// Segments lost for room: pushed out of the full pool with no spool to take them, or
    /// lost with the spool full (its queue, or the files deleted for room).
    pub spillover: AtomicU64,
    /// Documents X-Ray accepted (or the local sink wrote).
    pub sent: AtomicU64,
    /// Documents dropped for good: the backend refused the whole batch for a reason retries
    /// cannot fix, or shutdown gave up on them, with no spool to keep them; or the spool
    /// could not write them, or found them damaged.
    pub dropped: AtomicU64,
    /// Documents sent again after a transient failure (each retry of each document counts).
    pub retried: AtomicU64,
    /// Documents written to the spool.
    pub spooled: AtomicU64,
    /// Documents read back from the spool and delivered.
    pub replayed: AtomicU64,
    /// Datagrams the kernel dropped on the UDP socket because its receive buffer was full
    /// (`SO_RXQ_OVFL`). Not in telemetry: X-Ray's record has no field for it.
    pub kernel_drops: AtomicU64,
    /// Failed backend calls, by class.
    backend_errors: [AtomicU64; 6],
    /// Uploads waiting for their destination right now.
    in_flight: AtomicU64,
    /// How long successful uploads took.
    latency: Histogram,
    /// The last upload outcomes, for `/healthz`.
    outcomes: Mutex<Outcomes>,
    /// The TCP proxy's counters.
    pub proxy: ProxyStats,
    /// Failed background refreshes of AWS credentials, counted by the credentials providers.
    pub credential_refresh_failures: Arc<AtomicU64>,
}

impl Stats {
    /// Counters that report `credential_refresh_failures` from the credentials providers'
    /// own counter.
    pub fn with_credential_refresh_failures(counter: Arc<AtomicU64>) -> Stats {
        Stats {
            credential_refresh_failures: counter,
            ..Stats::default()
        }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one failed backend call of the given class.
    pub fn backend_error(&self, class: ErrorClass) {
        self.backend_errors[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an upload as in flight until the returned guard is dropped.
    pub fn upload_started(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Uploads in flight right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records a successful upload that took `latency`: it ends any run of failures.
    pub fn record_success(&self, latency: Duration) {
        self.latency.observe(latency);
        let mut outcomes = self.outcomes();
        outcomes.last_success = Some(SystemTime::now());
        outcomes.failing_since = None;
    }

    /// Records a failed upload; the first failure after a success starts a run of failures.
    pub fn record_failure(&self, error: &BackendError) {
        let mut outcomes = self.outcomes();
        outcomes.last_error = Some((SystemTime::now(), error.to_string()));
        outcomes.last_error_at = Some(Instant::now());
        outcomes.failing_since.get_or_insert_with(Instant::now);
    }

    /// The last upload outcomes.
    pub fn upload_health(&self) -> UploadHealth {
        let outcomes = self.outcomes();
        UploadHealth {
            last_success: outcomes.last_success,
            last_error: outcomes.last_error.clone(),
            failing_for: outcomes.failing_since.map(|since| since.elapsed()),
            last_error_age: outcomes.last_error_at.map(|at| at.elapsed()),
        }
    }

    /// The upload latency histogram so far.
    pub fn latency(&self) -> HistogramSnapshot {
        self.latency.snapshot()
    }

    fn outcomes(&self) -> std::sync::MutexGuard<'_, Outcomes> {
        self.outcomes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads all counters at once (each individually atomic; close enough for reporting).
    pub fn snapshot(&self) -> Snapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            received: load(&self.received),
            rejected: load(&self.rejected),
            spillover: load(&self.spillover),
            sent: load(&self.sent),
            dropped: load(&self.dropped),
            retried: load(&self.retried),
            spooled: load(&self.spooled),
            replayed: load(&self.replayed),
            backend_errors: std::array::from_fn(|i| load(&self.backend_errors[i])),
        }
    }
}

/// Keeps an upload counted as in flight; see [`Stats::upload_started`].
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Outcomes {
    last_success: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
    /// The same moment on the monotonic clock, for ages that a wall-clock jump must not change.
    last_error_at: Option<Instant>,
    failing_since: Option<Instant>,
}

/// What `/healthz` reports about uploads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadHealth {
    /// When an upload last succeeded.
    pub last_success: Option<SystemTime>,
    /// When an upload last failed, and why.
    pub last_error: Option<(SystemTime, String)>,
    /// How long uploads have failed without a success in between; `None` while they work.
    pub failing_for: Option<Duration>,
    /// How long ago the last failure was, on the monotonic clock (`last_error`'s wall-clock
    /// time is for display: a clock jump would make it look older or newer than it is).
    pub last_error_age: Option<Duration>,
}

/// Upper bounds in seconds of the upload latency buckets; one more bucket holds the rest.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed buckets, in plain atomics.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0; LATENCY_BUCKETS.len() + 1];
        let mut total = 0;
        for (slot, bucket) in cumulative.iter_mut().zip(&self.buckets) {
            total += bucket.load(Ordering::Relaxed);
            *slot = total;
        }
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// The latency histogram at one moment, in Prometheus' cumulative form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations at or below each of [`LATENCY_BUCKETS`], then the total.
    pub cumulative: [u64; LATENCY_BUCKETS.len() + 1],
    /// The sum of all observations in seconds.
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.cumulative[LATENCY_BUCKETS.len()]
    }
}

/// Why the TCP proxy refused a connection or request (each answered with an HTTP error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 503: the connection cap was reached.
    TooManyConnections,
    /// 408: the request head or body did not arrive in time.
    Timeout,
    /// 431: the request head is larger than allowed.
    HeadTooLarge,
    /// 431: the request has more headers than allowed.
    TooManyHeaders,
    /// 413: the body is larger than allowed.
    BodyTooLarge,
    /// 411: no usable length (a `Transfer-Encoding` body).
    LengthRequired,
    /// 400: not HTTP/1.x, or a malformed request.
    BadRequest,
    /// 405: a method other than `GET` for a local endpoint.
    MethodNotAllowed,
    /// 503: every forwarding slot stayed busy.
    Busy,
    /// 403: not a sampling API, with `Proxy.SamplingOnly` set.
    NotSampling,
}

impl Refusal {
    /// All reasons, in index order.
    pub const ALL: [Refusal; 10] = [
        Refusal::TooManyConnections,
        Refusal::Timeout,
        Refusal::HeadTooLarge,
        Refusal::TooManyHeaders,
        Refusal::BodyTooLarge,
        Refusal::LengthRequired,
        Refusal::BadRequest,
        Refusal::MethodNotAllowed,
        Refusal::Busy,
        Refusal::NotSampling,
    ];

    /// The `reason` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::TooManyConnections => "too_many_connections",
            Refusal::Timeout => "timeout",
            Refusal::HeadTooLarge => "head_too_large",
            Refusal::TooManyHeaders => "too_many_headers",
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::LengthRequired => "length_required",
            Refusal::BadRequest => "bad_request",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::Busy => "busy",
            Refusal::NotSampling => "not_sampling_api",
        }
    }
}

/// The TCP proxy's counters.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections open right now (a gauge).
    pub open_connections: AtomicU64,
    /// Connections accepted, including those refused at the cap.
    pub accepted: AtomicU64,
    /// Requests X-Ray answered (any status).
    pub forwarded: AtomicU64,
    /// Requests answered by the relay itself (`/healthz`, `/metrics`, offline sampling).
    pub local: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    upstream_errors: [AtomicU64; ErrorClass::ALL.len()],
}

impl ProxyStats {
    /// Counts one refusal.
    pub fn refused(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals so far for `reason`.
    pub fn refusals(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts one forwarded request that got no answer from X-Ray.
    pub fn upstream_error(&self, class: ErrorClass) {
        self.upstream_errors[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Forwarded requests without an answer so far, of `class`.
    pub fn upstream_errors(&self, class: ErrorClass) -> u64 {
        self.upstream_errors[class.index()].load(Ordering::Relaxed)
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Stats::received`].
    pub received: u64,
    /// See [`Stats::rejected`].
    pub rejected: u64,
    /// See [`Stats::spillover`].
    pub spillover: u64,
    /// See [`Stats::sent`].
    pub sent: u64,
    /// See [`Stats::dropped`].
    pub dropped: u64,
    /// See [`Stats::retried`].
    pub retried: u64,
    /// See [`Stats::spooled`].
    pub spooled: u64,
    /// See [`Stats::replayed`].
    pub replayed: u64,
    /// Failed backend calls, indexed like [`ErrorClass::ALL`].
    pub backend_errors: [u64; 6],
}

impl Snapshot {
    /// Failed backend calls of one class.
    pub fn backend_errors(&self, class: ErrorClass) -> u64 {
        self.backend_errors[class.index()]
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            received: self.received - earlier.received,
            rejected: self.rejected - earlier.rejected,
            spillover: self.spillover - earlier.spillover,
            sent: self.sent - earlier.sent,
            dropped: self.dropped - earlier.dropped,
            retried: self.retried - earlier.retried,
            spooled: self.spooled - earlier.spooled,
            replayed: self.replayed - earlier.replayed,
            backend_errors: std::array::from_fn(|i| {
                self.backend_errors[i] - earlier.backend_errors[i]
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_difference_counts_only_what_happened_in_between() {
        let stats = Stats::default();
        Stats::add(&stats.received, 5);
        stats.backend_error(ErrorClass::Http5xx);
        let first = stats.snapshot();
        Stats::add(&stats.received, 3);
        Stats::add(&stats.sent, 2);
        stats.backend_error(ErrorClass::Http5xx);
        stats.backend_error(ErrorClass::Timeout);
        let delta = stats.snapshot().since(&first);
        assert_eq!(delta.received, 3);
        assert_eq!(delta.sent, 2);
        assert_eq!(delta.backend_errors(ErrorClass::Http5xx), 1);
        assert_eq!(delta.backend_errors(ErrorClass::Timeout), 1);
        assert_eq!(delta.backend_errors(ErrorClass::Other), 0);
    }

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let stats = Stats::default();
        stats.record_success(Duration::from_millis(3));
        stats.record_success(Duration::from_millis(10));
        stats.record_success(Duration::from_millis(700));
        stats.record_success(Duration::from_secs(60));
        let latency = stats.latency();
        assert_eq!(latency.cumulative[0], 1); // <= 5 ms
        assert_eq!(latency.cumulative[1], 2); // <= 10 ms, bounds are inclusive
        assert_eq!(latency.cumulative[6], 2); // <= 500 ms
        assert_eq!(latency.cumulative[7], 3); // <= 1 s
        assert_eq!(latency.cumulative[10], 3); // <= 10 s
        assert_eq!(latency.count(), 4);
        assert!((latency.sum_seconds - 60.713).abs() < 1e-9);
    }

    #[test]
    fn failures_run_until_the_next_success() {
        let stats = Stats::default();
        assert_eq!(stats.upload_health(), UploadHealth::default());
        let error = BackendError::from_response(503, None, None, b"down");
        stats.record_failure(&error);
        let first = stats.upload_health();
        std::thread::sleep(Duration::from_millis(20));
        stats.record_failure(&error);
        let failing = stats.upload_health();
        assert!(failing.failing_for.unwrap() >= Duration::from_millis(20));
        assert!(failing.failing_for.unwrap() > first.failing_for.unwrap());
        assert_eq!(
            failing.last_error.as_ref().map(|(_, m)| m.as_str()),
            Some("X-Ray answered HTTP 503: down")
        );
        stats.record_success(Duration::from_millis(1));
        let recovered = stats.upload_health();
        assert_eq!(recovered.failing_for, None);
        assert!(recovered.last_success.is_some());
        assert!(recovered.last_error.is_some());
    }

    #[test]
    fn in_flight_counts_live_guards() {
        let stats = Stats::default();
        let a = stats.upload_started();
        let b = stats.upload_started();
        assert_eq!(stats.in_flight(), 2);
        drop(a);
        assert_eq!(stats.in_flight(), 1);
        drop(b);
        assert_eq!(stats.in_flight(), 0);
    }

    #[test]
    fn proxy_refusals_are_counted_by_reason() {
        let stats = Stats::default();
        stats.proxy.refused(Refusal::BodyTooLarge);
        stats.proxy.refused(Refusal::BodyTooLarge);
        stats.proxy.refused(Refusal::Timeout);
        assert_eq!(stats.proxy.refusals(Refusal::BodyTooLarge), 2);
        assert_eq!(stats.proxy.refusals(Refusal::Timeout), 1);
        assert_eq!(stats.proxy.refusals(Refusal::Busy), 0);
        for (i, reason) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
    }

    #[test]
    fn every_class_has_its_own_telemetry_field() {
        let names: std::collections::HashSet<_> = ErrorClass::ALL
            .iter()
            .map(|c| c.telemetry_field())
            .collect();
        assert_eq!(names.len(), ErrorClass::ALL.len());
        for (i, class) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
    }
}
