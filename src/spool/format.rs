//! The spool's file format: an 8-byte header `XRSPOOL1`, then records `"XR"`, length (u32 LE),
//! CRC-32 of the document (u32 LE), document. A torn or corrupted record is detected by its
//! length and checksum, skipped, and reading resumes at the next record marker.

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

/// CRC-32 (IEEE), as zlib and gzip compute it.
///
/// Sixteen bytes per step with sixteen tables ("slicing-by-16", 16 KB built at compile time):
/// the spool writer checksums every byte it writes, and the OTLP forwarder every byte it
/// gzips; a table per byte made this the spool's largest cost during an outage at 100,000
/// segments/s, and sixteen tables halve the steps of eight.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLES: [[u32; 256]; 16] = {
        let mut tables = [[0u32; 256]; 16];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            tables[0][i] = c;
            i += 1;
        }
        let mut t = 1;
        while t < 16 {
            let mut i = 0;
            while i < 256 {
                let previous = tables[t - 1][i];
                tables[t][i] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
                i += 1;
            }
            t += 1;
        }
        tables
    };
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(16);
    for chunk in &mut chunks {
        let word =
            |i: usize| u32::from_le_bytes([chunk[i], chunk[i + 1], chunk[i + 2], chunk[i + 3]]);
        let a = crc ^ word(0);
        let (b, c, d) = (word(4), word(8), word(12));
        let byte = |w: u32, shift: u32| ((w >> shift) & 0xff) as usize;
        crc = TABLES[15][byte(a, 0)]
            ^ TABLES[14][byte(a, 8)]
            ^ TABLES[13][byte(a, 16)]
            ^ TABLES[12][byte(a, 24)]
            ^ TABLES[11][byte(b, 0)]
            ^ TABLES[10][byte(b, 8)]
            ^ TABLES[9][byte(b, 16)]
            ^ TABLES[8][byte(b, 24)]
            ^ TABLES[7][byte(c, 0)]
            ^ TABLES[6][byte(c, 8)]
            ^ TABLES[5][byte(c, 16)]
            ^ TABLES[4][byte(c, 24)]
            ^ TABLES[3][byte(d, 0)]
            ^ TABLES[2][byte(d, 8)]
            ^ TABLES[1][byte(d, 16)]
            ^ TABLES[0][byte(d, 24)];
    }
    for &b in chunks.remainder() {
        crc = TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}
