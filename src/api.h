/*
 * api.h - the bodies of malloc and free, inline, so that both the hak_* API
 * (hakmem.c) and the overriding libc symbols (override.c) get the fast paths
 * without a call in between.  Everything off the fast path is in hakmem.c.
 */
#ifndef HAKMEM_API_H
#define HAKMEM_API_H

#include "internal.h"
#include "fast.h"
#include "freelist.h"
#include "lifecycle.h"
#include "registry.h"
#include "tiny/tiny.h"
#include "pool/pool_fast.h"

#include <string.h>

/* Slow paths (hakmem.c): everything the inline fast paths do not finish.
 * hak_free_slow does the whole of free() for any pointer, with every check. */
HAK_HIDDEN void *hak_alloc_slow(size_t size);
/* malloc's fast path when its fast list is empty (a miss), or when the
 * list's head fails its check (the pop with every check, which reports the
 * corruption).  Both take the size alone: the fast path's tail calls then
 * keep no other register. */
HAK_HIDDEN void *hak_alloc_fast_miss(size_t size);
HAK_HIDDEN void *hak_alloc_fast_checked(size_t size);
HAK_HIDDEN void hak_free_slow(void *p);
/* free() of p, a pointer into a tiny chunk, that the fast path declined: a
 * remote free, or a pointer to report.  (p alone: the fast path's tail call
 * then moves no register.) */
HAK_HIDDEN void hak_free_tiny_slow(void *p);
/* calloc's slow path: everything hak_impl_calloc does not finish. */
HAK_HIDDEN void *hak_calloc_slow(size_t n, size_t size);
HAK_HIDDEN void *hak_impl_realloc(void *p, size_t size);
HAK_HIDDEN void *hak_impl_reallocarray(void *p, size_t n, size_t size);
HAK_HIDDEN int hak_impl_posix_memalign(void **out, size_t align, size_t size);
HAK_HIDDEN void *hak_impl_aligned_alloc(size_t align, size_t size);
HAK_HIDDEN void *hak_impl_memalign(size_t align, size_t size);
HAK_HIDDEN void *hak_impl_valloc(size_t size);
HAK_HIDDEN void *hak_impl_pvalloc(size_t size);
HAK_HIDDEN size_t hak_impl_usable_size(void *p);
HAK_HIDDEN void hak_impl_free_sized(void *p, size_t size);
HAK_HIDDEN void hak_impl_free_aligned_sized(void *p, size_t align, size_t size);

/* What hak_fast_pop found. */
enum hak_pop {
    HAK_POP_HIT,   /* *out is the block */
    HAK_POP_EMPTY, /* the list is empty: a miss */
    HAK_POP_BAD,   /* the head failed its check: the checked pop reports it */
};

/* The fast path of every allocation the fast lists serve (size <=
 * HAK_POOL_MAX, alignment 16): pops the thread's fast list of the size's
 * class, tiny or pool alike (fast.h).  Nothing here calls a function, so
 * the callers need no stack frame on a hit. */
HAK_INLINE enum hak_pop hak_fast_pop(size_t size, void **out)
{
    struct hak_thread *t = &hak_thread;
    unsigned cls = hak_fast_class_of(size);
    void *b = t->fast.head[cls];
    if (HAK_UNLIKELY(!b))
        return HAK_POP_EMPTY;
    void *next;
    if (HAK_UNLIKELY(!hak_link_pop_read(b, &next)))
        return HAK_POP_BAD;
    /* counted: tiny_cache_net, pool_cache_net */
    hak_fast_take(&t->fast, cls, b, next);
    *out = b;
    return HAK_POP_HIT;
}

/* malloc: the fast pop, or the slow path; those called in tail position
 * only, with the size alone. */
HAK_INLINE void *hak_impl_malloc(size_t size)
{
    if (HAK_LIKELY(size <= HAK_POOL_MAX)) {
        void *b;
        switch (hak_fast_pop(size, &b)) {
        case HAK_POP_HIT:
            HAK_VG_MALLOC(b, size, 0);
            return b;
        case HAK_POP_EMPTY:
            return hak_alloc_fast_miss(size);
        case HAK_POP_BAD:
            return hak_alloc_fast_checked(size); /* aborts */
        }
    }
    return hak_alloc_slow(size);
}

/* calloc: the fast pop and zeroing for the sizes the fast lists serve (a
 * block from a list held data); the rest, a miss or a failed check
 * included, in hak_calloc_slow.  calloc(1, 32) + free: 193 instructions
 * through the slow path, 98 with this (bench_fastpath 200000 32 calloc). */
HAK_INLINE void *hak_impl_calloc(size_t n, size_t size)
{
    size_t total;
    void *b;
    if (HAK_LIKELY(!__builtin_mul_overflow(n, size, &total) && total <= HAK_POOL_MAX &&
                   hak_fast_pop(total, &b) == HAK_POP_HIT)) {
        HAK_VG_MALLOC(b, total, 1);
        return memset(b, 0, total);
    }
    return hak_calloc_slow(n, size);
}

/* Whether tiny block p of slab s, about to be freed, may go onto the
 * calling thread's cache: a block start, not marked free, of a slab the
 * thread owns (free and abandoned slabs belong to tiny_no_owner, never to a
 * thread, so a thread without a heap never matches). */
HAK_INLINE bool tiny_free_is_local(struct hak_thread *t, const struct tiny_slab *s, void *p)
{
    /* The atomic loads first: the compiler moves no memory access across
     * them, and the mark check must sit next to the push, which then reuses
     * its keys and p ^ mac. */
    return atomic_load_explicit(&s->owner, memory_order_relaxed) == t->tiny.heap &&
           (!HAK_HARDENING || (tiny_is_block(s, p) && !hak_block_marked_free(p)));
}

/* free: one registry load finds the tier; a valid tiny block of a slab the
 * caller owns goes onto the caller's cache.  Any other case (NULL, other
 * tiers, remote frees, suspected double frees, invalid pointers) is
 * handled, and reported, by hak_free_tiny_slow (tiny chunks) or
 * hak_free_slow.  Each tier's fast path is one line here. */
HAK_INLINE void hak_impl_free(void *p)
{
    if (p)
        HAK_VG_FREE(p);
    enum hak_chunk_kind kind = hak_registry_kind(p);
    if (HAK_LIKELY(kind == HAK_CHUNK_TINY)) {
        struct tiny_slab *s = tiny_slab_of(p);
        struct hak_thread *t = &hak_thread;
        if (HAK_LIKELY(tiny_free_is_local(t, s, p))) {
            t->counters.frees[HAK_TIER_TINY]++;
            tiny_cache_push(&t->fast, &t->tiny, s->cls, p);
            return;
        }
        hak_free_tiny_slow(p);
        return;
    } else if (kind == HAK_CHUNK_RUNS && pool_free_fast(p)) {
        return;
    }
    hak_free_slow(p);
}

#endif
