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
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <unistd.h>

__thread struct hak_thread hak_thread __attribute__((tls_model("initial-exec")));
_Atomic int hak_ready;

static struct hak_lock init_lock = HAK_LOCK_INITIALIZER;
static pthread_key_t exit_key;
static bool exit_key_ok; /* written once, before hooks_state becomes 2 */
static _Atomic int hooks_state; /* 0: none, 1: being registered, 2: registered */
/* The process that set hooks_state to 1 (see hooks_wait), and which hooks
 * it has registered so far (a child of a fork() made meanwhile registers
 * the rest). */
static _Atomic pid_t hooks_pid;
static _Atomic bool exit_key_made, atfork_made;
/* This thread is registering the hooks: its own allocations (those of
 * pthread_key_create and pthread_atfork, in an LD_PRELOAD process) must not
 * wait for them. */
static __thread bool hooks_registering __attribute__((tls_model("initial-exec")));

/* The ACTIVE threads (struct hak_thread in their TLS, valid until they
 * leave the list in thread_exit). */
static struct hak_lock threads_lock = HAK_LOCK_INITIALIZER;
static struct hak_thread *threads;
/* In a child of fork(): the parent's other threads, not yet adopted. */
static struct hak_thread *orphans;
_Atomic int hak_adopt_countdown;

static void threads_add(struct hak_thread *t)
{
    hak_lock(&threads_lock);
    t->prev = NULL;
    t->next = threads;
    if (threads)
        threads->prev = t;
    threads = t;
    hak_unlock(&threads_lock);
}

static void threads_remove(struct hak_thread *t)
{
    hak_lock(&threads_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    hak_unlock(&threads_lock);
}

/* Gives back what thread t holds: its caches, its slabs and pages (abandoned
 * for adoption), its counters. */
static void thread_release(struct hak_thread *t)
{
    t->state = HAK_THREAD_DEAD;
    tiny_thread_exit(&t->tiny);
#ifdef HAKMEM_POOL_TLS
    pool_tls_thread_exit(&t->pool);
#endif
    hak_stats_thread_exit(&t->counters);
}

static void thread_exit(void *arg)
{
    (void)arg;
    struct hak_thread *t = &hak_thread;
    if (t->state != HAK_THREAD_ACTIVE)
        return;
    /* Off the list first: a fork() from now on does not adopt this thread's
     * state while it is half given back.  From here on this thread's
     * malloc/free take the no-TLS paths. */
    threads_remove(t);
    thread_release(t);
}

/* HAKMEM_STATS=1 prints at exit through a copy of stderr taken at init:
 * programs such as GNU coreutils close stderr in their own exit handlers,
 * which run before this one. */
static int stats_fd = -1;

static void print_stats_at_exit(void)
{
    hak_stats_print_fd(stats_fd);
}

/*
 * fork().  glibc's fork() runs the prepare handlers, then (with several
 * threads) takes the stdio list lock and its own malloc locks; in the child
 * it resets the list lock before the child handlers, in the parent it drops
 * it before the parent handlers.  A thread that holds a FILE lock may wait
 * in malloc for a hakmem lock while another waits in fflush(NULL), holding
 * the list lock, for that FILE: so hakmem takes the list lock first (it is
 * recursive; glibc's own hold comes on top) and its own locks after it,
 * glibc's order, and drops its hold in the parent handler.
 *
 * Every hak_lock is then held by the forking thread (lock.c), except those
 * it already held when fork() began (fork() from a signal handler that
 * interrupted hakmem): those stay with the interrupted code.  Other
 * libraries' fork handlers that run while the locks are held may allocate:
 * their lock operations pass through.
 *
 * In the child only the forking thread exists: every other thread's caches,
 * slabs and pages are given back (lazily, see fork_child), so that the child
 * reuses them.
 */
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);
extern void _IO_list_resetlock(void);

/* Whether the prepare handler took the stdio list lock: with several
 * threads (in a single thread nobody else can hold it, and fork() may run in
 * a signal handler that interrupted stdio).  Taken once, dropped once in the
 * parent and reset in the child, whatever glibc did on its side. */
static bool fork_took_list_lock;

static void fork_prepare(void)
{
    fork_took_list_lock = !__libc_single_threaded;
    if (fork_took_list_lock)
        _IO_list_lock();
    hak_fork_locks_begin();
    hak_lock(&init_lock);
    hak_lock(&threads_lock);
    /* Outer locks first, the order every other path nests them in: the
     * tiny tier's orphan lock is held across a refill, whose purge tick
     * takes the large and pool tiers' locks. */
    tiny_fork_prepare();
    large_fork_prepare();
    pool_fork_prepare();
    hak_stats_fork_prepare();
    hak_fork_locks_held();
}

static void fork_parent(void)
{
    hak_fork_locks_parent();
    hak_stats_fork_parent();
    pool_fork_parent();
    large_fork_parent();
    tiny_fork_parent();
    hak_unlock(&threads_lock);
    hak_unlock(&init_lock);
    hak_fork_locks_end();
    if (fork_took_list_lock)
        _IO_list_unlock();
}

static void fork_child(void)
{
    hak_fork_locks_child();
    hak_stats_fork_child();
    tiny_fork_child();
    pool_fork_child();
    large_fork_child();
    hak_lock_init(&threads_lock);
    hak_lock_init(&init_lock);
    bool interrupted = hak_fork_locks_kept();
    hak_fork_locks_end();
    if (fork_took_list_lock)
        _IO_list_resetlock(); /* glibc did; again, harmlessly */
    /* What the parent's other threads held is adopted later, once the
     * child allocates in earnest (hak_adopt_check): a child that only calls
     * exec or _exit never touches those caches, which would copy every page
     * they sit on.  Not after a fork() that interrupted hakmem itself (in a
     * signal handler): the tiers' state is half updated and some locks are
     * the interrupted code's, so the other threads' caches are left alone
     * (memory the child frees into them is not reused). */
    struct hak_thread *self = &hak_thread, *t = threads;
    threads = NULL;
    orphans = NULL;
    while (t) {
        struct hak_thread *next = t->next;
        if (t != self && !interrupted) {
            t->prev = NULL;
            t->next = orphans;
            orphans = t;
        }
        t = next;
    }
    /* Directly, not with threads_add: after a fork() in a signal handler,
     * threads_lock may be the interrupted code's. */
    self->prev = self->next = NULL;
    if (self->state == HAK_THREAD_ACTIVE)
        threads = self;
    atomic_store_explicit(&hak_adopt_countdown, orphans ? HAK_ADOPT_AFTER : 0,
                          memory_order_relaxed);
}

void hak_adopt_orphans(void)
{
    hak_lock(&threads_lock);
    struct hak_thread *t = orphans;
    orphans = NULL;
    atomic_store_explicit(&hak_adopt_countdown, 0, memory_order_relaxed);
    hak_unlock(&threads_lock);
    while (t) {
        struct hak_thread *next = t->next;
        t->next = NULL;
        /* A copy taken mid-update (no lock guards a thread's own caches and
         * slab lists): the tiers' orphan functions follow nothing blindly. */
        t->state = HAK_THREAD_DEAD;
        tiny_thread_orphan(&t->tiny);
#ifdef HAKMEM_POOL_TLS
        pool_tls_thread_orphan(&t->pool);
#endif
        hak_stats_thread_exit(&t->counters);
        t = next;
    }
}

/* Registers the hooks that may themselves allocate: called once hakmem can
 * serve, so their malloc calls land in a working allocator.  Without a
 * thread-exit key (all keys taken) threads never get caches of their own;
 * without fork handlers, fork() in a multithreaded program is unsafe. */
static void register_hooks(void)
{
    int expected = 0;
    atomic_store(&hooks_pid, getpid()); /* the same in every thread of a process */
    if (!atomic_compare_exchange_strong(&hooks_state, &expected, 1))
        return;
    hooks_registering = true;
    if (!atomic_load(&exit_key_made)) {
        exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
        if (!exit_key_ok)
            hak_warn("pthread_key_create failed: no per-thread caches");
        atomic_store(&exit_key_made, true);
    }
    if (!atomic_load(&atfork_made)) {
        if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
            hak_warn("pthread_atfork failed: fork() in a threaded program may hang");
        atomic_store(&atfork_made, true);
    }
    if (hak_opt.stats && stats_fd < 0) {
        stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        if (stats_fd >= 0)
            atexit(print_stats_at_exit);
    }
    hooks_registering = false;
    atomic_store(&hooks_state, 2);
}

/*
 * Waits until the hooks are registered before a thread takes caches of its
 * own.  Meanwhile it would allocate through the shared orphan cache, under
 * its lock, with no fork handlers in place yet: a fork() in another thread
 * (a program forking while its threads make their first allocations) left
 * that lock held in the child, whose first allocation then waited forever
 * (test_faults fork_under_load, about one run in ten under ASan).  In a
 * child of a fork() made while another thread was registering them, that
 * thread does not exist: this one registers what is missing.  (The
 * registering thread's own allocations do not wait.)
 */
static void hooks_wait(void)
{
    for (;;) {
        int s = atomic_load(&hooks_state);
        if (s == 2 || hooks_registering)
            return;
        if (s == 0) {
            register_hooks();
        } else if (atomic_load(&hooks_pid) != getpid()) {
            int one = 1; /* registering in the parent, which this is not */
            atomic_compare_exchange_strong(&hooks_state, &one, 0);
        } else {
            sched_yield();
        }
    }
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

/*
 * At load, right after the registry's reservation: hakmem initializes, and
 * registers its fork and thread-exit hooks, before the program can start a
 * thread.  Lazily, at the first allocation, a thread could hold init_lock
 * (or be between the initialization and the hooks) while another forked: the
 * child inherited the lock held, with no fork handler to reset it, and its
 * first allocation waited forever (test_faults fork_under_load under ASan,
 * where the test's workers make the process's first allocations while the
 * main thread forks: one run in nine).  The lazy path stays for allocations
 * made before this runs (other libraries' constructors).
 */
__attribute__((constructor(102))) static void init_at_load(void)
{
    hak_init_slow();
}

void hak_thread_activate(void)
{
    struct hak_thread *t = &hak_thread;
    if (t->state != HAK_THREAD_NEW)
        return;
    hooks_wait();
    if (atomic_load(&hooks_state) != 2)
        return; /* the thread registering them: it activates later */
    if (!exit_key_ok) {
        t->state = HAK_THREAD_DEAD; /* nothing would give caches back */
        return;
    }
    /* ACTIVE first: pthread_setspecific may itself calloc (keys past the
     * first 32), which then finds this thread active, not NEW again. */
    t->state = HAK_THREAD_ACTIVE;
    hak_stats_thread_start(&t->counters);
    threads_add(t);
    if (pthread_setspecific(exit_key, t) != 0) {
        /* No exit hook: give back at once what the thread got meanwhile. */
        threads_remove(t);
        thread_release(t);
    }
}
