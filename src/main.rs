//! `podwire`: pod-to-pod connection analysis for Kubernetes. One binary, one subcommand per job;
//! each subcommand lives in its own module and the library crates do the work.
// The agent build (no `query` feature) leaves the query commands' arguments and helps unused.
#![cfg_attr(not(feature = "query"), allow(dead_code))]

mod agent;
mod capture;
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
#[cfg(feature = "query")]
mod demo;
mod expire;
mod ingest;
mod kafka;
mod live;
#[cfg(feature = "query")]
mod map;
mod parse;
#[cfg(feature = "query")]
mod query;
mod serve;
mod standalone;
mod store;
#[cfg(feature = "query")]
mod why;

use clap::Parser;

/// jemalloc: the Parquet reader and writer allocate large buffers per column chunk, which glibc
/// maps and unmaps every time (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if cli.check_args {
        // The parsed command, for the deployment tests; nothing runs.
        println!("{:#?}", cli.command);
        return std::process::ExitCode::SUCCESS;
    }
    cli::init_logging(cli.log_format, cli.quiet);
    // One TLS provider for every client of the process (kube, S3, Delta).
    podwire_ingest::kube_watch::install_tls_provider();
    let result = match cli.command {
        cli::Command::Standalone(args) => standalone::run(&args, cli.quiet).map(|_| ()),
        #[cfg(feature = "query")]
        cli::Command::Demo(args) => demo::run(&args, cli.quiet),
        #[cfg(feature = "query")]
        cli::Command::Query(args) => query::run_query(&args),
        #[cfg(feature = "query")]
        cli::Command::Map(args) => map::run(&args),
        #[cfg(feature = "query")]
        cli::Command::Why(args) => why::run(&args),
        #[cfg(feature = "query")]
        cli::Command::WhyNot(args) => why::run_why_not(&args),
        #[cfg(feature = "query")]
        cli::Command::Insights(args) => why::run_insights(&args),
        #[cfg(feature = "query")]
        cli::Command::Translate(args) => query::run_translate(&args),
        #[cfg(feature = "query")]
        cli::Command::Fields(args) => query::run_fields(&args),
        #[cfg(feature = "query")]
        cli::Command::Serve(args) => serve::run(&args),
        cli::Command::Capture(args) => capture::run(&args, cli.quiet),
        cli::Command::Ingest(args) => ingest::run(&args),
        cli::Command::Expire(args) => expire::run(&args, cli.quiet),
        cli::Command::Store(cmd) => store::run(&cmd, cli.quiet),
        #[cfg(feature = "cluster")]
        cli::Command::Cluster(cmd) => cluster::run(&cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A bad filter: the positioned diagnostic with its caret, as podwire-kfl renders it.
            #[cfg(feature = "query")]
            if let Some(podwire_query::Error::Kfl(kfl)) = e.downcast_ref() {
                eprint!("{}", kfl.render());
                return std::process::ExitCode::FAILURE;
            }
            // `podwire fields | head` closes the pipe early: not an error.
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return std::process::ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
