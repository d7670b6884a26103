//! One UDP datagram from an SDK: `{"format": "json", "version": 1}\n{segment}`.
//!
//! Split and judged as the original daemon does. The header is everything before the first
//! newline, read the way Go's `encoding/json` fills the original's header struct: the
//! `format` must be "json" in any case and the `version` the integer 1. The body is everything
//! after that newline and is not looked at: X-Ray judges each document on its own (a body it
//! cannot read comes back as one unprocessed segment), so a bad body costs no other segment,
//! and the upload encodes whatever bytes it holds (see [`crate::batch`]).

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The datagram was empty. The original ignores these without a count or a log line.
    Empty,
    /// No newline separates a header from a body.
    MissingSeparator,
    /// There is a header but nothing after the newline.
    MissingBody,
    /// The header is not `{"format":"json","version":1}`.
    InvalidHeader,
}

/// At most this much of a refused datagram goes into its warning: enough to recognise the
/// sender's mistake, never a whole 64 KB datagram (the original prints all of it).
const SHOWN_BYTES: usize = 256;

impl Rejection {
    /// The original daemon's warning for `datagram`, one line per warning it logs:
    /// `Invalid header: …` with the header, `Missing header or segment: …` with the header (or,
    /// without a newline, the whole datagram, after the original's `Missing header: …` line).
    /// Control characters show as `.`, bytes that are not UTF-8 as U+FFFD, and a long text is
    /// cut at `SHOWN_BYTES` with its length after it.
    pub fn warning(self, datagram: &[u8]) -> String {
        let header = split(datagram).map_or(datagram, |(header, _)| header);
        match self {
            Rejection::Empty => "Empty datagram".to_owned(),
            Rejection::MissingSeparator => {
                let shown = printable(datagram);
                format!("Missing header: {shown}\nMissing header or segment: {shown}")
            }
            Rejection::MissingBody => format!("Missing header or segment: {}", printable(header)),
            Rejection::InvalidHeader => format!("Invalid header: {}", printable(header)),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Empty => "Empty datagram",
            Rejection::MissingSeparator => "Missing header",
            Rejection::MissingBody => "Missing header or segment",
            Rejection::InvalidHeader => "Invalid header",
        })
    }
}

/// `bytes` for a log line: see [`Rejection::warning`].
fn printable(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(SHOWN_BYTES)];
    let mut text: String = String::from_utf8_lossy(shown)
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    if bytes.len() > SHOWN_BYTES {
        text.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    text
}

/// Returns the segment document carried by `datagram`, or why it is refused.
pub fn segment_body(datagram: &[u8]) -> Result<&[u8], Rejection> {
    if datagram.is_empty() {
        return Err(Rejection::Empty);
    }
    let (header, body) = split(datagram).ok_or(Rejection::MissingSeparator)?;
    if body.is_empty() {
        return Err(Rejection::MissingBody);
    }
    if !header_is_valid(header) {
        return Err(Rejection::InvalidHeader);
    }
    Ok(body)
}

/// The header and body either side of the first newline.
fn split(datagram: &[u8]) -> Option<(&[u8], &[u8])> {
    let newline = datagram.iter().position(|&b| b == b'\n')?;
    Some((&datagram[..newline], &datagram[newline + 1..]))
}

/// Whether `header` decodes to a format of "json" and a version of 1, as the original's
/// `json.Unmarshal` into `{Format string; Version int}` followed by its `IsValid` decides.
///
/// Go's decoder goes on past a value of the wrong type (leaving the field as it was), ignores
/// `null`, lets a later duplicate key win and matches key names ignoring case (with Unicode
/// folding); all of that is followed here. Two differences are left, neither of which an SDK
/// comes near: a `format` string holding bytes that are not UTF-8 or a lone surrogate escape
/// makes the header invalid here (Go reads it as a string other than "json", which a later
/// `format` key could still replace), and nesting deeper than 128 levels is refused.
fn header_is_valid(header: &[u8]) -> bool {
    serde_json::from_slice::<Header>(header).is_ok_and(|h| h.format_is_json && h.version == Some(1))
}

/// What the header sets: whether the format is "json", and the version if it is an integer.
#[derive(Default)]
struct Header {
    format_is_json: bool,
    version: Option<i64>,
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        while let Some(key) = map.next_key::<HeaderKey>()? {
            // A value of another type leaves the field as it was, as in Go.
            match key {
                HeaderKey::Format => match map.next_value::<Field>()? {
                    Field::Text(is_json) => header.format_is_json = is_json,
                    Field::Integer(_) | Field::Unchanged => {}
                },
                HeaderKey::Version => match map.next_value::<Field>()? {
                    Field::Integer(version) => header.version = Some(version),
                    Field::Text(_) | Field::Unchanged => {}
                },
                HeaderKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(header)
    }
}

/// A header key, matched as Go matches a JSON key to a struct field.
enum HeaderKey {
    Format,
    Version,
    Other,
}

impl<'de> Deserialize<'de> for HeaderKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = HeaderKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_bytes<E>(self, key: &[u8]) -> Result<HeaderKey, E> {
                Ok(if folds_to(key, "format", key_fold) {
                    HeaderKey::Format
                } else if folds_to(key, "version", key_fold) {
                    HeaderKey::Version
                } else {
                    HeaderKey::Other
                })
            }
        }
        // As bytes: a key that is not UTF-8 is only another key to Go, never an error.
        deserializer.deserialize_bytes(KeyVisitor)
    }
}

/// A value for `format` or `version`, reduced to what Go would store.
enum Field {
    /// A string; whether it is "json" (Go's `strings.EqualFold`).
    Text(bool),
    /// An integer literal within `i64` (what Go's `strconv.ParseInt` takes).
    Integer(i64),
    /// Anything else: `null`, a fraction, an exponent, a boolean, an array or an object.
    Unchanged,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E>(self, value: &str) -> Result<Field, E> {
                Ok(Field::Text(folds_to(value.as_bytes(), "json", value_fold)))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Field, E> {
                Ok(i64::try_from(value).map_or(Field::Unchanged, Field::Integer))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Field, E> {
                Ok(Field::Integer(value))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Field, E> {
                Ok(Field::Unchanged)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Field, E> {
                Ok(Field::Unchanged)
            }
            fn visit_unit<E>(self) -> Result<Field, E> {
                Ok(Field::Unchanged)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Unchanged)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Unchanged)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// Whether `text` equals the lowercase ASCII `target` once each character is folded by
/// `fold` (which returns the ASCII letter a character matches, if any).
fn folds_to(text: &[u8], target: &str, fold: fn(char) -> Option<char>) -> bool {
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    let mut expected = target.chars();
    text.chars()
        .all(|c| fold(c).is_some_and(|c| Some(c) == expected.next()))
        && expected.next().is_none()
}

/// Go's key matching (`encoding/json` folds a key with `ToUpper(ToLower(r))`): besides ASCII
/// case, the long s `ſ`, the Kelvin sign and the dotted and dotless `İ ı` fold to ASCII.
fn key_fold(c: char) -> Option<char> {
    match c {
        '\u{17F}' => Some('s'),
        '\u{212A}' => Some('k'),
        '\u{130}' | '\u{131}' => Some('i'),
        _ => value_fold(c),
    }
}

/// Go's `strings.EqualFold` against ASCII: ASCII case, and the long s `ſ` and Kelvin sign,
/// which share a case-folding orbit with `s` and `k`.
fn value_fold(c: char) -> Option<char> {
    match c {
        '\u{17F}' => Some('s'),
        '\u{212A}' => Some('k'),
        c if c.is_ascii() => Some(c.to_ascii_lowercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: &str = r#"{"trace_id":"1-5759e988-bd862e3fe1be46a994272793","id":"defdfd9912dc5a56","start_time":1461096053.37518,"end_time":1461096053.4042,"name":"www.example.com"}"#;
    const HEADER: &str = r#"{"format":"json","version":1}"#;

    fn datagram(header: &str, body: &str) -> Vec<u8> {
        format!("{header}\n{body}").into_bytes()
    }

    #[test]
    fn accepts_the_sdk_header_and_returns_the_body_verbatim() {
        let d = datagram(r#"{"format": "json", "version": 1}"#, SEGMENT);
        assert_eq!(segment_body(&d), Ok(SEGMENT.as_bytes()));
    }

    /// Headers the original's `json.Unmarshal` + `IsValid` accepts (Go's decoder rules: keys
    /// fold case, later duplicates win, values of the wrong type and `null` leave a field as
    /// it was).
    #[test]
    fn header_is_read_as_go_reads_it() {
        for header in [
            r#"{"format":"JSON","version":1}"#,
            r#" { "version" : 1 , "format" : "Json" } "#,
            "{\"format\":\"json\",\"version\":1}\r",
            "\t{\"format\":\"json\",\"version\":1}\t",
            r#"{"format":"json","version":1,"extra":"ignored"}"#,
            r#"{"format":"json","version":1,"extra":{"nested":[1,2,{"a":null}]}}"#,
            r#"{"Format":"Json","VERSION":1}"#,
            r#"{"format":"xml","version":1,"format":"json"}"#,
            r#"{"format":"j\u0073on","version":1}"#,
            r#"{"form\u0061t":"json","version":1}"#,
            r#"{"format":"json","version":-0,"version":1}"#,
            // Wrong types and null leave the earlier value.
            r#"{"format":"json","version":1,"format":5}"#,
            r#"{"format":"json","version":1,"version":"2"}"#,
            r#"{"format":"json","version":1,"version":1.0}"#,
            r#"{"format":"json","version":1,"version":null}"#,
            r#"{"format":"json","version":1,"version":[2]}"#,
            r#"{"format":"json","version":1,"version":18446744073709551615}"#,
            r#"{"format":"json","version":1,"format":{"x":1}}"#,
            // Unicode case folding: the long s and Kelvin sign fold into ASCII, and Go's key
            // matching also folds the dotted and dotless i.
            "{\"format\":\"j\u{17F}on\",\"version\":1}",
            "{\"format\":\"json\",\"ver\u{17F}\u{130}on\":1}",
            "{\"format\":\"json\",\"VER\u{17F}\u{131}ON\":1}",
            // A lone surrogate escape elsewhere is only another string to Go.
            r#"{"x\udc00":"\ud800","format":"json","version":1}"#,
        ] {
            assert!(segment_body(&datagram(header, SEGMENT)).is_ok(), "{header}");
        }
        // Nor are bytes that are not UTF-8 in other keys and values.
        let mut latin1 = br#"{"format":"json","version":1,"caf"#.to_vec();
        latin1.extend_from_slice(b"\xe9\":\"\xe9\"}\n{}");
        assert_eq!(segment_body(&latin1), Ok(&b"{}"[..]));
    }

    #[test]
    fn refuses_wrong_headers() {
        for header in [
            r#"{"format":"json","version":2}"#,
            r#"{"format":"xml","version":1}"#,
            r#"{"format":"json","version":"1"}"#,
            r#"{"format":"json","version":1.5}"#,
            r#"{"format":"json","version":1.0}"#,
            r#"{"format":"json","version":1e0}"#,
            r#"{"format":"json","version":true}"#,
            r#"{"format":"json"}"#,
            r#"{"version":1}"#,
            r#"{"format":null,"version":1}"#,
            r#"{"format":"json ","version":1}"#,
            r#"{"format":"jsonx","version":1}"#,
            r#"{"formats":"json","version":1}"#,
            r#"["json",1]"#,
            r#""json""#,
            "null",
            r#"{"format":"json","version":1"#,
            r#"{"format":"json","version":1} x"#,
            r#"{"format":"json","version":1},"#,
            r#"{"format":"json","version":01}"#,
            r#"{"format":5,"version":1}"#,
            r#"{"format":"json","version":1,"version":2}"#,
            "\u{FEFF}{\"format\":\"json\",\"version\":1}",
            // The dotted and dotless i fold only in keys, the long s and Kelvin sign only
            // into "s" and "k".
            "{\"format\":\"\u{130}son\",\"version\":1}",
            "{\"f\u{17F}rmat\":\"json\",\"version\":1}",
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
            segment_body(format!("{HEADER}\n").as_bytes()),
            Err(Rejection::MissingBody)
        );
        assert_eq!(segment_body(b"\n"), Err(Rejection::MissingBody));
        // An empty header is judged as a header: Go's Unmarshal of nothing fails.
        assert_eq!(
            segment_body(format!("\n{SEGMENT}").as_bytes()),
            Err(Rejection::InvalidHeader)
        );
    }

    /// The original uploads whatever follows a valid header; X-Ray judges it.
    #[test]
    fn any_body_after_a_valid_header_is_kept_byte_for_byte() {
        let mut bodies: Vec<Vec<u8>> = [
            "{\"id\":",
            "[1,2]",
            "42",
            "\"text\"",
            "{} {}",
            "nonsense",
            "{\"name\":\"raw\ttab\"}",
            "{\"a\":1}\0",
            " ",
            "\n",
            "{\"line\":\"\u{2028}\"}",
        ]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect();
        bodies.push(b"{\"name\":\"caf\xe9\"}".to_vec());
        bodies.push(vec![0xff, 0xfe, 0x00, 0x80]);
        for body in bodies {
            let mut d = format!("{HEADER}\n").into_bytes();
            d.extend_from_slice(&body);
            assert_eq!(segment_body(&d), Ok(&body[..]), "{body:?}");
        }
    }

    #[test]
    fn a_body_may_contain_newlines_and_unicode() {
        let body = "{\n  \"name\": \"caf\u{e9} \u{1F600}\",\n  \"id\": \"a\\nb\"\n}";
        let d = datagram(HEADER, body);
        assert_eq!(segment_body(&d), Ok(body.as_bytes()));
    }

    #[test]
    fn a_maximum_size_datagram_is_accepted_whole() {
        let filler = "x".repeat(65_507 - HEADER.len() - 1 - r#"{"a":""}"#.len());
        let body = format!(r#"{{"a":"{filler}"}}"#);
        let d = datagram(HEADER, &body);
        assert_eq!(d.len(), 65_507);
        assert_eq!(segment_body(&d).map(<[u8]>::len), Ok(body.len()));
    }

    /// The original's warnings (`log.Warnf` in daemon.go and util.SplitHeaderBody), with the
    /// text they print.
    #[test]
    fn warnings_are_the_originals() {
        let no_newline = br#"{"id":"1"}"#;
        assert_eq!(
            Rejection::MissingSeparator.warning(no_newline),
            "Missing header: {\"id\":\"1\"}\nMissing header or segment: {\"id\":\"1\"}"
        );
        let header_only = format!("{HEADER}\n");
        assert_eq!(
            Rejection::MissingBody.warning(header_only.as_bytes()),
            format!("Missing header or segment: {HEADER}")
        );
        let bad = datagram(r#"{"format":"json","version":2}"#, SEGMENT);
        assert_eq!(
            Rejection::InvalidHeader.warning(&bad),
            r#"Invalid header: {"format":"json","version":2}"#
        );
        assert_eq!(
            Rejection::InvalidHeader.warning(b"\x01bad\xff\r\n{}"),
            "Invalid header: .bad\u{FFFD}."
        );
        let long = vec![b'a'; 1000];
        let warning = Rejection::MissingSeparator.warning(&long);
        assert!(warning.ends_with("a... (1000 bytes)"), "{warning}");
        assert!(warning.len() < 2 * SHOWN_BYTES + 100, "{warning}");
    }
}
