//! The Kafka sink: batches leave a capture agent as Arrow IPC messages (format:
//! [`podwire_schemas::wire`]), one topic per table.
//!
//! Capture never waits for Kafka. librdkafka's producer queue is the buffer, bounded in bytes
//! ([`KafkaSinkConfig::queue_bytes`]) and in time (`message.timeout.ms`): while the broker is
//! away, batches wait there; when the queue is full, or a batch times out undelivered, it is
//! dropped and counted. The counts travel in the headers of every later message (cumulative,
//! with a per-process producer id and a per-table sequence, so a consumer also sees gaps) and are
//! exposed by [`KafkaSink::counters`].
use crate::pipeline::BatchSink;
use arrow::array::RecordBatch;
use podwire_kafka::{ClientSettings, WarnLimit};
use podwire_schemas::Table;
use podwire_schemas::wire::{self, Envelope};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Kafka sink settings.
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// Brokers, librdkafka properties passed through as they are (TLS, SASL, …; they win over
    /// the settings here) and the largest message value (bigger batches are split by rows).
    pub client: ClientSettings,
    /// Topics are `<prefix><table>`, e.g. `podwire.connections`.
    pub topic_prefix: String,
    /// The key of every message, and the `node` header.
    pub node: String,
    /// Bytes of messages waiting for the broker before new batches are dropped.
    pub queue_bytes: usize,
    /// How long a message may wait undelivered before it is dropped.
    pub delivery_timeout: Duration,
}

impl KafkaSinkConfig {
    /// Defaults for `brokers` and `node`.
    pub fn new(brokers: &str, node: &str) -> Self {
        KafkaSinkConfig {
            client: ClientSettings {
                brokers: brokers.into(),
                options: Vec::new(),
                max_message_bytes: 4 << 20,
            },
            topic_prefix: wire::DEFAULT_TOPIC_PREFIX.into(),
            node: node.into(),
            queue_bytes: 256 << 20,
            delivery_timeout: Duration::from_secs(300),
        }
    }

    /// The topic of `table`.
    pub fn topic(&self, table: Table) -> String {
        wire::topic(&self.topic_prefix, table)
    }
}

/// The sink's counters (monotonic since start).
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Messages handed to the producer.
    pub sent_messages: AtomicU64,
    /// Rows in them.
    pub sent_rows: AtomicU64,
    /// Value bytes in them.
    pub sent_bytes: AtomicU64,
    /// Messages the broker acknowledged.
    pub delivered_messages: AtomicU64,
    /// Rows in them.
    pub delivered_rows: AtomicU64,
    /// Messages dropped: queue full, delivery timed out, rejected by the broker.
    pub dropped_messages: AtomicU64,
    /// Rows in them.
    pub dropped_rows: AtomicU64,
}

impl SinkCounters {
    fn drop_message(&self, rows: u64) {
        self.dropped_messages.fetch_add(1, Relaxed);
        self.dropped_rows.fetch_add(rows, Relaxed);
    }

    /// Messages handed over and neither delivered nor dropped yet.
    pub fn in_flight(&self) -> u64 {
        self.sent_messages.load(Relaxed).saturating_sub(
            self.delivered_messages.load(Relaxed) + self.dropped_messages.load(Relaxed),
        )
    }
}

/// Delivery reports and librdkafka's logs, on the producer's polling thread.
struct Context {
    counters: Arc<SinkCounters>,
    warn: WarnLimit,
}

impl Context {
    /// Warns at most every [`podwire_kafka::WARN_EVERY`], so an outage is one line per
    /// interval, not one per message.
    fn warn_limited(&self, what: &str) {
        if self.warn.due() {
            let c = &self.counters;
            tracing::warn!(
                dropped_messages = c.dropped_messages.load(Relaxed),
                dropped_rows = c.dropped_rows.load(Relaxed),
                in_flight = c.in_flight(),
                "kafka: {what}"
            );
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        podwire_kafka::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.warn_limited(&format!("{error}: {reason}"));
    }
}

impl ProducerContext for Context {
    /// Rows in the message.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, rows: usize) {
        match result {
            Ok(_) => {
                self.counters.delivered_messages.fetch_add(1, Relaxed);
                self.counters.delivered_rows.fetch_add(rows as u64, Relaxed);
            }
            Err((e, _)) => {
                self.counters.drop_message(rows as u64);
                self.warn_limited(&format!("a batch of {rows} rows was not delivered: {e}"));
            }
        }
    }
}

/// Sends batches to Kafka. See the module documentation.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    producer: ThreadedProducer<Context>,
    producer_id: String,
    seq: [u64; Table::ALL.len()],
    counters: Arc<SinkCounters>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("config", &self.config)
            .field("producer_id", &self.producer_id)
            .finish_non_exhaustive()
    }
}

/// A random id for this process's messages: std's `RandomState` is seeded from the operating
/// system's randomness, hashed with the process id and the time.
fn producer_id() -> String {
    use std::hash::BuildHasher as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = std::collections::hash_map::RandomState::new().hash_one((std::process::id(), now));
    format!("{h:016x}")
}

impl KafkaSink {
    /// A producer for `config`. Nothing is sent yet; the broker may be down.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration (a bad property name or value).
    pub fn new(config: KafkaSinkConfig) -> Result<Self, crate::Error> {
        let counters = Arc::new(SinkCounters::default());
        let settings = &config.client;
        let mut cc = settings.config(&format!("podwire-capture-{}", config.node));
        cc.set(
            "queue.buffering.max.kbytes",
            (config.queue_bytes / 1024).clamp(1, 2_147_483_647).to_string(),
        )
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", config.delivery_timeout.as_millis().max(1).to_string())
        .set("message.max.bytes", settings.message_limit())
        .set("linger.ms", "50")
        .set("acks", "all")
        .set("enable.idempotence", "true");
        settings.apply_options(&mut cc);
        let context = Context { counters: Arc::clone(&counters), warn: WarnLimit::default() };
        let producer: ThreadedProducer<Context> =
            cc.create_with_context(context).map_err(|source| crate::Error::Kafka {
                what: "creating the Kafka producer",
                source,
            })?;
        Ok(KafkaSink { config, producer, producer_id: producer_id(), seq: [0; 4], counters })
    }

    /// The sink's counters.
    pub fn counters(&self) -> Arc<SinkCounters> {
        Arc::clone(&self.counters)
    }

    /// This process's producer id (the `producer` header).
    pub fn producer_id(&self) -> &str {
        &self.producer_id
    }

    /// Waits up to `timeout` for every queued message to be delivered or fail; what is still
    /// queued then is dropped and counted. Returns the counters.
    pub fn finish(self, timeout: Duration) -> Arc<SinkCounters> {
        let deadline = Instant::now() + timeout;
        while self.counters.in_flight() > 0 && Instant::now() < deadline {
            let _ = self.producer.flush(Duration::from_millis(200));
        }
        if self.counters.in_flight() > 0 {
            // Purged messages get a failed delivery report: counted as dropped there.
            self.producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
            let _ = self.producer.flush(Duration::from_secs(1));
        }
        self.counters
    }
}

impl BatchSink for KafkaSink {
    fn write(&mut self, table: Table, batch: RecordBatch) -> Result<(), crate::Error> {
        let parts = wire::encode_bounded(&batch, self.config.client.max_message_bytes)
            .map_err(|source| crate::Error::Encode { table: table.name(), source })?;
        let topic = self.config.topic(table);
        let idx = Table::ALL.iter().position(|t| *t == table).unwrap_or(0);
        for (part, bytes) in parts {
            let rows = part.num_rows();
            let env = Envelope {
                table,
                node: self.config.node.clone(),
                producer: self.producer_id.clone(),
                seq: self.seq[idx],
                rows: rows as u64,
                dropped_batches: self.counters.dropped_messages.load(Relaxed),
                dropped_rows: self.counters.dropped_rows.load(Relaxed),
            };
            self.seq[idx] += 1;
            let mut headers = OwnedHeaders::new_with_capacity(8);
            for (k, v) in env.headers() {
                headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
            }
            let record = BaseRecord::with_opaque_to(&topic, rows)
                .key(self.config.node.as_bytes())
                .payload(&bytes)
                .headers(headers);
            self.counters.sent_messages.fetch_add(1, Relaxed);
            self.counters.sent_rows.fetch_add(rows as u64, Relaxed);
            self.counters.sent_bytes.fetch_add(bytes.len() as u64, Relaxed);
            if let Err((e, _)) = self.producer.send(record) {
                self.counters.drop_message(rows as u64);
                let ctx = self.producer.context();
                match e {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => ctx.warn_limited(
                        "the send queue is full (is the broker reachable?): dropping batches",
                    ),
                    e => ctx.warn_limited(&format!("a batch of {rows} rows was rejected: {e}")),
                }
            }
        }
        Ok(())
    }
}
