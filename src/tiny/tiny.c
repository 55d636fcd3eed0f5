/*
 * tiny.c - the tiny tier's heaps: refill, flush, remote frees, thread exit,
 * abandonment and adoption of slabs.
 */
#include "tiny/tiny.h"
#include "freelist.h"
#include "options.h"
#include "os.h"
#include "registry.h"

#include "lock.h"
#include <pthread.h>
#include <string.h>

/* Full slabs looked at for remote frees per refill before taking a new one. */
#define TINY_FULL_SCAN 4

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

uint16_t tiny_cache_cap[TINY_NUM_CLASSES];

void tiny_init(void)
{
    HAK_DEBUG_CHECK(tiny_size_class_check(), "tiny_class_of_index disagrees with the classes");
    for (unsigned i = 0; i < TINY_NUM_CLASSES; i++) {
        unsigned cap = 16384 / tiny_class_size[i];
        tiny_cache_cap[i] = (uint16_t)(cap < 16 ? 16 : (cap > 256 ? 256 : cap));
    }
    for (unsigned i = 0; i < TINY_NUM_CLASSES; i++)
        hak_lock_init(&abandoned[i].lock);
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
}

/* ---- heaps ---- */

static struct tiny_heap *heap_new(void)
{
    hak_lock(&heap_lock);
    struct tiny_heap *h = heap_free_list;
    if (h) {
        heap_free_list = h->next_free;
    } else {
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
    }
    hak_unlock(&heap_lock);
    if (h)
        memset(h, 0, sizeof(*h));
    return h;
}

static void heap_recycle(struct tiny_heap *h)
{
    hak_lock(&heap_lock);
    h->next_free = heap_free_list;
    heap_free_list = h;
    hak_unlock(&heap_lock);
}

/* ---- slab block sources ---- */

/* Moves the slab's remote stack onto its free list; returns blocks moved. */
static uint32_t slab_collect_remote(struct tiny_slab *s)
{
    if (!atomic_load_explicit(&s->remote, memory_order_relaxed))
        return 0;
    void *list = atomic_exchange_explicit(&s->remote, NULL, memory_order_acquire);
    uint32_t n = 0;
    void *last = NULL;
    for (void *b = list; b; b = hak_link_get(b)) {
        if (HAK_UNLIKELY(tiny_slab_of(b) != s))
            hak_fatal("free(): corrupted remote free list of slab %p (block %p)",
                      (void *)tiny_slab_start(s), b);
        last = b;
        n++;
    }
    if (last) {
        hak_link_set(last, s->free);
        s->free = list;
        s->used -= n;
    }
    return n;
}

static bool slab_has_blocks(const struct tiny_slab *s)
{
    return s->free || s->carved < s->capacity;
}

/*
 * Takes up to `want` blocks from slab s and links them in front of *list.
 * Order: the slab's free list (after collecting remote frees), then fresh
 * blocks carved from the slab's tail, within its capacity.
 */
static uint32_t slab_take(struct tiny_slab *s, uint32_t want, void **list)
{
    uint32_t got = 0;
    if (!s->free)
        slab_collect_remote(s);
    while (got < want && s->free) {
        void *b = s->free;
        s->free = hak_link_get(b);
        if (HAK_UNLIKELY(s->free && tiny_slab_of(s->free) != s))
            hak_fatal("malloc(): corrupted free list of slab %p (block %p)",
                      (void *)tiny_slab_start(s), b);
        hak_link_set(b, *list);
        *list = b;
        got++;
    }
    uint32_t carve = want - got;
    if (carve > s->capacity - s->carved)
        carve = s->capacity - s->carved;
    if (carve) {
        /* Link the new blocks in address order, so the cache hands them out
         * in ascending order. */
        char *first = tiny_slab_start(s) + (size_t)s->carved * s->stride;
        HAK_DEBUG_CHECK(first + (size_t)carve * s->stride <=
                            (char *)tiny_superslab_of(s) + ((size_t)(tiny_slab_index(
                                tiny_superslab_of(s), s) + 1) << TINY_SLAB_SHIFT),
                        "carve past the end of slab %p", (void *)s);
        char *b = first + (size_t)(carve - 1) * s->stride;
        hak_link_set(b, *list);
        for (uint32_t k = 1; k < carve; k++) {
            char *prev = b - s->stride;
            hak_link_set(prev, b);
            b = prev;
        }
        *list = first;
        s->carved += carve;
        atomic_store_explicit(&s->carved_end, s->carved * s->stride, memory_order_relaxed);
        got += carve;
    }
    s->used += got;
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
        if (s->used == 0) {
            /* Everything came back; start it afresh for this class. */
            s->state = TINY_SLAB_CURRENT;
            return s;
        }
        if (slab_has_blocks(s)) {
            s->state = TINY_SLAB_CURRENT;
            return s;
        }
        slist_push(&h->full[cls], s, TINY_SLAB_FULL);
    }
}

/* Finds the heap's next slab with blocks for `cls` once the current one ran
 * out: partial list, full slabs with remote frees, abandoned, new. */
static struct tiny_slab *next_slab(struct tiny_heap *h, unsigned cls)
{
    struct tiny_slab *s = h->partial[cls].head;
    if (s) {
        slist_remove(&h->partial[cls], s);
        s->state = TINY_SLAB_CURRENT;
        return s;
    }
    /* Look at a few full slabs (oldest first by rotation) for remote frees. */
    struct tiny_slab_list *full = &h->full[cls];
    for (unsigned k = 0; k < TINY_FULL_SCAN && full->head; k++) {
        s = full->head;
        slist_remove(full, s);
        if (atomic_load_explicit(&s->remote, memory_order_relaxed)) {
            slab_collect_remote(s);
            s->state = TINY_SLAB_CURRENT;
            return s;
        }
        /* Rotate it to the tail so the next scan sees other slabs. */
        slist_push_tail(full, s);
    }
    s = adopt_slab(h, cls);
    if (s)
        return s;
    return tiny_slab_acquire(cls, h);
}

static void *refill_from_heap(struct tiny_cache *c, struct tiny_heap *h, unsigned cls)
{
    uint32_t want = hak_opt.tiny_batch_refill ? tiny_cache_cap[cls] / 2 : 1;
    void *list = NULL;
    uint32_t got = 0;
    struct tiny_slab *s = h->current[cls];
    while (got < want) {
        if (!s) {
            s = next_slab(h, cls);
            h->current[cls] = s;
            if (!s)
                break;
        }
        got += slab_take(s, want - got, &list);
        if (got < want) {
            /* Exhausted: retire it to the full list. */
            slist_push(&h->full[cls], s, TINY_SLAB_FULL);
            s = h->current[cls] = NULL;
        }
    }
    if (!list)
        return NULL;
    void *b = list;
    c->head[cls] = hak_link_get(b);
    c->count[cls] = got - 1;
    hak_block_unmark(b);
    return b;
}

void *tiny_alloc_refill(struct tiny_cache *c, unsigned cls)
{
    if (HAK_UNLIKELY(!c->heap)) {
        c->heap = heap_new();
        if (!c->heap)
            return NULL;
    }
    return refill_from_heap(c, c->heap, cls);
}

void *tiny_alloc_orphan(unsigned cls)
{
    hak_lock(&orphan_lock);
    void *b = orphan_cache.head[cls];
    if (b) {
        orphan_cache.head[cls] = hak_link_get(b);
        orphan_cache.count[cls]--;
        hak_block_unmark(b);
    } else {
        b = tiny_alloc_refill(&orphan_cache, cls);
    }
    hak_unlock(&orphan_lock);
    return b;
}

/* Returns one block from the owner's cache to its slab. */
static void slab_put_local(struct tiny_heap *h, void *b)
{
    struct tiny_slab *s = tiny_slab_of(b);
    hak_link_set(b, s->free);
    s->free = b;
    s->used--;
    unsigned cls = s->cls;
    if (s->state == TINY_SLAB_FULL) {
        slist_remove(&h->full[cls], s);
        slist_push(&h->partial[cls], s, TINY_SLAB_PARTIAL);
    }
    if (s->used == 0 && s->state == TINY_SLAB_PARTIAL &&
        !atomic_load_explicit(&s->remote, memory_order_relaxed)) {
        slist_remove(&h->partial[cls], s);
        tiny_slab_release(s);
    }
}

void tiny_cache_flush(struct tiny_cache *c, unsigned cls, uint32_t keep)
{
    struct tiny_heap *h = c->heap;
    while (c->count[cls] > keep) {
        void *b = c->head[cls];
        c->head[cls] = hak_link_get(b);
        c->count[cls]--;
        slab_put_local(h, b);
    }
}

void tiny_free_remote(struct tiny_slab *s, void *p)
{
    void *head = atomic_load_explicit(&s->remote, memory_order_relaxed);
    do {
        hak_link_set(p, head);
    } while (!atomic_compare_exchange_weak_explicit(&s->remote, &head, p, memory_order_release,
                                                    memory_order_relaxed));
}

static void abandon_slab(struct tiny_slab *s)
{
    unsigned cls = s->cls;
    slab_collect_remote(s);
    if (s->used == 0) {
        tiny_slab_release(s);
        return;
    }
    s->state = TINY_SLAB_ABANDONED;
    atomic_store_explicit(&s->owner, NULL, memory_order_release);
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

void tiny_thread_exit(struct tiny_cache *c)
{
    struct tiny_heap *h = c->heap;
    if (!h)
        return;
    for (unsigned cls = 0; cls < TINY_NUM_CLASSES; cls++) {
        tiny_cache_flush(c, cls, 0);
        c->head[cls] = NULL;
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

size_t tiny_purge(uint64_t now_ms, bool all)
{
    (void)now_ms;
    if (!all)
        return 0;
    /* Abandoned slabs whose blocks all came back are released. */
    for (unsigned cls = 0; cls < TINY_NUM_CLASSES; cls++) {
        hak_lock(&abandoned[cls].lock);
        struct tiny_slab **link = &abandoned[cls].head;
        while (*link) {
            struct tiny_slab *s = *link;
            slab_collect_remote(s);
            if (s->used == 0) {
                *link = s->next;
                tiny_slab_release(s);
            } else {
                link = &s->next;
            }
        }
        hak_unlock(&abandoned[cls].lock);
    }
    return tiny_superslab_trim();
}

void tiny_check_link(void *next, unsigned cls)
{
    if (!next)
        return;
    if (hak_registry_kind(next) != HAK_CHUNK_TINY)
        goto corrupt;
    /* Only now is the slab header known to be mapped. */
    struct tiny_slab *s = tiny_slab_of(next);
    if (s->cls != cls || !tiny_is_block(s, next))
        goto corrupt;
    return;
corrupt:
    hak_fatal("malloc(): corrupted free list (link to %p)", next);
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
