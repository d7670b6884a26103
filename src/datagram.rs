//! One UDP datagram from an SDK: `{"format": "json", "version": 1}\n{segment}`.
//!
//! The header must be a JSON object whose `format` is "json" (any case) and whose `version` is
//! the integer 1, as the original daemon requires. The body is forwarded verbatim, but only if
//! it is a UTF-8 JSON object: X-Ray would refuse anything else, and refusing it here keeps it
//! out of the pool.

use serde::Deserialize;
use serde::de::IgnoredAny;
use std::fmt;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The datagram was empty.
    Empty,
    /// No newline separates a header from a body.
    MissingSeparator,
    /// There is a header but nothing after the newline.
    MissingBody,
    /// The header is not `{"format":"json","version":1}`.
    InvalidHeader,
    /// The body is not valid UTF-8.
    BodyNotUtf8,
    /// The body is not a single JSON object.
    BodyNotJsonObject,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Empty => "Empty datagram",
            Rejection::MissingSeparator => "Missing header or segment (no newline)",
            Rejection::MissingBody => "Missing header or segment (nothing after the header)",
            Rejection::InvalidHeader => "Invalid header",
            Rejection::BodyNotUtf8 => "Segment is not valid UTF-8",
            Rejection::BodyNotJsonObject => "Segment is not a JSON object",
        })
    }
}

/// The two facts about a header that matter. Read by hand rather than derived because Go's
/// decoder, which SDKs were written against, matches key names ignoring case
/// (`{"Format":"JSON","VERSION":1}` is valid) and a later duplicate key wins.
#[derive(Default)]
struct Header {
    format_is_json: bool,
    version_is_one: bool,
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> serde::de::Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        while let Some(key) = map.next_key::<HeaderKey>()? {
            match key {
                HeaderKey::Format => header.format_is_json = map.next_value::<IsJson>()?.0,
                HeaderKey::Version => header.version_is_one = map.next_value::<i64>()? == 1,
                HeaderKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(header)
    }
}

enum HeaderKey {
    Format,
    Version,
    Other,
}

impl<'de> Deserialize<'de> for HeaderKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = HeaderKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<HeaderKey, E> {
                Ok(if key.eq_ignore_ascii_case("format") {
                    HeaderKey::Format
                } else if key.eq_ignore_ascii_case("version") {
                    HeaderKey::Version
                } else {
                    HeaderKey::Other
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// Whether a string value is "json" in any case, read without allocating.
struct IsJson(bool);

impl<'de> Deserialize<'de> for IsJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl serde::de::Visitor<'_> for ValueVisitor {
            type Value = IsJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, value: &str) -> Result<IsJson, E> {
                Ok(IsJson(value.eq_ignore_ascii_case("json")))
            }
        }
        deserializer.deserialize_str(ValueVisitor)
    }
}

/// Returns the segment document carried by `datagram`, or why it is refused.
pub fn segment_body(datagram: &[u8]) -> Result<&[u8], Rejection> {
    if datagram.is_empty() {
        return Err(Rejection::Empty);
    }
    let newline = datagram
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Rejection::MissingSeparator)?;
    let (header, body) = (&datagram[..newline], &datagram[newline + 1..]);
    if body.is_empty() {
        return Err(Rejection::MissingBody);
    }
    if !header_is_valid(header) {
        return Err(Rejection::InvalidHeader);
    }
    check_body(body)?;
    Ok(body)
}

fn header_is_valid(header: &[u8]) -> bool {
    serde_json::from_slice::<Header>(header).is_ok_and(|h| h.format_is_json && h.version_is_one)
}

fn check_body(body: &[u8]) -> Result<(), Rejection> {
    // serde_json does not check UTF-8 inside strings it skips, so check it first.
    std::str::from_utf8(body).map_err(|_| Rejection::BodyNotUtf8)?;
    if first_non_whitespace(body) != Some(b'{') {
        return Err(Rejection::BodyNotJsonObject);
    }
    serde_json::from_slice::<IgnoredAny>(body).map_err(|_| Rejection::BodyNotJsonObject)?;
    Ok(())
}

fn first_non_whitespace(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: &str = r#"{"trace_id":"1-5759e988-bd862e3fe1be46a994272793","id":"defdfd9912dc5a56","start_time":1461096053.37518,"end_time":1461096053.4042,"name":"www.example.com"}"#;

    fn datagram(header: &str, body: &str) -> Vec<u8> {
        format!("{header}\n{body}").into_bytes()
    }

    #[test]
    fn accepts_the_sdk_header_and_returns_the_body_verbatim() {
        let d = datagram(r#"{"format": "json", "version": 1}"#, SEGMENT);
        assert_eq!(segment_body(&d), Ok(SEGMENT.as_bytes()));
    }

    #[test]
    fn header_format_is_case_insensitive_and_whitespace_is_free() {
        for header in [
            r#"{"format":"JSON","version":1}"#,
            r#" { "version" : 1 , "format" : "Json" } "#,
            "{\"format\":\"json\",\"version\":1}\r",
            r#"{"format":"json","version":1,"extra":"ignored"}"#,
            r#"{"Format":"Json","VERSION":1}"#,
            r#"{"format":"xml","version":1,"format":"json"}"#,
            r#"{"format":"j\u0073on","version":1}"#,
        ] {
            assert!(segment_body(&datagram(header, SEGMENT)).is_ok(), "{header}");
        }
    }

    #[test]
    fn refuses_wrong_headers() {
        for header in [
            r#"{"format":"json","version":2}"#,
            r#"{"format":"xml","version":1}"#,
            r#"{"format":"json","version":"1"}"#,
            r#"{"format":"json","version":1.5}"#,
            r#"{"format":"json"}"#,
            r#"{"version":1}"#,
            r#"["json",1]"#,
            r#"{"format":"json","version":1"#,
            r#"{"format":5,"version":1}"#,
            r#"{"format":"json","version":1,"version":2}"#,
            "",
        ] {
            assert_eq!(
                segment_body(&datagram(header, SEGMENT)),
                Err(Rejection::InvalidHeader),
                "{header}"
            );
        }
    }

    #[test]
    fn refuses_datagrams_without_a_header_or_body() {
        assert_eq!(segment_body(b""), Err(Rejection::Empty));
        assert_eq!(
            segment_body(SEGMENT.as_bytes()),
            Err(Rejection::MissingSeparator)
        );
        assert_eq!(
            segment_body(b"{\"format\":\"json\",\"version\":1}\n"),
            Err(Rejection::MissingBody)
        );
    }

    #[test]
    fn refuses_bodies_that_are_not_json_objects() {
        let header = r#"{"format":"json","version":1}"#;
        for body in ["{\"id\":", "[1,2]", "42", "\"text\"", "{} {}", "nonsense"] {
            assert_eq!(
                segment_body(&datagram(header, body)),
                Err(Rejection::BodyNotJsonObject),
                "{body}"
            );
        }
        let mut binary = datagram(header, "{\"name\":\"");
        binary.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
        assert_eq!(segment_body(&binary), Err(Rejection::BodyNotUtf8));
    }

    #[test]
    fn a_body_may_contain_newlines_and_unicode() {
        let body = "{\n  \"name\": \"caf\u{e9} \u{1F600}\",\n  \"id\": \"a\\nb\"\n}";
        let d = datagram(r#"{"format":"json","version":1}"#, body);
        assert_eq!(segment_body(&d), Ok(body.as_bytes()));
    }

    #[test]
    fn a_maximum_size_datagram_is_accepted_whole() {
        let header = r#"{"format":"json","version":1}"#;
        let filler = "x".repeat(65_507 - header.len() - 1 - r#"{"a":""}"#.len());
        let body = format!(r#"{{"a":"{filler}"}}"#);
        let d = datagram(header, &body);
        assert_eq!(d.len(), 65_507);
        assert_eq!(segment_body(&d).map(<[u8]>::len), Ok(body.len()));
    }
}
