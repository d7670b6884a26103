//! The `PutTraceSegments` wire format: the request body built from a batch, and the reply.
//!
//! Documents go into the request as JSON strings, escaped exactly as the original daemon's
//! SDK escapes them (smithy-go's `escapeStringBytes`, behind aws-sdk-go-v2 since daemon 3.6):
//! `"` and `\\` escaped, `\n` `\r` `\t` as such and the other control characters as `\u00XX`,
//! every byte that is not part of valid UTF-8 as `\ufffd` (Go's replacement character, one
//! per byte), U+2028 and U+2029 as `\u2028` and `\u2029`, and everything else (`<`, `>`, `&`,
//! DEL, any other character) as it is. A document is never parsed and re-encoded, so X-Ray
//! receives what the SDK sent, whatever it is: X-Ray judges it.

use crate::pool::Batch;
use serde::Deserialize;

/// Writes `{"TraceSegmentDocuments":["…","…"]}` for `batch` into `body` (cleared first).
pub fn encode_put_trace_segments(batch: &Batch, body: &mut Vec<u8>) {
    body.clear();
    body.reserve(batch.byte_len() + batch.byte_len() / 4 + 64);
    body.extend_from_slice(b"{\"TraceSegmentDocuments\":[");
    for (i, document) in batch.documents().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        push_json_string(body, document);
    }
    body.extend_from_slice(b"]}");
}

/// Appends `text`, any bytes, as a JSON string literal escaped as the module notes say.
pub fn push_json_string(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    let mut staged = Staging::new(out);
    staged.push(b'"');
    let mut rest = text;
    // Runs between escapes are copied whole: a segment is mostly bytes that stay as they are.
    while let Some(at) = next_escape(rest) {
        staged.push_run(&rest[..at]);
        rest = &rest[at..];
        if rest[0].is_ascii() {
            push_escape(&mut staged, rest[0]);
            rest = &rest[1..];
        } else {
            // A byte of a multi-byte character (or not UTF-8): take the whole run of them,
            // which an ASCII byte always ends, since none can be inside a character.
            let end = rest.iter().position(u8::is_ascii).unwrap_or(rest.len());
            push_non_ascii(&mut staged, &rest[..end]);
            rest = &rest[end..];
        }
    }
    staged.push_run(rest);
    staged.push(b'"');
    staged.flush();
}

/// Appends a run of bytes of 0x80 and above: characters as they are except U+2028 and U+2029,
/// and `\ufffd` for each byte that is not part of a valid UTF-8 character. Go decodes (and so
/// replaces) one byte at a time where Rust's [`Utf8Chunks`](std::str::Utf8Chunks) reports a
/// maximal invalid sequence, but such a sequence is a lead byte and continuation bytes, none
/// of which could start a character, so replacing each of its bytes gives Go's result.
fn push_non_ascii(out: &mut Staging<'_>, run: &[u8]) {
    for chunk in run.utf8_chunks() {
        let mut valid = chunk.valid();
        while let Some(at) = valid.find(['\u{2028}', '\u{2029}']) {
            out.push_run(&valid.as_bytes()[..at]);
            let escape: &[u8] = if valid[at..].starts_with('\u{2028}') {
                b"\\u2028"
            } else {
                b"\\u2029"
            };
            out.push_run(escape);
            valid = &valid[at + '\u{2028}'.len_utf8()..];
        }
        out.push_run(valid.as_bytes());
        for _ in chunk.invalid() {
            out.push_run(b"\\ufffd");
        }
    }
}

/// Collects the small pieces of an escaped string (the text between two quotes, the escapes)
/// in a buffer on the stack and appends them to the output a few hundred bytes at a time.
/// Documents are mostly short runs between escapes, and musl's `memcpy` costs more to start
/// than such a run takes to copy, so one copy per few hundred bytes beats one per piece
/// (`xray-bench --encode-only` times it). The caller must [`Staging::flush`] at the end.
struct Staging<'a> {
    out: &'a mut Vec<u8>,
    buffer: [u8; 256],
    len: usize,
}

impl<'a> Staging<'a> {
    fn new(out: &'a mut Vec<u8>) -> Staging<'a> {
        Staging {
            out,
            buffer: [0; 256],
            len: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, byte: u8) {
        if self.len == self.buffer.len() {
            self.flush();
        }
        self.buffer[self.len] = byte;
        self.len += 1;
    }

    /// Appends bytes that need no escaping; long runs go straight to the output.
    fn push_run(&mut self, run: &[u8]) {
        if run.len() >= 64 {
            self.flush();
            self.out.extend_from_slice(run);
        } else {
            for &byte in run {
                self.push(byte);
            }
        }
    }

    /// Appends what is staged to the output.
    fn flush(&mut self) {
        self.out.extend_from_slice(&self.buffer[..self.len]);
        self.len = 0;
    }
}

/// The bytes that may not be copied as they are: `"`, `\` and the control characters, which
/// are escaped, and every byte of 0x80 and above, which must be checked for UTF-8.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = byte < 0x20 || byte >= 0x80;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The position of the first byte of `text` that needs escaping (or a UTF-8 check).
///
/// Looks at eight bytes per step (segments are mostly long runs of plain ASCII text); this
/// took escaping from about 0.9 to 0.3 µs per 1 KB segment. For each byte the tests mark its
/// high bit when it is below 0x20, `"`, `\` or 0x80 and above: the subtraction borrows out of
/// a byte only when that byte is a hit, so the lowest marked byte is always the first hit
/// (bytes above it may be marked falsely, which is never looked at).
fn next_escape(text: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    let is_zero = |word: u64| word.wrapping_sub(ONES) & !word;
    let mut chunks = text.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(bytes);
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = is_zero(word ^ (ONES * u64::from(b'"')));
        let backslash = is_zero(word ^ (ONES * u64::from(b'\\')));
        let hits = (control | quote | backslash | word) & HIGH_BITS;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&byte| NEEDS_ESCAPE[usize::from(byte)])
        .map(|i| at + i)
}

/// Appends the escape sequence for one ASCII byte of [`NEEDS_ESCAPE`].
fn push_escape(out: &mut Staging<'_>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'\\');
    match byte {
        b'"' | b'\\' => out.push(byte),
        b'\n' => out.push(b'n'),
        b'\r' => out.push(b'r'),
        b'\t' => out.push(b't'),
        _ => {
            let code = [
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ];
            for digit in code {
                out.push(digit);
            }
        }
    }
}

/// A document X-Ray did not accept, from the `PutTraceSegments` reply.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Unprocessed {
    /// The segment id X-Ray names (the document's `id`), if it could read one.
    #[serde(default)]
    pub id: Option<String>,
    /// X-Ray's error code, e.g. `ThrottledException` or `InvalidSegment`.
    #[serde(default)]
    pub error_code: Option<String>,
    /// X-Ray's explanation.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct PutTraceSegmentsReply {
    #[serde(rename = "UnprocessedTraceSegments", default)]
    unprocessed: Vec<Unprocessed>,
}

/// Reads the documents X-Ray did not accept from a successful reply's body.
///
/// An empty or unreadable body means X-Ray took everything (the original reads it the same
/// way: only a listed id is a rejection).
pub fn parse_put_trace_segments_reply(body: &[u8]) -> Vec<Unprocessed> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    match serde_json::from_slice::<PutTraceSegmentsReply>(body) {
        Ok(reply) => reply.unprocessed,
        Err(err) => {
            log::debug!("Could not read the PutTraceSegments reply ({err}); assuming all sent");
            Vec::new()
        }
    }
}

/// The `id` and `trace_id` of a segment document, for log lines about it.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct SegmentIds {
    /// The segment's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The trace the segment belongs to.
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// Reads the ids of one document (only on the rare paths that need them: never per segment).
pub fn segment_ids(document: &[u8]) -> SegmentIds {
    serde_json::from_slice(document).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::batch_of;

    #[test]
    fn next_escape_finds_the_first_byte_to_escape_wherever_it_is() {
        let slow = |text: &[u8]| text.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]);
        for len in 0..20 {
            for hit_at in 0..len {
                for byte in 0..=255u8 {
                    // Plain bytes around the candidate, then every byte value after it, so
                    // false marks above a hit are exercised too.
                    let mut text = vec![b'a'; len];
                    text[hit_at] = byte;
                    for (i, later) in text.iter_mut().enumerate().skip(hit_at + 1) {
                        *later = (i as u8).wrapping_mul(37).wrapping_add(byte);
                    }
                    assert_eq!(next_escape(&text), slow(&text), "{text:?}");
                }
            }
        }
        assert_eq!(
            next_escape(&[b'a', b'b', b'c', b'd', b'e', b'f', b'g', 0x7f, 0xc3, 0xa9]),
            Some(8)
        );
        assert_eq!(next_escape(b"<>&'/ ~\x7f"), None);
    }

    /// What the original daemon (3.6.x: aws-sdk-go-v2, smithy-go's `escapeStringBytes`) puts
    /// on the wire for a document, byte for byte: worked out from that encoder's source, and
    /// the same for `json.Marshal` of a Go string except that Go's own encoder also escapes
    /// `<`, `>` and `&`, which the SDK's does not.
    #[test]
    fn documents_are_escaped_as_the_originals_sdk_escapes_them() {
        let cases: [(&[u8], &str); 14] = [
            (b"<a href='x'>&amp;</a>", r#""<a href='x'>&amp;</a>""#),
            (b"q\"b\\s/", r#""q\"b\\s/""#),
            (b"\t\n\r", r#""\t\n\r""#),
            (
                b"\x00\x08\x0c\x1f\x7f",
                "\"\\u0000\\u0008\\u000c\\u001f\x7f\"",
            ),
            (
                "caf\u{e9} \u{1F600} \u{FFFD}".as_bytes(),
                "\"caf\u{e9} \u{1F600} \u{FFFD}\"",
            ),
            ("a\u{2028}b\u{2029}c".as_bytes(), r#""a\u2028b\u2029c""#),
            // Latin-1 é: one byte that is not UTF-8.
            (b"caf\xe9!", r#""caf\ufffd!""#),
            // A character cut short: each of its bytes is replaced.
            (b"\xe2\x82z", r#""\ufffd\ufffdz""#),
            (b"\xe2\x82\xe2\x82\xac", "\"\\ufffd\\ufffd\u{20AC}\""),
            // An encoded surrogate, an overlong encoding, above U+10FFFF, a stray
            // continuation byte, bytes that never occur in UTF-8.
            (b"\xed\xa0\x80", r#""\ufffd\ufffd\ufffd""#),
            (b"\xc0\xaf", r#""\ufffd\ufffd""#),
            (b"\xf4\x90\x80\x80", r#""\ufffd\ufffd\ufffd\ufffd""#),
            (b"\x80x\xfe\xff", r#""\ufffdx\ufffd\ufffd""#),
            (b"{\"a\":1}\x00", r#""{\"a\":1}\u0000""#),
        ];
        for (document, wire) in cases {
            let mut out = Vec::new();
            push_json_string(&mut out, document);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                wire,
                "{}",
                String::from_utf8_lossy(document)
            );
        }
    }

    #[test]
    fn any_bytes_make_a_valid_body_with_one_replacement_per_bad_byte() {
        // Every byte value, between plain text and multi-byte characters.
        let mut document = Vec::new();
        for byte in 0..=255u8 {
            document.extend_from_slice(b"plain text ");
            document.push(byte);
            document.extend_from_slice("\u{e9}\u{1F600}".as_bytes());
            document.push(byte);
        }
        let mut out = Vec::new();
        push_json_string(&mut out, &document);
        let decoded: String = serde_json::from_slice(&out).unwrap();
        // One U+FFFD per bad byte, as Go decodes.
        let expected: String = document
            .utf8_chunks()
            .flat_map(|chunk| {
                let bad = "\u{FFFD}".repeat(chunk.invalid().len());
                [chunk.valid().to_owned(), bad]
            })
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn the_body_decodes_to_the_documents_exactly() {
        let documents = [
            r#"{"id":"a","name":"plain"}"#,
            "{\"name\":\"tab\\there \\\"quoted\\\" back\\\\slash caf\u{e9} \u{1F600}\"}",
            "{\n\t\"pretty\": true\r\n}",
        ];
        let mut body = Vec::new();
        encode_put_trace_segments(&batch_of(&documents), &mut body);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let sent: Vec<&str> = parsed["TraceSegmentDocuments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert_eq!(sent, documents);
    }

    #[test]
    fn strings_of_every_length_and_mix_of_escapes_round_trip() {
        // Pieces of 0 to 99 plain bytes between escapes of every kind, so that staged pieces
        // fill the stack buffer at every offset and long runs bypass it mid-string.
        let escapes = ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é'];
        for length in [0, 1, 63, 64, 255, 256, 257, 1000, 5000] {
            let mut text = String::new();
            let mut piece = 0;
            while text.len() < length {
                text.extend(std::iter::repeat_n('x', piece % 100));
                text.push(escapes[piece % escapes.len()]);
                piece += 7;
            }
            let mut out = Vec::new();
            push_json_string(&mut out, text.as_bytes());
            let decoded: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(decoded, text, "length {length}");
        }
    }

    #[test]
    fn control_characters_are_escaped_as_unicode() {
        let mut out = Vec::new();
        push_json_string(&mut out, b"a\x01b\x1fc\x7f");
        assert_eq!(out, b"\"a\\u0001b\\u001fc\x7f\"");
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\u{1}b\u{1f}c\u{7f}");
    }

    #[test]
    fn unprocessed_segments_are_read_from_the_reply() {
        let reply = br#"{"UnprocessedTraceSegments":[{"Id":"70de5b6f19ff9a0a","ErrorCode":"InvalidSegment","Message":"bad"},{"ErrorCode":"ThrottledException"}]}"#;
        let unprocessed = parse_put_trace_segments_reply(reply);
        assert_eq!(unprocessed.len(), 2);
        assert_eq!(unprocessed[0].id.as_deref(), Some("70de5b6f19ff9a0a"));
        assert_eq!(unprocessed[0].error_code.as_deref(), Some("InvalidSegment"));
        assert_eq!(unprocessed[1].id, None);
        assert!(parse_put_trace_segments_reply(b"").is_empty());
        assert!(parse_put_trace_segments_reply(b"{}").is_empty());
        assert!(parse_put_trace_segments_reply(br#"{"UnprocessedTraceSegments":[]}"#).is_empty());
        assert!(parse_put_trace_segments_reply(b"<html>not json</html>").is_empty());
    }

    #[test]
    fn segment_ids_are_read_when_present() {
        let ids = segment_ids(br#"{"trace_id":"1-5759e988-bd862e3fe1be46a994272793","id":"defdfd9912dc5a56","name":"x"}"#);
        assert_eq!(ids.id.as_deref(), Some("defdfd9912dc5a56"));
        assert_eq!(
            ids.trace_id.as_deref(),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(segment_ids(b"{broken"), SegmentIds::default());
    }
}
