//! KFL2, Kubeshark's current filter language (v53 and later): Google's Common Expression
//! Language over flat typed variables (`../shared/KFL.md` §2.5, §3 item 15, §4).
//!
//! The query is parsed by the `cel` crate's parser (cel-rust: the CEL grammar, macros and
//! source positions), checked against KFL2's variables ([`vars`]) into the same condition KFL1
//! queries become, and lowered by the same code ([`crate::translate`]): routing to tables,
//! pruning, the map, `why` and every other consumer work on KFL2 unchanged.
//!
//! - [`vars`]: the variables, what each reads, and those podwire does not record.
//! - `check`: CEL's static typing and semantics (defaults for missing variables, `in`, `has`,
//!   `size`, `matches`, `exists`/`all`/`exists_one`, timestamps and durations).
//!
//! What SQL cannot express exactly is an `UNSUPPORTED` error, never different rows: arithmetic
//! on variables, indexing a list variable, predicates other than membership over a stored list,
//! times finer than a millisecond.
mod check;
pub mod vars;

use crate::error::{Error, ErrorClass, Result};
use crate::span::Span;
use crate::translate::{self, Cond, Options, Translation};

/// The longest KFL2 query accepted, in bytes (the parser builds a tree per character class;
/// this bounds its work and depth on hostile input).
pub const MAX_LEN: usize = 16 * 1024;

/// How deep the parser may recurse.
const MAX_RECURSION: u16 = 100;

/// Parses, checks and translates a KFL2 query; a blank query matches everything.
///
/// # Errors
/// Any [`ErrorClass`], positioned in `query`.
pub fn translate(query: &str, options: &Options) -> Result<Translation> {
    let cond = condition(query, options.now_ms).map_err(|e| e.in_query(query))?;
    translate::build(&cond, None, options).map_err(|e| e.in_query(query))
}

/// The checked condition of a KFL2 query (errors not yet positioned in the query's text).
pub(crate) fn condition(query: &str, now_ms: i64) -> Result<Cond> {
    if query.trim().is_empty() {
        return Ok(Cond::Const(true));
    }
    if query.len() > MAX_LEN {
        return Err(Error::new(
            ErrorClass::ParseTooComplex,
            Span::new(MAX_LEN, query.len()),
            format!("the filter is longer than {MAX_LEN} bytes"),
        ));
    }
    if let Some(at) = query.find('\0') {
        return Err(Error::new(
            ErrorClass::LexInvalidChar,
            Span::new(at, at + 1),
            "NUL in the filter",
        ));
    }
    // The parser and its tree recurse once per level of a left-nested expression (`1+1+…`): up
    // to MAX_LEN levels. They run on a thread of their own with room for that (the pages are
    // touched only as deep as the query goes), and only the checked condition comes back. A
    // panic in the third-party parser is an error here, not the caller's.
    let owned = query.to_owned();
    let worker = std::thread::Builder::new()
        .name("kfl2-parse".into())
        .stack_size(PARSE_STACK)
        .spawn(move || parse_and_check(&owned, now_ms));
    match worker.map(std::thread::JoinHandle::join) {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Error::new(
            ErrorClass::Internal,
            Span::new(0, query.len()),
            "the CEL parser failed on this filter",
        )),
        Err(e) => Err(Error::new(
            ErrorClass::Internal,
            Span::new(0, query.len()),
            format!("cannot start the parser's thread: {e}"),
        )),
    }
}

/// The stack of the parsing thread: a left-nested expression as long as [`MAX_LEN`] allows,
/// parsed and dropped in a debug build.
const PARSE_STACK: usize = 512 << 20;

fn parse_and_check(query: &str, now_ms: i64) -> Result<Cond> {
    let (expr, info) = cel::parser::Parser::new()
        .max_recursion_depth(MAX_RECURSION)
        .parse_with_source_info(query)
        .map_err(|errors| parse_error(query, &errors))?;
    let mut checker = check::Checker::new(&info, now_ms);
    checker.condition(&expr)
}

/// The parser's first error, classified and positioned.
fn parse_error(query: &str, errors: &cel::ParseErrors) -> Error {
    let Some(first) = errors.errors.first() else {
        return Error::new(
            ErrorClass::ParseUnexpectedToken,
            Span::new(0, query.len()),
            "does not parse",
        );
    };
    let (line, col) = first.pos;
    let at = offset_of(query, line, col);
    let msg = first.msg.strip_prefix("Syntax error: ").unwrap_or(&first.msg);
    let lower = msg.to_ascii_lowercase();
    // A token the lexer could not read: `at: '<text>'`.
    let bad = msg.split_once("token recognition error at: '").map(|(_, t)| t);
    let (class, message) = if lower.contains("has() macro") {
        (
            ErrorClass::SemHelperArgs,
            "`has()` takes a field selection, e.g. `has(dst.dns)`".to_string(),
        )
    } else if lower.contains("recursion limit") {
        (
            ErrorClass::ParseTooComplex,
            format!("the filter nests deeper than {MAX_RECURSION} levels"),
        )
    } else if lower.contains("input '<eof>'") {
        (ErrorClass::ParseUnexpectedEof, msg.replace("mismatched input '<EOF>'", "the filter ends"))
    } else if let Some(t) = bad {
        match t.chars().next() {
            Some('"' | '\'') if t.contains('\\') => (
                ErrorClass::LexInvalidEscape,
                "a string with an escape CEL does not have".to_string(),
            ),
            Some('"' | '\'') => (
                ErrorClass::LexUnterminatedString,
                "a string without its closing quote".to_string(),
            ),
            _ => (ErrorClass::LexInvalidChar, msg.to_string()),
        }
    } else {
        (ErrorClass::ParseUnexpectedToken, msg.to_string())
    };
    let end = query[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    let mut e = Error::new(class, Span::new(at, end.max(at)), message);
    if class == ErrorClass::LexInvalidEscape {
        e = e.hint("escapes are \\\\ \\\" \\' \\n \\t \\r \\xHH \\uHHHH …; a raw string r\"…\" keeps backslashes (for regexes)");
    } else if class == ErrorClass::ParseUnexpectedToken
        && [" and ", " or ", "not "].iter().any(|w| query.contains(w))
    {
        e = e.hint("KFL2 writes `&&`, `||` and `!`; `and`, `or`, `not` are KFL1 (choose the dialect `kfl1`)");
    }
    e
}

/// The byte offset of a 1-based line and 1-based character column.
fn offset_of(query: &str, line: isize, col: isize) -> usize {
    let mut offset = 0;
    for (i, l) in query.split_inclusive('\n').enumerate() {
        if i as isize + 1 == line {
            let col = usize::try_from(col - 1).unwrap_or(0);
            return offset + l.char_indices().nth(col).map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    query.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options { now_ms: 1_767_225_600_000, from_ms: None, to_ms: None, ..Options::default() }
    }

    #[test]
    fn offsets() {
        let info_probe = |q: &str| {
            let (e, info) = cel::parser::Parser::new().parse_with_source_info(q).unwrap();
            let c = check::Checker::new(&info, 0);
            let s = c.span(&e);
            q[s.start..s.end].to_string()
        };
        assert_eq!(info_probe("dst.port == 80"), "dst.port == 80");
        assert_eq!(info_probe("  dst.name == \"é\" "), "dst.name == \"é\"");
    }

    #[test]
    fn seed_queries() {
        for q in [
            "dst.namespace == \"\"",
            "dst.name == \"api.example.com\"",
            "tcp && conn_state == \"closed\"",
        ] {
            translate(q, &opts()).unwrap_or_else(|e| panic!("{q}: {}", e.render()));
        }
    }

    #[test]
    fn typed() {
        let e = translate("dst.port == \"80\"", &opts()).unwrap_err();
        assert_eq!(e.class, ErrorClass::SemType, "{}", e.render());
        assert_eq!(e.span, Span::new(0, 16), "{}", e.render());
    }
}
