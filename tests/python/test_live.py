"""Live capture (eBPF) on network namespaces, against tcpdump/tshark and the pcap path.

The demo scene (capture/demo/make-scene.sh) builds a node namespace with a bridge, four pod
namespaces behind veths and an external host behind an uplink, and runs real programs: HTTP
servers and curl, a refused port, a reset, a SYN that is never answered, dnsmasq and lookups
(one NXDOMAIN), UDP echo and a closed UDP port. While tcpdump captures on the bridge (every packet
once), `podwire standalone` runs in the node namespace attached to every pod veth (role pod) and
the uplink (role host, with the pod CIDR), as an agent on a node would be.

Checked:
- every connection the live capture made equals what `podwire standalone --pcap` makes from
  tcpdump's capture of the same moment (endpoints, per-direction packets, IP and payload bytes,
  flags, outcome, RTT presence, retransmissions, names from the inventory);
- per-direction packets and payload bytes equal tshark's (tshark_flows.py over that capture);
- the same DNS transactions;
- each packet counted once although pod-to-pod packets cross two attached veths, and the
  duplicates are accounted for in capture_stats; nothing lost;
- the programs are gone after the capture stops (SIGINT), and after SIGTERM;
- the in-kernel filter: by namespace and by label (resolved with the inventory), and changed
  through a filter file while the capture runs;
- an unknown interface is a clear error.

Needs root (CI runs as root), iproute2, tcpdump, tshark, dnsmasq, curl, dig, ethtool, bpftool:
tests/run-all.sh installs them.
"""
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import duckdb
import pytest

from podwire_bin import BIN, PCAPS, ROOT

SCENE = os.path.join(ROOT, "capture", "demo", "make-scene.sh")
TSHARK_FLOWS = os.path.join(PCAPS, "reference", "tshark_flows.py")


def require_tools():
    assert os.geteuid() == 0, "live capture tests need root (network namespaces, eBPF): run as root"
    for tool in ["ip", "tcpdump", "tshark", "dnsmasq", "curl", "dig", "ethtool", "bpftool"]:
        assert shutil.which(tool), (
            f"`{tool}` is missing: apt-get install iproute2 tcpdump tshark dnsmasq curl dnsutils "
            "ethtool bpftool (tests/run-all.sh does)")
    assert os.path.exists(BIN), f"build podwire first (cargo build): {BIN}"


def podwire_programs():
    """Names of loaded BPF programs that are podwire's."""
    out = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "podwire_" in line]


CONN_SQL = """
select protocol, src_ip, src_port, dst_ip, dst_port,
       sum(src_packets) sp, sum(dst_packets) dp, sum(src_bytes) sb, sum(dst_bytes) db,
       sum(src_payload_bytes) spl, sum(dst_payload_bytes) dpl,
       max(case when is_final then outcome end) outcome,
       max(src_flags) sf, max(dst_flags) df, bool_or(handshake_rtt_us is not null) rtt,
       sum(src_retransmits) sr, sum(dst_retransmits) dr, sum(icmp_errors) icmp,
       max(src_name) src_name, max(dst_name) dst_name, max(dst_dns_name) dns_name,
       count(*) filter (where is_final) finals
from read_parquet('{}/connections/*/*/*.parquet', hive_partitioning = true)
group by all order by all
"""


def test_version_says_live_capture_is_built_in():
    """A build without clang goes on with an empty program object; `--version` says which this is
    (here, where run-all.sh installed clang, it must be in)."""
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True, check=True).stdout
    assert "live capture (eBPF): in" in out, (
        f"{out}\nthe eBPF programs were not built: apt-get install clang libbpf-dev, then cargo build")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    require_tools()
    out = tmp_path_factory.mktemp("live-scene")
    run_scene(out)
    return out


def run_scene(out, *live_flags, pcap_flags=()):
    """The scene, captured live with `live_flags` and from tcpdump's file with `pcap_flags`.
    Without --pod-cidr in `live_flags`, the agent reads the pod network from the routes."""
    live = (f"{BIN} standalone --pod-interface 'veth-*' --host-interface ext0 "
            f"--inventory {out}/inventory-live.json "
            f"--store {out}/live --node node-a --flush-interval 1s " + " ".join(live_flags))
    env = {**os.environ, "PWSCENE_OUT": str(out), "PWSCENE_LIVE": live}
    r = subprocess.run(["bash", SCENE], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"make-scene.sh failed:\n{r.stdout}\n{r.stderr}"
    r = subprocess.run([BIN, "standalone", "--pcap", f"{out}/scene.pcap", "--inventory",
                        f"{out}/inventory-live.json", "--store", f"{out}/pcap", "--node", "node-a",
                        *pcap_flags],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_live_rows_equal_the_pcap_path_on_the_same_traffic(scene):
    live = duckdb.sql(CONN_SQL.format(f"{scene}/live")).fetchall()
    pcap = duckdb.sql(CONN_SQL.format(f"{scene}/pcap")).fetchall()
    assert len(pcap) >= 15, pcap
    only_live = sorted(set(live) - set(pcap))
    only_pcap = sorted(set(pcap) - set(live))
    assert not only_live and not only_pcap, f"live only: {only_live}\npcap only: {only_pcap}"
    outcomes = {r[11] for r in live}
    assert {"closed", "refused", "reset", "no_answer", "answered", "unreachable"} <= outcomes, outcomes
    # Names come from the inventory on both ends of pod-to-pod rows.
    named = [r for r in live if r[3] == "10.244.1.10" and r[4] == 8080]
    assert named and all(r[18].startswith(("frontend-", "report-")) and r[19].startswith("web-")
                         for r in named), named
    # The pod network came from the routes (br0's 10.244.1.0/24), as no --pod-cidr was given.
    log = open(f"{scene}/live.log").read()
    assert "Pod networks read from the routes" in log and "10.244.1.0/24" in log, log[-3000:]


def test_protocol_switches_in_the_kernel(tmp_path):
    """--protocols tcp,dns: UDP echo, the closed UDP port and ICMP are dropped in the kernel and
    counted as filtered, exactly the packets tcpdump saw of them; the rest equals the pcap path
    with the same switches."""
    require_tools()
    run_scene(tmp_path, "--protocols", "tcp,dns", "--pod-cidr", "10.244.1.0/24",
              pcap_flags=["--protocols", "tcp,dns"])
    live = duckdb.sql(CONN_SQL.format(f"{tmp_path}/live")).fetchall()
    pcap = duckdb.sql(CONN_SQL.format(f"{tmp_path}/pcap")).fetchall()
    assert len(pcap) >= 10 and live == pcap, f"live {live}\npcap {pcap}"
    assert {r[0] for r in live} == {"tcp", "udp"} and all(
        r[0] == "tcp" or 53 in (r[2], r[4]) for r in live), live
    off = int(subprocess.run(["tcpdump", "-nr", f"{tmp_path}/scene.pcap",
                              "(ip or ip6) and not tcp and not port 53"],
                             capture_output=True, text=True).stdout.count("\n"))
    stats = f"read_parquet('{{}}/capture_stats/*/*/*.parquet')"
    filtered_live = duckdb.sql(f"select sum(packets_filtered) from {stats.format(tmp_path / 'live')}").fetchall()[0][0]
    filtered_pcap = duckdb.sql(f"select sum(packets_filtered) from {stats.format(tmp_path / 'pcap')}").fetchall()[0][0]
    assert off >= 4 and filtered_live == off == filtered_pcap, (filtered_live, off, filtered_pcap)


def test_live_counts_equal_tshark(scene):
    out = subprocess.run(["python3", TSHARK_FLOWS, f"{scene}/scene.pcap"], capture_output=True,
                         text=True, check=True).stdout
    ref = list(csv.DictReader(io.StringIO(out)))
    assert len(ref) >= 15
    rows = duckdb.sql(f"""
        select protocol, src_ip, src_port, dst_ip, dst_port, sum(src_packets), sum(dst_packets),
               sum(src_payload_bytes), sum(dst_payload_bytes)
        from read_parquet('{scene}/live/connections/*/*/*.parquet') group by all""").fetchall()
    by_ends = {}
    for p, s, sp, d, dp, a, b, ap, bp in rows:
        by_ends[(p, s, sp, d, dp)] = (a, b, ap, bp)
    for f in ref:
        a = (f["a_addr"], int(f["a_port"]))
        b = (f["b_addr"], int(f["b_port"]))
        want = (int(f["a2b_pkts"]), int(f["b2a_pkts"]), int(f["a2b_payload"]), int(f["b2a_payload"]))
        if (f["proto"],) + a + b in by_ends:
            got = by_ends[(f["proto"],) + a + b]
        else:
            got_ba = by_ends.get((f["proto"],) + b + a)
            assert got_ba, f"tshark's {f['proto']} {a} <-> {b} is not in the live capture"
            got = (got_ba[1], got_ba[0], got_ba[3], got_ba[2])
        assert got == want, f"{f['proto']} {a} -> {b}: live {got}, tshark {want}"


def test_live_dns_equals_the_pcap_path(scene):
    q = """select src_ip, dst_ip, query_name, query_type, rcode, answers, src_name, dst_name
           from read_parquet('{}/dns/*/*/*.parquet') order by all"""
    live = duckdb.sql(q.format(f"{scene}/live")).fetchall()
    pcap = duckdb.sql(q.format(f"{scene}/pcap")).fetchall()
    assert len(pcap) >= 7 and live == pcap, f"live {live}\npcap {pcap}"
    assert any(r[4] == "NXDOMAIN" for r in live)


@pytest.mark.parametrize("selector", [["--only-namespace", "batch"],
                                      ["--only-label", "app=report,job-name=report-29000000"]])
def test_pod_targeting(tmp_path, selector):
    """Only the report pod (namespace batch, 10.244.1.12), resolved with the inventory."""
    require_tools()
    run_scene(tmp_path, *selector)
    live = duckdb.sql(CONN_SQL.format(f"{tmp_path}/live")).fetchall()
    pcap = duckdb.sql(CONN_SQL.format(f"{tmp_path}/pcap")).fetchall()
    want = [r for r in pcap if "10.244.1.12" in (r[1], r[3])]
    assert len(want) >= 4 and live == want, f"live {live}\nwant {want}"
    filtered = duckdb.sql(f"""select sum(packets_filtered)
        from read_parquet('{tmp_path}/live/capture_stats/*/*/*.parquet')""").fetchall()[0][0]
    assert filtered > 20, filtered
    # `why-not` on traffic the targeting left out names the filter, with the same count.
    out = subprocess.run([BIN, "why-not", "--store", f"{tmp_path}/live", "--format", "json",
                          'src.namespace == "shop" and dst.port == 8081'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    reasons = {r["reason"]: r for r in json.loads(out.stdout)["reasons"]}
    assert reasons["filtered"]["node"] == "node-a" and reasons["filtered"]["count"] == filtered, reasons


def test_each_packet_counted_once_and_nothing_lost(scene):
    stats = duckdb.sql(f"""
        select sum(packets_tracked), sum(packets_deduplicated), sum(packets_lost), sum(events_lost),
               sum(kernel_flows_evicted), min(source)
        from read_parquet('{scene}/live/capture_stats/*/*/*.parquet')""").fetchall()[0]
    tracked, dedup, lost, events_lost, evicted, source = stats
    assert source.startswith("ebpf:") and "veth-web" in source and "ext0" in source, source
    # tcpdump on the bridge saw every IP packet once.
    ip_packets = int(subprocess.run(["tcpdump", "-nr", f"{scene}/scene.pcap", "ip or ip6"],
                                    capture_output=True, text=True).stdout.count("\n"))
    assert tracked == ip_packets, f"live tracked {tracked} packets, the bridge saw {ip_packets}"
    # Pod-to-pod packets crossed two pod veths, pod-to-external ones a veth and the uplink.
    assert dedup >= ip_packets // 2, (dedup, ip_packets)
    assert (lost, events_lost, evicted) == (0, 0, 0)
    assert not podwire_programs(), f"programs left loaded: {podwire_programs()}"


# --- a namespace of our own: SIGTERM, the filter, errors ------------------------------------

NS = "pwlive-test"


@pytest.fixture()
def netns():
    require_tools()
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
    yield NS
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def in_ns(*cmd, **kw):
    return subprocess.run(["ip", "netns", "exec", NS, *cmd], **kw)


def start_live(store, *extra):
    p = subprocess.Popen(["ip", "netns", "exec", NS, BIN, "standalone", "--interface", "lo",
                          "--store", str(store), "--node", "n1", "--flush-interval", "1s", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []

    def read():
        for line in p.stderr:
            lines.append(line)
    t = threading.Thread(target=read, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not any("capturing on" in x for x in lines):
        assert p.poll() is None, "".join(lines)
        assert time.time() < deadline, "".join(lines)
        time.sleep(0.05)
    return p, lines, t


TCP_PAIR = r"""
import socket, sys, threading
port = int(sys.argv[1])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen()
def serve():
    c, _ = srv.accept(); c.sendall(c.recv(100) * 3); c.close()
threading.Thread(target=serve).start()
c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"hello"); c.recv(100); c.close()
"""


def tcp_exchange(port):
    in_ns("python3", "-c", TCP_PAIR, str(port), check=True, timeout=10)


def ports_seen(store):
    return {r[0] for r in duckdb.sql(
        f"select dst_port from read_parquet('{store}/connections/*/*/*.parquet') where protocol = 'tcp'"
    ).fetchall()}


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics:\n{text}")


def test_sigterm_detaches_and_writes(netns, tmp_path):
    store = tmp_path / "store"
    p, lines, t = start_live(store, "--metrics-listen", "127.0.0.1:0", "--read-interval", "200ms")
    assert podwire_programs(), "no podwire program loaded while capturing"
    url = p.stdout.readline().strip().removeprefix("metrics on ")
    tcp_exchange(7001)
    time.sleep(1.0)
    text = in_ns("curl", "-sf", f"{url}/metrics", capture_output=True, text=True, check=True).stdout
    assert metric(text, "podwire_capture_interfaces") == 1
    # Loopback: every packet leaves and comes back; counted once (on egress).
    seen = metric(text, "podwire_capture_kernel_packets_seen_total")
    assert seen >= 14 and metric(text, "podwire_capture_kernel_packets_deduplicated_total") == seen / 2
    assert metric(text, "podwire_capture_packets_tracked_total") == seen / 2
    assert metric(text, "podwire_capture_kernel_packets_lost_total") == 0
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 0, "".join(lines)
    t.join(5)
    assert not podwire_programs(), f"programs left loaded after SIGTERM: {podwire_programs()}"
    rows = duckdb.sql(f"""select src_packets, dst_packets, src_payload_bytes, dst_payload_bytes, outcome
        from read_parquet('{store}/connections/*/*/*.parquet') where dst_port = 7001""").fetchall()
    # SYN, ACK, data, FIN/ACK... exact counts vary with delayed ACKs; payloads do not.
    assert len(rows) == 1 and rows[0][2:] == (5, 15, "closed"), rows


TCP_LOOP = r"""
import socket, sys, threading, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(64)
def serve():
    while True:
        c, _ = srv.accept(); c.sendall(c.recv(100) * 2); c.close()
threading.Thread(target=serve, daemon=True).start()
end = time.time() + seconds
while time.time() < end:
    c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"hello")
    assert c.recv(100) == b"hellohello"; print(c.getsockname()[1], flush=True); c.close()
    time.sleep(0.05)
"""


def test_a_stalled_capture_keeps_every_connection_whole(netns, tmp_path):
    """The capture process stopped (SIGSTOP) for two seconds while connections go on, as a
    starved agent would be: the kernel keeps counting and queueing events, and when it runs
    again every connection must come out whole (its data counters joined to its events before
    its final row), not as a row without payload plus a second, mid-stream one."""
    store = tmp_path / "store"
    p, lines, t = start_live(store, "--read-interval", "200ms", "--tcp-close-linger", "500ms")
    client = subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c", TCP_LOOP, "7201", "4"],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.8)
    p.send_signal(signal.SIGSTOP)
    time.sleep(2.0)
    p.send_signal(signal.SIGCONT)
    out, _ = client.communicate(timeout=30)
    assert client.returncode == 0
    ports = sorted(int(x) for x in out.split())
    assert len(ports) >= 30, ports
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=30) == 0, "".join(lines)
    t.join(5)
    rows = duckdb.sql(f"""select src_port, outcome, src_payload_bytes, dst_payload_bytes
        from read_parquet('{store}/connections/*/*/*.parquet')
        where 7201 in (src_port, dst_port) order by src_port""").fetchall()
    got = [r[0] for r in rows]
    assert got == ports, ("connections not one row each", len(got), len(ports),
                          [r for r in rows if got.count(r[0]) != 1 or r[0] not in ports][:10])
    odd = [r for r in rows if r[1:] != ("closed", 5, 10)]
    assert not odd, (len(odd), odd[:10])


def test_filter_file_changes_without_restart(netns, tmp_path):
    store = tmp_path / "store"
    ff = tmp_path / "filter"
    ff.write_text("# only the first service\nport 7101\n")
    p, lines, t = start_live(store, "--filter-file", str(ff))
    tcp_exchange(7101)
    tcp_exchange(7102)          # filtered out in the kernel
    ff.write_text("port 7102\n")
    deadline = time.time() + 20
    # Set once from the file at start, and again when the file changes (checked every 5 s).
    while sum("ports=1" in x for x in lines) < 2 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    tcp_exchange(7102)          # now captured
    tcp_exchange(7101)          # now filtered out
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=30) == 0, "".join(lines)
    t.join(5)
    rows = duckdb.sql(f"""select dst_port, count(*) from read_parquet('{store}/connections/*/*/*.parquet')
        where protocol = 'tcp' group by 1 order by 1""").fetchall()
    assert rows == [(7101, 1), (7102, 1)], (rows, "".join(lines))
    filtered = duckdb.sql(f"""select sum(packets_filtered)
        from read_parquet('{store}/capture_stats/*/*/*.parquet')""").fetchall()[0][0]
    assert filtered >= 10, filtered


def test_unknown_interface_is_a_clear_error(tmp_path):
    require_tools()
    r = subprocess.run([BIN, "standalone", "--interface", "nosuch0", "--store", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "no interface `nosuch0`" in r.stderr and "ip link" in r.stderr, r.stderr
    assert not podwire_programs()


def test_missing_privileges_are_named(tmp_path):
    require_tools()
    store = tmp_path / "s"
    os.chmod(tmp_path, 0o777)
    # Root without any capability (setpriv clears them for the command).
    r = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", BIN, "standalone",
                        "--interface", "lo", "--store", str(store)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    for needed in ["permission denied", "CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]:
        assert needed in r.stderr, r.stderr
    assert not podwire_programs()
