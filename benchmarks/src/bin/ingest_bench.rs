//! Ingest throughput on one core, without the broker: the rows of an existing store (e.g. the
//! one `gen_store` writes) are encoded as the Kafka messages capture sends (not timed), then one
//! thread runs what `podwire ingest` does per message — decode and check (`wire::decode`),
//! enrich from an inventory with every pod of the store, and the offset-range segments that
//! sort and write Parquet — and the time is reported per stage.
//!
//!     target/release/ingest_bench --store /work/bench-store --rows 2000000 --out /tmp/ingest-out
//!     target/release/ingest_bench ... --roll-messages 8 --delta   # small rolls, each committed
use anyhow::Context as _;
use arrow::array::{AsArray, RecordBatch};
use clap::Parser;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use podwire_ingest::delta::DeltaLog;
use podwire_ingest::enrich::Enricher;
use podwire_ingest::inventory::{Inventory, Objects};
use podwire_ingest::segment::{Ledger, LogPartition, RollPolicy, Segment};
use podwire_ingest::store::StoreConfig;
use podwire_ingest::writer::app_id;
use podwire_schemas::Table;
use podwire_schemas::wire::{self, Envelope};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The allocator `podwire` uses (the workspace Cargo.toml says why).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Ingest throughput (decode + enrich + Parquet) on one thread.
#[derive(Debug, Parser)]
#[command(name = "ingest_bench")]
struct Args {
    /// A store to take connection rows from.
    #[arg(long)]
    store: PathBuf,
    /// Rows to ingest.
    #[arg(long, default_value_t = 2_000_000)]
    rows: usize,
    /// Rows per message (capture's batch size).
    #[arg(long, default_value_t = 8192)]
    batch_rows: usize,
    /// Where to write (emptied first).
    #[arg(long)]
    out: PathBuf,
    /// Roll a segment every this many messages (default: at 128 MiB, ingest's default size).
    /// Small rolls are what ingest's 5-second age makes of a slow partition.
    #[arg(long)]
    roll_messages: Option<usize>,
    /// Commit each roll's files to the table's Delta log, with the log partition's transaction
    /// version, as `podwire ingest` does (timed apart, and within the write stage).
    #[arg(long)]
    delta: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The input rows, in file order.
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![args.store.join("connections")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let p = e?.path();
            // Only the partition folders (`date=…/hour=…`): not the Delta log, whose
            // checkpoints are Parquet too.
            let partition = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                podwire_schemas::partition::COLUMNS.iter().any(|c| n.starts_with(&format!("{c}=")))
            });
            if p.is_dir() && partition {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut input: Vec<RecordBatch> = Vec::new();
    let mut n = 0;
    'files: for f in &files {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(f)?,
        )?
        .with_batch_size(args.batch_rows)
        .build()?;
        for b in reader {
            let b = b?;
            let b = b.with_schema(Table::Connections.schema())?;
            n += b.num_rows();
            input.push(b);
            if n >= args.rows {
                break 'files;
            }
        }
    }
    anyhow::ensure!(n > 0, "no connection rows under {}", args.store.display());
    // An inventory of every pod the rows name (by source IP and pod name).
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    for b in &input {
        let col = |name: &str| b.column_by_name(name).map(|c| c.as_string::<i32>().clone());
        let (Some(ip), Some(pod), Some(ns), Some(wl)) =
            (col("src_ip"), col("src_pod"), col("src_namespace"), col("src_workload"))
        else {
            anyhow::bail!("the store lacks the enrichment columns");
        };
        for i in 0..b.num_rows() {
            if pod.value(i).is_empty() || pods.contains_key(ip.value(i)) {
                continue;
            }
            pods.insert(
                ip.value(i).to_string(),
                Pod {
                    metadata: ObjectMeta {
                        name: Some(pod.value(i).into()),
                        namespace: Some(ns.value(i).into()),
                        owner_references: Some(vec![OwnerReference {
                            kind: "StatefulSet".into(),
                            name: wl.value(i).into(),
                            controller: Some(true),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    },
                    spec: Some(PodSpec::default()),
                    status: Some(PodStatus {
                        pod_ip: Some(ip.value(i).into()),
                        phase: Some("Running".into()),
                        ..Default::default()
                    }),
                },
            );
        }
    }
    let objects =
        Objects { pods: pods.values().map(|p| (p, None)).collect(), ..Default::default() };
    let enricher = Enricher::new(Inventory::build(&objects));
    // The messages (not timed).
    let mut messages = Vec::new();
    for (seq, b) in input.iter().enumerate() {
        let env = Envelope {
            table: Table::Connections,
            node: "node-a".into(),
            producer: "bench".into(),
            seq: seq as u64,
            rows: b.num_rows() as u64,
            dropped_batches: 0,
            dropped_rows: 0,
        };
        messages.push((env.headers(), wire::encode(b)?));
    }
    let bytes: usize = messages.iter().map(|(_, v)| v.len()).sum();
    drop(input);
    let _ = std::fs::remove_dir_all(&args.out);
    std::fs::create_dir_all(&args.out)?;
    let store = StoreConfig::new(&args.out);
    let ledger = Ledger::new(&args.out.as_path().into());
    let policy = RollPolicy { max_bytes: 128 << 20, max_age: Duration::from_secs(3600) };
    let lp = LogPartition { topic: "podwire.connections".into(), partition: 0 };
    let (mut t_decode, mut t_enrich, mut t_write) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut rows_written, mut files_written) = (0u64, 0u32);
    let log = if args.delta { Some(DeltaLog::new(&store.location)?) } else { None };
    let (mut t_commit, mut commits) = (Duration::ZERO, 0u32);
    let mut in_segment = 0usize;
    let started = Instant::now();
    let mut segment: Option<Segment> = None;
    for (offset, (headers, value)) in messages.iter().enumerate() {
        let t = Instant::now();
        let refs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let (_, batches) = wire::decode(&refs, value)?;
        t_decode += t.elapsed();
        let t = Instant::now();
        let enriched = batches
            .iter()
            .map(|b| enricher.enrich(Table::Connections, b))
            .collect::<Result<Vec<_>, _>>()?;
        t_enrich += t.elapsed();
        let t = Instant::now();
        let seg = segment.get_or_insert_with(|| {
            Segment::open(lp.clone(), Table::Connections, offset as i64, None)
        });
        seg.push(offset as i64, &enriched)?;
        in_segment += 1;
        if seg.due(&policy)
            || args.roll_messages.is_some_and(|k| in_segment >= k)
            || offset + 1 == messages.len()
        {
            let w = seg.write(&store, Some(&ledger))?;
            rows_written += w.rows;
            files_written += w.files;
            if let Some(log) = &log {
                let c = Instant::now();
                log.append(Table::Connections, &w.data, &[(app_id(&lp), offset as i64)])?;
                t_commit += c.elapsed();
                commits += 1;
            }
            segment = None;
            in_segment = 0;
        }
        t_write += t.elapsed();
    }
    let total = started.elapsed();
    let per_s = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{n} rows in {} messages ({:.1} MB), one thread: {:.2} s, {:.0} rows/s",
        messages.len(),
        bytes as f64 / 1e6,
        total.as_secs_f64(),
        per_s(total)
    );
    println!(
        "  decode+check {:.2} s ({:.0} rows/s), enrich {:.2} s ({:.0} rows/s), segments+Parquet {:.2} s ({:.0} rows/s); {} pods in the inventory",
        t_decode.as_secs_f64(),
        per_s(t_decode),
        t_enrich.as_secs_f64(),
        per_s(t_enrich),
        t_write.as_secs_f64(),
        per_s(t_write),
        pods.len()
    );
    println!("  wrote {rows_written} rows in {files_written} files to {}", args.out.display());
    if args.delta {
        println!(
            "  of that, {commits} Delta commits: {:.3} s ({:.1} ms each, {:.1} % of the total)",
            t_commit.as_secs_f64(),
            t_commit.as_secs_f64() * 1e3 / f64::from(commits.max(1)),
            100.0 * t_commit.as_secs_f64() / total.as_secs_f64()
        );
    }
    anyhow::ensure!(rows_written == n as u64, "wrote {rows_written} of {n} rows");
    Ok(())
}
