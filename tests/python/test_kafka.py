"""capture → Kafka → ingest → Parquet against a real broker (tansu on loopback), checked with DuckDB
against `podwire standalone` on the same captures: same rows, nothing lost, nothing doubled, also
when ingest is killed at random moments, when messages are corrupt, when the store's disk is
full, when the store is a bucket of an S3-compatible server (moto on loopback) that is missing at
first, and when the broker is killed and restarted during a live capture."""
import glob
import os
import random
import signal
import subprocess
import time
import urllib.request

import duckdb
import pytest

from kafka_broker import Broker, free_port
from s3_server import s3  # noqa: F401 (a fixture)
from podwire_bin import ROOT, BIN, PCAPS, run

SCENE = os.path.join(ROOT, "capture", "demo", "scene.pcap")
INVENTORY = os.path.join(ROOT, "capture", "demo", "inventory.json")
TABLES = ("connections", "dns", "capture_stats")
# 627,860 packets: 47,025 connection rows, 3,280 DNS rows, 1.1 MB of Parquet.
LARGE = os.path.join(PCAPS, "large", "mix-large.pcap")


@pytest.fixture(scope="module")
def broker():
    b = Broker()
    yield b
    b.stop()


def count(store, table):
    files = glob.glob(f"{store}/{table}/date=*/hour=*/*.parquet", recursive=True)
    if not files:
        return 0
    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet({files!r})").fetchone()[0]


def delta_rows(store, table):
    """Every row of a table's Delta snapshot (no partition columns), as a sorted list of tuples:
    the files its log lists, found by the `deltalake` package (delta-rs), read by DuckDB."""
    import deltalake
    path = f"{store}/{table}"
    if not os.path.isdir(f"{path}/_delta_log"):
        return []
    snapshot = deltalake.DeltaTable(path).to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("snapshot", snapshot)
    return sorted(con.execute("SELECT * EXCLUDE (date, hour) FROM snapshot").fetchall(), key=repr)


def rows(store, table):
    """Every row of a table (no partition columns), as a sorted list of tuples."""
    files = glob.glob(f"{store}/{table}/date=*/hour=*/*.parquet", recursive=True)
    if not files:
        return []
    # The folder names' date and hour left out (DuckDB would add them for `key=value` folders).
    return sorted(duckdb.connect().execute(f"SELECT * FROM read_parquet({files!r}, hive_partitioning = false)")
                  .fetchall(), key=repr)


class Ingest:
    """A `podwire ingest` process with its metrics on a free port."""
    runs = 0

    def __init__(self, broker, store, group, prefix, *extra, env=None):
        # Logs to a file (a pipe nobody reads would fill up and stall the process).
        Ingest.runs += 1
        if str(store).startswith("s3://"):
            self.log_path = f"/tmp/podwire-ingest-{os.getpid()}-{Ingest.runs}.log"
        else:
            self.log_path = f"{store}.ingest-{Ingest.runs}.log"
        self.proc = subprocess.Popen(
            [BIN, "ingest", "--kafka", broker.address, "--store", str(store), "--group", group,
             "--topic-prefix", prefix, "--metrics-listen", "127.0.0.1:0",
             # A killed member's partitions move on after this (the default is 45 s).
             "--kafka-option", "session.timeout.ms=6000", *extra],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "w"), text=True, env=env)
        line = self.proc.stdout.readline()
        assert line.startswith("metrics on http://"), f"{line!r} {self.log()}"
        self.metrics_url = line.strip().removeprefix("metrics on ") + "/metrics"
        LIVE.append(self)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def metric(self, name, **labels):
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            head, value = line.rsplit(" ", 1)
            metric = head.split("{")[0]
            if metric not in (name, name + "_total"):
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self):
        LIVE.remove(self)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, self.log()
        return self.log()

    def kill(self):
        LIVE.remove(self)
        self.proc.kill()
        self.proc.wait()


LIVE = []  # ingest processes that must stay up while a test waits


def wait_for(cond, timeout=120, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ing in LIVE:
            if ing.proc.poll() is not None:
                raise AssertionError(f"podwire ingest exited ({ing.proc.returncode}) while "
                                     f"waiting for {what}: {ing.log()[-3000:]}")
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def capture(broker, prefix, pcap, node="node-a", *extra):
    # One message per record batch: tansu 0.6.0 answers a fetch that starts inside a
    # multi-message record batch with the batches after it, so a consumer restarted at a
    # committed offset in the middle of one would miss the rest of it (Apache Kafka returns the
    # whole batch). Ingest notices such a jump, seeks back, and logs the loss if it persists.
    out = run("capture", "--pcap", pcap, "--kafka", broker.address, "--node", node,
              "--topic-prefix", prefix, "--topic-partitions", "2",
              "--kafka-option", "batch.num.messages=1", *extra)
    assert out.returncode == 0, out.stderr
    assert "0 dropped" in out.stderr, out.stderr
    return out


def standalone(store, pcap, node="node-a", inventory=None):
    args = ["standalone", "--pcap", pcap, "--store", str(store), "--node", node]
    if inventory:
        args += ["--inventory", inventory]
    out = run(*args)
    assert out.returncode == 0, out.stderr


def assert_same_tables(got, want):
    """The same rows in every table, in the folders and through `got`'s Delta log."""
    for table in TABLES:
        g, w = rows(got, table), rows(want, table)
        assert len(g) == len(w), (table, len(g), len(w))
        assert g == w, table
        assert delta_rows(got, table) == w, table


@pytest.mark.parametrize("pcap,inventory", [
    (SCENE, INVENTORY),
    (os.path.join(PCAPS, "1kxun.pcap"), None),
    (os.path.join(PCAPS, "wireshark_samples-test.pcapng"), None),
])
def test_same_rows_as_standalone(broker, tmp_path, pcap, inventory):
    prefix = f"e2e{random.randrange(1 << 30)}."
    standalone(tmp_path / "reference", pcap, inventory=inventory)
    capture(broker, prefix, pcap)
    extra = ["--inventory", inventory] if inventory else []
    ing = Ingest(broker, tmp_path / "store", "g1", prefix, "--roll-age", "500ms", *extra)
    want = count(tmp_path / "reference", "connections")
    wait_for(lambda: count(tmp_path / "store", "connections") >= want, what="all connection rows")
    wait_for(lambda: count(tmp_path / "store", "dns") >= count(tmp_path / "reference", "dns"),
             what="all DNS rows")
    assert ing.metric("podwire_ingest_dead_letters") == 0
    assert ing.metric("podwire_ingest_sequence_gaps") == 0
    ing.stop()
    assert_same_tables(tmp_path / "store", tmp_path / "reference")
    # File names carry the offset range they hold; the ledger is outside the tables.
    names = [os.path.basename(f) for f in glob.glob(f"{tmp_path}/store/connections/date=*/hour=*/*.parquet",
                                                     recursive=True)]
    assert all(n.startswith(f"{prefix}connections-") for n in names), names
    assert os.path.isdir(tmp_path / "store" / "_ingest")


def test_kill_ingest_at_random_moments(broker, tmp_path):
    """SIGKILL ingest at random moments while it works, 12 times and then until a kill has landed
    inside a write (each round first adds a node's worth of messages, then kills ingest at a
    random point after it started taking them; small segments, so kills land inside writes).
    The replay path must have run (a restarted ingest says it replays a range that was being
    written), and the restarted ingest must end with exactly the rows of an uninterrupted run
    over the same messages."""
    prefix = f"kill{random.randrange(1 << 30)}."
    small = ["--roll-age", "100ms", "--roll-bytes", "1MiB"]
    rng = random.Random(7)
    replays = rounds = 0
    while rounds < 12 or (replays == 0 and rounds < 40):
        capture(broker, prefix, LARGE, f"node-{rounds}", "--max-message-bytes", "64KiB")
        ing = start_working(broker, tmp_path / "store", "chaos", prefix, small,
                            lambda i: i.metric("podwire_ingest_messages") > 0)
        time.sleep(rng.uniform(0, 1.0))
        ing.kill()
        # Its log: a restart after a kill inside a write replayed that range first.
        replays += ing.log().count("replaying a range")
        rounds += 1
    want_rows = rounds * count_standalone_rows()
    done = {}
    for store, group in ((tmp_path / "store", "chaos"), (tmp_path / "reference", "ref")):
        # The second is the uninterrupted run over the same messages, in its own group.
        done[group] = start_working(broker, store, group, prefix, small,
                                    lambda i, s=store: count(s, "connections") >= want_rows)
    time.sleep(1)
    err = done["chaos"].stop()
    replays += err.count("replaying a range")
    done["ref"].stop()
    assert replays > 0, f"no kill of {rounds} landed inside a write: the replay path was not tested"
    for t in TABLES:
        got, want = rows(tmp_path / "store", t), rows(tmp_path / "reference", t)
        assert len(got) == len(want), (t, len(got), len(want))
        assert got == want, t
        # The same rows through the Delta log: each committed once, none lost.
        assert delta_rows(tmp_path / "store", t) == want, t
    assert count(tmp_path / "store", "connections") == want_rows
    # A kill inside a write leaves a hidden temporary file; the replay of the same range writes
    # and renames the same name, so none is left at the end.
    left = glob.glob(f"{tmp_path}/store/**/.*.tmp", recursive=True)
    assert not left, left
    print(f"{replays} ranges were replayed after {rounds} kills")


def test_two_ingest_processes_in_one_group_one_killed(broker, tmp_path):
    """Two ingest processes of one consumer group commit to the same Delta tables at once (each
    its own partitions; a commit that races the other's is retried), one is killed mid-work and
    started again, as Kubernetes would: every row once, through the Delta log and through the
    folders, as an uninterrupted run of one process over the same messages."""
    prefix = f"pair{random.randrange(1 << 30)}."
    small = ["--roll-age", "100ms", "--roll-bytes", "1MiB"]
    store = tmp_path / "store"
    nodes = 0

    def another_node():
        nonlocal nodes
        capture(broker, prefix, LARGE, f"node-{nodes}", "--max-message-bytes", "64KiB")
        nodes += 1

    another_node()
    a = start_working(broker, store, "pair", prefix, small, lambda i: i.metric("podwire_ingest_messages") > 0)
    # The second member: messages keep coming until it has some (a clean restart makes tansu
    # rebalance when a join alone did not).
    b_messages = 0
    for _ in range(4):
        b = Ingest(broker, store, "pair", prefix, *small)
        # Messages reach it only once the group has given it partitions (a rebalance takes a
        # few seconds), and only those sent after that: the first member read the rest.
        deadline = time.time() + 15
        while "partitions assigned" not in b.log() and time.time() < deadline:
            time.sleep(0.2)
        for _ in range(3):
            another_node()
            deadline = time.time() + 3
            while (b_messages := b.metric("podwire_ingest_messages")) == 0 and time.time() < deadline:
                time.sleep(0.2)
            if b_messages > 0:
                break
        if b_messages > 0:
            break
        b.stop()
    assert b_messages > 0, "the second member of the group never got a partition"
    # A kill while both write: more messages, then SIGKILL at a random moment.
    another_node()
    time.sleep(random.Random(11).uniform(0.2, 1.0))
    a.kill()
    another_node()
    want_rows = nodes * count_standalone_rows()

    def done(_ingest):
        import deltalake
        path = f"{store}/connections"
        return os.path.isdir(f"{path}/_delta_log") and \
            deltalake.DeltaTable(path).to_pyarrow_dataset().count_rows() >= want_rows
    # The killed member's partitions: to the restarted one (a clean restart makes tansu rebalance).
    a2 = start_working(broker, store, "pair", prefix, small, done, window=90)
    time.sleep(1)
    b.stop()
    a2.stop()
    ref = start_working(broker, tmp_path / "reference", "pair-ref", prefix, small,
                        lambda i: count(tmp_path / "reference", "connections") >= want_rows)
    time.sleep(1)
    ref.stop()
    for t in TABLES:
        want = rows(tmp_path / "reference", t)
        assert rows(store, t) == want, t
        assert delta_rows(store, t) == want, t
    assert len(delta_rows(store, "connections")) == want_rows
    print(f"{nodes} nodes' messages; the second member took {b_messages:.0f} before the kill")


def start_working(broker, store, group, prefix, extra, working, attempts=6, window=40):
    """Starts ingest until `working(ingest)` holds. tansu 0.6.0 does not always rebalance when a
    killed member's session expires: the new member can sit with an empty assignment. Apache
    Kafka's coordinator does; here a clean restart (SIGTERM leaves the group) makes it."""
    for _ in range(attempts):
        ing = Ingest(broker, store, group, prefix, *extra)
        deadline = time.time() + window
        while time.time() < deadline:
            if working(ing):
                return ing
            assert ing.proc.poll() is None, ing.log()[-3000:]
            time.sleep(0.2)
        ing.stop()
    raise AssertionError(f"ingest in group {group} did not get to work in {attempts} tries")


_STANDALONE_ROWS = []


def count_standalone_rows():
    """Connection rows of LARGE through `podwire standalone` (computed once)."""
    if not _STANDALONE_ROWS:
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            standalone(d, LARGE)
            _STANDALONE_ROWS.append(count(d, "connections"))
    return _STANDALONE_ROWS[0]


def produce_raw(broker, topic, value, headers, key=b"node-x"):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": broker.address})
    p.produce(topic, value=value, key=key, headers=headers)
    assert p.flush(30) == 0


def test_corrupt_messages_go_to_the_dead_letter_topic(broker, tmp_path):
    from confluent_kafka import Consumer
    prefix = f"dlq{random.randrange(1 << 30)}."
    standalone(tmp_path / "reference", SCENE, inventory=INVENTORY)
    capture(broker, prefix, SCENE)
    topic = prefix + "connections"
    good = {"podwire.schema_version": b"2", "podwire.table": b"connections",
            "podwire.node": b"node-x", "podwire.producer": b"p", "podwire.seq": b"0",
            "podwire.rows": b"1", "podwire.dropped_batches": b"0", "podwire.dropped_rows": b"0"}
    cases = {
        "ipc": (b"not arrow at all", good),
        "version": (b"x", {**good, "podwire.schema_version": b"99"}),
        "missing_header": (b"x", {k: v for k, v in good.items() if k != "podwire.table"}),
        "bad_header": (b"x", {**good, "podwire.seq": b"minus one"}),
    }
    for value, headers in cases.values():
        produce_raw(broker, topic, value, list(headers.items()))
    # A valid batch after the corrupt ones: still ingested.
    capture(broker, prefix, SCENE, "node-b")
    ing = Ingest(broker, tmp_path / "store", "g", prefix, "--roll-age", "300ms",
                 "--inventory", INVENTORY)
    want = 2 * count(tmp_path / "reference", "connections")
    wait_for(lambda: count(tmp_path / "store", "connections") >= want, what="valid rows")
    wait_for(lambda: ing.metric("podwire_ingest_dead_letters") >= len(cases), what="dead letters")
    for reason in cases:
        assert ing.metric("podwire_ingest_dead_letters", reason=reason) == 1, reason
    ing.stop()
    assert count(tmp_path / "store", "connections") == want
    c = Consumer({"bootstrap.servers": broker.address, "group.id": "dlq-reader",
                  "auto.offset.reset": "earliest"})
    c.subscribe([prefix + "dead-letter"])
    got = []
    deadline = time.time() + 60
    while len(got) < len(cases) and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        h = dict(m.headers())
        got.append((h["podwire.dlq.reason"].decode(), h["podwire.dlq.topic"].decode(), m.value()))
    c.close()
    assert len(got) == len(cases), got
    assert all(t == topic for _, t, _ in got)
    reasons = " | ".join(r for r, _, _ in got)
    assert "not a readable Arrow IPC stream" in reasons and "schema version 99" in reasons, reasons
    assert "header podwire.table is missing" in reasons, reasons


def committed_behind(broker, group, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.address, "group.id": group})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        behind = False
        for p in meta.partitions:
            tp = c.committed([TopicPartition(topic, p)], timeout=10)[0]
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            behind |= (tp.offset < 0 and high > 0) or (0 <= tp.offset < high)
        return behind
    finally:
        c.close()


def test_full_disk_is_retried_without_committing(broker, tmp_path):
    """The store on a 256 KiB tmpfs: writes fail with ENOSPC, ingest retries and commits nothing;
    once the filesystem is grown, everything arrives, once."""
    prefix = f"disk{random.randrange(1 << 30)}."
    pcap = LARGE
    standalone(tmp_path / "reference", pcap)
    capture(broker, prefix, pcap)
    mnt = tmp_path / "small"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    assert out.returncode == 0, f"mounting a tmpfs needs root (CI runs as root): {out.stderr}"
    try:
        ing = Ingest(broker, mnt / "store", "g", prefix, "--roll-age", "300ms")
        wait_for(lambda: ing.metric("podwire_ingest_store_errors") >= 2, what="store errors")
        # Nothing past the failing range is committed: the group's offset on the connections
        # topic is behind its end.
        assert committed_behind(broker, "g", prefix + "connections")
        subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)
        want = count(tmp_path / "reference", "connections")
        wait_for(lambda: count(mnt / "store", "connections") >= want, timeout=180,
                 what="rows after the disk was grown")
        time.sleep(1)
        ing.stop()
        assert_same_tables(mnt / "store", tmp_path / "reference")
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_live_capture_to_kafka(broker, tmp_path):
    """The node agent live: `podwire capture --interface lo` (eBPF, filtered in the kernel to one
    port, so the broker's own loopback traffic is left out) → tansu → ingest → Parquet."""
    import socket
    import threading
    assert os.geteuid() == 0, "the live capture needs root (eBPF): run as root"
    prefix = f"live{random.randrange(1 << 30)}."
    port = free_port()
    cap = subprocess.Popen(
        [BIN, "capture", "--interface", "lo", "--only-port", str(port), "--kafka", broker.address,
         "--node", "node-live", "--topic-prefix", prefix, "--topic-partitions", "1",
         "--kafka-option", "batch.num.messages=1", "--flush-interval", "500ms",
         "--read-interval", "200ms", "--duration", "8s"],
        stderr=subprocess.PIPE, text=True)
    err = []
    while not any("capturing on" in line for line in err):
        line = cap.stderr.readline()
        assert line or cap.poll() is None, "".join(err)
        err.append(line)
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen()

    def serve():
        for _ in range(3):
            c, _ = srv.accept()
            c.sendall(c.recv(100) * 3)
            c.close()
    t = threading.Thread(target=serve)
    t.start()
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"hello")
        c.recv(100)
        c.close()
    t.join(10)
    srv.close()
    rest = cap.stderr.read()
    assert cap.wait(timeout=60) == 0, "".join(err) + rest
    assert "0 dropped" in rest, rest
    ing = Ingest(broker, tmp_path / "store", "glive", prefix, "--roll-age", "500ms")
    wait_for(lambda: count(tmp_path / "store", "connections") >= 3, what="the live connections")
    ing.stop()
    files = glob.glob(f"{tmp_path}/store/connections/date=*/hour=*/*.parquet", recursive=True)
    got = duckdb.connect().execute(
        f"SELECT dst_port, src_payload_bytes, dst_payload_bytes, outcome, node FROM read_parquet({files!r})"
    ).fetchall()
    assert got == [(port, 5, 15, "closed", "node-live")] * 3, got
    stats = glob.glob(f"{tmp_path}/store/capture_stats/date=*/hour=*/*.parquet", recursive=True)
    filtered = duckdb.connect().execute(
        f"SELECT sum(packets_filtered), min(source) FROM read_parquet({stats!r})").fetchone()
    assert filtered[0] > 0 and filtered[1] == "ebpf:lo", filtered


def table_rows(filesystem, base, table):
    """Every row of a table read by pyarrow (no partition columns) from a folder or a bucket, as a
    sorted list of tuples; [] when the table has no files yet."""
    import pyarrow.dataset as ds
    from pyarrow import fs
    try:
        files = [i.path for i in filesystem.get_file_info(fs.FileSelector(f"{base}/{table}",
                                                                          recursive=True))
                 if i.path.endswith(".parquet")]
    except (FileNotFoundError, OSError):
        return []
    if not files:
        return []
    t = ds.dataset(files, filesystem=filesystem, format="parquet").to_table()
    return sorted((tuple(r.values()) for r in t.to_pylist()), key=repr)


def test_ingest_into_a_bucket(broker, s3, tmp_path):
    """`podwire ingest --store s3://bucket/prefix` against an S3-compatible server on loopback.
    The bucket is missing at first: every upload fails, is retried and counted, and no offset is
    committed; once the bucket exists, the rows read back by pyarrow's own S3 client equal
    `podwire standalone`'s, and `podwire query` over the bucket answers as over the folder."""
    from pyarrow import fs
    prefix = f"s3{random.randrange(1 << 30)}."
    bucket = f"store{random.randrange(1 << 30)}"
    url = f"s3://{bucket}/history/podwire"
    reference = tmp_path / "reference"
    standalone(reference, SCENE, inventory=INVENTORY)
    capture(broker, prefix, SCENE)
    ing = Ingest(broker, url, "gs3", prefix, "--roll-age", "300ms", "--inventory", INVENTORY,
                 env=s3.env)
    wait_for(lambda: ing.metric("podwire_ingest_store_errors") >= 2, what="store errors")
    assert committed_behind(broker, "gs3", prefix + "connections")
    assert "NoSuchBucket" in ing.log() or "does not exist" in ing.log(), ing.log()[-2000:]
    s3.create_bucket(bucket)
    bucket_fs = s3.filesystem()
    base = f"{bucket}/history/podwire"
    local = fs.LocalFileSystem()
    want = {t: table_rows(local, str(reference), t) for t in TABLES}
    assert want["connections"] and want["dns"]
    wait_for(lambda: len(table_rows(bucket_fs, base, "connections")) >= len(want["connections"])
             and len(table_rows(bucket_fs, base, "dns")) >= len(want["dns"]),
             what="the rows in the bucket")
    time.sleep(1)
    ing.stop()
    for table in TABLES:
        assert table_rows(bucket_fs, base, table) == want[table], table
    ledger = bucket_fs.get_file_info(fs.FileSelector(f"{base}/_ingest"))
    assert any(i.path.endswith(".range") for i in ledger), ledger
    # The query service reads the bucket through the same client settings.
    kfl = "tcp or udp or dns"
    from_bucket = subprocess.run([BIN, "query", "--store", url, "--format", "csv", kfl],
                                 capture_output=True, text=True, env=s3.env)
    from_folder = run("query", "--store", str(reference), "--format", "csv", kfl)
    assert from_bucket.returncode == 0, from_bucket.stderr
    assert from_folder.returncode == 0, from_folder.stderr
    assert from_bucket.stdout.count("\n") > 10
    assert from_bucket.stdout == from_folder.stdout


def test_broker_restart_during_live_capture(s3, tmp_path):
    """The broker keeps its topics in a bucket (as Apache Kafka keeps them on disk), and is
    SIGKILLed and started again while a live capture sends to it: the capture carries on (its
    idempotent producer sends again what was not acknowledged), drops nothing, and the store holds
    every connection the client made, once."""
    import socket
    import threading
    assert os.geteuid() == 0, "the live capture needs root (eBPF): run as root"
    b = Broker(s3=s3)
    try:
        prefix = f"restart{random.randrange(1 << 30)}."
        port = free_port()
        log_path = tmp_path / "capture.log"
        cap = subprocess.Popen(
            [BIN, "capture", "--interface", "lo", "--only-port", str(port), "--kafka", b.address,
             "--node", "node-r", "--topic-prefix", prefix, "--topic-partitions", "1",
             "--kafka-option", "batch.num.messages=1", "--flush-interval", "300ms",
             "--read-interval", "200ms", "--tcp-close-linger", "500ms", "--duration", "16s"],
            stderr=open(log_path, "w"), text=True)
        deadline = time.time() + 30
        while "capturing on" not in log_path.read_text():
            assert cap.poll() is None and time.time() < deadline, log_path.read_text()
            time.sleep(0.1)
        srv = socket.socket()
        srv.bind(("127.0.0.1", port))
        srv.listen(64)
        stop = threading.Event()

        def serve():
            srv.settimeout(0.5)
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                except OSError:
                    continue
                c.sendall(c.recv(100) * 2)
                c.close()
        server = threading.Thread(target=serve)
        server.start()
        ports = []
        started = time.time()
        killed = restarted = False
        while time.time() - started < 11:
            c = socket.create_connection(("127.0.0.1", port))
            ports.append(c.getsockname()[1])
            c.sendall(b"hello")
            assert c.recv(100) == b"hellohello"
            c.close()
            time.sleep(0.05)
            if not killed and time.time() - started > 3:
                b.kill()
                killed = True
            if killed and not restarted and time.time() - started > 6:
                b.start()
                restarted = True
        stop.set()
        server.join(10)
        srv.close()
        assert restarted
        assert cap.wait(timeout=90) == 0, log_path.read_text()[-3000:]
        log = log_path.read_text()
        assert "0 dropped" in log, log[-3000:]
        # The producer did see the broker gone (and carried on).
        assert "Connection refused" in log or "BrokerTransportFailure" in log, log[-3000:]
        ing = Ingest(b, tmp_path / "store", "grestart", prefix, "--roll-age", "500ms")
        store = tmp_path / "store"
        wait_for(lambda: count(store, "connections") >= len(ports), what="every connection")
        time.sleep(1)
        assert ing.metric("podwire_ingest_sequence_gaps") == 0
        ing.stop()
        files = glob.glob(f"{store}/connections/date=*/hour=*/*.parquet", recursive=True)
        # Rows on the server's port either way round: a connection split in two (its counters
        # read after its final row, then taken for a mid-stream connection oriented by ports)
        # shows up as a second row, whichever end it named the client.
        got = duckdb.connect().execute(
            f"SELECT src_port, outcome, src_payload_bytes, dst_payload_bytes "
            f"FROM read_parquet({files!r}) WHERE {port} IN (src_port, dst_port) "
            f"ORDER BY src_port").fetchall()
        assert [r[0] for r in got] == sorted(ports), (len(got), len(ports),
                                                      [r for r in got if r[0] not in ports])
        odd = [r for r in got if r[1:] != ("closed", 5, 10)]
        assert not odd, (len(odd), odd[:10])
    finally:
        b.stop()


def test_ingest_applies_retention_at_start_and_counts_it(broker, tmp_path):
    """`ingest --retention`: the hours older than the time kept go at start (then hourly), and
    the metrics say how many; the hours inside the window stay."""
    import datetime as dt
    gen = os.path.join(os.path.dirname(BIN), "gen_store")
    assert os.path.exists(gen), f"cargo build -p podwire-benchmarks --bin gen_store: {gen}"
    store = tmp_path / "store"
    r = subprocess.run([gen, "--rows", "5000", "--days", "2", "--out", str(store)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    day2 = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)
    keep = f"{int((dt.datetime.now(dt.timezone.utc) - day2).total_seconds())}s"
    ing = Ingest(broker, store, "gret", f"ret{random.randrange(1 << 30)}.", "--retention", keep)
    wait_for(lambda: ing.metric("podwire_ingest_expired_partitions") == 24, timeout=30,
             what="the first day's 24 hours expired")
    assert ing.metric("podwire_ingest_expired_bytes") > 0
    assert ing.metric("podwire_ingest_retention_errors") == 0
    ing.stop()
    # Out of the Delta table at once; the files stay for the grace period (an hour).
    import deltalake
    live = deltalake.DeltaTable(str(store / "connections")).file_uris()
    assert live and not any("date=2026-11-01" in f for f in live), live[:3]
    assert len({f.split("/hour=")[1][:2] for f in live if "date=2026-11-02" in f}) == 24
    assert (store / "connections" / "date=2026-11-01").exists(), "removed files stay for the grace period"
