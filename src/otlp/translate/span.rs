//! One span read from its protobuf bytes into the few fields the translation needs, with its
//! attributes as borrowed views. Lenient on purpose: the receiver has checked the request, but
//! the translator must not crash on anything, so unreadable fields are skipped and strings
//! that are not UTF-8 are read with replacement characters.

use super::super::protobuf::{self, Value as Wire};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::Cell;

/// Nested arrays and key-value lists deeper than this are written as `null`.
const MAX_VALUE_DEPTH: usize = 16;

/// An attribute value as it is in the message (`AnyValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue<'a> {
    /// `stringValue`.
    Str(Cow<'a, str>),
    /// `boolValue`.
    Bool(bool),
    /// `intValue`.
    Int(i64),
    /// `doubleValue`.
    Double(f64),
    /// `arrayValue`: the `ArrayValue` bytes.
    Array(&'a [u8]),
    /// `kvlistValue`: the `KeyValueList` bytes.
    KvList(&'a [u8]),
    /// `bytesValue`.
    Bytes(&'a [u8]),
    /// No value set.
    Empty,
}

/// `bytes` as text, invalid UTF-8 replaced as `String::from_utf8_lossy` replaces it; checked
/// first with `str::from_utf8`, which is several times faster on the valid text that nearly
/// every span holds (the receiver has checked it).
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Reads an `AnyValue` (the last field set wins, as for a protobuf oneof).
pub fn any_value(bytes: &[u8]) -> AnyValue<'_> {
    let mut value = AnyValue::Empty;
    for entry in protobuf::fields(bytes, "AnyValue").map_while(Result::ok) {
        value = match (entry.number, entry.value) {
            (1, Wire::Bytes(text)) => AnyValue::Str(lossy(text)),
            (2, Wire::Varint(v)) => AnyValue::Bool(v != 0),
            (3, Wire::Varint(v)) => AnyValue::Int(v as i64),
            (4, Wire::I64(bits)) => AnyValue::Double(f64::from_bits(bits)),
            (5, Wire::Bytes(array)) => AnyValue::Array(array),
            (6, Wire::Bytes(list)) => AnyValue::KvList(list),
            (7, Wire::Bytes(data)) => AnyValue::Bytes(data),
            _ => continue,
        };
    }
    value
}

impl<'a> AnyValue<'a> {
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnyValue::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The value as an integer: an int, a whole double, or a string of digits (some
    /// instrumentations record status codes and sizes as strings).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            AnyValue::Int(v) => Some(*v),
            AnyValue::Double(v) if v.fract() == 0.0 && v.abs() < 9e15 => Some(*v as i64),
            AnyValue::Str(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// The elements of an array value.
    pub fn array(&self) -> Vec<AnyValue<'a>> {
        match self {
            AnyValue::Array(bytes) => protobuf::fields(bytes, "ArrayValue")
                .map_while(Result::ok)
                .filter_map(|entry| match (entry.number, entry.value) {
                    (1, Wire::Bytes(value)) => Some(any_value(value)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The value as a string for a field X-Ray wants as text: strings as they are, numbers
    /// and booleans written out, others `None`.
    pub fn to_text(&self) -> Option<String> {
        match self {
            AnyValue::Str(text) => Some(text.to_string()),
            AnyValue::Int(v) => Some(v.to_string()),
            AnyValue::Double(v) => Some(v.to_string()),
            AnyValue::Bool(v) => Some(v.to_string()),
            _ => None,
        }
    }

    /// [`AnyValue::to_text`] borrowed where the value is a string already.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            AnyValue::Str(text) => Some(Cow::Borrowed(text)),
            other => other.to_text().map(Cow::Owned),
        }
    }

    /// A scalar as JSON (string, bool, number), for annotations; `None` for others.
    pub fn scalar_json(&self) -> Option<Value> {
        match self {
            AnyValue::Str(text) => Some(Value::String(text.to_string())),
            AnyValue::Bool(v) => Some(Value::Bool(*v)),
            AnyValue::Int(v) => Some(Value::from(*v)),
            AnyValue::Double(v) => Some(double_json(*v)),
            _ => None,
        }
    }

    /// The value as JSON keeping its type: arrays as arrays, key-value lists as objects,
    /// bytes as base64, non-finite doubles as strings (JSON has no NaN).
    pub fn to_json(&self) -> Value {
        self.to_json_at(0)
    }

    fn to_json_at(&self, depth: usize) -> Value {
        if depth > MAX_VALUE_DEPTH {
            return Value::Null;
        }
        match self {
            AnyValue::Array(_) => Value::Array(
                self.array()
                    .iter()
                    .map(|v| v.to_json_at(depth + 1))
                    .collect(),
            ),
            AnyValue::KvList(bytes) => {
                let mut object = Map::new();
                for entry in protobuf::fields(bytes, "KeyValueList").map_while(Result::ok) {
                    if let (1, Wire::Bytes(kv)) = (entry.number, entry.value) {
                        let (key, value) = key_value(kv);
                        object.insert(key.into_owned(), value.to_json_at(depth + 1));
                    }
                }
                Value::Object(object)
            }
            AnyValue::Bytes(data) => Value::String(protobuf::base64_encode(data)),
            AnyValue::Empty => Value::Null,
            scalar => scalar.scalar_json().unwrap_or(Value::Null),
        }
    }
}

/// A double as JSON: a number when finite, else `"NaN"`, `"Infinity"` or `"-Infinity"`.
pub fn double_json(v: f64) -> Value {
    match serde_json::Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".into()),
        None if v > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// Reads a `KeyValue`.
pub fn key_value(bytes: &[u8]) -> (Cow<'_, str>, AnyValue<'_>) {
    let (mut key, mut value) = (Cow::Borrowed(""), AnyValue::Empty);
    for entry in protobuf::fields(bytes, "KeyValue").map_while(Result::ok) {
        match (entry.number, entry.value) {
            (1, Wire::Bytes(text)) => key = lossy(text),
            (2, Wire::Bytes(any)) => value = any_value(any),
            _ => {}
        }
    }
    (key, value)
}

/// A list of attributes; remembers which ones a block of the document has used, so they are
/// not repeated in the metadata.
#[derive(Debug, Default)]
pub struct Attributes<'a> {
    items: Vec<(Cow<'a, str>, AnyValue<'a>, Cell<bool>)>,
    /// One bit per key ([`key_bit`]): most look-ups are for keys a span does not have, and
    /// a clear bit answers them without a scan.
    bits: u64,
}

/// The bit of `key` in [`Attributes::bits`], from its length and first and last bytes.
fn key_bit(key: &[u8]) -> u64 {
    let (first, last) = (key.first().copied(), key.last().copied());
    let mix = key.len() * 31 + usize::from(first.unwrap_or(0)) * 7 + usize::from(last.unwrap_or(0));
    1 << (mix % 64)
}

impl<'a> Attributes<'a> {
    /// Adds a `KeyValue`; a repeated key keeps its first value (OTel keys are unique).
    pub fn push(&mut self, key_value_bytes: &'a [u8]) {
        let (key, value) = key_value(key_value_bytes);
        if self.entry(&key).is_none() {
            self.bits |= key_bit(key.as_bytes());
            self.items.push((key, value, Cell::new(false)));
        }
    }

    /// The attribute named `key`. Every block looks up a few dozen keys per span: the first
    /// and last bytes are compared before the whole key, since keys of the same length
    /// nearly always differ there, which saves a call to `memcmp` per attribute.
    fn entry(&self, key: &str) -> Option<&(Cow<'a, str>, AnyValue<'a>, Cell<bool>)> {
        let key = key.as_bytes();
        if self.bits & key_bit(key) == 0 {
            return None;
        }
        self.items.iter().find(|(k, _, _)| {
            let k = k.as_bytes();
            k.len() == key.len() && k.first() == key.first() && k.last() == key.last() && k == key
        })
    }

    /// The value of `key`, without marking it used.
    pub fn peek(&self, key: &str) -> Option<&AnyValue<'a>> {
        self.entry(key).map(|(_, v, _)| v)
    }

    /// The value of `key`, marked used (it goes into a block, not the metadata).
    pub fn take(&self, key: &str) -> Option<&AnyValue<'a>> {
        let (_, value, used) = self.entry(key)?;
        used.set(true);
        Some(value)
    }

    /// The first of `keys` that is set, as text, marked used.
    pub fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|key| self.peek(key).and_then(AnyValue::to_text).map(|t| (key, t)))
            .map(|(key, text)| {
                self.take(key);
                text
            })
    }

    /// [`Attributes::text`] borrowed where the value is a string already.
    pub fn text_ref(&self, keys: &[&str]) -> Option<Cow<'_, str>> {
        keys.iter().find_map(|key| {
            let (_, value, used) = self.entry(key)?;
            let text = value.text()?;
            used.set(true);
            Some(text)
        })
    }

    /// The first of `keys` that is set as an integer, marked used.
    pub fn int(&self, keys: &[&str]) -> Option<i64> {
        keys.iter()
            .find_map(|key| self.peek(key).and_then(AnyValue::as_int).map(|v| (key, v)))
            .map(|(key, value)| {
                self.take(key);
                value
            })
    }

    /// Every attribute: key, value, and whether a block used it.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AnyValue<'a>, bool)> {
        self.items
            .iter()
            .map(|(k, v, used)| (k.as_ref(), v, used.get()))
    }

    /// How many attributes there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Reads the attributes (field `number`) of a message.
pub fn attributes_of<'a>(bytes: &'a [u8], number: u32, message: &'static str) -> Attributes<'a> {
    let mut attributes = Attributes::default();
    for entry in protobuf::fields(bytes, message).map_while(Result::ok) {
        if let (n, Wire::Bytes(kv)) = (entry.number, entry.value)
            && n == number
        {
            attributes.push(kv);
        }
    }
    attributes
}

/// `Span.SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// 0 or anything unknown.
    Unspecified,
    /// 1.
    Internal,
    /// 2.
    Server,
    /// 3.
    Client,
    /// 4.
    Producer,
    /// 5.
    Consumer,
}

impl SpanKind {
    fn of(value: u64) -> SpanKind {
        match value {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

/// `Span.flags` bit: the flags say whether the parent is remote.
pub const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `Span.flags` bit: the parent is remote.
pub const FLAG_IS_REMOTE: u32 = 0x200;

/// `Status.code` ERROR.
pub const STATUS_ERROR: u64 = 2;

/// The parts of a span the translation reads.
#[derive(Debug, Default)]
pub struct Span<'a> {
    /// `traceId` (16 bytes when valid).
    pub trace_id: &'a [u8],
    /// `spanId` (8 bytes when valid).
    pub span_id: &'a [u8],
    /// `parentSpanId` (empty for a root).
    pub parent_span_id: &'a [u8],
    /// `flags`.
    pub flags: u32,
    /// `name`.
    pub name: Cow<'a, str>,
    /// `kind`.
    pub kind: Option<SpanKind>,
    /// `startTimeUnixNano`.
    pub start_ns: u64,
    /// `endTimeUnixNano` (0: not ended).
    pub end_ns: u64,
    /// `attributes`.
    pub attributes: Attributes<'a>,
    /// `events`, as `Span.Event` bytes.
    pub events: Vec<&'a [u8]>,
    /// `links`, as `Span.Link` bytes.
    pub links: Vec<&'a [u8]>,
    /// `status.code`.
    pub status_code: u64,
    /// `status.message`.
    pub status_message: Cow<'a, str>,
}

impl<'a> Span<'a> {
    /// Reads a `Span`.
    pub fn read(bytes: &'a [u8]) -> Span<'a> {
        let mut span = Span::default();
        span.read_again(bytes);
        span
    }

    /// Reads a `Span` in place of this one, keeping its lists' room (one span after another
    /// allocates nothing for them).
    pub fn read_again(&mut self, bytes: &'a [u8]) {
        let mut attributes = std::mem::take(&mut self.attributes);
        attributes.items.clear();
        attributes.bits = 0;
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let mut links = std::mem::take(&mut self.links);
        links.clear();
        *self = Span {
            attributes,
            events,
            links,
            ..Span::default()
        };
        let span = self;
        for entry in protobuf::fields(bytes, "Span").map_while(Result::ok) {
            match (entry.number, entry.value) {
                (1, Wire::Bytes(id)) => span.trace_id = id,
                (2, Wire::Bytes(id)) => span.span_id = id,
                (4, Wire::Bytes(id)) => span.parent_span_id = id,
                (16, Wire::I32(flags)) => span.flags = flags,
                (5, Wire::Bytes(name)) => span.name = lossy(name),
                (6, Wire::Varint(kind)) => span.kind = Some(SpanKind::of(kind)),
                (7, Wire::I64(ns)) => span.start_ns = ns,
                (8, Wire::I64(ns)) => span.end_ns = ns,
                (9, Wire::Bytes(kv)) => span.attributes.push(kv),
                (11, Wire::Bytes(event)) => span.events.push(event),
                (13, Wire::Bytes(link)) => span.links.push(link),
                (15, Wire::Bytes(status)) => {
                    for field in protobuf::fields(status, "Status").map_while(Result::ok) {
                        match (field.number, field.value) {
                            (2, Wire::Bytes(m)) => span.status_message = lossy(m),
                            (3, Wire::Varint(code)) => span.status_code = code,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The span's kind (unspecified when absent).
    pub fn kind(&self) -> SpanKind {
        self.kind.unwrap_or(SpanKind::Unspecified)
    }

    /// Whether the span has a parent: a parent span id X-Ray can name (8 bytes, not all
    /// zero). Any other is no parent, since a subsegment without `parent_id` is refused.
    pub fn has_parent(&self) -> bool {
        self.parent_span_id.len() == 8 && self.parent_span_id.iter().any(|&b| b != 0)
    }

    /// What the flags say of the parent: `Some(true)` remote, `Some(false)` local, `None`
    /// when the SDK did not say (OTLP before 1.1).
    pub fn parent_is_remote(&self) -> Option<bool> {
        (self.flags & FLAG_HAS_IS_REMOTE != 0).then_some(self.flags & FLAG_IS_REMOTE != 0)
    }
}

/// The `spanId` of a `Span` (the last one set, as [`Span::read`] reads it), read without the
/// rest.
pub fn span_id_of(bytes: &[u8]) -> &[u8] {
    let mut id: &[u8] = &[];
    for entry in protobuf::fields(bytes, "Span").map_while(Result::ok) {
        if let (2, Wire::Bytes(bytes)) = (entry.number, entry.value) {
            id = bytes;
        }
    }
    id
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends `bytes` to `out` as lowercase hex.
pub fn push_hex_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// Appends `bytes` to `out` as lowercase hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}
