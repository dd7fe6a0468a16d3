/*
 * fork.c: a child process never touches its parent's pool.
 *
 *   fork [URI]
 *
 * URI: the argument, else SQLPOOL_URL, else a fresh SQLite file in /tmp.
 * The parent opens a pool, borrows a connection (inside a transaction, with
 * a statement prepared on PostgreSQL) and makes an async queue, then forks.
 * In the child every call on the inherited pool, connection and queue must
 * return SQLPOOL_MISUSE saying "after fork", releasing and closing them
 * must close nothing, and a new pool opened in the child must work. The
 * parent then goes on with the same connection and pool as if nothing had
 * happened. Exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqlpool.h"

static int failures;

static void expect(sqlpool_status got, sqlpool_status want, const char *expr, int line)
{
    if (got != want) {
        fprintf(stderr, "fork.c:%d [pid %d]: %s returned %s, expected %s: %s\n", line,
                (int)getpid(), expr, sqlpool_status_name(got),
                sqlpool_status_name(want), got == SQLPOOL_OK ? "" : sqlpool_last_error_message());
        failures++;
    } else if (want == SQLPOOL_MISUSE && !strstr(sqlpool_last_error_message(), "after fork")) {
        fprintf(stderr, "fork.c:%d: %s: message does not say \"after fork\": %s\n", line, expr,
                sqlpool_last_error_message());
        failures++;
    }
}

#define EXPECT(call, want) expect((call), (want), #call, __LINE__)
#define OK(call) EXPECT(call, SQLPOOL_OK)

static int child(sqlpool_pool *pool, sqlpool_conn *conn, sqlpool_queue *queue, const char *uri)
{
    sqlpool_conn *other = NULL;
    sqlpool_stats stats;
    sqlpool_completion done;
    uint64_t rows = 0, op = 0;
    EXPECT(sqlpool_pool_acquire(pool, 100, &other), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_stats(pool, &stats, sizeof stats), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_execute(pool, "SELECT 1", NULL, &rows), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_execute(conn, "SELECT 1", NULL, &rows), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_commit(conn), SQLPOOL_MISUSE);
    EXPECT(sqlpool_queue_pop(queue, &done), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_acquire_async(pool, -1, queue, NULL, NULL, &op), SQLPOOL_MISUSE);
    /* Freeing them closes nothing of the parent's. */
    EXPECT(sqlpool_conn_release(conn), SQLPOOL_MISUSE);
    EXPECT(sqlpool_queue_free(queue), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_close(pool), SQLPOOL_MISUSE);
    /* A pool of the child's own works. */
    if (strncmp(uri, "postgres", 8) != 0) {
        sqlpool_pool *mine = NULL;
        OK(sqlpool_pool_open(uri, NULL, &mine));
        OK(sqlpool_pool_execute(mine, "SELECT 1", NULL, &rows));
        OK(sqlpool_pool_close(mine));
    }
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    char fallback[64];
    const char *uri = argc > 1 ? argv[1] : getenv("SQLPOOL_URL");
    if (!uri || !*uri) {
        snprintf(fallback, sizeof fallback, "sqlite:/tmp/sqlpool-fork-%d.db", (int)getpid());
        uri = fallback;
    }
    int pg = strncmp(uri, "postgres", 8) == 0;
    sqlpool_pool *pool = NULL;
    sqlpool_conn *conn = NULL;
    sqlpool_queue *queue = NULL;
    sqlpool_params *params = NULL;
    sqlpool_result *res = NULL;
    uint64_t rows = 0;
    OK(sqlpool_pool_open(uri, NULL, &pool));
    OK(sqlpool_pool_acquire(pool, -1, &conn));
    OK(sqlpool_queue_new(&queue));
    OK(sqlpool_conn_execute(conn, "CREATE TABLE IF NOT EXISTS fork_t (a INTEGER)", NULL, NULL));
    OK(sqlpool_conn_begin(conn, 0, 0));
    OK(sqlpool_params_new(&params));
    OK(sqlpool_params_add_int64(params, NULL, 1));
    /* A prepared (cached) statement on PostgreSQL: a child that reused the
     * socket would clash with it ("prepared statement s1 already exists"). */
    OK(sqlpool_conn_execute(conn, "INSERT INTO fork_t (a) VALUES ($1)", params, &rows));
    if (failures) return 1;

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) _exit(child(pool, conn, queue, uri));
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "fork.c: the child failed (status %d)\n", status);
        failures++;
    }

    /* The parent's connection, transaction, statement cache and pool are
     * intact. */
    OK(sqlpool_conn_execute(conn, "INSERT INTO fork_t (a) VALUES ($1)", params, &rows));
    OK(sqlpool_conn_commit(conn));
    OK(sqlpool_conn_query(conn, "SELECT count(*) FROM fork_t", NULL, &res));
    int64_t n = 0;
    OK(sqlpool_result_get_int64(res, 0, 0, &n));
    if (n < 2) {
        fprintf(stderr, "fork.c: expected the parent's two rows, found %lld\n", (long long)n);
        failures++;
    }
    OK(sqlpool_conn_execute(conn, "DROP TABLE fork_t", NULL, NULL));
    sqlpool_result_free(res);
    sqlpool_params_free(params);
    OK(sqlpool_conn_release(conn));
    OK(sqlpool_queue_free(queue));
    OK(sqlpool_pool_execute(pool, "SELECT 1", NULL, &rows));
    OK(sqlpool_pool_close(pool));
    if (!pg && uri == fallback) unlink(fallback + 7);
    if (failures) {
        fprintf(stderr, "fork.c: %d failures\n", failures);
        return 1;
    }
    printf("fork: the child was refused every inherited handle; the parent is intact (%s)\n",
           pg ? "PostgreSQL" : "SQLite");
    /* Everything was given back: no handle is still live (a forgotten one
       would be invisible to valgrind, handles live in a table). */
    if (sqlpool_live_handles() != 0) {
        fprintf(stderr, "leak: %zu sqlpool handles still live at exit\n", sqlpool_live_handles());
        return 1;
    }
    return 0;
}
