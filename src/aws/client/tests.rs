//! Tests of the X-Ray client against a tiny HTTP server on 127.0.0.1.

use super::*;
use crate::aws::backend_error::ErrorClass;
use crate::aws::credentials::{Credentials, CredentialsSource, EnvironmentSource};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// One request as the server saw it.
#[derive(Debug)]
struct Captured {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A canned answer.
struct Answer {
    status: u16,
    extra_headers: &'static str,
    body: &'static str,
    delay: Duration,
}

impl Answer {
    fn new(status: u16, body: &'static str) -> Answer {
        Answer {
            status,
            extra_headers: "",
            body,
            delay: Duration::ZERO,
        }
    }
}

/// Accepts one connection and answers `answers.len()` requests on it, in order.
fn serve(answers: Vec<Answer>) -> (u16, JoinHandle<Vec<Captured>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buffer = Vec::new();
        let mut captured = Vec::new();
        for answer in answers {
            captured.push(read_request(&mut stream, &mut buffer));
            thread::sleep(answer.delay);
            let response = format!(
                "HTTP/1.1 {} Test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{}",
                answer.status,
                answer.body.len(),
                answer.extra_headers,
                answer.body
            );
            // The client may have given up already (timeout test).
            let _ = stream.write_all(response.as_bytes());
        }
        captured
    });
    (port, handle)
}

fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Captured {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        read_more(stream, buffer);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.parse().unwrap());
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        read_more(stream, buffer);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Captured {
        request_line,
        headers,
        body,
    }
}

fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let read = stream.read(&mut chunk).unwrap();
    assert!(read > 0, "client closed the connection mid-request");
    buffer.extend_from_slice(&chunk[..read]);
}

const TEST_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
    ("AWS_SECRET_ACCESS_KEY", "test-secret-key"),
    ("AWS_SESSION_TOKEN", "test-session-token"),
    ("AWS_EXECUTION_ENV", "AWS_ECS_EC2"),
];

fn client_with(settings: ClientSettings, extra_env: &[(&str, &str)]) -> XRayClient {
    let env = Env::from_pairs(TEST_ENV.iter().chain(extra_env).copied());
    let source: Box<dyn CredentialsSource> = Box::new(EnvironmentSource::new(env.clone()));
    let provider = Arc::new(CredentialsProvider::new(vec![source]));
    XRayClient::new(&settings, provider, &env).unwrap()
}

fn local_client(port: u16) -> XRayClient {
    client_with(
        ClientSettings::new(format!("http://127.0.0.1:{port}"), "us-west-2"),
        &[],
    )
}

#[test]
fn posts_signed_json_with_the_original_headers() {
    let (port, server) = serve(vec![Answer::new(200, r#"{"UnprocessedTraceSegments":[]}"#)]);
    let client = local_client(port);
    let before = SystemTime::now();
    let response = client
        .post_json("/TraceSegments", br#"{"TraceSegmentDocuments":[]}"#)
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, br#"{"UnprocessedTraceSegments":[]}"#);

    let captured = server.join().unwrap().remove(0);
    assert_eq!(captured.request_line, "POST /TraceSegments HTTP/1.1");
    assert_eq!(captured.body, br#"{"TraceSegmentDocuments":[]}"#);
    assert_eq!(captured.header("content-type"), Some("application/json"));
    assert_eq!(
        captured.header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    let user_agent = captured.header("user-agent").unwrap();
    // The original's agent token, as X-Ray's side recognises daemon traffic by it.
    let expected_prefix = format!(
        "xray-relay/{} xray-agent/xray-daemon/3.6.6 exec-env/AWS_ECS_EC2 OS/",
        env!("CARGO_PKG_VERSION")
    );
    assert!(user_agent.starts_with(&expected_prefix), "{user_agent}");

    let timestamp = captured.header("x-amzn-xray-timestamp").unwrap();
    let (seconds, nanos) = timestamp.split_once('.').unwrap();
    assert_eq!(nanos.len(), 9, "{timestamp}");
    let seconds: u64 = seconds.parse().unwrap();
    let before_seconds = before
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(seconds >= before_seconds && seconds <= before_seconds + 5);

    assert_eq!(
        captured.header("x-amz-security-token"),
        Some("test-session-token")
    );
    let amz_date = captured.header("x-amz-date").unwrap();
    let authorization = captured.header("authorization").unwrap();
    let scope = format!(
        "Credential=AKIDTEST/{}/us-west-2/xray/aws4_request",
        &amz_date[..8]
    );
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 "),
        "{authorization}"
    );
    assert!(authorization.contains(&scope), "{authorization}");
    assert!(
        authorization.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amzn-xray-timestamp,"
        ),
        "{authorization}"
    );
    assert!(!authorization.contains("user-agent"));
}

#[test]
fn the_captured_signature_verifies_against_what_was_sent() {
    let (port, server) = serve(vec![Answer::new(200, "{}")]);
    local_client(port)
        .post_json("/TelemetryRecords", b"{\"a\":1}")
        .unwrap();
    let captured = server.join().unwrap().remove(0);

    // Re-sign what the server received (host as received, date as sent): a signature over
    // anything other than the bytes on the wire would not match.
    let amz_date = captured.header("x-amz-date").unwrap();
    let time = parse_amz_date(amz_date);
    let headers = [
        ("Content-Type", captured.header("content-type").unwrap()),
        (
            "X-Amzn-Xray-Timestamp",
            captured.header("x-amzn-xray-timestamp").unwrap(),
        ),
        ("Host", captured.header("host").unwrap()),
    ];
    let path = captured.request_line.split(' ').nth(1).unwrap();
    let url = format!("http://{}{path}", captured.header("host").unwrap());
    let credentials = Credentials::new(
        "AKIDTEST",
        "test-secret-key",
        Some("test-session-token".to_owned()),
    );
    let expected = Signer::new("us-west-2", XRAY_SERVICE)
        .sign(
            &RequestToSign {
                method: "POST",
                url: &url,
                headers: &headers,
                body: &captured.body,
            },
            &credentials,
            time,
        )
        .unwrap();
    let expected_authorization = expected
        .iter()
        .find(|(name, _)| *name == "authorization")
        .map(|(_, value)| value.as_str());
    assert_eq!(captured.header("authorization"), expected_authorization);
}

/// `20240102T030405Z` → SystemTime.
fn parse_amz_date(text: &str) -> SystemTime {
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let (hour, minute, second) = (number(9..11), number(11..13), number(13..15));
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64)
}

#[test]
fn parse_amz_date_is_right() {
    assert_eq!(
        parse_amz_date("20240102T030405Z"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645)
    );
}

#[test]
fn a_400_answer_keeps_the_error_type_and_message() {
    let (port, server) = serve(vec![Answer::new(
        400,
        r#"{"__type":"InvalidRequestException","message":"Invalid segment. ErrorCode: InvalidTraceId"}"#,
    )]);
    let error = local_client(port)
        .post_json("/TraceSegments", b"{}")
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(error.class(), ErrorClass::Http4xx);
    match error {
        BackendError::Http {
            status,
            error_type,
            message,
            ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(error_type.as_deref(), Some("InvalidRequestException"));
            assert_eq!(message, "Invalid segment. ErrorCode: InvalidTraceId");
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[test]
fn the_error_type_header_is_read() {
    let (port, server) = serve(vec![Answer {
        extra_headers: "x-amzn-ErrorType: ThrottledException:http://internal.amazon.com/\r\n",
        ..Answer::new(429, r#"{"message":"Rate exceeded"}"#)
    }]);
    let error = local_client(port)
        .post_json("/TraceSegments", b"{}")
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(
        error.to_string(),
        "X-Ray answered HTTP 429 ThrottledException: Rate exceeded"
    );
}

#[test]
fn a_503_answer_is_a_5xx() {
    let (port, server) = serve(vec![Answer::new(503, "")]);
    let error = local_client(port)
        .post_json("/TraceSegments", b"{}")
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(error.class(), ErrorClass::Http5xx);
    assert!(matches!(error, BackendError::Http { status: 503, .. }));
}

#[test]
fn redirects_are_reported_not_followed() {
    let (port, server) = serve(vec![Answer {
        extra_headers: "Location: http://127.0.0.1:9/elsewhere\r\n",
        ..Answer::new(307, "")
    }]);
    let error = local_client(port)
        .post_json("/TraceSegments", b"{}")
        .unwrap_err();
    server.join().unwrap();
    assert!(
        matches!(error, BackendError::Http { status: 307, .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Other);
}

#[test]
fn connections_are_kept_alive_between_requests() {
    // The server accepts a single connection; a second connection would never be answered.
    let (port, server) = serve(vec![Answer::new(200, "{}"), Answer::new(200, "{}")]);
    let client = local_client(port);
    client.post_json("/TraceSegments", b"{}").unwrap();
    client.post_json("/TelemetryRecords", b"{}").unwrap();
    let captured = server.join().unwrap();
    assert_eq!(captured[1].request_line, "POST /TelemetryRecords HTTP/1.1");
}

#[test]
fn bodies_larger_than_the_connection_buffers_go_through_whole() {
    // A 256 KB batch of escaped documents is ten times the output buffer, and a sampling
    // answer can be several times the input buffer; both go through in pieces, and the
    // connection stays usable.
    let answer: &'static str = Box::leak(
        format!("{{\"SamplingRuleRecords\":\"{}\"}}", "r".repeat(100_000)).into_boxed_str(),
    );
    let (port, server) = serve(vec![Answer::new(200, answer), Answer::new(200, answer)]);
    let client = local_client(port);
    let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..2 {
        let response = client.post_json("/TraceSegments", &body).unwrap();
        assert_eq!(response.body, answer.as_bytes());
    }
    let captured = server.join().unwrap();
    assert_eq!(captured.len(), 2);
    assert!(captured.iter().all(|request| request.body == body));
}

#[test]
fn a_closed_port_is_connection_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = local_client(port)
        .post_json("/TraceSegments", b"{}")
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::ConnectionRefused, "{error}");
}

#[test]
fn an_unresolvable_host_is_unknown_host() {
    let client = client_with(
        ClientSettings::new("http://xray.example.invalid", "us-west-2"),
        &[],
    );
    let error = client.post_json("/TraceSegments", b"{}").unwrap_err();
    assert_eq!(error.class(), ErrorClass::UnknownHost, "{error}");
}

#[test]
fn a_slow_server_is_a_timeout() {
    let (port, _server) = serve(vec![Answer {
        delay: Duration::from_secs(3),
        ..Answer::new(200, "{}")
    }]);
    let mut settings = ClientSettings::new(format!("http://127.0.0.1:{port}"), "us-west-2");
    settings.request_timeout = Duration::from_millis(300);
    let client = client_with(settings, &[]);
    let started = Instant::now();
    let error = client.post_json("/TraceSegments", b"{}").unwrap_err();
    assert_eq!(error.class(), ErrorClass::Timeout, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn requests_go_through_the_configured_proxy() {
    // ureq tunnels through an HTTP proxy with CONNECT, then speaks to the endpoint inside.
    let (proxy_port, proxy) = serve(vec![Answer::new(200, ""), Answer::new(200, "{}")]);
    let mut settings = ClientSettings::new("http://xray.example.invalid:2000", "us-west-2");
    settings.proxy_address = Some(format!("http://127.0.0.1:{proxy_port}"));
    client_with(settings, &[])
        .post_json("/TraceSegments", b"{}")
        .unwrap();
    let captured = proxy.join().unwrap();
    assert_eq!(
        captured[0].request_line,
        "CONNECT xray.example.invalid:2000 HTTP/1.1"
    );
    assert_eq!(captured[1].request_line, "POST /TraceSegments HTTP/1.1");
    assert_eq!(
        captured[1].header("host"),
        Some("xray.example.invalid:2000")
    );
}

#[test]
fn no_proxy_bypasses_the_environment_proxy() {
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = format!("http://127.0.0.1:{refused}");
    let (port, server) = serve(vec![Answer::new(200, "{}")]);
    let settings = ClientSettings::new(format!("http://127.0.0.1:{port}"), "us-west-2");
    let client = client_with(
        settings,
        &[("HTTPS_PROXY", &proxy), ("NO_PROXY", "localhost,127.0.0.1")],
    );
    client.post_json("/TraceSegments", b"{}").unwrap();
    server.join().unwrap();
}

#[test]
fn missing_credentials_fail_before_sending() {
    let env = Env::from_pairs([]);
    let provider = Arc::new(CredentialsProvider::new(vec![]));
    let client = XRayClient::new(
        &ClientSettings::new("http://127.0.0.1:9", "us-west-2"),
        provider,
        &env,
    )
    .unwrap();
    let error = client.post_json("/TraceSegments", b"{}").unwrap_err();
    assert!(matches!(error, BackendError::Credentials(_)), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Other);
}

#[test]
fn bad_endpoint_or_proxy_urls_fail_the_build_without_leaking_passwords() {
    let env = Env::from_pairs([]);
    let provider = Arc::new(CredentialsProvider::new(vec![]));
    let error = XRayClient::new(
        &ClientSettings::new("xray.local", "us-west-2"),
        provider.clone(),
        &env,
    )
    .unwrap_err();
    assert!(matches!(error, ClientBuildError::Endpoint(_)));
    let mut settings = ClientSettings::new("https://xray.us-west-2.amazonaws.com", "us-west-2");
    settings.proxy_address = Some("ftp://user:hunter2@proxy:21".to_owned());
    let error = XRayClient::new(&settings, provider, &env).unwrap_err();
    assert_eq!(error.to_string(), "Bad proxy URL: ftp://***@proxy:21");
}

#[test]
fn no_verify_ssl_builds_a_client() {
    let mut settings = ClientSettings::new("https://xray.us-west-2.amazonaws.com", "us-west-2");
    settings.no_verify_ssl = true;
    let client = client_with(settings, &[]);
    assert_eq!(client.endpoint().host, "xray.us-west-2.amazonaws.com");
    assert_eq!(client.region(), "us-west-2");
}

#[test]
fn the_client_is_shared_between_uploader_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<XRayClient>();
    let (port, server) = serve(vec![Answer::new(200, "{}")]);
    let client = Arc::new(local_client(port));
    let worker = {
        let client = client.clone();
        thread::spawn(move || client.post_json("/TraceSegments", b"{}").map(|r| r.status))
    };
    assert_eq!(worker.join().unwrap().unwrap(), 200);
    server.join().unwrap();
}

#[test]
fn timestamps_have_nine_decimals() {
    let time = SystemTime::UNIX_EPOCH + Duration::new(1_704_164_645, 5);
    assert_eq!(xray_timestamp(time), "1704164645.000000005");
    assert_eq!(xray_timestamp(SystemTime::UNIX_EPOCH), "0.000000000");
}

#[test]
fn the_user_agent_uses_go_names() {
    assert_eq!(go_arch_name("x86_64"), "amd64");
    assert_eq!(go_arch_name("aarch64"), "arm64");
    assert_eq!(go_arch_name("arm"), "arm");
    assert_eq!(go_os_name("linux"), "linux");
    assert_eq!(go_os_name("macos"), "darwin");
    let agent = user_agent(&Env::from_pairs([]));
    assert!(
        agent.contains(" xray-agent/xray-daemon/3.6.6 exec-env/UNKNOWN OS/"),
        "{agent}"
    );
    let arch = go_arch_name(std::env::consts::ARCH);
    assert!(agent.ends_with(&format!("-{arch}")), "{agent}");
}

fn sampling_request(headers: &[(&str, &str)]) -> ForwardRequest {
    ForwardRequest {
        method: "POST".into(),
        target: "/GetSamplingRules".into(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: b"{}".to_vec(),
    }
}

#[test]
fn forwarded_requests_keep_their_headers_and_are_signed_over_them() {
    let mut answer = Answer::new(404, r#"{"message":"no such rule"}"#);
    answer.extra_headers = "X-Amzn-RequestId: abc\r\n";
    let (port, server) = serve(vec![answer]);
    let request = sampling_request(&[
        ("Content-Type", "application/json"),
        ("X-Custom", "kept"),
        ("User-Agent", "aws-sdk-python"),
        ("X-Amzn-Trace-Id", "Root=1-abc"),
    ]);
    let mut response = local_client(port)
        .forward(&request, Duration::from_secs(5))
        .unwrap();
    // Any status is an answer to pass on, with its headers and body.
    assert_eq!(response.status, 404);
    assert!(
        response
            .headers
            .iter()
            .any(|(name, value)| name == "x-amzn-requestid" && value == b"abc")
    );
    let mut body = String::new();
    response.body.read_to_string(&mut body).unwrap();
    assert_eq!(body, r#"{"message":"no such rule"}"#);

    let captured = server.join().unwrap().remove(0);
    assert_eq!(captured.request_line, "POST /GetSamplingRules HTTP/1.1");
    assert_eq!(captured.body, b"{}");
    assert_eq!(captured.header("x-custom"), Some("kept"));
    assert_eq!(captured.header("user-agent"), Some("aws-sdk-python"));
    assert_eq!(captured.header("content-length"), Some("2"));
    let authorization = captured.header("authorization").unwrap();
    assert!(
        authorization.contains(
            "SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token;x-custom,"
        ),
        "{authorization}"
    );
}

#[test]
fn forwarding_without_credentials_fails_before_sending() {
    let env = Env::from_pairs([]);
    let client = XRayClient::new(
        &ClientSettings::new("http://127.0.0.1:9", "us-west-2"),
        Arc::new(CredentialsProvider::new(vec![])),
        &env,
    )
    .unwrap();
    let error = client
        .forward(&sampling_request(&[]), Duration::from_secs(1))
        .unwrap_err();
    assert!(matches!(error, BackendError::Credentials(_)), "{error:?}");
}

#[test]
fn forwarding_to_a_closed_port_is_connection_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = local_client(port)
        .forward(&sampling_request(&[]), Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::ConnectionRefused, "{error}");
}

#[test]
fn resolved_addresses_are_reused_per_host() {
    let resolver = CachingResolver::default();
    let config = ureq::config::Config::default();
    let timeout = NextTimeout {
        after: ureq::unversioned::transport::time::Duration::NotHappening,
        reason: ureq::Timeout::Global,
        per_read: None,
        per_write: None,
    };
    let first: ureq::http::Uri = "http://127.0.0.1:2000/TraceSegments".parse().unwrap();
    let again: ureq::http::Uri = "http://127.0.0.1:2000/TelemetryRecords".parse().unwrap();
    let other: ureq::http::Uri = "http://127.0.0.2:2000/TraceSegments".parse().unwrap();
    let a = resolver.resolve(&first, &config, timeout).unwrap();
    let b = resolver.resolve(&again, &config, timeout).unwrap();
    assert_eq!(a[0], b[0]);
    assert_eq!(resolver.cache.lock().unwrap().len(), 1);
    let c = resolver.resolve(&other, &config, timeout).unwrap();
    assert_eq!(c[0].ip().to_string(), "127.0.0.2");
    assert_eq!(resolver.cache.lock().unwrap().len(), 2);
}

#[test]
fn a_plain_http_endpoint_uses_http_proxy_not_https_proxy() {
    use crate::aws::test_http::TestProxy;
    let (port, server) = serve(vec![Answer::new(200, "{}")]);
    let proxy = TestProxy::start("xray.test-only.invalid", port);
    let endpoint = format!("http://xray.test-only.invalid:{port}");
    // Only HTTPS_PROXY: the plain-http endpoint is called directly, so the made-up name fails
    // to resolve and the proxy sees nothing.
    let https_only = client_with(
        ClientSettings::new(endpoint.clone(), "us-west-2"),
        &[("HTTPS_PROXY", proxy.url().as_str())],
    );
    assert!(https_only.post_json("/TraceSegments", b"{}").is_err());
    assert!(proxy.connects().is_empty(), "{:?}", proxy.connects());
    // HTTP_PROXY: the call goes through the proxy, the only one that knows the name.
    let via_proxy = client_with(
        ClientSettings::new(endpoint, "us-west-2"),
        &[("http_proxy", proxy.url().as_str())],
    );
    let response = via_proxy.post_json("/TraceSegments", b"{}").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(proxy.connects(), [format!("xray.test-only.invalid:{port}")]);
    assert_eq!(
        server.join().unwrap()[0].request_line,
        "POST /TraceSegments HTTP/1.1"
    );
}

#[test]
fn a_local_endpoint_is_never_proxied() {
    let (port, server) = serve(vec![Answer::new(200, "{}")]);
    // A proxy that does not exist: using it would fail the call.
    let client = client_with(
        ClientSettings::new(format!("http://localhost:{port}"), "us-west-2"),
        &[
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
            ("HTTP_PROXY", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(
        client.post_json("/TraceSegments", b"{}").unwrap().status,
        200
    );
    assert_eq!(server.join().unwrap().len(), 1);
}
