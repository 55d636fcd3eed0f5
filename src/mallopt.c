/*
 * mallopt.c - glibc's tuning call mallopt(3), for programs written for glibc.
 * hakmem's tuning is read from HAKMEM_* variables once at initialization
 * (hakmem(7)) and its tier limits are compile-time constants, so no mallopt
 * parameter changes hakmem's behaviour: the parameters glibc knows are
 * accepted with the values glibc accepts (return 1) and ignored; a value
 * glibc refuses returns 0, as glibc does, and so does an unknown parameter
 * (glibc 2.36 returns 1 for it, but does nothing either: 0 tells the
 * caller the truth).  hakmem(3)
 * lists each parameter and the hakmem option nearest to it.
 */
#include "internal.h"
#include "hakmem.h"

#include <malloc.h>

/* glibc's bounds (malloc/malloc.c): M_MXFAST up to 80 * sizeof(size_t) / 4,
 * M_MMAP_THRESHOLD up to 4 MiB * sizeof(long). */
#define GLIBC_MXFAST_MAX (80 * sizeof(size_t) / 4)
#define GLIBC_MMAP_THRESHOLD_MAX (4 * 1024 * 1024 * sizeof(long))

int hak_mallopt(int param, int value)
{
    switch (param) {
    case M_MXFAST:
        return value >= 0 && (size_t)value <= GLIBC_MXFAST_MAX;
    case M_MMAP_THRESHOLD:
        return value >= 0 && (size_t)value <= GLIBC_MMAP_THRESHOLD_MAX;
    case M_ARENA_TEST:
    case M_ARENA_MAX:
    case M_TRIM_THRESHOLD:
    case M_TOP_PAD:
    case M_MMAP_MAX:
    case M_CHECK_ACTION:
    case M_PERTURB:
        return 1;
    default:
        return 0;
    }
}
