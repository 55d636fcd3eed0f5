/*
 * lock.c - the slow paths of struct hak_lock (waiting in the kernel, thread
 * tags) and its behaviour around fork() (see lock.h).
 */
#include "lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread uint32_t hak_lock_tag __attribute__((tls_model("initial-exec")));
_Atomic uint32_t hak_fork_tag;

static _Atomic uint32_t next_tag;

/* What the forking thread's lock operations do now (only it reads or writes
 * this, while hak_fork_tag names it). */
enum fork_phase { PHASE_NONE, PHASE_TAKING, PHASE_HELD, PHASE_PARENT, PHASE_CHILD };
static enum fork_phase phase;
static bool kept_any; /* some lock of the current fork was kept */

uint32_t hak_lock_tag_new(void)
{
    uint32_t t;
    do /* 31 bits, never 0: wraps only after 2^31 threads */
        t = (atomic_fetch_add_explicit(&next_tag, 1, memory_order_relaxed) + 1) &
            ~HAK_LOCK_WAITERS;
    while (t == 0);
    hak_lock_tag = t;
    return t;
}

/* Spins a little (a holder usually leaves within a few hundred cycles), then
 * sleeps on the futex with the waiters bit set. */
void hak_lock_wait(struct hak_lock *l, uint32_t self)
{
    for (int spin = 0; spin < 100; spin++) {
        uint32_t c = 0;
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->word, &c, self, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        __builtin_ia32_pause();
    }
    for (;;) {
        uint32_t c = atomic_load_explicit(&l->word, memory_order_relaxed);
        if (c == 0) {
            /* Taken with the waiters bit: others may still sleep. */
            if (atomic_compare_exchange_weak_explicit(&l->word, &c, self | HAK_LOCK_WAITERS,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return;
            continue;
        }
        if (!(c & HAK_LOCK_WAITERS)) {
            if (!atomic_compare_exchange_weak_explicit(&l->word, &c, c | HAK_LOCK_WAITERS,
                                                       memory_order_relaxed,
                                                       memory_order_relaxed))
                continue;
            c |= HAK_LOCK_WAITERS;
        }
        syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, c, NULL, NULL, 0);
    }
}

void hak_lock_wake(struct hak_lock *l)
{
    syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void hak_lock_at_fork(struct hak_lock *l)
{
    if (phase != PHASE_TAKING)
        return; /* held since prepare: pass through */
    if (hak_lock_held_by_me(l)) {
        l->fork_kept = true; /* the interrupted code holds it: don't wait on ourselves */
        kept_any = true;
        return;
    }
    /* Not announced to ThreadSanitizer: taking every lock at once is the
     * point here, not a lock order the rest of the code follows. */
    uint32_t self = hak_self_tag(), free_word = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &free_word, self,
                                                 memory_order_acquire, memory_order_relaxed))
        hak_lock_wait(l, self);
}

void hak_unlock_at_fork(struct hak_lock *l)
{
    if (phase != PHASE_PARENT)
        return; /* held until the parent handler: pass through */
    if (l->fork_kept) {
        l->fork_kept = false;
        return;
    }
    if (atomic_exchange_explicit(&l->word, 0, memory_order_release) & HAK_LOCK_WAITERS)
        hak_lock_wake(l);
}

void hak_lock_init(struct hak_lock *l)
{
    if (atomic_load_explicit(&hak_fork_tag, memory_order_relaxed) == hak_self_tag() &&
        phase == PHASE_CHILD && l->fork_kept) {
        l->fork_kept = false; /* still the interrupted code's, which releases it */
        return;
    }
    /* In a child, nobody else is left to wait or to hold it. */
    atomic_store_explicit(&l->word, 0, memory_order_relaxed);
    l->fork_kept = false;
}

void hak_fork_locks_begin(void)
{
    phase = PHASE_TAKING;
    kept_any = false;
    atomic_store_explicit(&hak_fork_tag, hak_self_tag(), memory_order_relaxed);
}

bool hak_fork_locks_kept(void) { return kept_any; }
void hak_fork_locks_held(void) { phase = PHASE_HELD; }
void hak_fork_locks_parent(void) { phase = PHASE_PARENT; }
void hak_fork_locks_child(void) { phase = PHASE_CHILD; }

void hak_fork_locks_end(void)
{
    atomic_store_explicit(&hak_fork_tag, 0, memory_order_relaxed);
    phase = PHASE_NONE;
}
