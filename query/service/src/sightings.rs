//! Where a name or an address was seen: both ends of the connections of a window, grouped by
//! (address, namespace, pod, the column asked about). `why` names who held a stale endpoint's
//! address before and after; `why-not` says when and at which address a named pod was seen,
//! and which names exist close to one that was never seen.
use crate::columns::{ints, ms_column, strings};
use crate::error::Result;
use crate::map::{fill_template, table_filter};
use crate::session::{QueryRequest, Store};
use podwire_schemas::Table;
use podwire_schemas::connections::col;
use podwire_schemas::endpoint::{self, Side};
use sqlparser::ast as sql;
use std::collections::HashMap;

/// One (address, namespace, pod, value) seen at either end of connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sighting {
    pub(crate) ip: String,
    pub(crate) namespace: String,
    pub(crate) pod: String,
    /// The value of the column asked about.
    pub(crate) value: String,
    pub(crate) first_ms: Option<i64>,
    pub(crate) last_ms: Option<i64>,
    /// Connections (final rows) it is in.
    pub(crate) connections: u64,
}

impl Sighting {
    /// `namespace/pod`, or the address when no pod held it.
    pub(crate) fn who(&self) -> String {
        if self.pod.is_empty() {
            self.ip.clone()
        } else {
            format!("{}/{}", self.namespace, self.pod)
        }
    }
}

/// The endpoint column `suffix` (`ip`, `pod`, `name`, `dns_name`, ...) of both ends (only the
/// responder's for `dns_name`), as `(side column, source alias)` pairs.
fn ends(suffix: &str) -> Vec<String> {
    let sides: &[Side] =
        if suffix == col::DNS_NAME_SUFFIX { &[Side::Dst] } else { &[Side::Src, Side::Dst] };
    sides.iter().map(|s| s.column(suffix)).collect()
}

/// The rows of both ends of the window's connections whose column `suffix` is one of
/// `values`, grouped, first seen first.
///
/// # Errors
/// What DataFusion says.
pub(crate) async fn sightings(
    store: &Store,
    window: &QueryRequest<'_>,
    suffix: &str,
    values: &[String],
    sqls: &mut Vec<String>,
) -> Result<Vec<Sighting>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let Some(filter) = window_filter(store, window)? else {
        return Ok(Vec::new());
    };
    let selects: Vec<String> = ends(suffix)
        .iter()
        .map(|c| {
            let side = if c.starts_with("src_") { Side::Src } else { Side::Dst };
            format!(
                "SELECT {ip} AS ip, {ns} AS ns, {pod} AS pod, {c} AS v, {ts} AS ts, \
                 CASE WHEN {fin} THEN 1 ELSE 0 END AS fin FROM connections WHERE __window__",
                ip = side.column(col::IP_SUFFIX),
                ns = side.column(endpoint::NAMESPACE),
                pod = side.column(endpoint::POD),
                ts = col::START_TS,
                fin = col::IS_FINAL,
            )
        })
        .collect();
    let template = format!(
        "SELECT ip, ns, pod, v, min(ts) AS first, max(ts) AS last, sum(fin) AS n FROM ({}) AS t \
         WHERE __values__ GROUP BY ip, ns, pod, v ORDER BY first, ip, ns, pod",
        selects.join(" UNION ALL ")
    );
    let list = sql::Expr::InList {
        expr: Box::new(sql::Expr::Identifier(sql::Ident::new("v"))),
        list: values
            .iter()
            .map(|v| sql::Expr::value(sql::Value::SingleQuotedString(v.clone())))
            .collect(),
        negated: false,
    };
    let statement =
        fill_template(&template, &HashMap::from([("__window__", filter), ("__values__", list)]))?;
    sqls.push(format!("{statement:#}"));
    let mut out = Vec::new();
    for b in &store.rows(statement).await? {
        let (ip, ns, pod, v) =
            (strings(b, "ip")?, strings(b, "ns")?, strings(b, "pod")?, strings(b, "v")?);
        let (first, last, n) = (ms_column(b, "first")?, ms_column(b, "last")?, ints(b, "n")?);
        for i in 0..b.num_rows() {
            out.push(Sighting {
                ip: ip[i].clone(),
                namespace: ns[i].clone(),
                pod: pod[i].clone(),
                value: v[i].clone(),
                first_ms: first[i],
                last_ms: last[i],
                connections: n[i].and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// The connections table's filter for the window alone (the request's KFL left out); `None`
/// when no partition can hold a row of it.
fn window_filter(store: &Store, window: &QueryRequest<'_>) -> Result<Option<sql::Expr>> {
    table_filter(store, &QueryRequest { kfl: "", ..*window }, Table::Connections)
}

/// The distinct non-empty values of the endpoint column `suffix` at either end in the window
/// (at most `limit`).
///
/// # Errors
/// What DataFusion says.
pub(crate) async fn values(
    store: &Store,
    window: &QueryRequest<'_>,
    suffix: &str,
    limit: usize,
    sqls: &mut Vec<String>,
) -> Result<Vec<String>> {
    let Some(filter) = window_filter(store, window)? else {
        return Ok(Vec::new());
    };
    let selects: Vec<String> = ends(suffix)
        .iter()
        .map(|c| format!("SELECT {c} AS v FROM connections WHERE __window__"))
        .collect();
    let template = format!(
        "SELECT DISTINCT v FROM ({}) AS t WHERE v <> '' ORDER BY v LIMIT {limit}",
        selects.join(" UNION ALL ")
    );
    let statement = fill_template(&template, &HashMap::from([("__window__", filter)]))?;
    sqls.push(format!("{statement:#}"));
    let mut out = Vec::new();
    for b in &store.rows(statement).await? {
        out.extend(strings(b, "v")?);
    }
    Ok(out)
}

/// The addresses the DNS answered for `name` in the window, with the first and last answer.
///
/// # Errors
/// What DataFusion says.
pub(crate) async fn answers(
    store: &Store,
    window: &QueryRequest<'_>,
    name: &str,
    sqls: &mut Vec<String>,
) -> Result<Vec<(String, Option<i64>, Option<i64>)>> {
    use podwire_schemas::dns::col as d;
    let Some(filter) = table_filter(store, &QueryRequest { kfl: "", ..*window }, Table::Dns)?
    else {
        return Ok(Vec::new());
    };
    let template = format!(
        "SELECT a, min(ts) AS first, max(ts) AS last FROM \
         (SELECT unnest({ips}) AS a, {ts} AS ts FROM dns WHERE __window__ AND {q} = __name__) AS t \
         GROUP BY a ORDER BY a",
        ips = d::ANSWER_IPS,
        ts = d::TS,
        q = d::QUERY_NAME
    );
    let name = sql::Expr::value(sql::Value::SingleQuotedString(name.to_owned()));
    let statement =
        fill_template(&template, &HashMap::from([("__window__", filter), ("__name__", name)]))?;
    sqls.push(format!("{statement:#}"));
    let mut out = Vec::new();
    for b in &store.rows(statement).await? {
        let (a, first, last) = (strings(b, "a")?, ms_column(b, "first")?, ms_column(b, "last")?);
        for i in 0..b.num_rows() {
            out.push((a[i].clone(), first[i], last[i]));
        }
    }
    Ok(out)
}
