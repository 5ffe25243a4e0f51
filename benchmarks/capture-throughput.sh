#!/usr/bin/env bash
# podwire standalone beside the tools a user would otherwise run on the same capture:
# tcpdump (read and discard), nfpcapd (NetFlow records), tshark (TCP conversations).
# One core (taskset), file in page cache, median wall time of N runs, peak RSS from /usr/bin/time.
#
#   benchmarks/capture-throughput.sh [CAPTURE] [RUNS]
#
# Needs: a release build (cargo build --release -p podwire -p podwire-benchmarks), and apt packages tcpdump nfdump tshark time.
set -euo pipefail
cd "$(dirname "$0")/.."
F=${1:-../shared/data/pcaps/large/mix-large.pcap}
RUNS=${2:-5}
BIN=${BIN:-target/release/podwire}              # BIN=… CAPTURE_ONLY=… time another build
CAPTURE_ONLY=${CAPTURE_ONLY:-target/release/capture_only}
CORE=${CORE:-1}
[[ -x $BIN && -x $CAPTURE_ONLY ]] || {
    echo "build first: cargo build --release -p podwire -p podwire-benchmarks" >&2; exit 1; }
for t in tcpdump nfpcapd tshark /usr/bin/time taskset capinfos; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y tcpdump nfdump tshark time util-linux" >&2; exit 1; }
done
PKTS=$(capinfos -c -M "$F" | awk -F': *' '/Number of packets/ {print $2}')
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat "$F" > /dev/null   # page cache

# median of RUNS: prints "seconds max_rss_kb"
measure() {
    local name=$1; shift
    local times=() rss=0
    for _ in $(seq "$RUNS"); do
        rm -rf "$WORK/out"; mkdir -p "$WORK/out"
        /usr/bin/time -f '%e %M' -o "$WORK/time" taskset -c "$CORE" "$@" >/dev/null 2>"$WORK/err" || {
            echo "$name failed:"; cat "$WORK/err"; exit 1; }
        read -r s kb < "$WORK/time"
        times+=("$s"); (( kb > rss )) && rss=$kb
    done
    local med
    med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    awk -v n="$name" -v s="$med" -v p="$PKTS" -v r="$rss" \
        'BEGIN { printf "| %-34s | %8.3f | %10.2f | %8.1f |\n", n, s, (s > 0 ? p / s / 1e6 : 0), r / 1024 }'
}

echo "capture: $F ($PKTS packets, $(stat -c %s "$F") bytes); $RUNS runs each, median; core $CORE"
echo "| tool | seconds | M packets/s | peak RSS MB |"
echo "|---|---|---|---|"
measure "podwire standalone (Parquet out)" "$BIN" standalone -q --pcap "$F" --store "$WORK/out"
measure "podwire packet path only (no Parquet)" "$CAPTURE_ONLY" "$F" 1
measure "tcpdump -r F -w /dev/null" tcpdump -r "$F" -w /dev/null
measure "nfpcapd -r F -w DIR" nfpcapd -r "$F" -w "$WORK/out"
if [[ ${SKIP_TSHARK:-} != 1 ]]; then
    RUNS=1 measure "tshark -q -z conv,tcp (1 run)" tshark -n -q -r "$F" -z conv,tcp
fi
