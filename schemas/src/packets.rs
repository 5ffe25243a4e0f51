//! The optional `packets` table: one row per TCP/UDP/ICMP packet header (the "TCP log" view).
//! Off by default: it costs a row per packet. `src` is the packet's sender.
use crate::endpoint::{self, EndpointBuilder, EndpointMeta, Side};
use crate::{Table, metadata, timestamp_type, ts_from_ns};
use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

/// Column names of the `packets` table.
pub mod col {
    /// Capture time.
    pub const TS: &str = "ts";
    /// `conn_id` of the packet's connection.
    pub const CONN_ID: &str = "conn_id";
    /// True when the sender is the connection's initiator.
    pub const FROM_INITIATOR: &str = "from_initiator";
    /// `tcp`, `udp` or `icmp`.
    pub const PROTOCOL: &str = "protocol";
    /// Sender address.
    pub const SRC_IP: &str = "src_ip";
    /// Sender port.
    pub const SRC_PORT: &str = "src_port";
    /// Receiver address.
    pub const DST_IP: &str = "dst_ip";
    /// Receiver port.
    pub const DST_PORT: &str = "dst_port";
    /// TCP flags, as in `connections.src_flags`.
    pub const FLAGS: &str = "flags";
    /// TCP sequence number.
    pub const SEQ: &str = "seq";
    /// TCP acknowledgment number.
    pub const ACK: &str = "ack";
    /// TCP window (unscaled).
    pub const WINDOW: &str = "window";
    /// IP-layer bytes.
    pub const IP_BYTES: &str = "ip_bytes";
    /// Transport payload bytes.
    pub const PAYLOAD_BYTES: &str = "payload_bytes";
    /// Capturing node.
    pub const NODE: &str = "node";
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    let strf = |n: &str| Field::new(n, Utf8, false);
    let mut fields = vec![
        Field::new(col::TS, timestamp_type(), false),
        Field::new(col::CONN_ID, Int64, false),
        Field::new(col::FROM_INITIATOR, Boolean, false),
        strf(col::PROTOCOL),
        strf(col::SRC_IP),
        Field::new(col::SRC_PORT, Int32, false),
        strf(col::DST_IP),
        Field::new(col::DST_PORT, Int32, false),
        strf(col::FLAGS),
        Field::new(col::SEQ, Int64, true),
        Field::new(col::ACK, Int64, true),
        Field::new(col::WINDOW, Int32, true),
        Field::new(col::IP_BYTES, Int32, false),
        Field::new(col::PAYLOAD_BYTES, Int32, false),
        strf(col::NODE),
    ];
    fields.extend(endpoint::fields(Side::Src));
    fields.extend(endpoint::fields(Side::Dst));
    Arc::new(Schema::new_with_metadata(fields, metadata(Table::Packets)))
});

/// The `packets` schema.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// TCP header fields of a packet record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFields {
    /// Flag bits ([`crate::connections::flag`]).
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Window, unscaled.
    pub window: u16,
}

/// One row of the `packets` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketRecord {
    /// Capture time, ns since the epoch.
    pub ts_ns: i64,
    /// The packet's connection.
    pub conn_id: i64,
    /// Sent by the connection's initiator.
    pub from_initiator: bool,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: &'static str,
    /// Sender.
    pub src_ip: IpAddr,
    /// Sender port.
    pub src_port: u16,
    /// Receiver.
    pub dst_ip: IpAddr,
    /// Receiver port.
    pub dst_port: u16,
    /// TCP header fields, for TCP.
    pub tcp: Option<TcpFields>,
    /// IP-layer bytes.
    pub ip_bytes: u32,
    /// Transport payload bytes.
    pub payload_bytes: u32,
    /// Capturing node (shared: one allocation per run, not per row).
    pub node: Arc<str>,
    /// Sender's pod metadata.
    pub src_meta: EndpointMeta,
    /// Receiver's pod metadata.
    pub dst_meta: EndpointMeta,
}

/// Appends [`PacketRecord`]s and finishes them into a `RecordBatch` of [`schema`].
#[derive(Debug, Default)]
pub struct PacketsBuilder {
    ts: TimestampMicrosecondBuilder,
    conn_id: Int64Builder,
    from_initiator: BooleanBuilder,
    protocol: StringBuilder,
    src_ip: StringBuilder,
    src_port: Int32Builder,
    dst_ip: StringBuilder,
    dst_port: Int32Builder,
    flags: StringBuilder,
    seq: Int64Builder,
    ack: Int64Builder,
    window: Int32Builder,
    ip_bytes: Int32Builder,
    payload_bytes: Int32Builder,
    node: StringBuilder,
    src_meta: EndpointBuilder,
    dst_meta: EndpointBuilder,
    rows: usize,
}

impl PacketsBuilder {
    /// Rows appended since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last [`Self::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row.
    pub fn append(&mut self, r: &PacketRecord) {
        self.rows += 1;
        self.ts.append_value(ts_from_ns(r.ts_ns));
        self.conn_id.append_value(r.conn_id);
        self.from_initiator.append_value(r.from_initiator);
        self.protocol.append_value(r.protocol);
        crate::append_ip(&mut self.src_ip, r.src_ip);
        self.src_port.append_value(i32::from(r.src_port));
        crate::append_ip(&mut self.dst_ip, r.dst_ip);
        self.dst_port.append_value(i32::from(r.dst_port));
        if let Some(t) = r.tcp {
            crate::connections::flags_string(t.flags, &mut self.flags);
        }
        self.flags.append_value("");
        self.seq.append_option(r.tcp.map(|t| i64::from(t.seq)));
        self.ack.append_option(r.tcp.map(|t| i64::from(t.ack)));
        self.window.append_option(r.tcp.map(|t| i32::from(t.window)));
        self.ip_bytes.append_value(i32::try_from(r.ip_bytes).unwrap_or(i32::MAX));
        self.payload_bytes.append_value(i32::try_from(r.payload_bytes).unwrap_or(i32::MAX));
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
            Arc::new(self.conn_id.finish()),
            Arc::new(self.from_initiator.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.src_port.finish()),
            Arc::new(self.dst_ip.finish()),
            Arc::new(self.dst_port.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.ack.finish()),
            Arc::new(self.window.finish()),
            Arc::new(self.ip_bytes.finish()),
            Arc::new(self.payload_bytes.finish()),
            Arc::new(self.node.finish()),
        ];
        cols.extend(self.src_meta.finish());
        cols.extend(self.dst_meta.finish());
        RecordBatch::try_new(schema(), cols)
    }
}
