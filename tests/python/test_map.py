"""The connectivity map (`GET /api/v1/map`, `podwire map`) checked against an independent
computation: the connection rows read from the same Parquet with DuckDB, each end named by the
rules of `query/service/src/map.rs` re-implemented here in Python (addresses classified with
`ipaddress` networks, not the server's regex), and every edge's numbers summed in Python.

Stores: the demo scene (an inventory names pods, workloads, services and nodes) and the shared
captures with an inventory written here that names a few of their busiest private addresses as
pods, so both in-cluster and external traffic are exercised on real captures."""
import collections
import ipaddress
import json
import os
import urllib.parse

import duckdb
import pytest

from podwire_bin import PCAPS, run
from test_api import Server

PRIVATE = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128")]
SUCCESS = {"closed", "open", "answered"}
EVERYTHING = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
CAPTURES = ["reddit.pcap", "echo-connections.pcap", "1kxun.pcap"]


def private(ip):
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(a.version == n.version and a in n for n in PRIVATE)


def node_id(row, side, level, expand):
    """The map's node id of one end of a connection row (the spec in map.rs, written again)."""
    g = lambda c: row[f"{side}_{c}"]
    ns = g("namespace")
    if ns:
        if level == "namespace" or (expand is not None and ns not in expand):
            return f"ns:{ns}"
        if g("pod") == "" and g("service"):
            return f"svc:{ns}/{g('service')}"
        if g("pod") == "":
            return f"ns:{ns}"
        if level == "workload" and g("workload"):
            return f"wl:{ns}/{g('workload')}"
        return f"pod:{ns}/{g('pod')}"
    if g("node"):
        return f"node:{g('node')}"
    if side == "dst" and row["dst_dns_name"]:
        return f"ext:{row['dst_dns_name']}"
    if private(g("ip")):
        return f"unknown:{g('ip')}"
    return f"ext:{g('ip')}"


def rows(store, where="TRUE"):
    con = duckdb.connect()
    rel = con.execute(f"""SELECT *, epoch_us(start_ts) // 1000 AS start_ms, epoch_us(end_ts) // 1000 AS end_ms
        FROM read_parquet('{store}/connections/date=*/hour=*/*.parquet', hive_partitioning = true)
        WHERE {where}""")
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r)) for r in rel.fetchall()]


def quantile(values, q):
    """Linear interpolation between the nearest ranks (numpy's default, DuckDB's quantile_cont)."""
    v = sorted(values)
    rank = q * (len(v) - 1)
    lo, hi = int(rank), min(int(rank) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (rank - lo)


def expected_edges(conn_rows, level="namespace", expand=None):
    edges = {}
    for r in conn_rows:
        key = (node_id(r, "src", level, expand), node_id(r, "dst", level, expand))
        e = edges.setdefault(key, {
            "connections": 0, "failed": collections.Counter(), "bytes_sent": 0,
            "bytes_received": 0, "packets": 0, "retransmissions": 0, "protocols": set(),
            "first_seen": None, "last_seen": None, "rtts": [], "rows": 0,
            "ports": collections.Counter()})
        e["rows"] += 1
        e["bytes_sent"] += r["src_bytes"]
        e["bytes_received"] += r["dst_bytes"]
        e["packets"] += r["src_packets"] + r["dst_packets"]
        e["retransmissions"] += r["src_retransmits"] + r["dst_retransmits"]
        e["protocols"].add(r["protocol"])
        e["ports"][(r["dst_port"], r["protocol"])] += 1 if r["is_final"] else 0
        e["first_seen"] = min(filter(None, [e["first_seen"], r["start_ms"]]))
        e["last_seen"] = max(filter(None, [e["last_seen"], r["end_ms"]]))
        if r["is_final"]:
            e["connections"] += 1
            if r["outcome"] not in SUCCESS:
                e["failed"][r["outcome"]] += 1
            if r["handshake_rtt_us"] is not None:
                e["rtts"].append(r["handshake_rtt_us"] / 1000)
    return edges


def get_map(server, **params):
    status, body = server.json("GET", "/api/v1/map?" + urllib.parse.urlencode(params))
    assert status == 200, body
    return body


def check_against(body, want):
    got = {(e["source"], e["target"]): e for e in body["edges"]}
    assert set(got) == set(want), (sorted(set(got) ^ set(want)))[:10]
    for key, w in want.items():
        e = got[key]
        for f in ("connections", "bytes_sent", "bytes_received", "packets", "retransmissions"):
            assert e[f] == w[f], (key, f, e[f], w[f])
        assert e["failed"] == dict(w["failed"]), (key, e["failed"], w["failed"])
        assert set(e["protocols"]) == w["protocols"], key
        assert e["first_seen"] == w["first_seen"] and e["last_seen"] == w["last_seen"], key
        if w["rtts"]:
            for q, f in ((0.5, "rtt_p50_ms"), (0.95, "rtt_p95_ms")):
                assert abs(e[f] - quantile(w["rtts"], q)) < 1e-9, (key, f, e[f], w["rtts"])
        else:
            assert e["rtt_p50_ms"] is None and e["rtt_p95_ms"] is None, key
        top = {(p["port"], p["protocol"]): p["connections"] for p in e["top_ports"]}
        for port, n in top.items():
            assert w["ports"][port] == n, (key, port)
        assert len(top) == min(5, len(w["ports"]))
    # Nodes: each end of an edge once; connections and bytes are sums over its edges.
    nodes = {n["id"]: n for n in body["nodes"] if not n.get("box")}
    ends = {k for key in want for k in key}
    assert set(nodes) == ends
    for nid, n in nodes.items():
        conns = sum(w["connections"] for k, w in want.items() if nid in k)
        assert n["connections"] == conns, nid
    return got


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("map-demo")
    out = run("demo", "--no-serve", "--store", str(path))
    assert out.returncode == 0, out.stderr
    s = Server(str(path))
    yield str(path), s
    assert s.stop() == 0, s.proc.stderr.read()


def inventory_for(store, path):
    """An inventory naming the capture's six busiest private initiators as pods of two
    namespaces (three workloads), with the first as a node's own address."""
    con = duckdb.connect()
    busiest = [r[0] for r in con.execute(f"""SELECT src_ip, count(*) FROM
        read_parquet('{store}/connections/date=*/hour=*/*.parquet', hive_partitioning = true)
        GROUP BY 1 ORDER BY 2 DESC, 1""").fetchall() if private(r[0])][:6]
    assert len(busiest) >= 3, busiest
    items = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
              "status": {"addresses": [{"type": "InternalIP", "address": busiest[0]}]}}]
    for i, ip in enumerate(busiest[1:]):
        ns = "shop" if i % 2 == 0 else "batch"
        app = f"app{i % 3}"
        items.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{app}-5d9c7b6f4-{i:05d}", "namespace": ns,
                         "labels": {"app": app, "pod-template-hash": "5d9c7b6f4"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": f"{app}-5d9c7b6f4",
                                              "apiVersion": "apps/v1", "uid": f"u{i}"}],
                         "creationTimestamp": "2000-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-a"},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}], "phase": "Running"}})
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    raw = tmp_path_factory.mktemp("map-raw")
    pcaps = ",".join(os.path.join(PCAPS, p) for p in CAPTURES)
    out = run("-q", "standalone", "--pcap", pcaps, "--store", str(raw), "--node", "node-a")
    assert out.returncode == 0, out.stderr
    inv = str(tmp_path_factory.mktemp("map-inv") / "inventory.json")
    inventory_for(str(raw), inv)
    store = tmp_path_factory.mktemp("map-captures")
    out = run("-q", "standalone", "--pcap", pcaps, "--store", str(store), "--node", "node-a",
              "--inventory", inv)
    assert out.returncode == 0, out.stderr
    s = Server(str(store))
    yield str(store), s
    assert s.stop() == 0, s.proc.stderr.read()


@pytest.mark.parametrize("kfl,where", [
    ("", "TRUE"),
    ('dst.namespace == ""', "dst_namespace = ''"),
    ("tcp", "protocol = 'tcp'"),
    ("error", "outcome NOT IN ('closed', 'open', 'answered')"),
])
@pytest.mark.parametrize("level", ["namespace", "workload", "pod"])
def test_demo_edges_equal_the_rows_they_stand_for(demo, kfl, where, level):
    store, server = demo
    body = get_map(server, query=kfl, level=level, **EVERYTHING)
    want = expected_edges(rows(store, where), level)
    check_against(body, want)
    assert body["level"] == level and "array_agg" in body["sql"]


def test_captures_edges_and_external_names(captures):
    store, server = captures
    for level in ("namespace", "workload"):
        body = get_map(server, level=level, **EVERYTHING)
        got = check_against(body, expected_edges(rows(store), level))
        kinds = {n["kind"] for n in body["nodes"]}
        assert {"external", "node"} <= kinds, kinds
    # External ends are named by what the client resolved.
    named = {r["dst_dns_name"] for r in rows(store, "dst_namespace = '' AND dst_node = '' AND dst_dns_name <> ''")}
    assert named, "the captures resolve names before connecting"
    ext = {n["label"] for n in body["nodes"] if n["kind"] == "external"}
    assert named <= ext


def test_expand_breaks_down_one_namespace(demo):
    store, server = demo
    namespaces = sorted({r["src_namespace"] for r in rows(store) if r["src_namespace"]})
    one = namespaces[0]
    body = get_map(server, level="workload", expand=one, **EVERYTHING)
    check_against(body, expected_edges(rows(store), "workload", {one}))
    boxes = [n for n in body["nodes"] if n.get("box")]
    assert [b["id"] for b in boxes] == [f"ns:{one}"]
    inside = [n for n in body["nodes"] if n.get("parent") == f"ns:{one}"]
    assert inside and all(n["namespace"] == one for n in inside)


def test_each_edge_clause_selects_exactly_its_rows(demo):
    store, server = demo
    body = get_map(server, level="workload", **EVERYTHING)
    want = expected_edges(rows(store), "workload")
    assert body["edges"]
    for e in body["edges"]:
        status, got = server.json("POST", "/api/v1/query", {"query": e["kfl"], **EVERYTHING})
        assert status == 200, got
        assert len(got) == want[(e["source"], e["target"])]["rows"], (e["kfl"], len(got))
        assert sum(1 for r in got if r["is_final"]) == e["connections"]
    for n in body["nodes"]:
        if n.get("box"):
            continue
        status, got = server.json("POST", "/api/v1/query", {"query": "!dns and " + n["match"]["src"], **EVERYTHING})
        assert status == 200
        assert len(got) == sum(w["rows"] for k, w in want.items() if k[0] == n["id"]), n["id"]


def test_folding_keeps_the_totals(captures):
    store, server = captures
    full = get_map(server, level="workload", **EVERYTHING)
    assert full["folded"] is None and len(full["nodes"]) > 8
    small = get_map(server, level="workload", max_nodes=6, **EVERYTHING)
    assert small["folded"]["max_nodes"] == 6 and small["folded"]["nodes"] > 0
    assert len([n for n in small["nodes"] if not n.get("box")]) <= 6
    for f in ("connections", "bytes_sent", "bytes_received", "packets", "retransmissions"):
        assert sum(e[f] for e in small["edges"]) == sum(e[f] for e in full["edges"]), f
    failed = lambda m: sum(sum(e["failed"].values()) for e in m["edges"])
    assert failed(small) == failed(full)
    assert any(n["kind"] == "other" and n["match"] is None for n in small["nodes"])
    # The nodes kept are the heaviest ones, as they were.
    kept = {n["id"] for n in small["nodes"] if n["kind"] != "other" and not n.get("box")}
    assert kept, "the heaviest nodes are kept"
    ranked = [n["id"] for n in full["nodes"] if not n.get("box")]
    assert kept == set(ranked[:len(kept)])


def test_default_window_is_the_last_hour_of_data(demo):
    store, server = demo
    body = get_map(server)
    last = max(r["start_ms"] for r in rows(store))
    assert body["to_ms"] == last + 1 and body["from_ms"] == last + 1 - 3600_000


def test_bad_requests(demo):
    _, server = demo
    status, body = server.json("GET", "/api/v1/map?query=" + urllib.parse.quote('dst.nam == "x"'))
    assert status == 400 and body["error"]["class"] == "SEM_UNKNOWN_FIELD"
    assert body["error"]["line"] == 1 and body["error"]["col"] == 1
    for q in ("level=cluster", "max_nodes=0", "from=yesterday", "bogus=1"):
        status, body = server.json("GET", "/api/v1/map?" + q)
        assert status == 400, (q, body)
    status, body = server.json("GET", "/api/v1/timeline?buckets=0")
    assert status == 400


def test_timeline_counts_final_rows(demo):
    store, server = demo
    status, t = server.json("GET", "/api/v1/timeline?buckets=50")
    assert status == 200, t
    rs = rows(store)
    assert sum(b["connections"] for b in t["buckets"]) == sum(1 for r in rs if r["is_final"])
    assert sum(b["failed"] for b in t["buckets"]) == sum(
        1 for r in rs if r["is_final"] and r["outcome"] not in SUCCESS)
    assert t["data_from_ms"] == min(r["start_ms"] for r in rs)
    assert len(t["buckets"]) <= 50
    for b in t["buckets"]:
        inside = [r for r in rs if r["is_final"] and b["t"] <= r["start_ms"] < b["t"] + t["bucket_ms"]]
        assert b["connections"] == len(inside), b


def test_query_pages_with_offset(demo):
    _, server = demo
    status, whole = server.json("POST", "/api/v1/query", {"query": "tcp"})
    assert status == 200 and len(whole) > 4
    status, page = server.json("POST", "/api/v1/query", {"query": "tcp", "limit": 3, "offset": 2})
    assert status == 200 and page == whole[2:5]


def test_parquet_export(demo, tmp_path):
    import pyarrow.parquet as pq
    store, server = demo
    status, hdrs, payload = server.request("POST", "/api/v1/query", {"query": "tcp", "format": "parquet"})
    assert status == 200 and hdrs["content-type"] == "application/vnd.apache.parquet"
    (tmp_path / "x.parquet").write_bytes(payload)
    assert pq.read_table(tmp_path / "x.parquet").num_rows == len(rows(store, "protocol = 'tcp'"))


def test_cli_formats(demo):
    store, _ = demo
    out = run("map", "--store", store, "--from", EVERYTHING["from"], "--to", EVERYTHING["to"],
              "--level", "workload")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    want = expected_edges(rows(store), "workload")
    check_against(body, want)
    dot = run("map", "--store", store, "--from", EVERYTHING["from"], "--format", "dot", "--level", "workload")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph podwire {")
    assert dot.stdout.count(" -> ") == len(want)
    assert "subgraph cluster_" in dot.stdout
    mermaid = run("map", "--store", store, "--from", EVERYTHING["from"], "--format", "mermaid")
    assert mermaid.returncode == 0 and mermaid.stdout.startswith("flowchart LR")
    assert mermaid.stdout.count(" -->|") == len(expected_edges(rows(store), "namespace"))
    bad = run("map", "--store", store, "dst.nam == 1")
    assert bad.returncode == 1 and "dst.name" in bad.stderr
