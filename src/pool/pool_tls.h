/*
 * pool_tls.h - Pool TLS (./configure --enable-pool-tls): per-thread caches for
 * the pool tier's classes and a per-thread arena chunk for new pages.
 * Compiled only when the POOL_TLS Automake conditional is on, which is also
 * what defines HAKMEM_POOL_TLS.
 */
#ifndef HAKMEM_POOL_TLS_H
#define HAKMEM_POOL_TLS_H

#include "pool/pool.h"

/* A thread's pool cache: blocks of any pool page, per class. */
struct pool_cache {
    void *head[POOL_NUM_CLASSES];
    uint32_t count[POOL_NUM_CLASSES];
    struct pool_chunk *arena;  /* chunk this thread takes new pages from */
};

/* The most blocks a thread keeps per class: about 256 KiB, 4 .. 64 blocks. */
HAK_INLINE uint32_t pool_cache_cap(unsigned cls)
{
    uint32_t cap = (uint32_t)((256 * 1024) / pool_class_size[cls]);
    return cap < 4 ? 4 : (cap > 64 ? 64 : cap);
}

/* Empties the thread's caches into the shared lists at thread exit. */
HAK_HIDDEN void pool_tls_thread_exit(struct pool_cache *c);

#endif
