//! What the relay answers itself: `GET /healthz`, and in offline mode the sampling APIs, with
//! the SDKs' own default rule, so SDKs work with no AWS at all.

use super::response::Answer;
use crate::pool::Fill;
use crate::stats::{Snapshot, UploadHealth};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The default rule every X-Ray SDK falls back to: the first request each second, then 5 %.
pub const DEFAULT_RULE_NAME: &str = "Default";
/// Requests per second sampled before the fixed rate applies.
pub const DEFAULT_RESERVOIR: u64 = 1;
/// The share of further requests sampled.
pub const DEFAULT_FIXED_RATE: f64 = 0.05;
/// Seconds between an SDK's `SamplingTargets` calls, as X-Ray answers.
pub const TARGET_INTERVAL_SECONDS: u64 = 10;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`.
    Healthz,
    /// `GET /metrics`.
    Metrics,
    /// `/healthz` or `/metrics` with another method.
    NotAllowed,
    /// Offline: `GetSamplingRules` answered with the default rule.
    SamplingRules,
    /// Offline: `SamplingTargets` answered for the default rule.
    SamplingTargets,
    /// Offline: any other X-Ray API, which has nowhere to go.
    Unavailable,
    /// To X-Ray.
    Forward,
}

/// Routes by method and path (without the query); `offline` when there is no X-Ray.
pub fn route(method: &str, path: &str, offline: bool) -> Route {
    match (path, method) {
        ("/healthz", "GET") => Route::Healthz,
        ("/metrics", "GET") => Route::Metrics,
        ("/healthz" | "/metrics", _) => Route::NotAllowed,
        _ if !offline => Route::Forward,
        ("/GetSamplingRules", "POST") => Route::SamplingRules,
        ("/SamplingTargets", "POST") => Route::SamplingTargets,
        _ => Route::Unavailable,
    }
}

/// The X-Ray APIs an SDK calls through the proxy: `GetSamplingRules`, `GetSamplingTargets`
/// and `GetSamplingStatisticSummaries`. With `Proxy.SamplingOnly`, the only ones forwarded.
pub fn is_sampling_api(method: &str, path: &str) -> bool {
    method == "POST"
        && matches!(
            path,
            "/GetSamplingRules" | "/SamplingTargets" | "/SamplingStatisticSummaries"
        )
}

/// When `/healthz` says the relay does not work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// Uploads failing without a success for this long.
    pub fail_after: Duration,
    /// The buffer's fill ratio (0 to 1) at which it counts as nearly full.
    pub nearly_full: f64,
}

/// What `/healthz` looks at.
#[derive(Debug, Clone)]
pub struct HealthInput<'a> {
    /// Since the relay started.
    pub uptime: Duration,
    /// The counters.
    pub counts: &'a Snapshot,
    /// The buffer.
    pub fill: &'a Fill,
    /// The last upload outcomes.
    pub uploads: &'a UploadHealth,
}

/// `/healthz`: 200 while the relay works, 503 when uploads have failed continuously for
/// `policy.fail_after` or the buffer is nearly full; a small JSON body either way.
///
/// "Continuously" means failures without a success for that long, the last of them less
/// than that long ago: one failure followed by silence says nothing about the backend now.
pub fn healthz(policy: &HealthPolicy, input: &HealthInput<'_>) -> Answer {
    let mut problems = Vec::new();
    if let (Some(failing), Some(age)) = (input.uploads.failing_for, input.uploads.last_error_age)
        && failing >= policy.fail_after
        && age <= policy.fail_after
    {
        problems.push(format!("uploads have failed for {} s", failing.as_secs()));
    }
    let ratio = input.fill.ratio();
    if ratio >= policy.nearly_full {
        problems.push(format!("the buffer is {:.0} % full", ratio * 100.0));
    }
    let healthy = problems.is_empty();
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "problems": problems,
        "uptime_seconds": round3(input.uptime.as_secs_f64()),
        "segments": {
            "received": input.counts.received,
            "sent": input.counts.sent,
            "rejected": input.counts.rejected,
            "spillover": input.counts.spillover,
            "dropped": input.counts.dropped,
        },
        "buffer": {
            "segments": input.fill.segments,
            "used_bytes": input.fill.used_bytes,
            "capacity_bytes": input.fill.capacity_bytes,
            "fill_ratio": round3(ratio),
        },
        "last_success": input.uploads.last_success.map(epoch_seconds),
        "last_error": input.uploads.last_error.as_ref().map(|(time, message)| json!({
            "time": epoch_seconds(*time),
            "message": message,
        })),
        "uploads_failing_for_seconds": input.uploads.failing_for.map(|d| round3(d.as_secs_f64())),
    });
    Answer::json(if healthy { 200 } else { 503 }, body.to_string())
        .with_header("Cache-Control", "no-store")
}

/// Offline `GetSamplingRules`: the default rule alone, shaped like X-Ray's answer.
/// `since` is when the rule came to be (the relay's start).
pub fn sampling_rules(since: SystemTime) -> Answer {
    let at = epoch_seconds(since);
    let body = json!({
        "SamplingRuleRecords": [{
            "SamplingRule": {
                "RuleName": DEFAULT_RULE_NAME,
                "RuleARN": "arn:aws:xray:local:000000000000:sampling-rule/Default",
                "ResourceARN": "*",
                "Priority": 10000,
                "FixedRate": DEFAULT_FIXED_RATE,
                "ReservoirSize": DEFAULT_RESERVOIR,
                "ServiceName": "*",
                "ServiceType": "*",
                "Host": "*",
                "HTTPMethod": "*",
                "URLPath": "*",
                "Version": 1,
                "Attributes": {},
            },
            "CreatedAt": at,
            "ModifiedAt": at,
        }],
    });
    Answer::json(200, body.to_string())
}

/// Offline `SamplingTargets`: a target for each statistics document about the default rule
/// (the whole reservoir: there is no fleet to share it with), and the others unprocessed.
pub fn sampling_targets(request: &[u8], since: SystemTime, now: SystemTime) -> Answer {
    let parsed: Option<Value> = serde_json::from_slice(request).ok();
    let Some(documents) = parsed
        .as_ref()
        .and_then(|body| body.get("SamplingStatisticsDocuments"))
        .and_then(Value::as_array)
    else {
        return Answer::error(
            400,
            "InvalidRequestException",
            "expected a JSON body with SamplingStatisticsDocuments",
        );
    };
    let ttl = epoch_seconds(now) + 2.0 * TARGET_INTERVAL_SECONDS as f64;
    let mut targets = Vec::new();
    let mut unprocessed = Vec::new();
    for document in documents {
        let name = document
            .get("RuleName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if name == DEFAULT_RULE_NAME {
            if !targets.is_empty() {
                continue;
            }
            targets.push(json!({
                "RuleName": DEFAULT_RULE_NAME,
                "FixedRate": DEFAULT_FIXED_RATE,
                "ReservoirQuota": DEFAULT_RESERVOIR,
                "ReservoirQuotaTTL": ttl,
                "Interval": TARGET_INTERVAL_SECONDS,
            }));
        } else {
            unprocessed.push(json!({
                "RuleName": name,
                "ErrorCode": "400",
                "Message": "offline mode knows only the Default rule",
            }));
        }
    }
    let body = json!({
        "SamplingTargetDocuments": targets,
        "LastRuleModification": epoch_seconds(since),
        "UnprocessedStatistics": unprocessed,
    });
    Answer::json(200, body.to_string())
}

fn epoch_seconds(time: SystemTime) -> f64 {
    round3(
        time.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default(),
    )
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: HealthPolicy = HealthPolicy {
        fail_after: Duration::from_secs(60),
        nearly_full: 0.95,
    };

    fn fill(segments: usize, used_bytes: usize) -> Fill {
        Fill {
            segments,
            used_bytes,
            capacity_bytes: 1000,
            capacity_segments: 100,
        }
    }

    const AT: SystemTime = SystemTime::UNIX_EPOCH;

    fn check(uploads: &UploadHealth, fill: &Fill) -> (u16, Value) {
        let counts = Snapshot {
            received: 7,
            sent: 5,
            ..Snapshot::default()
        };
        let answer = healthz(
            &POLICY,
            &HealthInput {
                uptime: Duration::from_millis(1500),
                counts: &counts,
                fill,
                uploads,
            },
        );
        (answer.status, serde_json::from_slice(&answer.body).unwrap())
    }

    #[test]
    fn healthy_until_uploads_fail_long_enough_or_the_buffer_fills() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut uploads = UploadHealth {
            last_success: Some(at),
            last_error: Some((at, "X-Ray answered HTTP 500".into())),
            failing_for: Some(Duration::from_secs(59)),
            last_error_age: Some(Duration::from_secs(1)),
        };
        let (status, body) = check(&uploads, &fill(3, 100));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["uptime_seconds"], 1.5);
        assert_eq!(body["segments"]["received"], 7);
        assert_eq!(body["segments"]["sent"], 5);
        assert_eq!(body["buffer"]["fill_ratio"], 0.1);
        assert_eq!(body["last_success"], 1_700_000_000.0);
        assert_eq!(body["last_error"]["message"], "X-Ray answered HTTP 500");

        uploads.failing_for = Some(Duration::from_secs(60));
        let (status, body) = check(&uploads, &fill(3, 100));
        assert_eq!(status, 503);
        assert_eq!(body["problems"][0], "uploads have failed for 60 s");

        let (status, body) = check(&UploadHealth::default(), &fill(95, 100));
        assert_eq!(status, 503);
        assert_eq!(body["problems"][0], "the buffer is 95 % full");
        assert_eq!(body["last_success"], Value::Null);
    }

    #[test]
    fn one_old_failure_followed_by_silence_is_not_a_failing_backend() {
        let failed_at = AT + Duration::from_secs(1_700_000_000);
        let mut uploads = UploadHealth {
            last_success: None,
            last_error: Some((failed_at, "timeout".into())),
            failing_for: Some(Duration::from_secs(600)),
            last_error_age: Some(Duration::from_secs(60)),
        };
        let (status, _) = check(&uploads, &fill(0, 0));
        assert_eq!(status, 503);
        uploads.last_error_age = Some(Duration::from_secs(61));
        let (status, body) = check(&uploads, &fill(0, 0));
        assert_eq!(status, 200, "{body}");
    }

    #[test]
    fn a_wall_clock_jump_does_not_change_the_verdict() {
        // The wall clock jumped: the last failure's wall time is a day in the future or a day
        // in the past. Only the monotonic age counts: a second ago, so the relay is failing.
        let now = SystemTime::now();
        for failed_at in [
            now + Duration::from_secs(86_400),
            now - Duration::from_secs(86_400),
        ] {
            let uploads = UploadHealth {
                last_success: None,
                last_error: Some((failed_at, "timeout".into())),
                failing_for: Some(Duration::from_secs(600)),
                last_error_age: Some(Duration::from_secs(1)),
            };
            let (status, body) = check(&uploads, &fill(0, 0));
            assert_eq!(status, 503, "{body}");
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/healthz", false), Route::Healthz);
        assert_eq!(route("GET", "/metrics", true), Route::Metrics);
        assert_eq!(route("POST", "/healthz", false), Route::NotAllowed);
        assert_eq!(route("HEAD", "/metrics", false), Route::NotAllowed);
        assert_eq!(route("POST", "/GetSamplingRules", false), Route::Forward);
        assert_eq!(route("GET", "/GetSamplingRules", false), Route::Forward);
        assert_eq!(
            route("POST", "/GetSamplingRules", true),
            Route::SamplingRules
        );
        assert_eq!(
            route("POST", "/SamplingTargets", true),
            Route::SamplingTargets
        );
        assert_eq!(route("POST", "/TraceSegments", true), Route::Unavailable);
    }

    #[test]
    fn the_offline_rule_is_the_sdks_default() {
        let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let rules: Value = serde_json::from_slice(&sampling_rules(since).body).unwrap();
        let record = &rules["SamplingRuleRecords"][0];
        let rule = &record["SamplingRule"];
        assert_eq!(rule["RuleName"], "Default");
        assert_eq!(rule["FixedRate"], 0.05);
        assert_eq!(rule["ReservoirSize"], 1);
        assert_eq!(rule["Priority"], 10000);
        assert_eq!(rule["Version"], 1);
        assert_eq!(rule["Attributes"], json!({}));
        for wildcard in [
            "ResourceARN",
            "ServiceName",
            "ServiceType",
            "Host",
            "HTTPMethod",
            "URLPath",
        ] {
            assert_eq!(rule[wildcard], "*", "{wildcard}");
        }
        assert_eq!(record["ModifiedAt"], 1_700_000_000.0);
    }

    #[test]
    fn offline_targets_cover_the_default_rule_only() {
        let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = since + Duration::from_secs(100);
        let request = br#"{"SamplingStatisticsDocuments":[
            {"RuleName":"Default","ClientID":"a","Timestamp":1,"RequestCount":3,"SampledCount":1,"BorrowCount":0},
            {"RuleName":"Other","ClientID":"a","Timestamp":1,"RequestCount":1,"SampledCount":0,"BorrowCount":0}]}"#;
        let answer = sampling_targets(request, since, now);
        assert_eq!(answer.status, 200);
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            body["SamplingTargetDocuments"],
            json!([{"RuleName":"Default","FixedRate":0.05,"ReservoirQuota":1,
                    "ReservoirQuotaTTL":1_700_000_120.0,"Interval":10}])
        );
        assert_eq!(body["LastRuleModification"], 1_700_000_000.0);
        assert_eq!(body["UnprocessedStatistics"][0]["RuleName"], "Other");
        assert_eq!(sampling_targets(b"nope", since, now).status, 400);
        assert_eq!(sampling_targets(b"{}", since, now).status, 400);
    }
}
