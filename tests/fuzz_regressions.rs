//! Replays every fuzz seed and every input a fuzzer found a problem with (tests/fuzz/seeds/TARGET,
//! tests/fuzz/regressions/TARGET) through the fuzz targets' own checks (tests/fuzz/checks.rs),
//! so that plain `cargo test` keeps what fuzzing found fixed without nightly or libFuzzer.

#[path = "fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file under tests/fuzz/{seeds,regressions}/`target`; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut count = 0;
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path)
                .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its fuzz check", path.display());
            count += 1;
        }
    }
    assert!(
        count > 0,
        "no seeds or regressions for {target} under {}",
        root.display()
    );
    count
}

#[test]
fn datagram_inputs() {
    replay("datagram", checks::datagram);
}

#[test]
fn config_inputs() {
    replay("config", checks::config);
}

#[test]
fn cli_inputs() {
    replay("cli", checks::cli);
}

#[test]
fn proxy_request_inputs() {
    replay("proxy_request", checks::proxy_request);
}

#[test]
fn xray_reply_inputs() {
    replay("xray_reply", checks::xray_reply);
}

#[test]
fn profile_file_inputs() {
    replay("profile_file", checks::profile_file);
}

#[test]
fn spool_records_inputs() {
    replay("spool_records", checks::spool_records);
}

#[test]
fn sts_response_inputs() {
    replay("sts_response", checks::sts_response);
}

#[test]
fn credential_process_inputs() {
    replay("credential_process", checks::credential_process);
}

#[test]
fn credentials_document_inputs() {
    replay("credentials_document", checks::credentials_document);
}

#[test]
fn otlp_protobuf_inputs() {
    replay("otlp_protobuf", checks::otlp_protobuf);
}

#[test]
fn otlp_json_inputs() {
    replay("otlp_json", checks::otlp_json);
}

#[test]
fn otlp_translate_inputs() {
    replay("otlp_translate", checks::otlp_translate);
}
