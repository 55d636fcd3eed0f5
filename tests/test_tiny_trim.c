/*
 * test_tiny_trim.c - malloc_trim(0) reaches tiny memory that another thread
 * freed into slabs of a thread that is still alive (issue 9):
 *
 *   the main thread allocates 64 MiB of 64-byte blocks, a second thread
 *   frees every one of them (onto the main thread's slabs' remote stacks),
 *   the main thread calls malloc_trim(0): its resident set is then within
 *   16 MiB of what it was before the allocations.
 *
 *   The same with the main thread calling malloc_trim(0) while a third,
 *   live, thread owns the slabs: that owner gives them back at its next
 *   slow path, which a few of its own mallocs reach.
 *
 *   And the other side of reuse: memory backed ahead of use for a class
 *   carved in bulk stays within a slab or unit of what was carved.
 */
#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BLOCK 64
#define TOTAL ((size_t)64 << 20)
#define NBLOCKS (TOTAL / BLOCK)
#define SLACK ((long)16 << 20)

static void **g_blocks; /* mmap'd, so it is not part of the heap measured */

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static void alloc_all(void)
{
    for (size_t i = 0; i < NBLOCKS; i++) {
        g_blocks[i] = malloc(BLOCK);
        ck_assert_ptr_nonnull(g_blocks[i]);
        memset(g_blocks[i], 0x5a, BLOCK);
    }
}

static void *free_all(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < NBLOCKS; i++)
        free(g_blocks[i]);
    return NULL;
}

static void setup(void)
{
    g_blocks = mmap(NULL, NBLOCKS * sizeof(void *), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(g_blocks, MAP_FAILED);
    memset(g_blocks, 0, NBLOCKS * sizeof(void *));
    free(malloc(BLOCK)); /* the allocator's own start-up is not measured */
}

START_TEST(trim_after_remote_frees)
{
    setup();
    long before = rss_bytes();
    alloc_all();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, free_all, NULL), 0);
    pthread_join(th, NULL);
    malloc_trim(0);
    long after = rss_bytes();
    ck_assert_msg(after - before <= SLACK,
                  "RSS %ld KiB before, %ld KiB after malloc_trim(0): %ld KiB kept", before >> 10,
                  after >> 10, (after - before) >> 10);
}
END_TEST

/* A live owner on the other side of the trim. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_phase;

static void wait_phase(int p)
{
    pthread_mutex_lock(&g_mu);
    while (g_phase < p)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

static void set_phase(int p)
{
    pthread_mutex_lock(&g_mu);
    g_phase = p;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void *owner(void *arg)
{
    (void)arg;
    alloc_all();
    set_phase(1);
    wait_phase(2); /* the blocks are freed by main, and malloc_trim ran */
    /* The owner's next slow paths act on the trim: a refill of a class it
     * has no block of reaches one. */
    free(malloc(200));
    set_phase(3);
    wait_phase(4);
    return NULL;
}

START_TEST(trim_reaches_live_owner)
{
    setup();
    long before = rss_bytes();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, owner, NULL), 0);
    wait_phase(1);
    free_all(NULL);
    malloc_trim(0);
    set_phase(2);
    wait_phase(3);
    malloc_trim(0); /* purges what the owner gave back */
    long after = rss_bytes();
    set_phase(4);
    pthread_join(th, NULL);
    ck_assert_msg(after - before <= SLACK,
                  "RSS %ld KiB before, %ld KiB after: %ld KiB kept by a live owner", before >> 10,
                  after >> 10, (after - before) >> 10);
}
END_TEST

/* A class carved in bulk (more than 16 slabs, or pool pages, of it) gets
 * its next slab or page unit backed ahead of use (tiny.c next_slab,
 * pool.c pool_central_take): at most one slab or unit per class.  A few
 * MiB of blocks of one small size, allocated and never written: the
 * resident set grows by their bytes plus little, never by a whole chunk
 * per new slab or page. */
#define BULK_BYTES (((size_t)8 << 20) + ((size_t)100 << 10))
#define BULK_SLACK ((long)512 << 10)

static void bulk_bounded(size_t size)
{
    size_t n = BULK_BYTES / size;
    setup();
    free(malloc(size));
    long before = rss_bytes();
    for (size_t i = 0; i < n; i++) {
        g_blocks[i] = malloc(size);
        ck_assert_ptr_nonnull(g_blocks[i]);
    }
    long after = rss_bytes();
    for (size_t i = 0; i < n; i++)
        free(g_blocks[i]);
    ck_assert_msg(after - before <= (long)(n * size) + BULK_SLACK,
                  "%zu blocks of %zu bytes (%zu KiB): RSS grew by %ld KiB", n, size,
                  n * size >> 10, (after - before) >> 10);
}

/* One size per test, each in a process of its own: what one size frees,
 * the allocator may purge while the next grows, which would hide growth. */
START_TEST(bulk_carving_bounded_tiny)
{
    bulk_bounded(64);
}
END_TEST

START_TEST(bulk_carving_bounded_pool)
{
    bulk_bounded(4096); /* one block per memory page */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tiny_trim");
    TCase *tc = tcase_create("trim");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, trim_after_remote_frees);
    tcase_add_test(tc, trim_reaches_live_owner);
    tcase_add_test(tc, bulk_carving_bounded_tiny);
    tcase_add_test(tc, bulk_carving_bounded_pool);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
