/* bench_fragmentation [MEGABYTES] [SEED]
 *
 * Phase 1 allocates MEGABYTES (default 256) of mixed small objects (16..256 B,
 * stamped), phase 2 frees a random 90% of them, phase 3 allocates half as many
 * bytes again in other sizes (257 B..4 KiB).  Models a long-running process
 * whose object population changes shape: can freed memory of one size class
 * be reused for another, and is the rest given back?  Reports the peak RSS
 * (VmHWM), the RSS after the frees and the RSS after phase 3 (VmRSS), read
 * from /proc/self/status.  One operation = one malloc or free.
 */
#include "bench_common.h"

int main(int argc, char **argv)
{
    size_t total = (size_t)bench_arg(argc, argv, 1, 256) << 20;
    uint64_t rng = bench_seed((uint64_t)bench_arg(argc, argv, 2, 1));
    /* upper bound on the number of objects: every one at least 16 B */
    size_t cap = total / 16 + 1;
    unsigned char **obj = bench_xmalloc(cap * sizeof *obj);
    uint32_t *size = bench_xmalloc(cap * sizeof *size);
    size_t n = 0, bytes = 0;
    uint64_t sum = 0, ops = 0;

    double t0 = bench_now();
    /* phase 1: mixed small objects, more small than large */
    while (bytes < total && n < cap) {
        uint64_t x = bench_rng(&rng);
        size_t s = (x & 3) ? 16 + (size_t)((x >> 8) % 113)   /* 16..128 */
                           : 129 + (size_t)((x >> 8) % 128); /* 129..256 */
        obj[n] = malloc(s);
        if (!obj[n])
            bench_corrupt(argv[0], "malloc returned NULL", n);
        bench_stamp(obj[n], s, n);
        size[n] = (uint32_t)s;
        bytes += s;
        n++;
    }
    ops += n;

    /* phase 2: free a random 90% */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (bench_rng(&rng) % 10 != 0) {
            if (bench_check(obj[i], size[i], i))
                bench_corrupt(argv[0], "block changed while live", i);
            sum = bench_mix(sum, size[i]);
            free(obj[i]);
            ops++;
        } else {
            /* survivors move to the front, re-stamped with their new index */
            if (bench_check(obj[i], size[i], i))
                bench_corrupt(argv[0], "block changed while live", i);
            obj[kept] = obj[i];
            size[kept] = size[i];
            bench_stamp(obj[kept], size[kept], kept);
            kept++;
        }
    }
    long rss_free = bench_status_kb("VmRSS");

    /* phase 3: half the original bytes again, in other sizes */
    size_t target = total / 2, b3 = 0, n3 = kept;
    while (b3 < target && n3 < cap) {
        size_t s = bench_range(&rng, 257, 4096);
        obj[n3] = malloc(s);
        if (!obj[n3])
            bench_corrupt(argv[0], "malloc returned NULL", n3);
        bench_stamp(obj[n3], s, n3);
        size[n3] = (uint32_t)s;
        b3 += s;
        n3++;
        ops++;
    }
    long rss_after = bench_status_kb("VmRSS");
    double t1 = bench_now();

    for (size_t i = 0; i < n3; i++) {
        if (bench_check(obj[i], size[i], i))
            bench_corrupt(argv[0], "block changed while live", i);
        sum = bench_mix(sum, size[i]);
        free(obj[i]);
    }
    free(obj);
    free(size);
    bench_report((double)ops, t1 - t0, sum);
    printf("RSS after free = %ld kB\n", rss_free);
    printf("RSS after phase = %ld kB\n", rss_after);
    return 0;
}
