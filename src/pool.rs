//! The segment pool: one byte arena, allocated at start, that holds segments until they are sent.
//!
//! The original daemon gives every segment its own 64 KB buffer, so 3 MB holds 48 segments. Here
//! segments are packed back to back in a ring of bytes, in arrival order, with a fixed table of
//! slots (offset, length, arrival time, state) beside it: 3 MB holds about 3,000 segments of 1 KB.
//! Nothing is allocated per segment. When the arena or the slot table is full, the oldest segment
//! makes room (spillover); with a spool, the new segment goes there instead
//! ([`Pool::push_if_room`]).
//!
//! Uploaders take batches with [`Pool::take_batch`], which blocks until a batch is due: 50
//! segments waiting, the oldest waiting for [`BATCH_DELAY`], the pool running low, or the pool
//! closing. A due batch wakes the uploader that went idle last, so that a light load keeps
//! reusing one warm thread (its stack and buffers in the cache) and the others stay asleep. A taken segment keeps its place (marked in flight) until [`Pool::release`], so the
//! memory it uses stays counted while it is being sent.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The most documents one `PutTraceSegments` call may carry.
pub const BATCH_SIZE: usize = 50;

/// How long the first segment of a batch waits for company before the batch is sent anyway.
pub const BATCH_DELAY: Duration = Duration::from_secs(1);

/// A batch also closes at this many bytes of documents, so a burst of 64 KB segments cannot
/// make each uploader hold megabytes.
pub const BATCH_MAX_BYTES: usize = 256 * 1024;

/// The smallest pool the relay accepts (the original's minimum).
pub const MIN_POOL_BYTES: usize = 3 * 1024 * 1024;

/// The smallest pool made: segments' share of the smallest buffer when OTLP takes the rest
/// (`otlp::share_buffer`), so `--buffer-memory` stays the whole budget.
const SMALLEST_POOL_BYTES: usize = 1024 * 1024;

/// The largest pool, in MB: slots hold 32-bit arena offsets, so the arena stays below 4 GiB.
pub const MAX_POOL_MB: u64 = 4095;

/// [`MAX_POOL_MB`] in bytes (below 2^32, so it fits a `usize` on 32-bit targets too).
const MAX_POOL_BYTES: usize = (MAX_POOL_MB * 1024 * 1024) as usize;

/// One slot per this many arena bytes: segments smaller than this on average are limited by
/// slots rather than bytes. SDK segments are rarely under 500 bytes.
const BYTES_PER_SLOT: usize = 512;

/// The largest document a slot can describe (a UDP datagram is smaller still).
const MAX_DOCUMENT: usize = 64 * 1024;

/// Where a slot's segment is. `Done` comes first: an all-zero [`Slot`] is [`EMPTY_SLOT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum State {
    /// Released; its bytes are free once everything older is too.
    Done = 0,
    /// Waiting to be taken by an uploader.
    Waiting,
    /// Taken by an uploader, not yet released.
    InFlight,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: u32,
    len: u32,
    /// Milliseconds since the pool was created (wrapping; ages stay far below 49 days).
    received_ms: u32,
    state: State,
}

const EMPTY_SLOT: Slot = Slot {
    offset: 0,
    len: 0,
    received_ms: 0,
    state: State::Done,
};

/// A table of `n` empty slots, allocated zeroed: the pages the relay never writes to (all of
/// them while idle) are never mapped, as for the arena. Filling it with `EMPTY_SLOT` would touch
/// 16 bytes per 512 of buffer at start: 2 MB of RSS with `-m 64`.
fn empty_slots(n: usize) -> Box<[Slot]> {
    let slots = Box::<[Slot]>::new_zeroed_slice(n);
    // SAFETY: every field of Slot is an integer or State, whose variant 0 is Done; all zeroes
    // is EMPTY_SLOT.
    unsafe { slots.assume_init() }
}

/// What a [`Pool::push`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Waiting segments dropped to make room (count them as spillover).
    pub evicted_waiting: u32,
    /// `false` if the document could not be stored at all (larger than any slot).
    pub stored: bool,
}

/// How full the pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Segments held (waiting or in flight).
    pub segments: usize,
    /// Bytes of the arena in use, including any gap left at the end when the ring wrapped.
    pub used_bytes: usize,
    /// Size of the arena.
    pub capacity_bytes: usize,
    /// Size of the slot table.
    pub capacity_segments: usize,
}

impl Fill {
    /// The larger of the byte and slot fill ratios, from 0.0 to 1.0.
    pub fn ratio(&self) -> f64 {
        let bytes = self.used_bytes as f64 / self.capacity_bytes as f64;
        let slots = self.segments as f64 / self.capacity_segments as f64;
        bytes.max(slots)
    }
}

/// Documents taken from the pool for one upload. Reused from batch to batch.
#[derive(Debug, Default)]
pub struct Batch {
    seqs: heapless::Vec<u64, BATCH_SIZE>,
    ends: heapless::Vec<u32, BATCH_SIZE>,
    received_ms: heapless::Vec<u32, BATCH_SIZE>,
    bytes: Vec<u8>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// `true` when the batch holds no document.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The documents, in arrival order, exactly as received.
    pub fn documents(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0usize;
        self.ends.iter().map(move |&end| {
            let doc = &self.bytes[start..end as usize];
            start = end as usize;
            doc
        })
    }

    /// Total bytes of the documents.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// `true` if `document` may join the batch (count and byte limits).
    pub fn has_room_for(&self, document_len: usize) -> bool {
        !self.ends.is_full()
            && (self.is_empty() || self.bytes.len() + document_len <= BATCH_MAX_BYTES)
    }

    /// Adds a document that does not come from the pool (the spool replays these).
    /// Returns `false`, adding nothing, when the batch is full.
    pub fn push_document(&mut self, document: &[u8]) -> bool {
        if !self.has_room_for(document.len()) {
            return false;
        }
        self.bytes.extend_from_slice(document);
        // has_room_for checked the capacity.
        let _ = self.ends.push(self.bytes.len() as u32);
        true
    }

    /// Keeps only the documents `keep` accepts. Returns the pool positions of the others,
    /// for [`Pool::release_positions`].
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> heapless::Vec<u64, BATCH_SIZE> {
        let mut removed = heapless::Vec::new();
        let old_ends = self.ends.clone();
        let old_seqs = self.seqs.clone();
        let old_received = self.received_ms.clone();
        self.ends.clear();
        self.seqs.clear();
        self.received_ms.clear();
        let mut write = 0usize;
        let mut start = 0usize;
        for (i, &end) in old_ends.iter().enumerate() {
            let end = end as usize;
            let kept = keep(&self.bytes[start..end]);
            let seq = old_seqs.get(i).copied();
            if kept {
                self.bytes.copy_within(start..end, write);
                write += end - start;
                let _ = self.ends.push(write as u32);
                if let Some(seq) = seq {
                    let _ = self.seqs.push(seq);
                }
                if let Some(&received) = old_received.get(i) {
                    let _ = self.received_ms.push(received);
                }
            } else if let Some(seq) = seq {
                let _ = removed.push(seq);
            }
            start = end;
        }
        self.bytes.truncate(write);
        removed
    }

    /// Empties the batch for reuse.
    pub fn clear(&mut self) {
        self.seqs.clear();
        self.ends.clear();
        self.received_ms.clear();
        // A burst of large segments may have grown the buffer; give it back.
        if self.bytes.capacity() > 2 * BATCH_MAX_BYTES {
            self.bytes = Vec::new();
        }
        self.bytes.clear();
    }
}

/// Documents pushed out of the pool to make room, kept for the spool. Reused between pushes.
#[derive(Debug, Default)]
pub struct Spilled {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Spilled {
    /// No documents.
    pub fn new() -> Spilled {
        Spilled::default()
    }

    /// The documents, oldest first.
    pub fn documents(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0usize;
        self.ends.iter().map(move |&end| {
            let doc = &self.bytes[start..end];
            start = end;
            doc
        })
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// `true` when there is no document.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Forgets the documents, keeping the memory for next time.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Adds a document.
    pub fn push(&mut self, document: &[u8]) {
        self.bytes.extend_from_slice(document);
        self.ends.push(self.bytes.len());
    }
}

struct Ring {
    arena: Box<[u8]>,
    slots: Box<[Slot]>,
    /// Sequence number of the oldest segment held; everything older is gone.
    oldest: u64,
    /// Sequence number the next segment gets.
    next: u64,
    /// First segment no uploader has taken yet.
    next_waiting: u64,
    /// Arena offset of the oldest segment held.
    head: usize,
    /// Arena offset where the next segment goes.
    tail: usize,
    /// No more segments are coming: send what is waiting now.
    closing: bool,
    /// The drain deadline passed: uploaders stop retrying.
    abandoned: bool,
    /// Uploaders parked in [`Pool::take_batch`], the one that went idle last at the end.
    idle_uploaders: Vec<Thread>,
    /// Copies of in-flight segments dropped for room, by sequence number, until their
    /// uploader releases them. An uploader stuck in a call at shutdown never does, and these
    /// copies are then all that is left of them. At most the uploaders' batches: a few MB.
    evicted_in_flight: Vec<(u64, Box<[u8]>)>,
    /// Shutdown took every unacknowledged segment ([`Pool::take_all_unacknowledged`]).
    taken_over: bool,
}

impl Ring {
    fn held(&self) -> usize {
        (self.next - self.oldest) as usize
    }

    fn waiting(&self) -> usize {
        (self.next - self.next_waiting) as usize
    }

    fn slot(&self, seq: u64) -> &Slot {
        &self.slots[(seq % self.slots.len() as u64) as usize]
    }

    fn slot_mut(&mut self, seq: u64) -> &mut Slot {
        let n = self.slots.len() as u64;
        &mut self.slots[(seq % n) as usize]
    }

    fn used_bytes(&self) -> usize {
        if self.held() == 0 {
            0
        } else if self.tail > self.head {
            self.tail - self.head
        } else {
            // Wrapped (or exactly full): the gap between the last segment and the end of the
            // arena is unusable until the head passes it, so it counts as used.
            self.arena.len() - self.head + self.tail
        }
    }

    /// Where a document of `len` bytes would go, if it fits now.
    fn place_for(&self, len: usize) -> Option<usize> {
        if self.held() == 0 {
            return (len <= self.arena.len()).then_some(0);
        }
        if self.held() == self.slots.len() {
            return None;
        }
        if self.tail > self.head {
            if self.arena.len() - self.tail >= len {
                Some(self.tail)
            } else if self.head >= len {
                Some(0)
            } else {
                None
            }
        } else if self.tail < self.head && self.head - self.tail >= len {
            Some(self.tail)
        } else {
            None
        }
    }

    /// Drops the oldest segment; returns its state before it went.
    fn evict_oldest(&mut self) -> State {
        let state = self.slot(self.oldest).state;
        *self.slot_mut(self.oldest) = EMPTY_SLOT;
        self.oldest += 1;
        self.next_waiting = self.next_waiting.max(self.oldest);
        self.after_head_moved();
        state
    }

    fn after_head_moved(&mut self) {
        if self.held() == 0 {
            self.head = 0;
            self.tail = 0;
        } else {
            self.head = self.slot(self.oldest).offset as usize;
        }
    }

    /// Frees the space of released segments at the old end of the ring.
    fn drop_done(&mut self) {
        while self.held() > 0 && self.slot(self.oldest).state == State::Done {
            self.oldest += 1;
        }
        self.after_head_moved();
    }

    fn oldest_waiting_age(&self, now_ms: u32) -> Option<Duration> {
        (self.waiting() > 0).then(|| {
            let received = self.slot(self.next_waiting).received_ms;
            Duration::from_millis(u64::from(now_ms.wrapping_sub(received)))
        })
    }

    fn is_low(&self) -> bool {
        // Past three quarters of either bytes or slots, send what is waiting without delay.
        4 * self.used_bytes() >= 3 * self.arena.len() || 4 * self.held() >= 3 * self.slots.len()
    }
}

/// The fixed pool of segments shared by the receiver and the uploaders.
pub struct Pool {
    ring: Mutex<Ring>,
    /// Uploaders waiting out a backoff sleep here, so that pushes never wake them by mistake.
    abandoned: Condvar,
    created: Instant,
}

impl Pool {
    /// A pool using at most `memory_bytes` (arena plus slot table), allocated now, once,
    /// between 1 MiB (about segments' share of [`MIN_POOL_BYTES`] beside OTLP) and
    /// [`MAX_POOL_MB`] (beyond which offsets would wrap).
    pub fn with_memory(memory_bytes: usize) -> Pool {
        let memory_bytes = memory_bytes.clamp(SMALLEST_POOL_BYTES, MAX_POOL_BYTES);
        let slot_count = (memory_bytes / BYTES_PER_SLOT).max(BATCH_SIZE);
        let arena_bytes = memory_bytes - slot_count * std::mem::size_of::<Slot>();
        Pool {
            ring: Mutex::new(Ring {
                arena: vec![0u8; arena_bytes].into_boxed_slice(),
                slots: empty_slots(slot_count),
                oldest: 0,
                next: 0,
                next_waiting: 0,
                head: 0,
                tail: 0,
                closing: false,
                abandoned: false,
                idle_uploaders: Vec::new(),
                evicted_in_flight: Vec::new(),
                taken_over: false,
            }),
            abandoned: Condvar::new(),
            created: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent enough to keep relaying.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u32 {
        self.created.elapsed().as_millis() as u32
    }

    /// Milliseconds since the pool was created, the clock of [`Batch`] arrival times.
    pub fn clock_ms(&self) -> u32 {
        self.now_ms()
    }

    /// Stores one document, dropping the oldest segments if there is no room.
    pub fn push(&self, document: &[u8]) -> Pushed {
        self.push_inner(document, true)
    }

    /// Stores one document only if it fits without pushing out a segment that is waiting
    /// or in flight; `false` if it did not (the receiver then spools it).
    ///
    /// With a spool, the document that does not fit goes to disk rather than the oldest one:
    /// it is in the cache already (just received), where an evicted one would be read from
    /// the far end of the arena; and the oldest are sent first when X-Ray is back.
    pub fn push_if_room(&self, document: &[u8]) -> bool {
        self.push_inner(document, false).stored
    }

    /// Stores `document`; without room, drops the oldest segments if `evict` (keeping a copy
    /// of those in flight for their uploader), or stores nothing.
    fn push_inner(&self, document: &[u8], evict: bool) -> Pushed {
        let mut pushed = Pushed::default();
        if document.len() > MAX_DOCUMENT {
            return pushed;
        }
        let now_ms = self.now_ms();
        let mut ring = self.lock();
        let offset = loop {
            if let Some(offset) = ring.place_for(document.len()) {
                break offset;
            }
            if !evict {
                return pushed;
            }
            let (seq, oldest) = (ring.oldest, *ring.slot(ring.oldest));
            let bytes = oldest.offset as usize..oldest.offset as usize + oldest.len as usize;
            match ring.evict_oldest() {
                State::Waiting => pushed.evicted_waiting += 1,
                State::InFlight => {
                    let copy = ring.arena[bytes].into();
                    ring.evicted_in_flight.push((seq, copy));
                }
                State::Done => {}
            }
        };
        ring.arena[offset..offset + document.len()].copy_from_slice(document);
        let seq = ring.next;
        *ring.slot_mut(seq) = Slot {
            offset: offset as u32,
            len: document.len() as u32,
            received_ms: now_ms,
            state: State::Waiting,
        };
        ring.next += 1;
        ring.tail = offset + document.len();
        pushed.stored = true;

        let waiting = ring.waiting();
        // The first waiting segment wakes an uploader too: one waiting without a timeout
        // (nothing was waiting) must start the batch's delay.
        let wake = waiting == 1 || waiting.is_multiple_of(BATCH_SIZE) || ring.is_low();
        let woken = if wake {
            ring.idle_uploaders.pop()
        } else {
            None
        };
        drop(ring);
        if let Some(uploader) = woken {
            uploader.unpark();
        }
        pushed
    }

    /// Waits until a batch is due and fills `batch` with it (up to [`BATCH_SIZE`] documents).
    ///
    /// Returns `false` once the pool is closing and nothing is waiting: the uploader is done.
    pub fn take_batch(&self, batch: &mut Batch) -> bool {
        batch.clear();
        let mut ring = self.lock();
        loop {
            let waiting = ring.waiting();
            if waiting == 0 {
                if ring.closing {
                    return false;
                }
                ring = self.idle(ring, None);
                continue;
            }
            let age = ring.oldest_waiting_age(self.now_ms()).unwrap_or_default();
            if waiting >= BATCH_SIZE || ring.closing || ring.is_low() || age >= BATCH_DELAY {
                break;
            }
            ring = self.idle(ring, Some(BATCH_DELAY - age));
        }

        while ring.waiting() > 0 {
            let seq = ring.next_waiting;
            let slot = *ring.slot(seq);
            if !batch.has_room_for(slot.len as usize) {
                break;
            }
            let start = slot.offset as usize;
            batch
                .bytes
                .extend_from_slice(&ring.arena[start..start + slot.len as usize]);
            // The batch was cleared and holds at most BATCH_SIZE entries: pushes cannot fail.
            let _ = batch.seqs.push(seq);
            let _ = batch.ends.push(batch.bytes.len() as u32);
            let _ = batch.received_ms.push(slot.received_ms);
            ring.slot_mut(seq).state = State::InFlight;
            ring.next_waiting += 1;
        }
        let more_due = ring.waiting() >= BATCH_SIZE || (ring.waiting() > 0 && ring.closing);
        let woken = if more_due {
            ring.idle_uploaders.pop()
        } else {
            None
        };
        drop(ring);
        if let Some(uploader) = woken {
            uploader.unpark();
        }
        true
    }

    /// Parks the calling uploader as the most recently idle one until it is woken or
    /// `timeout` passes, and returns the lock again. Callers re-check what they wait for:
    /// a park may also end early.
    fn idle<'a>(
        &'a self,
        mut ring: MutexGuard<'a, Ring>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, Ring> {
        let me = std::thread::current();
        ring.idle_uploaders.push(me.clone());
        drop(ring);
        // An unpark that comes before the park is not lost: it makes the park return at once.
        match timeout {
            Some(timeout) => std::thread::park_timeout(timeout),
            None => std::thread::park(),
        }
        let mut ring = self.lock();
        // Still listed if the timeout (not a wake-up) ended the park.
        ring.idle_uploaders.retain(|idle| idle.id() != me.id());
        ring
    }

    /// Wakes every idle uploader (the pool is closing).
    fn wake_all(&self, ring: MutexGuard<'_, Ring>) {
        let mut ring = ring;
        let idle = std::mem::take(&mut ring.idle_uploaders);
        drop(ring);
        for uploader in idle {
            uploader.unpark();
        }
    }

    /// Gives the batch's segments back to the pool, whatever became of them.
    ///
    /// Returns how many of them had already been dropped for room while in flight (the caller
    /// decides whether that was a loss: not if the upload succeeded).
    pub fn release(&self, batch: &Batch) -> usize {
        self.release_positions(&batch.seqs)
    }

    /// Releases segments by pool position (see [`Batch::retain`]); returns how many had
    /// already been dropped for room.
    pub fn release_positions(&self, seqs: &[u64]) -> usize {
        let mut ring = self.lock();
        Pool::release_locked(&mut ring, seqs)
    }

    fn release_locked(ring: &mut Ring, seqs: &[u64]) -> usize {
        let mut evicted = 0;
        for &seq in seqs {
            if seq < ring.oldest {
                evicted += 1;
            } else {
                ring.slot_mut(seq).state = State::Done;
            }
        }
        if evicted > 0 {
            ring.evicted_in_flight
                .retain(|(seq, _)| !seqs.contains(seq));
        }
        ring.drop_done();
        evicted
    }

    /// For an uploader whose batch X-Ray did not take (refused for good, or given up at
    /// shutdown): releases it, unless shutdown already took every unacknowledged segment
    /// (these included). Returns `true` if the caller still has to keep the batch (spool it or
    /// count it lost), `false` if shutdown has it: the segments are kept once, never twice,
    /// and never not at all.
    pub fn release_unsent(&self, batch: &Batch) -> bool {
        let mut ring = self.lock();
        if ring.taken_over {
            return false;
        }
        Pool::release_locked(&mut ring, &batch.seqs);
        true
    }

    /// Milliseconds each document of `batch` has spent since it arrived.
    pub fn ages_ms<'a>(&self, batch: &'a Batch) -> impl Iterator<Item = u32> + 'a {
        let now = self.now_ms();
        batch.received_ms.iter().map(move |&r| now.wrapping_sub(r))
    }

    /// Stops waiting for more: every waiting segment is now due, and uploaders finish once
    /// nothing is left.
    pub fn close(&self) {
        let mut ring = self.lock();
        ring.closing = true;
        self.wake_all(ring);
    }

    /// Tells uploaders to stop retrying (the drain deadline passed) and wakes any in backoff.
    pub fn abandon(&self) {
        let mut ring = self.lock();
        ring.closing = true;
        ring.abandoned = true;
        self.wake_all(ring);
        self.abandoned.notify_all();
    }

    /// `true` once [`Pool::abandon`] was called.
    pub fn is_abandoned(&self) -> bool {
        self.lock().abandoned
    }

    /// `true` once [`Pool::close`] (or abandon) was called.
    pub fn is_closing(&self) -> bool {
        self.lock().closing
    }

    /// Sleeps for `delay` (a retry backoff) unless the pool is abandoned first.
    /// Returns `false` if it was: stop retrying.
    pub fn backoff_sleep(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut ring = self.lock();
        while !ring.abandoned {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            ring = self
                .abandoned
                .wait_timeout(ring, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        false
    }

    /// Moves every segment not yet acknowledged (waiting, or in flight with an uploader that
    /// did not come back, including those whose slots were reused since) into `out`, for the
    /// spool at shutdown; returns how many. Uploaders that come back later leave their
    /// batches to it (see [`Pool::release_unsent`]).
    pub fn take_all_unacknowledged(&self, out: &mut Spilled) -> usize {
        let mut ring = self.lock();
        ring.taken_over = true;
        let mut taken = 0;
        for (_, document) in std::mem::take(&mut ring.evicted_in_flight) {
            out.push(&document);
            taken += 1;
        }
        for seq in ring.oldest..ring.next {
            let slot = *ring.slot(seq);
            if slot.state == State::Done {
                continue;
            }
            let start = slot.offset as usize;
            out.push(&ring.arena[start..start + slot.len as usize]);
            ring.slot_mut(seq).state = State::Done;
            taken += 1;
        }
        ring.next_waiting = ring.next;
        ring.drop_done();
        taken
    }

    /// How full the pool is now.
    pub fn fill(&self) -> Fill {
        let ring = self.lock();
        Fill {
            segments: ring.held(),
            used_bytes: ring.used_bytes(),
            capacity_bytes: ring.arena.len(),
            capacity_segments: ring.slots.len(),
        }
    }

    /// Segments not yet taken by an uploader.
    pub fn waiting(&self) -> usize {
        self.lock().waiting()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn doc(i: usize, size: usize) -> Vec<u8> {
        let mut d = format!("{{\"id\":\"{i:016x}\",\"pad\":\"").into_bytes();
        d.resize(size - 2, b'x');
        d.extend_from_slice(b"\"}");
        d
    }

    fn take_now(pool: &Pool) -> Batch {
        pool.close();
        let mut batch = Batch::new();
        assert!(pool.take_batch(&mut batch));
        batch
    }

    #[test]
    fn three_megabytes_hold_more_than_two_thousand_one_kilobyte_segments() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        for i in 0..2_500 {
            let pushed = pool.push(&doc(i, 1024));
            assert_eq!(
                pushed,
                Pushed {
                    evicted_waiting: 0,
                    stored: true
                },
                "segment {i}"
            );
        }
        let fill = pool.fill();
        assert_eq!(fill.segments, 2_500);
        assert!(fill.capacity_bytes + fill.capacity_segments * 16 <= MIN_POOL_BYTES);
    }

    #[test]
    fn documents_come_out_in_order_and_unchanged() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        let docs: Vec<_> = (0..120).map(|i| doc(i, 100 + i * 7)).collect();
        for d in &docs {
            pool.push(d);
        }
        pool.close();
        let mut out = Vec::new();
        let mut batch = Batch::new();
        while pool.take_batch(&mut batch) {
            assert!(batch.len() <= BATCH_SIZE);
            out.extend(batch.documents().map(<[u8]>::to_vec));
            pool.release(&batch);
        }
        assert_eq!(out, docs);
        assert_eq!(pool.fill().segments, 0);
    }

    #[test]
    fn a_full_pool_drops_the_oldest_waiting_segments() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        let capacity = pool.fill().capacity_bytes / 1024;
        let mut evicted = 0;
        for i in 0..capacity + 100 {
            evicted += pool.push(&doc(i, 1024)).evicted_waiting;
        }
        assert!(evicted >= 100, "evicted {evicted}");
        let batch = take_now(&pool);
        let first = String::from_utf8_lossy(batch.documents().next().unwrap()).into_owned();
        assert!(first.contains(&format!("{:016x}", evicted)), "{first}");
    }

    #[test]
    fn the_slot_table_limits_tiny_segments() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        let slots = pool.fill().capacity_segments;
        let mut evicted = 0;
        for i in 0..slots + 10 {
            evicted += pool.push(&doc(i, 40)).evicted_waiting;
        }
        assert_eq!(evicted, 10);
        assert_eq!(pool.fill().segments, slots);
    }

    #[test]
    fn in_flight_segments_keep_their_space_until_released() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        for i in 0..BATCH_SIZE {
            pool.push(&doc(i, 1024));
        }
        let mut batch = Batch::new();
        assert!(pool.take_batch(&mut batch));
        assert_eq!(batch.len(), BATCH_SIZE);
        assert_eq!(pool.fill().segments, BATCH_SIZE);
        assert_eq!(pool.waiting(), 0);
        assert_eq!(pool.release(&batch), 0);
        assert_eq!(pool.fill().segments, 0);
        assert_eq!(pool.fill().used_bytes, 0);
    }

    #[test]
    fn release_reports_segments_evicted_while_in_flight() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        for i in 0..10 {
            pool.push(&doc(i, 1024));
        }
        let batch = take_now(&pool);
        assert_eq!(batch.len(), 10);
        // Fill the whole arena again: the in-flight ten must make room.
        let capacity = pool.fill().capacity_bytes / 1024;
        let mut evicted_waiting = 0;
        for i in 0..capacity {
            evicted_waiting += pool.push(&doc(100 + i, 1024)).evicted_waiting;
        }
        assert_eq!(
            evicted_waiting, 0,
            "in-flight segments are not counted as spillover"
        );
        assert_eq!(pool.release(&batch), 10);
    }

    #[test]
    fn a_batch_is_due_after_the_delay_even_when_small() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        pool.push(&doc(1, 200));
        let started = Instant::now();
        let mut batch = Batch::new();
        assert!(pool.take_batch(&mut batch));
        let waited = started.elapsed();
        assert_eq!(batch.len(), 1);
        assert!(
            waited >= BATCH_DELAY - Duration::from_millis(20),
            "{waited:?}"
        );
        assert!(waited < BATCH_DELAY * 3, "{waited:?}");
    }

    #[test]
    fn a_full_batch_is_due_at_once_and_wakes_a_waiting_uploader() {
        let pool = Arc::new(Pool::with_memory(MIN_POOL_BYTES));
        let uploader = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut batch = Batch::new();
                let started = Instant::now();
                assert!(pool.take_batch(&mut batch));
                (batch.len(), started.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        for i in 0..BATCH_SIZE {
            pool.push(&doc(i, 300));
        }
        let (len, waited) = uploader.join().unwrap();
        assert_eq!(len, BATCH_SIZE);
        assert!(waited < BATCH_DELAY, "{waited:?}");
    }

    #[test]
    fn the_uploader_that_went_idle_last_is_woken_first() {
        let pool = Arc::new(Pool::with_memory(MIN_POOL_BYTES));
        let (taken_tx, taken_rx) = std::sync::mpsc::channel();
        let mut uploaders = Vec::new();
        for name in ["first idle", "last idle"] {
            let (uploader_pool, taken_tx) = (pool.clone(), taken_tx.clone());
            uploaders.push(std::thread::spawn(move || {
                let mut batch = Batch::new();
                while uploader_pool.take_batch(&mut batch) {
                    taken_tx.send((name, batch.len())).unwrap();
                    uploader_pool.release(&batch);
                }
            }));
            // The next uploader may only start once this one is parked.
            let deadline = Instant::now() + Duration::from_secs(5);
            while pool.lock().idle_uploaders.len() < uploaders.len() {
                assert!(Instant::now() < deadline, "uploader never went idle");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let both_idle = || {
            let deadline = Instant::now() + Duration::from_secs(5);
            while pool.lock().idle_uploaders.len() < 2 {
                assert!(Instant::now() < deadline, "an uploader never went idle");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        for round in 0..3 {
            // The first push wakes the last idle uploader, which finds one segment, not a
            // batch, and parks again: still the last idle one once both are parked.
            for i in 0..BATCH_SIZE - 1 {
                pool.push(&doc(round * BATCH_SIZE + i, 300));
            }
            both_idle();
            pool.push(&doc(round * BATCH_SIZE + BATCH_SIZE - 1, 300));
            let (who, len) = taken_rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!((who, len), ("last idle", BATCH_SIZE), "round {round}");
            both_idle();
        }
        pool.close();
        for uploader in uploaders {
            uploader.join().unwrap();
        }
        assert!(taken_rx.try_recv().is_err());
    }

    #[test]
    fn batches_stop_at_the_byte_limit() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        for i in 0..10 {
            pool.push(&doc(i, 60_000));
        }
        let batch = take_now(&pool);
        assert_eq!(batch.len(), BATCH_MAX_BYTES / 60_000);
        assert!(batch.byte_len() <= BATCH_MAX_BYTES);
    }

    #[test]
    fn closing_lets_uploaders_drain_and_then_stop() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        for i in 0..3 {
            pool.push(&doc(i, 500));
        }
        pool.close();
        let mut batch = Batch::new();
        assert!(pool.take_batch(&mut batch));
        assert_eq!(batch.len(), 3);
        pool.release(&batch);
        assert!(!pool.take_batch(&mut batch));
    }

    #[test]
    fn the_ring_wraps_around_many_times_without_losing_anything() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        let mut batch = Batch::new();
        let mut expected = 0usize;
        for round in 0..200 {
            for i in 0..BATCH_SIZE {
                let pushed = pool.push(&doc(round * BATCH_SIZE + i, 900 + (i * 131) % 3000));
                assert_eq!(pushed.evicted_waiting, 0);
            }
            assert!(pool.take_batch(&mut batch));
            for d in batch.documents() {
                let text = String::from_utf8_lossy(d);
                assert!(text.contains(&format!("{expected:016x}")), "{text:.40}");
                expected += 1;
            }
            pool.release(&batch);
        }
        assert_eq!(expected, 200 * BATCH_SIZE);
    }

    #[test]
    fn push_if_room_never_pushes_out_a_waiting_or_in_flight_segment() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        let mut stored = 0;
        while pool.push_if_room(&doc(stored, 1024)) {
            stored += 1;
        }
        assert!(stored > 2_000, "{stored}");
        let mut batch = Batch::new();
        assert!(pool.take_batch(&mut batch));
        // In flight: still no room.
        assert!(!pool.push_if_room(&doc(stored, 1024)));
        pool.release(&batch);
        assert!(pool.push_if_room(&doc(stored, 1024)));
        pool.close();
        let mut next = batch.len();
        while pool.take_batch(&mut batch) {
            for document in batch.documents() {
                assert_eq!(document, doc(next, 1024));
                next += 1;
            }
            pool.release(&batch);
        }
        assert_eq!(next, stored + 1);
    }

    #[test]
    fn retain_keeps_some_documents_and_names_the_others() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        for i in 0..6 {
            pool.push(&doc(i, 100 + i));
        }
        let mut batch = take_now(&pool);
        let removed = batch.retain(|d| d.len() % 2 == 0);
        let kept: Vec<Vec<u8>> = batch.documents().map(<[u8]>::to_vec).collect();
        assert_eq!(kept, vec![doc(0, 100), doc(2, 102), doc(4, 104)]);
        assert_eq!(removed.as_slice(), &[1, 3, 5]);
        assert_eq!(pool.release_positions(&removed), 0);
        assert_eq!(pool.fill().segments, 6, "segment 0 still holds the head");
        pool.release(&batch);
        assert_eq!(pool.fill().segments, 0);
    }

    #[test]
    fn spool_batches_are_built_without_the_pool() {
        let mut batch = Batch::new();
        for i in 0..BATCH_SIZE {
            assert!(batch.push_document(&doc(i, 200)));
        }
        assert!(!batch.push_document(&doc(99, 200)));
        assert_eq!(batch.len(), BATCH_SIZE);
        let mut big = Batch::new();
        assert!(big.push_document(&doc(0, 200_000)));
        assert!(!big.push_document(&doc(1, 100_000)));
    }

    #[test]
    fn everything_unacknowledged_can_be_taken_at_shutdown() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        for i in 0..120 {
            pool.push(&doc(i, 300));
        }
        let mut acknowledged = Batch::new();
        assert!(pool.take_batch(&mut acknowledged));
        pool.release(&acknowledged);
        let mut stuck = Batch::new();
        assert!(pool.take_batch(&mut stuck));
        let mut out = Spilled::new();
        assert_eq!(pool.take_all_unacknowledged(&mut out), 70);
        let first: Vec<&[u8]> = out.documents().take(1).collect();
        assert_eq!(first[0], doc(50, 300).as_slice());
        assert_eq!(pool.waiting(), 0);
        assert_eq!(pool.fill().segments, 0);
        assert_eq!(
            pool.release(&stuck),
            50,
            "already gone when the stuck uploader returns"
        );
    }

    /// Ten in-flight segments, then enough others to make the pool reuse their space.
    fn in_flight_batch_evicted_for_room(pool: &Pool) -> Batch {
        for i in 0..10 {
            pool.push(&doc(i, 1024));
        }
        let batch = take_now(pool);
        assert_eq!(batch.len(), 10);
        for i in 0..pool.fill().capacity_bytes / 1024 {
            pool.push(&doc(100 + i, 1024));
        }
        batch
    }

    #[test]
    fn in_flight_segments_whose_space_was_reused_are_still_taken_at_shutdown() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        let stuck = in_flight_batch_evicted_for_room(&pool);
        let held = pool.fill().segments;
        let mut out = Spilled::new();
        assert_eq!(pool.take_all_unacknowledged(&mut out), 10 + held);
        let first: Vec<&[u8]> = out.documents().take(10).collect();
        let expected: Vec<Vec<u8>> = (0..10).map(|i| doc(i, 1024)).collect();
        assert_eq!(
            first,
            expected.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        assert!(
            !pool.release_unsent(&stuck),
            "shutdown has them: the uploader must not keep them again"
        );
    }

    #[test]
    fn a_released_batch_leaves_no_copy_behind() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        let batch = in_flight_batch_evicted_for_room(&pool);
        assert!(pool.release_unsent(&batch), "the uploader keeps its batch");
        let held = pool.fill().segments;
        let mut out = Spilled::new();
        assert_eq!(pool.take_all_unacknowledged(&mut out), held);
        assert!(out.documents().all(|d| !d.starts_with(&doc(0, 1024)[..30])));
    }

    #[test]
    fn abandon_cuts_a_backoff_sleep_short() {
        let pool = Arc::new(Pool::with_memory(MIN_POOL_BYTES));
        let sleeper = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                (
                    pool.backoff_sleep(Duration::from_secs(30)),
                    started.elapsed(),
                )
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        pool.push(&doc(1, 100)); // A push must not end the sleep.
        pool.abandon();
        let (completed, slept) = sleeper.join().unwrap();
        assert!(!completed);
        assert!(slept < Duration::from_secs(5), "{slept:?}");
        assert!(!pool.backoff_sleep(Duration::from_millis(1)));
    }

    #[test]
    fn the_slot_table_starts_empty() {
        let slots = empty_slots(3);
        assert!(
            slots.iter().all(|s| s.state == State::Done
                && s.offset == 0
                && s.len == 0
                && s.received_ms == 0)
        );
        assert_eq!(EMPTY_SLOT.state as u8, 0);
    }

    #[test]
    fn oversized_documents_are_not_stored() {
        let pool = Pool::with_memory(MIN_POOL_BYTES);
        assert!(!pool.push(&vec![b'x'; MAX_DOCUMENT + 1]).stored);
        assert!(pool.push(&vec![b'x'; MAX_DOCUMENT]).stored);
    }
}
