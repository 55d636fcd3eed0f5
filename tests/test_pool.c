/*
 * test_pool.c - the pool tier's memory behaviour:
 *
 *   - 200 threads each holding one 4000-byte block cost at most 32 KiB of
 *     RSS per thread (a thread's first pool block carves at most a page, it
 *     does not pre-warm a cache);
 *   - allocating and freeing 40 blocks of 30 KB, 1,000 times, makes no
 *     madvise call after the first round (pages that empty are kept for the
 *     purge delay, not purged at once), and malloc_trim(0) then does purge;
 *   - 64 MiB of pool blocks freed by this thread and another: after
 *     malloc_trim(0) the RSS is within 8 MiB of what it was before them;
 *   - 32 MiB of pool blocks freed, then 32 MiB of large blocks allocated
 *     (the footprint grows): the pool's free pages go back at once, long
 *     before the purge delay;
 *   - a program that alternates phases of 32 MiB of 16 KiB blocks and
 *     32 MiB of 128 KiB blocks, each freed before the next, peaks at one
 *     phase's memory, not two: the page-run layer takes back the empty pool
 *     pages beyond what their classes keep before it maps more, and the
 *     large blocks take them, and the other way round;
 *   - a class whose 8 MiB of blocks are all freed and allocated again, 20
 *     times, with nothing else asking the layer for memory, keeps its empty
 *     pages: after the first round no page is taken from the layer or given
 *     back to it (counted from HAKMEM_POOL_TRACE's lines, in a child);
 *   - with HAKMEM_PURGE_DELAY_MS=50, the pages of freed blocks are purged
 *     (madvise) without malloc_trim once the delay has passed, driven by
 *     the program's other pool traffic (a child process; it waits up to
 *     20 s, so a slow machine only makes it take longer).
 *
 * madvise is counted by defining it here: the library's calls resolve to
 * this definition, which passes them on to the kernel.  The process re-runs
 * itself once with HAKMEM_PURGE_DELAY_MS set to an hour, so that no purge
 * is due during the test however slowly it runs.
 */
#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#define PURGE_DELAY_ENV "HAKMEM_PURGE_DELAY_MS"
#define PURGE_DELAY_MS "3600000"

static atomic_long madvise_calls;

int madvise(void *addr, size_t len, int advice)
{
    atomic_fetch_add(&madvise_calls, 1);
    return (int)syscall(SYS_madvise, addr, len, advice);
}

/* Resident bytes of the process, from /proc/self/statm. */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    unsigned long size = 0, resident = 0;
    ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---------------------------------------------- RSS of holding threads */

#define HOLDERS 200
#define HOLD_SIZE 4000
#define HOLD_RSS_PER_THREAD (32 * 1024)

static pthread_barrier_t hold_barrier;

static void *holder(void *arg)
{
    (void)arg;
    char *p = malloc(HOLD_SIZE);
    if (p)
        memset(p, 0x5a, HOLD_SIZE);
    pthread_barrier_wait(&hold_barrier); /* everybody holds a block */
    pthread_barrier_wait(&hold_barrier); /* RSS measured */
    free(p);
    return p;
}

START_TEST(holding_threads_rss)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* one thread first, so one-time costs are not counted per thread */
    pthread_t t[HOLDERS];
    ck_assert_int_eq(pthread_barrier_init(&hold_barrier, NULL, 2), 0);
    ck_assert_int_eq(pthread_create(&t[0], &attr, holder, NULL), 0);
    pthread_barrier_wait(&hold_barrier);
    pthread_barrier_wait(&hold_barrier);
    void *got;
    pthread_join(t[0], &got);
    ck_assert_ptr_nonnull(got);
    pthread_barrier_destroy(&hold_barrier);

    ck_assert_int_eq(pthread_barrier_init(&hold_barrier, NULL, HOLDERS + 1), 0);
    size_t before = rss_bytes();
    for (int i = 0; i < HOLDERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], &attr, holder, NULL), 0);
    pthread_barrier_wait(&hold_barrier);
    size_t after = rss_bytes();
    pthread_barrier_wait(&hold_barrier);
    for (int i = 0; i < HOLDERS; i++) {
        pthread_join(t[i], &got);
        ck_assert_ptr_nonnull(got);
    }
    pthread_barrier_destroy(&hold_barrier);
    pthread_attr_destroy(&attr);
    size_t per_thread = after > before ? (after - before) / HOLDERS : 0;
    printf("holding threads: %zu bytes of RSS per thread\n", per_thread);
    ck_assert_msg(per_thread <= HOLD_RSS_PER_THREAD,
                  "%d threads holding one %d-byte block: %zu bytes of RSS per thread (> %d)",
                  HOLDERS, HOLD_SIZE, per_thread, HOLD_RSS_PER_THREAD);
}
END_TEST

/* ------------------------------------------------- no purge in a churn */

#define CHURN_BLOCKS 40
#define CHURN_SIZE 30000
#define CHURN_ROUNDS 1000

static void churn_round(unsigned round)
{
    unsigned char *b[CHURN_BLOCKS];
    for (unsigned i = 0; i < CHURN_BLOCKS; i++) {
        b[i] = malloc(CHURN_SIZE);
        ck_assert_ptr_nonnull(b[i]);
        b[i][0] = b[i][CHURN_SIZE - 1] = (unsigned char)(round + i);
    }
    for (unsigned i = 0; i < CHURN_BLOCKS; i++) {
        ck_assert_uint_eq(b[i][0], (unsigned char)(round + i));
        ck_assert_uint_eq(b[i][CHURN_SIZE - 1], (unsigned char)(round + i));
        free(b[i]);
    }
}

START_TEST(churn_no_purge)
{
    churn_round(0);
    long first = atomic_load(&madvise_calls);
    for (unsigned r = 1; r < CHURN_ROUNDS; r++)
        churn_round(r);
    long later = atomic_load(&madvise_calls) - first;
    ck_assert_msg(later == 0, "%ld madvise calls in rounds 2..%d of the churn", later, CHURN_ROUNDS);
    /* what the churn left empty is purged on demand */
    long before_trim = atomic_load(&madvise_calls);
    malloc_trim(0);
    ck_assert_msg(atomic_load(&madvise_calls) > before_trim, "malloc_trim(0) purged nothing");
}
END_TEST

/* ------------------------------------------------ trim gives it back */

#define TRIM_BYTES (64u << 20)
#define TRIM_SIZE 30000
#define TRIM_BLOCKS (TRIM_BYTES / TRIM_SIZE)
#define TRIM_SLACK (8u << 20)

static void *trim_blocks[TRIM_BLOCKS];

/* Frees the odd-numbered blocks: half the memory comes back through another
 * thread's cache and the transfer lists. */
static void *free_odd(void *arg)
{
    (void)arg;
    for (unsigned i = 1; i < TRIM_BLOCKS; i += 2)
        free(trim_blocks[i]);
    return NULL;
}

START_TEST(trim_returns_pool_memory)
{
    malloc_trim(0);
    size_t before = rss_bytes();
    for (unsigned i = 0; i < TRIM_BLOCKS; i++) {
        trim_blocks[i] = malloc(TRIM_SIZE);
        ck_assert_ptr_nonnull(trim_blocks[i]);
        memset(trim_blocks[i], 0x5a, TRIM_SIZE);
    }
    size_t full = rss_bytes();
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_odd, NULL), 0);
    pthread_join(t, NULL);
    for (unsigned i = 0; i < TRIM_BLOCKS; i += 2)
        free(trim_blocks[i]);
    malloc_trim(0);
    size_t after = rss_bytes();
    printf("trim: RSS %zu KiB before, %zu KiB full, %zu KiB after malloc_trim\n", before >> 10,
           full >> 10, after >> 10);
    ck_assert_msg(after <= before + TRIM_SLACK,
                  "RSS %zu KiB after malloc_trim(0), %zu KiB before the blocks", after >> 10,
                  before >> 10);
}
END_TEST

/* ----------------------------------------------- purge after the delay */

#define SHORT_DELAY_MS "50"
#define PURGE_WAIT_ROUNDS 2000 /* of 10 ms */

/* The child: frees 64 blocks of 30 KB, then keeps making other pool traffic
 * until madvise is called.  Exit status 0 when it was.  The traffic is more
 * blocks than a thread cache holds, so that it reaches the shared side,
 * whose slow paths drive the purge (blocks that stay in a thread's cache
 * cost no call into it). */
static int purge_child(void)
{
    enum { N = 64, TRAFFIC = 1024 };
    static void *b[TRAFFIC];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(CHURN_SIZE);
        if (!b[i])
            return 2;
        memset(b[i], 0x5a, CHURN_SIZE);
    }
    for (int i = 0; i < N; i++)
        free(b[i]);
    long start = atomic_load(&madvise_calls);
    for (int r = 0; r < PURGE_WAIT_ROUNDS && atomic_load(&madvise_calls) == start; r++) {
        usleep(10000);
        for (int i = 0; i < TRAFFIC; i++)
            b[i] = malloc(2000);
        for (int i = 0; i < TRAFFIC; i++)
            free(b[i]);
    }
    return atomic_load(&madvise_calls) > start ? 0 : 1;
}

/* Growth gives back what is free: 32 MiB of pool blocks freed, then 32 MiB
 * of large blocks (new run areas: the footprint grows).  The pool's empty
 * pages go back then, although the purge delay (an hour here) is far off;
 * what stays is at most the thread's pool cache (8 MiB). */
#define GROWTH_POOL_BLOCKS 4096
#define GROWTH_POOL_SIZE 8192
#define GROWTH_LARGE_BLOCKS 8
#define GROWTH_LARGE_SIZE ((size_t)4 << 20)
static void *g_growth[GROWTH_POOL_BLOCKS];
START_TEST(growth_gives_back)
{
    size_t r0 = rss_bytes();
    for (int i = 0; i < GROWTH_POOL_BLOCKS; i++) {
        g_growth[i] = malloc(GROWTH_POOL_SIZE);
        ck_assert_ptr_nonnull(g_growth[i]);
        memset(g_growth[i], i, GROWTH_POOL_SIZE);
    }
    for (int i = 0; i < GROWTH_POOL_BLOCKS; i++)
        free(g_growth[i]);
    long m0 = atomic_load(&madvise_calls);
    void *big[GROWTH_LARGE_BLOCKS];
    for (int i = 0; i < GROWTH_LARGE_BLOCKS; i++) {
        big[i] = malloc(GROWTH_LARGE_SIZE);
        ck_assert_ptr_nonnull(big[i]);
        memset(big[i], i, GROWTH_LARGE_SIZE);
    }
    free(malloc(100 * 1024)); /* one more slow path, whose tick purges */
    size_t r1 = rss_bytes();
    long m1 = atomic_load(&madvise_calls);
    for (int i = 0; i < GROWTH_LARGE_BLOCKS; i++)
        free(big[i]);
    ck_assert_msg(m1 > m0, "no madvise call after the footprint grew");
    size_t large = (size_t)GROWTH_LARGE_BLOCKS * GROWTH_LARGE_SIZE;
    ck_assert_msg(r1 <= r0 + large + 16 * 1024 * 1024,
                  "RSS %zu KiB before, %zu KiB after 32 MiB of pool blocks freed and "
                  "32 MiB of large blocks allocated: the freed pool pages stayed",
                  r0 >> 10, r1 >> 10);
}
END_TEST

/* Peak resident bytes since the last reset_peak(), from /proc/self/status. */
static size_t peak_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kib) == 1)
            break;
    fclose(f);
    return kib << 10;
}

/* Makes the peak resident size the current one (Linux 4.0). */
static void reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs("5", f), 1);
    fclose(f);
}

#define PHASE_BYTES ((size_t)32 << 20)
#define PHASE_SMALL 16384
#define PHASE_BIG 131072
#define PHASE_ROUNDS 4
static void *g_phase[PHASE_BYTES / PHASE_SMALL];

/* Allocates PHASE_BYTES in blocks of `size`, writes and checks them, frees them. */
static void phase(size_t size, unsigned round)
{
    size_t n = PHASE_BYTES / size;
    for (size_t i = 0; i < n; i++) {
        g_phase[i] = malloc(size);
        ck_assert_ptr_nonnull(g_phase[i]);
        memset(g_phase[i], (int)(i + round), size);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = g_phase[i];
        ck_assert_msg(b[0] == (unsigned char)(i + round) && b[size - 1] == b[0],
                      "block %zu of %zu B changed", i, size);
        free(b);
    }
}

START_TEST(phases_share_pages)
{
    malloc_trim(0);
    reset_peak();
    size_t r0 = rss_bytes();
    for (unsigned r = 0; r < PHASE_ROUNDS; r++) {
        phase(PHASE_SMALL, r);
        phase(PHASE_BIG, r);
    }
    size_t peak = peak_bytes();
    /* One phase, plus what caches hold: the thread's pool cache (at most
     * 8 MiB) and the transfer cache. */
    ck_assert_msg(peak <= r0 + PHASE_BYTES + (16u << 20),
                  "peak RSS %zu KiB from %zu KiB over %u rounds of 32 MiB of %d B blocks, then "
                  "of %d B blocks: the phases did not share their pages",
                  peak >> 10, r0 >> 10, PHASE_ROUNDS, PHASE_SMALL, PHASE_BIG);
}
END_TEST

/* ------------------------------------------ churn keeps its pages */

#define KEEP_SIZE 16384
#define KEEP_BLOCKS 512
#define KEEP_ROUNDS 20
#define KEEP_MARK "test_pool: round 1\n"

/* The child of churn_keeps_pages, run with HAKMEM_POOL_TRACE=1: writes
 * KEEP_MARK to stderr, where the trace goes, when the first round is done. */
static int keep_child(void)
{
    static unsigned char *b[KEEP_BLOCKS];
    for (unsigned r = 0; r < KEEP_ROUNDS; r++) {
        if (r == 1)
            fputs(KEEP_MARK, stderr);
        for (unsigned i = 0; i < KEEP_BLOCKS; i++) {
            if (!(b[i] = malloc(KEEP_SIZE)))
                return 2;
            b[i][0] = b[i][KEEP_SIZE - 1] = (unsigned char)(r + i);
        }
        for (unsigned i = 0; i < KEEP_BLOCKS; i++) {
            if (b[i][0] != (unsigned char)(r + i) || b[i][KEEP_SIZE - 1] != b[i][0])
                return 3;
            free(b[i]);
        }
    }
    return 0;
}

START_TEST(churn_keeps_pages)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        setenv("HAKMEM_POOL_TRACE", "1", 1);
        char *argv[] = {"test_pool", "--keep-child", NULL};
        execv("/proc/self/exe", argv);
        _exit(4);
    }
    close(fds[1]);
    FILE *trace = fdopen(fds[0], "r");
    ck_assert_ptr_nonnull(trace);
    char *line = NULL;
    size_t cap = 0;
    bool marked = false;
    unsigned first_pages = 0, later_new = 0, later_released = 0;
    while (getline(&line, &cap, trace) > 0) {
        if (strcmp(line, KEEP_MARK) == 0)
            marked = true;
        else if (strstr(line, "pool: new page") && marked)
            later_new++;
        else if (strstr(line, "pool: new page"))
            first_pages++;
        else if (marked && strstr(line, "pool: release page"))
            later_released++;
    }
    free(line);
    fclose(trace);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    ck_assert_msg(marked && first_pages > 0, "no trace from the child (%u pages)", first_pages);
    ck_assert_msg(later_new == 0 && later_released == 0,
                  "rounds 2..%d of %d x %d B took %u pages from the layer and gave back %u "
                  "(the first took %u)",
                  KEEP_ROUNDS, KEEP_BLOCKS, KEEP_SIZE, later_new, later_released, first_pages);
}
END_TEST

START_TEST(purge_after_delay)
{
    fflush(stdout);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv(PURGE_DELAY_ENV, SHORT_DELAY_MS, 1);
        char *argv[] = {"test_pool", "--purge-child", NULL};
        execv("/proc/self/exe", argv);
        _exit(3);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "no purge %s ms after the blocks were freed (child status %d)",
                  SHORT_DELAY_MS, status);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--purge-child") == 0)
        return purge_child();
    if (argc > 1 && strcmp(argv[1], "--keep-child") == 0)
        return keep_child();
    const char *delay = getenv(PURGE_DELAY_ENV);
    if (!delay || strcmp(delay, PURGE_DELAY_MS) != 0) {
        setenv(PURGE_DELAY_ENV, PURGE_DELAY_MS, 1);
        execv("/proc/self/exe", argv);
        perror("test_pool: re-running /proc/self/exe");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, holding_threads_rss);
    tcase_add_test(tc, churn_no_purge);
    tcase_add_test(tc, trim_returns_pool_memory);
    tcase_add_test(tc, growth_gives_back);
    tcase_add_test(tc, phases_share_pages);
    tcase_add_test(tc, churn_keeps_pages);
    tcase_add_test(tc, purge_after_delay);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
