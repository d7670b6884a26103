//! The durable spool (opt-in, `--spool-dir`): segments the pool has no room for, and those
//! that could not be sent, go to append-only files, and are replayed when X-Ray can be
//! reached again.
//!
//! Nothing here touches the disk on the caller's thread: [`spool_or_count_lost`] copies the
//! documents into a bounded queue in memory, and one writer thread (`writer`) turns them into
//! records, keeps a running total of the spool's bytes (no directory listing), and deletes the
//! oldest files when the spool would grow past its limit. An in-memory index of the files,
//! locked only to read or change the list, is shared with the replayer, which reads and sends
//! without holding anything the writer needs.
//!
//! Files are named by a sequence number that continues from the highest one found at start,
//! so replay goes oldest first whatever the clock does. Files from versions that named them by
//! the time of day are replayed before them. The record format is in [`format`]; a `kill -9`
//! loses what was still queued (at most [`QUEUE_BYTES`]) and at most one torn record.

mod crc32;
mod format;
mod writer;

pub use crc32::crc32;
pub use format::{FILE_HEADER, ReadReport, read_bytes, read_file};

use crate::pool::Spilled;
use crate::stats::Stats;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const EXTENSION: &str = "spool";

/// Documents queued for the writer, at most: beyond it, segments evicted from the pool are
/// counted as lost rather than make the receiver wait.
pub const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// How long the uploaders and shutdown wait for room in the queue (the receiver never waits).
const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// How long shutdown waits for the writer to put the queue on disk.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Why documents leave the pool without being delivered; decides the counter of a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// Pushed out of the full pool by newer segments. Lost ones count as spillover.
    Evicted,
    /// Refused by X-Ray for a reason retries cannot fix. Lost ones count as dropped.
    Refused,
    /// Still unsent when shutdown gave up on them. Lost ones count as dropped.
    Unfinished,
}

/// Where lost documents are counted, the only place that counts losses.
///
/// `Evicted` losses, and those for want of room in the spool, are spillover (the telemetry
/// record's `SegmentsSpilloverCount`): the spool is the buffer's extension on disk. The others
/// are `dropped`.
pub fn count_lost(stats: &Stats, why: Unsent, n: u64) {
    if n == 0 {
        return;
    }
    match why {
        Unsent::Evicted => Stats::add(&stats.spillover, n),
        Unsent::Refused | Unsent::Unfinished => Stats::add(&stats.dropped, n),
    }
}

/// Where a spool counts what it writes and what it loses: segments one per document
/// ([`Stats`], losses through [`count_lost`]); the OTLP spool weighs each record (a
/// request) by its spans, in the OTLP counters.
pub trait Counts: Send + Sync {
    /// What `document` counts for.
    fn weight(&self, document: &[u8]) -> u64;
    /// Counts `n` (summed weights) lost for `why`.
    fn lost(&self, why: Unsent, n: u64);
    /// Counts `n` (summed weights) written to a spool file.
    fn spooled(&self, n: u64);
    /// Whether documents weigh other than 1: a file deleted for room is then read to weigh
    /// the records it loses.
    fn weighs_documents(&self) -> bool;
}

impl Counts for Stats {
    fn weight(&self, _: &[u8]) -> u64 {
        1
    }

    fn lost(&self, why: Unsent, n: u64) {
        count_lost(self, why, n);
    }

    fn spooled(&self, n: u64) {
        Stats::add(&self.spooled, n);
    }

    fn weighs_documents(&self) -> bool {
        false
    }
}

/// The one decision for documents leaving the pool unsent: queue them for the spool, or
/// count them as lost (no spool, or no room in its queue). Returns how many were lost.
///
/// For [`Unsent::Evicted`] (the receiver) it never waits; otherwise it waits up to two
/// seconds for room in the queue. Whatever the writer later cannot keep (the spool full, a
/// failed write) it counts through [`count_lost`] too.
pub fn spool_or_count_lost<'a>(
    spool: Option<&Spool>,
    stats: &Stats,
    why: Unsent,
    documents: impl IntoIterator<Item = &'a [u8]>,
) -> u64 {
    let lost = match spool {
        Some(spool) => spool.enqueue(documents, why != Unsent::Evicted),
        None => documents.into_iter().count() as u64,
    };
    count_lost(stats, why, lost);
    lost
}

/// Orders spool files: names from older versions (time of day) first, then by sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Legacy(String),
    Sequence(u64),
}

impl Key {
    fn of(path: &Path) -> Option<Key> {
        if path.extension().is_none_or(|e| e != EXTENSION) {
            return None;
        }
        let stem = path.file_stem()?.to_str()?;
        Some(match stem.parse::<u64>() {
            Ok(n) if stem.len() == 20 => Key::Sequence(n),
            _ => Key::Legacy(stem.to_string()),
        })
    }

    fn file_name(sequence: u64) -> String {
        format!("{sequence:020}.{EXTENSION}")
    }
}

/// One spool file as the index knows it.
#[derive(Debug)]
struct Entry {
    key: Key,
    path: PathBuf,
    bytes: u64,
    /// Intact records, once known (written by this run, or read by the replayer).
    records: Option<u64>,
    /// Records the replayer got X-Ray to accept (from the start of the file).
    delivered: u64,
    /// Still being written: not replayed until closed.
    open: bool,
}

#[derive(Debug, Default)]
struct Index {
    /// Oldest first.
    files: Vec<Entry>,
    replaying: Option<Key>,
    stopped: bool,
}

#[derive(Debug, Default)]
struct Queue {
    documents: Spilled,
    bytes: usize,
    stopping: bool,
    writer_gone: bool,
    /// Stop stopped waiting for a late writer: nothing queued now would reach the disk.
    given_up: bool,
    flush_asked: u64,
    flushed: u64,
}

/// State shared by the callers, the writer thread and the replayer.
struct Shared {
    dir: PathBuf,
    max_bytes: u64,
    counts: Arc<dyn Counts>,
    /// Bytes in spool files (and in the writer's buffer), kept as files grow and go.
    total: AtomicU64,
    queue: Mutex<Queue>,
    /// The writer waits here for documents; callers wait here for room or a flush.
    queue_changed: Condvar,
    index: Mutex<Index>,
    /// The replayer waits here for a closed file, or stop.
    index_changed: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }
}

/// The spool directory, shared by the receiver, the uploaders, shutdown and the replayer.
pub struct Spool {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// A file handed to the replayer by [`Spool::next_file_to_replay`].
#[derive(Debug)]
pub struct Replaying {
    /// Where it is.
    pub path: PathBuf,
    /// Records from its start already accepted by X-Ray in this run: skip them.
    pub delivered: u64,
    key: Key,
}

impl Spool {
    /// Opens (creating, mode 0700) the spool directory, limited to `max_bytes` of files, and
    /// starts its writer thread. What it writes and loses is counted in `counts`.
    pub fn open(dir: &Path, max_bytes: u64, counts: Arc<dyn Counts>) -> io::Result<Spool> {
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
        // Probe now, so an unwritable directory is reported at start and not at the first spill.
        let probe = dir.join(".write-test");
        fs::File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot write to spool directory {}: {err}", dir.display()),
                )
            })?;
        let files = existing_files(dir)?;
        let next_sequence = files
            .iter()
            .filter_map(|e| match e.key {
                Key::Sequence(n) => Some(n + 1),
                Key::Legacy(_) => None,
            })
            .max()
            .unwrap_or(1);
        let total = files.iter().map(|e| e.bytes).sum();
        let min_bytes = 2 * (format::RECORD_HEADER_LEN + format::MAX_RECORD) as u64;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(min_bytes),
            counts,
            total: AtomicU64::new(total),
            queue: Mutex::new(Queue::default()),
            queue_changed: Condvar::new(),
            index: Mutex::new(Index {
                files,
                ..Index::default()
            }),
            index_changed: Condvar::new(),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("spool-writer".into())
                .spawn(move || writer::run(&shared, next_sequence))
                .map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!("cannot start the spool writer thread: {err}"),
                    )
                })?
        };
        Ok(Spool {
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Spool files, oldest first (including one being written).
    pub fn files(&self) -> Vec<PathBuf> {
        self.shared
            .index()
            .files
            .iter()
            .map(|e| e.path.clone())
            .collect()
    }

    /// Bytes held by the spool files, from the running total.
    pub fn total_bytes(&self) -> u64 {
        self.shared.total.load(Ordering::Relaxed)
    }

    /// Queues documents for the writer; returns how many found no room (not counted here:
    /// segments go through [`spool_or_count_lost`], the OTLP spool counts them in spans).
    /// With `wait`, waits up to [`QUEUE_WAIT`] for room; without, takes only what fits now.
    pub fn enqueue<'a>(&self, documents: impl IntoIterator<Item = &'a [u8]>, wait: bool) -> u64 {
        let shared = &self.shared;
        let deadline = Instant::now() + QUEUE_WAIT;
        let mut lost = 0;
        let mut queue = shared.queue();
        let mut wake_writer = false;
        for document in documents {
            loop {
                if queue.writer_gone || queue.given_up {
                    lost += 1;
                    break;
                }
                if queue.bytes + document.len() <= QUEUE_BYTES || queue.documents.is_empty() {
                    // The writer waits only on an empty queue.
                    wake_writer |= queue.documents.is_empty();
                    queue.documents.push(document);
                    queue.bytes += document.len();
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if !wait || left.is_zero() {
                    lost += 1;
                    break;
                }
                if wake_writer {
                    shared.queue_changed.notify_all();
                    wake_writer = false;
                }
                queue = shared
                    .queue_changed
                    .wait_timeout(queue, left)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        drop(queue);
        if wake_writer {
            shared.queue_changed.notify_all();
        }
        lost
    }

    /// Waits until everything queued so far is written and the current file closed (so the
    /// replayer can take it). For tests and tools; the writer also closes a file after a
    /// second without new documents.
    pub fn flush(&self) {
        let shared = &self.shared;
        let mut queue = shared.queue();
        queue.flush_asked += 1;
        let asked = queue.flush_asked;
        shared.queue_changed.notify_all();
        let deadline = Instant::now() + STOP_WAIT;
        while queue.flushed < asked && !queue.writer_gone {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!("The spool writer did not finish within {STOP_WAIT:?}");
                return;
            }
            queue = shared
                .queue_changed
                .wait_timeout(queue, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Waits for a file to replay: the oldest closed one not waiting out a pause. Returns
    /// `None` once [`Spool::stop`] was called.
    pub fn next_file_to_replay(&self) -> Option<Replaying> {
        let shared = &self.shared;
        let mut index = shared.index();
        loop {
            if index.stopped {
                return None;
            }
            if let Some(entry) = index.files.first().filter(|e| !e.open) {
                let file = Replaying {
                    path: entry.path.clone(),
                    delivered: entry.delivered,
                    key: entry.key.clone(),
                };
                index.replaying = Some(file.key.clone());
                return Some(file);
            }
            index = shared
                .index_changed
                .wait(index)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The replayer read `records` intact records in `file` and X-Ray has accepted the first
    /// `delivered` of them: were the file deleted for room, only the rest would be lost.
    pub fn replay_progress(&self, file: &mut Replaying, records: u64, delivered: u64) {
        file.delivered = delivered;
        let mut index = self.shared.index();
        if let Some(entry) = index.files.iter_mut().find(|e| e.key == file.key) {
            entry.records = Some(records);
            entry.delivered = delivered;
        }
    }

    /// Everything in `file` was accepted (or is damaged beyond repair): delete it.
    pub fn finished_replaying(&self, file: Replaying) {
        let shared = &self.shared;
        let mut index = shared.index();
        index.replaying = None;
        let position = index.files.iter().position(|e| e.key == file.key);
        let entry = position.map(|i| index.files.remove(i));
        drop(index);
        if let Some(entry) = entry {
            shared.total.fetch_sub(entry.bytes, Ordering::Relaxed);
        }
        match fs::remove_file(&file.path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => log::error!(
                "Cannot delete replayed spool file {}: {err}",
                file.path.display()
            ),
        }
    }

    /// The replayer stops working on `file` for now (a pause, or shutdown): it stays, and may
    /// be deleted for room meanwhile.
    pub fn release(&self, file: Replaying) {
        let mut index = self.shared.index();
        if index.replaying.as_ref() == Some(&file.key) {
            index.replaying = None;
        }
    }

    /// Sleeps for `pause` unless the spool stops first; `false` if it did.
    pub fn pause(&self, pause: Duration) -> bool {
        let shared = &self.shared;
        let deadline = Instant::now() + pause;
        let mut index = shared.index();
        while !index.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            index = shared
                .index_changed
                .wait_timeout(index, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        false
    }

    /// Writes what is queued, closes the current file (synced), ends the writer and wakes
    /// the replayer to stop. Later documents are counted as lost.
    pub fn stop(&self) {
        self.stop_within(STOP_WAIT);
    }

    /// [`Spool::stop`], giving the writer `wait` to finish (tests need less than a slow
    /// disk gets).
    fn stop_within(&self, wait: Duration) {
        let shared = &self.shared;
        {
            let mut queue = shared.queue();
            queue.stopping = true;
            shared.queue_changed.notify_all();
            let deadline = Instant::now() + wait;
            while !queue.writer_gone {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // A slow disk: what is still queued will not be on disk before the
                    // process ends, so it is lost, and counted as such now.
                    let unwritten: u64 = queue
                        .documents
                        .documents()
                        .map(|d| shared.counts.weight(d))
                        .sum();
                    queue.documents.clear();
                    queue.bytes = 0;
                    queue.given_up = true;
                    shared.counts.lost(Unsent::Unfinished, unwritten);
                    log::warn!(
                        "The spool writer did not finish within {wait:?}; {unwritten} queued segments are lost"
                    );
                    break;
                }
                queue = shared
                    .queue_changed
                    .wait_timeout(queue, left)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        if let Some(writer) = lock(&self.writer).take()
            && shared.queue().writer_gone
        {
            let _ = writer.join();
        }
        shared.index().stopped = true;
        shared.index_changed.notify_all();
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if lock(&self.writer).is_some() {
            self.stop();
        }
    }
}

/// The spool files already in `dir`, oldest first.
fn existing_files(dir: &Path) -> io::Result<Vec<Entry>> {
    let entries = fs::read_dir(dir).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot list spool directory {}: {err}", dir.display()),
        )
    })?;
    let mut files: Vec<Entry> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let key = Key::of(&path)?;
            let bytes = e.metadata().ok()?.len();
            Some(Entry {
                key,
                path,
                bytes,
                records: None,
                delivered: 0,
                open: false,
            })
        })
        .collect();
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}

#[cfg(test)]
mod tests;
