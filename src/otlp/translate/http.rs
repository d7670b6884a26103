//! The `http` block, from the old (`http.method`, `http.status_code`, …) and the stable
//! (`http.request.method`, `http.response.status_code`, `url.full`, …) HTTP conventions.

use super::span::{Attributes, SpanKind};
use super::truncate;
use serde_json::{Map, Value};

/// The `http` block and the response status, or `None` when the span has nothing of HTTP.
pub fn block(attributes: &Attributes<'_>, kind: SpanKind) -> (Option<Value>, Option<i64>) {
    let mut request = Map::new();
    let mut response = Map::new();
    let put = |map: &mut Map<String, Value>, key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            map.insert(key.into(), Value::String(truncate(value)));
        }
    };
    let method = attributes.text(&["http.request.method", "http.method"]);
    // Without a method the span is not an HTTP call: its `server.address` is a database's or
    // a queue's, and no URL is made of it.
    let url = url(attributes, kind, method.is_some());
    put(&mut request, "method", method);
    put(&mut request, "url", url);
    let client_ip = match kind {
        SpanKind::Server => attributes.text(&[
            "http.client_ip",
            "client.address",
            "net.peer.ip",
            "net.sock.peer.addr",
        ]),
        _ => attributes.text(&["http.client_ip"]),
    };
    put(&mut request, "client_ip", client_ip);
    put(
        &mut request,
        "user_agent",
        attributes.text(&["user_agent.original", "http.user_agent"]),
    );
    let status = attributes.int(&["http.response.status_code", "http.status_code"]);
    if let Some(status) = status {
        response.insert("status".into(), Value::from(status));
    }
    let length = attributes.int(&[
        "http.response.body.size",
        "http.response_content_length",
        "http.response_content_length_uncompressed",
    ]);
    if let Some(length) = length {
        response.insert("content_length".into(), Value::from(length));
    }
    if request.is_empty() && response.is_empty() {
        return (None, status);
    }
    let mut http = Map::new();
    if !request.is_empty() {
        http.insert("request".into(), Value::Object(request));
    }
    if !response.is_empty() {
        http.insert("response".into(), Value::Object(response));
    }
    (Some(Value::Object(http)), status)
}

/// The request URL: `url.full` / `http.url`, else rebuilt from scheme, host, port and target
/// (a SERVER span usually has only those) when `rebuild`.
fn url(attributes: &Attributes<'_>, kind: SpanKind, rebuild: bool) -> Option<String> {
    if let Some(full) = attributes.text(&["url.full", "http.url"]) {
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
    Some(format!(
        "{}://{host}{target}",
        scheme.as_deref().unwrap_or("http")
    ))
}
