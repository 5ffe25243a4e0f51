//! The capture pipeline: frames → [`Decoder`] → [`Tracker`] → Arrow batches → a [`BatchSink`].
use crate::decode::{Decoder, Skip, ip_proto};
use crate::source::Frame;
use crate::stats::{CaptureStats, KernelCounters};
use crate::tracker::{FlowCounts, Tracker, TrackerConfig};
use arrow::array::RecordBatch;
use podwire_schemas::Table;
use podwire_schemas::capture_stats::{CaptureStatsBuilder, CaptureStatsRecord, SKIP_REASONS};
use podwire_schemas::connections::ConnectionsBuilder;
use podwire_schemas::dns::DnsBuilder;
use podwire_schemas::packets::PacketsBuilder;
use std::net::IpAddr;

/// Where finished batches go: Parquet through enrichment (standalone), Kafka (agents), memory
/// (tests).
pub trait BatchSink {
    /// Takes one batch of `table`.
    ///
    /// # Errors
    /// What failed; the pipeline stops and returns it from [`Pipeline::finish`].
    fn write(&mut self, table: Table, batch: RecordBatch) -> Result<(), crate::Error>;
}

/// Collects batches in memory.
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Batches by table, in arrival order.
    pub batches: Vec<(Table, RecordBatch)>,
}

impl BatchSink for MemorySink {
    fn write(&mut self, table: Table, batch: RecordBatch) -> Result<(), crate::Error> {
        self.batches.push((table, batch));
        Ok(())
    }
}

impl MemorySink {
    /// The batches of one table.
    pub fn table(&self, table: Table) -> impl Iterator<Item = &RecordBatch> {
        self.batches.iter().filter(move |(t, _)| *t == table).map(|(_, b)| b)
    }
}

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Tracker settings.
    pub tracker: TrackerConfig,
    /// Rows per batch.
    pub batch_rows: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { tracker: TrackerConfig::default(), batch_rows: 8 * 1024 }
    }
}

/// Length of a `capture_stats` interval (packet time).
const STATS_INTERVAL_NS: i64 = 60_000_000_000;

/// Records queued in the tracker before they move into the column builders.
const DRAIN_ROWS: usize = 1024;

/// Fragments of a datagram that is not complete after this long are dropped.
const FRAGMENT_TIMEOUT_NS: i64 = 30_000_000_000;

/// The capture pipeline over one sink.
#[derive(Debug)]
pub struct Pipeline<S> {
    decoder: Decoder,
    tracker: Tracker,
    conns: ConnectionsBuilder,
    dns: DnsBuilder,
    packets: PacketsBuilder,
    capture_stats: CaptureStatsBuilder,
    batch_rows: usize,
    stats: CaptureStats,
    /// The source named on `capture_stats` rows.
    source: String,
    /// The open `capture_stats` interval: (minute bucket, first and last packet time).
    interval: Option<(i64, i64, i64)>,
    /// Counters at the start of the open interval.
    interval_base: CaptureStats,
    sink: S,
    sink_error: Option<crate::Error>,
    /// Collect the flows of final TCP/UDP rows into `finished` (live capture forgets their
    /// kernel counters then).
    collect_finished: bool,
    finished: Vec<FlowRef>,
}

/// A TCP or UDP flow: protocol number and both ends.
pub type FlowRef = (u8, (IpAddr, u16), (IpAddr, u16));

impl<S: BatchSink> Pipeline<S> {
    /// A pipeline writing to `sink`.
    pub fn new(config: PipelineConfig, sink: S) -> Self {
        Pipeline {
            decoder: Decoder::new(),
            tracker: Tracker::new(config.tracker),
            conns: ConnectionsBuilder::with_capacity(config.batch_rows.clamp(1, 64 * 1024)),
            dns: DnsBuilder::new(),
            packets: PacketsBuilder::default(),
            capture_stats: CaptureStatsBuilder::default(),
            batch_rows: config.batch_rows.max(1),
            stats: CaptureStats::default(),
            source: String::new(),
            interval: None,
            interval_base: CaptureStats::default(),
            sink,
            sink_error: None,
            collect_finished: false,
            finished: Vec::new(),
        }
    }

    /// A live capture: the flows of final rows are collected ([`Self::take_finished`]), and
    /// connections time out only at the times given to [`Self::tick`]
    /// ([`Tracker::sweep_by_clock`]).
    pub fn live(&mut self, on: bool) {
        self.collect_finished = on;
        self.tracker.sweep_by_clock(on);
    }

    /// The TCP/UDP flows whose final row was made since the last call, and that have no live
    /// connection again (a reused port).
    pub fn take_finished(&mut self) -> Vec<FlowRef> {
        let mut done = std::mem::take(&mut self.finished);
        done.retain(|(p, a, b)| !self.tracker.is_live(*p, *a, *b));
        done
    }

    /// Opens or extends the `capture_stats` interval for a packet at `ts_ns`.
    fn note_time(&mut self, ts_ns: i64) {
        // Nearly every packet falls in the open minute: a range check, not a division.
        if let Some((b, start, end)) = &mut self.interval {
            let lo = *b * STATS_INTERVAL_NS;
            if (lo..lo.saturating_add(STATS_INTERVAL_NS)).contains(&ts_ns) {
                *start = (*start).min(ts_ns);
                *end = (*end).max(ts_ns);
                return;
            }
        }
        self.close_interval();
        self.interval = Some((ts_ns.div_euclid(STATS_INTERVAL_NS), ts_ns, ts_ns));
    }

    /// Adds packets counted in the kernel (live capture) to the connection of `proto` between
    /// `a` and `b` ([`Tracker::on_counts`]).
    pub fn on_counts(
        &mut self,
        ts_ns: i64,
        proto: u8,
        a: (IpAddr, u16),
        b: (IpAddr, u16),
        from: [FlowCounts; 2],
    ) {
        if from.iter().all(FlowCounts::is_empty) {
            return;
        }
        let packets = from[0].packets + from[1].packets;
        self.note_time(ts_ns);
        self.stats.frames += packets;
        self.stats.frame_bytes += from[0].bytes + from[1].bytes;
        if !self.tracker.protocols().keeps(proto, a.1, b.1) {
            // The kernel drops these before counting; a switch changed under it, say.
            self.stats.filtered += packets;
            return;
        }
        self.stats.frames_tracked += packets;
        self.tracker.on_counts(ts_ns, proto, a, b, from);
    }

    /// Takes the kernel's counters (totals since the start) and the packets it skipped since the
    /// last call, by reason.
    pub fn on_kernel(&mut self, totals: KernelCounters, skipped: &[(Skip, u64)], now_ns: i64) {
        let mut any = totals != self.stats.kernel;
        self.stats.kernel = totals;
        for &(reason, n) in skipped {
            if n > 0 {
                any = true;
                self.stats.frames += n;
                *self.stats.skipped.entry(reason).or_default() += n;
            }
        }
        if any {
            self.note_time(now_ns);
        }
    }

    /// Moves the clock to `now_ns` (live capture): times out idle connections, closes the
    /// `capture_stats` minute when it is over, and moves finished rows to the builders.
    pub fn tick(&mut self, now_ns: i64) {
        self.tracker.advance(now_ns);
        if let Some((b, _, _)) = self.interval
            && now_ns.div_euclid(STATS_INTERVAL_NS) != b
        {
            self.close_interval();
        }
        self.drain(false);
    }

    /// Sends the rows made so far to the sink, as batches however small (live capture, so that
    /// rows become visible while connections go on).
    pub fn flush(&mut self) {
        self.drain(true);
    }

    /// Counters so far.
    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// The sink's first error, if any (the pipeline stops writing after it).
    pub fn sink_error(&self) -> Option<&crate::Error> {
        self.sink_error.as_ref()
    }

    /// Names the packet source on the `capture_stats` rows that follow (e.g. `pcap:FILE`); the
    /// open interval is closed first, so each row belongs to one source.
    pub fn set_source(&mut self, source: &str) {
        self.close_interval();
        self.source = source.to_string();
    }

    /// Emits the open `capture_stats` interval, if any, as one row of deltas.
    fn close_interval(&mut self) {
        let Some((_, start_ns, end_ns)) = self.interval.take() else { return };
        let (now, base) = (&self.stats, &self.interval_base);
        let mut skipped = [0u64; SKIP_REASONS.len()];
        for (reason, n) in &now.skipped {
            if let Some(i) = SKIP_REASONS.iter().position(|r| *r == reason.name()) {
                skipped[i] += n - base.skipped.get(reason).copied().unwrap_or(0);
            }
        }
        let t = &self.tracker;
        let rec = CaptureStatsRecord {
            start_ns,
            end_ns,
            node: t.node().to_string(),
            source: self.source.clone(),
            packets: now.frames - base.frames,
            bytes: now.frame_bytes - base.frame_bytes,
            packets_tracked: now.frames_tracked - base.frames_tracked,
            skipped,
            connections_evicted: t.stats.evicted - base.tracker.evicted,
            dns_parse_errors: t.dns.parse_errors - base.dns_parse_errors,
            kernel: {
                // Filtered in user space (the protocol switches on a capture file) or in the
                // kernel: one column.
                let mut k = now.kernel.since(&base.kernel);
                k.filtered += now.filtered - base.filtered;
                k.columns()
            },
        };
        self.capture_stats.append(&rec);
        let mut base = self.stats.clone();
        base.tracker = t.stats;
        base.dns_parse_errors = t.dns.parse_errors;
        self.interval_base = base;
    }

    /// Handles one frame.
    pub fn on_frame(&mut self, frame: Frame<'_>) {
        self.note_time(frame.ts_ns);
        self.stats.frames += 1;
        self.stats.frame_bytes += frame.data.len() as u64;
        match self.decoder.decode(frame.link, frame.data, frame.ts_ns) {
            Ok(pkt) => {
                let (sport, dport) = pkt.ports();
                if !self.tracker.protocols().keeps(pkt.transport.ip_protocol(), sport, dport) {
                    self.stats.filtered += u64::from(pkt.packets);
                } else if self.tracker.on_packet(frame.ts_ns, &pkt) {
                    self.stats.frames_tracked += u64::from(pkt.packets);
                } else {
                    *self.stats.skipped.entry(Skip::UnreadableIcmpQuote).or_default() += 1;
                }
            }
            Err(Skip::FragmentHeld) => {}
            Err(skip) => *self.stats.skipped.entry(skip).or_default() += 1,
        }
        if self.stats.frames.is_multiple_of(65_536) {
            self.decoder.expire_fragments(self.tracker.now_ns(), FRAGMENT_TIMEOUT_NS);
        }
        // Move finished records into the column builders often, so the record queues stay
        // small; the builders become batches at `batch_rows`.
        if self.tracker.out.len() + self.tracker.packets_out.len() + self.tracker.dns.out.len()
            >= DRAIN_ROWS
        {
            self.drain(false);
        }
    }

    fn drain(&mut self, flush: bool) {
        let dropped = self.decoder.take_dropped_fragments();
        if dropped > 0 {
            *self.stats.skipped.entry(Skip::BadFragment).or_default() += dropped;
        }
        let mut out = std::mem::take(&mut self.tracker.out);
        for r in out.drain(..) {
            if r.is_final {
                *self.stats.outcomes.entry(r.outcome).or_default() += 1;
                if self.collect_finished
                    && r.protocol != podwire_schemas::connections::protocol::ICMP
                {
                    let p = if r.protocol == podwire_schemas::connections::protocol::TCP {
                        ip_proto::TCP
                    } else {
                        ip_proto::UDP
                    };
                    self.finished.push((p, (r.src_ip, r.src_port), (r.dst_ip, r.dst_port)));
                }
            }
            self.conns.append(&r);
            // A batch never outgrows the builders' capacity (growing copies every column).
            if self.conns.len() >= self.batch_rows {
                self.emit_connections();
            }
        }
        self.tracker.out = out;
        for r in self.tracker.dns.out.drain(..) {
            self.dns.append(&r);
        }
        for r in self.tracker.packets_out.drain(..) {
            self.packets.append(&r);
        }
        self.stats.tracker = self.tracker.stats;
        self.stats.dns_parse_errors = self.tracker.dns.parse_errors;
        if flush {
            self.emit_connections();
        }
        if flush || self.dns.len() >= self.batch_rows {
            self.stats.dns_rows += self.dns.len() as u64;
            let b = self.dns.finish();
            self.emit(Table::Dns, b);
        }
        if flush || self.packets.len() >= self.batch_rows {
            self.stats.packet_rows += self.packets.len() as u64;
            let b = self.packets.finish();
            self.emit(Table::Packets, b);
        }
        if flush {
            let b = self.capture_stats.finish();
            self.emit(Table::CaptureStats, b);
        }
    }

    fn emit_connections(&mut self) {
        self.stats.connection_rows += self.conns.len() as u64;
        let b = self.conns.finish();
        self.emit(Table::Connections, b);
    }

    fn emit(&mut self, table: Table, batch: Result<RecordBatch, arrow::error::ArrowError>) {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                self.sink_error.get_or_insert(crate::Error::Arrow(e));
                return;
            }
        };
        if batch.num_rows() == 0 || self.sink_error.is_some() {
            return;
        }
        if let Err(e) = self.sink.write(table, batch) {
            self.sink_error = Some(e);
        }
    }

    /// Ends the input: finishes every connection, flushes all rows, and returns the sink and
    /// the counters.
    ///
    /// # Errors
    /// The sink's first error.
    pub fn finish(mut self) -> Result<(S, CaptureStats), crate::Error> {
        self.tracker.sweep(true);
        self.decoder.drain_fragments();
        // Fragments dropped at the end belong to the last interval.
        let dropped = self.decoder.take_dropped_fragments();
        if dropped > 0 {
            *self.stats.skipped.entry(Skip::BadFragment).or_default() += dropped;
        }
        self.close_interval();
        self.drain(true);
        match self.sink_error {
            Some(e) => Err(e),
            None => Ok((self.sink, self.stats)),
        }
    }
}
