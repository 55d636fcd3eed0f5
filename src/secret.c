/*
 * secret.c - the keys of the free mark (freelist.h), from
 * getrandom() once at initialization.
 *
 * Never from AT_RANDOM: its first eight bytes are glibc's stack-protector
 * canary, and a key derived from them would let any leak of a free block
 * reveal the canary.  getrandom() is asked not to block (early in boot the
 * pool may not be initialized yet; a malloc must not hang there): without
 * GRND_NONBLOCK's answer it falls back to GRND_INSECURE, and without that to
 * the clock and ASLR-placed addresses, which is weaker but never the canary.
 */
#include "freelist.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>

#ifndef GRND_INSECURE
#define GRND_INSECURE 0x0004
#endif

struct hak_keys hak_keys;

static bool fill_random(void *buf, size_t len)
{
    static const unsigned flags[] = {GRND_NONBLOCK, GRND_INSECURE};
    for (unsigned i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        ssize_t n;
        do
            n = getrandom(buf, len, flags[i]);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)len)
            return true;
    }
    return false;
}

/* splitmix64: spreads the weak fallback's few bits over every word. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void hak_secret_init(void)
{
    uint64_t r[2];
    int saved = errno;
    if (!fill_random(r, sizeof(r))) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                        (uint64_t)(uintptr_t)&hak_keys ^ (uint64_t)(uintptr_t)&ts;
        for (unsigned i = 0; i < 2; i++)
            r[i] = seed = mix64(seed);
    }
    errno = saved;
    hak_keys.mac = (uintptr_t)r[0];
    hak_keys.mac_mul = (uintptr_t)r[1] | 1;
}
