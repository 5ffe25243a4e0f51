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

- the floor (benchmarks/bpf/floor.bpf.c, compiled with clang and attached with tc in turn over
  the same traffic): `floor_empty` (returns at once) and `floor_parse` (parses and adds the packet
  to one hash entry); their run_time_ns per run as above.

The reference for "packets through" is the receiver's rx_packets counter of vb. The last line
is a node budget: CPU of one core (kernel programs + user space) at 100 k and 1 M packets/s, from
the per-packet costs measured here. With --by-kind it then runs benchmarks/kernel-bench.py on the
same binary: ns per packet of each kind (quiet, first packet, SYN/FIN/RST, DNS, filtered, per
interface role) against the floor, without bpf_stats' own clock reads.
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
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    # The socket sender's route to 10.77.0.3, and a fixed neighbour: no ARP on the wire.
    netns(TX, "ip", "route", "add", "10.77.0.3/32", "via", "10.77.0.2", "dev", "va")
    netns(TX, "ip", "neigh", "add", "10.77.0.2", "lladdr", mac, "dev", "va", "nud", "permanent")
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
SENDER = "sockets"


def send(conf, packets):
    t0 = time.time()
    if SENDER == "trafgen":
        netns(TX, "trafgen", "--dev", "va", "--conf", conf, "--num", str(packets), "--cpus", str(GEN_CPUS),
              "--no-sock-mem")
    else:
        netns(TX, sys.executable, os.path.abspath(__file__), "--udp-sender", str(packets), "--gen-cpus",
              str(GEN_CPUS))
    return time.time() - t0


def udp_sender(packets, procs):
    """The same 60-byte frames as trafgen's, sent through UDP sockets (1024-1279 -> 10.77.0.3:9000),
    so the packets are built as a pod's are: headers in the skb's linear part."""
    import socket

    def run(ports, n):
        socks = []
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("10.77.0.1", port))
            s.connect(("10.77.0.3", 9000))
            socks.append(s)
        payload = bytes(18)
        sends = [s.send for s in socks]
        k = len(sends)
        for i in range(n // k):
            for f in sends:
                f(payload)
        for f in sends[:n % k]:
            f(payload)

    ports = list(range(1024, 1280))
    kids = []
    for p in range(procs):
        pid = os.fork()
        if pid == 0:
            try:
                run(ports[p::procs], packets // procs + (1 if p < packets % procs else 0))
            finally:
                os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)


def run_floor(pin, conf, packets):
    """A floor program (pinned at `pin`) attached to vb's ingress with tc while the traffic runs."""
    try:
        netns(RX, "tc", "qdisc", "add", "dev", "vb", "clsact")
        netns(RX, "tc", "filter", "add", "dev", "vb", "ingress", "bpf", "direct-action", "object-pinned", pin)
        progs = json.loads(sh("bpftool", "prog", "show", "pinned", pin, "--json").stdout)
        t0, c0 = progs.get("run_time_ns", 0), progs.get("run_cnt", 0)
        rx0 = rx_packets()
        wall = send(conf, packets)
        progs = json.loads(sh("bpftool", "prog", "show", "pinned", pin, "--json").stdout)
        t1, c1 = progs.get("run_time_ns", 0), progs.get("run_cnt", 0)
        return {"through": rx_packets() - rx0, "wall": wall, "kernel_ns": t1 - t0, "kernel_runs": c1 - c0}
    finally:
        subprocess.run(["ip", "netns", "exec", RX, "tc", "qdisc", "del", "dev", "vb", "clsact"], capture_output=True)


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
    ap.add_argument("--gen-cpus", type=int, default=1, help="sender processes (CPUs)")
    ap.add_argument("--sender", choices=["sockets", "trafgen"], default="sockets",
                    help="sockets: UDP sockets (headers in the linear part, as a pod's packets); trafgen: "
                         "packet-socket frames, all in pages (the programs must pull the headers first)")
    ap.add_argument("--udp-sender", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--attach", action="append", metavar="SOURCE.c:PROGRAM",
                    help="also time this program (compiled, attached like the floor); for experiments")
    ap.add_argument("--by-kind", action="store_true",
                    help="then the ns per packet of each packet kind (benchmarks/kernel-bench.py, same binary)")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor programs (needs clang)")
    args = ap.parse_args()
    if args.udp_sender:
        return udp_sender(args.udp_sender, args.gen_cpus)
    global GEN_CPUS, SENDER
    GEN_CPUS, SENDER = args.gen_cpus, args.sender
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

            podwire_ns = r["kernel_ns"] / max(r["kernel_runs"], 1)
            user_ns = r["user_cpu"] * 1e9 / max(n, 1)

            if not args.no_floor:
                obj = os.path.join(tmp, "floor.o")
                sh(os.environ.get("CLANG", "clang"), "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall",
                   "-D__TARGET_ARCH_x86", "-I/usr/include/x86_64-linux-gnu", f"-I{REPO}/capture/bpf", "-c",
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf", "floor.bpf.c"), "-o", obj)
                pin_dir = os.path.join(tmp, "bpffs")
                os.makedirs(pin_dir)
                sh("mount", "-t", "bpf", "bpf", pin_dir)
                try:
                    sh("bpftool", "prog", "loadall", obj, os.path.join(pin_dir, "floor"))
                    extra = []
                    for i, spec in enumerate(args.attach or []):
                        src, prog = spec.split(":")
                        o = os.path.join(tmp, f"extra{i}.o")
                        sh("clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86",
                           "-I/usr/include/x86_64-linux-gnu", f"-I{REPO}/capture/bpf", "-c", src, "-o", o)
                        sh("bpftool", "prog", "loadall", o, os.path.join(pin_dir, f"extra{i}"))
                        extra.append(os.path.join(pin_dir, f"extra{i}", prog))
                    for prog in ["floor/floor_empty", "floor/floor_parse", *[os.path.relpath(e, pin_dir) for e in extra]]:
                        f = run_floor(os.path.join(pin_dir, prog), conf, args.packets)
                        print(f"floor {prog}: {f['through']:,} packets through in {f['wall']:.2f} s = "
                              f"{f['through'] / f['wall'] / 1e6:.2f} M packets/s; "
                              f"{f['kernel_ns'] / max(f['kernel_runs'], 1):.0f} ns per run")
                finally:
                    subprocess.run(["umount", pin_dir])

            for rate in (100_000, 1_000_000):
                k, u = podwire_ns * rate / 1e9, user_ns * rate / 1e9
                print(f"node budget at {rate / 1e6:g} M packets/s: {100 * (k + u):.1f} % of a core "
                      f"(kernel {100 * k:.1f} %, user space {100 * u:.2f} %)")

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
    if args.by_kind:
        print()
        subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "kernel-bench.py"), "--podwire", podwire],
                       check=True)


if __name__ == "__main__":
    main()
