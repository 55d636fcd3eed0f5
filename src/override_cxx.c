/*
 * override_cxx.c - C++'s replaceable operator new and operator delete, under
 * their Itanium-ABI names, served by hakmem's fast paths.
 *
 * Without these a C++ program reaches hakmem through libstdc++'s operators,
 * which call malloc and free: one more call, PLT hop and test per new and
 * per delete (and sized delete calls plain delete first).  A 32-byte
 * new+delete pair under callgrind: 93 instructions through libstdc++, 77
 * here (tcmalloc, which exports them too: 76).
 *
 * The one thing C cannot do is throw std::bad_alloc.  When hakmem has no
 * memory for a request, the operator hands the request to the next
 * definition of the same operator (dlsym RTLD_NEXT: libstdc++'s, or
 * whatever C++ runtime comes after hakmem), which asks malloc again and on
 * failure runs the new-handler loop and throws, exactly as without hakmem.
 * With no such definition (a program with no C++ runtime calling these
 * names, or a fully static link, where dlsym finds nothing) the throwing
 * forms abort with `hakmem: operator new: out of memory` and the nothrow
 * forms return NULL.
 *
 * Delete ignores the sizes and alignments it is passed: hakmem finds the
 * block's tier from its address, and a program that passes a wrong size
 * (undefined behaviour that glibc and libstdc++ forgive) is not aborted for
 * it; free()'s own checks still run on every pointer.
 */
#include "api.h"

#include <dlfcn.h>

#define HAK_EXPORT __attribute__((visibility("default")))

typedef void *(*hak_new_fn)(size_t);
typedef void *(*hak_new_nothrow_fn)(size_t, const void *);
typedef void *(*hak_new_aligned_fn)(size_t, size_t);
typedef void *(*hak_new_aligned_nothrow_fn)(size_t, size_t, const void *);

/* The next definition of operator `sym` after hakmem's, or NULL.  Looked up
 * on a failed request only (dlsym may allocate, which is fine then: the
 * request failed, not the heap).  `fn` caches it. */
static void *next_operator(void *_Atomic *fn, const char *sym)
{
    void *f = atomic_load_explicit(fn, memory_order_relaxed);
    if (!f) {
        f = dlsym(RTLD_NEXT, sym);
        atomic_store_explicit(fn, f, memory_order_relaxed);
    }
    return f;
}

static __attribute__((noreturn, cold)) void out_of_memory(size_t size)
{
    hak_fatal("operator new: out of memory (%zu bytes) and no C++ runtime to throw "
              "std::bad_alloc",
              size);
}

/* A throwing operator new whose request failed: the next definition's
 * answer (a block, or an exception), else abort. */
#define HAK_NEW_FAILED(sym, size)                                                                \
    do {                                                                                         \
        static void *_Atomic next;                                                               \
        hak_new_fn f = (hak_new_fn)next_operator(&next, sym);                                    \
        if (!f)                                                                                  \
            out_of_memory(size);                                                                 \
        return f(size);                                                                          \
    } while (0)

/* The fast path of malloc, with the failure handed on.  (new(0) gets a
 * unique block, as malloc(0) does.) */
#define HAK_NEW_BODY(sym, size)                                                                  \
    do {                                                                                         \
        void *p = hak_impl_malloc(size);                                                         \
        if (HAK_LIKELY(p))                                                                       \
            return p;                                                                            \
        HAK_NEW_FAILED(sym, size);                                                               \
    } while (0)

#define HAK_NEW_NOTHROW_BODY(sym, size, tag)                                                     \
    do {                                                                                         \
        void *p = hak_impl_malloc(size);                                                         \
        if (HAK_LIKELY(p))                                                                       \
            return p;                                                                            \
        static void *_Atomic next;                                                               \
        hak_new_nothrow_fn f = (hak_new_nothrow_fn)next_operator(&next, sym);                    \
        return f ? f(size, tag) : NULL;                                                          \
    } while (0)

#define HAK_NEW_ALIGNED_BODY(sym, size, align)                                                   \
    do {                                                                                         \
        void *p = hak_impl_aligned_alloc(align, size);                                           \
        if (HAK_LIKELY(p))                                                                       \
            return p;                                                                            \
        static void *_Atomic next;                                                               \
        hak_new_aligned_fn f = (hak_new_aligned_fn)next_operator(&next, sym);                    \
        if (!f)                                                                                  \
            out_of_memory(size);                                                                 \
        return f(size, align);                                                                   \
    } while (0)

#define HAK_NEW_ALIGNED_NOTHROW_BODY(sym, size, align, tag)                                      \
    do {                                                                                         \
        void *p = hak_impl_aligned_alloc(align, size);                                           \
        if (HAK_LIKELY(p))                                                                       \
            return p;                                                                            \
        static void *_Atomic next;                                                               \
        hak_new_aligned_nothrow_fn f =                                                           \
            (hak_new_aligned_nothrow_fn)next_operator(&next, sym);                               \
        return f ? f(size, align, tag) : NULL;                                                   \
    } while (0)

/* The declarations, for -Wmissing-prototypes; names as g++ mangles them
 * (size_t is unsigned long, `m`; std::align_val_t is passed as a size_t;
 * std::nothrow_t by reference, a pointer never read). */
HAK_EXPORT void *_Znwm(size_t size);
HAK_EXPORT void *_Znam(size_t size);
HAK_EXPORT void *_ZnwmRKSt9nothrow_t(size_t size, const void *tag);
HAK_EXPORT void *_ZnamRKSt9nothrow_t(size_t size, const void *tag);
HAK_EXPORT void *_ZnwmSt11align_val_t(size_t size, size_t align);
HAK_EXPORT void *_ZnamSt11align_val_t(size_t size, size_t align);
HAK_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag);
HAK_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag);
HAK_EXPORT void _ZdlPv(void *p);
HAK_EXPORT void _ZdaPv(void *p);
HAK_EXPORT void _ZdlPvm(void *p, size_t size);
HAK_EXPORT void _ZdaPvm(void *p, size_t size);
HAK_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *tag);
HAK_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *tag);
HAK_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t align);
HAK_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t align);
HAK_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align);
HAK_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align);
HAK_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag);
HAK_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag);

/* operator new, new[] */
void *_Znwm(size_t size) { HAK_NEW_BODY("_Znwm", size); }
void *_Znam(size_t size) { HAK_NEW_BODY("_Znam", size); }
void *_ZnwmRKSt9nothrow_t(size_t size, const void *tag)
{
    HAK_NEW_NOTHROW_BODY("_ZnwmRKSt9nothrow_t", size, tag);
}
void *_ZnamRKSt9nothrow_t(size_t size, const void *tag)
{
    HAK_NEW_NOTHROW_BODY("_ZnamRKSt9nothrow_t", size, tag);
}
void *_ZnwmSt11align_val_t(size_t size, size_t align)
{
    HAK_NEW_ALIGNED_BODY("_ZnwmSt11align_val_t", size, align);
}
void *_ZnamSt11align_val_t(size_t size, size_t align)
{
    HAK_NEW_ALIGNED_BODY("_ZnamSt11align_val_t", size, align);
}
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag)
{
    HAK_NEW_ALIGNED_NOTHROW_BODY("_ZnwmSt11align_val_tRKSt9nothrow_t", size, align, tag);
}
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag)
{
    HAK_NEW_ALIGNED_NOTHROW_BODY("_ZnamSt11align_val_tRKSt9nothrow_t", size, align, tag);
}

/* operator delete, delete[]: free() whatever the extra arguments say. */
void _ZdlPv(void *p) { hak_impl_free(p); }
void _ZdaPv(void *p) { hak_impl_free(p); }
void _ZdlPvm(void *p, size_t size)
{
    (void)size;
    hak_impl_free(p);
}
void _ZdaPvm(void *p, size_t size)
{
    (void)size;
    hak_impl_free(p);
}
void _ZdlPvRKSt9nothrow_t(void *p, const void *tag)
{
    (void)tag;
    hak_impl_free(p);
}
void _ZdaPvRKSt9nothrow_t(void *p, const void *tag)
{
    (void)tag;
    hak_impl_free(p);
}
void _ZdlPvSt11align_val_t(void *p, size_t align)
{
    (void)align;
    hak_impl_free(p);
}
void _ZdaPvSt11align_val_t(void *p, size_t align)
{
    (void)align;
    hak_impl_free(p);
}
void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align)
{
    (void)size;
    (void)align;
    hak_impl_free(p);
}
void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align)
{
    (void)size;
    (void)align;
    hak_impl_free(p);
}
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag)
{
    (void)align;
    (void)tag;
    hak_impl_free(p);
}
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag)
{
    (void)align;
    (void)tag;
    hak_impl_free(p);
}
