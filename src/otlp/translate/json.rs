//! JSON written straight into a document's bytes, the same bytes serde_json writes: strings
//! escaped as it escapes them (with a fast path for text that needs no escape, which is
//! nearly all of it), and objects whose members the caller gives in key order, as a
//! `serde_json::Map` would hold them.

/// Eight copies of byte `b`, for the word-at-a-time scan.
const fn repeat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// Whether serde_json escapes some byte of `word`: a control character (below 0x20), `"`
/// or `\`. Each test is the classic "has a zero byte" / "has a byte below n" bit trick,
/// which never misses a byte and can only err on bytes after one it found.
fn word_needs_escape(word: u64) -> bool {
    let low = repeat(0x01);
    let high = repeat(0x80);
    let control = word.wrapping_sub(repeat(0x20)) & !word & high;
    let quote = word ^ repeat(b'"');
    let quote = quote.wrapping_sub(low) & !quote & high;
    let backslash = word ^ repeat(b'\\');
    let backslash = backslash.wrapping_sub(low) & !backslash & high;
    control | quote | backslash != 0
}

/// Whether serde_json escapes some byte of `text`.
pub fn needs_escape(text: &[u8]) -> bool {
    let mut words = text.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        if word_needs_escape(u64::from_ne_bytes(bytes)) {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `text` as a JSON string.
pub fn string(out: &mut Vec<u8>, text: &str) {
    string_of(out, "", text);
}

/// Appends `prefix` and `text`, joined, as one JSON string.
pub fn string_of(out: &mut Vec<u8>, prefix: &str, text: &str) {
    if !needs_escape(prefix.as_bytes()) && !needs_escape(text.as_bytes()) {
        out.reserve(prefix.len() + text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    let joined = [prefix, text].concat();
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &joined);
}

/// Appends an integer.
pub fn int(out: &mut Vec<u8>, value: i64) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &value);
}

/// An object being written: members are added in key order; an object left without members
/// is taken back out (with its key, for a member), so a block with nothing to say leaves no
/// trace.
pub struct Object {
    /// Where it starts: its `{`, or for a member the `,` or key before it.
    start: usize,
    /// Whether a member has been written.
    any: bool,
    /// For a member, whether its parent had a member before it.
    parent_had: bool,
}

impl Object {
    /// Opens an object at the end of `out`.
    pub fn begin(out: &mut Vec<u8>) -> Object {
        let start = out.len();
        out.push(b'{');
        Object {
            start,
            any: false,
            parent_had: false,
        }
    }

    /// Opens an object as the member `key`, to be closed with [`Object::end_in`].
    pub fn object(&mut self, out: &mut Vec<u8>, key: &str) -> Object {
        let (start, parent_had) = (out.len(), self.any);
        self.key(out, key);
        out.push(b'{');
        Object {
            start,
            any: false,
            parent_had,
        }
    }

    /// Writes `"key":`, the member's value being the caller's to write next.
    pub fn key(&mut self, out: &mut Vec<u8>, key: &str) {
        if self.any {
            out.push(b',');
        }
        self.any = true;
        string(out, key);
        out.push(b':');
    }

    /// Writes a text member when `value` is not empty.
    pub fn text(&mut self, out: &mut Vec<u8>, key: &str, value: Option<&str>) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.key(out, key);
            string(out, value);
        }
    }

    /// Writes an integer member when there is one.
    pub fn int(&mut self, out: &mut Vec<u8>, key: &str, value: Option<i64>) {
        if let Some(value) = value {
            self.key(out, key);
            int(out, value);
        }
    }

    /// Closes the object; without members it is removed. Whether it was kept.
    pub fn end(self, out: &mut Vec<u8>) -> bool {
        if self.any {
            out.push(b'}');
        } else {
            out.truncate(self.start);
        }
        self.any
    }

    /// Closes a member opened with [`Object::object`] in `parent`; without members it is
    /// removed with its key. Whether it was kept.
    pub fn end_in(self, parent: &mut Object, out: &mut Vec<u8>) -> bool {
        let parent_had = self.parent_had;
        let kept = self.end(out);
        if !kept {
            parent.any = parent_had;
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_the_bytes_serde_json_writes() {
        let mut texts: Vec<String> = vec![
            String::new(),
            "plain text of some length, more than eight bytes".into(),
            "é ü 漢字 🎉 and ascii".into(),
            "\u{7f}\u{80}\u{2028}".into(),
        ];
        // Every byte that needs an escape, at every position of a word and of the tail.
        for special in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..19 {
                let mut text = "abcdefghijklmnopqrs".to_string().into_bytes();
                text[at] = special;
                texts.push(String::from_utf8(text).expect("ASCII"));
            }
        }
        // Bytes around the bounds of the tests, which must not be escaped.
        for b in [0x20u8, 0x21, 0x23, 0x5b, 0x5d, 0x7e] {
            texts.push(String::from_utf8(vec![b; 17]).expect("ASCII"));
        }
        for text in &texts {
            let mut out = Vec::new();
            string(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).expect("JSON"), "{text:?}");
            for (prefix, rest) in (0..=text.len())
                .filter(|&at| text.is_char_boundary(at))
                .map(|at| text.split_at(at))
            {
                let mut out = Vec::new();
                string_of(&mut out, prefix, rest);
                assert_eq!(out, serde_json::to_vec(text).expect("JSON"), "{text:?}");
            }
        }
    }

    #[test]
    fn objects_without_members_are_removed() {
        let mut out = b"[".to_vec();
        let mut object = Object::begin(&mut out);
        object.text(&mut out, "a", Some(""));
        object.int(&mut out, "b", None);
        assert!(!object.end(&mut out));
        assert_eq!(out, b"[");
        let mut object = Object::begin(&mut out);
        object.int(&mut out, "a", Some(-3));
        object.text(&mut out, "b", Some("x\"y"));
        assert!(object.end(&mut out));
        assert_eq!(out, br#"[{"a":-3,"b":"x\"y"}"#);
        // Members that are objects: an empty one goes with its key and comma.
        for (first, second, want) in [
            (true, true, &br#"{"a":{"x":1},"b":{"x":1}}"#[..]),
            (true, false, br#"{"a":{"x":1}}"#),
            (false, true, br#"{"b":{"x":1}}"#),
            (false, false, b""),
        ] {
            let mut out = Vec::new();
            let mut outer = Object::begin(&mut out);
            for (key, set) in [("a", first), ("b", second)] {
                let mut inner = outer.object(&mut out, key);
                inner.int(&mut out, "x", set.then_some(1));
                assert_eq!(inner.end_in(&mut outer, &mut out), set);
            }
            outer.end(&mut out);
            assert_eq!(out, want);
        }
    }
}
