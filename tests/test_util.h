/*
 * test_util.h - what the Check suites of tests/ share: REQUIRE, the size
 * units, running a suite, and collecting a child's output and status.
 * Static functions: each test program includes it once.
 */
#ifndef HAKMEM_TEST_UTIL_H
#define HAKMEM_TEST_UTIL_H

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Fails the running test with the message unless cond holds.  Like
 * ck_assert_msg, but silent when it holds: every ck_assert* that passes sends
 * a message to Check's parent process, far too slow in inner loops. */
#define REQUIRE(cond, ...)                                                           \
    do {                                                                             \
        if (!(cond))                                                                 \
            ck_abort_msg(__VA_ARGS__);                                               \
    } while (0)

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Runs suite s (Check's default: each test in a child of its own) and gives
 * main's exit status. */
static inline int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Reads fd into buf (size bytes, NUL-terminated) until EOF, or until buf is
 * full, and closes fd; returns the length.  Reading a child's pipe to EOF
 * waits for the child to exit: a child that hangs makes the test hang,
 * which the Check timeout turns into a failure. */
static inline size_t test_read_all(int fd, char *buf, size_t size)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == size - 1)
            break;
    }
    buf[len] = '\0';
    close(fd);
    return len;
}

/* Waits for child pid (through EINTR); returns its waitpid status, or -1
 * if waitpid failed. */
static inline int test_wait(pid_t pid)
{
    int status;
    pid_t r;
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    return r == pid ? status : -1;
}

#endif
