//! Retention: the hourly partitions ([`crate::store`]) that ended before a cutoff are deleted,
//! in a folder or a bucket alike.
//!
//! In a Delta table ([`crate::delta`]) they are removed from the table by one commit, and their
//! files deleted by a vacuum once they have been out of the snapshot for the table's grace
//! period (a query planned before the commit still reads them). A table without a log (a store
//! written before podwire kept one) has its folders deleted as they are.
//!
//! A partition `date=D/hour=H` holds the rows of `[D H:00, D H+1:00)` UTC by event time; it goes
//! once that whole hour is older than the time kept, so a query over the kept window never
//! finds half an hour missing. Only what the writer wrote goes: folders and files that are not
//! a partition (`_ingest/`, the ledger; anything a person put there) are left alone, and so are
//! hidden files (a local write in progress has a hidden temporary name). A partition written
//! again after it was deleted (rows that arrived later than the time kept) goes at the next run.
use crate::delta::{DeltaLog, LiveFile};
use crate::error::{Error, Result};
use crate::location::Location;
use podwire_schemas::Table;
use podwire_schemas::partition;
use std::collections::BTreeMap;
use std::path::Path;

/// What one run deleted (or, dry, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// Partitions, as `table/date=YYYY-MM-DD/hour=HH`, in order.
    pub partitions: Vec<String>,
    /// Files in them.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files deleted from Delta tables by the vacuum: removed longer ago than the grace
    /// period, or never committed (a write that died before its commit) and as old.
    pub vacuumed: u64,
}

/// The end of partition `date=YYYY-MM-DD/hour=HH` (its two folder names), in seconds since
/// the epoch; `None` for a name that is not a partition's.
pub fn partition_end(date_dir: &str, hour_dir: &str) -> Option<i64> {
    partition::bucket_of_folders(date_dir, hour_dir).map(|b| (b + 1) * 3600)
}

/// Deletes (with `dry_run`, only lists) the partitions of `tables` that ended at or before
/// `cutoff_s` (seconds since the epoch).
///
/// # Errors
/// The first listing or delete that failed; what was deleted before it stays deleted, and a
/// later run takes up the rest.
pub fn expire(
    location: &Location,
    tables: &[Table],
    cutoff_s: i64,
    dry_run: bool,
) -> Result<Expired> {
    let mut out = Expired::default();
    let log = DeltaLog::new(location)?;
    for table in tables {
        // A Delta table: the partitions leave the snapshot in one commit; their files are
        // deleted by the vacuum once no query planned before can still read them.
        if let Some(removed) = expire_delta(&log, *table, cutoff_s, dry_run)? {
            let mut parts = std::collections::BTreeSet::new();
            for f in &removed {
                if let Some(b) =
                    partition::of_path(&f.path).and_then(|(d, h)| partition::bucket(&d, &h))
                {
                    parts.insert(format!("{}/{}", table.name(), partition::folder(b)));
                }
                out.files += 1;
                out.bytes += f.size;
            }
            out.partitions.extend(parts);
            out.vacuumed += log.vacuum(*table, dry_run)?.len() as u64;
            continue;
        }
        match location {
            Location::Local(root) => {
                expire_folder(&root.join(table.name()), table, cutoff_s, dry_run, &mut out)?
            }
            Location::Bucket(bucket) => {
                // Objects by partition, so a partition is reported whole.
                let mut parts: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
                for (key, size) in bucket.list(table.name())? {
                    let mut it = key.split('/');
                    let (Some(_), Some(date), Some(hour), Some(file)) =
                        (it.next(), it.next(), it.next(), it.next())
                    else {
                        continue;
                    };
                    if it.next().is_none()
                        && !file.starts_with('.')
                        && partition_end(date, hour).is_some_and(|end| end <= cutoff_s)
                    {
                        let part = format!("{}/{date}/{hour}", table.name());
                        parts.entry(part).or_default().push((key, size));
                    }
                }
                for (part, objects) in parts {
                    for (key, size) in &objects {
                        if !dry_run {
                            bucket.delete(key)?;
                        }
                        out.files += 1;
                        out.bytes += size;
                    }
                    out.partitions.push(part);
                }
            }
        }
    }
    Ok(out)
}

/// Removes from `table`, in one commit, the files of the hour partitions that ended at or
/// before `cutoff_s`; with `dry_run`, only says which. Returns the files removed (`None`: the
/// table has no Delta log).
///
/// # Errors
/// [`Error::Delta`] when the log cannot be read or committed to.
pub fn expire_delta(
    log: &DeltaLog,
    table: Table,
    cutoff_s: i64,
    dry_run: bool,
) -> Result<Option<Vec<LiveFile>>> {
    let Some(files) = log.files(table)? else { return Ok(None) };
    let old: Vec<LiveFile> = files
        .into_iter()
        .filter(|f| {
            partition::of_path(&f.path)
                .and_then(|(d, h)| partition::bucket(&d, &h))
                .is_some_and(|b| (b + 1) * 3600 <= cutoff_s)
        })
        .collect();
    if !dry_run {
        let cutoff =
            jiff::Timestamp::from_second(cutoff_s).map(|t| t.to_string()).unwrap_or_default();
        log.remove(table, &old, &format!("hour partitions that ended by {cutoff}"))?;
    }
    Ok(Some(old))
}

fn sorted_dirs(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path: dir.to_path_buf(), source }),
    };
    let mut v: Vec<_> = entries
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn expire_folder(
    table_dir: &Path,
    table: &Table,
    cutoff_s: i64,
    dry_run: bool,
    out: &mut Expired,
) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    for (date, date_path) in sorted_dirs(table_dir)? {
        for (hour, hour_path) in sorted_dirs(&date_path)? {
            if partition_end(&date, &hour).is_none_or(|end| end > cutoff_s) {
                continue;
            }
            for entry in std::fs::read_dir(&hour_path).map_err(io(&hour_path))? {
                let entry = entry.map_err(io(&hour_path))?;
                let name = entry.file_name();
                let meta = entry.metadata().map_err(io(&entry.path()))?;
                if !meta.is_file() || name.to_string_lossy().starts_with('.') {
                    continue;
                }
                if !dry_run {
                    std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
                }
                out.files += 1;
                out.bytes += meta.len();
            }
            if !dry_run {
                // Only when empty: a write in progress keeps its folder.
                let _ = std::fs::remove_dir(&hour_path);
            }
            out.partitions.push(format!("{}/{date}/{hour}", table.name()));
        }
        if !dry_run {
            let _ = std::fs::remove_dir(&date_path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_table_loses_whole_hours_in_one_commit_and_keeps_the_files_for_the_grace_period() {
        use crate::store::{StoreConfig, write_sorted};
        use crate::writer::tests::batch;
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        let log = DeltaLog::new(&config.location).unwrap();
        for (hour, starts) in [(0, vec![1, 2]), (1, vec![3_601])] {
            let w = write_sorted(&config, Table::Connections, hour, "s", 0, vec![batch(&starts)]);
            log.append(Table::Connections, &w.unwrap().data, &[]).unwrap();
        }
        // Hour 0 ended at 3600 s: a cutoff of 3600 takes it, not hour 1.
        let dry = expire_delta(&log, Table::Connections, 3_600, true).unwrap().unwrap();
        assert_eq!(dry.len(), 1);
        assert_eq!(
            log.files(Table::Connections).unwrap().unwrap().len(),
            2,
            "a dry run removes nothing"
        );
        let out = expire(&config.location, &[Table::Connections], 3_600, false).unwrap();
        assert_eq!(out.partitions, ["connections/date=1970-01-01/hour=00"]);
        assert_eq!((out.files, out.vacuumed), (1, 0));
        let left = log.files(Table::Connections).unwrap().unwrap();
        assert_eq!(left.len(), 1);
        assert!(left[0].path.contains("hour=01"), "{left:?}");
        // Removed a moment ago: still on disk for queries planned before (the grace period).
        assert!(dir.path().join("connections").join(&dry[0].path).exists());
        let c = log.check(Table::Connections, 3600).unwrap().unwrap();
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn partition_ends() {
        let end = partition_end("date=2026-11-03", "hour=23").unwrap();
        assert_eq!(end, jiff::Timestamp::from_second(end).unwrap().as_second());
        assert_eq!(jiff::Timestamp::from_second(end).unwrap().to_string(), "2026-11-04T00:00:00Z");
        for (d, h) in
            [("date=2026-13-01", "hour=01"), ("date=2026-11-03", "hour=24"), ("x", "hour=1")]
        {
            assert_eq!(partition_end(d, h), None, "{d}/{h}");
        }
    }

    #[test]
    fn a_folder_loses_exactly_the_hours_that_ended_before_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let put = |rel: &str, bytes: usize| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, vec![0u8; bytes]).unwrap();
        };
        put("connections/date=2026-11-03/hour=22/a.parquet", 10);
        put("connections/date=2026-11-03/hour=23/b.parquet", 20);
        put("connections/date=2026-11-03/hour=23/.c.parquet.tmp", 5);
        put("connections/date=2026-11-04/hour=00/d.parquet", 40);
        put("dns/date=2026-11-03/hour=23/e.parquet", 80);
        put("_ingest/connections-0.range", 3);
        put("connections/notes.txt", 1);
        let cutoff = partition_end("date=2026-11-03", "hour=23").unwrap();
        let loc = Location::Local(root.to_path_buf());
        let tables = [Table::Connections, Table::Dns];
        let dry = expire(&loc, &tables, cutoff, true).unwrap();
        assert_eq!(dry.files, 3);
        assert!(root.join("connections/date=2026-11-03/hour=22/a.parquet").exists());
        let done = expire(&loc, &tables, cutoff, false).unwrap();
        assert_eq!(done, dry);
        assert_eq!(
            done.partitions,
            [
                "connections/date=2026-11-03/hour=22",
                "connections/date=2026-11-03/hour=23",
                "dns/date=2026-11-03/hour=23"
            ]
        );
        assert_eq!(done.bytes, 110);
        assert!(!root.join("connections/date=2026-11-03/hour=22").exists());
        assert!(!root.join("dns/date=2026-11-03").exists(), "an emptied date folder goes");
        // The write in progress, the next hour, the ledger and a stranger's file stay.
        for kept in [
            "connections/date=2026-11-03/hour=23/.c.parquet.tmp",
            "connections/date=2026-11-04/hour=00/d.parquet",
            "_ingest/connections-0.range",
            "connections/notes.txt",
        ] {
            assert!(root.join(kept).exists(), "{kept}");
        }
        assert_eq!(expire(&loc, &tables, cutoff, false).unwrap().files, 0);
    }
}
