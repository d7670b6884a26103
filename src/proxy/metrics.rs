//! `GET /metrics`: the relay's counters in the Prometheus text format (version 0.0.4).

use crate::pool::Fill;
use crate::stats::{ErrorClass, LATENCY_BUCKETS, Refusal, Stats};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric; `fill` is the buffer now, `uptime` the time since start.
pub fn render(stats: &Stats, fill: &Fill, uptime: Duration) -> String {
    let mut out = String::with_capacity(4096);
    let counts = stats.snapshot();
    let counters = [
        (
            "received",
            "Datagrams read from the UDP socket, valid or not.",
            counts.received,
        ),
        (
            "rejected",
            "Datagrams refused and documents X-Ray reported unprocessed.",
            counts.rejected,
        ),
        (
            "spillover",
            "Segments lost for room: the buffer was full, and the spool too if there is one.",
            counts.spillover,
        ),
        (
            "sent",
            "Documents X-Ray accepted (or the local sink wrote).",
            counts.sent,
        ),
        (
            "retried",
            "Documents sent again after a transient failure (each retry counts).",
            counts.retried,
        ),
        ("spooled", "Documents written to the spool.", counts.spooled),
        (
            "replayed",
            "Documents read back from the spool and delivered.",
            counts.replayed,
        ),
        (
            "dropped",
            "Documents lost for good: refused by X-Ray or unsent at shutdown with no spool, or unwritable to the spool.",
            counts.dropped,
        ),
    ];
    for (name, help, value) in counters {
        let name = format!("xray_relay_segments_{name}_total");
        header(&mut out, &name, help, "counter");
        let _ = writeln!(out, "{name} {value}");
    }
    header(
        &mut out,
        "xray_relay_udp_kernel_drops_total",
        "Datagrams the kernel dropped on the relay's UDP socket because its receive buffer was full.",
        "counter",
    );
    let _ = writeln!(
        out,
        "xray_relay_udp_kernel_drops_total {}",
        stats.kernel_drops.load(Ordering::Relaxed)
    );

    header(
        &mut out,
        "xray_relay_buffer_fill_ratio",
        "Share of the segment buffer in use (the larger of bytes and slots).",
        "gauge",
    );
    let _ = writeln!(out, "xray_relay_buffer_fill_ratio {}", fill.ratio());
    header(
        &mut out,
        "xray_relay_buffer_segments",
        "Segments held in the buffer.",
        "gauge",
    );
    let _ = writeln!(out, "xray_relay_buffer_segments {}", fill.segments);
    header(
        &mut out,
        "xray_relay_buffer_used_bytes",
        "Bytes of the buffer in use.",
        "gauge",
    );
    let _ = writeln!(out, "xray_relay_buffer_used_bytes {}", fill.used_bytes);
    header(
        &mut out,
        "xray_relay_buffer_capacity_bytes",
        "Size of the buffer.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "xray_relay_buffer_capacity_bytes {}",
        fill.capacity_bytes
    );
    header(
        &mut out,
        "xray_relay_uploads_in_flight",
        "Uploads waiting for their destination.",
        "gauge",
    );
    let _ = writeln!(out, "xray_relay_uploads_in_flight {}", stats.in_flight());

    let latency = stats.latency();
    let name = "xray_relay_upload_duration_seconds";
    header(
        &mut out,
        name,
        "Time taken by successful uploads.",
        "histogram",
    );
    for (bound, count) in LATENCY_BUCKETS.iter().zip(latency.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", latency.count());
    let _ = writeln!(out, "{name}_sum {}", latency.sum_seconds);
    let _ = writeln!(out, "{name}_count {}", latency.count());

    labelled_counter(
        &mut out,
        "xray_relay_backend_errors_total",
        "Failed calls to X-Ray by class, as in the telemetry record's BackendConnectionErrors.",
        "class",
        ErrorClass::ALL.map(|class| (class.label(), counts.backend_errors(class))),
    );
    let name = "xray_relay_credential_refresh_failures_total";
    header(
        &mut out,
        name,
        "Background refreshes of AWS credentials that failed (the current ones are kept until they expire).",
        "counter",
    );
    let _ = writeln!(
        out,
        "{name} {}",
        stats.credential_refresh_failures.load(Ordering::Relaxed)
    );

    let proxy = &stats.proxy;
    header(
        &mut out,
        "xray_relay_proxy_open_connections",
        "Connections to the TCP proxy open now.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "xray_relay_proxy_open_connections {}",
        proxy.open_connections.load(Ordering::Relaxed)
    );
    let proxy_counters = [
        (
            "accepted_connections",
            "Connections accepted by the TCP proxy, including refused ones.",
            &proxy.accepted,
        ),
        (
            "forwarded_requests",
            "Requests forwarded to X-Ray and answered by it.",
            &proxy.forwarded,
        ),
        (
            "local_requests",
            "Requests answered by the relay itself.",
            &proxy.local,
        ),
    ];
    for (name, help, value) in proxy_counters {
        let name = format!("xray_relay_proxy_{name}_total");
        header(&mut out, &name, help, "counter");
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
    labelled_counter(
        &mut out,
        "xray_relay_proxy_refused_total",
        "Connections and requests the TCP proxy refused, by reason.",
        "reason",
        Refusal::ALL.map(|reason| (reason.label(), proxy.refusals(reason))),
    );
    labelled_counter(
        &mut out,
        "xray_relay_proxy_upstream_errors_total",
        "Forwarded requests that got no answer from X-Ray, by class.",
        "class",
        ErrorClass::ALL.map(|class| (class.label(), proxy.upstream_errors(class))),
    );

    header(
        &mut out,
        "xray_relay_uptime_seconds",
        "Seconds since the relay started.",
        "gauge",
    );
    let _ = writeln!(out, "xray_relay_uptime_seconds {}", uptime.as_secs_f64());
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A counter family with one series per `(label value, count)`, all under the label `label`.
fn labelled_counter<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (&'a str, u64)>,
) {
    header(out, name, help, "counter");
    for (value, count) in series {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name{labels} value` lines → the value of the one named.
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    /// Counters after a little traffic (one upload of 40 ms, one failure, one refused proxy
    /// request) and a pool a quarter full; each test adds its own.
    fn some_traffic() -> (Stats, Fill) {
        let stats = Stats::default();
        Stats::add(&stats.received, 12);
        Stats::add(&stats.sent, 10);
        Stats::add(&stats.retried, 2);
        stats.backend_error(ErrorClass::Http5xx);
        stats.record_success(Duration::from_millis(40));
        stats.proxy.refused(Refusal::BodyTooLarge);
        let fill = Fill {
            segments: 5,
            used_bytes: 250,
            capacity_bytes: 1000,
            capacity_segments: 100,
        };
        (stats, fill)
    }

    #[test]
    fn counters_gauges_and_the_histogram() {
        let (stats, fill) = some_traffic();
        stats.record_success(Duration::from_millis(3000));
        let _in_flight = stats.upload_started();
        let text = render(&stats, &fill, Duration::from_secs(3));
        assert_eq!(value(&text, "xray_relay_segments_received_total"), 12.0);
        assert_eq!(value(&text, "xray_relay_segments_sent_total"), 10.0);
        assert_eq!(value(&text, "xray_relay_segments_retried_total"), 2.0);
        assert_eq!(value(&text, "xray_relay_segments_spillover_total"), 0.0);
        assert_eq!(value(&text, "xray_relay_buffer_fill_ratio"), 0.25);
        assert_eq!(value(&text, "xray_relay_uploads_in_flight"), 1.0);
        let h = "xray_relay_upload_duration_seconds";
        assert_eq!(value(&text, &format!("{h}_bucket{{le=\"0.025\"}}")), 0.0);
        assert_eq!(value(&text, &format!("{h}_bucket{{le=\"0.05\"}}")), 1.0);
        assert_eq!(value(&text, &format!("{h}_bucket{{le=\"2.5\"}}")), 1.0);
        assert_eq!(value(&text, &format!("{h}_bucket{{le=\"5\"}}")), 2.0);
        assert_eq!(value(&text, &format!("{h}_bucket{{le=\"+Inf\"}}")), 2.0);
        assert_eq!(value(&text, &format!("{h}_count")), 2.0);
        assert!((value(&text, &format!("{h}_sum")) - 3.04).abs() < 1e-9);
        assert_eq!(
            value(&text, "xray_relay_backend_errors_total{class=\"http_5xx\"}"),
            1.0
        );
        assert_eq!(
            value(&text, "xray_relay_backend_errors_total{class=\"timeout\"}"),
            0.0
        );
        assert_eq!(
            value(
                &text,
                "xray_relay_proxy_refused_total{reason=\"body_too_large\"}"
            ),
            1.0
        );
        assert_eq!(value(&text, "xray_relay_uptime_seconds"), 3.0);
        // Every series has its HELP and TYPE, once.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
                .filter(|family| family.ends_with("_seconds"))
                .unwrap_or(name);
            assert_eq!(
                text.matches(&format!("# TYPE {family} ")).count(),
                1,
                "{name}"
            );
        }
    }

    /// The whole text for fixed counts, byte for byte: scrapers and dashboards depend on the
    /// names, label values, order and number formatting.
    #[test]
    fn the_exact_text() {
        let (stats, fill) = some_traffic();
        stats.proxy.upstream_error(ErrorClass::Timeout);
        Stats::add(&stats.credential_refresh_failures, 3);
        Stats::add(&stats.kernel_drops, 4);
        let text = render(&stats, &fill, Duration::from_millis(3500));
        assert_eq!(text, EXPECTED_TEXT);
    }

    const EXPECTED_TEXT: &str = r#"# HELP xray_relay_segments_received_total Datagrams read from the UDP socket, valid or not.
# TYPE xray_relay_segments_received_total counter
xray_relay_segments_received_total 12
# HELP xray_relay_segments_rejected_total Datagrams refused and documents X-Ray reported unprocessed.
# TYPE xray_relay_segments_rejected_total counter
xray_relay_segments_rejected_total 0
# HELP xray_relay_segments_spillover_total Segments lost for room: the buffer was full, and the spool too if there is one.
# TYPE xray_relay_segments_spillover_total counter
xray_relay_segments_spillover_total 0
# HELP xray_relay_segments_sent_total Documents X-Ray accepted (or the local sink wrote).
# TYPE xray_relay_segments_sent_total counter
xray_relay_segments_sent_total 10
# HELP xray_relay_segments_retried_total Documents sent again after a transient failure (each retry counts).
# TYPE xray_relay_segments_retried_total counter
xray_relay_segments_retried_total 2
# HELP xray_relay_segments_spooled_total Documents written to the spool.
# TYPE xray_relay_segments_spooled_total counter
xray_relay_segments_spooled_total 0
# HELP xray_relay_segments_replayed_total Documents read back from the spool and delivered.
# TYPE xray_relay_segments_replayed_total counter
xray_relay_segments_replayed_total 0
# HELP xray_relay_segments_dropped_total Documents lost for good: refused by X-Ray or unsent at shutdown with no spool, or unwritable to the spool.
# TYPE xray_relay_segments_dropped_total counter
xray_relay_segments_dropped_total 0
# HELP xray_relay_udp_kernel_drops_total Datagrams the kernel dropped on the relay's UDP socket because its receive buffer was full.
# TYPE xray_relay_udp_kernel_drops_total counter
xray_relay_udp_kernel_drops_total 4
# HELP xray_relay_buffer_fill_ratio Share of the segment buffer in use (the larger of bytes and slots).
# TYPE xray_relay_buffer_fill_ratio gauge
xray_relay_buffer_fill_ratio 0.25
# HELP xray_relay_buffer_segments Segments held in the buffer.
# TYPE xray_relay_buffer_segments gauge
xray_relay_buffer_segments 5
# HELP xray_relay_buffer_used_bytes Bytes of the buffer in use.
# TYPE xray_relay_buffer_used_bytes gauge
xray_relay_buffer_used_bytes 250
# HELP xray_relay_buffer_capacity_bytes Size of the buffer.
# TYPE xray_relay_buffer_capacity_bytes gauge
xray_relay_buffer_capacity_bytes 1000
# HELP xray_relay_uploads_in_flight Uploads waiting for their destination.
# TYPE xray_relay_uploads_in_flight gauge
xray_relay_uploads_in_flight 0
# HELP xray_relay_upload_duration_seconds Time taken by successful uploads.
# TYPE xray_relay_upload_duration_seconds histogram
xray_relay_upload_duration_seconds_bucket{le="0.005"} 0
xray_relay_upload_duration_seconds_bucket{le="0.01"} 0
xray_relay_upload_duration_seconds_bucket{le="0.025"} 0
xray_relay_upload_duration_seconds_bucket{le="0.05"} 1
xray_relay_upload_duration_seconds_bucket{le="0.1"} 1
xray_relay_upload_duration_seconds_bucket{le="0.25"} 1
xray_relay_upload_duration_seconds_bucket{le="0.5"} 1
xray_relay_upload_duration_seconds_bucket{le="1"} 1
xray_relay_upload_duration_seconds_bucket{le="2.5"} 1
xray_relay_upload_duration_seconds_bucket{le="5"} 1
xray_relay_upload_duration_seconds_bucket{le="10"} 1
xray_relay_upload_duration_seconds_bucket{le="+Inf"} 1
xray_relay_upload_duration_seconds_sum 0.04
xray_relay_upload_duration_seconds_count 1
# HELP xray_relay_backend_errors_total Failed calls to X-Ray by class, as in the telemetry record's BackendConnectionErrors.
# TYPE xray_relay_backend_errors_total counter
xray_relay_backend_errors_total{class="timeout"} 0
xray_relay_backend_errors_total{class="connection_refused"} 0
xray_relay_backend_errors_total{class="http_4xx"} 0
xray_relay_backend_errors_total{class="http_5xx"} 1
xray_relay_backend_errors_total{class="unknown_host"} 0
xray_relay_backend_errors_total{class="other"} 0
# HELP xray_relay_credential_refresh_failures_total Background refreshes of AWS credentials that failed (the current ones are kept until they expire).
# TYPE xray_relay_credential_refresh_failures_total counter
xray_relay_credential_refresh_failures_total 3
# HELP xray_relay_proxy_open_connections Connections to the TCP proxy open now.
# TYPE xray_relay_proxy_open_connections gauge
xray_relay_proxy_open_connections 0
# HELP xray_relay_proxy_accepted_connections_total Connections accepted by the TCP proxy, including refused ones.
# TYPE xray_relay_proxy_accepted_connections_total counter
xray_relay_proxy_accepted_connections_total 0
# HELP xray_relay_proxy_forwarded_requests_total Requests forwarded to X-Ray and answered by it.
# TYPE xray_relay_proxy_forwarded_requests_total counter
xray_relay_proxy_forwarded_requests_total 0
# HELP xray_relay_proxy_local_requests_total Requests answered by the relay itself.
# TYPE xray_relay_proxy_local_requests_total counter
xray_relay_proxy_local_requests_total 0
# HELP xray_relay_proxy_refused_total Connections and requests the TCP proxy refused, by reason.
# TYPE xray_relay_proxy_refused_total counter
xray_relay_proxy_refused_total{reason="too_many_connections"} 0
xray_relay_proxy_refused_total{reason="timeout"} 0
xray_relay_proxy_refused_total{reason="head_too_large"} 0
xray_relay_proxy_refused_total{reason="too_many_headers"} 0
xray_relay_proxy_refused_total{reason="body_too_large"} 1
xray_relay_proxy_refused_total{reason="length_required"} 0
xray_relay_proxy_refused_total{reason="bad_request"} 0
xray_relay_proxy_refused_total{reason="method_not_allowed"} 0
xray_relay_proxy_refused_total{reason="busy"} 0
xray_relay_proxy_refused_total{reason="not_sampling_api"} 0
# HELP xray_relay_proxy_upstream_errors_total Forwarded requests that got no answer from X-Ray, by class.
# TYPE xray_relay_proxy_upstream_errors_total counter
xray_relay_proxy_upstream_errors_total{class="timeout"} 1
xray_relay_proxy_upstream_errors_total{class="connection_refused"} 0
xray_relay_proxy_upstream_errors_total{class="http_4xx"} 0
xray_relay_proxy_upstream_errors_total{class="http_5xx"} 0
xray_relay_proxy_upstream_errors_total{class="unknown_host"} 0
xray_relay_proxy_upstream_errors_total{class="other"} 0
# HELP xray_relay_uptime_seconds Seconds since the relay started.
# TYPE xray_relay_uptime_seconds gauge
xray_relay_uptime_seconds 3.5
"#;
}
