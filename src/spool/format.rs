//! The spool's file format: an 8-byte header `XRSPOOL1`, then records `"XR"`, length (u32 LE),
//! CRC-32 of the document (u32 LE), document. A torn or corrupted record is detected by its
//! length and checksum, skipped, and reading resumes at the next record marker.

use super::crc32;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The first bytes of every spool file.
pub const FILE_HEADER: &[u8; 8] = b"XRSPOOL1";
const RECORD_MARKER: &[u8; 2] = b"XR";
/// Bytes in front of each document.
pub const RECORD_HEADER_LEN: usize = 2 + 4 + 4;
/// The largest document a record holds.
pub const MAX_RECORD: usize = 64 * 1024;

/// Appends `document` to `out` as one record.
pub fn frame(out: &mut Vec<u8>, document: &[u8]) {
    out.extend_from_slice(RECORD_MARKER);
    out.extend_from_slice(&(document.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(document).to_le_bytes());
    out.extend_from_slice(document);
}

/// What reading a spool file found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadReport {
    /// Records read intact.
    pub records: u64,
    /// Damaged stretches skipped (bad marker, length or checksum).
    pub corrupt: u64,
    /// `true` if the file ended in the middle of a record (a write cut short).
    pub torn_tail: bool,
}

/// Reads every intact record of a spool file, calling `each` with each document.
pub fn read_file(path: &Path, each: impl FnMut(&[u8])) -> io::Result<ReadReport> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    read_bytes(&bytes, each).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a spool file (no XRSPOOL1 header)",
                path.display()
            ),
        )
    })
}

/// Reads every intact record of a spool file's contents, calling `each` with each document;
/// `None` if `bytes` does not start with the spool header. Public for the fuzz target
/// (`tests/fuzz`), which feeds it arbitrary bytes; [`read_file`] is the way in otherwise.
pub fn read_bytes(bytes: &[u8], mut each: impl FnMut(&[u8])) -> Option<ReadReport> {
    let mut report = ReadReport::default();
    if !bytes.starts_with(FILE_HEADER) {
        return None;
    }
    let mut at = FILE_HEADER.len();
    let mut in_damage = false;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Record::Intact(document, next) => {
                each(document);
                report.records += 1;
                at = next;
                in_damage = false;
            }
            // A record running past the end is a torn tail only if no record marker follows:
            // with one after it, its length field is damaged (found by fuzzing: the records
            // behind such a record were all lost).
            Record::Truncated if find_marker(bytes, at + 1).is_none() => {
                report.torn_tail = true;
                break;
            }
            Record::Truncated | Record::Damaged => {
                if !in_damage {
                    report.corrupt += 1;
                    in_damage = true;
                }
                // Resynchronise on the next marker.
                at = match find_marker(bytes, at + 1) {
                    Some(next) => next,
                    None => break,
                };
            }
        }
    }
    Some(report)
}

enum Record<'a> {
    Intact(&'a [u8], usize),
    Truncated,
    Damaged,
}

fn record_at(bytes: &[u8], at: usize) -> Record<'_> {
    let rest = &bytes[at..];
    if rest.len() < RECORD_HEADER_LEN {
        return if RECORD_MARKER.starts_with(&rest[..rest.len().min(2)]) {
            Record::Truncated
        } else {
            Record::Damaged
        };
    }
    if &rest[..2] != RECORD_MARKER {
        return Record::Damaged;
    }
    let len = u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize;
    let crc = u32::from_le_bytes([rest[6], rest[7], rest[8], rest[9]]);
    if len == 0 || len > MAX_RECORD {
        return Record::Damaged;
    }
    let Some(document) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Record::Truncated;
    };
    if crc32(document) != crc {
        return Record::Damaged;
    }
    Record::Intact(document, at + RECORD_HEADER_LEN + len)
}

fn find_marker(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(2)
        .position(|w| w == RECORD_MARKER)
        .map(|p| from + p)
}
