/*
 * lock.h - the one kind of lock hakmem takes: every global lock in every tier
 * is a struct hak_lock, so that fork() handling (lifecycle.c, lock.c) treats
 * all of them in one place.
 *
 * A hak_lock is a futex lock whose word holds its holder's thread tag (a
 * per-thread number, never 0), set atomically with the acquisition: "does
 * this thread hold it?" has an exact answer even in a signal handler that
 * interrupted the thread anywhere, which fork() from a signal handler needs.
 *
 * Around fork() the lock is fork-aware (see lock.c): while the forking thread
 * runs the fork handlers it holds every hak_lock, so its own hak_lock and
 * hak_unlock calls (malloc from other libraries' fork handlers) pass through;
 * any other thread blocks as usual.  That costs one relaxed load per lock
 * operation; locks are off the fast paths.
 */
#ifndef HAKMEM_LOCK_H
#define HAKMEM_LOCK_H

#include "internal.h"

#include <stdatomic.h>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define HAK_TSAN_PRE_LOCK(l) __tsan_mutex_pre_lock((l), 0)
#define HAK_TSAN_POST_LOCK(l) __tsan_mutex_post_lock((l), 0, 0)
#define HAK_TSAN_PRE_UNLOCK(l) __tsan_mutex_pre_unlock((l), 0)
#define HAK_TSAN_POST_UNLOCK(l) __tsan_mutex_post_unlock((l), 0)
#else
#define HAK_TSAN_PRE_LOCK(l) ((void)0)
#define HAK_TSAN_POST_LOCK(l) ((void)0)
#define HAK_TSAN_PRE_UNLOCK(l) ((void)0)
#define HAK_TSAN_POST_UNLOCK(l) ((void)0)
#endif

/* The lock word: 0 when free, else the holder's tag, with this bit set when
 * a thread may be waiting in the kernel. */
#define HAK_LOCK_WAITERS 0x80000000u

struct hak_lock {
    _Atomic uint32_t word;
    /* At fork: the forking thread already held this lock when fork() began
     * (fork() from a signal handler): it was not taken, and stays with the
     * interrupted code, which releases it. */
    bool fork_kept;
};

#define HAK_LOCK_INITIALIZER { 0, false }

/* This thread's tag (0 until its first lock); stays the same in a child. */
extern HAK_HIDDEN __thread uint32_t hak_lock_tag __attribute__((tls_model("initial-exec")));
/* The forking thread's tag while it runs hakmem's fork handlers, else 0. */
extern HAK_HIDDEN _Atomic uint32_t hak_fork_tag;

HAK_HIDDEN uint32_t hak_lock_tag_new(void);
HAK_HIDDEN void hak_lock_wait(struct hak_lock *l, uint32_t self);
HAK_HIDDEN void hak_lock_wake(struct hak_lock *l);
HAK_HIDDEN void hak_lock_at_fork(struct hak_lock *l);
HAK_HIDDEN void hak_unlock_at_fork(struct hak_lock *l);
HAK_HIDDEN void hak_lock_init(struct hak_lock *l);

HAK_INLINE uint32_t hak_self_tag(void)
{
    uint32_t t = hak_lock_tag;
    return HAK_LIKELY(t) ? t : hak_lock_tag_new();
}

HAK_INLINE void hak_lock(struct hak_lock *l)
{
    uint32_t self = hak_self_tag();
    if (HAK_UNLIKELY(atomic_load_explicit(&hak_fork_tag, memory_order_relaxed) == self)) {
        hak_lock_at_fork(l);
        return;
    }
    HAK_TSAN_PRE_LOCK(l);
    uint32_t free_word = 0;
    if (HAK_UNLIKELY(!atomic_compare_exchange_strong_explicit(
            &l->word, &free_word, self, memory_order_acquire, memory_order_relaxed)))
        hak_lock_wait(l, self);
    HAK_TSAN_POST_LOCK(l);
}

HAK_INLINE void hak_unlock(struct hak_lock *l)
{
    if (HAK_UNLIKELY(atomic_load_explicit(&hak_fork_tag, memory_order_relaxed) ==
                     hak_self_tag())) {
        hak_unlock_at_fork(l);
        return;
    }
    HAK_TSAN_PRE_UNLOCK(l);
    uint32_t old = atomic_exchange_explicit(&l->word, 0, memory_order_release);
    if (HAK_UNLIKELY(old & HAK_LOCK_WAITERS))
        hak_lock_wake(l);
    HAK_TSAN_POST_UNLOCK(l);
}

/* Whether the calling thread holds l. */
HAK_INLINE bool hak_lock_held_by_me(struct hak_lock *l)
{
    return (atomic_load_explicit(&l->word, memory_order_relaxed) & ~HAK_LOCK_WAITERS) ==
           hak_self_tag();
}

/* The fork phases, driven by lifecycle.c's fork handlers (the forking
 * thread only, while it holds no hak_lock of its own making):
 *   hak_fork_locks_begin   prepare: hak_lock takes each lock, except those
 *                          this thread already holds (kept);
 *   hak_fork_locks_held    all taken: this thread's lock ops pass through;
 *   hak_fork_locks_parent  parent: hak_unlock releases what was taken;
 *   hak_fork_locks_child   child: hak_lock_init frees what was taken;
 *   hak_fork_locks_end     back to normal locking. */
HAK_HIDDEN void hak_fork_locks_begin(void);
HAK_HIDDEN void hak_fork_locks_held(void);
HAK_HIDDEN void hak_fork_locks_parent(void);
HAK_HIDDEN void hak_fork_locks_child(void);
HAK_HIDDEN void hak_fork_locks_end(void);
/* Whether the current (or last) fork kept a lock for the interrupted code. */
HAK_HIDDEN bool hak_fork_locks_kept(void);

#endif
