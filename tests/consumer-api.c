/*
 * consumer-api.c - a program built against the *installed* hakmem with
 * nothing but `pkg-config --cflags --libs hakmem` (or `--static --libs`);
 * run by tests/consumers.sh.
 *
 * It proves that the plain malloc family of the program is hakmem's: blocks
 * from malloc() are freed with hak_free() and blocks from hak_malloc() with
 * free() (each would abort with "invalid pointer" if two heaps were in play),
 * malloc_usable_size() agrees with hak_malloc_usable_size(), and
 * hak_stats_get() counts the program's malloc() calls in the tier that each
 * size belongs to.  argv[1] is the version pkg-config reported.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <hakmem.h>

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef CONSUMER_SHARED
#include <dlfcn.h>
#endif

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "consumer-api: %s:%d: check failed: %s\n",       \
                    __FILE__, __LINE__, #cond);                              \
            failures++;                                                      \
        }                                                                    \
    } while (0)

/* Allocates COUNT blocks of SIZE bytes with the plain malloc() and returns
 * how many more blocks hakmem's statistics counted in TIER meanwhile. */
static uint64_t tier_allocs_during_malloc(enum hak_tier tier, size_t size, int count)
{
    struct hak_stats before, after;
    void **blocks = calloc((size_t)count, sizeof *blocks);
    int i;

    CHECK(blocks != NULL);
    if (blocks == NULL)
        return 0;
    hak_stats_get(&before);
    for (i = 0; i < count; i++) {
        blocks[i] = malloc(size);
        CHECK(blocks[i] != NULL);
        if (blocks[i] != NULL)
            memset(blocks[i], 0x5a, size);
    }
    hak_stats_get(&after);
    for (i = 0; i < count; i++)
        free(blocks[i]);
    free(blocks);
    return after.tier[tier].allocs - before.tier[tier].allocs;
}

int main(int argc, char **argv)
{
    struct hak_stats st;
    uint64_t n;
    char *p, *q;

    /* The header, the library and the .pc file belong together. */
    printf("hakmem %s (header %s)\n", hak_version(), HAKMEM_VERSION_STRING);
    CHECK(strcmp(hak_version(), HAKMEM_VERSION_STRING) == 0);
    if (argc > 1)
        CHECK(strcmp(hak_version(), argv[1]) == 0);

#ifdef CONSUMER_SHARED
    {
        /* Tell the script which file hak_version() came from. */
        Dl_info info;
        if (dladdr((void *)hak_version, &info) != 0 && info.dli_fname != NULL)
            printf("library: %s\n", info.dli_fname);
    }
#endif

    /* One heap: blocks cross freely between the two APIs. */
    p = malloc(24);
    CHECK(p != NULL);
    CHECK(((uintptr_t)p & 15) == 0);
    CHECK(hak_malloc_usable_size(p) >= 24);
    CHECK(malloc_usable_size(p) == hak_malloc_usable_size(p));
    hak_free(p);

    q = hak_malloc(3000);
    CHECK(q != NULL);
    memset(q, 1, 3000);
    q = realloc(q, 100000);
    CHECK(q != NULL);
    CHECK(q != NULL && q[2999] == 1);
    free(q);

    /* The program's own malloc() calls land in hakmem's tiers. */
    n = tier_allocs_during_malloc(HAK_TIER_TINY, 48, 1000);
    printf("tiny allocs during malloc(48) x1000: %llu\n", (unsigned long long)n);
    CHECK(n > 0);
    n = tier_allocs_during_malloc(HAK_TIER_POOL, 8192, 100);
    printf("pool allocs during malloc(8192) x100: %llu\n", (unsigned long long)n);
    CHECK(n > 0);
    n = tier_allocs_during_malloc(HAK_TIER_LARGE, 256 * 1024, 4);
    printf("large allocs during malloc(256 KiB) x4: %llu\n", (unsigned long long)n);
    CHECK(n > 0);

    hak_stats_get(&st);
    CHECK(st.tier[HAK_TIER_TINY].allocs > 0);
    hak_stats_print();

    if (failures != 0) {
        fprintf(stderr, "consumer-api: %d check(s) failed\n", failures);
        return 1;
    }
    printf("consumer-api: ok\n");
    return 0;
}
