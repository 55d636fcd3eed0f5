/*
 * test_static_link.c - linked fully statically (-all-static) with
 * libhakmem.a: a program that calls mallopt, malloc_stats and malloc_info
 * must link (glibc's malloc.o, which also defines malloc, must not be pulled
 * in) and its allocations must be hakmem's.  Exit status 0 when all holds.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

int main(void)
{
    struct hak_stats before, after;
    hak_stats_get(&before);
    void *p = malloc(100);
    hak_stats_get(&after);
    int ok = p != NULL && after.tier[HAK_TIER_TINY].allocs > before.tier[HAK_TIER_TINY].allocs;
    free(p);
    ok &= mallopt(M_ARENA_MAX, 1) == 1 && mallopt(12345, 0) == 0;
    malloc_stats();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ok &= f != NULL && malloc_info(0, f) == 0;
    if (f)
        fclose(f);
    ok &= buf != NULL && strstr(buf, "hakmem") != NULL;
    free(buf);
    printf("static link with mallopt, malloc_stats, malloc_info: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
