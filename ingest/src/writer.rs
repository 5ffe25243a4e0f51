//! The store side of ingest, one code path for its two transports: Kafka ([`crate::kafka`],
//! `podwire ingest`) and the in-process bus ([`InProcess`], `podwire standalone`).
//!
//! Messages of a log partition are enriched and buffered in an offset-range [`Segment`]; a
//! segment that is due (size, age, or the range a replay must reproduce) is written — ledger,
//! then files, then one commit of the table's Delta log adding them ([`crate::delta`]: what
//! readers see) — and only then does the transport commit past it ([`Log::commit`]). Rejected
//! messages are handed to the transport ([`Log::dead_letters`]) before their offsets are
//! committed. A failed write or commit that may succeed later ([`Error::is_retryable`]: a full
//! disk, a bucket or broker away, a rebalance) is retried with backoff until it succeeds or a
//! stop is asked for, and nothing newer of that partition is committed meanwhile; one that
//! cannot (a corrupt ledger, permissions, a batch that cannot be encoded) is counted and stops
//! the run with [`Error::Roll`], leaving the range uncommitted for the next run to replay.
use crate::delta::DeltaLog;
use crate::enrich::Enricher;
use crate::error::{Error, Result};
use crate::metrics::IngestMetrics;
use crate::segment::{Ledger, LogPartition, Range, RollPolicy, Segment};
use crate::store::{StoreConfig, WriteStats, Written};
use arrow::array::RecordBatch;
use podwire_schemas::Table;
use podwire_schemas::wire::Envelope;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A message as it came from the log, kept for the dead letters if it is rejected.
#[derive(Debug, Default, Clone)]
pub struct Raw {
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
    /// Its headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A rejected message, kept until its segment rolls.
#[derive(Debug)]
pub struct DeadLetter {
    /// The message.
    pub raw: Raw,
    /// Why it was rejected.
    pub reason: String,
    /// Its offset.
    pub offset: i64,
}

/// What a message decoded to: its envelope (when it came through a log with headers) and
/// batches, or why it was rejected (a metrics label and a reason).
pub type Decoded =
    std::result::Result<(Option<Envelope>, Vec<RecordBatch>), (&'static str, String)>;

/// The transport's side of a roll.
pub trait Log {
    /// Makes the rejected messages of `lp` durable elsewhere (Kafka: the dead-letter topic).
    ///
    /// # Errors
    /// When they could not be; the roll is retried if the error [is retryable](Error::is_retryable).
    fn dead_letters(&mut self, lp: &LogPartition, dead: &[DeadLetter]) -> Result<()>;

    /// Records that `lp` resumes at `next` (Kafka: commits the offset).
    ///
    /// # Errors
    /// When the commit failed; the roll is retried if the error [is retryable](Error::is_retryable).
    fn commit(&mut self, lp: &LogPartition, next: i64) -> Result<()>;

    /// Called between two attempts of a failed roll.
    fn between_retries(&mut self) {}
}

/// Logs at most every 10 s per kind, so an outage is a line per interval.
#[derive(Debug, Default)]
pub struct Limiter(Mutex<HashMap<&'static str, Instant>>);

impl Limiter {
    /// Whether a line of `kind` may be logged now.
    pub fn allow(&self, kind: &'static str) -> bool {
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match m.get(kind) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(10) => false,
            _ => {
                m.insert(kind, now);
                true
            }
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    /// Messages accepted.
    pub messages: u64,
    /// Messages rejected (sent to the dead letters).
    pub dead_letters: u64,
    /// Segments written and committed.
    pub segments: u64,
}

/// Segments of every log partition, written to one store.
pub struct Writer<'a> {
    store: StoreConfig,
    roll: RollPolicy,
    ledger: Option<Ledger>,
    /// The tables' Delta log (or why it could not be opened: every roll then fails with it).
    delta: std::result::Result<DeltaLog, String>,
    enricher: Option<&'a Enricher>,
    metrics: &'a IngestMetrics,
    stop: &'a AtomicBool,
    segments: BTreeMap<LogPartition, Segment>,
    dead: BTreeMap<LogPartition, Vec<DeadLetter>>,
    /// Next expected sequence per (producer, table).
    next_seq: HashMap<(String, Table), u64>,
    stats: RunStats,
    written: WriteStats,
    limiter: Limiter,
    /// Attempts of a roll before it fails the run; `None`: retried until it succeeds.
    max_attempts: Option<u32>,
}

impl<'a> Writer<'a> {
    /// A writer to `store`. With `ledger`, each range is recorded in the store before its files
    /// (a log that replays from committed offsets needs it); without, ranges start at
    /// generation 0 (an input read again from its start). Without an `enricher` rows are written
    /// as they come (already named).
    pub fn new(
        store: StoreConfig,
        roll: RollPolicy,
        ledger: bool,
        enricher: Option<&'a Enricher>,
        metrics: &'a IngestMetrics,
        stop: &'a AtomicBool,
    ) -> Self {
        Writer {
            ledger: ledger.then(|| Ledger::new(&store.location)),
            delta: DeltaLog::new(&store.location).map_err(|e| e.to_string()),
            store,
            roll,
            enricher,
            metrics,
            stop,
            segments: BTreeMap::new(),
            dead: BTreeMap::new(),
            next_seq: HashMap::new(),
            stats: RunStats::default(),
            written: WriteStats::default(),
            limiter: Limiter::default(),
            max_attempts: None,
        }
    }

    /// Fails the run after `attempts` failed attempts of a roll instead of retrying forever
    /// (the in-process bus: nothing would replay what it gave up).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Makes `lp` ready for the message at `offset`: rolls a segment forced to end before it,
    /// opens one from the ledger. False when asked to stop while the ledger was unreadable (the
    /// message is then not taken).
    ///
    /// # Errors
    /// A corrupt ledger entry (retrying cannot fix it).
    pub fn prepare(
        &mut self,
        lp: &LogPartition,
        table: Table,
        offset: i64,
        log: &mut impl Log,
    ) -> Result<bool> {
        if self.segments.get(lp).is_some_and(|s| s.ends_before(offset)) {
            self.roll(lp, log, false)?;
        }
        if self.segments.contains_key(lp) {
            return Ok(true);
        }
        let Some(range) = self.ledger_range(lp)? else { return Ok(false) };
        let seg = Segment::open(lp.clone(), table, offset, range);
        if seg.forced_end.is_some() {
            let r = seg.range();
            tracing::info!(partition = %lp, start = r.start, end = r.end, "replaying a range that was being written when the last run stopped");
        }
        self.segments.insert(lp.clone(), seg);
        Ok(true)
    }

    /// The ledger's last range for `lp` (none without a ledger), retried with backoff while
    /// the store cannot be read; `None` when asked to stop meanwhile.
    fn ledger_range(&self, lp: &LogPartition) -> Result<Option<Option<Range>>> {
        let Some(ledger) = &self.ledger else { return Ok(Some(None)) };
        let mut attempt = 0u32;
        loop {
            match ledger.range(lp) {
                Ok(r) => return Ok(Some(r)),
                Err(e) if e.is_retryable() => {
                    self.metrics.store_error();
                    if attempt == 0 || self.limiter.allow("ledger") {
                        tracing::error!(partition = %lp, attempt, "reading the ledger failed, retrying: {e}");
                    }
                    attempt += 1;
                    if !self.backoff(attempt) {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the message at `offset` of `lp` (after [`Self::prepare`]): enriched and buffered,
    /// or, rejected, kept for the dead letters. Returns the enriched batches.
    ///
    /// # Errors
    /// When a batch lacks its time column.
    pub fn take(
        &mut self,
        lp: &LogPartition,
        table: Table,
        offset: i64,
        decoded: Decoded,
        raw: Raw,
    ) -> Result<Vec<RecordBatch>> {
        let enriched = decoded.and_then(|(env, batches)| match self.enricher {
            None => Ok((env, batches)),
            Some(e) => batches
                .iter()
                .map(|b| e.enrich(table, b))
                .collect::<Result<Vec<_>>>()
                .map(|b| (env, b))
                .map_err(|e| ("enrich", e.to_string())),
        });
        match enriched {
            Ok((env, batches)) => {
                if let Some(env) = &env {
                    self.check_sequence(env);
                }
                let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                self.metrics.message(table.name(), rows);
                self.stats.messages += 1;
                if let Some(s) = self.segments.get_mut(lp) {
                    s.push(offset, &batches)?;
                }
                Ok(batches)
            }
            Err((label, reason)) => {
                self.metrics.dead_letter(label);
                self.stats.dead_letters += 1;
                tracing::warn!(partition = %lp, offset, reason = %reason, "message rejected (to the dead letters)");
                if let Some(s) = self.segments.get_mut(lp) {
                    s.push(offset, &[])?;
                }
                self.dead.entry(lp.clone()).or_default().push(DeadLetter { raw, reason, offset });
                Ok(Vec::new())
            }
        }
    }

    fn check_sequence(&mut self, env: &Envelope) {
        self.metrics.producer_dropped(&env.node, env.dropped_rows);
        let next = self.next_seq.entry((env.producer.clone(), env.table)).or_insert(env.seq);
        if env.seq > *next {
            let missing = env.seq - *next;
            self.metrics.gap(env.table.name(), missing);
            tracing::warn!(
                node = %env.node,
                producer = %env.producer,
                table = env.table.name(),
                missing,
                producer_dropped_rows = env.dropped_rows,
                "batches missing from the producer's sequence (lost before Kafka)"
            );
        }
        // A replayed (older) message leaves the expectation where it is.
        if env.seq >= *next {
            *next = env.seq + 1;
        }
    }

    /// Rolls every segment that is due, and updates the buffered-rows gauge.
    ///
    /// # Errors
    /// As [`Self::roll`].
    pub fn roll_due(&mut self, log: &mut impl Log) -> Result<()> {
        let due: Vec<LogPartition> = self
            .segments
            .iter()
            .filter(|(_, s)| s.due(&self.roll))
            .map(|(k, _)| k.clone())
            .collect();
        for lp in due {
            self.roll(&lp, log, false)?;
        }
        self.metrics.buffered(self.segments.values().map(Segment::rows).sum());
        Ok(())
    }

    /// Writes what is buffered at the end of a run and returns what the run did. A segment
    /// forced to a range it has not reached yet is left to the next run, which replays it whole.
    ///
    /// # Errors
    /// As [`Self::roll`].
    pub fn finish(&mut self, log: &mut impl Log) -> Result<(RunStats, WriteStats)> {
        let keys: Vec<LogPartition> = self.segments.keys().cloned().collect();
        for lp in keys {
            let complete =
                self.segments.get(&lp).is_some_and(|s| s.forced_end.is_none() || s.due(&self.roll));
            if complete {
                self.roll(&lp, log, true)?;
            }
        }
        Ok((self.stats, self.written.clone()))
    }

    /// Rolls every open segment now, whatever the policy says.
    ///
    /// # Errors
    /// As [`Self::roll`].
    pub fn roll_all(&mut self, log: &mut impl Log) -> Result<()> {
        let keys: Vec<LogPartition> = self.segments.keys().cloned().collect();
        for lp in keys {
            self.roll(&lp, log, false)?;
        }
        Ok(())
    }

    /// Forgets the open segment of a partition this process no longer owns: its next owner
    /// replays it from the committed offset.
    pub fn drop_partition(&mut self, lp: &LogPartition) {
        if let Some(s) = self.segments.remove(lp) {
            tracing::info!(partition = %lp, rows = s.rows(), "dropping the open segment of a revoked partition; its next owner replays it");
        }
        self.dead.remove(lp);
    }

    /// Sleeps before attempt `attempt` unless asked to stop; false when asked to stop.
    fn backoff(&self, attempt: u32) -> bool {
        let d = Duration::from_millis(200u64 << attempt.min(7)); // 0.2 s … 25.6 s
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stop.load(Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Writes the segment of `lp`, hands its dead letters over and commits. A retryable failure
    /// is retried until the roll succeeds or a stop is asked for; at shutdown, three attempts.
    ///
    /// # Errors
    /// [`Error::Roll`] at once for a failure that is not retryable, and after the attempts set
    /// by [`Self::with_max_attempts`] for one that is; the range stays uncommitted.
    pub fn roll(&mut self, lp: &LogPartition, log: &mut impl Log, at_shutdown: bool) -> Result<()> {
        let Some(seg) = self.segments.remove(lp) else { return Ok(()) };
        let dead = self.dead.remove(lp).unwrap_or_default();
        let Range { start, end, .. } = seg.range();
        let mut attempt = 0u32;
        let mut written: Option<Written> = None;
        let mut in_log = false;
        let mut dead_sent = dead.is_empty();
        loop {
            let result = (|| -> std::result::Result<(), (&'static str, Error)> {
                if !dead_sent {
                    log.dead_letters(lp, &dead).map_err(|e| ("dead letters", e))?;
                    dead_sent = true;
                }
                // A replay of a range the last run was writing: if its commit made it into the
                // table (the run died before the Kafka commit), it is not written again; the
                // files stay as committed, even if compacted since.
                if written.is_none() && seg.forced_end.is_some() && self.ledger.is_some() {
                    let delta = self.delta_log(seg.table).map_err(|e| ("store", e))?;
                    let committed = delta
                        .txn_version(seg.table, &app_id(lp))
                        .map_err(|e| ("store", e))?
                        .is_some_and(|v| v >= end);
                    if committed {
                        tracing::info!(partition = %lp, start, end, "this range was committed to the table by the last run; committing its offsets only");
                        written = Some(Written::default());
                        in_log = true;
                    }
                }
                if written.is_none() {
                    let w =
                        seg.write(&self.store, self.ledger.as_ref()).map_err(|e| ("store", e))?;
                    self.metrics.written(seg.table.name(), w.files, w.rows, w.bytes);
                    self.written.add(seg.table, &w);
                    written = Some(w);
                }
                if !in_log {
                    let files = written.as_ref().map(|w| w.data.as_slice()).unwrap_or_default();
                    if !files.is_empty() {
                        let delta = self.delta_log(seg.table).map_err(|e| ("store", e))?;
                        // The range's end as the partition's transaction version, in the same
                        // commit: what a replay checks (above).
                        let txns = match self.ledger {
                            Some(_) => vec![(app_id(lp), end)],
                            None => Vec::new(),
                        };
                        delta.append(seg.table, files, &txns).map_err(|e| ("store", e))?;
                    }
                    in_log = true;
                }
                log.commit(lp, end + 1).map_err(|e| ("commit", e))
            })();
            let (step, e) = match result {
                Ok(()) => {
                    self.metrics.committed(seg.newest_us());
                    self.stats.segments += 1;
                    let w = written.unwrap_or_default();
                    tracing::debug!(partition = %lp, start, end, rows = w.rows, files = w.files, "segment committed");
                    return Ok(());
                }
                Err(failed) => failed,
            };
            match step {
                "store" => self.metrics.store_error(),
                "commit" => self.metrics.commit_error(),
                _ => self.metrics.dead_letter_error(),
            }
            attempt += 1;
            let retryable = e.is_retryable();
            let out_of_attempts = self.max_attempts.is_some_and(|m| attempt >= m);
            if !retryable || out_of_attempts {
                self.metrics.roll_failed(retryable);
                tracing::error!(partition = %lp, start, end, attempt, step, retryable, "giving up on this range (it stays uncommitted; the next run replays it): {e}");
                return Err(Error::Roll {
                    partition: lp.to_string(),
                    step,
                    attempts: attempt,
                    source: Box::new(e),
                });
            }
            if attempt == 1 || self.limiter.allow("roll") {
                tracing::error!(partition = %lp, start, end, attempt, step, "failed, retrying (offsets stay uncommitted): {e}");
            }
            if at_shutdown && attempt >= 3 {
                tracing::error!(partition = %lp, start, end, "giving up at shutdown; the next run replays this range");
                return Ok(());
            }
            if !self.backoff(attempt) && !at_shutdown {
                tracing::info!(partition = %lp, start, end, "stopping with this range uncommitted; the next run replays it");
                return Ok(());
            }
            log.between_retries();
        }
    }
}

impl Writer<'_> {
    /// The tables' Delta log, or why it could not be opened.
    fn delta_log(&self, table: Table) -> Result<&DeltaLog> {
        self.delta.as_ref().map_err(|what| Error::Delta {
            table: table.name(),
            what: what.clone(),
            retryable: false,
        })
    }
}

/// The application id of log partition `lp` in the tables' Delta logs: its transaction version
/// is the last offset committed to the table.
pub fn app_id(lp: &LogPartition) -> String {
    format!("podwire-ingest:{}-{}", lp.topic, lp.partition)
}

/// The in-process bus of `podwire standalone`: capture's batches go through the same segments,
/// enrichment and files as ingest's Kafka messages, one log partition per table
/// (`<name>.<table>`, offsets counting batches from 0).
///
/// Nothing is committed anywhere: an input is read again from its start, and since file names
/// derive from the name and the offset range, a run on the same input with a size-only roll
/// policy rewrites the same files instead of adding copies.
pub struct InProcess<'a> {
    writer: Writer<'a>,
    name: String,
    next: HashMap<Table, i64>,
}

/// [`Log`] of the in-process bus: nothing to commit to; a rejected batch (enrichment failed: a
/// bug) is logged and counted.
struct NoLog;

impl Log for NoLog {
    fn dead_letters(&mut self, lp: &LogPartition, dead: &[DeadLetter]) -> Result<()> {
        for d in dead {
            tracing::error!(partition = %lp, offset = d.offset, reason = %d.reason, "batch not written");
        }
        Ok(())
    }

    fn commit(&mut self, _: &LogPartition, _: i64) -> Result<()> {
        Ok(())
    }
}

impl<'a> InProcess<'a> {
    /// A bus named `name` (the files' prefix) into `store`.
    pub fn new(
        name: &str,
        store: StoreConfig,
        roll: RollPolicy,
        enricher: Option<&'a Enricher>,
        metrics: &'a IngestMetrics,
        stop: &'a AtomicBool,
    ) -> Self {
        InProcess {
            writer: Writer::new(store, roll, false, enricher, metrics, stop).with_max_attempts(3),
            name: name.to_string(),
            next: HashMap::new(),
        }
    }

    /// Sends one batch of `table`; returns it enriched.
    ///
    /// # Errors
    /// When a batch lacks its time column.
    pub fn send(&mut self, table: Table, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let lp = LogPartition { topic: format!("{}.{}", self.name, table.name()), partition: 0 };
        let next = self.next.entry(table).or_insert(0);
        let offset = *next;
        *next += 1;
        self.writer.prepare(&lp, table, offset, &mut NoLog)?;
        let enriched =
            self.writer.take(&lp, table, offset, Ok((None, vec![batch])), Raw::default())?;
        self.writer.roll_due(&mut NoLog)?;
        Ok(enriched)
    }

    /// Writes the segments that are due by age.
    ///
    /// # Errors
    /// As [`Writer::roll`].
    pub fn tick(&mut self) -> Result<()> {
        self.writer.roll_due(&mut NoLog)
    }

    /// Writes everything buffered now.
    ///
    /// # Errors
    /// As [`Writer::roll`].
    pub fn flush(&mut self) -> Result<()> {
        self.writer.roll_all(&mut NoLog)
    }

    /// Writes everything buffered; what was written.
    ///
    /// # Errors
    /// As [`Writer::roll`].
    pub fn finish(mut self) -> Result<(RunStats, WriteStats)> {
        self.writer.finish(&mut NoLog)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use podwire_schemas::connections::{ConnectionRecord, ConnectionsBuilder, outcome, protocol};
    use std::fs::File;

    fn row(start_s: i64) -> ConnectionRecord {
        ConnectionRecord {
            start_ns: start_s * 1_000_000_000,
            end_ns: start_s * 1_000_000_000,
            conn_id: start_s,
            protocol: protocol::UDP,
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: 1,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: 2,
            outcome: outcome::NO_ANSWER,
            node: "n".into(),
            ..ConnectionRecord::default()
        }
    }

    /// A connections batch, one row per start second.
    pub(crate) fn batch(starts: &[i64]) -> RecordBatch {
        let mut b = ConnectionsBuilder::default();
        for s in starts {
            b.append(&row(*s));
        }
        b.finish().unwrap()
    }

    fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut f: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        f.sort();
        f
    }

    #[test]
    fn the_bus_splits_by_hour_sorts_rolls_files_and_rewrites_the_same_names() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = IngestMetrics::new();
        let stop = AtomicBool::new(false);
        let run = || {
            let mut config = StoreConfig::new(dir.path());
            config.max_rows_per_file = 3;
            let roll = RollPolicy { max_bytes: usize::MAX, max_age: Duration::MAX };
            let mut bus = InProcess::new("t", config, roll, None, &metrics, &stop);
            // Hour 0: 5 rows, out of order, in two batches; hour 1: 1 row.
            bus.send(Table::Connections, batch(&[30, 10, 3_700])).unwrap();
            bus.send(Table::Connections, batch(&[20, 50, 40])).unwrap();
            bus.finish().unwrap()
        };
        let (stats, written) = run();
        assert_eq!((stats.messages, stats.segments, stats.dead_letters), (2, 1, 0));
        assert_eq!(written.rows["connections"], 6);
        let h0 = dir.path().join("connections/date=1970-01-01/hour=00");
        let h1 = dir.path().join("connections/date=1970-01-01/hour=01");
        let first = files(&h0);
        assert_eq!(first.len(), 2, "5 rows at 3 per file: {first:?}");
        assert!(first.iter().all(|f| f.extension().unwrap() == "parquet"), "no temp files left");
        let name = first[0].file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, format!("t.connections-0-g0-{:020}-{:020}-00000.parquet", 0, 1));
        assert_eq!(files(&h1).len(), 1);
        assert!(!dir.path().join("_ingest").exists(), "no ledger for the in-process bus");
        let mut seen = Vec::new();
        for f in &first {
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(f).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            for batch in r {
                let ts = crate::event_times(Table::Connections, &batch.unwrap()).unwrap().clone();
                let v: Vec<i64> = ts.values().to_vec();
                assert!(v.windows(2).all(|w| w[0] <= w[1]), "sorted by time: {v:?}");
                seen.extend(v);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![10_000_000, 20_000_000, 30_000_000, 40_000_000, 50_000_000]);
        // The same input again: the same files, replaced, none added.
        run();
        assert_eq!(files(&h0), first);
    }

    /// A [`Log`] whose commits fail with the queued errors first.
    struct FailingLog {
        failures: Vec<Error>,
        commits: Vec<i64>,
    }

    impl Log for FailingLog {
        fn dead_letters(&mut self, _: &LogPartition, _: &[DeadLetter]) -> Result<()> {
            Ok(())
        }

        fn commit(&mut self, _: &LogPartition, next: i64) -> Result<()> {
            if let Some(e) = self.failures.pop() {
                return Err(e);
            }
            self.commits.push(next);
            Ok(())
        }
    }

    /// Writes one message at offset 7 of a partition and rolls it through `log`.
    fn roll_through(
        dir: &std::path::Path,
        metrics: &IngestMetrics,
        log: &mut FailingLog,
    ) -> Result<()> {
        let stop = AtomicBool::new(false);
        let roll = RollPolicy { max_bytes: usize::MAX, max_age: Duration::MAX };
        let mut w = Writer::new(StoreConfig::new(dir), roll, false, None, metrics, &stop);
        let lp = LogPartition { topic: "podwire.connections".into(), partition: 0 };
        assert!(w.prepare(&lp, Table::Connections, 7, log)?);
        w.take(&lp, Table::Connections, 7, Ok((None, vec![batch(&[10])])), Raw::default())?;
        w.roll(&lp, log, false)
    }

    fn counter(metrics: &IngestMetrics, line: &str) -> bool {
        metrics.encode().lines().any(|l| l == line)
    }

    #[test]
    fn a_retryable_commit_failure_is_retried_without_writing_again() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = IngestMetrics::new();
        let outage =
            || Error::ObjectStore { url: "s3://b".into(), what: "connection refused".into() };
        let mut log = FailingLog { failures: vec![outage(), outage()], commits: Vec::new() };
        roll_through(dir.path(), &metrics, &mut log).unwrap();
        assert_eq!(log.commits, vec![8], "committed past offset 7 once, after two failures");
        assert!(counter(&metrics, "podwire_ingest_commit_errors_total 2"), "{}", metrics.encode());
        assert!(counter(&metrics, "podwire_ingest_files_written_total{table=\"connections\"} 1"));
    }

    #[test]
    fn a_failure_retrying_cannot_fix_stops_at_once_and_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = IngestMetrics::new();
        let corrupt = Error::Ledger { path: "x".into(), what: "not podwire's".into() };
        let mut log = FailingLog { failures: vec![corrupt], commits: Vec::new() };
        let started = Instant::now();
        let e = roll_through(dir.path(), &metrics, &mut log).unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(300), "no backoff before giving up");
        match &e {
            Error::Roll { step, attempts, source, .. } => {
                assert_eq!((*step, *attempts), ("commit", 1));
                assert!(
                    matches!(**source, Error::Ledger { .. }),
                    "the cause kept typed: {source:?}"
                );
            }
            e => panic!("expected Error::Roll, got {e:?}"),
        }
        assert!(log.commits.is_empty());
        assert!(
            counter(&metrics, "podwire_ingest_roll_failures_total{reason=\"not_retryable\"} 1"),
            "{}",
            metrics.encode()
        );
    }

    #[test]
    fn a_replayed_range_already_in_the_table_is_not_written_again_even_after_a_compaction() {
        use crate::delta::DeltaLog;
        let dir = tempfile::tempdir().unwrap();
        let metrics = IngestMetrics::new();
        let stop = AtomicBool::new(false);
        let roll = RollPolicy { max_bytes: usize::MAX, max_age: Duration::MAX };
        let lp = LogPartition { topic: "podwire.connections".into(), partition: 0 };
        let run = |log: &mut FailingLog| -> Result<()> {
            let store = StoreConfig::new(dir.path());
            let mut w = Writer::new(store, roll, true, None, &metrics, &stop);
            assert!(w.prepare(&lp, Table::Connections, 7, log)?);
            w.take(&lp, Table::Connections, 7, Ok((None, vec![batch(&[10, 20])])), Raw::default())?;
            w.roll(&lp, log, false)
        };
        // The first run dies between the table's commit and the Kafka commit.
        let corrupt = Error::Ledger { path: "x".into(), what: "stop here".into() };
        let mut log = FailingLog { failures: vec![corrupt], commits: Vec::new() };
        run(&mut log).unwrap_err();
        let delta = DeltaLog::new(&StoreConfig::new(dir.path()).location).unwrap();
        assert_eq!(delta.txn_version(Table::Connections, &app_id(&lp)).unwrap(), Some(7));
        let files = delta.files(Table::Connections).unwrap().unwrap();
        assert_eq!(files.len(), 1);
        // Meanwhile the hour is compacted: its file replaced by another of the same rows.
        let merged = crate::store::write_sorted(
            &StoreConfig::new(dir.path()),
            Table::Connections,
            0,
            "compacted",
            0,
            vec![batch(&[10, 20])],
        )
        .unwrap();
        delta.replace(Table::Connections, &files, &merged.data, "h", 1).unwrap();
        // The replay commits the offsets and adds nothing: the rows stay once.
        let mut log = FailingLog { failures: Vec::new(), commits: Vec::new() };
        run(&mut log).unwrap();
        assert_eq!(log.commits, vec![8]);
        let now = delta.files(Table::Connections).unwrap().unwrap();
        assert_eq!(now.len(), 1, "{now:?}");
        assert_eq!(now[0].path, merged.data[0].path);
        assert_eq!(now[0].rows, Some(2));
    }
}
