/* bench_large COUNT [SLOTS] [SEED]
 *
 * Large blocks of 64 KiB..4 MiB (sizes drawn log-uniformly, so every power of
 * two gets a similar share) allocated into SLOTS slots (default 8), every
 * page written once, and freed when the slot is reused.  Models buffers for
 * I/O, images and arrays: the cost is mmap/munmap, page faults and whatever
 * the allocator keeps cached.  One operation = one malloc + touch + free.
 */
#include "bench_common.h"

#define PAGE 4096

int main(int argc, char **argv)
{
    long count = bench_arg(argc, argv, 1, 20000);
    size_t nslots = (size_t)bench_arg(argc, argv, 2, 8);
    uint64_t rng = bench_seed((uint64_t)bench_arg(argc, argv, 3, 1));

    unsigned char **slot = calloc(nslots, sizeof *slot);
    size_t *size = calloc(nslots, sizeof *size);
    uint64_t *tag = calloc(nslots, sizeof *tag);
    if (!slot || !size || !tag)
        return 3;
    uint64_t sum = 0;

    double t0 = bench_now();
    for (long i = 0; i < count; i++) {
        uint64_t x = bench_rng(&rng);
        size_t k = (size_t)(x % nslots);
        if (slot[k]) {
            unsigned char t = bench_tag(tag[k]);
            for (size_t o = 0; o + 1 < size[k]; o += PAGE)
                if (slot[k][o] != t)
                    bench_corrupt(argv[0], "large block changed while live", tag[k]);
            if (slot[k][size[k] - 1] != (unsigned char)(t + 1))
                bench_corrupt(argv[0], "large block tail changed", tag[k]);
            sum = bench_mix(sum, size[k]);
            free(slot[k]);
        }
        /* log-uniform in [64 KiB, 4 MiB]: 2^(16 + u*6), u in [0,1) */
        unsigned shift = 16 + (unsigned)((x >> 32) % 6);
        size_t n = ((size_t)1 << shift) + (size_t)((x >> 40) % ((size_t)1 << shift));
        if (n > (size_t)4 << 20)
            n = (size_t)4 << 20;
        unsigned char *p = malloc(n);
        if (!p)
            bench_corrupt(argv[0], "malloc returned NULL", (uint64_t)i);
        unsigned char t = bench_tag((uint64_t)i);
        for (size_t o = 0; o < n; o += PAGE)
            p[o] = t;
        p[n - 1] = (unsigned char)(t + 1);
        slot[k] = p;
        size[k] = n;
        tag[k] = (uint64_t)i;
    }
    double t1 = bench_now();

    for (size_t k = 0; k < nslots; k++) {
        if (slot[k]) {
            sum = bench_mix(sum, size[k]);
            free(slot[k]);
        }
    }
    free(slot);
    free(size);
    free(tag);
    bench_report((double)count, t1 - t0, sum);
    return 0;
}
