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
//! When the filter matches nothing in the window, each of its `field == "text"` tests
//! ([`podwire_kfl::terms`]) is also tried alone, and the names are looked for in the
//! [`LOOKBACK_MS`] before and after the window, at both ends of connections:
//!
//! | reason | when |
//! |---|---|
//! | `other_ip` | the test matches alone, and the pod it names had other addresses than the filter's |
//! | `other_side` | it matches nothing at its end, but rows at the other end (`src` for `dst`) |
//! | `name_elsewhere` | the name was seen at other times: when, at which addresses, and who held those addresses in the window |
//! | `field_empty` | a DNS name: the addresses it resolved to have connections in the window, named otherwise (no lookup seen before them); the `dst.ip` filter that finds them |
//! | `did_you_mean` | the name was never seen, but names a few edits away were |
//! | `unknown_name` | the name was never seen, nor anything close |
use crate::columns::{column, ints, min_opt, ms_column, when};
use crate::error::Result;
use crate::map::{self, fill_template, table_filter};
use crate::prune;
use crate::session::{QueryRequest, Store};
use crate::sightings::{Sighting, answers, sightings, values};
use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use podwire_kfl::Dialect;
use podwire_kfl::fields::{Field, Source};
use podwire_kfl::terms::{Term, quote, terms};
use podwire_schemas::Table;
use podwire_schemas::capture_stats::{SKIP_REASONS, col as scol};
use podwire_schemas::connections::col;
use podwire_schemas::endpoint::{self, Side};
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
    /// The `field == "text"` test of the filter it is about, if any.
    pub term: Option<String>,
    /// A KFL filter to try instead, if one is known.
    pub suggestion: Option<String>,
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
            term: None,
            suggestion: None,
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
                term: None,
                suggestion: None,
            });
        }
    }
    if conns + dns == 0 {
        name_reasons(store, &query, &mut out).await?;
    }
    capture_reasons(store, &query, &mut out).await?;
    Ok(out)
}

/// Most distinct names read for a "did you mean".
const CANDIDATES: usize = 100_000;

/// The endpoint column (`pod`, `name`, `ip`, `dns_name`, ...) and end a text field reads in
/// `connections`, if it is one.
fn endpoint_of(field: &Field) -> Option<(Side, &'static str)> {
    use podwire_schemas::connections::col as c;
    match field.source(Table::Connections)? {
        Source::Endpoint(side, suffix) => Some((side, suffix)),
        Source::Column(c::SRC_IP) => Some((Side::Src, col::IP_SUFFIX)),
        Source::Column(c::DST_IP) => Some((Side::Dst, col::IP_SUFFIX)),
        Source::Column(c::DST_DNS_NAME) => Some((Side::Dst, col::DNS_NAME_SUFFIX)),
        _ => None,
    }
}

/// The same field at the other end (`dst.pod` for `src.pod`), if there is one.
fn other_end(field: &Field) -> Option<&'static Field> {
    let name = match field.name.split_once('.')? {
        ("src", rest) => format!("dst.{rest}"),
        ("dst", rest) => format!("src.{rest}"),
        _ => return None,
    };
    podwire_kfl::fields::lookup(&name)
}

fn reason(reason: &'static str, term: &Term, explanation: String, count: u64) -> Reason {
    Reason {
        reason,
        node: None,
        explanation,
        count,
        detail: BTreeMap::new(),
        term: Some(term.kfl()),
        suggestion: None,
    }
}

/// Addresses of `seen`, each once, in first-seen order.
fn addresses(seen: &[Sighting]) -> Vec<String> {
    let mut ips: Vec<String> = Vec::new();
    for s in seen {
        if !ips.contains(&s.ip) {
            ips.push(s.ip.clone());
        }
    }
    ips
}

/// The reasons of each `field == "text"` test of a filter that matches nothing in the window.
async fn name_reasons(store: &Store, query: &QueryRequest<'_>, out: &mut WhyNot) -> Result<()> {
    // The terms and the filters suggested are KFL1.
    if query.dialect != Dialect::Kfl1 {
        return Ok(());
    }
    let Some(expr) = podwire_kfl::parse(query.kfl)? else { return Ok(()) };
    let all = terms(&expr);
    let around = QueryRequest {
        from_ms: query.from_ms.map(|f| f.saturating_sub(LOOKBACK_MS)),
        to_ms: query.to_ms.map(|t| t.saturating_add(LOOKBACK_MS)),
        ..*query
    };
    for term in &all {
        let Some((side, suffix)) = endpoint_of(term.field) else { continue };
        let kfl = term.kfl();
        let n = connections_matching(store, query, &kfl, &mut out.sql).await?;
        let names_pod = suffix == endpoint::POD || suffix == endpoint::NAME;
        if n > 0 {
            // It matches alone: does the filter ask for the pod at an address it did not have?
            let asked: Vec<&Term> = all
                .iter()
                .filter(|t| endpoint_of(t.field) == Some((side, col::IP_SUFFIX)))
                .collect();
            if !names_pod || asked.is_empty() {
                continue;
            }
            let seen =
                sightings(store, query, suffix, std::slice::from_ref(&term.value), &mut out.sql)
                    .await?;
            let had = addresses(&seen);
            for ip in asked {
                if had.contains(&ip.value) {
                    continue;
                }
                let mut r = reason(
                    "other_ip",
                    term,
                    format!(
                        "{} matches {n} connections in the window, but {} had {} then, not {}.",
                        term.kfl(),
                        term.value,
                        had.join(", "),
                        ip.value
                    ),
                    n,
                );
                r.suggestion = Some(
                    had.iter()
                        .map(|a| format!("{} == {}", ip.field.name, quote(a)))
                        .collect::<Vec<_>>()
                        .join(" or "),
                );
                r.detail.insert("connections".into(), n);
                out.reasons.push(r);
            }
            continue;
        }
        let mut at_other_end = false;
        if let Some(other) = other_end(term.field) {
            let swapped = Term { field: other, value: term.value.clone() };
            let kfl = swapped.kfl();
            let m = connections_matching(store, query, &kfl, &mut out.sql).await?;
            if m > 0 {
                at_other_end = true;
                let mut r = reason(
                    "other_side",
                    term,
                    format!(
                        "{} matches nothing in the window, but {kfl} matches {m} connections: `src` is the side that opened the connection, `dst` the side that answered.",
                        term.kfl()
                    ),
                    m,
                );
                r.suggestion = Some(kfl);
                r.detail.insert("connections".into(), m);
                out.reasons.push(r);
            }
        }
        // Seen at the other end in the window: it existed then, so not "elsewhere".
        if !at_other_end {
            elsewhere(store, query, &around, term, suffix, out).await?;
        }
        // A DNS name whose addresses were reached without a lookup seen before.
        if side == Side::Dst && (suffix == endpoint::NAME || suffix == col::DNS_NAME_SUFFIX) {
            let ips = answers(store, &around, &term.value, &mut out.sql).await?;
            if ips.is_empty() {
                continue;
            }
            let by_ip = ips
                .iter()
                .map(|(ip, _, _)| format!("dst.ip == {}", quote(ip)))
                .collect::<Vec<_>>()
                .join(" or ");
            let m = connections_matching(store, query, &by_ip, &mut out.sql).await?;
            if m == 0 {
                continue;
            }
            let list: Vec<String> = ips.iter().map(|(ip, _, _)| ip.clone()).collect();
            let mut r = reason(
                "field_empty",
                term,
                format!(
                    "{m} connections in the window went to {}, which {} resolved to (answers from {} to {}), but their {} is not that name: no lookup of it was seen before them (a cached answer, a lookup on another node, or one older than the capture). Filter by address instead: {by_ip}.",
                    list.join(", "),
                    term.value,
                    when(ips.iter().filter_map(|a| a.1).min()),
                    when(ips.iter().filter_map(|a| a.2).max()),
                    term.field.name
                ),
                m,
            );
            r.suggestion = Some(by_ip);
            r.detail.insert("connections".into(), m);
            r.detail.insert("addresses".into(), list.len() as u64);
            out.reasons.push(r);
        }
    }
    Ok(())
}

/// Rows of `table` the filter matches (final rows of connections), and their first and last
/// time; zero when the filter does not apply to the table.
/// How many final connection rows `kfl` matches in `query`'s window.
async fn connections_matching(
    store: &Store,
    query: &QueryRequest<'_>,
    kfl: &str,
    sqls: &mut Vec<String>,
) -> Result<u64> {
    let (n, _, _) = matches(
        store,
        &QueryRequest { kfl, dialect: Dialect::Kfl1, ..*query },
        Table::Connections,
        sqls,
    )
    .await?;
    Ok(n)
}

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
    let batches = store.rows(statement).await?;
    let mut n = 0;
    let (mut first, mut last) = (None, None);
    for b in &batches {
        n += u64::try_from(ints(b, "n")?.first().copied().flatten().unwrap_or(0)).unwrap_or(0);
        first = min_opt(first, ms_column(b, "first")?.first().copied().flatten());
        last = last.max(ms_column(b, "last")?.first().copied().flatten());
    }
    Ok((n, first, last))
}

/// `capture_stats` rows that overlap `[from, to)`: the condition (numbers only, so written into
/// the statement), and the partition predicate that keeps other hours' folders unread. A row
/// covers `[ts, end_ts]`: a capture file's can cover hours, so rows that started up to
/// [`LOOKBACK_MS`] before the window are read too.
fn stats_window(from_ms: Option<i64>, to_ms: Option<i64>) -> (String, sql::Expr) {
    let mut parts = vec!["true".to_owned()];
    if let Some(f) = from_ms {
        parts.push(format!("{} >= to_timestamp_millis({f})", scol::END_TS));
    }
    if let Some(t) = to_ms {
        parts.push(format!("{} < to_timestamp_millis({t})", scol::TS));
    }
    let partitions =
        prune::partition_predicate(from_ms.map(|f| f.saturating_sub(LOOKBACK_MS)), to_ms)
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
    let batches = store.rows(statement).await?;
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
                    term: None,
                    suggestion: None,
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
                    term: None,
                    suggestion: None,
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
                    term: None,
                    suggestion: None,
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
        let batches = store.rows(statement).await?;
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
                    term: None,
                    suggestion: None,
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
            term: None,
            suggestion: None,
        });
    }
    let order = |r: &Reason| match r.reason {
        "matches" => 0,
        "outside_window" => 1,
        "other_ip" | "other_side" | "name_elsewhere" | "field_empty" | "did_you_mean"
        | "unknown_name" => 2,
        "no_capture" => 3,
        "agent_silent" => 4,
        "filtered" => 5,
        "skipped" => 6,
        _ => 7,
    };
    // Stable: the name reasons keep the filter's order.
    out.reasons.sort_by_key(|r| (order(r), r.node.clone()));
    Ok(())
}

/// Where and when a name that matches nothing in the window was seen around it, or the names
/// close to it.
async fn elsewhere(
    store: &Store,
    query: &QueryRequest<'_>,
    around: &QueryRequest<'_>,
    term: &Term,
    suffix: &str,
    out: &mut WhyNot,
) -> Result<()> {
    let names_pod = suffix == endpoint::POD || suffix == endpoint::NAME;
    let seen =
        sightings(store, around, suffix, std::slice::from_ref(&term.value), &mut out.sql).await?;
    if !seen.is_empty() {
        let first = seen.iter().filter_map(|s| s.first_ms).min();
        let last = seen.iter().filter_map(|s| s.last_ms).max();
        let total: u64 = seen.iter().map(|s| s.connections).sum();
        let ips = addresses(&seen);
        let mut sentence = format!(
            "{} was seen in {total} connections from {} to {}",
            term.value,
            when(first),
            when(last)
        );
        if suffix != col::IP_SUFFIX {
            sentence.push_str(&format!(" at {}", ips.join(", ")));
        }
        let mut r = reason("name_elsewhere", term, String::new(), total);
        if names_pod || suffix == col::IP_SUFFIX {
            // Who had those addresses in the window.
            let holders = sightings(store, query, col::IP_SUFFIX, &ips, &mut out.sql).await?;
            let named: Vec<String> = holders
                .iter()
                .filter(|h| !h.pod.is_empty())
                .map(|h| format!("{} was {}", h.ip, h.who()))
                .collect();
            if !named.is_empty() {
                sentence.push_str(&format!("; in the window, {}", named.join(", ")));
            }
            r.detail.insert("holders_in_window".into(), named.len() as u64);
        }
        r.explanation = format!(
            "{} matches nothing in the window: {sentence}. It did not exist then, or had another name or address.",
            term.kfl()
        );
        r.detail.insert("connections".into(), total);
        out.reasons.push(r);
    } else if suffix != col::IP_SUFFIX {
        let candidates = values(store, around, suffix, CANDIDATES, &mut out.sql).await?;
        let close =
            podwire_kfl::fields::closest(&term.value, candidates.iter().map(String::as_str));
        let mut r = if close.is_empty() {
            reason(
                "unknown_name",
                term,
                format!(
                    "No connection in the {} days before and after the window has {} at either end, nor a name close to it.",
                    LOOKBACK_MS / 86_400_000,
                    quote(&term.value)
                ),
                0,
            )
        } else {
            let mut r = reason(
                "did_you_mean",
                term,
                format!(
                    "No connection in the {} days before and after the window has {} at either end; did you mean {}?",
                    LOOKBACK_MS / 86_400_000,
                    quote(&term.value),
                    close.iter().map(|c| quote(c)).collect::<Vec<_>>().join(" or ")
                ),
                0,
            );
            r.suggestion = Some(
                close
                    .iter()
                    .map(|c| format!("{} == {}", term.field.name, quote(c)))
                    .collect::<Vec<_>>()
                    .join(" or "),
            );
            r
        };
        r.detail.insert("names_read".into(), candidates.len() as u64);
        out.reasons.push(r);
    }
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
            if let Some(s) = &r.suggestion {
                writeln!(f, "    try: {s}")?;
            }
        }
        Ok(())
    }
}
