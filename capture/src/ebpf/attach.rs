//! Interfaces: which to attach to (names and `*` patterns, re-matched as pods come and go), their
//! roles in the programs' interface table, and the pod networks read from the routes.
use super::layout::{IF_LOOPBACK, IF_NO_L2, IF_SLOTS, IfSlot, ROLE_HOST, ROLE_POD};
use super::{LiveCapture, LiveError, chain, classify};
use crate::decode::LinkType;
use aya::programs::SchedClassifier;
use aya::programs::tc::{SchedClassifierLinkId, TcAttachType};
use std::path::Path;

/// What an attached interface is on the node; decides where a packet that crosses several
/// attached interfaces is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Count everything, both directions (a single interface, a test veth).
    Plain,
    /// The host side of a pod's veth (`veth*`, `cali*`, `lxc*`): packets entering it come from
    /// the pod.
    Pod,
    /// A node uplink: only traffic no pod veth sees (host network) is counted here.
    Host,
}

/// Interfaces to attach to: a name, or a pattern with `*` (matched again every few seconds, so
/// pods started later are attached too).
#[derive(Debug, Clone)]
pub struct InterfaceSpec {
    /// Name or `*` pattern.
    pub pattern: String,
    /// Its role.
    pub role: Role,
}

pub(super) struct Attached {
    name: String,
    ifindex: u32,
    role: Role,
    links: [SchedClassifierLinkId; 2],
}

pub(super) fn sys_net(name: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

pub(super) fn all_interfaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `*` matches any run of characters.
pub(super) fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

impl LiveCapture {
    /// Names of the interfaces attached now.
    pub fn interface_names(&self) -> Vec<String> {
        self.attached.iter().map(|a| a.name.clone()).collect()
    }

    /// Reads the pod networks from the routes onto the attached pod interfaces and their
    /// bridges ([`crate::routes`]) and updates the kernel's `pod_cidrs` when they changed; a
    /// no-op when `--pod-cidr` was given or no host interface is captured.
    pub(super) fn refresh_pod_cidrs(&mut self) -> Result<(), LiveError> {
        let Some(current) = &self.routed_pod_cidrs else { return Ok(()) };
        let pods: Vec<String> =
            self.attached.iter().filter(|a| a.role == Role::Pod).map(|a| a.name.clone()).collect();
        let now = super::routes::read_pod_networks(&pods);
        if &now == current {
            return Ok(());
        }
        let err = |e: aya::maps::MapError| classify("updating the pod networks", &chain(&e));
        // Add before removing: a network that stays is never missing.
        for c in now.iter().filter(|c| !current.contains(c)) {
            self.pod_cidrs.insert(&c.lpm_key(), 1, 0).map_err(err)?;
        }
        for c in current.iter().filter(|c| !now.contains(c)) {
            let _ = self.pod_cidrs.remove(&c.lpm_key());
        }
        let shown: Vec<String> = now.iter().map(|c| format!("{}/{}", c.addr, c.prefix)).collect();
        if shown.is_empty() && !pods.is_empty() {
            tracing::warn!(
                pod_interfaces = pods.len(),
                "No route onto the pod interfaces or their bridge: pod traffic seen on a host \
                 interface before its pod sends may be counted twice. Give --pod-cidr."
            );
        } else {
            tracing::info!(pod_networks = ?shown, "Pod networks read from the routes.");
        }
        self.routed_pod_cidrs = Some(now);
        Ok(())
    }

    /// Attaches to interfaces that match the configuration and are not attached yet; forgets
    /// those that are gone.
    pub(super) fn attach_new(&mut self, first: bool) -> Result<(), LiveError> {
        let names = all_interfaces();
        let (kept, gone): (Vec<Attached>, Vec<Attached>) =
            std::mem::take(&mut self.attached).into_iter().partition(|a| names.contains(&a.name));
        self.attached = kept;
        for a in gone {
            self.forget_role(a.ifindex);
        }
        let specs = self.cfg.interfaces.clone();
        for spec in &specs {
            let matches: Vec<&String> = names.iter().filter(|n| glob(&spec.pattern, n)).collect();
            if first && matches.is_empty() {
                return Err(if spec.pattern.contains('*') {
                    LiveError::NoMatch(spec.pattern.clone())
                } else {
                    LiveError::NoInterface(spec.pattern.clone())
                });
            }
            for name in matches {
                if self.attached.iter().any(|a| &a.name == name) {
                    continue;
                }
                match self.attach_one(name, spec.role) {
                    Ok(()) => tracing::info!(interface = %name, role = ?spec.role, "Attached."),
                    Err(e) if first => return Err(e),
                    Err(e) => {
                        tracing::warn!(interface = %name, error = %e, "Cannot attach (will retry).")
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn attach_one(&mut self, name: &str, role: Role) -> Result<(), LiveError> {
        let ifindex: u32 = sys_net(name, "ifindex")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| LiveError::NoInterface(name.to_string()))?;
        // ARPHRD_ETHER (1) and ARPHRD_LOOPBACK (772) carry an Ethernet header in TC.
        let kind = sys_net(name, "type");
        let l2 = matches!(kind.as_deref(), Some("1" | "772"));
        let mut v = match role {
            Role::Plain => 0,
            Role::Pod => ROLE_POD,
            Role::Host => ROLE_HOST,
        };
        if !l2 {
            v |= IF_NO_L2;
        }
        if kind.as_deref() == Some("772") {
            // Every loopback packet is seen leaving and coming back: counted once, on egress.
            v |= IF_LOOPBACK;
        }
        self.set_role(ifindex, v)?;
        self.link_types.insert(ifindex, if l2 { LinkType::Ethernet } else { LinkType::RawIp });
        // TCX (kernel ≥ 6.6) needs nothing; older kernels attach through a clsact qdisc.
        use aya::util::KernelVersion;
        let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
        if !tcx && let Err(e) = aya::programs::tc::qdisc_add_clsact(name) {
            tracing::debug!(interface = %name, error = %e, "clsact qdisc (already there?).");
        }
        let mut links = Vec::with_capacity(2);
        for (prog, dir) in
            [("podwire_ingress", TcAttachType::Ingress), ("podwire_egress", TcAttachType::Egress)]
        {
            let p: &mut SchedClassifier =
                self.bpf.program_mut(prog).and_then(|p| p.try_into().ok()).ok_or_else(|| {
                    LiveError::Kernel { what: prog.into(), detail: "not loaded".into() }
                })?;
            let what = format!("attaching to {name} ({dir:?})");
            let id = p.attach(name, dir).map_err(|e| classify(&what, &chain(&e)))?;
            links.push(id);
        }
        let egress = links.pop();
        let ingress = links.pop();
        if let (Some(i), Some(e)) = (ingress, egress) {
            self.attached.push(Attached { name: name.to_string(), ifindex, role, links: [i, e] });
        }
        Ok(())
    }

    /// Writes an interface's role where the programs look first: its slot of `if_slots`, or
    /// the hash `ifaces` when another attached interface holds that slot.
    pub(super) fn set_role(&mut self, ifindex: u32, flags: u32) -> Result<(), LiveError> {
        let slot = ifindex % IF_SLOTS;
        let held =
            self.attached.iter().any(|a| a.ifindex != ifindex && a.ifindex % IF_SLOTS == slot);
        let written = if held {
            self.ifaces.insert(ifindex, flags, 0)
        } else {
            self.if_slots.set(slot, IfSlot { ifindex, flags }, 0)
        };
        written.map_err(|e| classify("writing the interface map", &chain(&e)))
    }

    /// Forgets a gone interface's role, so its slot or hash entry can serve another.
    pub(super) fn forget_role(&mut self, ifindex: u32) {
        let slot = ifindex % IF_SLOTS;
        if self.if_slots.get(&slot, 0).is_ok_and(|s| s.ifindex == ifindex) {
            let _ = self.if_slots.set(slot, IfSlot::default(), 0);
        }
        let _ = self.ifaces.remove(&ifindex);
    }

    /// Detaches every program (nothing stays attached once this returns).
    pub fn detach(&mut self) {
        for a in self.attached.drain(..) {
            let [i, e] = a.links;
            for (prog, id) in [("podwire_ingress", i), ("podwire_egress", e)] {
                if let Some(p) = self.bpf.program_mut(prog) {
                    let p: Result<&mut SchedClassifier, _> = p.try_into();
                    if let Ok(p) = p
                        && let Err(err) = p.detach(id)
                    {
                        tracing::debug!(interface = %a.name, ifindex = a.ifindex, error = %err, "Detach (interface gone?).");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("veth*", "veth1234"));
        assert!(glob("*", "eth0"));
        assert!(glob("cali*x", "cali12x"));
        assert!(!glob("veth*", "eth0"));
        assert!(glob("eth0", "eth0"));
        assert!(!glob("eth0", "eth01"));
    }
}
