//! What decoding says about a packet that the rest of capture uses too, apart from the decoder
//! (so IP reassembly, which the decoder calls, does not import the decoder back): the network
//! segment a packet was seen on ([`Segment`]: innermost tunnel and VLAN tags), and why a packet
//! made no connection update ([`Skip`]). `crate::decode` re-exports them.

/// Why a packet produced no connection update. Each is a counter in the run's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Not IP: ARP, LLDP, STP, ...
    NotIp,
    /// The link-layer header is cut short.
    TruncatedLink,
    /// The IP header is cut short or invalid.
    BadIp,
    /// The TCP/UDP/ICMP header is cut short or invalid.
    BadTransport,
    /// An IP protocol other than TCP, UDP, ICMP (IGMP, OSPF, ESP, SCTP, ...).
    OtherIpProtocol,
    /// A fragment held until its datagram is complete (counted when it completes).
    FragmentHeld,
    /// A fragment that could not be reassembled (overlap, too big, or its datagram never
    /// completed within the timeout).
    BadFragment,
    /// More than [`crate::decode::MAX_ENCAP_DEPTH`] nested encapsulations.
    TooDeep,
    /// A GRE or tunnel header podwire does not decode.
    UnknownTunnel,
    /// An ICMP error whose quoted IP header cannot be read (so no connection to put it on).
    UnreadableIcmpQuote,
}

impl Skip {
    /// Every reason, in report order.
    pub const ALL: [Skip; 10] = [
        Skip::NotIp,
        Skip::TruncatedLink,
        Skip::BadIp,
        Skip::BadTransport,
        Skip::OtherIpProtocol,
        Skip::FragmentHeld,
        Skip::BadFragment,
        Skip::TooDeep,
        Skip::UnknownTunnel,
        Skip::UnreadableIcmpQuote,
    ];

    /// Stable snake_case name (metric label, summary key).
    pub fn name(self) -> &'static str {
        match self {
            Skip::NotIp => "not_ip",
            Skip::TruncatedLink => "truncated_link_header",
            Skip::BadIp => "bad_ip_header",
            Skip::BadTransport => "bad_transport_header",
            Skip::OtherIpProtocol => "other_ip_protocol",
            Skip::FragmentHeld => "fragment_held",
            Skip::BadFragment => "bad_fragment",
            Skip::TooDeep => "too_many_encapsulations",
            Skip::UnknownTunnel => "unknown_tunnel",
            Skip::UnreadableIcmpQuote => "unreadable_icmp_quote",
        }
    }

    /// What the reason means, for the summary.
    pub fn describe(self) -> &'static str {
        match self {
            Skip::NotIp => "not IP (ARP, LLDP, STP, ...)",
            Skip::TruncatedLink => "link-layer header cut short",
            Skip::BadIp => "IP header cut short or invalid",
            Skip::BadTransport => "TCP/UDP/ICMP header cut short or invalid",
            Skip::OtherIpProtocol => "IP protocol other than TCP/UDP/ICMP",
            Skip::FragmentHeld => "IP fragments awaiting reassembly (counted once complete)",
            Skip::BadFragment => "IP fragments never reassembled",
            Skip::TooDeep => "more nested encapsulations than supported",
            Skip::UnknownTunnel => "tunnel header not decoded",
            Skip::UnreadableIcmpQuote => "ICMP errors quoting an unreadable header",
        }
    }

    /// True for reasons that mean the packet was malformed (as opposed to out of scope).
    pub fn is_malformed(self) -> bool {
        matches!(
            self,
            Skip::TruncatedLink
                | Skip::BadIp
                | Skip::BadTransport
                | Skip::BadFragment
                | Skip::UnreadableIcmpQuote
        )
    }
}

/// Kinds of tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum TunnelKind {
    /// Not tunnelled.
    #[default]
    None,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// Geneve (UDP 6081).
    Geneve,
    /// GRE, including transparent Ethernet bridging.
    Gre,
    /// ERSPAN type II or III (port mirroring over GRE).
    Erspan,
    /// IPv4 or IPv6 in IP.
    IpInIp,
}

/// The network segment a packet was seen on: innermost tunnel and VLAN tags. Part of the
/// connection key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Segment {
    /// Innermost tunnel.
    pub tunnel: TunnelKind,
    /// VXLAN/Geneve VNI; 0 otherwise (GRE keys and ERSPAN sessions differ per direction).
    pub vni: u32,
    /// VLAN ids of the innermost Ethernet frame, outer first; 0 = absent.
    pub vlan: [u16; 2],
}

impl Segment {
    /// `vlan` column text: ids outer first, `.`-separated.
    pub fn vlan_text(&self) -> String {
        match self.vlan {
            [0, _] => String::new(),
            [a, 0] => a.to_string(),
            [a, b] => format!("{a}.{b}"),
        }
    }

    /// `tunnel` column text, e.g. `vxlan:4242`.
    pub fn tunnel_text(&self) -> String {
        let kind = match self.tunnel {
            TunnelKind::None => return String::new(),
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::IpInIp => "ipip",
        };
        if self.vni == 0 { kind.to_string() } else { format!("{kind}:{}", self.vni) }
    }
}
