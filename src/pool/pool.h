/*
 * pool.h - the pool tier (HAK_TINY_MAX+1 .. HAK_POOL_MAX bytes).
 *
 * Pool chunks are 2 MiB chunks cut into 64 KiB units; a pool page is a run of
 * 1-8 units holding blocks of one class.  The chunk's first bytes hold the
 * metadata of every unit, so free() finds a block's page by mask and shift.
 * Pages live on shared per-class lists under a lock per class.  With Pool TLS
 * (pool_tls.c) each thread also keeps per-class caches in front of those lists
 * and an arena chunk from which it takes pages without a lock.
 */
#ifndef HAKMEM_POOL_H
#define HAKMEM_POOL_H

#include "internal.h"
#include "pool/pool_class.h"
#include <stdatomic.h>

#define POOL_UNIT_SHIFT 16
#define POOL_UNIT_SIZE ((size_t)1 << POOL_UNIT_SHIFT)
#define POOL_UNITS_PER_CHUNK ((unsigned)(HAK_CHUNK_SIZE / POOL_UNIT_SIZE))
#define POOL_MAX_PAGE_UNITS 8
#define POOL_CHUNK_HEADER ((size_t)HAK_PAGE_SIZE)

enum pool_page_state {
    POOL_UNIT_FREE = 0,   /* unit not in any page */
    POOL_PAGE_PARTIAL,    /* on its class's partial list: has blocks */
    POOL_PAGE_FULL,       /* every block handed out */
    POOL_PAGE_EMPTY,      /* the class's one kept empty page */
    POOL_UNIT_TAIL,       /* a later unit of a page; `head` names the first */
};

struct pool_page {
    void *free;          /* freed blocks (class lock) */
    uint32_t start_off;  /* first block, as an offset from the chunk (see
                            struct tiny_slab: no pointers to live blocks) */
    uint64_t div_magic;  /* hak_div_magic(stride) */
    uint32_t stride;     /* == pool_class_size[cls]: the one stride */
    uint32_t capacity;   /* blocks that fit in the page's usable bytes */
    uint32_t carved;     /* blocks carved from the page's unused tail */
    uint32_t used;       /* blocks outside the page */
    uint8_t cls;
    uint8_t units;       /* length of the page in units */
    uint8_t head;        /* for POOL_UNIT_TAIL: index of the page's first unit */
    _Atomic uint8_t state;
    struct pool_page *next, *prev; /* class partial list */
};

struct pool_chunk {
    uint64_t magic;
    _Atomic uint32_t free_units;   /* bit i: unit i is in no page */
    struct pool_chunk *next;       /* all pool chunks */
    struct pool_page pages[POOL_UNITS_PER_CHUNK];
};

_Static_assert(sizeof(struct pool_chunk) <= POOL_CHUNK_HEADER, "pool chunk header too big");

HAK_HIDDEN void pool_init(void);

/* The class serving `size` bytes aligned to `align` (a power of two), or -1
 * if the pool cannot align that much. */
HAK_HIDDEN int pool_class_for(size_t size, size_t align);
HAK_HIDDEN void *pool_alloc(unsigned cls);
HAK_HIDDEN void pool_free(void *p, const char *func);
HAK_HIDDEN size_t pool_usable_size(void *p, const char *func);
/* The pool tier's purge hook (purge.h). */
HAK_HIDDEN size_t pool_purge(uint64_t now_ms, bool all);

/* Shared layer, used by pool.c and pool_tls.c. */
HAK_HIDDEN struct pool_page *pool_page_of(void *p, const char *func);
/* Aborts with "malloc(): corrupted free list" unless next (a decoded cache
 * link) is NULL or a pool block of class cls. */
HAK_HIDDEN void pool_check_link(void *next, unsigned cls);
/* Takes up to `want` blocks of class cls into *list (linked through their
 * first word); pages come from *arena when not NULL.  Returns the count. */
HAK_HIDDEN uint32_t pool_central_take(unsigned cls, uint32_t want, void **list,
                                      struct pool_chunk **arena);
/* Returns the `n` blocks of list (all of class cls) to their pages. */
HAK_HIDDEN void pool_central_put(unsigned cls, void *list, uint32_t n);

HAK_HIDDEN void pool_fork_prepare(void);
HAK_HIDDEN void pool_fork_parent(void);
HAK_HIDDEN void pool_fork_child(void);

#endif
