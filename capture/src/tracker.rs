//! The connection tracker: decoded packets in, [`ConnectionRecord`]s out.
//!
//! - A connection is keyed by protocol, both endpoints (unordered) and the [`Segment`] (tunnel VNI
//!   and VLAN tags). ICMP echo exchanges are keyed by their identifier; other ICMP messages between
//!   two hosts share one pseudo-connection.
//! - `src` is the initiator: the sender of the first SYN (the receiver of a SYN-ACK seen first);
//!   for UDP and ICMP the sender of the first packet (the receiver of an echo reply seen first).
//!   For TCP picked up mid-stream (no SYN, no SYN-ACK) the side whose port looks like a server's
//!   is the responder: a port below 1024 against one above; else a port outside the Linux
//!   ephemeral range (32768-60999) against one inside it; else the lower port; on a tie, the
//!   first packet's sender is the initiator.
//! - TCP: a SYN on a connection that saw FIN or RST, or a SYN with a new initial sequence number
//!   after the handshake, starts a new connection (port reuse). An idle connection past its
//!   timeout is finished before the next packet of its 5-tuple starts a new one.
//! - ICMP errors (unreachable, time exceeded, parameter problem, packet too big) are attributed
//!   to the connection whose header they quote and are not counted in its packets. One quoting a
//!   connection not seen (yet) creates it, with no packets, so the evidence is kept.
//! - Rows: a connection emits an interim row every `active_timeout` while it has traffic, and a
//!   final row when it ends (closed and lingered, idle timeout, eviction, end of input).
//!   Counters on a row are deltas since the previous row.
//! - Memory: at most `max_connections` live connections; when full, the least recently seen
//!   sixteenth is finished early and counted as evicted.
use crate::decode::{Packet, Segment, Transport};
use crate::dns::{Carrier, DnsConfig, DnsTracker};
use etherparse::LaxIpSlice;
use hashbrown::HashMap;
use podwire_schemas::EndpointMeta;
use podwire_schemas::connections::{
    ConnectionRecord, DirCounters, by, flag, outcome, protocol,
};
use podwire_schemas::packets::{PacketRecord, TcpFields};
use std::net::IpAddr;

const NS: i64 = 1_000_000_000;

/// Timeouts and bounds of the tracker. Durations in nanoseconds of packet time.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Capturing node, written on every row.
    pub node: String,
    /// A TCP connection with no packet for this long is finished.
    pub tcp_idle_timeout_ns: i64,
    /// A TCP SYN that got no SYN-ACK is finished after this long without packets.
    pub tcp_handshake_timeout_ns: i64,
    /// A TCP connection is kept this long after its close (FIN both ways, or RST) to take late
    /// packets (final ACKs, retransmitted FINs).
    pub tcp_close_linger_ns: i64,
    /// A UDP pseudo-connection with no packet for this long is finished.
    pub udp_idle_timeout_ns: i64,
    /// An ICMP pseudo-connection with no packet for this long is finished.
    pub icmp_idle_timeout_ns: i64,
    /// A connection with traffic emits an interim row at least this often.
    pub active_timeout_ns: i64,
    /// Most live connections.
    pub max_connections: usize,
    /// Emit one `packets` row per packet.
    pub packets_table: bool,
    /// DNS tracking settings.
    pub dns: DnsConfig,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            node: String::new(),
            tcp_idle_timeout_ns: 15 * 60 * NS,
            tcp_handshake_timeout_ns: 2 * 60 * NS,
            tcp_close_linger_ns: 10 * NS,
            udp_idle_timeout_ns: 2 * 60 * NS,
            icmp_idle_timeout_ns: 60 * NS,
            active_timeout_ns: 60 * NS,
            max_connections: 500_000,
            packets_table: false,
            dns: DnsConfig::default(),
        }
    }
}

/// Tracker counters, for the summary and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Connections started.
    pub connections: u64,
    /// Connections finished early because the table was full.
    pub evicted: u64,
    /// ICMP errors attributed to a connection seen before.
    pub icmp_errors_matched: u64,
    /// ICMP errors quoting a connection not seen before (a row was made for it).
    pub icmp_errors_unmatched: u64,
    /// ICMP errors whose quoted header could not be read.
    pub icmp_errors_unreadable: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    proto: u8,
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
    segment: Segment,
}

impl Key {
    fn new(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16), segment: Segment) -> Key {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Key { proto, lo, hi, segment }
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

/// A live connection. Index 0 of the two-element arrays is the initiator (`src`).
#[derive(Debug, Clone)]
struct Conn {
    conn_id: i64,
    proto: u8,
    ends: [(IpAddr, u16); 2],
    /// Ports written on the row: the real ports, or (type, code) for ICMP.
    report_ports: (u16, u16),
    segment: Segment,
    first_ns: i64,
    last_ns: i64,
    row_start_ns: Option<i64>,
    row_end_ns: i64,
    row_seq: i32,
    row: [DirCounters; 2],
    total_packets: [u64; 2],
    flags: [u8; 2],
    sent_syn: [bool; 2],
    sent_synack: [bool; 2],
    fin: [bool; 2],
    rst: [bool; 2],
    fin_first: Option<usize>,
    rst_first: Option<usize>,
    isn: Option<u32>,
    last_syn_ns: Option<i64>,
    synack_seen: bool,
    rtt_ns: Option<i64>,
    next_seq: [Option<u32>; 2],
    closed_ns: Option<i64>,
    icmp_error: Option<(u8, u8)>,
    icmp_error_src: Option<IpAddr>,
    icmp_errors_row: u64,
    icmp_errors_total: u64,
}

fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A deterministic id: the same packets on the same node give the same id on every run, so a
/// replay rewrites rows instead of adding new ones.
fn conn_id(node: &str, first_ns: i64, proto: u8, ends: &[(IpAddr, u16); 2], seg: &Segment) -> i64 {
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

/// `a <= b` in TCP sequence space.
fn seq_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

fn is_ephemeral(p: u16) -> bool {
    (32768..=60999).contains(&p)
}

/// For a TCP flow picked up mid-stream: true when the packet's sender looks like the client.
fn sender_looks_like_client(sport: u16, dport: u16) -> bool {
    if (sport < 1024) != (dport < 1024) {
        return dport < 1024;
    }
    if is_ephemeral(sport) != is_ephemeral(dport) {
        return is_ephemeral(sport);
    }
    if sport != dport {
        return dport < sport;
    }
    true
}

fn is_icmp_error(v6: bool, typ: u8) -> bool {
    if v6 { matches!(typ, 1..=4) } else { matches!(typ, 3 | 4 | 5 | 11 | 12) }
}

/// ICMP echo request/reply: (is request, is reply).
fn icmp_echo(v6: bool, typ: u8) -> (bool, bool) {
    if v6 { (typ == 128, typ == 129) } else { (typ == 8, typ == 0) }
}

/// The connection tracker.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    conns: HashMap<Key, Conn>,
    now_ns: i64,
    next_sweep_ns: i64,
    /// DNS transactions and the resolved-name index.
    pub dns: DnsTracker,
    /// Finished rows, drained by the pipeline.
    pub out: Vec<ConnectionRecord>,
    /// Packet rows (when enabled), drained by the pipeline.
    pub packets_out: Vec<PacketRecord>,
    /// Counters.
    pub stats: TrackerStats,
}

/// How often (packet time) timeouts are checked.
const SWEEP_INTERVAL_NS: i64 = NS;

impl Tracker {
    /// A tracker with an empty table.
    pub fn new(config: TrackerConfig) -> Self {
        let dns = DnsTracker::new(config.dns.clone(), &config.node);
        Tracker {
            config,
            conns: HashMap::new(),
            now_ns: i64::MIN,
            next_sweep_ns: i64::MIN,
            dns,
            out: Vec::new(),
            packets_out: Vec::new(),
            stats: TrackerStats::default(),
        }
    }

    /// Live connections.
    pub fn live(&self) -> usize {
        self.conns.len()
    }

    /// The latest packet time seen (ns).
    pub fn now_ns(&self) -> i64 {
        self.now_ns
    }

    /// Handles one decoded packet captured at `ts_ns`.
    pub fn on_packet(&mut self, ts_ns: i64, pkt: &Packet<'_>) {
        if ts_ns > self.now_ns {
            self.now_ns = ts_ns;
            if ts_ns >= self.next_sweep_ns {
                self.sweep(false);
                self.next_sweep_ns = ts_ns + SWEEP_INTERVAL_NS;
            }
        }
        let (proto, sport, dport) = match pkt.transport {
            Transport::Tcp { sport, dport, .. } => (TCP, sport, dport),
            Transport::Udp { sport, dport, .. } => (UDP, sport, dport),
            Transport::Icmp { v6, typ, code, rest, body } => {
                if is_icmp_error(v6, typ) {
                    self.on_icmp_error(ts_ns, pkt, typ, code, body);
                    return;
                }
                let (req, rep) = icmp_echo(v6, typ);
                let id = if req || rep { u16::from_be_bytes([rest[0], rest[1]]) } else { 0 };
                (ICMP, id, id)
            }
        };
        let key = Key::new(proto, (pkt.src, sport), (pkt.dst, dport), pkt.segment);

        // Finish the connection this packet cannot belong to (timed out, or port reuse).
        if let Some(c) = self.conns.get(&key) {
            let stale = ts_ns - c.last_ns > self.timeout(c);
            let reuse = match pkt.transport {
                Transport::Tcp { flags, seq, .. } => {
                    flags & (flag::SYN | flag::ACK) == flag::SYN
                        && (c.fin[0] || c.fin[1] || c.rst[0] || c.rst[1] || {
                            let handshake = c.sent_synack[0] || c.sent_synack[1];
                            match c.isn {
                                Some(isn) => handshake && isn != seq,
                                None => c.total_packets[0] + c.total_packets[1] > 0,
                            }
                        })
                }
                _ => false,
            };
            if stale || reuse {
                if let Some(c) = self.conns.remove(&key) {
                    self.finish(c);
                }
            }
        }
        if !self.conns.contains_key(&key) {
            if self.conns.len() >= self.config.max_connections {
                self.evict();
            }
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
            let (ends, report_ports) = {
                let s = (pkt.src, sport);
                let d = (pkt.dst, dport);
                let ends = if initiator_is_sender { [s, d] } else { [d, s] };
                let ports = match pkt.transport {
                    Transport::Icmp { v6, typ, code, .. } => {
                        // Zeek's convention: type and code in the port columns; for echo the
                        // request type.
                        let (_, rep) = icmp_echo(v6, typ);
                        let t = if rep { if v6 { 128 } else { 8 } } else { typ };
                        (u16::from(t), u16::from(code))
                    }
                    _ => (ends[0].1, ends[1].1),
                };
                (ends, ports)
            };
            let c = self.new_conn(proto, ends, report_ports, pkt.segment, ts_ns);
            self.conns.insert(key, c);
        }
        let Some(c) = self.conns.get_mut(&key) else { return };
        let side = usize::from(!(c.ends[0] == (pkt.src, sport)));
        c.last_ns = c.last_ns.max(ts_ns);
        c.row_start_ns.get_or_insert(ts_ns);
        c.row_end_ns = c.row_end_ns.max(ts_ns);
        let d = &mut c.row[side];
        d.packets += u64::from(pkt.packets);
        d.bytes += pkt.ip_bytes;
        d.payload_bytes += pkt.payload_len;
        c.total_packets[side] += u64::from(pkt.packets);

        let mut tcp_fields = None;
        if let Transport::Tcp { flags, seq, ack, window, .. } = pkt.transport {
            tcp_update(c, side, ts_ns, flags, seq, window, pkt.payload_len);
            tcp_fields = Some(TcpFields { flags, seq, ack, window });
        }
        let conn_id = c.conn_id;

        if self.config.packets_table {
            self.packets_out.push(PacketRecord {
                ts_ns,
                conn_id,
                from_initiator: side == 0,
                protocol: proto_name(proto),
                src_ip: pkt.src,
                src_port: if proto == ICMP { 0 } else { sport },
                dst_ip: pkt.dst,
                dst_port: if proto == ICMP { 0 } else { dport },
                tcp: tcp_fields,
                ip_bytes: u32::try_from(pkt.ip_bytes).unwrap_or(u32::MAX),
                payload_bytes: u32::try_from(pkt.payload_len).unwrap_or(u32::MAX),
                node: self.config.node.clone(),
                src_meta: EndpointMeta::default(),
                dst_meta: EndpointMeta::default(),
            });
        }

        if sport == 53 || dport == 53 {
            let (payload, tcp) = match pkt.transport {
                Transport::Tcp { payload, .. } => (payload, true),
                Transport::Udp { payload, .. } => (payload, false),
                Transport::Icmp { .. } => (&[][..], false),
            };
            if !payload.is_empty() {
                let carrier = Carrier {
                    ts_ns,
                    conn_id,
                    protocol: proto_name(proto),
                    src: pkt.src,
                    sport,
                    dst: pkt.dst,
                    dport,
                };
                self.dns.on_payload(carrier, payload, tcp);
            }
        }
    }

    fn new_conn(
        &mut self,
        proto: u8,
        ends: [(IpAddr, u16); 2],
        report_ports: (u16, u16),
        segment: Segment,
        ts_ns: i64,
    ) -> Conn {
        self.stats.connections += 1;
        Conn {
            conn_id: conn_id(&self.config.node, ts_ns, proto, &ends, &segment),
            proto,
            ends,
            report_ports,
            segment,
            first_ns: ts_ns,
            last_ns: ts_ns,
            row_start_ns: None,
            row_end_ns: ts_ns,
            row_seq: 0,
            row: [DirCounters::default(); 2],
            total_packets: [0; 2],
            flags: [0; 2],
            sent_syn: [false; 2],
            sent_synack: [false; 2],
            fin: [false; 2],
            rst: [false; 2],
            fin_first: None,
            rst_first: None,
            isn: None,
            last_syn_ns: None,
            synack_seen: false,
            rtt_ns: None,
            next_seq: [None; 2],
            closed_ns: None,
            icmp_error: None,
            icmp_error_src: None,
            icmp_errors_row: 0,
            icmp_errors_total: 0,
        }
    }

    fn on_icmp_error(&mut self, ts_ns: i64, pkt: &Packet<'_>, typ: u8, code: u8, body: &[u8]) {
        let Some((qproto, qsrc, qdst, qsport, qdport)) = quoted_flow(body) else {
            self.stats.icmp_errors_unreadable += 1;
            return;
        };
        let key = Key::new(qproto, (qsrc, qsport), (qdst, qdport), pkt.segment);
        if self.conns.contains_key(&key) {
            self.stats.icmp_errors_matched += 1;
        } else {
            self.stats.icmp_errors_unmatched += 1;
            if self.conns.len() >= self.config.max_connections {
                self.evict();
            }
            let ends = [(qsrc, qsport), (qdst, qdport)];
            let ports = if qproto == ICMP { (8, 0) } else { (qsport, qdport) };
            let c = self.new_conn(qproto, ends, ports, pkt.segment, ts_ns);
            self.conns.insert(key, c);
        }
        if let Some(c) = self.conns.get_mut(&key) {
            c.icmp_error = Some((typ, code));
            c.icmp_error_src = Some(pkt.src);
            c.icmp_errors_row += 1;
            c.icmp_errors_total += 1;
            c.last_ns = c.last_ns.max(ts_ns);
        }
    }

    fn timeout(&self, c: &Conn) -> i64 {
        match c.proto {
            TCP => {
                if c.closed_ns.is_some() {
                    self.config.tcp_close_linger_ns
                } else if (c.sent_syn[0] || c.sent_syn[1]) && !(c.sent_synack[0] || c.sent_synack[1])
                {
                    self.config.tcp_handshake_timeout_ns
                } else {
                    self.config.tcp_idle_timeout_ns
                }
            }
            UDP => self.config.udp_idle_timeout_ns,
            _ => self.config.icmp_idle_timeout_ns,
        }
    }

    /// Emits interim rows and finishes timed-out connections; `all` finishes everything (end of
    /// input).
    pub fn sweep(&mut self, all: bool) {
        let now = self.now_ns;
        let mut done = Vec::new();
        let active = self.config.active_timeout_ns;
        let mut interim = Vec::new();
        for (k, c) in &self.conns {
            if all || now - c.last_ns > self.timeout(c) {
                done.push(*k);
            } else if c.row_start_ns.is_some_and(|s| now - s >= active) {
                interim.push(*k);
            }
        }
        for k in interim {
            if let Some(c) = self.conns.get_mut(&k) {
                let rec = record(c, false, &self.dns, &self.config.node);
                self.out.push(rec);
                start_next_row(c);
            }
        }
        // Finish in time order so that rows come out roughly sorted.
        done.sort_by_key(|k| self.conns.get(k).map_or(0, |c| c.first_ns));
        for k in done {
            if let Some(c) = self.conns.remove(&k) {
                self.finish(c);
            }
        }
        self.dns.expire(now, all);
    }

    fn finish(&mut self, c: Conn) {
        let rec = record(&c, true, &self.dns, &self.config.node);
        self.out.push(rec);
    }

    fn evict(&mut self) {
        let n = (self.config.max_connections / 16).max(1);
        let mut ages: Vec<(i64, Key)> = self.conns.iter().map(|(k, c)| (c.last_ns, *k)).collect();
        if ages.len() > n {
            ages.select_nth_unstable_by_key(n, |(t, _)| *t);
            ages.truncate(n);
        }
        for (_, k) in ages {
            if let Some(c) = self.conns.remove(&k) {
                self.stats.evicted += 1;
                self.finish(c);
            }
        }
    }
}

fn proto_name(p: u8) -> &'static str {
    match p {
        TCP => protocol::TCP,
        UDP => protocol::UDP,
        _ => protocol::ICMP,
    }
}

/// The flow an ICMP error quotes: (protocol, src, dst, sport, dport) of the original packet.
fn quoted_flow(body: &[u8]) -> Option<(u8, IpAddr, IpAddr, u16, u16)> {
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

fn tcp_update(c: &mut Conn, side: usize, ts_ns: i64, flags: u8, seq: u32, window: u16, len: u64) {
    c.flags[side] |= flags;
    let syn = flags & flag::SYN != 0;
    let ack = flags & flag::ACK != 0;
    let fin = flags & flag::FIN != 0;
    let rst = flags & flag::RST != 0;
    if syn && !ack {
        c.sent_syn[side] = true;
        c.isn.get_or_insert(seq);
        if !c.synack_seen {
            c.last_syn_ns = Some(ts_ns);
        }
    }
    if syn && ack {
        c.sent_synack[side] = true;
        c.synack_seen = true;
    }
    if ack && !syn && side == 0 && c.synack_seen && c.rtt_ns.is_none() {
        if let Some(t) = c.last_syn_ns {
            c.rtt_ns = Some((ts_ns - t).max(0));
        }
    }
    if fin {
        c.fin[side] = true;
        c.fin_first.get_or_insert(side);
    }
    if rst {
        c.rst[side] = true;
        c.rst_first.get_or_insert(side);
    }
    if c.closed_ns.is_none() && ((c.fin[0] && c.fin[1]) || rst) {
        c.closed_ns = Some(ts_ns);
    }
    // Retransmission: a segment that occupies sequence space and ends at or before the highest
    // sequence number this side has sent. Keep-alives (one byte or none, just below it) are not.
    let seg_len = len + u64::from(syn) + u64::from(fin);
    if seg_len > 0 && !rst {
        let end = seq.wrapping_add(u32::try_from(seg_len).unwrap_or(u32::MAX));
        match c.next_seq[side] {
            Some(max) if seq_le(end, max) => {
                let keepalive = len <= 1 && !syn && !fin && seq.wrapping_add(1) == max;
                if !keepalive {
                    c.row[side].retransmits += 1;
                }
            }
            _ => c.next_seq[side] = Some(end),
        }
    }
    if window == 0 && !syn && !rst {
        c.row[side].zero_windows += 1;
    }
}

fn outcome_of(c: &Conn) -> &'static str {
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

fn side_name(s: Option<usize>) -> &'static str {
    match s {
        Some(0) => by::SRC,
        Some(_) => by::DST,
        None => by::NONE,
    }
}

fn record(c: &Conn, is_final: bool, dns: &DnsTracker, node: &str) -> ConnectionRecord {
    let start = c.row_start_ns.unwrap_or(c.last_ns);
    let end = if c.row_start_ns.is_some() { c.row_end_ns } else { c.last_ns };
    let dst_dns_name = dns.name_for(c.ends[1].0, c.first_ns, c.ends[0].0).unwrap_or("").to_string();
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
        node: node.to_string(),
        src_meta: EndpointMeta::default(),
        dst_meta: EndpointMeta::default(),
    }
}

fn start_next_row(c: &mut Conn) {
    c.row = [DirCounters::default(); 2];
    c.icmp_errors_row = 0;
    c.row_seq += 1;
    c.row_start_ns = None;
}
