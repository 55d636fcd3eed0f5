/*
 * superslab.c - the process-wide tiny slab manager: superslab mapping, slab
 * hand-out and return, delayed purging.  Everything here runs under one
 * lock; it is reached once per 64 KiB slab, never per block.
 */
#include "tiny/superslab.h"
#include "tiny/size_class.h"
#include "lock.h"
#include "os.h"
#include "purge.h"
#include "registry.h"
#include "stats.h"

#include <string.h>

static struct hak_lock ss_lock = HAK_LOCK_INITIALIZER;
static struct superslab *ss_avail;      /* superslabs with at least one free slab */
/* Free slabs with touched pages (dirty_mask bits of free slabs), in all
 * superslabs: while there are any, a slab is taken from them. */
static unsigned ss_dirty_free;

#define SS_ALL_FREE ((uint32_t)(((uint64_t)1 << TINY_SLABS_PER_SS) - 1))

static void list_push(struct superslab *ss)
{
    ss->prev = NULL;
    ss->next = ss_avail;
    if (ss_avail)
        ss_avail->prev = ss;
    ss_avail = ss;
    ss->listed = true;
}

static void list_remove(struct superslab *ss)
{
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        ss_avail = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    ss->next = ss->prev = NULL;
    ss->listed = false;
}

/* A new superslab, not yet listed.  Called without ss_lock: a thread
 * interrupted in mmap by a signal whose handler forks must not hold a lock
 * that threads holding the locks fork() takes first (the abandoned lists',
 * the orphan lock) may wait for (as pool.c maps its chunks). */
static struct superslab *superslab_new(void)
{
    struct superslab *ss = hak_os_map_chunks(HAK_CHUNK_SIZE);
    if (!ss)
        return NULL;
    ss->magic = TINY_SS_MAGIC;
    ss->free_mask = SS_ALL_FREE;
    ss->dirty_mask = 0;
    /* The slab records stay zero (no owner, nothing carved) until their
     * slabs are used: writing them would touch a page of every slab. */
    hak_registry_set(ss, HAK_CHUNK_SIZE, HAK_CHUNK_TINY, HAK_CHUNK_TINY);
    hak_stats_mapped(HAK_TIER_TINY, (int64_t)HAK_CHUNK_SIZE);
    hak_purge_note_growth(HAK_TIER_TINY);
    return ss;
}

/* Slab i's pages go back to the kernel, its record with them (it reads as
 * zeroes then: see superslab.h); slab 0's header page stays. */
static void slab_purge(struct superslab *ss, unsigned i)
{
    size_t first = i == 0 ? TINY_SS_HEADER : (size_t)i << TINY_SLAB_SHIFT;
    size_t end = (size_t)(i + 1) << TINY_SLAB_SHIFT;
    hak_os_purge((char *)ss + first, end - first);
    ss->dirty_mask &= ~(1u << i);
    ss_dirty_free--;
}

/* The superslab to take a slab from, and in *slot the slab: a free slab
 * whose pages are still resident, wherever it is on the list (taking an
 * untouched slab while touched ones wait for the purge delay would add their
 * pages to the RSS), preferably one that last held class cls; else the first
 * superslab already in use, so that empty ones stay empty and get purged;
 * NULL if none has a free slab.  Why the class: a slab keeps resident every
 * page any earlier owner carved, and a class carves about as far as it did
 * before, so a slab of 512-byte blocks (all 16 pages touched) handed to a
 * 16-byte class, which uses one page, keeps 15 idle pages resident while in
 * use.  With threads that come and go (bench_larson 2 4000 100000) the tiny
 * tier's resident pages halved: 8.1 MiB -> 4.3 MiB mid-run. */
static struct superslab *superslab_pick(unsigned cls, unsigned *slot)
{
    struct superslab *ss;
    if (ss_dirty_free) {
        struct superslab *any = NULL;
        for (ss = ss_avail; ss; ss = ss->next) {
            uint32_t m = ss->free_mask & ss->dirty_mask;
            if (!m)
                continue;
            if (!any) {
                any = ss;
                *slot = (unsigned)__builtin_ctz(m);
            }
            for (; m; m &= m - 1)
                if (ss->last_cls[__builtin_ctz(m)] == cls) {
                    *slot = (unsigned)__builtin_ctz(m);
                    return ss;
                }
        }
        HAK_DEBUG_CHECK(any, "tiny: %u dirty free slabs counted, none listed", ss_dirty_free);
        if (any)
            return any;
    }
    ss = ss_avail;
    while (ss && ss->free_mask == SS_ALL_FREE && ss->next)
        ss = ss->next;
    if (ss)
        *slot = (unsigned)__builtin_ctz(ss->free_mask);
    return ss;
}

struct tiny_slab *tiny_slab_acquire(unsigned cls, struct tiny_heap *owner, bool dense)
{
    hak_purge_tick();
    hak_lock(&ss_lock);
    unsigned i = 0;
    struct superslab *ss = superslab_pick(cls, &i);
    if (!ss) {
        hak_unlock(&ss_lock);
        struct superslab *fresh = superslab_new();
        if (!fresh)
            return NULL;
        hak_lock(&ss_lock);
        /* Listed even if another thread listed one meanwhile: superslabs
         * are never unmapped, and an unused one costs its header page. */
        list_push(fresh);
        ss = superslab_pick(cls, &i);
    }
    bool resident = ss->dirty_mask & (1u << i);
    if (resident)
        ss_dirty_free--;
    ss->free_mask &= ~(1u << i);
    ss->dirty_mask &= ~(1u << i);
    if (!ss->free_mask)
        list_remove(ss);
    hak_unlock(&ss_lock);

    struct tiny_slab *s = tiny_slab_at(ss, i);
    if (dense && !resident)
        hak_os_populate((char *)ss + ((size_t)i << TINY_SLAB_SHIFT), TINY_SLAB_SIZE);
    s->stride = tiny_class_size[cls];
    s->neg_first = tiny_slab_neg_first(ss, i, s->stride);
    s->block_magic = hak_block_magic(s->stride);
    s->capacity = (uint16_t)((((size_t)(i + 1) << TINY_SLAB_SHIFT) -
                              tiny_slab_first_off(i, s->stride)) /
                             s->stride);
    s->carved = 0;
    s->used = 0;
    s->nfree = 0;
    s->free = NULL;
    s->cls = (uint8_t)cls;
    s->state = TINY_SLAB_CURRENT;
    s->next = s->prev = NULL;
    atomic_store_explicit(&ss->remote[i].word, 0, memory_order_relaxed);
    atomic_store_explicit(&s->carved_limit, 0, memory_order_relaxed);
    atomic_store_explicit(&s->owner, owner, memory_order_release);
    return s;
}

void tiny_slab_release(struct tiny_slab *s)
{
    struct superslab *ss = tiny_superslab_of(s);
    unsigned i = tiny_slab_index(ss, s);
    s->state = TINY_SLAB_FREE;
    /* From now on free() of any of its blocks is invalid. */
    atomic_store_explicit(&s->carved_limit, 0, memory_order_relaxed);
    atomic_store_explicit(&s->owner, &tiny_no_owner, memory_order_relaxed);
    uint64_t now = hak_clock_ms();

    hak_lock(&ss_lock);
    ss->free_mask |= 1u << i;
    ss->dirty_mask |= 1u << i; /* its record, at least, is resident */
    ss->last_cls[i] = s->cls;
    ss_dirty_free++;
    /* To the front, where superslab_pick looks first. */
    if (ss->listed && ss != ss_avail)
        list_remove(ss);
    ss->free_since_ms[i] = now;
    if (!ss->listed)
        list_push(ss);
    hak_unlock(&ss_lock);
}

size_t tiny_superslab_purge(uint64_t now_ms, uint64_t age_ms, bool all)
{
    size_t bytes = 0;
    hak_lock(&ss_lock);
    for (struct superslab *ss = ss_avail; ss; ss = ss->next) {
        uint32_t m = ss->dirty_mask & ss->free_mask;
        while (m) {
            unsigned i = (unsigned)__builtin_ctz(m);
            m &= m - 1;
            if (all || hak_purge_due(ss->free_since_ms[i], now_ms, age_ms)) {
                slab_purge(ss, i);
                bytes += TINY_SLAB_SIZE;
            }
        }
    }
    hak_unlock(&ss_lock);
    return bytes;
}

void tiny_superslab_lock(void) { hak_lock(&ss_lock); }
void tiny_superslab_unlock(void) { hak_unlock(&ss_lock); }
void tiny_superslab_reinit_lock(void) { hak_lock_init(&ss_lock); }
