//! Cutting a checked `ExportTraceServiceRequest` into requests within X-Ray's limits, at
//! ResourceSpans / ScopeSpans / span boundaries, never inside a span; spans over X-Ray's
//! per-span limit, or (when asked) outside the times it takes, are left out and reported.

use super::protobuf::{self, Value};
use super::schema;

/// X-Ray's OTLP endpoint takes at most 5 MB (uncompressed) per request.
pub const MAX_REQUEST_BYTES: usize = 5_000_000;

/// … and at most 10,000 spans per request.
pub const MAX_REQUEST_SPANS: usize = 10_000;

/// … and refuses spans over 200 KB.
pub const MAX_SPAN_BYTES: usize = 200 * 1024;

/// … and refuses a request whose spans are more than 24 h apart (by start and end times).
pub const MAX_REQUEST_WINDOW_NANOS: u64 = 24 * 3600 * 1_000_000_000;

/// … and refuses spans more than 14 days old …
pub const MAX_SPAN_AGE_NANOS: u64 = 14 * 24 * 3600 * 1_000_000_000;

/// … or more than 2 h in the future.
pub const MAX_SPAN_AHEAD_NANOS: u64 = 2 * 3600 * 1_000_000_000;

/// A length-delimited field's tag and length take at most this much here (bodies are far
/// below 2⁲⁸ bytes).
const FIELD_OVERHEAD: usize = 6;

/// A complete `ExportTraceServiceRequest` within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The protobuf bytes.
    pub bytes: Vec<u8>,
    /// Spans in it.
    pub spans: u32,
    /// The client's own gzip body, when `bytes` is exactly what it decompresses to (a
    /// protobuf request that went through whole: one chunk, nothing refused). X-Ray gets it
    /// as it came when requests go out gzip: no second compression.
    pub gzipped: Option<Vec<u8>>,
    /// The earliest start or end time of its spans (Unix ns, 0 when unset).
    pub first: u64,
    /// The latest start or end time of its spans (Unix ns).
    pub last: u64,
}

impl Chunk {
    /// Bytes it holds in the buffer.
    pub fn size(&self) -> usize {
        self.bytes.len() + self.gzipped.as_ref().map_or(0, Vec::len)
    }
}

/// Whether spans with times from `first` to `last` (Unix ns) may go in one request.
pub fn within_window(first: u64, last: u64) -> bool {
    last.saturating_sub(first) <= MAX_REQUEST_WINDOW_NANOS
}

/// A span's start and end times (Unix ns; 0 when unset), earliest first.
pub fn span_times(span: &[u8]) -> (u64, u64) {
    let (mut start, mut end) = (0, 0);
    for entry in protobuf::fields(span, schema::SPAN.name).flatten() {
        match (entry.number, entry.value) {
            (7, Value::I64(t)) => start = t,
            (8, Value::I64(t)) => end = t,
            _ => {}
        }
    }
    (start.min(end), start.max(end))
}

/// What [`split`] made of a request.
#[derive(Debug, Default)]
pub struct Split {
    /// The requests to send, in order.
    pub chunks: Vec<Chunk>,
    /// Spans in the chunks.
    pub accepted: u64,
    /// Spans left out: over [`MAX_SPAN_BYTES`], or outside the times X-Ray takes.
    pub refused: u64,
    /// Trace ids (hex) of the first few spans over [`MAX_SPAN_BYTES`], for the log and the
    /// client.
    pub refused_traces: Vec<String>,
    /// Of [`Split::refused`], spans ended more than [`MAX_SPAN_AGE_NANOS`] ago or starting
    /// more than [`MAX_SPAN_AHEAD_NANOS`] ahead.
    pub out_of_time: u64,
}

struct Scope<'a> {
    head: Vec<u8>,
    spans: Vec<&'a [u8]>,
}

struct Resource<'a> {
    head: Vec<u8>,
    scopes: Vec<Scope<'a>>,
}

struct Builder<'a> {
    max_bytes: usize,
    max_spans: usize,
    resources: Vec<Resource<'a>>,
    bytes: usize,
    spans: usize,
    /// Earliest and latest time of the spans added since the last flush.
    first: u64,
    last: u64,
    out: Vec<Chunk>,
}

impl<'a> Builder<'a> {
    /// Adds `span`; `new_resource` / `new_scope` say it starts a ResourceSpans / ScopeSpans.
    fn add(
        &mut self,
        resource_head: &[u8],
        new_resource: bool,
        scope_head: &[u8],
        new_scope: bool,
        span: &'a [u8],
        (first, last): (u64, u64),
    ) {
        // After a flush the span starts a new ResourceSpans and ScopeSpans of its own.
        let cost = |this: &Self| {
            let mut cost = span.len() + FIELD_OVERHEAD;
            if new_scope || new_resource || this.resources.is_empty() {
                cost += scope_head.len() + FIELD_OVERHEAD;
            }
            if new_resource || this.resources.is_empty() {
                cost += resource_head.len() + FIELD_OVERHEAD;
            }
            cost
        };
        if self.spans > 0
            && (self.bytes + cost(self) > self.max_bytes
                || self.spans >= self.max_spans
                || !within_window(self.first.min(first), self.last.max(last)))
        {
            self.flush();
        }
        if self.spans == 0 {
            (self.first, self.last) = (first, last);
        }
        self.bytes += cost(self);
        self.spans += 1;
        self.first = self.first.min(first);
        self.last = self.last.max(last);
        if new_resource || self.resources.is_empty() {
            self.resources.push(Resource {
                head: resource_head.to_vec(),
                scopes: Vec::new(),
            });
        }
        let resource = self.resources.last_mut().expect("pushed above");
        if new_scope || new_resource || resource.scopes.is_empty() {
            resource.scopes.push(Scope {
                head: scope_head.to_vec(),
                spans: Vec::new(),
            });
        }
        resource
            .scopes
            .last_mut()
            .expect("pushed above")
            .spans
            .push(span);
    }

    /// Encodes what was added since the last flush as one chunk.
    fn flush(&mut self) {
        if self.spans == 0 {
            return;
        }
        // Written in place, the lengths of the nested messages counted first: building each
        // level and copying it into the next would copy every span three times.
        let mut bytes = Vec::with_capacity(self.bytes);
        for resource in self.resources.drain(..) {
            let scope_len = |scope: &Scope<'_>| {
                scope.head.len()
                    + scope
                        .spans
                        .iter()
                        .map(|s| field_len(2, s.len()))
                        .sum::<usize>()
            };
            let resource_len = resource.head.len()
                + resource
                    .scopes
                    .iter()
                    .map(|scope| field_len(2, scope_len(scope)))
                    .sum::<usize>();
            put_len(&mut bytes, 1, resource_len);
            bytes.extend_from_slice(&resource.head);
            for scope in &resource.scopes {
                put_len(&mut bytes, 2, scope_len(scope));
                bytes.extend_from_slice(&scope.head);
                for span in &scope.spans {
                    protobuf::put_bytes(&mut bytes, 2, span);
                }
            }
        }
        self.out.push(Chunk {
            bytes,
            spans: self.spans as u32,
            gzipped: None,
            first: self.first,
            last: self.last,
        });
        self.bytes = 0;
        self.spans = 0;
    }
}

/// The tag and length of a length-delimited field `number` of `len` bytes.
fn put_len(out: &mut Vec<u8>, number: u32, len: usize) {
    protobuf::put_tag(out, number, protobuf::LEN);
    protobuf::put_varint(out, len as u64);
}

/// Bytes a length-delimited field `number` of `len` bytes takes, as [`protobuf::put_bytes`]
/// writes it.
fn field_len(number: u32, len: usize) -> usize {
    let varint_len = |v: u64| (64 - (v | 1).leading_zeros() as usize).div_ceil(7);
    varint_len(u64::from(number) << 3) + varint_len(len as u64) + len
}

/// The fields of a message other than `number`, copied as they are.
fn head_without(message: &[u8], number: u32, name: &'static str) -> Vec<u8> {
    let mut head = Vec::new();
    for entry in protobuf::fields(message, name).flatten() {
        if entry.number != number {
            head.extend_from_slice(&message[entry.span]);
        }
    }
    head
}

/// The entries numbered `number` that hold bytes.
fn nested<'a>(
    message: &'a [u8],
    number: u32,
    name: &'static str,
) -> impl Iterator<Item = &'a [u8]> {
    protobuf::fields(message, name)
        .flatten()
        .filter(move |entry| entry.number == number)
        .filter_map(|entry| match entry.value {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        })
}

/// The hex trace id of a span.
pub fn trace_id(span: &[u8]) -> String {
    nested(span, 1, schema::SPAN.name)
        .last()
        .map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

/// Whether X-Ray takes a span of times `(first, last)` at `now` (Unix ns): not ended more
/// than 14 days ago, not starting more than 2 h ahead. Only spans wholly outside are
/// refused, so nothing X-Ray might take is lost here (it reports the rest itself).
pub fn in_time(now: u64, (first, last): (u64, u64)) -> bool {
    last >= now.saturating_sub(MAX_SPAN_AGE_NANOS) && first <= now + MAX_SPAN_AHEAD_NANOS
}

/// The time now in Unix ns, for [`split`]'s `now`.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The spans in `request` (already [`protobuf::check`]ed).
pub fn count_spans(request: &[u8]) -> u64 {
    nested(request, 1, schema::REQUEST.name)
        .flat_map(|rs| nested(rs, 2, schema::RESOURCE_SPANS.name))
        .map(|ss| nested(ss, 2, schema::SCOPE_SPANS.name).count() as u64)
        .sum()
}

/// What [`whole`] found in a request that can go as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole {
    /// Spans in it.
    pub spans: u32,
    /// The earliest start or end time of its spans (Unix ns).
    pub first: u64,
    /// The latest start or end time of its spans (Unix ns).
    pub last: u64,
}

/// Whether `request` (already [`protobuf::check`]ed) can be one chunk as it is, without
/// being copied by [`split`]: within `max_bytes`, `max_spans` and
/// [`MAX_REQUEST_WINDOW_NANOS`], no span [`split`] would refuse, and nothing it would leave
/// out (fields beside the `ResourceSpans`, a `ResourceSpans` or `ScopeSpans` without spans).
pub fn whole(
    request: &[u8],
    max_bytes: usize,
    max_spans: usize,
    now: Option<u64>,
) -> Option<Whole> {
    if request.len() > max_bytes {
        return None;
    }
    let (mut spans, mut first, mut last) = (0usize, u64::MAX, 0);
    for entry in protobuf::fields(request, schema::REQUEST.name) {
        let (1, Value::Bytes(resource_spans)) = entry.ok().map(|e| (e.number, e.value))? else {
            return None;
        };
        let mut scopes = 0;
        for scope_spans in nested(resource_spans, 2, schema::RESOURCE_SPANS.name) {
            let before = spans;
            for span in nested(scope_spans, 2, schema::SCOPE_SPANS.name) {
                let times = span_times(span);
                if span.len() > MAX_SPAN_BYTES || now.is_some_and(|now| !in_time(now, times)) {
                    return None;
                }
                (first, last) = (first.min(times.0), last.max(times.1));
                spans += 1;
            }
            if spans == before {
                return None;
            }
            scopes += 1;
        }
        if scopes == 0 {
            return None;
        }
    }
    if spans == 0 || spans > max_spans || !within_window(first, last) {
        return None;
    }
    Some(Whole {
        spans: spans as u32,
        first,
        last,
    })
}

/// Splits `request` (already [`protobuf::check`]ed) into chunks of at most `max_bytes`,
/// `max_spans` and [`MAX_REQUEST_WINDOW_NANOS`]; spans over [`MAX_SPAN_BYTES`] are left out,
/// and with `now` (Unix ns) so are spans X-Ray would refuse for their times ([`in_time`]).
pub fn split(request: &[u8], max_bytes: usize, max_spans: usize, now: Option<u64>) -> Split {
    let mut builder = Builder {
        max_bytes,
        max_spans: max_spans.max(1),
        resources: Vec::new(),
        bytes: 0,
        spans: 0,
        first: 0,
        last: 0,
        out: Vec::new(),
    };
    let mut result = Split::default();
    for resource_spans in nested(request, 1, schema::REQUEST.name) {
        let resource_head = head_without(resource_spans, 2, schema::RESOURCE_SPANS.name);
        let mut new_resource = true;
        for scope_spans in nested(resource_spans, 2, schema::RESOURCE_SPANS.name) {
            let scope_head = head_without(scope_spans, 2, schema::SCOPE_SPANS.name);
            let mut new_scope = true;
            for span in nested(scope_spans, 2, schema::SCOPE_SPANS.name) {
                if span.len() > MAX_SPAN_BYTES {
                    result.refused += 1;
                    if result.refused_traces.len() < 3 {
                        result.refused_traces.push(trace_id(span));
                    }
                    continue;
                }
                let times = span_times(span);
                if now.is_some_and(|now| !in_time(now, times)) {
                    result.refused += 1;
                    result.out_of_time += 1;
                    continue;
                }
                builder.add(
                    &resource_head,
                    new_resource,
                    &scope_head,
                    new_scope,
                    span,
                    times,
                );
                result.accepted += 1;
                new_resource = false;
                new_scope = false;
            }
        }
    }
    builder.flush();
    result.chunks = builder.out;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::protobuf::put_bytes;

    fn span(trace: u8, name_len: usize) -> Vec<u8> {
        let mut span = Vec::new();
        put_bytes(&mut span, 1, &[trace; 16]);
        put_bytes(&mut span, 5, &vec![b'n'; name_len]);
        span
    }

    /// A request of `resources` × `scopes` × `spans` spans of about `size` bytes.
    fn request(resources: u8, scopes: u8, spans: u8, size: usize) -> Vec<u8> {
        let mut request = Vec::new();
        for r in 0..resources {
            let mut resource_spans = Vec::new();
            let mut key_value = Vec::new();
            put_bytes(&mut key_value, 1, format!("resource {r}").as_bytes());
            let mut resource = Vec::new();
            put_bytes(&mut resource, 1, &key_value);
            put_bytes(&mut resource_spans, 1, &resource);
            for s in 0..scopes {
                let mut scope_spans = Vec::new();
                let mut scope = Vec::new();
                put_bytes(&mut scope, 1, format!("scope {s}").as_bytes());
                put_bytes(&mut scope_spans, 1, &scope);
                for t in 0..spans {
                    put_bytes(&mut scope_spans, 2, &span(r * 16 + s * 4 + t, size));
                }
                put_bytes(&mut resource_spans, 2, &scope_spans);
            }
            put_bytes(&mut resource_spans, 3, b"https://schema");
            put_bytes(&mut request, 1, &resource_spans);
        }
        request
    }

    /// Every span with its resource and scope, in order: what the request means.
    fn meaning(request: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for rs in nested(request, 1, "r") {
            let rh = head_without(rs, 2, "rs");
            for ss in nested(rs, 2, "rs") {
                let sh = head_without(ss, 2, "ss");
                for span in nested(ss, 2, "ss") {
                    out.push((rh.clone(), sh.clone(), span.to_vec()));
                }
            }
        }
        out
    }

    #[test]
    fn chunks_are_written_as_nested_messages_would_be() {
        let request = request(2, 3, 4, 300);
        let split = split(&request, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None);
        // The same chunk built level by level, each message copied into its parent.
        let mut expected = Vec::new();
        for entry in protobuf::fields(&request, "request").map_while(Result::ok) {
            let Value::Bytes(resource_spans) = entry.value else {
                continue;
            };
            let mut resource = head_without(resource_spans, 2, "ResourceSpans");
            for scope in protobuf::fields(resource_spans, "ResourceSpans").map_while(Result::ok) {
                let (2, Value::Bytes(scope_spans)) = (scope.number, scope.value) else {
                    continue;
                };
                let mut scope = head_without(scope_spans, 2, "ScopeSpans");
                for span in protobuf::fields(scope_spans, "ScopeSpans").map_while(Result::ok) {
                    if let (2, Value::Bytes(span)) = (span.number, span.value) {
                        put_bytes(&mut scope, 2, span);
                    }
                }
                put_bytes(&mut resource, 2, &scope);
            }
            put_bytes(&mut expected, 1, &resource);
        }
        assert_eq!(split.chunks.len(), 1);
        assert_eq!(split.chunks[0].bytes, expected);
        // A varint length of two and three bytes is counted as written.
        for len in [0, 127, 128, 16_383, 16_384, 3_000_000] {
            let mut out = Vec::new();
            put_len(&mut out, 2, len);
            assert_eq!(field_len(2, len), out.len() + len, "{len}");
        }
    }

    #[test]
    fn a_small_request_stays_whole() {
        let request = request(2, 2, 3, 10);
        let split = split(&request, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None);
        assert_eq!(split.chunks.len(), 1);
        assert_eq!(split.accepted, 12);
        assert_eq!(count_spans(&request), 12);
        assert_eq!(meaning(&split.chunks[0].bytes), meaning(&request));
        protobuf::check(&split.chunks[0].bytes, &schema::REQUEST).unwrap();
    }

    #[test]
    fn splits_at_span_boundaries_within_both_limits_and_loses_nothing() {
        let request = request(3, 2, 4, 300);
        for (max_bytes, max_spans) in [(1000, 100), (5000, 5), (100_000, 7), (400, 1)] {
            let split = split(&request, max_bytes, max_spans, None);
            let mut joined = Vec::new();
            for chunk in &split.chunks {
                assert!(
                    chunk.bytes.len() <= max_bytes,
                    "{} > {max_bytes}",
                    chunk.bytes.len()
                );
                assert!(chunk.spans as usize <= max_spans);
                assert_eq!(meaning(&chunk.bytes).len(), chunk.spans as usize);
                protobuf::check(&chunk.bytes, &schema::REQUEST).unwrap();
                joined.extend_from_slice(&chunk.bytes);
            }
            assert!(split.chunks.len() > 1);
            assert_eq!(
                meaning(&joined),
                meaning(&request),
                "{max_bytes} {max_spans}"
            );
        }
    }

    #[test]
    fn spans_over_the_limit_are_left_out_with_their_trace_id() {
        let mut request = Vec::new();
        let mut scope_spans = Vec::new();
        put_bytes(&mut scope_spans, 2, &span(1, 10));
        put_bytes(&mut scope_spans, 2, &span(2, MAX_SPAN_BYTES + 1));
        let mut resource_spans = Vec::new();
        put_bytes(&mut resource_spans, 2, &scope_spans);
        put_bytes(&mut request, 1, &resource_spans);
        let split = split(&request, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None);
        assert_eq!((split.accepted, split.refused), (1, 1));
        assert_eq!(split.refused_traces, vec!["02".repeat(16)]);
        assert_eq!(meaning(&split.chunks[0].bytes).len(), 1);
    }

    const HOUR: u64 = 3600 * 1_000_000_000;

    /// A span named `name` from `start` to `end` (Unix ns).
    fn timed_span(name: &str, start: u64, end: u64) -> Vec<u8> {
        let mut span = Vec::new();
        put_bytes(&mut span, 5, name.as_bytes());
        for (number, time) in [(7, start), (8, end)] {
            protobuf::put_tag(&mut span, number, protobuf::I64);
            span.extend_from_slice(&time.to_le_bytes());
        }
        span
    }

    fn one_scope(spans: &[Vec<u8>]) -> Vec<u8> {
        let mut scope_spans = Vec::new();
        for span in spans {
            put_bytes(&mut scope_spans, 2, span);
        }
        let mut resource_spans = Vec::new();
        put_bytes(&mut resource_spans, 2, &scope_spans);
        let mut request = Vec::new();
        put_bytes(&mut request, 1, &resource_spans);
        request
    }

    #[test]
    fn no_request_spans_more_than_24_hours() {
        let now = 1_800_000_000 * 1_000_000_000;
        // Spans over three days, hours apart, one lasting 30 h (alone in its request).
        let mut spans: Vec<Vec<u8>> = (0..12)
            .map(|i| {
                timed_span(
                    &format!("s{i}"),
                    now - (72 - 6 * i) * HOUR,
                    now - (71 - 6 * i) * HOUR,
                )
            })
            .collect();
        spans.insert(5, timed_span("long", now - 40 * HOUR, now - 10 * HOUR));
        let request = one_scope(&spans);
        let split = split(&request, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, Some(now));
        assert_eq!((split.accepted, split.refused), (13, 0));
        assert!(split.chunks.len() >= 4, "{}", split.chunks.len());
        let mut joined = Vec::new();
        for chunk in &split.chunks {
            let times: Vec<(u64, u64)> = meaning(&chunk.bytes)
                .iter()
                .map(|(_, _, span)| span_times(span))
                .collect();
            let first = times.iter().map(|t| t.0).min().unwrap();
            let last = times.iter().map(|t| t.1).max().unwrap();
            assert_eq!((chunk.first, chunk.last), (first, last));
            assert!(last - first <= MAX_REQUEST_WINDOW_NANOS || times.len() == 1);
            joined.extend_from_slice(&chunk.bytes);
        }
        assert_eq!(meaning(&joined), meaning(&request), "nothing lost or moved");
        // Chunks a day apart are not merged again.
        let (head, tail) = (&split.chunks[0], split.chunks.last().unwrap());
        assert!(!within_window(head.first, tail.last));
    }

    #[test]
    fn spans_older_than_14_days_or_2_hours_ahead_are_refused_when_asked() {
        let now = 1_800_000_000 * 1_000_000_000;
        let day = 24 * HOUR;
        let request = one_scope(&[
            timed_span("old", now - 15 * day, now - 15 * day + HOUR),
            timed_span("unset", 0, 0),
            timed_span("ends-inside", now - 15 * day, now - 13 * day),
            timed_span("now", now - HOUR, now),
            timed_span("ahead", now + 3 * HOUR, now + 4 * HOUR),
            timed_span("soon", now + HOUR, now + 3 * HOUR),
        ]);
        let split = split(&request, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, Some(now));
        assert_eq!(
            (split.accepted, split.refused, split.out_of_time),
            (3, 3, 3)
        );
        let kept: Vec<Vec<u8>> = split
            .chunks
            .iter()
            .flat_map(|c| meaning(&c.bytes))
            .map(|(_, _, span)| span)
            .collect();
        assert_eq!(
            kept,
            [
                timed_span("ends-inside", now - 15 * day, now - 13 * day),
                timed_span("now", now - HOUR, now),
                timed_span("soon", now + HOUR, now + 3 * HOUR),
            ]
        );
        // Without `now` (the local sink, a replay) every span is kept.
        assert_eq!(split_all(&request), 6);
    }

    #[test]
    fn a_request_split_would_leave_as_one_chunk_is_whole_and_others_are_not() {
        let request = request(2, 3, 4, 300);
        let split = split(&request, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None);
        let chunk = &split.chunks[0];
        let found = whole(&request, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None);
        assert_eq!(
            found,
            Some(Whole {
                spans: chunk.spans,
                first: chunk.first,
                last: chunk.last
            })
        );
        let now = 1_800_000_000 * 1_000_000_000;
        let timed = one_scope(&[timed_span("a", now - HOUR, now), timed_span("b", now, now)]);
        assert_eq!(
            whole(&timed, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, Some(now)),
            Some(Whole {
                spans: 2,
                first: now - HOUR,
                last: now
            })
        );
        // Too large, too many spans, a span refused, spans too far apart, nothing to send.
        assert_eq!(
            whole(&request, request.len() - 1, MAX_REQUEST_SPANS, None),
            None
        );
        assert_eq!(whole(&request, MAX_REQUEST_BYTES, 23, None), None);
        let late = one_scope(&[timed_span("old", HOUR, 2 * HOUR)]);
        assert_eq!(
            whole(&late, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, Some(now)),
            None
        );
        let apart = one_scope(&[
            timed_span("a", now - 30 * HOUR, now - 29 * HOUR),
            timed_span("b", now, now),
        ]);
        assert_eq!(
            whole(&apart, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None),
            None
        );
        let big = one_scope(&[span(1, MAX_SPAN_BYTES + 1)]);
        assert_eq!(
            whole(&big, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None),
            None
        );
        assert_eq!(whole(&[], MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None), None);
        // An empty ScopeSpans beside a full one would be left out by split.
        let mut empty_scope = timed.clone();
        let mut resource_spans = Vec::new();
        put_bytes(&mut resource_spans, 2, &[]);
        put_bytes(&mut empty_scope, 1, &resource_spans);
        assert_eq!(
            whole(&empty_scope, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None),
            None
        );
    }

    fn split_all(request: &[u8]) -> u64 {
        split(request, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, None).accepted
    }
}
