/* bench_huge COUNT [SLOTS] [SEED]
 *
 * Like mimalloc-bench's malloc-large: COUNT times, a random slot of SLOTS
 * (default 20) gets a new block of 5..25 MiB, zero-filled as C++'s
 * make_unique<char[]>(n) does, and the slot's previous block is freed.
 * Models programs holding a few big buffers (images, arrays, I/O): the cost
 * is mmap/munmap, page faults and how well freed mappings are reused.  One
 * operation = one malloc + memset + free.
 */
#include "bench_common.h"

#define MIN_SIZE ((size_t)5 << 20)
#define MAX_SIZE ((size_t)25 << 20)

int main(int argc, char **argv)
{
    long count = bench_arg(argc, argv, 1, 500);
    size_t nslots = (size_t)bench_arg(argc, argv, 2, 20);
    uint64_t rng = bench_seed((uint64_t)bench_arg(argc, argv, 3, 1));

    unsigned char **slot = calloc(nslots, sizeof *slot);
    size_t *size = calloc(nslots, sizeof *size);
    uint64_t *tag = calloc(nslots, sizeof *tag);
    if (!slot || !size || !tag)
        return 3;
    uint64_t sum = 0;

    double t0 = bench_now();
    for (long i = 0; i < count; i++) {
        size_t k = (size_t)(bench_rng(&rng) % nslots);
        size_t n = bench_range(&rng, MIN_SIZE, MAX_SIZE);
        unsigned char *p = malloc(n);
        if (!p)
            bench_corrupt(argv[0], "malloc returned NULL", (uint64_t)i);
        BENCH_ESCAPE(p); /* no folding malloc + memset into calloc */
        memset(p, 0, n);
        bench_stamp(p, n, (uint64_t)i);
        if (slot[k]) {
            if (bench_check(slot[k], size[k], tag[k]))
                bench_corrupt(argv[0], "block changed while live", tag[k]);
            sum = bench_mix(sum, size[k]);
            free(slot[k]);
        }
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
