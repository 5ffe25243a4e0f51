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


GEN_STORE = os.path.join(os.path.dirname(BIN), "gen_store")


def generate_store(path, rows, days, seed, *extra):
    """Writes a store of `rows` generated rows over `days` days into `path` with the benchmark's
    generator (`gen_store`, built beside podwire); fails with how to build it when it is
    missing. Returns the path as a string."""
    assert os.path.exists(GEN_STORE), \
        f"build the store generator first (cargo build -p podwire-benchmarks --bin gen_store): {GEN_STORE}"
    out = subprocess.run([GEN_STORE, "--rows", str(rows), "--days", str(days), "--seed", str(seed),
                          "--out", str(path), *extra], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return str(path)
