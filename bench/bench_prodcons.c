/* bench_prodcons COUNT [THREADS] [SIZE] [SEED] [ORDER]
 *
 * Like mimalloc-bench's xmalloc-testN: THREADS producer threads (default 4)
 * allocate blocks of SIZE bytes (default 64; 0: random sizes of 16 B..2 KiB),
 * stamp them and hand them in batches of 4096 to THREADS consumer threads,
 * which check and free them: every free is a remote free, and what a
 * consumer frees the allocator must get back to the producers.  Batches go
 * through one bounded queue of at most 100 in flight, so the live data is
 * bounded and peak RSS shows how much freed memory the allocator strands.
 * ORDER "fifo" (the default) takes the oldest batch first; "lifo" the newest,
 * as xmalloc-test's bag (a stack) does, so that some batches wait long while
 * newer ones come and go.  One operation = one block allocated, handed over
 * and freed; COUNT blocks in all.
 */
#include "bench_common.h"
#include <pthread.h>
#include <stdbool.h>

#define BATCH 4096
#define INFLIGHT 100
#define MAX_THREADS 64

struct batch {
    unsigned char *b[BATCH];
    size_t size[BATCH];
    uint64_t tag[BATCH];
    int n;
};

static struct batch *queue[INFLIGHT];
static int q_head, q_count, producers_left;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_nonempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_nonfull = PTHREAD_COND_INITIALIZER;
static bool lifo;
static long per_producer;
static size_t block_size;
static uint64_t seed;
static const char *prog;

static void put(struct batch *b)
{
    pthread_mutex_lock(&q_lock);
    while (q_count == INFLIGHT)
        pthread_cond_wait(&q_nonfull, &q_lock);
    queue[(q_head + q_count++) % INFLIGHT] = b;
    pthread_cond_signal(&q_nonempty);
    pthread_mutex_unlock(&q_lock);
}

/* The next batch, or NULL once every producer is done and the queue empty. */
static struct batch *get(void)
{
    pthread_mutex_lock(&q_lock);
    while (q_count == 0 && producers_left > 0)
        pthread_cond_wait(&q_nonempty, &q_lock);
    struct batch *b = NULL;
    if (q_count && lifo) {
        b = queue[(q_head + --q_count) % INFLIGHT];
        pthread_cond_signal(&q_nonfull);
    } else if (q_count) {
        b = queue[q_head];
        q_head = (q_head + 1) % INFLIGHT;
        q_count--;
        pthread_cond_signal(&q_nonfull);
    }
    pthread_mutex_unlock(&q_lock);
    return b;
}

static void *producer(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t rng = bench_seed(seed * 1000 + id);
    for (long i = 0; i < per_producer; i += BATCH) {
        struct batch *b = bench_xmalloc(sizeof *b);
        b->n = per_producer - i < BATCH ? (int)(per_producer - i) : BATCH;
        for (int j = 0; j < b->n; j++) {
            size_t n = block_size ? block_size : bench_range(&rng, 16, 2048);
            b->b[j] = bench_xmalloc(n);
            b->size[j] = n;
            b->tag[j] = id << 40 | (uint64_t)(i + j);
            bench_stamp(b->b[j], n, b->tag[j]);
        }
        put(b);
    }
    pthread_mutex_lock(&q_lock);
    producers_left--;
    pthread_cond_broadcast(&q_nonempty);
    pthread_mutex_unlock(&q_lock);
    return NULL;
}

static void *consumer(void *arg)
{
    uint64_t *sum = arg;
    struct batch *b;
    while ((b = get())) {
        for (int j = 0; j < b->n; j++) {
            if (bench_check(b->b[j], b->size[j], b->tag[j]))
                bench_corrupt(prog, "block changed in flight", b->tag[j]);
            *sum += b->size[j] ^ b->tag[j]; /* order-free: a sum */
            free(b->b[j]);
        }
        free(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    prog = argv[0];
    long count = bench_arg(argc, argv, 1, 4000000);
    int threads = (int)bench_arg(argc, argv, 2, 4);
    block_size = argc > 3 ? (size_t)atol(argv[3]) : 64;
    seed = (uint64_t)bench_arg(argc, argv, 4, 1);
    lifo = argc > 5 && strcmp(argv[5], "lifo") == 0;
    if (argc > 5 && !lifo && strcmp(argv[5], "fifo") != 0) {
        fprintf(stderr, "%s: ORDER must be fifo or lifo, not %s\n", prog, argv[5]);
        return 64;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    per_producer = count / threads;
    producers_left = threads;
    pthread_t p[MAX_THREADS], c[MAX_THREADS];
    uint64_t sums[MAX_THREADS] = {0};

    double t0 = bench_now();
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&c[i], NULL, consumer, &sums[i]) ||
            pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)i))
            return 3;
    }
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(p[i], NULL);
        pthread_join(c[i], NULL);
    }
    double t1 = bench_now();
    for (int i = 0; i < threads; i++)
        sum += sums[i];
    bench_report((double)per_producer * threads, t1 - t0, sum);
    return 0;
}
