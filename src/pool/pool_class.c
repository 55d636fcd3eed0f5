/*
 * pool_class.c - the pool tier's class table, page lengths and batch sizes.
 */
#include "pool/pool_class.h"
#include "pool/pool.h"

const uint32_t pool_class_size[POOL_NUM_CLASSES] = {
    1280,  1536,  1792,  2048,  2560,  3072,  3584,  4096,
    5120,  6144,  7168,  8192,  10240, 12288, 14336, 16384,
    20480, 24576, 28672, 32768, 40960, 49152, HAK_POOL_MAX,
};

uint8_t pool_class_units[POOL_NUM_CLASSES];
uint8_t pool_class_batch_max[POOL_NUM_CLASSES];

void pool_size_class_init(void)
{
    /* pool_class_of must name the smallest class that holds each size:
     * class sizes are multiples of the grain, so checking both ends of
     * every grain checks every size. */
    for (size_t g = HAK_TINY_MAX; g < HAK_POOL_MAX; g += POOL_CLASS_GRAIN)
        for (size_t s = g + 1; s <= g + POOL_CLASS_GRAIN; s += POOL_CLASS_GRAIN - 1) {
            unsigned c = pool_class_of(s);
            if (c >= POOL_NUM_CLASSES || pool_class_size[c] < s ||
                (c > 0 && pool_class_size[c - 1] >= s))
                hak_fatal("pool: class of %zu bytes is %u", s, c);
        }
    for (unsigned cls = 0; cls < POOL_NUM_CLASSES; cls++) {
        unsigned units = 1;
        for (; units < POOL_MAX_PAGE_UNITS; units *= 2) {
            size_t page = (size_t)units << POOL_UNIT_SHIFT;
            if ((page % pool_class_size[cls]) * 8 <= page)
                break;
        }
        pool_class_units[cls] = (uint8_t)units;
        uint32_t batch = POOL_BATCH_BYTES / pool_class_size[cls];
        pool_class_batch_max[cls] =
            (uint8_t)(batch < POOL_BATCH_MIN ? POOL_BATCH_MIN
                                             : (batch > POOL_BATCH_MAX ? POOL_BATCH_MAX : batch));
    }
}
