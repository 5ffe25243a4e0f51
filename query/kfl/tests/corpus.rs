//! The KFL → SQL golden corpus: every `corpus/<area>/<name>.kfl` is one case (KFL.md §7 plus
//! podwire's own). A first line `# fail: <substring>` expects an error whose rendered diagnostic
//! contains the substring; otherwise the query must translate. The snapshot is the pretty SQL or
//! the rendered diagnostic. Every generated SQL must parse back with `sqlparser` to the same
//! statement.
use podwire_kfl::{Dialect, Options, translate};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// 2026-01-01T00:00:00Z: "now" for `now()`, `minutes(-5)`, ...
const NOW_MS: i64 = 1_767_225_600_000;

fn split(text: &str) -> (Option<&str>, &str) {
    let (fail, query) = match text.strip_prefix("# fail: ") {
        Some(rest) => {
            let (line, query) = rest.split_once('\n').unwrap_or((rest, ""));
            (Some(line.trim()), query)
        }
        None => (None, text),
    };
    (fail, query.strip_suffix('\n').unwrap_or(query))
}

#[test]
fn corpus() {
    let failures = std::sync::Mutex::new(Vec::new());
    insta::glob!("corpus/**/*.kfl", |path| {
        insta::assert_snapshot!(check_case(path, Dialect::Kfl1, &failures));
    });
    report(failures);
}

/// The KFL2 (CEL) corpus: `corpus2/<area>/<name>.cel`, the same format.
#[test]
fn corpus2() {
    let failures = std::sync::Mutex::new(Vec::new());
    insta::glob!("corpus2/**/*.cel", |path| {
        insta::assert_snapshot!(check_case(path, Dialect::Kfl2, &failures));
    });
    report(failures);
}

#[test]
fn corpus2_covers_the_issue() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus2");
    let mut n = 0;
    for area in std::fs::read_dir(&dir).unwrap() {
        n += std::fs::read_dir(area.unwrap().path()).unwrap().count();
    }
    assert!(n >= 120, "the KFL2 corpus has {n} cases, fewer than 120");
}

fn report(failures: std::sync::Mutex<Vec<String>>) {
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} corpus failures:\n{}", failures.len(), failures.join("\n"));
}

/// The snapshot of one case: the SQL or the diagnostic; a case that does not do what its first
/// line says is added to `failures`.
fn check_case(
    path: &std::path::Path,
    dialect: Dialect,
    failures: &std::sync::Mutex<Vec<String>>,
) -> String {
    let opts = Options { now_ms: NOW_MS, from_ms: None, to_ms: None, dialect };
    let text = std::fs::read_to_string(path).unwrap();
    let (fail, query) = split(&text);
    match (translate(query, &opts), fail) {
        (Ok(t), None) => {
            let sql = t.sql();
            let reparsed = Parser::parse_sql(&GenericDialect {}, &sql)
                .unwrap_or_else(|e| panic!("{}: SQL does not parse: {e}\n{sql}", path.display()));
            assert_eq!(reparsed.len(), 1);
            assert_eq!(reparsed[0].to_string(), sql, "{}: SQL round trip", path.display());
            let pretty = Parser::parse_sql(&GenericDialect {}, &t.pretty_sql()).unwrap();
            assert_eq!(pretty[0].to_string(), sql, "{}: pretty SQL round trip", path.display());
            let tables: Vec<&str> = t.tables.iter().map(|t| t.name()).collect();
            format!("KFL: {query}\ntables: {}\n\n{}", tables.join(", "), t.pretty_sql())
        }
        (Ok(t), Some(want)) => {
            failures.lock().unwrap().push(format!(
                "{}: expected `{want}`, got SQL {}",
                path.display(),
                t.sql()
            ));
            t.pretty_sql()
        }
        (Err(e), Some(want)) => {
            let rendered = e.render();
            if !rendered.contains(want) {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("{}: expected `{want}`, got\n{rendered}", path.display()));
            }
            rendered
        }
        (Err(e), None) => {
            failures.lock().unwrap().push(format!(
                "{}: unexpected error\n{}",
                path.display(),
                e.render()
            ));
            e.render()
        }
    }
}

#[test]
fn corpus_has_every_kfl_md_case() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for area in std::fs::read_dir(&dir).unwrap() {
        let area = area.unwrap();
        if area.file_name() == "podwire" {
            continue;
        }
        n += std::fs::read_dir(area.path()).unwrap().count();
    }
    assert_eq!(n, 185, "KFL.md §7 has 185 queries");
}
