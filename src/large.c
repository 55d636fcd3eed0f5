/*
 * large.c - the large tier (requests above HAK_POOL_MAX).
 *
 * Blocks up to HAK_LARGE_RUN_MAX bytes (with alignments up to
 * HAK_LARGE_RUN_ALIGN_MAX) are page runs of the page-run layer (pages.h): no
 * header, found through their run area's page map.  Larger blocks get a
 * mapping of their own, aligned to a chunk so that the registry entry of its
 * first chunk identifies it, but only as long as the block rounded to pages:
 * the 64-byte header sits at the start of the mapping and the block right
 * after it (or at the first multiple of its alignment).  Alignments of a
 * chunk or more put the block at a chunk boundary with the header just below
 * it (HAK_CHUNK_LARGE_ALIGNED).
 * When no new run area fits in the address space left, a block up to
 * HAK_LARGE_RUN_MAX gets a mapping too.
 *
 * Freed mappings go to a cache and are reused best fit: a cached mapping
 * more than one and a half times the request (and a chunk longer than it
 * rounded to chunks) is split at a chunk boundary, and its tail stays
 * cached, resident, for the next request (no system call); a shorter one is
 * grown with mremap (the pages already there move without a copy).  Pieces
 * of one kernel mapping (the same `origin`; mremap gives a mapping an
 * origin of its own, since the kernel splits its mapping there) that touch
 * are merged again in the cache, so a freed block and the tail split off it
 * serve a longer request whole, and realloc grows a block into the cached
 * piece that starts where it ends (cache_absorb).  The cache holds
 * HAKMEM_LARGE_CACHE_MB, or as many bytes as the mappings of live blocks if
 * that is more: a program that replaces its big blocks one at a time frees
 * one as it allocates the next, and a fixed 64 MiB made every other
 * replacement grow a mapping.
 * Splitting replaced shrinking a mapping more than four times the request,
 * which unmapped pages that the next longer request faulted in again:
 * bench_huge 500 (twenty blocks of 5-25 MiB, replaced at random) made 208k
 * page faults, 116k now (tcmalloc 127k), 524 -> 595 ops/s, peak RSS 496 ->
 * 464 MB (medians of 9, alternating).  Split at 4 times, 208k -> 155k
 * faults; split at every chunk with the fixed budget, 336k.
 * Cached mappings are unmapped once they have stayed unused for the purge
 * delay (purge.h), but for one, the spare, which is purged and kept
 * (large_purge).
 */
#include "large.h"
#include "options.h"
#include "os.h"
#include "purge.h"
#include "stats.h"

#include "lock.h"
#include <string.h>

#define LARGE_MAGIC 0x68616b4c41524745ull /* "hakLARGE" */
#define LARGE_FREED 0x68616b4652454544ull /* "hakFREED": the block was freed */
#define LARGE_HEADER 64
#define LARGE_CACHE_SLOTS 64

struct large_header {
    uint64_t magic;
    size_t user_off;   /* the block, as an offset from this header (an offset,
                          not a pointer, so valgrind's leak check does not
                          count it as a reference to the block) */
    char *map;         /* start of the mapping */
    size_t map_size;   /* bytes mapped: a multiple of HAK_PAGE_SIZE */
    size_t size;       /* usable bytes from user to the end of the mapping */
    char *origin;      /* the kernel mapping it was cut from (see above) */
};

_Static_assert(sizeof(struct large_header) <= LARGE_HEADER, "large header too big");

static struct hak_lock cache_lock = HAK_LOCK_INITIALIZER;
static struct {
    char *map;
    size_t size;
    char *origin;
    uint64_t free_ms;
    bool purged; /* the spare: its pages past the header were purged */
} cache[LARGE_CACHE_SLOTS];
static unsigned cache_count;
static size_t cache_bytes;
/* Bytes of the mappings of live blocks (mapped_alloc to large_free). */
static _Atomic size_t live_bytes;

void large_init(void) {}

/* The registry span of a mapping: whole chunks. */
static size_t chunk_span(size_t map_size)
{
    return hak_align_up(map_size, HAK_CHUNK_SIZE);
}

/* Bytes to map for `size` bytes at offset `off` from the mapping start, or 0
 * if that overflows. */
static size_t map_size_for(size_t size, size_t off)
{
    if (size > HAK_MAX_REQUEST - off - HAK_CHUNK_SIZE)
        return 0;
    return hak_align_up(size + off, HAK_PAGE_SIZE);
}

static void unmap_block(char *map, size_t size)
{
    hak_registry_set(map, chunk_span(size), HAK_CHUNK_NONE, HAK_CHUNK_NONE);
    hak_stats_mapped(HAK_TIER_LARGE, -(int64_t)size);
    hak_os_unmap(map, size);
}

/* Resizes a mapping that no registry entry names (cached or being resized)
 * from *size to `want` bytes; false if the kernel refuses (it is unchanged).
 * The mapping is a kernel mapping of its own afterwards: its new origin. */
static bool remap(char **map, size_t *size, size_t want)
{
    char *m = hak_os_remap_chunks(*map, *size, want);
    if (!m)
        return false;
    hak_stats_mapped(HAK_TIER_LARGE, (int64_t)want - (int64_t)*size);
    *map = m;
    *size = want;
    return true;
}

/* Writes header h of the block at user_off from it, in mapping map. */
static void header_set(struct large_header *h, uint64_t magic, size_t user_off, char *map,
                       size_t map_size, char *origin)
{
    h->magic = magic;
    h->user_off = user_off;
    h->map = map;
    h->map_size = map_size;
    h->size = (size_t)(map + map_size - ((char *)h + user_off));
    h->origin = origin;
}

/* Marks cached mapping map (size bytes) as a mapping start in the registry,
 * with a freed header: a stale free() of a block that started there is a
 * double free, not a block of another mapping. */
static void cached_start(char *map, size_t size, char *origin)
{
    hak_registry_set(map, chunk_span(size), HAK_CHUNK_LARGE, HAK_CHUNK_LARGE_TAIL);
    header_set((struct large_header *)map, LARGE_FREED, LARGE_HEADER, map, size, origin);
}

/* Whether a cached mapping of `have` bytes is split to serve `want`: it
 * holds more than half as much again, the block's part rounded to chunks
 * does not, and a whole chunk is left over. */
static bool split_pays(size_t have, size_t want)
{
    size_t keep = hak_align_up(want, HAK_CHUNK_SIZE);
    return have > want + want / 2 && keep <= want + want / 2 && have >= keep + HAK_CHUNK_SIZE;
}

/* A cached mapping for *size bytes, or NULL; its length in *size and its
 * origin in *origin.  Best fit: the shortest mapping of at least *size
 * bytes, split when more than one and a half times that (the tail stays
 * cached), else the longest shorter one, grown. */
static char *cache_take(size_t *size, char **origin)
{
    size_t want = *size, have = 0, keep = hak_align_up(want, HAK_CHUNK_SIZE);
    char *map = NULL;
    hak_lock(&cache_lock);
    unsigned best = LARGE_CACHE_SLOTS;
    for (unsigned i = 0; i < cache_count; i++) {
        size_t s = cache[i].size;
        if (best == LARGE_CACHE_SLOTS ||
            (s >= want ? cache[best].size < want || s < cache[best].size
                       : cache[best].size < want && s > cache[best].size))
            best = i;
    }
    if (best < LARGE_CACHE_SLOTS) {
        map = cache[best].map;
        have = cache[best].size;
        *origin = cache[best].origin;
        if (split_pays(have, want)) {
            /* The tail stays, in the same slot, registered as a mapping
             * of its own; the block takes `keep` bytes. */
            cache[best].map = map + keep;
            cache[best].size = have - keep;
            cached_start(cache[best].map, cache[best].size, *origin);
            have = keep;
            cache_bytes -= keep;
        } else {
            cache_bytes -= have;
            cache[best] = cache[--cache_count];
        }
    }
    hak_unlock(&cache_lock);
    if (!map)
        return NULL;
    if (have < want || have > 4 * want) {
        /* Cached mappings stay registered (a stale free finds the freed
         * header); one that may move leaves the registry first.  (A block
         * too short to be split off at a chunk boundary shrinks a mapping
         * more than four times as long: blocks below 4 MiB that get a
         * mapping only where no run area fits in the address space.) */
        hak_registry_set(map, chunk_span(have), HAK_CHUNK_NONE, HAK_CHUNK_NONE);
        if (!remap(&map, &have, want)) {
            hak_stats_mapped(HAK_TIER_LARGE, -(int64_t)have);
            hak_os_unmap(map, have);
            return NULL;
        }
        *origin = map;
    }
    *size = have;
    return map;
}

/* Keeps a freed mapping for reuse (`purged`: as the spare), merged with the
 * cached pieces of its origin that it touches; false if the cache is full
 * (its slots, or its budget: see the top). */
static bool cache_put(char *map, size_t size, char *origin, uint64_t now, bool purged)
{
    bool kept = false;
    size_t budget = hak_opt.large_cache_bytes, live = atomic_load(&live_bytes);
    if (budget && live > budget)
        budget = live;
    hak_lock(&cache_lock);
    if (cache_bytes + size <= budget) {
        cache_bytes += size;
        for (unsigned i = 0; i < cache_count;) {
            char *m = cache[i].map;
            if (cache[i].origin != origin || (m + cache[i].size != map && map + size != m)) {
                i++;
                continue;
            }
            /* A neighbour: one mapping now, whose start is the lower one's
             * (the upper one's first chunk is a tail chunk from now on). */
            char *upper = m < map ? map : m;
            size_t upper_size = m < map ? size : cache[i].size;
            hak_registry_set(upper, chunk_span(upper_size), HAK_CHUNK_LARGE_TAIL,
                             HAK_CHUNK_LARGE_TAIL);
            if (m < map)
                map = m;
            size += cache[i].size;
            purged = purged && cache[i].purged;
            cache[i] = cache[--cache_count];
            i = 0; /* the merged mapping may touch one more */
        }
        if (cache_count < LARGE_CACHE_SLOTS) {
            cache[cache_count].map = map;
            cache[cache_count].size = size;
            cache[cache_count].origin = origin;
            cache[cache_count].free_ms = now;
            cache[cache_count].purged = purged;
            cache_count++;
            kept = true;
        } else {
            cache_bytes -= size;
        }
    }
    hak_unlock(&cache_lock);
    return kept;
}

/* A mapping of at least *map_size bytes (its length in *map_size, its
 * origin in *origin). */
static char *new_mapping(size_t *map_size, char **origin, bool *fresh)
{
    char *map = cache_take(map_size, origin);
    *fresh = !map;
    if (map)
        return map;
    map = hak_os_map_chunks(*map_size);
    if (!map)
        return NULL;
    *origin = map;
    hak_os_no_huge_pages(map, *map_size);
    hak_stats_mapped(HAK_TIER_LARGE, (int64_t)*map_size);
    hak_purge_note_growth(HAK_TIER_LARGE);
    return map;
}

static void *mapped_alloc(size_t size, size_t align, bool *zeroed)
{
    bool fresh;
    if (align < HAK_CHUNK_SIZE) {
        size_t off = hak_align_up(LARGE_HEADER, align);
        size_t map_size = map_size_for(size, off);
        if (!map_size)
            return NULL;
        char *origin;
        char *map = new_mapping(&map_size, &origin, &fresh);
        if (!map)
            return NULL;
        header_set((struct large_header *)map, LARGE_MAGIC, off, map, map_size, origin);
        hak_registry_set(map, chunk_span(map_size), HAK_CHUNK_LARGE, HAK_CHUNK_LARGE_TAIL);
        atomic_fetch_add(&live_bytes, map_size);
        *zeroed = fresh;
        return map + off;
    }
    /* Chunk alignment or more: the block starts at an aligned chunk boundary
     * past the first chunk, whose end holds the header. */
    size_t map_size = map_size_for(size, align + HAK_CHUNK_SIZE);
    if (!map_size)
        return NULL;
    char *map = hak_os_map_chunks(map_size);
    if (!map)
        return NULL;
    hak_os_no_huge_pages(map, map_size);
    hak_stats_mapped(HAK_TIER_LARGE, (int64_t)map_size);
    hak_purge_note_growth(HAK_TIER_LARGE);
    char *user = (char *)hak_align_up((uintptr_t)map + HAK_CHUNK_SIZE, align);
    header_set((struct large_header *)(user - LARGE_HEADER), LARGE_MAGIC, LARGE_HEADER, map,
               map_size, map);
    hak_registry_set(map, chunk_span(map_size), HAK_CHUNK_LARGE_TAIL, HAK_CHUNK_LARGE_TAIL);
    hak_registry_set(user, HAK_CHUNK_SIZE, HAK_CHUNK_LARGE_ALIGNED, HAK_CHUNK_LARGE_ALIGNED);
    atomic_fetch_add(&live_bytes, map_size);
    *zeroed = true;
    return user;
}

/* Pages of a run for `size` bytes (at least one). */
static size_t pages_for(size_t size)
{
    return size ? hak_align_up(size, HAK_PAGE_SIZE) / HAK_PAGE_SIZE : 1;
}

void *large_alloc(size_t size, size_t align, bool *zeroed)
{
    hak_purge_tick();
    if (size <= HAK_LARGE_RUN_MAX && align <= HAK_LARGE_RUN_ALIGN_MAX) {
        void *p = pages_alloc(pages_for(size), align, zeroed, HAK_TIER_LARGE);
        /* Where no new run area fits in the address space left (under
         * `ulimit -v`), a mapping sized to the block may. */
        if (p)
            return p;
    }
    return mapped_alloc(size, align, zeroed);
}

/* The header of mapped block p, or an abort naming `func` if p is not one. */
static struct large_header *header_of(void *p, enum hak_chunk_kind kind, const char *func)
{
    struct large_header *h;
    if (kind == HAK_CHUNK_LARGE) {
        h = (struct large_header *)hak_chunk_base(p);
    } else if (kind == HAK_CHUNK_LARGE_ALIGNED && ((uintptr_t)p & HAK_CHUNK_MASK) == 0) {
        h = (struct large_header *)((char *)p - LARGE_HEADER);
    } else {
        /* No block starts in a tail chunk.  A block freed and merged into
         * the cached mapping below it (cache_put) left its freed header at
         * the start of its chunk: a second free of it is a double free. */
        h = (struct large_header *)hak_chunk_base(p);
        bool freed = kind == HAK_CHUNK_LARGE_TAIL && h->magic == LARGE_FREED &&
                     (char *)h + h->user_off == (char *)p;
        hak_fatal_ptr(func, freed ? "double free" : "invalid pointer", p);
    }
    bool at_block = (char *)h + h->user_off == (char *)p;
    if (HAK_UNLIKELY(h->magic != LARGE_MAGIC || !at_block))
        hak_fatal_ptr(func, h->magic == LARGE_FREED && at_block ? "double free" : "invalid pointer",
                      p);
    return h;
}

void large_free(void *p, enum hak_chunk_kind kind, const char *func)
{
    if (kind == HAK_CHUNK_RUNS) {
        pages_free(p, func);
    } else {
        struct large_header *h = header_of(p, kind, func);
        char *map = h->map;
        size_t map_size = h->map_size;
        h->magic = LARGE_FREED; /* a second free of p fails the magic check */
        atomic_fetch_sub(&live_bytes, map_size);
        if (kind != HAK_CHUNK_LARGE ||
            !cache_put(map, map_size, h->origin, hak_clock_ms(), false))
            unmap_block(map, map_size);
    }
    hak_purge_tick();
}

size_t large_usable_size(void *p, enum hak_chunk_kind kind, const char *func)
{
    if (kind == HAK_CHUNK_RUNS)
        return pages_usable_size(p, func);
    return header_of(p, kind, func)->size;
}

/* Grows live block h's mapping to at least new_size bytes in place, with
 * the cached piece of its origin that starts where it ends (a tail split
 * off it, or off the mapping it came from): no system call.  Takes the
 * piece whole, or splits it at a chunk boundary when it holds more than
 * half as much again as the growth needs.  False if there is no such piece
 * or it is too short. */
static bool cache_absorb(struct large_header *h, size_t new_size)
{
    char *end = h->map + h->map_size;
    bool done = false;
    hak_lock(&cache_lock);
    for (unsigned i = 0; i < cache_count; i++) {
        if (cache[i].origin != h->origin || cache[i].map != end)
            continue;
        size_t need = new_size - h->map_size, have = cache[i].size,
               keep = hak_align_up(need, HAK_CHUNK_SIZE);
        if (have < need)
            break;
        hak_registry_set(end, chunk_span(have), HAK_CHUNK_LARGE_TAIL, HAK_CHUNK_LARGE_TAIL);
        if (split_pays(have, need)) {
            cache[i].map = end + keep;
            cache[i].size = have - keep;
            cached_start(cache[i].map, cache[i].size, h->origin);
            have = keep;
        } else {
            cache[i] = cache[--cache_count];
        }
        cache_bytes -= have;
        h->map_size += have;
        h->size += have;
        atomic_fetch_add(&live_bytes, have);
        done = true;
        break;
    }
    hak_unlock(&cache_lock);
    return done;
}

void *large_realloc(void *p, enum hak_chunk_kind kind, size_t size)
{
    if (kind == HAK_CHUNK_RUNS) {
        if (size > HAK_LARGE_RUN_MAX)
            return NULL;
        return pages_resize(p, pages_for(size), "realloc") ? p : NULL;
    }
    struct large_header *h = header_of(p, HAK_CHUNK_LARGE, "realloc");
    size_t off = (size_t)((char *)p - h->map);
    size_t new_size = map_size_for(size, off);
    if (!new_size)
        return NULL;
    /* Small shrinks stay put: no system call for a few pages. */
    if (new_size <= h->map_size && new_size >= h->map_size / 2)
        return p;
    if (new_size > h->map_size && cache_absorb(h, new_size))
        return p;
    char *map = h->map;
    size_t map_size = h->map_size, old_size = map_size;
    hak_registry_set(map, chunk_span(map_size), HAK_CHUNK_NONE, HAK_CHUNK_NONE);
    if (!remap(&map, &map_size, new_size)) {
        hak_registry_set(map, chunk_span(map_size), HAK_CHUNK_LARGE, HAK_CHUNK_LARGE_TAIL);
        return NULL;
    }
    atomic_fetch_add(&live_bytes, map_size - old_size); /* modulo 2^64 */
    header_set((struct large_header *)map, LARGE_MAGIC, off, map, map_size, map);
    hak_registry_set(map, chunk_span(map_size), HAK_CHUNK_LARGE, HAK_CHUNK_LARGE_TAIL);
    return map + off;
}

/* Whether the cache holds the spare (cache_lock held). */
static bool cache_has_spare(void)
{
    for (unsigned i = 0; i < cache_count; i++)
        if (cache[i].purged)
            return true;
    return false;
}

/*
 * Due mappings leave the cache under the lock and are unmapped after, except
 * one, if the cache holds none yet: the spare, purged but for its header
 * page and put back, as the page-run layer keeps a spare area (pages.c): a
 * program that allocates one big block after every pause maps nothing new,
 * and a second free of a block there is still a double free.
 * malloc_trim(0) unmaps it too.
 */
size_t large_purge(uint64_t now_ms, uint64_t age_ms, bool all)
{
    size_t bytes = pages_purge(now_ms, age_ms, all, false);
    struct {
        char *map;
        size_t size;
        char *origin;
    } due[LARGE_CACHE_SLOTS];
    unsigned n = 0;
    bool keep = false; /* due[0] becomes the spare */
    hak_lock(&cache_lock);
    for (unsigned i = cache_count; i-- > 0;) {
        if (!all && (cache[i].purged || !hak_purge_due(cache[i].free_ms, now_ms, age_ms)))
            continue;
        if (!all && n == 0 && !cache_has_spare())
            keep = true;
        due[n].map = cache[i].map;
        due[n].size = cache[i].size;
        due[n].origin = cache[i].origin;
        n++;
        cache_bytes -= cache[i].size;
        cache[i] = cache[--cache_count];
    }
    hak_unlock(&cache_lock);
    for (unsigned i = keep ? 1 : 0; i < n; i++) {
        unmap_block(due[i].map, due[i].size);
        bytes += due[i].size;
    }
    if (keep) {
        hak_os_purge(due[0].map + HAK_PAGE_SIZE, due[0].size - HAK_PAGE_SIZE);
        bytes += due[0].size - HAK_PAGE_SIZE;
        if (!cache_put(due[0].map, due[0].size, due[0].origin, now_ms, true))
            unmap_block(due[0].map, due[0].size);
    }
    return bytes;
}

void large_fork_prepare(void)
{
    hak_lock(&cache_lock);
    pages_fork_prepare();
}

void large_fork_parent(void)
{
    pages_fork_parent();
    hak_unlock(&cache_lock);
}

void large_fork_child(void)
{
    pages_fork_child();
    hak_lock_init(&cache_lock);
}
