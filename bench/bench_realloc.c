/* bench_realloc ROUNDS [SEED]
 *
 * Buffers grown with realloc the two ways programs grow them: by small steps
 * (1..64 bytes at a time up to 16 KiB, eight buffers grown round-robin, like
 * string builders appending) and by doubling (16 B up to 4 MiB, like vectors).
 * Each growth step fills the new tail with its own byte value; the old
 * contents are spot-checked after every realloc and verified in full when the
 * buffer is done.  One operation = one realloc call.
 */
#include "bench_common.h"

#define NBUF 8
#define STEP_LIMIT (16 * 1024)
#define MAXSEG (STEP_LIMIT + 64)
#define DOUBLE_LIMIT (4 * 1024 * 1024)

static const char *prog;

struct buf {
    unsigned char *p;
    size_t len;
    size_t nseg;
    size_t *end;          /* end offset of each segment */
    unsigned char *val;   /* byte value of each segment */
};

static void grow(struct buf *b, size_t n, unsigned char v)
{
    unsigned char *q = realloc(b->p, n);
    if (!q)
        bench_corrupt(prog, "realloc returned NULL", n);
    if (b->nseg) {
        /* spot check: first byte, last old byte, first byte of the last segment */
        size_t last_start = b->nseg > 1 ? b->end[b->nseg - 2] : 0;
        if (q[0] != b->val[0] || q[b->len - 1] != b->val[b->nseg - 1] ||
            q[last_start] != b->val[b->nseg - 1])
            bench_corrupt(prog, "realloc lost contents", n);
    }
    memset(q + b->len, v, n - b->len);
    b->p = q;
    b->len = n;
    b->end[b->nseg] = n;
    b->val[b->nseg] = v;
    b->nseg++;
}

static uint64_t verify_and_free(struct buf *b)
{
    unsigned bad = 0;
    size_t start = 0;
    uint64_t s = 0;
    for (size_t j = 0; j < b->nseg; j++) {
        unsigned char v = b->val[j];
        for (size_t i = start; i < b->end[j]; i++)
            bad |= (unsigned)(b->p[i] ^ v);
        s = bench_mix(s, (b->end[j] - start) * v);
        start = b->end[j];
    }
    if (bad)
        bench_corrupt(prog, "realloc lost contents (full check)", b->len);
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->nseg = 0;
    return s;
}

int main(int argc, char **argv)
{
    prog = argv[0];
    long rounds = bench_arg(argc, argv, 1, 200);
    uint64_t rng = bench_seed((uint64_t)bench_arg(argc, argv, 2, 1));
    uint64_t sum = 0, ops = 0;
    struct buf b[NBUF + 1];
    for (int k = 0; k <= NBUF; k++) {
        b[k] = (struct buf){0};
        b[k].end = bench_xmalloc(MAXSEG * sizeof(size_t));
        b[k].val = bench_xmalloc(MAXSEG);
    }

    double t0 = bench_now();
    for (long r = 0; r < rounds; r++) {
        /* small steps, interleaved so that growing in place is not free */
        for (int live = NBUF; live > 0;) {
            live = 0;
            for (int k = 0; k < NBUF; k++) {
                if (b[k].len >= STEP_LIMIT)
                    continue;
                live++;
                uint64_t x = bench_rng(&rng);
                grow(&b[k], b[k].len + 1 + (size_t)(x % 64), (unsigned char)(x >> 32));
                ops++;
            }
        }
        for (int k = 0; k < NBUF; k++)
            sum = bench_mix(sum, verify_and_free(&b[k]));

        /* doubling */
        struct buf *d = &b[NBUF];
        for (size_t n = 16; n <= DOUBLE_LIMIT; n *= 2) {
            grow(d, n, (unsigned char)bench_rng(&rng));
            ops++;
        }
        sum = bench_mix(sum, verify_and_free(d));
    }
    double t1 = bench_now();
    for (int k = 0; k <= NBUF; k++) {
        free(b[k].end);
        free(b[k].val);
    }
    bench_report((double)ops, t1 - t0, sum);
    return 0;
}
