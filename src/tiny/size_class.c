/*
 * size_class.c - the tiny tier's size class table (the lookup is fast.h's).
 */
#include "tiny/size_class.h"

const uint16_t tiny_class_size[TINY_NUM_CLASSES] = {
    16,  32,  48,  64,  80,  96,  112, 128,  /* 16-byte steps */
    160, 192, 224, 256,                      /* four per power of two */
    320, 384, 448, 512,
    640, 768, 896, 1024,
};
