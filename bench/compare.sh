#!/bin/sh
# compare.sh - run the benchmark comparison (hakmem vs glibc, mimalloc,
# jemalloc, tcmalloc).  A thin wrapper around compare.py, which needs only
# python3's standard library; all options are compare.py's (--help).
#   bench/compare.sh --quick                         (< 2 minutes)
#   bench/compare.sh --hakmem BUILD/.libs/libhakmem.so.0 --bench-dir BUILD/bench
here=$(dirname "$0")
exec python3 "$here/compare.py" "$@"
