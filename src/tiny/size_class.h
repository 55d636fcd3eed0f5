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
/* tiny_class_of_index[(size + 15) / 16] is the class of `size` (<= HAK_TINY_MAX). */
extern HAK_HIDDEN const uint8_t tiny_class_of_index[HAK_TINY_MAX / HAK_ALIGN + 1];

/* Whether tiny_class_of_index agrees with tiny_class_size (checked at init
 * by --enable-debug builds, which .ci/sanitize runs). */
HAK_HIDDEN bool tiny_size_class_check(void);

HAK_INLINE unsigned tiny_class_of(size_t size)
{
    return tiny_class_of_index[(size + HAK_ALIGN - 1) / HAK_ALIGN];
}

#endif
