//! The capture filter applied in the kernel: networks (`Cidr`), ports, and pod selectors resolved
//! to addresses with the inventory; changed while the capture runs (a filter file, selectors
//! re-resolved every few seconds).
use super::layout::{CFG_FILTER_CIDR, CFG_FILTER_PORT};
use super::{LiveCapture, LiveError, chain, classify};
use aya::maps::lpm_trie::Key as LpmKey;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

/// An IP network, `10.244.1.0/24` or `fd00::/64` (a plain address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR (e.g. 10.244.0.0/16)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    /// The LPM-trie key: the address as 16 bytes (IPv4 mapped into IPv6, as the programs see
    /// it) and the prefix over those 128 bits.
    pub(super) fn lpm_key(&self) -> LpmKey<[u8; 16]> {
        match self.addr {
            IpAddr::V4(v4) => {
                LpmKey::new(96 + u32::from(self.prefix), v4.to_ipv6_mapped().octets())
            }
            IpAddr::V6(v6) => LpmKey::new(u32::from(self.prefix), v6.octets()),
        }
    }
}

/// The capture filter applied in the kernel: only packets with an end in `cidrs` or in the
/// addresses of the selected pods (when a selector is given) and, for TCP and UDP, a port in
/// `ports` (when not empty). The selected pods are those any of `pods` matches (every pod when
/// `pods` is empty but `exclude` is not), minus those any of `exclude` matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Networks.
    pub cidrs: Vec<Cidr>,
    /// Ports.
    pub ports: Vec<u16>,
    /// Pod selectors: (one of [`SELECTOR_KINDS`], value).
    pub pods: Vec<(String, String)>,
    /// Pods left out, as selectors of the same kinds (`exclude namespace kube-system`).
    pub exclude: Vec<(String, String)>,
}

/// The selector kinds of [`Filter::pods`]: `pod-regex` matches pod names by a regular
/// expression (unanchored, as Kubeshark's `tap.regex`).
pub const SELECTOR_KINDS: [&str; 6] =
    ["namespace", "workload", "service", "pod", "pod-regex", "label"];

/// The selector kind a [`Resolver`] is asked for "every pod", to subtract exclusions from when
/// no positive selector is given.
pub const EVERY_POD: &str = "every-pod";

/// Resolves a pod selector (kind, value) to the addresses that match it now.
pub type Resolver = std::sync::Arc<dyn Fn(&str, &str) -> Vec<IpAddr> + Send + Sync>;

impl Filter {
    /// True when pod selectors or exclusions are given: the filter then names pods.
    pub fn selects_pods(&self) -> bool {
        !self.pods.is_empty() || !self.exclude.is_empty()
    }

    /// Checks what can be checked before any pod is known: the pod-name regexes.
    ///
    /// # Errors
    /// The first regex that does not compile, with the reason.
    pub fn validate(&self) -> Result<(), String> {
        for (kind, value) in self.pods.iter().chain(&self.exclude) {
            if kind == "pod-regex" {
                regex::Regex::new(value)
                    .map_err(|e| format!("pod-regex `{value}` is not a regular expression: {e}"))?;
            }
        }
        Ok(())
    }

    /// Reads a filter file: one `cidr NET`, `port N` (or a bare network / port), a pod selector
    /// (`namespace NAME`, `workload NAME`, `service NAME`, `pod NAME`, `pod-regex RE`,
    /// `label K=V[,K=V]`) or an exclusion (`exclude` and a selector: `exclude namespace
    /// kube-system`) per line; `#` starts a comment.
    ///
    /// # Errors
    /// A line that is neither, with its number.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut f = Filter::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (kind, value) = line.split_once(char::is_whitespace).unwrap_or(("", line));
            let value = value.trim();
            if kind == "exclude" {
                let (k, v) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
                if !SELECTOR_KINDS.contains(&k) || v.trim().is_empty() {
                    return Err(format!(
                        "line {}: `exclude {value}`: expected `exclude` and a pod selector, e.g. \
                         `exclude namespace kube-system`",
                        i + 1
                    ));
                }
                f.exclude.push((k.to_string(), v.trim().to_string()));
                continue;
            }
            match kind {
                "port" => f.ports.push(
                    value
                        .parse()
                        .map_err(|_| format!("line {}: `{value}` is not a port", i + 1))?,
                ),
                "cidr" => f.cidrs.push(value.parse().map_err(|e| format!("line {}: {e}", i + 1))?),
                k if SELECTOR_KINDS.contains(&k) => f.pods.push((k.to_string(), value.to_string())),
                "" if value.parse::<u16>().is_ok() => f.ports.push(value.parse().unwrap_or(0)),
                "" => f.cidrs.push(value.parse().map_err(|e| format!("line {}: {e}", i + 1))?),
                other => {
                    return Err(format!(
                        "line {}: `{other}`: expected `cidr NETWORK`, `port NUMBER`, a pod \
                         selector `namespace NAME`, `workload NAME`, `service NAME`, `pod NAME`, \
                         `pod-regex RE`, `label K=V`, or `exclude` and a selector",
                        i + 1
                    ));
                }
            }
        }
        f.validate().map_err(|e| format!("{e} (in the filter file)"))?;
        Ok(f)
    }
}

/// The addresses of the pods `f` selects, sorted: those any of `f.pods` matches (every pod when
/// there is none), minus those any of `f.exclude` matches.
pub fn resolve_selectors(
    f: &Filter,
    r: &(dyn Fn(&str, &str) -> Vec<IpAddr> + Send + Sync),
) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if f.pods.is_empty() {
        r(EVERY_POD, "")
    } else {
        f.pods.iter().flat_map(|(k, v)| r(k, v)).collect()
    };
    let out: std::collections::HashSet<IpAddr> =
        f.exclude.iter().flat_map(|(k, v)| r(k, v)).collect();
    ips.retain(|ip| !out.contains(ip));
    ips.sort();
    ips.dedup();
    ips
}

impl LiveCapture {
    /// Replaces the capture filter in the kernel (takes effect for the next packet).
    ///
    /// # Errors
    /// A map update the kernel refused.
    pub fn set_filter(&mut self, f: &Filter) -> Result<(), LiveError> {
        let resolved = self.resolve(f)?;
        self.filter = f.clone();
        self.resolved = resolved.clone();
        let mut f = f.clone();
        f.cidrs.extend(
            resolved
                .iter()
                .map(|ip| Cidr { addr: *ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }),
        );
        if f.selects_pods() && f.cidrs.is_empty() {
            // Selectors that match no pod (yet): capture nothing rather than everything.
            f.cidrs.push(Cidr { addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED), prefix: 128 });
        }
        let f = &f;
        let err = |e: aya::maps::MapError| classify("updating the filter maps", &chain(&e));
        // Clear, then fill: during the swap the filter is off for a moment (packets counted,
        // never dropped from the records).
        self.flags &= !(CFG_FILTER_CIDR | CFG_FILTER_PORT);
        self.write_config()?;
        let old: Vec<_> = self.filter_cidrs.keys().filter_map(Result::ok).collect();
        for k in old {
            let _ = self.filter_cidrs.remove(&k);
        }
        let old: Vec<_> = self.filter_ports.keys().filter_map(Result::ok).collect();
        for k in old {
            let _ = self.filter_ports.remove(&k);
        }
        for c in &f.cidrs {
            self.filter_cidrs.insert(&c.lpm_key(), 1, 0).map_err(err)?;
        }
        for p in &f.ports {
            self.filter_ports.insert(p, 1, 0).map_err(err)?;
        }
        if !f.cidrs.is_empty() {
            self.flags |= CFG_FILTER_CIDR;
        }
        if !f.ports.is_empty() {
            self.flags |= CFG_FILTER_PORT;
        }
        self.write_config()?;
        tracing::info!(
            cidrs = f.cidrs.len(),
            ports = f.ports.len(),
            pod_addresses = self.resolved.len(),
            "Capture filter set."
        );
        Ok(())
    }

    /// The addresses the filter's pod selectors match now.
    pub(super) fn resolve(&self, f: &Filter) -> Result<Vec<IpAddr>, LiveError> {
        if !f.selects_pods() {
            return Ok(Vec::new());
        }
        let Some(r) = &self.cfg.resolver else {
            let sel: Vec<String> = f.pods.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let exc = f.exclude.iter().map(|(k, v)| format!("exclude {k} {v}"));
            return Err(LiveError::NoResolver(
                sel.into_iter().chain(exc).collect::<Vec<_>>().join(", "),
            ));
        };
        Ok(resolve_selectors(f, r.as_ref()))
    }

    /// Re-resolves the pod selectors; re-applies the filter when their addresses changed.
    pub(super) fn refresh_selectors(&mut self) -> Result<(), LiveError> {
        if !self.filter.selects_pods() {
            return Ok(());
        }
        let f = self.filter.clone();
        if self.resolve(&f)? != self.resolved {
            self.set_filter(&f)?;
        }
        Ok(())
    }

    pub(super) fn reload_filter(&mut self, path: &Path, first: bool) -> Result<(), LiveError> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if !first && mtime == self.filter_mtime {
            return Ok(());
        }
        let bad = |msg: String| LiveError::FilterFile { path: path.to_path_buf(), msg };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let f = Filter::parse(&text).map_err(bad)?;
        self.filter_mtime = mtime;
        self.set_filter(&f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_filter_files() {
        let c: Cidr = "10.244.1.0/24".parse().unwrap();
        assert_eq!(c.lpm_key().prefix_len(), 120);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert_eq!("fd00::1".parse::<Cidr>().unwrap().prefix, 128);
        let f = Filter::parse("# pods\ncidr 10.244.0.0/16\nport 443\n53\n192.168.0.0/16 # lab\n")
            .unwrap();
        assert_eq!(f.ports, vec![443, 53]);
        assert_eq!(f.cidrs.len(), 2);
        let e = Filter::parse("cidr 10.0.0.0/8\nhost foo\n").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
    }

    #[test]
    fn exclusions_and_pod_regexes() {
        let f = Filter::parse(
            "pod-regex ^web-\nexclude namespace kube-system\nexclude   pod  web-canary\n",
        )
        .unwrap();
        assert_eq!(f.pods, vec![("pod-regex".into(), "^web-".into())]);
        assert_eq!(
            f.exclude,
            vec![("namespace".into(), "kube-system".into()), ("pod".into(), "web-canary".into())]
        );
        for bad in ["exclude kube-system\n", "exclude namespace\n", "pod-regex (web\n"] {
            let e = Filter::parse(bad).unwrap_err();
            assert!(e.starts_with("line 1") || e.contains("not a regular expression"), "{e}");
        }

        // Three pods: a and b in shop, c in kube-system.
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let r = move |kind: &str, value: &str| -> Vec<IpAddr> {
            match (kind, value) {
                (EVERY_POD, _) => vec![ip(3), ip(1), ip(2)],
                ("namespace", "shop") => vec![ip(1), ip(2)],
                ("namespace", "kube-system") => vec![ip(3)],
                ("pod", "b") => vec![ip(2)],
                _ => Vec::new(),
            }
        };
        let only = |pods: &[(&str, &str)], exclude: &[(&str, &str)]| {
            let pair = |(k, v): &(&str, &str)| (k.to_string(), v.to_string());
            let f = Filter {
                pods: pods.iter().map(pair).collect(),
                exclude: exclude.iter().map(pair).collect(),
                ..Filter::default()
            };
            assert!(f.selects_pods());
            resolve_selectors(&f, &r)
        };
        assert_eq!(only(&[], &[("namespace", "kube-system")]), vec![ip(1), ip(2)]);
        assert_eq!(only(&[("namespace", "shop")], &[("pod", "b")]), vec![ip(1)]);
        assert_eq!(
            only(&[("namespace", "shop"), ("namespace", "kube-system")], &[]),
            vec![ip(1), ip(2), ip(3)]
        );
        assert!(only(&[("namespace", "shop")], &[("namespace", "shop")]).is_empty());
        assert!(!Filter::default().selects_pods());
    }
}
