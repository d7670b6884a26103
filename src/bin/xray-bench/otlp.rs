//! The OpenTelemetry points (`--otlp`): the relay with `--otlp-address`, OTLP/HTTP clients
//! posting protobuf requests of `--spans` spans of `--span-size` bytes for `--seconds`, and
//! the sink counting spans by id as they arrive, through X-Ray's OTLP endpoint
//! (`POST /v1/traces`) or translated into documents (`PutTraceSegments`).
//!
//! Per point: spans/s delivered, the relay's CPU per span, its peak RSS against the buffer,
//! spans lost, and the goals next to them: ≥ 50,000 spans/s with none lost, CPU per span at
//! most the UDP path's per 1 KB segment at 20,000/s (measured first in the same run), peak
//! RSS at most the buffer + 4 MB.

use crate::client::{self, ClientOptions};
use crate::relay::{OtlpSetup, Relay, RelayOptions};
use crate::sink::{Sink, SinkOptions};
use crate::tracker::{Tracker, percentile};
use crate::{Args, fail, mb, metric, ms, procfs, run_point};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Spans/s the throughput goal asks for.
const GOAL_SPANS_PER_SECOND: f64 = 50_000.0;

/// The UDP path's CPU per 1 KB segment at 20,000/s in the README (musl build), the CPU goal
/// when the run does not measure it.
const README_UDP_US: f64 = 8.4;

/// Runs every OTLP point and prints the table.
pub fn run(args: &Args, options: &RelayOptions) {
    let reference = if args.no_udp_reference {
        println!(
            "CPU goal: the README's UDP figure, {README_UDP_US} µs per 1 KB segment at 20,000/s"
        );
        README_UDP_US
    } else {
        match run_point(args, options, 1024, 20_000, 0) {
            Ok((row, us)) => {
                println!("UDP reference, 1 KB at 20,000/s (the CPU goal per span):");
                println!(
                    "| size | rate/s | sent | delivered | lost | kernel drops | CPU µs/seg | in kernel µs/seg | receiver µs/seg | uploaders µs/seg | switches/seg | idle RSS MB | peak RSS MB | p50 ms | p99 ms | max ms | sent/s | load |"
                );
                println!(
                    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
                );
                println!("{row}");
                us
            }
            Err(err) => {
                println!(
                    "UDP reference failed ({err}); the CPU goal is the README's {README_UDP_US} µs"
                );
                README_UDP_US
            }
        }
    };
    println!();
    let plain = crate::spans::Requests::new(args.spans, args.span_size)
        .request(0)
        .to_vec();
    let gzipped = xray_relay::otlp::gzip::gzip(&plain).len();
    println!(
        "OTLP: {} connections, requests of {} spans of ~{} B ({} B, {} B gzipped), protobuf, {} s each{}; relay -m {} (goal: peak RSS ≤ {} MB)",
        args.connections,
        args.spans,
        args.span_size,
        plain.len(),
        gzipped,
        args.seconds,
        if args.otlp_rate > 0 {
            format!(", {} spans/s in all", args.otlp_rate)
        } else {
            ", each connection's next request once answered".to_string()
        },
        args.memory,
        args.memory + 4
    );
    println!(
        "| destination | client gzip | requests | spans sent | delivered | lost | 503/429 retried | spans/s | CPU µs/span | in kernel | peak RSS MB | answer p50 / p99 ms | client MB/s | goals: ≥ 50k/s none lost · CPU ≤ {reference:.1} · RSS ≤ {} MB | load |",
        args.memory + 4
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for case in args.otlp_cases.split(',').map(str::trim) {
        let (destination, compression) = match case {
            "otlp" => ("otlp", "gzip"),
            "otlp-none" => ("otlp", "none"),
            "segments" => ("segments", "gzip"),
            // Starts on the OTLP endpoint, is refused, re-sends as segments and stays there.
            "auto" => ("auto", "gzip"),
            other => fail(&format!(
                "unknown OTLP case {other:?}: otlp, otlp-none, segments or auto"
            )),
        };
        for gzip in args.client_gzip.split(',').map(str::trim) {
            let gzip = match gzip {
                "on" => true,
                "off" => false,
                other => fail(&format!("--client-gzip takes off and on, not {other:?}")),
            };
            for run in 0..args.repeat {
                let mut options = options.clone();
                options.otlp = Some(OtlpSetup {
                    destination: destination.into(),
                    compression: compression.into(),
                });
                match point(args, &options, case, gzip, run, reference) {
                    Ok(row) => println!("{row}"),
                    Err(err) => println!("| {case} | {gzip} | failed: {err} |"),
                }
            }
        }
    }
}

fn point(
    args: &Args,
    options: &RelayOptions,
    case: &str,
    gzip: bool,
    run: u32,
    reference: f64,
) -> std::io::Result<String> {
    // Room for more than the relay can take (it reached 200,000 spans/s without gzip).
    let max_spans = args.seconds * 400_000;
    let tracker = Arc::new(Tracker::new(max_spans));
    let sink = Sink::start(
        tracker.clone(),
        SinkOptions {
            delay: Duration::from_millis(args.sink_delay_ms),
            verify_every: args.verify_every,
            segment_size: args.span_size,
            up: Arc::new(AtomicBool::new(true)),
            otlp: true,
            no_transaction_search: case == "auto",
        },
    )?;
    let mut relay = Relay::start(
        options,
        &format!("http://{}", sink.address),
        &format!("otlp-{case}-{gzip}-{run}"),
    )?;
    let target = relay
        .otlp
        .ok_or_else(|| std::io::Error::other("the relay has no OTLP address"))?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = relay.pid;
    let cpu_before = procfs::cpu_time(pid).unwrap_or_default();
    let started = Instant::now();

    let sent = client::send(&ClientOptions {
        target,
        connections: args.connections,
        spans: args.spans,
        span_size: args.span_size,
        gzip,
        duration: Duration::from_secs(args.seconds),
        rate: args.otlp_rate,
        max_spans,
    });
    // Wait for the relay to deliver what it accepted; stop when nothing comes for 3 s.
    let mut last = (tracker.delivered(), Instant::now());
    while tracker.delivered() < sent.spans {
        std::thread::sleep(Duration::from_millis(20));
        let delivered = tracker.delivered();
        if delivered != last.0 {
            last = (delivered, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let elapsed = last.1.duration_since(started).max(sent.elapsed);
    let cpu = procfs::cpu_time(pid).unwrap_or_default().since(cpu_before);
    let peak_rss = procfs::status_bytes(pid, "VmHWM");
    let metrics = relay.metrics();
    let load = procfs::load_average();
    let status = relay.stop()?;
    let log = relay.log_text();
    drop(relay);
    drop(sink);

    let delivered = tracker.delivered();
    let lost = sent.spans.saturating_sub(delivered);
    let per_second = delivered as f64 / elapsed.as_secs_f64();
    let cpu_per_span = cpu.total_us() as f64 / sent.spans.max(1) as f64;
    let rss_limit = (args.memory + 4) * 1_048_576;
    let mut notes = Vec::new();
    for (what, counter) in [
        ("CORRUPT bodies", &tracker.corrupt),
        ("duplicates", &tracker.duplicates),
        ("foreign ids", &tracker.foreign),
    ] {
        let n = counter.load(Ordering::Relaxed);
        if n > 0 {
            notes.push(format!("{n} {what}"));
        }
    }
    if case == "auto" {
        let switches = metric(&metrics, "xray_relay_otlp_destination_switches_total");
        notes.push(format!("switched to segments {switches} time(s)"));
    }
    if sent.failed > 0 {
        notes.push(format!("{} requests failed", sent.failed));
    }
    if lost > 0 {
        let m = |name: &str| metric(&metrics, name);
        notes.push(format!(
            "relay counted: spans received {}, refused {}, forwarded {}, segments spillover {}",
            m("xray_relay_otlp_spans_received_total"),
            m("xray_relay_otlp_spans_refused_total"),
            m("xray_relay_otlp_spans_forwarded_total"),
            m("xray_relay_segments_spillover_total"),
        ));
    }
    if !status.success() {
        notes.push(format!("relay exit: {status}"));
    }
    let errors = log.matches("[Error]").count();
    if errors > 0 {
        notes.push(format!("{errors} error lines in the relay log"));
    }
    let mark = |ok: bool| if ok { "yes" } else { "**no**" };
    Ok(format!(
        "| {case} | {} | {} | {} | {delivered} | {lost} | {} | {per_second:.0} | {cpu_per_span:.1} | {:.1} | {} | {} / {} | {:.1} | {} · {} · {} | {load}{} |",
        if gzip { "on" } else { "off" },
        sent.requests,
        sent.spans,
        sent.retried,
        cpu.system_us as f64 / sent.spans.max(1) as f64,
        mb(peak_rss),
        ms(percentile(&sent.answer_us, 50.0)),
        ms(percentile(&sent.answer_us, 99.0)),
        sent.body_bytes as f64 / 1_048_576.0 / sent.elapsed.as_secs_f64(),
        mark(per_second >= GOAL_SPANS_PER_SECOND && lost == 0),
        mark(cpu_per_span <= reference),
        mark(peak_rss.is_some_and(|p| p <= rss_limit)),
        if notes.is_empty() {
            String::new()
        } else {
            format!(" {}", notes.join(", "))
        }
    ))
}
