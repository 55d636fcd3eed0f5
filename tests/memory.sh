#!/bin/sh
# memory.sh - hakmem's use of address space, memory and system calls, each
# scenario run by tests/mem_probe under LD_PRELOAD of the built library:
#   - 100,000 x malloc(64 KiB) under `ulimit -v 8000000`, VmSize bounded;
#   - 10,000 x aligned_alloc(8192, 64) and memalign(4096, 100) under 200 MiB
#     of VmSize;
#   - 1,000 rounds of 40 x 100 KB make at most a handful of mmap, munmap,
#     madvise and mremap calls more than one round (strace -c -f);
#   - 256 MiB of large blocks, then of blocks of every tier (a third each of
#     tiny, pool and large), freed and left alone: after twice the purge
#     delay and one more call, RSS within 16 MiB of the start;
#   - under tests/thp_shim (MADV_HUGEPAGE on every mapping), 100 x
#     malloc(64 KiB) costs at most twice glibc's RSS;
#   - one block of each size 16, 32, ... 1024 (every tiny class, 33 KiB in
#     all) costs at most 128 KiB of anonymous RSS: a class's first refill
#     carves a page, not a cache's worth (about 90 KiB; 148 before 0.2);
#   - 64 threads each holding one block of each size 16, 32, ... 256 (12 tiny
#     classes) cost at most 80 KiB of anonymous RSS per thread, stack
#     included (a page per class and a page of heap: 60 KiB; 110 before 0.2,
#     glibc 11), unless huge pages are on for every mapping;
#   - the threads case of tests/test_pages with HAKMEM_PURGE_DELAY_MS=0, so
#     that purges run all the time next to allocations (if Check is there).
# Exit 77 (skip) only if nothing could run; a scenario whose tool is missing
# (strace, huge pages) is reported and skipped on its own.

set -u

: "${abs_top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
lib="$abs_top_builddir/.libs/libhakmem.so.0"
probe="$abs_top_builddir/tests/mem_probe"
shim="$abs_top_builddir/tests/.libs/thp_shim.so"
for f in "$lib" "$probe" "$shim"; do
    [ -f "$f" ] || { echo "FAIL: $f not built"; exit 1; }
done

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
hak() {
    LD_PRELOAD="$lib" "$@"
}

# 1. Address space: one chunk per block would need 200 GB here.
( ulimit -v 8000000 && hak "$probe" many 65536 100000 ) || fail "100,000 x malloc(64 KiB)"

# 2. Aligned requests are placed inside runs.
hak "$probe" aligned aligned_alloc 8192 64 10000 || fail "aligned_alloc(8192, 64)"
hak "$probe" aligned memalign 4096 100 10000 || fail "memalign(4096, 100)"

# 3. System calls of the steady state: 1,000 rounds against one.
if command -v strace >/dev/null 2>&1 && strace -f -o /dev/null true 2>/dev/null; then
    calls() {
        HAKMEM_PURGE_DELAY_MS=60000 LD_PRELOAD="$lib" \
            strace -f -c -e trace=mmap,munmap,madvise,mremap -o "$tmp" \
            "$probe" churn "$1" 40 100000 >/dev/null || return 1
        awk '$NF ~ /^(mmap|munmap|madvise|mremap)$/ { n += $4 } END { print n + 0 }' "$tmp"
    }
    tmp=$(mktemp "${TMPDIR:-/tmp}/hakmem-memory.XXXXXX") || exit 1
    trap 'rm -f "$tmp"' EXIT
    one=$(calls 1) && many=$(calls 1000)
    if [ -z "${one:-}" ] || [ -z "${many:-}" ]; then
        fail "churn under strace did not run"
    else
        echo "churn: $one memory system calls for 1 round, $many for 1000 rounds"
        [ "$many" -le $((one + 4)) ] || fail "1000 rounds made $((many - one)) more memory system calls than 1"
    fi
else
    echo "SKIP: strace not found or not allowed to trace: system-call count not checked"
fi

# 4. Freed memory goes back after the purge delay: large blocks, then a
#    third each of tiny, pool and large blocks.
HAKMEM_PURGE_DELAY_MS=100 hak "$probe" idle 256 100 || fail "RSS after idle"
HAKMEM_PURGE_DELAY_MS=100 hak "$probe" idle_all 256 100 || fail "RSS after idle, every tier"

# 5. Transparent huge pages forced on every mapping.
if "$probe" thp_active && LD_PRELOAD="$shim" "$probe" thp_active; then
    echo "SKIP: huge pages already on without the shim: THP test not meaningful"
elif LD_PRELOAD="$shim" "$probe" thp_active; then
    glibc=$(LD_PRELOAD="$shim" "$probe" rss 100 65536)
    mine=$(LD_PRELOAD="$shim $lib" "$probe" rss 100 65536)
    echo "thp: 100 x malloc(64 KiB) under the shim: RSS +$glibc KiB glibc, +$mine KiB hakmem"
    [ -n "$glibc" ] && [ -n "$mine" ] && [ "$mine" -le $((2 * glibc)) ] ||
        fail "RSS under MADV_HUGEPAGE: $mine KiB against glibc's $glibc KiB"
else
    echo "SKIP: transparent huge pages unavailable: THP test not run"
fi

# 6. The first block of each tiny class touches about a page, not more.
small=$(hak "$probe" sizes 16 1024 16)
echo "sizes: one block of each size 16 .. 1024: +${small:-?} KiB of anonymous RSS"
[ -n "$small" ] && [ "$small" -le 128 ] || fail "one block of each tiny size: ${small:-?} KiB of RSS (> 128)"
if "$probe" thp_active; then
    echo "SKIP: huge pages on for every mapping: per-thread RSS not checked"
else
    per=$(hak "$probe" thread_sizes 64 16 256 16)
    echo "thread_sizes: 64 threads each holding one block of each size 16 .. 256: +${per:-?} KiB of anonymous RSS per thread"
    [ -n "$per" ] && [ "$per" -le 80 ] || fail "per-thread RSS of small blocks: ${per:-?} KiB (> 80)"
fi

# 7. Purges racing with allocations and frees in other threads.
pages="$abs_top_builddir/tests/test_pages"
if [ -x "$pages" ]; then
    CK_RUN_CASE=threads HAKMEM_PURGE_DELAY_MS=0 "$pages" || fail "test_pages threads with no purge delay"
else
    echo "SKIP: tests/test_pages not built (no Check): purge race not run"
fi

exit $((failures > 0))
