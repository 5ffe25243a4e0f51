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
//!
//! Here: [`Tracker`] (packets and kernel counts in, timeouts, rows out). Beside it: `table` (keys
//! and the connection table), `timers` (the timer wheel), `conn` (a connection's state, its id,
//! counting a packet on it), `tcp` (sequence space, mid-stream client guess, TCP state), `row`
//! (outcomes and the rows written).
use crate::decode::ip_proto::{ICMP, TCP, UDP};
use crate::decode::{Packet, Segment, Transport};
use crate::dns::{Carrier, DnsConfig, DnsTracker};
use crate::protocols::Protocols;
use podwire_schemas::EndpointMeta;
use podwire_schemas::connections::{ConnectionRecord, DirCounters, flag};
use podwire_schemas::packets::{PacketRecord, TcpFields};
use std::net::IpAddr;

mod conn;
mod row;
mod table;
mod tcp;
mod timers;

use conn::*;
use row::*;
use table::*;
use tcp::*;
use timers::*;

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
    /// Which traffic becomes records (the pipeline drops the rest before the tracker; with
    /// `dns` off, port-53 payloads are not parsed).
    pub protocols: Protocols,
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
            protocols: Protocols::ALL,
            dns: DnsConfig::default(),
        }
    }
}

impl TrackerConfig {
    /// For capture files: the defaults (time is the packets' time, so lingering costs nothing).
    pub fn for_files() -> Self {
        TrackerConfig::default()
    }

    /// For live capture on `node`: a closed TCP connection lingers 2 s instead of 10 for late
    /// packets, so its final row comes sooner (time is wall time here, and the kernel's read
    /// interval has already gathered what came late).
    pub fn for_live(node: &str) -> Self {
        TrackerConfig { node: node.into(), tcp_close_linger_ns: 2 * NS, ..TrackerConfig::default() }
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

/// The connection tracker.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    /// `config.node`, shared by every row.
    node: std::sync::Arc<str>,
    conns: ConnTable,
    /// One timer per live connection (plus stale ones, dropped when they fire). A connection's
    /// timer is not moved on every packet: when it fires early, it is pushed again for the
    /// connection's current deadline.
    timers: TimerWheel,
    /// The timers a sweep handles (kept to reuse its allocation).
    due: Vec<Timer>,
    now_ns: i64,
    next_sweep_ns: i64,
    /// Timeouts are checked only when the clock is moved ([`Tracker::advance`]), never on a
    /// packet's or a count's own time: the live capture, whose packets and counters reach user
    /// space by different roads and may be read late.
    sweep_by_clock: bool,
    /// DNS transactions and the resolved-name index.
    pub dns: DnsTracker,
    /// Finished rows, drained by the pipeline.
    pub out: Vec<ConnectionRecord>,
    /// Packet rows (when enabled), drained by the pipeline.
    pub packets_out: Vec<PacketRecord>,
    /// Counters.
    pub stats: TrackerStats,
}

/// Counters of packets that were counted without being seen one by one: the eBPF capture counts
/// "quiet" packets (no SYN/FIN/RST, no DNS, not a flow's first) in the kernel and hands their
/// per-direction sums to [`Tracker::on_counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounts {
    /// Packets.
    pub packets: u64,
    /// IP bytes.
    pub bytes: u64,
    /// Transport payload bytes.
    pub payload_bytes: u64,
    /// Retransmitted segments.
    pub retransmits: u64,
    /// Zero-window segments.
    pub zero_windows: u64,
    /// TCP flags seen.
    pub flags: u8,
}

impl FlowCounts {
    /// Nothing counted. (Bytes without packets happen: the kernel adds packets, bytes and
    /// payload one after the other, and a read between them takes the bytes next time.)
    pub fn is_empty(&self) -> bool {
        self.packets == 0
            && self.bytes == 0
            && self.payload_bytes == 0
            && self.retransmits == 0
            && self.zero_windows == 0
    }
}

/// How often (packet time) timeouts are checked.
const SWEEP_INTERVAL_NS: i64 = NS;

impl Tracker {
    /// A tracker with an empty table.
    pub fn new(config: TrackerConfig) -> Self {
        let dns = DnsTracker::new(config.dns.clone(), &config.node);
        let capacity = config.max_connections.min(1 << 12);
        Tracker {
            node: config.node.as_str().into(),
            config,
            conns: ConnTable::with_capacity(capacity),
            timers: TimerWheel::new(),
            due: Vec::new(),
            now_ns: i64::MIN,
            next_sweep_ns: i64::MIN,
            sweep_by_clock: false,
            dns,
            out: Vec::new(),
            packets_out: Vec::new(),
            stats: TrackerStats::default(),
        }
    }

    /// The protocol switches it was made with.
    pub fn protocols(&self) -> Protocols {
        self.config.protocols
    }

    /// The capturing node's name.
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// Live connections.
    pub fn live(&self) -> usize {
        self.conns.len()
    }

    /// The latest packet time seen (ns).
    pub fn now_ns(&self) -> i64 {
        self.now_ns
    }

    /// Checks timeouts only when [`Tracker::advance`] moves the clock, not on the time of each
    /// packet or count (the default, for files, where packet time is the clock).
    ///
    /// A live capture needs this: the kernel hands over a connection's SYN and FIN as events
    /// but its data as counters read every interval, and after a stall (the process starved of
    /// CPU) one drain of the event ring can hold packets from seconds apart. Swept on packet
    /// time, a connection closed early in that backlog was finished by a later connection's
    /// event before its counters were read: a row without its payload, and the counters then
    /// started a second, "mid-stream" connection. The capture instead moves the clock once per
    /// interval, to a time taken before the drain, so every packet counted before it has been
    /// read.
    pub fn sweep_by_clock(&mut self, on: bool) {
        self.sweep_by_clock = on;
    }

    /// Handles one decoded packet captured at `ts_ns`. Returns false when the packet could not
    /// be attributed to any connection (an ICMP error whose quoted header is unreadable).
    pub fn on_packet(&mut self, ts_ns: i64, pkt: &Packet<'_>) -> bool {
        self.saw(ts_ns);
        let (proto, sport, dport) = match pkt.transport {
            Transport::Tcp { sport, dport, .. } => (TCP, sport, dport),
            Transport::Udp { sport, dport, .. } => (UDP, sport, dport),
            Transport::Icmp { v6, typ, code, rest, body } => {
                if is_icmp_error(v6, typ) {
                    return self.on_icmp_error(ts_ns, pkt, typ, code, body);
                }
                let (req, rep) = icmp_echo(v6, typ);
                let id = if req || rep { u16::from_be_bytes([rest[0], rest[1]]) } else { 0 };
                (ICMP, id, id)
            }
        };
        let key = Key::new(proto, (pkt.src, sport), (pkt.dst, dport), pkt.segment);

        // The common case: one lookup, a live connection that this packet belongs to.
        let mut found = None;
        let slot = self.conns.slot(&key);
        if let Some(c) = slot.and_then(|i| self.conns.entry_mut(i)?.as_mut()).map(|(_, c)| c) {
            let stale = ts_ns - c.last_ns > timeout_of(&self.config, c);
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
            if !(stale || reuse) {
                let was_closed = c.closed_ns.is_some();
                let (conn_id, side, new_row) = count_packet(c, pkt, ts_ns, sport);
                found = Some((conn_id, side, new_row, !was_closed && c.closed_ns.is_some()));
            }
        }
        let (conn_id, side) = match found {
            Some((conn_id, side, new_row, just_closed)) => {
                // A row just opened, or the connection just closed: its deadline (interim row,
                // or the end of the close linger) may come before its timer: move it up, so a
                // live capture writes the final row a linger after the close.
                let due_ns = if just_closed {
                    Some(ts_ns.saturating_add(self.config.tcp_close_linger_ns).saturating_add(1))
                } else if new_row {
                    Some(ts_ns.saturating_add(self.config.active_timeout_ns))
                } else {
                    None
                };
                if let Some(due_ns) = due_ns {
                    let slot = slot.and_then(|i| u32::try_from(i).ok()).unwrap_or(u32::MAX);
                    if let Some(c) = self.conns.at_mut(slot)
                        && due_ns < c.timer_due
                    {
                        c.timer_due = due_ns;
                        self.timers.push(Timer { due_ns, conn_id, slot });
                    }
                }
                (conn_id, side)
            }
            None => {
                // Finish the connection this packet cannot belong to (timed out, or port reuse),
                // and start a new one.
                if let Some(old) = self.conns.remove(&key) {
                    self.finish(old);
                }
                if self.conns.len() >= self.config.max_connections {
                    self.evict();
                }
                let (ends, report_ports) = orient(pkt, sport, dport);
                let mut c = self.new_conn(proto, ends, report_ports, pkt.segment, ts_ns);
                let (conn_id, side, _) = count_packet(&mut c, pkt, ts_ns, sport);
                let slot = self.conns.insert(key, c);
                self.arm_timer(slot);
                (conn_id, side)
            }
        };
        let tcp_fields = match pkt.transport {
            Transport::Tcp { flags, seq, ack, window, .. } => {
                Some(TcpFields { flags, seq, ack, window })
            }
            _ => None,
        };

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
                node: self.node.clone(),
                src_meta: EndpointMeta::default(),
                dst_meta: EndpointMeta::default(),
            });
        }

        if (sport == 53 || dport == 53) && self.config.protocols.dns {
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
        true
    }

    /// Moves the clock to `now_ns` (wall time of a live capture with no packet lately), so that
    /// idle connections time out and interim rows come due.
    ///
    /// With [`Tracker::sweep_by_clock`], timeouts are checked at `now_ns` itself even when
    /// packets read since carry later times, and at most once per second of it.
    pub fn advance(&mut self, now_ns: i64) {
        if !self.sweep_by_clock {
            self.saw(now_ns);
            return;
        }
        if now_ns >= self.next_sweep_ns {
            self.sweep_at(now_ns, false);
            self.next_sweep_ns = now_ns + SWEEP_INTERVAL_NS;
        }
        self.now_ns = self.now_ns.max(now_ns);
    }

    /// Moves the clock to a packet's or a count's time `ts_ns`; unless it is
    /// [`Tracker::sweep_by_clock`], checks timeouts once per second of that time.
    fn saw(&mut self, ts_ns: i64) {
        if ts_ns > self.now_ns {
            self.now_ns = ts_ns;
            if !self.sweep_by_clock && ts_ns >= self.next_sweep_ns {
                self.sweep(false);
                self.next_sweep_ns = ts_ns + SWEEP_INTERVAL_NS;
            }
        }
    }

    /// Adds counters of packets counted elsewhere (the kernel) to the connection of `proto`
    /// between `a` and `b`: `from[0]` were sent by `a`, `from[1]` by `b`; `ts_ns` is the time of
    /// the latest of them. A connection not live here is started, oriented like one picked up
    /// mid-stream (by its ports).
    pub fn on_counts(
        &mut self,
        ts_ns: i64,
        proto: u8,
        a: (IpAddr, u16),
        b: (IpAddr, u16),
        from: [FlowCounts; 2],
    ) {
        if from[0].is_empty() && from[1].is_empty() {
            return;
        }
        self.saw(ts_ns);
        let key = Key::new(proto, a, b, Segment::default());
        let slot = match self.conns.slot(&key) {
            Some(i) => u32::try_from(i).unwrap_or(u32::MAX),
            None => {
                if self.conns.len() >= self.config.max_connections {
                    self.evict();
                }
                let ends = if sender_looks_like_client(a.1, b.1) { [a, b] } else { [b, a] };
                let c =
                    self.new_conn(proto, ends, (ends[0].1, ends[1].1), Segment::default(), ts_ns);
                let slot = self.conns.insert(key, c);
                self.arm_timer(slot);
                slot
            }
        };
        let Some(c) = self.conns.at_mut(slot) else { return };
        let new_row = c.row_start_ns.is_none() && c.row_seq > 0;
        c.last_ns = c.last_ns.max(ts_ns);
        c.row_start_ns.get_or_insert(ts_ns);
        c.row_end_ns = c.row_end_ns.max(ts_ns);
        let a_side = usize::from(c.ends[0] != a);
        for (i, f) in from.iter().enumerate() {
            let side = if i == 0 { a_side } else { 1 - a_side };
            let d = &mut c.row[side];
            d.packets += f.packets;
            d.bytes += f.bytes;
            d.payload_bytes += f.payload_bytes;
            d.retransmits += f.retransmits;
            d.zero_windows += f.zero_windows;
            c.total_packets[side] += f.packets;
            c.flags[side] |= f.flags;
        }
        if new_row {
            let due_ns = ts_ns.saturating_add(self.config.active_timeout_ns);
            if due_ns < c.timer_due {
                c.timer_due = due_ns;
                let conn_id = c.conn_id;
                self.timers.push(Timer { due_ns, conn_id, slot });
            }
        }
    }

    /// Whether a connection of `proto` between `a` and `b` is live.
    pub fn is_live(&self, proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> bool {
        self.conns.contains_key(&Key::new(proto, a, b, Segment::default()))
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
            timer_due: i64::MAX,
        }
    }

    fn on_icmp_error(
        &mut self,
        ts_ns: i64,
        pkt: &Packet<'_>,
        typ: u8,
        code: u8,
        body: &[u8],
    ) -> bool {
        let Some((qproto, qsrc, qdst, qsport, qdport)) = quoted_flow(body) else {
            self.stats.icmp_errors_unreadable += 1;
            return false;
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
            let v6 = matches!(pkt.transport, Transport::Icmp { v6: true, .. });
            let echo = if v6 { 128 } else { 8 };
            let ports = if qproto == ICMP { (echo, 0) } else { (qsport, qdport) };
            let c = self.new_conn(qproto, ends, ports, pkt.segment, ts_ns);
            let slot = self.conns.insert(key, c);
            self.arm_timer(slot);
        }
        if let Some(c) = self.conns.get_mut(&key) {
            c.icmp_error = Some((typ, code));
            c.icmp_error_src = Some(pkt.src);
            c.icmp_errors_row += 1;
            c.icmp_errors_total += 1;
            c.last_ns = c.last_ns.max(ts_ns);
        }
        true
    }

    fn timeout(&self, c: &Conn) -> i64 {
        timeout_of(&self.config, c)
    }

    /// When a connection next needs attention: its idle timeout, or its interim row.
    fn deadline(&self, c: &Conn) -> i64 {
        let idle = c.last_ns.saturating_add(self.timeout(c)).saturating_add(1);
        match c.row_start_ns {
            Some(s) => idle.min(s.saturating_add(self.config.active_timeout_ns)),
            None => idle,
        }
    }

    /// Sets the timer of the connection in `slot` to its current deadline.
    fn arm_timer(&mut self, slot: u32) {
        let Some(c) = self.conns.at(slot) else { return };
        let due_ns = self.deadline(c);
        let conn_id = c.conn_id;
        if let Some(c) = self.conns.at_mut(slot) {
            c.timer_due = due_ns;
        }
        self.timers.push(Timer { due_ns, conn_id, slot });
    }

    /// Emits interim rows and finishes timed-out connections; `all` finishes everything (end of
    /// input).
    pub fn sweep(&mut self, all: bool) {
        self.sweep_at(self.now_ns, all);
    }

    /// [`Tracker::sweep`] with the clock at `now`.
    fn sweep_at(&mut self, now: i64, all: bool) {
        if all {
            let mut done: Vec<(i64, Key)> =
                self.conns.iter().map(|(k, c)| (c.first_ns, *k)).collect();
            // Finish in time order so that rows come out roughly sorted.
            done.sort_unstable();
            for (_, k) in done {
                if let Some(c) = self.conns.remove(&k) {
                    self.finish(c);
                }
            }
            self.timers.clear();
            self.dns.expire(now, true);
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        self.timers.take_due(now, &mut due);
        for t in due.drain(..) {
            let Some(c) = self.conns.at(t.slot) else { continue };
            if c.conn_id != t.conn_id || c.timer_due != t.due_ns {
                continue; // stale: an earlier connection in this slot, or a moved timer
            }
            if now - c.last_ns > self.timeout(c) {
                if let Some(c) = self.conns.remove_at(t.slot) {
                    self.finish(c);
                }
                continue;
            }
            if self.deadline(c) <= now {
                // The interim row is due.
                if let Some(c) = self.conns.at_mut(t.slot) {
                    let rec = record(c, false, &self.dns, &self.node);
                    self.out.push(rec);
                    start_next_row(c);
                }
            }
            self.arm_timer(t.slot);
        }
        self.due = due;
        self.dns.expire(now, false);
    }

    fn finish(&mut self, c: Conn) {
        let rec = record(&c, true, &self.dns, &self.node);
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

/// How long `c` may stay idle.
fn timeout_of(config: &TrackerConfig, c: &Conn) -> i64 {
    match c.proto {
        TCP => {
            if c.closed_ns.is_some() {
                config.tcp_close_linger_ns
            } else if (c.sent_syn[0] || c.sent_syn[1]) && !(c.sent_synack[0] || c.sent_synack[1]) {
                config.tcp_handshake_timeout_ns
            } else {
                config.tcp_idle_timeout_ns
            }
        }
        UDP => config.udp_idle_timeout_ns,
        _ => config.icmp_idle_timeout_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, LinkType};
    use etherparse::PacketBuilder;
    use podwire_schemas::connections::{by, outcome};

    const C: [u8; 4] = [10, 0, 0, 1];
    const S: [u8; 4] = [10, 0, 0, 2];

    fn tcp(
        src: [u8; 4],
        dst: [u8; 4],
        sp: u16,
        dp: u16,
        flags: &str,
        seq: u32,
        len: usize,
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, seq, 1000);
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'A' => b.ack(1),
                'F' => b.fin(),
                'R' => b.rst(),
                _ => b,
            };
        }
        let payload = vec![0u8; len];
        let mut out = Vec::new();
        b.write(&mut out, &payload).unwrap();
        out
    }

    fn feed(t: &mut Tracker, ts_s: f64, frame: &[u8]) {
        let mut d = Decoder::new();
        let ts = (ts_s * 1e9) as i64;
        let p = d.decode(LinkType::RawIp, frame, ts).unwrap();
        t.on_packet(ts, &p);
    }

    fn finals(t: &Tracker) -> Vec<&ConnectionRecord> {
        t.out.iter().filter(|r| r.is_final).collect()
    }

    #[test]
    fn live_rows_come_sooner_than_a_files_and_nothing_else_differs() {
        let (f, l) = (TrackerConfig::for_files(), TrackerConfig::for_live("n1"));
        assert!(l.tcp_close_linger_ns < f.tcp_close_linger_ns);
        assert_eq!((l.node.as_str(), f.node.as_str()), ("n1", ""));
        assert_eq!(
            (l.tcp_idle_timeout_ns, l.udp_idle_timeout_ns, l.active_timeout_ns, l.max_connections),
            (f.tcp_idle_timeout_ns, f.udp_idle_timeout_ns, f.active_timeout_ns, f.max_connections)
        );
    }

    #[test]
    fn handshake_close_rtt_and_retransmission() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, 1.0, &tcp(C, S, 40000, 80, "S", 100, 0));
        feed(&mut t, 1.5, &tcp(C, S, 40000, 80, "S", 100, 0)); // SYN retransmitted
        feed(&mut t, 1.6, &tcp(S, C, 80, 40000, "SA", 500, 0));
        feed(&mut t, 1.7, &tcp(C, S, 40000, 80, "A", 101, 0));
        feed(&mut t, 1.8, &tcp(C, S, 40000, 80, "A", 101, 10));
        feed(&mut t, 1.9, &tcp(C, S, 40000, 80, "A", 101, 10)); // data retransmitted
        feed(&mut t, 2.0, &tcp(C, S, 40000, 80, "FA", 111, 0));
        feed(&mut t, 2.1, &tcp(S, C, 80, 40000, "FA", 501, 0));
        t.sweep(true);
        let f = finals(&t);
        assert_eq!(f.len(), 1);
        let r = f[0];
        assert_eq!(r.outcome, outcome::CLOSED);
        assert_eq!((r.src_port, r.dst_port), (40000, 80));
        assert_eq!((r.src.packets, r.dst.packets), (6, 2));
        assert_eq!(r.src.payload_bytes, 20);
        assert_eq!(r.src.retransmits, 2, "one SYN and one data segment");
        // RTT from the last SYN (1.5) to the handshake ACK (1.7).
        assert_eq!(r.handshake_rtt_ns, Some(200_000_000));
        assert_eq!(r.closed_by, by::SRC);
    }

    #[test]
    fn kernel_counts_join_the_connection_the_events_made() {
        // The live path: the kernel sends the SYN, SYN-ACK, handshake ACK and FINs, and counts
        // the data segments itself; the row must be the sum, oriented by the events.
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, 1.0, &tcp(C, S, 40000, 80, "S", 100, 0));
        feed(&mut t, 1.1, &tcp(S, C, 80, 40000, "SA", 500, 0));
        feed(&mut t, 1.2, &tcp(C, S, 40000, 80, "A", 101, 0));
        let server = (IpAddr::from(S), 80);
        let client = (IpAddr::from(C), 40000);
        let from_server = FlowCounts {
            packets: 3,
            bytes: 3 * 1040,
            payload_bytes: 3000,
            flags: flag::ACK | flag::PSH,
            ..FlowCounts::default()
        };
        let from_client = FlowCounts {
            packets: 2,
            bytes: 80,
            retransmits: 1,
            flags: flag::ACK,
            ..FlowCounts::default()
        };
        // Given as (a, b) = (server, client): the order of the kernel's key, not the initiator.
        t.on_counts(1_500_000_000, TCP, server, client, [from_server, from_client]);
        feed(&mut t, 2.0, &tcp(C, S, 40000, 80, "FA", 101, 0));
        feed(&mut t, 2.1, &tcp(S, C, 80, 40000, "FA", 3501, 0));
        t.sweep(true);
        let f = finals(&t);
        assert_eq!(f.len(), 1, "{:?}", t.out);
        let r = f[0];
        assert_eq!((r.src_ip, r.src_port), client);
        // Events: SYN, ACK, FIN from the client; SYN-ACK, FIN from the server.
        assert_eq!((r.src.packets, r.dst.packets), (3 + 2, 2 + 3));
        assert_eq!((r.src.payload_bytes, r.dst.payload_bytes), (0, 3000));
        assert_eq!(r.dst.bytes, 2 * 40 + 3 * 1040);
        assert_eq!(r.src.retransmits, 1);
        assert_ne!(r.dst_flags & flag::PSH, 0);
        assert_eq!(r.outcome, outcome::CLOSED);
        assert_eq!(r.handshake_rtt_ns, Some(200_000_000));
        // Counts for a flow with no events (its first packet's event was lost): a connection
        // oriented by its ports, like one picked up mid-stream.
        t.on_counts(
            3_000_000_000,
            TCP,
            server,
            (IpAddr::from(C), 40001),
            [from_server, from_client],
        );
        t.sweep(true);
        let r = t.out.last().expect("a row");
        assert_eq!((r.src_port, r.dst_port, r.outcome), (40001, 80, outcome::MIDSTREAM));
        assert_eq!((r.src.packets, r.dst.packets), (2, 3));
    }

    #[test]
    fn live_counts_read_after_a_stall_join_their_connection() {
        // A live capture starved of CPU drains events from seconds apart at once: connection
        // 40000 opened and closed at 1.0-1.3 s, then connection 40002's SYN at 3.0 s, and only
        // then the kernel's counters of 40000's data. Swept on packet time, 40002's SYN would
        // finish 40000 (closed for longer than the linger) without its payload, and the
        // counters would start a second, mid-stream connection.
        let config = TrackerConfig { tcp_close_linger_ns: 500_000_000, ..TrackerConfig::default() };
        for by_clock in [false, true] {
            let mut t = Tracker::new(config.clone());
            t.sweep_by_clock(by_clock);
            // One drain of the ring: the events in the order the kernel queued them.
            let ring = [
                (1.0, tcp(C, S, 40000, 80, "S", 100, 0)),
                (1.1, tcp(S, C, 80, 40000, "SA", 500, 0)),
                (1.2, tcp(C, S, 40000, 80, "A", 101, 0)),
                (1.3, tcp(C, S, 40000, 80, "FA", 106, 0)),
                (1.3, tcp(S, C, 80, 40000, "FA", 511, 0)),
                (3.0, tcp(C, S, 40002, 80, "S", 900, 0)),
            ];
            for (at, frame) in &ring {
                feed(&mut t, *at, frame);
            }
            let data = |payload| FlowCounts {
                packets: 1,
                bytes: 40 + payload,
                payload_bytes: payload,
                flags: flag::ACK | flag::PSH,
                ..FlowCounts::default()
            };
            let (client, server) = ((IpAddr::from(C), 40000), (IpAddr::from(S), 80));
            t.on_counts(1_250_000_000, TCP, client, server, [data(5), data(10)]);
            // The capture's interval: the clock taken before the drain.
            t.advance(2_900_000_000);
            let rows: Vec<_> =
                t.out.iter().filter(|r| r.src_port == 40000 || r.dst_port == 40000).collect();
            if !by_clock {
                // The failure this mode exists for, shown on the packet-time sweep.
                assert_eq!(rows.len(), 1, "{rows:?}");
                assert_eq!(rows[0].src.payload_bytes, 0);
                assert!(t.is_live(TCP, client, server), "the counters started a second connection");
                continue;
            }
            assert_eq!(rows.len(), 1, "finished at the clock's time: {rows:?}");
            let r = rows[0];
            assert_eq!((r.src_port, r.outcome, r.is_final), (40000, outcome::CLOSED, true));
            assert_eq!((r.src.payload_bytes, r.dst.payload_bytes), (5, 10));
            assert_eq!((r.src.packets, r.dst.packets), (4, 3));
            assert!(!t.is_live(TCP, client, server));
            // 40002 is still in its handshake: not finished, at 2.9 s or at its own 3.0 s.
            assert!(t.is_live(TCP, (IpAddr::from(C), 40002), server));
            t.sweep(true);
            assert!(t.out.iter().all(|r| r.outcome != outcome::MIDSTREAM), "{:?}", t.out);
        }
    }

    #[test]
    fn refused_no_answer_and_reset_by() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, 1.0, &tcp(C, S, 40001, 81, "S", 1, 0));
        feed(&mut t, 1.0, &tcp(S, C, 81, 40001, "RA", 0, 0));
        feed(&mut t, 1.0, &tcp(C, S, 40002, 82, "S", 1, 0));
        feed(&mut t, 1.0, &tcp(C, S, 40003, 83, "S", 1, 0));
        feed(&mut t, 1.1, &tcp(S, C, 83, 40003, "SA", 9, 0));
        feed(&mut t, 1.2, &tcp(C, S, 40003, 83, "A", 2, 0));
        feed(&mut t, 1.3, &tcp(S, C, 83, 40003, "R", 10, 0));
        t.sweep(true);
        let by_port = |p: u16| finals(&t).into_iter().find(|r| r.dst_port == p).unwrap().clone();
        assert_eq!(by_port(81).outcome, outcome::REFUSED);
        assert_eq!(by_port(82).outcome, outcome::NO_ANSWER);
        let r = by_port(83);
        assert_eq!((r.outcome, r.reset_by), (outcome::RESET, by::DST));
    }

    #[test]
    fn midstream_picks_the_server_by_port() {
        let mut t = Tracker::new(TrackerConfig::default());
        // First packet seen goes server → client.
        feed(&mut t, 1.0, &tcp(S, C, 443, 51000, "A", 1, 100));
        t.sweep(true);
        let r = finals(&t)[0];
        assert_eq!((r.src_port, r.dst_port, r.outcome), (51000, 443, outcome::MIDSTREAM));
        assert_eq!((r.src.packets, r.dst.packets), (0, 1));
    }

    #[test]
    fn port_reuse_after_close_starts_a_new_connection() {
        let mut t = Tracker::new(TrackerConfig::default());
        for (i, base) in [1.0, 2.0].into_iter().enumerate() {
            let isn = 1000 * (i as u32 + 1);
            feed(&mut t, base, &tcp(C, S, 40000, 80, "S", isn, 0));
            feed(&mut t, base + 0.1, &tcp(S, C, 80, 40000, "SA", 7, 0));
            feed(&mut t, base + 0.2, &tcp(C, S, 40000, 80, "A", isn + 1, 0));
            feed(&mut t, base + 0.3, &tcp(C, S, 40000, 80, "R", isn + 1, 0));
        }
        t.sweep(true);
        let f = finals(&t);
        assert_eq!(f.len(), 2);
        assert_ne!(f[0].conn_id, f[1].conn_id);
        assert!(f.iter().all(|r| r.outcome == outcome::RESET && r.reset_by == by::SRC));
    }

    #[test]
    fn interim_rows_carry_deltas_and_one_final() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, 0.0, &tcp(C, S, 40000, 80, "S", 1, 0));
        feed(&mut t, 0.1, &tcp(S, C, 80, 40000, "SA", 1, 0));
        // One data packet every 10 s for 200 s: interim rows at least every 60 s.
        for i in 0..20u32 {
            feed(&mut t, 1.0 + f64::from(i) * 10.0, &tcp(C, S, 40000, 80, "A", 2 + i * 5, 5));
        }
        t.sweep(true);
        let rows: Vec<_> = t.out.iter().collect();
        assert!(rows.len() >= 4, "{} rows", rows.len());
        assert!(rows.iter().all(|r| r.conn_id == rows[0].conn_id));
        assert_eq!(rows.iter().filter(|r| r.is_final).count(), 1);
        assert!(rows.last().unwrap().is_final);
        let seqs: Vec<i32> = rows.iter().map(|r| r.row_seq).collect();
        assert_eq!(seqs, (0..rows.len() as i32).collect::<Vec<_>>());
        assert_eq!(rows.iter().map(|r| r.src.packets).sum::<u64>(), 21);
        assert_eq!(rows.iter().map(|r| r.src.payload_bytes).sum::<u64>(), 100);
        for r in &rows[..rows.len() - 1] {
            assert!(r.end_ns - r.start_ns <= 61_000_000_000, "{r:?}");
            assert_eq!(r.outcome, outcome::OPEN);
        }
    }

    #[test]
    fn table_is_bounded_and_evictions_are_counted() {
        let config = TrackerConfig { max_connections: 64, ..TrackerConfig::default() };
        let mut t = Tracker::new(config);
        for i in 0..1000u16 {
            feed(&mut t, 1.0 + f64::from(i) * 1e-4, &tcp(C, S, 10000 + i, 80, "S", 1, 0));
            assert!(t.live() <= 64);
        }
        assert!(t.stats.evicted >= 1000 - 64);
        t.sweep(true);
        assert_eq!(finals(&t).len(), 1000, "every connection still gets its row");
    }

    #[test]
    fn icmp_unreachable_lands_on_the_udp_flow_it_quotes() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut udp = Vec::new();
        PacketBuilder::ipv4(C, S, 64).udp(5000, 9999).write(&mut udp, b"hello").unwrap();
        feed(&mut t, 1.0, &udp);
        let mut icmp = Vec::new();
        PacketBuilder::ipv4(S, C, 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut icmp, &udp)
            .unwrap();
        feed(&mut t, 1.001, &icmp);
        t.sweep(true);
        let f = finals(&t);
        assert_eq!(f.len(), 1);
        let r = f[0];
        assert_eq!(r.outcome, outcome::UNREACHABLE);
        assert_eq!((r.icmp_error, r.icmp_errors), (Some((3, 3)), 1));
        assert_eq!(
            (r.src.packets, r.dst.packets),
            (1, 0),
            "the ICMP error is not a packet of the flow"
        );
        assert_eq!(r.icmp_error_src, Some(IpAddr::from(S)));
    }
}
