//! Rows: a connection's outcome and the record written for it (interim or final).
use super::conn::Conn;
use crate::decode::ip_proto::{TCP, UDP};
use crate::dns::DnsTracker;
use podwire_schemas::EndpointMeta;
use podwire_schemas::connections::DirCounters;
use podwire_schemas::connections::{ConnectionRecord, by, outcome, protocol};

pub(super) fn outcome_of(c: &Conn) -> &'static str {
    match c.proto {
        TCP => {
            let syn = c.sent_syn[0] || c.sent_syn[1];
            let synack = c.sent_synack[0] || c.sent_synack[1];
            if syn && !synack {
                if c.icmp_errors_total > 0 {
                    outcome::UNREACHABLE
                } else if c.rst[1] {
                    outcome::REFUSED
                } else if c.rst[0] {
                    outcome::ABORTED
                } else {
                    outcome::NO_ANSWER
                }
            } else if syn && synack {
                if c.rst[0] || c.rst[1] {
                    outcome::RESET
                } else if c.fin[0] && c.fin[1] {
                    outcome::CLOSED
                } else {
                    outcome::OPEN
                }
            } else if c.total_packets == [0, 0] && c.icmp_errors_total > 0 {
                outcome::UNREACHABLE
            } else {
                outcome::MIDSTREAM
            }
        }
        _ => {
            if c.total_packets[1] > 0 {
                outcome::ANSWERED
            } else if c.icmp_errors_total > 0 {
                outcome::UNREACHABLE
            } else {
                outcome::NO_ANSWER
            }
        }
    }
}

pub(super) fn side_name(s: Option<usize>) -> &'static str {
    match s {
        Some(0) => by::SRC,
        Some(_) => by::DST,
        None => by::NONE,
    }
}

pub(super) fn proto_name(p: u8) -> &'static str {
    match p {
        TCP => protocol::TCP,
        UDP => protocol::UDP,
        _ => protocol::ICMP,
    }
}

pub(super) fn record(
    c: &Conn,
    is_final: bool,
    dns: &DnsTracker,
    node: &std::sync::Arc<str>,
) -> ConnectionRecord {
    let start = c.row_start_ns.unwrap_or(c.last_ns);
    let end = if c.row_start_ns.is_some() { c.row_end_ns } else { c.last_ns };
    let dst_dns_name = dns.name_for(c.ends[1].0, c.first_ns, c.ends[0].0).cloned();
    ConnectionRecord {
        start_ns: start,
        end_ns: end.max(start),
        conn_id: c.conn_id,
        row_seq: c.row_seq,
        is_final,
        protocol: proto_name(c.proto),
        src_ip: c.ends[0].0,
        src_port: c.report_ports.0,
        dst_ip: c.ends[1].0,
        dst_port: c.report_ports.1,
        src: c.row[0],
        dst: c.row[1],
        outcome: outcome_of(c),
        src_flags: c.flags[0],
        dst_flags: c.flags[1],
        handshake_rtt_ns: c.rtt_ns,
        closed_by: side_name(c.fin_first),
        reset_by: side_name(c.rst_first),
        icmp_error: c.icmp_error,
        icmp_errors: c.icmp_errors_row,
        icmp_error_src: c.icmp_error_src,
        vlan: c.segment.vlan_text(),
        tunnel: c.segment.tunnel_text(),
        dst_dns_name,
        node: node.clone(),
        src_meta: EndpointMeta::default(),
        dst_meta: EndpointMeta::default(),
    }
}

pub(super) fn start_next_row(c: &mut Conn) {
    c.row = [DirCounters::default(); 2];
    c.icmp_errors_row = 0;
    c.row_seq += 1;
    c.row_start_ns = None;
}
