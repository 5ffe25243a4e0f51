//! The protocol switches (`--protocols`, Helm's `capture.protocols`): which traffic becomes
//! records.
//!
//! `dns` is port-53 traffic, over UDP or TCP: its DNS transactions *and* its connections, so a
//! DNS row's `conn_id` always finds its connection. `udp` and `tcp` are the rest of their
//! protocol; `icmp` is ICMP and ICMPv6, including the errors that explain failed connections
//! (port or host unreachable). Traffic switched off is counted as filtered (`packets_filtered`),
//! never silently dropped; live capture drops it in the kernel, before it costs anything.
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

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

impl Default for Protocols {
    fn default() -> Self {
        Protocols::ALL
    }
}

impl Protocols {
    /// Everything on.
    pub const ALL: Protocols = Protocols { tcp: true, udp: true, dns: true, icmp: true };

    /// The switches named in `names` on, the others off.
    ///
    /// # Errors
    /// An unknown name, or an empty list (nothing would be recorded).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Protocols, String> {
        let mut p = Protocols { tcp: false, udp: false, dns: false, icmp: false };
        for n in names {
            match n.as_ref().trim() {
                "tcp" => p.tcp = true,
                "udp" => p.udp = true,
                "dns" => p.dns = true,
                "icmp" => p.icmp = true,
                other => {
                    return Err(format!(
                        "unknown protocol `{other}`: the switches are {}",
                        NAMES.join(", ")
                    ));
                }
            }
        }
        if p == (Protocols { tcp: false, udp: false, dns: false, icmp: false }) {
            return Err(format!("no protocol switched on: name some of {}", NAMES.join(", ")));
        }
        Ok(p)
    }

    /// True when every switch is on.
    pub fn is_all(&self) -> bool {
        *self == Protocols::ALL
    }

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

    /// Whether an IP fragment of protocol `proto` whose ports are not known (not the first
    /// fragment) may be kept: only the switches can tell it is not wanted.
    pub fn may_keep_fragment(&self, proto: u8) -> bool {
        match proto {
            TCP => self.tcp || self.dns,
            UDP => self.udp || self.dns,
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
        let p = Protocols::from_names(&["tcp", "dns"]).unwrap();
        assert!(p.keeps(TCP, 40000, 443));
        assert!(p.keeps(UDP, 40000, 53) && p.keeps(UDP, 53, 40000) && p.keeps(TCP, 40000, 53));
        assert!(!p.keeps(UDP, 40000, 123));
        assert!(!p.keeps(ICMP, 0, 0) && !p.keeps(ICMPV6, 0, 0));
        assert!(p.keeps(132, 0, 0), "SCTP is not switched");
        assert!(p.may_keep_fragment(UDP), "a UDP fragment may be DNS");
        let p = Protocols::from_names(&["udp"]).unwrap();
        assert!(!p.keeps(UDP, 40000, 53) && p.keeps(UDP, 1, 2) && !p.may_keep_fragment(TCP));
        assert_eq!(p.to_string(), "udp");
        assert_eq!(Protocols::ALL.to_string(), "tcp,udp,dns,icmp");
    }

    #[test]
    fn unknown_or_no_protocol_is_an_error() {
        let e = Protocols::from_names(&["tcp", "http"]).unwrap_err();
        assert!(e.contains("`http`") && e.contains("tcp, udp, dns, icmp"), "{e}");
        assert!(Protocols::from_names::<&str>(&[]).unwrap_err().contains("no protocol"));
    }
}
