//! The command line: subcommands, flags, their environment variables, and logging setup.
use crate::parse::parse_bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// podwire turns packets into connection records (TCP, UDP, ICMP, DNS), names both ends with the
/// pod, service and node that held each IP at that moment, and keeps the history as Parquet.
///
/// Start with `podwire demo`: it runs the whole pipeline on a bundled sample scene.
#[derive(Debug, Parser)]
#[command(name = "podwire", version = VERSION, long_version = long_version(), about, long_about, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PODWIRE_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    /// No progress bar and no summary; errors only.
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,
    /// Parse the command line, print what it would run, and exit without running it: a
    /// deployment (Helm chart, compose file) can check that every flag it passes exists.
    #[arg(long, global = true)]
    pub(crate) check_args: bool,
}

const EXAMPLES: &str = "\
Examples:
  podwire demo                                   # the bundled scene, summary and connections
  podwire standalone --pcap node-a.pcap --inventory pods.json --store ./store
  kubectl get pods,services,nodes -A -o json > pods.json   # make an inventory
  podwire query --store ./store 'dst.namespace == \"\"'     # KFL over the history
  podwire fields                                 # what a KFL filter can use
  podwire capture --pcap f.pcap --kafka kafka:9092     # a node agent, to Kafka
  podwire ingest --kafka kafka:9092 --store ./store    # Kafka to the store

Log verbosity: RUST_LOG=debug (default info).";

/// `--version`: an agent build (without the `query` feature) says so.
const VERSION: &str = if cfg!(feature = "query") {
    env!("CARGO_PKG_VERSION")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (agent build: no query, map, serve or demo)")
};

/// `--version`: the version, then what this build can do that another might not.
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!("{VERSION}\nlive capture (eBPF): {}", podwire_capture::LIVE_CAPTURE)
    })
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read capture files, track connections and DNS, name pods, and write the Parquet store,
    /// all in one process (no Kafka, no cluster access).
    #[command(after_help = STANDALONE_HELP)]
    Standalone(StandaloneArgs),
    /// Run `standalone` on the sample scene bundled in the binary and print what it found.
    #[cfg(feature = "query")]
    Demo(DemoArgs),
    /// Filter a store's history with KFL (Kubeshark's filter language) and print the matching
    /// connections and DNS transactions in time order.
    #[command(after_help = QUERY_HELP)]
    #[cfg(feature = "query")]
    Query(QueryArgs),
    /// Draw the connectivity map of a window: who talked to whom (namespaces, workloads or pods,
    /// external names, nodes), with connections, failures, bytes and RTT per edge, as JSON,
    /// Graphviz dot or Mermaid.
    #[command(after_help = MAP_HELP)]
    #[cfg(feature = "query")]
    Map(MapArgs),
    /// Say why the connections a filter selects fail: refused, no answer, reset, unreachable,
    /// a stale endpoint, failed DNS lookups, degraded, or ok; each verdict with its counts,
    /// times, example connections and the KFL of its rows.
    #[command(after_help = WHY_HELP)]
    #[cfg(feature = "query")]
    Why(WhyArgs),
    /// Say why a filter finds nothing or less than expected: matches at other times, agents
    /// that reported nothing in the window, and what each agent filtered out, skipped or lost.
    #[command(name = "why-not", after_help = WHY_NOT_HELP)]
    #[cfg(feature = "query")]
    WhyNot(WhyArgs),
    /// What changed and what is wrong in a window, ranked: the most failing connections, names
    /// that fail to resolve, new destinations outside the cluster, public addresses without a
    /// name, and agents that were silent or lost packets.
    #[command(after_help = INSIGHTS_HELP)]
    #[cfg(feature = "query")]
    Insights(ReportArgs),
    /// Print the SQL a KFL filter becomes (what `podwire query` runs).
    #[command(after_help = TRANSLATE_HELP)]
    #[cfg(feature = "query")]
    Translate(TranslateArgs),
    /// List the KFL fields: name, type, the tables that have them, and what they mean.
    #[cfg(feature = "query")]
    Fields(FieldsArgs),
    /// Serve the store over HTTP: KFL and read-only SQL queries streamed as JSON, CSV or Arrow,
    /// translation, the field catalog, health and Prometheus metrics.
    #[command(after_help = SERVE_HELP)]
    #[cfg(feature = "query")]
    Serve(ServeArgs),
    /// A node agent: read capture files, track connections and DNS, and send the records to
    /// Kafka as Arrow batches (one topic per table) for `podwire ingest`.
    #[command(after_help = CAPTURE_HELP)]
    Capture(CaptureArgs),
    /// Consume the agents' batches from Kafka, check them, name pods, and write the Parquet
    /// store; offsets are committed only once the files are durable.
    #[command(after_help = INGEST_HELP)]
    Ingest(IngestArgs),
    /// Delete the hourly partitions older than the time kept (what `ingest --retention` does
    /// every hour), or list them with --dry-run.
    #[command(after_help = EXPIRE_HELP)]
    Expire(ExpireArgs),
    /// Look after the store's Delta Lake tables: convert a store written before podwire kept a
    /// log, show a table's history, check that the log and the files agree, vacuum.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run KFL queries on many machines: an Apache DataFusion Ballista scheduler, or an
    /// executor that registers with one (`query`, `map`, `why` and `serve` use it with
    /// --cluster).
    #[cfg(feature = "cluster")]
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[cfg(feature = "cluster")]
const CLUSTER_HELP: &str = "\
A query is translated and planned by the process that was asked (`podwire query --cluster`,
`podwire serve --cluster`), as without a cluster: the time range, the store's Delta snapshot,
the pushdown choice. The finished plan goes to the scheduler, which cuts it into stages at its
shuffles; the executors run the stages' tasks next to the files (grouped queries such as the map
are partially aggregated there) and the rows stream back. Executors need no store settings: a
plan names its files. A folder store must be mounted at the same path on every executor and
on the querying process; an s3:// store is read with each executor's AWS_* variables.

An executor listens on --listen (Arrow Flight: results and shuffles) and the port after it
(tasks from the scheduler). A killed executor's tasks are run again on the others; a query
whose results it held fails with an error that says so, and the next one succeeds.

Examples:
  podwire cluster scheduler --listen 0.0.0.0:50050
  podwire cluster executor --scheduler sched:50050 --listen 0.0.0.0:50051 --concurrent-tasks 4
  podwire query --store /data/store --cluster sched:50050 --from -7d 'dst.ip == \"10.0.3.7\"'
  podwire query --store /data/store --cluster sched:50050 --explain 'error'   # the stages
  podwire serve --store s3://flows/podwire --cluster sched:50050";

/// `podwire cluster …`.
#[cfg(feature = "cluster")]
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Run a scheduler: executors register with it, queries are submitted to it.
    #[command(after_help = CLUSTER_HELP)]
    Scheduler(SchedulerArgs),
    /// Run an executor: register with the scheduler and run the tasks it sends.
    #[command(after_help = CLUSTER_HELP)]
    Executor(ExecutorArgs),
}

/// `podwire cluster scheduler`.
#[cfg(feature = "cluster")]
#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// Address and port of its gRPC service (executors and queries connect here).
    #[arg(long, env = "PODWIRE_SCHEDULER_LISTEN", default_value = "127.0.0.1:50050")]
    pub(crate) listen: std::net::SocketAddr,
    /// The host name others reach it by (default: the --listen address).
    #[arg(long, env = "PODWIRE_EXTERNAL_HOST")]
    pub(crate) external_host: Option<String>,
    /// An executor silent this long is taken for dead and its tasks run elsewhere.
    #[arg(long, env = "PODWIRE_EXECUTOR_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub(crate) executor_timeout: Duration,
}

/// `podwire cluster executor`.
#[cfg(feature = "cluster")]
#[derive(Debug, Args)]
pub(crate) struct ExecutorArgs {
    /// The scheduler's HOST:PORT.
    #[arg(long, env = "PODWIRE_SCHEDULER")]
    pub(crate) scheduler: String,
    /// Address and port of its Arrow Flight service (results and shuffles); tasks arrive on
    /// the next port.
    #[arg(long, env = "PODWIRE_EXECUTOR_LISTEN", default_value = "127.0.0.1:50051")]
    pub(crate) listen: std::net::SocketAddr,
    /// The host name the scheduler, the other executors and the querying processes reach it by
    /// (default: the address its connection to the scheduler comes from).
    #[arg(long, env = "PODWIRE_EXTERNAL_HOST")]
    pub(crate) external_host: Option<String>,
    /// Tasks run at once (default: one more than the cores).
    #[arg(long, env = "PODWIRE_CONCURRENT_TASKS")]
    pub(crate) concurrent_tasks: Option<usize>,
    /// Where shuffle files are written (default: a temporary folder).
    #[arg(long, env = "PODWIRE_WORK_DIR")]
    pub(crate) work_dir: Option<PathBuf>,
    /// How often it tells the scheduler it is alive (below the scheduler's --executor-timeout).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) heartbeat: Duration,
    /// Shuffle files untouched this long are removed (checked every quarter of it, at most
    /// every 10 minutes). The scheduler has a finished job's files removed 5 minutes after it
    /// ends; this removes what it could not (a scheduler restarted in between). Keep it above
    /// the query services' --cluster-timeout. All are removed when the executor stops.
    #[arg(long, env = "PODWIRE_SHUFFLE_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub(crate) shuffle_ttl: Duration,
}

/// `--cluster`: where the queries of `query`, `map`, `why` and `serve` run.
#[cfg(feature = "cluster")]
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Run the queries on the Ballista cluster whose scheduler is at HOST:PORT (`podwire
    /// cluster scheduler`); planned here, executed there.
    #[arg(long, env = "PODWIRE_CLUSTER", value_name = "HOST:PORT")]
    pub(crate) cluster: Option<String>,
    /// The longest a query may take on the cluster (a cluster with no executor would keep it
    /// queued).
    #[arg(long, env = "PODWIRE_CLUSTER_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) cluster_timeout: Duration,
    /// How the executors compress what one stage hands to the next and the result this process
    /// fetches: `lz4` (Ballista's default), `zstd` (smaller, for a slow network) or `none`
    /// (fastest on one host or a fast network, at twice the disk and network bytes).
    #[arg(long, env = "PODWIRE_CLUSTER_SHUFFLE_COMPRESSION", value_enum, default_value = "lz4")]
    pub(crate) cluster_shuffle_compression: ShuffleCompression,
}

/// The values of `--cluster-shuffle-compression`.
#[cfg(feature = "cluster")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShuffleCompression {
    /// LZ4 frames (Ballista's default).
    Lz4,
    /// Zstandard.
    Zstd,
    /// None.
    None,
}

const STORE_HELP: &str = "\
Each table (connections, dns, packets, capture_stats) is a Delta Lake table at STORE/<table>/:
the Parquet files in its date=…/hour=… folders, and the _delta_log/ that says which of them are
in the table. Readers that follow the log (podwire, DuckDB delta_scan, polars scan_delta, the
deltalake package, Spark) see every row once; a plain Parquet glob also reads files not yet
committed or already removed.

Examples:
  podwire store convert --store /data/store      # a store written before podwire 0.2
  podwire store history --store /data/store --tables connections --limit 10
  podwire store check --store s3://flows/podwire # exit 1 when the log and the files disagree
  podwire store vacuum --store /data/store --dry-run
  podwire store compact --store /data/store       # closed hours' small files merged";

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Make each table without a Delta log a Delta table: its first version adds every file of
    /// its hour folders (what ingest and standalone also do when they create a table).
    #[command(after_help = STORE_HELP)]
    Convert(TablesArgs),
    /// The table's versions, newest first: time, operation, files and rows added and removed.
    #[command(after_help = STORE_HELP)]
    History(StoreHistoryArgs),
    /// Check that each table's log and files agree: every file of the snapshot present with its
    /// size and rows, no file outside the snapshot older than the grace period. Exit 1 if not.
    #[command(after_help = STORE_HELP)]
    Check(StoreCheckArgs),
    /// Delete the files no snapshot needs any more: removed longer ago than the grace period
    /// (1 h), or never committed and as old.
    #[command(after_help = STORE_HELP)]
    Vacuum(StoreVacuumArgs),
    /// Replace the many small files of each closed hour (ingest writes one per roll) by a few
    /// large ones: the same rows in the same order, one commit per hour, safe while ingest
    /// writes and queries read. The new files carry Bloom filters of pods, names, addresses
    /// and nodes, so a lookup of one skips the hours that do not hold it.
    #[command(after_help = COMPACT_HELP)]
    Compact(StoreCompactArgs),
    /// Remove the hours older than the time kept, then vacuum (the same as `podwire expire`).
    #[command(after_help = EXPIRE_HELP)]
    Expire(ExpireArgs),
}

const COMPACT_HELP: &str = "\
An hour is compacted once it ended --older-than ago. Its files smaller than --target-size are
packed, in order, into groups of at most that size (and the store's rows per file, 1 Mi); each
group is read and written back as one file, sorted and encoded as ingest writes them, and the
hour's groups replace their files in one Delta commit (an OPTIMIZE, dataChange false). Readers
see the hour before or after, never half. The replaced files stay until `podwire store vacuum`
(or expire, or ingest --retention) deletes them, an hour later: a query planned before the
commit still finds them. Memory: one group's rows at a time. A commit that conflicts (an expiry
or another compaction touched the table meanwhile) leaves that hour as it was for the next run.

Examples:
  podwire store compact --store /data/store --dry-run      # what would be merged
  podwire store compact --store s3://flows/podwire --older-than 3h --target-size 128MiB
  podwire ingest ... --compact-every 1h                    # the same, hourly, from ingest";

#[derive(Debug, Args)]
pub(crate) struct StoreCompactArgs {
    #[command(flatten)]
    pub(crate) store: TablesArgs,
    /// Hours that ended less than this long ago are left to ingest.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub(crate) older_than: Duration,
    /// The size files are packed up to; larger files are left as they are.
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub(crate) target_size: usize,
    /// Say what would be merged; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TablesArgs {
    /// The store: a folder or `s3://bucket/prefix` (settings from the AWS_* environment
    /// variables, as for `ingest`).
    #[arg(long, env = "PODWIRE_STORE")]
    pub(crate) store: String,
    /// Tables (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) tables: Vec<TableArg>,
}

#[derive(Debug, Args)]
pub(crate) struct StoreHistoryArgs {
    #[command(flatten)]
    pub(crate) store: TablesArgs,
    /// Versions shown per table, newest first.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
    /// One JSON object per version (with the log's parameters and metrics) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StoreCheckArgs {
    #[command(flatten)]
    pub(crate) store: TablesArgs,
    /// Files outside the snapshot younger than this are writes about to commit, not orphans.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub(crate) grace: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct StoreVacuumArgs {
    #[command(flatten)]
    pub(crate) store: TablesArgs,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

const EXPIRE_HELP: &str = "\
A partition (STORE/<table>/date=…/hour=…/) goes once its whole hour is older than --keep, so a
query over the kept window never finds part of an hour missing. In a Delta table (what podwire
writes; see `podwire store --help`) the partitions leave the table in one commit, and their files
are deleted by the next run once they have been out of it for an hour (a query planned before
still reads them). A table without a log has its folders deleted. Nothing else in the store is
touched: not the ingest ledger (_ingest/), not hidden files (writes in progress), not files that
are not in a partition folder. Folders and s3:// buckets alike.

Examples:
  podwire expire --store /data/store --keep 14d --dry-run   # what would go
  podwire expire --store s3://flows/podwire --keep 336h
  podwire ingest --kafka kafka:9092 --store /data/store --retention 14d   # the same, hourly";

#[derive(Debug, Args)]
pub(crate) struct ExpireArgs {
    /// The store: a folder or `s3://bucket/prefix` (settings from the AWS_* environment
    /// variables, as for `ingest`).
    #[arg(long, env = "PODWIRE_STORE")]
    pub(crate) store: String,
    /// How much history to keep, e.g. 14d, 336h (at least 1h).
    #[arg(long, env = "PODWIRE_RETENTION", value_parser = parse_retention)]
    pub(crate) keep: Duration,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Tables to expire (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) tables: Vec<TableArg>,
}

/// A retention period: a duration of at least an hour (less would delete the hour being
/// written).
pub(crate) fn parse_retention(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (e.g. 14d, 336h)"))?;
    if d < Duration::from_secs(3600) {
        return Err(format!(
            "`{s}` is less than an hour: the store is kept by the hour (e.g. 14d, 336h)"
        ));
    }
    Ok(d)
}

const CAPTURE_HELP: &str = "\
Messages: one Arrow IPC stream each (ZSTD buffers, at most --max-message-bytes; bigger batches are
split), key = node, headers with the schema version, table, node, a per-process producer id, a
per-table batch sequence and the producer's loss counters. While the broker is unreachable,
batches wait in a queue of --queue-bytes for up to --delivery-timeout; beyond that they are dropped
and counted (reported at the end, in the headers of later messages, and as sequence gaps by ingest).

Examples:
  podwire capture --pcap node-a.pcap --kafka kafka:9092 --node node-a
  podwire capture --pod-interface 'cali*' --host-interface eth0 --pod-cidr 10.244.1.0/24 --kafka kafka:9092
  tcpdump -i any -w - | podwire capture --pcap - --kafka kafka:9092
  podwire capture --pcap f.pcap --kafka kafka:9093 --kafka-option security.protocol=SASL_SSL \\
      --kafka-option sasl.mechanisms=SCRAM-SHA-512 --kafka-option sasl.username=podwire \\
      --kafka-option sasl.password=$(cat /run/secrets/kafka) --kafka-option ssl.ca.location=/etc/ca.pem

Exit status 1 when the capture could not be read to its end or messages were dropped.";

const INGEST_HELP: &str = "\
Every message is checked (headers, schema version, Arrow stream, schema, row count); one that fails
goes to PREFIX + dead-letter with the reason in the `podwire.dlq.reason` header, is counted, and
the rest goes on. Rows are written per offset range and hour as
STORE/<table>/date=…/hour=…/<topic>-<partition>-g<generation>-<first offset>-<last offset>-<n>.parquet; the range
is recorded in STORE/_ingest/ first and the offset committed only after the files are fsynced, so
killing ingest at any moment and restarting it neither loses nor doubles a row. A store that
fails (disk full, bucket unreachable) is retried with backoff, offsets uncommitted.

An S3-compatible bucket works as the store (`--store s3://bucket/prefix`): each file is one upload,
committed once the upload completed; the ledger lives in the bucket too. Credentials and endpoint
come from the environment as the AWS tools read them: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_REGION; AWS_ENDPOINT for MinIO/Ceph/…, AWS_ALLOW_HTTP=true for plain http.

Examples:
  podwire ingest --kafka kafka:9092 --store /data/store --inventory pods.json
  AWS_REGION=eu-west-1 podwire ingest --kafka kafka:9092 --store s3://flows/podwire --kube
  podwire ingest --kafka kafka:9092 --store /data/store --metrics-listen 0.0.0.0:9464 --roll-age 10s
  podwire ingest --kafka kafka:9092 --store /data/store --retention 14d   # delete older hours, hourly";

#[derive(Debug, Args)]
pub(crate) struct CaptureArgs {
    /// Capture file(s) to read: pcap or pcapng; `-` reads standard input. Or capture live with
    /// --interface / --pod-interface / --host-interface.
    #[arg(long, num_args = 1.., env = "PODWIRE_PCAP", value_delimiter = ',', required_unless_present_any = LIVE_FLAGS, conflicts_with_all = LIVE_FLAGS)]
    pub(crate) pcap: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) live: LiveArgs,
    /// Live capture only: the inventory (`kubectl get pods,services,nodes -A -o json`) that pod
    /// selectors of the capture filter (--only-namespace, ...) are resolved with; re-read when
    /// it changes. (Ingest names the pods.)
    #[arg(long, env = "PODWIRE_INVENTORY")]
    pub(crate) inventory: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) kafka: crate::kafka::KafkaArgs,
    /// Bytes of messages that may wait for the broker before new batches are dropped.
    #[arg(long, env = "PODWIRE_QUEUE_BYTES", default_value = "256MiB", value_parser = parse_bytes)]
    pub(crate) queue_bytes: usize,
    /// How long a message may wait for the broker before it is dropped.
    #[arg(long, env = "PODWIRE_DELIVERY_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) delivery_timeout: Duration,
    /// At the end of the input, wait this long for the queue to drain.
    #[arg(long, env = "PODWIRE_FLUSH_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) flush_timeout: Duration,
    #[command(flatten)]
    pub(crate) tracker: TrackerArgs,
}

/// A table of the store.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TableArg {
    /// connections
    Connections,
    /// dns
    Dns,
    /// packets
    Packets,
    /// capture_stats
    CaptureStats,
}

impl TableArg {
    /// The tables of `--tables`; none given: all.
    pub(crate) fn tables(args: &[TableArg]) -> Vec<podwire_schemas::Table> {
        if args.is_empty() {
            podwire_schemas::Table::ALL.to_vec()
        } else {
            args.iter().map(|t| t.table()).collect()
        }
    }

    pub(crate) fn table(self) -> podwire_schemas::Table {
        use podwire_schemas::Table;
        match self {
            TableArg::Connections => Table::Connections,
            TableArg::Dns => Table::Dns,
            TableArg::Packets => Table::Packets,
            TableArg::CaptureStats => Table::CaptureStats,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    pub(crate) kafka: crate::kafka::KafkaArgs,
    /// The store: a folder (created if missing) or `s3://bucket/prefix` (settings from the
    /// AWS_* environment variables, see below).
    #[arg(long, env = "PODWIRE_STORE")]
    pub(crate) store: String,
    /// Pod metadata: the output of `kubectl get pods,services,nodes -A -o json` (or -o yaml).
    #[arg(long, env = "PODWIRE_INVENTORY")]
    pub(crate) inventory: Option<PathBuf>,
    /// Name pods from a live watch of the Kubernetes API (in-cluster, or the KUBECONFIG
    /// file) instead of an inventory file; needs get/list/watch on pods, services,
    /// endpointslices, nodes, replicasets and jobs.
    #[arg(long, env = "PODWIRE_KUBE", conflicts_with = "inventory")]
    pub(crate) kube: bool,
    /// Keep deleted pods this long, so that late records are named by whoever held the IP.
    #[arg(long, env = "PODWIRE_KUBE_RETENTION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub(crate) kube_retention: Duration,
    /// Consumer group: ingest processes in one group share the partitions.
    #[arg(long, env = "PODWIRE_GROUP", default_value = "podwire-ingest")]
    pub(crate) group: String,
    /// Tables to ingest (default: all).
    #[arg(long, env = "PODWIRE_TABLES", value_enum, value_delimiter = ',')]
    pub(crate) tables: Vec<TableArg>,
    /// Write a partition's buffered rows at least this often (rows become queryable then).
    #[arg(long, env = "PODWIRE_ROLL_AGE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) roll_age: Duration,
    /// ... or when this much (Arrow memory) is buffered for a partition.
    #[arg(long, env = "PODWIRE_ROLL_BYTES", default_value = "128MiB", value_parser = parse_bytes)]
    pub(crate) roll_bytes: usize,
    /// Serve /metrics (Prometheus) and /healthz here; port 0 picks a free one.
    #[arg(long, env = "PODWIRE_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// Keep this much history (e.g. 14d): every hour, delete the partitions older than that
    /// (as `podwire expire --keep`). Default: keep everything.
    #[arg(long, env = "PODWIRE_RETENTION", value_parser = parse_retention)]
    pub(crate) retention: Option<Duration>,
    /// Compact the closed hours' small files this often (e.g. 1h), as `podwire store compact`
    /// with its defaults (hours ended 2 h ago, files up to 256 MiB). Default: never (run
    /// `podwire store compact` from a CronJob instead). Several ingest processes may all run
    /// it: two compactions of one hour cannot both commit.
    #[arg(long, env = "PODWIRE_COMPACT_EVERY", value_parser = humantime::parse_duration)]
    pub(crate) compact_every: Option<Duration>,
}

const SERVE_HELP: &str = "\
Endpoints (described in full at /api/v1/openapi.json):
  POST /api/v1/query      {\"query\": \"KFL\", \"from\": \"-1h\", \"to\": \"now\", \"limit\": 100, \"format\": \"json\"}
  POST /api/v1/sql        {\"sql\": \"SELECT ...\", \"limit\": 100, \"format\": \"csv\"}   (one read-only SELECT)
  GET  /api/v1/translate?query=KFL      GET /api/v1/fields      GET /healthz      GET /metrics
Formats: json (one array), ndjson (a row per line), csv (header row), arrow (Arrow IPC stream);
`format` in the body, else the Accept header, else json. Results stream as they are computed.

Examples:
  podwire serve --store ./store                          # http://127.0.0.1:8080
  curl -s localhost:8080/api/v1/query -d '{\"query\": \"dst.namespace == \\\"\\\"\", \"limit\": 10}'
  curl -s localhost:8080/api/v1/query -H 'Accept: text/csv' -d '{\"query\": \"dns\", \"from\": \"-1h\"}'
  PODWIRE_TOKEN=$(cat token) podwire serve --store ./store --listen 0.0.0.0:8080
  curl -s -H \"Authorization: Bearer $(cat token)\" localhost:8080/api/v1/fields

A bad filter is a 400 with the error class, line, column, hint and a rendered diagnostic. Nothing a
client sends can write, create or drop tables, or read files outside the store. Listening beyond
loopback without a token logs a warning: anyone who can reach the port can read the history.";

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The store written by `podwire standalone` or `podwire ingest`: a folder, or
    /// `s3://bucket/prefix` (settings from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ENDPOINT, AWS_ALLOW_HTTP).
    #[arg(long, env = "PODWIRE_STORE")]
    pub(crate) store: PathBuf,
    /// Address and port to listen on (port 0 picks a free one; the address is logged and
    /// printed on standard output).
    #[arg(long, env = "PODWIRE_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// Require `Authorization: Bearer <TOKEN>` on every endpoint but /healthz.
    #[arg(long, env = "PODWIRE_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub(crate) token: Option<String>,
    /// Read the token from this file (e.g. a mounted Kubernetes secret); surrounding
    /// whitespace is ignored.
    #[arg(long, env = "PODWIRE_TOKEN_FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Memory all running queries may use together (e.g. 512MiB, 2GiB); big sorts spill to
    /// temporary files beyond it, and a query that still cannot fit gets a 503.
    #[arg(long, env = "PODWIRE_MEMORY_LIMIT", default_value = "1GiB", value_parser = parse_bytes)]
    pub(crate) memory_limit: usize,
    /// Queries running at once; more get a 503 with Retry-After.
    #[arg(long, env = "PODWIRE_MAX_CONCURRENT_QUERIES", default_value_t = 4)]
    pub(crate) max_concurrent_queries: usize,
    #[command(flatten)]
    pub(crate) pushdown: PushdownArgs,
    #[cfg(feature = "cluster")]
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// After SIGTERM or Ctrl-C, wait this long for running responses before exiting.
    #[arg(long, env = "PODWIRE_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) shutdown_grace: Duration,
    /// Serve the dashboard from this folder (built by `node query/web/build.cjs DIR`) instead
    /// of the copy built into the binary: for work on the page.
    #[arg(long, env = "PODWIRE_WEB_ROOT")]
    pub(crate) web_root: Option<PathBuf>,
}

const MAP_HELP: &str = "\
Nodes: namespaces (or, with --level, workloads or pods, each in its namespace), services without a
known backend, nodes (host network), external endpoints by the DNS name the client resolved or by
address, and private addresses nobody named (`unknown`). An edge goes from the initiators to the
responders: connections, failures by outcome, bytes each way, packets, handshake RTT p50/p95,
retransmissions, protocols, top ports, first and last seen. Without --from/--to: the last hour of
data. Beyond --max-nodes the lightest nodes are folded into one `other` node per namespace or kind.

Examples:
  podwire map --store ./store                                      # namespaces, last hour of data
  podwire map --store ./store --level workload --from -24h 'error'
  podwire map --store ./store --format dot 'dst.namespace == \"\"' | dot -Tsvg > outside.svg
  podwire map --store ./store --format mermaid --level pod 'src.namespace == \"shop\"'";

/// Output of `podwire map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MapFormat {
    /// The API's JSON: nodes, edges, folding, the SQL.
    Json,
    /// Graphviz: namespaces as clusters, failed edges red.
    Dot,
    /// A Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
}

/// A time window: `--from` and `--to`, shared by `query`, `map` and `translate`.
#[derive(Debug, Args)]
pub(crate) struct WindowArgs {
    /// Start of the window, inclusive (RFC 3339, a date, `now`, or relative like -1h).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) from: Option<String>,
    /// End of the window, exclusive.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) to: Option<String>,
}

impl WindowArgs {
    /// `(from, to)` in epoch ms, relative times counted from `now_ms`.
    #[cfg(feature = "query")]
    pub(crate) fn range(&self, now_ms: i64) -> anyhow::Result<(Option<i64>, Option<i64>)> {
        let at = |t: &Option<String>| {
            t.as_deref().map(|t| podwire_query::time::parse_time(t, now_ms)).transpose()
        };
        Ok((at(&self.from)?, at(&self.to)?))
    }
}

/// `--store`, for the commands that read one.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The store written by `podwire standalone` or `podwire ingest`: a folder, or
    /// `s3://bucket/prefix` (settings from the AWS_* environment variables, as for `serve`).
    #[arg(long, env = "PODWIRE_STORE")]
    pub(crate) store: PathBuf,
    /// Read the store as it was: a version of the connections table's log (`podwire store
    /// history --tables connections`), or a time (as --from). For a look before a compaction
    /// or expiry: removed files stay readable for the vacuum's grace period.
    #[arg(long, value_name = "VERSION|TIME")]
    pub(crate) as_of: Option<String>,
    #[command(flatten)]
    pub(crate) pushdown: PushdownArgs,
    #[cfg(feature = "cluster")]
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
}

/// `--pushdown`: an override of the engine's choice, for experiments and benchmarks.
#[derive(Debug, Args)]
pub(crate) struct PushdownArgs {
    /// Whether the Parquet reader applies the filter itself (late materialization): `auto`
    /// decides per query; `on`/`off` force it, for experiments. Results never change.
    #[arg(long, env = "PODWIRE_PUSHDOWN", value_enum, default_value_t = Pushdown::Auto, hide = true)]
    pub(crate) pushdown: Pushdown,
    /// The order a filter evaluates its terms in: `sampled` puts the one that keeps fewest rows
    /// in a sample of the store first; `written` keeps KFL's order, for experiments. Results
    /// never change.
    #[arg(long, env = "PODWIRE_FILTER_ORDER", value_enum, default_value_t = FilterOrder::Sampled, hide = true)]
    pub(crate) filter_order: FilterOrder,
    /// Bytes of decoded Parquet footers kept between reads of a file (0: none). By default
    /// `podwire serve` and `podwire why` keep DataFusion's 50 MB, since their queries repeat;
    /// `query` and `map`, which run one query, keep none.
    #[arg(long, env = "PODWIRE_FOOTER_CACHE", value_parser = crate::parse::parse_bytes, hide = true)]
    pub(crate) footer_cache: Option<usize>,
}

/// The values of `--filter-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FilterOrder {
    /// Fewest kept first.
    Sampled,
    /// As written.
    Written,
}

/// The values of `--pushdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Pushdown {
    /// Decided per query.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

const WHY_HELP: &str = "\
Connections are grouped by client and server as the map draws them at workload level, with
protocol and port; DNS lookups by client and name. Without --from/--to: the last hour of data.
The verdicts and their rules are listed in query/service/src/why.rs; the JSON is the API's
(GET /api/v1/why).

Examples:
  podwire why --store ./store 'dst.namespace == \"shop\"'
  podwire why --store ./store --from -24h 'src.workload == \"frontend\" and dst.port == 5432'
  podwire why --store ./store --format json '' | jq '.verdicts[] | select(.verdict != \"ok\")'";

const WHY_NOT_HELP: &str = "\
Read from the store itself: the filter's matches in the window (and, when there are none, at other
times), the capture_stats rows of every node (an agent that reported in the 7 days before the
window and not in it; packets its capture filter or protocol switches left out; packets skipped
by reason; losses in the kernel or the tracker). Without --from/--to: the last hour of data.

Examples:
  podwire why-not --store ./store --from -1h 'dst.name == \"api.example.com\"'
  podwire why-not --store ./store --format json 'src.namespace == \"payments\"'";

const INSIGHTS_HELP: &str = "\
Each item is a sentence with the KFL of its rows. New destinations are those not seen in the
window of the same length before. Without --from/--to: the last hour of data.

Examples:
  podwire insights --store ./store --from -24h
  podwire insights --store ./store --format json | jq '.items[] | select(.kind == \"new_external\")'";

/// The store, window and format of `why`, `why-not` and `insights`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) window: WindowArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = WhyFormat::Text)]
    pub(crate) format: WhyFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum WhyFormat {
    /// Sentences, with examples and the KFL of each finding.
    Text,
    /// The API's JSON.
    Json,
}

/// Which filter language the query is in.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct DialectArgs {
    /// The filter is KFL2 (CEL, Kubeshark v53 and later: `&&`, `||`, `src.pod.namespace`,
    /// `conn_state`, `timestamp > now() - duration("5m")`) instead of KFL1.
    #[arg(long, env = "PODWIRE_KFL2")]
    pub(crate) kfl2: bool,
}

#[cfg(feature = "query")]
impl DialectArgs {
    pub(crate) fn dialect(self) -> podwire_kfl::Dialect {
        if self.kfl2 { podwire_kfl::Dialect::Kfl2 } else { podwire_kfl::Dialect::Kfl1 }
    }
}

#[derive(Debug, Args)]
pub(crate) struct WhyArgs {
    #[command(flatten)]
    pub(crate) report: ReportArgs,
    #[command(flatten)]
    pub(crate) dialect: DialectArgs,
    /// The KFL filter; blank: every connection and lookup.
    #[arg(default_value = "")]
    pub(crate) query: String,
}

#[derive(Debug, Args)]
pub(crate) struct MapArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) window: WindowArgs,
    /// How finely in-cluster endpoints are drawn: namespace, workload or pod.
    #[arg(long, default_value = "namespace")]
    pub(crate) level: String,
    /// Only these namespaces at --level (comma-separated), the rest as one node each.
    #[arg(long, value_delimiter = ',')]
    pub(crate) expand: Option<Vec<String>>,
    /// Fold the lightest nodes beyond this many.
    #[arg(long, default_value_t = 300)]
    pub(crate) max_nodes: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = MapFormat::Json)]
    pub(crate) format: MapFormat,
    #[command(flatten)]
    pub(crate) dialect: DialectArgs,
    /// The KFL filter; blank: every connection.
    #[arg(default_value = "")]
    pub(crate) query: String,
}

const QUERY_HELP: &str = "\
KFL is Kubeshark's filter language: comparisons (== != < <= > >=), regex (=~ \"re\"), and/or/!,
parentheses, helpers (startsWith, endsWith, contains, datetime, now, minutes(n) ...), limit(n), and
the aliases tcp, udp, icmp, dns, error. `podwire fields` lists the fields. One stream: `dns or tcp`
mixes DNS transactions and TCP connections, in time order. A blank filter matches everything.

Examples:
  podwire query --store ./store 'dst.namespace == \"\"'                    # pods talking outside the cluster
  podwire query --store ./store 'src.namespace == \"shop\" and dst.namespace == \"payments\"'
  podwire query --store ./store 'dst.name == \"api.example.com\" and error'
  podwire query --store ./store --from -1h 'tcp and outcome == \"refused\"'
  podwire query --store ./store --from 2026-11-26T09:00:00Z --to 2026-11-26T10:00:00Z --format csv 'dns'
  podwire query --store ./store --format json --limit 10 'dst.port == 443'   # JSON lines
  podwire query --store ./store --format parquet --output refused.parquet 'outcome == \"refused\"'
  podwire query --store ./store --sql 'SELECT dst_name, count(*) FROM connections GROUP BY 1 ORDER BY 2 DESC'

KFL2 (--kfl2, or PODWIRE_KFL2=1): Kubeshark's CEL dialect over the same history, typed and with
its variables (`podwire fields --kfl2`):
  podwire query --store ./store --kfl2 'dst.pod.namespace == \"payments\" && conn_state == \"closed\"'
  podwire query --store ./store --kfl2 'dns && status_code != 0 && dns_questions.exists(q, q.endsWith(\".internal\"))'
  podwire query --store ./store --kfl2 'timestamp > now() - duration(\"15m\") && \"kube-system\" in namespaces'

Times (--from, --to): RFC 3339 (2026-11-26T09:00:00Z), a date (2026-11-26, midnight UTC), `now`,
or relative to now (-1h, -30m, -2days). The range is [from, to): hour folders outside it are not read.

Time travel (--as-of): the store's tables are Delta tables, so an older snapshot can be read.
  podwire store history --tables connections          # the versions, with what each changed
  podwire query --store ./store --as-of 41 'tcp'       # connections at version 41
  podwire query --store ./store --as-of -2h 'dns'      # every table as it was two hours ago

A filter that does not parse or check exits with status 1 and a diagnostic that points at the
error (class, line:col, a caret under the query, and a hint).";

const TRANSLATE_HELP: &str = "\
Examples:
  podwire translate 'dst.namespace == \"\" and tcp'
  podwire translate 'dns or error'                 # a UNION ALL over connections and dns
  podwire translate --compact 'src.pod.name startsWith \"web-\"'
  podwire translate --kfl2 'tcp && dst.port in [80, 443] && !(\"kube-system\" in namespaces)'";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON lines: one object per row.
    Json,
    /// Parquet (needs --output).
    Parquet,
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) window: WindowArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,
    /// At most this many rows (the smaller of this and the filter's `limit(n)`).
    #[arg(long)]
    pub(crate) limit: Option<u64>,
    /// Write to this file instead of standard output (required for parquet).
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// The query is SQL, not KFL: one SELECT over the tables connections, dns, packets and
    /// capture_stats (plus their `date` and `hour` partition columns); nothing else is accepted.
    #[arg(long)]
    pub(crate) sql: bool,
    /// Print the query's plan instead of its rows: the physical plan, or with --cluster the
    /// stages the cluster runs.
    #[arg(long)]
    pub(crate) explain: bool,
    #[command(flatten)]
    pub(crate) dialect: DialectArgs,
    /// The KFL filter (blank: everything).
    #[arg(default_value = "")]
    pub(crate) query: String,
}

#[derive(Debug, Args)]
pub(crate) struct TranslateArgs {
    /// The time range folded into the SQL, as `podwire query` does.
    #[command(flatten)]
    pub(crate) window: WindowArgs,
    /// One line, no header comment.
    #[arg(long)]
    pub(crate) compact: bool,
    #[command(flatten)]
    pub(crate) dialect: DialectArgs,
    /// The KFL filter.
    #[arg(default_value = "")]
    pub(crate) query: String,
}

#[derive(Debug, Args)]
pub(crate) struct FieldsArgs {
    /// Only the names, one per line.
    #[arg(long)]
    pub(crate) names: bool,
    /// The KFL2 variables instead, with what each reads (or that podwire does not record it).
    #[command(flatten)]
    pub(crate) dialect: DialectArgs,
}

const STANDALONE_HELP: &str = "\
Live capture (Linux, eBPF): --interface/--pod-interface/--host-interface attach TC classifiers that
count packets per connection in the kernel and hand user space only what a record needs (first
packets, SYN/FIN/RST, DNS, ICMP errors). Runs until SIGTERM/Ctrl-C or --duration; rows are written
every --flush-interval. What the kernel could not count is in the capture_stats table.

  podwire standalone --pod-interface 'veth*' --host-interface eth0 --pod-cidr 10.244.1.0/24 \
      --inventory pods.json --store ./store

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
    /// Which traffic becomes records. `dns` is port 53 over UDP or TCP (the DNS transactions
    /// and their connections; off: no dns rows and no dst_dns_name); `icmp` includes the
    /// unreachable errors that explain failed connections. The rest is counted as filtered
    /// (`packets_filtered`); live capture drops it in the kernel. E.g. `--protocols tcp,dns`.
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_PROTOCOLS", default_value = "tcp,udp,dns,icmp")]
    pub(crate) protocols: Vec<ProtocolSwitch>,
    /// Emit an interim row for connections with traffic at least this often.
    #[arg(long, env = "PODWIRE_ACTIVE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) active_timeout: Duration,
    /// Finish a UDP pseudo-connection after this long without packets.
    #[arg(long, env = "PODWIRE_UDP_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub(crate) udp_timeout: Duration,
    /// Finish an idle TCP connection after this long without packets.
    #[arg(long, env = "PODWIRE_TCP_TIMEOUT", default_value = "15m", value_parser = humantime::parse_duration)]
    pub(crate) tcp_timeout: Duration,
    /// Keep a closed TCP connection this long for late packets (final ACKs, retransmitted FINs)
    /// before its final row is written [default: 10s for capture files, 2s live, so rows are
    /// queryable sooner].
    #[arg(long, env = "PODWIRE_TCP_CLOSE_LINGER", value_parser = humantime::parse_duration)]
    pub(crate) tcp_close_linger: Option<Duration>,
    /// Most connections tracked at once; when full, the least recently seen are finished early
    /// (counted as evicted). Memory grows with this, never with packets.
    #[arg(long, env = "PODWIRE_MAX_CONNECTIONS", default_value_t = 500_000)]
    pub(crate) max_connections: usize,
}

#[derive(Debug, Args)]
pub(crate) struct StandaloneArgs {
    /// Capture file(s) to read: pcap or pcapng (tcpdump -w, tshark -w, dumpcap); `-` reads
    /// standard input, e.g. `tcpdump -i any -w - | podwire standalone --pcap - ...`. Or capture
    /// live with --interface / --pod-interface / --host-interface.
    #[arg(long, num_args = 1.., env = "PODWIRE_PCAP", value_delimiter = ',', required_unless_present_any = LIVE_FLAGS, conflicts_with_all = LIVE_FLAGS)]
    pub(crate) pcap: Vec<PathBuf>,
    /// Pod metadata: the output of `kubectl get pods,services,nodes -A -o json` (or -o yaml).
    #[arg(long, env = "PODWIRE_INVENTORY")]
    pub(crate) inventory: Option<PathBuf>,
    /// The store: a folder (created if missing) or `s3://bucket/prefix` (settings from the AWS_*
    /// environment variables, as for `ingest`).
    #[arg(long, env = "PODWIRE_STORE")]
    pub(crate) store: PathBuf,
    #[command(flatten)]
    pub(crate) live: LiveArgs,
    #[command(flatten)]
    pub(crate) tracker: TrackerArgs,
}

/// A protocol switch of `--protocols` (podwire_capture::protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProtocolSwitch {
    Tcp,
    Udp,
    Dns,
    Icmp,
}

impl TrackerArgs {
    /// The protocol switches asked for.
    pub(crate) fn protocols(&self) -> podwire_capture::protocols::Protocols {
        let on = |p| self.protocols.contains(&p);
        podwire_capture::protocols::Protocols {
            tcp: on(ProtocolSwitch::Tcp),
            udp: on(ProtocolSwitch::Udp),
            dns: on(ProtocolSwitch::Dns),
            icmp: on(ProtocolSwitch::Icmp),
        }
    }
}

/// The flags that select live capture instead of --pcap.
const LIVE_FLAGS: [&str; 3] = ["interface", "pod_interface", "host_interface"];

/// Live capture on this machine's interfaces (eBPF; root or CAP_BPF + CAP_NET_ADMIN +
/// CAP_PERFMON).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Live capture (eBPF)")]
pub(crate) struct LiveArgs {
    /// Interface(s) to capture on, both directions, everything counted (`*` patterns allowed).
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_INTERFACE")]
    pub(crate) interface: Vec<String>,
    /// Host-side pod veths, e.g. 'veth*', 'cali*', 'lxc*': a packet is counted as it leaves its
    /// pod, or as it enters a pod from outside the node. Patterns are re-matched every 5 s, so
    /// new pods are picked up.
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_POD_INTERFACE")]
    pub(crate) pod_interface: Vec<String>,
    /// Node uplinks (eth0, ens5): count only traffic no pod veth sees (host network). Pod
    /// traffic on them is told apart by the pod networks (--pod-cidr, or read from the routes).
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_HOST_INTERFACE")]
    pub(crate) host_interface: Vec<String>,
    /// This node's pod network(s) (`kubectl get node NAME -o jsonpath='{.spec.podCIDRs}'`).
    /// Default: read from the routes onto the pod interfaces and the bridge they are ports of
    /// (flannel's cni0, per-pod routes of kindnet, Calico, AWS VPC CNI), again every 5 s. Give
    /// it with Cilium, whose pod routes go through cilium_host.
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_POD_CIDR")]
    pub(crate) pod_cidr: Vec<podwire_capture::ebpf::Cidr>,
    /// Capture only packets with an end in these networks (applied in the kernel).
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_ONLY_CIDR")]
    pub(crate) only_cidr: Vec<podwire_capture::ebpf::Cidr>,
    /// Capture only TCP/UDP packets with one of these ports (applied in the kernel).
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_ONLY_PORT")]
    pub(crate) only_port: Vec<u16>,
    /// Capture only traffic of pods (and service ClusterIPs) in these namespaces: resolved to
    /// addresses with the inventory, again every 5 s.
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_ONLY_NAMESPACE")]
    pub(crate) only_namespace: Vec<String>,
    /// Capture only traffic of these workloads' pods (`NAME` or `Kind/NAME`), via the inventory.
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_ONLY_WORKLOAD")]
    pub(crate) only_workload: Vec<String>,
    /// Capture only traffic of pods with these labels (`app=web`; `app=web,tier=front` needs
    /// both; repeat the flag for either), via the inventory.
    #[arg(long, env = "PODWIRE_ONLY_LABEL")]
    pub(crate) only_label: Vec<String>,
    /// Capture only traffic of pods whose name matches this regular expression (unanchored, as
    /// Kubeshark's `tap.regex`: `^web-` for names starting with web-), via the inventory.
    #[arg(long, env = "PODWIRE_ONLY_POD_REGEX")]
    pub(crate) only_pod_regex: Vec<String>,
    /// Leave out the pods of these namespaces (`kube-system`): with no --only-* selector, every
    /// other pod is captured. Via the inventory, like the --only-* flags.
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "PODWIRE_EXCLUDE_NAMESPACE")]
    pub(crate) exclude_namespace: Vec<String>,
    /// A capture filter file (`cidr NET`, `port N`, `namespace NS`, `workload NAME`,
    /// `service NAME`, `pod NAME`, `label K=V[,K=V]` lines), re-read when it changes: the filter changes without a
    /// restart. Replaces the --only-* flags.
    #[arg(long, env = "PODWIRE_FILTER_FILE")]
    pub(crate) filter_file: Option<PathBuf>,
    /// Flows the kernel table holds (LRU; evictions before a read are counted as loss).
    #[arg(long, env = "PODWIRE_KERNEL_FLOWS", default_value_t = 131_072)]
    pub(crate) kernel_flows: u32,
    /// Ring-buffer size for packets handed to user space (rounded up to a power of two).
    #[arg(long, env = "PODWIRE_RING_BYTES", default_value = "8MiB", value_parser = parse_bytes)]
    pub(crate) ring_bytes: usize,
    /// How often the kernel's counters are read.
    #[arg(long, env = "PODWIRE_READ_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) read_interval: Duration,
    /// How often rows made so far are sent (capture) or handed to the store writer
    /// (standalone, which writes files every 5 s, or every flush when that is longer). One
    /// second keeps packet → answer within 10 s at p90 through ingest and `podwire serve`
    /// (benchmarks/README.md, freshness); a message per table and second costs Kafka little.
    #[arg(long, env = "PODWIRE_FLUSH_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) flush_interval: Duration,
    /// Serve Prometheus metrics (packets, connections, kernel loss counters) and /healthz here,
    /// e.g. 0.0.0.0:9464.
    #[arg(long, env = "PODWIRE_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// Stop after this long (default: until SIGTERM or Ctrl-C).
    #[arg(long, env = "PODWIRE_DURATION", value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,
}

impl LiveArgs {
    /// Whether live capture was asked for.
    pub(crate) fn enabled(&self) -> bool {
        !(self.interface.is_empty()
            && self.pod_interface.is_empty()
            && self.host_interface.is_empty())
    }
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where to write the demo's store.
    #[arg(long, env = "PODWIRE_STORE", default_value = "podwire-demo-store")]
    pub(crate) store: PathBuf,
    /// Print the listing and exit instead of serving the dashboard (for scripts).
    #[arg(long)]
    pub(crate) no_serve: bool,
    /// Where the dashboard listens (loopback; port 0 picks a free one).
    #[arg(long, env = "PODWIRE_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
}

/// Sets up `tracing` on stderr: `RUST_LOG` filters (default `info`, but `warn` for the Delta
/// libraries, whose `info` narrates every snapshot they build).
pub(crate) fn init_logging(format: LogFormat, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet {
        "error"
    } else {
        "info,delta_kernel=warn,buoyant_kernel=warn,buoyant_kernel_engine=warn,deltalake_core=warn,\
         ballista_core=warn"
    };
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
