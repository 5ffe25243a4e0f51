//! The typed syntax tree of a KFL1 query, every node with its [`Span`].
//!
//! The tree keeps KFL1's grouping exactly: `and`/`or` are one right-nested level
//! (`A and B or C` is `A and (B or C)`), `==`/`!=` and the orderings are right-nested too, and
//! parentheses are kept as [`Expr::Group`].
use crate::span::Span;

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `lhs and rhs`, `lhs or rhs`.
    Logical {
        /// `and` or `or`.
        op: LogicalOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
        /// The whole expression.
        span: Span,
    },
    /// `lhs == rhs`, `lhs < rhs`, ...
    Compare {
        /// The operator.
        op: CompareOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
        /// The operator token(s).
        op_span: Span,
        /// The whole expression.
        span: Span,
    },
    /// `!e`, `-e`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// Operand.
        operand: Box<Expr>,
        /// The whole expression.
        span: Span,
    },
    /// A literal.
    Literal(Literal, Span),
    /// A selector such as `dst.namespace` or `request.questions[0].name`.
    Path(Path),
    /// `receiver.name(args)` (a helper) or `name(args)` (a function).
    Call(Call),
    /// Path continuation after a call: `….json().user.id`.
    Member {
        /// What is accessed.
        base: Box<Expr>,
        /// The segments after it.
        segments: Vec<Segment>,
        /// The whole expression.
        span: Span,
    },
    /// `( e )`.
    Group(Box<Expr>, Span),
}

impl Expr {
    /// Where the expression is in the query.
    pub fn span(&self) -> Span {
        match self {
            Expr::Logical { span, .. }
            | Expr::Compare { span, .. }
            | Expr::Unary { span, .. }
            | Expr::Literal(_, span)
            | Expr::Member { span, .. }
            | Expr::Group(_, span) => *span,
            Expr::Path(p) => p.span,
            Expr::Call(c) => c.span,
        }
    }
}

/// `and` / `or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalOp {
    /// `and`
    And,
    /// `or`
    Or,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub fn flip(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Le => CompareOp::Ge,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Ge => CompareOp::Le,
            other => other,
        }
    }

    /// True for `<`, `<=`, `>`, `>=`.
    pub fn is_ordering(self) -> bool {
        !matches!(self, CompareOp::Eq | CompareOp::Ne)
    }

    /// The KFL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// `!` / `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!`: boolean negation.
    Not,
    /// `-`: numeric negation (literals only).
    Neg,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number (every KFL1 number is a float).
    Number(f64),
    /// A string, escapes decoded.
    Str(String),
    /// `r"…"`, escapes decoded.
    Regex(String),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
}

/// A selector: an identifier followed by `.name`, `.*`, `[0]`, `["key"]` or `[*]` segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The segments, the first always a [`Segment::Field`].
    pub segments: Vec<Segment>,
    /// The whole path.
    pub span: Span,
}

impl Path {
    /// The canonical spelling used by the field catalog: `a.b[0].c`, `a[*].b`, `a["k"]`
    /// (`.*` is written `[*]`).
    pub fn key(&self) -> String {
        segments_key(&self.segments)
    }
}

/// The canonical spelling of a segment list (see [`Path::key`]).
pub fn segments_key(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Field(name, _) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Segment::Index(i, _) => out.push_str(&format!("[{i}]")),
            Segment::Wildcard(_) => out.push_str("[*]"),
            Segment::Key(k, _) => out.push_str(&format!("[{k:?}]")),
        }
    }
    out
}

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// `.name` (or the leading identifier).
    Field(String, Span),
    /// `[n]`
    Index(u64, Span),
    /// `.*` or `[*]`
    Wildcard(Span),
    /// `["key"]`
    Key(String, Span),
}

impl Segment {
    /// Where the segment is.
    pub fn span(&self) -> Span {
        match self {
            Segment::Field(_, s)
            | Segment::Index(_, s)
            | Segment::Wildcard(s)
            | Segment::Key(_, s) => *s,
        }
    }
}

/// A call: `receiver.name(args)` or `name(args)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// What the helper is called on; `None` for a function.
    pub receiver: Option<Box<Expr>>,
    /// The helper or function name.
    pub name: String,
    /// Where the name is.
    pub name_span: Span,
    /// The arguments.
    pub args: Vec<Expr>,
    /// The whole call, receiver included.
    pub span: Span,
}
