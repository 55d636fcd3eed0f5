/*
 * purge.h - the one purge policy of every tier: memory that becomes free is
 * given back to the kernel (madvise) only after it has stayed free for
 * HAKMEM_PURGE_DELAY_MS, never at the moment it empties (purge-then-refault
 * churn costs more than it saves).  Purging is driven from the allocator's
 * own slow paths through hak_purge_tick(); malloc_trim(0) and hak_trim()
 * purge everything free now through hak_purge_all().
 *
 * Each tier keeps, for its free memory, the time it became free, and
 * implements one hook with this contract:
 *
 *     size_t <tier>_purge(uint64_t now_ms, uint64_t age_ms, bool all);
 *
 * which purges (or unmaps) the tier's free memory that has been free since
 * at or before now_ms - age_ms (everything free, when `all`), and returns
 * the bytes released.  The hooks are tiny_purge (tiny.h), pool_purge
 * (pool.h) and large_purge (large.h).
 *
 * The age is the delay, except right after the footprint grew: a tier that
 * maps new memory (a superslab, a run area, a large mapping)
 * says so (hak_purge_note_growth), and the next tick purges what the other
 * small-block tiers (tiny, pool) hold free at that moment, whatever its age
 * (the threads' caches stay as they are).  That memory could not serve the
 * tier that grew, so it goes back while the new memory is being touched,
 * instead of both being resident at the peak: a Python run
 * (tests/alloc_heavy.py) peaked at 277 MiB, 249 with this, about as with a
 * delay of 1 ms; with an age of a hundredth of the delay (10 ms), or at most
 * one such purge per sixteenth of the delay, it still peaked at 275.
 * Exempt: the tier that grew (purging its own free memory too unmapped the
 * large tier's cached mappings at every new one: bench_huge fell from 473
 * ops/s to 147), and the large tier's runs and mappings, which programs
 * churn as buffers (bench/bench_grow_churn, 32 buffers of 100 KB allocated
 * and freed while 64-byte blocks accumulate: 126,633 page faults when they
 * were purged at every new superslab, 53,834 without).  A program that frees and allocates again
 * without growing (bursts with pauses: bench/bench_bursts) keeps its pages
 * for the whole delay.
 */
#ifndef HAKMEM_PURGE_H
#define HAKMEM_PURGE_H

#include "internal.h"
#include "hakmem.h"

/* Milliseconds of a coarse monotonic clock (a vDSO read, no system call). */
HAK_HIDDEN uint64_t hak_clock_ms(void);

/* Whether memory free since `since_ms` has been free for `age_ms` at `now_ms`. */
HAK_HIDDEN bool hak_purge_due(uint64_t since_ms, uint64_t now_ms, uint64_t age_ms);

/* Called by a tier right after it mapped new memory (no lock needed). */
HAK_HIDDEN void hak_purge_note_growth(enum hak_tier tier);

/* Called from the tiers' slow paths (refills, slab and page hand-out and
 * return, large allocations and frees).  Cheap when nothing is due: at most
 * once per tick interval it runs every tier's purge hook. */
HAK_HIDDEN void hak_purge_tick(void);

/* Purges everything free now, in every tier; returns the bytes released. */
HAK_HIDDEN size_t hak_purge_all(void);

#endif
