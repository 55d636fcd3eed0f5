/*
 * superslab.c - the process-wide tiny slab manager: superslab mapping, slab
 * hand-out and return, purging and unmapping.  Everything here runs under
 * one lock; it is reached once per 64 KiB slab, never per block.
 */
#include "tiny/superslab.h"
#include "tiny/size_class.h"
#include "os.h"
#include "registry.h"
#include "stats.h"

#include "lock.h"
#include <pthread.h>
#include <string.h>

/* Free slabs with touched pages kept before they are purged with madvise. */
#define TINY_DIRTY_SLABS_MAX 64
/* Completely empty superslabs kept mapped (their slabs purged) for reuse. */
#define TINY_EMPTY_SS_MAX 1

static struct hak_lock ss_lock = HAK_LOCK_INITIALIZER;
static struct superslab *ss_avail;      /* superslabs with at least one free slab */
static unsigned ss_dirty_slabs;          /* free slabs with dirty pages, all superslabs */
static unsigned ss_empty;                /* superslabs whose slabs are all free */

#define SS_ALL_FREE ((uint32_t)(((uint64_t)1 << TINY_SLABS_PER_SS) - 1))

static char *slab_base(struct superslab *ss, unsigned i)
{
    return (char *)ss + ((size_t)i << TINY_SLAB_SHIFT);
}

/* Usable range of slab i: slab 0 starts after the superslab header. */
static char *slab_start(struct superslab *ss, unsigned i)
{
    return slab_base(ss, i) + (i == 0 ? TINY_SS_HEADER : 0);
}

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

static struct superslab *superslab_new(void)
{
    struct superslab *ss = hak_os_map_chunks(HAK_CHUNK_SIZE);
    if (!ss)
        return NULL;
    ss->magic = TINY_SS_MAGIC;
    ss->free_mask = SS_ALL_FREE;
    ss->dirty_mask = 0;
    hak_registry_set(ss, HAK_CHUNK_SIZE, HAK_CHUNK_TINY, HAK_CHUNK_TINY);
    hak_stats_mapped(HAK_TIER_TINY, (int64_t)HAK_CHUNK_SIZE);
    ss_empty++;
    list_push(ss);
    return ss;
}

static void superslab_unmap(struct superslab *ss)
{
    list_remove(ss);
    hak_registry_set(ss, HAK_CHUNK_SIZE, HAK_CHUNK_NONE, HAK_CHUNK_NONE);
    hak_stats_mapped(HAK_TIER_TINY, -(int64_t)HAK_CHUNK_SIZE);
    hak_os_unmap(ss, HAK_CHUNK_SIZE);
}

static void slab_purge(struct superslab *ss, unsigned i)
{
    char *start = slab_start(ss, i);
    hak_os_purge(start, (size_t)(slab_base(ss, i) + TINY_SLAB_SIZE - start));
    ss->dirty_mask &= ~(1u << i);
    ss_dirty_slabs--;
}

/* Purges every dirty free slab of every listed superslab. */
static size_t purge_all_locked(void)
{
    size_t bytes = 0;
    for (struct superslab *ss = ss_avail; ss; ss = ss->next) {
        uint32_t m = ss->dirty_mask & ss->free_mask;
        while (m) {
            unsigned i = (unsigned)__builtin_ctz(m);
            m &= m - 1;
            slab_purge(ss, i);
            bytes += TINY_SLAB_SIZE;
        }
    }
    return bytes;
}

struct tiny_slab *tiny_slab_acquire(unsigned cls, struct tiny_heap *owner)
{
    hak_lock(&ss_lock);
    struct superslab *ss = ss_avail;
    /* Prefer a superslab that is already in use: empty ones may be unmapped. */
    while (ss && ss->free_mask == SS_ALL_FREE && ss->next)
        ss = ss->next;
    if (!ss)
        ss = superslab_new();
    if (!ss) {
        hak_unlock(&ss_lock);
        return NULL;
    }
    /* Reuse a dirty slab first: its pages are already resident. */
    uint32_t pick = ss->free_mask & ss->dirty_mask;
    unsigned i = (unsigned)__builtin_ctz(pick ? pick : ss->free_mask);
    if (ss->free_mask == SS_ALL_FREE)
        ss_empty--;
    ss->free_mask &= ~(1u << i);
    if (ss->dirty_mask & (1u << i)) {
        ss->dirty_mask &= ~(1u << i);
        ss_dirty_slabs--;
    }
    if (!ss->free_mask)
        list_remove(ss);
    hak_unlock(&ss_lock);

    struct tiny_slab *s = &ss->slabs[i];
    char *start = slab_start(ss, i);
    s->start_off = (uint32_t)(start - (char *)ss);
    s->stride = tiny_class_size[cls];
    s->div_magic = hak_div_magic(s->stride);
    s->capacity = (uint32_t)((size_t)(slab_base(ss, i) + TINY_SLAB_SIZE - start) / s->stride);
    s->carved = 0;
    atomic_store_explicit(&s->carved_end, 0, memory_order_relaxed);
    s->used = 0;
    s->free = NULL;
    s->cls = (uint8_t)cls;
    s->state = TINY_SLAB_CURRENT;
    s->next = s->prev = NULL;
    atomic_store_explicit(&s->remote, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->owner, owner, memory_order_release);
    return s;
}

void tiny_slab_release(struct tiny_slab *s)
{
    struct superslab *ss = tiny_superslab_of(s);
    unsigned i = tiny_slab_index(ss, s);
    s->state = TINY_SLAB_FREE;
    /* From now on free() of any of its blocks is invalid. */
    atomic_store_explicit(&s->carved_end, 0, memory_order_relaxed);
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);

    hak_lock(&ss_lock);
    ss->free_mask |= 1u << i;
    if (s->carved) {
        ss->dirty_mask |= 1u << i;
        ss_dirty_slabs++;
    }
    if (!ss->listed)
        list_push(ss);
    if (ss->free_mask == SS_ALL_FREE) {
        if (ss_empty >= TINY_EMPTY_SS_MAX) {
            ss_dirty_slabs -= (unsigned)__builtin_popcount(ss->dirty_mask);
            superslab_unmap(ss);
        } else {
            ss_empty++;
        }
    }
    if (ss_dirty_slabs > TINY_DIRTY_SLABS_MAX)
        purge_all_locked();
    hak_unlock(&ss_lock);
}

size_t tiny_superslab_trim(void)
{
    hak_lock(&ss_lock);
    size_t bytes = 0;
    struct superslab *ss = ss_avail;
    while (ss) {
        struct superslab *next = ss->next;
        if (ss->free_mask == SS_ALL_FREE) {
            ss_dirty_slabs -= (unsigned)__builtin_popcount(ss->dirty_mask);
            ss_empty--;
            superslab_unmap(ss);
            bytes += HAK_CHUNK_SIZE;
        }
        ss = next;
    }
    bytes += purge_all_locked();
    hak_unlock(&ss_lock);
    return bytes;
}

void tiny_superslab_lock(void) { hak_lock(&ss_lock); }
void tiny_superslab_unlock(void) { hak_unlock(&ss_lock); }
void tiny_superslab_reinit_lock(void) { hak_lock_init(&ss_lock); }
