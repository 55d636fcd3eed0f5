/*
 * stats.c - summing and printing hakmem's counters.
 */
#include "stats.h"
#include "lifecycle.h"
#ifdef HAKMEM_POOL_TLS
#include "pool/pool_fast.h"
#endif

#include "lock.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const names[HAK_TIER_COUNT] = {"tiny", "pool", "large"};

static _Atomic uint64_t mmap_calls, munmap_calls, purge_calls, remap_calls;
static _Atomic int64_t mapped[HAK_TIER_COUNT];
static _Atomic uint64_t global_allocs[HAK_TIER_COUNT], global_frees[HAK_TIER_COUNT];

/* Live threads' counters.  Each hak_counters sits in its thread's TLS, which
 * stays valid until the thread unregisters it at exit (under this lock). */
#define STATS_MAX_LIVE 4096
static struct hak_lock live_lock = HAK_LOCK_INITIALIZER;
static struct hak_counters *live[STATS_MAX_LIVE];
static unsigned live_count;

void hak_stats_count_mmap(void) { atomic_fetch_add_explicit(&mmap_calls, 1, memory_order_relaxed); }
void hak_stats_count_munmap(void) { atomic_fetch_add_explicit(&munmap_calls, 1, memory_order_relaxed); }
void hak_stats_count_purge(void) { atomic_fetch_add_explicit(&purge_calls, 1, memory_order_relaxed); }
void hak_stats_count_remap(void) { atomic_fetch_add_explicit(&remap_calls, 1, memory_order_relaxed); }

void hak_stats_mapped(enum hak_tier tier, int64_t delta)
{
    atomic_fetch_add_explicit(&mapped[tier], delta, memory_order_relaxed);
}

void hak_stats_count_global(enum hak_tier tier, bool alloc)
{
    atomic_fetch_add_explicit(alloc ? &global_allocs[tier] : &global_frees[tier], 1,
                              memory_order_relaxed);
}

/* A live thread's allocations in tier t: the tiny tier, and the pool tier
 * with Pool TLS, count none on malloc's fast path; they are derived from the
 * thread's caches (tiny_cache_net, pool_cache_net).  Every hak_counters
 * registered here is the one in its struct hak_thread. */
static uint64_t thread_allocs(const struct hak_counters *c, int t)
{
    uint64_t n = __atomic_load_n(&c->allocs[t], __ATOMIC_RELAXED);
    const struct hak_thread *th =
        (const struct hak_thread *)((const char *)c - offsetof(struct hak_thread, counters));
    if (t == HAK_TIER_TINY)
        n += __atomic_load_n(&c->frees[t], __ATOMIC_RELAXED) +
             (uint64_t)tiny_cache_net(&th->fast, &th->tiny);
#ifdef HAKMEM_POOL_TLS
    if (t == HAK_TIER_POOL)
        n += __atomic_load_n(&c->frees[t], __ATOMIC_RELAXED) + (uint64_t)pool_cache_net(th);
#endif
    return n;
}

void hak_stats_thread_start(struct hak_counters *c)
{
    hak_lock(&live_lock);
    if (live_count < STATS_MAX_LIVE)
        live[live_count++] = c;
    hak_unlock(&live_lock);
}

void hak_stats_thread_exit(struct hak_counters *c)
{
    hak_lock(&live_lock);
    for (unsigned i = 0; i < live_count; i++) {
        if (live[i] == c) {
            live[i] = live[--live_count];
            break;
        }
    }
    hak_unlock(&live_lock);
    /* Fold in whatever was counted, registered or not. */
    for (int t = 0; t < HAK_TIER_COUNT; t++) {
        atomic_fetch_add_explicit(&global_allocs[t], thread_allocs(c, t), memory_order_relaxed);
        atomic_fetch_add_explicit(&global_frees[t], c->frees[t], memory_order_relaxed);
    }
    memset(c, 0, sizeof(*c));
}

void hak_stats_get(struct hak_stats *out)
{
    memset(out, 0, sizeof(*out));
    hak_lock(&live_lock);
    for (int t = 0; t < HAK_TIER_COUNT; t++) {
        out->tier[t].allocs = atomic_load_explicit(&global_allocs[t], memory_order_relaxed);
        out->tier[t].frees = atomic_load_explicit(&global_frees[t], memory_order_relaxed);
        for (unsigned i = 0; i < live_count; i++) {
            out->tier[t].allocs += thread_allocs(live[i], t);
            out->tier[t].frees += __atomic_load_n(&live[i]->frees[t], __ATOMIC_RELAXED);
        }
        int64_t m = atomic_load_explicit(&mapped[t], memory_order_relaxed);
        out->tier[t].mapped_bytes = m > 0 ? (uint64_t)m : 0;
    }
    hak_unlock(&live_lock);
    out->mmap_calls = atomic_load_explicit(&mmap_calls, memory_order_relaxed);
    out->munmap_calls = atomic_load_explicit(&munmap_calls, memory_order_relaxed);
}

void hak_stats_print(void)
{
    hak_stats_print_fd(STDERR_FILENO);
}

void hak_stats_print_fd(int fd)
{
    struct hak_stats s;
    hak_stats_get(&s);
    char buf[512];
    int n = 0;
    for (int t = 0; t < HAK_TIER_COUNT; t++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n,
                      "hakmem: %s: allocs=%llu frees=%llu mapped=%llu\n", names[t],
                      (unsigned long long)s.tier[t].allocs, (unsigned long long)s.tier[t].frees,
                      (unsigned long long)s.tier[t].mapped_bytes);
    n += snprintf(buf + n, sizeof(buf) - (size_t)n,
                  "hakmem: os: mmap=%llu munmap=%llu madvise=%llu mremap=%llu\n",
                  (unsigned long long)s.mmap_calls, (unsigned long long)s.munmap_calls,
                  (unsigned long long)atomic_load_explicit(&purge_calls, memory_order_relaxed),
                  (unsigned long long)atomic_load_explicit(&remap_calls, memory_order_relaxed));
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
}

int hak_malloc_info(int options, FILE *fp)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    struct hak_stats s;
    hak_stats_get(&s);
    uint64_t mapped = 0;
    fprintf(fp, "<malloc version=\"hakmem-%s\">\n", HAKMEM_VERSION_STRING);
    for (int t = 0; t < HAK_TIER_COUNT; t++) {
        fprintf(fp, "<tier name=\"%s\" allocs=\"%llu\" frees=\"%llu\" mapped=\"%llu\"/>\n",
                names[t], (unsigned long long)s.tier[t].allocs,
                (unsigned long long)s.tier[t].frees,
                (unsigned long long)s.tier[t].mapped_bytes);
        mapped += s.tier[t].mapped_bytes;
    }
    fprintf(fp, "<total type=\"mapped\" size=\"%llu\"/>\n", (unsigned long long)mapped);
    fprintf(fp, "<system type=\"mmap\" calls=\"%llu\"/>\n", (unsigned long long)s.mmap_calls);
    fprintf(fp, "<system type=\"munmap\" calls=\"%llu\"/>\n",
            (unsigned long long)s.munmap_calls);
    fprintf(fp, "</malloc>\n");
    return 0;
}

void hak_stats_fork_prepare(void) { hak_lock(&live_lock); }
void hak_stats_fork_parent(void) { hak_unlock(&live_lock); }

void hak_stats_fork_child(void)
{
    hak_lock_init(&live_lock);
    /* Only the forking thread lives on in the child: the other threads'
     * TLS is gone, so their counters are dropped from the live list. */
    struct hak_counters *self = &hak_thread.counters;
    bool registered = false;
    for (unsigned i = 0; i < live_count; i++)
        registered |= live[i] == self;
    live_count = 0;
    if (registered)
        live[live_count++] = self;
}
