//! What /proc says about the relay process and the host's UDP counters.

use std::collections::BTreeMap;
use std::fs;

/// Clock ticks per second of utime/stime.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// CPU time of a process and all its threads, living or exited, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// In the program (utime).
    pub user_us: u64,
    /// In the kernel on the program's behalf: system calls, page faults, and the network
    /// stack's work done in its context (stime).
    pub system_us: u64,
}

impl CpuTime {
    /// User + system.
    pub fn total_us(self) -> u64 {
        self.user_us + self.system_us
    }

    /// The time spent since `earlier`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us.saturating_sub(earlier.user_us),
            system_us: self.system_us.saturating_sub(earlier.system_us),
        }
    }
}

/// CPU time of process `pid` and all its threads, living or exited.
pub fn cpu_time(pid: u32) -> Option<CpuTime> {
    stat_cpu_time(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time of the living threads of `pid` whose name starts with `prefix` (`receiver`,
/// `uploader-`), in µs: where the relay's time goes, by stage. From `schedstat` (nanoseconds on
/// the CPU) rather than `stat`, whose clock ticks are sampled: with work spread over eight
/// uploaders, each thread's few ticks say little.
pub fn threads_cpu_us(pid: u32, prefix: &str) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let name = fs::read_to_string(task.path().join("comm")).ok()?;
            if !name.starts_with(prefix) {
                return None;
            }
            let schedstat = fs::read_to_string(task.path().join("schedstat")).ok()?;
            let on_cpu_ns: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
            Some(on_cpu_ns / 1000)
        })
        .sum()
}

/// utime and stime of a /proc `stat` line.
fn stat_cpu_time(stat: &str) -> Option<CpuTime> {
    // Fields after the command name, which may contain spaces, start with the state (field 3).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let us = |ticks: u64| ticks * 1_000_000 / ticks_per_second();
    Some(CpuTime {
        user_us: us(utime),
        system_us: us(stime),
    })
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, field).map(|kb| kb * 1024)
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Context switches (voluntary + involuntary) per thread, keyed by "tid name".
pub fn context_switches(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(status) = fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let name = status_name(&status);
        let switches = status_field(&status, "voluntary_ctxt_switches").unwrap_or(0)
            + status_field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
        out.insert(
            format!("{} {name}", task.file_name().to_string_lossy()),
            switches,
        );
    }
    out
}

fn status_name(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The host's UDP `RcvbufErrors` (datagrams the kernel dropped for a full socket buffer) and
/// `InErrors`, from /proc/net/snmp.
pub fn udp_receive_errors() -> Option<(u64, u64)> {
    let snmp = fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some((get("RcvbufErrors")?, get("InErrors")?))
}

/// The 1-minute load average.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_user_and_system_time_after_a_name_with_spaces_and_parentheses() {
        // Fields 14 and 15 (utime, stime) are 250 and 50 ticks.
        let stat = "42 (up (load) 1) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 15 0";
        let ticks = ticks_per_second();
        assert_eq!(
            stat_cpu_time(stat),
            Some(CpuTime {
                user_us: 250 * 1_000_000 / ticks,
                system_us: 50 * 1_000_000 / ticks,
            })
        );
        assert_eq!(stat_cpu_time("42 (truncated) S 1 2"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_some());
        assert!(status_bytes(pid, "VmRSS").unwrap() > 0);
        assert!(status_bytes(pid, "VmHWM").unwrap() > 0);
        assert!(!context_switches(pid).is_empty());
        assert!(udp_receive_errors().is_some());
    }
}
