//! A live connection's state, its deterministic id, and how a packet is counted on it.
use super::tcp::{sender_looks_like_client, tcp_update};
use crate::decode::ip_proto::ICMP;
use crate::decode::{Packet, Segment, Transport};
use etherparse::LaxIpSlice;
use podwire_schemas::connections::DirCounters;
use podwire_schemas::connections::flag;
use std::net::IpAddr;

/// A live connection. Index 0 of the two-element arrays is the initiator (`src`).
#[derive(Debug, Clone)]
pub(super) struct Conn {
    pub(super) conn_id: i64,
    pub(super) proto: u8,
    pub(super) ends: [(IpAddr, u16); 2],
    /// Ports written on the row: the real ports, or (type, code) for ICMP.
    pub(super) report_ports: (u16, u16),
    pub(super) segment: Segment,
    pub(super) first_ns: i64,
    pub(super) last_ns: i64,
    pub(super) row_start_ns: Option<i64>,
    pub(super) row_end_ns: i64,
    pub(super) row_seq: i32,
    pub(super) row: [DirCounters; 2],
    pub(super) total_packets: [u64; 2],
    pub(super) flags: [u8; 2],
    pub(super) sent_syn: [bool; 2],
    pub(super) sent_synack: [bool; 2],
    pub(super) fin: [bool; 2],
    pub(super) rst: [bool; 2],
    pub(super) fin_first: Option<usize>,
    pub(super) rst_first: Option<usize>,
    pub(super) isn: Option<u32>,
    pub(super) last_syn_ns: Option<i64>,
    pub(super) synack_seen: bool,
    pub(super) rtt_ns: Option<i64>,
    pub(super) next_seq: [Option<u32>; 2],
    pub(super) closed_ns: Option<i64>,
    pub(super) icmp_error: Option<(u8, u8)>,
    pub(super) icmp_error_src: Option<IpAddr>,
    pub(super) icmp_errors_row: u64,
    pub(super) icmp_errors_total: u64,
    /// Due time of this connection's one live timer (older heap entries are stale).
    pub(super) timer_due: i64,
}

pub(super) fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

pub(super) fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A deterministic id: the same packets on the same node give the same id on every run, so a
/// replay rewrites rows instead of adding new ones.
pub(super) fn conn_id(
    node: &str,
    first_ns: i64,
    proto: u8,
    ends: &[(IpAddr, u16); 2],
    seg: &Segment,
) -> i64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    fnv1a(&mut h, node.as_bytes());
    fnv1a(&mut h, &first_ns.to_le_bytes());
    fnv1a(&mut h, &[proto]);
    for (ip, port) in ends {
        fnv1a(&mut h, &ip_bytes(*ip));
        fnv1a(&mut h, &port.to_le_bytes());
    }
    fnv1a(&mut h, &seg.vni.to_le_bytes());
    fnv1a(&mut h, &seg.vlan[0].to_le_bytes());
    fnv1a(&mut h, &seg.vlan[1].to_le_bytes());
    (h >> 1) as i64
}

/// Who initiated a connection whose first packet is `pkt`: the ends (initiator first) and the
/// ports written on its rows.
pub(super) fn orient(pkt: &Packet<'_>, sport: u16, dport: u16) -> ([(IpAddr, u16); 2], (u16, u16)) {
    let initiator_is_sender = match pkt.transport {
        Transport::Tcp { flags, .. } => {
            if flags & flag::SYN != 0 {
                flags & flag::ACK == 0
            } else {
                sender_looks_like_client(sport, dport)
            }
        }
        Transport::Udp { .. } => true,
        Transport::Icmp { v6, typ, .. } => !icmp_echo(v6, typ).1,
    };
    let s = (pkt.src, sport);
    let d = (pkt.dst, dport);
    let ends = if initiator_is_sender { [s, d] } else { [d, s] };
    let ports = match pkt.transport {
        Transport::Icmp { v6, typ, code, .. } => {
            // Zeek's convention: type and code in the port columns; for echo the request type.
            let (_, rep) = icmp_echo(v6, typ);
            let t = if rep { if v6 { 128 } else { 8 } } else { typ };
            (u16::from(t), u16::from(code))
        }
        _ => (ends[0].1, ends[1].1),
    };
    (ends, ports)
}

/// Counts `pkt` on `c`; returns the connection id, the sender's side (0 = initiator), and
/// whether the packet opened a new row after an interim one (its timer must be set).
pub(super) fn count_packet(
    c: &mut Conn,
    pkt: &Packet<'_>,
    ts_ns: i64,
    sport: u16,
) -> (i64, usize, bool) {
    let side = usize::from(c.ends[0] != (pkt.src, sport));
    c.last_ns = c.last_ns.max(ts_ns);
    let new_row = c.row_start_ns.is_none() && c.row_seq > 0;
    c.row_start_ns.get_or_insert(ts_ns);
    c.row_end_ns = c.row_end_ns.max(ts_ns);
    let d = &mut c.row[side];
    d.packets += u64::from(pkt.packets);
    d.bytes += pkt.ip_bytes;
    d.payload_bytes += pkt.payload_len;
    c.total_packets[side] += u64::from(pkt.packets);
    if let Transport::Tcp { flags, seq, window, .. } = pkt.transport {
        tcp_update(c, side, ts_ns, flags, seq, window, pkt.payload_len);
    }
    (c.conn_id, side, new_row)
}

/// The flow an ICMP error quotes: (protocol, src, dst, sport, dport) of the original packet.
pub(super) fn quoted_flow(body: &[u8]) -> Option<(u8, IpAddr, IpAddr, u16, u16)> {
    let (ip, _) = LaxIpSlice::from_slice(body).ok()?;
    let p = ip.payload();
    let t = p.payload;
    let proto = p.ip_number.0;
    let port = |o: usize| Some(u16::from_be_bytes([*t.get(o)?, *t.get(o + 1)?]));
    match proto {
        6 | 17 => Some((proto, ip.source_addr(), ip.destination_addr(), port(0)?, port(2)?)),
        1 | 58 => {
            // A quoted echo request: keyed by its identifier, like the echo exchange itself.
            let id = port(4).unwrap_or(0);
            let typ = *t.first()?;
            let v6 = proto == 58;
            let id = if icmp_echo(v6, typ).0 || icmp_echo(v6, typ).1 { id } else { 0 };
            Some((ICMP, ip.source_addr(), ip.destination_addr(), id, id))
        }
        _ => None,
    }
}

/// ICMP errors that say a packet did not arrive: destination unreachable, time exceeded,
/// parameter problem (and ICMPv6 packet too big). Redirects and source quench are not.
pub(super) fn is_icmp_error(v6: bool, typ: u8) -> bool {
    if v6 { matches!(typ, 1..=4) } else { matches!(typ, 3 | 11 | 12) }
}

/// ICMP echo request/reply: (is request, is reply).
pub(super) fn icmp_echo(v6: bool, typ: u8) -> (bool, bool) {
    if v6 { (typ == 128, typ == 129) } else { (typ == 8, typ == 0) }
}
