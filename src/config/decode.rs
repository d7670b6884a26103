//! cfg.yaml decoded into the original's `Config` struct the way go-yaml v2 decodes a struct:
//! keys matched exactly, later keys (and merges) overwriting earlier ones, floats truncated
//! into integers, YAML 1.1 booleans, any scalar taken as text, and every type mismatch
//! collected into go-yaml's `yaml: unmarshal errors:` message.

use super::yaml::{Document, Node, NodeId, Scalar, Walker, resolve};

/// What a key holds, as a Go type.
#[derive(Debug)]
pub enum Kind {
    /// Go `int`.
    Int,
    /// Go `string`.
    Text,
    /// Go `*bool`: absent or null stays unset.
    Flag,
    /// A list of strings (ours; Go `[]string`); a single scalar counts as a list of one.
    Texts,
    /// A nested struct.
    Section(&'static Section),
}

/// A Go struct: its type as Go prints it, and its fields by yaml key.
#[derive(Debug)]
pub struct Section {
    /// The type in go-yaml's messages, e.g. `cfg.Config`.
    pub go_type: &'static str,
    /// Field keys and kinds.
    pub fields: &'static [(&'static str, Kind)],
}

/// One decoded field.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// An `int`.
    Int(i64),
    /// A `string`.
    Text(String),
    /// A `*bool`.
    Flag(Option<bool>),
    /// A list of strings.
    Texts(Vec<String>),
    /// A nested struct's fields, in [`Section::fields`] order.
    Section(Vec<Slot>),
}

impl Slot {
    fn zero(kind: &Kind) -> Slot {
        match kind {
            Kind::Int => Slot::Int(0),
            Kind::Text => Slot::Text(String::new()),
            Kind::Flag => Slot::Flag(None),
            Kind::Texts => Slot::Texts(Vec::new()),
            Kind::Section(section) => Slot::Section(zero_fields(section)),
        }
    }
}

fn zero_fields(section: &Section) -> Vec<Slot> {
    section
        .fields
        .iter()
        .map(|(_, kind)| Slot::zero(kind))
        .collect()
}

/// A decoded struct; fields are read by dotted key (`Socket.UDPAddress`).
#[derive(Debug, Clone)]
pub struct Decoded {
    section: &'static Section,
    slots: Vec<Slot>,
}

impl Decoded {
    fn slot(&self, dotted: &str) -> Option<&Slot> {
        let mut section = self.section;
        let mut slots = &self.slots;
        let mut parts = dotted.split('.').peekable();
        while let Some(part) = parts.next() {
            let index = section.fields.iter().position(|(key, _)| *key == part)?;
            let slot = &slots[index];
            if parts.peek().is_none() {
                return Some(slot);
            }
            match (slot, &section.fields[index].1) {
                (Slot::Section(inner), Kind::Section(inner_section)) => {
                    section = inner_section;
                    slots = inner;
                }
                _ => return None,
            }
        }
        None
    }

    /// An `int` field (0 when unknown).
    pub fn int(&self, dotted: &str) -> i64 {
        match self.slot(dotted) {
            Some(Slot::Int(number)) => *number,
            _ => 0,
        }
    }

    /// A `string` field (empty when unknown).
    pub fn text(&self, dotted: &str) -> String {
        match self.slot(dotted) {
            Some(Slot::Text(text)) => text.clone(),
            _ => String::new(),
        }
    }

    /// A list-of-strings field (empty when unset or unknown).
    pub fn texts(&self, dotted: &str) -> Vec<String> {
        match self.slot(dotted) {
            Some(Slot::Texts(texts)) => texts.clone(),
            _ => Vec::new(),
        }
    }

    /// A `*bool` field (`None` when unset or unknown).
    pub fn flag(&self, dotted: &str) -> Option<bool> {
        match self.slot(dotted) {
            Some(Slot::Flag(flag)) => *flag,
            _ => None,
        }
    }
}

/// Decodes `document` into `section`; `Err` holds go-yaml's message.
pub fn decode(document: &Document, section: &'static Section) -> Result<Decoded, String> {
    let mut decoder = Decoder {
        walker: Walker::new(document),
        errors: Vec::new(),
    };
    let mut slots = zero_fields(section);
    if let Some(root) = document.root() {
        decoder.section(root, section, &mut slots)?;
    }
    if !decoder.errors.is_empty() {
        return Err(format!(
            "yaml: unmarshal errors:\n  {}",
            decoder.errors.join("\n  ")
        ));
    }
    Ok(Decoded { section, slots })
}

struct Decoder<'a> {
    walker: Walker<'a>,
    /// go-yaml's type errors: decoding goes on after each.
    errors: Vec<String>,
}

/// `yaml.v2`'s shortening of a scalar in a type error.
fn shown(text: &str) -> String {
    if text.len() > 10 {
        let cut = String::from_utf8_lossy(&text.as_bytes()[..7]);
        format!(" `{cut}...`")
    } else {
        format!(" `{text}`")
    }
}

impl Decoder<'_> {
    fn type_error(&mut self, id: NodeId, tag: &str, go_type: &str) {
        let document = self.walker.document;
        let value = match document.node(id) {
            Node::Scalar { text, .. } => shown(text),
            _ => String::new(),
        };
        self.errors.push(format!(
            "line {}: cannot unmarshal {tag}{value} into {go_type}",
            document.line(id)
        ));
    }

    fn collection_error(&mut self, id: NodeId, go_type: &str) {
        let tag = match self.walker.document.node(id) {
            Node::Sequence(_) => "!!seq",
            _ => "!!map",
        };
        self.type_error(id, tag, go_type);
    }

    /// Decodes node `id` into a struct's fields, which keep what they had for keys it lacks.
    fn section(
        &mut self,
        id: NodeId,
        section: &'static Section,
        slots: &mut Vec<Slot>,
    ) -> Result<(), String> {
        let target = self.walker.enter(id)?;
        let result = self.section_inner(target, section, slots);
        self.walker.leave(id);
        result
    }

    fn section_inner(
        &mut self,
        id: NodeId,
        section: &'static Section,
        slots: &mut Vec<Slot>,
    ) -> Result<(), String> {
        let document = self.walker.document;
        match document.node(id) {
            Node::Scalar {
                text,
                implicit,
                tag,
            } => {
                let (found, scalar) = resolve(text, *implicit, tag.as_deref())?;
                match scalar {
                    Scalar::Null => *slots = zero_fields(section),
                    _ => self.type_error(id, &found, section.go_type),
                }
            }
            Node::Sequence(_) => self.collection_error(id, section.go_type),
            Node::Mapping(pairs) => {
                for &(key, value) in pairs {
                    if self.walker.is_merge_key(key) {
                        for source in self.walker.merge_sources(value)? {
                            self.section(source, section, slots)?;
                        }
                        continue;
                    }
                    let Some(name) = self.key(key)? else {
                        continue;
                    };
                    let Some(index) = section.fields.iter().position(|(field, _)| *field == name)
                    else {
                        continue;
                    };
                    self.field(value, &section.fields[index].1, &mut slots[index])?;
                }
            }
            Node::Alias(_) => return Err("yaml: anchor value contains itself".to_string()),
        }
        Ok(())
    }

    /// A key as the Go string it is matched by; `None` (with a type error) for a list or
    /// mapping used as a key.
    fn key(&mut self, id: NodeId) -> Result<Option<String>, String> {
        let target = self.walker.enter(id)?;
        let result = match self.walker.document.node(target) {
            Node::Scalar {
                text,
                implicit,
                tag,
            } => {
                let (found, scalar) = resolve(text, *implicit, tag.as_deref())?;
                Ok(Some(scalar_text(text, &found, scalar)))
            }
            _ => {
                self.collection_error(target, "string");
                Ok(None)
            }
        };
        self.walker.leave(id);
        result
    }

    fn field(&mut self, id: NodeId, kind: &Kind, slot: &mut Slot) -> Result<(), String> {
        if let (Kind::Section(section), Slot::Section(slots)) = (kind, &mut *slot) {
            return self.section(id, section, slots);
        }
        let target = self.walker.enter(id)?;
        let result = match (kind, self.walker.document.node(target)) {
            (Kind::Texts, Node::Sequence(items)) => self.texts(items, slot),
            _ => self.scalar_field(target, kind, slot),
        };
        self.walker.leave(id);
        result
    }

    /// A list's items into a [`Slot::Texts`], each decoded as a Go `string`.
    fn texts(&mut self, items: &[NodeId], slot: &mut Slot) -> Result<(), String> {
        let mut texts = Vec::with_capacity(items.len());
        for &item in items {
            let mut text = Slot::Text(String::new());
            self.field(item, &Kind::Text, &mut text)?;
            if let Slot::Text(text) = text {
                texts.push(text);
            }
        }
        *slot = Slot::Texts(texts);
        Ok(())
    }

    fn scalar_field(&mut self, id: NodeId, kind: &Kind, slot: &mut Slot) -> Result<(), String> {
        let document = self.walker.document;
        let go_type = match kind {
            Kind::Int => "int",
            Kind::Text | Kind::Texts => "string",
            _ => "bool",
        };
        let Node::Scalar {
            text,
            implicit,
            tag,
        } = document.node(id)
        else {
            self.collection_error(id, go_type);
            return Ok(());
        };
        let (found, scalar) = resolve(text, *implicit, tag.as_deref())?;
        match kind {
            Kind::Int => match scalar {
                Scalar::Null => *slot = Slot::Int(0),
                Scalar::Int(number) => *slot = Slot::Int(number),
                Scalar::Uint(number) if i64::try_from(number).is_ok() => {
                    *slot = Slot::Int(number as i64);
                }
                // Go converts with int64(f): truncated toward zero.
                Scalar::Float(number) => match number.truncate() {
                    Some(whole) => *slot = Slot::Int(whole),
                    None => self.type_error(id, &found, go_type),
                },
                _ => self.type_error(id, &found, go_type),
            },
            Kind::Text => *slot = Slot::Text(scalar_text(text, &found, scalar)),
            Kind::Texts => {
                *slot = match scalar {
                    Scalar::Null => Slot::Texts(Vec::new()),
                    scalar => Slot::Texts(vec![scalar_text(text, &found, scalar)]),
                }
            }
            Kind::Flag => {
                // go-yaml leaves the pointer nil for an untagged `null`, `~` or nothing, but
                // allocates it for other spellings of null (`Null`), which then read false.
                let left_nil = tag.as_deref() == Some("!!null")
                    || (tag.is_none()
                        && (text == "null" || text == "~" || (text.is_empty() && *implicit)));
                match (left_nil, scalar) {
                    (true, Scalar::Null) => *slot = Slot::Flag(None),
                    (true, _) => self.type_error(id, &found, "*bool"),
                    (false, Scalar::Null) => *slot = Slot::Flag(Some(false)),
                    (false, Scalar::Bool(flag)) => *slot = Slot::Flag(Some(flag)),
                    (false, _) => self.type_error(id, &found, go_type),
                }
            }
            Kind::Section(_) => {}
        }
        Ok(())
    }
}

/// A scalar as a Go `string`: empty for null, decoded for `!!binary`, else its text as written
/// (`0x10` stays `0x10`, `yes` stays `yes`).
fn scalar_text(text: &str, tag: &str, scalar: Scalar) -> String {
    match scalar {
        Scalar::Null => String::new(),
        Scalar::Str(decoded) if tag == "!!binary" => decoded,
        _ => text.to_string(),
    }
}
