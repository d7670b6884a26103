//! The spool's writer thread: takes the queued documents in one swap, frames them as records,
//! writes them in large `write`s, closes a file when it is full or the queue has been idle for
//! a second, and deletes the oldest files to stay within the spool's limit.

use super::format::{self, FILE_HEADER, RECORD_HEADER_LEN};
use super::{Entry, Key, Shared, Unsent};
use crate::pool::Spilled;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Files are closed at this size (or a quarter of the limit, if smaller) so that the oldest
/// can be replayed and deleted while newer ones fill.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Records are gathered up to this size before one `write`.
const WRITE_CHUNK: usize = 256 * 1024;

/// A file with no new document for this long is closed, so the replayer can take it.
const IDLE_CLOSE: Duration = Duration::from_secs(1);

struct Current {
    file: File,
    key: Key,
    /// Bytes on disk.
    size: u64,
}

struct Writer<'a> {
    shared: &'a Shared,
    current: Option<Current>,
    next_sequence: u64,
    file_limit: u64,
    /// Records framed for the current file, not yet written.
    out: Vec<u8>,
    out_records: u64,
    /// What the records in `out` weigh ([`super::Counts::weight`]).
    out_weight: u64,
    /// Documents that could not be written since the last one that could: the first failure
    /// of a run is logged with its cause, the recovery with the count, nothing in between.
    failed_writes: u64,
}

/// The thread's body: runs until the spool stops and the queue is empty.
pub(super) fn run(shared: &Shared, next_sequence: u64) {
    let mut writer = Writer {
        shared,
        current: None,
        next_sequence,
        file_limit: MAX_FILE_BYTES.min(shared.max_bytes / 4).max(64 * 1024),
        out: Vec::with_capacity(WRITE_CHUNK + format::MAX_RECORD + RECORD_HEADER_LEN),
        out_records: 0,
        out_weight: 0,
        failed_writes: 0,
    };
    let mut documents = Spilled::new();
    loop {
        #[cfg(test)]
        held::wait_while_held(&shared.dir);
        let mut queue = shared.queue();
        let mut idle = false;
        while queue.documents.is_empty() && !queue.stopping && queue.flush_asked == queue.flushed {
            if writer.current.is_none() {
                queue = shared
                    .queue_changed
                    .wait(queue)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let (guard, waited) = shared
                .queue_changed
                .wait_timeout(queue, IDLE_CLOSE)
                .unwrap_or_else(|p| p.into_inner());
            queue = guard;
            if waited.timed_out() && queue.documents.is_empty() {
                idle = true;
                break;
            }
        }
        std::mem::swap(&mut queue.documents, &mut documents);
        queue.bytes = 0;
        let stopping = queue.stopping;
        let flush_asked = queue.flush_asked;
        let flush = flush_asked != queue.flushed;
        drop(queue);
        // Callers waiting for room.
        shared.queue_changed.notify_all();

        for document in documents.documents() {
            writer.put(document);
        }
        documents.clear();
        writer.write_out();
        if idle || flush || stopping {
            writer.close(true);
        }
        let mut queue = shared.queue();
        queue.flushed = flush_asked;
        if stopping && queue.documents.is_empty() {
            queue.writer_gone = true;
            drop(queue);
            shared.queue_changed.notify_all();
            return;
        }
        drop(queue);
        if flush {
            shared.queue_changed.notify_all();
        }
    }
}

impl Writer<'_> {
    /// Frames one document for the current file, making room first.
    fn put(&mut self, document: &[u8]) {
        let shared = self.shared;
        let weight = shared.counts.weight(document);
        if document.is_empty() || document.len() > format::MAX_RECORD {
            shared.counts.lost(Unsent::Refused, weight);
            return;
        }
        let record_len = (RECORD_HEADER_LEN + document.len()) as u64;
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.size + self.out.len() as u64 + record_len > self.file_limit)
        {
            self.write_out();
            self.close(false);
        }
        let header = if self.current.is_none() {
            FILE_HEADER.len() as u64
        } else {
            0
        };
        while shared.total.load(Ordering::Relaxed) + header + record_len > shared.max_bytes {
            if !self.delete_oldest() {
                break;
            }
        }
        if shared.total.load(Ordering::Relaxed) + header + record_len > shared.max_bytes {
            shared.counts.lost(Unsent::Evicted, weight);
            return;
        }
        if self.current.is_none()
            && let Err(err) = self.create_file()
        {
            self.failed(&err, weight);
            return;
        }
        format::frame(&mut self.out, document);
        self.out_records += 1;
        self.out_weight += weight;
        shared.total.fetch_add(record_len, Ordering::Relaxed);
        if self.out.len() >= WRITE_CHUNK {
            self.write_out();
        }
    }

    /// A new file, named by the next sequence number, with its header written.
    fn create_file(&mut self) -> io::Result<()> {
        let shared = self.shared;
        let (mut file, key, path) = loop {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let path = shared.dir.join(Key::file_name(sequence));
            match OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => break (file, Key::Sequence(sequence), path),
                // Another process on the same directory: take the next number.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        };
        if let Err(err) = file.write_all(FILE_HEADER) {
            let _ = fs::remove_file(&path);
            return Err(err);
        }
        shared
            .total
            .fetch_add(FILE_HEADER.len() as u64, Ordering::Relaxed);
        shared.index().files.push(Entry {
            key: key.clone(),
            path,
            bytes: FILE_HEADER.len() as u64,
            records: Some(0),
            delivered: 0,
            open: true,
        });
        self.current = Some(Current {
            file,
            key,
            size: FILE_HEADER.len() as u64,
        });
        Ok(())
    }

    /// Writes the framed records to the current file.
    fn write_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let shared = self.shared;
        let records = std::mem::take(&mut self.out_records);
        let weight = std::mem::take(&mut self.out_weight);
        let result = match self.current.as_mut() {
            Some(current) => current.file.write_all(&self.out),
            None => Err(io::Error::other("no spool file open")),
        };
        let written = self.out.len() as u64;
        self.out.clear();
        match result {
            Ok(()) => {
                let Some(current) = self.current.as_mut() else {
                    return;
                };
                current.size += written;
                let mut index = shared.index();
                if let Some(entry) = index.files.iter_mut().find(|e| e.key == current.key) {
                    entry.bytes += written;
                    entry.records = Some(entry.records.unwrap_or(0) + records);
                }
                drop(index);
                shared.counts.spooled(weight);
                if self.failed_writes > 0 {
                    log::warn!(
                        "Spool {} is writable again; {} segments could not be written to it and were lost",
                        shared.dir.display(),
                        self.failed_writes
                    );
                    self.failed_writes = 0;
                }
            }
            Err(err) => {
                shared.total.fetch_sub(written, Ordering::Relaxed);
                self.failed(&err, weight);
                // Whatever part of the write reached the file is read back as damaged.
                self.close(false);
            }
        }
    }

    fn failed(&mut self, err: &io::Error, documents: u64) {
        if self.failed_writes == 0 {
            log::error!(
                "Cannot write to spool {}: {err}; segments for it are lost until it can be written again",
                self.shared.dir.display()
            );
        }
        self.failed_writes += documents;
        self.shared.counts.lost(Unsent::Refused, documents);
    }

    /// Closes the current file and hands it to the replayer. With `sync`, waits until it is
    /// on disk first: when the queue went idle, and at shutdown. A file closed because it is
    /// full is left to the kernel's writeback: waiting for the disk there stalled the writer
    /// for tens of milliseconds per file while the queue overflowed (a `kill -9` loses
    /// nothing either way; a power cut may lose what the kernel had not written yet).
    fn close(&mut self, sync: bool) {
        self.write_out();
        let Some(current) = self.current.take() else {
            return;
        };
        let shared = self.shared;
        let mut index = shared.index();
        let path = index
            .files
            .iter()
            .find(|e| e.key == current.key)
            .map(|e| e.path.clone());
        drop(index);
        if sync && let Err(err) = current.file.sync_data() {
            log::warn!(
                "Cannot sync spool file {}: {err}",
                path.unwrap_or_default().display()
            );
        }
        index = shared.index();
        if let Some(entry) = index.files.iter_mut().find(|e| e.key == current.key) {
            entry.open = false;
        }
        drop(index);
        shared.index_changed.notify_all();
    }

    /// Deletes the oldest file the replayer is not reading and counts its undelivered records
    /// as lost; `false` if there is none.
    fn delete_oldest(&mut self) -> bool {
        let shared = self.shared;
        let mut index = shared.index();
        let replaying = index.replaying.clone();
        let mut victim = index
            .files
            .iter()
            .position(|e| !e.open && Some(&e.key) != replaying.as_ref());
        if victim.is_none() {
            // Only the file being written is left: close it and let it go.
            drop(index);
            let current_key = self.current.as_ref().map(|c| c.key.clone());
            if current_key.is_none() || current_key == replaying {
                return false;
            }
            self.close(false);
            index = shared.index();
            victim = index
                .files
                .iter()
                .position(|e| Some(&e.key) == current_key.as_ref());
        }
        let Some(victim) = victim else {
            return false;
        };
        let entry = index.files.remove(victim);
        drop(index);
        shared.total.fetch_sub(entry.bytes, Ordering::Relaxed);
        let lost = match entry.records {
            Some(records) if !shared.counts.weighs_documents() => {
                records.saturating_sub(entry.delivered)
            }
            // A file from an earlier run the replayer has not read yet, or records that
            // weigh what they hold: read what is lost.
            _ => {
                let (mut at, mut lost) = (0, 0);
                let _ = format::read_file(&entry.path, |record| {
                    if at >= entry.delivered {
                        lost += shared.counts.weight(record);
                    }
                    at += 1;
                });
                lost
            }
        };
        if let Err(err) = fs::remove_file(&entry.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            log::error!("Cannot delete spool file {}: {err}", entry.path.display());
        }
        shared.counts.lost(Unsent::Evicted, lost);
        log::warn!(
            "Spool is full ({} bytes): deleted {} with {lost} segments",
            shared.max_bytes,
            entry.path.display()
        );
        true
    }
}

/// Holds the writer of a spool directory before it takes the queue, as a disk that does
/// not answer would, so tests can see what stop does with a writer that is late.
#[cfg(test)]
pub(super) mod held {
    use std::path::{Path, PathBuf};
    use std::sync::{Condvar, Mutex};

    static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    static RELEASED: Condvar = Condvar::new();

    /// Holds the writer of the spool in `dir` from its next turn on.
    pub fn hold(dir: &Path) {
        HELD.lock().unwrap().push(dir.to_path_buf());
    }

    /// Lets it go on.
    pub fn release(dir: &Path) {
        HELD.lock().unwrap().retain(|held| held != dir);
        RELEASED.notify_all();
    }

    pub(in crate::spool) fn wait_while_held(dir: &Path) {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        while held.iter().any(|h| h == dir) {
            held = RELEASED.wait(held).unwrap_or_else(|p| p.into_inner());
        }
    }
}
