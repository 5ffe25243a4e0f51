//! The Parquet store. Layout, readable as a Hive-partitioned dataset by DuckDB, pyarrow, polars
//! and Spark without podwire code:
//!
//! ```text
//! STORE/<table>/date=YYYY-MM-DD/hour=HH/<prefix>-<seq>.parquet
//! ```
//!
//! Partitions come from each table's event-time column (UTC). Files are ZSTD-compressed, carry
//! page-level statistics, are sorted by event time then `conn_id` (`Table::sort_columns`,
//! declared in the footer's sorting columns)
//! and are written to a hidden temporary name, fsynced and renamed: a reader never sees half a
//! file. Rows are buffered per partition and a file is rolled every `max_rows_per_file` rows, so
//! memory is bounded by the number of open partitions times that.
use crate::error::{Error, Result};
use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::DataType;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use podwire_schemas::Table;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

const HOUR_US: i64 = 3_600_000_000;

/// Ascending, nulls last: the order SQL's `ORDER BY col` means, so that a query engine can take
/// the files' order for the query's (`podwire-query` declares it on its tables).
pub const SORT: SortOptions = SortOptions { descending: false, nulls_first: false };

/// String columns (by name suffix) that keep min/max statistics for pruning.
const PRUNED_STRINGS: [&str; 7] =
    ["_ip", "namespace", "_name", "_pod", "outcome", "protocol", "query_name"];

/// Store writer settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The store's root folder.
    pub root: PathBuf,
    /// File name prefix; the same input with the same prefix rewrites the same files.
    pub prefix: String,
    /// Rows per file before it is rolled.
    pub max_rows_per_file: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// ZSTD level.
    pub zstd_level: i32,
}

impl StoreConfig {
    /// Defaults for a store at `root`.
    pub fn new(root: &Path, prefix: &str) -> Self {
        StoreConfig {
            root: root.into(),
            prefix: prefix.into(),
            max_rows_per_file: 1 << 20,
            row_group_rows: 128 * 1024,
            zstd_level: 1,
        }
    }
}

#[derive(Debug, Default)]
struct Partition {
    batches: Vec<RecordBatch>,
    rows: usize,
    files: u32,
}

/// What the writer wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteStats {
    /// Files written, by table.
    pub files: BTreeMap<&'static str, u64>,
    /// Rows written, by table.
    pub rows: BTreeMap<&'static str, u64>,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes batches into the store.
#[derive(Debug)]
pub struct StoreWriter {
    config: StoreConfig,
    open: BTreeMap<(Table, i64), Partition>,
    stats: WriteStats,
}

/// Splits a batch by the hour bucket (UTC) of its event time: the store's partitions.
///
/// # Errors
/// When the batch lacks its table's time column.
pub fn split_by_hour(table: Table, batch: &RecordBatch) -> Result<Vec<(i64, RecordBatch)>> {
    let ts = crate::event_times(table, batch)?;
    let mut rows_by_hour: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (i, t) in ts.values().iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        rows_by_hour.entry(t.div_euclid(HOUR_US)).or_default().push(i);
    }
    if rows_by_hour.len() == 1 {
        return Ok(rows_by_hour.into_keys().map(|h| (h, batch.clone())).collect());
    }
    rows_by_hour
        .into_iter()
        .map(|(h, idx)| Ok((h, take_record_batch(batch, &UInt32Array::from(idx))?)))
        .collect()
}

/// The partition folder of an hour bucket: `date=YYYY-MM-DD/hour=HH`.
pub fn partition_path(hour_bucket: i64) -> String {
    let ts = jiff::Timestamp::from_second(hour_bucket.saturating_mul(3600))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC);
    format!("date={}/hour={:02}", dt.strftime("%Y-%m-%d"), dt.hour())
}

impl StoreWriter {
    /// A writer; creates nothing until the first batch.
    pub fn new(config: StoreConfig) -> Self {
        StoreWriter { config, open: BTreeMap::new(), stats: WriteStats::default() }
    }

    /// Takes one batch of `table`, splitting it by hour partition.
    ///
    /// # Errors
    /// When the batch lacks its time column, or a rolled file cannot be written.
    pub fn write(&mut self, table: Table, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for (hour, part) in split_by_hour(table, batch)? {
            let p = self.open.entry((table, hour)).or_default();
            p.rows += part.num_rows();
            p.batches.push(part);
            if p.rows >= self.config.max_rows_per_file {
                self.flush_partition(table, hour)?;
            }
        }
        Ok(())
    }

    /// Writes every buffered partition.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn flush(&mut self) -> Result<()> {
        let keys: Vec<(Table, i64)> = self.open.keys().copied().collect();
        for (table, hour) in keys {
            self.flush_partition(table, hour)?;
        }
        Ok(())
    }

    /// Flushes and returns what was written.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn finish(mut self) -> Result<WriteStats> {
        self.flush()?;
        Ok(self.stats)
    }

    fn flush_partition(&mut self, table: Table, hour: i64) -> Result<()> {
        let Some(p) = self.open.get_mut(&(table, hour)) else { return Ok(()) };
        if p.rows == 0 {
            return Ok(());
        }
        let batches = std::mem::take(&mut p.batches);
        p.rows = 0;
        let first = p.files;
        let stem = self.config.prefix.clone();
        let written = write_sorted(&self.config, table, hour, &stem, first, batches)?;
        if let Some(p) = self.open.get_mut(&(table, hour)) {
            p.files += written.files;
        }
        self.stats.add(table, &written);
        Ok(())
    }
}

impl WriteStats {
    fn add(&mut self, table: Table, w: &Written) {
        *self.files.entry(table.name()).or_default() += u64::from(w.files);
        *self.rows.entry(table.name()).or_default() += w.rows;
        self.bytes += w.bytes;
    }
}

/// What [`write_sorted`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Files.
    pub files: u32,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Writes `batches` (all of `table`, all in hour bucket `hour`) as files of the hour's folder,
/// sorted by the table's sort columns, at most `max_rows_per_file` rows each, named
/// `<stem>-<NNNNN>.parquet` counting from `first`. A file of the same name is replaced: the same
/// stem and rows write the same files, which is how ingest replays without duplicates. The
/// single writer for `podwire standalone` and `podwire ingest`.
///
/// # Errors
/// When the rows are not of the table's schema, or a file cannot be written.
pub fn write_sorted(
    config: &StoreConfig,
    table: Table,
    hour: i64,
    stem: &str,
    first: u32,
    batches: Vec<RecordBatch>,
) -> Result<Written> {
    let mut written = Written::default();
    let Some(schema) = batches.first().map(RecordBatch::schema) else { return Ok(written) };
    let all = concat_batches(&schema, &batches)?;
    drop(batches);
    if all.num_rows() == 0 {
        return Ok(written);
    }
    let mut sort_idx = Vec::new();
    for name in table.sort_columns() {
        sort_idx.push(schema.index_of(name)?);
    }
    let keys: Vec<SortColumn> = sort_idx
        .iter()
        .map(|&i| SortColumn { values: all.column(i).clone(), options: Some(SORT) })
        .collect();
    let order = lexsort_to_indices(&keys, None)?;
    let sorted = take_record_batch(&all, &order)?;
    drop(all);
    // Files of at most `max_rows_per_file` rows, in the table's sort order.
    let per_file = config.max_rows_per_file.max(1);
    let mut offset = 0;
    while offset < sorted.num_rows() {
        let len = per_file.min(sorted.num_rows() - offset);
        let name = format!("{stem}-{:05}.parquet", first + written.files);
        written.bytes +=
            write_file(config, table, hour, &name, &sort_idx, &sorted.slice(offset, len))?;
        written.files += 1;
        written.rows += len as u64;
        offset += len;
    }
    Ok(written)
}

/// Writes one file: a hidden temporary name, fsync, rename, fsync of the folder. Returns its size.
fn write_file(
    config: &StoreConfig,
    table: Table,
    hour: i64,
    name: &str,
    sort_idx: &[usize],
    rows: &RecordBatch,
) -> Result<u64> {
    let schema = rows.schema();
    let dir = config.root.join(table.name()).join(partition_path(hour));
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |source| Error::Io { path: tmp.clone(), source };
    let file = File::create(&tmp).map_err(io)?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(config.zstd_level).unwrap_or_default(),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(config.row_group_rows))
        .set_sorting_columns(Some(
            sort_idx
                .iter()
                .map(|&i| SortingColumn {
                    column_idx: i32::try_from(i).unwrap_or(0),
                    descending: SORT.descending,
                    nulls_first: SORT.nulls_first,
                })
                .collect(),
        ))
        .set_created_by(format!("podwire {}", env!("CARGO_PKG_VERSION")));
    for field in schema.fields() {
        // Unique-per-row columns (times, ids, counters) gain nothing from a dictionary.
        if matches!(field.data_type(), DataType::Int64 | DataType::Timestamp(..)) {
            props =
                props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
        // Min/max of every string column costs more than the rest of the write; keep
        // statistics on the string columns that filters prune by.
        let pruned = !matches!(field.data_type(), DataType::Utf8 | DataType::List(_))
            || PRUNED_STRINGS.iter().any(|s| field.name().ends_with(s));
        if !pruned {
            props = props.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::None,
            );
        }
    }
    let result = (|| -> Result<u64> {
        let mut writer = ArrowWriter::try_new(file, schema, Some(props.build()))?;
        writer.write(rows)?;
        let file = writer.into_inner()?;
        file.sync_all().map_err(io)?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(bytes)
    })();
    if result.is_err() {
        // A failed write leaves no partial temporary file behind (a full disk stays usable).
        let _ = std::fs::remove_file(&tmp);
    }
    let bytes = result?;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podwire_schemas::connections::{
        ConnectionRecord, ConnectionsBuilder, DirCounters, by, outcome, protocol,
    };

    fn row(start_s: i64) -> ConnectionRecord {
        ConnectionRecord {
            start_ns: start_s * 1_000_000_000,
            end_ns: start_s * 1_000_000_000,
            conn_id: start_s,
            row_seq: 0,
            is_final: true,
            protocol: protocol::UDP,
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: 1,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: 2,
            src: DirCounters::default(),
            dst: DirCounters::default(),
            outcome: outcome::NO_ANSWER,
            src_flags: 0,
            dst_flags: 0,
            handshake_rtt_ns: None,
            closed_by: by::NONE,
            reset_by: by::NONE,
            icmp_error: None,
            icmp_errors: 0,
            icmp_error_src: None,
            vlan: String::new(),
            tunnel: String::new(),
            dst_dns_name: None,
            node: "n".into(),
            src_meta: Default::default(),
            dst_meta: Default::default(),
        }
    }

    #[test]
    fn splits_by_hour_rolls_by_size_sorts_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path(), "t");
        config.max_rows_per_file = 3;
        let mut w = StoreWriter::new(config);
        let mut b = ConnectionsBuilder::default();
        // Hour 0: 5 rows, out of order; hour 1: 1 row.
        for s in [30, 10, 3_700, 20, 50, 40] {
            b.append(&row(s));
        }
        w.write(Table::Connections, &b.finish().unwrap()).unwrap();
        let stats = w.finish().unwrap();
        assert_eq!(stats.rows["connections"], 6);
        let h0 = dir.path().join("connections/date=1970-01-01/hour=00");
        let h1 = dir.path().join("connections/date=1970-01-01/hour=01");
        let mut files: Vec<_> =
            std::fs::read_dir(&h0).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        assert_eq!(files.len(), 2, "5 rows at 3 per file: rolled once: {files:?}");
        assert!(files.iter().all(|f| f.extension().unwrap() == "parquet"), "no temp files left");
        assert_eq!(std::fs::read_dir(&h1).unwrap().count(), 1);
        let mut seen = Vec::new();
        for f in files {
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(f).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            for batch in r {
                let ts = crate::event_times(Table::Connections, &batch.unwrap()).unwrap().clone();
                let v: Vec<i64> = ts.values().to_vec();
                assert!(v.windows(2).all(|w| w[0] <= w[1]), "sorted by time: {v:?}");
                seen.extend(v);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![10_000_000, 20_000_000, 30_000_000, 40_000_000, 50_000_000]);
    }

    #[test]
    fn partition_paths_are_utc_hours() {
        assert_eq!(partition_path(0), "date=1970-01-01/hour=00");
        // 2026-11-26T09:00Z
        let t = jiff::Timestamp::from_second(1_795_683_600).unwrap();
        let bucket = t.as_second() / 3600;
        assert_eq!(partition_path(bucket), format!("date={}/hour=09", t.strftime("%Y-%m-%d")));
    }
}
