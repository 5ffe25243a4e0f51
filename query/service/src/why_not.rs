//! `why-not`: when a filter finds nothing, or less than expected, the store's own records say
//! why: what matches elsewhere in time, which nodes' agents reported nothing in the window, and
//! what each agent left out (its capture filter and protocol switches), skipped (by reason) or
//! lost (ring buffer, kernel flow table, tracker table) in the window, from `capture_stats`.
//!
//! | reason | when |
//! |---|---|
//! | `matches` | the filter matches rows in the window (how many) |
//! | `outside_window` | it matches nothing in the window, but rows at other times (first, last) |
//! | `no_capture` | no agent reported anything in the window |
//! | `agent_silent` | a node's agent reported in the 7 days before the window, not in it |
//! | `filtered` | a node's agent left packets out by its capture filter or protocol switches |
//! | `skipped` | a node's agent skipped packets it could not read (by reason) |
//! | `lost` | a node's agent lost packets or details (ring buffer, flow tables) |
//!
//! Not yet: whether a named pod existed then or had another address, typo-close names, and
//! fields that are empty for such rows (issue 24).
use crate::columns::{column, ints, min_opt, ms_column, when};
use crate::error::Result;
use crate::map::{self, fill_template, table_filter};
use crate::prune;
use crate::session::{QueryRequest, Store};
use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use podwire_schemas::Table;
use podwire_schemas::capture_stats::{SKIP_REASONS, col as scol};
use podwire_schemas::connections::col;
use serde::Serialize;
use sqlparser::ast as sql;
use std::collections::{BTreeMap, HashMap};

/// How far before the window an agent's last report makes its silence news.
pub const LOOKBACK_MS: i64 = 7 * 86_400_000;

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct WhyNot {
    /// The window (epoch ms).
    pub from_ms: Option<i64>,
    /// End of the window.
    pub to_ms: Option<i64>,
    /// Connections (final rows) the filter matches in the window.
    pub connections: u64,
    /// DNS transactions it matches in the window.
    pub dns_lookups: u64,
    /// The reasons found, in the order of the module table.
    pub reasons: Vec<Reason>,
    /// The statements run.
    pub sql: Vec<String>,
}

/// One reason.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    /// A name of the module table.
    pub reason: &'static str,
    /// The node it is about, if any.
    pub node: Option<String>,
    /// One sentence.
    pub explanation: String,
    /// Packets (or rows) it is about.
    pub count: u64,
    /// Counts by kind.
    pub detail: BTreeMap<String, u64>,
}

/// Says why a filter finds nothing or little in a window.
///
/// # Errors
/// [`crate::Error::Kfl`] for a bad filter; what DataFusion says.
pub async fn why_not(store: &Store, query: &QueryRequest<'_>) -> Result<WhyNot> {
    let query = map::default_window(store, *query).await?;
    let mut out = WhyNot {
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        connections: 0,
        dns_lookups: 0,
        reasons: Vec::new(),
        sql: Vec::new(),
    };
    let (conns, _, _) = matches(store, &query, Table::Connections, &mut out.sql).await?;
    let (dns, _, _) = matches(store, &query, Table::Dns, &mut out.sql).await?;
    out.connections = conns;
    out.dns_lookups = dns;
    if conns + dns > 0 {
        out.reasons.push(Reason {
            reason: "matches",
            node: None,
            explanation: format!(
                "The filter matches {conns} connections and {dns} DNS lookups in the window; if that is fewer than expected, the capture's own records follow."
            ),
            count: conns + dns,
            detail: BTreeMap::from([("connections".into(), conns), ("dns_lookups".into(), dns)]),
        });
    } else {
        let everywhere = QueryRequest { from_ms: None, to_ms: None, ..query };
        let (c, fc, lc) = matches(store, &everywhere, Table::Connections, &mut out.sql).await?;
        let (d, fd, ld) = matches(store, &everywhere, Table::Dns, &mut out.sql).await?;
        if c + d > 0 {
            let first = min_opt(fc, fd);
            let last = lc.max(ld);
            out.reasons.push(Reason {
                reason: "outside_window",
                node: None,
                explanation: format!(
                    "Nothing matches in the window, but {c} connections and {d} DNS lookups match between {} and {}: widen or move the window.",
                    when(first),
                    when(last)
                ),
                count: c + d,
                detail: BTreeMap::from([("connections".into(), c), ("dns_lookups".into(), d)]),
            });
        }
    }
    capture_reasons(store, &query, &mut out).await?;
    Ok(out)
}

/// Rows of `table` the filter matches (final rows of connections), and their first and last
/// time; zero when the filter does not apply to the table.
async fn matches(
    store: &Store,
    query: &QueryRequest<'_>,
    table: Table,
    sqls: &mut Vec<String>,
) -> Result<(u64, Option<i64>, Option<i64>)> {
    let Some(filter) = table_filter(store, query, table)? else { return Ok((0, None, None)) };
    let template = match table {
        Table::Connections => format!(
            "SELECT count(*) AS n, min({ts}) AS first, max({ts}) AS last FROM connections WHERE {fin} AND __filter__",
            ts = col::START_TS,
            fin = col::IS_FINAL
        ),
        _ => format!(
            "SELECT count(*) AS n, min({ts}) AS first, max({ts}) AS last FROM dns WHERE __filter__",
            ts = podwire_schemas::dns::col::TS
        ),
    };
    let statement = fill_template(&template, &HashMap::from([("__filter__", filter)]))?;
    sqls.push(format!("{statement:#}"));
    let batches = store.plan(statement).await?.collect().await?;
    let mut n = 0;
    let (mut first, mut last) = (None, None);
    for b in &batches {
        n += u64::try_from(ints(b, "n")?.first().copied().flatten().unwrap_or(0)).unwrap_or(0);
        first = min_opt(first, ms_column(b, "first")?.first().copied().flatten());
        last = last.max(ms_column(b, "last")?.first().copied().flatten());
    }
    Ok((n, first, last))
}

/// `capture_stats` rows of `[from, to)`: the condition on `ts` (numbers only, so written into
/// the statement), and the partition predicate that keeps other hours' folders unread.
fn stats_window(from_ms: Option<i64>, to_ms: Option<i64>) -> (String, sql::Expr) {
    let mut parts = vec!["true".to_owned()];
    if let Some(f) = from_ms {
        parts.push(format!("{} >= to_timestamp_millis({f})", scol::TS));
    }
    if let Some(t) = to_ms {
        parts.push(format!("{} < to_timestamp_millis({t})", scol::TS));
    }
    let partitions = prune::partition_predicate(from_ms, to_ms)
        .unwrap_or_else(|| sql::Expr::value(sql::Value::Boolean(true)));
    (parts.join(" AND "), partitions)
}

/// The per-node reasons from `capture_stats`.
async fn capture_reasons(store: &Store, query: &QueryRequest<'_>, out: &mut WhyNot) -> Result<()> {
    let kernel = [
        (scol::EVENTS_LOST, "packets counted without details (ring buffer full)"),
        (scol::PACKETS_LOST, "packets not counted (kernel flow table or ring buffer full)"),
        (scol::KERNEL_FLOWS_EVICTED, "kernel flows evicted before they were read"),
        (scol::CONNECTIONS_EVICTED, "connections finished early (tracker table full)"),
    ];
    let mut sums = vec![
        format!("sum({}) AS packets", scol::PACKETS),
        format!("sum({}) AS filtered", scol::PACKETS_FILTERED),
        format!("max({}) AS last_report", scol::END_TS),
    ];
    for r in SKIP_REASONS {
        sums.push(format!("sum({p}{r}) AS \"{p}{r}\"", p = scol::SKIPPED_PREFIX));
    }
    for (c, _) in kernel {
        sums.push(format!("sum({c}) AS \"{c}\""));
    }
    let (window, partitions) = stats_window(query.from_ms, query.to_ms);
    let template = format!(
        "SELECT {node} AS node, {sums} FROM capture_stats WHERE __partitions__ AND {window} \
         GROUP BY {node} ORDER BY {node}",
        node = scol::NODE,
        sums = sums.join(", ")
    );
    let statement = fill_template(&template, &HashMap::from([("__partitions__", partitions)]))?;
    out.sql.push(format!("{statement:#}"));
    let batches = store.plan(statement).await?.collect().await?;
    let mut reporting = Vec::new();
    for b in &batches {
        let nodes = cast(column(b, "node")?, &DataType::Utf8)?;
        let nodes = nodes.as_string::<i32>();
        let filtered = ints(b, "filtered")?;
        let mut skipped: Vec<(&str, Vec<Option<i64>>)> = Vec::new();
        for r in SKIP_REASONS {
            skipped.push((r, ints(b, &format!("{}{r}", scol::SKIPPED_PREFIX))?));
        }
        let mut lost: Vec<(&str, &str, Vec<Option<i64>>)> = Vec::new();
        for (c, what) in kernel {
            lost.push((c, what, ints(b, c)?));
        }
        for i in 0..b.num_rows() {
            let node = nodes.value(i).to_owned();
            reporting.push(node.clone());
            let u = |v: Option<i64>| v.map_or(0, |n| u64::try_from(n).unwrap_or(0));
            let f = u(filtered[i]);
            if f > 0 {
                out.reasons.push(Reason {
                    reason: "filtered",
                    node: Some(node.clone()),
                    explanation: format!(
                        "The agent on {node} left out {f} packets in the window by its capture filter (pod targeting, ports, networks) or protocol switches: traffic outside them is not recorded."
                    ),
                    count: f,
                    detail: BTreeMap::from([("packets_filtered".into(), f)]),
                });
            }
            // Not IP (ARP, LLDP) explains no missing connection.
            let detail: BTreeMap<String, u64> = skipped
                .iter()
                .filter(|(r, v)| *r != "not_ip" && u(v[i]) > 0)
                .map(|(r, v)| ((*r).to_owned(), u(v[i])))
                .collect();
            let total: u64 = detail.values().sum();
            if total > 0 {
                let parts: Vec<String> = detail.iter().map(|(r, n)| format!("{n} {r}")).collect();
                out.reasons.push(Reason {
                    reason: "skipped",
                    node: Some(node.clone()),
                    explanation: format!(
                        "The agent on {node} skipped {total} packets it could not make records of ({}).",
                        parts.join(", ")
                    ),
                    count: total,
                    detail,
                });
            }
            let detail: BTreeMap<String, u64> = lost
                .iter()
                .filter(|(_, _, v)| u(v[i]) > 0)
                .map(|(c, _, v)| ((*c).to_owned(), u(v[i])))
                .collect();
            let total: u64 = detail.values().sum();
            if total > 0 {
                let parts: Vec<String> = lost
                    .iter()
                    .filter(|(_, _, v)| u(v[i]) > 0)
                    .map(|(_, what, v)| format!("{} {what}", u(v[i])))
                    .collect();
                out.reasons.push(Reason {
                    reason: "lost",
                    node: Some(node.clone()),
                    explanation: format!(
                        "The agent on {node} could not keep up in the window: {} (raise --kernel-flows, --ring-bytes or --max-connections).",
                        parts.join("; ")
                    ),
                    count: total,
                    detail,
                });
            }
        }
    }
    // Agents that reported before the window and not in it.
    if let Some(from) = query.from_ms {
        let (window, partitions) = stats_window(Some(from - LOOKBACK_MS), Some(from));
        let template = format!(
            "SELECT {node} AS node, max({end}) AS last_report FROM capture_stats \
             WHERE __partitions__ AND {window} GROUP BY {node} ORDER BY {node}",
            node = scol::NODE,
            end = scol::END_TS
        );
        let statement = fill_template(&template, &HashMap::from([("__partitions__", partitions)]))?;
        out.sql.push(format!("{statement:#}"));
        let batches = store.plan(statement).await?.collect().await?;
        for b in &batches {
            let nodes = cast(column(b, "node")?, &DataType::Utf8)?;
            let nodes = nodes.as_string::<i32>();
            let last = ms_column(b, "last_report")?;
            for (i, last) in last.into_iter().enumerate() {
                let node = nodes.value(i);
                if reporting.iter().any(|n| n == node) {
                    continue;
                }
                out.reasons.push(Reason {
                    reason: "agent_silent",
                    node: Some(node.to_owned()),
                    explanation: format!(
                        "The agent on {node} reported until {} and nothing in the window: it stopped, lost its Kafka connection, or the node is gone; traffic of the pods there is not recorded.",
                        when(last)
                    ),
                    count: 0,
                    detail: BTreeMap::new(),
                });
            }
        }
    }
    if reporting.is_empty() {
        out.reasons.push(Reason {
            reason: "no_capture",
            node: None,
            explanation: "No capture agent reported anything in the window (no capture_stats rows): nothing was being recorded then.".into(),
            count: 0,
            detail: BTreeMap::new(),
        });
    }
    let order = |r: &Reason| match r.reason {
        "matches" => 0,
        "outside_window" => 1,
        "no_capture" => 2,
        "agent_silent" => 3,
        "filtered" => 4,
        "skipped" => 5,
        _ => 6,
    };
    out.reasons.sort_by_key(|r| (order(r), r.node.clone()));
    Ok(())
}

impl std::fmt::Display for WhyNot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} connections and {} DNS lookups match from {} to {}.",
            self.connections,
            self.dns_lookups,
            when(self.from_ms),
            when(self.to_ms)
        )?;
        for r in &self.reasons {
            writeln!(f, "[{}] {}", r.reason, r.explanation)?;
        }
        Ok(())
    }
}
