#!/usr/bin/env python3
"""Live capture cost: packets/s through a veth pair, the share podwire accounts for, and CPU per
million packets in user space and in the kernel programs, beside `tcpdump -w /dev/null`.

    python3 benchmarks/live-bench.py [--podwire target/release/podwire] [--packets 20000000]

Needs root, iproute2, netsniff-ng (trafgen), tcpdump, bpftool, python3 duckdb.

Setup: namespaces pwbench-tx and pwbench-rx joined by a veth pair (10.77.0.1 / 10.77.0.2).
trafgen (one CPU unless --gen-cpus, qdisc bypass) sends 60-byte UDP frames from 256 source ports (256 flows) to
10.77.0.3 behind the receiver, which does not forward them (dropped silently after the TC
ingress hook, so no replies). The capture runs in the receiver namespace on `vb` (ingress):

- podwire: `podwire standalone --interface vb`; packets accounted = the `capture_stats` sum of
  packets_tracked; user CPU = its utime+stime during the traffic; kernel CPU = the programs'
  run_time_ns (kernel.bpf_stats_enabled=1, bpftool prog show).
- tcpdump: `tcpdump -i vb -w /dev/null`; packets = captured; drops from its summary; CPU as above.

The reference for "packets through" is the receiver's rx_packets counter of vb.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

TX, RX = "pwbench-tx", "pwbench-rx"
HZ = os.sysconf("SC_CLK_TCK")


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def netns(ns, *cmd, **kw):
    return sh("ip", "netns", "exec", ns, *cmd, **kw)


def setup():
    teardown()
    sh("ip", "netns", "add", TX)
    sh("ip", "netns", "add", RX)
    sh("ip", "link", "add", "va", "netns", TX, "type", "veth", "peer", "name", "vb", "netns", RX)
    netns(TX, "ip", "addr", "add", "10.77.0.1/24", "dev", "va")
    netns(RX, "ip", "addr", "add", "10.77.0.2/24", "dev", "vb")
    for ns, dev in [(TX, "va"), (RX, "vb")]:
        # No IPv6 neighbour discovery or router solicitations: only the generator's packets.
        netns(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        netns(ns, "ip", "link", "set", dev, "up")
        netns(ns, "ip", "link", "set", "lo", "up")
    netns(RX, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    mac = netns(RX, "cat", "/sys/class/net/vb/address").stdout.strip()
    return mac


def teardown():
    for ns in (TX, RX):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def rx_packets():
    return int(netns(RX, "cat", "/sys/class/net/vb/statistics/rx_packets").stdout)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def prog_runtime():
    """(run_time_ns, run_cnt) summed over podwire's programs."""
    progs = json.loads(sh("bpftool", "prog", "show", "--json").stdout)
    t = c = 0
    for p in progs:
        if p.get("name", "").startswith("podwire_"):
            t += p.get("run_time_ns", 0)
            c += p.get("run_cnt", 0)
    return t, c


def trafgen_conf(dst_mac):
    mac = ", ".join("0x" + b for b in dst_mac.split(":"))
    return f"""{{
  {mac},
  0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
  0x08, 0x00,
  0x45, 0x00, const16(46), const16(0), 0x40, 0x00, 64, 17, csumip(14, 33),
  10, 77, 0, 1,  10, 77, 0, 3,
  0x04, dinc(0, 255, 1), const16(9000), const16(26), const16(0),
  fill(0x00, 18),
}}
"""


GEN_CPUS = 1


def send(conf, packets):
    t0 = time.time()
    netns(TX, "trafgen", "--dev", "va", "--conf", conf, "--num", str(packets), "--cpus", str(GEN_CPUS),
          "--no-sock-mem")
    return time.time() - t0


def run_tool(name, cmd, ready, conf, packets):
    # Packets through vb over the tool's whole life (it is idle before and after the traffic).
    life0 = rx_packets()
    p = subprocess.Popen(["ip", "netns", "exec", RX, *cmd], stderr=subprocess.PIPE, text=True)
    err = []
    deadline = time.time() + 60
    while True:
        line = p.stderr.readline()
        err.append(line)
        if ready in line:
            break
        if p.poll() is not None or time.time() > deadline:
            sys.exit(f"{name} did not start: {''.join(err)}")
    time.sleep(0.5)
    rx0, cpu0, (bt0, bc0) = rx_packets(), cpu_seconds(p.pid), prog_runtime()
    wall = send(conf, packets)
    time.sleep(1.5)  # the last read interval
    rx1, cpu1, (bt1, bc1) = rx_packets(), cpu_seconds(p.pid), prog_runtime()
    p.send_signal(signal.SIGINT)
    rest = p.stderr.read()
    p.wait(timeout=120)
    return {
        "through": rx1 - rx0, "life": rx_packets() - life0, "wall": wall, "user_cpu": cpu1 - cpu0,
        "kernel_ns": bt1 - bt0, "kernel_runs": bc1 - bc0, "stderr": "".join(err) + rest,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--podwire", default="target/release/podwire")
    ap.add_argument("--packets", type=int, default=20_000_000)
    ap.add_argument("--gen-cpus", type=int, default=1, help="trafgen processes (CPUs)")
    args = ap.parse_args()
    global GEN_CPUS
    GEN_CPUS = args.gen_cpus
    assert os.geteuid() == 0, "run as root"
    podwire = os.path.abspath(args.podwire)
    import duckdb  # noqa: E402 (only needed here)

    dst_mac = setup()
    sh("sysctl", "-qw", "kernel.bpf_stats_enabled=1")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "udp.cfg")
            open(conf, "w").write(trafgen_conf(dst_mac))
            # Warm-up and the generator's rate without any capture.
            rx0 = rx_packets()
            wall = send(conf, args.packets)
            base = (rx_packets() - rx0) / wall
            print(f"no capture: {rx_packets() - rx0:,} packets in {wall:.2f} s = {base / 1e6:.2f} M packets/s")

            store = os.path.join(tmp, "store")
            r = run_tool("podwire", [podwire, "standalone", "--interface", "vb", "--store", store,
                                     "--node", "bench"], "capturing on", conf, args.packets)
            tracked = duckdb.sql(f"select sum(packets_tracked), sum(packets_lost), sum(events_lost) "
                                 f"from read_parquet('{store}/capture_stats/*/*/*.parquet')").fetchall()[0]
            rows = duckdb.sql(f"select count(*) from read_parquet('{store}/connections/*/*/*.parquet')").fetchall()[0][0]
            n = r["through"]
            print(f"podwire: {n:,} packets through in {r['wall']:.2f} s = {n / r['wall'] / 1e6:.2f} M packets/s; "
                  f"accounted {tracked[0]:,} of the {r['life']:,} through vb while it ran = "
                  f"{100 * tracked[0] / r['life']:.3f} % (lost {tracked[1]}, events lost {tracked[2]}); "
                  f"{rows} connection rows")
            print(f"  user space: {r['user_cpu']:.2f} CPU s = {r['user_cpu'] / (n / 1e6) * 1000:.2f} ms per M packets, "
                  f"{100 * r['user_cpu'] / r['wall']:.2f} % of one core during the traffic")
            if r["kernel_runs"]:
                print(f"  kernel programs: {r['kernel_ns'] / r['kernel_runs']:.0f} ns per run, "
                      f"{r['kernel_ns'] / 1e9 / (n / 1e6) * 1000:.1f} ms per M packets, "
                      f"{100 * r['kernel_ns'] / 1e9 / r['wall']:.1f} % of one core")

            r = run_tool("tcpdump", ["tcpdump", "-i", "vb", "-n", "-w", "/dev/null"], "listening on",
                         conf, args.packets)
            n = r["through"]
            m = re.search(r"(\d+) packets captured", r["stderr"])
            d = re.search(r"(\d+) packets dropped by kernel", r["stderr"])
            cap = int(m.group(1)) if m else 0
            print(f"tcpdump: {n:,} packets through in {r['wall']:.2f} s = {n / r['wall'] / 1e6:.2f} M packets/s; "
                  f"captured {cap:,} of {r['life']:,} = {100 * cap / r['life']:.3f} %, dropped by kernel {d.group(1) if d else '?'}")
            print(f"  user space: {r['user_cpu']:.2f} CPU s = {r['user_cpu'] / (n / 1e6) * 1000:.2f} ms per M packets, "
                  f"{100 * r['user_cpu'] / r['wall']:.2f} % of one core during the traffic")
    finally:
        sh("sysctl", "-qw", "kernel.bpf_stats_enabled=0")
        teardown()


if __name__ == "__main__":
    main()
