/* bench_random_mixed ITERS MAXSIZE SEED [SLOTS]
 *
 * Random allocate/free over a fixed set of slots (default 8192): each step
 * picks a random slot; an empty slot gets malloc(16..MAXSIZE), a full one is
 * checked and freed.  Models a program with a steady working set of mixed
 * sizes.  Prints "Throughput = N operations per second" (one step = one
 * operation) and a checksum of the sizes and stamps seen.
 */
#include "bench_common.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s ITERS MAXSIZE SEED [SLOTS]\n", argv[0]);
        return 64;
    }
    long iters = bench_arg(argc, argv, 1, 0);
    size_t maxsize = (size_t)bench_arg(argc, argv, 2, 0);
    uint64_t rng = bench_seed((uint64_t)strtoull(argv[3], NULL, 0));
    size_t nslots = (size_t)bench_arg(argc, argv, 4, 8192);
    if (maxsize < 16)
        maxsize = 16;

    void **slot = calloc(nslots, sizeof *slot);
    size_t *size = calloc(nslots, sizeof *size);
    uint64_t *tag = calloc(nslots, sizeof *tag);
    if (!slot || !size || !tag)
        return 3;

    uint64_t sum = 0;
    double t0 = bench_now();
    for (long i = 0; i < iters; i++) {
        uint64_t r = bench_rng(&rng);
        size_t k = (size_t)(r % nslots);
        if (slot[k]) {
            if (bench_check(slot[k], size[k], tag[k]))
                bench_corrupt(argv[0], "block changed while live", tag[k]);
            sum = bench_mix(sum, size[k] ^ ((unsigned char *)slot[k])[size[k] - 1]);
            free(slot[k]);
            slot[k] = NULL;
        } else {
            size_t n = 16 + (size_t)((r >> 32) % (maxsize - 15));
            void *p = malloc(n);
            if (!p)
                bench_corrupt(argv[0], "malloc returned NULL", (uint64_t)i);
            bench_stamp(p, n, (uint64_t)i);
            slot[k] = p;
            size[k] = n;
            tag[k] = (uint64_t)i;
        }
    }
    double t1 = bench_now();

    for (size_t k = 0; k < nslots; k++) {
        if (slot[k]) {
            if (bench_check(slot[k], size[k], tag[k]))
                bench_corrupt(argv[0], "block changed while live", tag[k]);
            sum = bench_mix(sum, size[k]);
            free(slot[k]);
        }
    }
    free(slot);
    free(size);
    free(tag);
    bench_report((double)iters, t1 - t0, sum);
    return 0;
}
