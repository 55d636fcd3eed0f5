/*
 * large.h - the large tier (above HAK_POOL_MAX): one chunk-aligned mapping per
 * block, a bounded cache of freed mappings, and mremap for realloc.
 */
#ifndef HAKMEM_LARGE_H
#define HAKMEM_LARGE_H

#include "internal.h"
#include "registry.h"

HAK_HIDDEN void large_init(void);
/* A block of `size` bytes aligned to `align` (a power of two).  *zeroed
 * tells whether its memory is known to be zero (a fresh mapping). */
HAK_HIDDEN void *large_alloc(size_t size, size_t align, bool *zeroed);
HAK_HIDDEN void large_free(void *p, enum hak_chunk_kind kind, const char *func);
HAK_HIDDEN size_t large_usable_size(void *p, enum hak_chunk_kind kind, const char *func);
/* Resizes a HAK_CHUNK_LARGE block in place or by moving its pages (mremap);
 * NULL if out of memory.  Blocks aligned to a chunk or more are copied by the
 * caller instead. */
HAK_HIDDEN void *large_realloc(void *p, size_t size);
/* The large tier's purge hook (purge.h): unmaps cached mappings. */
HAK_HIDDEN size_t large_purge(uint64_t now_ms, bool all);

HAK_HIDDEN void large_fork_prepare(void);
HAK_HIDDEN void large_fork_parent(void);
HAK_HIDDEN void large_fork_child(void);

#endif
