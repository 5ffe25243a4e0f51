//! Any bytes as a KFL query through lexer, parser and translator, in both dialects (KFL1, and
//! KFL2 through the CEL parser): either SQL that `sqlparser` parses back to the same statement
//! with the same literal values, or a user error whose diagnostic renders. Never a panic, a hang,
//! a stack overflow or an `INTERNAL` error. The checks of `tests/no_panic.rs`, plus the literals.
#![no_main]
use libfuzzer_sys::fuzz_target;
use podwire_kfl::{Dialect, Options, translate_bytes};
use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

fuzz_target!(|data: &[u8]| {
    for dialect in [Dialect::Kfl1, Dialect::Kfl2] {
        check(data, &Options { dialect, ..Options::default() });
    }
});

fn check(data: &[u8], opts: &Options) {
    match translate_bytes(data, opts) {
        Ok(t) => {
            let sql = t.sql();
            let back = Parser::parse_sql(&GenericDialect {}, &sql)
                .unwrap_or_else(|e| panic!("SQL does not parse back: {e}\n{sql}"));
            assert_eq!(back.len(), 1, "{sql}");
            assert_eq!(back[0].to_string(), sql, "SQL round trip");
            // Same text is not enough: `'a''b'` prints the same whether the value was `a''b` or
            // `a'b`. The trees differ in grouping and spans, their literals must not.
            assert_eq!(literals(&back[0]), literals(&t.statement), "literals changed in\n{sql}");
            let pretty = t.pretty_sql();
            let back = Parser::parse_sql(&GenericDialect {}, &pretty)
                .unwrap_or_else(|e| panic!("pretty SQL does not parse back: {e}\n{pretty}"));
            assert_eq!(back[0].to_string(), sql, "pretty SQL round trip");
        }
        Err(e) => {
            let rendered = e.render();
            assert!(rendered.contains(e.class.code()), "{rendered}");
            assert!(e.is_user_error(), "internal error:\n{rendered}");
        }
    }
}

/// The string and number literals of a statement in order, as their `Debug` text.
fn literals(statement: &Statement) -> Vec<String> {
    let text = format!("{statement:?}");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("(\"") {
        let kind = &rest[..i];
        rest = &rest[i + 2..];
        if !["SingleQuotedString", "EscapedStringLiteral", "Number"]
            .iter()
            .any(|k| kind.ends_with(k))
        {
            continue;
        }
        let mut escaped = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map_or(rest.len(), |(j, _)| j);
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}
