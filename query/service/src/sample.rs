//! How many rows a query's filters keep, estimated from a sample of the store: the measure
//! [`crate::pushdown`] decides by when a filter's shape does not settle it, and
//! [`crate::order`] orders a filter's terms by.
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
use datafusion::logical_expr::utils::split_conjunction;
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

/// What a sample said of one filtered scan.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanSample {
    /// Rows read, and rows the scan's whole filter kept.
    pub kept: Kept,
    /// Rows each term of the filter kept, for the terms ANDed at its top in written order
    /// (`split_conjunction`); empty when the filter is one term.
    pub terms: Vec<u64>,
}

/// The rows all `samples` read and kept, added up.
pub fn total(samples: &[ScanSample]) -> Kept {
    let mut total = Kept::default();
    for s in samples {
        total.add(s.kept);
    }
    total
}

/// Samples every `(table, predicate)` over the hours the store at `root` holds in
/// `[from_ms, to_ms)`: what each predicate, and each of its terms, keeps.
///
/// # Errors
/// When a folder cannot be listed or the sample query fails (the caller falls back on the
/// filter's shape and its written order).
pub async fn scans(
    ctx: &SessionContext,
    root: &Path,
    scans: &[(TableReference, Expr)],
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Vec<ScanSample>> {
    let mut out = Vec::with_capacity(scans.len());
    for (table, predicate) in scans {
        let hours = hours(ctx, root, table.table(), from_ms, to_ms).await?;
        out.push(sample_in(ctx, table, predicate, &hours).await?);
    }
    Ok(out)
}

/// Rows of `table` in the sampled `hours`, and how many of them `predicate` and each of its
/// terms keep.
async fn sample_in(
    ctx: &SessionContext,
    table: &TableReference,
    predicate: &Expr,
    hours: &[(String, String)],
) -> Result<ScanSample> {
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
    let terms: Vec<Expr> = match split_conjunction(&predicate) {
        t if t.len() > 1 => t.into_iter().cloned().collect(),
        _ => Vec::new(),
    };
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
    let Some(sample) = sample else { return Ok(ScanSample::default()) };
    let kept = |e: Expr, name: String| -> Result<Expr> {
        Ok(sum(when(e, lit(1i64)).otherwise(lit(0i64))?).alias(name))
    };
    let mut aggregates = vec![count(lit(1)).alias("rows"), kept(predicate, "kept".into())?];
    for (i, term) in terms.into_iter().enumerate() {
        aggregates.push(kept(term, format!("term{i}"))?);
    }
    let columns = aggregates.len();
    let batches = sample.aggregate(vec![], aggregates)?.collect().await?;
    // One row of `columns` counts (a global aggregate); a null sum (no rows) counts 0.
    let mut counts = vec![0u64; columns];
    for b in &batches {
        for (c, count) in counts.iter_mut().enumerate() {
            if let Some(values) = b.column(c).as_any().downcast_ref::<Int64Array>() {
                for i in 0..b.num_rows() {
                    if !values.is_null(i) {
                        *count += u64::try_from(values.value(i)).unwrap_or(0);
                    }
                }
            }
        }
    }
    Ok(ScanSample { kept: Kept { rows: counts[0], kept: counts[1] }, terms: counts[2..].to_vec() })
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
pub(crate) mod tests {
    use super::*;

    /// A store of 3 hours × 1,000 connections: `dst.namespace` is "rare" on 1 row in 200 and
    /// "common" on every other.
    pub(crate) fn sampled_store() -> tempfile::TempDir {
        use podwire_schemas::connections::{ConnectionRecord, ConnectionsBuilder};
        let dir = tempfile::tempdir().unwrap();
        // 2026-11-05T14:00Z.
        let h14_ns = 1_793_887_200_000_000_000i64;
        for h in 0..3i64 {
            let mut b = ConnectionsBuilder::default();
            for i in 0..1000i64 {
                let t = h14_ns + h * 3_600_000_000_000 + i * 1_000_000_000;
                let dst_meta = podwire_schemas::endpoint::EndpointMeta {
                    namespace: if i % 200 == 0 { "rare" } else { "common" }.into(),
                    ..Default::default()
                };
                b.append(&ConnectionRecord {
                    start_ns: t,
                    end_ns: t,
                    conn_id: h * 1000 + i,
                    dst_meta,
                    ..ConnectionRecord::default()
                });
            }
            let batch = b.finish().unwrap();
            let folder = dir.path().join(format!("connections/date=2026-11-05/hour={}", 14 + h));
            std::fs::create_dir_all(&folder).unwrap();
            let file = std::fs::File::create(folder.join("a.parquet")).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
        dir
    }

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sample_counts_each_term() {
        let dir = sampled_store();
        let store = crate::Store::open(dir.path()).unwrap();
        let ctx = store.context();
        let table = TableReference::bare("connections");
        let rare = col("dst_namespace").eq(lit("rare"));
        let port = col("dst_port").eq(lit(0i32));
        let scans = [(table.clone(), port.clone().and(rare.clone())), (table, rare)];
        let got = super::scans(ctx, dir.path(), &scans, None, None).await.unwrap();
        assert_eq!(got[0].kept, Kept { rows: 3000, kept: 15 });
        assert_eq!(got[0].terms, vec![3000, 15]);
        assert_eq!(got[1].kept, Kept { rows: 3000, kept: 15 });
        assert!(got[1].terms.is_empty());
        assert_eq!(total(&got), Kept { rows: 6000, kept: 30 });
    }
}
