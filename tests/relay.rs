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
    // Refused by the original daemon: counted as rejected, logged, dropped.
    let refused: Vec<Vec<u8>> = vec![
        b"no header at all".to_vec(),
        b"{\"format\":\"json\",\"version\":2}\n{\"id\":\"x\"}".to_vec(),
        (0..=255u8).cycle().take(5000).collect(),
        vec![b'x'; 65_000],
        header.as_bytes().to_vec(),
    ];
    // After a valid header the original uploads any body and X-Ray judges it; its SDK's JSON
    // encoder escapes the body (bytes that are not UTF-8 become U+FFFD). With what X-Ray
    // then reads, and how it travels.
    let odd_bodies: [(&[u8], &str, &str); 4] = [
        (
            b"{\"id\": broken",
            "{\"id\": broken",
            r#""{\"id\": broken""#,
        ),
        (
            b"{\"name\":\"caf\xe9\"}",
            "{\"name\":\"caf\u{FFFD}\"}",
            r#""{\"name\":\"caf\ufffd\"}""#,
        ),
        (
            b"{\"name\":\"a\tb\"}",
            "{\"name\":\"a\tb\"}",
            r#""{\"name\":\"a\tb\"}""#,
        ),
        (
            b"{\"id\":\"z\"}\x00",
            "{\"id\":\"z\"}\u{0}",
            r#""{\"id\":\"z\"}\u0000""#,
        ),
    ];
    let mut sent = Vec::new();
    for i in 0..60 {
        let valid = segment(i);
        relay.send_segment(&valid);
        sent.push(valid);
        relay.send(&refused[i % refused.len()]);
        if i % 6 == 0 {
            // Ignored, as the original ignores an empty read: not even counted.
            relay.send(b"");
        }
        if let Some((body, _, _)) = odd_bodies.get(i / 10).filter(|_| i % 10 == 5) {
            relay.send(&[header.as_bytes(), body].concat());
        }
    }
    let big = format!(
        r#"{{"id":"big","trace_id":"1-big","pad":"{}"}}"#,
        "y".repeat(64_000)
    );
    relay.send_segment(&big);
    sent.push(big);

    let received = xray.wait_for_documents(sent.len() + odd_bodies.len(), WAIT);
    // The end of each burst of warnings is logged once the datagrams stop, not only at exit.
    relay.wait_for_log("(last of 11 held back)", Duration::from_secs(5));
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    assert_eq!(received.len(), sent.len() + odd_bodies.len(), "log:\n{log}");
    for s in &sent {
        assert!(received.contains(s), "lost {s:.60}");
    }
    let wire: Vec<u8> = xray
        .requests()
        .iter()
        .filter(|r| r.path == "/TraceSegments")
        .flat_map(|r| r.body.clone())
        .collect();
    let wire = String::from_utf8(wire).expect("a request body that is not UTF-8");
    for (_, read, escaped) in odd_bodies {
        assert!(received.iter().any(|r| r == read), "lost {read:?}");
        assert!(wire.contains(escaped), "{escaped} not in {wire:.300}");
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
    assert_eq!(rejected, 60, "records: {records:?}");
    assert_eq!(received_count, 125, "records: {records:?}");
    // The original's warnings: the first of each kind at once, then (throttled) the last
    // of each burst with a count when the datagrams stop.
    for warning in [
        "[Warn] Missing header: no header at all\n",
        "[Warn] Missing header or segment: no header at all\n",
        "[Warn] Invalid header: {\"format\":\"json\",\"version\":2}\n",
        "[Warn] Missing header or segment: {\"format\":\"json\",\"version\":1}\n",
        // The binary datagram's header: its bytes before the first newline (0x0a).
        "[Warn] Invalid header: .......... (last of 23 held back)\n",
        "[Warn] Missing header or segment: xxxxxxxx",
        "x... (65000 bytes) (last of 23 held back)\n",
        "[Warn] Missing header or segment: {\"format\":\"json\",\"version\":1} (last of 11 held back)\n",
    ] {
        assert!(log.contains(warning), "{warning} not in\n{log}");
    }
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
    // The original's shape (AWS SDK for Go's Prettify of the entry), over several lines.
    let expected = format!(
        "[Error] Unprocessed trace {trace}, segment: {{\n  ErrorCode: \"InvalidSegment\",\n  Id: \"{:016x}\",\n  Message: \"bad end_time\"\n}}\n",
        3
    );
    assert!(log.contains(&expected), "{log}");
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

/// The original's start-up lines (3.6.6, `-l debug`, cfg `Endpoint`, local mode) in its
/// order (cmd/tracing/daemon.go: UDP socket, buffers, AWS config, telemetry, proxy, processor);
/// each as `[Level] text`, `*` standing for the variable part.
const ORIGINAL_START_LINES: [&str; 11] = [
    "[Info] Initializing AWS X-Ray daemon 3.6.6",
    "[Debug] Listening on UDP 127.0.0.1:*",
    "[Info] Using buffer memory limit of * MB",
    "[Info] * segment buffers allocated",
    "[Debug] Using Endpoint read from Config file: *",
    "[Info] Using region: us-east-1",
    "[Debug] ARN of the AWS resource running the daemon: *",
    "[Debug] Telemetry initiated",
    "[Info] HTTP Proxy server using X-Ray Endpoint : *",
    "[Debug] Batch size: *",
    "[Info] Starting proxy http server on 127.0.0.1:*",
];

#[test]
fn start_up_and_shutdown_lines_are_the_originals() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let udp = relay.udp.to_string();
    let tcp = relay.tcp.to_string();
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    // Each line without its timestamp.
    let lines: Vec<&str> = log
        .lines()
        .map(|line| line.split_once(' ').unwrap().1)
        .collect();
    let position = |pattern: &str| {
        let (start, end) = pattern.split_once('*').unwrap_or((pattern, ""));
        lines
            .iter()
            .position(|line| {
                line.len() >= start.len() + end.len()
                    && line.starts_with(start)
                    && line.ends_with(end)
            })
            .unwrap_or_else(|| panic!("no line {pattern:?} in\n{log}"))
    };
    let positions: Vec<usize> = ORIGINAL_START_LINES.iter().map(|p| position(p)).collect();
    assert!(positions.is_sorted(), "{positions:?} in\n{log}");
    assert_eq!(lines[0], "[Info] Initializing AWS X-Ray daemon 3.6.6");
    // Addresses as given on the command line, endpoint as configured.
    for exact in [
        format!("[Debug] Listening on UDP {udp}"),
        format!("[Info] Starting proxy http server on {tcp}"),
        format!(
            "[Info] HTTP Proxy server using X-Ray Endpoint : {}",
            xray.endpoint()
        ),
        format!(
            "[Debug] Using Endpoint read from Config file: {}",
            xray.endpoint()
        ),
        "[Debug] Using proxy address: ".to_owned(),
        "[Debug] Telemetry initiated".to_owned(),
        "[Debug] Batch size: 50".to_owned(),
        "[Info] Got shutdown signal: terminated".to_owned(),
        "[Debug] Trace segment: received: 0, truncated: 0, processed: 0".to_owned(),
    ] {
        assert!(lines.contains(&exact.as_str()), "no {exact:?} in\n{log}");
    }
    let buffers = lines[position("[Info] * segment buffers allocated")];
    let count = buffers
        .strip_prefix("[Info] ")
        .and_then(|rest| rest.strip_suffix(" segment buffers allocated"))
        .unwrap();
    assert!(count.parse::<u32>().is_ok(), "{buffers}");
    assert!(
        lines[position("[Info] Got shutdown signal: terminated*") + 1..]
            .iter()
            .any(|line| line
                .starts_with("[Debug] Shutdown finished. Current epoch in nanoseconds: ")),
        "{log}"
    );
}

/// Sends `signal` to the relay.
fn signal(relay: &Relay, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(relay.child.id()).unwrap();
    // SAFETY: plain kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// logrotate's `create` mode: move the file away, then signal the daemon to reopen it.
fn rotate_and_signal(relay: &Relay, signal_number: libc::c_int, name: &str) {
    let rotated = relay.dir.path("xray.log.1");
    std::fs::rename(&relay.log, &rotated).unwrap();
    signal(relay, signal_number);
    let expected = format!(
        "[Info] Got signal {name}: reopened log file {}",
        relay.log.display()
    );
    let text = relay.wait_for_log(&expected, Duration::from_secs(5));
    // The new file starts with that line: nothing went to the moved file after the signal,
    // and no note about a removed file (the reopen was asked for).
    assert!(text.lines().next().unwrap().ends_with(&expected), "{text}");
    let old = support::read(&rotated);
    assert!(!old.contains(&expected), "{old}");
    std::fs::remove_file(&rotated).unwrap();
}

#[test]
fn sighup_and_sigusr1_reopen_the_log_file_and_the_relay_goes_on() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    rotate_and_signal(&relay, libc::SIGHUP, "hangup");
    rotate_and_signal(&relay, libc::SIGUSR1, "user defined signal 1");
    // Still alive and working: a segment goes through, its batch line lands in the new file.
    relay.send_segment(&segment(1));
    xray.wait_for_documents(1, WAIT);
    relay.wait_for_log("Successfully sent batch of 1 segments", WAIT);
    let (status, log) = relay.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains("[Info] Got shutdown signal: terminated"),
        "{log}"
    );
}

#[test]
fn sigquit_exits_at_once_with_status_2_like_the_original() {
    let xray = MockXRay::start();
    let mut relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    signal(&relay, libc::SIGQUIT);
    let status = relay.child.wait().unwrap();
    // Go's runtime: "SIGQUIT: quit" and a dump on stderr, exit status 2.
    assert_eq!(status.code(), Some(2), "{status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(relay.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.starts_with("SIGQUIT: quit\n"), "{stderr}");
    let log = relay.log_text();
    assert!(!log.contains("Got shutdown signal"), "{log}");
}

#[test]
fn an_upload_refused_by_x_ray_is_logged_in_the_originals_words() {
    let xray = MockXRay::with_responder(Arc::new(|request| match request.path.as_str() {
        "/TraceSegments" => (
            400,
            r#"{"__type":"InvalidRequestException","message":"Invalid segment"}"#.into(),
        ),
        _ => (200, "{}".into()),
    }));
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    relay.send_segment(&segment(1));
    let log = relay.wait_for_log("Sending segment batch failed", WAIT);
    relay.stop();
    let first_upload = xray
        .requests()
        .iter()
        .position(|request| request.path == "/TraceSegments")
        .expect("an upload")
        + 1;
    // The original 3.6.6 logs the AWS SDK for Go's error: operation, status, X-Ray's request
    // id, the exception and its message.
    let expected = format!(
        "[Error] Sending segment batch failed with: operation error XRay: PutTraceSegments, \
         https response error StatusCode: 400, RequestID: mock-{first_upload}, \
         InvalidRequestException: Invalid segment"
    );
    assert!(log.contains(&expected), "{log}");
}

#[test]
fn a_full_buffer_says_so_in_the_originals_words() {
    // Nothing listens on port 9: every upload fails and the 3 MB pool fills up.
    let mut options = RelayOptions::uploading_to("http://127.0.0.1:9");
    options.args.extend(["-m".into(), "3".into()]);
    let relay = Relay::start(options);
    let pad = "p".repeat(10_000);
    for i in 0..600 {
        let big = segment(i).replacen("\"name\"", &format!("\"pad\":\"{pad}\",\"name\""), 1);
        relay.send_segment(&big);
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let log = relay.wait_for_log("Dropping oldest", WAIT);
    assert!(
        log.contains("[Warn] Segment buffer is full. Dropping oldest segment document."),
        "{log}"
    );
    assert!(
        log.contains("[Error] Sending segment batch failed with: "),
        "{log}"
    );
}

/// An STS AssumeRole answer with credentials valid for long enough.
const ASSUMED_ROLE: &str = "<AssumeRoleResponse><AssumeRoleResult><Credentials>\
<AccessKeyId>ASIAROLEKEYEXAMPLE</AccessKeyId><SecretAccessKey>role-secret</SecretAccessKey>\
<SessionToken>role-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>\
</Credentials></AssumeRoleResult></AssumeRoleResponse>";

#[test]
fn role_credentials_arrive_from_a_local_sts_under_a_corporate_https_proxy() {
    // One local endpoint plays STS (POST /) and X-Ray.
    let endpoint = MockXRay::with_responder(Arc::new(|request| {
        if request.path == "/" {
            (200, ASSUMED_ROLE.to_owned())
        } else {
            (200, "{}".to_owned())
        }
    }));
    let mut options = RelayOptions::uploading_to(&endpoint.endpoint());
    options
        .args
        .extend(["-r".into(), "arn:aws:iam::123456789012:role/demo".into()]);
    // A proxy nobody answers at: anything sent through it would fail.
    options.env.extend([
        ("HTTPS_PROXY", "http://127.0.0.1:9".to_owned()),
        ("AWS_ENDPOINT_URL_STS", endpoint.endpoint()),
    ]);
    let relay = Relay::start(options);
    relay.send_segment(&segment(1));
    endpoint.wait_for_documents(1, WAIT);
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    let upload = endpoint
        .requests()
        .into_iter()
        .find(|r| r.path == "/TraceSegments")
        .unwrap();
    let authorization = upload.header("authorization").unwrap().to_owned();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=ASIAROLEKEYEXAMPLE/"),
        "{authorization}\n{log}"
    );
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
