//! podwire's ingest side: name both ends of every record, and write the store.
//!
//! - [`inventory`]: pod, service and node metadata from `kubectl get pods,services,nodes -A -o
//!   json|yaml`, as a time-aware IP → identity index.
//! - [`enrich`]: fills the `src_*`/`dst_*` enrichment columns of a batch from the index.
//! - [`store`]: the Parquet store: Hive-partitioned by date and hour, ZSTD, sorted by time,
//!   files written to a temporary name, fsynced and renamed (or uploaded whole to a bucket).
//! - [`delta`]: each table a Delta Lake table: the files the writer wrote are added to its log
//!   in one commit, which is what readers see.
//! - [`writer`]: offset-range segments to the store, for both transports (Kafka, in-process);
//!   [`segment`]: how a partition of a message log becomes store files with nothing lost and
//!   nothing doubled, whatever moment ingest is killed at; [`bus`]: the in-process bus on a
//!   store thread of its own (`podwire standalone`).
//! - `kafka` (feature `kafka`): `podwire ingest` over Kafka: the consumer group, message checks,
//!   the writer.
//! - [`selector`]: pod selectors of the live capture's filter, matched against the inventory.
//! - [`kube_watch`]: the live Kubernetes watch that keeps the inventory current.
//! - [`metrics`]: ingest's Prometheus metrics.
//! - [`retention`]: deletes the hourly partitions older than the time kept.
//! - [`location`]: a store's root, a local folder or an S3-compatible `s3://bucket/prefix`.
pub mod bus;
pub mod compact;
pub mod delta;
pub mod enrich;
pub mod error;
pub mod inventory;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod kube_watch;
pub mod location;
pub mod metrics;
pub mod retention;
pub mod segment;
pub mod selector;
pub mod store;
pub mod writer;

pub use error::{Error, Result};

use arrow::array::{AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;
use podwire_schemas::Table;

/// The event-time column of a batch of `table` (partitioning, sorting, time-aware naming).
///
/// # Errors
/// [`Error::MissingColumn`] when the batch does not have it with the schema's type.
pub fn event_times(table: Table, batch: &RecordBatch) -> Result<&TimestampMicrosecondArray> {
    batch
        .column_by_name(table.time_column())
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| Error::MissingColumn {
            table: table.name(),
            column: table.time_column().into(),
        })
}
