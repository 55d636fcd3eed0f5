/*
 * large.c - the large tier.
 *
 * A block lives in its own mapping of whole chunks.  The 64-byte header sits
 * at the start of the mapping and the block right after it (or at the first
 * multiple of its alignment), so free() finds the header by masking the
 * pointer down to its chunk.  Alignments of a chunk or more put the block at
 * a chunk boundary with the header just below it (HAK_CHUNK_LARGE_ALIGNED).
 *
 * Freed mappings go to a small cache (HAKMEM_LARGE_CACHE_MB) and are reused
 * by any request that fits, so a program cycling through 64 KiB - 1 MiB blocks
 * makes no system call in its steady state.
 */
#include "large.h"
#include "options.h"
#include "os.h"
#include "stats.h"

#include "lock.h"
#include <pthread.h>
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
    size_t map_size;   /* bytes mapped: a multiple of HAK_CHUNK_SIZE */
    size_t size;       /* usable bytes from user to the end of the mapping */
};

_Static_assert(sizeof(struct large_header) <= LARGE_HEADER, "large header too big");

static struct hak_lock cache_lock = HAK_LOCK_INITIALIZER;
static struct {
    char *map;
    size_t size;
} cache[LARGE_CACHE_SLOTS];
static unsigned cache_count;
static size_t cache_bytes;

void large_init(void) {}

/* Bytes to map for `size` bytes at offset `off` from the mapping start, or 0
 * if that overflows. */
static size_t map_size_for(size_t size, size_t off)
{
    if (size > HAK_MAX_REQUEST - off - HAK_CHUNK_SIZE)
        return 0;
    return hak_align_up(size + off, HAK_CHUNK_SIZE);
}

/* A cached mapping of exactly `size` bytes, or NULL. */
static char *cache_take(size_t size)
{
    char *map = NULL;
    hak_lock(&cache_lock);
    for (unsigned i = cache_count; i-- > 0;) {
        if (cache[i].size == size) {
            map = cache[i].map;
            cache_bytes -= size;
            cache[i] = cache[--cache_count];
            break;
        }
    }
    hak_unlock(&cache_lock);
    return map;
}

/* Keeps a freed mapping for reuse; false if the cache is full. */
static bool cache_put(char *map, size_t size)
{
    bool kept = false;
    hak_lock(&cache_lock);
    if (cache_count < LARGE_CACHE_SLOTS && cache_bytes + size <= hak_opt.large_cache_bytes) {
        cache[cache_count].map = map;
        cache[cache_count].size = size;
        cache_count++;
        cache_bytes += size;
        kept = true;
    }
    hak_unlock(&cache_lock);
    return kept;
}

static void unmap_block(char *map, size_t size)
{
    hak_registry_set(map, size, HAK_CHUNK_NONE, HAK_CHUNK_NONE);
    hak_stats_mapped(HAK_TIER_LARGE, -(int64_t)size);
    hak_os_unmap(map, size);
}

static void *new_mapping(size_t map_size, bool *fresh)
{
    char *map = cache_take(map_size);
    *fresh = false;
    if (!map) {
        map = hak_os_map_chunks(map_size);
        if (!map)
            return NULL;
        *fresh = true;
        hak_stats_mapped(HAK_TIER_LARGE, (int64_t)map_size);
    }
    return map;
}

void *large_alloc(size_t size, size_t align, bool *zeroed)
{
    bool fresh;
    if (align < HAK_CHUNK_SIZE) {
        size_t off = hak_align_up(LARGE_HEADER, align);
        size_t map_size = map_size_for(size, off);
        if (!map_size)
            return NULL;
        char *map = new_mapping(map_size, &fresh);
        if (!map)
            return NULL;
        struct large_header *h = (struct large_header *)map;
        h->magic = LARGE_MAGIC;
        h->user_off = off;
        h->map = map;
        h->map_size = map_size;
        h->size = map_size - off;
        hak_registry_set(map, map_size, HAK_CHUNK_LARGE, HAK_CHUNK_LARGE_TAIL);
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
    hak_stats_mapped(HAK_TIER_LARGE, (int64_t)map_size);
    char *user = (char *)hak_align_up((uintptr_t)map + HAK_CHUNK_SIZE, align);
    struct large_header *h = (struct large_header *)(user - LARGE_HEADER);
    h->magic = LARGE_MAGIC;
    h->user_off = LARGE_HEADER;
    h->map = map;
    h->map_size = map_size;
    h->size = (size_t)(map + map_size - user);
    hak_registry_set(map, map_size, HAK_CHUNK_LARGE_TAIL, HAK_CHUNK_LARGE_TAIL);
    hak_registry_set(user, HAK_CHUNK_SIZE, HAK_CHUNK_LARGE_ALIGNED, HAK_CHUNK_LARGE_ALIGNED);
    *zeroed = true;
    return user;
}

/* The header of block p, or an abort naming `func` if p is not a block. */
static struct large_header *header_of(void *p, enum hak_chunk_kind kind, const char *func)
{
    struct large_header *h;
    if (kind == HAK_CHUNK_LARGE)
        h = (struct large_header *)hak_chunk_base(p);
    else if (kind == HAK_CHUNK_LARGE_ALIGNED && ((uintptr_t)p & HAK_CHUNK_MASK) == 0)
        h = (struct large_header *)((char *)p - LARGE_HEADER);
    else
        hak_fatal_ptr(func, "invalid pointer", p);
    bool at_block = (char *)h + h->user_off == (char *)p;
    if (HAK_UNLIKELY(h->magic != LARGE_MAGIC || !at_block))
        hak_fatal_ptr(func, h->magic == LARGE_FREED && at_block ? "double free" : "invalid pointer",
                      p);
    return h;
}

void large_free(void *p, enum hak_chunk_kind kind, const char *func)
{
    struct large_header *h = header_of(p, kind, func);
    char *map = h->map;
    size_t map_size = h->map_size;
    bool cacheable = kind == HAK_CHUNK_LARGE;
    h->magic = LARGE_FREED; /* a second free of p fails the magic check */
    if (cacheable) {
        /* Cached mappings stay registered as large: a stale free of the old
         * block still finds a header with no magic and aborts. */
        if (cache_put(map, map_size))
            return;
    }
    unmap_block(map, map_size);
}

size_t large_usable_size(void *p, enum hak_chunk_kind kind, const char *func)
{
    return header_of(p, kind, func)->size;
}

void *large_realloc(void *p, size_t size)
{
    struct large_header *h = header_of(p, HAK_CHUNK_LARGE, "realloc");
    if (map_size_for(size, (size_t)((char *)p - h->map)) == h->map_size)
        return p;
    size_t off = (size_t)((char *)p - h->map);
    size_t new_size = map_size_for(size, off);
    if (!new_size)
        return NULL;
    char *old = h->map;
    size_t old_size = h->map_size;
    hak_registry_set(old, old_size, HAK_CHUNK_NONE, HAK_CHUNK_NONE);
    char *map = hak_os_remap_chunks(old, old_size, new_size);
    if (!map) {
        hak_registry_set(old, old_size, HAK_CHUNK_LARGE, HAK_CHUNK_LARGE_TAIL);
        return NULL;
    }
    hak_stats_mapped(HAK_TIER_LARGE, (int64_t)new_size - (int64_t)old_size);
    h = (struct large_header *)map;
    h->user_off = off;
    h->map = map;
    h->map_size = new_size;
    h->size = new_size - off;
    hak_registry_set(map, new_size, HAK_CHUNK_LARGE, HAK_CHUNK_LARGE_TAIL);
    return map + off;
}

size_t large_purge(uint64_t now_ms, bool all)
{
    (void)now_ms;
    if (!all)
        return 0;
    size_t bytes = 0;
    hak_lock(&cache_lock);
    while (cache_count) {
        cache_count--;
        unmap_block(cache[cache_count].map, cache[cache_count].size);
        bytes += cache[cache_count].size;
    }
    cache_bytes = 0;
    hak_unlock(&cache_lock);
    return bytes;
}

void large_fork_prepare(void) { hak_lock(&cache_lock); }
void large_fork_parent(void) { hak_unlock(&cache_lock); }
void large_fork_child(void) { hak_lock_init(&cache_lock); }
