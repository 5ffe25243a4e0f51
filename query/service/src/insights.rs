//! `insights`: what changed and what is wrong in a window, ranked, without a filter to start
//! from. Each item is a sentence, a count, and the KFL of its rows.
//!
//! | kind | what | from |
//! |---|---|---|
//! | `failing` | the pairs with the most failed connections, and their verdict | [`crate::why`] |
//! | `dns_failing` | names that fail to resolve, and who asks | [`crate::why`] |
//! | `new_external` | destinations outside the cluster (a DNS name, or a public address) not seen in the window of the same length before | one grouped query |
//! | `unnamed_external` | public addresses talked to with no DNS name behind them (hard-coded IPs, or DNS podwire did not see) | the same query |
//! | `capture` | nodes whose agents were silent, skipped or lost packets in the window | [`crate::why_not`] |
//!
//! Sections come in that order, each with its [`TOP`] heaviest items.
use crate::columns::{column, ints, ms_column, strings};
use crate::error::Result;
use crate::map::{self, CONNECTIONS_ONLY, fill_template, is_private, node_match, table_filter};
use crate::session::{QueryRequest, Store};
use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use podwire_schemas::Table;
use podwire_schemas::connections::col;
use podwire_schemas::endpoint::Side;
use serde::Serialize;
use std::collections::HashMap;

/// Items per section.
pub const TOP: usize = 10;

/// The insights of a window.
#[derive(Debug, Clone, Serialize)]
pub struct Insights {
    /// The window (epoch ms).
    pub from_ms: Option<i64>,
    /// End of the window.
    pub to_ms: Option<i64>,
    /// Ranked items, section by section.
    pub items: Vec<Insight>,
    /// The statements run (those of `why` and `why-not` included).
    pub sql: Vec<String>,
}

/// One item.
#[derive(Debug, Clone, Serialize)]
pub struct Insight {
    /// `failing`, `dns_failing`, `new_external`, `unnamed_external`, `capture`.
    pub kind: &'static str,
    /// One sentence.
    pub explanation: String,
    /// What it counts: failed connections or lookups, connections, or packets.
    pub count: u64,
    /// The KFL of its rows (empty for `capture`).
    pub kfl: String,
}

/// Computes the insights of a window.
///
/// # Errors
/// What DataFusion says.
pub async fn insights(store: &Store, query: &QueryRequest<'_>) -> Result<Insights> {
    let query = map::default_window(store, QueryRequest { kfl: "", ..*query }).await?;
    let mut out =
        Insights { from_ms: query.from_ms, to_ms: query.to_ms, items: Vec::new(), sql: Vec::new() };
    let why = crate::why::why(store, &crate::why::WhyRequest { query }).await?;
    out.sql.extend(why.sql);
    let mut failing: Vec<&crate::why::Verdict> =
        why.verdicts.iter().filter(|v| v.failed > 0 && v.verdict != "dns").collect();
    failing.sort_by_key(|v| std::cmp::Reverse(v.failed));
    for v in failing.into_iter().take(TOP) {
        out.items.push(Insight {
            kind: "failing",
            explanation: format!("[{}] {}", v.verdict, v.explanation),
            count: v.failed,
            kfl: v.kfl.clone(),
        });
    }
    let mut dns: Vec<&crate::why::Verdict> =
        why.verdicts.iter().filter(|v| v.verdict == "dns").collect();
    dns.sort_by_key(|v| std::cmp::Reverse(v.failed));
    for v in dns.into_iter().take(TOP) {
        out.items.push(Insight {
            kind: "dns_failing",
            explanation: v.explanation.clone(),
            count: v.failed,
            kfl: v.kfl.clone(),
        });
    }
    externals(store, &query, &mut out).await?;
    let answer = crate::why_not::why_not(store, &query).await?;
    out.sql.extend(answer.sql);
    for r in answer.reasons {
        if matches!(r.reason, "agent_silent" | "skipped" | "lost" | "no_capture") {
            out.items.push(Insight {
                kind: "capture",
                explanation: r.explanation,
                count: r.count,
                kfl: String::new(),
            });
        }
    }
    Ok(out)
}

/// One destination outside the cluster.
struct External {
    key: String,
    named: bool,
    first_ms: Option<i64>,
    connections: u64,
    bytes: u64,
    sources: Vec<String>,
}

/// `new_external` and `unnamed_external`: one grouped scan over the window and the one before.
async fn externals(store: &Store, query: &QueryRequest<'_>, out: &mut Insights) -> Result<()> {
    let (Some(from), Some(to)) = (query.from_ms, query.to_ms) else { return Ok(()) };
    let both = QueryRequest { from_ms: Some(from - (to - from)), to_ms: Some(to), ..*query };
    let Some(filter) = table_filter(store, &both, Table::Connections)? else { return Ok(()) };
    let d = |s: &str| Side::Dst.column(s);
    let s = |c: &str| Side::Src.column(c);
    let template = format!(
        "SELECT dst_key, named, min({start}) AS first_seen, \
           sum(CASE WHEN {fin} AND {start} >= to_timestamp_millis({from}) THEN 1 ELSE 0 END) AS connections, \
           sum(CASE WHEN {start} >= to_timestamp_millis({from}) THEN {sb} + {db} ELSE 0 END) AS bytes, \
           array_agg(DISTINCT src_key) FILTER (WHERE {start} >= to_timestamp_millis({from})) AS sources \
         FROM (SELECT CASE WHEN {dns} <> '' THEN {dns} ELSE {dst_ip} END AS dst_key, {dns} <> '' AS named, \
                 CASE WHEN {swl} <> '' THEN {sns} || '/' || {swl} WHEN {spod} <> '' THEN {sns} || '/' || {spod} \
                      ELSE {src_ip} END AS src_key, \
                 {start}, {fin}, {sb}, {db} \
               FROM connections WHERE {dns_} = '' AND {dnode} = '' AND __filter__) AS ext \
         GROUP BY dst_key, named",
        start = col::START_TS,
        fin = col::IS_FINAL,
        sb = col::SRC_BYTES,
        db = col::DST_BYTES,
        dns = col::DST_DNS_NAME,
        dst_ip = col::DST_IP,
        src_ip = col::SRC_IP,
        swl = s("workload"),
        sns = s("namespace"),
        spod = s("pod"),
        dns_ = d("namespace"),
        dnode = d("node"),
    );
    let statement = fill_template(&template, &HashMap::from([("__filter__", filter)]))?;
    out.sql.push(format!("{statement:#}"));
    let batches = store.rows(statement).await?;
    let mut all = Vec::new();
    for b in &batches {
        let keys = strings(b, "dst_key")?;
        let named = column(b, "named")?.as_boolean().clone();
        let first = ms_column(b, "first_seen")?;
        let count = |v: Option<i64>| v.map_or(0, |n| u64::try_from(n).unwrap_or(0));
        let (conns, bytes) = (ints(b, "connections")?, ints(b, "bytes")?);
        let lists = column(b, "sources")?.as_list::<i32>();
        for (i, key) in keys.into_iter().enumerate() {
            let mut sources = Vec::new();
            if !lists.is_null(i) {
                let v = cast(&lists.value(i), &DataType::Utf8)?;
                sources.extend(v.as_string::<i32>().iter().flatten().map(str::to_owned));
            }
            sources.sort();
            all.push(External {
                key,
                named: named.value(i),
                first_ms: first[i],
                connections: count(conns[i]),
                bytes: count(bytes[i]),
                sources,
            });
        }
    }
    // Unnamed private addresses are not "external": they are most likely pods nobody named.
    all.retain(|e| e.named || !is_private(&e.key));
    let new = all.iter().filter(|e| e.first_ms.is_some_and(|f| f >= from));
    push_top(out, "new_external", new, |e, who| {
        format!(
            "New destination outside the cluster: {} ({} connections, {} bytes, from {who}), not seen in the window of the same length before.",
            e.key, e.connections, e.bytes
        )
    });
    let unnamed = all.iter().filter(|e| !e.named);
    push_top(out, "unnamed_external", unnamed, |e, who| {
        format!(
            "{} connections ({} bytes) from {who} went to {}, a public address with no DNS name behind it: a hard-coded IP, or a lookup podwire did not see.",
            e.connections, e.bytes, e.key
        )
    });
    Ok(())
}

/// The [`TOP`] destinations of `items` with connections in the window, most connections first,
/// as insights of `kind`; `explain` gets the destination and its first clients.
fn push_top<'a>(
    out: &mut Insights,
    kind: &'static str,
    items: impl Iterator<Item = &'a External>,
    explain: impl Fn(&External, &str) -> String,
) {
    let mut items: Vec<&External> = items.filter(|e| e.connections > 0).collect();
    items.sort_by(|a, b| b.connections.cmp(&a.connections).then(a.key.cmp(&b.key)));
    for e in items.into_iter().take(TOP) {
        let shown: Vec<&str> = e.sources.iter().take(3).map(String::as_str).collect();
        let more = e.sources.len().saturating_sub(3);
        let who = if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        };
        // The map's node for the destination, and its KFL.
        let kfl = node_match(&format!("ext:{}", e.key))
            .map_or_else(String::new, |m| format!("{CONNECTIONS_ONLY}{}", m.dst));
        out.items.push(Insight { kind, explanation: explain(e, &who), count: e.connections, kfl });
    }
}

impl std::fmt::Display for Insights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.items.is_empty() {
            return writeln!(f, "Nothing to report in the window.");
        }
        let mut kind = "";
        for i in &self.items {
            if i.kind != kind {
                kind = i.kind;
                writeln!(
                    f,
                    "\n{}:",
                    match kind {
                        "failing" => "Failing connections",
                        "dns_failing" => "Names that fail to resolve",
                        "new_external" => "New destinations outside the cluster",
                        "unnamed_external" => "Public addresses without a name",
                        _ => "Capture",
                    }
                )?;
            }
            writeln!(f, "  - {}", i.explanation)?;
            if !i.kfl.is_empty() {
                writeln!(f, "    rows: podwire query '{}'", i.kfl)?;
            }
        }
        Ok(())
    }
}
