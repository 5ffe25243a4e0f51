"""KFL results checked against DuckDB: `podwire query` over stores written by the binary (the demo
scene, and the shared captures gnutella, 1kxun, alexa-app and reddit), compared with hand-written
SQL run by DuckDB over the same Parquet files. Each case gives the KFL and, per table it can match,
the SQL condition that defines the expected rows; rows are compared by table, time, conn_id and the
4-tuple, and podwire's output must be in time order."""
import datetime
import glob
import json
import os
import subprocess

import duckdb
import pytest

from podwire_bin import ROOT, BIN, PCAPS, run

CAPTURES = ["gnutella.pcap", "1kxun.pcap", "alexa-app.pcapng", "reddit.pcap"]

ERROR_CONN = ("outcome IN ('reset', 'refused', 'aborted', 'unreachable') "
              "OR (protocol = 'tcp' AND outcome = 'no_answer')")
ERROR_DNS = "rcode <> 'NOERROR' OR outcome = 'no_response'"

# (KFL, SQL condition on `connections` or None, SQL condition on `dns` or None).
# None: the filter cannot match that table. The conditions are written from the column contract
# (schemas/README.md) and KFL's meaning (../shared/KFL.md), not from the translator's output.
CASES = [
    # The three pod-to-pod questions.
    ('dst.namespace == ""', "dst_namespace = ''", "dst_namespace = ''"),
    ('src.namespace == "shop" and dst.namespace == "kube-system"',
     "src_namespace = 'shop' AND dst_namespace = 'kube-system'",
     "src_namespace = 'shop' AND dst_namespace = 'kube-system'"),
    ('dst.name == "api.example.com"', "dst_name = 'api.example.com'", "dst_name = 'api.example.com'"),
    # Aliases and the cross-table stream.
    ("tcp", "protocol = 'tcp'", None),
    ("udp", "protocol = 'udp'", None),
    ("icmp", "protocol = 'icmp'", None),
    ("dns", None, "true"),
    ("dns or tcp", "protocol = 'tcp'", "true"),
    ("!tcp", "protocol <> 'tcp'", "true"),
    ("error", ERROR_CONN, ERROR_DNS),
    ("tcp and error", f"protocol = 'tcp' AND ({ERROR_CONN})", None),
    ("", "true", "true"),
    # Ports and addresses.
    ("dst.port == 443", "dst_port = 443", "dst_port = 443"),
    ('dst.port == "80"', "dst_port = 80", "dst_port = 80"),
    ("tcp and src.port > 50000", "protocol = 'tcp' AND src_port > 50000", None),
    ("dst.port >= 1024 and dst.port < 2000", "dst_port >= 1024 AND dst_port < 2000",
     "dst_port >= 1024 AND dst_port < 2000"),
    ('dst.ip == "203.0.113.10"', "dst_ip = '203.0.113.10'", "dst_ip = '203.0.113.10'"),
    ('src.ip.startsWith("10.244.")', "starts_with(src_ip, '10.244.')", "starts_with(src_ip, '10.244.')"),
    ('dst.ip.endsWith(".10")', "ends_with(dst_ip, '.10')", "ends_with(dst_ip, '.10')"),
    ('dst.ip == r"^192[.]168[.]"', "regexp_matches(dst_ip, '^192[.]168[.]')",
     "regexp_matches(dst_ip, '^192[.]168[.]')"),
    ('src.ip != "10.244.1.11" and udp', "src_ip <> '10.244.1.11' AND protocol = 'udp'", None),
    # Names.
    ('dst.name.contains("example")', "contains(dst_name, 'example')", "contains(dst_name, 'example')"),
    ('dst.name == r"^kube-"', "regexp_matches(dst_name, '^kube-')", "regexp_matches(dst_name, '^kube-')"),
    ('src.pod.name == "frontend-6d4cf56db6-qz7mn" or src.pod.metadata.name == "report-29000000-bx6kt"',
     "src_pod IN ('frontend-6d4cf56db6-qz7mn', 'report-29000000-bx6kt')",
     "src_pod IN ('frontend-6d4cf56db6-qz7mn', 'report-29000000-bx6kt')"),
    ('src.workload.kind == "Deployment" and dst.service.name != ""',
     "src_workload_kind = 'Deployment' AND dst_service <> ''",
     "src_workload_kind = 'Deployment' AND dst_service <> ''"),
    ('node.name == "node-a"', "node = 'node-a'", "node = 'node-a'"),
    ('src.namespace == "batch" or src.namespace == "shop"', "src_namespace IN ('batch', 'shop')",
     "src_namespace IN ('batch', 'shop')"),
    # Connection outcomes and measurements.
    ("isFinal", "is_final", None),
    ('tcp and outcome == "refused" and isFinal',
     "protocol = 'tcp' AND outcome = 'refused' AND is_final", None),
    ('outcome == "closed"', "outcome = 'closed'", "outcome = 'closed'"),
    ("rtt > 1000", "handshake_rtt_us > 1000", None),
    ("tcp and !(rtt > 1000)", "protocol = 'tcp' AND (handshake_rtt_us IS NULL OR handshake_rtt_us <= 1000)", None),
    ("bytes > 10000", "src_bytes + dst_bytes > 10000", None),
    ("udp and packets >= 4", "protocol = 'udp' AND src_packets + dst_packets >= 4", None),
    ("retransmits > 0", "src_retransmits + dst_retransmits > 0", None),
    ("elapsedTime > 5", "handshake_rtt_us > 5000", "latency_us > 5000"),
    ('protocol.name == "udp"', "protocol = 'udp'", None),
    # DNS.
    ('request.questions[0].name == "api.example.com"', None, "query_name = 'api.example.com'"),
    ('request.questions[0].name.endsWith(".com")', None, "ends_with(query_name, '.com')"),
    ('request.questions[0].type == "AAAA"', None, "query_type = 'AAAA'"),
    ('response.code == "No Error"', None, "rcode = 'NOERROR'"),
    ('dns and response.code != "No Error"', None, "rcode <> 'NOERROR'"),
    ('response.answers[*].ip == "203.0.113.10"', None, "list_contains(answer_ips, '203.0.113.10')"),
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    demo = tmp_path_factory.mktemp("kfl-demo")
    out = run("demo", "--no-serve", "--store", str(demo))
    assert out.returncode == 0, out.stderr
    caps = tmp_path_factory.mktemp("kfl-captures")
    pcaps = ",".join(os.path.join(PCAPS, p) for p in CAPTURES)
    out = run("-q", "standalone", "--pcap", pcaps, "--store", str(caps), "--node", "node-a")
    assert out.returncode == 0, out.stderr
    return {"demo": str(demo), "captures": str(caps)}


def us(text):
    """A podwire JSON/CSV time (RFC 3339) as epoch microseconds."""
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    delta = t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def expected(store, conn_where, dns_where, time_range=None):
    con = duckdb.connect()
    parts = []
    for table, time_col, where in (("connections", "start_ts", conn_where), ("dns", "ts", dns_where)):
        if where is None:
            continue
        files = os.path.join(store, table, "**", "*.parquet")
        if not glob.glob(files, recursive=True):
            continue
        cond = f"({where})"
        if time_range:
            lo, hi = time_range
            cond += f" AND epoch_us({time_col}) >= {lo} AND epoch_us({time_col}) < {hi}"
        parts.append(f"""SELECT '{table}' AS t, epoch_us({time_col}) AS ts, conn_id, src_ip, src_port,
                         dst_ip, dst_port FROM read_parquet('{files}', hive_partitioning = true)
                         WHERE {cond}""")
    if not parts:
        return []
    rows = con.execute(" UNION ALL ".join(parts)).fetchall()
    return sorted(rows, key=lambda r: (r[1], r[2], r[0], r[3:]))


def podwire_rows(store, kfl, *extra):
    out = run("query", "--store", store, "--format", "json", *extra, kfl)
    assert out.returncode == 0, f"{kfl}: {out.stderr}"
    rows = []
    for line in out.stdout.splitlines():
        r = json.loads(line)
        if "entry_type" in r:
            table, ts = r["entry_type"], r["ts"]
        elif "start_ts" in r:
            table, ts = "connections", r["start_ts"]
        else:
            table, ts = "dns", r["ts"]
        rows.append((table, us(ts), r["conn_id"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]))
    return rows


def compare(got, want, label):
    times = [r[1] for r in got]
    assert times == sorted(times), f"{label}: not in time order"
    assert len(got) == len(want), f"{label}: {len(got)} rows, DuckDB {len(want)}"
    assert sorted(got, key=lambda r: (r[1], r[2], r[0], r[3:])) == want, label


@pytest.mark.parametrize("store_name", ["demo", "captures"])
@pytest.mark.parametrize("kfl,conn_where,dns_where", CASES, ids=[c[0] or "<blank>" for c in CASES])
def test_kfl_matches_duckdb(stores, store_name, kfl, conn_where, dns_where):
    store = stores[store_name]
    want = expected(store, conn_where, dns_where)
    got = podwire_rows(store, kfl)
    compare(got, want, f"{store_name}: {kfl}")


def test_cases_are_many_and_meaningful(stores):
    assert len(CASES) >= 33
    # Most cases match something in at least one store, so they test more than "empty == empty".
    nonempty = sum(1 for kfl, c, d in CASES
                   if any(expected(s, c, d) for s in stores.values()))
    assert nonempty >= 30, nonempty


@pytest.mark.parametrize("store_name", ["demo", "captures"])
def test_limit_takes_the_first_rows_in_time_order(stores, store_name):
    store = stores[store_name]
    want = expected(store, "protocol = 'tcp'", None)
    got = podwire_rows(store, "tcp and limit(3)")
    assert [r[1] for r in got] == [r[1] for r in want[:3]]
    got = podwire_rows(store, "dns or tcp", "--limit", "5")
    want = expected(store, "protocol = 'tcp'", "true")
    assert [r[1] for r in got] == [r[1] for r in want[:5]]


@pytest.mark.parametrize("store_name", ["demo", "captures"])
def test_time_range(stores, store_name):
    store = stores[store_name]
    every = expected(store, "true", "true")
    assert len(every) > 4
    lo, hi = every[len(every) // 4][1], every[3 * len(every) // 4][1]
    fmt = lambda t: datetime.datetime.fromtimestamp(t / 1e6, datetime.timezone.utc).isoformat()
    got = podwire_rows(store, "", "--from", fmt(lo), "--to", fmt(hi))
    want = expected(store, "true", "true", (lo // 1000 * 1000, hi // 1000 * 1000))
    compare(got, want, f"{store_name}: [{fmt(lo)}, {fmt(hi)})")
    assert 0 < len(got) < len(every)


def test_time_range_spanning_days_skips_folders(stores):
    """The captures are from different years: a one-hour window reads one hour folder and
    returns exactly that hour's rows."""
    store = stores["captures"]
    every = expected(store, "true", None)
    first = every[0][1]
    lo = first // 3_600_000_000 * 3_600_000_000
    hi = lo + 3_600_000_000
    fmt = lambda t: datetime.datetime.fromtimestamp(t / 1e6, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    got = podwire_rows(store, "tcp or udp or icmp", "--from", fmt(lo), "--to", fmt(hi))
    want = expected(store, "true", None, (lo, hi))
    compare(got, want, "one hour")
    assert 0 < len(got) < len(every)


def test_csv_has_header_and_the_same_rows(stores):
    store = stores["demo"]
    out = run("query", "--store", store, "--format", "csv", 'dst.namespace == ""')
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split(",")[:4] == ["entry_type", "ts", "conn_id", "protocol"], lines[0]
    assert len(lines) - 1 == len(expected(store, "dst_namespace = ''", "dst_namespace = ''"))
    out = run("query", "--store", store, "--format", "csv", "dns")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("ts,response_ts,"), out.stdout[:200]
    # An empty result still has its header.
    out = run("query", "--store", store, "--format", "csv", "tcp and dns")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("start_ts,end_ts,conn_id,") and len(out.stdout.splitlines()) == 1


def test_parquet_output_reads_back(stores, tmp_path):
    store = stores["demo"]
    path = tmp_path / "out.parquet"
    out = run("query", "--store", store, "--format", "parquet", "--output", str(path), "tcp")
    assert out.returncode == 0, out.stderr
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
    assert n == len(expected(store, "protocol = 'tcp'", None))


def test_sql_is_select_only(stores):
    store = stores["demo"]
    out = run("query", "--store", store, "--format", "csv", "--sql",
              "SELECT protocol, count(*) AS n FROM connections GROUP BY protocol ORDER BY protocol")
    assert out.returncode == 0, out.stderr
    con = duckdb.connect()
    want = con.execute(f"""SELECT protocol, count(*) FROM read_parquet('{store}/connections/date=*/hour=*/*.parquet')
                           GROUP BY protocol ORDER BY protocol""").fetchall()
    assert out.stdout.splitlines() == ["protocol,n"] + [f"{p},{n}" for p, n in want]
    for bad in ["DROP TABLE connections", "COPY connections TO '/tmp/x.csv'",
                "SELECT * FROM read_csv('/etc/passwd')", "CREATE TABLE t AS SELECT 1",
                "SELECT 1; SELECT 2"]:
        out = run("query", "--store", store, "--sql", bad)
        assert out.returncode != 0, bad
        assert "rejected SQL" in out.stderr, out.stderr


# KFL2 (CEL): (KFL1, the same filter in KFL2). Each pair must return identical rows on both
# stores. The three seed questions first.
PAIRS = [
    ('dst.namespace == ""', 'dst.namespace == ""'),
    ('src.namespace == "shop" and dst.namespace == "kube-system"',
     'src.namespace == "shop" && dst.namespace == "kube-system"'),
    ('dst.name == "api.example.com"', 'dst.name == "api.example.com"'),
    ("tcp", "tcp"),
    ("udp", "udp"),
    ("icmp", "icmp"),
    ("dns", "dns"),
    ("dns or tcp", "dns || tcp"),
    ("!tcp", "!tcp"),
    ("dst.port == 443", "dst.port == 443"),
    ("dst.port == 53 or dst.port == 5353", "dst.port in [53, 5353]"),
    ("tcp and src.port > 50000", "tcp && src.port > 50000"),
    ("dst.port >= 1024 and dst.port < 2000", "dst.port >= 1024 && dst.port < 2000"),
    ('dst.ip == "203.0.113.10"', 'dst.ip == "203.0.113.10"'),
    ('src.ip.startsWith("10.244.")', 'src.ip.startsWith("10.244.")'),
    ('dst.ip.endsWith(".10")', 'dst.ip.endsWith(".10")'),
    ('dst.ip == r"^192[.]168[.]"', 'dst.ip.matches("^192[.]168[.]")'),
    ('src.ip != "10.244.1.11" and udp', 'src.ip != "10.244.1.11" && udp'),
    ('dst.name.contains("example")', 'dst.name.contains("example")'),
    ('dst.name == r"^kube-"', 'dst.name.matches("^kube-")'),
    ('src.namespace == "batch" or src.namespace == "shop"', 'src.namespace in ["batch", "shop"]'),
    ('dst.service.name != ""', 'dst.service.name != ""'),
    ('node.name == "node-a"', 'node_name == "node-a"'),
    ('protocol.name == "udp"', 'protocol == "UDP"'),
    ('protocol.name == "dns"', 'protocol == "DNS"'),
    ("elapsedTime > 5", "elapsed_time > 5000"),
    ("tcp and src.bytes > 1000", "tcp && conn_local_bytes > 1000"),
    ("tcp and dst.packets == 0", "tcp && conn_remote_pkts == 0"),
    ("udp and dst.bytes > 0", "udp && flow_remote_bytes > 0"),
    ('request.questions[0].name == "api.example.com"', '"api.example.com" in dns_questions'),
    ('request.questions[0].name.endsWith(".com")', 'dns_questions.exists(q, q.endsWith(".com"))'),
    ('request.questions[0].type == "AAAA"', '"AAAA" in dns_question_types'),
    ('response.code == "NXDOMAIN"', "dns && status_code == 3"),
    ('dns and response.code != "No Error" and response.code != ""', "dns && status_code != 0"),
    ('response.answers[*].ip == "203.0.113.10"', '"A 203.0.113.10" in dns_answers'),
    ('tcp and (!isFinal or outcome == "open")', 'tcp && conn_state == "open"'),
    ('tcp and isFinal and outcome != "open"', 'tcp && conn_state == "closed"'),
    ('src.pod == "frontend-6d4cf56db6-qz7mn" or (src.pod == "" and src.service == "frontend-6d4cf56db6-qz7mn")',
     'src.pod.name == "frontend-6d4cf56db6-qz7mn"'),
    ('src.namespace == "kube-system" or dst.namespace == "kube-system"', '"kube-system" in namespaces'),
    ('(src.namespace != "" and src.namespace.startsWith("ku")) or (dst.namespace != "" and dst.namespace.startsWith("ku"))',
     'namespaces.exists(n, n.startsWith("ku"))'),
    ('dst.dns == "api.example.com"', 'dst.dns == "api.example.com"'),
    ('dst.dns != ""', 'dst.dns != ""'),
    ('!(dst.dns == "api.example.com")', '!(dst.dns == "api.example.com")'),
    ('timestamp >= datetime("1/1/2020, 12:00:00 AM")', 'timestamp >= timestamp("2020-01-01T00:00:00Z")'),
    ('dst.name.startsWith("web-") == false and tcp', 'dst.name.startsWith("web-") == false && tcp'),
]

# KFL2 filters checked against hand-written SQL, where CEL's semantics differ from KFL1's: a
# variable an entry lacks takes its default ("", 0, false, []), so a test of it can be TRUE on
# the other table; the aggregates, the L4 state and the DNS status code.
KFL2_CASES = [
    ('conn_state == ""', None, "true"),
    ('dst.dns != "api.example.com"', "dst_dns_name <> 'api.example.com'", "true"),
    ("elapsed_time == 0", "handshake_rtt_us IS NULL OR handshake_rtt_us = 0", "latency_us IS NULL OR latency_us = 0"),
    ("!(conn_local_bytes > 0)", "src_bytes <= 0", "true"),
    ("status_code == 3", None, "rcode = 'NXDOMAIN'"),
    ("status_code == 0", "true", "rcode IN ('NOERROR', '')"),
    ('"kube-system" in namespaces', "src_namespace = 'kube-system' OR dst_namespace = 'kube-system'",
     "src_namespace = 'kube-system' OR dst_namespace = 'kube-system'"),
    ('namespaces.all(n, n == "shop")',
     "(src_namespace = '' OR src_namespace = 'shop') AND (dst_namespace = '' OR dst_namespace = 'shop')",
     "(src_namespace = '' OR src_namespace = 'shop') AND (dst_namespace = '' OR dst_namespace = 'shop')"),
    ('dst.pod.name == "kube-dns"', "dst_pod = 'kube-dns' OR (dst_pod = '' AND dst_service = 'kube-dns')",
     "dst_pod = 'kube-dns' OR (dst_pod = '' AND dst_service = 'kube-dns')"),
    ('dst.service.namespace == "kube-system"', "dst_service <> '' AND dst_namespace = 'kube-system'",
     "dst_service <> '' AND dst_namespace = 'kube-system'"),
    ('protocol == "UDP"', "protocol = 'udp'", None),
    ("has(dst.dns)", "dst_dns_name <> ''", None),
    ("size(dst.name) > 20", "length(dst_name) > 20", "length(dst_name) > 20"),
    ('dns_questions.all(q, q.endsWith(".com"))', "true", "ends_with(query_name, '.com')"),
    ('dns ? status_code != 0 : conn_state == "closed"', "is_final AND outcome <> 'open'",
     "rcode NOT IN ('NOERROR', '')"),
    ('timestamp > timestamp("2020-01-01T00:00:00Z") && dst.port in [80, 443]',
     "start_ts > TIMESTAMP '2020-01-01 00:00:00' AND dst_port IN (80, 443)",
     "ts > TIMESTAMP '2020-01-01 00:00:00' AND dst_port IN (80, 443)"),
    ('src.ip.matches("^10[.]") && !dns', "regexp_matches(src_ip, '^10[.]')", None),
    ('conn_id == 0 || dst.port == 53 && "A" in dns_question_types', "conn_id = 0",
     "conn_id = 0 OR (dst_port = 53 AND query_type = 'A')"),
]


@pytest.mark.parametrize("store_name", ["demo", "captures"])
@pytest.mark.parametrize("kfl1,kfl2", PAIRS, ids=[p[1] for p in PAIRS])
def test_kfl2_spelling_returns_the_same_rows(stores, store_name, kfl1, kfl2):
    store = stores[store_name]
    want = podwire_rows(store, kfl1)
    got = podwire_rows(store, kfl2, "--kfl2")
    assert got == want, f"{store_name}: KFL1 {kfl1!r} gave {len(want)} rows, KFL2 {kfl2!r} {len(got)}"


def test_kfl2_pairs_are_many_and_meaningful(stores):
    assert len(PAIRS) >= 40
    assert [p[1] for p in PAIRS[:3]] == ['dst.namespace == ""', 'src.namespace == "shop" && dst.namespace == "kube-system"',
                                          'dst.name == "api.example.com"'], "the seed questions first"
    nonempty = sum(1 for kfl1, _ in PAIRS if any(podwire_rows(s, kfl1) for s in stores.values()))
    assert nonempty >= 35, nonempty


@pytest.mark.parametrize("store_name", ["demo", "captures"])
@pytest.mark.parametrize("kfl,conn_where,dns_where", KFL2_CASES, ids=[c[0] for c in KFL2_CASES])
def test_kfl2_matches_duckdb(stores, store_name, kfl, conn_where, dns_where):
    store = stores[store_name]
    want = expected(store, conn_where, dns_where)
    got = podwire_rows(store, kfl, "--kfl2")
    compare(got, want, f"{store_name}: {kfl}")


def test_kfl2_cases_match_something(stores):
    nonempty = sum(1 for kfl, c, d in KFL2_CASES if any(expected(s, c, d) for s in stores.values()))
    assert nonempty >= len(KFL2_CASES) - 1, nonempty


def test_kfl2_errors_are_positioned(stores):
    out = run("query", "--store", stores["demo"], "--kfl2", 'tcp && dst.port == "80"')
    assert out.returncode == 1
    assert "SEM_TYPE" in out.stderr and "1:8" in out.stderr and "dst.port == 80" in out.stderr, out.stderr
    out = run("query", "--store", stores["demo"], "--kfl2", "http && status_code >= 500")
    assert out.returncode == 1 and "UNSUPPORTED" in out.stderr and "does not record" in out.stderr, out.stderr


def corpus_cases(folder, ext):
    """The corpus cases expected to translate: (path, query)."""
    root = os.path.join(ROOT, "query", "kfl", "tests", folder)
    out = []
    for path in sorted(glob.glob(os.path.join(root, "**", f"*.{ext}"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if not text.startswith("# fail: "):
            out.append((os.path.relpath(path, root), text[:-1] if text.endswith("\n") else text))
    return out


@pytest.mark.parametrize("store_name", ["demo", "captures"])
def test_every_corpus_case_runs_on_real_rows(stores, store_name):
    """Each KFL1 and KFL2 corpus case that translates also runs over a store with rows (the
    Rust test plans them on an empty one): no runtime error such as a failed cast, whatever the
    rows hold."""
    store = stores[store_name]
    cases = [(c, q, []) for c, q in corpus_cases("corpus", "kfl")] + \
            [(c, q, ["--kfl2"]) for c, q in corpus_cases("corpus2", "cel")]
    assert len(cases) > 250, len(cases)
    failures = []
    for case, query, extra in cases:
        out = run("query", "--store", store, "--format", "csv", "--limit", "50", *extra, query)
        if out.returncode != 0:
            failures.append(f"{case}: {query}\n  {out.stderr.strip()[:300]}")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)
