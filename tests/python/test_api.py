"""`podwire serve` over a real socket: the binary is started on a free loopback port and spoken to
with Python's own HTTP client. Results are checked against DuckDB over the same Parquet files;
errors, the token, the read-only guarantee, metrics and the OpenAPI description are checked as a
client sees them; a result much larger than the server's memory limit is streamed while the
server's resident memory is watched."""
import glob
import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse

import duckdb
import pyarrow as pa
import pyarrow.ipc
import pytest

from podwire_bin import ROOT, BIN, generate_store, run



class Server:
    """A `podwire serve` process on 127.0.0.1 with a free port."""

    def __init__(self, store, *args):
        assert os.path.exists(BIN), f"build podwire first (cargo build): {BIN}"
        self.proc = subprocess.Popen(
            [BIN, "serve", "--store", store, "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on http://"), \
            f"no address from podwire serve: {line!r} {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        host_port = line.strip().removeprefix("listening on http://")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        assert self.host == "127.0.0.1"

    def conn(self, timeout=120):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        """The status, the headers and the whole body."""
        c = self.conn()
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, dict(r.getheaders()), payload

    def json(self, method, path, body=None, headers=None):
        status, hdrs, payload = self.request(method, path, body, headers)
        return status, json.loads(payload)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError("podwire serve did not stop within 30 s of SIGTERM")
        return self.proc.returncode


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("api-store")
    out = run("demo", "--no-serve", "--store", str(path))
    assert out.returncode == 0, out.stderr
    return str(path)


@pytest.fixture(scope="module")
def server(store):
    s = Server(store)
    yield s
    assert s.stop() == 0, s.proc.stderr.read()


def duck(store, sql):
    con = duckdb.connect()
    con.execute(f"CREATE VIEW connections AS SELECT * FROM read_parquet('{store}/connections/date=*/hour=*/*.parquet', hive_partitioning=true)")
    if glob.glob(f"{store}/dns/date=*/hour=*/*.parquet", recursive=True):
        con.execute(f"CREATE VIEW dns AS SELECT * FROM read_parquet('{store}/dns/date=*/hour=*/*.parquet', hive_partitioning=true)")
    return con.execute(sql).fetchall()


def conn_key(row):
    return (row["conn_id"], row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"], row["src_bytes"])


def test_healthz(server, store):
    status, body = server.json("GET", "/healthz")
    assert status == 200 and body == {"status": "ok", "store": store}


def test_query_matches_duckdb_in_every_format(server, store):
    kfl = 'tcp and dst.namespace == ""'
    want = sorted(duck(store, """SELECT conn_id, src_ip, src_port, dst_ip, dst_port, src_bytes
                                 FROM connections WHERE protocol = 'tcp' AND dst_namespace = ''"""))
    assert want, "the demo scene has TCP connections leaving the cluster"

    status, hdrs, payload = server.request("POST", "/api/v1/query", {"query": kfl})
    assert status == 200, payload
    assert hdrs["content-type"] == "application/json"
    rows = json.loads(payload)
    assert sorted(conn_key(r) for r in rows) == want
    starts = [r["start_ts"] for r in rows]
    assert starts == sorted(starts), "rows in time order"

    status, hdrs, payload = server.request("POST", "/api/v1/query", {"query": kfl, "format": "ndjson"})
    assert status == 200 and hdrs["content-type"] == "application/x-ndjson"
    assert sorted(conn_key(json.loads(line)) for line in payload.splitlines()) == want

    status, hdrs, payload = server.request("POST", "/api/v1/query", {"query": kfl},
                                           {"Accept": "text/csv"})
    assert status == 200 and hdrs["content-type"].startswith("text/csv")
    lines = payload.decode().splitlines()
    header = lines[0].split(",")
    assert {"start_ts", "conn_id", "dst_namespace"} <= set(header)
    assert len(lines) == len(want) + 1

    status, hdrs, payload = server.request("POST", "/api/v1/query", {"query": kfl, "format": "arrow"})
    assert status == 200 and hdrs["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(payload).read_all()
    assert table.num_rows == len(want)
    assert table.schema.field("start_ts").type == pa.timestamp("us", tz="UTC")
    got = sorted(zip(*(table.column(c).to_pylist() for c in
                       ["conn_id", "src_ip", "src_port", "dst_ip", "dst_port", "src_bytes"])))
    assert got == want


def test_query_time_range_and_limit(server, store):
    (first, last), = duck(store, "SELECT min(start_ts), max(start_ts) FROM connections")
    mid = first + (last - first) / 2
    to = mid.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (want,), = duck(store, f"SELECT count(*) FROM connections WHERE protocol = 'tcp' AND start_ts < '{mid.isoformat()}'")
    status, rows = server.json("POST", "/api/v1/query", {"query": "tcp", "to": to})
    assert status == 200 and len(rows) == want
    status, rows = server.json("POST", "/api/v1/query", {"query": "tcp", "limit": 2})
    assert status == 200 and len(rows) == 2
    status, body = server.json("POST", "/api/v1/query", {"query": "tcp", "from": "last tuesday"})
    assert status == 400 and body["error"]["class"] == "BAD_TIME"


def test_cross_table_stream(server, store):
    (conns,), = duck(store, "SELECT count(*) FROM connections WHERE protocol = 'tcp'")
    (dns,), = duck(store, "SELECT count(*) FROM dns")
    status, rows = server.json("POST", "/api/v1/query", {"query": "dns or tcp"})
    assert status == 200 and len(rows) == conns + dns > conns


def test_bad_filter_is_a_positioned_400(server):
    status, body = server.json("POST", "/api/v1/query", {"query": 'tcp and dst.nam == "x"'})
    assert status == 400
    err = body["error"]
    assert err["class"] == "SEM_UNKNOWN_FIELD"
    assert (err["line"], err["col"], err["start"], err["end"]) == (1, 9, 8, 15)
    assert "dst.name" in err["hint"]
    assert "^^^^^^^" in err["diagnostic"]

    status, body = server.json("POST", "/api/v1/query", {"query": "tcp and (udp"})
    assert status == 400 and body["error"]["class"].startswith("PARSE_"), body

    status, body = server.json("POST", "/api/v1/query", {"kfl": "tcp"})
    assert status == 400 and body["error"]["class"] == "BAD_REQUEST"
    assert "openapi" in body["error"]["message"]
    status, body = server.json("POST", "/api/v1/query", b"{not json")
    assert status == 400 and body["error"]["class"] == "BAD_REQUEST"
    status, body = server.json("POST", "/api/v1/query", {"query": "tcp", "format": "xml"})
    assert status == 400 and "csv" in body["error"]["message"]


def test_sql_reads_and_cannot_write(server, store):
    status, rows = server.json("POST", "/api/v1/sql", {
        "sql": "SELECT protocol, count(*) AS n FROM connections GROUP BY protocol ORDER BY protocol"})
    assert status == 200
    want = duck(store, "SELECT protocol, count(*) FROM connections GROUP BY protocol ORDER BY protocol")
    assert [(r["protocol"], r["n"]) for r in rows] == [tuple(w) for w in want]

    before = sorted(glob.glob(f"{store}/**", recursive=True))
    victim = os.path.join(os.path.dirname(store), "written-by-api")
    attempts = [
        "DROP TABLE connections",
        "CREATE TABLE x AS SELECT * FROM connections",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
        "INSERT INTO connections SELECT * FROM connections",
        f"COPY (SELECT * FROM connections) TO '{victim}' STORED AS PARQUET",
        "SELECT * FROM connections; DROP TABLE connections",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE VIEW v AS SELECT 1",
    ]
    for sql in attempts:
        status, body = server.json("POST", "/api/v1/sql", {"sql": sql})
        assert status == 400, (sql, body)
        assert body["error"]["class"] in ("SQL_REJECTED", "SQL_INVALID"), (sql, body)
    assert not os.path.exists(victim)
    assert sorted(glob.glob(f"{store}/**", recursive=True)) == before
    status, rows = server.json("POST", "/api/v1/sql", {"sql": "SELECT count(*) AS n FROM connections"})
    assert status == 200 and rows[0]["n"] == duck(store, "SELECT count(*) FROM connections")[0][0]


def test_translate_and_fields_agree_with_the_cli(server):
    kfl = 'dst.namespace == "" and tcp'
    status, body = server.json("GET", "/api/v1/translate?" + urllib.parse.urlencode({"query": kfl}))
    assert status == 200
    cli = run("translate", "--compact", kfl)
    assert cli.returncode == 0 and body["sql"] == cli.stdout.strip()
    assert body["tables"] == ["connections"]
    status, body = server.json("GET", "/api/v1/translate?query=" + urllib.parse.quote("dst.nam == 1"))
    assert status == 400 and body["error"]["class"] == "SEM_UNKNOWN_FIELD"

    status, body = server.json("GET", "/api/v1/fields")
    assert status == 200
    names = run("fields", "--names").stdout.split()
    assert [f["name"] for f in body["fields"]] == names
    assert {"tcp", "udp", "dns", "error"} <= set(body["aliases"])


def test_kfl2_dialect_and_a_kfl1_clause_on_top(server, store):
    """`dialect: kfl2` reads the filter as CEL; `and` adds a KFL1 filter (a client's own clauses)."""
    want = sorted(duck(store, """SELECT conn_id, src_ip, src_port, dst_ip, dst_port, src_bytes FROM connections
                                 WHERE protocol = 'tcp' AND dst_namespace = '' AND dst_port = 80"""))
    assert want, "the demo scene has HTTP connections leaving the cluster"
    body = {"query": 'tcp && dst.namespace == ""', "dialect": "kfl2", "and": "dst.port == 80"}
    status, rows = server.json("POST", "/api/v1/query", body)
    assert status == 200, rows
    assert sorted(conn_key(r) for r in rows) == want
    # The same through the query string of the other endpoints.
    qs = urllib.parse.urlencode({"query": 'dst.port == "443"', "dialect": "kfl2"})
    status, body = server.json("GET", "/api/v1/translate?" + qs)
    assert status == 400 and body["error"]["class"] == "SEM_TYPE", body
    qs = urllib.parse.urlencode({"query": "tcp && dst.port in [80]", "dialect": "kfl2", "and": 'dst.namespace == ""'})
    status, body = server.json("GET", "/api/v1/translate?" + qs)
    assert status == 200 and body["tables"] == ["connections"], body
    status, body = server.json("GET", "/api/v1/map?" + qs)
    assert status == 200 and sum(e["connections"] for e in body["edges"]) == len(
        {r[0] for r in want}), body["edges"]
    status, body = server.json("GET", "/api/v1/translate?" + urllib.parse.urlencode({"query": "tcp", "dialect": "kfl3"}))
    assert status == 400 and "kfl1" in body["error"]["message"], body
    # An error in the clause is about the clause.
    qs = urllib.parse.urlencode({"query": "tcp", "dialect": "kfl2", "and": "dst.nam == 1"})
    status, body = server.json("GET", "/api/v1/translate?" + qs)
    assert status == 400 and body["error"]["class"] == "SEM_UNKNOWN_FIELD", body
    # The catalog of each dialect.
    status, body = server.json("GET", "/api/v1/fields?dialect=kfl2")
    assert status == 200 and body["dialect"] == "kfl2"
    names = run("fields", "--kfl2", "--names").stdout.split()
    recorded = [f["name"] for f in body["fields"]]
    assert set(recorded) | {a["name"] for a in body["aliases"]} | {n["name"] for n in body["not_recorded"]} == set(names)
    assert "conn_state" in recorded and "local_labels" in {n["name"] for n in body["not_recorded"]}


def test_unknown_endpoint_is_a_json_404(server):
    status, body = server.json("GET", "/api/v2/query")
    assert status == 404 and body["error"]["class"] == "NOT_FOUND"


def test_metrics_count_requests_and_errors(server):
    server.request("POST", "/api/v1/query", {"query": "dst.nam == 1"})
    server.request("POST", "/api/v1/query", {"query": "udp"})
    status, hdrs, payload = server.request("GET", "/metrics")
    assert status == 200 and hdrs["content-type"].startswith("application/openmetrics-text")
    text = payload.decode()
    def value(prefix):
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {prefix} in\n{text}")
    assert value('podwire_http_requests_total{endpoint="/api/v1/query",status="400"}') >= 1
    assert value('podwire_http_requests_total{endpoint="/api/v1/query",status="200"}') >= 1
    assert value('podwire_query_errors_total{endpoint="/api/v1/query",class="SEM_UNKNOWN_FIELD"}') >= 1
    assert value('podwire_query_rows_total{endpoint="/api/v1/query"}') >= 1
    assert value("podwire_queries_in_flight ") == 0
    assert "podwire_http_request_duration_seconds_bucket" in text


def test_openapi_describes_every_endpoint(server):
    from openapi_spec_validator import validate
    status, spec = server.json("GET", "/api/v1/openapi.json")
    assert status == 200
    validate(spec)
    with open(os.path.join(ROOT, "query", "service", "openapi.json")) as f:
        assert json.load(f) == spec
    bodies = {"/api/v1/query": {"query": "tcp", "limit": 1}, "/api/v1/sql": {"sql": "SELECT 1 AS one"}}
    for path, ops in spec["paths"].items():
        for method in ops:
            status, _, payload = server.request(method.upper(), path, bodies.get(path))
            assert status == 200, (method, path, payload)


def test_token(store):
    s = Server(store, "--token", "s3cret-token")
    try:
        status, hdrs, payload = s.request("POST", "/api/v1/query", {"query": "tcp"})
        assert status == 401 and hdrs.get("www-authenticate") == "Bearer"
        assert json.loads(payload)["error"]["class"] == "UNAUTHORIZED"
        status, _, _ = s.request("POST", "/api/v1/query", {"query": "tcp"},
                                 {"Authorization": "Bearer wrong-token"})
        assert status == 401
        status, _, _ = s.request("GET", "/metrics")
        assert status == 401
        status, _, _ = s.request("POST", "/api/v1/query", {"query": "tcp"},
                                 {"Authorization": "Bearer s3cret-token"})
        assert status == 200
        status, _, _ = s.request("GET", "/healthz")
        assert status == 200
    finally:
        assert s.stop() == 0


def test_token_from_environment(store):
    env_bin = [BIN, "serve", "--store", store, "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(env_bin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PODWIRE_TOKEN": "from-env"})
    try:
        line = proc.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/api/v1/fields")
        assert c.getresponse().status == 401
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/api/v1/fields", headers={"Authorization": "Bearer from-env"})
        assert c.getresponse().status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_missing_store_is_made_and_a_bad_one_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    out = run("serve", "--store", str(tmp_path / "file"), "--listen", "127.0.0.1:0")
    assert out.returncode == 1 and "is not a folder" in out.stderr
    out = run("serve", "--store", str(tmp_path / "file" / "below"), "--listen", "127.0.0.1:0")
    assert out.returncode == 1 and "cannot be created" in out.stderr
    # A new deployment: the query service starts before ingest wrote the store.
    s = Server(str(tmp_path / "new"))
    try:
        status, body = s.json("GET", "/healthz")
        assert status == 200 and body["status"] == "ok"
        status, rows = s.json("POST", "/api/v1/query", {"query": "tcp"})
        assert status == 200 and rows == []
    finally:
        assert s.stop() == 0


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    return generate_store(tmp_path_factory.mktemp("api-big-store"), 1500000, 2, 7)


def test_huge_result_streams_in_bounded_memory(big_store):
    """1.5 M rows, about 700 MB of CSV, sorted by time, through a server allowed 64 MiB of query
    memory: the sort spills, the body streams, and the server's resident memory stays far below the
    size of the result, also while the client stops reading for a while."""
    (rows_want,), = duck(big_store, "SELECT count(*) FROM connections WHERE protocol = 'tcp'")
    s = Server(big_store, "--memory-limit", "64MiB", "--max-concurrent-queries", "1")
    try:
        baseline = s.rss_kib()
        c = s.conn(timeout=600)
        c.request("POST", "/api/v1/query", body=json.dumps({"query": "tcp", "format": "csv"}))
        r = c.getresponse()
        assert r.status == 200
        assert r.getheader("transfer-encoding") == "chunked"
        first = r.read(1 << 20)
        received = len(first)
        lines = first.count(b"\n")
        # A second query while the first holds the only slot: refused, with Retry-After.
        status, hdrs, payload = s.request("POST", "/api/v1/query", {"query": "udp"})
        assert status == 503 and hdrs.get("retry-after") == "1", payload
        assert json.loads(payload)["error"]["class"] == "BUSY"
        # The client stalls: the server must not buffer the rest of the result.
        time.sleep(3)
        stalled = s.rss_kib()
        peak = max(baseline, stalled)
        while True:
            chunk = r.read(4 << 20)
            if not chunk:
                break
            received += len(chunk)
            lines += chunk.count(b"\n")
            peak = max(peak, s.rss_kib())
        c.close()
        peak_mib = peak / 1024
        total_mib = received / (1 << 20)
        print(f"streamed {total_mib:.0f} MiB, {rows_want} rows; server RSS baseline "
              f"{baseline / 1024:.0f} MiB, while stalled {stalled / 1024:.0f} MiB, peak {peak_mib:.0f} MiB")
        assert total_mib > 500, f"the result should be huge, got {total_mib:.0f} MiB"
        assert peak_mib < 400, f"server RSS {peak_mib:.0f} MiB while streaming {total_mib:.0f} MiB"
        assert peak_mib < total_mib / 2
        # Every row arrived: the header and one line per row (no field holds a newline).
        assert lines == rows_want + 1
        status, hdrs, payload = s.request("GET", "/metrics")
        assert f'podwire_query_rows_total{{endpoint="/api/v1/query"}} {rows_want}' in payload.decode()
        assert "podwire_queries_in_flight 0" in payload.decode()
    finally:
        assert s.stop() == 0


def test_client_going_away_frees_the_slot(big_store):
    s = Server(big_store, "--max-concurrent-queries", "1")
    try:
        c = s.conn()
        c.request("POST", "/api/v1/query", body=json.dumps({"query": "", "format": "ndjson"}))
        r = c.getresponse()
        assert r.status == 200
        r.read(65536)
        c.sock.close()
        c.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            status, _, payload = s.request("GET", "/metrics")
            if "podwire_queries_in_flight 0" in payload.decode():
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the slot of a query whose client went away was never freed")
        status, rows = s.json("POST", "/api/v1/query", {"query": "udp", "limit": 3})
        assert status == 200 and len(rows) == 3
    finally:
        assert s.stop() == 0
