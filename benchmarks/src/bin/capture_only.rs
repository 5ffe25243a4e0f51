//! podwire's packet path alone: read a capture, decode, track, build the Arrow batches, and
//! drop them (no enrichment, no Parquet). Prints packets, rows and the time spent.
//!
//!     cargo run --release -p podwire-benchmarks --bin capture_only -- FILE [RUNS]
use anyhow::Context as _;
use arrow::array::RecordBatch;
use podwire_capture::pipeline::{BatchSink, Pipeline, PipelineConfig};
use podwire_capture::source::PcapFile;
use podwire_schemas::Table;
use std::time::Instant;

/// The allocator `podwire` uses (the workspace Cargo.toml says why).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Counts rows and drops the batches.
#[derive(Default)]
struct Count(usize);

impl BatchSink for Count {
    fn write(&mut self, _: Table, batch: RecordBatch) -> Result<(), podwire_capture::Error> {
        self.0 += batch.num_rows();
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: capture_only FILE [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let file = PcapFile::new(path.as_ref())?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut p = Pipeline::new(PipelineConfig::default(), Count::default());
        file.for_each(|f| p.on_frame(f))?;
        let (sink, stats) = p.finish()?;
        let secs = start.elapsed().as_secs_f64();
        times.push(secs);
        println!(
            "{} packets, {} rows, {:.3} s, {:.2} M packets/s",
            stats.frames,
            sink.0,
            secs,
            stats.frames as f64 / secs / 1e6
        );
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.3} s", times[times.len() / 2]);
    Ok(())
}
