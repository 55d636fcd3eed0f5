/*
 * pages.c - the page-run layer (see pages.h): run areas, their page maps,
 * run descriptors, the free-run bins, coalescing and the delayed purge.
 *
 * Every run (used or free) has a descriptor, kept in metadata memory outside
 * the area; the area's page map points to it from the run's first and last
 * pages.  The runs of an area tile its pages, so the entry just below a run's
 * first page and the one just past its last page are its neighbours'
 * descriptors: coalescing is O(1).  Other page-map entries may be stale;
 * every reader checks that the descriptor it found names that very page.
 *
 * Descriptors are never given back to the system (dead ones are recycled), so
 * a stale entry always points to readable memory, and a dead descriptor keeps
 * the page it last started at: a second free of a block finds it and reports
 * "double free" until the pages are reused.  Descriptors hold page indexes,
 * not pointers to blocks, so valgrind's leak check sees no reference to a
 * live block in them.
 *
 * One lock guards the layer: it serves blocks of 52 KiB and more, whose cost
 * is dominated by touching their pages, not by the lock.
 */
#include "pages.h"
#include "pool/pool.h"
#include "lock.h"
#include "os.h"
#include "purge.h"
#include "registry.h"
#include "stats.h"

/* A purging run is free but out of every list while its pages are given back
 * without the lock. */
enum run_state { RUN_DEAD = 0, RUN_USED = 1, RUN_FREE = 2, RUN_PURGING = 3 };

struct run_area;

struct run {
    struct run_area *area;
    uint16_t first;              /* the run's first page in its area */
    uint16_t pages;              /* its length in pages */
    uint8_t state;               /* enum run_state */
    bool dirty;                  /* free and maybe resident: due for purging */
    bool freed;                  /* starts where a block was freed (double free) */
    bool pooled;                 /* dirty and free: holds pages a pool page gave back,
                                    which the pool's purge purges (pages_purge) */
    uint32_t purger;             /* purging: the purging thread's hak_self_tag() */
    struct run *next, *prev;     /* free: its bin; dead: the descriptor free list;
                                    purging: the purge's list */
    struct run *dnext, *dprev;   /* dirty: the dirty list; purging: `purging` */
    uint64_t free_ms;            /* dirty: when it became free */
};

/* The header of a run area: the page map.  The entries of the header pages
 * themselves are never used: the first holds the area's age instead. */
struct run_area {
    union {
        struct run *map[HAK_RUN_AREA_PAGES];
        uint64_t seq; /* areas are numbered in the order they were mapped */
    };
};

_Static_assert(sizeof(struct run_area) == HAK_RUN_CLIENT_OFFSET, "the client bytes follow the map");
_Static_assert(HAK_RUN_MAX_PAGES < UINT16_MAX, "page counts are 16-bit");

#define BIN_WORDS ((HAK_RUN_MAX_PAGES + 64) / 64)
/* Descriptors come from the system this many bytes at a time. */
#define DESC_SLAB_BYTES ((size_t)64 << 10)

static struct hak_lock pages_lock = HAK_LOCK_INITIALIZER;
/* bin[n]: free runs of exactly n pages; bit n of binmap set when non-empty. */
static struct run *bin[HAK_RUN_MAX_PAGES + 1];
static uint64_t binmap[BIN_WORDS];
/* Dirty free runs, roughly oldest first. */
static struct run *dirty_head, *dirty_tail;
/* Runs being purged (linked through dnext/dprev), for a fork child to take
 * back: the thread purging them does not exist there. */
static struct run *purging;
static struct run *desc_free;
static size_t desc_free_count;
static struct run *desc_slab, *desc_slab_end;
static uint64_t area_seq;

static char *run_start(const struct run *r)
{
    return (char *)r->area + ((size_t)r->first * HAK_PAGE_SIZE);
}

static size_t pages_bytes(size_t n)
{
    return n * HAK_PAGE_SIZE;
}

/* Descriptors that desc_new can hand out (pages_lock held). */
static size_t desc_available(void)
{
    return desc_free_count + (size_t)(desc_slab_end - desc_slab);
}

/* A descriptor, or NULL if none is available: desc_new never maps memory
 * (the lock holders call lock_with_descs first). */
static struct run *desc_new(void)
{
    struct run *r = desc_free;
    if (r) {
        desc_free = r->next;
        desc_free_count--;
    } else if (desc_slab < desc_slab_end) {
        r = desc_slab++;
    } else {
        return NULL;
    }
    *r = (struct run){0};
    return r;
}

/* Retires r; it keeps area, first and freed for the double-free check. */
static void desc_kill(struct run *r)
{
    r->state = RUN_DEAD;
    r->dirty = false;
    r->next = desc_free;
    desc_free = r;
    desc_free_count++;
}

/* Takes pages_lock with at least `k` descriptors available; false (and the
 * lock not held) if out of memory.  Descriptor slabs are mapped without the
 * lock: a thread interrupted in mmap by a signal whose handler forks must
 * not hold a lock that a thread holding a lock fork() takes first (the tiny
 * tier's orphan lock, held across a purge tick) may wait for. */
static bool lock_with_descs(size_t k)
{
    hak_lock(&pages_lock);
    while (desc_available() < k) {
        hak_unlock(&pages_lock);
        struct run *slab = hak_os_map(DESC_SLAB_BYTES);
        if (!slab)
            return false;
        struct run *end = slab + DESC_SLAB_BYTES / sizeof(struct run);
        hak_lock(&pages_lock);
        if (desc_slab == desc_slab_end) {
            desc_slab = slab;
            desc_slab_end = end;
        } else {
            /* Another thread installed one meanwhile: this one's
             * descriptors join the free list. */
            for (struct run *r = slab; r < end; r++) {
                r->next = desc_free;
                desc_free = r;
                desc_free_count++;
            }
        }
    }
    return true;
}

static void map_set(struct run *r)
{
    r->area->map[r->first] = r;
    r->area->map[r->first + r->pages - 1] = r;
}

static void bin_insert(struct run *r)
{
    unsigned n = r->pages;
    r->prev = NULL;
    r->next = bin[n];
    if (bin[n])
        bin[n]->prev = r;
    bin[n] = r;
    binmap[n / 64] |= (uint64_t)1 << (n % 64);
}

static void bin_remove(struct run *r)
{
    unsigned n = r->pages;
    if (r->prev)
        r->prev->next = r->next;
    else
        bin[n] = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (!bin[n])
        binmap[n / 64] &= ~((uint64_t)1 << (n % 64));
}

/* The smallest non-empty bin of at least n pages, or 0. */
static unsigned bin_find(unsigned n)
{
    unsigned w = n / 64;
    uint64_t bits = binmap[w] & (~(uint64_t)0 << (n % 64));
    for (;;) {
        if (bits)
            return w * 64 + (unsigned)__builtin_ctzll(bits);
        if (++w == BIN_WORDS)
            return 0;
        bits = binmap[w];
    }
}

static void dirty_insert(struct run *r, uint64_t since_ms)
{
    r->dirty = true;
    r->free_ms = since_ms;
    r->dnext = NULL;
    r->dprev = dirty_tail;
    if (dirty_tail)
        dirty_tail->dnext = r;
    else
        dirty_head = r;
    dirty_tail = r;
}

static void dirty_remove(struct run *r)
{
    if (!r->dirty)
        return;
    if (r->dprev)
        r->dprev->dnext = r->dnext;
    else
        dirty_head = r->dnext;
    if (r->dnext)
        r->dnext->dprev = r->dprev;
    else
        dirty_tail = r->dprev;
    r->dirty = false;
}

/* Makes r (unlinked from every list) a free run: in its bin, and dirty since
 * since_ms when `dirty`. */
static void free_run_insert(struct run *r, bool dirty, uint64_t since_ms)
{
    r->state = RUN_FREE;
    map_set(r);
    bin_insert(r);
    if (dirty)
        dirty_insert(r, since_ms);
}

/* The run starting at p, or an abort naming `func`. */
static struct run *run_of(void *p, const char *func)
{
    /* Areas are aligned to their size: the mask gives p's area. */
    struct run_area *c = (struct run_area *)((uintptr_t)p & ~(uintptr_t)(HAK_RUN_AREA_SIZE - 1));
    size_t off = (size_t)((char *)p - (char *)c);
    size_t page = off / HAK_PAGE_SIZE;
    struct run *r = c->map[page];
    if (HAK_UNLIKELY(off % HAK_PAGE_SIZE || page < HAK_RUN_HEADER_PAGES || !r ||
                     r->area != c || r->first != page || r->state != RUN_USED)) {
        bool freed = !(off % HAK_PAGE_SIZE) && page >= HAK_RUN_HEADER_PAGES && r &&
                     r->area == c && r->first == page && r->freed;
        hak_fatal_ptr(func, freed ? "double free" : "invalid pointer", p);
    }
    return r;
}

/* Takes free run r out of its lists, folding its dirtiness into *dirty and
 * *since (the newest time any dirty part became free). */
static void absorb(struct run *r, bool *dirty, uint64_t *since)
{
    bin_remove(r);
    if (r->dirty) {
        if (!*dirty || r->free_ms > *since)
            *since = r->free_ms;
        *dirty = true;
        dirty_remove(r);
    }
}

/* The spare area: a wholly free area whose pages are purged (a clean run in
 * bin[HAK_RUN_MAX_PAGES]), or NULL.  The delayed purge keeps one such area
 * mapped instead of unmapping it, so that a program that frees its last
 * large block and later allocates another does not map, register and fault
 * in a new area each time, and a second free of a block freed there is still
 * found to be a double free once its pages were purged; it costs address
 * space and the touched part of the area's page map, no other memory.
 * malloc_trim(0) unmaps it too. */
static struct run *spare_area(void)
{
    for (struct run *r = bin[HAK_RUN_MAX_PAGES]; r; r = r->next)
        if (!r->dirty)
            return r;
    return NULL;
}

/* Makes r (in no list) free, merged with its free neighbours; dirty since
 * `since` if it or a neighbour is, and pooled if it (r->pooled) or a
 * neighbour is. */
static void run_settle(struct run *r, bool dirty, uint64_t since)
{
    struct run_area *c = r->area;
    struct run *m = r;
    bool pooled = r->pooled;
    if (r->first > HAK_RUN_HEADER_PAGES) {
        struct run *pr = c->map[r->first - 1];
        if (pr->state == RUN_FREE && pr->area == c && pr->first + pr->pages == r->first) {
            pooled |= pr->pooled;
            absorb(pr, &dirty, &since);
            pr->pages += r->pages;
            desc_kill(r);
            m = pr;
        }
    }
    unsigned end = m->first + m->pages;
    if (end < HAK_RUN_AREA_PAGES) {
        struct run *nx = c->map[end];
        if (nx->state == RUN_FREE && nx->area == c && nx->first == end) {
            pooled |= nx->pooled;
            absorb(nx, &dirty, &since);
            m->pages += nx->pages;
            desc_kill(nx);
        }
    }
    m->pooled = pooled && dirty;
    /* A wholly free area whose parts were purged is still mapped: unless it
     * is to be the spare (spare_area), its purge is the unmap, so it goes on
     * the dirty list, due at once (its parts were free for the delay
     * already). */
    if (m->pages == HAK_RUN_MAX_PAGES && !dirty && spare_area()) {
        dirty = true;
        since = 0;
    }
    free_run_insert(m, dirty, since);
}

/* A fresh run area, mapped and registered but in no list yet; NULL if out
 * of memory.  Called without pages_lock (see lock_with_descs): its page map
 * is all zero, which run_of reads as no run. */
static struct run_area *area_map(enum hak_tier tier)
{
    struct run_area *c = hak_os_map_aligned(HAK_RUN_AREA_SIZE, HAK_RUN_AREA_SIZE);
    if (!c)
        return NULL;
    hak_os_no_huge_pages(c, HAK_RUN_AREA_SIZE);
    hak_stats_mapped(HAK_TIER_LARGE, (int64_t)HAK_RUN_AREA_SIZE);
    hak_registry_set(c, HAK_RUN_AREA_SIZE, HAK_CHUNK_RUNS, HAK_CHUNK_RUNS);
    hak_purge_note_growth(tier);
    return c;
}

/* Puts fresh area c's whole run in its bin, with descriptor r (pages_lock
 * held). */
static void area_install(struct run_area *c, struct run *r)
{
    c->seq = ++area_seq;
    r->area = c;
    r->first = HAK_RUN_HEADER_PAGES;
    r->pages = HAK_RUN_MAX_PAGES;
    free_run_insert(r, false, 0);
}

static void area_unmap(struct run_area *c)
{
    hak_registry_set(c, HAK_RUN_AREA_SIZE, HAK_CHUNK_NONE, HAK_CHUNK_NONE);
    hak_stats_mapped(HAK_TIER_LARGE, -(int64_t)HAK_RUN_AREA_SIZE);
    hak_os_unmap(c, HAK_RUN_AREA_SIZE);
}

/* The first page of free run r at which n pages aligned to `align` fit, or
 * 0 (no run starts at page 0, the header). */
static unsigned fit_in(const struct run *r, unsigned n, size_t align)
{
    uintptr_t start = hak_align_up((uintptr_t)run_start(r), align);
    unsigned first = (unsigned)((start - (uintptr_t)r->area) / HAK_PAGE_SIZE);
    return first + n <= (unsigned)r->first + r->pages ? first : 0;
}

/* Whether free run a lies before free run b: in an older area, or lower in
 * the same one. */
static bool run_before(const struct run *a, const struct run *b)
{
    if (a->area != b->area)
        return a->area->seq < b->area->seq;
    return a->first < b->first;
}

/* Whether free run a is a better place for a block than free run b:
 * resident (dirty) before purged, so that pages freed recently are reused
 * before purged ones are faulted in again; then the one that lies first. */
static bool run_better(const struct run *a, const struct run *b)
{
    if (a->dirty != b->dirty)
        return a->dirty;
    return run_before(a, b);
}

/* A free run with room for n pages aligned to `align`; its start page there
 * in *first.  NULL if none.
 *
 * Of the first FIT_CANDIDATES runs in best-fit order (shortest first) that
 * fit, it takes a resident one if any (run_better), else the one that lies
 * first (oldest area, lowest page): blocks then gather at the start of the
 * oldest areas and the pages at the ends of the areas, never touched, cost
 * nothing.  Plain best fit spreads blocks over every area until all of
 * their pages are resident: in a model of the layer replaying bench_large
 * (64 KiB .. 4 MiB blocks), peak resident pages fell from 30.3 to 27.6 MiB
 * on average over 11 seeds, as low as address-ordered first fit, which
 * would need a search over every free run; bench_large 10000 itself makes
 * 7,218 page faults, against 8,281 with plain best fit. */
#define FIT_CANDIDATES 4

static struct run *find_run(unsigned n, size_t align, unsigned *first)
{
    struct run *best = NULL;
    unsigned seen = 0;
    for (unsigned b = bin_find(n); b; b = b < HAK_RUN_MAX_PAGES ? bin_find(b + 1) : 0) {
        for (struct run *r = bin[b]; r; r = r->next) {
            unsigned f = align <= HAK_PAGE_SIZE ? r->first : fit_in(r, n, align);
            if (!f)
                continue;
            if (!best || run_better(r, best)) {
                best = r;
                *first = f;
            }
            if (++seen == FIT_CANDIDATES)
                break;
        }
        if (seen == FIT_CANDIDATES)
            break;
    }
    return best;
}

/* Splits free run r (unlinked) into a free head, the used run [first, first
 * + n) and a free tail; the free parts keep r's dirtiness and age. */
static void *carve(struct run *r, unsigned first, unsigned n, struct run *head, struct run *tail,
                   bool *zeroed)
{
    unsigned end = (unsigned)r->first + r->pages;
    bool dirty = r->dirty;
    uint64_t since = r->free_ms;
    dirty_remove(r);
    *zeroed = !dirty;
    if (first > r->first) {
        head->area = r->area;
        head->first = r->first;
        head->pages = (uint16_t)(first - r->first);
        /* It starts where r did: a second free of a block freed there is
         * still a double free (an aligned run, a pool page, left it). */
        head->freed = r->freed;
        head->pooled = r->pooled;
        free_run_insert(head, dirty, since);
    } else {
        desc_kill(head);
    }
    if (first + n < end) {
        tail->area = r->area;
        tail->first = (uint16_t)(first + n);
        tail->pages = (uint16_t)(end - first - n);
        tail->pooled = r->pooled;
        free_run_insert(tail, dirty, since);
    } else {
        desc_kill(tail);
    }
    r->first = (uint16_t)first;
    r->pages = (uint16_t)n;
    r->state = RUN_USED;
    r->freed = false;
    map_set(r);
    return run_start(r);
}

/* Descriptors one pages_alloc may need: the free head and tail of the run
 * it carves from, and the whole run of a new area. */
#define ALLOC_DESCS 3

void *pages_alloc(size_t npages, size_t align, bool *zeroed, enum hak_tier tier)
{
    unsigned n = (unsigned)npages;
    if (!lock_with_descs(ALLOC_DESCS))
        return NULL;
    unsigned first;
    struct run *r = find_run(n, align, &first);
    if ((!r || !r->dirty) && pool_has_excess()) {
        /* Resident pages before others: the empty pool pages beyond what
         * their classes keep come back first (pool.h), with no lock held
         * (a pool class lock is never waited for under pages_lock). */
        hak_unlock(&pages_lock);
        pool_give_back_excess();
        if (!lock_with_descs(ALLOC_DESCS))
            return NULL;
        r = find_run(n, align, &first);
    }
    if (!r) {
        /* A new area, mapped without the lock (see lock_with_descs). */
        hak_unlock(&pages_lock);
        struct run_area *c = area_map(tier);
        if (!c)
            return NULL;
        if (!lock_with_descs(ALLOC_DESCS)) {
            area_unmap(c);
            return NULL;
        }
        area_install(c, desc_new());
        r = find_run(n, align, &first);
        if (!r) {
            hak_unlock(&pages_lock);
            return NULL;
        }
    }
    struct run *head = desc_new(), *tail = desc_new();
    bin_remove(r);
    void *p = carve(r, first, n, head, tail, zeroed);
    hak_unlock(&pages_lock);
    return p;
}

static void run_free(void *p, const char *func, bool dirty, bool pooled)
{
    uint64_t now = dirty ? hak_clock_ms() : 0;
    hak_lock(&pages_lock);
    struct run *r = run_of(p, func);
    r->freed = true;
    r->pooled = pooled;
    run_settle(r, dirty, now);
    hak_unlock(&pages_lock);
}

void pages_free(void *p, const char *func)
{
    run_free(p, func, true, false);
}

void pages_free_pool(void *p, bool purged)
{
    run_free(p, "free", !purged, !purged);
}

size_t pages_usable_size(void *p, const char *func)
{
    hak_lock(&pages_lock);
    size_t n = pages_bytes(run_of(p, func)->pages);
    hak_unlock(&pages_lock);
    return n;
}

bool pages_resize(void *p, size_t npages, const char *func)
{
    unsigned n = (unsigned)npages;
    bool ok = true;
    uint64_t now = hak_clock_ms();
    if (!lock_with_descs(1))
        return false;
    struct run *r = run_of(p, func);
    unsigned end = (unsigned)r->first + r->pages;
    if (n < r->pages) {
        struct run *t = desc_new(); /* lock_with_descs(1) */
        t->area = r->area;
        t->first = (uint16_t)(r->first + n);
        t->pages = (uint16_t)(r->pages - n);
        t->state = RUN_USED;
        r->pages = (uint16_t)n;
        map_set(r);
        map_set(t);
        run_settle(t, true, now);
    } else if (n > r->pages) {
        struct run *nx = end < HAK_RUN_AREA_PAGES ? r->area->map[end] : NULL;
        unsigned extra = n - r->pages;
        if (nx && nx->state == RUN_FREE && nx->area == r->area && nx->first == end &&
            nx->pages >= extra) {
            bin_remove(nx);
            if (nx->pages > extra) {
                bool dirty = nx->dirty;
                uint64_t since = nx->free_ms;
                dirty_remove(nx);
                nx->first = (uint16_t)(nx->first + extra);
                nx->pages = (uint16_t)(nx->pages - extra);
                free_run_insert(nx, dirty, since);
            } else {
                dirty_remove(nx);
                desc_kill(nx);
            }
            r->pages = (uint16_t)n;
            map_set(r);
        } else {
            ok = false;
        }
    }
    hak_unlock(&pages_lock);
    return ok;
}

/* Due runs leave every list (RUN_PURGING: no one allocates them or merges
 * with them) while their pages are given back without the lock, then come
 * back clean.  A run that is its whole area gives the area back, unless it
 * becomes the spare (spare_area). */
static void purging_remove(struct run *r)
{
    if (r->dprev)
        r->dprev->dnext = r->dnext;
    else
        purging = r->dnext;
    if (r->dnext)
        r->dnext->dprev = r->dprev;
}

/* Moves free run r (in its bin) to the purge list `todo`. */
static void purge_take(struct run *r, struct run **todo)
{
    dirty_remove(r);
    bin_remove(r);
    r->state = RUN_PURGING;
    r->purger = hak_self_tag();
    r->next = *todo;
    *todo = r;
    r->dprev = NULL;
    r->dnext = purging;
    if (purging)
        purging->dprev = r;
    purging = r;
}

size_t pages_purge(uint64_t now_ms, uint64_t age_ms, bool all, bool pooled)
{
    struct run *todo = NULL, *keep = NULL;
    size_t bytes = 0;
    hak_lock(&pages_lock);
    for (struct run *r = dirty_head, *next; r; r = next) {
        next = r->dnext;
        if ((pooled && !r->pooled) || (!all && !hak_purge_due(r->free_ms, now_ms, age_ms)))
            continue;
        /* The first wholly free area due, if there is no spare, becomes
         * the spare: purged, not unmapped. */
        if (!all && !keep && r->pages == HAK_RUN_MAX_PAGES && !spare_area())
            keep = r;
        purge_take(r, &todo);
        bytes += pages_bytes(r->pages);
    }
    if (all && !pooled) {
        /* The spare's pages are purged already: what goes is its page map. */
        struct run *spare;
        while ((spare = spare_area())) {
            purge_take(spare, &todo);
            bytes += pages_bytes(HAK_RUN_HEADER_PAGES);
        }
    }
    hak_unlock(&pages_lock);
    if (!todo)
        return 0;
    for (struct run *r = todo; r; r = r->next) {
        if (r->pages == HAK_RUN_MAX_PAGES && r != keep)
            area_unmap(r->area);
        else
            hak_os_purge(run_start(r), pages_bytes(r->pages));
    }
    hak_lock(&pages_lock);
    for (struct run *r = todo, *next; r; r = next) {
        next = r->next;
        purging_remove(r);
        if (r->pages == HAK_RUN_MAX_PAGES && r != keep) {
            desc_kill(r);
        } else {
            r->pooled = false;
            run_settle(r, false, 0);
        }
    }
    hak_unlock(&pages_lock);
    return bytes;
}

void pages_fork_prepare(void) { hak_lock(&pages_lock); }
void pages_fork_parent(void) { hak_unlock(&pages_lock); }

void pages_fork_child(void)
{
    /* fork() from a signal handler that interrupted this thread inside
     * pages.c's lock: the lists may be mid-update, and the interrupted code
     * goes on with them in the child.  Leave everything as it is (runs other
     * threads were purging stay out of use in this child). */
    bool kept = pages_lock.fork_kept;
    hak_lock_init(&pages_lock);
    if (kept)
        return;
    /* Runs another thread was purging come back as dirty free runs (their
     * pages may or may not be purged yet).  A whole area was being unmapped:
     * it is gone if its registry entry is cleared, and so it is if the
     * address already holds a new area (unmapped, then mapped again by a
     * third thread), whose page map does not name this run.  Runs this
     * thread was purging (fork() from a signal handler that interrupted
     * pages_purge) stay as they are: the interrupted purge, which goes on
     * in the child too once the handler returns, settles them itself. */
    uint64_t now = hak_clock_ms();
    uint32_t self = hak_self_tag();
    for (struct run *r = purging, *next; r; r = next) {
        next = r->dnext;
        if (r->purger == self)
            continue;
        purging_remove(r);
        if (r->pages == HAK_RUN_MAX_PAGES && (hak_registry_kind(r->area) != HAK_CHUNK_RUNS ||
                                              r->area->map[r->first] != r))
            desc_kill(r);
        else
            run_settle(r, true, now);
    }
}
