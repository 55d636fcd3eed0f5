/* bench_bursts ROUNDS [GAP_MS] [SEED]
 *
 * ROUNDS bursts of 40 blocks of 100..140 KB, every byte written, all freed,
 * then GAP_MS (default 20) milliseconds asleep: a server handling requests
 * now and then.  An allocator that gives freed pages back sooner than the
 * gaps refaults them in every burst; one that never gives them back keeps
 * them all through the idle time.  Reports the CPU time per operation (not
 * the wall time, which is mostly sleep), the page faults, the RSS at the end
 * of the bursts and the RSS after an idle time of IDLE_MS (the environment
 * variable BENCH_IDLE_MS, default 2500) followed by one more malloc/free.
 * This is how hakmem's default HAKMEM_PURGE_DELAY_MS was chosen (hakmem(7)).
 * One operation = one malloc + fill + free.
 */
#include "bench_common.h"
#include <sys/resource.h>

#define NBLOCKS 40

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int main(int argc, char **argv)
{
    long rounds = bench_arg(argc, argv, 1, 100);
    long gap = bench_arg(argc, argv, 2, 20);
    uint64_t rng = bench_seed((uint64_t)bench_arg(argc, argv, 3, 1));
    const char *idle_env = getenv("BENCH_IDLE_MS");
    long idle = idle_env ? atol(idle_env) : 2500;
    unsigned char *b[NBLOCKS];
    size_t size[NBLOCKS];
    uint64_t sum = 0;

    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < NBLOCKS; i++) {
            size[i] = bench_range(&rng, 100 * 1000, 140 * 1000);
            b[i] = bench_xmalloc(size[i]);
            memset(b[i], (int)(r + i), size[i]);
            bench_stamp(b[i], size[i], (uint64_t)(r * NBLOCKS + i));
        }
        for (int i = 0; i < NBLOCKS; i++) {
            if (bench_check(b[i], size[i], (uint64_t)(r * NBLOCKS + i)))
                bench_corrupt(argv[0], "block changed while live", (uint64_t)r);
            sum = bench_mix(sum, size[i]);
            free(b[i]);
        }
        sleep_ms(gap);
    }
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    double cpu = (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                 (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
    long rss_end = bench_status_kb("VmRSS");
    sleep_ms(idle);
    void *p = bench_xmalloc(100 * 1000);
    BENCH_ESCAPE(p);
    free(p);
    printf("Page faults = %ld\n", u.ru_minflt);
    printf("RSS at end = %ld kB\n", rss_end);
    printf("RSS after idle = %ld kB\n", bench_status_kb("VmRSS"));
    bench_report((double)(rounds * NBLOCKS), cpu, sum);
    return 0;
}
