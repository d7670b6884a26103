//! The durable spool (opt-in, `--spool-dir`): segments the pool has no room for, and those
//! still unsent at shutdown, go to append-only files, and are replayed when X-Ray can be
//! reached again.
//!
//! File format: an 8-byte header `XRSPOOL1`, then records `"XR"`, length (u32 LE), CRC-32 of
//! the document (u32 LE), document. Each record is one `write`, so a `kill -9` loses at most a
//! record being written; a torn or corrupted record is detected by its length and checksum,
//! skipped, and reading resumes at the next record marker.
//!
//! Files are named by creation time, so replay goes oldest first. When the spool would grow
//! past its size limit, the oldest file is deleted (its records counted as lost).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

const FILE_HEADER: &[u8; 8] = b"XRSPOOL1";
const RECORD_MARKER: &[u8; 2] = b"XR";
const RECORD_HEADER_LEN: usize = 2 + 4 + 4;
const MAX_RECORD: usize = 64 * 1024;
const EXTENSION: &str = "spool";

/// Files are closed at this size (or a quarter of the limit, if smaller) so that the oldest
/// can be replayed and deleted while newer ones fill.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

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
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
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
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

struct Writer {
    file: Option<(File, PathBuf, u64)>,
    /// The file the replayer is reading; never deleted for room.
    replaying: Option<PathBuf>,
    stopped: bool,
    /// Documents that could not be written since the last one that could: the first failure
    /// of a run is logged with its cause, the recovery with the count, nothing in between.
    failed_writes: u64,
}

/// The spool directory, shared by the receiver, the uploaders and the replayer.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    writer: Mutex<Writer>,
    sealed_or_stopped: Condvar,
}

/// What an append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Documents written.
    pub written: u64,
    /// Documents lost: deleted old files' records, or documents that could not be written.
    pub lost: u64,
}

impl Spool {
    /// Opens (creating, mode 0700) the spool directory, limited to `max_bytes` of files.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot create spool directory {}: {err}", dir.display()),
                )
            })?;
        // An existing directory keeps its mode; segments may hold data others should not read.
        if let Ok(metadata) = fs::metadata(dir)
            && metadata.permissions().mode() & 0o077 != 0
        {
            log::warn!(
                "Spool directory {} is open to other users (mode {:o}): they can read the spooled segments; chmod 700 it",
                dir.display(),
                metadata.permissions().mode() & 0o777
            );
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(2 * RECORD_HEADER_LEN as u64 + MAX_RECORD as u64),
            writer: Mutex::new(Writer {
                file: None,
                replaying: None,
                stopped: false,
                failed_writes: 0,
            }),
            sealed_or_stopped: Condvar::new(),
        };
        // Probe now, so an unwritable directory is reported at start and not at the first spill.
        let probe = dir.join(".write-test");
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot write to spool directory {}: {err}", dir.display()),
                )
            })?;
        Ok(spool)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spool files, oldest first (including the one being written).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == EXTENSION))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Bytes held by all spool files.
    pub fn total_bytes(&self) -> u64 {
        self.files()
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Appends documents; makes room by deleting the oldest files when over the limit.
    pub fn append<'a>(&self, documents: impl IntoIterator<Item = &'a [u8]>) -> Appended {
        let mut appended = Appended::default();
        let mut writer = self.lock();
        let mut total = self.total_bytes();
        for document in documents {
            if document.is_empty() || document.len() > MAX_RECORD {
                appended.lost += 1;
                continue;
            }
            let record_len = (RECORD_HEADER_LEN + document.len()) as u64;
            while total + record_len + FILE_HEADER.len() as u64 > self.max_bytes {
                match self.delete_oldest(&mut writer) {
                    Some((freed, records)) => {
                        total = total.saturating_sub(freed);
                        appended.lost += records;
                    }
                    None => break,
                }
            }
            if total + record_len + FILE_HEADER.len() as u64 > self.max_bytes {
                appended.lost += 1;
                continue;
            }
            match self.write_record(&mut writer, document) {
                Ok(grew) => {
                    total += grew;
                    appended.written += 1;
                    if writer.failed_writes > 0 {
                        log::warn!(
                            "Spool {} is writable again; {} segments could not be written to it and were lost",
                            self.dir.display(),
                            writer.failed_writes
                        );
                        writer.failed_writes = 0;
                    }
                }
                Err(err) => {
                    if writer.failed_writes == 0 {
                        log::error!(
                            "Cannot write to spool {}: {err}; segments for it are lost until it can be written again",
                            self.dir.display()
                        );
                    }
                    writer.failed_writes += 1;
                    writer.file = None;
                    appended.lost += 1;
                }
            }
        }
        drop(writer);
        if appended.written > 0 {
            self.sealed_or_stopped.notify_all();
        }
        appended
    }

    fn write_record(&self, writer: &mut Writer, document: &[u8]) -> io::Result<u64> {
        let file_limit = MAX_FILE_BYTES.min(self.max_bytes / 4).max(64 * 1024);
        if writer
            .file
            .as_ref()
            .is_some_and(|(_, _, size)| *size >= file_limit)
        {
            self.seal(writer);
        }
        let mut grew = 0;
        if writer.file.is_none() {
            let (mut file, path) = self.create_file()?;
            file.write_all(FILE_HEADER)?;
            grew += FILE_HEADER.len() as u64;
            writer.file = Some((file, path, FILE_HEADER.len() as u64));
        }
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + document.len());
        record.extend_from_slice(RECORD_MARKER);
        record.extend_from_slice(&(document.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32(document).to_le_bytes());
        record.extend_from_slice(document);
        if let Some((file, _, size)) = writer.file.as_mut() {
            file.write_all(&record)?;
            *size += record.len() as u64;
        }
        Ok(grew + record.len() as u64)
    }

    /// A new file named so that names sort by age: creation time, then a counter.
    fn create_file(&self) -> io::Result<(File, PathBuf)> {
        // Shared by every spool in the process, so two files made in the same millisecond
        // still differ; the process id separates runs.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let millis = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{millis:016}-{n:08}-{}.{EXTENSION}", std::process::id());
            let path = self.dir.join(name);
            match OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => return Ok((file, path)),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
    }

    fn seal(&self, writer: &mut Writer) {
        if let Some((file, path, _)) = writer.file.take()
            && let Err(err) = file.sync_data()
        {
            log::warn!("Cannot sync spool file {}: {err}", path.display());
        }
    }

    /// Deletes the oldest file not being replayed; returns (bytes freed, records lost).
    fn delete_oldest(&self, writer: &mut Writer) -> Option<(u64, u64)> {
        let current = writer.file.as_ref().map(|(_, p, _)| p.clone());
        let victim = self
            .files()
            .into_iter()
            .find(|p| Some(p) != writer.replaying.as_ref() && Some(p) != current.as_ref())
            .or_else(|| {
                // Only the file being written is left: close it and let it go.
                self.seal(writer);
                current.filter(|p| Some(p) != writer.replaying.as_ref())
            })?;
        let size = fs::metadata(&victim).map(|m| m.len()).unwrap_or(0);
        let records = read_file(&victim, |_| {}).map(|r| r.records).unwrap_or(0);
        match fs::remove_file(&victim) {
            Ok(()) => {
                log::warn!(
                    "Spool is full ({} bytes): deleted {} with {records} segments",
                    self.max_bytes,
                    victim.display()
                );
                Some((size, records))
            }
            Err(err) => {
                log::error!("Cannot delete spool file {}: {err}", victim.display());
                None
            }
        }
    }

    /// Waits for a file to replay: the oldest closed file, or the one being written (closed
    /// first). Returns `None` once [`Spool::stop`] was called.
    pub fn next_file_to_replay(&self) -> Option<PathBuf> {
        let mut writer = self.lock();
        loop {
            if writer.stopped {
                return None;
            }
            if let Some(oldest) = self.files().into_iter().next() {
                let is_current = writer.file.as_ref().is_some_and(|(_, p, _)| *p == oldest);
                if is_current {
                    self.seal(&mut writer);
                }
                writer.replaying = Some(oldest.clone());
                return Some(oldest);
            }
            writer = self
                .sealed_or_stopped
                .wait(writer)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The replayer is done with `path`: delete it (everything in it was delivered).
    pub fn finished_replaying(&self, path: &Path) {
        let mut writer = self.lock();
        writer.replaying = None;
        if let Err(err) = fs::remove_file(path) {
            log::error!(
                "Cannot delete replayed spool file {}: {err}",
                path.display()
            );
        }
    }

    /// The replayer gave up on `path` (shutdown): keep it for the next start.
    pub fn abandon_replay(&self) {
        self.lock().replaying = None;
    }

    /// Closes the current file (synced) and wakes the replayer to stop.
    pub fn stop(&self) {
        let mut writer = self.lock();
        self.seal(&mut writer);
        writer.stopped = true;
        drop(writer);
        self.sealed_or_stopped.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir as Dir;
    use std::os::unix::fs::PermissionsExt;

    fn doc(i: usize, size: usize) -> Vec<u8> {
        let mut d = format!("{{\"id\":\"{i:08}\",\"p\":\"").into_bytes();
        d.resize(size - 2, b'x');
        d.extend_from_slice(b"\"}");
        d
    }

    fn read_all(path: &Path) -> (Vec<Vec<u8>>, ReadReport) {
        let mut docs = Vec::new();
        let report = read_file(path, |d| docs.push(d.to_vec())).unwrap();
        (docs, report)
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn documents_come_back_in_order_with_private_permissions() {
        let scratch = Dir::new("order");
        // A directory the spool creates itself, so it gets the spool's mode.
        let dir = Dir(scratch.0.join("spool"));
        let spool = Spool::open(&dir.0, 100 * 1024 * 1024).unwrap();
        let docs: Vec<Vec<u8>> = (0..100).map(|i| doc(i, 500)).collect();
        let appended = spool.append(docs.iter().map(Vec::as_slice));
        assert_eq!(
            appended,
            Appended {
                written: 100,
                lost: 0
            }
        );
        let file = spool.next_file_to_replay().unwrap();
        let (read, report) = read_all(&file);
        assert_eq!(read, docs);
        assert_eq!(
            report,
            ReadReport {
                records: 100,
                corrupt: 0,
                torn_tail: false
            }
        );
        assert_eq!(
            fs::metadata(&dir.0).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        spool.finished_replaying(&file);
        assert!(spool.files().is_empty());
    }

    #[test]
    fn a_torn_tail_and_a_corrupt_record_lose_only_themselves() {
        let dir = Dir::new("damage");
        let spool = Spool::open(&dir.0, 100 * 1024 * 1024).unwrap();
        let docs: Vec<Vec<u8>> = (0..10).map(|i| doc(i, 300)).collect();
        spool.append(docs.iter().map(Vec::as_slice));
        spool.stop();
        let file = spool.files().remove(0);
        let mut bytes = fs::read(&file).unwrap();
        // Flip a byte inside record 3's document, and cut record 9 short.
        let record = RECORD_HEADER_LEN + 300;
        bytes[FILE_HEADER.len() + 3 * record + RECORD_HEADER_LEN + 20] ^= 0xff;
        bytes.truncate(bytes.len() - 100);
        fs::write(&file, &bytes).unwrap();
        let (read, report) = read_all(&file);
        let expected: Vec<Vec<u8>> = docs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 9)
            .map(|(_, d)| d.clone())
            .collect();
        assert_eq!(read, expected);
        assert_eq!(
            report,
            ReadReport {
                records: 8,
                corrupt: 1,
                torn_tail: true
            }
        );
    }

    #[test]
    fn garbage_in_the_middle_is_skipped() {
        let dir = Dir::new("garbage");
        let spool = Spool::open(&dir.0, 100 * 1024 * 1024).unwrap();
        spool.append([doc(1, 200).as_slice()]);
        spool.stop();
        let file = spool.files().remove(0);
        let mut bytes = fs::read(&file).unwrap();
        bytes.extend_from_slice(b"XR\xff\xff\xff\xff garbage that looks like a marker");
        let mut tail = Vec::new();
        tail.extend_from_slice(RECORD_MARKER);
        let d = doc(2, 200);
        tail.extend_from_slice(&(d.len() as u32).to_le_bytes());
        tail.extend_from_slice(&crc32(&d).to_le_bytes());
        tail.extend_from_slice(&d);
        bytes.extend_from_slice(&tail);
        fs::write(&file, &bytes).unwrap();
        let (read, report) = read_all(&file);
        assert_eq!(read, vec![doc(1, 200), d]);
        assert_eq!(report.corrupt, 1);
    }

    #[test]
    fn the_size_limit_deletes_the_oldest_files_and_counts_their_records() {
        let dir = Dir::new("limit");
        let max = 512 * 1024;
        let spool = Spool::open(&dir.0, max).unwrap();
        let mut lost = 0;
        let mut written = 0;
        for i in 0..2_000 {
            let a = spool.append([doc(i, 1000).as_slice()]);
            lost += a.lost;
            written += a.written;
        }
        assert_eq!(written, 2_000);
        assert!(lost > 0);
        assert!(spool.total_bytes() <= max, "{}", spool.total_bytes());
        let mut remaining = 0;
        for file in spool.files() {
            remaining += read_all(&file).1.records;
        }
        assert_eq!(remaining + lost, 2_000);
    }

    #[test]
    fn files_left_by_an_earlier_run_are_replayed_first() {
        let dir = Dir::new("restart");
        {
            let spool = Spool::open(&dir.0, 10 * 1024 * 1024).unwrap();
            spool.append([doc(1, 100).as_slice()]);
            // No stop(): as after kill -9.
        }
        let spool = Spool::open(&dir.0, 10 * 1024 * 1024).unwrap();
        spool.append([doc(2, 100).as_slice()]);
        let first = spool.next_file_to_replay().unwrap();
        assert_eq!(read_all(&first).0, vec![doc(1, 100)]);
        spool.finished_replaying(&first);
        let second = spool.next_file_to_replay().unwrap();
        assert_eq!(read_all(&second).0, vec![doc(2, 100)]);
    }

    #[test]
    fn an_unwritable_directory_is_reported_at_open() {
        let dir = Dir::new("readonly");
        fs::create_dir_all(&dir.0).unwrap();
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o500)).unwrap();
        let result = Spool::open(&dir.0, 1024 * 1024);
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o700)).unwrap();
        // Root ignores directory permissions; the check only bites for other users.
        if unsafe { libc::geteuid() } != 0 {
            let err = result.err().expect("unwritable directory");
            assert!(
                err.to_string().contains("cannot write to spool directory"),
                "{err}"
            );
        }
    }

    #[test]
    fn stop_wakes_a_waiting_replayer() {
        let dir = Dir::new("stop");
        let spool = std::sync::Arc::new(Spool::open(&dir.0, 1024 * 1024).unwrap());
        let waiter = {
            let spool = spool.clone();
            std::thread::spawn(move || spool.next_file_to_replay())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        spool.stop();
        assert_eq!(waiter.join().unwrap(), None);
    }

    /// The relay keeps any body after a valid header (as the original does), so the spool must
    /// give back any bytes: not UTF-8, NUL, newlines, even its own record marker.
    #[test]
    fn any_bytes_come_back_exactly() {
        let dir = Dir::new("bytes");
        let spool = Spool::open(&dir.0, 1024 * 1024).unwrap();
        let docs: Vec<Vec<u8>> = vec![
            b"{\"name\":\"caf\xe9\"}".to_vec(),
            b"{\"raw\":\"a\tb\"}\x00".to_vec(),
            b"XR\x05\x00\x00\x00XRSPOOL1\r\n".to_vec(),
            (0..=255u8).collect(),
            b"x".to_vec(),
        ];
        let appended = spool.append(docs.iter().map(Vec::as_slice));
        assert_eq!(appended.written, docs.len() as u64);
        let file = spool.next_file_to_replay().unwrap();
        let (read, report) = read_all(&file);
        assert_eq!(read, docs);
        assert_eq!((report.corrupt, report.torn_tail), (0, false));
    }
}
