/* bench_grow_churn COUNT [BUFSIZE] [BUFFERS]
 *
 * COUNT 64-byte blocks accumulate (kept to the end, like the nodes of a tree
 * being built) while, every 1024 of them, BUFFERS blocks of BUFSIZE bytes
 * (default 32 x 100,000) are allocated, written and freed (like the I/O
 * buffers of a parser).  The small blocks' tier keeps growing; the buffers'
 * memory is free between rounds and used again at once.  An allocator that
 * gives back other memory whenever a tier grows refaults the buffers at
 * every round; the page faults show it.  Prints the throughput (one
 * operation = one small block, with its share of the buffer rounds), the
 * page faults and the peak RSS.  How hakmem's growth rule of the purge
 * (src/purge.h) was bounded.
 */
#include "bench_common.h"
#include <sys/resource.h>

#define SMALL 64
#define ROUND 1024

int main(int argc, char **argv)
{
    long count = bench_arg(argc, argv, 1, 3000000);
    size_t bufsize = (size_t)bench_arg(argc, argv, 2, 100000);
    long nbuf = bench_arg(argc, argv, 3, 32);
    if (nbuf < 1 || nbuf > 256 || bufsize < 1)
        return 64;
    unsigned char **keep = bench_xmalloc((size_t)count * sizeof *keep);
    unsigned char *buf[256];
    uint64_t sum = 0;

    double t0 = bench_now();
    for (long i = 0; i < count; i++) {
        keep[i] = bench_xmalloc(SMALL);
        bench_stamp(keep[i], SMALL, (uint64_t)i);
        if (i % ROUND == 0) {
            for (long k = 0; k < nbuf; k++) {
                buf[k] = bench_xmalloc(bufsize);
                memset(buf[k], (int)(i + k), bufsize);
            }
            for (long k = 0; k < nbuf; k++) {
                sum = bench_mix(sum, buf[k][bufsize - 1]);
                free(buf[k]);
            }
        }
    }
    double t1 = bench_now();

    for (long i = 0; i < count; i++) {
        if (bench_check(keep[i], SMALL, (uint64_t)i))
            bench_corrupt(argv[0], "block changed while live", (uint64_t)i);
        free(keep[i]);
    }
    free(keep);
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    printf("Page faults = %ld\n", u.ru_minflt);
    bench_report((double)count, t1 - t0, sum);
    return 0;
}
