//! What a capture run read, made and skipped, and why: the end-of-run summary, and later the
//! `capture_stats` rows and Prometheus counters.
use crate::decode::Skip;
use crate::tracker::TrackerStats;
use std::collections::BTreeMap;
use std::fmt;

/// Counters of one capture run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames read from the source.
    pub frames: u64,
    /// Bytes of captured frames.
    pub frame_bytes: u64,
    /// Frames that reached the tracker (fragments of a reassembled datagram count each).
    pub frames_tracked: u64,
    /// Frames that did not, by reason.
    pub skipped: BTreeMap<Skip, u64>,
    /// Packets of protocols switched off (`--protocols`), dropped in user space. (The kernel's
    /// are in [`KernelCounters::filtered`].)
    pub filtered: u64,
    /// Tracker counters.
    pub tracker: TrackerStats,
    /// Final connection rows by outcome.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Connection rows written (interim and final).
    pub connection_rows: u64,
    /// DNS transactions written.
    pub dns_rows: u64,
    /// Packet rows written.
    pub packet_rows: u64,
    /// Port-53 payloads that did not parse as DNS.
    pub dns_parse_errors: u64,
    /// Live (eBPF) capture: what the kernel programs did not turn into records, and why.
    pub kernel: KernelCounters,
}

/// Counters of the kernel side of a live capture (the programs' `stats` map, plus flows the
/// kernel's table evicted before they were read). Packets the kernel counted in its flow table
/// are in [`CaptureStats::frames`] and `frames_tracked` like packets seen one by one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Packets the programs ran on, on every attached interface and direction.
    pub seen: u64,
    /// Packets counted on another interface of the node (seen twice, counted once).
    pub deduplicated: u64,
    /// Packets outside the capture filter.
    pub filtered: u64,
    /// Event packets counted in the kernel for lack of ring-buffer room.
    pub events_lost: u64,
    /// Packets not counted at all.
    pub packets_lost: u64,
    /// Dirty-flow notices lost (their counters are read at the end or with the next packet).
    pub dirty_lost: u64,
    /// Flows evicted from the kernel table before their counters were read.
    pub flows_evicted: u64,
}

impl KernelCounters {
    /// The `capture_stats` kernel columns, in schema order.
    pub fn columns(&self) -> [u64; 5] {
        [self.deduplicated, self.filtered, self.events_lost, self.packets_lost, self.flows_evicted]
    }

    /// The counters gained since `base`.
    pub fn since(&self, base: &KernelCounters) -> KernelCounters {
        KernelCounters {
            seen: self.seen - base.seen,
            deduplicated: self.deduplicated - base.deduplicated,
            filtered: self.filtered - base.filtered,
            events_lost: self.events_lost - base.events_lost,
            packets_lost: self.packets_lost - base.packets_lost,
            dirty_lost: self.dirty_lost - base.dirty_lost,
            flows_evicted: self.flows_evicted - base.flows_evicted,
        }
    }
}

impl CaptureStats {
    /// Frames skipped for any reason.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Frames skipped because they were malformed.
    pub fn malformed_total(&self) -> u64 {
        self.skipped.iter().filter(|(s, _)| s.is_malformed()).map(|(_, n)| n).sum()
    }

    /// Connections (final rows).
    pub fn connections(&self) -> u64 {
        self.outcomes.values().sum()
    }
}

impl fmt::Display for CaptureStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "packets read        {:>12}  ({} bytes)", self.frames, self.frame_bytes)?;
        writeln!(f, "packets tracked     {:>12}", self.frames_tracked)?;
        writeln!(
            f,
            "connections         {:>12}  ({} rows incl. interim)",
            self.connections(),
            self.connection_rows
        )?;
        for (o, n) in &self.outcomes {
            writeln!(f, "  {o:<18}{n:>12}")?;
        }
        writeln!(f, "DNS transactions    {:>12}", self.dns_rows)?;
        if self.packet_rows > 0 {
            writeln!(f, "packet rows         {:>12}", self.packet_rows)?;
        }
        let t = &self.tracker;
        if t.icmp_errors_matched + t.icmp_errors_unmatched + t.icmp_errors_unreadable > 0 {
            writeln!(
                f,
                "ICMP errors         {:>12}  ({} on seen connections, {} quoting unseen ones, {} unreadable)",
                t.icmp_errors_matched + t.icmp_errors_unmatched + t.icmp_errors_unreadable,
                t.icmp_errors_matched,
                t.icmp_errors_unmatched,
                t.icmp_errors_unreadable
            )?;
        }
        if t.evicted > 0 {
            writeln!(f, "evicted (full table){:>12}  raise --max-connections", t.evicted)?;
        }
        if self.dns_parse_errors > 0 {
            writeln!(f, "not DNS on port 53  {:>12}", self.dns_parse_errors)?;
        }
        let k = &self.kernel;
        if k.seen > 0 {
            writeln!(
                f,
                "kernel              {:>12}  packets seen on the interfaces ({} counted on another interface, {} filtered out)",
                k.seen, k.deduplicated, k.filtered
            )?;
            if k.events_lost + k.packets_lost + k.flows_evicted + k.dirty_lost > 0 {
                writeln!(
                    f,
                    "  LOSS              {:>12}  packets not counted (raise --kernel-flows / --ring-bytes); {} events counted without details, {} flows evicted before read, {} late reads",
                    k.packets_lost, k.events_lost, k.flows_evicted, k.dirty_lost
                )?;
            }
        }
        if self.filtered > 0 {
            writeln!(
                f,
                "filtered out        {:>12}  protocols switched off (--protocols)",
                self.filtered
            )?;
        }
        if self.skipped.is_empty() {
            writeln!(f, "skipped             {:>12}", 0)?;
        } else {
            writeln!(f, "skipped             {:>12}", self.skipped_total())?;
            for (s, n) in &self.skipped {
                writeln!(f, "  {:<24}{n:>6}  {}", s.name(), s.describe())?;
            }
        }
        Ok(())
    }
}
