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
//! | 403 "Signature not yet current", `RequestTimeTooSkewed`, `RequestExpired` (clock off) | retry, logged once with the skew |
//! | credentials not available yet | retry (they may appear: a profile written later, a metadata service back) |
//! | any other 4xx (400 `InvalidRequestException`, 403 `AccessDenied…`, 413) | drop, log the reason |

use crate::aws::BackendError;
use crate::aws::timestamp::parse_rfc3339;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

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
            status, error_type, ..
        } => {
            let kind = error_type.as_deref().unwrap_or("");
            let overloaded = *status >= 500 || *status == 429 || is_throttling(kind);
            // Credentials being renewed: the next try signs afresh.
            let stale_token = *status == 403 && kind.starts_with("ExpiredToken");
            if overloaded || stale_token || clock_skew(error).is_some() {
                Verdict::Retry
            } else {
                Verdict::Drop
            }
        }
    }
}

/// Whom a refusal (a [`Verdict::Drop`]) is about, which decides what the spool replayer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// X-Ray refused what the batch contains (400 `InvalidRequestException`,
    /// `ValidationException`, `SerializationException`, 413): some document in it will never
    /// pass, and the others are worth sending without it.
    Content,
    /// Anything else: the identity, its policy, the endpoint. An operator can fix it, and
    /// then every document passes, so none is given up.
    Access,
}

/// Sorts a refusal. Only the error types that name the request's content count as
/// [`Refusal::Content`]; an unknown 4xx is [`Refusal::Access`], the kind that loses nothing.
pub fn refusal(error: &BackendError) -> Refusal {
    match error {
        BackendError::Http {
            status, error_type, ..
        } => {
            let content_type = matches!(
                error_type.as_deref(),
                Some("InvalidRequestException" | "ValidationException" | "SerializationException")
            );
            if (*status == 400 && content_type) || *status == 413 {
                Refusal::Content
            } else {
                Refusal::Access
            }
        }
        _ => Refusal::Access,
    }
}

/// X-Ray refused a signature because the relay's clock and X-Ray's disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSkew {
    /// The relay's clock minus X-Ray's, in seconds, when X-Ray's message says (it gives both
    /// times in "Signature expired" and "Signature not yet current").
    pub seconds: Option<i64>,
}

/// The clock skew `error` reports, if it is one: a jump of the host's clock, or a clock
/// that drifted. The next try, signed afresh, succeeds once the clock is right again.
pub fn clock_skew(error: &BackendError) -> Option<ClockSkew> {
    let BackendError::Http {
        status,
        error_type,
        message,
        ..
    } = error
    else {
        return None;
    };
    let kind = error_type.as_deref().unwrap_or("");
    let skewed = matches!(kind, "RequestTimeTooSkewed" | "RequestExpired")
        || message.contains("Signature expired")
        || message.contains("Signature not yet current");
    (skewed && (400..500).contains(status)).then(|| ClockSkew {
        seconds: reported_skew(message),
    })
}

/// `Signature expired: 20161124T060706Z is now earlier than 20161124T061206Z
/// (20161124T061706Z - 5 min.)`: the first time is the request's, the one in parentheses
/// X-Ray's.
fn reported_skew(message: &str) -> Option<i64> {
    let seconds = |word: &str| -> Option<i64> {
        let t = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if t.len() != 16 {
            return None;
        }
        let text = format!(
            "{}-{}-{}T{}:{}:{}Z",
            t.get(0..4)?,
            t.get(4..6)?,
            t.get(6..8)?,
            t.get(9..11)?,
            t.get(11..13)?,
            t.get(13..15)?
        );
        let time = parse_rfc3339(&text).ok()?;
        let since = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_secs()).ok()
    };
    let (_, rest) = message.split_once(':')?;
    let request = seconds(rest.split_whitespace().next()?)?;
    let (_, server) = rest.split_once('(')?;
    let server = seconds(server.split_whitespace().next()?)?;
    Some(request - server)
}

/// Set while the clock is known to be off, so that it is said once, not per batch.
static SKEW_REPORTED: AtomicBool = AtomicBool::new(false);

/// Logs a clock skew once (until [`clock_agrees`]), with the skew X-Ray reports.
pub fn report_clock_skew(skew: ClockSkew, error: &BackendError) {
    if SKEW_REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let by = match skew.seconds {
        Some(s) if s >= 0 => format!("{s} s ahead of X-Ray's"),
        Some(s) => format!("{} s behind X-Ray's", -s),
        None => "off (X-Ray did not say by how much)".to_owned(),
    };
    log::warn!(
        "X-Ray refused the signature because this host's clock is {by}; retrying until it agrees (fix the clock: NTP, chrony): {error}"
    );
}

/// X-Ray accepted a signature: a later skew is news again.
pub fn clock_agrees() {
    SKEW_REPORTED.store(false, Ordering::Relaxed);
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
            request_id: String::new(),
            undecodable: None,
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
    fn only_refusals_of_the_content_give_documents_up() {
        for error in [
            http(400, Some("InvalidRequestException"), "Invalid segment"),
            http(400, Some("ValidationException"), ""),
            http(400, Some("SerializationException"), ""),
            http(413, None, ""),
        ] {
            assert_eq!(refusal(&error), Refusal::Content, "{error}");
        }
        for error in [
            http(403, Some("AccessDeniedException"), "not allowed"),
            http(400, Some("UnrecognizedClientException"), "invalid token"),
            http(403, Some("InvalidSignatureException"), "mismatch"),
            http(400, None, ""),
            http(404, None, ""),
        ] {
            assert_eq!(refusal(&error), Refusal::Access, "{error}");
        }
    }

    #[test]
    fn a_clock_off_either_way_is_retried_with_the_skew_x_ray_reports() {
        let ahead = http(
            403,
            Some("InvalidSignatureException"),
            "Signature not yet current: 20261204T171000Z is still later than 20261204T170500Z (20261204T170000Z + 5 min.)",
        );
        assert_eq!(verdict(&ahead), Verdict::Retry);
        assert_eq!(clock_skew(&ahead), Some(ClockSkew { seconds: Some(600) }));
        let behind = http(
            403,
            Some("InvalidSignatureException"),
            "Signature expired: 20161124T060706Z is now earlier than 20161124T061206Z (20161124T061706Z - 5 min.)",
        );
        assert_eq!(
            clock_skew(&behind),
            Some(ClockSkew {
                seconds: Some(-600)
            })
        );
        let skewed = http(
            403,
            Some("RequestTimeTooSkewed"),
            "The difference between the request time and the current time is too large.",
        );
        assert_eq!(verdict(&skewed), Verdict::Retry);
        assert_eq!(clock_skew(&skewed), Some(ClockSkew { seconds: None }));
        // Odd text in place of the times: still a skew, just without a figure.
        let odd = http(403, None, "Signature expired: soon (later)");
        assert_eq!(clock_skew(&odd), Some(ClockSkew { seconds: None }));
        assert_eq!(
            clock_skew(&http(403, Some("AccessDeniedException"), "no")),
            None
        );
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
