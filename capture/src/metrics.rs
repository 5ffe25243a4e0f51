//! The live capture's Prometheus metrics (`podwire_capture_*`): the pipeline's and the kernel's
//! counters, packets skipped by reason, connections by outcome, interfaces attached. Set from
//! [`CaptureStats`] after every read interval; served by the agent's `--metrics-listen`.
use crate::stats::CaptureStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Label {
    key: String,
}

/// The live capture's metrics, set from the pipeline's counters after every read interval.
#[derive(Debug, Default)]
pub struct CaptureMetrics {
    registry: Registry,
    counters: Vec<Counter>,
    skipped: Family<Label, Counter>,
    outcomes: Family<Label, Counter>,
    interfaces: Gauge,
    last: std::sync::Mutex<(Vec<u64>, CaptureStats)>,
}

/// Names and help of the plain counters, in the order of [`CaptureMetrics::values`].
const COUNTERS: [(&str, &str); 10] = [
    ("packets", "packets accounted for (counted on a connection, or skipped)"),
    ("packets_tracked", "packets counted on a connection"),
    ("connections_evicted", "connections finished early: the tracker's table was full"),
    ("dns_transactions", "DNS transactions"),
    ("kernel_packets_seen", "packets the eBPF programs ran on (all interfaces, both directions)"),
    ("kernel_packets_deduplicated", "packets seen on a second interface and counted once"),
    ("kernel_packets_filtered", "packets outside the capture filter"),
    ("kernel_events_lost", "packets counted without details: the ring buffer was full"),
    (
        "kernel_packets_lost",
        "packets not counted: flow table full, or ring buffer full for ICMP/fragments",
    ),
    ("kernel_flows_evicted", "flows the kernel table dropped before they were read"),
];

impl CaptureMetrics {
    /// The metrics, registered under `podwire_capture_`.
    pub fn new() -> Self {
        let mut m = CaptureMetrics::default();
        let sub = m.registry.sub_registry_with_prefix("podwire_capture");
        for (name, help) in COUNTERS {
            let c = Counter::default();
            sub.register(name, help, c.clone());
            m.counters.push(c);
        }
        sub.register(
            "packets_skipped",
            "packets not turned into records, by reason",
            m.skipped.clone(),
        );
        sub.register("connections", "connections finished, by outcome", m.outcomes.clone());
        sub.register("interfaces", "interfaces attached now", m.interfaces.clone());
        m
    }

    fn values(s: &CaptureStats) -> Vec<u64> {
        let k = &s.kernel;
        vec![
            s.frames,
            s.frames_tracked,
            s.tracker.evicted,
            s.dns_rows,
            k.seen,
            k.deduplicated,
            k.filtered,
            k.events_lost,
            k.packets_lost,
            k.flows_evicted,
        ]
    }

    /// Adds what grew since the last call (the pipeline's counters are totals).
    pub fn update(&self, s: &CaptureStats, interfaces: usize) {
        let Ok(mut last) = self.last.lock() else { return };
        let now = Self::values(s);
        for (i, c) in self.counters.iter().enumerate() {
            let was = last.0.get(i).copied().unwrap_or(0);
            c.inc_by(now[i].saturating_sub(was));
        }
        for (reason, n) in &s.skipped {
            let was = last.1.skipped.get(reason).copied().unwrap_or(0);
            self.skipped
                .get_or_create(&Label { key: reason.name().into() })
                .inc_by(n - was.min(*n));
        }
        for (outcome, n) in &s.outcomes {
            let was = last.1.outcomes.get(outcome).copied().unwrap_or(0);
            self.outcomes.get_or_create(&Label { key: (*outcome).into() }).inc_by(n - was.min(*n));
        }
        self.interfaces.set(i64::try_from(interfaces).unwrap_or(i64::MAX));
        *last = (now, s.clone());
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, name: &str) -> &'a str {
        text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"))
    }

    #[test]
    fn totals_are_counted_once_however_often_they_are_set() {
        let m = CaptureMetrics::new();
        let mut s = CaptureStats { frames: 10, ..CaptureStats::default() };
        s.kernel.seen = 12;
        m.update(&s, 3);
        s.frames = 25;
        s.kernel.seen = 30;
        m.update(&s, 2);
        m.update(&s, 2);
        let text = m.encode();
        assert_eq!(
            line(&text, "podwire_capture_packets_total "),
            "podwire_capture_packets_total 25"
        );
        assert_eq!(
            line(&text, "podwire_capture_kernel_packets_seen_total "),
            "podwire_capture_kernel_packets_seen_total 30"
        );
        assert_eq!(line(&text, "podwire_capture_interfaces "), "podwire_capture_interfaces 2");
    }
}
