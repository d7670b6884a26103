//! `xray-bench`: how much CPU, memory and time the relay takes per segment.
//!
//! For each segment size and rate it starts a local X-Ray sink and the relay (a separate
//! process, `-o -n us-east-1 -m N`, uploading to the sink), sends segments with unique ids at
//! that rate over UDP, waits until they are delivered, and prints one Markdown table row:
//! segments sent / delivered / lost, the relay's CPU per segment (utime + stime from /proc),
//! its idle and peak RSS (VmRSS before the traffic, VmHWM after), and the latency from the
//! datagram's send to the sink's acknowledgement (p50/p99). An idle phase then checks the
//! relay's memory and wake-ups with no traffic.
//!
//!     cargo build --release && target/release/xray-bench
//!
//! `--outage --spool-mb 1024` measures an X-Ray outage during the whole send with a spool:
//! what the spool costs the receiver, and whether everything arrives once X-Ray is back.
//!
//! `--runner qemu-aarch64-static --relay target/aarch64-unknown-linux-musl/release/xray` runs
//! the aarch64 build under emulation: a functional check only, its timings mean nothing.

mod client;
mod encode;
mod otlp;
mod procfs;
mod relay;
mod sender;
mod sink;
mod spans;
mod tracker;

use relay::{Relay, RelayOptions};
use sink::{Sink, SinkOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracker::{Tracker, percentile};

/// Measures the relay: CPU per segment, memory, loss and latency at several rates and sizes.
#[derive(argh::FromArgs)]
pub(crate) struct Args {
    /// the relay binary (default: `xray` next to this program)
    #[argh(option)]
    relay: Option<PathBuf>,
    /// run the relay through this program, e.g. qemu-aarch64-static (functional check only)
    #[argh(option)]
    runner: Option<String>,
    /// segments per second, comma-separated (default 1000,5000,20000,50000,100000)
    #[argh(option, default = "String::from(\"1000,5000,20000,50000,100000\")")]
    rates: String,
    /// segment sizes in bytes, comma-separated (default 1024,8192)
    #[argh(option, default = "String::from(\"1024,8192\")")]
    sizes: String,
    /// seconds of traffic per point (default 10; at least 20,000 segments are sent)
    #[argh(option, default = "10")]
    seconds: u64,
    /// the relay's -m, buffer memory in MB (default 16)
    #[argh(option, short = 'm', default = "16")]
    memory: u64,
    /// cfg.yaml Concurrency for the relay (default: the relay's own default)
    #[argh(option)]
    concurrency: Option<u32>,
    /// milliseconds the sink waits before answering, a stand-in for the round trip (default 0)
    #[argh(option, default = "0")]
    sink_delay_ms: u64,
    /// runs per point (default 1)
    #[argh(option, default = "1")]
    repeat: u32,
    /// seconds of the idle phase; 0 skips it (default 10)
    #[argh(option, default = "10")]
    idle_seconds: u64,
    /// the relay's -m in the idle phase (default 3)
    #[argh(option, default = "3")]
    idle_memory: u64,
    /// skip the traffic points (only the idle phase)
    #[argh(switch)]
    idle_only: bool,
    /// decode and compare one request body in this many (default 20)
    #[argh(option, default = "20")]
    verify_every: u64,
    /// an extra argument for the relay (repeatable), e.g. --relay-arg=-l --relay-arg=warn
    #[argh(option)]
    relay_arg: Vec<String>,
    /// an X-Ray outage: the sink answers uploads with 503 for the whole send, then accepts;
    /// the row then waits (up to 60 s without progress) for the relay to deliver what it kept
    #[argh(switch)]
    outage: bool,
    /// give the relay a spool of this many MB (--spool-dir in the run's temp directory)
    #[argh(option)]
    spool_mb: Option<u64>,
    /// keep each run's cfg.yaml and relay log in the temp directory
    #[argh(switch)]
    keep_logs: bool,
    /// only time the per-document steps in this process: encoding request bodies and checking
    /// datagrams (for --sizes; build with --target x86_64-unknown-linux-musl to time the
    /// shipped binary's code)
    #[argh(switch)]
    encode_only: bool,
    /// the OpenTelemetry points instead of the UDP ones: OTLP/HTTP requests to the relay's
    /// --otlp-address, for each of --otlp-cases and --client-gzip, for --seconds each
    #[argh(switch)]
    otlp: bool,
    /// OTLP destinations, comma-separated: otlp (gzip upstream), otlp-none (OTLP.Compression:
    /// none), segments (translated, PutTraceSegments), auto (an account without Transaction
    /// Search: refused at the OTLP endpoint, switched to segments) (default
    /// otlp,otlp-none,segments)
    #[argh(option, default = "String::from(\"otlp,otlp-none,segments\")")]
    otlp_cases: String,
    /// client gzip for the OTLP points: off, on, or off,on (default off,on)
    #[argh(option, default = "String::from(\"off,on\")")]
    client_gzip: String,
    /// spans per OTLP request (default 512)
    #[argh(option, default = "512")]
    spans: usize,
    /// bytes per span, about (default 1024)
    #[argh(option, default = "1024")]
    span_size: usize,
    /// OTLP client connections (default 4)
    #[argh(option, default = "4")]
    connections: usize,
    /// total OTLP spans per second; 0 sends each connection's next request once answered
    /// (default 0)
    #[argh(option, default = "0")]
    otlp_rate: u64,
    /// with --otlp, skip the UDP point (1 KB at 20,000/s) the CPU goal is measured against
    #[argh(switch)]
    no_udp_reference: bool,
}

pub(crate) fn list(text: &str) -> Vec<u64> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| fail(&format!("not a number: {s}")))
        })
        .collect()
}

pub(crate) fn fail(message: &str) -> ! {
    eprintln!("xray-bench: {message}");
    std::process::exit(1)
}

fn main() {
    let args: Args = argh::from_env();
    if args.encode_only {
        encode::run(&list(&args.sizes));
        return;
    }
    let binary = args.relay.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("xray")))
            .unwrap_or_else(|| PathBuf::from("xray"))
    });
    if !binary.exists() {
        fail(&format!(
            "no relay binary at {} (run `cargo build --release` first, or pass --relay)",
            binary.display()
        ));
    }
    let options = RelayOptions {
        binary,
        runner: args.runner.clone(),
        memory_mb: args.memory,
        concurrency: args.concurrency,
        extra_args: args.relay_arg.clone(),
        keep_logs: args.keep_logs,
        spool_mb: args.spool_mb,
        otlp: None,
    };
    print_setup(&args, &options);
    if args.otlp {
        otlp::run(&args, &options);
        return;
    }

    if !args.idle_only {
        println!(
            "| size | rate/s | sent | delivered | lost | kernel drops | CPU µs/seg | in kernel µs/seg | receiver µs/seg | uploaders µs/seg | switches/seg | idle RSS MB | peak RSS MB | p50 ms | p99 ms | max ms | sent/s | load |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for size in list(&args.sizes) {
            for rate in list(&args.rates) {
                for run in 0..args.repeat {
                    match run_point(&args, &options, size as usize, rate, run) {
                        Ok((row, _)) => println!("{row}"),
                        Err(err) => println!("| {size} | {rate} | failed: {err} |"),
                    }
                }
            }
        }
    }
    if args.idle_seconds > 0 {
        let mut idle_options = options.clone();
        idle_options.memory_mb = args.idle_memory;
        if let Err(err) = run_idle(&idle_options, Duration::from_secs(args.idle_seconds)) {
            println!("idle phase failed: {err}");
        }
    }
}

fn print_setup(args: &Args, options: &RelayOptions) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rmem = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap_or_default();
    let size = std::fs::metadata(&options.binary).map_or(0, |m| m.len());
    println!("xray-bench, {} UTC", utc_now());
    println!(
        "host: {cores} cores, {cpu}, Linux {}, net.core.rmem_max {}, load {}",
        kernel.trim(),
        rmem.trim(),
        procfs::load_average()
    );
    println!(
        "relay: {}{} ({size} bytes), -m {}, Concurrency {}, sink delay {} ms{}",
        options
            .runner
            .as_ref()
            .map(|r| format!("{r} "))
            .unwrap_or_default(),
        options.binary.display(),
        options.memory_mb,
        options
            .concurrency
            .map_or("default".to_string(), |n| n.to_string()),
        args.sink_delay_ms,
        if options.runner.is_some() {
            " (emulated: functional check only, timings mean nothing)"
        } else {
            ""
        }
    );
    if args.outage || args.spool_mb.is_some() {
        println!(
            "outage: {}; spool: {}",
            if args.outage {
                "the sink answers uploads with 503 for the whole send, then accepts"
            } else {
                "none"
            },
            args.spool_mb
                .map_or("none".to_string(), |mb| format!("{mb} MB"))
        );
    }
    println!(
        "latency: from the sender's send to the sink's answer, same clock; includes the relay's batching wait (a batch leaves at 50 segments or when its oldest is 1 s old)"
    );
    println!();
}

/// MiB with two decimals: enough to tell a peak of 19.96 from the 20.00 a goal allows.
pub(crate) fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| format!("{:.2}", b as f64 / 1_048_576.0))
}

pub(crate) fn ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |us| format!("{:.1}", us as f64 / 1000.0))
}

/// One UDP point: its table row, and the relay's CPU µs per segment.
pub(crate) fn run_point(
    args: &Args,
    options: &RelayOptions,
    size: usize,
    rate: u64,
    run: u32,
) -> std::io::Result<(String, f64)> {
    let count = (rate * args.seconds).max(20_000);
    let tracker = Arc::new(Tracker::new(count));
    let up = Arc::new(AtomicBool::new(!args.outage));
    let sink = Sink::start(
        tracker.clone(),
        SinkOptions {
            delay: Duration::from_millis(args.sink_delay_ms),
            verify_every: args.verify_every,
            segment_size: size,
            up: up.clone(),
            otlp: false,
            no_transaction_search: false,
        },
    )?;
    let mut relay = Relay::start(
        options,
        &format!("http://{}", sink.address),
        &format!("{size}-{rate}-{run}"),
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = relay.pid;
    let idle_rss = procfs::status_bytes(pid, "VmRSS");
    let cpu_before = procfs::cpu_time(pid).unwrap_or_default();
    let receiver_before = procfs::threads_cpu_us(pid, "receiver");
    let uploaders_before = procfs::threads_cpu_us(pid, "uploader-");
    let switches_before: u64 = procfs::context_switches(pid).values().sum();
    let udp_before = procfs::udp_receive_errors();

    let mut segments = sender::Segments::new(size);
    let sent = sender::send(relay.udp, &mut segments, rate, count, &tracker)?;
    // In an outage, X-Ray comes back once everything is sent: the relay delivers what it kept
    // (uploaders back off up to 30 s, so wait longer for progress).
    let back = Instant::now();
    up.store(true, Ordering::Relaxed);
    let quiet = if args.outage { 60 } else { 3 };

    // Wait for the last batch (at most 1 s old) and its upload; stop when nothing has come
    // for `quiet` seconds.
    let mut last = (tracker.delivered(), Instant::now());
    while tracker.delivered() < count {
        std::thread::sleep(Duration::from_millis(50));
        let delivered = tracker.delivered();
        if delivered != last.0 {
            last = (delivered, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(quiet) {
            break;
        }
    }
    let recovery = last.1.duration_since(back);
    let metrics = relay.metrics();
    let cpu = procfs::cpu_time(pid).unwrap_or_default().since(cpu_before);
    let receiver_cpu = procfs::threads_cpu_us(pid, "receiver").saturating_sub(receiver_before);
    let uploaders_cpu = procfs::threads_cpu_us(pid, "uploader-").saturating_sub(uploaders_before);
    let switches_after: u64 = procfs::context_switches(pid).values().sum();
    let peak_rss = procfs::status_bytes(pid, "VmHWM");
    let udp_after = procfs::udp_receive_errors();
    let load = procfs::load_average();
    let status = relay.stop()?;
    let log = relay.log_text();
    drop(relay);
    drop(sink);

    let delivered = tracker.delivered();
    let lost = count.saturating_sub(delivered);
    let kernel_drops = match (udp_before, udp_after) {
        (Some(b), Some(a)) => format!("{}", a.0.saturating_sub(b.0)),
        _ => "?".into(),
    };
    let latencies = tracker.latencies_us();
    let cpu_per_segment = cpu.total_us() as f64 / count as f64;
    let mut notes = Vec::new();
    let corrupt = tracker.corrupt.load(Ordering::Relaxed);
    if corrupt > 0 {
        notes.push(format!("{corrupt} CORRUPT bodies"));
    }
    let duplicates = tracker.duplicates.load(Ordering::Relaxed);
    if duplicates > 0 {
        notes.push(format!("{duplicates} duplicates"));
    }
    if args.outage {
        notes.push(format!(
            "outage: {} uploads refused, all delivered {:.1} s after X-Ray was back",
            tracker.refused.load(Ordering::Relaxed),
            recovery.as_secs_f64()
        ));
    }
    if args.outage || args.spool_mb.is_some() || lost > 0 {
        let m = |name: &str| metric(&metrics, name);
        notes.push(format!(
            "relay counted lost: spillover {} + dropped {} + kernel drops {}; spooled {}, replayed {}",
            m("xray_relay_segments_spillover_total"),
            m("xray_relay_segments_dropped_total"),
            m("xray_relay_udp_kernel_drops_total"),
            m("xray_relay_segments_spooled_total"),
            m("xray_relay_segments_replayed_total"),
        ));
    }
    if sent.send_errors > 0 {
        notes.push(format!("{} send errors", sent.send_errors));
    }
    if !status.success() {
        notes.push(format!("relay exit: {status}"));
    }
    let errors = log.matches("[Error]").count();
    if errors > 0 {
        notes.push(format!("{errors} error lines in the relay log"));
    }
    let row = format!(
        "| {size} | {rate} | {count} | {delivered} | {lost} ({:.2} %) | {kernel_drops} | {cpu_per_segment:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {} | {} | {} | {} | {:.0} | {load}{} |",
        lost as f64 * 100.0 / count as f64,
        cpu.system_us as f64 / count as f64,
        receiver_cpu as f64 / count as f64,
        uploaders_cpu as f64 / count as f64,
        switches_after.saturating_sub(switches_before) as f64 / count as f64,
        mb(idle_rss),
        mb(peak_rss),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied()),
        count as f64 / sent.elapsed.as_secs_f64(),
        if notes.is_empty() {
            String::new()
        } else {
            format!(" {}", notes.join(", "))
        }
    );
    Ok((row, cpu_per_segment))
}

/// Starts a relay, leaves it without traffic, and reports its RSS, CPU and wake-ups.
fn run_idle(options: &RelayOptions, seconds: Duration) -> std::io::Result<()> {
    let tracker = Arc::new(Tracker::new(0));
    let sink = Sink::start(
        tracker,
        SinkOptions {
            delay: Duration::ZERO,
            verify_every: 1,
            segment_size: 1024,
            up: Arc::new(AtomicBool::new(true)),
            otlp: false,
            no_transaction_search: false,
        },
    )?;
    let mut relay = Relay::start(options, &format!("http://{}", sink.address), "idle")?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = relay.pid;
    let before = procfs::context_switches(pid);
    let cpu_before = procfs::cpu_time(pid).unwrap_or_default();
    std::thread::sleep(seconds);
    let after = procfs::context_switches(pid);
    let cpu = procfs::cpu_time(pid).unwrap_or_default().since(cpu_before);
    let rss = procfs::status_bytes(pid, "VmRSS");
    let hwm = procfs::status_bytes(pid, "VmHWM");
    relay.stop()?;

    let total: u64 = after
        .iter()
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0))
        .sum();
    println!();
    println!(
        "idle, -m {}, {} s without traffic: RSS {} MB (peak {} MB), CPU {} ms, {} context switches ({:.1}/s) over {} threads",
        options.memory_mb,
        seconds.as_secs(),
        mb(rss),
        mb(hwm),
        cpu.total_us() / 1000,
        total,
        total as f64 / seconds.as_secs_f64(),
        after.len()
    );
    for (thread, switches) in &after {
        let delta = switches - before.get(thread).copied().unwrap_or(0);
        println!("    {thread}: {delta}");
    }
    Ok(())
}

/// A counter's value in the relay's `/metrics` text, or `?`.
pub(crate) fn metric(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or("?")
        .to_string()
}

/// The current time as `YYYY-MM-DD HH:MM`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}
