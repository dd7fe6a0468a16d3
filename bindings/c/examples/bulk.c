/*
 * bulk.c: bulk data through sqlpool — a batch, a streaming read, a COPY in
 * and out, and a LISTEN loop.
 *
 *   bulk URI
 *
 * On both databases it inserts 10,000 rows as one batch (pipelined on
 * PostgreSQL) and shows a failing batch undone whole. On PostgreSQL it streams 100,000 rows in chunks of 10,000 (the connection
 * is busy meanwhile), loads 50,000 rows with COPY FROM STDIN, reads them
 * back with COPY TO STDOUT, and receives 100 notifications sent by a
 * second connection. On SQLite it streams, and shows that COPY and
 * notifications are SQLPOOL_UNSUPPORTED there. Every status is checked;
 * the exit status is 1 on any failure.
 *
 * Build: cc -std=c11 bulk.c $(pkg-config --cflags --libs sqlpool) -o bulk
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlpool.h"

static int fail(const char *what, sqlpool_status st) {
    fprintf(stderr, "%s: %s: %s (SQLSTATE %s)\n", what, sqlpool_status_name(st),
            sqlpool_last_error_message(), sqlpool_last_error_sqlstate());
    return 1;
}

#define CHECK(what, call)                      \
    do {                                       \
        sqlpool_status st_ = (call);           \
        if (st_ != SQLPOOL_OK) {               \
            rc = fail(what, st_);              \
            goto cleanup;                      \
        }                                      \
    } while (0)

/* Inserts 10,000 rows as one batch, then shows a failing batch undone. */
static int batch_insert(sqlpool_conn *conn) {
    int rc = 0;
    sqlpool_params *sets = NULL;
    uint64_t inserted = 0;
    CHECK("create", sqlpool_conn_execute_script(
                        conn, "DROP TABLE IF EXISTS batch_items;"
                              "CREATE TABLE batch_items (id integer PRIMARY KEY, name text)"));
    /* doc:batch */
    CHECK("params_new", sqlpool_params_new(&sets));
    for (int64_t id = 1; id <= 10000; id++) {
        char name[32];
        int len = snprintf(name, sizeof name, "item %" PRId64, id);
        CHECK("add id", sqlpool_params_add_int64(sets, "id", id));
        CHECK("add name", sqlpool_params_add_text(sets, "name", name, (size_t)len));
        CHECK("next_set", sqlpool_params_next_set(sets)); /* one set per row */
    }
    /* All or nothing; on PostgreSQL the sets are pipelined. */
    CHECK("execute_many", sqlpool_conn_execute_many(
                              conn, "INSERT INTO batch_items VALUES (:id, :name)", sets, &inserted));
    /* end doc:batch */
    printf("batch: %" PRIu64 " rows\n", inserted);
    /* A duplicate key in the last set undoes the whole batch. */
    CHECK("clear", sqlpool_params_clear(sets));
    for (int64_t id = 20001; id <= 20003; id++) {
        CHECK("add id", sqlpool_params_add_int64(sets, "id", id == 20003 ? 1 : id));
        CHECK("add name", sqlpool_params_add_null(sets, "name"));
        CHECK("next_set", sqlpool_params_next_set(sets));
    }
    sqlpool_status st = sqlpool_conn_execute_many(
        conn, "INSERT INTO batch_items VALUES (:id, :name)", sets, &inserted);
    if (st != SQLPOOL_CONSTRAINT_VIOLATION) {
        fprintf(stderr, "expected SQLPOOL_CONSTRAINT_VIOLATION, got %s\n", sqlpool_status_name(st));
        rc = 1;
        goto cleanup;
    }
    printf("failing batch undone: %s\n", sqlpool_last_error_message());
    CHECK("drop", sqlpool_conn_execute_script(conn, "DROP TABLE batch_items"));
cleanup:
    sqlpool_params_free(sets);
    return rc;
}

/* Streams `n` rows, chunk by chunk, and checks their sum. */
static int stream_rows(sqlpool_conn *conn, int postgres) {
    int rc = 0;
    sqlpool_stream *stream = NULL;
    sqlpool_result *chunk = NULL;
    int64_t sum = 0, rows = 0;
    size_t chunks = 0;
    const char *sql = postgres
        ? "SELECT g FROM generate_series(1, 100000) g"
        : "WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < 100000) SELECT g FROM c";
    /* doc:stream */
    CHECK("query_stream", sqlpool_conn_query_stream(conn, sql, NULL, &stream));
    /* While the stream is open the connection answers SQLPOOL_BUSY. */
    if (sqlpool_conn_execute(conn, "SELECT 1", NULL, NULL) != SQLPOOL_BUSY) {
        fprintf(stderr, "expected SQLPOOL_BUSY while streaming\n");
        rc = 1;
        goto cleanup;
    }
    for (;;) {
        sqlpool_status st = sqlpool_stream_next(stream, 10000, &chunk);
        if (st == SQLPOOL_EMPTY) break; /* finished: the connection is free */
        CHECK("stream_next", st);
        size_t n = 0;
        sqlpool_column_data col;
        CHECK("row_count", sqlpool_result_row_count(chunk, &n));
        CHECK("column_data", sqlpool_result_column_data(chunk, 0, &col));
        for (size_t i = 0; i < n; i++) sum += col.ints[i];
        rows += (int64_t)n;
        chunks++;
        sqlpool_result_free(chunk);
        chunk = NULL;
    }
    /* end doc:stream */
    if (rows != 100000 || sum != (int64_t)100000 * 100001 / 2) {
        fprintf(stderr, "stream: %" PRId64 " rows, sum %" PRId64 "\n", rows, sum);
        rc = 1;
        goto cleanup;
    }
    printf("streamed %" PRId64 " rows in %zu chunks\n", rows, chunks);
cleanup:
    sqlpool_result_free(chunk);
    sqlpool_stream_free(stream);
    return rc;
}

static int copy_round_trip(sqlpool_conn *conn) {
    int rc = 0;
    sqlpool_copy *copy = NULL;
    uint64_t copied = 0;
    size_t total = 0, lines = 0;
    char row[64];
    static char buf[8192];
    CHECK("create", sqlpool_conn_execute_script(conn, "CREATE TEMP TABLE items (id int, name text)"));
    /* doc:copy */
    CHECK("copy_in", sqlpool_conn_copy_in(conn, "COPY items (id, name) FROM STDIN", &copy));
    for (int i = 1; i <= 50000; i++) {
        int len = snprintf(row, sizeof row, "%d\titem %d\n", i, i);
        CHECK("copy_write", sqlpool_copy_write(copy, (const uint8_t *)row, (size_t)len));
    }
    CHECK("copy_finish", sqlpool_copy_finish(copy, &copied));
    sqlpool_copy_free(copy);
    copy = NULL;
    printf("COPY FROM STDIN: %" PRIu64 " rows\n", copied);

    CHECK("copy_out", sqlpool_conn_copy_out(conn, "COPY items TO STDOUT (FORMAT csv)", &copy));
    for (;;) {
        size_t n = 0;
        sqlpool_status st = sqlpool_copy_read(copy, (uint8_t *)buf, sizeof buf, &n);
        if (st == SQLPOOL_EMPTY) break;
        CHECK("copy_read", st);
        for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
        total += n;
    }
    /* end doc:copy */
    printf("COPY TO STDOUT: %zu bytes, %zu lines\n", total, lines);
    if (copied != 50000 || lines != 50000) rc = 1;
cleanup:
    sqlpool_copy_free(copy);
    return rc;
}

static int listen_loop(sqlpool_pool *pool, sqlpool_conn *listener) {
    int rc = 0;
    sqlpool_conn *sender = NULL;
    sqlpool_notification *note = NULL;
    int received = 0;
    /* doc:listen */
    CHECK("listen", sqlpool_conn_execute(listener, "LISTEN jobs", NULL, NULL));
    CHECK("acquire", sqlpool_pool_acquire(pool, -1, &sender));
    CHECK("notify", sqlpool_conn_execute(sender,
        "SELECT pg_notify('jobs', 'job ' || g) FROM generate_series(1, 100) g", NULL, NULL));
    for (;;) {
        sqlpool_status st = sqlpool_conn_next_notification(listener, 2000, &note);
        if (st == SQLPOOL_EMPTY) break; /* 2 s without one: done */
        CHECK("next_notification", st);
        sqlpool_notification_info info;
        CHECK("notification_get", sqlpool_notification_get(note, &info));
        received++;
        char want[32];
        snprintf(want, sizeof want, "job %d", received);
        if (info.payload_len != strlen(want) || memcmp(info.payload, want, info.payload_len) != 0) {
            fprintf(stderr, "notification %d out of order: %.*s\n", received,
                    (int)info.payload_len, info.payload);
            rc = 1;
            goto cleanup;
        }
        sqlpool_notification_free(note);
        note = NULL;
        if (received == 100) break;
    }
    /* end doc:listen */
    printf("received %d notifications on channel jobs\n", received);
    if (received != 100) rc = 1;
cleanup:
    sqlpool_notification_free(note);
    sqlpool_conn_release(sender);
    return rc;
}

int main(int argc, char **argv) {
    int rc = 0;
    sqlpool_pool *pool = NULL;
    sqlpool_conn *conn = NULL;
    sqlpool_copy *copy = NULL;
    sqlpool_notification *note = NULL;
    const char *uri = argc > 1 ? argv[1] : getenv("SQLPOOL_URL");
    if (uri == NULL) uri = "sqlite::memory:";
    int postgres = strncmp(uri, "postgres", 8) == 0;
    CHECK("open", sqlpool_pool_open(uri, NULL, &pool));
    CHECK("acquire", sqlpool_pool_acquire(pool, -1, &conn));
    rc = batch_insert(conn);
    if (!rc) rc = stream_rows(conn, postgres);
    if (rc) goto cleanup;
    if (postgres) {
        rc = copy_round_trip(conn);
        if (!rc) rc = listen_loop(pool, conn);
    } else {
        if (sqlpool_conn_copy_in(conn, "COPY t FROM STDIN", &copy) != SQLPOOL_UNSUPPORTED ||
            sqlpool_conn_next_notification(conn, 0, &note) != SQLPOOL_UNSUPPORTED) {
            fprintf(stderr, "SQLite: expected SQLPOOL_UNSUPPORTED for COPY and notifications\n");
            rc = 1;
        } else {
            printf("SQLite: COPY and LISTEN/NOTIFY are SQLPOOL_UNSUPPORTED (%s)\n",
                   sqlpool_last_error_message());
        }
    }
cleanup:
    sqlpool_copy_free(copy);
    sqlpool_notification_free(note);
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    return rc;
}
