/*
 * pages.h - the page-run layer: runs of 4 KiB pages carved from shared run
 * areas of HAK_RUN_AREA_SIZE bytes, aligned to their size (each of their 2 MiB
 * chunks has registry kind HAK_CHUNK_RUNS).  Its runs are the large tier's
 * blocks up to HAK_LARGE_RUN_MAX (large.h) and the pool tier's pages
 * (pool.h), so the pages either tier gives back serve the other.
 *
 * A run area keeps its metadata in its first HAK_RUN_HEADER_PAGES pages: a
 * page map with, for the first and the last page of every run, the run's
 * descriptor.  free() finds a block's run in O(1) (mask, shift, one load) and
 * validates it against the descriptor, so nothing in the user's memory is
 * trusted.  Free runs are coalesced with their free neighbours and kept in
 * one list per length in pages (exact best fit through a bitmap).  Free runs
 * are purged (madvise) only after HAKMEM_PURGE_DELAY_MS (purge.h); an area
 * that is entirely free when its purge falls due is unmapped, except one, the
 * spare, which stays mapped with its pages purged (pages.c).  Run areas are
 * MADV_NOHUGEPAGE: their pages may stay partly untouched.
 *
 * Why 8 MiB: the large tier puts blocks up to half an area in runs
 * (large.h), so that 64 KiB .. 4 MiB blocks share one best-fit space whose
 * free pages any later block can reuse.  In a model of the layer replaying
 * bench_large with plain best fit, 32 MiB areas kept about 1 MiB less
 * resident at the peak (of 30), but each costs a 64 KiB page map and 32 MiB
 * of address space from a program's first large block on.
 */
#ifndef HAKMEM_PAGES_H
#define HAKMEM_PAGES_H

#include "internal.h"
#include "hakmem.h"

#define HAK_RUN_AREA_SIZE ((size_t)8 << 20)
#define HAK_RUN_AREA_PAGES (HAK_RUN_AREA_SIZE / HAK_PAGE_SIZE)
/* The header at the start of a run area: its page map, then
 * HAK_RUN_CLIENT_BYTES at HAK_RUN_CLIENT_OFFSET that belong to the pool tier
 * (the records of the area's 64 KiB units, pool.h), zero when the area is
 * mapped. */
#define HAK_RUN_CLIENT_OFFSET (HAK_RUN_AREA_PAGES * sizeof(void *))
#define HAK_RUN_CLIENT_BYTES ((size_t)10 << 10)
/* Pages at the start of a run area holding its header. */
#define HAK_RUN_HEADER_PAGES                                                                   \
    ((HAK_RUN_CLIENT_OFFSET + HAK_RUN_CLIENT_BYTES + HAK_PAGE_SIZE - 1) / HAK_PAGE_SIZE)
/* The longest run an area can hold. */
#define HAK_RUN_MAX_PAGES (HAK_RUN_AREA_PAGES - HAK_RUN_HEADER_PAGES)

/* A run of `npages` pages whose start is aligned to `align` (a power of two).
 * Both at most half an area (the area's second half is then always a place
 * for it).  *zeroed tells whether every page is known to read zero.  NULL if
 * out of memory.  A new area mapped for it counts as growth of `tier`
 * (hak_purge_note_growth). */
HAK_HIDDEN void *pages_alloc(size_t npages, size_t align, bool *zeroed, enum hak_tier tier);
/* Frees the run starting at p; aborts naming `func` if p is not the start of
 * a live run ("invalid pointer" or "double free").  Its pages are purged once
 * free for the delay. */
HAK_HIDDEN void pages_free(void *p, const char *func);
/* Frees the run of a pool page at p (pool.c), whose pages the pool purged
 * already when `purged` (it stayed empty for the delay), else dirty and
 * "pooled": the pool's purge purges such runs as it purges its own free
 * pages (pages_purge), so the growth rule of purge.h reaches them. */
HAK_HIDDEN void pages_free_pool(void *p, bool purged);
/* Bytes in the run starting at p (validated as pages_free does). */
HAK_HIDDEN size_t pages_usable_size(void *p, const char *func);
/* Resizes the run starting at p to `npages` in place: shrinking gives the
 * tail back, growing takes the free run right after it.  False when it
 * cannot grow in place, or is out of memory for a descriptor (the run is
 * unchanged). */
HAK_HIDDEN bool pages_resize(void *p, size_t npages, const char *func);
/* The purge hook of the layer (purge.h contract), called by the large tier's;
 * with `pooled`, by the pool's, for the free runs that pool pages gave back
 * unpurged alone (those merged with other free runs included). */
HAK_HIDDEN size_t pages_purge(uint64_t now_ms, uint64_t age_ms, bool all, bool pooled);

HAK_HIDDEN void pages_fork_prepare(void);
HAK_HIDDEN void pages_fork_parent(void);
HAK_HIDDEN void pages_fork_child(void);

#endif
