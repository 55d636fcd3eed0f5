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
uint8_t pool_class_of_index[HAK_POOL_MAX / POOL_CLASS_GRAIN];

void pool_size_class_init(void)
{
    unsigned cls = 0;
    for (unsigned i = 0; i < HAK_POOL_MAX / POOL_CLASS_GRAIN; i++) {
        while (pool_class_size[cls] < (i + 1) * POOL_CLASS_GRAIN)
            cls++;
        pool_class_of_index[i] = (uint8_t)cls;
    }
    for (cls = 0; cls < POOL_NUM_CLASSES; cls++) {
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
