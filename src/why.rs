//! `podwire why`, `why-not` and `insights`: the verdicts of a window ([`podwire_query::why`]),
//! the reasons a filter finds little ([`podwire_query::why_not`]) and what changed and what is
//! wrong ([`podwire_query::insights`]), as sentences or the API's JSON.
use crate::cli::{ReportArgs, WhyArgs, WhyFormat};
use anyhow::Context as _;
use podwire_query::{QueryRequest, Store, insights, time, why, why_not};
use std::io::Write as _;

pub(crate) fn run(args: &WhyArgs) -> anyhow::Result<()> {
    let (store, runtime, query) = open(&args.report, &args.query, args.dialect.dialect())?;
    let answer = runtime.block_on(why::why(&store, &why::WhyRequest { query }))?;
    emit(&args.report, serde_json::to_string_pretty(&answer), || answer.to_string())
}

pub(crate) fn run_why_not(args: &WhyArgs) -> anyhow::Result<()> {
    let (store, runtime, query) = open(&args.report, &args.query, args.dialect.dialect())?;
    let answer = runtime.block_on(why_not::why_not(&store, &query))?;
    emit(&args.report, serde_json::to_string_pretty(&answer), || answer.to_string())
}

pub(crate) fn run_insights(args: &ReportArgs) -> anyhow::Result<()> {
    let (store, runtime, query) = open(args, "", podwire_kfl::Dialect::Kfl1)?;
    let answer = runtime.block_on(insights::insights(&store, &query))?;
    emit(args, serde_json::to_string_pretty(&answer), || answer.to_string())
}

/// The store and the request of `kfl` over the window asked for.
fn open<'a>(
    args: &ReportArgs,
    kfl: &'a str,
    dialect: podwire_kfl::Dialect,
) -> anyhow::Result<(Store, tokio::runtime::Runtime, QueryRequest<'a>)> {
    let now_ms = time::now_ms();
    let (from_ms, to_ms) = args.window.range(now_ms)?;
    let (store, runtime) = crate::query::open_store(&args.store, false)?;
    Ok((
        store,
        runtime,
        QueryRequest { kfl, from_ms, to_ms, limit: None, now_ms, dialect, extra: "" },
    ))
}

/// Prints the answer as sentences or JSON.
fn emit(
    args: &ReportArgs,
    json: serde_json::Result<String>,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let text = match args.format {
        WhyFormat::Json => json? + "\n",
        WhyFormat::Text => text(),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write the answer"),
    }
}
