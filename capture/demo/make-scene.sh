#!/usr/bin/env bash
# make-scene.sh — build a tiny, self-contained "Kubernetes node" out of Linux
# network namespaces, run a few real client/server programs in it, capture the
# traffic on the node's pod bridge, and write a matching Kubernetes inventory.
#
# Outputs (next to this script):
#   scene.pcap      pcap, link type EN10MB (Ethernet), snaplen 0, taken on the
#                   bridge "br0" inside the node namespace
#   inventory.json  what `kubectl get pods,services,nodes -A -o json` would print
#
# Run as root:  sudo capture/demo/make-scene.sh
#
# Used by the live-capture test (tests/python/test_live.py) with two settings:
#   PWSCENE_OUT=DIR     write scene.pcap and inventory.json into DIR instead
#   PWSCENE_LIVE='CMD'  run CMD (bash -c) inside the node namespace while the
#                       traffic runs, beside tcpdump; it must print "capturing
#                       on" to stderr when ready; it gets SIGINT after the
#                       traffic and must exit 0. Its stderr: DIR/live.log.
#                       DIR/inventory-live.json is written before it starts.
#
# Nothing here touches a real network: every address below exists only inside
# the namespaces this script creates (prefix "pwdemo-"), and they are all
# deleted again on exit, also on failure or Ctrl-C.
#
# Layout (see README.md for the list of expected connections):
#
#   ns pwdemo-node      br0 10.244.1.1/24 (the node; Node InternalIP)
#                       ext0 203.0.113.1/24 (uplink to the "internet")
#                       blackhole route 203.0.113.99 (never answers)
#     |- veth-web      -- ns pwdemo-web       eth0 10.244.1.10  shop/web-…
#     |- veth-frontend -- ns pwdemo-frontend  eth0 10.244.1.11  shop/frontend-…
#     |- veth-report   -- ns pwdemo-report    eth0 10.244.1.12  batch/report-29000000-…
#     |- veth-coredns  -- ns pwdemo-coredns   eth0 10.244.1.13 + 10.96.0.10/32
#     |                                        kube-system/coredns-… (svc kube-dns)
#     `- ext0          -- ns pwdemo-ext       eth0 203.0.113.10  (api.example.com)
set -euo pipefail

# fd 3 = the real stderr. A trap can fire while a command whose stderr goes to
# /dev/null is running, and would inherit that redirection.
exec 3>&2

DEMO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=pwdemo-
NAMESPACES=(node web frontend report coredns ext)

# Fixed addresses.
NODE_IP=10.244.1.1
WEB_IP=10.244.1.10
FRONTEND_IP=10.244.1.11
REPORT_IP=10.244.1.12
COREDNS_IP=10.244.1.13
DNS_SVC_IP=10.96.0.10          # kube-dns ClusterIP, assigned to the DNS pod itself
EXT_GW_IP=203.0.113.1          # node side of the uplink
EXT_IP=203.0.113.10            # "api.example.com"
DEAD_IP=203.0.113.99           # black-holed in the node: SYNs go unanswered

# Ports.
WEB_HTTP_PORT=8080             # python3 -m http.server in pod web
WEB_CLOSED_TCP_PORT=8081       # nothing listens: connection refused (RST)
WEB_RESET_PORT=9000            # accepts, reads, then aborts with RST (SO_LINGER 0)
WEB_UDP_ECHO_PORT=7            # UDP echo
WEB_CLOSED_UDP_PORT=9999       # nothing listens: ICMP port unreachable
EXT_HTTP_PORT=80               # http server on the external host
DEAD_PORT=5432                 # "database" at DEAD_IP that never answers

log()  { printf '[make-scene] %s\n' "$*"; }
die()  { printf '[make-scene] ERROR: %s\n' "$*" >&3; exit 1; }

# ---------------------------------------------------------------------------
# 0. Prerequisites
# ---------------------------------------------------------------------------
[[ ${EUID:-$(id -u)} -eq 0 ]] || die "must run as root (network namespaces, tcpdump)"

missing_pkgs=()
need() {  # need COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 || missing_pkgs+=("$2")
}
need ip       iproute2
need ss       iproute2
need tcpdump  tcpdump
need dnsmasq  dnsmasq
need curl     curl
need python3  python3
need dig      dnsutils
need ethtool  ethtool
need unshare  util-linux
need mount    mount
if ((${#missing_pkgs[@]})); then
    # de-duplicate the package names
    pkgs=$(printf '%s\n' "${missing_pkgs[@]}" | sort -u | tr '\n' ' ')
    echo "make-scene: missing prerequisites; install them with:" >&2
    echo "  apt-get install -y ${pkgs% }" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
# Cleanup: kill what we started, delete our namespaces, remove the temp dir.
# ---------------------------------------------------------------------------
WORK=$(mktemp -d -t pwdemo.XXXXXX)
BG_PIDS=()

cleanup() {
    local rc=$?
    set +e
    for pid in "${BG_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for ns in "${NAMESPACES[@]}"; do
        # anything still running inside one of *our* namespaces was started by us
        local pids
        pids=$(ip netns pids "$PREFIX$ns" 2>/dev/null)
        # shellcheck disable=SC2086  # one pid per word
        [[ -n $pids ]] && kill $pids 2>/dev/null
    done
    for pid in "${BG_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for ns in "${NAMESPACES[@]}"; do
        ip netns del "$PREFIX$ns" 2>/dev/null
    done
    if [[ -n ${PWDEMO_KEEP_WORK:-} ]]; then
        echo "[make-scene] work dir kept: $WORK" >&3
    else
        rm -rf "$WORK"
    fi
    if ((rc != 0)); then
        echo "[make-scene] failed (exit $rc); namespaces removed, outputs left untouched" >&3
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Leftovers of an earlier run that was killed hard (SIGKILL) would make
# "ip netns add" fail: remove them first (only our own prefix).
for ns in "${NAMESPACES[@]}"; do
    ip netns del "$PREFIX$ns" 2>/dev/null || true
done

# Run a command inside one of our namespaces. (Long-running servers below are
# started with a plain "ip netns exec ... &" instead, so that $! is the pid of
# the server itself and not of a subshell.)
nsx() { local ns=$1; shift; ip netns exec "$PREFIX$ns" "$@"; }

# Run a command inside a pod namespace with the pod's /etc/resolv.conf
# (nameserver = kube-dns ClusterIP), bind-mounted in a private mount namespace
# so the host's /etc/resolv.conf is never changed.
RESOLV=$WORK/pod-resolv.conf
printf 'nameserver %s\noptions attempts:1 timeout:2\n' "$DNS_SVC_IP" >"$RESOLV"
pod_run() {
    local ns=$1; shift
    # shellcheck disable=SC2016  # $0/$@ are expanded by the inner sh
    ip netns exec "$PREFIX$ns" unshare --mount --propagation private \
        sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$RESOLV" "$@"
}

# Wait until something listens on ADDR:PORT inside NS (checked with ss inside
# that namespace, so the check itself puts no packet on the bridge).
wait_listen() {  # wait_listen NS t|u ADDR:PORT
    local ns=$1 proto=$2 addr=$3
    for _ in $(seq 100); do
        if nsx "$ns" ss -Hln"$proto" "src $addr" | grep -q .; then return 0; fi
        sleep 0.1
    done
    die "nothing listening on $addr ($proto) in $PREFIX$ns"
}

# ---------------------------------------------------------------------------
# 1. Namespaces, bridge, veth pairs
# ---------------------------------------------------------------------------
log "creating namespaces ${PREFIX}{$(IFS=,; echo "${NAMESPACES[*]}")}"
for ns in "${NAMESPACES[@]}"; do
    ip netns add "$PREFIX$ns"
    # IPv4 only: no IPv6 link-local / router solicitation / MLD noise in the capture
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    nsx "$ns" ip link set lo up
done

# The node: a bridge for the pods (like cni0 / cbr0) that is also the pods'
# default gateway, and it routes between pods and the uplink.
ip -n "${PREFIX}node" link add name br0 address 02:00:0a:f4:01:01 type bridge \
    stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "${PREFIX}node" addr add "$NODE_IP/24" dev br0
ip -n "${PREFIX}node" link set br0 up
nsx node sysctl -qw net.ipv4.ip_forward=1
# 203.0.113.99 is "somewhere on the internet" but never answers: the node drops
# packets for it silently (a blackhole route sends no ICMP, no RST).
ip -n "${PREFIX}node" route add blackhole "$DEAD_IP/32"

# add_pod NS IP MAC IFINDEX: veth pair, node end (interface index IFINDEX) enslaved to br0, pod
# end is eth0.
add_pod() {
    local ns=$1 ip=$2 mac=$3 ifindex=$4
    ip -n "${PREFIX}node" link add "veth-$ns" index "$ifindex" type veth peer name eth0 netns "$PREFIX$ns"
    ip -n "${PREFIX}node" link set "veth-$ns" master br0
    ip -n "${PREFIX}node" link set "veth-$ns" up
    ip -n "$PREFIX$ns" link set eth0 address "$mac"
    ip -n "$PREFIX$ns" addr add "$ip/24" dev eth0
    ip -n "$PREFIX$ns" link set eth0 up
    ip -n "$PREFIX$ns" route add default via "$NODE_IP"
    # ClusterIPs are on-link (the DNS pod answers ARP for 10.96.0.10), so a DNS
    # query crosses the bridge exactly once, addressed to the ClusterIP, like
    # traffic seen behind kube-proxy on the server side.
    ip -n "$PREFIX$ns" route add 10.96.0.0/12 dev eth0 scope link
    # veth leaves checksums to "hardware" by default; compute them in software
    # so the capture has valid TCP/UDP checksums.
    nsx "$ns" ethtool -K eth0 tx off >/dev/null
}
# The node ends' interface indexes: web's and frontend's share a slot of the capture programs'
# interface table (16384 slots), as on a node that has made many pods, so the live capture's
# fallback for such an interface is exercised (a wrong role there double-counts pod traffic).
add_pod web      "$WEB_IP"      02:00:0a:f4:01:0a 40
add_pod frontend "$FRONTEND_IP" 02:00:0a:f4:01:0b $((40 + 16384))
add_pod report   "$REPORT_IP"   02:00:0a:f4:01:0c 41
add_pod coredns  "$COREDNS_IP"  02:00:0a:f4:01:0d $((42 + 2 * 16384))
# The DNS pod also holds the kube-dns ClusterIP itself.
ip -n "${PREFIX}coredns" addr add "$DNS_SVC_IP/32" dev eth0

# The external host: own namespace, reached only through the node (ext0).
ip -n "${PREFIX}node" link add ext0 type veth peer name eth0 netns "${PREFIX}ext"
ip -n "${PREFIX}node" addr add "$EXT_GW_IP/24" dev ext0
ip -n "${PREFIX}node" link set ext0 up
ip -n "${PREFIX}ext" link set eth0 address 02:00:cb:00:71:0a
ip -n "${PREFIX}ext" addr add "$EXT_IP/24" dev eth0
ip -n "${PREFIX}ext" link set eth0 up
ip -n "${PREFIX}ext" route add default via "$EXT_GW_IP"
nsx ext ethtool -K eth0 tx off >/dev/null

# ---------------------------------------------------------------------------
# 2. Servers
# ---------------------------------------------------------------------------
log "starting servers"
mkdir -p "$WORK/www-web" "$WORK/www-ext"
cat >"$WORK/www-web/index.html" <<'EOF'
<!doctype html><title>shop</title><h1>shop web</h1>
EOF
cat >"$WORK/www-web/products.json" <<'EOF'
[{"id":1,"name":"teapot","price":12.5},{"id":2,"name":"mug","price":4.0}]
EOF
cat >"$WORK/www-web/orders.csv" <<'EOF'
order_id,product_id,qty
1001,1,2
1002,2,6
EOF
cat >"$WORK/www-ext/index.html" <<'EOF'
{"service":"api.example.com","status":"ok"}
EOF

# web: HTTP on 8080 (HTTP/1.0, closes after each response)
ip netns exec "${PREFIX}web" python3 -m http.server "$WEB_HTTP_PORT" --bind "$WEB_IP" \
    --directory "$WORK/www-web" >"$WORK/web-http.log" 2>&1 &
BG_PIDS+=($!)

# web: UDP echo on 7
ip netns exec "${PREFIX}web" python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
' "$WEB_IP" "$WEB_UDP_ECHO_PORT" >"$WORK/web-udp.log" 2>&1 &
BG_PIDS+=($!)

# web: TCP 9000 accepts, reads the request, then aborts the connection:
# SO_LINGER {on, 0} makes close() send a RST instead of a FIN.
ip netns exec "${PREFIX}web" python3 -u -c '
import socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
while True:
    c, peer = s.accept()
    c.recv(1024)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
' "$WEB_IP" "$WEB_RESET_PORT" >"$WORK/web-reset.log" 2>&1 &
BG_PIDS+=($!)

# coredns pod: dnsmasq standing in for CoreDNS, listening on the ClusterIP.
#   web.shop.svc.cluster.local -> 10.244.1.10 (the web pod)
#   api.example.com            -> 203.0.113.10
#   anything else under cluster.local -> NXDOMAIN (answered locally)
# No upstream servers at all (--no-resolv): it never forwards anything.
ip netns exec "${PREFIX}coredns" dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --no-resolv --no-hosts --no-poll --no-negcache \
    --bind-interfaces --listen-address="$DNS_SVC_IP" --port=53 \
    --user=root --pid-file="$WORK/dnsmasq.pid" \
    --local=/cluster.local/ \
    --host-record="web.shop.svc.cluster.local,$WEB_IP" \
    --address="/api.example.com/$EXT_IP" \
    --log-queries --log-facility="$WORK/dnsmasq.log" \
    >"$WORK/dnsmasq.out" 2>&1 &
BG_PIDS+=($!)

# external host: HTTP on 80
ip netns exec "${PREFIX}ext" python3 -m http.server "$EXT_HTTP_PORT" --bind "$EXT_IP" \
    --directory "$WORK/www-ext" >"$WORK/ext-http.log" 2>&1 &
BG_PIDS+=($!)

wait_listen web     t "$WEB_IP:$WEB_HTTP_PORT"
wait_listen web     u "$WEB_IP:$WEB_UDP_ECHO_PORT"
wait_listen web     t "$WEB_IP:$WEB_RESET_PORT"
wait_listen coredns u "$DNS_SVC_IP:53"
wait_listen ext     t "$EXT_IP:$EXT_HTTP_PORT"

# ---------------------------------------------------------------------------
# 3. Capture on the bridge
# ---------------------------------------------------------------------------
# Promiscuous (tcpdump's default) is required: only then does a Linux bridge
# hand pod-to-pod frames that it merely switches to its own interface's taps.
# write_inventory START END FILE: the inventory as of a capture from START to END (epoch s).
write_inventory() {
CAPTURE_START=$1 CAPTURE_END=$2 \
NODE_IP=$NODE_IP WEB_IP=$WEB_IP FRONTEND_IP=$FRONTEND_IP REPORT_IP=$REPORT_IP \
COREDNS_IP=$COREDNS_IP DNS_SVC_IP=$DNS_SVC_IP WEB_HTTP_PORT=$WEB_HTTP_PORT \
python3 - "$3" <<'PY'
import json, os, sys, time

env = os.environ
t0 = int(env["CAPTURE_START"])   # capture start (epoch seconds)
t1 = int(env["CAPTURE_END"])     # capture end

def ts(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

NODE = "node-a"
NODE_IP = env["NODE_IP"]
HTTP_PORT = int(env["WEB_HTTP_PORT"])

def pod(*, name, namespace, uid, labels, created, owner, containers, ip,
        phase="Running", finished=None, rv):
    started = created + 1
    cstatuses = []
    for c in containers:
        st = {
            "containerID": "containerd://" + (uid.replace("-", "") * 2)[:64],
            "image": c["image"],
            "imageID": c["image"].split(":")[0] + "@sha256:" + "0" * 64,
            "lastState": {},
            "name": c["name"],
            "restartCount": 0,
        }
        if finished is None:
            st.update(ready=True, started=True,
                      state={"running": {"startedAt": ts(started + 2)}})
        else:
            st.update(ready=False, started=False,
                      state={"terminated": {
                          "containerID": st["containerID"],
                          "exitCode": 0,
                          "reason": "Completed",
                          "startedAt": ts(started + 2),
                          "finishedAt": ts(finished),
                      }})
        cstatuses.append(st)
    if finished is None:
        conditions = [
            {"type": t, "status": "True", "lastProbeTime": None,
             "lastTransitionTime": ts(started + (3 if t in ("Ready", "ContainersReady") else 0))}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ]
    else:
        conditions = [
            {"type": "Initialized", "status": "True", "reason": "PodCompleted",
             "lastProbeTime": None, "lastTransitionTime": ts(started)},
            {"type": "Ready", "status": "False", "reason": "PodCompleted",
             "lastProbeTime": None, "lastTransitionTime": ts(finished)},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted",
             "lastProbeTime": None, "lastTransitionTime": ts(finished)},
            {"type": "PodScheduled", "status": "True",
             "lastProbeTime": None, "lastTransitionTime": ts(created)},
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "creationTimestamp": ts(created),
            "generateName": name.rsplit("-", 1)[0] + "-",
            "labels": labels,
            "name": name,
            "namespace": namespace,
            "ownerReferences": [owner],
            "resourceVersion": str(rv),
            "uid": uid,
        },
        "spec": {
            "containers": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imagePullPolicy": "IfNotPresent",
                    "ports": c.get("ports", []),
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
                for c in containers
            ],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "nodeName": NODE,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always" if finished is None else "OnFailure",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
        },
        "status": {
            "conditions": conditions,
            "containerStatuses": cstatuses,
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "phase": phase,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "qosClass": "BestEffort",
            "startTime": ts(started),
        },
    }

def rs_owner(name, uid):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}

JOB = "report-29000000"
JOB_UID = "7c1e4b2a-9d3f-4e8a-b6c5-0f2d1a3e5b70"

pods = [
    # batch/report-29000000-bx6kt: pod of Job report-29000000 (from CronJob "report")
    pod(name="report-29000000-bx6kt", namespace="batch",
        uid="3f6a2c1d-8b4e-4f7a-9c2d-5e1b0a7d6c43",
        labels={
            "app": "report",
            "batch.kubernetes.io/controller-uid": JOB_UID,
            "batch.kubernetes.io/job-name": JOB,
            "controller-uid": JOB_UID,
            "job-name": JOB,
        },
        created=t0 - 60,
        owner={"apiVersion": "batch/v1", "kind": "Job", "name": JOB, "uid": JOB_UID,
               "controller": True, "blockOwnerDeletion": True},
        containers=[{"name": "report", "image": "registry.example.com/batch/report:0.9.0"}],
        ip=env["REPORT_IP"], phase="Succeeded", finished=t1 + 2, rv=48213),
    # kube-system/coredns-5d78c9869d-8wfkq: Deployment coredns
    pod(name="coredns-5d78c9869d-8wfkq", namespace="kube-system",
        uid="a1b2c3d4-0e1f-4a5b-8c6d-7e8f9a0b1c2d",
        labels={"app": "coredns", "k8s-app": "kube-dns",
                "pod-template-hash": "5d78c9869d"},
        created=t0 - 720,
        owner=rs_owner("coredns-5d78c9869d", "b2c3d4e5-1f2a-4b6c-9d7e-8f9a0b1c2d3e"),
        containers=[{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.1",
                     "ports": [
                         {"containerPort": 53, "name": "dns", "protocol": "UDP"},
                         {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                         {"containerPort": 9153, "name": "metrics", "protocol": "TCP"},
                     ]}],
        ip=env["COREDNS_IP"], rv=47002),
    # shop/frontend-6d4cf56db6-qz7mn: Deployment frontend
    pod(name="frontend-6d4cf56db6-qz7mn", namespace="shop",
        uid="c3d4e5f6-2a3b-4c7d-8e9f-0a1b2c3d4e5f",
        labels={"app": "frontend", "pod-template-hash": "6d4cf56db6"},
        created=t0 - 480,
        owner=rs_owner("frontend-6d4cf56db6", "d4e5f6a7-3b4c-4d8e-9f0a-1b2c3d4e5f60"),
        containers=[{"name": "frontend", "image": "registry.example.com/shop/frontend:2.0.1",
                     "ports": [{"containerPort": 3000, "name": "http", "protocol": "TCP"}]}],
        ip=env["FRONTEND_IP"], rv=47640),
    # shop/web-7c9d8f6b5d-x2k4p: Deployment web
    pod(name="web-7c9d8f6b5d-x2k4p", namespace="shop",
        uid="e5f6a7b8-4c5d-4e9f-8a1b-2c3d4e5f6071",
        labels={"app": "web", "pod-template-hash": "7c9d8f6b5d"},
        created=t0 - 480,
        owner=rs_owner("web-7c9d8f6b5d", "f6a7b8c9-5d6e-4f0a-9b2c-3d4e5f607182"),
        containers=[{"name": "web", "image": "registry.example.com/shop/web:1.4.2",
                     "ports": [{"containerPort": HTTP_PORT, "name": "http", "protocol": "TCP"}]}],
        ip=env["WEB_IP"], rv=47655),
]

def service(*, name, namespace, uid, created, labels, cluster_ip, selector, ports, rv,
            annotations=None):
    md = {"creationTimestamp": ts(created), "labels": labels, "name": name,
          "namespace": namespace, "resourceVersion": str(rv), "uid": uid}
    if annotations:
        md["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": md,
        "spec": {
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": ports,
            "selector": selector,
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    }

services = [
    service(name="kube-dns", namespace="kube-system",
            uid="0a1b2c3d-6e7f-4a0b-8c1d-2e3f4a5b6c7d", created=t0 - 900,
            labels={"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                    "kubernetes.io/name": "CoreDNS"},
            annotations={"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
            cluster_ip=env["DNS_SVC_IP"], selector={"k8s-app": "kube-dns"},
            ports=[
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ], rv=231),
    service(name="web", namespace="shop",
            uid="1b2c3d4e-7f8a-4b1c-9d2e-3f4a5b6c7d8e", created=t0 - 480,
            labels={"app": "web"},
            cluster_ip="10.96.41.7", selector={"app": "web"},
            ports=[{"name": "http", "port": HTTP_PORT, "protocol": "TCP",
                    "targetPort": HTTP_PORT}], rv=47590),
]

node = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        "creationTimestamp": ts(t0 - 900),
        "labels": {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": NODE,
                   "kubernetes.io/os": "linux"},
        "name": NODE,
        "resourceVersion": "48190",
        "uid": "2c3d4e5f-8a9b-4c2d-8e3f-4a5b6c7d8e9f",
    },
    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
    "status": {
        "addresses": [{"address": NODE_IP, "type": "InternalIP"},
                      {"address": NODE, "type": "Hostname"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": ts(t1), "lastTransitionTime": ts(t0 - 880)}],
        "nodeInfo": {"architecture": "amd64", "containerRuntimeVersion": "containerd://1.7.13",
                     "kernelVersion": "6.1.0-18-amd64", "kubeProxyVersion": "v1.29.4",
                     "kubeletVersion": "v1.29.4", "operatingSystem": "linux",
                     "osImage": "Debian GNU/Linux 12 (bookworm)"},
    },
}

doc = {"apiVersion": "v1", "items": pods + services + [node], "kind": "List",
       "metadata": {"resourceVersion": ""}}
with open(sys.argv[1], "w") as f:
    json.dump(doc, f, indent=4, sort_keys=True)
    f.write("\n")
PY
}

PCAP=$WORK/scene.pcap
OUT_DIR=${PWSCENE_OUT:-$DEMO_DIR}
LIVE_PID=
if [[ -n ${PWSCENE_LIVE:-} ]]; then
    mkdir -p "$OUT_DIR"
    # The inventory a live capture can use: as the real one, with the batch Job's pod finishing
    # ten minutes after the start (the traffic is over by then).
    now=$(date -u +%s)
    write_inventory "$((now - 1))" "$((now + 600))" "$OUT_DIR/inventory-live.json"
    ip netns exec "${PREFIX}node" bash -c "exec $PWSCENE_LIVE" 2>"$OUT_DIR/live.log" &
    LIVE_PID=$!
    BG_PIDS+=("$LIVE_PID")
    for _ in $(seq 300); do
        grep -q 'capturing on' "$OUT_DIR/live.log" 2>/dev/null && break
        kill -0 "$LIVE_PID" 2>/dev/null || die "the live capture exited: $(cat "$OUT_DIR/live.log")"
        sleep 0.1
    done
    grep -q 'capturing on' "$OUT_DIR/live.log" || die "the live capture did not start: $(cat "$OUT_DIR/live.log")"
    log "live capture running: $PWSCENE_LIVE"
fi
CAPTURE_START=$(date -u +%s)
ip netns exec "${PREFIX}node" tcpdump -i br0 -s 0 -U --immediate-mode -Z root -w "$PCAP" 2>"$WORK/tcpdump.log" &
TCPDUMP_PID=$!
BG_PIDS+=("$TCPDUMP_PID")
for _ in $(seq 100); do
    grep -q 'listening on' "$WORK/tcpdump.log" 2>/dev/null && break
    sleep 0.1
done
grep -q 'listening on' "$WORK/tcpdump.log" || die "tcpdump did not start: $(cat "$WORK/tcpdump.log")"
sleep 0.3
log "capturing on br0 in ${PREFIX}node"

# ---------------------------------------------------------------------------
# 4. Traffic
# ---------------------------------------------------------------------------
# curl: -q ignores ~/.curlrc, --noproxy ignores any *_proxy variables, -4 makes
# getaddrinfo ask for A records only (one DNS query per curl run).
CURL=(curl -q -4 -sS --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}')

expect_http() {  # expect_http POD URL CODE
    local pod=$1 url=$2 want=$3 got
    got=$(pod_run "$pod" "${CURL[@]}" "$url") || die "$pod: curl $url failed"
    [[ $got == "$want" ]] || die "$pod: $url gave HTTP $got, expected $want"
    log "  $pod: GET $url -> $got"
    sleep 0.2
}

log "frontend -> web by service name (DNS A + HTTP)"
expect_http frontend "http://web.shop.svc.cluster.local:$WEB_HTTP_PORT/"              200
expect_http frontend "http://web.shop.svc.cluster.local:$WEB_HTTP_PORT/products.json" 200
expect_http frontend "http://web.shop.svc.cluster.local:$WEB_HTTP_PORT/missing"       404

log "report (batch job) -> web by service name (DNS A + HTTP)"
expect_http report "http://web.shop.svc.cluster.local:$WEB_HTTP_PORT/orders.csv"    200
expect_http report "http://web.shop.svc.cluster.local:$WEB_HTTP_PORT/products.json" 200

log "report: DNS lookup that fails (NXDOMAIN)"
out=$(pod_run report dig +tries=1 +time=2 db.batch.svc.cluster.local A) || die "dig failed: $out"
grep -q 'status: NXDOMAIN' <<<"$out" || die "expected NXDOMAIN, got: $out"
log "  report: db.batch.svc.cluster.local -> NXDOMAIN"
sleep 0.2

log "report -> $DEAD_IP:$DEAD_PORT (SYN, never answered)"
rc=0
pod_run report curl -q -sS --noproxy '*' --connect-timeout 2.5 -o /dev/null \
    "http://$DEAD_IP:$DEAD_PORT/" 2>/dev/null || rc=$?
[[ $rc == 28 ]] || die "expected curl time-out (28) towards $DEAD_IP, got exit $rc"
log "  report: connect to $DEAD_IP:$DEAD_PORT timed out"
sleep 0.2

log "frontend -> api.example.com (DNS A via kube-dns, then HTTP to the external host)"
expect_http frontend "http://api.example.com:$EXT_HTTP_PORT/" 200

log "frontend -> web:$WEB_CLOSED_TCP_PORT (closed TCP port: refused)"
rc=0
pod_run frontend curl -q -sS --noproxy '*' --max-time 3 -o /dev/null \
    "http://$WEB_IP:$WEB_CLOSED_TCP_PORT/" 2>/dev/null || rc=$?
[[ $rc == 7 ]] || die "expected curl 'connection refused' (7), got exit $rc"
log "  frontend: $WEB_IP:$WEB_CLOSED_TCP_PORT refused"
sleep 0.2

log "frontend -> web UDP echo :$WEB_UDP_ECHO_PORT, then closed UDP :$WEB_CLOSED_UDP_PORT"
pod_run frontend python3 - "$WEB_IP" "$WEB_UDP_ECHO_PORT" "$WEB_CLOSED_UDP_PORT" <<'PY'
import socket, sys, time
ip, echo_port, closed_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
u.connect((ip, echo_port))
u.send(b"ping\n")
assert u.recv(2048) == b"ping\n", "no UDP echo reply"
print("[make-scene]   frontend: UDP echo answered", flush=True)
time.sleep(0.2)
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.settimeout(2)
v.connect((ip, closed_port))   # connected UDP socket: ICMP error -> ECONNREFUSED
v.send(b"ping\n")
try:
    v.recv(2048)
    sys.exit("unexpected reply from closed UDP port")
except ConnectionRefusedError:
    print("[make-scene]   frontend: UDP to closed port -> ICMP port unreachable", flush=True)
PY
sleep 0.2

log "frontend -> web:$WEB_RESET_PORT (server resets after reading the request)"
pod_run frontend python3 - "$WEB_IP" "$WEB_RESET_PORT" <<'PY'
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
c.sendall(b"HELLO\r\n")
try:
    data = c.recv(1024)
    sys.exit("expected a reset, got %r" % (data,))
except ConnectionResetError:
    print("[make-scene]   frontend: connection reset by server", flush=True)
PY

# let the last packets (FINs/ACKs) reach the capture, then stop tcpdump
sleep 0.5
kill -TERM "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
CAPTURE_END=$(date -u +%s)
log "capture stopped"
if [[ -n $LIVE_PID ]]; then
    kill -INT "$LIVE_PID"
    rc=0
    wait "$LIVE_PID" || rc=$?
    [[ $rc == 0 ]] || die "the live capture exited with $rc: $(tail -n 20 "$OUT_DIR/live.log")"
    log "live capture stopped"
fi

# ---------------------------------------------------------------------------
# 5. Check the capture contains every scenario
# ---------------------------------------------------------------------------
count() { tcpdump -nr "$PCAP" "$@" 2>/dev/null | wc -l; }
check() {  # check DESCRIPTION COUNT OP N   (OP: -eq, -ge, ...)
    local what=$1 n=$2 op=$3 want=$4
    if test "$n" "$op" "$want"; then
        log "  ok   $what ($n)"
    else
        die "capture check failed: $what: got $n, want $op $want"
    fi
}
dns_answers=$(tcpdump -nr "$PCAP" "udp and src host $DNS_SVC_IP and src port 53" 2>/dev/null)
# (tcpdump's one-line summary shows the first line of an HTTP message)
http_replies=$(tcpdump -nr "$PCAP" "tcp and src host $WEB_IP and src port $WEB_HTTP_PORT" 2>/dev/null)
ext_replies=$(tcpdump -nr "$PCAP" "tcp and src host $EXT_IP and src port $EXT_HTTP_PORT" 2>/dev/null)
log "checking the capture"
check "HTTP 200 from web"                "$(grep -c 'HTTP: HTTP/1.0 200' <<<"$http_replies")" -eq 4
check "HTTP 404 from web"                "$(grep -c 'HTTP: HTTP/1.0 404' <<<"$http_replies")" -eq 1
check "HTTP 200 from api.example.com"    "$(grep -c 'HTTP: HTTP/1.0 200' <<<"$ext_replies")" -eq 1
check "DNS A web.shop.svc.cluster.local" "$(grep -c 'A 10.244.1.10' <<<"$dns_answers")" -eq 5
check "DNS A api.example.com"            "$(grep -c 'A 203.0.113.10' <<<"$dns_answers")" -eq 1
check "DNS NXDOMAIN"                     "$(grep -c 'NXDomain' <<<"$dns_answers")" -eq 1
check "RST from closed port $WEB_CLOSED_TCP_PORT" \
    "$(count "tcp and src host $WEB_IP and src port $WEB_CLOSED_TCP_PORT and tcp[tcpflags] & tcp-rst != 0")" -ge 1
check "SYNs to $DEAD_IP" \
    "$(count "tcp and dst host $DEAD_IP and tcp[tcpflags] == tcp-syn")" -ge 1
check "nothing back from $DEAD_IP (no SYN-ACK/RST/ICMP)" \
    "$(count "src host $DEAD_IP or (icmp and dst host $REPORT_IP)")" -eq 0
check "UDP echo reply" \
    "$(count "udp and src host $WEB_IP and src port $WEB_UDP_ECHO_PORT")" -eq 1
check "ICMP port unreachable" \
    "$(count "icmp and src host $WEB_IP and icmp[icmptype] == icmp-unreach and icmp[icmpcode] == 3")" -eq 1
check "RST after handshake on :$WEB_RESET_PORT" \
    "$(count "tcp and src host $WEB_IP and src port $WEB_RESET_PORT and tcp[tcpflags] & tcp-rst != 0")" -ge 1
check "no IPv6" "$(count ip6)" -eq 0

# ---------------------------------------------------------------------------
# 6. Kubernetes inventory (kubectl get pods,services,nodes -A -o json)
# ---------------------------------------------------------------------------
log "writing inventory"
write_inventory "$CAPTURE_START" "$CAPTURE_END" "$WORK/inventory.json"

# ---------------------------------------------------------------------------
# 7. Publish the outputs (only now, so a failed run leaves the old ones intact)
# ---------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
cp "$PCAP" "$OUT_DIR/scene.pcap.tmp" && mv "$OUT_DIR/scene.pcap.tmp" "$OUT_DIR/scene.pcap"
cp "$WORK/inventory.json" "$OUT_DIR/inventory.json.tmp" \
    && mv "$OUT_DIR/inventory.json.tmp" "$OUT_DIR/inventory.json"

packets=$(tcpdump -r "$OUT_DIR/scene.pcap" 2>/dev/null | wc -l)
bytes=$(stat -c %s "$OUT_DIR/scene.pcap")
log "done:"
log "  $OUT_DIR/scene.pcap      $packets packets, $bytes bytes," \
    "$(date -u -d "@$CAPTURE_START" +%H:%M:%SZ)..$(date -u -d "@$CAPTURE_END" +%H:%M:%SZ)"
log "  $OUT_DIR/inventory.json  4 pods, 2 services, 1 node"
