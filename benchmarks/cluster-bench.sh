#!/usr/bin/env bash
# Times KFL queries run in-process (`podwire query`) against the same queries run on a Ballista
# cluster (`podwire query --cluster`) of one and then two executors, all on this machine. Usage:
#
#   benchmarks/cluster-bench.sh STORE [RUNS]      # RUNS defaults to 5
#
# STORE is a store written by gen_store (the queries are query-bench.sh's a-f, plus g: a grouped
# query, the map's shape, which the executors aggregate). For each cluster size it starts a
# scheduler and the executors on loopback (`podwire cluster scheduler|executor`), then for each
# query
#
#   1. checks that the cluster returns exactly the in-process rows (every column of every row as
#      CSV, sorted, compared by SHA-256): it stops with status 1 if they differ;
#   2. times both as whole processes with hyperfine (1 warm-up, then RUNS runs; medians).
#
# It also times `e0`, a query whose time range holds no file (the cluster's fixed cost per query:
# submission, scheduling, the result fetch). Environment: PODWIRE (default
# target/release/podwire), EXECUTORS (the cluster sizes, default "1 2"), TASKS (tasks per executor,
# default the executors' own: one more than the cores), and the query parameters of
# benchmarks/queries.sh (FROM/TO, HOT_SRC/HOT_DST, NAME, POD, IP).
set -euo pipefail

store=${1:?usage: benchmarks/cluster-bench.sh STORE [RUNS]}
runs=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
podwire=${PODWIRE:-$here/target/release/podwire}
sizes=${EXECUTORS:-1 2}
tasks=${TASKS:-$(( $(nproc) + 1 ))}
# shellcheck source=benchmarks/queries.sh
source "$here/benchmarks/queries.sh"

store=$(cd "$store" && pwd)
[ -x "$podwire" ] || { echo "no podwire binary at $podwire (cargo build --release -p podwire)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (apt-get install hyperfine)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap 'stop; rm -rf "$tmp"' EXIT

free_port() {
  python3 -c 'import socket
for _ in range(50):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 1)); t.close(); print(p); break
    except OSError:
        t.close()'
}

# Queries a-f from queries.sh, plus g (SQL) and e0.
names+=(g e0)
kfl[g]="SELECT src_namespace, src_workload, dst_namespace, dst_workload, protocol, count(*) AS connections, sum(src_bytes + dst_bytes) AS bytes, max(handshake_rtt_us) AS rtt_max FROM connections GROUP BY 1, 2, 3, 4, 5 ORDER BY connections DESC, 1, 2, 3, 4, 5"
args[g]="--sql"
kfl[e0]='tcp'
args[e0]="--from 1990-01-01T00:00:00Z --to 1990-01-01T01:00:00Z"

echo "store: $store ($(du -sh "$store" | cut -f1), $(find "$store/connections" -name '*.parquet' | wc -l) files)"
echo "podwire: $podwire; runs: $runs; cluster sizes: $sizes; $tasks tasks per executor; $(nproc) cores"
echo

results=$tmp/results.tsv
: >"$results"
for n in $sizes; do
  sched_port=$(free_port)
  "$podwire" cluster scheduler --listen "127.0.0.1:$sched_port" >"$tmp/scheduler-$n.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sched_port") 2>/dev/null && break; sleep 0.1; done
  for i in $(seq "$n"); do
    port=$(free_port)
    mkdir -p "$tmp/work-$n-$i"
    "$podwire" cluster executor --scheduler "127.0.0.1:$sched_port" --listen "127.0.0.1:$port" \
      --concurrent-tasks "$tasks" --work-dir "$tmp/work-$n-$i" >"$tmp/executor-$n-$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 300); do
    [ "$(grep -c 'register executor request' "$tmp/scheduler-$n.log" || true)" -ge "$n" ] && break
    sleep 0.1
  done
  [ "$(grep -c 'register executor request' "$tmp/scheduler-$n.log" || true)" -ge "$n" ] \
    || { echo "the executors did not register: $(tail -5 "$tmp/scheduler-$n.log")" >&2; exit 1; }

  for name_ in "${names[@]}"; do
    # shellcheck disable=SC2206
    flags=(${args[$name_]:-})
    alone=("$podwire" query --store "$store" --format csv -q "${flags[@]}" "${kfl[$name_]}")
    there=("$podwire" query --store "$store" --format csv -q --cluster "127.0.0.1:$sched_port" "${flags[@]}" "${kfl[$name_]}")
    a=$("${alone[@]}" | sort | sha256sum | cut -c1-16)
    t=$("${there[@]}" | sort | sha256sum | cut -c1-16)
    rows=$("${alone[@]}" | tail -n +2 | wc -l)
    if [ "$a" != "$t" ]; then
      echo "MISMATCH on query $name_ with $n executor(s): in-process $a, cluster $t" >&2
      exit 1
    fi
    hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$tmp/$name_-$n.json" \
      -n alone "$(printf '%q ' "${alone[@]}")>/dev/null" \
      -n cluster "$(printf '%q ' "${there[@]}")>/dev/null" >/dev/null
    python3 - "$tmp/$name_-$n.json" "$name_" "$n" "$rows" >>"$results" <<'EOF'
import json, statistics, sys
data = json.load(open(sys.argv[1]))
med = {r['command']: statistics.median(r['times']) for r in data['results']}
print('\t'.join([sys.argv[2], sys.argv[3], sys.argv[4], f"{med['alone']:.3f}", f"{med['cluster']:.3f}"]))
EOF
    tail -n 1 "$results" | awk -F'\t' '{printf "query %s, %s executor(s): %s rows, in-process %s s, cluster %s s\n", $1, $2, $3, $4, $5}'
  done
  stop
done

echo
python3 - "$results" <<'EOF'
import collections, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
by = collections.defaultdict(dict)
alone, count = {}, {}
for q, n, r, a, c in rows:
    by[q][int(n)] = float(c)
    alone.setdefault(q, []).append(float(a))
    count[q] = int(r)
sizes = sorted({int(r[1]) for r in rows})
print("| query | rows out | in-process s | " + " | ".join(f"cluster, {n} executor(s) s | ratio" for n in sizes) + " |")
print("|---|---:|---:|" + "---:|---:|" * len(sizes))
for q in by:
    a = sorted(alone[q])[len(alone[q]) // 2]
    cells = " | ".join(f"{by[q][n]:.3f} | {by[q][n] / a:.2f}" for n in sizes)
    print(f"| {q} | {count[q]:,} | {a:.3f} | {cells} |")
EOF
echo
echo "Medians of $runs runs (seconds, wall clock, whole processes); ratio = cluster / in-process."
echo "Every process and executor shares this machine's $(nproc) cores."
