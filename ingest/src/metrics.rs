//! Ingest's Prometheus metrics (OpenMetrics text, served by `podwire ingest --metrics-listen`).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `podwire_ingest_messages_total` | counter | `table` | messages decoded and accepted |
//! | `podwire_ingest_rows_total` | counter | `table` | rows accepted |
//! | `podwire_ingest_dead_letters_total` | counter | `reason` | messages sent to the dead-letter topic (`missing_header`, `bad_header`, `version`, `ipc`, `schema`, `rows`, `enrich`) |
//! | `podwire_ingest_files_written_total` | counter | `table` | Parquet files made durable |
//! | `podwire_ingest_rows_written_total` | counter | `table` | rows in them |
//! | `podwire_ingest_bytes_written_total` | counter | | bytes in them |
//! | `podwire_ingest_segments_committed_total` | counter | | offset ranges written and committed |
//! | `podwire_ingest_store_errors_total` | counter | | failed attempts to write a segment |
//! | `podwire_ingest_commit_errors_total` | counter | | failed offset commits |
//! | `podwire_ingest_dead_letter_errors_total` | counter | | failed attempts to deliver dead letters |
//! | `podwire_ingest_roll_failures_total` | counter | `reason` | rolls given up, which stops the run (`not_retryable`, `attempts`) |
//! | `podwire_ingest_consumer_errors_total` | counter | | errors reported by the consumer |
//! | `podwire_ingest_sequence_gaps_total` | counter | `table` | batches missing from a producer's sequence (lost before Kafka) |
//! | `podwire_ingest_producer_dropped_rows` | gauge | `node` | rows the node's capture reported it could not deliver (cumulative, last seen) |
//! | `podwire_ingest_buffered_rows` | gauge | | rows in open segments |
//! | `podwire_ingest_freshness_seconds` | gauge | | at the last commit: now minus the newest event time committed |
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

/// The registry and its handles.
#[derive(Debug)]
pub struct IngestMetrics {
    registry: Registry,
    messages: Family<TableLabel, Counter>,
    rows: Family<TableLabel, Counter>,
    dead_letters: Family<ReasonLabel, Counter>,
    files: Family<TableLabel, Counter>,
    rows_written: Family<TableLabel, Counter>,
    bytes_written: Counter,
    segments: Counter,
    store_errors: Counter,
    commit_errors: Counter,
    dead_letter_errors: Counter,
    roll_failures: Family<ReasonLabel, Counter>,
    consumer_errors: Counter,
    gaps: Family<TableLabel, Counter>,
    producer_dropped: Family<NodeLabel, Gauge>,
    buffered: Gauge,
    freshness: Gauge<f64, AtomicU64>,
    expired_partitions: Counter,
    expired_bytes: Counter,
    retention_errors: Counter,
    compacted_files: Counter,
    compaction_errors: Counter,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestMetrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("podwire_ingest");
        let messages = Family::<TableLabel, Counter>::default();
        r.register("messages", "Messages decoded and accepted", messages.clone());
        let rows = Family::<TableLabel, Counter>::default();
        r.register("rows", "Rows accepted", rows.clone());
        let dead_letters = Family::<ReasonLabel, Counter>::default();
        r.register("dead_letters", "Messages sent to the dead-letter topic", dead_letters.clone());
        let files = Family::<TableLabel, Counter>::default();
        r.register("files_written", "Parquet files made durable", files.clone());
        let rows_written = Family::<TableLabel, Counter>::default();
        r.register("rows_written", "Rows in durable files", rows_written.clone());
        let bytes_written = Counter::default();
        r.register("bytes_written", "Bytes in durable files", bytes_written.clone());
        let segments = Counter::default();
        r.register("segments_committed", "Offset ranges written and committed", segments.clone());
        let store_errors = Counter::default();
        r.register("store_errors", "Failed attempts to write a segment", store_errors.clone());
        let commit_errors = Counter::default();
        r.register("commit_errors", "Failed offset commits", commit_errors.clone());
        let dead_letter_errors = Counter::default();
        r.register(
            "dead_letter_errors",
            "Failed attempts to deliver dead letters",
            dead_letter_errors.clone(),
        );
        let roll_failures = Family::<ReasonLabel, Counter>::default();
        r.register(
            "roll_failures",
            "Rolls given up (the run stops; the range is replayed by the next)",
            roll_failures.clone(),
        );
        let consumer_errors = Counter::default();
        r.register("consumer_errors", "Errors reported by the consumer", consumer_errors.clone());
        let gaps = Family::<TableLabel, Counter>::default();
        r.register("sequence_gaps", "Batches missing from a producer's sequence", gaps.clone());
        let producer_dropped = Family::<NodeLabel, Gauge>::default();
        r.register(
            "producer_dropped_rows",
            "Rows a node's capture reported it could not deliver (cumulative)",
            producer_dropped.clone(),
        );
        let buffered = Gauge::default();
        r.register("buffered_rows", "Rows in open segments", buffered.clone());
        let freshness = Gauge::<f64, AtomicU64>::default();
        r.register(
            "freshness_seconds",
            "At the last commit: now minus the newest event time committed",
            freshness.clone(),
        );
        let expired_partitions = Counter::default();
        r.register(
            "expired_partitions",
            "Hourly partitions deleted by retention (--retention)",
            expired_partitions.clone(),
        );
        let expired_bytes = Counter::default();
        r.register("expired_bytes", "Bytes deleted by retention", expired_bytes.clone());
        let retention_errors = Counter::default();
        r.register(
            "retention_errors",
            "Retention runs that failed (the next run retries)",
            retention_errors.clone(),
        );
        let compacted_files = Counter::default();
        r.register(
            "compacted_files",
            "Small files replaced by compaction (--compact-every)",
            compacted_files.clone(),
        );
        let compaction_errors = Counter::default();
        r.register(
            "compaction_errors",
            "Hours whose compaction failed, and failed compaction runs (the next run retries)",
            compaction_errors.clone(),
        );
        IngestMetrics {
            compacted_files,
            compaction_errors,
            expired_partitions,
            expired_bytes,
            retention_errors,
            registry: r,
            messages,
            rows,
            dead_letters,
            files,
            rows_written,
            bytes_written,
            segments,
            store_errors,
            commit_errors,
            dead_letter_errors,
            roll_failures,
            consumer_errors,
            gaps,
            producer_dropped,
            buffered,
            freshness,
        }
    }

    fn table(t: &str) -> TableLabel {
        TableLabel { table: t.to_owned() }
    }

    /// An accepted message.
    pub fn message(&self, table: &str, rows: u64) {
        self.messages.get_or_create(&Self::table(table)).inc();
        self.rows.get_or_create(&Self::table(table)).inc_by(rows);
    }

    /// A dead letter.
    pub fn dead_letter(&self, reason: &str) {
        self.dead_letters.get_or_create(&ReasonLabel { reason: reason.to_owned() }).inc();
    }

    /// Files made durable.
    pub fn written(&self, table: &str, files: u32, rows: u64, bytes: u64) {
        self.files.get_or_create(&Self::table(table)).inc_by(u64::from(files));
        self.rows_written.get_or_create(&Self::table(table)).inc_by(rows);
        self.bytes_written.inc_by(bytes);
    }

    /// A committed segment, and the newest event time in it (µs since the epoch).
    pub fn committed(&self, newest_event_us: Option<i64>) {
        self.segments.inc();
        if let Some(t) = newest_event_us {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.freshness.set(now - t as f64 / 1e6);
        }
    }

    /// A failed segment write.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// A failed commit.
    pub fn commit_error(&self) {
        self.commit_errors.inc();
    }

    /// A failed delivery of dead letters.
    pub fn dead_letter_error(&self) {
        self.dead_letter_errors.inc();
    }

    /// A roll given up: its failure is not retryable, or the attempts allowed ran out.
    pub fn roll_failed(&self, retryable: bool) {
        let reason = if retryable { "attempts" } else { "not_retryable" };
        self.roll_failures.get_or_create(&ReasonLabel { reason: reason.to_owned() }).inc();
    }

    /// A consumer error.
    pub fn consumer_error(&self) {
        self.consumer_errors.inc();
    }

    /// Batches missing from a producer's sequence.
    pub fn gap(&self, table: &str, missing: u64) {
        self.gaps.get_or_create(&Self::table(table)).inc_by(missing);
    }

    /// A node's cumulative dropped rows, as its last message said.
    pub fn producer_dropped(&self, node: &str, rows: u64) {
        self.producer_dropped
            .get_or_create(&NodeLabel { node: node.to_owned() })
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// What a retention run deleted.
    pub fn expired(&self, partitions: u64, bytes: u64) {
        self.expired_partitions.inc_by(partitions);
        self.expired_bytes.inc_by(bytes);
    }

    /// A retention run that failed.
    pub fn retention_error(&self) {
        self.retention_errors.inc();
    }

    /// What a compaction run did: files replaced, hours that failed.
    pub fn compacted(&self, files: u64, failed: u64) {
        self.compacted_files.inc_by(files);
        self.compaction_errors.inc_by(failed);
    }

    /// Rows in open segments.
    pub fn buffered(&self, rows: u64) {
        self.buffered.set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
