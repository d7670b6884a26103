//! OTLP JSON → protobuf: the JSON encoding of `ExportTraceServiceRequest` read with the OTLP
//! rules (lowerCamelCase keys, hex trace and span ids, 64-bit integers as strings or numbers,
//! enums as integers, unknown keys ignored, `null` as absent) and written as the same message
//! in protobuf, so everything after the receiver handles one format.

use super::protobuf::{self, DecodeError, I32, I64, MAX_DEPTH, VARINT};
use super::schema::{Field, Kind, Message};
use serde_json::Value;

/// Reads `body`, OTLP JSON of `message`, and returns it as protobuf.
pub fn to_protobuf(body: &[u8], message: &'static Message) -> Result<Vec<u8>, DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| DecodeError(format!("not JSON: {error}")))?;
    let mut out = Vec::with_capacity(body.len() / 2);
    encode_message(&value, message, 0, &mut out)?;
    Ok(out)
}

fn encode_message(
    value: &Value,
    message: &'static Message,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError(format!(
            "{}: nested more than {MAX_DEPTH} levels deep",
            message.name
        )));
    }
    let Value::Object(object) = value else {
        return Err(DecodeError(format!(
            "{}: an object was expected, not {}",
            message.name,
            kind_of(value)
        )));
    };
    for (key, value) in object {
        let Some(field) = message.fields.iter().find(|f| f.name == key) else {
            continue;
        };
        match value {
            Value::Null => {}
            Value::Array(items) if field.repeated => {
                for item in items {
                    encode_field(item, message, field, depth, out)?;
                }
            }
            _ if field.repeated => {
                return Err(DecodeError(format!(
                    "{}.{}: an array was expected, not {}",
                    message.name,
                    field.name,
                    kind_of(value)
                )));
            }
            _ => encode_field(value, message, field, depth, out)?,
        }
    }
    Ok(())
}

fn encode_field(
    value: &Value,
    message: &'static Message,
    field: &Field,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let bad = |expected: &str| {
        DecodeError(format!(
            "{}.{}: {expected} was expected, not {}",
            message.name,
            field.name,
            kind_of(value)
        ))
    };
    let number = field.number;
    match field.kind {
        Kind::Str => {
            let text = value.as_str().ok_or_else(|| bad("a string"))?;
            protobuf::put_bytes(out, number, text.as_bytes());
        }
        Kind::HexId => {
            let text = value.as_str().ok_or_else(|| bad("a hex string"))?;
            let bytes = hex_decode(text).ok_or_else(|| bad("an even number of hex digits"))?;
            protobuf::put_bytes(out, number, &bytes);
        }
        Kind::Base64 => {
            let text = value.as_str().ok_or_else(|| bad("a base64 string"))?;
            let bytes = protobuf::base64_decode(text).ok_or_else(|| bad("base64"))?;
            protobuf::put_bytes(out, number, &bytes);
        }
        Kind::Int32 => {
            let n = integer(value)
                .and_then(|n| i64::try_from(n).ok())
                .filter(|n| *n >= i64::from(i32::MIN) && *n <= i64::from(u32::MAX))
                .ok_or_else(|| bad("a 32-bit integer"))?;
            protobuf::put_tag(out, number, VARINT);
            protobuf::put_varint(out, n as u64);
        }
        Kind::Int64 => {
            let n = integer(value)
                .and_then(|n| i64::try_from(n).ok())
                .ok_or_else(|| bad("a 64-bit integer"))?;
            protobuf::put_tag(out, number, VARINT);
            protobuf::put_varint(out, n as u64);
        }
        Kind::Fixed32 => {
            let n = integer(value)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad("an unsigned 32-bit integer"))?;
            protobuf::put_tag(out, number, I32);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Kind::Fixed64 => {
            let n = integer(value)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| bad("an unsigned 64-bit integer"))?;
            protobuf::put_tag(out, number, I64);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Kind::Double => {
            let n = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(text) => match text.as_str() {
                    "NaN" => Some(f64::NAN),
                    "Infinity" => Some(f64::INFINITY),
                    "-Infinity" => Some(f64::NEG_INFINITY),
                    other => other.parse().ok(),
                },
                _ => None,
            }
            .ok_or_else(|| bad("a number"))?;
            protobuf::put_tag(out, number, I64);
            out.extend_from_slice(&n.to_bits().to_le_bytes());
        }
        Kind::Bool => {
            let b = value.as_bool().ok_or_else(|| bad("true or false"))?;
            protobuf::put_tag(out, number, VARINT);
            protobuf::put_varint(out, u64::from(b));
        }
        Kind::Message(inner) => {
            let mut nested = Vec::new();
            encode_message(value, inner, depth + 1, &mut nested)?;
            protobuf::put_bytes(out, number, &nested);
        }
    }
    Ok(())
}

/// An integer given as a JSON number or a decimal string (as protobuf's JSON mapping allows).
fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                // 1e3 or 5.0: integral values written as floats.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1.8e19)
                    .map(|f| f as i128)
            }),
        Value::String(text) => text.trim().parse::<i128>().ok(),
        _ => None,
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

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
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
}
