//! What the disk, the network and the backend do to a long-running relay (issue 8, part 3):
//! each fault gives a clear log line and the relay keeps relaying what it can.
//!
//! Not here, and why: a jump of the wall clock cannot be made without changing the host's clock
//! (`faketime` works by LD_PRELOAD, which a static binary ignores); the relay's timers all use
//! `Instant` (monotonic), and the one effect a jump has on X-Ray, a 403 "Signature expired", is
//! retried: `a_signature_expired_answer_is_retried_until_accepted` below. Credentials expiring
//! during an outage needs refreshable credentials (the `creds` branch).

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{MockXRay, Relay, RelayOptions, TempDir, free_port, relay_command, segment};

const WAIT: Duration = Duration::from_secs(20);

/// The relay exits within 9 s of SIGTERM (`relay::SHUTDOWN_BOUND`, README); a little slack for a
/// loaded CI machine.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

fn sorted(mut documents: Vec<String>) -> Vec<String> {
    documents.sort();
    documents
}

/// The documents of a PutTraceSegments request.
fn documents_of(request: &support::Request) -> Vec<String> {
    request.json()["TraceSegmentDocuments"]
        .as_array()
        .map(|documents| {
            documents
                .iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Sends SIGTERM to `pid`.
fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// Records of every spool file in `dir`.
fn spooled_documents(dir: &std::path::Path) -> Vec<String> {
    let mut documents = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "spool"))
        .collect();
    files.sort();
    for file in files {
        xray_relay::spool::read_file(&file, |document| {
            documents.push(String::from_utf8_lossy(document).into_owned())
        })
        .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    }
    documents
}

#[test]
fn a_log_file_on_a_full_disk_is_said_once_on_stderr_and_segments_still_flow() {
    let xray = MockXRay::start();
    let dir = TempDir::new("full-disk");
    let config = dir.path("cfg.yaml");
    std::fs::write(
        &config,
        format!("Version: 2\nEndpoint: \"{}\"\n", xray.endpoint()),
    )
    .unwrap();
    let port = free_port();
    let mut child = relay_command()
        .args([
            "-c",
            config.to_str().unwrap(),
            "-f",
            "/dev/full",
            "-l",
            "debug",
        ])
        .args(["-o", "-n", "us-east-1", "-b", &format!("127.0.0.1:{port}")])
        .args(["-t", &format!("127.0.0.1:{}", free_port())])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log cannot say when the relay listens: send until segments arrive.
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + WAIT;
    let mut sent = Vec::new();
    while xray.documents().is_empty() && Instant::now() < deadline {
        let document = segment(sent.len());
        let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{document}");
        sender
            .send_to(datagram.as_bytes(), ("127.0.0.1", port))
            .unwrap();
        sent.push(document);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !xray.documents().is_empty(),
        "no segment arrived in {WAIT:?}"
    );
    // Those sent before the relay listened are gone; from now on, none may be.
    let after: Vec<String> = (1000..1020).map(segment).collect();
    for document in &after {
        let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{document}");
        sender
            .send_to(datagram.as_bytes(), ("127.0.0.1", port))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    sigterm(child.id());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status}\n{stderr}");
    assert!(started.elapsed() < SHUTDOWN_BOUND);
    // Every segment sent once it listened was uploaded (the shutdown flush takes the last).
    let received = xray.documents();
    for document in &after {
        assert!(
            received.contains(document),
            "lost {document}\nstderr:\n{stderr}"
        );
    }
    assert!(
        received
            .iter()
            .all(|d| sent.contains(d) || after.contains(d))
    );
    let line = "[Error] Cannot write to log file /dev/full: No space left on device";
    assert_eq!(count(&stderr, line), 1, "stderr:\n{stderr}");
}

#[test]
fn a_removed_log_directory_is_recreated_with_a_line_saying_so_and_segments_still_flow() {
    let xray = MockXRay::start();
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    relay.send_segment(&segment(0));
    xray.wait_for_documents(1, WAIT);
    std::fs::remove_dir_all(&relay.dir.0).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut i = 1;
    // Debug logs a line per batch, so the writer gets to look at its file every second or so.
    while !relay.log_text().contains("was removed or moved away") && Instant::now() < deadline {
        relay.send_segment(&segment(i));
        i += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let received = xray.wait_for_documents(i, WAIT);
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    assert_eq!(received.len(), i, "log:\n{log}");
    let line = format!(
        "[Warn] Log file {} was removed or moved away; reopened it",
        relay_log_path_display(&log)
    );
    assert_eq!(count(&log, &line), 1, "log:\n{log}");
    assert!(log.contains("Successfully sent batch"), "{log}");
}

/// The log path as the notice names it, read from the notice itself (the test only knows the
/// directory through the relay handle, which `stop` consumed).
fn relay_log_path_display(log: &str) -> String {
    log.split("[Warn] Log file ")
        .nth(1)
        .and_then(|rest| rest.split(" was removed").next())
        .unwrap_or_else(|| panic!("no removal notice in:\n{log}"))
        .to_owned()
}

#[test]
fn a_spool_directory_turned_into_a_file_is_said_once_and_the_pool_still_delivers() {
    let up = Arc::new(AtomicBool::new(false));
    let answer = up.clone();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let keep = accepted.clone();
    let xray = MockXRay::with_responder(Arc::new(move |request| {
        if answer.load(Ordering::SeqCst) {
            if request.path == "/TraceSegments" {
                keep.lock().unwrap().extend(documents_of(request));
            }
            (200, "{}".into())
        } else {
            (
                503,
                r#"{"__type":"ServiceUnavailableException","message":"down"}"#.into(),
            )
        }
    }));
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    let spool_dir = TempDir::new("spool-file");
    let spool = spool_dir.path("spool");
    options.args.extend([
        "-m".into(),
        "3".into(),
        "--spool-dir".into(),
        spool.display().to_string(),
    ]);
    let relay = Relay::start(options);
    // The spool's directory becomes a plain file: every spool write now fails.
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, "in the way").unwrap();
    // 6 MB of segments into a 3 MB pool with X-Ray down: the oldest go to the spool, and fail.
    let pad = "p".repeat(10_000);
    let big = |i: usize| segment(i).replacen("\"name\"", &format!("\"pad\":\"{pad}\",\"name\""), 1);
    for i in 0..600 {
        relay.send_segment(&big(i));
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    relay.wait_for_log("Cannot write to spool", WAIT);
    // X-Ray comes back: what the pool still holds is delivered.
    up.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + WAIT;
    while accepted.lock().unwrap().len() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Something new still flows through end to end.
    relay.send_segment(&segment(10_000));
    let deadline = Instant::now() + WAIT;
    while !accepted.lock().unwrap().contains(&segment(10_000)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    let delivered = accepted.lock().unwrap().clone();
    assert!(delivered.contains(&segment(10_000)), "log:\n{log}");
    assert!(
        delivered.len() >= 100,
        "{} delivered\n{log}",
        delivered.len()
    );
    let line = format!(
        "[Error] Cannot write to spool {}: Not a directory (os error 20); segments for it are lost until it can be written again",
        spool.display()
    );
    assert_eq!(count(&log, &line), 1, "log:\n{log}");
    assert_eq!(count(&log, "Cannot write to spool"), 1, "log:\n{log}");
}

#[test]
fn a_failing_dns_name_is_logged_retried_and_spooled_at_shutdown() {
    let spool_dir = TempDir::new("dns");
    let spool = spool_dir.path("spool");
    let mut options = RelayOptions::uploading_to("http://xray.invalid");
    options
        .args
        .extend(["--spool-dir".into(), spool.display().to_string()]);
    let relay = Relay::start(options);
    let sent: Vec<String> = (0..30).map(segment).collect();
    for document in &sent {
        relay.send_segment(document);
    }
    let log = relay.wait_for_log("will retry", WAIT);
    assert!(
        log.contains("Sending segment batch failed with: ") && log.contains("xray.invalid"),
        "the failure does not name the host:\n{log}"
    );
    let started = Instant::now();
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    assert!(
        started.elapsed() < SHUTDOWN_BOUND,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        sorted(spooled_documents(&spool)),
        sorted(sent),
        "log:\n{log}"
    );
}

/// Sends 20 segments to an X-Ray that answers the first `refusals` uploads with 403 and
/// `body`, then accepts; checks every segment arrived and the relay exited cleanly, and
/// returns its log.
fn delivered_through_403s(refusals: usize, body: &'static str) -> String {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let xray = MockXRay::with_responder(Arc::new(move |request| {
        if request.path == "/TraceSegments" && seen.fetch_add(1, Ordering::SeqCst) < refusals {
            (403, body.into())
        } else {
            (200, "{}".into())
        }
    }));
    let relay = Relay::start(RelayOptions::uploading_to(&xray.endpoint()));
    let sent: Vec<String> = (0..20).map(segment).collect();
    for document in &sent {
        relay.send_segment(document);
    }
    let received = xray.wait_for_documents(sent.len(), WAIT);
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    assert_eq!(sorted(received), sorted(sent), "log:\n{log}");
    log
}

#[test]
fn a_signature_expired_answer_is_retried_until_accepted() {
    let log = delivered_through_403s(
        2,
        r#"{"message":"Signature expired: 20161124T060706Z is now earlier than 20161124T061206Z (20161124T061706Z - 5 min.)"}"#,
    );
    assert!(
        log.contains("Signature expired") && log.contains("will retry"),
        "{log}"
    );
}

#[test]
fn a_fast_clock_is_retried_until_accepted_and_said_once_with_the_skew() {
    let log = delivered_through_403s(
        3,
        r#"{"__type":"InvalidSignatureException","message":"Signature not yet current: 20261204T171000Z is still later than 20261204T170500Z (20261204T170000Z + 5 min.)"}"#,
    );
    assert_eq!(count(&log, "will retry"), 3, "{log}");
    assert_eq!(
        count(&log, "this host's clock is 600 s ahead of X-Ray's"),
        1,
        "{log}"
    );
}

#[test]
fn sigterm_during_a_retry_storm_exits_within_the_bound_with_everything_spooled() {
    let xray = MockXRay::with_responder(Arc::new(|request| {
        if request.path == "/TraceSegments" {
            (
                503,
                r#"{"__type":"ServiceUnavailableException","message":"storm"}"#.into(),
            )
        } else {
            (200, "{}".into())
        }
    }));
    let spool_dir = TempDir::new("storm");
    let spool = spool_dir.path("spool");
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options
        .args
        .extend(["--spool-dir".into(), spool.display().to_string()]);
    let relay = Relay::start(options);
    let sent: Vec<String> = (0..1000).map(segment).collect();
    for (i, document) in sent.iter().enumerate() {
        relay.send_segment(document);
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Every uploader is retrying.
    let deadline = Instant::now() + WAIT;
    while count(&relay.log_text(), "will retry") < 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let (status, log) = relay.stop();
    let took = started.elapsed();
    eprintln!("shutdown during a retry storm took {took:?}");
    assert!(status.success(), "{log}");
    assert!(took < SHUTDOWN_BOUND, "shutdown took {took:?}\n{log}");
    assert!(
        xray.requests().iter().any(|r| r.path == "/TraceSegments"),
        "no upload was tried"
    );
    assert_eq!(
        sorted(spooled_documents(&spool)),
        sorted(sent),
        "log:\n{log}"
    );
    assert!(log.contains("Spooled"), "{log}");
}

/// An X-Ray endpoint that accepts connections and never reads or answers: every call hangs
/// until the relay's own timeout.
fn silent_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{address}")
}

/// A segment of about 1 KB, so that a few thousand overflow the smallest pool.
fn kilobyte_segment(i: usize) -> String {
    format!(
        r#"{{"trace_id":"1-5f84c7a1-{i:024x}","id":"{i:016x}","name":"test-{i}","start_time":1602537377.0,"end_time":1602537378.5,"metadata":{{"pad":"{}"}}}}"#,
        "x".repeat(800)
    )
}

/// Segments the relay has received, from `/metrics`.
fn received(relay: &Relay) -> f64 {
    let metrics = support::http_get(relay.tcp, "/metrics").text();
    support::metric(&metrics, "xray_relay_segments_received_total")
}

/// Sends SIGTERM and returns how long the relay took to exit, with its log.
fn time_shutdown(relay: Relay) -> (Duration, std::process::ExitStatus, String) {
    let started = Instant::now();
    let (status, log) = relay.stop();
    (started.elapsed(), status, log)
}

#[test]
fn a_backend_that_hangs_cannot_stretch_shutdown_and_overflowed_in_flight_batches_are_spooled() {
    let spool_dir = TempDir::new("hang");
    let spool = spool_dir.path("spool");
    let mut options = RelayOptions::uploading_to(&silent_endpoint());
    options.args.extend([
        "-m".into(),
        "3".into(),
        "--spool-dir".into(),
        spool.display().to_string(),
    ]);
    let relay = Relay::start(options);
    // 5 MB into a 3 MB pool: every uploader takes a batch and hangs in its call, and the pool
    // then reuses the space of those in-flight batches for newer segments.
    let sent: Vec<String> = (0..5000).map(kilobyte_segment).collect();
    for (i, document) in sent.iter().enumerate() {
        relay.send_segment(document);
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let deadline = Instant::now() + WAIT;
    while received(&relay) < sent.len() as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (took, status, log) = time_shutdown(relay);
    eprintln!("shutdown with a silent endpoint took {took:?}");
    assert!(status.success(), "{log}");
    assert!(took < SHUTDOWN_BOUND, "shutdown took {took:?}\n{log}");
    assert_eq!(
        sorted(spooled_documents(&spool)),
        sorted(sent),
        "every segment is in the spool once; log:\n{log}"
    );
}

#[test]
fn a_credential_process_that_hangs_cannot_stretch_shutdown() {
    let dir = TempDir::new("hanging-process");
    let marker = dir.path("fetched-once");
    let script = dir.path("credentials.sh");
    // The first run (at start) gives credentials that expire within seconds; every later
    // run hangs, as a process waiting on a dead SSO or vault server does.
    std::fs::write(
        &script,
        format!(
            r#"if [ -e '{marker}' ]; then sleep 60; exit 1; fi
touch '{marker}'
printf '{{"Version":1,"AccessKeyId":"AKIDEXAMPLE","SecretAccessKey":"secret","SessionToken":"token","Expiration":"%s"}}' "$(date -u -d '+7 seconds' +%Y-%m-%dT%H:%M:%SZ)"
"#,
            marker = marker.display()
        ),
    )
    .expect("write the script");
    let config = dir.path("config");
    std::fs::write(
        &config,
        format!("[default]\ncredential_process = sh {}\n", script.display()),
    )
    .expect("write the config");
    let xray = MockXRay::start();
    let spool = dir.path("spool");
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.env = vec![("AWS_CONFIG_FILE", config.display().to_string())];
    options
        .args
        .extend(["--spool-dir".into(), spool.display().to_string()]);
    let relay = Relay::start(options);
    assert!(
        marker.exists(),
        "the first credentials came from the process"
    );
    // Within 5 s of expiry the credentials are no longer used: uploads need new ones.
    std::thread::sleep(Duration::from_secs(3));
    let sent: Vec<String> = (0..120).map(segment).collect();
    for document in &sent {
        relay.send_segment(document);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (took, status, log) = time_shutdown(relay);
    eprintln!("shutdown with a hanging credential_process took {took:?}");
    assert!(status.success(), "{log}");
    assert!(took < SHUTDOWN_BOUND, "shutdown took {took:?}\n{log}");
    let mut kept = xray.documents();
    kept.extend(spooled_documents(&spool));
    assert_eq!(sorted(kept), sorted(sent), "log:\n{log}");
}
