//! `podwire store`: the store's Delta Lake tables looked after (`convert`, `history`, `check`,
//! `vacuum`, `compact`, `expire`); the work is `podwire_ingest`'s (`delta`, `compact`,
//! `retention`).
use crate::cli::{StoreCommand, StoreCompactArgs, TableArg, TablesArgs};
use podwire_ingest::delta::DeltaLog;
use podwire_ingest::location::Location;
use podwire_schemas::Table;

pub(crate) fn run(cmd: &StoreCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Convert(args) => convert(args, quiet),
        StoreCommand::History(args) => history(&args.store, args.limit, args.json),
        StoreCommand::Check(args) => check(&args.store, args.grace),
        StoreCommand::Vacuum(args) => vacuum(&args.store, args.dry_run),
        StoreCommand::Compact(args) => compact(args, quiet),
        StoreCommand::Expire(args) => crate::expire::run(args, quiet),
    }
}

fn open(args: &TablesArgs) -> anyhow::Result<(DeltaLog, Location, Vec<Table>)> {
    let location = Location::parse(&args.store)?;
    if let Location::Local(dir) = &location {
        anyhow::ensure!(
            dir.is_dir(),
            "no store at `{}`: give the folder `podwire standalone` or `ingest` writes (--store)",
            dir.display()
        );
    }
    Ok((DeltaLog::new(&location)?, location, TableArg::tables(&args.tables)))
}

fn convert(args: &TablesArgs, quiet: bool) -> anyhow::Result<()> {
    let (log, location, tables) = open(args)?;
    for table in tables {
        match log.convert(table)? {
            None => {
                if !quiet {
                    eprintln!("{}: already a Delta table", table.name());
                }
            }
            Some(files) => {
                let rows: u64 = files.iter().filter_map(|f| f.rows).sum();
                tracing::info!(store = %location, table = table.name(), files = files.len(), rows, "Converted to a Delta table.");
                if !quiet {
                    eprintln!(
                        "{}: a Delta table now, with the {} files ({rows} rows) of its folders",
                        table.name(),
                        files.len()
                    );
                }
            }
        }
    }
    Ok(())
}

fn history(args: &TablesArgs, limit: usize, json: bool) -> anyhow::Result<()> {
    let (log, _, tables) = open(args)?;
    for table in tables {
        let Some(versions) = log.history(table, Some(limit))? else {
            if !json {
                println!("{}: no Delta log (podwire store convert makes one)", table.name());
            }
            continue;
        };
        for v in versions {
            let time = v.timestamp_ms.and_then(|ms| u64::try_from(ms).ok()).map_or_else(
                String::new,
                |ms| {
                    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                    humantime::format_rfc3339_millis(at).to_string()
                },
            );
            if json {
                let line = serde_json::json!({
                    "table": table.name(),
                    "version": v.version,
                    "timestamp": time,
                    "operation": v.operation,
                    "details": v.details,
                });
                println!("{line}");
            } else {
                let metrics = v.details.get("operationMetrics");
                let metric = |k: &str| {
                    metrics.and_then(|m| m.get(k)).map_or_else(String::new, |x| {
                        x.as_str().map_or_else(|| x.to_string(), str::to_string)
                    })
                };
                let pair = |label: &str, plus: &str, minus: &str| {
                    let (p, m) = (metric(plus), metric(minus));
                    match (p.is_empty(), m.is_empty()) {
                        (true, true) => String::new(),
                        (false, true) => format!("  {label} +{p}"),
                        (true, false) => format!("  {label} -{m}"),
                        (false, false) => format!("  {label} +{p} -{m}"),
                    }
                };
                println!(
                    "{:<14} {:>8}  {:<24}  {:<12}{}{}",
                    table.name(),
                    v.version,
                    time,
                    v.operation,
                    pair("files", "numFiles", "numRemovedFiles"),
                    pair("rows", "numOutputRows", "numDeletedRows"),
                );
            }
        }
    }
    Ok(())
}

fn check(args: &TablesArgs, grace: std::time::Duration) -> anyhow::Result<()> {
    let (log, location, tables) = open(args)?;
    let grace_s = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let mut problems = 0usize;
    for table in tables {
        match log.check(table, grace_s)? {
            None => println!("{}: no Delta log (podwire store convert makes one)", table.name()),
            Some(c) => {
                println!(
                    "{}: {} files, {} rows in the snapshot; {} problem(s); {} file(s) about to be committed",
                    table.name(),
                    c.files,
                    c.rows,
                    c.problems.len(),
                    c.recent_orphans
                );
                for p in &c.problems {
                    println!("  {p}");
                }
                problems += c.problems.len();
            }
        }
    }
    anyhow::ensure!(problems == 0, "{problems} problem(s) in the store at {location}");
    Ok(())
}

fn vacuum(args: &TablesArgs, dry_run: bool) -> anyhow::Result<()> {
    let (log, _, tables) = open(args)?;
    for table in tables {
        let deleted = log.vacuum(table, dry_run)?;
        for path in &deleted {
            println!("{}/{path}", table.name());
        }
        eprintln!(
            "{}: {} {} file(s)",
            table.name(),
            if dry_run { "would delete" } else { "deleted" },
            deleted.len()
        );
    }
    Ok(())
}

fn compact(args: &StoreCompactArgs, quiet: bool) -> anyhow::Result<()> {
    use podwire_ingest::compact::{Policy, compact};
    let (log, location, tables) = open(&args.store)?;
    let config = podwire_ingest::store::StoreConfig::at(location.clone());
    let policy = Policy {
        older_than_s: i64::try_from(args.older_than.as_secs()).unwrap_or(i64::MAX),
        target_bytes: args.target_size as u64,
        dry_run: args.dry_run,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut failed = 0usize;
    for table in tables {
        let progress = |h: &podwire_ingest::compact::Hour| {
            if !quiet {
                eprintln!(
                    "{}/{}: {} files ({} bytes) {} {} ({} rows{})",
                    table.name(),
                    h.partition,
                    h.files_in,
                    h.bytes_in,
                    if args.dry_run { "would become" } else { "became" },
                    h.files_out,
                    h.rows,
                    h.version.map_or_else(String::new, |v| format!(", version {v}")),
                );
            }
        };
        let Some(done) = compact(&config, &log, table, policy, now, progress)? else {
            if !quiet {
                eprintln!("{}: no Delta log (podwire store convert makes one)", table.name());
            }
            continue;
        };
        let files_in: u64 = done.hours.iter().map(|h| h.files_in).sum();
        let files_out: u64 = done.hours.iter().map(|h| h.files_out).sum();
        tracing::info!(store = %location, table = table.name(), hours = done.hours.len(), files_in, files_out, failed = done.failed.len(), dry_run = args.dry_run, "Compacted.");
        if !quiet {
            eprintln!(
                "{}: {} hour(s), {files_in} files {} {files_out}",
                table.name(),
                done.hours.len(),
                if args.dry_run { "would become" } else { "became" }
            );
        }
        for (part, why) in &done.failed {
            eprintln!("{}/{part}: not compacted: {why}", table.name());
        }
        failed += done.failed.len();
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} hour(s) not compacted (left as they were; run again to retry)"
    );
    Ok(())
}
