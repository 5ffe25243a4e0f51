#!/usr/bin/env python3
"""What the order of rows inside a store file is worth: the query family on rewritten copies.

The store writer keeps each hourly file in time order, so every page holds every namespace and a
filter on a destination reads every page. This rewrites a store's `connections` files into two
copies with one writer (pyarrow) and one setting (small pages, page index, no Bloom filters), the
same rows in the same folders, without a Delta log:

  * `time`: rows in time order, as written today;
  * `dst`:  rows clustered by destination (namespace, workload, pod, then time), so that the page
    index can skip the pages of other destinations.

Then it times the family's filters (benchmarks/query-family.py, drawn from the original store
with the same seed) in-process on the original store and on both copies: `query_explain --mode
time` (with `--unsorted-files` on the copies, whose files are then not in time order: results
are sorted, not merged) and DuckDB's COPY to /dev/null, median of RUNS after a warm-up. On every
store, podwire's row count must equal DuckDB's before anything is timed.

    benchmarks/layout-experiment.py STORE WORKDIR [--rows-per-page 1024] [--ids 1,3,10]
        [--runs 5] [--filters 60] [--seed 1]

WORKDIR receives the copies (`WORKDIR/time`, `WORKDIR/dst`, about the store's size each; kept
between runs: delete them to rewrite). Environment: QUERY_EXPLAIN (default
target/release/query_explain).
"""
import argparse
import glob
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    "query_family", os.path.join(HERE, "benchmarks/query-family.py"))
qf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qf)

# The clustering key of the `dst` copy: a filter on any prefix of it finds its rows in few pages.
DST_ORDER = ["dst_namespace", "dst_workload", "dst_pod", "start_ts"]


def rewrite(store, out, order, rows_per_page):
    """`store`'s connections files into `out`, in time order or clustered by destination, with
    each column's compression, dictionary and encoding as the store writer chose them."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    files = sorted(glob.glob(f"{store}/connections/date=*/hour=*/*.parquet"))
    if not files:
        sys.exit(f"no connections files under {store}: make a store with "
                 "`target/release/gen_store --out STORE --seed 1`")
    for f in files:
        pf = pq.ParquetFile(f)
        chunks = pf.metadata.row_group(0)
        compression, dictionary, encoding = {}, [], {}
        for i in range(chunks.num_columns):
            c = chunks.column(i)
            compression[c.path_in_schema] = "zstd" if c.compression == "ZSTD" else "none"
            if "RLE_DICTIONARY" in c.encodings or "PLAIN_DICTIONARY" in c.encodings:
                dictionary.append(c.path_in_schema)
            elif "DELTA_BINARY_PACKED" in c.encodings:
                encoding[c.path_in_schema] = "DELTA_BINARY_PACKED"
        t = pf.read()
        if order == "dst":
            t = t.take(pc.sort_indices(t, sort_keys=[(c, "ascending") for c in DST_ORDER]))
        path = os.path.join(out, os.path.relpath(f, store))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(t, path, compression=compression, use_dictionary=dictionary,
                       column_encoding=encoding or None, write_statistics=True,
                       write_page_index=True, max_rows_per_page=rows_per_page,
                       row_group_size=1 << 30)
    return len(files)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("workdir")
    ap.add_argument("--rows-per-page", type=int, default=1024)
    ap.add_argument("--filters", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ids", help="time only these of the drawn filters (1,3,10)")
    a = ap.parse_args()

    import duckdb
    explain = os.environ.get("QUERY_EXPLAIN", os.path.join(HERE, "target/release/query_explain"))
    if not os.access(explain, os.X_OK):
        sys.exit(f"no binary at {explain}: cargo build --release -p podwire-benchmarks "
                 "(or set QUERY_EXPLAIN)")
    store = os.path.abspath(a.store)
    stores = [("store", store, False)]
    for order in ["time", "dst"]:
        out = os.path.join(os.path.abspath(a.workdir), order)
        if not os.path.isdir(out):
            t0 = time.perf_counter()
            n = rewrite(store, out, order, a.rows_per_page)
            print(f"rewrote {n} files in {order} order to {out} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        stores.append((order, out, True))

    def conns(s):
        return f"read_parquet('{s}/connections/date=*/hour=*/*.parquet', hive_partitioning = true)"

    con = duckdb.connect()
    filters = qf.draw(random.Random(a.seed), qf.Values(con, conns(store)), a.filters, None)
    if a.ids:
        wanted = {int(i) for i in a.ids.split(",")}
        filters = [f for f in filters if f["id"] in wanted]
    print(f"store: {store}; {len(filters)} filters, seed {a.seed}; duckdb {duckdb.__version__}; "
          f"runs {a.runs}; {a.rows_per_page} rows per page in the copies", flush=True)
    marker = "run and write CSV "
    for f in filters:
        for name, path, unsorted in stores:
            sql = qf.duckdb_sql(f, conns(path), None, False)
            want = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
            cmd = [explain, "--store", path, "--mode", "time", "--runs", str(a.runs),
                   *(["--unsorted-files"] if unsorted else []), *qf.podwire_args(f), f["kfl"]]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = next((l for l in out.stdout.splitlines() if marker in l), None)
            if out.returncode != 0 or line is None:
                sys.exit(f"query_explain failed on filter {f['id']} ({name}): {out.stderr}")
            got = int(line.split()[0].replace(",", ""))
            if got != want:
                sys.exit(f"MISMATCH on filter {f['id']} ({name}): podwire {got} rows, "
                         f"DuckDB {want}: {f['kfl']}")
            f[name] = (float(line.split(marker)[1].split()[0]),
                       qf.duckdb_in_process(con, sql, a.runs))
        print(f"filter {f['id']:>3} rows {want:>9,}: " + "; ".join(
            f"{name} podwire {f[name][0]:.3f} s, DuckDB {f[name][1]:.3f} s"
            for name, _, _ in stores), flush=True)

    print()
    print("| # | KFL | podwire, store | time copy | dst copy | DuckDB, store | time copy "
          "| dst copy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for f in filters:
        print(f"| {f['id']} | `{f['kfl']}` | " + " | ".join(
            f"{f[n][0]:.3f}" for n, _, _ in stores) + " | " + " | ".join(
            f"{f[n][1]:.3f}" for n, _, _ in stores) + " |")
    print()

    def dist(xs):
        xs = sorted(xs)
        p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
        return f"median {statistics.median(xs):.2f}, p90 {p90:.2f}, min {xs[0]:.2f}, max {xs[-1]:.2f}"

    for name, _, _ in stores:
        print(f"{name}: podwire / DuckDB on the same files: "
              f"{dist(f[name][0] / f[name][1] for f in filters)}")
    print(f"podwire on the dst copy / podwire on the store: "
          f"{dist(f['dst'][0] / f['store'][0] for f in filters)}")
    print(f"podwire on the dst copy / podwire on the time copy: "
          f"{dist(f['dst'][0] / f['time'][0] for f in filters)}")
    print(f"podwire on the dst copy / DuckDB on the store: "
          f"{dist(f['dst'][0] / f['store'][1] for f in filters)}")


if __name__ == "__main__":
    main()
