//! `podwire serve`: the query service's HTTP API over one store, until SIGTERM or Ctrl-C (feature
//! `query`); and the metrics endpoint and signal handling every long-running command shares.
#[cfg(feature = "query")]
use crate::cli::ServeArgs;
use anyhow::Context as _;
#[cfg(feature = "query")]
use podwire_query::api::{self, ApiConfig};
#[cfg(feature = "query")]
use podwire_query::web::Assets;
#[cfg(feature = "query")]
use podwire_query::{Store, StoreOptions};
use std::io::Write as _;

#[cfg(feature = "query")]
pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<()> {
    if !podwire_query::catalog::is_bucket(&args.store) && !args.store.is_dir() {
        if args.store.exists() {
            anyhow::bail!("the store `{}` is not a folder", args.store.display());
        }
        // A new deployment: the query service may start before ingest wrote anything. An empty
        // store answers every query with no rows.
        std::fs::create_dir_all(&args.store).with_context(|| {
            format!(
                "no store at `{}` and it cannot be created (write one with `podwire standalone` \
                 or `podwire demo`)",
                args.store.display()
            )
        })?;
        tracing::warn!(store = %args.store.display(), "The store folder did not exist; created it empty.");
    }
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file `{}`", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => args.token.clone(),
    };
    if token.as_deref().is_some_and(str::is_empty) {
        anyhow::bail!("the token is empty; give a non-empty --token or --token-file, or none");
    }
    if token.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %args.listen,
            "Listening beyond loopback without a token: anyone who can reach this port can read \
             the whole history. Set --token or PODWIRE_TOKEN."
        );
    }
    let options = StoreOptions {
        memory_limit: Some(args.memory_limit),
        pushdown: args.pushdown.pushdown.into(),
        filter_order: args.pushdown.filter_order.into(),
        footer_cache: args.pushdown.footer_cache,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&args.store, options)?;
    #[cfg(feature = "cluster")]
    let store = crate::query::on_cluster(store, &args.cluster)?;
    let assets = args.web_root.clone().map_or(Assets::Embedded, Assets::Folder);
    let config =
        ApiConfig { token, max_concurrent_queries: args.max_concurrent_queries.max(1), assets };
    tracing::info!(store = %args.store.display(), "Serving the store.");
    serve_until_signal(store, config, args.listen, args.shutdown_grace, |addr| {
        tracing::info!(
            "Serving http://{addr}/ (the dashboard; API description at /api/v1/openapi.json)."
        );
        // For scripts that start the server on port 0.
        println!("listening on http://{addr}");
    })
}

/// Serves the API and dashboard over `store` on `listen` until SIGTERM or Ctrl-C; `announce`
/// gets the bound address (port 0 picks one) once the server accepts connections.
#[cfg(feature = "query")]
pub(crate) fn serve_until_signal(
    store: Store,
    config: ApiConfig,
    listen: std::net::SocketAddr,
    grace: std::time::Duration,
    announce: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
            format!("cannot listen on {listen} (another server there? pick one with --listen)")
        })?;
        let addr = listener.local_addr()?;
        announce(addr);
        std::io::stdout().flush()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stopped = stop_rx.clone();
        let server = tokio::spawn(api::serve(listener, api::router(store, config), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        shutdown_signal().await;
        tracing::info!(?grace, "Stopping: no new connections; waiting for running responses.");
        let _ = stop_tx.send(true);
        drop(stop_rx);
        match tokio::time::timeout(grace, server).await {
            Ok(joined) => joined.context("the server task failed")?.context("serving failed")?,
            Err(_) => {
                tracing::warn!("Responses still running after the grace period; exiting anyway.")
            }
        }
        Ok(())
    })
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Serves `GET /metrics` (OpenMetrics text from `encode`) and `GET /healthz` on `listen`, on the
/// current Tokio runtime, and prints `metrics on http://ADDR` (the bound address: port 0 picks
/// one) to stdout for scripts.
pub(crate) async fn spawn_metrics(
    listen: std::net::SocketAddr,
    encode: std::sync::Arc<dyn Fn() -> String + Send + Sync>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (--metrics-listen)"))?;
    let addr = listener.local_addr()?;
    tracing::info!("Metrics at http://{addr}/metrics");
    println!("metrics on http://{addr}");
    std::io::stdout().flush()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let body = encode();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server failed: {e}");
        }
    });
    Ok(())
}
