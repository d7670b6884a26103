//! `exception` span events → X-Ray's `cause.exceptions`: type, message, and stack frames
//! parsed from `exception.stacktrace` in the formats of Java, Python and Node (JavaScript);
//! chained exceptions (`Caused by:`, Python's chained tracebacks) become linked entries.

use super::json::{self, Object};
use super::span::{self, AnyValue, Span};
use super::truncated;
use std::borrow::Cow;
use std::io::Write as _;

/// Frames kept per exception; the rest are counted in `truncated`.
pub const MAX_FRAMES: usize = 100;

/// Exceptions kept per document (events and chained causes together).
pub const MAX_EXCEPTIONS: usize = 32;

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The file (or Java's `File.java`).
    pub path: String,
    /// The line, when the trace gives it.
    pub line: Option<u64>,
    /// The function or method.
    pub label: String,
}

/// One exception read from a stack trace: type, message, frames (innermost call first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// The exception's type.
    pub kind: String,
    /// Its message.
    pub message: String,
    /// Its frames, the innermost call first, at most [`MAX_FRAMES`].
    pub frames: Vec<Frame>,
    /// Frames left out beyond [`MAX_FRAMES`] (and Java's `... N more`).
    pub truncated: u64,
}

impl Parsed {
    fn push(&mut self, frame: Frame) {
        if self.frames.len() < MAX_FRAMES {
            self.frames.push(frame);
        } else {
            self.truncated = self.truncated.saturating_add(1);
        }
    }
}

/// Splits `first` (`Type: message`, or just `Type`) into type and message.
fn type_and_message(line: &str) -> (String, String) {
    match line.split_once(": ") {
        Some((kind, message)) if !kind.contains(' ') || kind.ends_with("Error") => {
            (kind.trim().to_owned(), message.trim().to_owned())
        }
        _ => match line.strip_suffix(':') {
            Some(kind) => (kind.trim().to_owned(), String::new()),
            None if !line.trim().contains(' ') => (line.trim().to_owned(), String::new()),
            None => (String::new(), line.trim().to_owned()),
        },
    }
}

/// Parses a stack trace; the thrown exception first, then what caused it, and so on. Empty
/// when the text is in none of the known formats.
pub fn parse(trace: &str) -> Vec<Parsed> {
    if trace.contains("Traceback (most recent call last):") {
        python(trace)
    } else if trace.lines().any(|l| {
        l.starts_with("\tat ")
            || l.trim_start().starts_with("at ")
                && l.trim_end().ends_with(')')
                && l.contains(".java:")
    }) {
        java(trace)
    } else if trace.lines().any(|l| l.trim_start().starts_with("at ")) {
        node(trace)
    } else {
        Vec::new()
    }
}

/// Java: `Type: message`, `\tat pkg.Class.method(File.java:12)`, `Caused by: …`, `... 3 more`.
fn java(trace: &str) -> Vec<Parsed> {
    let mut out: Vec<Parsed> = Vec::new();
    for line in trace.lines() {
        let trimmed = line.trim();
        if let Some(frame) = trimmed.strip_prefix("at ") {
            if let Some(current) = out.last_mut() {
                current.push(java_frame(frame));
            }
        } else if let Some(more) = trimmed
            .strip_prefix("... ")
            .and_then(|m| m.strip_suffix(" more"))
        {
            if let Some(current) = out.last_mut() {
                // The count is the trace's text: it may be anything up to u64::MAX.
                let more = more.trim().parse::<u64>().unwrap_or(0);
                current.truncated = current.truncated.saturating_add(more);
            }
        } else if let Some(cause) = trimmed.strip_prefix("Caused by: ") {
            let (kind, message) = type_and_message(cause);
            out.push(Parsed {
                kind,
                message,
                ..Parsed::default()
            });
        } else if out.is_empty() && !trimmed.is_empty() {
            let (kind, message) = type_and_message(trimmed);
            out.push(Parsed {
                kind,
                message,
                ..Parsed::default()
            });
        } else if let Some(current) = out.last_mut()
            && current.frames.is_empty()
            && !trimmed.is_empty()
            && !trimmed.starts_with("Suppressed: ")
        {
            // A message over several lines.
            current.message.push('\n');
            current.message.push_str(trimmed);
        }
    }
    out
}

/// `pkg.Class.method(File.java:12)`, `…(Native Method)`, `…(Unknown Source)`,
/// `app//pkg.Class.method(File.java:12)` (module prefix).
fn java_frame(frame: &str) -> Frame {
    let Some((label, location)) = frame.split_once('(') else {
        return Frame {
            label: frame.to_owned(),
            ..Frame::default()
        };
    };
    let label = label.rsplit_once('/').map_or(label, |(_, l)| l);
    let location = location.trim_end_matches(')');
    let (path, line) = match location.rsplit_once(':') {
        Some((path, line)) if line.parse::<u64>().is_ok() => (path, line.parse().ok()),
        _ => (location, None),
    };
    Frame {
        path: path.to_owned(),
        line,
        label: label.to_owned(),
    }
}

/// Python: one or more `Traceback (most recent call last):` blocks of
/// `  File "path", line N, in function` (the innermost call last), each ended by
/// `Type: message`; the last block is the exception thrown, the earlier ones its causes.
fn python(trace: &str) -> Vec<Parsed> {
    let mut blocks: Vec<Parsed> = Vec::new();
    let mut in_block = false;
    for line in trace.lines() {
        if line.starts_with("Traceback (most recent call last):") {
            blocks.push(Parsed::default());
            in_block = true;
            continue;
        }
        let Some(current) = blocks.last_mut() else {
            continue;
        };
        if let Some(frame) = line.trim_start().strip_prefix("File \"") {
            if in_block {
                current.push(python_frame(frame));
            }
        } else if line.starts_with(' ') || line.trim().is_empty() {
            // Source lines and carets under a frame.
        } else if in_block {
            let (kind, message) = type_and_message(line);
            current.kind = kind;
            current.message = message;
            in_block = false;
        } else if !line.starts_with("During handling") && !line.starts_with("The above exception") {
            current.message.push('\n');
            current.message.push_str(line);
        }
    }
    for block in &mut blocks {
        // Python lists the innermost call last; X-Ray wants it first.
        block.frames.reverse();
    }
    blocks.reverse();
    blocks
}

/// `path", line 12, in function`.
fn python_frame(frame: &str) -> Frame {
    let (path, rest) = frame.split_once('"').unwrap_or((frame, ""));
    let mut out = Frame {
        path: path.to_owned(),
        ..Frame::default()
    };
    for part in rest.split(", ") {
        if let Some(line) = part.trim().strip_prefix("line ") {
            out.line = line.trim().parse().ok();
        } else if let Some(label) = part.trim().strip_prefix("in ") {
            out.label = label.trim().to_owned();
        }
    }
    out
}

/// Node: `Type: message` then `    at function (path:line:column)` or `    at path:line:column`.
fn node(trace: &str) -> Vec<Parsed> {
    let mut current = Parsed::default();
    let mut head = true;
    for line in trace.lines() {
        let trimmed = line.trim();
        if let Some(frame) = trimmed.strip_prefix("at ") {
            head = false;
            current.push(node_frame(frame));
        } else if head && !trimmed.is_empty() {
            if current.kind.is_empty() && current.message.is_empty() {
                let (kind, message) = type_and_message(trimmed);
                current.kind = kind;
                current.message = message;
            } else {
                current.message.push('\n');
                current.message.push_str(trimmed);
            }
        }
    }
    vec![current]
}

/// `function (path:line:column)`, `async function (path:…)`, `path:line:column`, `native`.
fn node_frame(frame: &str) -> Frame {
    let (label, location) = match frame.strip_suffix(')').and_then(|f| f.rsplit_once(" (")) {
        Some((label, location)) => (label.strip_prefix("async ").unwrap_or(label), location),
        None => ("", frame),
    };
    // path:line:column, the path itself may hold colons (file:///C:/…).
    let mut parts = location.rsplitn(3, ':');
    let (column, line, path) = (parts.next(), parts.next(), parts.next());
    let (path, line) = match (path, line.and_then(|l| l.parse().ok()), column) {
        (Some(path), Some(line), Some(c)) if c.parse::<u64>().is_ok() => (path, Some(line)),
        _ => (location, None),
    };
    Frame {
        path: path.to_owned(),
        line,
        label: label.to_owned(),
    }
}

/// Appends a 16-hex-digit exception id as a JSON string, the same for the same span and
/// position (FNV-1a), so a document translated twice is the same document.
fn write_exception_id(span_id: &[u8], event: usize, chained: usize, out: &mut Vec<u8>) {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in span_id
        .iter()
        .chain(&(event as u64).to_le_bytes())
        .chain(&(chained as u64).to_le_bytes())
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    out.push(b'"');
    span::push_hex_bytes(out, &hash.to_be_bytes());
    out.push(b'"');
}

/// Appends an unsigned number.
fn write_u64(out: &mut Vec<u8>, value: u64) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{value}");
}

/// Appends a frame's object (members in key order; `{}` when it has none).
fn write_frame(frame: &Frame, out: &mut Vec<u8>) {
    let mut object = Object::begin(out);
    object.text(out, "label", Some(truncated(&frame.label)));
    if let Some(line) = frame.line {
        object.key(out, "line");
        write_u64(out, line);
    }
    object.text(out, "path", Some(truncated(&frame.path)));
    if !object.end(out) {
        out.extend_from_slice(b"{}");
    }
}

/// Appends the `cause` block's value: one entry per `exception` event (and per exception
/// chained in its stack trace); when there is none but the span's status is ERROR with a
/// message, one entry with that message. Whether there was one (nothing is written if not).
pub fn write(span: &Span<'_>, is_error_status: bool, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.extend_from_slice(br#"{"exceptions":["#);
    let mut written = 0usize;
    for (index, event) in span.events.iter().enumerate() {
        let mut name = Cow::Borrowed("");
        let mut attributes = span::Attributes::default();
        for entry in super::super::protobuf::fields(event, "Span.Event").map_while(Result::ok) {
            match (entry.number, entry.value) {
                (2, super::super::protobuf::Value::Bytes(text)) => name = span::lossy(text),
                (3, super::super::protobuf::Value::Bytes(kv)) => attributes.push(kv),
                _ => {}
            }
        }
        if name != "exception" {
            continue;
        }
        let text = |key: &str| attributes.peek(key).and_then(AnyValue::to_text);
        let mut chain = text("exception.stacktrace")
            .map(|t| parse(&t))
            .unwrap_or_default();
        if chain.is_empty() {
            chain.push(Parsed::default());
        }
        // The event's own type and message are the SDK's word; the trace's first line may be
        // formatted differently.
        if let Some(first) = chain.first_mut() {
            if let Some(kind) = text("exception.type") {
                first.kind = kind;
            }
            if let Some(message) = text("exception.message") {
                first.message = message;
            }
        }
        let count = chain.len();
        for (depth, parsed) in chain.iter().enumerate() {
            if written >= MAX_EXCEPTIONS {
                break;
            }
            if written > 0 {
                out.push(b',');
            }
            // Members in key order, as a map would hold them.
            let mut object = Object::begin(out);
            // Only to an exception that is written too.
            if depth + 1 < count && written + 1 < MAX_EXCEPTIONS {
                object.key(out, "cause");
                write_exception_id(span.span_id, index, depth + 1, out);
            }
            object.key(out, "id");
            write_exception_id(span.span_id, index, depth, out);
            object.text(out, "message", Some(truncated(&parsed.message)));
            if !parsed.frames.is_empty() {
                object.key(out, "stack");
                out.push(b'[');
                for (n, frame) in parsed.frames.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    write_frame(frame, out);
                }
                out.push(b']');
            }
            if parsed.truncated > 0 {
                object.key(out, "truncated");
                write_u64(out, parsed.truncated);
            }
            object.text(out, "type", Some(truncated(&parsed.kind)));
            object.end(out);
            written += 1;
        }
    }
    if written == 0 && is_error_status && !span.status_message.is_empty() {
        let mut object = Object::begin(out);
        object.key(out, "id");
        write_exception_id(span.span_id, usize::MAX, 0, out);
        object.key(out, "message");
        json::string(out, truncated(&span.status_message));
        object.end(out);
        written = 1;
    }
    if written == 0 {
        out.truncate(start);
        return false;
    }
    out.extend_from_slice(b"]}");
    true
}
