//! The running relay: wires receive → pool → upload and telemetry, then shuts them down in order.

use crate::otlp::auto::{self, Choice};
use crate::otlp::forward::Destination as OtlpDestination;
use crate::pool::{Pool, Spilled};
use crate::proxy::{self, HealthPolicy, Upstream};
use crate::settings::Settings;
use crate::shutdown::Signal;
use crate::sink::{Destination, LocalSink, PostJson};
use crate::spool::{Spool, Unsent};
use crate::stats::Stats;
use crate::telemetry::{self, Reporter, Telemetry};
use crate::upload::Courier;
use crate::{receive, replay, upload};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

/// How long shutdown waits for buffered segments to be uploaded.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// After the drain deadline, how long uploaders get to spool what they hold.
pub const ABANDON_GRACE: Duration = Duration::from_secs(2);

/// How long shutdown waits for the last telemetry record (within [`SHUTDOWN_BOUND`]).
const LAST_TELEMETRY_DEADLINE: Duration = Duration::from_secs(2);

/// Shutdown ends this long after the signal at the latest, whatever hangs: the drain, the
/// grace, then the replayer and the last telemetry record, sharing the rest.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(9);

/// `/healthz` says 503 from this buffer fill ratio on.
pub const NEARLY_FULL: f64 = 0.95;

/// Where segments go, decided once at start.
pub enum Output {
    /// Upload to X-Ray through this client, reporting telemetry as `reporter`.
    XRay {
        /// Signed calls to the X-Ray API.
        client: Arc<dyn PostJson>,
        /// Who the telemetry records say is reporting.
        reporter: Reporter,
        /// Where the TCP proxy forwards SDKs' requests (the same client, as a rule).
        upstream: Arc<dyn proxy::Forward>,
        /// The credentials providers' count of failed refreshes, for `/metrics`.
        credential_refresh_failures: Arc<AtomicU64>,
        /// Where OTLP spans go, when OTLP is on.
        otlp: Option<Arc<dyn crate::otlp::forward::Export>>,
    },
    /// Offline mode: write segments to a local file or stdout.
    Local(LocalSink),
}

impl PostJson for Arc<dyn PostJson> {
    fn post_json(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, crate::sink::BackendError> {
        (**self).post_json(path, body)
    }
}

/// A failure that stops the relay from starting.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The UDP socket, bound before the relay knows where segments go (as the original, which
/// binds it before it resolves region and credentials); nothing reads it until [`run`].
pub struct BoundUdp {
    socket: UdpSocket,
}

/// Binds the UDP address. The original's `Listening on UDP` line comes first, with the
/// address as given: the original logs it before it resolves the address.
pub fn bind_udp(settings: &Settings) -> Result<BoundUdp, StartError> {
    log::debug!("Listening on UDP {}", settings.udp_address);
    if let Some(error) = crate::go_addr::listen_address_error(&settings.udp_address) {
        return Err(StartError(error));
    }
    let (socket, granted) =
        receive::bind(&settings.udp_address).map_err(|err| StartError(err.to_string()))?;
    if granted < receive::SOCKET_BUFFER_BYTES {
        log::info!(
            "UDP receive buffer is {granted} bytes (asked for {}; raise net.core.rmem_max for more)",
            receive::SOCKET_BUFFER_BYTES
        );
    } else {
        log::debug!("UDP receive buffer is {granted} bytes");
    }
    Ok(BoundUdp { socket })
}

/// The buffer memory (`--buffer-memory`), made before the relay knows where segments go.
pub struct Buffers {
    pool: Arc<Pool>,
    /// OTLP's share of the memory, when OTLP is on (see [`crate::otlp::share_buffer`]).
    otlp_bytes: Option<usize>,
    /// What the OTLP share gives up if `auto` turns to segments, for their uploads (with
    /// `segments` the pool gave it up at start).
    translation_room: usize,
}

/// Splits `buffer_bytes` between segments and OTLP (when OTLP is on) and makes the segment
/// pool, with the original's `N segment buffers allocated` line (which it logs before
/// `Using region`).
pub fn allocate_buffers(settings: &Settings, buffer_bytes: usize) -> Buffers {
    let (pool_bytes, otlp_bytes, translation_room) = if settings.otlp.enabled() {
        let translated =
            Choice::parse(settings.otlp.destination.as_deref()) == Ok(Choice::Segments);
        let (segments, otlp) = crate::otlp::share_buffer(buffer_bytes, translated);
        let later = if translated {
            0
        } else {
            crate::otlp::translation_room(buffer_bytes)
        };
        (segments, Some(otlp), later)
    } else {
        (buffer_bytes, None, 0)
    };
    let pool = Arc::new(Pool::with_memory(pool_bytes));
    let fill = pool.fill();
    log::info!("{} segment buffers allocated", fill.capacity_segments);
    log::debug!(
        "The segment buffers are {} bytes shared by segments of any size up to 64 KB",
        fill.capacity_bytes
    );
    Buffers {
        pool,
        otlp_bytes,
        translation_room,
    }
}

/// Runs the relay until a signal arrives on `signals`, then drains and returns.
pub fn run(
    settings: &Settings,
    udp: BoundUdp,
    buffers: Buffers,
    output: Output,
    signals: smol::channel::Receiver<Signal>,
) -> Result<(), StartError> {
    let relay = start(settings, buffers, output)?;
    let receiving = receive::spawn(
        udp.socket,
        relay.pool.clone(),
        relay.stats.clone(),
        relay.spool.clone(),
    )
    .map_err(|err| StartError(format!("cannot start the UDP receiver thread: {err}")))?;
    let signalled = wait_for_signal(&receiving, signals);
    // Every shutdown deadline counts from here.
    let began = Instant::now();
    receiving.stop();
    shut_down(relay, began);
    if signalled {
        Ok(())
    } else {
        Err(StartError("the UDP receiver thread stopped".into()))
    }
}

/// The parts of a started relay that shutdown stops, in [`shut_down`]'s order.
struct Started {
    stats: Arc<Stats>,
    pool: Arc<Pool>,
    spool: Option<Arc<Spool>>,
    proxy: proxy::Running,
    uploaders: upload::Uploaders,
    courier: Arc<Courier>,
    /// The OTLP forwarders, when OTLP is on.
    otlp: Option<crate::otlp::Running>,
    /// Signals the end of the spool replayer's thread.
    replayer_finished: Option<Receiver<()>>,
    /// Asks telemetry for its last record, and signals when it is sent.
    telemetry: Option<(Sender<()>, Receiver<()>)>,
}

/// Binds the TCP socket (a relay without its proxy would hide the problem), then starts the
/// uploaders, the spool replayer, telemetry and the proxy.
fn start(settings: &Settings, buffers: Buffers, output: Output) -> Result<Started, StartError> {
    let Buffers {
        pool,
        otlp_bytes,
        translation_room,
    } = buffers;
    let stats = Arc::new(match &output {
        Output::XRay {
            credential_refresh_failures,
            ..
        } => Stats::with_credential_refresh_failures(credential_refresh_failures.clone()),
        Output::Local(_) => Stats::default(),
    });
    let choice = Choice::parse(settings.otlp.destination.as_deref()).map_err(StartError)?;
    // Where the original's processor logs it, after the proxy's endpoint line.
    log::debug!(
        "Batch size: {}",
        crate::pool::BATCH_SIZE.min(pool.fill().capacity_segments)
    );
    let listener = proxy::bind(&settings.tcp_address).map_err(|err| {
        StartError(format!(
            "Unable to start http proxy server: {}: {err}",
            settings.tcp_address
        ))
    })?;
    let otlp_listener = match &settings.otlp.address {
        Some(address) => Some(proxy::bind(address).map_err(|err| {
            StartError(format!(
                "Unable to start the OTLP receiver: {address}: {err}"
            ))
        })?),
        None => None,
    };

    // For `auto`: the signed client also asks X-Ray where the account's spans go.
    let api = match &output {
        Output::XRay { client, .. } => Some(client.clone()),
        Output::Local(_) => None,
    };
    let (destination, telemetry, upstream, otlp_destination): (Arc<dyn Destination>, _, _, _) =
        match output {
            Output::XRay {
                client,
                reporter,
                upstream,
                credential_refresh_failures: _,
                otlp,
            } => {
                let telemetry = Telemetry::new(client.clone(), stats.clone(), reporter);
                (
                    Arc::new(crate::sink::XRaySegments::new(client)),
                    Some(telemetry),
                    Upstream::XRay(upstream),
                    otlp.map(crate::otlp::forward::Destination::Export),
                )
            }
            Output::Local(sink) => {
                let sink = Arc::new(sink);
                (
                    sink.clone(),
                    None,
                    Upstream::Offline,
                    Some(crate::otlp::forward::Destination::Local(sink)),
                )
            }
        };
    let spool = match &settings.spool_dir {
        Some(dir) => {
            let max_bytes = settings.spool_max_mb.saturating_mul(1024 * 1024);
            let spool = Spool::open(dir, max_bytes, stats.clone())
                .map_err(|err| StartError(err.to_string()))?;
            log::info!(
                "Spooling overflow and unsent segments to {} (at most {} MB; {} files waiting)",
                dir.display(),
                settings.spool_max_mb,
                spool.files().len()
            );
            Some(Arc::new(spool))
        }
        None => None,
    };
    // `segments`: spans go into the segment pool as X-Ray documents, so everything after
    // the pool (uploads or the local sink, spool, telemetry) applies to them.
    let to_pool = || {
        Arc::new(crate::otlp::segments::ToPool::new(
            pool.clone(),
            stats.clone(),
            spool.clone(),
            settings.otlp.indexing.clone(),
        ))
    };
    let otlp_destination = match (otlp_destination, choice) {
        (Some(_), Choice::Segments) => Some(OtlpDestination::Segments(to_pool())),
        (Some(OtlpDestination::Export(export)), Choice::Auto) => Some(OtlpDestination::Auto {
            export,
            segments: to_pool(),
        }),
        (Some(_), Choice::Auto) => {
            // Offline there is no account to ask; segments show what X-Ray would get.
            log::info!(
                "OTLP.Destination auto: spans are written to the local sink as X-Ray segments (offline; --otlp-destination otlp writes OTLP JSON lines)"
            );
            Some(OtlpDestination::Segments(to_pool()))
        }
        (other, _) => other,
    };
    let segments_only = matches!(otlp_destination, Some(OtlpDestination::Segments(_)));
    let auto = matches!(otlp_destination, Some(OtlpDestination::Auto { .. }));
    let otlp = match (otlp_bytes, otlp_destination) {
        (Some(bytes), Some(destination)) => {
            let spool_max_bytes = settings.spool_max_mb.saturating_mul(1024 * 1024);
            let spool = settings
                .spool_dir
                .as_deref()
                .map(|dir| (dir, spool_max_bytes));
            let running = crate::otlp::start(bytes, destination, spool, stats.clone())
                .map(|running| running.giving_up_for_segments(translation_room))
                .map_err(|err| StartError(format!("cannot start OTLP forwarding: {err}")))?;
            let otlp_stats = &running.receiver.stats;
            if segments_only {
                otlp_stats
                    .destination
                    .store(auto::SEGMENTS, Ordering::Relaxed);
            }
            if let (true, Some(api)) = (auto, api) {
                auto::spawn_probe(api, otlp_stats.clone()).map_err(|err| {
                    StartError(format!("cannot start the OTLP destination check: {err}"))
                })?;
            }
            log::info!(
                "OTLP buffer: {bytes} bytes; segment buffer: {} bytes (--buffer-memory is shared)",
                pool.fill().capacity_bytes
            );
            Some(running)
        }
        _ => None,
    };
    let courier = Arc::new(Courier {
        pool: pool.clone(),
        destination,
        stats: stats.clone(),
        spool: spool.clone(),
    });
    let uploaders = upload::spawn(settings.concurrency, courier.clone())
        .map_err(|err| StartError(format!("cannot start uploader threads: {err}")))?;
    let replayer_finished = match &spool {
        Some(spool) => Some(
            replay::spawn(courier.clone(), spool.clone())
                .map_err(|err| StartError(format!("cannot start the spool replayer: {err}")))?,
        ),
        None => None,
    };
    let telemetry = match telemetry {
        Some(telemetry) => {
            let telemetry = match &otlp {
                Some(running) => telemetry.with_otlp(running.receiver.stats.clone()),
                None => telemetry,
            };
            let (stop, stopped) = std::sync::mpsc::channel();
            let finished = telemetry::spawn(telemetry, stopped)
                .map_err(|err| StartError(format!("cannot start telemetry: {err}")))?;
            Some((stop, finished))
        }
        None => None,
    };

    let listener_address = listener.address();
    let otlp_address = otlp_listener.as_ref().map(proxy::Listener::address);
    let proxy = proxy::spawn_with_otlp(
        listener,
        otlp_listener,
        proxy::Proxy {
            limits: proxy::Limits::default(),
            upstream,
            health: HealthPolicy {
                fail_after: settings.health_fail_after,
                nearly_full: NEARLY_FULL,
            },
            stats: stats.clone(),
            pool: pool.clone(),
            sampling_only: settings.proxy_sampling_only,
            otlp: otlp.as_ref().map(|running| running.receiver.clone()),
        },
    )
    .map_err(|err| StartError(format!("cannot start the http proxy server: {err}")))?;
    // The address as given, as the original prints it (the bound one may differ: port 0).
    log::info!("Starting proxy http server on {}", settings.tcp_address);
    log::debug!("The proxy listens on {}", listener_address);
    if settings.proxy_sampling_only {
        log::info!("The proxy forwards the sampling APIs only (Proxy.SamplingOnly)");
    }
    if let Some(address) = otlp_address {
        log::info!("Receiving OpenTelemetry traces (OTLP/HTTP) on {address}/v1/traces");
    }
    let started = Started {
        stats,
        pool,
        spool,
        proxy,
        uploaders,
        courier,
        otlp,
        replayer_finished,
        telemetry,
    };
    Ok(started)
}

/// Waits for a termination signal, or for the receiving thread to end by itself (a panic).
/// Returns `true` for a signal.
fn wait_for_signal(
    receiving: &receive::Receiving,
    signals: smol::channel::Receiver<Signal>,
) -> bool {
    let signal = smol::block_on(smol::future::or(
        async { signals.recv().await.ok() },
        async {
            receiving.ended().await;
            None
        },
    ));
    match signal {
        Some(signal) => {
            log::debug!(
                "Shutdown Initiated. Current epoch in nanoseconds: {}",
                epoch_nanos()
            );
            log::info!("Got shutdown signal: {}", signal.name());
            true
        }
        None => {
            log::error!("The UDP receiver stopped unexpectedly; shutting down");
            false
        }
    }
}

/// Stops the proxy, drains the uploaders, stops the replayer and sends the last telemetry
/// record, all within [`SHUTDOWN_BOUND`] of `began` (the signal): a call that hangs (an
/// endpoint that never answers, a `credential_process` that never exits) is left behind, and
/// what it carried is in the spool or counted as lost.
fn shut_down(relay: Started, began: Instant) {
    let Started {
        stats,
        pool,
        spool,
        proxy,
        mut uploaders,
        courier,
        otlp,
        replayer_finished,
        telemetry,
    } = relay;
    proxy.stop();
    // OTLP drains beside the segments, within the same deadline.
    let deadline = began + DRAIN_DEADLINE;
    let otlp_drain = otlp.map(|otlp| std::thread::spawn(move || otlp.shut_down(deadline)));

    drain(&pool, &mut uploaders, &courier, began);
    if let Some(otlp_drain) = otlp_drain {
        // Bounded: OTLP's shutdown leaves a forwarder stuck in a call behind.
        let _ = otlp_drain.join();
    }
    // The replayer and the last telemetry record share what is left of the bound.
    if let Some(spool) = &spool {
        spool.stop();
    }
    if let Some((stop, _)) = &telemetry {
        let _ = stop.send(());
    }
    let end = began + SHUTDOWN_BOUND;
    if let Some(replayer_finished) = replayer_finished {
        // A replay request in flight may take its whole timeout; its file stays on disk and
        // is replayed at the next start, so there is no reason to wait for it.
        if replayer_finished.recv_timeout(left_until(end)).is_err() {
            log::info!("The spool replayer was still sending; its file stays for the next start");
        }
    }
    if let Some((_, finished)) = telemetry {
        // The last record is worth a moment, not a hung shutdown when X-Ray is unreachable.
        let deadline = end.min(Instant::now() + LAST_TELEMETRY_DEADLINE);
        if finished.recv_timeout(left_until(deadline)).is_err() {
            log::warn!("The last telemetry record was not sent before the shutdown deadline");
        }
    }
    let counts = stats.snapshot();
    log::debug!(
        "Trace segment: received: {}, truncated: {}, processed: {}",
        counts.received,
        counts.spillover,
        counts.sent
    );
    log::debug!(
        "Trace segment: rejected: {}, dropped: {}, spooled: {}",
        counts.rejected,
        counts.dropped,
        counts.spooled
    );
    log::debug!(
        "Shutdown finished. Current epoch in nanoseconds: {}",
        epoch_nanos()
    );
}

fn left_until(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Uploads what is buffered until [`DRAIN_DEADLINE`] after `began`; then stops retries and
/// keeps whatever is left in the spool (or counts it as lost).
fn drain(pool: &Pool, uploaders: &mut upload::Uploaders, courier: &Courier, began: Instant) {
    pool.close();
    let drained = uploaders.wait_until(began + DRAIN_DEADLINE);
    // From here on nothing retries: the replayer, too, stops at its next failure.
    pool.abandon();
    if !drained {
        log::warn!(
            "Shutdown deadline of {} s passed with uploads still failing",
            DRAIN_DEADLINE.as_secs()
        );
        uploaders.wait_until(began + DRAIN_DEADLINE + ABANDON_GRACE);
    }
    // Waiting segments, and those of uploaders still stuck in a request (even where the pool
    // reused their slots): X-Ray has not acknowledged them, so keep them. A stuck request
    // that succeeds later makes a duplicate, which X-Ray ignores.
    let mut left = Spilled::new();
    pool.take_all_unacknowledged(&mut left);
    courier.keep_for_later(
        left.documents(),
        left.len(),
        Unsent::Unfinished,
        "not uploaded before shutdown",
    );
}

fn epoch_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
