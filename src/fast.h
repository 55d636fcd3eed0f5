/*
 * fast.h - the lists that malloc's fast path pops: one per class of the tiny
 * tier and then one per class of the pool tier, in one array indexed by a
 * "fast class" (hak_fast_class_of).  One array makes malloc's fast path one
 * code path for both tiers, with no branch on the tier: random sizes on both
 * sides of HAK_TINY_MAX mispredicted that branch on a quarter of the mallocs
 * of bench_random_mixed 2500000 8192 1.
 *
 * Each tier owns its classes' lists and counts: tiny.h (room: blocks the
 * list may still take before it overflows) and pool_tls.h (room: blocks
 * under the batch size).  malloc's pop adds one to room for either tier;
 * free pushes through the tier's own path, which knows its rule.  Without
 * Pool TLS the pool's lists stay empty and every pool malloc takes the slow
 * path.
 */
#ifndef HAKMEM_FAST_H
#define HAKMEM_FAST_H

#include "internal.h"
#include "freelist.h"
#include "tiny/size_class.h"
#include "pool/pool_class.h"

/* The fast class of tiny class c is c; of pool class c, HAK_FAST_POOL + c. */
#define HAK_FAST_POOL TINY_NUM_CLASSES
#define HAK_FAST_CLASSES (TINY_NUM_CLASSES + POOL_NUM_CLASSES)

/* A thread's lists (in struct hak_thread, initial-exec TLS; all zero for a
 * new thread). */
struct hak_fast {
    void *head[HAK_FAST_CLASSES];
    int32_t room[HAK_FAST_CLASSES];
};

/* hak_fast_class_of_index[(size + 15) / 16] is the fast class of `size`
 * (<= HAK_POOL_MAX).  A constant, built by macros (fast.c): malloc reads it
 * before any initialization. */
extern HAK_HIDDEN const uint8_t hak_fast_class_of_index[HAK_POOL_MAX / HAK_ALIGN + 1];

/* Whether hak_fast_class_of_index names, for every size, the smallest class
 * of its tier that holds it (tiny_class_size, pool_class_size): checked at
 * init by --enable-debug builds, which .ci/sanitize runs. */
HAK_HIDDEN bool hak_fast_class_check(void);

HAK_INLINE unsigned hak_fast_class_of(size_t size)
{
    return hak_fast_class_of_index[(size + HAK_ALIGN - 1) / HAK_ALIGN];
}

/* The tiny class of `size` (<= HAK_TINY_MAX). */
HAK_INLINE unsigned tiny_class_of(size_t size)
{
    return hak_fast_class_of(size);
}

/* The pool class of `size` (HAK_TINY_MAX < size <= HAK_POOL_MAX). */
HAK_INLINE unsigned pool_class_of(size_t size)
{
    return hak_fast_class_of(size) - HAK_FAST_POOL;
}

/* The one pop, for both tiers: hands out b, the head of list cls, whose link
 * is next (already checked). */
HAK_INLINE void *hak_fast_take(struct hak_fast *f, unsigned cls, void *b, void *next)
{
    f->head[cls] = next;
    /* The next pop reads next's two words, and only then knows the head
     * after it: a chain of loads, one per malloc, that no out-of-order
     * execution overlaps.  Fetching next's line now overlaps its miss with
     * whatever the program does until then (a prefetch never faults, so a
     * corrupted next is still caught by its own pop).  bench_tiny_churn:
     * +4-6 %. */
    __builtin_prefetch(next, 1);
    f->room[cls]++;
    hak_block_unmark(b);
    return b;
}

#endif
