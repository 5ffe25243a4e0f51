//! The HTTP API of `podwire serve` (axum on hyper, HTTP/1.1).
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /api/v1/query` | a KFL filter with an optional time range and row limit → rows in time order |
//! | `POST /api/v1/sql` | one read-only `SELECT` over the store's tables → rows |
//! | `GET /api/v1/translate?query=…` | the SQL a filter becomes and the tables it reads |
//! | `GET /api/v1/fields` | the KFL field catalog, aliases and helpers |
//! | `GET /api/v1/map?query=…&level=…` | the connectivity map of a window ([`crate::map`]) |
//! | `GET /api/v1/why?query=…&from=…&to=…` | verdicts with their evidence ([`crate::why`]) |
//! | `GET /api/v1/why-not?query=…&from=…&to=…` | why a filter finds little ([`crate::why_not`]) |
//! | `GET /api/v1/insights?from=…&to=…` | what changed and what is wrong ([`crate::insights`]) |
//! | `GET /api/v1/timeline?query=…` | connections over time ([`crate::timeline`]) |
//! | `GET /`, `GET /assets/…` | the dashboard ([`crate::web`]); no token needed: the page holds no data |
//! | `GET /api/v1/openapi.json` | this API as OpenAPI 3.0 |
//! | `GET /healthz` | liveness: the store folder is readable |
//! | `GET /metrics` | Prometheus metrics ([`metrics`]) |
//!
//! Results stream: a query is planned, its first batch computed (so an execution error is still
//! a proper error status), then the body is written batch by batch as the client reads it. The
//! body is pulled by hyper, so a slow client slows the query instead of filling memory. An error
//! after the head was sent ends the body early, without its terminator (`]`, the IPC end marker,
//! or the final chunk), so a client never mistakes a cut result for a whole one.
//!
//! Read-only: KFL is translated to a `SELECT` over the store's tables; raw SQL is checked on its
//! AST ([`crate::readonly`]) and on the plan; the DataFusion session has no table functions and no
//! tables but the store's. Errors are JSON: `{"error": {"class", "message", …}}` with, for a bad
//! filter, `line`, `col`, `start`, `end`, `hint` and the rendered `diagnostic`.
//!
//! With a token configured every endpoint but `/healthz` needs `Authorization: Bearer <token>`.
pub mod encode;
pub mod metrics;

use crate::error::Error;
use crate::map::{self, Level, MapRequest};
use crate::session::{QueryRequest, Store};
use crate::web::Assets;
use crate::{time, timeline};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::dataframe::DataFrame;
use encode::{Encoder, ResultFormat};
use futures::StreamExt;
use metrics::Metrics;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// How the API behaves.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// When set, requests need `Authorization: Bearer <token>` (all but `/healthz`).
    pub token: Option<String>,
    /// Queries planning or streaming at once; more get a 503 with `Retry-After`.
    pub max_concurrent_queries: usize,
    /// Where the dashboard's files come from.
    pub assets: Assets,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { token: None, max_concurrent_queries: 4, assets: Assets::Embedded }
    }
}

struct AppState {
    store: Store,
    token: Option<Vec<u8>>,
    queries: Arc<Semaphore>,
    metrics: Metrics,
    assets: Assets,
}

/// The API's routes over `store`.
pub fn router(store: Store, config: ApiConfig) -> Router {
    let state = Arc::new(AppState {
        store,
        token: config.token.filter(|t| !t.is_empty()).map(String::into_bytes),
        queries: Arc::new(Semaphore::new(config.max_concurrent_queries.max(1))),
        metrics: Metrics::new(),
        assets: config.assets,
    });
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/assets/{file}", get(asset))
        .route("/api/v1/map", get(map_endpoint))
        .route("/api/v1/why", get(why_endpoint))
        .route("/api/v1/why-not", get(why_not_endpoint))
        .route("/api/v1/insights", get(insights_endpoint))
        .route("/api/v1/timeline", get(timeline_endpoint))
        .route("/api/v1/query", post(query))
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/translate", get(translate))
        .route("/api/v1/fields", get(fields))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets running requests finish.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

// ---- errors ------------------------------------------------------------------------------

/// An error answer: status, stable class, message and extra fields.
struct ApiError {
    status: StatusCode,
    class: String,
    message: String,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, class: &str, message: impl Into<String>) -> Self {
        Self { status, class: class.to_owned(), message: message.into(), extra: Default::default() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Kfl(k) => {
                let mut err = ApiError::new(StatusCode::BAD_REQUEST, k.class.code(), &k.message);
                if !k.is_user_error() {
                    err.status = StatusCode::INTERNAL_SERVER_ERROR;
                }
                let extra = &mut err.extra;
                extra.insert("line".into(), json!(k.position.line));
                extra.insert("col".into(), json!(k.position.col));
                extra.insert("start".into(), json!(k.span.start));
                extra.insert("end".into(), json!(k.span.end));
                extra.insert("hint".into(), json!(k.hint));
                extra.insert("diagnostic".into(), json!(k.render()));
                err
            }
            Error::Rejected(m) => ApiError::new(StatusCode::BAD_REQUEST, "SQL_REJECTED", m),
            Error::Sql(m) => ApiError::new(StatusCode::BAD_REQUEST, "SQL_INVALID", m),
            e @ Error::Time { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "BAD_TIME", e.to_string())
            }
            Error::AsOf(m) => ApiError::new(StatusCode::BAD_REQUEST, "BAD_AS_OF", m),
            e @ Error::Resources(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "RESOURCES_EXHAUSTED", e.to_string())
            }
            e @ (Error::DataFusion(_) | Error::Io(_) | Error::Arrow(_) | Error::Parquet(_)) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "QUERY_FAILED", e.to_string())
            }
            e @ (Error::Store { .. } | Error::Internal(_)) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string())
            }
            // The cluster (`--cluster`) is unreachable, failed or too slow: the query service
            // itself is fine.
            e @ Error::Cluster { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "CLUSTER_FAILED", e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("class".into(), json!(self.class));
        body.insert("message".into(), json!(self.message));
        body.extend(self.extra);
        let busy = self.class == "BUSY";
        let mut response = (self.status, axum::Json(json!({ "error": body }))).into_response();
        if busy {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        // For `observe`: the class of a failed request.
        response.extensions_mut().insert(ErrorClassTag(self.class));
        response
    }
}

#[derive(Clone)]
struct ErrorClassTag(String);

// ---- middleware --------------------------------------------------------------------------

async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else { return next.run(request).await };
    let path = request.uri().path();
    if path == "/healthz" || crate::web::is_page_path(path) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    match given {
        Some(given) if constant_time_eq(given.trim().as_bytes(), token) => next.run(request).await,
        _ => {
            let message = if given.is_some() {
                "the bearer token is not the one this server was started with"
            } else {
                "this server needs `Authorization: Bearer <token>` (the value of `--token` or PODWIRE_TOKEN)"
            };
            let mut r =
                ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Access log and request metrics.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status();
    state.metrics.request(&endpoint, status.as_u16(), elapsed.as_secs_f64());
    if let Some(ErrorClassTag(class)) = response.extensions().get::<ErrorClassTag>() {
        if endpoint.starts_with("/api/v1/") {
            state.metrics.error(&endpoint, class);
        }
        tracing::info!(%method, endpoint, status = status.as_u16(), class, ms = elapsed.as_millis() as u64, "Request refused.");
    } else {
        tracing::info!(%method, endpoint, status = status.as_u16(), ms = elapsed.as_millis() as u64, "Request answered.");
    }
    response
}

// ---- handlers ----------------------------------------------------------------------------

/// The body of `POST /api/v1/query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    /// The KFL filter; blank or missing matches everything.
    #[serde(default)]
    query: String,
    /// `kfl1` (the default) or `kfl2`.
    dialect: Option<String>,
    /// A KFL1 filter that rows must also match (a client's own clauses).
    and: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u64>,
    /// Rows to skip before the first one returned (paging, with `limit`).
    offset: Option<u64>,
    format: Option<String>,
    /// Read an older snapshot: a version of the connections table's log, or a time.
    as_of: Option<String>,
}

/// The body of `POST /api/v1/sql`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    sql: String,
    limit: Option<u64>,
    format: Option<String>,
    /// As [`QueryBody::as_of`].
    as_of: Option<String>,
}

/// The store as of the request's `as_of` (a session of its own), or the server's.
fn store_as_of(state: &AppState, as_of: Option<&str>) -> Result<Store, ApiError> {
    let Some(text) = as_of.filter(|t| !t.trim().is_empty()) else {
        return Ok(state.store.clone());
    };
    let as_of = crate::delta::AsOf::parse(text, time::now_ms())?;
    Ok(state.store.at(Some(as_of))?)
}

/// The query string of `GET /api/v1/translate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TranslateParams {
    #[serde(default)]
    query: String,
    /// `kfl1` (the default) or `kfl2`.
    dialect: Option<String>,
    /// A KFL1 filter that rows must also match (a client's own clauses).
    and: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not the JSON this endpoint takes ({e}); see /api/v1/openapi.json"
        ))
    })
}

/// A query string, or the API's JSON error for one it cannot take (axum's own answer is text).
fn query_params<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    params.map(|Query(p)| p).map_err(|e| {
        ApiError::bad_request(format!(
            "{}; see /api/v1/openapi.json for this endpoint's parameters",
            e.body_text()
        ))
    })
}

fn result_format(named: Option<&str>, headers: &HeaderMap) -> Result<ResultFormat, ApiError> {
    if let Some(name) = named {
        return ResultFormat::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = ResultFormat::ALL.iter().map(|f| f.name()).collect();
            ApiError::bad_request(format!(
                "unknown format `{name}`; use one of: {}",
                names.join(", ")
            ))
        });
    }
    Ok(headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(ResultFormat::from_accept)
        .unwrap_or(ResultFormat::Json))
}

/// The request of a filter, window and dialect as the API's parameters spell them, with "now"
/// for relative times; no row limit.
fn request<'a>(
    kfl: &'a str,
    from: &Option<String>,
    to: &Option<String>,
    (dialect_name, and): (&Option<String>, &'a Option<String>),
) -> Result<QueryRequest<'a>, ApiError> {
    let now_ms = time::now_ms();
    let (from_ms, to_ms) = time_range(from.as_deref(), to.as_deref(), now_ms)?;
    let dialect = dialect(dialect_name.as_deref())?;
    let extra = and.as_deref().unwrap_or("");
    Ok(QueryRequest { kfl, from_ms, to_ms, limit: None, now_ms, dialect, extra })
}

/// The `dialect` of a request: `kfl1` when absent.
fn dialect(value: Option<&str>) -> Result<podwire_kfl::Dialect, ApiError> {
    match value {
        None | Some("") => Ok(podwire_kfl::Dialect::Kfl1),
        Some(v) => v.parse().map_err(ApiError::bad_request),
    }
}

fn time_range(
    from: Option<&str>,
    to: Option<&str>,
    now_ms: i64,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let from_ms = from.map(|t| time::parse_time(t, now_ms)).transpose()?;
    let to_ms = to.map(|t| time::parse_time(t, now_ms)).transpose()?;
    Ok((from_ms, to_ms))
}

/// A slot among the concurrent queries, released when the response body ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    state: Arc<AppState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.metrics.in_flight().dec();
    }
}

fn slot(state: &Arc<AppState>) -> Result<Slot, ApiError> {
    match state.queries.clone().try_acquire_owned() {
        Ok(permit) => {
            state.metrics.in_flight().inc();
            Ok(Slot { _permit: permit, state: state.clone() })
        }
        Err(_) => {
            state.metrics.busy();
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "BUSY",
                "the maximum number of concurrent queries are running; retry shortly \
                 (the limit is `--max-concurrent-queries`)",
            ))
        }
    }
}

async fn query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: QueryBody = parse_body(&body)?;
    let format = result_format(body.format.as_deref(), &headers)?;
    let request = request(&body.query, &body.from, &body.to, (&body.dialect, &body.and))?;
    let slot = slot(&state)?;
    let offset = body.offset.filter(|o| *o > 0);
    // With an offset the row limit applies after the skipped rows.
    let limit = if offset.is_some() { None } else { body.limit };
    let request = QueryRequest { limit, ..request };
    let store = store_as_of(&state, body.as_of.as_deref())?;
    let mut df = store.kfl(&request).await?;
    if let Some(offset) = offset {
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let fetch = body.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        df = df.limit(skip, fetch).map_err(Error::from)?;
    }
    stream(&store, df, format, slot, "/api/v1/query").await
}

async fn sql(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: SqlBody = parse_body(&body)?;
    let format = result_format(body.format.as_deref(), &headers)?;
    let slot = slot(&state)?;
    let store = store_as_of(&state, body.as_of.as_deref())?;
    let df = store.sql(&body.sql, body.limit).await?;
    stream(&store, df, format, slot, "/api/v1/sql").await
}

/// Runs `df` and answers with its rows as they come.
async fn stream(
    store: &Store,
    df: DataFrame,
    format: ResultFormat,
    slot: Slot,
    endpoint: &'static str,
) -> Result<Response, ApiError> {
    let mut batches = store.stream(df).await?;
    let mut encoder = Encoder::new(format, &batches.schema())?;
    // The first batch before the head: most execution errors (an unreadable file, memory) show
    // here and still get their status.
    let first = match batches.next().await {
        Some(batch) => Some(encoder.batch(&batch.map_err(Error::from)?)?),
        None => None,
    };
    let head = encoder.take();
    let start = futures::stream::iter([Ok::<Bytes, Error>(head)])
        .chain(futures::stream::iter(first.map(Ok)));
    struct Running {
        batches: datafusion::physical_plan::SendableRecordBatchStream,
        encoder: Encoder,
        slot: Slot,
    }
    let rest =
        futures::stream::unfold(Some(Running { batches, encoder, slot }), move |run| async move {
            let mut run = run?;
            match run.batches.next().await {
                Some(Ok(batch)) => match run.encoder.batch(&batch) {
                    Ok(bytes) => Some((Ok(bytes), Some(run))),
                    Err(e) => Some((Err(fail(&run.slot.state, endpoint, e)), None)),
                },
                Some(Err(e)) => Some((Err(fail(&run.slot.state, endpoint, Error::from(e))), None)),
                None => {
                    let rows = run.encoder.rows();
                    run.slot.state.metrics.rows(endpoint, rows);
                    tracing::debug!(endpoint, rows, "Result sent.");
                    match run.encoder.finish() {
                        Ok(bytes) => Some((Ok(bytes), None)),
                        Err(e) => Some((Err(fail(&run.slot.state, endpoint, e)), None)),
                    }
                }
            }
        });
    let body = Body::from_stream(
        start
            .chain(rest)
            .filter(|chunk| std::future::ready(!matches!(chunk, Ok(bytes) if bytes.is_empty()))),
    );
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// Logs and counts an error after the response head was sent; the body then ends early.
fn fail(state: &AppState, endpoint: &'static str, e: Error) -> Error {
    state.metrics.error(endpoint, "QUERY_FAILED");
    tracing::error!(endpoint, error = %e, "Query failed while streaming; the response was cut.");
    e
}

async fn translate(
    State(state): State<Arc<AppState>>,
    params: Result<Query<TranslateParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(params)?;
    let request = request(&params.query, &params.from, &params.to, (&params.dialect, &params.and))?;
    let t = state.store.translate(&request)?;
    let tables: Vec<&str> = t.tables.iter().map(|t| t.name()).collect();
    Ok(axum::Json(json!({
        "query": params.query,
        "sql": t.sql(),
        "pretty_sql": t.pretty_sql(),
        "tables": tables,
        "limit": t.limit,
    }))
    .into_response())
}

/// The query string of `GET /api/v1/map`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapParams {
    #[serde(default)]
    query: String,
    /// `kfl1` (the default) or `kfl2`.
    dialect: Option<String>,
    /// A KFL1 filter that rows must also match (a client's own clauses).
    and: Option<String>,
    from: Option<String>,
    to: Option<String>,
    level: Option<String>,
    /// Comma-separated namespaces drawn at `level`; absent: all.
    expand: Option<String>,
    max_nodes: Option<usize>,
}

async fn map_endpoint(
    State(state): State<Arc<AppState>>,
    params: Result<Query<MapParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(params)?;
    let query = request(&params.query, &params.from, &params.to, (&params.dialect, &params.and))?;
    let level = match params.level.as_deref() {
        None | Some("") => Level::Namespace,
        Some(name) => Level::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Level::ALL.iter().map(|l| l.name()).collect();
            ApiError::bad_request(format!(
                "unknown level `{name}`; use one of: {}",
                names.join(", ")
            ))
        })?,
    };
    let max_nodes = params.max_nodes.unwrap_or(map::DEFAULT_MAX_NODES);
    if !(1..=20_000).contains(&max_nodes) {
        return Err(ApiError::bad_request("`max_nodes` must be between 1 and 20000"));
    }
    let expand = params.expand.as_deref().map(|list| {
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    });
    let _slot = slot(&state)?;
    let request = MapRequest { query, level, expand, max_nodes };
    let map = map::map(&state.store, &request).await?;
    // Sized up front: a day of a big cluster at pod level is ~20 MB of JSON, which
    // `axum::Json`'s growing buffer would copy over and over.
    let mut body = Vec::with_capacity(4096 + map.edges.len() * 768 + map.nodes.len() * 384);
    serde_json::to_writer(&mut body, &map).map_err(|e| {
        ApiError::from(crate::error::Error::Internal(format!("the map as JSON: {e}")))
    })?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The query string of `GET /api/v1/why`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhyParams {
    #[serde(default)]
    query: String,
    /// `kfl1` (the default) or `kfl2`.
    dialect: Option<String>,
    /// A KFL1 filter that rows must also match (a client's own clauses).
    and: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl WhyParams {
    /// The filter and window asked for.
    fn request(&self) -> Result<QueryRequest<'_>, ApiError> {
        request(&self.query, &self.from, &self.to, (&self.dialect, &self.and))
    }
}

async fn why_endpoint(
    State(state): State<Arc<AppState>>,
    params: Result<Query<WhyParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(params)?;
    let request = crate::why::WhyRequest { query: params.request()? };
    let _slot = slot(&state)?;
    Ok(axum::Json(crate::why::why(&state.store, &request).await?).into_response())
}

async fn why_not_endpoint(
    State(state): State<Arc<AppState>>,
    params: Result<Query<WhyParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(params)?;
    let request = params.request()?;
    let _slot = slot(&state)?;
    Ok(axum::Json(crate::why_not::why_not(&state.store, &request).await?).into_response())
}

async fn insights_endpoint(
    State(state): State<Arc<AppState>>,
    params: Result<Query<WhyParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(params)?;
    if !params.query.is_empty() {
        return Err(ApiError::bad_request(
            "insights take no `query`: they look at the whole window",
        ));
    }
    let request = params.request()?;
    let _slot = slot(&state)?;
    Ok(axum::Json(crate::insights::insights(&state.store, &request).await?).into_response())
}

/// The query string of `GET /api/v1/timeline`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineParams {
    #[serde(default)]
    query: String,
    /// `kfl1` (the default) or `kfl2`.
    dialect: Option<String>,
    /// A KFL1 filter that rows must also match (a client's own clauses).
    and: Option<String>,
    from: Option<String>,
    to: Option<String>,
    buckets: Option<usize>,
}

async fn timeline_endpoint(
    State(state): State<Arc<AppState>>,
    params: Result<Query<TimelineParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(params)?;
    let request = request(&params.query, &params.from, &params.to, (&params.dialect, &params.and))?;
    let buckets = params.buckets.unwrap_or(timeline::DEFAULT_BUCKETS);
    if !(1..=2_000).contains(&buckets) {
        return Err(ApiError::bad_request("`buckets` must be between 1 and 2000"));
    }
    let _slot = slot(&state)?;
    let t = timeline::timeline(&state.store, &request, buckets).await?;
    Ok(axum::Json(t).into_response())
}

async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    asset_response(&state.assets, "index.html", &headers)
}

async fn asset(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(file): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    asset_response(&state.assets, &file, &headers)
}

fn asset_response(assets: &Assets, name: &str, headers: &HeaderMap) -> Response {
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    match assets.get(name, gzip) {
        Ok(Some(file)) => {
            let mut response = (
                [
                    (header::CONTENT_TYPE, file.content_type),
                    (header::CACHE_CONTROL, "no-cache"),
                    (header::VARY, "accept-encoding"),
                ],
                file.bytes,
            )
                .into_response();
            if file.gzip {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => {
            ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no page file `{name}`"))
                .into_response()
        }
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e).into_response(),
    }
}

/// The query string of `GET /api/v1/fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsParams {
    /// `kfl1` (the default) or `kfl2`.
    dialect: Option<String>,
}

async fn fields(params: Result<Query<FieldsParams>, QueryRejection>) -> Result<Response, ApiError> {
    let params = query_params(params)?;
    Ok(match dialect(params.dialect.as_deref())? {
        podwire_kfl::Dialect::Kfl1 => kfl1_fields(),
        podwire_kfl::Dialect::Kfl2 => kfl2_fields(),
    })
}

/// KFL2's variables: the recorded ones with their tables, the flags as aliases, and those
/// podwire does not record (so a client can say so instead of offering them).
fn kfl2_fields() -> Response {
    use podwire_kfl::kfl2::vars::{VARS, Var};
    let mut fields = Vec::new();
    let mut flags = Vec::new();
    let mut not_recorded = Vec::new();
    for v in VARS {
        match v {
            Var::Field(f) => {
                let tables: Vec<&str> = f.tables().iter().map(|t| t.name()).collect();
                fields.push(json!({ "name": f.name, "type": v.type_name(), "tables": tables, "doc": f.doc, "values": [] }));
            }
            Var::Aggregate { name, doc, .. } => fields.push(json!({
                "name": name, "type": v.type_name(), "tables": ["connections", "dns"], "doc": doc, "values": []
            })),
            Var::Flag { name, doc, .. } => flags.push(json!({ "name": name, "doc": doc })),
            Var::NotRecorded { name, ty, why } => {
                not_recorded.push(json!({ "name": name, "type": ty, "doc": why }));
            }
        }
    }
    axum::Json(json!({
        "dialect": "kfl2",
        "fields": fields,
        "aliases": flags,
        "helpers": ["contains", "startsWith", "endsWith", "matches", "size", "has", "exists", "all",
                    "exists_one", "timestamp", "duration", "now"],
        "keywords": ["&&", "||", "in", "true", "false"],
        "not_recorded": not_recorded,
    }))
    .into_response()
}

fn kfl1_fields() -> Response {
    let fields: Vec<serde_json::Value> = podwire_kfl::fields::catalog()
        .map(|f| {
            let tables: Vec<&str> = f.tables().iter().map(|t| t.name()).collect();
            let values: Vec<serde_json::Value> =
                f.values.iter().map(|(v, doc)| json!({ "value": v, "doc": doc })).collect();
            json!({
                "name": f.name,
                "type": f.ty.name(),
                "nullable": f.nullable,
                "tables": tables,
                "doc": f.doc,
                "values": values,
            })
        })
        .collect();
    axum::Json(json!({
        "dialect": "kfl1",
        "fields": fields,
        "aliases": podwire_kfl::translate::ALIASES,
        "helpers": ["startsWith", "endsWith", "contains", "datetime", "now", "seconds", "minutes",
                    "hours", "days", "weeks", "months", "years", "limit"],
        "keywords": ["and", "or"],
    }))
    .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let root = state.store.root();
    match state.store.check().await {
        Ok(()) => axum::Json(json!({ "status": "ok", "store": root.display().to_string() }))
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "STORE_UNREADABLE",
            format!("cannot read the store `{}`: {e}", root.display()),
        )
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such endpoint; the API is described at /api/v1/openapi.json",
    )
}
