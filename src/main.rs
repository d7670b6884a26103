//! The `xray` binary: a drop-in replacement for the AWS X-Ray daemon.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use xray_relay::aws::credentials::{AssumeRoleSource, RELAY_SESSION_NAME, default_chain};
use xray_relay::aws::{
    self, ChainSettings, ClientSettings, CredentialsProvider, Env, ImdsClient, ImdsError,
    XRayClient,
};
use xray_relay::relay::{self, Output};
use xray_relay::settings::{self, Exit, Settings};
use xray_relay::sink::LocalSink;
use xray_relay::telemetry::Reporter;
use xray_relay::{cli, go_addr, go_url, logging, shutdown};

/// How long one X-Ray call may take before it counts as timed out (and is retried).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    // First, before any thread exists: every thread inherits the blocked signal mask.
    let signals = match shutdown::listen() {
        Ok(signals) => signals,
        Err(err) => fail(&format!("cannot set up signal handling: {err}")),
    };
    // Like Go's runtime: every connection of the proxy needs a descriptor.
    let open_files = raise_open_files_limit();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let settings = settings::resolve(&args).unwrap_or_else(|exit| exit.exit());
    logging::init(&settings.log_setup()).unwrap_or_else(|err| Exit::from(err).exit());

    // The original's first line, word for word: operators search for it.
    log::info!("Initializing AWS X-Ray daemon {}", cli::DAEMON_VERSION);
    log::info!("xray-relay {}", env!("CARGO_PKG_VERSION"));
    // The original's order: the UDP socket, the buffers, then region and credentials; the
    // TCP address when it creates its proxy.
    let udp = relay::bind_udp(&settings).unwrap_or_else(|err| fail(&err.to_string()));
    let buffer_mb = settings
        .buffer_memory_limit_mb()
        .unwrap_or_else(|err| fail(&err.to_string()));
    log::info!("Using buffer memory limit of {buffer_mb} MB");
    let buffer_bytes = usize::try_from(buffer_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let buffers = relay::allocate_buffers(&settings, buffer_bytes);
    match open_files {
        Ok(limit) => log::debug!("Open files limit: {limit}"),
        Err(err) => log::warn!("Cannot raise the open files limit: {err}"),
    }

    let output = match &settings.local_sink {
        Some(target) => match LocalSink::open(target) {
            Ok(sink) => {
                log::info!("Offline mode: writing segments to {target} instead of X-Ray");
                Output::Local(sink)
            }
            Err(err) => fail(&format!("Unable to open local sink {target}: {err}")),
        },
        None => connect_to_xray(&settings, &Env::from_process()),
    };
    if let Some(error) = go_addr::listen_address_error(&settings.tcp_address) {
        fail(&error);
    }
    if let Err(err) = relay::run(&settings, udp, buffers, output, signals) {
        fail(&err.to_string());
    }
}

/// Resolves region, credentials and endpoint, and builds the X-Ray client.
fn connect_to_xray(settings: &Settings, env: &Env) -> Output {
    // The original's line, before it resolves region and credentials.
    if let Some(endpoint) = settings.endpoint.as_deref()
        && !endpoint.trim().is_empty()
    {
        log::debug!("Using Endpoint read from Config file: {endpoint}");
    }
    // As the original, a proxy address it could not parse ends the process before anything else.
    let proxy_address = settings
        .proxy_address
        .as_deref()
        .map(|proxy| go_url::usable_proxy(proxy).unwrap_or_else(|err| fail(&err)));
    // One metadata client for the region, the credentials and the telemetry host fields.
    let imds = Arc::new(ImdsClient::from_env(env));
    let region = aws::resolve_region(settings.region.as_deref(), settings.local_mode, env, || {
        log::debug!(
            "Asking EC2 instance metadata ({}) for the region",
            imds.endpoint().unwrap_or("disabled")
        );
        imds.region()
    })
    .unwrap_or_else(|err| fail(&err.to_string()));
    log::info!("Using region: {region}");

    let chain = ChainSettings::new(env, &region, imds.clone());
    let refresh_failures = Arc::new(AtomicU64::new(0));
    let found = Arc::new(CredentialsProvider::counting_failures_in(
        default_chain(&chain),
        refresh_failures.clone(),
    ));
    let credentials = match &settings.role_arn {
        None => found,
        Some(role) => {
            log::info!(
                "Assuming role {role} (session {RELAY_SESSION_NAME}) through STS at {}",
                chain.sts.endpoint()
            );
            let assume = AssumeRoleSource::new(found, chain.sts.clone(), role);
            Arc::new(CredentialsProvider::counting_failures_in(
                vec![Box::new(assume)],
                refresh_failures.clone(),
            ))
        }
    };
    // Like the SDKs, missing credentials are not fatal: they may appear later (a profile
    // written after start); until then uploads fail and are counted.
    if let Err(err) = credentials.credentials() {
        log::warn!("No AWS credentials yet: {err}");
    }
    let endpoint = aws::xray_endpoint(settings.endpoint.as_deref(), &region, env);
    let endpoint = go_url::usable_endpoint(&endpoint).unwrap_or_else(|err| fail(&err));
    // Logged after telemetry's lines, where the original creates its proxy.
    let proxy_endpoint_line = format!("HTTP Proxy server using X-Ray Endpoint : {endpoint}");
    let mut client_settings = ClientSettings::new(endpoint, region);
    client_settings.proxy_address = proxy_address;
    client_settings.no_verify_ssl = settings.no_verify_ssl;
    client_settings.max_idle_connections = settings.concurrency.max(1);
    // The original gives up after 2 s and loses the batch; a slow link or a loaded endpoint
    // answers later than that, and a retry would only send the same bytes again.
    client_settings.request_timeout = UPLOAD_TIMEOUT;
    let client = XRayClient::new(&client_settings, credentials, env)
        .unwrap_or_else(|err| fail(&format!("Unable to create the X-Ray client: {err}")));

    // As the original: the environment first, then instance metadata unless in local mode.
    let metadata = (!settings.local_mode).then_some(&*imds);
    let reporter = Reporter {
        hostname: host_field(
            env,
            ("AWS_HOSTNAME", "hostname"),
            metadata,
            ImdsClient::hostname,
            log::Level::Debug,
        ),
        instance_id: host_field(
            env,
            ("AWS_INSTANCE_ID", "instance id"),
            metadata,
            ImdsClient::instance_id,
            log::Level::Error,
        ),
        resource_arn: settings.resource_arn.clone(),
    };
    log::debug!(
        "ARN of the AWS resource running the daemon: {}",
        reporter.resource_arn
    );
    log::debug!("Telemetry initiated");
    log::info!("{proxy_endpoint_line}");
    let client = Arc::new(client);
    let otlp = settings.otlp.enabled().then(|| {
        let url =
            xray_relay::otlp::endpoint_url(settings.otlp.endpoint.as_deref(), client.endpoint());
        log::info!("Using X-Ray OTLP endpoint: {url}");
        Arc::new(xray_relay::otlp::forward::XRayOtlp {
            client: client.clone(),
            url,
            gzip: settings.otlp.gzip,
        }) as Arc<dyn xray_relay::otlp::forward::Export>
    });
    Output::XRay {
        client: client.clone(),
        reporter,
        upstream: client,
        credential_refresh_failures: refresh_failures,
        otlp,
    }
}

/// A telemetry host field: `variable` when set, else asked of instance metadata (None in
/// local mode), else empty. A failed metadata lookup is logged at `failure_level` (the
/// original: debug for the host name, error for the instance id).
fn host_field(
    env: &Env,
    (variable, what): (&str, &str),
    metadata: Option<&ImdsClient>,
    ask: fn(&ImdsClient) -> Result<String, ImdsError>,
    failure_level: log::Level,
) -> String {
    if let Some(value) = env.get(variable) {
        log::debug!("Fetch {what} {value} from environment variables");
        return value.to_owned();
    }
    let Some(imds) = metadata else {
        log::debug!("No {what} set for telemetry records");
        return String::new();
    };
    match ask(imds) {
        Ok(value) => {
            log::debug!("Using {value} {what} for telemetry records");
            value
        }
        Err(err) => {
            log::log!(failure_level, "Get {what} metadata failed: {err}");
            String::new()
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns the new soft limit.
fn raise_open_files_limit() -> std::io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to write to.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; the soft limit stays within the hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// Logs an error and exits 1, as the original does for every start-up failure.
fn fail(message: &str) -> ! {
    log::error!("{message}");
    if log::max_level() == log::LevelFilter::Off {
        eprintln!("{message}");
    }
    std::process::exit(1)
}
