/*
 * pool_class.h - the pool tier's size classes (HAK_TINY_MAX+1 .. HAK_POOL_MAX)
 * and the page length of each.
 *
 * Four classes per power of two, every one a multiple of 256, capped by
 * HAK_POOL_MAX itself (which the last power of two's third class covers).  The powers of two (2048 ... 32768) are classes, so
 * memalign up to a page can be served from a 4 KiB aligned pool page.
 */
#ifndef HAKMEM_POOL_CLASS_H
#define HAKMEM_POOL_CLASS_H

#include "internal.h"

#define POOL_NUM_CLASSES 23
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

/* log2 of the tier's lower bound; each power of two above it has
 * 1 << POOL_CLASS_SPLIT_SHIFT classes, evenly spaced. */
#define POOL_BASE_SHIFT 10
#define POOL_CLASS_SPLIT_SHIFT 2
_Static_assert(HAK_TINY_MAX == 1 << POOL_BASE_SHIFT, "pool classes start above a power of two");

/* The class of n + 1 bytes, as an integer constant expression:
 * n >> (e - split), e = log2(n), is 1 << split plus the class within the
 * power of two. */
#define POOL_LOG2(n) (63 - __builtin_clzll(n))
#define POOL_CLASS_OF_N(n)                                                                    \
    ((POOL_LOG2(n) << POOL_CLASS_SPLIT_SHIFT) + ((n) >> (POOL_LOG2(n) - POOL_CLASS_SPLIT_SHIFT)) - \
     ((POOL_BASE_SHIFT + 1) << POOL_CLASS_SPLIT_SHIFT))

/* pool_class_of_grain[(size - 1) / POOL_CLASS_GRAIN] is the class of size:
 * a constant table (pool_class.c), which a thread may read while another
 * initializes.  Debug builds check it against pool_class_size at init. */
extern HAK_HIDDEN const uint8_t pool_class_of_grain[HAK_POOL_MAX / POOL_CLASS_GRAIN];

/* The class of `size` (HAK_TINY_MAX < size <= HAK_POOL_MAX). */
HAK_INLINE unsigned pool_class_of(size_t size)
{
    return pool_class_of_grain[(size - 1) / POOL_CLASS_GRAIN];
}

#endif
