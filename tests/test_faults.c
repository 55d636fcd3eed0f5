/*
 * test_faults.c - hakmem stays correct on a bad day:
 *
 *   oom       Under setrlimit(RLIMIT_AS) (what `ulimit -v` sets) each entry
 *             point is driven into exhaustion: it must return NULL with errno
 *             ENOMEM (posix_memalign: return ENOMEM, *memptr untouched; a
 *             failed realloc leaves the old block intact) and nothing may
 *             crash; once the limit is raised, every entry point serves again.
 *             Runs in a forked child that reports through a pipe (Check
 *             itself needs memory to report).  Skipped under AddressSanitizer
 *             and ThreadSanitizer, whose shadow memory needs terabytes of
 *             address space.
 *   churn     10,000 threads created one after another (each joined before
 *             the next starts); each frees the blocks the previous one
 *             allocated (tiny, pool and now and then large) and allocates new
 *             ones.  RSS (/proc/self/statm) and hak_stats' mapped bytes must
 *             stay under a bound, and the live-block count must not grow
 *             (the RSS bound is not checked under sanitizers, whose own
 *             bookkeeping grows with every thread).
 *   fork      1,000 forks while four threads allocate and free; each child
 *             allocates and frees in every tier and _exit(0)s; a child that
 *             does not finish within 10 s is killed and fails the test.
 */
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static size_t statm_field(int i)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long v[3] = {0, 0, 0};
    if (f) {
        if (fscanf(f, "%lu %lu %lu", &v[0], &v[1], &v[2]) != 3)
            v[0] = v[1] = 0;
        fclose(f);
    }
    return (size_t)v[i] * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t rss_bytes(void) { return statm_field(1); }

static uint64_t mapped_bytes(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    return s.tier[HAK_TIER_TINY].mapped_bytes + s.tier[HAK_TIER_POOL].mapped_bytes +
           s.tier[HAK_TIER_LARGE].mapped_bytes;
}

static int64_t live_blocks(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    int64_t n = 0;
    for (int t = 0; t < HAK_TIER_COUNT; t++)
        n += (int64_t)(s.tier[t].allocs - s.tier[t].frees);
    return n;
}

/* ================================================================ oom */

/* The child reports its first failure as one line on fd g_report, then
 * exits 1.  Formatting goes into a static buffer: no allocation. */
static int g_report = -1;
static char g_msg[512];

__attribute__((format(printf, 1, 2), noreturn)) static void child_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_msg, sizeof g_msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof g_msg - 2)
        n = (int)sizeof g_msg - 2;
    g_msg[n++] = '\n';
    ssize_t w = write(g_report, g_msg, (size_t)n);
    (void)w;
    _exit(1);
}

/* The out-of-memory child's REQUIRE: it reports through child_fail. */
#define CHILD_REQUIRE(cond, ...)                                                                   \
    do {                                                                                           \
        if (!(cond))                                                                               \
            child_fail(__VA_ARGS__);                                                               \
    } while (0)

#define HOLD_MAX (1u << 20)
static void *g_hold[HOLD_MAX]; /* blocks kept while memory is exhausted */
static size_t g_nhold;

enum entry {
    E_MALLOC, E_CALLOC, E_REALLOC_NULL, E_REALLOCARRAY, E_POSIX_MEMALIGN, E_ALIGNED_ALLOC,
    E_MEMALIGN, E_VALLOC, E_PVALLOC, E_HAK_MALLOC, E_HAK_CALLOC, E_HAK_REALLOC_NULL,
    E_HAK_POSIX_MEMALIGN, E_HAK_ALIGNED_ALLOC, E_HAK_MEMALIGN, E_HAK_VALLOC, E_HAK_PVALLOC,
    E_COUNT
};
static const char *const entry_name[E_COUNT] = {
    "malloc", "calloc", "realloc(NULL)", "reallocarray(NULL)", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "hak_malloc", "hak_calloc", "hak_realloc(NULL)",
    "hak_posix_memalign", "hak_aligned_alloc", "hak_memalign", "hak_valloc", "hak_pvalloc",
};

/* One call of entry e for `size` bytes: the block, or NULL with *err set to
 * the error (errno, or posix_memalign's return value). */
static void *call(enum entry e, size_t size, int *err)
{
    void *p = NULL, *const sentinel = (void *)0x5a5a5a5a5a5a5a5aull;
    int r;
    errno = 0;
    switch (e) {
    case E_MALLOC: p = malloc(size); break;
    case E_CALLOC: p = calloc(size / 4 ? size / 4 : 1, 4); break;
    case E_REALLOC_NULL: p = realloc(NULL, size); break;
    case E_REALLOCARRAY: p = reallocarray(NULL, size / 2 ? size / 2 : 1, 2); break;
    case E_POSIX_MEMALIGN:
    case E_HAK_POSIX_MEMALIGN:
        p = sentinel;
        r = e == E_POSIX_MEMALIGN ? posix_memalign(&p, 64, size) : hak_posix_memalign(&p, 64, size);
        if (r != 0) {
            CHILD_REQUIRE(p == sentinel, "%s(%zu) = %d changed *memptr", entry_name[e], size, r);
            *err = r;
            return NULL;
        }
        return p;
    case E_ALIGNED_ALLOC: p = aligned_alloc(64, size); break;
    case E_MEMALIGN: p = memalign(256, size); break;
    case E_VALLOC: p = valloc(size); break;
    case E_PVALLOC: p = pvalloc(size); break;
    case E_HAK_MALLOC: p = hak_malloc(size); break;
    case E_HAK_CALLOC: p = hak_calloc(size / 4 ? size / 4 : 1, 4); break;
    case E_HAK_REALLOC_NULL: p = hak_realloc(NULL, size); break;
    case E_HAK_ALIGNED_ALLOC: p = hak_aligned_alloc(64, size); break;
    case E_HAK_MEMALIGN: p = hak_memalign(256, size); break;
    case E_HAK_VALLOC: p = hak_valloc(size); break;
    case E_HAK_PVALLOC: p = hak_pvalloc(size); break;
    default: break;
    }
    *err = p ? 0 : errno;
    return p;
}

static void hold(void *p)
{
    CHILD_REQUIRE(g_nhold < HOLD_MAX, "more than %u blocks held", HOLD_MAX);
    g_hold[g_nhold++] = p;
}

/* Calls e for `size` until it fails (memory exhausted): the failure must be
 * ENOMEM, and the next calls must fail the same way. */
static void exhaust(enum entry e, size_t size)
{
    int err = 0;
    size_t n = 0;
    for (;;) {
        void *p = call(e, size, &err);
        if (!p)
            break;
        /* touch the first and last byte: a NULL-less success must be real memory */
        ((volatile char *)p)[0] = 1;
        if (size)
            ((volatile char *)p)[size - 1] = 1;
        hold(p);
        if (++n > HOLD_MAX / 2)
            child_fail("%s(%zu) never failed under RLIMIT_AS", entry_name[e], size);
    }
    CHILD_REQUIRE(err == ENOMEM, "%s(%zu) failed with %d (%s), not ENOMEM", entry_name[e], size,
                  err, strerror(err));
    for (int i = 0; i < 3; i++) {
        void *p = call(e, size, &err);
        if (p) { /* memory may come back (a cache, a purge): fine, keep going */
            hold(p);
            continue;
        }
        CHILD_REQUIRE(err == ENOMEM, "%s(%zu) failed again with %d, not ENOMEM", entry_name[e],
                      size, err);
    }
}

static void oom_child(void)
{
    static const size_t sizes[] = {16, 64, 1000, 4096, 40000, 100000, 1 << 20, 16 << 20};
    /* warm up every tier (and its per-thread state) before the limit */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        free(malloc(sizes[i]));
    char *tiny = malloc(48), *large = malloc(200000);
    CHILD_REQUIRE(tiny && large, "malloc before the limit failed");
    memset(tiny, 0x11, 48);
    memset(large, 0x22, 200000);

    size_t vm = statm_field(0);
    struct rlimit old, lim;
    CHILD_REQUIRE(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = vm + (32u << 20); /* 32 MiB more than now */
    CHILD_REQUIRE(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit(RLIMIT_AS): %s", strerror(errno));

    /* fill the address space with big blocks first, then each entry point and
     * size class is run into the wall */
    exhaust(E_MALLOC, 16 << 20);
    exhaust(E_MALLOC, 1 << 20);
    for (int e = 0; e < E_COUNT; e++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            exhaust((enum entry)e, sizes[i]);

    {
        char line[160];
        int n = snprintf(line, sizeof line,
                         "oom: address space %zu MiB at the limit, %zu blocks held when every "
                         "entry point failed\n",
                         statm_field(0) >> 20, g_nhold);
        ssize_t w = write(STDERR_FILENO, line, (size_t)n);
        (void)w;
    }
    /* realloc that needs memory fails and leaves the block as it was */
    errno = 0;
    char *q = realloc(tiny, 4 << 20);
    CHILD_REQUIRE(q == NULL && errno == ENOMEM,
                  "realloc(tiny, 4 MiB) = %p errno %d under the limit", q, errno);
    errno = 0;
    q = realloc(large, 64 << 20);
    CHILD_REQUIRE(q == NULL && errno == ENOMEM,
                  "realloc(large, 64 MiB) = %p errno %d under the limit", q, errno);
    errno = 0;
    q = hak_realloc(large, 64 << 20);
    CHILD_REQUIRE(q == NULL && errno == ENOMEM, "hak_realloc(large, 64 MiB) = %p errno %d", q,
                  errno);
    for (int i = 0; i < 48; i++)
        CHILD_REQUIRE(tiny[i] == 0x11, "failed realloc damaged the tiny block");
    for (int i = 0; i < 200000; i += 97)
        CHILD_REQUIRE(large[i] == 0x22, "failed realloc damaged the large block");
    /* free works while exhausted: give back half of what is held */
    for (size_t i = 0; i < g_nhold; i += 2) {
        free(g_hold[i]);
        g_hold[i] = NULL;
    }
    /* trimming and freeing with no memory to spare must not crash */
    hak_trim();
    malloc_trim(0);

    /* raise the limit again: every entry point serves */
    CHILD_REQUIRE(setrlimit(RLIMIT_AS, &old) == 0, "restoring RLIMIT_AS: %s", strerror(errno));
    for (int e = 0; e < E_COUNT; e++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            int err;
            void *p = call((enum entry)e, sizes[i], &err);
            CHILD_REQUIRE(p, "%s(%zu) failed after the limit was raised: %s", entry_name[e],
                          sizes[i], strerror(err));
            memset(p, 0x33, sizes[i]);
            free(p);
        }
    q = realloc(tiny, 4 << 20);
    CHILD_REQUIRE(q && q[0] == 0x11 && q[47] == 0x11, "realloc(tiny, 4 MiB) after the limit");
    free(q);
    q = realloc(large, 64 << 20);
    CHILD_REQUIRE(q && q[0] == 0x22 && q[199999] == 0x22, "realloc(large, 64 MiB) after the limit");
    free(q);
    for (size_t i = 0; i < g_nhold; i++)
        free(g_hold[i]);
    _exit(0);
}

START_TEST(test_oom)
{
#ifdef UNDER_SANITIZER
    return; /* sanitizers reserve terabytes of shadow: RLIMIT_AS cannot work */
#endif
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        g_report = fds[1];
        oom_child();
    }
    close(fds[1]);
    char buf[1024];
    size_t len = test_read_all(fds[0], buf, sizeof buf);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "out-of-memory child %s %d: %s", WIFSIGNALED(status) ? "killed by signal" : "exited",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                  len ? buf : "(no message)");
}
END_TEST

/* ================================================================ churn */

#define CHURN_THREADS 10000
#define CHURN_BLOCKS 48

static void *g_handoff[CHURN_BLOCKS];
static size_t g_handoff_size[CHURN_BLOCKS];
static unsigned g_churn_index;
static const char *g_churn_error;

static void *churn_thread(void *arg)
{
    unsigned idx = *(unsigned *)arg;
    /* free what the previous thread left, after checking its contents */
    for (int i = 0; i < CHURN_BLOCKS; i++) {
        unsigned char *p = g_handoff[i];
        if (!p)
            continue;
        size_t n = g_handoff_size[i];
        if (p[0] != (unsigned char)(idx - 1) || p[n - 1] != (unsigned char)(idx - 1))
            g_churn_error = "a handed-over block changed";
        free(p);
    }
    /* allocate new ones: tiny in several classes, pool, now and then large;
     * and some that live only inside this thread */
    for (int i = 0; i < CHURN_BLOCKS; i++) {
        size_t n;
        if (i < 32)
            n = 8 + (size_t)((idx * 7 + (unsigned)i * 29) % 1000);
        else if (i < 47)
            n = 1100 + (size_t)((idx * 13 + (unsigned)i * 977) % 40000);
        else
            n = idx % 16 == 0 ? 100000 + (idx % 5) * 50000 : 64;
        unsigned char *p = malloc(n);
        if (!p) {
            g_churn_error = "malloc failed";
            return NULL;
        }
        p[0] = p[n - 1] = (unsigned char)idx;
        g_handoff[i] = p;
        g_handoff_size[i] = n;
    }
    for (int i = 0; i < 16; i++)
        free(malloc(16 + (size_t)i * 64));
    return NULL;
}

START_TEST(test_thread_churn)
{
    size_t rss0 = 0, rss_max = 0;
    uint64_t map0 = 0, map_max = 0;
    int64_t live0 = 0;
    double t0 = now();
    for (unsigned i = 1; i <= CHURN_THREADS; i++) {
        pthread_t t;
        g_churn_index = i;
        ck_assert_int_eq(pthread_create(&t, NULL, churn_thread, &g_churn_index), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_msg(g_churn_error == NULL, "thread %u: %s", i, g_churn_error);
        if (i == 200) { /* warmed up: the baseline */
            rss0 = rss_bytes();
            map0 = mapped_bytes();
            live0 = live_blocks();
        } else if (i > 200 && i % 100 == 0) {
            size_t r = rss_bytes();
            uint64_t m = mapped_bytes();
            if (r > rss_max)
                rss_max = r;
            if (m > map_max)
                map_max = m;
        }
    }
    double secs = now() - t0;
    int64_t live = live_blocks();
    fprintf(stderr,
            "churn: %d threads in %.1f s; RSS %zu KiB at thread 200, max %zu KiB after; "
            "mapped %llu KiB at 200, max %llu KiB after; live blocks %lld -> %lld\n",
            CHURN_THREADS, secs, rss0 >> 10, rss_max >> 10, (unsigned long long)(map0 >> 10),
            (unsigned long long)(map_max >> 10), (long long)live0, (long long)live);
    /* Bounds: a leak of even one 64 KiB slab per thread would be 600 MiB over
     * the run; what a steady state needs fits in a few MiB over the baseline
     * (the large cache alone may hold up to HAKMEM_LARGE_CACHE_MB = 64 MiB of
     * mapped-but-free bytes, which RSS does not count once purged). */
#ifndef UNDER_SANITIZER /* ASan's quarantine and per-thread records grow RSS */
    ck_assert_msg(rss_max <= rss0 + (48u << 20), "RSS grew from %zu KiB to %zu KiB", rss0 >> 10,
                  rss_max >> 10);
#endif
    ck_assert_msg(map_max <= map0 + (96u << 20), "mapped bytes grew from %llu KiB to %llu KiB",
                  (unsigned long long)(map0 >> 10), (unsigned long long)(map_max >> 10));
    ck_assert_msg(map_max <= (256u << 20), "mapped bytes reached %llu KiB",
                  (unsigned long long)(map_max >> 10));
    /* nothing leaks: the same number of blocks is live at the end (within a
     * few allocations the C library makes for itself) */
    ck_assert_msg(live - live0 <= 64 && live0 - live <= 64, "live blocks %lld at thread 200, %lld at the end",
                  (long long)live0, (long long)live);
    for (int i = 0; i < CHURN_BLOCKS; i++)
        free(g_handoff[i]);
}
END_TEST

/* ================================================================ fork */

#define FORKS 1000
#define FORK_THREADS 4

static atomic_bool g_stop;
static atomic_ulong g_worker_ops;

static void *fork_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *slot[64] = {0};
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 8) % 64;
        if (slot[i]) {
            free(slot[i]);
            slot[i] = NULL;
        } else {
            unsigned k = (seed >> 16) % 100;
            size_t n = k < 85 ? 1 + (seed >> 20) % 1024 : k < 98 ? 1100 + (seed >> 12) % 50000
                                                                 : 60000 + (seed >> 10) % 300000;
            slot[i] = malloc(n);
            if (slot[i])
                memset(slot[i], (int)i, n < 256 ? n : 256);
        }
        atomic_fetch_add_explicit(&g_worker_ops, 1, memory_order_relaxed);
    }
    for (int i = 0; i < 64; i++)
        free(slot[i]);
    return NULL;
}

static int fork_child_work(void)
{
    static const size_t sizes[] = {1, 16, 100, 1024, 2000, 8192, 53248, 100000, 1 << 20};
    void *p[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = malloc(sizes[i]);
        if (!p[i])
            return 2;
        memset(p[i], 0x77, sizes[i]);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = realloc(p[i], sizes[i] * 2);
        if (!p[i] || ((unsigned char *)p[i])[sizes[i] - 1] != 0x77)
            return 3;
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        free(p[i]);
    return 0;
}

START_TEST(test_fork_under_load)
{
    pthread_t th[FORK_THREADS];
    atomic_store(&g_stop, false);
    for (int i = 0; i < FORK_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, fork_worker, (void *)(uintptr_t)(i + 1)), 0);
    int failures = 0, first_status = 0;
    double t0 = now();
    for (int f = 0; f < FORKS; f++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            alarm(20); /* belt and braces: never outlive the test by much */
            _exit(fork_child_work());
        }
        /* a child that hangs makes the test hang, which the Check timeout
         * turns into a failure */
        int status = test_wait(pid);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            if (!failures)
                first_status = status;
            failures++;
        }
    }
    atomic_store(&g_stop, true);
    for (int i = 0; i < FORK_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    fprintf(stderr, "fork: %d forks in %.1f s while 4 threads did %lu operations\n", FORKS,
            now() - t0, (unsigned long)atomic_load(&g_worker_ops));
    ck_assert_msg(failures == 0, "%d of %d children failed; first: %s %d", failures, FORKS,
                  WIFSIGNALED(first_status) ? "signal" : "exit status",
                  WIFSIGNALED(first_status) ? WTERMSIG(first_status) : WEXITSTATUS(first_status));
    ck_assert_uint_gt(atomic_load(&g_worker_ops), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("oom");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_oom);
    suite_add_tcase(s, tc);
    tc = tcase_create("churn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_thread_churn);
    suite_add_tcase(s, tc);
    tc = tcase_create("fork");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fork_under_load);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
