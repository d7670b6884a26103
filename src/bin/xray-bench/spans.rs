//! OTLP requests for the OpenTelemetry points: `ExportTraceServiceRequest`s in protobuf, one
//! `ResourceSpans` of `n` spans of about `size` bytes each, shaped like an instrumented web
//! service's (a SERVER span, then three CLIENT spans under it, with HTTP attributes of the
//! stable conventions, a few of the application's own, and a padding string).
//!
//! Built once; each request rewrites the ids in place. Span `seq` (0, 1, …) has the span id
//! `seq + 1` (an id of 0 is invalid), so the sinks read `seq` back from any span or document.

use xray_relay::otlp::protobuf::{I64, VARINT, put_bytes, put_tag, put_varint};

/// Where the ids and the padding of one span are in the request.
struct Ids {
    trace: usize,
    span: usize,
    parent: Option<usize>,
    /// The padding string's bytes.
    pad: std::ops::Range<usize>,
}

/// The padding is text of these words, drawn at random per span: about as compressible as
/// real spans (a request gzips to about a quarter), where a constant padding would gzip to
/// almost nothing and make every gzip step look free.
const WORDS: [&str; 64] = [
    "order",
    "item",
    "cart",
    "user",
    "session",
    "token",
    "request",
    "response",
    "cache",
    "miss",
    "hit",
    "retry",
    "timeout",
    "queue",
    "worker",
    "batch",
    "index",
    "shard",
    "replica",
    "leader",
    "commit",
    "rollback",
    "insert",
    "update",
    "select",
    "delete",
    "payment",
    "invoice",
    "refund",
    "stock",
    "warehouse",
    "shipping",
    "address",
    "customer",
    "account",
    "login",
    "logout",
    "search",
    "filter",
    "sort",
    "page",
    "limit",
    "offset",
    "cursor",
    "stream",
    "event",
    "metric",
    "trace",
    "span",
    "log",
    "alert",
    "error",
    "warning",
    "info",
    "debug",
    "config",
    "feature",
    "flag",
    "region",
    "zone",
    "host",
    "pod",
    "node",
    "cluster",
];

/// One request's bytes and where its ids are.
pub struct Requests {
    bytes: Vec<u8>,
    ids: Vec<Ids>,
}

fn key_value(key: &str, value: &[u8]) -> Vec<u8> {
    let mut kv = Vec::new();
    put_bytes(&mut kv, 1, key.as_bytes());
    put_bytes(&mut kv, 2, value);
    kv
}

fn string(text: &str) -> Vec<u8> {
    let mut any = Vec::new();
    put_bytes(&mut any, 1, text.as_bytes());
    any
}

fn int(value: i64) -> Vec<u8> {
    let mut any = Vec::new();
    put_tag(&mut any, 3, VARINT);
    put_varint(&mut any, value as u64);
    any
}

fn double(value: f64) -> Vec<u8> {
    let mut any = Vec::new();
    put_tag(&mut any, 4, I64);
    any.extend_from_slice(&value.to_le_bytes());
    any
}

/// A span with placeholder ids (all 0xee) and a padding attribute of `pad` bytes.
fn span(server: bool, pad: usize, start_ns: u64) -> Vec<u8> {
    let mut span = Vec::new();
    put_bytes(&mut span, 1, &[0xee; 16]);
    put_bytes(&mut span, 2, &[0xee; 8]);
    if !server {
        put_bytes(&mut span, 4, &[0xee; 8]);
    }
    put_bytes(
        &mut span,
        5,
        if server {
            b"POST /v1/orders/{id}/items"
        } else {
            b"GET"
        },
    );
    put_tag(&mut span, 6, VARINT);
    put_varint(&mut span, if server { 2 } else { 3 });
    put_tag(&mut span, 7, I64);
    span.extend_from_slice(&start_ns.to_le_bytes());
    put_tag(&mut span, 8, I64);
    span.extend_from_slice(&(start_ns + 5_000_000).to_le_bytes());
    let attributes: [(&str, Vec<u8>); 12] = [
        (
            "http.request.method",
            string(if server { "POST" } else { "GET" }),
        ),
        (
            "url.full",
            string("https://api.example.com/v1/orders/12345/items?expand=all"),
        ),
        ("server.address", string("api.example.com")),
        ("server.port", int(443)),
        ("http.response.status_code", int(200)),
        ("user_agent.original", string("python-requests/2.32.3")),
        ("network.protocol.version", string("1.1")),
        ("order.id", string("ord-0000000000012345")),
        ("order.items", int(7)),
        ("order.total", double(123.45)),
        ("customer.tier", string("gold")),
        ("payload", string(&"x".repeat(pad))),
    ];
    for (key, value) in attributes {
        put_bytes(&mut span, 9, &key_value(key, &value));
    }
    // Status OK.
    let mut status = Vec::new();
    put_tag(&mut status, 3, VARINT);
    put_varint(&mut status, 1);
    put_bytes(&mut span, 15, &status);
    span
}

/// A span of `size` bytes (the field's tag and length included), or the smallest there is.
fn sized_span(server: bool, size: usize, start_ns: u64) -> Vec<u8> {
    let bare = span(server, 0, start_ns).len() + 3;
    let mut pad = size.saturating_sub(bare);
    loop {
        let s = span(server, pad, start_ns);
        let with_field = s.len() + 1 + if s.len() < 128 { 1 } else { 2 };
        if with_field <= size || pad == 0 {
            return s;
        }
        pad -= 1;
    }
}

/// `position` of the first `needle` in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> usize {
    from + haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("placeholder present")
}

impl Requests {
    /// Requests of `spans` spans of about `size` bytes.
    pub fn new(spans: usize, size: usize) -> Requests {
        let start_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut scope = Vec::new();
        let mut name = Vec::new();
        put_bytes(&mut name, 1, b"xray-bench");
        put_bytes(&mut scope, 1, &name);
        let mut kinds = Vec::new();
        for n in 0..spans {
            let server = n % 4 == 0;
            kinds.push(server);
            put_bytes(&mut scope, 2, &sized_span(server, size, start_ns));
        }
        let mut resource = Vec::new();
        for (key, value) in [
            ("service.name", "checkout"),
            ("host.name", "ip-10-0-0-12"),
            ("cloud.provider", "aws"),
            ("cloud.platform", "aws_ec2"),
            ("cloud.region", "eu-west-1"),
        ] {
            put_bytes(&mut resource, 1, &key_value(key, &string(value)));
        }
        let mut resource_spans = Vec::new();
        put_bytes(&mut resource_spans, 1, &resource);
        put_bytes(&mut resource_spans, 2, &scope);
        let mut bytes = Vec::new();
        put_bytes(&mut bytes, 1, &resource_spans);

        // The placeholders, in order: trace id, span id, parent id (CLIENT spans only).
        let mut ids = Vec::new();
        let mut at = 0;
        for server in kinds {
            let trace = find(&bytes, &[0xee; 16], at);
            let span = find(&bytes, &[0xee; 8], trace + 16);
            let parent = (!server).then(|| find(&bytes, &[0xee; 8], span + 8));
            at = parent.unwrap_or(span) + 8;
            let pad_start = find(&bytes, &[b'x'; 16], at);
            let pad_len = bytes[pad_start..]
                .iter()
                .take_while(|&&b| b == b'x')
                .count();
            at = pad_start + pad_len;
            ids.push(Ids {
                trace,
                span,
                parent,
                pad: pad_start..at,
            });
        }
        Requests { bytes, ids }
    }

    /// Spans per request.
    pub fn spans(&self) -> usize {
        self.ids.len()
    }

    /// The request whose spans are `first`, `first + 1`, …
    pub fn request(&mut self, first: u64) -> &[u8] {
        for (n, ids) in self.ids.iter().enumerate() {
            let seq = first + n as u64;
            let server = seq - n as u64 % 4;
            let mut trace = [0u8; 16];
            // A recent epoch first, as X-Ray's own ids have; then the SERVER span's seq.
            trace[..4].copy_from_slice(&0x6900_0000u32.to_be_bytes());
            trace[8..].copy_from_slice(&server.to_be_bytes());
            self.bytes[ids.trace..ids.trace + 16].copy_from_slice(&trace);
            self.bytes[ids.span..ids.span + 8].copy_from_slice(&(seq + 1).to_be_bytes());
            if let Some(parent) = ids.parent {
                self.bytes[parent..parent + 8].copy_from_slice(&(server + 1).to_be_bytes());
            }
            fill_words(&mut self.bytes[ids.pad.clone()], seq);
        }
        &self.bytes
    }
}

/// Fills `out` with words of [`WORDS`] drawn by a generator seeded with `seed`.
fn fill_words(out: &mut [u8], seed: u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut at = 0;
    while at < out.len() {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = WORDS[(state % 64) as usize].as_bytes();
        let n = word.len().min(out.len() - at);
        out[at..at + n].copy_from_slice(&word[..n]);
        at += n;
        if at < out.len() {
            out[at] = b' ';
            at += 1;
        }
    }
}

/// The seq of every span in an `ExportTraceServiceRequest` (protobuf), or `None` when it
/// cannot be read.
pub fn span_seqs(request: &[u8], out: &mut Vec<u64>) -> Option<()> {
    use xray_relay::otlp::protobuf::{Entry, Value, fields};
    fn bytes<'a>(entry: Entry<'a>, number: u32) -> Option<&'a [u8]> {
        match entry.value {
            Value::Bytes(b) if entry.number == number => Some(b),
            _ => None,
        }
    }
    for resource in fields(request, "ExportTraceServiceRequest") {
        let Some(resource) = bytes(resource.ok()?, 1) else {
            continue;
        };
        for scope in fields(resource, "ResourceSpans") {
            let Some(scope) = bytes(scope.ok()?, 2) else {
                continue;
            };
            for span in fields(scope, "ScopeSpans") {
                let Some(span) = bytes(span.ok()?, 2) else {
                    continue;
                };
                for field in fields(span, "Span") {
                    if let Some(id) = bytes(field.ok()?, 2) {
                        let id = u64::from_be_bytes(id.try_into().ok()?);
                        out.push(id.checked_sub(1)?);
                    }
                }
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_spans_asked_with_their_seqs_and_check_as_otlp() {
        let mut requests = Requests::new(8, 1024);
        let body = requests.request(1000).to_vec();
        let per_span = body.len() / 8;
        assert!((1024..1100).contains(&per_span), "{per_span}");
        let mut seqs = Vec::new();
        span_seqs(&body, &mut seqs).unwrap();
        assert_eq!(seqs, (1000..1008).collect::<Vec<_>>());
        xray_relay::otlp::protobuf::check(&body, &xray_relay::otlp::schema::REQUEST).unwrap();
    }
}
