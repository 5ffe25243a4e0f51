#!/bin/bash
# Rows of every shared capture (../shared/data/pcaps) from two podwire binaries, compared table
# by table with DuckDB: a refactoring must leave them equal.
#
#   tests/compare-rows.sh OLD_BINARY NEW_BINARY     (e.g. a build of the commit before)
#
# Not part of run-all.sh: it needs the old build.
A=$1; B=$2; out=$(mktemp -d); trap "rm -rf $out" EXIT
n=0; diff=0
for f in $(find "$(dirname "$0")/../../shared/data/pcaps" -name '*.pcap' -o -name '*.pcapng' | sort); do
  n=$((n+1))
  $A standalone --pcap "$f" --store $out/a$n --node n1 -q >/dev/null 2>&1; ra=$?
  $B standalone --pcap "$f" --store $out/b$n --node n1 -q >/dev/null 2>&1; rb=$?
  if ((ra != rb)); then echo "$f: exit $ra against $rb"; diff=$((diff+1)); fi
  for t in connections dns; do
    r=$(python3 - "$out/a$n/$t" "$out/b$n/$t" <<'PY'
import duckdb, sys, os, glob
a, b = sys.argv[1], sys.argv[2]
fa, fb = glob.glob(a + '/date=*/hour=*/*.parquet', recursive=True), glob.glob(b + '/date=*/hour=*/*.parquet', recursive=True)
if not fa and not fb: print("empty"); sys.exit()
q = lambda fs: duckdb.sql(f"select * from read_parquet({fs!r}, union_by_name=true) order by all").fetchall()
print("same" if q(fa) == q(fb) else "DIFF", len(q(fa)))
PY
)
    case "$r" in same*|empty) ;; *) echo "$f $t: $r"; diff=$((diff+1));; esac
  done
done
echo "captures: $n, differing tables: $diff"
((diff == 0))
