/* sqlpool's side of the C scenarios of `make bench` (bench/run.py runs it,
 * alternating with bench_floor and r2d2_floor, and compares medians).
 *
 *   bench_sqlpool info URI                       {"sqlpool": version, "server": version}
 *   bench_sqlpool setup-pg URI FETCH_ROWS        creates bench_fetch and bench_insert
 *   bench_sqlpool setup-sqlite URI POINT_ROWS [FETCH_ROWS]  bench_point, bench_insert (and bench_fetch)
 *   bench_sqlpool acquire URI THREADS ITERS fast|verified
 *   bench_sqlpool select1 URI ITERS
 *   bench_sqlpool point URI ITERS POINT_ROWS     (SQLite)
 *   bench_sqlpool fetch URI                      every cell through the getters
 *   bench_sqlpool fetch-columns URI              every cell through column_data
 *   bench_sqlpool insert URI ROWS                one execute per row, one transaction
 *   bench_sqlpool insert-batch URI ROWS          sqlpool_conn_execute_many (one list, many sets)
 *   bench_sqlpool stream-fetch URI               bench_fetch streamed in chunks, every cell
 *   bench_sqlpool stream URI ROWS                ROWS generated rows streamed (id, name); peak RSS
 *   bench_sqlpool copy URI ROWS                  the insert rows through COPY FROM STDIN (text)
 *
 * Timed loops are preceded by a warm-up; each prints one JSON line:
 * ns_per_op (per acquire+release, query, lookup) or ms (whole fetch/insert),
 * and maxrss_kb (the process's peak RSS).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlpool.h"
#include "bench_common.h"

static void fail(const char *what) {
    fprintf(stderr, "bench_sqlpool: %s failed: %s: %s\n", what,
            sqlpool_status_name(sqlpool_last_error_status()), sqlpool_last_error_message());
    exit(1);
}

#define CHECK(call)                                  \
    do {                                             \
        if ((call) != SQLPOOL_OK) fail(#call);       \
    } while (0)

static int is_sqlite(const char *uri) {
    return strncmp(uri, "sqlite:", 7) == 0 || strncmp(uri, "file:", 5) == 0;
}

static sqlpool_pool *open_pool(const char *uri, uint32_t size, uint32_t recycling) {
    sqlpool_options *opts = NULL;
    sqlpool_pool *pool = NULL;
    CHECK(sqlpool_options_new(&opts));
    CHECK(sqlpool_options_set_max_size(opts, size));
    CHECK(sqlpool_options_set_min_size(opts, size));
    CHECK(sqlpool_options_set_recycling(opts, recycling));
    CHECK(sqlpool_pool_open(uri, opts, &pool));
    sqlpool_options_free(opts);
    return pool;
}

/* ---- info, setup -------------------------------------------------------- */

static int cmd_info(const char *uri) {
    sqlpool_pool *pool = open_pool(uri, 1, SQLPOOL_RECYCLE_FAST);
    sqlpool_result *r = NULL;
    const char *sql = is_sqlite(uri) ? "SELECT sqlite_version()" : "SHOW server_version";
    CHECK(sqlpool_pool_query(pool, sql, NULL, &r));
    const char *v = NULL;
    uintptr_t len = 0;
    CHECK(sqlpool_result_get_text(r, 0, 0, &v, &len));
    printf("{\"sqlpool\": \"%s\", \"server\": \"%.*s\"}\n", sqlpool_version(), (int)len, v);
    sqlpool_result_free(r);
    sqlpool_pool_close(pool);
    return 0;
}

static int cmd_setup_pg(const char *uri, long rows) {
    sqlpool_pool *pool = open_pool(uri, 1, SQLPOOL_RECYCLE_FAST);
    sqlpool_conn *conn = NULL;
    CHECK(sqlpool_pool_acquire(pool, -1, &conn));
    char sql[1024];
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS bench_fetch;"
             "CREATE TABLE bench_fetch AS SELECT i::integer AS id, 'name-' || i AS name,"
             " i * 0.25::float8 AS value,"
             " timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' AS ts,"
             " decode(md5(i::text), 'hex') AS data"
             " FROM generate_series(1, %ld) AS i;"
             "ANALYZE bench_fetch;"
             "DROP TABLE IF EXISTS bench_insert;"
             "CREATE TABLE bench_insert (id integer, name text, value float8);",
             rows);
    CHECK(sqlpool_conn_execute_script(conn, sql));
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    return 0;
}

static int cmd_setup_sqlite(const char *uri, long rows, long fetch_rows) {
    sqlpool_pool *pool = open_pool(uri, 1, SQLPOOL_RECYCLE_FAST);
    sqlpool_conn *conn = NULL;
    CHECK(sqlpool_pool_acquire(pool, -1, &conn));
    char sql[2048];
    /* bench_fetch: the PostgreSQL table's columns, in SQLite's types. */
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS bench_point;"
             "CREATE TABLE bench_point (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL NOT NULL);"
             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %ld)"
             " INSERT INTO bench_point SELECT i, 'name-' || i, i * 0.25 FROM c;"
             "DROP TABLE IF EXISTS bench_insert;"
             "CREATE TABLE bench_insert (id INTEGER, name TEXT, value REAL);"
             "DROP TABLE IF EXISTS bench_fetch;"
             "CREATE TABLE bench_fetch (id INTEGER, name TEXT, value REAL, ts TEXT, data BLOB);"
             "WITH RECURSIVE c(i) AS (SELECT 1 WHERE %ld > 0 UNION ALL SELECT i + 1 FROM c WHERE i < %ld)"
             " INSERT INTO bench_fetch SELECT i, 'name-' || i, i * 0.5,"
             " datetime(1700000000 + i * 60, 'unixepoch'), zeroblob(16) FROM c;",
             rows, fetch_rows, fetch_rows);
    CHECK(sqlpool_conn_execute_script(conn, sql));
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    return 0;
}

/* ---- 1. acquire + release ---------------------------------------------- */

struct acquire_arg {
    sqlpool_pool *pool;
    long iters;
    pthread_barrier_t *barrier;
    double start, end; /* this thread's own clock readings */
};

static void *acquire_thread(void *p) {
    struct acquire_arg *a = p;
    pthread_barrier_wait(a->barrier);
    a->start = bench_now_ns();
    for (long i = 0; i < a->iters; i++) {
        sqlpool_conn *conn = NULL;
        CHECK(sqlpool_pool_acquire(a->pool, -1, &conn));
        CHECK(sqlpool_conn_release(conn));
    }
    a->end = bench_now_ns();
    return NULL;
}

static int cmd_acquire(const char *uri, long threads, long iters, const char *recycling) {
    uint32_t method = strcmp(recycling, "fast") == 0 ? SQLPOOL_RECYCLE_FAST : SQLPOOL_RECYCLE_VERIFIED;
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "bad THREADS\n");
        return 2;
    }
    sqlpool_pool *pool = open_pool(uri, (uint32_t)threads, method);
    /* Warm-up: every connection open and used once, then a few rounds. */
    sqlpool_conn *held[64];
    for (long t = 0; t < threads; t++) CHECK(sqlpool_pool_acquire(pool, -1, &held[t]));
    for (long t = 0; t < threads; t++) CHECK(sqlpool_conn_release(held[t]));
    long warm = iters / 10 > 10 ? iters / 10 : 10;
    for (long i = 0; i < warm; i++) {
        sqlpool_conn *conn = NULL;
        CHECK(sqlpool_pool_acquire(pool, -1, &conn));
        CHECK(sqlpool_conn_release(conn));
    }
    /* Elapsed: from the first thread's start to the last thread's end. */
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    pthread_t tids[64];
    struct acquire_arg args[64];
    for (long t = 0; t < threads; t++) {
        args[t] = (struct acquire_arg){pool, iters, &barrier, 0, 0};
        pthread_create(&tids[t], NULL, acquire_thread, &args[t]);
    }
    double start = 0, end = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        if (t == 0 || args[t].start < start) start = args[t].start;
        if (args[t].end > end) end = args[t].end;
    }
    double elapsed = end - start;
    pthread_barrier_destroy(&barrier);
    sqlpool_pool_close(pool);
    printf("{\"ns_per_op\": %.1f}\n", elapsed / ((double)threads * (double)iters));
    return 0;
}

/* ---- 2. SELECT 1, SQLite point query ------------------------------------ */

static int cmd_select1(const char *uri, long iters) {
    sqlpool_pool *pool = open_pool(uri, 1, SQLPOOL_RECYCLE_FAST);
    sqlpool_conn *conn = NULL;
    CHECK(sqlpool_pool_acquire(pool, -1, &conn));
    int64_t sum = 0;
    long warm = iters / 10 > 100 ? iters / 10 : 100;
    double start = 0;
    for (long i = -warm; i < iters; i++) {
        if (i == 0) start = bench_now_ns();
        sqlpool_result *r = NULL;
        int64_t v = 0;
        CHECK(sqlpool_conn_query(conn, "SELECT 1", NULL, &r));
        CHECK(sqlpool_result_get_int64(r, 0, 0, &v));
        sqlpool_result_free(r);
        sum += v;
    }
    double elapsed = bench_now_ns() - start;
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    if (sum != warm + iters) {
        fprintf(stderr, "bad sum\n");
        return 1;
    }
    printf("{\"ns_per_op\": %.1f}\n", elapsed / (double)iters);
    return 0;
}

static int cmd_point(const char *uri, long iters, long rows) {
    sqlpool_pool *pool = open_pool(uri, 1, SQLPOOL_RECYCLE_FAST);
    sqlpool_conn *conn = NULL;
    sqlpool_params *params = NULL;
    CHECK(sqlpool_pool_acquire(pool, -1, &conn));
    CHECK(sqlpool_params_new(&params));
    uint64_t check = 0;
    long warm = iters / 10 > 100 ? iters / 10 : 100;
    double start = 0;
    for (long i = -warm; i < iters; i++) {
        if (i == 0) start = bench_now_ns();
        int64_t key = bench_key((uint64_t)(i + warm), rows);
        sqlpool_result *r = NULL;
        int64_t id = 0;
        double value = 0;
        const char *name = NULL;
        uintptr_t name_len = 0;
        CHECK(sqlpool_params_clear(params));
        CHECK(sqlpool_params_add_int64(params, NULL, key));
        CHECK(sqlpool_conn_query(conn, BENCH_POINT_SQL, params, &r));
        CHECK(sqlpool_result_get_int64(r, 0, 0, &id));
        CHECK(sqlpool_result_get_text(r, 0, 1, &name, &name_len));
        CHECK(sqlpool_result_get_double(r, 0, 2, &value));
        check += (uint64_t)id + name_len + (uint64_t)value;
        sqlpool_result_free(r);
    }
    double elapsed = bench_now_ns() - start;
    sqlpool_params_free(params);
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    printf("{\"ns_per_op\": %.1f, \"check\": %llu}\n", elapsed / (double)iters, (unsigned long long)check);
    return 0;
}

/* ---- 3. fetch 100,000 rows ---------------------------------------------- */

/* Every cell of a bench_fetch result, through the getters or column_data. */
static uint64_t touch_fetch(sqlpool_result *r, int columnar, uintptr_t *rows_out) {
    uintptr_t rows = 0;
    uint64_t check = 0;
    CHECK(sqlpool_result_row_count(r, &rows));
    if (!columnar) {
        for (uintptr_t i = 0; i < rows; i++) {
            int64_t id = 0;
            double value = 0;
            const char *name = NULL, *ts = NULL;
            const uint8_t *data = NULL;
            uintptr_t name_len = 0, ts_len = 0, data_len = 0;
            CHECK(sqlpool_result_get_int64(r, i, 0, &id));
            CHECK(sqlpool_result_get_text(r, i, 1, &name, &name_len));
            CHECK(sqlpool_result_get_double(r, i, 2, &value));
            CHECK(sqlpool_result_get_text(r, i, 3, &ts, &ts_len));
            CHECK(sqlpool_result_get_blob(r, i, 4, &data, &data_len));
            check += (uint64_t)id + name_len + (uint64_t)(value * 4) + ts_len + (uint8_t)ts[ts_len - 1] +
                     data_len + data[0];
        }
    } else {
        sqlpool_column_data c[5];
        for (uintptr_t k = 0; k < 5; k++) CHECK(sqlpool_result_column_data(r, k, &c[k]));
        for (uintptr_t i = 0; i < rows; i++) {
            uint64_t name_len = c[1].offsets[i + 1] - c[1].offsets[i];
            uint64_t ts_len = c[3].offsets[i + 1] - c[3].offsets[i];
            uint64_t data_len = c[4].offsets[i + 1] - c[4].offsets[i];
            check += (uint64_t)c[0].ints[i] + name_len + (uint64_t)(c[2].doubles[i] * 4) + ts_len +
                     c[3].bytes[c[3].offsets[i + 1] - 1] + data_len + c[4].bytes[c[4].offsets[i]];
        }
    }
    *rows_out += rows;
    return check;
}

/* This process's peak RSS: VmHWM, which exec resets (ru_maxrss keeps the
 * parent's peak from before the exec: bench/run.py's memory would count). */
static long maxrss_kb(void) {
    long kb = -1;
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return kb;
}

/* Streams `sql` in chunks of 10,000 rows, each through `visit`. */
static uint64_t stream_each(sqlpool_conn *conn, const char *sql,
                            uint64_t (*visit)(sqlpool_result *, int, uintptr_t *), int arg, uintptr_t *rows) {
    sqlpool_stream *s = NULL;
    sqlpool_result *r = NULL;
    sqlpool_status st;
    uint64_t check = 0;
    CHECK(sqlpool_conn_query_stream(conn, sql, NULL, &s));
    while ((st = sqlpool_stream_next(s, 10000, &r)) == SQLPOOL_OK) {
        check += visit(r, arg, rows);
        sqlpool_result_free(r);
    }
    if (st != SQLPOOL_EMPTY) fail("sqlpool_stream_next");
    sqlpool_stream_free(s);
    return check;
}

/* `streamed`: bench_fetch read with sqlpool_conn_query_stream in chunks of
 * 10,000 rows (column_data), else whole with sqlpool_conn_query. */
static int cmd_fetch(const char *uri, int columnar, int streamed) {
    sqlpool_pool *pool = open_pool(uri, 1, SQLPOOL_RECYCLE_FAST);
    sqlpool_conn *conn = NULL;
    CHECK(sqlpool_pool_acquire(pool, -1, &conn));
    /* Warm-up: the statement prepared and cached, the table in shared buffers. */
    sqlpool_result *r = NULL;
    CHECK(sqlpool_conn_query(conn, BENCH_FETCH_SQL " LIMIT 10", NULL, &r));
    sqlpool_result_free(r);
    CHECK(sqlpool_conn_query(conn, BENCH_FETCH_SQL, NULL, &r));
    sqlpool_result_free(r);

    double start = bench_now_ns();
    uintptr_t rows = 0;
    uint64_t check = 0;
    if (!streamed) {
        CHECK(sqlpool_conn_query(conn, BENCH_FETCH_SQL, NULL, &r));
        check = touch_fetch(r, columnar, &rows);
        sqlpool_result_free(r);
    } else {
        check = stream_each(conn, BENCH_FETCH_SQL, touch_fetch, columnar, &rows);
    }
    double elapsed = bench_now_ns() - start;
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    printf("{\"ms\": %.3f, \"rows\": %lu, \"check\": %llu, \"maxrss_kb\": %ld}\n", elapsed / 1e6,
           (unsigned long)rows, (unsigned long long)check, maxrss_kb());
    return 0;
}

/* ---- 9. bulk: 2,000,000 rows streamed, COPY ---------------------------- */

/* The generated rows of `stream`: id and the length of name. */
static uint64_t touch_generated(sqlpool_result *r, int unused, uintptr_t *rows) {
    sqlpool_column_data id, name;
    uint64_t check = 0;
    (void)unused;
    CHECK(sqlpool_result_column_data(r, 0, &id));
    CHECK(sqlpool_result_column_data(r, 1, &name));
    for (uintptr_t i = 0; i < id.rows; i++) check += (uint64_t)id.ints[i] + name.offsets[i + 1] - name.offsets[i];
    *rows += id.rows;
    return check;
}

/* ROWS generated rows (id, 'name-' || id) streamed in chunks of 10,000;
 * the peak RSS is the point. */
static int cmd_stream(const char *uri, long rows) {
    sqlpool_pool *pool = open_pool(uri, 1, SQLPOOL_RECYCLE_FAST);
    sqlpool_conn *conn = NULL;
    char sql[256];
    if (is_sqlite(uri))
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < %ld) "
                 "SELECT g AS id, 'name-' || g AS name FROM c", rows);
    else
        snprintf(sql, sizeof sql, "SELECT g AS id, 'name-' || g AS name FROM generate_series(1, %ld) g", rows);
    CHECK(sqlpool_pool_acquire(pool, -1, &conn));
    double start = bench_now_ns();
    uintptr_t n = 0;
    uint64_t check = stream_each(conn, sql, touch_generated, 0, &n);
    double elapsed = bench_now_ns() - start;
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    if ((long)n != rows) {
        fprintf(stderr, "streamed %lu rows, expected %ld\n", (unsigned long)n, rows);
        return 1;
    }
    printf("{\"ms\": %.3f, \"rows\": %lu, \"check\": %llu, \"maxrss_kb\": %ld}\n", elapsed / 1e6,
           (unsigned long)n, (unsigned long long)check, maxrss_kb());
    return 0;
}

/* ---- 4. 10,000 inserts in one transaction -------------------------------- */

static void truncate_insert(sqlpool_conn *conn, int sqlite) {
    CHECK(sqlpool_conn_execute_script(conn, sqlite ? "DELETE FROM bench_insert" : "TRUNCATE bench_insert"));
}

static void fill_params(sqlpool_params *p, int64_t i) {
    char name[32];
    int n = bench_insert_name(name, sizeof name, i);
    CHECK(sqlpool_params_add_int64(p, NULL, i));
    CHECK(sqlpool_params_add_text(p, NULL, name, (uintptr_t)n));
    CHECK(sqlpool_params_add_double(p, NULL, (double)i * 0.5));
}

/* The rows through COPY FROM STDIN, text format, written 64 KiB at a time. */
static void copy_rows(sqlpool_conn *conn, long rows, uint64_t *n) {
    sqlpool_copy *copy = NULL;
    static char buf[65536];
    size_t used = 0;
    CHECK(sqlpool_conn_copy_in(conn, "COPY bench_insert (id, name, value) FROM STDIN", &copy));
    for (long i = 0; i < rows; i++) {
        if (sizeof buf - used < 64) {
            CHECK(sqlpool_copy_write(copy, (const uint8_t *)buf, used));
            used = 0;
        }
        char name[32];
        bench_insert_name(name, sizeof name, i);
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%ld\t%s\t%.17g\n", i, name, (double)i * 0.5);
    }
    CHECK(sqlpool_copy_write(copy, (const uint8_t *)buf, used));
    CHECK(sqlpool_copy_finish(copy, n));
    sqlpool_copy_free(copy);
}

enum insert_how { INSERT_LOOP, INSERT_BATCH, INSERT_COPY };

static int cmd_insert(const char *uri, long rows, enum insert_how how) {
    int sqlite = is_sqlite(uri);
    const char *sql = sqlite ? BENCH_INSERT_SQLITE_SQL : BENCH_INSERT_PG_SQL;
    sqlpool_pool *pool = open_pool(uri, 1, SQLPOOL_RECYCLE_FAST);
    sqlpool_conn *conn = NULL;
    CHECK(sqlpool_pool_acquire(pool, -1, &conn));
    /* No warm-up: the statement is prepared inside the timed part, as on
     * libpq's side (PQprepare) and sqlite3's (sqlite3_prepare_v2). */
    truncate_insert(conn, sqlite);
    uint64_t n = 0;
    double start = bench_now_ns();
    if (how == INSERT_COPY) {
        copy_rows(conn, rows, &n);
    } else if (how == INSERT_LOOP) {
        sqlpool_params *p = NULL;
        CHECK(sqlpool_params_new(&p));
        CHECK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, 0));
        for (long i = 0; i < rows; i++) {
            uint64_t one = 0;
            CHECK(sqlpool_params_clear(p));
            fill_params(p, i);
            CHECK(sqlpool_conn_execute(conn, sql, p, &one));
            n += one;
        }
        CHECK(sqlpool_conn_commit(conn));
        sqlpool_params_free(p);
    } else {
        /* One parameter list holding every set (sqlpool_params_next_set). */
        sqlpool_params *sets = NULL;
        CHECK(sqlpool_params_new(&sets));
        for (long i = 0; i < rows; i++) {
            fill_params(sets, i);
            CHECK(sqlpool_params_next_set(sets));
        }
        CHECK(sqlpool_conn_execute_many(conn, sql, sets, &n));
        sqlpool_params_free(sets);
    }
    double elapsed = bench_now_ns() - start;
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    if ((long)n != rows) {
        fprintf(stderr, "inserted %llu rows, expected %ld\n", (unsigned long long)n, rows);
        return 1;
    }
    printf("{\"ms\": %.3f, \"rows\": %llu}\n", elapsed / 1e6, (unsigned long long)n);
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_sqlpool info URI | setup-pg URI ROWS | setup-sqlite URI ROWS |\n"
            "       acquire URI THREADS ITERS fast|verified | select1 URI ITERS |\n"
            "       point URI ITERS ROWS | fetch URI | fetch-columns URI |\n"
            "       insert URI ROWS | insert-batch URI ROWS | stream-fetch URI |\n"
            "       stream URI ROWS | copy URI ROWS\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 3) usage();
    const char *cmd = argv[1], *uri = argv[2];
    if (strcmp(cmd, "info") == 0 && argc == 3) return cmd_info(uri);
    if (strcmp(cmd, "setup-pg") == 0 && argc == 4) return cmd_setup_pg(uri, bench_arg_long(argv[3], "ROWS"));
    if (strcmp(cmd, "setup-sqlite") == 0 && (argc == 4 || argc == 5))
        return cmd_setup_sqlite(uri, bench_arg_long(argv[3], "ROWS"),
                                argc == 5 ? bench_arg_long(argv[4], "FETCH_ROWS") : 0);
    if (strcmp(cmd, "acquire") == 0 && argc == 6)
        return cmd_acquire(uri, bench_arg_long(argv[3], "THREADS"), bench_arg_long(argv[4], "ITERS"), argv[5]);
    if (strcmp(cmd, "select1") == 0 && argc == 4) return cmd_select1(uri, bench_arg_long(argv[3], "ITERS"));
    if (strcmp(cmd, "point") == 0 && argc == 5)
        return cmd_point(uri, bench_arg_long(argv[3], "ITERS"), bench_arg_long(argv[4], "ROWS"));
    if (strcmp(cmd, "fetch") == 0 && argc == 3) return cmd_fetch(uri, 0, 0);
    if (strcmp(cmd, "fetch-columns") == 0 && argc == 3) return cmd_fetch(uri, 1, 0);
    if (strcmp(cmd, "stream-fetch") == 0 && argc == 3) return cmd_fetch(uri, 1, 1);
    if (strcmp(cmd, "stream") == 0 && argc == 4) return cmd_stream(uri, bench_arg_long(argv[3], "ROWS"));
    if (strcmp(cmd, "copy") == 0 && argc == 4)
        return cmd_insert(uri, bench_arg_long(argv[3], "ROWS"), INSERT_COPY);
    if (strcmp(cmd, "insert") == 0 && argc == 4)
        return cmd_insert(uri, bench_arg_long(argv[3], "ROWS"), INSERT_LOOP);
    if (strcmp(cmd, "insert-batch") == 0 && argc == 4)
        return cmd_insert(uri, bench_arg_long(argv[3], "ROWS"), INSERT_BATCH);
    usage();
    return 2;
}
