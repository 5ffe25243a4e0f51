#!/usr/bin/env bash
# What compaction buys: queries a, b and c of query-bench.sh (whole-store filters) on a store
# written as ingest writes it with its default 5-second rolls (720 files and Delta commits per
# hour), the same store after `podwire store compact`, and the same rows written one file per
# hour (the bench store's layout). Usage:
#
#   benchmarks/compaction-bench.sh DIR [ROWS] [DAYS] [RUNS]    # defaults: 714000 rows, 1 day, 5 runs
#
# ROWS over DAYS at the bench store's rate (10 M rows over 14 days is 714,000 a day). For each
# query the rows of the three stores are checked equal first (sorted CSV, every column), then
# whole `podwire query` processes are timed with hyperfine (1 warm-up, then RUNS; median).
# The generator's time for the small-file store is the cost of 720 commits an hour; the
# compaction's own time is printed too. Environment: FILES_PER_HOUR (720), PODWIRE, GEN_STORE (default
# target/release/...), HOT_SRC/HOT_DST/NAME as in query-bench.sh; KEEP_STORES=1 times the stores
# an earlier run left in DIR instead of writing them again (an uncompacted small-file store).
set -euo pipefail

dir=${1:?usage: benchmarks/compaction-bench.sh DIR [ROWS] [DAYS] [RUNS]}
rows=${2:-714000}
days=${3:-1}
runs=${4:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
podwire=${PODWIRE:-$here/target/release/podwire}
gen=${GEN_STORE:-$here/target/release/gen_store}
hot_src=${HOT_SRC:-shop}
hot_dst=${HOT_DST:-payments}
name=${NAME:-api.stripe.com}
for b in "$podwire" "$gen"; do
  [ -x "$b" ] || { echo "no binary at $b (cargo build --release -p podwire -p podwire-benchmarks)" >&2; exit 1; }
done
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (apt-get install hyperfine)" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
small=$dir/small
hourly=$dir/hourly
if [ -n "${KEEP_STORES:-}" ] && [ -d "$small/connections/_delta_log" ] && [ -d "$hourly/connections" ]; then
  echo "== KEEP_STORES: timing the stores already in $dir (written by an earlier run)"
  reuse=1
else
  rm -rf "$small" "$hourly"
  reuse=
fi

files() { find "$1/connections" -path '*/date=*/hour=*/*.parquet' | wc -l; }
live_files() { # the files of the table's snapshot (the Delta log), not the folders
  python3 -c 'import sys, deltalake; print(len(deltalake.DeltaTable(sys.argv[1]).file_uris()))' "$1/connections"
}

if [ -z "$reuse" ]; then
echo "== writing $rows rows over $days day(s), ${FILES_PER_HOUR:-720} files an hour (a Delta commit each)"
t0=$(date +%s.%N)
"$gen" --rows "$rows" --days "$days" --seed 1 --files-per-hour "${FILES_PER_HOUR:-720}" --out "$small" >/dev/null 2>&1
t1=$(date +%s.%N)
commits=$(ls "$small/connections/_delta_log/" | grep -c '\.json$')
printf 'small-file store: %.1f s, %s files, %s commits of connections (%.1f ms a commit, all included)\n' \
  "$(echo "$t1 - $t0" | bc)" "$(files "$small")" "$commits" "$(echo "($t1 - $t0) * 1000 / $commits" | bc -l)"
t0=$(date +%s.%N)
"$gen" --rows "$rows" --days "$days" --seed 1 --out "$hourly" >/dev/null 2>&1
t1=$(date +%s.%N)
printf 'one-file-per-hour store: %.1f s, %s files\n' "$(echo "$t1 - $t0" | bc)" "$(files "$hourly")"
fi

declare -A kfl
kfl[a]='dst.namespace == ""'
kfl[b]="src.namespace == \"$hot_src\" and dst.namespace == \"$hot_dst\""
kfl[c]="dst.name == \"$name\""

rows_of() { "$podwire" query --store "$1" --format csv -q "$2" | sort | md5sum | cut -d' ' -f1; }
check() {
  for q in a b c; do
    local want got
    want=$(rows_of "$hourly" "${kfl[$q]}")
    got=$(rows_of "$small" "${kfl[$q]}")
    [ "$want" = "$got" ] || { echo "query $q: other rows on the small-file store ($got, want $want)" >&2; exit 1; }
  done
  echo "rows of a, b, c equal on both stores"
}
time_on() { # label store
  for q in a b c; do
    hyperfine -N --style none --warmup 1 --runs "$runs" --export-json "$dir/$1-$q.json" \
      "$podwire query --store $2 --format csv -q '${kfl[$q]}'" >/dev/null
    python3 -c 'import json, sys, statistics
t = json.load(open(sys.argv[1]))["results"][0]["times"]
print(f"{sys.argv[2]:<22} {sys.argv[3]}  median {statistics.median(t):7.3f} s  (min {min(t):.3f}, max {max(t):.3f})")' \
      "$dir/$1-$q.json" "$1" "$q"
  done
}

echo
echo "== before compaction ($(live_files "$small") files in the snapshot)"
check
time_on small "$small"
time_on hourly "$hourly"

echo
echo "== podwire store compact"
t0=$(date +%s.%N)
"$podwire" store compact --store "$small" --older-than 1h -q
t1=$(date +%s.%N)
printf 'compacted in %.1f s: %s files in the snapshot (%s in the folders until the vacuum)\n' \
  "$(echo "$t1 - $t0" | bc)" "$(live_files "$small")" "$(files "$small")"
check
time_on compacted "$small"
