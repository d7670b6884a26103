//! Counting the spans of a gzip protobuf request the buffer has no room to decompress, so
//! that its refusal (503) still counts the spans it refused: the body is inflated through a
//! small window and its spans counted as the bytes pass, nothing kept.

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress};

/// The inflate window: deflate refers back at most 32 KiB.
const WINDOW: usize = 32 * 1024;

/// The spans of the `ExportTraceServiceRequest` that the gzip `body` holds, reading at most
/// `max_bytes` of it decompressed; `None` when it is not gzip, not a request, or longer.
pub fn gzip_spans(body: &[u8], max_bytes: usize) -> Option<u64> {
    let mut input = super::gzip::Member::read(body).ok()?.deflated;
    let mut window = vec![0u8; WINDOW];
    let mut state = Box::<DecompressorOxide>::default();
    let mut counter = SpanCounter::default();
    let (mut at, mut total) = (0, 0);
    loop {
        let (status, consumed, produced) = decompress(&mut state, input, &mut window, at, 0);
        total += produced;
        if total > max_bytes {
            return None;
        }
        counter.feed(window.get(at..at + produced)?)?;
        at = (at + produced) & (WINDOW - 1);
        input = input.get(consumed..)?;
        match status {
            TINFLStatus::Done => return counter.finish(),
            TINFLStatus::HasMoreOutput => {}
            _ => return None,
        }
    }
}

/// What the counter is in the middle of.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// A field's tag (a varint).
    #[default]
    Tag,
    /// A varint field's value, skipped.
    Varint,
    /// The length of length-delimited field `field`.
    Length { field: u64 },
    /// Bytes to pass over.
    Skip(u64),
}

/// Counts the spans (`resource_spans` 1 → `scope_spans` 2 → `spans` 2) of a protobuf
/// `ExportTraceServiceRequest` fed in pieces, reading only tags and lengths.
#[derive(Debug, Default)]
struct SpanCounter {
    spans: u64,
    /// Bytes left in the enclosing `ResourceSpans` and `ScopeSpans` being read.
    open: [u64; 2],
    depth: usize,
    reading: Reading,
    /// The varint being read, and its next bit.
    value: u64,
    shift: u32,
}

impl SpanCounter {
    /// Reads `bytes`, the next piece; `None` when they are not a request.
    fn feed(&mut self, mut bytes: &[u8]) -> Option<()> {
        while !bytes.is_empty() {
            if let Reading::Skip(left) = self.reading {
                let step = left.min(bytes.len() as u64);
                self.consume(step)?;
                bytes = &bytes[step as usize..];
                self.reading = if step == left {
                    Reading::Tag
                } else {
                    Reading::Skip(left - step)
                };
            } else {
                let byte = bytes[0];
                bytes = &bytes[1..];
                self.consume(1)?;
                self.byte(byte)?;
            }
            if self.reading == Reading::Tag {
                while self.depth > 0 && self.open[self.depth - 1] == 0 {
                    self.depth -= 1;
                }
            }
        }
        Some(())
    }

    /// Takes one byte of a tag or varint.
    fn byte(&mut self, byte: u8) -> Option<()> {
        if self.shift >= 64 {
            return None;
        }
        self.value |= u64::from(byte & 0x7f) << self.shift;
        self.shift += 7;
        if byte & 0x80 != 0 {
            return Some(());
        }
        let value = std::mem::take(&mut self.value);
        self.shift = 0;
        self.reading = match self.reading {
            Reading::Tag => match value & 7 {
                0 => Reading::Varint,
                1 => Reading::Skip(8),
                2 => Reading::Length { field: value >> 3 },
                5 => Reading::Skip(4),
                _ => return None,
            },
            Reading::Varint => Reading::Tag,
            Reading::Length { field } => match (self.depth, field) {
                // A ResourceSpans, a ScopeSpans in it: read inside.
                (0, 1) | (1, 2) => {
                    self.open[self.depth] = value;
                    self.depth += 1;
                    Reading::Tag
                }
                (2, 2) => {
                    self.spans += 1;
                    Reading::Skip(value)
                }
                _ => Reading::Skip(value),
            },
            Reading::Skip(_) => return None,
        };
        if self.reading == Reading::Skip(0) {
            self.reading = Reading::Tag;
        }
        Some(())
    }

    /// Counts `bytes` read inside every open message; `None` if one is overrun.
    fn consume(&mut self, bytes: u64) -> Option<()> {
        for left in &mut self.open[..self.depth] {
            *left = left.checked_sub(bytes)?;
        }
        Some(())
    }

    /// The spans, if the request ended where a field does.
    fn finish(&self) -> Option<u64> {
        (self.reading == Reading::Tag && self.depth == 0 && self.shift == 0).then_some(self.spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::gzip::gzip;
    use crate::otlp::json::to_protobuf;
    use crate::otlp::schema;
    use crate::otlp::split::count_spans;

    /// A request of `resources` ResourceSpans of `spans` spans each, with attributes and
    /// times (fixed64 and varint fields) around them.
    fn request(resources: usize, spans: usize) -> Vec<u8> {
        let span = |r: usize, s: usize| {
            format!(
                r#"{{"traceId":"{:032x}","spanId":"{:016x}","name":"s{s}","kind":2,"startTimeUnixNano":"1700000000000000000","attributes":[{{"key":"k","value":{{"stringValue":"{}"}}}}]}}"#,
                r + 1,
                s + 1,
                "v".repeat(s * 37 % 3000)
            )
        };
        let resources: Vec<String> = (0..resources)
            .map(|r| {
                let spans: Vec<String> = (0..spans).map(|s| span(r, s)).collect();
                format!(
                    r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc{r}"}}}}]}},"scopeSpans":[{{"scope":{{"name":"lib"}},"spans":[{}]}},{{"spans":[]}}],"schemaUrl":"x"}}"#,
                    spans.join(",")
                )
            })
            .collect();
        let json = format!(r#"{{"resourceSpans":[{}]}}"#, resources.join(","));
        to_protobuf(json.as_bytes(), &schema::REQUEST).unwrap()
    }

    #[test]
    fn counts_the_spans_split_counts_through_the_window() {
        for (resources, spans) in [(1, 1), (3, 40), (2, 300), (0, 0)] {
            let request = request(resources, spans);
            let counted = gzip_spans(&gzip(&request), request.len());
            assert_eq!(
                counted,
                Some(count_spans(&request)),
                "{resources} × {spans}"
            );
            assert_eq!(counted, Some((resources * spans) as u64));
        }
        // Fed a byte at a time, as a window boundary may fall anywhere.
        let request = request(2, 30);
        let mut counter = SpanCounter::default();
        for byte in &request {
            counter.feed(std::slice::from_ref(byte)).unwrap();
        }
        assert_eq!(counter.finish(), Some(60));
    }

    #[test]
    fn what_is_not_a_request_or_longer_than_the_limit_is_none() {
        let request = request(2, 50);
        let body = gzip(&request);
        assert_eq!(gzip_spans(&body, request.len() - 1), None);
        assert_eq!(
            gzip_spans(&gzip(&request[..request.len() - 3]), 1 << 20),
            None
        );
        assert_eq!(gzip_spans(&body[..body.len() / 2], 1 << 20), None);
        assert_eq!(gzip_spans(b"not gzip at all, really", 1 << 20), None);
        // A nested length beyond its parent.
        assert_eq!(gzip_spans(&gzip(&[0x0a, 0x02, 0x12, 0x05]), 1 << 20), None);
    }
}
