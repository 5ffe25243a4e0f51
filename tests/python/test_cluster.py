"""KFL on a Ballista cluster (issue 22): a scheduler and two executors started by the binary on
loopback (`podwire cluster scheduler|executor`), and every KFL1 and KFL2 result case of test_kfl_results
run through them (`podwire query --cluster`): rows identical to the in-process run and equal to
DuckDB's, on folder stores and on a bucket of the S3-compatible server. Then the map and the API
through the cluster, the plans (`--explain`: stages, partial aggregates on the executors, time
pruning), an unreachable scheduler, a cluster with no executor, and an executor killed in the
middle of a query."""
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from loopback import free_port, stop_process, wait_listening
from podwire_bin import BIN, generate_store, run
from s3_server import s3  # noqa: F401 (a fixture)
from test_kfl_results import CASES, KFL2_CASES, compare, expected, podwire_rows, stores  # noqa: F401


def two_free_ports():
    """A port whose next port is free too (an executor's Flight and task ports)."""
    import socket
    for _ in range(50):
        p = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise AssertionError("no two consecutive free ports on loopback")


class Cluster:
    """A scheduler and `executors` executors of the podwire binary, logs under `logs`."""

    def __init__(self, logs, env, executors=2, executor_args=()):
        self.env = env
        self.executor_args = list(executor_args)
        self.logs = logs
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.scheduler = self._start("scheduler", ["cluster", "scheduler", "--listen", self.address,
                                                   "--executor-timeout", "6s"])
        wait_listening(self.scheduler, self.port, "the scheduler", self._log("scheduler"))
        self.executors = [self.add_executor(i) for i in range(executors)]

    def _log(self, name):
        return os.path.join(self.logs, f"{name}.log")

    def _start(self, name, args):
        log = open(self._log(name), "ab")
        return subprocess.Popen([BIN, *args], stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def add_executor(self, i):
        port = two_free_ports()
        proc = self._start(f"executor-{i}", [
            "cluster", "executor", "--scheduler", self.address, "--listen", f"127.0.0.1:{port}",
            "--concurrent-tasks", "2", "--heartbeat", "1s",
            "--work-dir", os.path.join(self.logs, f"work-{i}"), *self.executor_args])
        os.makedirs(os.path.join(self.logs, f"work-{i}"), exist_ok=True)
        wait_listening(proc, port, f"executor {i}", self._log(f"executor-{i}"))
        wait_listening(proc, port + 1, f"executor {i}", self._log(f"executor-{i}"))
        # Registered once the scheduler logged its request.
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(self._log("scheduler")) as f:
                if f.read().count("register executor request") > i:
                    return proc
            time.sleep(0.2)
        raise AssertionError(f"executor {i} did not register: see {self._log('scheduler')}")

    def stop(self):
        for p in [*self.executors, self.scheduler]:
            stop_process(p)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3):
    # The executors read the bucket with their own AWS_* environment, the same as the client's.
    c = Cluster(str(tmp_path_factory.mktemp("cluster")), s3.env)
    yield c
    c.stop()


def on(cluster, *args, env=None):
    return subprocess.run([BIN, *args, "--cluster", cluster.address], capture_output=True,
                          text=True, env=env or cluster.env)


def json_rows(text):
    return [json.loads(line) for line in text.splitlines()]


def canonical(rows):
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


@pytest.mark.parametrize("store_name", ["demo", "captures"])
@pytest.mark.parametrize("kfl,conn_where,dns_where", CASES, ids=[c[0] or "<blank>" for c in CASES])
def test_kfl_on_the_cluster_matches_in_process_and_duckdb(cluster, stores, store_name, kfl,
                                                         conn_where, dns_where):
    store = stores[store_name]
    got = podwire_rows(store, kfl, "--cluster", cluster.address)
    compare(got, expected(store, conn_where, dns_where), f"{store_name} on the cluster: {kfl}")
    # Every column of every row, as the process alone returns them.
    alone = run("query", "--store", store, "--format", "json", kfl)
    there = on(cluster, "query", "--store", store, "--format", "json", kfl)
    assert alone.returncode == 0 and there.returncode == 0, there.stderr
    assert canonical(json_rows(there.stdout)) == canonical(json_rows(alone.stdout)), kfl


@pytest.mark.parametrize("store_name", ["demo", "captures"])
@pytest.mark.parametrize("kfl,conn_where,dns_where", KFL2_CASES, ids=[c[0] for c in KFL2_CASES])
def test_kfl2_on_the_cluster_matches_duckdb(cluster, stores, store_name, kfl, conn_where, dns_where):
    store = stores[store_name]
    got = podwire_rows(store, kfl, "--kfl2", "--cluster", cluster.address)
    compare(got, expected(store, conn_where, dns_where), f"{store_name} on the cluster: {kfl}")


@pytest.mark.parametrize("store_name", ["demo", "captures"])
def test_limits_and_time_ranges_on_the_cluster(cluster, stores, store_name):
    store = stores[store_name]
    for args in (["--limit", "7"], ["tcp and limit(3)"], ["--from", "2000-01-01", "--to", "2100-01-01", "dns"]):
        alone = run("query", "--store", store, "--format", "json", *args)
        there = on(cluster, "query", "--store", store, "--format", "json", *args)
        assert alone.returncode == 0 and there.returncode == 0, there.stderr
        a, t = json_rows(alone.stdout), json_rows(there.stdout)
        assert a, f"{args}: nothing to compare"
        assert len(t) == len(a), args
        key = lambda r: r.get("start_ts") or r.get("ts")  # noqa: E731
        assert [key(r) for r in t] == [key(r) for r in a], f"{args}: not the first rows in time order"


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_every_shuffle_compression_returns_the_same_rows(cluster, stores, codec):
    store = stores["captures"]
    for args in (["tcp"], ["--sql", "SELECT dst_port, count(*) AS n FROM connections GROUP BY dst_port"]):
        alone = run("query", "--store", store, "--format", "json", *args)
        there = on(cluster, "query", "--store", store, "--format", "json",
                   "--cluster-shuffle-compression", codec, *args)
        assert alone.returncode == 0 and there.returncode == 0, there.stderr
        assert json_rows(alone.stdout), f"{args}: nothing to compare"
        assert canonical(json_rows(there.stdout)) == canonical(json_rows(alone.stdout)), (codec, args)
    bad = on(cluster, "query", "--store", store, "--cluster-shuffle-compression", "gzip", "tcp")
    assert bad.returncode != 0 and "lz4" in bad.stderr, bad.stderr


def test_sql_and_the_map_on_the_cluster(cluster, stores):
    store = stores["captures"]
    sql = "SELECT protocol, count(*) AS n, sum(src_bytes) AS b FROM connections GROUP BY protocol ORDER BY protocol"
    alone = run("query", "--store", store, "--sql", "--format", "json", sql)
    there = on(cluster, "query", "--store", store, "--sql", "--format", "json", sql)
    assert there.returncode == 0, there.stderr
    assert json_rows(there.stdout) == json_rows(alone.stdout) and json_rows(alone.stdout)
    for level in ("namespace", "pod"):
        alone = run("map", "--store", stores["demo"], "--level", level, "--from", "2000-01-01")
        there = on(cluster, "map", "--store", stores["demo"], "--level", level, "--from", "2000-01-01")
        assert there.returncode == 0, there.stderr
        a, t = json.loads(alone.stdout), json.loads(there.stdout)
        assert a["edges"], "the demo's map has edges"
        assert (t["nodes"], t["edges"]) == (a["nodes"], a["edges"]), level


def test_the_plan_on_the_cluster_is_cut_into_stages_with_partial_aggregates(cluster, stores):
    store = stores["captures"]
    out = on(cluster, "query", "--store", store, "--explain", "--sql",
             "SELECT dst_ip, count(*) FROM connections GROUP BY dst_ip")
    assert out.returncode == 0, out.stderr
    stages = re.findall(r"^stage \d+", out.stdout, re.M)
    assert len(stages) >= 2, out.stdout
    first = out.stdout.split("stage ")[1]
    assert "ShuffleWriterExec" in first and "mode=Partial" in first and "DataSourceExec" in first, out.stdout
    assert "mode=FinalPartitioned" in out.stdout and "UnresolvedShuffleExec: stage=1" in out.stdout, out.stdout
    # Time pruning happens while planning here: a range with no folder reads no file.
    everything = on(cluster, "query", "--store", store, "--explain", "tcp")
    nothing = on(cluster, "query", "--store", store, "--explain", "--from", "1990-01-01", "--to", "1990-01-02", "tcp")
    assert everything.returncode == 0 and nothing.returncode == 0, nothing.stderr
    assert ".parquet" in everything.stdout and ".parquet" not in nothing.stdout, nothing.stdout
    # A result in time order is merged here, from the last stage's partitions: no stage merges.
    process = everything.stdout.split("in the query process")
    assert len(process) == 2 and "SortPreservingMergeExec" in process[1], everything.stdout
    assert "SortPreservingMergeExec" not in process[0], everything.stdout
    # The pushdown choice is made here too: an identity lookup is filtered by the Parquet reader
    # on the executors (no FilterExec over its scan), unless pushdown is forced off.
    lookup = 'dst.ip == "10.0.0.1"'
    auto = on(cluster, "query", "--store", store, "--explain", lookup)
    off = on(cluster, "query", "--store", store, "--explain", "--pushdown", "off", lookup)
    assert auto.returncode == 0 and off.returncode == 0, off.stderr
    assert not re.search(r"FilterExec: [^\n]*dst_ip[^\n]*\n\s*DataSourceExec", auto.stdout), auto.stdout
    assert re.search(r"FilterExec: [^\n]*dst_ip[^\n]*\n\s*DataSourceExec", off.stdout), off.stdout
    # Without --cluster: one plan, no stages.
    alone = run("query", "--store", store, "--explain", "tcp")
    assert alone.returncode == 0 and "stage" not in alone.stdout and "DataSourceExec" in alone.stdout


def test_a_bucket_store_on_the_cluster(cluster, s3, stores):
    s3.create_bucket("flows")
    client = s3.client()
    local = stores["demo"]
    for d, _, files in os.walk(local):
        for name in files:
            rel = os.path.relpath(os.path.join(d, name), local)
            client.upload_file(os.path.join(d, name), "flows", f"podwire/{rel}")
    url = "s3://flows/podwire"
    for kfl, conn_where, dns_where in CASES[:12]:
        alone = run("query", "--store", local, "--format", "json", kfl)
        there = on(cluster, "query", "--store", url, "--format", "json", kfl)
        assert there.returncode == 0, there.stderr
        assert canonical(json_rows(there.stdout)) == canonical(json_rows(alone.stdout)), kfl
        assert len(json_rows(there.stdout)) == len(expected(local, conn_where, dns_where)), kfl


def test_serve_with_a_cluster_answers_as_alone(cluster, stores):
    port = free_port()
    log = open(os.path.join(cluster.logs, "serve.log"), "ab")
    proc = subprocess.Popen([BIN, "serve", "--store", stores["demo"], "--listen", f"127.0.0.1:{port}",
                             "--cluster", cluster.address], stdout=log, stderr=subprocess.STDOUT, env=cluster.env)
    try:
        wait_listening(proc, port, "serve", log.name)
        body = json.dumps({"query": "tcp", "from": "2000-01-01", "format": "json"}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/query", data=body,
                                     headers={"Content-Type": "application/json"})
        got = urllib.request.urlopen(req, timeout=60).read().decode()
        alone = run("query", "--store", stores["demo"], "--format", "json", "--from", "2000-01-01", "tcp")
        assert canonical(json.loads(got)) == canonical(json_rows(alone.stdout)) and json.loads(got)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/map?from=2000-01-01", timeout=60) as r:
            assert json.loads(r.read())["edges"]
    finally:
        stop_process(proc)


def test_an_unreachable_scheduler_is_a_quick_clear_error(stores):
    closed = free_port()
    start = time.time()
    out = run("query", "--store", stores["demo"], "--cluster", f"127.0.0.1:{closed}", "tcp")
    assert out.returncode != 0
    assert f"127.0.0.1:{closed}" in out.stderr and "scheduler" in out.stderr, out.stderr
    assert time.time() - start < 20, "bounded by the connect timeout"


def test_a_cluster_without_executors_times_out_with_a_hint(tmp_path, stores):
    lonely = Cluster(str(tmp_path), os.environ.copy(), executors=0)
    try:
        start = time.time()
        out = run("query", "--store", stores["demo"], "--cluster", lonely.address, "--cluster-timeout", "3s", "tcp")
        assert out.returncode != 0
        assert "within 3s" in out.stderr and "executor" in out.stderr, out.stderr
        assert time.time() - start < 30
    finally:
        lonely.stop()


def test_an_executor_removes_shuffle_files_older_than_its_ttl(tmp_path, stores):
    """The scheduler has a job's files removed 5 minutes after it ends; --shuffle-ttl removes
    them on the executor's own clock, for jobs a restarted scheduler forgot."""
    c = Cluster(str(tmp_path), os.environ.copy(), executors=1, executor_args=["--shuffle-ttl", "2s"])
    work = os.path.join(str(tmp_path), "work-0")
    try:
        out = on(c, "query", "--store", stores["demo"], "--format", "json", "tcp")
        assert out.returncode == 0 and out.stdout, out.stderr
        assert os.listdir(work), "the job wrote no shuffle files: nothing to test"
        deadline = time.time() + 20
        while os.listdir(work) and time.time() < deadline:
            time.sleep(0.5)
        assert not os.listdir(work), f"shuffle files older than 2 s still there after 20 s: {os.listdir(work)}"
        # The executor still serves queries after its sweep.
        again = on(c, "query", "--store", stores["demo"], "--format", "json", "tcp")
        assert again.returncode == 0 and json_rows(again.stdout) == json_rows(out.stdout), again.stderr
    finally:
        c.stop()


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    return generate_store(tmp_path_factory.mktemp("cluster-big") / "store", 1_500_000, 3, 5)


def test_an_executor_killed_mid_query_loses_no_rows(tmp_path, big_store):
    c = Cluster(str(tmp_path), os.environ.copy(), executors=2)
    # Slow on purpose (about 5 s on two executors): every address hashed 600 times over.
    sql = ("SELECT src_namespace, count(*) AS n, sum(src_bytes) AS b, max(sha256(repeat(dst_ip, 600))) AS h "
           "FROM connections GROUP BY src_namespace ORDER BY src_namespace")
    try:
        alone = run("query", "--store", big_store, "--sql", "--format", "json", sql)
        assert alone.returncode == 0, alone.stderr
        want = json_rows(alone.stdout)
        proc = subprocess.Popen([BIN, "query", "--store", big_store, "--sql", "--format", "json",
                                 "--cluster", c.address, sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(1.5)
        assert proc.poll() is None, "the query ended before the executor was killed: make it slower"
        c.executors[0].kill()
        c.executors[0].wait()
        stdout, stderr = proc.communicate(timeout=300)
        if proc.returncode == 0:
            assert json_rows(stdout) == want, "rows differ after an executor died"
        else:
            assert "cluster" in stderr, f"a failure must say it was the cluster: {stderr}"
        # The next query runs on the executor left.
        again = on(c, "query", "--store", big_store, "--sql", "--format", "json", sql)
        assert again.returncode == 0, again.stderr
        assert json_rows(again.stdout) == want
    finally:
        c.stop()


def test_serve_answers_503_naming_the_scheduler_it_cannot_reach(tmp_path, stores):
    closed, port = free_port(), free_port()
    log = open(tmp_path / "serve.log", "ab")
    proc = subprocess.Popen([BIN, "serve", "--store", stores["demo"], "--listen", f"127.0.0.1:{port}",
                             "--cluster", f"127.0.0.1:{closed}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(proc, port, "serve", log.name)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/query", data=b'{"query": "tcp"}',
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=60)
        assert e.value.code == 503
        error = json.loads(e.value.read())["error"]
        assert error["class"] == "CLUSTER_FAILED" and f"127.0.0.1:{closed}" in error["message"], error
        # The service itself stays healthy.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200
    finally:
        stop_process(proc)
