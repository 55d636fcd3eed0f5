## bench/local.mk - the benchmarks and the allocator comparison (included by
## the top Makefile.am; paths are relative to the top of the tree).
##
## The benchmark programs call plain malloc/free and deliberately do NOT link
## libhakmem: bench/compare.py runs each of them under every allocator through
## LD_PRELOAD (glibc with no preload).  They are EXTRA_PROGRAMS, so plain
## `make` and `make check` do not build them; `make bench` does.
##
##   make bench                    build the benchmark programs
##   make bench-quick              quick comparison (< 2 min), results in bench-results/
##   make bench-compare            full comparison (< 15 min on 2 cores)
##   make bench-results            full comparison, written into the source tree
##                                 (bench/results/ and bench/README)
##   make bench-real               python3, sort, sqlite3 and clang++ under each allocator
##                                 (bench/realprogs.sh: time and peak RSS)
##   BENCH_COMPARE_FLAGS='--runs 5 --no-callgrind'  extra options for compare.py

BENCH_PROGS = \
	bench/bench_random_mixed \
	bench/bench_tiny_churn \
	bench/bench_cross_thread \
	bench/bench_larson \
	bench/bench_realloc \
	bench/bench_large \
	bench/bench_fragmentation \
	bench/bench_thread_scaling \
	bench/bench_fastpath \
	bench/bench_huge \
	bench/bench_prodcons \
	bench/bench_bursts \
	bench/bench_grow_churn

EXTRA_PROGRAMS += $(BENCH_PROGS)
CLEANFILES += $(BENCH_PROGS) \
	bench-results/latest.md bench-results/latest.json \
	bench-results/latest.dat bench-results/latest.png

bench_bench_random_mixed_SOURCES = bench/bench_random_mixed.c bench/bench_common.h
bench_bench_tiny_churn_SOURCES = bench/bench_tiny_churn.c bench/bench_common.h
bench_bench_cross_thread_SOURCES = bench/bench_cross_thread.c bench/bench_common.h
bench_bench_cross_thread_LDADD = $(PTHREAD_LIBS)
bench_bench_larson_SOURCES = bench/bench_larson.c bench/bench_common.h
bench_bench_larson_LDADD = $(PTHREAD_LIBS)
bench_bench_realloc_SOURCES = bench/bench_realloc.c bench/bench_common.h
bench_bench_large_SOURCES = bench/bench_large.c bench/bench_common.h
bench_bench_fragmentation_SOURCES = bench/bench_fragmentation.c bench/bench_common.h
bench_bench_thread_scaling_SOURCES = bench/bench_thread_scaling.c bench/bench_common.h
bench_bench_thread_scaling_LDADD = $(PTHREAD_LIBS)
bench_bench_fastpath_SOURCES = bench/bench_fastpath.c bench/bench_common.h
bench_bench_huge_SOURCES = bench/bench_huge.c bench/bench_common.h
bench_bench_prodcons_SOURCES = bench/bench_prodcons.c bench/bench_common.h
bench_bench_prodcons_LDADD = $(PTHREAD_LIBS)
bench_bench_bursts_SOURCES = bench/bench_bursts.c bench/bench_common.h
bench_bench_grow_churn_SOURCES = bench/bench_grow_churn.c bench/bench_common.h

EXTRA_DIST += bench/README bench/compare.py bench/compare.sh bench/scaling.sh \
	bench/realprogs.sh bench/allocators.sh

BENCH_COMPARE_FLAGS =
BENCH_COMPARE = BENCH_COMPARE_FLAGS='$(BENCH_COMPARE_FLAGS)' nice -n 10 \
	$(SHELL) $(srcdir)/bench/compare.sh \
	--bench-dir $(abs_top_builddir)/bench \
	--hakmem $(abs_top_builddir)/.libs/libhakmem.so.0

bench: $(BENCH_PROGS)

bench-quick: bench libhakmem.la
	BENCH_COMMAND='make bench-quick' $(BENCH_COMPARE) \
	  --quick --out-dir bench-results $(BENCH_COMPARE_FLAGS)

bench-compare: bench libhakmem.la
	BENCH_COMMAND='make bench-compare' $(BENCH_COMPARE) \
	  --out-dir bench-results $(BENCH_COMPARE_FLAGS)

bench-results: bench libhakmem.la
	BENCH_COMMAND='make bench-results' $(BENCH_COMPARE) \
	  --out-dir $(srcdir)/bench/results \
	  --update-readme $(srcdir)/bench/README $(BENCH_COMPARE_FLAGS)

bench-real: libhakmem.la
	$(SHELL) $(srcdir)/bench/realprogs.sh $(abs_top_srcdir) \
	  $(abs_top_builddir)/.libs/libhakmem.so.0

.PHONY: bench bench-quick bench-compare bench-results bench-real
