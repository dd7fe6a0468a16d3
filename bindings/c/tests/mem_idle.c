/*
 * mem_idle.c: client-side memory of N idle pooled connections.
 *
 *   mem_idle N [URI]
 *
 * Opens a pool with min_size = max_size = N, waits until all N connections
 * are open, borrows every one, runs `SELECT 1 AS a` on each (so each has
 * been used once), gives them all back, waits a moment, and prints
 *
 *   n=N rss_before_kb=... rss_kb=... hwm_kb=...
 *
 * from /proc/self/status (VmRSS before opening the pool, VmRSS and VmHWM
 * with the N idle connections). Run it for two values of N and divide the
 * difference (`make -C bindings/c measure` does). URI: the argument, else
 * SQLPOOL_URL, else a fresh SQLite file in /tmp.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sqlpool.h"

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(key);
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int fail(sqlpool_status st, const char *what)
{
    fprintf(stderr, "mem_idle: %s: %s: %s\n", what, sqlpool_status_name(st),
            sqlpool_last_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || atoi(argv[1]) < 1) {
        fprintf(stderr, "usage: %s N [URI]\n", argv[0]);
        return 2;
    }
    unsigned n = (unsigned)atoi(argv[1]);
    char tmp_db[64] = "", uri_buf[96];
    const char *uri = argc > 2 ? argv[2] : getenv("SQLPOOL_URL");
    if (uri == NULL || *uri == '\0') {
        snprintf(tmp_db, sizeof tmp_db, "/tmp/sqlpool_mem_%ld.db", (long)getpid());
        snprintf(uri_buf, sizeof uri_buf, "sqlite:%s", tmp_db);
        uri = uri_buf;
    }

    (void)sqlpool_version(); /* the library is loaded and initialised */
    long rss_before = status_kb("VmRSS");

    int rc = 1;
    sqlpool_options *o = NULL;
    sqlpool_pool *pool = NULL;
    sqlpool_conn **conns = calloc(n, sizeof *conns);
    sqlpool_status st;
    if (conns == NULL)
        return 1;
    if ((st = sqlpool_options_new(&o)) != SQLPOOL_OK ||
        (st = sqlpool_options_set_min_size(o, n)) != SQLPOOL_OK ||
        (st = sqlpool_options_set_max_size(o, n)) != SQLPOOL_OK ||
        (st = sqlpool_pool_open(uri, o, &pool)) != SQLPOOL_OK) {
        rc = fail(st, "open");
        goto done;
    }
    /* min_size connections open in the background: wait for all of them. */
    for (int i = 0; i < 3000; i++) {
        sqlpool_stats s;
        if ((st = sqlpool_pool_stats(pool, &s, sizeof s)) != SQLPOOL_OK) {
            rc = fail(st, "stats");
            goto done;
        }
        if (s.total >= n && s.pending == 0)
            break;
        sleep_ms(10);
    }
    for (unsigned i = 0; i < n; i++) {
        sqlpool_result *r = NULL;
        if ((st = sqlpool_pool_acquire(pool, 10000, &conns[i])) != SQLPOOL_OK) {
            rc = fail(st, "acquire");
            goto done;
        }
        if ((st = sqlpool_conn_query(conns[i], "SELECT 1 AS a", NULL, &r)) != SQLPOOL_OK) {
            rc = fail(st, "query");
            goto done;
        }
        sqlpool_result_free(r);
    }
    for (unsigned i = 0; i < n; i++) {
        sqlpool_conn_release(conns[i]);
        conns[i] = NULL;
    }
    sleep_ms(300);
    sqlpool_stats s;
    if ((st = sqlpool_pool_stats(pool, &s, sizeof s)) != SQLPOOL_OK) {
        rc = fail(st, "stats");
        goto done;
    }
    printf("n=%u open=%u rss_before_kb=%ld rss_kb=%ld hwm_kb=%ld\n", n, s.total, rss_before,
           status_kb("VmRSS"), status_kb("VmHWM"));
    rc = s.total == n ? 0 : 1;

done:
    for (unsigned i = 0; i < n; i++)
        sqlpool_conn_release(conns[i]);
    free(conns);
    sqlpool_pool_close(pool);
    sqlpool_options_free(o);
    if (tmp_db[0]) {
        char path[80];
        remove(tmp_db);
        snprintf(path, sizeof path, "%s-wal", tmp_db);
        remove(path);
        snprintf(path, sizeof path, "%s-shm", tmp_db);
        remove(path);
    }
    /* Everything was given back: no handle is still live (a forgotten one
       would be invisible to valgrind, handles live in a table). */
    if (sqlpool_live_handles() != 0) {
        fprintf(stderr, "leak: %zu sqlpool handles still live at exit\n", sqlpool_live_handles());
        return 1;
    }
    return rc;
}
