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
use std::process::{Command, Stdio};
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
        .spawn()
        .map_err(|error| format!("cannot start `{command}`: {error}"))?;
    let Some(mut stdout) = child.stdout.take() else {
        return Err(format!("cannot read the output of `{command}`"));
    };
    // Read on another thread so a chatty command cannot fill the pipe and stall while we wait.
    let reader = std::thread::spawn(move || {
        let mut output = Vec::new();
        stdout.read_to_end(&mut output).map(|_| output)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{command}` did not finish within {} s and was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("cannot wait for `{command}`: {error}")),
        }
    };
    let output = reader
        .join()
        .map_err(|_| format!("reading the output of `{command}` failed"))?
        .map_err(|error| format!("cannot read the output of `{command}`: {error}"))?;
    if !status.success() {
        return Err(format!(
            "`{command}` failed ({status}); see its messages on stderr"
        ));
    }
    let text = String::from_utf8(output)
        .map_err(|_| format!("`{command}` printed something that is not UTF-8"))?;
    parse_process_output(&text).map_err(|error| format!("`{command}`: {error}"))
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
    fn a_command_that_hangs_is_killed() {
        let started = Instant::now();
        let error = run_with_timeout("sleep 30", Duration::from_millis(300)).unwrap_err();
        assert!(error.contains("did not finish"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
