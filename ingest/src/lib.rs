//! podwire's ingest side: name both ends of every record, and write the store.
//!
//! - [`inventory`]: pod, service and node metadata from `kubectl get pods,services,nodes -A -o
//!   json|yaml`, as a time-aware IP → identity index.
//! - [`enrich`]: fills the `src_*`/`dst_*` enrichment columns of a batch from the index.
//! - [`store`]: the Parquet store: Hive-partitioned by date and hour, ZSTD, sorted by time,
//!   files written to a temporary name, fsynced and renamed.
pub mod enrich;
pub mod error;
pub mod inventory;
pub mod store;

pub use error::{Error, Result};
