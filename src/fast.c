/*
 * fast.c - the fast class of each 16-byte size step (fast.h).
 */
#include "fast.h"

/* The class of size n (16 < n <= HAK_TINY_MAX; 0 for n <= 16), from the tiny
 * tier's rule: 16-byte steps to 128 B, then four classes per power of two. */
#define FAST_LOG2(n) (63 - __builtin_clzll(n))
#define TINY_CLASS_OF_N(n)                                                                     \
    ((n) <= 16 ? 0u                                                                            \
               : (n) <= 128 ? (unsigned)(((n) + 15) / 16 - 1)                                  \
                            : 8u + 4u * (unsigned)(FAST_LOG2((n) - 1) - 7) +                   \
                                  (unsigned)((((n) - 1) >> (FAST_LOG2((n) - 1) - 2)) & 3u))
/* The fast class of size step i (sizes up to 16 * i). */
#define F(i)                                                                                   \
    (uint8_t)((i) * HAK_ALIGN <= HAK_TINY_MAX                                                  \
                  ? TINY_CLASS_OF_N((size_t)(i) * HAK_ALIGN)                                   \
                  : HAK_FAST_POOL + POOL_CLASS_OF_N((size_t)(i) * HAK_ALIGN - 1)),
#define F4(i) F(i) F((i) + 1) F((i) + 2) F((i) + 3)
#define F16(i) F4(i) F4((i) + 4) F4((i) + 8) F4((i) + 12)
#define F64(i) F16(i) F16((i) + 16) F16((i) + 32) F16((i) + 48)
#define F256(i) F64(i) F64((i) + 64) F64((i) + 128) F64((i) + 192)
const uint8_t hak_fast_class_of_index[HAK_POOL_MAX / HAK_ALIGN + 1] = {
    F256(0) F256(256) F256(512) F256(768) F256(1024) F256(1280) F256(1536)
    F256(1792) F256(2048) F256(2304) F256(2560) F256(2816) F256(3072) F(3328)
};
#undef F256
#undef F64
#undef F16
#undef F4
#undef F
_Static_assert(HAK_POOL_MAX / HAK_ALIGN == 3328, "hak_fast_class_of_index lists 3329 steps");

bool hak_fast_class_check(void)
{
    for (size_t size = 0; size <= HAK_POOL_MAX; size++) {
        unsigned cls = hak_fast_class_of(size), want = 0;
        if (size <= HAK_TINY_MAX) {
            while (tiny_class_size[want] < size)
                want++;
        } else {
            while (pool_class_size[want] < size)
                want++;
            want += HAK_FAST_POOL;
        }
        if (cls != want)
            return false;
    }
    return true;
}
