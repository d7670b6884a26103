//! cfg.yaml's text read as the original's library, gopkg.in/yaml.v2, reads it.
//!
//! yaml-rust2 supplies the parser events; the tree, the YAML 1.1 scalar resolution (`yes` is a
//! boolean, `010` is octal, `2.0` is a float), merge keys, repeated keys and the error texts are
//! go-yaml v2's, so that a file means the same here as there and fails with the same words.

use super::number::Float;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{ScanError, TScalarStyle};

/// How many node visits one decode may make; a few aliases can expand a small file
/// exponentially, which go-yaml refuses as "excessive aliasing".
const VISIT_BUDGET: usize = 1_000_000;

/// How deep collections and aliases may nest; the decode recurses once per level.
const MAX_DEPTH: usize = 500;

/// How many `key:<tab>value` spots one file may have re-spaced (see [`Document::parse`]).
const MAX_TAB_FIXES: usize = 1000;

/// yaml-rust2's complaint about a tab after a mapping value's `:`.
const TAB_AFTER_COLON: &str = "':' must be followed by a valid YAML whitespace";

/// Index of a node in a [`Document`].
pub type NodeId = usize;

/// A node of the first document.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A scalar as written, before resolution.
    Scalar {
        /// The scalar's text after unquoting.
        text: String,
        /// Plain (unquoted, not a block scalar) and untagged: go-yaml's "implicit".
        implicit: bool,
        /// Explicit tag in short form (`!!int`, `!local`), if any.
        tag: Option<String>,
    },
    /// A sequence.
    Sequence(Vec<NodeId>),
    /// A mapping's key and value nodes, in file order, repeated keys included.
    Mapping(Vec<(NodeId, NodeId)>),
    /// `*name`: the node the anchor names.
    Alias(NodeId),
}

/// The first YAML document of a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    nodes: Vec<Node>,
    /// 1-based line each node starts on.
    lines: Vec<usize>,
    /// The anchor name each alias node uses, for messages.
    alias_names: Vec<(NodeId, String)>,
    root: Option<NodeId>,
}

/// A scalar after go-yaml's resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `~`, `null`, empty.
    Null,
    /// YAML 1.1 booleans: `true`, `yes`, `on`, `y` and their negations and capitalisations.
    Bool(bool),
    /// An integer that fits in 64 signed bits.
    Int(i64),
    /// A larger positive integer.
    Uint(u64),
    /// A float (also `.inf`, `.nan`).
    Float(Float),
    /// A date or time (kept as text, as go-yaml does for untyped targets).
    Timestamp,
    /// Text: a quoted scalar, a plain one that is nothing else, or one with a tag go-yaml does
    /// not resolve; `!!binary` already decoded.
    Str(String),
}

/// A value decoded without a target type, as go-yaml decodes into `interface{}` with
/// `yaml.MapSlice` for mappings.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A null.
    Nil,
    /// A resolved scalar (never [`Scalar::Null`]) and its text as written.
    Scalar(Scalar, String),
    /// A sequence.
    List(Vec<Value>),
    /// A mapping, in file order; the keys of merged mappings are dropped, as go-yaml v2
    /// drops them when decoding into a `MapSlice`.
    Map(Vec<(Value, Value)>),
}

impl Document {
    /// Parses text: the whole text is checked for characters YAML forbids, then the first
    /// document is read. Errors are go-yaml's messages (`yaml: line 3: …`).
    pub fn parse(text: &str) -> Result<Document, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        check_characters(text)?;
        let mut retabbed: Option<String> = None;
        for _ in 0..MAX_TAB_FIXES {
            let current = retabbed.as_deref().unwrap_or(text);
            match Self::build(current) {
                Ok(document) => return Ok(document),
                // libyaml takes a tab after a value's `:` as the blank it is; yaml-rust2 does not
                // when the value starts with a letter or `-`. The tabs end just before the mark.
                Err(error) if error.info() == TAB_AFTER_COLON => {
                    let fixed = tabs_to_spaces_before(current, error.marker().index());
                    if fixed == current {
                        return Err(go_syntax_error(&error, current));
                    }
                    retabbed = Some(fixed);
                }
                Err(error) => return Err(go_syntax_error(&error, current)),
            }
        }
        Err(format!("yaml: {TAB_AFTER_COLON}"))
    }

    fn build(text: &str) -> Result<Document, ScanError> {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        // Byte offset of each character, made at the first alias: markers count characters.
        let mut offsets: Vec<usize> = Vec::new();
        loop {
            let (event, mark) = parser.next_token()?;
            match event {
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::Nothing | Event::StreamStart | Event::DocumentStart => {}
                Event::Alias(anchor) => {
                    let target = builder
                        .anchors
                        .get(anchor)
                        .copied()
                        .flatten()
                        .ok_or_else(|| ScanError::new(mark, "unknown anchor referenced"))?;
                    let id = builder.add(Node::Alias(target), 0, mark.line());
                    if offsets.is_empty() {
                        offsets = text.char_indices().map(|(at, _)| at).collect();
                    }
                    let start = offsets.get(mark.index() + 1).copied().unwrap_or(text.len());
                    let name: String = text[start..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                        .collect();
                    builder.alias_names.push((id, name));
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let tag = tag.map(short_tag);
                    let node = Node::Scalar {
                        implicit: style == TScalarStyle::Plain && tag.is_none(),
                        text,
                        tag,
                    };
                    builder.add(node, anchor, mark.line());
                }
                Event::SequenceStart(anchor, _) => {
                    builder.open(Node::Sequence(Vec::new()), anchor, mark.line());
                }
                Event::MappingStart(anchor, _) => {
                    builder.open(Node::Mapping(Vec::new()), anchor, mark.line());
                }
                Event::SequenceEnd | Event::MappingEnd => builder.close(),
            }
        }
        Ok(Document {
            nodes: builder.nodes,
            lines: builder.lines,
            alias_names: builder.alias_names,
            root: builder.root,
        })
    }

    /// The document's top node; `None` for an empty document.
    pub fn root(&self) -> Option<NodeId> {
        self.root
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The line a node starts on; for an alias, its target's, as go-yaml reports errors there.
    pub fn line(&self, id: NodeId) -> usize {
        match self.nodes[id] {
            Node::Alias(target) => self.lines[target],
            _ => self.lines[id],
        }
    }
}

#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    lines: Vec<usize>,
    alias_names: Vec<(NodeId, String)>,
    root: Option<NodeId>,
    /// Open collections with the children read so far.
    open: Vec<(NodeId, Vec<NodeId>)>,
    /// The node each anchor id (the parser's, counting from 1) names.
    anchors: Vec<Option<NodeId>>,
}

impl Builder {
    fn add(&mut self, node: Node, anchor: usize, line: usize) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(node);
        self.lines.push(line);
        if anchor != 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some(id);
        }
        match self.open.last_mut() {
            Some((_, children)) => children.push(id),
            None => self.root = Some(id),
        }
        id
    }

    fn open(&mut self, node: Node, anchor: usize, line: usize) {
        let id = self.add(node, anchor, line);
        self.open.push((id, Vec::new()));
    }

    fn close(&mut self) {
        let Some((id, children)) = self.open.pop() else {
            return;
        };
        match &mut self.nodes[id] {
            Node::Sequence(items) => *items = children,
            Node::Mapping(pairs) => {
                *pairs = children
                    .chunks_exact(2)
                    .map(|pair| (pair[0], pair[1]))
                    .collect();
            }
            _ => {}
        }
    }
}

/// `text` with the run of tabs that ends at character `at` turned into spaces.
fn tabs_to_spaces_before(text: &str, at: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let end = at.min(chars.len());
    let start = chars[..end]
        .iter()
        .rposition(|&c| c != '\t' && c != ' ')
        .map_or(0, |last| last + 1);
    chars
        .iter()
        .enumerate()
        .map(|(index, &c)| {
            if (start..end).contains(&index) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// `tag:yaml.org,2002:int` → `!!int`; local tags keep their `!`.
fn short_tag(tag: Tag) -> String {
    match tag.handle.as_str() {
        "tag:yaml.org,2002:" | "!!" => format!("!!{}", tag.suffix),
        "" if tag.suffix == "!" => "!".to_string(),
        "" | "!" => format!("!{}", tag.suffix),
        handle => format!("{handle}{}", tag.suffix),
    }
}

/// Problems libyaml's parser (not its scanner) reports, as yaml-rust2 words them after its
/// `while parsing …, ` context, and as libyaml words them.
const PARSER_PROBLEMS: [(&str, &str); 5] = [
    ("did not find expected key", "did not find expected key"),
    (
        "did not find expected node content",
        "did not find expected node content",
    ),
    (
        "did not find expected ',' or '}'",
        "did not find expected ',' or '}'",
    ),
    ("expected ',' or ']'", "did not find expected ',' or ']'"),
    (
        "did not find expected '-' indicator",
        "did not find expected '-' indicator",
    ),
];

/// A parse error as go-yaml v2 prints it: libyaml's problem without its context, and the line
/// go-yaml computes: none on the first line, 1-based for scanner errors, and 0-based (one
/// less) for parser errors.
fn go_syntax_error(error: &ScanError, text: &str) -> String {
    let info = error.info();
    if info.ends_with("found unknown anchor") {
        // go-yaml's own check, with the alias's name and no line.
        let name: String = text
            .chars()
            .skip(error.marker().index() + 1)
            .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
            .collect();
        return format!("yaml: unknown anchor '{name}' referenced");
    }
    let problem = match info.strip_prefix("while ") {
        Some(rest) => rest.split_once(", ").map_or(info, |(_, problem)| problem),
        None => info,
    };
    let zero_based = error.marker().line().saturating_sub(1);
    let (problem, line) = match PARSER_PROBLEMS.iter().find(|(ours, _)| *ours == problem) {
        Some((_, libyaml)) => (*libyaml, zero_based),
        None if zero_based == 0 => (problem, 0),
        None => (problem, zero_based + 1),
    };
    syntax_error(line, problem)
}

fn syntax_error(line: usize, problem: &str) -> String {
    if line == 0 {
        format!("yaml: {problem}")
    } else {
        format!("yaml: line {line}: {problem}")
    }
}

/// libyaml's reader refuses characters outside YAML's printable set, NUL included.
fn check_characters(text: &str) -> Result<(), String> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{85}')
            || ('\u{20}'..='\u{7e}').contains(&c)
            || ('\u{a0}'..='\u{d7ff}').contains(&c)
            || ('\u{e000}'..='\u{fffd}').contains(&c)
            || c >= '\u{10000}'
    };
    match text.chars().all(allowed) {
        true => Ok(()),
        false => Err("yaml: control characters are not allowed".to_string()),
    }
}

/// File bytes → text the way libyaml's reader decodes them: a UTF-16 byte-order mark selects
/// UTF-16, a UTF-8 one is skipped, anything else must be UTF-8. Errors are libyaml's.
pub fn decode_bytes(bytes: &[u8]) -> Result<String, String> {
    let fail = |problem: &str| Err(format!("yaml: {problem}"));
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        return decode_utf16(rest, u16::from_le_bytes).or_else(fail);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xfe, 0xff]) {
        return decode_utf16(rest, u16::from_be_bytes).or_else(fail);
    }
    let bytes = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_string()),
        Err(error) => fail(utf8_problem(&bytes[error.valid_up_to()..])),
    }
}

/// libyaml's word for the invalid UTF-8 sequence at the start of `bad`.
fn utf8_problem(bad: &[u8]) -> &'static str {
    let Some(&lead) = bad.first() else {
        return "incomplete UTF-8 octet sequence";
    };
    let width = match lead {
        byte if byte & 0x80 == 0 => 1,
        byte if byte & 0xe0 == 0xc0 => 2,
        byte if byte & 0xf0 == 0xe0 => 3,
        byte if byte & 0xf8 == 0xf0 => 4,
        _ => return "invalid leading UTF-8 octet",
    };
    if bad.len() < width {
        return "incomplete UTF-8 octet sequence";
    }
    if bad[1..width].iter().any(|&byte| byte & 0xc0 != 0x80) {
        return "invalid trailing UTF-8 octet";
    }
    let value = bad[1..width]
        .iter()
        .fold(u32::from(lead) & (0x7f >> width), |value, &byte| {
            (value << 6) | u32::from(byte & 0x3f)
        });
    let shortest = match value {
        0..=0x7f => 1,
        0x80..=0x7ff => 2,
        0x800..=0xffff => 3,
        _ => 4,
    };
    if shortest != width {
        "invalid length of a UTF-8 sequence"
    } else {
        "invalid Unicode character"
    }
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, &'static str> {
    let chunks = bytes.chunks_exact(2);
    if !chunks.remainder().is_empty() {
        return Err("incomplete UTF-16 character");
    }
    let units: Vec<u16> = chunks.map(|pair| unit([pair[0], pair[1]])).collect();
    let mut text = String::with_capacity(bytes.len() / 2);
    for decoded in char::decode_utf16(units.iter().copied()) {
        match decoded {
            Ok(c) => text.push(c),
            Err(error) if (0xdc00..0xe000).contains(&error.unpaired_surrogate()) => {
                return Err("unexpected low surrogate area");
            }
            Err(error) if units.last() == Some(&error.unpaired_surrogate()) => {
                return Err("incomplete UTF-16 surrogate pair");
            }
            Err(_) => return Err("expected low surrogate area"),
        }
    }
    Ok(text)
}

/// go-yaml v2's `resolve`: the type of a scalar from its tag and text.
/// `Err` is go-yaml's fatal "cannot decode" when an explicit tag does not fit the text.
pub fn resolve(text: &str, implicit: bool, tag: Option<&str>) -> Result<(String, Scalar), String> {
    if tag.is_none() && !implicit {
        return Ok(("!!str".to_string(), Scalar::Str(text.to_string())));
    }
    match tag {
        None | Some("!!str" | "!!bool" | "!!int" | "!!float" | "!!null" | "!!timestamp") => {}
        Some("!!binary") => {
            let decoded =
                decode_base64(text).ok_or("yaml: !!binary value contains invalid base64 data")?;
            return Ok(("!!binary".to_string(), Scalar::Str(decoded)));
        }
        Some(other) => return Ok((other.to_string(), Scalar::Str(text.to_string()))),
    }
    let (found_tag, scalar) = if tag == Some("!!str") {
        ("!!str", Scalar::Str(text.to_string()))
    } else {
        resolve_plain(text, tag)
    };
    match tag {
        None | Some("!!str") => Ok((found_tag.to_string(), scalar)),
        Some(wanted) if wanted == found_tag => Ok((found_tag.to_string(), scalar)),
        Some("!!float") => match scalar {
            Scalar::Int(number) => Ok((
                "!!float".to_string(),
                Scalar::Float(Float::from_int(number)),
            )),
            _ => Err(format!(
                "yaml: cannot decode {found_tag} `{text}` as a !!float"
            )),
        },
        Some(wanted) => Err(format!(
            "yaml: cannot decode {found_tag} `{text}` as a {wanted}"
        )),
    }
}

/// A plain scalar's type by its first character, as go-yaml's resolve table decides.
fn resolve_plain(text: &str, tag: Option<&str>) -> (&'static str, Scalar) {
    let text_scalar = ("!!str", Scalar::Str(text.to_string()));
    let first = text.bytes().next();
    let known = match first {
        None => true,
        Some(byte) => b"+-0123456789yYnNtTfFoO~.".contains(&byte),
    };
    if !known {
        return text_scalar;
    }
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return ("!!bool", Scalar::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return ("!!bool", Scalar::Bool(false));
        }
        "" | "~" | "null" | "Null" | "NULL" => return ("!!null", Scalar::Null),
        ".nan" | ".NaN" | ".NAN" => return ("!!float", Scalar::Float(Float::NaN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return (
                "!!float",
                Scalar::Float(Float::Infinity { negative: false }),
            );
        }
        "-.inf" | "-.Inf" | "-.INF" => {
            return ("!!float", Scalar::Float(Float::Infinity { negative: true }));
        }
        _ => {}
    }
    match first {
        Some(b'.') => match parse_go_float(text) {
            Some(number) => ("!!float", Scalar::Float(number)),
            None => text_scalar,
        },
        Some(b'+' | b'-' | b'0'..=b'9') => {
            if matches!(tag, None | Some("!!timestamp")) && is_timestamp(text) {
                return ("!!timestamp", Scalar::Timestamp);
            }
            let plain = text.replace('_', "");
            if let Ok(number) = crate::cli::parse_go_int(&plain) {
                return ("!!int", Scalar::Int(number));
            }
            if let Ok(number) = crate::cli::parse_go_uint(&plain) {
                return ("!!int", Scalar::Uint(number));
            }
            if is_yaml_style_float(&plain)
                && let Some(number) = parse_go_float(&plain)
            {
                return ("!!float", Scalar::Float(number));
            }
            text_scalar
        }
        _ => text_scalar,
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, go-yaml's float pattern.
fn is_yaml_style_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits(mantissa),
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
    };
    let exponent_ok = exponent
        .is_none_or(|exponent| digits(exponent.strip_prefix(['-', '+']).unwrap_or(exponent)));
    mantissa_ok && exponent_ok
}

/// Go's `strconv.ParseFloat` for decimal text; `None` where it fails, overflow included.
fn parse_go_float(text: &str) -> Option<Float> {
    let digits_only = text.replace('_', "");
    if digits_only.len() != text.len() && !underscores_between_digits(text) {
        return None;
    }
    if !is_yaml_style_float(&digits_only) {
        return None;
    }
    Float::parse(&digits_only)
}

fn underscores_between_digits(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(at, &byte)| {
        byte != b'_'
            || (at > 0
                && bytes[at - 1].is_ascii_digit()
                && bytes.get(at + 1).is_some_and(u8::is_ascii_digit))
    })
}

/// go-yaml's timestamp formats: `2006-1-2`, then `T`, `t` or a space and `15:4:5`, with
/// optional fractional seconds and, after `T`/`t`, a `Z` or `±hh:mm` zone.
fn is_timestamp(text: &str) -> bool {
    fn number(text: &str, min: usize, max: usize) -> Option<(u32, &str)> {
        let end = text
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(text.len());
        if end < min || end > max {
            return None;
        }
        Some((text[..end].parse().ok()?, &text[end..]))
    }
    let date = || -> Option<&str> {
        let (year, rest) = number(text, 4, 4)?;
        let (month, rest) = number(rest.strip_prefix('-')?, 1, 2)?;
        let (day, rest) = number(rest.strip_prefix('-')?, 1, 2)?;
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            1..=12 => 31,
            _ => return None,
        };
        (1..=days).contains(&day).then_some(rest)
    };
    let Some(rest) = date() else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let zoned = rest.starts_with(['T', 't']);
    if !zoned && !rest.starts_with(' ') {
        return false;
    }
    let time = || -> Option<&str> {
        let (hour, rest) = number(&rest[1..], 1, 2)?;
        let (minute, rest) = number(rest.strip_prefix(':')?, 1, 2)?;
        let (second, mut rest) = number(rest.strip_prefix(':')?, 1, 2)?;
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        if let Some(fraction) = rest.strip_prefix('.') {
            rest = number(fraction, 1, 9)?.1;
        }
        Some(rest)
    };
    let Some(zone) = time() else {
        return false;
    };
    if !zoned {
        return zone.is_empty();
    }
    if zone == "Z" {
        return true;
    }
    let Some(offset) = zone.strip_prefix(['+', '-']) else {
        return false;
    };
    let bytes = offset.as_bytes();
    bytes.len() == 5
        && bytes[2] == b':'
        && [0, 1, 3, 4].iter().all(|&at| bytes[at].is_ascii_digit())
}

fn decode_base64(text: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut bytes = Vec::new();
    let symbols: Vec<u8> = text.bytes().filter(|b| !b" \t\r\n".contains(b)).collect();
    let data = symbols.strip_suffix(b"==").or(symbols.strip_suffix(b"="));
    let data = data.unwrap_or(&symbols);
    if !symbols.len().is_multiple_of(4) {
        return None;
    }
    for &symbol in data {
        let value = match symbol {
            b'A'..=b'Z' => symbol - b'A',
            b'a'..=b'z' => symbol - b'a' + 26,
            b'0'..=b'9' => symbol - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    String::from_utf8(bytes).ok()
}

/// A walk over a document that follows aliases, refuses self-containing ones and stops at
/// go-yaml's limit on alias expansion.
pub struct Walker<'a> {
    /// The document walked.
    pub document: &'a Document,
    visits: usize,
    depth: usize,
    expanding: Vec<NodeId>,
}

impl<'a> Walker<'a> {
    /// A walk over `document`.
    pub fn new(document: &'a Document) -> Self {
        Walker {
            document,
            visits: 0,
            depth: 0,
            expanding: Vec::new(),
        }
    }

    /// Counts a visit; `Err` once the budget is spent.
    pub fn visit(&mut self) -> Result<(), String> {
        self.visits += 1;
        match self.visits > VISIT_BUDGET {
            true => Err("yaml: document contains excessive aliasing".to_string()),
            false => Ok(()),
        }
    }

    /// Starts decoding node `id`: counts the visit and, for an alias, returns what it names
    /// (refusing one met again inside its own target). Pair with [`Walker::leave`].
    pub fn enter(&mut self, id: NodeId) -> Result<NodeId, String> {
        self.visit()?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("yaml: exceeded max depth of {MAX_DEPTH}"));
        }
        let Node::Alias(target) = self.document.node(id) else {
            return Ok(id);
        };
        if self.expanding.contains(&id) {
            let name = self
                .document
                .alias_names
                .iter()
                .find(|(alias, _)| *alias == id)
                .map_or("", |(_, name)| name.as_str());
            return Err(format!("yaml: anchor '{name}' value contains itself"));
        }
        self.expanding.push(id);
        Ok(*target)
    }

    /// Ends decoding node `id` begun with [`Walker::enter`].
    pub fn leave(&mut self, id: NodeId) {
        self.depth = self.depth.saturating_sub(1);
        if matches!(self.document.node(id), Node::Alias(_)) {
            self.expanding.pop();
        }
    }

    /// Runs `inside` on what an alias node names, or on the node itself.
    pub fn through_alias<T>(
        &mut self,
        id: NodeId,
        inside: impl FnOnce(&mut Self, NodeId) -> Result<T, String>,
    ) -> Result<T, String> {
        let target = self.enter(id)?;
        let result = inside(self, target);
        self.leave(id);
        result
    }

    /// Whether a mapping key is go-yaml's merge key `<<`.
    pub fn is_merge_key(&self, key: NodeId) -> bool {
        matches!(self.document.node(key),
            Node::Scalar { text, implicit, tag, .. }
                if text == "<<" && (*implicit || tag.as_deref() == Some("!!merge")))
    }

    /// The mappings a merge key's value names, in the order go-yaml applies them (a list is
    /// applied last to first, so that earlier ones win).
    pub fn merge_sources(&self, value: NodeId) -> Result<Vec<NodeId>, String> {
        let fail = || Err("yaml: map merge requires map or sequence of maps as the value".into());
        let is_map = |id: NodeId| match self.document.node(id) {
            Node::Mapping(_) => true,
            Node::Alias(target) => matches!(self.document.node(*target), Node::Mapping(_)),
            _ => false,
        };
        match self.document.node(value) {
            Node::Mapping(_) => Ok(vec![value]),
            Node::Alias(_) if is_map(value) => Ok(vec![value]),
            Node::Sequence(items) => {
                let mut sources = Vec::with_capacity(items.len());
                for &item in items.iter().rev() {
                    if !is_map(item) {
                        return fail();
                    }
                    sources.push(item);
                }
                Ok(sources)
            }
            _ => fail(),
        }
    }

    /// Decodes a node without a target type (go-yaml into `interface{}` with `MapSlice`).
    pub fn value(&mut self, id: NodeId) -> Result<Value, String> {
        let document = self.document;
        self.through_alias(id, |walker, id| match document.node(id) {
            Node::Scalar {
                text,
                implicit,
                tag,
                ..
            } => {
                let (_, scalar) = resolve(text, *implicit, tag.as_deref())?;
                Ok(match scalar {
                    Scalar::Null => Value::Nil,
                    Scalar::Timestamp => Value::Scalar(Scalar::Str(text.clone()), text.clone()),
                    scalar => Value::Scalar(scalar, text.clone()),
                })
            }
            Node::Sequence(items) => {
                let mut values = Vec::with_capacity(items.len());
                for &item in items {
                    values.push(walker.value(item)?);
                }
                Ok(Value::List(values))
            }
            Node::Mapping(pairs) => {
                let mut entries = Vec::with_capacity(pairs.len());
                for &(key, value) in pairs {
                    if walker.is_merge_key(key) {
                        // Decoded for its errors, then dropped like go-yaml v2 does.
                        for source in walker.merge_sources(value)? {
                            walker.value(source)?;
                        }
                        continue;
                    }
                    entries.push((walker.value(key)?, walker.value(value)?));
                }
                Ok(Value::Map(entries))
            }
            Node::Alias(_) => Err("yaml: anchor value contains itself".to_string()),
        })
    }
}

/// Go's `fmt.Sprint` of a decoded value, as the original prints unknown keys.
pub fn go_sprint(value: &Value) -> String {
    match value {
        Value::Nil => "<nil>".to_string(),
        Value::Scalar(scalar, text) => match scalar {
            Scalar::Null => "<nil>".to_string(),
            Scalar::Bool(flag) => flag.to_string(),
            Scalar::Int(number) => number.to_string(),
            Scalar::Uint(number) => number.to_string(),
            Scalar::Float(number) => number.go_format(),
            Scalar::Timestamp => text.clone(),
            Scalar::Str(text) => text.clone(),
        },
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(go_sprint).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Map(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(key, value)| format!("{{{} {}}}", go_sprint(key), go_sprint(value)))
                .collect();
            format!("[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(text: &str) -> Scalar {
        resolve(text, true, None).unwrap().1
    }

    #[test]
    fn plain_scalars_resolve_as_yaml_1_1() {
        for text in ["yes", "Yes", "YES", "on", "ON", "y", "Y", "true", "True"] {
            assert_eq!(scalar(text), Scalar::Bool(true), "{text}");
        }
        for text in ["no", "No", "off", "OFF", "n", "N", "false", "FALSE"] {
            assert_eq!(scalar(text), Scalar::Bool(false), "{text}");
        }
        for text in ["yEs", "tRue", "oN"] {
            assert_eq!(scalar(text), Scalar::Str(text.into()), "{text}");
        }
        for text in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(scalar(text), Scalar::Null, "{text}");
        }
        assert_eq!(scalar("010"), Scalar::Int(8));
        assert_eq!(scalar("0x10"), Scalar::Int(16));
        assert_eq!(scalar("0b11"), Scalar::Int(3));
        assert_eq!(scalar("1_000"), Scalar::Int(1000));
        assert_eq!(scalar("-7"), Scalar::Int(-7));
        let float = |text: &str| Scalar::Float(Float::parse(text).unwrap());
        assert_eq!(scalar("08"), float("8"));
        assert_eq!(scalar("2.0"), float("2"));
        assert_eq!(scalar("16.7"), float("16.7"));
        assert_eq!(scalar(".5"), float("0.5"));
        assert_eq!(scalar("1e3"), float("1000"));
        assert_eq!(scalar("1e400"), Scalar::Str("1e400".into()));
        assert_eq!(
            scalar("-.inf"),
            Scalar::Float(Float::Infinity { negative: true })
        );
        assert_eq!(
            scalar("18446744073709551615"),
            Scalar::Uint(u64::MAX),
            "beyond i64"
        );
        assert_eq!(scalar("2001-12-14"), Scalar::Timestamp);
        assert_eq!(scalar("2001-12-14t21:59:43.10-05:00"), Scalar::Timestamp);
        assert_eq!(scalar("2001-13-14"), Scalar::Str("2001-13-14".into()));
        assert_eq!(scalar("+inf"), Scalar::Str("+inf".into()));
        assert_eq!(
            scalar("127.0.0.1:2000"),
            Scalar::Str("127.0.0.1:2000".into())
        );
    }

    #[test]
    fn quoted_and_tagged_scalars() {
        assert_eq!(
            resolve("yes", false, None).unwrap(),
            ("!!str".into(), Scalar::Str("yes".into()))
        );
        assert_eq!(
            resolve("8", true, Some("!!str")).unwrap(),
            ("!!str".into(), Scalar::Str("8".into()))
        );
        assert_eq!(
            resolve("2", true, Some("!!float")).unwrap().1,
            Scalar::Float(Float::parse("2").unwrap())
        );
        assert_eq!(
            resolve("2.5", true, Some("!!int")).unwrap_err(),
            "yaml: cannot decode !!float `2.5` as a !!int"
        );
        assert_eq!(
            resolve("aGk=", false, Some("!!binary")).unwrap().1,
            Scalar::Str("hi".into())
        );
        assert_eq!(
            resolve("x", true, Some("!!null")).unwrap_err(),
            "yaml: cannot decode !!str `x` as a !!null"
        );
        assert_eq!(resolve("~", true, Some("!!null")).unwrap().1, Scalar::Null);
        assert_eq!(
            resolve("x", true, Some("!local")).unwrap(),
            ("!local".into(), Scalar::Str("x".into()))
        );
    }

    /// go-yaml v2's texts: libyaml's problem, its line quirks.
    #[test]
    fn syntax_errors_read_as_go_yamls() {
        assert_eq!(
            Document::parse("Version: 2\n- x").unwrap_err(),
            "yaml: line 1: did not find expected key"
        );
        assert_eq!(
            Document::parse("Version: 2\nRegion: a: b").unwrap_err(),
            "yaml: line 2: mapping values are not allowed in this context"
        );
        assert_eq!(
            Document::parse("Region: a: b").unwrap_err(),
            "yaml: mapping values are not allowed in this context"
        );
        assert_eq!(
            Document::parse("Version: 2\nRegion: *nope").unwrap_err(),
            "yaml: unknown anchor 'nope' referenced"
        );
    }

    #[test]
    fn a_tab_after_a_colon_separates_as_in_libyaml() {
        let document = Document::parse("Region:\tus-east-1\nRoleARN:\t \t-r\n").unwrap();
        let mut walker = Walker::new(&document);
        let value = walker.value(document.root().unwrap()).unwrap();
        assert_eq!(go_sprint(&value), "[{Region us-east-1} {RoleARN -r}]");
        // Tabs inside a quoted value stay.
        let document = Document::parse("Region: \"a:\tb\"\n").unwrap();
        let value = Walker::new(&document)
            .value(document.root().unwrap())
            .unwrap();
        assert_eq!(go_sprint(&value), "[{Region a:\tb}]");
    }

    #[test]
    fn bytes_decode_like_libyaml() {
        assert_eq!(
            decode_bytes(b"\xef\xbb\xbfVersion: 2").unwrap(),
            "Version: 2"
        );
        assert_eq!(
            decode_bytes(b"\xff\xfeV\0:\0 \x002\0").unwrap(),
            "V: 2",
            "UTF-16LE with BOM"
        );
        assert_eq!(decode_bytes(b"\xfe\xff\0V\0:").unwrap(), "V:");
        assert_eq!(
            decode_bytes(b"\xff\xfeV\0\x00\xd8").unwrap_err(),
            "yaml: incomplete UTF-16 surrogate pair"
        );
        assert_eq!(
            decode_bytes(b"\xff\xfeV\0\x00\xdc").unwrap_err(),
            "yaml: unexpected low surrogate area"
        );
        assert_eq!(
            decode_bytes(b"Region: \xe9\nVersion: 2").unwrap_err(),
            "yaml: invalid trailing UTF-8 octet"
        );
        // libyaml looks at the length first: a cut sequence at the end is incomplete.
        assert_eq!(
            decode_bytes(b"Region: \xe9\n").unwrap_err(),
            "yaml: incomplete UTF-8 octet sequence"
        );
        assert_eq!(
            decode_bytes(b"Region: \xff").unwrap_err(),
            "yaml: invalid leading UTF-8 octet"
        );
        assert_eq!(
            decode_bytes(b"Region: \xc3").unwrap_err(),
            "yaml: incomplete UTF-8 octet sequence"
        );
        assert_eq!(
            decode_bytes(b"Region: \xc0\x80").unwrap_err(),
            "yaml: invalid length of a UTF-8 sequence"
        );
        assert_eq!(
            Document::parse("Version: 2\0").unwrap_err(),
            "yaml: control characters are not allowed"
        );
    }

    #[test]
    fn go_prints_values_like_fmt_sprint() {
        let text = |s: &str| Value::Scalar(Scalar::Str(s.into()), s.into());
        assert_eq!(go_sprint(&Value::List(vec![text("a")])), "[a]");
        assert_eq!(
            go_sprint(&Value::Map(vec![(text("a"), Value::Nil)])),
            "[{a <nil>}]"
        );
        let key = |text: &str| {
            let document = Document::parse(&format!("{text}: x")).unwrap();
            let mut walker = Walker::new(&document);
            go_sprint(&walker.value(document.root().unwrap()).unwrap())
        };
        assert_eq!(key("1.0"), "[{1 x}]");
        assert_eq!(key("1234567.0"), "[{1.234567e+06 x}]");
        assert_eq!(key(".inf"), "[{+Inf x}]");
        assert_eq!(key("0x10"), "[{16 x}]");
    }

    #[test]
    fn merge_keys_and_aliases() {
        let document = Document::parse("base: &b {x: 1}\nm:\n  <<: *b\n  z: 2\n").unwrap();
        let mut walker = Walker::new(&document);
        let Value::Map(top) = walker.value(document.root().unwrap()).unwrap() else {
            panic!("not a map");
        };
        // The merged key is dropped, as go-yaml v2 does for MapSlice.
        assert_eq!(go_sprint(&top[1].1), "[{z 2}]");
        let cyclic = Document::parse("a: &a [*a]").unwrap();
        assert_eq!(
            Walker::new(&cyclic)
                .value(cyclic.root().unwrap())
                .unwrap_err(),
            "yaml: anchor 'a' value contains itself"
        );
        let bad = Document::parse("a:\n  <<: 1").unwrap();
        assert_eq!(
            Walker::new(&bad).value(bad.root().unwrap()).unwrap_err(),
            "yaml: map merge requires map or sequence of maps as the value"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        // Flow collections stop at the parser's own limit; block ones nest without one.
        let deep = format!("a:\n{}x", "- ".repeat(20_000));
        let document = Document::parse(&deep).unwrap();
        let mut walker = Walker::new(&document);
        assert_eq!(
            walker.value(document.root().unwrap()).unwrap_err(),
            "yaml: exceeded max depth of 500"
        );
        let mut chain = String::from("a0: &a0 {Region: r}\n");
        for level in 1..2000 {
            chain.push_str(&format!("a{level}: &a{level} {{<<: *a{}}}\n", level - 1));
        }
        chain.push_str("<<: *a1999\nVersion: 2\n");
        assert!(crate::config::load_text(&chain, std::path::Path::new("x")).is_err());
    }

    #[test]
    fn alias_bombs_stop() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 9].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        let document = Document::parse(&text).unwrap();
        assert_eq!(
            Walker::new(&document)
                .value(document.root().unwrap())
                .unwrap_err(),
            "yaml: document contains excessive aliasing"
        );
    }
}
