//! `podwire query`, `podwire translate` and `podwire fields`: KFL over a store, the SQL a filter
//! becomes, and the catalog of fields. The query crate does the work; this module parses times,
//! picks the output and renders errors.
use crate::cli::{FieldsArgs, OutputFormat, QueryArgs, TranslateArgs};
use anyhow::Context as _;
use podwire_query::{Format, QueryRequest, Store, time};
use std::io::Write;

pub(crate) fn run_query(args: &QueryArgs) -> anyhow::Result<()> {
    let now_ms = time::now_ms();
    let (from_ms, to_ms) = args.window.range(now_ms)?;
    let format = args.format.into();
    if format == Format::Parquet && args.output.is_none() {
        anyhow::bail!("--format parquet needs --output FILE");
    }
    let (store, runtime) = open_store(&args.store, true)?;
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create `{}`", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let result = runtime.block_on(async {
        let df = if args.sql {
            store.sql(&args.query, args.limit).await?
        } else {
            let request = QueryRequest {
                kfl: &args.query,
                from_ms,
                to_ms,
                limit: args.limit,
                now_ms,
                dialect: args.dialect.dialect(),
                extra: "",
            };
            store.kfl(&request).await?
        };
        if args.explain {
            let mut out = out;
            out.write_all(store.explain(df).await?.as_bytes())?;
            out.flush()?;
            return Ok(0);
        }
        let stream = store.stream(df).await?;
        podwire_query::output::write_stream(stream, format, out).await
    });
    match result {
        Ok(rows) => {
            tracing::debug!(rows, "Query done.");
            Ok(())
        }
        // `podwire query … | head` closes the pipe early: not an error.
        Err(podwire_query::Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens `--store` (a folder or `s3://…`) with a runtime to query it on. `one_query`: the
/// command runs a single query, so it keeps no decoded footers unless `--footer-cache` says so.
pub(crate) fn open_store(
    args: &crate::cli::StoreArgs,
    one_query: bool,
) -> anyhow::Result<(Store, tokio::runtime::Runtime)> {
    let path = args.store.as_path();
    if !podwire_query::catalog::is_bucket(path) && !path.is_dir() {
        anyhow::bail!("no store at `{}` (write one with `podwire standalone`)", path.display());
    }
    let as_of = args
        .as_of
        .as_deref()
        .map(|t| podwire_query::delta::AsOf::parse(t, time::now_ms()))
        .transpose()?;
    let options = podwire_query::StoreOptions {
        pushdown: args.pushdown.pushdown.into(),
        filter_order: args.pushdown.filter_order.into(),
        // One query per process: a footer is decoded again rather than kept (benchmarks/README.md,
        // the query family's fifth run).
        footer_cache: args.pushdown.footer_cache.or(one_query.then_some(0)),
        as_of,
        ..podwire_query::StoreOptions::default()
    };
    let store = Store::open_with(path, options)?;
    #[cfg(feature = "cluster")]
    let store = on_cluster(store, &args.cluster)?;
    // Timers and sockets: an `s3://` store's client needs them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the query runtime")?;
    Ok((store, runtime))
}

pub(crate) fn run_translate(args: &TranslateArgs) -> anyhow::Result<()> {
    let now_ms = time::now_ms();
    let (from_ms, to_ms) = args.window.range(now_ms)?;
    let options = podwire_kfl::Options { now_ms, from_ms, to_ms, dialect: args.dialect.dialect() };
    let t = podwire_kfl::translate(&args.query, &options).map_err(podwire_query::Error::from)?;
    let tables: Vec<&str> = t.tables.iter().map(|t| t.name()).collect();
    let mut out = std::io::stdout().lock();
    if args.compact {
        writeln!(out, "{}", t.sql())?;
    } else {
        writeln!(
            out,
            "-- tables: {}",
            if tables.is_empty() { "none".into() } else { tables.join(", ") }
        )?;
        writeln!(out, "{};", t.pretty_sql())?;
    }
    Ok(())
}

pub(crate) fn run_fields(args: &FieldsArgs) -> anyhow::Result<()> {
    if args.dialect.kfl2 {
        return kfl2_fields(args.names);
    }
    let mut out = std::io::stdout().lock();
    let fields: Vec<_> = podwire_kfl::fields::catalog().collect();
    if args.names {
        for f in &fields {
            writeln!(out, "{}", f.name)?;
        }
        return Ok(());
    }
    let width = fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
    writeln!(out, "{:<width$}  {:<9}  {:<16}  meaning", "field", "type", "tables")?;
    for f in &fields {
        let tables: Vec<&str> = f.tables().iter().map(|t| t.name()).collect();
        writeln!(
            out,
            "{:<width$}  {:<9}  {:<16}  {}",
            f.name,
            f.ty.name(),
            tables.join(","),
            f.doc
        )?;
    }
    writeln!(
        out,
        "\naliases: {}; helpers: startsWith, endsWith, contains, datetime, now, seconds … years, limit",
        podwire_kfl::translate::ALIASES.join(", ")
    )?;
    Ok(())
}

/// `podwire fields --kfl2`: KFL2's variables, what each reads, and those podwire does not
/// record.
fn kfl2_fields(names: bool) -> anyhow::Result<()> {
    use podwire_kfl::kfl2::vars::{VARS, Var};
    let mut out = std::io::stdout().lock();
    if names {
        for v in VARS {
            writeln!(out, "{}", v.name())?;
        }
        return Ok(());
    }
    let width = VARS.iter().map(|v| v.name().len()).max().unwrap_or(0);
    writeln!(out, "{:<width$}  {:<12}  {:<16}  meaning", "variable", "type", "tables")?;
    for v in VARS {
        let tables = match v {
            Var::Field(f) => f.tables().iter().map(|t| t.name()).collect::<Vec<_>>().join(","),
            Var::Flag { .. } | Var::Aggregate { .. } => "connections,dns".into(),
            Var::NotRecorded { .. } => "-".into(),
        };
        let doc = match v {
            Var::NotRecorded { why, .. } => format!("not recorded: {why}"),
            _ => v.doc().to_string(),
        };
        writeln!(out, "{:<width$}  {:<12}  {:<16}  {doc}", v.name(), v.type_name(), tables)?;
    }
    writeln!(
        out,
        "\nA variable an entry lacks takes its default (\"\", 0, false, []). Functions: contains, startsWith,\n\
         endsWith, matches (RE2), size, has, in, exists, all, exists_one, timestamp, duration, now."
    )?;
    Ok(())
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Table => Format::Table,
            OutputFormat::Csv => Format::Csv,
            OutputFormat::Json => Format::Json,
            OutputFormat::Parquet => Format::Parquet,
        }
    }
}

impl From<crate::cli::FilterOrder> for podwire_query::order::FilterOrder {
    fn from(o: crate::cli::FilterOrder) -> Self {
        match o {
            crate::cli::FilterOrder::Sampled => Self::Sampled,
            crate::cli::FilterOrder::Written => Self::Written,
        }
    }
}

impl From<crate::cli::Pushdown> for podwire_query::pushdown::Pushdown {
    fn from(p: crate::cli::Pushdown) -> Self {
        match p {
            crate::cli::Pushdown::Auto => Self::Auto,
            crate::cli::Pushdown::On => Self::On,
            crate::cli::Pushdown::Off => Self::Off,
        }
    }
}

#[cfg(feature = "cluster")]
impl From<crate::cli::ShuffleCompression> for podwire_query::cluster::ShuffleCompression {
    fn from(c: crate::cli::ShuffleCompression) -> Self {
        match c {
            crate::cli::ShuffleCompression::Lz4 => Self::Lz4,
            crate::cli::ShuffleCompression::Zstd => Self::Zstd,
            crate::cli::ShuffleCompression::None => Self::None,
        }
    }
}

/// `store`, its queries run on the cluster `args` names (if any).
#[cfg(feature = "cluster")]
pub(crate) fn on_cluster(store: Store, args: &crate::cli::ClusterArgs) -> anyhow::Result<Store> {
    let Some(address) = &args.cluster else { return Ok(store) };
    let cluster = podwire_query::cluster::Cluster::new(address, args.cluster_timeout)?
        .with_shuffle_compression(args.cluster_shuffle_compression.into());
    tracing::info!(scheduler = cluster.address(), "Queries run on the cluster.");
    Ok(store.on_cluster(cluster))
}
