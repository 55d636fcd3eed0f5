/* bench_thread_scaling THREADS OPS_PER_THREAD [SEED]
 *
 * THREADS threads, each doing its own small malloc/free (16..256 B) over a
 * private working set of 256 slots; nothing is shared between threads.
 * Models a thread pool of independent workers: run with 1, 2 and 4 threads
 * to see whether the allocator scales (on a 2-core machine, 4 threads also
 * shows the cost of oversubscription).  Prints the aggregate throughput;
 * one operation = one malloc or free.
 */
#include "bench_common.h"
#include <pthread.h>

#define SLOTS 256

struct worker {
    pthread_t t;
    long ops;
    uint64_t seed;
    uint64_t sum;
};

static const char *prog;

static void *run(void *arg)
{
    struct worker *w = arg;
    void *slot[SLOTS] = {0};
    uint32_t size[SLOTS];
    uint64_t tag[SLOTS];
    uint64_t rng = w->seed, sum = 0;
    for (long i = 0; i < w->ops; i++) {
        uint64_t x = bench_rng(&rng);
        unsigned k = (unsigned)(x % SLOTS);
        if (slot[k]) {
            if (bench_check(slot[k], size[k], tag[k]))
                bench_corrupt(prog, "block changed while live", tag[k]);
            sum = bench_mix(sum, size[k]);
            free(slot[k]);
            slot[k] = NULL;
        } else {
            size_t n = 16 + (size_t)((x >> 32) % 241);
            slot[k] = malloc(n);
            if (!slot[k])
                bench_corrupt(prog, "malloc returned NULL", (uint64_t)i);
            bench_stamp(slot[k], n, (uint64_t)i);
            size[k] = (uint32_t)n;
            tag[k] = (uint64_t)i;
        }
    }
    for (unsigned k = 0; k < SLOTS; k++)
        if (slot[k]) {
            sum = bench_mix(sum, size[k]);
            free(slot[k]);
        }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    prog = argv[0];
    if (argc < 3) {
        fprintf(stderr, "usage: %s THREADS OPS_PER_THREAD [SEED]\n", prog);
        return 64;
    }
    long nthreads = bench_arg(argc, argv, 1, 1);
    long ops = bench_arg(argc, argv, 2, 10000000);
    uint64_t seed = (uint64_t)bench_arg(argc, argv, 3, 1);
    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    if (!w)
        return 3;

    double t0 = bench_now();
    for (long i = 0; i < nthreads; i++) {
        w[i].ops = ops;
        w[i].seed = bench_seed(seed * 7919u + (uint64_t)i);
        if (pthread_create(&w[i].t, NULL, run, &w[i])) {
            fprintf(stderr, "%s: pthread_create failed\n", prog);
            return 3;
        }
    }
    uint64_t sum = 0;
    for (long i = 0; i < nthreads; i++) {
        pthread_join(w[i].t, NULL);
        sum = bench_mix(sum, w[i].sum);
    }
    double t1 = bench_now();
    free(w);
    bench_report((double)nthreads * (double)ops, t1 - t0, sum);
    return 0;
}
