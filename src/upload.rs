//! Uploader threads: take due batches from the pool and deliver them, one blocking call each.
//!
//! `Concurrency` threads (8 by default) each hold at most one request in flight, so the number
//! of threads is the limit on concurrent calls, as in the original.

use crate::batch::{self, Unprocessed};
use crate::pool::{Batch, Pool};
use crate::sink::Destination;
use crate::stats::Stats;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The running uploader threads.
pub struct Uploaders {
    handles: Vec<JoinHandle<()>>,
    finished: Receiver<()>,
}

/// Starts `count` uploader threads sending batches from `pool` to `destination`.
pub fn spawn(
    count: usize,
    pool: Arc<Pool>,
    destination: Arc<dyn Destination>,
    stats: Arc<Stats>,
) -> std::io::Result<Uploaders> {
    let (finished_tx, finished) = mpsc::channel();
    let mut handles = Vec::with_capacity(count);
    for i in 0..count.max(1) {
        let uploader = Uploader {
            pool: pool.clone(),
            destination: destination.clone(),
            stats: stats.clone(),
        };
        let finished_tx = finished_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("uploader-{i}"))
            .spawn(move || uploader.run(finished_tx))?;
        handles.push(handle);
    }
    Ok(Uploaders { handles, finished })
}

impl Uploaders {
    /// Waits until every uploader has finished (after [`Pool::close`]) or `deadline` passes.
    /// Returns `true` if all finished.
    pub fn wait_until(self, deadline: Instant) -> bool {
        let mut remaining = self.handles.len();
        while remaining > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.finished.recv_timeout(left) {
                Ok(()) => remaining -= 1,
                Err(_) => return false,
            }
        }
        for handle in self.handles {
            let _ = handle.join();
        }
        true
    }
}

struct Uploader {
    pool: Arc<Pool>,
    destination: Arc<dyn Destination>,
    stats: Arc<Stats>,
}

impl Uploader {
    fn run(self, finished: Sender<()>) {
        let mut batch = Batch::new();
        let mut scratch = Vec::new();
        while self.pool.take_batch(&mut batch) {
            self.upload(&batch, &mut scratch);
        }
        let _ = finished.send(());
    }

    fn upload(&self, batch: &Batch, scratch: &mut Vec<u8>) {
        let started = Instant::now();
        let in_flight = self.stats.upload_started();
        let result = self.destination.put_trace_segments(batch, scratch);
        drop(in_flight);
        let elapsed = started.elapsed();
        let count = batch.len() as u64;
        match result {
            Ok(unprocessed) if unprocessed.is_empty() => {
                self.stats.record_success(elapsed);
                Stats::add(&self.stats.sent, count);
                log::info!(
                    "Successfully sent batch of {} segments ({:.3} seconds)",
                    batch.len(),
                    seconds(elapsed)
                );
            }
            Ok(unprocessed) => {
                self.stats.record_success(elapsed);
                let refused = unprocessed.len() as u64;
                Stats::add(&self.stats.sent, count.saturating_sub(refused));
                Stats::add(&self.stats.rejected, refused);
                log::info!(
                    "Sent batch of {} segments but had {} Unprocessed segments ({:.3} seconds)",
                    batch.len(),
                    unprocessed.len(),
                    seconds(elapsed)
                );
                log_unprocessed(batch, &unprocessed);
            }
            Err(err) => {
                self.stats.record_failure(&err);
                self.stats.backend_error(err.class());
                Stats::add(&self.stats.dropped, count);
                log::error!("Sending segment batch failed with: {err}");
            }
        }
        self.pool.release(batch);
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Logs each refused document with its trace id, as the original does.
fn log_unprocessed(batch: &Batch, unprocessed: &[Unprocessed]) {
    let ids: Vec<(batch::SegmentIds, &[u8])> = batch
        .documents()
        .map(|d| (batch::segment_ids(d), d))
        .collect();
    for refused in unprocessed {
        let reason = format!(
            "{}: {}",
            refused.error_code.as_deref().unwrap_or("UnknownError"),
            refused.message.as_deref().unwrap_or("no message")
        );
        let Some(id) = refused.id.as_deref() else {
            log::error!("Unprocessed segment without an id ({reason})");
            continue;
        };
        match ids.iter().find(|(ids, _)| ids.id.as_deref() == Some(id)) {
            Some((ids, document)) => {
                let trace = ids.trace_id.as_deref().unwrap_or("unknown");
                log::error!("Unprocessed trace {trace}, segment: {id} ({reason})");
                log::debug!(
                    "Unprocessed segment {id}: {}",
                    String::from_utf8_lossy(document)
                );
            }
            None => log::error!("Unprocessed segment: {id} ({reason})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::MIN_POOL_BYTES;
    use crate::sink::BackendError;
    use crate::stats::ErrorClass;
    use std::sync::Mutex;

    /// Accepts everything except documents containing "refuse", and fails whole batches
    /// containing "fail".
    #[derive(Default)]
    struct Picky {
        accepted: Mutex<Vec<String>>,
    }

    impl Destination for Picky {
        fn put_trace_segments(
            &self,
            batch: &Batch,
            _scratch: &mut Vec<u8>,
        ) -> Result<Vec<Unprocessed>, BackendError> {
            let docs: Vec<String> = batch
                .documents()
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect();
            if docs.iter().any(|d| d.contains("fail")) {
                return Err(BackendError::Http {
                    status: 500,
                    error_type: None,
                    message: "boom".into(),
                });
            }
            let mut unprocessed = Vec::new();
            for d in docs {
                if d.contains("refuse") {
                    let ids = batch::segment_ids(d.as_bytes());
                    unprocessed.push(Unprocessed {
                        id: ids.id,
                        error_code: Some("InvalidSegment".into()),
                        message: None,
                    });
                } else {
                    self.accepted.lock().unwrap().push(d);
                }
            }
            Ok(unprocessed)
        }
    }

    fn run(documents: &[String]) -> (Arc<Picky>, Arc<Stats>) {
        let pool = Arc::new(Pool::with_memory(MIN_POOL_BYTES));
        let picky = Arc::new(Picky::default());
        let stats = Arc::new(Stats::default());
        let uploaders = spawn(3, pool.clone(), picky.clone(), stats.clone()).unwrap();
        for d in documents {
            pool.push(d.as_bytes());
        }
        pool.close();
        assert!(uploaders.wait_until(Instant::now() + Duration::from_secs(10)));
        (picky, stats)
    }

    #[test]
    fn every_document_is_delivered_once_and_counted() {
        let documents: Vec<String> = (0..1_234).map(|i| format!("{{\"id\":\"{i}\"}}")).collect();
        let (picky, stats) = run(&documents);
        let mut accepted = picky.accepted.lock().unwrap().clone();
        accepted.sort();
        let mut expected = documents.clone();
        expected.sort();
        assert_eq!(accepted, expected);
        assert_eq!(stats.snapshot().sent, 1_234);
    }

    #[test]
    fn unprocessed_documents_are_counted_as_rejected() {
        let documents = vec![
            r#"{"id":"1"}"#.to_string(),
            r#"{"id":"2","trace_id":"1-abc","refuse":true}"#.to_string(),
            r#"{"id":"3"}"#.to_string(),
        ];
        let (picky, stats) = run(&documents);
        assert_eq!(picky.accepted.lock().unwrap().len(), 2);
        let counts = stats.snapshot();
        assert_eq!((counts.sent, counts.rejected), (2, 1));
    }

    #[test]
    fn failed_batches_are_counted_by_class() {
        let documents = vec![r#"{"id":"1","fail":1}"#.to_string()];
        let (_, stats) = run(&documents);
        let counts = stats.snapshot();
        assert_eq!(counts.dropped, 1);
        assert_eq!(counts.backend_errors(ErrorClass::Http5xx), 1);
    }
}
