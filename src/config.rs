//! cfg.yaml: loading, defaults and the original daemon's strict key validation.
//!
//! The file is read as the original's YAML library reads it ([`yaml`], and `decode`). Loading
//! follows the original's `merge`: keys it does not know are ignored, and values that are zero or
//! empty fall back to the defaults. Validation ([`validate_file`], used for `-c` only) rejects
//! unknown, retired and pre-migration keys with the original's exact messages.

mod decode;
pub mod number;
pub mod yaml;

use decode::{Kind, Section};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use yaml::{Document, Node, Value, Walker, go_sprint, resolve};

/// Where the config is looked for, in order, when `-c` is not given.
pub const DEFAULT_LOCATIONS: [&str; 2] = ["/etc/amazon/xray/cfg.yaml", "cfg.yaml"];

/// The `Version` values the original accepts.
pub const SUPPORTED_VERSIONS: [i64; 2] = [1, 2];

/// Default for `Spool.MaxMB` (our extension).
pub const DEFAULT_SPOOL_MAX_MB: u64 = 100;

/// Default for `Health.FailAfterSeconds` (our extension).
pub const DEFAULT_HEALTH_FAIL_AFTER_SECONDS: u64 = 60;

/// Default for `Concurrency`.
pub const DEFAULT_CONCURRENCY: i64 = 8;

/// Keys a validated file may hold, spelled as the original derives them: by yaml-marshalling its
/// default config, which lowercases the untagged `ProxyServer` struct. Our extensions come last.
const VALID_KEYS: [&str; 29] = [
    "TotalBufferSizeMB",
    "Concurrency",
    "Endpoint",
    "Region",
    "Socket.UDPAddress",
    "Socket.TCPAddress",
    "proxyserver.idleconntimeout",
    "proxyserver.maxidleconnsperhost",
    "proxyserver.maxidleconns",
    "Logging.LogRotation",
    "Logging.LogLevel",
    "Logging.LogPath",
    "LocalMode",
    "ResourceARN",
    "RoleARN",
    "NoVerifySSL",
    "ProxyAddress",
    "Version",
    "LocalSink",
    "Spool.Directory",
    "Spool.MaxMB",
    "Health.FailAfterSeconds",
    "Proxy.SamplingOnly",
    "OTLP.HTTPAddress",
    "OTLP.Endpoint",
    "OTLP.Destination",
    "OTLP.Compression",
    "OTLP.IndexedAttributes",
    "OTLP.IndexAllAttributes",
];

/// Keys of older daemons that no longer have any effect.
const RETIRED_KEYS: [&str; 5] = [
    "Profile.CPU",
    "Profile.Memory",
    "Socket.BufferSizeKB",
    "Logging.LogFormat",
    "Processor.BatchProcessorQueueSize",
];

/// Keys of version-0 files that the migration script rewrites.
const PRE_MIGRATION_KEYS: [&str; 5] = [
    "LogRotation",
    "Processor.Region",
    "Processor.Endpoint",
    "Processor.Routine",
    "MemoryLimit",
];

/// The configuration after defaults have been filled in (the original's `merge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TotalBufferSizeMB`: buffer memory in MB; 0 means 1 % of host memory.
    pub total_buffer_size_mb: i64,
    /// `Concurrency`: parallel uploads to X-Ray (default 8).
    pub concurrency: i64,
    /// `Endpoint`: X-Ray endpoint override; empty for the regional default.
    pub endpoint: String,
    /// `Region`: region to send segments to; empty to discover it.
    pub region: String,
    /// `Socket.UDPAddress`: where segments arrive (default `127.0.0.1:2000`).
    pub udp_address: String,
    /// `Socket.TCPAddress`: where the X-Ray API proxy listens (default `127.0.0.1:2000`).
    pub tcp_address: String,
    /// `Logging.LogRotation`: roll the log file at 50 MB (default true).
    pub log_rotation: bool,
    /// `Logging.LogLevel`: dev, debug, info, warn, error or prod (default prod).
    pub log_level: String,
    /// `Logging.LogPath`: log file; empty for stdout.
    pub log_path: String,
    /// `LocalMode`: skip the EC2 instance metadata lookups.
    pub local_mode: bool,
    /// `ResourceARN`: ARN of the AWS resource running the daemon.
    pub resource_arn: String,
    /// `RoleARN`: IAM role to assume for uploads.
    pub role_arn: String,
    /// `NoVerifySSL`: skip TLS certificate verification.
    pub no_verify_ssl: bool,
    /// `ProxyAddress`: HTTP proxy for uploads.
    pub proxy_address: String,
    /// `Version`: file format version, 1 or 2 (1 in the defaults, as in the original).
    pub version: i64,
    /// `LocalSink` (ours): file, or `-` for stdout, to write segments to instead of AWS.
    pub local_sink: String,
    /// `Spool.Directory` (ours): where unsent segments are kept.
    pub spool_directory: String,
    /// `Spool.MaxMB` (ours): most MB the spool may hold (default 100).
    pub spool_max_mb: u64,
    /// `Health.FailAfterSeconds` (ours): `/healthz` says 503 once uploads have failed this
    /// long without a success (default 60).
    pub health_fail_after_seconds: u64,
    /// `Proxy.SamplingOnly` (ours): the TCP proxy forwards the sampling APIs only
    /// (default false, as the original forwards every X-Ray API).
    pub proxy_sampling_only: bool,
    /// `OTLP.*` (ours): the OpenTelemetry receiver.
    pub otlp: OtlpConfig,
}

/// The `OTLP` section (ours); every key empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpConfig {
    /// `OTLP.HTTPAddress`: where OTLP/HTTP is received (off when empty).
    pub http_address: String,
    /// `OTLP.Endpoint`: where spans go; empty for `/v1/traces` under the X-Ray endpoint.
    pub endpoint: String,
    /// `OTLP.Destination`: `auto` (empty: the default), `otlp` or `segments`; setting it also
    /// turns on `POST /v1/traces` on the proxy port.
    pub destination: String,
    /// `OTLP.Compression`: `gzip` (the default) or `none` for requests to X-Ray.
    pub compression: String,
    /// `OTLP.IndexedAttributes`: span attributes written as annotations (destination
    /// `segments`).
    pub indexed_attributes: Vec<String>,
    /// `OTLP.IndexAllAttributes`: every scalar span attribute as an annotation.
    pub index_all_attributes: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            total_buffer_size_mb: 0,
            concurrency: DEFAULT_CONCURRENCY,
            endpoint: String::new(),
            region: String::new(),
            udp_address: "127.0.0.1:2000".to_string(),
            tcp_address: "127.0.0.1:2000".to_string(),
            log_rotation: true,
            log_level: "prod".to_string(),
            log_path: String::new(),
            local_mode: false,
            resource_arn: String::new(),
            role_arn: String::new(),
            no_verify_ssl: false,
            proxy_address: String::new(),
            version: 1,
            local_sink: String::new(),
            spool_directory: String::new(),
            spool_max_mb: DEFAULT_SPOOL_MAX_MB,
            health_fail_after_seconds: DEFAULT_HEALTH_FAIL_AFTER_SECONDS,
            proxy_sampling_only: false,
            otlp: OtlpConfig::default(),
        }
    }
}

/// Why a config file was refused. [`fmt::Display`] gives the message the original logs.
#[derive(Debug)]
pub enum ConfigError {
    /// A validated file has keys but no `Version`.
    VersionMissing,
    /// `Version` is not 1 or 2.
    VersionNotCorrect,
    /// A validated file has a key the daemon does not know.
    InvalidKey(String),
    /// A validated file has a key older daemons knew but which no longer does anything.
    RetiredKey(String),
    /// A validated file has a key of the pre-migration format.
    PreMigrationKey(String),
    /// The file could not be opened or read.
    Unreadable {
        /// `open` or `read`, as Go's error says.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The YAML library refused the file: go-yaml's message (`yaml: line 3: …`,
    /// `yaml: unmarshal errors: …`).
    Yaml(String),
    /// One of our own count keys (`Spool.MaxMB`, `Health.FailAfterSeconds`) is negative.
    Negative {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: &'static str,
        /// The value found.
        value: i64,
    },
}

const SEE_DOCUMENTATION: &str = "Please refer to AWS X-Ray Documentation for more information.";
const USE_MIGRATION_SCRIPT: &str =
    "Use X-Ray Daemon Config Migration Script to update the config file.";

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::VersionMissing => write!(
                f,
                "Config Version is missing. {USE_MIGRATION_SCRIPT} {SEE_DOCUMENTATION}"
            ),
            ConfigError::VersionNotCorrect => write!(
                f,
                "Config Version Setting is not correct. {USE_MIGRATION_SCRIPT} {SEE_DOCUMENTATION}"
            ),
            ConfigError::InvalidKey(key) => {
                write!(f, "{key} flag is invalid. {SEE_DOCUMENTATION}")
            }
            ConfigError::RetiredKey(key) => {
                write!(
                    f,
                    "{key} flag is not supported any more. {SEE_DOCUMENTATION}"
                )
            }
            ConfigError::PreMigrationKey(key) => write!(
                f,
                "{key} flag is not supported. {USE_MIGRATION_SCRIPT} {SEE_DOCUMENTATION}"
            ),
            ConfigError::Unreadable {
                operation,
                path,
                source,
            } => write!(
                f,
                "Error occur when using config flag: {operation} {}: {}",
                path.display(),
                go_error_text(source)
            ),
            ConfigError::Yaml(detail) => {
                write!(f, "Error occur when using config flag: {detail}")
            }
            ConfigError::Negative { path, key, value } => write!(
                f,
                "Error occur when using config flag: {}: {key}: expected a non-negative integer, found {value}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Unreadable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An I/O error in Go's words: `no such file or directory`, `is a directory`, … (the C
/// library's text with a lower-case first letter, without Rust's `(os error N)`).
pub fn go_error_text(error: &io::Error) -> String {
    let Some(code) = error.raw_os_error() else {
        return error.to_string();
    };
    let text = io::Error::from_raw_os_error(code).to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Loads the first of `locations` that exists, or returns the defaults (and no path) when none
/// does. A file that exists but cannot be read or loaded is an error, as in the original.
pub fn load_first_existing(locations: &[&Path]) -> Result<(Config, Option<PathBuf>), ConfigError> {
    for &location in locations {
        match std::fs::metadata(location) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            _ => return Ok((load_file(location)?, Some(location.to_path_buf()))),
        }
    }
    Ok((Config::default(), None))
}

/// Reads and loads one file: YAML and type errors, unsupported `Version`, defaults filled in.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load_text(&read(path)?, path)
}

/// Checks the keys of one file the way the original checks a `-c` file.
pub fn validate_file(path: &Path) -> Result<(), ConfigError> {
    validate_text(&read(path)?, path)
}

static SOCKET: Section = Section {
    go_type: r#"struct { UDPAddress string "yaml:\"UDPAddress\""; TCPAddress string "yaml:\"TCPAddress\"" }"#,
    fields: &[("UDPAddress", Kind::Text), ("TCPAddress", Kind::Text)],
};

static PROXY_SERVER: Section = Section {
    go_type: "struct { IdleConnTimeout int; MaxIdleConnsPerHost int; MaxIdleConns int }",
    fields: &[
        ("idleconntimeout", Kind::Int),
        ("maxidleconnsperhost", Kind::Int),
        ("maxidleconns", Kind::Int),
    ],
};

static LOGGING: Section = Section {
    go_type: r#"struct { LogRotation *bool "yaml:\"LogRotation\""; LogLevel string "yaml:\"LogLevel\""; LogPath string "yaml:\"LogPath\"" }"#,
    fields: &[
        ("LogRotation", Kind::Flag),
        ("LogLevel", Kind::Text),
        ("LogPath", Kind::Text),
    ],
};

static SPOOL: Section = Section {
    go_type: "struct { Directory string; MaxMB int }",
    fields: &[("Directory", Kind::Text), ("MaxMB", Kind::Int)],
};

static HEALTH: Section = Section {
    go_type: "struct { FailAfterSeconds int }",
    fields: &[("FailAfterSeconds", Kind::Int)],
};

static PROXY: Section = Section {
    go_type: "struct { SamplingOnly *bool }",
    fields: &[("SamplingOnly", Kind::Flag)],
};

static OTLP: Section = Section {
    go_type: "struct { HTTPAddress string; Endpoint string; Destination string; Compression string; IndexedAttributes []string; IndexAllAttributes *bool }",
    fields: &[
        ("HTTPAddress", Kind::Text),
        ("Endpoint", Kind::Text),
        ("Destination", Kind::Text),
        ("Compression", Kind::Text),
        ("IndexedAttributes", Kind::Texts),
        ("IndexAllAttributes", Kind::Flag),
    ],
};

/// The original's `Config` struct as go-yaml sees it, then our extensions.
static CONFIG: Section = Section {
    go_type: "cfg.Config",
    fields: &[
        ("TotalBufferSizeMB", Kind::Int),
        ("Concurrency", Kind::Int),
        ("Endpoint", Kind::Text),
        ("Region", Kind::Text),
        ("Socket", Kind::Section(&SOCKET)),
        ("proxyserver", Kind::Section(&PROXY_SERVER)),
        ("Logging", Kind::Section(&LOGGING)),
        ("LocalMode", Kind::Flag),
        ("ResourceARN", Kind::Text),
        ("RoleARN", Kind::Text),
        ("NoVerifySSL", Kind::Flag),
        ("ProxyAddress", Kind::Text),
        ("Version", Kind::Int),
        ("LocalSink", Kind::Text),
        ("Spool", Kind::Section(&SPOOL)),
        ("Health", Kind::Section(&HEALTH)),
        ("Proxy", Kind::Section(&PROXY)),
        ("OTLP", Kind::Section(&OTLP)),
    ],
};

/// Loads config text; `path` only names the file in our own messages.
pub fn load_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let document = Document::parse(text).map_err(ConfigError::Yaml)?;
    let decoded = decode::decode(&document, &CONFIG).map_err(ConfigError::Yaml)?;
    // Checked after the types, as the original unmarshals before it looks at the version.
    let version = decoded.int("Version");
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(ConfigError::VersionNotCorrect);
    }
    let defaults = Config::default();
    let or_default = |value: String, default: String| match value.is_empty() {
        true => default,
        false => value,
    };
    let number_or_default = |value: i64, default: i64| match value {
        0 => default,
        value => value,
    };
    let count = |key: &'static str, default: u64| match decoded.int(key) {
        0 => Ok(default),
        value => u64::try_from(value).map_err(|_| ConfigError::Negative {
            path: path.to_path_buf(),
            key,
            value,
        }),
    };
    Ok(Config {
        total_buffer_size_mb: number_or_default(
            decoded.int("TotalBufferSizeMB"),
            defaults.total_buffer_size_mb,
        ),
        concurrency: number_or_default(decoded.int("Concurrency"), defaults.concurrency),
        endpoint: or_default(decoded.text("Endpoint"), defaults.endpoint),
        region: or_default(decoded.text("Region"), defaults.region),
        udp_address: or_default(decoded.text("Socket.UDPAddress"), defaults.udp_address),
        tcp_address: or_default(decoded.text("Socket.TCPAddress"), defaults.tcp_address),
        log_rotation: decoded
            .flag("Logging.LogRotation")
            .unwrap_or(defaults.log_rotation),
        log_level: or_default(decoded.text("Logging.LogLevel"), defaults.log_level),
        log_path: or_default(decoded.text("Logging.LogPath"), defaults.log_path),
        local_mode: decoded.flag("LocalMode").unwrap_or(defaults.local_mode),
        resource_arn: or_default(decoded.text("ResourceARN"), defaults.resource_arn),
        role_arn: or_default(decoded.text("RoleARN"), defaults.role_arn),
        no_verify_ssl: decoded
            .flag("NoVerifySSL")
            .unwrap_or(defaults.no_verify_ssl),
        proxy_address: or_default(decoded.text("ProxyAddress"), defaults.proxy_address),
        version,
        local_sink: or_default(decoded.text("LocalSink"), defaults.local_sink),
        spool_directory: or_default(decoded.text("Spool.Directory"), defaults.spool_directory),
        spool_max_mb: count("Spool.MaxMB", defaults.spool_max_mb)?,
        health_fail_after_seconds: count(
            "Health.FailAfterSeconds",
            defaults.health_fail_after_seconds,
        )?,
        proxy_sampling_only: decoded
            .flag("Proxy.SamplingOnly")
            .unwrap_or(defaults.proxy_sampling_only),
        otlp: OtlpConfig {
            http_address: decoded.text("OTLP.HTTPAddress"),
            endpoint: decoded.text("OTLP.Endpoint"),
            destination: decoded.text("OTLP.Destination"),
            compression: decoded.text("OTLP.Compression"),
            indexed_attributes: decoded.texts("OTLP.IndexedAttributes"),
            index_all_attributes: decoded.flag("OTLP.IndexAllAttributes").unwrap_or(false),
        },
    })
}

/// Validates config text; `path` is not needed, as the original's messages do not name the file.
pub fn validate_text(text: &str, _path: &Path) -> Result<(), ConfigError> {
    let document = Document::parse(text).map_err(ConfigError::Yaml)?;
    let keys = listed_keys(&document).map_err(ConfigError::Yaml)?;
    // An empty file passes here; loading it then fails on the missing version.
    if !keys.is_empty() && !keys.iter().any(|key| key == "Version") {
        return Err(ConfigError::VersionMissing);
    }
    match keys
        .into_iter()
        .find(|key| !VALID_KEYS.contains(&key.as_str()))
    {
        None => Ok(()),
        Some(key) if RETIRED_KEYS.contains(&key.as_str()) => Err(ConfigError::RetiredKey(key)),
        Some(key) if PRE_MIGRATION_KEYS.contains(&key.as_str()) => {
            Err(ConfigError::PreMigrationKey(key))
        }
        Some(key) => Err(ConfigError::InvalidKey(key)),
    }
}

/// Reads a file as Go's `ioutil.ReadFile` does, with its error wording, and decodes the bytes
/// as libyaml does (byte-order marks, UTF-16).
fn read(path: &Path) -> Result<String, ConfigError> {
    let unreadable = |operation| {
        move |source| ConfigError::Unreadable {
            operation,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(unreadable("open"))?
        .read_to_end(&mut bytes)
        .map_err(unreadable("read"))?;
    yaml::decode_bytes(&bytes).map_err(ConfigError::Yaml)
}

/// The keys as the original lists them for validation, from the file decoded into a
/// `yaml.MapSlice`: `Key` for plain values, `Key.Sub` for each key of a mapping (one level only),
/// in file order, printed as Go's `fmt.Sprint` prints them.
fn listed_keys(document: &Document) -> Result<Vec<String>, String> {
    let Some(root) = document.root() else {
        return Ok(Vec::new());
    };
    let mut walker = Walker::new(document);
    let entries = match walker.value(root)? {
        Value::Nil => Vec::new(),
        Value::Map(entries) => entries,
        Value::List(_) => top_level_list(&mut walker, root)?,
        Value::Scalar(..) => {
            let target = walker.enter(root)?;
            return Err(scalar_type_error(document, target, "yaml.MapSlice"));
        }
    };
    let mut keys = Vec::new();
    for (key, value) in &entries {
        match value {
            Value::Map(section) => {
                for (sub_key, _) in section {
                    keys.push(format!("{}.{}", go_sprint(key), go_sprint(sub_key)));
                }
            }
            _ => keys.push(go_sprint(key)),
        }
    }
    Ok(keys)
}

/// go-yaml decodes a top-level list into a `MapSlice` item by item, each a `MapItem` struct
/// with `key` and `value` fields; anything else is a type error.
fn top_level_list(walker: &mut Walker, root: usize) -> Result<Vec<(Value, Value)>, String> {
    let document = walker.document;
    let target = walker.enter(root)?;
    let Node::Sequence(items) = document.node(target) else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for &item in items {
        let item = walker.enter(item)?;
        match (document.node(item), walker.value(item)?) {
            (_, Value::Map(fields)) => {
                let field = |name: &str| {
                    fields
                        .iter()
                        .rev()
                        .find(|(key, _)| go_sprint(key) == name)
                        .map_or(Value::Nil, |(_, value)| value.clone())
                };
                entries.push((field("key"), field("value")));
            }
            (_, Value::Nil) => entries.push((Value::Nil, Value::Nil)),
            (Node::Sequence(_), _) => errors.push(format!(
                "line {}: cannot unmarshal !!seq into yaml.MapItem",
                document.line(item)
            )),
            _ => errors.push(
                scalar_type_error(document, item, "yaml.MapItem")
                    .trim_start_matches("yaml: unmarshal errors:\n  ")
                    .to_string(),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "yaml: unmarshal errors:\n  {}",
            errors.join("\n  ")
        ));
    }
    Ok(entries)
}

fn scalar_type_error(document: &Document, id: usize, go_type: &str) -> String {
    let (tag, text) = match document.node(id) {
        Node::Scalar {
            text,
            implicit,
            tag,
        } => match resolve(text, *implicit, tag.as_deref()) {
            Ok((tag, _)) => (tag, text.clone()),
            Err(error) => return error,
        },
        _ => ("!!map".to_string(), String::new()),
    };
    let shown = if text.len() > 10 {
        format!("{}...", String::from_utf8_lossy(&text.as_bytes()[..7]))
    } else {
        text
    };
    format!(
        "yaml: unmarshal errors:\n  line {}: cannot unmarshal {tag} `{shown}` into {go_type}",
        document.line(id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    /// The original's shipped pkg/cfg.yaml.
    const SHIPPED_CFG_YAML: &str = r#"# Maximum buffer size in MB (minimum 3). Choose 0 to use 1% of host memory.
TotalBufferSizeMB: 0
# Maximum number of concurrent calls to AWS X-Ray to upload segment documents.
Concurrency: 8
# Send segments to AWS X-Ray service in a specific region
Region: ""
# Change the X-Ray service endpoint to which the daemon sends segment documents.
Endpoint: ""
Socket:
  # Change the address and port on which the daemon listens for UDP packets containing segment documents.
  UDPAddress: "127.0.0.1:2000"
  # Change the address and port on which the daemon listens for HTTP requests to proxy to AWS X-Ray.
  TCPAddress: "127.0.0.1:2000"
Logging:
  LogRotation: true
  # Change the log level, from most verbose to least: dev, debug, info, warn, error, prod (default).
  LogLevel: "prod"
  # Output logs to the specified file path.
  LogPath: ""
# Turn on local mode to skip EC2 instance metadata check.
LocalMode: false
# Amazon Resource Name (ARN) of the AWS resource running the daemon.
ResourceARN: ""
# Assume an IAM role to upload segments to a different account.
RoleARN: ""
# Disable TLS certificate verification.
NoVerifySSL: false
# Upload segments to AWS X-Ray through a proxy.
ProxyAddress: ""
# Daemon configuration file format version.
Version: 2"#;

    fn path() -> &'static Path {
        Path::new("test.yaml")
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        load_text(text, path())
    }

    fn validation_message(text: &str) -> String {
        match validate_text(text, path()) {
            Err(error) => error.to_string(),
            Ok(()) => panic!("{text:?} passed validation"),
        }
    }

    #[test]
    fn the_shipped_file_validates_and_loads_as_the_defaults() {
        validate_text(SHIPPED_CFG_YAML, path()).unwrap();
        let config = load(SHIPPED_CFG_YAML).unwrap();
        assert_eq!(
            config,
            Config {
                version: 2,
                ..Config::default()
            }
        );
    }

    #[test]
    fn version_2_file_with_every_value() {
        let config = load(
            r#"Socket:
  UDPAddress: "127.0.0.1:2000"
  TCPAddress : "127.0.0.2:3000"
TotalBufferSizeMB: 16
Region: "us-east-1"
Endpoint: "https://xxxx.xxxx.com"
ResourceARN: "arn:aws:ec2:us-east-1:1:instance/i-1"
RoleARN: "arn:aws:iam::1:role/x"
Concurrency: 12
Logging:
  LogRotation: false
  LogPath: "/var/log/xray.log"
  LogLevel: "debug"
NoVerifySSL: true
LocalMode: true
ProxyAddress: "http://proxy:3128"
LocalSink: "-"
Spool:
  Directory: /var/spool/xray
  MaxMB: 7
Health:
  FailAfterSeconds: 30
Proxy:
  SamplingOnly: true
Version: 2"#,
        )
        .unwrap();
        assert_eq!(
            config,
            Config {
                total_buffer_size_mb: 16,
                concurrency: 12,
                endpoint: "https://xxxx.xxxx.com".into(),
                region: "us-east-1".into(),
                udp_address: "127.0.0.1:2000".into(),
                tcp_address: "127.0.0.2:3000".into(),
                log_rotation: false,
                log_level: "debug".into(),
                log_path: "/var/log/xray.log".into(),
                local_mode: true,
                resource_arn: "arn:aws:ec2:us-east-1:1:instance/i-1".into(),
                role_arn: "arn:aws:iam::1:role/x".into(),
                no_verify_ssl: true,
                proxy_address: "http://proxy:3128".into(),
                version: 2,
                local_sink: "-".into(),
                spool_directory: "/var/spool/xray".into(),
                spool_max_mb: 7,
                health_fail_after_seconds: 30,
                proxy_sampling_only: true,
                otlp: OtlpConfig::default(),
            }
        );
    }

    #[test]
    fn version_1_file_gets_the_default_tcp_address() {
        let config = load(
            "Socket:\n  UDPAddress: \"127.0.0.1:2000\"\nTotalBufferSizeMB: 16\nRegion: \"us-east-1\"\nVersion: 1",
        )
        .unwrap();
        assert_eq!(config.version, 1);
        assert_eq!(config.tcp_address, "127.0.0.1:2000");
        assert_eq!(config.total_buffer_size_mb, 16);
        assert_eq!(config.region, "us-east-1");
    }

    #[test]
    fn zero_and_empty_values_fall_back_to_defaults() {
        let config = load(
            "Socket:\n  UDPAddress: \"127.0.0.1:3000\"\n  TCPAddress: \"\"\nConcurrency: 0\nLogging:\n  LogRotation: false\n  LogLevel:\nSpool:\n  MaxMB: 0\nVersion: 2",
        )
        .unwrap();
        assert_eq!(config.udp_address, "127.0.0.1:3000");
        assert_eq!(config.tcp_address, "127.0.0.1:2000");
        assert_eq!(config.concurrency, 8);
        assert!(!config.log_rotation);
        assert_eq!(config.log_level, "prod");
        assert_eq!(config.spool_max_mb, DEFAULT_SPOOL_MAX_MB);
        assert!(!config.local_mode);
    }

    #[test]
    fn loading_ignores_unknown_keys() {
        let config = load("Whatever: 1\nProcessor:\n  Region: x\nVersion: 2").unwrap();
        assert_eq!(
            config,
            Config {
                version: 2,
                ..Config::default()
            }
        );
    }

    #[test]
    fn unsupported_or_missing_version_is_refused_when_loading() {
        let expected = "Config Version Setting is not correct. Use X-Ray Daemon Config Migration Script to update the config file. Please refer to AWS X-Ray Documentation for more information.";
        for text in ["Version: 10000", "Region: x", "", "Version: 0"] {
            assert_eq!(load(text).unwrap_err().to_string(), expected, "{text:?}");
        }
    }

    #[test]
    fn missing_version_is_reported_first() {
        assert_eq!(
            validation_message(
                "Socket:\n  UDPAddress: \"127.0.0.1:3000\"\nABCDE: 1\nConcurrency: 8"
            ),
            "Config Version is missing. Use X-Ray Daemon Config Migration Script to update the config file. Please refer to AWS X-Ray Documentation for more information."
        );
        validate_text("", path()).unwrap();
    }

    #[test]
    fn unknown_keys_are_invalid() {
        assert_eq!(
            validation_message("ABCDE: true\nVersion: 2"),
            "ABCDE flag is invalid. Please refer to AWS X-Ray Documentation for more information."
        );
        assert_eq!(
            validation_message("Socket:\n  Port: 1\nVersion: 2"),
            "Socket.Port flag is invalid. Please refer to AWS X-Ray Documentation for more information."
        );
        // A section without keys is listed by its own name, which is not a valid key.
        assert_eq!(
            validation_message("Socket:\nVersion: 2"),
            "Socket flag is invalid. Please refer to AWS X-Ray Documentation for more information."
        );
        assert_eq!(
            validation_message("region: x\nVersion: 2"),
            "region flag is invalid. Please refer to AWS X-Ray Documentation for more information."
        );
    }

    #[test]
    fn proxy_server_keys_are_valid_only_in_lowercase_like_the_original() {
        validate_text(
            "proxyserver:\n  idleconntimeout: 5\n  maxidleconnsperhost: 1\n  maxidleconns: 1\nVersion: 2",
            path(),
        )
        .unwrap();
        assert_eq!(
            validation_message("ProxyServer:\n  IdleConnTimeout: 5\nVersion: 2"),
            "ProxyServer.IdleConnTimeout flag is invalid. Please refer to AWS X-Ray Documentation for more information."
        );
    }

    #[test]
    fn our_extension_keys_are_valid() {
        validate_text(
            "LocalSink: out.jsonl\nSpool:\n  Directory: /tmp/s\n  MaxMB: 5\nHealth:\n  FailAfterSeconds: 5\nVersion: 2",
            path(),
        )
        .unwrap();
        let otlp = "OTLP:\n  HTTPAddress: \"[::1]:4318\"\n  Endpoint: http://x/v1/traces\n  Destination: otlp\n  Compression: none\nVersion: 2";
        validate_text(otlp, path()).unwrap();
        assert_eq!(
            load(otlp).unwrap().otlp,
            OtlpConfig {
                http_address: "[::1]:4318".into(),
                endpoint: "http://x/v1/traces".into(),
                destination: "otlp".into(),
                compression: "none".into(),
                ..OtlpConfig::default()
            }
        );
        let segments = "OTLP:\n  Destination: segments\n  IndexedAttributes: [user.id, 7]\n  IndexAllAttributes: yes\nVersion: 2";
        validate_text(segments, path()).unwrap();
        let otlp = load(segments).unwrap().otlp;
        assert_eq!(otlp.indexed_attributes, ["user.id", "7"]);
        assert!(otlp.index_all_attributes);
        let one = load("OTLP:\n  IndexedAttributes: user.id\nVersion: 2").unwrap();
        assert_eq!(one.otlp.indexed_attributes, ["user.id"]);
        assert!(load("OTLP:\n  IndexedAttributes: [[a]]\nVersion: 2").is_err());
    }

    #[test]
    fn retired_keys_are_not_supported_any_more() {
        for key in RETIRED_KEYS {
            let (section, sub_key) = key.split_once('.').unwrap();
            assert_eq!(
                validation_message(&format!("{section}:\n  {sub_key}: 1\nVersion: 2")),
                format!(
                    "{key} flag is not supported any more. Please refer to AWS X-Ray Documentation for more information."
                )
            );
        }
    }

    #[test]
    fn pre_migration_keys_need_the_migration_script() {
        assert_eq!(
            validation_message("Processor:\n  Region: \"\"\nVersion: 2"),
            "Processor.Region flag is not supported. Use X-Ray Daemon Config Migration Script to update the config file. Please refer to AWS X-Ray Documentation for more information."
        );
        assert_eq!(
            validation_message(
                "Socket:\n  UDPAddress: \"127.0.0.1:3000\"\nMemoryLimit: 8\nVersion: 2"
            ),
            "MemoryLimit flag is not supported. Use X-Ray Daemon Config Migration Script to update the config file. Please refer to AWS X-Ray Documentation for more information."
        );
        assert_eq!(
            validation_message("LogRotation: true\nVersion: 2"),
            "LogRotation flag is not supported. Use X-Ray Daemon Config Migration Script to update the config file. Please refer to AWS X-Ray Documentation for more information."
        );
    }

    #[test]
    fn keys_are_listed_one_level_deep_in_file_order() {
        let document = Document::parse(
            "Socket:\n  UDPAddress: a\nMemoryLimit: 8\nRegion: r\nLogging:\n  LogLevel: x\n  LogPath: y\n1: one\nVersion: 2",
        )
        .unwrap();
        assert_eq!(
            listed_keys(&document).unwrap(),
            [
                "Socket.UDPAddress",
                "MemoryLimit",
                "Region",
                "Logging.LogLevel",
                "Logging.LogPath",
                "1",
                "Version"
            ]
        );
    }

    /// The original's messages (go-yaml v2 `Unmarshal` into its `Config` struct).
    #[test]
    fn type_errors_are_go_yamls() {
        let message = |text: &str| load(text).unwrap_err().to_string();
        assert_eq!(
            message("TotalBufferSizeMB: NotExist\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `NotExist` into int"
        );
        assert_eq!(
            message("Socket: 5\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!int `5` into struct { UDPAddress string \"yaml:\\\"UDPAddress\\\"\"; TCPAddress string \"yaml:\\\"TCPAddress\\\"\" }"
        );
        assert_eq!(
            message("LocalMode: maybe\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `maybe` into bool"
        );
        assert_eq!(
            message("Region: [a, b]\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into string"
        );
        // Every mismatch is listed; long values are shortened as go-yaml does.
        assert_eq!(
            message("Concurrency: \"8\"\nVersion: 2\nLogging:\n  LogRotation: 'a long string'"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `8` into int\n  line 4: cannot unmarshal !!str `a long ...` into bool"
        );
        assert_eq!(
            message("- a\n- b"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into cfg.Config"
        );
        assert_eq!(
            message("hello"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `hello` into cfg.Config"
        );
        assert_eq!(
            message("proxyserver:\n  idleconntimeout: soon\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 2: cannot unmarshal !!str `soon` into int"
        );
        assert_eq!(
            message("Concurrency: !!int 2.5\nVersion: 2"),
            "Error occur when using config flag: yaml: cannot decode !!float `2.5` as a !!int"
        );
        // Our own count keys refuse negatives in our words.
        assert_eq!(
            message("Spool:\n  MaxMB: -1\nVersion: 2"),
            "Error occur when using config flag: test.yaml: Spool.MaxMB: expected a non-negative integer, found -1"
        );
        // The version is looked at after the types.
        assert!(matches!(
            load("Concurrency: many\nVersion: 7"),
            Err(ConfigError::Yaml(_))
        ));
    }

    #[test]
    fn scalars_are_accepted_as_text_as_written_and_yaml_1_1_booleans_as_booleans() {
        let config = load(
            "Region: 0x10\nResourceARN: true\nRoleARN: 1.50\nLocalMode: yes\nNoVerifySSL: Off\nVersion: 2",
        )
        .unwrap();
        assert_eq!(config.region, "0x10");
        assert_eq!(config.resource_arn, "true");
        assert_eq!(config.role_arn, "1.50");
        assert!(config.local_mode);
        assert!(!config.no_verify_ssl);
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let message = load("Version: 2\nSocket:\n  UDPAddress: \"unterminated\n")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("Error occur when using config flag: yaml: line "),
            "{message}"
        );
    }

    /// Files the original (3.5.0 to 3.6.6, gopkg.in/yaml.v2 2.2.8) starts with, and what they mean
    /// there: issue 13, item 1.
    #[test]
    fn files_the_original_accepts_load_with_the_same_meaning() {
        let dir = TempDir::new("accepted");
        // A UTF-8 byte-order mark, as Windows editors write; UTF-16 with its mark, too.
        let bom = dir.0.join("bom.yaml");
        std::fs::write(&bom, b"\xef\xbb\xbfRegion: us-west-2\nVersion: 2\n").unwrap();
        validate_file(&bom).unwrap();
        assert_eq!(load_file(&bom).unwrap().region, "us-west-2");
        let utf16 = dir.0.join("utf16.yaml");
        let units: Vec<u8> = "Region: eu-west-1\r\nVersion: 2\r\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        std::fs::write(&utf16, [&[0xff, 0xfe][..], &units].concat()).unwrap();
        assert_eq!(load_file(&utf16).unwrap().region, "eu-west-1");

        // Floats where integers belong are truncated toward zero.
        let config = load("Version: 2.0\nTotalBufferSizeMB: 16.7\nConcurrency: 1.5").unwrap();
        assert_eq!(
            (
                config.version,
                config.total_buffer_size_mb,
                config.concurrency
            ),
            (2, 16, 1)
        );
        validate_text("Version: 2.0", path()).unwrap();
        // 0.5 truncates to 0, which means the default.
        assert_eq!(load("Concurrency: 0.5\nVersion: 2").unwrap().concurrency, 8);
        // YAML 1.1 integers: octal, hex, underscores.
        let config =
            load("Concurrency: 010\nTotalBufferSizeMB: 0x20\nVersion: 1_0_0_0").unwrap_err();
        assert!(matches!(config, ConfigError::VersionNotCorrect));
        assert_eq!(load("Concurrency: 010\nVersion: 2").unwrap().concurrency, 8);

        // Repeated keys: the last wins; a repeated section only overrides what it names.
        let config = load(
            "Region: first\nRegion: second\nSocket:\n  UDPAddress: 0.0.0.0:1\n  TCPAddress: 0.0.0.0:2\nSocket:\n  UDPAddress: 0.0.0.0:3\nVersion: 1\nVersion: 2",
        )
        .unwrap();
        assert_eq!(config.region, "second");
        assert_eq!(config.udp_address, "0.0.0.0:3");
        assert_eq!(config.tcp_address, "0.0.0.0:2");
        assert_eq!(config.version, 2);
        validate_text("Region: a\nRegion: b\nVersion: 2", path()).unwrap();

        // Merge keys, applied where they stand (go-yaml v2: a later merge overrides earlier
        // keys), a list of them earlier-wins.
        let merged = "defaults: &defaults\n  LogLevel: debug\n  LogPath: /var/log/a.log\nLogging:\n  LogPath: /var/log/b.log\n  <<: *defaults\n  LogRotation: false\nVersion: 2";
        let config = load(merged).unwrap();
        assert_eq!(config.log_level, "debug");
        assert_eq!(config.log_path, "/var/log/a.log");
        assert!(!config.log_rotation);
        let listed =
            "a: &a {Region: from-a}\nb: &b {Region: from-b, RoleARN: r}\n<<: [*a, *b]\nVersion: 2";
        let config = load(listed).unwrap();
        assert_eq!(
            (config.region.as_str(), config.role_arn.as_str()),
            ("from-a", "r")
        );
        // Validation (-c) lists keys from a MapSlice, where go-yaml v2 drops merged keys: the
        // anchor's own top-level key is what fails.
        assert_eq!(
            validation_message(merged),
            "defaults.LogLevel flag is invalid. Please refer to AWS X-Ray Documentation for more information."
        );
        validate_text(
            "Logging: &l\n  LogLevel: debug\nVersion: 2\nSocket:\n  <<: {UDPAddress: x}\n",
            path(),
        )
        .unwrap();
        assert_eq!(
            load("Logging:\n  <<: 5\nVersion: 2")
                .unwrap_err()
                .to_string(),
            "Error occur when using config flag: yaml: map merge requires map or sequence of maps as the value"
        );
    }

    /// Files the original refuses, in its words: issue 13, item 1 (the reverse).
    #[test]
    fn files_the_original_refuses_are_refused_in_its_words() {
        let refused = |text: &str| load(text).unwrap_err().to_string();
        assert_eq!(
            refused("Region: x\0\nVersion: 2"),
            "Error occur when using config flag: yaml: control characters are not allowed"
        );
        assert_eq!(
            validate_text("Version: 2\n# \0", path())
                .unwrap_err()
                .to_string(),
            "Error occur when using config flag: yaml: control characters are not allowed"
        );
        // Quoted scalars are strings, which a boolean does not take: 'yes' and 'true' alike.
        assert_eq!(
            refused("Logging:\n  LogRotation: 'yes'\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 2: cannot unmarshal !!str `yes` into bool"
        );
        assert_eq!(
            refused("LocalMode: \"true\"\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `true` into bool"
        );
        assert_eq!(
            refused("NoVerifySSL: 1\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!int `1` into bool"
        );
        // Quoted numbers are strings too.
        assert_eq!(
            refused("Version: \"2\""),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `2` into int"
        );
        assert_eq!(
            refused("Concurrency: 1e400\nVersion: 2"),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `1e400` into int"
        );
    }

    #[test]
    fn booleans_follow_yaml_1_1() {
        for (text, expected) in [
            ("yes", true),
            ("on", true),
            ("Y", true),
            ("TRUE", true),
            ("no", false),
            ("OFF", false),
            ("n", false),
            ("False", false),
        ] {
            let config = load(&format!("LocalMode: {text}\nVersion: 2")).unwrap();
            assert_eq!(config.local_mode, expected, "{text}");
        }
        // Unset (null) keeps the default; go-yaml reads `Null` (not `null`) as false.
        for text in ["", "~", "null"] {
            assert!(
                load(&format!("Logging:\n  LogRotation: {text}\nVersion: 2"))
                    .unwrap()
                    .log_rotation
            );
        }
        assert!(
            !load("Logging:\n  LogRotation: Null\nVersion: 2")
                .unwrap()
                .log_rotation
        );
        assert_eq!(
            load("LocalMode: 'null'\nVersion: 2")
                .unwrap_err()
                .to_string(),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `null` into *bool"
        );
    }

    /// Unknown keys print as Go prints them, never in Rust's debug format.
    #[test]
    fn odd_keys_print_as_go_prints_them() {
        for (text, key) in [
            ("[a]: 1\nVersion: 2", "[a]"),
            ("? {a: 1}\n: x\nVersion: 2", "[{a 1}]"),
            ("~: 1\nVersion: 2", "<nil>"),
            ("1.0: x\nVersion: 2", "1"),
            ("yes: x\nVersion: 2", "true"),
            ("0x10: x\nVersion: 2", "16"),
            ("Socket:\n  [b, c]: 1\nVersion: 2", "Socket.[b c]"),
        ] {
            assert_eq!(
                validation_message(text),
                format!(
                    "{key} flag is invalid. Please refer to AWS X-Ray Documentation for more information."
                ),
                "{text:?}"
            );
        }
        // Loading decodes keys into Go strings: a list as a key is a type error there.
        assert_eq!(
            load("[a]: 1\nVersion: 2").unwrap_err().to_string(),
            "Error occur when using config flag: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into string"
        );
    }

    #[test]
    fn files_are_read_from_disk() {
        let dir = TempDir::new("read");
        let good = dir.file("cfg.yaml", "Region: eu-north-1\nVersion: 2");
        assert_eq!(load_file(&good).unwrap().region, "eu-north-1");
        validate_file(&good).unwrap();
        let missing = dir.0.join("missing.yaml");
        // Go's wording, as the original prints it.
        assert_eq!(
            load_file(&missing).unwrap_err().to_string(),
            format!(
                "Error occur when using config flag: open {}: no such file or directory",
                missing.display()
            )
        );
        assert_eq!(
            validate_file(&dir.0).unwrap_err().to_string(),
            format!(
                "Error occur when using config flag: read {}: is a directory",
                dir.0.display()
            )
        );
        assert!(validate_file(&missing).is_err());
        std::fs::write(dir.0.join("latin1.yaml"), b"Region: caf\xe9\nVersion: 2\n").unwrap();
        assert_eq!(
            load_file(&dir.0.join("latin1.yaml"))
                .unwrap_err()
                .to_string(),
            "Error occur when using config flag: yaml: invalid trailing UTF-8 octet"
        );
    }

    #[test]
    fn the_first_existing_location_wins() {
        let dir = TempDir::new("locations");
        let missing = dir.0.join("nope.yaml");
        let first = dir.file("first.yaml", "Region: first\nVersion: 1");
        let second = dir.file("second.yaml", "Region: second\nVersion: 2");
        let (config, found) =
            load_first_existing(&[missing.as_path(), first.as_path(), second.as_path()]).unwrap();
        assert_eq!(config.region, "first");
        assert_eq!(found, Some(first));

        let (config, found) = load_first_existing(&[missing.as_path()]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(found, None);

        let broken = dir.file("broken.yaml", "Version: 9");
        assert!(matches!(
            load_first_existing(&[broken.as_path(), second.as_path()]),
            Err(ConfigError::VersionNotCorrect)
        ));
    }
}
