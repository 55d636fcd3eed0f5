/*
 * test_keys.c - hakmem when pthread_key_create fails (every key taken before
 * hakmem's first allocation): threads still allocate and free correctly, on
 * the shared paths, and another library's key is never touched - its
 * destructor never receives hakmem's data.  A plain program (not Check): the
 * keys must be exhausted before anything allocates.  Exit status 0 on
 * success.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#define THREADS 8
#define BLOCKS 2000

static pthread_key_t other_key; /* "another library's" key, created first */
static volatile int other_dtor_calls;

static void other_dtor(void *value)
{
    (void)value;
    other_dtor_calls++; /* nobody ever sets other_key: hakmem's data */
}

static size_t size_of(int i)
{
    static const size_t sizes[] = {8, 100, 1000, 3000, 40000, 100000};
    return sizes[i % 6];
}

static void *thread_fn(void *arg)
{
    int t = (int)(intptr_t)arg;
    unsigned char **p = malloc(BLOCKS * sizeof *p);
    int bad = !p;
    for (int round = 0; round < 3 && !bad; round++) {
        for (int i = 0; i < BLOCKS; i++) {
            p[i] = malloc(size_of(i));
            bad |= !p[i];
            if (p[i])
                memset(p[i], t + i, size_of(i));
        }
        for (int i = 0; i < BLOCKS; i++) {
            if (p[i])
                bad |= p[i][0] != (unsigned char)(t + i) ||
                       p[i][size_of(i) - 1] != (unsigned char)(t + i);
            free(p[i]);
        }
    }
    free(p);
    return (void *)(intptr_t)bad;
}

int main(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    if (s.mmap_calls != 0) {
        printf("test_keys: SKIP: hakmem was initialized before main\n");
        return 77;
    }
    if (pthread_key_create(&other_key, other_dtor) != 0) {
        printf("test_keys: SKIP: no key at all\n");
        return 77;
    }
    pthread_key_t k;
    int taken = 0, rc;
    while ((rc = pthread_key_create(&k, NULL)) == 0)
        taken++;
    printf("test_keys: other library's key %u, %d more keys taken until %s\n",
           (unsigned)other_key, taken, strerror(rc));

    /* hakmem initializes now, finds no key, and must cope */
    int bad = 0;
    for (int rep = 0; rep < 4; rep++) {
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++)
            if (pthread_create(&th[i], NULL, thread_fn, (void *)(intptr_t)i) != 0)
                return 99;
        for (int i = 0; i < THREADS; i++) {
            void *r;
            pthread_join(th[i], &r);
            bad |= r != NULL;
        }
    }
    bad |= thread_fn((void *)(intptr_t)99) != NULL;
    hak_stats_get(&s);
    int balanced = 1;
    for (int t = 0; t < HAK_TIER_COUNT; t++)
        balanced &= s.tier[t].allocs >= s.tier[t].frees && s.tier[t].frees > 0;
    printf("test_keys: blocks %s, other destructor called %d times, counters %s\n",
           bad ? "CORRUPTED" : "intact", other_dtor_calls, balanced ? "balanced" : "WRONG");
    return bad || other_dtor_calls || !balanced ? 1 : 0;
}
