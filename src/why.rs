//! `podwire why` and `podwire why-not`: the verdicts of a window ([`podwire_query::why`]) and
//! the reasons a filter finds little ([`podwire_query::why_not`]), as sentences or the API's JSON.
use crate::cli::{WhyArgs, WhyFormat};
use anyhow::Context as _;
use podwire_query::why::{self, WhyRequest};
use podwire_query::{QueryRequest, time};
use std::io::Write as _;

pub(crate) fn run(args: &WhyArgs) -> anyhow::Result<()> {
    let now_ms = time::now_ms();
    let (from_ms, to_ms) = args.window.range(now_ms)?;
    let (store, runtime) = crate::query::open_store(&args.store.store)?;
    let request = WhyRequest {
        query: QueryRequest { kfl: &args.query, from_ms, to_ms, limit: None, now_ms },
    };
    let why = runtime.block_on(why::why(&store, &request))?;
    let text = match args.format {
        WhyFormat::Json => serde_json::to_string_pretty(&why)? + "\n",
        WhyFormat::Text => why.to_string(),
    };
    print(&text)
}

pub(crate) fn run_why_not(args: &WhyArgs) -> anyhow::Result<()> {
    let now_ms = time::now_ms();
    let (from_ms, to_ms) = args.window.range(now_ms)?;
    let (store, runtime) = crate::query::open_store(&args.store.store)?;
    let request = QueryRequest { kfl: &args.query, from_ms, to_ms, limit: None, now_ms };
    let answer = runtime.block_on(podwire_query::why_not::why_not(&store, &request))?;
    let text = match args.format {
        WhyFormat::Json => serde_json::to_string_pretty(&answer)? + "\n",
        WhyFormat::Text => answer.to_string(),
    };
    print(&text)
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write the answer"),
    }
}
