//! The object store a folder store is read through: the files, mapped into memory.
//!
//! DataFusion reads a local table through `object_store`'s `LocalFileSystem`, which copies each
//! column chunk out of the page cache into a new buffer that it first fills with zeros. A `perf`
//! of a selective KFL query over 10 M rows put 10 % of its CPU in those three steps (zeroing,
//! the kernel's copy, the page-cache lookups). Here every read of a file maps it once and hands
//! out slices of the mapping: no copy and no zeroing, and pages the decoder never touches are
//! never read.
//!
//! Mapping is safe only for files nobody truncates or rewrites in place while they are read:
//! the kernel answers an access past the new end with `SIGBUS`. The store's files are immutable:
//! podwire writes each under a hidden temporary name and renames it into place (see
//! `ingest/src/store.rs`), and a file deleted (or replaced by a rename) while it is mapped stays
//! readable through the mapping. Whatever else puts files into a store must also write them
//! aside and rename them in. Every other operation goes to `LocalFileSystem` unchanged, except
//! writes, which this read-only service refuses.
//!
//! Mappings are kept ([`Mappings`]): a query reads a file several times (its Bloom filters,
//! then its filter columns, then the rest), and each unmapping interrupts every core to flush
//! its TLB. In a `perf` of a 0.2 s query over the 336 files of 14 days, mapping, unmapping and
//! faulting the pages in again took 14 % of the CPU. A kept mapping is used again while the
//! file at its path is the same (device, inode, size and modification time); one unused for
//! [`IDLE`] is dropped at the next read, so a file a compaction or an expiry deleted is
//! released within that time of the next query.
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// `LocalFileSystem` with reads through memory mappings and no writes.
#[derive(Debug, Default)]
pub struct MappedFiles {
    inner: LocalFileSystem,
    mappings: Arc<Mappings>,
}

/// A mapping unused this long is dropped at the next read.
pub const IDLE: Duration = Duration::from_secs(60);
/// At most this many mappings are kept; past it, the least recently used are dropped.
pub const KEPT: usize = 8192;

/// The mappings kept, by path ([module doc](self)).
#[derive(Debug, Default)]
struct Mappings {
    by_path: Mutex<HashMap<PathBuf, Mapping>>,
}

/// One kept mapping: the whole file, which file it is, and when it was last used.
#[derive(Debug)]
struct Mapping {
    whole: Bytes,
    identity: Identity,
    used: Instant,
}

/// What tells one file at a path from another: a file renamed over it, or rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self { dev: meta.dev(), ino: meta.ino(), len: meta.len(), modified: meta.modified().ok() }
    }
}

impl Mappings {
    /// The whole file at `path`: the kept mapping when it is still that file, else a new one
    /// (kept). A blocking call: it may open and stat the file.
    fn whole(&self, path: &std::path::Path) -> object_store::Result<Bytes> {
        let meta = std::fs::metadata(path).map_err(|source| io_error(path, source))?;
        let identity = Identity::of(&meta);
        let now = Instant::now();
        {
            let mut by_path = self.lock();
            if let Some(kept) = by_path.get_mut(path)
                && kept.identity == identity
            {
                kept.used = now;
                return Ok(kept.whole.clone());
            }
        }
        let file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
        // The file opened may not be the one just looked at (renamed over in between): the
        // mapping is kept under the identity of the file actually opened.
        let identity = Identity::of(&file.metadata().map_err(|source| io_error(path, source))?);
        let whole = map(&file, path)?;
        let mut by_path = self.lock();
        by_path.retain(|_, kept| now.saturating_duration_since(kept.used) < IDLE);
        if by_path.len() >= KEPT {
            let mut used: Vec<Instant> = by_path.values().map(|k| k.used).collect();
            used.sort_unstable();
            let cut = used[by_path.len() - KEPT / 2];
            by_path.retain(|_, kept| kept.used >= cut);
        }
        by_path.insert(path.to_path_buf(), Mapping { whole: whole.clone(), identity, used: now });
        Ok(whole)
    }

    /// How many mappings are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Mapping>> {
        // A panic while the lock was held left the map as it was: keep using it.
        self.by_path.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl MappedFiles {
    /// A store over the whole file system, like `LocalFileSystem::new()`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Display for MappedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MappedFiles({})", self.inner)
    }
}

/// The whole of `file` (at `path`), mapped; empty for an empty file (which cannot be mapped).
#[allow(unsafe_code)]
fn map(file: &std::fs::File, path: &std::path::Path) -> object_store::Result<Bytes> {
    let len = file.metadata().map_err(|source| io_error(path, source))?.len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the store's files are immutable once renamed into place (module doc); a mapping
    // of such a file is plain read-only memory for as long as the `Bytes` keep it alive.
    let mapping = unsafe { memmap2::Mmap::map(file) }.map_err(|source| io_error(path, source))?;
    Ok(Bytes::from_owner(mapping))
}

/// `range` of the mapped `file` (at `path`); a range past the end is an error, as in
/// `LocalFileSystem`.
fn slice(path: &std::path::Path, file: &Bytes, range: &Range<u64>) -> object_store::Result<Bytes> {
    let len = file.len() as u64;
    if range.start > range.end || range.end > len {
        return Err(object_store::Error::Generic {
            store: STORE,
            source: format!(
                "cannot read bytes {}..{} of {}: the file has {len} bytes",
                range.start,
                range.end,
                path.display()
            )
            .into(),
        });
    }
    // Both ends are within `len`, a `usize` (the mapping's length).
    Ok(file.slice(range.start as usize..range.end as usize))
}

/// This store's name in errors.
const STORE: &str = "MappedFiles";

fn io_error(path: &std::path::Path, source: std::io::Error) -> object_store::Error {
    if source.kind() == std::io::ErrorKind::NotFound {
        return object_store::Error::NotFound {
            path: path.display().to_string(),
            source: source.into(),
        };
    }
    object_store::Error::Generic {
        store: STORE,
        source: format!("{}: {source}", path.display()).into(),
    }
}

fn read_only(what: &str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("the query service is read-only: {what} refused").into(),
    }
}

#[async_trait]
impl ObjectStore for MappedFiles {
    async fn put_opts(
        &self,
        _: &Path,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only("multipart put"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        // `LocalFileSystem` opens the file, checks the preconditions and resolves the range;
        // its result carries the open file, whose mapping (kept, or made here) is sliced
        // instead of reading it. Mapping does no I/O (that happens on first access), so it runs
        // here rather than on a blocking thread.
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        if head {
            return Ok(result);
        }
        let GetResultPayload::File(_, path) = result.payload else {
            return Ok(result);
        };
        let bytes =
            self.mappings.whole(&path).and_then(|whole| slice(&path, &whole, &result.range))?;
        let chunk = futures::stream::once(async move { Ok(bytes) });
        Ok(GetResult { payload: GetResultPayload::Stream(Box::pin(chunk)), ..result })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let path = self.inner.path_to_filesystem(location)?;
        let ranges = ranges.to_vec();
        let mappings = Arc::clone(&self.mappings);
        // Looking a file up, and opening it, can wait on the disk (or a network file system):
        // off the async workers, as `LocalFileSystem` does.
        tokio::task::spawn_blocking(move || {
            let whole = mappings.whole(&path)?;
            ranges.iter().map(|r| slice(&path, &whole, r)).collect()
        })
        .await
        .map_err(|e| object_store::Error::Generic { store: STORE, source: Box::new(e) })?
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        use futures::StreamExt as _;
        locations.map(|_| Err(read_only("delete"))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only("copy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt as _;

    fn location(path: &std::path::Path) -> Path {
        Path::from_absolute_path(path).unwrap()
    }

    #[tokio::test]
    async fn reads_the_bytes_local_file_system_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.parquet");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let (mapped, local) = (MappedFiles::new(), LocalFileSystem::new());
        let at = location(&file);
        let ranges = [0..10, 4096..70_000, 99_990..100_000, 5..5];
        assert_eq!(
            mapped.get_ranges(&at, &ranges).await.unwrap(),
            local.get_ranges(&at, &ranges).await.unwrap()
        );
        assert_eq!(mapped.get_range(&at, 17..60_000).await.unwrap(), &data[17..60_000]);
        let suffix =
            GetOptions { range: Some(object_store::GetRange::Suffix(1000)), ..Default::default() };
        let got = mapped.get_opts(&at, suffix).await.unwrap();
        assert_eq!(got.range, 99_000..100_000);
        assert_eq!(got.meta.size, 100_000);
        assert_eq!(got.bytes().await.unwrap(), &data[99_000..]);
        assert_eq!(mapped.head(&at).await.unwrap().size, 100_000);
    }

    #[tokio::test]
    async fn a_range_past_the_end_or_a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("short.parquet");
        std::fs::write(&file, b"PAR1").unwrap();
        let mapped = MappedFiles::new();
        let err = mapped.get_ranges(&location(&file), &[0..4, 2..9]).await.unwrap_err();
        assert!(err.to_string().contains("cannot read bytes 2..9"), "{err}");
        assert!(err.to_string().contains("short.parquet"), "{err}");
        let empty = dir.path().join("empty.parquet");
        std::fs::write(&empty, b"").unwrap();
        let both = mapped.get_ranges(&location(&empty), &[0..0, 0..0]).await.unwrap();
        assert_eq!(both, [Bytes::new(), Bytes::new()]);
        assert!(mapped.get_range(&location(&empty), 0..1).await.is_err());
        let gone = location(&dir.path().join("gone.parquet"));
        let err = mapped.get_ranges(&gone, &[0..1, 1..2]).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
        let err = mapped.get(&gone).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_file_deleted_while_mapped_stays_readable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hour.parquet");
        std::fs::write(&file, vec![42u8; 10_000]).unwrap();
        let read =
            MappedFiles::new().get_ranges(&location(&file), &[0..10_000, 0..1]).await.unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(read[0].iter().all(|b| *b == 42));
    }

    #[tokio::test]
    async fn a_mapping_is_kept_while_the_file_stays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hour.parquet");
        std::fs::write(&file, vec![1u8; 10_000]).unwrap();
        let mapped = MappedFiles::new();
        let at = location(&file);
        let first = mapped.get_ranges(&at, &[0..100, 0..1]).await.unwrap();
        let again = mapped.get_range(&at, 0..100).await.unwrap();
        // The same mapping: the same memory.
        assert_eq!(first[0].as_ptr(), again.as_ptr());
        assert_eq!(mapped.mappings.len(), 1);
        // Another file renamed over the path (as compaction and ingest write) is read, not the
        // kept mapping of the old one.
        let aside = dir.path().join(".hour.parquet.tmp");
        std::fs::write(&aside, vec![2u8; 20_000]).unwrap();
        std::fs::rename(&aside, &file).unwrap();
        let after = mapped.get_ranges(&at, &[0..20_000, 0..1]).await.unwrap();
        assert!(after[0].iter().all(|b| *b == 2));
        assert_eq!(mapped.mappings.len(), 1);
        // The old bytes handed out stay readable.
        assert!(first[0].iter().all(|b| *b == 1));
        // A file deleted is not found, whatever was kept.
        std::fs::remove_file(&file).unwrap();
        let err = mapped.get_ranges(&at, &[0..1, 1..2]).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.parquet");
        std::fs::write(&file, b"data").unwrap();
        let (mapped, at) = (MappedFiles::new(), location(&file));
        let new = location(&dir.path().join("y.parquet"));
        for err in [
            mapped.put(&new, Bytes::from_static(b"1").into()).await.unwrap_err(),
            mapped.delete(&at).await.unwrap_err(),
            mapped.copy(&at, &new).await.unwrap_err(),
            mapped.rename(&at, &new).await.unwrap_err(),
        ] {
            assert!(err.to_string().contains("read-only"), "{err}");
        }
        assert!(mapped.put_multipart(&new).await.is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"data");
        assert!(!dir.path().join("y.parquet").exists());
    }
}
