"""Shared by the Python tests: where the repo, the podwire binary and the shared captures are."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PODWIRE_BIN", os.path.join(ROOT, "target", "debug", "podwire"))
PCAPS = os.path.join(os.path.dirname(ROOT), "shared", "data", "pcaps")


def run(*args):
    """Runs the podwire binary; fails with how to build it when it is missing."""
    assert os.path.exists(BIN), f"build podwire first (cargo build): {BIN}"
    return subprocess.run([BIN, *args], capture_output=True, text=True)
