/*
 * test_stress.c - model-based stress test of the whole allocator.
 *
 * N threads (default 4) run random malloc / calloc / realloc / memalign /
 * posix_memalign / aligned_alloc / free over a shared table of slots.  A slot
 * is taken with one atomic exchange (its pointer swapped for BUSY), so a block
 * allocated by one thread is verified, reallocated or freed by whichever
 * thread picks its slot next: cross-thread frees and reallocs are the normal
 * case, not a special one.  The threads run in rounds; blocks outlive the
 * threads that allocated them, so frees after the owner exited (abandoned and
 * adopted slabs) are exercised too.
 *
 * The model: every block is filled with a tag derived from its identity
 * (a unique id and its requested size).  The tag is verified
 *   - before every free and every realloc,
 *   - after realloc (the prefix up to the smaller size must be the old tag),
 *   - when a slot is revisited (any overlap between two live blocks, a block
 *     handed out twice, or a write by the allocator into a live block breaks
 *     some tag),
 * and calloc'd blocks must read zero, every block must be aligned (16, or the
 * requested alignment) and malloc_usable_size() >= the requested size.
 *
 * Sizes: mostly tiny (<= 1 KiB), some pool (.. 52 KiB), a few large
 * (.. 384 KiB); blocks over 64 KiB are verified by sampling (first and last
 * 256 bytes and two words per 4 KiB page), all others byte for byte.
 *
 * Environment:
 *   HAKMEM_STRESS_OPS      total operations (default 10000000: ~10 million,
 *                          a few seconds on 2 cores in a release build)
 *   HAKMEM_STRESS_THREADS  threads per round (default 4, 1..64)
 *   HAKMEM_STRESS_SEED     random seed (default 1); printed on failure
 * Long mode (hours): e.g.
 *   HAKMEM_STRESS_OPS=2000000000 ./tests/test_stress   (about an hour)
 * The test's own timeout grows with HAKMEM_STRESS_OPS (five minutes, plus
 * one minute per 2 million operations beyond the default), so long mode
 * needs nothing else; CK_TIMEOUT_MULTIPLIER scales it as usual.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#define SLOTS 8192u
#define ROUNDS 8u
#define BUSY ((void *)1)

struct slot {
    _Atomic(void *) p; /* NULL: empty; BUSY: taken by a thread; else a block */
    uint64_t id;       /* identity of the block in p (valid when p is a block) */
    size_t size;       /* its requested size */
};

/* ck_assert_msg() records its location through Check's pipe on every
 * success: far too slow for a hot loop.  CHECK only calls Check on failure. */
#define CHECK(expr, ...)                                                                   \
    do {                                                                                   \
        if (__builtin_expect(!(expr), 0))                                                  \
            ck_abort_msg(__VA_ARGS__);                                                     \
    } while (0)

static struct slot g_slots[SLOTS];
static uint64_t g_ops_total = 10000000;
static unsigned g_threads = 4;
static uint64_t g_seed = 1;

/* ------------------------------------------------------------- helpers */

static uint64_t env_u64(const char *name, uint64_t def, uint64_t lo, uint64_t hi)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "test_stress: ignoring malformed %s=%s\n", name, s);
        return def;
    }
    return v;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    /* splitmix64 */
    r->s += 0x9e3779b97f4a7c15ull;
    return mix64(r->s);
}

static uint64_t rnd_below(struct rng *r, uint64_t n)
{
    return rnd(r) % n;
}

/* The tag: word k of block (id, size) is seed ^ k * odd; the bytes of a
 * partial last word are that word's low bytes.  Depends on both id and size,
 * so a block reallocated in place must be re-tagged. */
static uint64_t tag_seed(uint64_t id, size_t size)
{
    return mix64(id * 0x2545f4914f6cdd1dull + size + 1);
}

static uint64_t tag_word(uint64_t seed, size_t k)
{
    return seed ^ ((uint64_t)k * 0x9e3779b97f4a7c15ull);
}

static void fill(void *p, uint64_t id, size_t size)
{
    uint64_t seed = tag_seed(id, size);
    uint64_t *w = p;
    size_t n = size / 8;
    for (size_t k = 0; k < n; k++)
        w[k] = tag_word(seed, k);
    if (size % 8) {
        uint64_t last = tag_word(seed, n);
        memcpy((char *)p + n * 8, &last, size % 8);
    }
}

/* Fails the test (via ck_abort_msg) with a precise description. */
static void mismatch(const void *p, uint64_t id, size_t size, size_t off, const char *when)
{
    ck_abort_msg("stress (seed %" PRIu64 "): block %p id %" PRIu64 " size %zu: tag broken at "
                 "byte %zu %s",
                 g_seed, p, id, size, off, when);
}

static void check_word(const uint64_t *w, uint64_t seed, size_t k, const void *p, uint64_t id,
                       size_t size, const char *when)
{
    if (w[k] != tag_word(seed, k))
        mismatch(p, id, size, k * 8, when);
}

/* Verifies the first `len` bytes of block p against the tag of (id, size).
 * Blocks over 64 KiB are sampled. */
static void verify(const void *p, uint64_t id, size_t size, size_t len, const char *when)
{
    uint64_t seed = tag_seed(id, size);
    const uint64_t *w = p;
    size_t n = len / 8;
    if (len <= 65536) {
        for (size_t k = 0; k < n; k++)
            check_word(w, seed, k, p, id, size, when);
    } else {
        for (size_t k = 0; k < 32; k++)
            check_word(w, seed, k, p, id, size, when);
        for (size_t k = 512; k < n; k += 256)
            check_word(w, seed, k, p, id, size, when), check_word(w, seed, k - 1, p, id, size, when);
        for (size_t k = n - 32; k < n; k++)
            check_word(w, seed, k, p, id, size, when);
    }
    if (len % 8) {
        uint64_t last = tag_word(seed, n);
        if (memcmp((const char *)p + n * 8, &last, len % 8) != 0)
            mismatch(p, id, size, n * 8, when);
    }
}

/* A request size: mostly tiny, skewed small; some pool; a few large. */
static size_t pick_size(struct rng *r)
{
    uint64_t x = rnd_below(r, 10000);
    if (x < 9000) {
        uint64_t y = rnd_below(r, 4);
        if (y < 2)
            return (size_t)rnd_below(r, 129); /* 0 .. 128 */
        if (y < 3)
            return (size_t)rnd_below(r, 513);
        return (size_t)rnd_below(r, 1025);
    }
    if (x < 9990)
        return 1025 + (size_t)rnd_below(r, 53248 - 1025 + 1); /* pool */
    return 53249 + (size_t)rnd_below(r, 384 * 1024 - 53249);  /* large */
}

static void check_block(void *p, size_t size, size_t align, const char *what)
{
    CHECK(p != NULL, "%s(%zu) failed: %s", what, size, strerror(errno));
    size_t need = size <= 8 ? 8 : 16;
    if (align > need)
        need = align;
    CHECK(((uintptr_t)p & (need - 1)) == 0, "%s(%zu, align %zu) = %p misaligned", what,
                  size, align, p);
    size_t us = malloc_usable_size(p);
    CHECK(us >= size, "%s(%zu): malloc_usable_size(%p) = %zu < size", what, size, p, us);
}

/* ------------------------------------------------------------- workers */

struct worker {
    pthread_t th;
    unsigned index;
    unsigned round;
    uint64_t ops;
    uint64_t done;
};

static void *alloc_new(struct rng *r, size_t size, const char **what, size_t *align, bool *zero)
{
    void *p = NULL;
    *align = 0;
    *zero = false;
    uint64_t op = rnd_below(r, 100);
    if (op < 70) {
        *what = "malloc";
        p = malloc(size);
    } else if (op < 82) {
        *what = "calloc";
        *zero = true;
        size_t n = 1, s = size;
        if (size % 4 == 0 && size) {
            n = 4;
            s = size / 4;
        }
        p = calloc(n, s);
    } else if (op < 88) {
        *what = "realloc(NULL)";
        p = realloc(NULL, size);
    } else if (op < 93) {
        *what = "memalign";
        *align = (size_t)16 << rnd_below(r, 9); /* 16 .. 4096 */
        p = memalign(*align, size);
    } else if (op < 98) {
        *what = "posix_memalign";
        *align = (size_t)8 << rnd_below(r, 10); /* 8 .. 4096 */
        int e = posix_memalign(&p, *align, size);
        CHECK(e == 0, "posix_memalign(%zu, %zu) = %d", *align, size, e);
    } else {
        *what = "aligned_alloc";
        *align = (size_t)16 << rnd_below(r, 6); /* 16 .. 512 */
        p = aligned_alloc(*align, size);
    }
    return p;
}

static void op_empty(struct slot *s, struct rng *r, uint64_t id)
{
    size_t size = pick_size(r), align;
    const char *what;
    bool zero;
    void *p = alloc_new(r, size, &what, &align, &zero);
    check_block(p, size, align, what);
    if (zero) {
        const unsigned char *c = p;
        for (size_t i = 0; i < size; i++)
            CHECK(c[i] == 0, "calloc block %p size %zu: byte %zu = %#x", p, size, i, c[i]);
    }
    fill(p, id, size);
    s->id = id;
    s->size = size;
    atomic_store_explicit(&s->p, p, memory_order_release);
}

static void op_full(struct slot *s, void *p, struct rng *r)
{
    uint64_t id = s->id;
    size_t size = s->size;
    verify(p, id, size, size, "before free/realloc (overlap or allocator write?)");
    if (rnd_below(r, 100) < 65) {
        free(p);
        atomic_store_explicit(&s->p, NULL, memory_order_release);
        return;
    }
    /* realloc: grow or shrink, sometimes across tiers */
    size_t ns;
    uint64_t how = rnd_below(r, 4);
    if (how == 0)
        ns = pick_size(r);
    else if (how == 1)
        ns = size + 1 + (size_t)rnd_below(r, size / 2 + 64);
    else if (how == 2)
        ns = size / 2 + (size_t)rnd_below(r, 16);
    else
        ns = size + (size_t)rnd_below(r, 16);
    if (ns == 0)
        ns = 1;
    if (ns > 512 * 1024)
        ns = 512 * 1024;
    void *q = realloc(p, ns);
    check_block(q, ns, 0, "realloc");
    verify(q, id, size, size < ns ? size : ns, "after realloc (prefix not kept)");
    fill(q, id, ns);
    s->size = ns;
    atomic_store_explicit(&s->p, q, memory_order_release);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rng r = {mix64(g_seed * 1000003u + w->round * 131u + w->index)};
    uint64_t next_id = ((uint64_t)(w->round * 64u + w->index) << 40) + 1;
    while (w->done < w->ops) {
        struct slot *s = &g_slots[rnd_below(&r, SLOTS)];
        void *p = atomic_exchange_explicit(&s->p, BUSY, memory_order_acq_rel);
        if (p == BUSY)
            continue; /* another thread holds it */
        if (p == NULL)
            op_empty(s, &r, next_id++);
        else
            op_full(s, p, &r);
        w->done++;
        if ((w->done & 0x3ffff) == 0 && w->index == 0)
            hak_trim(); /* trim while the others allocate */
    }
    return NULL;
}

static void drain_slots(void)
{
    for (unsigned i = 0; i < SLOTS; i++) {
        void *p = atomic_load(&g_slots[i].p);
        CHECK(p != BUSY, "slot %u left busy", i);
        if (p) {
            verify(p, g_slots[i].id, g_slots[i].size, g_slots[i].size, "at the end");
            free(p);
            atomic_store(&g_slots[i].p, NULL);
        }
    }
}

/* ------------------------------------------------------------- tests */

START_TEST(test_stress_model)
{
    struct worker w[64];
    uint64_t per_round = g_ops_total / ROUNDS;
    uint64_t total = 0;
    for (unsigned round = 0; round < ROUNDS; round++) {
        for (unsigned i = 0; i < g_threads; i++) {
            w[i].index = i;
            w[i].round = round;
            w[i].ops = per_round / g_threads + (i == 0 ? per_round % g_threads : 0);
            w[i].done = 0;
            ck_assert_int_eq(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
        }
        for (unsigned i = 0; i < g_threads; i++) {
            ck_assert_int_eq(pthread_join(w[i].th, NULL), 0);
            total += w[i].done;
        }
        if (round == ROUNDS / 2)
            hak_trim(); /* between rounds: nothing runs */
    }
    drain_slots();
    ck_assert_uint_ge(total, per_round * ROUNDS);
    struct hak_stats st;
    hak_stats_get(&st);
    ck_assert_uint_gt(st.tier[HAK_TIER_TINY].allocs, 0);
    ck_assert_uint_gt(st.tier[HAK_TIER_POOL].allocs, 0);
    ck_assert_uint_gt(st.tier[HAK_TIER_LARGE].allocs, 0);
}
END_TEST

/* One block reallocated up and down through every tier, verified each step. */
START_TEST(test_stress_realloc_ladder)
{
    static const size_t sizes[] = {1,      8,      17,     64,     100,   1000,   1024,
                                   1025,   2000,   4096,   8191,   30000, 53248,  53249,
                                   65536,  200000, 1 << 20, 3 << 20, 70000, 53248, 40000,
                                   4096,   1025,   1024,   512,    16,    1,      2 << 20,
                                   1,      4 << 20, 60000, 1500,   600,   33};
    struct rng r = {g_seed};
    for (int rep = 0; rep < 50; rep++) {
        uint64_t id = 1000 + (uint64_t)rep;
        size_t size = sizes[0];
        void *p = malloc(size);
        check_block(p, size, 0, "malloc");
        fill(p, id, size);
        for (size_t i = 1; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t ns = sizes[(i + (size_t)rep) % (sizeof sizes / sizeof sizes[0])];
            if (rnd_below(&r, 4) == 0)
                ns += (size_t)rnd_below(&r, 100);
            void *q = realloc(p, ns);
            check_block(q, ns, 0, "realloc");
            verify(q, id, size, size < ns ? size : ns, "after realloc ladder step");
            fill(q, id, ns);
            p = q;
            size = ns;
        }
        verify(p, id, size, size, "before free");
        free(p);
    }
}
END_TEST

int main(void)
{
    g_ops_total = env_u64("HAKMEM_STRESS_OPS", g_ops_total, ROUNDS, UINT64_MAX / 2);
    g_threads = (unsigned)env_u64("HAKMEM_STRESS_THREADS", g_threads, 1, 64);
    g_seed = env_u64("HAKMEM_STRESS_SEED", g_seed, 0, UINT64_MAX);

    /* Five minutes cover the default ten million operations with a large
     * margin (debug builds, sanitizers, busy machines); longer runs get one
     * more minute per 2 million operations. */
    double timeout = 300;
    if (g_ops_total > 10000000)
        timeout += (double)(g_ops_total - 10000000) / 2000000.0 * 60.0;

    Suite *s = suite_create("stress");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, timeout);
    tcase_add_test(tc, test_stress_model);
    tcase_add_test(tc, test_stress_realloc_ladder);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed)
        fprintf(stderr, "test_stress: HAKMEM_STRESS_OPS=%" PRIu64 " HAKMEM_STRESS_THREADS=%u "
                        "HAKMEM_STRESS_SEED=%" PRIu64 " reproduces this run's inputs\n",
                g_ops_total, g_threads, g_seed);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
