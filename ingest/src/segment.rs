//! Offset-range segments: how ingest turns a partition of a message log into store files with
//! nothing lost and nothing doubled, whatever moment it is killed at.
//!
//! Messages of one log partition (a Kafka topic-partition) accumulate in a [`Segment`] until it
//! is rolled (by size or age). Rolling one:
//!
//! 1. records the segment's offset range `[start, end]` in the partition's [`Ledger`] entry
//!    (fsync, rename);
//! 2. writes its rows as files named `<topic>-<partition>-<start>-<end>-<n>.parquet`, one set
//!    per hour folder ([`crate::store::write_sorted`]: temporary name, fsync, rename);
//! 3. only then commits offset `end + 1` to the log.
//!
//! A process killed anywhere restarts at the committed offset. If that is the `start` of the
//! range in the ledger, the range was being written: the new segment is forced to end at the
//! same `end`, so it produces the same files under the same names and replaces whatever half of
//! them was already there. Any other committed offset means the ledger's range is done. Files
//! therefore never hold a row twice, and a row is committed only once it is in a durable file.
//!
//! (Resetting the consumer group's offsets to an earlier point replays into new ranges and
//! does duplicate rows; that is an operator's explicit choice.)
use crate::error::{Error, Result};
use crate::location::Location;
use crate::store::{StoreConfig, Written, split_by_hour, write_sorted};
use arrow::array::RecordBatch;
use podwire_schemas::Table;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A log partition: where a segment's messages come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogPartition {
    /// Topic (or, for the in-process bus, a name).
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl std::fmt::Display for LogPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// The per-partition record of the range being written, under `STORE/_ingest/` (in the store,
/// so that an ingest with no disk of its own, writing to a bucket, keeps it too).
#[derive(Debug, Clone)]
pub struct Ledger {
    location: Location,
}

impl Ledger {
    /// The ledger of the store at `location`.
    pub fn new(location: &Location) -> Self {
        Ledger { location: location.clone() }
    }

    fn name(p: &LogPartition) -> String {
        format!("_ingest/{}-{}.range", p.topic, p.partition)
    }

    /// The last range recorded for `p`, if any.
    ///
    /// # Errors
    /// When the entry exists but cannot be read or parsed (a corrupt ledger is not guessed at).
    pub fn range(&self, p: &LogPartition) -> Result<Option<Range>> {
        let name = Self::name(p);
        let text = match &self.location {
            Location::Local(root) => {
                let path = root.join(&name);
                match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => return Err(Error::Io { path, source }),
                }
            }
            Location::Bucket(b) => match b.get(&name)? {
                Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                None => return Ok(None),
            },
        };
        let mut it = text.split_whitespace().map(str::parse::<i64>);
        match (it.next(), it.next(), it.next()) {
            (Some(Ok(generation)), Some(Ok(start)), Some(Ok(end)))
                if start <= end && generation >= 0 =>
            {
                Ok(Some(Range { generation, start, end }))
            }
            _ => Err(Error::Ledger {
                path: PathBuf::from(format!("{}/{name}", self.location)),
                what: format!(
                    "expected `GENERATION START END`, found {text:?}; delete it only if no ingest runs"
                ),
            }),
        }
    }

    /// Records `[start, end]` for `p`, durably.
    ///
    /// # Errors
    /// When the entry cannot be written.
    pub fn record(&self, p: &LogPartition, r: Range) -> Result<()> {
        let line = format!("{} {} {}\n", r.generation, r.start, r.end);
        let root = match &self.location {
            Location::Local(root) => root,
            Location::Bucket(b) => return b.put(&Self::name(p), line.into_bytes()),
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let dir = root.join("_ingest");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = root.join(Self::name(p));
        let tmp = path.with_extension("range.tmp");
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(line.as_bytes()).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// An offset range of a log partition, in a generation: offsets that go back (the topic was
/// deleted and created again, or the group's offsets were reset) start a new generation, so the
/// new range's files cannot take the names of older ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Generation, from 0.
    pub generation: i64,
    /// First offset.
    pub start: i64,
    /// Last offset.
    pub end: i64,
}

/// When a segment rolls.
#[derive(Debug, Clone, Copy)]
pub struct RollPolicy {
    /// Arrow bytes buffered.
    pub max_bytes: usize,
    /// Time since the segment's first message (freshness: rows become queryable after this).
    pub max_age: Duration,
}

impl Default for RollPolicy {
    fn default() -> Self {
        RollPolicy { max_bytes: 128 << 20, max_age: Duration::from_secs(5) }
    }
}

/// The open segment of one log partition.
#[derive(Debug)]
pub struct Segment {
    /// Where its messages come from.
    pub source: LogPartition,
    /// Its table (one topic, one table).
    pub table: Table,
    /// Generation of the partition's offsets (see [`Range`]).
    pub generation: i64,
    /// First offset.
    pub start: i64,
    /// Last offset taken.
    pub last: i64,
    /// The end a replay must reproduce (from the ledger).
    pub forced_end: Option<i64>,
    opened: Instant,
    hours: BTreeMap<i64, Vec<RecordBatch>>,
    bytes: usize,
    rows: u64,
    newest_us: Option<i64>,
}

impl Segment {
    /// A segment starting at `offset`, given the ledger's last range for the partition.
    pub fn open(source: LogPartition, table: Table, offset: i64, ledger: Option<Range>) -> Self {
        let (generation, start, forced_end) = match ledger {
            // The range was being written when the last run stopped: write it again, whole.
            Some(r) if r.start <= offset && offset <= r.end => (r.generation, r.start, Some(r.end)),
            // Offsets went back: a new generation.
            Some(r) if offset < r.start => {
                tracing::warn!(
                    partition = %source,
                    offset,
                    ledger_start = r.start,
                    generation = r.generation + 1,
                    "offsets went back (topic re-created or group offsets reset): new file generation"
                );
                (r.generation + 1, offset, None)
            }
            Some(r) => (r.generation, offset, None),
            None => (0, offset, None),
        };
        Segment {
            source,
            table,
            generation,
            start,
            last: offset.max(start),
            forced_end,
            opened: Instant::now(),
            hours: BTreeMap::new(),
            bytes: 0,
            rows: 0,
            newest_us: None,
        }
    }

    /// Whether the message at `offset` belongs to the next segment (this one was forced to end
    /// before it).
    pub fn ends_before(&self, offset: i64) -> bool {
        self.forced_end.is_some_and(|e| offset > e)
    }

    /// Takes the (enriched) rows of the message at `offset`; an empty list for a message that
    /// went to the dead letters.
    ///
    /// # Errors
    /// When a batch lacks its time column.
    pub fn push(&mut self, offset: i64, batches: &[RecordBatch]) -> Result<()> {
        self.last = self.last.max(offset);
        for b in batches {
            self.rows += b.num_rows() as u64;
            self.bytes += b.get_array_memory_size();
            let newest = crate::event_times(self.table, b)?.values().iter().max().copied();
            self.newest_us = self.newest_us.max(newest);
            for (hour, part) in split_by_hour(self.table, b)? {
                self.hours.entry(hour).or_default().push(part);
            }
        }
        Ok(())
    }

    /// Rows buffered.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The newest event time in it, µs since the epoch.
    pub fn newest_us(&self) -> Option<i64> {
        self.newest_us
    }

    /// Whether it should be written now.
    pub fn due(&self, policy: &RollPolicy) -> bool {
        match self.forced_end {
            Some(e) => self.last >= e,
            None => self.bytes >= policy.max_bytes || self.opened.elapsed() >= policy.max_age,
        }
    }

    /// The offset range it covers.
    pub fn range(&self) -> Range {
        Range {
            generation: self.generation,
            start: self.start,
            end: self.forced_end.unwrap_or(self.last),
        }
    }

    /// The file name stem of its files: `<topic>-<partition>-g<generation>-<start>-<end>`.
    pub fn stem(&self) -> String {
        let r = self.range();
        format!(
            "{}-{}-g{}-{:020}-{:020}",
            self.source.topic, self.source.partition, r.generation, r.start, r.end
        )
    }

    /// Steps 1 and 2 of the module documentation: ledger (when there is one), then files. The segment stays intact
    /// so a failed write can be retried; the caller commits `range().1 + 1` after success.
    ///
    /// # Errors
    /// When the ledger or a file cannot be written.
    pub fn write(&self, store: &StoreConfig, ledger: Option<&Ledger>) -> Result<Written> {
        if let Some(ledger) = ledger {
            ledger.record(&self.source, self.range())?;
        }
        let stem = self.stem();
        let mut total = Written::default();
        for (hour, batches) in &self.hours {
            total.extend(write_sorted(store, self.table, *hour, &stem, 0, batches.clone())?);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lp() -> LogPartition {
        LogPartition { topic: "podwire.dns".into(), partition: 3 }
    }

    #[test]
    fn ledger_round_trip_and_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::new(&Location::Local(dir.path().into()));
        assert_eq!(l.range(&lp()).unwrap(), None);
        let r = Range { generation: 2, start: 10, end: 20 };
        l.record(&lp(), r).unwrap();
        assert_eq!(l.range(&lp()).unwrap(), Some(r));
        std::fs::write(dir.path().join("_ingest/podwire.dns-3.range"), "x").unwrap();
        let err = l.range(&lp()).unwrap_err().to_string();
        assert!(err.contains("GENERATION START END"), "{err}");
    }

    #[test]
    fn a_replay_from_the_ledger_start_reproduces_the_range() {
        // Restarted at the start of the recorded range: forced to the same end.
        let last = Some(Range { generation: 1, start: 10, end: 20 });
        let s = Segment::open(lp(), Table::Dns, 10, last);
        assert_eq!(s.range(), Range { generation: 1, start: 10, end: 20 });
        assert!(!s.ends_before(20) && s.ends_before(21));
        assert_eq!(s.stem(), format!("podwire.dns-3-g1-{:020}-{:020}", 10, 20));
        // Restarted after it (committed): a new range, same generation.
        let s = Segment::open(lp(), Table::Dns, 21, last);
        assert_eq!((s.generation, s.start, s.forced_end), (1, 21, None));
        // Offsets went back (topic re-created): a new generation, so no file name is reused.
        let s = Segment::open(lp(), Table::Dns, 0, last);
        assert_eq!((s.generation, s.start, s.forced_end), (2, 0, None));
    }
}
