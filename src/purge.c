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
/* Bit t set: tier t mapped new memory since the last tick took the bits. */
static _Atomic unsigned grew;

uint64_t hak_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool hak_purge_due(uint64_t since_ms, uint64_t now_ms, uint64_t age_ms)
{
    return now_ms - since_ms >= age_ms;
}

void hak_purge_note_growth(enum hak_tier tier)
{
    unsigned bit = 1u << tier;
    if (!(atomic_load_explicit(&grew, memory_order_relaxed) & bit))
        atomic_fetch_or_explicit(&grew, bit, memory_order_relaxed);
}

/* Runs the purge hooks of the tiers in `tiers` (bit per tier).  The pool
 * first: the pages it gives back join the page-run layer, whose purge (the
 * large tier's) then finds their areas wholly free and unmaps them. */
static size_t purge_run(uint64_t now, uint64_t age, bool all, unsigned tiers)
{
    size_t bytes = 0;
    if (tiers & (1u << HAK_TIER_POOL))
        bytes += pool_purge(now, age, all);
    if (tiers & (1u << HAK_TIER_LARGE))
        bytes += large_purge(now, age, all);
    if (tiers & (1u << HAK_TIER_TINY))
        bytes += tiny_purge(now, age, all);
    return bytes;
}

#define ALL_TIERS ((1u << HAK_TIER_COUNT) - 1)
/* The tiers whose free memory growth purges (purge.h). */
#define GROWTH_PURGED_TIERS ((1u << HAK_TIER_TINY) | (1u << HAK_TIER_POOL))

void hak_purge_tick(void)
{
    uint64_t now = hak_clock_ms();
    if (HAK_UNLIKELY(atomic_load_explicit(&grew, memory_order_relaxed))) {
        /* purge.h: what the other small-block tiers hold free goes back. */
        unsigned g = atomic_exchange_explicit(&grew, 0, memory_order_relaxed);
        if (g) {
            purge_run(now, 0, false, GROWTH_PURGED_TIERS & ~g);
            return;
        }
    }
    uint64_t next = atomic_load_explicit(&next_tick_ms, memory_order_relaxed);
    if (now < next)
        return;
    /* One thread runs the tick; the others go on. */
    if (!atomic_compare_exchange_strong_explicit(
            &next_tick_ms, &next, now + hak_opt.purge_delay_ms / HAK_PURGE_TICK_DIV + 1,
            memory_order_relaxed, memory_order_relaxed))
        return;
    purge_run(now, hak_opt.purge_delay_ms, false, ALL_TIERS);
}

size_t hak_purge_all(void)
{
    return purge_run(hak_clock_ms(), 0, true, ALL_TIERS);
}
