"""Retention: `podwire expire` deletes exactly the hourly partitions older than the time kept,
in a folder and in an S3-compatible bucket (moto on loopback), and leaves everything else; what
stays is read back by DuckDB and pyarrow. (`ingest --retention` runs the same hourly: see
test_kafka.py.)"""
import datetime as dt
import os
import subprocess

import duckdb
import pytest

from podwire_bin import BIN, run
from s3_server import S3Server

GEN_STORE = os.path.join(os.path.dirname(BIN), "gen_store")
DAY2 = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)  # gen_store's second day


def keep_until(moment):
    """A --keep that puts the cutoff at `moment` (plus the seconds the test takes)."""
    return f"{int((dt.datetime.now(dt.timezone.utc) - moment).total_seconds())}s"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    assert os.path.exists(GEN_STORE), (
        f"build the store generator first (cargo build -p podwire-benchmarks --bin gen_store): {GEN_STORE}")
    out = tmp_path_factory.mktemp("gen")
    r = subprocess.run([GEN_STORE, "--rows", "30000", "--days", "2", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def rows_by_day(path, storage_options=None):
    """Rows per day of the connections Delta table (the generator writes one; removed files stay
    on disk for the grace period, so a folder glob would still count them)."""
    import collections
    import deltalake
    t = deltalake.DeltaTable(f"{path}/connections", storage_options=storage_options)
    return dict(collections.Counter(str(d) for d in t.to_pyarrow_table(columns=["date"]).column("date").to_pylist()))


def test_a_folder_keeps_exactly_the_hours_inside_the_window(store, tmp_path):
    copy = tmp_path / "store"
    subprocess.run(["cp", "-a", str(store), str(copy)], check=True)
    os.makedirs(copy / "_ingest")
    (copy / "_ingest" / "connections-0.range").write_text("ledger")
    (copy / "connections" / "README").write_text("not a partition")
    before = rows_by_day(copy)
    assert set(before) == {"2026-11-01", "2026-11-02"}, before

    dry = run("expire", "--store", str(copy), "--keep", keep_until(DAY2), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed = dry.stdout.split()
    assert listed == [f"connections/date=2026-11-01/hour={h:02}" for h in range(24)], listed
    assert rows_by_day(copy) == before, "a dry run deletes nothing"

    out = run("expire", "--store", str(copy), "--keep", keep_until(DAY2))
    assert out.returncode == 0, out.stderr
    assert "deleted 24 partitions" in out.stderr, out.stderr
    assert rows_by_day(copy) == {"2026-11-02": before["2026-11-02"]}
    assert (copy / "connections" / "date=2026-11-01").exists(), "removed files stay for the grace period"
    assert (copy / "_ingest" / "connections-0.range").read_text() == "ledger"
    assert (copy / "connections" / "README").exists()


def test_a_bucket_keeps_exactly_the_hours_inside_the_window(store):
    from pyarrow import fs
    import pyarrow.dataset as ds
    s3 = S3Server()
    try:
        s3.create_bucket("flows")
        bucket = s3.filesystem()
        client = s3.client()
        for d, _, files in os.walk(store):
            for name in files:
                rel = os.path.relpath(os.path.join(d, name), store)
                client.upload_file(os.path.join(d, name), "flows", f"podwire/{rel}")
        client.put_object(Bucket="flows", Key="podwire/_ingest/connections-0.range", Body=b"ledger")
        url = "s3://flows/podwire"
        noon = DAY2 + dt.timedelta(hours=12)
        out = subprocess.run([BIN, "expire", "--store", url, "--keep", keep_until(noon)],
                             capture_output=True, text=True, env=s3.env)
        assert out.returncode == 0, out.stderr
        assert "deleted 36 partitions" in out.stderr, out.stderr
        import deltalake
        opts = {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        t = deltalake.DeltaTable(f"{url}/connections", storage_options=opts).to_pyarrow_table()
        want = duckdb.sql(f"""SELECT count(*) FROM read_parquet('{store}/connections/date=*/hour=*/*.parquet',
                              hive_partitioning = true)
                              WHERE date = '2026-11-02' AND hour::INT >= 12""").fetchall()[0][0]
        assert t.num_rows == want and want > 0, (t.num_rows, want)
        assert min(t.column("start_ts").to_pylist()) >= noon
        assert bucket.get_file_info("flows/podwire/_ingest/connections-0.range").type == fs.FileType.File
    finally:
        s3.stop()


@pytest.mark.parametrize("keep, message", [("10m", "less than an hour"), ("soon", "e.g. 14d")])
def test_a_retention_that_would_eat_the_current_hour_is_refused(tmp_path, keep, message):
    out = run("expire", "--store", str(tmp_path), "--keep", keep)
    assert out.returncode == 2 and message in out.stderr, out.stderr
