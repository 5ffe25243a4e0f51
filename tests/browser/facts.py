"""Facts about a podwire store, straight from its Parquet files with DuckDB (not through podwire).

    python3 facts.py STORE < queries.json   ->   JSON: one list of row objects per query

Each query is SQL over the views `connections`, `dns` and `packets` (the store's Parquet, Hive-partitioned).
The browser tests compare what the page draws and lists with these answers.
"""
import json
import os
import sys

try:
    import duckdb
except ImportError:
    sys.exit("facts.py needs DuckDB for Python: pip install duckdb")

store = sys.argv[1]
con = duckdb.connect()
for table in ("connections", "dns", "packets"):
    if not os.path.isdir(os.path.join(store, table)):
        continue
    files = os.path.join(store, table, "**", "*.parquet")
    con.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{files}', hive_partitioning = true, union_by_name = true)"
    )
out = []
for q in json.load(sys.stdin):
    cur = con.execute(q)
    cols = [d[0] for d in cur.description]
    out.append([dict(zip(cols, row)) for row in cur.fetchall()])
json.dump(out, sys.stdout, default=str)
