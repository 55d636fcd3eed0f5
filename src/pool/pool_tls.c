/*
 * pool_tls.c - the pool tier's per-thread caches, off the inline fast paths
 * of pool_fast.h: the refill and overflow steps that move whole lists
 * between a thread's cache and the shared side (see pool_tls.h), the full
 * link check, and thread exit.
 */
#include "pool/pool_tls.h"
#include "pool/pool_fast.h"
#include "freelist.h"
#include "lifecycle.h"
#include "options.h"
#include "purge.h"

#include <string.h>

/* Sets class cls's batch size to b, within the thread's budget: a cache
 * holds at most two batches per class, and the batches of all classes
 * together stay under POOL_CACHE_BYTES / 2. */
static void batch_set(struct pool_cache *c, unsigned cls, uint32_t b)
{
    size_t stride = pool_class_size[cls];
    size_t others = c->batch_bytes - (size_t)c->batch[cls] * stride;
    if (b > POOL_BATCH_MIN && others + (size_t)b * stride > POOL_CACHE_BYTES / 2)
        return;
    c->batch_bytes = others + (size_t)b * stride;
    /* The head list keeps its blocks: its room moves with the batch. */
    struct hak_thread *t = pool_cache_thread(c);
    int32_t grow = (int32_t)b - (int32_t)c->batch[cls];
    t->fast.room[POOL_FAST(cls)] += grow;
    c->room_base += grow;
    c->batch[cls] = b;
}

/* The thread goes to the shared side for class cls: its batches grow. */
static void batch_grow(struct pool_cache *c, unsigned cls)
{
    uint32_t b = c->batch[cls] * 2;
    batch_set(c, cls, b < pool_class_batch_max[cls] ? b : pool_class_batch_max[cls]);
}

static void batch_start(struct pool_cache *c, unsigned cls)
{
    if (!c->batch[cls])
        batch_set(c, cls, POOL_BATCH_MIN);
}

/* Refills the empty head list of class cls: the reserve list (no block
 * moves), else a whole list from the shared side.  Returns the new head
 * (NULL: out of memory). */
static void *cache_refill(struct pool_cache *c, unsigned cls)
{
    struct hak_thread *t = pool_cache_thread(c);
    void *list = c->old[cls];
    if (list) {
        pool_cache_set(t, cls, list, c->old_count[cls]);
        c->old[cls] = NULL;
        c->old_count[cls] = 0;
        return list;
    }
    if (c->batch[cls])
        batch_grow(c, cls);
    else
        batch_start(c, cls);
    uint32_t n = pool_central_take(cls, c->batch[cls], &list);
    pool_cache_set(t, cls, list, n);
    if (hak_opt.pool_trace)
        hak_warn("pool: refill class=%u blocks=%u", cls, n);
    hak_purge_tick();
    return list;
}

void *pool_alloc(unsigned cls)
{
    struct hak_thread *t = &hak_thread;
    if (HAK_UNLIKELY(t->state != HAK_THREAD_ACTIVE)) {
        hak_thread_activate();
        if (t->state != HAK_THREAD_ACTIVE)
            return pool_shared_alloc(cls);
    }
    struct pool_cache *c = &t->pool;
    void *b = t->fast.head[POOL_FAST(cls)];
    /* A list fresh from the shared side gets the full link check; the
     * reserve list, built by this thread's own pushes, the check of the
     * block's mark that every pop gives the block it hands out: the full
     * check reads the next block's page record and words, two cache
     * misses. */
    bool shared = false;
    if (!b) {
        shared = !c->old[cls];
        if (!(b = cache_refill(c, cls)))
            return NULL;
    }
    void *next;
    if (HAK_UNLIKELY(!hak_link_read(b, &next)))
        hak_fatal("malloc(): corrupted free list (link to %p)", next);
    if (shared)
        pool_check_link(b, next, cls);
    c->room_base++; /* not a fast pop: counted by the caller */
    return hak_fast_take(&t->fast, POOL_FAST(cls), b, next);
}

/* Gives class cls's head list to the shared side. */
static void head_flush(struct pool_cache *c, unsigned cls)
{
    struct hak_thread *t = pool_cache_thread(c);
    void *list = t->fast.head[POOL_FAST(cls)];
    uint32_t n = pool_cache_count(t, cls);
    pool_cache_set(t, cls, NULL, 0);
    if (list)
        pool_central_put(cls, list, n);
}

/* Reached from pool_free_fast, or pool_free on an active thread: only the
 * fast path pushes for a thread that is not active (its cache is all zero, or
 * was emptied at exit, so the batch is 0). */
void pool_cache_overflow(struct hak_thread *t, unsigned cls)
{
    struct pool_cache *c = &t->pool;
    if (HAK_UNLIKELY(t->state != HAK_THREAD_ACTIVE)) {
        if (t->state == HAK_THREAD_NEW)
            hak_thread_activate();
        if (t->state != HAK_THREAD_ACTIVE) {
            /* exited (or no memory for thread state): no cache any more, and
             * the free counts where threads without state count */
            t->counters.frees[HAK_TIER_POOL]--;
            hak_stats_count_global(HAK_TIER_POOL, false);
            head_flush(c, cls);
            return;
        }
    }
    batch_start(c, cls);
    /* The head list overflows when a push finds it full, as a magazine
     * does (Bonwick and Adams 2001): the block just pushed stays as the
     * head, and the full list under it becomes the reserve.  Moving the
     * whole list once it was merely full made a loop that allocates and
     * frees one block swap it out here and back in (malloc's fast path) on
     * every call whenever a refill or the reserve had left the head at a
     * full batch: 150 instructions per malloc(2048)+free instead of 103. */
    uint32_t n = pool_cache_count(t, cls);
    if (n <= c->batch[cls])
        return;
    if (hak_opt.pool_trace)
        hak_warn("pool: flush class=%u blocks=%u", cls, c->old_count[cls]);
    if (c->old[cls]) {
        pool_central_put(cls, c->old[cls], c->old_count[cls]);
        batch_grow(c, cls);
        hak_purge_tick();
    }
    void *top = t->fast.head[POOL_FAST(cls)];
    c->old[cls] = hak_link_get(top); /* the link this thread's push just wrote */
    c->old_count[cls] = n - 1;
    hak_link_set(top, NULL);
    pool_cache_set(t, cls, top, 1);
}

void pool_free(void *p, const char *func)
{
    struct pool_page *pg = pool_page_of(p, func);
    if (HAK_UNLIKELY(hak_block_marked_free(p)))
        hak_fatal_ptr(func, "double free", p);
    struct hak_thread *t = &hak_thread;
    if (HAK_UNLIKELY(t->state != HAK_THREAD_ACTIVE)) {
        hak_link_set(p, NULL);
        pool_central_put(pg->cls, p, 1);
        return;
    }
    pool_cache_push(t, pg->cls, p);
}

/* Gives every list of cache c to the shared side. */
static void cache_empty(struct pool_cache *c)
{
    for (unsigned cls = 0; cls < POOL_NUM_CLASSES; cls++) {
        head_flush(c, cls);
        if (c->old[cls])
            pool_central_put(cls, c->old[cls], c->old_count[cls]);
        c->old[cls] = NULL;
        c->old_count[cls] = 0;
    }
}

void pool_tls_trim(void)
{
    struct hak_thread *t = &hak_thread;
    if (t->state == HAK_THREAD_ACTIVE)
        cache_empty(&t->pool);
}

void pool_tls_thread_orphan(struct pool_cache *c)
{
    /* Dropped, not walked: see pool_tls.h.  The counts stay, for the
     * thread's statistics (pool_cache_net). */
    struct hak_thread *t = pool_cache_thread(c);
    int64_t room_base = c->room_base;
    memset(c, 0, sizeof(*c));
    c->room_base = room_base;
    for (unsigned cls = 0; cls < POOL_NUM_CLASSES; cls++)
        t->fast.head[POOL_FAST(cls)] = NULL;
}

void pool_tls_thread_exit(struct pool_cache *c)
{
    cache_empty(c);
    for (unsigned cls = 0; cls < POOL_NUM_CLASSES; cls++) {
        c->batch[cls] = 0;
        pool_cache_set(pool_cache_thread(c), cls, NULL, 0);
    }
    c->batch_bytes = 0;
}
