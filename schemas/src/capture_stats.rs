//! The `capture_stats` table: what each capture saw and did not turn into records, per node and
//! minute of packet time. It answers "why don't I see this traffic" in a query: packets skipped
//! by reason, connections evicted from a full table, DNS payloads that did not parse.
use crate::{Table, metadata, timestamp_type, ts_from_ns};
use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use std::sync::{Arc, LazyLock};

/// Column names of the `capture_stats` table.
pub mod col {
    /// Start of the interval (packet time).
    pub const TS: &str = "ts";
    /// End of the interval.
    pub const END_TS: &str = "end_ts";
    /// Capturing node.
    pub const NODE: &str = "node";
    /// The packet source, e.g. `pcap:node-a.pcap`.
    pub const SOURCE: &str = "source";
    /// Packets read.
    pub const PACKETS: &str = "packets";
    /// Captured bytes read.
    pub const BYTES: &str = "bytes";
    /// Packets counted on a connection.
    pub const PACKETS_TRACKED: &str = "packets_tracked";
    /// Packets skipped, all reasons.
    pub const SKIPPED: &str = "skipped";
    /// Connections finished early because the table was full.
    pub const CONNECTIONS_EVICTED: &str = "connections_evicted";
    /// Port-53 payloads that did not parse as DNS.
    pub const DNS_PARSE_ERRORS: &str = "dns_parse_errors";
    /// Packets seen on more than one attached interface, counted on one of them only (eBPF).
    pub const PACKETS_DEDUPLICATED: &str = "packets_deduplicated";
    /// Packets outside the capture filter (eBPF).
    pub const PACKETS_FILTERED: &str = "packets_filtered";
    /// Packets the kernel counted without sending them to user space for lack of ring-buffer
    /// room: counted, but their flags, DNS or handshake RTT may be missing (eBPF).
    pub const EVENTS_LOST: &str = "events_lost";
    /// Packets not counted at all: the kernel's flow table was full, or an ICMP error or IP
    /// fragment found the ring buffer full (eBPF).
    pub const PACKETS_LOST: &str = "packets_lost";
    /// Flows the kernel's LRU flow table evicted before their counters were read (their
    /// packets since the last read are lost) (eBPF).
    pub const KERNEL_FLOWS_EVICTED: &str = "kernel_flows_evicted";
    /// Prefix of the per-reason skip columns (`skipped_<reason>`).
    pub const SKIPPED_PREFIX: &str = "skipped_";
}

/// The skip reasons, each a column `skipped_<reason>`, in schema order. The capture crate maps
/// its reasons onto these names.
pub const SKIP_REASONS: [&str; 9] = [
    "not_ip",
    "truncated_link_header",
    "bad_ip_header",
    "bad_transport_header",
    "other_ip_protocol",
    "bad_fragment",
    "too_many_encapsulations",
    "unknown_tunnel",
    "unreadable_icmp_quote",
];

/// The columns only live (eBPF) capture fills; 0 on rows of capture files.
pub const KERNEL_COLUMNS: [&str; 5] = [
    col::PACKETS_DEDUPLICATED,
    col::PACKETS_FILTERED,
    col::EVENTS_LOST,
    col::PACKETS_LOST,
    col::KERNEL_FLOWS_EVICTED,
];

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let i64f = |n: &str| Field::new(n, DataType::Int64, false);
    let mut fields = vec![
        Field::new(col::TS, timestamp_type(), false),
        Field::new(col::END_TS, timestamp_type(), false),
        Field::new(col::NODE, DataType::Utf8, false),
        Field::new(col::SOURCE, DataType::Utf8, false),
        i64f(col::PACKETS),
        i64f(col::BYTES),
        i64f(col::PACKETS_TRACKED),
        i64f(col::SKIPPED),
    ];
    fields.extend(SKIP_REASONS.iter().map(|r| i64f(&format!("{}{r}", col::SKIPPED_PREFIX))));
    fields.push(i64f(col::CONNECTIONS_EVICTED));
    fields.push(i64f(col::DNS_PARSE_ERRORS));
    for c in KERNEL_COLUMNS {
        fields.push(i64f(c));
    }
    Arc::new(Schema::new_with_metadata(fields, metadata(Table::CaptureStats)))
});

/// The `capture_stats` schema.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// One row of the `capture_stats` table: counters over `[start_ns, end_ns]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStatsRecord {
    /// Interval start, ns since the epoch.
    pub start_ns: i64,
    /// Interval end, ns.
    pub end_ns: i64,
    /// Capturing node.
    pub node: String,
    /// Packet source.
    pub source: String,
    /// Packets read.
    pub packets: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Packets counted on a connection.
    pub packets_tracked: u64,
    /// Skipped packets per reason, in [`SKIP_REASONS`] order.
    pub skipped: [u64; 9],
    /// Connections evicted.
    pub connections_evicted: u64,
    /// DNS parse errors.
    pub dns_parse_errors: u64,
    /// The [`KERNEL_COLUMNS`], in order.
    pub kernel: [u64; 5],
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Appends [`CaptureStatsRecord`]s and finishes them into a `RecordBatch` of [`schema`].
#[derive(Debug, Default)]
pub struct CaptureStatsBuilder {
    ts: TimestampMicrosecondBuilder,
    end_ts: TimestampMicrosecondBuilder,
    node: StringBuilder,
    source: StringBuilder,
    counters: Vec<Int64Builder>,
    rows: usize,
}

impl CaptureStatsBuilder {
    /// Rows appended since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last [`Self::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row.
    pub fn append(&mut self, r: &CaptureStatsRecord) {
        self.rows += 1;
        self.ts.append_value(ts_from_ns(r.start_ns));
        self.end_ts.append_value(ts_from_ns(r.end_ns));
        self.node.append_value(&r.node);
        self.source.append_value(&r.source);
        let skipped: u64 = r.skipped.iter().sum();
        let values = [r.packets, r.bytes, r.packets_tracked, skipped]
            .into_iter()
            .chain(r.skipped)
            .chain([r.connections_evicted, r.dns_parse_errors])
            .chain(r.kernel);
        let n = 4 + SKIP_REASONS.len() + 2 + KERNEL_COLUMNS.len();
        self.counters.resize_with(n, Int64Builder::new);
        for (b, v) in self.counters.iter_mut().zip(values) {
            b.append_value(clamp(v));
        }
    }

    /// Finishes the appended rows into a batch and resets the builder.
    ///
    /// # Errors
    /// Only on a bug here (columns of different lengths).
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let n = 4 + SKIP_REASONS.len() + 2 + KERNEL_COLUMNS.len();
        self.counters.resize_with(n, Int64Builder::new);
        self.rows = 0;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone(crate::TIMEZONE)),
            Arc::new(self.end_ts.finish().with_timezone(crate::TIMEZONE)),
            Arc::new(self.node.finish()),
            Arc::new(self.source.finish()),
        ];
        cols.extend(self.counters.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        RecordBatch::try_new(schema(), cols)
    }
}
