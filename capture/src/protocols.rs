//! The protocol switches (`--protocols`, Helm's `capture.protocols`; the CLI parses the names):
//! which traffic becomes records.
//!
//! `dns` is port-53 traffic, over UDP or TCP: its DNS transactions *and* its connections, so a
//! DNS row's `conn_id` always finds its connection. `udp` and `tcp` are the rest of their
//! protocol; `icmp` is ICMP and ICMPv6, including the errors that explain failed connections
//! (port or host unreachable). Traffic switched off is counted as filtered (`packets_filtered`),
//! never silently dropped; live capture drops it in the kernel, before it costs anything.
use crate::decode::ip_proto::{ICMP, ICMPV6, TCP, UDP};
use std::fmt;

/// The switches, each on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    /// TCP, except port 53.
    pub tcp: bool,
    /// UDP, except port 53.
    pub udp: bool,
    /// Port 53 over UDP or TCP: DNS transactions and their connections.
    pub dns: bool,
    /// ICMP and ICMPv6.
    pub icmp: bool,
}

/// The switch names, in order.
pub const NAMES: [&str; 4] = ["tcp", "udp", "dns", "icmp"];

impl Default for Protocols {
    fn default() -> Self {
        Protocols::ALL
    }
}

impl Protocols {
    /// Everything on.
    pub const ALL: Protocols = Protocols { tcp: true, udp: true, dns: true, icmp: true };

    /// Whether a packet of IP protocol `proto` between ports `sport` and `dport` is kept.
    /// Protocols other than TCP, UDP and ICMP are not the switches' business.
    pub fn keeps(&self, proto: u8, sport: u16, dport: u16) -> bool {
        let dns = sport == 53 || dport == 53;
        match proto {
            TCP if dns => self.dns,
            UDP if dns => self.dns,
            TCP => self.tcp,
            UDP => self.udp,
            ICMP | ICMPV6 => self.icmp,
            _ => true,
        }
    }
}

impl fmt::Display for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = [self.tcp, self.udp, self.dns, self.icmp];
        let names: Vec<&str> =
            NAMES.iter().zip(on).filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_53_follows_dns_and_the_rest_its_protocol() {
        let p = Protocols { tcp: true, udp: false, dns: true, icmp: false };
        assert!(p.keeps(TCP, 40000, 443));
        assert!(p.keeps(UDP, 40000, 53) && p.keeps(UDP, 53, 40000) && p.keeps(TCP, 40000, 53));
        assert!(!p.keeps(UDP, 40000, 123));
        assert!(!p.keeps(ICMP, 0, 0) && !p.keeps(ICMPV6, 0, 0));
        assert!(p.keeps(132, 0, 0), "SCTP is not switched");
        let p = Protocols { tcp: false, udp: true, dns: false, icmp: false };
        assert!(!p.keeps(UDP, 40000, 53) && p.keeps(UDP, 1, 2));
        assert_eq!(p.to_string(), "udp");
        assert_eq!(Protocols::ALL.to_string(), "tcp,udp,dns,icmp");
    }
}
