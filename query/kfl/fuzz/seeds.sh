#!/bin/sh
# Seeds the fuzz corpora with the queries of the conformance corpus (query/kfl/tests/corpus/,
# one query a file; the `# fail: …` first line and the final newline are not part of the query,
# as in tests/corpus.rs). Writes fuzz/corpus/<target>/<area>-<name>, the folder `cargo fuzz run`
# reads and adds to by default (ignored by git). Run from anywhere; rerun after corpus changes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for target in kfl_translate kfl_parse; do
    out="$here/corpus/$target"
    mkdir -p "$out"
    for f in "$here"/../tests/corpus/*/*.kfl; do
        area=$(basename "$(dirname "$f")")
        sed '1{/^# fail: /d;}' "$f" | perl -pe 'chomp if eof' > "$out/seed-$area-$(basename "$f" .kfl)"
    done
done
echo "seeded $(ls "$here/corpus/kfl_translate" | wc -l) files into $here/corpus/{kfl_translate,kfl_parse}"
