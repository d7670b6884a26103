//! `OTLP.Destination: auto` (the default): spans go to X-Ray's OTLP endpoint where the
//! account's trace segment destination is CloudWatch Logs (Transaction Search on), else they
//! are translated to segments.
//!
//! Spans start on the OTLP path so start-up never waits for X-Ray: a thread asks
//! `GetTraceSegmentDestination` and settles the choice when it answers. Where it cannot (the
//! daemon's usual IAM policy does not allow that call; no network), the OTLP endpoint tells:
//! its 400 "The OTLP API is supported with CloudWatch Logs as a Trace Segment Destination"
//! switches every later chunk to segments, and the refused chunk is translated instead of
//! dropped. Segments are the safe side, so the choice only ever moves that way:
//! `PutTraceSegments` works with either destination, the OTLP endpoint only once CloudWatch
//! Logs is `ACTIVE`.

use super::OtlpStats;
use crate::aws::BackendError;
use crate::retry::{self, Backoff, Verdict};
use crate::sink::PostJson;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `OTLP.Destination` / `--otlp-destination`, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Decide from the account (the default).
    Auto,
    /// X-Ray's OTLP endpoint (offline: OTLP JSON lines), whatever it answers.
    Otlp,
    /// Translated to segments.
    Segments,
}

impl Choice {
    /// Reads the configured value (any case; unset or empty is `auto`).
    pub fn parse(configured: Option<&str>) -> Result<Choice, String> {
        let value = configured.unwrap_or("").trim();
        [
            ("", Choice::Auto),
            ("auto", Choice::Auto),
            ("otlp", Choice::Otlp),
            ("segments", Choice::Segments),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|(_, choice)| choice)
        .ok_or_else(|| {
            format!(
                "OTLP.Destination {value:?} is not known: the destinations are auto, otlp and segments"
            )
        })
    }
}

/// `Destination`'s value in [`OtlpStats::destination`]: spans go to the OTLP endpoint (or
/// the local sink as OTLP JSON).
pub const OTLP: u8 = 0;
/// `Destination`'s value in [`OtlpStats::destination`]: spans become segments.
pub const SEGMENTS: u8 = 1;

/// The words of X-Ray's 400 when the account's destination is not CloudWatch Logs.
const REFUSAL: &str = "supported with cloudwatch logs as a trace segment destination";

/// Calls made to `GetTraceSegmentDestination` when the failures are transient.
const PROBE_ATTEMPTS: u32 = 3;

/// Whether `error` is X-Ray's OTLP endpoint refusing for want of Transaction Search.
pub fn is_refusal(error: &BackendError) -> bool {
    matches!(error, BackendError::Http { status: 400, message, .. }
        if message.to_ascii_lowercase().contains(REFUSAL))
}

/// Whether spans go to segments now.
pub fn to_segments(stats: &OtlpStats) -> bool {
    stats.destination.load(Ordering::Relaxed) == SEGMENTS
}

/// Moves to segments, saying `why` in one line; `false` when an earlier call already did.
pub fn switch(stats: &OtlpStats, why: &str) -> bool {
    let switched = stats
        .destination
        .compare_exchange(OTLP, SEGMENTS, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok();
    if switched {
        OtlpStats::add(&stats.destination_switches, 1);
        log::info!("OTLP.Destination auto: spans are translated to X-Ray segments: {why}");
    } else {
        log::debug!("OTLP.Destination auto: already sending segments ({why})");
    }
    switched
}

/// What a `GetTraceSegmentDestination` answer means: `Ok(true)` for segments, `Ok(false)`
/// for OTLP (CloudWatch Logs, `ACTIVE`), with the answer in words; `Err` for an answer that
/// says neither.
pub fn decide(answer: &[u8]) -> Result<(bool, String), String> {
    let value: serde_json::Value =
        serde_json::from_slice(answer).map_err(|err| format!("its answer is not JSON: {err}"))?;
    let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    let (Some(destination), status) = (field("Destination"), field("Status").unwrap_or("")) else {
        return Err(format!("its answer names no Destination: {value}"));
    };
    let said = format!("GetTraceSegmentDestination says {destination} ({status})");
    match destination {
        "CloudWatchLogs" if status == "ACTIVE" => Ok((false, said)),
        // PENDING: the OTLP endpoint may refuse until it is ACTIVE; segments work meanwhile.
        "CloudWatchLogs" | "XRay" => Ok((true, said)),
        _ => Err(format!("{said}, a destination not known here")),
    }
}

/// Asks `client` for the account's destination (retrying transient failures a little), then
/// settles the choice in `stats` with one log line. Runs on its own thread.
pub fn spawn_probe(client: Arc<dyn PostJson>, stats: Arc<OtlpStats>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("otlp-destination".into())
        .spawn(move || settle(probe(&*client), &stats))
        .map(drop)
}

fn probe(client: &dyn PostJson) -> Result<Vec<u8>, BackendError> {
    let mut backoff = Backoff::new(retry::seed());
    loop {
        let answer = client.post_json("/GetTraceSegmentDestination", b"{}");
        match &answer {
            Err(error)
                if retry::verdict(error) == Verdict::Retry
                    && backoff.attempts() + 1 < PROBE_ATTEMPTS =>
            {
                log::debug!("GetTraceSegmentDestination failed ({error}); trying again");
                std::thread::sleep(backoff.next_delay());
            }
            _ => return answer,
        }
    }
}

/// Settles the choice from `GetTraceSegmentDestination`'s `answer`.
pub fn settle(answer: Result<Vec<u8>, BackendError>, stats: &OtlpStats) {
    let failed = match answer.map_err(|e| e.to_string()).and_then(|a| decide(&a)) {
        Ok((true, said)) => {
            switch(stats, &said);
            return;
        }
        Ok((false, said)) if !to_segments(stats) => {
            log::info!("OTLP.Destination auto: spans go to X-Ray's OTLP endpoint: {said}");
            return;
        }
        Ok((false, said)) => {
            log::debug!("OTLP.Destination auto: {said}, but the OTLP endpoint refused spans");
            return;
        }
        Err(why) => why,
    };
    let level = if to_segments(stats) {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    log::log!(
        level,
        "OTLP.Destination auto: spans go to X-Ray's OTLP endpoint, and to segments if it answers that it needs Transaction Search (GetTraceSegmentDestination failed: {failed})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, message: &str) -> BackendError {
        BackendError::Http {
            status,
            error_type: None,
            message: message.into(),
            request_id: String::new(),
            undecodable: None,
        }
    }

    #[test]
    fn the_choice_takes_any_case_and_defaults_to_auto() {
        assert_eq!(Choice::parse(None), Ok(Choice::Auto));
        assert_eq!(Choice::parse(Some("")), Ok(Choice::Auto));
        assert_eq!(Choice::parse(Some("AUTO")), Ok(Choice::Auto));
        assert_eq!(Choice::parse(Some("Otlp")), Ok(Choice::Otlp));
        assert_eq!(Choice::parse(Some("segments")), Ok(Choice::Segments));
        let error = Choice::parse(Some("xray")).unwrap_err();
        assert!(
            error.contains("\"xray\"") && error.contains("auto, otlp and segments"),
            "{error}"
        );
    }

    #[test]
    fn only_cloud_watch_logs_active_means_otlp() {
        let answer = |d: &str, s: &str| {
            decide(format!(r#"{{"Destination":"{d}","Status":"{s}"}}"#).as_bytes())
        };
        assert_eq!(
            answer("CloudWatchLogs", "ACTIVE"),
            Ok((
                false,
                "GetTraceSegmentDestination says CloudWatchLogs (ACTIVE)".into()
            ))
        );
        assert_eq!(answer("CloudWatchLogs", "PENDING").map(|a| a.0), Ok(true));
        assert_eq!(answer("XRay", "ACTIVE").map(|a| a.0), Ok(true));
        assert_eq!(answer("XRay", "PENDING").map(|a| a.0), Ok(true));
        assert!(answer("Kinesis", "ACTIVE").is_err());
        assert!(decide(b"{}").is_err());
        assert!(decide(b"<html>").is_err());
    }

    #[test]
    fn the_transaction_search_400_is_recognised_and_nothing_else() {
        let words =
            "The OTLP API is supported with CloudWatch Logs as a Trace Segment Destination.";
        assert!(is_refusal(&http(400, words)));
        assert!(!is_refusal(&http(403, words)));
        assert!(!is_refusal(&http(400, "Transaction Search is not enabled")));
    }

    #[test]
    fn answers_and_failures_settle_the_choice_once_and_only_towards_segments() {
        let stats = OtlpStats::default();
        settle(Err(http(403, "AccessDeniedException")), &stats);
        assert!(!to_segments(&stats));
        let cloud_watch = br#"{"Destination":"CloudWatchLogs","Status":"ACTIVE"}"#;
        settle(Ok(cloud_watch.to_vec()), &stats);
        assert!(!to_segments(&stats));
        settle(
            Ok(br#"{"Destination":"XRay","Status":"ACTIVE"}"#.to_vec()),
            &stats,
        );
        assert!(to_segments(&stats));
        assert!(!switch(&stats, "again"));
        settle(Ok(cloud_watch.to_vec()), &stats);
        assert!(to_segments(&stats));
        assert_eq!(stats.destination_switches.load(Ordering::Relaxed), 1);
    }
}
