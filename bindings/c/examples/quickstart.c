/*
 * quickstart.c: a first tour of sqlpool from C.
 *
 *   quickstart [URI]
 *
 * URI (argv[1], else the SQLPOOL_URL environment variable, else
 * "sqlite:sqlpool_demo.db" in the current directory) may also be a
 * PostgreSQL URI such as postgresql://user:pass@localhost:5432/db; the same
 * program runs unchanged on both databases.
 *
 * It opens a pool, creates a table, inserts rows with positional ($1, $2)
 * and named (:name) parameters, queries them back, shows what an error
 * looks like (status name, message, SQLSTATE) and cleans up. Every call's
 * status is checked; the program exits 1 on any unexpected one.
 *
 * Build: cc quickstart.c $(pkg-config --cflags --libs sqlpool) -o quickstart
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlpool.h"

/* Prints a failed call's status, message and SQLSTATE; returns 1 if it failed. */
static int failed(sqlpool_status st, const char *what)
{
    if (st == SQLPOOL_OK)
        return 0;
    const char *sqlstate = sqlpool_last_error_sqlstate();
    fprintf(stderr, "error: %s: %s (%u): %s", what, sqlpool_status_name(st), (unsigned)st,
            sqlpool_last_error_message());
    if (*sqlstate)
        fprintf(stderr, " [SQLSTATE %s]", sqlstate);
    fputc('\n', stderr);
    return 1;
}

/* Formats one cell according to its kind into buf. */
static int format_cell(const sqlpool_result *res, size_t row, size_t col, char *buf, size_t size)
{
    uint32_t kind;
    if (failed(sqlpool_result_kind(res, row, col, &kind), "sqlpool_result_kind"))
        return 1;
    switch (kind) {
    case SQLPOOL_KIND_NULL:
        snprintf(buf, size, "NULL");
        return 0;
    case SQLPOOL_KIND_BOOL:
    case SQLPOOL_KIND_INT64: {
        int64_t v;
        if (failed(sqlpool_result_get_int64(res, row, col, &v), "sqlpool_result_get_int64"))
            return 1;
        snprintf(buf, size, "%" PRId64, v);
        return 0;
    }
    case SQLPOOL_KIND_DOUBLE: {
        double v;
        if (failed(sqlpool_result_get_double(res, row, col, &v), "sqlpool_result_get_double"))
            return 1;
        snprintf(buf, size, "%g", v);
        return 0;
    }
    case SQLPOOL_KIND_TEXT: {
        const char *s;
        size_t len;
        if (failed(sqlpool_result_get_text(res, row, col, &s, &len), "sqlpool_result_get_text"))
            return 1;
        /* Borrowed, NOT NUL-terminated, valid until sqlpool_result_free. */
        snprintf(buf, size, "'%.*s'", (int)len, s);
        return 0;
    }
    default: { /* SQLPOOL_KIND_BLOB */
        const uint8_t *b;
        size_t len;
        if (failed(sqlpool_result_get_blob(res, row, col, &b, &len), "sqlpool_result_get_blob"))
            return 1;
        snprintf(buf, size, "<%zu bytes>", len);
        return 0;
    }
    }
}

/* Prints a result as a small table: a header line, then one line per row. */
static int print_result(const sqlpool_result *res)
{
    size_t rows, cols;
    char cell[64];
    if (failed(sqlpool_result_row_count(res, &rows), "sqlpool_result_row_count") ||
        failed(sqlpool_result_column_count(res, &cols), "sqlpool_result_column_count"))
        return 1;
    printf("   ");
    for (size_t c = 0; c < cols; c++) {
        const char *name;
        size_t len;
        if (failed(sqlpool_result_column_name(res, c, &name, &len), "sqlpool_result_column_name"))
            return 1;
        printf(" %-10.*s", (int)len, name);
    }
    printf("\n");
    for (size_t r = 0; r < rows; r++) {
        printf("   ");
        for (size_t c = 0; c < cols; c++) {
            if (format_cell(res, r, c, cell, sizeof cell))
                return 1;
            printf(" %-10s", cell);
        }
        printf("\n");
    }
    printf("    (%zu row%s)\n", rows, rows == 1 ? "" : "s");
    return 0;
}

int main(int argc, char **argv)
{
    const char *uri = argc > 1 ? argv[1] : getenv("SQLPOOL_URL");
    if (uri == NULL || *uri == '\0')
        uri = "sqlite:sqlpool_demo.db";
    int is_pg = strncmp(uri, "postgres", 8) == 0;

    int rc = 1;
    sqlpool_options *opts = NULL;
    sqlpool_pool *pool = NULL;
    sqlpool_conn *conn = NULL;
    sqlpool_params *params = NULL;
    sqlpool_result *res = NULL;
    uint64_t n = 0;

    printf("sqlpool %s (header %d.%d.%d)\n", sqlpool_version(), SQLPOOL_VERSION_MAJOR,
           SQLPOOL_VERSION_MINOR, SQLPOOL_VERSION_PATCH);

    /* 1. Options (all optional) and the pool. The URI's password, if any,
     *    never appears in error messages. */
    if (failed(sqlpool_options_new(&opts), "sqlpool_options_new") ||
        failed(sqlpool_options_set_min_size(opts, 1), "set_min_size") ||
        failed(sqlpool_options_set_max_size(opts, 4), "set_max_size") ||
        failed(sqlpool_options_set_acquire_timeout_ms(opts, 5000), "set_acquire_timeout_ms"))
        goto cleanup;
    if (failed(sqlpool_pool_open(uri, opts, &pool), "sqlpool_pool_open"))
        goto cleanup;
    sqlpool_options_free(opts); /* the pool copied what it needs */
    opts = NULL;
    printf("1. opened a %s pool (min 1, max 4 connections)\n", is_pg ? "PostgreSQL" : "SQLite");

    /* 2. Borrow a connection and create a table. */
    if (failed(sqlpool_pool_acquire(pool, -1, &conn), "sqlpool_pool_acquire"))
        goto cleanup;
    if (failed(sqlpool_conn_execute_script(conn,
                                           "DROP TABLE IF EXISTS quickstart_people;"
                                           "CREATE TABLE quickstart_people ("
                                           "  id BIGINT PRIMARY KEY,"
                                           "  name TEXT NOT NULL,"
                                           "  score DOUBLE PRECISION,"
                                           "  note TEXT)"),
               "create table"))
        goto cleanup;
    printf("2. created table quickstart_people\n");

    /* 3. Insert with positional parameters ($1, $2, ...). One parameter
     *    list is reused: clear it and fill it again. */
    if (failed(sqlpool_params_new(&params), "sqlpool_params_new"))
        goto cleanup;
    static const struct { int64_t id; const char *name; double score; } people[] = {
        {1, "Ada", 97.5}, {2, "Grace", 88.0}, {3, "Linus", 71.25},
    };
    for (size_t i = 0; i < sizeof people / sizeof people[0]; i++) {
        if (failed(sqlpool_params_clear(params), "sqlpool_params_clear") ||
            failed(sqlpool_params_add_int64(params, NULL, people[i].id), "add_int64") ||
            failed(sqlpool_params_add_text(params, NULL, people[i].name, strlen(people[i].name)),
                   "add_text") ||
            failed(sqlpool_params_add_double(params, NULL, people[i].score), "add_double") ||
            failed(sqlpool_params_add_null(params, NULL), "add_null"))
            goto cleanup;
        if (failed(sqlpool_conn_execute(conn,
                                        "INSERT INTO quickstart_people (id, name, score, note) "
                                        "VALUES ($1, $2, $3, $4)",
                                        params, &n),
                   "insert (positional)"))
            goto cleanup;
    }
    printf("3. inserted 3 rows with positional parameters ($1..$4)\n");

    /* 4. Insert with named parameters (:name); order does not matter. */
    const char *note = "added with :named parameters";
    if (failed(sqlpool_params_clear(params), "sqlpool_params_clear") ||
        failed(sqlpool_params_add_text(params, "name", "Barbara", 7), "add_text :name") ||
        failed(sqlpool_params_add_int64(params, "id", 4), "add_int64 :id") ||
        failed(sqlpool_params_add_text(params, "note", note, strlen(note)), "add_text :note") ||
        failed(sqlpool_params_add_null(params, "score"), "add_null :score"))
        goto cleanup;
    if (failed(sqlpool_conn_execute(conn,
                                    "INSERT INTO quickstart_people (id, name, score, note) "
                                    "VALUES (:id, :name, :score, :note)",
                                    params, &n),
               "insert (named)"))
        goto cleanup;
    printf("4. inserted %" PRIu64 " row with named parameters (:id, :name, :score, :note)\n", n);

    /* 5. Query everything back. The result is ours until sqlpool_result_free. */
    if (failed(sqlpool_conn_query(conn, "SELECT id, name, score, note FROM quickstart_people "
                                        "ORDER BY id",
                                  NULL, &res),
               "select"))
        goto cleanup;
    printf("5. all rows:\n");
    if (print_result(res))
        goto cleanup;
    sqlpool_result_free(res);
    res = NULL;

    /* 6. A parameterized query, read by column name. */
    if (failed(sqlpool_params_clear(params), "sqlpool_params_clear") ||
        failed(sqlpool_params_add_double(params, NULL, 80.0), "add_double"))
        goto cleanup;
    if (failed(sqlpool_conn_query(conn, "SELECT name, score FROM quickstart_people "
                                        "WHERE score > $1 ORDER BY score DESC",
                                  params, &res),
               "select where"))
        goto cleanup;
    size_t rows, name_col, score_col;
    if (failed(sqlpool_result_row_count(res, &rows), "row_count") ||
        failed(sqlpool_result_column_index(res, "name", &name_col), "column_index name") ||
        failed(sqlpool_result_column_index(res, "score", &score_col), "column_index score"))
        goto cleanup;
    printf("6. people with score > 80:\n");
    for (size_t r = 0; r < rows; r++) {
        const char *name;
        size_t len;
        double score;
        if (failed(sqlpool_result_get_text(res, r, name_col, &name, &len), "get_text") ||
            failed(sqlpool_result_get_double(res, r, score_col, &score), "get_double"))
            goto cleanup;
        printf("    %.*s: %.2f\n", (int)len, name, score);
    }
    sqlpool_result_free(res);
    res = NULL;

    /* 7. Errors: a duplicate key. Every failing call returns a status;
     *    details are in the calling thread's "last error". */
    if (failed(sqlpool_params_clear(params), "sqlpool_params_clear") ||
        failed(sqlpool_params_add_int64(params, NULL, 1), "add_int64") ||
        failed(sqlpool_params_add_text(params, NULL, "Duplicate", 9), "add_text"))
        goto cleanup;
    sqlpool_status st = sqlpool_conn_execute(
        conn, "INSERT INTO quickstart_people (id, name) VALUES ($1, $2)", params, NULL);
    printf("7. inserting a duplicate id returned %s\n", sqlpool_status_name(st));
    if (st != SQLPOOL_CONSTRAINT_VIOLATION) {
        failed(st, "duplicate insert (expected SQLPOOL_CONSTRAINT_VIOLATION)");
        goto cleanup;
    }
    printf("    message:  %s\n", sqlpool_last_error_message());
    printf("    SQLSTATE: %s\n", sqlpool_last_error_sqlstate());
    printf("    as JSON:  %s\n", sqlpool_last_error_json());

    /* 8. Statistics; then give the connection back (exactly once). */
    if (failed(sqlpool_conn_release(conn), "sqlpool_conn_release"))
        goto cleanup;
    conn = NULL;
    sqlpool_stats stats;
    if (failed(sqlpool_pool_stats(pool, &stats, sizeof stats), "sqlpool_pool_stats"))
        goto cleanup;
    printf("8. pool: %u open, %u idle, %u in use; %" PRIu64 " acquires\n", stats.total,
           stats.idle, stats.in_use, stats.acquires);

    /* 9. One-shot helpers acquire and release a connection for you. */
    if (failed(sqlpool_pool_query(pool, "SELECT count(*) AS n FROM quickstart_people", NULL, &res),
               "sqlpool_pool_query"))
        goto cleanup;
    int64_t count = 0;
    if (failed(sqlpool_result_get_int64(res, 0, 0, &count), "get_int64"))
        goto cleanup;
    printf("9. sqlpool_pool_query: the table has %" PRId64 " rows\n", count);
    if (count != 4) {
        fprintf(stderr, "error: expected 4 rows, found %" PRId64 "\n", count);
        goto cleanup;
    }
    if (failed(sqlpool_pool_execute(pool, "DROP TABLE quickstart_people", NULL, NULL),
               "drop table"))
        goto cleanup;
    printf("10. dropped the table; done.\n");
    rc = 0;

cleanup:
    /* Every free/release/close function accepts NULL. */
    sqlpool_result_free(res);
    sqlpool_params_free(params);
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    sqlpool_options_free(opts);
    /* Everything was given back: no handle is still live (a forgotten one
       would be invisible to valgrind, handles live in a table). */
    if (sqlpool_live_handles() != 0) {
        fprintf(stderr, "leak: %zu sqlpool handles still live at exit\n", sqlpool_live_handles());
        return 1;
    }
    return rc;
}
