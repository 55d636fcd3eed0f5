/*
 * api.h - the bodies of malloc and free, inline, so that both the hak_* API
 * (hakmem.c) and the overriding libc symbols (override.c) get the fast paths
 * without a call in between.  Everything off the fast path is in hakmem.c.
 */
#ifndef HAKMEM_API_H
#define HAKMEM_API_H

#include "internal.h"
#include "lifecycle.h"
#include "registry.h"
#include "tiny/tiny.h"

/* Slow paths (hakmem.c). */
HAK_HIDDEN void *hak_alloc_slow(size_t size);
HAK_HIDDEN void hak_free_slow(void *p, enum hak_chunk_kind kind, const char *func);
HAK_HIDDEN void hak_free_tiny_remote(struct tiny_slab *s, void *p);
HAK_HIDDEN void *hak_impl_calloc(size_t n, size_t size);
HAK_HIDDEN void *hak_impl_realloc(void *p, size_t size);
HAK_HIDDEN void *hak_impl_reallocarray(void *p, size_t n, size_t size);
HAK_HIDDEN int hak_impl_posix_memalign(void **out, size_t align, size_t size);
HAK_HIDDEN void *hak_impl_aligned_alloc(size_t align, size_t size);
HAK_HIDDEN void *hak_impl_memalign(size_t align, size_t size);
HAK_HIDDEN void *hak_impl_valloc(size_t size);
HAK_HIDDEN void *hak_impl_pvalloc(size_t size);
HAK_HIDDEN size_t hak_impl_usable_size(void *p);

/* malloc: pop the thread's tiny cache, or take the slow path. */
HAK_INLINE void *hak_impl_malloc(size_t size)
{
    if (HAK_LIKELY(size <= HAK_TINY_MAX)) {
        struct hak_thread *t = &hak_thread;
        unsigned cls = tiny_class_of(size);
        void *b = t->tiny.head[cls];
        if (HAK_LIKELY(b)) {
            t->tiny.head[cls] = *(void **)b;
            t->tiny.count[cls]--;
            t->counters.allocs[HAK_TIER_TINY]++;
            return b;
        }
    }
    return hak_alloc_slow(size);
}

/* free: one registry load finds the tier; a tiny block of a slab the caller
 * owns goes onto the caller's cache. */
HAK_INLINE void hak_impl_free(void *p)
{
    if (HAK_UNLIKELY(!p))
        return;
    enum hak_chunk_kind kind = hak_registry_kind(p);
    if (HAK_LIKELY(kind == HAK_CHUNK_TINY)) {
        struct tiny_slab *s = tiny_slab_of(p);
        tiny_check_block(s, p, "free");
        struct hak_thread *t = &hak_thread;
        struct tiny_heap *h = t->tiny.heap;
        if (HAK_LIKELY(h && atomic_load_explicit(&s->owner, memory_order_relaxed) == h)) {
            unsigned cls = s->cls;
            *(void **)p = t->tiny.head[cls];
            t->tiny.head[cls] = p;
            t->counters.frees[HAK_TIER_TINY]++;
            if (HAK_UNLIKELY(++t->tiny.count[cls] > tiny_cache_cap[cls]))
                tiny_cache_flush(&t->tiny, cls, tiny_cache_cap[cls] / 2u);
            return;
        }
        hak_free_tiny_remote(s, p);
        return;
    }
    hak_free_slow(p, kind, "free");
}

#endif
