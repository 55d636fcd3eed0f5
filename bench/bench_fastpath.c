/* bench_fastpath N [SIZE [FUNC]]
 *
 * N malloc+free pairs of tiny blocks, nothing else: the program that
 * compare.py runs under valgrind --tool=callgrind with N and 2N pairs, so
 * that the difference of the two instruction counts divided by N is the cost
 * of one pair with startup cancelled out.  Without SIZE the sizes cycle over
 * 16, 32, 48, 64, 96, 128, 256, 512 bytes; one block of each size stays live
 * so that the allocator's fast path, not an empty-heap path, is measured.
 * FUNC allocates with another function of the family instead of malloc:
 * "calloc" (calloc(1, SIZE)) or "memalign64" (posix_memalign, alignment 64).
 */
#include "bench_common.h"

static const size_t sizes[8] = {16, 32, 48, 64, 96, 128, 256, 512};

enum func { F_MALLOC, F_CALLOC, F_MEMALIGN64 };

/* The timed loop; inlined with `how` a constant, so that each FUNC's loop
 * holds its own call alone (the malloc loop is the one it always was). */
static inline __attribute__((always_inline)) uint64_t
pairs(const char *prog, long n, size_t fixed, enum func how)
{
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        size_t s = fixed ? fixed : sizes[i & 7];
        void *v;
        if (how == F_CALLOC)
            v = calloc(1, s);
        else if (how == F_MEMALIGN64)
            v = posix_memalign(&v, 64, s) ? NULL : v;
        else
            v = malloc(s);
        unsigned char *p = v;
        if (!p)
            bench_corrupt(prog, "allocation returned NULL", (uint64_t)i);
        p[0] = (unsigned char)i;
        BENCH_ESCAPE(p);
        sum += p[0];
        free(p);
    }
    return sum;
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 1000000);
    size_t fixed = (size_t)bench_arg(argc, argv, 2, 0);
    const char *func = argc > 3 ? argv[3] : "malloc";
    void *keep[8];
    uint64_t sum;
    for (int i = 0; i < 8; i++)
        keep[i] = bench_xmalloc(sizes[i]);

    double t0 = bench_now();
    if (!strcmp(func, "malloc"))
        sum = pairs(argv[0], n, fixed, F_MALLOC);
    else if (!strcmp(func, "calloc"))
        sum = pairs(argv[0], n, fixed, F_CALLOC);
    else if (!strcmp(func, "memalign64"))
        sum = pairs(argv[0], n, fixed, F_MEMALIGN64);
    else {
        fprintf(stderr, "%s: FUNC is malloc, calloc or memalign64, not %s\n", argv[0], func);
        return 64;
    }
    double t1 = bench_now();

    for (int i = 0; i < 8; i++)
        free(keep[i]);
    bench_report((double)n, t1 - t0, sum);
    return 0;
}
