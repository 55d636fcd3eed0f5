/*
 * internal.h - constants and helpers shared by every part of hakmem.
 *
 * Each tier boundary and layout constant is defined here exactly once; the
 * tiers derive everything else (capacities, strides, class tables) from these.
 */
#ifndef HAKMEM_INTERNAL_H
#define HAKMEM_INTERNAL_H

/* configure's results (and _GNU_SOURCE): every source includes this header
 * before any system header. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define HAK_HIDDEN __attribute__((visibility("hidden")))
#define HAK_LIKELY(x) __builtin_expect(!!(x), 1)
#define HAK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HAK_NOINLINE __attribute__((noinline))
#define HAK_INLINE static inline __attribute__((always_inline))

/* Every mapping the allocator makes is a whole number of 2 MiB chunks, aligned
 * to 2 MiB, so that p >> HAK_CHUNK_SHIFT indexes the chunk registry. */
#define HAK_CHUNK_SHIFT 21
#define HAK_CHUNK_SIZE ((size_t)1 << HAK_CHUNK_SHIFT)
#define HAK_CHUNK_MASK (HAK_CHUNK_SIZE - 1)

/* Minimum alignment of every block (alignof(max_align_t) on x86-64). */
#define HAK_ALIGN 16

/* Tier boundaries: tiny serves 0 .. HAK_TINY_MAX bytes, pool serves
 * HAK_TINY_MAX+1 .. HAK_POOL_MAX, large everything above. */
#define HAK_TINY_MAX 1024
#define HAK_POOL_MAX (52 * 1024)

/* Largest request any function accepts (larger fails with ENOMEM), as glibc. */
#define HAK_MAX_REQUEST ((size_t)PTRDIFF_MAX)

/* The page size hakmem assumes for valloc and purging (x86-64, checked at init). */
#define HAK_PAGE_SIZE 4096

HAK_INLINE uintptr_t hak_chunk_base(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)HAK_CHUNK_MASK;
}

/* Exact divisibility by a run-time constant d with one multiply (Lemire,
 * Kaser and Kurz, "Faster remainder by direct computation", 2019): for a
 * 32-bit n, n % d == 0 exactly when n * M < M (mod 2^64), where
 * M = hak_div_magic(d).  free() uses it to reject interior pointers. */
HAK_INLINE uint64_t hak_div_magic(uint32_t d)
{
    return UINT64_MAX / d + 1;
}

HAK_INLINE bool hak_divisible(uint32_t n, uint64_t magic)
{
    return (uint64_t)n * magic < magic;
}

/*
 * Block starts of a run of blocks of stride d (16 <= d <= 2^16) with one
 * multiply and one compare.  With C = hak_block_magic(d) = floor(2^64 / d) + 1
 * and E = hak_block_scale(d) = d * C - 2^64 (1 <= E <= d), a 32-bit
 * n = j * d + r (r < d) maps to n * C = j * E + r * C (mod 2^64) without
 * wrapping (E * (j + 1) < C), so n * C < k * E exactly when r == 0 and
 * j < k: n is the start of one of the first k blocks.  The tiny tier keeps
 * k * E per slab (carved_limit) so that free() tests "carved block start"
 * with a single compare.
 */
HAK_INLINE uint64_t hak_block_magic(uint32_t d)
{
    return UINT64_MAX / d + 1 + !(d & (d - 1));
}

HAK_INLINE uint32_t hak_block_scale(uint32_t d)
{
    return (uint32_t)(d * hak_block_magic(d)); /* the product's low word is E */
}

HAK_INLINE bool hak_block_below(uint32_t n, uint64_t magic, uint32_t limit)
{
    return (uint64_t)n * magic < limit;
}

HAK_INLINE size_t hak_align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

/* How many blocks of `stride` bytes, laid out from addr on, start in the
 * memory page holding addr (at least one): the most the tiny and pool tiers
 * carve from fresh memory in one step, so that carving (which writes each
 * block's first bytes) touches one page at a time and a slab or pool page
 * costs memory only as its blocks are used. */
HAK_INLINE uint32_t hak_carve_step(uintptr_t addr, uint32_t stride)
{
    uintptr_t page_end = hak_align_up(addr + 1, HAK_PAGE_SIZE);
    return (uint32_t)((page_end - addr + stride - 1) / stride);
}

/* Reports misuse of the API (`hakmem: free(): invalid pointer 0x...`) and
 * aborts; never returns. */
HAK_HIDDEN __attribute__((noreturn, cold)) void hak_fatal_ptr(const char *func, const char *what,
                                                              const void *p);
/* Reports an internal inconsistency and aborts. */
HAK_HIDDEN __attribute__((noreturn, cold)) void hak_fatal(const char *fmt, ...);
/* One-line warning on stderr, prefixed with "hakmem: ". */
HAK_HIDDEN void hak_warn(const char *fmt, ...);

#ifdef HAKMEM_DEBUG
#define HAK_DEBUG_CHECK(cond, ...)                                                  \
    do {                                                                           \
        if (HAK_UNLIKELY(!(cond)))                                                 \
            hak_fatal(__VA_ARGS__);                                                \
    } while (0)
#else
#define HAK_DEBUG_CHECK(cond, ...) ((void)0)
#endif

#endif
