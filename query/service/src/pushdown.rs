//! When the Parquet reader applies a query's filter itself (DataFusion's `pushdown_filters`).
//!
//! With pushdown, the reader decodes the filter's columns first and then only the matching rows
//! of the others, skipping whole pages that hold none. That pays when few rows match, and costs
//! when many do: decoding scattered rows one run at a time is slower than decoding whole pages
//! and filtering afterwards. On the 10 M-row benchmark store (`benchmarks/README.md`, in-process):
//! one pod's traffic (0.15 % of rows) 0.40 s → 0.20 s, one external name (0.45 %) 0.41 s →
//! 0.37 s; but two namespaces (1 %) 0.48 s → 0.51–0.55 s and external traffic
//! (`dst.namespace == ""`, 12 %) 0.62 s → 0.78 s.
//!
//! DataFusion has no estimate of how many rows a filter matches, so [`Pushdown::Auto`] (the
//! default) decides in two steps. A query whose every filtered scan asks for one entity, or a
//! few, by identity (a pod, a name, an address, a DNS name, a connection id: [`asks_for_few`])
//! gets pushdown without further ado. Any other filtered query is measured: a sample of the
//! store ([`crate::sample`]) says what fraction of rows its filters keep, and pushdown is on
//! below [`KEEP_AT_MOST`]. Namespaces, ports, outcomes and their combinations are thus judged
//! by what they match in this store, not by their shape; an entity that is in a large share of
//! all rows (the cluster DNS server's address) is measured like any other filter when the
//! shape test does not settle it. When the sample cannot be taken (an empty store, a listing
//! that fails) the shape decides alone.
use datafusion::common::tree_node::{TreeNode as _, TreeNodeRecursion};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use podwire_schemas::connections::col as conn;
use podwire_schemas::dns::col as dns;
use podwire_schemas::endpoint::Side;

/// Whether a query's filter is applied by the Parquet reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pushdown {
    /// On for filters that ask for a few entities by identity ([`asks_for_few`]); any other
    /// filter is measured on a sample of the store and gets pushdown when it keeps at most
    /// [`KEEP_AT_MOST`] of the rows (`crate::session`).
    #[default]
    Auto,
    /// Always (DataFusion's `pushdown_filters = true`).
    On,
    /// Never.
    Off,
}

impl Pushdown {
    /// Whether the scans of `plan` get its filters.
    pub fn applies_to(self, plan: &LogicalPlan) -> bool {
        match self {
            Self::Auto => asks_for_few(plan),
            Self::On => true,
            Self::Off => false,
        }
    }
}

/// The largest fraction of sampled rows a filter may keep and still get pushdown. Timed
/// in-process with pushdown forced each way on the 10 M-row bench store (`benchmarks/README.md`,
/// query family, sixth run): it saves 10-20 % of the time up to about 0.8 % kept, is even
/// (within 8 %, either way) from 1 % to 2.2 %, and loses at 4.5 %. Above about 1.5 % it also
/// holds 20-50 MB more memory (page faults in the reader's string decoding), which put two
/// queries over a few hours above DuckDB's peak. The threshold sits where time stops paying for
/// that memory.
pub const KEEP_AT_MOST: f64 = 0.0125;

/// The filter right above each table scan of `plan`, with the scan's table: what a sample
/// measures ([`crate::sample`]). Empty when any filter reads a subquery (a sample would run it).
pub fn filtered_scans(plan: &LogicalPlan) -> Vec<(TableReference, Expr)> {
    let mut scans = Vec::new();
    let mut subquery = false;
    // The closure never fails.
    let _ = plan.apply(|node| {
        if let LogicalPlan::Filter(filter) = node
            && let LogicalPlan::TableScan(scan) = filter.input.as_ref()
        {
            subquery |= filter
                .predicate
                .exists(|e| {
                    Ok(matches!(e, Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)))
                })
                .unwrap_or(true);
            scans.push((scan.table_name.clone(), filter.predicate.clone()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if subquery { Vec::new() } else { scans }
}

/// Columns naming one entity among many, in any table of the store (names from the schemas
/// crate).
const IDENTITY_COLUMNS: [&str; 5] =
    [conn::CONN_ID, conn::SRC_IP, conn::DST_IP, conn::DST_DNS_NAME, dns::QUERY_NAME];

/// The enrichment columns (`src_*`, `dst_*`) naming one entity: the pod, and the name (pod,
/// else service, else DNS name).
const IDENTITY_SUFFIXES: [&str; 2] = ["name", "pod"];

fn identity_column(name: &str) -> bool {
    IDENTITY_COLUMNS.contains(&name)
        || [Side::Src, Side::Dst].into_iter().any(|side| {
            name.strip_prefix(side.prefix()).is_some_and(|s| IDENTITY_SUFFIXES.contains(&s))
        })
}

/// At most this many values in `IN (...)` still ask for "a few" entities.
const FEW: usize = 16;

/// Whether `plan` filters at least one table scan and every filter right above a scan asks
/// for a few entities by identity (module doc). One broad filter is enough to say no: the
/// setting applies to every scan of the query (for KFL, the `connections` and `dns` branches
/// each have their own filter).
pub fn asks_for_few(plan: &LogicalPlan) -> bool {
    let (mut narrow_scans, mut broad_scans) = (0, 0);
    // The closure never fails.
    let _ = plan.apply(|node| {
        if let LogicalPlan::Filter(filter) = node
            && matches!(filter.input.as_ref(), LogicalPlan::TableScan(_))
        {
            if narrow(&filter.predicate) {
                narrow_scans += 1;
            } else {
                broad_scans += 1;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    narrow_scans > 0 && broad_scans == 0
}

/// Whether `predicate` can only match rows of a few entities: an identity equal to a value (or
/// in a short list), ANDed with anything, or ORed with another such predicate.
fn narrow(predicate: &Expr) -> bool {
    match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            narrow(left) || narrow(right)
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            narrow(left) && narrow(right)
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            (identity(left) && value(right)) || (identity(right) && value(left))
        }
        Expr::InList(InList { expr, list, negated: false }) => {
            identity(expr) && !list.is_empty() && list.len() <= FEW && list.iter().all(value)
        }
        _ => false,
    }
}

fn identity(e: &Expr) -> bool {
    match e {
        Expr::Column(c) => identity_column(&c.name),
        Expr::Cast(c) => identity(&c.expr),
        Expr::TryCast(c) => identity(&c.expr),
        _ => false,
    }
}

/// A literal that is not null and not the empty string.
fn value(e: &Expr) -> bool {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)) => !s.is_empty(),
            v => !v.is_null(),
        },
        Expr::Cast(c) => value(&c.expr),
        Expr::TryCast(c) => value(&c.expr),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryRequest, Store};

    /// Whether the KFL filter's plan over an empty store turns pushdown on.
    async fn pushed(kfl: &str) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let request = QueryRequest::new(kfl);
        let df = store.kfl(&request).await.unwrap();
        df.task_ctx().session_config().options().execution.parquet.pushdown_filters
    }

    #[test]
    fn identity_columns_are_columns_of_the_store() {
        for suffix in IDENTITY_SUFFIXES {
            assert!(podwire_schemas::endpoint::SUFFIXES.contains(&suffix), "{suffix}");
        }
        let tables = podwire_schemas::Table::ALL;
        for side in [Side::Src, Side::Dst] {
            for name in IDENTITY_SUFFIXES.map(|suffix| side.column(suffix)) {
                assert!(identity_column(&name), "{name}");
                assert!(tables.iter().any(|t| t.schema().field_with_name(&name).is_ok()), "{name}");
            }
        }
        for name in IDENTITY_COLUMNS {
            assert!(tables.iter().any(|t| t.schema().field_with_name(name).is_ok()), "{name}");
        }
    }

    #[tokio::test]
    async fn identities_asked_for_turn_pushdown_on() {
        for kfl in [
            r#"dst.name == "api.stripe.com""#,
            r#"src.pod.name == "cart-7d9f-x2x4q""#,
            r#"src.pod.name == "a" or dst.pod.name == "a""#,
            r#"dst.ip == "10.0.0.1" and tcp"#,
            r#"tcp and src.namespace == "shop" and dst.pod.name == "payments-0""#,
            r#"request.questions[0].name == "api.stripe.com""#,
            r#"connId == 42"#,
            r#"dst.dns == "example.com" and timestamp > hours(-1)"#,
        ] {
            assert!(pushed(kfl).await, "{kfl}");
        }
    }

    #[tokio::test]
    async fn the_store_option_overrides_the_guess() {
        let dir = tempfile::tempdir().unwrap();
        let needle = r#"dst.name == "api.stripe.com""#;
        for (pushdown, kfl, want) in
            [(Pushdown::Off, needle, false), (Pushdown::On, "tcp", true), (Pushdown::On, "", true)]
        {
            let options = crate::StoreOptions { pushdown, ..Default::default() };
            let store = Store::open_with(dir.path(), options).unwrap();
            let request = QueryRequest::new(kfl);
            let df = store.kfl(&request).await.unwrap();
            let on = df.task_ctx().session_config().options().execution.parquet.pushdown_filters;
            assert_eq!(on, want, "{pushdown:?} {kfl}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sample_of_the_store_decides_filters_the_shape_leaves_open() {
        let dir = crate::sample::tests::sampled_store();
        let store = Store::open(dir.path()).unwrap();
        for (kfl, want) in [
            (r#"dst.namespace == "rare""#, true),
            (r#"tcp and dst.namespace == "rare" and dst.port == 80"#, true),
            (r#"dst.namespace == "common""#, false),
            (r#"dst.namespace == "rare" or dst.namespace == "common""#, false),
            (r#"dst.namespace == "nowhere""#, true),
        ] {
            for (from_ms, to_ms) in
                [(None, None), (Some(1_793_887_200_000), Some(1_793_894_400_000))]
            {
                let request = QueryRequest { from_ms, to_ms, ..QueryRequest::new(kfl) };
                let df = store.kfl(&request).await.unwrap();
                let on =
                    df.task_ctx().session_config().options().execution.parquet.pushdown_filters;
                assert_eq!(on, want, "{kfl} {from_ms:?}");
            }
        }
        // An empty store leaves the decision to the shape.
        assert!(!pushed(r#"dst.namespace == "rare""#).await);
    }

    #[tokio::test]
    async fn broad_filters_leave_pushdown_off() {
        for kfl in [
            "",
            "tcp",
            r#"dst.namespace == """#,
            r#"src.namespace == "shop" and dst.namespace == "payments""#,
            r#"dst.name == """#,
            r#"dst.name != "api.stripe.com""#,
            r#"dst.name.startsWith("api.")"#,
            r#"src.pod.name == "a" or dst.namespace == "b""#,
            r#"dst.port == 443"#,
            r#"outcome == "refused""#,
            r#"!(dst.ip == "10.0.0.1")"#,
            r#"dst.service.name == "kube-dns""#,
            // Narrow on `connections`, broad on `dns`: the setting would apply to both scans.
            r#"src.pod.name == "x" or (dns and src.namespace == "shop")"#,
        ] {
            assert!(!pushed(kfl).await, "{kfl}");
        }
    }
}
