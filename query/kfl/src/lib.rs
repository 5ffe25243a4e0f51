//! KFL, Kubeshark's filter language, for podwire's history: a pure parser and translator from
//! KFL to a SQL AST. No I/O, no async, no query engine: the query service runs the SQL.
//!
//! The dialect is **KFL1 as Kubeshark v52 shipped it** (`../shared/KFL.md` §6.6), with the
//! deliberate fixes of §6.4: aliases are whole tokens, string escapes are decoded, `.` after `]`
//! continues a path, equality with numbers is numeric, unknown fields and helpers are errors, and
//! a blank query matches everything.
//!
//! - [`lexer`]: text → tokens (strings, regex literals, decimal numbers, punctuation).
//! - [`parser`]: tokens → [`ast::Expr`], keeping KFL1's right-nested `and`/`or`.
//! - [`ast`]: the typed syntax tree; every node carries a [`span::Span`].
//! - [`span`]: byte ranges and `line:col` positions.
//! - [`error`]: [`Error`] with a stable [`ErrorClass`] (KFL.md §6.5), a position, a caret
//!   diagnostic ([`Error::render`]) and a hint.
//! - [`kfl2`]: KFL2 (CEL) through the `cel` crate's parser, checked into the same condition
//!   and lowered by the same code.
//! - [`terms`]: the `field == "text"` tests of a query (the names `why-not` checks).
//! - [`fields`]: the catalog of selectors (`src.ip`, `dst.namespace`, `request.questions[0].name`,
//!   `outcome`, `rtt`, …), the columns they read in each table, types and units.
//! - [`mod@translate`]: type checks against the catalog and lowers to a `sqlparser` statement, routed
//!   to the tables the filter can match (the cross-table stream is documented there).
//!
//! ```
//! let opts = podwire_kfl::Options::default();
//! let t = podwire_kfl::translate(r#"dst.namespace == "" and tcp"#, &opts).unwrap();
//! assert_eq!(
//!     t.sql(),
//!     "SELECT * FROM connections WHERE dst_namespace = '' AND protocol = 'tcp' ORDER BY start_ts, conn_id"
//! );
//! ```
#![deny(missing_docs)]

pub mod ast;
pub mod error;
pub mod fields;
pub mod kfl2;
pub mod lexer;
pub mod parser;
pub mod span;
pub mod terms;
pub mod translate;

pub use error::{Error, ErrorClass, Result};
pub use translate::{Options, Translation};

/// Parses a query into its syntax tree; `Ok(None)` for a blank query (match everything).
///
/// # Errors
/// The `LEX_*` and `PARSE_*` classes, positioned in `query`.
pub fn parse(query: &str) -> Result<Option<ast::Expr>> {
    parser::parse(query).map_err(|e| e.in_query(query))
}

/// The language a query is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// KFL1, Kubeshark up to v52 (the default).
    #[default]
    Kfl1,
    /// KFL2 (CEL), Kubeshark v53 and later.
    Kfl2,
}

impl Dialect {
    /// `kfl1` or `kfl2`, as the API and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Kfl1 => "kfl1",
            Dialect::Kfl2 => "kfl2",
        }
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kfl1" | "kfl" | "1" => Ok(Dialect::Kfl1),
            "kfl2" | "cel" | "2" => Ok(Dialect::Kfl2),
            other => Err(format!("unknown dialect `{other}`: `kfl1` or `kfl2`")),
        }
    }
}

/// Parses, checks and translates a query to SQL, in [`Options::dialect`].
///
/// # Errors
/// Any [`ErrorClass`], positioned in `query`.
pub fn translate(query: &str, options: &Options) -> Result<Translation> {
    if options.dialect == Dialect::Kfl2 {
        return kfl2::translate(query, options);
    }
    let ast = parser::parse(query).map_err(|e| e.in_query(query))?;
    translate::translate(ast.as_ref(), options).map_err(|e| e.in_query(query))
}

/// `query` (in [`Options::dialect`]) and `extra`, a KFL1 filter, both: how a client adds its own
/// clauses (a map selection, noise toggles) to a filter the user wrote in either dialect. An
/// error is positioned in the filter it is about.
///
/// # Errors
/// Any [`ErrorClass`].
pub fn translate_and(query: &str, extra: &str, options: &Options) -> Result<Translation> {
    if extra.trim().is_empty() {
        return translate(query, options);
    }
    let (first, mut limit) = match options.dialect {
        Dialect::Kfl2 => {
            (kfl2::condition(query, options.now_ms).map_err(|e| e.in_query(query))?, None)
        }
        Dialect::Kfl1 => {
            let ast = parser::parse(query).map_err(|e| e.in_query(query))?;
            translate::check(ast.as_ref(), options).map_err(|e| e.in_query(query))?
        }
    };
    let ast = parser::parse(extra).map_err(|e| e.in_query(extra))?;
    let (second, extra_limit) =
        translate::check(ast.as_ref(), options).map_err(|e| e.in_query(extra))?;
    limit = match (limit, extra_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let both = translate::Cond::And(Box::new(first), Box::new(second));
    translate::build(&both, limit, options).map_err(|e| e.in_query(query))
}

/// [`fn@translate`] for raw bytes: invalid UTF-8 is a `LEX_INVALID_CHAR` error at the bad byte.
///
/// # Errors
/// As [`fn@translate`].
pub fn translate_bytes(query: &[u8], options: &Options) -> Result<Translation> {
    match std::str::from_utf8(query) {
        Ok(q) => translate(q, options),
        Err(e) => {
            let at = e.valid_up_to();
            let text = String::from_utf8_lossy(query);
            // The lossy text has the same bytes up to `at`.
            Err(Error::new(
                ErrorClass::LexInvalidChar,
                span::Span::new(at, at + 1),
                "invalid UTF-8",
            )
            .in_query(&text))
        }
    }
}
