/*
 * superslab.h - the tiny tier's backing memory.
 *
 * A superslab is one 2 MiB chunk cut into TINY_SLABS_PER_SS slabs of 64 KiB.
 * Each slab's record (its metadata) is its own first 64 bytes, so free()
 * finds a block's slab with one mask: no per-block header.  Slab 0's record
 * opens the superslab's header page, and its blocks start after that page;
 * the other slabs' blocks start after their record (further for classes
 * whose blocks are aligned to more than 64 bytes).
 *
 * Slab records are 64 bytes (one cache line) and hold only what the owner
 * and free()'s checks read; the remote-free stacks that other threads CAS on
 * live in an array of the header, away from the owners' lines, a line
 * each.  A slab that was never used, or was purged while free, has a record
 * of zeroes: no owner, nothing carved, so every free() into it is rejected.
 *
 * Slabs are handed to threads (struct tiny_heap, tiny.c) by the process-wide
 * slab manager (superslab.c), which keeps superslabs with free slabs on a
 * list under one lock and purges free slabs once they have been free for the
 * purge delay (purge.h).  Superslabs are never unmapped: an empty one is
 * purged down to its header page, so a stale free() of one of its old blocks
 * reads a mapped header and is reported as an invalid pointer, and the
 * address range is reused before any new mapping.
 */
#ifndef HAKMEM_TINY_SUPERSLAB_H
#define HAKMEM_TINY_SUPERSLAB_H

#include "internal.h"
#include "registry.h"
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

/* The owner of free and abandoned slabs: never a thread's heap, and not NULL
 * either, so free()'s fast path compares owners with no NULL test. */
extern HAK_HIDDEN struct tiny_heap tiny_no_owner;

struct tiny_slab {
    /* The owning heap; &tiny_no_owner while free or abandoned (NULL once a
     * free slab is purged: nothing is carved then, so no thread's free()
     * takes a block of it).  Only the owner gives it up, and only an adopter
     * (under the abandoned lock) or the manager sets it again. */
    _Atomic(struct tiny_heap *) owner;
    /* Owner-only fields. */
    void *free;             /* blocks returned to the slab (nfree of them) */
    uint64_t block_magic;   /* hak_block_magic(stride) */
    /* Minus the address of the first block: p + neg_first is p's offset in
     * the slab's usable range, one add.  Negated, it is no pointer to a live
     * block, so valgrind's leak check still sees leaks as lost. */
    uintptr_t neg_first;
    /* carved * hak_block_scale(stride): the carved blocks' starts are the
     * offsets n with hak_block_below(n, block_magic, carved_limit).  Written
     * by the owner, read by any thread validating a free, hence atomic
     * (relaxed). */
    _Atomic uint32_t carved_limit;
    uint16_t stride;        /* == tiny_class_size[cls]: the one stride */
    uint16_t capacity;      /* blocks that fit in the slab's usable bytes */
    uint16_t carved;        /* blocks carved so far from the unused tail */
    uint16_t used;          /* blocks outside the slab: in caches or in use */
    uint16_t nfree;         /* blocks on `free` */
    uint8_t cls;
    uint8_t state;          /* enum tiny_slab_state */
    struct tiny_slab *next, *prev; /* owner's list, or the abandoned list */
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct tiny_slab) == 64, "a slab record is one cache line");

struct superslab {
    /* First: slab 0's record is at the start of slab 0, as every slab's. */
    struct tiny_slab slab0;
    uint64_t magic;
    uint32_t free_mask;      /* bit i: slab i is free (manager lock) */
    uint32_t dirty_mask;     /* bit i: free slab i has touched pages */
    struct superslab *next, *prev; /* manager's list of superslabs with free slabs */
    bool listed;
    /* Blocks freed by threads other than a slab's owner: a lock-free stack
     * per slab that the owner takes whole with one exchange.  Each word is
     * a tiny_remote value: the top block and how many blocks the stack
     * holds, so the owner knows the count without walking the list.  One
     * cache line each: threads freeing into neighbouring slabs of one
     * superslab do not contend for a line (two consumers freeing a
     * producer's blocks, bench_prodcons 8000000 2 64 1 lifo and
     * bench_prodcons 4000000 4: 11 % less CPU time). */
    struct {
        _Atomic uintptr_t word;
    } __attribute__((aligned(64))) remote[TINY_SLABS_PER_SS];
    /* The class free slab i last held (manager lock): a class gets back a
     * slab it used before when one is free, see superslab_pick. */
    uint8_t last_cls[TINY_SLABS_PER_SS];
    /* When free slab i became free (hak_clock_ms; manager lock). */
    uint64_t free_since_ms[TINY_SLABS_PER_SS];
};

_Static_assert(sizeof(struct superslab) <= TINY_SS_HEADER, "superslab header too big");

HAK_INLINE struct superslab *tiny_superslab_of(const void *p)
{
    return (struct superslab *)hak_chunk_base(p);
}

/* The slab record of block (or slab record) p: one mask. */
HAK_INLINE struct tiny_slab *tiny_slab_of(const void *p)
{
    return (struct tiny_slab *)((uintptr_t)p & ~(uintptr_t)(TINY_SLAB_SIZE - 1));
}

/* Whether s is where a slab record is: the start of a slab of a tiny chunk
 * (a test for pointers read from state that may be torn, as in a fork child). */
HAK_INLINE bool tiny_is_slab_record(const void *s)
{
    return s && ((uintptr_t)s & (TINY_SLAB_SIZE - 1)) == 0 &&
           hak_registry_kind(s) == HAK_CHUNK_TINY;
}

/* The record of slab i of superslab ss. */
HAK_INLINE struct tiny_slab *tiny_slab_at(struct superslab *ss, unsigned i)
{
    return (struct tiny_slab *)((char *)ss + ((size_t)i << TINY_SLAB_SHIFT));
}

HAK_INLINE unsigned tiny_slab_index(const struct superslab *ss, const struct tiny_slab *s)
{
    return (unsigned)(((uintptr_t)s - (uintptr_t)ss) >> TINY_SLAB_SHIFT);
}

HAK_INLINE _Atomic uintptr_t *tiny_slab_remote(struct tiny_slab *s)
{
    struct superslab *ss = tiny_superslab_of(s);
    return &ss->remote[tiny_slab_index(ss, s)].word;
}

/* A remote stack's word: the top block's address in the low 48 bits (every
 * chunk lies below 2^47, all the registry covers) and the number of blocks
 * on the stack in the high 16 (a slab holds at most 4096); 0 is the empty
 * stack.  A count that wrapped (65536 pushes between two takes: the same
 * block pushed again and again) reads as 0, which the owner reports. */
#define TINY_REMOTE_COUNT_SHIFT 48
_Static_assert(TINY_REMOTE_COUNT_SHIFT >= HAK_REGISTRY_ADDR_BITS, "block addresses fit below the count");

HAK_INLINE uintptr_t tiny_remote_push_value(uintptr_t old, void *p)
{
    return (uintptr_t)p | ((old >> TINY_REMOTE_COUNT_SHIFT) + 1) << TINY_REMOTE_COUNT_SHIFT;
}

HAK_INLINE void *tiny_remote_top(uintptr_t v)
{
    return (void *)(v & (((uintptr_t)1 << TINY_REMOTE_COUNT_SHIFT) - 1));
}

HAK_INLINE uint32_t tiny_remote_count(uintptr_t v)
{
    return (uint32_t)(v >> TINY_REMOTE_COUNT_SHIFT);
}

/* Offset of slab i's first block in its superslab, for blocks of `stride`
 * bytes: past the header page in slab 0, else past the record, and aligned
 * as the slab's start is to the largest power of two dividing the stride (a
 * power-of-two class serves aligned requests).  The one definition of a
 * slab's usable range. */
HAK_INLINE uint32_t tiny_slab_first_off(unsigned i, unsigned stride)
{
    uint32_t align = stride & -stride, past = (uint32_t)sizeof(struct tiny_slab);
    return (uint32_t)((size_t)i << TINY_SLAB_SHIFT) +
           (i == 0 ? (uint32_t)TINY_SS_HEADER : (align > past ? align : past));
}

/* Slab i's neg_first for blocks of `stride` bytes. */
HAK_INLINE uintptr_t tiny_slab_neg_first(const struct superslab *ss, unsigned i, unsigned stride)
{
    return -((uintptr_t)ss + tiny_slab_first_off(i, stride));
}

HAK_INLINE char *tiny_slab_start(const struct tiny_slab *s)
{
    return (char *)-s->neg_first;
}

/* Takes a free slab from the manager and formats it for class `cls`, owned by
 * `owner`.  `dense`: the owner has used up many slabs of the class already
 * and will likely carve this one whole, so a slab with no resident pages is
 * backed at once (hak_os_populate) rather than a page fault at a time.
 * Returns NULL when out of memory. */
HAK_HIDDEN struct tiny_slab *tiny_slab_acquire(unsigned cls, struct tiny_heap *owner, bool dense);
/* Gives an empty slab (used == 0, nothing remote) back to the manager, which
 * purges it once it has been free for the purge delay. */
HAK_HIDDEN void tiny_slab_release(struct tiny_slab *s);
/* Purges free slabs free since at or before now_ms - delay (all of them
 * with `all`); returns bytes released. */
HAK_HIDDEN size_t tiny_superslab_purge(uint64_t now_ms, uint64_t age_ms, bool all);

/* fork() support: take / release / reinitialize the manager's lock. */
HAK_HIDDEN void tiny_superslab_lock(void);
HAK_HIDDEN void tiny_superslab_unlock(void);
HAK_HIDDEN void tiny_superslab_reinit_lock(void);

#endif
