//! The spool against the real binary (issue 14): an outage that overflows both the pool and
//! the spool; every segment is then either delivered or counted as lost, once, and `/metrics`
//! and the telemetry records agree with what reached X-Ray.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{MockXRay, Relay, RelayOptions, TempDir, http_get, metric, segment};

/// Segments of about 10 KB, so that a few MB overflow the 3 MB pool and the 1 MB spool.
fn big(i: usize) -> String {
    let pad = "p".repeat(10_000);
    segment(i).replacen("\"name\"", &format!("\"pad\":\"{pad}\",\"name\""), 1)
}

#[test]
fn an_overflowing_spool_loses_segments_counted_once_and_metrics_and_telemetry_agree() {
    let up = Arc::new(AtomicBool::new(false));
    let answer = up.clone();
    let xray = MockXRay::with_responder(Arc::new(move |request| {
        if answer.load(Ordering::SeqCst) || request.path != "/TraceSegments" {
            (200, "{}".into())
        } else {
            (
                503,
                r#"{"__type":"ServiceUnavailableException","message":"down"}"#.into(),
            )
        }
    }));
    let spool_dir = TempDir::new("overflow");
    let spool = spool_dir.path("spool");
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.args.extend([
        "-m".into(),
        "3".into(),
        "--spool-dir".into(),
        spool.display().to_string(),
        "--spool-max-mb".into(),
        "1".into(),
    ]);
    let relay = Relay::start(options);
    // 8 MB with X-Ray down: the pool keeps 3 MB, the spool 1 MB, the rest is lost.
    let total = 800;
    for i in 0..total {
        relay.send_segment(&big(i));
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    relay.wait_for_log("Spool is full", Duration::from_secs(20));
    // Every datagram read before X-Ray comes back.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        &http_get(relay.tcp, "/metrics").text(),
        "xray_relay_segments_received_total",
    ) < total as f64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    up.store(true, Ordering::SeqCst);
    // Wait until everything is delivered or counted.
    let deadline = Instant::now() + Duration::from_secs(40);
    let text = loop {
        let text = http_get(relay.tcp, "/metrics").text();
        let settled = metric(&text, "xray_relay_segments_sent_total")
            + metric(&text, "xray_relay_segments_spillover_total")
            + metric(&text, "xray_relay_segments_dropped_total");
        if (settled >= total as f64 && std::fs::read_dir(&spool).unwrap().count() == 0)
            || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");

    let delivered = xray.documents();
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!(unique.len(), delivered.len(), "duplicates\n{log}");
    let sent = metric(&text, "xray_relay_segments_sent_total") as usize;
    let spillover = metric(&text, "xray_relay_segments_spillover_total") as usize;
    let dropped = metric(&text, "xray_relay_segments_dropped_total") as usize;
    let replayed = metric(&text, "xray_relay_segments_replayed_total") as usize;
    assert_eq!(metric(&text, "xray_relay_segments_received_total"), 800.0);
    assert_eq!(sent, delivered.len(), "log:\n{log}");
    assert!(spillover > 0 && replayed > 0, "{text}");
    assert_eq!(dropped, 0, "{text}");
    // Each segment delivered or counted lost, once.
    assert_eq!(sent + spillover, total, "{text}\nlog:\n{log}");
    assert!(log.contains("Spool is full"), "{log}");

    let records = xray.telemetry_records();
    let sum = |field: &str| -> u64 { records.iter().map(|r| r[field].as_u64().unwrap_or(0)).sum() };
    assert_eq!(sum("SegmentsReceivedCount"), total as u64, "{records:?}");
    assert_eq!(
        sum("SegmentsSentCount"),
        delivered.len() as u64,
        "{records:?}"
    );
    assert_eq!(
        sum("SegmentsSpilloverCount"),
        spillover as u64,
        "{records:?}"
    );
}

#[test]
fn a_segment_x_ray_refuses_for_its_content_is_dropped_alone_and_the_rest_delivered() {
    let poison = segment(7);
    let refused = poison.clone();
    let xray = MockXRay::with_responder(Arc::new(move |request| {
        let poisoned = request.path == "/TraceSegments"
            && request.json()["TraceSegmentDocuments"]
                .as_array()
                .is_some_and(|docs| docs.iter().any(|d| d.as_str() == Some(refused.as_str())));
        if poisoned {
            (
                400,
                r#"{"__type":"InvalidRequestException","message":"Invalid segment. ErrorCode: InvalidTraceId"}"#
                    .into(),
            )
        } else {
            (200, "{}".into())
        }
    }));
    let spool_dir = TempDir::new("poisoned");
    let spool = spool_dir.path("spool");
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options
        .args
        .extend(["--spool-dir".into(), spool.display().to_string()]);
    let relay = Relay::start(options);
    // Sent together, so the uploader's batch holds the refused one: the whole batch is
    // refused and spooled, and the replayer sorts it out.
    for i in 0..20 {
        relay.send_segment(&segment(i));
    }
    let delivered = xray.wait_for_documents(19, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&spool).unwrap().count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = http_get(relay.tcp, "/metrics").text();
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!(
        (unique.len(), delivered.len()),
        (19, 19),
        "{delivered:?}\n{log}"
    );
    assert!(!unique.contains(&poison));
    assert_eq!(
        metric(&text, "xray_relay_segments_dropped_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "xray_relay_segments_sent_total"),
        19.0,
        "{text}"
    );
    assert_eq!(
        log.matches("X-Ray refuses spooled segment 0000000000000007 of trace 1-5f84c7a1-000000000000000000000007")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "{log}");
}
