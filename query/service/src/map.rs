//! The connectivity map: who talked to whom over a window, as nodes and edges, computed by
//! DataFusion as one grouped query over the `connections` table.
//!
//! # Nodes
//! Each end of a connection row becomes a node id by what ingest named it:
//!
//! | the end | id | kind |
//! |---|---|---|
//! | in a namespace that is not expanded (or level `namespace`) | `ns:<namespace>` | `namespace` |
//! | a pod | `wl:<ns>/<workload>` (level `workload`, pods without a workload stay pods) or `pod:<ns>/<pod>` | `workload`, `pod` |
//! | a service's ClusterIP (no backend pod known) | `svc:<ns>/<service>` | `service` |
//! | a node's own address (host network) | `node:<node>` | `node` |
//! | outside the cluster, with a name the client resolved (`dst_dns_name`) | `ext:<name>` | `external` |
//! | outside the cluster, a private address no one named | `unknown:<ip>` | `unknown` |
//! | outside the cluster, any other address | `ext:<ip>` | `external` |
//!
//! Private addresses (RFC 1918, CGNAT 100.64/10, loopback, link-local, IPv6 ULA and link-local)
//! without a name are kept apart from the internet: they are most likely pod or service
//! addresses nobody could name (an inventory that missed them), not external services.
//!
//! # Edges
//! One edge per (source node, target node), source = the initiator. Counters are per-row deltas
//! in the store, so bytes, packets and retransmissions are sums over every row of the window;
//! `connections`, outcomes and handshake RTTs come from final rows only, so a long connection
//! with interim rows counts once. The query groups by the two ends' name columns (each kept only
//! where the id rules above need it), protocol and responder port, in one scan; the node ids are
//! built here from each group's keys, and the port rows summed into edges. Handshake RTTs come back as lists per port
//! (`array_agg`) and the edge's p50/p95 are computed exactly from them: on the 10 M-row bench
//! store that took 0.43 s for a day where DataFusion's `approx_percentile_cont` under
//! `GROUPING SETS` took 0.82 s (benchmarks/README.md).
//!
//! # Folding
//! A window over a big cluster can name thousands of endpoints. `max_nodes` keeps the heaviest
//! nodes (by connections, then bytes) and folds the rest into one `other:` node per namespace
//! (workloads, pods, services) or per kind (namespaces, externals, nodes, unknowns); edges
//! between folded nodes are merged, so every total is kept. A merged edge's RTT percentiles are
//! the connection-weighted mean of its parts' (percentiles do not add up); it says how many
//! edges it merged.
//!
//! The statement is built as a `sqlparser` AST: a fixed template (no user text in it) is parsed,
//! then the KFL filter's AST and the expanded namespaces (as literals) are put in its place.
use crate::columns::{column, min_opt, ms_column};
use crate::error::{Error, Result};
use crate::prune;
use crate::session::{QueryRequest, Store};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use podwire_schemas::Table;
use podwire_schemas::connections::{col, outcome};
use podwire_schemas::endpoint::Side;
use serde::Serialize;
use sqlparser::ast as sql;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

/// How finely in-cluster endpoints are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One node per namespace.
    Namespace,
    /// One node per workload (Deployment, StatefulSet, …); pods without one stay pods.
    Workload,
    /// One node per pod.
    Pod,
}

impl Level {
    /// Every level, for messages.
    pub const ALL: [Level; 3] = [Level::Namespace, Level::Workload, Level::Pod];

    /// The level's name in the API and CLI.
    pub fn name(self) -> &'static str {
        match self {
            Level::Namespace => "namespace",
            Level::Workload => "workload",
            Level::Pod => "pod",
        }
    }

    /// The level named `name`.
    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// Outcomes counted in `failed`, each a column of the map query: every outcome but `closed`,
/// `open` and `answered`.
pub const FAILURES: [&str; 6] = [
    outcome::REFUSED,
    outcome::RESET,
    outcome::NO_ANSWER,
    outcome::ABORTED,
    outcome::UNREACHABLE,
    outcome::MIDSTREAM,
];

/// The default of `max_nodes`.
pub const DEFAULT_MAX_NODES: usize = 300;

/// Ports listed per edge.
const TOP_PORTS: usize = 5;

/// Without a time range the map covers this much before the newest connection.
pub const DEFAULT_WINDOW_MS: i64 = 3_600_000;

/// What to draw.
#[derive(Debug, Clone)]
pub struct MapRequest<'a> {
    /// The KFL filter, time range and "now"; `limit` is ignored (a map has no row order).
    pub query: QueryRequest<'a>,
    /// How finely in-cluster endpoints are drawn.
    pub level: Level,
    /// Only these namespaces are drawn at `level`, the others as one node each; `None`: all.
    pub expand: Option<Vec<String>>,
    /// At most this many nodes (namespace boxes not counted); the lightest are folded.
    pub max_nodes: usize,
}

/// A map: nodes, edges, and the SQL that computed them.
#[derive(Debug, Clone, Serialize)]
pub struct Map {
    /// The level in-cluster endpoints are drawn at.
    pub level: Level,
    /// The window's start (epoch ms), `None` when open.
    pub from_ms: Option<i64>,
    /// The window's end, exclusive (epoch ms), `None` when open.
    pub to_ms: Option<i64>,
    /// Endpoints, heaviest first; namespace boxes last.
    pub nodes: Vec<Node>,
    /// Who talked to whom, heaviest first.
    pub edges: Vec<Edge>,
    /// What `max_nodes` folded, if anything.
    pub folded: Option<Folded>,
    /// The statement that ran.
    pub sql: String,
}

/// One endpoint of the map.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// `ns:…`, `wl:…`, `pod:…`, `svc:…`, `ext:…`, `node:…`, `unknown:…` or `other:…`.
    pub id: String,
    /// The name to show.
    pub label: String,
    /// `namespace`, `workload`, `pod`, `service`, `external`, `node`, `unknown` or `other`.
    pub kind: &'static str,
    /// The namespace ("" outside the cluster).
    pub namespace: String,
    /// The namespace box this node is drawn in (`ns:<namespace>`), for expanded namespaces.
    pub parent: Option<String>,
    /// True for a namespace box: it holds nodes and has no traffic of its own.
    #[serde(rename = "box", skip_serializing_if = "std::ops::Not::not")]
    pub is_box: bool,
    /// Connections this node took part in (each once, also when it talked to itself).
    pub connections: u64,
    /// Bytes it sent and received.
    pub bytes: u64,
    /// KFL clauses that select the rows where this node is the initiator (`src`) or the
    /// responder (`dst`); `None` for folded nodes.
    #[serde(rename = "match")]
    pub matches: Option<Match>,
}

/// KFL clauses selecting one node's rows.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    /// Rows this node initiated.
    pub src: String,
    /// Rows this node answered.
    pub dst: String,
}

/// Traffic from one node to another.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// `source→target`.
    pub id: String,
    /// The initiators' node.
    pub source: String,
    /// The responders' node.
    pub target: String,
    /// Connections (final rows).
    pub connections: u64,
    /// Failed connections by outcome (every outcome but `closed`, `open`, `answered`).
    pub failed: BTreeMap<String, u64>,
    /// IP bytes sent by the initiators.
    pub bytes_sent: u64,
    /// IP bytes sent by the responders.
    pub bytes_received: u64,
    /// Packets both ways.
    pub packets: u64,
    /// Median TCP handshake RTT, milliseconds.
    pub rtt_p50_ms: Option<f64>,
    /// 95th percentile TCP handshake RTT, milliseconds.
    pub rtt_p95_ms: Option<f64>,
    /// Retransmitted segments, both ways.
    pub retransmissions: u64,
    /// Transport protocols seen.
    pub protocols: Vec<String>,
    /// The busiest responder ports.
    pub top_ports: Vec<Port>,
    /// Earliest connection start, epoch ms.
    pub first_seen: Option<i64>,
    /// Latest packet, epoch ms.
    pub last_seen: Option<i64>,
    /// A KFL clause that selects exactly this edge's rows; `None` when folded.
    pub kfl: Option<String>,
    /// How many edges were merged into this one by folding (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub merged: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A responder port of an edge.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Port {
    /// The port (ICMP: the message code).
    pub port: i64,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// Connections to it.
    pub connections: u64,
}

/// What folding did.
#[derive(Debug, Clone, Serialize)]
pub struct Folded {
    /// Nodes folded into `other:` nodes.
    pub nodes: usize,
    /// Edges merged away.
    pub edges: usize,
    /// The limit that was applied.
    pub max_nodes: usize,
}

/// The connections-table filter of a request, time range and partition predicates included:
/// `None` when the filter cannot match a connection (it selects only DNS entries, say).
pub(crate) fn connections_filter(
    store: &Store,
    request: &QueryRequest<'_>,
) -> Result<Option<sql::Expr>> {
    table_filter(store, request, Table::Connections)
}

/// [`connections_filter`] for any table.
pub(crate) fn table_filter(
    store: &Store,
    request: &QueryRequest<'_>,
    table: Table,
) -> Result<Option<sql::Expr>> {
    let translation = store.translate(request)?;
    let Some(filter) = translation.filter(table) else { return Ok(None) };
    let mut filter = filter.cloned().unwrap_or_else(|| sql::Expr::value(sql::Value::Boolean(true)));
    if let Some(p) = prune::partition_predicate(translation.from_ms, translation.to_ms) {
        filter = and(p, filter);
    }
    Ok(Some(filter))
}

/// `a AND b`, each parenthesised.
fn and(a: sql::Expr, b: sql::Expr) -> sql::Expr {
    sql::Expr::BinaryOp {
        left: Box::new(sql::Expr::Nested(Box::new(a))),
        op: sql::BinaryOperator::And,
        right: Box::new(sql::Expr::Nested(Box::new(b))),
    }
}

/// Parses a fixed SQL template and puts `values` where the identifiers named by their keys
/// stand.
pub(crate) fn fill_template(
    template: &str,
    values: &HashMap<&str, sql::Expr>,
) -> Result<sql::Statement> {
    let dialect = sqlparser::dialect::GenericDialect {};
    let mut statements = sqlparser::parser::Parser::parse_sql(&dialect, template)
        .map_err(|e| Error::Internal(format!("a query template does not parse: {e}")))?;
    let Some(mut statement) = statements.pop() else {
        return Err(Error::Internal("an empty query template".into()));
    };
    let _ = sql::visit_expressions_mut(&mut statement, |expr| {
        if let sql::Expr::Identifier(id) = expr
            && let Some(v) = values.get(id.value.as_str())
        {
            *expr = v.clone();
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(statement)
}

/// `query` with no time range given: the last [`DEFAULT_WINDOW_MS`] of data (of the store's
/// connections), up to the newest capture record if that is later (an agent reports its last
/// minute after its traffic: a report on the window counts it); otherwise as it is.
///
/// # Errors
/// What DataFusion says.
pub(crate) async fn default_window<'a>(
    store: &Store,
    mut query: QueryRequest<'a>,
) -> Result<QueryRequest<'a>> {
    if query.from_ms.is_none()
        && query.to_ms.is_none()
        && let (_, Some(last)) = data_bounds(store).await?
    {
        let reported = last_report(store).await?.unwrap_or(last);
        query.to_ms = Some(last.max(reported) + 1);
        query.from_ms = Some(last + 1 - DEFAULT_WINDOW_MS);
    }
    Ok(query)
}

/// The start of the newest capture record (epoch ms), `None` when there is none.
async fn last_report(store: &Store) -> Result<Option<i64>> {
    let statement = fill_template(
        &format!(
            "SELECT max({}) AS last FROM capture_stats",
            podwire_schemas::capture_stats::col::TS
        ),
        &HashMap::new(),
    )?;
    let batches = store.rows(statement).await?;
    Ok(batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| ms_at(b, "last", 0))
        .transpose()?
        .flatten())
}

/// The newest connection start in the store (epoch ms), `None` when it has none.
///
/// # Errors
/// What DataFusion says.
pub async fn data_bounds(store: &Store) -> Result<(Option<i64>, Option<i64>)> {
    let statement = fill_template(
        "SELECT min(start_ts) AS first, max(start_ts) AS last FROM connections",
        &HashMap::new(),
    )?;
    let batches = store.rows(statement).await?;
    let mut first = None;
    let mut last = None;
    for b in &batches {
        first = first.or(ms_at(b, "first", 0)?);
        last = last.or(ms_at(b, "last", 0)?);
    }
    Ok((first, last))
}

/// The grouping keys of one side (`src` or `dst`) at `level`, as `(expression, alias)`: the
/// raw name columns, each kept only where the node-id rules need it (NULL elsewhere, so that a
/// namespace node is not split by pod addresses). The ids are built from these keys by
/// [`node_id`], once per group: grouping by the plain columns is cheaper than building an id
/// string for every row (0.31 s -> 0.24 s for a day of the bench store at pod level).
/// `__<side>_expanded__` stands for "this namespace is drawn at `level`".
pub(crate) fn side_keys(side: Side, level: Level) -> Vec<(String, String)> {
    let c = |suffix: &str| side.column(suffix);
    let (ns, node) = (c("namespace"), c("node"));
    let ip = match side {
        Side::Src => col::SRC_IP,
        Side::Dst => col::DST_IP,
    };
    let exp = format!("__{}expanded__", side.prefix());
    let mut keys = vec![(ns.clone(), key(side, "namespace"))];
    if level != Level::Namespace {
        let (pod, workload, service) = (c("pod"), c("workload"), c("service"));
        if level == Level::Workload {
            keys.push((
                format!("CASE WHEN {exp} AND {pod} <> '' THEN {workload} END"),
                key(side, "workload"),
            ));
            keys.push((
                format!("CASE WHEN {exp} AND {workload} = '' THEN {pod} END"),
                key(side, "pod"),
            ));
        } else {
            keys.push((format!("CASE WHEN {exp} THEN {pod} END"), key(side, "pod")));
        }
        keys.push((
            format!("CASE WHEN {exp} AND {pod} = '' THEN {service} END"),
            key(side, "service"),
        ));
    }
    keys.push((format!("CASE WHEN {ns} = '' THEN {node} END"), key(side, "node")));
    let outside = format!("{ns} = '' AND {node} = ''");
    if side == Side::Dst {
        let dns = col::DST_DNS_NAME;
        keys.push((format!("CASE WHEN {outside} THEN {dns} END"), key(side, "dns")));
        keys.push((format!("CASE WHEN {outside} AND {dns} = '' THEN {ip} END"), key(side, "ip")));
    } else {
        keys.push((format!("CASE WHEN {outside} THEN {ip} END"), key(side, "ip")));
    }
    keys
}

/// The alias of a grouping key: `src_key_pod`.
fn key(side: Side, what: &str) -> String {
    format!("{}key_{what}", side.prefix())
}

/// The map query at `level`: one group per (source keys, target keys, protocol, responder port).
fn map_sql(level: Level) -> String {
    let failures: String = FAILURES
        .iter()
        .map(|o| {
            format!(
                ", sum(CASE WHEN {fin} AND {out} = '{o}' THEN 1 ELSE 0 END) AS \"failed_{o}\"",
                fin = col::IS_FINAL,
                out = col::OUTCOME,
            )
        })
        .collect();
    let keys: Vec<(String, String)> =
        side_keys(Side::Src, level).into_iter().chain(side_keys(Side::Dst, level)).collect();
    let inner: Vec<String> = keys.iter().map(|(e, a)| format!("{e} AS {a}")).collect();
    let group: Vec<&str> = keys.iter().map(|(_, a)| a.as_str()).collect();
    let group = group.join(", ");
    format!(
        "SELECT {group}, {protocol}, {port}, \
           sum(CASE WHEN {fin} THEN 1 ELSE 0 END) AS connections{failures}, \
           sum({sb}) AS bytes_sent, sum({db}) AS bytes_received, \
           sum({sp} + {dp}) AS packets, \
           array_agg(rtt_us) FILTER (WHERE rtt_us IS NOT NULL) AS rtts_us, \
           sum({sr} + {dr}) AS retransmissions, \
           min({start}) AS first_seen, max({end}) AS last_seen \
         FROM (SELECT {inner}, {protocol}, {port}, {fin}, {out}, {sb}, {db}, {sp}, {dp}, {sr}, {dr}, \
                 CASE WHEN {fin} THEN CAST({rtt} AS DOUBLE) END AS rtt_us, {start}, {end} \
               FROM connections WHERE __filter__) AS ends \
         GROUP BY {group}, {protocol}, {port}",
        inner = inner.join(", "),
        protocol = col::PROTOCOL,
        port = col::DST_PORT,
        fin = col::IS_FINAL,
        out = col::OUTCOME,
        sb = col::SRC_BYTES,
        db = col::DST_BYTES,
        sp = col::SRC_PACKETS,
        dp = col::DST_PACKETS,
        sr = col::SRC_RETRANSMITS,
        dr = col::DST_RETRANSMITS,
        rtt = col::HANDSHAKE_RTT_US,
        start = col::START_TS,
        end = col::END_TS,
    )
}

/// The node id of one end from its grouping keys (see the table at the top).
pub(crate) fn node_id(keys: &SideKeys, row: usize) -> String {
    fn value(a: &Option<arrow::array::StringArray>, row: usize) -> &str {
        a.as_ref().filter(|a| !a.is_null(row)).map_or("", |a| a.value(row))
    }
    let at = |a| value(a, row);
    let ns = at(&keys.namespace);
    if !ns.is_empty() {
        let (workload, pod, service) = (at(&keys.workload), at(&keys.pod), at(&keys.service));
        return if !workload.is_empty() {
            format!("wl:{ns}/{workload}")
        } else if !pod.is_empty() {
            format!("pod:{ns}/{pod}")
        } else if !service.is_empty() {
            format!("svc:{ns}/{service}")
        } else {
            format!("ns:{ns}")
        };
    }
    let node = at(&keys.node);
    if !node.is_empty() {
        return format!("node:{node}");
    }
    let dns = at(&keys.dns);
    if !dns.is_empty() {
        return format!("ext:{dns}");
    }
    let ip = at(&keys.ip);
    if is_private(ip) { format!("unknown:{ip}") } else { format!("ext:{ip}") }
}

/// The grouping-key columns of one side in a result batch (`None`: not grouped at this level).
pub(crate) struct SideKeys {
    namespace: Option<arrow::array::StringArray>,
    workload: Option<arrow::array::StringArray>,
    pod: Option<arrow::array::StringArray>,
    service: Option<arrow::array::StringArray>,
    node: Option<arrow::array::StringArray>,
    dns: Option<arrow::array::StringArray>,
    ip: Option<arrow::array::StringArray>,
}

impl SideKeys {
    pub(crate) fn of(b: &RecordBatch, side: Side) -> Result<SideKeys> {
        let text = |what: &str| -> Result<Option<arrow::array::StringArray>> {
            b.column_by_name(&key(side, what))
                .map(|c| Ok(cast(c, &DataType::Utf8)?.as_string::<i32>().clone()))
                .transpose()
        };
        Ok(SideKeys {
            namespace: text("namespace")?,
            workload: text("workload")?,
            pod: text("pod")?,
            service: text("service")?,
            node: text("node")?,
            dns: text("dns")?,
            ip: text("ip")?,
        })
    }
}

/// Addresses that are not on the internet: RFC 1918, CGNAT 100.64/10, loopback, link-local,
/// IPv6 ULA (fc00::/7), link-local (fe80::/10) and loopback. Not an address: not private.
pub(crate) fn is_private(ip: &str) -> bool {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            let [x, y, ..] = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || (x == 100 && (64..128).contains(&y))
        }
        Ok(std::net::IpAddr::V6(a)) => {
            let first = a.segments()[0];
            a.is_loopback() || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
        }
        Err(_) => false,
    }
}

/// `ns IN ('a', 'b')` for the expanded namespaces of one side; TRUE when all are.
pub(crate) fn expanded(side: Side, level: Level, expand: Option<&[String]>) -> sql::Expr {
    let all = sql::Expr::value(sql::Value::Boolean(level != Level::Namespace));
    let Some(list) = expand else { return all };
    if level == Level::Namespace {
        return all;
    }
    sql::Expr::InList {
        expr: Box::new(sql::Expr::Identifier(sql::Ident::new(
            side.column(podwire_schemas::endpoint::NAMESPACE),
        ))),
        list: list
            .iter()
            .map(|ns| sql::Expr::value(sql::Value::SingleQuotedString(ns.clone())))
            .collect(),
        negated: false,
    }
}

/// Draws the map.
///
/// # Errors
/// [`Error::Kfl`] for a bad filter; what DataFusion says.
pub async fn map(store: &Store, request: &MapRequest<'_>) -> Result<Map> {
    let query = default_window(store, request.query).await?;
    let level = request.level;
    let expand = request.expand.as_deref();
    let filter = connections_filter(store, &query)?;
    let no_rows = filter.is_none();
    let filter = filter.unwrap_or_else(|| sql::Expr::value(sql::Value::Boolean(false)));
    let values = HashMap::from([
        ("__filter__", filter),
        ("__src_expanded__", expanded(Side::Src, level, expand)),
        ("__dst_expanded__", expanded(Side::Dst, level, expand)),
    ]);
    let statement = fill_template(&map_sql(level), &values)?;
    let sql_text = format!("{statement:#}");
    let batches = if no_rows { Vec::new() } else { store.rows(statement).await? };
    let mut edges: Edges = Edges::default();
    for b in &batches {
        read_rows(b, &mut edges)?;
    }
    for (edge, rtts) in edges.values_mut() {
        edge.top_ports.sort_by(|a, b| b.connections.cmp(&a.connections).then(a.port.cmp(&b.port)));
        let protocols: BTreeSet<String> =
            edge.top_ports.iter().map(|p| p.protocol.clone()).collect();
        edge.protocols = protocols.into_iter().collect();
        edge.top_ports.truncate(TOP_PORTS);
        rtts.sort_by(f64::total_cmp);
        edge.rtt_p50_ms = percentile(rtts, 0.5).map(|us| us / 1000.0);
        edge.rtt_p95_ms = percentile(rtts, 0.95).map(|us| us / 1000.0);
    }
    let mut edges: Vec<Edge> = edges.into_values().map(|(e, _)| e).collect();
    let folded = fold(&mut edges, request.max_nodes);
    let nodes = nodes(&edges, level);
    for e in &mut edges {
        e.kfl = match (node_match(&e.source), node_match(&e.target)) {
            (Some(s), Some(t)) if e.merged == 0 => {
                Some(format!("{CONNECTIONS_ONLY}{} and {}", s.src, t.dst))
            }
            _ => None,
        };
    }
    edges.sort_by(|a, b| weight(b).cmp(&weight(a)).then_with(|| a.id.cmp(&b.id)));
    Ok(Map {
        level,
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        nodes,
        edges,
        folded,
        sql: sql_text,
    })
}

fn weight(e: &Edge) -> (u64, u64) {
    (e.connections, e.bytes_sent + e.bytes_received)
}

/// The `q` quantile of sorted `values`, interpolated linearly between the two nearest ranks
/// (DuckDB's `quantile_cont`, numpy's default).
pub(crate) fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let last = values.len().checked_sub(1)?;
    let rank = q * last as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let (a, b) = (values[lo.min(last)], values[hi.min(last)]);
    Some(a + (b - a) * (rank - lo as f64))
}

/// The edges being summed, by (source, target), with the handshake RTTs (µs) of each.
type Edges = hashbrown::HashMap<(String, String), (Edge, Vec<f64>)>;

/// Sums the grouped rows (one per edge and responder port) into edges, keeping each port's
/// connections and the handshake RTTs (µs) of each edge.
fn read_rows(b: &RecordBatch, edges: &mut Edges) -> Result<()> {
    let int = |name: &str| -> Result<arrow::array::Int64Array> {
        let c = column(b, name)?;
        Ok(cast(c, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
    };
    let (src, dst) = (SideKeys::of(b, Side::Src)?, SideKeys::of(b, Side::Dst)?);
    let protocol = cast(column(b, col::PROTOCOL)?, &DataType::Utf8)?;
    let protocol = protocol.as_string::<i32>();
    let port = int(col::DST_PORT)?;
    let connections = int("connections")?;
    let failed: Vec<(&str, arrow::array::Int64Array)> =
        FAILURES.iter().map(|o| Ok((*o, int(&format!("failed_{o}"))?))).collect::<Result<_>>()?;
    let (sent, received, packets) = (int("bytes_sent")?, int("bytes_received")?, int("packets")?);
    let retrans = int("retransmissions")?;
    let lists = cast(
        column(b, "rtts_us")?,
        &DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new_list_field(
            DataType::Float64,
            true,
        ))),
    )?;
    let lists = lists.as_list::<i32>();
    let first = ms_column(b, "first_seen")?;
    let last = ms_column(b, "last_seen")?;
    let count = |a: &arrow::array::Int64Array, i: usize| -> u64 {
        if a.is_null(i) { 0 } else { u64::try_from(a.value(i)).unwrap_or(0) }
    };
    for i in 0..b.num_rows() {
        let key = (node_id(&src, i), node_id(&dst, i));
        let (edge, rtts) = edges.entry(key).or_insert_with_key(|key| {
            let edge = Edge {
                id: format!("{}→{}", key.0, key.1),
                source: key.0.clone(),
                target: key.1.clone(),
                connections: 0,
                failed: BTreeMap::new(),
                bytes_sent: 0,
                bytes_received: 0,
                packets: 0,
                rtt_p50_ms: None,
                rtt_p95_ms: None,
                retransmissions: 0,
                protocols: Vec::new(),
                top_ports: Vec::new(),
                first_seen: None,
                last_seen: None,
                kfl: None,
                merged: 0,
            };
            (edge, Vec::new())
        });
        let n = count(&connections, i);
        edge.connections += n;
        for (o, a) in &failed {
            let k = count(a, i);
            if k > 0 {
                *edge.failed.entry((*o).to_owned()).or_default() += k;
            }
        }
        edge.bytes_sent += count(&sent, i);
        edge.bytes_received += count(&received, i);
        edge.packets += count(&packets, i);
        edge.retransmissions += count(&retrans, i);
        edge.first_seen = min_opt(edge.first_seen, first[i]);
        edge.last_seen = edge.last_seen.max(last[i]);
        // Every port row of the edge, also those with only interim rows in the window (no
        // connections): its protocol counts; the list is cut to the busiest later.
        edge.top_ports.push(Port {
            port: port.value(i),
            protocol: protocol.value(i).to_owned(),
            connections: n,
        });
        if !lists.is_null(i) {
            let values = lists.value(i);
            let values = values.as_primitive::<arrow::datatypes::Float64Type>();
            rtts.extend(values.iter().flatten());
        }
    }
    Ok(())
}

fn ms_at(b: &RecordBatch, name: &str, row: usize) -> Result<Option<i64>> {
    Ok(ms_column(b, name)?.get(row).copied().flatten())
}

/// The kind of a node id.
pub(crate) fn kind_of(id: &str) -> &'static str {
    match id.split_once(':').map(|(k, _)| k) {
        Some("ns") => "namespace",
        Some("wl") => "workload",
        Some("pod") => "pod",
        Some("svc") => "service",
        Some("ext") => "external",
        Some("node") => "node",
        Some("unknown") => "unknown",
        _ => "other",
    }
}

/// `(namespace, name)` of an in-cluster id (`wl:ns/name`), or `("", rest)`.
fn parts(id: &str) -> (&str, &str) {
    let rest = id.split_once(':').map_or(id, |(_, r)| r);
    match kind_of(id) {
        "namespace" => (rest, rest),
        "workload" | "pod" | "service" => rest.split_once('/').unwrap_or(("", rest)),
        _ => ("", rest),
    }
}

/// A KFL string literal.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The prefix that keeps an edge's clause to the `connections` table (the map's rows): the
/// namespace and address fields also match DNS transactions.
pub(crate) const CONNECTIONS_ONLY: &str = "!dns and ";

/// KFL clauses selecting a node's rows as initiator or responder, or `None` for folded nodes.
/// They are table-neutral: with `dns` they give the node's DNS transactions, with `!dns` its
/// connections. A node named by DNS (`ext:name`) is never an initiator: its `src` clause
/// matches nothing.
pub fn node_match(id: &str) -> Option<Match> {
    let (ns, name) = parts(id);
    let side = |s: &str| -> Option<String> {
        Some(match kind_of(id) {
            "namespace" => format!("{s}.namespace == {}", quote(ns)),
            "workload" => {
                format!("({s}.namespace == {} and {s}.workload == {})", quote(ns), quote(name))
            }
            "pod" => format!("({s}.namespace == {} and {s}.pod == {})", quote(ns), quote(name)),
            "service" => format!(
                "({s}.namespace == {} and {s}.pod == \"\" and {s}.service == {})",
                quote(ns),
                quote(name)
            ),
            "node" => format!("({s}.namespace == \"\" and {s}.node == {})", quote(name)),
            "external" | "unknown" => {
                // Mirrors the id rules: a dst named by DNS is matched by that name.
                let named = s == "dst" && kind_of(id) == "external" && !looks_like_ip(name);
                if named {
                    format!(
                        "(dst.namespace == \"\" and dst.node == \"\" and dst.dns == {})",
                        quote(name)
                    )
                } else if s == "dst" {
                    format!(
                        "(dst.namespace == \"\" and dst.node == \"\" and dst.dns == \"\" and dst.ip == {})",
                        quote(name)
                    )
                } else {
                    format!(
                        "({s}.namespace == \"\" and {s}.node == \"\" and {s}.ip == {})",
                        quote(name)
                    )
                }
            }
            _ => return None,
        })
    };
    Some(Match { src: side("src")?, dst: side("dst")? })
}

fn looks_like_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// Folds the lightest nodes beyond `max_nodes` into `other:` nodes and merges their edges.
fn fold(edges: &mut Vec<Edge>, max_nodes: usize) -> Option<Folded> {
    let mut weight: HashMap<&str, (u64, u64)> = HashMap::new();
    for e in edges.iter() {
        for id in [&e.source, &e.target] {
            let w = weight.entry(id.as_str()).or_default();
            w.0 += e.connections;
            w.1 += e.bytes_sent + e.bytes_received;
        }
    }
    if weight.len() <= max_nodes {
        return None;
    }
    let mut ranked: Vec<(&str, (u64, u64))> = weight.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    // Room for the `other:` nodes themselves: keep fewer until kept + others fits.
    let mut keep = max_nodes;
    let others = |keep: usize| -> BTreeSet<String> {
        ranked[keep.min(ranked.len())..].iter().map(|(id, _)| other_id(id)).collect()
    };
    while keep > 0 && keep + others(keep).len() > max_nodes {
        keep -= 1;
    }
    let kept: BTreeSet<String> = ranked[..keep].iter().map(|(id, _)| id.to_string()).collect();
    let folded_nodes = ranked.len() - keep;
    let rename = |id: &str| if kept.contains(id) { id.to_owned() } else { other_id(id) };
    let before = edges.len();
    let mut merged: BTreeMap<(String, String), Edge> = BTreeMap::new();
    for e in edges.drain(..) {
        let key = (rename(&e.source), rename(&e.target));
        match merged.get_mut(&key) {
            None => {
                let renamed = key.0 != e.source || key.1 != e.target;
                let mut e = e;
                e.id = format!("{}→{}", key.0, key.1);
                e.source = key.0.clone();
                e.target = key.1.clone();
                e.merged = usize::from(renamed);
                merged.insert(key, e);
            }
            Some(m) => merge(m, e),
        }
    }
    edges.extend(merged.into_values());
    Some(Folded { nodes: folded_nodes, edges: before - edges.len(), max_nodes })
}

/// The `other:` node a folded node goes into: per namespace for in-cluster ids, per kind else.
fn other_id(id: &str) -> String {
    match kind_of(id) {
        "workload" | "pod" | "service" => format!("other:{}", parts(id).0),
        kind => format!("other:{kind}"),
    }
}

fn merge(into: &mut Edge, e: Edge) {
    let weighted = |a: Option<f64>, wa: u64, b: Option<f64>, wb: u64| match (a, b) {
        (Some(a), Some(b)) if wa + wb > 0 => {
            Some((a * wa as f64 + b * wb as f64) / (wa + wb) as f64)
        }
        (a, b) => a.or(b),
    };
    into.rtt_p50_ms = weighted(into.rtt_p50_ms, into.connections, e.rtt_p50_ms, e.connections);
    into.rtt_p95_ms = weighted(into.rtt_p95_ms, into.connections, e.rtt_p95_ms, e.connections);
    into.connections += e.connections;
    for (o, n) in e.failed {
        *into.failed.entry(o).or_default() += n;
    }
    into.bytes_sent += e.bytes_sent;
    into.bytes_received += e.bytes_received;
    into.packets += e.packets;
    into.retransmissions += e.retransmissions;
    let protocols: BTreeSet<String> = into.protocols.drain(..).chain(e.protocols).collect();
    into.protocols = protocols.into_iter().collect();
    let mut ports: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for p in into.top_ports.drain(..).chain(e.top_ports) {
        *ports.entry((p.port, p.protocol)).or_default() += p.connections;
    }
    let mut ports: Vec<Port> = ports
        .into_iter()
        .map(|((port, protocol), connections)| Port { port, protocol, connections })
        .collect();
    ports.sort_by(|a, b| b.connections.cmp(&a.connections).then(a.port.cmp(&b.port)));
    ports.truncate(TOP_PORTS);
    into.top_ports = ports;
    into.first_seen = min_opt(into.first_seen, e.first_seen);
    into.last_seen = into.last_seen.max(e.last_seen);
    into.merged += e.merged.max(1);
}

/// The nodes of `edges`, heaviest first, then the namespace boxes of expanded namespaces.
fn nodes(edges: &[Edge], level: Level) -> Vec<Node> {
    let mut by_id: BTreeMap<String, Node> = BTreeMap::new();
    let mut boxes: BTreeSet<String> = BTreeSet::new();
    for e in edges {
        let ends: &[&String] =
            if e.source == e.target { &[&e.source] } else { &[&e.source, &e.target] };
        for id in ends {
            let node = by_id.entry((*id).clone()).or_insert_with(|| {
                let kind = kind_of(id);
                let (ns, name) = parts(id);
                let boxed = level != Level::Namespace
                    && matches!(kind, "workload" | "pod" | "service")
                    || (kind == "other"
                        && !ns_of_other(id).is_empty()
                        && level != Level::Namespace);
                let namespace = if kind == "other" { ns_of_other(id) } else { ns.to_owned() };
                let parent = boxed.then(|| format!("ns:{namespace}"));
                if let Some(p) = &parent {
                    boxes.insert(p.clone());
                }
                Node {
                    id: (*id).clone(),
                    label: match kind {
                        "other" => format!("other ({})", id.trim_start_matches("other:")),
                        _ => name.to_owned(),
                    },
                    kind,
                    namespace,
                    parent,
                    is_box: false,
                    connections: 0,
                    bytes: 0,
                    matches: node_match(id),
                }
            });
            node.connections += e.connections;
            node.bytes += e.bytes_sent + e.bytes_received;
        }
    }
    let mut nodes: Vec<Node> = by_id.into_values().collect();
    nodes.sort_by(|a, b| {
        (b.connections, b.bytes).cmp(&(a.connections, a.bytes)).then_with(|| a.id.cmp(&b.id))
    });
    for b in boxes {
        let ns = b.trim_start_matches("ns:").to_owned();
        // A collapsed namespace node of the same id (traffic from outside the box) keeps its
        // numbers; the box becomes that node.
        if let Some(n) = nodes.iter_mut().find(|n| n.id == b) {
            n.is_box = true;
            continue;
        }
        nodes.push(Node {
            id: b,
            label: ns.clone(),
            kind: "namespace",
            namespace: ns.clone(),
            parent: None,
            is_box: true,
            connections: 0,
            bytes: 0,
            matches: node_match(&format!("ns:{ns}")),
        });
    }
    nodes
}

/// The namespace of an `other:<namespace>` id, "" for `other:<kind>`.
fn ns_of_other(id: &str) -> String {
    let rest = id.trim_start_matches("other:");
    match rest {
        "namespace" | "external" | "node" | "unknown" | "other" => String::new(),
        ns => ns.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(s: &str, t: &str, connections: u64, bytes: u64) -> Edge {
        Edge {
            id: format!("{s}→{t}"),
            source: s.into(),
            target: t.into(),
            connections,
            failed: BTreeMap::from([("refused".to_owned(), 1)]),
            bytes_sent: bytes,
            bytes_received: 0,
            packets: connections * 3,
            rtt_p50_ms: Some(1.0),
            rtt_p95_ms: Some(2.0),
            retransmissions: 0,
            protocols: vec!["tcp".into()],
            top_ports: vec![Port { port: 80, protocol: "tcp".into(), connections }],
            first_seen: Some(1),
            last_seen: Some(2),
            kfl: None,
            merged: 0,
        }
    }

    #[test]
    fn folding_keeps_every_total_and_the_node_limit() {
        let mut edges: Vec<Edge> = (0..50)
            .map(|i| edge("wl:shop/web", &format!("ext:host{i}.example.com"), 50 - i, 100))
            .chain((0..10).map(|i| edge(&format!("pod:a/p{i}"), "ns:b", 1, 7)))
            .collect();
        let total: u64 = edges.iter().map(|e| e.connections).sum();
        let bytes: u64 = edges.iter().map(|e| e.bytes_sent).sum();
        let folded = fold(&mut edges, 10).expect("folds");
        let nodes = nodes(&edges, Level::Workload);
        let drawn = nodes.iter().filter(|n| !n.is_box).count();
        assert!(drawn <= 10, "{drawn} nodes drawn");
        assert_eq!(edges.iter().map(|e| e.connections).sum::<u64>(), total);
        assert_eq!(edges.iter().map(|e| e.bytes_sent).sum::<u64>(), bytes);
        assert_eq!(edges.iter().map(|e| e.failed["refused"]).sum::<u64>(), 60);
        assert!(nodes.iter().any(|n| n.id == "other:external"));
        assert!(nodes.iter().any(|n| n.id == "other:a" && n.parent.as_deref() == Some("ns:a")));
        assert_eq!(folded.max_nodes, 10);
        assert!(folded.nodes > 0 && folded.edges > 0);
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), Some(96.0));
    }

    #[test]
    fn matches_mirror_the_id_rules() {
        let m = node_match("ext:api.example.com").expect("external");
        assert!(m.dst.contains("dst.dns == \"api.example.com\""), "{}", m.dst);
        let m = node_match("ext:203.0.113.9").expect("external by ip");
        assert!(m.dst.contains("dst.dns == \"\" and dst.ip == \"203.0.113.9\""), "{}", m.dst);
        let m = node_match("wl:shop/web").expect("workload");
        assert_eq!(m.src, "(src.namespace == \"shop\" and src.workload == \"web\")");
        assert!(node_match("other:external").is_none());
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.9.9",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "febf::1",
            "::1",
        ] {
            assert!(is_private(ip), "{ip}");
        }
        for ip in
            ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "11.0.0.1", "fec0::1", "", "x"]
        {
            assert!(!is_private(ip), "{ip}");
        }
    }

    #[test]
    fn keys_name_the_nodes_as_the_id_rules_say() {
        use arrow::array::StringArray;
        let a = |v: &[Option<&str>]| Some(StringArray::from(v.to_vec()));
        let keys = SideKeys {
            namespace: a(&[
                Some("shop"),
                Some("shop"),
                Some("shop"),
                Some("shop"),
                Some(""),
                Some(""),
                Some(""),
                Some(""),
            ]),
            workload: a(&[Some("web"), None, None, None, None, None, None, None]),
            pod: a(&[None, Some("web-1"), Some(""), None, None, None, None, None]),
            service: a(&[None, None, Some("cart"), None, None, None, None, None]),
            node: a(&[None, None, None, None, Some("n1"), None, None, None]),
            dns: a(&[None, None, None, None, None, Some("api.example.com"), None, None]),
            ip: a(&[None, None, None, None, None, None, Some("10.9.9.9"), Some("8.8.8.8")]),
        };
        let ids: Vec<String> = (0..8).map(|i| node_id(&keys, i)).collect();
        assert_eq!(
            ids,
            [
                "wl:shop/web",
                "pod:shop/web-1",
                "svc:shop/cart",
                "ns:shop",
                "node:n1",
                "ext:api.example.com",
                "unknown:10.9.9.9",
                "ext:8.8.8.8"
            ]
        );
        for level in Level::ALL {
            let sql = map_sql(level);
            assert!(sql.contains("src_key_namespace") && sql.contains("dst_key_dns"), "{sql}");
            assert_eq!(sql.contains("src_key_workload"), level == Level::Workload, "{sql}");
            assert!(fill_template(&sql, &HashMap::new()).is_ok(), "{sql}");
        }
    }
}
