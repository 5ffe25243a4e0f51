//! Queries on a cluster: Apache DataFusion Ballista runs the plans this crate makes (feature
//! `cluster`).
//!
//! The query process plans as it does alone: the KFL translation, the partition predicates, the
//! Delta snapshot's file list ([`crate::delta`]), the pushdown choice and the physical rules
//! ([`crate::compact`]) all happen here, against the store. The finished physical plan is then
//! submitted to the scheduler ([`Cluster::execute`]); Ballista's static planner cuts it into
//! stages at its repartitions (an aggregation's partial half runs on the executors, next to the
//! files), the executors run the tasks, and the result streams back over Arrow Flight. So the
//! executors need no Delta code and no store configuration: a plan names its files, and an
//! executor reads `file://` paths through memory mappings ([`crate::local`]) and `s3://BUCKET`
//! through a client made from its own `AWS_*` environment ([`runtime_producer`]). A folder store
//! must therefore be mounted at the same path on every executor.
//!
//! Submitting physical plans (not logical ones) keeps the scheduler out of the planning: its
//! adaptive planner would replace podwire's physical rules, and it would list the files itself.
//! What Ballista cannot carry is turned off while planning for it ([`Cluster::prepare`]):
//! dynamic filters (a TopK's filter cannot cross a stage boundary) and round-robin
//! repartitions.
use crate::error::{Error, Result};
use ballista_core::config::{
    BALLISTA_CLIENT_GRPC_CONNECT_TIMEOUT_SECONDS, BallistaConfig, TaskSchedulingPolicy,
};
use ballista_core::extension::SessionConfigExt as _;
use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::config::ConfigOptions;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::PhysicalPlanNode;
use object_store::ObjectStore;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// How long a connection to the scheduler may take before the query fails.
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
        })
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

    /// Runs `plan` on the cluster and streams its rows back. `config` is the session's (its
    /// settings travel with the job: the executors read Parquet as the query process would).
    ///
    /// # Errors
    /// [`Error::Cluster`] when the scheduler cannot be reached or the job fails or outlives
    /// the deadline; [`Error::Internal`] when the plan cannot be serialized.
    pub async fn execute(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &SessionConfig,
    ) -> Result<SendableRecordBatchStream> {
        let config = self.job_config(config);
        let ballista = config.ballista_config();
        let codec = BallistaPhysicalExtensionCodec::default();
        let job = ballista_core::execution_plans::execute_physical_plan::<PhysicalPlanNode>(
            self.url.clone(),
            &ballista,
            plan,
            &codec,
            self.session_id.clone(),
            config,
        );
        match tokio::time::timeout(self.deadline, job).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(self.error(&e.to_string())),
            Err(_) => Err(Error::Cluster {
                address: self.address.clone(),
                reason: format!(
                    "the query did not finish within {}s; is an executor registered \
                     (`podwire cluster executor --scheduler {}`)? Raise --cluster-timeout for \
                     longer queries",
                    self.deadline.as_secs(),
                    self.address
                ),
            }),
        }
    }

    /// The stages Ballista's planner cuts `plan` into, as text: what `--explain` shows.
    ///
    /// # Errors
    /// [`Error::Internal`] when the planner refuses the plan.
    pub fn stages(&self, plan: Arc<dyn ExecutionPlan>, config: &SessionConfig) -> Result<String> {
        let config = self.job_config(config);
        let mut planner = ballista_scheduler::planner::DefaultDistributedPlanner::new();
        let job = ballista_core::JobId::new("explain");
        let stages = ballista_scheduler::planner::DistributedPlanner::plan_query_stages(
            &mut planner,
            &job,
            plan,
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
        Ok(text)
    }

    /// The session settings a job carries: the session's, Ballista's client settings, and a
    /// connect timeout (an unreachable scheduler fails in seconds, naming its address).
    fn job_config(&self, config: &SessionConfig) -> SessionConfig {
        let mut config = config.clone();
        if config.options().extensions.get::<BallistaConfig>().is_none() {
            config = config.with_option_extension(BallistaConfig::default());
        }
        config.set_u64(BALLISTA_CLIENT_GRPC_CONNECT_TIMEOUT_SECONDS, CONNECT_TIMEOUT.as_secs())
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
    fn executors_find_buckets_they_were_not_told_about_and_refuse_other_schemes() {
        let stores = Stores::new();
        assert!(stores.get_store(&url::Url::parse("file:///").unwrap()).is_ok());
        let other = stores.get_store(&url::Url::parse("gs://bucket").unwrap()).unwrap_err();
        assert!(other.to_string().contains("file:// and s3://"), "{other}");
    }
}
