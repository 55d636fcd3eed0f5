/*
 * options.c - parsing of the HAKMEM_* environment options.  A malformed value
 * gets a one-line warning and the default; nothing here allocates.
 */
#include "options.h"

#include <stdlib.h>
#include <string.h>

struct hak_options hak_opt = {
    .stats = false,
    .pool_trace = false,
    .tiny_batch_refill = true,
    .large_cache_bytes = (size_t)64 << 20,
    .purge_delay_ms = 1000,
};

static void read_bool(const char *name, bool *out)
{
    const char *v = getenv(name);
    if (!v)
        return;
    if (strcmp(v, "1") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "0") == 0 || strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
        *out = false;
    else
        hak_warn("ignoring malformed %s='%s' (expected 0 or 1; using %d)", name, v, (int)*out);
}

static void read_size(const char *name, size_t max, size_t *out)
{
    const char *v = getenv(name);
    if (!v)
        return;
    size_t n = 0;
    const char *s = v;
    if (*s == '\0')
        goto bad;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || n > max / 10)
            goto bad;
        n = n * 10 + (size_t)(*s - '0');
    }
    if (n > max)
        goto bad;
    *out = n;
    return;
bad:
    hak_warn("ignoring malformed %s='%s' (expected a number up to %zu; using %zu)", name, v, max,
             *out);
}

void hak_options_init(void)
{
    read_bool("HAKMEM_STATS", &hak_opt.stats);
    read_bool("HAKMEM_POOL_TRACE", &hak_opt.pool_trace);
    read_bool("HAKMEM_TINY_P0_BATCH_REFILL", &hak_opt.tiny_batch_refill);
    size_t mb = hak_opt.large_cache_bytes >> 20;
    read_size("HAKMEM_LARGE_CACHE_MB", 1 << 20, &mb);
    hak_opt.large_cache_bytes = mb << 20;
    size_t delay = (size_t)hak_opt.purge_delay_ms;
    read_size("HAKMEM_PURGE_DELAY_MS", 3600u * 1000u, &delay);
    hak_opt.purge_delay_ms = delay;
}
