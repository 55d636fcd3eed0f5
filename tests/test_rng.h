/*
 * test_rng.h - the tests' random numbers: xorshift64 (Marsaglia 2003), fast,
 * seeded per test so that every run makes the same calls.
 */
#ifndef HAKMEM_TEST_RNG_H
#define HAKMEM_TEST_RNG_H

#include <stdint.h>

static inline uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#endif
