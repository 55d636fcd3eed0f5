/*
 * lifecycle.c - lazy process initialization (no malloc), per-thread state and
 * its teardown at thread exit, statistics at exit, and the fork() handlers.
 */
#include "lifecycle.h"
#include "large.h"
#include "options.h"
#include "pool/pool.h"
#include "freelist.h"
#include "registry.h"

#include <fcntl.h>
#include "lock.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <unistd.h>

__thread struct hak_thread hak_thread __attribute__((tls_model("initial-exec")));
_Atomic int hak_ready;

static struct hak_lock init_lock = HAK_LOCK_INITIALIZER;
static pthread_key_t exit_key;
static _Atomic int hooks_state; /* 0: none, 1: being registered, 2: registered */

static void thread_exit(void *arg)
{
    (void)arg;
    struct hak_thread *t = &hak_thread;
    if (t->state != HAK_THREAD_ACTIVE)
        return;
    /* From here on this thread's malloc/free take the no-TLS paths. */
    t->state = HAK_THREAD_DEAD;
    tiny_thread_exit(&t->tiny);
#ifdef HAKMEM_POOL_TLS
    pool_tls_thread_exit(&t->pool);
#endif
    hak_stats_thread_exit(&t->counters);
}

/* HAKMEM_STATS=1 prints at exit through a copy of stderr taken at init:
 * programs such as GNU coreutils close stderr in their own exit handlers,
 * which run before this one. */
static int stats_fd = -1;

static void print_stats_at_exit(void)
{
    hak_stats_print_fd(stats_fd);
}

/* fork(): every global lock is taken before, and released (parent) or
 * re-created (child) after.  In a single-threaded process nobody else can
 * hold them, and fork() may run from a signal handler that interrupted
 * hakmem itself, so no lock is taken; the child re-creates them all. */
static bool fork_locked;

static void fork_prepare(void)
{
    fork_locked = !__libc_single_threaded;
    if (!fork_locked)
        return;
    large_fork_prepare();
    pool_fork_prepare();
    tiny_fork_prepare();
    hak_stats_fork_prepare();
}

static void fork_parent(void)
{
    if (!fork_locked)
        return;
    hak_stats_fork_parent();
    tiny_fork_parent();
    pool_fork_parent();
    large_fork_parent();
}

static void fork_child(void)
{
    hak_stats_fork_child();
    tiny_fork_child();
    pool_fork_child();
    large_fork_child();
}

/* Registers the hooks that may themselves allocate: called once hakmem can
 * serve, so their malloc calls land in a working allocator. */
static void register_hooks(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&hooks_state, &expected, 1))
        return;
    pthread_key_create(&exit_key, thread_exit);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (hak_opt.stats) {
        stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        if (stats_fd >= 0)
            atexit(print_stats_at_exit);
    }
    atomic_store(&hooks_state, 2);
}

bool hak_init_slow(void)
{
    if (!atomic_load_explicit(&hak_ready, memory_order_acquire)) {
        hak_lock(&init_lock);
        if (!atomic_load_explicit(&hak_ready, memory_order_relaxed)) {
            if (!hak_registry_init()) {
                hak_unlock(&init_lock);
                return false;
            }
            hak_secret_init();
            hak_options_init();
            tiny_init();
            pool_init();
            large_init();
            atomic_store_explicit(&hak_ready, 1, memory_order_release);
        }
        hak_unlock(&init_lock);
    }
    register_hooks();
    return true;
}

void hak_thread_activate(void)
{
    struct hak_thread *t = &hak_thread;
    if (t->state != HAK_THREAD_NEW || atomic_load(&hooks_state) != 2)
        return;
    t->state = HAK_THREAD_ACTIVE;
    hak_stats_thread_start(&t->counters);
    pthread_setspecific(exit_key, t);
}
