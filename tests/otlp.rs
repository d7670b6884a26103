//! The OTLP receiver through the real binary: forwarding to a mock X-Ray OTLP endpoint,
//! retries, refusals, backpressure, bad input, and the offline sink.

mod support;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{HttpResponse, MockXRay, Relay, RelayOptions, http_get, metric, status_line};
use xray_relay::otlp::{gzip, json, protobuf, schema};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

const HOUR_NS: u64 = 3_600_000_000_000;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// An OTLP JSON request of `spans` spans named `{prefix}-{i}`, each with `pad` bytes of
/// attribute, ending now (X-Ray refuses spans more than 14 days old).
fn request_json(prefix: &str, spans: usize, pad: usize) -> String {
    request_json_at(prefix, spans, pad, |_| now_ns())
}

/// As [`request_json`], span `i` ending at `end(i)` (Unix ns) after 100 ms.
fn request_json_at(prefix: &str, spans: usize, pad: usize, end: impl Fn(usize) -> u64) -> String {
    let spans: Vec<String> = (0..spans)
        .map(|i| {
            let end = end(i);
            format!(
                r#"{{"traceId":"{TRACE}","spanId":"{i:016x}","name":"{prefix}-{i}","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":{end},"attributes":[{{"key":"pad","value":{{"stringValue":"{}"}}}}]}}"#,
                end - 100_000_000,
                "p".repeat(pad)
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"test"}}}}]}},"scopeSpans":[{{"scope":{{"name":"t"}},"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
}

fn request_protobuf(prefix: &str, spans: usize, pad: usize) -> Vec<u8> {
    json::to_protobuf(
        request_json(prefix, spans, pad).as_bytes(),
        &schema::REQUEST,
    )
    .unwrap()
}

/// Span names in an `ExportTraceServiceRequest` (protobuf).
fn span_names(request: &[u8]) -> Vec<String> {
    protobuf::check(request, &schema::REQUEST).unwrap();
    let mut text = String::new();
    protobuf::write_json(request, &schema::REQUEST, &mut text);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names = Vec::new();
    for rs in value["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for span in ss["spans"].as_array().into_iter().flatten() {
                names.push(span["name"].as_str().unwrap().to_owned());
            }
        }
    }
    names
}

/// Span names X-Ray accepted (2xx), in arrival order.
fn forwarded_names(xray: &MockXRay) -> Vec<String> {
    xray.requests()
        .iter()
        .filter(|r| r.path == "/v1/traces" && (200..300).contains(&r.status))
        .flat_map(|r| {
            assert_eq!(r.header("content-encoding"), Some("gzip"));
            span_names(&gzip::gunzip(&r.body, 10_000_000).unwrap())
        })
        .collect()
}

/// Span names in every call to X-Ray's OTLP path, whatever it answered.
fn sent_names(xray: &MockXRay) -> Vec<String> {
    xray.requests()
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .flat_map(|r| span_names(&gzip::gunzip(&r.body, 10_000_000).unwrap()))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn post(
    address: SocketAddr,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> HttpResponse {
    let mut request = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    if let Some(encoding) = encoding {
        request.extend_from_slice(format!("Content-Encoding: {encoding}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    support::http_raw(address, &request).unwrap()
}

struct OtlpRelay {
    relay: Relay,
    otlp: SocketAddr,
}

fn start(xray: &MockXRay, extra_config: &str) -> OtlpRelay {
    let port = support::free_port();
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.config.push_str(extra_config);
    options
        .args
        .extend(["--otlp-address".into(), format!("127.0.0.1:{port}")]);
    let relay = Relay::start(options);
    relay.wait_for_log("Receiving OpenTelemetry traces", Duration::from_secs(10));
    OtlpRelay {
        relay,
        otlp: format!("127.0.0.1:{port}").parse().unwrap(),
    }
}

fn otlp_mock(responder: Arc<support::Responder>) -> MockXRay {
    MockXRay::with_responder(Arc::new(move |request| {
        if request.path == "/v1/traces" {
            responder(request)
        } else {
            (200, "{}".into())
        }
    }))
}

#[test]
fn protobuf_and_json_gzip_or_not_arrive_signed_and_gzipped_at_x_rays_otlp_path() {
    let xray = otlp_mock(Arc::new(|_| (200, String::new())));
    let relay = start(&xray, "");
    let proto = request_protobuf("proto", 3, 10);
    let answer = post(relay.otlp, "application/x-protobuf", None, &proto);
    assert_eq!((answer.status, answer.body.len()), (200, 0));
    assert_eq!(
        answer.header("content-type"),
        Some("application/x-protobuf")
    );
    let answer = post(
        relay.otlp,
        "application/json",
        Some("gzip"),
        &gzip::gzip(request_json("json", 2, 10).as_bytes()),
    );
    assert_eq!((answer.status, answer.text().as_str()), (200, "{}"));
    // The proxy port takes OTLP too.
    let answer = post(
        relay.relay.tcp,
        "application/x-protobuf",
        Some("gzip"),
        &gzip::gzip(&request_protobuf("proxy", 1, 10)),
    );
    assert_eq!(answer.status, 200);
    wait_for("6 spans at X-Ray", Duration::from_secs(10), || {
        forwarded_names(&xray).len() >= 6
    });
    let mut names = forwarded_names(&xray);
    names.sort();
    assert_eq!(
        names,
        [
            "json-0", "json-1", "proto-0", "proto-1", "proto-2", "proxy-0"
        ]
    );
    let first = xray
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/traces")
        .unwrap();
    assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
    let authorization = first.header("authorization").unwrap();
    assert!(
        authorization.contains("/us-east-1/xray/aws4_request"),
        "{authorization}"
    );
    let metrics = http_get(relay.relay.tcp, "/metrics").text();
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_spans_forwarded_total"),
        6.0
    );
    let health = http_get(relay.relay.tcp, "/healthz").json();
    assert_eq!(health["otlp"]["spans"]["forwarded"], 6);
    assert_eq!(health["otlp"]["requests"]["200"], 3);
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_requests_total{status=\"200\"}"),
        3.0
    );
}

#[test]
fn outages_and_throttling_are_retried_until_every_span_arrives() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let xray = otlp_mock(Arc::new(move |_| {
        match counter.fetch_add(1, Ordering::SeqCst) {
            0 => (503, "down".into()),
            1 => (429, "slow down".into()),
            _ => (200, String::new()),
        }
    }));
    let relay = start(&xray, "");
    for i in 0..3 {
        let answer = post(
            relay.otlp,
            "application/x-protobuf",
            None,
            &request_protobuf(&format!("r{i}"), 2, 10),
        );
        assert_eq!(answer.status, 200);
    }
    wait_for("6 spans at X-Ray", Duration::from_secs(20), || {
        forwarded_names(&xray).len() >= 6
    });
    let metrics = http_get(relay.relay.tcp, "/metrics").text();
    assert!(metric(&metrics, "xray_relay_otlp_spans_retried_total") >= 2.0);
    assert_eq!(metric(&metrics, "xray_relay_otlp_spans_refused_total"), 0.0);
    assert_eq!(forwarded_names(&xray).len(), 6, "nothing twice");
}

/// X-Ray's answer without Transaction Search: a google.rpc.Status (protobuf).
fn rpc_status(message: &str) -> String {
    let mut body = vec![0x08, 3, 0x12, message.len() as u8];
    body.extend_from_slice(message.as_bytes());
    String::from_utf8(body).unwrap()
}

/// With `otlp` asked for explicitly, X-Ray's Transaction Search answer is reported, not acted
/// on (`auto` would switch to segments: tests/otlp_auto.rs).
#[test]
fn a_400_reaches_the_log_verbatim_once_and_is_not_retried() {
    let message = "The OTLP API is supported with CloudWatch Logs as a Trace Segment Destination.";
    let answer = rpc_status(message);
    let xray = otlp_mock(Arc::new(move |_| (400, answer.clone())));
    let relay = start(&xray, "OTLP:\n  Destination: otlp\n");
    // Back to back: requests waiting together may be merged into one call, so spans are
    // counted, not calls.
    for i in 0..3 {
        let proto = request_protobuf(&format!("r{i}"), 1, 10);
        assert_eq!(
            post(relay.otlp, "application/x-protobuf", None, &proto).status,
            200
        );
    }
    wait_for("3 spans refused", Duration::from_secs(10), || {
        let metrics = http_get(relay.relay.tcp, "/metrics").text();
        metric(&metrics, "xray_relay_otlp_spans_refused_total") >= 3.0
    });
    let log = relay.relay.wait_for_log(message, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let mut sent = sent_names(&xray);
    sent.sort();
    assert_eq!(
        sent,
        ["r0-0", "r1-0", "r2-0"],
        "each span sent once: not retried"
    );
    let errors = log
        .lines()
        .filter(|l| l.contains("[Error]") && l.contains(message))
        .count();
    assert_eq!(errors, 1, "{log}");
    let metrics = http_get(relay.relay.tcp, "/metrics").text();
    assert_eq!(metric(&metrics, "xray_relay_otlp_spans_refused_total"), 3.0);
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_destination_switches_total"),
        0.0
    );
    assert!(xray.documents().is_empty());
}

#[test]
fn no_call_spans_more_than_24_hours_and_spans_x_ray_refuses_for_their_age_are_refused_at_once() {
    let xray = otlp_mock(Arc::new(|_| (200, String::new())));
    let relay = start(&xray, "OTLP:\n  Destination: otlp\n");
    let now = now_ns();
    // Spans 10 h apart over three days, then two X-Ray refuses: 15 days old, 3 h ahead.
    let json = request_json_at("t", 10, 10, |i| match i {
        8 => now - 15 * 24 * HOUR_NS,
        9 => now + 3 * HOUR_NS,
        i => now - (70 - 10 * i as u64) * HOUR_NS,
    });
    let answer = post(relay.otlp, "application/json", None, json.as_bytes());
    assert_eq!(answer.status, 200);
    let partial = &answer.json()["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "2", "{partial}");
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("14 days")
    );
    wait_for("8 spans at X-Ray", Duration::from_secs(10), || {
        forwarded_names(&xray).len() >= 8
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut names = forwarded_names(&xray);
    names.sort();
    let expected: Vec<String> = (0..8).map(|i| format!("t-{i}")).collect();
    assert_eq!(names, expected);
    let calls: Vec<Vec<u64>> = xray
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .map(|r| {
            let text = protobuf_json(&gzip::gunzip(&r.body, 10_000_000).unwrap());
            span_field(&text, "startTimeUnixNano")
                .into_iter()
                .chain(span_field(&text, "endTimeUnixNano"))
                .collect()
        })
        .collect();
    assert!(calls.len() >= 3, "{calls:?}");
    for times in &calls {
        let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        assert!(last - first <= 24 * HOUR_NS, "{times:?}");
    }
    let metrics = http_get(relay.relay.tcp, "/metrics").text();
    assert_eq!(metric(&metrics, "xray_relay_otlp_spans_refused_total"), 2.0);
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_spans_received_total"),
        10.0
    );
}

#[test]
fn the_telemetry_record_counts_spans_where_x_rays_fields_fit() {
    // X-Ray refuses one span of each request (partial success).
    let mut partial = vec![0x08, 1, 0x12, 3];
    partial.extend_from_slice(b"old");
    let mut response = vec![0x0a, partial.len() as u8];
    response.extend_from_slice(&partial);
    let response = String::from_utf8(response).unwrap();
    let xray = otlp_mock(Arc::new(move |_| (200, response.clone())));
    let relay = start(&xray, "OTLP:\n  Destination: otlp\n");
    for i in 0..2 {
        let proto = request_protobuf(&format!("r{i}"), 4, 10);
        assert_eq!(
            post(relay.otlp, "application/x-protobuf", None, &proto).status,
            200
        );
    }
    // One span X-Ray would refuse for its age, refused at once.
    let old = request_json_at("old", 1, 10, |_| now_ns() - 20 * 24 * HOUR_NS);
    assert_eq!(
        post(relay.otlp, "application/json", None, old.as_bytes()).status,
        200
    );
    relay.relay.send_segment(&support::segment(1));
    wait_for("8 spans at X-Ray", Duration::from_secs(10), || {
        sent_names(&xray).len() >= 8
    });
    xray.wait_for_documents(1, Duration::from_secs(10));
    let (status, log) = relay.relay.stop();
    assert!(status.success(), "{log}");
    // The last record, sent at shutdown.
    let records = xray.telemetry_records();
    let sum = |field: &str| -> u64 { records.iter().map(|r| r[field].as_u64().unwrap()).sum() };
    // Requests may be merged: X-Ray refused one span per call.
    let calls = xray
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .count() as u64;
    assert_eq!(sum("SegmentsReceivedCount"), 1 + 9, "{records:?}");
    assert_eq!(sum("SegmentsSentCount"), 1 + 8 - calls, "{records:?}");
    assert_eq!(sum("SegmentsRejectedCount"), 1 + calls, "{records:?}");
    assert_eq!(sum("SegmentsSpilloverCount"), 0, "{records:?}");
}

/// An `ExportTraceServiceRequest` (protobuf) as OTLP JSON.
fn protobuf_json(request: &[u8]) -> serde_json::Value {
    let mut text = String::new();
    protobuf::write_json(request, &schema::REQUEST, &mut text);
    serde_json::from_str(&text).unwrap()
}

/// A 64-bit field of every span in an OTLP JSON request.
fn span_field(request: &serde_json::Value, field: &str) -> Vec<u64> {
    let mut values = Vec::new();
    for rs in request["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for span in ss["spans"].as_array().into_iter().flatten() {
                values.push(span[field].as_str().unwrap().parse().unwrap());
            }
        }
    }
    values
}

#[test]
fn a_full_buffer_answers_503_with_retry_after_and_keeps_what_it_took() {
    // X-Ray is down: nothing leaves the 8 MiB OTLP buffer.
    let xray = otlp_mock(Arc::new(|_| (503, "down".into())));
    // 16 MB: a quarter would be 4 MiB, so OTLP gets its floor of 8 MiB.
    let relay = start(&xray, "TotalBufferSizeMB: 16\n");
    // About 3.6 MB each: two fit in 8 MiB, the third does not.
    let big = request_protobuf("big", 3000, 1200);
    assert!(
        big.len() > 3_500_000 && big.len() < 4_000_000,
        "{}",
        big.len()
    );
    let body = gzip::gzip(&big);
    assert_eq!(
        post(relay.otlp, "application/x-protobuf", Some("gzip"), &body).status,
        200
    );
    assert_eq!(
        post(relay.otlp, "application/x-protobuf", Some("gzip"), &body).status,
        200
    );
    let refused = post(relay.otlp, "application/x-protobuf", Some("gzip"), &body);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("2"));
    assert_eq!(
        refused.header("content-type"),
        Some("application/x-protobuf")
    );
    let metrics = http_get(relay.relay.tcp, "/metrics").text();
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_spans_backpressured_total"),
        3000.0
    );
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_spans_received_total"),
        6000.0
    );
    // UDP segments still go through the segment buffer.
    relay.relay.send_segment(&support::segment(1));
    assert_eq!(xray.wait_for_documents(1, Duration::from_secs(10)).len(), 1);
}

#[test]
fn with_a_small_buffer_otlp_and_segments_share_it_and_memory_stays_within_it() {
    // X-Ray is down: OTLP data stays in its share of the 3 MB.
    let xray = otlp_mock(Arc::new(|_| (503, "down".into())));
    let relay = start(&xray, "TotalBufferSizeMB: 3\n");
    let log = relay
        .relay
        .wait_for_log("OTLP request bodies are limited", Duration::from_secs(5));
    // Halves: 1.5 MiB each, bodies up to 768 KiB.
    assert!(log.contains("OTLP buffer: 1572864 bytes"), "{log}");
    assert!(log.contains("limited to 786432 bytes"), "{log}");
    let pid = relay.relay.child.id();
    // Warm up (code pages of the paths taken), then measure from there.
    let small = request_protobuf("warm", 1, 10);
    assert_eq!(
        post(
            relay.otlp,
            "application/x-protobuf",
            Some("gzip"),
            &gzip::gzip(&small)
        )
        .status,
        200
    );
    relay.relay.send_segment(&support::segment(1000));
    xray.wait_for_documents(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1200));
    let idle_kb = support::proc_status_kb(pid, "VmRSS");
    let body = request_protobuf("m", 600, 1000);
    assert!(
        body.len() > 600_000 && body.len() < 786_432,
        "{}",
        body.len()
    );
    let too_big = request_protobuf("big", 800, 1000);
    let answer = post(relay.otlp, "application/x-protobuf", None, &too_big);
    assert_eq!(answer.status, 413);
    let mut statuses = Vec::new();
    for i in 0..4 {
        let gzipped = i % 2 == 1;
        let sent = if gzipped {
            gzip::gzip(&body)
        } else {
            body.clone()
        };
        let encoding = gzipped.then_some("gzip");
        statuses.push(post(relay.otlp, "application/x-protobuf", encoding, &sent).status);
    }
    assert_eq!(
        statuses,
        [200, 200, 503, 503],
        "two fit in 1.5 MiB beside the first"
    );
    // Segments still have their half.
    for i in 0..200 {
        relay.relay.send_segment(&support::segment(i));
    }
    xray.wait_for_documents(201, Duration::from_secs(10));
    let peak_kb = support::proc_status_kb(pid, "VmHWM");
    let grown_kb = peak_kb.saturating_sub(idle_kb);
    println!("idle {idle_kb} kB, peak {peak_kb} kB, grown {grown_kb} kB");
    // The buffer (3 MiB) and the margin for bodies in flight and their copies (4 MiB).
    assert!(grown_kb <= 7 * 1024, "idle {idle_kb} kB, peak {peak_kb} kB");
}

#[test]
fn requests_in_flight_and_merged_requests_stay_within_the_otlp_share() {
    // X-Ray is down: what is taken stays in the 8 MiB OTLP share, the forwarders holding
    // merged requests of it; four clients post at once until each is told 503 a few times.
    let xray = otlp_mock(Arc::new(|_| (503, "down".into())));
    let config = "TotalBufferSizeMB: 16\nOTLP:\n  Destination: otlp\n  Compression: none\n";
    let relay = start(&xray, config);
    let pid = relay.relay.child.id();
    let small = request_protobuf("warm", 1, 10);
    assert_eq!(
        post(relay.otlp, "application/x-protobuf", None, &small).status,
        200
    );
    std::thread::sleep(Duration::from_millis(1200));
    let idle_kb = support::proc_status_kb(pid, "VmRSS");
    let body = Arc::new(request_protobuf("m", 400, 1200));
    assert!(
        body.len() > 400_000 && body.len() < 700_000,
        "{}",
        body.len()
    );
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (body, address) = (body.clone(), relay.otlp);
            std::thread::spawn(move || {
                let (mut taken, mut refused) = (0, 0);
                while refused < 3 {
                    match post(address, "application/x-protobuf", None, &body).status {
                        200 => taken += 1,
                        503 => refused += 1,
                        other => panic!("{other}"),
                    }
                }
                taken
            })
        })
        .collect();
    let taken: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(taken * body.len() <= 8 << 20 && taken >= 10, "{taken}");
    let grown_kb = support::proc_status_kb(pid, "VmHWM").saturating_sub(idle_kb);
    println!("{taken} requests taken; peak RSS {grown_kb} kB above idle");
    // The share, and half a MiB for what is not in it (code, stacks, small allocations):
    // bodies read beside it and their split copies took ~900 kB more (8,932 kB measured).
    assert!(grown_kb <= 8 * 1024 + 512, "{grown_kb} kB");
}

#[test]
fn a_4_mb_json_body_is_decoded_in_memory_near_its_size() {
    let dir = support::TempDir::new("otlp-json-memory");
    let sink = dir.path("spans.jsonl");
    let port = support::free_port();
    let mut options = RelayOptions::uploading_to("http://127.0.0.1:9");
    options.config.push_str("TotalBufferSizeMB: 64\n");
    options.args.extend([
        "--local-sink".into(),
        sink.to_string_lossy().into_owned(),
        "--otlp-address".into(),
        format!("127.0.0.1:{port}"),
        "--otlp-destination".into(),
        "otlp".into(),
    ]);
    let relay = Relay::start(options);
    relay.wait_for_log("Receiving OpenTelemetry traces", Duration::from_secs(10));
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let small = request_json("warm", 1, 10);
    assert_eq!(
        post(address, "application/json", None, small.as_bytes()).status,
        200
    );
    wait_for("the first line", Duration::from_secs(10), || {
        support::read(&sink).ends_with('\n')
    });
    let idle_kb = support::proc_status_kb(relay.child.id(), "VmRSS");
    // Many small values, as real spans have: what a tree of the document is costly for.
    let attributes: Vec<String> = (0..25)
        .map(|i| format!(r#"{{"key":"k{i}","value":{{"stringValue":"value {i}"}}}}"#))
        .collect();
    let json = request_json("big", 2900, 10).replace(
        r#"{"key":"pad","value":{"stringValue":"pppppppppp"}}"#,
        &attributes.join(","),
    );
    assert!(
        json.len() > 4_000_000 && json.len() < 4 << 20,
        "{}",
        json.len()
    );
    assert_eq!(
        post(address, "application/json", None, json.as_bytes()).status,
        200
    );
    wait_for("2900 spans in the sink", Duration::from_secs(20), || {
        support::read(&sink).matches("\"name\":\"big-").count() == 2900
    });
    let grown_kb = support::proc_status_kb(relay.child.id(), "VmHWM").saturating_sub(idle_kb);
    println!("a 4 MB JSON body: peak RSS {grown_kb} kB above idle");
    // The body, its protobuf, the chunks and the sink's JSON line: about twice the body
    // (8 MB measured), not the 115 MB a tree of the whole document took.
    assert!(grown_kb < 16 * 1024, "{grown_kb} kB");
}

fn raw(address: SocketAddr, bytes: &[u8]) -> HttpResponse {
    support::http_raw(address, bytes).unwrap()
}

#[test]
fn bad_input_gets_the_right_status_and_is_counted_while_the_relay_goes_on() {
    let xray = otlp_mock(Arc::new(|_| (200, String::new())));
    let relay = start(&xray, "");
    let proto = request_protobuf("x", 2, 10);
    // Truncated protobuf, a wrong wire type, invalid JSON: 400 with a google.rpc.Status.
    let truncated = post(
        relay.otlp,
        "application/x-protobuf",
        None,
        &proto[..proto.len() - 5],
    );
    assert_eq!(truncated.status, 400);
    assert_eq!(&truncated.body[..2], &[0x08, 3]);
    let garbage = post(relay.otlp, "application/x-protobuf", None, b"\x0b\x0c\x0d");
    assert_eq!(garbage.status, 400);
    let invalid = post(
        relay.otlp,
        "application/json",
        None,
        b"{\"resourceSpans\":[",
    );
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json()["code"], 3);
    // Wrong content type or encoding: 415.
    assert_eq!(post(relay.otlp, "text/plain", None, b"x").status, 415);
    assert_eq!(
        post(relay.otlp, "application/json", Some("br"), b"x").status,
        415
    );
    // A gzip bomb (10 MB of zeros in ~10 KB) and an oversized body: 413.
    let bomb = gzip::gzip(&vec![0u8; 10_000_000]);
    assert_eq!(
        post(relay.otlp, "application/x-protobuf", Some("gzip"), &bomb).status,
        413
    );
    let oversized = raw(
        relay.otlp,
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 99999999\r\n\r\n",
    );
    assert_eq!(oversized.status, 413);
    // Chunked with a chunk over the limit: 413 before the chunk is sent.
    let chunked_big = raw(
        relay.otlp,
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n800000\r\n",
    );
    assert_eq!(chunked_big.status, 413);
    // Other paths and methods.
    assert_eq!(http_get(relay.otlp, "/v1/traces").status, 405);
    assert_eq!(http_get(relay.otlp, "/v1/metrics").status, 404);
    // A valid chunked request (as the Node exporters send) after all that.
    let body = request_json("chunked", 2, 5);
    let (first, second) = body.split_at(body.len() / 2);
    let chunked = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    assert_eq!(raw(relay.otlp, chunked.as_bytes()).status, 200);
    // Refused by the server before the receiver sees them: a head over the limit, no Host.
    let long_head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(raw(relay.otlp, long_head.as_bytes()).status, 431);
    let no_host = b"POST /v1/traces HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(raw(relay.otlp, no_host).status, 400);
    let metrics = http_get(relay.relay.tcp, "/metrics").text();
    for (status, count) in [
        (400, 4.0),
        (413, 3.0),
        (415, 2.0),
        (405, 1.0),
        (404, 1.0),
        (431, 1.0),
        (200, 1.0),
    ] {
        let series = format!("xray_relay_otlp_requests_total{{status=\"{status}\"}}");
        assert_eq!(metric(&metrics, &series), count, "{series}");
    }
    // Counted as OTLP's, not as the proxy's.
    for reason in ["head_too_large", "bad_request"] {
        let series = format!("xray_relay_proxy_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&metrics, &series), 0.0, "{series}");
    }
    relay.relay.send_segment(&support::segment(7));
    assert_eq!(xray.wait_for_documents(1, Duration::from_secs(10)).len(), 1);
    wait_for("2 spans", Duration::from_secs(10), || {
        forwarded_names(&xray).len() >= 2
    });
}

#[test]
fn a_slow_client_is_cut_off_with_408_while_others_are_served() {
    let xray = otlp_mock(Arc::new(|_| (200, String::new())));
    let relay = start(&xray, "");
    let mut slow = TcpStream::connect(relay.otlp).unwrap();
    slow.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let proto = request_protobuf("fast", 1, 10);
    assert_eq!(
        post(relay.otlp, "application/x-protobuf", None, &proto).status,
        200
    );
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let answer = support::read_response(&mut BufReader::new(slow)).unwrap();
    assert_eq!(answer.status, 408);
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn offline_spans_are_written_as_otlp_json_lines() {
    let dir = support::TempDir::new("otlp-sink");
    let sink = dir.path("spans.jsonl");
    let port = support::free_port();
    let mut options = RelayOptions::uploading_to("http://127.0.0.1:9");
    options.args.extend([
        "--local-sink".into(),
        sink.to_string_lossy().into_owned(),
        "--otlp-address".into(),
        format!("[::1]:{port}"),
        // The default, auto, writes segments offline.
        "--otlp-destination".into(),
        "otlp".into(),
    ]);
    let relay = Relay::start(options);
    relay.wait_for_log("Receiving OpenTelemetry traces", Duration::from_secs(10));
    let address: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let json = request_json("offline", 2, 3);
    assert_eq!(
        post(address, "application/json", None, json.as_bytes()).status,
        200
    );
    wait_for("a line in the sink", Duration::from_secs(10), || {
        support::read(&sink).ends_with('\n')
    });
    let text = support::read(&sink);
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&json).unwrap();
    let span = &line["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
    assert_eq!(span["traceId"], TRACE);
    assert_eq!(span["name"], "offline-1");
    // Integers come out as strings, as the OTLP JSON mapping writes them.
    let sent = &expected["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["endTimeUnixNano"];
    assert_eq!(span["endTimeUnixNano"], sent.as_u64().unwrap().to_string());
    assert_eq!(
        line["resourceSpans"][0]["resource"],
        expected["resourceSpans"][0]["resource"]
    );
}

#[test]
fn an_otlp_address_in_use_ends_the_relay_with_a_clear_message_and_none_opens_no_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let (udp, tcp) = (support::free_port(), support::free_port());
    let (status, stdout, stderr) = support::run_to_end(
        &[
            "-o",
            "-n",
            "us-east-1",
            "--local-sink",
            "-",
            "-b",
            &format!("127.0.0.1:{udp}"),
            "-t",
            &format!("127.0.0.1:{tcp}"),
            "--otlp-address",
            &address.to_string(),
        ],
        &[],
    );
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let expected = format!("Unable to start the OTLP receiver: {address}: ");
    assert!(
        stderr.contains(&expected) || stdout.contains(&expected),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Without --otlp-address the proxy port does not take OTLP (a swapped binary changes
    // nothing), and says nothing about it.
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    assert!(!relay.log_text().contains("OpenTelemetry"));
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert!(!metrics.contains("xray_relay_otlp"));
}

#[test]
fn spans_undelivered_at_shutdown_are_spooled_and_delivered_at_the_next_start() {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let is_up = up.clone();
    let xray = otlp_mock(Arc::new(move |_| {
        if is_up.load(Ordering::SeqCst) {
            (200, String::new())
        } else {
            (503, "down".into())
        }
    }));
    let spool = support::TempDir::new("otlp-spool");
    let spool_config = format!("Spool:\n  Directory: \"{}\"\n", spool.0.display());
    let relay = start(&xray, &spool_config);
    let proto = request_protobuf("kept", 50, 500);
    assert_eq!(
        post(relay.otlp, "application/x-protobuf", None, &proto).status,
        200
    );
    let (status, log) = relay.relay.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("Spooled 50 OTLP spans"), "{log}");
    up.store(true, Ordering::SeqCst);
    let relay = start(&xray, &spool_config);
    wait_for("50 replayed spans", Duration::from_secs(20), || {
        forwarded_names(&xray).len() >= 50
    });
    let mut names = forwarded_names(&xray);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 50);
    let metrics = http_get(relay.relay.tcp, "/metrics").text();
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_spans_replayed_total"),
        50.0
    );
}

#[test]
fn cfg_otlp_destination_alone_takes_otlp_on_the_proxy_port_only() {
    let xray = otlp_mock(Arc::new(|_| (200, String::new())));
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options
        .config
        .push_str("OTLP:\n  Destination: otlp\n  Compression: none\n");
    let relay = Relay::start(options);
    assert!(!relay.log_text().contains("Receiving OpenTelemetry traces"));
    let proto = request_protobuf("cfg", 2, 10);
    assert_eq!(
        post(relay.tcp, "application/x-protobuf", None, &proto).status,
        200
    );
    wait_for("a call", Duration::from_secs(10), || {
        xray.requests().iter().any(|r| r.path == "/v1/traces")
    });
    let call = xray
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/traces")
        .unwrap();
    // Compression: none sends the bytes as they are.
    assert_eq!(call.header("content-encoding"), None);
    assert_eq!(span_names(&call.body), ["cfg-0", "cfg-1"]);
}

/// The receiver's refusals answer an HTTP/1.0 request in HTTP/1.0, on its own port and on
/// the proxy's, as every answer of the relay does.
#[test]
fn refusals_answer_http_1_0_in_http_1_0() {
    let xray = otlp_mock(Arc::new(|_| (200, String::new())));
    let relay = start(&xray, "");
    let wrong_method = b"GET /v1/traces HTTP/1.0\r\n\r\n";
    let wrong_type =
        b"POST /v1/traces HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}";
    let too_large = b"POST /v1/traces HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 99000000\r\n\r\n";
    for address in [relay.otlp, relay.relay.tcp] {
        assert_eq!(
            status_line(address, wrong_method),
            "HTTP/1.0 405 Method Not Allowed"
        );
        assert_eq!(
            status_line(address, wrong_type),
            "HTTP/1.0 415 Unsupported Media Type"
        );
        assert_eq!(
            status_line(address, too_large),
            "HTTP/1.0 413 Request Entity Too Large"
        );
    }
    let metrics = http_get(relay.relay.tcp, "/metrics").text();
    assert_eq!(
        metric(&metrics, "xray_relay_otlp_requests_total{status=\"413\"}"),
        2.0
    );
}
