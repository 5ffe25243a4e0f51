//! Queries on a cluster: Apache DataFusion Ballista runs the plans this crate makes (feature
//! `cluster`).
//!
//! The query process plans as it does alone: the KFL translation, the partition predicates, the
//! Delta snapshot's file list ([`crate::delta`]), the pushdown choice and the physical rules
//! ([`crate::compact`]) all happen here, against the store. The finished physical plan is then
//! submitted to the scheduler ([`Cluster::execute`]); Ballista's static planner cuts it into
//! stages at its repartitions (an aggregation's partial half runs on the executors, next to the
//! files), and the executors run the tasks. The plan's last step, when it gathers partitions
//! into one (the merge of a result in time order), stays here: the client follows the job
//! itself, then fetches the final stage's partitions from their executors as the bytes of their
//! shuffle files and merges them ([`split_gather`], [`FetchedPartition`]). So the
//! executors need no Delta code and no store configuration: a plan names its files, and an
//! executor reads `file://` paths through memory mappings ([`crate::local`]) and `s3://BUCKET`
//! through a client made from its own `AWS_*` environment ([`runtime_producer`]). A folder store
//! must therefore be mounted at the same path on every executor.
//!
//! Submitting physical plans (not logical ones) keeps the scheduler out of the planning: its
//! adaptive planner would replace podwire's physical rules, and it would list the files itself.
//! What Ballista cannot carry is turned off while planning for it ([`Cluster::prepare`]):
//! dynamic filters (a TopK's filter cannot cross a stage boundary) and round-robin
//! repartitions. And what its planner would cut into a stage for nothing is taken out of the job
//! before it is submitted ([`without_needless_stages`]).
mod fetch;

use crate::error::{Error, Result};
use ballista_core::config::{
    BALLISTA_CLIENT_GRPC_CONNECT_TIMEOUT_SECONDS, BALLISTA_SHUFFLE_COMPRESSION_CODEC,
    BallistaConfig, TaskSchedulingPolicy,
};
use ballista_core::extension::SessionConfigExt as _;
use ballista_core::serde::BallistaPhysicalExtensionCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{
    CancelJobParams, ExecuteQueryParams, GetJobStatusResult, KeyValuePair, PartitionLocation,
    execute_query_params, job_status,
};
use ballista_core::utils::{GrpcClientConfig, create_grpc_client_endpoint};
use datafusion::common::tree_node::{Transformed, TreeNode as _};
use datafusion::config::ConfigOptions;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, EmptyRecordBatchStream, ExecutionPlan, ExecutionPlanProperties as _,
    ReplaceChildrenOptions, displayable,
};
use datafusion::prelude::SessionConfig;
use datafusion_proto::physical_plan::AsExecutionPlan as _;
use datafusion_proto::protobuf::PhysicalPlanNode;
use fetch::FetchedPartition;
use object_store::ObjectStore;
use prost::Message as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

/// The host and port of a scheduler address: `host:port`, `host` (Ballista's default port),
/// `df://host:port` or `http://host:port`.
fn scheduler_address(address: &str) -> Result<(String, u16)> {
    let bare = address
        .trim()
        .trim_start_matches("df://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let url = url::Url::parse(&format!("http://{bare}")).map_err(|e| Error::Cluster {
        address: address.to_owned(),
        reason: format!("not a scheduler address ({e}); give HOST:PORT"),
    })?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| Error::Cluster {
        address: address.to_owned(),
        reason: "no host; give HOST:PORT".into(),
    })?;
    Ok((host.to_owned(), url.port().unwrap_or(DEFAULT_SCHEDULER_PORT)))
}

/// The scheduler's gRPC port when an address gives none (Ballista's default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// How long a connection to the scheduler, or to an executor for a result partition, may take
/// before the query fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Ballista scheduler that runs this process's queries.
#[derive(Debug)]
pub struct Cluster {
    /// `host:port`, as the user gave it (in messages).
    address: String,
    /// `http://host:port`, what the gRPC client dials.
    url: String,
    /// One session for the life of the process: executors keep a session's runtime (object
    /// store clients, footer caches) between its queries.
    session_id: String,
    /// The longest a query may take, from submission to its last row's arrival at the
    /// scheduler: a job with no executor to run it waits in the queue forever otherwise.
    deadline: Duration,
    /// How the executors compress the files one stage hands to the next and the client.
    compression: ShuffleCompression,
}

/// How a job's shuffle files are compressed (Ballista's `ballista.shuffle.compression.codec`).
/// The client fetches the final stage's files as they were written, so the codec is paid once
/// on each side. Uncompressed files are the fastest on one host or a fast network (a 1.2 M-row
/// result 1.45x in-process instead of lz4's 1.52x, benchmarks/README.md) at twice the disk and
/// network bytes; `zstd` makes the smallest files, for slow networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShuffleCompression {
    /// LZ4 frames (Ballista's default).
    #[default]
    Lz4,
    /// Zstandard: smaller files, more CPU.
    Zstd,
    /// Arrow IPC as it is.
    None,
}

impl ShuffleCompression {
    fn codec(self) -> &'static str {
        match self {
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
            Self::None => "none",
        }
    }
}

impl Cluster {
    /// A client of the scheduler at `address` (`host:port`, `host`, `df://host:port` or
    /// `http://host:port`); nothing is dialled yet.
    ///
    /// # Errors
    /// [`Error::Cluster`] when `address` is not a host and port.
    pub fn new(address: &str, deadline: Duration) -> Result<Self> {
        let (host, port) = scheduler_address(address)?;
        Ok(Self {
            address: format!("{host}:{port}"),
            url: format!("http://{host}:{port}"),
            session_id: format!("podwire-{}", uuid::Uuid::new_v4()),
            deadline,
            compression: ShuffleCompression::default(),
        })
    }

    /// The same client, its jobs' shuffle files compressed with `compression`.
    #[must_use]
    pub fn with_shuffle_compression(self, compression: ShuffleCompression) -> Self {
        Self { compression, ..self }
    }

    /// The scheduler's `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Settings of a session whose plans run on the cluster: what cannot cross Ballista's stage
    /// boundaries is turned off, as Ballista's own client does (`ballista_restricted_configuration`).
    /// String columns stay `Utf8View` (the schema says so explicitly).
    pub fn prepare(options: &mut ConfigOptions) {
        // A TopK or join fills its dynamic filter at run time; the scan that reads it may run
        // in another stage, on another executor, and would wait for it forever.
        options.optimizer.enable_dynamic_filter_pushdown = false;
        options.optimizer.enable_round_robin_repartition = false;
        // Sort-merge joins spill; a hash join's build side must fit in every task.
        options.optimizer.prefer_hash_join = false;
    }

    /// Runs `plan` on the cluster and streams its rows back. The session's settings travel
    /// with the job (the executors read Parquet as the query process would); the plan's last
    /// step, when it gathers partitions ([`split_gather`]: the merge of a result in time order,
    /// or the coalescing of an unordered one), runs here on the final stage's partitions, each
    /// fetched from its executor as the bytes of its shuffle file ([`FetchedPartition`]).
    ///
    /// # Errors
    /// [`Error::Cluster`] when the scheduler cannot be reached or the job fails or outlives
    /// the deadline; [`Error::Internal`] when the plan cannot be serialized.
    pub async fn execute(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        task: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let config = self.job_config(task.session_config());
        let (job_plan, gather) = split_gather(plan);
        let job_plan = without_needless_stages(job_plan)?;
        let mut locations = self.run_job(Arc::clone(&job_plan), &config).await?;
        let schema = job_plan.schema();
        if locations.is_empty() {
            return Ok(Box::pin(EmptyRecordBatchStream::new(schema)));
        }
        locations.sort_by_key(|l| l.partition_id.as_ref().map(|p| p.partition_id));
        let ballista = config.ballista_config();
        let partitions = locations
            .into_iter()
            .map(|location| {
                Arc::new(FetchedPartition {
                    schema: Arc::clone(&schema),
                    location,
                    max_message_size: ballista.grpc_client_max_message_size(),
                    retries: u8::try_from(ballista.io_retries_times()).unwrap_or(u8::MAX),
                    retry_wait_ms: ballista.io_retry_wait_time_ms() as u64,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let fetched: Arc<dyn ExecutionPlan> = Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            None,
            job_plan.output_ordering().cloned(),
            false,
            None,
        )?);
        let root = match gather {
            Some(gather) => gather.replace_children(
                vec![fetched],
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )?,
            None => fetched,
        };
        Ok(datafusion::physical_plan::execute_stream(root, task)?)
    }

    /// Submits `plan` as a job and follows its status until it ends: the locations of its final
    /// stage's partitions, or the reason it failed. A job still running at the deadline is
    /// cancelled.
    async fn run_job(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &SessionConfig,
    ) -> Result<Vec<PartitionLocation>> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let codec = BallistaPhysicalExtensionCodec::default();
        let node = PhysicalPlanNode::try_from_physical_plan(plan, &codec)
            .map_err(|e| Error::Internal(format!("the plan cannot be sent to the cluster: {e}")))?;
        let settings = config
            .options()
            .entries()
            .into_iter()
            .map(|e| KeyValuePair { key: e.key, value: e.value })
            .collect();
        let query = ExecuteQueryParams {
            query: Some(execute_query_params::Query::PhysicalPlan(node.encode_to_vec())),
            settings,
            session_id: self.session_id.clone(),
            operation_id: uuid::Uuid::new_v4().to_string(),
        };
        let submitted = async {
            let mut scheduler = self.scheduler(config).await?;
            let mut request = tonic::Request::new(query);
            ballista_core::version::insert_version_header(request.metadata_mut());
            let response = scheduler
                .execute_query_push(request)
                .await
                .map_err(|e| self.error(&e.to_string()))?;
            ballista_core::version::check_compatibility(
                Some(ballista_core::BALLISTA_VERSION),
                ballista_core::version::version_from_metadata(response.metadata()),
            )
            .map_err(|e| self.error(&e))?;
            Ok::<_, Error>((scheduler, response.into_inner()))
        };
        let (mut scheduler, mut statuses) =
            tokio::time::timeout_at(deadline, submitted).await.map_err(|_| self.too_long())??;
        let mut job_id = None;
        loop {
            let Ok(update) = tokio::time::timeout_at(deadline, statuses.message()).await else {
                if let Some(job_id) = job_id {
                    Self::cancel(&mut scheduler, job_id).await;
                }
                return Err(self.too_long());
            };
            let update = update.map_err(|e| self.error(&e.to_string()))?;
            let Some(GetJobStatusResult { status: Some(status), .. }) = update else {
                if update.is_none() {
                    return Err(self.error("the scheduler ended the job's status stream early"));
                }
                continue;
            };
            job_id.get_or_insert_with(|| status.job_id.clone());
            match status.status {
                Some(job_status::Status::Successful(done)) => return Ok(done.partition_location),
                Some(job_status::Status::Failed(failed)) => {
                    return Err(
                        self.error(&format!("job {} failed: {}", status.job_id, failed.error))
                    );
                }
                _ => {}
            }
        }
    }

    /// A client of the scheduler, connected within the connect timeout.
    async fn scheduler(&self, config: &SessionConfig) -> Result<SchedulerGrpcClient<Channel>> {
        let ballista = config.ballista_config();
        let grpc = GrpcClientConfig::from(&ballista);
        let endpoint = create_grpc_client_endpoint(self.url.clone(), Some(&grpc))
            .map_err(|e| self.error(&e.to_string()))?;
        let channel = endpoint.connect().await.map_err(|e| self.error(&format!("{e:?}")))?;
        Ok(SchedulerGrpcClient::new(channel)
            .max_encoding_message_size(ballista.grpc_client_max_message_size())
            .max_decoding_message_size(ballista.grpc_client_max_message_size()))
    }

    /// Cancels a job whose result nobody will read; a failure is only logged.
    async fn cancel(scheduler: &mut SchedulerGrpcClient<Channel>, job_id: String) {
        let cancelled = scheduler.cancel_job(CancelJobParams { job_id: job_id.clone() });
        match tokio::time::timeout(CONNECT_TIMEOUT, cancelled).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(job = %job_id, error = %e, "could not cancel the job"),
            Err(_) => tracing::warn!(job = %job_id, "could not cancel the job: no answer"),
        }
    }

    /// The error of a query that outlived the deadline.
    fn too_long(&self) -> Error {
        Error::Cluster {
            address: self.address.clone(),
            reason: format!(
                "the query did not finish within {}s; is an executor registered \
                 (`podwire cluster executor --scheduler {}`)? Raise --cluster-timeout for \
                 longer queries",
                self.deadline.as_secs(),
                self.address
            ),
        }
    }

    /// The stages Ballista's planner cuts `plan` into, as text: what `--explain` shows.
    ///
    /// # Errors
    /// [`Error::Internal`] when the planner refuses the plan.
    pub fn stages(&self, plan: Arc<dyn ExecutionPlan>, config: &SessionConfig) -> Result<String> {
        let config = self.job_config(config);
        let (job_plan, gather) = split_gather(plan);
        let job_plan = without_needless_stages(job_plan)?;
        let mut planner = ballista_scheduler::planner::DefaultDistributedPlanner::new();
        let job = ballista_core::JobId::new("explain");
        let stages = ballista_scheduler::planner::DistributedPlanner::plan_query_stages(
            &mut planner,
            &job,
            job_plan,
            config.options(),
        )
        .map_err(|e| Error::Internal(format!("Ballista's planner: {e}")))?;
        let mut text = String::new();
        for stage in &stages {
            text.push_str(&format!(
                "stage {}\n{}\n",
                stage.stage_id(),
                displayable(stage.as_ref()).indent(true)
            ));
        }
        if let Some(gather) = gather {
            text.push_str(&format!(
                "in the query process, over the last stage's partitions\n{}\n",
                displayable(gather.as_ref()).one_line()
            ));
        }
        Ok(text)
    }

    /// The session settings a job carries: the session's, Ballista's client settings, a
    /// connect timeout (an unreachable scheduler fails in seconds, naming its address) and the
    /// shuffle files' compression.
    fn job_config(&self, config: &SessionConfig) -> SessionConfig {
        let mut config = config.clone();
        if config.options().extensions.get::<BallistaConfig>().is_none() {
            config = config.with_option_extension(BallistaConfig::default());
        }
        config
            .set_u64(BALLISTA_CLIENT_GRPC_CONNECT_TIMEOUT_SECONDS, CONNECT_TIMEOUT.as_secs())
            .set_str(BALLISTA_SHUFFLE_COMPRESSION_CODEC, self.compression.codec())
    }

    fn error(&self, message: &str) -> Error {
        let reason = if message.contains("transport error")
            || message.contains("Connection refused")
            || message.contains("ConnectError")
        {
            format!(
                "cannot reach the scheduler ({message}); is `podwire cluster scheduler` running \
                 and listening there?"
            )
        } else {
            message.to_owned()
        };
        Error::Cluster { address: self.address.clone(), reason }
    }
}

/// `plan` cut where the cluster's work ends: a root that gathers its input's partitions into
/// one (a [`SortPreservingMergeExec`], which keeps its `fetch`, or a
/// [`CoalescePartitionsExec`]) is left to the query process, and its input becomes the job.
/// Run on the cluster, the gathering would be a stage of its own: every row written to a
/// shuffle file once more, read back by one task, and written again for the client.
fn split_gather(
    plan: Arc<dyn ExecutionPlan>,
) -> (Arc<dyn ExecutionPlan>, Option<Arc<dyn ExecutionPlan>>) {
    let gathers = plan.is::<SortPreservingMergeExec>() || plan.is::<CoalescePartitionsExec>();
    match plan.children().as_slice() {
        [input] if gathers => (Arc::clone(input), Some(plan)),
        _ => (plan, None),
    }
}

/// The job with the stages Ballista's planner would cut for nothing taken out. Its planner gives
/// a union's branch a stage of its own when the branch's partition count does not come from its
/// files (a non-preserving sort reports one partition whatever it reads), and each stage costs a
/// round of scheduling, about 40 ms. podwire's plans have two such branches:
/// - a table with no file in the query's range: a branch that yields no row (an `EmptyExec`
///   under projections, filters and sorts), which is dropped from its union when the union's
///   schema stays the same without it;
/// - a sort over one partition, which the planner left non-preserving: the same sort when it
///   preserves the partitioning.
fn without_needless_stages(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let rewritten = plan.transform_up(|node| {
        if let Some(sort) = node.downcast_ref::<SortExec>()
            && !sort.preserve_partitioning()
            && sort.input().output_partitioning().partition_count() == 1
        {
            let sort = sort.clone().with_preserve_partitioning(true);
            return Ok(Transformed::yes(Arc::new(sort) as Arc<dyn ExecutionPlan>));
        }
        if node.is::<UnionExec>() {
            let children = node.children();
            let kept: Vec<_> =
                children.iter().filter(|c| !yields_nothing(c)).map(|c| Arc::clone(c)).collect();
            if !kept.is_empty() && kept.len() < children.len() {
                let union = UnionExec::try_new(kept)?;
                if union.schema() == node.schema() {
                    return Ok(Transformed::yes(union));
                }
            }
        }
        Ok(Transformed::no(node))
    })?;
    Ok(rewritten.data)
}

/// Whether `plan` yields no row whatever it is given: an `EmptyExec`, under steps that only
/// drop, reorder or reshape rows.
fn yields_nothing(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if plan.is::<EmptyExec>() {
        return true;
    }
    let passes_rows_on = plan.is::<ProjectionExec>()
        || plan.is::<FilterExec>()
        || plan.is::<SortExec>()
        || plan.is::<CoalescePartitionsExec>();
    passes_rows_on && matches!(plan.children().as_slice(), [input] if yields_nothing(input))
}

/// The object stores of an executor: `file://` through memory mappings, and each `s3://BUCKET`
/// a plan names through a client made from this process's `AWS_*` environment the first time
/// it is asked for (so executors need no list of stores).
#[derive(Debug)]
struct Stores {
    known: DefaultObjectStoreRegistry,
}

impl Stores {
    fn new() -> Self {
        let known = DefaultObjectStoreRegistry::new();
        let files = url::Url::parse("file://").expect("a constant URL");
        known.register_store(&files, Arc::new(crate::local::MappedFiles::new()));
        Self { known }
    }
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn get_store(&self, url: &url::Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let bucket = url.host_str().unwrap_or_default();
        if url.scheme() != "s3" || bucket.is_empty() {
            return Err(datafusion::error::DataFusionError::Configuration(format!(
                "no object store for `{url}`: podwire executors read file:// and s3:// stores"
            )));
        }
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| {
                datafusion::error::DataFusionError::Configuration(format!(
                    "the executor cannot read `s3://{bucket}`: {e}; set AWS_ACCESS_KEY_ID, \
                     AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT as for `podwire serve`"
                ))
            })?;
        let s3: Arc<dyn ObjectStore> = Arc::new(s3);
        self.known.register_store(url, Arc::clone(&s3));
        Ok(s3)
    }
}

/// The runtime of every session an executor runs (and of the scheduler's): the object stores of
/// [`Stores`], shared by all sessions.
pub fn runtime_producer() -> ballista_core::RuntimeProducer {
    let stores: Arc<dyn ObjectStoreRegistry> = Arc::new(Stores::new());
    Arc::new(move |_config: &SessionConfig| -> datafusion::error::Result<Arc<RuntimeEnv>> {
        RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(&stores))
            .with_object_list_cache_limit(0)
            .build_arc()
    })
}

/// The functions an executor resolves a plan's calls with: every function of a default
/// DataFusion session, the same as the planning process has. Ballista's own default registry
/// holds only the core ones, not the nested (`array_has`, which KFL's `[*]` becomes).
fn functions() -> ballista_core::registry::BallistaFunctionRegistry {
    let state = datafusion::execution::session_state::SessionStateBuilder::new()
        .with_default_features()
        .build();
    ballista_core::registry::BallistaFunctionRegistry::from(&state)
}

/// `podwire cluster scheduler`'s settings.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Where its gRPC service listens (clients and executors connect here).
    pub listen: SocketAddr,
    /// The host name executors and clients are told to reach it by.
    pub external_host: Option<String>,
    /// How long an executor may stay silent before its tasks are run elsewhere.
    pub executor_timeout: Duration,
}

/// Runs a scheduler until the process ends.
///
/// # Errors
/// [`Error::Cluster`] when it cannot start (the address is taken, …).
pub async fn run_scheduler(options: SchedulerOptions) -> Result<()> {
    let mut config = ballista_scheduler::config::SchedulerConfig {
        bind_host: options.listen.ip().to_string(),
        bind_port: options.listen.port(),
        external_host: options
            .external_host
            .clone()
            .unwrap_or_else(|| options.listen.ip().to_string()),
        scheduling_policy: TaskSchedulingPolicy::PushStaged,
        executor_timeout_seconds: options.executor_timeout.as_secs().max(2),
        expire_dead_executor_interval_seconds: (options.executor_timeout.as_secs() / 3).max(1),
        ..Default::default()
    };
    config.no_executors_grace_period_seconds = config.executor_timeout_seconds;
    // The scheduler decodes the plans it is sent, which looks up the stores their scans read.
    let runtime = runtime_producer()(&SessionConfig::new())?;
    config.override_session_builder = Some(Arc::new(move |config: SessionConfig| {
        Ok(datafusion::execution::session_state::SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(Arc::clone(&runtime))
            .build())
    }));
    // Plans name every file with its statistics: a month of 5-second files is more than
    // gRPC's default 16 MiB.
    config.grpc_server_max_decoding_message_size = 256 * 1024 * 1024;
    config.grpc_server_max_encoding_message_size = 256 * 1024 * 1024;
    let address = options.listen.to_string();
    let failed = |e: &dyn std::fmt::Display| Error::Cluster {
        address: address.clone(),
        reason: format!("the scheduler stopped: {e}"),
    };
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| failed(&e))?;
    ballista_scheduler::scheduler_process::start_server(cluster, options.listen, Arc::new(config))
        .await
        .map_err(|e| failed(&e))
}

/// `podwire cluster executor`'s settings.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `host:port`.
    pub scheduler: String,
    /// The address its Arrow Flight service (results, shuffles) binds to; its gRPC service
    /// (tasks) takes the next port.
    pub listen: SocketAddr,
    /// The host name the scheduler, other executors and clients reach it by.
    pub external_host: Option<String>,
    /// Tasks it runs at once.
    pub concurrent_tasks: usize,
    /// Where shuffle files go.
    pub work_dir: Option<std::path::PathBuf>,
    /// How often it tells the scheduler it is alive.
    pub heartbeat: Duration,
    /// Shuffle files untouched this long are removed, in case the scheduler never asks (it asks
    /// 5 minutes after a job ends, unless it restarted in between).
    pub shuffle_ttl: Duration,
}

/// Runs an executor until it is stopped (SIGTERM, Ctrl-C) or the scheduler stops it.
///
/// # Errors
/// [`Error::Cluster`] when it cannot register with the scheduler or serve.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    let (host, port) = scheduler_address(&options.scheduler)?;
    let scheduler = format!("{host}:{port}");
    let config = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: options.listen.ip().to_string(),
        external_host: options.external_host.clone(),
        port: options.listen.port(),
        grpc_port: options.listen.port().checked_add(1).ok_or_else(|| Error::Cluster {
            address: options.listen.to_string(),
            reason: "the port after the Flight port is the task port; pick a lower port".into(),
        })?,
        scheduler_host: host,
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 30,
        vcores: options.concurrent_tasks.max(1),
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: options.work_dir.as_ref().map(|p| p.display().to_string()),
        executor_heartbeat_interval_seconds: options.heartbeat.as_secs().max(1),
        job_data_ttl_seconds: options.shuffle_ttl.as_secs().max(1),
        job_data_clean_up_interval_seconds: (options.shuffle_ttl.as_secs() / 4).clamp(1, 600),
        override_runtime_producer: Some(runtime_producer()),
        override_function_registry: Some(Arc::new(functions())),
        ..Default::default()
    };
    ballista_executor::executor_process::start_executor_process(Arc::new(config)).await.map_err(
        |e| Error::Cluster { address: scheduler, reason: format!("the executor stopped: {e}") },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_every_spelling_name_the_same_scheduler() {
        for given in ["sched:7000", "df://sched:7000", "http://sched:7000/", " sched:7000 "] {
            let c = Cluster::new(given, Duration::from_secs(1)).unwrap();
            assert_eq!(c.address(), "sched:7000", "{given}");
            assert_eq!(c.url, "http://sched:7000");
        }
        assert_eq!(Cluster::new("sched", Duration::ZERO).unwrap().address(), "sched:50050");
        assert!(Cluster::new("", Duration::ZERO).is_err());
        assert!(Cluster::new("sched:notaport", Duration::ZERO).is_err());
    }

    #[test]
    fn a_gathering_root_stays_in_the_query_process_and_its_input_is_the_job() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr, expressions::col};
        use datafusion::physical_plan::empty::EmptyExec;
        let schema = Arc::new(Schema::new(vec![Field::new("ts", DataType::Int64, false)]));
        let scan: Arc<dyn ExecutionPlan> =
            Arc::new(EmptyExec::new(Arc::clone(&schema)).with_partitions(3));
        let order =
            LexOrdering::new([PhysicalSortExpr::new_default(col("ts", &schema).unwrap())]).unwrap();
        let merge: Arc<dyn ExecutionPlan> =
            Arc::new(SortPreservingMergeExec::new(order, Arc::clone(&scan)).with_fetch(Some(7)));
        let (job, gather) = split_gather(Arc::clone(&merge));
        assert!(Arc::ptr_eq(&job, &scan));
        let gather = gather.expect("the merge is gathered here");
        assert_eq!(gather.fetch(), Some(7), "the limit stays with the merge");
        let coalesce: Arc<dyn ExecutionPlan> =
            Arc::new(CoalescePartitionsExec::new(Arc::clone(&scan)));
        assert!(Arc::ptr_eq(&split_gather(coalesce).0, &scan));
        // Anything else is the job whole.
        let (job, gather) = split_gather(Arc::clone(&scan));
        assert!(Arc::ptr_eq(&job, &scan) && gather.is_none());
    }

    #[test]
    fn empty_union_branches_and_single_partition_sorts_cut_no_stage() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr, expressions::col};
        use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
        let schema = Arc::new(Schema::new(vec![Field::new("ts", DataType::Int64, false)]));
        let order =
            LexOrdering::new([PhysicalSortExpr::new_default(col("ts", &schema).unwrap())]).unwrap();
        let sorted = |input: Arc<dyn ExecutionPlan>| -> Arc<dyn ExecutionPlan> {
            Arc::new(SortExec::new(order.clone(), input))
        };
        let stages = |plan: Arc<dyn ExecutionPlan>| {
            let mut planner = ballista_scheduler::planner::DefaultDistributedPlanner::new();
            ballista_scheduler::planner::DistributedPlanner::plan_query_stages(
                &mut planner,
                &ballista_core::JobId::new("test"),
                plan,
                &ConfigOptions::default(),
            )
            .unwrap()
            .len()
        };
        // Files in three partitions beside a table with none (sorted, as for a merge).
        let files: Arc<dyn ExecutionPlan> =
            Arc::new(PlaceholderRowExec::new(Arc::clone(&schema)).with_partitions(3));
        let files = Arc::new(
            FilterExec::try_new(datafusion::physical_expr::expressions::lit(true), files).unwrap(),
        ) as Arc<dyn ExecutionPlan>;
        let nothing = sorted(Arc::new(EmptyExec::new(Arc::clone(&schema))));
        let union = UnionExec::try_new(vec![Arc::clone(&files), nothing]).unwrap();
        assert_eq!(stages(Arc::clone(&union)), 2, "Ballista cuts the sorted empty branch apart");
        let job = without_needless_stages(union).unwrap();
        assert!(Arc::ptr_eq(&job, &files), "the empty branch is dropped");
        assert_eq!(stages(job), 1);
        // A branch with rows in one partition keeps its rows; its sort preserves partitioning.
        let one: Arc<dyn ExecutionPlan> = Arc::new(
            FilterExec::try_new(
                datafusion::physical_expr::expressions::lit(true),
                Arc::new(PlaceholderRowExec::new(Arc::clone(&schema))),
            )
            .unwrap(),
        );
        let union = UnionExec::try_new(vec![Arc::clone(&files), sorted(one)]).unwrap();
        assert_eq!(stages(Arc::clone(&union)), 2);
        let job = without_needless_stages(union).unwrap();
        assert_eq!(job.children().len(), 2, "{}", displayable(job.as_ref()).indent(true));
        assert_eq!(job.output_partitioning().partition_count(), 4);
        assert_eq!(stages(job), 1);
        // A sort over several partitions is left alone.
        let many = sorted(Arc::clone(&files));
        let job = without_needless_stages(Arc::clone(&many)).unwrap();
        assert!(Arc::ptr_eq(&job, &many));
    }

    #[test]
    fn executors_find_buckets_they_were_not_told_about_and_refuse_other_schemes() {
        let stores = Stores::new();
        assert!(stores.get_store(&url::Url::parse("file:///").unwrap()).is_ok());
        let other = stores.get_store(&url::Url::parse("gs://bucket").unwrap()).unwrap_err();
        assert!(other.to_string().contains("file:// and s3://"), "{other}");
    }
}
