//! Connections over time for a KFL filter: the dashboard's histogram, on which a window is
//! brushed. One grouped query over `connections`: a connection is counted in the bucket where
//! its final row starts (the same rows the map counts), failed ones (any outcome but `closed`,
//! `open`, `answered`) also apart.
use crate::error::Result;
use crate::map::{self, FAILURES};
use crate::session::{QueryRequest, Store};
use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use serde::Serialize;
use sqlparser::ast as sql;
use std::collections::HashMap;

/// Bucket widths a timeline picks from, in ms: the smallest that gives at most the buckets
/// asked for.
const WIDTHS_MS: [i64; 17] = [
    1_000,
    5_000,
    10_000,
    30_000,
    60_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
    2_592_000_000,
    31_536_000_000,
];

/// Buckets asked for when the request names none.
pub const DEFAULT_BUCKETS: usize = 120;

/// Connections over time.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// The first bucket's start, epoch ms (`None`: the store has no connections).
    pub from_ms: Option<i64>,
    /// The end of the window, exclusive.
    pub to_ms: Option<i64>,
    /// The width of a bucket.
    pub bucket_ms: i64,
    /// Every bucket of the window, empty ones included, in time order.
    pub buckets: Vec<Bucket>,
    /// The store's first connection start, epoch ms.
    pub data_from_ms: Option<i64>,
    /// The store's last connection start, epoch ms.
    pub data_to_ms: Option<i64>,
    /// The statement that ran.
    pub sql: String,
}

/// One bar of the histogram.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Bucket {
    /// Start, epoch ms.
    pub t: i64,
    /// Connections whose final row starts in the bucket.
    pub connections: u64,
    /// Of those, the failed ones.
    pub failed: u64,
}

/// The histogram of `request` in about `buckets` bars; without a time range, over the store's
/// whole history.
///
/// # Errors
/// [`crate::Error::Kfl`] for a bad filter; what DataFusion says.
pub async fn timeline(
    store: &Store,
    request: &QueryRequest<'_>,
    buckets: usize,
) -> Result<Timeline> {
    let (data_from, data_to) = map::data_bounds(store).await?;
    let from = request.from_ms.or(data_from);
    let to = request.to_ms.or(data_to.map(|t| t + 1));
    let buckets = buckets.clamp(1, 2_000);
    let span = match (from, to) {
        (Some(f), Some(t)) if t > f => t - f,
        _ => 1_000,
    };
    let width = WIDTHS_MS
        .iter()
        .copied()
        .find(|w| ceil_div(span, *w) <= buckets as i64)
        .unwrap_or(WIDTHS_MS[WIDTHS_MS.len() - 1]);
    let origin = from.map_or(0, |f| f.div_euclid(width) * width);
    let mut query = *request;
    query.from_ms = from;
    query.to_ms = to;
    let filter = map::connections_filter(store, &query)?;
    let number = |n: i64| sql::Expr::value(sql::Value::Number(n.to_string(), false));
    let failures: Vec<sql::Expr> = FAILURES
        .iter()
        .map(|o| sql::Expr::value(sql::Value::SingleQuotedString((*o).to_owned())))
        .collect();
    let values = HashMap::from([
        (
            "__filter__",
            filter.clone().unwrap_or_else(|| sql::Expr::value(sql::Value::Boolean(false))),
        ),
        ("__origin_us__", number(origin.saturating_mul(1000))),
        ("__width_us__", number(width.saturating_mul(1000))),
        (
            "__failed__",
            sql::Expr::InList {
                expr: Box::new(sql::Expr::Identifier(sql::Ident::new("outcome"))),
                list: failures,
                negated: false,
            },
        ),
    ]);
    let statement = map::fill_template(
        "SELECT (CAST(start_ts AS BIGINT) - __origin_us__) / __width_us__ AS bucket, \
           count(*) AS connections, \
           sum(CASE WHEN __failed__ THEN 1 ELSE 0 END) AS failed \
         FROM connections WHERE is_final AND (__filter__) GROUP BY 1 ORDER BY 1",
        &values,
    )?;
    let sql_text = format!("{statement:#}");
    let batches = if filter.is_none() { Vec::new() } else { store.rows(statement).await? };
    let count = match (from, to) {
        (Some(f), Some(t)) if t > f => usize::try_from(ceil_div(t - origin, width)).unwrap_or(0),
        _ => 0,
    };
    let mut out: Vec<Bucket> = (0..count)
        .map(|i| Bucket { t: origin + i as i64 * width, connections: 0, failed: 0 })
        .collect();
    for b in &batches {
        let int = |name: &str| -> Result<arrow::array::Int64Array> {
            let c = b.column_by_name(name).ok_or_else(|| {
                crate::Error::Internal(format!("the timeline query returned no `{name}`"))
            })?;
            Ok(cast(c, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
        };
        let (bucket, connections, failed) = (int("bucket")?, int("connections")?, int("failed")?);
        for i in 0..b.num_rows() {
            if bucket.is_null(i) {
                continue;
            }
            let Some(slot) = usize::try_from(bucket.value(i)).ok().and_then(|k| out.get_mut(k))
            else {
                continue;
            };
            slot.connections += u64::try_from(connections.value(i)).unwrap_or(0);
            slot.failed += u64::try_from(failed.value(i)).unwrap_or(0);
        }
    }
    Ok(Timeline {
        from_ms: from.map(|_| origin),
        to_ms: to,
        bucket_ms: width,
        buckets: out,
        data_from_ms: data_from,
        data_to_ms: data_to,
        sql: sql_text,
    })
}

/// `a / b` rounded up, for `a >= 0`, `b > 0` (`i64::div_ceil` is not stable).
fn ceil_div(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}
