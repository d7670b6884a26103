//! Which failures are worth another try, and how long to wait before it.
//!
//! The original daemon drops a batch on the first failure. Here a batch stays with its uploader
//! until X-Ray accepts it, unless the failure can never succeed (a malformed request, a refused
//! identity). What counts as transient:
//!
//! | failure | verdict |
//! |---|---|
//! | no answer: timeout, refused, reset, DNS failure | retry (the link or the endpoint is down) |
//! | HTTP 5xx, HTTP 429 | retry |
//! | `ThrottledException`, `ThrottlingException` at any status | retry |
//! | 403 `ExpiredToken…` or "Signature expired" (clock jump, credentials being refreshed) | retry |
//! | credentials not available yet | retry (they may appear: a profile written later, a metadata service back) |
//! | any other 4xx (400 `InvalidRequestException`, 403 `AccessDenied…`, 413) | drop, log the reason |

use crate::aws::BackendError;
use std::time::Duration;

/// What to do with a batch after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The failure may pass: keep the batch and try again later.
    Retry,
    /// It can never succeed: drop the batch and say why.
    Drop,
}

/// Decides whether a failed `PutTraceSegments` call is worth repeating.
pub fn verdict(error: &BackendError) -> Verdict {
    match error {
        BackendError::Transport { .. } | BackendError::Credentials(_) => Verdict::Retry,
        BackendError::Signing(_) => Verdict::Drop,
        BackendError::Http {
            status,
            error_type,
            message,
        } => {
            let kind = error_type.as_deref().unwrap_or("");
            let overloaded = *status >= 500 || *status == 429 || is_throttling(kind);
            // A clock that jumped or credentials being renewed: the next try signs afresh.
            let stale_signature = *status == 403
                && (kind.starts_with("ExpiredToken") || message.contains("Signature expired"));
            if overloaded || stale_signature {
                Verdict::Retry
            } else {
                Verdict::Drop
            }
        }
    }
}

/// `true` for X-Ray's throttling error codes (it uses both spellings).
fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ThrottledException" | "ThrottlingException" | "Throttling" | "TooManyRequestsException"
    )
}

/// `true` if a document X-Ray left unprocessed with `error_code` may be accepted later.
pub fn unprocessed_is_transient(error_code: Option<&str>) -> bool {
    match error_code {
        Some(code) => {
            is_throttling(code)
                || matches!(
                    code,
                    "InternalFailure"
                        | "InternalError"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                )
        }
        None => false,
    }
}

/// Exponential backoff with full jitter: the n-th wait is uniform in `[0, min(cap, base·2ⁿ)]`.
///
/// Full jitter keeps many relays (or many uploader threads) from retrying in lockstep after an
/// outage. The random numbers need no quality beyond that, so a xorshift generator does.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    state: u64,
}

/// The first retry waits up to this long.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);

/// No wait is longer than this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

impl Backoff {
    /// A backoff from [`BACKOFF_BASE`] to [`BACKOFF_CAP`], seeded with `seed` (any value).
    pub fn new(seed: u64) -> Backoff {
        Backoff::with_limits(BACKOFF_BASE, BACKOFF_CAP, seed)
    }

    /// A backoff with other limits (tests, the spool replayer).
    pub fn with_limits(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
            // xorshift must not start at zero.
            state: seed | 1,
        }
    }

    /// The wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let fraction = (self.next_random() >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }

    /// Tries made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

/// A seed that differs between threads and runs.
pub fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded per process by the OS; hashing the thread id spreads threads apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(format!("{:?}", std::thread::current().id()).as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ErrorClass;

    fn http(status: u16, kind: Option<&str>, message: &str) -> BackendError {
        BackendError::Http {
            status,
            error_type: kind.map(str::to_string),
            message: message.to_string(),
        }
    }

    #[test]
    fn transient_failures_are_retried() {
        let transport = BackendError::Transport {
            class: ErrorClass::ConnectionRefused,
            detail: "refused".into(),
        };
        assert_eq!(verdict(&transport), Verdict::Retry);
        for error in [
            http(500, None, ""),
            http(503, Some("ServiceUnavailableException"), ""),
            http(429, None, ""),
            http(400, Some("ThrottlingException"), "Rate exceeded"),
            http(400, Some("ThrottledException"), ""),
            http(
                403,
                Some("ExpiredTokenException"),
                "The security token included in the request is expired",
            ),
            http(
                403,
                Some("InvalidSignatureException"),
                "Signature expired: 20261121T100000Z is now earlier than …",
            ),
        ] {
            assert_eq!(verdict(&error), Verdict::Retry, "{error}");
        }
    }

    #[test]
    fn failures_that_cannot_pass_are_dropped() {
        for error in [
            http(400, Some("InvalidRequestException"), "bad"),
            http(403, Some("AccessDeniedException"), "not allowed"),
            http(
                403,
                Some("UnrecognizedClientException"),
                "The security token is invalid",
            ),
            http(413, None, "too large"),
            http(404, None, ""),
        ] {
            assert_eq!(verdict(&error), Verdict::Drop, "{error}");
        }
    }

    #[test]
    fn transient_unprocessed_codes() {
        assert!(unprocessed_is_transient(Some("ThrottledException")));
        assert!(unprocessed_is_transient(Some("ThrottlingException")));
        assert!(unprocessed_is_transient(Some("InternalFailure")));
        assert!(!unprocessed_is_transient(Some("InvalidSegment")));
        assert!(!unprocessed_is_transient(Some("SegmentTooLarge")));
        assert!(!unprocessed_is_transient(None));
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let mut backoff =
            Backoff::with_limits(Duration::from_millis(100), Duration::from_secs(2), 42);
        let delays: Vec<Duration> = (0..40).map(|_| backoff.next_delay()).collect();
        for (n, delay) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis(100 * (1 << n.min(10))).min(Duration::from_secs(2));
            assert!(*delay <= ceiling, "attempt {n}: {delay:?} > {ceiling:?}");
        }
        // Jitter: later waits are not all the same, and not all tiny.
        let late = &delays[10..];
        assert!(late.iter().any(|d| *d > Duration::from_millis(500)));
        assert!(late.windows(2).any(|w| w[0] != w[1]));
        assert_eq!(backoff.attempts(), 40);
    }

    #[test]
    fn seeds_differ_between_threads() {
        let here = seed();
        let there = std::thread::spawn(seed).join().unwrap();
        assert_ne!(here, there);
    }
}
