//! KFL1's checker: the parsed query against the field catalog, into a [`Cond`], with KFL1's
//! semantics (KFL.md §5 with the §6.4 fixes) and its `limit(n)`.
use super::ALIASES;
use super::cond::{Arg, Cond, Value};
use super::time::{fmt_num, parse_datetime};
use crate::ast::{Call, CompareOp, Expr, Literal, LogicalOp, Path, Segment, UnaryOp};
use crate::error::{Error, ErrorClass, Result};
use crate::fields::{self, Field, FieldType};
use crate::span::Span;

/// Kubeshark aliases of L7 dissectors: valid KFL, but podwire has no such entries.
pub(super) const L7_ALIASES: &[&str] = &[
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
pub(super) const KFL2_ALIASES: &[&str] =
    &["tcp_flow", "udp_flow", "tcp_conn", "udp_conn", "conn", "flow"];

// ---------------------------------------------------------------------------------------------
// limit(n)

/// Records the first non-zero `limit(n)` and rejects any not in a top-level conjunct.
pub(super) fn find_limits(e: &Expr, top: bool, limit: &mut Option<u64>) -> Result<()> {
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

/// What a sub-expression is, before it becomes a condition.
#[derive(Debug, Clone)]
pub(super) enum Val {
    Cond(Cond),
    Field(&'static Field),
    Lit(Lit, Span),
}

#[derive(Debug, Clone)]
pub(super) enum Lit {
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

pub(super) struct Checker {
    pub(super) now_ms: i64,
}

pub(super) fn type_error(span: Span, message: impl Into<String>) -> Error {
    Error::new(ErrorClass::SemType, span, message)
}

impl Checker {
    pub(super) fn check(&self, e: &Expr) -> Result<Val> {
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

pub(super) fn article(t: FieldType) -> &'static str {
    if t == FieldType::Int { "an" } else { "a" }
}

pub(super) fn unsupported_payload(call: &Call) -> Error {
    Error::new(
        ErrorClass::Unsupported,
        call.name_span,
        format!("`{}()` reads payloads, which podwire does not store", call.name),
    )
    .hint("filter on connection and DNS fields; `podwire fields` lists them")
}

pub(super) fn unknown_field(key: &str, span: Span) -> Error {
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
pub(super) fn to_cond(v: Val) -> Result<Cond> {
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

pub(super) fn compare(op: CompareOp, l: Val, r: Val, op_span: Span, span: Span) -> Result<Val> {
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

pub(super) fn field_vs_lit(
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
