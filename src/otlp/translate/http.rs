//! The `http` block, from the old (`http.method`, `http.status_code`, …) and the stable
//! (`http.request.method`, `http.response.status_code`, `url.full`, …) HTTP conventions.

use super::json::Object;
use super::span::{Attributes, SpanKind};
use super::truncated;
use std::borrow::Cow;

/// Appends the `http` block's value to `out` and says whether there was one (nothing is
/// written when the span has nothing of HTTP); and gives the response status.
pub fn write(
    attributes: &Attributes<'_>,
    kind: SpanKind,
    out: &mut Vec<u8>,
) -> (bool, Option<i64>) {
    let method = attributes.text_ref(&["http.request.method", "http.method"]);
    // Without a method the span is not an HTTP call: its `server.address` is a database's or
    // a queue's, and no URL is made of it.
    let url = url(attributes, kind, method.is_some());
    let client_ip = match kind {
        SpanKind::Server => attributes.text_ref(&[
            "http.client_ip",
            "client.address",
            "net.peer.ip",
            "net.sock.peer.addr",
        ]),
        _ => attributes.text_ref(&["http.client_ip"]),
    };
    let user_agent = attributes.text_ref(&["user_agent.original", "http.user_agent"]);
    let status = attributes.int(&["http.response.status_code", "http.status_code"]);
    let length = attributes.int(&[
        "http.response.body.size",
        "http.response_content_length",
        "http.response_content_length_uncompressed",
    ]);
    // Members in key order, as a map would hold them.
    let mut http = Object::begin(out);
    let mut request = http.object(out, "request");
    for (key, value) in [
        ("client_ip", client_ip),
        ("method", method),
        ("url", url),
        ("user_agent", user_agent),
    ] {
        request.text(out, key, value.as_deref().map(truncated));
    }
    request.end_in(&mut http, out);
    let mut response = http.object(out, "response");
    response.int(out, "content_length", length);
    response.int(out, "status", status);
    response.end_in(&mut http, out);
    (http.end(out), status)
}

/// The request URL: `url.full` / `http.url`, else rebuilt from scheme, host, port and target
/// (a SERVER span usually has only those) when `rebuild`.
fn url<'a>(attributes: &'a Attributes<'_>, kind: SpanKind, rebuild: bool) -> Option<Cow<'a, str>> {
    if let Some(full) = attributes.text_ref(&["url.full", "http.url"]) {
        return Some(full);
    }
    if !rebuild {
        return None;
    }
    let host = match attributes.text(&["http.host"]) {
        Some(host) => host,
        None => {
            let (name_keys, port_keys): (&[&str], &[&str]) = match kind {
                SpanKind::Server => (
                    &["server.address", "http.server_name", "net.host.name"],
                    &["server.port", "net.host.port"],
                ),
                _ => (
                    &["server.address", "net.peer.name"],
                    &["server.port", "net.peer.port"],
                ),
            };
            let name = attributes.text(name_keys)?;
            match attributes.int(port_keys) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        }
    };
    let scheme = attributes.text(&["url.scheme", "http.scheme"]);
    let target = attributes
        .text(&["http.target"])
        .or_else(|| {
            let path = attributes.text(&["url.path"])?;
            Some(match attributes.text(&["url.query"]) {
                Some(query) if !query.is_empty() => format!("{path}?{query}"),
                _ => path,
            })
        })
        .unwrap_or_default();
    Some(Cow::Owned(format!(
        "{}://{host}{target}",
        scheme.as_deref().unwrap_or("http")
    )))
}
