//! The store's tables in a DataFusion `SessionContext`.
//!
//! Every [`Table`] of the store is a `ListingTable` over `STORE/<table>/`, with the Hive partition
//! columns `date` (`YYYY-MM-DD`) and `hour` (`HH`), both `Utf8` as written in the folder names, so
//! they compare as text in time order. The schema is the table's schema from `podwire-schemas`,
//! never inferred: a table with no files (or no folder) yet is queryable and empty, and files
//! written before a column existed read it as null. The listing runs on every scan, so files
//! written after the session started are seen by the next query. A table with a Delta log is
//! listed from its snapshot ([`crate::delta`]). Files are declared sorted by
//! [`Table::sort_columns`], the order of KFL results.
use crate::delta::{AsOf, DeltaListing};
use crate::error::{Error, Result};
use arrow::datatypes::{DataType, Schema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::cache::cache_manager::FileStatisticsCache;
use datafusion::logical_expr::SortExpr;
use datafusion::prelude::{SessionContext, col};
use podwire_schemas::Table;
use std::path::Path;
use std::sync::Arc;

pub use podwire_schemas::partition::{DATE, HOUR};

/// Registers every table of the store at `root` in `ctx`, under its name. `root` is a folder, or
/// `s3://bucket/prefix` (an S3-compatible bucket configured from the `AWS_*` environment
/// variables, registered with the session's object stores). Tables with a Delta log are read at
/// their newest snapshot, or `as_of` an older one. `sorted`: the files are in the tables' sort
/// order, as the store writer writes them (`false` only for experiments on rewritten stores).
///
/// # Errors
/// [`Error::Store`] when the path cannot be made absolute or into a URL, or the bucket's client
/// cannot be built.
pub fn register_store(
    ctx: &SessionContext,
    root: &Path,
    as_of: Option<AsOf>,
    sorted: bool,
) -> Result<()> {
    let base = store_url(ctx, root, as_of)?;
    // Each file's statistics (row count, min/max per column), which planning reads to chain
    // files into time-ordered groups, are kept in the session's cache (keyed by path, size and
    // modification time: store files are immutable) instead of being rebuilt from every file's
    // footer for every query: that was 7 % of a 0.2 s query's CPU over the 336 files of 14 days.
    let statistics = ctx.runtime_env().cache_manager.get_file_statistic_cache();
    for table in Table::ALL {
        ctx.register_table(
            table.name(),
            listing_table(root, &base, table, statistics.clone(), sorted)?,
        )
        .map_err(|e| store_error(root, e.to_string()))?;
    }
    Ok(())
}

/// Whether `root` names a bucket (`s3://…`) rather than a folder.
pub fn is_bucket(root: &Path) -> bool {
    root.to_str().is_some_and(|r| r.starts_with("s3://"))
}

/// The store's root as a directory URL (trailing `/`); a bucket's client is registered in `ctx`.
fn store_url(ctx: &SessionContext, root: &Path, as_of: Option<AsOf>) -> Result<url::Url> {
    if let Some(text) = root.to_str().filter(|_| is_bucket(root)) {
        let mut url = url::Url::parse(text).map_err(|e| store_error(root, e.to_string()))?;
        let bucket = url.host_str().unwrap_or_default().to_string();
        if bucket.is_empty() {
            return Err(store_error(root, "no bucket name (s3://BUCKET/PREFIX)".into()));
        }
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .build()
            .map_err(|e| {
                store_error(
                    root,
                    format!(
                        "{e}; set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and \
                         AWS_ENDPOINT (with AWS_ALLOW_HTTP=true for plain http) for S3-compatible servers"
                    ),
                )
            })?;
        let bucket_url = url::Url::parse(&format!("s3://{bucket}"))
            .map_err(|e| store_error(root, e.to_string()))?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let prefix = object_store::path::Path::from(url.path().trim_matches('/'));
        let listing = DeltaListing::new(Arc::new(s3), prefix, url.clone()).as_of(as_of);
        ctx.runtime_env().register_object_store(&bucket_url, Arc::new(listing));
        return Ok(url);
    }
    let dir = std::path::absolute(root).map_err(|e| store_error(root, e.to_string()))?;
    // Local files are read through memory mappings, not copied (`crate::local` says why).
    let files = url::Url::parse("file://").map_err(|e| store_error(root, e.to_string()))?;
    // Built from the path, not parsed from text, so that a folder name with `*` or `[` is not
    // taken for a glob; a directory URL (trailing `/`) lists even before the folder exists.
    let url = url::Url::from_directory_path(&dir)
        .map_err(|()| store_error(root, "not an absolute path".into()))?;
    let prefix = object_store::path::Path::from_absolute_path(&dir)
        .map_err(|e| store_error(root, e.to_string()))?;
    let listing =
        DeltaListing::new(Arc::new(crate::local::MappedFiles::new()), prefix, url.clone())
            .as_of(as_of);
    ctx.runtime_env().register_object_store(&files, Arc::new(listing));
    Ok(url)
}

/// The listing table of one table of the store whose root URL is `base`, keeping its files'
/// statistics in `statistics` (the session's cache) when given; its files' order is declared
/// when `sorted`.
///
/// # Errors
/// [`Error::Store`] when the table's URL cannot be made.
pub fn listing_table(
    root: &Path,
    base: &url::Url,
    table: Table,
    statistics: Option<Arc<FileStatisticsCache>>,
    sorted: bool,
) -> Result<Arc<ListingTable>> {
    let url =
        base.join(&format!("{}/", table.name())).map_err(|e| store_error(root, e.to_string()))?;
    let url = ListingTableUrl::try_new(url, None).map_err(|e| store_error(root, e.to_string()))?;
    // Every file is sorted by the table's sort columns (the store writer's contract). Declared,
    // it lets a KFL query (`ORDER BY` the same columns) merge files that do not overlap instead
    // of sorting every row: DataFusion checks each file group's min/max statistics before it
    // relies on the order, so files that overlap (or lack statistics) are sorted as usual.
    let order: Vec<SortExpr> =
        table.sort_columns().iter().map(|c| col(*c).sort(true, false)).collect();
    // A file's first read is its last N bytes, hoping for the footer and page index in one go.
    // Store files end in 10-15 KB of them; the default of 512 KiB read two thirds of an hour's
    // file, then its columns again. A longer footer costs one more read, not an error.
    let format = ParquetFormat::default().with_metadata_size_hint(Some(64 * 1024));
    let options = ListingOptions::new(Arc::new(format))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_columns())
        .with_file_sort_order(if sorted { vec![order] } else { Vec::new() });
    let schema = Arc::new(read_schema(table));
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
    let provider = ListingTable::try_new(config).map_err(|e| store_error(root, e.to_string()))?;
    Ok(Arc::new(provider.with_cache(statistics)))
}

/// The schema DataFusion reads `table` with, without metadata (it only documents the files).
///
/// Strings are `Utf8View` (also inside lists): the Parquet reader then points into its decoded
/// pages (and dictionary) instead of copying every value into a new buffer; over 10 M rows this
/// halved a filter's run time (benchmarks/README.md). Results therefore carry `Utf8View`
/// columns (Arrow's `string_view`). Every column is nullable: a file written before a column
/// existed reads it as null.
pub fn read_schema(table: Table) -> Schema {
    fn view(t: &DataType) -> DataType {
        match t {
            DataType::Utf8 => DataType::Utf8View,
            DataType::List(f) => {
                DataType::List(Arc::new(f.as_ref().clone().with_data_type(view(f.data_type()))))
            }
            other => other.clone(),
        }
    }
    let schema = table.schema();
    let fields = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(view(f.data_type())).with_nullable(true));
    Schema::new(fields.collect::<Vec<_>>())
}

/// The Hive partition columns of every table.
pub fn partition_columns() -> Vec<(String, DataType)> {
    vec![(DATE.to_owned(), DataType::Utf8), (HOUR.to_owned(), DataType::Utf8)]
}

fn store_error(root: &Path, reason: String) -> Error {
    Error::Store { path: root.display().to_string(), reason }
}
