//! `podwire query`, `translate` and `fields` from the command line: a bad filter is a positioned
//! diagnostic and a non-zero exit; `translate` prints SQL; `fields` lists the catalog; the help
//! teaches with examples. Results against DuckDB are in `tests/python/test_kfl_results.py`.
use std::process::{Command, Output};

fn podwire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podwire")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_filter_exits_non_zero_with_the_caret_diagnostic() {
    let store = tempfile::tempdir().unwrap();
    let out = podwire(&["query", "--store", store.path().to_str().unwrap(), r#"dst.nam == "x""#]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.starts_with("error[SEM_UNKNOWN_FIELD] at 1:1: unknown field `dst.nam`"), "{err}");
    assert!(err.contains("1 | dst.nam == \"x\"\n  | ^^^^^^^\n"), "{err}");
    assert!(err.contains("hint: did you mean `dst.name`?"), "{err}");
    assert!(out.stdout.is_empty());

    let out = podwire(&["translate", "tcp and (dst.port == 80"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.starts_with("error[PARSE_"), "{err}");
    assert!(err.contains('^'), "{err}");
}

#[test]
fn translate_prints_sql() {
    let out = podwire(&["translate", "--compact", r#"dst.namespace == "" and tcp"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "SELECT * FROM connections WHERE dst_namespace = '' AND protocol = 'tcp' \
         ORDER BY start_ts, conn_id\n"
    );
    let out = podwire(&["translate", "dns or tcp"]);
    let sql = text(&out.stdout);
    assert!(out.status.success());
    assert!(sql.starts_with("-- tables: connections, dns\nSELECT"), "{sql}");
    assert!(
        sql.contains("UNION ALL") && sql.trim_end().ends_with("ORDER BY ts, conn_id;"),
        "{sql}"
    );
    let out = podwire(&["translate", "--compact", "--from", "2026-11-26T09:00:00Z", "dns"]);
    assert!(text(&out.stdout).contains("ts >= TIMESTAMP '2026-11-26"), "{}", text(&out.stdout));
}

#[test]
fn fields_lists_the_catalog() {
    let out = podwire(&["fields"]);
    assert!(out.status.success());
    let list = text(&out.stdout);
    for name in
        ["src.ip", "dst.namespace", "src.pod.metadata.name", "request.questions[0].name", "rtt"]
    {
        assert!(list.lines().any(|l| l.starts_with(name)), "fields lacks {name}:\n{list}");
    }
    let out = podwire(&["fields", "--names"]);
    let names = text(&out.stdout);
    assert!(names.lines().count() > 50 && names.lines().any(|l| l == "dst.name"), "{names}");
}

#[test]
fn query_on_a_store_without_files_is_empty() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_str().unwrap();
    let out = podwire(&["query", "--store", dir, "--format", "json", "dns or tcp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let out = podwire(&["query", "--store", dir, "--format", "csv", "tcp"]);
    assert!(text(&out.stdout).starts_with("start_ts,end_ts,conn_id,"), "{}", text(&out.stdout));
    let out = podwire(&["query", "--store", "/nonexistent/podwire-store", "tcp"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no store at"), "{}", text(&out.stderr));
    let out = podwire(&["query", "--store", dir, "--from", "yesterday", "tcp"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid time `yesterday`"), "{}", text(&out.stderr));
}

#[test]
fn query_help_teaches() {
    let out = podwire(&["query", "--help"]);
    let help = text(&out.stdout);
    for needle in
        ["Examples:", "dst.namespace == \"\"", "--from -1h", "--format", "--sql", "RFC 3339"]
    {
        assert!(help.contains(needle), "query --help lacks {needle}:\n{help}");
    }
    let out = podwire(&["--help"]);
    assert!(text(&out.stdout).contains("podwire query --store"));
}
