//! Lifetime counters shared by the receiver, the uploaders, telemetry and (later) metrics.
//!
//! Counters only ever grow; telemetry reports the difference since its last record, so nobody
//! has to reset anything under contention.

use std::sync::atomic::{AtomicU64, Ordering};

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

    fn index(self) -> usize {
        self as usize
    }
}

/// The relay's counters since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams read from the UDP socket, valid or not (the original counts them this way).
    pub received: AtomicU64,
    /// Datagrams refused (bad header, bad body) plus documents X-Ray reported as unprocessed.
    pub rejected: AtomicU64,
    /// Segments dropped because the pool was full.
    pub spillover: AtomicU64,
    /// Documents X-Ray accepted (or the local sink wrote).
    pub sent: AtomicU64,
    /// Documents dropped for good: the backend refused the whole batch for a reason retries
    /// cannot fix, or shutdown gave up on them with no spool to keep them.
    pub dropped: AtomicU64,
    /// Documents sent again after a transient failure (each retry of each document counts).
    pub retried: AtomicU64,
    /// Documents written to the spool.
    pub spooled: AtomicU64,
    /// Documents read back from the spool and delivered.
    pub replayed: AtomicU64,
    /// Failed backend calls, by class.
    backend_errors: [AtomicU64; 6],
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one failed backend call of the given class.
    pub fn backend_error(&self, class: ErrorClass) {
        self.backend_errors[class.index()].fetch_add(1, Ordering::Relaxed);
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
