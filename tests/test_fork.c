/*
 * test_fork.c - fork() and hakmem:
 *
 *  - fork from a multithreaded process whose threads keep allocating and
 *    freeing in every tier; the child allocates and frees a lot (also from a
 *    new thread) and exits 0; the parent waits with a timeout and kills a
 *    hung child (a lock held across fork shows up as a timeout); many times;
 *  - fork() from a signal handler in a single-threaded program that is busy
 *    allocating (glibc allows this; the allocator's atfork handlers must not
 *    deadlock on a lock the interrupted code holds), then malloc in the child
 *    after the handler returns.
 */
#include <check.h>
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

/* Like ck_assert_msg, but silent when it holds: every ck_assert* that passes
 * sends a message to Check's parent process, far too slow in inner loops. */
#define REQUIRE(cond, ...)                                                           \
    do {                                                                             \
        if (!(cond))                                                                 \
            ck_abort_msg(__VA_ARGS__);                                               \
    } while (0)

#define CHILD_TIMEOUT_MS 10000

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

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

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits for pid for at most CHILD_TIMEOUT_MS; kills it on timeout.
 * Returns the wait status, or -1 on timeout. */
static int wait_child(pid_t pid)
{
    long deadline = now_ms() + CHILD_TIMEOUT_MS;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -2;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        struct timespec ts = {0, 1000000}; /* 1 ms */
        nanosleep(&ts, NULL);
    }
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
    for (int i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
    int hung = 0, failed = 0;
    long t_start = now_ms();
    for (int i = 0; i < FORKS; i++) {
        /* let the workers run a little between forks */
        unsigned long start = atomic_load(&g_worker_ops);
        long t0 = now_ms();
        while (atomic_load(&g_worker_ops) - start < 3000 && now_ms() - t0 < 100)
            sched_yield();
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork failed: %s", strerror(errno));
        if (pid == 0)
            child_body(i);
        /* the parent keeps allocating while the child runs */
        void *p = malloc(100 + (size_t)i);
        ck_assert_ptr_nonnull(p);
        free(p);
        int st = wait_child(pid);
        if (st == -1) {
            hung++;
            fprintf(stderr, "fork #%d: child hung, killed after %d ms\n", i, CHILD_TIMEOUT_MS);
        } else if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed++;
            if (st >= 0 && WIFSIGNALED(st))
                fprintf(stderr, "fork #%d: child killed by signal %d\n", i, WTERMSIG(st));
            else
                fprintf(stderr, "fork #%d: child status %d\n", i, st);
        }
        if (hung)
            break; /* don't spend the whole timeout on more hangs */
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    printf("fork from multithreaded process: %d forks in %ld ms, workers did %lu ops\n", FORKS,
           now_ms() - t_start, atomic_load(&g_worker_ops));
    fflush(stdout);
    REQUIRE(hung == 0, "%d children hung after fork from a multithreaded process", hung);
    REQUIRE(failed == 0, "%d children failed after fork", failed);
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

/* A single-threaded allocation loop that the timer interrupts; stops early
 * in a child. */
static void busy_loop(void **slots, int nslots, uint64_t *rng, int iters)
{
    for (int i = 0; i < iters && !g_in_child; i++) {
        int k = (int)(xs(rng) % (uint64_t)nslots);
        free(slots[k]);
        slots[k] = malloc(pick_size(rng));
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

START_TEST(test_fork_in_signal_handler)
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
    int reaped = 0, hung = 0, failed = 0;
    long t0 = now_ms();
    while (reaped < SIG_FORKS && now_ms() - t0 < 30000) {
        struct itimerval it = {{0, 700}, {0, 700}}; /* every 0.7 ms */
        setitimer(ITIMER_REAL, &it, NULL);
        busy_loop(slots, SLOTS, &rng, 20000);
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
        for (; reaped < n; reaped++) {
            int st = wait_child(g_pids[reaped]);
            if (st == -1)
                hung++;
            else if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                failed++;
        }
        if (hung)
            break;
    }
    for (int k = 0; k < SLOTS; k++)
        free(slots[k]);
    printf("fork in signal handler: %d children in %ld ms\n", reaped, now_ms() - t0);
    fflush(stdout);
    REQUIRE(g_fork_errors == 0, "fork() failed %d times in the handler", (int)g_fork_errors);
    REQUIRE(hung == 0, "%d children of a fork in a signal handler hung", hung);
    REQUIRE(failed == 0, "%d children of a fork in a signal handler failed", failed);
    REQUIRE(reaped >= SIG_FORKS / 2, "only %d forks happened", reaped);
}
END_TEST

static Suite *fork_suite(void)
{
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("fork");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_fork_multithreaded);
    tcase_add_test(tc, test_fork_in_signal_handler);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fork_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
