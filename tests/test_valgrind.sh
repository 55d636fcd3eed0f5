#!/bin/sh
# test_valgrind.sh - with ./configure --enable-valgrind, hakmem announces its
# blocks to valgrind's memcheck (client requests), so memcheck finds leaks and
# invalid accesses in programs running on hakmem.  This runs tests/vg_misuse.c
#
#   errors: a deliberate leak (100 + 5000 bytes, definitely lost) and a
#           deliberate use after free (a read and a write into a freed 64-byte
#           block): memcheck must report each one, and exit with the error code;
#   clean:  allocations in every tier and from threads, no misuse: memcheck
#           must report no error (hakmem's bookkeeping is invisible to it);
#
# twice: linked with libhakmem (tests/vg_misuse) and with hakmem preloaded
# into a program that does not link it (LD_PRELOAD=.libs/libhakmem.so.0
# tests/vg_plain).  valgrind runs with --soname-synonyms=somalloc=nouserintercepts
# (see below) and HAKMEM_STATS=1 shows that hakmem, not memcheck's own
# allocator, served the blocks.
#
# Skipped (exit 77) unless configured with --enable-valgrind (the build sets
# HAKMEM_VALGRIND_CONFIGURED=yes in the test environment) and valgrind runs.
set -u

builddir=${abs_top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}

if [ "${HAKMEM_VALGRIND_CONFIGURED:-no}" != yes ]; then
    echo "SKIP: hakmem was not configured with --enable-valgrind"
    exit 77
fi
if ! valgrind --version >/dev/null 2>&1; then
    echo "SKIP: valgrind not found"
    exit 77
fi
echo "valgrind: $(valgrind --version)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-vg.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

status=0
fail() {
    echo "FAIL: $*"
    status=1
}

# By default memcheck intercepts the malloc family in every shared library
# that exports it - it would replace hakmem altogether, and this test would
# prove nothing about hakmem.  somalloc=nouserintercepts (any name that is
# not a library) limits the interception to the C library, so the program's
# calls reach hakmem and memcheck learns about blocks from hakmem's client
# requests only.
vg_opts="--error-exitcode=42 --leak-check=full --show-leak-kinds=definite --num-callers=20
 --soname-synonyms=somalloc=nouserintercepts"

# run NAME MODE [extra valgrind options]: runs one case; the program's stderr
# in $tmp/NAME.err, memcheck's report in $tmp/NAME.vg, the exit code in rc.
run() {
    name=$1 mode=$2
    shift 2
    case $name in
    linked-*)
        HAKMEM_STATS=1 "$builddir/libtool" --mode=execute valgrind $vg_opts "$@" \
            --log-file="$tmp/$name.vg" "$builddir/tests/vg_misuse" "$mode" 2>"$tmp/$name.err"
        ;;
    preload-*)
        HAKMEM_STATS=1 LD_PRELOAD="$builddir/.libs/libhakmem.so.0" valgrind $vg_opts "$@" \
            --log-file="$tmp/$name.vg" "$builddir/tests/vg_plain" "$mode" 2>"$tmp/$name.err"
        ;;
    esac
    rc=$?
    echo "--- $name: exit $rc"
    grep -E 'ERROR SUMMARY|definitely lost:|Invalid (read|write)' "$tmp/$name.vg" | sed 's/^/    /'
    grep '^hakmem:' "$tmp/$name.err" | sed 's/^/    /'
}

# Served by hakmem: HAKMEM_STATS=1 reports tiny allocations.
served_by_hakmem() {
    grep -Eq '^hakmem: tiny: allocs=[1-9]' "$tmp/$1.err" ||
        fail "$1: no 'hakmem: tiny: allocs=N' line: hakmem did not serve the program"
}

for how in linked preload; do
    run "$how-errors" errors
    [ "$rc" -eq 42 ] || fail "$how-errors: valgrind exited $rc, not 42 (errors found)"
    served_by_hakmem "$how-errors"
    vg=$tmp/$how-errors.vg
    grep -Eq '100 bytes in 1 blocks are definitely lost' "$vg" ||
        fail "$how-errors: memcheck did not report the 100-byte leak as definitely lost"
    grep -Eq '5,000 bytes in 1 blocks are definitely lost' "$vg" ||
        fail "$how-errors: memcheck did not report the 5000-byte leak as definitely lost"
    grep -Eq 'definitely lost: 5,100 bytes in 2 blocks' "$vg" ||
        fail "$how-errors: leak summary is not 'definitely lost: 5,100 bytes in 2 blocks'"
    grep -Eq 'Invalid read of size 1' "$vg" ||
        fail "$how-errors: memcheck did not report the read after free"
    grep -Eq 'Invalid write of size 1' "$vg" ||
        fail "$how-errors: memcheck did not report the write after free"
    grep -Eq "inside a block of size 64 free'd" "$vg" ||
        fail "$how-errors: memcheck did not name the freed 64-byte block"

    run "$how-clean" clean --errors-for-leak-kinds=definite
    [ "$rc" -eq 0 ] || fail "$how-clean: valgrind exited $rc, not 0"
    served_by_hakmem "$how-clean"
    grep -Eq 'ERROR SUMMARY: 0 errors' "$tmp/$how-clean.vg" ||
        fail "$how-clean: memcheck reported errors in a correct program"
done

if [ "$status" -ne 0 ]; then
    for f in "$tmp"/*.vg; do
        echo "=== $f"
        head -n 150 "$f"
    done
fi
exit $status
