"""An S3-compatible object store for the tests: moto's server (the S3 API over HTTP, from PyPI's
`moto[server]`), started on a free loopback port with its state in memory. Used as the bucket of
`podwire ingest --store s3://…` and as tansu's persistent storage (so the broker can be
restarted without losing its topics). tests/run-all.sh installs it."""
import os
import subprocess
import sys

import pytest

from loopback import free_port, stop_process, wait_listening

HOW = "moto's S3 server is missing: python3 -m pip install 'moto[server]' (tests/run-all.sh does)"


class S3Server:
    """One moto server on 127.0.0.1; `env` holds what an S3 client needs to reach it."""

    def __init__(self):
        try:
            import moto.server  # noqa: F401
            import flask  # noqa: F401
        except ImportError as e:
            raise AssertionError(f"{HOW} ({e})")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(f"/tmp/moto-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": self.endpoint, "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
        wait_listening(self.proc, self.port, "moto", f"/tmp/moto-{self.port}.log")

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def create_bucket(self, name):
        self.client().create_bucket(Bucket=name)

    def filesystem(self):
        """A pyarrow filesystem on this server: an S3 reader independent of podwire's."""
        from pyarrow import fs
        return fs.S3FileSystem(endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                               access_key="test", secret_key="test", region="us-east-1")

    def stop(self):
        stop_process(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def s3():
    """One server for a test module's tests (import it into the module to use it)."""
    server = S3Server()
    yield server
    server.stop()
