/*
 * pool_tls.h - Pool TLS (./configure --enable-pool-tls): per-thread caches for
 * the pool tier's classes.
 * Compiled only when the POOL_TLS Automake conditional is on, which is also
 * what defines HAKMEM_POOL_TLS.  The inline fast paths are in pool_fast.h.
 *
 * Each class has two lists: `head`, which malloc pops and free pushes, and
 * `old`, one full batch kept in reserve.  When free pushes onto a `head`
 * that holds the class's batch size already, `old` (if any) goes to the
 * shared transfer cache as one list and the full list becomes `old`, under
 * the block just pushed, which stays as `head` (a magazine's exchange, so
 * that a count at the batch size going up and down by one moves nothing);
 * when malloc empties `head`, `old` becomes `head`, or a whole list comes
 * from the shared side.  No block is moved one at a time and no list is
 * walked.  The batch size starts small (a thread
 * that uses a class once costs little memory) and doubles each time the
 * thread goes to the shared side, up to about POOL_BATCH_BYTES, as long as
 * the thread's batches stay within its budget (POOL_CACHE_BYTES).
 */
#ifndef HAKMEM_POOL_TLS_H
#define HAKMEM_POOL_TLS_H

#include "pool/pool.h"

/* A thread's pool cache: blocks of any pool page, per class.  The `head`
 * lists are the thread's fast lists of the pool classes (fast.h:
 * head[HAK_FAST_POOL + cls]), whose room counts the blocks under the batch
 * size: a head list holds batch - room blocks, and a push that takes room
 * below 0 overflows.  All zero is a valid empty cache whose first free takes
 * the slow path. */
struct pool_cache {
    uint32_t batch[POOL_NUM_CLASSES];  /* current batch size; 0: not started */
    void *old[POOL_NUM_CLASSES];
    uint32_t old_count[POOL_NUM_CLASSES];
    size_t batch_bytes;        /* sum over classes of batch * class size */
    /* As the tiny cache's room_base (tiny.h): what the pool classes' room
     * would sum to had only malloc's fast pops and free's pushes changed it,
     * so that pool_cache_net() gives the fast pops, which count nothing. */
    int64_t room_base;
};

/* The most bytes one thread's pool cache holds, all classes together. */
#define POOL_CACHE_BYTES (8u << 20)

struct hak_thread;

/* free() pushed onto a full head list (or the cache is not in use yet, or
 * no longer): moves lists along, see above. */
HAK_HIDDEN void pool_cache_overflow(struct hak_thread *t, unsigned cls);

/* Empties the calling thread's cache into the shared lists (malloc_trim). */
HAK_HIDDEN void pool_tls_trim(void);

/* Empties cache c into the shared lists.  Called at thread exit. */
HAK_HIDDEN void pool_tls_thread_exit(struct pool_cache *c);
/* In a child of fork(): drops the cache of a thread that does not exist
 * there without walking it.  Its lists are a copy taken at whatever point a
 * push or pop had reached, so their blocks stay counted as used (a cache's
 * worth at most); pool pages are shared and lock-guarded, so nothing else of
 * the thread needs adopting. */
HAK_HIDDEN void pool_tls_thread_orphan(struct pool_cache *c);

#endif
