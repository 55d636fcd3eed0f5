/*
 * purge.c - the purge policy (see purge.h): the clock, the delay, and the
 * tick that runs the tiers' purge hooks.
 */
#include "purge.h"
#include "large.h"
#include "options.h"
#include "pool/pool.h"
#include "tiny/tiny.h"

#include <time.h>

/* The tick runs the hooks at most this often, in fractions of the delay, so
 * memory is purged between one and 1 + 1/HAK_PURGE_TICK_DIV delays after it
 * became free (given allocator activity). */
#define HAK_PURGE_TICK_DIV 4

static _Atomic uint64_t next_tick_ms;

uint64_t hak_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool hak_purge_due(uint64_t since_ms, uint64_t now_ms)
{
    return now_ms - since_ms >= hak_opt.purge_delay_ms;
}

void hak_purge_tick(void)
{
    uint64_t now = hak_clock_ms();
    uint64_t next = __atomic_load_n(&next_tick_ms, __ATOMIC_RELAXED);
    if (now < next)
        return;
    /* One thread runs the tick; the others go on. */
    if (!__atomic_compare_exchange_n(&next_tick_ms, &next,
                                     now + hak_opt.purge_delay_ms / HAK_PURGE_TICK_DIV + 1, false,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    large_purge(now, false);
    pool_purge(now, false);
    tiny_purge(now, false);
}

size_t hak_purge_all(void)
{
    uint64_t now = hak_clock_ms();
    return large_purge(now, true) + pool_purge(now, true) + tiny_purge(now, true);
}
