/*
 * consumer-plain.c - an ordinary program that knows nothing of hakmem; run
 * by tests/consumers.sh with only LD_PRELOAD=<installed libhakmem.so.0> and
 * HAKMEM_STATS=1, which must then report allocations in every tier.
 *
 * It allocates in all three size ranges (tiny, pool, large), keeps a
 * checksum over the contents so that a broken heap shows in the output, and
 * prints the same line with and without the preload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    static const size_t sizes[] = { 1, 16, 100, 1000, 2000, 8192, 40000, 70000, 300000 };
    enum { NSIZES = sizeof sizes / sizeof sizes[0], ROUNDS = 200 };
    unsigned long sum = 0;
    int r, i;

    for (r = 0; r < ROUNDS; r++) {
        unsigned char *blocks[NSIZES];

        for (i = 0; i < NSIZES; i++) {
            blocks[i] = malloc(sizes[i]);
            if (blocks[i] == NULL) {
                perror("malloc");
                return 1;
            }
            memset(blocks[i], (r + i) & 0xff, sizes[i]);
        }
        for (i = 0; i < NSIZES; i++) {
            blocks[i] = realloc(blocks[i], sizes[i] + 1);
            if (blocks[i] == NULL) {
                perror("realloc");
                return 1;
            }
            sum += blocks[i][sizes[i] - 1] + blocks[i][0];
        }
        for (i = 0; i < NSIZES; i++)
            free(blocks[i]);
    }
    printf("consumer-plain: checksum %lu\n", sum);
    return 0;
}
