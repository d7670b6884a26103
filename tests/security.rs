//! What SECURITY.md promises and the other suites do not already show: no secret reaches the
//! log even at the most verbose level, through uploads that fail, uploads that succeed and
//! proxied SDK calls; the log and spool files' modes.
//! (The proxy's own promises, endpoint only and never unsigned, are in tests/proxy.rs.)

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{MockXRay, Relay, RelayOptions, http_raw, segment};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKENdoNotLog";

#[test]
fn no_secret_reaches_the_log_at_dev_level() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let xray = MockXRay::with_responder(Arc::new(move |request| {
        if request.path == "/TraceSegments" && seen.fetch_add(1, Ordering::SeqCst) == 0 {
            (
                403,
                r#"{"__type":"AccessDeniedException","message":"no"}"#.into(),
            )
        } else {
            (
                200,
                r#"{"SamplingRuleRecords":[],"UnprocessedTraceSegments":[]}"#.into(),
            )
        }
    }));
    let spool = support::TempDir::new("security-spool");
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.args.extend([
        "-l".into(),
        "dev".into(),
        "--spool-dir".into(),
        spool.path("spool").display().to_string(),
    ]);
    options.env = vec![
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ("AWS_SESSION_TOKEN", TOKEN.into()),
    ];
    let relay = Relay::start(options);
    for i in 0..60 {
        relay.send_segment(&segment(i));
        if i == 0 {
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    xray.wait_for_documents(59, Duration::from_secs(20));
    // An SDK call through the proxy, carrying its own (stale) signature and token.
    let request = format!(
        "POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDSDK/x, Signature={SECRET}\r\nX-Amz-Security-Token: {TOKEN}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let answer = http_raw(relay.tcp, request.as_bytes()).expect("proxy answers");
    assert_eq!(answer.status, 200, "{}", answer.text());
    // The log file is created 0644 like the original's, less the umask: never writable by others.
    let mode = std::fs::metadata(&relay.log).map(|m| m.permissions().mode() & 0o777);
    assert!(matches!(mode, Ok(m) if m & 0o022 == 0), "{mode:?}");
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    // The run did log the paths that could leak: a refused upload, sends, a proxied call.
    assert!(log.contains("AccessDeniedException"), "{log}");
    assert!(
        log.contains("[Debug]") || log.contains("[Dev]") || log.contains("[Trace]"),
        "{log}"
    );
    assert!(log.contains("GetSamplingRules"), "{log}");
    for secret in [SECRET, TOKEN] {
        assert!(!log.contains(secret), "the log holds a secret:\n{log}");
    }
    // The token did go to X-Ray (so it was read), but only in the signed request.
    assert!(
        xray.requests()
            .iter()
            .any(|r| r.header("x-amz-security-token") == Some(TOKEN))
    );
}
