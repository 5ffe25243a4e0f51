//! Every KFL1 and KFL2 corpus case that translates (`query/kfl/tests/corpus/**`,
//! `query/kfl/tests/corpus2/**`) also plans in DataFusion against the real schemas and runs on a
//! store with no files (no rows, no error); with a time range too, so the partition predicates
//! plan as well.
use podwire_query::{Dialect, QueryRequest, Store};
use std::path::{Path, PathBuf};

/// 2026-01-01T00:00:00Z, as in the corpus snapshots.
const NOW_MS: i64 = 1_767_225_600_000;

fn cases(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            cases(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_translated_corpus_case_plans_and_runs() {
    plans_and_runs("corpus", "kfl", Dialect::Kfl1, 185, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_translated_kfl2_corpus_case_plans_and_runs() {
    plans_and_runs("corpus2", "cel", Dialect::Kfl2, 120, 100).await;
}

/// Plans and runs every case of `folder` that is not expected to fail; at least `min_cases`
/// cases, at least `min_planned` of them translated.
async fn plans_and_runs(
    folder: &str,
    ext: &str,
    dialect: Dialect,
    min_cases: usize,
    min_planned: usize,
) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kfl/tests").join(folder);
    let mut paths = Vec::new();
    cases(&corpus, ext, &mut paths);
    paths.sort();
    assert!(paths.len() >= min_cases, "corpus not found at {}", corpus.display());
    let empty = tempfile::tempdir().unwrap();
    let store = Store::open(empty.path()).unwrap();
    let mut planned = 0;
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        if text.starts_with("# fail: ") {
            continue;
        }
        let query = text.strip_suffix('\n').unwrap_or(&text);
        for (from_ms, to_ms) in [(None, None), (Some(NOW_MS - 3_600_000), Some(NOW_MS))] {
            let request = QueryRequest {
                kfl: query,
                from_ms,
                to_ms,
                limit: Some(10),
                now_ms: NOW_MS,
                dialect,
                extra: "",
            };
            let result = async {
                let df = store.kfl(&request).await?;
                let batches = df.collect().await?;
                Ok::<usize, podwire_query::Error>(batches.iter().map(|b| b.num_rows()).sum())
            }
            .await;
            match result {
                Ok(0) => {}
                Ok(n) => failures.push(format!("{}: {n} rows from an empty store", path.display())),
                Err(e) => failures.push(format!("{}: {query}\n  {e}", path.display())),
            }
        }
        planned += 1;
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(planned > min_planned, "only {planned} cases translated");
    println!("{planned} corpus cases planned and ran");
}
