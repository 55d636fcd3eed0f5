/*
 * test_pages.c - the large tier and its page-run layer:
 *
 *  - placement: large blocks up to 4 MiB and aligned requests sit in runs
 *    (usable size rounded to pages, not to chunks); larger blocks in a
 *    mapping rounded to pages;
 *  - coalescing: blocks freed in any order leave room for a block as large
 *    as all of them, with no new mapping;
 *  - realloc: runs shrink in place and grow into the free pages after them
 *    (a buffer doubled up to 4 MiB moves at most once), mappings are
 *    remapped; contents kept either way;
 *  - blocks of all sizes up to 4 MiB share free pages: a freed 4 MiB block's
 *    pages hold two shorter blocks with no new mapping;
 *  - calloc from reused (dirty) runs and mappings reads zero;
 *  - misuse: a second free of a run (also once coalesced) is a "double
 *    free", a pointer inside a run or into a run area's header an "invalid
 *    pointer", each with one `hakmem:` line and abort;
 *  - a wholly free run area whose purge falls due stays mapped, purged, as
 *    the spare that the next large block comes from; so does one cached
 *    mapping of a block above 4 MiB;
 *  - a cached mapping much longer than a request is split: three 6 MiB
 *    blocks come from one freed 24 MiB block's mapping with no new mapping;
 *    freed, the pieces merge again and serve a 24 MiB block at the same
 *    address; a second free of a piece, merged or not, is a "double free";
 *    realloc grows a piece into the cached tail after it, in place; the
 *    cache holds as much as live blocks map when that is more than 64 MiB;
 *  - malloc_trim(0) gives every free run area and cached mapping back;
 *  - pool pages are runs of the same areas: 64 MiB of pool blocks freed and
 *    trimmed leave no area mapped for them, and a large block takes pages
 *    that pool pages gave back, in an area that held them, with no mmap;
 *  - threads: 4 threads allocate, verify, realloc and free large blocks of
 *    random sizes, handing some to each other; 4 threads alternate 4 MiB
 *    of 16 KiB pool blocks and 4 MiB of 128 KiB..1 MiB large blocks, so
 *    that the layer takes back pool pages that emptied while other
 *    threads' classes gain and lose them (every block verified, and after
 *    malloc_trim(0) the two tiers' counts of mapped bytes still add up to
 *    the areas that pool pages keep); forks while other threads
 *    allocate and free, each child using large blocks (tests/memory.sh runs
 *    this case again with HAKMEM_PURGE_DELAY_MS=0: purges racing with
 *    allocation and fork).
 */
#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"
#include "test_rng.h"

#define PAGE (4 * KiB)
/* The documented large tier: above 52 KiB; runs up to 4 MiB, in run areas of
 * 8 MiB aligned to their size. */
#define POOL_MAX (52 * KiB)
#define RUN_MAX (4 * MiB)
#define AREA (8 * MiB)

static size_t large_mapped(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    return (size_t)s.tier[HAK_TIER_LARGE].mapped_bytes;
}

/* After malloc_trim(0) with no large block live, the large tier maps no
 * memory of its own: what it still counts is the run areas that pool pages
 * keep mapped (pool pages are runs of 64 KiB units in the same areas; this
 * process's stdio and Check's buffers hold some), each holding at least
 * one, and no byte of those areas is counted twice. */
static void check_trimmed(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    size_t large = (size_t)s.tier[HAK_TIER_LARGE].mapped_bytes;
    size_t pool = (size_t)s.tier[HAK_TIER_POOL].mapped_bytes;
    REQUIRE((large + pool) % AREA == 0 && (large + pool) / AREA <= pool / (64 * KiB),
            "after malloc_trim(0): large tier %zu KiB, pool %zu KiB mapped: more than the areas "
            "that pool pages keep",
            large / KiB, pool / KiB);
}

static void fill(unsigned char *p, size_t n, unsigned char v)
{
    memset(p, v, n);
}

static void verify(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        REQUIRE(p[i] == v, "byte %zu of %zu is %u, not %u", i, n, p[i], v);
}

START_TEST(placement)
{
    static const size_t sizes[] = {POOL_MAX + 1, 64 * KiB, 100 * 1000, 256 * KiB + 1, RUN_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        size_t u = malloc_usable_size(p);
        ck_assert_uint_ge(u, sizes[i]);
        ck_assert_uint_lt(u, sizes[i] + PAGE);
        free(p);
    }
    /* Above the threshold: a mapping rounded to pages, not to chunks. */
    void *p = malloc(5 * MiB + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_lt(malloc_usable_size(p), 5 * MiB + 2 * PAGE);
    free(p);
    /* Aligned requests: inside runs, usable size about the request. */
    static const size_t aligns[] = {8 * KiB, 64 * KiB, 256 * KiB, MiB, 2 * MiB};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        void *q = aligned_alloc(aligns[i], 64);
        ck_assert_ptr_nonnull(q);
        ck_assert_uint_eq((uintptr_t)q % aligns[i], 0);
        ck_assert_uint_le(malloc_usable_size(q), aligns[i]);
        free(q);
    }
    void *m = memalign(64, 40000);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_lt(malloc_usable_size(m), 40000 + PAGE);
    free(m);
    m = memalign(4096, 100);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq((uintptr_t)m % 4096, 0);
    ck_assert_uint_le(malloc_usable_size(m), 4096);
    free(m);
}
END_TEST

START_TEST(coalescing)
{
    enum { N = 16 };
    static const unsigned order[N] = {3, 9, 0, 15, 6, 12, 1, 7, 14, 4, 10, 2, 13, 5, 11, 8};
    void *b[N];
    /* Settle: one chunk's worth, so what follows has its chunk. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            b[i] = malloc(64 * KiB);
            ck_assert_ptr_nonnull(b[i]);
            fill(b[i], 64 * KiB, (unsigned char)i);
        }
        size_t mapped = large_mapped();
        for (int i = 0; i < N; i++) {
            verify(b[order[i]], 64 * KiB, (unsigned char)order[i]);
            free(b[order[i]]);
        }
        /* The 16 freed runs, merged, hold a 1 MiB block: no new mapping. */
        void *big = malloc(N * 64 * KiB);
        ck_assert_ptr_nonnull(big);
        fill(big, N * 64 * KiB, 0x5a);
        ck_assert_uint_le(large_mapped(), mapped);
        free(big);
    }
}
END_TEST

/* Whether realloc may resize in place: a build for valgrind moves every
 * block (memcheck learns sizes only from allocations and frees). */
static bool in_place(void)
{
    const char *vg = getenv("HAKMEM_VALGRIND_CONFIGURED");
    return !vg || strcmp(vg, "yes") != 0;
}

START_TEST(realloc_runs)
{
    /* Shrinking stays put and keeps the contents. */
    unsigned char *p = malloc(RUN_MAX);
    ck_assert_ptr_nonnull(p);
    fill(p, RUN_MAX, 0x11);
    unsigned char *q = realloc(p, 100 * KiB);
    ck_assert_ptr_nonnull(q);
    if (in_place())
        ck_assert_ptr_eq(q, p);
    verify(q, 100 * KiB, 0x11);
    /* The pages given back are free right after the block: it grows into
     * them in place. */
    p = q;
    q = realloc(q, 900 * KiB);
    ck_assert_ptr_nonnull(q);
    if (in_place())
        ck_assert_ptr_eq(q, p);
    verify(q, 100 * KiB, 0x11);
    fill(q, 900 * KiB, 0x22);
    /* Growing past the run threshold moves it into a mapping, then mremap. */
    for (size_t n = 2 * MiB; n <= 16 * MiB; n *= 2) {
        q = realloc(q, n);
        ck_assert_ptr_nonnull(q);
        verify(q, 900 * KiB, 0x22);
        ck_assert_uint_ge(malloc_usable_size(q), n);
    }
    unsigned char *r = realloc(q, 1 * MiB); /* a big shrink of a mapping */
    ck_assert_ptr_nonnull(r);
    if (in_place())
        ck_assert_ptr_eq(r, q);
    verify(r, 900 * KiB, 0x22);
    free(r);
}
END_TEST

/* A buffer doubled from 64 KiB to the run threshold grows in place: the
 * free pages after it hold it (at most one move, should something sit right
 * after it). */
START_TEST(realloc_doubling)
{
    unsigned char *p = malloc(64 * KiB);
    ck_assert_ptr_nonnull(p);
    fill(p, 64 * KiB, 0x33);
    unsigned moves = 0;
    for (size_t n = 128 * KiB; n <= RUN_MAX; n *= 2) {
        unsigned char *q = realloc(p, n);
        ck_assert_ptr_nonnull(q);
        moves += q != p;
        verify(q, n / 2, 0x33);
        fill(q, n, 0x33);
        p = q;
    }
    if (in_place())
        ck_assert_uint_le(moves, 1);
    free(p);
}
END_TEST

/* Blocks of every size up to the threshold share the free pages: the pages
 * of a freed 4 MiB block hold a 2 MiB and a 1.5 MiB block, with no new
 * mapping (a freed mapping could be reused by one block only). */
START_TEST(runs_share_pages)
{
    unsigned char *p = malloc(RUN_MAX);
    ck_assert_ptr_nonnull(p);
    fill(p, RUN_MAX, 0x44);
    size_t mapped = large_mapped();
    free(p);
    unsigned char *a = malloc(2 * MiB), *b = malloc(3 * MiB / 2);
    ck_assert(a && b);
    fill(a, 2 * MiB, 0x55);
    fill(b, 3 * MiB / 2, 0x66);
    ck_assert_uint_le(large_mapped(), mapped);
    verify(a, 2 * MiB, 0x55);
    free(a);
    free(b);
}
END_TEST

START_TEST(calloc_reused)
{
    static const size_t sizes[] = {100 * KiB, 700 * KiB, 3 * MiB};
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = malloc(sizes[i]);
            ck_assert_ptr_nonnull(p);
            fill(p, sizes[i], 0xff);
            free(p);
            p = calloc(1, sizes[i]);
            ck_assert_ptr_nonnull(p);
            verify(p, sizes[i], 0);
            free(p);
        }
    }
}
END_TEST

/* The purge delay in force: HAKMEM_PURGE_DELAY_MS, else the default. */
static unsigned purge_delay_ms(void)
{
    const char *v = getenv("HAKMEM_PURGE_DELAY_MS");
    return v && *v ? (unsigned)strtoul(v, NULL, 10) : 1000u;
}

/* Whether the large tier caches freed mappings: HAKMEM_LARGE_CACHE_MB=0
 * turns that off. */
static bool large_cache_on(void)
{
    const char *v = getenv("HAKMEM_LARGE_CACHE_MB");
    return !(v && *v && strtoul(v, NULL, 10) == 0);
}

/* A wholly free run area whose purge falls due is purged but stays mapped
 * (the spare): the next large block comes from it with no new mapping, and
 * the pages it does not use are not resident.  So does one cached mapping
 * of a block above 4 MiB (unless the cache is off).  malloc_trim(0) unmaps
 * both. */
START_TEST(spare_area)
{
    unsigned delay = purge_delay_ms();
    if (delay > 5000)
        return; /* set for another test; this one would wait too long */
    /* the mapping of m: twice the run limit, or (no cache) a run's size */
    size_t msize = large_cache_on() ? 2 * RUN_MAX : 64 * KiB;
    unsigned char *p = malloc(MiB), *m = malloc(msize);
    ck_assert(p && m);
    fill(p, MiB, 0x21);
    fill(m, msize, 0x22);
    free(p); /* the only run area: wholly free (with m's run, when no cache) */
    free(m); /* the only mapping, cached */
    struct hak_stats a, b;
    hak_stats_get(&a);
    /* Past the delay (twice it: the tick runs at most every quarter of it),
     * so the next large allocation's purge tick finds the area due. */
    usleep((useconds_t)(2 * delay + 100) * 1000u);
    void *q = malloc(64 * KiB), *r = malloc(msize);
    hak_stats_get(&b);
    ck_assert(q && r);
    REQUIRE(b.mmap_calls == a.mmap_calls && b.munmap_calls == a.munmap_calls,
            "mmap %llu -> %llu, munmap %llu -> %llu: an area or a mapping was unmapped and another mapped",
            (unsigned long long)a.mmap_calls, (unsigned long long)b.mmap_calls,
            (unsigned long long)a.munmap_calls, (unsigned long long)b.munmap_calls);
    /* p's area is still mapped (mincore fails with ENOMEM on an unmapped
     * page) and its pages past q were purged. */
    unsigned char vec = 1;
    unsigned char *probe = (unsigned char *)((uintptr_t)(p + MiB / 2) & ~(uintptr_t)(PAGE - 1));
    REQUIRE(mincore(probe, PAGE, &vec) == 0, "the spare area was unmapped");
    REQUIRE((vec & 1) == 0, "a page of the spare area is still resident after its purge");
    free(q);
    free(r);
    malloc_trim(0);
    check_trimmed();
}
END_TEST

START_TEST(trim_gives_back)
{
    void *b[40];
    for (int i = 0; i < 40; i++) {
        b[i] = malloc(i % 4 == 3 ? 3 * MiB : 100 * KiB + (size_t)i * PAGE);
        ck_assert_ptr_nonnull(b[i]);
        memset(b[i], i, 100 * KiB);
    }
    ck_assert_uint_gt(large_mapped(), 0);
    for (int i = 0; i < 40; i++)
        free(b[i]);
    malloc_trim(0);
    check_trimmed();
}
END_TEST

static uintptr_t area_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(AREA - 1);
}

START_TEST(pool_pages_in_areas)
{
    enum { N = 4096, SIZE = 16 * 1024, KEEP_N = 120, KEEP_SIZE = 40 * 1024 };
    malloc_trim(0);
    struct hak_stats a, b;
    hak_stats_get(&a);
    /* 64 MiB of pool blocks, freed: once trimmed, their areas are gone. */
    unsigned char **p = malloc(N * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (unsigned i = 0; i < N; i++) {
        p[i] = malloc(SIZE);
        ck_assert_ptr_nonnull(p[i]);
        p[i][0] = p[i][SIZE - 1] = (unsigned char)i;
    }
    for (unsigned i = 0; i < N; i++) {
        REQUIRE(p[i][0] == (unsigned char)i && p[i][SIZE - 1] == (unsigned char)i,
                "pool block %u lost its bytes", i);
        free(p[i]);
    }
    malloc_trim(0);
    hak_stats_get(&b);
    uint64_t before = a.tier[HAK_TIER_POOL].mapped_bytes + a.tier[HAK_TIER_LARGE].mapped_bytes;
    uint64_t after = b.tier[HAK_TIER_POOL].mapped_bytes + b.tier[HAK_TIER_LARGE].mapped_bytes;
    REQUIRE(after <= before + AREA,
            "64 MiB of pool blocks freed and trimmed: pool and large tiers map %llu KiB, %llu before",
            (unsigned long long)(after / KiB), (unsigned long long)(before / KiB));
    REQUIRE(b.munmap_calls >= a.munmap_calls + 6, "%llu areas unmapped after 64 MiB of pool blocks",
            (unsigned long long)(b.munmap_calls - a.munmap_calls));

    /* Pool pages of 40 KiB blocks, all freed but one, trimmed: the pages
     * go back to their areas, and a large block takes some with no mmap. */
    uintptr_t areas[KEEP_N];
    for (unsigned i = 0; i < KEEP_N; i++) {
        p[i] = malloc(KEEP_SIZE);
        ck_assert_ptr_nonnull(p[i]);
        memset(p[i], 0x5a, KEEP_SIZE);
        areas[i] = area_of(p[i]);
    }
    for (unsigned i = 1; i < KEEP_N; i++)
        free(p[i]);
    malloc_trim(0);
    hak_stats_get(&a);
    unsigned char *big = malloc(2 * MiB);
    hak_stats_get(&b);
    ck_assert_ptr_nonnull(big);
    fill(big, 2 * MiB, 0x77);
    REQUIRE(b.mmap_calls == a.mmap_calls, "a 2 MiB block mapped memory (%llu mmaps)",
            (unsigned long long)(b.mmap_calls - a.mmap_calls));
    bool shared = false;
    for (unsigned i = 0; i < KEEP_N; i++)
        shared |= area_of(big) == areas[i];
    REQUIRE(shared, "a 2 MiB block at %p: in no area that pool pages used", (void *)big);
    for (size_t i = 0; i < KEEP_SIZE; i++)
        REQUIRE(p[0][i] == 0x5a, "the pool block kept lost byte %zu", i);
    free(big);
    free(p[0]);
    free(p);
}
END_TEST

/* Runs `fn` in a child with stderr captured; checks it aborted after one
 * line "hakmem: free(): WHAT 0x..." naming p. */
static void expect_abort(void (*fn)(void *), void *p, const char *what)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], STDERR_FILENO);
        close(fd[0]);
        fn(p);
        _exit(0);
    }
    close(fd[1]);
    char buf[512];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    char want[128];
    snprintf(want, sizeof want, "hakmem: free(): %s %p\n", what, p);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "no abort for %s (stderr: '%s')", what, buf);
    ck_assert_msg(strcmp(buf, want) == 0, "stderr '%s', expected '%s'", buf, want);
}

static void free_it(void *p)
{
    free(p);
}

START_TEST(misuse)
{
    /* a second free, with and without the neighbours merged */
    void *a = malloc(100 * KiB), *b = malloc(100 * KiB), *c = malloc(100 * KiB);
    ck_assert(a && b && c);
    free(b);
    expect_abort(free_it, b, "double free");
    free(a);
    free(c);
    expect_abort(free_it, b, "double free");
    expect_abort(free_it, a, "double free");
    /* inside a live run, and an area's header */
    void *p = malloc(200 * KiB);
    ck_assert_ptr_nonnull(p);
    expect_abort(free_it, (char *)p + PAGE, "invalid pointer");
    expect_abort(free_it, (char *)p + 16, "invalid pointer");
    expect_abort(free_it, (void *)((uintptr_t)p & ~(uintptr_t)(AREA - 1)), "invalid pointer");
    free(p);
}
END_TEST

/* Split and merge (see the top).  Cached mappings must stay cached while it
 * runs: with a purge delay under an hour it runs again in a fresh process
 * (the delay is read at start-up) with an hour's delay, and passes if that
 * one does.  Only the first and last bytes of each page are checked, so a
 * sanitizer build stays quick. */
static const char *g_self;
#define SPLIT_DELAY "3600000"

static void fill_pages(unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += PAGE) {
        p[i] = v;
        p[i + PAGE - 1] = v;
    }
}

static void verify_pages(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += PAGE)
        REQUIRE(p[i] == v && p[i + PAGE - 1] == v, "page at %zu of %zu lost its bytes", i, n);
}

START_TEST(split_merge)
{
    if (!large_cache_on())
        return;
    if (purge_delay_ms() < 3600000u) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            setenv("HAKMEM_PURGE_DELAY_MS", SPLIT_DELAY, 1);
            setenv("CK_RUN_CASE", "split", 1);
            execl(g_self, g_self, (char *)NULL);
            _exit(127);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the run with HAKMEM_PURGE_DELAY_MS=" SPLIT_DELAY " failed (status %d)", status);
        return;
    }
    malloc_trim(0); /* nothing cached but what this test frees */
    unsigned char *big = malloc(24 * MiB);
    ck_assert_ptr_nonnull(big);
    fill_pages(big, 24 * MiB, 0x31);
    free(big);
    struct hak_stats a, b;
    hak_stats_get(&a);
    unsigned char *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = malloc(6 * MiB);
        ck_assert_ptr_nonnull(p[i]);
        fill_pages(p[i], 6 * MiB, (unsigned char)(0x40 + i));
    }
    hak_stats_get(&b);
    REQUIRE(b.mmap_calls == a.mmap_calls && b.munmap_calls == a.munmap_calls,
            "mmap %llu -> %llu, munmap %llu -> %llu: the freed mapping was not split",
            (unsigned long long)a.mmap_calls, (unsigned long long)b.mmap_calls,
            (unsigned long long)a.munmap_calls, (unsigned long long)b.munmap_calls);
    for (int i = 0; i < 3; i++) {
        verify_pages(p[i], 6 * MiB, (unsigned char)(0x40 + i));
        REQUIRE(p[i] >= big && p[i] + 6 * MiB <= big + 24 * MiB + PAGE,
                "block %d at %p is not in the freed mapping at %p", i, (void *)p[i], (void *)big);
    }
    free(p[1]);
    expect_abort(free_it, p[1], "double free");
    free(p[0]); /* merges with p[1]'s piece, above it */
    expect_abort(free_it, p[1], "double free");
    expect_abort(free_it, p[0], "double free");
    free(p[2]);
    hak_stats_get(&a);
    unsigned char *q = malloc(24 * MiB);
    hak_stats_get(&b);
    ck_assert_ptr_nonnull(q);
    REQUIRE(q == big, "a 24 MiB block at %p, not at %p: the pieces were not merged", (void *)q,
            (void *)big);
    REQUIRE(b.mmap_calls == a.mmap_calls && b.munmap_calls == a.munmap_calls,
            "a new mapping for the 24 MiB block");
    fill_pages(q, 24 * MiB, 0x55);
    verify_pages(q, 24 * MiB, 0x55);
    free(q);
    /* realloc grows a piece into the cached tail after it, in place */
    unsigned char *r = malloc(6 * MiB);
    ck_assert_ptr_eq(r, big);
    fill_pages(r, 6 * MiB, 0x66);
    hak_stats_get(&a);
    unsigned char *r2 = realloc(r, 14 * MiB);
    hak_stats_get(&b);
    REQUIRE(r2 == r, "realloc moved the block from %p to %p: the cached tail was not taken",
            (void *)r, (void *)r2);
    REQUIRE(b.mmap_calls == a.mmap_calls, "a new mapping for realloc");
    REQUIRE(malloc_usable_size(r2) >= 14 * MiB, "usable size %zu", malloc_usable_size(r2));
    verify_pages(r2, 6 * MiB, 0x66);
    fill_pages(r2, 14 * MiB, 0x77);
    verify_pages(r2, 14 * MiB, 0x77);
    free(r2);
    hak_stats_get(&a);
    q = malloc(24 * MiB); /* the rest of the tail merged back with it */
    hak_stats_get(&b);
    REQUIRE(q == big && b.mmap_calls == a.mmap_calls, "the mapping did not merge again (%p)",
            (void *)q);
    free(q);
    /* The cache holds as much as the live blocks map when that is more
     * than HAKMEM_LARGE_CACHE_MB (64 MiB): two of four 40 MiB blocks freed
     * stay cached and come back with no system call.  (Not touched: their
     * pages cost nothing.) */
    malloc_trim(0);
    void *l[4];
    for (int i = 0; i < 4; i++) {
        l[i] = malloc(40 * MiB);
        ck_assert_ptr_nonnull(l[i]);
    }
    hak_stats_get(&a);
    free(l[0]);
    free(l[1]);
    l[0] = malloc(40 * MiB);
    l[1] = malloc(40 * MiB);
    hak_stats_get(&b);
    ck_assert(l[0] && l[1]);
    REQUIRE(b.mmap_calls == a.mmap_calls && b.munmap_calls == a.munmap_calls,
            "mmap %llu -> %llu, munmap %llu -> %llu: 80 MiB freed while 80 MiB stayed live "
            "were not all cached",
            (unsigned long long)a.mmap_calls, (unsigned long long)b.mmap_calls,
            (unsigned long long)a.munmap_calls, (unsigned long long)b.munmap_calls);
    for (int i = 0; i < 4; i++)
        free(l[i]);
}
END_TEST

/* Threads: each allocates large blocks of random sizes, verifies, reallocs
 * and frees them, and frees the blocks the previous thread left it. */
enum { THREADS = 4, SLOTS = 24, OPS = 3000 };
struct box {
    unsigned char *p;
    size_t n;
    unsigned char v;
};
static struct box handoff[THREADS][SLOTS];
static pthread_barrier_t barrier;

static size_t pick(uint64_t *rng)
{
    uint64_t r = xs(rng);
    return r % 10 == 0 ? RUN_MAX + r % (3 * MiB) : POOL_MAX + 1 + r % RUN_MAX;
}

static void check_box(const struct box *b)
{
    /* sampled: first, last and every page's first byte */
    for (size_t i = 0; i < b->n; i += PAGE)
        REQUIRE(b->p[i] == b->v, "block changed");
    REQUIRE(b->p[b->n - 1] == b->v, "block tail changed");
}

static void *worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 1);
    struct box *mine = handoff[id];
    for (int op = 0; op < OPS; op++) {
        struct box *b = &mine[xs(&rng) % SLOTS];
        if (b->p) {
            check_box(b);
            if (xs(&rng) % 4 == 0) {
                size_t n = pick(&rng);
                unsigned char *q = realloc(b->p, n);
                REQUIRE(q, "realloc failed");
                size_t keep = n < b->n ? n : b->n;
                for (size_t i = 0; i < keep; i += PAGE)
                    REQUIRE(q[i] == b->v, "realloc lost contents");
                b->p = q;
                b->n = n;
                memset(q, b->v, n);
                continue;
            }
            free(b->p);
        }
        b->n = pick(&rng);
        b->v = (unsigned char)xs(&rng);
        b->p = malloc(b->n);
        REQUIRE(b->p, "malloc failed");
        memset(b->p, b->v, b->n);
    }
    pthread_barrier_wait(&barrier);
    /* Free what the next thread kept: cross-thread frees. */
    struct box *theirs = handoff[(id + 1) % THREADS];
    for (int i = 0; i < SLOTS; i++) {
        if (theirs[i].p) {
            check_box(&theirs[i]);
            free(theirs[i].p);
        }
    }
    return NULL;
}

START_TEST(threads)
{
    pthread_t t[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (unsigned i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    malloc_trim(0);
    check_trimmed();
}
END_TEST

/* Threads alternating pool and large phases: each frees its pool blocks
 * (pages empty beyond what the class keeps) and then asks the layer for
 * large blocks, which takes those pages back while other threads' pool
 * classes take and give pages: the give-back races with them (TSan and
 * ASan run this case). */
#define PHASE_POOL_SIZE (16 * KiB)
#define PHASE_BYTES (4 * MiB)
#define PHASE_ROUNDS 6

static void *phase_worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 1);
    static unsigned char *blocks[THREADS][PHASE_BYTES / PHASE_POOL_SIZE];
    unsigned char **p = blocks[id];
    for (unsigned r = 0; r < PHASE_ROUNDS; r++) {
        unsigned char v = (unsigned char)(id * 16 + r);
        size_t n = PHASE_BYTES / PHASE_POOL_SIZE;
        for (size_t i = 0; i < n; i++) {
            p[i] = malloc(PHASE_POOL_SIZE);
            REQUIRE(p[i], "malloc(%zu) failed", PHASE_POOL_SIZE);
            p[i][0] = p[i][PHASE_POOL_SIZE - 1] = v;
        }
        for (size_t i = 0; i < n; i++) {
            REQUIRE(p[i][0] == v && p[i][PHASE_POOL_SIZE - 1] == v, "pool block %zu changed", i);
            free(p[i]);
        }
        size_t k = 0;
        for (size_t bytes = 0; bytes < PHASE_BYTES; k++) {
            size_t len = 128 * KiB + (xs(&rng) % (896 * KiB));
            p[k] = malloc(len);
            REQUIRE(p[k], "malloc(%zu) failed", len);
            fill(p[k], len, v);
            bytes += len;
            p[k + 1] = (unsigned char *)(uintptr_t)len; /* its length, beside it */
            k++;
        }
        for (size_t i = 0; i < k; i += 2) {
            size_t len = (size_t)(uintptr_t)p[i + 1];
            REQUIRE(p[i][0] == v && p[i][len / 2] == v && p[i][len - 1] == v,
                    "large block of %zu B changed", len);
            free(p[i]);
        }
    }
    return NULL;
}

START_TEST(pool_large_phases_threads)
{
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, phase_worker, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    malloc_trim(0);
    check_trimmed();
}
END_TEST

/* Forks while other threads allocate, free and (with HAKMEM_PURGE_DELAY_MS=0
 * in tests/memory.sh) purge large blocks: every child can allocate, use and
 * free large blocks and trim. */
static atomic_bool stop_churn;

static void *churn(void *arg)
{
    uint64_t rng = 0x2545f4914f6cdd1dull + (uintptr_t)arg;
    while (!atomic_load_explicit(&stop_churn, memory_order_relaxed)) {
        size_t n = pick(&rng);
        unsigned char *p = malloc(n);
        REQUIRE(p, "malloc failed");
        memset(p, 0x33, n);
        free(p);
    }
    return NULL;
}

START_TEST(fork_while_purging)
{
    pthread_t t[2];
    atomic_store(&stop_churn, false);
    for (unsigned i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)i), 0);
    for (int k = 0; k < 50; k++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            static const size_t sizes[] = {200 * KiB, RUN_MAX, 3 * MiB};
            for (int i = 0; i < 30; i++) {
                size_t n = sizes[i % 3];
                unsigned char *p = malloc(n);
                if (!p)
                    _exit(2);
                memset(p, i, n);
                for (size_t o = 0; o < n; o += PAGE)
                    if (p[o] != (unsigned char)i)
                        _exit(3);
                free(p);
            }
            malloc_trim(0);
            _exit(0);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %d", k,
                      status);
    }
    atomic_store(&stop_churn, true);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
}
END_TEST

int main(int argc, char **argv)
{
    (void)argc;
    g_self = argv[0];
    Suite *s = suite_create("pages");
    TCase *tc = tcase_create("pages");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, placement);
    tcase_add_test(tc, coalescing);
    tcase_add_test(tc, realloc_runs);
    tcase_add_test(tc, realloc_doubling);
    tcase_add_test(tc, runs_share_pages);
    tcase_add_test(tc, calloc_reused);
    tcase_add_test(tc, spare_area);
    tcase_add_test(tc, trim_gives_back);
    tcase_add_test(tc, pool_pages_in_areas);
    tcase_add_test(tc, misuse);
    suite_add_tcase(s, tc);
    /* Its own case: it runs itself again, alone, with a long purge delay. */
    TCase *tsplit = tcase_create("split");
    tcase_set_timeout(tsplit, 120);
    tcase_add_test(tsplit, split_merge);
    suite_add_tcase(s, tsplit);
    /* Its own case: tests/memory.sh runs it alone with a purge delay of 0. */
    TCase *tt = tcase_create("threads");
    tcase_set_timeout(tt, 300); /* a hang detector: TSan builds are slow */
    tcase_add_test(tt, threads);
    tcase_add_test(tt, pool_large_phases_threads);
    tcase_add_test(tt, fork_while_purging);
    suite_add_tcase(s, tt);
    return test_run_suite(s);
}
