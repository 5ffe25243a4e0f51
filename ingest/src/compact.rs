//! Compaction: the many small files ingest writes into an hour (one per roll, every few
//! seconds) replaced by a few large ones, in one Delta commit per hour that every reader sees
//! whole ([`DeltaLog::replace`]). Queries over a compacted hour open a few footers instead of
//! hundreds.
//!
//! Only closed hours are compacted (ended at least `older_than` ago, so ingest has moved on;
//! late rows appended to one meanwhile are simply not part of this compaction). Within an hour,
//! the files smaller than the target size are packed, in path order, into groups of at most
//! the target size and `max_rows_per_file` rows; each group of two or more files is read and
//! written back as one file by the store's own writer ([`write_sorted`]: the same sort,
//! encodings and statistics). Memory is one group's rows at a time.
//!
//! A commit that conflicts (an expiry removed files of the table meanwhile, or another
//! compaction took the same hour) is abandoned: its new files are deleted, and the next run
//! tries again. The files replaced stay on disk until a vacuum, after the tables' grace period,
//! so a query planned before the commit still reads them.
use crate::delta::{DataFile, DeltaLog, LiveFile};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::store::{StoreConfig, write_sorted};
use arrow::array::{RecordBatch, new_null_array};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use podwire_schemas::{Table, partition};
use std::collections::BTreeMap;

/// What to compact.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Hours that ended less than this many seconds ago are left alone.
    pub older_than_s: i64,
    /// Files are packed up to this many bytes (and the store's `max_rows_per_file` rows);
    /// files at least this large are left as they are.
    pub target_bytes: u64,
    /// Only say what would be done.
    pub dry_run: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { older_than_s: 2 * 3600, target_bytes: 256 << 20, dry_run: false }
    }
}

/// What one hour's compaction did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hour {
    /// `date=…/hour=…`.
    pub partition: String,
    /// Files replaced.
    pub files_in: u64,
    /// Files written in their place.
    pub files_out: u64,
    /// Rows moved.
    pub rows: u64,
    /// Bytes replaced.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// The version committed (`None` with `dry_run`).
    pub version: Option<u64>,
}

/// What [`compact`] did to a table.
#[derive(Debug, Clone, Default)]
pub struct Compacted {
    /// The hours compacted, oldest first.
    pub hours: Vec<Hour>,
    /// Hours whose compaction failed, and why (they are left as they were).
    pub failed: Vec<(String, String)>,
}

/// Compacts the closed hours of `table` in the store `config` points at, as `policy` says,
/// calling `progress` after each hour. `now_s` is the time (seconds since the epoch) hours are
/// closed against. `None` when the table has no Delta log (`podwire store convert` makes one:
/// without a log, a reader could see an hour half compacted).
///
/// # Errors
/// When the log cannot be read; an hour that fails is reported in [`Compacted::failed`] and
/// the others go on.
pub fn compact(
    config: &StoreConfig,
    log: &DeltaLog,
    table: Table,
    policy: Policy,
    now_s: i64,
    mut progress: impl FnMut(&Hour),
) -> Result<Option<Compacted>> {
    let Some(files) = log.files(table)? else { return Ok(None) };
    let mut hours: BTreeMap<i64, Vec<LiveFile>> = BTreeMap::new();
    for f in files {
        if let Some(b) = partition::of_path(&f.path).and_then(|(d, h)| partition::bucket(&d, &h)) {
            hours.entry(b).or_default().push(f);
        }
    }
    let mut out = Compacted::default();
    for (bucket, mut files) in hours {
        if (bucket + 1) * 3600 > now_s - policy.older_than_s {
            continue; // not closed yet
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let groups = pack(&files, policy.target_bytes, config.max_rows_per_file as u64);
        if groups.is_empty() {
            continue;
        }
        let folder = partition::folder(bucket);
        match compact_hour(config, log, table, bucket, &groups, policy) {
            Ok(hour) => {
                progress(&hour);
                out.hours.push(hour);
            }
            Err(e) => {
                tracing::warn!(table = table.name(), partition = %folder, error = %e, "Compacting an hour failed; it is left as it was, and the next run tries again.");
                out.failed.push((folder, e.to_string()));
            }
        }
    }
    Ok(Some(out))
}

/// The groups of files to merge: files smaller than `target_bytes`, in order, packed into
/// groups of at most `target_bytes` and `max_rows` rows; only groups of two files or more.
fn pack(files: &[LiveFile], target_bytes: u64, max_rows: u64) -> Vec<Vec<LiveFile>> {
    let mut groups = Vec::new();
    let mut group: Vec<LiveFile> = Vec::new();
    let (mut bytes, mut rows) = (0u64, 0u64);
    for f in files.iter().filter(|f| f.size < target_bytes) {
        let r = f.rows.unwrap_or(0);
        if !group.is_empty() && (bytes + f.size > target_bytes || rows + r > max_rows) {
            groups.push(std::mem::take(&mut group));
            (bytes, rows) = (0, 0);
        }
        bytes += f.size;
        rows += r;
        group.push(f.clone());
    }
    groups.push(group);
    groups.retain(|g| g.len() > 1);
    groups
}

fn compact_hour(
    config: &StoreConfig,
    log: &DeltaLog,
    table: Table,
    bucket: i64,
    groups: &[Vec<LiveFile>],
    policy: Policy,
) -> Result<Hour> {
    let folder = partition::folder(bucket);
    let mut hour = Hour { partition: folder.clone(), ..Hour::default() };
    let removed: Vec<LiveFile> = groups.iter().flatten().cloned().collect();
    hour.files_in = removed.len() as u64;
    hour.bytes_in = removed.iter().map(|f| f.size).sum();
    if policy.dry_run {
        hour.files_out = groups.len() as u64;
        hour.rows = removed.iter().filter_map(|f| f.rows).sum();
        return Ok(hour);
    }
    // Names no writer uses otherwise: the time of this run, this process, the group.
    let stem = format!("compacted-{}-{}", crate::delta::now_ms(), std::process::id());
    // A closed hour's files are read for weeks: they get the Bloom filters ingest's rolls skip.
    let config = &StoreConfig { bloom_filters: true, ..config.clone() };
    let mut added: Vec<DataFile> = Vec::new();
    let result = (|| -> Result<u64> {
        for (i, group) in groups.iter().enumerate() {
            let mut batches = Vec::new();
            let mut rows_in = 0u64;
            for f in group {
                for b in read(config, table, &f.path)? {
                    rows_in += b.num_rows() as u64;
                    batches.push(b);
                }
            }
            let written = write_sorted(config, table, bucket, &format!("{stem}-{i}"), 0, batches)?;
            added.extend(written.data);
            if written.rows != rows_in {
                return Err(Error::Delta {
                    table: table.name(),
                    what: format!("{folder}: read {rows_in} rows, wrote {}", written.rows),
                    retryable: false,
                });
            }
            if let Some(expected) = group.iter().map(|f| f.rows).sum::<Option<u64>>()
                && expected != rows_in
            {
                return Err(Error::Delta {
                    table: table.name(),
                    what: format!(
                        "{folder}: the log says {expected} rows, the files hold {rows_in}; `podwire store check` says more"
                    ),
                    retryable: false,
                });
            }
        }
        log.replace(table, &removed, &added, &folder, policy.target_bytes)
    })();
    match result {
        Ok(version) => {
            hour.version = Some(version);
            hour.files_out = added.len() as u64;
            hour.rows = added.iter().map(|f| f.rows).sum();
            hour.bytes_out = added.iter().map(|f| f.size).sum();
            Ok(hour)
        }
        Err(e) => {
            // Never committed: nobody reads them.
            for f in &added {
                let _ = delete(&config.location, table, &f.path);
            }
            Err(e)
        }
    }
}

/// The rows of the file at `path` (relative to `table`'s root), as the table's current
/// schema: a column the file lacks (written before it existed) is null.
fn read(config: &StoreConfig, table: Table, path: &str) -> Result<Vec<RecordBatch>> {
    let key = format!("{}/{path}", table.name());
    let batches: Vec<RecordBatch> = match &config.location {
        Location::Local(root) => {
            let p = root.join(&key);
            let file = std::fs::File::open(&p).map_err(|source| Error::Io { path: p, source })?;
            ParquetRecordBatchReaderBuilder::try_new(file)?
                .with_batch_size(64 * 1024)
                .build()?
                .collect::<std::result::Result<_, _>>()?
        }
        Location::Bucket(b) => {
            let bytes = b.get(&key)?.ok_or_else(|| Error::Delta {
                table: table.name(),
                what: format!("`{key}` is in the log but not in the bucket"),
                retryable: false,
            })?;
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?
                .with_batch_size(64 * 1024)
                .build()?
                .collect::<std::result::Result<_, _>>()?
        }
    };
    let schema = table.schema();
    batches
        .into_iter()
        .map(|b| {
            if b.schema().fields() == schema.fields() {
                return Ok(b);
            }
            let mut columns = Vec::with_capacity(schema.fields().len());
            for field in schema.fields() {
                columns.push(match b.schema().index_of(field.name()) {
                    Ok(i) => b.column(i).clone(),
                    Err(_) => new_null_array(field.data_type(), b.num_rows()),
                });
            }
            for field in b.schema().fields() {
                if schema.field_with_name(field.name()).is_err() {
                    return Err(Error::Delta {
                        table: table.name(),
                        what: format!(
                            "`{key}` has a column `{}` this podwire does not know; compacting it would lose it",
                            field.name()
                        ),
                        retryable: false,
                    });
                }
            }
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .collect()
}

fn delete(location: &Location, table: Table, path: &str) -> Result<()> {
    let key = format!("{}/{path}", table.name());
    match location {
        Location::Local(root) => {
            let p = root.join(&key);
            std::fs::remove_file(&p).map_err(|source| Error::Io { path: p, source })
        }
        Location::Bucket(b) => b.delete(&key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::tests::batch;

    fn rows_of(config: &StoreConfig, log: &DeltaLog) -> Vec<i64> {
        use arrow::array::AsArray as _;
        let mut ids = Vec::new();
        for f in log.files(Table::Connections).unwrap().unwrap() {
            for b in read(config, Table::Connections, &f.path).unwrap() {
                let c = b.column_by_name("conn_id").unwrap();
                ids.extend(c.as_primitive::<arrow::datatypes::Int64Type>().values().iter());
            }
        }
        ids.sort_unstable();
        ids
    }

    #[test]
    fn closed_hours_become_one_file_with_the_same_rows_and_open_hours_stay() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        let log = DeltaLog::new(&config.location).unwrap();
        // Hour 0: five small files; hour 1: two; hour 2 (open): two.
        for (hour, stems) in [(0, 5), (1, 2), (2, 2)] {
            for s in 0..stems {
                let starts: Vec<i64> = (0..3).map(|i| hour * 3600 + s * 10 + i).collect();
                let w = write_sorted(
                    &config,
                    Table::Connections,
                    hour,
                    &format!("roll{s}"),
                    0,
                    vec![batch(&starts)],
                )
                .unwrap();
                log.append(Table::Connections, &w.data, &[]).unwrap();
            }
        }
        let before = rows_of(&config, &log);
        let now = 3 * 3600 + 2 * 3600 - 1; // hour 2 ended less than 2 h ago
        let dry = Policy { dry_run: true, ..Policy::default() };
        let planned =
            compact(&config, &log, Table::Connections, dry, now, |_| {}).unwrap().unwrap();
        assert_eq!(planned.hours.len(), 2);
        assert_eq!(log.files(Table::Connections).unwrap().unwrap().len(), 9, "dry run");
        let mut seen = 0;
        let done =
            compact(&config, &log, Table::Connections, Policy::default(), now, |_| seen += 1)
                .unwrap()
                .unwrap();
        assert_eq!(seen, 2);
        assert!(done.failed.is_empty(), "{:?}", done.failed);
        let summary: Vec<(&str, u64, u64, u64)> = done
            .hours
            .iter()
            .map(|h| (h.partition.as_str(), h.files_in, h.files_out, h.rows))
            .collect();
        assert_eq!(
            summary,
            [("date=1970-01-01/hour=00", 5, 1, 15), ("date=1970-01-01/hour=01", 2, 1, 6)]
        );
        let files = log.files(Table::Connections).unwrap().unwrap();
        assert_eq!(files.len(), 4, "{files:?}");
        assert_eq!(rows_of(&config, &log), before, "the same rows");
        // The compacted file is sorted like any store file.
        let hour0 = files.iter().find(|f| f.path.contains("hour=00")).unwrap();
        let ids: Vec<i64> = read(&config, Table::Connections, &hour0.path)
            .unwrap()
            .iter()
            .flat_map(|b| {
                use arrow::array::AsArray as _;
                b.column_by_name("conn_id")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert!(ids.is_sorted(), "{ids:?}");
        // The replaced files stay for the grace period; the log agrees with the store.
        let c = log.check(Table::Connections, 3600).unwrap().unwrap();
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!((c.files, c.rows, c.recent_orphans), (4, 27, 7));
        // Nothing left to do.
        let again =
            compact(&config, &log, Table::Connections, Policy::default(), now, |_| {}).unwrap();
        assert!(again.unwrap().hours.is_empty());
        let h = log.history(Table::Connections, Some(1)).unwrap().unwrap();
        assert_eq!(h[0].operation, "OPTIMIZE");
    }

    #[test]
    fn packing_respects_the_target_and_leaves_big_files() {
        let f = |path: &str, size: u64, rows: u64| LiveFile {
            path: path.into(),
            size,
            rows: Some(rows),
        };
        let files = [f("a", 40, 4), f("b", 40, 4), f("big", 200, 1), f("c", 40, 4), f("d", 10, 1)];
        let names = |g: Vec<Vec<LiveFile>>| -> Vec<Vec<String>> {
            g.into_iter().map(|g| g.into_iter().map(|f| f.path).collect()).collect()
        };
        assert_eq!(names(pack(&files, 100, 100)), [vec!["a", "b"], vec!["c", "d"]]);
        assert_eq!(names(pack(&files, 1000, 100)), [vec!["a", "b", "big", "c", "d"]]);
        assert_eq!(names(pack(&files, 1000, 8)), [vec!["a", "b"], vec!["big", "c", "d"]]);
        assert!(pack(&files[..1], 100, 100).is_empty(), "one file: nothing to do");
    }

    #[test]
    fn two_compactions_of_one_hour_cannot_both_commit() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        let log = DeltaLog::new(&config.location).unwrap();
        let mut all = Vec::new();
        for s in 0..3 {
            let w = write_sorted(
                &config,
                Table::Connections,
                0,
                &format!("r{s}"),
                0,
                vec![batch(&[s * 10, s * 10 + 1])],
            )
            .unwrap();
            log.append(Table::Connections, &w.data, &[]).unwrap();
            all.extend(w.data);
        }
        let live = log.files(Table::Connections).unwrap().unwrap();
        // Two processes read the same snapshot; both write their merged file; the second
        // commit conflicts (it would hold the rows twice).
        let other = DeltaLog::new(&config.location).unwrap();
        other.files(Table::Connections).unwrap();
        let merged = |stem| {
            write_sorted(
                &config,
                Table::Connections,
                0,
                stem,
                0,
                vec![batch(&[0, 1, 10, 11, 20, 21])],
            )
            .unwrap()
            .data
        };
        let hour = "date=1970-01-01/hour=00";
        log.replace(Table::Connections, &live, &merged("x"), hour, 1 << 20).unwrap();
        let e = other.replace(Table::Connections, &live, &merged("y"), hour, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("Concurrent transaction"), "{e}");
        assert_eq!(log.files(Table::Connections).unwrap().unwrap().len(), 1);
        // An append committed after the compaction by a handle that had not seen it still goes in.
        let w =
            write_sorted(&config, Table::Connections, 0, "late", 0, vec![batch(&[30])]).unwrap();
        other.append(Table::Connections, &w.data, &[]).unwrap();
        assert_eq!(log.files(Table::Connections).unwrap().unwrap().len(), 2);
    }
}
