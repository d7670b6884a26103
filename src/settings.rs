//! The settings the relay runs with: command-line flags over cfg.yaml over defaults.
//!
//! [`resolve`] reproduces the original daemon's two-pass start-up: the config at the default
//! locations is read before the flags (its values are the flags' defaults), then a `-c` file is
//! validated and loaded, and only then is `-v` answered. Whatever should end the process instead
//! comes back as an [`Exit`] that knows its output streams and status.

use crate::cli::{self, CliError, Command, Flags};
use crate::config::{self, Config, ConfigError};
use crate::logging::{self, LogInitError, LogSetup};
use log::Level;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Upload concurrency when cfg.yaml gives none (or a nonsensical one).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// The least buffer memory the relay runs with, in MB.
pub const MIN_BUFFER_MEMORY_MB: u64 = 3;

/// The most buffer memory the relay runs with, in MB: what the pool's 32-bit offsets address.
pub const MAX_BUFFER_MEMORY_MB: u64 = crate::pool::MAX_POOL_MB;

/// Where the host's memory size is read from.
pub const MEMINFO_PATH: &str = "/proc/meminfo";

/// The container's memory limit under cgroup v2 (`max` for none).
pub const CGROUP_V2_MEMORY_MAX_PATH: &str = "/sys/fs/cgroup/memory.max";

/// The container's memory limit under cgroup v1 (a huge number for none).
pub const CGROUP_V1_MEMORY_LIMIT_PATH: &str = "/sys/fs/cgroup/memory/memory.limit_in_bytes";

/// Everything the relay needs to know from its command line and config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// ARN of the AWS resource running the relay (`-a`, `ResourceARN`); empty if not given.
    pub resource_arn: String,
    /// Skip EC2 instance metadata lookups (`-o`, `LocalMode`).
    pub local_mode: bool,
    /// Buffer memory in MB as asked for (`-m`, `TotalBufferSizeMB`); 0 means 1 % of host
    /// memory, see [`Settings::buffer_memory_limit_mb`].
    pub buffer_memory_mb: u64,
    /// Region from `-n` or `Region`; `None` to discover it (environment, metadata).
    pub region: Option<String>,
    /// Address to receive segments on, UDP (`-b`, `Socket.UDPAddress`).
    pub udp_address: String,
    /// Address of the X-Ray API proxy, TCP (`-t`, `Socket.TCPAddress`).
    pub tcp_address: String,
    /// IAM role to assume for uploads (`-r`, `RoleARN`).
    pub role_arn: Option<String>,
    /// Log file (`-f`, `Logging.LogPath`); `None` for stdout.
    pub log_file: Option<PathBuf>,
    /// Most verbose level logged (`-l`, `Logging.LogLevel`).
    pub log_level: Level,
    /// A level name given but not recognised, to warn about once logging is up.
    pub unknown_log_level: Option<String>,
    /// Roll the log file at 50 MB (`Logging.LogRotation`).
    pub log_rotation: bool,
    /// HTTP proxy for uploads (`-p`, `ProxyAddress`).
    pub proxy_address: Option<String>,
    /// X-Ray endpoint override (`Endpoint`).
    pub endpoint: Option<String>,
    /// Parallel uploads (`Concurrency`).
    pub concurrency: usize,
    /// Skip TLS certificate verification (`NoVerifySSL`).
    pub no_verify_ssl: bool,
    /// Write segments to this file, or stdout for `-`, instead of AWS (`--local-sink`,
    /// `LocalSink`).
    pub local_sink: Option<String>,
    /// Keep segments that could not be sent yet here (`--spool-dir`, `Spool.Directory`).
    pub spool_dir: Option<PathBuf>,
    /// Most MB the spool may hold (`--spool-max-mb`, `Spool.MaxMB`, default 100).
    pub spool_max_mb: u64,
    /// `/healthz` says 503 once uploads have failed this long (`Health.FailAfterSeconds`).
    pub health_fail_after: Duration,
    /// The TCP proxy forwards only the sampling APIs (`Proxy.SamplingOnly`).
    pub proxy_sampling_only: bool,
    /// The OpenTelemetry receiver (`--otlp-address`, `OTLP.*`).
    pub otlp: OtlpSettings,
    /// The config file that was loaded, if any.
    pub config_file: Option<PathBuf>,
}

/// The OpenTelemetry receiver's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// Where OTLP/HTTP is received (`--otlp-address`, `OTLP.HTTPAddress`); `None`: no port.
    pub address: Option<String>,
    /// Where spans go (`OTLP.Endpoint`); `None`: `/v1/traces` under the X-Ray endpoint.
    pub endpoint: Option<String>,
    /// `--otlp-destination`, `OTLP.Destination`: `auto` (`None`), `otlp` or `segments`.
    pub destination: Option<String>,
    /// Compress requests to X-Ray (`OTLP.Compression` is not `none`).
    pub gzip: bool,
    /// Which attributes become annotations (`OTLP.IndexedAttributes`,
    /// `OTLP.IndexAllAttributes`), for `segments`.
    pub indexing: crate::otlp::translate::Indexing,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        OtlpSettings {
            address: None,
            endpoint: None,
            destination: None,
            gzip: true,
            indexing: crate::otlp::translate::Indexing::default(),
        }
    }
}

impl OtlpSettings {
    /// Whether OTLP is received at all: an address or a destination was given.
    pub fn enabled(&self) -> bool {
        self.address.is_some() || self.destination.is_some()
    }
}

/// Why the process should end instead of running, with what it prints where.
#[derive(Debug)]
pub enum Exit {
    /// `-h` or `-v`: this text goes to stdout, status 0.
    Print(String),
    /// A bad command line: the error goes to stderr, then the usage to stdout (Go's `flag`
    /// prints the error to its output, stderr, and the original's usage function prints
    /// with `fmt.Println`), status 2.
    BadUsage(CliError),
    /// A start-up failure: one `[Error]` log line on stderr, also appended to `log_file`, status 1.
    Fatal {
        /// The message, e.g. a [`ConfigError`]'s.
        message: String,
        /// The log file known at the time of the failure.
        log_file: Option<PathBuf>,
    },
}

impl Exit {
    fn config(error: ConfigError, log_file: Option<PathBuf>) -> Self {
        Exit::Fatal {
            message: error.to_string(),
            log_file,
        }
    }

    /// The process exit status.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Print(_) => 0,
            Exit::BadUsage(_) => CliError::EXIT_CODE,
            Exit::Fatal { .. } => 1,
        }
    }

    /// Writes what this exit prints; write errors are ignored as the process is ending.
    pub fn write(&self, stdout: &mut dyn Write, stderr: &mut dyn Write) {
        match self {
            Exit::Print(text) => {
                let _ = stdout.write_all(text.as_bytes());
            }
            Exit::BadUsage(error) => {
                let _ = writeln!(stderr, "{error}");
                let _ = stdout.write_all(cli::usage().as_bytes());
            }
            Exit::Fatal { message, log_file } => {
                logging::write_startup_error(stderr, message, log_file.as_deref());
            }
        }
    }

    /// Prints to the real stdout/stderr and ends the process.
    pub fn exit(self) -> ! {
        self.write(&mut io::stdout(), &mut io::stderr());
        let _ = io::stdout().flush();
        std::process::exit(self.code())
    }
}

impl From<LogInitError> for Exit {
    /// The log file could not be opened: say so on stderr only, with Go's words for the cause
    /// (`open /var/log: is a directory`), which the original prints for every line it cannot log.
    fn from(error: LogInitError) -> Self {
        let message = match &error {
            LogInitError::OpenFile { path, source } => format!(
                "Unable to open log file: open {}: {}",
                path.display(),
                config::go_error_text(source)
            ),
            other => other.to_string(),
        };
        Exit::Fatal {
            message,
            log_file: None,
        }
    }
}

/// Resolves the settings from the arguments after the program name, looking for cfg.yaml at
/// [`config::DEFAULT_LOCATIONS`] when `-c` is not given.
pub fn resolve(args: &[String]) -> Result<Settings, Exit> {
    let locations: Vec<&Path> = config::DEFAULT_LOCATIONS.iter().map(Path::new).collect();
    resolve_with_locations(args, &locations)
}

/// [`resolve`] with other default config locations (tests, packaging).
pub fn resolve_with_locations(
    args: &[String],
    default_locations: &[&Path],
) -> Result<Settings, Exit> {
    // First pass, as in the original: the default config comes before the flags, so even -h
    // fails on a broken one, and its errors cannot go to a log file yet.
    let (default_config, default_config_file) = config::load_first_existing(default_locations)
        .map_err(|error| Exit::config(error, None))?;
    let flags = match cli::parse(args) {
        Ok(Command::Run(flags)) => flags,
        Ok(Command::Help) => return Err(Exit::Print(cli::usage())),
        Err(error) => return Err(Exit::BadUsage(error)),
    };
    // The original logs -c errors to the log file known after the first pass.
    let error_log_file = non_empty(
        flags
            .log_file
            .clone()
            .unwrap_or_else(|| default_config.log_path.clone()),
    )
    .map(PathBuf::from);
    let (config, config_file) = match flags.config.as_deref().filter(|path| !path.is_empty()) {
        Some(path) => {
            let path = Path::new(path);
            config::validate_file(path)
                .and_then(|()| config::load_file(path))
                .map(|config| (config, Some(path.to_path_buf())))
                .map_err(|error| Exit::config(error, error_log_file))?
        }
        None => (default_config, default_config_file),
    };
    if flags.wants_version() {
        return Err(Exit::Print(cli::version_text()));
    }
    Ok(Settings::combine(flags, config, config_file))
}

impl Settings {
    /// Flags over config values; the config already holds the defaults for what it lacks.
    fn combine(flags: Flags, config: Config, config_file: Option<PathBuf>) -> Settings {
        let log_level_name = flags.log_level.unwrap_or_else(|| config.log_level.clone());
        let (log_level, unknown_log_level) =
            logging::resolve_level(&config.log_level, &log_level_name);
        Settings {
            resource_arn: flags.resource_arn.unwrap_or(config.resource_arn),
            local_mode: flags.local_mode.unwrap_or(config.local_mode),
            // The original treats a negative size like 0: work it out from host memory.
            buffer_memory_mb: u64::try_from(
                flags.buffer_memory.unwrap_or(config.total_buffer_size_mb),
            )
            .unwrap_or(0),
            region: non_empty(flags.region.unwrap_or(config.region)),
            udp_address: flags.bind.unwrap_or(config.udp_address),
            tcp_address: flags.bind_tcp.unwrap_or(config.tcp_address),
            role_arn: non_empty(flags.role_arn.unwrap_or(config.role_arn)),
            log_file: non_empty(flags.log_file.unwrap_or(config.log_path)).map(PathBuf::from),
            log_level,
            unknown_log_level,
            log_rotation: config.log_rotation,
            proxy_address: non_empty(flags.proxy_address.unwrap_or(config.proxy_address)),
            endpoint: non_empty(config.endpoint),
            concurrency: usize::try_from(config.concurrency)
                .ok()
                .filter(|&count| count > 0)
                .unwrap_or(DEFAULT_CONCURRENCY),
            no_verify_ssl: config.no_verify_ssl,
            local_sink: non_empty(flags.local_sink.unwrap_or(config.local_sink)),
            spool_dir: non_empty(flags.spool_dir.unwrap_or(config.spool_directory))
                .map(PathBuf::from),
            spool_max_mb: flags
                .spool_max_mb
                .filter(|&mb| mb > 0)
                .unwrap_or(config.spool_max_mb),
            health_fail_after: Duration::from_secs(config.health_fail_after_seconds),
            proxy_sampling_only: config.proxy_sampling_only,
            otlp: OtlpSettings {
                address: non_empty(flags.otlp_address.unwrap_or(config.otlp.http_address)),
                endpoint: non_empty(config.otlp.endpoint),
                destination: non_empty(flags.otlp_destination.unwrap_or(config.otlp.destination)),
                gzip: !config.otlp.compression.eq_ignore_ascii_case("none"),
                indexing: crate::otlp::translate::Indexing {
                    indexed: config.otlp.indexed_attributes,
                    all: config.otlp.index_all_attributes,
                },
            },
            config_file,
        }
    }

    /// What [`logging::init`] needs.
    pub fn log_setup(&self) -> LogSetup {
        LogSetup {
            level: self.log_level,
            unknown_level: self.unknown_log_level.clone(),
            file: self.log_file.clone(),
            rotation: self.log_rotation,
            console_is_stderr: self.local_sink.as_deref() == Some("-"),
        }
    }

    /// The buffer memory to use in MB, reading host memory only if none was asked for.
    pub fn buffer_memory_limit_mb(&self) -> Result<u64, BufferMemoryError> {
        evaluate_buffer_memory(self.buffer_memory_mb, HostMemory::read)
    }
}

fn non_empty(text: String) -> Option<String> {
    Some(text).filter(|text| !text.is_empty())
}

/// Why there is no usable buffer memory size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufferMemoryError {
    /// Host memory could not be determined; says what was read and what went wrong.
    HostMemoryUnknown(String),
    /// Less than [`MIN_BUFFER_MEMORY_MB`].
    TooSmall,
    /// More than [`MAX_BUFFER_MEMORY_MB`]: the MB asked for.
    TooLarge(u64),
    /// More than the host (or its container) has: the MB asked for and the MB usable.
    MoreThanHost(u64, u64),
}

impl fmt::Display for BufferMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BufferMemoryError::HostMemoryUnknown(detail) => f.write_str(detail),
            BufferMemoryError::TooSmall => write!(
                f,
                "Not enough Buffers Memory Allocated. Min Buffers Memory required: {MIN_BUFFER_MEMORY_MB} MB."
            ),
            BufferMemoryError::TooLarge(requested) => write!(
                f,
                "Buffer memory of {requested} MB (-m / --buffer-memory, cfg TotalBufferSizeMB) is more than the {MAX_BUFFER_MEMORY_MB} MB the segment pool can address"
            ),
            BufferMemoryError::MoreThanHost(requested, usable) => write!(
                f,
                "Buffer memory of {requested} MB (-m / --buffer-memory, cfg TotalBufferSizeMB) is more than the {usable} MB of memory this host (or its container) has"
            ),
        }
    }
}

impl std::error::Error for BufferMemoryError {}

/// The memory the relay may assume it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMemory {
    /// `MemTotal` from /proc/meminfo, in bytes.
    pub total_bytes: u64,
    /// The cgroup (container) memory limit in bytes, `None` if there is none.
    pub cgroup_limit_bytes: Option<u64>,
}

impl HostMemory {
    /// Reads [`MEMINFO_PATH`] and the cgroup v2 limit, or the v1 limit where v2 is absent.
    pub fn read() -> Result<Self, BufferMemoryError> {
        let meminfo = std::fs::read_to_string(MEMINFO_PATH).map_err(|error| {
            BufferMemoryError::HostMemoryUnknown(format!("Unable to read {MEMINFO_PATH}: {error}"))
        })?;
        // A missing or unreadable cgroup file just means no container limit.
        let cgroup_limit = std::fs::read_to_string(CGROUP_V2_MEMORY_MAX_PATH)
            .or_else(|_| std::fs::read_to_string(CGROUP_V1_MEMORY_LIMIT_PATH))
            .ok();
        Self::parse(&meminfo, cgroup_limit.as_deref())
    }

    /// From the text of /proc/meminfo and of a cgroup memory limit file (v2 `memory.max`:
    /// a number or `max`; v1 `memory.limit_in_bytes`: a number, huge for none).
    pub fn parse(meminfo: &str, cgroup_limit: Option<&str>) -> Result<Self, BufferMemoryError> {
        let total_bytes = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(parse_meminfo_value)
            .ok_or_else(|| {
                BufferMemoryError::HostMemoryUnknown(format!(
                    "Unable to find MemTotal in {MEMINFO_PATH}"
                ))
            })?;
        // "max" (no limit) and anything else unexpected do not parse, which means no limit.
        let cgroup_limit_bytes = cgroup_limit.and_then(|text| text.trim().parse().ok());
        Ok(HostMemory {
            total_bytes,
            cgroup_limit_bytes,
        })
    }

    /// The smaller of host memory and the cgroup limit; a v1 "no limit" is larger than any host.
    pub fn usable_bytes(&self) -> u64 {
        self.cgroup_limit_bytes
            .map_or(self.total_bytes, |limit| limit.min(self.total_bytes))
    }
}

/// `"  16318472 kB"` → bytes.
fn parse_meminfo_value(value: &str) -> Option<u64> {
    let mut words = value.split_whitespace();
    let number: u64 = words.next()?.parse().ok()?;
    match words.next() {
        None => Some(number),
        Some("kB") => number.checked_mul(1024),
        Some(_) => None,
    }
}

/// The original's `evaluateBufferMemory`: a size asked for is used as is; 0 means 1 % of the
/// usable memory, rounded down to whole MB; and either way at least [`MIN_BUFFER_MEMORY_MB`].
///
/// On top of the original, which takes any size and then fails to allocate it or wraps its
/// arithmetic: a size asked for must be at most [`MAX_BUFFER_MEMORY_MB`] and, when the host's
/// memory can be read, at most that.
pub fn evaluate_buffer_memory(
    requested_mb: u64,
    host: impl FnOnce() -> Result<HostMemory, BufferMemoryError>,
) -> Result<u64, BufferMemoryError> {
    let megabytes = if requested_mb > 0 {
        if requested_mb > MAX_BUFFER_MEMORY_MB {
            return Err(BufferMemoryError::TooLarge(requested_mb));
        }
        // Unknown host memory is no reason to refuse a size the original would take.
        if let Ok(host) = host() {
            let usable_mb = host.usable_bytes() / (1024 * 1024);
            if requested_mb > usable_mb {
                return Err(BufferMemoryError::MoreThanHost(requested_mb, usable_mb));
            }
        }
        requested_mb
    } else {
        host()?.usable_bytes() / (100 * 1024 * 1024)
    };
    if megabytes < MIN_BUFFER_MEMORY_MB {
        return Err(BufferMemoryError::TooSmall);
    }
    Ok(megabytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    fn resolve_args(list: &[&str], locations: &[&Path]) -> Result<Settings, Exit> {
        resolve_with_locations(&args(list), locations)
    }

    fn settings(list: &[&str], locations: &[&Path]) -> Settings {
        match resolve_args(list, locations) {
            Ok(settings) => settings,
            Err(exit) => panic!("{list:?} gave {exit:?}"),
        }
    }

    fn exit(list: &[&str], locations: &[&Path]) -> Exit {
        match resolve_args(list, locations) {
            Err(exit) => exit,
            Ok(settings) => panic!("{list:?} gave {settings:?}"),
        }
    }

    /// What an exit prints: (stdout, stderr).
    fn output(exit: &Exit) -> (String, String) {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        exit.write(&mut stdout, &mut stderr);
        (
            String::from_utf8(stdout).unwrap(),
            String::from_utf8(stderr).unwrap(),
        )
    }

    fn defaults() -> Settings {
        Settings {
            resource_arn: String::new(),
            local_mode: false,
            buffer_memory_mb: 0,
            region: None,
            udp_address: "127.0.0.1:2000".into(),
            tcp_address: "127.0.0.1:2000".into(),
            role_arn: None,
            log_file: None,
            log_level: Level::Info,
            unknown_log_level: None,
            log_rotation: true,
            proxy_address: None,
            endpoint: None,
            concurrency: 8,
            no_verify_ssl: false,
            local_sink: None,
            spool_dir: None,
            spool_max_mb: 100,
            health_fail_after: Duration::from_secs(60),
            proxy_sampling_only: false,
            otlp: OtlpSettings::default(),
            config_file: None,
        }
    }

    const FULL_CONFIG: &str = r#"TotalBufferSizeMB: 24
Concurrency: 4
Endpoint: "https://xray.example.com"
Region: "eu-west-1"
Socket:
  UDPAddress: "0.0.0.0:2000"
  TCPAddress: "0.0.0.0:2001"
Logging:
  LogRotation: false
  LogLevel: "warn"
  LogPath: "/var/log/cfg.log"
LocalMode: true
ResourceARN: "arn:cfg:resource"
RoleARN: "arn:cfg:role"
NoVerifySSL: true
ProxyAddress: "http://cfg-proxy:3128"
LocalSink: "cfg.jsonl"
Spool:
  Directory: "/var/spool/cfg"
  MaxMB: 50
Health:
  FailAfterSeconds: 90
Proxy:
  SamplingOnly: true
Version: 2
"#;

    #[test]
    fn nothing_given_means_the_defaults() {
        assert_eq!(settings(&[], &[]), defaults());
    }

    #[test]
    fn config_values_apply_when_no_flag_is_given() {
        let dir = TempDir::new("config-values");
        let file = dir.file("cfg.yaml", FULL_CONFIG);
        let expected = Settings {
            resource_arn: "arn:cfg:resource".into(),
            local_mode: true,
            buffer_memory_mb: 24,
            region: Some("eu-west-1".into()),
            udp_address: "0.0.0.0:2000".into(),
            tcp_address: "0.0.0.0:2001".into(),
            role_arn: Some("arn:cfg:role".into()),
            log_file: Some("/var/log/cfg.log".into()),
            log_level: Level::Warn,
            unknown_log_level: None,
            log_rotation: false,
            proxy_address: Some("http://cfg-proxy:3128".into()),
            endpoint: Some("https://xray.example.com".into()),
            concurrency: 4,
            no_verify_ssl: true,
            local_sink: Some("cfg.jsonl".into()),
            spool_dir: Some("/var/spool/cfg".into()),
            spool_max_mb: 50,
            health_fail_after: Duration::from_secs(90),
            proxy_sampling_only: true,
            otlp: OtlpSettings::default(),
            config_file: Some(file.clone()),
        };
        // Found at a default location, or named with -c: the same settings.
        assert_eq!(settings(&[], &[file.as_path()]), expected);
        let file_arg = file.to_str().unwrap();
        assert_eq!(settings(&["-c", file_arg], &[]), expected);
    }

    #[test]
    fn flags_override_config_values() {
        let dir = TempDir::new("flags-win");
        let file = dir.file("cfg.yaml", FULL_CONFIG);
        let given = settings(
            &[
                "-a=arn:flag:resource",
                "-o=false",
                "-m",
                "64",
                "-n",
                "us-east-2",
                "-b",
                "127.0.0.1:3000",
                "-t",
                "127.0.0.1:3001",
                "-r",
                "arn:flag:role",
                "-f",
                "/tmp/flag.log",
                "-l",
                "dev",
                "-p",
                "http://flag-proxy:8080",
                "--local-sink",
                "-",
                "--spool-dir",
                "/tmp/spool",
                "--spool-max-mb",
                "7",
            ],
            &[file.as_path()],
        );
        let expected = Settings {
            resource_arn: "arn:flag:resource".into(),
            local_mode: false,
            buffer_memory_mb: 64,
            region: Some("us-east-2".into()),
            udp_address: "127.0.0.1:3000".into(),
            tcp_address: "127.0.0.1:3001".into(),
            role_arn: Some("arn:flag:role".into()),
            log_file: Some("/tmp/flag.log".into()),
            log_level: Level::Trace,
            proxy_address: Some("http://flag-proxy:8080".into()),
            local_sink: Some("-".into()),
            spool_dir: Some("/tmp/spool".into()),
            spool_max_mb: 7,
            // Only in the config file:
            log_rotation: false,
            endpoint: Some("https://xray.example.com".into()),
            concurrency: 4,
            no_verify_ssl: true,
            unknown_log_level: None,
            health_fail_after: Duration::from_secs(90),
            proxy_sampling_only: true,
            otlp: OtlpSettings::default(),
            config_file: Some(file),
        };
        assert_eq!(given, expected);
    }

    #[test]
    fn an_empty_flag_clears_a_config_value() {
        let dir = TempDir::new("empty-flag");
        let file = dir.file("cfg.yaml", FULL_CONFIG);
        let given = settings(&["-n", "", "-f=", "-p", "", "-r="], &[file.as_path()]);
        assert_eq!(given.region, None);
        assert_eq!(given.log_file, None);
        assert_eq!(given.proxy_address, None);
        assert_eq!(given.role_arn, None);
    }

    #[test]
    fn odd_numbers_fall_back_sensibly() {
        let dir = TempDir::new("numbers");
        let file = dir.file(
            "cfg.yaml",
            "Concurrency: -2\nTotalBufferSizeMB: 5\nVersion: 2",
        );
        let given = settings(&["-m", "-1", "--spool-max-mb", "0"], &[file.as_path()]);
        assert_eq!(given.buffer_memory_mb, 0);
        assert_eq!(given.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(given.spool_max_mb, config::DEFAULT_SPOOL_MAX_MB);
        assert_eq!(settings(&[], &[file.as_path()]).buffer_memory_mb, 5);
    }

    #[test]
    fn log_level_from_config_and_flag() {
        let dir = TempDir::new("levels");
        let file = dir.file("cfg.yaml", "Logging:\n  LogLevel: error\nVersion: 2");
        assert_eq!(settings(&[], &[file.as_path()]).log_level, Level::Error);
        assert_eq!(
            settings(&["-l", "debug"], &[file.as_path()]).log_level,
            Level::Debug
        );
        let unknown = settings(&["-l", "chatty"], &[file.as_path()]);
        assert_eq!(unknown.log_level, Level::Error);
        assert_eq!(unknown.unknown_log_level.as_deref(), Some("chatty"));
        let setup = unknown.log_setup();
        assert_eq!(setup.level, Level::Error);
        assert_eq!(setup.unknown_level.as_deref(), Some("chatty"));
        assert_eq!(setup.file, None);
        assert!(setup.rotation);
    }

    #[test]
    fn help_and_version_print_to_stdout() {
        let help = exit(&["-h"], &[]);
        assert_eq!(help.code(), 0);
        assert_eq!(output(&help), (cli::usage(), String::new()));
        let version = exit(&["--version"], &[]);
        assert_eq!(version.code(), 0);
        assert_eq!(output(&version), (cli::version_text(), String::new()));
    }

    #[test]
    fn a_bad_flag_prints_the_error_to_stderr_and_usage_to_stdout() {
        let bad = exit(&["-m", "lots"], &[]);
        assert_eq!(bad.code(), 2);
        let (stdout, stderr) = output(&bad);
        assert_eq!(stderr, "invalid value \"lots\" for flag -m: parse error\n");
        assert_eq!(stdout, cli::usage());
    }

    #[test]
    fn a_config_file_given_with_c_is_validated() {
        let dir = TempDir::new("validated");
        let file = dir.file("cfg.yaml", "ABCDE: true\nVersion: 2");
        let log = dir.0.join("errors.log");
        let failure = exit(
            &["-f", log.to_str().unwrap(), "-c", file.to_str().unwrap()],
            &[],
        );
        assert_eq!(failure.code(), 1);
        let (stdout, stderr) = output(&failure);
        assert_eq!(stdout, "");
        assert!(
            stderr.ends_with(" [Error] ABCDE flag is invalid. Please refer to AWS X-Ray Documentation for more information.\n"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), stderr);
        // Found at a default location instead, the same file is loaded without validation.
        assert!(settings(&[], &[file.as_path()]).config_file.is_some());
    }

    #[test]
    fn config_errors_win_over_version_but_not_over_help() {
        let dir = TempDir::new("precedence");
        let bad = dir.file("bad.yaml", "Version: 3");
        let bad_arg = bad.to_str().unwrap();
        let failure = exit(&["-v", "-c", bad_arg], &[]);
        assert_eq!(failure.code(), 1);
        assert!(
            output(&failure)
                .1
                .contains("Config Version Setting is not correct.")
        );
        assert_eq!(exit(&["-h", "-c", bad_arg], &[]).code(), 0);
        // A broken config at a default location is read before the flags, so it wins over -h.
        let first_pass = exit(&["-h"], &[bad.as_path()]);
        assert_eq!(first_pass.code(), 1);
        assert!(matches!(first_pass, Exit::Fatal { log_file: None, .. }));
    }

    #[test]
    fn c_errors_go_to_the_default_configs_log_path() {
        let dir = TempDir::new("error-log");
        let log = dir.0.join("from-default.log");
        let default = dir.file(
            "default.yaml",
            &format!("Logging:\n  LogPath: {}\nVersion: 2", log.display()),
        );
        let missing = dir.0.join("missing.yaml");
        let failure = exit(&["-c", missing.to_str().unwrap()], &[default.as_path()]);
        match &failure {
            Exit::Fatal { message, log_file } => {
                assert!(
                    message.starts_with("Error occur when using config flag: open "),
                    "{message}"
                );
                assert_eq!(log_file.as_deref(), Some(log.as_path()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_c_means_no_config_file() {
        let dir = TempDir::new("empty-c");
        let default = dir.file("default.yaml", "Region: from-default\nVersion: 1");
        let given = settings(&["-c", ""], &[default.as_path()]);
        assert_eq!(given.region.as_deref(), Some("from-default"));
        assert_eq!(given.config_file, Some(default));
    }

    #[test]
    fn log_init_errors_exit_with_status_1_on_stderr_only() {
        let error = LogInitError::OpenFile {
            path: "/nope/x.log".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let failure = Exit::from(error);
        assert_eq!(failure.code(), 1);
        assert!(
            output(&failure)
                .1
                .contains(" [Error] Unable to open log file: open /nope/x.log: permission denied")
        );
    }

    const MEMINFO: &str =
        "MemTotal:       16318472 kB\nMemFree:         1218344 kB\nMemAvailable:    9710932 kB\n";

    #[test]
    fn host_memory_from_meminfo_and_cgroup_limits() {
        let host = HostMemory::parse(MEMINFO, None).unwrap();
        assert_eq!(host.total_bytes, 16_318_472 * 1024);
        assert_eq!(host.usable_bytes(), 16_318_472 * 1024);
        // cgroup v2 without a limit.
        assert_eq!(
            HostMemory::parse(MEMINFO, Some("max\n"))
                .unwrap()
                .cgroup_limit_bytes,
            None
        );
        // A 512 MiB container limit.
        let limited = HostMemory::parse(MEMINFO, Some("536870912\n")).unwrap();
        assert_eq!(limited.usable_bytes(), 536_870_912);
        // cgroup v1's "no limit" is a huge number, above the host's memory.
        let v1_unlimited = HostMemory::parse(MEMINFO, Some("9223372036854771712\n")).unwrap();
        assert_eq!(v1_unlimited.usable_bytes(), 16_318_472 * 1024);
        assert_eq!(
            HostMemory::parse("MemFree: 1 kB\n", None),
            Err(BufferMemoryError::HostMemoryUnknown(
                "Unable to find MemTotal in /proc/meminfo".into()
            ))
        );
        assert!(HostMemory::parse("MemTotal: lots kB\n", None).is_err());
    }

    #[test]
    fn buffer_memory_is_one_percent_of_usable_memory_unless_given() {
        let host = |total_bytes: u64, cgroup_limit_bytes: Option<u64>| {
            move || {
                Ok(HostMemory {
                    total_bytes,
                    cgroup_limit_bytes,
                })
            }
        };
        let gib = 1024 * 1024 * 1024;
        assert_eq!(evaluate_buffer_memory(0, host(16 * gib, None)), Ok(163));
        assert_eq!(evaluate_buffer_memory(0, host(16 * gib, Some(gib))), Ok(10));
        assert_eq!(
            evaluate_buffer_memory(0, host(16 * gib, Some(64 * gib))),
            Ok(163)
        );
        // 300 MiB is exactly 3 MB of buffers; a byte less rounds down below the minimum.
        assert_eq!(
            evaluate_buffer_memory(0, host(300 * 1024 * 1024, None)),
            Ok(3)
        );
        assert_eq!(
            evaluate_buffer_memory(0, host(300 * 1024 * 1024 - 1, None)),
            Err(BufferMemoryError::TooSmall)
        );
        // A size asked for is used as is, within what the host has (when that is known).
        assert_eq!(evaluate_buffer_memory(20, host(16 * gib, None)), Ok(20));
        let unknown = || Err(BufferMemoryError::HostMemoryUnknown("no /proc".into()));
        assert_eq!(evaluate_buffer_memory(20, unknown), Ok(20));
        assert_eq!(
            evaluate_buffer_memory(2, host(16 * gib, None)),
            Err(BufferMemoryError::TooSmall)
        );
        assert_eq!(
            BufferMemoryError::TooSmall.to_string(),
            "Not enough Buffers Memory Allocated. Min Buffers Memory required: 3 MB."
        );
        let failing = || Err(BufferMemoryError::HostMemoryUnknown("no /proc".into()));
        assert_eq!(
            evaluate_buffer_memory(0, failing),
            Err(BufferMemoryError::HostMemoryUnknown("no /proc".into()))
        );
    }

    #[test]
    fn buffer_memory_beyond_the_pool_or_the_host_is_refused_naming_the_flag() {
        let host = |total_bytes: u64| {
            move || {
                Ok(HostMemory {
                    total_bytes,
                    cgroup_limit_bytes: None,
                })
            }
        };
        let tib = 1024 * 1024 * 1024 * 1024;
        assert_eq!(
            evaluate_buffer_memory(MAX_BUFFER_MEMORY_MB, host(tib)),
            Ok(MAX_BUFFER_MEMORY_MB)
        );
        // Refused before the host is even looked at.
        let unused = || -> Result<HostMemory, BufferMemoryError> { panic!("host memory read") };
        for requested in [MAX_BUFFER_MEMORY_MB + 1, 5000, 100_000_000, u64::MAX] {
            let error = evaluate_buffer_memory(requested, unused).unwrap_err();
            assert_eq!(error, BufferMemoryError::TooLarge(requested));
            let text = error.to_string();
            assert!(
                text.contains("-m") && text.contains("TotalBufferSizeMB"),
                "{text}"
            );
            assert!(text.contains(&format!("{requested} MB")), "{text}");
        }
        let error = evaluate_buffer_memory(2048, host(1024 * 1024 * 1024)).unwrap_err();
        assert_eq!(error, BufferMemoryError::MoreThanHost(2048, 1024));
        assert!(error.to_string().contains("-m"), "{error}");
        assert!(error.to_string().contains("1024 MB of memory"), "{error}");
    }

    #[test]
    fn this_host_has_memory() {
        let host = HostMemory::read().unwrap();
        assert!(host.total_bytes > 0);
        assert!(host.usable_bytes() <= host.total_bytes);
    }
}
