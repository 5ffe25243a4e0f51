//! Live capture on Linux: the TC classifiers of `bpf/podwire.bpf.c`, loaded and attached with
//! aya, feeding the same [`Pipeline`] as capture files.
//!
//! The kernel counts "quiet" packets per flow and direction in an LRU hash, and sends user space
//! only the packets a connection record needs one by one (a flow's first packet, TCP SYN/FIN/RST
//! and the handshake's last ACK, DNS, ICMP, IP fragments; every packet when the packets table is
//! on). Those go through the decoder and tracker exactly like packets of a capture file; the
//! kernel's counters are added to the same connections ([`Pipeline::on_counts`]).
//!
//! Reading the counters costs per active flow, not per flow: the programs announce a flow once
//! per read interval ("dirty") through the ring buffer, and only those entries are read. A flow
//! whose final row was written is deleted from the kernel table.
//!
//! Each packet is counted once per node: see "Counting each packet once" in capture/README.md.
use crate::decode::{LinkType, Skip};
use crate::pipeline::{BatchSink, Pipeline};
use crate::protocols::Protocols;
use crate::source::Frame;
use crate::stats::KernelCounters;
use crate::tracker::FlowCounts;
use aya::maps::lpm_trie::Key as LpmKey;
use aya::maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, RingBuf};
use aya::programs::SchedClassifier;
use aya::programs::tc::{SchedClassifierLinkId, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use std::collections::HashMap as StdHashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The compiled programs (build.rs).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/podwire.bpf.o"));

mod layout;
use layout::{Config, EvHdr, FlowKey, FlowVal, IfSlot};
use zerocopy::FromBytes;

// Values and bits of bpf/podwire.h.
const EV_PACKET: u8 = 1;
const EV_DIRTY: u8 = 2;
const CFG_ALL_EVENTS: u32 = 1;
const CFG_FILTER_CIDR: u32 = 2;
const CFG_FILTER_PORT: u32 = 4;
const CFG_NO_TCP: u32 = 8;
const CFG_NO_UDP: u32 = 16;
const CFG_NO_DNS: u32 = 32;
const CFG_NO_ICMP: u32 = 64;

/// The config bits of the protocols switched off.
fn protocol_flags(p: Protocols) -> u32 {
    [(p.tcp, CFG_NO_TCP), (p.udp, CFG_NO_UDP), (p.dns, CFG_NO_DNS), (p.icmp, CFG_NO_ICMP)]
        .into_iter()
        .filter(|(on, _)| !on)
        .map(|(_, bit)| bit)
        .sum()
}
const ROLE_POD: u32 = 1;
const ROLE_HOST: u32 = 2;
const IF_NO_L2: u32 = 0x100;
const IF_LOOPBACK: u32 = 0x200;
/// Slots of the programs' direct-mapped interface table `if_slots` (`ifindex % IF_SLOTS`); an
/// interface whose slot another attached interface holds goes into the hash `ifaces`.
const IF_SLOTS: u32 = 16384;

/// Indexes of the programs' `stats` array.
mod st {
    pub(super) const SEEN: usize = 0;
    pub(super) const DEDUP: usize = 4;
    pub(super) const FILTERED: usize = 5;
    pub(super) const NOT_IP: usize = 6;
    pub(super) const MALFORMED: usize = 7;
    pub(super) const OTHER_PROTO: usize = 8;
    pub(super) const EVENT_LOST: usize = 9;
    pub(super) const LOST: usize = 10;
    pub(super) const DIRTY_LOST: usize = 11;
    pub(super) const MAX: usize = 12;
}

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
    fn lpm_key(&self) -> LpmKey<[u8; 16]> {
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

/// Live capture settings.
#[derive(Clone)]
pub struct LiveConfig {
    /// Interfaces and their roles.
    pub interfaces: Vec<InterfaceSpec>,
    /// This node's pod networks, for host interfaces (`node.spec.podCIDRs`).
    pub pod_cidrs: Vec<Cidr>,
    /// The capture filter at start.
    pub filter: Filter,
    /// A filter file re-read when it changes (replaces `filter` then).
    pub filter_file: Option<PathBuf>,
    /// Size of the kernel's flow table (entries).
    pub kernel_flows: u32,
    /// Ring-buffer bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    /// How often the kernel's counters are read and the clock advanced.
    pub read_interval: Duration,
    /// How often rows made so far are handed to the sink.
    pub flush_interval: Duration,
    /// Send every packet to user space (the packets table is on).
    pub all_events: bool,
    /// The protocol switches, applied in the kernel.
    pub protocols: Protocols,
    /// Resolves pod selectors of the filter (needs an inventory); re-run every 5 s, so the
    /// filter follows pods as they come and go.
    pub resolver: Option<Resolver>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            interfaces: Vec::new(),
            pod_cidrs: Vec::new(),
            filter: Filter::default(),
            filter_file: None,
            kernel_flows: 131_072,
            ring_bytes: 8 << 20,
            read_interval: Duration::from_secs(1),
            flush_interval: Duration::from_secs(10),
            all_events: false,
            protocols: Protocols::ALL,
            resolver: None,
        }
    }
}

/// Live capture errors: what is missing and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Loading or attaching needs privileges the process lacks.
    #[error(
        "{what}: permission denied. Live capture loads eBPF programs: run as root, or grant \
         CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (in Kubernetes: securityContext.capabilities.add, \
         or privileged: true)"
    )]
    Privileges {
        /// The step that failed.
        what: String,
    },
    /// The kernel refused the programs or a map (too old, or a feature is off).
    #[error(
        "{what}: {detail}. Live capture needs Linux ≥ 6.1 with BPF ring buffers, LRU hash and \
         LPM trie maps and TC/TCX classifiers (CONFIG_BPF_SYSCALL, CONFIG_NET_CLS_BPF)"
    )]
    Kernel {
        /// The step that failed.
        what: String,
        /// The kernel's answer.
        detail: String,
    },
    /// An interface named on the command line does not exist.
    #[error("no interface `{0}` in this network namespace (see `ip link`)")]
    NoInterface(String),
    /// A pattern matched no interface at start.
    #[error(
        "no interface matches `{0}` in this network namespace (see `ip link`; pod veths are \
         usually veth*, cali*, lxc* or cni*)"
    )]
    NoMatch(String),
    /// A bad filter file.
    #[error("filter file `{}`: {msg}", path.display())]
    FilterFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The binary was built without its eBPF programs (no clang at build time).
    #[error(
        "this podwire was built without its eBPF programs (clang or the BPF headers were missing \
         at build time): apt-get install clang libbpf-dev, then rebuild (cargo build)"
    )]
    NotBuilt,
    /// Pod selectors without an inventory to resolve them.
    #[error(
        "the capture filter selects pods ({0}) but there is no inventory to find their addresses: \
         give --inventory"
    )]
    NoResolver(String),
    /// Nothing to capture on.
    #[error("no interface to capture on: give --interface, --pod-interface or --host-interface")]
    NoInterfaces,
}

fn classify(what: &str, e: &dyn std::fmt::Display) -> LiveError {
    // aya wraps the errno in several error types; its text is the stable part.
    let detail = e.to_string();
    if detail.contains("Operation not permitted") || detail.contains("Permission denied") {
        LiveError::Privileges { what: what.to_string() }
    } else {
        LiveError::Kernel { what: what.to_string(), detail }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

struct Attached {
    name: String,
    ifindex: u32,
    role: Role,
    links: [SchedClassifierLinkId; 2],
}

/// Per-flow counters read last time (the kernel's counters are totals since the flow entry was
/// made).
#[derive(Debug, Clone, Copy, Default)]
struct Baseline {
    first_ns: u64,
    dirs: [[u64; 5]; 2],
}

/// A loaded and attached live capture. Dropping it detaches the programs.
pub struct LiveCapture {
    bpf: Ebpf,
    ring: RingBuf<MapData>,
    flows: HashMap<MapData, FlowKey, FlowVal>,
    stats: PerCpuArray<MapData, [u64; st::MAX]>,
    config: Array<MapData, Config>,
    if_slots: Array<MapData, IfSlot>,
    ifaces: HashMap<MapData, u32, u32>,
    filter_cidrs: LpmTrie<MapData, [u8; 16], u8>,
    filter_ports: HashMap<MapData, u16, u8>,
    pod_cidrs: LpmTrie<MapData, [u8; 16], u8>,
    /// The pod networks read from the routes (`cfg.pod_cidrs` empty and a host interface
    /// given): `None` when they were given instead.
    routed_pod_cidrs: Option<Vec<Cidr>>,
    cfg: LiveConfig,
    interval_gen: u32,
    /// The interval's advance waits for running programs (until the kernel refuses it once).
    barrier: bool,
    flags: u32,
    attached: Vec<Attached>,
    link_types: StdHashMap<u32, LinkType>,
    baselines: StdHashMap<FlowKey, Baseline>,
    /// Flows announced dirty, with the latest interval they were announced in.
    dirty: StdHashMap<FlowKey, u32>,
    kernel: KernelCounters,
    last_skips: [u64; 3],
    filter_mtime: Option<SystemTime>,
    mono_offset_ns: i64,
    /// The filter in force (as given) and the addresses its pod selectors resolved to.
    filter: Filter,
    resolved: Vec<IpAddr>,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("interfaces", &self.interfaces)
            .field("filter", &self.filter)
            .field("resolver", &self.resolver.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture").field("interfaces", &self.interface_names()).finish()
    }
}

fn sys_net(name: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

fn all_interfaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
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

/// A clock's reading in ns (0 if it cannot be read, which Linux does not do for these clocks).
#[allow(unsafe_code)]
fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only into it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc == 0 { ts.tv_sec * 1_000_000_000 + ts.tv_nsec } else { 0 }
}

fn monotonic_ns() -> i64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC: adds to `bpf_ktime_get_ns()` to give wall time.
fn mono_offset_ns() -> i64 {
    let mono = monotonic_ns();
    clock_ns(libc::CLOCK_REALTIME) - mono
}

/// Waits until every eBPF program that was running has returned: an RCU grace period
/// (`membarrier(MEMBARRIER_CMD_GLOBAL)`; TC programs run inside RCU read sections). False where
/// the kernel refuses it (CPUs in `nohz_full` mode, a seccomp profile without `membarrier`).
#[allow(unsafe_code)]
fn wait_for_running_programs() -> bool {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers; flags and cpu_id are 0.
    unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0 }
}

/// Waits until `fd` is readable or `timeout` passes.
#[allow(unsafe_code)]
fn wait_readable(fd: i32, timeout: Duration) {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, count 1; poll only writes `revents`.
    let _ = unsafe { libc::poll(&mut pfd, 1, ms) };
}

fn addr(a: [u8; 16]) -> IpAddr {
    Ipv6Addr::from(a).to_canonical()
}

fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The kernel's key for a flow: the ends ordered as the programs order them (addresses as four
/// native-endian words, then ports).
fn flow_key(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> FlowKey {
    let words = |x: &[u8; 16]| -> [u32; 4] {
        let mut w = [0u32; 4];
        for (i, c) in x.chunks_exact(4).enumerate() {
            w[i] = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
        }
        w
    };
    let (aa, ba) = (addr16(a.0), addr16(b.0));
    let (wa, wb) = (words(&aa), words(&ba));
    let a_first = wa < wb || (wa == wb && a.1 <= b.1);
    let ((lo, lp), (hi, hp)) =
        if a_first { ((aa, a.1), (ba, b.1)) } else { ((ba, b.1), (aa, a.1)) };
    FlowKey { lo, hi, lo_port: lp, hi_port: hp, proto, pad: [0; 3] }
}

fn dir_totals(v: &FlowVal, d: usize) -> [u64; 5] {
    let c = &v.d[d];
    [c.packets, c.bytes, c.payload, u64::from(c.retrans), u64::from(c.zero_win)]
}

impl LiveCapture {
    /// Loads the programs, fills the maps and attaches to the interfaces (ingress and egress).
    ///
    /// # Errors
    /// Missing privileges or kernel features, unknown interfaces, a bad filter file: each says
    /// what to do.
    pub fn start(cfg: LiveConfig) -> Result<LiveCapture, LiveError> {
        if cfg.interfaces.is_empty() {
            return Err(LiveError::NoInterfaces);
        }
        if PROGRAM.is_empty() {
            return Err(LiveError::NotBuilt);
        }
        let ring_bytes = cfg.ring_bytes.max(4096).next_power_of_two();
        let mut bpf = EbpfLoader::new()
            .map_max_entries("flows", cfg.kernel_flows.max(1024))
            .map_max_entries("events", ring_bytes)
            .load(PROGRAM)
            .map_err(|e| classify("loading the eBPF programs", &chain(&e)))?;
        for name in ["podwire_ingress", "podwire_egress"] {
            let prog: &mut SchedClassifier = bpf
                .program_mut(name)
                .ok_or_else(|| LiveError::Kernel {
                    what: format!("program {name}"),
                    detail: "missing from the object (a build problem)".into(),
                })?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| classify(name, &chain(&e)))?;
            prog.load().map_err(|e| classify(&format!("verifying {name}"), &chain(&e)))?;
        }
        let take = |bpf: &mut Ebpf, name: &str| {
            bpf.take_map(name).ok_or_else(|| LiveError::Kernel {
                what: format!("map {name}"),
                detail: "missing from the object (a build problem)".into(),
            })
        };
        let map_err = |name: &'static str| move |e: aya::maps::MapError| classify(name, &chain(&e));
        let ring = RingBuf::try_from(take(&mut bpf, "events")?).map_err(map_err("events"))?;
        let flows = HashMap::try_from(take(&mut bpf, "flows")?).map_err(map_err("flows"))?;
        let stats = PerCpuArray::try_from(take(&mut bpf, "stats")?).map_err(map_err("stats"))?;
        let config = Array::try_from(take(&mut bpf, "config")?).map_err(map_err("config"))?;
        let if_slots = Array::try_from(take(&mut bpf, "if_slots")?).map_err(map_err("if_slots"))?;
        let ifaces = HashMap::try_from(take(&mut bpf, "ifaces")?).map_err(map_err("ifaces"))?;
        let mut pod_cidrs: LpmTrie<MapData, [u8; 16], u8> =
            LpmTrie::try_from(take(&mut bpf, "pod_cidrs")?).map_err(map_err("pod_cidrs"))?;
        let filter_cidrs =
            LpmTrie::try_from(take(&mut bpf, "filter_cidrs")?).map_err(map_err("filter_cidrs"))?;
        let filter_ports =
            HashMap::try_from(take(&mut bpf, "filter_ports")?).map_err(map_err("filter_ports"))?;
        for c in &cfg.pod_cidrs {
            pod_cidrs.insert(&c.lpm_key(), 1, 0).map_err(map_err("pod_cidrs"))?;
        }
        let routed_pod_cidrs = (cfg.pod_cidrs.is_empty()
            && cfg.interfaces.iter().any(|i| i.role == Role::Host))
        .then(Vec::new);
        let mut live = LiveCapture {
            pod_cidrs,
            routed_pod_cidrs,
            bpf,
            ring,
            flows,
            stats,
            config,
            if_slots,
            ifaces,
            filter_cidrs,
            filter_ports,
            flags: if cfg.all_events { CFG_ALL_EVENTS } else { 0 } | protocol_flags(cfg.protocols),
            cfg,
            interval_gen: 1,
            barrier: true,
            attached: Vec::new(),
            link_types: StdHashMap::new(),
            baselines: StdHashMap::new(),
            dirty: StdHashMap::new(),
            kernel: KernelCounters::default(),
            last_skips: [0; 3],
            filter_mtime: None,
            mono_offset_ns: mono_offset_ns(),
            filter: Filter::default(),
            resolved: Vec::new(),
        };
        let filter = live.cfg.filter.clone();
        live.set_filter(&filter)?;
        if let Some(path) = live.cfg.filter_file.clone() {
            live.reload_filter(&path, true)?;
        }
        live.write_config()?;
        live.attach_new(true)?;
        live.refresh_pod_cidrs()?;
        Ok(live)
    }

    /// Names of the interfaces attached now.
    pub fn interface_names(&self) -> Vec<String> {
        self.attached.iter().map(|a| a.name.clone()).collect()
    }

    fn write_config(&mut self) -> Result<(), LiveError> {
        let v = Config { interval: self.interval_gen, flags: self.flags };
        self.config.set(0, v, 0).map_err(|e| classify("writing the config map", &chain(&e)))
    }

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
    fn resolve(&self, f: &Filter) -> Result<Vec<IpAddr>, LiveError> {
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

    /// Reads the pod networks from the routes onto the attached pod interfaces and their
    /// bridges ([`crate::routes`]) and updates the kernel's `pod_cidrs` when they changed; a
    /// no-op when `--pod-cidr` was given or no host interface is captured.
    fn refresh_pod_cidrs(&mut self) -> Result<(), LiveError> {
        let Some(current) = &self.routed_pod_cidrs else { return Ok(()) };
        let pods: Vec<String> =
            self.attached.iter().filter(|a| a.role == Role::Pod).map(|a| a.name.clone()).collect();
        let now = crate::routes::read_pod_networks(&pods);
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

    /// Re-resolves the pod selectors; re-applies the filter when their addresses changed.
    fn refresh_selectors(&mut self) -> Result<(), LiveError> {
        if !self.filter.selects_pods() {
            return Ok(());
        }
        let f = self.filter.clone();
        if self.resolve(&f)? != self.resolved {
            self.set_filter(&f)?;
        }
        Ok(())
    }

    fn reload_filter(&mut self, path: &Path, first: bool) -> Result<(), LiveError> {
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

    /// Attaches to interfaces that match the configuration and are not attached yet; forgets
    /// those that are gone.
    fn attach_new(&mut self, first: bool) -> Result<(), LiveError> {
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

    fn attach_one(&mut self, name: &str, role: Role) -> Result<(), LiveError> {
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
    fn set_role(&mut self, ifindex: u32, flags: u32) -> Result<(), LiveError> {
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
    fn forget_role(&mut self, ifindex: u32) {
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

    fn wall(&self, ktime_ns: u64) -> i64 {
        i64::try_from(ktime_ns).unwrap_or(i64::MAX).saturating_add(self.mono_offset_ns)
    }

    /// Takes everything in the ring buffer: packets into the pipeline, dirty flows noted.
    fn drain_ring<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>) {
        loop {
            let Some(item) = RingBuf::next(&mut self.ring) else { break };
            let Ok((h, body)) = EvHdr::read_from_prefix(&item) else { continue };
            let ts = i64::try_from(h.ts_ns).unwrap_or(i64::MAX).saturating_add(self.mono_offset_ns);
            let cap = usize::from(h.cap_len);
            match h.kind {
                EV_PACKET if cap <= body.len() => {
                    let link =
                        self.link_types.get(&h.ifindex).copied().unwrap_or(LinkType::Ethernet);
                    pipeline.on_frame(Frame { ts_ns: ts, link, data: &body[..cap], offset: 0 });
                }
                EV_DIRTY => {
                    let Ok((k, _)) = FlowKey::read_from_prefix(body) else { continue };
                    let announced = h.interval;
                    let g = self.dirty.entry(k).or_insert(announced);
                    if announced.wrapping_sub(*g) < u32::MAX / 2 {
                        *g = announced;
                    }
                }
                _ => {}
            }
        }
    }

    /// Reads one flow's counters and adds what is new to the pipeline; returns whether anything
    /// was new.
    fn read_flow<S: BatchSink>(
        &mut self,
        key: &FlowKey,
        v: &FlowVal,
        pipeline: &mut Pipeline<S>,
    ) -> bool {
        let (first_ns, last_ns) = (v.first_ns, v.last_ns);
        let base = self.baselines.entry(*key).or_default();
        if base.first_ns != first_ns {
            if base.first_ns != 0 {
                // The kernel dropped the flow (LRU) and it came back: what it had counted
                // since the last read is gone.
                self.kernel.flows_evicted += 1;
            }
            *base = Baseline { first_ns, ..Baseline::default() };
        }
        let mut from = [FlowCounts::default(); 2];
        for (d, f) in from.iter_mut().enumerate() {
            let now = dir_totals(v, d);
            let was = base.dirs[d];
            let delta: [u64; 5] = std::array::from_fn(|i| now[i].saturating_sub(was[i]));
            *f = FlowCounts {
                packets: delta[0],
                bytes: delta[1],
                payload_bytes: delta[2],
                retransmits: delta[3],
                zero_windows: delta[4],
                flags: (v.d[d].flags & 0xff) as u8,
            };
            base.dirs[d] = now;
        }
        let a = (addr(key.lo), key.lo_port);
        let b = (addr(key.hi), key.hi_port);
        let ts = self.wall(last_ns);
        pipeline.on_counts(ts, key.proto, a, b, from);
        !from.iter().all(FlowCounts::is_empty)
    }

    /// Reads the flows announced dirty (called right after the interval was advanced).
    ///
    /// A flow announced in the interval that has just begun is read now and again after the
    /// next advance: the kernel announces a flow once per interval, so its packets counted
    /// after this read, in the same interval, would otherwise wait for a packet of a later
    /// interval, and a connection that ends with them would lose them.
    fn read_dirty<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>) {
        let current = self.interval_gen;
        let keys: Vec<(FlowKey, u32)> = self.dirty.drain().collect();
        for (k, announced) in keys {
            let Ok(v) = self.flows.get(&k, 0) else { continue };
            let _ = self.read_flow(&k, &v, pipeline);
            if announced == current {
                self.dirty.insert(k, announced);
            }
        }
    }

    /// Reads every flow of the kernel table (at the end).
    fn read_all<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>) {
        let all: Vec<(FlowKey, FlowVal)> = self.flows.iter().filter_map(Result::ok).collect();
        for (k, v) in all {
            let _ = self.read_flow(&k, &v, pipeline);
        }
    }

    fn read_stats<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>, now_ns: i64) {
        let mut sums = [0u64; st::MAX];
        if let Ok(per_cpu) = self.stats.get(&0, 0) {
            for cpu in per_cpu.iter() {
                for (s, v) in sums.iter_mut().zip(cpu) {
                    *s += v;
                }
            }
        }
        self.kernel.seen = sums[st::SEEN];
        self.kernel.deduplicated = sums[st::DEDUP];
        self.kernel.filtered = sums[st::FILTERED];
        self.kernel.events_lost = sums[st::EVENT_LOST];
        self.kernel.packets_lost = sums[st::LOST];
        self.kernel.dirty_lost = sums[st::DIRTY_LOST];
        let skips = [sums[st::NOT_IP], sums[st::MALFORMED], sums[st::OTHER_PROTO]];
        let reasons = [Skip::NotIp, Skip::BadIp, Skip::OtherIpProtocol];
        let delta: Vec<(Skip, u64)> = reasons
            .iter()
            .zip(skips.iter().zip(self.last_skips))
            .map(|(r, (now, was))| (*r, now.saturating_sub(was)))
            .collect();
        self.last_skips = skips;
        pipeline.on_kernel(self.kernel, &delta, now_ns);
    }

    /// One read interval's work: advance the interval, take the ring buffer, read the dirty
    /// flows and the counters, move the clock, and forget finished flows.
    fn interval<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>) {
        let read_from = self.advance_interval();
        self.drain_ring(pipeline);
        self.read_dirty(pipeline);
        self.end_interval(pipeline, read_from);
    }

    /// Starts the next interval in the kernel; returns the wall time just before it.
    ///
    /// Every packet the kernel saw before that moment is, after the drain and the read that
    /// follow, in the tracker: its event taken from the ring or its counts read. So connections
    /// are timed out against this moment, not against the newest packet read, which may be
    /// later than another connection's counters (`Tracker::sweep_by_clock`).
    ///
    /// Then it waits for the programs already running: one delayed (its CPU preempted) between
    /// counting a packet and announcing the flow, or holding a ring-buffer record that stops
    /// the drain, would otherwise leave a packet from before that moment to a later read.
    fn advance_interval(&mut self) -> i64 {
        let read_from = self.wall(0).saturating_add(monotonic_ns());
        self.interval_gen = self.interval_gen.wrapping_add(1);
        if let Err(e) = self.write_config() {
            tracing::warn!(error = %e, "Cannot advance the read interval.");
        }
        if self.barrier && !wait_for_running_programs() {
            self.barrier = false;
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "membarrier(MEMBARRIER_CMD_GLOBAL) refused (nohz_full CPUs or a seccomp \
                 profile): a packet counted while the interval advances may, rarely, start a \
                 second row of its connection. Allow the membarrier syscall to avoid it."
            );
        }
        read_from
    }

    /// After the drain and the read: kernel counters, the clock moved to `read_from`, and the
    /// kernel's entries of finished flows deleted.
    fn end_interval<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>, read_from: i64) {
        self.mono_offset_ns = mono_offset_ns();
        let now = self.wall(0).saturating_add(monotonic_ns());
        self.read_stats(pipeline, now);
        pipeline.tick(read_from);
        for (p, a, b) in pipeline.take_finished() {
            let k = flow_key(p, a, b);
            // Packets the kernel counted since the read came after `read_from`, so after the
            // connection ended: they start the next one, as they would in a capture file, and
            // the entry stays (deleting it lost them).
            if let Ok(v) = self.flows.get(&k, 0)
                && self.read_flow(&k, &v, pipeline)
            {
                continue;
            }
            let _ = self.flows.remove(&k);
            self.baselines.remove(&k);
            self.dirty.remove(&k);
        }
    }

    /// Runs until `stop` is set (or `until` passes): packets and counters into `pipeline`,
    /// rows to its sink every flush interval; `progress` gets the counters and the number of
    /// attached interfaces after every read interval. Detaches the programs, reads what the kernel
    /// counted last, and returns; the caller finishes the pipeline.
    pub fn run<S: BatchSink>(
        &mut self,
        pipeline: &mut Pipeline<S>,
        stop: &AtomicBool,
        until: Option<Instant>,
        mut progress: impl FnMut(&crate::stats::CaptureStats, usize),
    ) {
        pipeline.live(true);
        let mut next_read = Instant::now() + self.cfg.read_interval;
        let mut next_flush = Instant::now() + self.cfg.flush_interval;
        let mut next_scan = Instant::now() + Duration::from_secs(5);
        let fd = self.ring.as_raw_fd();
        while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
            let now = Instant::now();
            wait_readable(
                fd,
                next_read.saturating_duration_since(now).min(Duration::from_millis(200)),
            );
            self.drain_ring(pipeline);
            let now = Instant::now();
            if now >= next_read {
                self.interval(pipeline);
                progress(pipeline.stats(), self.attached.len());
                next_read = now + self.cfg.read_interval;
            }
            if now >= next_flush {
                pipeline.flush();
                next_flush = now + self.cfg.flush_interval;
            }
            if now >= next_scan {
                if let Some(path) = self.cfg.filter_file.clone()
                    && let Err(e) = self.reload_filter(&path, false)
                {
                    tracing::warn!(error = %e, "Filter file not applied; the previous filter stays.");
                }
                if let Err(e) = self.attach_new(false) {
                    tracing::warn!(error = %e, "Rescanning interfaces failed.");
                }
                if let Err(e) = self.refresh_selectors() {
                    tracing::warn!(error = %e, "Pod selectors not refreshed.");
                }
                if let Err(e) = self.refresh_pod_cidrs() {
                    tracing::warn!(error = %e, "Pod networks not refreshed.");
                }
                next_scan = now + Duration::from_secs(5);
            }
        }
        self.detach();
        // What was in flight when the programs went away.
        self.drain_ring(pipeline);
        self.read_all(pipeline);
        let now = self.wall(0).saturating_add(monotonic_ns());
        self.read_stats(pipeline, now);
        self.dirty.clear();
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.detach();
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

    /// A flow's packets counted after the read of the interval that announced it, in that same
    /// interval, are read in the next one. Runs the real programs on `lo`: needs root (CI is).
    #[test]
    fn packets_after_an_intervals_read_are_read_in_the_next() {
        use crate::pipeline::{MemorySink, PipelineConfig};
        use std::io::Write;
        use std::net::{TcpListener, TcpStream};

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cap = start_on_lo(port);
        let mut p = Pipeline::new(PipelineConfig::default(), MemorySink::default());
        p.live(true);
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.set_nodelay(true).unwrap();
        let (_server, _) = listener.accept().unwrap();
        cap.interval(&mut p);

        // The kernel announces the flow in the new interval; the read takes "a" ...
        let read_from = cap.advance_interval();
        client.write_all(b"a").unwrap();
        cap.drain_ring(&mut p);
        cap.read_dirty(&mut p);
        // ... "bb" is counted in the same interval, after the read, and not announced again.
        client.write_all(b"bb").unwrap();
        cap.end_interval(&mut p, read_from);
        cap.interval(&mut p);
        cap.detach();

        let (sink, _) = p.finish().unwrap();
        let got: Vec<i64> = rows(&sink, port).into_iter().map(|r| r.1).collect();
        assert_eq!(got, vec![3], "the client sent 1 + 2 payload bytes, the server nothing");
    }

    /// A flow's packets the kernel counted after its connection ended, before user space
    /// deleted the entry, start the next connection instead of vanishing with the entry.
    #[test]
    fn packets_after_a_connections_end_start_the_next() {
        use crate::pipeline::{MemorySink, PipelineConfig};
        use crate::tracker::TrackerConfig;
        use std::net::UdpSocket;

        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let mut cap = start_on_lo(port);
        let tracker =
            TrackerConfig { udp_idle_timeout_ns: 200_000_000, ..TrackerConfig::default() };
        let config = PipelineConfig { tracker, ..PipelineConfig::default() };
        let mut p = Pipeline::new(config, MemorySink::default());
        p.live(true);
        cap.interval(&mut p);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"one", ("127.0.0.1", port)).unwrap();
        cap.interval(&mut p);
        // Past the idle timeout and the tracker's once-a-second sweep.
        std::thread::sleep(Duration::from_millis(1100));
        let read_from = cap.advance_interval();
        client.send_to(b"four", ("127.0.0.1", port)).unwrap();
        // The first connection ends at `read_from`; the kernel already holds the next packet.
        cap.end_interval(&mut p, read_from);
        cap.interval(&mut p);
        cap.detach();
        let (sink, _) = p.finish().unwrap();
        assert_eq!(rows(&sink, port), vec![(1, 3), (1, 4)], "two connections of one packet each");
    }

    fn start_on_lo(port: u16) -> LiveCapture {
        let cfg = LiveConfig {
            interfaces: vec![InterfaceSpec { pattern: "lo".into(), role: Role::Plain }],
            filter: Filter { ports: vec![port], ..Filter::default() },
            ring_bytes: 1 << 16,
            ..LiveConfig::default()
        };
        LiveCapture::start(cfg).unwrap_or_else(|e| {
            panic!("this test loads the eBPF programs on lo: run it as root ({e})")
        })
    }

    /// (packets, payload bytes) both ways of the connections rows with `port` on either side,
    /// in row order.
    fn rows(sink: &crate::pipeline::MemorySink, port: u16) -> Vec<(i64, i64)> {
        use arrow::array::AsArray;
        use arrow::datatypes::{Int32Type, Int64Type};
        use podwire_schemas::Table;
        use podwire_schemas::connections::col;
        let mut v = Vec::new();
        for b in sink.table(Table::Connections) {
            let col = |name| b.column_by_name(name).unwrap();
            let int = |name| col(name).as_primitive::<Int64Type>().clone();
            let port_of = |name| col(name).as_primitive::<Int32Type>().clone();
            let (sp, dp) = (port_of(col::SRC_PORT), port_of(col::DST_PORT));
            let (p0, p1) = (int(col::SRC_PACKETS), int(col::DST_PACKETS));
            let (b0, b1) = (int(col::SRC_PAYLOAD_BYTES), int(col::DST_PAYLOAD_BYTES));
            for i in 0..b.num_rows() {
                if [sp.value(i), dp.value(i)].contains(&i32::from(port)) {
                    v.push((p0.value(i) + p1.value(i), b0.value(i) + b1.value(i)));
                }
            }
        }
        v
    }

    /// The wait `advance_interval` relies on works on this kernel (it needs no privileges).
    #[test]
    fn the_kernel_waits_for_running_programs() {
        let t = std::time::Instant::now();
        assert!(
            wait_for_running_programs(),
            "membarrier(MEMBARRIER_CMD_GLOBAL): {} (a kernel with nohz_full CPUs, or a seccomp \
             profile that blocks membarrier, refuses it)",
            std::io::Error::last_os_error()
        );
        eprintln!("one RCU grace period: {:?}", t.elapsed());
    }

    #[test]
    fn flow_keys_order_the_ends_like_the_kernel() {
        let a = ("10.0.0.2".parse().unwrap(), 40000);
        let b = ("10.0.0.1".parse().unwrap(), 80);
        assert_eq!(flow_key(6, a, b), flow_key(6, b, a));
        let k = flow_key(17, a, b);
        assert_eq!((k.proto, k.lo_port, k.hi_port), (17, 80, 40000));
        assert_eq!(addr(k.lo), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
