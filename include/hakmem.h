/*
 * hakmem.h - public, prefixed API of the hakmem memory allocator.
 *
 * Every hak_* function behaves like its libc namesake (see hakmem(3)).  When
 * libhakmem is linked into a program or preloaded with LD_PRELOAD, the plain
 * malloc family is overridden as well and serves from the same heap, so
 * pointers may be mixed freely between hak_free() and free().
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 2
#define HAKMEM_VERSION_PATCH 0
#define HAKMEM_VERSION_STRING "0.2.0"

#if defined(__GNUC__)
#define HAKMEM_API __attribute__((visibility("default")))
#define HAKMEM_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define HAKMEM_API
#define HAKMEM_MALLOC_ATTR
#endif

HAKMEM_API HAKMEM_MALLOC_ATTR void *hak_malloc(size_t size);
HAKMEM_API void hak_free(void *ptr);
/* C23's free_sized and free_aligned_sized: hak_free(ptr) for a block of
 * `size` bytes from hak_malloc/hak_calloc/hak_realloc, or from
 * hak_aligned_alloc(alignment, size); a size the block cannot hold, or a
 * pointer off the alignment, aborts with a diagnostic. */
HAKMEM_API void hak_free_sized(void *ptr, size_t size);
HAKMEM_API void hak_free_aligned_sized(void *ptr, size_t alignment, size_t size);
HAKMEM_API HAKMEM_MALLOC_ATTR void *hak_calloc(size_t nmemb, size_t size);
HAKMEM_API void *hak_realloc(void *ptr, size_t size);
HAKMEM_API void *hak_reallocarray(void *ptr, size_t nmemb, size_t size);
HAKMEM_API int hak_posix_memalign(void **memptr, size_t alignment, size_t size);
HAKMEM_API HAKMEM_MALLOC_ATTR void *hak_aligned_alloc(size_t alignment, size_t size);
HAKMEM_API HAKMEM_MALLOC_ATTR void *hak_memalign(size_t alignment, size_t size);
HAKMEM_API HAKMEM_MALLOC_ATTR void *hak_valloc(size_t size);
HAKMEM_API HAKMEM_MALLOC_ATTR void *hak_pvalloc(size_t size);
HAKMEM_API size_t hak_malloc_usable_size(void *ptr);

/* Returns memory that is free but still mapped to the OS at once (empty slabs,
 * pool pages, cached large mappings).  Returns 1 if anything was released. */
HAKMEM_API int hak_trim(void);

/* Which tier served a block, as reported by hak_stats. */
enum hak_tier { HAK_TIER_TINY = 0, HAK_TIER_POOL = 1, HAK_TIER_LARGE = 2, HAK_TIER_COUNT = 3 };

struct hak_tier_stats {
    uint64_t allocs;        /* blocks handed out by this tier since start */
    uint64_t frees;         /* blocks given back to this tier since start */
    uint64_t mapped_bytes;  /* bytes currently mapped from the OS for this tier */
};

struct hak_stats {
    struct hak_tier_stats tier[HAK_TIER_COUNT];
    uint64_t mmap_calls;    /* mappings made since start */
    uint64_t munmap_calls;  /* mappings returned since start */
};

/* Fills *out with a snapshot of the allocator's counters (approximate while
 * other threads run). */
HAKMEM_API void hak_stats_get(struct hak_stats *out);
/* Prints the counters per tier to stderr (what HAKMEM_STATS=1 prints at exit). */
HAKMEM_API void hak_stats_print(void);
/* glibc's malloc_info(3): the counters as XML on fp; options must be 0
 * (else -1 with errno EINVAL).  Returns 0. */
HAKMEM_API int hak_malloc_info(int options, FILE *fp);
/* glibc's mallopt(3): accepts the parameters glibc knows (returns 1, see
 * hakmem(3) for what each one does under hakmem); 0 for any other. */
HAKMEM_API int hak_mallopt(int param, int value);
/* The library's version string, e.g. "0.2.0". */
HAKMEM_API const char *hak_version(void);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
