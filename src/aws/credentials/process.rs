//! `credential_process`: a profile's command that prints credentials as JSON on stdout:
//! `{"Version": 1, "AccessKeyId": …, "SecretAccessKey": …, "SessionToken": …, "Expiration": …}`.
//!
//! The command runs through `sh -c`, as the Rust and Java SDKs run it on Unix. Its stderr is
//! left to the relay's stderr rather than quoted in errors (it could hold anything); its stdout
//! is never quoted either. A command that runs longer than a minute is killed.

use super::{Credentials, is_json_object};
use crate::aws::timestamp::parse_rfc3339;
use serde::Deserialize;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the command may run.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput {
    version: Option<serde_json::Value>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// Runs `command` and parses what it prints.
pub fn run_credential_process(command: &str) -> Result<Credentials, String> {
    run_with_timeout(command, PROCESS_TIMEOUT)
}

fn run_with_timeout(command: &str, timeout: Duration) -> Result<Credentials, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group, so that a timeout kills what the shell started too: a
        // grandchild left running would keep the pipe open.
        .process_group(0)
        .spawn()
        .map_err(|error| format!("cannot start `{command}`: {error}"))?;
    let Some(mut stdout) = child.stdout.take() else {
        return Err(format!("cannot read the output of `{command}`"));
    };
    let kill = |child: &mut std::process::Child| {
        if let Ok(group) = libc::pid_t::try_from(child.id()) {
            // SAFETY: plain syscall; the group is the child's own, made above.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    // Read on this thread, without blocking (a reader thread would outlive a timeout for as
    // long as anything holds the pipe open), so a chatty command cannot fill the pipe either.
    if let Err(error) = set_nonblocking(&stdout) {
        kill(&mut child);
        return Err(format!("cannot read the output of `{command}`: {error}"));
    }
    let deadline = Instant::now() + timeout;
    let mut output = Vec::new();
    let mut open = true;
    let status = loop {
        if open {
            match read_available(&mut stdout, &mut output) {
                Ok(at_end) => open = !at_end,
                Err(error) => {
                    kill(&mut child);
                    return Err(format!("cannot read the output of `{command}`: {error}"));
                }
            }
            if output.len() > MAX_OUTPUT {
                kill(&mut child);
                return Err(format!(
                    "`{command}` printed more than {} KB",
                    MAX_OUTPUT / 1024
                ));
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                // What it wrote before exiting is in the pipe.
                if open && let Err(error) = read_available(&mut stdout, &mut output) {
                    return Err(format!("cannot read the output of `{command}`: {error}"));
                }
                break status;
            }
            Ok(None) if Instant::now() >= deadline => {
                kill(&mut child);
                return Err(format!(
                    "`{command}` did not finish within {} s and was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => {
                let wait = deadline
                    .saturating_duration_since(Instant::now())
                    .min(POLL_INTERVAL);
                if open {
                    wait_readable(&stdout, wait);
                } else {
                    std::thread::sleep(wait);
                }
            }
            Err(error) => {
                kill(&mut child);
                return Err(format!("cannot wait for `{command}`: {error}"));
            }
        }
    };
    if !status.success() {
        return Err(format!(
            "`{command}` failed ({status}); see its messages on stderr"
        ));
    }
    let text = String::from_utf8(output)
        .map_err(|_| format!("`{command}` printed something that is not UTF-8"))?;
    parse_process_output(&text).map_err(|error| format!("`{command}`: {error}"))
}

/// The most output a command may print: credentials take a few hundred bytes.
const MAX_OUTPUT: usize = 1024 * 1024;

/// How often a running command is checked on when it prints nothing.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

fn set_nonblocking(pipe: &ChildStdout) -> std::io::Result<()> {
    let fd = pipe.as_raw_fd();
    // SAFETY: fd is the open pipe `pipe` owns; F_GETFL/F_SETFL only change its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Appends what the pipe holds now; `true` once the writing end is closed.
fn read_available(pipe: &mut ChildStdout, output: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut buffer = [0u8; 4096];
    loop {
        match pipe.read(&mut buffer) {
            Ok(0) => return Ok(true),
            Ok(count) => output.extend_from_slice(&buffer[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        if output.len() > MAX_OUTPUT {
            return Ok(false);
        }
    }
}

/// Waits until the pipe has something to read (or is closed), at most `wait`.
fn wait_readable(pipe: &ChildStdout, wait: Duration) {
    let mut poll = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut poll, 1, millis) };
}

/// Parses the command's JSON; errors never quote it (it holds the secret).
pub fn parse_process_output(text: &str) -> Result<Credentials, String> {
    if !is_json_object(text) {
        return Err("its output is not the expected JSON (not a JSON object)".to_owned());
    }
    let output: ProcessOutput = serde_json::from_str(text)
        .map_err(|error| format!("its output is not the expected JSON ({error})"))?;
    match output.version {
        Some(serde_json::Value::Number(version)) if version.as_u64() == Some(1) => {}
        Some(other) => {
            return Err(format!(
                "its output has Version {other}; only 1 is supported"
            ));
        }
        None => return Err("its output has no Version (expected 1)".to_owned()),
    }
    let access_key_id = output
        .access_key_id
        .filter(|value| !value.is_empty())
        .ok_or("its output has no AccessKeyId")?;
    let secret_access_key = output
        .secret_access_key
        .filter(|value| !value.is_empty())
        .ok_or("its output has no SecretAccessKey")?;
    let credentials = Credentials::new(
        access_key_id,
        secret_access_key,
        output.session_token.filter(|token| !token.is_empty()),
    );
    match output.expiration {
        Some(expiration) => Ok(credentials.expiring_at(
            parse_rfc3339(&expiration).map_err(|error| format!("its Expiration: {error}"))?,
        )),
        None => Ok(credentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_long_lived_and_temporary_output() {
        let long_lived =
            parse_process_output(r#"{"Version":1,"AccessKeyId":"AKIA1","SecretAccessKey":"s1"}"#)
                .unwrap();
        assert_eq!(long_lived.access_key_id, "AKIA1");
        assert_eq!(long_lived.session_token, None);
        assert_eq!(long_lived.expires_at, None);
        let temporary = parse_process_output(
            r#"{"Version":1,"AccessKeyId":"ASIA2","SecretAccessKey":"s2","SessionToken":"t2","Expiration":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(temporary.session_token.as_deref(), Some("t2"));
        assert_eq!(
            temporary.expires_at,
            Some(parse_rfc3339("2030-01-01T00:00:00Z").unwrap())
        );
    }

    #[test]
    fn bad_output_is_explained_without_quoting_it() {
        let cases = [
            ("not json topsecret", "not the expected JSON"),
            (
                r#"[1, "AKIA", "topsecret", null, null]"#,
                "not a JSON object",
            ),
            (
                r#"{"AccessKeyId":"A","SecretAccessKey":"topsecret"}"#,
                "no Version",
            ),
            (
                r#"{"Version":2,"AccessKeyId":"A","SecretAccessKey":"topsecret"}"#,
                "Version 2",
            ),
            (
                r#"{"Version":"1","AccessKeyId":"A","SecretAccessKey":"topsecret"}"#,
                "Version \"1\"",
            ),
            (
                r#"{"Version":1,"SecretAccessKey":"topsecret"}"#,
                "no AccessKeyId",
            ),
            (
                r#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":""}"#,
                "no SecretAccessKey",
            ),
            (
                r#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"topsecret","Expiration":"later"}"#,
                "its Expiration",
            ),
        ];
        for (output, expected) in cases {
            let error = parse_process_output(output).unwrap_err();
            assert!(error.contains(expected), "{output}: {error}");
            assert!(!error.contains("topsecret"), "{error}");
        }
    }

    #[test]
    fn runs_the_command_through_the_shell() {
        let credentials = run_credential_process(
            r#"printf '%s' '{"Version": 1, "AccessKeyId": "AKIAPROC", "SecretAccessKey": "proc-secret"}'"#,
        )
        .unwrap();
        assert_eq!(credentials.access_key_id, "AKIAPROC");
    }

    #[test]
    fn a_failing_command_is_named_with_its_status() {
        let error = run_credential_process("echo topsecret; exit 3").unwrap_err();
        assert!(error.contains("`echo topsecret; exit 3` failed"), "{error}");
        assert!(error.contains('3'), "{error}");
        let error = run_credential_process("echo '{\"Version\":1}'").unwrap_err();
        assert!(error.contains("no AccessKeyId"), "{error}");
    }

    #[test]
    fn a_timeout_kills_what_the_command_started_and_leaves_nothing_reading() {
        let dir = crate::test_support::TempDir::new("process-group");
        let pid_file = dir.0.join("pid");
        let started = Instant::now();
        let command = format!("sleep 30 & echo $! > '{}'; wait", pid_file.display());
        let error = run_with_timeout(&command, Duration::from_millis(300)).unwrap_err();
        assert!(error.contains("did not finish"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // The grandchild, which held the pipe open, is gone (or a zombie awaiting its reaper).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .ok()
                .and_then(|stat| stat.rsplit_once(") ")?.1.chars().next());
            if matches!(state, None | Some('Z')) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sleep {pid} still runs ({state:?})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn chatty_and_huge_outputs_are_read_or_refused() {
        // More than a pipe holds, then the credentials: read while it runs, not after.
        let command = r#"head -c 200000 /dev/zero | tr '\0' ' '; printf '%s' '{"Version": 1, "AccessKeyId": "AKIACHATTY", "SecretAccessKey": "s"}'"#;
        let credentials = run_with_timeout(command, Duration::from_secs(10)).unwrap();
        assert_eq!(credentials.access_key_id, "AKIACHATTY");
        let error =
            run_with_timeout("head -c 3000000 /dev/zero", Duration::from_secs(10)).unwrap_err();
        assert!(error.contains("printed more than"), "{error}");
    }

    #[test]
    fn a_command_that_hangs_is_killed() {
        let started = Instant::now();
        let error = run_with_timeout("sleep 30", Duration::from_millis(300)).unwrap_err();
        assert!(error.contains("did not finish"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
