/*
 * report.c - hakmem's messages on stderr: misuse reports, internal errors and
 * warnings.  Formats into a stack buffer and write()s: never allocates.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void emit(const char *fmt, va_list ap)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "hakmem: ");
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}

void hak_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(fmt, ap);
    va_end(ap);
}

void hak_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(fmt, ap);
    va_end(ap);
    abort();
}

void hak_fatal_ptr(const char *func, const char *what, const void *p)
{
    hak_fatal("%s(): %s %p", func, what, p);
}
