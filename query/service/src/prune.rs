//! Partition pruning: a time range becomes predicates on the partition columns `date` and
//! `hour`, added to each `SELECT` of the translated statement that reads a store table.
//!
//! The filter on the time column itself ([`podwire_kfl::Options`] `from_ms`/`to_ms`) decides
//! which rows match; these predicates only let DataFusion skip whole `date=…/hour=…` folders
//! before listing or opening a file. A row sits in the folder of its time column's UTC hour, so
//! `[from, to)` needs the folders from `from`'s hour through the hour of the last millisecond
//! before `to`; the bounds are inclusive and conservative.
use crate::catalog::{DATE, HOUR};
use podwire_schemas::Table;
use sqlparser::ast as sql;

/// The predicate on `date`/`hour` for `[from_ms, to_ms)`, or `None` for an open range.
pub fn partition_predicate(from_ms: Option<i64>, to_ms: Option<i64>) -> Option<sql::Expr> {
    let lower = from_ms.and_then(hour_of).map(|(d, h)| bound(&d, &h, true));
    let upper =
        to_ms.and_then(|t| t.checked_sub(1)).and_then(hour_of).map(|(d, h)| bound(&d, &h, false));
    match (lower, upper) {
        (Some(l), Some(u)) => Some(and(l, u)),
        (l, u) => l.or(u),
    }
}

/// ANDs `predicate` into the `WHERE` of every `SELECT` in `statement` whose `FROM` is exactly one
/// store table (the shape the KFL translator emits). Returns how many were changed.
pub fn add_predicate(statement: &mut sql::Statement, predicate: &sql::Expr) -> usize {
    match statement {
        sql::Statement::Query(q) => add_to_query(q, predicate),
        _ => 0,
    }
}

fn add_to_query(query: &mut sql::Query, predicate: &sql::Expr) -> usize {
    add_to_set_expr(&mut query.body, predicate)
}

fn add_to_set_expr(body: &mut sql::SetExpr, predicate: &sql::Expr) -> usize {
    match body {
        sql::SetExpr::Select(select) => {
            if !reads_one_store_table(select) {
                return 0;
            }
            let wrapped = sql::Expr::Nested(Box::new(predicate.clone()));
            select.selection = Some(match select.selection.take() {
                Some(w) => and(sql::Expr::Nested(Box::new(w)), wrapped),
                None => wrapped,
            });
            1
        }
        sql::SetExpr::Query(q) => add_to_query(q, predicate),
        sql::SetExpr::SetOperation { left, right, .. } => {
            add_to_set_expr(left, predicate) + add_to_set_expr(right, predicate)
        }
        _ => 0,
    }
}

fn reads_one_store_table(select: &sql::Select) -> bool {
    let [from] = select.from.as_slice() else { return false };
    if !from.joins.is_empty() {
        return false;
    }
    match &from.relation {
        sql::TableFactor::Table { name, args: None, .. } => {
            let parts = &name.0;
            parts.len() == 1
                && parts[0].as_ident().is_some_and(|i| {
                    Table::ALL.iter().any(|t| t.name().eq_ignore_ascii_case(&i.value))
                })
        }
        _ => false,
    }
}

/// `(date, hour)` of the UTC hour holding `ms`; `None` outside the representable range.
pub fn hour_of(ms: i64) -> Option<(String, String)> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    let z = ts.to_zoned(jiff::tz::TimeZone::UTC);
    Some((z.strftime("%Y-%m-%d").to_string(), z.strftime("%H").to_string()))
}

/// `date > d OR (date = d AND hour >= h)` (lower) or `date < d OR (date = d AND hour <= h)`.
fn bound(date: &str, hour: &str, lower: bool) -> sql::Expr {
    use sql::BinaryOperator::{Eq, Gt, GtEq, Lt, LtEq};
    let (strict, inclusive) = if lower { (Gt, GtEq) } else { (Lt, LtEq) };
    sql::Expr::Nested(Box::new(sql::Expr::BinaryOp {
        left: Box::new(cmp(DATE, strict, date)),
        op: sql::BinaryOperator::Or,
        right: Box::new(sql::Expr::Nested(Box::new(and(
            cmp(DATE, Eq, date),
            cmp(HOUR, inclusive, hour),
        )))),
    }))
}

fn cmp(column: &str, op: sql::BinaryOperator, value: &str) -> sql::Expr {
    sql::Expr::BinaryOp {
        left: Box::new(sql::Expr::Identifier(sql::Ident::new(column))),
        op,
        right: Box::new(sql::Expr::value(sql::Value::SingleQuotedString(value.to_owned()))),
    }
}

fn and(left: sql::Expr, right: sql::Expr) -> sql::Expr {
    sql::Expr::BinaryOp {
        left: Box::new(left),
        op: sql::BinaryOperator::And,
        right: Box::new(right),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podwire_kfl::{Options, translate};

    const H9: i64 = 1_795_683_600_000; // 2026-11-26T09:00:00Z

    #[test]
    fn bounds() {
        let p = partition_predicate(Some(H9 + 1), Some(H9 + 3_600_000)).unwrap();
        assert_eq!(
            p.to_string(),
            "(date > '2026-11-26' OR (date = '2026-11-26' AND hour >= '09')) AND \
             (date < '2026-11-26' OR (date = '2026-11-26' AND hour <= '09'))"
        );
        assert!(partition_predicate(None, None).is_none());
        let p = partition_predicate(None, Some(H9 + 1)).unwrap();
        assert!(p.to_string().ends_with("hour <= '09'))"), "{p}");
    }

    #[test]
    fn every_select_of_a_union() {
        let opts = Options { now_ms: H9, from_ms: Some(H9), to_ms: None, ..Options::default() };
        let mut t = translate("dns or tcp", &opts).unwrap();
        let p = partition_predicate(Some(H9), None).unwrap();
        assert_eq!(add_predicate(&mut t.statement, &p), 2);
        let mut t = translate("", &opts).unwrap();
        assert_eq!(add_predicate(&mut t.statement, &p), 2);
        let mut t = translate("tcp", &opts).unwrap();
        assert_eq!(add_predicate(&mut t.statement, &p), 1);
        assert!(t.sql().contains("hour >= '09'"), "{}", t.sql());
    }
}
