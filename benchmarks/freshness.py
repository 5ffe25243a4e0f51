#!/usr/bin/env python3
"""Freshness through a real broker: packet time → queryable row, at a steady rate.

    python3 benchmarks/freshness.py [--podwire target/release/podwire] [--seconds 60] [--rate 100]

Needs root (live capture), the tansu broker (tests/run-all.sh builds it; TANSU_BIN), duckdb.

`podwire capture --interface lo --only-port P` (eBPF, in the root namespace's loopback, filtered
in the kernel to the benchmark's port) sends to tansu on loopback; `podwire ingest` writes the
store. A client opens RATE short TCP connections per second to a local server on P for SECONDS.
Every 0.5 s the script asks `podwire serve` on the store (its HTTP API, as the dashboard does) for
the benchmark port's final connection rows: freshness of a row = (when the API first returned it)
− (the row's end_ts, i.e. its last packet). Reported: rows, and the median, p90 and max
freshness. The path a row takes: connection ends → the tracker writes the final row after
--tcp-close-linger → the next --flush-interval sends it → ingest rolls its segment after
--roll-age → fsync, rename, Delta commit → the query service's snapshot of the table, refreshed
when older than 2 s (`query/service/src/delta.rs`, REFRESH).
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from kafka_broker import Broker  # noqa: E402
from loopback import free_port  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.ipc  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--podwire", default="target/release/podwire")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=100, help="connections per second")
    ap.add_argument("--linger", default="2s", help="--tcp-close-linger for the capture (the live default)")
    ap.add_argument("--flush", default="1s", help="--flush-interval for the capture (the default)")
    ap.add_argument("--roll-age", default="5s", help="--roll-age for ingest (the default)")
    args = ap.parse_args()
    assert os.geteuid() == 0, "run as root (live capture)"
    bin_ = os.path.abspath(args.podwire)
    store = f"/tmp/podwire-freshness-{os.getpid()}"
    broker = Broker()
    prefix = f"fresh{random.randrange(1 << 30)}."
    port = free_port()
    cap = subprocess.Popen(
        [bin_, "capture", "--interface", "lo", "--only-port", str(port), "--kafka", broker.address,
         "--node", "bench", "--topic-prefix", prefix, "--topic-partitions", "1",
         "--flush-interval", args.flush, "--tcp-close-linger", args.linger],
        stderr=subprocess.PIPE, text=True)
    while True:
        line = cap.stderr.readline()
        if "capturing on" in line:
            break
        assert line or cap.poll() is None, "capture did not start"
    threading.Thread(target=lambda: cap.stderr.read(), daemon=True).start()
    ing = subprocess.Popen(
        [bin_, "ingest", "--kafka", broker.address, "--store", store, "--group", "fresh",
         "--topic-prefix", prefix, "--tables", "connections", "--roll-age", args.roll_age],
        stdout=subprocess.DEVNULL, stderr=open(f"{store}.ingest.log", "w"))
    os.makedirs(store, exist_ok=True)
    api = subprocess.Popen([bin_, "serve", "--store", store, "--listen", "127.0.0.1:0"],
                           stdout=subprocess.PIPE, stderr=open(f"{store}.serve.log", "w"), text=True)
    line = api.stdout.readline()
    assert line.startswith("listening on http://"), f"podwire serve did not start: {line!r}"
    api_host, api_port = line.strip().removeprefix("listening on http://").rsplit(":", 1)
    sql = json.dumps({"sql": f"SELECT conn_id, CAST(end_ts AS BIGINT) AS end_us FROM connections "
                             f"WHERE dst_port = {port} AND is_final", "format": "arrow"})

    def rows_now():
        c = http.client.HTTPConnection(api_host, int(api_port), timeout=30)
        c.request("POST", "/api/v1/sql", body=sql)
        r = c.getresponse()
        body = r.read()
        c.close()
        assert r.status == 200, body[:500]
        t = pa.ipc.open_stream(body).read_all()
        return zip(t.column("conn_id").to_pylist(), t.column("end_us").to_pylist())

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(512)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.sendall(c.recv(100))
            c.close()

    def client():
        t0 = time.time()
        n = 0
        while time.time() - t0 < args.seconds:
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(b"ping")
            c.recv(100)
            c.close()
            n += 1
            time.sleep(max(0.0, t0 + n / args.rate - time.time()))

    threading.Thread(target=serve, daemon=True).start()
    load = threading.Thread(target=client)
    load.start()
    seen = {}
    fresh = []
    deadline = time.time() + args.seconds + 60
    made = 0
    while time.time() < deadline:
        now = time.time()
        for conn_id, end_us in rows_now():
            if conn_id in seen:
                continue
            seen[conn_id] = now
            fresh.append(now - end_us / 1e6)
        made = len(fresh)
        if not load.is_alive() and made >= args.seconds * args.rate * 0.99:
            break
        time.sleep(0.5)
    stop.set()
    srv.close()
    for p in (cap, ing, api):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    broker.stop()
    fresh.sort()
    print(f"{len(fresh)} rows at {args.rate:g} connections/s, read through podwire serve "
          f"(capture --flush-interval {args.flush} --tcp-close-linger {args.linger}, ingest --roll-age {args.roll_age})")
    print(f"freshness: median {statistics.median(fresh):.2f} s, p90 {fresh[int(len(fresh) * 0.9)]:.2f} s, "
          f"max {fresh[-1]:.2f} s")


if __name__ == "__main__":
    main()
