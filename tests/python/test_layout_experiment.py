"""benchmarks/layout-experiment.py on a small generated store: its two rewritten copies hold the
same rows as the store, the `dst` copy is clustered by destination within each file (and the
`time` copy is not), and on every copy podwire (`query_explain --unsorted-files`) returns as many
rows as DuckDB for each filter timed."""
import glob
import os
import subprocess
import sys

import pyarrow.parquet as pq

from podwire_bin import BIN, ROOT, generate_store

SCRIPT = os.path.join(ROOT, "benchmarks", "layout-experiment.py")
EXPLAIN = os.path.join(os.path.dirname(BIN), "query_explain")


def test_layout_experiment_rewrites_and_times(tmp_path):
    assert os.path.exists(EXPLAIN), f"build the benchmarks first (cargo build --workspace): {EXPLAIN}"
    store = generate_store(tmp_path / "store", 60000, 2, 1)
    work = tmp_path / "layout"
    out = subprocess.run([sys.executable, SCRIPT, store, str(work), "--filters", "8", "--runs", "1",
                          "--rows-per-page", "256"], capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, QUERY_EXPLAIN=EXPLAIN))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("\nfilter ") == 8, out.stdout
    assert "podwire on the dst copy / podwire on the store: median" in out.stdout, out.stdout

    def files(root):
        return sorted(os.path.relpath(f, root)
                      for f in glob.glob(f"{root}/connections/date=*/hour=*/*.parquet"))

    originals = files(store)
    assert len(originals) >= 24, originals
    for order in ["time", "dst"]:
        assert files(work / order) == originals, order
    clustered = 0
    for name in originals:
        rows = pq.read_table(os.path.join(store, name)).num_rows
        time_copy = pq.read_table(work / "time" / name)
        dst_copy = pq.read_table(work / "dst" / name)
        assert time_copy.num_rows == dst_copy.num_rows == rows, name
        assert sorted(dst_copy.column("conn_id").to_pylist()) == \
            sorted(time_copy.column("conn_id").to_pylist()), name
        ns = dst_copy.column("dst_namespace").to_pylist()
        assert ns == sorted(ns), f"{name}: the dst copy is not clustered by dst_namespace"
        starts = time_copy.column("start_ts").to_pylist()
        assert starts == sorted(starts), f"{name}: the time copy is not in time order"
        clustered += ns != time_copy.column("dst_namespace").to_pylist()
    # Not vacuous: the clustering moved rows in most files.
    assert clustered * 2 > len(originals), clustered
