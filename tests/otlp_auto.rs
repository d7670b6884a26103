//! `OTLP.Destination: auto` (the default) through the real binary, against the mock X-Ray in
//! both account states: `GetTraceSegmentDestination` answering CloudWatchLogs or XRay, and
//! refused (AccessDenied) with the OTLP endpoint answering the Transaction Search 400, where
//! the relay switches to segments and loses nothing.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{MockXRay, Relay, RelayOptions, http_get, metric};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

/// X-Ray's answer on the OTLP endpoint where the account has no Transaction Search.
const REFUSAL: &str =
    "The OTLP API is supported with CloudWatch Logs as a Trace Segment Destination.";

/// `count` SERVER spans, ids `{first:016x}` on.
fn request_json(first: usize, count: usize) -> String {
    let spans: Vec<String> = (first..first + count)
        .map(|id| {
            format!(
                r#"{{"traceId":"{TRACE}","spanId":"{id:016x}","name":"s{id}","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shop"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
}

/// A google.rpc.Status (protobuf) with code 3 and `message`, as the OTLP endpoint answers.
fn rpc_status(message: &str) -> String {
    let mut body = vec![0x08, 3, 0x12, message.len() as u8];
    body.extend_from_slice(message.as_bytes());
    String::from_utf8(body).unwrap()
}

/// A mock X-Ray answering `GetTraceSegmentDestination` with `destination` and the OTLP
/// endpoint with `otlp`; everything else is accepted.
fn mock(destination: (u16, String), otlp: (u16, String)) -> MockXRay {
    MockXRay::with_responder(Arc::new(move |request| match request.path.as_str() {
        "/GetTraceSegmentDestination" => destination.clone(),
        "/v1/traces" => otlp.clone(),
        _ => (200, "{}".into()),
    }))
}

fn start(xray: &MockXRay) -> (Relay, SocketAddr) {
    let port = support::free_port();
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options
        .args
        .extend(["--otlp-address".into(), format!("127.0.0.1:{port}")]);
    let relay = Relay::start(options);
    relay.wait_for_log("Receiving OpenTelemetry traces", Duration::from_secs(10));
    (relay, format!("127.0.0.1:{port}").parse().unwrap())
}

/// The span ids in documents X-Ray accepted through PutTraceSegments.
fn segment_ids(xray: &MockXRay) -> BTreeSet<String> {
    xray.documents()
        .iter()
        .map(|d| {
            let document: serde_json::Value = serde_json::from_str(d).unwrap();
            document["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn otlp_calls(xray: &MockXRay) -> usize {
    xray.requests()
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .count()
}

/// The `[Info]` lines saying what `auto` chose.
fn choices(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("[Info]") && l.contains("OTLP.Destination auto"))
        .collect()
}

#[test]
fn cloud_watch_logs_keeps_spans_on_the_otlp_endpoint() {
    let xray = mock(
        (
            200,
            r#"{"Destination":"CloudWatchLogs","Status":"ACTIVE"}"#.into(),
        ),
        (200, String::new()),
    );
    let (relay, otlp) = start(&xray);
    let log = relay.wait_for_log(
        "GetTraceSegmentDestination says CloudWatchLogs (ACTIVE)",
        Duration::from_secs(10),
    );
    assert_eq!(choices(&log).len(), 1, "{log}");
    let asked = xray
        .requests()
        .into_iter()
        .find(|r| r.path == "/GetTraceSegmentDestination")
        .unwrap();
    assert_eq!(asked.method, "POST");
    let authorization = asked.header("authorization").unwrap_or_default();
    assert!(
        authorization.contains("/us-east-1/xray/aws4_request"),
        "{authorization}"
    );
    assert_eq!(support::post_otlp_json(otlp, &request_json(1, 3)), 200);
    // The mock sees the call before the relay has read the answer and counted the spans.
    wait_for("the 3 spans forwarded", || {
        let metrics = http_get(relay.tcp, "/metrics").text();
        metric(&metrics, "xray_relay_otlp_spans_forwarded_total") == 3.0
    });
    assert_eq!(otlp_calls(&xray), 1);
    assert!(segment_ids(&xray).is_empty());
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_otlp_destination{destination=\"otlp\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_spans_forwarded_total"),
        3.0
    );
}

#[test]
fn x_ray_as_destination_translates_spans_to_segments() {
    let xray = mock(
        (200, r#"{"Destination":"XRay","Status":"ACTIVE"}"#.into()),
        (400, rpc_status(REFUSAL)),
    );
    let (relay, otlp) = start(&xray);
    let log = relay.wait_for_log(
        "translated to X-Ray segments: GetTraceSegmentDestination says XRay (ACTIVE)",
        Duration::from_secs(10),
    );
    assert_eq!(choices(&log).len(), 1, "{log}");
    assert_eq!(support::post_otlp_json(otlp, &request_json(1, 3)), 200);
    wait_for("3 segments", || segment_ids(&xray).len() == 3);
    assert_eq!(otlp_calls(&xray), 0);
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_otlp_destination{destination=\"segments\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_destination_switches_total"),
        1.0
    );
}

#[test]
fn refused_check_then_the_transaction_search_400_switches_to_segments_losing_nothing() {
    let denied = r#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/relay is not authorized to perform: xray:GetTraceSegmentDestination"}"#;
    let xray = mock((403, denied.into()), (400, rpc_status(REFUSAL)));
    let (relay, otlp) = start(&xray);
    relay.wait_for_log(
        "GetTraceSegmentDestination failed: X-Ray answered HTTP 403 AccessDeniedException",
        Duration::from_secs(10),
    );
    // Four requests at once: the first chunks are refused on the OTLP endpoint (one call or
    // two, the forwarders race), then every span goes as a segment.
    let posts: Vec<_> = (0..4)
        .map(|n| {
            std::thread::spawn(move || support::post_otlp_json(otlp, &request_json(1 + n * 5, 5)))
        })
        .collect();
    for post in posts {
        assert_eq!(post.join().unwrap(), 200);
    }
    wait_for("20 segments", || segment_ids(&xray).len() == 20);
    let expected: BTreeSet<String> = (1..=20).map(|id| format!("{id:016x}")).collect();
    assert_eq!(segment_ids(&xray), expected);
    assert_eq!(xray.documents().len(), 20, "nothing twice");
    assert!((1..=2).contains(&otlp_calls(&xray)));
    let log = relay.log_text();
    let choices = choices(&log);
    assert_eq!(choices.len(), 2, "{log}");
    assert!(
        choices[1].contains("X-Ray's OTLP endpoint refused them") && choices[1].contains(REFUSAL),
        "{log}"
    );
    // Translated, not refused: no error line for the 400.
    assert!(!log.contains("[Error]"), "{log}");
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_spans_forwarded_total"),
        20.0
    );
    assert_eq!(metric(&metrics, "xray_relay_otlp_spans_refused_total"), 0.0);
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_otlp_destination{destination=\"segments\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_destination_switches_total"),
        1.0
    );
}
