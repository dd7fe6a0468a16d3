/*
 * event_loop.c: sqlpool's asynchronous API driven by one thread's poll() loop.
 *
 *   event_loop [URI]
 *
 * URI: argv[1], else the SQLPOOL_URL environment variable, else an SQLite
 * file in a new temporary directory (removed at the end). A PostgreSQL URI
 * works the same.
 *
 * It starts 200 "requests" at once against a pool of 10 connections. Each
 * request is a small state machine driven by completions:
 *
 *   sqlpool_pool_acquire_async  ->  SQLPOOL_OP_ACQUIRE completion (a connection)
 *   sqlpool_conn_query_async    ->  SQLPOOL_OP_QUERY completion (a result)
 *   check the row, free the result, release the connection
 *
 * The only thread of this program never blocks in the library: it sleeps in
 * poll() on the completion queue's file descriptor and pops completions when
 * it becomes readable. Requests beyond the 10 connections wait inside the
 * library (no thread each) and are served first come, first served. Every
 * status and every result row is checked; the exit status is 1 on any
 * failure.
 *
 * Build: cc -std=c11 event_loop.c $(pkg-config --cflags --libs sqlpool) -o event_loop
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sqlpool.h"

#define REQUESTS 200
#define POOL_SIZE 10
#define POLL_TIMEOUT_MS 30000

/* Prints a failed call's status, message and SQLSTATE; returns 1 if it failed. */
static int failed(sqlpool_status st, const char *what)
{
    if (st == SQLPOOL_OK)
        return 0;
    const char *sqlstate = sqlpool_last_error_sqlstate();
    fprintf(stderr, "error: %s: %s: %s", what, sqlpool_status_name((uint32_t)st),
            sqlpool_last_error_message());
    if (*sqlstate)
        fprintf(stderr, " [SQLSTATE %s]", sqlstate);
    fputc('\n', stderr);
    return 1;
}

enum phase { WAITING_FOR_CONN, WAITING_FOR_ROWS, DONE };

struct request {
    int64_t id;
    enum phase phase;
    sqlpool_conn *conn;
};

struct loop {
    sqlpool_pool *pool;
    sqlpool_queue *queue;
    const char *select_sql;
    struct request requests[REQUESTS];
    int done;
    int connections_held;
    int most_connections_held;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Starts the query of a request that just got its connection. */
static int start_query(struct loop *lp, struct request *rq)
{
    sqlpool_params *params = NULL;
    if (failed(sqlpool_params_new(&params), "sqlpool_params_new"))
        return 1;
    int bad = failed(sqlpool_params_add_int64(params, NULL, rq->id), "sqlpool_params_add_int64");
    /* The SQL and the parameters are copied by the call: free them at once. */
    if (!bad)
        bad = failed(sqlpool_conn_query_async(rq->conn, lp->select_sql, params, lp->queue, NULL,
                                              rq, NULL),
                     "sqlpool_conn_query_async");
    sqlpool_params_free(params);
    if (!bad)
        rq->phase = WAITING_FOR_ROWS;
    return bad;
}

/* Checks that the result is the one row of request rq: (id, 'item-<id>', id * 2). */
static int check_rows(const sqlpool_result *res, const struct request *rq)
{
    size_t rows = 0, cols = 0;
    if (failed(sqlpool_result_row_count(res, &rows), "sqlpool_result_row_count") ||
        failed(sqlpool_result_column_count(res, &cols), "sqlpool_result_column_count"))
        return 1;
    if (rows != 1 || cols != 3) {
        fprintf(stderr, "error: request %" PRId64 ": %zu rows x %zu columns, expected 1 x 3\n",
                rq->id, rows, cols);
        return 1;
    }
    int64_t id = 0, doubled = 0;
    const char *label = NULL;
    size_t label_len = 0;
    if (failed(sqlpool_result_get_int64(res, 0, 0, &id), "sqlpool_result_get_int64") ||
        failed(sqlpool_result_get_text(res, 0, 1, &label, &label_len), "sqlpool_result_get_text") ||
        failed(sqlpool_result_get_int64(res, 0, 2, &doubled), "sqlpool_result_get_int64"))
        return 1;
    char want[32];
    int want_len = snprintf(want, sizeof want, "item-%" PRId64, rq->id);
    if (id != rq->id || doubled != rq->id * 2 || label_len != (size_t)want_len ||
        memcmp(label, want, label_len) != 0) {
        fprintf(stderr,
                "error: request %" PRId64 ": got (%" PRId64 ", '%.*s', %" PRId64 ")\n",
                rq->id, id, (int)label_len, label, doubled);
        return 1;
    }
    return 0;
}

/* Handles one completion popped from the queue. */
static int on_completion(struct loop *lp, const sqlpool_completion *c)
{
    struct request *rq = c->user_data;
    if (c->status != SQLPOOL_OK) {
        /* The completion carries its own error (the caller's to free). */
        fprintf(stderr, "error: request %" PRId64 " (operation %" PRIu64 "): %s: %s (SQLSTATE %s)\n",
                rq->id, c->op_id, sqlpool_status_name(c->status), sqlpool_error_message(c->error),
                sqlpool_error_sqlstate(c->error));
        sqlpool_error_free(c->error);
        return 1;
    }
    switch (c->kind) {
    case SQLPOOL_OP_ACQUIRE:
        if (rq->phase != WAITING_FOR_CONN) {
            fprintf(stderr, "error: request %" PRId64 ": unexpected connection\n", rq->id);
            sqlpool_conn_release(c->handle);
            return 1;
        }
        rq->conn = c->handle; /* ours until released */
        if (++lp->connections_held > lp->most_connections_held)
            lp->most_connections_held = lp->connections_held;
        return start_query(lp, rq);
    case SQLPOOL_OP_QUERY: {
        sqlpool_result *res = c->handle; /* ours until freed */
        int bad = rq->phase != WAITING_FOR_ROWS || check_rows(res, rq);
        sqlpool_result_free(res);
        /* Giving the connection back hands it to the next waiting request. */
        if (failed(sqlpool_conn_release(rq->conn), "sqlpool_conn_release"))
            bad = 1;
        rq->conn = NULL;
        lp->connections_held--;
        rq->phase = DONE;
        lp->done++;
        return bad;
    }
    default:
        fprintf(stderr, "error: unexpected completion kind %u\n", (unsigned)c->kind);
        return 1;
    }
}

/* The event loop: sleep in poll() until completions wait, then pop them all. */
static int run_loop(struct loop *lp)
{
    int fd = -1;
    if (failed(sqlpool_queue_fd(lp->queue, &fd), "sqlpool_queue_fd"))
        return 1;
    while (lp->done < REQUESTS) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        int n = poll(&pfd, 1, POLL_TIMEOUT_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("poll");
            return 1;
        }
        if (n == 0) {
            fprintf(stderr, "error: no completion for %d ms (%d of %d requests done)\n",
                    POLL_TIMEOUT_MS, lp->done, REQUESTS);
            return 1;
        }
        for (;;) {
            sqlpool_completion c;
            sqlpool_status st = sqlpool_queue_pop(lp->queue, &c);
            if (st == SQLPOOL_EMPTY)
                break;
            if (failed(st, "sqlpool_queue_pop") || on_completion(lp, &c))
                return 1;
        }
    }
    return 0;
}

/* Creates the table the requests read: ids 1..REQUESTS, labels item-<id>. */
static int setup(sqlpool_pool *pool, const char *table)
{
    char sql[256];
    sqlpool_conn *conn = NULL;
    if (failed(sqlpool_pool_acquire(pool, -1, &conn), "sqlpool_pool_acquire"))
        return 1;
    int bad = 0;
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    bad = failed(sqlpool_conn_execute(conn, sql, NULL, NULL), "drop table");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id BIGINT PRIMARY KEY, label TEXT NOT NULL)",
             table);
    if (!bad)
        bad = failed(sqlpool_conn_execute(conn, sql, NULL, NULL), "create table");
    sqlpool_params *sets[REQUESTS] = {0};
    for (int i = 0; i < REQUESTS && !bad; i++) {
        char label[32];
        int len = snprintf(label, sizeof label, "item-%d", i + 1);
        bad = failed(sqlpool_params_new(&sets[i]), "sqlpool_params_new") ||
              failed(sqlpool_params_add_int64(sets[i], NULL, i + 1), "sqlpool_params_add_int64") ||
              failed(sqlpool_params_add_text(sets[i], NULL, label, (size_t)len),
                     "sqlpool_params_add_text");
    }
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, label) VALUES ($1, $2)", table);
    uint64_t inserted = 0;
    if (!bad)
        bad = failed(sqlpool_conn_execute_batch(conn, sql, (const sqlpool_params *const *)sets,
                                                REQUESTS, &inserted),
                     "insert rows");
    if (!bad && inserted != REQUESTS) {
        fprintf(stderr, "error: inserted %" PRIu64 " rows\n", inserted);
        bad = 1;
    }
    for (int i = 0; i < REQUESTS; i++)
        sqlpool_params_free(sets[i]);
    if (failed(sqlpool_conn_release(conn), "sqlpool_conn_release"))
        bad = 1;
    return bad;
}

static void drop_table(sqlpool_pool *pool, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    failed(sqlpool_pool_execute(pool, sql, NULL, NULL), "drop table");
}

int main(int argc, char **argv)
{
    const char *uri = argc > 1 ? argv[1] : getenv("SQLPOOL_URL");
    char tmpdir[] = "/tmp/sqlpool_event_loop_XXXXXX";
    char uri_buf[128];
    int own_dir = 0;
    if (!uri || !*uri) {
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            return 1;
        }
        own_dir = 1;
        snprintf(uri_buf, sizeof uri_buf, "sqlite:%s/event_loop.db", tmpdir);
        uri = uri_buf;
    }

    static struct loop lp;
    char table[64];
    snprintf(table, sizeof table, "event_loop_%ld", (long)getpid());
    char select_sql[160];
    snprintf(select_sql, sizeof select_sql, "SELECT id, label, id * 2 FROM %s WHERE id = $1",
             table);
    lp.select_sql = select_sql;

    /* Before the first asynchronous call: the library's runtime needs few
     * threads here (waiting acquires cost none; each running statement has
     * its own blocking thread regardless). */
    int bad = failed(sqlpool_set_async_threads(1), "sqlpool_set_async_threads");
    sqlpool_options *opts = NULL;
    bad = bad || failed(sqlpool_options_new(&opts), "sqlpool_options_new") ||
          failed(sqlpool_options_set_max_size(opts, POOL_SIZE), "sqlpool_options_set_max_size") ||
          failed(sqlpool_pool_open(uri, opts, &lp.pool), "sqlpool_pool_open");
    sqlpool_options_free(opts);
    if (!bad)
        bad = setup(lp.pool, table);
    if (!bad)
        bad = failed(sqlpool_queue_new(&lp.queue), "sqlpool_queue_new");

    double started = now_ms();
    /* Start every request at once; 10 get a connection, 190 wait in the pool. */
    for (int i = 0; i < REQUESTS && !bad; i++) {
        struct request *rq = &lp.requests[i];
        rq->id = i + 1;
        rq->phase = WAITING_FOR_CONN;
        bad = failed(sqlpool_pool_acquire_async(lp.pool, -1, lp.queue, NULL, rq, NULL),
                     "sqlpool_pool_acquire_async");
    }
    if (!bad)
        bad = run_loop(&lp);
    double elapsed = now_ms() - started;

    if (!bad) {
        sqlpool_stats stats;
        bad = failed(sqlpool_pool_stats(lp.pool, &stats, sizeof stats), "sqlpool_pool_stats");
        if (!bad && (stats.in_use != 0 || stats.waiting != 0 || stats.total > POOL_SIZE)) {
            fprintf(stderr, "error: pool not at rest: %u in use, %u waiting, %u open\n",
                    stats.in_use, stats.waiting, stats.total);
            bad = 1;
        }
        if (!bad)
            printf("event_loop: %d queries checked in %.1f ms on one thread; at most %d of %d "
                   "connections held at once; %u open now\n",
                   lp.done, elapsed, lp.most_connections_held, POOL_SIZE, stats.total);
    }

    /* Cleanup: connections still held (after a failure) go back first. */
    for (int i = 0; i < REQUESTS; i++)
        if (lp.requests[i].conn)
            sqlpool_conn_release(lp.requests[i].conn);
    /* Frees completions not popped and cancels what is still pending. */
    sqlpool_queue_free(lp.queue);
    if (lp.pool)
        drop_table(lp.pool, table);
    sqlpool_pool_close(lp.pool);
    if (own_dir) {
        const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
            char path[160];
            snprintf(path, sizeof path, "%s/event_loop.db%s", tmpdir, suffixes[i]);
            unlink(path);
        }
        rmdir(tmpdir);
    }
    /* Everything was given back: no handle is still live (a forgotten one
       would be invisible to valgrind, handles live in a table). */
    if (sqlpool_live_handles() != 0) {
        fprintf(stderr, "leak: %zu sqlpool handles still live at exit\n", sqlpool_live_handles());
        return 1;
    }
    return bad ? 1 : 0;
}
