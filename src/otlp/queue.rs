//! The OTLP share of the relay's buffer: accepted requests wait here, as protobuf chunks
//! within X-Ray's limits, until a forwarder has delivered them. Its byte budget is fixed at
//! start; a request that does not fit is refused whole (the client is told to retry), so
//! nothing is accepted and then dropped for lack of room.
//!
//! The same budget covers a request while it is read and decoded ([`Reserved`]): its body,
//! decompressed and converted copies take room before they are made, and become the chunks
//! they turn into, so what the receiver holds in flight is inside the share, not beside it.

use super::split::{Chunk, within_window};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Chunk>,
    /// Bytes of chunks waiting or in flight.
    bytes: usize,
    /// The budget: [`Queue::capacity`], less once `auto` turns to segments.
    capacity: usize,
    closing: bool,
    abandoned: bool,
}

/// Chunks waiting to be forwarded, within a byte budget.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    changed: Condvar,
    capacity: usize,
    /// The budget once spans are translated (`auto` turned to segments).
    translated_capacity: std::sync::atomic::AtomicUsize,
}

impl Queue {
    /// An empty queue that holds at most `capacity` bytes.
    pub fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(State {
                capacity,
                ..State::default()
            }),
            changed: Condvar::new(),
            capacity,
            translated_capacity: std::sync::atomic::AtomicUsize::new(capacity),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes all of `chunks`, or none of them (`false`) when they do not fit.
    pub fn offer(&self, chunks: Vec<Chunk>) -> bool {
        self.offer_reserved(chunks, 0)
    }

    /// Takes all of `chunks` into room already `reserved` for them (given back in any case),
    /// plus whatever more they need; or none of them (`false`) when that does not fit.
    fn offer_reserved(&self, chunks: Vec<Chunk>, reserved: usize) -> bool {
        let size: usize = chunks.iter().map(Chunk::size).sum();
        let mut state = self.lock();
        let others = state.bytes.saturating_sub(reserved);
        if state.closing || others + size > state.capacity {
            state.bytes = others;
            return false;
        }
        state.bytes = others + size;
        state.waiting.extend(chunks);
        drop(state);
        self.changed.notify_one();
        true
    }

    /// Takes `bytes` of room for a request being read or decoded; `None` when they do not
    /// fit (or the queue is closing).
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reserved> {
        let mut reserved = Reserved {
            queue: self.clone(),
            bytes: 0,
            while_closing: false,
        };
        reserved.grow(bytes).then_some(reserved)
    }

    /// Room, none taken yet, for a forwarder's own copy of what it sends (a compressed
    /// request). It grows within the budget as [`Queue::reserve`]'s does, but also while the
    /// queue is closing: the forwarder is what empties it.
    pub fn copy_room(self: &Arc<Self>) -> Reserved {
        Reserved {
            queue: self.clone(),
            bytes: 0,
            while_closing: true,
        }
    }

    /// Waits for chunks and moves into `out` as many as fit together in `max_bytes` and
    /// `max_spans` (at least one). A chunk with the client's gzip body is taken alone, so it
    /// can go out as it came. `false` once the queue is closing and empty.
    pub fn take(&self, max_bytes: usize, max_spans: usize, out: &mut Vec<Chunk>) -> bool {
        let mut state = self.lock();
        loop {
            if !state.waiting.is_empty() {
                break;
            }
            if state.closing {
                return false;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let (mut bytes, mut spans) = (0, 0);
        // Merged chunks must also stay within X-Ray's 24 h between spans.
        let (mut first, mut last) = (u64::MAX, 0);
        while let Some(next) = state.waiting.front() {
            let fits = bytes + next.bytes.len() <= max_bytes
                && spans + next.spans as usize <= max_spans
                && within_window(first.min(next.first), last.max(next.last));
            let alone = next.gzipped.is_some() || out.iter().any(|c| c.gzipped.is_some());
            if !out.is_empty() && (!fits || alone) {
                break;
            }
            bytes += next.bytes.len();
            spans += next.spans as usize;
            (first, last) = (first.min(next.first), last.max(next.last));
            out.extend(state.waiting.pop_front());
        }
        true
    }

    /// Frees the room of delivered (or given up) chunks.
    pub fn release(&self, chunks: &[Chunk]) {
        self.release_bytes(chunks.iter().map(Chunk::size).sum());
    }

    /// Frees `size` bytes of room: that of chunks already dropped.
    pub fn release_bytes(&self, size: usize) {
        let mut state = self.lock();
        state.bytes = state.bytes.saturating_sub(size);
    }

    /// Takes no more chunks; forwarders finish what waits and stop.
    pub fn close(&self) {
        self.lock().closing = true;
        self.changed.notify_all();
    }

    /// Forwarders stop retrying (shutdown's deadline passed).
    pub fn abandon(&self) {
        let mut state = self.lock();
        state.closing = true;
        state.abandoned = true;
        drop(state);
        self.changed.notify_all();
    }

    /// Whether [`Queue::abandon`] was called.
    pub fn is_abandoned(&self) -> bool {
        self.lock().abandoned
    }

    /// Sleeps `delay` unless abandoned meanwhile; `false` if abandoned.
    pub fn backoff_sleep(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut state = self.lock();
        while !state.abandoned {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        false
    }

    /// Removes and returns every waiting chunk (shutdown, after the forwarders stopped).
    pub fn take_waiting(&self) -> Vec<Chunk> {
        let mut state = self.lock();
        let chunks: Vec<Chunk> = state.waiting.drain(..).collect();
        let size: usize = chunks.iter().map(Chunk::size).sum();
        state.bytes = state.bytes.saturating_sub(size);
        chunks
    }

    /// Bytes held (waiting and in flight).
    pub fn used_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Spans waiting (not in flight).
    pub fn waiting_spans(&self) -> u64 {
        self.lock().waiting.iter().map(|c| u64::from(c.spans)).sum()
    }

    /// The byte budget it was made with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the budget [`Queue::translating`] moves to.
    pub fn set_translated_capacity(&self, bytes: usize) {
        self.translated_capacity.store(
            bytes.min(self.capacity),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Spans are translated from now on: the budget becomes the translated one, so the
    /// uploads of translated spans have their room (see `otlp::share_buffer`). Chunks
    /// already held stay; new ones wait for the room.
    pub fn translating(&self) {
        let translated = self
            .translated_capacity
            .load(std::sync::atomic::Ordering::Relaxed);
        self.lock().capacity = translated;
    }
}

/// Room taken from a [`Queue`]'s budget, given back when dropped or turned into chunks by
/// [`Reserved::offer`].
#[derive(Debug)]
pub struct Reserved {
    queue: Arc<Queue>,
    bytes: usize,
    /// Grows while the queue is closing too ([`Queue::copy_room`]).
    while_closing: bool,
}

impl Reserved {
    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes `more` bytes of room too; `false` (and nothing taken) when they do not fit.
    pub fn grow(&mut self, more: usize) -> bool {
        let mut state = self.queue.lock();
        if (state.closing && !self.while_closing) || state.bytes + more > state.capacity {
            return false;
        }
        state.bytes += more;
        self.bytes += more;
        true
    }

    /// Gives back all but `bytes` of it.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            let mut state = self.queue.lock();
            state.bytes = state.bytes.saturating_sub(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Offers `chunks` in this room (see [`Queue::offer`]): they take it over, with more if
    /// they need it, or it is given back and nothing is taken (`false`).
    pub fn offer(mut self, chunks: Vec<Chunk>) -> bool {
        let reserved = std::mem::take(&mut self.bytes);
        self.queue.offer_reserved(chunks, reserved)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut state = self.queue.lock();
            state.bytes = state.bytes.saturating_sub(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(size: usize, spans: u32) -> Chunk {
        timed(size, spans, 0)
    }

    fn timed(size: usize, spans: u32, hour: u64) -> Chunk {
        let time = hour * 3600 * 1_000_000_000;
        Chunk {
            bytes: vec![0; size],
            spans,
            gzipped: None,
            first: time,
            last: time,
        }
    }

    #[test]
    fn a_request_that_does_not_fit_is_refused_whole_until_room_is_released() {
        let queue = Queue::new(100);
        assert!(queue.offer(vec![chunk(60, 1)]));
        assert!(!queue.offer(vec![chunk(20, 1), chunk(30, 1)]));
        assert_eq!(queue.used_bytes(), 60);
        let mut taken = Vec::new();
        assert!(queue.take(1000, 1000, &mut taken));
        // Taken but not released: still counted.
        assert!(!queue.offer(vec![chunk(50, 1)]));
        queue.release(&taken);
        assert!(queue.offer(vec![chunk(50, 1)]));
    }

    #[test]
    fn reserved_room_counts_until_given_back_or_taken_over_by_chunks() {
        let queue = Arc::new(Queue::new(100));
        let mut reading = queue.reserve(40).unwrap();
        assert!(queue.reserve(61).is_none());
        assert!(!reading.grow(61));
        assert!(reading.grow(30));
        assert_eq!(queue.used_bytes(), 70);
        reading.shrink_to(50);
        assert_eq!((reading.bytes(), queue.used_bytes()), (50, 50));
        // The chunks take the room over, and what they need beyond it.
        assert!(reading.offer(vec![chunk(60, 1)]));
        assert_eq!(queue.used_bytes(), 60);
        let other = queue.reserve(40).unwrap();
        assert!(
            !other.offer(vec![chunk(41, 1)]),
            "refused: its room is given back"
        );
        assert_eq!(queue.used_bytes(), 60);
        drop(queue.reserve(40));
        assert_eq!(queue.used_bytes(), 60);
        // Translating, the budget is the smaller one.
        queue.set_translated_capacity(70);
        queue.translating();
        assert!(queue.reserve(11).is_none());
        assert!(queue.reserve(10).is_some());
    }

    #[test]
    fn a_forwarders_copy_takes_room_within_the_budget_even_while_closing() {
        let queue = Arc::new(Queue::new(100));
        let _request = queue.reserve(60).unwrap();
        queue.close();
        assert!(queue.reserve(1).is_none(), "closing: no new requests");
        let mut copy = queue.copy_room();
        assert!(copy.grow(40));
        assert!(!copy.grow(1), "but no more than the budget");
        assert_eq!(queue.used_bytes(), 100);
        drop(copy);
        assert_eq!(queue.used_bytes(), 60);
    }

    #[test]
    fn takes_merge_chunks_within_the_limits_and_stop_after_close() {
        let queue = Queue::new(1000);
        assert!(queue.offer(vec![chunk(40, 3), chunk(40, 3), chunk(40, 3)]));
        let mut taken = Vec::new();
        assert!(queue.take(100, 100, &mut taken));
        assert_eq!(taken.len(), 2);
        taken.clear();
        assert!(queue.take(100, 2, &mut taken));
        assert_eq!(taken.len(), 1, "one chunk is always taken");
        queue.close();
        assert!(!queue.offer(vec![chunk(1, 1)]));
        assert!(!queue.take(100, 100, &mut Vec::new()));
    }

    #[test]
    fn a_chunk_with_the_clients_gzip_body_is_taken_alone_and_its_body_counts() {
        let queue = Queue::new(1000);
        let gzipped = Chunk {
            gzipped: Some(vec![0; 10]),
            ..chunk(40, 3)
        };
        assert!(queue.offer(vec![chunk(40, 3), gzipped, chunk(40, 3), chunk(40, 3)]));
        assert_eq!(queue.used_bytes(), 170);
        let mut taken = Vec::new();
        for expected in [1, 1, 2] {
            assert!(queue.take(1000, 1000, &mut taken));
            assert_eq!(taken.len(), expected);
            queue.release(&taken);
            taken.clear();
        }
        assert_eq!(queue.used_bytes(), 0);
    }

    #[test]
    fn takes_merge_only_chunks_within_24_hours_of_each_other() {
        let queue = Queue::new(1000);
        assert!(queue.offer(vec![timed(10, 1, 0), timed(10, 1, 24), timed(10, 1, 25)]));
        let mut taken = Vec::new();
        assert!(queue.take(1000, 1000, &mut taken));
        assert_eq!(taken.len(), 2, "hours 0 and 24 together");
        taken.clear();
        assert!(queue.take(1000, 1000, &mut taken));
        assert_eq!(
            (taken.len(), taken[0].first),
            (1, 25 * 3600 * 1_000_000_000)
        );
    }

    #[test]
    fn abandon_cuts_a_backoff_short() {
        let queue = std::sync::Arc::new(Queue::new(10));
        let other = queue.clone();
        let started = Instant::now();
        let sleeper = std::thread::spawn(move || other.backoff_sleep(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        queue.abandon();
        assert!(!sleeper.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(queue.is_abandoned());
    }
}
