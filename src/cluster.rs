//! `podwire cluster scheduler|executor` (feature `cluster`); `podwire_query::cluster` does the
//! work. `--cluster` of the commands that query is `crate::query::on_cluster`.
use crate::cli::{ClusterCommand, ExecutorArgs, SchedulerArgs};
use anyhow::Context as _;
use podwire_query::cluster;

pub(crate) fn run(command: &ClusterCommand) -> anyhow::Result<()> {
    let runtime = runtime()?;
    match command {
        ClusterCommand::Scheduler(args) => runtime.block_on(scheduler(args)),
        ClusterCommand::Executor(args) => runtime.block_on(executor(args)),
    }
}

async fn scheduler(args: &SchedulerArgs) -> anyhow::Result<()> {
    tracing::info!(listen = %args.listen, "Starting the cluster's scheduler.");
    let options = cluster::SchedulerOptions {
        listen: args.listen,
        external_host: args.external_host.clone(),
        executor_timeout: args.executor_timeout,
    };
    tokio::select! {
        result = cluster::run_scheduler(options) => Ok(result?),
        () = crate::serve::shutdown_signal() => {
            tracing::info!("Scheduler stopped.");
            Ok(())
        }
    }
}

async fn executor(args: &ExecutorArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let options = cluster::ExecutorOptions {
        scheduler: args.scheduler.clone(),
        listen: args.listen,
        external_host: args.external_host.clone(),
        // One task more than cores, as a query process runs one scan more than cores: while a
        // task waits for its reads, the cores still have one to run (1.32-1.64x in-process
        // instead of 1.50-1.91x with one per core, benchmarks/README.md).
        concurrent_tasks: args.concurrent_tasks.unwrap_or(cores + 1),
        work_dir: args.work_dir.clone(),
        heartbeat: args.heartbeat,
        shuffle_ttl: args.shuffle_ttl,
    };
    tracing::info!(
        scheduler = %args.scheduler,
        listen = %args.listen,
        tasks = options.concurrent_tasks,
        "Starting an executor."
    );
    // The executor stops by itself on SIGTERM and Ctrl-C.
    Ok(cluster::run_executor(options).await?)
}

/// The runtime of a scheduler or executor: Ballista's planners recurse over deep plans, so
/// its threads get the stack Ballista's own binaries give them.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .context("cannot start the runtime")
}
