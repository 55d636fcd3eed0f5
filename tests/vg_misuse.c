/*
 * vg_misuse.c - the program tests/test_valgrind.sh runs under valgrind's
 * memcheck, built twice: tests/vg_misuse links libhakmem (its malloc is
 * hakmem's), tests/vg_plain does not (hakmem comes in by LD_PRELOAD).
 *
 *   vg_misuse errors   leaks one 100-byte block and one 5000-byte block
 *                      (definitely lost), reads and writes a freed 64-byte
 *                      block (use after free): memcheck must report all of it;
 *   vg_misuse clean    allocates, reallocates, aligns and frees in every tier
 *                      and from several threads, with no error: memcheck must
 *                      report none (hakmem's own bookkeeping in free blocks
 *                      must not show up as invalid accesses).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* volatile: keep the compiler from seeing (and removing) the misuse */
static void *volatile g_lost;
static volatile char g_sink;

static int errors(void)
{
    /* definitely lost: the only pointers are overwritten */
    g_lost = malloc(100);
    memset(g_lost, 1, 100);
    g_lost = malloc(5000);
    memset(g_lost, 2, 5000);
    g_lost = NULL;

    /* use after free: one invalid read, one invalid write */
    char *volatile p = malloc(64);
    memset(p, 3, 64);
    free(p);
    g_sink = p[8];
    p[16] = 4;
    return 0;
}

static void *work(void *arg)
{
    size_t seed = (size_t)arg;
    void *keep[64] = {0};
    for (int round = 0; round < 2000; round++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((seed >> 33) % 64);
        if (keep[i]) {
            free(keep[i]);
            keep[i] = NULL;
            continue;
        }
        size_t k = (seed >> 40) % 100, n;
        if (k < 80)
            n = 1 + (seed >> 20) % 1024;
        else if (k < 97)
            n = 1025 + (seed >> 16) % 50000;
        else
            n = 60000 + (seed >> 16) % 300000;
        char *b = k % 5 == 0 ? calloc(1, n) : malloc(n);
        if (!b)
            return (void *)1;
        memset(b, (int)k, n);
        if (k % 7 == 0) {
            b = realloc(b, n * 2 + 1);
            if (!b)
                return (void *)1;
            memset(b, 9, n * 2 + 1);
        }
        keep[i] = b;
    }
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return NULL;
}

static int clean(void)
{
    void *a = NULL;
    if (posix_memalign(&a, 4096, 100) != 0)
        return 1;
    memset(a, 1, 100);
    void *b = memalign(64, 3000), *c = aligned_alloc(256, 512);
    if (!b || !c)
        return 1;
    memset(b, 1, 3000);
    memset(c, 1, 512);
    free(a);
    free(b);
    free(c);
    pthread_t t[3];
    for (size_t i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, work, (void *)(i + 1)) != 0)
            return 1;
    void *r = work((void *)7);
    for (int i = 0; i < 3; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        if (ret)
            return 1;
    }
    return r ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "errors") == 0)
        return errors();
    if (argc == 2 && strcmp(argv[1], "clean") == 0)
        return clean();
    fprintf(stderr, "usage: %s errors|clean\n", argv[0]);
    return 2;
}
