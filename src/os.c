/*
 * os.c - the kernel interface: chunk-aligned mmap, munmap, mremap and madvise.
 * Counted for HAKMEM_STATS as calls of the interface (an aligned mapping may
 * take more than one system call).
 */
#include "os.h"
#include "stats.h"

#include <errno.h>
#include <sys/mman.h>

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

/* The kernel orders the changes of the address space: memory one thread
 * gives up (munmap, an mremap that moves or shrinks) is another's only
 * after that.  ThreadSanitizer does not see it for mremap (no interceptor),
 * so a block reused through mremap (grown in place over what another thread
 * gave up) would read as a race with that thread's last accesses.  Giving
 * up memory is a release, gaining it an acquire, of one sync address. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
static char os_sync;
#define OS_GIVE_UP() __tsan_release(&os_sync)
#define OS_GAINED() __tsan_acquire(&os_sync)
#else
#define OS_GIVE_UP() ((void)0)
#define OS_GAINED() ((void)0)
#endif

void *hak_os_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    hak_stats_count_mmap();
    return p;
}

/* Over-maps by `align`, then trims the misaligned head and the tail.
 * `size` need only be a multiple of the page size. */
void *hak_os_map_aligned(size_t size, size_t align)
{
    /* Try the exact size first: the kernel often places it aligned already. */
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (((uintptr_t)p & (align - 1)) == 0) {
        hak_stats_count_mmap();
        return p;
    }
    munmap(p, size);
    if (size > SIZE_MAX - align)
        return NULL;
    size_t over = size + align;
    p = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *aligned = (char *)hak_align_up((uintptr_t)p, align);
    size_t head = (size_t)(aligned - p);
    if (head)
        munmap(p, head);
    size_t tail = over - head - size;
    if (tail)
        munmap(aligned + size, tail);
    hak_stats_count_mmap();
    return aligned;
}

void *hak_os_map_chunks(size_t size)
{
    return hak_os_map_aligned(size, HAK_CHUNK_SIZE);
}

void hak_os_unmap(void *p, size_t size)
{
    int saved = errno;
    OS_GIVE_UP();
    munmap(p, size);
    hak_stats_count_munmap();
    errno = saved;
}

void hak_os_purge(void *p, size_t size)
{
    int saved = errno;
    madvise(p, size, MADV_DONTNEED);
    hak_stats_count_purge();
    errno = saved;
}

void hak_os_populate(void *p, size_t size)
{
#ifdef MADV_POPULATE_WRITE
    int saved = errno;
    madvise(p, size, MADV_POPULATE_WRITE);
    errno = saved;
#else
    (void)p;
    (void)size;
#endif
}

void hak_os_no_huge_pages(void *p, size_t size)
{
#ifdef MADV_NOHUGEPAGE
    int saved = errno;
    madvise(p, size, MADV_NOHUGEPAGE);
    errno = saved;
#else
    (void)p;
    (void)size;
#endif
}

void *hak_os_remap_chunks(void *p, size_t old_size, size_t new_size)
{
    int saved = errno;
    /* In place first: shrinking always works, growing if the range is free. */
    hak_stats_count_remap();
    OS_GIVE_UP();
    void *q = mremap(p, old_size, new_size, 0);
    if (q != MAP_FAILED) {
        OS_GAINED();
        return q;
    }
    /* Reserve an aligned destination, then let the kernel move the pages
     * there without copying them. */
    void *dst = hak_os_map_chunks(new_size);
    if (!dst) {
        errno = saved;
        return NULL;
    }
    q = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    if (q == MAP_FAILED) {
        hak_os_unmap(dst, new_size);
        errno = saved;
        return NULL;
    }
    OS_GAINED();
    errno = saved;
    return q;
}
