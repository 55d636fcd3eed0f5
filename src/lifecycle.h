/*
 * lifecycle.h - process and thread life: lazy initialization, the per-thread
 * state in initial-exec TLS, thread exit and fork().
 */
#ifndef HAKMEM_LIFECYCLE_H
#define HAKMEM_LIFECYCLE_H

#include "internal.h"
#include "fast.h"
#include "stats.h"
#include "tiny/tiny.h"
#ifdef HAKMEM_POOL_TLS
#include "pool/pool_tls.h"
#endif

enum hak_thread_state {
    HAK_THREAD_NEW = 0,  /* no allocation yet: TLS is all zero */
    HAK_THREAD_ACTIVE,   /* caches in use; an exit destructor is registered */
    HAK_THREAD_DEAD,     /* exit destructor ran: caches are gone for good */
};

struct hak_thread {
    struct hak_fast fast; /* the lists malloc pops, of both tiers (fast.h) */
    struct tiny_cache tiny;
#ifdef HAKMEM_POOL_TLS
    struct pool_cache pool;
#endif
    struct hak_counters counters;
    uint8_t state;
    /* The list of ACTIVE threads (lifecycle.c), so that a child of fork()
     * can adopt what the parent's other threads held. */
    struct hak_thread *prev, *next;
};

extern HAK_HIDDEN __thread struct hak_thread hak_thread
    __attribute__((tls_model("initial-exec")));

extern HAK_HIDDEN _Atomic int hak_ready;

/* Initializes the process-wide state once; false if that failed (no memory). */
HAK_HIDDEN bool hak_init_slow(void);

HAK_INLINE bool hak_ensure_init(void)
{
    return HAK_LIKELY(atomic_load_explicit(&hak_ready, memory_order_acquire)) || hak_init_slow();
}

/* In a child of fork(): how many more allocations off the fast path before
 * the parent's other threads' slabs are adopted (0: none pending).
 * hak_adopt_check counts them down on the allocation slow path; a child that
 * makes only a few allocations (before exec or _exit) never touches those
 * threads' state, which would copy every page it sits on. */
#define HAK_ADOPT_AFTER 64
extern HAK_HIDDEN _Atomic int hak_adopt_countdown;
HAK_HIDDEN void hak_adopt_orphans(void);

HAK_INLINE void hak_adopt_check(void)
{
    if (HAK_UNLIKELY(atomic_load_explicit(&hak_adopt_countdown, memory_order_relaxed)) &&
        atomic_fetch_sub_explicit(&hak_adopt_countdown, 1, memory_order_relaxed) == 1)
        hak_adopt_orphans();
}

/* Moves the calling thread from NEW to ACTIVE (registers its exit hook);
 * without a working exit hook, to DEAD: the thread stays on the shared paths
 * that need no thread-exit cleanup. */
HAK_HIDDEN void hak_thread_activate(void);

#endif
