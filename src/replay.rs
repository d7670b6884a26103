//! The spool replayer: one thread that reads spool files, oldest first, and delivers their
//! segments beside the live uploaders.
//!
//! A file is deleted only when every intact record in it is settled: accepted by X-Ray, or
//! refused by it on its own for its content (records damaged beyond their checksum are
//! counted as dropped). It uses the uploaders' [`Courier`], so it backs off while X-Ray is
//! unreachable and resumes by itself when it is back.
//!
//! X-Ray refuses a batch for one of two reasons ([`Refusal`]), and they call for opposite
//! answers:
//! - the access (403 AccessDenied, credentials missing or refused, a signature error, any
//!   4xx not known to be about the content): an operator fixes it, and then every document
//!   passes, so nothing is given up. The file stays and replay pauses for minutes (doubling),
//!   then tries again from the first record not yet accepted.
//! - the content (400 `InvalidRequestException`, `ValidationException`,
//!   `SerializationException`, 413): some document in the batch will never pass, and waiting
//!   changes nothing. Pausing would keep it at the head of the spool forever, with every file
//!   behind it waiting until the spool deletes them for room. So the batch is sent again in
//!   halves, each refused half halved again, until the documents X-Ray refuses alone are
//!   found: those are logged with their trace id and counted as dropped, the rest delivered,
//!   and replay goes on. A batch of n costs at most 2n - 1 calls, and only when refused.
//!
//! A file that cannot be read for now (too many open files) also stays. A file cut short by
//! shutdown stays on disk and is replayed from its start at the next run
//! (X-Ray ignores the duplicates: segment ids are unique).

use crate::batch;
use crate::pool::{Batch, Spilled};
use crate::retry::Refusal;
use crate::spool::{self, Replaying, Spool, Unsent, count_lost};
use crate::stats::Stats;
use crate::upload::{Courier, Delivery};
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// The first pause after X-Ray refused spooled segments; each refusal in a row doubles it.
pub const REFUSED_PAUSE: Duration = Duration::from_secs(60);

/// The longest pause after a refusal.
const REFUSED_PAUSE_CAP: Duration = Duration::from_secs(16 * 60);

/// The first pause after a file could not be read; doubles up to [`REFUSED_PAUSE_CAP`].
const READ_ERROR_PAUSE: Duration = Duration::from_secs(5);

/// Starts the replayer thread; it ends after [`Spool::stop`] (and the pool's abandon, if it
/// is retrying). The returned channel receives a message when it has ended.
pub fn spawn(courier: Arc<Courier>, spool: Arc<Spool>) -> io::Result<Receiver<()>> {
    let (finished_tx, finished) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("spool-replay".into())
        .spawn(move || {
            run(&courier, &spool, REFUSED_PAUSE);
            let _ = finished_tx.send(());
        })?;
    Ok(finished)
}

/// What became of one file.
enum Outcome {
    /// Every intact record accepted: the file is deleted.
    Done,
    /// Kept for now; pause this long before the next try.
    Pause(Duration),
    /// Shutdown: stop replaying.
    Stop,
}

/// Replays until the spool stops; `refused_pause` is the first pause after a refusal.
pub fn run(courier: &Courier, spool: &Spool, refused_pause: Duration) {
    let mut replayer = Replayer {
        courier,
        spool,
        documents: Spilled::new(),
        batch: Batch::new(),
        scratch: Vec::new(),
        refused_pause,
        refusals: 0,
        read_errors: 0,
    };
    while let Some(file) = spool.next_file_to_replay() {
        match replayer.replay(file) {
            Outcome::Done => {}
            Outcome::Pause(pause) => {
                if !spool.pause(pause) {
                    return;
                }
            }
            Outcome::Stop => return,
        }
    }
}

struct Replayer<'a> {
    courier: &'a Courier,
    spool: &'a Spool,
    documents: Spilled,
    batch: Batch,
    scratch: Vec<u8>,
    refused_pause: Duration,
    /// Refusals and read errors in a row, for the pauses.
    refusals: u32,
    read_errors: u32,
}

fn doubled(first: Duration, times: u32) -> Duration {
    first
        .saturating_mul(1 << times.min(10))
        .min(REFUSED_PAUSE_CAP.max(first))
}

impl Replayer<'_> {
    fn replay(&mut self, mut file: Replaying) -> Outcome {
        let (courier, spool) = (self.courier, self.spool);
        self.documents.clear();
        let report = match spool::read_file(&file.path, |d| self.documents.push(d)) {
            Ok(report) => report,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                // Deleted behind the relay's back: nothing left to keep.
                log::warn!("Spool file {} disappeared", file.path.display());
                spool.finished_replaying(file);
                return Outcome::Done;
            }
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                // No spool header: a file cut short before its first record, or not ours.
                log::warn!("{err}; removing it");
                spool.finished_replaying(file);
                return Outcome::Done;
            }
            Err(err) => {
                let pause = doubled(READ_ERROR_PAUSE, self.read_errors);
                self.read_errors += 1;
                log::error!(
                    "Cannot read spool file {}: {err}; it stays, trying again in {} s",
                    file.path.display(),
                    pause.as_secs()
                );
                spool.release(file);
                return Outcome::Pause(pause);
            }
        };
        self.read_errors = 0;
        let records = report.records;
        if file.delivered == 0 && (report.corrupt > 0 || report.torn_tail) {
            // Each damaged stretch counts as one lost segment: how many records it held
            // cannot be known.
            count_lost(
                &courier.stats,
                Unsent::Refused,
                report.corrupt + u64::from(report.torn_tail),
            );
            log::warn!(
                "Spool file {} is damaged: {} damaged stretches skipped{}; replaying its {} intact segments",
                file.path.display(),
                report.corrupt,
                if report.torn_tail {
                    ", last record cut short"
                } else {
                    ""
                },
                records
            );
        }
        let skip = file.delivered.min(records);
        log::info!(
            "Replaying {} spooled segments from {}",
            records - skip,
            file.path.display()
        );
        let documents: Vec<&[u8]> = self.documents.documents().collect();
        let (batch, scratch) = (&mut self.batch, &mut self.scratch);
        // Every document before this one is settled: accepted, or refused on its own.
        let mut settled = skip as usize;
        // Parts of a batch refused for its content, still to send; the next one last.
        let mut halves: Vec<Range<usize>> = Vec::new();
        loop {
            let range = match halves.pop() {
                Some(half) => half,
                None if settled < documents.len() => settled..documents.len(),
                None => break,
            };
            batch.clear();
            let end = range.start
                + documents[range.clone()]
                    .iter()
                    .take_while(|d| batch.push_document(d))
                    .count();
            let sent = end - range.start;
            match courier.deliver(batch, scratch) {
                Delivery::Done => {
                    Stats::add(&courier.stats.replayed, sent as u64);
                }
                Delivery::Dropped(Refusal::Content) if sent > 1 => {
                    // Halves, the first sent first, so what is settled stays a prefix.
                    let middle = range.start + sent / 2;
                    halves.push(middle..end);
                    halves.push(range.start..middle);
                    continue;
                }
                Delivery::Dropped(Refusal::Content) => {
                    count_lost(&courier.stats, Unsent::Refused, 1);
                    let ids = batch::segment_ids(documents[range.start]);
                    log::error!(
                        "X-Ray refuses spooled segment {} of trace {} from {} for its content (see the error above); it is dropped and replay goes on",
                        ids.id.as_deref().unwrap_or("without an id"),
                        ids.trace_id.as_deref().unwrap_or("unknown"),
                        file.path.display()
                    );
                }
                Delivery::Dropped(Refusal::Access) => {
                    let pause = doubled(self.refused_pause, self.refusals);
                    self.refusals += 1;
                    log::error!(
                        "X-Ray refused {sent} spooled segments from {} (see the error above); the file stays in the spool and replay pauses for {} s",
                        file.path.display(),
                        pause.as_secs()
                    );
                    spool.release(file);
                    return Outcome::Pause(pause);
                }
                Delivery::Abandoned => {
                    log::info!(
                        "Stopped replaying {}; it stays for the next start",
                        file.path.display()
                    );
                    spool.release(file);
                    return Outcome::Stop;
                }
            }
            settled = end;
            spool.replay_progress(&mut file, records, settled as u64);
        }
        self.refusals = 0;
        spool.finished_replaying(file);
        Outcome::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Unprocessed;
    use crate::pool::{MIN_POOL_BYTES, Pool};
    use crate::sink::{BackendError, Destination};
    use crate::spool::spool_or_count_lost;
    use crate::test_support::TempDir;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    /// Accepts the first call, refuses (403) the next `refusals`, then accepts everything but
    /// a batch holding one of the `poisoned` documents, which it refuses for its content
    /// (400, as X-Ray answers a segment it will never take).
    struct Refusing {
        calls: AtomicU32,
        refusals: u32,
        poisoned: Vec<Vec<u8>>,
        accepted: Mutex<Vec<Vec<u8>>>,
    }

    impl Destination for Refusing {
        fn put_trace_segments(
            &self,
            batch: &Batch,
            _scratch: &mut Vec<u8>,
        ) -> Result<Vec<Unprocessed>, BackendError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if (1..=self.refusals).contains(&call) {
                return Err(BackendError::Http {
                    status: 403,
                    error_type: Some("AccessDeniedException".into()),
                    message: "not allowed".into(),
                    request_id: String::new(),
                    undecodable: None,
                });
            }
            if batch
                .documents()
                .any(|d| self.poisoned.iter().any(|p| p == d))
            {
                return Err(BackendError::Http {
                    status: 400,
                    error_type: Some("InvalidRequestException".into()),
                    message: "Invalid segment. ErrorCode: InvalidTraceId".into(),
                    request_id: String::new(),
                    undecodable: None,
                });
            }
            self.accepted
                .lock()
                .unwrap()
                .extend(batch.documents().map(<[u8]>::to_vec));
            Ok(Vec::new())
        }
    }

    fn doc(i: usize) -> Vec<u8> {
        format!("{{\"id\":\"{i:016x}\",\"name\":\"replayed\"}}").into_bytes()
    }

    fn spooled(dir: &TempDir, docs: &[Vec<u8>]) -> (Arc<Spool>, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::open(&dir.0, 10 * 1024 * 1024, stats.clone()).unwrap());
        spool_or_count_lost(
            Some(&spool),
            &stats,
            Unsent::Unfinished,
            docs.iter().map(Vec::as_slice),
        );
        spool.flush();
        (spool, stats)
    }

    fn courier(xray: Arc<dyn Destination>, spool: &Arc<Spool>, stats: &Arc<Stats>) -> Arc<Courier> {
        Arc::new(Courier {
            pool: Arc::new(Pool::with_memory(MIN_POOL_BYTES)),
            destination: xray,
            stats: stats.clone(),
            spool: Some(spool.clone()),
        })
    }

    /// Replays `spool` on a thread of its own (pauses of 200 ms) into an X-Ray that refuses
    /// the first `refusals` calls and every batch holding a `poisoned` document.
    fn replaying(
        refusals: u32,
        poisoned: &[Vec<u8>],
        spool: &Arc<Spool>,
        stats: &Arc<Stats>,
    ) -> (Arc<Refusing>, std::thread::JoinHandle<()>) {
        let xray = Arc::new(Refusing {
            calls: AtomicU32::new(0),
            refusals,
            poisoned: poisoned.to_vec(),
            accepted: Mutex::new(Vec::new()),
        });
        let courier = courier(xray.clone(), spool, stats);
        let spool = spool.clone();
        let replayer =
            std::thread::spawn(move || run(&courier, &spool, Duration::from_millis(200)));
        (xray, replayer)
    }

    #[test]
    fn a_permanent_error_keeps_the_file_pauses_and_delivers_everything_afterwards() {
        let dir = TempDir::new("replay-refused");
        let docs: Vec<Vec<u8>> = (0..120).map(doc).collect();
        let (spool, stats) = spooled(&dir, &docs);
        let file = spool.files().remove(0);
        // The file's second batch is refused twice: replay pauses twice, keeping the file.
        let started = Instant::now();
        let (xray, replayer) = replaying(2, &[], &spool, &stats);
        let deadline = Instant::now() + Duration::from_secs(10);
        while xray.accepted.lock().unwrap().len() < 50 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(file.exists(), "the refused file was deleted");
        assert_eq!(xray.accepted.lock().unwrap().len(), 50);
        while spool.files().len() == 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Paused 200 ms, then 400 ms.
        assert!(started.elapsed() >= Duration::from_millis(600));
        spool.stop();
        replayer.join().unwrap();
        // Each document once: the accepted first batch is not sent again.
        assert_eq!(*xray.accepted.lock().unwrap(), docs);
        assert!(!file.exists());
        let counts = stats.snapshot();
        assert_eq!(
            (counts.replayed, counts.dropped, counts.sent),
            (120, 0, 120)
        );
    }

    #[test]
    fn a_damaged_record_is_counted_once_and_the_rest_delivered_before_the_file_goes() {
        let dir = TempDir::new("replay-damaged");
        let docs: Vec<Vec<u8>> = (0..10).map(doc).collect();
        let (spool, stats) = spooled(&dir, &docs);
        let file = spool.files().remove(0);
        // Damage record 4's document, past its checksum's reach.
        let mut bytes = std::fs::read(&file).unwrap();
        let record = 10 + docs[0].len();
        bytes[8 + 4 * record + 10 + 3] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let (xray, replayer) = replaying(0, &[], &spool, &stats);
        let deadline = Instant::now() + Duration::from_secs(10);
        while file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        spool.stop();
        replayer.join().unwrap();
        let mut expected = docs.clone();
        expected.remove(4);
        assert_eq!(*xray.accepted.lock().unwrap(), expected);
        assert!(!file.exists());
        let counts = stats.snapshot();
        assert_eq!((counts.replayed, counts.dropped), (9, 1));
    }

    #[test]
    fn a_file_that_cannot_be_read_for_now_stays() {
        let dir = TempDir::new("replay-unreadable");
        // Something named like a spool file that read() fails on (EISDIR), as it fails on
        // EMFILE or EIO: not a reason to delete anything.
        let unreadable = dir.0.join("00000000000000000001.spool");
        std::fs::create_dir(&unreadable).unwrap();
        let (spool, stats) = spooled(&dir, &[doc(1)]);
        let (_xray, replayer) = replaying(0, &[], &spool, &stats);
        std::thread::sleep(Duration::from_millis(300));
        spool.stop();
        replayer.join().unwrap();
        assert!(unreadable.is_dir());
        assert_eq!(spool.files().len(), 2);
        assert_eq!(stats.snapshot().dropped, 0);
    }

    /// Waits up to 10 s for the spool to have no file left.
    fn until_empty(spool: &Spool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !spool.files().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_document_x_ray_refuses_for_its_content_is_dropped_alone_and_replay_goes_on() {
        let dir = TempDir::new("replay-poisoned");
        let docs: Vec<Vec<u8>> = (0..30).map(doc).collect();
        let (spool, stats) = spooled(&dir, &docs);
        let behind: Vec<Vec<u8>> = (30..40).map(doc).collect();
        spool_or_count_lost(
            Some(&spool),
            &stats,
            Unsent::Unfinished,
            behind.iter().map(Vec::as_slice),
        );
        spool.flush();
        assert_eq!(spool.files().len(), 2);
        let poisoned = docs[13].clone();
        let started = Instant::now();
        let (xray, replayer) = replaying(0, std::slice::from_ref(&poisoned), &spool, &stats);
        until_empty(&spool);
        spool.stop();
        replayer.join().unwrap();
        // No pause: the refusal is about one document, not about the relay's access.
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            spool.files().is_empty(),
            "a file stayed behind the refused document"
        );
        let mut expected: Vec<Vec<u8>> = docs.iter().chain(&behind).cloned().collect();
        expected.remove(13);
        // Each accepted document once, in order.
        assert_eq!(*xray.accepted.lock().unwrap(), expected);
        let counts = stats.snapshot();
        assert_eq!((counts.replayed, counts.dropped, counts.sent), (39, 1, 39));
    }

    #[test]
    fn a_file_x_ray_refuses_every_document_of_is_counted_lost_and_removed() {
        let dir = TempDir::new("replay-all-poisoned");
        let docs: Vec<Vec<u8>> = (0..9).map(doc).collect();
        let (spool, stats) = spooled(&dir, &docs);
        let (xray, replayer) = replaying(0, &docs, &spool, &stats);
        until_empty(&spool);
        spool.stop();
        replayer.join().unwrap();
        assert!(spool.files().is_empty());
        assert!(xray.accepted.lock().unwrap().is_empty());
        // Halving the batch of 9 until every document stands alone: 2 * 9 - 1 refusals.
        assert_eq!(xray.calls.load(Ordering::SeqCst), 17);
        let counts = stats.snapshot();
        assert_eq!((counts.replayed, counts.dropped, counts.sent), (0, 9, 0));
    }
}
