//! The `dns` table: one row per DNS transaction (a query and its response, matched by client
//! address and port, server address and port, and transaction id). `src` is the client, `dst` the server.
use crate::endpoint::{self, EndpointBuilder, EndpointMeta, Side};
use crate::{Table, metadata, timestamp_type, ts_from_ns};
use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

/// Column names of the `dns` table.
pub mod col {
    /// Query time (response time when the query was not seen).
    pub const TS: &str = "ts";
    /// Response time.
    pub const RESPONSE_TS: &str = "response_ts";
    /// Response time minus query time, microseconds.
    pub const LATENCY_US: &str = "latency_us";
    /// `conn_id` of the connection that carried the transaction.
    pub const CONN_ID: &str = "conn_id";
    /// `udp` or `tcp`.
    pub const PROTOCOL: &str = "protocol";
    /// Client address.
    pub const SRC_IP: &str = "src_ip";
    /// Client port.
    pub const SRC_PORT: &str = "src_port";
    /// Server address.
    pub const DST_IP: &str = "dst_ip";
    /// Server port.
    pub const DST_PORT: &str = "dst_port";
    /// DNS transaction id.
    pub const DNS_ID: &str = "dns_id";
    /// First question's name, without the trailing dot.
    pub const QUERY_NAME: &str = "query_name";
    /// First question's type (`A`, `AAAA`, ...).
    pub const QUERY_TYPE: &str = "query_type";
    /// Response code (`NOERROR`, `NXDOMAIN`, ...); `''` when no response was seen.
    pub const RCODE: &str = "rcode";
    /// Answer records as `TYPE value`.
    pub const ANSWERS: &str = "answers";
    /// Addresses of the A and AAAA answers.
    pub const ANSWER_IPS: &str = "answer_ips";
    /// Smallest TTL among the answers, seconds.
    pub const TTL_MIN: &str = "ttl_min";
    /// `answered`, `no_response` or `response_only`.
    pub const OUTCOME: &str = "outcome";
    /// Capturing node.
    pub const NODE: &str = "node";
}

/// Values of the `dns.outcome` column.
pub mod outcome {
    /// Query and response seen.
    pub const ANSWERED: &str = "answered";
    /// Query seen, no response within the timeout.
    pub const NO_RESPONSE: &str = "no_response";
    /// Response seen without its query.
    pub const RESPONSE_ONLY: &str = "response_only";
}

/// The `rcode` names of the response codes 0 to 10, the way dig and Kubeshark write them; any
/// other code is stored as `RCODE<n>`.
pub const RCODE_NAMES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

/// The `rcode` of a successful response.
pub const RCODE_OK: &str = RCODE_NAMES[0];

/// The prefix of a response code without a name (`RCODE11`).
pub const RCODE_PREFIX: &str = "RCODE";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    let strf = |n: &str| Field::new(n, Utf8, false);
    let list = || List(Arc::new(Field::new("item", Utf8, false)));
    let mut fields = vec![
        Field::new(col::TS, timestamp_type(), false),
        Field::new(col::RESPONSE_TS, timestamp_type(), true),
        Field::new(col::LATENCY_US, Int64, true),
        Field::new(col::CONN_ID, Int64, false),
        strf(col::PROTOCOL),
        strf(col::SRC_IP),
        Field::new(col::SRC_PORT, Int32, false),
        strf(col::DST_IP),
        Field::new(col::DST_PORT, Int32, false),
        Field::new(col::DNS_ID, Int32, false),
        strf(col::QUERY_NAME),
        strf(col::QUERY_TYPE),
        strf(col::RCODE),
        Field::new(col::ANSWERS, list(), false),
        Field::new(col::ANSWER_IPS, list(), false),
        Field::new(col::TTL_MIN, Int64, true),
        strf(col::OUTCOME),
        strf(col::NODE),
    ];
    fields.extend(endpoint::fields(Side::Src));
    fields.extend(endpoint::fields(Side::Dst));
    Arc::new(Schema::new_with_metadata(fields, metadata(Table::Dns)))
});

/// The `dns` schema.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// One row of the `dns` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Query time, ns since the epoch (response time when no query was seen).
    pub ts_ns: i64,
    /// Response time, ns.
    pub response_ns: Option<i64>,
    /// Connection that carried it.
    pub conn_id: i64,
    /// `udp` or `tcp`.
    pub protocol: &'static str,
    /// Client.
    pub src_ip: IpAddr,
    /// Client port.
    pub src_port: u16,
    /// Server.
    pub dst_ip: IpAddr,
    /// Server port.
    pub dst_port: u16,
    /// Transaction id.
    pub dns_id: u16,
    /// First question's name, without the trailing dot.
    pub query_name: String,
    /// First question's type.
    pub query_type: String,
    /// Response code; empty without a response.
    pub rcode: String,
    /// Answer records as `TYPE value`.
    pub answers: Vec<String>,
    /// A and AAAA answer addresses.
    pub answer_ips: Vec<IpAddr>,
    /// Smallest answer TTL, seconds.
    pub ttl_min: Option<u32>,
    /// One of [`outcome`].
    pub outcome: &'static str,
    /// Capturing node (shared: one allocation per run, not per row).
    pub node: Arc<str>,
    /// Client's pod metadata.
    pub src_meta: EndpointMeta,
    /// Server's pod metadata.
    pub dst_meta: EndpointMeta,
}

/// Appends [`DnsRecord`]s and finishes them into a `RecordBatch` of [`schema`].
#[derive(Debug, Default)]
pub struct DnsBuilder {
    ts: TimestampMicrosecondBuilder,
    response_ts: TimestampMicrosecondBuilder,
    latency: Int64Builder,
    conn_id: Int64Builder,
    protocol: StringBuilder,
    src_ip: StringBuilder,
    src_port: Int32Builder,
    dst_ip: StringBuilder,
    dst_port: Int32Builder,
    dns_id: Int32Builder,
    query_name: StringBuilder,
    query_type: StringBuilder,
    rcode: StringBuilder,
    answers: ListBuilder<StringBuilder>,
    answer_ips: ListBuilder<StringBuilder>,
    ttl_min: Int64Builder,
    outcome: StringBuilder,
    node: StringBuilder,
    src_meta: EndpointBuilder,
    dst_meta: EndpointBuilder,
    rows: usize,
}

fn item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

impl DnsBuilder {
    /// Rows appended since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last [`Self::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row.
    pub fn append(&mut self, r: &DnsRecord) {
        self.rows += 1;
        self.ts.append_value(ts_from_ns(r.ts_ns));
        self.response_ts.append_option(r.response_ns.map(ts_from_ns));
        let latency = r.response_ns.filter(|_| r.outcome == outcome::ANSWERED);
        self.latency.append_option(latency.map(|t| (t - r.ts_ns) / 1_000));
        self.conn_id.append_value(r.conn_id);
        self.protocol.append_value(r.protocol);
        crate::append_ip(&mut self.src_ip, r.src_ip);
        self.src_port.append_value(i32::from(r.src_port));
        crate::append_ip(&mut self.dst_ip, r.dst_ip);
        self.dst_port.append_value(i32::from(r.dst_port));
        self.dns_id.append_value(i32::from(r.dns_id));
        self.query_name.append_value(&r.query_name);
        self.query_type.append_value(&r.query_type);
        self.rcode.append_value(&r.rcode);
        for a in &r.answers {
            self.answers.values().append_value(a);
        }
        self.answers.append(true);
        for ip in &r.answer_ips {
            let _ = write!(self.answer_ips.values(), "{ip}");
            self.answer_ips.values().append_value("");
        }
        self.answer_ips.append(true);
        self.ttl_min.append_option(r.ttl_min.map(i64::from));
        self.outcome.append_value(r.outcome);
        self.node.append_value(&r.node);
        self.src_meta.append(&r.src_meta);
        self.dst_meta.append(&r.dst_meta);
    }

    /// Finishes the appended rows into a batch and resets the builder.
    ///
    /// # Errors
    /// Only on a bug here (columns of different lengths).
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone(crate::TIMEZONE)),
            Arc::new(self.response_ts.finish().with_timezone(crate::TIMEZONE)),
            Arc::new(self.latency.finish()),
            Arc::new(self.conn_id.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.src_port.finish()),
            Arc::new(self.dst_ip.finish()),
            Arc::new(self.dst_port.finish()),
            Arc::new(self.dns_id.finish()),
            Arc::new(self.query_name.finish()),
            Arc::new(self.query_type.finish()),
            Arc::new(self.rcode.finish()),
            Arc::new(self.answers.finish()),
            Arc::new(self.answer_ips.finish()),
            Arc::new(self.ttl_min.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.node.finish()),
        ];
        cols.extend(self.src_meta.finish());
        cols.extend(self.dst_meta.finish());
        RecordBatch::try_new(schema(), cols)
    }
}

impl DnsBuilder {
    /// A builder whose list columns carry the schema's non-nullable item field.
    pub fn new() -> Self {
        DnsBuilder {
            answers: ListBuilder::new(StringBuilder::new()).with_field(item_field()),
            answer_ips: ListBuilder::new(StringBuilder::new()).with_field(item_field()),
            ..Default::default()
        }
    }
}
