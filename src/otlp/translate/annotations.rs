//! Annotations (indexed, searchable) and metadata (everything else) from the span's and the
//! resource's attributes. Values keep their types.

use super::json::{self, Object};
use super::span::{AnyValue, Attributes, double_json};
use std::borrow::Cow;

/// The attribute listing attribute names to annotate, as the reference exporter reads it.
pub const ANNOTATIONS_ATTRIBUTE: &str = "aws.xray.annotations";

/// The metadata key prefix of resource attributes (the reference exporter's).
pub const RESOURCE_PREFIX: &str = "otel.resource.";

/// X-Ray keeps at most 50 annotations; more are written as metadata.
pub const MAX_ANNOTATIONS: usize = 50;

/// X-Ray takes annotation keys up to 500 characters.
pub const MAX_KEY_CHARS: usize = 500;

/// X-Ray takes annotation string values up to 1,000 characters.
pub const MAX_VALUE_CHARS: usize = 1000;

/// Which attributes are annotations (cfg `OTLP.IndexedAttributes`, `OTLP.IndexAllAttributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexing {
    /// Attribute names to annotate (a resource attribute as `otel.resource.<name>`).
    pub indexed: Vec<String>,
    /// Annotate every span attribute that is a string, number or boolean and is not already
    /// in a block of the document.
    pub all: bool,
}

/// An annotation key as X-Ray takes it: ASCII letters, digits and `_` (anything else becomes
/// `_`), at most [`MAX_KEY_CHARS`].
pub fn clean_key(key: &str) -> String {
    key.chars()
        .take(MAX_KEY_CHARS)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Whether X-Ray takes `value` as an annotation: a string, number or boolean.
fn annotatable(value: &AnyValue<'_>) -> bool {
    matches!(
        value,
        AnyValue::Str(_) | AnyValue::Bool(_) | AnyValue::Int(_) | AnyValue::Double(_)
    )
}

/// `key` as [`clean_key`] gives it, borrowed when it is clean already.
fn cleaned(key: Cow<'_, str>) -> Cow<'_, str> {
    if key.len() <= MAX_KEY_CHARS && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        key
    } else {
        Cow::Owned(clean_key(&key))
    }
}

/// Appends `annotations` (in key order, as [`split`] leaves them) as a JSON object, the same
/// bytes as a `serde_json` map of them: strings cut to [`MAX_VALUE_CHARS`] characters,
/// numbers and booleans as they are. Whether there were any (nothing is written if not).
pub fn write(annotations: &[(Cow<'_, str>, &AnyValue<'_>)], out: &mut Vec<u8>) -> bool {
    let mut object = Object::begin(out);
    for (key, value) in annotations {
        object.key(out, key);
        match value {
            AnyValue::Str(text) => {
                let cut = match text.char_indices().nth(MAX_VALUE_CHARS) {
                    Some((at, _)) => &text[..at],
                    None => text,
                };
                json::string(out, cut);
            }
            AnyValue::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
            AnyValue::Int(v) => json::int(out, *v),
            AnyValue::Double(v) => {
                // Writing into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, &double_json(*v));
            }
            // Never annotated (see `annotatable`).
            _ => out.extend_from_slice(b"null"),
        }
    }
    object.end(out)
}

/// What [`split`] gives: annotations, the `default` metadata, and `user`.
#[derive(Debug, Default)]
pub struct Attributed<'a> {
    /// `annotations`: keys as X-Ray takes them (unique, in key order) and the values as
    /// they are in the span, written by [`write()`].
    pub annotations: Vec<(Cow<'a, str>, &'a AnyValue<'a>)>,
    /// `metadata.default`: keys (unique, as a prefix and the attribute's key, so that a
    /// resource attribute's key is not built) and the values as they are in the span,
    /// written straight into the document (no JSON value built for each).
    pub metadata: Vec<(&'static str, &'a str, &'a AnyValue<'a>)>,
    /// `user`, from `enduser.id` (segments only).
    pub user: Option<String>,
}

/// Sorts the attributes into annotations and metadata. Attributes a block of the document
/// has used are left out, unless named for indexing; resource attributes are written for
/// segments only.
pub fn split<'a>(
    attributes: &'a Attributes<'a>,
    resource: &'a Attributes<'a>,
    indexing: &Indexing,
    is_segment: bool,
) -> Attributed<'a> {
    let mut out = Attributed::default();
    let room = attributes.len() + if is_segment { resource.len() } else { 0 };
    out.metadata.reserve(room);
    if is_segment {
        out.user = attributes.text(&["enduser.id"]);
    }
    let listed: Vec<String> = attributes
        .take(ANNOTATIONS_ATTRIBUTE)
        .map(|v| {
            v.array()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let named = |key: &str| indexing.indexed.iter().chain(&listed).any(|k| k == key);
    let annotate = |key: Cow<'a, str>, value: &'a AnyValue<'a>, out: &mut Attributed<'a>| {
        // An empty key is no key X-Ray can index: the attribute stays metadata.
        if out.annotations.len() >= MAX_ANNOTATIONS || key.is_empty() || !annotatable(value) {
            return false;
        }
        // Two keys may clean to the same: the later value replaces the earlier, as in a map.
        let key = cleaned(key);
        match out.annotations.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => out.annotations.push((key, value)),
        }
        true
    };
    for (key, value, used) in attributes.iter() {
        if key == ANNOTATIONS_ATTRIBUTE || (used && !named(key)) {
            continue;
        }
        let wanted = named(key) || (indexing.all && !used);
        if wanted && annotate(Cow::Borrowed(key), value, &mut out) {
            continue;
        }
        if !used {
            // Span attribute keys are unique (Attributes keeps the first of a repeated key).
            out.metadata.push(("", key, value));
        }
    }
    if is_segment {
        let is_full_key = |key: &str, full: &str| full.strip_prefix(RESOURCE_PREFIX) == Some(key);
        for (key, value, _) in resource.iter() {
            let named = indexing
                .indexed
                .iter()
                .chain(&listed)
                .any(|k| is_full_key(key, k));
            let full = || Cow::Owned(format!("{RESOURCE_PREFIX}{key}"));
            if named && annotate(full(), value, &mut out) {
                continue;
            }
            // A span attribute named like this one is replaced, as a map insert would.
            match out
                .metadata
                .iter_mut()
                .find(|(prefix, k, _)| prefix.is_empty() && is_full_key(key, k))
            {
                Some(entry) => entry.2 = value,
                None => out.metadata.push((RESOURCE_PREFIX, key, value)),
            }
        }
    }
    // The order a map keeps (keys are unique).
    out.annotations.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
    out
}
