/*
 * override.c - the libc allocation symbols, exported when libhakmem is linked
 * or preloaded, all served by hakmem: the standard and GNU functions, and
 * glibc's __libc_* names so that a static link never pulls glibc's malloc.o
 * (which defines the same symbols) back in.
 */
#include "api.h"
#include "hakmem.h"

#include <malloc.h>
#include <string.h>

#define HAK_EXPORT __attribute__((visibility("default")))

HAK_EXPORT void *malloc(size_t size) { return hak_impl_malloc(size); }
HAK_EXPORT void free(void *p) { hak_impl_free(p); }
/* C23 (glibc 2.43 has them): without these a program built against such a
 * glibc would hand hakmem's blocks to glibc's free_sized.  Declared here
 * for older headers. */
HAK_EXPORT void free_sized(void *p, size_t size);
HAK_EXPORT void free_aligned_sized(void *p, size_t align, size_t size);
HAK_EXPORT void free_sized(void *p, size_t size) { hak_impl_free_sized(p, size); }
HAK_EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
    hak_impl_free_aligned_sized(p, align, size);
}
HAK_EXPORT void *calloc(size_t n, size_t size) { return hak_impl_calloc(n, size); }
HAK_EXPORT void *realloc(void *p, size_t size) { return hak_impl_realloc(p, size); }
HAK_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    return hak_impl_reallocarray(p, n, size);
}
HAK_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    return hak_impl_posix_memalign(out, align, size);
}
HAK_EXPORT void *aligned_alloc(size_t align, size_t size)
{
    return hak_impl_aligned_alloc(align, size);
}
HAK_EXPORT void *memalign(size_t align, size_t size) { return hak_impl_memalign(align, size); }
HAK_EXPORT void *valloc(size_t size) { return hak_impl_valloc(size); }
HAK_EXPORT void *pvalloc(size_t size) { return hak_impl_pvalloc(size); }
HAK_EXPORT size_t malloc_usable_size(void *p) { return hak_impl_usable_size(p); }
HAK_EXPORT int malloc_trim(size_t pad)
{
    (void)pad;
    return hak_trim();
}

HAK_EXPORT int mallopt(int param, int value) { return hak_mallopt(param, value); }
HAK_EXPORT void malloc_stats(void) { hak_stats_print(); }
HAK_EXPORT int malloc_info(int options, FILE *fp) { return hak_malloc_info(options, fp); }

/* mallinfo2: what hakmem can tell cheaply: bytes mapped per kind of memory. */
HAK_EXPORT struct mallinfo2 mallinfo2(void)
{
    struct hak_stats s;
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof(mi));
    hak_stats_get(&s);
    mi.arena = (size_t)(s.tier[HAK_TIER_TINY].mapped_bytes + s.tier[HAK_TIER_POOL].mapped_bytes);
    mi.hblkhd = (size_t)s.tier[HAK_TIER_LARGE].mapped_bytes;
    mi.hblks = 0;
    return mi;
}

HAK_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof(mi));
    mi.arena = (int)(m2.arena > (size_t)__INT_MAX__ ? __INT_MAX__ : m2.arena);
    mi.hblkhd = (int)(m2.hblkhd > (size_t)__INT_MAX__ ? __INT_MAX__ : m2.hblkhd);
    return mi;
}

/* glibc's internal names, bound to the same bodies. */
HAK_EXPORT void *__libc_malloc(size_t size) { return hak_impl_malloc(size); }
HAK_EXPORT void __libc_free(void *p) { hak_impl_free(p); }
HAK_EXPORT void *__libc_calloc(size_t n, size_t size) { return hak_impl_calloc(n, size); }
HAK_EXPORT void *__libc_realloc(void *p, size_t size) { return hak_impl_realloc(p, size); }
HAK_EXPORT void *__libc_memalign(size_t align, size_t size)
{
    return hak_impl_memalign(align, size);
}
HAK_EXPORT void *__libc_valloc(size_t size) { return hak_impl_valloc(size); }
HAK_EXPORT void *__libc_pvalloc(size_t size) { return hak_impl_pvalloc(size); }
HAK_EXPORT void cfree(void *p) { hak_impl_free(p); }
