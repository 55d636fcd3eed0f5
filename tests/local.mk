## tests/local.mk - the Check suites and the real-program test run by
## `make check` (included by the top Makefile.am; paths are relative to the
## top directory).
##
##   tests/test_contract  the C API contract (alignment, sizes, errors, realloc,
##                        memalign family, usable size, stats per tier)
##   tests/test_threads   cross-thread frees, frees after the owner exited,
##                        thousands of short-lived threads
##   tests/test_fork      fork from a multithreaded process, fork in a handler
##   tests/test_badfree   invalid pointers are reported and abort
##   tests/test_glibc     glibc's contract that programs rely on: realloc(p, 0),
##                        realloc in place, memalign-family errors, mallopt,
##                        malloc_stats, malloc_info
##   tests/test_keys      every pthread key taken before hakmem starts: threads
##                        still work, another library's key is left alone
##   tests/test_static_link  a fully static program calling mallopt,
##                        malloc_stats and malloc_info links with libhakmem.a
##   tests/test_pool      the pool tier's memory: RSS of threads holding one
##                        block, no purge in a churn, purge on malloc_trim
##   tests/test_pages     the large tier and its page-run layer: placement,
##                        coalescing, realloc in place, misuse, trim, threads
##   tests/test_cxx       C++'s operator new and delete (hakmem's, with -lhakmem):
##                        every form, bad_alloc and the new-handler, threads
##   tests/realprog.sh    python3, sort, sqlite3 under LD_PRELOAD of hakmem
##   tests/memory.sh      address space, RSS, system calls and huge pages

## Real programs find the built library and the test data through these.
AM_TESTS_ENVIRONMENT = \
	abs_top_builddir='$(abs_top_builddir)'; \
	abs_top_srcdir='$(abs_top_srcdir)'; \
	export abs_top_builddir abs_top_srcdir;

## The compiler must not fold or drop the allocations the tests make, nor
## assume what the allocation functions do to errno: -fno-builtin, not a
## list of functions (clang 14 still took memalign and aligned_alloc for
## functions that leave errno alone with -fno-builtin-memalign and
## -fno-builtin-aligned_alloc, and the tests check errno after them).
hakmem_test_nobuiltin = -fno-builtin
hakmem_test_cflags = $(AM_CFLAGS) $(CHECK_CFLAGS) -pthread $(hakmem_test_nobuiltin)
hakmem_test_cppflags = -I$(top_srcdir)/include
hakmem_test_ldadd = libhakmem.la $(CHECK_LIBS) $(PTHREAD_LIBS)

if HAVE_CHECK
hakmem_check_tests = \
	tests/test_contract \
	tests/test_threads \
	tests/test_fork \
	tests/test_badfree \
	tests/test_glibc \
	tests/test_pool \
	tests/test_pages
check_PROGRAMS += $(hakmem_check_tests)
TESTS += $(hakmem_check_tests)

tests_test_contract_SOURCES = tests/test_contract.c tests/test_util.h
tests_test_contract_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_contract_CFLAGS = $(hakmem_test_cflags)
tests_test_contract_LDADD = $(hakmem_test_ldadd)

tests_test_threads_SOURCES = tests/test_threads.c tests/test_rng.h tests/test_util.h
tests_test_threads_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_threads_CFLAGS = $(hakmem_test_cflags)
tests_test_threads_LDADD = $(hakmem_test_ldadd)

tests_test_fork_SOURCES = tests/test_fork.c tests/test_rng.h tests/test_util.h
tests_test_fork_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_fork_CFLAGS = $(hakmem_test_cflags)
tests_test_fork_LDADD = $(hakmem_test_ldadd)

tests_test_badfree_SOURCES = tests/test_badfree.c tests/test_util.h
tests_test_badfree_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_badfree_CFLAGS = $(hakmem_test_cflags)
tests_test_badfree_LDADD = $(hakmem_test_ldadd)

tests_test_glibc_SOURCES = tests/test_glibc.c tests/test_util.h
tests_test_glibc_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_glibc_CFLAGS = $(hakmem_test_cflags)
tests_test_glibc_LDADD = $(hakmem_test_ldadd)
tests_test_pool_SOURCES = tests/test_pool.c tests/test_util.h
tests_test_pool_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_pool_CFLAGS = $(hakmem_test_cflags)
tests_test_pool_LDADD = $(hakmem_test_ldadd)
tests_test_pages_SOURCES = tests/test_pages.c tests/test_rng.h tests/test_util.h
tests_test_pages_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_pages_CFLAGS = $(hakmem_test_cflags)
tests_test_pages_LDADD = $(hakmem_test_ldadd)
endif

## Plain programs (no Check: they must run before anything allocates).
check_PROGRAMS += tests/test_keys
TESTS += tests/test_keys
tests_test_keys_SOURCES = tests/test_keys.c
tests_test_keys_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_keys_CFLAGS = $(hakmem_test_cflags)
tests_test_keys_LDADD = libhakmem.la $(PTHREAD_LIBS)

## Fully static (libtool's -all-static): libhakmem.a and libc.a together.
check_PROGRAMS += tests/test_static_link
TESTS += tests/test_static_link
tests_test_static_link_SOURCES = tests/test_static_link.c
tests_test_static_link_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_static_link_CFLAGS = $(hakmem_test_cflags)
tests_test_static_link_LDFLAGS = -all-static
tests_test_static_link_LDADD = libhakmem.la $(PTHREAD_LIBS)

if HAVE_CXX
check_PROGRAMS += tests/test_cxx
TESTS += tests/test_cxx
tests_test_cxx_SOURCES = tests/test_cxx.cc
tests_test_cxx_CPPFLAGS = $(hakmem_test_cppflags)
tests_test_cxx_CXXFLAGS = -Wall -Wextra -pthread
tests_test_cxx_LDADD = libhakmem.la $(PTHREAD_LIBS)
endif

TESTS += tests/realprog.sh
EXTRA_DIST += tests/realprog.sh tests/alloc_heavy.py

## tests/memory.sh: address space, RSS, system calls and huge pages (see its
## header), with tests/mem_probe (plain malloc, run under LD_PRELOAD) and
## tests/thp_shim.so (MADV_HUGEPAGE on every mapping, preloaded).
check_PROGRAMS += tests/mem_probe
tests_mem_probe_SOURCES = tests/mem_probe.c
tests_mem_probe_CFLAGS = $(AM_CFLAGS) $(hakmem_test_nobuiltin)
tests_mem_probe_LDADD = $(PTHREAD_LIBS)
check_LTLIBRARIES = tests/thp_shim.la
tests_thp_shim_la_SOURCES = tests/thp_shim.c
tests_thp_shim_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
tests_thp_shim_la_LIBADD = -ldl
TESTS += tests/memory.sh
EXTRA_DIST += tests/memory.sh
