/*
 * hakmem.c - the prefixed hak_* API and the slow paths shared with the libc
 * overrides: tier dispatch, aligned allocation, realloc, usable size, trim.
 */
#include "api.h"
#include "large.h"
#include "options.h"
#include "pool/pool.h"
#include "purge.h"
#include "stats.h"

#include <errno.h>
#include <string.h>

static void count(enum hak_tier tier, bool alloc)
{
    struct hak_thread *t = &hak_thread;
    if (HAK_LIKELY(t->state == HAK_THREAD_ACTIVE)) {
        if (alloc)
            t->counters.allocs[tier]++;
        else
            t->counters.frees[tier]++;
    } else {
        hak_stats_count_global(tier, alloc);
    }
}

static void *tiny_alloc(unsigned cls)
{
    struct hak_thread *t = &hak_thread;
    if (HAK_UNLIKELY(t->state != HAK_THREAD_ACTIVE)) {
        hak_thread_activate();
        if (t->state != HAK_THREAD_ACTIVE)
            return tiny_alloc_orphan(cls);
    }
    if (t->fast.head[cls])
        return tiny_cache_pop_checked(&t->tiny, cls);
    return tiny_alloc_refill(&t->tiny, cls);
}

/* A non-empty fast list belongs to a live thread (an exiting thread empties
 * its caches for good); the pool's slow path checks its head as the tiny
 * tier's checked pop does. */
void *hak_alloc_fast_checked(size_t size)
{
    unsigned cls = hak_fast_class_of(size);
    if (cls >= HAK_FAST_POOL)
        return hak_alloc_fast_miss(size);
    struct hak_thread *t = &hak_thread;
    void *b = tiny_cache_pop_checked(&t->tiny, cls);
    t->counters.allocs[HAK_TIER_TINY]++;
    HAK_VG_MALLOC(b, size, 0);
    return b;
}

/* A pool class's miss, for a live thread with Pool TLS, goes straight to
 * the pool (its reserve list, usually), not through the tier dispatch of
 * alloc_aligned, which cost a third of the instructions of a miss.  Any
 * other goes the whole way. */
void *hak_alloc_fast_miss(size_t size)
{
    unsigned cls = hak_fast_class_of(size);
    if (!POOL_HAS_CACHE || cls < HAK_FAST_POOL ||
        HAK_UNLIKELY(hak_thread.state != HAK_THREAD_ACTIVE))
        return hak_alloc_slow(size);
    hak_adopt_check(); /* in a child of fork(): the parent threads' memory */
    void *b = pool_alloc(cls - HAK_FAST_POOL);
    if (HAK_UNLIKELY(!b)) {
        errno = ENOMEM;
        return NULL;
    }
    count(HAK_TIER_POOL, true);
    HAK_VG_MALLOC(b, size, 0);
    return b;
}

static bool is_pow2(size_t a)
{
    return a && !(a & (a - 1));
}

/* The smallest power of two >= n (n >= 2). */
static size_t pow2_ceil(size_t n)
{
    return (size_t)1 << (64 - __builtin_clzll(n - 1));
}

/*
 * Every allocation off the tiny fast path: `align` is a power of two >= 16.
 * Aligned tiny and pool requests use a power-of-two class at least as large as
 * the alignment: such blocks are naturally aligned within their slab or page.
 */
static void *alloc_aligned(size_t size, size_t align, bool zero)
{
    if (HAK_UNLIKELY(size > HAK_MAX_REQUEST || align > HAK_MAX_REQUEST / 4 ||
                     !hak_ensure_init())) {
        errno = ENOMEM;
        return NULL;
    }
    hak_adopt_check(); /* in a child of fork(): the parent threads' memory */
    void *b;
    bool zeroed = false;
    enum hak_tier tier;
    size_t need = align > HAK_ALIGN ? pow2_ceil(size > align ? size : align) : size;
    int pcls;
    if (need <= HAK_TINY_MAX) {
        tier = HAK_TIER_TINY;
        b = tiny_alloc(tiny_class_of(need));
    } else if (size <= HAK_POOL_MAX && (pcls = pool_class_for(size, align)) >= 0) {
        tier = HAK_TIER_POOL;
        b = pool_alloc((unsigned)pcls);
    } else {
        tier = HAK_TIER_LARGE;
        b = large_alloc(size, align, &zeroed);
    }
    if (HAK_UNLIKELY(!b)) {
        errno = ENOMEM;
        return NULL;
    }
    count(tier, true);
    HAK_VG_MALLOC(b, size, zero);
    if (zero && !zeroed)
        memset(b, 0, size);
    return b;
}

void *hak_alloc_slow(size_t size)
{
    return alloc_aligned(size, HAK_ALIGN, false);
}

void hak_free_tiny_slow(void *p)
{
    struct tiny_slab *s = tiny_slab_of(p);
    tiny_check_block(s, p, "free");
    if (hak_block_marked_free(p))
        hak_fatal_ptr("free", "double free", p);
    struct hak_thread *t = &hak_thread;
    /* A thread that only frees gets its state too (as a pool free's
     * overflow gives it), so that it counts its frees itself rather than
     * with an atomic add on a counter all such threads share. */
    if (HAK_UNLIKELY(t->state == HAK_THREAD_NEW))
        hak_thread_activate();
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) == t->tiny.heap) {
        t->counters.frees[HAK_TIER_TINY]++;
        tiny_cache_push(&t->fast, &t->tiny, s->cls, p);
    } else {
        if (HAK_LIKELY(t->state == HAK_THREAD_ACTIVE))
            t->tiny.room_base++; /* a counted tiny free, no push */
        count(HAK_TIER_TINY, false);
        tiny_free_remote(s, p);
    }
}

void hak_free_slow(void *p)
{
    if (!p)
        return;
    enum hak_chunk_kind kind = hak_kind_of(p);
    switch (kind) {
    case HAK_CHUNK_TINY:
        hak_free_tiny_slow(p);
        return;
    case HAK_CHUNK_POOL:
        pool_free(p, "free");
        count(HAK_TIER_POOL, false);
        return;
    case HAK_CHUNK_LARGE:
    case HAK_CHUNK_LARGE_TAIL: /* reported by large_free: no block starts there */
    case HAK_CHUNK_LARGE_ALIGNED:
    case HAK_CHUNK_RUNS:
        large_free(p, kind, "free");
        count(HAK_TIER_LARGE, false);
        return;
    default:
        hak_fatal_ptr("free", "invalid pointer", p);
    }
}

/* Usable bytes of block p, validating it on behalf of `func`. */
static size_t usable_size(void *p, enum hak_chunk_kind kind, const char *func)
{
    switch (kind) {
    case HAK_CHUNK_TINY: {
        struct tiny_slab *s = tiny_slab_of(p);
        tiny_check_block(s, p, func);
        return s->stride;
    }
    case HAK_CHUNK_POOL:
        return pool_usable_size(p, func);
    case HAK_CHUNK_LARGE:
    case HAK_CHUNK_LARGE_TAIL:
    case HAK_CHUNK_LARGE_ALIGNED:
    case HAK_CHUNK_RUNS:
        return large_usable_size(p, kind, func);
    default:
        hak_fatal_ptr(func, "invalid pointer", p);
    }
}

/* usable_size of p, which must be live: a tiny or pool block that carries
 * the free mark is reported as a double free.  (Large blocks: usable_size
 * reports a freed one.) */
static size_t live_usable_size(void *p, enum hak_chunk_kind kind, const char *func)
{
    size_t n = usable_size(p, kind, func);
    if ((kind == HAK_CHUNK_TINY || kind == HAK_CHUNK_POOL) && hak_block_marked_free(p))
        hak_fatal_ptr(func, "double free", p);
    return n;
}

/* C23's free_sized: free(p) for a block of `size` bytes from malloc, calloc
 * or realloc.  Any size such a block was asked for fits in it; a larger one
 * means the caller's idea of the block is wrong, and is reported. */
void hak_impl_free_sized(void *p, size_t size)
{
    if (p && size > live_usable_size(p, hak_kind_of(p), "free_sized"))
        hak_fatal_ptr("free_sized", "invalid size", p);
    hak_impl_free(p);
}

/* C23's free_aligned_sized: free(p) for a block of `size` bytes from
 * aligned_alloc(align, size); p must be aligned so, and hold size bytes. */
void hak_impl_free_aligned_sized(void *p, size_t align, size_t size)
{
    if (p) {
        size_t n = live_usable_size(p, hak_kind_of(p), "free_aligned_sized");
        if (!is_pow2(align) || (uintptr_t)p % align)
            hak_fatal_ptr("free_aligned_sized", "invalid alignment", p);
        if (size > n)
            hak_fatal_ptr("free_aligned_sized", "invalid size", p);
    }
    hak_impl_free(p);
}

size_t hak_impl_usable_size(void *p)
{
    if (!p)
        return 0;
    return usable_size(p, hak_kind_of(p), "malloc_usable_size");
}

void *hak_calloc_slow(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return alloc_aligned(total, HAK_ALIGN, true);
}

void *hak_impl_realloc(void *p, size_t size)
{
    if (!p)
        return hak_impl_malloc(size);
    enum hak_chunk_kind kind = hak_kind_of(p);
    size_t old = live_usable_size(p, kind, "realloc");
    /* As glibc (and what programs written for it count on): realloc(p, 0)
     * frees p and returns NULL. */
    if (size == 0) {
        hak_impl_free(p);
        return NULL;
    }
    if (size > HAK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
#ifndef HAKMEM_VALGRIND
    /* A size the block already holds keeps it where it is, in every tier
     * (callers may rely on it: hakmem(3)).  Large blocks resize without a
     * copy where they can: a run gives back or takes the pages after it, a
     * mapping is remapped (a shrink stays at its address).  Under valgrind
     * every realloc moves: memcheck only learns sizes from malloc-like and
     * free-like blocks. */
    if (kind == HAK_CHUNK_LARGE || kind == HAK_CHUNK_RUNS) {
        void *q = large_realloc(p, kind, size);
        if (q)
            return q;
    }
    if (size <= old)
        return p;
#endif
    /* A pool block that grows gets a quarter more room than it had: pool
     * classes are an eighth apart, and a buffer grown a few bytes at a time
     * would otherwise move (and leave a freed block in a cache) at every
     * class (bench_realloc 200: peak RSS 7,640 kB, 6,700 with this; 7,040
     * with the four classes per power of two pool classes had before). */
    size_t want = size;
    if (kind == HAK_CHUNK_POOL && size > old && size <= HAK_POOL_MAX) {
        size_t room = old + old / 4;
        want = room > HAK_POOL_MAX ? HAK_POOL_MAX : (room > size ? room : size);
    }
    void *q = hak_impl_malloc(want);
    if (!q)
        return NULL;
    /* Copies the usable size, which may exceed what was asked for: memcheck
     * would report the slack as invalid, so it is told not to. */
    HAK_VG_QUIET_BEGIN();
    memcpy(q, p, size < old ? size : old);
    HAK_VG_QUIET_END();
    hak_impl_free(p);
    return q;
}

void *hak_impl_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return hak_impl_realloc(p, total);
}

/* glibc's limit for the memalign family: a larger alignment is EINVAL. */
#define HAK_ALIGN_LIMIT (SIZE_MAX / 2 + 1)

/* The memalign family's fast path (align a power of two): the fast pop that
 * malloc would make, or for a tiny request aligned to more than 16 bytes
 * the fast pop of a power-of-two class, whose blocks are aligned to their
 * size (alloc_aligned).  NULL where it cannot: the caller takes
 * alloc_aligned. */
static inline void *aligned_pop(size_t align, size_t size)
{
    size_t need;
    if (align <= HAK_ALIGN && size <= HAK_POOL_MAX)
        need = size;
    else if (align <= HAK_TINY_MAX && size <= HAK_TINY_MAX)
        need = pow2_ceil(size > align ? size : align);
    else
        return NULL;
    void *b;
    if (hak_fast_pop(need, &b) != HAK_POP_HIT)
        return NULL; /* a miss, or a head for the checked pop to report */
    HAK_VG_MALLOC(b, size, 0);
    return b;
}

int hak_impl_posix_memalign(void **out, size_t align, size_t size)
{
    if (!is_pow2(align) || align % sizeof(void *))
        return EINVAL;
    void *p = aligned_pop(align, size);
    if (!p) {
        /* errno is ENOMEM after a failure, as glibc leaves it; untouched
         * after success. */
        int saved = errno;
        p = alloc_aligned(size, align < HAK_ALIGN ? HAK_ALIGN : align, false);
        if (!p)
            return ENOMEM;
        errno = saved;
    }
    *out = p;
    return 0;
}

void *hak_impl_aligned_alloc(size_t align, size_t size)
{
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    void *p = aligned_pop(align, size);
    return p ? p : alloc_aligned(size, align < HAK_ALIGN ? HAK_ALIGN : align, false);
}

void *hak_impl_memalign(size_t align, size_t size)
{
    /* As glibc: an alignment above SIZE_MAX/2 + 1 is EINVAL; any other
     * non-power of two is rounded up to one. */
    if (align > HAK_ALIGN_LIMIT) {
        errno = EINVAL;
        return NULL;
    }
    if (align <= HAK_ALIGN)
        align = HAK_ALIGN;
    else if (!is_pow2(align))
        align = pow2_ceil(align);
    void *p = aligned_pop(align, size);
    return p ? p : alloc_aligned(size, align, false);
}

void *hak_impl_valloc(size_t size)
{
    return alloc_aligned(size, HAK_PAGE_SIZE, false);
}

void *hak_impl_pvalloc(size_t size)
{
    if (size > HAK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    return alloc_aligned(hak_align_up(size ? size : 1, HAK_PAGE_SIZE), HAK_PAGE_SIZE, false);
}

/* ---- the hak_* API ---- */

void *hak_malloc(size_t size) { return hak_impl_malloc(size); }
void hak_free(void *p) { hak_impl_free(p); }
void hak_free_sized(void *p, size_t size) { hak_impl_free_sized(p, size); }
void hak_free_aligned_sized(void *p, size_t align, size_t size)
{
    hak_impl_free_aligned_sized(p, align, size);
}
void *hak_calloc(size_t n, size_t size) { return hak_impl_calloc(n, size); }
void *hak_realloc(void *p, size_t size) { return hak_impl_realloc(p, size); }
void *hak_reallocarray(void *p, size_t n, size_t size) { return hak_impl_reallocarray(p, n, size); }
int hak_posix_memalign(void **out, size_t align, size_t size)
{
    return hak_impl_posix_memalign(out, align, size);
}
void *hak_aligned_alloc(size_t align, size_t size) { return hak_impl_aligned_alloc(align, size); }
void *hak_memalign(size_t align, size_t size) { return hak_impl_memalign(align, size); }
void *hak_valloc(size_t size) { return hak_impl_valloc(size); }
void *hak_pvalloc(size_t size) { return hak_impl_pvalloc(size); }
size_t hak_malloc_usable_size(void *p) { return hak_impl_usable_size(p); }
const char *hak_version(void) { return HAKMEM_VERSION_STRING; }

int hak_trim(void)
{
    if (!atomic_load_explicit(&hak_ready, memory_order_acquire))
        return 0;
    return hak_purge_all() > 0;
}
