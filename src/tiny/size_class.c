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

uint8_t tiny_class_of_index[HAK_TINY_MAX / HAK_ALIGN + 1];

void tiny_size_class_init(void)
{
    unsigned cls = 0;
    for (unsigned i = 0; i <= HAK_TINY_MAX / HAK_ALIGN; i++) {
        while (tiny_class_size[cls] < i * HAK_ALIGN)
            cls++;
        tiny_class_of_index[i] = (uint8_t)cls;
    }
}
