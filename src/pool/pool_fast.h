/*
 * pool_fast.h - the pool tier's inline fast path of free, called from
 * api.h (malloc's pop is the one of fast.h, for both tiers), and the
 * helpers of its caches' counts: with Pool TLS, free validates the block and
 * pushes it, with no function call on a cache hit.  Without Pool TLS it
 * declines (the shared pool is behind a lock, in pool.c) and the compiler
 * drops it.
 */
#ifndef HAKMEM_POOL_FAST_H
#define HAKMEM_POOL_FAST_H

#include "internal.h"
#include "freelist.h"
#include "lifecycle.h"
#include "pool/pool.h"

#ifdef HAKMEM_POOL_TLS

/* The fast class of pool class cls. */
#define POOL_FAST(cls) (HAK_FAST_POOL + (cls))

/* The thread whose struct hak_thread holds pool cache c. */
HAK_INLINE struct hak_thread *pool_cache_thread(struct pool_cache *c)
{
    return (struct hak_thread *)((char *)c - offsetof(struct hak_thread, pool));
}

/* Blocks on class cls's head list. */
HAK_INLINE uint32_t pool_cache_count(const struct hak_thread *t, unsigned cls)
{
    return (uint32_t)((int32_t)t->pool.batch[cls] - t->fast.room[POOL_FAST(cls)]);
}

/* Makes `head`, n blocks, class cls's head list, on a slow path (see
 * room_base). */
HAK_INLINE void pool_cache_set(struct hak_thread *t, unsigned cls, void *head, uint32_t n)
{
    int32_t room = (int32_t)t->pool.batch[cls] - (int32_t)n;
    t->fast.head[POOL_FAST(cls)] = head;
    t->pool.room_base += room - t->fast.room[POOL_FAST(cls)];
    t->fast.room[POOL_FAST(cls)] = room;
}

/* The net of the pool classes' fast pops and counted frees (see room_base):
 * the thread's pool allocations are its counted ones plus its counted pool
 * frees plus this (stats.c). */
HAK_INLINE int64_t pool_cache_net(const struct hak_thread *t)
{
    int64_t sum = 0;
    for (unsigned i = 0; i < POOL_NUM_CLASSES; i++)
        sum += __atomic_load_n(&t->fast.room[POOL_FAST(i)], __ATOMIC_RELAXED);
    return sum - __atomic_load_n(&t->pool.room_base, __ATOMIC_RELAXED);
}

/* Pushes block p of class cls onto the thread's cache: the one pool push.
 * (The pop is malloc's, hak_fast_take, for both tiers.) */
HAK_INLINE void pool_cache_push(struct hak_thread *t, unsigned cls, void *p)
{
    hak_link_set(p, t->fast.head[POOL_FAST(cls)]);
    t->fast.head[POOL_FAST(cls)] = p;
    if (HAK_UNLIKELY(--t->fast.room[POOL_FAST(cls)] < 0))
        pool_cache_overflow(t, cls);
}

/* free of p, a pointer into a run area: true when done here.  A valid pool
 * block without the free mark goes onto the caller's cache; anything else
 * (large blocks, invalid pointers, double frees) is left to hak_free_slow. */
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

/* Whether a pool miss may go straight to pool_alloc (hak_alloc_fast_miss). */
#define POOL_HAS_CACHE 1

#else

#define POOL_HAS_CACHE 0

HAK_INLINE bool pool_free_fast(void *p)
{
    (void)p;
    return false;
}

#endif
#endif
