//! The crate's one error type: a stable class, a span into the query, a message and a hint,
//! rendered as a caret diagnostic under the query.
use crate::span::{Position, Span, floor_char_boundary};
use std::fmt;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The stable error classes (KFL.md §6.5). The string forms are an API: clients match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// A string (or block comment) without its closing delimiter.
    LexUnterminatedString,
    /// A backslash escape that Go/CEL string rules do not allow (`\'`, `\.`, `\d`, ...).
    LexInvalidEscape,
    /// A number that is not a plain decimal (`0x50`, `080`, `1_000`, `1e`).
    LexInvalidNumber,
    /// NUL or invalid UTF-8 in the query.
    LexInvalidChar,
    /// A token the grammar does not allow here.
    ParseUnexpectedToken,
    /// The query ends where more was expected.
    ParseUnexpectedEof,
    /// The query nests deeper than the parser allows (our addition to §6.5).
    ParseTooComplex,
    /// A selector that no table has.
    SemUnknownField,
    /// A KFL alias that podwire does not know (`tcp_flow`).
    SemUnknownAlias,
    /// A helper or function that does not exist (`toLower`, `matches`).
    SemUnknownHelper,
    /// A helper called with the wrong number or kind of arguments.
    SemHelperArgs,
    /// A helper in function form or chained.
    SemHelperForm,
    /// An operator applied to a value of the wrong type (`!` on a string, ordering on strings).
    SemType,
    /// A regex literal that does not compile.
    SemInvalidRegex,
    /// A `datetime("…")` argument in none of the accepted layouts.
    SemInvalidDatetime,
    /// `limit(n)` anywhere but a top-level conjunct.
    SemLimitPlacement,
    /// Valid KFL that podwire cannot run: payload paths, `json()`, `redact()`, L7 aliases.
    Unsupported,
    /// A bug in this crate, not in the query.
    Internal,
}

impl ErrorClass {
    /// The stable code, e.g. `SEM_UNKNOWN_FIELD`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorClass::LexUnterminatedString => "LEX_UNTERMINATED_STRING",
            ErrorClass::LexInvalidEscape => "LEX_INVALID_ESCAPE",
            ErrorClass::LexInvalidNumber => "LEX_INVALID_NUMBER",
            ErrorClass::LexInvalidChar => "LEX_INVALID_CHAR",
            ErrorClass::ParseUnexpectedToken => "PARSE_UNEXPECTED_TOKEN",
            ErrorClass::ParseUnexpectedEof => "PARSE_UNEXPECTED_EOF",
            ErrorClass::ParseTooComplex => "PARSE_TOO_COMPLEX",
            ErrorClass::SemUnknownField => "SEM_UNKNOWN_FIELD",
            ErrorClass::SemUnknownAlias => "SEM_UNKNOWN_ALIAS",
            ErrorClass::SemUnknownHelper => "SEM_UNKNOWN_HELPER",
            ErrorClass::SemHelperArgs => "SEM_HELPER_ARGS",
            ErrorClass::SemHelperForm => "SEM_HELPER_FORM",
            ErrorClass::SemType => "SEM_TYPE",
            ErrorClass::SemInvalidRegex => "SEM_INVALID_REGEX",
            ErrorClass::SemInvalidDatetime => "SEM_INVALID_DATETIME",
            ErrorClass::SemLimitPlacement => "SEM_LIMIT_PLACEMENT",
            ErrorClass::Unsupported => "UNSUPPORTED",
            ErrorClass::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A positioned error in a KFL query.
///
/// Everything except [`ErrorClass::Internal`] is the user's to fix (an HTTP 400); `Internal` is a
/// bug here (a 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of error.
    pub class: ErrorClass,
    /// Where in the query.
    pub span: Span,
    /// `line:col` of the span's start.
    pub position: Position,
    /// One lowercase sentence, identifiers in backticks.
    pub message: String,
    /// How to fix it, when there is something to say.
    pub hint: Option<String>,
    /// The query the error is about, kept to render the diagnostic.
    query: String,
}

impl Error {
    pub(crate) fn new(class: ErrorClass, span: Span, message: impl Into<String>) -> Self {
        Error {
            class,
            span,
            position: Position { line: 1, col: 1 },
            message: message.into(),
            hint: None,
            query: String::new(),
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attaches the query text and computes the position. Called once, at the crate boundary.
    pub(crate) fn in_query(mut self, query: &str) -> Self {
        self.position = self.span.position(query);
        self.query = query.to_string();
        self
    }

    /// True unless the error is a bug in this crate.
    pub fn is_user_error(&self) -> bool {
        self.class != ErrorClass::Internal
    }

    /// Never: the same query fails the same way.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// The diagnostic: the message, the query line with carets under the span, and the hint.
    ///
    /// ```text
    /// error[SEM_UNKNOWN_FIELD] at 1:1: unknown field `dst.nam`
    ///   |
    /// 1 | dst.nam == "x"
    ///   | ^^^^^^^
    ///   = hint: did you mean `dst.name`?
    /// ```
    pub fn render(&self) -> String {
        let mut out = format!("error[{}] at {}: {}\n", self.class, self.position, self.message);
        let text = &self.query;
        let start = floor_char_boundary(text, self.span.start);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = &text[line_start..line_end];
        let end = floor_char_boundary(text, self.span.end.clamp(start, line_end));
        let pad = text[line_start..start].chars().map(|c| if c == '\t' { '\t' } else { ' ' });
        let carets = text[start..end].chars().count().max(1);
        let num = self.position.line.to_string();
        let gutter = " ".repeat(num.len());
        out.push_str(&format!("{gutter} |\n{num} | {line}\n{gutter} | "));
        out.extend(pad);
        out.push_str(&"^".repeat(carets));
        out.push('\n');
        if let Some(hint) = &self.hint {
            out.push_str(&format!("{gutter} = hint: {hint}\n"));
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.position, self.message, self.class)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_span() {
        let e = Error::new(ErrorClass::SemUnknownField, Span::new(4, 7), "unknown field `x`")
            .hint("did you mean `y`?")
            .in_query("ab\ncd xyz");
        assert_eq!(e.position, Position { line: 2, col: 2 });
        assert_eq!(
            e.render(),
            "error[SEM_UNKNOWN_FIELD] at 2:2: unknown field `x`\n  |\n2 | cd xyz\n  |  ^^^\n  = hint: did you mean `y`?\n"
        );
        assert_eq!(
            e.to_string(),
            "2:2: unknown field `x` [SEM_UNKNOWN_FIELD] (hint: did you mean `y`?)"
        );
    }
}
