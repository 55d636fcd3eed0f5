/*
 * tiny.h - the tiny tier (0 .. HAK_TINY_MAX bytes): per-thread caches in front
 * of slabs owned by per-thread heaps.
 *
 * malloc pops the calling thread's cache for the class; on a miss the cache is
 * refilled in a batch from the heap's current slab (remote frees first, then
 * the slab's free list, then fresh blocks carved from its tail).  free pushes
 * onto the cache when the caller owns the block's slab (flushing a batch back
 * to the slabs past a cap), and onto the slab's lock-free remote stack
 * otherwise.  A thread's exit flushes its cache and abandons its slabs, which
 * the next thread needing that class adopts.
 */
#ifndef HAKMEM_TINY_H
#define HAKMEM_TINY_H

#include "internal.h"
#include "tiny/size_class.h"
#include "tiny/superslab.h"

/* The per-thread cache: a singly linked list and a count per class.  Lives in
 * initial-exec TLS (struct hak_thread, lifecycle.h). */
struct tiny_cache {
    void *head[TINY_NUM_CLASSES];
    uint32_t count[TINY_NUM_CLASSES];
    struct tiny_heap *heap;  /* NULL until the thread's first tiny refill */
};

struct tiny_slab_list {
    struct tiny_slab *head, *tail;
};

/* A thread's slabs, per class.  Heaps are recycled, never unmapped. */
struct tiny_heap {
    struct tiny_slab *current[TINY_NUM_CLASSES];
    struct tiny_slab_list partial[TINY_NUM_CLASSES];
    struct tiny_slab_list full[TINY_NUM_CLASSES];
    struct tiny_heap *next_free;
};

HAK_HIDDEN void tiny_init(void);

/* Slow paths of malloc and free (the fast paths are inline in hakmem.c). */
HAK_HIDDEN void *tiny_alloc_refill(struct tiny_cache *c, unsigned cls);
HAK_HIDDEN void tiny_cache_flush(struct tiny_cache *c, unsigned cls, uint32_t keep);
HAK_HIDDEN void tiny_free_remote(struct tiny_slab *s, void *p);
/* malloc and free for a thread whose cache is gone (after its exit). */
HAK_HIDDEN void *tiny_alloc_orphan(unsigned cls);

/* Thread exit: empties the cache and abandons the heap's slabs. */
HAK_HIDDEN void tiny_thread_exit(struct tiny_cache *c);
/* The tiny tier's purge hook (purge.h): with `all`, releases empty
 * abandoned slabs and purges free slabs. */
HAK_HIDDEN size_t tiny_purge(uint64_t now_ms, bool all);

/* The most blocks a thread's cache keeps per class (about 16 KiB worth, 16 to
 * 256 blocks); a refill brings half of that.  Filled by tiny_init. */
extern HAK_HIDDEN uint16_t tiny_cache_cap[TINY_NUM_CLASSES];

/*
 * Whether p is the start of a block carved from slab s (a free slab has
 * nothing carved).  Release builds check every free: a multiply and two
 * compares.
 */
HAK_INLINE bool tiny_is_block(const struct tiny_slab *s, const void *p)
{
    uintptr_t off = ((uintptr_t)p & HAK_CHUNK_MASK) - s->start_off;
    return HAK_LIKELY(off < atomic_load_explicit(&s->carved_end, memory_order_relaxed) &&
                      hak_divisible((uint32_t)off, s->div_magic));
}

/* Aborts with `hakmem: <func>(): invalid pointer` unless tiny_is_block. */
HAK_INLINE void tiny_check_block(const struct tiny_slab *s, const void *p, const char *func)
{
    if (HAK_UNLIKELY(!tiny_is_block(s, p)))
        hak_fatal_ptr(func, "invalid pointer", p);
}

/* Aborts with "malloc(): corrupted free list" unless next (decoded from a
 * cache link) is NULL or a block of class cls inside a live slab. */
HAK_HIDDEN void tiny_check_link(void *next, unsigned cls);

/* fork() support for the tiny tier's locks. */
HAK_HIDDEN void tiny_fork_prepare(void);
HAK_HIDDEN void tiny_fork_parent(void);
HAK_HIDDEN void tiny_fork_child(void);

#endif
