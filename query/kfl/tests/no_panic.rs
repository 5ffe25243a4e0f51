//! No input makes the lexer, parser or translator panic, hang or overflow the stack: random token
//! soups and byte-level mutations of the corpus (`fuzz/` has the cargo-fuzz targets that do the
//! same with coverage guidance). Whatever translates must print SQL that `sqlparser` parses back
//! to the same statement, and every error must render.
use podwire_kfl::{Dialect, Options, translate_bytes};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// xorshift64*: small, deterministic, good enough to shake a parser.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "dns",
    "error",
    "and",
    "or",
    "!",
    "-",
    "(",
    ")",
    "[",
    "]",
    ".",
    "*",
    ",",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "true",
    "false",
    "nil",
    "0",
    "80",
    "1e3",
    ".5",
    "-1",
    "\"x\"",
    "\"\"",
    "r\"^a\"",
    "r\"(\"",
    "'w'",
    "`r`",
    "src.ip",
    "dst.port",
    "dst.namespace",
    "src.name",
    "timestamp",
    "elapsedTime",
    "rtt",
    "outcome",
    "request.questions[0].name",
    "response.answers[*].ip",
    "response.code",
    "tls",
    "isFinal",
    "startsWith(",
    "endsWith(",
    "contains(",
    ".startsWith(\"a\")",
    "datetime(\"1/2/2026, 3:04:05 PM\")",
    "now()",
    "now",
    "minutes(-5)",
    "years(1e300)",
    "limit(3)",
    "limit(",
    "json()",
    "redact(",
    "[\"k\"]",
    "[*]",
    "..",
    "//c\n",
    "/*",
    "*/",
    "\\",
    "\"\\u00e9\"",
    "\"\\q\"",
    "é",
    "🦈",
    "\0",
    " ",
    "\n",
    "&&",
    "|",
    "#",
    "~",
    "0x1",
    "080",
];

fn check(input: &[u8], opts: &Options) {
    match translate_bytes(input, opts) {
        Ok(t) => {
            let sql = t.sql();
            let back = Parser::parse_sql(&GenericDialect {}, &sql)
                .unwrap_or_else(|e| panic!("{input:?}: {e}\n{sql}"));
            assert_eq!(back.len(), 1, "{input:?}");
            assert_eq!(back[0].to_string(), sql, "{input:?}");
        }
        Err(e) => {
            let rendered = e.render();
            assert!(rendered.contains(e.class.code()), "{input:?}");
            assert!(e.is_user_error(), "{input:?}: internal error {rendered}");
        }
    }
}

#[test]
fn random_token_soups_never_panic() {
    let opts = Options {
        now_ms: 1_767_225_600_000,
        from_ms: None,
        to_ms: Some(1_767_225_600_000),
        ..Options::default()
    };
    token_soups(0x9e37_79b9_7f4a_7c15, 20_000, PIECES, &opts);
}

/// `rounds` queries of 1 to 12 random `pieces`, mostly space-separated, each checked.
fn token_soups(seed: u64, rounds: usize, pieces: &[&str], opts: &Options) {
    let mut rng = Rng(seed);
    for _ in 0..rounds {
        let n = 1 + rng.below(12);
        let mut q = String::new();
        for _ in 0..n {
            q.push_str(pieces[rng.below(pieces.len())]);
            if rng.below(3) > 0 {
                q.push(' ');
            }
        }
        check(q.as_bytes(), opts);
    }
}

#[test]
fn mutated_corpus_never_panics() {
    let opts = Options { now_ms: 0, from_ms: None, to_ms: None, ..Options::default() };
    mutate_corpus("tests/corpus", 42, 20_000, PIECES, &opts);
}

/// `rounds` random byte-level mutations (removals, insertions, replacements, `pieces` spliced in)
/// of the queries of a corpus folder, each checked.
fn mutate_corpus(folder: &str, seed: u64, rounds: usize, pieces: &[&str], opts: &Options) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut seeds = Vec::new();
    for area in std::fs::read_dir(dir).unwrap() {
        for file in std::fs::read_dir(area.unwrap().path()).unwrap() {
            seeds.push(std::fs::read(file.unwrap().path()).unwrap());
        }
    }
    let mut rng = Rng(seed);
    for _ in 0..rounds {
        let mut q = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(q.len() + 1);
            match rng.below(4) {
                0 if at < q.len() => {
                    q.remove(at);
                }
                1 => q.insert(at, rng.next() as u8),
                2 if at < q.len() => q[at] = rng.next() as u8,
                _ => {
                    let piece = pieces[rng.below(pieces.len())].as_bytes();
                    q.splice(at..at, piece.iter().copied());
                }
            }
        }
        check(&q, opts);
    }
}

/// Found by the `kfl_translate` fuzz target: `sqlparser` prints `'…'` without doubling a quote
/// that follows a backslash or another quote, so `dst.name == "\\'"` printed `dst_name = '\''`
/// (not SQL) and `"a''b"` printed `'a''b'` (SQL for `a'b`). Such values print as `E'…'`.
#[test]
fn quotes_after_backslashes_and_quotes_print_as_the_same_value() {
    let opts = Options { now_ms: 0, from_ms: None, to_ms: None, ..Options::default() };
    for (query, literal) in [
        (r#"dst.name=="\\'""#, r"E'\\\''"),
        (r#"dst.name == "a''b""#, r"E'a\'\'b'"),
        (r#"dst.name == `a\'`"#, r"E'a\\\''"),
        (r#"src.name.startsWith("x\\'y")"#, r"E'x\\\'y'"),
        (r#"dst.name == r"^a\\'$""#, r"E'^a\\\'$'"),
        (r#"response.answers[*].ip == "''""#, r"E'\'\''"),
        (r#"dst.name == "it's""#, "'it''s'"),
        (r#"dst.name == "a\\b""#, r"'a\b'"),
    ] {
        check(query.as_bytes(), &opts);
        let sql = translate_bytes(query.as_bytes(), &opts).unwrap().sql();
        assert!(sql.contains(literal), "{query}: expected {literal} in\n{sql}");
    }
}

#[test]
fn pathological_inputs_are_errors() {
    let opts = Options { now_ms: 0, from_ms: None, to_ms: None, ..Options::default() };
    for q in [
        "(".repeat(50_000),
        "!".repeat(50_000) + "tcp",
        "-".repeat(50_000) + "1",
        vec!["tcp"; 50_000].join(" and "),
        vec!["1"; 50_000].join(" < "),
        "a".to_string() + &".b".repeat(50_000),
        "a".to_string() + &"[0]".repeat(50_000),
        "a.json()".to_string() + &".b.c(1)".repeat(50_000),
        "f(".repeat(50_000),
        "\"".to_string() + &"\\".repeat(50_001),
    ] {
        let head: String = q.chars().take(24).collect();
        match translate_bytes(q.as_bytes(), &opts) {
            Ok(t) => panic!("{head}… ({} bytes) translated: {}", q.len(), &t.sql()[..80]),
            Err(e) => {
                let rendered = e.render();
                assert!(e.is_user_error(), "{head}…: internal error {rendered}");
                assert!(rendered.contains(e.class.code()), "{head}…");
            }
        }
    }
}

/// The largest queries the parser accepts translate and print on a 2 MiB stack (a tokio worker's
/// default; debug builds have the biggest frames).
#[test]
fn largest_accepted_queries_fit_a_small_stack() {
    use podwire_kfl::parser::{MAX_CHAIN, MAX_DEPTH, MAX_NESTING};
    let alternating = |switches: usize, last: &str| {
        let ops = (0..=switches).map(|i| if i % 2 == 0 { "tcp and" } else { "udp or" });
        ops.collect::<Vec<_>>().join(" ") + " " + last
    };
    // Groups of alternating chains inside one another, as deep as allowed: each level costs 20
    // (19 switches + 1) plus 1 for the parentheses.
    let mut nested = "dns".to_string();
    for _ in 0..(MAX_DEPTH / 21) {
        nested = alternating(19, &format!("({nested})"));
    }
    let queries = vec![
        vec!["tcp"; MAX_CHAIN].join(" and "),
        (0..MAX_CHAIN).map(|i| format!("dst.port == {i}")).collect::<Vec<_>>().join(" or "),
        alternating(MAX_NESTING, "dns"),
        format!("{}tcp{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
        format!("{}tcp", "!".repeat(MAX_NESTING)),
        nested,
    ];
    let opts = Options { now_ms: 0, from_ms: None, to_ms: None, ..Options::default() };
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for q in queries {
                let t = translate_bytes(q.as_bytes(), &opts).unwrap_or_else(|e| panic!("{e}"));
                assert!(!t.pretty_sql().is_empty());
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// KFL2 pieces: CEL's operators, literals, macros and podwire's variables.
#[rustfmt::skip]
const PIECES2: &[&str] = &[
    "tcp", "dns", "conn", "http", "&&", "||", "!", "-", "+", "*", "/", "%", "(", ")", "[", "]",
    "{", "}", ":", "?", ".", ",", "==", "!=", "<", "<=", ">", ">=", "in", "true", "false", "null",
    "0", "80", "80u", "1.5", "1e3", "0x1F", "\"x\"", "''", "r\"\\d\"", "b\"x\"", "\"\"\"a\"\"\"",
    "\"\\q\"", "\"\\u00e9\"", "dst.port", "src.ip", "dst.pod.name", "namespaces", "dns_questions",
    "dns_answers", "conn_state", "status_code", "timestamp", "elapsed_time", "local_labels",
    ".contains(\"a\")", ".startsWith(", ".matches(\"(\")", ".size()", "size(", "has(",
    "has(dst.dns)", ".exists(x, x == \"a\")", ".all(x,", ".exists_one(", ".map(x, x)",
    "timestamp(\"2026-01-01T00:00:00Z\")", "duration(\"5m\")", "duration(\"x\")", "now()", "int(",
    "string(", "map_get(", "x", "é", "🦈", "\0", " ", "\n", "#", "~", "`",
];

#[test]
fn kfl2_token_soups_never_panic() {
    let opts = Options { now_ms: 1_767_225_600_000, dialect: Dialect::Kfl2, ..Options::default() };
    token_soups(0x2545_f491_4f6c_dd1d, 5_000, PIECES2, &opts);
}

#[test]
fn kfl2_mutated_corpus_never_panics() {
    let opts = Options { dialect: Dialect::Kfl2, ..Options::default() };
    mutate_corpus("tests/corpus2", 7, 5_000, PIECES2, &opts);
}

/// Deep and long KFL2 inputs up to the length limit are errors or SQL on a 2 MiB stack (a tokio
/// worker's default), each in bounded time: the parser's recursion limit, the checker's depth
/// limit and the length limit hold.
#[test]
fn kfl2_pathological_inputs_fit_a_small_stack() {
    use podwire_kfl::kfl2::MAX_LEN;
    let n = MAX_LEN / 4;
    let queries = vec![
        "(".repeat(MAX_LEN),
        format!("{}true{}", "(".repeat(n), ")".repeat(n)),
        "!".repeat(MAX_LEN - 4) + "tcp",
        "-".repeat(MAX_LEN - 1) + "1",
        vec!["tcp"; n].join("&&"),
        vec!["1"; n].join("+") + " == 2",
        vec!["dst.port == 1"; MAX_LEN / 20].join(" || "),
        "a".to_string() + &".b".repeat(n),
        "[".repeat(n) + &"]".repeat(n),
        "f(".repeat(n),
        "x.exists(y, ".repeat(MAX_LEN / 16) + "true",
        "\"".to_string() + &"\\".repeat(MAX_LEN - 1),
        "(".repeat(MAX_LEN + 1),
    ];
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let opts = Options { dialect: Dialect::Kfl2, ..Options::default() };
            for q in queries {
                let started = std::time::Instant::now();
                match translate_bytes(q.as_bytes(), &opts) {
                    Ok(t) => assert!(!t.sql().is_empty()),
                    Err(e) => assert!(e.is_user_error(), "{}", e.render()),
                }
                let took = started.elapsed();
                assert!(took < std::time::Duration::from_secs(20), "{took:?} on {}…", &q[..20]);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
