#!/bin/sh
# tests/consumers.sh - consumers of the *installed* hakmem (run by `make check`,
# see tests/consumers.mk).
#
# 1. `make install DESTDIR=<tmp>/root` of this build tree;
# 2. shared: build tests/consumer-api.c with only
#    `pkg-config --cflags --libs hakmem` (PKG_CONFIG_LIBDIR and
#    PKG_CONFIG_SYSROOT_DIR point into the DESTDIR), run it with
#    LD_LIBRARY_PATH into the DESTDIR; it checks that its malloc() is hakmem's
#    (hak_stats_get, blocks crossing between free and hak_free) and the script
#    checks that the library it loaded is the installed one;
# 3. static: the same with `-static` and `pkg-config --static --libs hakmem`,
#    so libhakmem.a is linked in (skipped if the toolchain cannot link static
#    programs at all, e.g. without libc.a);
# 4. preload: tests/consumer-plain.c, built without hakmem, run with only
#    LD_PRELOAD=<DESTDIR>/.../libhakmem.so.0 and HAKMEM_STATS=1: same output
#    as without hakmem, and the stats lines at exit count allocations in every
#    tier.
# Exit status: 0 pass, 1 fail, 77 skip (nothing could run), 99 hard error.

# shellcheck disable=SC1091,SC2086,SC2153,SC2154
set -u
LC_ALL=C
export LC_ALL

me=consumers.sh
if [ ! -f tests/consumer.env ]; then
    echo "$me: tests/consumer.env missing (run me through 'make check')" >&2
    exit 99
fi
. ./tests/consumer.env
srcdir=${srcdir:-$abs_top_srcdir}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}

if ! command -v "${PKG_CONFIG%% *}" >/dev/null 2>&1; then
    echo "$me: SKIP: no pkg-config" >&2
    exit 77
fi

# The temporary tree lives in the build tree (always writable, never noexec)
# and is removed on exit.
tmp=$(mktemp -d "$abs_top_builddir/tests/consumers.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
root=$tmp/root

# Never let the caller's environment change what we measure.
unset HAKMEM_STATS HAKMEM_POOL_TRACE HAKMEM_TINY_P0_BATCH_REFILL HAKMEM_LARGE_CACHE_MB
unset LD_PRELOAD PKG_CONFIG_PATH
# The nested make is not a sub-make of the running `make check` (no jobserver).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS

if command -v timeout >/dev/null 2>&1; then run="timeout 120"; else run=; fi

echo "$me: make install DESTDIR=$root"
if ! $MAKE -C "$abs_top_builddir" install DESTDIR="$root" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log" >&2
    echo "$me: ERROR: make install DESTDIR=... failed" >&2
    exit 99
fi

instlib=$root$libdir
pcdir=$instlib/pkgconfig
if [ ! -f "$pcdir/hakmem.pc" ]; then
    echo "$me: ERROR: $pcdir/hakmem.pc was not installed" >&2
    find "$root" -print >&2
    exit 99
fi

# pkg-config sees only the installed hakmem.pc, and prefixes every -I/-L
# path with the DESTDIR; system directories are not filtered out, so that
# -I/usr/include of a prefix=/usr build still becomes <DESTDIR>/usr/include.
pc() {
    PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_PATH='' PKG_CONFIG_SYSROOT_DIR=$root \
    PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 \
        $PKG_CONFIG "$@"
}

passed=0 failed=0 skipped=0
pass() { echo "PASS: $me: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $me: $1"; failed=$((failed + 1)); }
skip() { echo "SKIP: $me: $1"; skipped=$((skipped + 1)); }
show() { echo "--- $1"; cat "$1"; }

modversion=$(pc --modversion hakmem) || { echo "$me: ERROR: pkg-config cannot read hakmem.pc" >&2; exit 99; }
if [ "$modversion" = "$VERSION" ]; then
    pass "pkg-config --modversion hakmem = $VERSION"
else
    fail "pkg-config --modversion hakmem = '$modversion', expected '$VERSION'"
fi
cflags=$(pc --cflags hakmem)
libs=$(pc --libs hakmem)
slibs=$(pc --static --libs hakmem)
echo "$me: --cflags: $cflags"
echo "$me: --libs: $libs"
echo "$me: --static --libs: $slibs"
case $cflags in
    *"-I$root"*) ;;
    *) fail "pkg-config --cflags does not point into the DESTDIR: $cflags" ;;
esac

# --- shared -----------------------------------------------------------------
if [ -f "$instlib/libhakmem.so.0" ] && [ -e "$instlib/libhakmem.so" ]; then
    if $CC $CPPFLAGS $CFLAGS -DCONSUMER_SHARED -o "$tmp/api-shared$EXEEXT" \
            "$srcdir/tests/consumer-api.c" $cflags $LDFLAGS $libs >"$tmp/cc-shared.log" 2>&1; then
        if LD_LIBRARY_PATH="$instlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
                $run "$tmp/api-shared$EXEEXT" "$VERSION" >"$tmp/shared.out" 2>"$tmp/shared.err"; then
            if grep -q "^library: $instlib/libhakmem\.so" "$tmp/shared.out"; then
                pass "shared: built with pkg-config --cflags --libs hakmem, malloc served by hakmem"
            else
                fail "shared: hak_version() did not come from $instlib"
            fi
        else
            fail "shared: consumer program failed"
        fi
        show "$tmp/shared.out"; show "$tmp/shared.err"
    else
        show "$tmp/cc-shared.log"
        fail "shared: cannot build against the installed hakmem"
    fi
else
    skip "shared: no shared library installed (--disable-shared?)"
fi

# --- static -----------------------------------------------------------------
printf 'int main(void) { return 0; }\n' >"$tmp/probe.c"
if [ ! -f "$instlib/libhakmem.a" ]; then
    skip "static: no libhakmem.a installed (--disable-static?)"
elif ! $CC $CFLAGS -static -o "$tmp/probe$EXEEXT" "$tmp/probe.c" $LDFLAGS >/dev/null 2>&1; then
    skip "static: this toolchain cannot link static programs (no libc.a?)"
else
    if $CC $CPPFLAGS $CFLAGS -static -o "$tmp/api-static$EXEEXT" \
            "$srcdir/tests/consumer-api.c" $cflags $LDFLAGS $slibs >"$tmp/cc-static.log" 2>&1; then
        if (unset LD_LIBRARY_PATH; $run "$tmp/api-static$EXEEXT" "$VERSION") \
                >"$tmp/static.out" 2>"$tmp/static.err"; then
            pass "static: built with pkg-config --static --libs hakmem, malloc served by hakmem"
        else
            fail "static: consumer program failed"
        fi
        show "$tmp/static.out"; show "$tmp/static.err"
    else
        show "$tmp/cc-static.log"
        fail "static: cannot link statically against the installed libhakmem.a"
    fi
fi

# --- LD_PRELOAD -------------------------------------------------------------
# tier_allocs FILE TIER: N of the "hakmem: TIER: allocs=N ..." line.
tier_allocs() {
    sed -n "s/^hakmem: $2: allocs=\\([0-9][0-9]*\\).*/\\1/p" "$1" | tail -n 1
}
if [ ! -f "$instlib/libhakmem.so.0" ]; then
    skip "preload: no libhakmem.so.0 installed"
elif ! $CC $CPPFLAGS $CFLAGS -o "$tmp/plain$EXEEXT" "$srcdir/tests/consumer-plain.c" \
        $LDFLAGS >"$tmp/cc-plain.log" 2>&1; then
    show "$tmp/cc-plain.log"
    fail "preload: cannot build the plain program"
elif ! $run "$tmp/plain$EXEEXT" >"$tmp/plain.expected" 2>&1; then
    show "$tmp/plain.expected"
    fail "preload: the plain program fails even without hakmem"
else
    # Only the program is preloaded, not timeout(1) in front of it.
    if HAKMEM_STATS=1 $run env LD_PRELOAD="$instlib/libhakmem.so.0" "$tmp/plain$EXEEXT" \
            >"$tmp/plain.out" 2>"$tmp/plain.err"; then
        ok=yes
        if ! cmp -s "$tmp/plain.expected" "$tmp/plain.out"; then
            echo "$me: output differs under LD_PRELOAD:"
            diff "$tmp/plain.expected" "$tmp/plain.out"
            ok=no
        fi
        if [ "$(grep -c '^hakmem: tiny: ' "$tmp/plain.err")" -ne 1 ]; then
            echo "$me: expected exactly one set of HAKMEM_STATS=1 lines"
            ok=no
        fi
        for tier in tiny pool large; do
            n=$(tier_allocs "$tmp/plain.err" $tier)
            if [ -z "$n" ] || [ "$n" -eq 0 ]; then
                echo "$me: no '$tier' allocations in the HAKMEM_STATS=1 output"
                ok=no
            fi
        done
        if [ $ok = yes ]; then
            pass "preload: LD_PRELOAD=libhakmem.so.0 HAKMEM_STATS=1 counts the program's allocations"
        else
            fail "preload: allocations of an LD_PRELOADed program not served by hakmem"
        fi
    else
        fail "preload: the plain program fails under LD_PRELOAD"
    fi
    show "$tmp/plain.out"; show "$tmp/plain.err"
fi

echo "$me: $passed passed, $failed failed, $skipped skipped"
if [ $failed -ne 0 ]; then exit 1; fi
if [ $passed -eq 0 ]; then exit 77; fi
exit 0
