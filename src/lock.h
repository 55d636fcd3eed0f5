/*
 * lock.h - the one kind of lock hakmem takes: every global lock in every tier
 * is a struct hak_lock, so that fork() handling (lifecycle.c) can reason about
 * all of them in one place.
 */
#ifndef HAKMEM_LOCK_H
#define HAKMEM_LOCK_H

#include "internal.h"
#include <pthread.h>

struct hak_lock {
    pthread_mutex_t m;
};

#define HAK_LOCK_INITIALIZER { PTHREAD_MUTEX_INITIALIZER }

HAK_INLINE void hak_lock_init(struct hak_lock *l)
{
    pthread_mutex_init(&l->m, NULL);
}

HAK_INLINE void hak_lock(struct hak_lock *l)
{
    pthread_mutex_lock(&l->m);
}

HAK_INLINE void hak_unlock(struct hak_lock *l)
{
    pthread_mutex_unlock(&l->m);
}

#endif
