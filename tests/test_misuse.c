/*
 * test_misuse.c - heap misuse in the default (release) build ends in one line
 * `hakmem: <function>(): <what> 0x<pointer>` on stderr and abort():
 *
 *   - free / realloc / malloc_usable_size of an interior pointer, in each
 *     tier (tiny p+16 of a 64-byte block, pool p+256 of a 4 KiB block, large
 *     p+4096 of a 1 MiB block), and free of a pool slot that was never
 *     carved                                      -> "invalid pointer 0x<q>";
 *   - double free, immediately, in each tier      -> "double free 0x<p>";
 *   - double free after other operations: the block in the thread's cache,
 *     flushed from the cache to its slab, returned to its slab by a thread
 *     exit, pushed on its slab's remote-free list by another thread, freed
 *     a second time by another thread while in the owner's cache, in the
 *     pool after other pool traffic, in the large-mapping cache
 *                                                 -> "double free 0x<p>";
 *     realloc() of a freed block                  -> "realloc(): double free"
 *     (or "realloc(): invalid pointer");
 *     C23's free_sized of a freed block            -> "free_sized(): double free";
 *   - free_sized with a size larger than the block holds, in each tier
 *                                                 -> "free_sized(): invalid size";
 *     free_aligned_sized of a block off the alignment, or with an alignment
 *     that is not a power of two                 -> "...: invalid alignment";
 *     free_sized of a pointer hakmem never gave   -> "...: invalid pointer";
 *     the documented exceptions, where the memory may have gone back to the
 *     OS and hakmem no longer knows the address at all, so "invalid pointer
 *     0x<p>" is accepted as well: a large block whose mapping was unmapped
 *     (HAKMEM_LARGE_CACHE_MB=0), and a tiny block whose slab became empty when
 *     its thread exited;
 *   - a write-after-free (or an overflow from the previous block) that
 *     corrupts a freed block's free-list link, followed by mallocs of that
 *     class (for the pool also after the block was flushed from the thread's
 *     cache and malloc_trim returned every list to its pages): the damaged
 *     link must be detected (abort with a `hakmem: ` message) and memory
 *     outside the heap must never be handed out;
 *   - the hardening holds (issue 8): the old self-link attack (word 0 :=
 *     ~word 1) and a link copied from another block, in the cache and on a
 *     remote stack, end in a `hakmem: ` abort or hand out no block twice;
 *     a corrupted cache link followed only by frees aborts when the cache
 *     flushes; no word of a freed block is the stack canary or the canary
 *     XOR an address of a loaded object.
 *
 * Each case runs in a forked child whose stderr is captured through a pipe;
 * the parent checks the signal and the message.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"

/* volatile: the compiler must not see (nor warn about, nor fold) the misuse */
static void *volatile g_p;
static volatile size_t g_sink;

struct outcome {
    int status;     /* from waitpid */
    char err[8192]; /* the child's stderr */
};

/* Runs fn() in a child with stderr on a pipe, no core dump. */
static void run_child(void (*fn)(void), struct outcome *o)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        fn();
        _exit(0); /* survived the misuse: the test fails */
    }
    close(fds[1]);
    test_read_all(fds[0], o->err, sizeof o->err);
    o->status = test_wait(pid);
}

static const char *describe(const struct outcome *o, char *buf, size_t n)
{
    if (WIFSIGNALED(o->status))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(o->status),
                 strsignal(WTERMSIG(o->status)));
    else
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(o->status));
    return buf;
}

/* fn() must abort with exactly "hakmem: <func>(): <what> <ptr>" on a line of
 * its own (what2 is a second accepted <what>, or NULL). */
static void expect_abort(void (*fn)(void), const char *func, const char *what, const char *what2,
                         const void *ptr)
{
    struct outcome o;
    char d[128];
    run_child(fn, &o);
    ck_assert_msg(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT,
                  "expected SIGABRT with 'hakmem: %s(): %s %p', child %s; stderr: '%s'", func,
                  what, ptr, describe(&o, d, sizeof d), o.err);
    char want[256], want2[256];
    snprintf(want, sizeof want, "hakmem: %s(): %s %p\n", func, what, ptr);
    snprintf(want2, sizeof want2, "hakmem: %s(): %s %p\n", func, what2 ? what2 : what, ptr);
    ck_assert_msg(strstr(o.err, want) || strstr(o.err, want2), "expected '%s'%s%s on stderr, got '%s'",
                  strtok(want, "\n"), what2 ? " or " : "", what2 ? strtok(want2, "\n") : "", o.err);
}

/* The child must have aborted with some "hakmem: " message, and not have
 * been handed memory outside the heap (its exit status 3). */
static void assert_hakmem_abort(const struct outcome *o, const char *what)
{
    char d[128];
    ck_assert_msg(!(WIFEXITED(o->status) && WEXITSTATUS(o->status) == 3),
                  "%s: malloc handed out memory outside the heap; stderr: '%s'", what, o->err);
    ck_assert_msg(WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGABRT,
                  "%s: expected SIGABRT with a hakmem: message, child %s; stderr: '%s'", what,
                  describe(o, d, sizeof d), o->err);
    ck_assert_msg(strstr(o->err, "hakmem: ") != NULL, "%s: no 'hakmem: ' message; stderr: '%s'",
                  what, o->err);
}

/* fn() must abort with some "hakmem: " message (free-list corruption). */
static void expect_abort_any(void (*fn)(void), const char *what)
{
    struct outcome o;
    run_child(fn, &o);
    assert_hakmem_abort(&o, what);
}

/* ------------------------------------------------------------- blocks */

#define TINY_SIZE 64
#define TINY_OFF 16
#define POOL_SIZE 4096
#define POOL_OFF 256
#define LARGE_SIZE (1u << 20)
#define LARGE_OFF 4096

/* A live block of `size`, recorded in g_p; returns g_p + off. */
static void *block_at(size_t size, size_t off)
{
    char *p = malloc(size);
    ck_assert_ptr_nonnull(p);
    memset(p, 0x5a, size);
    g_p = p;
    return p + off;
}

static void *volatile g_q; /* the pointer misused */

static void do_free(void) { free(g_q); }
static void do_realloc(void) { g_sink = (size_t)realloc(g_q, 100); }
static void do_usable(void) { g_sink = malloc_usable_size(g_q); }

static void interior(size_t size, size_t off)
{
    g_q = block_at(size, off);
    expect_abort(do_free, "free", "invalid pointer", NULL, g_q);
    expect_abort(do_realloc, "realloc", "invalid pointer", NULL, g_q);
    expect_abort(do_usable, "malloc_usable_size", "invalid pointer", NULL, g_q);
    /* the parent's block is untouched and still valid */
    ck_assert_uint_ge(malloc_usable_size(g_p), size);
    free(g_p);
}

START_TEST(interior_tiny) { interior(TINY_SIZE, TINY_OFF); }
END_TEST
START_TEST(interior_pool) { interior(POOL_SIZE, POOL_OFF); }
END_TEST
START_TEST(interior_large) { interior(LARGE_SIZE, LARGE_OFF); }
END_TEST

/* pool: the slot after a block that a fresh page just carved was never
 * handed out; freeing it must be refused (it would be handed out twice). */
#define POOL_FRESH_SIZE 45000 /* a class no other test here uses */
START_TEST(uncarved_pool)
{
    char *p = malloc(POOL_FRESH_SIZE);
    ck_assert_ptr_nonnull(p);
    g_p = p;
    g_q = p + malloc_usable_size(p);
    expect_abort(do_free, "free", "invalid pointer", NULL, g_q);
    expect_abort(do_usable, "malloc_usable_size", "invalid pointer", NULL, g_q);
    free(p);
}
END_TEST

/* pool: a block in a later unit of a page of several units (45,000-byte
 * blocks: pages of eight 64 KiB units), freed with all its page's blocks and
 * given back by malloc_trim: its unit now belongs to no page, and its record
 * still names the old page's first unit.  A second free of the block must be
 * refused, before and after pages of another class reuse the units. */
#define POOL_MULTI_SIZE 45000
#define POOL_MULTI_BLOCKS 64
START_TEST(stale_unit_pool)
{
    char *p[POOL_MULTI_BLOCKS];
    for (int i = 0; i < POOL_MULTI_BLOCKS; i++) {
        p[i] = malloc(POOL_MULTI_SIZE);
        ck_assert_ptr_nonnull(p[i]);
    }
    /* the block furthest into its 512 KiB page: a unit after the first */
    char *far = p[0];
    for (int i = 1; i < POOL_MULTI_BLOCKS; i++)
        if (((uintptr_t)p[i] & (512 * 1024 - 1)) > ((uintptr_t)far & (512 * 1024 - 1)))
            far = p[i];
    ck_assert_uint_ge((uintptr_t)far & (512 * 1024 - 1), 64 * 1024);
    for (int i = 0; i < POOL_MULTI_BLOCKS; i++)
        free(p[i]);
    malloc_trim(0);

    g_q = far;
    expect_abort(do_free, "free", "invalid pointer", NULL, g_q);
    /* pages of a one-unit class over the same units: 2,304-byte blocks,
     * none of which starts at far's offset in its unit (0xf000 is no
     * multiple of 2304), so that far cannot have become a live block */
    ck_assert_uint_ne(((uintptr_t)far & 0xffff) % 2304, 0);
    char *q[POOL_MULTI_BLOCKS * 8];
    for (int i = 0; i < POOL_MULTI_BLOCKS * 8; i++) {
        q[i] = malloc(2304);
        ck_assert_ptr_nonnull(q[i]);
    }
    expect_abort(do_free, "free", "invalid pointer", NULL, g_q);
    for (int i = 0; i < POOL_MULTI_BLOCKS * 8; i++)
        free(q[i]);
}
END_TEST

/* A few more interior offsets per tier (still never a block start). */
START_TEST(interior_more)
{
    static const size_t cases[][2] = {
        {16, 8}, {48, 16}, {1024, 512}, {1025, 16}, {53248, 4096}, {53249, 16}, {200000, 65536},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        g_q = block_at(cases[i][0], cases[i][1]);
        expect_abort(do_free, "free", "invalid pointer", NULL, g_q);
        free(g_p);
    }
}
END_TEST

/* The start of a tiny block's 64 KiB slab: where the slab's record is (and
 * where a superslab's header is, for slab 0), never a block. */
START_TEST(slab_record)
{
    g_p = malloc(TINY_SIZE);
    ck_assert_ptr_nonnull(g_p);
    g_q = (void *)((uintptr_t)g_p & ~(uintptr_t)0xffff);
    expect_abort(do_free, "free", "invalid pointer", NULL, g_q);
    expect_abort(do_usable, "malloc_usable_size", "invalid pointer", NULL, g_q);
    free(g_p);
}
END_TEST

/* ------------------------------------------------------------- double free */

static size_t g_size;

static void df_immediate(void)
{
    void *p = g_p;
    free(p);
    free(p);
}

static void double_free_immediate(size_t size)
{
    g_size = size;
    g_p = malloc(size);
    ck_assert_ptr_nonnull(g_p);
    expect_abort(df_immediate, "free", "double free", NULL, g_p);
    free(g_p);
}

START_TEST(df_immediate_tiny) { double_free_immediate(TINY_SIZE); }
END_TEST
START_TEST(df_immediate_tiny16) { double_free_immediate(16); }
END_TEST
START_TEST(df_immediate_pool) { double_free_immediate(POOL_SIZE); }
END_TEST
START_TEST(df_immediate_large) { double_free_immediate(LARGE_SIZE); }
END_TEST

/* Through the prefixed API too. */
static void df_hak(void)
{
    void *p = g_p;
    hak_free(p);
    hak_free(p);
}
START_TEST(df_immediate_hak_api)
{
    static const size_t sizes[] = {TINY_SIZE, POOL_SIZE, LARGE_SIZE};
    for (int i = 0; i < 3; i++) {
        g_p = hak_malloc(sizes[i]);
        ck_assert_ptr_nonnull(g_p);
        expect_abort(df_hak, "free", "double free", NULL, g_p);
        hak_free(g_p);
    }
}
END_TEST

/* realloc of a freed block is the same misuse. */
static void df_realloc(void)
{
    void *p = g_p;
    free(p);
    g_sink = (size_t)realloc(p, g_size * 2);
}
START_TEST(df_realloc_each_tier)
{
    static const size_t sizes[] = {TINY_SIZE, POOL_SIZE, LARGE_SIZE};
    for (int i = 0; i < 3; i++) {
        g_size = sizes[i];
        g_p = malloc(sizes[i]);
        ck_assert_ptr_nonnull(g_p);
        expect_abort(df_realloc, "realloc", "double free", "invalid pointer", g_p);
        free(g_p);
    }
}
END_TEST

/* tiny, in the thread cache: other classes are used in between */
static void df_tiny_cache(void)
{
    void *p = g_p;
    free(p);
    for (int i = 0; i < 100; i++) {
        void *a = malloc(16 + (size_t)(i % 7) * 100);
        void *b = calloc(1, 200);
        free(a);
        free(b);
    }
    free(p);
}
START_TEST(df_tiny_in_cache)
{
    g_p = malloc(TINY_SIZE);
    expect_abort(df_tiny_cache, "free", "double free", NULL, g_p);
    free(g_p);
}
END_TEST

/* tiny, flushed: thousands of frees of the same class after it overflow the
 * thread cache several times, so batches go back to the slab. */
#define MANY 20000
static void *g_many[MANY];
static void df_tiny_flushed(void)
{
    void *p = g_p;
    free(p);
    for (int i = 0; i < MANY; i++)
        free(g_many[i]);
    for (int i = 0; i < 50; i++) /* other classes come and go */
        free(malloc(200));
    free(p);
}
/* Neighbours of p, allocated just before and after it and never freed in the
 * child: p's slab or page stays in use, so p sits on a free list and cannot
 * have gone back to the OS (where "invalid pointer" would be the answer). */
static void *g_keep_before, *g_keep_after;
static void alloc_p_with_neighbours(size_t size)
{
    g_keep_before = malloc(size);
    g_p = malloc(size);
    g_keep_after = malloc(size);
}
static void free_neighbours(void)
{
    free(g_keep_before);
    free(g_keep_after);
}

START_TEST(df_tiny_after_flush)
{
    /* blocks allocated before p, so none of them is p */
    for (int i = 0; i < MANY; i++)
        g_many[i] = malloc(TINY_SIZE);
    alloc_p_with_neighbours(TINY_SIZE);
    expect_abort(df_tiny_flushed, "free", "double free", NULL, g_p);
    for (int i = 0; i < MANY; i++)
        free(g_many[i]);
    free(g_p);
    free_neighbours();
}
END_TEST

/* tiny: the block is freed early, then half of a slab's worth of the same class
 * is allocated and freed in a different order (first freed, first reused) */
static void df_tiny_churn(void)
{
    void *p = g_p;
    free(p);
    for (int i = 0; i < MANY; i++)
        free(g_many[i]);
    /* reallocate most of them: p may be handed out again here; if so it is
     * live and freed once more below, then the final free is a double free */
    for (int i = 0; i < MANY; i++)
        g_many[i] = malloc(TINY_SIZE);
    for (int i = MANY - 1; i >= 0; i--)
        free(g_many[i]);
    free(p);
}
START_TEST(df_tiny_after_churn)
{
    for (int i = 0; i < MANY; i++)
        g_many[i] = malloc(TINY_SIZE);
    alloc_p_with_neighbours(TINY_SIZE);
    expect_abort(df_tiny_churn, "free", "double free", NULL, g_p);
}
END_TEST

/* tiny: freed by a thread that then exits (its cache goes back to the slab).
 * The thread keeps a second block of the slab alive (handed to the main
 * thread), so the slab stays in use and the block sits on its free list. */
static void *volatile g_keep;
static void *thread_free(void *arg)
{
    free(arg);
    return NULL;
}
static void *thread_alloc_free(void *arg)
{
    void *p = malloc(TINY_SIZE);
    g_keep = arg ? malloc(TINY_SIZE) : NULL;
    g_p = p;
    free(p);
    return NULL;
}
static void df_tiny_thread_exit(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, thread_alloc_free, g_keep) != 0 || pthread_join(t, NULL) != 0)
        _exit(4);
    /* g_p was allocated and freed by the exited thread */
    char msg[64];
    int n = snprintf(msg, sizeof msg, "ptr %p\n", g_p);
    g_sink = (size_t)write(STDERR_FILENO, msg, (size_t)n);
    free(g_p);
}
/* keep: whether the slab keeps a live block; without one, the slab may have
 * gone back to the OS and "invalid pointer" is the documented answer. */
static void thread_exit_case(bool keep)
{
    struct outcome o;
    char d[128];
    g_keep = keep ? (void *)1 : NULL;
    run_child(df_tiny_thread_exit, &o);
    void *p = NULL;
    const char *s = strstr(o.err, "ptr ");
    ck_assert_msg(s && sscanf(s, "ptr %p", &p) == 1, "child printed no pointer: '%s'", o.err);
    char w1[128], w2[128];
    snprintf(w1, sizeof w1, "hakmem: free(): double free %p\n", p);
    snprintf(w2, sizeof w2, "hakmem: free(): invalid pointer %p\n", p);
    ck_assert_msg(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT &&
                      (strstr(o.err, w1) || (!keep && strstr(o.err, w2))),
                  "expected SIGABRT and 'hakmem: free(): double free %p'%s, child %s; "
                  "stderr: '%s'",
                  p, keep ? "" : " (or invalid pointer)", describe(&o, d, sizeof d), o.err);
}
START_TEST(df_tiny_after_thread_exit) { thread_exit_case(true); }
END_TEST
START_TEST(df_tiny_after_thread_exit_empty_slab) { thread_exit_case(false); }
END_TEST

/* tiny: freed by another thread (remote free onto the owner's slab) */
static void df_tiny_remote(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, thread_free, g_p) != 0 || pthread_join(t, NULL) != 0)
        _exit(4);
    free(g_p);
}
START_TEST(df_tiny_after_remote_free)
{
    g_p = malloc(TINY_SIZE);
    expect_abort(df_tiny_remote, "free", "double free", NULL, g_p);
    free(g_p);
}
END_TEST

/* double free from the other thread, after the owner freed it */
static void *thread_free_twice_target(void *arg)
{
    free(arg);
    return NULL;
}
static void df_tiny_remote2(void)
{
    free(g_p);
    pthread_t t;
    if (pthread_create(&t, NULL, thread_free_twice_target, g_p) != 0)
        _exit(4);
    pthread_join(t, NULL);
}
START_TEST(df_tiny_remote_second)
{
    g_p = malloc(TINY_SIZE);
    expect_abort(df_tiny_remote2, "free", "double free", NULL, g_p);
    free(g_p);
}
END_TEST

/* ---- C23's free_sized and free_aligned_sized ---- */

void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

static volatile size_t g_n, g_align;

static void sized_call(void) { free_sized(g_p, g_n); }
static void aligned_sized_call(void) { free_aligned_sized(g_p, g_align, g_n); }

/* A size one byte more than the block holds, in each tier. */
START_TEST(sized_too_big)
{
    static const size_t sizes[] = {TINY_SIZE, POOL_SIZE, LARGE_SIZE, 8u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        g_p = malloc(sizes[i]);
        ck_assert_ptr_nonnull(g_p);
        g_n = malloc_usable_size(g_p) + 1;
        expect_abort(sized_call, "free_sized", "invalid size", NULL, g_p);
        g_n = sizes[i];
        free_sized(g_p, g_n); /* the right size frees it */
    }
}
END_TEST

/* free_sized of a block freed already, in each tier (a large block whose run
 * went back may read as not hakmem's at all). */
START_TEST(sized_double_free)
{
    static const size_t sizes[] = {TINY_SIZE, POOL_SIZE, LARGE_SIZE};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        g_p = malloc(sizes[i]);
        ck_assert_ptr_nonnull(g_p);
        free(g_p);
        g_n = sizes[i];
        expect_abort(sized_call, "free_sized", "double free", "invalid pointer", g_p);
    }
}
END_TEST

START_TEST(sized_bad_alignment)
{
    /* a 64-byte aligned block that is not 128-byte aligned: one of two
     * neighbours of 64 bytes */
    void *a = aligned_alloc(64, 64), *b = aligned_alloc(64, 64);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    g_p = (uintptr_t)a % 128 ? a : b;
    if ((uintptr_t)g_p % 128 == 0)
        ck_abort_msg("two 64-byte blocks %p and %p both 128-byte aligned", a, b);
    g_n = 64;
    g_align = 128;
    expect_abort(aligned_sized_call, "free_aligned_sized", "invalid alignment", NULL, g_p);
    g_align = 48;
    expect_abort(aligned_sized_call, "free_aligned_sized", "invalid alignment", NULL, g_p);
    g_align = 64;
    g_n = 65536;
    expect_abort(aligned_sized_call, "free_aligned_sized", "invalid size", NULL, g_p);
    free_aligned_sized(a, 64, 64);
    free_aligned_sized(b, 64, 64);
}
END_TEST

START_TEST(sized_foreign)
{
    static char not_heap[64];
    g_p = not_heap;
    g_n = 8;
    expect_abort(sized_call, "free_sized", "invalid pointer", NULL, g_p);
}
END_TEST

/* pool: other pool traffic between the two frees */
static void df_pool_traffic(void)
{
    void *p = g_p;
    free(p);
    void *keep[64];
    for (int i = 0; i < 64; i++)
        keep[i] = malloc(POOL_SIZE + (size_t)(i % 3) * 8192);
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    free(p);
}
START_TEST(df_pool_after_traffic)
{
    void *pre[200];
    for (int i = 0; i < 200; i++) /* let the block not be the first of its page */
        pre[i] = malloc(POOL_SIZE);
    g_p = malloc(POOL_SIZE);
    expect_abort(df_pool_traffic, "free", "double free", NULL, g_p);
    for (int i = 0; i < 200; i++)
        free(pre[i]);
    free(g_p);
}
END_TEST

/* pool: many frees of the same class after it (flushed from any cache) */
static void df_pool_flushed(void)
{
    void *p = g_p;
    free(p);
    for (int i = 0; i < 2000; i++)
        free(g_many[i]);
    free(p);
}
START_TEST(df_pool_after_flush)
{
    for (int i = 0; i < 2000; i++)
        g_many[i] = malloc(POOL_SIZE);
    alloc_p_with_neighbours(POOL_SIZE);
    expect_abort(df_pool_flushed, "free", "double free", NULL, g_p);
    for (int i = 0; i < 2000; i++)
        free(g_many[i]);
    free(g_p);
    free_neighbours();
}
END_TEST

/* pool: freed by another thread (which then exits), then freed again; a
 * neighbour stays allocated, so the page is in use and the block is on a
 * free list (not unmapped) */
static void df_pool_thread(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, thread_free, g_p) != 0 || pthread_join(t, NULL) != 0)
        _exit(4);
    free(g_p);
}
START_TEST(df_pool_after_remote_free)
{
    void *keep = malloc(POOL_SIZE);
    g_p = malloc(POOL_SIZE);
    void *keep2 = malloc(POOL_SIZE);
    expect_abort(df_pool_thread, "free", "double free", NULL, g_p);
    free(g_p);
    free(keep);
    free(keep2);
}
END_TEST

/* large: the freed mapping sits in the large cache while other work runs */
static void df_large_cached(void)
{
    void *p = g_p;
    free(p);
    for (int i = 0; i < 20; i++)
        free(malloc(100 + (size_t)i * 3000));
    void *other = malloc(256 * 1024); /* a different large size */
    free(other);
    free(p);
}
START_TEST(df_large_in_cache)
{
    g_p = malloc(LARGE_SIZE);
    expect_abort(df_large_cached, "free", "double free", NULL, g_p);
    free(g_p);
}
END_TEST

/* large with the cache off (HAKMEM_LARGE_CACHE_MB=0, read at start-up, so a
 * fresh process is exec'd): the mapping goes back to the OS and hakmem no
 * longer knows the address: "invalid pointer" is the documented answer,
 * "double free" is accepted too. */
static const char *g_self;
static void df_large_nocache_exec(void)
{
    setenv("HAKMEM_LARGE_CACHE_MB", "0", 1);
    execl(g_self, g_self, "--large-nocache-child", (char *)NULL);
    _exit(5);
}
static int large_nocache_child(void)
{
    void *p = malloc(LARGE_SIZE);
    if (!p)
        return 6;
    char msg[64];
    int n = snprintf(msg, sizeof msg, "ptr %p\n", p);
    g_sink = (size_t)write(STDERR_FILENO, msg, (size_t)n);
    g_p = p;
    free(g_p);
    free(g_p);
    return 0;
}
START_TEST(df_large_without_cache)
{
    struct outcome o;
    char d[128];
    run_child(df_large_nocache_exec, &o);
    void *p = NULL;
    const char *s = strstr(o.err, "ptr ");
    ck_assert_msg(s && sscanf(s, "ptr %p", &p) == 1, "child printed no pointer: '%s' (%s)", o.err,
                  describe(&o, d, sizeof d));
    char w1[128], w2[128];
    snprintf(w1, sizeof w1, "hakmem: free(): double free %p\n", p);
    snprintf(w2, sizeof w2, "hakmem: free(): invalid pointer %p\n", p);
    ck_assert_msg(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT &&
                      (strstr(o.err, w1) || strstr(o.err, w2)),
                  "expected SIGABRT and a double free / invalid pointer report, child %s; "
                  "stderr: '%s'",
                  describe(&o, d, sizeof d), o.err);
}
END_TEST

/* ------------------------------------------------ free-list corruption */

/* Memory outside the heap whose address is planted in freed blocks. */
static char g_victim[1 << 16] __attribute__((aligned(4096)));

static bool outside_heap(const void *q)
{
    uintptr_t a = (uintptr_t)q, v = (uintptr_t)g_victim;
    return a >= v - 4096 && a < v + sizeof g_victim + 4096;
}

/* mallocs of `size` until one fails a check: exit 3 if memory outside the
 * heap is handed out; hakmem should abort before. */
static void malloc_until_caught(size_t size, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        void *q = malloc(size);
        if (q && outside_heap(q))
            _exit(3);
        if (q)
            memset(q, 0, size); /* use it, as a program would */
    }
}

static uintptr_t g_plant;

/* Writes the planted value over every word of the freed block: wherever
 * the allocator keeps its link, it is damaged. */
static void plant(void *p, size_t size)
{
    uintptr_t *w = p;
    for (size_t i = 0; i < size / sizeof *w; i++)
        w[i] = g_plant;
}

static void uaf_tiny(void)
{
    void *p = g_p;
    free(p);
    plant(p, TINY_SIZE); /* write after free */
    malloc_until_caught(TINY_SIZE, 100000);
}

static void uaf_tiny_first_word(void)
{
    void *p = g_p;
    free(p);
    *(uintptr_t *)p = g_plant; /* just the first word */
    malloc_until_caught(TINY_SIZE, 100000);
}

static void uaf_pool(void)
{
    void *p = g_p;
    free(p);
    plant(p, 64); /* the start of the block */
    malloc_until_caught(POOL_SIZE, 20000);
}

/* Only the second word: the link is intact, its mark is not.  malloc's
 * fast pop checks the mark of the block it hands out, in the pool as in the
 * tiny tier, so the damage is caught at the next malloc of the class. */
static void uaf_pool_second_word(void)
{
    void *p = g_p;
    free(p);
    ((uintptr_t *)p)[1] = g_plant;
    void *q = malloc(POOL_SIZE); /* p is the head of its class's cache */
    (void)q;
    _exit(0); /* not caught */
}

/* A damaged link in a pool block that then travels: enough frees of its
 * class to push it out of the thread's cache, then malloc_trim, which
 * returns every list to its pages, then mallocs. */
static void uaf_pool_travel(void)
{
    enum { N = 600 };
    static void *blk[N];
    for (int i = 0; i < N; i++)
        blk[i] = malloc(POOL_SIZE);
    void *p = g_p;
    free(p);
    plant(p, 64);
    for (int i = 0; i < N; i++)
        free(blk[i]);
    malloc_trim(0);
    malloc_until_caught(POOL_SIZE, 20000);
}

START_TEST(uaf_tiny_outside)
{
    g_plant = (uintptr_t)(g_victim + 4096);
    g_p = malloc(TINY_SIZE);
    expect_abort_any(uaf_tiny, "tiny write-after-free (link to static data)");
    g_p = malloc(TINY_SIZE);
    expect_abort_any(uaf_tiny_first_word, "tiny write-after-free of the first word");
}
END_TEST

START_TEST(uaf_tiny_garbage)
{
    g_plant = (uintptr_t)0x4141414141414141ull;
    g_p = malloc(TINY_SIZE);
    expect_abort_any(uaf_tiny, "tiny write-after-free (garbage)");
    g_p = malloc(TINY_SIZE);
    expect_abort_any(uaf_tiny_first_word, "tiny write-after-free of the first word (garbage)");
}
END_TEST

START_TEST(uaf_tiny_other_slab)
{
    /* a link into the heap, but to a block of another class (another slab) */
    void *other = malloc(512);
    g_plant = (uintptr_t)other;
    g_p = malloc(TINY_SIZE);
    expect_abort_any(uaf_tiny, "tiny write-after-free (link into another slab)");
    free(other);
}
END_TEST

/* overflow of a live block into the next block, which is free */
static void overflow_tiny(void)
{
    /* find two neighbours a, b = a + TINY_SIZE among fresh blocks */
    char *blk[256];
    char *a = NULL, *b = NULL;
    for (int i = 0; i < 256; i++)
        blk[i] = malloc(TINY_SIZE);
    for (int i = 0; i < 256 && !a; i++)
        for (int j = 0; j < 256; j++)
            if (blk[j] == blk[i] + TINY_SIZE) {
                a = blk[i];
                b = blk[j];
                break;
            }
    if (!a)
        _exit(7);
    free(b);
    memset(a, 0x41, TINY_SIZE + 16); /* 16 bytes too many: into free b */
    malloc_until_caught(TINY_SIZE, 100000);
}
START_TEST(overflow_into_free_tiny)
{
    expect_abort_any(overflow_tiny, "tiny overflow into the next (free) block");
}
END_TEST

/* fn() on a freed POOL_SIZE block, damaged once with an address outside
 * the heap and once with garbage, must abort with a hakmem: message. */
static void uaf_pool_each_plant(void (*fn)(void), const char *what)
{
    static const char *const kinds[] = {"link to static data", "garbage"};
    const uintptr_t plants[] = {(uintptr_t)(g_victim + 4096),
                                (uintptr_t)0x4141414141414141ull};
    for (int i = 0; i < 2; i++) {
        char desc[128];
        snprintf(desc, sizeof desc, "%s (%s)", what, kinds[i]);
        g_plant = plants[i];
        g_p = malloc(POOL_SIZE);
        expect_abort_any(fn, desc);
    }
}

START_TEST(uaf_pool_outside)
{
    uaf_pool_each_plant(uaf_pool, "pool write-after-free");
}
END_TEST

START_TEST(uaf_pool_mark_only)
{
    uaf_pool_each_plant(uaf_pool_second_word, "pool write-after-free of the free mark");
}
END_TEST

START_TEST(uaf_pool_flushed)
{
    uaf_pool_each_plant(uaf_pool_travel, "pool write-after-free, flushed and trimmed");
}
END_TEST

/* ------------------------------------- the hardening must hold (issue 8) */

/* fn() must abort with "hakmem: " on stderr, or return having checked that
 * no block was handed out twice (exit 4) and none outside the heap (exit 3). */
static void expect_abort_or_sound(void (*fn)(void), const char *what)
{
    struct outcome o;
    run_child(fn, &o);
    if (WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0)
        return; /* survived, soundly */
    ck_assert_msg(!(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 4),
                  "%s: malloc handed out the same memory twice; stderr: '%s'", what, o.err);
    assert_hakmem_abort(&o, what);
}

#define SOUND_ROUNDS 20000
static uintptr_t g_got[SOUND_ROUNDS];

static int cmp_uintptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* In the child: `rounds` mallocs of `size`, all kept live and untouched (a
 * write could repair a damaged link); exit 3 if one is outside the heap, 4
 * if two overlap. */
static void malloc_all_distinct(size_t size, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        void *q = malloc(size);
        if (q && outside_heap(q))
            _exit(3);
        g_got[i] = (uintptr_t)q;
    }
    qsort(g_got, (size_t)rounds, sizeof g_got[0], cmp_uintptr);
    for (int i = 1; i < rounds; i++)
        if (g_got[i - 1] && g_got[i] - g_got[i - 1] < size)
            _exit(4);
}

/* The old self-link attack: word 0 := ~word 1 made the link decode to the
 * block itself, and every later malloc returned that block. */
static void self_link_uaf(void)
{
    uintptr_t *p = g_p;
    free(p);
    p[0] = ~p[1];
    malloc_all_distinct(TINY_SIZE, SOUND_ROUNDS);
}

/* A link copied from another free block. */
static void copied_link_uaf(void)
{
    uintptr_t *p = malloc(TINY_SIZE), *q = malloc(TINY_SIZE);
    free(q);
    free(p);
    p[0] = q[0];
    malloc_all_distinct(TINY_SIZE, SOUND_ROUNDS);
}

START_TEST(self_link_tiny)
{
    g_p = malloc(TINY_SIZE);
    expect_abort_or_sound(self_link_uaf, "tiny self-link write-after-free");
    expect_abort_or_sound(copied_link_uaf, "tiny link copied from another block");
}
END_TEST

/* A corrupted link in the thread's cache, then only frees: enough of them
 * that the cache must give blocks back to its slabs, which follows the
 * links.  It must abort there (not crash, not write where the link points).
 * The first half of the frees fills the cache and its transfer stack, so
 * that the list holding the corrupted block is one that goes back to the
 * slabs when it overflows (a list that goes onto the stack is walked only
 * later). */
#define FLUSH_FREES 100000
static void *g_flush[FLUSH_FREES];
static void corrupt_then_flush(void)
{
    for (int i = 0; i < FLUSH_FREES; i++)
        g_flush[i] = malloc(TINY_SIZE);
    for (int i = 1; i < FLUSH_FREES / 2; i++)
        free(g_flush[i]);
    free(g_flush[0]);
    *(uintptr_t *)g_flush[0] = g_plant;
    for (int i = FLUSH_FREES / 2; i < FLUSH_FREES; i++)
        free(g_flush[i]);
    _exit(0);
}

START_TEST(corrupt_link_then_flush)
{
    g_plant = (uintptr_t)(g_victim + 4096);
    expect_abort_any(corrupt_then_flush, "corrupted cache link, then frees until a flush");
    g_plant = (uintptr_t)0x4141414141414141ull;
    expect_abort_any(corrupt_then_flush, "garbage cache link, then frees until a flush");
}
END_TEST

/* A block on its slab's remote stack (freed by another thread) whose link
 * is then overwritten so that it names the block itself (the old attack),
 * or garbage.  The owner drains the stack at its refills and at malloc_trim. */
static uintptr_t *volatile g_remote;
static void *remote_free_corrupt(void *arg)
{
    (void)arg;
    uintptr_t *p = g_remote;
    free(p);
    p[0] = g_plant ? g_plant : ~p[1];
    return NULL;
}

static void remote_self_link(void)
{
    g_remote = malloc(TINY_SIZE);
    pthread_t th;
    if (pthread_create(&th, NULL, remote_free_corrupt, NULL) != 0)
        _exit(5);
    pthread_join(th, NULL);
    malloc_all_distinct(TINY_SIZE, SOUND_ROUNDS);
    malloc_trim(0);
    malloc_all_distinct(TINY_SIZE, SOUND_ROUNDS);
}

START_TEST(remote_stack_self_link)
{
    g_plant = 0;
    expect_abort_or_sound(remote_self_link, "self-linked block on a remote stack");
    g_plant = (uintptr_t)0x4141414141414141ull;
    expect_abort_any(remote_self_link, "garbage link on a remote stack");
}
END_TEST

/* No word of a freed block may be the stack canary, or the canary XOR an
 * address inside a loaded object (what a key made from AT_RANDOM leaked). */
struct segs {
    uintptr_t lo[256], hi[256];
    int n;
};

static int collect_segs(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct segs *sg = arg;
    for (int i = 0; i < info->dlpi_phnum && sg->n < 256; i++) {
        if (info->dlpi_phdr[i].p_type != PT_LOAD)
            continue;
        sg->lo[sg->n] = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
        sg->hi[sg->n] = sg->lo[sg->n] + info->dlpi_phdr[i].p_memsz;
        sg->n++;
    }
    return 0;
}

static struct segs g_segs;

static void check_no_canary(const uintptr_t *w, size_t words, uintptr_t canary)
{
    for (size_t i = 0; i < words; i++) {
        ck_assert_msg(w[i] != canary, "word %zu of a freed block is the stack canary", i);
        uintptr_t x = w[i] ^ canary;
        for (int k = 0; k < g_segs.n; k++)
            ck_assert_msg(x < g_segs.lo[k] || x >= g_segs.hi[k],
                          "word %zu of a freed block is the canary XOR an address in a loaded "
                          "object", i);
    }
}

static void *free_in_thread(void *arg)
{
    void **v = arg;
    for (int i = 0; i < 64; i++)
        free(v[i]);
    return NULL;
}

START_TEST(no_canary_in_free_blocks)
{
    uintptr_t canary;
    __asm__ volatile("mov %%fs:0x28, %0" : "=r"(canary));
    dl_iterate_phdr(collect_segs, &g_segs);
    ck_assert_int_gt(g_segs.n, 0);
    static const size_t sizes[] = {16, 32, 48, 64, 128, 256, 512, 1024};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t sz = sizes[k];
        void *local[300], *remote[64];
        for (int i = 0; i < 300; i++)
            local[i] = malloc(sz);
        for (int i = 0; i < 64; i++)
            remote[i] = malloc(sz);
        /* freed here (thread cache, and back to the slabs past the cap) and
         * by another thread (remote stack); list ends included */
        for (int i = 0; i < 300; i++)
            free(local[i]);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, free_in_thread, remote), 0);
        pthread_join(th, NULL);
        for (int i = 0; i < 300; i++)
            check_no_canary(local[i], sz / sizeof(uintptr_t), canary);
        for (int i = 0; i < 64; i++)
            check_no_canary(remote[i], sz / sizeof(uintptr_t), canary);
    }
}
END_TEST

/* ------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    g_self = "/proc/self/exe";
    if (argc > 1 && strcmp(argv[1], "--large-nocache-child") == 0)
        return large_nocache_child();
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        g_self = strdup(self);
    }

    Suite *s = suite_create("misuse");
    TCase *tc = tcase_create("interior");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, interior_tiny);
    tcase_add_test(tc, interior_pool);
    tcase_add_test(tc, interior_large);
    tcase_add_test(tc, interior_more);
    tcase_add_test(tc, slab_record);
    tcase_add_test(tc, uncarved_pool);
    tcase_add_test(tc, stale_unit_pool);
    suite_add_tcase(s, tc);

    tc = tcase_create("double_free");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, df_immediate_tiny);
    tcase_add_test(tc, df_immediate_tiny16);
    tcase_add_test(tc, df_immediate_pool);
    tcase_add_test(tc, df_immediate_large);
    tcase_add_test(tc, df_immediate_hak_api);
    tcase_add_test(tc, df_realloc_each_tier);
    tcase_add_test(tc, df_tiny_in_cache);
    tcase_add_test(tc, df_tiny_after_flush);
    tcase_add_test(tc, df_tiny_after_churn);
    tcase_add_test(tc, df_tiny_after_thread_exit);
    tcase_add_test(tc, df_tiny_after_thread_exit_empty_slab);
    tcase_add_test(tc, df_tiny_after_remote_free);
    tcase_add_test(tc, df_tiny_remote_second);
    tcase_add_test(tc, df_pool_after_traffic);
    tcase_add_test(tc, df_pool_after_flush);
    tcase_add_test(tc, df_pool_after_remote_free);
    tcase_add_test(tc, df_large_in_cache);
    tcase_add_test(tc, df_large_without_cache);
    suite_add_tcase(s, tc);

    tc = tcase_create("sized");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sized_too_big);
    tcase_add_test(tc, sized_double_free);
    tcase_add_test(tc, sized_bad_alignment);
    tcase_add_test(tc, sized_foreign);
    suite_add_tcase(s, tc);

    tc = tcase_create("corruption");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, uaf_tiny_outside);
    tcase_add_test(tc, uaf_tiny_garbage);
    tcase_add_test(tc, uaf_tiny_other_slab);
    tcase_add_test(tc, overflow_into_free_tiny);
    tcase_add_test(tc, uaf_pool_outside);
    tcase_add_test(tc, self_link_tiny);
    tcase_add_test(tc, corrupt_link_then_flush);
    tcase_add_test(tc, remote_stack_self_link);
    tcase_add_test(tc, no_canary_in_free_blocks);
    tcase_add_test(tc, uaf_pool_mark_only);
    tcase_add_test(tc, uaf_pool_flushed);
    suite_add_tcase(s, tc);

    return test_run_suite(s);
}
