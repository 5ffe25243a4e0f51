//! `why`: verdicts instead of rows. For the connections and DNS lookups a KFL filter selects
//! in a window, the evidence is read the way an SRE would read it, and each finding is said in
//! one sentence with its counts, times, example connections and the KFL that lists its rows.
//!
//! Connections are grouped as the map draws them at workload level (source, target, protocol,
//! responder port; [`crate::map`]), in one grouped DataFusion query: outcomes of final rows,
//! who reset, SYNs of unanswered attempts, the ICMP error, first and last failure and success,
//! retransmissions, zero windows and handshake RTTs. A second query over the window just before
//! gives each pair's own RTT baseline; a third reads the example connections whole (bytes and
//! duration across their rows). DNS lookups are grouped by client workload and name.
//!
//! | verdict | when |
//! |---|---|
//! | `refused` | SYNs answered with RST: nothing listening on that port |
//! | `no_answer` | SYNs (or UDP requests) never answered, or given up (`aborted`): dropped on the way |
//! | `reset` | established, then reset (by the client or the server) |
//! | `unreachable` | answered by an ICMP error (type, code, sender) |
//! | `stale_endpoint` | a failing target is a private address no pod, service or node held then |
//! | `dns` | lookups of a name failed (NXDOMAIN, SERVFAIL, ..., or no response) |
//! | `degraded` | no failures, but retransmissions, zero windows, or an RTT far above the baseline |
//! | `ok` | nothing wrong found among the connections looked at |
//!
//! Nothing is estimated: every count is a count of final rows (a connection counts once) or a
//! sum over rows, as a query over the same Parquet files gives it (the tests check with DuckDB).
use crate::columns::{column, int_list, ints, min_opt, ms_column, strings, when};
use crate::error::Result;
use crate::map::{
    self, CONNECTIONS_ONLY, Level, SideKeys, fill_template, kind_of, node_id, node_match,
    percentile, quote, side_keys, table_filter,
};
use crate::session::{QueryRequest, Store};
use crate::sightings::sightings;
use crate::why_not::LOOKBACK_MS;
use arrow::array::{AsArray, RecordBatch};
use podwire_schemas::Table;
use podwire_schemas::connections::{by, col, outcome, protocol};
use podwire_schemas::endpoint::Side;
use serde::Serialize;
use sqlparser::ast as sql;
use std::collections::{BTreeMap, HashMap};

/// Retransmitted share of packets above which a pair is `degraded` (with at least
/// [`MIN_PACKETS`] packets).
pub const RETRANSMIT_SHARE: f64 = 0.02;
/// Packets a pair needs before its retransmission share is judged.
pub const MIN_PACKETS: u64 = 100;
/// A median handshake RTT at least this many times the baseline's is `degraded`...
pub const RTT_FACTOR: f64 = 3.0;
/// ... when both windows have at least this many handshakes, and the median grew by at least
/// [`RTT_MIN_GROWTH_MS`] (a 0.1 → 0.4 ms change on a local link is not news).
pub const RTT_MIN_SAMPLES: usize = 5;
/// See [`RTT_FACTOR`].
pub const RTT_MIN_GROWTH_MS: f64 = 1.0;
/// Example connections kept per verdict.
pub const EXAMPLES: usize = 3;

/// Outcomes that are not failures.
const GOOD: [&str; 4] = [outcome::CLOSED, outcome::OPEN, outcome::ANSWERED, outcome::MIDSTREAM];
/// Outcomes that are, each a verdict (`aborted` is read as `no_answer`: the client gave up
/// before any answer).
const BAD: [&str; 5] =
    [outcome::REFUSED, outcome::NO_ANSWER, outcome::ABORTED, outcome::RESET, outcome::UNREACHABLE];

/// What to explain.
#[derive(Debug, Clone, Copy)]
pub struct WhyRequest<'a> {
    /// The KFL filter and window (`limit` is ignored).
    pub query: QueryRequest<'a>,
}

/// The verdicts of a window.
#[derive(Debug, Clone, Serialize)]
pub struct Why {
    /// The window (epoch ms).
    pub from_ms: Option<i64>,
    /// End of the window.
    pub to_ms: Option<i64>,
    /// Findings, problems first (most failed first), then `degraded`, then `ok`.
    pub verdicts: Vec<Verdict>,
    /// Connections (final rows) looked at.
    pub connections: u64,
    /// DNS transactions looked at.
    pub dns_lookups: u64,
    /// The statements run.
    pub sql: Vec<String>,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `refused`, `no_answer`, `reset`, `unreachable`, `stale_endpoint`, `dns`, `degraded`, `ok`.
    pub verdict: &'static str,
    /// The client, as a map node id (`wl:shop/frontend`).
    pub source: String,
    /// The server as a map node id; for `dns`, the name looked up.
    pub target: String,
    /// `tcp`, `udp`, `icmp`, or `dns`.
    pub protocol: String,
    /// The responder port (0 for `dns`).
    pub port: u16,
    /// One sentence.
    pub explanation: String,
    /// Connections (lookups) with this problem.
    pub failed: u64,
    /// Connections (lookups) of the pair in the window.
    pub total: u64,
    /// First and last time of the problem (epoch ms); of the pair's traffic for `ok`.
    pub first_ms: Option<i64>,
    /// See `first_ms`.
    pub last_ms: Option<i64>,
    /// When the pair started failing, if it worked before in the window.
    pub since_ms: Option<i64>,
    /// The last success of the pair in the window.
    pub last_success_ms: Option<i64>,
    /// Class-specific evidence (names in the module table's terms).
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// Up to [`EXAMPLES`] connections (or lookups) showing it.
    pub examples: Vec<Example>,
    /// The KFL that lists the rows of this finding.
    pub kfl: String,
}

/// An example connection, read whole (all its rows in the window).
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// The connection id.
    pub conn_id: i64,
    /// Its first packet in the window (epoch ms).
    pub start_ms: Option<i64>,
    /// Last packet minus first (ms).
    pub duration_ms: Option<i64>,
    /// Packets sent by the client.
    pub src_packets: u64,
    /// Packets sent by the server.
    pub dst_packets: u64,
    /// IP bytes both ways.
    pub bytes: u64,
}

impl Example {
    /// An example known by its id only; [`examples`] reads it.
    fn unread(conn_id: i64) -> Example {
        Example {
            conn_id,
            start_ms: None,
            duration_ms: None,
            src_packets: 0,
            dst_packets: 0,
            bytes: 0,
        }
    }
}

/// Reads the evidence of a window and says what is wrong.
///
/// # Errors
/// [`Error::Kfl`] for a bad filter; what DataFusion says.
pub async fn why(store: &Store, request: &WhyRequest<'_>) -> Result<Why> {
    let query = map::default_window(store, request.query).await?;
    let mut out = Why {
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        verdicts: Vec::new(),
        connections: 0,
        dns_lookups: 0,
        sql: Vec::new(),
    };
    let found = pairs(store, &query, &mut out.sql).await?;
    let baseline = match (query.from_ms, query.to_ms) {
        (Some(from), Some(to)) if to > from => {
            let before =
                QueryRequest { from_ms: Some(from - (to - from)), to_ms: Some(from), ..query };
            pairs_rtt(pairs(store, &before, &mut out.sql).await?)
        }
        _ => HashMap::new(),
    };
    for p in &found {
        out.connections += p.total;
        let base = baseline.get(&(p.source.clone(), p.target.clone(), p.protocol.clone(), p.port));
        out.verdicts.extend(judge(p, base.map(Vec::as_slice)));
    }
    holders(store, &query, &mut out).await?;
    out.verdicts.extend(dns_verdicts(store, &query, &mut out.sql, &mut out.dns_lookups).await?);
    examples(store, &query, &mut out).await?;
    out.verdicts.sort_by(|a, b| {
        rank(a.verdict)
            .cmp(&rank(b.verdict))
            .then(b.failed.cmp(&a.failed))
            .then(b.total.cmp(&a.total))
            .then_with(|| (&a.source, &a.target, a.port).cmp(&(&b.source, &b.target, b.port)))
    });
    Ok(out)
}

/// For each `stale_endpoint`, the pods that held its address before the failures and after
/// them, as connections at either end show them in the [`LOOKBACK_MS`] around the window.
async fn holders(store: &Store, query: &QueryRequest<'_>, out: &mut Why) -> Result<()> {
    let stale: Vec<String> = out
        .verdicts
        .iter()
        .filter(|v| v.verdict == "stale_endpoint")
        .map(|v| name(&v.target))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let around = QueryRequest {
        kfl: "",
        from_ms: query.from_ms.map(|f| f.saturating_sub(LOOKBACK_MS)),
        to_ms: query.to_ms.map(|t| t.saturating_add(LOOKBACK_MS)),
        ..*query
    };
    let seen = sightings(
        store,
        &around,
        podwire_schemas::connections::col::IP_SUFFIX,
        &stale,
        &mut out.sql,
    )
    .await?;
    for v in out.verdicts.iter_mut().filter(|v| v.verdict == "stale_endpoint") {
        let ip = name(&v.target);
        let pods = || seen.iter().filter(|s| s.ip == ip && !s.pod.is_empty());
        let before = pods()
            .filter(|s| matches!((s.last_ms, v.first_ms), (Some(l), Some(f)) if l < f))
            .max_by_key(|s| s.last_ms);
        let after = pods()
            .filter(|s| matches!((s.first_ms, v.last_ms), (Some(f), Some(l)) if f > l))
            .min_by_key(|s| s.first_ms);
        let mut told = Vec::new();
        if let Some(b) = before {
            told.push(format!("{} held {ip} until at least {}", b.who(), when(b.last_ms)));
            v.evidence.insert("held_before".into(), b.who().into());
            v.evidence.insert("held_before_last_ms".into(), b.last_ms.into());
        }
        if let Some(a) = after {
            told.push(format!("{} holds it from {}", a.who(), when(a.first_ms)));
            v.evidence.insert("held_after".into(), a.who().into());
            v.evidence.insert("held_after_first_ms".into(), a.first_ms.into());
        }
        if !told.is_empty() {
            v.explanation.push_str(&format!(" In the store, {}.", told.join("; ")));
        }
    }
    Ok(())
}

fn rank(verdict: &str) -> u8 {
    match verdict {
        "ok" => 2,
        "degraded" => 1,
        _ => 0,
    }
}

/// One (source, target, protocol, port) group of the window.
#[derive(Debug, Clone, Default)]
struct Pair {
    source: String,
    target: String,
    protocol: String,
    port: u16,
    total: u64,
    /// Final rows by outcome.
    outcomes: BTreeMap<String, u64>,
    reset_by_src: u64,
    reset_by_dst: u64,
    /// Packets the client sent on connections with no answer (SYNs and their retries).
    unanswered_packets: u64,
    icmp: Option<(i64, i64, String)>,
    /// A server address and pod of the failing connections.
    failed_dst_ip: String,
    failed_dst_pod: String,
    first_success: Option<i64>,
    last_success: Option<i64>,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    packets: u64,
    retransmits: u64,
    zero_windows: u64,
    rtts_ms: Vec<f64>,
    /// Example conn ids per bad outcome.
    examples: BTreeMap<String, Vec<i64>>,
    /// First and last final row per bad outcome.
    times: BTreeMap<String, (Option<i64>, Option<i64>)>,
}

fn pairs_rtt(pairs: Vec<Pair>) -> HashMap<(String, String, String, u16), Vec<f64>> {
    pairs.into_iter().map(|p| ((p.source, p.target, p.protocol, p.port), p.rtts_ms)).collect()
}

/// The pairs query: grouped by the workload-level keys of both ends, protocol and port.
fn pairs_sql() -> String {
    let fin = col::IS_FINAL;
    let out = col::OUTCOME;
    let keys: Vec<(String, String)> = side_keys(Side::Src, Level::Workload)
        .into_iter()
        .chain(side_keys(Side::Dst, Level::Workload))
        .collect();
    let inner: Vec<String> = keys.iter().map(|(e, a)| format!("{e} AS {a}")).collect();
    let group: Vec<&str> = keys.iter().map(|(_, a)| a.as_str()).collect();
    let group = group.join(", ");
    let list = |v: &[&str]| v.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", ");
    let (good, bad) = (list(&GOOD), list(&BAD));
    let mut per_outcome = String::new();
    for o in GOOD.iter().chain(&BAD) {
        per_outcome +=
            &format!(", sum(CASE WHEN {fin} AND {out} = '{o}' THEN 1 ELSE 0 END) AS \"n_{o}\"");
    }
    for o in BAD {
        per_outcome += &format!(
            ", array_agg({id}) FILTER (WHERE {fin} AND {out} = '{o}') AS \"ex_{o}\", \
             min(CASE WHEN {fin} AND {out} = '{o}' THEN {start} END) AS \"first_{o}\", \
             max(CASE WHEN {fin} AND {out} = '{o}' THEN {end} END) AS \"last_{o}\"",
            id = col::CONN_ID,
            start = col::START_TS,
            end = col::END_TS,
        );
    }
    format!(
        "SELECT {group}, {protocol}, {port}, \
           sum(CASE WHEN {fin} THEN 1 ELSE 0 END) AS total{per_outcome}, \
           sum(CASE WHEN {fin} AND {out} = '{reset}' AND {reset_by} = '{src}' THEN 1 ELSE 0 END) AS reset_by_src, \
           sum(CASE WHEN {fin} AND {out} = '{reset}' AND {reset_by} = '{dst}' THEN 1 ELSE 0 END) AS reset_by_dst, \
           sum(CASE WHEN {out} IN ('{no_answer}', '{aborted}') THEN {sp} ELSE 0 END) AS unanswered_packets, \
           max(CASE WHEN {fin} AND {out} = '{unreachable}' THEN {icmp_type} END) AS icmp_type, \
           max(CASE WHEN {fin} AND {out} = '{unreachable}' THEN {icmp_code} END) AS icmp_code, \
           max(CASE WHEN {fin} AND {out} = '{unreachable}' THEN {icmp_src} END) AS icmp_src, \
           max(CASE WHEN {fin} AND {out} IN ({bad}) THEN dst_addr END) AS failed_dst_ip, \
           max(CASE WHEN {fin} AND {out} IN ({bad}) THEN dst_pod_name END) AS failed_dst_pod, \
           min(CASE WHEN {fin} AND {out} IN ({good}) THEN {start} END) AS first_success, \
           max(CASE WHEN {fin} AND {out} IN ({good}) THEN {end} END) AS last_success, \
           min({start}) AS first_seen, max({end}) AS last_seen, \
           sum({sp} + {dp}) AS packets, sum({sr} + {dr}) AS retransmits, \
           sum({sz} + {dz}) AS zero_windows, \
           array_agg(rtt_us) FILTER (WHERE rtt_us IS NOT NULL) AS rtts_us \
         FROM (SELECT {inner}, {protocol}, {port}, {fin}, {out}, {reset_by}, {sp}, {dp}, {sr}, {dr}, \
                 {sz}, {dz}, {icmp_type}, {icmp_code}, {icmp_src}, {id}, {start}, {end}, \
                 {dst_ip} AS dst_addr, {dst_pod} AS dst_pod_name, \
                 CASE WHEN {fin} THEN {rtt} END AS rtt_us \
               FROM connections WHERE __filter__) AS ends \
         GROUP BY {group}, {protocol}, {port}",
        inner = inner.join(", "),
        protocol = col::PROTOCOL,
        port = col::DST_PORT,
        reset = outcome::RESET,
        no_answer = outcome::NO_ANSWER,
        aborted = outcome::ABORTED,
        unreachable = outcome::UNREACHABLE,
        reset_by = col::RESET_BY,
        src = by::SRC,
        dst = by::DST,
        sp = col::SRC_PACKETS,
        dp = col::DST_PACKETS,
        sr = col::SRC_RETRANSMITS,
        dr = col::DST_RETRANSMITS,
        sz = col::SRC_ZERO_WINDOWS,
        dz = col::DST_ZERO_WINDOWS,
        icmp_type = col::ICMP_TYPE,
        icmp_code = col::ICMP_CODE,
        icmp_src = col::ICMP_ERROR_SRC,
        id = col::CONN_ID,
        start = col::START_TS,
        end = col::END_TS,
        dst_ip = col::DST_IP,
        dst_pod = Side::Dst.column(podwire_schemas::endpoint::POD),
        rtt = col::HANDSHAKE_RTT_US,
    )
}

/// The window's pairs.
async fn pairs(
    store: &Store,
    query: &QueryRequest<'_>,
    sqls: &mut Vec<String>,
) -> Result<Vec<Pair>> {
    let Some(filter) = table_filter(store, query, Table::Connections)? else {
        return Ok(Vec::new());
    };
    let values = HashMap::from([
        ("__filter__", filter),
        ("__src_expanded__", sql::Expr::value(sql::Value::Boolean(true))),
        ("__dst_expanded__", sql::Expr::value(sql::Value::Boolean(true))),
    ]);
    let statement = fill_template(&pairs_sql(), &values)?;
    sqls.push(format!("{statement:#}"));
    let batches = store.rows(statement).await?;
    let mut out = Vec::new();
    for b in &batches {
        read_pairs(b, &mut out)?;
    }
    Ok(out)
}

fn read_pairs(b: &RecordBatch, out: &mut Vec<Pair>) -> Result<()> {
    let (src, dst) = (SideKeys::of(b, Side::Src)?, SideKeys::of(b, Side::Dst)?);
    let u = |v: Option<i64>| v.map_or(0, |n| u64::try_from(n).unwrap_or(0));
    let protocol = strings(b, col::PROTOCOL)?;
    let port = ints(b, col::DST_PORT)?;
    let total = ints(b, "total")?;
    let mut outcomes: Vec<(&str, Vec<Option<i64>>)> = Vec::new();
    for o in GOOD.iter().chain(&BAD) {
        outcomes.push((o, ints(b, &format!("n_{o}"))?));
    }
    let [rs, rd, unanswered, itype, icode, packets, retrans, zero] = [
        "reset_by_src",
        "reset_by_dst",
        "unanswered_packets",
        "icmp_type",
        "icmp_code",
        "packets",
        "retransmits",
        "zero_windows",
    ]
    .map(|n| ints(b, n));
    let (rs, rd, unanswered, itype, icode, packets, retrans, zero) =
        (rs?, rd?, unanswered?, itype?, icode?, packets?, retrans?, zero?);
    let (isrc, fip, fpod) =
        (strings(b, "icmp_src")?, strings(b, "failed_dst_ip")?, strings(b, "failed_dst_pod")?);
    let times: Vec<Vec<Option<i64>>> = ["first_success", "last_success", "first_seen", "last_seen"]
        .iter()
        .map(|n| ms_column(b, n))
        .collect::<Result<_>>()?;
    let mut bad_times = Vec::new();
    for o in BAD {
        bad_times
            .push((o, (ms_column(b, &format!("first_{o}"))?, ms_column(b, &format!("last_{o}"))?)));
    }
    for i in 0..b.num_rows() {
        let mut p = Pair {
            source: node_id(&src, i),
            target: node_id(&dst, i),
            protocol: protocol[i].clone(),
            port: u16::try_from(port[i].unwrap_or(0)).unwrap_or(0),
            total: u(total[i]),
            reset_by_src: u(rs[i]),
            reset_by_dst: u(rd[i]),
            unanswered_packets: u(unanswered[i]),
            icmp: itype[i].map(|t| (t, icode[i].unwrap_or(0), isrc[i].clone())),
            failed_dst_ip: fip[i].clone(),
            failed_dst_pod: fpod[i].clone(),
            first_success: times[0][i],
            last_success: times[1][i],
            first_seen: times[2][i],
            last_seen: times[3][i],
            packets: u(packets[i]),
            retransmits: u(retrans[i]),
            zero_windows: u(zero[i]),
            ..Pair::default()
        };
        for (o, v) in &outcomes {
            if let Some(n) = v[i].filter(|n| *n > 0) {
                p.outcomes.insert((*o).to_owned(), u(Some(n)));
            }
        }
        for (o, (first, last)) in &bad_times {
            if first[i].is_some() {
                p.times.insert((*o).to_owned(), (first[i], last[i]));
            }
        }
        for o in BAD {
            let mut ids = int_list(b, &format!("ex_{o}"), i)?;
            ids.sort_unstable();
            ids.truncate(EXAMPLES);
            if !ids.is_empty() {
                p.examples.insert(o.to_owned(), ids);
            }
        }
        p.rtts_ms = int_list(b, "rtts_us", i)?.into_iter().map(|us| us as f64 / 1000.0).collect();
        p.rtts_ms.sort_by(f64::total_cmp);
        out.push(p);
    }
    Ok(())
}

/// A node id for a sentence: `frontend (shop)`, `api.example.com`, `10.0.0.7`.
fn name(id: &str) -> String {
    let (kind, rest) = id.split_once(':').unwrap_or(("", id));
    match kind {
        "wl" | "pod" | "svc" => match rest.split_once('/') {
            Some((ns, n)) => format!("{n} ({ns})"),
            None => rest.to_owned(),
        },
        "ns" => format!("namespace {rest}"),
        "node" => format!("node {rest}"),
        _ => rest.to_owned(),
    }
}

/// What an ICMP type and code mean (the common ones).
fn icmp_meaning(v6: bool, t: i64, c: i64) -> &'static str {
    match (v6, t, c) {
        (false, 3, 0) | (true, 1, 0) => "network unreachable",
        (false, 3, 1) | (true, 1, 3) => "host unreachable",
        (false, 3, 3) | (true, 1, 4) => "port unreachable",
        (false, 3, 9 | 10 | 13) | (true, 1, 1) => "administratively prohibited",
        (false, 3, _) | (true, 1, _) => "destination unreachable",
        (false, 11, _) | (true, 3, _) => "time exceeded",
        _ => "an ICMP error",
    }
}

fn kfl_of(p: &Pair, outcomes: &[&str]) -> String {
    let ends = match (node_match(&p.source), node_match(&p.target)) {
        (Some(s), Some(t)) => format!("{CONNECTIONS_ONLY}{} and {}", s.src, t.dst),
        _ => CONNECTIONS_ONLY.trim_end_matches(" and ").to_owned(),
    };
    let mut kfl =
        format!("{ends} and protocol.layer4 == {} and dst.port == {}", quote(&p.protocol), p.port);
    match outcomes {
        [] => {}
        [o] => kfl += &format!(" and outcome == {}", quote(o)),
        many => {
            let alts: Vec<String> =
                many.iter().map(|o| format!("outcome == {}", quote(o))).collect();
            kfl += &format!(" and ({})", alts.join(" or "));
        }
    }
    kfl
}

/// The verdicts of one pair: one per failure class found, else `degraded` or `ok`.
fn judge(p: &Pair, baseline_ms: Option<&[f64]>) -> Vec<Verdict> {
    let n = |o: &str| p.outcomes.get(o).copied().unwrap_or(0);
    let (src, dst) = (name(&p.source), name(&p.target));
    let port = format!("{}/{}", p.protocol, p.port);
    let last_ok = match p.last_success {
        Some(t) => format!("; the last success was at {}", when(Some(t))),
        None => "; none succeeded in the window".into(),
    };
    let base = |verdict: &'static str, failed: u64, outcomes: &[&str], explanation: String| {
        let (mut first, mut last) = (None, None);
        for o in outcomes {
            if let Some((a, b)) = p.times.get(*o) {
                first = min_opt(first, *a);
                last = last.max(*b);
            }
        }
        let since = match (p.first_success, first) {
            (Some(ok), Some(bad)) if ok < bad => Some(bad),
            _ => None,
        };
        let mut examples: Vec<i64> =
            outcomes.iter().flat_map(|o| p.examples.get(*o).cloned().unwrap_or_default()).collect();
        examples.sort_unstable();
        examples.truncate(EXAMPLES);
        Verdict {
            verdict,
            source: p.source.clone(),
            target: p.target.clone(),
            protocol: p.protocol.clone(),
            port: p.port,
            explanation,
            failed,
            total: p.total,
            first_ms: first,
            last_ms: last,
            since_ms: since,
            last_success_ms: p.last_success,
            evidence: BTreeMap::new(),
            examples: examples.into_iter().map(Example::unread).collect(),
            kfl: kfl_of(p, outcomes),
        }
    };
    let mut out = Vec::new();
    let failing = BAD.iter().map(|o| n(o)).sum::<u64>();
    // A target nobody held: the address itself is the problem, whatever the packets said.
    // (`unknown:` ids are private addresses no one named: the map's id rules.)
    if failing > 0 && kind_of(&p.target) == "unknown" {
        let mut v = base(
            "stale_endpoint",
            failing,
            &BAD,
            format!(
                "{failing} of {} connections from {src} to {dst} on {port} failed: no pod, service or node held {dst} at the time (deleted, or not ready yet), so a stale endpoint, DNS record or configuration still points there{last_ok}.",
                p.total
            ),
        );
        for o in BAD {
            if n(o) > 0 {
                v.evidence.insert(format!("outcome_{o}"), n(o).into());
            }
        }
        return vec![v];
    }
    let pod = if p.failed_dst_pod.is_empty() {
        String::new()
    } else {
        format!(" (pod {} held {} then)", p.failed_dst_pod, p.failed_dst_ip)
    };
    if n(outcome::REFUSED) > 0 {
        let k = n(outcome::REFUSED);
        out.push(base(
            "refused",
            k,
            &[outcome::REFUSED],
            format!(
                "{dst} refused {k} of {} connections from {src} on {port}: the SYN was answered with a RST, so nothing was listening on that port{pod}{last_ok}.",
                p.total
            ),
        ));
    }
    let unanswered = n(outcome::NO_ANSWER) + n(outcome::ABORTED);
    if unanswered > 0 {
        let what = if p.protocol == protocol::UDP { "requests" } else { "SYNs" };
        let mut v = base(
            "no_answer",
            unanswered,
            &[outcome::NO_ANSWER, outcome::ABORTED],
            format!(
                "{unanswered} of {} connection attempts from {src} to {dst} on {port} got no answer ({} {what} sent in all, none answered): dropped on the way, by a NetworkPolicy, a firewall or a node that is down{pod}{last_ok}.",
                p.total, p.unanswered_packets
            ),
        );
        v.evidence.insert("packets_sent".into(), p.unanswered_packets.into());
        v.evidence.insert("aborted".into(), n(outcome::ABORTED).into());
        out.push(v);
    }
    if n(outcome::RESET) > 0 {
        let k = n(outcome::RESET);
        let who = match (p.reset_by_src, p.reset_by_dst) {
            (0, _) => format!("by the server {dst}"),
            (_, 0) => format!("by the client {src}"),
            (a, b) => format!("{b} by the server, {a} by the client"),
        };
        let mut v = base(
            "reset",
            k,
            &[outcome::RESET],
            format!(
                "{k} of {} connections from {src} to {dst} on {port} were established and then reset, {who}{last_ok}.",
                p.total
            ),
        );
        v.evidence.insert("reset_by_src".into(), p.reset_by_src.into());
        v.evidence.insert("reset_by_dst".into(), p.reset_by_dst.into());
        out.push(v);
    }
    if n(outcome::UNREACHABLE) > 0 {
        let k = n(outcome::UNREACHABLE);
        let (t, c, from) = p.icmp.clone().unwrap_or((0, 0, String::new()));
        let v6 = from.contains(':');
        let mut v = base(
            "unreachable",
            k,
            &[outcome::UNREACHABLE],
            format!(
                "{k} of {} connections from {src} to {dst} on {port} were answered by an ICMP error, {} (type {t}, code {c}) from {}{last_ok}.",
                p.total,
                icmp_meaning(v6, t, c),
                if from.is_empty() { "an unknown sender" } else { &from }
            ),
        );
        v.evidence.insert("icmp_type".into(), t.into());
        v.evidence.insert("icmp_code".into(), c.into());
        v.evidence.insert("icmp_error_src".into(), from.into());
        out.push(v);
    }
    if !out.is_empty() {
        return out;
    }
    // No failure: degraded, or ok.
    let mut reasons = Vec::new();
    let mut evidence = BTreeMap::new();
    if p.packets >= MIN_PACKETS && p.retransmits as f64 > RETRANSMIT_SHARE * p.packets as f64 {
        let share = p.retransmits as f64 / p.packets as f64;
        reasons.push(format!(
            "{} of {} packets were retransmissions ({:.1} %)",
            p.retransmits,
            p.packets,
            share * 100.0
        ));
        evidence.insert("retransmits".into(), p.retransmits.into());
        evidence.insert("packets".into(), p.packets.into());
    }
    if p.zero_windows > 0 {
        reasons.push(format!(
            "receivers advertised a zero window {} times (a reader that cannot keep up)",
            p.zero_windows
        ));
        evidence.insert("zero_windows".into(), p.zero_windows.into());
    }
    let now_p50 = percentile(&p.rtts_ms, 0.5);
    let base_p50 =
        baseline_ms.filter(|b| b.len() >= RTT_MIN_SAMPLES).and_then(|b| percentile(b, 0.5));
    if let (Some(now), Some(before)) = (now_p50, base_p50)
        && p.rtts_ms.len() >= RTT_MIN_SAMPLES
        && before > 0.0
        && now >= RTT_FACTOR * before
        && now - before >= RTT_MIN_GROWTH_MS
    {
        reasons.push(format!(
            "the median handshake RTT is {now:.1} ms, {:.1}x its {before:.1} ms in the window before",
            now / before
        ));
        evidence.insert("rtt_p50_ms".into(), now.into());
        evidence.insert("baseline_rtt_p50_ms".into(), before.into());
        evidence.insert("rtt_factor".into(), (now / before).into());
    }
    let mut v = if reasons.is_empty() {
        let counts: Vec<String> = p.outcomes.iter().map(|(o, k)| format!("{k} {o}")).collect();
        base(
            "ok",
            0,
            &[],
            format!(
                "Nothing wrong found in {} connections from {src} to {dst} on {port} ({}).",
                p.total,
                if counts.is_empty() { "interim rows only".into() } else { counts.join(", ") }
            ),
        )
    } else {
        base(
            "degraded",
            0,
            &[],
            format!(
                "Connections from {src} to {dst} on {port} succeed, but {}.",
                reasons.join("; ")
            ),
        )
    };
    v.first_ms = p.first_seen;
    v.last_ms = p.last_seen;
    v.since_ms = None;
    if let Some(m) = now_p50 {
        v.evidence.entry("rtt_p50_ms".into()).or_insert(m.into());
    }
    v.evidence.extend(evidence);
    for (o, k) in &p.outcomes {
        v.evidence.insert(format!("outcome_{o}"), (*k).into());
    }
    vec![v]
}

/// Failed lookups, by client workload and name.
async fn dns_verdicts(
    store: &Store,
    query: &QueryRequest<'_>,
    sqls: &mut Vec<String>,
    looked_at: &mut u64,
) -> Result<Vec<Verdict>> {
    use podwire_schemas::dns::{col as dcol, outcome as dout};
    let Some(filter) = table_filter(store, query, Table::Dns)? else { return Ok(Vec::new()) };
    let keys = side_keys(Side::Src, Level::Workload);
    let inner: Vec<String> = keys.iter().map(|(e, a)| format!("{e} AS {a}")).collect();
    let group: Vec<&str> = keys.iter().map(|(_, a)| a.as_str()).collect();
    let group = group.join(", ");
    let template = format!(
        "SELECT {group}, {name} AS name, {rcode} AS rcode, {out} = '{no_response}' AS unanswered, \
           count(*) AS n, min({ts}) AS first, max({ts}) AS last, \
           array_agg({id}) AS ids \
         FROM (SELECT {inner}, {name}, {rcode}, {out}, {ts}, {id} FROM dns WHERE __filter__) AS q \
         GROUP BY {group}, {name}, {rcode}, {out} = '{no_response}'",
        inner = inner.join(", "),
        name = dcol::QUERY_NAME,
        rcode = dcol::RCODE,
        out = dcol::OUTCOME,
        no_response = dout::NO_RESPONSE,
        ts = dcol::TS,
        id = dcol::CONN_ID,
    );
    let values = HashMap::from([
        ("__filter__", filter),
        ("__src_expanded__", sql::Expr::value(sql::Value::Boolean(true))),
    ]);
    let statement = fill_template(&template, &values)?;
    sqls.push(format!("{statement:#}"));
    let batches = store.rows(statement).await?;
    // (client, name) -> (total, failures by rcode, first/last failure, last success, ids)
    #[derive(Default)]
    struct Lookups {
        total: u64,
        failed: BTreeMap<String, u64>,
        first: Option<i64>,
        last: Option<i64>,
        first_ok: Option<i64>,
        last_ok: Option<i64>,
        ids: Vec<i64>,
    }
    let mut by: BTreeMap<(String, String), Lookups> = BTreeMap::new();
    for b in &batches {
        let src = SideKeys::of(b, Side::Src)?;
        let (names, rcodes) = (strings(b, "name")?, strings(b, "rcode")?);
        let unanswered = column(b, "unanswered")?.as_boolean().clone();
        let n = ints(b, "n")?;
        let (first, last) = (ms_column(b, "first")?, ms_column(b, "last")?);
        for i in 0..b.num_rows() {
            let e = by.entry((node_id(&src, i), names[i].clone())).or_default();
            let k = u64::try_from(n[i].unwrap_or(0)).unwrap_or(0);
            e.total += k;
            *looked_at += k;
            let no_response = unanswered.value(i);
            let fails = no_response
                || !(rcodes[i].is_empty() || rcodes[i] == podwire_schemas::dns::RCODE_OK);
            if !fails {
                e.first_ok = min_opt(e.first_ok, first[i]);
                e.last_ok = e.last_ok.max(last[i]);
                continue;
            }
            let why = if no_response { "no response".to_owned() } else { rcodes[i].clone() };
            *e.failed.entry(why).or_default() += k;
            e.first = min_opt(e.first, first[i]);
            e.last = e.last.max(last[i]);
            e.ids.extend(int_list(b, "ids", i)?);
        }
    }
    let mut out = Vec::new();
    for ((client, qname), l) in by {
        let failed: u64 = l.failed.values().sum();
        if failed == 0 {
            continue;
        }
        let parts: Vec<String> = l.failed.iter().map(|(r, k)| format!("{k} {r}")).collect();
        let last_ok = match l.last_ok {
            Some(t) => format!("; the last answer was at {}", when(Some(t))),
            None => "; none was answered in the window".into(),
        };
        let src_kfl = node_match(&client).map_or_else(String::new, |m| format!(" and {}", m.src));
        let mut ids = l.ids;
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(EXAMPLES);
        let mut evidence: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for (r, k) in &l.failed {
            evidence.insert(r.clone(), (*k).into());
        }
        out.push(Verdict {
            verdict: "dns",
            explanation: format!(
                "{failed} of {} lookups of {qname} by {} failed ({}){last_ok}.",
                l.total,
                name(&client),
                parts.join(", ")
            ),
            source: client,
            target: qname.clone(),
            protocol: "dns".into(),
            port: 0,
            failed,
            total: l.total,
            first_ms: l.first,
            last_ms: l.last,
            since_ms: match (l.first_ok, l.first) {
                (Some(ok), Some(bad)) if ok < bad => Some(bad),
                _ => None,
            },
            last_success_ms: l.last_ok,
            evidence,
            examples: ids.into_iter().map(Example::unread).collect(),
            kfl: format!("dns{src_kfl} and request.questions[0].name == {}", quote(&qname)),
        });
    }
    Ok(out)
}

/// Reads the example connections whole: bytes, packets and duration over all their rows in
/// the window.
async fn examples(store: &Store, query: &QueryRequest<'_>, why: &mut Why) -> Result<()> {
    let ids: Vec<i64> =
        why.verdicts.iter().flat_map(|v| v.examples.iter().map(|e| e.conn_id)).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let Some(filter) = table_filter(store, query, Table::Connections)? else { return Ok(()) };
    let list = sql::Expr::InList {
        expr: Box::new(sql::Expr::Identifier(sql::Ident::new(col::CONN_ID))),
        list: ids
            .iter()
            .map(|id| sql::Expr::value(sql::Value::Number(id.to_string(), false)))
            .collect(),
        negated: false,
    };
    let template = format!(
        "SELECT {id} AS id, min({start}) AS first, max({end}) AS last, sum({sp}) AS sp, \
           sum({dp}) AS dp, sum({sb} + {db}) AS bytes \
         FROM connections WHERE __filter__ AND __ids__ GROUP BY {id}",
        id = col::CONN_ID,
        start = col::START_TS,
        end = col::END_TS,
        sp = col::SRC_PACKETS,
        dp = col::DST_PACKETS,
        sb = col::SRC_BYTES,
        db = col::DST_BYTES,
    );
    let statement =
        fill_template(&template, &HashMap::from([("__filter__", filter), ("__ids__", list)]))?;
    why.sql.push(format!("{statement:#}"));
    let batches = store.rows(statement).await?;
    let mut found: HashMap<i64, Example> = HashMap::new();
    for b in &batches {
        let (id, sp, dp, bytes) =
            (ints(b, "id")?, ints(b, "sp")?, ints(b, "dp")?, ints(b, "bytes")?);
        let (first, last) = (ms_column(b, "first")?, ms_column(b, "last")?);
        let u = |v: Option<i64>| v.map_or(0, |n| u64::try_from(n).unwrap_or(0));
        for i in 0..b.num_rows() {
            let Some(conn_id) = id[i] else { continue };
            found.insert(
                conn_id,
                Example {
                    conn_id,
                    start_ms: first[i],
                    duration_ms: first[i].zip(last[i]).map(|(a, b)| b - a),
                    src_packets: u(sp[i]),
                    dst_packets: u(dp[i]),
                    bytes: u(bytes[i]),
                },
            );
        }
    }
    for v in &mut why.verdicts {
        for e in &mut v.examples {
            if let Some(f) = found.get(&e.conn_id) {
                *e = f.clone();
            }
        }
    }
    Ok(())
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let problems: Vec<&Verdict> = self.verdicts.iter().filter(|v| v.verdict != "ok").collect();
        let ok: Vec<&Verdict> = self.verdicts.iter().filter(|v| v.verdict == "ok").collect();
        writeln!(
            f,
            "{} connections and {} DNS lookups from {} to {}: {} findings, {} pairs ok.",
            self.connections,
            self.dns_lookups,
            when(self.from_ms),
            when(self.to_ms),
            problems.len(),
            ok.len()
        )?;
        for v in problems {
            writeln!(f, "\n[{}] {}", v.verdict, v.explanation)?;
            if let (Some(a), Some(b)) = (v.first_ms, v.last_ms) {
                write!(f, "  from {} to {}", when(Some(a)), when(Some(b)))?;
                if let Some(s) = v.since_ms {
                    write!(f, "; failing since {} after working before", when(Some(s)))?;
                }
                writeln!(f)?;
            }
            for e in &v.examples {
                if v.protocol == "dns" {
                    writeln!(f, "  e.g. lookup on connection {}", e.conn_id)?;
                } else {
                    writeln!(
                        f,
                        "  e.g. connection {} at {}: {} packets sent, {} received, {} bytes, {} ms",
                        e.conn_id,
                        when(e.start_ms),
                        e.src_packets,
                        e.dst_packets,
                        e.bytes,
                        e.duration_ms.unwrap_or(0)
                    )?;
                }
            }
            writeln!(f, "  rows: podwire query '{}'", v.kfl)?;
        }
        if !ok.is_empty() {
            let shown: Vec<String> = ok
                .iter()
                .take(10)
                .map(|v| {
                    format!("{} -> {} {}/{}", name(&v.source), name(&v.target), v.protocol, v.port)
                })
                .collect();
            writeln!(f, "\nok: {}{}", shown.join(", "), if ok.len() > 10 { ", ..." } else { "" })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(target: &str, outcomes: &[(&str, u64)]) -> Pair {
        Pair {
            source: "wl:shop/frontend".into(),
            target: target.into(),
            protocol: "tcp".into(),
            port: 8080,
            total: outcomes.iter().map(|(_, n)| n).sum(),
            outcomes: outcomes.iter().map(|(o, n)| ((*o).to_owned(), *n)).collect(),
            ..Pair::default()
        }
    }

    #[test]
    fn each_failure_class_is_its_own_verdict() {
        let p = pair("wl:shop/web", &[("closed", 5), ("refused", 2), ("reset", 1)]);
        let v = judge(&p, None);
        let names: Vec<&str> = v.iter().map(|v| v.verdict).collect();
        assert_eq!(names, ["refused", "reset"]);
        assert_eq!((v[0].failed, v[0].total), (2, 8));
        assert!(v[0].kfl.ends_with("and outcome == \"refused\""), "{}", v[0].kfl);
    }

    #[test]
    fn an_address_nobody_held_is_the_verdict_whatever_the_packets_said() {
        let p = pair("unknown:10.244.9.9", &[("no_answer", 3), ("refused", 1)]);
        let v = judge(&p, None);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].verdict, v[0].failed), ("stale_endpoint", 4));
        // A public address nobody named is not stale: it is the internet.
        let p = pair("ext:203.0.113.9", &[("no_answer", 3)]);
        assert_eq!(judge(&p, None)[0].verdict, "no_answer");
    }

    #[test]
    fn degraded_needs_enough_evidence() {
        let mut p = pair("wl:shop/web", &[("closed", 10)]);
        p.packets = MIN_PACKETS - 1;
        p.retransmits = MIN_PACKETS / 2;
        assert_eq!(judge(&p, None)[0].verdict, "ok", "too few packets to judge");
        p.packets = 1000;
        p.retransmits = 21;
        assert_eq!(judge(&p, None)[0].verdict, "degraded");
        p.retransmits = 20;
        assert_eq!(judge(&p, None)[0].verdict, "ok", "2 % exactly is not above");
        // RTT: 3x the baseline, at least 1 ms more, enough samples on both sides.
        p.rtts_ms = vec![4.0; RTT_MIN_SAMPLES];
        let before = vec![1.0; RTT_MIN_SAMPLES];
        let v = judge(&p, Some(&before));
        assert_eq!(v[0].verdict, "degraded");
        assert_eq!(v[0].evidence["rtt_factor"], serde_json::json!(4.0));
        assert_eq!(judge(&p, Some(&before[..RTT_MIN_SAMPLES - 1]))[0].verdict, "ok");
        p.rtts_ms = vec![0.4; RTT_MIN_SAMPLES];
        let fast = vec![0.1; RTT_MIN_SAMPLES];
        assert_eq!(judge(&p, Some(&fast))[0].verdict, "ok", "0.1 -> 0.4 ms is not news");
    }
}
