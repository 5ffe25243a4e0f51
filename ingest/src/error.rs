//! The ingest crate's errors.
use std::path::PathBuf;

/// Errors of enrichment and the store writer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The inventory file is not what `kubectl get ... -o json|yaml` prints.
    #[error(
        "inventory `{}`: {what}; make it with `kubectl get pods,services,nodes -A -o json > FILE`",
        path.display()
    )]
    Inventory {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The ingest ledger (`STORE/_ingest/`) holds something podwire did not write.
    #[error("ingest ledger `{}`: {what}", path.display())]
    Ledger {
        /// The entry.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// An object store (S3-compatible bucket) call failed, or its settings are not usable.
    #[error("object store `{url}`: {what}")]
    ObjectStore {
        /// The bucket URL, or the object's.
        url: String,
        /// What happened.
        what: String,
    },
    /// A table's Delta log could not be read or committed to.
    #[error("delta log of `{table}`: {what}")]
    Delta {
        /// The table.
        table: &'static str,
        /// What happened.
        what: String,
        /// Whether a retry may mend it (I/O, a commit that lost every race).
        retryable: bool,
    },
    /// A step of a roll (dead letters, store, commit) failed for good: the attempts allowed ran
    /// out, or the failure is one retrying cannot fix. The range stays uncommitted and the next
    /// run replays it.
    #[error("{step} of {partition} failed after {attempts} attempt(s): {source}")]
    Roll {
        /// The log partition.
        partition: String,
        /// The step that failed: `dead letters`, `store` or `commit`.
        step: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },
    /// The store thread of the in-process bus stopped (on the error it names).
    #[error("the store thread stopped: {0}")]
    StoreThread(String),
    /// A call of the Kafka consumer or the dead-letter producer failed.
    #[cfg(feature = "kafka")]
    #[error("kafka: {what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Dead letters were handed to the producer but not delivered.
    #[error("{count} dead letter(s) were not delivered to `{topic}`")]
    DeadLettersUndelivered {
        /// The dead-letter topic.
        topic: String,
        /// How many failed.
        count: u64,
    },
    /// A batch does not have the columns enrichment needs (a bug, or a foreign batch).
    #[error("batch of `{table}` lacks column `{column}`")]
    MissingColumn {
        /// The table.
        table: &'static str,
        /// The column.
        column: String,
    },
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl Error {
    /// True for errors that may go away on retry: I/O on the store (local or bucket; a full
    /// disk, a bucket that is not there yet), Kafka outages and rebalances
    /// ([`podwire_kafka::is_retryable`]), undelivered dead letters. False for what only a fix
    /// or a change of settings mends: a corrupt ledger, a batch that cannot be encoded,
    /// permissions or limits on the broker, a stopped store thread.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io { .. } | Error::ObjectStore { .. } | Error::DeadLettersUndelivered { .. } => {
                true
            }
            Error::Delta { retryable, .. } => *retryable,
            #[cfg(feature = "kafka")]
            Error::Kafka { source, .. } => podwire_kafka::is_retryable(source),
            Error::Roll { .. }
            | Error::StoreThread(_)
            | Error::Inventory { .. }
            | Error::Ledger { .. }
            | Error::MissingColumn { .. }
            | Error::Arrow(_)
            | Error::Parquet(_) => false,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
