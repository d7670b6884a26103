//! Start-up of the `xray` binary with the configurations and command lines of issue 13: what the
//! original daemon (3.5.0 to 3.6.6) starts with starts the relay with the same meaning, and what
//! it refuses is refused in its words. The original's observed behaviour is written in as
//! fixtures; there is no Go toolchain in CI.

mod support;

use std::time::Duration;
use support::{MockXRay, Relay, RelayOptions, TempDir, run_to_end, segment};

const WAIT: Duration = Duration::from_secs(20);

const CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    ),
];

/// Runs the relay in local mode with `args` to its end; returns (exit code, stdout + stderr).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let (status, stdout, stderr) = run_to_end(args, &CREDENTIALS);
    (status.code(), format!("{stdout}{stderr}"))
}

#[test]
fn a_config_only_the_original_used_to_accept_uploads_as_it_means() {
    let xray = MockXRay::start();
    // The mock's address with a user and password, which the original's SDK drops.
    let endpoint = xray.endpoint().replace("http://", "http://user:pw@");
    let mut options = RelayOptions::uploading_to(&endpoint);
    // Support writes `Version: 2` first: the repeated keys below win, floats are truncated
    // toward zero, merge keys apply (and -c validation ignores the merged keys, as go-yaml v2
    // drops them from the MapSlice it lists keys from), and `yes` is a boolean.
    options.config.push_str(
        "Version: 2.0\n<<: {TotalBufferSizeMB: 16.7}\nConcurrency: 1.5\nConcurrency: 2.9\nLogging:\n  <<: {LogLevel: debug}\n  LogRotation: yes\n",
    );
    let relay = Relay::start(options);
    let sent = segment(1);
    relay.send_segment(&sent);
    let received = xray.wait_for_documents(1, WAIT);
    let (status, log) = relay.stop();
    assert!(status.success(), "exit status {status}\n{log}");
    assert_eq!(received, [sent], "{log}");
    assert!(log.contains("Using buffer memory limit of 16 MB"), "{log}");
    let request = &xray.requests()[0];
    assert!(request.header("authorization").is_some());
    assert_eq!(request.path, "/TraceSegments");
}

#[test]
fn a_bad_command_line_prints_the_error_to_stderr_and_the_usage_to_stdout() {
    let (status, stdout, stderr) = run_to_end(&["-x"], &[]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr, "flag provided but not defined: -x\n");
    assert!(stdout.starts_with("Usage: X-Ray [options]\n"), "{stdout}");
    assert!(
        stdout.contains("\t-h\t--help\t\tShow this screen\n"),
        "{stdout}"
    );
}

#[test]
fn a_nul_byte_in_the_config_is_refused_as_the_original_refuses_it() {
    let dir = TempDir::new("nul");
    let config = dir.path("cfg.yaml");
    std::fs::write(&config, "Version: 2\nRegion: us-east-1\0\n").unwrap();
    let (code, output) = refused(&["-o", "-c", config.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(
            "[Error] Error occur when using config flag: yaml: control characters are not allowed"
        ),
        "{output}"
    );
}

#[test]
fn a_quoted_yes_is_not_a_boolean() {
    let dir = TempDir::new("quoted-yes");
    let config = dir.path("cfg.yaml");
    std::fs::write(&config, "Version: 2\nLogging:\n  LogRotation: 'yes'\n").unwrap();
    let (code, output) = refused(&["-o", "-c", config.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("Error occur when using config flag: yaml: unmarshal errors:\n  line 3: cannot unmarshal !!str `yes` into bool"),
        "{output}"
    );
}

#[test]
fn endpoints_the_original_could_never_upload_to_are_refused_at_start() {
    for (endpoint, expected) in [
        (
            "xray.local",
            r#"Endpoint "xray.local" cannot be used: it needs an http:// or https:// scheme"#,
        ),
        ("ftp://x", r#"Endpoint "ftp://x" cannot be used: "#),
        (
            "127.0.0.1:4566",
            r#"Unable to start http proxy server: unable to parse xray endpoint: parse "127.0.0.1:4566": first path segment in URL cannot contain colon"#,
        ),
    ] {
        let dir = TempDir::new("endpoint");
        let config = dir.path("cfg.yaml");
        std::fs::write(&config, format!("Version: 2\nEndpoint: \"{endpoint}\"\n")).unwrap();
        let (code, output) = refused(&[
            "-o",
            "-n",
            "us-east-1",
            "-b",
            "127.0.0.1:0",
            "-c",
            config.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(1), "{endpoint}: {output}");
        assert!(output.contains(expected), "{endpoint}: {output}");
    }
}

#[test]
fn proxy_addresses_and_listen_addresses_are_refused_in_the_originals_words() {
    for (args, expected) in [
        (
            &["-p", "10.0.0.1:3128"][..],
            r#"[Error] Bad proxy URL: parse "10.0.0.1:3128": first path segment in URL cannot contain colon"#,
        ),
        (
            &["-p", "proxy:3128"][..],
            r#"[Error] Bad proxy URL: "proxy:3128" has no host"#,
        ),
        (
            &["-b", "127.0.0.1"][..],
            "[Error] address 127.0.0.1: missing port in address",
        ),
        (
            &["-b", "127.0.0.1:0", "-t", "::1:2000"][..],
            "[Error] address ::1:2000: too many colons in address",
        ),
    ] {
        let mut all = vec!["-o", "-n", "us-east-1"];
        all.extend_from_slice(args);
        let (code, output) = refused(&all);
        assert_eq!(code, Some(1), "{args:?}: {output}");
        assert!(output.contains(expected), "{args:?}: {output}");
    }
}

#[test]
fn a_directory_as_log_file_is_refused_with_gos_words() {
    let dir = TempDir::new("log-dir");
    let path = dir.0.to_str().unwrap();
    let (code, output) = refused(&["-o", "-n", "us-east-1", "-f", path]);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&format!(
            "[Error] Unable to open log file: open {path}: is a directory"
        )),
        "{output}"
    );
}

/// `-v` answers only after the `-c` file is validated and loaded, as in the original: exit 0
/// means the file was accepted.
#[test]
fn files_windows_editors_write_are_accepted() {
    let dir = TempDir::new("windows");
    let utf8_bom = dir.path("bom.yaml");
    std::fs::write(
        &utf8_bom,
        b"\xef\xbb\xbfRegion: us-west-2\r\nVersion: 2.0\r\n",
    )
    .unwrap();
    let utf16 = dir.path("utf16.yaml");
    let units: Vec<u8> = "Region: us-west-2\r\nVersion: 2\r\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(&utf16, [&[0xff, 0xfe][..], &units].concat()).unwrap();
    for file in [utf8_bom, utf16] {
        let (status, stdout, stderr) = run_to_end(&["-v", "-c", file.to_str().unwrap()], &[]);
        assert_eq!(
            status.code(),
            Some(0),
            "{}: {stdout}{stderr}",
            file.display()
        );
        assert!(stdout.starts_with("AWS X-Ray daemon version: "), "{stdout}");
    }
}

/// `-b ''`: the original's `net.ResolveUDPAddr("udp", "")` is the zero address, so it listens
/// on every interface on a port the kernel picks, and runs.
#[test]
fn an_empty_udp_address_listens_on_a_kernel_chosen_port_and_runs() {
    let xray = MockXRay::start();
    let mut options = RelayOptions::uploading_to(&xray.endpoint());
    options.args.extend(["-b".to_string(), String::new()]);
    let relay = Relay::start(options);
    assert_eq!(support::http_get(relay.tcp, "/healthz").status, 200);
    let (status, log) = relay.stop();
    assert!(status.success(), "exit status {status}\n{log}");
}
