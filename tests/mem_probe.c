/* mem_probe - memory-use scenarios for tests/memory.sh.  Not linked with
 * hakmem: the script runs it under LD_PRELOAD of hakmem (and of nothing, for
 * glibc's figures).  Each mode checks its outcome and exits 1 with a
 * "FAIL: ..." line, or prints its figures and exits 0.
 *
 *   many SIZE COUNT          COUNT x malloc(SIZE), all tagged and verified;
 *                            peak VmSize <= 1.5 x requested + 64 MiB
 *   aligned FUNC ALIGN SIZE COUNT
 *                            COUNT x aligned_alloc or memalign (FUNC), aligned
 *                            and tagged; VmSize growth < 200 MiB
 *   churn ROUNDS NBLOCKS SIZE
 *                            ROUNDS x (NBLOCKS x malloc(SIZE), then free all)
 *   idle MIB DELAY_MS        MIB MiB of large blocks (64 KiB .. 8 MiB) touched
 *                            and freed; after 2 x DELAY_MS and one more large
 *                            malloc, RSS within 16 MiB of the start
 *   idle_all MIB DELAY_MS    the same with blocks of every tier (64 B .. 2 MiB)
 *   rss COUNT SIZE           prints the RSS growth (KiB) of COUNT x malloc(SIZE)
 *                            with every byte written
 *   sizes FROM TO STEP       prints the anonymous RSS growth (KiB) of one
 *                            malloc of each size FROM, FROM + STEP, ... TO,
 *                            every byte written
 *   thread_sizes N FROM TO STEP
 *                            N threads each hold one block of each of those
 *                            sizes; prints the anonymous RSS growth per
 *                            thread (KiB), stacks included, after one thread
 *                            did the same first (one-time costs not counted)
 *   thp_active               exit 0 if an mmap'd 4 MiB region touched once
 *                            has 2 MiB resident (huge pages at work), else 77
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static void fail(const char *what, size_t a, size_t b)
{
    printf("FAIL: %s (%zu, %zu)\n", what, a, b);
    exit(1);
}

/* Field `field` (0: VmSize, 1: RSS) of /proc/self/statm, in bytes. */
static size_t statm(int field)
{
    char buf[128];
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || !fgets(buf, sizeof buf, f))
        fail("cannot read /proc/self/statm", 0, 0);
    fclose(f);
    unsigned long v[2];
    if (sscanf(buf, "%lu %lu", &v[0], &v[1]) != 2)
        fail("cannot parse /proc/self/statm", 0, 0);
    return v[field] * (size_t)sysconf(_SC_PAGESIZE);
}

/* RssAnon of /proc/self/status, in bytes: the heap's resident memory without
 * the library code pages a first call of some function faults in.  (statm
 * may read the kernel's per-CPU RSS counters unsummed, off by up to a few
 * hundred KiB; status sums them on the kernels where that matters.) */
static size_t anon_rss(void)
{
    char line[256];
    unsigned long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        fail("cannot read /proc/self/status", 0, 0);
    while (fgets(line, sizeof line, f) && sscanf(line, "RssAnon: %lu kB", &kb) != 1)
        ;
    fclose(f);
    if (!kb)
        fail("no RssAnon in /proc/self/status", 0, 0);
    return kb * KiB;
}

static size_t arg(char **argv, int i)
{
    return (size_t)strtoull(argv[i], NULL, 10);
}

static void tag(void *p, size_t i)
{
    memcpy(p, &i, sizeof i);
}

static void check_tag(void *p, size_t i)
{
    size_t v;
    memcpy(&v, p, sizeof v);
    if (v != i)
        fail("block contents lost", i, v);
}

static int many(size_t size, size_t count)
{
    void **b = calloc(count, sizeof *b);
    if (!b)
        fail("calloc of the pointer array failed", count, 0);
    size_t vm0 = statm(0);
    for (size_t i = 0; i < count; i++) {
        b[i] = malloc(size);
        if (!b[i])
            fail("malloc returned NULL: block, size", i, size);
        if ((uintptr_t)b[i] % 16)
            fail("misaligned block", i, (uintptr_t)b[i]);
        tag(b[i], i);
    }
    size_t vm = statm(0) - vm0, req = size * count;
    for (size_t i = 0; i < count; i++) {
        check_tag(b[i], i);
        free(b[i]);
    }
    free(b);
    printf("many: %zu x %zu bytes: VmSize growth %zu MiB for %zu MiB requested\n", count, size,
           vm / MiB, req / MiB);
    if (vm > req + req / 2 + 64 * MiB)
        fail("VmSize above 1.5 x requested + 64 MiB (MiB, MiB)", vm / MiB, req / MiB);
    return 0;
}

static int aligned(const char *func, size_t align, size_t size, size_t count)
{
    void **b = calloc(count, sizeof *b);
    if (!b)
        fail("calloc of the pointer array failed", count, 0);
    size_t vm0 = statm(0);
    for (size_t i = 0; i < count; i++) {
        b[i] = strcmp(func, "memalign") == 0 ? memalign(align, size) : aligned_alloc(align, size);
        if (!b[i])
            fail("aligned allocation returned NULL", i, size);
        if ((uintptr_t)b[i] % align)
            fail("misaligned block", i, (uintptr_t)b[i]);
        tag(b[i], i);
    }
    size_t vm = statm(0) - vm0;
    for (size_t i = 0; i < count; i++) {
        check_tag(b[i], i);
        free(b[i]);
    }
    free(b);
    printf("aligned: %zu x %s(%zu, %zu): VmSize growth %zu MiB\n", count, func, align, size,
           vm / MiB);
    if (vm >= 200 * MiB)
        fail("VmSize growth of 200 MiB or more (MiB)", vm / MiB, 0);
    return 0;
}

static int churn(size_t rounds, size_t n, size_t size)
{
    void *b[256];
    if (n > 256)
        fail("at most 256 blocks", n, 0);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            b[i] = malloc(size);
            if (!b[i])
                fail("malloc returned NULL", r, i);
            tag(b[i], r * n + i);
        }
        for (size_t i = 0; i < n; i++) {
            check_tag(b[i], r * n + i);
            free(b[i]);
        }
    }
    printf("churn: %zu rounds of %zu x %zu bytes\n", rounds, n, size);
    return 0;
}

static void sleep_ms(size_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Sizes of one tier, cycled until that tier holds its share of the bytes. */
struct size_group {
    const size_t *sizes;
    size_t n;
};

/* Blocks of each group in turn, `mib` MiB shared equally among the groups,
 * touched, then freed; after 2 x delay_ms and one more large malloc (a slow
 * path, where the purge policy runs), RSS must be within 16 MiB of the
 * start. */
static int idle_groups(const char *name, const struct size_group *g, size_t ngroups, size_t mib,
                       size_t delay_ms)
{
    size_t share = mib * MiB / ngroups, smallest = SIZE_MAX;
    for (size_t k = 0; k < ngroups; k++)
        for (size_t i = 0; i < g[k].n; i++)
            smallest = g[k].sizes[i] < smallest ? g[k].sizes[i] : smallest;
    size_t maxb = mib * MiB / smallest + ngroups;
    /* The block table comes from mmap: it is the probe's, not the heap's. */
    void **b = mmap(NULL, maxb * sizeof *b, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        fail("mmap of the block table failed", maxb, 0);
    size_t n = 0, total = 0;
    free(malloc(100 * 1000)); /* hakmem initialized before the start figure */
    size_t rss0 = statm(1);
    for (size_t k = 0; k < ngroups; k++) {
        for (size_t got = 0, i = 0; got < share && n < maxb; got += g[k].sizes[i++ % g[k].n]) {
            size_t sz = g[k].sizes[i % g[k].n];
            b[n] = malloc(sz);
            if (!b[n])
                fail("malloc returned NULL", n, sz);
            memset(b[n], (int)n, sz);
            total += sz;
            n++;
        }
    }
    size_t rss_full = statm(1);
    for (size_t i = 0; i < n; i++)
        free(b[i]);
    sleep_ms(2 * delay_ms);
    free(malloc(100 * 1000)); /* one more call, on the large tier's slow path */
    size_t rss = statm(1);
    printf("%s: %zu MiB in %zu blocks: RSS %zu MiB at start, %zu MiB full, %zu MiB after "
           "2 x %zu ms idle and one call\n",
           name, total / MiB, n, rss0 / MiB, rss_full / MiB, rss / MiB, delay_ms);
    munmap(b, maxb * sizeof *b);
    if (rss > rss0 + 16 * MiB)
        fail("RSS more than 16 MiB above the start (MiB, MiB)", rss / MiB, rss0 / MiB);
    return 0;
}

static int idle(size_t mib, size_t delay_ms)
{
    /* Sizes cycling through runs and mappings of their own. */
    static const size_t large[] = {64 * KiB, 100 * 1000, 256 * KiB, 1000 * 1000, 3 * MiB, 8 * MiB};
    static const struct size_group g[] = {{large, sizeof large / sizeof large[0]}};
    return idle_groups("idle", g, 1, mib, delay_ms);
}

/* The same with every tier: a third of the bytes in tiny, pool and large
 * blocks each. */
static int idle_all(size_t mib, size_t delay_ms)
{
    static const size_t tiny[] = {64, 256, 1000}, pool[] = {3000, 16 * KiB, 48 * KiB},
                        large[] = {200 * KiB, 2 * MiB};
    static const struct size_group g[] = {
        {tiny, 3}, {pool, 3}, {large, 2}};
    return idle_groups("idle_all", g, 3, mib, delay_ms);
}

static int rss(size_t count, size_t size)
{
    enum { MAXB = 4096 };
    static void *b[MAXB];
    if (count > MAXB)
        fail("too many blocks", count, MAXB);
    free(malloc(size)); /* the allocator initialized before the start figure */
    size_t rss0 = statm(1);
    for (size_t i = 0; i < count; i++) {
        b[i] = malloc(size);
        if (!b[i])
            fail("malloc returned NULL", i, size);
        memset(b[i], 1, size);
    }
    size_t grown = statm(1) - rss0;
    for (size_t i = 0; i < count; i++)
        free(b[i]);
    printf("%zu\n", grown / KiB);
    return 0;
}

static int sizes(size_t from, size_t to, size_t step)
{
    enum { MAXB = 4096 };
    static void *b[MAXB];
    if (!step || to < from || (to - from) / step >= MAXB)
        fail("bad size range", from, to);
    size_t n = (to - from) / step + 1;
    free(malloc(from)); /* the allocator initialized before the start figure */
    size_t rss0 = anon_rss();
    for (size_t i = 0; i < n; i++) {
        size_t sz = from + i * step;
        b[i] = malloc(sz);
        if (!b[i])
            fail("malloc returned NULL", i, sz);
        memset(b[i], (int)i, sz);
    }
    size_t grown = anon_rss() - rss0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char *)b[i])[from + i * step - 1] != (unsigned char)i)
            fail("block contents lost", i, from + i * step);
        free(b[i]);
    }
    printf("%zu\n", grown / KiB);
    return 0;
}

/* thread_sizes: each holder allocates its blocks, waits until the RSS is
 * measured, checks and frees them. */
static pthread_barrier_t holders;
static size_t hold_from, hold_to, hold_step;

static void *holder(void *arg)
{
    enum { MAXB = 256 };
    void *b[MAXB];
    size_t n = (hold_to - hold_from) / hold_step + 1;
    for (size_t i = 0; i < n && i < MAXB; i++) {
        b[i] = malloc(hold_from + i * hold_step);
        if (b[i])
            memset(b[i], (int)i, hold_from + i * hold_step);
    }
    pthread_barrier_wait(&holders); /* everybody holds its blocks */
    pthread_barrier_wait(&holders); /* RSS measured */
    int bad = 0;
    for (size_t i = 0; i < n && i < MAXB; i++) {
        bad |= !b[i] || ((unsigned char *)b[i])[hold_from + i * hold_step - 1] != (unsigned char)i;
        free(b[i]);
    }
    return bad ? arg : NULL;
}

/* Runs `count` holders (at most 1024) at once; returns the anonymous RSS
 * growth while they all hold their blocks. */
static size_t hold(size_t count)
{
    static pthread_t t[1024];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * KiB);
    if (pthread_barrier_init(&holders, NULL, (unsigned)count + 1))
        fail("pthread_barrier_init failed", count, 0);
    size_t rss0 = anon_rss();
    for (size_t i = 0; i < count; i++)
        if (pthread_create(&t[i], &attr, holder, (void *)(uintptr_t)(i + 1)))
            fail("pthread_create failed", i, count);
    pthread_barrier_wait(&holders);
    size_t grown = anon_rss() - rss0;
    pthread_barrier_wait(&holders);
    for (size_t i = 0; i < count; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        if (ret)
            fail("a holder's blocks were lost", i, count);
    }
    pthread_barrier_destroy(&holders);
    pthread_attr_destroy(&attr);
    return grown;
}

static int thread_sizes(size_t count, size_t from, size_t to, size_t step)
{
    if (!count || count > 1024 || !step || to < from || (to - from) / step >= 256)
        fail("bad thread count or size range", count, to);
    hold_from = from;
    hold_to = to;
    hold_step = step;
    hold(1); /* one-time costs, and a recycled thread slot for later */
    printf("%zu\n", hold(count) / count / KiB);
    return 0;
}

static int thp_active(void)
{
    size_t len = 4 * MiB;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 77;
    char *aligned_p = (char *)(((uintptr_t)p + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1));
    size_t rss0 = statm(1);
    aligned_p[0] = 1;
    size_t grown = statm(1) - rss0;
    munmap(p, len);
    return grown >= 2 * MiB ? 0 : 77;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    if (strcmp(m, "many") == 0 && argc == 4)
        return many(arg(argv, 2), arg(argv, 3));
    if (strcmp(m, "aligned") == 0 && argc == 6)
        return aligned(argv[2], arg(argv, 3), arg(argv, 4), arg(argv, 5));
    if (strcmp(m, "churn") == 0 && argc == 5)
        return churn(arg(argv, 2), arg(argv, 3), arg(argv, 4));
    if (strcmp(m, "idle") == 0 && argc == 4)
        return idle(arg(argv, 2), arg(argv, 3));
    if (strcmp(m, "idle_all") == 0 && argc == 4)
        return idle_all(arg(argv, 2), arg(argv, 3));
    if (strcmp(m, "rss") == 0 && argc == 4)
        return rss(arg(argv, 2), arg(argv, 3));
    if (strcmp(m, "sizes") == 0 && argc == 5)
        return sizes(arg(argv, 2), arg(argv, 3), arg(argv, 4));
    if (strcmp(m, "thread_sizes") == 0 && argc == 6)
        return thread_sizes(arg(argv, 2), arg(argv, 3), arg(argv, 4), arg(argv, 5));
    if (strcmp(m, "thp_active") == 0)
        return thp_active();
    fprintf(stderr, "usage: see the comment at the top of mem_probe.c\n");
    return 2;
}
