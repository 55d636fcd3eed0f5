/*
 * tiny.c - the tiny tier's heaps: refill, overflow and flush, remote frees,
 * thread exit, abandonment and adoption of slabs, trim.
 *
 * Every path that follows a free-list link checks it (tiny_check_link or,
 * for a slab's own lists, the slab's bounds) and aborts with
 * `hakmem: malloc(): corrupted free list` on a bad one.
 */
#include "tiny/tiny.h"
#include "lifecycle.h"
#include "lock.h"
#include "options.h"
#include "os.h"
#include "purge.h"
#include "registry.h"

#include <string.h>

/* Full slabs looked at for remote frees per refill before taking a new one. */
#define TINY_FULL_SCAN 4
/* Set at the process's first remote free, never cleared: until then no
 * remote stack holds a block, and refills look at no full slab for one.  A
 * refill that misses a fresh setting looks at the next refill. */
static _Atomic bool remote_seen;
/* A class's cache starts at about TINY_CACHE_INIT_BYTES worth of blocks and
 * grows, by doubling at each overflow, to about TINY_CACHE_MAX_BYTES. */
#define TINY_CACHE_INIT_BYTES 16384u
#define TINY_CACHE_MAX_BYTES 131072u
#define TINY_CACHE_MIN_BLOCKS 16u
#define TINY_CACHE_MAX_BLOCKS 2048u

struct tiny_heap tiny_no_owner;

/* Slabs whose owner exited, per class, waiting to be adopted. */
static struct {
    struct hak_lock lock;
    struct tiny_slab *head;
} abandoned[TINY_NUM_CLASSES];

/* Heaps of exited threads, ready for new threads; heap memory comes from mmap. */
static struct hak_lock heap_lock = HAK_LOCK_INITIALIZER;
static struct tiny_heap *heap_free_list;
static char *heap_chunk;
static size_t heap_chunk_left;

/* Threads whose TLS is torn down allocate from this heap under its lock. */
static struct hak_lock orphan_lock = HAK_LOCK_INITIALIZER;
static struct tiny_cache orphan_cache;
static struct hak_fast orphan_fast;

/* The fast lists of cache c: those of the thread whose struct hak_thread
 * holds it, or the orphan cache's. */
static struct hak_fast *fast_of(struct tiny_cache *c)
{
    if (c == &orphan_cache)
        return &orphan_fast;
    return &((struct hak_thread *)((char *)c - offsetof(struct hak_thread, tiny)))->fast;
}

/* Bumped by every malloc_trim; heaps compare it at their slow paths. */
static _Atomic unsigned trim_epoch;

static uint16_t cache_cap_init[TINY_NUM_CLASSES], cache_cap_max[TINY_NUM_CLASSES];
/* Lists a heap's transfer stack holds per class: about TINY_XFER_BYTES. */
#define TINY_XFER_BYTES 1048576u
/* Used-up slabs of a class past which a heap's new slabs of the class are
 * backed at once (next_slab). */
#define TINY_DENSE_SLABS 16u
/* Blocks a full cache returns to their slabs when its transfer stack is full
 * too (tiny_cache_overflow): few enough that they are the ones freed last. */
#define TINY_RETURN_BLOCKS 32u
static uint8_t xfer_max[TINY_NUM_CLASSES];
/* Blocks on a slab's remote stack that make a hint for its owner
 * (tiny_free_remote): a quarter of what a slab of the class holds. */
static uint16_t remote_hint_at[TINY_NUM_CLASSES];

static unsigned clamp_blocks(unsigned bytes, unsigned size)
{
    unsigned n = bytes / size;
    return n < TINY_CACHE_MIN_BLOCKS ? TINY_CACHE_MIN_BLOCKS
                                     : (n > TINY_CACHE_MAX_BLOCKS ? TINY_CACHE_MAX_BLOCKS : n);
}

void tiny_init(void)
{
    HAK_DEBUG_CHECK(hak_fast_class_check(), "hak_fast_class_of_index disagrees with the classes");
    for (unsigned i = 0; i < TINY_NUM_CLASSES; i++) {
        cache_cap_init[i] = (uint16_t)clamp_blocks(TINY_CACHE_INIT_BYTES, tiny_class_size[i]);
        cache_cap_max[i] = (uint16_t)clamp_blocks(TINY_CACHE_MAX_BYTES, tiny_class_size[i]);
        unsigned lists = TINY_XFER_BYTES / (cache_cap_max[i] * tiny_class_size[i]);
        xfer_max[i] = (uint8_t)(lists < 1 ? 1 : (lists > TINY_XFER_LISTS ? TINY_XFER_LISTS : lists));
        remote_hint_at[i] = (uint16_t)(TINY_SLAB_SIZE / tiny_class_size[i] / 4u);
        hak_lock_init(&abandoned[i].lock);
    }
}

static __attribute__((noreturn, cold)) void corrupt(const void *link)
{
    hak_fatal("malloc(): corrupted free list (link to %p)", link);
}

/* ---- slab lists (owner-only) ---- */

static void slist_push(struct tiny_slab_list *l, struct tiny_slab *s, enum tiny_slab_state st)
{
    s->state = (uint8_t)st;
    s->prev = NULL;
    s->next = l->head;
    if (l->head)
        l->head->prev = s;
    else
        l->tail = s;
    l->head = s;
    l->n++;
}

static void slist_push_tail(struct tiny_slab_list *l, struct tiny_slab *s)
{
    s->next = NULL;
    s->prev = l->tail;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    l->n++;
}

/* A slab that filled joins its heap's full list at the tail: the list is
 * oldest first, and refills that found no remote hint look at its head for
 * remote frees (next_slab), where the slabs that filled longest ago are,
 * the likeliest to have had their blocks freed since. */
static void full_push(struct tiny_heap *h, unsigned cls, struct tiny_slab *s)
{
    s->state = TINY_SLAB_FULL;
    slist_push_tail(&h->full[cls], s);
}

static void slist_remove(struct tiny_slab_list *l, struct tiny_slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->next = s->prev = NULL;
    l->n--;
}

/* ---- heaps ---- */

/* A heap for a new thread: a recycled one, cleared, or a fresh one from
 * heap_chunk, which is zero already (mmap): not clearing it leaves its
 * pages untouched until the thread writes them (a thread that never
 * overflows a cache writes none of its transfer stacks, most of the heap). */
static struct tiny_heap *heap_new(void)
{
    hak_lock(&heap_lock);
    struct tiny_heap *h = heap_free_list;
    if (h) {
        heap_free_list = h->next_free;
        hak_unlock(&heap_lock);
        /* All but the remote hints: a thread that read a slab's owner
         * before the heap's last owner gave the slab up may still write a
         * hint (tiny_free_remote); its slots are checked when read. */
        memset(h, 0, offsetof(struct tiny_heap, remote_hint_next));
        return h;
    }
    size_t sz = hak_align_up(sizeof(*h), 64);
    if (heap_chunk_left < sz) {
        heap_chunk = hak_os_map(64 * 1024);
        heap_chunk_left = heap_chunk ? 64 * 1024 : 0;
    }
    if (heap_chunk_left >= sz) {
        h = (struct tiny_heap *)heap_chunk;
        heap_chunk += sz;
        heap_chunk_left -= sz;
    }
    hak_unlock(&heap_lock);
    return h;
}

static void heap_recycle(struct tiny_heap *h)
{
    hak_lock(&heap_lock);
    h->next_free = heap_free_list;
    heap_free_list = h;
    hak_unlock(&heap_lock);
}

/* ---- link checks ---- */

/* Follows the link of free block b of class cls with every check: b must
 * carry the free mark (hak_link_read) and its link must be NULL or a free
 * block of that class (tiny_link_in_heap); aborts otherwise. */
static void *tiny_next_checked(void *b, unsigned cls)
{
    void *next;
    if (HAK_UNLIKELY(!hak_link_read(b, &next)))
        corrupt(next);
    if (HAK_HARDENING && next &&
        (!tiny_link_in_heap(next, cls) || !hak_block_marked_free(next)))
        corrupt(next);
    return next;
}

/* Follows a link inside slab s's own lists (free list, remote stack). */
static void *slab_next_checked(const struct tiny_slab *s, void *b)
{
    void *next;
    if (HAK_UNLIKELY(!hak_link_read(b, &next)))
        corrupt(next);
    if (HAK_HARDENING && next && (tiny_slab_of(next) != s || !tiny_is_block(s, next)))
        corrupt(next);
    return next;
}

void *tiny_cache_pop_checked(struct tiny_cache *c, unsigned cls)
{
    struct hak_fast *f = fast_of(c);
    void *b = f->head[cls];
    c->room_base++; /* not a fast pop: counted by the caller */
    return hak_fast_take(f, cls, b, tiny_next_checked(b, cls));
}

/* ---- slab block sources ---- */

/* Moves the slab's remote stack onto its free list; returns the blocks moved.
 * The stack's word counts its blocks, so onto an empty free list (a refill's
 * case) the stack moves whole, unwalked: its links are checked as the cache
 * pops them, by each block's mark, as every cache list's are.  Onto a
 * non-empty list it is walked to its end, every link checked, exactly as
 * many as it counts.  More blocks than the slab holds is corruption (a
 * block pushed again and again by threads freeing it at once); the bound is
 * the capacity, not `used`, which a fork child may read torn from a thread
 * that was refilling (tiny_thread_orphan). */
static uint32_t slab_collect_remote(struct tiny_slab *s)
{
    _Atomic uintptr_t *remote = tiny_slab_remote(s);
    if (!atomic_load_explicit(remote, memory_order_relaxed))
        return 0;
    uintptr_t v = atomic_exchange_explicit(remote, 0, memory_order_acquire);
    void *list = tiny_remote_top(v);
    uint32_t n = tiny_remote_count(v);
    if (HAK_HARDENING &&
        (tiny_slab_of(list) != s || !tiny_is_block(s, list) || n == 0 || n > s->capacity))
        corrupt(list);
    if (s->free) {
        void *last = list;
        for (uint32_t k = 1; k < n; k++)
            if (!(last = slab_next_checked(s, last)))
                corrupt(last); /* shorter than its count */
        if (slab_next_checked(s, last))
            corrupt(last); /* longer than its count */
        hak_link_set(last, s->free);
    }
    s->free = list;
    s->nfree = (uint16_t)(s->nfree + n);
    s->used = (uint16_t)(s->used - n);
    return n;
}

static bool slab_has_blocks(const struct tiny_slab *s)
{
    return s->free || s->carved < s->capacity;
}

/*
 * Takes blocks from slab s for an empty cache list *list: the slab's whole
 * free list in one splice (after collecting remote frees; with batch refill
 * off, one block), else up to `want` fresh blocks carved from its tail.
 */
static uint32_t slab_take(struct tiny_slab *s, uint32_t want, void **list)
{
    if (!s->free)
        slab_collect_remote(s);
    uint32_t got = 0;
    if (s->free) {
        if (hak_opt.tiny_batch_refill) {
            *list = s->free;
            got = s->nfree;
            s->free = NULL;
            s->nfree = 0;
        } else {
            void *b = s->free;
            s->free = slab_next_checked(s, b);
            s->nfree--;
            hak_link_set(b, NULL);
            *list = b;
            got = 1;
        }
    } else {
        /* At most the blocks that start in the memory page where the
         * carved part ends: a class's first refill costs one page, not a
         * cache's worth, and later ones touch memory only as it is used. */
        char *first = tiny_slab_start(s) + (size_t)s->carved * s->stride;
        uint32_t carve = hak_carve_step((uintptr_t)first, s->stride);
        if (carve > want)
            carve = want;
        if (carve > (uint32_t)(s->capacity - s->carved))
            carve = s->capacity - s->carved;
        if (!carve)
            return 0;
        /* Link the new blocks in address order, so the cache hands them out
         * in ascending order. */
        char *b = first + (size_t)(carve - 1) * s->stride;
        HAK_DEBUG_CHECK((uintptr_t)b + s->stride <=
                            ((uintptr_t)first & ~(uintptr_t)(TINY_SLAB_SIZE - 1)) + TINY_SLAB_SIZE,
                        "carve past the end of slab %p", (void *)s);
        hak_link_set(b, NULL);
        for (uint32_t k = 1; k < carve; k++) {
            char *prev = b - s->stride;
            hak_link_set(prev, b);
            b = prev;
        }
        *list = first;
        s->carved = (uint16_t)(s->carved + carve);
        atomic_store_explicit(&s->carved_limit, (uint32_t)s->carved * hak_block_scale(s->stride),
                              memory_order_relaxed);
        got = carve;
    }
    s->used = (uint16_t)(s->used + got);
    return got;
}

/* Takes a slab abandoned by an exited thread, if any has room. */
static struct tiny_slab *adopt_slab(struct tiny_heap *h, unsigned cls)
{
    for (;;) {
        hak_lock(&abandoned[cls].lock);
        struct tiny_slab *s = abandoned[cls].head;
        if (s) {
            abandoned[cls].head = s->next;
            s->next = s->prev = NULL;
            atomic_store_explicit(&s->owner, h, memory_order_release);
        }
        hak_unlock(&abandoned[cls].lock);
        if (!s)
            return NULL;
        slab_collect_remote(s);
        if (slab_has_blocks(s)) {
            s->state = TINY_SLAB_CURRENT;
            return s;
        }
        full_push(h, cls, s);
    }
}

/* Takes the remote hints other threads left for heap h (tiny_free_remote):
 * each full slab of h they name whose remote stack holds blocks has them
 * collected and moves to its class's partial list. */
static void take_remote_hints(struct tiny_heap *h)
{
    /* The slots written since the last look (all of them if the ring went
     * round): plain loads, no atomic write.  A slot read before its writer
     * stored it holds an older hint, checked as any. */
    uint32_t next = atomic_load_explicit(&h->remote_hint_next, memory_order_relaxed);
    uint32_t from = h->remote_hint_seen;
    if (next - from > TINY_REMOTE_HINTS)
        from = next - TINY_REMOTE_HINTS;
    h->remote_hint_seen = next;
    for (uint32_t k = from; k != next; k++) {
        struct tiny_slab *s = atomic_load_explicit(&h->remote_hint[k % TINY_REMOTE_HINTS],
                                                   memory_order_relaxed);
        /* Owned by h, so its state is this thread's to read. */
        if (s && atomic_load_explicit(&s->owner, memory_order_relaxed) == h &&
            s->state == TINY_SLAB_FULL && slab_collect_remote(s)) {
            slist_remove(&h->full[s->cls], s);
            slist_push(&h->partial[s->cls], s, TINY_SLAB_PARTIAL);
        }
    }
}

/* Finds the heap's next slab with blocks for `cls` once the current one ran
 * out: partial list (after the remote hints), full slabs with remote frees,
 * abandoned, new.  Without the hints, producer threads whose blocks
 * consumers free after a queue of 100 batches (mimalloc-bench's
 * xmalloc-test) took a new slab at most refills: the few full slabs a
 * refill looks at had nothing yet, and peak RSS was 2.5 times glibc's. */
static struct tiny_slab *next_slab(struct tiny_heap *h, unsigned cls)
{
    struct tiny_slab *s = h->partial[cls].head;
    if (!s) {
        take_remote_hints(h);
        s = h->partial[cls].head;
    }
    if (s) {
        slist_remove(&h->partial[cls], s);
        s->state = TINY_SLAB_CURRENT;
        return s;
    }
    /* Look at a few full slabs (oldest first by rotation) for remote frees,
     * once there have been any: each look touches the records of three
     * slabs, a cache miss and often a TLB miss each (2% of
     * bench_fragmentation, which frees nothing from another thread). */
    struct tiny_slab_list *full = &h->full[cls];
    bool remote = atomic_load_explicit(&remote_seen, memory_order_relaxed);
    for (unsigned k = 0; remote && k < TINY_FULL_SCAN && full->head; k++) {
        s = full->head;
        slist_remove(full, s);
        if (slab_collect_remote(s)) {
            s->state = TINY_SLAB_CURRENT;
            return s;
        }
        /* Rotate it to the tail so the next scan sees other slabs. */
        slist_push_tail(full, s);
    }
    s = adopt_slab(h, cls);
    if (s)
        return s;
    /* A class with TINY_DENSE_SLABS used-up slabs is being carved in bulk:
     * its next slab is backed at once, one call instead of a page fault per
     * 4 KiB (a quarter of bench_fragmentation's time was page faults: +9 %).
     * At most one slab per class and thread is resident ahead of use, a
     * sixteenth of what the class holds at least (with 4, larson's threads,
     * which exit with their current slabs partly carved, held 10 % more). */
    return tiny_slab_acquire(cls, h, h->full[cls].n >= TINY_DENSE_SLABS);
}

/* Returns an empty slab of h (not on any list) to the manager. */
static void slab_release_empty(struct tiny_slab *s)
{
    s->free = NULL;
    s->nfree = 0;
    tiny_slab_release(s);
}

/* Splices the run first..last (n blocks of slab s, linked) onto s's free
 * list; the slab moves from full to partial, and goes back to the manager
 * once all its blocks are home. */
static void slab_put_run(struct tiny_heap *h, struct tiny_slab *s, void *first, void *last,
                         uint32_t n)
{
    hak_link_set(last, s->free);
    s->free = first;
    s->nfree = (uint16_t)(s->nfree + n);
    s->used = (uint16_t)(s->used - n);
    unsigned cls = s->cls;
    if (s->state == TINY_SLAB_FULL) {
        slist_remove(&h->full[cls], s);
        slist_push(&h->partial[cls], s, TINY_SLAB_PARTIAL);
    }
    if (s->used == 0 && s->state == TINY_SLAB_PARTIAL &&
        !atomic_load_explicit(tiny_slab_remote(s), memory_order_relaxed)) {
        slist_remove(&h->partial[cls], s);
        slab_release_empty(s);
    }
}

static uint32_t cache_count(struct tiny_cache *c, unsigned cls)
{
    return (uint32_t)((int32_t)c->cap[cls] - fast_of(c)->room[cls]);
}

/* Follows the link of free block b of class cls on a walk that will check
 * the next block's own mark when it gets there: b's mark, and that the link
 * is NULL or names a block of the class (tiny_link_in_heap). */
static void *walk_next(void *b, unsigned cls)
{
    void *next;
    if (HAK_UNLIKELY(!hak_link_read(b, &next)))
        corrupt(next);
    if (HAK_HARDENING && next && HAK_UNLIKELY(!tiny_link_in_heap(next, cls)))
        corrupt(next);
    return next;
}

/* Returns the first n blocks of `list` (class cls, from c's lists) to their
 * slabs, run by run: each run of blocks of one slab is spliced onto that
 * slab's free list with one link write.  Walks, and so checks, every link
 * it follows; returns the rest of the list (NULL when n was its length). */
static void *cache_return_some(struct tiny_cache *c, unsigned cls, void *list, uint32_t n)
{
    struct tiny_heap *h = c->heap;
    void *b = list;
    for (uint32_t left = n; left;) {
        if (HAK_UNLIKELY(!b))
            corrupt(b); /* the list is shorter than its count */
        struct tiny_slab *s = tiny_slab_of(b);
        if (HAK_UNLIKELY(atomic_load_explicit(&s->owner, memory_order_relaxed) != h) &&
            HAK_HARDENING)
            corrupt(b);
        void *first = b, *last;
        uint32_t run = 0;
        do {
            last = b;
            b = walk_next(last, cls);
            run++;
        } while (--left && b && tiny_slab_of(b) == s);
        slab_put_run(h, s, first, last, run);
    }
    return b;
}

/* Returns the whole of `list`, n blocks, to their slabs. */
static void cache_return(struct tiny_cache *c, unsigned cls, void *list, uint32_t n)
{
    void *rest = cache_return_some(c, cls, list, n);
    if (HAK_UNLIKELY(rest))
        corrupt(rest); /* the list is longer than its count */
}

/* The oldest list of c's transfer stack for cls goes back to the slabs. */
static void xfer_return_oldest(struct tiny_cache *c, unsigned cls)
{
    struct tiny_xfer *x = &c->heap->xfer[cls];
    cache_return(c, cls, x->list[0], x->n[0]);
    x->count--;
    memmove(x->list, x->list + 1, x->count * sizeof(x->list[0]));
    memmove(x->since_ms, x->since_ms + 1, x->count * sizeof(x->since_ms[0]));
    memmove(x->n, x->n + 1, x->count * sizeof(x->n[0]));
}

/* Lists set aside for the purge delay go back to the slabs; looked at no
 * more often than a quarter of the delay. */
static void heap_age(struct tiny_cache *c, uint64_t now)
{
    struct tiny_heap *h = c->heap;
    if (now < h->next_age_ms)
        return;
    h->next_age_ms = now + hak_opt.purge_delay_ms / 4u + 1;
    for (unsigned cls = 0; cls < TINY_NUM_CLASSES; cls++) {
        struct tiny_xfer *x = &h->xfer[cls];
        while (x->count && hak_purge_due(x->since_ms[0], now, hak_opt.purge_delay_ms))
            xfer_return_oldest(c, cls);
    }
}

static void heap_trim(struct tiny_cache *c);

static void heap_check_epoch(struct tiny_cache *c)
{
    unsigned e = atomic_load_explicit(&trim_epoch, memory_order_relaxed);
    if (HAK_UNLIKELY(c->trim_epoch != e)) {
        c->trim_epoch = e;
        heap_trim(c);
    }
}

void tiny_cache_overflow(struct tiny_cache *c, void *p)
{
    unsigned cls = tiny_slab_of(p)->cls;
    struct hak_fast *f = fast_of(c);
    if (c->cap[cls] < cache_cap_max[cls]) {
        /* Demand: grow instead of flushing. */
        unsigned cap = c->cap[cls] * 2u;
        if (cap > cache_cap_max[cls])
            cap = cache_cap_max[cls];
        tiny_cache_set_room(f, c, cls, f->room[cls] + (int32_t)(cap - c->cap[cls]));
        c->cap[cls] = (uint16_t)cap;
        return;
    }
    /* Full: the whole list goes onto the transfer stack, and its lists go
     * back to the slabs once set aside for the purge delay (heap_age).  If
     * the stack is full, the newest TINY_RETURN_BLOCKS blocks of the list go
     * back to their slabs instead, and the rest stays: a return reads every
     * block it returns, and only the newest are still in the CPU's caches
     * and TLB when frees of many classes interleave.  (Returning the oldest
     * list missed on almost every block, 22% of bench_fragmentation; the
     * whole current list, older blocks included, missed on most: 15%.) */
    struct tiny_xfer *x = &c->heap->xfer[cls];
    if (x->count == xfer_max[cls]) {
        uint32_t n = cache_count(c, cls);
        uint32_t k = n < TINY_RETURN_BLOCKS ? n : TINY_RETURN_BLOCKS;
        f->head[cls] = cache_return_some(c, cls, f->head[cls], k);
        tiny_cache_set_room(f, c, cls, f->room[cls] + (int32_t)k);
    } else {
        x->list[x->count] = f->head[cls];
        x->since_ms[x->count] = hak_clock_ms();
        x->n[x->count++] = (uint16_t)cache_count(c, cls);
        f->head[cls] = NULL;
        tiny_cache_set_room(f, c, cls, c->cap[cls]);
    }
    heap_check_epoch(c);
}

static void *refill_from_heap(struct tiny_cache *c, struct tiny_heap *h, unsigned cls)
{
    struct hak_fast *f = fast_of(c);
    if (!c->cap[cls]) {
        c->cap[cls] = cache_cap_init[cls];
        tiny_cache_set_room(f, c, cls, c->cap[cls]);
    }
    struct tiny_xfer *x = &h->xfer[cls];
    if (x->count) {
        /* The newest set-aside list comes back whole (at most cap blocks). */
        x->count--;
        f->head[cls] = x->list[x->count];
        tiny_cache_set_room(f, c, cls, (int32_t)c->cap[cls] - x->n[x->count]);
        return tiny_cache_pop_checked(c, cls);
    }
    uint32_t want = hak_opt.tiny_batch_refill ? c->cap[cls] / 2u : 1;
    void *list = NULL;
    uint32_t got = 0;
    struct tiny_slab *s = h->current[cls];
    while (!got) {
        if (!s) {
            s = next_slab(h, cls);
            h->current[cls] = s;
            if (!s)
                return NULL;
        }
        got = slab_take(s, want, &list);
        if (!slab_has_blocks(s)) {
            /* Exhausted: retire it to the full list. */
            full_push(h, cls, s);
            s = h->current[cls] = NULL;
        }
    }
    /* A spliced free list may hold more than the cache's capacity: the
     * capacity stretches to hold it, so that room stays >= 1. */
    if (got >= c->cap[cls])
        c->cap[cls] = (uint16_t)(got + 1);
    f->head[cls] = list;
    tiny_cache_set_room(f, c, cls, (int32_t)c->cap[cls] - (int32_t)got);
    return tiny_cache_pop_checked(c, cls);
}

void *tiny_alloc_refill(struct tiny_cache *c, unsigned cls)
{
    if (HAK_UNLIKELY(!c->heap)) {
        c->heap = heap_new();
        if (!c->heap)
            return NULL;
        c->trim_epoch = atomic_load_explicit(&trim_epoch, memory_order_relaxed);
    }
    hak_purge_tick();
    heap_check_epoch(c);
    heap_age(c, hak_clock_ms());
    return refill_from_heap(c, c->heap, cls);
}

void *tiny_alloc_orphan(unsigned cls)
{
    hak_lock(&orphan_lock);
    void *b = orphan_fast.head[cls] ? tiny_cache_pop_checked(&orphan_cache, cls)
                                     : tiny_alloc_refill(&orphan_cache, cls);
    hak_unlock(&orphan_lock);
    return b;
}

void tiny_free_remote(struct tiny_slab *s, void *p)
{
    if (HAK_UNLIKELY(!atomic_load_explicit(&remote_seen, memory_order_relaxed)))
        atomic_store_explicit(&remote_seen, true, memory_order_relaxed);
    /* Read while p still holds the slab: once p is on the stack, the owner
     * may take it, find the slab empty and give the slab up. */
    uint32_t hint_at = remote_hint_at[s->cls];
    _Atomic uintptr_t *remote = tiny_slab_remote(s);
    uintptr_t head = atomic_load_explicit(remote, memory_order_relaxed);
    do {
        hak_link_set(p, tiny_remote_top(head));
    } while (!atomic_compare_exchange_weak_explicit(remote, &head, tiny_remote_push_value(head, p),
                                                    memory_order_release, memory_order_relaxed));
    /* A quarter of the slab's blocks on the stack: a hint for its owner
     * (struct tiny_heap), once per filling of the stack.  (A hint at the
     * first block had the owner collect slabs a block or two at a time:
     * bench_cross_thread took 16 % more CPU time.)  Heaps are never
     * unmapped, so a heap that lost the slab since is written harmlessly. */
    if (tiny_remote_count(head) + 1 != hint_at)
        return;
    struct tiny_heap *h = atomic_load_explicit(&s->owner, memory_order_relaxed);
    if (h && h != &tiny_no_owner) {
        uint32_t i = atomic_fetch_add_explicit(&h->remote_hint_next, 1, memory_order_relaxed);
        atomic_store_explicit(&h->remote_hint[i % TINY_REMOTE_HINTS], s, memory_order_relaxed);
    }
}

static void abandon_slab(struct tiny_slab *s)
{
    unsigned cls = s->cls;
    slab_collect_remote(s);
    if (s->used == 0) {
        slab_release_empty(s);
        return;
    }
    s->state = TINY_SLAB_ABANDONED;
    atomic_store_explicit(&s->owner, &tiny_no_owner, memory_order_release);
    hak_lock(&abandoned[cls].lock);
    s->prev = NULL;
    s->next = abandoned[cls].head;
    abandoned[cls].head = s;
    hak_unlock(&abandoned[cls].lock);
}

static void abandon_list(struct tiny_slab_list *l)
{
    while (l->head) {
        struct tiny_slab *s = l->head;
        slist_remove(l, s);
        abandon_slab(s);
    }
}

static void cache_flush_all(struct tiny_cache *c, unsigned cls)
{
    struct hak_fast *f = fast_of(c);
    if (f->head[cls])
        cache_return(c, cls, f->head[cls], cache_count(c, cls));
    f->head[cls] = NULL;
    tiny_cache_set_room(f, c, cls, c->cap[cls]);
    struct tiny_xfer *x = &c->heap->xfer[cls];
    while (x->count) {
        x->count--;
        cache_return(c, cls, x->list[x->count], x->n[x->count]);
    }
}

void tiny_thread_exit(struct tiny_cache *c)
{
    struct tiny_heap *h = c->heap;
    if (!h)
        return;
    for (unsigned cls = 0; cls < TINY_NUM_CLASSES; cls++) {
        cache_flush_all(c, cls);
        if (h->current[cls]) {
            abandon_slab(h->current[cls]);
            h->current[cls] = NULL;
        }
        abandon_list(&h->partial[cls]);
        abandon_list(&h->full[cls]);
    }
    c->heap = NULL;
    heap_recycle(h);
}

/* Abandons slab s of dead heap h for adoption, if its record says so: a slab
 * record of a live superslab, owned by h, of class cls, on one of h's lists
 * (not abandoned or free already, so no slab is abandoned twice). */
static void orphan_slab(struct tiny_heap *h, struct tiny_slab *s, unsigned cls)
{
    if (!tiny_is_slab_record(s))
        return;
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) != h || s->cls != cls ||
        (s->state != TINY_SLAB_CURRENT && s->state != TINY_SLAB_PARTIAL &&
         s->state != TINY_SLAB_FULL))
        return;
    abandon_slab(s);
}

/* The most slab records followed along one of a dead heap's lists. */
#define TINY_ORPHAN_WALK_MAX (1u << 20)

/*
 * A fork child adopting a thread that does not exist there: its cache and
 * slab lists are a copy taken at whatever instruction the thread was at, and
 * no lock guards them (a push or pop, a refill or flush may be half done).
 * So nothing in them is followed blindly: the cache and its set-aside lists
 * are dropped where they are (their blocks stay counted as used: at most a
 * cache's worth per class is never reused in the child), and every slab the
 * heap's lists name is abandoned once, if its own record agrees (orphan_slab).
 * Remote stacks are consistent (one CAS publishes a push), so the adopter
 * collects what the child frees into those slabs.
 */
void tiny_thread_orphan(struct tiny_cache *c)
{
    struct tiny_heap *h = c->heap;
    struct hak_fast *f = fast_of(c);
    for (unsigned cls = 0; cls < TINY_NUM_CLASSES; cls++)
        f->head[cls] = NULL;
    c->heap = NULL;
    if (!h)
        return;
    for (unsigned cls = 0; cls < TINY_NUM_CLASSES; cls++) {
        orphan_slab(h, h->current[cls], cls);
        struct tiny_slab_list *lists[2] = {&h->partial[cls], &h->full[cls]};
        for (unsigned l = 0; l < 2; l++) {
            struct tiny_slab *s = lists[l]->head;
            for (unsigned k = 0; s && k < TINY_ORPHAN_WALK_MAX; k++) {
                if (!tiny_is_slab_record(s))
                    break;
                struct tiny_slab *next = s->next; /* abandoning relinks s */
                orphan_slab(h, s, cls);
                s = next;
            }
        }
    }
    heap_recycle(h);
}

/* Returns the cache, takes every slab's remote frees and releases the
 * empty slabs of c's heap (the owner's side of malloc_trim). */
static void heap_trim(struct tiny_cache *c)
{
    struct tiny_heap *h = c->heap;
    for (unsigned cls = 0; cls < TINY_NUM_CLASSES; cls++) {
        cache_flush_all(c, cls);
        struct tiny_slab *s = h->current[cls];
        if (s) {
            slab_collect_remote(s);
            if (s->used == 0) {
                h->current[cls] = NULL;
                slab_release_empty(s);
            }
        }
        for (s = h->full[cls].head; s;) {
            struct tiny_slab *next = s->next;
            if (slab_collect_remote(s)) {
                slist_remove(&h->full[cls], s);
                slist_push(&h->partial[cls], s, TINY_SLAB_PARTIAL);
            }
            s = next;
        }
        for (s = h->partial[cls].head; s;) {
            struct tiny_slab *next = s->next;
            slab_collect_remote(s);
            if (s->used == 0) {
                slist_remove(&h->partial[cls], s);
                slab_release_empty(s);
            }
            s = next;
        }
    }
}

size_t tiny_purge(uint64_t now_ms, uint64_t age_ms, bool all)
{
    if (all) {
        atomic_fetch_add_explicit(&trim_epoch, 1, memory_order_relaxed);
        struct hak_thread *t = &hak_thread;
        if (t->state == HAK_THREAD_ACTIVE && t->tiny.heap)
            heap_check_epoch(&t->tiny);
        /* Abandoned slabs whose blocks all came back are released, after
         * their list's lock is let go: releasing takes the slab manager's
         * lock, and a thread interrupted inside the manager by a signal
         * whose handler forks would have the fork handlers wait for this
         * list's lock while we wait for the manager's. */
        for (unsigned cls = 0; cls < TINY_NUM_CLASSES; cls++) {
            struct tiny_slab *empty = NULL;
            hak_lock(&abandoned[cls].lock);
            struct tiny_slab **link = &abandoned[cls].head;
            while (*link) {
                struct tiny_slab *s = *link;
                slab_collect_remote(s);
                if (s->used == 0) {
                    *link = s->next;
                    s->next = empty;
                    empty = s;
                } else {
                    link = &s->next;
                }
            }
            hak_unlock(&abandoned[cls].lock);
            while (empty) {
                struct tiny_slab *s = empty;
                empty = s->next;
                s->next = NULL;
                slab_release_empty(s);
            }
        }
    }
    return tiny_superslab_purge(now_ms, age_ms, all);
}

void tiny_fork_prepare(void)
{
    hak_lock(&orphan_lock);
    hak_lock(&heap_lock);
    for (unsigned i = 0; i < TINY_NUM_CLASSES; i++)
        hak_lock(&abandoned[i].lock);
    tiny_superslab_lock();
}

void tiny_fork_parent(void)
{
    tiny_superslab_unlock();
    for (unsigned i = 0; i < TINY_NUM_CLASSES; i++)
        hak_unlock(&abandoned[i].lock);
    hak_unlock(&heap_lock);
    hak_unlock(&orphan_lock);
}

void tiny_fork_child(void)
{
    tiny_superslab_reinit_lock();
    for (unsigned i = 0; i < TINY_NUM_CLASSES; i++)
        hak_lock_init(&abandoned[i].lock);
    hak_lock_init(&heap_lock);
    hak_lock_init(&orphan_lock);
}
