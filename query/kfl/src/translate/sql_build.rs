//! SQL building blocks: identifiers, literals, operators, functions, the projections of a
//! mixed-table result and the `SELECT` of one table.
use super::cond::Value;
use super::time::{fmt_num, fmt_time};
use crate::ast::CompareOp;
use podwire_schemas::Table;
use podwire_schemas::connections::col as c;
use podwire_schemas::dns::col as d;
use podwire_schemas::endpoint::{SUFFIXES, Side};
use sqlparser::ast as sql;

pub(super) fn sql_ident(name: &str) -> sql::Expr {
    sql::Expr::Identifier(sql::Ident::new(name))
}

pub(super) fn nest(e: sql::Expr) -> sql::Expr {
    match e {
        sql::Expr::BinaryOp { .. } | sql::Expr::InList { .. } | sql::Expr::UnaryOp { .. } => {
            sql::Expr::Nested(Box::new(e))
        }
        other => other,
    }
}

pub(super) fn bin(l: sql::Expr, op: sql::BinaryOperator, r: sql::Expr) -> sql::Expr {
    sql::Expr::BinaryOp { left: Box::new(l), op, right: Box::new(r) }
}

pub(super) fn cmp_op(op: CompareOp) -> sql::BinaryOperator {
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
pub(super) fn str_lit(s: &str) -> sql::Expr {
    let s = s.to_string();
    if s.contains("\\'") || s.contains("''") {
        sql::Expr::value(sql::Value::EscapedStringLiteral(s))
    } else {
        sql::Expr::value(sql::Value::SingleQuotedString(s))
    }
}

pub(super) fn num_lit(n: f64) -> sql::Expr {
    let text = fmt_num(n.abs());
    let lit = sql::Expr::value(sql::Value::Number(text, false));
    if n < 0.0 {
        sql::Expr::UnaryOp { op: sql::UnaryOperator::Minus, expr: Box::new(lit) }
    } else {
        lit
    }
}

pub(super) fn value_expr(v: &Value) -> sql::Expr {
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

pub(super) fn time_lit(ms: i64) -> sql::Expr {
    sql::Expr::TypedString(sql::TypedString {
        data_type: sql::DataType::Timestamp(None, sql::TimezoneInfo::None),
        value: sql::ValueWithSpan {
            value: sql::Value::SingleQuotedString(fmt_time(ms)),
            span: sqlparser::tokenizer::Span::empty(),
        },
        uses_odbc_syntax: false,
    })
}

pub(super) fn function(name: &str, args: Vec<sql::Expr>) -> sql::Expr {
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

pub(super) fn wildcard() -> sql::SelectItem {
    sql::SelectItem::Wildcard(sql::WildcardAdditionalOptions::default())
}

/// The columns every table of the stream contributes to a mixed result, as `(column in
/// connections, column in dns)`; the output column takes the `dns` name.
pub(super) fn common_projection(t: Table) -> Vec<sql::SelectItem> {
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

pub(super) fn order_by(e: sql::Expr) -> sql::OrderByExpr {
    sql::OrderByExpr {
        expr: e,
        options: sql::OrderByOptions { asc: None, nulls_first: None },
        with_fill: None,
    }
}

pub(super) fn order_single(t: Table) -> Vec<sql::OrderByExpr> {
    vec![order_by(sql_ident(t.time_column())), order_by(sql_ident(c::CONN_ID))]
}

pub(super) fn select(
    projection: Vec<sql::SelectItem>,
    t: Table,
    selection: Option<sql::Expr>,
) -> sql::Select {
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
