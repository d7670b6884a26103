//! Helpers shared by the unit tests: scratch directories and batches built from strings.

use crate::pool::{Batch, MIN_POOL_BYTES, Pool};
use std::path::PathBuf;

/// A fresh directory under the system temp dir, removed again on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory whose name includes `name` and the process id.
    pub fn new(name: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("xray-relay-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A batch holding `documents`, taken from a pool as an uploader would.
pub fn batch_of(documents: &[&str]) -> Batch {
    let pool = Pool::with_memory(MIN_POOL_BYTES);
    for d in documents {
        pool.push(d.as_bytes());
    }
    pool.close();
    let mut batch = Batch::new();
    assert!(pool.take_batch(&mut batch));
    batch
}
