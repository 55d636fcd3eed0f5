/* thp_shim - a preloaded library that applies MADV_HUGEPAGE to every anonymous
 * mapping made through mmap(), so that a machine running THP=madvise behaves
 * like one running THP=always (RHEL's and Fedora's default).  Used by
 * tests/memory.sh to check that hakmem's sparse mappings stay off huge pages.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/types.h>

typedef void *mmap_fn(void *, size_t, int, int, int, off_t);

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static mmap_fn *real;
    if (!real)
        real = (mmap_fn *)dlsym(RTLD_NEXT, "mmap");
    void *p = real(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && (flags & MAP_ANONYMOUS)) {
        int saved = errno;
        madvise(p, len, MADV_HUGEPAGE);
        errno = saved;
    }
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));
