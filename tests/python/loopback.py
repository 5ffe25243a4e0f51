"""Helpers for the servers the tests start on loopback (the broker, the S3 server)."""
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, port, name, log, timeout=30):
    """Waits until `proc` accepts connections on 127.0.0.1:`port`; fails if it exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"{name} exited: see {log}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{name} did not listen on 127.0.0.1:{port} within {timeout} s")


def stop_process(proc):
    """SIGTERM, then SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
