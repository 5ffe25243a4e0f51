//! Packet decoding: link layer, VLAN/QinQ/MPLS, IPv4/IPv6 with extension headers, IP fragments,
//! tunnels (VXLAN, Geneve, GRE, ERSPAN II/III, IP-in-IP), and the transport header.
//!
//! Headers are parsed with `etherparse`; the few encapsulations it does not know (SLL2, null
//! loopback, MPLS, GRE, ERSPAN, VXLAN, Geneve) are walked here. Tunnelled packets are decoded down
//! to the innermost IP packet: a node capture sees overlay traffic, and the connection is the inner
//! flow. The tunnel (kind and VNI) and the innermost frame's VLAN tags become part of the
//! connection key, so the same 5-tuple on two VLANs or two VNIs is two connections.
//!
//! Decoding never panics on any input: every malformed packet is a [`Skip`] with a reason.
use crate::frag::{FragKey, Reassembler};
pub use crate::packet::{Segment, Skip, TunnelKind};
use etherparse::{
    EtherType, Icmpv4Slice, Icmpv6Slice, IpNumber, LaxIpSlice, SingleVlanHeaderSlice,
    TcpHeaderSlice, UdpHeaderSlice,
};
use std::net::IpAddr;

/// Link types podwire reads (pcap `LINKTYPE_*` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1).
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113), `tcpdump -i any` before libpcap 1.10.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276), `tcpdump -i any` since libpcap 1.10.
    LinuxSll2,
    /// `LINKTYPE_RAW` (101, and DLT 12/14 on some systems): the frame is an IP packet.
    RawIp,
    /// `LINKTYPE_IPV4` (228).
    Ipv4,
    /// `LINKTYPE_IPV6` (229).
    Ipv6,
    /// `LINKTYPE_NULL` (0) and `LINKTYPE_LOOP` (108): a 4-byte address family, then IP.
    Null,
}

impl LinkType {
    /// Maps a pcap link-type number; `None` for link types podwire does not decode.
    pub fn from_pcap(linktype: i32) -> Option<LinkType> {
        Some(match linktype {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 | 108 => LinkType::Null,
            _ => return None,
        })
    }
}

/// Most nested encapsulations (tunnels and IP-in-IP) followed.
pub const MAX_ENCAP_DEPTH: u8 = 4;

/// The transport layer of a decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flag bits (FIN 0x01 ... CWR 0x80).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number.
        ack: u32,
        /// Window, unscaled.
        window: u16,
        /// Captured payload (may be shorter than `payload_len` in snaplen-cut captures).
        payload: &'a [u8],
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Captured payload.
        payload: &'a [u8],
    },
    /// ICMP or ICMPv6.
    Icmp {
        /// ICMPv6.
        v6: bool,
        /// Type.
        typ: u8,
        /// Code.
        code: u8,
        /// Bytes 5 to 8 of the header (echo: identifier and sequence).
        rest: [u8; 4],
        /// The message body (for errors: the quoted packet).
        body: &'a [u8],
    },
}

/// IP protocol numbers.
pub mod ip_proto {
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

impl Transport<'_> {
    /// The IP protocol number.
    pub fn ip_protocol(&self) -> u8 {
        match self {
            Transport::Tcp { .. } => ip_proto::TCP,
            Transport::Udp { .. } => ip_proto::UDP,
            Transport::Icmp { v6: false, .. } => ip_proto::ICMP,
            Transport::Icmp { v6: true, .. } => ip_proto::ICMPV6,
        }
    }
}

/// A decoded packet: the innermost IP header and its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Where it was seen.
    pub segment: Segment,
    /// Wire packets this stands for (more than 1 for a reassembled fragmented datagram).
    pub packets: u32,
    /// IP-layer bytes, from the IP header's length fields (summed over fragments).
    pub ip_bytes: u64,
    /// Transport payload length from the headers (not the captured length).
    pub payload_len: u64,
    /// Transport header and payload.
    pub transport: Transport<'a>,
}

impl Packet<'_> {
    /// Source and destination ports (0 for ICMP).
    pub fn ports(&self) -> (u16, u16) {
        match self.transport {
            Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport, .. } => {
                (sport, dport)
            }
            Transport::Icmp { .. } => (0, 0),
        }
    }
}

/// A stateful decoder: it holds IP fragments until their datagram is complete.
#[derive(Debug, Default)]
pub struct Decoder {
    frags: Reassembler,
}

/// Where the IP layer starts, after the link and VLAN layers.
enum Net {
    Ip(usize),
    NotIp,
}

impl Decoder {
    /// A decoder with an empty fragment table.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Fragments held, awaiting reassembly.
    pub fn fragments_pending(&self) -> usize {
        self.frags.pending()
    }

    /// Drops incomplete datagrams older than `max_age_ns`.
    pub fn expire_fragments(&mut self, now_ns: i64, max_age_ns: i64) {
        self.frags.expire(now_ns, max_age_ns);
    }

    /// Drops every incomplete datagram (end of input).
    pub fn drain_fragments(&mut self) {
        self.frags.drain();
    }

    /// Fragments dropped unassembled since the last call.
    pub fn take_dropped_fragments(&mut self) -> u64 {
        self.frags.take_dropped()
    }

    /// Decodes one captured frame.
    ///
    /// # Errors
    /// A [`Skip`] reason when the frame yields no transport packet.
    pub fn decode<'s>(
        &'s mut self,
        link: LinkType,
        frame: &'s [u8],
        ts_ns: i64,
    ) -> Result<Packet<'s>, Skip> {
        let mut segment = Segment::default();
        let ip = match link {
            LinkType::Ethernet => match walk_ether(frame, &mut segment)? {
                Net::Ip(off) => &frame[off..],
                Net::NotIp => return Err(Skip::NotIp),
            },
            LinkType::LinuxSll => {
                let proto = be16(frame, 14).ok_or(Skip::TruncatedLink)?;
                match walk_ether_type(frame, 16, proto, &mut segment)? {
                    Net::Ip(off) => &frame[off..],
                    Net::NotIp => return Err(Skip::NotIp),
                }
            }
            LinkType::LinuxSll2 => {
                let proto = be16(frame, 0).ok_or(Skip::TruncatedLink)?;
                if frame.len() < 20 {
                    return Err(Skip::TruncatedLink);
                }
                match walk_ether_type(frame, 20, proto, &mut segment)? {
                    Net::Ip(off) => &frame[off..],
                    Net::NotIp => return Err(Skip::NotIp),
                }
            }
            LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => frame,
            LinkType::Null => {
                let fam = frame.get(..4).ok_or(Skip::TruncatedLink)?;
                // The family is in the writer's byte order: accept both.
                let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
                let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
                let is_ip = |f: u32| matches!(f, 2 | 24 | 28 | 30);
                if !is_ip(le) && !is_ip(be) {
                    return Err(Skip::NotIp);
                }
                &frame[4..]
            }
        };
        self.decode_ip(ip, segment, 0, u64::MAX, ts_ns)
    }

    /// Decodes an IP packet. `max_len` is what the enclosing header (a tunnel's UDP or IP
    /// length) says the packet can occupy: an inner header claiming more is clamped to it, as
    /// tshark does.
    fn decode_ip<'s>(
        &'s mut self,
        data: &'s [u8],
        mut segment: Segment,
        depth: u8,
        max_len: u64,
        ts_ns: i64,
    ) -> Result<Packet<'s>, Skip> {
        if depth > MAX_ENCAP_DEPTH {
            return Err(Skip::TooDeep);
        }
        let (ip, _ext_err) = LaxIpSlice::from_slice(data).map_err(|_| Skip::BadIp)?;
        let src = ip.source_addr();
        let dst = ip.destination_addr();
        let payload = ip.payload();
        let proto = payload.ip_number;
        let (ip_bytes, header_len) = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                (u64::from(h.total_len()), u64::from(h.ihl()) * 4)
            }
            LaxIpSlice::Ipv6(v6) => {
                let plen = u64::from(v6.header().payload_length());
                let exts = v6.extensions().slice().len() as u64;
                (40 + plen, 40 + exts)
            }
        };
        // Length fields that disagree with themselves: fall back to what was captured.
        let ip_bytes = if ip_bytes < header_len {
            header_len + payload.payload.len() as u64
        } else {
            ip_bytes
        };
        let ip_bytes = ip_bytes.min(max_len).max(header_len);
        let transport_len = ip_bytes - header_len;

        if payload.fragmented {
            let key = match &ip {
                LaxIpSlice::Ipv4(v4) => {
                    let h = v4.header();
                    FragKey::new(src, dst, u32::from(h.identification()), proto.0, segment)
                }
                LaxIpSlice::Ipv6(v6) => {
                    let id = v6_fragment(v6).map(|(id, _, _)| id).ok_or(Skip::BadIp)?;
                    FragKey::new(src, dst, id, proto.0, segment)
                }
            };
            let (offset, more) = match &ip {
                LaxIpSlice::Ipv4(v4) => {
                    let h = v4.header();
                    (h.fragments_offset(), h.more_fragments())
                }
                LaxIpSlice::Ipv6(v6) => {
                    let (_, off, more) = v6_fragment(v6).ok_or(Skip::BadIp)?;
                    (off, more)
                }
            };
            let done = self.frags.add(key, offset, more, payload.payload, ip_bytes, ts_ns)?;
            let Some(done) = done else { return Err(Skip::FragmentHeld) };
            let (packets, ip_bytes) = (done.packets, done.ip_bytes);
            let transport_len = self.frags.last_datagram.len() as u64;
            let data: &'s [u8] = &self.frags.last_datagram;
            let (transport, payload_len) = transport(proto, data, transport_len)?;
            return Ok(Packet { src, dst, segment, packets, ip_bytes, payload_len, transport });
        }

        let body = payload.payload;
        match proto {
            IpNumber::IPV4 | IpNumber::IPV6 => {
                segment = Segment { tunnel: TunnelKind::IpInIp, vni: 0, vlan: [0, 0] };
                return self.decode_ip(body, segment, depth + 1, transport_len, ts_ns);
            }
            IpNumber::GRE => {
                let (ether_type, off, kind) = gre(body)?;
                // GRE keys differ per direction in practice (VMware), so they are not part of
                // the segment.
                segment = Segment { tunnel: kind, vni: 0, vlan: [0, 0] };
                let inner = body.get(off..).ok_or(Skip::BadTransport)?;
                let max = transport_len.saturating_sub(off as u64);
                return self.decode_inner(ether_type, inner, segment, depth, max, ts_ns);
            }
            _ => {}
        }
        let (transport, payload_len) = transport(proto, body, transport_len)?;
        if let Transport::Udp { dport, payload, .. } = transport
            && let Some((ether_type, off, kind, vni)) = udp_tunnel(dport, payload)
        {
            segment = Segment { tunnel: kind, vni, vlan: [0, 0] };
            let inner = payload.get(off..).ok_or(Skip::BadTransport)?;
            let max = payload_len.saturating_sub(off as u64);
            return self.decode_inner(ether_type, inner, segment, depth, max, ts_ns);
        }
        Ok(Packet { src, dst, segment, packets: 1, ip_bytes, payload_len, transport })
    }

    /// Decodes what a tunnel carries: an Ethernet frame (`ether_type` 0x6558) or an IP packet.
    /// `max_len` is the tunnel payload's length by the enclosing headers.
    fn decode_inner<'s>(
        &'s mut self,
        ether_type: u16,
        data: &'s [u8],
        mut segment: Segment,
        depth: u8,
        max_len: u64,
        ts_ns: i64,
    ) -> Result<Packet<'s>, Skip> {
        let net = if ether_type == TEB {
            walk_ether(data, &mut segment)?
        } else {
            walk_ether_type(data, 0, ether_type, &mut segment)?
        };
        if segment.tunnel == TunnelKind::Erspan {
            // A mirror session sees a routed flow on several VLANs (in and out): the inner VLAN
            // does not identify the connection there.
            segment.vlan = [0, 0];
        }
        match net {
            Net::Ip(off) => {
                let max = max_len.saturating_sub(off as u64);
                self.decode_ip(&data[off..], segment, depth + 1, max, ts_ns)
            }
            Net::NotIp => Err(Skip::NotIp),
        }
    }
}

/// Transparent Ethernet bridging: the payload is an Ethernet frame.
const TEB: u16 = 0x6558;

fn be16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(off)?, *d.get(off + 1)?]))
}

fn be32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*d.get(off)?, *d.get(off + 1)?, *d.get(off + 2)?, *d.get(off + 3)?]))
}

fn walk_ether(frame: &[u8], segment: &mut Segment) -> Result<Net, Skip> {
    let eth =
        etherparse::Ethernet2HeaderSlice::from_slice(frame).map_err(|_| Skip::TruncatedLink)?;
    walk_ether_type(frame, 14, eth.ether_type().0, segment)
}

/// Follows VLAN tags and MPLS labels from `off` until an IP header.
fn walk_ether_type(
    frame: &[u8],
    mut off: usize,
    mut ether_type: u16,
    segment: &mut Segment,
) -> Result<Net, Skip> {
    let mut tags = 0usize;
    segment.vlan = [0, 0];
    loop {
        match EtherType(ether_type) {
            EtherType::IPV4 | EtherType::IPV6 => return Ok(Net::Ip(off)),
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                let rest = frame.get(off..).ok_or(Skip::TruncatedLink)?;
                let vlan =
                    SingleVlanHeaderSlice::from_slice(rest).map_err(|_| Skip::TruncatedLink)?;
                if tags < 2 {
                    segment.vlan[tags] = vlan.vlan_identifier().value();
                }
                tags += 1;
                if tags > 8 {
                    return Err(Skip::TooDeep);
                }
                ether_type = vlan.ether_type().0;
                off += 4;
            }
            EtherType(0x8847) | EtherType(0x8848) => {
                // MPLS: skip the label stack up to bottom-of-stack, then guess IPv4/IPv6.
                loop {
                    let label = be32(frame, off).ok_or(Skip::TruncatedLink)?;
                    off += 4;
                    if label & 0x100 != 0 {
                        break;
                    }
                }
                return match frame.get(off).map(|b| b >> 4) {
                    Some(4 | 6) => Ok(Net::Ip(off)),
                    Some(_) => Ok(Net::NotIp),
                    None => Err(Skip::TruncatedLink),
                };
            }
            _ => return Ok(Net::NotIp),
        }
    }
}

/// The IPv6 fragment header: (identification, offset, more fragments).
fn v6_fragment(v6: &etherparse::LaxIpv6Slice<'_>) -> Option<(u32, etherparse::IpFragOffset, bool)> {
    for ext in v6.extensions().clone() {
        if let etherparse::Ipv6ExtensionSlice::Fragment(f) = ext {
            return Some((f.identification(), f.fragment_offset(), f.more_fragments()));
        }
    }
    None
}

/// Parses a GRE header: (payload ether type, payload offset, tunnel kind).
fn gre(d: &[u8]) -> Result<(u16, usize, TunnelKind), Skip> {
    let flags = be16(d, 0).ok_or(Skip::BadTransport)?;
    let proto = be16(d, 2).ok_or(Skip::BadTransport)?;
    if flags & 0x7 != 0 {
        // GRE version 1 (PPTP) and others.
        return Err(Skip::UnknownTunnel);
    }
    let mut off = 4;
    if flags & 0x8000 != 0 {
        off += 4; // checksum + reserved
    }
    if flags & 0x2000 != 0 {
        off += 4; // key
    }
    let seq_present = flags & 0x1000 != 0;
    if seq_present {
        off += 4;
    }
    match proto {
        0x88BE => {
            // ERSPAN type II has an 8-byte header when the GRE sequence bit is set; type I none.
            let len = if seq_present { 8 } else { 0 };
            Ok((TEB, off + len, TunnelKind::Erspan))
        }
        0x22EB => {
            // ERSPAN type III: 12 bytes, plus 8 of platform-specific subheader when O is set.
            let o_bit = d.get(off + 11).ok_or(Skip::BadTransport)? & 0x1;
            let len = if o_bit != 0 { 20 } else { 12 };
            Ok((TEB, off + len, TunnelKind::Erspan))
        }
        TEB | 0x0800 | 0x86DD | 0x8100 | 0x88A8 => Ok((proto, off, TunnelKind::Gre)),
        _ => Err(Skip::UnknownTunnel),
    }
}

/// VXLAN (4789) and Geneve (6081) by destination port: (ether type, offset, kind, VNI).
fn udp_tunnel(dport: u16, p: &[u8]) -> Option<(u16, usize, TunnelKind, u32)> {
    match dport {
        4789 | 8472 => {
            // flags byte must have the I bit (VNI valid); 8-byte header.
            if p.len() < 8 + 14 || p[0] & 0x08 == 0 {
                return None;
            }
            let vni = be32(p, 4)? >> 8;
            Some((TEB, 8, TunnelKind::Vxlan, vni))
        }
        6081 => {
            let ver = p.first()? >> 6;
            if ver != 0 {
                return None;
            }
            let opt_len = usize::from(p[0] & 0x3f) * 4;
            let proto = be16(p, 2)?;
            let vni = be32(p, 4)? >> 8;
            Some((proto, 8 + opt_len, TunnelKind::Geneve, vni))
        }
        _ => None,
    }
}

/// Parses the transport header of `data`; `transport_len` is the transport layer's length
/// according to the IP header. Returns the transport and its payload length by the headers.
fn transport(
    proto: IpNumber,
    data: &[u8],
    transport_len: u64,
) -> Result<(Transport<'_>, u64), Skip> {
    let icmp_len = transport_len.saturating_sub(8);
    match proto {
        IpNumber::TCP => {
            let h = TcpHeaderSlice::from_slice(data).map_err(|_| Skip::BadTransport)?;
            let hl = h.slice().len();
            let raw = h.slice();
            let t = Transport::Tcp {
                sport: h.source_port(),
                dport: h.destination_port(),
                flags: raw[13],
                seq: h.sequence_number(),
                ack: h.acknowledgment_number(),
                window: h.window_size(),
                payload: &data[hl..],
            };
            Ok((t, transport_len.saturating_sub(hl as u64)))
        }
        IpNumber::UDP => {
            let h = UdpHeaderSlice::from_slice(data).map_err(|_| Skip::BadTransport)?;
            // The UDP length field, where sane, bounds the payload (tshark counts it too).
            let udp_len = u64::from(h.length());
            let len = if (8..=transport_len).contains(&udp_len) { udp_len } else { transport_len };
            let end = usize::try_from(len).unwrap_or(usize::MAX).min(data.len()).max(8);
            let t = Transport::Udp {
                sport: h.source_port(),
                dport: h.destination_port(),
                payload: &data[8..end],
            };
            Ok((t, len.saturating_sub(8)))
        }
        IpNumber::ICMP => {
            let h = Icmpv4Slice::from_slice(data).map_err(|_| Skip::BadTransport)?;
            let t = Transport::Icmp {
                v6: false,
                typ: h.type_u8(),
                code: h.code_u8(),
                rest: h.bytes5to8(),
                body: h.payload(),
            };
            Ok((t, icmp_len))
        }
        IpNumber::IPV6_ICMP => {
            let h = Icmpv6Slice::from_slice(data).map_err(|_| Skip::BadTransport)?;
            let t = Transport::Icmp {
                v6: true,
                typ: h.type_u8(),
                code: h.code_u8(),
                rest: h.bytes5to8(),
                body: h.payload(),
            };
            Ok((t, icmp_len))
        }
        _ => Err(Skip::OtherIpProtocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator (no dependency needed for this).
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_and_mutated_frames_never_panic() {
        // A valid Ethernet/VLAN/IPv4/UDP/VXLAN/Ethernet/IPv6/TCP frame, then mutations of it.
        let mut inner = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([1; 16], [2; 16], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut inner, b"data")
            .unwrap();
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        vx.extend_from_slice(&inner);
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64)
            .udp(1000, 4789)
            .write(&mut frame, &vx)
            .unwrap();
        let mut d = Decoder::new();
        let p = d.decode(LinkType::Ethernet, &frame, 0).unwrap();
        assert_eq!(p.segment.tunnel, TunnelKind::Vxlan);
        assert_eq!(p.segment.vni, 42);
        assert_eq!(p.payload_len, 4);
        let links = [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::RawIp,
            LinkType::Null,
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..200_000u64 {
            let mut f = frame.clone();
            let flips = 1 + next(&mut state) % 4;
            for _ in 0..flips {
                let pos = (next(&mut state) as usize) % f.len();
                f[pos] = next(&mut state) as u8;
            }
            let cut = (next(&mut state) as usize) % (f.len() + 1);
            f.truncate(cut);
            let link = links[(i % links.len() as u64) as usize];
            let _ = d.decode(link, &f, i as i64);
        }
    }
}
