//! The query service's errors. User errors (a bad filter, a rejected SQL statement, a bad time)
//! are the caller's to fix (HTTP 400, CLI exit 1 with the message); the rest are internal or I/O.
use datafusion::error::DataFusionError;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong running a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The KFL filter does not parse or check; [`podwire_kfl::Error::render`] draws the caret.
    #[error("{0}")]
    Kfl(Box<podwire_kfl::Error>),
    /// Raw SQL that is not a single read-only query over the store's tables.
    #[error("rejected SQL: {0}")]
    Rejected(String),
    /// SQL that does not parse or plan (unknown column, type mismatch, ...).
    #[error("invalid SQL: {0}")]
    Sql(String),
    /// A `from`/`to` value that is neither RFC 3339, a date, `now` nor a relative duration.
    #[error("invalid time `{value}`: {reason}")]
    Time {
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A snapshot asked for (`--as-of`, `as_of`) that the store's Delta logs do not hold.
    #[error("{0}")]
    AsOf(String),
    /// A store folder that cannot be used.
    #[error("store `{path}`: {reason}")]
    Store {
        /// The store folder.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The cluster (`--cluster`) could not run the query: its scheduler cannot be reached, the
    /// job failed, or it took longer than allowed.
    #[error("cluster `{address}`: {reason}")]
    Cluster {
        /// The scheduler's `host:port`.
        address: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// The query needs more memory than the session may use, even spilling to disk.
    #[error(
        "query needs more memory than allowed ({0}); narrow the time range or the filter, add a limit, or raise --memory-limit"
    )]
    Resources(String),
    /// Execution failed (reading a file, a kernel error, ...).
    #[error("query failed: {0}")]
    DataFusion(Box<DataFusionError>),
    /// Writing the output failed.
    #[error("writing the result: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding the output failed.
    #[error("encoding the result: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Writing Parquet output failed.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A bug here.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True when the caller sent something wrong (HTTP 400), false when the fault is here.
    pub fn is_user(&self) -> bool {
        matches!(
            self,
            Error::Kfl(_)
                | Error::Rejected(_)
                | Error::Sql(_)
                | Error::Time { .. }
                | Error::AsOf(_)
        )
    }

    /// True when trying again unchanged may succeed (a file replaced while it was read).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Io(_) | Error::DataFusion(_) | Error::Resources(_) | Error::Cluster { .. }
        )
    }
}

impl From<podwire_kfl::Error> for Error {
    fn from(e: podwire_kfl::Error) -> Self {
        Error::Kfl(Box::new(e))
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        // Planning errors name what the query got wrong; the rest happen while running.
        match e.find_root() {
            DataFusionError::Plan(_)
            | DataFusionError::SQL(..)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => Error::Sql(e.find_root().to_string()),
            DataFusionError::ResourcesExhausted(m) => Error::Resources(m.clone()),
            DataFusionError::ObjectStore(o) => match o.as_ref() {
                object_store::Error::Generic { source, .. }
                    if source.downcast_ref::<AsOfError>().is_some() =>
                {
                    Error::AsOf(source.to_string())
                }
                _ => Error::DataFusion(Box::new(e)),
            },
            _ => Error::DataFusion(Box::new(e)),
        }
    }
}

/// Why a snapshot asked for (`--as-of`, [`crate::delta::AsOf`]) cannot be read: the version or
/// time is not in the log. Raised inside a table listing, so it travels as the object store's
/// error and becomes [`Error::AsOf`] (the caller's to change).
#[derive(Debug, thiserror::Error)]
#[error("--as-of: {0}")]
pub struct AsOfError(pub String);

impl AsOfError {
    /// As a listing's error.
    pub(crate) fn into_store(self) -> object_store::Error {
        object_store::Error::Generic { store: "DeltaListing", source: Box::new(self) }
    }
}
