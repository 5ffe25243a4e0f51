//! `podwire ingest` over Kafka: a consumer group reads the table topics, checks and decodes each
//! message ([`podwire_schemas::wire`]), enriches its rows and writes them through offset-range
//! [`Segment`]s, committing offsets only after the files are durable.
//!
//! - A message that fails its checks goes to the dead-letter topic (`<prefix>dead-letter`) with
//!   its original key, value and headers plus `podwire.dlq.reason`, `podwire.dlq.topic`,
//!   `podwire.dlq.partition` and `podwire.dlq.offset`; it is counted by reason, and the rest of
//!   the stream goes on. Dead letters are flushed before the offsets that cover them are
//!   committed.
//! - A failed segment write (disk full, store unreachable) or commit is retried with backoff,
//!   forever, without committing; nothing newer is committed meanwhile. If the pause outlasts the
//!   group's `max.poll.interval.ms` the group moves the partition on, and the ledger makes the
//!   next owner write the same files (see [`crate::segment`]).
//! - Revoked partitions drop their open segments: the next owner starts at the committed offset.
//! - Gaps in a producer's batch sequence (batches lost before they reached Kafka) are counted.
use crate::enrich::Enricher;
use crate::error::{Error, Result};
use crate::metrics::IngestMetrics;
use crate::segment::{LogPartition, RollPolicy};
use crate::store::StoreConfig;
pub use crate::writer::RunStats;
use crate::writer::{DeadLetter, Log, Raw, Writer};
use podwire_kafka::{ClientSettings, WarnLimit};
use podwire_schemas::Table;
use podwire_schemas::wire::{self, WireError};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{
    BorrowedMessage, DeliveryResult, Header, Headers as _, Message as _, OwnedHeaders,
};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Ingest settings.
#[derive(Debug, Clone)]
pub struct KafkaIngestConfig {
    /// Brokers, librdkafka properties (TLS, SASL, …) and the largest message accepted (and
    /// produced to the dead-letter topic).
    pub client: ClientSettings,
    /// Consumer group id.
    pub group: String,
    /// Topics are `<prefix><table>`; the dead letters go to `<prefix>dead-letter`.
    pub topic_prefix: String,
    /// Tables to ingest.
    pub tables: Vec<Table>,
    /// When segments roll.
    pub roll: RollPolicy,
    /// The store.
    pub store: StoreConfig,
}

impl KafkaIngestConfig {
    /// The topic of `table`.
    pub fn topic(&self, table: Table) -> String {
        wire::topic(&self.topic_prefix, table)
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic(&self) -> String {
        wire::dead_letter_topic(&self.topic_prefix)
    }
}

/// Header names added to dead letters.
pub mod dlq_header {
    /// Why the message was rejected.
    pub const REASON: &str = "podwire.dlq.reason";
    /// Its topic.
    pub const TOPIC: &str = "podwire.dlq.topic";
    /// Its partition.
    pub const PARTITION: &str = "podwire.dlq.partition";
    /// Its offset.
    pub const OFFSET: &str = "podwire.dlq.offset";
}

struct ConsumerCtx {
    revoked: Mutex<Vec<LogPartition>>,
    assigned: Mutex<Vec<LogPartition>>,
    /// Client errors (the broker away, …).
    warn: WarnLimit,
    /// Failed polls.
    poll_warn: WarnLimit,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        podwire_kafka::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.warn.due() {
            tracing::warn!("kafka consumer: {error}: {reason}");
        }
    }
}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (list, what) = match rebalance {
            Rebalance::Revoke(tpl) => (&self.revoked, ("revoked", *tpl)),
            Rebalance::Assign(tpl) => (&self.assigned, ("assigned", *tpl)),
            Rebalance::Error(e) => {
                tracing::warn!("rebalance error: {e}");
                return;
            }
        };
        let (what, tpl) = what;
        let parts: Vec<LogPartition> = tpl
            .elements()
            .iter()
            .map(|e| LogPartition { topic: e.topic().to_string(), partition: e.partition() })
            .collect();
        tracing::info!(
            partitions = %parts.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            "partitions {what}"
        );
        list.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(parts);
    }
}

#[derive(Default)]
struct ProducerCtx {
    failed: AtomicU64,
}

impl ClientContext for ProducerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        podwire_kafka::log(level, fac, message);
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Relaxed);
            tracing::warn!("dead letter not delivered: {e}");
        }
    }
}

/// The metrics label of a wire error.
fn reason_label(e: &WireError) -> &'static str {
    match e {
        WireError::MissingHeader(_) => "missing_header",
        WireError::BadHeader { .. } => "bad_header",
        WireError::Version { .. } => "version",
        WireError::Ipc(_) => "ipc",
        WireError::Schema { .. } => "schema",
        WireError::Rows { .. } => "rows",
    }
}

/// The consumer loop. See the module documentation.
pub struct Ingest<'a> {
    config: &'a KafkaIngestConfig,
    metrics: &'a IngestMetrics,
    stop: &'a AtomicBool,
    consumer: BaseConsumer<ConsumerCtx>,
    dlq: BaseProducer<ProducerCtx>,
    topics: HashMap<String, Table>,
    /// Segments, enrichment and files: shared with the in-process bus.
    writer: Writer<'a>,
    /// The next offset to take per assigned partition (its committed offset at assignment,
    /// then one past the last message taken); `None` when nothing was ever committed.
    expected: HashMap<LogPartition, Option<i64>>,
    /// Seeks back to `expected` made for the same offset (to give up on offsets that are gone).
    seeks: HashMap<LogPartition, (i64, u32)>,
}

impl<'a> Ingest<'a> {
    /// Connects (lazily: the broker may be down) and subscribes.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration.
    pub fn new(
        config: &'a KafkaIngestConfig,
        enricher: &'a Enricher,
        metrics: &'a IngestMetrics,
        stop: &'a AtomicBool,
    ) -> Result<Self> {
        let settings = &config.client;
        let fetch = settings.message_limit();
        let mut cc = settings.config("podwire-ingest");
        cc.set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.message.max.bytes", &fetch)
            .set("max.partition.fetch.bytes", &fetch);
        settings.apply_options(&mut cc);
        let ctx = ConsumerCtx {
            revoked: Mutex::default(),
            assigned: Mutex::default(),
            warn: WarnLimit::default(),
            poll_warn: WarnLimit::default(),
        };
        let consumer: BaseConsumer<ConsumerCtx> = cc
            .create_with_context(ctx)
            .map_err(|source| Error::Kafka { what: "creating the consumer".into(), source })?;
        let mut pc = settings.config("podwire-ingest-dlq");
        pc.set("message.max.bytes", &fetch).set("acks", "all");
        settings.apply_options(&mut pc);
        let dlq: BaseProducer<ProducerCtx> =
            pc.create_with_context(ProducerCtx::default()).map_err(|source| Error::Kafka {
                what: "creating the dead-letter producer".into(),
                source,
            })?;
        let topics: HashMap<String, Table> =
            config.tables.iter().map(|t| (config.topic(*t), *t)).collect();
        let names: Vec<&str> = topics.keys().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|source| Error::Kafka { what: format!("subscribing to {names:?}"), source })?;
        Ok(Ingest {
            config,
            metrics,
            stop,
            consumer,
            dlq,
            topics,
            writer: Writer::new(
                config.store.clone(),
                config.roll,
                true,
                Some(enricher),
                metrics,
                stop,
            ),
            expected: HashMap::new(),
            seeks: HashMap::new(),
        })
    }

    /// The transport's side of a roll, over this consumer and dead-letter producer.
    fn log<'c>(
        consumer: &'c BaseConsumer<ConsumerCtx>,
        dlq: &'c BaseProducer<ProducerCtx>,
        config: &KafkaIngestConfig,
    ) -> KafkaLog<'c> {
        KafkaLog { consumer, dlq, topic: config.dead_letter_topic() }
    }

    /// Runs until `stop` is set, then writes and commits what it can and returns.
    ///
    /// # Errors
    /// Only for what retrying cannot fix: a corrupt ledger entry.
    pub fn run(mut self) -> Result<RunStats> {
        while !self.stop.load(Relaxed) {
            self.step(Duration::from_millis(100))?;
        }
        let mut log = Self::log(&self.consumer, &self.dlq, self.config);
        let (stats, _) = self.writer.finish(&mut log)?;
        self.consumer.unsubscribe();
        Ok(stats)
    }

    /// One poll, and the rolls that are due.
    fn step(&mut self, timeout: Duration) -> Result<()> {
        let polled = match self.consumer.poll(timeout) {
            None => None,
            Some(Ok(m)) => Some(Ok(OwnedMessage::from(&m))),
            Some(Err(e)) => Some(Err(e)),
        };
        self.drop_revoked();
        self.fetch_committed();
        match polled {
            None => {}
            Some(Err(e)) => {
                self.metrics.consumer_error();
                if self.consumer.context().poll_warn.due() {
                    tracing::warn!("kafka: {e}");
                }
            }
            Some(Ok(m)) => self.take(m)?,
        }
        let mut log = Self::log(&self.consumer, &self.dlq, self.config);
        self.writer.roll_due(&mut log)
    }

    fn drop_revoked(&mut self) {
        let revoked = std::mem::take(
            &mut *self
                .consumer
                .context()
                .revoked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for lp in revoked {
            self.expected.remove(&lp);
            self.seeks.remove(&lp);
            self.writer.drop_partition(&lp);
        }
    }

    /// For newly assigned partitions, where their committed offset is: messages are taken
    /// from exactly there (see [`Self::in_order`]).
    fn fetch_committed(&mut self) {
        let assigned = std::mem::take(
            &mut *self
                .consumer
                .context()
                .assigned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if assigned.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for lp in &assigned {
            tpl.add_partition(&lp.topic, lp.partition);
        }
        match self.consumer.committed_offsets(tpl, Duration::from_secs(30)) {
            Ok(tpl) => {
                for e in tpl.elements() {
                    let lp =
                        LogPartition { topic: e.topic().to_string(), partition: e.partition() };
                    let at = match e.offset() {
                        Offset::Offset(n) => Some(n),
                        _ => None,
                    };
                    self.expected.insert(lp, at);
                }
            }
            Err(e) => {
                // Without them every message is taken as it comes (the ledger still guards
                // the ranges being written).
                tracing::warn!("cannot read the committed offsets of {assigned:?}: {e}");
                for lp in assigned {
                    self.expected.insert(lp, None);
                }
            }
        }
    }

    /// Whether the message at `offset` of `lp` is the next one to take. A message before it
    /// was taken already (a stale prefetch after a rebalance): skipped. A message after it
    /// means the consumer jumped over messages: it is sent back to the expected offset, unless
    /// three seeks found that offset gone (deleted by retention), which is logged as a loss.
    fn in_order(&mut self, lp: &LogPartition, offset: i64) -> bool {
        let Some(Some(expected)) = self.expected.get(lp).copied() else { return true };
        if offset == expected {
            self.seeks.remove(lp);
            return true;
        }
        if offset < expected {
            tracing::debug!(partition = %lp, offset, expected, "skipping a message taken already");
            return false;
        }
        let tries = self.seeks.entry(lp.clone()).or_insert((expected, 0));
        if tries.0 != expected {
            *tries = (expected, 0);
        }
        if tries.1 >= 3 {
            tracing::error!(partition = %lp, from = expected, to = offset - 1, "messages no longer in the log (retention?): lost");
            self.seeks.remove(lp);
            return true;
        }
        tries.1 += 1;
        tracing::warn!(partition = %lp, offset, expected, "the consumer skipped messages; seeking back");
        if let Err(e) = self.consumer.seek(
            &lp.topic,
            lp.partition,
            Offset::Offset(expected),
            Duration::from_secs(10),
        ) {
            tracing::warn!(partition = %lp, "seek failed: {e}");
        }
        false
    }

    fn take(&mut self, m: OwnedMessage) -> Result<()> {
        let Some(&table) = self.topics.get(&m.topic) else { return Ok(()) };
        let lp = LogPartition { topic: m.topic.clone(), partition: m.partition };
        if !self.in_order(&lp, m.offset) {
            return Ok(());
        }
        let mut log = Self::log(&self.consumer, &self.dlq, self.config);
        if !self.writer.prepare(&lp, table, m.offset, &mut log)? {
            // Asked to stop while the store was unreachable: the message is not taken.
            return Ok(());
        }
        if let Some(e) = self.expected.get_mut(&lp) {
            *e = Some(m.offset + 1);
        }
        let headers: Vec<(&str, &[u8])> =
            m.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        let decoded = wire::decode(&headers, m.value.as_deref().unwrap_or_default())
            .map_err(|e| (reason_label(&e), e.to_string()))
            .and_then(|(env, batches)| {
                if env.table == table {
                    Ok((Some(env), batches))
                } else {
                    Err(("table", format!("a {} batch on topic {}", env.table.name(), m.topic)))
                }
            });
        drop(headers);
        let raw = Raw { key: m.key, value: m.value, headers: m.headers };
        self.writer.take(&lp, table, m.offset, decoded, raw)?;
        Ok(())
    }
}

/// [`Log`] over Kafka: commits offsets, produces dead letters.
struct KafkaLog<'c> {
    consumer: &'c BaseConsumer<ConsumerCtx>,
    dlq: &'c BaseProducer<ProducerCtx>,
    topic: String,
}

impl Log for KafkaLog<'_> {
    fn dead_letters(&mut self, lp: &LogPartition, dead: &[DeadLetter]) -> Result<()> {
        self.send_dead_letters(lp, dead)
    }

    fn commit(&mut self, lp: &LogPartition, next: i64) -> Result<()> {
        let what = || format!("committing offset {next} of {lp}");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&lp.topic, lp.partition, Offset::Offset(next))
            .map_err(|source| Error::Kafka { what: what(), source })?;
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|source| Error::Kafka { what: what(), source })
    }

    fn between_retries(&mut self) {
        // Ownership may have moved meanwhile (a rebalance served by librdkafka's background
        // thread is seen at the next poll): a commit then fails with a generation error, and
        // the next owner replays the range.
        if let Err(e) = self.consumer.assignment() {
            tracing::debug!("assignment: {e}");
        }
    }
}

impl KafkaLog<'_> {
    fn send_dead_letters(&self, lp: &LogPartition, dead: &[DeadLetter]) -> Result<()> {
        let topic = &self.topic;
        let failed_before = self.dlq.context().failed.load(Relaxed);
        for d in dead {
            let mut h = OwnedHeaders::new_with_capacity(d.raw.headers.len() + 4);
            for (k, v) in &d.raw.headers {
                h = h.insert(Header { key: k, value: Some(v.as_slice()) });
            }
            let partition = lp.partition.to_string();
            let offset = d.offset.to_string();
            for (k, v) in [
                (dlq_header::REASON, d.reason.as_str()),
                (dlq_header::TOPIC, lp.topic.as_str()),
                (dlq_header::PARTITION, partition.as_str()),
                (dlq_header::OFFSET, offset.as_str()),
            ] {
                h = h.insert(Header { key: k, value: Some(v.as_bytes()) });
            }
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(h);
            if let Some(k) = &d.raw.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &d.raw.value {
                record = record.payload(v.as_slice());
            }
            let mut record = record;
            loop {
                match self.dlq.send(record) {
                    Ok(()) => break,
                    Err((e, r)) => {
                        if matches!(
                            e,
                            KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ) {
                            self.dlq.poll(Duration::from_millis(100));
                            record = r;
                        } else {
                            let what = format!("producing a dead letter to {topic}");
                            return Err(Error::Kafka { what, source: e });
                        }
                    }
                }
            }
        }
        self.dlq
            .flush(Duration::from_secs(30))
            .map_err(|source| Error::Kafka { what: format!("flushing {topic}"), source })?;
        let failed = self.dlq.context().failed.load(Relaxed) - failed_before;
        if failed > 0 {
            return Err(Error::DeadLettersUndelivered { topic: topic.clone(), count: failed });
        }
        Ok(())
    }
}

/// A message copied out of the consumer's buffer, so the consumer is free for commits.
struct OwnedMessage {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

impl From<&BorrowedMessage<'_>> for OwnedMessage {
    fn from(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        OwnedMessage {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}
