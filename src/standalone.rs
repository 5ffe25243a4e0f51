//! `podwire standalone`: capture files → tracker → enrichment → Parquet, in one process.
use crate::agent::{load_inventory, open_files, quiet_logs, read_files, tracker_config};
use crate::cli::{StandaloneArgs, TrackerArgs};
use anyhow::Context as _;
use arrow::array::RecordBatch;
use podwire_capture::pipeline::{BatchSink, Pipeline, PipelineConfig};
use podwire_capture::source::PcapFile;
use podwire_capture::stats::CaptureStats;
use podwire_ingest::enrich::Enricher;
use podwire_ingest::inventory::Inventory;
use podwire_ingest::location::Location;
use podwire_ingest::metrics::IngestMetrics;
use podwire_ingest::segment::RollPolicy;
use podwire_ingest::store::{StoreConfig, WriteStats};
use podwire_ingest::writer::InProcess;
use podwire_schemas::Table;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Batches in flight between the capture thread and the store thread: the bound keeps memory
/// flat when the store is slower than capture (capture then waits).
const IN_FLIGHT: usize = 4;

/// What the store thread hands back: what it wrote, and the connection batches if asked for.
type Stored = (WriteStats, Vec<RecordBatch>);

/// The in-process bus: hands batches to a thread that puts them through ingest's own path
/// (`podwire_ingest::writer::InProcess`: enrichment, offset-range segments, the store's files),
/// so Parquet encoding runs beside capture and `standalone` writes exactly as `ingest` does.
pub(crate) struct StoreSink {
    tx: Option<std::sync::mpsc::SyncSender<(Table, RecordBatch)>>,
    thread: Option<std::thread::JoinHandle<Result<Stored, String>>>,
    /// The store thread's error, readable while the thread's result is not yet joined.
    error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl StoreSink {
    /// `name` prefixes the files. `flush_every`: write what is buffered at least this often
    /// (live capture); else segments roll by size only, so the same input writes the same files.
    fn start(
        enricher: Enricher,
        store: StoreConfig,
        name: String,
        keep: bool,
        flush_every: Option<Duration>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Table, RecordBatch)>(IN_FLIGHT);
        let error = std::sync::Arc::new(std::sync::Mutex::new(None));
        let slot = std::sync::Arc::clone(&error);
        let thread = std::thread::Builder::new().name("store".into()).spawn(move || {
            let mut kept = Vec::new();
            let metrics = IngestMetrics::new();
            let stop = AtomicBool::new(false);
            let roll = RollPolicy {
                max_bytes: RollPolicy::default().max_bytes,
                max_age: flush_every.unwrap_or(Duration::MAX),
            };
            let mut bus = InProcess::new(&name, store, roll, Some(&enricher), &metrics, &stop);
            let mut run = || -> Result<(), String> {
                loop {
                    let next = match flush_every {
                        Some(every) => match rx.recv_timeout(every) {
                            Ok(m) => Some(m),
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                        },
                        None => match rx.recv() {
                            Ok(m) => Some(m),
                            Err(_) => break,
                        },
                    };
                    match next {
                        Some((table, batch)) => {
                            let enriched = bus.send(table, batch).map_err(|e| e.to_string())?;
                            if keep && table == Table::Connections {
                                kept.extend(enriched);
                            }
                        }
                        None => bus.tick().map_err(|e| e.to_string())?,
                    }
                }
                Ok(())
            };
            let result = run().and_then(|()| {
                let (stats, written) = bus.finish().map_err(|e| e.to_string())?;
                if stats.dead_letters > 0 {
                    return Err(format!(
                        "{} batches could not be enriched and were not written (a bug in podwire: \
                         see the errors above)",
                        stats.dead_letters
                    ));
                }
                Ok((written, kept))
            });
            if let Err(e) = &result
                && let Ok(mut slot) = slot.lock()
            {
                *slot = Some(e.clone());
            }
            result
        })?;
        Ok(StoreSink { tx: Some(tx), thread: Some(thread), error })
    }

    /// Waits for the store thread to write everything; its first error, if any.
    fn finish(mut self) -> Result<Stored, String> {
        drop(self.tx.take());
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("the store thread panicked (a bug in podwire)".into()),
            None => Err("the store thread was already finished".into()),
        }
    }
}

impl BatchSink for StoreSink {
    fn write(&mut self, table: Table, batch: RecordBatch) -> Result<(), String> {
        let tx = self.tx.as_ref().ok_or("the store thread was already finished")?;
        // A send fails only when the store thread stopped on an error.
        tx.send((table, batch)).map_err(|_| {
            self.error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "the store thread stopped".to_string())
        })
    }
}

/// What a run made that callers use: the enriched connection batches, when asked for.
pub(crate) struct Report {
    pub(crate) connections: Vec<RecordBatch>,
}

/// A file prefix derived from the inputs: the same inputs rewrite the same files. Standard input
/// is never the same input twice, so a run reading it gets a prefix of its own.
fn file_prefix(files: &[PcapFile]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    if files.iter().any(|f| f.len == 0 && f.path() == Path::new("stdin")) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for b in now.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    for f in files {
        let name =
            f.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for b in name.bytes().chain(f.len.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("standalone-{h:016x}")
}

pub(crate) fn run(args: &StandaloneArgs) -> anyhow::Result<Report> {
    if args.live.enabled() {
        return run_live(args);
    }
    run_files(&args.pcap, args.inventory.as_deref(), &args.store, &args.tracker, false)
}

/// Live capture (eBPF) into the store, until stopped.
fn run_live(args: &StandaloneArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let inventory = args.inventory.as_deref().map(crate::agent::InventoryFile::load).transpose()?;
    let enricher = match &inventory {
        Some(f) => Enricher::shared(f.shared.clone()),
        None => Enricher::new(Inventory::default()),
    };
    let store = &args.store;
    let location = store_location(store)?;
    let tracker = crate::live::tracker_config(&args.tracker);
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sink = StoreSink::start(
        enricher,
        StoreConfig::at(location),
        format!("live-{epoch}"),
        false,
        Some(args.live.flush_interval),
    )
    .context("cannot start the store thread")?;
    let config = PipelineConfig { tracker, ..PipelineConfig::default() };
    let mut pipeline = Pipeline::new(config, sink);
    let result = crate::live::run(&args.live, &args.tracker, inventory.as_ref(), &mut pipeline);
    let (sink, stats) = pipeline.finish().context("writing the store failed")?;
    let (written, _) =
        sink.finish().map_err(|e| anyhow::anyhow!("writing the store failed: {e}"))?;
    result?;
    report(&stats, &written, store, started.elapsed());
    Ok(Report { connections: Vec::new() })
}

pub(crate) fn run_files(
    pcaps: &[PathBuf],
    inventory: Option<&Path>,
    store: &Path,
    tracker: &TrackerArgs,
    keep_connections: bool,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let files = open_files(pcaps)?;
    let enricher = Enricher::new(load_inventory(inventory)?);
    let location = store_location(store)?;
    let sink = StoreSink::start(
        enricher,
        StoreConfig::at(location),
        file_prefix(&files),
        keep_connections,
        None,
    )
    .context("cannot start the store thread")?;
    let config = PipelineConfig { tracker: tracker_config(tracker), ..PipelineConfig::default() };
    let mut pipeline = Pipeline::new(config, sink);

    let capture_error = read_files(&mut pipeline, &files)
        .map_err(|e| anyhow::anyhow!("writing the store failed: {e}"))?;
    let finished = pipeline.finish();
    let (sink, stats) = match finished {
        Ok(done) => done,
        Err(e) => return Err(anyhow::Error::new(e).context("writing the store failed")),
    };
    let (written, keep) =
        sink.finish().map_err(|e| anyhow::anyhow!("writing the store failed: {e}"))?;
    report(&stats, &written, store, started.elapsed());
    if let Some(e) = capture_error {
        return Err(anyhow::Error::new(e)
            .context("the capture stopped early (the rows read before the error were written)"));
    }
    Ok(Report { connections: keep })
}

/// The store a `--store` names: a folder (created here) or `s3://bucket/prefix`.
fn store_location(store: &Path) -> anyhow::Result<Location> {
    let location = Location::parse(&store.to_string_lossy())?;
    location.create().with_context(|| format!("cannot create the store folder `{location}`"))?;
    Ok(location)
}

/// Logs what a run read and wrote, and prints the summary unless quiet.
fn report(stats: &CaptureStats, written: &WriteStats, store: &Path, elapsed: Duration) {
    tracing::info!(
        packets = stats.frames,
        connections = stats.connections(),
        dns = stats.dns_rows,
        files = written.files.values().sum::<u64>(),
        seconds = elapsed.as_secs_f64(),
        store = %store.display(),
        "Capture processed."
    );
    if !quiet_logs() {
        eprintln!("{stats}");
        eprintln!(
            "wrote {} files, {} bytes to {} in {:.2} s",
            written.files.values().sum::<u64>(),
            written.bytes,
            store.display(),
            elapsed.as_secs_f64()
        );
    }
}
