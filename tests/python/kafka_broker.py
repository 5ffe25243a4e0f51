"""A real Kafka-protocol broker for the tests: tansu (an Apache-Kafka-compatible broker written in
Rust), started on a free loopback port. tests/run-all.sh installs it and sets TANSU_BIN."""
import os
import subprocess

from loopback import free_port, stop_process, wait_listening

TANSU = os.environ.get("TANSU_BIN") or os.path.expanduser(
    "~/.cache/podwire-tools/tansu-0.6.0/bin/tansu")
HOW = ("tansu is missing: run tests/run-all.sh (it installs it), or: cargo install tansu "
       "--version 0.6.0 --no-default-features --features dynostore --root "
       "~/.cache/podwire-tools/tansu-0.6.0 (about 14 minutes), or set TANSU_BIN")


class Broker:
    """One tansu process on 127.0.0.1 only: in-memory storage, or with `s3` (an
    s3_server.S3Server) its topics in a bucket of that server, which outlive a restart."""

    def __init__(self, port=None, s3=None):
        assert os.path.exists(TANSU), HOW
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = None
        self.env = None
        self.storage = "memory://tansu/"
        if s3 is not None:
            bucket = f"tansu{self.port}"
            s3.create_bucket(bucket)
            self.env = s3.env
            self.storage = f"s3://{bucket}/"
        self.start()

    def start(self):
        url = f"tcp://{self.address}"
        self.log = open(f"/tmp/tansu-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [TANSU, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", self.storage],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        wait_listening(self.proc, self.port, "tansu", f"/tmp/tansu-{self.port}.log")

    def kill(self):
        """SIGKILL: no clean shutdown, as when its node dies."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        stop_process(self.proc)
        self.log.close()

    def create_topic(self, name, partitions=1):
        out = subprocess.run(
            [TANSU, "topic", "create", name, "--partitions", str(partitions),
             "--broker", f"tcp://{self.address}"], capture_output=True, text=True)
        assert out.returncode == 0 or "exists" in (out.stdout + out.stderr).lower(), out.stderr
