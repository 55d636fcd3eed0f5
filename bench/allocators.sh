# bench/allocators.sh - sourced by bench/scaling.sh and bench/realprogs.sh:
# fills the arrays `names` and `libs` with the allocators to compare: glibc
# (no preload), hakmem ($1), each NAME=LIB of the remaining arguments, and
# mimalloc, jemalloc and tcmalloc where Debian installs them.
bench_allocators() {
    local hakmem=$1 extra cand d
    shift
    names=(glibc hakmem) libs=("" "$hakmem")
    for extra in "$@"; do names+=("${extra%%=*}"); libs+=("${extra#*=}"); done
    for cand in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
        for d in /usr/lib/x86_64-linux-gnu /usr/local/lib /usr/lib64 /usr/lib; do
            if [ -e "$d/${cand#*:}" ]; then names+=("${cand%%:*}"); libs+=("$d/${cand#*:}"); break; fi
        done
    done
}
