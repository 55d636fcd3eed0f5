/* bench_larson THREADS GENERATIONS ROUNDS [BLOCKS] [SEED]
 *
 * Larson-style server model.  Each of THREADS chains owns an array of BLOCKS
 * small blocks (16..512 B).  A thread of a chain replaces ROUNDS random blocks
 * of the array (check and free the old one, allocate and stamp a new one),
 * then starts a new thread, hands it the array and exits.  After
 * GENERATIONS threads per chain, main checks and frees what is left.  Frees
 * therefore cross threads and hit blocks whose owner thread has exited.
 * One operation = one replacement (a free plus a malloc).
 */
#include "bench_common.h"
#include <pthread.h>
#include <semaphore.h>

struct chain {
    void **blk;
    size_t *size;
    uint64_t *tag;
    size_t nblocks;
    long gen;        /* generations still to run, including the current one */
    uint64_t rng;
    uint64_t next_tag;
    uint64_t sum;
    sem_t done;
};

static long rounds;
static const char *prog;

static void *worker(void *arg)
{
    struct chain *c = arg;
    for (long r = 0; r < rounds; r++) {
        uint64_t x = bench_rng(&c->rng);
        size_t k = (size_t)(x % c->nblocks);
        if (c->blk[k]) {
            if (bench_check(c->blk[k], c->size[k], c->tag[k]))
                bench_corrupt(prog, "block changed while live", c->tag[k]);
            c->sum = bench_mix(c->sum, c->size[k]);
            free(c->blk[k]);
        }
        size_t n = 16 + (size_t)((x >> 32) % 497);
        void *p = malloc(n);
        if (!p)
            bench_corrupt(prog, "malloc returned NULL", c->next_tag);
        bench_stamp(p, n, c->next_tag);
        c->blk[k] = p;
        c->size[k] = n;
        c->tag[k] = c->next_tag++;
    }
    if (--c->gen > 0) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, c)) {
            fprintf(stderr, "%s: pthread_create failed\n", prog);
            exit(3);
        }
        pthread_attr_destroy(&a);
    } else {
        sem_post(&c->done);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    prog = argv[0];
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS GENERATIONS ROUNDS [BLOCKS] [SEED]\n", prog);
        return 64;
    }
    long nthreads = bench_arg(argc, argv, 1, 2);
    long gens = bench_arg(argc, argv, 2, 50);
    rounds = bench_arg(argc, argv, 3, 20000);
    size_t nblocks = (size_t)bench_arg(argc, argv, 4, 1000);
    uint64_t seed = (uint64_t)bench_arg(argc, argv, 5, 1);

    struct chain *c = calloc((size_t)nthreads, sizeof *c);
    if (!c)
        return 3;
    for (long i = 0; i < nthreads; i++) {
        c[i].blk = calloc(nblocks, sizeof(void *));
        c[i].size = calloc(nblocks, sizeof(size_t));
        c[i].tag = calloc(nblocks, sizeof(uint64_t));
        if (!c[i].blk || !c[i].size || !c[i].tag)
            return 3;
        c[i].nblocks = nblocks;
        c[i].gen = gens;
        c[i].rng = bench_seed(seed * 1000003u + (uint64_t)i);
        c[i].next_tag = (uint64_t)i << 40;
        sem_init(&c[i].done, 0, 0);
    }

    double t0 = bench_now();
    for (long i = 0; i < nthreads; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, &c[i])) {
            fprintf(stderr, "%s: pthread_create failed\n", prog);
            return 3;
        }
        pthread_attr_destroy(&a);
    }
    for (long i = 0; i < nthreads; i++)
        while (sem_wait(&c[i].done))
            ;
    double t1 = bench_now();

    uint64_t sum = 0;
    for (long i = 0; i < nthreads; i++) {
        for (size_t k = 0; k < nblocks; k++) {
            if (c[i].blk[k]) {
                if (bench_check(c[i].blk[k], c[i].size[k], c[i].tag[k]))
                    bench_corrupt(prog, "block changed while live", c[i].tag[k]);
                c[i].sum = bench_mix(c[i].sum, c[i].size[k]);
                free(c[i].blk[k]);
            }
        }
        sum = bench_mix(sum, c[i].sum);
        free(c[i].blk);
        free(c[i].size);
        free(c[i].tag);
    }
    free(c);
    bench_report((double)nthreads * (double)gens * (double)rounds, t1 - t0, sum);
    return 0;
}
