//! Tables read as their Delta Lake snapshots: the files a table's `_delta_log/` says are in it,
//! not the files its folders hold.
//!
//! The store's files are found by DataFusion's listing tables, which list folders through the
//! session's object store. [`DeltaListing`] wraps that store (the memory-mapped local files of
//! [`crate::local`], or the bucket's client) and answers every listing under a table that has a
//! Delta log from the table's newest snapshot: files a writer has not committed yet, files a
//! compaction or expiry removed, and the log itself are not listed; everything else (reads, and
//! listings elsewhere) goes to the wrapped store unchanged. So every optimization of the listing
//! table stays (hour folders pruned by the query's time range, statistics, the declared sort
//! order, pushdown), and a query sees a set of added or removed files whole or not at all.
//!
//! Snapshots are cached per table and brought up to date (reading only the log entries since)
//! when older than [`REFRESH`], so what ingest committed is queryable within that. A table with
//! no log (a store written before podwire kept one, until `podwire store convert`) is listed
//! from its folders as before.
//!
//! A listing made [`AsOf`] an older version or time reads that snapshot instead, and keeps it:
//! "what did the store say before that compaction or expiry". Files a later compaction or
//! expiry removed stay readable for the vacuum's grace period, and only that long.
use crate::error::AsOfError;
use async_trait::async_trait;
use deltalake_core::DeltaTable;
use deltalake_core::logstore::{LogStore as _, StorageConfig, default_logstore};
use futures::stream::{BoxStream, StreamExt as _};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How old a table's cached snapshot may be before a listing brings it up to date: a running
/// `serve` answers at most this far behind the log, within the 10 s packet → answer budget
/// (benchmarks/README.md, freshness). A refresh reads only the log entries written since, and
/// only when a query asks.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Which older snapshot of the store a session reads (`podwire query --as-of`, the API's
/// `as_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The `connections` table at this version of its log (the versions `podwire store history`
    /// lists), and every other table as it was when that version was committed.
    Version(u64),
    /// Every table at its newest version committed at or before this time (epoch ms); a table
    /// whose first version is later is empty.
    Time(i64),
}

impl AsOf {
    /// A version number (fewer than 10 digits), or a time as [`crate::time::parse_time`] reads
    /// it (`now` and relative times from `now_ms`).
    ///
    /// # Errors
    /// [`crate::Error::Time`] for neither.
    pub fn parse(text: &str, now_ms: i64) -> crate::Result<Self> {
        let t = text.trim();
        if !t.is_empty() && t.len() < 10 && t.bytes().all(|b| b.is_ascii_digit()) {
            return t.parse().map(AsOf::Version).map_err(|e| crate::Error::Time {
                value: text.to_owned(),
                reason: format!("not a version: {e}"),
            });
        }
        crate::time::parse_time(t, now_ms).map(AsOf::Time).map_err(|e| match e {
            crate::Error::Time { value, reason } => crate::Error::Time {
                value,
                reason: format!("{reason}; or a version of the connections table's log (`podwire store history`)"),
            },
            other => other,
        })
    }
}

/// The table whose log versions [`AsOf::Version`] counts.
const VERSIONED: &str = "connections";

/// One table's snapshot as of `loaded`: its files, sorted by path; `None` when it has no log.
struct Cached {
    table: Option<DeltaTable>,
    files: Option<Arc<Vec<ObjectMeta>>>,
    loaded: Option<Instant>,
}

/// An object store whose listings under a Delta table come from the table's snapshot.
pub struct DeltaListing {
    inner: Arc<dyn ObjectStore>,
    /// The store's root in `inner` (tables are its first-level folders).
    root: Path,
    /// The root's URL (`file:///…/` or `s3://bucket/prefix/`), for the log stores.
    root_url: url::Url,
    /// Snapshots by table, shared by every handle ([`Self::clone_handle`]).
    tables: Arc<tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cached>>>>>,
    /// The older snapshot read instead of the newest, kept once loaded.
    as_of: Option<AsOf>,
    /// [`AsOf::Version`]'s commit time (epoch ms), once looked up.
    version_time: Arc<tokio::sync::OnceCell<i64>>,
}

impl std::fmt::Debug for DeltaListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaListing").field("root", &self.root).finish_non_exhaustive()
    }
}

impl std::fmt::Display for DeltaListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeltaListing({}, {})", self.inner, self.root)
    }
}

impl DeltaListing {
    /// `inner`, with the tables of the store at `root` (its path in `inner`, and its URL) listed
    /// from their Delta logs.
    pub fn new(inner: Arc<dyn ObjectStore>, root: Path, root_url: url::Url) -> Self {
        DeltaListing {
            inner,
            root,
            root_url,
            tables: Arc::default(),
            as_of: None,
            version_time: Arc::default(),
        }
    }

    /// This listing, reading the snapshots `as_of` instead of the newest.
    #[must_use]
    pub fn as_of(self, as_of: Option<AsOf>) -> Self {
        DeltaListing { as_of, ..self }
    }

    /// The table a path is in (the first folder below the store's root); `None` outside the
    /// store's tables.
    fn table_of(&self, path: &Path) -> Option<String> {
        path.prefix_match(&self.root)?.next().map(|p| p.as_ref().to_string())
    }

    /// The files of `table`'s snapshot (brought up to date if older than [`REFRESH`]); `None`
    /// when the table has no Delta log.
    async fn files(&self, table: &str) -> object_store::Result<Option<Arc<Vec<ObjectMeta>>>> {
        let slot = {
            let mut tables = self.tables.lock().await;
            Arc::clone(tables.entry(table.to_string()).or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Cached { table: None, files: None, loaded: None }))
            }))
        };
        let mut cached = slot.lock().await;
        // An older snapshot does not change: loaded once, kept.
        if cached.loaded.is_some_and(|at| self.as_of.is_some() || at.elapsed() < REFRESH) {
            return Ok(cached.files.clone());
        }
        let error = |e: deltalake_core::DeltaTableError| object_store::Error::Generic {
            store: "DeltaListing",
            source: format!("the Delta log of table `{table}`: {e}").into(),
        };
        let table_path = self.root.clone().join(table);
        if cached.table.is_none() {
            let url = self.root_url.join(&format!("{table}/")).map_err(|e| {
                object_store::Error::Generic { store: "DeltaListing", source: Box::new(e) }
            })?;
            let prefixed: Arc<dyn ObjectStore> =
                Arc::new(PrefixStore::new(Arc::clone(&self.inner), table_path.clone()));
            let log_store = default_logstore(
                Arc::clone(&prefixed),
                Arc::clone(&self.inner),
                &url,
                &StorageConfig::default(),
            );
            // A table with no log (or no folder) yet is listed from its folders.
            let has_log = log_store.is_delta_table_location().await.map_err(error)?;
            if !has_log {
                if self.as_of.is_some() {
                    self.no_history(table, &prefixed).await?;
                }
                cached.loaded = Some(Instant::now());
                return Ok(None);
            }
            let mut t = DeltaTable::new(log_store);
            if let Some(as_of) = self.as_of {
                let files = if self.load_as_of(&mut t, table, as_of).await? {
                    cached.table = Some(t);
                    return self.snapshot_files(&mut cached, &table_path).map_err(error);
                } else {
                    Arc::new(Vec::new())
                };
                cached.files = Some(Arc::clone(&files));
                cached.loaded = Some(Instant::now());
                return Ok(Some(files));
            }
            match t.load().await {
                Ok(()) => cached.table = Some(t),
                Err(deltalake_core::DeltaTableError::NotATable(_)) => {
                    cached.files = None;
                    cached.loaded = Some(Instant::now());
                    return Ok(None);
                }
                Err(e) => return Err(error(e)),
            }
        } else if let Some(t) = cached.table.as_mut() {
            t.update_incremental(None).await.map_err(error)?;
        }
        if cached.table.is_none() {
            return Ok(None);
        }
        self.snapshot_files(&mut cached, &table_path).map_err(error)
    }

    /// The files of the snapshot in `cached` (which has a table), cached with the time.
    fn snapshot_files(
        &self,
        cached: &mut Cached,
        table_path: &Path,
    ) -> Result<Option<Arc<Vec<ObjectMeta>>>, deltalake_core::DeltaTableError> {
        let Some(t) = cached.table.as_ref() else { return Ok(None) };
        let snapshot = t.snapshot()?;
        let mut files: Vec<ObjectMeta> = snapshot
            .log_data()
            .iter()
            .map(|f| ObjectMeta {
                location: Path::from_iter(table_path.parts().chain(f.object_store_path().parts())),
                last_modified: f.modification_datetime().unwrap_or_default(),
                size: u64::try_from(f.size()).unwrap_or(0),
                e_tag: None,
                version: None,
            })
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        let files = Arc::new(files);
        cached.files = Some(Arc::clone(&files));
        cached.loaded = Some(Instant::now());
        Ok(Some(files))
    }

    /// Loads `t` (the log of `table`) as of `as_of`; `false` when the table had no version yet
    /// then (it is empty at that time).
    async fn load_as_of(
        &self,
        t: &mut DeltaTable,
        table: &str,
        as_of: AsOf,
    ) -> object_store::Result<bool> {
        let fail = |reason: String| AsOfError(format!("table `{table}`: {reason}")).into_store();
        let at_ms = match as_of {
            AsOf::Version(v) if table == VERSIONED => {
                t.load_version(v).await.map_err(|e| {
                    fail(format!(
                        "no version {v} in its log ({e}); `podwire store history` lists the versions kept"
                    ))
                })?;
                return Ok(true);
            }
            AsOf::Version(v) => {
                *self
                    .version_time
                    .get_or_try_init(|| async {
                        match self.inner.head(&self.commit_path(VERSIONED, v)).await {
                            Ok(m) => Ok(m.last_modified.timestamp_millis()),
                            Err(object_store::Error::NotFound { .. }) => Err(AsOfError(format!(
                                "no version {v} in the log of table `{VERSIONED}`; `podwire store \
                             history` lists the versions kept"
                            ))
                            .into_store()),
                            Err(e) => Err(e),
                        }
                    })
                    .await?
            }
            AsOf::Time(ms) => ms,
        };
        let at = chrono::DateTime::from_timestamp_millis(at_ms)
            .ok_or_else(|| fail(format!("{at_ms} ms is no time")))?;
        t.load_with_datetime(at).await.map_err(|e| fail(e.to_string()))?;
        // delta-rs loads the oldest version it keeps when the time is before it.
        let version = t.version().unwrap_or(0);
        let committed = match self.inner.head(&self.commit_path(table, version)).await {
            Ok(m) => m.last_modified.timestamp_millis(),
            // Only a checkpoint left of it: older than anything asked of it.
            Err(object_store::Error::NotFound { .. }) => i64::MIN,
            Err(e) => return Err(e),
        };
        if committed <= at_ms {
            return Ok(true);
        }
        if version == 0 {
            return Ok(false);
        }
        Err(fail(format!(
            "its log keeps versions from {version} on (committed at {}), after {at}: the older \
             history has been cleaned up",
            chrono::DateTime::from_timestamp_millis(committed)
                .map_or_else(String::new, |t| t.to_rfc3339())
        )))
    }

    /// The commit file of `version` of `table`'s log, in the wrapped store.
    fn commit_path(&self, table: &str, version: u64) -> Path {
        let rest = Path::from(format!("{table}/_delta_log/{version:020}.json"));
        Path::from_iter(self.root.parts().chain(rest.parts()))
    }

    /// For a table without a log read `--as-of`: fine when it has no files (it never had rows),
    /// an error otherwise (its files have no history to read).
    async fn no_history(
        &self,
        table: &str,
        prefixed: &Arc<dyn ObjectStore>,
    ) -> object_store::Result<()> {
        match prefixed.list(None).next().await {
            None | Some(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Some(Err(e)) => Err(e),
            Some(Ok(_)) => Err(AsOfError(format!(
                "table `{table}` has files but no Delta log, so no history to read; `podwire \
                 store convert` makes the store's tables Delta tables"
            ))
            .into_store()),
        }
    }

    /// The snapshot's files under `prefix` (a table folder or below), or `None` when `prefix`
    /// is not in a table with a log.
    async fn files_under(&self, prefix: &Path) -> object_store::Result<Option<Vec<ObjectMeta>>> {
        let Some(table) = self.table_of(prefix) else { return Ok(None) };
        let Some(files) = self.files(&table).await? else { return Ok(None) };
        Ok(Some(files.iter().filter(|m| m.location.prefix_matches(prefix)).cloned().collect()))
    }
}

#[async_trait]
impl ObjectStore for DeltaListing {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let Some(prefix) = prefix.filter(|p| self.table_of(p).is_some()).cloned() else {
            return self.inner.list(prefix);
        };
        // The listing needs `self` past this call: the snapshot is read now, into a stream.
        let this = self.clone_handle();
        futures::stream::once(async move {
            match this.files_under(&prefix).await {
                Ok(Some(files)) => futures::stream::iter(files.into_iter().map(Ok)).boxed(),
                Ok(None) => this.inner.list(Some(&prefix)),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let offset = offset.clone();
        if prefix.is_some_and(|p| self.table_of(p).is_some()) {
            return self
                .list(prefix)
                .filter(move |m| {
                    let keep = m.as_ref().map_or(true, |m| m.location > offset);
                    futures::future::ready(keep)
                })
                .boxed();
        }
        self.inner.list_with_offset(prefix, &offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let Some(prefix) = prefix.filter(|p| self.table_of(p).is_some()) else {
            return self.inner.list_with_delimiter(prefix).await;
        };
        let Some(files) = self.files_under(prefix).await? else {
            return self.inner.list_with_delimiter(Some(prefix)).await;
        };
        let depth = prefix.parts().count();
        let mut objects = Vec::new();
        let mut folders = BTreeSet::new();
        for m in files {
            let parts: Vec<_> = m.location.parts().collect();
            if parts.len() == depth + 1 {
                objects.push(m);
            } else if parts.len() > depth + 1 {
                folders.insert(Path::from_iter(parts.into_iter().take(depth + 1)));
            }
        }
        Ok(ListResult { common_prefixes: folders.into_iter().collect(), objects })
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        opts: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, opts).await
    }
}

impl DeltaListing {
    /// A second handle on the same store and snapshot cache, for listings that outlive a call.
    fn clone_handle(&self) -> Arc<Self> {
        Arc::new(DeltaListing {
            inner: Arc::clone(&self.inner),
            root: self.root.clone(),
            root_url: self.root_url.clone(),
            tables: Arc::clone(&self.tables),
            as_of: self.as_of,
            version_time: Arc::clone(&self.version_time),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AsOf;

    #[test]
    fn as_of_reads_versions_and_times_and_says_what_it_wants() {
        let now = 1_800_000_000_000;
        assert_eq!(AsOf::parse("41", now).unwrap(), AsOf::Version(41));
        assert_eq!(AsOf::parse(" 0 ", now).unwrap(), AsOf::Version(0));
        assert_eq!(AsOf::parse("-2h", now).unwrap(), AsOf::Time(now - 7_200_000));
        assert_eq!(
            AsOf::parse("2026-11-01T00:00:00Z", now).unwrap(),
            AsOf::Time(1_793_491_200_000)
        );
        // Ten digits and more are epoch milliseconds, as for --from.
        assert_eq!(AsOf::parse("1793491200000", now).unwrap(), AsOf::Time(1_793_491_200_000));
        let e = AsOf::parse("last tuesday", now).unwrap_err().to_string();
        assert!(e.contains("podwire store history"), "{e}");
    }
}
