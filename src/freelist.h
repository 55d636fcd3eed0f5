/*
 * freelist.h - how a free block is written: every free-list link in hakmem
 * (thread caches, slab and page free lists, remote stacks) goes through here.
 *
 * Word 0 holds the link, encoded with two keys from getrandom() (secret.c):
 *
 *     word0 = (next ^ b ^ link_key) * mul_key        (mod 2^64, mul_key odd)
 *
 * decoded with the inverse of mul_key.  A use-after-free or overflow that
 * overwrites it decodes to garbage, which the tiers' checks reject before
 * handing any memory out; a link copied from another block decodes to a
 * different address too (b is mixed in).  No key is stored in a free block:
 * a list end (next == NULL) stores (b ^ link_key) * mul_key, one equation in
 * two 64-bit unknowns, and the keys are never derived from AT_RANDOM (whose
 * first bytes are the stack-protector canary).
 *
 * Word 1 holds the free mark, a third random value independent of the link
 * keys (knowing it lets nobody forge a link): free() of a block that carries
 * it is a double free.  A live block never carries it (the mark is cleared
 * when the block is handed out), unless the program wrote that random value
 * itself: a 2^-64 chance for any word.  Checking the mark finds a double free
 * wherever the block sits - any thread's cache, a free list, a remote stack -
 * which no list walk could.  Every class is at least two words, so both fit
 * in any block.
 *
 * HAKMEM_NO_HARDENING (an internal compile switch, used only to measure what
 * the checks cost; see hakmem(7)) stores links in clear and no mark.
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
    uintptr_t link;     /* XORed into every link */
    uintptr_t mul;      /* odd: multiplies every encoded link */
    uintptr_t mul_inv;  /* mul's inverse mod 2^64 */
    uintptr_t mark;     /* the free mark: never 0 */
} __attribute__((aligned(64)));

extern HAK_HIDDEN struct hak_keys hak_keys;

/* Fills hak_keys from getrandom() (secret.c). */
HAK_HIDDEN void hak_secret_init(void);

#ifdef HAKMEM_NO_HARDENING
#define HAK_HARDENING 0
#else
#define HAK_HARDENING 1
#endif

/* The word 0 that links b to next, and back. */
HAK_INLINE uintptr_t hak_link_encode(const void *b, const void *next)
{
    if (!HAK_HARDENING)
        return (uintptr_t)next;
    return ((uintptr_t)next ^ (uintptr_t)b ^ hak_keys.link) * hak_keys.mul;
}

HAK_INLINE void *hak_link_decode(const void *b, uintptr_t w)
{
    if (!HAK_HARDENING)
        return (void *)w;
    return (void *)((w * hak_keys.mul_inv) ^ hak_keys.link ^ (uintptr_t)b);
}

HAK_INLINE void *hak_link_get(void *b)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    void *next = hak_link_decode(b, ((uintptr_t *)b)[0]);
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
    return next;
}

/* Rewrites b's link only (b stays marked free). */
HAK_INLINE void hak_link_relink(void *b, void *next)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    ((uintptr_t *)b)[0] = hak_link_encode(b, next);
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
}

/* Writes b's link to next and marks b free. */
HAK_INLINE void hak_link_set(void *b, void *next)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    uintptr_t w = hak_link_encode(b, next);
    uintptr_t mark = hak_keys.mark; /* read before the stores, which may alias it */
    ((uintptr_t *)b)[0] = w;
    /* Two plain stores: without the barrier GCC merges them through a
     * vector register, three instructions instead of two. */
    __asm__("" ::: "memory");
    if (HAK_HARDENING)
        ((uintptr_t *)b)[1] = mark;
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
}

/* Whether b carries the free mark, i.e. is free already. */
HAK_INLINE bool hak_block_marked_free(void *b)
{
    if (!HAK_HARDENING)
        return false;
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    bool marked = ((uintptr_t *)b)[1] == hak_keys.mark;
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
