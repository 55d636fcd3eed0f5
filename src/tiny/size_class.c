/*
 * size_class.c - the tiny tier's size class table and its lookup index.
 */
#include "tiny/size_class.h"

const uint16_t tiny_class_size[TINY_NUM_CLASSES] = {
    16,  32,  48,  64,  80,  96,  112, 128,  /* 16-byte steps */
    160, 192, 224, 256,                      /* four per power of two */
    320, 384, 448, 512,
    640, 768, 896, 1024,
};

/* The class of each 16-byte size step: the smallest class >= i * 16.  A
 * constant, so the malloc fast path reads it without any initialization
 * (threads may call malloc before the first one finished initializing);
 * tiny_size_class_check() verifies it against tiny_class_size. */
const uint8_t tiny_class_of_index[HAK_TINY_MAX / HAK_ALIGN + 1] = {
     0,  0,  1,  2,  3,  4,  5,  6,  7,  8,  8,  9,  9, 10, 10, 11,
    11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19,
    19,
};

bool tiny_size_class_check(void)
{
    unsigned cls = 0;
    for (unsigned i = 0; i <= HAK_TINY_MAX / HAK_ALIGN; i++) {
        while (tiny_class_size[cls] < i * HAK_ALIGN)
            cls++;
        if (tiny_class_of_index[i] != cls)
            return false;
    }
    return true;
}
