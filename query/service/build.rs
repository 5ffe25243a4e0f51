//! Builds the dashboard (`query/web/`) into `OUT_DIR/web` for `src/web.rs` to embed: `npm ci`
//! from the lockfile into a copy under `OUT_DIR` (the source tree is not touched), then
//! `node query/web/build.cjs`, which bundles the page with esbuild and writes gzip copies.
//! `PODWIRE_WEB_DIST=DIR` takes a folder already built that way instead (a container build's
//! node stage, or a machine without npm).
use std::path::{Path, PathBuf};
use std::process::Command;

const OUTPUTS: [&str; 6] =
    ["index.html", "index.html.gz", "app.js", "app.js.gz", "app.css", "app.css.gz"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = manifest.join("../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = out.join("web");
    println!("cargo:rerun-if-env-changed=PODWIRE_WEB_DIST");
    println!("cargo:rerun-if-env-changed=NPM");
    println!("cargo:rerun-if-env-changed=NODE");
    if let Some(prebuilt) = std::env::var_os("PODWIRE_WEB_DIST") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        copy_outputs(&prebuilt, &dist);
        return;
    }
    for f in ["src", "package.json", "package-lock.json", "build.cjs"] {
        println!("cargo:rerun-if-changed={}", web.join(f).display());
    }
    let npm_dir = out.join("npm");
    std::fs::create_dir_all(&npm_dir).expect("cannot create OUT_DIR/npm");
    let lock = std::fs::read(web.join("package-lock.json"))
        .unwrap_or_else(|e| fail(&format!("cannot read query/web/package-lock.json: {e}")));
    let stamp = npm_dir.join(".installed-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice())
        || !npm_dir.join("node_modules").is_dir()
    {
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(web.join(f), npm_dir.join(f))
                .unwrap_or_else(|e| fail(&format!("cannot copy query/web/{f}: {e}")));
        }
        let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
        // Exactly the lockfile's versions; no install scripts (esbuild ships its binary as an
        // optional dependency and needs none).
        run(
            Command::new(&npm)
                .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"])
                .current_dir(&npm_dir),
            &format!("`{npm} ci`"),
        );
        std::fs::write(&stamp, &lock).expect("cannot write the npm stamp");
    }
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    run(
        Command::new(&node)
            .arg(web.join("build.cjs"))
            .arg(&dist)
            .env("PODWIRE_NODE_MODULES", npm_dir.join("node_modules")),
        &format!("`{node} query/web/build.cjs`"),
    );
    for f in OUTPUTS {
        if !dist.join(f).is_file() {
            fail(&format!("query/web/build.cjs wrote no `{f}`"));
        }
    }
}

fn copy_outputs(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("cannot create OUT_DIR/web");
    for f in OUTPUTS {
        std::fs::copy(from.join(f), to.join(f)).unwrap_or_else(|e| {
            fail(&format!(
                "PODWIRE_WEB_DIST=`{}` lacks `{f}` ({e}); build it with `node query/web/build.cjs DIR`",
                from.display()
            ))
        });
    }
}

fn run(command: &mut Command, what: &str) {
    match command.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("{what} failed ({s})")),
        Err(e) => fail(&format!("cannot run {what}: {e}")),
    }
}

fn fail(problem: &str) -> ! {
    panic!(
        "\n\nthe dashboard could not be built: {problem}\n\
         It needs Node.js (18 or newer) and npm, and the npm registry for the first build \
         (apt-get install nodejs npm), or PODWIRE_WEB_DIST=DIR with a folder built elsewhere by \
         `cd query/web && npm ci && node build.cjs DIR`.\n\n"
    )
}
