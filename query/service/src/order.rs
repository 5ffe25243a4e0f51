//! The order a scan's filter evaluates its terms in: the one that keeps fewest rows first.
//!
//! A filter is a conjunction of terms: `tcp and src.namespace == "payments" and dst.name ==
//! "pricing"` has three. With pushdown the Parquet reader evaluates them one after the other,
//! each on the rows the terms before it kept, and decodes a term's columns only for those rows;
//! without it DataFusion's `AND` evaluates its right side only on the rows its left side kept,
//! once they are few. Either way the first term is evaluated on every row. KFL puts the
//! protocol first, and `tcp` keeps nine rows in ten. That example, with the terms in the order
//! written and then fewest-kept first, took 0.28 s and 0.17 s in-process on the 10 M-row bench
//! store (`benchmarks/README.md`, query family): most of the difference is the row selection
//! that `tcp` leaves, one run of rows per UDP connection, which every later term reads through.
//!
//! The terms are ordered by the rows each kept in the store's sample ([`crate::sample`]), the
//! one that also decides pushdown; terms that kept as many keep their written order. Results
//! never change: the terms are ANDed in any order. A term that relies on another to guard it
//! (`x <> 0 AND y / x > 1` in `--sql`) could fail when moved ahead of its guard, but SQL
//! promises no order for `AND` and DataFusion already evaluates both sides on every row when
//! the left keeps many. [`FilterOrder::Written`] keeps the written order, for experiments.
use crate::error::Result;
use crate::sample::ScanSample;
use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNode as _};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan};
use std::sync::Arc;

/// The order a filter's terms are evaluated in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FilterOrder {
    /// The terms that kept fewest rows in a sample of the store first.
    #[default]
    Sampled,
    /// As written.
    Written,
}

/// Whether any of `scans`' filters has more than one term to order.
pub fn has_terms_to_order(scans: &[(TableReference, Expr)]) -> bool {
    scans.iter().any(|(_, predicate)| split_conjunction(predicate).len() > 1)
}

/// `plan` with the terms of each filter right above a table scan ordered by what `samples`
/// (one for each of `scans`, from [`crate::sample::scans`]) say they kept, fewest first.
///
/// # Errors
/// When a reordered filter cannot be built (it always can: the terms are the same).
pub fn fewest_kept_first(
    plan: LogicalPlan,
    scans: &[(TableReference, Expr)],
    samples: &[ScanSample],
) -> Result<LogicalPlan> {
    let reordered = plan.transform_up(|node| {
        let LogicalPlan::Filter(filter) = &node else { return Ok(Transformed::no(node)) };
        let LogicalPlan::TableScan(scan) = filter.input.as_ref() else {
            return Ok(Transformed::no(node));
        };
        let sampled = scans.iter().zip(samples).find(|((table, predicate), _)| {
            *table == scan.table_name && *predicate == filter.predicate
        });
        let Some((_, sample)) = sampled else { return Ok(Transformed::no(node)) };
        let terms: Vec<Expr> = split_conjunction(&filter.predicate).into_iter().cloned().collect();
        if terms.len() < 2 || terms.len() != sample.terms.len() {
            return Ok(Transformed::no(node));
        }
        let ordered = fewest_first(terms, &sample.terms);
        let Some(predicate) = conjunction(ordered) else { return Ok(Transformed::no(node)) };
        if predicate == filter.predicate {
            return Ok(Transformed::no(node));
        }
        let input = Arc::clone(&filter.input);
        Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(predicate, input)?)))
    })?;
    Ok(reordered.data)
}

/// `terms` sorted by `kept` (the rows each kept), fewest first; equals keep their order.
fn fewest_first(terms: Vec<Expr>, kept: &[u64]) -> Vec<Expr> {
    let mut paired: Vec<(u64, Expr)> = kept.iter().copied().zip(terms).collect();
    paired.sort_by_key(|(kept, _)| *kept);
    paired.into_iter().map(|(_, term)| term).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryRequest, Store, StoreOptions};
    use datafusion::prelude::col;

    #[test]
    fn fewest_kept_come_first_and_equals_keep_their_order() {
        let terms = ["a", "b", "c", "d"].map(|c| col(c).is_not_null()).to_vec();
        let names = |v: Vec<Expr>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(fewest_first(terms.clone(), &[90, 3, 90, 0])),
            names(vec![terms[3].clone(), terms[1].clone(), terms[0].clone(), terms[2].clone()])
        );
        assert_eq!(names(fewest_first(terms.clone(), &[5, 5, 5, 5])), names(terms));
    }

    /// The predicate of the connections scan in `kfl`'s physical plan over `store`.
    async fn scan_predicate(store: &Store, kfl: &str) -> String {
        let df = store.kfl(&QueryRequest::new(kfl)).await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        let line = text.lines().find(|l| l.contains("DataSourceExec")).unwrap_or_default();
        let predicate = line.split("predicate=").nth(1).unwrap_or_default();
        predicate.split(", pruning_predicate").next().unwrap_or_default().to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scan_evaluates_the_rarest_term_first() {
        // `dst.namespace` is "rare" on 1 row in 200; every row is TCP to port 0.
        let dir = crate::sample::tests::sampled_store();
        let kfl = r#"tcp and dst.port == 0 and dst.namespace == "rare""#;
        let sampled = Store::open(dir.path()).unwrap();
        let got = scan_predicate(&sampled, kfl).await;
        assert!(got.starts_with("dst_namespace@"), "{got}");
        let options = StoreOptions { filter_order: FilterOrder::Written, ..Default::default() };
        let written = Store::open_with(dir.path(), options).unwrap();
        let got = scan_predicate(&written, kfl).await;
        assert!(got.starts_with("protocol@"), "{got}");
        // The same rows either way.
        for store in [&sampled, &written] {
            let df = store.kfl(&QueryRequest::new(kfl)).await.unwrap();
            let rows: usize = store.collect(df).await.unwrap().iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 15);
        }
    }
}
