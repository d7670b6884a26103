//! Log output in the original daemon's format: `2016-11-24T06:07:06Z [Info] message`.
//!
//! Built on `log` + `env_logger`: env_logger's custom format and `Target::Pipe` cover all we need
//! (our line format, our file writer, per-crate levels), so no hand-written `log::Log` is needed.
//! The timestamp is local time with Go's `2006-01-02T15:04:05Z07:00` layout; the file writer
//! appends, rolls at 50 MB keeping one old file, and never fails the caller.

use log::{Level, LevelFilter};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Size at which the log file is rolled when `Logging.LogRotation` is on (the original's 50 MB).
pub const ROTATION_SIZE_BYTES: u64 = 50 * 1024 * 1024;

/// The log target prefix of the `xray` binary's own modules.
const BINARY_LOG_TARGET: &str = "xray";

/// How logging is set up; see [`init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSetup {
    /// The most verbose level written.
    pub level: Level,
    /// A level name that was not recognised, to warn about once logging is up.
    pub unknown_level: Option<String>,
    /// The file to append to; `None` for the console.
    pub file: Option<PathBuf>,
    /// Roll the file at [`ROTATION_SIZE_BYTES`].
    pub rotation: bool,
    /// Log to stderr instead of stdout when there is no file (offline mode writes segments to
    /// stdout, which must stay clean JSON lines).
    pub console_is_stderr: bool,
}

/// Why logging could not be set up.
#[derive(Debug)]
pub enum LogInitError {
    /// The log file (or its directory) could not be created or opened.
    OpenFile {
        /// The log file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Another logger was installed first.
    AlreadyInitialised,
}

impl fmt::Display for LogInitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogInitError::OpenFile { path, source } => {
                write!(f, "Unable to open log file {}: {source}", path.display())
            }
            LogInitError::AlreadyInitialised => f.write_str("A logger is already installed"),
        }
    }
}

impl std::error::Error for LogInitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogInitError::OpenFile { source, .. } => Some(source),
            LogInitError::AlreadyInitialised => None,
        }
    }
}

/// Reopen requests so far ([`reopen_on_signal`]); each [`LogFileWriter`] reopens its file at
/// the next line when this has changed since it last looked.
static REOPEN_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The log file of the installed logger, if it writes to one.
static INSTALLED_LOG_FILE: OnceLock<PathBuf> = OnceLock::new();

/// After SIGHUP or SIGUSR1 (`signal_name` as Go names it): the log file is closed and opened
/// again by path, so after logrotate has moved it away a new file takes the lines; the line
/// saying so is the first in that file.
pub fn reopen_on_signal(signal_name: &str) {
    REOPEN_REQUESTS.fetch_add(1, Ordering::SeqCst);
    match INSTALLED_LOG_FILE.get() {
        Some(path) => log::info!(
            "Got signal {signal_name}: reopened log file {}",
            path.display()
        ),
        None => log::info!("Got signal {signal_name}: logging to the console, nothing to reopen"),
    }
}

/// Installs the global logger, then warns about an unrecognised level name, if any.
pub fn init(setup: &LogSetup) -> Result<(), LogInitError> {
    let logger = build_logger(setup)?;
    if let Some(path) = &setup.file {
        let _ = INSTALLED_LOG_FILE.set(path.clone());
    }
    log::set_max_level(logger.filter());
    log::set_boxed_logger(Box::new(logger)).map_err(|_| LogInitError::AlreadyInitialised)?;
    if let Some(name) = &setup.unknown_level {
        log::warn!("{}", unknown_level_warning(name, setup.level));
    }
    Ok(())
}

/// The logger [`init`] installs, without installing it.
fn build_logger(setup: &LogSetup) -> Result<env_logger::Logger, LogInitError> {
    let target = match &setup.file {
        None if setup.console_is_stderr => env_logger::Target::Stderr,
        None => env_logger::Target::Stdout,
        Some(path) => {
            let rotate_at = setup.rotation.then_some(ROTATION_SIZE_BYTES);
            let writer =
                LogFileWriter::open(path, rotate_at).map_err(|source| LogInitError::OpenFile {
                    path: path.clone(),
                    source,
                })?;
            env_logger::Target::Pipe(Box::new(writer))
        }
    };
    let own_level = setup.level.to_level_filter();
    // This library's log target prefix ("xray_relay"), taken from the code so a rename can't break it.
    let library = module_path!().split("::").next().unwrap_or(module_path!());
    Ok(env_logger::Builder::new()
        .format(|buffer, record| {
            let line = format_line(record.level(), record.args(), &LocalTime::now());
            buffer.write_all(line.as_bytes())
        })
        // The original logs only its own messages; our dependencies (TLS, HTTP) get a say only
        // for warnings and errors, so `dev` does not drown the relay's lines in theirs.
        .filter_level(own_level.min(LevelFilter::Warn))
        .filter_module(library, own_level)
        .filter_module(BINARY_LOG_TARGET, own_level)
        .target(target)
        .build())
}

/// The level for the config's `Logging.LogLevel` and the `-l` flag (whose default is the config
/// value), decided as the original does, plus the unrecognised name to warn about, if any.
///
/// The config name is applied first; an unrecognised one leaves the level at Trace, the
/// original's zero value. The flag then overrides it only if it differs from the config name and
/// is recognised, so `-l bogus` keeps the config's level.
pub fn resolve_level(config_name: &str, flag_name: &str) -> (Level, Option<String>) {
    let mut level = level_named(config_name);
    let mut unknown = level.is_none().then(|| config_name.to_string());
    if flag_name != config_name {
        match level_named(flag_name) {
            Some(flag_level) => {
                level = Some(flag_level);
                unknown = None;
            }
            None => unknown = Some(flag_name.to_string()),
        }
    }
    (level.unwrap_or(Level::Trace), unknown)
}

/// The level a daemon log level name stands for.
fn level_named(name: &str) -> Option<Level> {
    match name {
        "dev" => Some(Level::Trace),
        "debug" => Some(Level::Debug),
        "info" | "prod" => Some(Level::Info),
        "warn" => Some(Level::Warn),
        "error" => Some(Level::Error),
        _ => None,
    }
}

fn unknown_level_warning(name: &str, level: Level) -> String {
    format!(
        "Log level {name:?} is not one of dev, debug, info, warn, error, prod; logging at {}",
        level_name(level)
    )
}

/// A level as the original's logger (seelog) prints it.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "Trace",
        Level::Debug => "Debug",
        Level::Info => "Info",
        Level::Warn => "Warn",
        Level::Error => "Error",
    }
}

/// One log line, newline included: `2016-11-24T06:07:06Z [Info] message`.
pub fn format_line(level: Level, message: impl fmt::Display, time: &LocalTime) -> String {
    format!("{time} [{}] {message}\n", level_name(level))
}

/// Logs a startup failure like the original's config errors: an `[Error]` line on stderr and,
/// when a log file is known, appended to it too. For use before the logger exists; failures to
/// write are ignored, as the process is about to exit anyway.
pub fn report_startup_error(message: &str, log_file: Option<&Path>) {
    write_startup_error(&mut io::stderr(), message, log_file);
}

/// [`report_startup_error`] with stderr passed in.
pub fn write_startup_error(stderr: &mut dyn Write, message: &str, log_file: Option<&Path>) {
    let line = format_line(Level::Error, message, &LocalTime::now());
    let _ = stderr.write_all(line.as_bytes());
    if let Some(path) = log_file
        && let Ok(mut file) = open_append(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}

/// A wall-clock time broken down in some time zone, with that zone's offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Full year, e.g. 2016.
    pub year: i64,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// 0 to 60 (leap second).
    pub second: u8,
    /// East of UTC is positive, e.g. 19800 for +05:30.
    pub utc_offset_seconds: i64,
}

impl LocalTime {
    /// The current time in the local time zone.
    pub fn now() -> Self {
        let unix_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since_epoch| {
                i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
            });
        Self::at(unix_seconds)
    }

    /// `unix_seconds` in the local time zone (TZ or /etc/localtime); UTC if that lookup fails.
    pub fn at(unix_seconds: i64) -> Self {
        local_broken_down(unix_seconds).unwrap_or_else(|| Self::utc(unix_seconds))
    }

    /// `unix_seconds` in UTC.
    pub fn utc(unix_seconds: i64) -> Self {
        let days = unix_seconds.div_euclid(86_400);
        let seconds_of_day = unix_seconds.rem_euclid(86_400);
        let (year, month, day) = crate::aws::timestamp::civil_from_days(days);
        LocalTime {
            year,
            // A month is at most 12 and a day at most 31.
            month: month as u8,
            day: day as u8,
            // All below 60 or 24 by construction.
            hour: (seconds_of_day / 3600) as u8,
            minute: (seconds_of_day / 60 % 60) as u8,
            second: (seconds_of_day % 60) as u8,
            utc_offset_seconds: 0,
        }
    }
}

/// Go's `2006-01-02T15:04:05Z07:00`: `Z` for UTC, else the offset as `+hh:mm`/`-hh:mm`.
impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.utc_offset_seconds == 0 {
            return f.write_str("Z");
        }
        let sign = if self.utc_offset_seconds < 0 {
            '-'
        } else {
            '+'
        };
        let offset_minutes = self.utc_offset_seconds.abs() / 60;
        write!(
            f,
            "{sign}{:02}:{:02}",
            offset_minutes / 60,
            offset_minutes % 60
        )
    }
}

/// The local time zone's view of `unix_seconds`, from libc's `localtime_r`, which also gives the
/// zone's offset (`tm_gmtoff`) at that instant, daylight saving included.
fn local_broken_down(unix_seconds: i64) -> Option<LocalTime> {
    // libc marks time_t deprecated on musl because its width will change on 32-bit targets;
    // the checked conversion is right for either width.
    #[allow(deprecated)]
    let time = libc::time_t::try_from(unix_seconds).ok()?;
    // SAFETY: `tm` is plain data (integers and a zone-name pointer) for which all-zero is valid;
    // localtime_r reads only `time` and writes only `tm`, both owned by this frame, and unlike
    // localtime it uses no shared static buffer, so it is safe to call from any thread.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(LocalTime {
        year: i64::from(tm.tm_year) + 1900,
        month: u8::try_from(tm.tm_mon + 1).ok()?,
        day: u8::try_from(tm.tm_mday).ok()?,
        hour: u8::try_from(tm.tm_hour).ok()?,
        minute: u8::try_from(tm.tm_min).ok()?,
        second: u8::try_from(tm.tm_sec).ok()?,
        // c_long: 32 or 64 bits depending on the target, so a widening cast.
        utc_offset_seconds: tm.tm_gmtoff as i64,
    })
}

/// Appends log lines to a file, rolling it to `PATH.1` (one old file kept) when it reaches a
/// size limit. Writing never fails: a line that cannot be written is counted, the file is
/// reopened on the next line (recreating its directory if need be), and once that works a
/// warning line says how many were lost. The first failure of a run of them is also said once
/// on stderr (the journal under systemd), since the file cannot say it.
///
/// At most once every [`REMOVAL_CHECK`] the writer checks that `path` is still the file it
/// writes to: if the file or its directory was removed or moved away, lines would otherwise go
/// on into an unlinked file nobody can read. It then reopens `path` and says so in the new file.
#[derive(Debug)]
pub struct LogFileWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    rotate_at: Option<u64>,
    lost_lines: u64,
    lost_since_reported: u64,
    /// (device, inode) of the open file, to notice it being removed or replaced.
    identity: Option<(u64, u64)>,
    last_removal_check: Instant,
    /// The open file was found removed; the next line reopened it and must say so.
    removed: bool,
    /// Counts reopen requests ([`REOPEN_REQUESTS`] outside tests).
    reopen_requests: &'static AtomicU64,
    /// `reopen_requests` when the file was last opened.
    reopen_requests_seen: u64,
}

/// How often the writer checks that its path still names the file it writes to.
pub const REMOVAL_CHECK: Duration = Duration::from_secs(1);

impl LogFileWriter {
    /// Opens `path` for appending, creating it (mode 0644) and its directory if missing, as the
    /// original's logger does. `rotate_at`: size in bytes at which to roll, `None` for never.
    pub fn open(path: &Path, rotate_at: Option<u64>) -> io::Result<Self> {
        Self::open_watching(path, rotate_at, &REOPEN_REQUESTS)
    }

    /// [`open`](Self::open), reopening the file whenever `reopen_requests` has changed.
    fn open_watching(
        path: &Path,
        rotate_at: Option<u64>,
        reopen_requests: &'static AtomicU64,
    ) -> io::Result<Self> {
        let mut writer = LogFileWriter {
            path: path.to_path_buf(),
            file: None,
            size: 0,
            rotate_at,
            lost_lines: 0,
            lost_since_reported: 0,
            identity: None,
            last_removal_check: Instant::now(),
            removed: false,
            reopen_requests,
            reopen_requests_seen: reopen_requests.load(Ordering::SeqCst),
        };
        writer.reopen()?;
        Ok(writer)
    }

    /// How many lines could not be written so far.
    pub fn lost_lines(&self) -> u64 {
        self.lost_lines
    }

    /// Where the previous file goes when rolling: `PATH.1`.
    pub fn rolled_path(&self) -> PathBuf {
        let mut rolled = self.path.clone().into_os_string();
        rolled.push(".1");
        PathBuf::from(rolled)
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        let metadata = file.metadata()?;
        self.size = metadata.len();
        self.identity = Some((metadata.dev(), metadata.ino()));
        self.file = Some(file);
        Ok(())
    }

    /// Whether `path` no longer names the open file (removed, its directory removed, moved).
    fn open_file_was_removed(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(metadata) => self.identity != Some((metadata.dev(), metadata.ino())),
            Err(error) => error.kind() == io::ErrorKind::NotFound,
        }
    }

    fn roll(&mut self) {
        self.file = None;
        // Renaming over an existing PATH.1 is what keeps exactly one old file. If the rename
        // fails (the file is gone, say), appending to a fresh or the same file is still right.
        let _ = std::fs::rename(&self.path, self.rolled_path());
        self.size = 0;
    }

    fn write_line(&mut self, line: &[u8]) {
        let reopen_requests = self.reopen_requests.load(Ordering::SeqCst);
        if reopen_requests != self.reopen_requests_seen {
            // Asked for (SIGHUP, SIGUSR1): reopen by path, no note about a removed file.
            self.reopen_requests_seen = reopen_requests;
            self.file = None;
            self.removed = false;
            self.last_removal_check = Instant::now();
        }
        if self.file.is_some() && self.last_removal_check.elapsed() >= REMOVAL_CHECK {
            self.last_removal_check = Instant::now();
            if self.open_file_was_removed() {
                self.file = None;
                self.removed = true;
            }
        }
        let due = self.rotate_at.is_some_and(|limit| self.size >= limit);
        if self.file.is_some() && due {
            self.roll();
        }
        if self.file.is_none()
            && let Err(error) = self.reopen()
        {
            self.count_lost(&error);
            return;
        }
        if self.removed {
            self.removed = false;
            let note = format_line(
                Level::Warn,
                format_args!(
                    "Log file {} was removed or moved away; reopened it (lines of the last second may be in the old file)",
                    self.path.display()
                ),
                &LocalTime::now(),
            );
            if let Err(error) = self.append(note.as_bytes()) {
                self.count_lost(&error);
                return;
            }
        }
        if self.lost_since_reported > 0 {
            let note = format_line(
                Level::Warn,
                format_args!(
                    "{} log lines could not be written to {}",
                    self.lost_since_reported,
                    self.path.display()
                ),
                &LocalTime::now(),
            );
            // Only the line itself counts as lost if this fails; the note is tried again.
            if let Err(error) = self.append(note.as_bytes()) {
                self.count_lost(&error);
                return;
            }
            self.lost_since_reported = 0;
        }
        if let Err(error) = self.append(line) {
            self.count_lost(&error);
        }
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("no open file"));
        };
        match file.write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                self.file = None;
                Err(error)
            }
        }
    }

    fn count_lost(&mut self, error: &io::Error) {
        if self.lost_since_reported == 0 {
            let note = format_line(
                Level::Error,
                format_args!(
                    "Cannot write to log file {}: {error}; lines are counted as lost until it works again",
                    self.path.display()
                ),
                &LocalTime::now(),
            );
            let _ = io::stderr().write_all(note.as_bytes());
        }
        self.lost_lines += 1;
        self.lost_since_reported += 1;
    }
}

impl Write for LogFileWriter {
    /// Takes the whole buffer (env_logger hands over one line at a time) and always reports
    /// success, so that logging can never stop the relay.
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.write_line(buffer);
        Ok(buffer.len())
    }

    /// Lines go straight to the file, unbuffered; nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(directory) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(directory)?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use std::os::unix::fs::PermissionsExt;

    fn at(offset_seconds: i64) -> LocalTime {
        LocalTime {
            year: 2016,
            month: 11,
            day: 24,
            hour: 6,
            minute: 7,
            second: 6,
            utc_offset_seconds: offset_seconds,
        }
    }

    fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
        // Counting forward from 1970 is slow but obviously right, which is the point here.
        let is_leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut days = 0;
        for y in 1970..year {
            days += if is_leap(y) { 366 } else { 365 };
        }
        for m in 1..month {
            days += month_days[usize::from(m - 1)] + i64::from(m == 2 && is_leap(year));
        }
        days + i64::from(day) - 1
    }

    #[test]
    fn timestamps_use_gos_layout() {
        assert_eq!(at(0).to_string(), "2016-11-24T06:07:06Z");
        assert_eq!(at(19_800).to_string(), "2016-11-24T06:07:06+05:30");
        assert_eq!(
            at(-3 * 3600 - 1800).to_string(),
            "2016-11-24T06:07:06-03:30"
        );
        assert_eq!(at(3600).to_string(), "2016-11-24T06:07:06+01:00");
        assert_eq!(at(-8 * 3600).to_string(), "2016-11-24T06:07:06-08:00");
        // Go drops the seconds of historical offsets like +00:19:32.
        assert_eq!(at(1172).to_string(), "2016-11-24T06:07:06+00:19");
    }

    #[test]
    fn lines_look_like_seelogs() {
        assert_eq!(
            format_line(Level::Info, "Initializing AWS X-Ray daemon 3.6.6", &at(0)),
            "2016-11-24T06:07:06Z [Info] Initializing AWS X-Ray daemon 3.6.6\n"
        );
        let names: Vec<&str> = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ]
        .into_iter()
        .map(level_name)
        .collect();
        assert_eq!(names, ["Trace", "Debug", "Info", "Warn", "Error"]);
        assert_eq!(
            format_line(Level::Error, format_args!("x={}", 1), &at(7200)),
            "2016-11-24T06:07:06+02:00 [Error] x=1\n"
        );
    }

    #[test]
    fn utc_breakdown() {
        assert_eq!(LocalTime::utc(1_479_967_626), at(0));
        assert_eq!(LocalTime::utc(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            LocalTime::utc(951_782_400).to_string(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(LocalTime::utc(-1).to_string(), "1969-12-31T23:59:59Z");
        for unix_seconds in [0, 68_169_600, 951_868_799, 1_709_251_199, 4_107_542_400] {
            let time = LocalTime::utc(unix_seconds);
            assert_eq!(
                days_from_civil(time.year, time.month, time.day),
                unix_seconds.div_euclid(86_400),
                "{time}"
            );
        }
    }

    #[test]
    fn local_time_agrees_with_its_own_offset() {
        for unix_seconds in [0, 1_479_967_626, 1_700_000_000, 1_720_000_000] {
            let local = LocalTime::at(unix_seconds);
            let local_seconds = days_from_civil(local.year, local.month, local.day) * 86_400
                + i64::from(local.hour) * 3600
                + i64::from(local.minute) * 60
                + i64::from(local.second);
            assert_eq!(
                local_seconds - local.utc_offset_seconds,
                unix_seconds,
                "{local}"
            );
        }
    }

    #[test]
    fn levels_resolve_like_the_original() {
        assert_eq!(resolve_level("prod", "prod"), (Level::Info, None));
        assert_eq!(resolve_level("prod", "dev"), (Level::Trace, None));
        assert_eq!(resolve_level("prod", "debug"), (Level::Debug, None));
        assert_eq!(resolve_level("prod", "info"), (Level::Info, None));
        assert_eq!(resolve_level("prod", "warn"), (Level::Warn, None));
        assert_eq!(resolve_level("warn", "error"), (Level::Error, None));
        assert_eq!(resolve_level("debug", "debug"), (Level::Debug, None));
        // An unknown flag value keeps the config's level.
        assert_eq!(
            resolve_level("warn", "loud"),
            (Level::Warn, Some("loud".to_string()))
        );
        // An unknown config value leaves the original's zero level, Trace, unless the flag fixes it.
        assert_eq!(
            resolve_level("loud", "loud"),
            (Level::Trace, Some("loud".to_string()))
        );
        assert_eq!(resolve_level("loud", "error"), (Level::Error, None));
        assert_eq!(
            resolve_level("loud", "quiet"),
            (Level::Trace, Some("quiet".to_string()))
        );
        assert_eq!(
            unknown_level_warning("loud", Level::Trace),
            "Log level \"loud\" is not one of dev, debug, info, warn, error, prod; logging at Trace"
        );
    }

    #[test]
    fn file_writer_appends_with_mode_0644_and_creates_the_directory() {
        let dir = TempDir::new("append");
        let path = dir.0.join("sub/dir/xray.log");
        {
            let mut writer = LogFileWriter::open(&path, None).unwrap();
            writer.write_all(b"one\n").unwrap();
        }
        let mut writer = LogFileWriter::open(&path, None).unwrap();
        writer.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // 0644 as asked for, less whatever the umask takes away.
        assert_eq!(mode & !0o644, 0, "mode {mode:o}");
        assert_eq!(mode & 0o600, 0o600, "mode {mode:o}");
        assert_eq!(writer.lost_lines(), 0);
    }

    #[test]
    fn opening_an_impossible_path_fails() {
        let dir = TempDir::new("impossible");
        let blocker = dir.0.join("file");
        std::fs::write(&blocker, "not a directory").unwrap();
        assert!(LogFileWriter::open(&blocker.join("xray.log"), None).is_err());
        let error = build_logger(&LogSetup {
            level: Level::Info,
            unknown_level: None,
            file: Some(blocker.join("xray.log")),
            rotation: true,
            console_is_stderr: false,
        })
        .err()
        .unwrap();
        assert!(
            error.to_string().starts_with(&format!(
                "Unable to open log file {}: ",
                blocker.join("xray.log").display()
            )),
            "{error}"
        );
    }

    #[test]
    fn rotation_keeps_one_old_file() {
        let dir = TempDir::new("rotate");
        let path = dir.0.join("xray.log");
        let mut writer = LogFileWriter::open(&path, Some(10)).unwrap();
        assert_eq!(writer.rolled_path(), dir.0.join("xray.log.1"));
        for line in ["aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n", "eeeeee\n"] {
            writer.write_all(line.as_bytes()).unwrap();
        }
        // Each file takes lines until it has reached 10 bytes: two of 7 bytes.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "eeeeee\n");
        assert_eq!(
            std::fs::read_to_string(dir.0.join("xray.log.1")).unwrap(),
            "cccccc\ndddddd\n"
        );
        assert!(!dir.0.join("xray.log.2").exists());
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 2);
    }

    #[test]
    fn rotation_counts_what_was_already_in_the_file() {
        let dir = TempDir::new("existing");
        let path = dir.0.join("xray.log");
        std::fs::write(&path, "0123456789old\n").unwrap();
        let mut writer = LogFileWriter::open(&path, Some(10)).unwrap();
        writer.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_to_string(writer.rolled_path()).unwrap(),
            "0123456789old\n"
        );
    }

    #[test]
    fn without_rotation_the_file_just_grows() {
        let dir = TempDir::new("no-rotate");
        let path = dir.0.join("xray.log");
        let mut writer = LogFileWriter::open(&path, None).unwrap();
        for _ in 0..5 {
            writer.write_all(b"0123456789\n").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 55);
        assert!(!writer.rolled_path().exists());
    }

    #[test]
    fn a_removed_log_directory_is_noticed_recreated_and_said() {
        let dir = TempDir::new("removed");
        let log_dir = dir.0.join("logs");
        let path = log_dir.join("xray.log");
        let mut writer = LogFileWriter::open(&path, None).unwrap();
        writer.write_all(b"before\n").unwrap();
        std::fs::remove_dir_all(&log_dir).unwrap();
        // Within the check interval the line goes to the unlinked file; after it, to a new one.
        std::thread::sleep(REMOVAL_CHECK + Duration::from_millis(100));
        writer.write_all(b"after\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(&format!(
                "[Warn] Log file {} was removed or moved away; reopened it (lines of the last second may be in the old file)",
                path.display()
            )),
            "{text}"
        );
        assert_eq!(lines[1], "after");
        assert_eq!(writer.lost_lines(), 0);
    }

    #[test]
    fn a_reopen_request_moves_the_next_line_to_a_new_file() {
        let dir = TempDir::new("reopen");
        let path = dir.0.join("xray.log");
        // Its own counter: the global one would make other tests' writers reopen too.
        static REQUESTS: AtomicU64 = AtomicU64::new(0);
        let mut writer = LogFileWriter::open_watching(&path, None, &REQUESTS).unwrap();
        writer.write_all(b"before\n").unwrap();
        let moved = dir.0.join("xray.log.1");
        std::fs::rename(&path, &moved).unwrap();
        REQUESTS.fetch_add(1, Ordering::SeqCst);
        writer.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "before\n");
        // At once, not at the next removal check, and without a note about a removed file.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
    }

    #[test]
    fn a_full_disk_loses_lines_without_failing() {
        let mut writer = LogFileWriter::open(Path::new("/dev/full"), None).unwrap();
        for _ in 0..3 {
            assert_eq!(writer.write(b"line\n").unwrap(), 5);
        }
        assert_eq!(writer.lost_lines(), 3);
    }

    #[test]
    fn lost_lines_are_counted_and_the_file_comes_back() {
        let dir = TempDir::new("recover");
        let log_dir = dir.0.join("logs");
        let path = log_dir.join("xray.log");
        let mut writer = LogFileWriter::open(&path, Some(5)).unwrap();
        writer.write_all(b"first line\n").unwrap();
        // The directory disappears and a plain file takes its name: rolling and reopening fail.
        std::fs::remove_dir_all(&log_dir).unwrap();
        std::fs::write(&log_dir, "in the way").unwrap();
        assert_eq!(writer.write(b"lost one\n").unwrap(), 9);
        writer.write_all(b"lost two\n").unwrap();
        assert_eq!(writer.lost_lines(), 2);
        // Once the path is usable again the writer recreates the directory and carries on.
        std::fs::remove_file(&log_dir).unwrap();
        writer.write_all(b"back\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(&format!(
                " [Warn] 2 log lines could not be written to {}",
                path.display()
            )),
            "{text}"
        );
        assert_eq!(lines[1], "back");
        assert_eq!(writer.lost_lines(), 2);
    }

    #[test]
    fn the_logger_writes_formatted_lines_to_its_file() {
        let dir = TempDir::new("logger");
        let path = dir.0.join("xray.log");
        let logger = build_logger(&LogSetup {
            level: Level::Debug,
            unknown_level: None,
            file: Some(path.clone()),
            rotation: true,
            console_is_stderr: false,
        })
        .unwrap();
        let record = |level: Level, target: &'static str, message: &str| {
            log::Log::log(
                &logger,
                &log::Record::builder()
                    .level(level)
                    .target(target)
                    .args(format_args!("{message}"))
                    .build(),
            );
        };
        record(Level::Debug, "xray_relay::receive", "kept");
        record(Level::Trace, "xray_relay::receive", "too verbose");
        record(Level::Info, "rustls::client", "dependency chatter");
        record(Level::Warn, "rustls::client", "dependency warning");
        record(Level::Info, "xray", "from the binary");
        let text = std::fs::read_to_string(&path).unwrap();
        let messages: Vec<&str> = text
            .lines()
            .map(|line| line.split_once(' ').unwrap().1)
            .collect();
        assert_eq!(
            messages,
            [
                "[Debug] kept",
                "[Warn] dependency warning",
                "[Info] from the binary"
            ]
        );
        let timestamp = text.split_once(' ').unwrap().0;
        assert_eq!(
            timestamp.len(),
            if timestamp.ends_with('Z') { 20 } else { 25 }
        );
    }

    #[test]
    fn startup_errors_go_to_the_log_file_too() {
        let dir = TempDir::new("startup");
        let path = dir.0.join("new/xray.log");
        let mut stderr = Vec::new();
        write_startup_error(&mut stderr, "Config Version is missing.", Some(&path));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with(" [Error] Config Version is missing.\n"),
            "{text}"
        );
        assert_eq!(String::from_utf8(stderr).unwrap(), text);
        let mut stderr = Vec::new();
        write_startup_error(&mut stderr, "only here", None);
        assert!(
            String::from_utf8(stderr)
                .unwrap()
                .ends_with(" [Error] only here\n")
        );
    }
}
