//! The KFL1 parser (KFL.md §1.4, canonical dialect §6.6, fixes §6.4).
//!
//! ```text
//! Query      ::= <empty> | Logical              (input is trimmed: blank = match-all, §6.4 i)
//! Logical    ::= Equality [ ("and" | "or") Logical ]       one level, right-nested
//! Equality   ::= Comparison [ ("==" | "!=") Equality ]     right-nested
//! Comparison ::= Unary [ ("<" | "<=" | ">" | ">=") Comparison ]
//! Unary      ::= ("!" | "-") Unary | Postfix
//! Postfix    ::= Primary { "." IDENT "(" Args ")" | "." IDENT | "." "*" | "[" Index "]" }
//! Primary    ::= NUMBER | STRING | REGEX | "true" | "false" | "nil" | "(" Logical ")"
//!              | Path [ "(" Args ")" ]
//! Path       ::= IDENT { "." IDENT | "." "*" | "[" Index "]" }
//! Index      ::= INT | STRING | "*"
//! ```
//!
//! Differences from Kubeshark's grammar, all deliberate: `.` after `]` or `)` continues the path
//! instead of swallowing the rest of the expression (§6.4 c); `a.`, `a..b` and named arguments are
//! rejected. Size is bounded so that no input can exhaust the stack of whoever translates, prints
//! or plans the query: at most [`MAX_NESTING`] parentheses, `!`/`-` and call arguments inside one
//! another, [`MAX_CHAIN`] operands in one `and`/`or` chain, and an effective depth of
//! [`MAX_DEPTH`] (each parenthesis, prefix, call, comparison and switch between `and` and `or`
//! counts one level; a run of the same operator counts once, as it is translated flat).
use crate::ast::{Call, CompareOp, Expr, Literal, LogicalOp, Path, Segment, UnaryOp};
use crate::error::{Error, ErrorClass, Result};
use crate::lexer::{Token, TokenKind, tokenize};
use crate::span::Span;

/// The largest effective depth of a query (see the module docs).
pub const MAX_DEPTH: usize = 128;

/// The most operands of one `and`/`or` chain.
pub const MAX_CHAIN: usize = 256;

/// The most parentheses, prefix operators and call arguments that may enclose one another.
pub const MAX_NESTING: usize = 64;

/// Parses a query. `Ok(None)` is the empty (or blank, or comment-only) query, which matches
/// everything.
///
/// # Errors
/// The `LEX_*` and `PARSE_*` classes.
pub fn parse(src: &str) -> Result<Option<Expr>> {
    let tokens = tokenize(src)?;
    let mut p = Parser { tokens, pos: 0, nesting: 0 };
    if p.peek() == &TokenKind::Eof {
        return Ok(None);
    }
    let (expr, _) = p.logical()?;
    match p.peek() {
        TokenKind::Eof => Ok(Some(expr)),
        _ => Err(p.unexpected("the end of the query or `and`/`or`", Some(&expr))),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
}

type Parsed = (Expr, usize);

impl Parser {
    fn peek(&self) -> &TokenKind {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].kind
    }

    fn peek_at(&self, n: usize) -> &TokenKind {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)].kind
    }

    fn span(&self) -> Span {
        self.tokens[self.pos.min(self.tokens.len() - 1)].span
    }

    fn prev_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1)].span
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), TokenKind::Ident(s) if s == word)
    }

    /// The error for the current token, with a hint for the common mistakes.
    fn unexpected(&self, expected: &str, prev: Option<&Expr>) -> Error {
        let kind = self.peek();
        if kind == &TokenKind::Eof {
            return Error::new(
                ErrorClass::ParseUnexpectedEof,
                self.span(),
                format!("unexpected token \"<EOF>\": expected {expected}"),
            )
            .hint("the query ends too early: complete the expression or close the parenthesis");
        }
        let mut e = Error::new(
            ErrorClass::ParseUnexpectedToken,
            self.span(),
            format!("unexpected token {}: expected {expected}", kind.describe()),
        );
        let prev_ident = match prev {
            Some(Expr::Path(p)) if p.segments.len() == 1 => Some(p.key()),
            _ => None,
        };
        let hint = match kind {
            TokenKind::Other('&') => Some("KFL1 writes `and`, not `&&`".to_string()),
            TokenKind::Other('|') => Some("KFL1 writes `or`, not `||`".to_string()),
            TokenKind::Other('~') => Some("for a regex match write `field == r\"pattern\"`".into()),
            TokenKind::Other('#') => Some("comments are `// …` or `/* … */`".to_string()),
            TokenKind::Eq => Some("compare with `==`".to_string()),
            TokenKind::Gt if self.tokens[self.pos.saturating_sub(1)].kind == TokenKind::Lt => {
                Some("KFL1 writes `!=`, not `<>`".to_string())
            }
            TokenKind::Ident(w) if w == "AND" || w == "OR" => {
                Some(format!("keywords are lower-case: `{}`", w.to_lowercase()))
            }
            TokenKind::Ident(w) if w == "in" => {
                Some("KFL1 has no `in`: write `a == x or a == y`".to_string())
            }
            TokenKind::Minus => {
                Some("KFL1 has no arithmetic: for times write e.g. `minutes(-5)`".to_string())
            }
            TokenKind::Number { text, .. } if text.starts_with('.') => {
                Some("quote IP addresses: `\"10.0.0.1\"`".to_string())
            }
            _ if prev_ident.as_deref() == Some("not") => {
                Some("KFL1 negates with `!`, e.g. `!tcp`".to_string())
            }
            _ => None,
        };
        if let Some(h) = hint {
            e = e.hint(h);
        }
        e
    }

    fn enter(&mut self) -> Result<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Error::new(
                ErrorClass::ParseTooComplex,
                self.span(),
                format!("the query nests deeper than {MAX_NESTING} levels"),
            )
            .hint("remove redundant parentheses or `!`"));
        }
        Ok(())
    }

    fn too_deep(&self) -> Error {
        Error::new(
            ErrorClass::ParseTooComplex,
            self.span(),
            format!("the query is nested more than {MAX_DEPTH} levels deep"),
        )
        .hint("split the query into smaller ones")
    }

    /// Folds `operands[0] op operands[1] op …` to the right; the chain adds `cost` levels to its
    /// deepest operand.
    fn fold_right<O: Copy>(
        &self,
        mut operands: Vec<Parsed>,
        ops: Vec<(O, Span)>,
        cost: usize,
        make: impl Fn(O, Box<Expr>, Box<Expr>, Span, Span) -> Expr,
    ) -> Result<Parsed> {
        let depth = operands.iter().map(|(_, d)| *d).max().unwrap_or(0)
            + if ops.is_empty() { 0 } else { cost };
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        let Some((mut acc, _)) = operands.pop() else {
            return Err(Error::new(ErrorClass::Internal, self.span(), "empty operand list"));
        };
        for ((lhs, _), (op, op_span)) in operands.into_iter().zip(ops).rev() {
            let span = lhs.span().to(acc.span());
            acc = make(op, Box::new(lhs), Box::new(acc), op_span, span);
        }
        Ok((acc, depth))
    }

    fn logical(&mut self) -> Result<Parsed> {
        let mut operands = vec![self.equality()?];
        let mut ops = Vec::new();
        let mut switches = 0;
        loop {
            let op = if self.is_ident("and") {
                LogicalOp::And
            } else if self.is_ident("or") {
                LogicalOp::Or
            } else {
                break;
            };
            // Each switch between `and` and `or` is one more level of nesting in the SQL.
            if ops.last().is_some_and(|(last, _)| *last != op) {
                switches += 1;
                if switches > MAX_NESTING {
                    return Err(Error::new(
                        ErrorClass::ParseTooComplex,
                        self.span(),
                        format!("the query switches between `and` and `or` more than {MAX_NESTING} times"),
                    )
                    .hint("split the query into smaller ones"));
                }
            }
            ops.push((op, self.bump().span));
            if ops.len() >= MAX_CHAIN {
                return Err(Error::new(
                    ErrorClass::ParseTooComplex,
                    self.span(),
                    format!("the query chains more than {MAX_CHAIN} conditions"),
                )
                .hint("split the query into smaller ones"));
            }
            operands.push(self.equality()?);
        }
        self.fold_right(operands, ops, switches + 1, |op, lhs, rhs, _, span| Expr::Logical {
            op,
            lhs,
            rhs,
            span,
        })
    }

    fn equality(&mut self) -> Result<Parsed> {
        let mut operands = vec![self.comparison()?];
        let mut ops = Vec::new();
        loop {
            let op = match (self.peek(), self.peek_at(1)) {
                (TokenKind::Eq, TokenKind::Eq) => CompareOp::Eq,
                (TokenKind::Bang, TokenKind::Eq) => CompareOp::Ne,
                _ => break,
            };
            let start = self.bump().span;
            let end = self.bump().span;
            ops.push((op, start.to(end)));
            if ops.len() > MAX_NESTING {
                return Err(self.too_deep());
            }
            operands.push(self.comparison()?);
        }
        let cost = ops.len();
        self.fold_right(operands, ops, cost, compare)
    }

    fn comparison(&mut self) -> Result<Parsed> {
        let mut operands = vec![self.unary()?];
        let mut ops = Vec::new();
        loop {
            let (strict, loose) = match self.peek() {
                TokenKind::Lt => (CompareOp::Lt, CompareOp::Le),
                TokenKind::Gt => (CompareOp::Gt, CompareOp::Ge),
                _ => break,
            };
            let mut span = self.bump().span;
            // `a < = 1` is `<=`, as in Kubeshark (separate tokens); `a <= = 1` is not.
            let op = if self.peek() == &TokenKind::Eq && self.peek_at(1) != &TokenKind::Eq {
                span = span.to(self.bump().span);
                loose
            } else {
                strict
            };
            ops.push((op, span));
            if ops.len() > MAX_NESTING {
                return Err(self.too_deep());
            }
            operands.push(self.unary()?);
        }
        let cost = ops.len();
        self.fold_right(operands, ops, cost, compare)
    }

    fn unary(&mut self) -> Result<Parsed> {
        let op = match self.peek() {
            TokenKind::Bang => UnaryOp::Not,
            TokenKind::Minus => UnaryOp::Neg,
            _ => return self.postfix(),
        };
        let start = self.bump().span;
        self.enter()?;
        let (operand, depth) = self.unary()?;
        self.nesting -= 1;
        let span = start.to(operand.span());
        Ok((Expr::Unary { op, operand: Box::new(operand), span }, depth + 1))
    }

    fn postfix(&mut self) -> Result<Parsed> {
        let (mut expr, mut depth) = self.primary()?;
        // Continuation after a call: `.name(args)` chains, other segments access members.
        while matches!(expr, Expr::Call(_) | Expr::Member { .. })
            && matches!(self.peek(), TokenKind::Dot | TokenKind::LBracket)
        {
            let mut segments = Vec::new();
            loop {
                if self.peek() == &TokenKind::Dot
                    && matches!(self.peek_at(1), TokenKind::Ident(_))
                    && self.peek_at(2) == &TokenKind::LParen
                {
                    break;
                }
                match self.segment(false)? {
                    Some(s) => segments.push(s),
                    None => break,
                }
            }
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(self.too_deep());
            }
            if !segments.is_empty() {
                let span = expr.span().to(self.prev_span());
                expr = Expr::Member { base: Box::new(expr), segments, span };
            } else {
                self.bump(); // the dot
                let name_tok = self.bump();
                let TokenKind::Ident(name) = name_tok.kind else {
                    return Err(Error::new(ErrorClass::Internal, name_tok.span, "expected a name"));
                };
                let args = self.args()?;
                let span = expr.span().to(self.prev_span());
                expr = Expr::Call(Call {
                    receiver: Some(Box::new(expr)),
                    name,
                    name_span: name_tok.span,
                    args,
                    span,
                });
            }
        }
        Ok((expr, depth))
    }

    fn primary(&mut self) -> Result<Parsed> {
        let tok = self.bump();
        let lit = |l: Literal| Ok((Expr::Literal(l, tok.span), 1));
        match &tok.kind {
            TokenKind::Number { value, .. } => lit(Literal::Number(*value)),
            TokenKind::Str(s) => lit(Literal::Str(s.clone())),
            TokenKind::Regex(s) => lit(Literal::Regex(s.clone())),
            TokenKind::Ident(w) if w == "true" => lit(Literal::Bool(true)),
            TokenKind::Ident(w) if w == "false" => lit(Literal::Bool(false)),
            TokenKind::Ident(w) if w == "nil" => lit(Literal::Nil),
            TokenKind::Ident(w) if w == "and" || w == "or" => {
                self.pos -= 1;
                Err(self.unexpected("an operand", None))
            }
            TokenKind::Ident(w) => self.path_or_call(w.clone(), tok.span),
            TokenKind::LParen => {
                self.enter()?;
                let (inner, depth) = if self.peek() == &TokenKind::RParen {
                    return Err(self.unexpected("an expression inside the parentheses", None));
                } else {
                    self.logical()?
                };
                self.nesting -= 1;
                if self.peek() != &TokenKind::RParen {
                    return Err(self.unexpected("`)`", Some(&inner)));
                }
                let end = self.bump().span;
                Ok((Expr::Group(Box::new(inner), tok.span.to(end)), depth + 1))
            }
            _ => {
                self.pos -= usize::from(tok.kind != TokenKind::Eof || self.pos > 0);
                if tok.kind == TokenKind::Eof {
                    self.pos = self.tokens.len() - 1;
                }
                Err(self.unexpected("an operand", None))
            }
        }
    }

    fn path_or_call(&mut self, first: String, first_span: Span) -> Result<Parsed> {
        let mut segments = vec![Segment::Field(first, first_span)];
        while let Some(s) = self.segment(true)? {
            segments.push(s);
        }
        let span = first_span.to(self.prev_span());
        if self.peek() != &TokenKind::LParen {
            return Ok((Expr::Path(Path { segments, span }), 1));
        }
        let Some(Segment::Field(name, name_span)) = segments.pop() else {
            return Err(self.unexpected("a helper name before `(`", None));
        };
        let receiver = if segments.is_empty() {
            None
        } else {
            let span = segments[0].span().to(segments[segments.len() - 1].span());
            Some(Box::new(Expr::Path(Path { segments, span })))
        };
        let args = self.args()?;
        let span = first_span.to(self.prev_span());
        Ok((Expr::Call(Call { receiver, name, name_span, args, span }), 2))
    }

    /// One path segment, or `None` when the next token does not start one. `in_path` is false
    /// after a call, where `..` (JSONPath recursive descent after `json()`) is unsupported
    /// rather than a syntax error.
    fn segment(&mut self, in_path: bool) -> Result<Option<Segment>> {
        match self.peek() {
            TokenKind::Dot => {
                let dot = self.bump().span;
                let tok = self.bump();
                match tok.kind {
                    TokenKind::Ident(name) => Ok(Some(Segment::Field(name, tok.span))),
                    TokenKind::Star => Ok(Some(Segment::Wildcard(dot.to(tok.span)))),
                    TokenKind::Dot if !in_path => Err(Error::new(
                        ErrorClass::Unsupported,
                        dot.to(tok.span),
                        "recursive descent `..` into payloads is not supported",
                    )
                    .hint("podwire does not store payloads")),
                    TokenKind::Dot => {
                        self.pos -= 1;
                        Err(self
                            .unexpected("a field name after `.`", None)
                            .hint("recursive descent `..` is not supported: write the full path"))
                    }
                    _ => {
                        self.pos -= 1;
                        Err(self
                            .unexpected("a field name after `.`", None)
                            .hint("a selector cannot end with `.`"))
                    }
                }
            }
            TokenKind::LBracket => {
                let open = self.bump().span;
                let tok = self.bump();
                let seg = match &tok.kind {
                    TokenKind::Number { value, text }
                        if text.bytes().all(|b| b.is_ascii_digit()) && *value < 1e15 =>
                    {
                        // Integral by the check above and below 2^53, so exact.
                        Segment::Index(*value as u64, open)
                    }
                    TokenKind::Str(k) => Segment::Key(k.clone(), open),
                    TokenKind::Star => Segment::Wildcard(open),
                    _ => {
                        self.pos -= 1;
                        return Err(self
                            .unexpected("an index (`0`, `\"key\"` or `*`)", None)
                            .hint("indexes are unsigned integers: `[0]`"));
                    }
                };
                if self.peek() != &TokenKind::RBracket {
                    return Err(self.unexpected("`]`", None));
                }
                let close = self.bump().span;
                Ok(Some(match seg {
                    Segment::Index(i, _) => Segment::Index(i, open.to(close)),
                    Segment::Key(k, _) => Segment::Key(k, open.to(close)),
                    _ => Segment::Wildcard(open.to(close)),
                }))
            }
            _ => Ok(None),
        }
    }

    fn args(&mut self) -> Result<Vec<Expr>> {
        if self.peek() != &TokenKind::LParen {
            return Err(self.unexpected("`(`", None));
        }
        self.bump();
        self.enter()?;
        let mut args = Vec::new();
        if self.peek() == &TokenKind::RParen {
            self.bump();
            self.nesting -= 1;
            return Ok(args);
        }
        loop {
            let (arg, _) = self.logical()?;
            args.push(arg);
            match self.peek() {
                TokenKind::Comma => {
                    self.bump();
                }
                TokenKind::RParen => {
                    self.bump();
                    self.nesting -= 1;
                    return Ok(args);
                }
                _ => return Err(self.unexpected("`,` or `)`", args.last())),
            }
        }
    }
}

fn compare(op: CompareOp, lhs: Box<Expr>, rhs: Box<Expr>, op_span: Span, span: Span) -> Expr {
    Expr::Compare { op, lhs, rhs, op_span, span }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(e: &Expr) -> String {
        match e {
            Expr::Logical { op, lhs, rhs, .. } => format!("({} {op:?} {})", shape(lhs), shape(rhs)),
            Expr::Compare { op, lhs, rhs, .. } => {
                format!("({} {} {})", shape(lhs), op.as_str(), shape(rhs))
            }
            Expr::Unary { op, operand, .. } => format!("{op:?}{}", shape(operand)),
            Expr::Literal(l, _) => format!("{l:?}"),
            Expr::Path(p) => p.key(),
            Expr::Call(c) => format!(
                "{}{}({})",
                c.receiver.as_ref().map(|r| format!("{}.", shape(r))).unwrap_or_default(),
                c.name,
                c.args.iter().map(shape).collect::<Vec<_>>().join(", ")
            ),
            Expr::Member { base, segments, .. } => {
                format!("{}->{}", shape(base), crate::ast::segments_key(segments))
            }
            Expr::Group(e, _) => format!("[{}]", shape(e)),
        }
    }

    fn p(s: &str) -> String {
        shape(&parse(s).unwrap().unwrap())
    }

    #[test]
    fn and_or_are_one_right_nested_level() {
        assert_eq!(p("a and b or c"), "(a And (b Or c))");
        assert_eq!(p("1 < 2 < 3"), "(Number(1.0) < (Number(2.0) < Number(3.0)))");
        assert_eq!(p("!a == b"), "(Nota == b)");
        assert_eq!(p("a > = 1"), "(a >= Number(1.0))");
    }

    #[test]
    fn paths_and_calls() {
        assert_eq!(p("request.questions[0].name"), "request.questions[0].name");
        assert_eq!(p("a.*.b[*]"), "a[*].b[*]");
        assert_eq!(
            p("a.b.startsWith(\"x\").endsWith(c)"),
            "a.b.startsWith(Str(\"x\")).endsWith(c)"
        );
        assert_eq!(p("a.json().user.id"), "a.json()->user.id");
        assert_eq!(p("limit(1)"), "limit(Number(1.0))");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "(".repeat(100_000);
        assert_eq!(parse(&deep).unwrap_err().class, ErrorClass::ParseTooComplex);
        let chain = vec!["a"; 10_000].join(" and ");
        assert_eq!(parse(&chain).unwrap_err().class, ErrorClass::ParseTooComplex);
        let ok = vec!["a"; MAX_CHAIN].join(" and ");
        assert!(parse(&ok).is_ok());
        let bangs = format!("{}a", "!".repeat(100_000));
        assert_eq!(parse(&bangs).unwrap_err().class, ErrorClass::ParseTooComplex);
    }
}
