//! The KFL1 lexer: Go `text/scanner` tokens (KFL.md §1.3) with the §6.4 fixes.
//!
//! - `"…"` strings decode their escapes (Go rules: `\a \b \f \n \r \t \v \\ \"`, `\ooo`, `\xHH`,
//!   `\uHHHH`, `\UHHHHHHHH`); any other escape is `LEX_INVALID_ESCAPE`, as in Kubeshark.
//! - `'…'` is an ordinary string (it may also use `\'`), `` `…` `` a raw string: their quotes are
//!   not part of the value (Kubeshark kept them, so such literals never matched).
//! - `r` directly followed by a string is a regex literal.
//! - Numbers are decimal only: `42`, `3.14`, `.5`, `1e3`. Hex, octal (`080`), binary and `_` are
//!   `LEX_INVALID_NUMBER`.
//! - Operators are single characters; the parser joins `=` `=`, `!` `=`, `<` `=`, `>` `=`, so
//!   `a > = 1` stays valid as in Kubeshark.
//! - `//` and `/* */` comments are skipped; a leading BOM is dropped; NUL is `LEX_INVALID_CHAR`.
use crate::error::{Error, ErrorClass, Result};
use crate::span::Span;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// An identifier (keywords such as `and` are identifiers the parser recognises).
    Ident(String),
    /// A number literal, with its text as written.
    Number {
        /// The value.
        value: f64,
        /// The text as written.
        text: String,
    },
    /// A string literal, escapes decoded.
    Str(String),
    /// A regex literal `r"…"`, escapes decoded.
    Regex(String),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `.`
    Dot,
    /// `,`
    Comma,
    /// `:`
    Colon,
    /// `!`
    Bang,
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// Any other character: always a parse error, kept for the message.
    Other(char),
    /// End of the query.
    Eof,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(s) => format!("\"{s}\""),
            TokenKind::Number { text, .. } => format!("\"{text}\""),
            TokenKind::Str(_) => "string".to_string(),
            TokenKind::Regex(_) => "regex".to_string(),
            TokenKind::Eof => "<EOF>".to_string(),
            other => format!("\"{}\"", other.punct()),
        }
    }

    fn punct(&self) -> char {
        match self {
            TokenKind::LParen => '(',
            TokenKind::RParen => ')',
            TokenKind::LBracket => '[',
            TokenKind::RBracket => ']',
            TokenKind::Dot => '.',
            TokenKind::Comma => ',',
            TokenKind::Colon => ':',
            TokenKind::Bang => '!',
            TokenKind::Eq => '=',
            TokenKind::Lt => '<',
            TokenKind::Gt => '>',
            TokenKind::Minus => '-',
            TokenKind::Star => '*',
            TokenKind::Other(c) => *c,
            _ => '?',
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Where it is.
    pub span: Span,
}

/// Splits `src` into tokens, ending with [`TokenKind::Eof`].
///
/// # Errors
/// The `LEX_*` classes, positioned at the offending character.
pub fn tokenize(src: &str) -> Result<Vec<Token>> {
    Lexer { src, pos: 0 }.run()
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.pos..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn run(mut self) -> Result<Vec<Token>> {
        if self.src.starts_with('\u{feff}') {
            self.pos = 3;
        }
        let mut out = Vec::new();
        loop {
            self.skip_trivia()?;
            let start = self.pos;
            let Some(c) = self.peek() else {
                out.push(Token { kind: TokenKind::Eof, span: Span::new(start, start) });
                return Ok(out);
            };
            let kind = match c {
                '\0' => {
                    return Err(Error::new(
                        ErrorClass::LexInvalidChar,
                        Span::new(start, start + 1),
                        "NUL character in the query",
                    ));
                }
                'r' if matches!(self.peek2(), Some('"' | '\'' | '`')) => {
                    self.bump();
                    TokenKind::Regex(self.string()?)
                }
                c if c.is_alphabetic() || c == '_' => {
                    while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        self.bump();
                    }
                    TokenKind::Ident(self.src[start..self.pos].to_string())
                }
                c if c.is_ascii_digit() => self.number()?,
                '.' if self.peek2().is_some_and(|c| c.is_ascii_digit()) => self.number()?,
                '"' | '\'' | '`' => TokenKind::Str(self.string()?),
                _ => {
                    self.bump();
                    match c {
                        '(' => TokenKind::LParen,
                        ')' => TokenKind::RParen,
                        '[' => TokenKind::LBracket,
                        ']' => TokenKind::RBracket,
                        '.' => TokenKind::Dot,
                        ',' => TokenKind::Comma,
                        ':' => TokenKind::Colon,
                        '!' => TokenKind::Bang,
                        '=' => TokenKind::Eq,
                        '<' => TokenKind::Lt,
                        '>' => TokenKind::Gt,
                        '-' => TokenKind::Minus,
                        '*' => TokenKind::Star,
                        other => TokenKind::Other(other),
                    }
                }
            };
            out.push(Token { kind, span: Span::new(start, self.pos) });
        }
    }

    fn skip_trivia(&mut self) -> Result<()> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.bump();
                }
                Some('/') if self.peek2() == Some('/') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                Some('/') if self.peek2() == Some('*') => {
                    let start = self.pos;
                    match self.src[self.pos + 2..].find("*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => {
                            return Err(Error::new(
                                ErrorClass::LexUnterminatedString,
                                Span::new(start, start + 2),
                                "comment not terminated",
                            )
                            .hint("close the comment with `*/`"));
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn number(&mut self) -> Result<TokenKind> {
        let start = self.pos;
        let invalid = |lexer: &mut Self, why: &str| {
            while lexer.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                lexer.bump();
            }
            Err(Error::new(ErrorClass::LexInvalidNumber, Span::new(start, lexer.pos), why)
                .hint("write numbers in plain decimal, e.g. `80`, `1.5`, `1e3`"))
        };
        let digits = |lexer: &mut Self| {
            let s = lexer.pos;
            while lexer.peek().is_some_and(|c| c.is_ascii_digit()) {
                lexer.bump();
            }
            lexer.pos - s
        };
        let int_len = digits(self);
        if matches!(self.peek(), Some('x' | 'X' | 'b' | 'B' | 'o' | 'O' | '_')) {
            return invalid(self, "only decimal numbers are allowed");
        }
        if int_len > 1 && self.src[start..].starts_with('0') && self.peek() != Some('.') {
            return invalid(self, "a number cannot start with `0` (Go octal syntax)");
        }
        if self.peek() == Some('.') && self.peek2().is_none_or(|c| c.is_ascii_digit()) {
            self.bump();
            digits(self);
        } else if self.peek() == Some('.') && int_len > 0 {
            // `1.` followed by something else: Go accepts `1.` as a float.
            if !self.peek2().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '.') {
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if digits(self) == 0 {
                return invalid(self, "exponent has no digits");
            }
        }
        if self.peek() == Some('_') {
            return invalid(self, "only decimal numbers are allowed");
        }
        let text = &self.src[start..self.pos];
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => {
                Ok(TokenKind::Number { value, text: text.to_string() })
            }
            _ => invalid(self, "number out of range"),
        }
    }

    /// Lexes a string starting at its opening quote and returns its decoded value.
    fn string(&mut self) -> Result<String> {
        let start = self.pos;
        let Some(quote) = self.bump() else {
            return Err(Error::new(ErrorClass::Internal, Span::new(start, start), "no quote"));
        };
        let mut value = String::new();
        let unterminated = |pos: usize| {
            Error::new(
                ErrorClass::LexUnterminatedString,
                Span::new(start, pos),
                "literal not terminated",
            )
            .hint(format!("close the string with `{quote}` on the same line"))
        };
        loop {
            let here = self.pos;
            match self.bump() {
                None => return Err(unterminated(here)),
                Some(c) if c == quote => return Ok(value),
                Some('\n') if quote != '`' => return Err(unterminated(here)),
                Some('\\') if quote != '`' => value.push(self.escape(here, quote)?),
                Some('\0') => {
                    return Err(Error::new(
                        ErrorClass::LexInvalidChar,
                        Span::new(here, here + 1),
                        "NUL character in a string",
                    ));
                }
                Some(c) => value.push(c),
            }
        }
    }

    fn escape(&mut self, start: usize, quote: char) -> Result<char> {
        let invalid = |lexer: &Self| {
            Error::new(ErrorClass::LexInvalidEscape, Span::new(start, lexer.pos), "invalid char escape")
                .hint("valid escapes are \\a \\b \\f \\n \\r \\t \\v \\\\ \\\" \\ooo \\xHH \\uHHHH \\UHHHHHHHH; in a regex write `[.]` for a literal dot, or `\\\\.`")
        };
        let Some(c) = self.bump() else {
            return Err(invalid(self));
        };
        let simple = match c {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            c if c == quote => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            return Ok(s);
        }
        let (radix, len) = match c {
            '0'..='7' => (8, 2),
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            _ => return Err(invalid(self)),
        };
        let mut v: u32 = if radix == 8 { c.to_digit(8).unwrap_or(0) } else { 0 };
        for _ in 0..len {
            match self.peek().and_then(|d| d.to_digit(radix)) {
                Some(d) => {
                    self.bump();
                    v = v * radix + d;
                }
                None => return Err(invalid(self)),
            }
        }
        if radix == 8 && v > 255 {
            return Err(invalid(self));
        }
        // Octal and `\x` escapes are bytes in Go; here they name the code point (ASCII-compatible).
        char::from_u32(v).ok_or_else(|| invalid(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        tokenize(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn strings_decode() {
        assert_eq!(kinds(r#""a\"b""#)[0], TokenKind::Str("a\"b".into()));
        assert_eq!(kinds(r#""caf\u00e9""#)[0], TokenKind::Str("café".into()));
        assert_eq!(kinds("'web'")[0], TokenKind::Str("web".into()));
        assert_eq!(kinds("`a\\.b`")[0], TokenKind::Str("a\\.b".into()));
        assert_eq!(kinds(r#"r"^a""#)[0], TokenKind::Regex("^a".into()));
    }

    #[test]
    fn numbers() {
        assert!(matches!(kinds(".5")[0], TokenKind::Number { value, .. } if value == 0.5));
        assert!(matches!(kinds("1e3")[0], TokenKind::Number { value, .. } if value == 1000.0));
        for bad in ["0x50", "080", "1_000", "1e"] {
            assert_eq!(tokenize(bad).unwrap_err().class, ErrorClass::LexInvalidNumber, "{bad}");
        }
        assert_eq!(kinds("10.0.0.1").len(), 4);
    }

    #[test]
    fn errors() {
        assert_eq!(tokenize("\"a\\qb\"").unwrap_err().class, ErrorClass::LexInvalidEscape);
        assert_eq!(tokenize("\"ab").unwrap_err().class, ErrorClass::LexUnterminatedString);
        assert_eq!(tokenize("a\0").unwrap_err().class, ErrorClass::LexInvalidChar);
    }
}
