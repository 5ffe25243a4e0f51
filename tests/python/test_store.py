"""The store read back by independent readers (pyarrow, DuckDB): schema, layout, row counts, and
the demo scene's expected connections (capture/demo/README.md)."""
import os
import subprocess
import glob

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from podwire_bin import ROOT, BIN, PCAPS, run


REQUIRED = ["start_ts", "end_ts", "conn_id", "protocol", "src_ip", "src_port", "dst_ip", "dst_port",
            "src_packets", "dst_packets", "src_bytes", "dst_bytes", "src_payload_bytes",
            "dst_payload_bytes", "outcome", "node"] + [
    f"{side}_{s}" for side in ("src", "dst")
    for s in ("name", "namespace", "pod", "workload", "workload_kind", "service", "node")]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("demo")
    out = run("demo", "--no-serve", "--store", str(store))
    assert out.returncode == 0, out.stderr
    assert "api.example.com" in out.stdout
    assert f"podwire why --store {store}" in out.stdout, "the demo points at the verdicts"
    return str(store)


def q(store, sql):
    con = duckdb.connect()
    sql = sql.replace("CONNS", f"read_parquet('{store}/connections/date=*/hour=*/*.parquet', hive_partitioning=true)")
    sql = sql.replace("DNS", f"read_parquet('{store}/dns/date=*/hour=*/*.parquet', hive_partitioning=true)")
    return con.execute(sql).fetchall()


def test_schema_and_hive_layout(demo_store):
    dset = ds.dataset(os.path.join(demo_store, "connections"), format="parquet", partitioning="hive")
    names = dset.schema.names
    for col in REQUIRED:
        assert col in names, col
    assert "date" in names and "hour" in names
    files = glob.glob(os.path.join(demo_store, "connections", "date=*", "hour=*", "*.parquet"))
    assert files
    md = pq.ParquetFile(files[0]).metadata
    # The codec per column (schemas/README.md, "Format"): ZSTD on counters, addresses and DNS
    # names; none on dictionary-encoded columns, on conn_id and on the delta-encoded times.
    chunks = {md.row_group(0).column(i).path_in_schema: md.row_group(0).column(i)
              for i in range(md.num_columns)}
    codecs = {c: chunk.compression for c, chunk in chunks.items()}
    for col in ("src_bytes", "src_ip", "dst_ip", "dst_dns_name", "is_final"):
        assert codecs[col] == "ZSTD", (col, codecs[col])
    for col in ("start_ts", "end_ts", "conn_id", "src_port", "outcome", "src_namespace", "dst_pod"):
        assert codecs[col] == "UNCOMPRESSED", (col, codecs[col])
    for col, chunk in chunks.items():
        delta = "DELTA_BINARY_PACKED" in chunk.encodings
        assert delta == (col in ("start_ts", "end_ts")), (col, chunk.encodings)
    assert md.row_group(0).column(0).statistics.has_min_max
    assert md.schema.to_arrow_schema().metadata[b"podwire.schema_version"] == b"2"
    ts = pq.read_table(files[0], columns=["start_ts"]).column(0).to_pylist()
    assert ts == sorted(ts)


def test_demo_connections(demo_store):
    rows = q(demo_store, """SELECT protocol, outcome, count(*) FROM CONNS WHERE is_final
                            GROUP BY ALL ORDER BY ALL""")
    got = {(p, o): n for p, o, n in rows}
    assert got == {("tcp", "closed"): 6, ("tcp", "no_answer"): 1, ("tcp", "refused"): 1,
                   ("tcp", "reset"): 1, ("udp", "answered"): 8, ("udp", "unreachable"): 1}, got
    # Pod to pod, named by inventory, workloads resolved without ReplicaSets listed.
    rows = q(demo_store, """SELECT DISTINCT src_namespace, src_workload, src_workload_kind, dst_name,
                            dst_workload, dst_service FROM CONNS
                            WHERE protocol='tcp' AND dst_port=8080 ORDER BY ALL""")
    assert rows == [("batch", "report", "CronJob", "web-7c9d8f6b5d-x2k4p", "web", "web"),
                    ("shop", "frontend", "Deployment", "web-7c9d8f6b5d-x2k4p", "web", "web")], rows
    # The external host: outside the cluster, named by the DNS answer the client got.
    rows = q(demo_store, """SELECT src_pod, dst_name, dst_namespace, outcome FROM CONNS
                            WHERE dst_ip = '203.0.113.10'""")
    assert rows == [("frontend-6d4cf56db6-qz7mn", "api.example.com", "", "closed")], rows
    # The DNS ClusterIP is named by its service.
    rows = q(demo_store, "SELECT DISTINCT dst_name, dst_service, dst_namespace, dst_pod FROM CONNS WHERE dst_port=53")
    assert rows == [("kube-dns", "kube-dns", "kube-system", "")], rows
    # Failure evidence.
    rows = q(demo_store, "SELECT icmp_type, icmp_code, icmp_errors, dst_packets FROM CONNS WHERE outcome='unreachable'")
    assert rows == [(3, 3, 1, 0)], rows
    rows = q(demo_store, "SELECT reset_by, handshake_rtt_us > 0 FROM CONNS WHERE outcome='reset'")
    assert rows == [("dst", True)], rows
    rows = q(demo_store, "SELECT src_packets, dst_packets FROM CONNS WHERE outcome='no_answer' AND protocol='tcp'")
    assert rows[0][1] == 0 and rows[0][0] >= 2, rows


def test_demo_dns(demo_store):
    rows = q(demo_store, "SELECT query_name, rcode, count(*) FROM DNS GROUP BY ALL ORDER BY ALL")
    assert rows == [("api.example.com", "NOERROR", 1), ("db.batch.svc.cluster.local", "NXDOMAIN", 1),
                    ("web.shop.svc.cluster.local", "NOERROR", 5)], rows
    rows = q(demo_store, """SELECT DISTINCT answer_ips, src_namespace, dst_service FROM DNS
                            WHERE query_name = 'api.example.com'""")
    assert rows == [(["203.0.113.10"], "shop", "kube-dns")], rows
    assert q(demo_store, "SELECT count(*) FROM DNS WHERE latency_us IS NULL OR latency_us < 0") == [(0,)]


@pytest.mark.parametrize("name", ["gnutella.pcap", "1kxun.pcap", "wireshark_samples-test.pcapng"])
def test_shared_capture_row_counts(tmp_path, name):
    pcap = os.path.join(PCAPS, name)
    assert os.path.exists(pcap), f"missing {pcap}: the repo must sit beside shared/"
    out = run("standalone", "--pcap", pcap, "--store", str(tmp_path))
    assert out.returncode == 0, out.stderr
    def num(label, absent=None):
        """The count on the summary line `label`; `absent` when the summary leaves the line out
        (a skip reason that did not happen), else a missing line fails."""
        for line in out.stderr.splitlines():
            if line.startswith(label):
                return int(line[len(label):].split()[0])
        if absent is not None:
            return absent
        pytest.fail(f"the run summary has no `{label} N` line (did its wording change?):\n{out.stderr}")
    n_conns = num("connections")
    n_dns = num("DNS transactions")
    t = ds.dataset(str(tmp_path / "connections"), format="parquet", partitioning="hive").to_table()
    assert t.filter(ds.field("is_final")).num_rows == n_conns
    assert len(set(t.column("conn_id").to_pylist())) == n_conns
    read = num("packets read")
    dns = ds.dataset(str(tmp_path / "dns"), format="parquet", partitioning="hive").to_table() if n_dns else None
    if dns is not None:
        assert dns.num_rows == n_dns
    # Every packet read is either in a connection row, an ICMP error on one, or skipped.
    pk = q(str(tmp_path), "SELECT sum(src_packets + dst_packets + icmp_errors) FROM CONNS")[0][0]
    skipped = num("skipped")
    assert pk + skipped == read, (pk, skipped, read, out.stderr)
    # Without an inventory, external ends are still named by the DNS name their client resolved.
    named = q(str(tmp_path), """SELECT count(*) FILTER (WHERE dst_name = dst_dns_name),
                                       count(*) FROM CONNS WHERE dst_dns_name <> ''""")[0]
    assert named[0] == named[1], named
    if name == "1kxun.pcap":
        assert named[1] > 0, "1kxun resolves names before connecting"
    # capture_stats: per-minute rows whose sums are the run's totals, reason by reason.
    cs = q(str(tmp_path), """SELECT sum(packets), sum(skipped), sum(packets_tracked),
                                  sum(skipped_not_ip), count(*), count(DISTINCT source)
                           FROM read_parquet('""" + str(tmp_path) + """/capture_stats/date=*/hour=*/*.parquet',
                                             hive_partitioning = true)""")[0]
    assert cs[0] == read and cs[1] == skipped and cs[2] == read - skipped, (cs, out.stderr)
    assert cs[3] == num("  not_ip", absent=0), (cs, out.stderr)
    assert cs[4] >= 1 and cs[5] == 1


# Each switch set against tshark's count of the frames it leaves out; what stays is the full
# run's rows of the protocols kept, unchanged.
SWITCHES = {
    "tcp,dns": "(udp && !(udp.port==53)) || icmp || icmpv6",
    "udp,icmp": "tcp || udp.port==53",
    "tcp": "udp || icmp || icmpv6",
}


@pytest.mark.parametrize("switches", sorted(SWITCHES))
@pytest.mark.parametrize("name", ["1kxun.pcap", "wireshark_samples-test.pcapng"])
def test_protocol_switches_leave_out_exactly_the_traffic_switched_off(tmp_path, name, switches):
    pcap = os.path.join(PCAPS, name)
    full = run("standalone", "--pcap", pcap, "--store", str(tmp_path / "full"))
    part = run("standalone", "--pcap", pcap, "--store", str(tmp_path / "part"), "--protocols", switches)
    assert full.returncode == 0 and part.returncode == 0, full.stderr + part.stderr
    ref = subprocess.run(["tshark", "-r", pcap, "-Y", SWITCHES[switches]], capture_output=True,
                         text=True, check=True).stdout.count("\n")
    stats = lambda s: q(str(tmp_path / s), f"""SELECT sum(packets), sum(packets_filtered),
        sum(packets_tracked) FROM read_parquet('{tmp_path / s}/capture_stats/date=*/hour=*/*.parquet')""")[0]
    packets, filtered, tracked = stats("part")
    assert filtered == ref and ref > 0, (switches, filtered, ref)
    assert packets == stats("full")[0] and tracked == stats("full")[2] - filtered
    on = switches.split(",")
    keep = []
    if "tcp" in on:
        keep.append("(protocol = 'tcp' AND 53 NOT IN (src_port, dst_port))")
    if "udp" in on:
        keep.append("(protocol = 'udp' AND 53 NOT IN (src_port, dst_port))")
    if "dns" in on:
        keep.append("(protocol IN ('tcp', 'udp') AND 53 IN (src_port, dst_port))")
    if "icmp" in on:
        keep.append("protocol = 'icmp'")
    # Per connection: an ICMP error can add a row to one (interim or final), so rows are summed.
    cols = """conn_id, protocol, src_ip, src_port, dst_ip, dst_port, sum(src_packets),
              sum(dst_packets), sum(src_bytes), sum(dst_bytes), count(*) FILTER (WHERE is_final)"""
    where, having = f"({' OR '.join(keep)})", "true"
    if "icmp" in on:
        cols += ", max(outcome) FILTER (WHERE is_final)"
    else:
        # Without ICMP, an unreachable error no longer sets the outcome, and the connections
        # only an ICMP error made (no packets of their own) are not made.
        having = "sum(src_packets + dst_packets) > 0"
        assert q(str(tmp_path / "part"), "SELECT sum(icmp_errors) FROM CONNS") == [(0,)]
    sql = f"SELECT {cols} FROM CONNS WHERE {where} GROUP BY ALL HAVING {having} ORDER BY ALL"
    want = q(str(tmp_path / "full"), sql)
    got = q(str(tmp_path / "part"), sql)
    assert got == want and got, (switches, len(got), len(want))
    dns_rows = lambda s: q(str(tmp_path / s), "SELECT count(*) FROM DNS")[0][0] if os.path.isdir(tmp_path / s / "dns") else 0
    assert dns_rows("part") == (dns_rows("full") if "dns" in on else 0)
