/*
 * test_fork.c - fork() and hakmem:
 *
 *  - fork from a multithreaded process whose threads keep allocating and
 *    freeing in every tier; the child allocates and frees a lot (also from a
 *    new thread) and exits 0; many times;
 *  - stdio: threads loop on rewind + getline of a file holding one very long
 *    line (the buffer grows with malloc while the FILE is locked), one on
 *    fflush(NULL), while the main thread forks hundreds of times;
 *  - other libraries' fork handlers that allocate, registered before hakmem's
 *    (from a constructor, before the first malloc) and after;
 *  - fork() from a signal handler that interrupted malloc, in a
 *    single-threaded and in a multithreaded program (glibc allows it; the
 *    allocator's fork handlers must not wait on a lock the interrupted code
 *    holds), then malloc in the child after the handler returns;
 *  - adoption: the child frees the blocks of the parent's threads (which do
 *    not exist in the child) and allocates again many times; its mapped bytes
 *    stay bounded and the counters balance.
 * A hang (a lock held across fork) fails through the Check timeout.
 */
#include <check.h>
#include <malloc.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"
#include "test_rng.h"

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = xs(rng);
    switch (r % 16) {
    case 0: case 1: case 2: case 3: case 4: case 5: return (r >> 8) % 512;
    case 6: case 7: return 512 + (r >> 8) % 512;
    case 8: case 9: case 10: case 11: return 1025 + (r >> 8) % (52 * 1024 - 1024); /* pool */
    case 12: return 53249 + (r >> 8) % (512 * 1024);                             /* large */
    default: return (r >> 8) % 4096;
    }
}

static int child_ok(int st)
{
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Allocation work done in a child: returns 0 when every block verified. */
static int churn(uint64_t seed, int ops)
{
    enum { SLOTS = 256 };
    unsigned char *p[SLOTS] = {0};
    size_t n[SLOTS] = {0};
    uint64_t rng = seed | 1;
    int bad = 0;
    for (int i = 0; i < ops; i++) {
        int k = (int)(xs(&rng) % SLOTS);
        if (p[k]) {
            uint8_t t = (uint8_t)k;
            size_t lim = n[k] < 512 ? n[k] : 512;
            for (size_t j = 0; j < lim; j++)
                bad |= p[k][j] != t;
            if (n[k])
                bad |= p[k][n[k] - 1] != t;
            free(p[k]);
            p[k] = NULL;
        } else {
            n[k] = pick_size(&rng);
            p[k] = (i & 1) ? malloc(n[k]) : calloc(1, n[k]);
            if (!p[k])
                return 1;
            /* tag the head and the last byte */
            memset(p[k], k, n[k] < 512 ? n[k] : 512);
            if (n[k])
                p[k][n[k] - 1] = (unsigned char)k;
        }
    }
    for (int k = 0; k < SLOTS; k++)
        free(p[k]);
    return bad;
}

/* ------------------------------------------------- multithreaded parent */

static atomic_int g_stop;
static atomic_ulong g_worker_ops;

static void *worker(void *arg)
{
    uint64_t rng = (uint64_t)(intptr_t)arg * 7919 + 17;
    enum { SLOTS = 64 };
    void *p[SLOTS] = {0};
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        int k = (int)(xs(&rng) % SLOTS);
        free(p[k]);
        size_t sz = pick_size(&rng);
        p[k] = malloc(sz);
        if (p[k] && sz)
            ((unsigned char *)p[k])[0] = 1;
        if ((xs(&rng) & 255) == 0) {
            void *q = realloc(p[k], pick_size(&rng) + 1);
            if (q)
                p[k] = q;
        }
        unsigned long ops = atomic_fetch_add_explicit(&g_worker_ops, 1, memory_order_relaxed);
        if ((ops & 255) == 0) {
            /* leave some CPU to the children on a small machine */
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    for (int k = 0; k < SLOTS; k++)
        free(p[k]);
    return NULL;
}

static void *child_thread(void *arg)
{
    return (void *)(intptr_t)churn((uint64_t)(intptr_t)arg, 10000);
}

/* The child: allocate a lot on the main thread and on a new thread. */
static void child_body(int i)
{
    int bad = churn((uint64_t)i * 31 + 5, 10000);
    pthread_t th;
    void *res = (void *)1;
    if (pthread_create(&th, NULL, child_thread, (void *)(intptr_t)(i + 1000)) == 0) {
        pthread_join(th, &res);
    }
    bad |= res != NULL;
    void *big = malloc(3 << 20);
    bad |= big == NULL;
    free(big);
    _exit(bad ? 3 : 0);
}

START_TEST(test_fork_multithreaded)
{
    enum { WORKERS = 3, FORKS = 40 };
    pthread_t th[WORKERS];
    atomic_store(&g_stop, 0);
    free(malloc(1)); /* hakmem starts here, not racing in the workers */
    for (int i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
    int failed = 0;
    for (int i = 0; i < FORKS; i++) {
        /* let the workers run a little between forks */
        unsigned long start = atomic_load(&g_worker_ops);
        while (atomic_load(&g_worker_ops) - start < 3000)
            sched_yield();
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork failed: %s", strerror(errno));
        if (pid == 0)
            child_body(i);
        /* the parent keeps allocating while the child runs */
        void *p = malloc(100 + (size_t)i);
        ck_assert_ptr_nonnull(p);
        free(p);
        int st = test_wait(pid);
        if (!child_ok(st)) {
            failed++;
            fprintf(stderr, "fork #%d: child status %d\n", i, st);
        }
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    REQUIRE(failed == 0, "%d children failed after fork", failed);
}
END_TEST

/* ------------------------------------------------------------ fork and stdio */

#define STDIO_READERS 8
#define STDIO_FORKS 300
#define LONG_LINE (64 * 1024)

static atomic_int g_stdio_stop;
static atomic_ulong g_lines;
static char g_long_file[64];

static void *getline_thread(void *arg)
{
    (void)arg;
    FILE *f = fopen(g_long_file, "r");
    if (!f)
        return (void *)1;
    int bad = 0;
#ifdef HAK_SANITIZE_API_H
    /* Sanitizer builds (.ci/sanitize): the C library's own allocations go to
     * the sanitizer, not hakmem, so getline gets a buffer it never grows. */
    static __thread char fixed[LONG_LINE + 1];
#endif
    while (!atomic_load_explicit(&g_stdio_stop, memory_order_relaxed)) {
        /* a fresh buffer each time: getline grows it with malloc and realloc
         * while it holds the FILE's lock */
        char *line = NULL;
        size_t cap = 0;
#ifdef HAK_SANITIZE_API_H
        line = fixed;
        cap = sizeof fixed;
#endif
        rewind(f);
        ssize_t n = getline(&line, &cap, f);
        bad |= n != LONG_LINE;
#ifndef HAK_SANITIZE_API_H
        free(line);
#endif
        atomic_fetch_add_explicit(&g_lines, 1, memory_order_relaxed);
        sched_yield(); /* glibc's FILE locks are not fair: let fflush(NULL) in */
    }
    fclose(f);
    return (void *)(intptr_t)bad;
}

static void *fflush_thread(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&g_stdio_stop, memory_order_relaxed))
        fflush(NULL); /* holds the stdio list lock, then each FILE's lock */
    return NULL;
}

START_TEST(test_fork_stdio_getline)
{
    strcpy(g_long_file, "/tmp/hakmem-fork-XXXXXX");
    int fd = mkstemp(g_long_file);
    REQUIRE(fd >= 0, "mkstemp: %s", strerror(errno));
    char *buf = malloc(LONG_LINE);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'x', LONG_LINE - 1);
    buf[LONG_LINE - 1] = '\n';
    REQUIRE(write(fd, buf, LONG_LINE) == LONG_LINE, "write failed");
    close(fd);
    free(buf);

    pthread_t readers[STDIO_READERS], flusher;
    atomic_store(&g_stdio_stop, 0);
    for (int i = 0; i < STDIO_READERS; i++)
        ck_assert_int_eq(pthread_create(&readers[i], NULL, getline_thread, NULL), 0);
    ck_assert_int_eq(pthread_create(&flusher, NULL, fflush_thread, NULL), 0);
    int failed = 0;
    for (int i = 0; i < STDIO_FORKS; i++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork failed: %s", strerror(errno));
        if (pid == 0) {
            void *p = malloc(5000 + (size_t)i);
            free(p);
            _exit(p ? 0 : 3);
        }
        failed += !child_ok(test_wait(pid));
    }
    atomic_store(&g_stdio_stop, 1);
    int bad = 0;
    for (int i = 0; i < STDIO_READERS; i++) {
        void *r;
        pthread_join(readers[i], &r);
        bad |= r != NULL;
    }
    pthread_join(flusher, NULL);
    unlink(g_long_file);
    REQUIRE(failed == 0, "%d children failed", failed);
    REQUIRE(!bad, "a reader failed to read its line");
}
END_TEST

/* ------------------------------------------- other libraries' fork handlers */

/* Handlers that allocate in every tier, as a library's might; registered
 * once before hakmem's (from a constructor, before the program's first
 * malloc) and once after.  They allocate only while g_handlers_on is set. */
static atomic_int g_handlers_on;
static atomic_int g_handler_failures;
static int g_registered_before_hakmem = -1;

static void handler_work(void)
{
    if (!atomic_load(&g_handlers_on))
        return;
    void *a = malloc(200000), *b = malloc(100), *c = calloc(1, 5000);
    void *d = realloc(a, 300000);
    if (!a || !b || !c || !d)
        atomic_fetch_add(&g_handler_failures, 1);
    free(d ? d : a);
    free(b);
    free(c);
}

static void h_prepare(void) { handler_work(); }
static void h_parent(void) { handler_work(); }
static void h_child(void) { handler_work(); }

__attribute__((constructor)) static void register_early_handlers(void)
{
    /* hakmem maps its first memory when it initializes, at the first
     * allocation, and registers its fork handlers right then */
    struct hak_stats s;
    hak_stats_get(&s);
    g_registered_before_hakmem = s.mmap_calls == 0;
    pthread_atfork(h_prepare, h_parent, h_child);
}

START_TEST(test_fork_handlers_allocate)
{
    enum { WORKERS = 2, FORKS = 200 };
    REQUIRE(g_registered_before_hakmem == 1,
            "hakmem initialized before the constructor ran: no handler precedes its own");
    free(malloc(10)); /* hakmem's handlers are registered by now */
    ck_assert_int_eq(pthread_atfork(h_prepare, h_parent, h_child), 0);
    atomic_store(&g_handlers_on, 1);
    pthread_t th[WORKERS];
    atomic_store(&g_stop, 0);
    free(malloc(1)); /* hakmem starts here, not racing in the workers */
    for (int i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)(i + 50)), 0);
    int failed = 0;
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork failed: %s", strerror(errno));
        if (pid == 0)
            _exit(atomic_load(&g_handler_failures) || churn((uint64_t)i + 9, 2000) ? 3 : 0);
        failed += !child_ok(test_wait(pid));
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&g_handlers_on, 0);
    REQUIRE(failed == 0, "%d children failed", failed);
    REQUIRE(atomic_load(&g_handler_failures) == 0, "allocations in fork handlers failed");
}
END_TEST

/* ----------------------------------------------- fork in signal handler */

#define SIG_FORKS 100

static volatile sig_atomic_t g_in_child;
static volatile sig_atomic_t g_nforks;
static volatile sig_atomic_t g_fork_errors;
static pid_t g_pids[SIG_FORKS];

static void on_alarm(int sig)
{
    (void)sig;
    if (g_in_child || g_nforks >= SIG_FORKS)
        return;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0)
        g_in_child = 1; /* the interrupted code finishes; then the child works */
    else if (pid > 0)
        g_pids[g_nforks++] = pid;
    else
        g_fork_errors++;
    errno = saved;
}

/* An allocation loop that the timer interrupts; stops early in a child.
 * `big` favours pool and large blocks, whose paths take locks. */
static void busy_loop(void **slots, int nslots, uint64_t *rng, int iters, int big)
{
    for (int i = 0; i < iters && !g_in_child; i++) {
        int k = (int)(xs(rng) % (uint64_t)nslots);
        free(slots[k]);
        size_t n = pick_size(rng);
        if (big && n <= 1024)
            n = 1025 + n * 100;
        slots[k] = malloc(n);
        if ((i & 15) == 0) {
            void *q = realloc(slots[k], pick_size(rng) + 1);
            if (q)
                slots[k] = q;
        }
        if ((i & 63) == 0) {
            void *a = NULL;
            if (posix_memalign(&a, 4096, 5000) == 0)
                free(a);
        }
    }
}

/* Forks SIG_FORKS times from a SIGALRM handler that interrupts the calling
 * thread's allocation loop (only this thread takes SIGALRM). */
static void fork_in_handler(int big)
{
    enum { SLOTS = 128 };
    void *slots[SLOTS] = {0};
    uint64_t rng = 42;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);

    g_nforks = 0;
    int reaped = 0, failed = 0;
    while (reaped < SIG_FORKS) {
        struct itimerval it = {{0, 700}, {0, 700}}; /* every 0.7 ms */
        setitimer(ITIMER_REAL, &it, NULL);
        busy_loop(slots, SLOTS, &rng, 20000, big);
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        if (g_in_child) {
            /* child of a fork() made inside the handler: the heap must work */
            int bad = churn(77, 10000);
            for (int k = 0; k < SLOTS; k++)
                free(slots[k]);
            _exit(bad ? 3 : 0);
        }
        /* a signal generated before the timer stopped has been delivered by
         * now (on the way out of setitimer), so g_in_child is final */
        int n = g_nforks;
        for (; reaped < n; reaped++)
            failed += !child_ok(test_wait(g_pids[reaped]));
    }
    for (int k = 0; k < SLOTS; k++)
        free(slots[k]);
    REQUIRE(g_fork_errors == 0, "fork() failed %d times in the handler", (int)g_fork_errors);
    REQUIRE(failed == 0, "%d children of a fork in a signal handler failed", failed);
}

START_TEST(test_fork_in_signal_handler)
{
    fork_in_handler(0);
}
END_TEST

START_TEST(test_fork_in_signal_handler_threads)
{
    enum { WORKERS = 2 };
    sigset_t alrm, old;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    /* the workers inherit a mask that keeps SIGALRM for the main thread */
    pthread_sigmask(SIG_BLOCK, &alrm, &old);
    pthread_t th[WORKERS];
    atomic_store(&g_stop, 0);
    free(malloc(1)); /* hakmem starts here, not racing in the workers */
    for (int i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)(i + 70)), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fork_in_handler(1);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
}
END_TEST

/* ----------------------------------------------------- adoption in the child */

#define ADOPT_THREADS 4
#define ADOPT_BLOCKS 20000 /* per thread: tiny and pool blocks */

static void *g_adopt[ADOPT_THREADS][ADOPT_BLOCKS];
static pthread_barrier_t g_adopt_ready, g_adopt_done;

static size_t adopt_size(int i)
{
    return (i % 4 == 3) ? 2048 + (size_t)(i % 7) * 512 : 16 + (size_t)(i % 24) * 16;
}

static void *adopt_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < ADOPT_BLOCKS; i++) {
        g_adopt[t][i] = malloc(adopt_size(i));
        if (g_adopt[t][i])
            memset(g_adopt[t][i], t + 1, adopt_size(i));
    }
    pthread_barrier_wait(&g_adopt_ready); /* blocks allocated */
    pthread_barrier_wait(&g_adopt_done);  /* the child has run */
    for (int i = 0; i < ADOPT_BLOCKS; i++)
        free(g_adopt[t][i]);
    return NULL;
}

static uint64_t mapped_total(void)
{
    struct hak_stats s;
    hak_stats_get(&s);
    return s.tier[HAK_TIER_TINY].mapped_bytes + s.tier[HAK_TIER_POOL].mapped_bytes +
           s.tier[HAK_TIER_LARGE].mapped_bytes;
}

/* In the child: free the parent threads' blocks, then allocate and free the
 * same amount ROUNDS times.  Exit 0 when contents were intact, mapped bytes
 * stayed within a bound and the counters balance. */
static void adopt_child(void)
{
    enum { ROUNDS = 8 };
    int bad = 0;
    /* The bound is taken before the frees: they may release memory that
     * has been free for the purge delay (how long depends on how long the
     * earlier children took), which the rounds then map again. */
    uint64_t m_start = mapped_total();
    for (int t = 0; t < ADOPT_THREADS; t++)
        for (int i = 0; i < ADOPT_BLOCKS; i++) {
            unsigned char *p = g_adopt[t][i];
            bad |= !p || p[0] != t + 1 || p[adopt_size(i) - 1] != t + 1;
            free(p);
        }
    if (bad)
        _exit(4);
    uint64_t m0 = mapped_total(), peak = m0;
    static void *mine[ADOPT_THREADS * ADOPT_BLOCKS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < ADOPT_THREADS * ADOPT_BLOCKS; k++)
            if (!(mine[k] = malloc(adopt_size(k % ADOPT_BLOCKS))))
                _exit(5);
        uint64_t m = mapped_total();
        peak = m > peak ? m : peak;
        for (int k = 0; k < ADOPT_THREADS * ADOPT_BLOCKS; k++)
            free(mine[k]);
    }
    /* the parent threads' memory is reused: the child needs (almost) no
     * more; without adoption it maps the tiny blocks' slabs again */
    uint64_t tiny_bytes = 0;
    for (int i = 0; i < ADOPT_BLOCKS; i++)
        tiny_bytes += adopt_size(i) <= 1024 ? adopt_size(i) : 0;
    tiny_bytes *= ADOPT_THREADS;
    fprintf(stderr,
            "child: mapped %llu KiB at the start, %llu KiB after the frees, peak %llu KiB "
            "(tiny data %llu KiB)\n",
            (unsigned long long)(m_start >> 10), (unsigned long long)(m0 >> 10),
            (unsigned long long)(peak >> 10), (unsigned long long)(tiny_bytes >> 10));
    if (peak > m_start + tiny_bytes / 4)
        _exit(6);
    struct hak_stats s;
    hak_stats_get(&s);
    for (int t = 0; t < HAK_TIER_COUNT; t++)
        if (s.tier[t].frees > s.tier[t].allocs) {
            fprintf(stderr, "child: tier %d: %llu frees > %llu allocs\n", t,
                    (unsigned long long)s.tier[t].frees, (unsigned long long)s.tier[t].allocs);
            _exit(7);
        }
    _exit(0);
}

START_TEST(test_fork_child_adopts)
{
    pthread_t th[ADOPT_THREADS];
    pthread_barrier_init(&g_adopt_ready, NULL, ADOPT_THREADS + 1);
    pthread_barrier_init(&g_adopt_done, NULL, ADOPT_THREADS + 1);
    for (int t = 0; t < ADOPT_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, adopt_thread, (void *)(intptr_t)t), 0);
    pthread_barrier_wait(&g_adopt_ready);
    int st[3];
    for (int k = 0; k < 3; k++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork failed: %s", strerror(errno));
        if (pid == 0)
            adopt_child();
        st[k] = test_wait(pid);
    }
    pthread_barrier_wait(&g_adopt_done);
    for (int t = 0; t < ADOPT_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int k = 0; k < 3; k++)
        REQUIRE(child_ok(st[k]), "child %d: status %d (4: contents, 5: NULL, 6: mapped grew, "
                "7: counters)", k, st[k]);
}
END_TEST

/* One case per scenario, each bounded by its own timeout (a hang fails).
 * Generous: the slowest case (handlers: 200 forks beside two allocating
 * threads) takes 13 s on a quiet 2-core machine and went past 120 s once
 * with three other CPU-bound processes beside it. */
static void add_case(Suite *s, const char *name, const TTest *test)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 360);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

static Suite *fork_suite(void)
{
    Suite *s = suite_create("fork");
    add_case(s, "multithreaded", test_fork_multithreaded);
    add_case(s, "stdio", test_fork_stdio_getline);
    add_case(s, "handlers", test_fork_handlers_allocate);
    add_case(s, "signal", test_fork_in_signal_handler);
    add_case(s, "signal_threads", test_fork_in_signal_handler_threads);
    add_case(s, "adopt", test_fork_child_adopts);
    return s;
}

int main(void)
{
    return test_run_suite(fork_suite());
}
