//! The Arrow schemas of podwire's tables: the contract between capture, ingest, query and the
//! notebooks. Every column name is defined here and nowhere else.
//!
//! - [`connections`]: one row per TCP connection, UDP pseudo-connection or ICMP exchange (plus
//!   interim rows for long connections).
//! - [`dns`]: one row per DNS transaction (query and its response).
//! - [`packets`]: optional per-packet header records.
//! - [`endpoint`]: the enrichment columns that every table carries for `src` and `dst`.
//!
//! `schemas/README.md` documents every column (type, unit, meaning, null rule).
#![deny(missing_docs)]

pub mod connections;
pub mod dns;
pub mod endpoint;
pub mod packets;
mod time;

pub use endpoint::EndpointMeta;
pub use time::{TIMEZONE, timestamp_type, ts_from_ns};

/// Version of the table schemas. Stored in every schema's metadata (key [`SCHEMA_VERSION_KEY`])
/// and, later, in the Kafka envelope. Bumped whenever a column is added.
pub const SCHEMA_VERSION: u32 = 1;

/// Schema metadata key that carries [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "podwire.schema_version";

/// Schema metadata key that names the table a schema belongs to.
pub const TABLE_KEY: &str = "podwire.table";

/// The tables of a store, each a Hive-partitioned Parquet dataset under `STORE/<name>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// [`connections`]
    Connections,
    /// [`dns`]
    Dns,
    /// [`packets`]
    Packets,
}

impl Table {
    /// Every table, in a stable order.
    pub const ALL: [Table; 3] = [Table::Connections, Table::Dns, Table::Packets];

    /// The table's name: its folder in the store and its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Connections => "connections",
            Table::Dns => "dns",
            Table::Packets => "packets",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> arrow::datatypes::SchemaRef {
        match self {
            Table::Connections => connections::schema(),
            Table::Dns => dns::schema(),
            Table::Packets => packets::schema(),
        }
    }

    /// The column that holds the event time, used for partitioning and sorting.
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Connections => connections::col::START_TS,
            Table::Dns => dns::col::TS,
            Table::Packets => packets::col::TS,
        }
    }
}

fn metadata(table: Table) -> std::collections::HashMap<String, String> {
    [
        (SCHEMA_VERSION_KEY.to_string(), SCHEMA_VERSION.to_string()),
        (TABLE_KEY.to_string(), table.name().to_string()),
    ]
    .into_iter()
    .collect()
}
