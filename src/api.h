/*
 * api.h - the bodies of malloc and free, inline, so that both the hak_* API
 * (hakmem.c) and the overriding libc symbols (override.c) get the fast paths
 * without a call in between.  Everything off the fast path is in hakmem.c.
 */
#ifndef HAKMEM_API_H
#define HAKMEM_API_H

#include "internal.h"
#include "freelist.h"
#include "lifecycle.h"
#include "registry.h"
#include "tiny/tiny.h"
#include "pool/pool_fast.h"

/* Slow paths (hakmem.c): everything the inline fast paths do not finish.
 * hak_free_slow does the whole of free() for any pointer, with every check. */
HAK_HIDDEN void *hak_alloc_slow(size_t size);
HAK_HIDDEN void hak_free_slow(void *p);
HAK_HIDDEN void *hak_impl_calloc(size_t n, size_t size);
HAK_HIDDEN void *hak_impl_realloc(void *p, size_t size);
HAK_HIDDEN void *hak_impl_reallocarray(void *p, size_t n, size_t size);
HAK_HIDDEN int hak_impl_posix_memalign(void **out, size_t align, size_t size);
HAK_HIDDEN void *hak_impl_aligned_alloc(size_t align, size_t size);
HAK_HIDDEN void *hak_impl_memalign(size_t align, size_t size);
HAK_HIDDEN void *hak_impl_valloc(size_t size);
HAK_HIDDEN void *hak_impl_pvalloc(size_t size);
HAK_HIDDEN size_t hak_impl_usable_size(void *p);

/* Whether a decoded cache link can be followed without a full check: it
 * stays in the same 64 KiB slab as the block it came from and is aligned
 * (the common case: blocks carved in a row).  Otherwise tiny_check_link
 * decides, so a corrupted link aborts instead of handing out foreign memory. */
HAK_INLINE bool tiny_link_is_near(const void *b, const void *next)
{
    return !((((uintptr_t)next ^ (uintptr_t)b) >> TINY_SLAB_SHIFT) |
             ((uintptr_t)next & (HAK_ALIGN - 1)));
}

/* Pops block b, the head of the cache list of class cls, checking its link. */
HAK_INLINE void *tiny_cache_pop(struct tiny_cache *c, unsigned cls, void *b)
{
    void *next = hak_link_get(b);
    if (HAK_UNLIKELY(!tiny_link_is_near(b, next)))
        tiny_check_link(next, cls);
    c->head[cls] = next;
    c->count[cls]--;
    hak_block_unmark(b);
    return b;
}

/* Pushes block p of slab s, owned by the caller, onto the thread's cache;
 * past the cap half the cache goes back to the slabs. */
HAK_INLINE void tiny_cache_push(struct hak_thread *t, struct tiny_slab *s, void *p)
{
    unsigned cls = s->cls;
    hak_link_set(p, t->tiny.head[cls]);
    t->tiny.head[cls] = p;
    t->counters.frees[HAK_TIER_TINY]++;
    if (HAK_UNLIKELY(++t->tiny.count[cls] > tiny_cache_cap[cls]))
        tiny_cache_flush(&t->tiny, cls, tiny_cache_cap[cls] / 2u);
}

/* malloc: pop the thread's tiny cache (or pool cache: pool_fast.h), or take
 * the slow path.  Nothing here
 * calls a function except in tail position, so the fast path needs no
 * stack frame. */
HAK_INLINE void *hak_impl_malloc(size_t size)
{
    if (HAK_LIKELY(size <= HAK_TINY_MAX)) {
        struct hak_thread *t = &hak_thread;
        unsigned cls = tiny_class_of(size);
        void *b = t->tiny.head[cls];
        if (HAK_LIKELY(b)) {
            void *next = hak_link_get(b);
            if (HAK_LIKELY(tiny_link_is_near(b, next))) {
                t->tiny.head[cls] = next;
                t->tiny.count[cls]--;
                hak_block_unmark(b);
                t->counters.allocs[HAK_TIER_TINY]++;
                HAK_VG_MALLOC(b, size, 0);
                return b;
            }
        }
    } else if (size <= HAK_POOL_MAX) {
        void *b = pool_malloc_fast(size);
        if (HAK_LIKELY(b))
            return b;
    }
    return hak_alloc_slow(size);
}

/* free: one registry load finds the tier; a valid tiny block without the
 * free mark, of a slab the caller owns, goes onto the caller's cache, and so
 * does a valid pool block (pool_fast.h).  Any
 * other case (NULL, other tiers, remote frees, suspected double frees,
 * invalid pointers) is handled, and reported, by hak_free_slow. */
HAK_INLINE void hak_impl_free(void *p)
{
    if (p)
        HAK_VG_FREE(p);
    if (HAK_LIKELY(hak_registry_kind(p) == HAK_CHUNK_TINY)) {
        struct tiny_slab *s = tiny_slab_of(p);
        struct hak_thread *t = &hak_thread;
        struct tiny_heap *h = t->tiny.heap;
        if (HAK_LIKELY(tiny_is_block(s, p) && !hak_block_marked_free(p) && h &&
                       atomic_load_explicit(&s->owner, memory_order_relaxed) == h)) {
            tiny_cache_push(t, s, p);
            return;
        }
    } else if (hak_registry_kind(p) == HAK_CHUNK_POOL && pool_free_fast(p)) {
        return;
    }
    hak_free_slow(p);
}

#endif
