## tests/hardening.mk - the hardening tests run by `make check` (included by
## the top Makefile.am; paths are relative to the top directory).
##
##   tests/test_stress       model-based stress: threads, random malloc family
##                           calls, tagged blocks handed across threads
##                           (HAKMEM_STRESS_OPS, default 10 million)
##   tests/test_misuse       interior pointers, double frees, corrupted free
##                           lists: one `hakmem: ...` line and abort()
##   tests/test_faults       RLIMIT_AS exhaustion and recovery, 10,000-thread
##                           churn with bounded RSS, 1,000 forks under load
##   tests/test_tiny_trim    malloc_trim(0) gives back tiny memory that other
##                           threads freed into slabs of live threads; memory
##                           backed ahead for bulk carving stays bounded
##   tests/test_valgrind.sh  memcheck sees leaks and use-after-free on hakmem
##                           (only with --enable-valgrind; otherwise skipped)
## .ci/sanitize builds these and the other Check suites with ASan+UBSan and
## TSan; .ci/run calls it.

hakmem_hardening_cflags = $(hakmem_test_cflags)
hakmem_hardening_cppflags = -I$(top_srcdir)/include
hakmem_hardening_ldadd = libhakmem.la $(CHECK_LIBS) $(PTHREAD_LIBS)

if HAVE_CHECK
hakmem_hardening_tests = \
	tests/test_stress \
	tests/test_misuse \
	tests/test_faults \
	tests/test_tiny_trim
check_PROGRAMS += $(hakmem_hardening_tests)
TESTS += $(hakmem_hardening_tests)

tests_test_stress_SOURCES = tests/test_stress.c
tests_test_stress_CPPFLAGS = $(hakmem_hardening_cppflags)
tests_test_stress_CFLAGS = $(hakmem_hardening_cflags)
tests_test_stress_LDADD = $(hakmem_hardening_ldadd)

tests_test_misuse_SOURCES = tests/test_misuse.c tests/test_util.h
## _GNU_SOURCE on the command line: dl_iterate_phdr, even where .ci/sanitize
## force-includes a header before the source's first line.
tests_test_misuse_CPPFLAGS = $(hakmem_hardening_cppflags) -D_GNU_SOURCE
tests_test_misuse_CFLAGS = $(hakmem_hardening_cflags)
tests_test_misuse_LDADD = $(hakmem_hardening_ldadd)

tests_test_faults_SOURCES = tests/test_faults.c tests/test_util.h
tests_test_faults_CPPFLAGS = $(hakmem_hardening_cppflags)
tests_test_faults_CFLAGS = $(hakmem_hardening_cflags)
tests_test_faults_LDADD = $(hakmem_hardening_ldadd)

tests_test_tiny_trim_SOURCES = tests/test_tiny_trim.c
tests_test_tiny_trim_CPPFLAGS = $(hakmem_hardening_cppflags)
tests_test_tiny_trim_CFLAGS = $(hakmem_hardening_cflags)
tests_test_tiny_trim_LDADD = $(hakmem_hardening_ldadd)
endif

## valgrind: the same program linked with hakmem and plain (for LD_PRELOAD).
check_PROGRAMS += tests/vg_misuse tests/vg_plain
tests_vg_misuse_SOURCES = tests/vg_misuse.c
tests_vg_misuse_CFLAGS = $(hakmem_hardening_cflags)
tests_vg_misuse_LDADD = libhakmem.la $(PTHREAD_LIBS)
tests_vg_plain_SOURCES = tests/vg_misuse.c
tests_vg_plain_CFLAGS = $(hakmem_hardening_cflags)
tests_vg_plain_LDADD = $(PTHREAD_LIBS)
TESTS += tests/test_valgrind.sh

if VALGRIND
hakmem_valgrind_configured = yes
else
hakmem_valgrind_configured = no
endif
AM_TESTS_ENVIRONMENT += \
	HAKMEM_VALGRIND_CONFIGURED=$(hakmem_valgrind_configured); \
	export HAKMEM_VALGRIND_CONFIGURED;

EXTRA_DIST += tests/test_valgrind.sh .ci/sanitize
