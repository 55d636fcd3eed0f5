## tests/consumers.mk - programs built against the *installed* hakmem
## (included by the top Makefile.am).
##
## tests/consumers.sh installs this build tree with
## `make install DESTDIR=<temporary directory>`, then, using nothing but
## `pkg-config --cflags --libs hakmem` pointed into that DESTDIR, builds
## tests/consumer-api.c once against the shared library and once statically
## (`pkg-config --static --libs`), and runs a plain program
## (tests/consumer-plain.c) with only LD_PRELOAD of the installed
## libhakmem.so.0 and HAKMEM_STATS=1.  Each run must show that its
## allocations came from hakmem.  The temporary directory is removed again,
## so this works under `make distcheck` (read-only srcdir, VPATH build).

hakmem_consumer_tests = tests/consumers.sh
TESTS += $(hakmem_consumer_tests)
EXTRA_DIST += $(hakmem_consumer_tests) tests/consumer-api.c tests/consumer-plain.c

## What the script needs from this build, written next to it in the build
## tree (the script itself stays a plain, distributed file).
check_DATA = tests/consumer.env
CLEANFILES += tests/consumer.env
tests/consumer.env: Makefile
	$(AM_V_GEN)$(MKDIR_P) tests && { \
	  echo "MAKE='$(MAKE)'"; \
	  echo "CC='$(CC)'"; \
	  echo "CPPFLAGS='$(CPPFLAGS)'"; \
	  echo "CFLAGS='$(CFLAGS)'"; \
	  echo "LDFLAGS='$(LDFLAGS)'"; \
	  echo "EXEEXT='$(EXEEXT)'"; \
	  echo "PKG_CONFIG='$(PKG_CONFIG)'"; \
	  echo "VERSION='$(VERSION)'"; \
	  echo "libdir='$(libdir)'"; \
	  echo "includedir='$(includedir)'"; \
	  echo "abs_top_builddir='$(abs_top_builddir)'"; \
	  echo "abs_top_srcdir='$(abs_top_srcdir)'"; \
	} >$@-t && mv -f $@-t $@

## The RPM spec file, made from hakmem.spec.in by configure, ships inside the
## dist tarball so that `rpmbuild -tb hakmem-$(VERSION).tar.xz` (or .tar.gz)
## works (hakmem.spec.in itself is distributed by Automake as a configure
## input).
EXTRA_DIST += hakmem.spec
