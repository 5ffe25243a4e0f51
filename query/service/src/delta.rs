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
use async_trait::async_trait;
use deltalake_core::DeltaTable;
use deltalake_core::logstore::{LogStore as _, StorageConfig, default_logstore};
use futures::stream::{BoxStream, StreamExt as _};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How old a table's cached snapshot may be before a listing brings it up to date.
pub const REFRESH: Duration = Duration::from_secs(2);

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
        DeltaListing { inner, root, root_url, tables: Arc::default() }
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
        if cached.loaded.is_some_and(|at| at.elapsed() < REFRESH) {
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
                cached.loaded = Some(Instant::now());
                return Ok(None);
            }
            let mut t = DeltaTable::new(log_store);
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
        let Some(t) = cached.table.as_ref() else { return Ok(None) };
        let snapshot = t.snapshot().map_err(error)?;
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
        })
    }
}
