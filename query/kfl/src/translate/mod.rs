//! KFL → SQL: checks a parsed query against the field catalog, then lowers it, table by table, to
//! a `sqlparser` AST.
//!
//! # One stream over several tables
//!
//! Kubeshark shows one stream of entries, so `dns or tcp` mixes DNS transactions and TCP
//! connections. podwire keeps them in separate tables ([`STREAM_TABLES`]: `connections` and
//! `dns`) and **routes**: the filter is lowered once per table, with every field and alias the
//! table does not have folded to FALSE (`dns` is TRUE on `dns` and FALSE on `connections`, `tcp`
//! the other way round). A table whose filter folds to FALSE is not read at all. `packets` (per
//! packet, optional) and `capture_stats` are not entries of the stream.
//!
//! `connections` rows are what the store holds: long connections also have interim rows, so a
//! filter can match several rows of one connection; `isFinal` selects the last one.
//!
//! - One table left: `SELECT * FROM <table> WHERE … ORDER BY <time column>, conn_id`, with all
//!   of that table's columns.
//! - Several tables: each `SELECT`s a common projection (`entry_type` = the table name, `ts`,
//!   `conn_id`, `protocol` (`dns` for DNS rows, as KFL's `protocol.name`), addresses and ports,
//!   `outcome`, `node` and the fourteen enrichment columns), joined with `UNION ALL` and ordered
//!   by `ts, conn_id`.
//! - No table left (`tcp and dns`): `SELECT * FROM connections WHERE FALSE`.
//!
//! Results are always in time order; `limit(n)` becomes `LIMIT n` after the `ORDER BY`.
//!
//! # Semantics (KFL.md §5, with the §6.4 fixes)
//!
//! - `and`/`or` keep KFL1's right-nested grouping; the SQL is parenthesised so that SQL's
//!   precedence can never regroup it.
//! - A comparison, helper or regex on a field a table lacks, or on a NULL value, is FALSE, and `!`
//!   of it is TRUE. Kubeshark's "collapse" of the enclosing group is not reproduced: `x or y` is
//!   commutative here.
//! - `==` against a number column is numeric (`dst.port == "80"` is `dst_port = 80`); a string
//!   that is not a number never equals it. Ordering (`<`, `>`, …) is for numbers and times only.
//! - `!` applies to booleans only, `-` to number literals only, helpers to one field with one
//!   argument, `limit(n)` only as a top-level conjunct.
//! - Regex literals are RE2/Rust-regex, unanchored, checked here with the `regex` crate's parser.
//! - `now()`, `seconds(n)` … `years(n)` (months = 30 days, years = 365) and `datetime("…")` are
//!   frozen into `TIMESTAMP` literals at translation time ([`Options::now_ms`]).
//! - `elapsedTime` is milliseconds in KFL and microseconds in the store: literals are scaled.
//!
//! The parts: `cond` (the condition both dialects check a query into), `check` (KFL1's checker),
//! `lower` (a condition on one table to SQL), `sql` (the SQL building blocks, the projections and
//! the `SELECT`), `time` (time literals and Kubeshark's `datetime` layout).
mod check;
mod cond;
mod lower;
mod sql_build;
mod time;

pub(crate) use check::check_regex;
pub(crate) use cond::{Arg, Cond, Value};
pub use sql_build::ENTRY_TYPE;

use crate::ast::{CompareOp, Expr};
use crate::error::{Error, ErrorClass, Result};
use crate::fields::STREAM_TABLES;
use crate::span::Span;
use check::{Checker, find_limits, to_cond};
use lower::{Low, fold, lower, right_spine};
use podwire_schemas::Table;
use podwire_schemas::dns::col as d;
use sql_build::*;
use sqlparser::ast as sql;

/// The aliases podwire implements (KFL.md §1.8, §5.2).
pub const ALIASES: [&str; 5] = ["tcp", "udp", "icmp", "dns", "error"];

/// Inputs of a translation other than the query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// "Now" for `now()`, `minutes(-5)`, …, epoch milliseconds. Passed in so that translation
    /// stays pure and repeatable.
    pub now_ms: i64,
    /// Only entries at or after this time (epoch ms), on top of the filter.
    pub from_ms: Option<i64>,
    /// Only entries before this time (epoch ms).
    pub to_ms: Option<i64>,
    /// The language the query is written in.
    pub dialect: crate::Dialect,
}

/// A translated query.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// The SQL statement.
    pub statement: sql::Statement,
    /// The tables the filter can match, in stream order. Empty when it can match none (`tcp and
    /// dns`); the statement then reads `connections` with `WHERE FALSE`.
    pub tables: Vec<Table>,
    /// The `limit(n)` of the query, if any (already in the statement).
    pub limit: Option<u64>,
    /// Every matching entry's time (`timestamp`: the table's time column) is at or after this,
    /// epoch ms: the later of [`Options::from_ms`] and what the filter's own `timestamp`
    /// conditions imply. The query service skips partitions outside `[from_ms, to_ms)`.
    pub from_ms: Option<i64>,
    /// Every matching entry's time is before this, epoch ms (see `from_ms`).
    pub to_ms: Option<i64>,
    /// The filter as lowered for each table in [`Translation::tables`] (the `WHERE` of that
    /// table's `SELECT`, time range included; `None`: every row), for callers that aggregate
    /// one table themselves, such as the connectivity map.
    pub filters: Vec<(Table, Option<sql::Expr>)>,
}

impl Translation {
    /// The filter lowered for `table`: `None` when the filter cannot match that table at all,
    /// `Some(None)` when it matches every row, `Some(Some(e))` for `WHERE e`.
    pub fn filter(&self, table: Table) -> Option<Option<&sql::Expr>> {
        self.filters.iter().find(|(t, _)| *t == table).map(|(_, e)| e.as_ref())
    }

    /// The SQL on one line.
    pub fn sql(&self) -> String {
        self.statement.to_string()
    }

    /// The SQL, indented over several lines.
    pub fn pretty_sql(&self) -> String {
        format!("{:#}", self.statement)
    }
}

/// Translates a parsed query (`None` = match everything).
pub(crate) fn translate(query: Option<&Expr>, options: &Options) -> Result<Translation> {
    let (cond, limit) = check(query, options)?;
    build(&cond, limit, options)
}

/// Checks a parsed KFL1 query into its condition and its `limit(n)`.
pub(crate) fn check(query: Option<&Expr>, options: &Options) -> Result<(Cond, Option<u64>)> {
    let mut limit = None;
    if let Some(e) = query {
        find_limits(e, true, &mut limit)?;
    }
    let cond = match query {
        Some(e) => {
            let v = Checker { now_ms: options.now_ms }.check(e)?;
            to_cond(v)?
        }
        None => Cond::Const(true),
    };
    Ok((cond, limit))
}

/// Lowers a checked condition (of either dialect) to the statement over the tables it can match.
pub(crate) fn build(cond: &Cond, limit: Option<u64>, options: &Options) -> Result<Translation> {
    let mut per_table = Vec::new();
    for table in STREAM_TABLES {
        let mut conjuncts = Vec::new();
        let time = sql_ident(table.time_column());
        if let Some(from) = options.from_ms {
            conjuncts.push(Low::E(bin(time.clone(), sql::BinaryOperator::GtEq, time_lit(from))));
        }
        if let Some(to) = options.to_ms {
            conjuncts.push(Low::E(bin(time, sql::BinaryOperator::Lt, time_lit(to))));
        }
        conjuncts.push(lower(cond, table));
        match fold(conjuncts, true) {
            Low::F => {}
            Low::T => per_table.push((table, None)),
            Low::E(e) => per_table.push((table, Some(e))),
        }
    }
    let limit_expr = limit.map(|n: u64| sql::Expr::value(sql::Value::Number(n.to_string(), false)));
    let tables: Vec<Table> = per_table.iter().map(|(t, _)| *t).collect();
    let filters = per_table.clone();
    let (body, order) = if per_table.len() <= 1 {
        let never = Some(sql::Expr::value(sql::Value::Boolean(false)));
        let (t, filter) = per_table.pop().unwrap_or((Table::Connections, never));
        (sql::SetExpr::Select(Box::new(select(vec![wildcard()], t, filter))), order_single(t))
    } else {
        let body = per_table
            .into_iter()
            .map(|(t, filter)| {
                sql::SetExpr::Select(Box::new(select(common_projection(t), t, filter)))
            })
            .reduce(|left, right| sql::SetExpr::SetOperation {
                left: Box::new(left),
                op: sql::SetOperator::Union,
                set_quantifier: sql::SetQuantifier::All,
                right: Box::new(right),
            });
        let Some(body) = body else {
            return Err(Error::new(ErrorClass::Internal, Span::default(), "no table to union"));
        };
        (body, vec![order_by(sql_ident(d::TS)), order_by(sql_ident(d::CONN_ID))])
    };
    let query = sql::Query {
        with: None,
        body: Box::new(body),
        order_by: Some(sql::OrderBy {
            kind: sql::OrderByKind::Expressions(order),
            interpolate: None,
        }),
        limit_clause: limit_expr.map(|l| sql::LimitClause::LimitOffset {
            limit: Some(l),
            offset: None,
            limit_by: vec![],
        }),
        fetch: None,
        locks: vec![],
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: vec![],
    };
    let (from_ms, to_ms) = intersect((options.from_ms, options.to_ms), time_bounds(cond));
    Ok(Translation {
        statement: sql::Statement::Query(Box::new(query)),
        tables,
        limit,
        from_ms,
        to_ms,
        filters,
    })
}

// ---------------------------------------------------------------------------------------------
// The time range a filter implies

/// `[from, to)` in epoch ms; `None` is unbounded on that side.
type Bounds = (Option<i64>, Option<i64>);

/// A range holding the time of every entry that `c` matches, from its comparisons of
/// `timestamp` (the time column of every stream table) with a time: `and` intersects, `or`
/// spans both sides, anything else leaves the range open. Conservative: the range may hold
/// entries `c` does not match, never the other way round.
fn time_bounds(c: &Cond) -> Bounds {
    match c {
        Cond::And(..) | Cond::Or(..) => {
            let (spine, last) = right_spine(c);
            let mut acc = time_bounds(last);
            for (is_and, a) in spine.into_iter().rev() {
                let b = time_bounds(a);
                acc = if is_and { intersect(b, acc) } else { span(b, acc) };
            }
            acc
        }
        Cond::Cmp { field, op, value: Value::TimeMs(t) } if field.name == TIMESTAMP => match op {
            CompareOp::Gt | CompareOp::Ge => (Some(*t), None),
            CompareOp::Lt => (None, Some(*t)),
            CompareOp::Le => (None, t.checked_add(1)),
            CompareOp::Eq => (Some(*t), t.checked_add(1)),
            CompareOp::Ne => (None, None),
        },
        _ => (None, None),
    }
}

/// The field every stream table has as its time column.
const TIMESTAMP: &str = "timestamp";

fn intersect(a: Bounds, b: Bounds) -> Bounds {
    let from = match (a.0, b.0) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    let to = match (a.1, b.1) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    (from, to)
}

fn span(a: Bounds, b: Bounds) -> Bounds {
    let from = a.0.zip(b.0).map(|(x, y)| x.min(y));
    let to = a.1.zip(b.1).map(|(x, y)| x.max(y));
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(q: &str, from_ms: Option<i64>, to_ms: Option<i64>) -> String {
        let ast = crate::parser::parse(q).unwrap();
        translate(ast.as_ref(), &Options { now_ms: 0, from_ms, to_ms, ..Options::default() })
            .unwrap()
            .sql()
    }

    #[test]
    fn time_range_applies_to_every_table() {
        assert_eq!(
            sql("tcp", Some(1000), Some(2000)),
            "SELECT * FROM connections WHERE start_ts >= TIMESTAMP '1970-01-01T00:00:01Z' \
             AND start_ts < TIMESTAMP '1970-01-01T00:00:02Z' AND protocol = 'tcp' \
             ORDER BY start_ts, conn_id"
        );
        let both = sql("", Some(0), None);
        assert!(
            both.contains("FROM connections WHERE start_ts >= TIMESTAMP '1970-01-01T00:00:00Z'")
        );
        assert!(both.contains("FROM dns WHERE ts >= TIMESTAMP '1970-01-01T00:00:00Z'"));
        assert_eq!(
            sql("tcp and dns", Some(0), None),
            "SELECT * FROM connections WHERE false ORDER BY start_ts, conn_id"
        );
    }

    fn bounds(q: &str, from_ms: Option<i64>, to_ms: Option<i64>) -> Bounds {
        let ast = crate::parser::parse(q).unwrap();
        let t =
            translate(ast.as_ref(), &Options { now_ms: 0, from_ms, to_ms, ..Options::default() })
                .unwrap();
        (t.from_ms, t.to_ms)
    }

    #[test]
    fn filters_imply_time_ranges() {
        assert_eq!(bounds("tcp", None, None), (None, None));
        assert_eq!(bounds("tcp", Some(5), Some(9)), (Some(5), Some(9)));
        assert_eq!(bounds("timestamp >= 1000 and tcp", None, None), (Some(1000), None));
        assert_eq!(bounds("tcp and timestamp < 2000", Some(1500), None), (Some(1500), Some(2000)));
        assert_eq!(bounds("timestamp <= 2000", None, Some(5000)), (None, Some(2001)));
        assert_eq!(bounds("timestamp == 7", None, None), (Some(7), Some(8)));
        assert_eq!(
            bounds("timestamp > 10 and timestamp < 20", Some(0), Some(15)),
            (Some(10), Some(15))
        );
        // `or` spans both sides, and is open if either side is.
        assert_eq!(
            bounds(
                "(timestamp > 10 and timestamp < 20) or (timestamp > 30 and timestamp < 40)",
                None,
                None
            ),
            (Some(10), Some(40))
        );
        assert_eq!(bounds("timestamp > 10 or tcp", None, None), (None, None));
        // Negations, other time fields and `!=` leave the range open.
        assert_eq!(bounds("!(timestamp < 10)", None, None), (None, None));
        assert_eq!(bounds("endTimestamp > 10", None, None), (None, None));
        assert_eq!(bounds("timestamp != 10", None, None), (None, None));
        // Relative times are frozen at `now`.
        assert_eq!(bounds("timestamp >= hours(-1)", None, None).0, Some(-3_600_000));
        // The longest chain the parser allows.
        let long = vec!["timestamp > 1"; 250].join(" and ");
        assert_eq!(bounds(&long, None, None), (Some(1), None));
    }

    #[test]
    fn alternating_chains_keep_kfl_grouping() {
        // a and (b or (c and d)): runs of one operator are flat, switches are parenthesised.
        assert_eq!(
            sql("dst.port == 1 and dst.port == 2 and dst.port == 3 or dst.port == 4 and dst.port == 5 or dst.port == 6", None, None)
                .split(" WHERE ")
                .nth(1)
                .unwrap()
                .split(" UNION ALL ")
                .next()
                .unwrap(),
            "dst_port = 1 AND dst_port = 2 AND (dst_port = 3 OR (dst_port = 4 AND (dst_port = 5 OR dst_port = 6)))"
        );
    }
}
