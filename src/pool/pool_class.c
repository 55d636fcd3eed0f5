/*
 * pool_class.c - the pool tier's class table, page lengths and batch sizes.
 */
#include "pool/pool_class.h"
#include "pool/pool.h"

const uint32_t pool_class_size[POOL_NUM_CLASSES] = {
    1280,  1536,  1792,  2048,                                          /* by 256 */
    2304,  2560,  2816,  3072,  3328,  3584,  3840,  4096,              /* by 256 */
    4608,  5120,  5632,  6144,  6656,  7168,  7680,  8192,              /* by 512 */
    9216,  10240, 11264, 12288, 13312, 14336, 15360, 16384,             /* by 1 KiB */
    18432, 20480, 22528, 24576, 26624, 28672, 30720, 32768,             /* by 2 KiB */
    36864, 40960, 45056, 49152, HAK_POOL_MAX,                           /* by 4 KiB */
};

/* Grain g holds sizes g * GRAIN + 1 .. (g + 1) * GRAIN, all of one class. */
uint8_t pool_class_units[POOL_NUM_CLASSES];
uint8_t pool_class_batch_max[POOL_NUM_CLASSES];

void pool_size_class_init(void)
{
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
