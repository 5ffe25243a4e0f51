//! [`Store`]: a DataFusion `SessionContext` over one store folder, running KFL and checked SQL.
//!
//! A KFL query is translated by `podwire-kfl` into a `sqlparser` statement; the time range is
//! also added to that AST as predicates on the partition columns ([`crate::prune`]); then the
//! statement goes to DataFusion's SQL planner as an AST (`SessionState::statement_to_plan`), never
//! through SQL text. DataFusion and `podwire-kfl` share `sqlparser` 0.62, so the AST types are the
//! same. Every plan is checked read-only with `SQLOptions` before it runs.
use crate::catalog::{self, DATE, HOUR};
use crate::compact::CompactFilteredScans;
use crate::contradiction::FoldContradictions;
use crate::delta::AsOf;
use crate::error::{Error, Result};
use crate::order::FilterOrder;
use crate::pushdown::Pushdown;
use crate::{prune, readonly};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use podwire_kfl::{Options, Translation};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A KFL query with its time range and row limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryRequest<'a> {
    /// The KFL filter; blank matches everything.
    pub kfl: &'a str,
    /// Only entries at or after this time (epoch ms).
    pub from_ms: Option<i64>,
    /// Only entries before this time (epoch ms).
    pub to_ms: Option<i64>,
    /// At most this many rows (on top of the filter's own `limit(n)`; the smaller wins).
    pub limit: Option<u64>,
    /// "Now" for `now()`, relative helpers and relative times, epoch ms.
    pub now_ms: i64,
    /// The language `kfl` is written in.
    pub dialect: podwire_kfl::Dialect,
    /// A KFL1 filter that rows must also match (`""`: none): a client's own clauses, such as
    /// the dashboard's map selection, on top of a filter in either dialect.
    pub extra: &'a str,
}

impl<'a> QueryRequest<'a> {
    /// `kfl` in KFL1 over all of the store, without a row limit, "now" at the epoch; set the
    /// rest with struct update syntax.
    pub fn new(kfl: &'a str) -> Self {
        QueryRequest {
            kfl,
            from_ms: None,
            to_ms: None,
            limit: None,
            now_ms: 0,
            dialect: podwire_kfl::Dialect::Kfl1,
            extra: "",
        }
    }
}

/// How a [`Store`]'s session runs queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Memory all running queries may hold together, in bytes; sorts and aggregations beyond it
    /// spill to temporary files, and a query that still cannot fit fails with
    /// [`Error::Resources`]. `None`: no limit.
    pub memory_limit: Option<usize>,
    /// Parallel partitions per query (DataFusion's `target_partitions`); `None`: one per core
    /// and one more.
    pub target_partitions: Option<usize>,
    /// Whether the Parquet reader applies a query's filter (late materialization); by default
    /// for filters that ask for a few entities ([`crate::pushdown`]).
    pub pushdown: Pushdown,
    /// The order a scan's filter evaluates its terms in: by default the one that keeps fewest
    /// rows in a sample of the store first ([`crate::order`]).
    pub filter_order: FilterOrder,
    /// For experiments: leave the batches of a filtering scan as the reader returns them,
    /// instead of copying them into full batches ([`crate::compact`]).
    pub uncompacted_scans: bool,
    /// For experiments on a rewritten store whose files hold their rows in another order than
    /// time (benchmarks/layout-experiment.py): declare no order, so results are sorted instead
    /// of merged from the files.
    pub unsorted_files: bool,
    /// Read the tables as an older snapshot of their Delta logs ([`AsOf`]); `None`: the newest,
    /// kept up to date.
    pub as_of: Option<AsOf>,
    /// Bytes of decoded Parquet footers (and page indexes) kept between reads of a file;
    /// `None`: DataFusion's default (50 MB). A session that runs many queries (`podwire serve`)
    /// saves decoding them again; one that runs a single query saves the memory.
    pub footer_cache: Option<usize>,
}

/// The query engine over one store folder.
#[derive(Clone)]
pub struct Store {
    ctx: SessionContext,
    root: PathBuf,
    options: StoreOptions,
    /// Where plans run: `None` here, or a Ballista cluster ([`Store::on_cluster`]).
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `root`: every table is registered, whether it has files yet or not.
    ///
    /// # Errors
    /// [`Error::Store`] when `root` exists and is not a folder, or cannot be made a URL.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(root, StoreOptions::default())
    }

    /// [`Store::open`] with a memory limit and parallelism.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with(root: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        Self::open_in(root.as_ref().to_path_buf(), options, None)
    }

    /// [`Store::open_with`], its queries sharing `pool` (a memory limit) when given.
    fn open_in(
        root: PathBuf,
        options: StoreOptions,
        pool: Option<Arc<dyn MemoryPool>>,
    ) -> Result<Self> {
        if !catalog::is_bucket(&root) && root.exists() && !root.is_dir() {
            return Err(Error::Store {
                path: root.display().to_string(),
                reason: "not a folder".into(),
            });
        }
        let mut config = SessionConfig::new().with_information_schema(false);
        // Files that do not overlap in time are chained into ordered groups, so a result in time
        // order is a merge of a few streams rather than a sort of every row.
        config.options_mut().execution.split_file_groups_by_statistics = true;
        // No filter pushdown into the Parquet decoder (late materialization) by default: it made
        // broad filters slower (13-26 % on a, where 12 % of rows match; 6-14 % on b, 1 %).
        // `plan` turns it on per query as `StoreOptions::pushdown` says: by default for those
        // that ask for a few entities by identity (`crate::pushdown`).
        config.options_mut().execution.parquet.pushdown_filters = false;
        // One scan more than there are cores: while a scan waits for its file reads (done on
        // tokio's blocking threads) or the single ordered merge above the scans is busy, the
        // cores still have a scan to run. On 2 cores, 3 partitions made the whole-history
        // queries 4-12 % faster than 2 (alternating rounds, benchmarks/README.md).
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let partitions = options.target_partitions.unwrap_or(cores + 1);
        config = config.with_target_partitions(partitions.max(1));
        // No DataFusion list-files cache: it keeps a table's first listing for the life of the
        // session (no expiry by default), so `podwire serve` would never see a file ingest
        // committed after its first query, nor stop listing the files a compaction removed.
        // The listing's own cache (`crate::delta`, refreshed every `REFRESH`) is the only one.
        let mut runtime = RuntimeEnvBuilder::new().with_object_list_cache_limit(0);
        if let Some(bytes) = options.footer_cache {
            runtime = runtime.with_metadata_cache_limit(bytes);
        }
        if let Some(pool) = pool {
            runtime = runtime.with_memory_pool(pool);
        } else if let Some(bytes) = options.memory_limit {
            // Shared fairly among the queries that spill (sorts), so one query cannot starve
            // the others.
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
        }
        let runtime = runtime.build_arc()?;
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_optimizer_rule(Arc::new(FoldContradictions));
        if !options.uncompacted_scans {
            state = state.with_physical_optimizer_rule(Arc::new(CompactFilteredScans));
        }
        let state = state.build();
        let ctx = SessionContext::new_with_state(state);
        catalog::register_store(&ctx, &root, options.as_of, !options.unsorted_files)?;
        Ok(Self {
            ctx,
            root,
            options,
            #[cfg(feature = "cluster")]
            cluster: None,
        })
    }

    /// The same store, its queries planned here and run on `cluster` ([`crate::cluster`]).
    #[cfg(feature = "cluster")]
    #[must_use]
    pub fn on_cluster(mut self, cluster: crate::cluster::Cluster) -> Self {
        self.cluster = Some(Arc::new(cluster));
        self
    }

    /// Runs a planned query (from [`Store::kfl`], [`Store::sql`], …) here or on the cluster,
    /// and streams its rows.
    ///
    /// # Errors
    /// What planning or starting the query said; [`Error::Cluster`] when the cluster cannot run
    /// it.
    pub async fn stream(
        &self,
        df: DataFrame,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            let (state, plan) = df.into_parts();
            let physical = state.create_physical_plan(&plan).await?;
            return cluster.execute(physical, state.task_ctx()).await;
        }
        Ok(df.execute_stream().await?)
    }

    /// [`Store::stream`], every batch collected.
    ///
    /// # Errors
    /// As [`Store::stream`], and what running the query said.
    pub async fn collect(&self, df: DataFrame) -> Result<Vec<arrow::array::RecordBatch>> {
        use futures::TryStreamExt as _;
        Ok(self.stream(df).await?.try_collect().await?)
    }

    /// The plan of a planned query, as text: the physical plan, or on a cluster the stages it
    /// is cut into.
    ///
    /// # Errors
    /// What physical planning said.
    pub async fn explain(&self, df: DataFrame) -> Result<String> {
        let (state, plan) = df.into_parts();
        let physical = state.create_physical_plan(&plan).await?;
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            return cluster.stages(physical, state.config());
        }
        Ok(datafusion::physical_plan::displayable(physical.as_ref()).indent(true).to_string())
    }

    /// The same store with the same options, read `as_of` an older snapshot (`None`: the
    /// newest): a session of its own (its queries count against this one's memory limit), for
    /// one request of the API.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn at(&self, as_of: Option<AsOf>) -> Result<Self> {
        if as_of == self.options.as_of {
            return Ok(self.clone());
        }
        let pool = Arc::clone(&self.ctx.runtime_env().memory_pool);
        let store =
            Self::open_in(self.root.clone(), StoreOptions { as_of, ..self.options }, Some(pool))?;
        #[cfg(feature = "cluster")]
        let store = Self { cluster: self.cluster.clone(), ..store };
        Ok(store)
    }

    /// The store folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the store can be read now (the health check): its folder listed, or its bucket
    /// prefix listed through the session's client.
    ///
    /// # Errors
    /// What the listing said.
    pub async fn check(&self) -> std::result::Result<(), String> {
        if !catalog::is_bucket(&self.root) {
            return std::fs::read_dir(&self.root).map(|_| ()).map_err(|e| e.to_string());
        }
        let url =
            datafusion::datasource::listing::ListingTableUrl::parse(self.root.to_string_lossy())
                .map_err(|e| e.to_string())?;
        let store = self.ctx.runtime_env().object_store(&url).map_err(|e| e.to_string())?;
        store.list_with_delimiter(Some(url.prefix())).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// The DataFusion session (tables registered, nothing else).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Translates the request's KFL with its time range folded into the filter.
    ///
    /// # Errors
    /// [`Error::Kfl`] for a filter that does not parse or check.
    pub fn translate(&self, request: &QueryRequest<'_>) -> Result<Translation> {
        let options = Options {
            now_ms: request.now_ms,
            from_ms: request.from_ms,
            to_ms: request.to_ms,
            dialect: request.dialect,
        };
        Ok(podwire_kfl::translate_and(request.kfl, request.extra, &options)?)
    }

    /// Plans a KFL query: rows in time order, partition columns left out.
    ///
    /// # Errors
    /// [`Error::Kfl`] for a bad filter; [`Error::Sql`] if DataFusion cannot plan the translation
    /// (a bug in the translator).
    pub async fn kfl(&self, request: &QueryRequest<'_>) -> Result<DataFrame> {
        let translation = self.translate(request)?;
        self.translation(&translation, request.limit).await
    }

    /// Plans a translated KFL query, adding partition predicates for the range its entries lie
    /// in ([`Translation::from_ms`], `to_ms`: the request's range and the filter's own
    /// `timestamp` conditions) and an optional row limit.
    ///
    /// # Errors
    /// [`Error::Sql`] if DataFusion cannot plan the statement.
    pub async fn translation(
        &self,
        translation: &Translation,
        limit: Option<u64>,
    ) -> Result<DataFrame> {
        let mut statement = translation.statement.clone();
        if let Some(predicate) = prune::partition_predicate(translation.from_ms, translation.to_ms)
        {
            prune::add_predicate(&mut statement, &predicate);
        }
        let mut df = self.plan_in(statement, translation.from_ms, translation.to_ms).await?;
        // `SELECT *` over one table also returns the partition columns; KFL rows are the
        // table's own columns.
        let partition: Vec<&str> = [DATE, HOUR]
            .into_iter()
            .filter(|c| df.schema().fields().iter().any(|f| f.name() == c))
            .collect();
        if !partition.is_empty() {
            df = df.drop_columns(&partition)?;
        }
        with_limit(df, limit)
    }

    /// Plans a raw SQL query after the read-only check of [`readonly::check`]. The partition
    /// columns `date` and `hour` are columns of every table here.
    ///
    /// # Errors
    /// [`Error::Rejected`] for anything but one read-only query; [`Error::Sql`] when it does not
    /// parse or plan.
    pub async fn sql(&self, text: &str, limit: Option<u64>) -> Result<DataFrame> {
        let statement = readonly::check(text)?;
        let df = self.plan(statement).await?;
        with_limit(df, limit)
    }

    /// Plans and runs a statement built here (the map, the timeline), its rows collected.
    pub(crate) async fn rows(
        &self,
        statement: sqlparser::ast::Statement,
    ) -> Result<Vec<arrow::array::RecordBatch>> {
        let df = self.plan(statement).await?;
        self.collect(df).await
    }

    /// Plans a statement built here (the map, the timeline): checked read-only like any other.
    pub(crate) async fn plan(&self, statement: sqlparser::ast::Statement) -> Result<DataFrame> {
        self.plan_in(statement, None, None).await
    }

    /// [`Self::plan`] for a statement whose rows lie in `[from_ms, to_ms)`: the range the
    /// pushdown choice samples ([`crate::pushdown`]).
    async fn plan_in(
        &self,
        statement: sqlparser::ast::Statement,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<DataFrame> {
        let plan: LogicalPlan =
            self.ctx.state().statement_to_plan(DfStatement::Statement(Box::new(statement))).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| Error::Rejected(e.find_root().to_string()))?;
        // A sample of the store decides what the filter's shape leaves open: pushdown, and the
        // order of its terms.
        let scans = crate::pushdown::filtered_scans(&plan);
        let shape_decides =
            self.options.pushdown != Pushdown::Auto || crate::pushdown::asks_for_few(&plan);
        let order = self.options.filter_order == FilterOrder::Sampled
            && crate::order::has_terms_to_order(&scans);
        let samples = if scans.is_empty() || (shape_decides && !order) {
            None
        } else {
            self.sample(&scans, from_ms, to_ms).await
        };
        let pushdown = if shape_decides {
            self.options.pushdown.applies_to(&plan)
        } else {
            let kept = samples.as_deref().map(crate::sample::total).unwrap_or_default();
            kept.fraction().is_some_and(|f| f <= crate::pushdown::KEEP_AT_MOST)
        };
        let plan = match &samples {
            Some(samples) if order => crate::order::fewest_kept_first(plan, &scans, samples)?,
            _ => plan,
        };
        let mut state = self.ctx.state();
        state.config_mut().options_mut().execution.parquet.pushdown_filters = pushdown;
        #[cfg(feature = "cluster")]
        if self.cluster.is_some() {
            crate::cluster::Cluster::prepare(state.config_mut().options_mut());
        }
        Ok(DataFrame::new(state, plan))
    }

    /// What the filters of `scans` keep in a sample of the store, each and term by term;
    /// `None` when the sample cannot be taken (the shape and the written order decide).
    async fn sample(
        &self,
        scans: &[(datafusion::common::TableReference, datafusion::logical_expr::Expr)],
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Option<Vec<crate::sample::ScanSample>> {
        match crate::sample::scans(&self.ctx, &self.root, scans, from_ms, to_ms).await {
            Ok(samples) => {
                let kept = crate::sample::total(&samples);
                tracing::debug!(rows = kept.rows, kept = kept.kept, "sampled the filter");
                Some(samples)
            }
            Err(e) => {
                tracing::debug!("sampling the filter failed: {e}");
                None
            }
        }
    }
}

fn with_limit(df: DataFrame, limit: Option<u64>) -> Result<DataFrame> {
    match limit {
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(df.limit(0, Some(n))?)
        }
        None => Ok(df),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_without_a_footer_cache_keeps_none_and_reads_the_same_rows() {
        let dir = crate::sample::tests::sampled_store();
        let kfl = r#"tcp and dst.namespace == "rare""#;
        let kept = Store::open(dir.path()).unwrap();
        let options = StoreOptions { footer_cache: Some(0), ..Default::default() };
        let none = Store::open_with(dir.path(), options).unwrap();
        for store in [&kept, &none] {
            // Twice: the second query finds the footers the first kept, or decodes them again.
            for _ in 0..2 {
                let df = store.kfl(&QueryRequest::new(kfl)).await.unwrap();
                let rows: usize =
                    store.collect(df).await.unwrap().iter().map(|b| b.num_rows()).sum();
                assert_eq!(rows, 15);
            }
        }
        let footers = |store: &Store| {
            let cache = store.context().runtime_env().cache_manager.get_file_metadata_cache();
            (cache.cache_limit(), cache.len())
        };
        assert_eq!(footers(&none), (0, 0));
        let (limit, files) = footers(&kept);
        assert!(limit > 0 && files == 3, "limit {limit}, files {files}");
    }
}
