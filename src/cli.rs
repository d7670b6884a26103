//! Command line: the original daemon's flags, accepted in every spelling Go's `flag` package accepts.
//!
//! Go's `flag` is lenient where argh is strict: one or two dashes for every name, `-name=value`,
//! `-bool=false`, base-prefixed integers, repeated flags (last wins), and parsing stops at the
//! first argument that is not a flag. [`parse`] first rewrites the arguments the Go way into one
//! canonical `--long value` pair per flag given, then lets argh build [`Flags`] from that.

use argh::FromArgs;
use std::fmt;

/// The version of the AWS X-Ray daemon whose behaviour this relay reproduces.
pub const DAEMON_VERSION: &str = "3.6.6";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "made once per process")]
pub enum Command {
    /// Run the relay with these flags.
    ///
    /// `-v` is in here too ([`Flags::version`]): like the original, the relay prints its version
    /// only after the configuration file has been checked, so a broken `-c` file wins over `-v`.
    Run(Flags),
    /// `-h`/`--help`: print [`usage`] to stdout and exit 0.
    Help,
}

/// The flags given on the command line; `None` means "not given", so that only flags actually
/// given override values from cfg.yaml.
#[derive(FromArgs, Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    /// the ARN of the AWS resource running the daemon (`-a`, `--resource-arn`).
    #[argh(option)]
    pub resource_arn: Option<String>,
    /// don't check for EC2 instance metadata (`-o`, `--local-mode`).
    #[argh(option)]
    pub local_mode: Option<bool>,
    /// megabytes for segment buffers, 0 or less for 1 % of host memory (`-m`, `--buffer-memory`).
    #[argh(option)]
    pub buffer_memory: Option<i64>,
    /// send segments to X-Ray in this region (`-n`, `--region`).
    #[argh(option)]
    pub region: Option<String>,
    /// the UDP address to listen on for segments (`-b`, `--bind`).
    #[argh(option)]
    pub bind: Option<String>,
    /// the TCP address for the X-Ray API proxy (`-t`, `--bind-tcp`).
    #[argh(option)]
    pub bind_tcp: Option<String>,
    /// the IAM role to assume for uploads (`-r`, `--role-arn`).
    #[argh(option)]
    pub role_arn: Option<String>,
    /// the configuration file to load, strictly validated (`-c`, `--config`).
    #[argh(option)]
    pub config: Option<String>,
    /// write logs to this file instead of stdout (`-f`, `--log-file`).
    #[argh(option)]
    pub log_file: Option<String>,
    /// the log level: dev, debug, info, warn, error or prod (`-l`, `--log-level`).
    #[argh(option)]
    pub log_level: Option<String>,
    /// the proxy through which to upload segments (`-p`, `--proxy-address`).
    #[argh(option)]
    pub proxy_address: Option<String>,
    /// print the version and exit (`-v`, `--version`).
    #[argh(option)]
    pub version: Option<bool>,
    /// write segments as JSON lines to this file, or stdout for `-`, instead of AWS (`--local-sink`).
    #[argh(option)]
    pub local_sink: Option<String>,
    /// the directory for segments that could not be sent yet (`--spool-dir`).
    #[argh(option)]
    pub spool_dir: Option<String>,
    /// the most megabytes the spool directory may hold (`--spool-max-mb`).
    #[argh(option)]
    pub spool_max_mb: Option<u64>,
    /// the TCP address to receive OpenTelemetry traces on, OTLP/HTTP (`--otlp-address`).
    #[argh(option)]
    pub otlp_address: Option<String>,
    /// where OpenTelemetry traces go: auto, otlp or segments (`--otlp-destination`).
    #[argh(option)]
    pub otlp_destination: Option<String>,
}

impl Flags {
    /// Whether `-v`/`--version` was given (and not turned off again with `-v=false`).
    pub fn wants_version(&self) -> bool {
        self.version == Some(true)
    }
}

/// A command line the relay cannot run with; [`fmt::Display`] is the one-line message, worded
/// like Go's `flag` package (for example `flag provided but not defined: -x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    message: String,
}

impl CliError {
    fn new(message: String) -> Self {
        CliError { message }
    }

    /// The exit status for a bad command line, as Go's `flag.ExitOnError` uses.
    pub const EXIT_CODE: i32 = 2;
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments after the program name.
///
/// Returns [`Command::Help`] for `-h`/`--help` (unless a bad flag comes before it), else the flags.
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let Some(canonical) = normalise(args)? else {
        return Ok(Command::Help);
    };
    let canonical: Vec<&str> = canonical.iter().map(String::as_str).collect();
    // The normaliser has checked names and values already; argh failing here would be our bug,
    // but it still deserves a readable message rather than a panic.
    Flags::from_args(&["xray"], &canonical)
        .map(Command::Run)
        .map_err(|early_exit| CliError::new(early_exit.output.trim_end().to_string()))
}

/// The text `-h` prints: the original's usage lines, then this relay's own flags.
pub fn usage() -> String {
    let mut text = String::from("Usage: X-Ray [options]\n");
    for spec in FLAGS.iter().filter(|spec| spec.short.is_some()) {
        text.push_str(&spec.usage_line());
    }
    text.push_str("\t-h\t--help\t\tShow this screen\n");
    for spec in FLAGS.iter().filter(|spec| spec.short.is_none()) {
        text.push_str(&spec.usage_line());
    }
    text
}

/// The line `-v` prints.
pub fn version_text() -> String {
    format!(
        "AWS X-Ray daemon version: {DAEMON_VERSION} (xray-relay {})\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// What a flag's value is, which decides how Go would parse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Text,
    /// Go `BoolVar`: no value needed; `-o=false` is the only way to give one.
    Bool,
    /// Go `IntVar`: `strconv.ParseInt(s, 0, 64)`.
    Int,
    /// Our own non-negative counts, parsed like Go's `ParseUint(s, 0, 64)`.
    Count,
}

struct FlagSpec {
    long: &'static str,
    /// `None` for this relay's own flags, which have no short name.
    short: Option<&'static str>,
    kind: ValueKind,
    usage: &'static str,
}

impl FlagSpec {
    /// One usage line, tab-separated like the original's (which pads string flags with short
    /// long names by an extra tab).
    fn usage_line(&self) -> String {
        let gap = if self.kind == ValueKind::Text && self.long.len() <= 4 {
            "\t\t"
        } else {
            "\t"
        };
        match self.short {
            Some(short) => format!("\t-{short}\t--{}{gap}{}\n", self.long, self.usage),
            None => format!("\t\t--{}{gap}{}\n", self.long, self.usage),
        }
    }
}

/// Every flag, in the original's usage order, then ours. Long names equal the [`Flags`] field
/// names with dashes, which is what argh derives.
const FLAGS: [FlagSpec; 17] = [
    FlagSpec {
        long: "resource-arn",
        short: Some("a"),
        kind: ValueKind::Text,
        usage: "Amazon Resource Name (ARN) of the AWS resource running the daemon.",
    },
    FlagSpec {
        long: "local-mode",
        short: Some("o"),
        kind: ValueKind::Bool,
        usage: "Don't check for EC2 instance metadata.",
    },
    FlagSpec {
        long: "buffer-memory",
        short: Some("m"),
        kind: ValueKind::Int,
        usage: "Change the amount of memory in MB that buffers can use (minimum 3).",
    },
    FlagSpec {
        long: "region",
        short: Some("n"),
        kind: ValueKind::Text,
        usage: "Send segments to X-Ray service in a specific region.",
    },
    FlagSpec {
        long: "bind",
        short: Some("b"),
        kind: ValueKind::Text,
        usage: "Overrides default UDP address (127.0.0.1:2000).",
    },
    FlagSpec {
        long: "bind-tcp",
        short: Some("t"),
        kind: ValueKind::Text,
        usage: "Overrides default TCP address (127.0.0.1:2000).",
    },
    FlagSpec {
        long: "role-arn",
        short: Some("r"),
        kind: ValueKind::Text,
        usage: "Assume the specified IAM role to upload segments to a different account.",
    },
    FlagSpec {
        long: "config",
        short: Some("c"),
        kind: ValueKind::Text,
        usage: "Load a configuration file from the specified path.",
    },
    FlagSpec {
        long: "log-file",
        short: Some("f"),
        kind: ValueKind::Text,
        usage: "Output logs to the specified file path.",
    },
    FlagSpec {
        long: "log-level",
        short: Some("l"),
        kind: ValueKind::Text,
        usage: "Log level, from most verbose to least: dev, debug, info, warn, error, prod (default).",
    },
    FlagSpec {
        long: "proxy-address",
        short: Some("p"),
        kind: ValueKind::Text,
        usage: "Proxy address through which to upload segments.",
    },
    FlagSpec {
        long: "version",
        short: Some("v"),
        kind: ValueKind::Bool,
        usage: "Show AWS X-Ray daemon version.",
    },
    FlagSpec {
        long: "local-sink",
        short: None,
        kind: ValueKind::Text,
        usage: "Write segments as JSON lines to this file (- for stdout) instead of sending them to AWS.",
    },
    FlagSpec {
        long: "spool-dir",
        short: None,
        kind: ValueKind::Text,
        usage: "Keep segments that could not be sent yet in this directory.",
    },
    FlagSpec {
        long: "spool-max-mb",
        short: None,
        kind: ValueKind::Count,
        usage: "Most MB the spool directory may hold (default 100).",
    },
    FlagSpec {
        long: "otlp-address",
        short: None,
        kind: ValueKind::Text,
        usage: "Receive OpenTelemetry traces (OTLP/HTTP, POST /v1/traces) on this TCP address.",
    },
    FlagSpec {
        long: "otlp-destination",
        short: None,
        kind: ValueKind::Text,
        usage: "Where OpenTelemetry traces go: auto (the default: otlp where the account uses Transaction Search, else segments), otlp (X-Ray's OTLP endpoint) or segments (translated to X-Ray segments).",
    },
];

fn find_flag(name: &str) -> Option<(usize, &'static FlagSpec)> {
    FLAGS
        .iter()
        .enumerate()
        .find(|(_, spec)| spec.long == name || spec.short == Some(name))
}

/// Walks the arguments like Go's `FlagSet.Parse` and returns one canonical `--long value` pair
/// per flag given (the last occurrence wins), or `None` when help was asked for.
fn normalise(args: &[String]) -> Result<Option<Vec<String>>, CliError> {
    let mut last_values: [Option<String>; FLAGS.len()] = Default::default();
    let mut rest = args;
    while let Some((arg, after)) = rest.split_first() {
        rest = after;
        // Go stops at the first non-flag ("-" alone counts as one) and after a bare "--".
        let Some(without_dash) = arg.strip_prefix('-').filter(|tail| !tail.is_empty()) else {
            break;
        };
        let name_and_value = match without_dash.strip_prefix('-') {
            Some("") => break,
            Some(tail) => tail,
            None => without_dash,
        };
        if name_and_value.is_empty() || name_and_value.starts_with(['-', '=']) {
            return Err(CliError::new(format!("bad flag syntax: {arg}")));
        }
        let (name, inline_value) = match name_and_value.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (name_and_value, None),
        };
        let Some((index, spec)) = find_flag(name) else {
            if name == "h" || name == "help" {
                return Ok(None);
            }
            return Err(CliError::new(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match (spec.kind, inline_value) {
            (ValueKind::Bool, None) => "true".to_string(),
            (ValueKind::Bool, Some(text)) => parse_go_bool(text)
                .ok_or_else(|| {
                    CliError::new(format!(
                        "invalid boolean value {} for -{name}: parse error",
                        crate::go_url::go_quote(text)
                    ))
                })?
                .to_string(),
            (kind, inline_value) => {
                // A flag that takes a value takes the next argument, whatever it looks like.
                let text = match (inline_value, rest.split_first()) {
                    (Some(text), _) => text,
                    (None, Some((next, after))) => {
                        rest = after;
                        next.as_str()
                    }
                    (None, None) => {
                        return Err(CliError::new(format!("flag needs an argument: -{name}")));
                    }
                };
                canonical_value(kind, text).map_err(|problem| {
                    CliError::new(format!(
                        "invalid value {} for flag -{name}: {problem}",
                        crate::go_url::go_quote(text)
                    ))
                })?
            }
        };
        last_values[index] = Some(value);
    }
    let mut canonical = Vec::new();
    for (spec, value) in FLAGS.iter().zip(last_values) {
        if let Some(value) = value {
            canonical.push(format!("--{}", spec.long));
            canonical.push(value);
        }
    }
    Ok(Some(canonical))
}

fn canonical_value(kind: ValueKind, text: &str) -> Result<String, NumberError> {
    match kind {
        ValueKind::Int => parse_go_int(text).map(|n| n.to_string()),
        ValueKind::Count => parse_go_uint(text).map(|n| n.to_string()),
        ValueKind::Text | ValueKind::Bool => Ok(text.to_string()),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Why a number was refused; the wording is Go's `flag` package's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberError {
    Syntax,
    Range,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberError::Syntax => "parse error",
            NumberError::Range => "value out of range",
        })
    }
}

/// Go's `strconv.ParseInt(text, 0, 64)`: optional sign, then an unsigned number as in
/// [`parse_go_uint`].
pub(crate) fn parse_go_int(text: &str) -> Result<i64, NumberError> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = i128::from(parse_go_uint(unsigned)?);
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| NumberError::Range)
}

/// Go's `strconv.ParseUint(text, 0, 64)`: `0x`/`0o`/`0b` prefixes, a bare leading `0` for
/// octal, and `_` between digits.
pub(crate) fn parse_go_uint(text: &str) -> Result<u64, NumberError> {
    let bytes = text.as_bytes();
    let (radix, digits): (u32, &[u8]) = match bytes {
        [] => return Err(NumberError::Syntax),
        [b'0', b'x' | b'X', _, ..] => (16, &bytes[2..]),
        [b'0', b'o' | b'O', _, ..] => (8, &bytes[2..]),
        [b'0', b'b' | b'B', _, ..] => (2, &bytes[2..]),
        [b'0', rest @ ..] => (8, rest),
        _ => (10, bytes),
    };
    let mut value: u64 = 0;
    let mut has_underscore = false;
    for &byte in digits {
        if byte == b'_' {
            has_underscore = true;
            continue;
        }
        let digit = char::from(byte)
            .to_digit(36)
            .filter(|&digit| digit < radix)
            .ok_or(NumberError::Syntax)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|shifted| shifted.checked_add(u64::from(digit)))
            .ok_or(NumberError::Range)?;
    }
    if has_underscore && !underscores_well_placed(text) {
        return Err(NumberError::Syntax);
    }
    Ok(value)
}

/// Go accepts `_` only between digits, or between a base prefix and a digit (`0x_1f`).
fn underscores_well_placed(text: &str) -> bool {
    let bytes = text.as_bytes();
    let bytes = bytes
        .strip_prefix(b"-")
        .or(bytes.strip_prefix(b"+"))
        .unwrap_or(bytes);
    let (hex, body, mut previous_was_digit) = match bytes {
        [b'0', prefix, rest @ ..] if matches!(prefix.to_ascii_lowercase(), b'b' | b'o' | b'x') => {
            (prefix.eq_ignore_ascii_case(&b'x'), rest, true)
        }
        _ => (false, bytes, false),
    };
    let mut previous_was_underscore = false;
    for &byte in body {
        let is_digit = byte.is_ascii_digit() || (hex && byte.is_ascii_hexdigit());
        if byte == b'_' {
            if !previous_was_digit {
                return false;
            }
            previous_was_underscore = true;
            previous_was_digit = false;
        } else if previous_was_underscore && !is_digit {
            return false;
        } else {
            previous_was_underscore = false;
            previous_was_digit = is_digit;
        }
    }
    !previous_was_underscore
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    fn flags(list: &[&str]) -> Flags {
        match parse(&args(list)) {
            Ok(Command::Run(flags)) => flags,
            other => panic!("{list:?} gave {other:?}"),
        }
    }

    fn error(list: &[&str]) -> String {
        match parse(&args(list)) {
            Err(error) => error.to_string(),
            other => panic!("{list:?} gave {other:?}"),
        }
    }

    #[test]
    fn no_arguments_give_no_flags() {
        assert_eq!(flags(&[]), Flags::default());
    }

    #[test]
    fn every_spelling_of_a_string_flag() {
        for spelling in [
            &["-b", "1.2.3.4:5"][..],
            &["--b", "1.2.3.4:5"],
            &["-bind", "1.2.3.4:5"],
            &["--bind", "1.2.3.4:5"],
            &["-b=1.2.3.4:5"],
            &["--b=1.2.3.4:5"],
            &["-bind=1.2.3.4:5"],
            &["--bind=1.2.3.4:5"],
        ] {
            assert_eq!(
                flags(spelling).bind.as_deref(),
                Some("1.2.3.4:5"),
                "{spelling:?}"
            );
        }
    }

    #[test]
    fn every_flag_by_short_and_long_name() {
        let all_short = flags(&[
            "-a",
            "arn:res",
            "-o",
            "-m",
            "16",
            "-n",
            "eu-west-1",
            "-b",
            "0.0.0.0:2000",
            "-t",
            "0.0.0.0:2001",
            "-r",
            "arn:role",
            "-c",
            "x.yaml",
            "-f",
            "x.log",
            "-l",
            "debug",
            "-p",
            "proxy:3128",
            "-v",
        ]);
        let all_long = flags(&[
            "--resource-arn",
            "arn:res",
            "--local-mode",
            "--buffer-memory",
            "16",
            "--region",
            "eu-west-1",
            "--bind",
            "0.0.0.0:2000",
            "--bind-tcp",
            "0.0.0.0:2001",
            "--role-arn",
            "arn:role",
            "--config",
            "x.yaml",
            "--log-file",
            "x.log",
            "--log-level",
            "debug",
            "--proxy-address",
            "proxy:3128",
            "--version",
        ]);
        let expected = Flags {
            resource_arn: Some("arn:res".into()),
            local_mode: Some(true),
            buffer_memory: Some(16),
            region: Some("eu-west-1".into()),
            bind: Some("0.0.0.0:2000".into()),
            bind_tcp: Some("0.0.0.0:2001".into()),
            role_arn: Some("arn:role".into()),
            config: Some("x.yaml".into()),
            log_file: Some("x.log".into()),
            log_level: Some("debug".into()),
            proxy_address: Some("proxy:3128".into()),
            version: Some(true),
            local_sink: None,
            spool_dir: None,
            spool_max_mb: None,
            otlp_address: None,
            otlp_destination: None,
        };
        assert_eq!(all_short, expected);
        assert_eq!(all_long, expected);
        assert!(all_long.wants_version());
    }

    #[test]
    fn our_own_flags() {
        let given = flags(&[
            "--local-sink",
            "-",
            "-spool-dir=/var/spool/xray",
            "--spool-max-mb",
            "0x20",
        ]);
        assert_eq!(given.local_sink.as_deref(), Some("-"));
        assert_eq!(given.spool_dir.as_deref(), Some("/var/spool/xray"));
        assert_eq!(given.spool_max_mb, Some(32));
        assert_eq!(
            error(&["--spool-max-mb", "-1"]),
            r#"invalid value "-1" for flag -spool-max-mb: parse error"#
        );
    }

    #[test]
    fn bool_flags_take_a_value_only_after_equals() {
        assert_eq!(flags(&["-o"]).local_mode, Some(true));
        assert_eq!(flags(&["-o=false"]).local_mode, Some(false));
        assert_eq!(flags(&["--local-mode=true"]).local_mode, Some(true));
        assert_eq!(flags(&["-local-mode=0"]).local_mode, Some(false));
        assert_eq!(flags(&["-o=T"]).local_mode, Some(true));
        assert_eq!(flags(&["-v=false"]).version, Some(false));
        assert!(!flags(&["-v=false"]).wants_version());
        // `-o false` is `-o`, then the positional "false", which ends parsing.
        let given = flags(&["-o", "false", "-b", "ignored"]);
        assert_eq!(given.local_mode, Some(true));
        assert_eq!(given.bind, None);
        assert_eq!(
            error(&["-o=maybe"]),
            r#"invalid boolean value "maybe" for -o: parse error"#
        );
    }

    #[test]
    fn integers_parse_like_go_parse_int_base_zero() {
        for (text, expected) in [
            ("16", 16),
            ("0x10", 16),
            ("0X10", 16),
            ("0o20", 16),
            ("020", 16),
            ("0b10000", 16),
            ("1_6", 16),
            ("0x_10", 16),
            ("+16", 16),
            ("-5", -5),
            ("0", 0),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(flags(&["-m", text]).buffer_memory, Some(expected), "{text}");
        }
        assert_eq!(flags(&["-m=0x10"]).buffer_memory, Some(16));
        for bad in [
            "abc", "08", "1__6", "_16", "16_", "0x", "", "-", "1.5", "+-5",
        ] {
            assert_eq!(
                error(&["-m", bad]),
                format!("invalid value {bad:?} for flag -m: parse error")
            );
        }
        for huge in [
            "9223372036854775808",
            "-9223372036854775809",
            "0xffffffffffffffffff",
        ] {
            assert_eq!(
                error(&["--buffer-memory", huge]),
                format!("invalid value {huge:?} for flag -buffer-memory: value out of range")
            );
        }
    }

    #[test]
    fn last_occurrence_wins() {
        let given = flags(&["-b", "a:1", "--bind=b:2", "-bind", "c:3", "-o", "-o=false"]);
        assert_eq!(given.bind.as_deref(), Some("c:3"));
        assert_eq!(given.local_mode, Some(false));
        // Short and long names are one flag.
        assert_eq!(
            flags(&["--region", "x", "-n", "y"]).region.as_deref(),
            Some("y")
        );
    }

    #[test]
    fn parsing_stops_at_the_first_non_flag_or_double_dash() {
        assert_eq!(flags(&["-b", "x:1", "run", "-n", "y"]).region, None);
        assert_eq!(flags(&["-b", "x:1", "--", "-n", "y"]).region, None);
        assert_eq!(flags(&["-", "-n", "y"]).region, None);
        assert_eq!(
            flags(&["-b", "x:1", "--", "-n", "y"]).bind.as_deref(),
            Some("x:1")
        );
    }

    #[test]
    fn a_value_may_look_like_a_flag() {
        assert_eq!(flags(&["-b", "--help"]).bind.as_deref(), Some("--help"));
        assert_eq!(flags(&["-n", "--"]).region.as_deref(), Some("--"));
        assert_eq!(flags(&["-m", "-3"]).buffer_memory, Some(-3));
        assert_eq!(flags(&["-f="]).log_file.as_deref(), Some(""));
        assert_eq!(flags(&["-r", "a=b"]).role_arn.as_deref(), Some("a=b"));
        assert_eq!(flags(&["-r=a=b"]).role_arn.as_deref(), Some("a=b"));
    }

    #[test]
    fn help_in_every_spelling() {
        for spelling in ["-h", "--h", "-help", "--help", "-h=1"] {
            assert_eq!(parse(&args(&[spelling])), Ok(Command::Help), "{spelling}");
        }
        assert_eq!(
            parse(&args(&["-b", "x:1", "-h", "-zzz"])),
            Ok(Command::Help)
        );
        // A bad flag before the help flag is reported first, as Go does.
        assert_eq!(
            error(&["-zzz", "-h"]),
            "flag provided but not defined: -zzz"
        );
    }

    #[test]
    fn bad_command_lines_name_the_flag() {
        assert_eq!(error(&["-x"]), "flag provided but not defined: -x");
        assert_eq!(error(&["--nope=1"]), "flag provided but not defined: -nope");
        assert_eq!(error(&["-b"]), "flag needs an argument: -b");
        assert_eq!(error(&["--bind-tcp"]), "flag needs an argument: -bind-tcp");
        assert_eq!(error(&["---b"]), "bad flag syntax: ---b");
        assert_eq!(error(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(error(&["--=x"]), "bad flag syntax: --=x");
        // The error is found even after good flags.
        assert_eq!(
            error(&["-o", "-m", "x"]),
            r#"invalid value "x" for flag -m: parse error"#
        );
        // Values are quoted as Go's %q quotes them, not in Rust's debug format.
        assert_eq!(
            error(&["-m", "\u{1}\t"]),
            r#"invalid value "\x01\t" for flag -m: parse error"#
        );
        assert_eq!(CliError::EXIT_CODE, 2);
    }

    #[test]
    fn usage_matches_the_original_then_lists_ours() {
        let text = usage();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Usage: X-Ray [options]");
        assert_eq!(
            lines[1],
            "\t-a\t--resource-arn\tAmazon Resource Name (ARN) of the AWS resource running the daemon."
        );
        assert_eq!(
            lines[2],
            "\t-o\t--local-mode\tDon't check for EC2 instance metadata."
        );
        assert_eq!(
            lines[3],
            "\t-m\t--buffer-memory\tChange the amount of memory in MB that buffers can use (minimum 3)."
        );
        assert_eq!(
            lines[4],
            "\t-n\t--region\tSend segments to X-Ray service in a specific region."
        );
        assert_eq!(
            lines[5],
            "\t-b\t--bind\t\tOverrides default UDP address (127.0.0.1:2000)."
        );
        assert_eq!(
            lines[6],
            "\t-t\t--bind-tcp\tOverrides default TCP address (127.0.0.1:2000)."
        );
        assert_eq!(lines[12], "\t-v\t--version\tShow AWS X-Ray daemon version.");
        assert_eq!(lines[13], "\t-h\t--help\t\tShow this screen");
        assert!(lines[14].starts_with("\t\t--local-sink\t"));
        assert!(lines[15].starts_with("\t\t--spool-dir\t"));
        assert!(lines[16].starts_with("\t\t--spool-max-mb\t"));
        assert!(lines[17].starts_with("\t\t--otlp-address\t"));
        assert!(lines[18].starts_with("\t\t--otlp-destination\t"));
        assert_eq!(lines.len(), 19);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn version_line() {
        assert_eq!(
            version_text(),
            format!(
                "AWS X-Ray daemon version: 3.6.6 (xray-relay {})\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn underscores_follow_go_rules() {
        assert!(underscores_well_placed("1_000"));
        assert!(underscores_well_placed("0x_ff"));
        assert!(underscores_well_placed("-1_0"));
        assert!(underscores_well_placed("0_7"));
        assert!(!underscores_well_placed("_1"));
        assert!(!underscores_well_placed("1_"));
        assert!(!underscores_well_placed("1__0"));
        assert_eq!(parse_go_uint("0xf_f"), Ok(255));
        assert_eq!(parse_go_uint("1_0_0"), Ok(100));
        assert_eq!(parse_go_int("-0x10"), Ok(-16));
    }
}
