"""The reference for ingest's write stage: Arrow's C++ Parquet writer (pyarrow) on the rows
ingest_bench writes, with the settings of the store's files (each column's codec, dictionary
use and delta encoding, read from the first file; ZSTD level 1; statistics; 128 Ki-row row
groups), on one thread. No sort, so it does less than ingest's stage. Usage:

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

# The store's settings, read from one of its files rather than restated here: each column's
# codec, whether it is dictionary-encoded, and whether it is delta-encoded (the times).
meta = pq.ParquetFile(files[0]).metadata.row_group(0)
chunks = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
cols = list(chunks)  # the file's columns, not the hour folders' `date` and `hour`
t = t.select(cols)
codecs = {c: chunks[c].compression.lower() for c in cols}
dictionary = [c for c in cols if "RLE_DICTIONARY" in chunks[c].encodings]
delta = {c: "DELTA_BINARY_PACKED" for c in cols if "DELTA_BINARY_PACKED" in chunks[c].encodings}
out = tempfile.mktemp(suffix=".parquet")
for policy in ("store's codecs", "ZSTD everywhere"):
    if policy == "store's codecs":
        compression = {c: "none" if k == "uncompressed" else k for c, k in codecs.items()}
        level = {c: 1 for c, k in codecs.items() if k == "zstd"}
    else:
        compression, level = "zstd", 1
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        pq.write_table(t, out, compression=compression, compression_level=level,
                       use_dictionary=dictionary, column_encoding=delta or None,
                       write_statistics=True, row_group_size=131072)
        best = min(best, time.perf_counter() - start)
    os.unlink(out)
    print(f"pyarrow {pa.__version__}, {policy}: {t.num_rows} rows in {best:.2f} s "
          f"(best of 3), {t.num_rows / best / 1e6:.2f} M rows/s")
