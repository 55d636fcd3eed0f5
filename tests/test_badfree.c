/*
 * test_badfree.c - misuse is reported and aborts, never silently corrupts:
 * free(), realloc() and malloc_usable_size() of pointers hakmem never handed
 * out (stack, static data, read-only data, an mmap'd page, a 2 MiB-aligned
 * foreign mapping) must print
 *     hakmem: free(): invalid pointer 0x<the pointer>
 * (resp. realloc(), malloc_usable_size()) on stderr and die by SIGABRT.
 * Each case runs in a child process whose stderr is captured with a pipe.
 */
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"

enum op { OP_FREE, OP_REALLOC, OP_USABLE, OP_HAK_FREE, OP_HAK_REALLOC, OP_HAK_USABLE };

static const char *const op_name[] = {
    [OP_FREE] = "free",       [OP_REALLOC] = "realloc",       [OP_USABLE] = "malloc_usable_size",
    [OP_HAK_FREE] = "free",   [OP_HAK_REALLOC] = "realloc",   [OP_HAK_USABLE] = "malloc_usable_size",
};

/* volatile so the compiler cannot see (and warn about) what is freed */
static void *volatile g_bad_ptr;
static volatile size_t g_sink;

static void do_op(enum op op)
{
    void *p = g_bad_ptr;
    switch (op) {
    case OP_FREE: free(p); break;
    case OP_REALLOC: g_sink = (size_t)realloc(p, 100); break;
    case OP_USABLE: g_sink = malloc_usable_size(p); break;
    case OP_HAK_FREE: hak_free(p); break;
    case OP_HAK_REALLOC: g_sink = (size_t)hak_realloc(p, 100); break;
    case OP_HAK_USABLE: g_sink = hak_malloc_usable_size(p); break;
    }
}

/* Runs op on p in a child; checks that it died by SIGABRT and printed
 * "hakmem: <func>(): invalid pointer 0x<p>". */
static void expect_abort(enum op op, void *p, const char *what)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    g_bad_ptr = p;
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core); /* don't dump core on the expected abort */
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        do_op(op);
        _exit(0); /* survived: the test fails */
    }
    close(fds[1]);
    char buf[4096];
    test_read_all(fds[0], buf, sizeof buf);
    int st = test_wait(pid);

    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                  "%s(%s %p): expected death by SIGABRT, got %s %d; stderr: \"%s\"",
                  op_name[op], what, p, WIFSIGNALED(st) ? "signal" : "exit status",
                  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), buf);

    char want[128];
    snprintf(want, sizeof want, "hakmem: %s(): invalid pointer 0x", op_name[op]);
    const char *hit = strstr(buf, want);
    ck_assert_msg(hit != NULL, "%s(%s %p): stderr lacks \"%s\": \"%s\"", op_name[op], what, p,
                  want, buf);
    unsigned long long shown = strtoull(hit + strlen(want), NULL, 16);
    ck_assert_msg(shown == (unsigned long long)(uintptr_t)p,
                  "%s(%s): message names 0x%llx, the pointer was %p", op_name[op], what, shown, p);
}

static char g_static_buf[256] __attribute__((aligned(64)));
static const char g_rodata[64] __attribute__((aligned(16))) = "read-only data";

static void all_ops(void *p, const char *what)
{
    for (int op = OP_FREE; op <= OP_HAK_USABLE; op++)
        expect_abort((enum op)op, p, what);
}

START_TEST(test_stack_pointer)
{
    char stack_buf[128] __attribute__((aligned(16)));
    memset(stack_buf, 1, sizeof stack_buf);
    all_ops(stack_buf, "stack");
    all_ops(stack_buf + 32, "stack");
}
END_TEST

START_TEST(test_static_pointer)
{
    all_ops(g_static_buf, "static");
    all_ops(g_static_buf + 16, "static");
    all_ops((void *)g_rodata, "rodata");
}
END_TEST

START_TEST(test_mmap_pointer)
{
    /* a page from mmap, and the 2 MiB-aligned start of a foreign mapping
     * (what the allocator's own chunks look like) */
    size_t len = 6u << 20;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(m != MAP_FAILED);
    unsigned char *aligned = (unsigned char *)(((uintptr_t)m + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
    memset(aligned, 0, 4096);
    all_ops(m + 4096, "mmap");
    all_ops(aligned, "2 MiB-aligned mmap");
    all_ops(aligned + 64, "2 MiB-aligned mmap");
    munmap(m, len);
}
END_TEST

START_TEST(test_valid_pointers_still_work)
{
    /* sanity: the same calls on real blocks do not abort */
    void *p = malloc(100);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(malloc_usable_size(p), 100);
    p = realloc(p, 5000);
    ck_assert_ptr_nonnull(p);
    free(p);
    p = hak_malloc(70000);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(hak_malloc_usable_size(p), 70000);
    hak_free(p);
}
END_TEST

static Suite *badfree_suite(void)
{
    Suite *s = suite_create("badfree");
    TCase *tc = tcase_create("badfree");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stack_pointer);
    tcase_add_test(tc, test_static_pointer);
    tcase_add_test(tc, test_mmap_pointer);
    tcase_add_test(tc, test_valid_pointers_still_work);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(badfree_suite());
}
