/*
 * pool.h - the pool tier (HAK_TINY_MAX+1 .. HAK_POOL_MAX bytes).
 *
 * A pool page is a run of 1-8 64 KiB units of the page-run layer (pages.h),
 * aligned to a unit, holding blocks of one class: pool pages and large
 * blocks share the run areas, so pages either tier gives back serve the
 * other.  Each area's header holds a record for every unit of the area
 * (its client bytes), so free() finds a block's page by mask and shift, as
 * for any run.  Pages live on shared per-class lists under a lock per
 * class; blocks are carved from a page's tail lazily, at most about a memory
 * page (4 KiB) per step, so a page costs memory only as its blocks are used.
 * A class keeps pages that become empty for its own reuse and gives them
 * back to the page-run layer, purged, after the purge delay (purge.h); the
 * layer takes back those beyond a quarter of the pages in use (at least
 * two: pool.c) sooner, unpurged, when it needs memory, for any class or
 * large block to take (pool_give_back_excess).
 * With Pool TLS (pool_tls.c, pool_fast.h) each thread also keeps per-class
 * caches in front of those lists, which trade whole lists with a per-class
 * transfer cache.
 */
#ifndef HAKMEM_POOL_H
#define HAKMEM_POOL_H

#include "internal.h"
#include "freelist.h"
#include "registry.h"
#include "pool/pool_class.h"
#include "pages.h"
#include <stdatomic.h>

#define POOL_UNIT_SHIFT 16
#define POOL_UNIT_SIZE ((size_t)1 << POOL_UNIT_SHIFT)
#define POOL_UNITS_PER_AREA ((unsigned)(HAK_RUN_AREA_SIZE / POOL_UNIT_SIZE))
#define POOL_MAX_PAGE_UNITS 8

enum pool_page_state {
    POOL_UNIT_FREE = 0,   /* unit not in any page (the pool does not hold it) */
    POOL_PAGE_PARTIAL,    /* on its class's partial list: has blocks */
    POOL_PAGE_FULL,       /* every block handed out */
    POOL_PAGE_EMPTY,      /* on its class's empty list, waiting for reuse or purge */
    POOL_UNIT_TAIL,       /* a later unit of a page; `head` names the first */
};

#define POOL_NO_CLASS 0xffu

struct pool_page {
    void *free;          /* freed blocks (class lock) */
    struct pool_page *next, *prev; /* class partial or empty list */
    /* hak_div_magic(stride) while the page is in use (partial or full);
     * 0 otherwise, and in every record but a page's first (page_set_class) */
    uint64_t div_magic;
    uint64_t empty_since; /* when the page last emptied (hak_clock_ms) */
    uint32_t start_off;  /* first block, as an offset from the area (see
                            struct tiny_slab: no pointers to live blocks) */
    uint32_t stride;     /* == pool_class_size[cls]: the one stride */
    uint32_t limit_bytes; /* capacity * stride: what the page can carve */
    /* Bytes carved from start_off on (a multiple of stride).  Written under
     * the class lock, read without it by free(): a block that was handed out
     * lies below the value its freeing thread sees. */
    _Atomic uint32_t carved_bytes;
    uint32_t used;       /* blocks outside the page */
    /* The page's class, in the records of all its units, while the page is
     * in use (partial or full); POOL_NO_CLASS otherwise. */
    uint8_t cls;
    uint8_t units;       /* length of the page in units */
    uint8_t head;        /* index of its page's first unit (its own in a first unit; stale
                            in a unit in no page, see pool_page_lookup) */
    _Atomic uint8_t state;
};

_Static_assert(sizeof(struct pool_page) == 64, "a unit record is one cache line");

/* Cache colours of the unit records: areas are aligned to their size, so
 * records at one fixed offset would put the records of every area in the
 * same few L1 sets, where free() and the pop check keep missing them.  Area
 * k's records start (k mod POOL_AREA_COLORS) lines further in. */
#define POOL_AREA_COLORS 32u

_Static_assert((POOL_AREA_COLORS + POOL_UNITS_PER_AREA) * sizeof(struct pool_page) <=
                   HAK_RUN_CLIENT_BYTES,
               "the unit records fit an area's client bytes");
_Static_assert(POOL_UNITS_PER_AREA <= 256, "unit indexes are 8-bit");

/* The base of the run area holding p. */
HAK_INLINE uintptr_t pool_area_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(HAK_RUN_AREA_SIZE - 1);
}

/* The unit records of the run area at `area`, one per 64 KiB unit. */
HAK_INLINE struct pool_page *pool_area_units(uintptr_t area)
{
    uintptr_t color = (area / HAK_RUN_AREA_SIZE) % POOL_AREA_COLORS;
    return (struct pool_page *)(area + HAK_RUN_CLIENT_OFFSET + color * sizeof(struct pool_page));
}

HAK_HIDDEN void pool_init(void);

/* The class serving `size` bytes aligned to `align` (a power of two), or -1
 * if the pool cannot align that much. */
HAK_HIDDEN int pool_class_for(size_t size, size_t align);
HAK_HIDDEN void *pool_alloc(unsigned cls);
HAK_HIDDEN void pool_free(void *p, const char *func);
HAK_HIDDEN size_t pool_usable_size(void *p, const char *func);
/* The pool tier's purge hook (purge.h). */
HAK_HIDDEN size_t pool_purge(uint64_t now_ms, uint64_t age_ms, bool all);
/* Whether some class holds more empty pages than it keeps (pool.c), and
 * giving those back to the page-run layer, unpurged: the layer does so
 * before it maps a new area or hands out a run whose pages are not
 * resident (pages_alloc), with no lock held. */
HAK_HIDDEN bool pool_has_excess(void);
HAK_HIDDEN void pool_give_back_excess(void);

/* Shared layer, used by pool.c and pool_tls.c. */

/* The unit record of the 64 KiB unit holding p (p in a run area). */
HAK_INLINE struct pool_page *pool_unit_of(const void *p)
{
    return &pool_area_units(pool_area_of(p))[((uintptr_t)p & (HAK_RUN_AREA_SIZE - 1)) >>
                                             POOL_UNIT_SHIFT];
}

/* The registry's kind of p's chunk, with the chunks of the page-run layer
 * told apart: HAK_CHUNK_POOL where the pool holds p's unit (a page in use
 * or empty), HAK_CHUNK_RUNS (a large block's run, or nothing) elsewhere.
 * The kind every path but free()'s fast one dispatches on. */
HAK_INLINE enum hak_chunk_kind hak_kind_of(const void *p)
{
    enum hak_chunk_kind kind = hak_registry_kind(p);
    if (kind == HAK_CHUNK_RUNS &&
        atomic_load_explicit(&pool_unit_of(p)->state, memory_order_relaxed) != POOL_UNIT_FREE)
        return HAK_CHUNK_POOL;
    return kind;
}

/* The page of pool block p (p in a run area), or NULL if p is not a block
 * that was carved from a page in use: the one validity test of the tier. */
HAK_INLINE struct pool_page *pool_page_lookup(const void *p)
{
    struct pool_page *units = pool_area_units(pool_area_of(p));
    uint32_t off = (uint32_t)((uintptr_t)p & (HAK_RUN_AREA_SIZE - 1));
    /* Every unit record names its page's first unit, its own included: no
     * branch on whether p is in a page's first unit, which blocks in pages
     * of several units mispredicted (a fifth of the frees of
     * bench_random_mixed 1000000 32768 1).  A unit in no page names itself
     * (page_release) or, never used, the area's first unit, which holds
     * the header and never a page: rejected below. */
    struct pool_page *pg = &units[units[off >> POOL_UNIT_SHIFT].head];
    /* A page not in use, or a record that starts no page, has a divisor
     * magic of 0, which divides nothing: no test of the page's state (four
     * instructions fewer per pool free). */
    uint32_t rel = off - pg->start_off;
    if (HAK_UNLIKELY(rel >= atomic_load_explicit(&pg->carved_bytes, memory_order_relaxed) ||
                     !hak_divisible(rel, pg->div_magic)))
        return NULL;
    return pg;
}

/* pool_page_lookup, or abort with "<func>(): invalid pointer". */
HAK_HIDDEN struct pool_page *pool_page_of(void *p, const char *func);
/* Aborts with "malloc(): corrupted free list" unless next, the link
 * of free block b of class cls, is NULL (the end of the list) or a carved
 * block of class cls, not b, that carries the free mark: the check of the
 * slow paths (pops of lists fresh from the shared side, list walks).  Other
 * pops check only the mark of the block they hand out (pool_fast.h). */
HAK_HIDDEN void pool_check_link(const void *b, void *next, unsigned cls);
/* Takes blocks of class cls into *list (linked through their first word) and
 * returns the count: one whole transfer list when one is waiting and
 * want > 1, else up to `want` blocks from the pages, carving at most about
 * one memory page of new blocks. */
HAK_HIDDEN uint32_t pool_central_take(unsigned cls, uint32_t want, void **list);
/* Returns list, `n` blocks of class cls (fewer if it ends early): as one
 * transfer list while the class has room for one, else block by block to
 * their pages. */
HAK_HIDDEN void pool_central_put(unsigned cls, void *list, uint32_t n);
/* One block for a caller without a thread cache (the shared pool). */
HAK_HIDDEN void *pool_shared_alloc(unsigned cls);

HAK_HIDDEN void pool_fork_prepare(void);
HAK_HIDDEN void pool_fork_parent(void);
HAK_HIDDEN void pool_fork_child(void);

#endif
