#!/bin/sh
# realprog.sh - real programs under LD_PRELOAD of the built libhakmem.so.0:
# python3 running tests/alloc_heavy.py, sort(1) on a few MB of generated
# lines, and sqlite3 (skipped if not installed).  Each output must equal the
# same run without hakmem, and HAKMEM_STATS=1 must show that hakmem served
# (stderr has "hakmem: tiny: allocs=N" with N > 0).
# Exit 77 (skip) only if python3 or sort is missing.

set -u

: "${abs_top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${abs_top_srcdir:=$abs_top_builddir}"
lib="$abs_top_builddir/.libs/libhakmem.so.0"
script="$abs_top_srcdir/tests/alloc_heavy.py"

command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not found"; exit 77; }
command -v sort >/dev/null 2>&1 || { echo "SKIP: sort not found"; exit 77; }
if [ ! -f "$lib" ]; then
    echo "FAIL: $lib not built"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-realprog.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# Runs "$@" twice, without and with hakmem (stats on), comparing stdout and
# exit status; checks hakmem's statistics on stderr.  $name labels the files.
compare() {
    name=$1
    shift
    "$@" >"$tmp/$name.plain" 2>"$tmp/$name.plain.err"
    rc_plain=$?
    LD_PRELOAD="$lib" HAKMEM_STATS=1 "$@" >"$tmp/$name.hak" 2>"$tmp/$name.hak.err"
    rc_hak=$?
    if [ "$rc_plain" -ne 0 ]; then
        fail "$name: failed without hakmem (status $rc_plain)"
        sed 's/^/  | /' "$tmp/$name.plain.err" | head -20
        return
    fi
    if [ "$rc_hak" -ne 0 ]; then
        fail "$name: exit status $rc_hak under hakmem (0 without)"
        sed 's/^/  | /' "$tmp/$name.hak.err" | tail -20
        return
    fi
    if ! cmp -s "$tmp/$name.plain" "$tmp/$name.hak"; then
        fail "$name: output differs under hakmem"
        diff "$tmp/$name.plain" "$tmp/$name.hak" | head -20 | sed 's/^/  | /'
        return
    fi
    tiny=$(sed -n 's/^hakmem: tiny: allocs=\([0-9][0-9]*\).*/\1/p' "$tmp/$name.hak.err" | tail -n 1)
    if [ -z "$tiny" ]; then
        fail "$name: no 'hakmem: tiny: allocs=' line on stderr with HAKMEM_STATS=1 (hakmem not loaded, or its exit-time report lost: GNU coreutils close stderr in an atexit handler before hakmem's handler runs)"
        sed 's/^/  | /' "$tmp/$name.hak.err" | tail -20
        return
    fi
    if [ "$tiny" -eq 0 ]; then
        fail "$name: hakmem served no tiny allocations"
        return
    fi
    echo "ok: $name ($(wc -c <"$tmp/$name.hak") bytes of output identical; hakmem: $(grep '^hakmem: ' "$tmp/$name.hak.err" | tail -n 4 | sed 's/^hakmem: //' | tr '\n' ' '))"
}

# 1. python3: dicts, lists, strings, JSON (the interpreter itself, not a
#    wrapper script such as a pyenv shim)
python=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
[ -n "$python" ] && [ -x "$python" ] || python=$(command -v python3)
compare python "$python" "$script"

# 2. sort: a few MB of deterministic lines
awk 'BEGIN { x = 12345; for (i = 0; i < 200000; i++) {
        x = (x * 1103515245 + 12345) % 2147483648
        printf "%08d %s line-%d\n", x % 100000000, substr("abcdefghijklmnopqrstuvwxyz", 1 + x % 26, 1 + x % 13), i
    } }' >"$tmp/input.txt"
size=$(wc -c <"$tmp/input.txt")
if [ "$size" -lt 3000000 ]; then
    fail "sort: generated input only $size bytes"
fi
LC_ALL=C; export LC_ALL
compare sort sort "$tmp/input.txt"
compare sort-k sort -k2,2 -k1,1nr -S 1M "$tmp/input.txt"

# 3. sqlite3, if installed
if command -v sqlite3 >/dev/null 2>&1; then
    cat >"$tmp/q.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v INTEGER, pad BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000)
INSERT INTO t SELECT i, 'k' || (i * 7919 % 1000), i * 31 % 977, zeroblob(i % 300) FROM c;
CREATE INDEX tk ON t(k);
SELECT k, count(*), sum(v), max(length(pad)) FROM t GROUP BY k ORDER BY k LIMIT 20;
SELECT count(*), sum(v) FROM t WHERE k BETWEEN 'k100' AND 'k500';
SELECT group_concat(id, ',') FROM (SELECT id FROM t ORDER BY v DESC, id LIMIT 50);
SELECT length(group_concat(k || v, ';')) FROM t;
UPDATE t SET pad = zeroblob(v % 100), k = k || '-' || printf('%08d', v) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(pad)) FROM t;
SQL
    compare sqlite3 sqlite3 :memory: ".read $tmp/q.sql"
else
    echo "note: sqlite3 not installed, skipping that part"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all real-program checks passed"
exit 0
