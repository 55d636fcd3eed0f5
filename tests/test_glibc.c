/*
 * test_glibc.c - the parts of glibc's malloc contract that programs written
 * for glibc rely on (issue 10), through the overridden names and the hak_*
 * API:
 *
 *  - realloc(p, 0) frees p and returns NULL (a loop of it neither leaks nor
 *    grows); realloc(NULL, 0) returns a unique block;
 *  - realloc(p, n) with n <= malloc_usable_size(p) returns p unmoved, in
 *    every tier and for aligned blocks, contents intact;
 *  - the memalign family's errors for alignment 0, non-powers of two and the
 *    largest values (EINVAL above SIZE_MAX/2 + 1, else ENOMEM), and errno ==
 *    ENOMEM after posix_memalign fails with ENOMEM;
 *  - mallopt, malloc_stats and malloc_info are hakmem's.
 */
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"

/* Keep the compiler from reasoning about the values. */
static volatile size_t v_size_max = SIZE_MAX;

static uint64_t frees_total(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    return s.tier[HAK_TIER_TINY].frees + s.tier[HAK_TIER_POOL].frees +
           s.tier[HAK_TIER_LARGE].frees;
}

static uint64_t mapped_total(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    return s.tier[HAK_TIER_TINY].mapped_bytes + s.tier[HAK_TIER_POOL].mapped_bytes +
           s.tier[HAK_TIER_LARGE].mapped_bytes;
}

/* One size per tier, and the boundaries. */
static const size_t tier_sizes[] = {1, 100, 1024, 1025, 8000, 53248, 53249, 300 * 1024, 3 * MiB};
#define NSIZES (sizeof tier_sizes / sizeof tier_sizes[0])

/* ------------------------------------------------------------ realloc(p, 0) */

START_TEST(test_realloc_zero_frees)
{
    for (size_t i = 0; i < NSIZES; i++) {
        void *p = malloc(tier_sizes[i]);
        REQUIRE(p != NULL, "malloc(%zu) failed", tier_sizes[i]);
        uint64_t f0 = frees_total();
        errno = 0;
        void *q = realloc(p, 0);
        REQUIRE(q == NULL, "realloc(p of %zu B, 0) returned %p, not NULL", tier_sizes[i], q);
        REQUIRE(frees_total() == f0 + 1, "realloc(p of %zu B, 0) did not free p",
                tier_sizes[i]);
        p = hak_malloc(tier_sizes[i]);
        REQUIRE(p != NULL, "hak_malloc(%zu) failed", tier_sizes[i]);
        REQUIRE(hak_realloc(p, 0) == NULL, "hak_realloc(p of %zu B, 0) is not NULL",
                tier_sizes[i]);
    }
    /* realloc(NULL, 0) is a unique, freeable block */
    void *a = realloc(NULL, 0), *b = realloc(NULL, 0);
    REQUIRE(a && b && a != b, "realloc(NULL, 0) gave %p and %p", a, b);
    free(a);
    free(b);
}
END_TEST

/* The glibc idiom: p = realloc(p, n) with n cycling through 0 must neither
 * leak nor grow. */
START_TEST(test_realloc_zero_loop_bounded)
{
    void *p = NULL;
    for (int round = 0; round < 2; round++) {
        uint64_t m0 = mapped_total();
        for (int i = 0; i < 200000; i++) {
            size_t n = (i % 3 == 2) ? 0 : tier_sizes[(size_t)i % NSIZES];
            p = realloc(p, n);
            if (n)
                REQUIRE(p != NULL, "realloc(p, %zu) failed", n);
            else
                REQUIRE(p == NULL, "realloc(p, 0) returned %p", p);
        }
        /* the first round warms the heap; the second must not map more */
        if (round == 1)
            REQUIRE(mapped_total() <= m0 + 8 * MiB, "mapped bytes grew from %llu to %llu",
                    (unsigned long long)m0, (unsigned long long)mapped_total());
    }
    free(p);
}
END_TEST

/* ------------------------------------------------------- realloc in place */

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + seed);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed))
            return 0;
    return 1;
}

/* Every n <= malloc_usable_size(p) keeps p where it is, down to 1 byte. */
static void check_in_place(void *p, const char *what, size_t size)
{
    size_t usable = malloc_usable_size(p);
    REQUIRE(usable >= size, "%s(%zu): usable size %zu", what, size, usable);
    const size_t fractions[] = {1, 2, 3, 4, 7, 16, 64, 1000, 100000};
    size_t keep = usable;
    fill(p, usable, (unsigned)size);
    for (size_t f = 0; f < sizeof fractions / sizeof fractions[0]; f++) {
        size_t n = usable / fractions[f];
        if (n == 0)
            n = 1;
        for (int d = 0; d < 2; d++, n = n > 1 ? n - 1 : 1) {
            void *q = realloc(p, n);
            REQUIRE(q == p, "%s(%zu): realloc(p, %zu) moved %p to %p (usable %zu)", what,
                    size, n, p, q, usable);
            if (n < keep)
                keep = n;
            REQUIRE(intact(p, keep, (unsigned)size), "%s(%zu): contents lost at %zu B", what,
                    size, n);
            REQUIRE(malloc_usable_size(p) >= n, "%s(%zu): usable below %zu", what, size, n);
        }
    }
    REQUIRE(hak_realloc(p, 1) == p, "%s(%zu): hak_realloc(p, 1) moved", what, size);
    free(p);
}

START_TEST(test_realloc_in_place_every_tier)
{
    for (size_t i = 0; i < NSIZES; i++) {
        check_in_place(malloc(tier_sizes[i]), "malloc", tier_sizes[i]);
        check_in_place(hak_malloc(tier_sizes[i]), "hak_malloc", tier_sizes[i]);
        check_in_place(calloc(1, tier_sizes[i]), "calloc", tier_sizes[i]);
    }
    const size_t aligns[] = {64, 4096, 65536};
    for (size_t a = 0; a < 3; a++)
        for (size_t i = 0; i < NSIZES; i++) {
            void *p = memalign(aligns[a], tier_sizes[i]);
            REQUIRE(p != NULL, "memalign(%zu, %zu) failed", aligns[a], tier_sizes[i]);
            check_in_place(p, "memalign", tier_sizes[i]);
        }
}
END_TEST

/* ------------------------------------------------------- memalign family */

#define EXPECT_FAIL(call, err)                                                       \
    do {                                                                             \
        errno = 0;                                                                   \
        void *r_ = (call);                                                           \
        int e_ = errno;                                                              \
        REQUIRE(r_ == NULL, "%s returned %p", #call, r_);                            \
        REQUIRE(e_ == (err), "%s: errno %d (%s), expected %s", #call, e_, strerror(e_), \
                #err);                                                               \
    } while (0)

#define EXPECT_ALIGNED(call, align)                                                  \
    do {                                                                             \
        void *r_ = (call);                                                           \
        REQUIRE(r_ != NULL, "%s failed: %s", #call, strerror(errno));               \
        REQUIRE(((uintptr_t)r_ & ((align) - 1)) == 0, "%s = %p not aligned to %zu",  \
                #call, r_, (size_t)(align));                                         \
        free(r_);                                                                    \
    } while (0)

/* An alignment the compiler cannot see as a constant: clang 14 crashes
 * compiling memalign() with a constant that is not a power of two (and
 * warns about it), which is exactly what these tests pass. */
static size_t opaque(size_t align)
{
    volatile size_t v = align;
    return v;
}

START_TEST(test_memalign_errors)
{
    size_t max = v_size_max, half = max / 2 + 1; /* half: the largest power of two */
    /* above SIZE_MAX/2 + 1: EINVAL */
    EXPECT_FAIL(memalign(max, 4096), EINVAL);
    EXPECT_FAIL(memalign(half + 1, 1), EINVAL);
    EXPECT_FAIL(hak_memalign(max, 16), EINVAL);
    EXPECT_FAIL(aligned_alloc(max, 4096), EINVAL);
    /* the largest power of two, or a non-power rounded up to it: ENOMEM */
    EXPECT_FAIL(memalign(half, 1), ENOMEM);
    EXPECT_FAIL(memalign(half - 1, 1), ENOMEM);
    EXPECT_FAIL(aligned_alloc(half, 1), ENOMEM);
    /* alignment 0 and small or non-power alignments: rounded up (memalign) */
    EXPECT_ALIGNED(memalign(opaque(0), 10), 16);
    EXPECT_ALIGNED(memalign(1, 10), 16);
    EXPECT_ALIGNED(memalign(opaque(3), 10), 16);
    EXPECT_ALIGNED(memalign(opaque(24), 100), 32);
    EXPECT_ALIGNED(memalign(opaque(4097), 100), 8192);
    EXPECT_ALIGNED(memalign(opaque(3 * 65536), 70000), 262144);
    /* aligned_alloc: a non-power of two or 0 is EINVAL (glibc >= 2.38, C17) */
    EXPECT_FAIL(aligned_alloc(opaque(0), 16), EINVAL);
    EXPECT_FAIL(aligned_alloc(opaque(24), 48), EINVAL);
    EXPECT_ALIGNED(aligned_alloc(1, 10), 16);
    EXPECT_ALIGNED(aligned_alloc(4096, 10), 4096);
    /* valloc and pvalloc of impossible sizes */
    EXPECT_FAIL(valloc(max), ENOMEM);
    EXPECT_FAIL(pvalloc(max), ENOMEM);
    EXPECT_FAIL(valloc(max - 4096), ENOMEM);
    EXPECT_ALIGNED(pvalloc(0), 4096);
}
END_TEST

/* Called through pointers: GCC's builtin posix_memalign is assumed to leave
 * errno alone, so a direct call's errno would be read from before it. */
static int (*volatile pm_libc)(void **, size_t, size_t) = posix_memalign;
static int (*volatile pm_hak)(void **, size_t, size_t) = hak_posix_memalign;

START_TEST(test_posix_memalign_errors)
{
    size_t max = v_size_max, half = max / 2 + 1;
    void *sentinel = (void *)0x1234, *p;
    const size_t einval[] = {0, 1, 4, 12, 24, 48, 4097, half + 8, max};
    for (size_t i = 0; i < sizeof einval / sizeof einval[0]; i++) {
        p = sentinel;
        errno = 0;
        REQUIRE(posix_memalign(&p, einval[i], 16) == EINVAL, "posix_memalign(%zu) not EINVAL",
                einval[i]);
        REQUIRE(p == sentinel, "posix_memalign(%zu) changed *memptr", einval[i]);
    }
    struct { size_t align, size; } enomem[] = {
        {16, max}, {8, max - 8}, {4096, max / 2}, {half, 1}, {65536, max - 65536}};
    for (size_t i = 0; i < sizeof enomem / sizeof enomem[0]; i++) {
        p = sentinel;
        errno = 0;
        int rc = pm_libc(&p, enomem[i].align, enomem[i].size);
        int e = errno;
        REQUIRE(rc == ENOMEM, "posix_memalign(%zu, %zu) returned %d", enomem[i].align,
                enomem[i].size, rc);
        REQUIRE(e == ENOMEM, "posix_memalign(%zu, %zu) failed but left errno %d (%s)",
                enomem[i].align, enomem[i].size, e, strerror(e));
        REQUIRE(p == sentinel, "failed posix_memalign changed *memptr");
        errno = 0;
        REQUIRE(pm_hak(&p, enomem[i].align, enomem[i].size) == ENOMEM &&
                    errno == ENOMEM,
                "hak_posix_memalign(%zu, %zu): errno %d", enomem[i].align, enomem[i].size,
                errno);
    }
    /* success leaves errno alone */
    errno = 1234;
    REQUIRE(pm_libc(&p, 64, 100) == 0 && errno == 1234, "success changed errno");
    free(p);
}
END_TEST

/* ------------------------------------------ mallopt, malloc_stats, malloc_info */

START_TEST(test_mallopt)
{
    /* every parameter glibc knows is accepted with a value glibc accepts */
    REQUIRE(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1, "M_TRIM_THRESHOLD");
    REQUIRE(mallopt(M_TOP_PAD, 0) == 1, "M_TOP_PAD");
    REQUIRE(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1, "M_MMAP_THRESHOLD");
    REQUIRE(mallopt(M_MMAP_MAX, 65536) == 1, "M_MMAP_MAX");
    REQUIRE(mallopt(M_ARENA_MAX, 1) == 1, "M_ARENA_MAX");
    REQUIRE(mallopt(M_ARENA_TEST, 2) == 1, "M_ARENA_TEST");
    REQUIRE(mallopt(M_MXFAST, 64) == 1, "M_MXFAST");
    REQUIRE(mallopt(M_CHECK_ACTION, 3) == 1, "M_CHECK_ACTION");
    REQUIRE(mallopt(M_PERTURB, 0) == 1, "M_PERTURB");
    REQUIRE(hak_mallopt(M_ARENA_MAX, 4) == 1, "hak_mallopt(M_ARENA_MAX)");
    /* unknown parameters and values glibc refuses: 0 */
    REQUIRE(mallopt(12345, 1) == 0, "unknown parameter accepted");
    REQUIRE(mallopt(-100, 1) == 0, "unknown parameter accepted");
    REQUIRE(mallopt(M_MXFAST, 100000) == 0, "M_MXFAST out of range accepted");
    REQUIRE(mallopt(M_MMAP_THRESHOLD, 1 << 30) == 0, "M_MMAP_THRESHOLD 1 GiB accepted");
    /* and the heap works as before */
    void *p = malloc(200000);
    REQUIRE(p != NULL, "malloc after mallopt");
    free(p);
}
END_TEST

/* Reads what fd-writing `fn` produced on a temporary file. */
static size_t slurp(FILE *f, char *buf, size_t cap)
{
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    return n;
}

START_TEST(test_malloc_info_xml)
{
    static char buf[8192];
    free(malloc(5000)); /* something in the pool tier */
    FILE *f = tmpfile();
    REQUIRE(f != NULL, "tmpfile");
    REQUIRE(malloc_info(0, f) == 0, "malloc_info(0, f) failed");
    slurp(f, buf, sizeof buf);
    REQUIRE(strncmp(buf, "<malloc version=\"hakmem-", 24) == 0, "not hakmem's XML:\n%s", buf);
    REQUIRE(strstr(buf, "<tier name=\"tiny\" allocs=\"") != NULL, "no tiny tier:\n%s", buf);
    REQUIRE(strstr(buf, "<tier name=\"pool\"") != NULL, "no pool tier:\n%s", buf);
    REQUIRE(strstr(buf, "<tier name=\"large\"") != NULL, "no large tier:\n%s", buf);
    REQUIRE(strstr(buf, "</malloc>\n") != NULL, "XML not closed:\n%s", buf);
    errno = 0;
    REQUIRE(malloc_info(1, f) == -1 && errno == EINVAL, "malloc_info(1, f) accepted");
    REQUIRE(hak_malloc_info(0, f) == 0, "hak_malloc_info failed");
    fclose(f);
}
END_TEST

START_TEST(test_malloc_stats_stderr)
{
    static char buf[8192];
    free(malloc(64));
    FILE *f = tmpfile();
    REQUIRE(f != NULL, "tmpfile");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    REQUIRE(saved >= 0 && dup2(fileno(f), STDERR_FILENO) >= 0, "dup2");
    malloc_stats();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    slurp(f, buf, sizeof buf);
    fclose(f);
    REQUIRE(strstr(buf, "hakmem: tiny: allocs=") != NULL, "malloc_stats printed:\n%s", buf);
    REQUIRE(strstr(buf, "hakmem: large: allocs=") != NULL, "malloc_stats printed:\n%s", buf);
}
END_TEST

static Suite *glibc_suite(void)
{
    Suite *s = suite_create("glibc");
    TCase *tc = tcase_create("glibc");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_realloc_zero_frees);
    tcase_add_test(tc, test_realloc_zero_loop_bounded);
    tcase_add_test(tc, test_realloc_in_place_every_tier);
    tcase_add_test(tc, test_memalign_errors);
    tcase_add_test(tc, test_posix_memalign_errors);
    tcase_add_test(tc, test_mallopt);
    tcase_add_test(tc, test_malloc_info_xml);
    tcase_add_test(tc, test_malloc_stats_stderr);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(glibc_suite());
}
