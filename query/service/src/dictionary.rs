//! Repeating strings read as Arrow dictionaries, straight from the Parquet dictionary pages.
//!
//! The store writes names, namespaces, pods, outcomes, … dictionary-encoded
//! ([`podwire_schemas::Table::dictionary_column`]). Read as `Utf8View`, every row of every such
//! column becomes a 16-byte view built from the page's dictionary, and a filter compares and
//! copies those views row by row: 12 % and 7.5 % of a two-namespace query over 10 M rows
//! (benchmarks/README.md). Read as `Dictionary(Int32, Utf8)`, the reader hands over the page's
//! dictionary and 4-byte keys, a filter compares each distinct value once, and the rows that
//! pass are moved as keys.
//!
//! The table schemas declare those columns as dictionaries ([`crate::catalog::read_schema`]).
//! The Parquet reader builds a dictionary column only when the file's Arrow schema (its
//! `ARROW:schema` footer entry) says so, and the store's files say `Utf8`: so
//! [`DictionaryReads`], a physical optimizer rule, gives every Parquet scan a reader factory
//! whose footers declare, for that file's columns, the types the scan wants. A file without
//! such a column, or written before it existed, is read as it is, and DataFusion casts.
//! Results show every string as `Utf8View` again ([`strings_as_views`]), so clients of the
//! API see the same types whatever the store reads.
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::{Expr, cast};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ARROW_SCHEMA_META_KEY, encode_arrow_schema, parquet_to_arrow_schema};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataBuilder};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

/// The type of a dictionary column as the query service reads it.
pub fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The physical optimizer rule that makes Parquet scans read their dictionary columns as
/// dictionaries (module docs). Runs after DataFusion's own rules; changes only how files are
/// read, never a plan's shape or schema.
#[derive(Debug, Default)]
pub struct DictionaryReads;

impl PhysicalOptimizerRule for DictionaryReads {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some((config, source)) = exec.downcast_to_file_source::<ParquetSource>() else {
                return Ok(Transformed::no(node));
            };
            let columns: HashSet<String> = config
                .file_schema()
                .fields()
                .iter()
                .filter(|f| f.data_type() == &dictionary_type())
                .map(|f| f.name().clone())
                .collect();
            // ParquetFormat always sets its (caching) factory; without one there is nothing
            // to wrap, and the scan reads strings and casts, as it would without this rule.
            let Some(inner) = source.parquet_file_reader_factory() else {
                return Ok(Transformed::no(node));
            };
            if columns.is_empty() || format!("{inner:?}").starts_with("DictionaryReaderFactory") {
                return Ok(Transformed::no(node));
            }
            let factory =
                DictionaryReaderFactory { inner: Arc::clone(inner), columns: Arc::new(columns) };
            let source = source.clone().with_parquet_file_reader_factory(Arc::new(factory));
            let config: FileScanConfig =
                FileScanConfigBuilder::from(config.clone()).with_source(Arc::new(source)).build();
            let exec = exec.clone().with_data_source(Arc::new(config));
            Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "podwire_dictionary_reads"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Wraps a scan's reader factory: its readers' footers declare `columns` as dictionaries.
#[derive(Debug)]
struct DictionaryReaderFactory {
    inner: Arc<dyn ParquetFileReaderFactory>,
    columns: Arc<HashSet<String>>,
}

impl ParquetFileReaderFactory for DictionaryReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::error::Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(DictionaryReader { inner, columns: Arc::clone(&self.columns) }))
    }
}

struct DictionaryReader {
    inner: Box<dyn AsyncFileReader + Send>,
    columns: Arc<HashSet<String>>,
}

impl AsyncFileReader for DictionaryReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let columns = Arc::clone(&self.columns);
        let metadata = self.inner.get_metadata(options);
        async move { declare_dictionaries(metadata.await?, &columns) }.boxed()
    }
}

/// `metadata` with its Arrow schema declaring the `Utf8` columns named in `columns` as
/// [`dictionary_type`]; the same metadata when it has none of them.
///
/// # Errors
/// The Parquet reader's own, when the file's schema cannot be read as Arrow.
pub fn declare_dictionaries(
    metadata: Arc<ParquetMetaData>,
    columns: &HashSet<String>,
) -> parquet::errors::Result<Arc<ParquetMetaData>> {
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type() == &DataType::Utf8 && columns.contains(f.name()) {
                changed = true;
                f.as_ref().clone().with_data_type(dictionary_type())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    if !changed {
        return Ok(metadata);
    }
    let hint = encode_arrow_schema(&Schema::new_with_metadata(fields, schema.metadata().clone()));
    let mut key_values: Vec<KeyValue> = file
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter(|kv| kv.key != ARROW_SCHEMA_META_KEY)
        .cloned()
        .collect();
    key_values.push(KeyValue::new(ARROW_SCHEMA_META_KEY.to_owned(), hint));
    let file = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_owned),
        Some(key_values),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    Ok(Arc::new(
        ParquetMetaDataBuilder::new(file)
            .set_row_groups(metadata.row_groups().to_vec())
            .set_column_index(metadata.column_index().cloned())
            .set_offset_index(metadata.offset_index().cloned())
            .build(),
    ))
}

/// `df` with its dictionary columns cast to `Utf8View`, the type results carry for every
/// string; `df` itself when it has none. Only the result rows are cast.
///
/// # Errors
/// DataFusion's, if the projection cannot be planned.
pub fn strings_as_views(df: DataFrame) -> datafusion::error::Result<DataFrame> {
    let dictionary = |t: &DataType| matches!(t, DataType::Dictionary(..));
    if !df.schema().fields().iter().any(|f| dictionary(f.data_type())) {
        return Ok(df);
    }
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column =
                Expr::Column(datafusion::common::Column::new(qualifier.cloned(), field.name()));
            if dictionary(field.data_type()) {
                cast(column, DataType::Utf8View).alias(field.name())
            } else {
                column
            }
        })
        .collect();
    df.select(exprs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::reader::{FileReader as _, SerializedFileReader};

    fn written() -> Bytes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ns", DataType::Utf8, false),
            Field::new("ip", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a", "b", "a", "a"])),
            Arc::new(StringArray::from(vec!["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])),
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn declared_columns_read_as_dictionaries_and_the_rest_as_written() {
        let file = written();
        let metadata =
            Arc::new(SerializedFileReader::new(file.clone()).unwrap().metadata().clone());
        let columns: HashSet<String> = ["ns".to_owned(), "n".to_owned()].into();
        let declared = declare_dictionaries(Arc::clone(&metadata), &columns).unwrap();
        let reader = parquet::arrow::arrow_reader::ArrowReaderMetadata::try_new(
            declared,
            ArrowReaderOptions::new(),
        )
        .unwrap();
        // `n` is not a string: only `ns` changes.
        let types: Vec<DataType> =
            reader.schema().fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(types, vec![dictionary_type(), DataType::Utf8, DataType::Int64]);
        let batch =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::new_with_metadata(
                file, reader,
            )
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let ns = arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
        let ns = ns.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(ns.iter().flatten().collect::<Vec<_>>(), ["a", "b", "a", "a"]);
        // A file without the columns keeps its metadata as it is.
        let none: HashSet<String> = ["other".to_owned()].into();
        assert!(Arc::ptr_eq(
            &declare_dictionaries(Arc::clone(&metadata), &none).unwrap(),
            &metadata
        ));
    }
}
