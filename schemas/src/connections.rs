//! The `connections` table: one row per TCP connection, UDP pseudo-connection (5-tuple plus idle
//! timeout) or ICMP exchange, both directions merged, `src` = the initiator. Long connections also
//! get interim rows: counters are per-row deltas, `conn_id` ties the rows of one connection
//! together and `is_final` marks the last one.
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

/// Column names of the `connections` table (the enrichment columns are in [`crate::endpoint`]).
pub mod col {
    /// First packet of this row's interval.
    pub const START_TS: &str = "start_ts";
    /// Last packet of this row's interval.
    pub const END_TS: &str = "end_ts";
    /// Stable id of the connection, the same on all its rows.
    pub const CONN_ID: &str = "conn_id";
    /// 0 for a connection's first row, then 1, 2, ...
    pub const ROW_SEQ: &str = "row_seq";
    /// True on a connection's last row.
    pub const IS_FINAL: &str = "is_final";
    /// `tcp`, `udp` or `icmp`.
    pub const PROTOCOL: &str = "protocol";
    /// Initiator's IP address.
    pub const SRC_IP: &str = "src_ip";
    /// Initiator's port.
    pub const SRC_PORT: &str = "src_port";
    /// Responder's IP address.
    pub const DST_IP: &str = "dst_ip";
    /// Responder's port.
    pub const DST_PORT: &str = "dst_port";
    /// Packets sent by the initiator.
    pub const SRC_PACKETS: &str = "src_packets";
    /// Packets sent by the responder.
    pub const DST_PACKETS: &str = "dst_packets";
    /// IP-layer bytes sent by the initiator.
    pub const SRC_BYTES: &str = "src_bytes";
    /// IP-layer bytes sent by the responder.
    pub const DST_BYTES: &str = "dst_bytes";
    /// Transport payload bytes sent by the initiator.
    pub const SRC_PAYLOAD_BYTES: &str = "src_payload_bytes";
    /// Transport payload bytes sent by the responder.
    pub const DST_PAYLOAD_BYTES: &str = "dst_payload_bytes";
    /// See [`super::outcome`].
    pub const OUTCOME: &str = "outcome";
    /// TCP flags sent by the initiator.
    pub const SRC_FLAGS: &str = "src_flags";
    /// TCP flags sent by the responder.
    pub const DST_FLAGS: &str = "dst_flags";
    /// SYN to the ACK that completes the handshake, microseconds.
    pub const HANDSHAKE_RTT_US: &str = "handshake_rtt_us";
    /// Retransmitted segments sent by the initiator.
    pub const SRC_RETRANSMITS: &str = "src_retransmits";
    /// Retransmitted segments sent by the responder.
    pub const DST_RETRANSMITS: &str = "dst_retransmits";
    /// Zero-window segments sent by the initiator.
    pub const SRC_ZERO_WINDOWS: &str = "src_zero_windows";
    /// Zero-window segments sent by the responder.
    pub const DST_ZERO_WINDOWS: &str = "dst_zero_windows";
    /// Which side sent the first FIN.
    pub const CLOSED_BY: &str = "closed_by";
    /// Which side sent the first RST.
    pub const RESET_BY: &str = "reset_by";
    /// Type of the last ICMP error quoting this connection.
    pub const ICMP_TYPE: &str = "icmp_type";
    /// Code of the last ICMP error quoting this connection.
    pub const ICMP_CODE: &str = "icmp_code";
    /// ICMP errors quoting this connection.
    pub const ICMP_ERRORS: &str = "icmp_errors";
    /// Sender of the last ICMP error quoting this connection.
    pub const ICMP_ERROR_SRC: &str = "icmp_error_src";
    /// VLAN ids of the frame that carried the connection.
    pub const VLAN: &str = "vlan";
    /// Tunnel the connection was carried in.
    pub const TUNNEL: &str = "tunnel";
    /// DNS name the initiator resolved for `dst_ip`: the `dst` end's [`DNS_NAME_SUFFIX`].
    pub const DST_DNS_NAME: &str = "dst_dns_name";
    /// [`DST_DNS_NAME`] without its `dst_` prefix, for code that treats it as one more column of
    /// the destination end (`Side::Dst.column(DNS_NAME_SUFFIX)`).
    pub const DNS_NAME_SUFFIX: &str = "dns_name";
    /// [`SRC_IP`] and [`DST_IP`] without their prefixes (`Side::column(IP_SUFFIX)`).
    pub const IP_SUFFIX: &str = "ip";
    /// Capturing node.
    pub const NODE: &str = "node";
}

/// Values of the `outcome` column.
pub mod outcome {
    /// TCP: handshake completed, FIN from both sides, no RST.
    pub const CLOSED: &str = "closed";
    /// TCP: handshake completed, no close seen (yet). Interim rows carry the state as of that
    /// row, so an established connection's interim rows say `open`.
    pub const OPEN: &str = "open";
    /// TCP: handshake completed, then a RST (`reset_by` says who).
    pub const RESET: &str = "reset";
    /// TCP: SYN answered by RST.
    pub const REFUSED: &str = "refused";
    /// TCP: SYN never answered. UDP: no packet from the responder.
    pub const NO_ANSWER: &str = "no_answer";
    /// TCP: the initiator gave up with a RST before any SYN-ACK.
    pub const ABORTED: &str = "aborted";
    /// TCP: SYN (or UDP datagram) answered by an ICMP error (unreachable, time exceeded, ...).
    pub const UNREACHABLE: &str = "unreachable";
    /// TCP: no SYN from the initiator was seen (picked up mid-stream).
    pub const MIDSTREAM: &str = "midstream";
    /// UDP and ICMP: packets in both directions.
    pub const ANSWERED: &str = "answered";
}

/// Values of `closed_by` and `reset_by`.
pub mod by {
    /// The initiator.
    pub const SRC: &str = "src";
    /// The responder.
    pub const DST: &str = "dst";
    /// Nobody (yet).
    pub const NONE: &str = "";
}

/// Values of `protocol`.
pub mod protocol {
    /// TCP.
    pub const TCP: &str = "tcp";
    /// UDP.
    pub const UDP: &str = "udp";
    /// ICMP and ICMPv6.
    pub const ICMP: &str = "icmp";
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    let i64f = |n: &str| Field::new(n, Int64, false);
    let strf = |n: &str| Field::new(n, Utf8, false);
    let mut fields = vec![
        Field::new(col::START_TS, timestamp_type(), false),
        Field::new(col::END_TS, timestamp_type(), false),
        i64f(col::CONN_ID),
        Field::new(col::ROW_SEQ, Int32, false),
        Field::new(col::IS_FINAL, Boolean, false),
        strf(col::PROTOCOL),
        strf(col::SRC_IP),
        Field::new(col::SRC_PORT, Int32, false),
        strf(col::DST_IP),
        Field::new(col::DST_PORT, Int32, false),
        i64f(col::SRC_PACKETS),
        i64f(col::DST_PACKETS),
        i64f(col::SRC_BYTES),
        i64f(col::DST_BYTES),
        i64f(col::SRC_PAYLOAD_BYTES),
        i64f(col::DST_PAYLOAD_BYTES),
        strf(col::OUTCOME),
        strf(col::SRC_FLAGS),
        strf(col::DST_FLAGS),
        Field::new(col::HANDSHAKE_RTT_US, Int64, true),
        i64f(col::SRC_RETRANSMITS),
        i64f(col::DST_RETRANSMITS),
        i64f(col::SRC_ZERO_WINDOWS),
        i64f(col::DST_ZERO_WINDOWS),
        strf(col::CLOSED_BY),
        strf(col::RESET_BY),
        Field::new(col::ICMP_TYPE, Int32, true),
        Field::new(col::ICMP_CODE, Int32, true),
        i64f(col::ICMP_ERRORS),
        strf(col::ICMP_ERROR_SRC),
        strf(col::VLAN),
        strf(col::TUNNEL),
        strf(col::DST_DNS_NAME),
        strf(col::NODE),
    ];
    fields.extend(endpoint::fields(Side::Src));
    fields.extend(endpoint::fields(Side::Dst));
    Arc::new(Schema::new_with_metadata(fields, metadata(Table::Connections)))
});

/// The `connections` schema.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Per-direction counters of one row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirCounters {
    /// Packets.
    pub packets: u64,
    /// IP-layer bytes (IP header included, link layer and outer tunnel headers excluded).
    pub bytes: u64,
    /// Transport payload bytes.
    pub payload_bytes: u64,
    /// Retransmitted TCP segments.
    pub retransmits: u64,
    /// TCP segments advertising a zero window.
    pub zero_windows: u64,
}

/// One row of the `connections` table, as capture produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// First packet of this row's interval, ns since the epoch.
    pub start_ns: i64,
    /// Last packet of this row's interval, ns since the epoch.
    pub end_ns: i64,
    /// Stable connection id.
    pub conn_id: i64,
    /// Row number within the connection.
    pub row_seq: i32,
    /// Last row of the connection.
    pub is_final: bool,
    /// One of [`protocol`].
    pub protocol: &'static str,
    /// Initiator address.
    pub src_ip: IpAddr,
    /// Initiator port (ICMP: type).
    pub src_port: u16,
    /// Responder address.
    pub dst_ip: IpAddr,
    /// Responder port (ICMP: code).
    pub dst_port: u16,
    /// Initiator to responder.
    pub src: DirCounters,
    /// Responder to initiator.
    pub dst: DirCounters,
    /// One of [`outcome`].
    pub outcome: &'static str,
    /// TCP flags the initiator sent, as a bit set (see [`flags_string`]).
    pub src_flags: u8,
    /// TCP flags the responder sent.
    pub dst_flags: u8,
    /// Handshake round-trip time, ns.
    pub handshake_rtt_ns: Option<i64>,
    /// One of [`by`].
    pub closed_by: &'static str,
    /// One of [`by`].
    pub reset_by: &'static str,
    /// Last ICMP error (type, code) quoting this connection.
    pub icmp_error: Option<(u8, u8)>,
    /// ICMP errors quoting this connection.
    pub icmp_errors: u64,
    /// Sender of the last ICMP error.
    pub icmp_error_src: Option<IpAddr>,
    /// VLAN ids, outer first, `.`-separated; empty when untagged.
    pub vlan: String,
    /// Tunnel description, e.g. `vxlan:4242`; empty when not tunnelled.
    pub tunnel: String,
    /// DNS name the initiator resolved for `dst_ip` (shared with the DNS index).
    pub dst_dns_name: Option<Arc<str>>,
    /// Capturing node (shared: one allocation per run, not per row).
    pub node: Arc<str>,
    /// Initiator's pod metadata.
    pub src_meta: EndpointMeta,
    /// Responder's pod metadata.
    pub dst_meta: EndpointMeta,
}

impl Default for ConnectionRecord {
    /// A final, closed TCP row between unspecified addresses at the epoch, with no counters
    /// and no names: a base for generators and tests, which set the fields that matter.
    fn default() -> Self {
        ConnectionRecord {
            start_ns: 0,
            end_ns: 0,
            conn_id: 0,
            row_seq: 0,
            is_final: true,
            protocol: protocol::TCP,
            src_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            src_port: 0,
            dst_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            dst_port: 0,
            src: DirCounters::default(),
            dst: DirCounters::default(),
            outcome: outcome::CLOSED,
            src_flags: 0,
            dst_flags: 0,
            handshake_rtt_ns: None,
            closed_by: by::NONE,
            reset_by: by::NONE,
            icmp_error: None,
            icmp_errors: 0,
            icmp_error_src: None,
            vlan: String::new(),
            tunnel: String::new(),
            dst_dns_name: None,
            node: Arc::from(""),
            src_meta: EndpointMeta::default(),
            dst_meta: EndpointMeta::default(),
        }
    }
}

/// TCP flag bits as stored in [`ConnectionRecord::src_flags`] (the TCP header's own bit order).
pub mod flag {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
    /// ECE
    pub const ECE: u8 = 0x40;
    /// CWR
    pub const CWR: u8 = 0x80;
}

/// Renders a flag set as letters in a fixed order: `S` SYN, `A` ACK, `P` PSH, `F` FIN, `R` RST,
/// `U` URG, `E` ECE, `C` CWR; e.g. `SAPF`. Empty for no flags (and for UDP/ICMP).
pub fn flags_string(bits: u8, out: &mut impl std::fmt::Write) {
    const ORDER: [(u8, char); 8] = [
        (flag::SYN, 'S'),
        (flag::ACK, 'A'),
        (flag::PSH, 'P'),
        (flag::FIN, 'F'),
        (flag::RST, 'R'),
        (flag::URG, 'U'),
        (flag::ECE, 'E'),
        (flag::CWR, 'C'),
    ];
    for (bit, c) in ORDER {
        if bits & bit != 0 {
            let _ = out.write_char(c);
        }
    }
}

/// Appends [`ConnectionRecord`]s and finishes them into a `RecordBatch` of [`schema`].
#[derive(Debug, Default)]
pub struct ConnectionsBuilder {
    start_ts: TimestampMicrosecondBuilder,
    end_ts: TimestampMicrosecondBuilder,
    conn_id: Int64Builder,
    row_seq: Int32Builder,
    is_final: BooleanBuilder,
    protocol: StringBuilder,
    src_ip: StringBuilder,
    src_port: Int32Builder,
    dst_ip: StringBuilder,
    dst_port: Int32Builder,
    counters: [Int64Builder; 6],
    outcome: StringBuilder,
    src_flags: StringBuilder,
    dst_flags: StringBuilder,
    rtt: Int64Builder,
    retrans_zw: [Int64Builder; 4],
    closed_by: StringBuilder,
    reset_by: StringBuilder,
    icmp_type: Int32Builder,
    icmp_code: Int32Builder,
    icmp_errors: Int64Builder,
    icmp_error_src: StringBuilder,
    vlan: StringBuilder,
    tunnel: StringBuilder,
    dst_dns_name: StringBuilder,
    node: StringBuilder,
    src_meta: EndpointBuilder,
    dst_meta: EndpointBuilder,
    rows: usize,
    /// Rows the columns are sized for after each [`Self::finish`] (0: grow from empty).
    capacity: usize,
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl ConnectionsBuilder {
    /// A builder whose columns hold `rows` rows without growing, sized so again after each
    /// [`Self::finish`] (Arrow's builders start empty after `finish`; growing every column
    /// from empty for each batch was 5 % of the capture's packet path).
    pub fn with_capacity(rows: usize) -> Self {
        let text = |bytes_per_row: usize| StringBuilder::with_capacity(rows, rows * bytes_per_row);
        let int64 = || Int64Builder::with_capacity(rows);
        let int32 = || Int32Builder::with_capacity(rows);
        ConnectionsBuilder {
            start_ts: TimestampMicrosecondBuilder::with_capacity(rows),
            end_ts: TimestampMicrosecondBuilder::with_capacity(rows),
            conn_id: int64(),
            row_seq: int32(),
            is_final: BooleanBuilder::with_capacity(rows),
            protocol: text(4),
            src_ip: text(16),
            src_port: int32(),
            dst_ip: text(16),
            dst_port: int32(),
            counters: std::array::from_fn(|_| int64()),
            outcome: text(8),
            src_flags: text(6),
            dst_flags: text(6),
            rtt: int64(),
            retrans_zw: std::array::from_fn(|_| int64()),
            closed_by: text(4),
            reset_by: text(0),
            icmp_type: int32(),
            icmp_code: int32(),
            icmp_errors: int64(),
            icmp_error_src: text(0),
            vlan: text(0),
            tunnel: text(0),
            dst_dns_name: text(24),
            node: text(16),
            src_meta: EndpointBuilder::with_capacity(rows),
            dst_meta: EndpointBuilder::with_capacity(rows),
            rows: 0,
            capacity: rows,
        }
    }

    /// Rows appended since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last [`Self::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row.
    pub fn append(&mut self, r: &ConnectionRecord) {
        self.rows += 1;
        self.start_ts.append_value(ts_from_ns(r.start_ns));
        self.end_ts.append_value(ts_from_ns(r.end_ns));
        self.conn_id.append_value(r.conn_id);
        self.row_seq.append_value(r.row_seq);
        self.is_final.append_value(r.is_final);
        self.protocol.append_value(r.protocol);
        crate::append_ip(&mut self.src_ip, r.src_ip);
        self.src_port.append_value(i32::from(r.src_port));
        crate::append_ip(&mut self.dst_ip, r.dst_ip);
        self.dst_port.append_value(i32::from(r.dst_port));
        let c = [
            r.src.packets,
            r.dst.packets,
            r.src.bytes,
            r.dst.bytes,
            r.src.payload_bytes,
            r.dst.payload_bytes,
        ];
        for (b, v) in self.counters.iter_mut().zip(c) {
            b.append_value(clamp(v));
        }
        self.outcome.append_value(r.outcome);
        flags_string(r.src_flags, &mut self.src_flags);
        self.src_flags.append_value("");
        flags_string(r.dst_flags, &mut self.dst_flags);
        self.dst_flags.append_value("");
        self.rtt.append_option(r.handshake_rtt_ns.map(|ns| ns / 1_000));
        let c = [r.src.retransmits, r.dst.retransmits, r.src.zero_windows, r.dst.zero_windows];
        for (b, v) in self.retrans_zw.iter_mut().zip(c) {
            b.append_value(clamp(v));
        }
        self.closed_by.append_value(r.closed_by);
        self.reset_by.append_value(r.reset_by);
        self.icmp_type.append_option(r.icmp_error.map(|(t, _)| i32::from(t)));
        self.icmp_code.append_option(r.icmp_error.map(|(_, c)| i32::from(c)));
        self.icmp_errors.append_value(clamp(r.icmp_errors));
        match r.icmp_error_src {
            Some(ip) => crate::append_ip(&mut self.icmp_error_src, ip),
            None => self.icmp_error_src.append_value(""),
        }
        self.vlan.append_value(&r.vlan);
        self.tunnel.append_value(&r.tunnel);
        self.dst_dns_name.append_value(r.dst_dns_name.as_deref().unwrap_or(""));
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
            Arc::new(self.start_ts.finish().with_timezone(crate::TIMEZONE)),
            Arc::new(self.end_ts.finish().with_timezone(crate::TIMEZONE)),
            Arc::new(self.conn_id.finish()),
            Arc::new(self.row_seq.finish()),
            Arc::new(self.is_final.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.src_port.finish()),
            Arc::new(self.dst_ip.finish()),
            Arc::new(self.dst_port.finish()),
        ];
        cols.extend(self.counters.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        cols.push(Arc::new(self.outcome.finish()));
        cols.push(Arc::new(self.src_flags.finish()));
        cols.push(Arc::new(self.dst_flags.finish()));
        cols.push(Arc::new(self.rtt.finish()));
        cols.extend(self.retrans_zw.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        cols.push(Arc::new(self.closed_by.finish()));
        cols.push(Arc::new(self.reset_by.finish()));
        cols.push(Arc::new(self.icmp_type.finish()));
        cols.push(Arc::new(self.icmp_code.finish()));
        cols.push(Arc::new(self.icmp_errors.finish()));
        cols.push(Arc::new(self.icmp_error_src.finish()));
        cols.push(Arc::new(self.vlan.finish()));
        cols.push(Arc::new(self.tunnel.finish()));
        cols.push(Arc::new(self.dst_dns_name.finish()));
        cols.push(Arc::new(self.node.finish()));
        cols.extend(self.src_meta.finish());
        cols.extend(self.dst_meta.finish());
        if self.capacity > 0 {
            *self = Self::with_capacity(self.capacity);
        }
        RecordBatch::try_new(schema(), cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_name_the_columns() {
        use crate::endpoint::Side;
        assert_eq!(Side::Src.column(col::IP_SUFFIX), col::SRC_IP);
        assert_eq!(Side::Dst.column(col::IP_SUFFIX), col::DST_IP);
        assert_eq!(Side::Dst.column(col::DNS_NAME_SUFFIX), col::DST_DNS_NAME);
    }

    #[test]
    fn flags_render_in_fixed_order() {
        let mut s = String::new();
        flags_string(flag::FIN | flag::SYN | flag::ACK | flag::RST, &mut s);
        assert_eq!(s, "SAFR");
    }

    #[test]
    fn builder_matches_schema() {
        let mut b = ConnectionsBuilder::default();
        let r = ConnectionRecord {
            start_ns: 1_500,
            end_ns: 2_500,
            conn_id: 7,
            row_seq: 0,
            is_final: true,
            protocol: protocol::TCP,
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: 1234,
            dst_ip: "::1".parse().unwrap(),
            dst_port: 80,
            src: DirCounters { packets: 3, ..Default::default() },
            dst: DirCounters::default(),
            outcome: outcome::NO_ANSWER,
            src_flags: flag::SYN,
            dst_flags: 0,
            handshake_rtt_ns: None,
            closed_by: by::NONE,
            reset_by: by::NONE,
            icmp_error: Some((3, 3)),
            icmp_errors: 1,
            icmp_error_src: None,
            vlan: String::new(),
            tunnel: String::new(),
            dst_dns_name: None,
            node: "n1".into(),
            src_meta: EndpointMeta::default(),
            dst_meta: EndpointMeta { name: "web".into(), ..Default::default() },
        };
        b.append(&r);
        b.append(&r);
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), schema());
        let dst_name = batch.column_by_name("dst_name").unwrap();
        let dst_name = dst_name.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        assert_eq!(dst_name.value(1), "web");
        assert!(b.is_empty());
    }
}
