//! The node's pod networks, read from its routing table, for live capture without `--pod-cidr`.
//!
//! A packet on a host interface (the uplink) is counted there only when no pod veth counts it,
//! so the programs must know which addresses are this node's pods before those pods send
//! anything. Every common CNI leaves that in the routes of the pod veths or of the bridge they
//! are enslaved to:
//! - a bridge (flannel's `cni0`, the bridge plugin, Docker-style setups):
//!   `10.244.1.0/24 dev cni0 proto kernel scope link`;
//! - one route per pod (kindnet, Calico, the AWS VPC CNI, GKE): `10.244.1.5 dev cali1a2b scope link`.
//!
//! Cilium routes its pod network through `cilium_host` rather than the `lxc*` veths: give
//! `--pod-cidr` there (or add `cilium_host`'s networks by hand).
//!
//! Only directly connected routes count: not default routes, not link-local or multicast
//! networks (every IPv6 interface has `fe80::/64`), not the kernel's local-address routes.
use super::Cidr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `RTF_UP`: the route is usable.
const RTF_UP: u32 = 0x1;
/// `RTF_GATEWAY`: via a next hop, not a network on the device itself.
const RTF_GATEWAY: u32 = 0x2;
/// `RTF_LOCAL` (IPv6): the node's own address.
const RTF_LOCAL: u32 = 0x8000_0000;

/// The networks routed directly onto one of `devices`, from the texts of `/proc/net/route`
/// and `/proc/net/ipv6_route`; sorted, without duplicates. Lines that do not parse are skipped
/// (the kernel's format has not changed since 2.2, so one that fails is not a route).
pub(super) fn pod_networks(route_v4: &str, route_v6: &str, devices: &[String]) -> Vec<Cidr> {
    let on = |dev: &str| devices.iter().any(|d| d == dev);
    let mut out: Vec<Cidr> = Vec::new();
    for line in route_v4.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [dev, dest, _gw, flags, _, _, _, mask, ..] = f[..] else { continue };
        let (Ok(dest), Ok(flags), Ok(mask)) = (
            u32::from_str_radix(dest, 16),
            u32::from_str_radix(flags, 16),
            u32::from_str_radix(mask, 16),
        ) else {
            continue;
        };
        // The kernel prints the network-order word as a host integer.
        let addr = Ipv4Addr::from(dest.to_ne_bytes());
        let prefix = u8::try_from(mask.count_ones()).unwrap_or(0);
        if on(dev) && usable(flags) && prefix > 0 && !addr.is_multicast() && !addr.is_link_local() {
            out.push(Cidr { addr: IpAddr::V4(addr), prefix });
        }
    }
    for line in route_v6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [dest, prefix, _, _, _, _, _, _, flags, dev] = f[..] else { continue };
        let (Ok(dest), Ok(prefix), Ok(flags)) = (
            u128::from_str_radix(dest, 16),
            u8::from_str_radix(prefix, 16),
            u32::from_str_radix(flags, 16),
        ) else {
            continue;
        };
        let addr = Ipv6Addr::from(dest);
        let link_local = addr.segments()[0] & 0xffc0 == 0xfe80;
        if on(dev)
            && usable(flags)
            && flags & RTF_LOCAL == 0
            && prefix > 0
            && prefix <= 128
            && !addr.is_multicast()
            && !link_local
        {
            out.push(Cidr { addr: IpAddr::V6(addr), prefix });
        }
    }
    out.sort_by_key(|c| (c.addr, c.prefix));
    out.dedup_by_key(|c| (c.addr, c.prefix));
    out
}

fn usable(flags: u32) -> bool {
    flags & RTF_UP != 0 && flags & RTF_GATEWAY == 0
}

/// The pod networks of this node now: the routes onto `pod_interfaces` and onto the bridges
/// they are ports of.
pub(super) fn read_pod_networks(pod_interfaces: &[String]) -> Vec<Cidr> {
    let mut devices: Vec<String> = pod_interfaces.to_vec();
    for i in pod_interfaces {
        let master = std::fs::read_link(format!("/sys/class/net/{i}/master"));
        if let Some(m) =
            master.ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            && !devices.contains(&m)
        {
            devices.push(m);
        }
    }
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    pod_networks(&v4, &v6, &devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read off a node: a bridge with the node's pod /24, a Calico-style per-pod route, the
    // uplink's default and subnet routes, and IPv6 link-local, local and multicast routes.
    const V4: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
cni0\t0001F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
cali1a2b\t0501F40A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
cni0\t0002F40A\t0101F40A\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
    const V6: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fd100000000000000000000000000000 50 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     cni0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     cni0
fd100000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     cni0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     cni0
";

    #[test]
    fn the_routes_onto_pod_devices_are_the_pod_networks() {
        let devices = vec!["cni0".to_string(), "cali1a2b".to_string()];
        let got: Vec<String> = pod_networks(V4, V6, &devices)
            .iter()
            .map(|c| format!("{}/{}", c.addr, c.prefix))
            .collect();
        // Not the uplink's, not the route via a gateway, not fe80::/64, the local /128 or ff00::/8.
        assert_eq!(got, ["10.244.1.0/24", "10.244.1.5/32", "fd10::/80"]);
        assert!(pod_networks(V4, V6, &["eth9".to_string()]).is_empty());
        assert!(pod_networks("garbage", "not a route", &devices).is_empty());
    }
}
