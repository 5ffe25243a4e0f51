//! Reading what the kernel recorded: the ring buffer's events and dirty-flow notices, the flow
//! table's counters (as differences to the last read), and the per-CPU stats.
use super::LiveCapture;
use super::layout::{EV_DIRTY, EV_PACKET, EvHdr, FlowKey, FlowVal, st};
use crate::decode::{LinkType, Skip};
use crate::pipeline::{BatchSink, Pipeline};
use crate::source::Frame;
use crate::tracker::FlowCounts;
use aya::maps::RingBuf;
use std::net::{IpAddr, Ipv6Addr};
use zerocopy::FromBytes;

/// Per-flow counters read last time (the kernel's counters are totals since the flow entry was
/// made).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Baseline {
    first_ns: u64,
    dirs: [[u64; 5]; 2],
}

pub(super) fn addr(a: [u8; 16]) -> IpAddr {
    Ipv6Addr::from(a).to_canonical()
}

pub(super) fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The kernel's key for a flow: the ends ordered as the programs order them (addresses as four
/// native-endian words, then ports).
pub(super) fn flow_key(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> FlowKey {
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

pub(super) fn dir_totals(v: &FlowVal, d: usize) -> [u64; 5] {
    let c = &v.d[d];
    [c.packets, c.bytes, c.payload, u64::from(c.retrans), u64::from(c.zero_win)]
}

impl LiveCapture {
    pub(super) fn wall(&self, ktime_ns: u64) -> i64 {
        i64::try_from(ktime_ns).unwrap_or(i64::MAX).saturating_add(self.mono_offset_ns)
    }

    /// Takes everything in the ring buffer: packets into the pipeline, dirty flows noted.
    pub(super) fn drain_ring<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>) {
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
    pub(super) fn read_flow<S: BatchSink>(
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
    pub(super) fn read_dirty<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>) {
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
    pub(super) fn read_all<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>) {
        let all: Vec<(FlowKey, FlowVal)> = self.flows.iter().filter_map(Result::ok).collect();
        for (k, v) in all {
            let _ = self.read_flow(&k, &v, pipeline);
        }
    }

    pub(super) fn read_stats<S: BatchSink>(&mut self, pipeline: &mut Pipeline<S>, now_ns: i64) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
