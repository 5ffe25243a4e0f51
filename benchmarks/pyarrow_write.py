"""The reference for ingest's write stage: Arrow's C++ Parquet writer (pyarrow) on the rows
ingest_bench writes, with the store's settings (dictionary on the same columns, ZSTD level 1 on
the same columns, statistics, 128 Ki-row row groups), on one thread. No sort, so it does less
than ingest's stage. Usage:

    taskset -c 1 python3 benchmarks/pyarrow_write.py STORE [ROWS]

STORE is a store written by gen_store (benchmarks/README.md); ROWS defaults to 2,000,000.
"""
import glob
import os
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

pa.set_cpu_count(1)
pa.set_io_thread_count(1)
store = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
files = sorted(glob.glob(f"{store}/connections/*/*/*.parquet"))
t = pq.read_table(files[: rows // 20_000 + 1]).slice(0, rows).replace_schema_metadata(None)
cols = t.column_names


def codec(c):
    """The store's policy (ingest/src/store.rs, `compressed`)."""
    ty = t.schema.field(c).type
    if pa.types.is_int64(ty):
        return "none" if c == "conn_id" else "zstd"
    if pa.types.is_timestamp(ty) or pa.types.is_boolean(ty):
        return "zstd"
    if pa.types.is_string(ty) and c.endswith(("_ip", "dns_name")):
        return "zstd"
    return "none"


# Times and 64-bit counters are written without a dictionary, as the store does.
no_dict = {c for c in cols if pa.types.is_int64(t.schema.field(c).type)
           or pa.types.is_timestamp(t.schema.field(c).type)}
out = tempfile.mktemp(suffix=".parquet")
for policy in ("store's codecs", "ZSTD everywhere"):
    if policy == "store's codecs":
        compression = {c: codec(c) for c in cols}
        level = {c: 1 for c in cols if codec(c) == "zstd"}
    else:
        compression, level = "zstd", 1
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        pq.write_table(t, out, compression=compression, compression_level=level,
                       use_dictionary=[c for c in cols if c not in no_dict],
                       write_statistics=True, row_group_size=131072)
        best = min(best, time.perf_counter() - start)
    os.unlink(out)
    print(f"pyarrow {pa.__version__}, {policy}: {t.num_rows} rows in {best:.2f} s "
          f"(best of 3), {t.num_rows / best / 1e6:.2f} M rows/s")
