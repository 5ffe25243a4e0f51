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
use crate::ast::{Call, CompareOp, Expr, Literal, LogicalOp, Path, Segment, UnaryOp};
use crate::error::{Error, ErrorClass, Result};
use crate::fields::{self, Field, FieldType, STREAM_TABLES, Source};
use crate::span::Span;
use podwire_schemas::Table;
use podwire_schemas::connections::{self, col as c};
use podwire_schemas::dns::{self, col as d};
use podwire_schemas::endpoint::{self, SUFFIXES, Side};
use sqlparser::ast as sql;

/// The aliases podwire implements (KFL.md §1.8, §5.2).
pub const ALIASES: [&str; 5] = ["tcp", "udp", "icmp", "dns", "error"];

/// Kubeshark aliases of L7 dissectors: valid KFL, but podwire has no such entries.
const L7_ALIASES: &[&str] = &[
    "http",
    "http2",
    "grpc",
    "gql",
    "amqp",
    "kafka",
    "redis",
    "ws",
    "ldap",
    "radius",
    "diameter",
    "sctp",
    "syscall",
    "mongodb",
    "mysql",
    "postgresql",
    "gqlv1",
    "gqlv2",
];

/// KFL2 flags that are no KFL1 alias.
const KFL2_ALIASES: &[&str] = &["tcp_flow", "udp_flow", "tcp_conn", "udp_conn", "conn", "flow"];

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

// ---------------------------------------------------------------------------------------------
// limit(n)

/// Records the first non-zero `limit(n)` and rejects any not in a top-level conjunct.
fn find_limits(e: &Expr, top: bool, limit: &mut Option<u64>) -> Result<()> {
    match e {
        Expr::Call(call) if call.name == "limit" && call.receiver.is_none() => {
            if !top {
                return Err(Error::new(
                    ErrorClass::SemLimitPlacement,
                    call.span,
                    "`limit(n)` must be a top-level conjunct",
                )
                .hint("write `<filter> and limit(n)`; `limit` is always true, so under `or` or `!` it would match everything"));
            }
            let n = match call.args.as_slice() {
                [Expr::Literal(Literal::Number(n), _)] if n.fract() == 0.0 && *n < 1e15 => {
                    *n as u64
                }
                _ => {
                    return Err(Error::new(
                        ErrorClass::SemHelperArgs,
                        call.span,
                        "`limit` takes one non-negative integer",
                    )
                    .hint("e.g. `tcp and limit(100)`"));
                }
            };
            if limit.is_none() && n > 0 {
                *limit = Some(n);
            }
            Ok(())
        }
        Expr::Logical { .. } => {
            // Iterative along the right spine: chains can be MAX_DEPTH long.
            let (mut cur, mut top) = (e, top);
            while let Expr::Logical { op, lhs, rhs, .. } = cur {
                top = top && *op == LogicalOp::And;
                find_limits(lhs, top, limit)?;
                cur = rhs;
            }
            find_limits(cur, top, limit)
        }
        Expr::Group(inner, _) => find_limits(inner, top, limit),
        Expr::Compare { lhs, rhs, .. } => {
            find_limits(lhs, false, limit)?;
            find_limits(rhs, false, limit)
        }
        Expr::Unary { operand, .. } => find_limits(operand, false, limit),
        Expr::Call(call) => {
            if let Some(r) = &call.receiver {
                find_limits(r, false, limit)?;
            }
            call.args.iter().try_for_each(|a| find_limits(a, false, limit))
        }
        Expr::Member { base, .. } => find_limits(base, false, limit),
        Expr::Literal(..) | Expr::Path(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Checking: AST → table-independent conditions

/// A boolean condition over one entry, independent of the table: what both dialects check a
/// query into. Each atom is two-valued: on a table without the field, or on a NULL, it is FALSE
/// unless wrapped in [`Cond::Default`].
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    Const(bool),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Alias(&'static str),
    /// `field op value`, the value already in column units.
    Cmp {
        field: &'static Field,
        op: CompareOp,
        value: Value,
    },
    FieldCmp {
        lhs: &'static Field,
        op: CompareOp,
        rhs: &'static Field,
    },
    Regex {
        field: &'static Field,
        negated: bool,
        pattern: String,
    },
    Helper {
        func: &'static str,
        field: &'static Field,
        arg: Arg,
    },
    Truthy(&'static Field),
    Nil {
        field: &'static Field,
        negated: bool,
    },
    ListHas {
        field: &'static Field,
        negated: bool,
        value: String,
    },
    /// `length(field) op n` (characters of text, elements of a list).
    Len {
        field: &'static Field,
        op: CompareOp,
        n: f64,
    },
    /// KFL2's defaults: `inner` (an atom on `field`) where the field has a value, and the
    /// constant `otherwise` where it has none (the table lacks it, or the value is NULL), which
    /// is what the atom gives on the variable's default (`""`, `0`, `false`, `[]`).
    Default {
        inner: Box<Cond>,
        field: &'static Field,
        otherwise: bool,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Str(String),
    Num(f64),
    /// An exact integer (KFL2's `int`; connection ids exceed 2^53).
    Int(i64),
    Bool(bool),
    TimeMs(i64),
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Str(String),
    Field(&'static Field),
}

/// What a sub-expression is, before it becomes a condition.
#[derive(Debug, Clone)]
enum Val {
    Cond(Cond),
    Field(&'static Field),
    Lit(Lit, Span),
}

#[derive(Debug, Clone)]
enum Lit {
    Num(f64),
    Str(String),
    Bool(bool),
    Nil,
    Regex(String),
    TimeMs(i64),
}

impl Lit {
    /// Kubeshark's string form (KFL.md §1.7), used by `==` between literals.
    fn string_form(&self) -> String {
        match self {
            Lit::Num(n) => fmt_num(*n),
            Lit::Str(s) | Lit::Regex(s) => s.clone(),
            Lit::Bool(b) => b.to_string(),
            Lit::Nil => "null".to_string(),
            Lit::TimeMs(t) => t.to_string(),
        }
    }

    /// Kubeshark's number form, used by `<` and friends between literals.
    fn number_form(&self) -> f64 {
        match self {
            Lit::Num(n) => *n,
            Lit::Str(s) | Lit::Regex(s) => s.trim().parse().unwrap_or(0.0),
            Lit::Bool(b) => f64::from(u8::from(*b)),
            Lit::Nil => 0.0,
            Lit::TimeMs(t) => *t as f64,
        }
    }
}

struct Checker {
    now_ms: i64,
}

fn type_error(span: Span, message: impl Into<String>) -> Error {
    Error::new(ErrorClass::SemType, span, message)
}

impl Checker {
    fn check(&self, e: &Expr) -> Result<Val> {
        match e {
            Expr::Group(inner, _) => self.check(inner),
            Expr::Logical { .. } => {
                // Iterative along the right spine: chains can be MAX_DEPTH long.
                let mut spine = Vec::new();
                let mut cur = e;
                while let Expr::Logical { op, lhs, rhs, .. } = cur {
                    spine.push((*op, to_cond(self.check(lhs)?)?));
                    cur = rhs;
                }
                let mut acc = to_cond(self.check(cur)?)?;
                for (op, l) in spine.into_iter().rev() {
                    acc = match op {
                        LogicalOp::And => Cond::And(Box::new(l), Box::new(acc)),
                        LogicalOp::Or => Cond::Or(Box::new(l), Box::new(acc)),
                    };
                }
                Ok(Val::Cond(acc))
            }
            Expr::Unary { op: UnaryOp::Not, operand, span } => match self.check(operand)? {
                Val::Cond(c) => Ok(Val::Cond(Cond::Not(Box::new(c)))),
                Val::Lit(Lit::Bool(b), _) => Ok(Val::Lit(Lit::Bool(!b), *span)),
                Val::Field(f) if f.ty == FieldType::Bool => {
                    Ok(Val::Cond(Cond::Not(Box::new(Cond::Truthy(f)))))
                }
                Val::Field(f) => {
                    let hint = match f.ty {
                        FieldType::Str => {
                            format!("to test for an empty value write `{} == \"\"`", f.name)
                        }
                        _ => format!("to test for zero write `{} == 0`", f.name),
                    };
                    Err(type_error(
                        *span,
                        format!(
                            "`!` needs a boolean, but `{}` is {} {}",
                            f.name,
                            article(f.ty),
                            f.ty.name()
                        ),
                    )
                    .hint(hint))
                }
                Val::Lit(..) => Err(type_error(*span, "`!` needs a boolean")
                    .hint("negate a condition, e.g. `!(dst.port == 80)`")),
            },
            Expr::Unary { op: UnaryOp::Neg, operand, span } => match self.check(operand)? {
                Val::Lit(Lit::Num(n), _) => Ok(Val::Lit(Lit::Num(-n), *span)),
                _ => Err(type_error(*span, "unary `-` applies to number literals only")
                    .hint("KFL has no arithmetic on fields")),
            },
            Expr::Literal(l, span) => Ok(Val::Lit(
                match l {
                    Literal::Number(n) => Lit::Num(*n),
                    Literal::Str(s) => Lit::Str(s.clone()),
                    Literal::Bool(b) => Lit::Bool(*b),
                    Literal::Nil => Lit::Nil,
                    Literal::Regex(r) => {
                        check_regex(r, *span)?;
                        Lit::Regex(r.clone())
                    }
                },
                *span,
            )),
            Expr::Path(p) => self.path(p),
            Expr::Call(call) => self.call(call),
            Expr::Member { base, span, .. } => {
                if let Expr::Call(call) = base.as_ref()
                    && (call.name == "json" || call.name == "xml")
                {
                    return Err(unsupported_payload(call));
                }
                Err(Error::new(ErrorClass::SemHelperForm, *span, "a helper's result has no fields")
                    .hint("combine helpers with `and`, e.g. `a.startsWith(\"x\") and a.endsWith(\"y\")`"))
            }
            Expr::Compare { op, lhs, rhs, op_span, span } => {
                let l = self.check(lhs)?;
                let r = self.check(rhs)?;
                compare(*op, l, r, *op_span, *span)
            }
        }
    }

    fn path(&self, p: &Path) -> Result<Val> {
        if let Some(seg) = p.segments.iter().find(|s| matches!(s, Segment::Key(..))) {
            return Err(Error::new(
                ErrorClass::Unsupported,
                seg.span(),
                "map keys (`[\"…\"]`) are not supported",
            )
            .hint("podwire stores L4 connections and DNS: there are no header, label or payload columns"));
        }
        let key = p.key();
        if p.segments.len() == 1 {
            if let Some(alias) = ALIASES.iter().find(|a| **a == key) {
                return Ok(Val::Cond(Cond::Alias(alias)));
            }
            if key == "now" {
                return Ok(Val::Lit(Lit::TimeMs(self.now_ms), p.span));
            }
            if L7_ALIASES.contains(&key.as_str()) {
                return Err(Error::new(
                    ErrorClass::Unsupported,
                    p.span,
                    format!("alias `{key}` selects L7 entries, which podwire does not record"),
                )
                .hint("podwire's entries are connections (`tcp`, `udp`, `icmp`) and DNS (`dns`)"));
            }
            if KFL2_ALIASES.contains(&key.as_str()) {
                return Err(Error::new(
                    ErrorClass::SemUnknownAlias,
                    p.span,
                    format!("`{key}` is a KFL2 variable, not a KFL1 alias"),
                )
                .hint("the aliases are `tcp`, `udp`, `icmp`, `dns` and `error`"));
            }
        }
        match fields::lookup(&key) {
            Some(f) => Ok(Val::Field(f)),
            None => Err(unknown_field(&key, p.span)),
        }
    }

    fn call(&self, call: &Call) -> Result<Val> {
        let name = call.name.as_str();
        match name {
            "startsWith" | "endsWith" | "contains" => self.helper(call),
            "datetime" | "now" | "seconds" | "minutes" | "hours" | "days" | "weeks" | "months"
            | "years" | "limit" => {
                if call.receiver.is_some() {
                    return Err(Error::new(
                        ErrorClass::SemHelperForm,
                        call.name_span,
                        format!("`{name}` is a function, not a method"),
                    )
                    .hint(format!("call it alone, e.g. `{name}(…)`")));
                }
                self.function(call)
            }
            "json" | "xml" => Err(unsupported_payload(call)),
            "redact" => Err(Error::new(
                ErrorClass::Unsupported,
                call.name_span,
                "`redact` changes records, it does not filter them",
            )
            .hint("remove it: podwire's API returns stored columns only")),
            _ => {
                let hint = match name {
                    "matches" => "KFL1 matches a regex with `field == r\"pattern\"`".to_string(),
                    "rlimit" => "`rlimit` was Basenine-only; use `limit(n)`".to_string(),
                    _ => "helpers are `startsWith`, `endsWith`, `contains`; functions are `datetime`, `now`, `seconds` … `years` and `limit`".to_string(),
                };
                Err(Error::new(
                    ErrorClass::SemUnknownHelper,
                    call.name_span,
                    format!("unknown helper `{name}`"),
                )
                .hint(hint))
            }
        }
    }

    fn helper(&self, call: &Call) -> Result<Val> {
        let name = call.name.as_str();
        let form = |msg: &str| {
            Error::new(ErrorClass::SemHelperForm, call.span, msg.to_string())
                .hint(format!("write `field.{name}(\"text\")` and combine helpers with `and`"))
        };
        let field = match call.receiver.as_deref() {
            None => return Err(form(&format!("`{name}` is a method: call it on a field"))),
            Some(Expr::Call(_)) => return Err(form("helpers cannot be chained")),
            Some(r) => match self.check(r)? {
                Val::Field(f) => f,
                _ => {
                    return Err(type_error(
                        r.span(),
                        format!("`{name}` needs a field before the dot"),
                    ));
                }
            },
        };
        let func = match name {
            "startsWith" => "starts_with",
            "endsWith" => "ends_with",
            _ => "contains",
        };
        if !matches!(field.ty, FieldType::Str | FieldType::Int) {
            return Err(type_error(
                call.span,
                format!(
                    "`{name}` needs text, but `{}` is {} {}",
                    field.name,
                    article(field.ty),
                    field.ty.name()
                ),
            ));
        }
        let [arg] = call.args.as_slice() else {
            return Err(Error::new(
                ErrorClass::SemHelperArgs,
                call.span,
                format!("`{name}` takes exactly one argument, got {}", call.args.len()),
            )
            .hint(format!("e.g. `{}.{name}(\"api\")`", field.name)));
        };
        let arg = match self.check(arg)? {
            Val::Lit(Lit::Str(s), _) => Arg::Str(s),
            Val::Lit(Lit::Num(n), _) => Arg::Str(fmt_num(n)),
            Val::Field(f) if f.ty == FieldType::Str => Arg::Field(f),
            _ => {
                return Err(Error::new(
                    ErrorClass::SemHelperArgs,
                    arg.span(),
                    format!("`{name}` takes a string, a number or a text field"),
                ));
            }
        };
        Ok(Val::Cond(Cond::Helper { func, field, arg }))
    }

    fn function(&self, call: &Call) -> Result<Val> {
        let name = call.name.as_str();
        let args_error = |msg: String| Error::new(ErrorClass::SemHelperArgs, call.span, msg);
        let unit_ms: i64 = match name {
            "limit" => return Ok(Val::Cond(Cond::Const(true))), // checked by `find_limits`
            "now" => {
                if !call.args.is_empty() {
                    return Err(args_error("`now()` takes no arguments".into()));
                }
                return Ok(Val::Lit(Lit::TimeMs(self.now_ms), call.span));
            }
            "datetime" => {
                let [arg] = call.args.as_slice() else {
                    return Err(args_error("`datetime` takes one string".into()));
                };
                let Val::Lit(Lit::Str(s), span) = self.check(arg)? else {
                    return Err(args_error("`datetime` takes one string".into()));
                };
                return match parse_datetime(&s) {
                    Some(ms) => Ok(Val::Lit(Lit::TimeMs(ms), call.span)),
                    None => Err(Error::new(
                        ErrorClass::SemInvalidDatetime,
                        span,
                        format!("`{s}` is not a KFL date"),
                    )
                    .hint("the layout is `M/D/YYYY, h:mm:ss[.SSS] AM` in UTC, e.g. \"10/19/2021, 6:29:02.000 PM\"")),
                };
            }
            "seconds" => 1_000,
            "minutes" => 60_000,
            "hours" => 3_600_000,
            "days" => 86_400_000,
            "weeks" => 7 * 86_400_000,
            "months" => 30 * 86_400_000,
            _ => 365 * 86_400_000,
        };
        let n = match call.args.as_slice() {
            [arg] => match self.check(arg)? {
                Val::Lit(Lit::Num(n), _) => n,
                _ => return Err(args_error(format!("`{name}` takes one number"))),
            },
            _ => return Err(args_error(format!("`{name}` takes one number, e.g. `{name}(-5)`"))),
        };
        let offset = n * unit_ms as f64;
        if !offset.is_finite() || offset.abs() > 1e15 {
            return Err(args_error(format!("`{name}({})` is out of range", fmt_num(n))));
        }
        Ok(Val::Lit(Lit::TimeMs(self.now_ms.saturating_add(offset.round() as i64)), call.span))
    }
}

fn article(t: FieldType) -> &'static str {
    if t == FieldType::Int { "an" } else { "a" }
}

fn unsupported_payload(call: &Call) -> Error {
    Error::new(
        ErrorClass::Unsupported,
        call.name_span,
        format!("`{}()` reads payloads, which podwire does not store", call.name),
    )
    .hint("filter on connection and DNS fields; `podwire fields` lists them")
}

fn unknown_field(key: &str, span: Span) -> Error {
    let mut e = Error::new(ErrorClass::SemUnknownField, span, format!("unknown field `{key}`"));
    let suggestions = fields::suggest(key, ALIASES);
    e = if key == "null" {
        e.hint("KFL1 writes `nil`")
    } else if suggestions.is_empty() {
        e.hint("`podwire fields` lists the fields")
    } else {
        let list: Vec<String> = suggestions.iter().map(|s| format!("`{s}`")).collect();
        e.hint(format!("did you mean {}?", list.join(", ")))
    };
    e
}

pub(crate) fn check_regex(pattern: &str, span: Span) -> Result<()> {
    match regex_syntax::Parser::new().parse(pattern) {
        Ok(_) => Ok(()),
        Err(err) => {
            let detail = err.to_string();
            let last = detail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid");
            Err(Error::new(
                ErrorClass::SemInvalidRegex,
                span,
                format!("invalid regex: {}", last.trim().trim_start_matches("error: ")),
            )
            .hint("regexes use RE2/Rust syntax and are unanchored"))
        }
    }
}

/// Turns a value used as an operand of `and`/`or` (or as the whole query) into a condition,
/// with Kubeshark's truthiness.
fn to_cond(v: Val) -> Result<Cond> {
    Ok(match v {
        Val::Cond(c) => c,
        Val::Field(f) => Cond::Truthy(f),
        Val::Lit(l, span) => Cond::Const(match l {
            Lit::Num(n) => n > 0.0,
            Lit::Str(s) => !s.is_empty(),
            Lit::Bool(b) => b,
            Lit::Nil => false,
            Lit::TimeMs(t) => t > 0,
            Lit::Regex(_) => {
                return Err(type_error(span, "a regex must be compared with a field")
                    .hint("e.g. `dst.name == r\"^api-\"`"));
            }
        }),
    })
}

fn compare(op: CompareOp, l: Val, r: Val, op_span: Span, span: Span) -> Result<Val> {
    match (l, r) {
        (Val::Lit(a, _), Val::Lit(b, _)) => {
            if matches!(a, Lit::Regex(_)) || matches!(b, Lit::Regex(_)) {
                return Err(type_error(span, "a regex must be compared with a field"));
            }
            let res = match op {
                CompareOp::Eq => a.string_form() == b.string_form(),
                CompareOp::Ne => a.string_form() != b.string_form(),
                CompareOp::Lt => a.number_form() < b.number_form(),
                CompareOp::Le => a.number_form() <= b.number_form(),
                CompareOp::Gt => a.number_form() > b.number_form(),
                CompareOp::Ge => a.number_form() >= b.number_form(),
            };
            Ok(Val::Lit(Lit::Bool(res), span))
        }
        (Val::Lit(lit, ls), Val::Field(f)) => field_vs_lit(f, op.flip(), lit, ls, op_span),
        (Val::Field(f), Val::Lit(lit, ls)) => field_vs_lit(f, op, lit, ls, op_span),
        (Val::Field(a), Val::Field(b)) => {
            let ok = a.ty == b.ty
                && a.ty != FieldType::StrList
                && (!op.is_ordering() || matches!(a.ty, FieldType::Int | FieldType::Time));
            if !ok {
                return Err(type_error(
                    op_span,
                    format!(
                        "cannot compare `{}` ({}) {} `{}` ({})",
                        a.name,
                        a.ty.name(),
                        op.as_str(),
                        b.name,
                        b.ty.name()
                    ),
                ));
            }
            Ok(Val::Cond(Cond::FieldCmp { lhs: a, op, rhs: b }))
        }
        (Val::Cond(c), Val::Lit(lit, _)) | (Val::Lit(lit, _), Val::Cond(c)) => {
            let b = match lit {
                Lit::Bool(b) => Some(b),
                Lit::Str(s) if s == "true" || s == "false" => Some(s == "true"),
                _ => None,
            };
            match (op, b) {
                (CompareOp::Eq, Some(true)) | (CompareOp::Ne, Some(false)) => Ok(Val::Cond(c)),
                (CompareOp::Eq, Some(false)) | (CompareOp::Ne, Some(true)) => {
                    Ok(Val::Cond(Cond::Not(Box::new(c))))
                }
                _ => Err(type_error(op_span, "a condition compares only with `true` or `false`")
                    .hint("e.g. `src.name.startsWith(\"api\") == false`, or `!` to negate")),
            }
        }
        _ => {
            Err(type_error(op_span, "cannot compare a condition with a field or another condition")
                .hint("combine conditions with `and` and `or`"))
        }
    }
}

fn field_vs_lit(
    f: &'static Field,
    op: CompareOp,
    lit: Lit,
    lit_span: Span,
    op_span: Span,
) -> Result<Val> {
    let cond = |c: Cond| Ok(Val::Cond(c));
    let never = || cond(Cond::Const(op == CompareOp::Ne));
    let cmp = |value: Value| cond(Cond::Cmp { field: f, op, value });
    let ordering_error = || {
        Err(type_error(
            op_span,
            format!(
                "`{}` orders numbers and times; `{}` is {} {}",
                op.as_str(),
                f.name,
                article(f.ty),
                f.ty.name()
            ),
        )
        .hint(match f.ty {
            FieldType::Str => {
                "for text use `==`, `startsWith`, `endsWith`, `contains` or a regex `r\"…\"`"
            }
            _ => "compare with `==` or `!=`",
        }))
    };
    match lit {
        Lit::Regex(pattern) => {
            if op.is_ordering() {
                return ordering_error();
            }
            if !matches!(f.ty, FieldType::Str | FieldType::Int) {
                return Err(type_error(lit_span, format!("a regex needs a text field; `{}` is {} {}", f.name, article(f.ty), f.ty.name())));
            }
            cond(Cond::Regex { field: f, negated: op == CompareOp::Ne, pattern })
        }
        Lit::Nil => {
            if op.is_ordering() {
                return ordering_error();
            }
            cond(Cond::Nil { field: f, negated: op == CompareOp::Ne })
        }
        lit => match f.ty {
            FieldType::Str => {
                if op.is_ordering() {
                    return ordering_error();
                }
                let s = match lit {
                    Lit::Str(s) => s,
                    Lit::Num(n) => fmt_num(n),
                    Lit::Bool(b) => b.to_string(),
                    _ => return Err(type_error(lit_span, format!("`{}` is text, not a time", f.name))),
                };
                let s = f.values.iter().find(|(k, _)| *k == s).map_or(s, |(_, v)| v.to_string());
                cmp(Value::Str(s))
            }
            FieldType::Int => match lit {
                Lit::Num(n) => cmp(Value::Num(n * f.scale as f64)),
                Lit::Str(s) => match s.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => cmp(Value::Num(n * f.scale as f64)),
                    _ if op.is_ordering() => Err(type_error(lit_span, format!("`{}` is a number; `\"{s}\"` is not", f.name))),
                    _ => never(),
                },
                Lit::Bool(b) if op.is_ordering() => cmp(Value::Num(f64::from(u8::from(b)))),
                Lit::Bool(_) => never(),
                _ => Err(type_error(lit_span, format!("`{}` is a number, not a time", f.name))),
            },
            FieldType::Time => match lit {
                Lit::Num(n) if n.abs() < 1e15 => cmp(Value::TimeMs(n.round() as i64)),
                Lit::TimeMs(t) => cmp(Value::TimeMs(t)),
                _ => Err(type_error(lit_span, format!("`{}` compares with epoch milliseconds or a time function", f.name))
                    .hint("e.g. `timestamp >= datetime(\"10/19/2021, 6:29:02 PM\")` or `timestamp >= hours(-1)`")),
            },
            FieldType::Bool => {
                if op.is_ordering() {
                    return ordering_error();
                }
                match lit {
                    Lit::Bool(b) => cmp(Value::Bool(b)),
                    Lit::Str(s) if s == "true" || s == "false" => cmp(Value::Bool(s == "true")),
                    _ => never(),
                }
            }
            FieldType::StrList => {
                if op.is_ordering() {
                    return ordering_error();
                }
                let value = match lit {
                    Lit::Str(s) => s,
                    Lit::Num(n) => fmt_num(n),
                    _ => return Err(type_error(lit_span, format!("`{}` holds text", f.name))),
                };
                cond(Cond::ListHas { field: f, negated: op == CompareOp::Ne, value })
            }
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Lowering: condition × table → SQL

/// A condition lowered for one table: folded to a constant, or SQL.
// Short-lived and moved, never stored in bulk: boxing the SQL would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Low {
    T,
    F,
    E(sql::Expr),
}

/// The right spine of an `and`/`or` chain, walked without recursion (a chain can be as long as
/// the parser allows): each left operand with its operator (`true` for `and`), and the last
/// operand.
fn right_spine(c: &Cond) -> (Vec<(bool, &Cond)>, &Cond) {
    let mut spine = Vec::new();
    let mut cur = c;
    loop {
        let (is_and, a, b) = match cur {
            Cond::And(a, b) => (true, a, b),
            Cond::Or(a, b) => (false, a, b),
            _ => return (spine, cur),
        };
        spine.push((is_and, a.as_ref()));
        cur = b;
    }
}

fn lower(c: &Cond, t: Table) -> Low {
    match c {
        Cond::Const(b) => bool_low(*b),
        Cond::And(..) | Cond::Or(..) => {
            // Fold the right spine from the end, flattening runs of the same operator into one
            // AND (OR) list.
            let (spine, last) = right_spine(c);
            let mut run = vec![lower(last, t)];
            let mut run_op = None;
            for (is_and, a) in spine.into_iter().rev() {
                let l = lower(a, t);
                if let Some(op) = run_op
                    && op != is_and
                {
                    run.reverse();
                    run = vec![fold(run, op)];
                }
                run_op = Some(is_and);
                run.push(l);
            }
            run.reverse();
            match run_op {
                Some(op) => fold(run, op),
                None => fold(run, true),
            }
        }
        Cond::Not(inner) => match lower(inner, t) {
            Low::T => Low::F,
            Low::F => Low::T,
            Low::E(e) => {
                Low::E(sql::Expr::UnaryOp { op: sql::UnaryOperator::Not, expr: Box::new(nest(e)) })
            }
        },
        Cond::Alias(a) => alias(a, t),
        Cond::Cmp { field, op, value } => {
            let Some(src) = field.source(t) else { return Low::F };
            if let Some(k) = const_value(src)
                && let Some(b) = static_cmp(&k, *op, value)
            {
                return bool_low(b);
            }
            if let (CompareOp::Eq | CompareOp::Ne, Value::Str(v)) = (op, value)
                && let Some(eq) = equals_derived(src, v)
            {
                return match (op, eq) {
                    (CompareOp::Eq, e) => e,
                    (_, Low::T) => Low::F,
                    (_, Low::F) => Low::T,
                    (_, Low::E(e)) => Low::E(sql::Expr::UnaryOp {
                        op: sql::UnaryOperator::Not,
                        expr: Box::new(nest(e)),
                    }),
                };
            }
            if let (CompareOp::Eq | CompareOp::Ne, Value::Int(n), Source::RcodeNumber) =
                (op, value, src)
            {
                let eq = rcode_equals(*n);
                return if *op == CompareOp::Eq {
                    Low::E(eq)
                } else {
                    Low::E(sql::Expr::UnaryOp {
                        op: sql::UnaryOperator::Not,
                        expr: Box::new(nest(eq)),
                    })
                };
            }
            guard(field, src, bin(column(src), cmp_op(*op), value_expr(value)))
        }
        Cond::FieldCmp { lhs, op, rhs } => {
            let (Some(a), Some(b)) = (lhs.source(t), rhs.source(t)) else { return Low::F };
            let e = bin(column(a), cmp_op(*op), column(b));
            let e = if lhs.nullable { null_guard(column(a), e) } else { e };
            if rhs.nullable { Low::E(null_guard(column(b), e)) } else { Low::E(e) }
        }
        Cond::Regex { field, negated, pattern } => {
            let Some(src) = field.source(t) else { return Low::F };
            let op = if *negated {
                sql::BinaryOperator::PGRegexNotMatch
            } else {
                sql::BinaryOperator::PGRegexMatch
            };
            guard(field, src, bin(text(field, src), op, str_lit(pattern)))
        }
        Cond::Helper { func, field, arg } => {
            let Some(src) = field.source(t) else { return Low::F };
            let arg = match arg {
                Arg::Str(s) => str_lit(s),
                Arg::Field(f) => match f.source(t) {
                    Some(a) => column(a),
                    None => return Low::F,
                },
            };
            guard(field, src, function(func, vec![text(field, src), arg]))
        }
        Cond::Truthy(field) => {
            let Some(src) = field.source(t) else { return Low::F };
            match (src, field.ty) {
                (Source::ConstBool(b), _) => bool_low(b),
                (Source::ConstStr(s), _) => bool_low(!s.is_empty()),
                (_, FieldType::Str) => {
                    Low::E(bin(column(src), sql::BinaryOperator::NotEq, str_lit("")))
                }
                (_, FieldType::Int) => {
                    guard(field, src, bin(column(src), sql::BinaryOperator::Gt, num_lit(0.0)))
                }
                (_, FieldType::Bool) => Low::E(column(src)),
                (_, FieldType::StrList) => Low::E(bin(
                    function("cardinality", vec![column(src)]),
                    sql::BinaryOperator::Gt,
                    num_lit(0.0),
                )),
                (_, FieldType::Time) => Low::T,
            }
        }
        Cond::Nil { field, negated } => {
            let Some(src) = field.source(t) else { return Low::F };
            let e = match (src, field.ty) {
                (Source::ConstStr(s), _) => return bool_low(s.is_empty() != *negated),
                (Source::ConstBool(_), _) => return bool_low(*negated),
                _ if field.nullable => {
                    let e = Box::new(column(src));
                    if *negated { sql::Expr::IsNotNull(e) } else { sql::Expr::IsNull(e) }
                }
                (_, FieldType::Str) => {
                    let op =
                        if *negated { sql::BinaryOperator::NotEq } else { sql::BinaryOperator::Eq };
                    bin(column(src), op, str_lit(""))
                }
                _ => return bool_low(*negated),
            };
            Low::E(e)
        }
        Cond::Len { field, op, n } => {
            let Some(src) = field.source(t) else { return Low::F };
            let len =
                if field.ty == FieldType::StrList { "cardinality" } else { "character_length" };
            guard(field, src, bin(function(len, vec![column(src)]), cmp_op(*op), num_lit(*n)))
        }
        Cond::Default { inner, field, otherwise } => {
            let Some(src) = field.source(t) else { return bool_low(*otherwise) };
            let low = lower(inner, t);
            if field.nullable && *otherwise {
                fold(vec![Low::E(sql::Expr::IsNull(Box::new(column(src)))), low], false)
            } else {
                low
            }
        }
        Cond::ListHas { field, negated, value } => {
            let Some(src) = field.source(t) else { return Low::F };
            let has = function("array_has", vec![column(src), str_lit(value)]);
            if *negated {
                let nonempty = bin(
                    function("cardinality", vec![column(src)]),
                    sql::BinaryOperator::Gt,
                    num_lit(0.0),
                );
                let not_has =
                    sql::Expr::UnaryOp { op: sql::UnaryOperator::Not, expr: Box::new(has) };
                fold(vec![Low::E(nonempty), Low::E(not_has)], true)
            } else {
                Low::E(has)
            }
        }
    }
}

fn bool_low(b: bool) -> Low {
    if b { Low::T } else { Low::F }
}

/// Joins lowered items with AND (or OR), folding constants; children of the other operator are
/// parenthesised.
fn fold(items: Vec<Low>, is_and: bool) -> Low {
    let (absorbing, neutral) = if is_and { (Low::F, Low::T) } else { (Low::T, Low::F) };
    let mut exprs = Vec::new();
    for item in items {
        match item {
            Low::E(e) => exprs.push(e),
            Low::T if is_and => {}
            Low::F if !is_and => {}
            _ => return absorbing,
        }
    }
    let op = if is_and { sql::BinaryOperator::And } else { sql::BinaryOperator::Or };
    let wrap = |e: sql::Expr| match &e {
        sql::Expr::BinaryOp { op: inner, .. }
            if matches!(inner, sql::BinaryOperator::And | sql::BinaryOperator::Or)
                && *inner != op =>
        {
            nest(e)
        }
        _ => e,
    };
    let mut it = exprs.into_iter();
    let Some(first) = it.next() else { return neutral };
    let mut acc = wrap(first);
    for e in it {
        acc = bin(acc, op.clone(), wrap(e));
    }
    Low::E(acc)
}

fn alias(a: &str, t: Table) -> Low {
    let is = |p: &str| Low::E(bin(sql_ident(c::PROTOCOL), sql::BinaryOperator::Eq, str_lit(p)));
    match (a, t) {
        ("tcp", Table::Connections) => is(connections::protocol::TCP),
        ("udp", Table::Connections) => is(connections::protocol::UDP),
        ("icmp", Table::Connections) => is(connections::protocol::ICMP),
        ("dns", Table::Dns) => Low::T,
        ("error", Table::Connections) => {
            // Failed connections: no answer to a TCP SYN, refused, reset, aborted, unreachable.
            // A UDP flow without a reply is not an error (one-way protocols are normal).
            let failed = sql::Expr::InList {
                expr: Box::new(sql_ident(c::OUTCOME)),
                list: [
                    connections::outcome::RESET,
                    connections::outcome::REFUSED,
                    connections::outcome::ABORTED,
                    connections::outcome::UNREACHABLE,
                ]
                .into_iter()
                .map(str_lit)
                .collect(),
                negated: false,
            };
            let syn_unanswered = fold(
                vec![
                    is(connections::protocol::TCP),
                    Low::E(bin(
                        sql_ident(c::OUTCOME),
                        sql::BinaryOperator::Eq,
                        str_lit(connections::outcome::NO_ANSWER),
                    )),
                ],
                true,
            );
            fold(vec![Low::E(failed), syn_unanswered], false)
        }
        ("error", Table::Dns) => fold(
            vec![
                Low::E(bin(sql_ident(d::RCODE), sql::BinaryOperator::NotEq, str_lit(RCODE_OK))),
                Low::E(bin(
                    sql_ident(d::OUTCOME),
                    sql::BinaryOperator::Eq,
                    str_lit(dns::outcome::NO_RESPONSE),
                )),
            ],
            false,
        ),
        _ => Low::F,
    }
}

/// The `rcode` of a successful DNS response.
const RCODE_OK: &str = "NOERROR";

/// Adds `col IS NOT NULL AND …` for nullable columns, so that `!` of a comparison with NULL is
/// TRUE (a comparison with NULL is FALSE, not unknown).
fn guard(field: &Field, src: Source, e: sql::Expr) -> Low {
    if field.nullable { Low::E(null_guard(column(src), e)) } else { Low::E(e) }
}

fn null_guard(col: sql::Expr, e: sql::Expr) -> sql::Expr {
    bin(sql::Expr::IsNotNull(Box::new(col)), sql::BinaryOperator::And, e)
}

#[derive(Debug)]
enum ConstVal {
    Str(&'static str),
    Bool(bool),
}

fn const_value(src: Source) -> Option<ConstVal> {
    match src {
        Source::ConstStr(s) => Some(ConstVal::Str(s)),
        Source::ConstBool(b) => Some(ConstVal::Bool(b)),
        _ => None,
    }
}

fn static_cmp(k: &ConstVal, op: CompareOp, v: &Value) -> Option<bool> {
    let eq = match (k, v) {
        (ConstVal::Str(a), Value::Str(b)) => *a == b.as_str(),
        (ConstVal::Bool(a), Value::Bool(b)) => a == b,
        _ => return None,
    };
    match op {
        CompareOp::Eq => Some(eq),
        CompareOp::Ne => Some(!eq),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// SQL building blocks

fn sql_ident(name: &str) -> sql::Expr {
    sql::Expr::Identifier(sql::Ident::new(name))
}

fn column(src: Source) -> sql::Expr {
    match src {
        Source::Column(c) => sql_ident(c),
        Source::Endpoint(side, suffix) => sql_ident(&side.column(suffix)),
        Source::Sum(a, b) => nest(bin(sql_ident(a), sql::BinaryOperator::Plus, sql_ident(b))),
        Source::ConstStr(s) => str_lit(s),
        Source::ConstBool(b) => sql::Expr::value(sql::Value::Boolean(b)),
        Source::Upper(col) => function("upper", vec![sql_ident(col)]),
        Source::PodOrService(side) => {
            let pod = sql_ident(&side.column(endpoint::POD));
            case(
                vec![(bin(pod.clone(), sql::BinaryOperator::NotEq, str_lit("")), pod)],
                sql_ident(&side.column(endpoint::SERVICE)),
            )
        }
        Source::IfSet { side, test, value } => case(
            vec![(
                bin(sql_ident(&side.column(test)), sql::BinaryOperator::NotEq, str_lit("")),
                sql_ident(&side.column(value)),
            )],
            str_lit(""),
        ),
        Source::NotEqual(col, v) => {
            nest(bin(sql_ident(col), sql::BinaryOperator::NotEq, str_lit(v)))
        }
        Source::ListOf(col) => function("make_array", vec![sql_ident(col)]),
        Source::ConnState => case(
            vec![(
                bin(
                    sql::Expr::UnaryOp {
                        op: sql::UnaryOperator::Not,
                        expr: Box::new(sql_ident(c::IS_FINAL)),
                    },
                    sql::BinaryOperator::Or,
                    bin(
                        sql_ident(c::OUTCOME),
                        sql::BinaryOperator::Eq,
                        str_lit(connections::outcome::OPEN),
                    ),
                ),
                str_lit(CONN_OPEN),
            )],
            str_lit(CONN_CLOSED),
        ),
        Source::RcodeNumber => {
            let rcode = sql_ident(d::RCODE);
            let mut arms: Vec<(sql::Expr, sql::Expr)> = dns::RCODE_NAMES
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    (bin(rcode.clone(), sql::BinaryOperator::Eq, str_lit(name)), num_lit(i as f64))
                })
                .collect();
            arms.push((
                sql::Expr::Like {
                    negated: false,
                    any: false,
                    expr: Box::new(rcode.clone()),
                    pattern: Box::new(str_lit(&format!("{}%", dns::RCODE_PREFIX))),
                    escape_char: None,
                },
                sql::Expr::Cast {
                    kind: sql::CastKind::Cast,
                    expr: Box::new(function(
                        "replace",
                        vec![rcode, str_lit(dns::RCODE_PREFIX), str_lit("")],
                    )),
                    data_type: sql::DataType::BigInt(None),
                    array: false,
                    format: None,
                },
            ));
            case(arms, num_lit(0.0))
        }
    }
}

/// `derived == v` for the sources that are expressions over columns, written on the columns
/// themselves so that statistics and pushdown still apply (`None`: compare the expression). The
/// columns are never NULL, so `!=` is the negation.
fn equals_derived(src: Source, v: &str) -> Option<Low> {
    let eq = |col: sql::Expr, v: &str| bin(col, sql::BinaryOperator::Eq, str_lit(v));
    Some(match src {
        // The stored protocols are lower case: `upper(protocol) = 'TCP'` is `protocol = 'tcp'`.
        Source::Upper(col) if v.chars().all(|c| !c.is_lowercase()) => {
            Low::E(eq(sql_ident(col), &v.to_lowercase()))
        }
        Source::Upper(_) => Low::F,
        Source::PodOrService(side) => {
            let pod = sql_ident(&side.column(endpoint::POD));
            let service = sql_ident(&side.column(endpoint::SERVICE));
            Low::E(bin(
                eq(pod.clone(), v),
                sql::BinaryOperator::Or,
                nest(bin(eq(pod, ""), sql::BinaryOperator::And, eq(service, v))),
            ))
        }
        Source::IfSet { side, test, value } if !v.is_empty() => {
            let t = bin(sql_ident(&side.column(test)), sql::BinaryOperator::NotEq, str_lit(""));
            Low::E(bin(t, sql::BinaryOperator::And, eq(sql_ident(&side.column(value)), v)))
        }
        Source::ConnState => {
            let not_final = sql::Expr::UnaryOp {
                op: sql::UnaryOperator::Not,
                expr: Box::new(sql_ident(c::IS_FINAL)),
            };
            let open = eq(sql_ident(c::OUTCOME), connections::outcome::OPEN);
            match v {
                CONN_OPEN => Low::E(bin(not_final, sql::BinaryOperator::Or, open)),
                CONN_CLOSED => Low::E(bin(
                    sql_ident(c::IS_FINAL),
                    sql::BinaryOperator::And,
                    bin(
                        sql_ident(c::OUTCOME),
                        sql::BinaryOperator::NotEq,
                        str_lit(connections::outcome::OPEN),
                    ),
                )),
                _ => Low::F,
            }
        }
        _ => return None,
    })
}

/// `status_code == n` on the stored `rcode` text (no response is 0, as NOERROR).
fn rcode_equals(n: i64) -> sql::Expr {
    let rcode = sql_ident(d::RCODE);
    let name = usize::try_from(n).ok().and_then(|i| dns::RCODE_NAMES.get(i));
    match (n, name) {
        (0, _) => sql::Expr::InList {
            expr: Box::new(rcode),
            list: vec![str_lit(RCODE_OK), str_lit("")],
            negated: false,
        },
        (_, Some(name)) => bin(rcode, sql::BinaryOperator::Eq, str_lit(name)),
        _ => bin(rcode, sql::BinaryOperator::Eq, str_lit(&format!("{}{n}", dns::RCODE_PREFIX))),
    }
}

/// KFL2's `conn_state` values podwire gives (it has no `in_progress`: a connection row is open
/// until its last).
pub(crate) const CONN_OPEN: &str = "open";
/// See [`CONN_OPEN`].
pub(crate) const CONN_CLOSED: &str = "closed";

/// `CASE WHEN c1 THEN v1 … ELSE otherwise END`.
fn case(arms: Vec<(sql::Expr, sql::Expr)>, otherwise: sql::Expr) -> sql::Expr {
    sql::Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: arms
            .into_iter()
            .map(|(condition, result)| sql::CaseWhen { condition, result })
            .collect(),
        else_result: Some(Box::new(otherwise)),
    }
}

/// The field as text: numbers are cast, as Kubeshark compares their string form.
fn text(field: &Field, src: Source) -> sql::Expr {
    if field.ty == FieldType::Int {
        sql::Expr::Cast {
            kind: sql::CastKind::Cast,
            expr: Box::new(column(src)),
            data_type: sql::DataType::Varchar(None),
            array: false,
            format: None,
        }
    } else {
        column(src)
    }
}

fn nest(e: sql::Expr) -> sql::Expr {
    match e {
        sql::Expr::BinaryOp { .. } | sql::Expr::InList { .. } | sql::Expr::UnaryOp { .. } => {
            sql::Expr::Nested(Box::new(e))
        }
        other => other,
    }
}

fn bin(l: sql::Expr, op: sql::BinaryOperator, r: sql::Expr) -> sql::Expr {
    sql::Expr::BinaryOp { left: Box::new(l), op, right: Box::new(r) }
}

fn cmp_op(op: CompareOp) -> sql::BinaryOperator {
    match op {
        CompareOp::Eq => sql::BinaryOperator::Eq,
        CompareOp::Ne => sql::BinaryOperator::NotEq,
        CompareOp::Lt => sql::BinaryOperator::Lt,
        CompareOp::Le => sql::BinaryOperator::LtEq,
        CompareOp::Gt => sql::BinaryOperator::Gt,
        CompareOp::Ge => sql::BinaryOperator::GtEq,
    }
}

/// A string literal. `sqlparser` prints `'…'` without doubling a quote that follows a backslash
/// or another quote (it takes them as escaped already), so a value with `\'` or `''` would print
/// as SQL that reads back as something else (`\'` → `'\''`) or does not parse; those values are
/// printed as an escape string `E'…'` instead (`\'` and `\\`), which DataFusion plans as the same
/// literal and DuckDB and PostgreSQL read back.
fn str_lit(s: &str) -> sql::Expr {
    let s = s.to_string();
    if s.contains("\\'") || s.contains("''") {
        sql::Expr::value(sql::Value::EscapedStringLiteral(s))
    } else {
        sql::Expr::value(sql::Value::SingleQuotedString(s))
    }
}

fn num_lit(n: f64) -> sql::Expr {
    let text = fmt_num(n.abs());
    let lit = sql::Expr::value(sql::Value::Number(text, false));
    if n < 0.0 {
        sql::Expr::UnaryOp { op: sql::UnaryOperator::Minus, expr: Box::new(lit) }
    } else {
        lit
    }
}

fn value_expr(v: &Value) -> sql::Expr {
    match v {
        Value::Str(s) => str_lit(s),
        Value::Num(n) => num_lit(*n),
        Value::Int(i) => {
            let lit = sql::Expr::value(sql::Value::Number(i.unsigned_abs().to_string(), false));
            if *i < 0 {
                sql::Expr::UnaryOp { op: sql::UnaryOperator::Minus, expr: Box::new(lit) }
            } else {
                lit
            }
        }
        Value::Bool(b) => sql::Expr::value(sql::Value::Boolean(*b)),
        Value::TimeMs(ms) => time_lit(*ms),
    }
}

fn time_lit(ms: i64) -> sql::Expr {
    sql::Expr::TypedString(sql::TypedString {
        data_type: sql::DataType::Timestamp(None, sql::TimezoneInfo::None),
        value: sql::ValueWithSpan {
            value: sql::Value::SingleQuotedString(fmt_time(ms)),
            span: sqlparser::tokenizer::Span::empty(),
        },
        uses_odbc_syntax: false,
    })
}

fn function(name: &str, args: Vec<sql::Expr>) -> sql::Expr {
    sql::Expr::Function(sql::Function {
        name: sql::ObjectName::from(vec![sql::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: sql::FunctionArguments::None,
        args: sql::FunctionArguments::List(sql::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn wildcard() -> sql::SelectItem {
    sql::SelectItem::Wildcard(sql::WildcardAdditionalOptions::default())
}

/// The columns every table of the stream contributes to a mixed result, as `(column in
/// connections, column in dns)`; the output column takes the `dns` name.
fn common_projection(t: Table) -> Vec<sql::SelectItem> {
    let pairs: [(&str, &str); 9] = [
        (c::START_TS, d::TS),
        (c::CONN_ID, d::CONN_ID),
        (c::PROTOCOL, d::PROTOCOL),
        (c::SRC_IP, d::SRC_IP),
        (c::SRC_PORT, d::SRC_PORT),
        (c::DST_IP, d::DST_IP),
        (c::DST_PORT, d::DST_PORT),
        (c::OUTCOME, d::OUTCOME),
        (c::NODE, d::NODE),
    ];
    let mut items = vec![sql::SelectItem::ExprWithAlias {
        expr: str_lit(t.name()),
        alias: sql::Ident::new(ENTRY_TYPE),
    }];
    for (conn_col, dns_col) in pairs {
        let item = match t {
            Table::Dns if dns_col == d::PROTOCOL => sql::SelectItem::ExprWithAlias {
                expr: str_lit("dns"),
                alias: sql::Ident::new(dns_col),
            },
            Table::Dns => sql::SelectItem::UnnamedExpr(sql_ident(dns_col)),
            _ if conn_col == dns_col => sql::SelectItem::UnnamedExpr(sql_ident(conn_col)),
            _ => sql::SelectItem::ExprWithAlias {
                expr: sql_ident(conn_col),
                alias: sql::Ident::new(dns_col),
            },
        };
        items.push(item);
    }
    for side in [Side::Src, Side::Dst] {
        for suffix in SUFFIXES {
            items.push(sql::SelectItem::UnnamedExpr(sql_ident(&side.column(suffix))));
        }
    }
    items
}

/// The column of a mixed result that names the table a row comes from.
pub const ENTRY_TYPE: &str = "entry_type";

fn order_by(e: sql::Expr) -> sql::OrderByExpr {
    sql::OrderByExpr {
        expr: e,
        options: sql::OrderByOptions { asc: None, nulls_first: None },
        with_fill: None,
    }
}

fn order_single(t: Table) -> Vec<sql::OrderByExpr> {
    vec![order_by(sql_ident(t.time_column())), order_by(sql_ident(c::CONN_ID))]
}

fn select(projection: Vec<sql::SelectItem>, t: Table, selection: Option<sql::Expr>) -> sql::Select {
    sql::Select {
        select_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        optimizer_hints: vec![],
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection,
        exclude: None,
        into: None,
        from: vec![sql::TableWithJoins {
            relation: sql::TableFactor::Table {
                name: sql::ObjectName::from(vec![sql::Ident::new(t.name())]),
                alias: None,
                args: None,
                with_hints: vec![],
                version: None,
                with_ordinality: false,
                partitions: vec![],
                json_path: None,
                sample: None,
                index_hints: vec![],
            },
            joins: vec![],
        }],
        lateral_views: vec![],
        prewhere: None,
        selection,
        connect_by: vec![],
        group_by: sql::GroupByExpr::Expressions(vec![], vec![]),
        cluster_by: vec![],
        distribute_by: vec![],
        sort_by: vec![],
        having: None,
        named_window: vec![],
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        flavor: sql::SelectFlavor::Standard,
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers and times

/// A number as KFL and SQL write it: integers without a fraction.
fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 3339 in UTC, milliseconds only when not zero.
fn fmt_time(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, frac) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    let base = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if frac == 0 { format!("{base}Z") } else { format!("{base}.{frac:03}Z") }
}

/// Parses Kubeshark's `datetime` layout `M/D/YYYY, h:mm:ss[.SSS] AM|PM` (UTC) to epoch ms.
fn parse_datetime(s: &str) -> Option<i64> {
    let (date, rest) = s.trim().split_once(',')?;
    let mut dp = date.trim().split('/');
    let (mo, d, y): (i64, i64, i64) =
        (dp.next()?.parse().ok()?, dp.next()?.parse().ok()?, dp.next()?.parse().ok()?);
    if dp.next().is_some()
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(1..=9999).contains(&y)
    {
        return None;
    }
    let (time, ampm) = rest.trim().rsplit_once(' ')?;
    let pm = match ampm {
        "AM" | "am" => false,
        "PM" | "pm" => true,
        _ => return None,
    };
    let mut tp = time.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let sec_part = tp.next()?;
    if tp.next().is_some() || !(1..=12).contains(&h) || !(0..60).contains(&mi) {
        return None;
    }
    let (sec, ms) = match sec_part.split_once('.') {
        Some((s, f)) if f.len() == 3 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (s.parse::<i64>().ok()?, f.parse::<i64>().ok()?)
        }
        Some(_) => return None,
        None => (sec_part.parse::<i64>().ok()?, 0),
    };
    if !(0..60).contains(&sec)
        || days_from_civil(y, mo, 1) + d > days_from_civil(y + i64::from(mo == 12), mo % 12 + 1, 1)
    {
        return None;
    }
    let h24 = (h % 12) + if pm { 12 } else { 0 };
    Some((days_from_civil(y, mo, d) * 86_400 + h24 * 3600 + mi * 60 + sec) * 1000 + ms)
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

    #[test]
    fn datetimes() {
        assert_eq!(
            parse_datetime("10/19/2021, 6:29:02.000 PM").map(fmt_time).as_deref(),
            Some("2021-10-19T18:29:02Z")
        );
        assert_eq!(
            parse_datetime("10/19/2021, 6:29:02 PM"),
            parse_datetime("10/19/2021, 6:29:02.000 PM")
        );
        assert_eq!(parse_datetime("1/1/1970, 12:00:00.001 AM"), Some(1));
        assert_eq!(parse_datetime("2/30/2021, 1:00:00 AM"), None);
        assert_eq!(parse_datetime("2021-10-19T18:29:02Z"), None);
        assert_eq!(fmt_time(-1), "1969-12-31T23:59:59.999Z");
    }
}
