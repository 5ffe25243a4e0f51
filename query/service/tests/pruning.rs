//! Time-range pruning skips whole hour folders: a folder outside the range is never opened, so
//! a corrupt file there does not matter; without the range it is read and the query fails.
use podwire_query::{QueryRequest, Store};
use podwire_schemas::Table;

/// 2026-11-26T09:00:00Z.
const H9: i64 = 1_795_683_600_000;

fn write_empty_file(dir: &std::path::Path, table: Table) {
    std::fs::create_dir_all(dir).unwrap();
    let file = std::fs::File::create(dir.join("a.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, table.schema(), None).unwrap();
    w.write(&arrow::array::RecordBatch::new_empty(table.schema())).unwrap();
    w.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_outside_the_range_are_not_read() {
    let root = tempfile::tempdir().unwrap();
    for table in [Table::Connections, Table::Dns] {
        let base = root.path().join(table.name());
        write_empty_file(&base.join("date=2026-11-26/hour=09"), table);
        for bad in ["date=2026-11-26/hour=10", "date=2026-11-25/hour=23", "date=2026-11-27/hour=00"]
        {
            std::fs::create_dir_all(base.join(bad)).unwrap();
            std::fs::write(base.join(bad).join("bad.parquet"), b"not parquet").unwrap();
        }
    }
    let store = Store::open(root.path()).unwrap();
    let run = |kfl: &str, from_ms, to_ms| {
        let kfl = kfl.to_owned();
        let store = store.clone();
        async move {
            let request = QueryRequest {
                kfl: &kfl,
                from_ms,
                to_ms,
                limit: None,
                now_ms: H9,
                dialect: podwire_kfl::Dialect::Kfl1,
                extra: "",
            };
            let df = store.kfl(&request).await?;
            let batches = df.collect().await?;
            Ok::<usize, podwire_query::Error>(batches.iter().map(|b| b.num_rows()).sum())
        }
    };
    for kfl in ["tcp", "dns or tcp", ""] {
        assert_eq!(run(kfl, Some(H9), Some(H9 + 3_600_000)).await.unwrap(), 0, "{kfl}");
        assert_eq!(run(kfl, Some(H9 + 1_000), Some(H9 + 2_000)).await.unwrap(), 0, "{kfl}");
        let e = run(kfl, None, None).await.unwrap_err();
        assert!(!e.is_user(), "{kfl}: {e}");
        let e = run(kfl, Some(H9), Some(H9 + 3_600_001)).await.unwrap_err();
        assert!(e.to_string().contains("hour=10") || !e.is_user(), "{kfl}: {e}");
    }
    // The filter's own `timestamp` conditions prune as well as --from/--to.
    let h9 = H9;
    let inside = format!("tcp and timestamp >= {h9} and timestamp < {}", h9 + 3_600_000);
    assert_eq!(run(&inside, None, None).await.unwrap(), 0, "{inside}");
    let either = format!(
        "(timestamp >= {h9} and timestamp < {}) or (dns and timestamp == {})",
        h9 + 60_000,
        h9 + 120_000
    );
    assert_eq!(run(&either, None, None).await.unwrap(), 0, "{either}");
    let open = format!("timestamp >= {h9} or tcp");
    assert!(run(&open, None, None).await.is_err(), "{open} reads every folder");
    // Raw SQL can prune on the partition columns itself.
    let df = store
        .sql("SELECT count(*) FROM connections WHERE date = '2026-11-26' AND hour = '09'", None)
        .await
        .unwrap();
    assert_eq!(df.collect().await.unwrap()[0].num_rows(), 1);
}
