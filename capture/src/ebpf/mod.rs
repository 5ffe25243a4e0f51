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
//!
//! Here: loading ([`LiveCapture::start`]), the run loop and the read intervals. Beside it:
//! - `layout`: the records and values shared with the programs (`bpf/podwire.h`);
//! - `attach`: interfaces, their roles and the pod networks;
//! - `filter`: the capture filter in the kernel ([`Filter`], [`Cidr`], pod selectors);
//! - `read`: the ring buffer, the flow table's counters and the stats;
//! - `routes`: the node's pod networks, read from its routes;
//! - `sys`: clocks, the wait for running programs, polling.
use crate::decode::LinkType;
use crate::pipeline::{BatchSink, Pipeline};
use crate::protocols::Protocols;
use crate::stats::KernelCounters;
use aya::maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, RingBuf};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use std::collections::HashMap as StdHashMap;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The compiled programs (build.rs).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/podwire.bpf.o"));

mod attach;
mod filter;
mod layout;
mod read;
mod routes;
mod sys;

use attach::Attached;
pub use attach::{InterfaceSpec, Role};
pub use filter::{Cidr, EVERY_POD, Filter, Resolver, SELECTOR_KINDS, resolve_selectors};
use layout::*;
use read::{Baseline, flow_key};
use sys::*;

/// The config bits of the protocols switched off.
fn protocol_flags(p: Protocols) -> u32 {
    [(p.tcp, CFG_NO_TCP), (p.udp, CFG_NO_UDP), (p.dns, CFG_NO_DNS), (p.icmp, CFG_NO_ICMP)]
        .into_iter()
        .filter(|(on, _)| !on)
        .map(|(_, bit)| bit)
        .sum()
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

    fn write_config(&mut self) -> Result<(), LiveError> {
        let v = Config { interval: self.interval_gen, flags: self.flags };
        self.config.set(0, v, 0).map_err(|e| classify("writing the config map", &chain(&e)))
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
}
