/*
 * test_threads.c - hakmem under concurrency:
 *
 *  - ring: 4 threads allocate blocks of every tier, tag them, and hand them
 *    to the next thread, which verifies and frees them (cross-thread frees);
 *    about 3 million malloc/free operations in all; every block is freed
 *    exactly once and intact (how many frees are remote depends on
 *    scheduling and is only printed);
 *  - owner death: in rounds, threads allocate blocks and exit while other
 *    threads still hold those blocks; later threads verify and free them
 *    (remote frees after the owner died) while new threads allocate and
 *    adopt the abandoned slabs;
 *  - short-lived threads: thousands of threads that each allocate and free a
 *    little and exit; mapped bytes (hak_stats) and RSS must not keep growing;
 *  - remote stacks: blocks freed by another thread come back to their owner
 *    exactly once, whether its refill takes a slab's remote stack whole (onto
 *    an empty free list) or malloc_trim splices it onto a non-empty one;
 *    contents stay intact.
 *
 * Every block carries a tag byte derived from its id in every byte (sampled
 * for big blocks), verified before it is freed.  One block in eight comes
 * from calloc (checked to read zero) and one in eight from posix_memalign
 * (checked for its alignment), so that their fast paths reuse blocks other
 * threads freed.
 */
#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"
#include "test_rng.h"

/* Sizes: mostly tiny, some pool, a few large. */
static size_t pick_size(uint64_t *rng)
{
    uint64_t r = xs(rng);
    unsigned k = (unsigned)(r % 1000);
    r >>= 10;
    if (k < 600)
        return r % 129;                      /* 0 .. 128 */
    if (k < 850)
        return 129 + r % (1024 - 128);       /* .. 1024 */
    if (k < 960)
        return 1025 + r % (8 * 1024);        /* pool, small */
    if (k < 998)
        return 1025 + r % (52 * 1024 - 1024); /* pool, whole range */
    return 53249 + r % (300 * 1024);         /* large */
}

static uint8_t tag_of(uint64_t id)
{
    id *= 0x9E3779B97F4A7C15ull;
    uint8_t t = (uint8_t)(id >> 56);
    return t ? t : 0x5b;
}

/* Writes the tag everywhere (big blocks: first/last 256 bytes, every 64th). */
static void tag_block(unsigned char *p, size_t n, uint64_t id)
{
    uint8_t t = tag_of(id);
    if (n <= 4096) {
        memset(p, t, n);
        return;
    }
    memset(p, t, 256);
    memset(p + n - 256, t, 256);
    for (size_t i = 256; i < n - 256; i += 64)
        p[i] = t;
}

/* Returns 1 if the block still carries its tag. */
static int tag_ok(const unsigned char *p, size_t n, uint64_t id)
{
    uint8_t t = tag_of(id);
    if (n <= 4096) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != t)
                return 0;
        return 1;
    }
    for (size_t i = 0; i < 256; i++)
        if (p[i] != t || p[n - 256 + i] != t)
            return 0;
    for (size_t i = 256; i < n - 256; i += 64)
        if (p[i] != t)
            return 0;
    return 1;
}

struct item {
    unsigned char *p;
    size_t n;
    uint64_t id;
};

static atomic_ulong g_bad;   /* blocks found corrupted */
static atomic_ulong g_nullp; /* allocations that returned NULL */

static void check_and_free(struct item *it)
{
    if (!tag_ok(it->p, it->n, it->id)) {
        if (atomic_fetch_add(&g_bad, 1) < 5)
            fprintf(stderr, "corrupted block %p size %zu id %llx\n", (void *)it->p, it->n,
                    (unsigned long long)it->id);
    }
    free(it->p);
    it->p = NULL;
}

static atomic_ulong g_dirty;      /* calloc'd blocks with a non-zero byte */
static atomic_ulong g_misaligned; /* posix_memalign'd blocks off their alignment */

/* Allocates a block of a random size, one in eight with calloc (checked to
 * read zero: a block freed tagged and popped again must be zeroed) and one
 * in eight with posix_memalign of 32 B .. 4 KiB (checked for alignment). */
static int new_item(struct item *it, uint64_t *rng, uint64_t id)
{
    it->n = pick_size(rng);
    it->id = id;
    uint64_t how = xs(rng);
    size_t align = (size_t)32 << (how >> 8) % 8;
    switch (how % 8) {
    case 0:
        it->p = calloc(1, it->n);
        break;
    case 1:
        if (posix_memalign((void **)&it->p, align, it->n))
            it->p = NULL;
        break;
    default:
        it->p = malloc(it->n);
    }
    if (!it->p) {
        atomic_fetch_add(&g_nullp, 1);
        return 0;
    }
    if (how % 8 == 0) {
        for (size_t i = 0; i < it->n; i++)
            if (it->p[i]) {
                atomic_fetch_add(&g_dirty, 1);
                break;
            }
    } else if (how % 8 == 1 && (uintptr_t)it->p % align) {
        atomic_fetch_add(&g_misaligned, 1);
    }
    tag_block(it->p, it->n, id);
    return 1;
}

/* Every block allocated so far was zeroed or aligned as asked. */
static void require_zeroed_and_aligned(void)
{
    REQUIRE(atomic_load(&g_dirty) == 0, "%lu calloc'd blocks not zeroed",
            atomic_load(&g_dirty));
    REQUIRE(atomic_load(&g_misaligned) == 0, "%lu posix_memalign'd blocks misaligned",
            atomic_load(&g_misaligned));
}

/* ---------------------------------------------------------------- ring */

#define RING_THREADS 4
#define BATCH 64
#define OPS_PER_THREAD 380000 /* allocations per thread; as many frees */
#define QUEUE_MAX 64          /* batches; beyond this the producer frees itself */

struct batch {
    struct batch *next;
    int count;
    struct item items[BATCH];
};

struct queue {
    pthread_mutex_t lock;
    struct batch *head, *tail;
    int len;
};

static struct queue g_q[RING_THREADS];
static pthread_barrier_t g_ring_barrier;
static atomic_ulong g_ring_allocs, g_ring_frees, g_ring_remote;

static int q_push(struct queue *q, struct batch *b)
{
    int ok = 0;
    pthread_mutex_lock(&q->lock);
    if (q->len < QUEUE_MAX) {
        b->next = NULL;
        if (q->tail)
            q->tail->next = b;
        else
            q->head = b;
        q->tail = b;
        q->len++;
        ok = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static struct batch *q_take_all(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    struct batch *b = q->head;
    q->head = q->tail = NULL;
    q->len = 0;
    pthread_mutex_unlock(&q->lock);
    return b;
}

static unsigned long consume(struct queue *q)
{
    unsigned long n = 0;
    struct batch *b = q_take_all(q);
    while (b) {
        struct batch *next = b->next;
        for (int i = 0; i < b->count; i++)
            check_and_free(&b->items[i]);
        n += (unsigned long)b->count;
        free(b); /* the batch itself was allocated by another thread too */
        b = next;
    }
    return n;
}

static void *ring_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t rng = 0x1234567ull * (uint64_t)(t + 1) + 99;
    unsigned long allocs = 0, frees = 0, remote = 0;
    struct batch *b = NULL;
    for (long op = 0; op < OPS_PER_THREAD; op++) {
        if (!b) {
            b = malloc(sizeof *b);
            if (!b) {
                atomic_fetch_add(&g_nullp, 1);
                break;
            }
            b->count = 0;
        }
        if (new_item(&b->items[b->count], &rng, ((uint64_t)t << 40) | (uint64_t)op)) {
            b->count++;
            allocs++;
        }
        if (op % 7 == 3) {
            /* a short-lived local block as well */
            struct item loc;
            if (new_item(&loc, &rng, ((uint64_t)t << 40) | (1ull << 39) | (uint64_t)op)) {
                allocs++;
                check_and_free(&loc);
                frees++;
            }
        }
        if (b->count == BATCH) {
            if (!q_push(&g_q[(t + 1) % RING_THREADS], b)) {
                for (int i = 0; i < b->count; i++)
                    check_and_free(&b->items[i]);
                frees += (unsigned long)b->count;
                free(b);
            }
            b = NULL;
            unsigned long c = consume(&g_q[t]);
            frees += c;
            remote += c;
        }
    }
    if (b) {
        for (int i = 0; i < b->count; i++)
            check_and_free(&b->items[i]);
        frees += (unsigned long)b->count;
        free(b);
    }
    /* everybody has stopped producing: drain what is left for us */
    pthread_barrier_wait(&g_ring_barrier);
    unsigned long c = consume(&g_q[t]);
    frees += c;
    remote += c;
    atomic_fetch_add(&g_ring_allocs, allocs);
    atomic_fetch_add(&g_ring_frees, frees);
    atomic_fetch_add(&g_ring_remote, remote);
    return NULL;
}

START_TEST(test_ring_cross_thread_frees)
{
    pthread_t th[RING_THREADS];
    pthread_barrier_init(&g_ring_barrier, NULL, RING_THREADS);
    for (int i = 0; i < RING_THREADS; i++) {
        pthread_mutex_init(&g_q[i].lock, NULL);
        g_q[i].head = g_q[i].tail = NULL;
        g_q[i].len = 0;
    }
    for (int i = 0; i < RING_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, ring_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < RING_THREADS; i++)
        pthread_join(th[i], NULL);
    unsigned long a = atomic_load(&g_ring_allocs), f = atomic_load(&g_ring_frees);
    unsigned long r = atomic_load(&g_ring_remote);
    printf("ring: %lu allocations, %lu frees (%lu by another thread)\n", a, f, r);
    fflush(stdout);
    REQUIRE(atomic_load(&g_nullp) == 0, "%lu allocations returned NULL",
                  atomic_load(&g_nullp));
    REQUIRE(atomic_load(&g_bad) == 0, "%lu blocks corrupted", atomic_load(&g_bad));
    require_zeroed_and_aligned();
    /* Outcomes only: every block freed exactly once and intact.  How many
     * frees happened to be remote depends on scheduling (printed above). */
    ck_assert_uint_eq(a, f);
    ck_assert_uint_ge(a, (unsigned long)RING_THREADS * OPS_PER_THREAD);
}
END_TEST

/* --------------------------------------------------------- owner death */

#define DEATH_ROUNDS 40
#define DEATH_BLOCKS 3000 /* per allocating thread */

struct death_job {
    struct item *items;
    int count;
    uint64_t seed;
};

static void *death_alloc_thread(void *arg)
{
    struct death_job *j = arg;
    uint64_t rng = j->seed;
    for (int i = 0; i < j->count; i++)
        if (!new_item(&j->items[i], &rng, (j->seed << 20) | (uint64_t)i))
            j->items[i].p = NULL;
    /* free every third one here, so slabs are partly used when we exit */
    for (int i = 0; i < j->count; i += 3)
        if (j->items[i].p)
            check_and_free(&j->items[i]);
    return NULL; /* exits holding nothing: the rest belongs to others now */
}

static void *death_free_thread(void *arg)
{
    struct death_job *j = arg;
    /* free in an order unrelated to allocation */
    for (int pass = 0; pass < 2; pass++)
        for (int i = pass; i < j->count; i += 2)
            if (j->items[i].p)
                check_and_free(&j->items[i]);
    return NULL;
}

START_TEST(test_remote_free_after_owner_death)
{
    /* sets[r % 2] holds the blocks of round r's (dead) allocators */
    struct death_job jobs[2][2];
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            jobs[s][k].items = calloc(DEATH_BLOCKS, sizeof(struct item));
            ck_assert_ptr_nonnull(jobs[s][k].items);
            jobs[s][k].count = DEATH_BLOCKS;
        }
    for (int r = 0; r < DEATH_ROUNDS; r++) {
        int cur = r % 2, prev = 1 - cur;
        pthread_t al[2], fr[2];
        /* new allocators for this round, and freers of the previous round's
         * blocks, whose owners have exited; all running at once */
        for (int k = 0; k < 2; k++) {
            jobs[cur][k].seed = (uint64_t)(r * 2 + k + 1);
            ck_assert_int_eq(pthread_create(&al[k], NULL, death_alloc_thread, &jobs[cur][k]), 0);
            if (r > 0)
                ck_assert_int_eq(pthread_create(&fr[k], NULL, death_free_thread, &jobs[prev][k]),
                                 0);
        }
        for (int k = 0; k < 2; k++) {
            pthread_join(al[k], NULL);
            if (r > 0)
                pthread_join(fr[k], NULL);
        }
        /* the owners of jobs[cur] are dead; their blocks must be intact */
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < DEATH_BLOCKS; i++) {
                struct item *it = &jobs[cur][k].items[i];
                if (it->p)
                    REQUIRE(tag_ok(it->p, it->n, it->id),
                                  "round %d: block %p (%zu B) of an exited thread corrupted", r,
                                  (void *)it->p, it->n);
            }
        /* main thread frees some of them too (another remote free) */
        for (int i = 1; i < DEATH_BLOCKS; i += 5)
            if (jobs[cur][0].items[i].p)
                check_and_free(&jobs[cur][0].items[i]);
    }
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            for (int i = 0; i < DEATH_BLOCKS; i++)
                if (jobs[s][k].items[i].p)
                    check_and_free(&jobs[s][k].items[i]);
            free(jobs[s][k].items);
        }
    REQUIRE(atomic_load(&g_nullp) == 0, "%lu allocations returned NULL",
                  atomic_load(&g_nullp));
    REQUIRE(atomic_load(&g_bad) == 0, "%lu blocks corrupted", atomic_load(&g_bad));
    require_zeroed_and_aligned();
}
END_TEST

/* --------------------------------------------------- short-lived threads */

#ifndef SHORT_THREADS
#define SHORT_THREADS 2400
#endif
#define SHORT_CONCURRENT 8
#define SHORT_BLOCKS 120

static struct item g_handed[SHORT_CONCURRENT][2];

static void *short_thread(void *arg)
{
    int slot = (int)((intptr_t)arg % SHORT_CONCURRENT);
    uint64_t rng = (uint64_t)(intptr_t)arg * 2654435761u + 1;
    struct item it[SHORT_BLOCKS];
    for (int i = 0; i < SHORT_BLOCKS; i++)
        if (!new_item(&it[i], &rng, ((uint64_t)(intptr_t)arg << 16) | (uint64_t)i))
            it[i].p = NULL;
    /* hand two blocks to the main thread, free the rest */
    g_handed[slot][0] = it[0];
    g_handed[slot][1] = it[SHORT_BLOCKS / 2];
    for (int i = 1; i < SHORT_BLOCKS; i++)
        if (i != SHORT_BLOCKS / 2 && it[i].p)
            check_and_free(&it[i]);
    return NULL;
}

static void run_short_threads(int first, int count)
{
    for (int base = first; base < first + count; base += SHORT_CONCURRENT) {
        pthread_t th[SHORT_CONCURRENT];
        for (int k = 0; k < SHORT_CONCURRENT; k++)
            ck_assert_int_eq(
                pthread_create(&th[k], NULL, short_thread, (void *)(intptr_t)(base + k)), 0);
        for (int k = 0; k < SHORT_CONCURRENT; k++)
            pthread_join(th[k], NULL);
        for (int k = 0; k < SHORT_CONCURRENT; k++)
            for (int m = 0; m < 2; m++)
                if (g_handed[k][m].p)
                    check_and_free(&g_handed[k][m]);
    }
}

static uint64_t mapped_total(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    uint64_t m = 0;
    for (int t = 0; t < HAK_TIER_COUNT; t++)
        m += s.tier[t].mapped_bytes;
    return m;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

START_TEST(test_short_lived_threads_bounded)
{
    /* warm up, so caches and arenas of the first threads exist */
    run_short_threads(0, 200);
    uint64_t m0 = mapped_total(), r0 = rss_bytes();
    run_short_threads(200, SHORT_THREADS);
    uint64_t m1 = mapped_total(), r1 = rss_bytes();
    printf("short-lived threads: mapped %llu -> %llu KiB, RSS %llu -> %llu KiB\n",
           (unsigned long long)(m0 >> 10), (unsigned long long)(m1 >> 10),
           (unsigned long long)(r0 >> 10), (unsigned long long)(r1 >> 10));
    fflush(stdout);
    REQUIRE(atomic_load(&g_nullp) == 0, "%lu allocations returned NULL",
                  atomic_load(&g_nullp));
    REQUIRE(atomic_load(&g_bad) == 0, "%lu blocks corrupted", atomic_load(&g_bad));
    require_zeroed_and_aligned();
    /* generous: a leak of a 2 MiB arena (or 32 KiB) per thread is far above */
    REQUIRE(m1 <= m0 + 64 * MiB, "mapped bytes grew from %llu to %llu over %d threads",
                  (unsigned long long)m0, (unsigned long long)m1, SHORT_THREADS);
    REQUIRE(r1 <= r0 + 64 * MiB, "RSS grew from %llu to %llu over %d threads",
                  (unsigned long long)r0, (unsigned long long)r1, SHORT_THREADS);
}
END_TEST

/* ------------------------------------------------ exact tiny counters */

/* The tiny tier counts nothing on malloc's fast path and derives its
 * allocations from the cache (tiny_cache_net); hak_stats_get must still be
 * exact.  Between two snapshots, with no other thread running and no Check
 * call (which allocates), the counts must grow by exactly what was done:
 * fast pops and pushes, refills, cache growth and overflow (more blocks than
 * any cache holds), aligned requests (the slow path), remote frees. */
#define EXACT_BLOCKS 30000
static void *g_exact[EXACT_BLOCKS];

static void exact_tier_delta(int tier, const struct hak_stats *a, const struct hak_stats *b,
                             uint64_t allocs, uint64_t frees, const char *what)
{
    uint64_t da = b->tier[tier].allocs - a->tier[tier].allocs;
    uint64_t df = b->tier[tier].frees - a->tier[tier].frees;
    REQUIRE(da == allocs && df == frees,
            "%s: tier %d allocs grew by %llu (want %llu), frees by %llu (want %llu)", what, tier,
            (unsigned long long)da, (unsigned long long)allocs, (unsigned long long)df,
            (unsigned long long)frees);
}

static void exact_delta(const struct hak_stats *a, const struct hak_stats *b, uint64_t allocs,
                        uint64_t frees, const char *what)
{
    exact_tier_delta(HAK_TIER_TINY, a, b, allocs, frees, what);
}

/* Another thread's frees of the even-numbered blocks, between two snapshots
 * of the statistics (st). */
struct exact_remote {
    void **blocks;
    int n;
    size_t warm; /* a size of the tier, for the thread's own first block */
    struct hak_stats st[2];
};

static void *exact_remote_thread(void *arg)
{
    struct exact_remote *r = arg;
    free(malloc(r->warm)); /* a thread with a cache of its own: its counters */
    hak_stats_get(&r->st[0]);
    for (int i = 0; i < r->n; i += 2)
        free(r->blocks[i]);
    hak_stats_get(&r->st[1]);
    return NULL;
}

START_TEST(test_tiny_counters_exact)
{
    struct hak_stats a, b;
    struct exact_remote r = {.blocks = g_exact, .n = EXACT_BLOCKS, .warm = 16};
    int nulls = 0;
    hak_stats_get(&a);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < EXACT_BLOCKS; i++) {
            size_t size = 16 + (size_t)(i % 7) * 40;
            g_exact[i] = i % 97 == 0 ? hak_memalign(64, size) : malloc(size);
            nulls += g_exact[i] == NULL;
        }
        for (int i = EXACT_BLOCKS - 1; i >= 0; i--)
            free(g_exact[i]);
    }
    for (int i = 0; i < EXACT_BLOCKS; i++) {
        g_exact[i] = malloc(32 + (size_t)(i % 3) * 16);
        nulls += g_exact[i] == NULL;
    }
    hak_stats_get(&b);
    ck_assert_int_eq(nulls, 0);
    exact_delta(&a, &b, 4 * EXACT_BLOCKS, 3 * EXACT_BLOCKS, "one thread");

    /* No Check call until the thread is joined: Check allocates, and a
     * ck_assert around pthread_create ran in this thread while the new one
     * was between its snapshots (2 allocations too many, now and then, where
     * the new thread got a core first). */
    pthread_t th;
    int rc = pthread_create(&th, NULL, exact_remote_thread, &r);
    if (rc == 0)
        pthread_join(th, NULL);
    ck_assert_int_eq(rc, 0);
    exact_delta(&r.st[0], &r.st[1], 0, EXACT_BLOCKS / 2, "remote frees");

    hak_stats_get(&a);
    for (int i = 1; i < EXACT_BLOCKS; i += 2)
        free(g_exact[i]);
    hak_stats_get(&b);
    exact_delta(&a, &b, 0, EXACT_BLOCKS / 2, "local frees after remote ones");
}
END_TEST

/* --------------------------------- a full tiny cache returning in part */

/* Frees of one tiny class beyond what a thread's cache and its transfer
 * stack hold (for 1 KiB blocks, about 1,200) go back to their slabs a few at
 * a time, the newest, while the older blocks stay cached
 * (tiny_cache_overflow).  Two classes interleaved, every third block kept
 * live: the counts stay exact, the kept blocks intact, and the blocks handed
 * out again are distinct and overlap no live block. */
#define PART_BLOCKS 12000
static void *g_part[PART_BLOCKS];
static int g_part_order[PART_BLOCKS];

static size_t part_size(int i)
{
    return i & 1 ? 1000 : 880; /* classes 1024 and 896 */
}

static int cmp_part_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)g_part[*(const int *)a], y = (uintptr_t)g_part[*(const int *)b];
    return x < y ? -1 : x > y;
}

/* Block i holds byte (i * 7 + round) & 0xff from end to end. */
static int part_intact(int i, int round)
{
    const unsigned char *c = g_part[i];
    unsigned char want = (unsigned char)(i * 7 + round);
    for (size_t k = 0; k < part_size(i); k++)
        if (c[k] != want)
            return 0;
    return 1;
}

START_TEST(test_tiny_return_in_part)
{
    struct hak_stats a, b;
    int nulls = 0, freed = 0;
    hak_stats_get(&a);
    for (int i = 0; i < PART_BLOCKS; i++) {
        g_part[i] = malloc(part_size(i));
        nulls += g_part[i] == NULL;
        if (g_part[i])
            memset(g_part[i], (i * 7) & 0xff, part_size(i));
    }
    REQUIRE(nulls == 0, "%d allocations returned NULL", nulls);
    for (int i = 0; i < PART_BLOCKS; i++)
        if (i % 3) {
            free(g_part[i]);
            freed++;
        }
    for (int i = 0; i < PART_BLOCKS; i++)
        if (i % 3) {
            g_part[i] = malloc(part_size(i));
            nulls += g_part[i] == NULL;
            if (g_part[i])
                memset(g_part[i], (i * 7 + 1) & 0xff, part_size(i));
        }
    hak_stats_get(&b);
    REQUIRE(nulls == 0, "%d allocations returned NULL", nulls);
    exact_delta(&a, &b, (uint64_t)(PART_BLOCKS + freed), (uint64_t)freed, "returns in part");

    int bad = -1;
    for (int i = 0; i < PART_BLOCKS && bad < 0; i++)
        if (!part_intact(i, i % 3 != 0))
            bad = i;
    REQUIRE(bad < 0, "block %d changed while live", bad);
    for (int i = 0; i < PART_BLOCKS; i++)
        g_part_order[i] = i;
    qsort(g_part_order, PART_BLOCKS, sizeof g_part_order[0], cmp_part_addr);
    for (int k = 1; k < PART_BLOCKS && bad < 0; k++) {
        int lo = g_part_order[k - 1];
        if ((uintptr_t)g_part[lo] + part_size(lo) > (uintptr_t)g_part[g_part_order[k]])
            bad = lo;
    }
    REQUIRE(bad < 0, "block %d overlaps the next one up", bad);
    for (int i = 0; i < PART_BLOCKS; i++)
        free(g_part[i]);
}
END_TEST

/* ------------------------------------------------ exact pool counters */

/* With Pool TLS the pool tier counts nothing on malloc's fast path either
 * (pool_cache_net); the same exactness, over pops and pushes, refills from
 * the shared side, overflows (more bytes than a thread's pool cache holds),
 * batches that grow, aligned requests and frees by another thread (which go
 * to that thread's cache and are counted there). */
#define EXACT_POOL_BLOCKS 2000
static void *g_exact_pool[EXACT_POOL_BLOCKS];

START_TEST(test_pool_counters_exact)
{
    struct hak_stats a, b;
    struct exact_remote r = {.blocks = g_exact_pool, .n = EXACT_POOL_BLOCKS, .warm = 2000};
    int nulls = 0;
    hak_stats_get(&a);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < EXACT_POOL_BLOCKS; i++) {
            size_t size = 1100 + (size_t)(i % 9) * 1500;
            g_exact_pool[i] = i % 97 == 0 ? hak_memalign(4096, size) : malloc(size);
            nulls += g_exact_pool[i] == NULL;
        }
        /* both orders: LIFO frees refill the lists malloc pops next */
        for (int j = 0; j < EXACT_POOL_BLOCKS; j++)
            free(g_exact_pool[round == 1 ? j : EXACT_POOL_BLOCKS - 1 - j]);
    }
    for (int i = 0; i < EXACT_POOL_BLOCKS; i++) {
        g_exact_pool[i] = malloc(2048 + (size_t)(i % 3) * 256);
        nulls += g_exact_pool[i] == NULL;
    }
    hak_stats_get(&b);
    ck_assert_int_eq(nulls, 0);
    exact_tier_delta(HAK_TIER_POOL, &a, &b, 4 * EXACT_POOL_BLOCKS, 3 * EXACT_POOL_BLOCKS,
                     "pool, one thread");

    pthread_t th;
    int rc = pthread_create(&th, NULL, exact_remote_thread, &r);
    if (rc == 0)
        pthread_join(th, NULL);
    ck_assert_int_eq(rc, 0);
    exact_tier_delta(HAK_TIER_POOL, &r.st[0], &r.st[1], 0, EXACT_POOL_BLOCKS / 2,
                     "pool, another thread's frees");

    hak_stats_get(&a);
    for (int i = 1; i < EXACT_POOL_BLOCKS; i += 2)
        free(g_exact_pool[i]);
    hak_stats_get(&b);
    exact_tier_delta(HAK_TIER_POOL, &a, &b, 0, EXACT_POOL_BLOCKS / 2,
                     "pool, local frees after another thread's");
}
END_TEST

/* ------------------------------------------------------- remote stacks */

#define REMOTE_BLOCKS 20000
#define REMOTE_SIZE 48
static void *g_remote_blocks[REMOTE_BLOCKS];

/* Frees the odd-numbered blocks: remote frees onto the owner's slabs. */
static void *remote_odd_freer(void *arg)
{
    (void)arg;
    for (int i = 1; i < REMOTE_BLOCKS; i += 2)
        free(g_remote_blocks[i]);
    return NULL;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* All REMOTE_BLOCKS pointers distinct and none overlapping another. */
static int remote_blocks_distinct(void)
{
    static uintptr_t sorted[REMOTE_BLOCKS];
    for (int i = 0; i < REMOTE_BLOCKS; i++)
        sorted[i] = (uintptr_t)g_remote_blocks[i];
    qsort(sorted, REMOTE_BLOCKS, sizeof sorted[0], cmp_ptr);
    for (int i = 1; i < REMOTE_BLOCKS; i++)
        if (sorted[i] - sorted[i - 1] < REMOTE_SIZE)
            return 0;
    return 1;
}

START_TEST(test_remote_stacks_exact)
{
    for (int round = 0; round < 2; round++) {
        int nulls = 0;
        for (int i = 0; i < REMOTE_BLOCKS; i++) {
            g_remote_blocks[i] = malloc(REMOTE_SIZE);
            nulls += g_remote_blocks[i] == NULL;
            if (g_remote_blocks[i])
                memset(g_remote_blocks[i], 0x5a, REMOTE_SIZE);
        }
        REQUIRE(nulls == 0, "%d allocations returned NULL", nulls);
        /* the even ones here: they wait in this thread's cache */
        for (int i = 0; i < REMOTE_BLOCKS; i += 2)
            free(g_remote_blocks[i]);
        pthread_t th;
        int rc = pthread_create(&th, NULL, remote_odd_freer, NULL);
        if (rc == 0)
            pthread_join(th, NULL);
        REQUIRE(rc == 0, "pthread_create: %d", rc);
        /* Round 0: the refills take the remote stacks whole (the even
         * blocks are still cached, the slabs' free lists empty).  Round 1:
         * malloc_trim first returns the cache to the slabs, then splices the
         * remote stacks onto those non-empty free lists (the walk). */
        if (round == 1)
            malloc_trim(0);
        for (int i = 0; i < REMOTE_BLOCKS; i++) {
            g_remote_blocks[i] = malloc(REMOTE_SIZE);
            REQUIRE(g_remote_blocks[i] != NULL, "malloc(%d) returned NULL", REMOTE_SIZE);
            memset(g_remote_blocks[i], (int)(i & 0xff), REMOTE_SIZE);
        }
        REQUIRE(remote_blocks_distinct(), "round %d: a block was handed out twice", round);
        for (int i = 0; i < REMOTE_BLOCKS; i++) {
            const unsigned char *c = g_remote_blocks[i];
            REQUIRE(c[0] == (i & 0xff) && c[REMOTE_SIZE - 1] == (i & 0xff),
                    "round %d: block %d changed while live", round, i);
        }
        for (int i = 0; i < REMOTE_BLOCKS; i++)
            free(g_remote_blocks[i]);
    }
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ring_cross_thread_frees);
    tcase_add_test(tc, test_remote_free_after_owner_death);
    tcase_add_test(tc, test_short_lived_threads_bounded);
    tcase_add_test(tc, test_tiny_counters_exact);
    tcase_add_test(tc, test_tiny_return_in_part);
    tcase_add_test(tc, test_pool_counters_exact);
    tcase_add_test(tc, test_remote_stacks_exact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(threads_suite());
}
