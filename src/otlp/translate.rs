//! OTLP spans → X-Ray segment documents, for accounts whose traces go to X-Ray rather than
//! CloudWatch Logs: each span of a `ResourceSpans` (protobuf, as the receiver keeps it)
//! becomes one JSON document, ready for the segment pool like a UDP segment's body.
//!
//! Segment or subsegment: SERVER spans and spans without a parent are segments; CLIENT,
//! INTERNAL, PRODUCER and unspecified spans with a parent are subsegments sent as their own
//! documents (`type`, `trace_id`, `parent_id`). A CONSUMER span with a parent is a segment
//! when its parent is in another process, so the service map shows the hop through the queue
//! as an edge between two services (the reference exporter makes it a subsegment, which
//! hides the consumer's service, aws-otel-collector#1773). The parent counts as remote when
//! the span's flags say so (OTLP 1.1+), else when the parent span is not in the same
//! `ResourceSpans`. The segment keeps `parent_id`, which is X-Ray's link between the two.
//!
//! One concern per file: [`span`] (reading), [`names`] (ids and names), [`http`], [`aws`],
//! [`sql`], [`exceptions`] (`cause`), [`annotations`] (and metadata).

pub mod annotations;
pub mod aws;
pub mod exceptions;
pub mod http;
pub mod json;
pub mod names;
pub mod span;
pub mod sql;

#[cfg(test)]
mod tests;

use super::protobuf::{self, Value as Wire};
pub use annotations::Indexing;
use serde_json::{Map, Value};
use span::{Attributes, Span, SpanKind};
use std::io::Write as _;

/// X-Ray refuses documents over 64 KB; this leaves room for a KB being 1,000 bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64_000;

/// Text copied into a block (URLs, queries, ARNs, messages) is cut to this many characters,
/// so only metadata, the part meant to be cut, can push a document over the limit.
pub const MAX_FIELD_CHARS: usize = 4096;

/// When a document is still over the limit without metadata, exceptions and annotations,
/// every text in it is cut to this many characters.
const LAST_RESORT_CHARS: usize = 256;

/// `text` cut to [`MAX_FIELD_CHARS`] characters.
pub(crate) fn truncate(text: String) -> String {
    cut_chars(text, MAX_FIELD_CHARS)
}

/// `text` cut to [`MAX_FIELD_CHARS`] characters, borrowed.
pub(crate) fn truncated(text: &str) -> &str {
    if text.len() <= MAX_FIELD_CHARS {
        return text;
    }
    match text.char_indices().nth(MAX_FIELD_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn cut_chars(mut text: String, max: usize) -> String {
    if text.len() > max
        && let Some((at, _)) = text.char_indices().nth(max)
    {
        text.truncate(at);
    }
    text
}

/// What the translation of some spans gave.
#[derive(Debug, Default)]
pub struct Translated {
    /// One X-Ray document (JSON) per translated span.
    pub documents: Vec<Vec<u8>>,
    /// Spans that could not be translated (no valid trace id, span id or time).
    pub refused: u64,
    /// Why the first refused span was refused.
    pub first_refusal: Option<String>,
    /// Metadata entries (and, rarely, exceptions, annotations or links) cut from documents
    /// to keep them under [`MAX_DOCUMENT_BYTES`].
    pub cut: u64,
}

/// Translates every span of an `ExportTraceServiceRequest`.
pub fn request(bytes: &[u8], indexing: &Indexing, out: &mut Translated) {
    let mut documents = std::mem::take(&mut out.documents);
    request_each(bytes, indexing, out, &mut Vec::new(), |document| {
        documents.push(document.to_vec());
    });
    out.documents = documents;
}

/// Translates every span of an `ExportTraceServiceRequest`, handing each document to `each`
/// as it is written in `buffer` (reused from span to span, so that a forwarder allocates no
/// document); refusals and cuts are counted in `out`, whose `documents` stay as they are.
pub fn request_each(
    bytes: &[u8],
    indexing: &Indexing,
    out: &mut Translated,
    buffer: &mut Vec<u8>,
    mut each: impl FnMut(&[u8]),
) {
    for entry in protobuf::fields(bytes, "ExportTraceServiceRequest").map_while(Result::ok) {
        if let (1, Wire::Bytes(resource_spans)) = (entry.number, entry.value) {
            translate_each(resource_spans, indexing, out, buffer, &mut each);
        }
    }
}

/// Translates every span of one `ResourceSpans`, adding the documents to `out`.
pub fn translate(resource_spans: &[u8], indexing: &Indexing, out: &mut Translated) {
    let mut documents = std::mem::take(&mut out.documents);
    translate_each(
        resource_spans,
        indexing,
        out,
        &mut Vec::new(),
        &mut |document| {
            documents.push(document.to_vec());
        },
    );
    out.documents = documents;
}

/// [`translate`], handing each document to `each` as [`request_each`] does.
fn translate_each(
    resource_spans: &[u8],
    indexing: &Indexing,
    out: &mut Translated,
    buffer: &mut Vec<u8>,
    each: &mut impl FnMut(&[u8]),
) {
    let mut resource = Attributes::default();
    let mut spans: Vec<&[u8]> = Vec::new();
    for entry in protobuf::fields(resource_spans, "ResourceSpans").map_while(Result::ok) {
        match (entry.number, entry.value) {
            (1, Wire::Bytes(bytes)) => resource = span::attributes_of(bytes, 1, "Resource"),
            (2, Wire::Bytes(scope_spans)) => {
                for entry in protobuf::fields(scope_spans, "ScopeSpans").map_while(Result::ok) {
                    if let (2, Wire::Bytes(span)) = (entry.number, entry.value) {
                        spans.push(span);
                    }
                }
            }
            _ => {}
        }
    }
    // The ids of the spans, sorted, read only if a span needs them (a CONSUMER span whose
    // flags do not say where its parent is).
    let mut local_ids: Option<Vec<&[u8]>> = None;
    // Each span is read into the same `Span` and written with the same scratch room, so
    // that the lists and buffers are allocated once, not once per span.
    let mut span = Span::default();
    let mut scratch = Scratch::default();
    for &bytes in &spans {
        span.read_again(bytes);
        let needs_ids = span.kind() == SpanKind::Consumer
            && span.has_parent()
            && span.parent_is_remote().is_none();
        let local_parent = needs_ids
            && local_ids
                .get_or_insert_with(|| {
                    let mut ids: Vec<&[u8]> = spans.iter().map(|s| span::span_id_of(s)).collect();
                    ids.sort_unstable();
                    ids
                })
                .binary_search(&span.parent_span_id)
                .is_ok();
        match document_with(
            &span,
            &resource,
            local_parent,
            indexing,
            buffer,
            &mut scratch,
        ) {
            Ok(cut) => {
                each(buffer);
                out.cut += cut;
            }
            Err(why) => {
                out.refused += 1;
                out.first_refusal.get_or_insert(why);
            }
        }
    }
}

/// Whether `span` becomes a segment (see the module's documentation); `local_parent` says
/// whether its parent is among the spans of its `ResourceSpans`.
pub fn is_segment(span: &Span<'_>, local_parent: bool) -> bool {
    match span.kind() {
        _ if !span.has_parent() => true,
        SpanKind::Server => true,
        SpanKind::Consumer => span.parent_is_remote().unwrap_or(!local_parent),
        _ => false,
    }
}

/// `ns` nanoseconds since the epoch as seconds with microseconds (X-Ray's resolution).
pub fn seconds(ns: u64) -> Value {
    let (secs, micros) = (ns / 1_000_000_000, ns % 1_000_000_000 / 1000);
    // Parsed from its decimal form, the float prints back as exactly that decimal.
    let value: f64 = format!("{secs}.{micros:06}").parse().unwrap_or(0.0);
    span::double_json(value)
}

/// The X-Ray document of one span, and how many entries were cut to fit; or why none.
pub fn document(
    span: &Span<'_>,
    resource: &Attributes<'_>,
    local_parent: bool,
    indexing: &Indexing,
) -> Result<(Vec<u8>, u64), String> {
    let mut out = Vec::new();
    document_into(span, resource, local_parent, indexing, &mut out).map(|cut| (out, cut))
}

/// [`document`] written into `out` (cleared first): how many entries were cut to fit.
pub fn document_into(
    span: &Span<'_>,
    resource: &Attributes<'_>,
    local_parent: bool,
    indexing: &Indexing,
    out: &mut Vec<u8>,
) -> Result<u64, String> {
    document_with(
        span,
        resource,
        local_parent,
        indexing,
        out,
        &mut Scratch::default(),
    )
}

/// Room a document is put together in, kept from one document to the next.
#[derive(Default)]
struct Scratch {
    /// The members written ahead as JSON (names, ids, blocks), which [`Field::Raw`] points
    /// into.
    raw: Vec<u8>,
    /// The members, in any order until sorted.
    members: Vec<(&'static str, Field)>,
}

impl Scratch {
    /// Writes a member's value ahead with `write` and adds it, unless `write` says there is
    /// none (and wrote nothing).
    fn raw(&mut self, key: &'static str, write: impl FnOnce(&mut Vec<u8>) -> bool) {
        let start = self.raw.len();
        if write(&mut self.raw) {
            self.members.push((key, Field::Raw(start..self.raw.len())));
        }
    }
}

/// [`document_into`] with `scratch` room.
fn document_with(
    span: &Span<'_>,
    resource: &Attributes<'_>,
    local_parent: bool,
    indexing: &Indexing,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Result<u64, String> {
    scratch.raw.clear();
    scratch.members.clear();
    let trace_id = || names::trace_id(span.trace_id).unwrap_or_default();
    scratch.raw("trace_id", |raw| names::write_trace_id(span.trace_id, raw));
    if scratch.members.is_empty() {
        return Err(format!(
            "span with trace id {:?}: not 16 bytes",
            span::hex(span.trace_id)
        ));
    }
    scratch.raw("id", |raw| names::write_span_id(span.span_id, raw));
    if scratch.members.len() < 2 {
        return Err(format!(
            "span of trace {} has span id {:?}: not 8 bytes",
            trace_id(),
            span::hex(span.span_id)
        ));
    }
    let start_ns = match span.start_ns {
        0 => span.end_ns,
        start => start,
    };
    if start_ns == 0 {
        return Err(format!(
            "span {} of trace {} has no start time",
            span::hex(span.span_id),
            trace_id()
        ));
    }
    let segment = is_segment(span, local_parent);
    let kind = span.kind();
    let attributes = &span.attributes;
    // Members in any order, sorted by key before writing: the order a `Map` would give.
    let name = names::chosen_name(&span.name, kind, segment, attributes, resource);
    scratch.raw("name", |raw| {
        names::write_clean_name(&name, raw);
        true
    });
    let doc = &mut scratch.members;
    doc.push(("start_time", Field::Seconds(start_ns)));
    if span.end_ns == 0 {
        doc.push(("in_progress", Field::Json(Value::Bool(true))));
    } else {
        doc.push(("end_time", Field::Seconds(span.end_ns.max(start_ns))));
    }
    scratch.raw("parent_id", |raw| {
        names::write_span_id(span.parent_span_id, raw)
    });
    let doc = &mut scratch.members;
    if segment {
        if let Some(origin) = aws::origin(resource) {
            doc.push(("origin", Field::Static(origin)));
        }
        scratch.raw("service", |raw| aws::write_service(resource, raw));
    } else {
        doc.push(("type", Field::Static("subsegment")));
        let aws_call = attributes.peek("aws.service").is_some()
            || attributes
                .peek("rpc.system")
                .and_then(span::AnyValue::as_str)
                == Some("aws-api");
        let namespace = match kind {
            _ if aws_call => Some("aws"),
            SpanKind::Client | SpanKind::Producer => Some("remote"),
            _ => None,
        };
        if let Some(namespace) = namespace {
            doc.push(("namespace", Field::Static(namespace)));
        }
    }
    let mut status = None;
    scratch.raw("http", |raw| {
        let (written, code) = http::write(attributes, kind, raw);
        status = code;
        written
    });
    scratch.raw("aws", |raw| aws::write(attributes, resource, segment, raw));
    scratch.raw("sql", |raw| sql::write(attributes, raw));
    let doc = &mut scratch.members;
    let error_status = span.status_code == span::STATUS_ERROR;
    let (error, throttle, fault) = match status {
        Some(429) => (true, true, false),
        Some(400..=499) => (true, false, false),
        Some(500..=599) => (false, false, true),
        _ => (false, false, error_status),
    };
    for (key, set) in [("error", error), ("throttle", throttle), ("fault", fault)] {
        if set {
            doc.push((key, Field::Json(Value::Bool(true))));
        }
    }
    let is_error = error_status || error || fault;
    scratch.raw("cause", |raw| exceptions::write(span, is_error, raw));
    let doc = &mut scratch.members;
    let links = links(span);
    if !links.is_empty() {
        doc.push(("links", Field::Json(Value::Array(links))));
    }
    let sorted = annotations::split(attributes, resource, indexing, segment);
    if let Some(user) = sorted.user {
        doc.push(("user", Field::Json(Value::String(truncate(user)))));
    }
    scratch.raw("annotations", |raw| {
        annotations::write(&sorted.annotations, raw)
    });
    let doc = &mut scratch.members;
    doc.sort_unstable_by_key(|&(key, _)| key);
    let raw = &scratch.raw;
    encode_with(
        doc.iter().map(|(key, field)| (*key, field)),
        raw,
        out,
        |out| {
            if sorted.metadata.is_empty() {
                return Ok(());
            }
            out.extend_from_slice(br#""metadata":{"default":{"#);
            for (n, (prefix, key, value)) in sorted.metadata.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                json::string_of(out, prefix, key);
                out.push(b':');
                write_value(value, out)?;
            }
            out.extend_from_slice(b"}}");
            Ok(())
        },
    )
    .map_err(|e| format!("cannot write JSON: {e}"))?;
    if out.len() <= MAX_DOCUMENT_BYTES {
        return Ok(0);
    }
    // Over the limit (rare): cut, on JSON values.
    let metadata = sorted
        .metadata
        .iter()
        .map(|(prefix, key, value)| (format!("{prefix}{key}"), value.to_json()))
        .collect();
    let doc = doc
        .drain(..)
        .map(|(key, field)| (key.to_owned(), field.into_json(raw)))
        .collect();
    let (bytes, cut) = fit(doc, metadata)?;
    *out = bytes;
    Ok(cut)
}

/// Writes `value` as [`span::AnyValue::to_json`] gives it, without building it for the
/// common scalars.
fn write_value(value: &span::AnyValue<'_>, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match value {
        span::AnyValue::Str(text) => {
            json::string(out, text);
            Ok(())
        }
        span::AnyValue::Bool(v) => serde_json::to_writer(out, v),
        span::AnyValue::Int(v) => serde_json::to_writer(out, v),
        other => serde_json::to_writer(out, &other.to_json()),
    }
}

/// Span links as X-Ray `links` (trace id, span id, attributes).
fn links(span: &Span<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    for link in &span.links {
        let (mut trace, mut id, mut attributes) = (&[][..], &[][..], Attributes::default());
        for entry in protobuf::fields(link, "Span.Link").map_while(Result::ok) {
            match (entry.number, entry.value) {
                (1, Wire::Bytes(t)) => trace = t,
                (2, Wire::Bytes(s)) => id = s,
                (4, Wire::Bytes(kv)) => attributes.push(kv),
                _ => {}
            }
        }
        let (Some(trace), Some(id)) = (names::trace_id(trace), names::span_id(id)) else {
            continue;
        };
        let mut object = Map::new();
        object.insert("trace_id".into(), Value::String(trace));
        object.insert("id".into(), Value::String(id));
        if !attributes.is_empty() {
            let map = attributes
                .iter()
                .map(|(k, v, _)| (k.to_owned(), v.to_json()))
                .collect();
            object.insert("attributes".into(), Value::Object(map));
        }
        out.push(Value::Object(object));
    }
    out
}

/// `doc` as JSON with `metadata` (when not empty) as `metadata.default`, written in place
/// rather than inserted, so that trying again after a cut copies nothing.
fn encode(doc: &Map<String, Value>, metadata: &Map<String, Value>) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(MAX_DOCUMENT_BYTES);
    encode_with(
        doc.iter().map(|(key, value)| (key.as_str(), value)),
        &[],
        &mut out,
        |out| {
            if !metadata.is_empty() {
                out.extend_from_slice(br#""metadata":{"default":"#);
                serde_json::to_writer(&mut *out, metadata)?;
                out.push(b'}');
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// One member of a document as [`document_into`] gathers it: what needs no JSON value is
/// kept as it is and written directly.
enum Field {
    /// A value built as JSON (a block, a name, an id).
    Json(Value),
    /// A fixed text (`type`, `namespace`).
    Static(&'static str),
    /// A time in nanoseconds since the epoch, written as [`seconds`].
    Seconds(u64),
    /// JSON written ahead (a name, an id, a block): where it is in [`Scratch::raw`].
    Raw(std::ops::Range<usize>),
}

impl Field {
    /// The member as the JSON value [`fit`] works on; `raw` is what [`Field::Raw`] points
    /// into.
    fn into_json(self, raw: &[u8]) -> Value {
        match self {
            Field::Json(value) => value,
            // Written by this module as JSON: it reads back as the value it was written from.
            Field::Raw(range) => raw
                .get(range)
                .and_then(|bytes| serde_json::from_slice(bytes).ok())
                .unwrap_or(Value::Null),
            Field::Static(text) => Value::String(text.into()),
            Field::Seconds(ns) => seconds(ns),
        }
    }
}

/// A member's value that [`encode_with`] can write.
trait Member {
    /// Appends the value as JSON; `raw` is the JSON written ahead that it may point into.
    fn write(&self, raw: &[u8], out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl Member for Value {
    fn write(&self, _: &[u8], out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

impl Member for Field {
    fn write(&self, raw: &[u8], out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Field::Json(value) => serde_json::to_writer(out, value),
            Field::Static(text) => {
                json::string(out, text);
                Ok(())
            }
            Field::Raw(range) => {
                out.extend_from_slice(raw.get(range.clone()).unwrap_or(b"null"));
                Ok(())
            }
            Field::Seconds(ns) => {
                write_seconds(*ns, out);
                Ok(())
            }
        }
    }
}

/// Appends [`seconds`]`(ns)` as serde_json prints it, without the float's round trip
/// through text where the digits are known: from 1 s to 2^32 s a microsecond is more than
/// two steps of an f64, so the shortest decimal that reads back as that float is
/// `secs.micros` without its trailing zeros (and `secs.0` for whole seconds).
fn write_seconds(ns: u64, out: &mut Vec<u8>) {
    let (secs, micros) = (ns / 1_000_000_000, ns % 1_000_000_000 / 1000);
    if !(1..1 << 32).contains(&secs) {
        out.extend_from_slice(seconds(ns).to_string().as_bytes());
        return;
    }
    let mut digits = [0u8; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let kept = digits
        .iter()
        .rposition(|&d| d != b'0')
        .map_or(1, |last| last + 1);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{secs}.");
    out.extend_from_slice(&digits[..kept]);
}

/// `doc` (members sorted by key) as JSON into `out` (cleared first), then whatever `last`
/// writes (a member, or nothing) before the closing brace.
fn encode_with<'a, M: Member + 'a>(
    doc: impl IntoIterator<Item = (&'a str, &'a M)>,
    raw: &[u8],
    out: &mut Vec<u8>,
    last: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.clear();
    out.push(b'{');
    for (key, value) in doc {
        if out.len() > 1 {
            out.push(b',');
        }
        json::string(out, key);
        out.push(b':');
        value.write(raw, out)?;
    }
    let before = out.len();
    let any = before > 1;
    if any {
        out.push(b',');
    }
    last(out)?;
    if out.len() == before + usize::from(any) {
        out.truncate(before);
    }
    out.push(b'}');
    Ok(())
}

fn encoded_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// Writes `doc` with `metadata` under `metadata.default`, cutting what is needed to stay
/// under [`MAX_DOCUMENT_BYTES`]: metadata entries first (the largest first), then
/// exceptions, links and annotations, then every text to [`LAST_RESORT_CHARS`].
fn fit(
    mut doc: Map<String, Value>,
    mut metadata: Map<String, Value>,
) -> Result<(Vec<u8>, u64), String> {
    let encode = |doc: &Map<String, Value>, metadata: &Map<String, Value>| {
        encode(doc, metadata).map_err(|e| format!("cannot write JSON: {e}"))
    };
    let bytes = encode(&doc, &metadata)?;
    if bytes.len() <= MAX_DOCUMENT_BYTES {
        return Ok((bytes, 0));
    }
    let mut cut = 0u64;
    let mut over = bytes.len() - MAX_DOCUMENT_BYTES;
    let mut sizes: Vec<(usize, String)> = metadata
        .iter()
        .map(|(k, v)| (k.len() + encoded_len(v) + 4, k.clone()))
        .collect();
    sizes.sort_by_key(|&(size, _)| std::cmp::Reverse(size));
    for (size, key) in sizes {
        if over == 0 {
            break;
        }
        metadata.remove(&key);
        cut += 1;
        over = over.saturating_sub(size);
    }
    let bytes = encode(&doc, &metadata)?;
    if bytes.len() <= MAX_DOCUMENT_BYTES {
        return Ok((bytes, cut));
    }
    for key in ["cause", "links", "annotations"] {
        if let Some(removed) = doc.remove(key) {
            cut += match removed {
                Value::Object(map) if key == "cause" => map
                    .get("exceptions")
                    .and_then(Value::as_array)
                    .map_or(1, |a| a.len() as u64),
                Value::Object(map) => map.len() as u64,
                Value::Array(list) => list.len() as u64,
                _ => 1,
            };
        }
        let bytes = encode(&doc, &metadata)?;
        if bytes.len() <= MAX_DOCUMENT_BYTES {
            return Ok((bytes, cut));
        }
    }
    cut += doc
        .values_mut()
        .chain(metadata.values_mut())
        .map(shorten_texts)
        .sum::<u64>();
    let bytes = encode(&doc, &metadata)?;
    if bytes.len() <= MAX_DOCUMENT_BYTES {
        return Ok((bytes, cut));
    }
    Err(format!(
        "span {} stays over {MAX_DOCUMENT_BYTES} bytes with everything optional cut",
        doc.get("id").and_then(Value::as_str).unwrap_or("?")
    ))
}

/// Cuts every string in `value` to [`LAST_RESORT_CHARS`]; returns how many were cut.
fn shorten_texts(value: &mut Value) -> u64 {
    match value {
        Value::String(text) if text.len() > LAST_RESORT_CHARS => {
            *text = cut_chars(std::mem::take(text), LAST_RESORT_CHARS);
            1
        }
        Value::Array(items) => items.iter_mut().map(shorten_texts).sum(),
        Value::Object(map) => map.values_mut().map(shorten_texts).sum(),
        _ => 0,
    }
}
