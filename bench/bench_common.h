/* bench_common.h - helpers shared by the hakmem benchmark programs.
 *
 * The benchmarks call plain malloc/free and never link hakmem: the allocator
 * under test is chosen at run time with LD_PRELOAD (see compare.py).  Every
 * program prints its figure and a line "Checksum = 0x..." that depends only on
 * the arguments (never on addresses or timing), so a run that corrupted memory
 * is caught by comparing checksums across allocators instead of being timed.
 */
#ifndef HAKMEM_BENCH_COMMON_H
#define HAKMEM_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keep the compiler from proving a block unused and removing malloc/free. */
#define BENCH_ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: small, fast, deterministic for a given seed. */
static inline uint64_t bench_rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t bench_seed(uint64_t seed)
{
    /* splitmix64 step so that small seeds give well-mixed states, never 0 */
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 1;
}

/* Uniform in [lo, hi]. */
static inline size_t bench_range(uint64_t *s, size_t lo, size_t hi)
{
    return lo + (size_t)(bench_rng(s) % (uint64_t)(hi - lo + 1));
}

/* Order-dependent mix for single-threaded checksums. */
static inline uint64_t bench_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    return h;
}

/* A byte pattern derived from a tag, written at a block's ends and checked
 * before the block is freed. */
static inline unsigned char bench_tag(uint64_t tag)
{
    return (unsigned char)((tag * 131u) ^ (tag >> 7) ^ 0x5a);
}

static inline void bench_stamp(void *p, size_t size, uint64_t tag)
{
    unsigned char *b = p;
    unsigned char t = bench_tag(tag);
    b[0] = t;
    b[size / 2] = (unsigned char)(t + 1);
    b[size - 1] = (unsigned char)(t + 2);
}

/* Returns 0 when the stamp is intact. */
static inline int bench_check(const void *p, size_t size, uint64_t tag)
{
    const unsigned char *b = p;
    unsigned char t = bench_tag(tag);
    return !(b[0] == t && b[size / 2] == (unsigned char)(t + 1) &&
             b[size - 1] == (unsigned char)(t + 2));
}

static inline void bench_corrupt(const char *prog, const char *what, uint64_t tag)
{
    fprintf(stderr, "%s: CORRUPTION: %s (tag %llu)\n", prog, what,
            (unsigned long long)tag);
    exit(2);
}

static inline void *bench_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench: malloc(%zu) failed\n", n);
        exit(3);
    }
    return p;
}

static inline long bench_arg(int argc, char **argv, int i, long dflt)
{
    if (argc > i) {
        char *end;
        long v = strtol(argv[i], &end, 0);
        if (*end || v <= 0) {
            fprintf(stderr, "bench: bad argument '%s'\n", argv[i]);
            exit(64);
        }
        return v;
    }
    return dflt;
}

/* A "Key:   N kB" field of /proc/self/status (VmHWM, VmRSS), -1 if absent. */
static inline long bench_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* The figure, then the checksum, then the peak RSS of this process
 * (VmHWM: unlike wait4()'s ru_maxrss it does not include the RSS of the
 * parent that forked us). */
static inline void bench_report(double ops, double secs, uint64_t checksum)
{
    printf("Throughput = %.0f operations per second\n", secs > 0 ? ops / secs : 0.0);
    printf("Checksum = 0x%016llx\n", (unsigned long long)checksum);
    printf("Peak RSS = %ld kB\n", bench_status_kb("VmHWM"));
}

#endif
