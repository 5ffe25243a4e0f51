"""A scene of its own for `podwire why` and `why-not`, played by real programs in network
namespaces and recorded with tcpdump on the node's pod bridge, with the inventory a cluster
would have listed. What the demo scene does not have:

- a pod deleted while a client still connects to its address (the client's neighbor entry
  still names the gone pod's MAC, as it does for seconds after a deletion; it is pinned so the
  test does not race the kernel's neighbor timers), then the address reused by a pod of another
  workload: a stale endpoint, with who held the address before and after;
- a slow, lossy link (`tc netem` is not in this kernel): the client's bridge port is shaped by a
  token bucket (`tbf`, 8 Mbit/s, 100 ms of queue) kept full by a paced 12 Mbit/s UDP stream from
  another pod while a bulk download runs, so the client's handshakes wait behind the queue, and
  an eBPF classifier (lossy.bpf.c) drops 8 % of the packets towards the client at random. The capture point (the bridge) is before both, so
  it sees each lost packet and its retransmission, as a node's capture sees a lossy path. The
  same pair's handshakes in the window just before are the baseline;
- connections to an external address made without a lookup (an address from configuration),
  before another client resolves the name: `dst.name` is empty on them.

Times are epoch ms; the inventory's timestamps have whole seconds, so the deletion and the
new pod's creation fall on second boundaries the traffic waits for.
"""
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import time

PREFIX = "pwwhy-"
NODE_IP = "10.244.9.1"
EXT_GW = "198.51.100.1"
EXT_IP = "198.51.100.20"
STALE_IP = "10.244.9.20"
NAME = "api.example.test"
PODS = {  # name: (ip, mac, namespace, pod, workload)
    "checkout": ("10.244.9.11", "02:00:0a:f4:09:0b", "shop", "checkout-5b7d9c8f4d-k2m9x", "checkout"),
    "batch": ("10.244.9.12", "02:00:0a:f4:09:0c", "batch", "export-7f6c5d4b3a-p8q2w", "export"),
    "ledger": ("10.244.9.30", "02:00:0a:f4:09:1e", "shop", "ledger-6c8d7e9f5b-r4t7y", "ledger"),
    "cart": (STALE_IP, "02:00:0a:f4:09:14", "shop", "cart-7d9f8c6b5a-h3j5k", "cart"),
    "payments": (STALE_IP, "02:00:0a:f4:09:24", "shop", "payments-8e7f6d5c4b-w6z8v", "payments"),
    "dns": ("10.244.9.53", "02:00:0a:f4:09:35", "kube-system", "coredns-5d78c9869d-n7b4c", "coredns"),
}
PHASE_S = 12  # length of the baseline window and of the slow window
SHAPED_MBIT = 8  # the slow link's rate
FLOOD_MBIT = 12  # the paced UDP stream that keeps its queue full
UDP_PORT = 9
# The stream's receiver (an open port, so no ICMP errors) and sender, paced to a rate in Mbit/s.
UDP_SINK = f"import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', {UDP_PORT}))\ntime.sleep(120)"
UDP_FLOOD = (
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"dst, rate = (sys.argv[1], {UDP_PORT}), float(sys.argv[2]) * 1e6 / 8\n"
    "payload, sent, t0 = bytes(1200), 0, time.monotonic()\n"
    "while True:\n"
    "    if sent < (time.monotonic() - t0) * rate:\n"
    "        s.sendto(payload, dst)\n"
    "        sent += len(payload)\n"
    "    else:\n"
    "        time.sleep(0.001)\n"
)
LOSS_PER_MILLE = 80


def require_tools():
    assert os.geteuid() == 0, "the why scene needs root (network namespaces, tcpdump): run as root"
    for tool, pkg in [("ip", "iproute2"), ("tc", "iproute2"), ("tcpdump", "tcpdump"),
                      ("dnsmasq", "dnsmasq"), ("curl", "curl"), ("dig", "dnsutils"),
                      ("ethtool", "ethtool"), ("clang", "clang")]:
        assert shutil.which(tool), f"`{tool}` is missing: apt-get install {pkg} (tests/run-all.sh does)"
    assert os.path.exists("/usr/include/bpf/bpf_helpers.h"), \
        "libbpf's headers are missing: apt-get install libbpf-dev (tests/run-all.sh does)"


# A threaded static file server. Not `python3 -m http.server`: it asks the host's resolver for
# its own name at start, which is traffic the scene does not want.
SERVER = """
import functools, http.server, socketserver, sys
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])
socketserver.ThreadingTCPServer((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
"""


def no_ipv6(key):
    """IPv4 only: no router solicitations or duplicate address probes in the capture."""
    sh("ip", "netns", "exec", PREFIX + key, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
       "net.ipv6.conf.default.disable_ipv6=1")


def sh(*cmd, check=True, **kw):
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, **kw)


def nsx(ns, *cmd, **kw):
    return sh("ip", "netns", "exec", PREFIX + ns, *cmd, **kw)


def now_ms():
    return int(time.time() * 1000)


def rfc3339(s):
    return datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_second():
    """Sleeps to just after the next whole second and returns it (epoch s)."""
    s = math.ceil(time.time() + 0.05)
    time.sleep(max(0.0, s + 0.15 - time.time()))
    return s


class Scene:
    def __init__(self, work):
        self.work = str(work)
        self.procs = []
        self.t = {}

    # -- plumbing ---------------------------------------------------------------------------
    def add_pod(self, key):
        ip, mac, *_ = PODS[key]
        ns = PREFIX + key
        sh("ip", "netns", "add", ns)
        no_ipv6(key)
        sh("ip", "-n", PREFIX + "node", "link", "add", f"v-{key}", "type", "veth", "peer", "name",
           "eth0", "netns", ns)
        sh("ip", "-n", PREFIX + "node", "link", "set", f"v-{key}", "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "address", mac)
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", NODE_IP)
        # Checksums in software, so the capture's are valid (and segments stay MTU-sized).
        nsx(key, "ethtool", "-K", "eth0", "tx", "off")

    def spawn(self, ns, *cmd):
        p = subprocess.Popen(["ip", "netns", "exec", PREFIX + ns, *cmd], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        self.procs.append(p)
        return p

    def http_server(self, key, port, root):
        ip = PODS.get(key, (EXT_IP,))[0]
        p = self.spawn(key, "python3", "-c", SERVER, ip, str(port), root)
        for _ in range(100):
            if nsx(key, "bash", "-c", f"exec 3<>/dev/tcp/{ip}/{port}", check=False).returncode == 0:
                return p
            time.sleep(0.05)
        raise AssertionError(f"http server in {key} did not start: {p.stderr.read1(2000)!r}")

    def curl(self, key, url, timeout=10, connect_timeout=None):
        args = ["curl", "-s", "-o", "/dev/null", "--max-time", str(timeout)]
        if connect_timeout:
            args += ["--connect-timeout", str(connect_timeout)]
        return nsx(key, *args, url, check=False).returncode

    def up(self):
        require_tools()
        self.down()
        sh("ip", "netns", "add", PREFIX + "node")
        no_ipv6("node")
        n = lambda *a: sh("ip", "-n", PREFIX + "node", *a)
        n("link", "set", "lo", "up")
        n("link", "add", "br0", "type", "bridge")
        n("addr", "add", f"{NODE_IP}/24", "dev", "br0")
        n("link", "set", "br0", "up")
        nsx("node", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for key in ("checkout", "batch", "ledger", "cart", "dns"):
            self.add_pod(key)
        # The external host, reached through the node's uplink (not the bridge).
        sh("ip", "netns", "add", PREFIX + "ext")
        no_ipv6("ext")
        n("link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", PREFIX + "ext")
        n("addr", "add", f"{EXT_GW}/24", "dev", "ext0")
        n("link", "set", "ext0", "up")
        e = lambda *a: sh("ip", "-n", PREFIX + "ext", *a)
        e("link", "set", "lo", "up")
        e("addr", "add", f"{EXT_IP}/24", "dev", "eth0")
        e("link", "set", "eth0", "up")
        e("route", "add", "default", "via", EXT_GW)
        nsx("ext", "ethtool", "-K", "eth0", "tx", "off")
        www = os.path.join(self.work, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("<html><body>podwire why scene</body></html>\n")
        with open(os.path.join(www, "big"), "wb") as f:
            f.write(os.urandom(1024 * 1024))
        arch = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
        sh("clang", "-O2", "-g", "-target", "bpf", f"-DLOSS_PER_MILLE={LOSS_PER_MILLE}",
           f"-I/usr/include/{arch}-linux-gnu", "-c", os.path.join(os.path.dirname(__file__), "lossy.bpf.c"),
           "-o", os.path.join(self.work, "lossy.o"))
        for key in ("ledger", "cart"):
            self.http_server(key, 8080, www)
        self.http_server("ext", 80, www)
        self.spawn("dns", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                   "--no-hosts", "--no-poll", "--bind-interfaces", f"--listen-address={PODS['dns'][0]}",
                   "--port=53", "--user=root", f"--pid-file={self.work}/dnsmasq.pid",
                   f"--address=/{NAME}/{EXT_IP}", "--local-ttl=60")
        for _ in range(100):
            if nsx("checkout", "dig", "+short", "+time=1", "+tries=1", f"@{PODS['dns'][0]}", "ready.probe",
                   check=False).returncode == 0:
                break
            time.sleep(0.05)

    def down(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.procs = []
        for key in ["node", "ext", *PODS]:
            sh("ip", "netns", "del", PREFIX + key, check=False)

    # -- the play -------------------------------------------------------------------------------
    def play(self, pcap):
        t = self.t
        dump = subprocess.Popen(["ip", "netns", "exec", PREFIX + "node", "tcpdump", "-i", "br0", "-s", "0",
                                 "-U", "--immediate-mode", "-Z", "root", "-w", pcap],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = dump.stderr.readline()
        assert "listening on" in line, f"tcpdump did not start: {line}"
        t["start"] = now_ms()
        # An external address from configuration, no lookup.
        for _ in range(2):
            assert self.curl("batch", f"http://{EXT_IP}/") == 0
        # The cart pod works, is deleted, and is still called.
        for _ in range(3):
            assert self.curl("checkout", f"http://{STALE_IP}:8080/") == 0
        for p in self.procs[:]:
            if p.args[3:4] == [PREFIX + "cart"]:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait()
                self.procs.remove(p)
        sh("ip", "netns", "del", PREFIX + "cart")
        t["deleted_s"] = next_second()
        nsx("checkout", "ip", "neigh", "replace", STALE_IP, "lladdr", PODS["cart"][1], "dev", "eth0",
            "nud", "permanent")
        for _ in range(3):
            assert self.curl("checkout", f"http://{STALE_IP}:8080/", connect_timeout=1.5) != 0
        nsx("checkout", "ip", "neigh", "del", STALE_IP, "dev", "eth0")
        t["gap_end"] = now_ms()
        # The address reused by a pod of another workload.
        t["created_s"] = next_second()
        self.add_pod("payments")
        self.http_server("payments", 8080, os.path.join(self.work, "www"))
        for _ in range(3):
            assert self.curl("checkout", f"http://{STALE_IP}:8080/") == 0
        # Now a client resolves the external name and connects by it.
        t["lookup"] = now_ms()
        out = nsx("checkout", "dig", "+short", "+time=2", "+tries=1", f"@{PODS['dns'][0]}", NAME).stdout
        assert out.strip() == EXT_IP, out
        assert self.curl("checkout", f"http://{EXT_IP}/") == 0
        # Baseline: quick handshakes to the ledger.
        time.sleep(0.5)
        t["baseline"] = now_ms()
        for _ in range(6):
            assert self.curl("checkout", f"http://{PODS['ledger'][0]}:8080/") == 0
            time.sleep(0.2)
        time.sleep(max(0.0, (t["baseline"] + PHASE_S * 1000 - now_ms()) / 1000))
        # The slow, lossy link: the checkout pod's bridge port shaped while a download fills it.
        t["slow"] = now_ms()
        tc = lambda *a: sh("ip", "netns", "exec", PREFIX + "node", "tc", *a)
        tc("qdisc", "add", "dev", "v-checkout", "root", "tbf", "rate", f"{SHAPED_MBIT}mbit", "burst", "32kb",
           "latency", "100ms")
        tc("qdisc", "add", "dev", "v-checkout", "clsact")
        tc("filter", "add", "dev", "v-checkout", "egress", "bpf", "direct-action", "obj",
           os.path.join(self.work, "lossy.o"), "sec", "classifier")
        bulk = subprocess.Popen(["ip", "netns", "exec", PREFIX + "checkout", "curl", "-s", "-o", "/dev/null",
                                 "--max-time", "30", f"http://{PODS['ledger'][0]}:8080/big"])
        # A paced UDP stream above the shaped rate keeps the queue full while the handshakes run
        # (a TCP download alone backs off after each loss, and the queue drains in its pauses).
        sink = subprocess.Popen(["ip", "netns", "exec", PREFIX + "checkout", "python3", "-c", UDP_SINK])
        flood = subprocess.Popen(["ip", "netns", "exec", PREFIX + "batch", "python3", "-c", UDP_FLOOD,
                                  PODS["checkout"][0], str(FLOOD_MBIT)])
        time.sleep(0.7)
        for _ in range(6):
            assert self.curl("checkout", f"http://{PODS['ledger'][0]}:8080/") == 0
            time.sleep(0.2)
        flood.kill()
        sink.kill()
        flood.wait(timeout=10)
        sink.wait(timeout=10)
        assert bulk.wait(timeout=40) == 0
        tc("qdisc", "del", "dev", "v-checkout", "clsact")
        tc("qdisc", "del", "dev", "v-checkout", "root")
        # The download may outlast the window: TCP under 8 % loss backs off for seconds at a time
        # (it took more than 20 s in one full run). The windows are about when connections start,
        # and none starts after the handshakes above, so a late end changes no window's rows.
        time.sleep(max(0.0, (t["slow"] + PHASE_S * 1000 - now_ms()) / 1000) + 0.3)
        t["end"] = now_ms()
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)

    # -- the inventory ----------------------------------------------------------------------------
    def inventory(self, path):
        t = self.t
        before = t["start"] // 1000 - 600
        items = [{
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-w", "creationTimestamp": rfc3339(before - 600)},
            "spec": {"podCIDR": "10.244.9.0/24"},
            "status": {"addresses": [{"address": NODE_IP, "type": "InternalIP"}]},
        }]
        for key, (ip, _, ns, pod, workload) in PODS.items():
            created = t["created_s"] if key == "payments" else before
            template_hash = pod.split("-")[-2]
            meta = {
                "name": pod, "namespace": ns, "creationTimestamp": rfc3339(created),
                "labels": {"app": workload, "pod-template-hash": template_hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True,
                                     "name": f"{workload}-{template_hash}", "uid": f"uid-{key}"}],
                "uid": f"pod-{key}",
            }
            if key == "cart":
                meta["deletionTimestamp"] = rfc3339(t["deleted_s"])
            items.append({
                "apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": {"nodeName": "node-w", "containers": [{"name": workload, "image": f"{workload}:1"}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": NODE_IP,
                           "startTime": rfc3339(created + 1)},
            })
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}, f, indent=1)
