//! Checking a CEL syntax tree against KFL2's variables, into the shared [`Cond`].
//!
//! CEL is statically typed: every comparison, function and operator is checked against the
//! variables' types here, and a mismatch is a `SEM_TYPE` error at its position, before anything
//! runs. Each atom of the result is two-valued (no CEL evaluation error can happen on podwire's
//! variables: there are no maps and no arithmetic on variables), so `&&` and `||` are
//! commutative as CEL defines them, and a variable an entry lacks takes its default through
//! [`Cond::Default`].
use super::vars::{self, Flag, Var};
use crate::ast::CompareOp;
use crate::error::{Error, ErrorClass, Result};
use crate::fields::{self, Field, FieldType};
use crate::span::Span;
use crate::translate::{Arg, Cond, Value, check_regex};
use cel::common::ast::{
    ComprehensionExpr, Expr as X, IdedExpr, LiteralValue, SourceInfo, operators,
};

/// How deep a tree is checked before it is called too complex (the parser bounds its own
/// recursion; this bounds what it builds, such as a long `1 + 1 + …`).
const MAX_DEPTH: usize = 200;

/// A checked sub-expression.
#[derive(Debug, Clone)]
enum V {
    /// A boolean condition over the entry.
    Cond(Cond),
    /// A variable read from the tables (or a comprehension's element).
    Var(&'static Field),
    /// `size()` of a variable.
    Len(&'static Field),
    /// `namespaces`, `pods`, `services`: the suffix and the variable's name.
    Agg(&'static str, &'static str),
    /// A constant.
    Lit(Lit),
}

/// A constant value.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
    UInt(u64),
    Double(f64),
    Bool(bool),
    Null,
    Bytes,
    /// Nanoseconds since the epoch.
    Time(i128),
    /// Nanoseconds.
    Dur(i128),
    List(Vec<Lit>),
}

impl Lit {
    fn type_name(&self) -> &'static str {
        match self {
            Lit::Str(_) => "string",
            Lit::Int(_) => "int",
            Lit::UInt(_) => "uint",
            Lit::Double(_) => "double",
            Lit::Bool(_) => "bool",
            Lit::Null => "null_type",
            Lit::Bytes => "bytes",
            Lit::Time(_) => "timestamp",
            Lit::Dur(_) => "duration",
            Lit::List(_) => "list",
        }
    }

    /// The number, for a numeric literal.
    fn number(&self) -> Option<f64> {
        match self {
            Lit::Int(i) => Some(*i as f64),
            Lit::UInt(u) => Some(*u as f64),
            Lit::Double(d) => Some(*d),
            _ => None,
        }
    }

    fn show(&self) -> String {
        match self {
            Lit::Str(s) => format!("{s:?}"),
            Lit::Int(i) => i.to_string(),
            Lit::UInt(u) => format!("{u}u"),
            Lit::Double(d) => format!("{d:?}"),
            Lit::Bool(b) => b.to_string(),
            Lit::Null => "null".into(),
            Lit::Bytes => "b\"…\"".into(),
            Lit::Time(_) => "a timestamp".into(),
            Lit::Dur(_) => "a duration".into(),
            Lit::List(_) => "a list".into(),
        }
    }
}

/// The checker of one query.
pub(super) struct Checker<'a> {
    pub(super) info: &'a SourceInfo,
    pub(super) now_ms: i64,
    /// Comprehension variables in scope, innermost last.
    bound: Vec<(String, &'static Field)>,
    depth: usize,
}

fn type_error(span: Span, message: impl Into<String>) -> Error {
    Error::new(ErrorClass::SemType, span, message)
}

fn unsupported(span: Span, message: impl Into<String>) -> Error {
    Error::new(ErrorClass::Unsupported, span, message)
}

fn op_of(name: &str) -> Option<CompareOp> {
    Some(match name {
        operators::EQUALS => CompareOp::Eq,
        operators::NOT_EQUALS => CompareOp::Ne,
        operators::LESS => CompareOp::Lt,
        operators::LESS_EQUALS => CompareOp::Le,
        operators::GREATER => CompareOp::Gt,
        operators::GREATER_EQUALS => CompareOp::Ge,
        _ => return None,
    })
}

fn holds<T: PartialOrd>(op: CompareOp, a: &T, b: &T) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
    }
}

/// What the comparison of two constants gives, `None` when CEL has no such overload.
fn compare_lits(op: CompareOp, a: &Lit, b: &Lit) -> Option<bool> {
    if let (Some(x), Some(y)) = (a.number(), b.number()) {
        return Some(holds(op, &x, &y));
    }
    let ordering = op.is_ordering();
    match (a, b) {
        (Lit::Str(x), Lit::Str(y)) => Some(holds(op, x, y)),
        (Lit::Bool(x), Lit::Bool(y)) => Some(holds(op, x, y)),
        (Lit::Time(x), Lit::Time(y)) | (Lit::Dur(x), Lit::Dur(y)) => Some(holds(op, x, y)),
        (Lit::Null, Lit::Null) if !ordering => Some(op == CompareOp::Eq),
        (Lit::List(x), Lit::List(y)) if !ordering => Some((x == y) == (op == CompareOp::Eq)),
        _ => None,
    }
}

/// The default of a variable of type `t` (what an entry without it has).
fn default_of(t: FieldType) -> Option<Lit> {
    match t {
        FieldType::Str => Some(Lit::Str(String::new())),
        FieldType::Int => Some(Lit::Int(0)),
        FieldType::Bool => Some(Lit::Bool(false)),
        FieldType::StrList => Some(Lit::List(Vec::new())),
        FieldType::Time => None,
    }
}

/// `f` may have no value on some rows: a table of the stream lacks it, or it can be NULL.
fn may_lack(f: &Field) -> bool {
    f.nullable || f.tables().len() < fields::STREAM_TABLES.len()
}

/// `inner`, an atom on `f`, with KFL2's default where `f` has no value: `on_default` is what the
/// atom gives on the default. FALSE there needs no wrapper (lowering gives FALSE already).
fn defaulted(f: &'static Field, inner: Cond, on_default: bool) -> Cond {
    if on_default && may_lack(f) {
        Cond::Default { inner: Box::new(inner), field: f, otherwise: true }
    } else {
        inner
    }
}

fn and(a: Cond, b: Cond) -> Cond {
    Cond::And(Box::new(a), Box::new(b))
}

fn or(a: Cond, b: Cond) -> Cond {
    Cond::Or(Box::new(a), Box::new(b))
}

fn not(a: Cond) -> Cond {
    Cond::Not(Box::new(a))
}

/// The KFL1 field of one end's enrichment column (`src.namespace`, `dst.pod`, …): the elements
/// of an aggregate.
fn end_field(side: &str, suffix: &str) -> Result<&'static Field> {
    let name = match suffix {
        "namespace" => format!("{side}.namespace"),
        "pod" => format!("{side}.pod"),
        _ => format!("{side}.service"),
    };
    fields::lookup(&name).ok_or_else(|| {
        Error::new(ErrorClass::Internal, Span::default(), format!("no field {name}"))
    })
}

/// The element of a list variable, as a field, for `exists`/`all` over it.
fn element_of(list: &Field) -> Option<&'static Field> {
    match list.name {
        "dns_questions" => fields::lookup("request.questions[0].name"),
        "dns_question_types" => fields::lookup("request.questions[0].type"),
        _ => None,
    }
}

/// CEL's duration syntax (Go's `time.ParseDuration`): `5m`, `1h30m`, `1.5s`, `-2ms`, `0`.
fn parse_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let ns = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * ns;
        rest = tail;
    }
    if !total.is_finite() || total > 9.3e18 {
        return None;
    }
    let ns = total.round() as i128;
    Some(if neg { -ns } else { ns })
}

/// An RFC 3339 timestamp, in nanoseconds since the epoch.
fn parse_timestamp(s: &str) -> Option<i128> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_nanosecond())
}

impl<'a> Checker<'a> {
    pub(super) fn new(info: &'a SourceInfo, now_ms: i64) -> Self {
        Checker { info, now_ms, bound: Vec::new(), depth: 0 }
    }

    /// Where `e` and everything under it is in the query.
    pub(super) fn span(&self, e: &IdedExpr) -> Span {
        let mut span: Option<Span> = None;
        let mut stack = vec![e];
        while let Some(x) = stack.pop() {
            if let Some((start, stop)) = self.info.offset_for(x.id) {
                // The parser's offsets are token indexes, the stop inclusive.
                let s = Span::new(start as usize, (stop as usize + 1).max(start as usize + 1));
                span = Some(match span {
                    Some(acc) => Span::new(acc.start.min(s.start), acc.end.max(s.end)),
                    None => s,
                });
            }
            match &x.expr {
                X::Call(c) => {
                    stack.extend(c.target.as_deref());
                    stack.extend(c.args.iter());
                }
                X::Select(s) => stack.push(&s.operand),
                X::List(l) => stack.extend(l.elements.iter()),
                X::Comprehension(c) => {
                    stack.push(&c.iter_range);
                    stack.push(&c.loop_step);
                }
                _ => {}
            }
        }
        span.unwrap_or_default()
    }

    /// The whole query as a condition.
    pub(super) fn condition(&mut self, e: &IdedExpr) -> Result<Cond> {
        let v = self.check(e)?;
        self.to_bool(v, e)
    }

    fn to_bool(&self, v: V, e: &IdedExpr) -> Result<Cond> {
        match v {
            V::Cond(c) => Ok(c),
            V::Lit(Lit::Bool(b)) => Ok(Cond::Const(b)),
            V::Var(f) if f.ty == FieldType::Bool => Ok(Cond::Truthy(f)),
            other => Err(type_error(
                self.span(e),
                format!("a condition must be a bool, but this is {}", self.describe(&other)),
            )
            .hint("compare it, e.g. `dst.port == 443` or `dst.name != \"\"`")),
        }
    }

    fn describe(&self, v: &V) -> String {
        match v {
            V::Cond(_) => "a bool".into(),
            V::Var(f) => format!("`{}` ({})", f.name, vars::type_name(f.ty)),
            V::Len(f) => format!("`size({})` (int)", f.name),
            V::Agg(_, name) => format!("`{name}` (list(string))"),
            V::Lit(l) => format!("{} ({})", l.show(), l.type_name()),
        }
    }

    fn check(&mut self, e: &IdedExpr) -> Result<V> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorClass::ParseTooComplex,
                self.span(e),
                format!("the filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        let v = self.check_inner(e);
        self.depth -= 1;
        v
    }

    fn check_inner(&mut self, e: &IdedExpr) -> Result<V> {
        match &e.expr {
            X::Literal(l) => Ok(V::Lit(match l {
                LiteralValue::String(s) => Lit::Str(s.inner().to_string()),
                LiteralValue::Int(i) => Lit::Int(*i.inner()),
                LiteralValue::UInt(u) => Lit::UInt(*u.inner()),
                LiteralValue::Double(d) => Lit::Double(*d.inner()),
                LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
                LiteralValue::Null => Lit::Null,
                LiteralValue::Bytes(_) => Lit::Bytes,
            })),
            X::Ident(name) => self.name(name, e),
            X::Select(s) if s.test => {
                let Some(name) = dotted(e) else {
                    return Err(unsupported(
                        self.span(e),
                        "`has()` takes a variable, e.g. `has(dst.dns)`",
                    ));
                };
                match self.name(&name, e)? {
                    V::Var(f) => Ok(V::Cond(Cond::Truthy(f))),
                    V::Agg(suffix, _) => {
                        let (s, d) = (end_field("src", suffix)?, end_field("dst", suffix)?);
                        Ok(V::Cond(or(Cond::Truthy(s), Cond::Truthy(d))))
                    }
                    _ => Ok(V::Lit(Lit::Bool(true))),
                }
            }
            X::Select(_) => match dotted(e) {
                Some(name) => self.name(&name, e),
                None => Err(unsupported(
                    self.span(e),
                    "a field of a computed value: KFL2's variables are flat names such as `dst.pod.name`",
                )),
            },
            X::List(l) => {
                let mut items = Vec::new();
                for el in &l.elements {
                    match self.check(el)? {
                        V::Lit(lit) => items.push(lit),
                        other => {
                            return Err(unsupported(
                                self.span(el),
                                format!(
                                    "a list literal of constants only, not {}",
                                    self.describe(&other)
                                ),
                            ));
                        }
                    }
                }
                Ok(V::Lit(Lit::List(items)))
            }
            X::Map(_) | X::Struct(_) => Err(unsupported(
                self.span(e),
                "map and message literals: podwire's variables are strings, numbers, bools, times and lists",
            )),
            X::Comprehension(c) => self.comprehension(c, e),
            X::Call(call) => self.call(call, e),
            X::Unspecified => {
                Err(Error::new(ErrorClass::Internal, self.span(e), "an empty expression"))
            }
        }
    }

    /// A variable by its dotted name.
    fn name(&self, name: &str, e: &IdedExpr) -> Result<V> {
        if let Some((_, f)) = self.bound.iter().rev().find(|(n, _)| n == name) {
            return Ok(V::Var(f));
        }
        let span = self.span(e);
        match vars::lookup(name) {
            Some(Var::Field(f)) => Ok(V::Var(f)),
            Some(Var::Flag { flag, .. }) => Ok(V::Cond(match flag {
                Flag::Alias(a) => Cond::Alias(a),
                Flag::Transport => or(Cond::Alias("tcp"), Cond::Alias("udp")),
                Flag::Never => Cond::Const(false),
            })),
            Some(Var::Aggregate { suffix, name, .. }) => Ok(V::Agg(suffix, name)),
            Some(Var::NotRecorded { name, why, .. }) => Err(unsupported(
                span,
                format!("`{name}` is a KFL2 variable that podwire does not record"),
            )
            .hint(format!("{why}; `podwire fields --kfl2` lists what it has"))),
            None => {
                let mut err = Error::new(
                    ErrorClass::SemUnknownField,
                    span,
                    format!("undeclared reference to `{name}`"),
                );
                let close = fields::closest(name, vars::VARS.iter().map(Var::name));
                err = if let Some(kfl2) = kfl1_spelling(name) {
                    err.hint(format!("that is KFL1; KFL2 writes `{kfl2}`"))
                } else if close.is_empty() {
                    err.hint("`podwire fields --kfl2` lists the variables")
                } else {
                    let list: Vec<String> = close.iter().map(|s| format!("`{s}`")).collect();
                    err.hint(format!("did you mean {}?", list.join(", ")))
                };
                Err(err)
            }
        }
    }

    fn call(&mut self, call: &cel::common::ast::CallExpr, e: &IdedExpr) -> Result<V> {
        let name = call.func_name.as_str();
        let span = self.span(e);
        if let Some(op) = op_of(name)
            && let [l, r] = call.args.as_slice()
        {
            let (lv, rv) = (self.check(l)?, self.check(r)?);
            return self.compare(op, lv, rv, span);
        }
        match (name, call.target.as_deref(), call.args.as_slice()) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, None, args) if !args.is_empty() => {
                let mut acc: Option<Cond> = None;
                for a in args {
                    let v = self.check(a)?;
                    let c = self.to_bool(v, a)?;
                    acc = Some(match acc {
                        None => c,
                        Some(p) if name == operators::LOGICAL_AND => and(p, c),
                        Some(p) => or(p, c),
                    });
                }
                Ok(V::Cond(acc.unwrap_or(Cond::Const(true))))
            }
            (operators::LOGICAL_NOT, None, [a]) => match self.check(a)? {
                V::Lit(Lit::Bool(b)) => Ok(V::Lit(Lit::Bool(!b))),
                v => Ok(V::Cond(not(self.to_bool(v, a)?))),
            },
            (operators::NEGATE, None, [a]) => match self.check(a)? {
                V::Lit(Lit::Int(i)) => i
                    .checked_neg()
                    .map(|n| V::Lit(Lit::Int(n)))
                    .ok_or_else(|| type_error(span, "integer overflow")),
                V::Lit(Lit::Double(d)) => Ok(V::Lit(Lit::Double(-d))),
                V::Lit(Lit::Dur(d)) => Ok(V::Lit(Lit::Dur(-d))),
                other => Err(self.no_arithmetic(span, &other)),
            },
            (operators::CONDITIONAL, None, [c, a, b]) => {
                let cv = self.check(c)?;
                let cond = self.to_bool(cv, c)?;
                let (av, bv) = (self.check(a)?, self.check(b)?);
                let (ac, bc) = match (self.to_bool(av, a), self.to_bool(bv, b)) {
                    (Ok(x), Ok(y)) => (x, y),
                    _ => {
                        return Err(unsupported(span, "`?:` with branches that are not bool")
                            .hint("write the condition out with `&&` and `||`"));
                    }
                };
                // Two-valued atoms: `c ? a : b` is `(c && a) || (!c && b)` exactly.
                Ok(V::Cond(or(and(cond.clone(), ac), and(not(cond), bc))))
            }
            (
                operators::ADD
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO,
                None,
                [a, b],
            ) => {
                let (av, bv) = (self.check(a)?, self.check(b)?);
                self.arithmetic(name, av, bv, span)
            }
            (operators::IN, None, [a, b]) => {
                let (av, bv) = (self.check(a)?, self.check(b)?);
                self.in_list(av, bv, span)
            }
            (operators::INDEX | operators::OPT_INDEX, None, [a, i]) => {
                let (av, iv) = (self.check(a)?, self.check(i)?);
                match (av, iv) {
                    (V::Lit(Lit::List(items)), V::Lit(Lit::Int(n))) => usize::try_from(n)
                        .ok()
                        .and_then(|n| items.get(n).cloned())
                        .map(V::Lit)
                        .ok_or_else(|| unsupported(span, "index out of range")),
                    _ => Err(unsupported(span, "indexing a variable: CEL makes a missing element an error, which podwire cannot keep apart from false")
                        .hint("test membership with `\"x\" in list` or `list.exists(e, …)`")),
                }
            }
            ("contains" | "startsWith" | "endsWith", Some(t), [a]) => {
                let (tv, av) = (self.check(t)?, self.check(a)?);
                self.string_test(name, tv, av, span)
            }
            ("matches", Some(t), [a]) | ("matches", None, [t, a]) => {
                let (tv, av) = (self.check(t)?, self.check(a)?);
                let Some(pattern) = (match &av {
                    V::Lit(Lit::Str(p)) => Some(p.clone()),
                    _ => None,
                }) else {
                    return Err(type_error(
                        self.span(a),
                        format!("`matches` takes a string pattern, not {}", self.describe(&av)),
                    ));
                };
                check_regex(&pattern, self.span(a))?;
                let on_empty = regex::Regex::new(&pattern).is_ok_and(|r| r.is_match(""));
                match tv {
                    V::Var(f) if f.ty == FieldType::Str => Ok(V::Cond(defaulted(
                        f,
                        Cond::Regex { field: f, negated: false, pattern },
                        on_empty,
                    ))),
                    V::Lit(Lit::Str(s)) => Ok(V::Lit(Lit::Bool(
                        regex::Regex::new(&pattern).is_ok_and(|r| r.is_match(&s)),
                    ))),
                    other => Err(type_error(
                        span,
                        format!("`matches` applies to a string, not {}", self.describe(&other)),
                    )),
                }
            }
            ("size", Some(t), []) | ("size", None, [t]) => {
                let tv = self.check(t)?;
                match tv {
                    V::Var(f) if matches!(f.ty, FieldType::Str | FieldType::StrList) => Ok(V::Len(f)),
                    V::Agg(_, agg) => Err(unsupported(span, format!("`size({agg})`: podwire keeps the two ends apart, not their list"))
                        .hint("test the ends instead, e.g. `src.namespace != \"\" && dst.namespace != \"\"`")),
                    V::Lit(Lit::Str(s)) => Ok(V::Lit(Lit::Int(s.chars().count() as i64))),
                    V::Lit(Lit::List(l)) => Ok(V::Lit(Lit::Int(l.len() as i64))),
                    other => Err(type_error(span, format!("`size` applies to a string or a list, not {}", self.describe(&other)))),
                }
            }
            ("now", None, []) => Ok(V::Lit(Lit::Time(i128::from(self.now_ms) * 1_000_000))),
            ("timestamp" | "duration", None, [a]) => {
                let av = self.check(a)?;
                match (name, av) {
                    ("timestamp", V::Lit(Lit::Str(s))) => parse_timestamp(&s).map(|t| V::Lit(Lit::Time(t))).ok_or_else(|| {
                        Error::new(ErrorClass::SemInvalidDatetime, span, format!("`{s}` is not an RFC 3339 timestamp"))
                            .hint("e.g. `timestamp(\"2026-03-14T22:00:00Z\")`")
                    }),
                    ("timestamp", V::Lit(Lit::Int(secs))) => Ok(V::Lit(Lit::Time(i128::from(secs) * 1_000_000_000))),
                    ("duration", V::Lit(Lit::Str(s))) => parse_duration(&s).map(|d| V::Lit(Lit::Dur(d))).ok_or_else(|| {
                        Error::new(ErrorClass::SemInvalidDatetime, span, format!("`{s}` is not a duration"))
                            .hint("e.g. `duration(\"5m\")`, `duration(\"1h30m\")`, `duration(\"250ms\")`")
                    }),
                    (_, other) => Err(type_error(span, format!("`{name}` takes a string, not {}", self.describe(&other)))),
                }
            }
            ("int" | "uint" | "double" | "string", None, [a]) => {
                let av = self.check(a)?;
                let V::Lit(lit) = av else {
                    return Err(unsupported(span, format!("`{name}()` of a variable: podwire compares variables with constants of their own type"))
                        .hint("write the constant in the variable's type, e.g. `dst.port == 80`"));
                };
                convert(name, lit)
                    .map(V::Lit)
                    .ok_or_else(|| type_error(span, format!("no `{name}()` of this value")))
            }
            ("map_get", None, [m, ..]) => {
                let mv = self.check(m)?;
                Err(type_error(span, format!("`map_get` takes a map, not {}", self.describe(&mv)))
                    .hint("podwire has no map variables (labels are not recorded)"))
            }
            _ => {
                const KNOWN: [&str; 14] = [
                    "contains",
                    "startsWith",
                    "endsWith",
                    "matches",
                    "size",
                    "has",
                    "exists",
                    "all",
                    "exists_one",
                    "timestamp",
                    "duration",
                    "now",
                    "int",
                    "string",
                ];
                let close = fields::closest(name, KNOWN);
                let hint = if name == "datetime" {
                    "that is KFL1; KFL2 writes `timestamp(\"2026-03-14T22:00:00Z\")` (RFC 3339)"
                        .to_string()
                } else if name == "limit" {
                    "KFL2 has no `limit()`; the API and the CLI take a row limit".to_string()
                } else if close.is_empty() {
                    "functions are `contains`, `startsWith`, `endsWith`, `matches`, `size`, `has`, `exists`, `all`, `exists_one`, `timestamp`, `duration`, `now`".to_string()
                } else {
                    format!("did you mean `{}`?", close[0])
                };
                Err(Error::new(
                    ErrorClass::SemUnknownHelper,
                    span,
                    format!(
                        "no function `{name}` with {} argument(s){}",
                        call.args.len(),
                        if call.target.is_some() { " on a receiver" } else { "" }
                    ),
                )
                .hint(hint))
            }
        }
    }

    fn no_arithmetic(&self, span: Span, v: &V) -> Error {
        unsupported(
            span,
            format!(
                "arithmetic on {}: podwire compares variables with constants",
                self.describe(v)
            ),
        )
        .hint(
            "move the arithmetic to the constant side, e.g. `timestamp > now() - duration(\"5m\")`",
        )
    }

    fn arithmetic(&self, op: &str, a: V, b: V, span: Span) -> Result<V> {
        let (V::Lit(x), V::Lit(y)) = (&a, &b) else {
            let v = if matches!(a, V::Lit(_)) { &b } else { &a };
            return Err(self.no_arithmetic(span, v));
        };
        let overflow = || type_error(span, "integer overflow");
        let lit = match (op, x, y) {
            (operators::ADD, Lit::Int(p), Lit::Int(q)) => {
                Lit::Int(p.checked_add(*q).ok_or_else(overflow)?)
            }
            (operators::SUBSTRACT, Lit::Int(p), Lit::Int(q)) => {
                Lit::Int(p.checked_sub(*q).ok_or_else(overflow)?)
            }
            (operators::MULTIPLY, Lit::Int(p), Lit::Int(q)) => {
                Lit::Int(p.checked_mul(*q).ok_or_else(overflow)?)
            }
            (operators::DIVIDE, Lit::Int(p), Lit::Int(q)) => {
                Lit::Int(p.checked_div(*q).ok_or_else(|| type_error(span, "division by zero"))?)
            }
            (operators::MODULO, Lit::Int(p), Lit::Int(q)) => {
                Lit::Int(p.checked_rem(*q).ok_or_else(|| type_error(span, "modulus by zero"))?)
            }
            (operators::ADD, Lit::Double(p), Lit::Double(q)) => Lit::Double(p + q),
            (operators::SUBSTRACT, Lit::Double(p), Lit::Double(q)) => Lit::Double(p - q),
            (operators::MULTIPLY, Lit::Double(p), Lit::Double(q)) => Lit::Double(p * q),
            (operators::DIVIDE, Lit::Double(p), Lit::Double(q)) => Lit::Double(p / q),
            (operators::ADD, Lit::Str(p), Lit::Str(q)) => Lit::Str(format!("{p}{q}")),
            (operators::ADD, Lit::Time(t), Lit::Dur(d))
            | (operators::ADD, Lit::Dur(d), Lit::Time(t)) => Lit::Time(t + d),
            (operators::SUBSTRACT, Lit::Time(t), Lit::Dur(d)) => Lit::Time(t - d),
            (operators::SUBSTRACT, Lit::Time(t), Lit::Time(u)) => Lit::Dur(t - u),
            (operators::ADD, Lit::Dur(d), Lit::Dur(e)) => Lit::Dur(d + e),
            (operators::SUBSTRACT, Lit::Dur(d), Lit::Dur(e)) => Lit::Dur(d - e),
            _ => {
                return Err(type_error(
                    span,
                    format!(
                        "no `{}` between {} and {}",
                        op.trim_matches('_'),
                        x.type_name(),
                        y.type_name()
                    ),
                ));
            }
        };
        Ok(V::Lit(lit))
    }

    fn string_test(&self, name: &str, t: V, a: V, span: Span) -> Result<V> {
        let arg = match a {
            V::Lit(Lit::Str(s)) => s,
            other => {
                return Err(type_error(
                    span,
                    format!("`{name}` takes a string constant, not {}", self.describe(&other)),
                ));
            }
        };
        let func = match name {
            "startsWith" => "starts_with",
            "endsWith" => "ends_with",
            _ => "contains",
        };
        match t {
            V::Var(f) if f.ty == FieldType::Str => {
                let c = Cond::Helper { func, field: f, arg: Arg::Str(arg.clone()) };
                Ok(V::Cond(defaulted(f, c, arg.is_empty())))
            }
            V::Lit(Lit::Str(s)) => Ok(V::Lit(Lit::Bool(match name {
                "startsWith" => s.starts_with(&arg),
                "endsWith" => s.ends_with(&arg),
                _ => s.contains(&arg),
            }))),
            other => Err(type_error(
                span,
                format!("`{name}` applies to a string, not {}", self.describe(&other)),
            )
            .hint("on a list use `list.exists(x, x.contains(\"…\"))`")),
        }
    }

    fn compare(&self, op: CompareOp, l: V, r: V, span: Span) -> Result<V> {
        let mismatch = |a: &V, b: &V| {
            let mut e = type_error(
                span,
                format!(
                    "no matching overload: {} {} {}",
                    self.describe(a),
                    op.as_str(),
                    self.describe(b)
                ),
            );
            if let (V::Var(f), V::Lit(Lit::Str(s))) | (V::Lit(Lit::Str(s)), V::Var(f)) = (a, b)
                && f.ty == FieldType::Int
            {
                e = e.hint(format!(
                    "KFL2 is typed: write `{} {} {}`",
                    f.name,
                    op.as_str(),
                    s.trim()
                ));
            } else if matches!((a, b), (_, V::Lit(Lit::Null)) | (V::Lit(Lit::Null), _)) {
                e = e.hint(
                    "KFL2 variables are never null: an empty string is `\"\"`, no number is `0`",
                );
            }
            e
        };
        match (l, r) {
            (V::Lit(a), V::Lit(b)) => compare_lits(op, &a, &b)
                .map(|x| V::Lit(Lit::Bool(x)))
                .ok_or_else(|| mismatch(&V::Lit(a), &V::Lit(b))),
            (V::Lit(lit), V::Var(f)) => {
                let shown = V::Lit(lit.clone());
                self.var_vs_lit(f, op.flip(), lit, span).map_err(|e| {
                    if e.class == ErrorClass::SemType { mismatch(&shown, &V::Var(f)) } else { e }
                })
            }
            (V::Var(f), V::Lit(lit)) => {
                let shown = V::Lit(lit.clone());
                self.var_vs_lit(f, op, lit, span).map_err(|e| {
                    if e.class == ErrorClass::SemType { mismatch(&V::Var(f), &shown) } else { e }
                })
            }
            (V::Len(f), V::Lit(lit)) if lit.number().is_some() => {
                Ok(V::Cond(len_cond(f, op, lit.number().unwrap_or(0.0))))
            }
            (V::Lit(lit), V::Len(f)) if lit.number().is_some() => {
                Ok(V::Cond(len_cond(f, op.flip(), lit.number().unwrap_or(0.0))))
            }
            (V::Var(a), V::Var(b)) => {
                if a.ty != b.ty || a.ty == FieldType::StrList {
                    return Err(mismatch(&V::Var(a), &V::Var(b)));
                }
                if may_lack(a) || may_lack(b) {
                    return Err(unsupported(
                        span,
                        format!(
                            "comparing `{}` with `{}`, one of which some entries lack",
                            a.name, b.name
                        ),
                    ));
                }
                Ok(V::Cond(Cond::FieldCmp { lhs: a, op, rhs: b }))
            }
            (V::Cond(c), V::Lit(Lit::Bool(b))) | (V::Lit(Lit::Bool(b)), V::Cond(c))
                if !op.is_ordering() =>
            {
                Ok(V::Cond(if b == (op == CompareOp::Eq) { c } else { not(c) }))
            }
            (V::Cond(a), V::Cond(b)) if !op.is_ordering() => {
                let same = or(and(a.clone(), b.clone()), and(not(a), not(b)));
                Ok(V::Cond(if op == CompareOp::Eq { same } else { not(same) }))
            }
            (a, b) => Err(mismatch(&a, &b)),
        }
    }

    /// `f op lit`, typed as CEL types it.
    fn var_vs_lit(&self, f: &'static Field, op: CompareOp, lit: Lit, span: Span) -> Result<V> {
        let bad = || Err(type_error(span, "mismatch"));
        let value = match (f.ty, &lit) {
            (FieldType::Str, Lit::Str(s)) => Value::Str(s.clone()),
            (FieldType::Int, Lit::Int(i)) => Value::Int(*i),
            (FieldType::Int, Lit::UInt(u)) => match i64::try_from(*u) {
                Ok(i) => Value::Int(i),
                Err(_) => {
                    return Ok(V::Lit(Lit::Bool(matches!(
                        op,
                        CompareOp::Ne | CompareOp::Lt | CompareOp::Le
                    ))));
                }
            },
            (FieldType::Int, Lit::Double(d)) => Value::Num(*d),
            (FieldType::Bool, Lit::Bool(b)) if !op.is_ordering() => Value::Bool(*b),
            (FieldType::Time, Lit::Time(ns)) => {
                if ns % 1_000_000 != 0 {
                    return Err(unsupported(span, "a time with a fraction of a millisecond")
                        .hint("podwire compares times to the millisecond"));
                }
                match i64::try_from(ns / 1_000_000) {
                    Ok(ms) => Value::TimeMs(ms),
                    Err(_) => return Err(unsupported(span, "a time out of range")),
                }
            }
            (FieldType::StrList, Lit::List(_)) => {
                return Err(unsupported(span, "comparing whole lists")
                    .hint("test membership with `\"x\" in list`"));
            }
            _ => return bad(),
        };
        let on_default = default_of(f.ty).and_then(|d| compare_lits(op, &d, &lit)).unwrap_or(false);
        Ok(V::Cond(defaulted(f, Cond::Cmp { field: f, op, value }, on_default)))
    }

    /// `a in b`.
    fn in_list(&self, a: V, b: V, span: Span) -> Result<V> {
        match (a, b) {
            (V::Lit(Lit::Str(s)), V::Var(f)) if f.ty == FieldType::StrList => {
                Ok(V::Cond(Cond::ListHas { field: f, negated: false, value: s }))
            }
            (V::Lit(Lit::Str(s)), V::Agg(suffix, _)) => {
                if s.is_empty() {
                    return Ok(V::Lit(Lit::Bool(false)));
                }
                let cmp = |f| Cond::Cmp { field: f, op: CompareOp::Eq, value: Value::Str(s.clone()) };
                Ok(V::Cond(or(cmp(end_field("src", suffix)?), cmp(end_field("dst", suffix)?))))
            }
            (x @ (V::Var(_) | V::Lit(_)), V::Lit(Lit::List(items))) => {
                let mut acc: Option<Cond> = None;
                for item in items {
                    let c = match self.compare(CompareOp::Eq, x.clone(), V::Lit(item), span)? {
                        V::Cond(c) => c,
                        V::Lit(Lit::Bool(b)) => Cond::Const(b),
                        _ => return Err(Error::new(ErrorClass::Internal, span, "`==` gave no bool")),
                    };
                    acc = Some(match acc {
                        None => c,
                        Some(p) => or(p, c),
                    });
                }
                Ok(V::Cond(acc.unwrap_or(Cond::Const(false))))
            }
            (a, b) => Err(type_error(span, format!("no matching overload: {} in {}", self.describe(&a), self.describe(&b)))
                .hint("`in` tests a constant in a list variable (`\"kube-system\" in namespaces`) or a variable in a list of constants (`dst.port in [80, 443]`)")),
        }
    }

    /// `exists`, `all` and `exists_one`, recognized from their macro expansion.
    fn comprehension(&mut self, c: &ComprehensionExpr, e: &IdedExpr) -> Result<V> {
        let span = self.span(e);
        let kind = match (&c.accu_init.expr, &c.loop_step.expr) {
            (X::Literal(LiteralValue::Boolean(b)), X::Call(step))
                if !*b.inner() && step.func_name == operators::LOGICAL_OR =>
            {
                "exists"
            }
            (X::Literal(LiteralValue::Boolean(b)), X::Call(step))
                if *b.inner() && step.func_name == operators::LOGICAL_AND =>
            {
                "all"
            }
            (X::Literal(LiteralValue::Int(_)), X::Call(step))
                if step.func_name == operators::CONDITIONAL =>
            {
                "exists_one"
            }
            _ => {
                return Err(unsupported(
                    span,
                    "`map` and `filter` build lists; a filter needs a bool",
                )
                .hint("use `exists`, `all` or `exists_one`"));
            }
        };
        let X::Call(step) = &c.loop_step.expr else {
            return Err(Error::new(ErrorClass::Internal, span, "comprehension without a step"));
        };
        let pred = match kind {
            "exists_one" => step.args.first(),
            _ => step.args.get(1),
        }
        .ok_or_else(|| {
            Error::new(ErrorClass::Internal, span, "comprehension step without a predicate")
        })?;
        if c.iter_var2.is_some() {
            return Err(unsupported(span, "two-variable comprehensions"));
        }
        let range = self.check(&c.iter_range)?;
        let with = |this: &mut Self, f: &'static Field| -> Result<Cond> {
            this.bound.push((c.iter_var.clone(), f));
            let v = this.check(pred);
            this.bound.pop();
            let v = v?;
            this.to_bool(v, pred)
        };
        let cond = match range {
            V::Agg(suffix, _) => {
                let (sf, df) = (end_field("src", suffix)?, end_field("dst", suffix)?);
                let present = |f: &'static Field| Cond::Cmp {
                    field: f,
                    op: CompareOp::Ne,
                    value: Value::Str(String::new()),
                };
                let (ps, pd) = (with(self, sf)?, with(self, df)?);
                let (a, b) = (and(present(sf), ps.clone()), and(present(df), pd.clone()));
                match kind {
                    "exists" => or(a, b),
                    "all" => and(or(not(present(sf)), ps), or(not(present(df)), pd)),
                    _ => or(and(a.clone(), not(b.clone())), and(not(a), b)),
                }
            }
            V::Var(f) if f.ty == FieldType::StrList => {
                if let Some(el) = element_of(f) {
                    // A list of one stored element on the tables that have it, empty elsewhere.
                    let p = with(self, el)?;
                    match kind {
                        "all" => Cond::Default { inner: Box::new(p), field: f, otherwise: true },
                        _ => Cond::Default { inner: Box::new(p), field: f, otherwise: false },
                    }
                } else {
                    // A real list: membership is all SQL can test exactly.
                    match (&pred.expr, kind) {
                        (X::Call(eq), "exists") if eq.func_name == operators::EQUALS => {
                            let value = eq.args.iter().find_map(|a| match &a.expr {
                                X::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
                                _ => None,
                            });
                            let on_var = eq
                                .args
                                .iter()
                                .any(|a| matches!(&a.expr, X::Ident(n) if *n == c.iter_var));
                            match value {
                                Some(v) if on_var => {
                                    Cond::ListHas { field: f, negated: false, value: v }
                                }
                                _ => return Err(self.list_pred(span, f)),
                            }
                        }
                        _ => return Err(self.list_pred(span, f)),
                    }
                }
            }
            V::Lit(Lit::List(items)) => {
                // Constants: evaluate on each.
                let mut results = Vec::new();
                for item in items {
                    let var = c.iter_var.clone();
                    let substituted = substitute(pred, &var, &item);
                    let v = self.check(&substituted)?;
                    results.push(self.to_bool(v, pred)?);
                }
                let fold = |xs: Vec<Cond>, is_and: bool| {
                    xs.into_iter()
                        .reduce(|p, q| if is_and { and(p, q) } else { or(p, q) })
                        .unwrap_or(Cond::Const(is_and))
                };
                match kind {
                    "exists" => fold(results, false),
                    "all" => fold(results, true),
                    _ => {
                        let mut alts = Vec::new();
                        for i in 0..results.len() {
                            let mut parts = Vec::new();
                            for (j, r) in results.iter().enumerate() {
                                parts.push(if i == j { r.clone() } else { not(r.clone()) });
                            }
                            alts.push(fold(parts, true));
                        }
                        fold(alts, false)
                    }
                }
            }
            other => {
                return Err(type_error(
                    span,
                    format!("`{kind}` iterates a list, not {}", self.describe(&other)),
                ));
            }
        };
        Ok(V::Cond(cond))
    }

    fn list_pred(&self, span: Span, f: &Field) -> Error {
        unsupported(span, format!("a predicate over the elements of `{}` other than `x == \"…\"`", f.name))
            .hint(format!("write `\"…\" in {}`; podwire stores this list as a column SQL can test for membership only", f.name))
    }
}

/// `size(f) op n`, with the default (size 0) where an entry lacks `f`.
fn len_cond(f: &'static Field, op: CompareOp, n: f64) -> Cond {
    defaulted(f, Cond::Len { field: f, op, n }, holds(op, &0.0, &n))
}

/// The dotted name an identifier with selections spells (`dst.pod.name`).
fn dotted(e: &IdedExpr) -> Option<String> {
    let mut parts = Vec::new();
    let mut cur = e;
    loop {
        match &cur.expr {
            X::Ident(n) => {
                parts.push(n.as_str());
                parts.reverse();
                return Some(parts.join("."));
            }
            X::Select(s) => {
                parts.push(s.field.as_str());
                cur = &s.operand;
            }
            _ => return None,
        }
    }
}

/// KFL1 names users carry over, with their KFL2 spelling.
fn kfl1_spelling(name: &str) -> Option<&'static str> {
    Some(match name {
        "src.pod" | "src.pod.metadata.name" => "src.pod.name",
        "dst.pod" | "dst.pod.metadata.name" => "dst.pod.name",
        "src.pod.metadata.namespace" => "src.pod.namespace",
        "dst.pod.metadata.namespace" => "dst.pod.namespace",
        "src.service" | "src.service.metadata.name" => "src.service.name",
        "dst.service" | "dst.service.metadata.name" => "dst.service.name",
        "elapsedTime" => "elapsed_time (in microseconds)",
        "connId" => "conn_id",
        "node.name" => "node_name",
        "protocol.name" => "protocol",
        "request.questions" => "dns_questions",
        "response.answers" => "dns_answers",
        "response.code" => "status_code",
        _ => return None,
    })
}

/// CEL's conversion functions on constants.
fn convert(name: &str, lit: Lit) -> Option<Lit> {
    Some(match (name, lit) {
        ("int", Lit::Int(i)) => Lit::Int(i),
        ("int", Lit::UInt(u)) => Lit::Int(i64::try_from(u).ok()?),
        ("int", Lit::Double(d)) if d.is_finite() && d.abs() < 9.2e18 => Lit::Int(d.trunc() as i64),
        ("int", Lit::Str(s)) => Lit::Int(s.parse().ok()?),
        ("int", Lit::Time(t)) => Lit::Int(i64::try_from(t.div_euclid(1_000_000_000)).ok()?),
        ("uint", Lit::Int(i)) => Lit::UInt(u64::try_from(i).ok()?),
        ("uint", Lit::UInt(u)) => Lit::UInt(u),
        ("uint", Lit::Str(s)) => Lit::UInt(s.parse().ok()?),
        ("double", Lit::Int(i)) => Lit::Double(i as f64),
        ("double", Lit::UInt(u)) => Lit::Double(u as f64),
        ("double", Lit::Double(d)) => Lit::Double(d),
        ("double", Lit::Str(s)) => Lit::Double(s.parse().ok()?),
        ("string", Lit::Str(s)) => Lit::Str(s),
        ("string", Lit::Int(i)) => Lit::Str(i.to_string()),
        ("string", Lit::UInt(u)) => Lit::Str(u.to_string()),
        ("string", Lit::Bool(b)) => Lit::Str(b.to_string()),
        _ => return None,
    })
}

/// `pred` with the comprehension variable `var` replaced by the constant `item`.
fn substitute(pred: &IdedExpr, var: &str, item: &Lit) -> IdedExpr {
    let mut out = pred.clone();
    let mut stack = vec![&mut out];
    while let Some(x) = stack.pop() {
        if matches!(&x.expr, X::Ident(n) if n == var) {
            if let Some(l) = to_literal(item) {
                x.expr = l;
            }
            continue;
        }
        match &mut x.expr {
            X::Call(c) => {
                if let Some(t) = c.target.as_deref_mut() {
                    stack.push(t);
                }
                stack.extend(c.args.iter_mut());
            }
            X::Select(s) => stack.push(&mut s.operand),
            X::List(l) => stack.extend(l.elements.iter_mut()),
            _ => {}
        }
    }
    out
}

fn to_literal(item: &Lit) -> Option<X> {
    Some(X::Literal(match item {
        Lit::Str(s) => LiteralValue::String(s.clone().into()),
        Lit::Int(i) => LiteralValue::Int((*i).into()),
        Lit::UInt(u) => LiteralValue::UInt((*u).into()),
        Lit::Double(d) => LiteralValue::Double((*d).into()),
        Lit::Bool(b) => LiteralValue::Boolean((*b).into()),
        Lit::Null => LiteralValue::Null,
        _ => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_duration("5m"), Some(300_000_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("-250ms"), Some(-250_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(parse_timestamp("2026-01-01T00:00:00Z"), Some(1_767_225_600_000_000_000));
        assert_eq!(parse_timestamp("2026-01-01T01:00:00+01:00"), Some(1_767_225_600_000_000_000));
        assert_eq!(parse_timestamp("01/01/2026"), None);
    }
}
