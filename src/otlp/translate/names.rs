//! Identifiers and names: the X-Ray trace id of an OTel trace id, and the document's name
//! chosen by the reference exporter's rules, cleaned to the characters X-Ray accepts.

use super::json;
use super::span::{AnyValue, Attributes, SpanKind, hex, push_hex, push_hex_bytes};
use std::borrow::Cow;

/// X-Ray refuses names longer than this (characters).
pub const MAX_NAME_CHARS: usize = 200;

/// The name of a document whose every candidate is empty after cleaning.
pub const FALLBACK_NAME: &str = "span";

/// `1-<first 8 hex>-<last 24 hex>` of a 16-byte trace id; `None` for any other length or an
/// all-zero id (invalid in OTel). The first part is kept as it is even when it is not a
/// recent epoch: X-Ray no longer checks it, so W3C ids from OTel SDKs go through unchanged
/// and stay joinable with the trace id the application logged.
pub fn trace_id(id: &[u8]) -> Option<String> {
    if id.len() != 16 || id.iter().all(|&b| b == 0) {
        return None;
    }
    // One allocation of the final size, not three and a format.
    let mut out = String::with_capacity(35);
    out.push_str("1-");
    push_hex(&mut out, &id[..4]);
    out.push('-');
    push_hex(&mut out, &id[4..]);
    Some(out)
}

/// Appends [`trace_id`] as a JSON string; `false` (nothing written) when it has none.
pub fn write_trace_id(id: &[u8], out: &mut Vec<u8>) -> bool {
    if id.len() != 16 || id.iter().all(|&b| b == 0) {
        return false;
    }
    out.extend_from_slice(b"\"1-");
    push_hex_bytes(out, &id[..4]);
    out.push(b'-');
    push_hex_bytes(out, &id[4..]);
    out.push(b'"');
    true
}

/// A span id as X-Ray's 16 hex digits; `None` unless 8 bytes, not all zero.
pub fn span_id(id: &[u8]) -> Option<String> {
    is_span_id(id).then(|| hex(id))
}

fn is_span_id(id: &[u8]) -> bool {
    id.len() == 8 && id.iter().any(|&b| b != 0)
}

/// Appends [`span_id`] as a JSON string; `false` (nothing written) when it has none.
pub fn write_span_id(id: &[u8], out: &mut Vec<u8>) -> bool {
    if !is_span_id(id) {
        return false;
    }
    out.push(b'"');
    push_hex_bytes(out, id);
    out.push(b'"');
    true
}

/// Whether X-Ray takes `c` in a name: letters, digits, white space and `_ . : / % & # = + \ - @`.
fn allowed_in_name(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c)
}

/// `name` with the characters X-Ray refuses removed, cut to [`MAX_NAME_CHARS`] characters
/// (never inside a character); [`FALLBACK_NAME`] when nothing is left.
pub fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|&c| allowed_in_name(c))
        .take(MAX_NAME_CHARS)
        .collect();
    if cleaned.trim().is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        cleaned
    }
}

/// Appends [`clean_name`]`(name)` as a JSON string, without building it when the name is
/// clean already (nearly always).
pub fn write_clean_name(name: &str, out: &mut Vec<u8>) {
    let mut chars = 0;
    let clean = name.chars().all(|c| {
        chars += 1;
        chars <= MAX_NAME_CHARS && allowed_in_name(c)
    });
    if clean && !name.trim().is_empty() {
        json::string(out, name);
    } else {
        json::string(out, &clean_name(name));
    }
}

/// The host of a URL-like connection string (`scheme://user@host:port/db`), if any.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty() && url.contains("://")).then_some(host)
}

fn text<'a>(attributes: &'a Attributes<'_>, key: &str) -> Option<Cow<'a, str>> {
    attributes
        .peek(key)
        .and_then(AnyValue::text)
        .filter(|t| !t.trim().is_empty())
}

/// The document's name. A segment is named after the service it is (`service.name`), so the
/// service map shows services; a subsegment (or a segment without `service.name`) after
/// what it calls: `peer.service` (not for SERVER spans),
/// `aws.service` (or the `rpc.service` of an `aws-api` call), `<db.name>@<host>`,
/// `rpc.service`, the HTTP host (`http.host`, `server.address`, `net.peer.name`), and last
/// the span's name.
pub fn document_name(
    span_name: &str,
    kind: SpanKind,
    is_segment: bool,
    attributes: &Attributes<'_>,
    resource: &Attributes<'_>,
) -> String {
    clean_name(&chosen_name(
        span_name, kind, is_segment, attributes, resource,
    ))
}

/// [`document_name`] before cleaning.
pub fn chosen_name<'a>(
    span_name: &'a str,
    kind: SpanKind,
    is_segment: bool,
    attributes: &'a Attributes<'_>,
    resource: &'a Attributes<'_>,
) -> Cow<'a, str> {
    let service = || text(resource, "service.name");
    let aws_service = || {
        text(attributes, "aws.service").or_else(|| {
            (attributes.peek("rpc.system").and_then(AnyValue::as_str) == Some("aws-api"))
                .then(|| text(attributes, "rpc.service"))
                .flatten()
        })
    };
    let database = || {
        let db = text(attributes, "db.name").or_else(|| text(attributes, "db.namespace"))?;
        let host = text(attributes, "db.connection_string")
            .and_then(|url| url_host(&url).map(|host| Cow::Owned(host.to_owned())))
            .or_else(|| text(attributes, "server.address"))
            .or_else(|| text(attributes, "net.peer.name"));
        Some(match host {
            Some(host) => Cow::Owned(format!("{db}@{host}")),
            None => db,
        })
    };
    let host = || {
        text(attributes, "http.host")
            .or_else(|| text(attributes, "server.address"))
            .or_else(|| text(attributes, "net.peer.name"))
    };
    let called = || {
        // A SERVER span's `peer.service` names its caller, not itself.
        (kind != SpanKind::Server)
            .then(|| text(attributes, "peer.service"))
            .flatten()
            .or_else(aws_service)
            .or_else(database)
            .or_else(|| text(attributes, "rpc.service"))
            .or_else(host)
    };
    let chosen = if is_segment {
        service().or_else(called)
    } else {
        called()
    };
    chosen.unwrap_or(Cow::Borrowed(span_name))
}
