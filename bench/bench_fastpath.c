/* bench_fastpath N [SIZE]
 *
 * N malloc+free pairs of tiny blocks, nothing else: the program that
 * compare.py runs under valgrind --tool=callgrind with N and 2N pairs, so
 * that the difference of the two instruction counts divided by N is the cost
 * of one pair with startup cancelled out.  Without SIZE the sizes cycle over
 * 16, 32, 48, 64, 96, 128, 256, 512 bytes; one block of each size stays live
 * so that the allocator's fast path, not an empty-heap path, is measured.
 */
#include "bench_common.h"

static const size_t sizes[8] = {16, 32, 48, 64, 96, 128, 256, 512};

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 1000000);
    size_t fixed = (size_t)bench_arg(argc, argv, 2, 0);
    void *keep[8];
    uint64_t sum = 0;
    for (int i = 0; i < 8; i++)
        keep[i] = bench_xmalloc(sizes[i]);

    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        size_t s = fixed ? fixed : sizes[i & 7];
        unsigned char *p = malloc(s);
        if (!p)
            bench_corrupt(argv[0], "malloc returned NULL", (uint64_t)i);
        p[0] = (unsigned char)i;
        BENCH_ESCAPE(p);
        sum += p[0];
        free(p);
    }
    double t1 = bench_now();

    for (int i = 0; i < 8; i++)
        free(keep[i]);
    bench_report((double)n, t1 - t0, sum);
    return 0;
}
