//! cfg.yaml: loading, defaults and the original daemon's strict key validation.
//!
//! Loading follows the original's `merge`: keys it does not know are ignored, and values that are
//! zero or empty fall back to the defaults. Validation ([`validate_file`], used for `-c` only)
//! rejects unknown, retired and pre-migration keys with the original's exact messages.

use std::fmt;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader, yaml::Hash};

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
const VALID_KEYS: [&str; 28] = [
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
    /// `OTLP.Destination`: `otlp` (the only one so far); setting it also turns on
    /// `POST /v1/traces` on the proxy port.
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
    /// The file could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not valid YAML (or not UTF-8).
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with line and column when it has them.
        detail: String,
    },
    /// A value has the wrong type, e.g. text where a number belongs.
    WrongType {
        /// The file.
        path: PathBuf,
        /// The key, dotted for nested ones (`Socket.UDPAddress`).
        key: String,
        /// What the key needs.
        expected: &'static str,
        /// What the file has instead.
        found: String,
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
            ConfigError::Unreadable { path, source } => write!(
                f,
                "Error occur when using config flag: open {}: {source}",
                path.display()
            ),
            ConfigError::Syntax { path, detail } => write!(
                f,
                "Error occur when using config flag: {}: {detail}",
                path.display()
            ),
            ConfigError::WrongType {
                path,
                key,
                expected,
                found,
            } => write!(
                f,
                "Error occur when using config flag: {}: {key}: expected {expected}, found {found}",
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

/// Loads the first of `locations` that exists, or returns the defaults (and no path) when none
/// does. A file that exists but cannot be read or loaded is an error, as in the original.
pub fn load_first_existing(locations: &[&Path]) -> Result<(Config, Option<PathBuf>), ConfigError> {
    for &location in locations {
        match std::fs::metadata(location) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
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

/// Loads config text; `path` only names the file in error messages.
pub fn load_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let document = parse_yaml(text, path)?;
    let fields = Fields {
        top: top_mapping(&document, path)?,
        path,
    };
    let defaults = Config::default();
    let version = fields.integer("Version")?.unwrap_or(0);
    let config = Config {
        total_buffer_size_mb: fields
            .integer("TotalBufferSizeMB")?
            .filter(|&mb| mb != 0)
            .unwrap_or(defaults.total_buffer_size_mb),
        concurrency: fields
            .integer("Concurrency")?
            .filter(|&count| count != 0)
            .unwrap_or(defaults.concurrency),
        endpoint: fields.text("Endpoint")?.unwrap_or(defaults.endpoint),
        region: fields.text("Region")?.unwrap_or(defaults.region),
        udp_address: fields
            .text("Socket.UDPAddress")?
            .unwrap_or(defaults.udp_address),
        tcp_address: fields
            .text("Socket.TCPAddress")?
            .unwrap_or(defaults.tcp_address),
        log_rotation: fields
            .boolean("Logging.LogRotation")?
            .unwrap_or(defaults.log_rotation),
        log_level: fields
            .text("Logging.LogLevel")?
            .unwrap_or(defaults.log_level),
        log_path: fields.text("Logging.LogPath")?.unwrap_or(defaults.log_path),
        local_mode: fields.boolean("LocalMode")?.unwrap_or(defaults.local_mode),
        resource_arn: fields.text("ResourceARN")?.unwrap_or(defaults.resource_arn),
        role_arn: fields.text("RoleARN")?.unwrap_or(defaults.role_arn),
        no_verify_ssl: fields
            .boolean("NoVerifySSL")?
            .unwrap_or(defaults.no_verify_ssl),
        proxy_address: fields
            .text("ProxyAddress")?
            .unwrap_or(defaults.proxy_address),
        version,
        local_sink: fields.text("LocalSink")?.unwrap_or(defaults.local_sink),
        spool_directory: fields
            .text("Spool.Directory")?
            .unwrap_or(defaults.spool_directory),
        spool_max_mb: fields
            .count("Spool.MaxMB")?
            .filter(|&mb| mb != 0)
            .unwrap_or(defaults.spool_max_mb),
        health_fail_after_seconds: fields
            .count("Health.FailAfterSeconds")?
            .filter(|&seconds| seconds != 0)
            .unwrap_or(defaults.health_fail_after_seconds),
        otlp: OtlpConfig {
            http_address: fields.text("OTLP.HTTPAddress")?.unwrap_or_default(),
            endpoint: fields.text("OTLP.Endpoint")?.unwrap_or_default(),
            destination: fields.text("OTLP.Destination")?.unwrap_or_default(),
            compression: fields.text("OTLP.Compression")?.unwrap_or_default(),
            indexed_attributes: fields.list("OTLP.IndexedAttributes")?,
            index_all_attributes: fields.boolean("OTLP.IndexAllAttributes")?.unwrap_or(false),
        },
    };
    // Checked after the types, as the original unmarshals before it looks at the version.
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(ConfigError::VersionNotCorrect);
    }
    Ok(config)
}

/// Validates config text; `path` only names the file in error messages.
pub fn validate_text(text: &str, path: &Path) -> Result<(), ConfigError> {
    let document = parse_yaml(text, path)?;
    let keys = dotted_keys(top_mapping(&document, path)?);
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

fn read(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|error| ConfigError::Syntax {
        path: path.to_path_buf(),
        detail: format!(
            "not UTF-8 text (invalid byte at offset {})",
            error.utf8_error().valid_up_to()
        ),
    })
}

/// The first YAML document, as the original reads only that one; an empty file (or one with
/// only comments) is an empty mapping.
fn parse_yaml(text: &str, path: &Path) -> Result<Yaml, ConfigError> {
    let documents = YamlLoader::load_from_str(text).map_err(|error| ConfigError::Syntax {
        path: path.to_path_buf(),
        detail: error.to_string(),
    })?;
    Ok(match documents.into_iter().next() {
        None | Some(Yaml::Null | Yaml::BadValue) => Yaml::Hash(Hash::new()),
        Some(document) => document,
    })
}

/// The top-level mapping, which every config file must be.
fn top_mapping<'a>(document: &'a Yaml, path: &Path) -> Result<&'a Hash, ConfigError> {
    match document {
        Yaml::Hash(mapping) => Ok(mapping),
        other => Err(ConfigError::WrongType {
            path: path.to_path_buf(),
            key: "(top level)".to_string(),
            expected: "a mapping of keys",
            found: describe(other),
        }),
    }
}

/// The keys as the original lists them for validation: `Key` for plain values, `Key.Sub` for
/// each key of a mapping (one level only), in file order.
fn dotted_keys(top: &Hash) -> Vec<String> {
    let mut keys = Vec::new();
    for (key, value) in top {
        match value {
            Yaml::Hash(section) => {
                for sub_key in section.keys() {
                    keys.push(format!("{}.{}", key_name(key), key_name(sub_key)));
                }
            }
            _ => keys.push(key_name(key)),
        }
    }
    keys
}

/// A key as Go's `fmt.Sprint` would print it.
fn key_name(key: &Yaml) -> String {
    match key {
        Yaml::String(text) | Yaml::Real(text) => text.clone(),
        Yaml::Integer(number) => number.to_string(),
        Yaml::Boolean(flag) => flag.to_string(),
        Yaml::Null => "<nil>".to_string(),
        other => format!("{other:?}"),
    }
}

/// Short description of a value for type errors.
fn describe(value: &Yaml) -> String {
    match value {
        Yaml::String(text) => format!("text {text:?}"),
        Yaml::Real(text) => format!("number {text}"),
        Yaml::Integer(number) => format!("integer {number}"),
        Yaml::Boolean(flag) => format!("boolean {flag}"),
        Yaml::Array(_) => "a list".to_string(),
        Yaml::Hash(_) => "a mapping".to_string(),
        Yaml::Null => "nothing".to_string(),
        Yaml::Alias(_) | Yaml::BadValue => "a value that cannot be resolved".to_string(),
    }
}

/// Typed access to the keys of one file. Each getter returns `None` for an absent, null or
/// zero/empty value, so that the caller's default applies, as in the original's `merge`.
struct Fields<'a> {
    top: &'a Hash,
    path: &'a Path,
}

impl Fields<'_> {
    /// The value at a key, dotted for a key inside a section.
    fn value(&self, dotted_key: &str) -> Result<Option<&Yaml>, ConfigError> {
        let (section, key) = match dotted_key.split_once('.') {
            Some((section, key)) => (Some(section), key),
            None => (None, dotted_key),
        };
        let mapping = match section {
            None => self.top,
            Some(section) => match self.top.get(&Yaml::String(section.to_string())) {
                None | Some(Yaml::Null) => return Ok(None),
                Some(Yaml::Hash(mapping)) => mapping,
                Some(other) => return Err(self.wrong_type(section, "a mapping", other)),
            },
        };
        Ok(match mapping.get(&Yaml::String(key.to_string())) {
            None | Some(Yaml::Null) => None,
            Some(value) => Some(value),
        })
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Yaml) -> ConfigError {
        ConfigError::WrongType {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            expected,
            found: describe(found),
        }
    }

    /// Text; like the original's YAML library, any scalar is accepted as its text.
    fn text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let text = match self.value(key)? {
            None => return Ok(None),
            Some(Yaml::String(text) | Yaml::Real(text)) => text.clone(),
            Some(Yaml::Integer(number)) => number.to_string(),
            Some(Yaml::Boolean(flag)) => flag.to_string(),
            Some(other) => return Err(self.wrong_type(key, "text", other)),
        };
        Ok(Some(text).filter(|text| !text.is_empty()))
    }

    /// A list of texts (a single text is a list of one); empty when absent.
    fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let items = match self.value(key)? {
            None => return Ok(Vec::new()),
            Some(Yaml::Array(items)) => items,
            Some(_) => return Ok(self.text(key)?.into_iter().collect()),
        };
        let mut out = Vec::new();
        for item in items {
            match item {
                Yaml::String(text) | Yaml::Real(text) => out.push(text.clone()),
                Yaml::Integer(number) => out.push(number.to_string()),
                Yaml::Boolean(flag) => out.push(flag.to_string()),
                other => return Err(self.wrong_type(key, "a list of texts", other)),
            }
        }
        Ok(out)
    }

    fn integer(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.value(key)? {
            None => Ok(None),
            Some(Yaml::Integer(number)) => Ok(Some(*number)),
            Some(other) => Err(self.wrong_type(key, "an integer", other)),
        }
    }

    fn count(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.value(key)? {
            None => Ok(None),
            Some(Yaml::Integer(number)) if *number >= 0 => Ok(u64::try_from(*number).ok()),
            Some(other) => Err(self.wrong_type(key, "a non-negative integer", other)),
        }
    }

    /// A boolean; the YAML 1.1 spellings the original's library accepts (`yes`, `on`, …) too.
    fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.value(key)? {
            None => Ok(None),
            Some(Yaml::Boolean(flag)) => Ok(Some(*flag)),
            Some(Yaml::String(text)) => match text.as_str() {
                "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Ok(Some(true)),
                "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Ok(Some(false)),
                _ => Err(self.wrong_type(key, "true or false", &Yaml::String(text.clone()))),
            },
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }
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
        let document = parse_yaml(
            "Socket:\n  UDPAddress: a\nMemoryLimit: 8\nRegion: r\nLogging:\n  LogLevel: x\n  LogPath: y\n1: one\nVersion: 2",
            path(),
        )
        .unwrap();
        assert_eq!(
            dotted_keys(top_mapping(&document, path()).unwrap()),
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

    #[test]
    fn type_errors_name_the_file_and_key() {
        assert_eq!(
            load("TotalBufferSizeMB: NotExist\nVersion: 2")
                .unwrap_err()
                .to_string(),
            r#"Error occur when using config flag: test.yaml: TotalBufferSizeMB: expected an integer, found text "NotExist""#
        );
        assert_eq!(
            load("Socket: 5\nVersion: 2").unwrap_err().to_string(),
            "Error occur when using config flag: test.yaml: Socket: expected a mapping, found integer 5"
        );
        assert_eq!(
            load("LocalMode: maybe\nVersion: 2")
                .unwrap_err()
                .to_string(),
            r#"Error occur when using config flag: test.yaml: LocalMode: expected true or false, found text "maybe""#
        );
        assert_eq!(
            load("Region: [a, b]\nVersion: 2").unwrap_err().to_string(),
            "Error occur when using config flag: test.yaml: Region: expected text, found a list"
        );
        assert_eq!(
            load("Spool:\n  MaxMB: -1\nVersion: 2")
                .unwrap_err()
                .to_string(),
            "Error occur when using config flag: test.yaml: Spool.MaxMB: expected a non-negative integer, found integer -1"
        );
        assert_eq!(
            load("- a\n- b").unwrap_err().to_string(),
            "Error occur when using config flag: test.yaml: (top level): expected a mapping of keys, found a list"
        );
        // The version is looked at after the types.
        assert!(matches!(
            load("Concurrency: many\nVersion: 7"),
            Err(ConfigError::WrongType { .. })
        ));
    }

    #[test]
    fn scalars_are_accepted_as_text_and_yaml_1_1_booleans_as_booleans() {
        let config =
            load("Region: 12\nResourceARN: true\nLocalMode: yes\nNoVerifySSL: Off\nVersion: 2")
                .unwrap();
        assert_eq!(config.region, "12");
        assert_eq!(config.resource_arn, "true");
        assert!(config.local_mode);
        assert!(!config.no_verify_ssl);
    }

    #[test]
    fn syntax_errors_give_file_and_line() {
        let message = load("Version: 2\nSocket:\n  UDPAddress: \"unterminated\n")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("Error occur when using config flag: test.yaml: "),
            "{message}"
        );
        assert!(message.contains("line"), "{message}");
        let duplicate = load("Version: 2\nVersion: 1").unwrap_err().to_string();
        assert!(duplicate.contains("duplicated key"), "{duplicate}");
    }

    #[test]
    fn files_are_read_from_disk() {
        let dir = TempDir::new("read");
        let good = dir.file("cfg.yaml", "Region: eu-north-1\nVersion: 2");
        assert_eq!(load_file(&good).unwrap().region, "eu-north-1");
        validate_file(&good).unwrap();
        let missing = dir.0.join("missing.yaml");
        let message = load_file(&missing).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "Error occur when using config flag: open {}: ",
                missing.display()
            )),
            "{message}"
        );
        assert!(validate_file(&missing).is_err());
        std::fs::write(dir.0.join("latin1.yaml"), b"Region: \xe9\n").unwrap();
        assert!(matches!(
            load_file(&dir.0.join("latin1.yaml")),
            Err(ConfigError::Syntax { .. })
        ));
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
