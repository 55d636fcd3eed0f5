/*
 * pool.c - the pool tier's shared layer: pool chunks and their units, pages
 * of one class, and the per-class lists of pages with free blocks, each under
 * its class's lock.  Without Pool TLS every pool malloc and free comes here.
 */
#include "pool/pool.h"
#include "freelist.h"
#include "lifecycle.h"
#include "options.h"
#include "os.h"
#include "registry.h"
#include "stats.h"

#include "lock.h"
#include <pthread.h>
#include <string.h>

#define POOL_CHUNK_MAGIC 0x68616b504f4f4cull /* "hakPOOL" */
#define ALL_UNITS_FREE ((uint32_t)(((uint64_t)1 << POOL_UNITS_PER_CHUNK) - 1))

static struct pool_class_state {
    struct hak_lock lock;
    struct pool_page *partial;  /* pages with free or uncarved blocks */
    struct pool_page *empty;    /* one empty page kept to avoid map/purge churn */
} classes[POOL_NUM_CLASSES];

/* All pool chunks, newest first; chunks are never unmapped (their free units
 * are purged), so the list only grows and is read without the lock. */
static struct hak_lock chunk_lock = HAK_LOCK_INITIALIZER;
static struct pool_chunk *_Atomic chunks;

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

/* ---- units and chunks ---- */

static struct pool_chunk *chunk_new(void)
{
    struct pool_chunk *c = hak_os_map_chunks(HAK_CHUNK_SIZE);
    if (!c)
        return NULL;
    c->magic = POOL_CHUNK_MAGIC;
    atomic_store(&c->free_units, ALL_UNITS_FREE);
    hak_registry_set(c, HAK_CHUNK_SIZE, HAK_CHUNK_POOL, HAK_CHUNK_POOL);
    hak_stats_mapped(HAK_TIER_POOL, (int64_t)HAK_CHUNK_SIZE);
    c->next = atomic_load(&chunks);
    atomic_store_explicit(&chunks, c, memory_order_release);
    return c;
}

/* Claims `units` free units (a power of two, aligned to itself) of chunk c
 * with one CAS; returns the first index or -1. */
static int units_claim(struct pool_chunk *c, unsigned units)
{
    uint32_t run = (uint32_t)(((uint64_t)1 << units) - 1);
    uint32_t mask = atomic_load_explicit(&c->free_units, memory_order_relaxed);
    for (;;) {
        int found = -1;
        for (unsigned i = 0; i < POOL_UNITS_PER_CHUNK; i += units) {
            if (((mask >> i) & run) == run) {
                found = (int)i;
                break;
            }
        }
        if (found < 0)
            return -1;
        if (atomic_compare_exchange_weak_explicit(&c->free_units, &mask,
                                                  mask & ~(run << found),
                                                  memory_order_acquire, memory_order_relaxed))
            return found;
    }
}

static char *unit_addr(struct pool_chunk *c, unsigned i)
{
    return (char *)c + ((size_t)i << POOL_UNIT_SHIFT);
}

/* Finds `units` free units, trying *arena first; updates *arena to the chunk
 * used.  Only a miss on the arena takes the chunk lock. */
static struct pool_page *page_claim(unsigned units, struct pool_chunk **arena)
{
    struct pool_chunk *c = arena ? *arena : NULL;
    int i = c ? units_claim(c, units) : -1;
    if (i < 0) {
        hak_lock(&chunk_lock);
        for (c = atomic_load_explicit(&chunks, memory_order_acquire); c; c = c->next)
            if ((i = units_claim(c, units)) >= 0)
                break;
        if (!c && (c = chunk_new()) != NULL)
            i = units_claim(c, units);
        hak_unlock(&chunk_lock);
        if (!c || i < 0)
            return NULL;
        if (arena)
            *arena = c;
    }
    return &c->pages[i];
}

static struct pool_chunk *chunk_of_page(const struct pool_page *pg)
{
    return (struct pool_chunk *)hak_chunk_base(pg);
}

static char *page_start(const struct pool_page *pg)
{
    return (char *)chunk_of_page(pg) + pg->start_off;
}

static struct pool_page *page_new(unsigned cls, struct pool_chunk **arena)
{
    unsigned units = pool_class_units[cls];
    struct pool_page *pg = page_claim(units, arena);
    if (!pg)
        return NULL;
    struct pool_chunk *c = chunk_of_page(pg);
    unsigned first = (unsigned)(pg - c->pages);
    char *base = unit_addr(c, first);
    char *start = base + (first == 0 ? POOL_CHUNK_HEADER : 0);
    pg->start_off = (uint32_t)(start - (char *)c);
    pg->stride = pool_class_size[cls];
    pg->div_magic = hak_div_magic(pg->stride);
    pg->capacity = (uint32_t)((size_t)(base + ((size_t)units << POOL_UNIT_SHIFT) - start) /
                              pg->stride);
    pg->carved = 0;
    pg->used = 0;
    pg->free = NULL;
    pg->cls = (uint8_t)cls;
    pg->units = (uint8_t)units;
    pg->head = (uint8_t)first;
    pg->next = pg->prev = NULL;
    for (unsigned k = 1; k < units; k++) {
        c->pages[first + k].head = (uint8_t)first;
        atomic_store_explicit(&c->pages[first + k].state, POOL_UNIT_TAIL, memory_order_release);
    }
    atomic_store_explicit(&pg->state, POOL_PAGE_FULL, memory_order_release);
    if (hak_opt.pool_trace)
        hak_warn("pool: new page %p class=%u size=%u units=%u blocks=%u", (void *)start, cls,
                 pg->stride, units, pg->capacity);
    return pg;
}

/* Purges the page's memory and gives its units back to the chunk. */
static void page_release(struct pool_page *pg)
{
    struct pool_chunk *c = chunk_of_page(pg);
    unsigned first = (unsigned)(pg - c->pages);
    char *base = unit_addr(c, first);
    if (hak_opt.pool_trace)
        hak_warn("pool: release page %p class=%u", (void *)page_start(pg), pg->cls);
    for (unsigned k = 0; k < pg->units; k++)
        atomic_store_explicit(&c->pages[first + k].state, POOL_UNIT_FREE, memory_order_relaxed);
    if (pg->carved)
        hak_os_purge(page_start(pg), (size_t)(base + ((size_t)pg->units << POOL_UNIT_SHIFT) -
                                              page_start(pg)));
    uint32_t run = (uint32_t)(((uint64_t)1 << pg->units) - 1) << first;
    atomic_fetch_or_explicit(&c->free_units, run, memory_order_release);
}

/* ---- blocks ---- */

void pool_check_link(void *next, unsigned cls)
{
    if (next && (hak_registry_kind(next) != HAK_CHUNK_POOL ||
                 pool_page_of(next, "malloc")->cls != cls))
        hak_fatal("malloc(): corrupted free list (link to %p)", next);
}

struct pool_page *pool_page_of(void *p, const char *func)
{
    struct pool_chunk *c = (struct pool_chunk *)hak_chunk_base(p);
    unsigned i = (unsigned)(((uintptr_t)p & HAK_CHUNK_MASK) >> POOL_UNIT_SHIFT);
    struct pool_page *pg = &c->pages[i];
    uint8_t st = atomic_load_explicit(&pg->state, memory_order_acquire);
    if (st == POOL_UNIT_TAIL) {
        pg = &c->pages[pg->head];
        st = atomic_load_explicit(&pg->state, memory_order_acquire);
    }
    uintptr_t off = ((uintptr_t)p & HAK_CHUNK_MASK) - pg->start_off;
    if (HAK_UNLIKELY(st == POOL_UNIT_FREE || st == POOL_UNIT_TAIL || st == POOL_PAGE_EMPTY ||
                     off >= (uintptr_t)pg->capacity * pg->stride ||
                     !hak_divisible((uint32_t)off, pg->div_magic)))
        hak_fatal_ptr(func, "invalid pointer", p);
    return pg;
}

static void partial_push(struct pool_class_state *cs, struct pool_page *pg)
{
    atomic_store_explicit(&pg->state, POOL_PAGE_PARTIAL, memory_order_relaxed);
    pg->prev = NULL;
    pg->next = cs->partial;
    if (cs->partial)
        cs->partial->prev = pg;
    cs->partial = pg;
}

static void partial_remove(struct pool_class_state *cs, struct pool_page *pg)
{
    if (pg->prev)
        pg->prev->next = pg->next;
    else
        cs->partial = pg->next;
    if (pg->next)
        pg->next->prev = pg->prev;
    pg->next = pg->prev = NULL;
}

uint32_t pool_central_take(unsigned cls, uint32_t want, void **list, struct pool_chunk **arena)
{
    struct pool_class_state *cs = &classes[cls];
    uint32_t got = 0;
    hak_lock(&cs->lock);
    while (got < want) {
        struct pool_page *pg = cs->partial;
        if (!pg) {
            pg = cs->empty;
            if (pg)
                cs->empty = NULL;
            else
                pg = page_new(cls, arena);
            if (!pg)
                break;
            partial_push(cs, pg);
        }
        while (got < want && pg->free) {
            void *b = pg->free;
            pg->free = hak_link_get(b);
            if (HAK_UNLIKELY(pg->free && (hak_chunk_base(pg->free) != hak_chunk_base(pg) ||
                                          pool_page_of(pg->free, "malloc") != pg)))
                hak_fatal("malloc(): corrupted free list of pool page %p", (void *)page_start(pg));
            hak_link_set(b, *list);
            *list = b;
            got++;
            pg->used++;
        }
        while (got < want && pg->carved < pg->capacity) {
            char *b = page_start(pg) + (size_t)pg->carved++ * pg->stride;
            HAK_DEBUG_CHECK(pool_page_of(b, "carve") == pg, "carve %p outside page", (void *)b);
            hak_link_set(b, *list);
            *list = b;
            got++;
            pg->used++;
        }
        if (!pg->free && pg->carved == pg->capacity) {
            partial_remove(cs, pg);
            atomic_store_explicit(&pg->state, POOL_PAGE_FULL, memory_order_relaxed);
        }
    }
    hak_unlock(&cs->lock);
    return got;
}

/* Returns one block to its page (class lock held). */
static void page_put(struct pool_class_state *cs, struct pool_page *pg, void *b)
{
    hak_link_set(b, pg->free);
    pg->free = b;
    pg->used--;
    if (atomic_load_explicit(&pg->state, memory_order_relaxed) == POOL_PAGE_FULL)
        partial_push(cs, pg);
    if (pg->used == 0) {
        partial_remove(cs, pg);
        if (!cs->empty) {
            atomic_store_explicit(&pg->state, POOL_PAGE_EMPTY, memory_order_relaxed);
            cs->empty = pg;
        } else {
            page_release(pg);
        }
    }
}

void pool_central_put(unsigned cls, void *list, uint32_t n)
{
    struct pool_class_state *cs = &classes[cls];
    hak_lock(&cs->lock);
    while (n--) {
        void *b = list;
        list = hak_link_get(b);
        page_put(cs, pool_page_of(b, "free"), b);
    }
    hak_unlock(&cs->lock);
}

size_t pool_usable_size(void *p, const char *func)
{
    return pool_page_of(p, func)->stride;
}

#ifndef HAKMEM_POOL_TLS
/* Shared pool: each malloc and free takes its class's lock. */
void *pool_alloc(unsigned cls)
{
    void *b = NULL;
    pool_central_take(cls, 1, &b, NULL);
    if (b)
        hak_block_unmark(b);
    if (hak_opt.pool_trace)
        hak_warn("pool: alloc %p class=%u size=%u", b, cls, pool_class_size[cls]);
    return b;
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
    page_put(cs, pg, p);
    hak_unlock(&cs->lock);
}
#endif

size_t pool_purge(uint64_t now_ms, bool all)
{
    (void)now_ms;
    if (!all)
        return 0;
    size_t bytes = 0;
    for (unsigned cls = 0; cls < POOL_NUM_CLASSES; cls++) {
        struct pool_class_state *cs = &classes[cls];
        hak_lock(&cs->lock);
        if (cs->empty) {
            bytes += (size_t)cs->empty->units << POOL_UNIT_SHIFT;
            page_release(cs->empty);
            cs->empty = NULL;
        }
        hak_unlock(&cs->lock);
    }
    return bytes;
}

void pool_fork_prepare(void)
{
    for (unsigned i = 0; i < POOL_NUM_CLASSES; i++)
        hak_lock(&classes[i].lock);
    hak_lock(&chunk_lock);
}

void pool_fork_parent(void)
{
    hak_unlock(&chunk_lock);
    for (unsigned i = 0; i < POOL_NUM_CLASSES; i++)
        hak_unlock(&classes[i].lock);
}

void pool_fork_child(void)
{
    hak_lock_init(&chunk_lock);
    for (unsigned i = 0; i < POOL_NUM_CLASSES; i++)
        hak_lock_init(&classes[i].lock);
}
