/*
 * stats.h - allocator statistics: per-thread operation counters (summed over
 * live threads and folded in when a thread exits) and process-wide mapping
 * counters.  Reported by hak_stats_get/hak_stats_print and HAKMEM_STATS=1.
 */
#ifndef HAKMEM_STATS_H
#define HAKMEM_STATS_H

#include "internal.h"
#include "hakmem.h"

/* A thread's counters; plain increments on the thread's own TLS. */
struct hak_counters {
    uint64_t allocs[HAK_TIER_COUNT];
    uint64_t frees[HAK_TIER_COUNT];
};

/* hak_stats_print to file descriptor fd. */
HAK_HIDDEN void hak_stats_print_fd(int fd);

HAK_HIDDEN void hak_stats_count_mmap(void);
HAK_HIDDEN void hak_stats_count_munmap(void);
/* Purges (madvise MADV_DONTNEED) and resizes (mremap) of mappings: printed
 * by hak_stats_print, not part of struct hak_stats (its layout is ABI). */
HAK_HIDDEN void hak_stats_count_purge(void);
HAK_HIDDEN void hak_stats_count_remap(void);
HAK_HIDDEN void hak_stats_mapped(enum hak_tier tier, int64_t delta);

/* Registers / unregisters a live thread's counters for summing. */
HAK_HIDDEN void hak_stats_thread_start(struct hak_counters *c);
HAK_HIDDEN void hak_stats_thread_exit(struct hak_counters *c);
/* Counts operations done without a thread's TLS (before init, after exit). */
HAK_HIDDEN void hak_stats_count_global(enum hak_tier tier, bool alloc);

HAK_HIDDEN void hak_stats_fork_prepare(void);
HAK_HIDDEN void hak_stats_fork_parent(void);
HAK_HIDDEN void hak_stats_fork_child(void);

#endif
