//! Rows out of a filtering scan are copied into full batches before anything holds on to them.
//!
//! With pushdown ([`crate::pushdown`]) the Parquet reader returns only the matching rows, in
//! batches of a few rows each, and each such batch keeps alive the buffers it was cut from: the
//! decoded dictionaries and pages of ~48 columns. The ordered merge above the scans (KFL's time
//! order) keeps every input batch that holds a row of its next output batch (8,192 rows), so a
//! query keeping 0.3 % of a store held a few hundred scan batches and their buffers at once: on
//! the 10 M-row bench store, `tcp and ((dst.name == "kube-dns") or (rtt > 78811))` (28 k rows)
//! peaked at 454 MB of anonymous memory, against 83 MB for the same scan unordered. A sort
//! (the `dns` side of a filter over both tables) keeps every batch it is given, the same way.
//!
//! [`CompactFilteredScans`] puts DataFusion's batch coalescer above every scan when pushdown is
//! on: it copies the rows into batches of `batch_size` rows with their own compact buffers, so
//! the merge holds a few full batches per scan and the scan's buffers are freed as it goes. A
//! scan under a limit is coalesced into batches no larger than the limit, so a limited query
//! still stops early.
//! Without pushdown a `FilterExec` does the same coalescing itself.
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode as _, TreeNodeRecursion};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
#[expect(deprecated, reason = "the operator is the coalescer DataFusion's own operators use")]
use datafusion::physical_plan::coalesce_batches::CoalesceBatchesExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use std::sync::Arc;

/// The physical optimizer rule; runs last, and changes nothing unless the query's
/// `pushdown_filters` is on.
#[derive(Debug, Default)]
pub struct CompactFilteredScans;

impl PhysicalOptimizerRule for CompactFilteredScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.execution.parquet.pushdown_filters {
            return Ok(plan);
        }
        compact(plan, config.execution.batch_size.get(), None)
    }

    fn name(&self) -> &str {
        "compact_filtered_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with a coalescer above each scan. `wanted` is how many rows the operators above
/// `plan` may take from it at most, when they pass rows through unchanged and a limit bounds
/// them: a scan there is coalesced into batches of at most that many rows, so a limited query
/// is not held back until a full batch has matched. The coalescer itself never drops a row, so a
/// limit read wrongly here would cost time, never rows.
fn compact(
    plan: Arc<dyn ExecutionPlan>,
    batch_size: usize,
    wanted: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if plan.is::<DataSourceExec>() {
        let target = min_limit(wanted, plan.fetch()).unwrap_or(batch_size).clamp(1, batch_size);
        #[expect(deprecated, reason = "see the import")]
        let coalesced = CoalesceBatchesExec::new(plan, target);
        return Ok(Arc::new(coalesced));
    }
    if plan.children().is_empty() {
        return Ok(plan);
    }
    let wanted = if let Some(limit) = plan.downcast_ref::<GlobalLimitExec>() {
        min_limit(wanted, limit.fetch().map(|f| f.saturating_add(limit.skip())))
    } else if plan.is::<LocalLimitExec>()
        || plan.is::<SortPreservingMergeExec>()
        || plan.is::<ProjectionExec>()
        || plan.is::<CoalescePartitionsExec>()
        || plan.is::<UnionExec>()
        || plan.is::<CooperativeExec>()
    {
        min_limit(wanted, plan.fetch())
    } else {
        // Filters, sorts, aggregates and joins may need every row below them.
        None
    };
    let children = plan
        .children()
        .into_iter()
        .map(|child| compact(Arc::clone(child), batch_size, wanted))
        .collect::<Result<Vec<_>>>()?;
    replace_children_if_necessary(plan, children)
}

fn min_limit(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether `plan` has a coalescer right above a scan (for tests and `EXPLAIN` readers).
pub fn has_compacted_scan(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        #[expect(deprecated, reason = "see the import")]
        let is_coalesce = node.is::<CoalesceBatchesExec>();
        if is_coalesce && node.children().iter().any(|c| c.is::<DataSourceExec>()) {
            found = true;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
