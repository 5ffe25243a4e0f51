//! How many rows a query's filters keep, estimated from a sample of the store: the measure
//! [`crate::pushdown`] decides by when a filter's shape does not settle it.
//!
//! A few hours of each filtered table are sampled, spread over the hours the store holds in
//! the query's range (all of them when the range is open): up to [`SAMPLE_HOURS`] hours,
//! [`SAMPLE_ROWS`] rows of each, read as one DataFusion query that decodes only the filter's
//! columns. On the 10 M-row benchmark store that costs a few milliseconds: the hours are found
//! by listing two levels of folders (dates, then the hours of at most three dates), and each
//! sampled hour is one file's first rows.
use crate::catalog::{DATE, HOUR};
use crate::error::Result;
use arrow::array::{Array as _, Int64Array};
use datafusion::common::tree_node::{Transformed, TreeNode as _};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{Expr, lit, when};
use datafusion::prelude::{SessionContext, col};
use std::path::Path;

/// Hours sampled per table.
pub const SAMPLE_HOURS: usize = 3;
/// Rows read from each sampled hour.
pub const SAMPLE_ROWS: usize = 20_000;

/// What a sample of one or more tables said: rows read, and rows the filters kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Rows sampled.
    pub rows: u64,
    /// Of those, rows the filter kept.
    pub kept: u64,
}

impl Kept {
    /// The fraction kept, or `None` for an empty sample.
    pub fn fraction(self) -> Option<f64> {
        (self.rows > 0).then(|| self.kept as f64 / self.rows as f64)
    }

    fn add(&mut self, other: Kept) {
        self.rows += other.rows;
        self.kept += other.kept;
    }
}

/// Samples every `(table, predicate)` over the hours the store at `root` holds in
/// `[from_ms, to_ms)`, and adds up what the predicates keep.
///
/// # Errors
/// When a folder cannot be listed or the sample query fails (the caller falls back on the
/// filter's shape).
pub async fn kept(
    ctx: &SessionContext,
    root: &Path,
    scans: &[(TableReference, Expr)],
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Kept> {
    let mut total = Kept::default();
    for (table, predicate) in scans {
        let hours = hours(ctx, root, table.table(), from_ms, to_ms).await?;
        total.add(kept_in(ctx, table, predicate, &hours).await?);
    }
    Ok(total)
}

/// Rows of `table` in the sampled `hours`, and how many of them `predicate` keeps.
async fn kept_in(
    ctx: &SessionContext,
    table: &TableReference,
    predicate: &Expr,
    hours: &[(String, String)],
) -> Result<Kept> {
    // The predicate's columns are qualified by the scan's name; the sample's columns are the
    // same table's.
    let predicate = predicate
        .clone()
        .transform_up(|e| match e {
            Expr::Column(c) if c.relation.is_some() => {
                Ok(Transformed::yes(Expr::Column(Column::new_unqualified(c.name))))
            }
            e => Ok(Transformed::no(e)),
        })?
        .data;
    let mut sample: Option<datafusion::dataframe::DataFrame> = None;
    for (date, hour) in hours {
        let part = ctx
            .table(table.clone())
            .await?
            .filter(col(DATE).eq(lit(date.as_str())).and(col(HOUR).eq(lit(hour.as_str()))))?
            .limit(0, Some(SAMPLE_ROWS))?;
        sample = Some(match sample {
            None => part,
            Some(s) => s.union(part)?,
        });
    }
    let Some(sample) = sample else { return Ok(Kept::default()) };
    let kept = when(predicate, lit(1i64)).otherwise(lit(0i64))?;
    let batches = sample
        .aggregate(vec![], vec![count(lit(1)).alias("rows"), sum(kept).alias("kept")])?
        .collect()
        .await?;
    let mut out = Kept::default();
    for b in &batches {
        let rows = b.column(0).as_any().downcast_ref::<Int64Array>();
        let kept = b.column(1).as_any().downcast_ref::<Int64Array>();
        if let (Some(rows), Some(kept)) = (rows, kept) {
            for i in 0..b.num_rows() {
                out.rows += u64::try_from(rows.value(i)).unwrap_or(0);
                out.kept +=
                    if kept.is_null(i) { 0 } else { u64::try_from(kept.value(i)).unwrap_or(0) };
            }
        }
    }
    Ok(out)
}

/// Up to [`SAMPLE_HOURS`] `(date, hour)` partitions of `table` that overlap `[from_ms, to_ms)`,
/// spread evenly over those the store holds: the dates are listed, at most three of them
/// (first, middle, last) have their hours listed, and the hours are spread over those.
async fn hours(
    ctx: &SessionContext,
    root: &Path,
    table: &str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Vec<(String, String)>> {
    let url = ListingTableUrl::parse(root.to_string_lossy())?;
    let store = ctx.runtime_env().object_store(&url)?;
    let base = url.prefix().clone();
    let list = |path: object_store::path::Path| {
        let store = std::sync::Arc::clone(&store);
        async move {
            let listed = store.list_with_delimiter(Some(&path)).await?;
            Ok::<_, object_store::Error>(
                listed
                    .common_prefixes
                    .into_iter()
                    .filter_map(|p| p.filename().map(str::to_owned))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let table_path = base.clone().join(table);
    let Ok(days) = list(table_path.clone()).await else { return Ok(Vec::new()) };
    let mut days: Vec<String> = days
        .into_iter()
        .filter_map(|d| d.strip_prefix(&format!("{DATE}=")).map(str::to_owned))
        .filter(|d| overlaps(d, None, from_ms, to_ms))
        .collect();
    days.sort();
    let mut hours = Vec::new();
    for day in spread(&days, SAMPLE_HOURS) {
        let Ok(listed) = list(table_path.clone().join(format!("{DATE}={day}").as_str())).await
        else {
            continue;
        };
        let mut of_day: Vec<(String, String)> = listed
            .into_iter()
            .filter_map(|h| h.strip_prefix(&format!("{HOUR}=")).map(str::to_owned))
            .filter(|h| overlaps(&day, Some(h), from_ms, to_ms))
            .map(|h| (day.clone(), h))
            .collect();
        of_day.sort();
        hours.extend(of_day);
    }
    Ok(spread(&hours, SAMPLE_HOURS))
}

/// At most `n` items of `items`, evenly spread (the first and the last among them).
fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * (items.len() - 1) / (n - 1).max(1)].clone()).collect()
}

/// Whether the day (or its hour) overlaps `[from_ms, to_ms)`. A folder name that is not a
/// date or an hour overlaps nothing.
fn overlaps(day: &str, hour: Option<&str>, from_ms: Option<i64>, to_ms: Option<i64>) -> bool {
    let start = format!("{day}T{}:00:00Z", hour.unwrap_or("00"));
    let Ok(start) = start.parse::<jiff::Timestamp>() else { return false };
    let start = start.as_millisecond();
    let length = if hour.is_some() { 3_600_000 } else { 86_400_000 };
    from_ms.is_none_or(|f| start + length > f) && to_ms.is_none_or(|t| start < t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_the_ends() {
        let v: Vec<u32> = (0..10).collect();
        assert_eq!(spread(&v, 3), vec![0, 4, 9]);
        assert_eq!(spread(&v[..2], 3), vec![0, 1]);
        assert_eq!(spread(&v, 1), vec![0]);
    }

    #[test]
    fn hours_and_days_overlap_the_range() {
        // 2026-11-05T14:00Z.
        let h14 = 1_793_887_200_000;
        assert!(overlaps("2026-11-05", Some("14"), Some(h14), Some(h14 + 1)));
        assert!(!overlaps("2026-11-05", Some("13"), Some(h14), None));
        assert!(!overlaps("2026-11-05", Some("15"), None, Some(h14 + 3_600_000)));
        assert!(overlaps("2026-11-05", None, Some(h14), Some(h14 + 1)));
        assert!(!overlaps("2026-11-04", None, Some(h14), None));
        assert!(!overlaps("not-a-date", None, None, None));
    }
}
