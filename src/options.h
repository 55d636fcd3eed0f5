/*
 * options.h - the HAKMEM_* environment options, read once at initialization.
 */
#ifndef HAKMEM_OPTIONS_H
#define HAKMEM_OPTIONS_H

#include "internal.h"

struct hak_options {
    bool stats;              /* HAKMEM_STATS: print statistics at exit */
    bool pool_trace;         /* HAKMEM_POOL_TRACE: trace the pool tier to stderr */
    bool tiny_batch_refill;  /* HAKMEM_TINY_P0_BATCH_REFILL: refill tiny caches in batches */
    size_t large_cache_bytes; /* HAKMEM_LARGE_CACHE_MB: freed large mappings kept */
    uint64_t purge_delay_ms; /* HAKMEM_PURGE_DELAY_MS: free memory kept before madvise */
};

extern HAK_HIDDEN struct hak_options hak_opt;

/* Reads the environment (without allocating) and fills hak_opt. */
HAK_HIDDEN void hak_options_init(void);

#endif
