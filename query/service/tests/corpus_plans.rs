//! Every KFL1 and KFL2 corpus case that translates (`query/kfl/tests/corpus/**`,
//! `query/kfl/tests/corpus2/**`) also plans in DataFusion against the real schemas and runs:
//! on a store with no files (no rows, no error), and on a store with rows of every kind, so each
//! expression is evaluated on real columns, not only planned; with a time range too, so the
//! partition predicates plan as well and every row returned is inside the range. Every KFL1 case
//! also returns the same rows with the Parquet reader applying its filter and without (the engine's
//! choices never change rows), and a filter no row can pass reads no file.
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use podwire_query::pushdown::Pushdown;
use podwire_query::{Dialect, QueryRequest, Store, StoreOptions};
use podwire_schemas::Table;
use podwire_schemas::connections::{self, ConnectionRecord, ConnectionsBuilder, DirCounters, by};
use podwire_schemas::dns::{self, DnsBuilder, DnsRecord};
use podwire_schemas::endpoint::EndpointMeta;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The cases of `folder` (under `query/kfl/tests/`) with extension `ext` that are expected to
/// translate, as (path, query), in path order; at least `min_cases` files must be there.
fn translated_cases(folder: &str, ext: &str, min_cases: usize) -> Vec<(PathBuf, String)> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kfl/tests").join(folder);
    let mut paths = Vec::new();
    cases(&corpus, ext, &mut paths);
    paths.sort();
    assert!(paths.len() >= min_cases, "corpus not found at {}", corpus.display());
    paths
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let query = text.strip_suffix('\n').unwrap_or(&text).to_owned();
            (!text.starts_with("# fail: ")).then_some((path, query))
        })
        .collect()
}

/// With pushdown forced on and off, every KFL1 case returns the same rows (as a multiset), and
/// the scans that apply a filter hand their rows through a coalescer (`podwire_query::compact`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_do_not_depend_on_pushdown() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let open = |pushdown| {
        Store::open_with(dir.path(), StoreOptions { pushdown, ..StoreOptions::default() }).unwrap()
    };
    let (on, off) = (open(Pushdown::On), open(Pushdown::Off));
    let (mut compared, mut compacted, mut rows_seen) = (0, 0, 0);
    let mut failures = Vec::new();
    for (path, query) in &translated_cases("corpus", "kfl", 185) {
        let request = QueryRequest { now_ms: NOW_MS, ..QueryRequest::new(query) };
        let (a, b) = (on.kfl(&request).await, off.kfl(&request).await);
        let (Ok(a), Ok(b)) = (a, b) else {
            failures.push(format!("{}: did not plan", path.display()));
            continue;
        };
        let plan = a.clone().create_physical_plan().await.unwrap();
        if podwire_query::compact::has_compacted_scan(&plan) {
            compacted += 1;
        }
        let (a, b) = (rows(&a.collect().await.unwrap()), rows(&b.collect().await.unwrap()));
        if a != b {
            failures.push(format!(
                "{}: {query}\n  {} rows with pushdown, {} without",
                path.display(),
                a.len(),
                b.len()
            ));
        }
        rows_seen += a.len();
        compared += 1;
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(compared > 100, "only {compared} cases compared");
    assert!(rows_seen > 10_000, "only {rows_seen} rows compared");
    assert!(compacted * 2 > compared, "only {compacted} of {compared} plans had a compacted scan");
    println!("{compared} cases: {rows_seen} rows equal with and without pushdown");
}

/// A filter that asks a column for ranges that do not meet returns nothing without reading the
/// store: here a file in its range is not Parquet, and the query still succeeds, while the
/// same filter with ranges that meet reads the file and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contradiction_reads_no_file() {
    let dir = tempfile::tempdir().unwrap();
    for table in [Table::Connections, Table::Dns] {
        let hour = dir.path().join(table.name()).join("date=2026-01-01/hour=00");
        std::fs::create_dir_all(&hour).unwrap();
        std::fs::write(hour.join("bad.parquet"), b"not parquet").unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let run = |kfl: &'static str| {
        let store = store.clone();
        async move {
            let df = store.kfl(&QueryRequest { now_ms: NOW_MS, ..QueryRequest::new(kfl) }).await?;
            Ok::<_, podwire_query::Error>(
                df.collect().await?.iter().map(|b| b.num_rows()).sum::<usize>(),
            )
        }
    };
    for kfl in [
        "!(dst.port >= 9000) and dst.port == 10250",
        "tcp and rtt > 500 and rtt < 100",
        "dst.namespace == \"a\" and (dst.port == 80 and dst.namespace == \"b\")",
    ] {
        assert_eq!(run(kfl).await.unwrap(), 0, "{kfl}");
    }
    for kfl in ["!(dst.port >= 9000) and dst.port == 8080", "tcp and rtt > 100 and rtt < 500"] {
        assert!(run(kfl).await.is_err(), "{kfl}: the bad file was not read");
    }
}

/// A store whose files hold their rows in another order than time (as
/// `benchmarks/layout-experiment.py` rewrites them), opened with `unsorted_files`, still answers
/// in time order: its results are sorted, not merged from the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsorted_files_still_answer_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let mut files = Vec::new();
    cases(&dir.path().join(Table::Connections.name()), "parquet", &mut files);
    assert_eq!(files.len(), 3, "{files:?}");
    for path in &files {
        let file = std::fs::File::open(path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let batches = reader.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let n = u32::try_from(batch.num_rows()).unwrap();
        let reversed = arrow::array::UInt32Array::from_iter_values((0..n).rev());
        let batch = arrow::compute::take_record_batch(&batch, &reversed).unwrap();
        let file = std::fs::File::create(path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let options = StoreOptions { unsorted_files: true, ..StoreOptions::default() };
    let store = Store::open_with(dir.path(), options).unwrap();
    let request = QueryRequest { now_ms: NOW_MS, ..QueryRequest::new("tcp") };
    let times = times_ms(&store.kfl(&request).await.unwrap().collect().await.unwrap());
    assert!(times.len() > 500, "only {} rows", times.len());
    assert!(times.is_sorted(), "results out of time order");
    // The reversed files really are out of order: the first row read is an hour's last.
    let store = Store::open(dir.path()).unwrap();
    let first = store.sql("SELECT start_ts FROM connections LIMIT 1", None).await.unwrap();
    let first = times_ms(&first.collect().await.unwrap())[0];
    assert!(first % 3_600_000 > 3_000_000, "the first row read is at {first}");
}

/// Each row of `batches` as text, sorted: a multiset to compare.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = arrow::util::display::FormatOptions::default().with_null("∅");
    let mut out = Vec::new();
    for b in batches {
        let columns: Vec<_> = b
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..b.num_rows() {
            let cells: Vec<String> = columns.iter().map(|c| c.value(row).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
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
    let cases = translated_cases(folder, ext, min_cases);
    let empty = tempfile::tempdir().unwrap();
    let empty = Store::open(empty.path()).unwrap();
    let full_dir = tempfile::tempdir().unwrap();
    write_store(full_dir.path());
    let full = Store::open(full_dir.path()).unwrap();
    let mut planned = 0;
    let mut with_rows = 0;
    let mut in_range = 0;
    let mut failures = Vec::new();
    for (path, query) in &cases {
        for (from_ms, to_ms) in [(None, None), (Some(NOW_MS - 1_800_000), Some(NOW_MS))] {
            let request = QueryRequest {
                kfl: query,
                from_ms,
                to_ms,
                limit: Some(10),
                now_ms: NOW_MS,
                dialect,
                extra: "",
            };
            let run = |store: Store| async move {
                let df = store.kfl(&request).await?;
                Ok::<_, podwire_query::Error>(df.collect().await?)
            };
            match run(empty.clone()).await {
                Ok(b) if b.iter().all(|b| b.num_rows() == 0) => {}
                Ok(_) => failures.push(format!("{}: rows from an empty store", path.display())),
                Err(e) => failures.push(format!("{}: {query}\n  {e}", path.display())),
            }
            match run(full.clone()).await {
                Ok(batches) => {
                    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                    if rows > 10 {
                        failures.push(format!("{}: {rows} rows over the limit 10", path.display()));
                    }
                    if from_ms.is_none() && rows > 0 {
                        with_rows += 1;
                    }
                    if let (Some(from), Some(to)) = (from_ms, to_ms) {
                        for t in times_ms(&batches) {
                            in_range += 1;
                            if !(from..to).contains(&t) {
                                failures.push(format!(
                                    "{}: a row at {t} ms outside [{from}, {to})",
                                    path.display()
                                ));
                            }
                        }
                    }
                }
                Err(e) => failures.push(format!("{}: {query}\n  on rows: {e}", path.display())),
            }
        }
        planned += 1;
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(planned > min_planned, "only {planned} cases translated");
    // The store's values are drawn from what the corpus names, so most filters match something:
    // a store or a translation that matched nothing would pass the checks above vacuously.
    assert!(
        with_rows * 2 > planned,
        "only {with_rows} of {planned} cases returned rows from the store with rows"
    );
    assert!(in_range > 100, "only {in_range} rows returned within a time range");
    println!(
        "{planned} corpus cases planned and ran; {with_rows} returned rows; {in_range} rows \
         checked within the range"
    );
}

/// The event times (ms) of result rows: the first timestamp column of each batch.
fn times_ms(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let Some(col) =
            b.columns().iter().find(|c| matches!(c.data_type(), DataType::Timestamp(_, _)))
        else {
            continue;
        };
        let col =
            arrow::compute::cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None)).unwrap();
        let col = col.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        out.extend((0..col.len()).filter(|i| col.is_valid(*i)).map(|i| col.value(i)));
    }
    out
}

/// A small xorshift generator: the same store on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

const NAMESPACES: [&str; 5] = ["default", "kube-system", "shop", "monitoring", ""];
const NAMES: [&str; 12] = [
    "api",
    "api-v2",
    "API",
    "frontend",
    "coredns",
    "kube-proxy",
    "my-http-svc",
    "payments.svc.cluster.local",
    "名前サービス",
    "a b",
    "fa-cache",
    "",
];
const IPS: [&str; 8] = [
    "10.0.0.5",
    "10.0.1.7",
    "10.96.0.10",
    "192.168.1.20",
    "172.16.0.3",
    "8.8.8.8",
    "1.1.1.1",
    "fd00::5",
];
const PORTS: [u16; 7] = [22, 53, 80, 443, 8080, 5432, 40_000];
const NODES: [&str; 2] = ["ip-10-0-41-65.ec2.internal", "node-b"];

fn meta(rng: &mut Rng) -> EndpointMeta {
    let name = rng.pick(&NAMES).to_string();
    EndpointMeta {
        namespace: rng.pick(&NAMESPACES).into(),
        pod: format!("{name}-7d9f"),
        workload: name.clone(),
        workload_kind: rng.pick(&["Deployment", "DaemonSet", ""]).into(),
        service: rng.pick(&["api", "kube-dns", ""]).into(),
        node: rng.pick(&NODES).into(),
        name,
    }
}

/// Writes connections and DNS rows over 2025-12-24 and the last two hours of 2025-12-31, one
/// file per hour, in the store's layout and time order.
fn write_store(root: &Path) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let hours = [
        (1_766_570_400_000i64, "2025-12-24", "10"),
        (NOW_MS - 7_200_000, "2025-12-31", "22"),
        (NOW_MS - 3_600_000, "2025-12-31", "23"),
    ];
    let mut conn_id = 0;
    for (start_ms, date, hour) in hours {
        let mut conns = ConnectionsBuilder::default();
        let mut dnss = DnsBuilder::new();
        for i in 0..400i64 {
            conn_id += 1;
            let ts_ns = (start_ms + i * 9_000) * 1_000_000;
            let ip = |rng: &mut Rng| rng.pick(&IPS).parse::<IpAddr>().unwrap();
            let tcp = !rng.one_in(3);
            let bytes = rng.next() % 100_000;
            let counters = |rng: &mut Rng| DirCounters {
                packets: 1 + rng.next() % 50,
                bytes,
                payload_bytes: bytes / 2,
                retransmits: rng.next() % 3,
                zero_windows: u64::from(rng.one_in(20)),
            };
            let src_meta = meta(&mut rng);
            let dst_meta = meta(&mut rng);
            conns.append(&ConnectionRecord {
                start_ns: ts_ns,
                end_ns: ts_ns + (rng.next() % 5_000_000_000) as i64,
                conn_id,
                row_seq: 0,
                is_final: !rng.one_in(4),
                protocol: if tcp { connections::protocol::TCP } else { connections::protocol::UDP },
                src_ip: ip(&mut rng),
                src_port: 30_000 + (rng.next() % 30_000) as u16,
                dst_ip: ip(&mut rng),
                dst_port: PORTS[(rng.next() % PORTS.len() as u64) as usize],
                src: counters(&mut rng),
                dst: counters(&mut rng),
                outcome: rng.pick(&[
                    connections::outcome::CLOSED,
                    connections::outcome::OPEN,
                    connections::outcome::RESET,
                    connections::outcome::REFUSED,
                    connections::outcome::NO_ANSWER,
                    connections::outcome::UNREACHABLE,
                    connections::outcome::ANSWERED,
                ]),
                src_flags: (rng.next() % 64) as u8,
                dst_flags: (rng.next() % 64) as u8,
                handshake_rtt_ns: tcp.then(|| (rng.next() % 50_000_000) as i64),
                closed_by: rng.pick(&[by::SRC, by::DST, by::NONE]),
                reset_by: rng.pick(&[by::SRC, by::DST, by::NONE]),
                icmp_error: rng.one_in(10).then_some((3, 1)),
                icmp_errors: rng.next() % 2,
                icmp_error_src: rng.one_in(10).then(|| ip(&mut rng)),
                vlan: String::new(),
                tunnel: rng.pick(&["", "vxlan"]).into(),
                dst_dns_name: rng.one_in(2).then(|| Arc::from(rng.pick(&NAMES))),
                node: Arc::from(rng.pick(&NODES)),
                src_meta,
                dst_meta,
            });
            let answered = !rng.one_in(4);
            dnss.append(&DnsRecord {
                ts_ns,
                response_ns: answered.then_some(ts_ns + 2_000_000),
                conn_id,
                protocol: connections::protocol::UDP,
                src_ip: ip(&mut rng),
                src_port: 40_000,
                dst_ip: "10.96.0.10".parse().unwrap(),
                dst_port: 53,
                dns_id: (rng.next() % 65_536) as u16,
                query_name: rng.pick(&NAMES).into(),
                query_type: rng.pick(&["A", "AAAA", "SRV"]).into(),
                rcode: rng.pick(&dns::RCODE_NAMES[..4]).into(),
                answers: vec![rng.pick(&IPS).into()],
                answer_ips: vec![ip(&mut rng)],
                ttl_min: answered.then_some(30),
                outcome: if answered { dns::outcome::ANSWERED } else { dns::outcome::NO_RESPONSE },
                node: Arc::from(rng.pick(&NODES)),
                src_meta: meta(&mut rng),
                dst_meta: meta(&mut rng),
            });
        }
        for (table, batch) in [(Table::Connections, conns.finish()), (Table::Dns, dnss.finish())] {
            let dir =
                root.join(table.name()).join(format!("date={date}")).join(format!("hour={hour}"));
            std::fs::create_dir_all(&dir).unwrap();
            let file = std::fs::File::create(dir.join("fixture.parquet")).unwrap();
            let batch = batch.unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
    }
}
