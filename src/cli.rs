//! The command line: subcommands, flags, their environment variables, and logging setup.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// podwire turns packets into connection records (TCP, UDP, ICMP, DNS), names both ends with the
/// pod, service and node that held each IP at that moment, and keeps the history as Parquet.
///
/// Start with `podwire demo`: it runs the whole pipeline on a bundled sample scene.
#[derive(Debug, Parser)]
#[command(name = "podwire", version, about, long_about, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PODWIRE_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    /// No progress bar and no summary; errors only.
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,
}

const EXAMPLES: &str = "\
Examples:
  podwire demo                                   # the bundled scene, summary and connections
  podwire standalone --pcap node-a.pcap --inventory pods.json --store ./store
  kubectl get pods,services,nodes -A -o json > pods.json   # make an inventory

Log verbosity: RUST_LOG=debug (default info).";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read capture files, track connections and DNS, name pods, and write the Parquet store,
    /// all in one process (no Kafka, no cluster access).
    #[command(after_help = STANDALONE_HELP)]
    Standalone(StandaloneArgs),
    /// Run `standalone` on the sample scene bundled in the binary and print what it found.
    Demo(DemoArgs),
}

const STANDALONE_HELP: &str = "\
The store is Hive-partitioned Parquet: STORE/{connections,dns,packets}/date=YYYY-MM-DD/hour=HH/*.parquet
(ZSTD, sorted by time), readable by DuckDB, pyarrow, polars and Spark as it is. Columns are documented
in schemas/README.md. Running again on the same file with the same store rewrites the same files.

A truncated or unreadable capture stops with an error naming the file and byte offset; everything
read before that point is still written, and the exit status is 1.";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Tracker and output settings shared by the subcommands that capture.
#[derive(Debug, Args, Clone)]
pub(crate) struct TrackerArgs {
    /// Capturing node's name, written in the `node` column.
    #[arg(long, env = "PODWIRE_NODE", default_value = "")]
    pub(crate) node: String,
    /// Also write the `packets` table (one row per packet header; large).
    #[arg(long, env = "PODWIRE_PACKETS")]
    pub(crate) packets: bool,
    /// Emit an interim row for connections with traffic at least this often.
    #[arg(long, env = "PODWIRE_ACTIVE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) active_timeout: Duration,
    /// Finish a UDP pseudo-connection after this long without packets.
    #[arg(long, env = "PODWIRE_UDP_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub(crate) udp_timeout: Duration,
    /// Finish an idle TCP connection after this long without packets.
    #[arg(long, env = "PODWIRE_TCP_TIMEOUT", default_value = "15m", value_parser = humantime::parse_duration)]
    pub(crate) tcp_timeout: Duration,
    /// Most connections tracked at once; when full, the least recently seen are finished early
    /// (counted as evicted). Memory grows with this, never with packets.
    #[arg(long, env = "PODWIRE_MAX_CONNECTIONS", default_value_t = 500_000)]
    pub(crate) max_connections: usize,
}

#[derive(Debug, Args)]
pub(crate) struct StandaloneArgs {
    /// Capture file(s) to read: pcap or pcapng (tcpdump -w, tshark -w, dumpcap); `-` reads
    /// standard input, e.g. `tcpdump -i any -w - | podwire standalone --pcap - ...`.
    #[arg(long, required = true, num_args = 1.., env = "PODWIRE_PCAP", value_delimiter = ',')]
    pub(crate) pcap: Vec<PathBuf>,
    /// Pod metadata: the output of `kubectl get pods,services,nodes -A -o json` (or -o yaml).
    #[arg(long, env = "PODWIRE_INVENTORY")]
    pub(crate) inventory: Option<PathBuf>,
    /// The store folder (created if missing).
    #[arg(long, env = "PODWIRE_STORE")]
    pub(crate) store: PathBuf,
    #[command(flatten)]
    pub(crate) tracker: TrackerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where to write the demo's store.
    #[arg(long, env = "PODWIRE_STORE", default_value = "podwire-demo-store")]
    pub(crate) store: PathBuf,
}

/// Sets up `tracing` on stderr: `RUST_LOG` filters (default `info`).
pub(crate) fn init_logging(format: LogFormat, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "error" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            builder
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
        }
        LogFormat::Json => builder.json().init(),
    }
}
