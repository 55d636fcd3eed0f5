/*
 * pool_class.h - the pool tier's size classes (HAK_TINY_MAX+1 .. HAK_POOL_MAX)
 * and the page length of each.
 *
 * Four classes from 1 to 2 KiB, then eight per power of two (an eighth of
 * it apart), every one a multiple of 256, capped by HAK_POOL_MAX itself
 * (the fifth class above 32 KiB).  Eight: a request just above a class
 * wastes at most an eighth, not a quarter (sqlite3's page buffers of 4,368
 * bytes took 5,120-byte blocks).  The powers of two (2048 ... 32768) are
 * classes, so memalign up to a page can be served from a 4 KiB aligned pool
 * page.
 */
#ifndef HAKMEM_POOL_CLASS_H
#define HAKMEM_POOL_CLASS_H

#include "internal.h"

#define POOL_NUM_CLASSES 41
#define POOL_CLASS_GRAIN 256

extern HAK_HIDDEN const uint32_t pool_class_size[POOL_NUM_CLASSES];
/* Units (64 KiB each) per pool page of each class: filled at init as the
 * smallest of 1, 2, 4, 8 whose tail waste is at most 1/8 of the page. */
extern HAK_HIDDEN uint8_t pool_class_units[POOL_NUM_CLASSES];
/* Thread caches move blocks in batches of about POOL_BATCH_BYTES, at least
 * POOL_BATCH_MIN and at most POOL_BATCH_MAX blocks; a thread's batch of a
 * class starts at POOL_BATCH_MIN and grows with use. */
#define POOL_BATCH_BYTES (256u * 1024u)
#define POOL_BATCH_MIN 2u
#define POOL_BATCH_MAX 64u
/* The largest batch of each class, filled at init. */
extern HAK_HIDDEN uint8_t pool_class_batch_max[POOL_NUM_CLASSES];

HAK_HIDDEN void pool_size_class_init(void);

/* log2 of the tier's lower bound, and of the first power of two from which
 * on each has 1 << POOL_CLASS_SPLIT_SHIFT classes, evenly spaced (below it:
 * one class per POOL_CLASS_GRAIN). */
#define POOL_BASE_SHIFT 10
#define POOL_SPLIT_FROM_SHIFT 11
#define POOL_CLASS_SPLIT_SHIFT 3
_Static_assert(HAK_TINY_MAX == 1 << POOL_BASE_SHIFT, "pool classes start above a power of two");
_Static_assert(POOL_CLASS_GRAIN << POOL_CLASS_SPLIT_SHIFT == 1 << POOL_SPLIT_FROM_SHIFT,
               "the first split power of two is split into grains");

/* The class of n + 1 bytes, as an integer constant expression.  Below the
 * first split power of two, one class per grain; from it on, with
 * e = log2(n), n >> (e - split) is 1 << split plus the class within the
 * power of two. */
#define POOL_LOG2(n) (63 - __builtin_clzll(n))
#define POOL_GRAIN_CLASSES                                                                    \
    (((1u << POOL_SPLIT_FROM_SHIFT) - (1u << POOL_BASE_SHIFT)) / POOL_CLASS_GRAIN)
#define POOL_CLASS_OF_N(n)                                                                    \
    ((n) < (1u << POOL_SPLIT_FROM_SHIFT)                                                       \
         ? (unsigned)(((n) - (1u << POOL_BASE_SHIFT)) / POOL_CLASS_GRAIN)                     \
         : POOL_GRAIN_CLASSES +                                                                \
               ((unsigned)(POOL_LOG2(n) - POOL_SPLIT_FROM_SHIFT) << POOL_CLASS_SPLIT_SHIFT) +  \
               (unsigned)(((n) >> (POOL_LOG2(n) - POOL_CLASS_SPLIT_SHIFT)) -                   \
                          (1u << POOL_CLASS_SPLIT_SHIFT)))

/* The class of a size: pool_class_of, fast.h (one table for both tiers). */

#endif
