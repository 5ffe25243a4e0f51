#!/usr/bin/env bash
# Times KFL queries with `podwire query` against the same SQL written by hand for DuckDB, on the
# same store. Usage:
#
#   benchmarks/query-bench.sh STORE [RUNS]       # RUNS defaults to 5
#
# STORE is a store written by `podwire standalone` or `gen_store` (benchmarks/src/bin/gen_store.rs;
# the queries below use names that gen_store writes). For each query it
#
#   1. checks that both tools return the same rows (count, and the sum of conn_id): it stops with
#      status 1 and a message if they differ;
#   2. times whole processes with hyperfine (1 warm-up, then RUNS runs; the median is reported):
#      `podwire query --store STORE --format csv -q 'KFL' > /dev/null` and
#      `python3 -c 'import duckdb; COPY (SQL) TO /dev/stdout (HEADER)' > /dev/null`;
#   3. times DuckDB's query alone inside one Python process (the same COPY, median of RUNS after
#      one warm-up), which leaves out Python's start-up and `import duckdb`, and podwire's query
#      alone inside one process with the store open (query_explain --mode time, CSV to a sink).
#
# Both write every column of every matching row as CSV, in the same order (time, then conn_id).
# No core pinning: both tools use every core (DataFusion's target_partitions and DuckDB's threads
# default to the core count). Environment: PODWIRE (default target/release/podwire), and the
# query parameters of benchmarks/queries.sh (FROM/TO, HOT_SRC/HOT_DST, NAME, POD, IP).
set -euo pipefail

store=${1:?usage: benchmarks/query-bench.sh STORE [RUNS]}
runs=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
podwire=${PODWIRE:-$here/target/release/podwire}
explain=${QUERY_EXPLAIN:-$here/target/release/query_explain}
# shellcheck source=benchmarks/queries.sh
source "$here/benchmarks/queries.sh"

store=$(cd "$store" && pwd)
[ -x "$podwire" ] || { echo "no podwire binary at $podwire (cargo build --release -p podwire)" >&2; exit 1; }
[ -x "$explain" ] || { echo "no query_explain binary at $explain (cargo build --release -p podwire-benchmarks --bin query_explain)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is not installed" >&2; exit 1; }
python3 -c 'import duckdb' || { echo "the Python package duckdb is not installed" >&2; exit 1; }
ls "$store"/connections/date=*/hour=*/*.parquet >/dev/null 2>&1 \
  || { echo "no connections files under $store/connections" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

conns="read_parquet('$store/connections/date=*/hour=*/*.parquet', hive_partitioning = true)"
dns="read_parquet('$store/dns/date=*/hour=*/*.parquet', hive_partitioning = true)"
have_dns=0
if ls "$store"/dns/date=*/hour=*/*.parquet >/dev/null 2>&1; then have_dns=1; fi

# The columns KFL returns when a filter can match both tables (`podwire translate` shows them).
common="conn_id, %s AS protocol, src_ip, src_port, dst_ip, dst_port, outcome, node,
  src_name, src_namespace, src_pod, src_workload, src_workload_kind, src_service, src_node,
  dst_name, dst_namespace, dst_pod, dst_workload, dst_workload_kind, dst_service, dst_node"

# The SQL podwire runs for a filter that matches both tables (UNION ALL of connections and dns),
# hand-written for DuckDB. The dns branch is left out when the store has no dns files, because
# DuckDB's read_parquet fails on a glob that matches nothing (podwire reads such a table as empty).
union_sql() {
  local where=$1
  local sql
  # shellcheck disable=SC2059
  sql="SELECT 'connections' AS entry_type, start_ts AS ts, $(printf "$common" protocol)
FROM $conns WHERE $where"
  if [ "$have_dns" = 1 ]; then
    # shellcheck disable=SC2059
    sql="$sql
UNION ALL
SELECT 'dns' AS entry_type, ts, $(printf "$common" "'dns'")
FROM $dns WHERE $where"
  fi
  printf '%s\nORDER BY ts, conn_id' "$sql"
}

# The hour partition of query d, as podwire adds it from --from/--to.
day=${from%%T*}
hour=${from#*T}
hour=${hour%%:*}

# The same filters as DuckDB SQL (the KFL is in queries.sh).
declare -A sql
sql[a]=$(union_sql "dst_namespace = ''")
sql[b]=$(union_sql "src_namespace = '$hot_src' AND dst_namespace = '$hot_dst'")
sql[c]=$(union_sql "dst_name = '$name'")
sql[e]=$(union_sql "(src_pod = '$pod' OR dst_pod = '$pod')")
sql[f]=$(union_sql "dst_ip = '$ip'")
sql[d]="SELECT * EXCLUDE (date, hour) FROM $conns
WHERE start_ts >= TIMESTAMPTZ '$from' AND start_ts < TIMESTAMPTZ '$to' AND protocol = 'tcp'
  AND date = DATE '$day' AND hour = '$hour'
ORDER BY start_ts, conn_id"

echo "store: $store ($(du -sh "$store" | cut -f1), $(find "$store/connections" -name '*.parquet' | wc -l) files)"
echo "podwire: $podwire; duckdb $(python3 -c 'import duckdb; print(duckdb.__version__)'); runs: $runs; no core pinning ($(nproc) cores)"
echo

results=$tmp/results.tsv
: >"$results"
for q in "${names[@]}"; do
  # shellcheck disable=SC2206
  extra=(${args[$q]:-})
  pw=("$podwire" query --store "$store" --format csv -q "${extra[@]}" "${kfl[$q]}")
  printf '%s\n' "${sql[$q]}" >"$tmp/$q.sql"
  cat >"$tmp/$q.py" <<EOF
import duckdb, sys
sql = open(sys.argv[1]).read()
duckdb.connect().execute(f"COPY ({sql}) TO '/dev/stdout' (FORMAT csv, HEADER)")
EOF

  # Same rows from both? Count and sum of conn_id (exact integers in Python and DuckDB).
  "${pw[@]}" >"$tmp/$q.csv"
  pw_check=$(python3 - "$tmp/$q.csv" <<'EOF'
import csv, sys
with open(sys.argv[1], newline='') as f:
    r = csv.reader(f)
    i = next(r).index('conn_id')
    n = s = 0
    for row in r:
        n += 1
        s += int(row[i])
print(n, s)
EOF
)
  rm -f "$tmp/$q.csv"
  dk_check=$(python3 - "$tmp/$q.sql" <<'EOF'
import duckdb, sys
sql = open(sys.argv[1]).read()
n, s = duckdb.connect().execute(f"SELECT count(*), coalesce(sum(conn_id::HUGEINT), 0) FROM ({sql})").fetchone()
print(n, s)
EOF
)
  if [ "$pw_check" != "$dk_check" ]; then
    echo "MISMATCH on query $q (${kfl[$q]}): podwire rows/sum(conn_id) = $pw_check, DuckDB = $dk_check" >&2
    exit 1
  fi
  rows=${pw_check%% *}

  # Whole processes.
  pw_cmd="$(printf '%q ' "${pw[@]}")>/dev/null"
  dk_cmd="python3 $tmp/$q.py $tmp/$q.sql >/dev/null"
  hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$tmp/$q.json" \
    -n podwire "$pw_cmd" -n duckdb "$dk_cmd" >"$tmp/$q.hyperfine.txt"

  # DuckDB's query alone, in one process.
  dk_inproc=$(python3 - "$tmp/$q.sql" "$runs" "$here/benchmarks/query-family.py" <<'EOF'
import duckdb, importlib.util, sys
spec = importlib.util.spec_from_file_location("query_family", sys.argv[3])
qf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qf)
sql = open(sys.argv[1]).read()
print(f"{qf.duckdb_in_process(duckdb.connect(), sql, int(sys.argv[2])):.3f}")
EOF
)
  # podwire's query alone, in one process with the store open (as `podwire serve` runs it):
  # query_explain's median of RUNS after one warm-up, CSV written to a sink.
  pw_inproc=$("$explain" --store "$store" --mode time --runs "$runs" "${extra[@]}" "${kfl[$q]}" \
    | sed -n 's/.*run and write CSV \([0-9.]*\) s.*/\1/p')

  python3 - "$tmp/$q.json" "$q" "${kfl[$q]}${args[$q]:+  (${args[$q]})}" "$rows" "$dk_inproc" "$pw_inproc" >>"$results" <<'EOF'
import json, statistics, sys
data = json.load(open(sys.argv[1]))
med = {r['command']: statistics.median(r['times']) for r in data['results']}
print('\t'.join([sys.argv[2], sys.argv[3], sys.argv[4], f"{med['podwire']:.3f}", f"{med['duckdb']:.3f}", sys.argv[5], sys.argv[6]]))
EOF
  tail -n 1 "$results" | awk -F'\t' '{printf "query %s: %s rows, processes: podwire %s s, duckdb %s s; in-process: podwire %s s, duckdb %s s\n", $1, $3, $4, $5, $7, $6}'
done

echo
echo "| query | KFL | rows | podwire s (process) | DuckDB s (process) | ratio | podwire s (in-process) | DuckDB s (in-process) | ratio |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '{printf "| %s | `%s` | %\047d | %s | %s | %.2f | %s | %s | %.2f |\n", $1, $2, $3, $4, $5, $4 / $5, $7, $6, $7 / $6}' "$results"
echo
echo "Times are medians of $runs runs (seconds, wall clock); ratio = podwire / DuckDB. A DuckDB"
echo "process includes Python's start-up and 'import duckdb' (about 0.2 s here)."
