//! The TCP proxy of the `xray` binary: forwarding and signing, limits and hostile clients,
//! `/healthz` and `/metrics`, offline sampling, and a clear exit when `-t` cannot be bound.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use support::{
    HttpResponse, MockXRay, Relay, RelayOptions, http_get, http_post, http_raw, metric,
    proc_status_kb, read_response, segment, status_line,
};
use xray_relay::aws::{Credentials, RequestToSign, Signer, XRAY_SERVICE};

const WAIT: Duration = Duration::from_secs(20);

const RULES: &str = r#"{"SamplingRuleRecords":[{"SamplingRule":{"RuleName":"r1","Priority":1}}]}"#;

fn sampling_mock() -> MockXRay {
    MockXRay::with_responder(Arc::new(|request| match request.path.as_str() {
        "/GetSamplingRules" => (200, RULES.to_string()),
        "/SamplingTargets" => (
            400,
            r#"{"__type":"InvalidRequestException","message":"bad stats"}"#.to_string(),
        ),
        _ => (200, "{}".to_string()),
    }))
}

/// `20240102T030405Z` → SystemTime.
fn parse_amz_date(text: &str) -> SystemTime {
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = days * 86_400 + number(9..11) * 3600 + number(11..13) * 60 + number(13..15);
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64)
}

/// Re-signs what the mock received, with the headers the signature names: equal only if the
/// relay signed exactly the bytes that arrived.
fn assert_signature_verifies(request: &support::Request) {
    let authorization = request.header("authorization").expect("signed");
    let signed = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    let headers: Vec<(&str, &str)> = signed
        .split(';')
        .map(|name| {
            (
                name,
                request
                    .header(name)
                    .unwrap_or_else(|| panic!("{name} missing")),
            )
        })
        .collect();
    let url = format!("http://{}{}", request.header("host").unwrap(), request.path);
    let credentials = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
    );
    let time = parse_amz_date(request.header("x-amz-date").unwrap());
    let expected = Signer::new("us-east-1", XRAY_SERVICE)
        .sign(
            &RequestToSign {
                method: &request.method,
                url: &url,
                headers: &headers,
                body: &request.body,
            },
            &credentials,
            time,
        )
        .unwrap();
    let expected = expected
        .iter()
        .find(|(name, _)| *name == "authorization")
        .map(|(_, value)| value.as_str());
    assert_eq!(Some(authorization), expected);
}

#[test]
fn sdk_requests_are_signed_and_go_to_the_endpoint_whatever_they_name() {
    let xray = sampling_mock();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let mut stream = TcpStream::connect(relay.tcp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // An absolute URI and a Host header for another host, hop-by-hop headers, a stale
    // signature: then a second request on the same connection.
    let first = "POST http://evil.example/GetSamplingRules HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\nAuthorization: AWS4-HMAC-SHA256 stale\r\nX-Custom: kept\r\n\r\n{}";
    stream.write_all(first.as_bytes()).unwrap();
    let answer = read_response(&mut reader).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), RULES);
    assert_eq!(answer.header("connection"), None);
    let second = "POST /SamplingTargets HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n{\"SamplingStatisticsDocuments\": []}\r\n";
    stream.write_all(second.as_bytes()).unwrap();
    let answer = read_response(&mut reader).unwrap();
    // X-Ray's errors come back with their status and body.
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["__type"], "InvalidRequestException");

    let requests = xray.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let rules = &requests[0];
    assert_eq!(rules.method, "POST");
    assert_eq!(rules.path, "/GetSamplingRules");
    assert_eq!(
        rules.header("host"),
        Some(xray.address.to_string().as_str())
    );
    assert_eq!(rules.header("x-custom"), Some("kept"));
    assert_eq!(rules.header("x-private"), None);
    assert_eq!(rules.header("keep-alive"), None);
    assert_eq!(rules.body, b"{}");
    let authorization = rules.header("authorization").unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(authorization.contains("/us-east-1/xray/aws4_request"));
    for request in &requests {
        assert_signature_verifies(request);
    }
    assert_eq!(requests[1].path, "/SamplingTargets");
    assert_eq!(requests[1].body.len(), 37);

    let metrics = http_get(relay.tcp, "/metrics").text();
    assert_eq!(
        metric(&metrics, "xray_relay_proxy_forwarded_requests_total"),
        2.0
    );
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("Starting proxy http server on 127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn without_credentials_nothing_is_forwarded_unsigned() {
    let xray = sampling_mock();
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.env.clear();
    let relay = Relay::start(options);
    let answer = http_post(relay.tcp, "/GetSamplingRules", "{}");
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(
        answer.json()["__type"],
        "MissingAuthenticationTokenException"
    );
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("credentials")
    );
    assert!(xray.requests().is_empty());
    // The original's lines for this, at its levels.
    let (_, log) = relay.stop();
    assert!(
        log.contains("[Error] Unable to retrieve credentials: "),
        "{log}"
    );
    assert!(
        log.contains("[Debug] Received request on HTTP Proxy server : /GetSamplingRules\n"),
        "{log}"
    );
}

#[test]
fn a_credentials_error_goes_to_the_log_and_clients_get_a_generic_text() {
    let xray = sampling_mock();
    let dir = support::TempDir::new("credentials-error");
    let config = dir.path("config");
    std::fs::write(
        &config,
        "[default]\ncredential_process = sh -c 'exit 3' --token=hunter2-secret\n",
    )
    .unwrap();
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.env = vec![("AWS_CONFIG_FILE", config.display().to_string())];
    let relay = Relay::start(options);
    let answer = http_post(relay.tcp, "/GetSamplingRules", "{}");
    assert_eq!(answer.status, 503, "{}", answer.text());
    let text = answer.text();
    assert!(
        !text.contains("hunter2") && !text.contains("exit 3") && !text.contains("process"),
        "the answer carries the error: {text}"
    );
    assert!(text.contains("credentials"), "{text}");
    let log = relay.wait_for_log("[Error] Unable to retrieve credentials: ", WAIT);
    assert!(
        log.contains("hunter2-secret"),
        "the log has the details:\n{log}"
    );
    assert!(xray.requests().is_empty());
}

#[test]
fn with_sampling_only_other_apis_are_refused_and_never_signed() {
    let xray = sampling_mock();
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.config.push_str("Proxy:\n  SamplingOnly: true\n");
    let relay = Relay::start(options);
    let refused = [
        "/TraceSegments",
        "/PutEncryptionConfig",
        "/CreateSamplingRule",
        "/GetSamplingRules/../TraceSegments",
    ];
    for path in refused {
        let answer = http_post(relay.tcp, path, "{}");
        assert_eq!(answer.status, 403, "{path}: {}", answer.text());
        assert_eq!(answer.json()["__type"], "AccessDeniedException", "{path}");
    }
    let rules = http_post(relay.tcp, "/GetSamplingRules", "{}");
    assert_eq!(rules.status, 200, "{}", rules.text());
    let summaries = http_post(relay.tcp, "/SamplingStatisticSummaries", "{}");
    assert_eq!(summaries.status, 200, "{}", summaries.text());
    let targets = http_post(relay.tcp, "/SamplingTargets", "{}");
    assert_eq!(
        targets.status,
        400,
        "X-Ray's own answer: {}",
        targets.text()
    );
    let forwarded: Vec<String> = xray
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .filter(|path| path != "/TelemetryRecords")
        .collect();
    assert_eq!(
        forwarded,
        [
            "/GetSamplingRules",
            "/SamplingStatisticSummaries",
            "/SamplingTargets"
        ]
    );
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_proxy_refused_total{reason=\"not_sampling_api\"}"
        ),
        refused.len() as f64
    );
}

#[test]
fn an_unreachable_endpoint_is_a_bad_gateway_counted_by_class() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let relay = Relay::start(RelayOptions::uploading_to(&format!("http://{closed}")));
    let answer = http_post(relay.tcp, "/GetSamplingRules", "{}");
    assert_eq!(answer.status, 502, "{}", answer.text());
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_proxy_upstream_errors_total{class=\"connection_refused\"}"
        ),
        1.0
    );
}

/// Sends raw bytes and returns the answer, or what happened instead.
fn raw(address: SocketAddr, bytes: &[u8]) -> Result<HttpResponse, String> {
    http_raw(address, bytes).map_err(|e| e.to_string())
}

#[test]
fn every_limit_answers_with_an_http_error_and_is_counted() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let tcp = relay.tcp;
    let mut sent = Vec::new();
    let mut send_some = |from: usize| {
        for i in from..from + 20 {
            let s = segment(i);
            relay.send_segment(&s);
            sent.push(s);
        }
    };
    send_some(0);

    let big_body = raw(
        tcp,
        b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{}",
    )
    .unwrap();
    assert_eq!(big_body.status, 413);
    let mut big_head = b"POST /GetSamplingRules HTTP/1.1\r\nX-Big: ".to_vec();
    big_head.resize(20_000, b'a');
    big_head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(raw(tcp, &big_head).unwrap().status, 431);
    let many: String = (0..100).map(|i| format!("X-{i}: 1\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\n{many}\r\n");
    assert_eq!(raw(tcp, many.as_bytes()).unwrap().status, 431);
    let chunked = b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    assert_eq!(raw(tcp, chunked).unwrap().status, 411);
    send_some(20);
    let garbage: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    assert_eq!(raw(tcp, &garbage).unwrap().status, 400);
    assert_eq!(
        raw(tcp, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
            .unwrap()
            .status,
        400
    );
    let not_allowed = raw(
        tcp,
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(not_allowed.status, 405);
    assert_eq!(not_allowed.header("allow"), Some("GET"));
    send_some(40);

    let metrics = http_get(tcp, "/metrics").text();
    let refused = |reason: &str| {
        metric(
            &metrics,
            &format!("xray_relay_proxy_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(refused("body_too_large"), 1.0);
    assert_eq!(refused("head_too_large"), 1.0);
    assert_eq!(refused("too_many_headers"), 1.0);
    assert_eq!(refused("length_required"), 1.0);
    assert_eq!(refused("bad_request"), 2.0);
    assert_eq!(refused("method_not_allowed"), 1.0);
    assert_eq!(refused("timeout"), 0.0);
    assert!(xray.requests().iter().all(|r| r.path == "/TraceSegments"));

    let mut received = xray.wait_for_documents(sent.len(), WAIT);
    received.sort();
    sent.sort();
    assert_eq!(received, sent);
}

/// Opens `count` connections that each send `prefix` then one more byte every `interval`
/// (never finishing), or nothing at all for an empty prefix.
fn trickling_clients(
    address: SocketAddr,
    count: usize,
    prefix: &'static [u8],
) -> Vec<std::thread::JoinHandle<(Result<u16, String>, Duration)>> {
    (0..count)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut stream = TcpStream::connect(address).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(400)))
                    .unwrap();
                let _ = stream.write_all(prefix);
                let mut answer = Vec::new();
                loop {
                    let mut buffer = [0u8; 1024];
                    match stream.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => answer.extend_from_slice(&buffer[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if started.elapsed() > Duration::from_secs(30) {
                                return (Err("still open after 30 s".into()), started.elapsed());
                            }
                            if !prefix.is_empty() {
                                // Slowloris: one more header byte now and then.
                                let _ = stream.write_all(b"a");
                            }
                        }
                        Err(e) => return (Err(e.to_string()), started.elapsed()),
                    }
                }
                let status = read_response(&mut &answer[..])
                    .map(|r| r.status)
                    .map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(&answer)));
                (status, started.elapsed())
            })
        })
        .collect()
}

#[test]
fn slow_and_silent_clients_are_cut_off_while_others_are_served() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let slow = trickling_clients(
        relay.tcp,
        40,
        b"POST /GetSamplingRules HTTP/1.1\r\nX-Slow: ",
    );
    let silent = trickling_clients(relay.tcp, 40, b"");
    // A body that never comes.
    let mut stalled = TcpStream::connect(relay.tcp).unwrap();
    stalled
        .write_all(b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let sent: Vec<String> = (0..50).map(segment).collect();
    for s in &sent {
        relay.send_segment(s);
    }
    let started = Instant::now();
    assert_eq!(http_get(relay.tcp, "/healthz").status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    for client in slow.into_iter().chain(silent) {
        let (status, took) = client.join().unwrap();
        assert_eq!(status, Ok(408));
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(9),
            "{took:?}"
        );
    }
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let answer = read_response(&mut BufReader::new(stalled)).unwrap();
    assert_eq!(answer.status, 408);
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_proxy_refused_total{reason=\"timeout\"}"
        ),
        81.0
    );
    assert_eq!(xray.wait_for_documents(sent.len(), WAIT).len(), sent.len());
}

/// Raises this process's open files limit to its hard limit; returns the soft limit.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls with valid pointers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

#[test]
fn ten_thousand_connections_at_once_are_answered_within_bounded_memory() {
    const CONNECTIONS: usize = 10_000;
    let limit = raise_open_files_limit();
    // Each process (this one, the relay) needs a descriptor per connection.
    if limit < CONNECTIONS as u64 + 1000 {
        panic!(
            "the open files limit is {limit}: raise the hard limit (ulimit -Hn) to run this test"
        );
    }
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let pid = relay.child.id();
    let rss_before = proc_status_kb(pid, "VmRSS");
    let tcp = relay.tcp;
    let started = Instant::now();
    // Every connection asks for /healthz at once: up to the cap they are answered 200, the
    // rest 503; none may hang.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut streams = Vec::new();
                for _ in 0..CONNECTIONS / 8 {
                    let mut stream = TcpStream::connect(tcp).unwrap();
                    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                    streams.push(stream);
                }
                streams
            })
        })
        .collect();
    let sent: Vec<String> = (0..200).map(segment).collect();
    for s in &sent {
        relay.send_segment(s);
    }
    let streams: Vec<TcpStream> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let opened = started.elapsed();
    let rss_open = proc_status_kb(pid, "VmRSS");
    let (mut ok, mut busy, mut closed) = (0, 0, 0);
    for stream in streams {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        match read_response(&mut BufReader::new(stream)) {
            Ok(answer) if answer.status == 200 => ok += 1,
            Ok(answer) if answer.status == 503 => busy += 1,
            Ok(answer) => panic!("unexpected {}: {}", answer.status, answer.text()),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("a connection got no answer in 20 s")
            }
            // Reset or closed before the answer: the relay closed it.
            Err(_) => closed += 1,
        }
    }
    let answered = started.elapsed();
    let rss_after = proc_status_kb(pid, "VmRSS");
    let peak = proc_status_kb(pid, "VmHWM");
    eprintln!(
        "{CONNECTIONS} connections: opened in {opened:?}, all answered or closed in {answered:?}: \
         {ok} × 200, {busy} × 503, {closed} closed; relay RSS {rss_before} kB before, \
         {rss_open} kB with them open, {rss_after} kB after, peak {peak} kB"
    );
    assert_eq!(ok + busy + closed, CONNECTIONS);
    assert!(ok >= 1024, "{ok} answered 200");
    assert!(answered < Duration::from_secs(60), "{answered:?}");
    assert!(
        peak < rss_before + 64 * 1024,
        "peak RSS {peak} kB, {rss_before} kB before"
    );
    let mut received = xray.wait_for_documents(sent.len(), WAIT);
    received.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(received, expected);
    let metrics = http_get(tcp, "/metrics").text();
    assert_eq!(
        metric(&metrics, "xray_relay_proxy_accepted_connections_total"),
        CONNECTIONS as f64 + 1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_proxy_refused_total{reason=\"too_many_connections\"}"
        ),
        (busy + closed) as f64
    );
}

#[test]
fn metrics_count_exactly_what_was_sent() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let sent: Vec<String> = (0..37).map(segment).collect();
    for s in &sent {
        relay.send_segment(s);
    }
    // Refused; uploaded for X-Ray to judge (as the original does); ignored, not even counted.
    for junk in [
        &b"no header"[..],
        b"{\"format\":\"json\",\"version\":1}\n{broken",
        b"",
    ] {
        relay.send(junk);
    }
    assert_eq!(xray.wait_for_documents(38, WAIT).len(), 38);
    // The counters settle once the upload has been counted.
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let metrics = http_get(relay.tcp, "/metrics").text();
        if metric(&metrics, "xray_relay_segments_sent_total") == 38.0 || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(metric(&metrics, "xray_relay_segments_received_total"), 39.0);
    assert_eq!(metric(&metrics, "xray_relay_segments_rejected_total"), 1.0);
    assert_eq!(metric(&metrics, "xray_relay_segments_sent_total"), 38.0);
    assert_eq!(metric(&metrics, "xray_relay_segments_spillover_total"), 0.0);
    assert_eq!(metric(&metrics, "xray_relay_segments_dropped_total"), 0.0);
    let uploads = xray
        .requests()
        .iter()
        .filter(|r| r.path == "/TraceSegments")
        .count() as f64;
    assert_eq!(
        metric(&metrics, "xray_relay_upload_duration_seconds_count"),
        uploads
    );
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_upload_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        uploads
    );
    assert_eq!(metric(&metrics, "xray_relay_uploads_in_flight"), 0.0);
    assert_eq!(metric(&metrics, "xray_relay_buffer_segments"), 0.0);
    for class in [
        "timeout",
        "connection_refused",
        "http_4xx",
        "http_5xx",
        "unknown_host",
        "other",
    ] {
        assert_eq!(
            metric(
                &metrics,
                &format!("xray_relay_backend_errors_total{{class=\"{class}\"}}")
            ),
            0.0
        );
    }
    let health = http_get(relay.tcp, "/healthz");
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["segments"]["received"], 39);
    assert_eq!(body["segments"]["sent"], 38);
    assert!(body["last_success"].as_f64().unwrap() > 1.6e9);
    assert!(body["last_error"].is_null());
}

#[test]
fn healthz_turns_503_while_uploads_fail_and_200_when_they_work_again() {
    let failing = Arc::new(AtomicBool::new(true));
    let switch = failing.clone();
    let xray = MockXRay::with_responder(Arc::new(move |request| {
        if request.path == "/TraceSegments" && switch.load(Ordering::SeqCst) {
            (500, r#"{"message":"backend down"}"#.to_string())
        } else {
            (200, "{}".to_string())
        }
    }));
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.config.push_str("Health:\n  FailAfterSeconds: 1\n");
    let relay = Relay::start(options);
    assert_eq!(http_get(relay.tcp, "/healthz").status, 200);

    let wait_for = |status: u16, from: usize| {
        let deadline = Instant::now() + WAIT;
        let mut i = from;
        loop {
            relay.send_segment(&segment(i));
            i += 1;
            let health = http_get(relay.tcp, "/healthz");
            if health.status == status {
                return health;
            }
            assert!(
                Instant::now() < deadline,
                "never {status}: {}",
                health.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let sick = wait_for(503, 0);
    let body = sick.json();
    assert_eq!(body["status"], "unhealthy");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("uploads have failed for"),
        "{body}"
    );
    assert!(
        body["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("backend down"),
        "{body}"
    );
    assert!(body["uploads_failing_for_seconds"].as_f64().unwrap() >= 1.0);

    failing.store(false, Ordering::SeqCst);
    let well = wait_for(200, 1000).json();
    assert_eq!(well["status"], "ok");
    assert!(well["last_success"].as_f64().is_some());
    assert!(well["uploads_failing_for_seconds"].is_null());
    let metrics = http_get(relay.tcp, "/metrics").text();
    assert!(
        metric(
            &metrics,
            "xray_relay_backend_errors_total{class=\"http_5xx\"}"
        ) >= 1.0
    );
}

#[test]
fn offline_the_sampling_apis_answer_with_the_default_rule() {
    let mut options = RelayOptions::uploading_to("http://127.0.0.1:9");
    options.args.push("--local-sink".into());
    options.args.push("-".into());
    let relay = Relay::start(options);
    let rules = http_post(relay.tcp, "/GetSamplingRules", "{}");
    assert_eq!(rules.status, 200);
    let rule = &rules.json()["SamplingRuleRecords"][0]["SamplingRule"];
    assert_eq!(rule["RuleName"], "Default");
    assert_eq!(rule["ReservoirSize"], 1);
    assert_eq!(rule["FixedRate"], 0.05);
    let targets = http_post(
        relay.tcp,
        "/SamplingTargets",
        r#"{"SamplingStatisticsDocuments":[{"RuleName":"Default","ClientID":"c","Timestamp":1,"RequestCount":1,"SampledCount":1,"BorrowCount":0}]}"#,
    );
    assert_eq!(targets.status, 200);
    let target = &targets.json()["SamplingTargetDocuments"][0];
    assert_eq!(target["RuleName"], "Default");
    assert_eq!(target["ReservoirQuota"], 1);
    let other = http_post(relay.tcp, "/TraceSegments", "{}");
    assert_eq!(other.status, 503);
}

#[test]
fn the_proxy_listens_on_ipv6_too() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let port = support::free_port();
    let xray = MockXRay::start();
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    // The last -t wins.
    options.args.push("-t".into());
    options.args.push(format!("[::1]:{port}"));
    let relay = Relay::start(options);
    relay.wait_for_log(&format!("Starting proxy http server on [::1]:{port}"), WAIT);
    let address: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    assert_eq!(http_get(address, "/healthz").status, 200);
}

#[test]
fn a_tcp_address_in_use_ends_the_relay_with_a_clear_message() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let udp = support::free_port();
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
            &address.to_string(),
        ],
        &[],
    );
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let expected = format!("Unable to start http proxy server: {address}: ");
    assert!(
        stderr.contains(&expected) || stdout.contains(&expected),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stdout.contains("Listening on UDP") && !stderr.contains("Listening on UDP"));
}

/// The original forwards to the endpoint's scheme and host with the request's own path: its
/// reverse proxy drops an endpoint's path prefix (pkg/proxy/server.go sets only Scheme and
/// Host), while its SDK's uploads keep it.
#[test]
fn an_endpoint_path_prefix_is_dropped_by_the_proxy_as_by_the_original() {
    let xray = sampling_mock();
    let relay = Relay::start(RelayOptions::uploading_to(&format!(
        "{}/prefix/",
        xray.endpoint()
    )));
    let rules = http_post(relay.tcp, "/GetSamplingRules?x=1", "{}");
    assert_eq!(rules.status, 200, "{}", rules.text());
    relay.send_segment(&segment(1));
    let uploaded =
        |requests: &[support::Request]| requests.iter().any(|r| r.path == "/prefix/TraceSegments");
    let deadline = Instant::now() + WAIT;
    while !uploaded(&xray.requests()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let requests = xray.requests();
    let forwarded = requests
        .iter()
        .find(|r| r.path.contains("GetSamplingRules"))
        .expect("forwarded");
    assert_eq!(forwarded.path, "/GetSamplingRules?x=1");
    assert_signature_verifies(forwarded);
    assert!(
        uploaded(&requests),
        "{:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

/// Statuses X-Ray answers with pass with Go's reason phrase (what the original's server
/// writes), and unknown ones as Go writes them.
#[test]
fn forwarded_statuses_get_gos_reason_phrases() {
    let xray = MockXRay::with_responder(Arc::new(|request| {
        let status = request
            .path
            .trim_start_matches("/status/")
            .parse()
            .unwrap_or(200);
        (status, "{}".to_string())
    }));
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    for (status, expected) in [
        (200, "HTTP/1.1 200 OK"),
        (413, "HTTP/1.1 413 Request Entity Too Large"),
        (429, "HTTP/1.1 429 Too Many Requests"),
        (501, "HTTP/1.1 501 Not Implemented"),
        (507, "HTTP/1.1 507 Insufficient Storage"),
        (599, "HTTP/1.1 599 status code 599"),
    ] {
        let request = format!(
            "POST /status/{status} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        assert_eq!(status_line(relay.tcp, request.as_bytes()), expected);
    }
}

/// Go's server (the original's) refuses an HTTP/1.1 request without `Host`, with two, or
/// with a byte `httpguts.ValidHostHeader` refuses, with 400, and a well-formed version other
/// than 1.x with 505, in its plain-text words; HTTP/1.0 needs no `Host`, and 1.2 to 1.9 are
/// served as 1.1.
#[test]
fn a_missing_host_is_400_and_an_unknown_version_505() {
    let xray = sampling_mock();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let tcp = relay.tcp;
    let no_host = raw(
        tcp,
        b"POST /GetSamplingRules HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    )
    .unwrap();
    assert_eq!(
        (no_host.status, no_host.text()),
        (
            400,
            "400 Bad Request: missing required Host header".to_owned()
        )
    );
    assert_eq!(
        no_host.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    for (host, expected) in [
        ("Host: x y", "400 Bad Request: malformed Host header"),
        ("Host: x\"y", "400 Bad Request: malformed Host header"),
        (
            "Host: h\u{e9}.example",
            "400 Bad Request: malformed Host header",
        ),
        (
            "Host: a\r\nHost: b",
            "400 Bad Request: too many Host headers",
        ),
    ] {
        let request = format!("GET /healthz HTTP/1.1\r\n{host}\r\n\r\n");
        let answer = raw(tcp, request.as_bytes()).unwrap();
        assert_eq!(
            (answer.status, answer.text()),
            (400, expected.to_owned()),
            "{host}"
        );
    }
    // What Go lets through: IP literals with zones, ports, sub-delims, even an empty Host.
    for host in [
        "[fe80::1%25eth0]:2000",
        "xray_relay.local:2000",
        "a!$&'()*+,;=~",
        "",
    ] {
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(raw(tcp, request.as_bytes()).unwrap().status, 200, "{host}");
    }
    for version in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.1"] {
        let request = format!("GET /healthz {version}\r\nHost: x\r\n\r\n");
        let answer = raw(tcp, request.as_bytes()).unwrap();
        assert_eq!(
            (answer.status, answer.text()),
            (
                505,
                "505 HTTP Version Not Supported: unsupported protocol version".to_owned()
            ),
            "{version}"
        );
    }
    assert_eq!(
        status_line(tcp, b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 505 HTTP Version Not Supported"
    );
    let old = raw(
        tcp,
        b"POST /GetSamplingRules HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
    )
    .unwrap();
    assert_eq!(old.status, 200);
    let newer = raw(
        tcp,
        b"POST /GetSamplingRules HTTP/1.2\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .unwrap();
    assert_eq!((newer.status, newer.text()), (200, RULES.to_string()));
    assert_eq!(
        raw(tcp, b"GET /healthz HTTP/1.10\r\nHost: x\r\n\r\n")
            .unwrap()
            .status,
        400
    );
    let metrics = http_get(tcp, "/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "xray_relay_proxy_refused_total{reason=\"bad_request\"}"
        ),
        10.0
    );
}

/// The relay's own refusals answer an HTTP/1.0 request in HTTP/1.0 too, as the answers it
/// forwards or makes locally do; Go's server (the original's) writes every answer to a 1.0
/// request with an `HTTP/1.0` status line.
#[test]
fn the_relays_own_refusals_answer_http_1_0_in_http_1_0() {
    let xray = sampling_mock();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let tcp = relay.tcp;
    assert_eq!(
        status_line(tcp, b"POST /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n"),
        "HTTP/1.0 405 Method Not Allowed"
    );
    assert_eq!(
        status_line(
            tcp,
            b"POST /GetSamplingRules HTTP/1.0\r\nContent-Length: 2000000\r\n\r\n"
        ),
        "HTTP/1.0 413 Request Entity Too Large"
    );
    assert_eq!(
        status_line(
            tcp,
            b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
        ),
        "HTTP/1.1 413 Request Entity Too Large"
    );
}

/// An endpoint that answers every request, once per connection, with a chunked `RULES`:
/// what X-Ray does when it streams.
fn chunked_endpoint() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let length: usize = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = stream.read_exact(&mut body);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{RULES}\r\n0\r\n\r\n",
                RULES.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    address
}

/// Go's server (the original's) answers an HTTP/1.0 request with an `HTTP/1.0` status line,
/// and, as 1.0 has no chunked encoding, ends a body of unknown length by closing.
#[test]
fn an_http_1_0_request_is_answered_in_http_1_0() {
    let xray = sampling_mock();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let tcp = relay.tcp;
    let forwarded = b"POST /GetSamplingRules HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(status_line(tcp, forwarded), "HTTP/1.0 200 OK");
    assert_eq!(
        status_line(tcp, b"GET /healthz HTTP/1.0\r\n\r\n"),
        "HTTP/1.0 200 OK"
    );
    assert_eq!(
        status_line(tcp, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 200 OK"
    );
    drop(relay);

    let endpoint = format!("http://{}", chunked_endpoint());
    let relay = Relay::start(RelayOptions::uploading_to(&endpoint));
    let mut stream = TcpStream::connect(relay.tcp).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(forwarded).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{answer}"
    );
    assert_eq!(body, RULES);
    // The same answer to HTTP/1.1 stays chunked.
    let mut stream = TcpStream::connect(relay.tcp).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n")
            && answer
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
        "{answer}"
    );
}
