//! End-to-end tests of the `xray` binary against a mock X-Ray endpoint on localhost.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::{MockXRay, Relay, RelayOptions, segment};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn segments_arrive_unchanged_in_signed_batches_of_at_most_fifty() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let sent: Vec<String> = (0..120).map(segment).collect();
    for s in &sent {
        relay.send_segment(s);
    }
    let mut received = xray.wait_for_documents(sent.len(), WAIT);
    let (status, log) = relay.stop();
    assert!(status.success(), "exit status {status}\n{log}");
    received.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(received, expected, "log:\n{log}");

    for request in xray
        .requests()
        .iter()
        .filter(|r| r.path == "/TraceSegments")
    {
        assert_eq!(request.method, "POST");
        let count = request.json()["TraceSegmentDocuments"]
            .as_array()
            .unwrap()
            .len();
        assert!((1..=50).contains(&count), "batch of {count}");
        let auth = request.header("authorization").expect("signed");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/xray/aws4_request"), "{auth}");
        assert!(request.header("x-amz-date").is_some());
        assert!(request.header("x-amzn-xray-timestamp").is_some());
        assert_eq!(request.header("content-type"), Some("application/json"));
        let agent = request.header("user-agent").unwrap();
        assert!(agent.starts_with("xray-relay/"), "{agent}");
        assert!(agent.contains("exec-env/UNKNOWN"), "{agent}");
        assert!(agent.contains("OS/linux-"), "{agent}");
    }
    assert!(log.contains("Successfully sent batch of"), "{log}");
}

#[test]
fn garbage_datagrams_are_rejected_without_losing_the_valid_ones_around_them() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let header = "{\"format\":\"json\",\"version\":1}\n";
    let garbage: Vec<Vec<u8>> = vec![
        b"no header at all".to_vec(),
        b"{\"format\":\"json\",\"version\":2}\n{\"id\":\"x\"}".to_vec(),
        format!("{header}{{\"id\": broken").into_bytes(),
        Vec::new(),
        (0..=255u8).cycle().take(5000).collect(),
        vec![b'x'; 65_000],
        header.as_bytes().to_vec(),
    ];
    let mut sent = Vec::new();
    for (i, junk) in garbage.iter().cycle().take(70).enumerate() {
        let valid = segment(i);
        relay.send_segment(&valid);
        sent.push(valid);
        relay.send(junk);
    }
    let big = format!(
        r#"{{"id":"big","trace_id":"1-big","pad":"{}"}}"#,
        "y".repeat(64_000)
    );
    relay.send_segment(&big);
    sent.push(big);

    let received = xray.wait_for_documents(sent.len(), WAIT);
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    assert_eq!(received.len(), sent.len(), "log:\n{log}");
    for s in &sent {
        assert!(received.contains(s), "lost {s:.60}");
    }
    let records = xray.telemetry_records();
    let rejected: u64 = records
        .iter()
        .map(|r| r["SegmentsRejectedCount"].as_u64().unwrap())
        .sum();
    let received_count: u64 = records
        .iter()
        .map(|r| r["SegmentsReceivedCount"].as_u64().unwrap())
        .sum();
    assert_eq!(rejected, 70, "records: {records:?}");
    assert_eq!(received_count, 141, "records: {records:?}");
    assert!(
        log.contains("[Warn] Invalid header") || log.contains("[Warn] Missing header or segment"),
        "{log}"
    );
}

#[test]
fn sigterm_uploads_what_is_buffered_and_sends_a_last_telemetry_record() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    for i in 0..7 {
        relay.send_segment(&segment(i));
    }
    // Well under the 1 s batch delay: only the shutdown flush can deliver these in time.
    std::thread::sleep(Duration::from_millis(200));
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    assert_eq!(xray.documents().len(), 7, "log:\n{log}");
    let records = xray.telemetry_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["SegmentsReceivedCount"], 7);
    assert_eq!(records[0]["SegmentsSentCount"], 7);
    assert!(log.contains("Got shutdown signal: terminated"), "{log}");
}

#[test]
fn unprocessed_segments_are_logged_with_their_trace_id_and_counted() {
    let xray = MockXRay::with_responder(Arc::new(|request| {
        if request.path != "/TraceSegments" {
            return (200, "{}".into());
        }
        let docs = request.json()["TraceSegmentDocuments"].clone();
        let refused: Vec<serde_json::Value> = docs
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| {
                let d: serde_json::Value = serde_json::from_str(d.as_str().unwrap()).unwrap();
                (d["name"] == "test-3").then(|| {
                    serde_json::json!({"Id": d["id"], "ErrorCode": "InvalidSegment", "Message": "bad end_time"})
                })
            })
            .collect();
        (
            200,
            serde_json::json!({"UnprocessedTraceSegments": refused}).to_string(),
        )
    }));
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    for i in 0..5 {
        relay.send_segment(&segment(i));
    }
    xray.wait_for_documents(5, WAIT);
    let log = relay.wait_for_log("Unprocessed trace", WAIT);
    let (status, _) = relay.stop();
    assert!(status.success());
    let trace = format!("1-5f84c7a1-{:024x}", 3);
    assert!(
        log.contains(&format!(
            "[Error] Unprocessed trace {trace}, segment: {:016x}",
            3
        )),
        "{log}"
    );
    let records = xray.telemetry_records();
    let rejected: u64 = records
        .iter()
        .map(|r| r["SegmentsRejectedCount"].as_u64().unwrap())
        .sum();
    let sent: u64 = records
        .iter()
        .map(|r| r["SegmentsSentCount"].as_u64().unwrap())
        .sum();
    assert_eq!((sent, rejected), (4, 1));
}

#[test]
fn failed_uploads_are_counted_by_class_in_telemetry() {
    let xray = MockXRay::with_responder(Arc::new(|request| {
        if request.path == "/TraceSegments" {
            (
                503,
                r#"{"__type":"ServiceUnavailableException","message":"down"}"#.into(),
            )
        } else {
            (200, "{}".into())
        }
    }));
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    relay.send_segment(&segment(1));
    let log = relay.wait_for_log("Sending segment batch failed", WAIT);
    let (status, _) = relay.stop();
    assert!(status.success(), "{log}");
    let records = xray.telemetry_records();
    let errors_5xx: u64 = records
        .iter()
        .map(|r| {
            r["BackendConnectionErrors"]["HTTPCode5XXCount"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(errors_5xx >= 1, "{records:?}");
}

#[test]
fn log_lines_have_the_original_format() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let (_, log) = relay.stop();
    let first = log.lines().next().expect("a log line");
    // 2016-11-24T06:07:06Z [Info] … or with a numeric offset.
    let (stamp, rest) = first.split_once(' ').unwrap();
    assert!(stamp.len() == 20 || stamp.len() == 25, "{first}");
    assert_eq!(&stamp[4..5], "-");
    assert_eq!(&stamp[10..11], "T");
    assert!(
        rest.starts_with("[Info] Initializing AWS X-Ray daemon"),
        "{first}"
    );
    for expected in [
        "Using buffer memory limit of",
        "segment buffers allocated",
        "Using region: us-east-1",
    ] {
        assert!(log.contains(expected), "missing {expected:?} in\n{log}");
    }
}

#[test]
fn a_buffer_memory_the_pool_cannot_address_is_refused_at_start_naming_the_flag() {
    for megabytes in ["5000", "100000000"] {
        let (status, stdout, stderr) =
            support::run_to_end(&["-o", "-n", "us-east-1", "-m", megabytes], &[]);
        let output = format!("{stdout}{stderr}");
        assert_eq!(status.code(), Some(1), "-m {megabytes}: {output}");
        assert!(
            output.contains(&format!(
                "Buffer memory of {megabytes} MB (-m / --buffer-memory"
            )),
            "-m {megabytes}: {output}"
        );
        assert!(!output.contains("Listening on UDP"), "{output}");
    }
}
