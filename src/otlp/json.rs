//! OTLP JSON → protobuf: the JSON encoding of `ExportTraceServiceRequest` read with the OTLP
//! rules (lowerCamelCase keys, hex trace and span ids, 64-bit integers as strings or numbers,
//! enums as integers, unknown keys ignored, `null` as absent) and written as the same message
//! in protobuf, so everything after the receiver handles one format.

use super::protobuf::{self, DecodeError, I32, I64, LEN, MAX_DEPTH, VARINT};
use super::schema::{Field, Kind, Message};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Reads `body`, OTLP JSON of `message`, and returns it as protobuf.
///
/// Streamed: the JSON is read once, front to back, each value written as protobuf as it is
/// met (no tree of the whole document), so memory per request stays near the body's size.
/// Keys are taken in document order; a key given twice is written twice (for a protobuf
/// reader, the last scalar wins and messages merge).
pub fn to_protobuf(body: &[u8], message: &'static Message) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut reader = serde_json::Deserializer::from_slice(body);
    let read = TopLevel {
        message,
        out: &mut out,
    }
    .deserialize(&mut reader)
    .and_then(|()| reader.end());
    read.map_err(|error| {
        // Our own refusals are data errors; the rest is JSON that does not parse.
        if error.is_data() {
            DecodeError(error.to_string())
        } else {
            DecodeError(format!("not JSON: {error}"))
        }
    })?;
    Ok(out)
}

/// What a JSON value is, for errors.
#[derive(Clone, Copy)]
enum Found {
    Null,
    Bool,
    Number,
    Str,
    Array,
    Object,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Found::Null => "null",
            Found::Bool => "a boolean",
            Found::Number => "a number",
            Found::Str => "a string",
            Found::Array => "an array",
            Found::Object => "an object",
        })
    }
}

/// The outermost message, written without a tag.
struct TopLevel<'o> {
    message: &'static Message,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} object", self.message.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_message(map, self.message, 0, self.out)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(not_an_object(self.message, Found::Null))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(not_an_object(self.message, Found::Bool))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(not_an_object(self.message, Found::Number))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(not_an_object(self.message, Found::Number))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(not_an_object(self.message, Found::Number))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(not_an_object(self.message, Found::Str))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(not_an_object(self.message, Found::Array))
    }
}

fn not_an_object<E: de::Error>(message: &Message, found: Found) -> E {
    E::custom(format!(
        "{}: an object was expected, not {found}",
        message.name
    ))
}

/// Writes the entries of a JSON object, `message`, as its protobuf fields; unknown keys are
/// skipped.
fn read_message<'de, A: MapAccess<'de>>(
    mut map: A,
    message: &'static Message,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), A::Error> {
    if depth > MAX_DEPTH {
        return Err(de::Error::custom(format!(
            "{}: nested more than {MAX_DEPTH} levels deep",
            message.name
        )));
    }
    while let Some(field) = map.next_key_seed(Key(message))? {
        match field {
            Some(field) => map.next_value_seed(Value {
                message,
                field,
                depth,
                item: false,
                out: &mut *out,
            })?,
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(())
}

/// A key of `message`'s object: its field, or `None` when unknown.
struct Key(&'static Message);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<&'static Field>;

    fn deserialize<D: de::Deserializer<'de>>(self, reader: D) -> Result<Self::Value, D::Error> {
        reader.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<&'static Field>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.fields.iter().find(|f| f.name == key))
    }
}

/// The value of `field` of `message` (with `item`, one element of a repeated field's array).
struct Value<'o> {
    message: &'static Message,
    field: &'static Field,
    depth: usize,
    item: bool,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_any(self)
    }
}

impl Value<'_> {
    /// Whether this value must be an array (a repeated field, not one of its elements).
    fn wants_array(&self) -> bool {
        self.field.repeated && !self.item
    }

    /// The refusal of a value of the wrong kind.
    fn wrong<E: de::Error>(&self, found: Found) -> E {
        let expected = match self.field.kind {
            _ if self.wants_array() => "an array",
            Kind::Message(inner) => return not_an_object(inner, found),
            Kind::Str => "a string",
            Kind::HexId => "a hex string",
            Kind::Base64 => "a base64 string",
            Kind::Int32 => "a 32-bit integer",
            Kind::Int64 => "a 64-bit integer",
            Kind::Fixed32 => "an unsigned 32-bit integer",
            Kind::Fixed64 => "an unsigned 64-bit integer",
            Kind::Double => "a number",
            Kind::Bool => "true or false",
        };
        self.bad(expected, found)
    }

    fn bad<E: de::Error>(&self, expected: &str, found: Found) -> E {
        E::custom(format!(
            "{}.{}: {expected} was expected, not {found}",
            self.message.name, self.field.name
        ))
    }

    /// Writes an integer (from a number or a decimal string) in the field's encoding.
    fn integer<E: de::Error>(self, n: Option<i128>, found: Found) -> Result<(), E> {
        let number = self.field.number;
        let fits = match self.field.kind {
            _ if self.wants_array() => None,
            Kind::Int32 => n
                .filter(|n| *n >= i128::from(i32::MIN) && *n <= i128::from(u32::MAX))
                .map(|n| (VARINT, n as i64 as u64)),
            Kind::Int64 => n
                .and_then(|n| i64::try_from(n).ok())
                .map(|n| (VARINT, n as u64)),
            Kind::Fixed32 => n
                .and_then(|n| u32::try_from(n).ok())
                .map(|n| (I32, u64::from(n))),
            Kind::Fixed64 => n.and_then(|n| u64::try_from(n).ok()).map(|n| (I64, n)),
            _ => None,
        };
        let (wire_type, n) = fits.ok_or_else(|| self.wrong(found))?;
        let out = self.out;
        protobuf::put_tag(out, number, wire_type);
        match wire_type {
            VARINT => protobuf::put_varint(out, n),
            I32 => out.extend_from_slice(&(n as u32).to_le_bytes()),
            _ => out.extend_from_slice(&n.to_le_bytes()),
        }
        Ok(())
    }

    fn double<E: de::Error>(self, n: Option<f64>, found: Found) -> Result<(), E> {
        let n = n.ok_or_else(|| self.wrong(found))?;
        protobuf::put_tag(self.out, self.field.number, I64);
        self.out.extend_from_slice(&n.to_bits().to_le_bytes());
        Ok(())
    }

    fn number<E: de::Error>(self, n: i128) -> Result<(), E> {
        match self.field.kind {
            Kind::Double if !self.wants_array() => self.double(Some(n as f64), Found::Number),
            _ => self.integer(Some(n), Found::Number),
        }
    }
}

impl<'de> Visitor<'de> for Value<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.message.name, self.field.name)
    }

    /// `null` is an absent field; as an element of an array it is refused.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.item {
            return Err(self.wrong(Found::Null));
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        match self.field.kind {
            Kind::Bool if !self.wants_array() => {
                protobuf::put_tag(self.out, self.field.number, VARINT);
                protobuf::put_varint(self.out, u64::from(b));
                Ok(())
            }
            _ => Err(self.wrong(Found::Bool)),
        }
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.number(i128::from(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.number(i128::from(n))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<(), E> {
        match self.field.kind {
            Kind::Double if !self.wants_array() => self.double(Some(f), Found::Number),
            // 1e3 or 5.0: integral values written as floats.
            _ => {
                let n = Some(f)
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1.8e19)
                    .map(|f| f as i128);
                self.integer(n, Found::Number)
            }
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        if self.wants_array() {
            return Err(self.wrong(Found::Str));
        }
        let number = self.field.number;
        match self.field.kind {
            Kind::Str => protobuf::put_bytes(self.out, number, text.as_bytes()),
            Kind::HexId => {
                let bytes = hex_decode(text)
                    .ok_or_else(|| self.bad("an even number of hex digits", Found::Str))?;
                protobuf::put_bytes(self.out, number, &bytes);
            }
            Kind::Base64 => {
                let bytes =
                    protobuf::base64_decode(text).ok_or_else(|| self.bad("base64", Found::Str))?;
                protobuf::put_bytes(self.out, number, &bytes);
            }
            Kind::Double => {
                let n = match text {
                    "NaN" => Some(f64::NAN),
                    "Infinity" => Some(f64::INFINITY),
                    "-Infinity" => Some(f64::NEG_INFINITY),
                    other => other.parse().ok(),
                };
                return self.double(n, Found::Str);
            }
            Kind::Int32 | Kind::Int64 | Kind::Fixed32 | Kind::Fixed64 => {
                return self.integer(text.trim().parse::<i128>().ok(), Found::Str);
            }
            Kind::Bool | Kind::Message(_) => return Err(self.wrong(Found::Str)),
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        if !self.wants_array() {
            return Err(self.wrong(Found::Array));
        }
        loop {
            let item = Value {
                message: self.message,
                field: self.field,
                depth: self.depth,
                item: true,
                out: &mut *self.out,
            };
            if items.next_element_seed(item)?.is_none() {
                return Ok(());
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let Kind::Message(inner) = self.field.kind else {
            return Err(self.wrong(Found::Object));
        };
        if self.wants_array() {
            return Err(self.wrong(Found::Object));
        }
        // The nested message is written in place after a one-byte length, which is widened
        // afterwards if the message is 128 bytes or more: no copy for the many small ones.
        let out = self.out;
        protobuf::put_tag(out, self.field.number, LEN);
        let length_at = out.len();
        out.push(0);
        read_message(map, inner, self.depth + 1, out)?;
        let length = out.len() - length_at - 1;
        let mut prefix = Vec::with_capacity(5);
        protobuf::put_varint(&mut prefix, length as u64);
        if prefix.len() > 1 {
            let end = out.len();
            out.resize(end + prefix.len() - 1, 0);
            out.copy_within(length_at + 1..end, length_at + prefix.len());
        }
        out[length_at..length_at + prefix.len()].copy_from_slice(&prefix);
        Ok(())
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let high = (pair[0] as char).to_digit(16)?;
            let low = (pair[1] as char).to_digit(16)?;
            Some((high * 16 + low) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::schema;
    use super::*;

    fn round_trip(json: &str) -> String {
        let bytes = to_protobuf(json.as_bytes(), &schema::REQUEST).unwrap();
        protobuf::check(&bytes, &schema::REQUEST).unwrap();
        let mut out = String::new();
        protobuf::write_json(&bytes, &schema::REQUEST, &mut out);
        out
    }

    #[test]
    fn otlp_json_rules_hex_ids_integers_as_strings_or_numbers_unknown_keys() {
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"scope":{"name":"lib","unknownKey":{"deep":[1,2]}},"spans":[{
              "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174","name":"op",
              "kind":2,"startTimeUnixNano":1544712660000000000,"endTimeUnixNano":"1544712661000000000",
              "attributes":[{"key":"n","value":{"intValue":"-7"}},{"key":"d","value":{"doubleValue":1.5}},
                {"key":"b","value":{"boolValue":true}},{"key":"x","value":{"bytesValue":"Zm9v"}},
                {"key":"a","value":{"arrayValue":{"values":[{"intValue":3}]}}}],
              "status":{"code":2,"message":"boom"},"flags":257,"parentSpanId":""}]}]}]}"#;
        let out = round_trip(json);
        assert_eq!(
            out,
            concat!(
                r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"#,
                r#""scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","#,
                r#""spanId":"eee19b7ec3c1b174","parentSpanId":"","flags":257,"name":"op","kind":2,"#,
                r#""startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","#,
                r#""attributes":[{"key":"n","value":{"intValue":"-7"}},{"key":"d","value":{"doubleValue":1.5}},"#,
                r#"{"key":"b","value":{"boolValue":true}},{"key":"x","value":{"bytesValue":"Zm9v"}},"#,
                r#"{"key":"a","value":{"arrayValue":{"values":[{"intValue":"3"}]}}}],"#,
                r#""status":{"message":"boom","code":2}}]}]}]}"#
            )
        );
        // Output is read back to the same bytes.
        assert_eq!(round_trip(&out), out);
    }

    #[test]
    fn doubles_keep_every_bit() {
        for text in [
            "8.96831017167883e-44",
            "0.1",
            "1.7976931348623157e308",
            "5e-324",
        ] {
            let json = format!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"d","value":{{"doubleValue":{text}}}}}]}}}}]}}"#
            );
            let bytes = to_protobuf(json.as_bytes(), &schema::REQUEST).unwrap();
            let expected = text.parse::<f64>().unwrap().to_bits().to_le_bytes();
            assert_eq!(&bytes[bytes.len() - 8..], &expected, "{text}");
        }
    }

    #[test]
    fn bad_json_says_what_and_where() {
        let cases = [
            (r#"{"resourceSpans":"#, "not JSON"),
            (r#"[]"#, "ExportTraceServiceRequest: an object"),
            (r#"{"resourceSpans":{}}"#, "resourceSpans: an array"),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
                "Span.traceId: an even number of hex digits",
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_SERVER"}]}]}]}"#,
                "Span.kind: a 32-bit integer",
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":-1}]}]}]}"#,
                "Span.startTimeUnixNano",
            ),
        ];
        for (json, expected) in cases {
            let error = to_protobuf(json.as_bytes(), &schema::REQUEST).unwrap_err();
            assert!(error.0.contains(expected), "{json}: {error}");
        }
        assert_eq!(to_protobuf(b"{}", &schema::REQUEST).unwrap(), b"");
    }

    #[test]
    fn nested_messages_of_any_length_are_prefixed_right_and_repeated_keys_add_up() {
        for name_len in [0, 100, 127, 128, 200, 20_000, 3_000_000] {
            let json = format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"name":"{}"}}],"spans":[{{"name":"second"}}]}}]}}]}}"#,
                "n".repeat(name_len)
            );
            let bytes = to_protobuf(json.as_bytes(), &schema::REQUEST).unwrap();
            protobuf::check(&bytes, &schema::REQUEST).unwrap();
            let out = round_trip(&json);
            assert_eq!(
                out,
                format!(
                    r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"name":"{}"}},{{"name":"second"}}]}}]}}]}}"#,
                    "n".repeat(name_len)
                ),
                "{name_len}"
            );
        }
    }
}
