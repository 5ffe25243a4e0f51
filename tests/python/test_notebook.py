"""query/notebooks/history.ipynb, executed headless (nbclient, kernel `python3`) against stores
written by the podwire binary: the demo store and stores from the shared captures. Each answer cell
prints `RESULT <name> {json}`; the expected values are computed here, independently, with DuckDB SQL
and pyarrow, plus the demo scene's known facts (capture/demo/README.md)."""
import json
import os
import re
import shutil
import subprocess

import pytest

from podwire_bin import ROOT, BIN, PCAPS

NOTEBOOK = os.path.join(ROOT, "query", "notebooks", "history.ipynb")
PIP = "nbclient nbformat ipykernel polars matplotlib duckdb pyarrow"

FRONTEND = "shop/frontend-6d4cf56db6-qz7mn"
REPORT = "batch/report-29000000-bx6kt"
OK = ("closed", "open", "answered")
GNUTELLA_PEER = "113.252.86.162"  # the peer 10.0.2.15 opened the most connections to


@pytest.fixture(scope="session")
def deps():
    """The notebook's packages. Missing ones fail the tests (not skip them), with the install line."""
    missing = []
    for mod in ("nbclient", "nbformat", "ipykernel", "polars", "matplotlib", "duckdb", "pyarrow"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        pytest.fail(f"missing Python packages {missing}: python3 -m pip install {PIP}", pytrace=False)
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.fail("no Jupyter kernel `python3`: python3 -m ipykernel install --user --name python3",
                    pytrace=False)


def podwire(*args):
    if not os.path.exists(BIN):
        pytest.fail(f"podwire binary not found at {BIN}: run `cargo build` or set PODWIRE_BIN", pytrace=False)
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"podwire {' '.join(args)} failed:\n{out.stderr}"
    return out


def summary_counts(out):
    """`packets read N` and `skipped N` from the run summary; a summary without them fails (its
    wording changed), so the totals are always compared."""
    text = out.stdout + out.stderr
    got = {}
    for key, pattern in (("packets", r"^packets read\s+(\d+)"), ("skipped", r"^skipped\s+(\d+)")):
        m = re.search(pattern, text, re.M)
        assert m, f"the run summary has no line matching {pattern!r} (did its wording change?):\n{text}"
        got[key] = int(m.group(1))
    return got


def gnutella_inventory(path):
    """A one-pod inventory: the gnutella host 10.0.2.15 as pod p2p/gnutella-0 of StatefulSet gnutella."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "gnutella-0", "namespace": "p2p", "creationTimestamp": "1970-01-01T00:00:00Z",
                        "labels": {"app": "gnutella"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "gnutella",
                                             "uid": "u1", "controller": True}]},
           "spec": {"nodeName": "vbox", "containers": []},
           "status": {"phase": "Running", "podIP": "10.0.2.15", "podIPs": [{"ip": "10.0.2.15"}],
                      "startTime": "1970-01-01T00:00:00Z"}}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "vbox"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.2.2"}]}}
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": [pod, node], "metadata": {}}, f)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("demo") / "store")
    out = podwire("demo", "--no-serve", "--store", store)
    return store, summary_counts(out)


@pytest.fixture(scope="module")
def gnutella(tmp_path_factory):
    """gnutella.pcap (timestamps in 1970, many failures, no DNS rows) with a one-pod inventory."""
    d = tmp_path_factory.mktemp("gnutella")
    inv = str(d / "pods.json")
    gnutella_inventory(inv)
    store = str(d / "store")
    out = podwire("standalone", "--pcap", os.path.join(PCAPS, "gnutella.pcap"), "--inventory", inv,
                  "--store", store)
    return store, summary_counts(out)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """gnutella.pcap without an inventory (every namespace ''), and without its capture_stats table:
    the notebook must say so and carry on."""
    store = str(tmp_path_factory.mktemp("bare") / "store")
    podwire("standalone", "--pcap", os.path.join(PCAPS, "gnutella.pcap"), "--store", store)
    shutil.rmtree(os.path.join(store, "capture_stats"), ignore_errors=True)
    return store


def execute(monkeypatch, store, external, ns_a, ns_b):
    """Runs the notebook with the parameters in the environment; returns {name: value} of its
    RESULT lines and the number of plots."""
    import nbclient
    import nbformat
    for k, v in (("PODWIRE_STORE", store), ("PODWIRE_EXTERNAL", external), ("PODWIRE_NS_A", ns_a),
                 ("PODWIRE_NS_B", ns_b)):
        monkeypatch.setenv(k, v)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails
    results, plots = {}, 0
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                for line in o["text"].splitlines():
                    if line.startswith("RESULT "):
                        _, name, value = line.split(" ", 2)
                        results[name] = json.loads(value)
            if "image/png" in o.get("data", {}):
                plots += 1
    assert set(results) == {"external", "failures", "matrix", "capture_loss"}, results.keys()
    return results, plots


# Independent expectations -------------------------------------------------------------------------

def sql(store, query, params=None):
    import duckdb
    con = duckdb.connect()
    for table in ("connections", "dns"):
        if os.path.isdir(os.path.join(store, table)):
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
                        f"'{store}/{table}/date=*/hour=*/*.parquet', hive_partitioning = true)")
        elif table == "dns":  # no DNS rows in the capture: an empty table with the columns used
            con.execute("CREATE VIEW dns AS SELECT ''::VARCHAR AS query_name, []::VARCHAR[] AS answer_ips, "
                        "''::VARCHAR AS rcode, ''::VARCHAR AS outcome, ''::VARCHAR AS src_namespace WHERE false")
    return con.execute(query, params or {}).fetchall()


def expected_external(store, external):
    """pyarrow: connections whose dst_ip is the address (or a DNS answer for the name), or whose
    dst_dns_name is the name."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    ips = {external}
    if os.path.isdir(os.path.join(store, "dns")):
        t = ds.dataset(os.path.join(store, "dns"), partitioning="hive").to_table(
            filter=ds.field("query_name") == external, columns=["answer_ips"])
        ips |= set(pc.list_flatten(t["answer_ips"]).to_pylist())
    t = ds.dataset(os.path.join(store, "connections"), partitioning="hive").to_table(
        filter=ds.field("dst_ip").isin(sorted(ips)) | (ds.field("dst_dns_name") == external),
        columns=["conn_id", "src_namespace", "src_pod", "src_ip"])
    sources = {f"{r['src_namespace']}/{r['src_pod']}" if r["src_pod"] else r["src_ip"] for r in t.to_pylist()}
    return {"connections": len(set(t["conn_id"].to_pylist())), "sources": sorted(sources),
            "pods": sorted(s for s in sources if "/" in s)}


def expected_failures(store, a, b):
    rows = sql(store, """
        SELECT protocol || '/' || outcome, count(*) FROM connections
        WHERE is_final AND outcome NOT IN ('closed', 'open', 'answered')
          AND ((src_namespace = $a AND dst_namespace = $b) OR (src_namespace = $b AND dst_namespace = $a))
        GROUP BY 1""", {"a": a, "b": b})
    outcomes = dict(rows)
    total = sql(store, """
        SELECT count(DISTINCT conn_id) FROM connections
        WHERE (src_namespace = $a AND dst_namespace = $b) OR (src_namespace = $b AND dst_namespace = $a)""",
                {"a": a, "b": b})[0][0]
    icmp = dict(sql(store, """
        SELECT concat_ws('/', protocol, dst_port, icmp_type, icmp_code), count(*) FROM connections
        WHERE is_final AND icmp_type IS NOT NULL AND outcome NOT IN ('closed', 'open', 'answered')
          AND ((src_namespace = $a AND dst_namespace = $b) OR (src_namespace = $b AND dst_namespace = $a))
        GROUP BY 1""", {"a": a, "b": b}))
    retrans = sql(store, """
        SELECT coalesce(sum(src_retransmits + dst_retransmits), 0) FROM connections
        WHERE conn_id IN (SELECT conn_id FROM connections
                          WHERE is_final AND outcome NOT IN ('closed', 'open', 'answered'))
          AND ((src_namespace = $a AND dst_namespace = $b) OR (src_namespace = $b AND dst_namespace = $a))""",
                  {"a": a, "b": b})[0][0]
    return {"outcomes": outcomes, "failing": sum(outcomes.values()), "connections": total, "icmp": icmp,
            "retransmits": int(retrans)}


def expected_matrix(store):
    rows = sql(store, """
        SELECT CASE WHEN src_namespace = '' THEN '(outside)' ELSE src_namespace END || '|' ||
               CASE WHEN dst_namespace = '' THEN '(outside)' ELSE dst_namespace END,
               count(*), count(*) FILTER (WHERE outcome NOT IN ('closed', 'open', 'answered'))
        FROM connections WHERE is_final GROUP BY 1""")
    return {k: [n, f] for k, n, f in rows}


def check_capture_loss(store, got, run_summary):
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    path = os.path.join(store, "capture_stats")
    assert os.path.isdir(path), f"podwire wrote no capture_stats table in {store}: rebuild it (cargo build)"
    assert got["available"] is True, got
    t = ds.dataset(path, partitioning="hive").to_table()
    total = lambda c: pc.sum(t[c]).as_py() or 0
    for col in ("packets", "packets_tracked", "skipped", "connections_evicted", "dns_parse_errors"):
        assert got[col] == total(col), (col, got[col], total(col))
    reasons = {c.removeprefix("skipped_"): total(c) for c in t.column_names if c.startswith("skipped_")}
    assert got["skipped_by_reason"] == {k: v for k, v in reasons.items() if v}, got["skipped_by_reason"]
    assert got["nodes"] == sorted(set(t["node"].to_pylist()))
    minutes = sql(store, "SELECT count(DISTINCT (node, date_trunc('minute', ts))) FROM read_parquet("
                         f"'{path}/date=*/hour=*/*.parquet', hive_partitioning = true)")[0][0]
    assert got["minutes"] == minutes, (got["minutes"], minutes)
    # The contract (schemas/README.md): over a whole run, packets = packets_tracked + skipped.
    assert got["packets"] == got["packets_tracked"] + got["skipped"], got
    # The same totals as the run's own summary on stdout.
    for key, value in run_summary.items():
        assert got[key] == value, (key, got[key], run_summary)


# The tests ----------------------------------------------------------------------------------------

def test_demo_defaults(deps, demo, monkeypatch):
    """The notebook's defaults on the demo store: api.example.com, shop ↔ shop."""
    store, run_summary = demo
    res, plots = execute(monkeypatch, store, "api.example.com", "shop", "shop")

    ext = res["external"]
    assert ext["pods"] == [FRONTEND], ext  # the demo scene: only frontend talks to api.example.com
    assert ext["addresses"] == ["203.0.113.10"], ext
    want = expected_external(store, "api.example.com")
    assert {k: ext[k] for k in want} == want

    fail = res["failures"]
    assert {"tcp/refused", "tcp/reset", "udp/unreachable"} <= set(fail["outcomes"]), fail
    assert any(k.startswith("udp/9999/3/3") for k in fail["icmp"]), fail  # ICMP port unreachable
    assert fail["reset_by"].get("dst", 0) >= 1, fail  # the :9000 server reset
    assert fail["tcp_with_rtt"] >= 1, fail
    want = expected_failures(store, "shop", "shop")
    assert {k: fail[k] for k in want} == want

    assert res["matrix"] == expected_matrix(store)
    assert res["matrix"]["shop|shop"][1] == fail["failing"]

    check_capture_loss(store, res["capture_loss"], run_summary)
    assert res["capture_loss"]["skipped_by_reason"] == {"not_ip": 16}, res["capture_loss"]  # ARP
    assert plots == 3, plots


def test_demo_ip_and_outside(deps, demo, monkeypatch):
    """An IP instead of a name; batch ↔ outside the cluster, with the DNS evidence (NXDOMAIN)."""
    store, _ = demo
    res, _ = execute(monkeypatch, store, "203.0.113.99", "batch", "")
    ext = res["external"]
    assert ext["pods"] == [REPORT] and ext["connections"] == 1, ext
    assert {k: ext[k] for k in ("connections", "sources", "pods")} == expected_external(store, "203.0.113.99")
    fail = res["failures"]
    assert fail["outcomes"] == {"tcp/no_answer": 1}, fail
    want = expected_failures(store, "batch", "")
    assert {k: fail[k] for k in want} == want
    dns_fail = dict(sql(store, """SELECT query_name || '/' || rcode, count(*) FROM dns
                                  WHERE (rcode <> 'NOERROR' OR outcome = 'no_response')
                                    AND (src_namespace IN ('batch', '') OR query_name LIKE '%.batch.svc.%')
                                  GROUP BY 1"""))
    assert fail["dns_failures"] == dns_fail == {"db.batch.svc.cluster.local/NXDOMAIN": 1}, fail


def test_gnutella_with_inventory(deps, gnutella, monkeypatch):
    """A shared capture with many failures (1970 timestamps, no DNS rows), its host as a pod in p2p."""
    store, run_summary = gnutella
    res, plots = execute(monkeypatch, store, GNUTELLA_PEER, "p2p", "")
    ext = res["external"]
    assert ext["pods"] == ["p2p/gnutella-0"], ext
    want = expected_external(store, GNUTELLA_PEER)
    assert {k: ext[k] for k in want} == want and want["connections"] > 1

    fail = res["failures"]
    want = expected_failures(store, "p2p", "")
    assert {k: fail[k] for k in want} == want
    assert {"tcp/refused", "tcp/no_answer", "tcp/reset", "udp/unreachable"} <= set(fail["outcomes"]), fail
    assert any(k.startswith("udp/") and k.endswith("/3/3") for k in fail["icmp"]), fail
    assert fail["retransmits"] > 0 and fail["tcp_with_rtt"] > 0, fail
    assert fail["dns_failures"] == {}, fail  # no dns table in this store

    assert res["matrix"] == expected_matrix(store)
    check_capture_loss(store, res["capture_loss"], run_summary)
    assert plots == 3, plots
    cl = res["capture_loss"]
    assert cl["sources"] == ["pcap:gnutella.pcap"] and cl["minutes"] >= 10, cl  # 600 s of packets
    assert cl["worst_minute"]["ts"].startswith("1970-01-01"), cl
    assert cl["skipped_by_reason"].get("not_ip", 0) > 0, cl
    assert cl["skipped_by_reason"].get("other_ip_protocol", 0) > 0, cl


def test_without_inventory_dns_or_capture_stats(deps, bare, monkeypatch):
    """No inventory (namespace '' everywhere), no dns table and no capture_stats table."""
    res, plots = execute(monkeypatch, bare, GNUTELLA_PEER, "", "")
    ext = res["external"]
    assert ext["pods"] == [] and ext["sources"] == ["10.0.2.15"], ext
    assert {k: ext[k] for k in ("connections", "sources", "pods")} == expected_external(bare, GNUTELLA_PEER)
    want = expected_failures(bare, "", "")
    assert {k: res["failures"][k] for k in want} == want
    assert list(res["matrix"]) == ["(outside)|(outside)"], res["matrix"]
    assert res["capture_loss"] == {"available": False}
    assert plots == 2

