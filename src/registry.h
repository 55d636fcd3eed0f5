/*
 * registry.h - the chunk registry: one byte per 2 MiB of address space saying
 * which tier owns that chunk.  One load answers "is this pointer ours?".
 *
 * The registry is reserved when the library is loaded (a constructor, and
 * again at initialization should that have failed), so free()'s fast path
 * reads it with no NULL test: a non-NULL pointer reaching free() before then
 * cannot be one of ours.
 */
#ifndef HAKMEM_REGISTRY_H
#define HAKMEM_REGISTRY_H

#include "internal.h"

/* What a chunk holds. */
enum hak_chunk_kind {
    HAK_CHUNK_NONE = 0,        /* not ours */
    HAK_CHUNK_TINY = 1,        /* a tiny-tier superslab */
    HAK_CHUNK_POOL = 2,        /* never in the registry: hak_kind_of's (pool.h) name
                                  for a unit of a run area that the pool holds */
    HAK_CHUNK_LARGE = 3,       /* first chunk of a large mapping; header at its base */
    HAK_CHUNK_LARGE_TAIL = 4,  /* any later chunk of a large mapping (the last one
                                  may be mapped only in part) */
    HAK_CHUNK_LARGE_ALIGNED = 5, /* first user chunk of a block aligned to >= 2 MiB;
                                   header just below the block */
    HAK_CHUNK_RUNS = 6         /* a chunk of the page-run layer (pages.h): large
                                  blocks' runs and pool pages */
};

/* User space addresses on x86-64 fit in 47 bits. */
#define HAK_REGISTRY_ADDR_BITS 47
#define HAK_REGISTRY_ENTRIES ((size_t)1 << (HAK_REGISTRY_ADDR_BITS - HAK_CHUNK_SHIFT))

extern HAK_HIDDEN unsigned char *hak_registry;

/* Reserves the registry (MAP_NORESERVE: only touched pages cost memory) if
 * it is not yet.  Returns false if even that fails. */
HAK_HIDDEN bool hak_registry_init(void);

/* Marks [p, p + size) (chunk aligned) as `kind`. */
HAK_HIDDEN void hak_registry_set(const void *p, size_t size, enum hak_chunk_kind first,
                                 enum hak_chunk_kind rest);

HAK_INLINE enum hak_chunk_kind hak_registry_kind(const void *p)
{
    /* One unsigned compare rejects every address beyond the registry.
     * Chunk 0 (NULL and the first 2 MiB) is never ours: its entry stays
     * HAK_CHUNK_NONE, so NULL needs no test of its own. */
    uintptr_t i = (uintptr_t)p >> HAK_CHUNK_SHIFT;
    if (HAK_UNLIKELY(i >= HAK_REGISTRY_ENTRIES))
        return HAK_CHUNK_NONE;
    return (enum hak_chunk_kind)__atomic_load_n(&hak_registry[i], __ATOMIC_RELAXED);
}

#endif
