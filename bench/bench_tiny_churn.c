/* bench_tiny_churn ROUNDS [BATCH] [SEED]
 *
 * Batches of small objects (16..512 B) allocated and then freed, alternately
 * in LIFO order (newest first, like a stack of temporaries) and in FIFO order
 * (oldest first, like a queue of messages).  Models short-lived small
 * objects.  One operation = one malloc or one free.
 */
#include "bench_common.h"

int main(int argc, char **argv)
{
    long rounds = bench_arg(argc, argv, 1, 2000);
    size_t batch = (size_t)bench_arg(argc, argv, 2, 1000);
    uint64_t rng = bench_seed((uint64_t)bench_arg(argc, argv, 3, 1));

    void **p = bench_xmalloc(batch * sizeof *p);
    size_t *sz = bench_xmalloc(batch * sizeof *sz);
    uint64_t sum = 0, ops = 0;

    double t0 = bench_now();
    for (long r = 0; r < rounds; r++) {
        for (size_t i = 0; i < batch; i++) {
            size_t n = bench_range(&rng, 16, 512);
            p[i] = malloc(n);
            if (!p[i])
                bench_corrupt(argv[0], "malloc returned NULL", i);
            sz[i] = n;
            bench_stamp(p[i], n, (uint64_t)r * batch + i);
        }
        int lifo = !(r & 1);
        for (size_t j = 0; j < batch; j++) {
            size_t i = lifo ? batch - 1 - j : j;
            uint64_t tag = (uint64_t)r * batch + i;
            if (bench_check(p[i], sz[i], tag))
                bench_corrupt(argv[0], "block changed while live", tag);
            sum = bench_mix(sum, sz[i] + ((unsigned char *)p[i])[0]);
            free(p[i]);
        }
        ops += 2 * batch;
    }
    double t1 = bench_now();

    free(p);
    free(sz);
    bench_report((double)ops, t1 - t0, sum);
    return 0;
}
