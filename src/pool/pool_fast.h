/*
 * pool_fast.h - the pool tier's inline fast paths, called from api.h's
 * malloc and free: with Pool TLS, malloc pops the thread's cache for the
 * class and free validates the block and pushes it, with no function call
 * on a cache hit.  Without Pool TLS both decline (the shared pool is behind
 * a lock, in pool.c) and the compiler drops them.
 */
#ifndef HAKMEM_POOL_FAST_H
#define HAKMEM_POOL_FAST_H

#include "internal.h"
#include "freelist.h"
#include "lifecycle.h"
#include "pool/pool.h"

#ifdef HAKMEM_POOL_TLS

/* Pops block b, the head of class cls's cache, whose link `next` has been
 * checked: the one pool pop. */
HAK_INLINE void *pool_cache_pop(struct pool_cache *c, unsigned cls, void *b, void *next)
{
    c->head[cls] = next;
    __builtin_prefetch(next, 1); /* as tiny_cache_take's */
    c->count[cls]--;
    hak_block_unmark(b);
    return b;
}

/* Makes class cls's reserve list (old, not empty) its head list (empty):
 * no block moves. */
HAK_INLINE void pool_cache_swap_in(struct pool_cache *c, unsigned cls)
{
    c->head[cls] = c->old[cls];
    c->count[cls] = c->old_count[cls];
    c->old[cls] = NULL;
    c->old_count[cls] = 0;
}

/* malloc of size (HAK_TINY_MAX < size <= HAK_POOL_MAX, class cls) on a cache
 * hit, or NULL: the slow path (pool_alloc) does everything else, and reports a head
 * whose free mark is gone (pool_check_link).  As in the tiny tier, the pop
 * checks the mark of the block it hands out (hak_link_pop_read), which reads
 * nothing but that block: no metadata of the next block, whose page record
 * is a cache miss on every pop of a list that crosses pages. */
HAK_INLINE void *pool_malloc_fast(size_t size, unsigned cls)
{
    (void)size; /* for valgrind builds */
    struct hak_thread *t = &hak_thread;
    void *b = t->pool.head[cls];
    /* An empty head takes the reserve list here, not on the slow path: a
     * class whose count wanders about the batch size swaps lists on every
     * other call (a free fills the head, which becomes the reserve; the
     * next malloc swaps it back), one malloc in eight of
     * bench_random_mixed 1000000 32768 1. */
    if (HAK_UNLIKELY(!b) && (b = t->pool.old[cls]))
        pool_cache_swap_in(&t->pool, cls);
    if (HAK_LIKELY(b)) {
        void *next;
        if (HAK_LIKELY(hak_link_pop_read(b, &next))) {
            pool_cache_pop(&t->pool, cls, b, next);
            t->counters.allocs[HAK_TIER_POOL]++;
            HAK_VG_MALLOC(b, size, 0);
            return b;
        }
    }
    return NULL;
}

/* Pushes block p of class cls onto the thread's cache: the one pool push. */
HAK_INLINE void pool_cache_push(struct hak_thread *t, unsigned cls, void *p)
{
    hak_link_set(p, t->pool.head[cls]);
    t->pool.head[cls] = p;
    if (HAK_UNLIKELY(++t->pool.count[cls] > t->pool.batch[cls]))
        pool_cache_overflow(t, cls);
}

/* free of p, a pointer into a pool chunk: true when done here.  A valid
 * block without the free mark goes onto the caller's cache; anything else
 * (invalid pointers, double frees) is left to hak_free_slow to report. */
HAK_INLINE bool pool_free_fast(void *p)
{
    struct pool_page *pg = pool_page_lookup(p);
    if (HAK_UNLIKELY(!pg || hak_block_marked_free(p)))
        return false;
    struct hak_thread *t = &hak_thread;
    t->counters.frees[HAK_TIER_POOL]++;
    pool_cache_push(t, pg->cls, p);
    return true;
}

/* Whether a pool miss may go straight to pool_alloc (hak_alloc_pool_slow). */
#define POOL_HAS_CACHE 1

#else

HAK_INLINE void *pool_malloc_fast(size_t size, unsigned cls)
{
    (void)size;
    (void)cls;
    return NULL;
}

#define POOL_HAS_CACHE 0

HAK_INLINE bool pool_free_fast(void *p)
{
    (void)p;
    return false;
}

#endif
#endif
