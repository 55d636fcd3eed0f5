/*
 * size_class.h - the tiny tier's size classes.
 *
 * 16-byte steps up to 128 B, then four classes per power of two up to
 * HAK_TINY_MAX.  Every class is a multiple of HAK_ALIGN, and the powers of two
 * (16 ... 1024) are classes, so a power-of-two class carved from a 4 KiB
 * aligned slab start is naturally aligned (aligned_alloc(64, 64) is tiny).
 * A class's size is also its stride in the slab: there is no block header.
 */
#ifndef HAKMEM_TINY_SIZE_CLASS_H
#define HAKMEM_TINY_SIZE_CLASS_H

#include "internal.h"

#define TINY_NUM_CLASSES 20

extern HAK_HIDDEN const uint16_t tiny_class_size[TINY_NUM_CLASSES];
/* The class of a size: tiny_class_of, fast.h (one table for both tiers). */

#endif
