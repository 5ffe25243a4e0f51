//! Repeating strings are read as dictionaries (`podwire_query::dictionary`): every scan of the
//! store gets the dictionary reader, results are the same rows as reading every string as
//! `Utf8View`, and clients still see `Utf8View`. One file lacks a column, as a file written
//! before that column existed would.
use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::ParquetSource;
use datafusion::datasource::source::DataSourceExec;
use podwire_query::{QueryRequest, Store, StoreOptions};
use podwire_schemas::Table;
use std::sync::Arc;

/// 2026-11-26T09:00:00Z in microseconds.
const H9_US: i64 = 1_795_683_600_000_000;

/// A batch of `n` rows of `schema`: strings from `text(column, row)`, times a second apart,
/// counters the row number, nullable columns null.
fn batch(schema: &Arc<Schema>, n: usize, text: impl Fn(&str, usize) -> String) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            if f.is_nullable() {
                return new_null_array(f.data_type(), n);
            }
            let rows = 0..n;
            match f.data_type() {
                DataType::Utf8 => {
                    Arc::new(StringArray::from_iter_values(rows.map(|i| text(f.name(), i))))
                }
                DataType::Int64 => Arc::new(Int64Array::from_iter_values(rows.map(|i| i as i64))),
                DataType::Int32 => Arc::new(Int32Array::from_iter_values(rows.map(|i| i as i32))),
                DataType::Boolean => Arc::new(BooleanArray::from(vec![true; n])),
                DataType::Timestamp(TimeUnit::Microsecond, tz) => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        rows.map(|i| H9_US + i as i64 * 1_000_000),
                    )
                    .with_timezone_opt(tz.clone()),
                ),
                other => panic!("no test values for {other}"),
            }
        })
        .collect();
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

fn write(path: &std::path::Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn text(column: &str, row: usize) -> String {
    let namespaces = ["shop", "pay", "shop", ""];
    match column {
        "protocol" => "tcp".into(),
        "outcome" => ["closed", "refused"][row % 2].into(),
        "src_namespace" => namespaces[row % 4].into(),
        "dst_namespace" => namespaces[(row / 2) % 4].into(),
        "src_name" | "dst_name" => format!("{}-{}", &column[..3], row % 5),
        c if c.ends_with("_ip") => format!("10.0.{}.{}", row / 250, row % 250),
        _ => String::new(),
    }
}

fn store_with_two_files() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let hour = root.path().join("connections/date=2026-11-26/hour=09");
    write(&hour.join("new.parquet"), &batch(&Table::Connections.schema(), 600, text));
    // An older file: no `dst_workload_kind` column.
    let full = Table::Connections.schema();
    let older = Arc::new(Schema::new(
        full.fields()
            .iter()
            .filter(|f| f.name() != "dst_workload_kind")
            .cloned()
            .collect::<Vec<_>>(),
    ));
    write(&hour.join("old.parquet"), &batch(&older, 40, text));
    root
}

async fn rows(store: &Store, kfl: &str) -> (Vec<String>, Arc<Schema>) {
    let request = QueryRequest { kfl, from_ms: None, to_ms: None, limit: None, now_ms: 0 };
    let df = store.kfl(&request).await.unwrap();
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    (text.lines().map(str::to_owned).collect(), schema)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dictionary_reads_give_the_rows_and_types_of_view_reads() {
    let root = store_with_two_files();
    let dictionaries = Store::open(root.path()).unwrap();
    let views = Store::open_with(
        root.path(),
        StoreOptions { strings_as_views: true, ..StoreOptions::default() },
    )
    .unwrap();
    let filters = [
        r#"src.namespace == "shop""#,
        r#"src.namespace == "shop" and dst.namespace == "pay""#,
        r#"dst.namespace == """#,
        r#"dst.name.startsWith("dst-1") or src.name.endsWith("-4")"#,
        r#"src.name.contains("c-3") and outcome != "closed""#,
        r#"dst.name == r"dst-[12]""#,
        r#"dst.pod.metadata.name == "" and src.ip == "10.0.0.7""#,
        "dns or tcp",
        "",
    ];
    for kfl in filters {
        let (v, v_schema) = rows(&views, kfl).await;
        let (d, d_schema) = rows(&dictionaries, kfl).await;
        assert!(d.len() > 4, "{kfl}: expected rows, got {d:?}");
        assert_eq!(d, v, "{kfl}");
        assert_eq!(d_schema.fields(), v_schema.fields(), "{kfl}");
        for f in d_schema.fields() {
            assert!(!matches!(f.data_type(), DataType::Dictionary(..)), "{kfl}: {f}");
        }
    }
    // 600 + 40 rows, half of each file from namespace "shop" on the src side.
    let (all, _) = rows(&dictionaries, r#"src.namespace == "shop""#).await;
    assert_eq!(all.len(), 4 + 300 + 20, "header, rows, footer");

    // SQL groups by a dictionary column and returns it as `Utf8View`.
    let sql = "SELECT src_namespace, count(*) AS n FROM connections GROUP BY 1 ORDER BY 1";
    let df = dictionaries.sql(sql, None).await.unwrap();
    assert_eq!(df.schema().field(0).data_type(), &DataType::Utf8View);
    let text = arrow::util::pretty::pretty_format_batches(&df.collect().await.unwrap())
        .unwrap()
        .to_string();
    let expected = arrow::util::pretty::pretty_format_batches(
        &views.sql(sql, None).await.unwrap().collect().await.unwrap(),
    )
    .unwrap()
    .to_string();
    assert_eq!(text, expected);
    assert!(text.contains("| shop          | 320 |"), "{text}");
}

/// The reader factories of every Parquet scan in the plan of `kfl`, as their debug names.
async fn factories(store: &Store, kfl: &str) -> Vec<String> {
    let request = QueryRequest { kfl, from_ms: None, to_ms: None, limit: None, now_ms: 0 };
    let plan = store.kfl(&request).await.unwrap().create_physical_plan().await.unwrap();
    let mut found = Vec::new();
    plan.apply(|node| {
        if let Some(exec) = node.downcast_ref::<DataSourceExec>()
            && let Some((_, source)) = exec.downcast_to_file_source::<ParquetSource>()
        {
            let name = format!("{:?}", source.parquet_file_reader_factory());
            found.push(name.split(['(', ' ', '{']).nth(1).unwrap_or_default().to_owned());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scan_reads_through_the_dictionary_reader() {
    let root = store_with_two_files();
    let store = Store::open(root.path()).unwrap();
    for kfl in [r#"src.namespace == "shop""#, "dns or tcp"] {
        let found = factories(&store, kfl).await;
        assert!(!found.is_empty(), "{kfl}: no Parquet scan");
        assert!(found.iter().all(|f| f == "DictionaryReaderFactory"), "{kfl}: {found:?}");
    }
    let views = Store::open_with(
        root.path(),
        StoreOptions { strings_as_views: true, ..Default::default() },
    )
    .unwrap();
    let found = factories(&views, "tcp").await;
    assert!(found.iter().all(|f| f != "DictionaryReaderFactory"), "{found:?}");
}
