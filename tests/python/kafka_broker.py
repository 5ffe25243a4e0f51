"""A real Kafka-protocol broker for the tests: tansu (an Apache-Kafka-compatible broker written in
Rust), started on a free loopback port. tests/run-all.sh installs it and sets TANSU_BIN."""
import os
import socket
import subprocess
import time

TANSU = os.environ.get("TANSU_BIN") or os.path.expanduser(
    "~/.cache/podwire-tools/tansu-0.6.0/bin/tansu")
HOW = ("tansu is missing: run tests/run-all.sh (it installs it), or: cargo install tansu "
       "--version 0.6.0 --no-default-features --features dynostore --root "
       "~/.cache/podwire-tools/tansu-0.6.0 (about 14 minutes), or set TANSU_BIN")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One tansu process with in-memory storage, on 127.0.0.1 only."""

    def __init__(self, port=None):
        assert os.path.exists(TANSU), HOW
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self):
        url = f"tcp://{self.address}"
        self.log = open(f"/tmp/tansu-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [TANSU, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, f"tansu exited: see /tmp/tansu-{self.port}.log"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"tansu did not listen on {self.address} within 30 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def create_topic(self, name, partitions=1):
        out = subprocess.run(
            [TANSU, "topic", "create", name, "--partitions", str(partitions),
             "--broker", f"tcp://{self.address}"], capture_output=True, text=True)
        assert out.returncode == 0 or "exists" in (out.stdout + out.stderr).lower(), out.stderr
