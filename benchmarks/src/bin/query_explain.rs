//! Runs one KFL query (or SELECT) through podwire's own query service (`podwire_query::Store`,
//! the session `podwire query` uses) and either prints DataFusion's `EXPLAIN ANALYZE` (the
//! per-operator times, rows, bytes scanned and pruning counters) or times the query in-process,
//! with and without the CSV output. `--set` changes a DataFusion option first (as SQL `SET`
//! does), to try a setting before proposing it; filter pushdown is chosen per query by
//! `--pushdown` instead (`podwire_query::pushdown`). `podwire query --sql` refuses `EXPLAIN`: this
//! is the way to see the plan.
//!
//!     target/release/query_explain --store /work/bench-store 'dst.name == "api.stripe.com"'
//!     target/release/query_explain --store S --mode time --runs 5 --pushdown on \
//!         'dst.namespace == ""'
use anyhow::Context as _;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use clap::{Parser, ValueEnum};
use futures::StreamExt as _;
use podwire_query::order::FilterOrder;
use podwire_query::pushdown::Pushdown;
use podwire_query::{Format, QueryRequest, Store, StoreOptions};
use std::time::Instant;

/// The allocator `podwire` uses (the workspace Cargo.toml says why).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// EXPLAIN ANALYZE or time a KFL query with podwire's query service.
#[derive(Debug, Parser)]
#[command(name = "query_explain")]
struct Args {
    /// The store folder.
    #[arg(long)]
    store: std::path::PathBuf,
    /// Only entries at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// The query is SQL (one SELECT), not KFL.
    #[arg(long)]
    sql: bool,
    /// A DataFusion option to set first, `key=value` (repeatable).
    #[arg(long = "set")]
    settings: Vec<String>,
    /// Whether the Parquet reader applies the filter: `auto` guesses from its shape, as
    /// `podwire query` and `podwire serve` do.
    #[arg(long, value_enum, default_value_t = PushdownArg::Auto)]
    pushdown: PushdownArg,
    /// Leave a filtering scan's batches as the reader returns them (no coalescer above the scan;
    /// `podwire_query::compact`), to measure what the copy costs.
    #[arg(long)]
    uncompacted_scans: bool,
    /// The store's files are not in time order (rewritten by benchmarks/layout-experiment.py):
    /// declare no order, so results are sorted instead of merged.
    #[arg(long)]
    unsorted_files: bool,
    /// Evaluate the filter's terms in the order written, not the one that keeps fewest rows in
    /// a sample first (`podwire_query::order`), to measure what the order is worth.
    #[arg(long)]
    written_order: bool,
    /// What to do.
    #[arg(long, value_enum, default_value_t = Mode::Explain)]
    mode: Mode,
    /// Timed runs (after one warm-up) for `--mode time`.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The KFL filter or SQL.
    #[arg(default_value = "")]
    query: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PushdownArg {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Print the SQL and DataFusion's EXPLAIN ANALYZE.
    Explain,
    /// Median time to run the query and count the rows, and to write them as CSV to a sink.
    Time,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pushdown = match args.pushdown {
        PushdownArg::Auto => Pushdown::Auto,
        PushdownArg::On => Pushdown::On,
        PushdownArg::Off => Pushdown::Off,
    };
    let store = Store::open_with(
        &args.store,
        StoreOptions {
            pushdown,
            uncompacted_scans: args.uncompacted_scans,
            unsorted_files: args.unsorted_files,
            filter_order: if args.written_order {
                FilterOrder::Written
            } else {
                FilterOrder::Sampled
            },
            ..StoreOptions::default()
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread().build()?;
    runtime.block_on(run(&args, &store))
}

async fn run(args: &Args, store: &Store) -> anyhow::Result<()> {
    for s in &args.settings {
        let (k, v) = s.split_once('=').context("--set takes key=value")?;
        store.context().sql(&format!("SET {k} = '{v}'")).await?.collect().await?;
    }
    let now_ms = podwire_query::time::now_ms();
    let parse = |t: &Option<String>| {
        t.as_deref().map(|t| podwire_query::time::parse_time(t, now_ms)).transpose()
    };
    let (from_ms, to_ms) = (parse(&args.from)?, parse(&args.to)?);
    let plan = || async {
        if args.sql {
            store.sql(&args.query, None).await
        } else {
            let request = QueryRequest { from_ms, to_ms, now_ms, ..QueryRequest::new(&args.query) };
            store.kfl(&request).await
        }
    };
    match args.mode {
        Mode::Explain => {
            if !args.sql {
                let request =
                    QueryRequest { from_ms, to_ms, now_ms, ..QueryRequest::new(&args.query) };
                println!("{}\n", store.translate(&request)?.sql());
            }
            let batches = plan().await?.explain(false, true)?.collect().await?;
            let options = FormatOptions::default();
            for batch in &batches {
                let columns: Vec<ArrayFormatter<'_>> = batch
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<Result<_, _>>()?;
                for row in 0..batch.num_rows() {
                    for c in &columns {
                        println!("{}", c.value(row));
                    }
                }
            }
        }
        Mode::Time => {
            let mut count_times = Vec::new();
            let mut csv_times = Vec::new();
            let mut rows = 0;
            for run in 0..=args.runs {
                let t = Instant::now();
                let mut stream = plan().await?.execute_stream().await?;
                let mut n = 0;
                while let Some(batch) = stream.next().await {
                    n += batch?.num_rows();
                }
                let counted = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let stream = plan().await?.execute_stream().await?;
                let sink = std::io::sink();
                podwire_query::output::write_stream(stream, Format::Csv, sink).await?;
                let csv = t.elapsed().as_secs_f64();
                if run > 0 {
                    count_times.push(counted);
                    csv_times.push(csv);
                }
                rows = n;
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "{rows} rows: run and count {:.3} s, run and write CSV {:.3} s (medians of {})",
                median(&mut count_times),
                median(&mut csv_times),
                args.runs
            );
        }
    }
    Ok(())
}
