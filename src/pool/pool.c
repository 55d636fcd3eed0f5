/*
 * pool.c - the pool tier's shared layer: pages of one class taken from the
 * page-run layer, their unit records, and the per-class lists of pages with
 * free blocks, each under its class's lock.  Without Pool TLS every pool
 * malloc and free comes here.
 */
#include "pool/pool.h"
#include "fast.h"
#ifdef HAKMEM_POOL_TLS
#include "pool/pool_tls.h"
#endif
#include "freelist.h"
#include "lifecycle.h"
#include "options.h"
#include "os.h"
#include "pages.h"
#include "purge.h"
#include "registry.h"
#include "stats.h"

#include "lock.h"
#include <pthread.h>
#include <string.h>

/* Whole lists of blocks the transfer cache holds per class (each at most
 * pool_class_batch_max blocks, about POOL_BATCH_BYTES). */
#define POOL_XFER_SLOTS 8

/* A list of blocks in the transfer cache, as a thread cache gave it back. */
struct pool_xfer {
    void *head;
    uint32_t n;
};

/* One class's shared state; cache-line aligned so that classes' locks do not
 * share lines. */
static struct pool_class_state {
    struct hak_lock lock;
    struct pool_page *partial;  /* pages with free or uncarved blocks */
    struct pool_page *empty;    /* empty pages, most recently emptied first */
    uint32_t nempty;            /* pages on `empty` */
    uint32_t nxfer;
    struct pool_xfer xfer[POOL_XFER_SLOTS]; /* the transfer cache */
    /* When pool_purge first saw the transfer cache idle (0: not since the
     * last list was taken); lists idle for the purge delay go back to their
     * pages, so that their pages can empty. */
    uint64_t xfer_idle_since;
    uint32_t pages; /* pages in use: partial or full */
} __attribute__((aligned(64))) classes[POOL_NUM_CLASSES];

/* Pages in use past which a class's new pages are backed at once
 * (pool_central_take). */
#define POOL_DENSE_PAGES 16u

/* Empty pages a class keeps for its own reuse: a quarter of the pages it
 * has in use, at least two.  Pages that empty beyond them (its excess)
 * stay with the class too, until the page-run layer needs memory: before
 * it maps a new area or hands out a run whose pages were purged, it takes
 * every class's excess back (pool_give_back_excess), unpurged, so that a
 * program that frees its 16 KiB blocks and then allocates 128 KiB ones
 * reuses their pages, as under glibc, instead of holding both for the
 * delay.  Until then the class reuses them itself: eight threads trading
 * 8 KiB blocks (bench_prodcons 1000000 4 8192) took 14 % less CPU time
 * than when the excess went back the moment it emptied (task-clock medians
 * of 9, alternating), which moved thousands of pages through the layer's
 * lock; kept, empty pages still go back, purged, after the delay. */
#define POOL_EMPTY_KEEP 2u
#define POOL_EMPTY_KEEP_DIV 4u

/* The classes with an excess of empty pages, one bit each: set and cleared
 * under the class's lock (excess_note), read by the layer without it. */
static _Atomic uint64_t excess_classes;
_Static_assert(POOL_NUM_CLASSES <= 64, "a bit per class");

/* The empty pages class cs keeps (POOL_EMPTY_KEEP). */
static uint32_t empty_keep(const struct pool_class_state *cs)
{
    uint32_t keep = cs->pages / POOL_EMPTY_KEEP_DIV;
    return keep < POOL_EMPTY_KEEP ? POOL_EMPTY_KEEP : keep;
}

/* Sets or clears class cs's bit of excess_classes after its counts changed
 * (class lock held); the shared word is written only when the bit flips. */
static void excess_note(struct pool_class_state *cs)
{
    uint64_t bit = (uint64_t)1 << (cs - classes);
    bool excess = cs->nempty > empty_keep(cs);
    bool noted = atomic_load_explicit(&excess_classes, memory_order_relaxed) & bit;
    if (excess && !noted)
        atomic_fetch_or_explicit(&excess_classes, bit, memory_order_relaxed);
    else if (!excess && noted)
        atomic_fetch_and_explicit(&excess_classes, ~bit, memory_order_relaxed);
}

void pool_init(void)
{
    pool_size_class_init();
    for (unsigned i = 0; i < POOL_NUM_CLASSES; i++)
        hak_lock_init(&classes[i].lock);
}

int pool_class_for(size_t size, size_t align)
{
    if (align <= HAK_ALIGN)
        return (int)pool_class_of(size);
    /* A power-of-two class carved from a page-aligned page start is aligned
     * to its size; pages start page-aligned, so alignments up to a page work. */
    if (align > HAK_PAGE_SIZE)
        return -1;
    size_t need = size > align ? size : align;
    size_t pow2 = (size_t)1 << (64 - __builtin_clzll(need - 1));
    if (pow2 > HAK_POOL_MAX)
        return -1;
    return (int)pool_class_of(pow2);
}

/* ---- pages ---- */

static char *page_start(const struct pool_page *pg)
{
    return (char *)pool_area_of(pg) + pg->start_off;
}

static size_t page_bytes(const struct pool_page *pg)
{
    return (size_t)pg->units << POOL_UNIT_SHIFT;
}

/* Writes the class of page pg (or POOL_NO_CLASS: the page leaves use) into
 * all its unit records, and the page's divisor magic, which is 0 while the
 * page is not in use: pool_page_lookup then rejects its blocks without
 * reading the page's state (hak_divisible(n, 0) is false). */
static void page_set_class(struct pool_page *pg, unsigned cls)
{
    for (unsigned k = 0; k < pg->units; k++)
        pg[k].cls = (uint8_t)cls;
    pg->div_magic = cls == POOL_NO_CLASS ? 0 : hak_div_magic(pg->stride);
}

/*
 * Page memory comes from the page-run layer and goes back to it: a page is
 * a run of whole units aligned to a unit (never the area's first unit,
 * which holds the header), whose unit records are the page's.  The page-run
 * layer counts its areas toward the large tier's mapped bytes; the runs the
 * pool holds count toward the pool's instead.
 *
 * page_new and page_release are called without the class's lock: no class
 * lock is ever held while the layer's lock is taken.  A thread holding a
 * class lock and waiting for the layer's would deadlock a fork() from a
 * signal handler that interrupted the layer's holder, whose fork handlers
 * wait for every class lock (test_fork signal_threads hung so).
 */
static struct pool_page *page_new(unsigned cls, bool *zeroed)
{
    unsigned units = pool_class_units[cls];
    size_t bytes = (size_t)units << POOL_UNIT_SHIFT;
    char *start = pages_alloc(bytes / HAK_PAGE_SIZE, POOL_UNIT_SIZE, zeroed, HAK_TIER_POOL);
    if (!start)
        return NULL;
    hak_stats_mapped(HAK_TIER_POOL, (int64_t)bytes);
    hak_stats_mapped(HAK_TIER_LARGE, -(int64_t)bytes);
    uintptr_t area = pool_area_of(start);
    unsigned first = (unsigned)(((uintptr_t)start - area) >> POOL_UNIT_SHIFT);
    struct pool_page *pg = &pool_area_units(area)[first];
    pg->start_off = (uint32_t)((uintptr_t)start - area);
    pg->stride = pool_class_size[cls];
    uint32_t capacity = (uint32_t)(bytes / pg->stride);
    pg->limit_bytes = capacity * pg->stride;
    atomic_store_explicit(&pg->carved_bytes, 0, memory_order_relaxed);
    pg->used = 0;
    pg->free = NULL;
    pg->units = (uint8_t)units;
    pg->head = (uint8_t)first;
    pg->next = pg->prev = NULL;
    for (unsigned k = 1; k < units; k++) {
        pg[k].head = (uint8_t)first;
        pg[k].div_magic = 0; /* no page starts here */
        atomic_store_explicit(&pg[k].state, POOL_UNIT_TAIL, memory_order_release);
    }
    atomic_store_explicit(&pg->state, POOL_PAGE_FULL, memory_order_release);
    if (hak_opt.pool_trace)
        hak_warn("pool: new page %p class=%u size=%u units=%u blocks=%u", (void *)start, cls,
                 pg->stride, units, capacity);
    return pg;
}

/* Gives empty page pg (out of use and of every list) back to the
 * page-run layer, purged first when `purge` (it has been empty for the
 * purge delay, or malloc_trim asks), else dirty, for the layer to purge
 * after the delay. */
static void page_release(struct pool_page *pg, bool purge)
{
    char *start = page_start(pg);
    size_t bytes = page_bytes(pg);
    if (hak_opt.pool_trace)
        hak_warn("pool: release page %p%s", (void *)start, purge ? " (purged)" : "");
    /* Each unit's record names itself again: a lookup of a pointer into a
     * unit the pool does not hold (a large block's run, later) then reads
     * no other unit's record, which a new page may be writing. */
    unsigned first = pg->head;
    for (unsigned k = 0; k < pg->units; k++) {
        pg[k].head = (uint8_t)(first + k);
        atomic_store_explicit(&pg[k].state, POOL_UNIT_FREE, memory_order_relaxed);
    }
    hak_stats_mapped(HAK_TIER_POOL, -(int64_t)bytes);
    hak_stats_mapped(HAK_TIER_LARGE, (int64_t)bytes);
    /* All of it when purged: a dense class backs a new page's first unit
     * ahead of its carving (pool_central_take). */
    if (purge)
        hak_os_purge(start, bytes);
    pages_free_pool(start, purge);
}

/* page_release of every page of `list` (linked through `next`, taken off
 * their class's lists under its lock, now let go: see page_new). */
static void pages_release(struct pool_page *list, bool purge)
{
    for (struct pool_page *pg = list, *next; pg; pg = next) {
        next = pg->next;
        page_release(pg, purge);
    }
}

/* ---- blocks ---- */

void pool_check_link(const void *b, void *next, unsigned cls)
{
    struct pool_page *pg;
    /* The registry first: next's area is read only once it is a run area. */
    if (HAK_UNLIKELY(next && (next == b || hak_registry_kind(next) != HAK_CHUNK_RUNS ||
                              !(pg = pool_page_lookup(next)) || pg->cls != cls ||
                              (HAK_HARDENING && !hak_block_marked_free(next)))))
        hak_fatal("malloc(): corrupted free list (link to %p)", next);
}

struct pool_page *pool_page_of(void *p, const char *func)
{
    struct pool_page *pg = pool_page_lookup(p);
    if (HAK_UNLIKELY(!pg))
        hak_fatal_ptr(func, "invalid pointer", p);
    return pg;
}

/* Doubly linked page lists (partial, empty) of a class. */
static void list_push(struct pool_page **list, struct pool_page *pg)
{
    pg->prev = NULL;
    pg->next = *list;
    if (*list)
        (*list)->prev = pg;
    *list = pg;
}

static void list_remove(struct pool_page **list, struct pool_page *pg)
{
    if (pg->prev)
        pg->prev->next = pg->next;
    else
        *list = pg->next;
    if (pg->next)
        pg->next->prev = pg->prev;
    pg->next = pg->prev = NULL;
}

static void partial_push(struct pool_class_state *cs, struct pool_page *pg)
{
    atomic_store_explicit(&pg->state, POOL_PAGE_PARTIAL, memory_order_relaxed);
    list_push(&cs->partial, pg);
}

/* Puts page pg, new or from the empty list, in use for class cls. */
static void page_use(struct pool_class_state *cs, unsigned cls, struct pool_page *pg)
{
    page_set_class(pg, cls);
    partial_push(cs, pg);
    cs->pages++;
}

/* Whether q is a block that page pg carved. */
static bool page_has_block(const struct pool_page *pg, const void *q)
{
    uintptr_t rel = (uintptr_t)q - (uintptr_t)page_start(pg);
    return rel < atomic_load_explicit(&pg->carved_bytes, memory_order_relaxed) &&
           hak_divisible((uint32_t)rel, pg->div_magic);
}

/* Pops the first block of page pg's free list (class lock held). */
static void *page_pop(struct pool_page *pg)
{
    void *b = pg->free;
    void *next;
    if (HAK_UNLIKELY(!hak_link_read(b, &next) || (next && !page_has_block(pg, next))))
        hak_fatal("malloc(): corrupted free list of pool page %p (link to %p)",
                  (void *)page_start(pg), next);
    pg->free = next;
    pg->used++;
    return b;
}

/* Carves new blocks from page pg's tail into *list, up to `want` and up to
 * the end of the memory page where the carved part ends (at least one):
 * a page's memory is touched as it is used, not ahead. */
static uint32_t page_carve(struct pool_page *pg, uint32_t want, void **list)
{
    uint32_t carved = atomic_load_explicit(&pg->carved_bytes, memory_order_relaxed);
    uint32_t step = hak_carve_step((uintptr_t)page_start(pg) + carved, pg->stride);
    if (want > step)
        want = step;
    uint32_t got = 0;
    while (got < want && carved < pg->limit_bytes) {
        char *b = page_start(pg) + carved;
        carved += pg->stride;
        hak_link_set(b, *list);
        *list = b;
        got++;
    }
    atomic_store_explicit(&pg->carved_bytes, carved, memory_order_relaxed);
    pg->used += got;
    return got;
}

static bool page_exhausted(const struct pool_page *pg)
{
    return !pg->free && atomic_load_explicit(&pg->carved_bytes, memory_order_relaxed) ==
                            pg->limit_bytes;
}

uint32_t pool_central_take(unsigned cls, uint32_t want, void **list)
{
    struct pool_class_state *cs = &classes[cls];
    uint32_t got = 0;
    hak_lock(&cs->lock);
    if (want > 1 && cs->nxfer) {
        cs->xfer_idle_since = 0;
        struct pool_xfer *x = &cs->xfer[--cs->nxfer];
        *list = x->head;
        got = x->n;
        hak_unlock(&cs->lock);
        return got;
    }
    bool carved = false, acquired = false;
    char *back = NULL; /* a new page's first unit, to back (below) */
    size_t back_len = 0;
    while (got < want) {
        struct pool_page *pg = cs->partial;
        if (!pg) {
            /* The most recently emptied page (its memory is likely still
             * cached and mapped), else a new one, taken without the lock
             * (see page_new); fresh if its memory is not resident. */
            acquired = true;
            bool fresh = false;
            if ((pg = cs->empty)) {
                list_remove(&cs->empty, pg);
                cs->nempty--;
            } else {
                hak_unlock(&cs->lock);
                pg = page_new(cls, &fresh);
                hak_lock(&cs->lock);
                if (!pg)
                    break;
            }
            page_use(cs, cls, pg);
            if (fresh && cs->pages > POOL_DENSE_PAGES && pg->stride <= HAK_PAGE_SIZE) {
                back = page_start(pg);
                back_len = POOL_UNIT_SIZE - ((uintptr_t)back & (POOL_UNIT_SIZE - 1));
            }
        }
        while (got < want && pg->free) {
            void *b = page_pop(pg);
            hak_link_set(b, *list);
            *list = b;
            got++;
        }
        if (got < want && !carved && !page_exhausted(pg)) {
            got += page_carve(pg, want - got, list);
            carved = true;
        }
        if (page_exhausted(pg)) {
            list_remove(&cs->partial, pg);
            atomic_store_explicit(&pg->state, POOL_PAGE_FULL, memory_order_relaxed);
        } else if (got < want) {
            break; /* carved what one step may carve */
        }
    }
    if (acquired)
        excess_note(cs);
    hak_unlock(&cs->lock);
    /* A class with more than POOL_DENSE_PAGES pages in use is carved in
     * bulk: the first unit of its new page (all of a one-unit page) is
     * backed at once, after the lock, one call instead of a page fault per
     * 4 KiB as blocks are carved; at most a unit per class resident ahead of
     * use, a sixteenth of what the class holds.  Only for blocks of a page or
     * less, whose carving touches every page anyway: a program may leave
     * most pages of a bigger block untouched (bench_random_mixed 32768 has
     * 50 MiB resident of 64 MiB allocated).  bench_fragmentation +4 %. */
    if (back)
        hak_os_populate(back, back_len);
    if (acquired)
        hak_purge_tick();
    return got;
}

/* Returns one block to its page (class lock held); true if the page went
 * to the class's empty list (the caller then notes whether the class holds
 * an excess, excess_note).  A page that empties is stamped with the time.
 * The class's only partial page stays where it is when it empties, so that
 * a program that frees and allocates one block over and over moves no page
 * between lists; pool_purge treats it as empty too. */
static bool page_put(struct pool_class_state *cs, struct pool_page *pg, void *b)
{
    hak_link_set(b, pg->free);
    pg->free = b;
    pg->used--;
    if (atomic_load_explicit(&pg->state, memory_order_relaxed) == POOL_PAGE_FULL)
        partial_push(cs, pg);
    if (pg->used == 0)
        pg->empty_since = hak_clock_ms(); /* once per page emptied, not per block */
    if (pg->used == 0 && (cs->partial != pg || pg->next)) {
        list_remove(&cs->partial, pg);
        atomic_store_explicit(&pg->state, POOL_PAGE_EMPTY, memory_order_relaxed);
        page_set_class(pg, POOL_NO_CLASS);
        list_push(&cs->empty, pg);
        cs->nempty++;
        cs->pages--;
        return true;
    }
    return false;
}

/* Moves page pg from *list onto *out, linked through `next`. */
static void page_move(struct pool_page **list, struct pool_page *pg, struct pool_page **out)
{
    list_remove(list, pg);
    pg->next = *out;
    *out = pg;
}

/* Moves the class's empty pages beyond what it keeps onto *out, for
 * pages_release(*out, false) once the lock is let go (class lock held).
 * The most recently emptied go: the list may be long, and the older ones
 * are as good to keep (the oldest are purged first). */
static void empty_excess(struct pool_class_state *cs, struct pool_page **out)
{
    uint32_t keep = empty_keep(cs);
    while (cs->nempty > keep) {
        page_move(&cs->empty, cs->empty, out);
        cs->nempty--;
    }
    excess_note(cs);
}

bool pool_has_excess(void)
{
    return atomic_load_explicit(&excess_classes, memory_order_relaxed) != 0;
}

void pool_give_back_excess(void)
{
    uint64_t mask = atomic_load_explicit(&excess_classes, memory_order_relaxed);
    while (mask) {
        struct pool_class_state *cs = &classes[__builtin_ctzll(mask)];
        mask &= mask - 1;
        struct pool_page *excess = NULL;
        hak_lock(&cs->lock);
        empty_excess(cs, &excess);
        hak_unlock(&cs->lock);
        pages_release(excess, false);
    }
}

/* Returns the blocks of list to their pages, block by block, checking each
 * link it follows (class lock held). */
static void list_put_pages(struct pool_class_state *cs, unsigned cls, void *list, uint32_t n)
{
    while (n-- && list) {
        void *b = list;
        list = hak_link_get(b);
        if (n)
            pool_check_link(b, list, cls);
        page_put(cs, pool_page_of(b, "free"), b);
    }
}

void pool_central_put(unsigned cls, void *list, uint32_t n)
{
    struct pool_class_state *cs = &classes[cls];
    hak_lock(&cs->lock);
    if (n > 1 && cs->nxfer < POOL_XFER_SLOTS) {
        cs->xfer[cs->nxfer++] = (struct pool_xfer){list, n};
    } else {
        list_put_pages(cs, cls, list, n);
        excess_note(cs);
    }
    hak_unlock(&cs->lock);
}

void *pool_shared_alloc(unsigned cls)
{
    void *b = NULL;
    pool_central_take(cls, 1, &b);
    if (b)
        hak_block_unmark(b);
    if (hak_opt.pool_trace)
        hak_warn("pool: alloc %p class=%u size=%u", b, cls, pool_class_size[cls]);
    return b;
}

size_t pool_usable_size(void *p, const char *func)
{
    return pool_page_of(p, func)->stride;
}

#ifndef HAKMEM_POOL_TLS
/* Shared pool: each malloc and free takes its class's lock. */
void *pool_alloc(unsigned cls)
{
    return pool_shared_alloc(cls);
}

void pool_free(void *p, const char *func)
{
    struct pool_page *pg = pool_page_of(p, func);
    if (HAK_UNLIKELY(hak_block_marked_free(p)))
        hak_fatal_ptr(func, "double free", p);
    unsigned cls = pg->cls;
    if (hak_opt.pool_trace)
        hak_warn("pool: free %p class=%u", p, cls);
    struct pool_class_state *cs = &classes[cls];
    hak_lock(&cs->lock);
    bool emptied = page_put(cs, pg, p);
    excess_note(cs);
    hak_unlock(&cs->lock);
    if (emptied)
        hak_purge_tick();
}
#endif

/* Whether empty page pg is due for release: empty for the purge delay
 * (page_put stamps it when it empties; a page pool_purge finds unstamped
 * is stamped now), or `all`.  So memory left alone is purged within twice
 * the delay by the first slow-path call after that. */
static bool empty_page_due(struct pool_page *pg, uint64_t now_ms, uint64_t age_ms, bool all)
{
    if (!pg->empty_since)
        pg->empty_since = now_ms;
    return all || hak_purge_due(pg->empty_since, now_ms, age_ms);
}

/* Releases the class's empty pages that are due (all of them when `all`),
 * purged, after returning the transfer cache's lists to their pages when
 * they have been idle for the delay (or `all`).  The pages go back after
 * the class's lock is let go (see page_new). */
size_t pool_purge(uint64_t now_ms, uint64_t age_ms, bool all)
{
    size_t bytes = 0;
#ifdef HAKMEM_POOL_TLS
    if (all)
        pool_tls_trim(); /* the caller's own cache is free memory too */
#endif
    for (unsigned cls = 0; cls < POOL_NUM_CLASSES; cls++) {
        struct pool_class_state *cs = &classes[cls];
        struct pool_page *due = NULL;
        hak_lock(&cs->lock);
        if (cs->nxfer && !all && !cs->xfer_idle_since)
            cs->xfer_idle_since = now_ms;
        if (all || (cs->nxfer && hak_purge_due(cs->xfer_idle_since, now_ms, age_ms))) {
            while (cs->nxfer) {
                struct pool_xfer *x = &cs->xfer[--cs->nxfer];
                list_put_pages(cs, cls, x->head, x->n);
            }
            cs->xfer_idle_since = 0;
        }
        for (struct pool_page *pg = cs->empty, *next; pg; pg = next) {
            next = pg->next;
            if (empty_page_due(pg, now_ms, age_ms, all)) {
                bytes += atomic_load_explicit(&pg->carved_bytes, memory_order_relaxed);
                page_move(&cs->empty, pg, &due);
                cs->nempty--;
            }
        }
        struct pool_page *lone = cs->partial; /* treated as empty: see page_put */
        if (lone && !lone->used && empty_page_due(lone, now_ms, age_ms, all)) {
            bytes += atomic_load_explicit(&lone->carved_bytes, memory_order_relaxed);
            page_move(&cs->partial, lone, &due);
            cs->pages--;
            atomic_store_explicit(&lone->state, POOL_PAGE_EMPTY, memory_order_relaxed);
            page_set_class(lone, POOL_NO_CLASS);
        }
        excess_note(cs);
        hak_unlock(&cs->lock);
        pages_release(due, true);
    }
    /* The pages classes gave back unpurged beyond what they keep are the
     * pool's free memory too. */
    return bytes + pages_purge(now_ms, age_ms, all, true);
}

void pool_fork_prepare(void)
{
    for (unsigned i = 0; i < POOL_NUM_CLASSES; i++)
        hak_lock(&classes[i].lock);
}

void pool_fork_parent(void)
{
    for (unsigned i = 0; i < POOL_NUM_CLASSES; i++)
        hak_unlock(&classes[i].lock);
}

void pool_fork_child(void)
{
    for (unsigned i = 0; i < POOL_NUM_CLASSES; i++)
        hak_lock_init(&classes[i].lock);
}
