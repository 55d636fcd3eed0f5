/*
 * pages.h - the page-run layer: runs of 4 KiB pages carved from shared 2 MiB
 * chunks (registry kind HAK_CHUNK_RUNS).
 *
 * A run chunk keeps its metadata in its first HAK_RUN_HEADER_PAGES pages: a
 * page map with, for the first and the last page of every run, the run's
 * descriptor.  free() finds a block's run in O(1) (mask, shift, one load) and
 * validates it against the descriptor, so nothing in the user's memory is
 * trusted.  Free runs are coalesced with their free neighbours and kept in
 * one list per length in pages (exact best fit through a bitmap).  Free runs
 * are purged (madvise) only after HAKMEM_PURGE_DELAY_MS (purge.h); a chunk
 * that is entirely free when its purge falls due is unmapped.  Run chunks are
 * MADV_NOHUGEPAGE: their pages may stay partly untouched.
 */
#ifndef HAKMEM_PAGES_H
#define HAKMEM_PAGES_H

#include "internal.h"

#define HAK_CHUNK_PAGES (HAK_CHUNK_SIZE / HAK_PAGE_SIZE)
/* Pages at the start of a run chunk holding its header and page map. */
#define HAK_RUN_HEADER_PAGES 1
/* The longest run a chunk can hold. */
#define HAK_RUN_MAX_PAGES (HAK_CHUNK_PAGES - HAK_RUN_HEADER_PAGES)

/* A run of `npages` pages whose start is aligned to `align` (a power of two,
 * at most HAK_CHUNK_SIZE / 2, and npages + align / HAK_PAGE_SIZE at most
 * HAK_RUN_MAX_PAGES).  *zeroed tells whether every page is known to read
 * zero.  NULL if out of memory. */
HAK_HIDDEN void *pages_alloc(size_t npages, size_t align, bool *zeroed);
/* Frees the run starting at p; aborts naming `func` if p is not the start of
 * a live run ("invalid pointer" or "double free"). */
HAK_HIDDEN void pages_free(void *p, const char *func);
/* Bytes in the run starting at p (validated as pages_free does). */
HAK_HIDDEN size_t pages_usable_size(void *p, const char *func);
/* Resizes the run starting at p to `npages` in place: shrinking gives the
 * tail back, growing takes the free run right after it.  False when it
 * cannot grow in place (the run is unchanged). */
HAK_HIDDEN bool pages_resize(void *p, size_t npages, const char *func);
/* The purge hook of the layer (purge.h contract). */
HAK_HIDDEN size_t pages_purge(uint64_t now_ms, bool all);

HAK_HIDDEN void pages_fork_prepare(void);
HAK_HIDDEN void pages_fork_parent(void);
HAK_HIDDEN void pages_fork_child(void);

#endif
