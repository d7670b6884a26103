//! Uploader threads: take due batches from the pool and deliver them, one blocking call each.
//!
//! `Concurrency` threads (8 by default) each hold at most one request in flight, so the number
//! of threads is the limit on concurrent calls, as in the original. Unlike the original, a
//! batch that fails for a reason that can pass (see [`crate::retry`]) stays with its uploader
//! and is tried again after a backoff, until X-Ray accepts it or shutdown gives up on it; then
//! it goes to the spool, if there is one.

use crate::batch::{self, Unprocessed};
use crate::pool::{Batch, Pool};
use crate::retry::{self, Backoff, Refusal, Verdict};
use crate::sink::Destination;
use crate::spool::{Spool, Unsent, spool_or_count_lost};
use crate::stats::Stats;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The running uploader threads.
pub struct Uploaders {
    running: usize,
    finished: Receiver<()>,
}

/// Starts `count` uploader threads sending batches from the courier's pool.
pub fn spawn(count: usize, courier: Arc<Courier>) -> std::io::Result<Uploaders> {
    let (finished_tx, finished) = mpsc::channel();
    let count = count.max(1);
    for i in 0..count {
        let courier = courier.clone();
        let finished_tx = finished_tx.clone();
        std::thread::Builder::new()
            .name(format!("uploader-{i}"))
            .spawn(move || {
                courier.run_uploader();
                let _ = finished_tx.send(());
            })?;
    }
    Ok(Uploaders {
        running: count,
        finished,
    })
}

impl Uploaders {
    /// Waits until every uploader has finished (after [`Pool::close`]) or `deadline` passes.
    /// Returns `true` if all finished.
    pub fn wait_until(&mut self, deadline: Instant) -> bool {
        while self.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.finished.recv_timeout(left) {
                Ok(()) => self.running -= 1,
                Err(_) => return false,
            }
        }
        true
    }
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// X-Ray has every document it will ever take (refused ones were logged and counted).
    Done,
    /// The failure could never pass; the documents are still in the batch, for the caller to
    /// keep or count as lost. Says whether X-Ray refused the content or the access.
    Dropped(Refusal),
    /// Shutdown gave up while the batch was still failing; the documents are still in it.
    Abandoned,
}

/// Delivers batches: the uploaders' and the spool replayer's shared logic.
pub struct Courier {
    /// The pool batches come from (and whose shutdown state ends retries).
    pub pool: Arc<Pool>,
    /// Where batches go.
    pub destination: Arc<dyn Destination>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Where abandoned batches go, if the user asked for a spool.
    pub spool: Option<Arc<Spool>>,
}

impl Courier {
    fn run_uploader(&self) {
        let mut batch = Batch::new();
        let mut scratch = Vec::new();
        while self.pool.take_batch(&mut batch) {
            let why = match self.deliver(&mut batch, &mut scratch) {
                Delivery::Done => {
                    self.pool.release(&batch);
                    continue;
                }
                Delivery::Dropped(_) => Unsent::Refused,
                Delivery::Abandoned => Unsent::Unfinished,
            };
            if self.pool.release_unsent(&batch) {
                let what = match why {
                    Unsent::Refused => "refused by X-Ray",
                    Unsent::Evicted | Unsent::Unfinished => "unsent at shutdown",
                };
                self.keep_for_later(batch.documents(), batch.len(), why, what);
            }
        }
    }

    /// Puts documents X-Ray has not acknowledged in the spool, or counts them as lost when
    /// there is none or it has no room (through [`spool_or_count_lost`], like every loss).
    /// `count` is how many `documents` yields; `what` says which in the log line.
    pub fn keep_for_later<'a>(
        &self,
        documents: impl Iterator<Item = &'a [u8]>,
        count: usize,
        why: Unsent,
        what: &str,
    ) {
        if count == 0 {
            return;
        }
        let lost = spool_or_count_lost(self.spool.as_deref(), &self.stats, why, documents);
        let kept = count as u64 - lost;
        if kept > 0 {
            log::warn!("Spooled {kept} segments {what}");
        }
        if lost > 0 {
            log::error!(
                "Dropping {lost} segments {what} ({})",
                if self.spool.is_some() {
                    "the spool had no room for them"
                } else {
                    "configure --spool-dir to keep them"
                }
            );
        }
    }

    /// Sends `batch` until X-Ray accepts it, the failure proves permanent, or the pool is
    /// abandoned. Documents left unprocessed for a transient reason are sent again; others are
    /// logged and counted as rejected.
    pub fn deliver(&self, batch: &mut Batch, scratch: &mut Vec<u8>) -> Delivery {
        let mut backoff = Backoff::new(retry::seed());
        loop {
            let started = Instant::now();
            let in_flight = self.stats.upload_started();
            let result = self.destination.put_trace_segments(batch, scratch);
            drop(in_flight);
            let elapsed = started.elapsed();
            match result {
                Ok(unprocessed) => {
                    self.stats.record_success(elapsed);
                    retry::clock_agrees();
                    let refused = unprocessed.len().min(batch.len());
                    Stats::add(&self.stats.sent, (batch.len() - refused) as u64);
                    if unprocessed.is_empty() {
                        log::info!(
                            "Successfully sent batch of {} segments ({:.3} seconds)",
                            batch.len(),
                            seconds(elapsed)
                        );
                        return Delivery::Done;
                    }
                    log::info!(
                        "Sent batch of {} segments but had {} Unprocessed segments ({:.3} seconds)",
                        batch.len(),
                        unprocessed.len(),
                        seconds(elapsed)
                    );
                    let (transient, permanent): (Vec<_>, Vec<_>) =
                        unprocessed.into_iter().partition(|u| {
                            u.id.is_some()
                                && retry::unprocessed_is_transient(u.error_code.as_deref())
                        });
                    Stats::add(&self.stats.rejected, permanent.len() as u64);
                    log_unprocessed(batch, &permanent);
                    if transient.is_empty() {
                        return Delivery::Done;
                    }
                    let again: Vec<&str> =
                        transient.iter().filter_map(|u| u.id.as_deref()).collect();
                    let settled = batch.retain(|doc| {
                        batch::segment_ids(doc)
                            .id
                            .is_some_and(|id| again.contains(&id.as_str()))
                    });
                    self.pool.release_positions(&settled);
                    // Ids that name no document here cannot be sent again: X-Ray did not take
                    // the documents they stand for (counted as not sent above), so they are
                    // rejected, not forgotten.
                    let unmatched = transient.len().saturating_sub(batch.len());
                    if unmatched > 0 {
                        Stats::add(&self.stats.rejected, unmatched as u64);
                        log::error!(
                            "{unmatched} segments X-Ray did not process for now name ids that are not in the batch; they cannot be sent again"
                        );
                    }
                    if batch.is_empty() {
                        return Delivery::Done;
                    }
                    Stats::add(&self.stats.retried, batch.len() as u64);
                    log::warn!(
                        "Resending {} segments X-Ray did not process for now ({})",
                        batch.len(),
                        transient[0].error_code.as_deref().unwrap_or("unknown")
                    );
                }
                Err(err) => {
                    self.stats.record_failure(&err);
                    self.stats.backend_error(err.class());
                    if let Some(skew) = retry::clock_skew(&err) {
                        retry::report_clock_skew(skew, &err);
                    }
                    // The original's line, its error in the AWS SDK for Go's words; what the
                    // relay then does with the batch follows.
                    let sdk_text = err.sdk_text("PutTraceSegments");
                    if retry::verdict(&err) == Verdict::Drop {
                        // The caller keeps or counts the batch: the uploaders through the
                        // spool, the replayer by keeping its file.
                        log::error!(
                            "Sending segment batch failed with: {sdk_text}; dropping {} segments (this error does not pass with retries)",
                            batch.len()
                        );
                        return Delivery::Dropped(retry::refusal(&err));
                    }
                    Stats::add(&self.stats.retried, batch.len() as u64);
                    log::error!(
                        "Sending segment batch failed with: {sdk_text}; will retry {} segments (attempt {})",
                        batch.len(),
                        backoff.attempts() + 1
                    );
                }
            }
            if !self.pool.backoff_sleep(backoff.next_delay()) {
                return Delivery::Abandoned;
            }
        }
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Logs each refused document with its trace id, in the original's lines: the entry as
/// X-Ray returned it, printed the way the AWS SDK for Go prints it, then the document at Debug.
fn log_unprocessed(batch: &Batch, unprocessed: &[Unprocessed]) {
    let ids: Vec<(batch::SegmentIds, &[u8])> = batch
        .documents()
        .map(|d| (batch::segment_ids(d), d))
        .collect();
    for refused in unprocessed {
        let entry = go_prettify(refused);
        let Some(id) = refused.id.as_deref() else {
            log::debug!("Received nil unprocessed segment id from X-Ray service: {entry}");
            log::error!(
                "Unprocessed segment without an id ({}: {})",
                refused.error_code.as_deref().unwrap_or("UnknownError"),
                refused.message.as_deref().unwrap_or("no message")
            );
            continue;
        };
        let found = ids.iter().find(|(ids, _)| ids.id.as_deref() == Some(id));
        match found.and_then(|(ids, _)| ids.trace_id.as_deref()) {
            Some(trace) => log::error!("Unprocessed trace {trace}, segment: {entry}"),
            None => log::error!("Unprocessed segment: {entry}"),
        }
        if let Some((_, document)) = found {
            log::debug!("{}", String::from_utf8_lossy(document));
        }
    }
}

/// An unprocessed entry as the original prints it (the AWS SDK for Go's `Prettify`): the
/// fields X-Ray set, one per line, values quoted the Go way.
fn go_prettify(refused: &Unprocessed) -> String {
    let fields = [
        ("ErrorCode", &refused.error_code),
        ("Id", &refused.id),
        ("Message", &refused.message),
    ];
    let lines: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| {
            let value = value.as_deref()?;
            Some(format!("  {name}: {}", go_quote(value)))
        })
        .collect();
    format!("{{\n{}\n}}", lines.join(",\n"))
}

/// `s` in double quotes with Go's `%q` escapes for what matters in a log line.
fn go_quote(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                quoted.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::MIN_POOL_BYTES;
    use crate::sink::BackendError;
    use crate::stats::ErrorClass;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// What the fake X-Ray does with one call.
    enum Answer {
        Fail(fn() -> BackendError),
        /// Accept everything but report this id, which names no document, as throttled.
        Stranger(&'static str),
        /// Leave documents whose text contains the pattern unprocessed with this code.
        Leave(&'static str, &'static str),
    }

    /// Accepts everything, except: documents containing "refuse" are always unprocessed
    /// (permanently), and scripted answers are used first, one per call.
    #[derive(Default)]
    struct FakeXRay {
        script: Mutex<VecDeque<Answer>>,
        accepted: Mutex<Vec<String>>,
        calls: Mutex<usize>,
    }

    impl FakeXRay {
        fn scripted(answers: Vec<Answer>) -> FakeXRay {
            FakeXRay {
                script: Mutex::new(answers.into()),
                ..FakeXRay::default()
            }
        }
    }

    impl Destination for FakeXRay {
        fn put_trace_segments(
            &self,
            batch: &Batch,
            _scratch: &mut Vec<u8>,
        ) -> Result<Vec<Unprocessed>, BackendError> {
            *self.calls.lock().unwrap() += 1;
            let answer = self.script.lock().unwrap().pop_front();
            let (pattern, code) = match answer {
                Some(Answer::Fail(error)) => return Err(error()),
                Some(Answer::Stranger(id)) => {
                    let mut accepted = self.accepted.lock().unwrap();
                    for d in batch.documents() {
                        accepted.push(String::from_utf8_lossy(d).into_owned());
                    }
                    return Ok(vec![Unprocessed {
                        id: Some(id.into()),
                        error_code: Some("ThrottledException".into()),
                        message: None,
                    }]);
                }
                Some(Answer::Leave(pattern, code)) => (pattern, code),
                None => ("refuse", "InvalidSegment"),
            };
            let mut unprocessed = Vec::new();
            for d in batch
                .documents()
                .map(|d| String::from_utf8_lossy(d).into_owned())
            {
                if d.contains(pattern) || d.contains("refuse") {
                    let code = if d.contains(pattern) {
                        code
                    } else {
                        "InvalidSegment"
                    };
                    unprocessed.push(Unprocessed {
                        id: batch::segment_ids(d.as_bytes()).id,
                        error_code: Some(code.into()),
                        message: None,
                    });
                } else {
                    self.accepted.lock().unwrap().push(d);
                }
            }
            Ok(unprocessed)
        }
    }

    fn unavailable() -> BackendError {
        BackendError::Http {
            status: 503,
            error_type: None,
            message: "down".into(),
            request_id: String::new(),
            undecodable: None,
        }
    }

    fn invalid() -> BackendError {
        BackendError::Http {
            status: 400,
            error_type: Some("InvalidRequestException".into()),
            message: "bad".into(),
            request_id: String::new(),
            undecodable: None,
        }
    }

    fn courier(fake: Arc<FakeXRay>, spool: Option<Arc<Spool>>) -> Arc<Courier> {
        Arc::new(Courier {
            pool: Arc::new(Pool::with_memory(MIN_POOL_BYTES)),
            destination: fake,
            stats: Arc::new(Stats::default()),
            spool,
        })
    }

    fn run(fake: Arc<FakeXRay>, documents: &[String]) -> Arc<Courier> {
        let courier = courier(fake, None);
        let mut uploaders = spawn(3, courier.clone()).unwrap();
        for d in documents {
            courier.pool.push(d.as_bytes());
        }
        courier.pool.close();
        assert!(uploaders.wait_until(Instant::now() + Duration::from_secs(20)));
        courier
    }

    fn docs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{{\"id\":\"{i}\"}}")).collect()
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn every_document_is_delivered_once_and_counted() {
        let fake = Arc::new(FakeXRay::default());
        let courier = run(fake.clone(), &docs(1_234));
        assert_eq!(
            sorted(fake.accepted.lock().unwrap().clone()),
            sorted(docs(1_234))
        );
        assert_eq!(courier.stats.snapshot().sent, 1_234);
    }

    #[test]
    fn permanently_unprocessed_documents_are_counted_as_rejected() {
        let documents = vec![
            r#"{"id":"1"}"#.to_string(),
            r#"{"id":"2","trace_id":"1-abc","refuse":true}"#.to_string(),
            r#"{"id":"3"}"#.to_string(),
        ];
        let fake = Arc::new(FakeXRay::default());
        let courier = run(fake.clone(), &documents);
        assert_eq!(fake.accepted.lock().unwrap().len(), 2);
        let counts = courier.stats.snapshot();
        assert_eq!((counts.sent, counts.rejected, counts.retried), (2, 1, 0));
        assert_eq!(*fake.calls.lock().unwrap(), 1);
    }

    #[test]
    fn transient_failures_are_retried_until_accepted() {
        let fake = Arc::new(FakeXRay::scripted(vec![
            Answer::Fail(unavailable),
            Answer::Fail(unavailable),
            Answer::Fail(unavailable),
        ]));
        let courier = run(fake.clone(), &docs(10));
        assert_eq!(
            sorted(fake.accepted.lock().unwrap().clone()),
            sorted(docs(10))
        );
        let counts = courier.stats.snapshot();
        assert_eq!((counts.sent, counts.dropped, counts.retried), (10, 0, 30));
        assert_eq!(counts.backend_errors(ErrorClass::Http5xx), 3);
    }

    #[test]
    fn hopeless_failures_drop_the_batch() {
        let fake = Arc::new(FakeXRay::scripted(vec![Answer::Fail(invalid)]));
        let courier = run(fake.clone(), &docs(4));
        let counts = courier.stats.snapshot();
        assert_eq!((counts.sent, counts.dropped), (0, 4));
        assert_eq!(counts.backend_errors(ErrorClass::Http4xx), 1);
        assert_eq!(*fake.calls.lock().unwrap(), 1);
    }

    #[test]
    fn throttled_documents_alone_are_sent_again() {
        let documents = vec![
            r#"{"id":"1"}"#.to_string(),
            r#"{"id":"2","slow":1}"#.to_string(),
            r#"{"id":"3","refuse":1}"#.to_string(),
        ];
        let fake = Arc::new(FakeXRay::scripted(vec![Answer::Leave(
            "slow",
            "ThrottledException",
        )]));
        let courier = run(fake.clone(), &documents);
        let accepted = fake.accepted.lock().unwrap().clone();
        assert_eq!(accepted, vec![documents[0].clone(), documents[1].clone()]);
        let counts = courier.stats.snapshot();
        assert_eq!((counts.sent, counts.rejected, counts.retried), (2, 1, 1));
        assert_eq!(courier.pool.fill().segments, 0, "every position released");
    }

    #[test]
    fn throttled_ids_that_name_no_document_are_counted_as_rejected() {
        let fake = Arc::new(FakeXRay::scripted(vec![Answer::Stranger("nobody")]));
        let courier = run(fake.clone(), &docs(5));
        let counts = courier.stats.snapshot();
        // Five documents in; X-Ray says four went through and one, unknown, did not.
        assert_eq!((counts.sent, counts.rejected, counts.retried), (4, 1, 0));
        assert_eq!(*fake.calls.lock().unwrap(), 1);
        assert_eq!(courier.pool.fill().segments, 0, "every position released");
    }

    #[test]
    fn shutdown_gives_up_on_a_failing_batch_and_spools_it() {
        let dir = crate::test_support::TempDir::new("upload-spool");
        let answers = (0..1000).map(|_| Answer::Fail(unavailable)).collect();
        let fake = Arc::new(FakeXRay::scripted(answers));
        let courier = courier(fake, None);
        let spool = Arc::new(Spool::open(&dir.0, 10 * 1024 * 1024, courier.stats.clone()).unwrap());
        let courier = Arc::new(Courier {
            pool: courier.pool.clone(),
            destination: courier.destination.clone(),
            stats: courier.stats.clone(),
            spool: Some(spool.clone()),
        });
        let mut uploaders = spawn(2, courier.clone()).unwrap();
        for d in docs(5) {
            courier.pool.push(d.as_bytes());
        }
        courier.pool.close();
        assert!(!uploaders.wait_until(Instant::now() + Duration::from_millis(500)));
        courier.pool.abandon();
        assert!(uploaders.wait_until(Instant::now() + Duration::from_secs(5)));
        spool.stop();
        let mut spooled = Vec::new();
        for file in spool.files() {
            crate::spool::read_file(&file, |d| {
                spooled.push(String::from_utf8_lossy(d).into_owned())
            })
            .unwrap();
        }
        assert_eq!(sorted(spooled), sorted(docs(5)));
        assert_eq!(courier.stats.snapshot().spooled, 5);
    }

    #[test]
    fn without_a_spool_abandoned_segments_are_counted_as_dropped() {
        let answers = (0..1000).map(|_| Answer::Fail(unavailable)).collect();
        let courier = courier(Arc::new(FakeXRay::scripted(answers)), None);
        let mut uploaders = spawn(1, courier.clone()).unwrap();
        for d in docs(3) {
            courier.pool.push(d.as_bytes());
        }
        courier.pool.close();
        std::thread::sleep(Duration::from_millis(300));
        courier.pool.abandon();
        assert!(uploaders.wait_until(Instant::now() + Duration::from_secs(5)));
        assert_eq!(courier.stats.snapshot().dropped, 3);
    }

    #[test]
    fn unprocessed_entries_print_as_the_originals_sdk_prints_them() {
        let entry = Unprocessed {
            id: Some("70de5b6f19ff9a0a".into()),
            error_code: Some("InvalidSegment".into()),
            message: Some("bad \"end_time\"\tin\nsegment\u{1}".into()),
        };
        assert_eq!(
            go_prettify(&entry),
            "{\n  ErrorCode: \"InvalidSegment\",\n  Id: \"70de5b6f19ff9a0a\",\n  Message: \"bad \\\"end_time\\\"\\tin\\nsegment\\x01\"\n}"
        );
        // Fields X-Ray left out are left out, as nil pointers are by the SDK.
        let bare = Unprocessed {
            id: None,
            error_code: Some("Throttled".into()),
            message: None,
        };
        assert_eq!(go_prettify(&bare), "{\n  ErrorCode: \"Throttled\"\n}");
        let empty = Unprocessed {
            id: None,
            error_code: None,
            message: None,
        };
        assert_eq!(go_prettify(&empty), "{\n\n}");
        assert_eq!(go_quote("caf\u{e9} \u{85}"), "\"caf\u{e9} \\u0085\"");
    }
}
