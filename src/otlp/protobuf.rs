//! The protobuf wire format for the OTLP messages in [`super::schema`]: walking fields,
//! checking a request against the schema, writing it as OTLP JSON, and the few encoders the
//! relay needs. Hand-written: the relay never builds span objects, it checks bytes, cuts them
//! at span boundaries and copies them, which a generated decoder (prost) would first turn into
//! allocations.

use super::schema::{Field, Kind, Message};
use std::fmt::Write as _;
use std::ops::Range;

/// Wire type of varints.
pub const VARINT: u8 = 0;
/// Wire type of 8-byte values.
pub const I64: u8 = 1;
/// Wire type of length-delimited values.
pub const LEN: u8 = 2;
/// Wire type of 4-byte values.
pub const I32: u8 = 5;

/// Nested messages deeper than this are refused (AnyValue can nest without end).
pub const MAX_DEPTH: usize = 32;

/// Bytes that are not a valid message; says which message and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A varint.
    Varint(u64),
    /// 8 bytes, little-endian.
    I64(u64),
    /// 4 bytes, little-endian.
    I32(u32),
    /// Length-delimited bytes.
    Bytes(&'a [u8]),
}

impl Value<'_> {
    fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => VARINT,
            Value::I64(_) => I64,
            Value::Bytes(_) => LEN,
            Value::I32(_) => I32,
        }
    }
}

/// One field: its number, value, and where it is in the message (tag included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The field number.
    pub number: u32,
    /// The value.
    pub value: Value<'a>,
    /// The field's bytes in the message, tag to end.
    pub span: Range<usize>,
}

/// The fields of a message, in wire order.
pub struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
    message: &'static str,
}

/// Walks the fields of `bytes`, a `message` (its name for errors).
pub fn fields<'a>(bytes: &'a [u8], message: &'static str) -> Fields<'a> {
    Fields {
        bytes,
        at: 0,
        message,
    }
}

/// Reads a varint at `*at`, moving past it.
#[inline]
pub fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    // Tags and the lengths of ids, names and most attributes fit in one byte: the check walks
    // two or three varints per field, so the common case skips the loop.
    if let Some(&byte) = bytes.get(*at)
        && byte < 0x80
    {
        *at += 1;
        return Some(u64::from(byte));
    }
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

impl<'a> Fields<'a> {
    fn truncated(&self, what: &str) -> DecodeError {
        DecodeError(format!(
            "{}: {what} at byte {} of {}",
            self.message,
            self.at,
            self.bytes.len()
        ))
    }

    fn next_entry(&mut self) -> Result<Entry<'a>, DecodeError> {
        let start = self.at;
        let tag = read_varint(self.bytes, &mut self.at)
            .ok_or_else(|| self.truncated("truncated or bad field tag"))?;
        let number = u32::try_from(tag >> 3)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| self.truncated("bad field number"))?;
        let take = |this: &mut Self, n: usize| -> Result<&'a [u8], DecodeError> {
            let end = this
                .at
                .checked_add(n)
                .filter(|&end| end <= this.bytes.len())
                .ok_or_else(|| this.truncated(&format!("field {number} runs past the end")))?;
            let slice = &this.bytes[this.at..end];
            this.at = end;
            Ok(slice)
        };
        let value = match (tag & 7) as u8 {
            VARINT => Value::Varint(
                read_varint(self.bytes, &mut self.at)
                    .ok_or_else(|| self.truncated(&format!("field {number}: bad varint")))?,
            ),
            I64 => {
                let raw = take(self, 8)?;
                Value::I64(u64::from_le_bytes(raw.try_into().unwrap_or_default()))
            }
            I32 => {
                let raw = take(self, 4)?;
                Value::I32(u32::from_le_bytes(raw.try_into().unwrap_or_default()))
            }
            LEN => {
                let length = read_varint(self.bytes, &mut self.at)
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(|| self.truncated(&format!("field {number}: bad length")))?;
                Value::Bytes(take(self, length)?)
            }
            other => {
                return Err(self.truncated(&format!(
                    "field {number} has wire type {other}, which OTLP does not use"
                )));
            }
        };
        Ok(Entry {
            number,
            value,
            span: start..self.at,
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Entry<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let entry = self.next_entry();
        if entry.is_err() {
            self.at = self.bytes.len();
        }
        Some(entry)
    }
}

fn wire_type_of(kind: Kind) -> u8 {
    match kind {
        Kind::Str | Kind::HexId | Kind::Base64 | Kind::Message(_) => LEN,
        Kind::Int32 | Kind::Int64 | Kind::Bool => VARINT,
        Kind::Fixed32 => I32,
        Kind::Fixed64 | Kind::Double => I64,
    }
}

/// Checks that `bytes` is a valid `message`: every field readable, known fields of the right
/// wire type, strings UTF-8, nested messages valid, at most [`MAX_DEPTH`] deep.
pub fn check(bytes: &[u8], message: &'static Message) -> Result<(), DecodeError> {
    // The walk that only answers yes or no is the one every request takes; the one that says
    // why runs only for a request already found bad.
    if valid(bytes, message, 0) {
        return Ok(());
    }
    check_at(bytes, message, 0)
}

/// Whether [`check_at`] would pass `bytes`: the same rules in one loop with no error values or
/// field entries to build, about half the time per field of walking [`Fields`].
fn valid(bytes: &[u8], message: &'static Message, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let mut at = 0;
    while at < bytes.len() {
        let Some(tag) = read_varint(bytes, &mut at) else {
            return false;
        };
        let Some(number) = u32::try_from(tag >> 3).ok().filter(|&n| n > 0) else {
            return false;
        };
        let wire_type = (tag & 7) as u8;
        let length = match wire_type {
            VARINT => match read_varint(bytes, &mut at) {
                Some(_) => 0,
                None => return false,
            },
            I64 => 8,
            I32 => 4,
            LEN => match read_varint(bytes, &mut at).and_then(|l| usize::try_from(l).ok()) {
                Some(length) => length,
                None => return false,
            },
            _ => return false,
        };
        let Some(value) = at.checked_add(length).and_then(|end| bytes.get(at..end)) else {
            return false;
        };
        at += length;
        let Some(field) = message.field(number) else {
            continue;
        };
        if wire_type != wire_type_of(field.kind) {
            return false;
        }
        let ok = match field.kind {
            Kind::Str => std::str::from_utf8(value).is_ok(),
            Kind::Message(inner) => valid(value, inner, depth + 1),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn check_at(bytes: &[u8], message: &'static Message, depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError(format!(
            "{}: nested more than {MAX_DEPTH} levels deep",
            message.name
        )));
    }
    for entry in fields(bytes, message.name) {
        let entry = entry?;
        let Some(field) = message.field(entry.number) else {
            continue;
        };
        if entry.value.wire_type() != wire_type_of(field.kind) {
            return Err(DecodeError(format!(
                "{}.{}: wire type {} where {} belongs",
                message.name,
                field.name,
                entry.value.wire_type(),
                wire_type_of(field.kind)
            )));
        }
        match (field.kind, entry.value) {
            (Kind::Str, Value::Bytes(text)) if std::str::from_utf8(text).is_err() => {
                return Err(DecodeError(format!(
                    "{}.{}: not UTF-8",
                    message.name, field.name
                )));
            }
            (Kind::Message(inner), Value::Bytes(nested)) => check_at(nested, inner, depth + 1)?,
            _ => {}
        }
    }
    Ok(())
}

/// Writes `bytes`, a checked `message`, as OTLP JSON to `out`: lowerCamelCase names, ids in
/// hex, 64-bit integers as strings, enums as integers, unknown fields left out.
pub fn write_json(bytes: &[u8], message: &'static Message, out: &mut String) {
    out.push('{');
    let mut first = true;
    for field in message.fields {
        let mut values = fields(bytes, message.name)
            .filter_map(Result::ok)
            .filter(|e| e.number == field.number && e.value.wire_type() == wire_type_of(field.kind))
            .map(|e| e.value)
            .peekable();
        if values.peek().is_none() {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "\"{}\":", field.name);
        if field.repeated {
            out.push('[');
            for (i, value) in values.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(field, value, out);
            }
            out.push(']');
        } else if let Some(value) = values.last() {
            // Protobuf: the last occurrence of a singular field wins.
            write_value(field, value, out);
        }
    }
    out.push('}');
}

fn write_value(field: &Field, value: Value<'_>, out: &mut String) {
    match (field.kind, value) {
        (Kind::Str, Value::Bytes(text)) => {
            write_json_string(&String::from_utf8_lossy(text), out);
        }
        (Kind::HexId, Value::Bytes(id)) => {
            out.push('"');
            for byte in id {
                let _ = write!(out, "{byte:02x}");
            }
            out.push('"');
        }
        (Kind::Base64, Value::Bytes(data)) => {
            out.push('"');
            out.push_str(&base64_encode(data));
            out.push('"');
        }
        (Kind::Int32, Value::Varint(v)) => {
            // 32-bit fields keep the low 32 bits of the varint (as protobuf parsers do); a
            // negative enum or int32 is sign-extended to 64 bits on the wire, uint32 never is.
            if v >= 0xffff_ffff_8000_0000 {
                let _ = write!(out, "{}", v as u32 as i32);
            } else {
                let _ = write!(out, "{}", v as u32);
            }
        }
        (Kind::Int64, Value::Varint(v)) => {
            let _ = write!(out, "\"{}\"", v as i64);
        }
        (Kind::Bool, Value::Varint(v)) => out.push_str(if v != 0 { "true" } else { "false" }),
        (Kind::Fixed32, Value::I32(v)) => {
            let _ = write!(out, "{v}");
        }
        (Kind::Fixed64, Value::I64(v)) => {
            let _ = write!(out, "\"{v}\"");
        }
        (Kind::Double, Value::I64(bits)) => {
            let v = f64::from_bits(bits);
            if v.is_nan() {
                out.push_str("\"NaN\"");
            } else if v.is_infinite() {
                out.push_str(if v > 0.0 {
                    "\"Infinity\""
                } else {
                    "\"-Infinity\""
                });
            } else {
                let _ = write!(out, "{v:?}");
            }
        }
        (Kind::Message(inner), Value::Bytes(nested)) => write_json(nested, inner, out),
        _ => out.push_str("null"),
    }
}

/// Writes `text` as a JSON string.
pub fn write_json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64, standard or URL-safe alphabet, padding optional.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a field tag.
pub fn put_tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, u64::from(number) << 3 | u64::from(wire_type));
}

/// Appends a length-delimited field.
pub fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_tag(out, number, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The bytes a length-delimited field of `length` bytes takes with a tag of one byte.
pub fn field_size(length: usize) -> usize {
    1 + varint_size(length as u64) + length
}

/// The bytes `value` takes as a varint.
pub fn varint_size(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::super::schema;
    use super::*;

    #[test]
    fn varints_round_trip_and_overlong_ones_are_refused() {
        for value in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, value);
            assert_eq!(bytes.len(), varint_size(value));
            let mut at = 0;
            assert_eq!(read_varint(&bytes, &mut at), Some(value));
            assert_eq!(at, bytes.len());
        }
        let mut at = 0;
        assert_eq!(read_varint(&[0xff; 11], &mut at), None);
        let mut at = 0;
        assert_eq!(read_varint(&[0x80], &mut at), None);
    }

    #[test]
    fn base64_both_ways() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\x00"] {
            let text = base64_encode(data);
            assert_eq!(base64_decode(&text).unwrap(), data, "{text}");
        }
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    fn span(name: &str) -> Vec<u8> {
        let mut span = Vec::new();
        put_bytes(&mut span, 1, &[0xab; 16]);
        put_bytes(&mut span, 2, &[0x01; 8]);
        put_bytes(&mut span, 5, name.as_bytes());
        put_tag(&mut span, 6, VARINT);
        put_varint(&mut span, 2);
        put_tag(&mut span, 7, I64);
        span.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
        span
    }

    #[test]
    fn a_span_is_checked_and_written_as_otlp_json() {
        let mut bytes = span("GET \"/\"");
        // An unknown field (99) is skipped.
        put_tag(&mut bytes, 99, VARINT);
        put_varint(&mut bytes, 7);
        check(&bytes, &schema::SPAN).unwrap();
        let mut json = String::new();
        write_json(&bytes, &schema::SPAN, &mut json);
        assert_eq!(
            json,
            format!(
                r#"{{"traceId":"{}","spanId":"0101010101010101","name":"GET \"/\"","kind":2,"startTimeUnixNano":"1700000000000000000"}}"#,
                "ab".repeat(16)
            )
        );
    }

    #[test]
    fn thirty_two_bit_fields_keep_their_low_bits_and_sign() {
        let json_of = |v: u64| {
            let mut bytes = Vec::new();
            put_tag(&mut bytes, 6, VARINT);
            put_varint(&mut bytes, v);
            let mut json = String::new();
            write_json(&bytes, &schema::SPAN, &mut json);
            json
        };
        assert_eq!(json_of(-5i64 as u64), r#"{"kind":-5}"#);
        assert_eq!(json_of(u32::MAX as u64), r#"{"kind":4294967295}"#);
        assert_eq!(json_of((1 << 40) + 3), r#"{"kind":3}"#);
    }

    #[test]
    fn truncation_wrong_wire_types_and_bad_utf8_are_errors() {
        let bytes = span("x");
        for cut in 1..bytes.len() {
            if let Err(error) = check(&bytes[..cut], &schema::SPAN) {
                assert!(error.0.starts_with("Span"), "{error}");
            }
        }
        assert!(check(&bytes[..bytes.len() - 1], &schema::SPAN).is_err());
        let mut wrong = Vec::new();
        put_tag(&mut wrong, 5, VARINT);
        put_varint(&mut wrong, 1);
        assert!(
            check(&wrong, &schema::SPAN)
                .unwrap_err()
                .0
                .contains("Span.name")
        );
        let mut utf = Vec::new();
        put_bytes(&mut utf, 5, b"\xff");
        assert!(check(&utf, &schema::SPAN).is_err());
        let mut group = Vec::new();
        put_tag(&mut group, 5, 3);
        assert!(check(&group, &schema::SPAN).is_err());
    }

    #[test]
    fn the_quick_check_agrees_with_the_one_that_says_why() {
        let mut value = Vec::new();
        put_bytes(&mut value, 1, "a string value, ünïcode too".as_bytes());
        let mut attribute = Vec::new();
        put_bytes(&mut attribute, 1, b"http.route");
        put_bytes(&mut attribute, 2, &value);
        let mut status = Vec::new();
        put_tag(&mut status, 3, VARINT);
        put_varint(&mut status, 2);
        let mut one = span("GET /");
        put_bytes(&mut one, 9, &attribute);
        put_tag(&mut one, 16, I32);
        one.extend_from_slice(&[1, 0, 0, 0]);
        put_bytes(&mut one, 15, &status);
        put_tag(&mut one, 99, VARINT);
        put_varint(&mut one, 300);
        let mut scope_spans = Vec::new();
        put_bytes(&mut scope_spans, 2, &one);
        put_bytes(&mut scope_spans, 2, &span("second"));
        let mut resource_spans = Vec::new();
        put_bytes(&mut resource_spans, 2, &scope_spans);
        let mut request = Vec::new();
        put_bytes(&mut request, 1, &resource_spans);
        assert!(valid(&request, &schema::REQUEST, 0));
        let agree = |bytes: &[u8]| {
            assert_eq!(
                valid(bytes, &schema::REQUEST, 0),
                check_at(bytes, &schema::REQUEST, 0).is_ok(),
                "{bytes:?}"
            );
        };
        for cut in 0..request.len() {
            agree(&request[..cut]);
        }
        for at in 0..request.len() {
            for new in [0x00, 0x01, 0x02, 0x05, 0x07, 0x0a, 0x7f, 0x80, 0xc3, 0xff] {
                let mut changed = request.clone();
                changed[at] = new;
                agree(&changed);
            }
        }
    }

    #[test]
    fn endless_nesting_is_refused() {
        let mut value = Vec::new();
        for _ in 0..(MAX_DEPTH + 2) {
            let mut array = Vec::new();
            put_bytes(&mut array, 1, &value);
            let mut any = Vec::new();
            put_bytes(&mut any, 5, &array);
            value = any;
        }
        assert!(
            check(&value, &schema::ANY_VALUE)
                .unwrap_err()
                .0
                .contains("nested")
        );
    }
}
