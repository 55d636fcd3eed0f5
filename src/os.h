/*
 * os.h - every call hakmem makes to the kernel for memory: chunk-aligned
 * mappings, unmapping, resizing and purging.  Counted for hak_stats.
 */
#ifndef HAKMEM_OS_H
#define HAKMEM_OS_H

#include "internal.h"

/* Maps `size` bytes (a multiple of HAK_PAGE_SIZE) aligned to `align` (a power
 * of two, a multiple of HAK_CHUNK_SIZE), read-write, zero-filled.  Returns
 * NULL on failure. */
HAK_HIDDEN void *hak_os_map_aligned(size_t size, size_t align);
/* hak_os_map_aligned(size, HAK_CHUNK_SIZE). */
HAK_HIDDEN void *hak_os_map_chunks(size_t size);
/* Maps `size` bytes with no alignment promise (internal metadata). */
HAK_HIDDEN void *hak_os_map(size_t size);
HAK_HIDDEN void hak_os_unmap(void *p, size_t size);
/* Gives the pages back to the kernel; the range stays mapped and reads zero. */
HAK_HIDDEN void hak_os_purge(void *p, size_t size);
/* Backs [p, p + size) with memory now, in one call, for a range about to be
 * written end to end: one kernel entry instead of a page fault per page
 * (MADV_POPULATE_WRITE, Linux 5.14).  A hint: on an older kernel, or when
 * memory is short, the pages fault in as they are touched instead. */
HAK_HIDDEN void hak_os_populate(void *p, size_t size);
/* Keeps transparent huge pages off [p, p + size): for mappings whose pages
 * may stay partly untouched, which a huge page would make wholly resident. */
HAK_HIDDEN void hak_os_no_huge_pages(void *p, size_t size);
/* Grows or shrinks the chunk-aligned mapping at p from old_size to new_size
 * (both multiples of HAK_PAGE_SIZE), moving it to a new chunk-aligned address
 * if it cannot stay.  Returns the new address or NULL (the old one is intact). */
HAK_HIDDEN void *hak_os_remap_chunks(void *p, size_t old_size, size_t new_size);

#endif
