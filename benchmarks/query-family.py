#!/usr/bin/env python3
"""KFL filters nobody tuned for, against DuckDB on the same store.

Draws N filters at random (seeded) from the values the store holds: namespaces, workloads, pods,
names, addresses, ports, outcomes, nodes, RTT and byte bounds and time windows, combined with
`and`, `or` and `!`, in two forms: connections-only (`tcp and (...)`, `udp and (...)`: every
connections column comes back) and over both tables (the columns `connections` and `dns` share).
Each filter is rendered twice from one description: as KFL, and as the SQL a DuckDB user would
write for the same rows. Before anything is timed, both must return the same rows (count, and
the sums of conn_id and src_port); a mismatch stops the run.

Then, per filter:
  * process against process: `podwire query --format csv` and a Python process running DuckDB's
    `COPY (SQL) TO '/dev/stdout' (FORMAT csv, HEADER)`, both to /dev/null, median of RUNS, with
    each process's peak anonymous memory (RssAnon sampled from /proc every 2 ms; mapped store
    pages are file memory and not counted) and peak RSS;
  * in-process: `query_explain --mode time` (the store open, CSV to a sink, as `podwire serve`
    runs a query) against DuckDB's COPY to /dev/null in one Python process with its connection
    open, median of RUNS after a warm-up;
  * a process ratio above 1.0 is measured again with 2×RUNS runs, to tell noise from a loss.

    benchmarks/query-family.py STORE [--filters 60] [--seed 1] [--runs 3] [--json OUT]
        [--pushdown auto|on|off] [--only connections|both] [--ids 1,3,8] [--check-only]

`--check-only` compares rows (podwire with its pushdown choice forced each way and with its
filter's terms in written order, and DuckDB) and times nothing: the test suite runs it on a small store. Environment: PODWIRE (default
target/release/podwire), QUERY_EXPLAIN (default target/release/query_explain).
"""
import argparse
import csv
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The columns KFL returns when a filter can match both tables (`podwire translate` shows them).
COMMON = ("conn_id, {proto} AS protocol, src_ip, src_port, dst_ip, dst_port, outcome, node, "
          "src_name, src_namespace, src_pod, src_workload, src_workload_kind, src_service, "
          "src_node, dst_name, dst_namespace, dst_pod, dst_workload, dst_workload_kind, "
          "dst_service, dst_node")


def kfl_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


class Values:
    """What the store holds, to draw filters from."""

    def __init__(self, con, conns):
        def distinct(col, limit=4000):
            rows = con.execute(f"SELECT DISTINCT {col} FROM {conns} WHERE {col} <> '' "
                               f"ORDER BY 1 LIMIT {limit}").fetchall()
            return [r[0] for r in rows]

        self.namespaces = distinct("dst_namespace") + [""]
        self.workloads = distinct("dst_workload")
        self.pods = distinct("src_pod")
        self.names = distinct("dst_name")
        self.ips = distinct("dst_ip")
        self.nodes = distinct("node")
        self.outcomes = distinct("outcome")
        self.ports = [r[0] for r in con.execute(
            f"SELECT DISTINCT dst_port FROM {conns} ORDER BY 1").fetchall()]
        self.rtt = [r for r in con.execute(
            f"SELECT quantile_disc(handshake_rtt_us, [0.5, 0.9, 0.99, 0.999]) FROM {conns}"
        ).fetchone()[0]]
        self.bytes = [r for r in con.execute(
            f"SELECT quantile_disc(src_bytes + dst_bytes, [0.5, 0.9, 0.99, 0.999]) FROM {conns}"
        ).fetchone()[0]]
        # Rows to take values from, so that the conditions of one filter can hold together.
        self.rows = con.execute(
            f"SELECT src_namespace, dst_namespace, src_workload, dst_workload, src_pod, dst_pod, "
            f"src_name, dst_name, src_ip, dst_ip, dst_port, outcome, node FROM {conns} "
            f"USING SAMPLE reservoir(2000 ROWS) REPEATABLE (7)").fetchall()
        lo, hi = con.execute(f"SELECT min(start_ts), max(start_ts) FROM {conns}").fetchone()
        self.first_hour = lo.replace(minute=0, second=0, microsecond=0)
        self.last_hour = hi.replace(minute=0, second=0, microsecond=0)


def atom(rng, v, conn_only, row):
    """One condition as (KFL, SQL, negatable): its value from `row` (a sampled row of the store,
    shared by the filter's conditions) or, for one condition in three, from all the values."""
    side = rng.choice(["src", "dst"])
    cols = ["src_namespace", "dst_namespace", "src_workload", "dst_workload", "src_pod",
            "dst_pod", "src_name", "dst_name", "src_ip", "dst_ip", "dst_port", "outcome", "node"]

    def pick(col, pool):
        if rng.random() < 0.67:
            return row[cols.index(col)]
        return rng.choice(pool)
    kinds = ["namespace", "namespace", "workload", "pod", "name", "name_prefix", "ip", "port",
             "outcome", "node"]
    if conn_only:
        kinds += ["rtt", "bytes", "retransmits"]
    kind = rng.choice(kinds)
    if kind == "namespace":
        x = pick(f"{side}_namespace", v.namespaces)
        return f"{side}.namespace == {kfl_str(x)}", f"{side}_namespace = {sql_str(x)}", True
    if kind == "workload":
        x = pick(f"{side}_workload", v.workloads)
        return f"{side}.workload == {kfl_str(x)}", f"{side}_workload = {sql_str(x)}", True
    if kind == "pod":
        x = pick(f"{side}_pod", v.pods)
        return f"{side}.pod.name == {kfl_str(x)}", f"{side}_pod = {sql_str(x)}", True
    if kind == "name":
        x = pick("dst_name", v.names)
        return f"dst.name == {kfl_str(x)}", f"dst_name = {sql_str(x)}", True
    if kind == "name_prefix":
        x = pick(f"{side}_name", v.names)[:rng.randint(2, 5)]
        return (f"{side}.name.startsWith({kfl_str(x)})", f"starts_with({side}_name, {sql_str(x)})",
                True)
    if kind == "ip":
        x = pick(f"{side}_ip", v.ips)
        return f"{side}.ip == {kfl_str(x)}", f"{side}_ip = {sql_str(x)}", True
    if kind == "port":
        x = pick("dst_port", v.ports)
        op = rng.choice(["==", "==", ">=", "<"])
        return f"dst.port {op} {x}", f"dst_port {'=' if op == '==' else op} {x}", True
    if kind == "outcome":
        x = pick("outcome", v.outcomes)
        return f"outcome == {kfl_str(x)}", f"outcome = {sql_str(x)}", True
    if kind == "node":
        x = pick("node", v.nodes)
        return f"node.name == {kfl_str(x)}", f"node = {sql_str(x)}", True
    if kind == "rtt":
        x = rng.choice(v.rtt)
        # Rows without a handshake have no RTT: not negated (KFL and SQL agree on `>` only).
        return f"rtt > {x}", f"handshake_rtt_us > {x}", False
    if kind == "bytes":
        x = rng.choice(v.bytes)
        return f"bytes > {x}", f"(src_bytes + dst_bytes) > {x}", True
    return "retransmits > 0", "(src_retransmits + dst_retransmits) > 0", True


def expression(rng, v, conn_only):
    """1 to 3 conditions with `and`/`or`, some negated, as (KFL, SQL)."""
    n = rng.choice([1, 2, 2, 3])
    row = rng.choice(v.rows)
    parts = []
    for _ in range(n):
        k, s, negatable = atom(rng, v, conn_only, row)
        if negatable and rng.random() < 0.2:
            k, s = f"!({k})", f"NOT ({s})"
        parts.append((k, s))
    k, s = parts[0]
    for k2, s2 in parts[1:]:
        if rng.random() < 0.6:
            k, s = f"({k}) and ({k2})", f"({s}) AND ({s2})"
        else:
            k, s = f"({k}) or ({k2})", f"({s}) OR ({s2})"
    return k, s


def window(rng, v):
    """`--from/--to` for some filters: 1 h to 3 days inside the store's range, or None."""
    if rng.random() < 0.65:
        return None
    hours = rng.choice([1, 6, 24, 72])
    span = int((v.last_hour - v.first_hour).total_seconds() // 3600) + 1
    start = v.first_hour + dt.timedelta(hours=rng.randrange(max(1, span - hours + 1)))
    return start, start + dt.timedelta(hours=hours)


def iso(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def draw(rng, v, n, only):
    filters = []
    for i in range(n):
        form = only or ("connections" if i % 2 == 0 else "both")
        conn_only = form == "connections"
        k, s = expression(rng, v, conn_only)
        w = window(rng, v)
        if conn_only:
            proto = rng.choice(["tcp", "tcp", "udp"])
            k, s = f"{proto} and ({k})", f"protocol = '{proto}' AND ({s})"
        filters.append({"id": i + 1, "form": form, "kfl": k, "where": s, "window": w})
    return filters


def duckdb_sql(f, conns, dns, have_dns):
    where = f["where"]
    w = f["window"]
    def ranged(ts):
        if not w:
            return where
        lo, hi = w
        # The date predicate lets DuckDB skip partitions, as podwire skips hour folders.
        return (f"({where}) AND {ts} >= TIMESTAMPTZ '{iso(lo)}' AND {ts} < TIMESTAMPTZ '{iso(hi)}'"
                f" AND date >= DATE '{lo.date()}' AND date <= DATE '{hi.date()}'")
    if f["form"] == "connections":
        return (f"SELECT * EXCLUDE (date, hour) FROM {conns} WHERE {ranged('start_ts')} "
                f"ORDER BY start_ts, conn_id")
    sql = (f"SELECT 'connections' AS entry_type, start_ts AS ts, {COMMON.format(proto='protocol')} "
           f"FROM {conns} WHERE {ranged('start_ts')}")
    if have_dns:
        sql += (f" UNION ALL SELECT 'dns' AS entry_type, ts, {COMMON.format(proto=repr('dns'))} "
                f"FROM {dns} WHERE {ranged('ts')}")
    return sql + " ORDER BY ts, conn_id"


def podwire_args(f):
    args = []
    if f["window"]:
        args += ["--from", iso(f["window"][0]), "--to", iso(f["window"][1])]
    return args


def check_csv(path):
    """Rows, sum(conn_id) and sum(src_port) of a CSV podwire wrote."""
    n = s = p = 0
    with open(path, newline="") as fh:
        r = csv.reader(fh)
        head = next(r, None)
        if head is None:
            return (0, 0, 0)
        i, j = head.index("conn_id"), head.index("src_port")
        for row in r:
            n += 1
            s += int(row[i])
            p += int(row[j])
    return (n, s, p)


def run_measured(cmd, env=None):
    """Runs `cmd` with stdout to /dev/null: (seconds, peak RssAnon MB, peak RSS MB)."""
    with open(os.devnull, "wb") as null:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=null, stderr=subprocess.PIPE, env=env)
        peak = {"anon": 0, "rss": 0}

        def sample():
            path = f"/proc/{proc.pid}/status"
            while proc.poll() is None:
                try:
                    with open(path) as st:
                        for line in st:
                            if line.startswith("RssAnon:"):
                                peak["anon"] = max(peak["anon"], int(line.split()[1]))
                            elif line.startswith("VmHWM:"):
                                peak["rss"] = max(peak["rss"], int(line.split()[1]))
                except (FileNotFoundError, ProcessLookupError):
                    break
                time.sleep(0.002)

        th = threading.Thread(target=sample)
        th.start()
        _, err = proc.communicate()
        secs = time.perf_counter() - t0
        th.join()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode(errors='replace')}")
    return secs, peak["anon"] / 1024, peak["rss"] / 1024


def duckdb_in_process(con, sql, runs):
    """Median seconds of DuckDB's COPY of `sql` as CSV to /dev/null on `con`, after a warm-up."""
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        con.execute(f"COPY ({sql}) TO '/dev/null' (FORMAT csv, HEADER)")
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def median_of(runs, cmd):
    got = [run_measured(cmd) for _ in range(runs)]
    return (statistics.median(g[0] for g in got), max(g[1] for g in got), max(g[2] for g in got))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--filters", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--pushdown", choices=["auto", "on", "off"], default="auto",
                    help="podwire's filter pushdown for the in-process timing (default: auto)")
    ap.add_argument("--compare-pushdown", action="store_true",
                    help="also time podwire in-process with pushdown forced on and off")
    ap.add_argument("--baseline-explain", metavar="PATH",
                    help="also time this query_explain (another build) in-process, its own choice")
    ap.add_argument("--only", choices=["connections", "both"])
    ap.add_argument("--ids", help="check and time only these of the drawn filters (1,3,8): "
                    "to re-measure a few after a change")
    ap.add_argument("--check-only", action="store_true",
                    help="compare rows only: podwire (pushdown auto, on and off) and DuckDB")
    a = ap.parse_args()

    import duckdb
    podwire = os.environ.get("PODWIRE", os.path.join(HERE, "target/release/podwire"))
    explain = os.environ.get("QUERY_EXPLAIN", os.path.join(HERE, "target/release/query_explain"))
    for b in [podwire] + ([] if a.check_only else [explain]):
        if not os.access(b, os.X_OK):
            sys.exit(f"no binary at {b}: cargo build --release -p podwire -p podwire-benchmarks "
                     "(or set PODWIRE / QUERY_EXPLAIN)")
    store = os.path.abspath(a.store)
    conns = f"read_parquet('{store}/connections/date=*/hour=*/*.parquet', hive_partitioning = true)"
    dns = f"read_parquet('{store}/dns/date=*/hour=*/*.parquet', hive_partitioning = true)"
    have_dns = any(os.scandir(os.path.join(store, "dns"))) if os.path.isdir(
        os.path.join(store, "dns")) else False
    con = duckdb.connect()
    v = Values(con, conns)
    rng = random.Random(a.seed)
    filters = draw(rng, v, a.filters, a.only)
    if a.ids:
        wanted = {int(i) for i in a.ids.split(",")}
        filters = [f for f in filters if f["id"] in wanted]
    tmp = tempfile.mkdtemp(prefix="query-family-")
    print(f"store: {store}; {len(filters)} filters, seed {a.seed}; duckdb {duckdb.__version__}; "
          f"runs {a.runs}; {os.cpu_count()} cores", flush=True)

    # 1. The same rows from both, for every filter, before any timing.
    for f in filters:
        f["sql"] = duckdb_sql(f, conns, dns, have_dns)
        n, s, p = con.execute(
            f"SELECT count(*), coalesce(sum(conn_id::HUGEINT), 0), "
            f"coalesce(sum(src_port::HUGEINT), 0) FROM ({f['sql']})").fetchone()
        want = (int(n), int(s), int(p))
        # (pushdown, filter order): the engine's choices, then each forced.
        modes = [("auto", "sampled")]
        if a.check_only:
            modes += [("on", "sampled"), ("off", "sampled"), ("auto", "written")]
        for mode, order in modes:
            out = os.path.join(tmp, "out.csv")
            env = dict(os.environ, PODWIRE_PUSHDOWN=mode, PODWIRE_FILTER_ORDER=order)
            with open(out, "wb") as fh:
                r = subprocess.run([podwire, "query", "--store", store, "--format", "csv", "-q",
                                    *podwire_args(f), f["kfl"]], stdout=fh,
                                   stderr=subprocess.PIPE, env=env)
            if r.returncode != 0:
                sys.exit(f"filter {f['id']} failed in podwire: {f['kfl']}\n"
                         f"{r.stderr.decode(errors='replace')}")
            got = check_csv(out)
            if got != want:
                sys.exit(f"MISMATCH on filter {f['id']} (pushdown {mode}, order {order}): "
                         f"{f['kfl']} "
                         f"{podwire_args(f)}\n  podwire rows/sum(conn_id)/sum(src_port) = {got}, "
                         f"DuckDB = {want}\n  SQL: {f['sql']}")
        f["rows"] = want[0]
        # What share of the rows in the filter's range it keeps (what the pushdown choice
        # estimates from a sample).
        every = duckdb_sql(dict(f, where="TRUE"), conns, dns, have_dns)
        f["in_range"] = con.execute(f"SELECT count(*) FROM ({every})").fetchone()[0]
        f["kept"] = f["rows"] / f["in_range"] if f["in_range"] else 0.0
    print(f"rows equal on all {len(filters)} filters"
          + (" (podwire with pushdown auto, on and off; filter terms in sampled and written order)"
             if a.check_only else "")
          + f"; non-empty results: {sum(1 for f in filters if f['rows'] > 0)}", flush=True)
    if a.check_only:
        return

    # 2. Process against process, and in-process.
    pyfile = os.path.join(tmp, "duck.py")
    with open(pyfile, "w") as fh:
        fh.write("import duckdb, sys\nsql = open(sys.argv[1]).read()\n"
                 "duckdb.connect().execute(f\"COPY ({sql}) TO '/dev/stdout' (FORMAT csv, HEADER)\")\n")
    for f in filters:
        sqlfile = os.path.join(tmp, f"{f['id']}.sql")
        with open(sqlfile, "w") as fh:
            fh.write(f["sql"])
        pw = [podwire, "query", "--store", store, "--format", "csv", "-q", *podwire_args(f),
              f["kfl"]]
        dk = [sys.executable, pyfile, sqlfile]
        run_measured(pw), run_measured(dk)  # warm-up
        f["pw"], f["pw_anon"], f["pw_rss"] = median_of(a.runs, pw)
        f["dk"], f["dk_anon"], f["dk_rss"] = median_of(a.runs, dk)
        f["ratio"] = f["pw"] / f["dk"]
        if f["ratio"] > 1.0:
            f["first_ratio"] = f["ratio"]
            f["pw"], _, _ = median_of(2 * a.runs, pw)
            f["dk"], _, _ = median_of(2 * a.runs, dk)
            f["ratio"] = f["pw"] / f["dk"]
        for mode in [a.pushdown] + (["on", "off"] if a.compare_pushdown else []):
            out = subprocess.run([explain, "--store", store, "--mode", "time", "--runs",
                                  str(a.runs), "--pushdown", mode, *podwire_args(f), f["kfl"]],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"query_explain failed on filter {f['id']}: {out.stderr}")
            marker = "run and write CSV "
            line = next((l for l in out.stdout.splitlines() if marker in l), None)
            if line is None:
                sys.exit(f"query_explain printed no timing for filter {f['id']}:\n{out.stdout}")
            f["pw_in_" + mode] = float(line.split(marker)[1].split()[0])
        f["pw_in"] = f["pw_in_" + a.pushdown]
        if a.baseline_explain:
            out = subprocess.run([a.baseline_explain, "--store", store, "--mode", "time", "--runs",
                                  str(a.runs), *podwire_args(f), f["kfl"]],
                                 capture_output=True, text=True)
            line = next((l for l in out.stdout.splitlines() if marker in l), None)
            if out.returncode != 0 or line is None:
                sys.exit(f"the baseline query_explain failed on filter {f['id']}: {out.stderr}")
            f["pw_in_base"] = float(line.split(marker)[1].split()[0])
        f["dk_in"] = duckdb_in_process(con, f["sql"], a.runs)
        f["ratio_in"] = f["pw_in"] / f["dk_in"]
        print(f"filter {f['id']:>3} {f['form']:<11} rows {f['rows']:>9,} ({100 * f['kept']:.2f} %): process {f['pw']:.3f} s "
              f"vs {f['dk']:.3f} s ({f['ratio']:.2f}), in-process {f['pw_in']:.3f} vs "
              f"{f['dk_in']:.3f} ({f['ratio_in']:.2f}), anon MB {f['pw_anon']:.0f} vs "
              f"{f['dk_anon']:.0f}"
              + (f"; in-process pushdown on {f['pw_in_on']:.3f}, off {f['pw_in_off']:.3f}"
                 if a.compare_pushdown else "")
              + (f"; baseline build {f['pw_in_base']:.3f}" if a.baseline_explain else ""),
              flush=True)

    # 3. The report.
    print()
    print("| # | form | KFL | window | rows | kept % | podwire s | DuckDB s | ratio | in-process podwire s "
          "| DuckDB s | ratio | anon MB podwire | DuckDB |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in filters:
        w = f"{iso(f['window'][0])}, {int((f['window'][1] - f['window'][0]).total_seconds() // 3600)} h" \
            if f["window"] else ""
        again = f" (first {f['first_ratio']:.2f})" if "first_ratio" in f else ""
        print(f"| {f['id']} | {f['form']} | `{f['kfl']}` | {w} | {f['rows']:,} | {100 * f['kept']:.2f} | {f['pw']:.3f} | "
              f"{f['dk']:.3f} | {f['ratio']:.2f}{again} | {f['pw_in']:.3f} | {f['dk_in']:.3f} | "
              f"{f['ratio_in']:.2f} | {f['pw_anon']:.0f} | {f['dk_anon']:.0f} |")
    print()

    def dist(key):
        xs = sorted(f[key] for f in filters)
        p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
        return f"median {statistics.median(xs):.2f}, p90 {p90:.2f}, max {xs[-1]:.2f}"

    for form in ["connections", "both", None]:
        sel = [f for f in filters if form is None or f["form"] == form]
        if not sel:
            continue
        keep = filters
        filters = sel
        print(f"{form or 'all'} ({len(sel)} filters): process ratio {dist('ratio')}; "
              f"in-process ratio {dist('ratio_in')}")
        filters = keep
    over = [f["id"] for f in filters if f["ratio"] > 1.0]
    mem = [f["id"] for f in filters if f["pw_anon"] > f["dk_anon"]]
    print(f"process ratio above 1.0 after a re-run: {over or 'none'}; "
          f"podwire's peak anonymous memory above DuckDB's: {mem or 'none'}")
    print(f"peak anonymous MB: podwire max {max(f['pw_anon'] for f in filters):.0f}, "
          f"DuckDB max {max(f['dk_anon'] for f in filters):.0f}; peak RSS MB: podwire max "
          f"{max(f['pw_rss'] for f in filters):.0f}, DuckDB max "
          f"{max(f['dk_rss'] for f in filters):.0f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(filters, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
