/*
 * freelist.h - how a free block is written: every free-list link in hakmem
 * (thread caches, slab and page free lists, remote stacks) goes through here.
 *
 * Word 0 holds the link, the address of the next block:
 *
 *     word0 = next
 *
 * Word 1 authenticates word 0 with two keys from getrandom() (secret.c):
 *
 *     word1 = (word0 ^ b ^ mac_key) * mac_mul           (mod 2^64, mac_mul odd)
 *
 * A free block is one whose word 1 authenticates its word 0: that is the
 * free mark, and free() of a block that carries it is a double free.  A live
 * block never carries it (word 1 is cleared when the block is handed out),
 * unless the program's own data matched a keyed product: a 2^-64 chance.
 * The block's address enters word 1 only: a pair of words moved to another
 * block fails there.
 * Checking the mark finds a double free wherever the block sits - any
 * thread's cache, a free list, a remote stack - which no list walk could.
 *
 * Before a link is followed (hak_link_read) its block's mark is checked:
 * a use-after-free or overflow that overwrites either word, a pair of words
 * copied from another block (b is mixed into the mark), and a link naming
 * the block itself are rejected, all without reading any allocator
 * metadata, so malloc's fast path touches only the block it hands out.
 * Marking any word 0 for a block needs both keys, so forging a link to a
 * chosen address (the uncarved part of a slab, another block) needs them.
 * No stored word is a key, or the stack canary combined with an address:
 * the keys are never derived from AT_RANDOM (whose first bytes are the
 * canary).
 *
 * The link is stored in clear, as tcmalloc, jemalloc and mimalloc store
 * theirs.  Up to 0.2 it was XORed with a third key, which hid heap
 * addresses from a reader of free blocks but added nothing to integrity (a
 * reader who knows a block's address knows word0 ^ b either way, which is
 * all the mark's keys are ever solved from): it cost three instructions per
 * malloc+free pair (81 -> 78, bench_fastpath under callgrind) and 5 % of
 * bench_tiny_churn's speed.
 *
 * HAKMEM_NO_HARDENING (an internal compile switch, used only to measure what
 * the checks cost; see hakmem(7)) stores no mark.
 *
 * In --enable-valgrind builds free blocks are inaccessible to memcheck;
 * these helpers open them for hakmem's own accesses only.
 */
#ifndef HAKMEM_FREELIST_H
#define HAKMEM_FREELIST_H

#include "internal.h"
#include "valgrind_hooks.h"

/* The process's keys, random, set once by hak_secret_init() (secret.c)
 * before any block exists.  One cache line, read-only afterwards. */
struct hak_keys {
    uintptr_t mac;      /* XORed into every mark */
    uintptr_t mac_mul;  /* odd: multiplies every mark */
} __attribute__((aligned(64)));

extern HAK_HIDDEN struct hak_keys hak_keys;

/* Fills hak_keys from getrandom() (secret.c). */
HAK_HIDDEN void hak_secret_init(void);

#ifdef HAKMEM_NO_HARDENING
#define HAK_HARDENING 0
#else
#define HAK_HARDENING 1
#endif

/* The word 1 that marks b free with word 0 w0. */
HAK_INLINE uintptr_t hak_link_mark(const void *b, uintptr_t w0)
{
    /* b ^ mac first: free() checks b's mark and then marks it again, and
     * computes it once. */
    return (w0 ^ ((uintptr_t)b ^ hak_keys.mac)) * hak_keys.mac_mul;
}

/* b's link, unchecked (callers that check otherwise). */
HAK_INLINE void *hak_link_get(void *b)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    void *next = ((void **)b)[0];
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
    return next;
}

/* Reads b's link into *next: false unless b carries the free mark for
 * its word 0 (so the link is one hakmem wrote for b) and the link is not b. */
HAK_INLINE bool hak_link_read(void *b, void **next)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    uintptr_t w0 = ((uintptr_t *)b)[0], w1 = ((uintptr_t *)b)[1];
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
    *next = (void *)w0;
    if (!HAK_HARDENING)
        return true;
    return w1 == hak_link_mark(b, w0) && *next != b;
}

/*
 * hak_link_read without the self-link test, for malloc's pop only: b is
 * handed out (and unmarked, hak_block_unmark) as soon as its link is read,
 * so a link naming b - which hakmem never writes, and no one can mark
 * without the keys - sets the head to a block that no longer carries the
 * mark, and the next pop rejects it before following anything.  Walks that
 * follow links without handing the blocks out (a remote stack, a list going
 * back to its slabs) use hak_link_read, which would otherwise loop.
 */
HAK_INLINE bool hak_link_pop_read(void *b, void **next)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    uintptr_t w0 = ((uintptr_t *)b)[0], w1 = ((uintptr_t *)b)[1];
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
    *next = (void *)w0;
    return !HAK_HARDENING || w1 == hak_link_mark(b, w0);
}

/* Writes b's link to next and marks b free. */
HAK_INLINE void hak_link_set(void *b, void *next)
{
    /* Both words are computed before either is stored: a store to b could
     * alias hak_keys as far as the compiler knows, and would make it load
     * the keys again.  The volatile store keeps GCC from pairing the two
     * stores into one SSE store, which costs two moves and a shuffle
     * (one instruction more on every free). */
    uintptr_t w0 = (uintptr_t)next, w1 = hak_link_mark(b, w0);
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    ((uintptr_t *)b)[0] = w0;
    if (HAK_HARDENING)
        ((volatile uintptr_t *)b)[1] = w1;
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
}

/* Whether b carries the free mark, i.e. is free already. */
HAK_INLINE bool hak_block_marked_free(void *b)
{
    if (!HAK_HARDENING)
        return false;
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    bool marked = ((uintptr_t *)b)[1] == hak_link_mark(b, ((uintptr_t *)b)[0]);
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
    return marked;
}

/* Clears the free mark of a block being handed out. */
HAK_INLINE void hak_block_unmark(void *b)
{
    if (!HAK_HARDENING)
        return;
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    ((uintptr_t *)b)[1] = 0;
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
}

#endif
