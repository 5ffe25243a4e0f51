//! The Kafka side of podwire's wire contract, shared by the capture agent's producer
//! (`podwire_capture::kafka`), ingest's consumer and dead-letter producer
//! (`podwire_ingest::kafka`) and the binary's topic creation: one place for what every client
//! sets, how librdkafka's logs reach podwire's, how an outage is warned about, the message-size
//! limit with its margin, and creating topics. Topic names and the message format are in
//! [`podwire_schemas::wire`].
use podwire_schemas::wire;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use rdkafka;

/// What every podwire client is configured from: [`ClientSettings::config`] sets the brokers and
/// a client id, the caller adds its own properties, and [`ClientSettings::apply_options`] sets
/// the user's librdkafka properties (TLS, SASL, …) last, so they win.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// librdkafka properties passed through as they are.
    pub options: Vec<(String, String)>,
    /// Largest message value podwire produces or accepts ([`wire::MESSAGE_MARGIN_BYTES`] is
    /// added for the record's own overhead on both sides).
    pub max_message_bytes: usize,
}

impl ClientSettings {
    /// A client configuration with the brokers and `client.id` set.
    pub fn config(&self, client_id: &str) -> ClientConfig {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &self.brokers).set("client.id", client_id);
        cc
    }

    /// Sets the user's properties on `cc`; called last, so they win.
    pub fn apply_options(&self, cc: &mut ClientConfig) {
        for (k, v) in &self.options {
            cc.set(k, v);
        }
    }

    /// The broker-side limit for a message of at most `max_message_bytes` of value: the same
    /// on the producer (`message.max.bytes`), the consumer (`fetch.message.max.bytes`,
    /// `max.partition.fetch.bytes`) and the topics (`max.message.bytes`).
    pub fn message_limit(&self) -> String {
        (self.max_message_bytes + wire::MESSAGE_MARGIN_BYTES).to_string()
    }
}

/// librdkafka's log lines into podwire's log (for `ClientContext::log`): errors as errors,
/// warnings as warnings, the rest at debug.
pub fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
        _ => tracing::debug!(facility, "librdkafka: {message}"),
    }
}

/// How often a client warns about the same trouble: an outage is one line per interval, not one
/// per message or per reconnect attempt.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Says whether it is time to warn again ([`WARN_EVERY`]).
#[derive(Debug, Default)]
pub struct WarnLimit(Mutex<Option<Instant>>);

impl WarnLimit {
    /// True at most once per [`WARN_EVERY`].
    pub fn due(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            true
        } else {
            false
        }
    }
}

/// Where topics are created and how.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Partitions of a new topic; 0 creates nothing (the topics are managed elsewhere).
    pub partitions: i32,
    /// Replication factor of a new topic.
    pub replication: i32,
}

/// Whether a Kafka call that failed with `e` may succeed if made again: false for what only a
/// change of configuration or permissions fixes (authorization, authentication, a message over
/// the broker's limit, an invalid argument or configuration, a fatal or unsupported request),
/// true for the rest (the broker unreachable, a rebalance, a leader moving, a timeout).
pub fn is_retryable(e: &rdkafka::error::KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    if matches!(e, rdkafka::error::KafkaError::ClientConfig(..)) {
        return false;
    }
    !matches!(
        e.rdkafka_error_code(),
        Some(
            C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed
                | C::DelegationTokenAuthorizationFailed
                | C::SaslAuthenticationFailed
                | C::Authentication
                | C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidArgument
                | C::InvalidConfig
                | C::InvalidRecord
                | C::UnsupportedVersion
                | C::UnsupportedFeature
                | C::Fatal
        )
    )
}

/// Creates the `topics` that do not exist yet, with the message limit of `settings`. A topic that
/// exists is left as it is. A broker that cannot be reached or refuses is a warning, not an
/// error: the topics may be managed elsewhere.
///
/// # Errors
/// When librdkafka rejects the configuration (a bad `--kafka-option`).
pub fn ensure_topics(
    settings: &ClientSettings,
    spec: &TopicSpec,
    topics: &[String],
) -> Result<(), rdkafka::error::KafkaError> {
    if spec.partitions <= 0 || topics.is_empty() {
        return Ok(());
    }
    let mut cc = settings.config("podwire-admin");
    settings.apply_options(&mut cc);
    let admin: AdminClient<DefaultClientContext> = cc.create()?;
    let max = settings.message_limit();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(t, spec.partitions, TopicReplication::Fixed(spec.replication))
                .set("max.message.bytes", &max)
        })
        .collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(15)));
    match futures::executor::block_on(admin.create_topics(&new, &opts)) {
        Err(e) => {
            tracing::warn!(brokers = %settings.brokers, "could not create topics {topics:?}: {e}")
        }
        Ok(results) => {
            for r in results {
                match r {
                    Ok(t) => {
                        tracing::info!(topic = %t, partitions = spec.partitions, "topic created")
                    }
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((t, code)) => {
                        tracing::warn!(topic = %t, "could not create the topic: {code}")
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_win_and_the_limit_has_the_margin() {
        let s = ClientSettings {
            brokers: "b:9092".into(),
            options: vec![("client.id".into(), "mine".into())],
            max_message_bytes: 1000,
        };
        let mut cc = s.config("podwire-x");
        assert_eq!(cc.get("client.id"), Some("podwire-x"));
        s.apply_options(&mut cc);
        assert_eq!(
            (cc.get("client.id"), cc.get("bootstrap.servers")),
            (Some("mine"), Some("b:9092"))
        );
        assert_eq!(s.message_limit(), (1000 + wire::MESSAGE_MARGIN_BYTES).to_string());
    }

    #[test]
    fn permissions_and_limits_are_not_retried_an_outage_is() {
        use rdkafka::error::KafkaError as K;
        assert!(!is_retryable(&K::ConsumerCommit(RDKafkaErrorCode::GroupAuthorizationFailed)));
        assert!(!is_retryable(&K::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(is_retryable(&K::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress)));
        assert!(is_retryable(&K::ConsumerCommit(RDKafkaErrorCode::IllegalGeneration)));
        assert!(is_retryable(&K::MessageProduction(RDKafkaErrorCode::QueueFull)));
        assert!(is_retryable(&K::Flush(RDKafkaErrorCode::OperationTimedOut)));
        assert!(is_retryable(&K::ConsumerCommit(RDKafkaErrorCode::AllBrokersDown)));
    }

    #[test]
    fn a_warning_is_due_once_per_interval() {
        let w = WarnLimit::default();
        assert!(w.due());
        assert!(!w.due());
    }
}
