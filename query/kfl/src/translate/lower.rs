//! Lowering: a condition on one table of the stream to a SQL expression (or a constant).
use super::cond::{Arg, Cond, Value};
use super::sql_build::*;
use crate::ast::CompareOp;
use crate::fields::{Field, FieldType, Source};
use podwire_schemas::Table;
use podwire_schemas::connections::{self, col as c};
use podwire_schemas::dns::{self, col as d};
use podwire_schemas::endpoint;
use sqlparser::ast as sql;

// ---------------------------------------------------------------------------------------------
// Lowering: condition × table → SQL

/// A condition lowered for one table: folded to a constant, or SQL.
// Short-lived and moved, never stored in bulk: boxing the SQL would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(super) enum Low {
    T,
    F,
    E(sql::Expr),
}

/// The right spine of an `and`/`or` chain, walked without recursion (a chain can be as long as
/// the parser allows): each left operand with its operator (`true` for `and`), and the last
/// operand.
pub(super) fn right_spine(c: &Cond) -> (Vec<(bool, &Cond)>, &Cond) {
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

pub(super) fn lower(c: &Cond, t: Table) -> Low {
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

pub(super) fn bool_low(b: bool) -> Low {
    if b { Low::T } else { Low::F }
}

/// Joins lowered items with AND (or OR), folding constants; children of the other operator are
/// parenthesised.
pub(super) fn fold(items: Vec<Low>, is_and: bool) -> Low {
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

pub(super) fn alias(a: &str, t: Table) -> Low {
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
pub(super) const RCODE_OK: &str = dns::RCODE_OK;

/// Adds `col IS NOT NULL AND …` for nullable columns, so that `!` of a comparison with NULL is
/// TRUE (a comparison with NULL is FALSE, not unknown).
pub(super) fn guard(field: &Field, src: Source, e: sql::Expr) -> Low {
    if field.nullable { Low::E(null_guard(column(src), e)) } else { Low::E(e) }
}

pub(super) fn null_guard(col: sql::Expr, e: sql::Expr) -> sql::Expr {
    bin(sql::Expr::IsNotNull(Box::new(col)), sql::BinaryOperator::And, e)
}

#[derive(Debug)]
pub(super) enum ConstVal {
    Str(&'static str),
    Bool(bool),
}

pub(super) fn const_value(src: Source) -> Option<ConstVal> {
    match src {
        Source::ConstStr(s) => Some(ConstVal::Str(s)),
        Source::ConstBool(b) => Some(ConstVal::Bool(b)),
        _ => None,
    }
}

pub(super) fn static_cmp(k: &ConstVal, op: CompareOp, v: &Value) -> Option<bool> {
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

pub(super) fn column(src: Source) -> sql::Expr {
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
pub(super) fn equals_derived(src: Source, v: &str) -> Option<Low> {
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
pub(super) fn rcode_equals(n: i64) -> sql::Expr {
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
pub(super) fn case(arms: Vec<(sql::Expr, sql::Expr)>, otherwise: sql::Expr) -> sql::Expr {
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
pub(super) fn text(field: &Field, src: Source) -> sql::Expr {
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
