//! The fuzz targets' bodies: what each feeds a parser and the invariants it asserts.
//!
//! Shared by the cargo-fuzz targets (`fuzz_targets/*.rs`, one line each) and by the relay's
//! ordinary `cargo test` (`tests/fuzz_regressions.rs`), which replays every committed seed and
//! regression input through the same function. A panic is a finding.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use xray_relay::aws::backend_error::BackendError;
use xray_relay::aws::credentials::{Credentials, parse_credentials_document, parse_process_output};
use xray_relay::aws::profile::{ProfileFileKind, parse_profile_file};
use xray_relay::aws::sts::{parse_credentials, parse_error};
use xray_relay::batch::{parse_put_trace_segments_reply, push_json_string, segment_ids};
use xray_relay::cli::parse;
use xray_relay::config::{SUPPORTED_VERSIONS, load_text, validate_text};
use xray_relay::datagram::segment_body;
use xray_relay::otlp::{gzip, json, protobuf, schema, split, translate};
use xray_relay::proxy::request::{HeadLimits, Reader};
use xray_relay::retry::{unprocessed_is_transient, verdict};
use xray_relay::spool::{crc32, read_bytes};

/// The UDP datagram split (`datagram::segment_body`): any bytes a local process sends to :2000,
/// and the upload's escaping of the body it keeps (`batch::push_json_string`).
/// Invariants: an accepted body is the datagram's non-empty tail after the first newline, kept
/// whatever it holds (as the original daemon keeps it); escaped, any body is one valid JSON
/// string holding its text with one U+FFFD for each byte that is not UTF-8 (as Go's does).
pub fn datagram(data: &[u8]) {
    if let Ok(body) = segment_body(data) {
        let newline = data
            .iter()
            .position(|&b| b == b'\n')
            .expect("accepted without a newline");
        assert_eq!(
            body,
            &data[newline + 1..],
            "the body is not the tail after the first newline"
        );
        assert!(!body.is_empty(), "accepted an empty body");
    }
    let mut escaped = Vec::new();
    push_json_string(&mut escaped, data);
    let decoded: String =
        serde_json::from_slice(&escaped).expect("the escaped document is not a JSON string");
    let expected: String = data
        .utf8_chunks()
        .flat_map(|chunk| {
            let replaced = "\u{FFFD}".repeat(chunk.invalid().len());
            [chunk.valid().to_owned(), replaced]
        })
        .collect();
    assert_eq!(
        decoded, expected,
        "the escaped document decodes to other text"
    );
}

/// cfg.yaml: loading (types, defaults, Version) and the strict key validation of `-c`.
/// Invariant: neither panics, whatever the text; a loaded file has a supported Version.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/cfg.yaml");
    let _ = validate_text(text, path);
    if let Ok(config) = load_text(text, path) {
        assert!(
            SUPPORTED_VERSIONS.contains(&config.version),
            "loaded Version {}",
            config.version
        );
    }
}

/// The command line normaliser (`cli::parse`): Go-flag spellings → argh. Arguments are the
/// input split at NUL bytes. Invariant: no panic, and every refusal is one of the normaliser's
/// own messages: an argh error would mean the two disagree on a line the normaliser let through.
pub fn cli(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<String> = text.split('\0').map(str::to_owned).collect();
    if let Err(error) = parse(&args) {
        let message = error.to_string();
        assert!(
            OWN_MESSAGES.iter().any(|own| message.starts_with(own)),
            "argh refused what the normaliser passed: {args:?} → {message}"
        );
    }
}

const OWN_MESSAGES: [&str; 5] = [
    "bad flag syntax: ",
    "flag provided but not defined: ",
    "invalid boolean value ",
    "flag needs an argument: ",
    "invalid value ",
];

/// The proxy's request reader (`proxy::request::Reader`): heads through httparse and our own
/// checks (target form, Content-Length, Connection, Expect), then bodies, pipelined on one
/// connection, as any local process can send them to the TCP port.
/// Invariant: no panic; a head keeps within the header limit, its target is an origin-form
/// path, and a body is exactly its Content-Length.
pub fn proxy_request(data: &[u8]) {
    let mut io = data;
    let mut reader = Reader::new();
    loop {
        let Ok(head) = ready(reader.head(&mut io, &LIMITS, Duration::from_secs(5))) else {
            return;
        };
        assert!(head.headers.len() <= LIMITS.max_headers);
        assert!(head.target.starts_with('/'), "target {:?}", head.target);
        let _ = (head.path(), head.header("host"));
        if head.content_length > MAX_BODY {
            return;
        }
        let length = usize::try_from(head.content_length).expect("1 MB fits in usize");
        match ready(reader.body(&mut io, length, Duration::from_secs(10))) {
            Ok(body) => assert_eq!(body.len(), length),
            Err(_) => return,
        }
    }
}

/// The proxy's defaults (README: 16 KB / 64 headers, 1 MB body).
const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 16 * 1024,
    max_headers: 64,
    timeout: Duration::from_secs(5),
};
const MAX_BODY: u64 = 1024 * 1024;

/// Runs a future whose reads never wait (the connection is a byte slice in memory).
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match Pin::as_mut(&mut future).poll(&mut context) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("a read from memory waited"),
    }
}

/// What the relay reads back from X-Ray (or anything answering at its endpoint): the
/// PutTraceSegments reply's UnprocessedTraceSegments, error bodies with their
/// x-amzn-ErrorType header, and the segment ids read for log lines. The first two bytes pick
/// the status; the header is the text up to the first NUL, the body the rest.
/// Invariant: no panic; an error's message stays bounded when the body is not JSON, and the
/// retry verdict and the log line can always be made.
pub fn xray_reply(data: &[u8]) {
    let Some((status, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = 100 + u16::from_le_bytes(*status) % 500;
    let (header, body) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (std::str::from_utf8(&rest[..nul]).ok(), &rest[nul + 1..]),
        None => (None, rest),
    };
    for unprocessed in parse_put_trace_segments_reply(body) {
        let _ = unprocessed_is_transient(unprocessed.error_code.as_deref());
    }
    let _ = segment_ids(body);
    let error = BackendError::from_response(status, header, header, body);
    let _ = (
        verdict(&error),
        error.class(),
        error.to_string(),
        error.sdk_text("PutTraceSegments"),
    );
    if let BackendError::Http { message, .. } = &error {
        assert!(
            message.chars().count() <= body.len().max(512),
            "message longer than the body"
        );
    }
}

/// The shared AWS config and credentials files (`aws::profile::parse_profile_file`), both
/// kinds, and the lookups the credential chain makes on the result.
/// Invariant: no panic; merging a file's profiles over themselves changes nothing.
pub fn profile_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for kind in [ProfileFileKind::Credentials, ProfileFileKind::Config] {
        let Ok(set) = parse_profile_file(text, kind, Path::new("/fuzz/file")) else {
            continue;
        };
        let mut merged = set.clone();
        merged.merge(set.clone());
        assert_eq!(merged, set, "merging a profile set over itself changed it");
        for name in ["default", "dev", "a"] {
            if let Some(profile) = set.profile(name) {
                let _ = (
                    profile.get("aws_access_key_id"),
                    profile.property("region"),
                    profile.is_empty(),
                );
            }
        }
    }
}

/// Spool files (`spool::read_bytes`): what replay reads back from disk after a crash, a torn
/// write or a damaged disk.
///
/// First byte even: the rest is a file's contents after the `XRSPOOL1` header; no panic.
/// First byte odd: the rest is documents separated by NUL, written as records the way the
/// spool writes them, then one record's length field is overwritten with the next four bytes
/// of input. Invariant: every record before the damaged one is read back exactly, and every
/// record after it too (the reader resynchronises on the next record marker).
pub fn spool_records(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut file = b"XRSPOOL1".to_vec();
    if mode % 2 == 0 {
        file.extend_from_slice(rest);
        let mut total = 0;
        let report = read_bytes(&file, |document| total += document.len()).expect("has a header");
        assert!(total <= rest.len());
        assert!(report.records as usize * 11 <= rest.len());
        return;
    }
    let Some((damage, rest)) = rest.split_first_chunk::<5>() else {
        return;
    };
    // Documents never contain a marker themselves: a document that embeds a whole valid record
    // could legitimately be read as one after damage.
    let documents: Vec<&[u8]> = rest
        .split(|&b| b == 0)
        .filter(|d| !d.is_empty() && !d.windows(2).any(|w| w == b"XR") && !d.ends_with(b"X"))
        .take(32)
        .collect();
    if documents.is_empty() {
        return;
    }
    let damaged = usize::from(damage[0]) % documents.len();
    let mut offsets = Vec::new();
    for document in &documents {
        offsets.push(file.len());
        record(&mut file, document);
    }
    let length_field = offsets[damaged] + 2;
    let new_length = [damage[1], damage[2], damage[3], damage[4]];
    let changed = file[length_field..length_field + 4] != new_length;
    file[length_field..length_field + 4].copy_from_slice(&new_length);
    let mut read: Vec<Vec<u8>> = Vec::new();
    read_bytes(&file, |document| read.push(document.to_vec())).expect("has a header");
    let expected: Vec<&[u8]> = documents
        .iter()
        .enumerate()
        .filter(|(i, _)| !changed || *i != damaged)
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(
        read, expected,
        "records lost or invented around damage to record {damaged}"
    );
}

fn record(out: &mut Vec<u8>, document: &[u8]) {
    out.extend_from_slice(b"XR");
    out.extend_from_slice(&(document.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(document).to_le_bytes());
    out.extend_from_slice(document);
}

/// STS answers (`aws::sts::parse_credentials`, `parse_error`): the XML of AssumeRole and
/// AssumeRoleWithWebIdentity, or an ErrorResponse, from STS or whatever answers at its endpoint.
/// Invariant: no panic; parsed credentials have a non-blank key id, secret and session token
/// and an expiry (STS only hands out temporary credentials).
pub fn sts_response(data: &[u8]) {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(credentials) = parse_credentials(xml) {
        assert_usable(&credentials);
        assert!(
            credentials
                .session_token
                .as_deref()
                .is_some_and(|token| !token.trim().is_empty()),
            "STS credentials without a session token"
        );
        assert!(
            credentials.expires_at.is_some(),
            "STS credentials without an expiry"
        );
    }
    if let Some((code, message)) = parse_error(xml) {
        let _ = (code.len(), message.len());
    }
}

/// `credential_process` output (`credentials::parse_process_output`): whatever the profile's
/// command prints on stdout.
/// Invariant: no panic; success means the output is a JSON object whose `Version` is the
/// number 1, and the key id and secret are non-empty.
pub fn credential_process(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(credentials) = parse_process_output(text) else {
        return;
    };
    assert_usable(&credentials);
    assert_json_object(text);
    let version = serde_json::from_str::<VersionOnly>(text)
        .expect("accepted output whose Version cannot be read")
        .version;
    assert!(
        version.as_ref().and_then(serde_json::Value::as_u64) == Some(1),
        "accepted Version {version:?}"
    );
}

/// `Version` alone, other fields skipped as the parser skips them: serde_json does not check
/// `\u` surrogates in a skipped string, which a whole `serde_json::Value` would refuse
/// (`regressions/credentials_document/lone-surrogate-in-unknown-field`).
#[derive(serde::Deserialize)]
struct VersionOnly {
    #[serde(rename = "Version")]
    version: Option<serde_json::Value>,
}

/// Panics unless `text` is one JSON object (values skipped, not validated; see [`VersionOnly`]).
fn assert_json_object(text: &str) {
    let parsed =
        serde_json::from_str::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(text);
    assert!(
        parsed.is_ok(),
        "accepted something that is not a JSON object: {parsed:?}"
    );
}

/// The JSON credentials document of instance metadata (IMDS) and the container endpoint
/// (`credentials::parse_credentials_document`).
/// Invariant: no panic; success means the answer is a JSON object with non-empty keys.
pub fn credentials_document(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(credentials) = parse_credentials_document(text) else {
        return;
    };
    assert_usable(&credentials);
    assert_json_object(text);
}

fn assert_usable(credentials: &Credentials) {
    assert!(!credentials.access_key_id.is_empty(), "empty access key id");
    assert!(!credentials.secret_access_key.is_empty(), "empty secret");
    if let Some(token) = &credentials.session_token {
        assert!(!token.is_empty(), "empty session token kept");
    }
    let _ = format!("{credentials:?}");
}

/// OTLP protobuf bodies (`otlp::protobuf`, `otlp::split`, `otlp::gzip`): any bytes an OTLP
/// client posts. Invariants: an accepted request renders as OTLP JSON that reads back to the
/// same JSON; split chunks are valid requests holding every accepted span, within the limits
/// whenever they hold more than one span; gunzip never passes its limit.
pub fn otlp_protobuf(data: &[u8]) {
    if let Ok(body) = gzip::gunzip(data, 64 * 1024) {
        assert!(body.len() <= 64 * 1024, "gunzip passed its limit");
    }
    if protobuf::check(data, &schema::REQUEST).is_err() {
        return;
    }
    let mut rendered = String::new();
    protobuf::write_json(data, &schema::REQUEST, &mut rendered);
    let again = json::to_protobuf(rendered.as_bytes(), &schema::REQUEST)
        .unwrap_or_else(|error| panic!("our own JSON does not read back: {error}\n{rendered}"));
    let mut rendered_again = String::new();
    protobuf::write_json(&again, &schema::REQUEST, &mut rendered_again);
    assert_eq!(
        rendered, rendered_again,
        "JSON round trip changed the request"
    );
    let (max_bytes, max_spans) = (2000, 7);
    // A fixed "now", so a run is repeatable; spans out of X-Ray's times are refused.
    let cut = split::split(data, max_bytes, max_spans, Some(1_800_000_000_000_000_000));
    let mut spans = 0u64;
    for chunk in &cut.chunks {
        protobuf::check(&chunk.bytes, &schema::REQUEST).expect("a chunk is not a valid request");
        assert!(
            chunk.spans as usize <= max_spans,
            "a chunk has too many spans"
        );
        assert!(
            chunk.spans == 1 || chunk.bytes.len() <= max_bytes,
            "a chunk of {} spans has {} bytes",
            chunk.spans,
            chunk.bytes.len()
        );
        assert!(
            chunk.spans == 1 || split::within_window(chunk.first, chunk.last),
            "a chunk of {} spans spans {} ns",
            chunk.spans,
            chunk.last - chunk.first
        );
        spans += u64::from(chunk.spans);
    }
    assert_eq!(spans, cut.accepted, "spans lost or made up by the split");
}

/// OTLP JSON bodies (`otlp::json`). Invariants: whatever it accepts is a valid protobuf
/// request whose JSON rendering reads back to the same rendering.
pub fn otlp_json(data: &[u8]) {
    let Ok(bytes) = json::to_protobuf(data, &schema::REQUEST) else {
        return;
    };
    protobuf::check(&bytes, &schema::REQUEST).expect("accepted JSON made invalid protobuf");
    let mut rendered = String::new();
    protobuf::write_json(&bytes, &schema::REQUEST, &mut rendered);
    let again = json::to_protobuf(rendered.as_bytes(), &schema::REQUEST)
        .unwrap_or_else(|error| panic!("our own JSON does not read back: {error}\n{rendered}"));
    let mut rendered_again = String::new();
    protobuf::write_json(&again, &schema::REQUEST, &mut rendered_again);
    assert_eq!(
        rendered, rendered_again,
        "JSON round trip changed the request"
    );
}

/// The span → X-Ray document translator (`otlp::translate`): any bytes taken for an
/// `ExportTraceServiceRequest`. Invariants: every document is a JSON object under X-Ray's
/// 64 KB that X-Ray's rules take (see [`xray_document_problem`]); for a valid request, every
/// span is either a document or counted as refused.
pub fn otlp_translate(data: &[u8]) {
    let indexing = translate::Indexing {
        indexed: vec!["a".into(), "otel.resource.service.name".into()],
        all: data.first().is_some_and(|b| b & 1 == 1),
    };
    let mut out = translate::Translated::default();
    translate::request(data, &indexing, &mut out);
    for document in &out.documents {
        assert!(
            document.len() <= translate::MAX_DOCUMENT_BYTES,
            "a document of {} bytes",
            document.len()
        );
        let value: serde_json::Value =
            serde_json::from_slice(document).expect("a document is not JSON");
        if let Some(problem) = xray_document_problem(&value) {
            panic!("{problem}: {value}");
        }
    }
    if protobuf::check(data, &schema::REQUEST).is_ok() {
        let all = split::split(data, usize::MAX, usize::MAX, None);
        let spans = all.accepted + all.refused;
        assert_eq!(
            out.documents.len() as u64 + out.refused,
            spans,
            "spans lost or made up by the translation"
        );
    }
}

fn is_hex_id(value: &serde_json::Value) -> bool {
    value
        .as_str()
        .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What X-Ray would refuse in a translated document (its segment document rules), or `None`:
/// an id of 16 hex digits, an X-Ray trace id, a name of 1 to 200 characters that X-Ray
/// takes, a start time and either an end time not before it or `in_progress`; a subsegment
/// with its parent's id and no segment-only fields; annotation keys of 1 to 500 letters,
/// digits and `_` (at most 50) with scalar values; an integer HTTP status; exceptions with
/// ids, their causes pointing at written ones.
pub fn xray_document_problem(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let problem = |what: &str| Some(what.to_owned());
    if !is_hex_id(&value["id"]) {
        return problem("id is not 16 hex digits");
    }
    let trace = value["trace_id"].as_str().unwrap_or("");
    let parts: Vec<&str> = trace.split('-').collect();
    if !(parts.len() == 3
        && parts[0] == "1"
        && parts[1].len() == 8
        && parts[2].len() == 24
        && parts[1..]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit())))
    {
        return problem("trace_id is not 1-8hex-24hex");
    }
    let name = value["name"].as_str().unwrap_or("");
    if !(1..=200).contains(&name.chars().count()) || name.trim().is_empty() {
        return problem("the name is empty or over 200 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c))
    {
        return problem("the name has characters X-Ray refuses");
    }
    let Some(start) = value["start_time"].as_f64() else {
        return problem("no start_time");
    };
    match (value.get("end_time"), value.get("in_progress")) {
        (Some(end), None) if end.as_f64().is_some_and(|end| end >= start) => {}
        (None, Some(Value::Bool(true))) => {}
        _ => return problem("neither an end_time from start_time on nor in_progress"),
    }
    if let Some(parent) = value.get("parent_id")
        && !is_hex_id(parent)
    {
        return problem("parent_id is not 16 hex digits");
    }
    match value.get("type") {
        None => {}
        Some(Value::String(kind)) if kind == "subsegment" => {
            if value.get("parent_id").is_none() {
                return problem("a subsegment without parent_id");
            }
            if value.get("service").is_some() || value.get("origin").is_some() {
                return problem("a subsegment with segment-only fields");
            }
        }
        Some(_) => return problem("type is not subsegment"),
    }
    for flag in ["error", "throttle", "fault", "in_progress"] {
        if value.get(flag).is_some_and(|v| v != &Value::Bool(true)) {
            return problem("a flag that is not true");
        }
    }
    if let Some(annotations) = value.get("annotations") {
        let Some(annotations) = annotations.as_object() else {
            return problem("annotations is not an object");
        };
        if annotations.len() > 50 {
            return problem("more than 50 annotations");
        }
        for (key, value) in annotations {
            if !(1..=500).contains(&key.len())
                || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return problem("an annotation key X-Ray refuses");
            }
            match value {
                Value::String(text) if text.chars().count() <= 1000 => {}
                Value::Bool(_) | Value::Number(_) => {}
                _ => return problem("an annotation value that is not a scalar X-Ray takes"),
            }
        }
    }
    if let Some(status) = value.pointer("/http/response/status")
        && !status.is_i64()
    {
        return problem("http.response.status is not an integer");
    }
    if let Some(cause) = value.get("cause") {
        let Some(exceptions) = cause["exceptions"].as_array() else {
            return problem("cause without exceptions");
        };
        let ids: Vec<&Value> = exceptions.iter().map(|e| &e["id"]).collect();
        for exception in exceptions {
            if !is_hex_id(&exception["id"]) {
                return problem("an exception id is not 16 hex digits");
            }
            if let Some(cause) = exception.get("cause")
                && !ids.contains(&cause)
            {
                return problem("an exception's cause is not among the exceptions");
            }
        }
    }
    None
}
