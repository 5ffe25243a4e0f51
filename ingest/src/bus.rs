//! The threaded in-process bus of `podwire standalone`: capture hands its batches to a store
//! thread that puts them through [`InProcess`] (enrichment, offset-range segments, the store's
//! files), so Parquet encoding runs beside capture and `standalone` writes exactly as `ingest`
//! does. A bounded channel keeps memory flat when the store is slower than capture (capture then
//! waits); the store thread's first error stops it and is what the next send and the finish say.
use crate::enrich::Enricher;
use crate::error::{Error, Result};
use crate::metrics::IngestMetrics;
use crate::segment::RollPolicy;
use crate::store::{StoreConfig, WriteStats};
use crate::writer::InProcess;
use arrow::array::RecordBatch;
use podwire_schemas::Table;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Batches in flight between capture and the store thread.
pub const IN_FLIGHT: usize = 4;

/// What the store thread wrote, and the enriched connection batches when they were asked for.
#[derive(Debug, Default)]
pub struct Stored {
    /// Files, rows and bytes written per table.
    pub written: WriteStats,
    /// The connections as written (enriched), when [`BusConfig::keep_connections`].
    pub connections: Vec<RecordBatch>,
}

/// How the store thread writes.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Where.
    pub store: StoreConfig,
    /// Prefix of the files' names (the same input rewrites the same files).
    pub name: String,
    /// Keep the enriched connection batches for the caller.
    pub keep_connections: bool,
    /// Write what is buffered at least this often (live capture); `None`: segments roll by size
    /// only, so the same input writes the same files.
    pub flush_every: Option<Duration>,
}

/// A store thread fed through a bounded channel. See the module documentation.
pub struct StoreThread {
    tx: Option<SyncSender<(Table, RecordBatch)>>,
    thread: Option<JoinHandle<Result<Stored>>>,
    /// The thread's error, readable while its result is not joined yet.
    error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for StoreThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreThread").field("running", &self.tx.is_some()).finish_non_exhaustive()
    }
}

impl StoreThread {
    /// Starts the store thread.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(enricher: Enricher, config: BusConfig) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Table, RecordBatch)>(IN_FLIGHT);
        let error = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&error);
        let thread = std::thread::Builder::new().name("store".into()).spawn(move || {
            let result = store_loop(&enricher, config, &rx);
            if let Err(e) = &result
                && let Ok(mut slot) = slot.lock()
            {
                *slot = Some(e.to_string());
            }
            result
        })?;
        Ok(StoreThread { tx: Some(tx), thread: Some(thread), error })
    }

    /// Hands one batch to the store thread, waiting while [`IN_FLIGHT`] are queued.
    ///
    /// # Errors
    /// [`Error::StoreThread`] when the thread stopped on an error (which it names), or was
    /// finished.
    pub fn send(&mut self, table: Table, batch: RecordBatch) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| Error::StoreThread("finished already".into()))?;
        // A send fails only when the store thread stopped on an error.
        tx.send((table, batch)).map_err(|_| {
            Error::StoreThread(
                self.error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_else(|| "stopped".to_string()),
            )
        })
    }

    /// Waits for the store thread to write everything.
    ///
    /// # Errors
    /// The thread's first error.
    pub fn finish(mut self) -> Result<Stored> {
        drop(self.tx.take());
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::StoreThread("it panicked (a bug in podwire)".into())),
            None => Err(Error::StoreThread("finished already".into())),
        }
    }
}

fn store_loop(
    enricher: &Enricher,
    config: BusConfig,
    rx: &Receiver<(Table, RecordBatch)>,
) -> Result<Stored> {
    let metrics = IngestMetrics::new();
    let stop = AtomicBool::new(false);
    let roll = RollPolicy {
        max_bytes: RollPolicy::default().max_bytes,
        max_age: config.flush_every.unwrap_or(Duration::MAX),
    };
    let mut bus = InProcess::new(&config.name, config.store, roll, Some(enricher), &metrics, &stop);
    let mut kept = Vec::new();
    loop {
        let next = match config.flush_every {
            Some(every) => match rx.recv_timeout(every) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            },
        };
        match next {
            Some((table, batch)) => {
                let enriched = bus.send(table, batch)?;
                if config.keep_connections && table == Table::Connections {
                    kept.extend(enriched);
                }
            }
            None => bus.tick()?,
        }
    }
    let (stats, written) = bus.finish()?;
    if stats.dead_letters > 0 {
        return Err(Error::StoreThread(format!(
            "{} batches could not be enriched and were not written (a bug in podwire: see the \
             errors above)",
            stats.dead_letters
        )));
    }
    Ok(Stored { written, connections: kept })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use crate::writer::tests::batch;

    fn config(store: &std::path::Path) -> BusConfig {
        BusConfig {
            store: StoreConfig::new(store),
            name: "t".into(),
            keep_connections: true,
            flush_every: None,
        }
    }

    #[test]
    fn batches_go_through_the_thread_into_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut bus =
            StoreThread::start(Enricher::new(Inventory::default()), config(dir.path())).unwrap();
        for i in 0..10 {
            bus.send(Table::Connections, batch(&[i, i + 100])).unwrap();
        }
        let stored = bus.finish().unwrap();
        assert_eq!(stored.written.rows["connections"], 20);
        assert_eq!(stored.connections.iter().map(RecordBatch::num_rows).sum::<usize>(), 20);
        assert!(dir.path().join("connections/date=1970-01-01/hour=00").is_dir());
    }

    #[test]
    fn a_store_that_fails_stops_the_thread_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // The store's folder is a file: every write fails.
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let mut cfg = config(&file);
        cfg.store.max_rows_per_file = 1;
        let mut bus = StoreThread::start(Enricher::new(Inventory::default()), cfg).unwrap();
        // Sends succeed until the thread has stopped; then they say why, and so does finish.
        let mut sent_err = None;
        for i in 0..200 {
            if let Err(e) = bus.send(Table::Connections, batch(&[i])) {
                sent_err = Some(e);
                break;
            }
        }
        let err = bus.finish().unwrap_err().to_string();
        assert!(err.contains("not-a-folder"), "{err}");
        if let Some(e) = sent_err {
            assert!(matches!(e, Error::StoreThread(ref m) if m.contains("not-a-folder")), "{e}");
        }
    }
}
