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
    /// Writing batches to the sink failed.
    #[error("output failed: {0}")]
    Sink(String),
    /// The Kafka producer could not be set up (a bad property, usually).
    #[error("{0}")]
    Kafka(String),
    /// Building an Arrow batch failed (a bug here).
    #[error("internal error building a batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl Error {
    /// Errors worth retrying (none of the capture file errors are).
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
