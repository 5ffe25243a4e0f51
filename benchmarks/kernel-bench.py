#!/usr/bin/env python3
"""Kernel cost per packet of podwire's TC programs, by packet kind, against the floor.

    python3 benchmarks/kernel-bench.py [--podwire target/release/podwire] [--repeat 200000]

Needs root, clang and libbpf headers (the same as building podwire with live capture), bpftool,
iproute2. Runs in a network namespace of its own (pwkbench) with three veth pairs:

- pwk-plain: attached as `--interface` (everything counted);
- pwk-pod:   attached as `--pod-interface` (host side of a pod's veth, pod network 10.244.0.0/16);
- pwk-up:    attached as `--host-interface` (the node's uplink).

`podwire standalone` loads and configures its programs as in production (its own loader, the
object embedded in the binary; user space reads the ring buffer and the flow table as usual).
Each packet kind is then run through the loaded program with BPF_PROG_TEST_RUN (the kernel's own
loop: `repeat` runs of the program on one skb, timed as a whole, so no per-run clock reads and
none of bpf_stats' overhead), on the interface and direction it names:

- a quiet packet of a known flow (UDP, TCP ACK, IPv6; plain, pod veth both ways, uplink);
- pod traffic on the uplink (skipped: counted on the pod veth);
- a flow's first packet (N distinct flows, one run each, against the floor measured the same way);
- TCP SYN, FIN, RST and a DNS query (events for user space, in batches the reader keeps up with);
- a packet outside the capture filter (a second podwire with --only-cidr), and ARP.

The floor, compiled from benchmarks/bpf/floor.bpf.c and loaded with bpftool:

- floor_empty: returns TC_ACT_UNSPEC;
- floor_parse: parses Ethernet/IP/L4 and adds the packet to one hash entry (atomic adds).

With --stages the harness also compiles podwire.bpf.c with -DBENCH_STOP_AFTER=1..7 (the program
returns after stage N; see `STAGE` in the source) and whole, loads each with bpftool (maps
unconfigured: a plain interface, no filter) and times the quiet UDP packet of a known flow
through each, so the difference between neighbours is what that stage costs. --stages-only
does just that and the floor, from the source tree, without podwire.
"""
import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

NS = "pwkbench"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# --- the bpf(2) system call ------------------------------------------------------------------
SYS_BPF = {"x86_64": 321, "aarch64": 280}[platform.machine()]
BPF_OBJ_GET, BPF_PROG_TEST_RUN, BPF_PROG_GET_FD_BY_ID = 7, 10, 13
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def bpf(cmd, attr: bytes):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, 128)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r, buf.raw


def prog_fd_by_id(prog_id):
    return bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<III", prog_id, 0, 0))[0]


def obj_get(path):
    p = ctypes.create_string_buffer(path.encode())
    return bpf(BPF_OBJ_GET, struct.pack("<QII", ctypes.addressof(p), 0, 0))[0]


SKB_CTX_SIZE = 192  # struct __sk_buff
SKB_IFINDEX = 40    # offsetof(struct __sk_buff, ifindex)


def test_run(fd, pkt: bytes, repeat: int, ifindex: int = 0):
    """Runs the program `repeat` times on `pkt`; returns (retval, average ns per run)."""
    data = ctypes.create_string_buffer(pkt, len(pkt))
    out = ctypes.create_string_buffer(len(pkt) + 256)
    ctx = bytearray(SKB_CTX_SIZE)
    struct.pack_into("<I", ctx, SKB_IFINDEX, ifindex)
    ctx_in = ctypes.create_string_buffer(bytes(ctx), SKB_CTX_SIZE)
    attr = struct.pack("<IIIIQQIIIIQQIII", fd, 0, len(pkt), len(out), ctypes.addressof(data),
                       ctypes.addressof(out), repeat, 0, SKB_CTX_SIZE, 0, ctypes.addressof(ctx_in), 0,
                       0, 0, 0)
    _, raw = bpf(BPF_PROG_TEST_RUN, attr)
    retval, = struct.unpack_from("<I", raw, 4)
    duration, = struct.unpack_from("<I", raw, 36)
    return retval, duration


# --- packets ---------------------------------------------------------------------------------
def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def eth(ethertype, payload):
    frame = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))


def ipv4(src, dst, proto, l4):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, ip4(src), ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return eth(0x0800, hdr + l4)


def udp4(src, sport, dst, dport, payload=b"\0" * 18):
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)


def tcp4(src, sport, dst, dport, flags, seq=1000, ack=1, payload=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    return ipv4(src, dst, 6, hdr + payload)


def udp6(src_last, sport, dst_last, dport, payload=b"\0" * 18):
    src = bytes.fromhex("fd00000000000000000000000000") + struct.pack("!H", src_last)
    dst = bytes.fromhex("fd00000000000000000000000000") + struct.pack("!H", dst_last)
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return eth(0x86DD, struct.pack("!IHBB", 6 << 28, len(l4), 17, 64) + src + dst + l4)


def dns_query(src, sport, dst):
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in b"kubernetes.default.svc.cluster.local".split(b"."):
        q += bytes([len(label)]) + label
    q += b"\0" + struct.pack("!HH", 1, 1)
    return udp4(src, sport, dst, 53, q)


ARP = eth(0x0806, bytes(28))
ACK, SYN, FIN, RST, PSH = 0x10, 0x02, 0x01, 0x04, 0x08


# --- setup -----------------------------------------------------------------------------------
def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def setup_netns():
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    sh("ip", "netns", "add", NS)
    for name in ("pwk-plain", "pwk-pod", "pwk-up"):
        sh("ip", "-n", NS, "link", "add", name, "type", "veth", "peer", "name", name + "-p")
        sh("ip", "-n", NS, "link", "set", name, "up")
        sh("ip", "-n", NS, "link", "set", name + "-p", "up")
    sh("ip", "-n", NS, "link", "set", "lo", "up")


def ifindex(name):
    return int(open(f"/sys/class/net/{name}/ifindex").read())


def compile_bpf(src, out, *defines):
    arch = {"x86_64": ("x86", "x86_64-linux-gnu"), "aarch64": ("arm64", "aarch64-linux-gnu")}[platform.machine()]
    sh(os.environ.get("CLANG", "clang"), "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
       f"-D__TARGET_ARCH_{arch[0]}", f"-I/usr/include/{arch[1]}", f"-I{REPO}/capture/bpf", *defines, "-c", src, "-o", out)


def load_object(obj, pin_dir, maps_dir=None):
    """Loads every program of `obj` with bpftool (its maps pinned in `maps_dir`); returns {name: fd}."""
    sh("bpftool", "prog", "loadall", obj, pin_dir, *(["pinmaps", maps_dir] if maps_dir else []))
    return {name: obj_get(os.path.join(pin_dir, name)) for name in os.listdir(pin_dir)}


def hexbytes(b):
    return [f"0x{x:02x}" for x in b]


class Podwire:
    def __init__(self, binary, store, *flags):
        self.p = subprocess.Popen([binary, "standalone", "--store", store, "--node", "bench", *flags],
                                  stderr=subprocess.PIPE, text=True)
        err, deadline = [], time.time() + 120
        while True:
            line = self.p.stderr.readline()
            err.append(line)
            if "capturing on" in line:
                break
            if self.p.poll() is not None or time.time() > deadline:
                sys.exit(f"podwire did not start: {''.join(err)}")
        # Keep reading its log, so a full pipe never stalls it.
        threading.Thread(target=lambda: [None for _ in self.p.stderr], daemon=True).start()
        time.sleep(1)  # the interfaces' roles and pod networks are in the maps
        # Its programs: the newest of each name (bpftool without skeleton support lists no pids;
        # a podwire running elsewhere on this machine loaded its programs earlier).
        ids = {}
        for prog in json.loads(sh("bpftool", "prog", "show", "--json").stdout):
            if prog.get("name") in ("podwire_ingress", "podwire_egress"):
                d = prog["name"].split("_")[1]
                ids[d] = max(ids.get(d, 0), prog["id"])
        if set(ids) != {"ingress", "egress"}:
            sys.exit(f"podwire's programs not found (bpftool prog show; podwire pid {self.p.pid})")
        self.fds = {d: prog_fd_by_id(i) for d, i in ids.items()}

    def stop(self):
        for fd in self.fds.values():
            os.close(fd)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=120)


# The program's parts in order (STAGE(n) in podwire.bpf.c), for a quiet packet of a known flow.
STAGES = {
    1: "per-CPU stats",
    2: "+ interface role, config",
    3: "+ parse",
    4: "+ dedupe, capture filter",
    5: "+ flow key, flow lookup",
    6: "+ TCP state (none for UDP), clock, last_ns",
    7: "+ counters (atomic adds)",
    8: "+ dirty-flow notice (the whole program)",
}


# The floor's known-flow program and packet: timed between the timings of every repeated kind,
# so each kind gets a ratio to the floor measured at the same moment (this machine's speed
# drifts by a fifth between minutes: a shared host).
FLOOR = None


def repeated(fd, pkt, repeat, runs, ifi=0):
    """(median, min, median ratio to the floor) of `runs` timings of `repeat` runs each."""
    test_run(fd, pkt, 1, ifi)  # the flow exists from here on
    t, ratio = [], []
    for _ in range(runs):
        t.append(test_run(fd, pkt, repeat, ifi)[1])
        if FLOOR:
            ratio.append(t[-1] / test_run(FLOOR[0], FLOOR[1], repeat)[1])
    return statistics.median(t), min(t), statistics.median(ratio) if ratio else None


def one_each(fd, pkts, ifi=0):
    """Each packet once (a new flow each): (median, min) of single runs."""
    t = [test_run(fd, p, 1, ifi)[1] for p in pkts]
    return statistics.median(t), min(t), None


def minus(t, d):
    return t[0] - d, t[1] - d, None


def batched(fd, pkt, batch, batches, ifi=0):
    """Event packets: batches small enough for the ring buffer, with time for the reader."""
    t = []
    for _ in range(batches):
        t.append(test_run(fd, pkt, batch, ifi)[1])
        time.sleep(0.05)
    return statistics.median(t), min(t), None


def inner(args):
    tmp = tempfile.mkdtemp(prefix="pwkbench-")
    pin = os.path.join(tmp, "bpffs")
    os.makedirs(pin)
    sh("mount", "-t", "bpf", "bpf", pin)
    rows = []
    R, RUNS = args.repeat, args.runs
    firsts = [udp4("10.77.%d.%d" % (i >> 8 & 255, i & 255), 40000 + i % 20000, "10.77.200.1", 9000)
              for i in range(args.firsts)]
    try:
        floor_o = os.path.join(tmp, "floor.o")
        compile_bpf(os.path.join(HERE, "bpf", "floor.bpf.c"), floor_o)
        os.makedirs(os.path.join(pin, "floor"))
        floor = load_object(floor_o, os.path.join(pin, "floor"))
        quiet = udp4("10.77.0.1", 1234, "10.77.0.3", 9000)
        # A single run is timed with two clock reads around it: that and the run itself are in
        # the empty program's single-run time, which the first-packet rows leave out.
        timer_one = one_each(floor["floor_empty"], [quiet] * args.firsts)[0]
        rows.append(("floor: empty program", repeated(floor["floor_empty"], quiet, R, RUNS)))
        rows.append(("floor: parse + one hash entry, known flow", repeated(floor["floor_parse"], quiet, R, RUNS)))
        global FLOOR
        FLOOR = (floor["floor_parse"], quiet)
        rows.append(("floor: parse + one hash entry, first packet (one run each)",
                     minus(one_each(floor["floor_parse"], firsts), timer_one)))

        plain = ifindex("pwk-plain")
        if not args.stages_only:
            plain, pod, up = ifindex("pwk-plain"), ifindex("pwk-pod"), ifindex("pwk-up")
            store = os.path.join(tmp, "store")
            pw = Podwire(args.podwire, store, "--interface", "pwk-plain", "--pod-interface", "pwk-pod",
                         "--host-interface", "pwk-up", "--pod-cidr", "10.244.0.0/16")
            try:
                ing, egr = pw.fds["ingress"], pw.fds["egress"]
                q = [
                    ("quiet UDP, known flow (plain)", ing, quiet, plain),
                    ("quiet TCP ACK, known flow (plain)", ing, tcp4("10.77.0.1", 1234, "10.77.0.3", 8080, ACK), plain),
                    ("quiet IPv6 UDP, known flow (plain)", ing, udp6(1, 1234, 3, 9000), plain),
                    ("quiet UDP, pod veth, sent by the pod", ing, udp4("10.244.0.5", 1234, "10.96.0.10", 9000), pod),
                    ("quiet UDP, pod veth, into the pod", egr, udp4("10.0.0.9", 9000, "10.244.0.5", 1234), pod),
                    ("quiet UDP, uplink, host network", ing, udp4("192.168.1.1", 1234, "192.168.1.2", 9000), up),
                    ("pod traffic on the uplink (skipped)", ing, udp4("10.244.0.7", 1234, "10.0.0.9", 9000), up),
                    ("ARP (not IP)", ing, ARP, plain),
                ]
                for name, fd, pkt, ifi in q:
                    rows.append((name, repeated(fd, pkt, R, RUNS, ifi)))
                rows.append(("first packet of a flow (one run each)", minus(one_each(ing, firsts, plain), timer_one)))
                ev = [
                    ("TCP SYN (event)", tcp4("10.77.0.1", 2000, "10.77.0.3", 8080, SYN)),
                    ("TCP FIN (event)", tcp4("10.77.0.1", 2001, "10.77.0.3", 8080, FIN | ACK)),
                    ("TCP RST (event)", tcp4("10.77.0.1", 2002, "10.77.0.3", 8080, RST | ACK)),
                    ("DNS query (event, 640-byte snap)", dns_query("10.77.0.1", 3000, "10.77.0.53")),
                ]
                for name, pkt in ev:
                    rows.append((name, batched(ing, pkt, args.event_batch, RUNS * 2, plain)))
            finally:
                pw.stop()
            pw = Podwire(args.podwire, store + "-f", "--interface", "pwk-plain", "--only-cidr", "10.99.0.0/16")
            try:
                rows.append(("outside the capture filter (--only-cidr)", repeated(pw.fds["ingress"], quiet, R, RUNS, plain)))
            finally:
                pw.stop()

        if args.stages or args.stages_only:
            src = os.path.join(REPO, "capture", "bpf", "podwire.bpf.c")
            for n in sorted(STAGES):
                o = os.path.join(tmp, f"stage{n}.o")
                compile_bpf(src, o, *([f"-DBENCH_STOP_AFTER={n}"] if n < 8 else []))
                d, m = os.path.join(pin, f"stage{n}"), os.path.join(pin, f"stage{n}-maps")
                os.makedirs(d)
                fds = load_object(o, d, m)
                # The interface's role (plain), where podwire's loader writes it.
                sh("bpftool", "map", "update", "pinned", os.path.join(m, "if_slots"),
                   "key", *hexbytes(struct.pack("<I", plain % 16384)), "value",
                   *hexbytes(struct.pack("<II", plain, 0)))
                rows.append((f"stage {n}: {STAGES[n]}", repeated(fds["podwire_ingress"], quiet, R, RUNS, plain)))
            rows.append(("whole program, first packet of a flow (one run each, no reader)",
                         minus(one_each(fds["podwire_ingress"], firsts, plain), timer_one)))
    finally:
        subprocess.run(["umount", pin])
        shutil.rmtree(tmp, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"{'packet kind':<{width}}  ns per packet (BPF_PROG_TEST_RUN): median, min of {RUNS} timings;"
          f" median ratio to the known-flow floor timed alongside")
    for name, (med, low, ratio) in rows:
        print(f"{name:<{width}}  {med:8.1f} {low:8.1f}  {f'{ratio:5.2f}x' if ratio else ''}")
    if args.json:
        json.dump(dict(rows), open(args.json, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--podwire", default=os.path.join(REPO, "target/release/podwire"))
    ap.add_argument("--repeat", type=int, default=100_000, help="runs per timing of a repeated packet")
    ap.add_argument("--runs", type=int, default=15, help="timings per kind (the median is reported)")
    ap.add_argument("--firsts", type=int, default=3000, help="distinct flows for the first-packet kind")
    ap.add_argument("--event-batch", type=int, default=2000, help="event packets per batch")
    ap.add_argument("--stages", action="store_true", help="time podwire.bpf.c cut after each stage")
    ap.add_argument("--stages-only", action="store_true",
                    help="only the floor and the stages (no podwire binary needed): for work on the program")
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("kernel-bench.py loads eBPF programs: run it as root")
    for tool in ("clang", "bpftool", "ip"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install clang libbpf-dev bpftool iproute2")
    if not args.stages_only and not os.path.exists(args.podwire):
        sys.exit(f"{args.podwire} not found: cargo build --release -p podwire (or pass --podwire)")
    args.podwire = os.path.abspath(args.podwire)
    if args.inner:
        return inner(args)
    setup_netns()
    try:
        r = subprocess.run(["ip", "netns", "exec", NS, sys.executable, os.path.abspath(__file__), "--inner",
                            *sys.argv[1:]])
        sys.exit(r.returncode)
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


if __name__ == "__main__":
    main()
