//! The capture crate's errors.
use std::path::PathBuf;

/// Errors of packet sources and the capture pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a readable capture, or stops in the middle of a record.
    #[error("`{}` at byte offset {offset}: {what}", path.display())]
    BadCapture {
        /// The file.
        path: PathBuf,
        /// Byte offset of the record that could not be read.
        offset: u64,
        /// What is wrong, and what to do.
        what: String,
    },
    /// The capture uses a link type podwire does not decode.
    #[error(
        "`{}` at byte offset {offset}: link type {linktype} is not supported (supported: \
         Ethernet 1, Linux cooked SLL 113 and SLL2 276, raw IP 101/228/229, null/loopback 0/108); \
         re-capture on an Ethernet or `any` interface",
        path.display()
    )]
    UnknownLinkType {
        /// The file.
        path: PathBuf,
        /// Byte offset of the header or interface block declaring it.
        offset: u64,
        /// The pcap LINKTYPE number.
        linktype: i32,
    },
    /// The sink refused a batch (its own error, kept whole as the source).
    #[error("output failed: {0}")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A batch could not be encoded as an Arrow IPC message for the wire.
    #[error("encoding a {table} batch as Arrow IPC: {source}")]
    Encode {
        /// The table.
        table: &'static str,
        /// Arrow's error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The Kafka producer could not be set up (a bad property, usually).
    #[cfg(feature = "kafka")]
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: &'static str,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Building an Arrow batch failed (a bug here).
    #[error("internal error building a batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl Error {
    /// Errors worth retrying. None of capture's are: a capture file reads the same again, a
    /// batch encodes the same, and the Kafka sink's outages are retried by librdkafka itself
    /// (delivery failures are counted as dropped rows, not returned). A sink's own error
    /// decides for itself ([`Error::Sink`] keeps it as the source).
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
