#!/bin/bash
# bench/scaling.sh - thread scaling of hakmem against the other allocators:
# bench_thread_scaling and bench_larson at 1, 2, 4, 8, 16 threads (or
# $THREADS), each allocator preloaded in turn, alternating, $REPS runs each;
# prints the median throughput per thread count as a markdown table.
#
#   bench/scaling.sh BENCH_DIR LIBHAKMEM [NAME=LIB ...]
#
# BENCH_DIR holds the built benchmark programs (make bench), LIBHAKMEM the
# library to preload as "hakmem"; NAME=LIB adds more (e.g. an older hakmem).
# glibc (no preload), mimalloc, jemalloc and tcmalloc are found where Debian
# installs them.  Wants a machine with at least as many cores as threads.
set -u
bench=$1 hakmem=$2
shift 2
# shellcheck source=bench/allocators.sh
. "$(dirname "$0")/allocators.sh"
bench_allocators "$hakmem" "$@"
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for t in ${THREADS:-1 2 4 8 16}; do
    for _ in $(seq "${REPS:-3}"); do
        for i in "${!names[@]}"; do
            for prog in "bench_thread_scaling $t 4000000" "bench_larson $t 20 50000"; do
                # shellcheck disable=SC2086 # the words of $prog are its arguments
                set -- $prog
                r=$(LD_PRELOAD=${libs[$i]} timeout 120 "$bench/$1" "${@:2}" |
                    sed -n 's/^Throughput = \([0-9.]*\).*/\1/p')
                echo "$1 $t ${names[$i]} ${r:-0}" >>"$raw"
            done
        done
    done
done
for prog in bench_thread_scaling bench_larson; do
    echo
    echo "$prog: median Mops/s of ${REPS:-3} alternating runs"
    echo
    printf '| threads |'; printf ' %s |' "${names[@]}"; echo
    printf '|---|'; printf -- '---|%.0s' "${names[@]}"; echo
    for t in ${THREADS:-1 2 4 8 16}; do
        printf '| %s |' "$t"
        for n in "${names[@]}"; do
            awk -v p="$prog" -v t="$t" -v n="$n" '$1 == p && $2 == t && $3 == n { print $4 }' "$raw" |
                sort -g | awk '{ v[NR] = $1 }
                    END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                          printf " %.1f |", m / 1e6 }'
        done
        echo
    done
done
