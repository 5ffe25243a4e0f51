# The KFL queries a-f that query-bench.sh (against DuckDB) and cluster-bench.sh (against a
# Ballista cluster) time, with their defaults: sourced by both, so they time the same filters.
# Names are those gen_store --seed 1 writes. Environment: FROM/TO (the hour of query d, default
# 2026-11-05T14:00:00Z to 15:00:00Z), HOT_SRC/HOT_DST (the namespaces of query b, default
# shop/payments), NAME (query c, default api.stripe.com), POD (query e, one pod's traffic; default
# a pod of seed 1), IP (query f, one service address; default one of seed 1).
# shellcheck shell=bash disable=SC2034
from=${FROM:-2026-11-05T14:00:00Z}
to=${TO:-2026-11-05T15:00:00Z}
hot_src=${HOT_SRC:-shop}
hot_dst=${HOT_DST:-payments}
name=${NAME:-api.stripe.com}
pod=${POD:-cart-vfxprqrf9d-r8fwt}
ip=${IP:-10.98.159.5}

names=(a b c d e f)
# kfl[q]: the filter; args[q]: the extra flags of `podwire query`.
declare -A kfl args
kfl[a]='dst.namespace == ""'
kfl[b]="src.namespace == \"$hot_src\" and dst.namespace == \"$hot_dst\""
kfl[c]="dst.name == \"$name\""
kfl[d]='tcp'
args[d]="--from $from --to $to"
kfl[e]="src.pod.name == \"$pod\" or dst.pod.name == \"$pod\""
kfl[f]="dst.ip == \"$ip\""
