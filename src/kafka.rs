//! Kafka settings shared by `podwire capture` and `podwire ingest`, and topic creation.
use anyhow::Context as _;
use clap::Args;
use podwire_schemas::Table;

#[derive(Debug, Args, Clone)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers, `host:port[,host:port…]`.
    #[arg(long = "kafka", env = "PODWIRE_KAFKA", value_name = "BROKERS")]
    pub(crate) brokers: String,
    /// Topics are PREFIX + table name (`podwire.connections`, `podwire.dns`, …); dead letters go
    /// to PREFIX + `dead-letter`.
    #[arg(long, env = "PODWIRE_TOPIC_PREFIX", default_value = podwire_schemas::wire::DEFAULT_TOPIC_PREFIX)]
    pub(crate) topic_prefix: String,
    /// A librdkafka property, passed through as it is; repeat for several. TLS and SASL go
    /// here: `security.protocol=SASL_SSL`, `sasl.mechanisms=SCRAM-SHA-512`, `sasl.username=…`,
    /// `ssl.ca.location=/etc/kafka/ca.pem`. A value may hold commas (`ssl.cipher.suites=A,B`, a
    /// password). In the environment: one per line.
    #[arg(long = "kafka-option", env = "PODWIRE_KAFKA_OPTIONS", value_name = "KEY=VALUE", value_delimiter = '\n', value_parser = parse_option)]
    pub(crate) options: Vec<(String, String)>,
    /// Create missing topics with this many partitions at start (a topic that exists is left
    /// as it is). 0: create nothing (topics are managed elsewhere).
    #[arg(long, env = "PODWIRE_TOPIC_PARTITIONS", default_value_t = 6)]
    pub(crate) topic_partitions: i32,
    /// Replication factor of the topics podwire creates.
    #[arg(long, env = "PODWIRE_TOPIC_REPLICATION", default_value_t = 1)]
    pub(crate) topic_replication: i32,
    /// Largest message podwire produces (batches are split to fit) and accepts.
    #[arg(long, env = "PODWIRE_MAX_MESSAGE_BYTES", default_value = "4MiB", value_parser = crate::parse::parse_bytes)]
    pub(crate) max_message_bytes: usize,
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE (e.g. security.protocol=SSL)"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

impl KafkaArgs {
    pub(crate) fn topic(&self, table: Table) -> String {
        podwire_schemas::wire::topic(&self.topic_prefix, table)
    }

    /// What every client of this process is configured from.
    pub(crate) fn settings(&self) -> podwire_kafka::ClientSettings {
        podwire_kafka::ClientSettings {
            brokers: self.brokers.clone(),
            options: self.options.clone(),
            max_message_bytes: self.max_message_bytes,
        }
    }

    /// Creates the topics that do not exist yet (unless --topic-partitions 0); see
    /// [`podwire_kafka::ensure_topics`].
    pub(crate) fn ensure_topics(&self, topics: &[String]) -> anyhow::Result<()> {
        let spec = podwire_kafka::TopicSpec {
            partitions: self.topic_partitions,
            replication: self.topic_replication,
        };
        podwire_kafka::ensure_topics(&self.settings(), &spec, topics)
            .context("creating the Kafka admin client (check --kafka-option)")
    }
}
