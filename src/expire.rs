//! `podwire expire`, and the background runs of `podwire ingest`: hourly retention
//! (`--retention`) and compaction (`--compact-every`).
use crate::cli::ExpireArgs;
use podwire_ingest::location::Location;
use podwire_ingest::metrics::IngestMetrics;
use podwire_ingest::retention::{Expired, expire};
use podwire_schemas::Table;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) fn run(args: &ExpireArgs, quiet: bool) -> anyhow::Result<()> {
    let location = Location::parse(&args.store)?;
    let tables = crate::cli::TableArg::tables(&args.tables);
    let cutoff = cutoff(args.keep);
    let done = expire(&location, &tables, cutoff, args.dry_run)?;
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    if args.dry_run {
        for p in &done.partitions {
            println!("{p}");
        }
    }
    tracing::info!(
        store = %location,
        partitions = done.partitions.len(),
        files = done.files,
        bytes = done.bytes,
        dry_run = args.dry_run,
        "Expired the partitions older than the time kept."
    );
    if !quiet {
        eprintln!(
            "{verb} {} partitions ({} files, {} bytes) that ended before {}; {} file(s) removed \
             over an hour ago vacuumed",
            done.partitions.len(),
            done.files,
            done.bytes,
            humantime::format_rfc3339_seconds(
                UNIX_EPOCH + Duration::from_secs(u64::try_from(cutoff).unwrap_or(0))
            ),
            done.vacuumed
        );
    }
    Ok(())
}

/// Seconds since the epoch before which whole hours go.
fn cutoff(keep: Duration) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(now.saturating_sub(keep.as_secs())).unwrap_or(0)
}

/// Sleeps for `period`, waking every half second to return early once `stop` is set.
fn sleep_unless_stopped(period: Duration, stop: &AtomicBool) {
    let until = std::time::Instant::now() + period;
    while !stop.load(Relaxed) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// How often `ingest --retention` runs.
const EVERY: Duration = Duration::from_secs(3600);

/// Runs retention at once and then hourly on a thread of its own, until `stop`. A failed run
/// (the bucket unreachable, say) is logged and counted, and the next one retries.
pub(crate) fn spawn_hourly(
    location: Location,
    keep: Duration,
    metrics: Arc<IngestMetrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("retention".into()).spawn(move || {
        while !stop.load(Relaxed) {
            match expire(&location, &Table::ALL, cutoff(keep), false) {
                Ok(Expired { partitions, files, bytes, .. }) => {
                    metrics.expired(partitions.len() as u64, bytes);
                    if !partitions.is_empty() {
                        tracing::info!(
                            partitions = partitions.len(),
                            first = %partitions[0],
                            files,
                            bytes,
                            "Retention: deleted the partitions older than the time kept."
                        );
                    }
                }
                Err(e) => {
                    metrics.retention_error();
                    tracing::warn!(error = %e, "Retention run failed; the next run (in an hour) retries.");
                }
            }
            sleep_unless_stopped(EVERY, &stop);
        }
    })
}

/// Runs compaction of every table every `every` on a thread of its own, until `stop` (the first
/// run after `every`: a starting ingest has other work). Failures are logged and counted; the
/// next run retries.
pub(crate) fn spawn_compaction(
    location: Location,
    every: Duration,
    metrics: Arc<IngestMetrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use podwire_ingest::compact::{Policy, compact};
    std::thread::Builder::new().name("compaction".into()).spawn(move || {
        let config = podwire_ingest::store::StoreConfig::at(location.clone());
        loop {
            sleep_unless_stopped(every, &stop);
            if stop.load(Relaxed) {
                return;
            }
            let log = match podwire_ingest::delta::DeltaLog::new(&location) {
                Ok(l) => l,
                Err(e) => {
                    metrics.compacted(0, 1);
                    tracing::warn!(error = %e, "Compaction run failed; the next run retries.");
                    continue;
                }
            };
            let now = i64::try_from(
                SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            )
            .unwrap_or(i64::MAX);
            for table in Table::ALL {
                if stop.load(Relaxed) {
                    return;
                }
                match compact(&config, &log, table, Policy::default(), now, |_| {}) {
                    Ok(Some(done)) => {
                        let files: u64 = done.hours.iter().map(|h| h.files_in).sum();
                        metrics.compacted(files, done.failed.len() as u64);
                        if !done.hours.is_empty() {
                            tracing::info!(
                                table = table.name(),
                                hours = done.hours.len(),
                                files_in = files,
                                files_out = done.hours.iter().map(|h| h.files_out).sum::<u64>(),
                                failed = done.failed.len(),
                                "Compaction: closed hours' small files merged."
                            );
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        metrics.compacted(0, 1);
                        tracing::warn!(table = table.name(), error = %e, "Compaction run failed; the next run retries.");
                    }
                }
            }
        }
    })
}
