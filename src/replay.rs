//! The spool replayer: one thread that reads spool files, oldest first, and delivers their
//! segments beside the live uploaders, deleting each file once all of it is delivered.
//!
//! It uses the uploaders' [`Courier`], so it backs off while X-Ray is unreachable and resumes by
//! itself when it is back. A file cut short by shutdown stays on disk and is replayed from its
//! start at the next run (X-Ray ignores the duplicates: segment ids are unique).

use crate::pool::{Batch, Spilled};
use crate::spool::{self, Spool};
use crate::stats::Stats;
use crate::upload::{Courier, Delivery};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

/// Starts the replayer thread; it ends after [`Spool::stop`] (and the pool's abandon, if it
/// is retrying). The returned channel receives a message when it has ended.
pub fn spawn(courier: Arc<Courier>, spool: Arc<Spool>) -> std::io::Result<Receiver<()>> {
    let (finished_tx, finished) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("spool-replay".into())
        .spawn(move || {
            run(&courier, &spool);
            let _ = finished_tx.send(());
        })?;
    Ok(finished)
}

fn run(courier: &Courier, spool: &Spool) {
    let mut documents = Spilled::new();
    let mut batch = Batch::new();
    let mut scratch = Vec::new();
    while let Some(file) = spool.next_file_to_replay() {
        documents.clear();
        let report = match spool::read_file(&file, |d| documents.push(d)) {
            Ok(report) => report,
            Err(err) => {
                log::error!(
                    "Cannot read spool file {}: {err}; removing it",
                    file.display()
                );
                spool.finished_replaying(&file);
                continue;
            }
        };
        if report.corrupt > 0 || report.torn_tail {
            log::warn!(
                "Spool file {} is damaged: {} damaged stretches skipped{}; replaying its {} intact segments",
                file.display(),
                report.corrupt,
                if report.torn_tail {
                    ", last record cut short"
                } else {
                    ""
                },
                report.records
            );
        }
        log::info!(
            "Replaying {} spooled segments from {}",
            documents.len(),
            file.display()
        );
        if deliver_all(courier, &documents, &mut batch, &mut scratch) {
            Stats::add(&courier.stats.replayed, documents.len() as u64);
            spool.finished_replaying(&file);
        } else {
            log::info!(
                "Stopped replaying {}; it stays for the next start",
                file.display()
            );
            spool.abandon_replay();
            return;
        }
    }
}

/// Delivers every document in batches; `false` if shutdown interrupted it.
fn deliver_all(
    courier: &Courier,
    documents: &Spilled,
    batch: &mut Batch,
    scratch: &mut Vec<u8>,
) -> bool {
    batch.clear();
    for document in documents.documents() {
        if !batch.push_document(document) {
            if courier.deliver(batch, scratch) == Delivery::Abandoned {
                return false;
            }
            batch.clear();
            batch.push_document(document);
        }
    }
    batch.is_empty() || courier.deliver(batch, scratch) != Delivery::Abandoned
}
