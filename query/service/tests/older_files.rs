//! A file written before a column existed (here: without `dst_workload_kind`) is read beside
//! newer files: the missing column reads as null, every filter still runs, and string columns
//! come back as `Utf8View`.
use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use podwire_query::{QueryRequest, Store};
use podwire_schemas::Table;
use podwire_schemas::endpoint::Side;
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
    use podwire_schemas::connections::col;
    let namespaces = ["shop", "pay", "shop", ""];
    let side = |side: Side| column.strip_prefix(side.prefix());
    match (side(Side::Src), side(Side::Dst)) {
        (Some("namespace"), _) => return namespaces[row % 4].into(),
        (_, Some("namespace")) => return namespaces[(row / 2) % 4].into(),
        (Some("name"), _) | (_, Some("name")) => return format!("{}-{}", &column[..3], row % 5),
        _ => {}
    }
    match column {
        col::PROTOCOL => "tcp".into(),
        col::OUTCOME => ["closed", "refused"][row % 2].into(),
        col::SRC_IP | col::DST_IP => format!("10.0.{}.{}", row / 250, row % 250),
        _ => String::new(),
    }
}

fn store_with_two_files() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let hour = root.path().join("connections/date=2026-11-26/hour=09");
    write(&hour.join("new.parquet"), &batch(&Table::Connections.schema(), 600, text));
    // An older file: no `dst_workload_kind` column.
    let missing = Side::Dst.column("workload_kind");
    let full = Table::Connections.schema();
    let older = Arc::new(Schema::new(
        full.fields().iter().filter(|f| f.name() != &missing).cloned().collect::<Vec<_>>(),
    ));
    write(&hour.join("old.parquet"), &batch(&older, 40, text));
    root
}

async fn rows(store: &Store, kfl: &str) -> (usize, Arc<Schema>) {
    let request = QueryRequest::new(kfl);
    let df = store.kfl(&request).await.unwrap_or_else(|e| panic!("{kfl}: {e}"));
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.unwrap_or_else(|e| panic!("{kfl}: {e}"));
    (batches.iter().map(RecordBatch::num_rows).sum(), schema)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_a_column_reads_it_as_null() {
    let root = store_with_two_files();
    let store = Store::open(root.path()).unwrap();
    // (filter, rows): 600 rows in the new file, 40 in the old; "shop" is half of each file's
    // src namespaces, and src "shop" with dst "pay" an eighth.
    let cases = [
        ("", 640),
        ("tcp", 640),
        ("dns or tcp", 640),
        (r#"src.namespace == "shop""#, 320),
        (r#"src.namespace == "shop" and dst.namespace == "pay""#, 75 + 5),
        (r#"dst.name.startsWith("dst-1")"#, 120 + 8),
        (r#"outcome == "refused""#, 320),
    ];
    for (kfl, expected) in cases {
        let (n, schema) = rows(&store, kfl).await;
        assert_eq!(n, expected, "{kfl}");
        for name in ["src_namespace", "dst_workload_kind"] {
            let field = schema.field_with_name(name).unwrap();
            assert_eq!(field.data_type(), &DataType::Utf8View, "{kfl}: {name}");
        }
    }
    let count = |sql: &'static str| {
        let store = store.clone();
        async move {
            let batches = store.sql(sql, None).await.unwrap().collect().await.unwrap();
            batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)
        }
    };
    let nulls = "SELECT count(*) FROM connections WHERE dst_workload_kind IS NULL";
    assert_eq!(count(nulls).await, 40);
    let empty = "SELECT count(*) FROM connections WHERE dst_workload_kind = ''";
    assert_eq!(count(empty).await, 600);
}
