/*
 * registry.c - reservation and update of the chunk registry.
 */
#include "registry.h"
#include "os.h"

#include <sys/mman.h>

unsigned char *hak_registry;

bool hak_registry_init(void)
{
    if (__atomic_load_n(&hak_registry, __ATOMIC_ACQUIRE))
        return true;
    void *p = mmap(NULL, HAK_REGISTRY_ENTRIES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    /* Sparse: a huge page would make 2 MiB resident per byte touched. */
    hak_os_no_huge_pages(p, HAK_REGISTRY_ENTRIES);
    unsigned char *expected = NULL;
    if (!__atomic_compare_exchange_n(&hak_registry, &expected, (unsigned char *)p, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        munmap(p, HAK_REGISTRY_ENTRIES); /* another thread's reservation won */
    return true;
}

/* At load, before any allocation can exist (see registry.h). */
__attribute__((constructor(101))) static void registry_at_load(void)
{
    hak_registry_init();
}

void hak_registry_set(const void *p, size_t size, enum hak_chunk_kind first,
                      enum hak_chunk_kind rest)
{
    uintptr_t i = (uintptr_t)p >> HAK_CHUNK_SHIFT;
    uintptr_t n = size >> HAK_CHUNK_SHIFT;
    /* Chunk 0 must stay HAK_CHUNK_NONE (hak_registry_kind(NULL) reads it);
     * the kernel never places an unhinted mapping there. */
    if (i == 0 || i + n > HAK_REGISTRY_ENTRIES)
        hak_fatal("chunk %p outside the registry", p);
    for (uintptr_t k = 0; k < n; k++)
        __atomic_store_n(&hak_registry[i + k], (unsigned char)(k ? rest : first),
                         __ATOMIC_RELEASE);
}
