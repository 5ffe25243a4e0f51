//! The query service: KFL and read-only SQL over podwire's Parquet store, run by DataFusion.
//!
//! - [`catalog`]: registers every table of a store (`connections`, `dns`, `packets`,
//!   `capture_stats`) as a Hive-partitioned listing table (`date`, `hour`) with the schema from
//!   `podwire-schemas`, so a table with no files yet is still queryable and empty.
//! - [`session`]: [`Store`], the `SessionContext` over one store; runs a KFL
//!   [`Translation`](podwire_kfl::Translation) or a checked SQL query and returns a DataFusion
//!   `DataFrame` (results stream, in time order for KFL).
//! - [`prune`]: turns a time range into predicates on the partition columns, added to the
//!   translated AST, so folders outside the range are never listed or opened.
//! - [`readonly`]: the SELECT-only check of raw SQL on its parsed AST.
//! - [`time`]: `--from`/`--to` values: RFC 3339, a date, `now`, or relative (`-1h`).
//! - [`output`]: writes a result stream as a table, CSV, JSON lines or Parquet; [`csv`]: CSV rows
//!   straight from the Arrow columns.
//! - [`local`]: the object store a folder store is read through (files mapped into memory, the
//!   mappings kept); [`pushdown`]: when the Parquet reader applies a query's filter itself,
//!   decided for most filters by [`sample`]: what fraction of a few sampled hours the filter
//!   keeps, and each of its terms, by which [`order`] puts the term that keeps fewest first;
//!   [`compact`]: the rows such a scan returns are copied into full batches before a merge or
//!   sort keeps them;
//!   [`contradiction`]: a filter that asks a column for ranges that do not meet reads nothing.
//! - [`api`]: the HTTP API of `podwire serve`: KFL and SQL queries streamed as JSON, CSV or
//!   Arrow IPC, translate, fields, health, Prometheus metrics, OpenAPI.
//! - [`map`]: the connectivity map (nodes and edges over a window) as one grouped query;
//!   [`timeline`]: connections over time, the dashboard's histogram.
//! - [`why`]: verdicts over a window (refused, no answer, reset, unreachable, stale endpoint,
//!   failed lookups, degraded, ok), each with its evidence and the KFL of its rows;
//!   [`why_not`]: why a filter finds nothing or little (other times, silent agents, what the
//!   capture filtered, skipped or lost); [`insights`]: what changed and what is wrong, ranked.
//! - [`web`]: the dashboard's page, embedded at build time (`build.rs` bundles `query/web/`).
//! - [`cluster`] (feature `cluster`): the same plans run on an Apache DataFusion Ballista
//!   cluster (`--cluster`), and the scheduler and executor processes of `podwire cluster`.
//! - [`error`]: [`Error`], which keeps user errors (a bad filter, rejected SQL) apart from
//!   internal ones.
pub mod api;
pub mod catalog;
#[cfg(feature = "cluster")]
pub mod cluster;
pub(crate) mod columns;
pub mod compact;
pub mod contradiction;
pub mod csv;
pub mod delta;
pub mod error;
pub mod insights;
pub mod local;
pub mod map;
pub mod order;
pub mod output;
pub mod prune;
pub mod pushdown;
pub mod readonly;
pub mod sample;
pub mod session;
pub(crate) mod sightings;
pub mod time;
pub mod timeline;
pub mod web;
pub mod why;
pub mod why_not;

pub use error::{Error, Result};
pub use output::Format;
pub use podwire_kfl::Dialect;
pub use session::{QueryRequest, Store, StoreOptions};
