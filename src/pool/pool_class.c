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
#define G(g) (uint8_t)POOL_CLASS_OF_N(((size_t)(g) + 1) * POOL_CLASS_GRAIN - 1),
#define G4(g) G(g) G((g) + 1) G((g) + 2) G((g) + 3)
#define G16(g) G4(g) G4((g) + 4) G4((g) + 8) G4((g) + 12)
const uint8_t pool_class_of_grain[HAK_POOL_MAX / POOL_CLASS_GRAIN] = {
    /* grains 0 .. 3 (sizes up to HAK_TINY_MAX) are never looked up */
    0, 0, 0, 0, G4(4) G4(8) G4(12) G16(16) G16(32) G16(48) G16(64) G16(80) G16(96) G16(112)
    G16(128) G16(144) G16(160) G16(176) G16(192)
};
#undef G16
#undef G4
#undef G
_Static_assert(HAK_POOL_MAX / POOL_CLASS_GRAIN == 208, "pool_class_of_grain lists 208 grains");

uint8_t pool_class_units[POOL_NUM_CLASSES];
uint8_t pool_class_batch_max[POOL_NUM_CLASSES];

void pool_size_class_init(void)
{
#ifdef HAKMEM_DEBUG
    /* pool_class_of must name the smallest class that holds each size:
     * class sizes are multiples of the grain, so checking both ends of
     * every grain checks every size.  (Debug builds: the table is constant,
     * so one check per build is enough; .ci/sanitize builds with debug.) */
    for (size_t g = HAK_TINY_MAX; g < HAK_POOL_MAX; g += POOL_CLASS_GRAIN)
        for (size_t s = g + 1; s <= g + POOL_CLASS_GRAIN; s += POOL_CLASS_GRAIN - 1) {
            unsigned c = pool_class_of(s);
            HAK_DEBUG_CHECK(c < POOL_NUM_CLASSES && pool_class_size[c] >= s &&
                                (c == 0 || pool_class_size[c - 1] < s),
                            "pool: class of %zu bytes is %u", s, c);
        }
#endif
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
