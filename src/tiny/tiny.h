/*
 * tiny.h - the tiny tier (0 .. HAK_TINY_MAX bytes): per-thread caches in front
 * of slabs owned by per-thread heaps.
 *
 * malloc pops the calling thread's cache for the class; on a miss the cache is
 * refilled from the heap's current slab: its whole free list spliced in at
 * once (after taking its remote frees with one exchange), or fresh blocks
 * carved from its tail.  free pushes onto the cache when the caller owns the
 * block's slab; a push that fills the cache first grows it (up to a per-class
 * maximum, as tcmalloc's caches grow with demand), then sets the full list
 * aside whole on the heap's transfer stack (struct tiny_xfer); lists that
 * stack cannot hold go back to the slabs run by run: consecutive blocks of
 * one slab are spliced onto that slab's free list with one link write.  Other threads' frees go onto the
 * slab's lock-free remote stack.  A thread's exit flushes its cache and
 * abandons its slabs, which the next thread needing that class adopts.
 *
 * The inline fast paths are in api.h; the cache's push, which every path
 * uses, is here, and its pop, shared with the pool tier, in fast.h.
 */
#ifndef HAKMEM_TINY_H
#define HAKMEM_TINY_H

#include "internal.h"
#include "freelist.h"
#include "fast.h"
#include "tiny/size_class.h"
#include "tiny/superslab.h"
#include "registry.h"

/* The per-thread cache: a singly linked list per class, and how many more
 * blocks it may take before it overflows, both in the thread's fast lists
 * (fast.h: head[cls] and room[cls] of the tiny classes; a push that takes
 * room to 0 overflows, the list holds cap - room blocks and room is never 0
 * between calls), and the rest here.  Lives in initial-exec TLS (struct
 * hak_thread, lifecycle.h); all zero for a new thread. */
struct tiny_cache {
    uint16_t cap[TINY_NUM_CLASSES];  /* 0 until the class's first refill */
    /* What room[] would sum to had only malloc's and free()'s fast paths
     * (one pop: room + 1; one push: room - 1) changed it: every other change
     * of room, every pop off the fast path (counted as an allocation where
     * it happens) and every free counted as a tiny free that is no push
     * (a remote free) adds to it.  tiny_cache_net() derives the fast pops
     * from it, so that malloc's fast path counts nothing. */
    int64_t room_base;
    struct tiny_heap *heap;          /* NULL until the thread's first refill */
    unsigned trim_epoch;             /* the last malloc_trim this heap acted on */
};

struct tiny_slab_list {
    struct tiny_slab *head, *tail;
    uint32_t n; /* slabs on the list */
};

/* Whole cache lists set aside when the cache overflowed, newest last: an
 * empty cache takes the newest back in one move.  When the stack is full,
 * an overflowing cache gives its newest blocks back to their slabs (a walk,
 * while they are still in the CPU's caches) and keeps the rest; lists on
 * the stack go back once set aside for the purge delay (so that their slabs
 * can empty and be purged).  As tcmalloc's transfer batches, lists move
 * whole, never block by block. */
#define TINY_XFER_LISTS 16
struct tiny_xfer {
    void *list[TINY_XFER_LISTS];
    uint64_t since_ms[TINY_XFER_LISTS];
    uint16_t n[TINY_XFER_LISTS];
    uint8_t count;
};

/* Slots of a heap's remote hints (struct tiny_heap). */
#define TINY_REMOTE_HINTS 64

/* A thread's slabs and set-aside lists, per class.  Heaps are recycled,
 * never unmapped. */
struct tiny_heap {
    struct tiny_xfer xfer[TINY_NUM_CLASSES];
    uint64_t next_age_ms;    /* when the transfer stacks are next aged */
    struct tiny_slab *current[TINY_NUM_CLASSES];
    struct tiny_slab_list partial[TINY_NUM_CLASSES];
    struct tiny_slab_list full[TINY_NUM_CLASSES];
    struct tiny_heap *next_free;
    uint32_t remote_hint_seen; /* remote_hint_next when the owner last looked */
    /* Remote hints: a thread whose free makes the remote stack of one of
     * this heap's slabs non-empty writes the slab here (the next slot, round
     * the ring), so that the owner's refill finds full slabs with blocks to
     * collect without walking its full lists (next_slab).  Hints only: a
     * slot may be overwritten before the owner looks, or name a slab the
     * heap no longer owns; the owner checks each. */
    _Atomic uint32_t remote_hint_next __attribute__((aligned(64)));
    _Atomic(struct tiny_slab *) remote_hint[TINY_REMOTE_HINTS];
};

HAK_HIDDEN void tiny_init(void);

/* Slow paths of malloc and free (the fast paths are inline in api.h). */
HAK_HIDDEN void *tiny_alloc_refill(struct tiny_cache *c, unsigned cls);
/* A push of p filled its class's list.  (p, not the class: free's fast
 * path then keeps no register for the class for this tail call: one
 * instruction fewer per free.) */
HAK_HIDDEN void tiny_cache_overflow(struct tiny_cache *c, void *p);
HAK_HIDDEN void tiny_free_remote(struct tiny_slab *s, void *p);
/* malloc for a thread whose cache is gone (after its exit). */
HAK_HIDDEN void *tiny_alloc_orphan(unsigned cls);
/* Pops cache list cls (non-empty) with every check, the slow path's
 * included: aborts on a bad link. */
HAK_HIDDEN void *tiny_cache_pop_checked(struct tiny_cache *c, unsigned cls);


/* Thread exit: empties the cache and abandons the heap's slabs.  (A fork
 * child gives back the parent's other threads with tiny_thread_orphan: their
 * state is a copy that may be caught mid-update.) */
HAK_HIDDEN void tiny_thread_exit(struct tiny_cache *c);
/* In a child of fork(): gives back the slabs of a thread that does not exist
 * there, from a copy of its state that may be caught mid-update (see tiny.c). */
HAK_HIDDEN void tiny_thread_orphan(struct tiny_cache *c);
/* The tiny tier's purge hook (purge.h).  Free slabs are purged once free for
 * the delay.  With `all` (malloc_trim): the calling thread returns its cache,
 * takes its slabs' remote frees and releases its empty slabs; every other
 * live thread does the same at its next refill or cache overflow (a trim
 * epoch it compares); empty abandoned slabs are released; then every free
 * slab is purged. */
HAK_HIDDEN size_t tiny_purge(uint64_t now_ms, uint64_t age_ms, bool all);

/*
 * Whether p, an address inside slab s, is the start of a block carved from
 * it (a free slab has nothing carved).  Release builds check every free: an
 * add, a multiply and one compare (hak_block_below; p below the first block
 * wraps to an offset near 2^32, far past any carved block).
 */
HAK_INLINE bool tiny_is_block(const struct tiny_slab *s, const void *p)
{
    uint32_t off = (uint32_t)((uintptr_t)p + s->neg_first);
    return HAK_LIKELY(hak_block_below(
        off, s->block_magic, atomic_load_explicit(&s->carved_limit, memory_order_relaxed)));
}

/* Aborts with `hakmem: <func>(): invalid pointer` unless tiny_is_block. */
HAK_INLINE void tiny_check_block(const struct tiny_slab *s, const void *p, const char *func)
{
    if (HAK_UNLIKELY(!tiny_is_block(s, p)))
        hak_fatal_ptr(func, "invalid pointer", p);
}

/*
 * Whether next, a link followed on a slow path, names a block of class cls:
 * a chunk of the tiny tier (so its header is mapped), and in its slab the
 * start of a carved block of that class.  The fast paths rely on the free mark
 * instead (hak_link_read), which needs no metadata.
 */
HAK_INLINE bool tiny_link_in_heap(const void *next, unsigned cls)
{
    if (HAK_UNLIKELY(hak_registry_kind(next) != HAK_CHUNK_TINY))
        return false;
    const struct tiny_slab *s = tiny_slab_of(next);
    return tiny_is_block(s, next) && s->cls == cls;
}

/* Sets room[cls] on a slow path (see room_base). */
HAK_INLINE void tiny_cache_set_room(struct hak_fast *f, struct tiny_cache *c, unsigned cls,
                                    int32_t room)
{
    c->room_base += room - f->room[cls];
    f->room[cls] = room;
}

/* Fast pops minus pushes (fast, and free()'s slow path's own pushes) plus
 * the remote frees this thread counted: the thread's tiny allocations are
 * its counted ones plus its counted tiny frees plus this (stats.c).  Read
 * by hak_stats_get for live threads: relaxed loads, exact once the thread
 * is quiet. */
HAK_INLINE int64_t tiny_cache_net(const struct hak_fast *f, const struct tiny_cache *c)
{
    int64_t sum = 0;
    for (unsigned i = 0; i < TINY_NUM_CLASSES; i++)
        sum += __atomic_load_n(&f->room[i], __ATOMIC_RELAXED);
    return sum - __atomic_load_n(&c->room_base, __ATOMIC_RELAXED);
}

/* The one push: p, a block of a slab the cache's heap owns, onto f, the
 * fast lists of the cache's thread.  (The pop is hak_fast_take.) */
HAK_INLINE void tiny_cache_push(struct hak_fast *f, struct tiny_cache *c, unsigned cls, void *p)
{
    hak_link_set(p, f->head[cls]);
    f->head[cls] = p;
    if (HAK_UNLIKELY(--f->room[cls] == 0))
        tiny_cache_overflow(c, p);
}

/* fork() support for the tiny tier's locks. */
HAK_HIDDEN void tiny_fork_prepare(void);
HAK_HIDDEN void tiny_fork_parent(void);
HAK_HIDDEN void tiny_fork_child(void);

#endif
