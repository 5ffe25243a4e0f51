//! `podwire`: pod-to-pod connection analysis for Kubernetes. One binary, one subcommand per job;
//! each subcommand lives in its own module and the library crates do the work.
mod cli;
mod demo;
mod standalone;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format, cli.quiet);
    standalone::QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let result = match cli.command {
        cli::Command::Standalone(args) => standalone::run(&args).map(|_| ()),
        cli::Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
