/*
 * freelist.h - how a free block is written: every free-list link in hakmem
 * (thread caches, slab and page free lists, remote stacks) goes through here.
 *
 * Word 0 holds the link encoded as next ^ secret ^ (address of the block), so
 * a use-after-free or overflow that overwrites it decodes to garbage, which
 * the tiers' checks reject before handing any memory out; a link copied from
 * another block does not decode to a valid pointer either.
 * Word 1 holds the free mark (a value derived from the secret): free() of a
 * block that carries it is a double free.  A live block never carries it
 * (the mark is cleared when the block is handed out), unless the program
 * wrote that secret-derived value itself: a 2^-64 chance for any word.
 * Checking the mark finds a double free wherever the block sits - any
 * thread's cache, a free list, a remote stack - which no list walk could.
 * Every class is at least two words, so both fit in any block.
 *
 * In --enable-valgrind builds free blocks are inaccessible to memcheck;
 * these helpers open them for hakmem's own accesses only.
 */
#ifndef HAKMEM_FREELIST_H
#define HAKMEM_FREELIST_H

#include "internal.h"
#include "valgrind_hooks.h"

/* Random per process; set once at init from the kernel's AT_RANDOM bytes. */
extern HAK_HIDDEN uintptr_t hak_secret;

/* The free mark: ~secret (never 0, see lifecycle.c). */
HAK_INLINE uintptr_t hak_free_mark(void)
{
    return ~hak_secret;
}

HAK_INLINE void *hak_link_get(void *b)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    uintptr_t v = ((uintptr_t *)b)[0] ^ hak_secret ^ (uintptr_t)b;
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
    return (void *)v;
}

/* Writes b's link to next and marks b free. */
HAK_INLINE void hak_link_set(void *b, void *next)
{
    uintptr_t secret = hak_secret; /* read once: the stores below may alias it */
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    ((uintptr_t *)b)[0] = (uintptr_t)next ^ secret ^ (uintptr_t)b;
    ((uintptr_t *)b)[1] = ~secret;
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
}

/* Whether b carries the free mark, i.e. is free already. */
HAK_INLINE bool hak_block_marked_free(void *b)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    bool marked = ((uintptr_t *)b)[1] == hak_free_mark();
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
    return marked;
}

/* Clears the free mark of a block being handed out. */
HAK_INLINE void hak_block_unmark(void *b)
{
    HAK_VG_OPEN(b, 2 * sizeof(uintptr_t));
    ((uintptr_t *)b)[1] = 0;
    HAK_VG_CLOSE(b, 2 * sizeof(uintptr_t));
}

#endif
