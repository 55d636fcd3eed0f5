/*
 * large.h - the large tier (above HAK_POOL_MAX): page runs (pages.h) up to
 * HAK_LARGE_RUN_MAX, above it one mapping per block sized to the block in
 * pages, a best-fit cache of freed mappings, and mremap for realloc.
 */
#ifndef HAKMEM_LARGE_H
#define HAKMEM_LARGE_H

#include "internal.h"
#include "pages.h"
#include "registry.h"

/* Blocks up to this many bytes are page runs; larger ones get a mapping of
 * their own.  Half a run area (4 MiB): the area still fits the largest run
 * with room for others, and a block above it is big enough that its own
 * mapping and mremap on realloc cost little next to touching its pages.
 * (With runs only up to 1 MiB, an earlier design, freed 1..4 MiB mappings
 * stayed cached whole, each reused as it was by any shorter block: the cache
 * came to hold every mapping at the longest length, where runs share their
 * free pages among blocks of every size; a run also grows in place.) */
#define HAK_LARGE_RUN_MAX (HAK_RUN_AREA_SIZE / 2)
/* Alignments up to this are placed in runs: an area holds three runs aligned
 * to 2 MiB (a mapping of their own would take 4 MiB of address space each),
 * but only one aligned to 4 MiB (8 MiB of address space, where a mapping
 * takes 6). */
#define HAK_LARGE_RUN_ALIGN_MAX HAK_CHUNK_SIZE

HAK_HIDDEN void large_init(void);
/* A block of `size` bytes aligned to `align` (a power of two).  *zeroed
 * tells whether its memory is known to be zero (a fresh mapping). */
HAK_HIDDEN void *large_alloc(size_t size, size_t align, bool *zeroed);
HAK_HIDDEN void large_free(void *p, enum hak_chunk_kind kind, const char *func);
HAK_HIDDEN size_t large_usable_size(void *p, enum hak_chunk_kind kind, const char *func);
/* Resizes a HAK_CHUNK_RUNS or HAK_CHUNK_LARGE block without copying: a run
 * in place (shrinking always works), a mapping with mremap.  Returns the
 * block, or NULL when the caller must move it (or out of memory). */
HAK_HIDDEN void *large_realloc(void *p, enum hak_chunk_kind kind, size_t size);
/* The large tier's purge hook (purge.h): purges free runs and unmaps cached
 * mappings that have stayed unused for the delay. */
HAK_HIDDEN size_t large_purge(uint64_t now_ms, uint64_t age_ms, bool all);

HAK_HIDDEN void large_fork_prepare(void);
HAK_HIDDEN void large_fork_parent(void);
HAK_HIDDEN void large_fork_child(void);

#endif
