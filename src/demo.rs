//! `podwire demo`: the standalone pipeline on the sample scene bundled in the binary
//! (`capture/demo/`, made by `capture/demo/make-scene.sh`), then a listing of what it found.
use crate::cli::{DemoArgs, ProtocolSwitch, TrackerArgs};
use anyhow::Context as _;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use clap::ValueEnum;
use podwire_schemas::connections::col;

const SCENE_PCAP: &[u8] = include_bytes!("../capture/demo/scene.pcap");
const SCENE_INVENTORY: &[u8] = include_bytes!("../capture/demo/inventory.json");

pub(crate) fn run(args: &DemoArgs, quiet: bool) -> anyhow::Result<()> {
    let input = args.store.join("_demo-input");
    std::fs::create_dir_all(&input)
        .with_context(|| format!("cannot create `{}`", input.display()))?;
    let pcap = input.join("scene.pcap");
    let inventory = input.join("inventory.json");
    std::fs::write(&pcap, SCENE_PCAP)
        .with_context(|| format!("cannot write `{}`", pcap.display()))?;
    std::fs::write(&inventory, SCENE_INVENTORY)
        .with_context(|| format!("cannot write `{}`", inventory.display()))?;
    let tracker = TrackerArgs {
        node: "node-a".into(),
        packets: true,
        protocols: ProtocolSwitch::value_variants().to_vec(),
        active_timeout: std::time::Duration::from_secs(60),
        udp_timeout: std::time::Duration::from_secs(120),
        tcp_timeout: std::time::Duration::from_secs(900),
        tcp_close_linger: None,
        max_connections: 500_000,
    };
    let report = crate::standalone::run_files(
        &[pcap],
        Some(&inventory),
        &args.store,
        &tracker,
        true,
        quiet,
    )?;
    println!("{}", listing(&report.connections));
    println!(
        "The store is in `{}`. Query it with DuckDB, for example:\n  duckdb -c \"SELECT src_name, dst_name, dst_port, outcome FROM read_parquet('{}/connections/**/*.parquet', hive_partitioning=true)\"",
        args.store.display(),
        args.store.display()
    );
    println!(
        "Ask podwire why the failed ones failed:\n  podwire why --store {}",
        args.store.display()
    );
    if args.no_serve {
        return Ok(());
    }
    let store = podwire_query::Store::open(&args.store)?;
    let seeds = seed_questions(&report.connections);
    crate::serve::serve_until_signal(
        store,
        podwire_query::api::ApiConfig::default(),
        args.listen,
        std::time::Duration::from_secs(2),
        |addr| {
            println!("\nThe dashboard: http://{addr}/   (Ctrl-C to stop; --no-serve to skip)");
            for (question, filter) in &seeds {
                println!("  {question}\n    http://{addr}/?q={}&range=all", url_encode(filter));
            }
        },
    )
}

/// The seed's three questions as filters on this scene: who talks outside the cluster, the
/// traffic between two namespaces, and who talks to one external name.
fn seed_questions(batches: &[RecordBatch]) -> Vec<(&'static str, String)> {
    let mut pairs = std::collections::BTreeMap::<(String, String), u64>::new();
    let mut external = std::collections::BTreeMap::<String, u64>::new();
    for b in batches {
        let text = |c: &str| b.column_by_name(c).and_then(|a| a.as_string_opt::<i32>().cloned());
        let (Some(src_ns), Some(dst_ns), Some(dst_dns)) =
            (text("src_namespace"), text("dst_namespace"), text(col::DST_DNS_NAME))
        else {
            continue;
        };
        for row in 0..b.num_rows() {
            let (s, d) = (src_ns.value(row), dst_ns.value(row));
            if !s.is_empty() && !d.is_empty() && s != d {
                *pairs.entry((s.to_owned(), d.to_owned())).or_default() += 1;
            }
            if !s.is_empty() && d.is_empty() && !dst_dns.value(row).is_empty() {
                *external.entry(dst_dns.value(row).to_owned()).or_default() += 1;
            }
        }
    }
    let mut seeds = vec![("Which pods talk to the outside?", "dst.namespace == \"\"".to_owned())];
    if let Some(((s, d), _)) = pairs.iter().max_by_key(|(_, n)| **n) {
        seeds.push((
            "What goes between two namespaces?",
            format!("src.namespace == {s:?} and dst.namespace == {d:?}"),
        ));
    }
    if let Some((name, _)) = external.iter().max_by_key(|(_, n)| **n) {
        seeds.push(("Who talks to this external name?", format!("dst.name == {name:?}")));
    }
    seeds
}

/// Percent-encodes a query-string value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn endpoint(b: &RecordBatch, side: &str, row: usize) -> String {
    let s = |c: &str| {
        b.column_by_name(&format!("{side}_{c}"))
            .and_then(|a| a.as_string_opt::<i32>().map(|a| a.value(row).to_string()))
            .unwrap_or_default()
    };
    let (name, ns, ip) = (s("name"), s("namespace"), s("ip"));
    match (name.is_empty(), ns.is_empty()) {
        (true, _) => ip,
        (false, true) => format!("{name} ({ip})"),
        (false, false) => format!("{ns}/{name}"),
    }
}

/// A table of the final connection rows: who talked to whom, and how it went.
fn listing(batches: &[RecordBatch]) -> String {
    let mut out = format!(
        "{:<5} {:<44} {:<48} {:>6} {:<12} {:>7} {:>7} {:>8}\n",
        "proto", "from", "to", "port", "outcome", "pkts→", "pkts←", "rtt µs"
    );
    for b in batches {
        let final_ = b.column_by_name(col::IS_FINAL).map(|c| c.as_boolean().clone());
        let proto = b.column_by_name(col::PROTOCOL).map(|c| c.as_string::<i32>().clone());
        let outcome = b.column_by_name(col::OUTCOME).map(|c| c.as_string::<i32>().clone());
        let port = b.column_by_name(col::DST_PORT).map(|c| c.as_primitive::<Int32Type>().clone());
        let sp = b.column_by_name(col::SRC_PACKETS).map(|c| c.as_primitive::<Int64Type>().clone());
        let dp = b.column_by_name(col::DST_PACKETS).map(|c| c.as_primitive::<Int64Type>().clone());
        let rtt =
            b.column_by_name(col::HANDSHAKE_RTT_US).map(|c| c.as_primitive::<Int64Type>().clone());
        let (Some(final_), Some(proto), Some(outcome), Some(port), Some(sp), Some(dp), Some(rtt)) =
            (final_, proto, outcome, port, sp, dp, rtt)
        else {
            continue;
        };
        for row in 0..b.num_rows() {
            if !final_.value(row) {
                continue;
            }
            let rtt = if rtt.is_null(row) { String::new() } else { rtt.value(row).to_string() };
            out.push_str(&format!(
                "{:<5} {:<44} {:<48} {:>6} {:<12} {:>7} {:>7} {:>8}\n",
                proto.value(row),
                endpoint(b, "src", row),
                endpoint(b, "dst", row),
                port.value(row),
                outcome.value(row),
                sp.value(row),
                dp.value(row),
                rtt
            ));
        }
    }
    out
}
