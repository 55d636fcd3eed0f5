/* bench_cross_thread COUNT [SEED]
 *
 * One producer thread allocates blocks of 16 B..1 KiB, fills them and hands
 * them in batches of 256 to a consumer thread, which checks and frees them.
 * Every free is a remote free: models pipelines and message passing between
 * threads.  Batches go through a bounded queue (at most 16 in flight) under
 * a mutex and condition variables, so a waiting thread sleeps instead of
 * spinning and the figure depends on the allocator more than on how the
 * scheduler places the two threads.  One operation = one block allocated,
 * handed over and freed.
 */
#include "bench_common.h"
#include <pthread.h>

#define BATCH 256
#define INFLIGHT 16

struct msg {
    uint64_t seq;
    size_t size;
};

struct batch {
    struct msg *m[BATCH];
    int n;
};

static struct batch queue[INFLIGHT];
static int q_head, q_count; /* ring of INFLIGHT batches */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_nonempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_nonfull = PTHREAD_COND_INITIALIZER;

static long count;
static uint64_t seed;
static uint64_t consumer_sum;
static const char *prog;

static void *producer(void *arg)
{
    (void)arg;
    uint64_t rng = bench_seed(seed);
    struct batch b;
    b.n = 0;
    for (long i = 0; i < count; i++) {
        size_t n = bench_range(&rng, 16, 1024);
        struct msg *m = malloc(n);
        if (!m)
            bench_corrupt(prog, "malloc returned NULL", (uint64_t)i);
        m->seq = (uint64_t)i;
        m->size = n;
        if (n > sizeof *m)
            ((unsigned char *)m)[n - 1] = bench_tag((uint64_t)i);
        b.m[b.n++] = m;
        if (b.n == BATCH || i == count - 1) {
            pthread_mutex_lock(&q_lock);
            while (q_count == INFLIGHT)
                pthread_cond_wait(&q_nonfull, &q_lock);
            queue[(q_head + q_count) % INFLIGHT] = b;
            q_count++;
            pthread_cond_signal(&q_nonempty);
            pthread_mutex_unlock(&q_lock);
            b.n = 0;
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    uint64_t sum = 0;
    struct batch b;
    for (long i = 0; i < count;) {
        pthread_mutex_lock(&q_lock);
        while (q_count == 0)
            pthread_cond_wait(&q_nonempty, &q_lock);
        b = queue[q_head];
        q_head = (q_head + 1) % INFLIGHT;
        q_count--;
        pthread_cond_signal(&q_nonfull);
        pthread_mutex_unlock(&q_lock);
        for (int j = 0; j < b.n; j++, i++) {
            struct msg *m = b.m[j];
            if (m->seq != (uint64_t)i || m->size < sizeof *m || m->size > 1024 ||
                (m->size > sizeof *m &&
                 ((unsigned char *)m)[m->size - 1] != bench_tag((uint64_t)i)))
                bench_corrupt(prog, "message changed in flight", (uint64_t)i);
            sum = bench_mix(sum, m->size);
            free(m);
        }
    }
    consumer_sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    prog = argv[0];
    count = bench_arg(argc, argv, 1, 2000000);
    seed = (uint64_t)bench_arg(argc, argv, 2, 1);

    pthread_t pt, ct;
    double t0 = bench_now();
    if (pthread_create(&ct, NULL, consumer, NULL) ||
        pthread_create(&pt, NULL, producer, NULL)) {
        fprintf(stderr, "%s: pthread_create failed\n", prog);
        return 3;
    }
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    double t1 = bench_now();
    bench_report((double)count, t1 - t0, consumer_sum);
    return 0;
}
