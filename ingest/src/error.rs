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
    /// A segment could not be written (or committed) in the attempts allowed.
    #[error("writing {partition} failed after {attempts} attempts: {what}")]
    Roll {
        /// The log partition.
        partition: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        what: String,
    },
    /// The store thread of the in-process bus stopped (on the error it names).
    #[error("the store thread stopped: {0}")]
    StoreThread(String),
    /// The Kafka consumer or the dead-letter producer failed.
    #[error("kafka: {0}")]
    Kafka(String),
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
    /// True for errors that may go away on retry (I/O on the store, local or bucket).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Io { .. } | Error::ObjectStore { .. })
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
