/*
 * test_contract.c - the C API contract of hakmem (DESIGN.md, "The C API
 * contract"), checked through the overridden malloc family and the hak_* API:
 *
 *  - alignment, usable size and writability of every result for sizes from 0
 *    to 64 MiB around every tier boundary (each boundary -16, -1, 0, +1, +16);
 *  - malloc(0) unique and freeable, free(NULL), realloc(NULL, n);
 *  - NULL + ENOMEM for impossible sizes in every allocating function
 *    (posix_memalign returns ENOMEM and leaves *memptr alone);
 *  - calloc overflow and zeroing, also of reused memory;
 *  - realloc across tiers (also of memalign'd blocks) keeps contents; a
 *    failed realloc keeps the block;
 *  - posix_memalign EINVAL; aligned_alloc/memalign/valloc/pvalloc alignments
 *    up to 1 MiB with sizes in every tier;
 *  - many live blocks never overlap;
 *  - glibc's __libc_* names are hakmem's too;
 *  - mallinfo2(), malloc_trim(0), hak_trim(), hak_stats_get() per tier;
 *  - C23's free_sized and free_aligned_sized (and the hak_ ones) free in
 *    every tier, also blocks from calloc and realloc.
 */
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"

#define REQUIRE_PTR(p) REQUIRE((p) != NULL, "%s returned NULL (line %d)", #p, __LINE__)
#define REQUIRE_TRUE(c) REQUIRE(c, "assertion %s failed (line %d)", #c, __LINE__)

/* Tier boundaries as documented (tiny <= 1024 B < pool <= 52 KiB < large). */
#define TINY_MAX ((size_t)1024)
#define POOL_MAX ((size_t)53248)
#define CHUNK (2 * MiB)

/* Blocks up to this size are written and verified byte by byte; larger ones
 * are memset whole (so every byte is written) and then carry the pattern at
 * every 61st byte. */
#define FULL_CHECK_LIMIT (256 * KiB)
#define SPARSE_STEP 61

/* Keep the compiler from reasoning about sizes and results. */
static volatile size_t v_size_max = SIZE_MAX;
static volatile size_t v_ptrdiff_max_plus1 = (size_t)PTRDIFF_MAX + 1;
static volatile size_t v_ptrdiff_max = (size_t)PTRDIFF_MAX;

/* ---------------------------------------------------------------- helpers */

/* Alignment every result must have: 16 (alignof(max_align_t)); the contract
 * allows 8 for requests of 8 bytes or less. */
static size_t min_align(size_t n)
{
    return n <= 8 ? 8 : alignof(max_align_t);
}

static int aligned_to(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

static uint8_t pat(size_t i, unsigned seed)
{
    return (uint8_t)((i * 7u + seed * 13u) ^ (i >> 9) ^ (seed >> 3));
}

/* The first FULL_CHECK_LIMIT bytes carry the pattern in every byte; beyond,
 * the block is memset (every byte written) and every SPARSE_STEP-th byte
 * carries the pattern.  Depends only on the offset, so any prefix of a
 * filled block verifies (what realloc must keep). */
static void fill(void *p, size_t n, unsigned seed)
{
    uint8_t *b = p;
    size_t full = n < FULL_CHECK_LIMIT ? n : FULL_CHECK_LIMIT;
    for (size_t i = 0; i < full; i++)
        b[i] = pat(i, seed);
    if (n > full) {
        memset(b + full, (int)(seed & 0xff), n - full);
        for (size_t i = full; i < n; i += SPARSE_STEP)
            b[i] = pat(i, seed);
    }
}

/* Returns the first bad offset or (size_t)-1. */
static size_t verify(const void *p, size_t n, unsigned seed)
{
    const uint8_t *b = p;
    size_t full = n < FULL_CHECK_LIMIT ? n : FULL_CHECK_LIMIT;
    for (size_t i = 0; i < full; i++)
        if (b[i] != pat(i, seed))
            return i;
    for (size_t i = full; i < n; i += SPARSE_STEP)
        if (b[i] != pat(i, seed))
            return i;
    return (size_t)-1;
}

static size_t first_nonzero(const void *p, size_t n)
{
    const uint8_t *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w)
            break;
    }
    for (; i < n; i++)
        if (b[i])
            return i;
    return (size_t)-1;
}

/* Checks one fresh result: non-NULL, aligned, usable >= n, every usable byte
 * writable and reading back (also past n up to the usable size). */
static void check_block(void *p, size_t n, size_t align, const char *what)
{
    REQUIRE(p != NULL, "%s(%zu) returned NULL", what, n);
    if (align < min_align(n))
        align = min_align(n);
    REQUIRE(aligned_to(p, align), "%s(%zu) = %p not aligned to %zu", what, n, p, align);
    size_t us = malloc_usable_size(p);
    REQUIRE(us >= n, "%s(%zu): malloc_usable_size %zu < request", what, n, us);
    REQUIRE(hak_malloc_usable_size(p) == us, "%s(%zu): hak_malloc_usable_size %zu != %zu",
                  what, n, hak_malloc_usable_size(p), us);
    unsigned seed = (unsigned)(n * 31 + 7);
    fill(p, us, seed);
    size_t bad = verify(p, us, seed);
    REQUIRE(bad == (size_t)-1, "%s(%zu): byte %zu of %zu usable did not read back", what, n,
                  bad, us);
}

/* Sizes around every tier boundary, 0 .. 64 MiB. */
static size_t *boundary_sizes(size_t *count)
{
    static const size_t bases[] = {
        0,          8,          16,        32,         64,      128,         256,
        512,        TINY_MAX,   2048,      4096,       8192,    16384,       32768,
        POOL_MAX,   64 * KiB,   128 * KiB, 256 * KiB,  512 * KiB, MiB,       CHUNK,
        CHUNK * 2,
    };
    /* a few big ones; each is faulted in by every function tested */
    static const size_t big[] = {8 * MiB + 1, 32 * MiB - 16, 64 * MiB};
    static const long deltas[] = {-16, -1, 0, 1, 16};
    static size_t out[sizeof bases / sizeof bases[0] * 5 + sizeof big / sizeof big[0]];
    size_t k = 0;
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++)
        for (size_t j = 0; j < 5; j++) {
            long long s = (long long)bases[i] + deltas[j];
            if (s < 0 || (size_t)s > 64 * MiB)
                continue;
            int dup = 0;
            for (size_t m = 0; m < k; m++)
                dup |= out[m] == (size_t)s;
            if (!dup)
                out[k++] = (size_t)s;
        }
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        out[k++] = big[i];
    *count = k;
    return out;
}

/* ------------------------------------------------------ alignment / sizes */

START_TEST(test_sizes_malloc)
{
    size_t cnt, *sz = boundary_sizes(&cnt);
    for (size_t i = 0; i < cnt; i++) {
        void *p = malloc(sz[i]);
        check_block(p, sz[i], 0, "malloc");
        free(p);
    }
}
END_TEST

START_TEST(test_sizes_calloc)
{
    size_t cnt, *sz = boundary_sizes(&cnt);
    for (size_t i = 0; i < cnt; i++) {
        size_t n = sz[i];
        /* both calloc(1, n) and calloc(n / 16, 16)-style splits */
        void *p = calloc(1, n);
        REQUIRE(p != NULL, "calloc(1, %zu) returned NULL", n);
        size_t nz = first_nonzero(p, n);
        REQUIRE(nz == (size_t)-1, "calloc(1, %zu): byte %zu not zero", n, nz);
        check_block(p, n, 0, "calloc");
        free(p);
        if (n >= 16 && n % 16 == 0) {
            p = calloc(n / 16, 16);
            REQUIRE(p != NULL, "calloc(%zu, 16) returned NULL", n / 16);
            nz = first_nonzero(p, n);
            REQUIRE(nz == (size_t)-1, "calloc(%zu, 16): byte %zu not zero", n / 16, nz);
            check_block(p, n, 0, "calloc");
            free(p);
        }
    }
}
END_TEST

START_TEST(test_sizes_realloc)
{
    size_t cnt, *sz = boundary_sizes(&cnt);
    for (size_t i = 0; i < cnt; i++) {
        size_t n = sz[i];
        /* realloc(NULL, n) is malloc(n) */
        void *p = realloc(NULL, n);
        check_block(p, n, 0, "realloc(NULL)");
        free(p);
        if (n == 0)
            continue; /* realloc(p, 0) is implementation-defined */
        /* grow from a tiny block, keeping its contents */
        p = malloc(24);
        REQUIRE_PTR(p);
        fill(p, 24, 99);
        void *q = realloc(p, n);
        REQUIRE(q != NULL, "realloc(24 -> %zu) returned NULL", n);
        size_t keep = n < 24 ? n : 24;
        REQUIRE(verify(q, keep, 99) == (size_t)-1, "realloc(24 -> %zu) lost contents", n);
        check_block(q, n, 0, "realloc");
        free(q);
    }
}
END_TEST

START_TEST(test_sizes_hak_api)
{
    size_t cnt, *sz = boundary_sizes(&cnt);
    for (size_t i = 0; i < cnt; i++) {
        size_t n = sz[i];
        void *p = hak_malloc(n);
        check_block(p, n, 0, "hak_malloc");
        hak_free(p);

        p = hak_calloc(1, n);
        REQUIRE(p != NULL, "hak_calloc(1, %zu) returned NULL", n);
        REQUIRE(first_nonzero(p, n) == (size_t)-1, "hak_calloc(1, %zu) not zeroed", n);
        check_block(p, n, 0, "hak_calloc");
        free(p); /* the two APIs share one heap */

        void *q;
        if (n) { /* realloc(p, 0) is implementation-defined */
            p = malloc(40);
            REQUIRE_PTR(p);
            fill(p, 40, 5);
            q = hak_realloc(p, n);
            REQUIRE(q != NULL, "hak_realloc(40 -> %zu) returned NULL", n);
            REQUIRE_TRUE(verify(q, n < 40 ? n : 40, 5) == (size_t)-1);
            check_block(q, n, 0, "hak_realloc");
            hak_free(q);
        }

        q = hak_realloc(NULL, n);
        check_block(q, n, 0, "hak_realloc(NULL)");
        hak_free(q);

        if (n) {
            q = hak_reallocarray(NULL, 1, n);
            check_block(q, n, 0, "hak_reallocarray");
            hak_free(q);
        }
    }
}
END_TEST

/* ----------------------------------------------------- malloc(0), NULL */

START_TEST(test_malloc_zero_unique)
{
    enum { N = 1000 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = (i % 3 == 0) ? malloc(0) : (i % 3 == 1) ? hak_malloc(0) : realloc(NULL, 0);
        REQUIRE(p[i] != NULL, "malloc(0) #%d returned NULL", i);
        REQUIRE_TRUE(aligned_to(p[i], 8));
    }
    /* all distinct */
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            REQUIRE(p[i] != p[j], "malloc(0) returned %p twice", p[i]);
    for (int i = 0; i < N; i++)
        (i & 1) ? free(p[i]) : hak_free(p[i]);
    /* calloc with a zero factor is a zero-size allocation too */
    void *a = calloc(0, 16), *b = calloc(16, 0), *c = hak_calloc(0, 0);
    REQUIRE_TRUE(a && b && c && a != b && b != c && a != c);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(test_free_null)
{
    free(NULL);
    hak_free(NULL);
    errno = 1234;
    free(NULL);
    void *p = malloc(10);
    REQUIRE_PTR(p);
    free(p);
}
END_TEST

/* ----------------------------------------------------------- ENOMEM */

#define EXPECT_ENOMEM(expr)                                                              \
    do {                                                                                 \
        errno = 0;                                                                       \
        void *r_ = (expr);                                                               \
        int e_ = errno;                                                                  \
        REQUIRE(r_ == NULL, "%s returned %p, expected NULL", #expr, r_);           \
        REQUIRE(e_ == ENOMEM, "%s set errno %d (%s), expected ENOMEM", #expr, e_,  \
                      strerror(e_));                                                     \
    } while (0)

static size_t huge_sizes[3];
static void init_huge(void)
{
    huge_sizes[0] = v_size_max;
    huge_sizes[1] = v_ptrdiff_max_plus1;
    huge_sizes[2] = v_ptrdiff_max;
}

START_TEST(test_enomem_malloc_family)
{
    init_huge();
    for (int i = 0; i < 3; i++) {
        size_t n = huge_sizes[i];
        EXPECT_ENOMEM(malloc(n));
        EXPECT_ENOMEM(hak_malloc(n));
        EXPECT_ENOMEM(calloc(1, n));
        EXPECT_ENOMEM(calloc(n, 1));
        EXPECT_ENOMEM(hak_calloc(1, n));
        EXPECT_ENOMEM(realloc(NULL, n));
        EXPECT_ENOMEM(hak_realloc(NULL, n));
        EXPECT_ENOMEM(reallocarray(NULL, 1, n));
        EXPECT_ENOMEM(hak_reallocarray(NULL, n, 1));
        EXPECT_ENOMEM(aligned_alloc(16, n));
        EXPECT_ENOMEM(aligned_alloc(4096, n));
        EXPECT_ENOMEM(aligned_alloc(MiB, n));
        EXPECT_ENOMEM(hak_aligned_alloc(64, n));
        EXPECT_ENOMEM(memalign(16, n));
        EXPECT_ENOMEM(memalign(65536, n));
        EXPECT_ENOMEM(hak_memalign(256, n));
        EXPECT_ENOMEM(valloc(n));
        EXPECT_ENOMEM(hak_valloc(n));
        EXPECT_ENOMEM(pvalloc(n));
        EXPECT_ENOMEM(hak_pvalloc(n));
        /* just below SIZE_MAX, so that rounding up to a page overflows */
        EXPECT_ENOMEM(pvalloc(n - 100));
        EXPECT_ENOMEM(malloc(n - 100));
    }
}
END_TEST

START_TEST(test_enomem_posix_memalign)
{
    init_huge();
    static const size_t aligns[] = {sizeof(void *), 16, 64, 4096, 65536, MiB};
    for (int i = 0; i < 3; i++)
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            void *sentinel = (void *)(uintptr_t)0xdeadbeef0;
            void *mp = sentinel;
            errno = 0;
            int rc = posix_memalign(&mp, aligns[a], huge_sizes[i]);
            REQUIRE(rc == ENOMEM, "posix_memalign(%zu, %zu) returned %d, expected ENOMEM",
                          aligns[a], huge_sizes[i], rc);
            REQUIRE(mp == sentinel, "posix_memalign failure changed *memptr to %p", mp);
            mp = sentinel;
            rc = hak_posix_memalign(&mp, aligns[a], huge_sizes[i]);
            REQUIRE(rc == ENOMEM, "hak_posix_memalign(%zu, %zu) returned %d", aligns[a],
                          huge_sizes[i], rc);
            REQUIRE(mp == sentinel, "hak_posix_memalign failure changed *memptr");
        }
}
END_TEST

/* A failing realloc leaves the original block allocated and unchanged. */
START_TEST(test_enomem_realloc_keeps_block)
{
    init_huge();
    static const size_t sizes[] = {1, 100, TINY_MAX, TINY_MAX + 1, 20000, POOL_MAX + 1, 3 * MiB};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int i = 0; i < 3; i++) {
            size_t n = sizes[s];
            unsigned char *p = malloc(n);
            REQUIRE_PTR(p);
            fill(p, n, 77);
            EXPECT_ENOMEM(realloc(p, huge_sizes[i]));
            EXPECT_ENOMEM(hak_realloc(p, huge_sizes[i]));
            EXPECT_ENOMEM(reallocarray(p, 2, huge_sizes[i] / 2 + 1)); /* overflow */
            EXPECT_ENOMEM(reallocarray(p, 1, huge_sizes[i]));
            EXPECT_ENOMEM(hak_reallocarray(p, huge_sizes[i], 3));
            REQUIRE(verify(p, n, 77) == (size_t)-1, "failed realloc changed block of %zu", n);
            REQUIRE_TRUE(malloc_usable_size(p) >= n);
            /* still a live block: can grow normally */
            p = realloc(p, n + 100);
            REQUIRE_PTR(p);
            REQUIRE_TRUE(verify(p, n, 77) == (size_t)-1);
            free(p);
        }
}
END_TEST

/* ------------------------------------------------------------ calloc */

START_TEST(test_calloc_overflow)
{
    static const size_t pairs[][2] = {
        {SIZE_MAX, 2},           {2, SIZE_MAX},           {SIZE_MAX / 2 + 1, 2},
        {(SIZE_MAX >> 32) + 2, (size_t)1 << 32},          {65537, 281474976710656ull},
        {(size_t)1 << 32, (size_t)1 << 32},               {3, SIZE_MAX / 3 + 1},
        {SIZE_MAX, SIZE_MAX},    {(size_t)PTRDIFF_MAX, 2}, {1, SIZE_MAX},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        volatile size_t a = pairs[i][0], b = pairs[i][1];
        EXPECT_ENOMEM(calloc(a, b));
        EXPECT_ENOMEM(hak_calloc(a, b));
        EXPECT_ENOMEM(reallocarray(NULL, a, b));
        EXPECT_ENOMEM(hak_reallocarray(NULL, a, b));
    }
    /* products that do not overflow still work */
    void *p = calloc(1000, 1000);
    REQUIRE_PTR(p);
    REQUIRE_TRUE(first_nonzero(p, 1000000) == (size_t)-1);
    free(p);
}
END_TEST

/* Memory that was dirtied and freed comes back zeroed from calloc, in every
 * tier (cached large mappings included). */
START_TEST(test_calloc_zeroes_reused)
{
    static const size_t sizes[] = {1,     16,     17,        100,   512,       TINY_MAX,
                                   TINY_MAX + 1, 4096, 30000, POOL_MAX, POOL_MAX + 1, 100000,
                                   MiB,   CHUNK - 16, CHUNK + 16, 5 * MiB};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        for (int round = 0; round < 4; round++) {
            /* dirty a batch of blocks of this size, free them, calloc again */
            void *p[16];
            for (int i = 0; i < 16; i++) {
                p[i] = malloc(n);
                REQUIRE_PTR(p[i]);
                memset(p[i], 0xA5, malloc_usable_size(p[i]));
            }
            for (int i = 0; i < 16; i++)
                free(p[i]);
            for (int i = 0; i < 16; i++) {
                p[i] = (round & 1) ? hak_calloc(n, 1) : calloc(1, n);
                REQUIRE_PTR(p[i]);
                size_t nz = first_nonzero(p[i], n);
                REQUIRE(nz == (size_t)-1,
                              "calloc(%zu) round %d block %d: reused byte %zu not zero", n,
                              round, i, nz);
                memset(p[i], 0x5A, n);
            }
            for (int i = 0; i < 16; i++)
                free(p[i]);
        }
    }
}
END_TEST

/* ------------------------------------------------------------ realloc */

static const size_t tier_walk[] = {
    8,       24,        TINY_MAX,      TINY_MAX + 1, 3000,    POOL_MAX,  POOL_MAX + 1,
    200000,  CHUNK + 1, 9 * MiB,       100,          POOL_MAX + 16, 1,    40000,
    5 * MiB, 17,        2000,          700000,       TINY_MAX - 1, 64 * MiB, 33,
};

START_TEST(test_realloc_across_tiers)
{
    /* walk one block through every tier in both directions; after each step
     * the first min(old, new) bytes are what was written before */
    for (int api = 0; api < 2; api++) {
        size_t cur = 0;
        unsigned char *p = NULL;
        unsigned seed = 1;
        for (size_t k = 0; k < sizeof tier_walk / sizeof tier_walk[0]; k++) {
            size_t n = tier_walk[k];
            unsigned char *q = api ? hak_realloc(p, n) : realloc(p, n);
            REQUIRE(q != NULL, "realloc(%zu -> %zu) returned NULL", cur, n);
            REQUIRE_TRUE(aligned_to(q, min_align(n)));
            REQUIRE(malloc_usable_size(q) >= n, "realloc -> %zu: usable %zu", n,
                          malloc_usable_size(q));
            size_t keep = cur < n ? cur : n;
            size_t bad = verify(q, keep, seed);
            REQUIRE(bad == (size_t)-1, "realloc(%zu -> %zu) lost byte %zu", cur, n, bad);
            seed++;
            fill(q, n, seed);
            p = q;
            cur = n;
        }
        free(p);
    }
}
END_TEST

START_TEST(test_realloc_same_and_shrink)
{
    /* many small steps up and down inside and across tiers */
    unsigned char *p = malloc(1);
    REQUIRE_PTR(p);
    p[0] = 0x42;
    size_t cur = 1;
    for (size_t n = 2; n < 300000; n = n * 5 / 4 + 3) {
        unsigned char *q = realloc(p, n);
        REQUIRE_PTR(q);
        REQUIRE_TRUE(q[0] == 0x42);
        REQUIRE_TRUE(verify(q + 1, cur - 1, 3) == (size_t)-1);
        fill(q + 1, n - 1, 3);
        p = q;
        cur = n;
    }
    while (cur > 1) {
        size_t n = cur / 2;
        unsigned char *q = realloc(p, n);
        REQUIRE_PTR(q);
        REQUIRE_TRUE(q[0] == 0x42);
        REQUIRE_TRUE(verify(q + 1, n - 1, 3) == (size_t)-1);
        p = q;
        cur = n;
    }
    /* realloc to the same size keeps everything */
    unsigned char *r = malloc(5000);
    REQUIRE_PTR(r);
    fill(r, 5000, 8);
    r = realloc(r, 5000);
    REQUIRE_PTR(r);
    REQUIRE_TRUE(verify(r, 5000, 8) == (size_t)-1);
    free(r);
    free(p);
}
END_TEST

/* Blocks from the memalign family realloc like any other. */
START_TEST(test_realloc_aligned_blocks)
{
    static const size_t aligns[] = {16, 64, 4096, 65536, MiB};
    static const size_t from[] = {100, 5000, 100000, 3 * MiB};
    static const size_t to[] = {50, 2000, 60000, 4 * MiB, 10};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
        for (size_t f = 0; f < sizeof from / sizeof from[0]; f++)
            for (size_t t = 0; t < sizeof to / sizeof to[0]; t++) {
                unsigned char *p = aligned_alloc(aligns[a], from[f]);
                REQUIRE_PTR(p);
                REQUIRE_TRUE(aligned_to(p, aligns[a]));
                fill(p, from[f], (unsigned)(a + f + t));
                unsigned char *q = realloc(p, to[t]);
                REQUIRE(q != NULL, "realloc(aligned_alloc(%zu, %zu), %zu) = NULL", aligns[a],
                              from[f], to[t]);
                size_t keep = from[f] < to[t] ? from[f] : to[t];
                REQUIRE(verify(q, keep, (unsigned)(a + f + t)) == (size_t)-1,
                              "realloc(aligned_alloc(%zu, %zu), %zu) lost contents", aligns[a],
                              from[f], to[t]);
                check_block(q, to[t], 0, "realloc of aligned block");
                free(q);
            }
}
END_TEST

/* glibc's internal names that programs linked against glibc may call must be
 * hakmem's too: mixing them with malloc/free must work. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

START_TEST(test_libc_aliases)
{
    static const size_t sizes[] = {10, TINY_MAX + 1, POOL_MAX + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = __libc_malloc(n);
        check_block(p, n, 0, "__libc_malloc");
        free(p);
        p = malloc(n);
        REQUIRE_PTR(p);
        __libc_free(p);
        p = __libc_calloc(1, n);
        REQUIRE_PTR(p);
        REQUIRE_TRUE(first_nonzero(p, n) == (size_t)-1);
        p = __libc_realloc(p, n * 2);
        check_block(p, n * 2, 0, "__libc_realloc");
        hak_free(p);
        p = __libc_memalign(4096, n);
        check_block(p, n, 4096, "__libc_memalign");
        free(p);
    }
}
END_TEST

/* ------------------------------------------------ free_sized (C23) */

/* glibc 2.43 declares them; older headers do not. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

static uint64_t all_frees(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    uint64_t n = 0;
    for (int u = 0; u < HAK_TIER_COUNT; u++)
        n += s.tier[u].frees;
    return n;
}

/* Each of the four frees `count` blocks of n bytes (aligned to `align` for
 * the aligned ones, from malloc, calloc and realloc in turn for the others),
 * and every one of them comes back: the frees counted grow by count. */
static void free_sized_case(size_t n, size_t align, int count)
{
    enum { MAX = 64 };
    void *p[MAX];
    REQUIRE_TRUE(count <= MAX);
    for (int how = 0; how < 4; how++) {
        for (int i = 0; i < count; i++) {
            if (how >= 2)
                p[i] = how == 2 ? aligned_alloc(align, n) : hak_aligned_alloc(align, n);
            else if (i % 3 == 0)
                p[i] = malloc(n);
            else if (i % 3 == 1)
                p[i] = calloc(1, n);
            else /* realloc(p, 0) frees p */
                p[i] = n ? realloc(malloc(8), n) : malloc(0);
            REQUIRE(p[i] != NULL, "allocation of %zu B (align %zu) failed", n, align);
            memset(p[i], 0x3c, n);
        }
        uint64_t before = all_frees();
        for (int i = 0; i < count; i++) {
            if (how == 0)
                free_sized(p[i], n);
            else if (how == 1)
                hak_free_sized(p[i], n);
            else if (how == 2)
                free_aligned_sized(p[i], align, n);
            else
                hak_free_aligned_sized(p[i], align, n);
        }
        uint64_t freed = all_frees() - before;
        REQUIRE(freed >= (uint64_t)count, "%d blocks of %zu B freed (way %d): %llu counted",
                count, n, how, (unsigned long long)freed);
    }
}

START_TEST(test_free_sized)
{
    free_sized(NULL, 100);
    free_aligned_sized(NULL, 64, 100);
    hak_free_sized(NULL, 0);
    hak_free_aligned_sized(NULL, 16, 0);
    static const size_t sizes[] = {0,          1,         100,          TINY_MAX,
                                   TINY_MAX + 1, 4000,     POOL_MAX,     POOL_MAX + 1,
                                   100000,     CHUNK + 100, 5 * MiB};
    static const size_t aligns[] = {16, 64, 4096, 65536};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        free_sized_case(sizes[i], aligns[i % 4], sizes[i] > CHUNK ? 4 : 40);
}
END_TEST

/* --------------------------------------------------- malloc_usable_size */

START_TEST(test_usable_size_writable)
{
    /* fill each block's whole usable size, with its neighbours live; writing
     * the usable tail must not disturb any other block */
    enum { N = 600 };
    static void *p[N];
    static size_t us[N];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n;
        switch (i % 6) {
        case 0: n = x % 64; break;
        case 1: n = x % TINY_MAX + 1; break;
        case 2: n = TINY_MAX + 1 + x % (POOL_MAX - TINY_MAX); break;
        case 3: n = x % 200; break;
        case 4: n = POOL_MAX + 1 + x % (400 * KiB); break;
        default: n = x % 5000; break;
        }
        p[i] = malloc(n);
        REQUIRE_PTR(p[i]);
        us[i] = malloc_usable_size(p[i]);
        REQUIRE(us[i] >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, us[i]);
        fill(p[i], us[i], (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        size_t bad = verify(p[i], us[i], (unsigned)i);
        REQUIRE(bad == (size_t)-1, "block %d (%zu usable) byte %zu overwritten", i, us[i],
                      bad);
        REQUIRE_TRUE(malloc_usable_size(p[i]) == us[i]);
    }
    for (int i = 0; i < N; i++)
        free(p[i]);
    REQUIRE_TRUE(malloc_usable_size(NULL) == 0);
}
END_TEST

/* ---------------------------------------------------------- memalign */

START_TEST(test_posix_memalign_einval)
{
    static const size_t bad[] = {0, 1, 2, 3, 4, sizeof(void *) / 2, 12, 24, 48, 100, 4097,
                                 (size_t)3 << 20, SIZE_MAX, ((size_t)1 << 63) + 8};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *sentinel = &sentinel;
        void *mp = sentinel;
        int rc = posix_memalign(&mp, bad[i], 64);
        REQUIRE(rc == EINVAL, "posix_memalign(align=%zu) returned %d, expected EINVAL",
                      bad[i], rc);
        REQUIRE(mp == sentinel, "posix_memalign(align=%zu) failure changed *memptr",
                      bad[i]);
        rc = hak_posix_memalign(&mp, bad[i], 64);
        REQUIRE(rc == EINVAL, "hak_posix_memalign(align=%zu) returned %d", bad[i], rc);
        REQUIRE_TRUE(mp == sentinel);
    }
    /* the smallest valid alignment works, also with size 0 */
    void *mp = NULL;
    ck_assert_int_eq(posix_memalign(&mp, sizeof(void *), 0), 0);
    REQUIRE_PTR(mp);
    free(mp);
}
END_TEST

static const size_t align_sizes[] = {1,           24,           100,          TINY_MAX,
                                     TINY_MAX + 1, 4000,        POOL_MAX,     POOL_MAX + 1,
                                     100000,      CHUNK - 4096, CHUNK + 100};

START_TEST(test_aligned_variants)
{
    size_t nsz = sizeof align_sizes / sizeof align_sizes[0];
    long page = sysconf(_SC_PAGESIZE);
    for (size_t a = 1; a <= MiB; a <<= 1) {
        for (size_t s = 0; s < nsz; s++) {
            size_t n = align_sizes[s];
            void *p;

            p = aligned_alloc(a, n);
            check_block(p, n, a, "aligned_alloc");
            free(p);

            p = hak_aligned_alloc(a, n);
            check_block(p, n, a, "hak_aligned_alloc");
            hak_free(p);

            p = memalign(a, n);
            check_block(p, n, a, "memalign");
            free(p);

            p = hak_memalign(a, n);
            check_block(p, n, a, "hak_memalign");
            free(p);

            if (a >= sizeof(void *)) {
                p = NULL;
                int rc = posix_memalign(&p, a, n);
                REQUIRE(rc == 0, "posix_memalign(%zu, %zu) = %d", a, n, rc);
                check_block(p, n, a, "posix_memalign");
                free(p);
                p = NULL;
                rc = hak_posix_memalign(&p, a, n);
                REQUIRE(rc == 0, "hak_posix_memalign(%zu, %zu) = %d", a, n, rc);
                check_block(p, n, a, "hak_posix_memalign");
                hak_free(p);
            }
        }
    }
    for (size_t s = 0; s < nsz; s++) {
        size_t n = align_sizes[s];
        void *p = valloc(n);
        check_block(p, n, (size_t)page, "valloc");
        free(p);
        p = hak_valloc(n);
        check_block(p, n, (size_t)page, "hak_valloc");
        free(p);
        size_t rounded = (n + (size_t)page - 1) / (size_t)page * (size_t)page;
        p = pvalloc(n);
        check_block(p, rounded, (size_t)page, "pvalloc");
        free(p);
        p = hak_pvalloc(n);
        check_block(p, rounded, (size_t)page, "hak_pvalloc");
        free(p);
    }
    /* pvalloc(0) gives at least one page */
    void *p = pvalloc(0);
    REQUIRE_PTR(p);
    REQUIRE_TRUE(aligned_to(p, (size_t)page));
    free(p);
}
END_TEST

/* Aligned blocks stay aligned while many are live, and don't overlap. */
START_TEST(test_aligned_many_live)
{
    enum { N = 400 };
    static void *p[N];
    static size_t n[N], a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (size_t)1 << (3 + i % 15); /* 8 .. 128 KiB */
        n[i] = align_sizes[i % (sizeof align_sizes / sizeof align_sizes[0] - 2)];
        p[i] = aligned_alloc(a[i], n[i]);
        REQUIRE_PTR(p[i]);
        REQUIRE(aligned_to(p[i], a[i]), "aligned_alloc(%zu, %zu) = %p", a[i], n[i], p[i]);
        fill(p[i], n[i], (unsigned)i + 1000);
    }
    for (int i = 0; i < N; i++) {
        REQUIRE(verify(p[i], n[i], (unsigned)i + 1000) == (size_t)-1,
                      "aligned block %d (%zu, align %zu) overwritten", i, n[i], a[i]);
        free(p[i]);
    }
}
END_TEST

/* ---------------------------------------------------------- no overlap */

struct blk {
    unsigned char *p;
    size_t n;
    size_t us;
};

static int by_addr(const void *x, const void *y)
{
    const struct blk *a = x, *b = y;
    return a->p < b->p ? -1 : a->p > b->p;
}

START_TEST(test_live_blocks_disjoint)
{
    enum { N = 20000 };
    struct blk *b = calloc(N, sizeof *b);
    REQUIRE_PTR(b);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            if (b[i].p && ((x ^= x << 13, x ^= x >> 7, x ^= x << 17) & 1))
                continue; /* keep about half from the previous round */
            if (b[i].p) {
                REQUIRE_TRUE(verify(b[i].p, b[i].n, (unsigned)i) == (size_t)-1);
                free(b[i].p);
            }
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t r = x >> 8, n;
            switch (x % 16) {
            case 0: n = TINY_MAX + 1 + r % (POOL_MAX - TINY_MAX); break;
            case 1: n = r % 4096; break;
            case 2: n = (i % 500 == 0) ? POOL_MAX + 1 + r % (3 * MiB) : r % 128; break;
            default: n = r % 300; break;
            }
            b[i].p = malloc(n);
            REQUIRE_PTR(b[i].p);
            b[i].n = n;
            b[i].us = malloc_usable_size(b[i].p);
            fill(b[i].p, n, (unsigned)i);
        }
        for (int i = 0; i < N; i++) {
            size_t bad = verify(b[i].p, b[i].n, (unsigned)i);
            REQUIRE(bad == (size_t)-1, "round %d: block %d (%p, %zu B) byte %zu clobbered",
                          round, i, (void *)b[i].p, b[i].n, bad);
        }
        /* sorted by address, [p, p + max(usable,1)) never overlap */
        struct blk *s = malloc(N * sizeof *s);
        REQUIRE_PTR(s);
        memcpy(s, b, N * sizeof *s);
        qsort(s, N, sizeof *s, by_addr);
        for (int i = 1; i < N; i++) {
            size_t prev = s[i - 1].us ? s[i - 1].us : 1;
            REQUIRE(s[i - 1].p + prev <= s[i].p,
                          "blocks overlap: %p (+%zu usable) and %p", (void *)s[i - 1].p,
                          s[i - 1].us, (void *)s[i].p);
        }
        free(s);
    }
    for (int i = 0; i < N; i++)
        free(b[i].p);
    free(b);
}
END_TEST

/* ------------------------------------------------ mallinfo2, trim, stats */

START_TEST(test_mallinfo_trim)
{
    void *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = malloc((size_t)(i % 4 == 0 ? 100000 : i % 4 == 1 ? 5000 : 50) + (size_t)i);
        REQUIRE_PTR(p[i]);
    }
    struct mallinfo2 mi = mallinfo2();
    (void)mi;
    ck_assert_int_ge(malloc_trim(0), 0);
    for (int i = 0; i < 100; i++)
        free(p[i]);
    mi = mallinfo2();
    int r = malloc_trim(0);
    REQUIRE_TRUE(r == 0 || r == 1);
    r = hak_trim();
    REQUIRE_TRUE(r == 0 || r == 1);
    /* still usable after trimming */
    for (int i = 0; i < 100; i++) {
        p[i] = malloc((size_t)(i % 3 == 0 ? 200000 : i % 3 == 1 ? 3000 : 30));
        REQUIRE_PTR(p[i]);
        memset(p[i], i, 30);
    }
    for (int i = 0; i < 100; i++)
        free(p[i]);
    ck_assert_int_ge(malloc_trim(0), 0);
    ck_assert_int_ge(malloc_trim(1 << 20), 0);
}
END_TEST

START_TEST(test_version)
{
    const char *v = hak_version();
    REQUIRE_PTR(v);
    ck_assert_str_eq(v, HAKMEM_VERSION_STRING);
}
END_TEST

static uint64_t tier_allocs(const struct hak_stats *s, int t)
{
    return s->tier[t].allocs;
}

/* Allocates `count` blocks of `size`, checks that tier `t` counted them and
 * the other tiers did not grow by as much, then that frees are counted. */
static void stats_case(size_t size, int t, int count)
{
    static const char *names[] = {"tiny", "pool", "large"};
    void **p = malloc((size_t)count * sizeof *p);
    REQUIRE_PTR(p);
    struct hak_stats a, b, c;
    /* no ck_assert between the snapshots: Check allocates for every one */
    int nulls = 0;
    hak_stats_get(&a);
    for (int i = 0; i < count; i++) {
        p[i] = hak_malloc(size);
        nulls += p[i] == NULL;
    }
    hak_stats_get(&b);
    ck_assert_int_eq(nulls, 0);
    for (int u = 0; u < HAK_TIER_COUNT; u++) {
        uint64_t d = tier_allocs(&b, u) - tier_allocs(&a, u);
        if (u == t) {
            REQUIRE(d >= (uint64_t)count, "%d x %zu B: %s allocs grew by %llu", count, size,
                          names[u], (unsigned long long)d);
            REQUIRE(b.tier[u].mapped_bytes > 0, "%s tier serves %zu B but maps 0 bytes",
                          names[u], size);
        } else {
            REQUIRE(d < (uint64_t)count, "%d x %zu B counted in the %s tier (%llu)", count,
                          size, names[u], (unsigned long long)d);
        }
    }
    for (int i = 0; i < count; i++)
        free(p[i]);
    hak_stats_get(&c);
    uint64_t df = c.tier[t].frees - b.tier[t].frees;
    REQUIRE(df >= (uint64_t)count, "%d frees of %zu B: %s frees grew by %llu", count, size,
                  names[t], (unsigned long long)df);
    free(p);
}

START_TEST(test_stats_per_tier)
{
    stats_case(1, HAK_TIER_TINY, 500);
    stats_case(64, HAK_TIER_TINY, 1000);
    stats_case(TINY_MAX, HAK_TIER_TINY, 300);
    stats_case(TINY_MAX + 1, HAK_TIER_POOL, 300);
    stats_case(8192, HAK_TIER_POOL, 200);
    stats_case(POOL_MAX, HAK_TIER_POOL, 50);
    stats_case(POOL_MAX + 1, HAK_TIER_LARGE, 40);
    stats_case(3 * MiB, HAK_TIER_LARGE, 10);

    struct hak_stats s;
    hak_stats_get(&s);
    REQUIRE_TRUE(s.mmap_calls > 0);
    REQUIRE_TRUE(s.mmap_calls >= s.munmap_calls);
    for (int u = 0; u < HAK_TIER_COUNT; u++)
        REQUIRE_TRUE(s.tier[u].allocs >= s.tier[u].frees);
    hak_stats_print(); /* must not crash; output goes to the log */
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *contract_suite(void)
{
    Suite *s = suite_create("contract");
    TCase *tc;

    tc = tcase_create("sizes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sizes_malloc);
    tcase_add_test(tc, test_sizes_calloc);
    tcase_add_test(tc, test_sizes_realloc);
    tcase_add_test(tc, test_sizes_hak_api);
    suite_add_tcase(s, tc);

    tc = tcase_create("basics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_malloc_zero_unique);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_version);
    suite_add_tcase(s, tc);

    tc = tcase_create("enomem");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_enomem_malloc_family);
    tcase_add_test(tc, test_enomem_posix_memalign);
    tcase_add_test(tc, test_enomem_realloc_keeps_block);
    tcase_add_test(tc, test_calloc_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("calloc_realloc");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_calloc_zeroes_reused);
    tcase_add_test(tc, test_realloc_across_tiers);
    tcase_add_test(tc, test_realloc_same_and_shrink);
    tcase_add_test(tc, test_realloc_aligned_blocks);
    tcase_add_test(tc, test_libc_aliases);
    tcase_add_test(tc, test_free_sized);
    tcase_add_test(tc, test_usable_size_writable);
    suite_add_tcase(s, tc);

    tc = tcase_create("aligned");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_posix_memalign_einval);
    tcase_add_test(tc, test_aligned_variants);
    tcase_add_test(tc, test_aligned_many_live);
    suite_add_tcase(s, tc);

    tc = tcase_create("heap");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_live_blocks_disjoint);
    tcase_add_test(tc, test_mallinfo_trim);
    tcase_add_test(tc, test_stats_per_tier);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(contract_suite());
}
