//! `OTLP.Destination: segments` through the real binary: spans become X-Ray documents in
//! the segment pool, uploaded with PutTraceSegments beside UDP segments, or written to the
//! local sink offline.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{MockXRay, Relay, RelayOptions, http_get, metric};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

/// A SERVER span and its CLIENT child, the child with an HTTP call that failed with 503.
fn request_json() -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},"scopeSpans":[{{"scope":{{"name":"t"}},"spans":[
        {{"traceId":"{TRACE}","spanId":"00000000000000a1","name":"GET /cart","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000250000000","attributes":[{{"key":"http.request.method","value":{{"stringValue":"GET"}}}},{{"key":"user.tier","value":{{"stringValue":"gold"}}}}]}},
        {{"traceId":"{TRACE}","spanId":"00000000000000a2","parentSpanId":"00000000000000a1","name":"GET","kind":3,"startTimeUnixNano":"1700000000100000000","endTimeUnixNano":"1700000000200000000","attributes":[{{"key":"http.request.method","value":{{"stringValue":"GET"}}}},{{"key":"url.full","value":{{"stringValue":"https://pay.example/charge"}}}},{{"key":"server.address","value":{{"stringValue":"pay.example"}}}},{{"key":"http.response.status_code","value":{{"intValue":"503"}}}}]}}
        ]}}]}}]}}"#
    )
}

fn by_id(documents: &[String], id: &str) -> serde_json::Value {
    documents
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no document {id} in {documents:?}"))
}

#[test]
fn spans_go_to_put_trace_segments_with_udp_segments() {
    let xray = MockXRay::start();
    let port = support::free_port();
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options
        .config
        .push_str("OTLP:\n  IndexedAttributes: [user.tier]\n");
    options.args.extend([
        "--otlp-address".into(),
        format!("127.0.0.1:{port}"),
        "--otlp-destination".into(),
        "segments".into(),
    ]);
    let relay = Relay::start(options);
    relay.wait_for_log("Receiving OpenTelemetry traces", Duration::from_secs(10));
    relay.send_segment(&support::segment(1));
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(support::post_otlp_json(address, &request_json()), 200);
    let documents = xray.wait_for_documents(3, Duration::from_secs(10));
    assert_eq!(documents.len(), 3, "{documents:?}");
    let segment = by_id(&documents, "00000000000000a1");
    assert_eq!(segment["trace_id"], "1-5b8efff7-98038103d269b633813fc60c");
    assert_eq!(segment["name"], "checkout");
    assert_eq!(segment["start_time"], 1_700_000_000.0);
    assert_eq!(segment["end_time"], 1_700_000_000.25);
    assert_eq!(segment["annotations"]["user_tier"], "gold");
    let subsegment = by_id(&documents, "00000000000000a2");
    assert_eq!(subsegment["type"], "subsegment");
    assert_eq!(subsegment["parent_id"], "00000000000000a1");
    assert_eq!(subsegment["namespace"], "remote");
    assert_eq!(subsegment["name"], "pay.example");
    assert_eq!(subsegment["fault"], true);
    assert_eq!(
        subsegment["http"]["request"]["url"],
        "https://pay.example/charge"
    );
    // Nothing went to the OTLP endpoint.
    assert!(xray.requests().iter().all(|r| r.path != "/v1/traces"));
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_spans_forwarded_total"),
        2.0
    );
    assert_eq!(metric(&metrics, "xray_relay_otlp_metadata_cut_total"), 0.0);
}

/// With no destination configured (auto), as with `segments`: no AWS account needed to see
/// what X-Ray would get.
#[test]
fn offline_spans_are_written_as_x_ray_segments() {
    let dir = support::TempDir::new("otlp-segments-sink");
    let sink = dir.path("segments.jsonl");
    let port = support::free_port();
    let mut options = RelayOptions::uploading_to("http://127.0.0.1:9");
    options.args.extend([
        "--local-sink".into(),
        sink.to_string_lossy().into_owned(),
        "--otlp-address".into(),
        format!("127.0.0.1:{port}"),
    ]);
    let relay = Relay::start(options);
    let log = relay.wait_for_log("Receiving OpenTelemetry traces", Duration::from_secs(10));
    assert!(
        log.contains("[Info] OTLP.Destination auto: spans are written to the local sink as X-Ray segments (offline"),
        "{log}"
    );
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(support::post_otlp_json(address, &request_json()), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while support::read(&sink).lines().count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the sink has {:?}",
            support::read(&sink)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines: Vec<String> = support::read(&sink).lines().map(str::to_owned).collect();
    assert_eq!(by_id(&lines, "00000000000000a1")["name"], "checkout");
    assert_eq!(by_id(&lines, "00000000000000a2")["type"], "subsegment");
    drop(relay);
}

#[test]
fn an_unknown_destination_stops_the_relay_with_a_clear_message() {
    let (udp, tcp, otlp) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let (status, stdout, stderr) = support::run_to_end(
        &[
            "-o",
            "--local-sink",
            "-",
            "-b",
            &format!("127.0.0.1:{udp}"),
            "-t",
            &format!("127.0.0.1:{tcp}"),
            "--otlp-address",
            &format!("127.0.0.1:{otlp}"),
            "--otlp-destination",
            "xray",
        ],
        &[],
    );
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        (stdout.clone() + &stderr).contains("the destinations are auto, otlp and segments"),
        "{stdout}\n{stderr}"
    );
}
