//! `podwire standalone`: capture files → tracker → enrichment → Parquet, in one process.
use crate::agent::{load_inventory, open_files, read_files, tracker_config};
use crate::cli::{StandaloneArgs, TrackerArgs};
use anyhow::Context as _;
use arrow::array::RecordBatch;
use podwire_capture::pipeline::{BatchSink, Pipeline, PipelineConfig};
use podwire_capture::source::PcapFile;
use podwire_capture::stats::CaptureStats;
use podwire_ingest::bus::{BusConfig, StoreThread};
use podwire_ingest::enrich::Enricher;
use podwire_ingest::inventory::Inventory;
use podwire_ingest::location::Location;
use podwire_ingest::store::{StoreConfig, WriteStats};
use podwire_schemas::Table;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The in-process bus (`podwire_ingest::bus`) as capture's sink.
pub(crate) struct StoreSink(StoreThread);

impl BatchSink for StoreSink {
    fn write(&mut self, table: Table, batch: RecordBatch) -> Result<(), podwire_capture::Error> {
        self.0.send(table, batch).map_err(|e| podwire_capture::Error::Sink(Box::new(e)))
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

pub(crate) fn run(args: &StandaloneArgs, quiet: bool) -> anyhow::Result<Report> {
    if args.live.enabled() {
        return run_live(args, quiet);
    }
    run_files(&args.pcap, args.inventory.as_deref(), &args.store, &args.tracker, false, quiet)
}

/// Live capture (eBPF) into the store, until stopped.
fn run_live(args: &StandaloneArgs, quiet: bool) -> anyhow::Result<Report> {
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
    let bus = BusConfig {
        store: StoreConfig::at(location),
        name: format!("live-{epoch}"),
        keep_connections: false,
        // Files roll as ingest's do (its 5-second roll age), or at each flush when that is
        // longer: a file and a Delta commit per table at every 1-second flush would be 3,600 an
        // hour for compaction to merge.
        flush_every: Some(
            args.live.flush_interval.max(podwire_ingest::segment::RollPolicy::default().max_age),
        ),
    };
    let sink =
        StoreSink(StoreThread::start(enricher, bus).context("cannot start the store thread")?);
    let config = PipelineConfig { tracker, ..PipelineConfig::default() };
    let mut pipeline = Pipeline::new(config, sink);
    let result =
        crate::live::run(&args.live, &args.tracker, inventory.as_ref(), &mut pipeline, quiet);
    let (sink, stats) = pipeline.finish().context("writing the store failed")?;
    let stored = sink.0.finish().context("writing the store failed")?;
    result?;
    report(&stats, &stored.written, store, started.elapsed(), quiet);
    Ok(Report { connections: Vec::new() })
}

pub(crate) fn run_files(
    pcaps: &[PathBuf],
    inventory: Option<&Path>,
    store: &Path,
    tracker: &TrackerArgs,
    keep_connections: bool,
    quiet: bool,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let files = open_files(pcaps)?;
    let enricher = Enricher::new(load_inventory(inventory)?);
    let location = store_location(store)?;
    let bus = BusConfig {
        store: StoreConfig::at(location),
        name: file_prefix(&files),
        keep_connections,
        flush_every: None,
    };
    let sink =
        StoreSink(StoreThread::start(enricher, bus).context("cannot start the store thread")?);
    let config = PipelineConfig { tracker: tracker_config(tracker), ..PipelineConfig::default() };
    let mut pipeline = Pipeline::new(config, sink);

    let capture_error = read_files(&mut pipeline, &files, quiet);
    let finished = pipeline.finish();
    let (sink, stats) = match finished {
        Ok(done) => done,
        Err(e) => return Err(anyhow::Error::new(e).context("writing the store failed")),
    };
    let stored = sink.0.finish().context("writing the store failed")?;
    report(&stats, &stored.written, store, started.elapsed(), quiet);
    if let Some(e) = capture_error {
        return Err(anyhow::Error::new(e)
            .context("the capture stopped early (the rows read before the error were written)"));
    }
    Ok(Report { connections: stored.connections })
}

/// The store a `--store` names: a folder (created here) or `s3://bucket/prefix`.
fn store_location(store: &Path) -> anyhow::Result<Location> {
    let location = Location::parse(&store.to_string_lossy())?;
    location.create().with_context(|| format!("cannot create the store folder `{location}`"))?;
    Ok(location)
}

/// Logs what a run read and wrote, and prints the summary unless quiet.
fn report(
    stats: &CaptureStats,
    written: &WriteStats,
    store: &Path,
    elapsed: Duration,
    quiet: bool,
) {
    tracing::info!(
        packets = stats.frames,
        connections = stats.connections(),
        dns = stats.dns_rows,
        files = written.files.values().sum::<u64>(),
        seconds = elapsed.as_secs_f64(),
        store = %store.display(),
        "Capture processed."
    );
    if !quiet {
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
