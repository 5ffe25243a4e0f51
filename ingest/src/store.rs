//! The Parquet store. Layout, readable as a Hive-partitioned dataset by DuckDB, pyarrow, polars
//! and Spark without podwire code:
//!
//! ```text
//! STORE/<table>/date=YYYY-MM-DD/hour=HH/<stem>-<n>.parquet
//! ```
//!
//! Partitions come from each table's event-time column (UTC). Files have their times
//! delta-encoded ([`Table::delta_column`]) and are ZSTD-compressed where it pays
//! ([`Table::zstd_column`]), carry page-level statistics, are sorted by event time then
//! `conn_id` (`Table::sort_columns`, declared in the footer's sorting columns), hold at most
//! `max_rows_per_file` rows, and are written to a hidden temporary name, fsynced and renamed
//! (in a bucket: uploaded whole, see [`crate::location`]): a reader never sees half a file.
//! What is buffered before a write, and the file names, are the segments' business
//! ([`crate::writer`], [`crate::segment`]).
use crate::delta::DataFile;
use crate::error::{Error, Result};
use crate::location::Location;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::buffer::Buffer;
use arrow::compute::{
    SortColumn, SortOptions, concat, interleave_record_batch, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use podwire_schemas::{Table, partition};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

const HOUR_US: i64 = 3_600_000_000;

/// Ascending, nulls last: the order SQL's `ORDER BY col` means, so that a query engine can take
/// the files' order for the query's (`podwire-query` declares it on its tables).
pub const SORT: SortOptions = SortOptions { descending: false, nulls_first: false };

/// Store writer settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The store's root: a folder or a bucket.
    pub location: Location,
    /// Rows per file before it is rolled.
    pub max_rows_per_file: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// ZSTD level.
    pub zstd_level: i32,
    /// Whether files get Bloom filters of their entity columns (`Table::bloom_filtered`): the
    /// files a compaction writes (a closed hour, read for weeks), not ingest's rolls, on which
    /// the hashing cost 15-20 % of ingest's throughput (benchmarks/README.md, query family).
    pub bloom_filters: bool,
}

impl StoreConfig {
    /// Defaults for a store in the folder `root`.
    pub fn new(root: &Path) -> Self {
        Self::at(Location::Local(root.into()))
    }

    /// Defaults for a store at `location`.
    pub fn at(location: Location) -> Self {
        StoreConfig {
            location,
            max_rows_per_file: 1 << 20,
            row_group_rows: 128 * 1024,
            zstd_level: 1,
            bloom_filters: false,
        }
    }
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

impl WriteStats {
    /// Adds what one write wrote.
    pub fn add(&mut self, table: Table, w: &Written) {
        *self.files.entry(table.name()).or_default() += u64::from(w.files);
        *self.rows.entry(table.name()).or_default() += w.rows;
        self.bytes += w.bytes;
    }
}

/// What [`write_sorted`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// Files.
    pub files: u32,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// The files, for the table's Delta log.
    pub data: Vec<DataFile>,
}

impl Written {
    /// Adds what another write wrote.
    pub fn extend(&mut self, other: Written) {
        self.files += other.files;
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.data.extend(other.data);
    }
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
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    let Some(schema) = batches.first().map(RecordBatch::schema) else { return Ok(written) };
    let mut sort_idx = Vec::new();
    for name in table.sort_columns() {
        sort_idx.push(schema.index_of(name)?);
    }
    // Only the sort keys are concatenated; every row then moves once, from its batch straight
    // to its sorted place (concatenating all columns first cost a second copy of the hour).
    let keys = sort_idx
        .iter()
        .map(|&i| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            Ok(SortColumn { values: concat(&parts)?, options: Some(SORT) })
        })
        .collect::<Result<Vec<_>>>()?;
    let order = lexsort_to_indices(&keys, None)?;
    drop(keys);
    let sorted = Gather::new(&batches, &order);
    // Files of at most `max_rows_per_file` rows, in the table's sort order.
    let per_file = config.max_rows_per_file.max(1);
    let mut offset = 0;
    while offset < sorted.len() {
        let len = per_file.min(sorted.len() - offset);
        let name = format!("{stem}-{:05}.parquet", first + written.files);
        let chunks = (offset..offset + len)
            .step_by(GATHER_ROWS)
            .map(|at| sorted.rows(at..(at + GATHER_ROWS).min(offset + len)));
        let (bytes, md) = write_file(config, table, hour, &name, &sort_idx, &schema, chunks)?;
        let path = format!("{}/{name}", partition::folder(hour));
        written.data.push(DataFile::new(table, path, bytes, &md)?);
        written.bytes += bytes;
        written.files += 1;
        written.rows += len as u64;
        offset += len;
    }
    Ok(written)
}

/// Rows moved into sorted order per step: the writer takes the sorted hour in pieces of this
/// many rows, so it is never built whole. (Building it whole touched a second hour's worth of
/// fresh memory: 1,700 of `podwire standalone`'s 15,500 page faults on `mix-large.pcap`.)
const GATHER_ROWS: usize = 8192;

/// The rows of some batches in a given order (numbered as if the batches were concatenated),
/// taken out a range at a time: every row moves once, from its batch to its sorted place.
struct Gather<'a> {
    batches: Vec<&'a RecordBatch>,
    /// (batch, row) of each output row.
    at: Vec<(usize, usize)>,
}

impl<'a> Gather<'a> {
    fn new(batches: &'a [RecordBatch], order: &UInt32Array) -> Self {
        // Where each batch starts in the concatenated numbering.
        let mut starts = Vec::with_capacity(batches.len());
        let mut next = 0usize;
        for b in batches {
            starts.push(next);
            next += b.num_rows();
        }
        let at = order
            .values()
            .iter()
            .map(|&row| {
                let row = row as usize;
                let b = starts.partition_point(|&s| s <= row) - 1;
                (b, row - starts[b])
            })
            .collect();
        Gather { batches: batches.iter().collect(), at }
    }

    fn len(&self) -> usize {
        self.at.len()
    }

    /// Output rows `range`, as one batch, string columns anchored ([`anchor_empty_strings`]).
    ///
    /// # Errors
    /// When the batches' schemas differ.
    fn rows(&self, range: std::ops::Range<usize>) -> Result<RecordBatch> {
        anchor_empty_strings(interleave_record_batch(&self.batches, &self.at[range])?)
    }
}

/// Gives every string column whose values are all empty a real (if unused) values buffer.
///
/// An Arrow string array of only `''` owns no value bytes, and its values pointer is a dangling
/// address. The Parquet writer compares every value with the dictionary and with the column's
/// min/max (`memcmp`), and glibc's AVX-512 `memcmp` of zero bytes at an unmapped address takes
/// a fault-suppression assist: 100 ns instead of 2 (measured here). Enrichment columns are all
/// `''` wherever nothing is known (a capture without an inventory), so this was a third of
/// `podwire standalone`'s time on `mix-large.pcap` (`benchmarks/README.md`).
///
/// # Errors
/// Never in practice: the new arrays keep the old offsets and nulls.
pub fn anchor_empty_strings(batch: RecordBatch) -> Result<RecordBatch> {
    let anchor = Buffer::from(vec![0u8; 64]);
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.as_string_opt::<i32>() {
            Some(s) if s.values().is_empty() => {
                let anchored =
                    StringArray::try_new(s.offsets().clone(), anchor.clone(), s.nulls().cloned())?;
                Ok(Arc::new(anchored) as ArrayRef)
            }
            _ => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Writes one file (locally: [`write_local`]; in a bucket: one upload). Returns its size and
/// metadata.
fn write_file(
    config: &StoreConfig,
    table: Table,
    hour: i64,
    name: &str,
    sort_idx: &[usize],
    schema: &SchemaRef,
    chunks: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<(u64, ParquetMetaData)> {
    let props = file_properties(config, table, schema, sort_idx);
    // The hour partition's folder, relative to the root.
    let dir = format!("{}/{}", table.name(), partition::folder(hour));
    match &config.location {
        Location::Local(root) => write_local(&root.join(&dir), name, props, schema, chunks),
        Location::Bucket(bucket) => {
            let mut writer = ArrowWriter::try_new(Vec::new(), Arc::clone(schema), Some(props))?;
            for rows in chunks {
                writer.write(&rows?)?;
            }
            let md = writer.finish()?;
            let bytes = std::mem::take(writer.inner_mut());
            let len = bytes.len() as u64;
            bucket.put(&format!("{dir}/{name}"), bytes)?;
            Ok((len, md))
        }
    }
}

/// The false-positive rate of the store's Bloom filters (`Table::bloom_filtered`): a lookup of
/// a value in none of 336 hourly files still reads about 3 of them. The writer sizes each filter
/// for a full row group and folds it to this rate for the values it saw, so an hour of a few
/// thousand pods costs a few KB a column.
const BLOOM_FPP: f64 = 0.01;

/// The Parquet settings of a store file.
fn file_properties(
    config: &StoreConfig,
    table: Table,
    schema: &arrow::datatypes::Schema,
    sort_idx: &[usize],
) -> WriterProperties {
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
        if !table.zstd_column(field) {
            props = props.set_column_compression(
                ColumnPath::from(field.name().as_str()),
                Compression::UNCOMPRESSED,
            );
        }
        if table.delta_column(field) {
            props = props.set_column_encoding(
                ColumnPath::from(field.name().as_str()),
                Encoding::DELTA_BINARY_PACKED,
            );
        }
        // Unique-per-row columns (times, ids, counters) gain nothing from a dictionary.
        if matches!(field.data_type(), DataType::Int64 | DataType::Timestamp(..)) {
            props =
                props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
        if config.bloom_filters && table.bloom_filtered(field) {
            let path = ColumnPath::from(field.name().as_str());
            props = props
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path, BLOOM_FPP);
        }
        // Min/max of every string column costs more than the rest of the write.
        if !table.keeps_statistics(field) {
            props = props.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::None,
            );
        }
    }
    props.build()
}

/// A Parquet error that is a failed write of `path` (a full disk, a lost mount) is
/// [`Error::Io`], which the roll retries; any other is [`Error::Parquet`].
fn io_of_parquet(path: &Path, e: parquet::errors::ParquetError) -> Error {
    use parquet::errors::ParquetError;
    match e {
        ParquetError::External(b) => match b.downcast::<std::io::Error>() {
            Ok(source) => Error::Io { path: path.into(), source: *source },
            Err(b) => Error::Parquet(ParquetError::External(b)),
        },
        e => Error::Parquet(e),
    }
}

/// A local file: a hidden temporary name, fsync, rename, fsync of the folder.
fn write_local(
    dir: &Path,
    name: &str,
    props: WriterProperties,
    schema: &SchemaRef,
    chunks: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<(u64, ParquetMetaData)> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |source| Error::Io { path: tmp.clone(), source };
    let file = File::create(&tmp).map_err(io)?;
    let result = (|| -> Result<(u64, ParquetMetaData)> {
        let parquet = |e| io_of_parquet(&tmp, e);
        let mut writer =
            ArrowWriter::try_new(file, Arc::clone(schema), Some(props)).map_err(parquet)?;
        for rows in chunks {
            writer.write(&rows?).map_err(parquet)?;
        }
        let md = writer.finish().map_err(parquet)?;
        let file = writer.inner();
        file.sync_all().map_err(io)?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(writer);
        std::fs::rename(&tmp, &path).map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok((bytes, md))
    })();
    if result.is_err() {
        // A failed write leaves no partial temporary file behind (a full disk stays usable).
        let _ = std::fs::remove_file(&tmp);
    }
    let written = result?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_parquet_write_is_io_and_retried_other_parquet_errors_are_not() {
        use parquet::errors::ParquetError;
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        let e = io_of_parquet(Path::new("/s/x.tmp"), ParquetError::External(Box::new(full)));
        assert!(matches!(&e, Error::Io { path, .. } if path == Path::new("/s/x.tmp")), "{e:?}");
        assert!(e.is_retryable());
        let e = io_of_parquet(Path::new("/s/x.tmp"), ParquetError::General("bad".into()));
        assert!(matches!(e, Error::Parquet(_)) && !e.is_retryable());
    }
    #[test]
    fn all_empty_string_columns_get_a_values_buffer() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("empty", DataType::Utf8, true),
            Field::new("names", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let empty = StringArray::from(vec![Some(""), None, Some("")]);
        let names = StringArray::from(vec!["a", "", "bc"]);
        assert!(empty.values().is_empty());
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(empty), Arc::new(names), Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let anchored = anchor_empty_strings(batch.clone()).unwrap();
        // The same values and nulls, now over a real allocation.
        assert_eq!(anchored, batch);
        let col = anchored.column(0).as_string::<i32>();
        assert!(!col.values().is_empty());
        assert_eq!(col.null_count(), 1);
        // Columns with value bytes are the same arrays, not copies.
        assert!(Arc::ptr_eq(anchored.column(1), batch.column(1)));
    }

    #[test]
    fn gather_moves_rows_across_batches_like_concat_and_take() {
        use arrow::array::Int64Array;
        use arrow::compute::concat_batches;
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = |s: Vec<Option<&str>>, n: Vec<i64>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(StringArray::from(s)), Arc::new(Int64Array::from(n))],
            )
            .unwrap()
        };
        let batches = vec![
            batch(vec![Some("a"), None], vec![1, 2]),
            batch(vec![Some("bb")], vec![3]),
            batch(vec![Some(""), Some("ccc"), Some("d")], vec![4, 5, 6]),
        ];
        let order = UInt32Array::from(vec![5, 0, 3, 2, 1, 4]);
        let expected =
            take_record_batch(&concat_batches(&schema, &batches).unwrap(), &order).unwrap();
        let sorted = Gather::new(&batches, &order);
        assert_eq!(sorted.rows(0..6).unwrap(), expected);
        assert_eq!(sorted.rows(2..5).unwrap(), expected.slice(2, 3), "a range is that slice");
        assert_eq!(
            expected.column(1).as_primitive::<arrow::datatypes::Int64Type>().values(),
            &[6, 1, 4, 3, 2, 5]
        );
        // One batch: a plain take.
        let one = &batches[2..];
        let order = UInt32Array::from(vec![2, 0, 1]);
        let sorted = Gather::new(one, &order);
        assert_eq!(sorted.rows(0..3).unwrap(), take_record_batch(&one[0], &order).unwrap());
    }
}
