/*
 * pool_stress.c: many threads sharing one pool.
 *
 *   pool_stress [-j JOBS] [-t THREADS] [-m MIN] [-M MAX] [-H HOLD_MS] [URI]
 *
 * Defaults: 1000 jobs, 50 worker threads, pool min 5 / max 30, each job
 * holding its connection for 5 ms. Each job acquires a connection, runs
 * `SELECT 1 AS a`, checks the value is 1, holds the connection, releases
 * it. Prints the timing, the error count and the highest `in_use` seen in
 * `sqlpool_pool_stats` (which must never exceed MAX); exits 1 on any error.
 *
 * URI: the argument, else SQLPOOL_URL, else a fresh SQLite file in /tmp
 * (removed at exit).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sqlpool.h"

static sqlpool_pool *pool;
static long jobs = 1000, hold_ms = 5;
static atomic_long next_job;
static atomic_long errors;
static atomic_uint max_in_use;
static atomic_uint max_total;

static void report(sqlpool_status st, const char *what, long job)
{
    const char *sqlstate = sqlpool_last_error_sqlstate();
    fprintf(stderr, "job %ld: %s: %s: %s%s%s\n", job, what, sqlpool_status_name(st),
            sqlpool_last_error_message(), *sqlstate ? " SQLSTATE " : "", sqlstate);
    atomic_fetch_add(&errors, 1);
}

static void atomic_max(atomic_uint *slot, unsigned v)
{
    unsigned cur = atomic_load(slot);
    while (v > cur && !atomic_compare_exchange_weak(slot, &cur, v)) {
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        long job = atomic_fetch_add(&next_job, 1);
        if (job >= jobs)
            return NULL;

        sqlpool_conn *conn = NULL;
        sqlpool_result *res = NULL;
        sqlpool_status st = sqlpool_pool_acquire(pool, -1, &conn);
        if (st != SQLPOOL_OK) {
            report(st, "acquire", job);
            continue;
        }
        st = sqlpool_conn_query(conn, "SELECT 1 AS a", NULL, &res);
        if (st != SQLPOOL_OK) {
            report(st, "query", job);
        } else {
            int64_t a = 0;
            st = sqlpool_result_get_int64(res, 0, 0, &a);
            if (st != SQLPOOL_OK) {
                report(st, "get_int64", job);
            } else if (a != 1) {
                fprintf(stderr, "job %ld: SELECT 1 returned %" PRId64 "\n", job, a);
                atomic_fetch_add(&errors, 1);
            }
            sqlpool_result_free(res);
        }

        sqlpool_stats stats;
        st = sqlpool_pool_stats(pool, &stats, sizeof stats);
        if (st != SQLPOOL_OK) {
            report(st, "stats", job);
        } else {
            atomic_max(&max_in_use, stats.in_use);
            atomic_max(&max_total, stats.total);
        }

        if (hold_ms > 0)
            sleep_ms(hold_ms);
        st = sqlpool_conn_release(conn);
        if (st != SQLPOOL_OK)
            report(st, "release", job);
    }
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-j JOBS] [-t THREADS] [-m MIN] [-M MAX] [-H HOLD_MS] [URI]\n",
            argv0);
    return 2;
}

static int parse_long(const char *s, long min, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long threads = 50, min_size = 5, max_size = 30;
    int opt;
    while ((opt = getopt(argc, argv, "j:t:m:M:H:")) != -1) {
        long *target = opt == 'j' ? &jobs
                     : opt == 't' ? &threads
                     : opt == 'm' ? &min_size
                     : opt == 'M' ? &max_size
                     : opt == 'H' ? &hold_ms
                                  : NULL;
        long min = (opt == 'm' || opt == 'H') ? 0 : 1;
        if (target == NULL || parse_long(optarg, min, target) != 0)
            return usage(argv[0]);
    }
    if (argc - optind > 1 || min_size > max_size)
        return usage(argv[0]);

    char tmp_db[64] = "";
    char uri_buf[96];
    const char *uri = optind < argc ? argv[optind] : getenv("SQLPOOL_URL");
    if (uri == NULL || *uri == '\0') {
        snprintf(tmp_db, sizeof tmp_db, "/tmp/sqlpool_stress_%ld.db", (long)getpid());
        snprintf(uri_buf, sizeof uri_buf, "sqlite:%s", tmp_db);
        uri = uri_buf;
    }

    int rc = 1;
    sqlpool_options *opts = NULL;
    pthread_t *tids = NULL;
    long started = 0;

    sqlpool_status st = sqlpool_options_new(&opts);
    if (st == SQLPOOL_OK)
        st = sqlpool_options_set_min_size(opts, (uint32_t)min_size);
    if (st == SQLPOOL_OK)
        st = sqlpool_options_set_max_size(opts, (uint32_t)max_size);
    if (st == SQLPOOL_OK)
        st = sqlpool_options_set_acquire_timeout_ms(opts, 60000);
    if (st == SQLPOOL_OK)
        st = sqlpool_pool_open(uri, opts, &pool);
    if (st != SQLPOOL_OK) {
        fprintf(stderr, "cannot open the pool: %s: %s\n", sqlpool_status_name(st),
                sqlpool_last_error_message());
        goto cleanup;
    }
    printf("pool_stress: %ld jobs, %ld threads, pool min %ld / max %ld, hold %ld ms, %s\n",
           jobs, threads, min_size, max_size, hold_ms,
           strncmp(uri, "postgres", 8) == 0 ? "PostgreSQL" : "SQLite");

    tids = calloc((size_t)threads, sizeof *tids);
    if (tids == NULL) {
        fprintf(stderr, "out of memory\n");
        goto cleanup;
    }
    double t0 = now_s();
    for (; started < threads; started++) {
        int err = pthread_create(&tids[started], NULL, worker, NULL);
        if (err != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(err));
            atomic_fetch_add(&errors, 1);
            break;
        }
    }
    for (long i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    double elapsed = now_s() - t0;

    sqlpool_stats stats;
    st = sqlpool_pool_stats(pool, &stats, sizeof stats);
    if (st != SQLPOOL_OK) {
        fprintf(stderr, "stats: %s: %s\n", sqlpool_status_name(st), sqlpool_last_error_message());
        goto cleanup;
    }
    unsigned seen = atomic_load(&max_in_use);
    long nerr = atomic_load(&errors);
    printf("  %ld jobs in %.3f s (%.0f jobs/s)\n", jobs, elapsed, (double)jobs / elapsed);
    printf("  errors: %ld\n", nerr);
    printf("  max in_use seen: %u (limit %ld); max open: %u\n", seen, max_size,
           atomic_load(&max_total));
    printf("  acquires: %" PRIu64 ", connections created: %" PRIu64
           ", wait max %.1f ms, avg %.3f ms, timeouts %" PRIu64 "\n",
           stats.acquires, stats.created, (double)stats.wait_max_us / 1000.0,
           stats.acquires ? (double)stats.wait_total_us / 1000.0 / (double)stats.acquires : 0.0,
           stats.acquire_timeouts);
    printf("  now: %u open, %u idle, %u in use\n", stats.total, stats.idle, stats.in_use);

    if (nerr != 0) {
        fprintf(stderr, "FAIL: %ld errors\n", nerr);
    } else if (seen > (unsigned)max_size || atomic_load(&max_total) > (unsigned)max_size) {
        fprintf(stderr, "FAIL: pool exceeded max_size %ld\n", max_size);
    } else if (stats.in_use != 0) {
        fprintf(stderr, "FAIL: %u connections still in use\n", stats.in_use);
    } else if (stats.acquires < (uint64_t)jobs) {
        fprintf(stderr, "FAIL: only %" PRIu64 " acquires\n", stats.acquires);
    } else {
        printf("  OK\n");
        rc = 0;
    }

cleanup:
    free(tids);
    sqlpool_pool_close(pool);
    sqlpool_options_free(opts);
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
