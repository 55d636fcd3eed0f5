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

/* The class of `size` (HAK_TINY_MAX < size <= HAK_POOL_MAX), computed rather
 * than looked up: nothing is read that init writes, so a thread may call it
 * while another initializes.  pool_size_class_init checks it against
 * pool_class_size. */
HAK_INLINE unsigned pool_class_of(size_t size)
{
    size_t n = size - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(n); /* POOL_BASE_SHIFT .. 15 */
    /* n >> (e - split) is 1 << split plus the class within the power of two */
    return (e << POOL_CLASS_SPLIT_SHIFT) + (unsigned)(n >> (e - POOL_CLASS_SPLIT_SHIFT)) -
           ((POOL_BASE_SHIFT + 1u) << POOL_CLASS_SPLIT_SHIFT);
}

#endif
