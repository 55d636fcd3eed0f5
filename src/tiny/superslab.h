/*
 * superslab.h - the tiny tier's backing memory.
 *
 * A superslab is one 2 MiB chunk cut into TINY_SLABS_PER_SS slabs of 64 KiB.
 * Its first TINY_SS_HEADER bytes hold the metadata of all its slabs, so free()
 * finds a block's slab with a mask and a shift: no per-block header.  Slab 0
 * starts after the header; the others use all their 64 KiB.
 *
 * Slabs are handed to threads (struct tiny_heap, tiny.c) by the process-wide
 * slab manager here, which keeps superslabs with free slabs on a list under
 * one lock, purges empty slabs with madvise and unmaps empty superslabs.
 */
#ifndef HAKMEM_TINY_SUPERSLAB_H
#define HAKMEM_TINY_SUPERSLAB_H

#include "internal.h"
#include <stdatomic.h>

#define TINY_SLAB_SHIFT 16
#define TINY_SLAB_SIZE ((size_t)1 << TINY_SLAB_SHIFT)
#define TINY_SLABS_PER_SS ((unsigned)(HAK_CHUNK_SIZE / TINY_SLAB_SIZE))
#define TINY_SS_HEADER ((size_t)HAK_PAGE_SIZE)
#define TINY_SS_MAGIC 0x68616b5353ull /* "hakSS" */

struct tiny_heap;

/* Where a slab is, from its owner's point of view. */
enum tiny_slab_state {
    TINY_SLAB_FREE = 0,   /* in the slab manager, not assigned to a class */
    TINY_SLAB_CURRENT,    /* its owner's refill slab for the class */
    TINY_SLAB_PARTIAL,    /* on its owner's partial list: has free blocks */
    TINY_SLAB_FULL,       /* on its owner's full list: nothing free locally */
    TINY_SLAB_ABANDONED,  /* owner exited; on the abandoned list of its class */
};

struct tiny_slab {
    /* Blocks freed by threads other than the owner: a lock-free stack that the
     * owner takes whole with one exchange.  Kept apart from the owner's fields. */
    _Atomic(void *) remote;
    /* The owning heap; NULL while free or abandoned.  Only the owner sets it to
     * NULL and only an adopter (under the abandoned lock) sets it again. */
    _Atomic(struct tiny_heap *) owner;
    /* Owner-only fields. */
    void *free;             /* blocks returned by the owner's cache */
    /* First block, as an offset from the superslab: no pointer to a live
     * block is kept anywhere, so valgrind's leak check sees leaks as lost. */
    uint32_t start_off;
    uint64_t div_magic;     /* hak_div_magic(stride) */
    uint32_t stride;        /* == tiny_class_size[cls]: the one stride */
    uint32_t capacity;      /* blocks that fit in the slab's usable bytes */
    uint32_t carved;        /* blocks carved so far from the unused tail */
    /* carved * stride: offsets below it are blocks.  Written by the owner,
     * read by any thread validating a free, hence atomic (relaxed). */
    _Atomic uint32_t carved_end;
    uint32_t used;          /* blocks outside the slab: in caches or in use */
    uint8_t cls;
    uint8_t state;          /* enum tiny_slab_state */
    struct tiny_slab *next, *prev; /* owner's list, or the abandoned list */
};

struct superslab {
    uint64_t magic;
    uint32_t free_mask;      /* bit i: slab i is free (manager lock) */
    uint32_t dirty_mask;     /* bit i: free slab i has touched pages */
    struct superslab *next, *prev; /* manager's list of superslabs with free slabs */
    bool listed;
    struct tiny_slab slabs[TINY_SLABS_PER_SS];
};

_Static_assert(sizeof(struct superslab) <= TINY_SS_HEADER, "superslab header too big");

HAK_INLINE struct superslab *tiny_superslab_of(const void *p)
{
    return (struct superslab *)hak_chunk_base(p);
}

HAK_INLINE struct tiny_slab *tiny_slab_of(const void *p)
{
    struct superslab *ss = tiny_superslab_of(p);
    return &ss->slabs[((uintptr_t)p & HAK_CHUNK_MASK) >> TINY_SLAB_SHIFT];
}

HAK_INLINE unsigned tiny_slab_index(const struct superslab *ss, const struct tiny_slab *s)
{
    return (unsigned)(s - ss->slabs);
}

HAK_INLINE char *tiny_slab_start(const struct tiny_slab *s)
{
    return (char *)tiny_superslab_of(s) + s->start_off;
}

/* Takes a free slab from the manager and formats it for class `cls`, owned by
 * `owner`.  Returns NULL when out of memory. */
HAK_HIDDEN struct tiny_slab *tiny_slab_acquire(unsigned cls, struct tiny_heap *owner);
/* Gives an empty slab (used == 0, nothing remote) back to the manager. */
HAK_HIDDEN void tiny_slab_release(struct tiny_slab *s);
/* Purges every free slab and unmaps empty superslabs; returns bytes released. */
HAK_HIDDEN size_t tiny_superslab_trim(void);

/* fork() support: take / release / reinitialize the manager's lock. */
HAK_HIDDEN void tiny_superslab_lock(void);
HAK_HIDDEN void tiny_superslab_unlock(void);
HAK_HIDDEN void tiny_superslab_reinit_lock(void);

#endif
