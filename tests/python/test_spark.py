"""Spark reads the store as it is: Hive partition discovery, the schema, and the same row counts
as DuckDB, with no podwire code (issue 6: readable by pyarrow, DuckDB, polars and Spark)."""
import os
import shutil
import subprocess

import duckdb
import pytest

from podwire_bin import ROOT, BIN


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.fail("Spark needs a JVM: apt-get install -y openjdk-17-jre-headless", pytrace=False)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        pytest.fail("missing pyspark: python3 -m pip install pyspark", pytrace=False)
    session = (SparkSession.builder.master("local[1]").appName("podwire-store")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.session.timeZone", "UTC")
               .getOrCreate())
    yield session
    session.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    assert os.path.exists(BIN), f"build podwire first (cargo build): {BIN}"
    d = tmp_path_factory.mktemp("spark-demo")
    out = subprocess.run([BIN, "demo", "-q", "--no-serve", "--store", str(d)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return str(d)


@pytest.mark.parametrize("table", ["connections", "dns", "capture_stats", "packets"])
def test_spark_reads_every_table(spark, store, table):
    df = spark.read.parquet(os.path.join(store, table))
    assert "date" in df.columns and "hour" in df.columns
    expected = duckdb.connect().execute(
        f"SELECT count(*), min(hour), count(DISTINCT date) FROM read_parquet('{store}/{table}/date=*/hour=*/*.parquet', "
        "hive_partitioning = true, hive_types = {'hour': INTEGER})").fetchone()
    got = df.selectExpr("count(*)", "min(hour)", "count(DISTINCT date)").first()
    assert tuple(got) == expected, (table, tuple(got), expected)


def test_spark_values_match_duckdb(spark, store):
    df = spark.read.parquet(os.path.join(store, "connections"))
    rows = (df.where("is_final").groupBy("src_namespace", "dst_name", "outcome").count()
            .orderBy("src_namespace", "dst_name", "outcome").collect())
    got = [(r[0], r[1], r[2], r[3]) for r in rows]
    expected = duckdb.connect().execute(
        f"SELECT src_namespace, dst_name, outcome, count(*) FROM read_parquet('{store}/connections/date=*/hour=*/*.parquet', "
        "hive_partitioning = true) WHERE is_final GROUP BY ALL ORDER BY ALL").fetchall()
    assert got == [tuple(e) for e in expected]
    # Timestamps are UTC instants (Parquet isAdjustedToUTC): Spark and DuckDB agree on them.
    t_spark = df.selectExpr("cast(min(start_ts) as string)").first()[0]
    t_duck = duckdb.connect().execute(
        f"SELECT strftime(min(start_ts) AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S.%f') FROM "
        f"read_parquet('{store}/connections/date=*/hour=*/*.parquet')").fetchone()[0]
    assert t_spark == t_duck, (t_spark, t_duck)
