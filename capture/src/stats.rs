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
