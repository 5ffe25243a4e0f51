//! `podwire map`: the connectivity map of a window ([`podwire_query::map`]) as the API's JSON,
//! Graphviz dot (namespaces as clusters) or a Mermaid flowchart.
use crate::cli::{MapArgs, MapFormat};
use anyhow::Context as _;
use podwire_query::map::{self, Edge, Level, Map, MapRequest, Node};
use podwire_query::{QueryRequest, time};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

pub(crate) fn run(args: &MapArgs) -> anyhow::Result<()> {
    let now_ms = time::now_ms();
    let (from_ms, to_ms) = args.window.range(now_ms)?;
    let level = Level::from_name(&args.level).with_context(|| {
        format!("unknown --level `{}`; use namespace, workload or pod", args.level)
    })?;
    if args.max_nodes == 0 {
        anyhow::bail!("--max-nodes must be at least 1");
    }
    let (store, runtime) = crate::query::open_store(&args.store, true)?;
    let request = MapRequest {
        query: QueryRequest {
            kfl: &args.query,
            from_ms,
            to_ms,
            limit: None,
            now_ms,
            dialect: args.dialect.dialect(),
            extra: "",
        },
        level,
        expand: args.expand.clone(),
        max_nodes: args.max_nodes,
    };
    let map = runtime.block_on(map::map(&store, &request))?;
    let text = match args.format {
        MapFormat::Json => serde_json::to_string_pretty(&map)? + "\n",
        MapFormat::Dot => dot(&map),
        MapFormat::Mermaid => mermaid(&map),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write the map"),
    }
}

/// An edge's label: connections, failures, bytes.
fn edge_label(e: &Edge) -> String {
    let mut label = format!("{} conn", e.connections);
    let failed: u64 = e.failed.values().sum();
    if failed > 0 {
        let parts: Vec<String> = e.failed.iter().map(|(o, n)| format!("{n} {o}")).collect();
        let _ = write!(label, ", {}", parts.join(", "));
    }
    let _ = write!(label, ", {}", bytes(e.bytes_sent + e.bytes_received));
    label
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// A dot or Mermaid string literal's inside.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot_shape(n: &Node) -> &'static str {
    match n.kind {
        "external" => "shape=box, style=filled, fillcolor=\"#fde0dc\", color=\"#c62828\"",
        "node" => "shape=component",
        "unknown" => "shape=box, style=dashed",
        "service" => "shape=hexagon",
        "other" => "shape=folder",
        _ => "shape=ellipse",
    }
}

fn dot(map: &Map) -> String {
    let mut out =
        String::from("digraph podwire {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    let _ = writeln!(
        out,
        "  // {} nodes, {} edges; level {}",
        map.nodes.len(),
        map.edges.len(),
        map.level.name()
    );
    let mut boxes: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
    for n in map.nodes.iter().filter(|n| !n.is_box) {
        boxes.entry(n.parent.as_deref().unwrap_or("")).or_default().push(n);
    }
    let mut cluster = 0;
    for (parent, nodes) in &boxes {
        let indent = if parent.is_empty() { "  " } else { "    " };
        if !parent.is_empty() {
            cluster += 1;
            let label = parent.trim_start_matches("ns:");
            let _ =
                writeln!(out, "  subgraph cluster_{cluster} {{\n    label=\"{}\";", escape(label));
        }
        for n in nodes {
            let _ = writeln!(
                out,
                "{indent}\"{}\" [label=\"{}\", {}];",
                escape(&n.id),
                escape(&n.label),
                dot_shape(n)
            );
        }
        if !parent.is_empty() {
            out.push_str("  }\n");
        }
    }
    for e in &map.edges {
        let style = if e.failed.is_empty() { "" } else { ", color=\"#c62828\", style=dashed" };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\"{style}];",
            escape(&e.source),
            escape(&e.target),
            escape(&edge_label(e))
        );
    }
    out.push_str("}\n");
    out
}

fn mermaid(map: &Map) -> String {
    // Mermaid ids must be plain: number the nodes.
    let ids: BTreeMap<&str, String> =
        map.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), format!("n{i}"))).collect();
    let text = |s: &str| s.replace('"', "#quot;");
    let shape = |n: &Node| match n.kind {
        "external" | "unknown" => format!("[\"{}\"]", text(&n.label)),
        "node" => format!("[/\"{}\"/]", text(&n.label)),
        "service" => format!("{{{{\"{}\"}}}}", text(&n.label)),
        _ => format!("([\"{}\"])", text(&n.label)),
    };
    let mut out = String::from("flowchart LR\n");
    let mut boxes: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
    for n in map.nodes.iter().filter(|n| !n.is_box) {
        boxes.entry(n.parent.as_deref().unwrap_or("")).or_default().push(n);
    }
    for (parent, nodes) in &boxes {
        if !parent.is_empty() {
            let id = ids.get(parent).cloned().unwrap_or_else(|| format!("box_{}", ids.len()));
            let _ =
                writeln!(out, "  subgraph {id}[\"{}\"]", text(parent.trim_start_matches("ns:")));
        }
        for n in nodes {
            let _ = writeln!(out, "    {}{}", ids[n.id.as_str()], shape(n));
        }
        if !parent.is_empty() {
            out.push_str("  end\n");
        }
    }
    let mut failed_links = Vec::new();
    for (i, e) in map.edges.iter().enumerate() {
        let (Some(s), Some(t)) = (ids.get(e.source.as_str()), ids.get(e.target.as_str())) else {
            continue;
        };
        let _ = writeln!(out, "  {s} -->|\"{}\"| {t}", text(&edge_label(e)));
        if !e.failed.is_empty() {
            failed_links.push(i.to_string());
        }
    }
    out.push_str("  classDef external fill:#fde0dc,stroke:#c62828\n");
    let external: Vec<&str> = map
        .nodes
        .iter()
        .filter(|n| n.kind == "external")
        .map(|n| ids[n.id.as_str()].as_str())
        .collect();
    if !external.is_empty() {
        let _ = writeln!(out, "  class {} external", external.join(","));
    }
    if !failed_links.is_empty() {
        let _ = writeln!(
            out,
            "  linkStyle {} stroke:#c62828,stroke-dasharray:4",
            failed_links.join(",")
        );
    }
    out
}
