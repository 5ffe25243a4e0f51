"""The store as Delta Lake tables, read back by the `deltalake` package from PyPI (delta-rs's
Python reader, into pyarrow): what `standalone` writes, what `podwire store convert` makes of a
store written without a log, what `podwire expire` removes, what `podwire store check` reports,
and that `podwire query` reads the snapshot, not the folders. Folders and an S3-compatible
bucket (moto on loopback)."""
import collections
import datetime as dt
import glob
import json
import os
import shutil
import subprocess
import time

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from podwire_bin import BIN, PCAPS, generate_store, run
from s3_server import S3Server

try:
    import deltalake
except ImportError as e:  # a missing prerequisite fails, with how to get it
    raise AssertionError(f"the deltalake package is missing: python3 -m pip install deltalake "
                         f"(tests/run-all.sh does) ({e})")

DAY2 = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)  # gen_store's second day
TABLES = ("connections", "dns", "packets", "capture_stats")


def delta_rows(uri, storage_options=None, columns=("conn_id", "start_ts", "date", "hour")):
    """The rows of the Delta table at `uri` as a multiset of tuples of `columns`."""
    t = deltalake.DeltaTable(uri, storage_options=storage_options).to_pyarrow_table(columns=list(columns))
    return collections.Counter(zip(*(t.column(c).to_pylist() for c in columns)))


def folder_rows(path, columns=("conn_id", "start_ts", "date", "hour")):
    """The same from every Parquet file in the table's hour folders (a plain glob reader)."""
    part = ds.partitioning(pa.schema([("date", pa.string()), ("hour", pa.string())]), flavor="hive")
    t = ds.dataset(path, format="parquet", partitioning=part).to_table(columns=list(columns))
    return collections.Counter(zip(*(t.column(c).to_pylist() for c in columns)))


def kfl_count(store, env=None):
    out = subprocess.run([BIN, "query", "--store", store, "--format", "csv", "tcp or udp or icmp"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return len(out.stdout.splitlines()) - 1


def test_standalone_writes_delta_tables_a_delta_reader_reads_whole(tmp_path):
    pcap = os.path.join(PCAPS, "1kxun.pcap")
    assert os.path.exists(pcap), f"missing {pcap}: the repo must sit beside shared/"
    out = run("standalone", "--pcap", pcap, "--store", str(tmp_path))
    assert out.returncode == 0, out.stderr
    conns = str(tmp_path / "connections")
    t = deltalake.DeltaTable(conns)
    assert t.metadata().partition_columns == ["date", "hour"]
    got = delta_rows(conns)
    assert got == folder_rows(conns) and sum(got.values()) > 100, sum(got.values())
    # Partition values as the folder names say, and the start time inside the hour.
    for (_, start, date, hour), _n in got.items():
        assert start.strftime("%Y-%m-%d") == date and start.strftime("%H") == hour
    # The log's per-file statistics: row counts that add up, and time bounds that hold.
    adds = pa.table(t.get_add_actions(flatten=True)).to_pylist()
    assert sum(a["num_records"] for a in adds) == sum(got.values())
    for a in adds:
        f = pq.read_table(os.path.join(conns, a["path"]), columns=["start_ts"]).column("start_ts").to_pylist()
        assert len(f) == a["num_records"], a
        assert a["min.start_ts"] <= min(f) and max(f) <= a["max.start_ts"], a
    assert kfl_count(str(tmp_path)) == sum(got.values())
    import polars as pl
    assert pl.scan_delta(conns).select(pl.len()).collect().item() == sum(got.values())
    check = run("store", "check", "--store", str(tmp_path))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "connections: " in check.stdout and "0 problem(s)" in check.stdout, check.stdout


@pytest.fixture(scope="module")
def plain_store(tmp_path_factory):
    """A store written without a log, as podwire did before: the generator's store with its
    logs taken away."""
    store = generate_store(tmp_path_factory.mktemp("gen"), 30000, 2, 3)
    for table in TABLES:
        shutil.rmtree(os.path.join(store, table, "_delta_log"), ignore_errors=True)
    return store


def test_convert_check_orphans_and_expire_in_a_folder(plain_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(plain_store, store)
    conns = str(store / "connections")
    before = folder_rows(conns)
    assert not os.path.exists(os.path.join(conns, "_delta_log"))
    assert kfl_count(str(store)) == sum(before.values()), "a store without a log is read from its folders"

    out = run("store", "convert", "--store", str(store))
    assert out.returncode == 0, out.stderr
    assert "connections: a Delta table now" in out.stderr, out.stderr
    assert delta_rows(conns) == before
    again = run("store", "convert", "--store", str(store))
    assert "already a Delta table" in again.stderr, again.stderr

    # A file outside the log (a write that died before its commit): not read by podwire query,
    # reported by check once older than the grace period, deleted by vacuum.
    src = sorted(glob.glob(os.path.join(conns, "date=2026-11-02", "hour=05", "*.parquet")))[0]
    orphan = os.path.join(os.path.dirname(src), "crashed-write-00000.parquet")
    shutil.copy(src, orphan)
    two_hours_ago = time.time() - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))
    assert kfl_count(str(store)) == sum(before.values()), "the orphan's rows are not in the table"
    check = run("store", "check", "--store", str(store))
    assert check.returncode == 1, check.stdout + check.stderr
    assert "orphan: date=2026-11-02/hour=05/crashed-write-00000.parquet" in check.stdout, check.stdout
    vac = run("store", "vacuum", "--store", str(store), "--tables", "connections")
    assert vac.returncode == 0, vac.stderr
    assert not os.path.exists(orphan), vac.stdout + vac.stderr
    assert os.path.exists(src), "vacuum deletes no file of the snapshot"
    assert run("store", "check", "--store", str(store)).returncode == 0

    # Expiry: day 1 leaves the snapshot in one commit; its files stay for the grace period.
    keep = f"{int((dt.datetime.now(dt.timezone.utc) - DAY2).total_seconds())}s"
    out = run("expire", "--store", str(store), "--keep", keep)
    assert out.returncode == 0, out.stderr
    assert "deleted 24 partitions" in out.stderr, out.stderr
    day2 = collections.Counter({k: n for k, n in before.items() if k[2] == "2026-11-02"})
    assert delta_rows(conns) == day2
    assert kfl_count(str(store)) == sum(day2.values())
    assert glob.glob(os.path.join(conns, "date=2026-11-01", "hour=00", "*.parquet")), \
        "removed files stay readable for the grace period"
    hist = run("store", "history", "--store", str(store), "--tables", "connections", "--json")
    assert hist.returncode == 0, hist.stderr
    import json
    ops = [json.loads(line)["operation"] for line in hist.stdout.splitlines()]
    assert ops[0] == "DELETE" and ops[-1] == "CREATE TABLE", ops
    assert run("store", "check", "--store", str(store)).returncode == 0


def test_convert_expire_and_query_in_a_bucket(plain_store):
    s3 = S3Server()
    try:
        s3.create_bucket("flows")
        client = s3.client()
        for d, _, files in os.walk(plain_store):
            for name in files:
                rel = os.path.relpath(os.path.join(d, name), plain_store)
                client.upload_file(os.path.join(d, name), "flows", f"podwire/{rel}")
        url = "s3://flows/podwire"
        before = folder_rows(os.path.join(plain_store, "connections"))
        out = subprocess.run([BIN, "store", "convert", "--store", url], capture_output=True, text=True, env=s3.env)
        assert out.returncode == 0, out.stderr
        opts = {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        assert delta_rows(f"{url}/connections", opts) == before
        keep = f"{int((dt.datetime.now(dt.timezone.utc) - DAY2).total_seconds())}s"
        out = subprocess.run([BIN, "expire", "--store", url, "--keep", keep], capture_output=True, text=True,
                             env=s3.env)
        assert out.returncode == 0, out.stderr
        day2 = collections.Counter({k: n for k, n in before.items() if k[2] == "2026-11-02"})
        assert delta_rows(f"{url}/connections", opts) == day2
        assert kfl_count(url, env=s3.env) == sum(day2.values())
        check = subprocess.run([BIN, "store", "check", "--store", url], capture_output=True, text=True, env=s3.env)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        s3.stop()


def all_columns(table):
    """A table's rows as a multiset over every column (values by their repr, lists included)."""
    cols = sorted(table.column_names)
    return collections.Counter(tuple(repr(r[c]) for c in cols) for r in table.to_pylist())


def files_per_hour(uri, date):
    """The number of files in the snapshot of each hour of `date`."""
    adds = pa.table(deltalake.DeltaTable(uri).get_add_actions(flatten=True)).to_pylist()
    return collections.Counter(a["partition.hour"] for a in adds if a["partition.date"] == date)


def query_lines(store, *args, env=None):
    """`podwire query` over the generator's day as sorted CSV lines (the header first)."""
    out = subprocess.run([BIN, "query", "--store", store, "--format", "csv", "--from", "2026-11-01",
                          "--to", "2026-11-02", *args, "tcp or udp or icmp"], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    return lines[:1] + sorted(lines[1:])


def test_compaction_while_writing_and_reading_and_time_travel(tmp_path):
    """`podwire store compact` on a store of 5-minute files while `standalone` runs append to
    the same table and two readers (deltalake → pyarrow, and `podwire query`) loop over it:
    every snapshot either reader sees holds every committed row once; afterwards each closed
    hour is one file with the same rows; `--as-of` a version before the compaction reads the
    same rows as after, in the CLI and the API."""
    import threading
    store = generate_store(tmp_path / "store", 20000, 1, 5, "--files-per-hour", "12")
    conns = os.path.join(store, "connections")
    day = "2026-11-01"
    before_files = files_per_hour(conns, day)
    assert len(before_files) == 24 and min(before_files.values()) >= 10, before_files
    table = deltalake.DeltaTable(conns)
    v0 = table.version()
    keys = ("conn_id", "start_ts", "src_bytes", "date", "hour")
    before = all_columns(table.to_pyarrow_table())
    before_keys = delta_rows(conns, columns=keys)
    want_lines = query_lines(store)
    assert len(want_lines) - 1 == sum(before_keys.values()) > 10000

    # The writer: standalone runs of captures whose hours (years ago) are closed, so compaction
    # takes them too, possibly between two of their commits.
    pcaps = [os.path.join(PCAPS, p) for p in ("reddit.pcap", "gnutella.pcap", "synscan.pcapng",
                                               "1kxun.pcap", "alexa-app.pcapng")]
    stop = threading.Event()
    problems, seen_versions, cli_reads = [], set(), [0]

    def writer():
        for p in pcaps:
            out = subprocess.run([BIN, "standalone", "--pcap", p, "--store", store], capture_output=True, text=True)
            if out.returncode != 0:
                problems.append(f"standalone {p}: {out.stderr}")

    def delta_reader():
        while not stop.is_set():
            t = deltalake.DeltaTable(conns)
            rows = t.to_pyarrow_table(columns=list(keys))
            got = collections.Counter(zip(*(rows.column(c).to_pylist() for c in keys)))
            mine = collections.Counter({k: n for k, n in got.items() if k[3] == day})
            if mine != before_keys:
                problems.append(f"version {t.version()}: {sum(mine.values())} rows of the day, "
                                f"want {sum(before_keys.values())}")
            dup = [k for k, n in got.items() if k[3] != day and n > 1]
            if dup:
                problems.append(f"version {t.version()}: the writer's rows twice: {dup[:3]}")
            seen_versions.add(t.version())

    def cli_reader():
        while not stop.is_set():
            if query_lines(store) != want_lines:
                problems.append("podwire query saw other rows of the day")
            cli_reads[0] += 1

    threads = [threading.Thread(target=f) for f in (delta_reader, cli_reader)]
    for t in threads:
        t.start()
    w = threading.Thread(target=writer)
    w.start()
    try:
        time.sleep(1)
        out = run("store", "compact", "--store", store, "--older-than", "2h")
        w.join()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert out.returncode == 0, out.stderr
    assert not problems, problems[:5]
    assert cli_reads[0] >= 2 and len(seen_versions) >= 3, (cli_reads, seen_versions)

    # Each closed hour is one file now, with the same rows (every column).
    after_files = files_per_hour(conns, day)
    assert sorted(after_files) == sorted(before_files) and set(after_files.values()) == {1}, after_files
    final = deltalake.DeltaTable(conns).to_pyarrow_table()
    day_rows = final.filter(pa.compute.equal(final.column("date"), day))
    assert all_columns(day_rows) == before
    # The merged files carry Bloom filters of the entity columns, which DuckDB reads: a pod of
    # the hour is not excluded, a pod of no hour is; ingest's small files (the generator's
    # slices, still in the folders) carry none.
    import duckdb
    merged = [u for u in deltalake.DeltaTable(conns).file_uris() if f"date={day}" in u]
    small = [f for f in glob.glob(f"{conns}/date={day}/hour=*/*.parquet") if "compacted-" not in f]
    assert len(merged) == 24 and small

    def blooms(path):
        return duckdb.sql(f"SELECT list(path_in_schema ORDER BY path_in_schema) FROM parquet_metadata('{path}') "
                          "WHERE bloom_filter_offset IS NOT NULL").fetchall()[0][0] or []

    assert {"dst_pod", "src_ip", "dst_ip", "src_name", "dst_name"} <= set(blooms(merged[0])), blooms(merged[0])
    assert "src_namespace" not in blooms(merged[0]) and blooms(small[0]) == []
    for path in merged[:6]:
        pod = duckdb.sql(f"SELECT src_pod FROM read_parquet('{path}') WHERE src_pod <> '' LIMIT 1").fetchall()[0][0]
        probe = f"SELECT bool_and(bloom_filter_excludes) FROM parquet_bloom_probe('{path}', 'src_pod', ?)"
        assert duckdb.execute(probe, [pod]).fetchall()[0][0] is False, (path, pod)
        assert duckdb.execute(probe, ["no-such-pod-7f3a9c"]).fetchall()[0][0] is True, path
    # What a reader of the folders sees until the vacuum: the merged files and the small ones.
    in_folders = collections.Counter({k: n for k, n in folder_rows(conns, keys).items() if k[3] == day})
    assert in_folders == before_keys + before_keys
    # The writer's rows, each once: as the same captures written alone into a store of their own.
    ref = tmp_path / "ref"
    for p in pcaps:
        assert run("standalone", "--pcap", p, "--store", str(ref)).returncode == 0
    ours = collections.Counter({k: n for k, n in delta_rows(conns, columns=keys).items() if k[3] != day})
    assert ours == delta_rows(str(ref / "connections"), columns=keys) and sum(ours.values()) > 1000
    ops = [json.loads(line)["operation"] for line in
           run("store", "history", "--store", store, "--tables", "connections", "--json").stdout.splitlines()]
    assert "OPTIMIZE" in ops, ops
    check = run("store", "check", "--store", store)
    assert check.returncode == 0, check.stdout + check.stderr

    # Time travel: the version before compaction reads the small files (kept for the grace
    # period) and gives the same rows; a time before the first commit, an empty table.
    assert query_lines(store, "--as-of", str(v0)) == want_lines
    assert query_lines(store) == want_lines
    assert query_lines(store, "--as-of", "2020-01-01T00:00:00Z") == want_lines[:1]
    bad = subprocess.run([BIN, "query", "--store", store, "--as-of", "99999", "tcp"], capture_output=True, text=True)
    assert bad.returncode == 1 and "--as-of" in bad.stderr and "no version 99999" in bad.stderr, bad.stderr

    from test_api import Server
    s = Server(store)
    try:
        body = {"query": "tcp or udp or icmp", "from": "2026-11-01", "to": "2026-11-02", "format": "csv"}
        for as_of in (str(v0), None):
            status, _, payload = s.request("POST", "/api/v1/query", {**body, "as_of": as_of})
            assert status == 200, payload
            lines = payload.decode().splitlines()
            assert lines[:1] + sorted(lines[1:]) == want_lines, as_of
        status, err = s.json("POST", "/api/v1/query", {**body, "as_of": "99999"})
        assert status == 400 and err["error"]["class"] == "BAD_AS_OF", err
        status, err = s.json("POST", "/api/v1/query", {**body, "as_of": "yesterday-ish"})
        assert status == 400, err
    finally:
        assert s.stop() == 0


def test_serve_sees_commits_made_after_it_started_and_compaction(tmp_path):
    """A running `podwire serve` answers from the table's newest snapshot: rows committed after
    its first query are in its answers within the freshness target (10 s), and after a
    compaction it reads the merged files, with the same rows. (DataFusion's own list-files
    cache once kept the first listing for the life of the process.) Checked against the
    deltalake package's reading of the same table."""
    from test_api import Server
    store = generate_store(tmp_path / "store", 5000, 1, 7, "--files-per-hour", "6")
    conns = os.path.join(store, "connections")
    sql = {"sql": "SELECT count(*) AS n, sum(src_port) AS p FROM connections"}

    def answer(s):
        status, rows = s.json("POST", "/api/v1/sql", sql)
        assert status == 200, rows
        return (rows[0]["n"], rows[0]["p"])

    def reference():
        t = deltalake.DeltaTable(conns).to_pyarrow_table(columns=["src_port"])
        return (t.num_rows, pa.compute.sum(t.column("src_port")).as_py())

    def live_files():
        return len(deltalake.DeltaTable(conns).file_uris())

    def settles(s, want, what):
        deadline = time.time() + 10
        while (got := answer(s)) != want:
            assert time.time() < deadline, f"{what}: serve still answers {got}, the table holds {want}"
            time.sleep(0.2)

    s = Server(store)
    try:
        first = reference()
        assert answer(s) == first and first[0] > 100, first
        now = first
        for p in ("1kxun.pcap", "reddit.pcap", "gnutella.pcap"):
            assert run("standalone", "--pcap", os.path.join(PCAPS, p), "--store", store).returncode == 0
            now = reference()
            assert now[0] > first[0]
            settles(s, now, f"after standalone {p}")
        before = live_files()
        out = run("store", "compact", "--store", store, "--older-than", "2h")
        assert out.returncode == 0, out.stderr
        assert live_files() < before and reference() == now, (before, live_files())
        settles(s, now, "after store compact")
    finally:
        assert s.stop() == 0
