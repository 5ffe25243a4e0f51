//! Where a store lives: a local folder, or a bucket of an S3-compatible object store
//! (`s3://bucket/prefix`), through the Arrow project's `object_store` (the client DataFusion
//! reads through, so the query service reads what ingest writes with the same settings).
//!
//! The two differ only in how a finished file becomes visible: a local file is written to a
//! hidden temporary name, fsynced and renamed; an object is uploaded whole and exists only once
//! the upload completed. Either way a reader never sees half a file, and "durable" (what ingest
//! waits for before committing offsets) means that step returned.
//!
//! Bucket credentials and endpoint come from the environment, as the AWS tools read them:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`), `AWS_ENDPOINT` for MinIO, Ceph or other S3-compatible servers, and
//! `AWS_ALLOW_HTTP=true` for an endpoint without TLS.
use crate::error::{Error, Result};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A store's root.
#[derive(Debug, Clone)]
pub enum Location {
    /// A local folder.
    Local(PathBuf),
    /// A bucket and key prefix.
    Bucket(Arc<Bucket>),
}

impl Location {
    /// `s3://bucket[/prefix]` is a bucket (settings from the environment); anything else a
    /// folder.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] for an `s3://` URL the client cannot be built for.
    pub fn parse(text: &str) -> Result<Self> {
        if text.starts_with("s3://") {
            Ok(Location::Bucket(Arc::new(Bucket::from_url(text)?)))
        } else {
            Ok(Location::Local(PathBuf::from(text)))
        }
    }

    /// Creates a local folder; a bucket must exist already.
    ///
    /// # Errors
    /// When the folder cannot be created.
    pub fn create(&self) -> Result<()> {
        match self {
            Location::Local(dir) => std::fs::create_dir_all(dir)
                .map_err(|source| Error::Io { path: dir.clone(), source }),
            Location::Bucket(_) => Ok(()),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(dir) => write!(f, "{}", dir.display()),
            Location::Bucket(b) => f.write_str(&b.url),
        }
    }
}

impl From<&Path> for Location {
    fn from(dir: &Path) -> Self {
        Location::Local(dir.to_path_buf())
    }
}

/// A bucket and the key prefix the store lives under, with the client and the small runtime its
/// (asynchronous) calls run on: the writers calling it are plain threads.
pub struct Bucket {
    url: String,
    prefix: ObjectPath,
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Bucket {
    /// The bucket of `s3://bucket[/prefix]`, configured from the environment.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when the URL or the environment's settings are not usable.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |what: String| Error::ObjectStore { url: url.to_string(), what };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("not an s3:// URL".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name (s3://BUCKET/PREFIX)".into()));
        }
        // Fail fast enough for ingest's own retry loop (which never gives up and never
        // commits meanwhile) to report an outage within a minute, instead of the client's
        // default of retrying for up to three minutes inside one call.
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..object_store::RetryConfig::default()
        };
        // Set key by key: `with_client_options` would replace what the environment set
        // (AWS_ALLOW_HTTP among them).
        let client = |key| object_store::aws::AmazonS3ConfigKey::Client(key);
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .with_config(client(object_store::ClientConfigKey::ConnectTimeout), "5s")
            .with_config(client(object_store::ClientConfigKey::Timeout), "60s")
            .build()
            .map_err(|e| {
                bad(format!(
                    "{e}; set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and AWS_ENDPOINT \
                     (with AWS_ALLOW_HTTP=true for plain http) for S3-compatible servers"
                ))
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start its I/O runtime: {e}")))?;
        Ok(Bucket {
            url: url.trim_end_matches('/').to_string(),
            prefix: ObjectPath::from(prefix.trim_matches('/')),
            store: Arc::new(store),
            runtime,
        })
    }

    /// The URL it was opened with (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The client (the Delta log commits through it too).
    pub(crate) fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The key of `relative` (`a/b/c`) under the prefix.
    pub(crate) fn key(&self, relative: &str) -> ObjectPath {
        ObjectPath::from_iter(self.prefix.parts().chain(
            relative.split('/').filter(|p| !p.is_empty()).map(object_store::path::PathPart::from),
        ))
    }

    fn error(&self, relative: &str, e: &object_store::Error) -> Error {
        // The client's messages wrap their cause ("HTTP error: builder error"): keep the chain.
        let mut what = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !what.contains(&text) {
                what = format!("{what}: {text}");
            }
            source = cause.source();
        }
        Error::ObjectStore { url: format!("{}/{relative}", self.url), what }
    }

    /// Uploads `bytes` as `relative`; the object exists (whole) once this returns `Ok`.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when the upload failed (after the client's retries).
    pub fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        let key = self.key(relative);
        self.runtime
            .block_on(self.store.put(&key, bytes.into()))
            .map(|_| ())
            .map_err(|e| self.error(relative, &e))
    }

    /// The objects under the folder `relative` (recursively): their keys relative to the
    /// store's root, and sizes.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when the listing failed.
    pub fn list(&self, relative: &str) -> Result<Vec<(String, u64)>> {
        use futures::TryStreamExt as _;
        let key = self.key(relative);
        let listed: std::result::Result<Vec<_>, _> =
            self.runtime.block_on(self.store.list(Some(&key)).try_collect());
        let skip = self.prefix.parts().count();
        Ok(listed
            .map_err(|e| self.error(relative, &e))?
            .into_iter()
            .map(|m| {
                let rel: Vec<String> =
                    m.location.parts().skip(skip).map(|p| p.as_ref().to_string()).collect();
                (rel.join("/"), m.size)
            })
            .collect())
    }

    /// Deletes `relative` (an object that is already gone is not an error).
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when the delete failed.
    pub fn delete(&self, relative: &str) -> Result<()> {
        let key = self.key(relative);
        match self.runtime.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(relative, &e)),
        }
    }

    /// Reads `relative`; `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when it cannot be read.
    pub fn get(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(relative);
        let got = self.runtime.block_on(async {
            match self.store.get(&key).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map(|b| b.map(|b| b.to_vec())).map_err(|e| self.error(relative, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_folders() {
        assert!(matches!(Location::parse("/tmp/store").unwrap(), Location::Local(_)));
        assert!(matches!(Location::parse("store").unwrap(), Location::Local(_)));
        let err = Location::parse("s3://").unwrap_err().to_string();
        assert!(err.contains("no bucket name"), "{err}");
        let b = Bucket::from_url("s3://bucket/some/prefix/").unwrap();
        assert_eq!(b.url(), "s3://bucket/some/prefix");
        assert_eq!(
            b.key("connections/date=2026-11-26/hour=09/f.parquet").as_ref(),
            "some/prefix/connections/date=2026-11-26/hour=09/f.parquet"
        );
        let b = Bucket::from_url("s3://bucket").unwrap();
        assert_eq!(b.key("_ingest/x.range").as_ref(), "_ingest/x.range");
    }
}
