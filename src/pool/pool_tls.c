/*
 * pool_tls.c - the pool tier's per-thread caches and arenas.
 *
 * malloc pops the thread's cache for the class; a miss takes half a cache of
 * blocks from the shared lists in one locked step (the first one pre-warms the
 * cache), carving new pages from the thread's arena chunk without the chunk
 * lock.  free pushes any pool block onto the caller's cache, whoever
 * allocated it; past the cap half the cache goes back in one locked step.
 */
#include "pool/pool_tls.h"
#include "freelist.h"
#include "lifecycle.h"
#include "options.h"

static void *shared_alloc(unsigned cls)
{
    void *b = NULL;
    pool_central_take(cls, 1, &b, NULL);
    if (b)
        hak_block_unmark(b);
    return b;
}

void *pool_alloc(unsigned cls)
{
    struct hak_thread *t = &hak_thread;
    if (HAK_UNLIKELY(t->state != HAK_THREAD_ACTIVE)) {
        hak_thread_activate();
        if (t->state != HAK_THREAD_ACTIVE)
            return shared_alloc(cls);
    }
    struct pool_cache *c = &t->pool;
    void *b = c->head[cls];
    if (HAK_UNLIKELY(!b)) {
        uint32_t n = pool_central_take(cls, pool_cache_cap(cls) / 2, &b, &c->arena);
        if (!b)
            return NULL;
        c->count[cls] = n;
        if (hak_opt.pool_trace)
            hak_warn("pool: refill class=%u blocks=%u", cls, n);
    }
    void *next = hak_link_get(b);
    pool_check_link(next, cls);
    c->head[cls] = next;
    c->count[cls]--;
    hak_block_unmark(b);
    return b;
}

/* Gives the first `n` blocks of the class's cache back to the shared lists. */
static void cache_flush(struct pool_cache *c, unsigned cls, uint32_t n)
{
    if (hak_opt.pool_trace)
        hak_warn("pool: flush class=%u blocks=%u", cls, n);
    void *list = c->head[cls];
    void *b = list;
    for (uint32_t k = 1; k < n; k++)
        b = hak_link_get(b);
    c->head[cls] = hak_link_get(b);
    c->count[cls] -= n;
    pool_central_put(cls, list, n);
}

void pool_free(void *p, const char *func)
{
    struct pool_page *pg = pool_page_of(p, func);
    unsigned cls = pg->cls;
    if (HAK_UNLIKELY(hak_block_marked_free(p)))
        hak_fatal_ptr(func, "double free", p);
    struct hak_thread *t = &hak_thread;
    struct pool_cache *c = &t->pool;
    if (HAK_UNLIKELY(t->state != HAK_THREAD_ACTIVE)) {
        hak_link_set(p, NULL);
        pool_central_put(cls, p, 1);
        return;
    }
    hak_link_set(p, c->head[cls]);
    c->head[cls] = p;
    if (HAK_UNLIKELY(++c->count[cls] > pool_cache_cap(cls)))
        cache_flush(c, cls, c->count[cls] / 2);
}

void pool_tls_thread_exit(struct pool_cache *c)
{
    for (unsigned cls = 0; cls < POOL_NUM_CLASSES; cls++)
        if (c->count[cls])
            cache_flush(c, cls, c->count[cls]);
    c->arena = NULL;
}
