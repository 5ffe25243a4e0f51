//! Timestamps: microseconds since the Unix epoch, UTC. Microseconds (not nanoseconds) because
//! Spark and older Parquet readers do not read nanosecond timestamps; capture keeps nanoseconds
//! internally and converts once, here.
use arrow::datatypes::{DataType, TimeUnit};

/// The time zone of every timestamp column (Parquet `isAdjustedToUTC = true`).
pub const TIMEZONE: &str = "UTC";

/// The Arrow type of every timestamp column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(TIMEZONE.into()))
}

/// Converts nanoseconds since the epoch to the stored unit (microseconds, rounded down).
pub fn ts_from_ns(ns: i64) -> i64 {
    ns.div_euclid(1_000)
}
