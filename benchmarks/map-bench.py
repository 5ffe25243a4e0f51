#!/usr/bin/env python3
"""The connectivity map over a big store: `GET /api/v1/map` of a running `podwire serve` timed
against DuckDB running the same grouped SQL on the same Parquet files, for windows of 1 hour, 24
hours and 14 days (ending at the store's last connection) and three levels.

    benchmarks/map-bench.py STORE [RUNS]          # RUNS defaults to 5

It starts `podwire serve` (PODWIRE, default target/release/podwire) on a free loopback port,
takes the statement the map endpoint returns (`sql`), rewrites what DuckDB spells differently
(`approx_percentile_cont(p) WITHIN GROUP (ORDER BY x)` → `approx_quantile(x, p)` in older statements, the `~` regex
→ `regexp_matches`, the table → `read_parquet(…, hive_partitioning = true)`), checks that both
count the same connections and bytes, then reports the median of RUNS timed runs after one
warm-up: podwire as an HTTP request answered by a server with the store open (the JSON body read
whole, not parsed),
DuckDB as `execute().fetchall()` in this process with a connection already open. Both use every
core."""
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import duckdb

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOWS = [("1 h", 3_600_000), ("24 h", 86_400_000), ("14 d", 14 * 86_400_000)]
# MAP_BENCH_WINDOWS="1 h,24 h" runs only those.
if os.environ.get("MAP_BENCH_WINDOWS"):
    WINDOWS = [w for w in WINDOWS if w[0] in os.environ["MAP_BENCH_WINDOWS"].split(",")]
LEVELS = ["namespace", "workload", "pod"]
# MAP_BENCH_FILTERS=N adds N KFL filters drawn at random (seeded) from templates filled with
# values found in the store, each timed over the last 24 hours at every level: the target must
# hold on filters nobody tuned for, not only on the unfiltered map.
FILTERS = int(os.environ.get("MAP_BENCH_FILTERS", "0"))
TEMPLATES = [
    'src.namespace == "{ns}"',
    'dst.namespace == "{ns}" or src.namespace == "{ns2}"',
    'dst.namespace == ""',
    'dst.port == {port}',
    'tcp and outcome != "closed"',
    'error',
    'udp and dst.port == {port}',
    'dst.name == "{dns}"',
    'src.pod.startsWith("{prefix}")',
    '!(src.namespace == "{ns}") and tcp',
]


def draw_filters(con, store, n, seed=7):
    import random
    rnd = random.Random(seed)
    table = f"read_parquet('{store}/connections/date=*/hour=*/*.parquet', hive_partitioning = true)"
    pick = lambda sql: [r[0] for r in con.execute(sql).fetchall()]
    values = {
        "ns": pick(f"SELECT DISTINCT src_namespace FROM {table} WHERE src_namespace <> '' ORDER BY 1"),
        "port": pick(f"SELECT dst_port FROM {table} GROUP BY 1 ORDER BY count(*) DESC LIMIT 20"),
        "dns": pick(f"SELECT DISTINCT dst_dns_name FROM {table} WHERE dst_dns_name <> '' ORDER BY 1"),
        "prefix": pick(f"SELECT DISTINCT split_part(src_pod, '-', 1) FROM {table} WHERE src_pod <> '' ORDER BY 1"),
    }
    out = []
    for _ in range(n):
        t = rnd.choice(TEMPLATES)
        out.append(t.format(ns=rnd.choice(values["ns"]), ns2=rnd.choice(values["ns"]),
                            port=rnd.choice(values["port"]), dns=rnd.choice(values["dns"]),
                            prefix=rnd.choice(values["prefix"])))
    return out


def duck_sql(sql, store):
    sql = re.sub(r"approx_percentile_cont\(([0-9.]+)\)\s+WITHIN GROUP\s*\(ORDER BY (\w+)\)",
                 r"approx_quantile(\2, \1)", sql)
    sql = re.sub(r"(\w+) ~ ('[^']*')", r"regexp_matches(\1, \2)", sql)
    table = f"read_parquet('{store}/connections/date=*/hour=*/*.parquet', hive_partitioning = true, hive_types = {{'date': VARCHAR, 'hour': VARCHAR}})"
    return re.sub(r"\bFROM\s+connections\b", f"FROM {table}", sql)


def rfc3339(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def start(binary, store):
    """`podwire serve` on the store on a free loopback port, its base URL, a DuckDB connection,
    and the end of the store's data (epoch ms, exclusive)."""
    server = subprocess.Popen([binary, "-q", "serve", "--store", store, "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, text=True)
    base = server.stdout.readline().strip().removeprefix("listening on ")
    con = duckdb.connect()
    last = con.execute(f"""SELECT epoch_ms(max(start_ts)) FROM read_parquet(
        '{store}/connections/date=*/hour=*/*.parquet', hive_partitioning = true)""").fetchone()[0] + 1
    return server, base, con, last


def main():
    store = os.path.abspath(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    binary = os.environ.get("PODWIRE", os.path.join(HERE, "target", "release", "podwire"))
    assert os.path.exists(binary), f"no podwire at {binary} (cargo build --release -p podwire)"
    server, base, con, last = start(binary, store)
    print(f"podwire {binary}; duckdb {duckdb.__version__}; {os.cpu_count()} cores; "
          f"{runs} runs, median; store {store}")
    print("| window | level | edges | podwire s | DuckDB s | podwire / DuckDB |")
    print("|---|---|---|---|---|---|")
    cases = [(name, span, level, "") for name, span in WINDOWS for level in LEVELS]
    if FILTERS:
        cases += [("24 h", 86_400_000, level, f) for f in draw_filters(con, store, FILTERS)
                  for level in LEVELS]
    ratios = []
    try:
        for name, span, level, kfl in cases:
            if True:
                q = urllib.parse.urlencode({"from": rfc3339(last - span), "to": rfc3339(last), "level": level,
                                            "max_nodes": 20000, "query": kfl})
                url = f"{base}/api/v1/map?{q}"

                def podwire():
                    # The whole response, read but not parsed: parsing 20 MB of JSON in Python
                    # would time Python, not the server.
                    with urllib.request.urlopen(url, timeout=600) as r:
                        return r.read()

                body = json.loads(podwire())
                sql = duck_sql(body["sql"], store)
                rows = con.execute(sql).fetchall()
                names = [d[0] for d in con.description]
                # One row per edge and port (older statements: also per-edge totals, protocol NULL).
                grouped = [dict(zip(names, r)) for r in rows]
                totals = [t for t in grouped if t["protocol"] is None] or grouped
                want = (sum(t["connections"] for t in totals), sum(t["bytes_sent"] for t in totals))
                got = (sum(e["connections"] for e in body["edges"]),
                       sum(e["bytes_sent"] for e in body["edges"]))
                assert got == want, (name, level, got, want)
                times = {}
                for tool, fn in (("podwire", podwire), ("duckdb", lambda: con.execute(sql).fetchall())):
                    fn()
                    samples = []
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        fn()
                        samples.append(time.perf_counter() - t0)
                    times[tool] = statistics.median(samples)
                ratios.append(times["podwire"] / times["duckdb"])
                window = f"{name} `{kfl}`" if kfl else name
                print(f"| {window} | {level} | {len(body['edges'])} | {times['podwire']:.3f} | "
                      f"{times['duckdb']:.3f} | {ratios[-1]:.2f} |", flush=True)
        geo = statistics.geometric_mean(ratios)
        print(f"\n{len(ratios)} maps: podwire / DuckDB geometric mean {geo:.2f}, "
              f"max {max(ratios):.2f}, over 1: {sum(r > 1 for r in ratios)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
