/*
 * valgrind_hooks.h - memcheck client requests (./configure --enable-valgrind,
 * which defines HAKMEM_VALGRIND).  Blocks handed to the program are announced
 * as malloc-like, freed blocks as free-like, so memcheck reports leaks and
 * invalid accesses of programs running on hakmem.  Without the option every
 * macro is empty.
 */
#ifndef HAKMEM_VALGRIND_HOOKS_H
#define HAKMEM_VALGRIND_HOOKS_H

#ifdef HAKMEM_VALGRIND
#include <valgrind/memcheck.h>
#define HAK_VG_MALLOC(p, size, zeroed) VALGRIND_MALLOCLIKE_BLOCK((p), (size), 0, (zeroed))
#define HAK_VG_FREE(p) VALGRIND_FREELIKE_BLOCK((p), 0)
/* Lets hakmem itself touch a free block, then closes it again. */
#define HAK_VG_OPEN(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#define HAK_VG_CLOSE(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
/* Brackets hakmem's own reads past a block's requested size. */
#define HAK_VG_QUIET_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define HAK_VG_QUIET_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define HAK_VG_MALLOC(p, size, zeroed) ((void)0)
#define HAK_VG_FREE(p) ((void)0)
#define HAK_VG_OPEN(p, n) ((void)0)
#define HAK_VG_CLOSE(p, n) ((void)0)
#define HAK_VG_QUIET_BEGIN() ((void)0)
#define HAK_VG_QUIET_END() ((void)0)
#endif

#endif
