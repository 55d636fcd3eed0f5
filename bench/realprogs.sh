#!/bin/bash
# bench/realprogs.sh - real programs under each allocator: python3 running
# tests/alloc_heavy.py, sort(1) on 400,000 generated lines, and sqlite3
# inserting 200,000 rows and building an index in memory, and clang++ (if
# installed) compiling tests/test_cxx.cc with -O2.  Each allocator is
# preloaded in turn, alternating, $REPS runs each (default 5); prints the
# median wall time and the median peak RSS (/usr/bin/time %M) as a markdown
# table.
#
#   bench/realprogs.sh SRCDIR LIBHAKMEM [NAME=LIB ...]
#
# SRCDIR is the source tree (for tests/alloc_heavy.py), LIBHAKMEM the library
# to preload as "hakmem"; NAME=LIB adds more (e.g. an older hakmem).  glibc
# (no preload), mimalloc, jemalloc and tcmalloc are found where Debian
# installs them.  Needs python3, sort, sqlite3 and GNU time.
set -u
src=$1 hakmem=$2
shift 2
# shellcheck source=bench/allocators.sh
. "$(dirname "$0")/allocators.sh"
bench_allocators "$hakmem" "$@"
for tool in python3 sort sqlite3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "realprogs.sh: $tool not found" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/lines.txt" <<'EOF'
import random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for i in range(400000):
        f.write("%x %s\n" % (random.getrandbits(64), "x" * random.randint(0, 60)))
EOF
cat >"$work/rows.sql" <<'EOF'
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200000)
INSERT INTO t SELECT i, printf('%08x-%d', i*2654435761 % 4294967296, i), randomblob(i % 300) FROM n;
CREATE INDEX tb ON t(b);
SELECT count(*), sum(length(c)) FROM t WHERE b LIKE '1%';
EOF
python=$(python3 -c 'import sys; print(sys.executable)')
progs=("python3 alloc_heavy.py|$python $src/tests/alloc_heavy.py"
       "sort 400k lines|sort $work/lines.txt"
       "sqlite3 200k rows + index|sqlite3 :memory: .read\\ $work/rows.sql")
# A C++ program: clang++ compiling tests/test_cxx.cc (LLVM allocates through
# operator new), when clang++ is installed.
if command -v clang++ >/dev/null; then
    progs+=("clang++ -O2 test_cxx.cc|clang++ -std=gnu++17 -O2 -I$src/include -c $src/tests/test_cxx.cc -o $work/test_cxx.o")
fi

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

printf '| program |'; printf ' %s |' "${names[@]}"; echo
printf '|---|'; for _ in "${names[@]}"; do printf -- '---|'; done; echo
for entry in "${progs[@]}"; do
    title=${entry%%|*} cmd=${entry#*|}
    declare -A secs=() kb=()
    for _ in $(seq "${REPS:-5}"); do
        for i in "${!names[@]}"; do
            # shellcheck disable=SC2086 # the words of $cmd are its arguments
            eval "set -- $cmd"
            out=$(env LD_PRELOAD="${libs[$i]}" /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -n 1)
            secs[$i]+="${out%% *} " kb[$i]+="${out##* } "
        done
    done
    printf '| %s |' "$title"
    for i in "${!names[@]}"; do
        s=$(tr ' ' '\n' <<<"${secs[$i]}" | grep . | median)
        k=$(tr ' ' '\n' <<<"${kb[$i]}" | grep . | median)
        awk -v s="$s" -v k="$k" 'BEGIN { printf " %s s / %.1f MiB |", s, k / 1024 }'
    done
    echo
    unset secs kb
done
