//! The dashboard's files: `index.html`, `app.js`, `app.css` and their gzip copies, bundled from
//! `query/web/` by `build.rs` (npm packages from the lockfile, bundled by esbuild) and embedded
//! in the binary, so the page works with no network (air-gapped clusters, no CDN). For work on
//! the page, `podwire serve --web-root DIR` serves a folder built by `node query/web/build.cjs
//! DIR` instead.
//!
//! Only the names in [`FILES`] are served: a request cannot reach any other file.
use bytes::Bytes;
use std::path::PathBuf;

/// The page's files and their content types.
pub const FILES: [(&str, &str); 3] = [
    ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("app.css", "text/css; charset=utf-8"),
];

macro_rules! embedded {
    ($name:literal) => {
        (
            include_bytes!(concat!(env!("OUT_DIR"), "/web/", $name)).as_slice(),
            include_bytes!(concat!(env!("OUT_DIR"), "/web/", $name, ".gz")).as_slice(),
        )
    };
}

/// `(plain, gzip)` of each of [`FILES`], in that order.
static EMBEDDED: [(&[u8], &[u8]); 3] =
    [embedded!("index.html"), embedded!("app.js"), embedded!("app.css")];

/// Where the page's files come from.
#[derive(Debug, Clone, Default)]
pub enum Assets {
    /// The copies built into the binary.
    #[default]
    Embedded,
    /// A folder written by `node query/web/build.cjs DIR`, read at each request.
    Folder(PathBuf),
}

/// One file to send.
#[derive(Debug, Clone)]
pub struct File {
    /// The body.
    pub bytes: Bytes,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Whether `bytes` is gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
}

impl Assets {
    /// The file `name` (gzip-compressed when `gzip` and a compressed copy exists); `None` for
    /// a name that is not one of [`FILES`].
    ///
    /// # Errors
    /// A folder's file that cannot be read, as a message.
    pub fn get(&self, name: &str, gzip: bool) -> Result<Option<File>, String> {
        let Some(index) = FILES.iter().position(|(n, _)| *n == name) else { return Ok(None) };
        let content_type = FILES[index].1;
        match self {
            Assets::Embedded => {
                let (plain, packed) = EMBEDDED[index];
                let bytes = Bytes::from_static(if gzip { packed } else { plain });
                Ok(Some(File { bytes, content_type, gzip }))
            }
            Assets::Folder(dir) => {
                let packed = dir.join(format!("{name}.gz"));
                if gzip && packed.is_file() {
                    let bytes = std::fs::read(&packed)
                        .map_err(|e| format!("cannot read `{}`: {e}", packed.display()))?;
                    return Ok(Some(File { bytes: bytes.into(), content_type, gzip: true }));
                }
                let path = dir.join(name);
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                Ok(Some(File { bytes: bytes.into(), content_type, gzip: false }))
            }
        }
    }
}

/// Whether `path` is one of the page's (served without a token: the page holds no data).
pub fn is_page_path(path: &str) -> bool {
    path == "/" || path == "/index.html" || path.starts_with("/assets/")
}
