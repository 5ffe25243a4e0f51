//! The store's tables as Delta Lake tables (the protocol's log through `deltalake-core`,
//! delta-rs): every file the writer writes is added to its table by a commit of the table's
//! `_delta_log/`, and every reader that follows the log (podwire's query service, DuckDB's
//! `delta_scan`, polars' `scan_delta`, pyarrow through the `deltalake` package, Spark) sees a set
//! of added or removed files whole or not at all.
//!
//! A table lives at `STORE/<table>/`, partitioned by `date` (`YYYY-MM-DD`) and `hour` (`HH`),
//! both strings, as the folder names say: the Parquet files are where they always were, written
//! by podwire's own writer ([`crate::store`]: its sort, encodings and statistics), and the log
//! records them with their row count and the min/max of their integer and time columns. A
//! table is created by its first commit.
//!
//! Table settings (`delta.*` properties, set at creation): files removed by expiry stay
//! readable for [`DELETED_FILE_RETENTION`] (longer than any query runs) before a vacuum deletes
//! them; the log keeps [`LOG_RETENTION`] of versions to read a table as of.
use crate::error::{Error, Result};
use crate::location::Location;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, Remove, StructType, Transaction};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError, TableProperty};
use futures::future::BoxFuture;
use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use podwire_schemas::{Table, partition};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long a removed file stays in place (`delta.deletedFileRetentionDuration`): a query that
/// planned over the snapshot before the removal still finds it.
pub const DELETED_FILE_RETENTION: &str = "interval 1 hours";

/// How long log entries stay (`delta.logRetentionDuration`): how far back `--as-of` reaches.
/// Ingest commits about every five seconds per partition, so a longer window means hundreds of
/// thousands of small log files.
pub const LOG_RETENTION: &str = "interval 2 days";

/// Commits retried on a concurrent writer's commit (appends of other ingest processes never
/// conflict with ours; they only take the version number).
const COMMIT_RETRIES: usize = 30;

/// A data file to add: where it is in the table and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Path relative to the table's root: `date=YYYY-MM-DD/hour=HH/NAME.parquet`.
    pub path: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `HH`.
    pub hour: String,
    /// Bytes.
    pub size: u64,
    /// Rows.
    pub rows: u64,
    /// The Delta statistics (JSON): row count, null counts, min/max of integer and time columns.
    pub stats: String,
}

impl DataFile {
    /// The entry for a file at `path` (relative to the table root, in an hour folder) from the
    /// metadata its writer returned.
    ///
    /// # Errors
    /// [`Error::Delta`] when `path` is not in a `date=…/hour=…` folder.
    pub fn new(table: Table, path: String, size: u64, md: &ParquetMetaData) -> Result<Self> {
        let (date, hour) = partition::of_path(&path).ok_or_else(|| Error::Delta {
            table: table.name(),
            what: format!("`{path}` is not in a date=YYYY-MM-DD/hour=HH folder"),
            retryable: false,
        })?;
        let rows = u64::try_from(md.file_metadata().num_rows()).unwrap_or(0);
        Ok(DataFile { date, hour, size, rows, stats: stats_json(table, md), path })
    }

    fn add(&self, now_ms: i64) -> Add {
        Add {
            path: self.path.clone(),
            partition_values: HashMap::from([
                (partition::COLUMNS[0].to_string(), Some(self.date.clone())),
                (partition::COLUMNS[1].to_string(), Some(self.hour.clone())),
            ]),
            size: i64::try_from(self.size).unwrap_or(i64::MAX),
            modification_time: now_ms,
            data_change: true,
            stats: Some(self.stats.clone()),
            ..Add::default()
        }
    }
}

/// Delta's per-file statistics of a file `table` wrote: `numRecords`, and per top-level column
/// that is one Parquet leaf, `nullCount`, and `minValues`/`maxValues` for integer and timestamp
/// columns (timestamps in the protocol's millisecond text: the minimum rounded down, the maximum
/// up, so a reader that skips a file by them never skips a row).
fn stats_json(table: Table, md: &ParquetMetaData) -> String {
    use serde_json::{Map, Value, json};
    let schema = table.schema();
    let descr = md.file_metadata().schema_descr();
    let (mut mins, mut maxs, mut nulls) = (Map::new(), Map::new(), Map::new());
    for (i, field) in schema.fields().iter().enumerate() {
        if i >= descr.num_columns() || descr.column(i).path().parts()[0] != *field.name() {
            continue; // not one leaf per field (never so in podwire's schemas): left out
        }
        let is_time = matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(..));
        let nested = matches!(field.data_type(), arrow::datatypes::DataType::List(_));
        let (mut min, mut max, mut null_count, mut known) = (None::<i64>, None::<i64>, 0u64, true);
        for rg in md.row_groups() {
            let Some(s) = rg.column(i).statistics() else {
                known = false;
                break;
            };
            match s.null_count_opt() {
                Some(n) => null_count += n,
                None => known = false,
            }
            let (lo, hi) = match s {
                Statistics::Int32(v) => {
                    (v.min_opt().map(|x| i64::from(*x)), v.max_opt().map(|x| i64::from(*x)))
                }
                Statistics::Int64(v) => (v.min_opt().copied(), v.max_opt().copied()),
                _ => (None, None),
            };
            min = match (min, lo) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            max = match (max, hi) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        if !known {
            continue;
        }
        if !nested {
            nulls.insert(field.name().clone(), json!(null_count));
        }
        let (Some(lo), Some(hi)) = (min, max) else { continue };
        if is_time {
            let (Some(lo), Some(hi)) =
                (millis_text(lo.div_euclid(1000)), millis_text((hi + 999).div_euclid(1000)))
            else {
                continue;
            };
            mins.insert(field.name().clone(), Value::String(lo));
            maxs.insert(field.name().clone(), Value::String(hi));
        } else if !nested {
            mins.insert(field.name().clone(), json!(lo));
            maxs.insert(field.name().clone(), json!(hi));
        }
    }
    json!({
        "numRecords": md.file_metadata().num_rows(),
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": nulls,
    })
    .to_string()
}

/// The columns of `table` whose `minValues`/`maxValues` [`stats_json`] writes (integers and
/// times), as the table's `delta.dataSkippingStatsColumns` declares them. Declared, because a
/// reader may otherwise take the first 32 columns as having statistics and read a missing
/// string minimum as a null one: the `deltalake` package's pyarrow datasets then skip every
/// file on a filter over such a column (seen with deltalake 1.6).
fn stats_columns(table: Table) -> Vec<String> {
    use arrow::datatypes::DataType;
    table
        .schema()
        .fields()
        .iter()
        .filter(|f| f.data_type().is_integer() || matches!(f.data_type(), DataType::Timestamp(..)))
        .map(|f| f.name().clone())
        .collect()
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn millis_text(ms: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    Some(ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// The action removing `f` from its table (an expiry: `dataChange`).
fn remove_action(f: &LiveFile, now_ms: i64) -> Remove {
    Remove {
        path: f.path.clone(),
        data_change: true,
        deletion_timestamp: Some(now_ms),
        extended_file_metadata: Some(true),
        partition_values: partition::of_path(&f.path).map(|(d, h)| {
            HashMap::from([
                (partition::DATE.to_string(), Some(d)),
                (partition::HOUR.to_string(), Some(h)),
            ])
        }),
        size: Some(i64::try_from(f.size).unwrap_or(i64::MAX)),
        ..Remove::default()
    }
}

/// A file of a table's current snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Path relative to the table's root.
    pub path: String,
    /// Bytes, as the log says.
    pub size: u64,
    /// Rows, as the log says (`None` without statistics).
    pub rows: Option<u64>,
}

/// One version of a table's history.
#[derive(Debug, Clone)]
pub struct Version {
    /// The version number.
    pub version: u64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The operation (`WRITE`, `CREATE TABLE`, `DELETE`, `OPTIMIZE`, `VACUUM END`, …).
    pub operation: String,
    /// Its parameters and metrics, as the log records them.
    pub details: serde_json::Value,
}

/// The Delta log of every table of one store. Its calls block (the writers are plain threads);
/// their asynchronous work runs on a small runtime of its own.
pub struct DeltaLog {
    location: Location,
    runtime: tokio::runtime::Runtime,
    /// Tables opened so far, with the snapshot of their last load or commit.
    tables: Mutex<HashMap<Table, DeltaTable>>,
}

impl std::fmt::Debug for DeltaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaLog").field("location", &self.location).finish_non_exhaustive()
    }
}

impl DeltaLog {
    /// The log of the store at `location`.
    ///
    /// # Errors
    /// [`Error::Delta`] when its runtime cannot start.
    pub fn new(location: &Location) -> Result<Self> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
                Error::Delta {
                    table: "",
                    what: format!("cannot start the log's I/O runtime: {e}"),
                    retryable: false,
                }
            })?;
        Ok(DeltaLog { location: location.clone(), runtime, tables: Mutex::new(HashMap::new()) })
    }

    /// Runs `fut` to completion on the log's runtime, from a plain thread or from inside
    /// another runtime (then on a thread of its own: a runtime cannot block inside one).
    fn run<F: std::future::Future + Send>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.runtime.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            self.runtime.block_on(fut)
        }
    }

    /// The root of `table`: its URL and a store whose paths are relative to it.
    fn log_store(&self, table: Table) -> Result<LogStoreRef> {
        let (root, url, prefix) = self.root_of(table)?;
        let prefixed: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(Arc::clone(&root), prefix));
        Ok(default_logstore(prefixed, root, &url, &StorageConfig::default()))
    }

    /// The store `table` is in, its URL and its folder's path in that store.
    fn root_of(
        &self,
        table: Table,
    ) -> Result<(Arc<dyn ObjectStore>, url::Url, object_store::path::Path)> {
        let bad = |what: String| Error::Delta { table: table.name(), what, retryable: false };
        let found: (Arc<dyn ObjectStore>, url::Url, object_store::path::Path) = match &self.location
        {
            Location::Local(dir) => {
                let dir = std::path::absolute(dir.join(table.name()))
                    .map_err(|e| bad(format!("{}: {e}", dir.display())))?;
                let url = url::Url::from_directory_path(&dir)
                    .map_err(|()| bad(format!("{}: not an absolute path", dir.display())))?;
                let prefix = object_store::path::Path::from_absolute_path(&dir)
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(object_store::local::LocalFileSystem::new()), url, prefix)
            }
            Location::Bucket(b) => {
                let url = url::Url::parse(&format!("{}/{}/", b.url(), table.name()))
                    .map_err(|e| bad(e.to_string()))?;
                (b.object_store(), url, b.key(table.name()))
            }
        };
        Ok(found)
    }

    fn error(table: Table, e: &DeltaTableError) -> Error {
        use deltalake_core::kernel::transaction::{
            CommitConflictError as C, TransactionError as T,
        };
        // What a retry can mend: the store's I/O (an outage, a full disk) and commits that lost
        // every race to concurrent writers.
        let retryable = match e {
            DeltaTableError::ObjectStore { .. }
            | DeltaTableError::Io { .. }
            | DeltaTableError::VersionAlreadyExists(_) => true,
            DeltaTableError::Transaction { source } => {
                // A change of the table's metadata or protocol by another process (a property
                // declared) conflicts with every commit planned before it: a retry loads the
                // table again.
                matches!(
                    source,
                    T::ObjectStore { .. }
                        | T::VersionAlreadyExists(_)
                        | T::MaxCommitAttempts(_)
                        | T::CommitConflict(C::MetadataChanged | C::ProtocolChanged(_))
                )
            }
            _ => false,
        };
        Error::Delta { table: table.name(), what: e.to_string(), retryable }
    }

    /// `table` loaded at its newest version; `None` when it has no log yet.
    async fn load(
        log_store: LogStoreRef,
    ) -> std::result::Result<Option<DeltaTable>, DeltaTableError> {
        if !log_store.is_delta_table_location().await? {
            return Ok(None);
        }
        let mut t = DeltaTable::new(log_store);
        match t.load().await {
            Ok(()) => Ok(Some(t)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The table's schema as Delta declares it: the columns of the files, every one nullable
    /// (a file written before a column existed has none), then the partition columns.
    fn delta_schema(table: Table) -> Result<StructType> {
        let schema = table.schema();
        let mut fields: Vec<arrow::datatypes::Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true).with_metadata(HashMap::new()))
            .collect();
        for p in partition::COLUMNS {
            fields.push(arrow::datatypes::Field::new(p, arrow::datatypes::DataType::Utf8, true));
        }
        let arrow_schema = arrow::datatypes::Schema::new(fields);
        (&arrow_schema).try_into_kernel().map_err(|e| Error::Delta {
            table: table.name(),
            what: format!("schema not expressible in Delta: {e}"),
            retryable: false,
        })
    }

    /// Creates `table` unless it exists (another writer may create it at the same moment: then
    /// its table is loaded). The files already in its hour folders (a store written before
    /// podwire kept a log) are added by the creating commit: creating a table converts it.
    async fn create(
        table: Table,
        log_store: LogStoreRef,
        adopt: Vec<DataFile>,
    ) -> std::result::Result<DeltaTable, DeltaTableError> {
        let schema =
            Self::delta_schema(table).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
        let now = now_ms();
        let created = CreateBuilder::new()
            .with_actions(adopt.iter().map(|f| Action::Add(f.add(now))))
            .with_log_store(Arc::clone(&log_store))
            .with_table_name(table.name())
            .with_comment(format!("podwire {} (schemas/README.md)", table.name()))
            .with_columns(schema.fields().cloned())
            .with_partition_columns(partition::COLUMNS)
            .with_save_mode(SaveMode::Ignore)
            .with_configuration_property(
                TableProperty::DeletedFileRetentionDuration,
                Some(DELETED_FILE_RETENTION),
            )
            .with_configuration_property(TableProperty::LogRetentionDuration, Some(LOG_RETENTION))
            .with_configuration_property(
                TableProperty::DataSkippingStatsColumns,
                Some(stats_columns(table).join(",")),
            )
            .await;
        match created {
            Ok(t) => Ok(t),
            Err(e) => match Self::load(log_store).await? {
                Some(t) => Ok(t),
                None => Err(e),
            },
        }
    }

    /// `t` with its `delta.dataSkippingStatsColumns` declared ([`stats_columns`]): a table
    /// created by podwire before it declared them gets them in a commit of their own (a lost
    /// race to another writer doing the same is fine: the table is loaded again).
    async fn declare_stats_columns(
        table: Table,
        t: DeltaTable,
    ) -> std::result::Result<DeltaTable, DeltaTableError> {
        const KEY: &str = "delta.dataSkippingStatsColumns";
        if t.snapshot()?.metadata().configuration().contains_key(KEY) {
            return Ok(t);
        }
        let log_store = t.log_store();
        let properties = HashMap::from([(KEY.to_string(), stats_columns(table).join(","))]);
        match t.set_tbl_properties().with_properties(properties).await {
            Ok(t) => Ok(t),
            Err(_) => Self::load(Arc::clone(&log_store)).await?.ok_or_else(|| {
                DeltaTableError::Generic("the table's log went away while it was open".into())
            }),
        }
    }

    /// Takes the opened `table` (loading or creating it) to work on, and puts it back after.
    fn with_table<T>(
        &self,
        table: Table,
        create: bool,
        f: impl for<'t> FnOnce(
            &'t mut DeltaTable,
        ) -> BoxFuture<'t, std::result::Result<T, DeltaTableError>>
        + Send,
    ) -> Result<Option<T>>
    where
        T: Send,
    {
        let mut tables = self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let opened = tables.remove(&table);
        let log_store = self.log_store(table)?;
        let found = self.root_of(table)?;
        let result = self.run(async move {
            let mut t = match opened {
                Some(t) => t,
                None => match Self::load(Arc::clone(&log_store)).await? {
                    Some(t) => t,
                    None if create => {
                        let (store, _, prefix) = found;
                        let adopt = existing_files(table, store, prefix).await?;
                        Self::create(table, log_store, adopt).await?
                    }
                    None => return Ok(None),
                },
            };
            if create {
                t = Self::declare_stats_columns(table, t).await?;
            }
            let out = f(&mut t).await;
            Ok::<_, DeltaTableError>(Some((t, out)))
        });
        match result {
            Ok(Some((t, out))) => {
                tables.insert(table, t);
                out.map(Some).map_err(|e| Self::error(table, &e))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(Self::error(table, &e)),
        }
    }

    /// Adds `files` to `table` (created if it has no log yet) in one commit, with the
    /// application transactions `txns` (`appId` → version) in the same commit. Returns the
    /// version committed. Locally the commit's log entry is fsynced before this returns.
    ///
    /// # Errors
    /// [`Error::Delta`]: retryable for I/O and lost races, not for what a retry cannot mend.
    pub fn append(&self, table: Table, files: &[DataFile], txns: &[(String, i64)]) -> Result<u64> {
        let now = now_ms();
        let actions: Vec<Action> = files.iter().map(|f| Action::Add(f.add(now))).collect();
        let props = CommitProperties::default()
            .with_max_retries(COMMIT_RETRIES)
            .with_application_transactions(
                txns.iter()
                    .map(|(app, v)| Transaction::new_with_last_update(app, *v, Some(now)))
                    .collect(),
            );
        let op = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(partition::COLUMNS.iter().map(|p| (*p).to_string()).collect()),
            predicate: None,
        };
        let metrics = serde_json::json!({
            "numFiles": files.len().to_string(),
            "numOutputRows": files.iter().map(|f| f.rows).sum::<u64>().to_string(),
            "numOutputBytes": files.iter().map(|f| f.size).sum::<u64>().to_string(),
        });
        // A blind append: it read nothing, so no concurrent commit (another writer's files, an
        // expiry, a compaction) can make it wrong; concurrent expiries and compactions then do
        // not conflict with it either.
        let props = props.with_metadata([
            ("operationMetrics".to_string(), metrics),
            ("isBlindAppend".to_string(), serde_json::Value::Bool(true)),
        ]);
        let version = self.commit(table, actions, props, op, true)?;
        self.sync_log(table, version);
        Ok(version)
    }

    /// Replaces, in one commit, `removed` by `added` (the same rows in fewer files) in `table`:
    /// a compaction, with `dataChange` false in both so that readers of the log's changes skip
    /// it. The commit carries an application transaction `podwire-compact:<hour>`, so that two
    /// compactions of the same hour running at once cannot both commit (the second conflicts);
    /// one also conflicts with an expiry that removed any file in the meantime. Returns the
    /// version.
    ///
    /// # Errors
    /// [`Error::Delta`]; a conflict (the files changed meanwhile) is not retryable: the
    /// compaction of that hour is abandoned, and its new files are orphans.
    pub fn replace(
        &self,
        table: Table,
        removed: &[LiveFile],
        added: &[DataFile],
        hour: &str,
        target_size: u64,
    ) -> Result<u64> {
        let now = now_ms();
        let mut actions: Vec<Action> = removed
            .iter()
            .map(|f| {
                let mut r = remove_action(f, now);
                r.data_change = false;
                Action::Remove(r)
            })
            .collect();
        actions.extend(added.iter().map(|f| {
            let mut a = f.add(now);
            a.data_change = false;
            Action::Add(a)
        }));
        let op = DeltaOperation::Optimize {
            predicate: Some(format!("hour partition {hour}")),
            target_size: i64::try_from(target_size).unwrap_or(i64::MAX),
        };
        let metrics = serde_json::json!({
            "numFiles": added.len().to_string(),
            "numRemovedFiles": removed.len().to_string(),
            "numOutputRows": added.iter().map(|f| f.rows).sum::<u64>().to_string(),
            "numOutputBytes": added.iter().map(|f| f.size).sum::<u64>().to_string(),
            "numRemovedBytes": removed.iter().map(|f| f.size).sum::<u64>().to_string(),
        });
        let props = CommitProperties::default()
            .with_max_retries(COMMIT_RETRIES)
            .with_application_transaction(Transaction::new_with_last_update(
                format!("podwire-compact:{hour}"),
                now,
                Some(now),
            ))
            .with_metadata([("operationMetrics".to_string(), metrics)]);
        let version = self.commit(table, actions, props, op, false)?;
        self.sync_log(table, version);
        Ok(version)
    }

    /// Removes `paths` (relative to the table root) from `table` in one commit: expiry
    /// (`data_change`) or the old half of a compaction (`!data_change`). Returns the version.
    ///
    /// # Errors
    /// As [`Self::append`].
    pub fn remove(&self, table: Table, files: &[LiveFile], predicate: &str) -> Result<Option<u64>> {
        if files.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let actions: Vec<Action> =
            files.iter().map(|f| Action::Remove(remove_action(f, now))).collect();
        let op = DeltaOperation::Delete { predicate: Some(predicate.to_string()) };
        let metrics = serde_json::json!({
            "numRemovedFiles": files.len().to_string(),
            "numDeletedRows": files.iter().filter_map(|f| f.rows).sum::<u64>().to_string(),
            "numRemovedBytes": files.iter().map(|f| f.size).sum::<u64>().to_string(),
        });
        let props = CommitProperties::default()
            .with_max_retries(COMMIT_RETRIES)
            .with_metadata([("operationMetrics".to_string(), metrics)]);
        let version = self.commit(table, actions, props, op, false)?;
        self.sync_log(table, version);
        Ok(Some(version))
    }

    /// Commits `actions` after the newest version. With `blind`, a commit that conflicts with
    /// a concurrent one (delta-rs counts every file of the snapshot as read, so an append
    /// conflicts with any concurrent removal) is tried again on the new snapshot: right for an
    /// append, which depends on nothing it read.
    fn commit(
        &self,
        table: Table,
        actions: Vec<Action>,
        props: CommitProperties,
        op: DeltaOperation,
        blind: bool,
    ) -> Result<u64> {
        let version = self.with_table(table, true, |t| {
            Box::pin(async move {
                let mut attempt = 0;
                loop {
                    let snapshot = t.snapshot()?.clone();
                    let done = CommitBuilder::from(props.clone())
                        .with_actions(actions.clone())
                        .build(Some(&snapshot), t.log_store(), op.clone())
                        .await;
                    match done {
                        Ok(done) => {
                            let v = done.version();
                            t.state = Some(done.snapshot());
                            return Ok(v);
                        }
                        Err(DeltaTableError::Transaction {
                            source:
                                deltalake_core::kernel::transaction::TransactionError::CommitConflict(
                                    _,
                                ),
                        }) if blind && attempt < COMMIT_RETRIES => {
                            attempt += 1;
                            t.update_incremental(None).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            })
        })?;
        version.ok_or_else(|| Error::Delta {
            table: table.name(),
            what: "no table".into(),
            retryable: false,
        })
    }

    /// Makes a local commit durable: its log entry and the log folder fsynced (object stores
    /// are durable once the put returned).
    fn sync_log(&self, table: Table, version: u64) {
        if let Location::Local(root) = &self.location {
            let dir = root.join(table.name()).join("_delta_log");
            if let Ok(f) = std::fs::File::open(dir.join(format!("{version:020}.json"))) {
                let _ = f.sync_all();
            }
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
    }

    /// Makes `table` a Delta table if it is not one: a log whose first version adds every file
    /// of its hour folders. Returns the files adopted, `None` when it had a log already.
    ///
    /// # Errors
    /// [`Error::Delta`] when the folders, a file's footer or the log cannot be read or written.
    pub fn convert(&self, table: Table) -> Result<Option<Vec<LiveFile>>> {
        if self.files(table)?.is_some() {
            return Ok(None);
        }
        self.with_table(table, true, |_| Box::pin(async { Ok(()) }))?;
        self.files(table)
    }

    /// Whether `table`'s log and its files agree: every file of the snapshot is there, with the
    /// size and rows the log says, and no file in its hour folders older than `grace_s` seconds
    /// is outside the snapshot (an orphan: a write that died before its commit, or a removed
    /// file the vacuum has not deleted yet). `None` when it has no log.
    ///
    /// # Errors
    /// [`Error::Delta`] when the log, the folders or a footer cannot be read.
    pub fn check(&self, table: Table, grace_s: i64) -> Result<Option<Check>> {
        let Some(live) = self.files(table)? else { return Ok(None) };
        let (store, _, prefix) = self.root_of(table)?;
        let on_disk = self
            .run(existing_files_aged(table, store, prefix))
            .map_err(|e| Self::error(table, &e))?;
        let mut report = Check { files: live.len() as u64, ..Check::default() };
        let by_path: HashMap<&str, &(DataFile, i64)> =
            on_disk.iter().map(|f| (f.0.path.as_str(), f)).collect();
        for f in &live {
            report.rows += f.rows.unwrap_or(0);
            match by_path.get(f.path.as_str()) {
                None => report
                    .problems
                    .push(format!("missing: {} is in the log but not in the store", f.path)),
                Some((d, _)) if d.size != f.size => report.problems.push(format!(
                    "size: {} has {} bytes, the log says {}",
                    f.path, d.size, f.size
                )),
                Some((d, _)) if f.rows.is_some_and(|r| r != d.rows) => {
                    report.problems.push(format!(
                        "rows: {} has {} rows, the log says {}",
                        f.path,
                        d.rows,
                        f.rows.unwrap_or(0)
                    ))
                }
                Some(_) => {}
            }
        }
        let live_paths: std::collections::HashSet<&str> =
            live.iter().map(|f| f.path.as_str()).collect();
        let now = now_ms();
        for (d, modified_ms) in &on_disk {
            if !live_paths.contains(d.path.as_str()) {
                let age_s = (now - modified_ms) / 1000;
                if age_s > grace_s {
                    report.problems.push(format!(
                        "orphan: {} ({} rows, {age_s} s old) is not in the log; `podwire store vacuum` deletes it",
                        d.path, d.rows
                    ));
                } else {
                    report.recent_orphans += 1;
                }
            }
        }
        Ok(Some(report))
    }

    /// The files of `table`'s newest snapshot (refreshed now); `None` when it has no log.
    ///
    /// # Errors
    /// [`Error::Delta`] when the log cannot be read.
    pub fn files(&self, table: Table) -> Result<Option<Vec<LiveFile>>> {
        self.with_table(table, false, |t| {
            Box::pin(async move {
                t.update_incremental(None).await?;
                let files = t
                    .snapshot()?
                    .log_data()
                    .iter()
                    .map(|f| LiveFile {
                        path: f.path().into_owned(),
                        size: u64::try_from(f.size()).unwrap_or(0),
                        rows: f.num_records().map(|n| n as u64),
                    })
                    .collect();
                Ok(files)
            })
        })
    }

    /// The version of application `app_id`'s last transaction in `table`, if any.
    ///
    /// # Errors
    /// [`Error::Delta`] when the log cannot be read.
    pub fn txn_version(&self, table: Table, app_id: &str) -> Result<Option<i64>> {
        let app = app_id.to_string();
        Ok(self
            .with_table(table, false, |t| {
                Box::pin(async move {
                    t.update_incremental(None).await?;
                    let ls = t.log_store();
                    t.snapshot()?.transaction_version(ls.as_ref(), app).await
                })
            })?
            .flatten())
    }

    /// The newest `limit` versions of `table`, newest first; `None` when it has no log.
    ///
    /// # Errors
    /// [`Error::Delta`] when the log cannot be read.
    pub fn history(&self, table: Table, limit: Option<usize>) -> Result<Option<Vec<Version>>> {
        use futures::StreamExt as _;
        self.with_table(table, false, |t| {
            Box::pin(async move {
                t.update_incremental(None).await?;
                let newest = t.version().unwrap_or(0);
                let infos: Vec<_> = t.history(limit).collect().await;
                let mut out = Vec::new();
                for (i, info) in infos.into_iter().enumerate() {
                    let info = info?;
                    let mut details = serde_json::Map::new();
                    if let Some(p) = &info.operation_parameters {
                        details.insert("parameters".into(), serde_json::json!(p));
                    }
                    for (k, v) in &info.info {
                        details.insert(k.clone(), v.clone());
                    }
                    out.push(Version {
                        version: newest.saturating_sub(i as u64),
                        timestamp_ms: info.timestamp,
                        operation: info.operation.clone().unwrap_or_default(),
                        details: serde_json::Value::Object(details),
                    });
                }
                Ok(out)
            })
        })
    }

    /// Deletes the files no snapshot within the grace period still needs: files removed from
    /// `table` longer ago than its `delta.deletedFileRetentionDuration`, and files nobody
    /// committed (a write that died before its commit) older than that. Returns the paths
    /// deleted (or, with `dry_run`, that would be).
    ///
    /// # Errors
    /// [`Error::Delta`] when the log or the store cannot be read or written.
    pub fn vacuum(&self, table: Table, dry_run: bool) -> Result<Vec<String>> {
        let deleted = self.with_table(table, false, |t| {
            Box::pin(async move {
                t.update_incremental(None).await?;
                let (t2, metrics) = t
                    .clone()
                    .vacuum()
                    .with_mode(deltalake_core::operations::vacuum::VacuumMode::Full)
                    .with_dry_run(dry_run)
                    .await?;
                *t = t2;
                Ok(metrics.files_deleted)
            })
        })?;
        Ok(deleted.unwrap_or_default())
    }
}

/// What [`DeltaLog::check`] found.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// Files in the snapshot.
    pub files: u64,
    /// Rows in the snapshot, as the log says.
    pub rows: u64,
    /// Files outside the snapshot younger than the grace period (a write about to commit).
    pub recent_orphans: u64,
    /// What disagrees, one sentence each.
    pub problems: Vec<String>,
}

/// [`existing_files`] with each file's modification time (milliseconds since the epoch).
async fn existing_files_aged(
    table: Table,
    store: Arc<dyn ObjectStore>,
    prefix: object_store::path::Path,
) -> std::result::Result<Vec<(DataFile, i64)>, DeltaTableError> {
    let mut out = Vec::new();
    for (f, m) in parquet_files(table, store, prefix).await? {
        out.push((f, m.last_modified.timestamp_millis()));
    }
    Ok(out)
}

/// The Parquet files in `table`'s hour folders (`prefix/date=…/hour=…/NAME.parquet`; hidden
/// files, being written, are not), with the statistics of their footers.
async fn existing_files(
    table: Table,
    store: Arc<dyn ObjectStore>,
    prefix: object_store::path::Path,
) -> std::result::Result<Vec<DataFile>, DeltaTableError> {
    Ok(parquet_files(table, store, prefix).await?.into_iter().map(|(f, _)| f).collect())
}

async fn parquet_files(
    table: Table,
    store: Arc<dyn ObjectStore>,
    prefix: object_store::path::Path,
) -> std::result::Result<Vec<(DataFile, object_store::ObjectMeta)>, DeltaTableError> {
    use futures::TryStreamExt as _;
    let listed: Vec<object_store::ObjectMeta> = match store.list(Some(&prefix)).try_collect().await
    {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let depth = prefix.parts().count();
    let mut out = Vec::new();
    for m in listed {
        let rel: Vec<String> =
            m.location.parts().skip(depth).map(|p| p.as_ref().to_string()).collect();
        let [date, hour, name] = rel.as_slice() else { continue };
        if name.starts_with('.')
            || !name.ends_with(".parquet")
            || partition::bucket_of_folders(date, hour).is_none()
        {
            continue;
        }
        let md = read_footer(store.as_ref(), &m).await.map_err(|e| {
            DeltaTableError::Generic(format!("the footer of `{}`: {e}", m.location))
        })?;
        let f = DataFile::new(table, rel.join("/"), m.size, &md)
            .map_err(|e| DeltaTableError::Generic(e.to_string()))?;
        out.push((f, m));
    }
    Ok(out)
}

/// The metadata in the footer of the Parquet file `m`: two ranged reads (the footer's length,
/// then the footer), not the file.
async fn read_footer(
    store: &dyn ObjectStore,
    m: &object_store::ObjectMeta,
) -> std::result::Result<ParquetMetaData, String> {
    use object_store::ObjectStoreExt as _;
    use parquet::file::FOOTER_SIZE;
    use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
    let tail_at = m.size.checked_sub(FOOTER_SIZE as u64).ok_or("shorter than a Parquet footer")?;
    let tail = store.get_range(&m.location, tail_at..m.size).await.map_err(|e| e.to_string())?;
    let tail: &[u8; FOOTER_SIZE] =
        tail.as_ref().try_into().map_err(|_| "short read of the footer")?;
    let len = FooterTail::try_new(tail).map_err(|e| e.to_string())?.metadata_length() as u64;
    let start = tail_at.checked_sub(len).ok_or("footer longer than the file")?;
    let meta = store.get_range(&m.location, start..tail_at).await.map_err(|e| e.to_string())?;
    ParquetMetaDataReader::decode_metadata(&meta).map_err(|e| e.to_string())
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreConfig, write_sorted};
    use crate::writer::tests::batch;

    /// Writes rows starting at `starts` (seconds) as files of hour `hour` under `stem`.
    fn write(config: &StoreConfig, hour: i64, stem: &str, starts: &[i64]) -> Vec<DataFile> {
        write_sorted(config, Table::Connections, hour, stem, 0, vec![batch(starts)]).unwrap().data
    }

    #[test]
    fn appends_are_the_snapshot_and_an_uncommitted_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        let log = DeltaLog::new(&config.location).unwrap();
        assert_eq!(log.files(Table::Connections).unwrap(), None, "no log before the first commit");
        let a = write(&config, 0, "a", &[10, 20, 30]);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].path, "date=1970-01-01/hour=00/a-00000.parquet");
        let stats: serde_json::Value = serde_json::from_str(&a[0].stats).unwrap();
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["conn_id"], 10);
        assert_eq!(stats["maxValues"]["conn_id"], 30);
        assert_eq!(
            stats["minValues"][podwire_schemas::connections::col::START_TS],
            "1970-01-01T00:00:10.000Z"
        );
        let v = log.append(Table::Connections, &a, &[("app".into(), 7)]).unwrap();
        write(&config, 1, "uncommitted", &[3_700]);
        let files = log.files(Table::Connections).unwrap().unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!((files[0].path.as_str(), files[0].rows), (a[0].path.as_str(), Some(3)));
        assert_eq!(log.txn_version(Table::Connections, "app").unwrap(), Some(7));
        assert_eq!(log.txn_version(Table::Connections, "other").unwrap(), None);
        // A second handle (another process) sees the same snapshot and commits after it.
        let other = DeltaLog::new(&config.location).unwrap();
        let b = write(&config, 0, "b", &[40]);
        assert_eq!(other.append(Table::Connections, &b, &[]).unwrap(), v + 1);
        assert_eq!(log.files(Table::Connections).unwrap().unwrap().len(), 2);
        // The uncommitted file is an orphan once older than the grace period.
        let c = log.check(Table::Connections, 3600).unwrap().unwrap();
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!((c.files, c.rows, c.recent_orphans), (2, 4, 1));
        let c = log.check(Table::Connections, -1).unwrap().unwrap();
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        assert!(
            c.problems[0].starts_with("orphan: date=1970-01-01/hour=01/uncommitted"),
            "{:?}",
            c.problems
        );
        let h = log.history(Table::Connections, None).unwrap().unwrap();
        let ops: Vec<&str> = h.iter().map(|v| v.operation.as_str()).collect();
        assert_eq!(ops, ["WRITE", "WRITE", "CREATE TABLE"], "{h:?}");
    }

    #[test]
    fn the_columns_with_statistics_are_declared_also_on_a_table_made_before() {
        const KEY: &str = "delta.dataSkippingStatsColumns";
        let declared = |log: &DeltaLog| {
            log.with_table(Table::Connections, false, |t| {
                Box::pin(
                    async move { Ok(t.snapshot()?.metadata().configuration().get(KEY).cloned()) },
                )
            })
            .unwrap()
            .flatten()
        };
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        let log = DeltaLog::new(&config.location).unwrap();
        log.append(Table::Connections, &write(&config, 0, "a", &[10]), &[]).unwrap();
        let cols = declared(&log).expect("declared when the table is made");
        let cols: Vec<&str> = cols.split(',').collect();
        assert!(cols.contains(&"conn_id") && cols.contains(&"start_ts"), "{cols:?}");
        assert!(!cols.contains(&"src_ip") && !cols.contains(&"outcome"), "{cols:?}");

        // A table made by an earlier podwire, without the declaration: the next writer adds it.
        let old = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(old.path());
        let log = DeltaLog::new(&config.location).unwrap();
        let log_store = log.log_store(Table::Connections).unwrap();
        let schema = DeltaLog::delta_schema(Table::Connections).unwrap();
        log.run(
            CreateBuilder::new()
                .with_log_store(log_store)
                .with_columns(schema.fields().cloned())
                .with_partition_columns(partition::COLUMNS)
                .into_future(),
        )
        .unwrap();
        let fresh = DeltaLog::new(&config.location).unwrap();
        assert_eq!(declared(&fresh), None);
        fresh.append(Table::Connections, &write(&config, 0, "b", &[20]), &[]).unwrap();
        assert_eq!(
            declared(&DeltaLog::new(&config.location).unwrap()),
            Some(stats_columns(Table::Connections).join(","))
        );
        let h = fresh.history(Table::Connections, None).unwrap().unwrap();
        let ops: Vec<&str> = h.iter().map(|v| v.operation.as_str()).collect();
        assert_eq!(ops, ["WRITE", "SET TBLPROPERTIES", "CREATE TABLE"], "{h:?}");
    }

    #[test]
    fn converting_adopts_the_folders_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        write(&config, 0, "old", &[1, 2]);
        write(&config, 1, "old", &[3_601]);
        std::fs::write(
            dir.path().join("connections/date=1970-01-01/hour=00/.being-written.tmp"),
            b"x",
        )
        .unwrap();
        let log = DeltaLog::new(&config.location).unwrap();
        let adopted = log.convert(Table::Connections).unwrap().unwrap();
        assert_eq!(adopted.len(), 2);
        assert_eq!(adopted.iter().filter_map(|f| f.rows).sum::<u64>(), 3);
        assert!(
            log.convert(Table::Connections).unwrap().is_none(),
            "a second convert does nothing"
        );
        let c = log.check(Table::Connections, 3600).unwrap().unwrap();
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }
}
