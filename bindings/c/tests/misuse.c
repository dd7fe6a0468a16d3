/*
 * misuse.c: the C API answers misuse with a status, never a crash.
 *
 *   misuse [URI]
 *
 * URI: the argument, else SQLPOOL_URL, else a fresh SQLite file in /tmp.
 * Passes NULLs, double-releases and double-frees handles, uses freed ones,
 * passes a handle of one kind where another is expected, forges handles,
 * closes a pool with connections still out, calls one connection from two
 * threads, and checks every call returns its documented status, that
 * out-parameters are untouched on failure and that the last error is per
 * thread. Exits 1 on any unexpected status. Meant to run under valgrind.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sqlpool.h"

static int failures;
static int checks;
static int is_pg;
static const char *uri;

/* Checks `got == want`; on a failure status also that the thread's last
 * error describes it. */
static void check(sqlpool_status got, sqlpool_status want, const char *expr, int line)
{
    checks++;
    if (got != want) {
        fprintf(stderr, "misuse.c:%d: %s\n    returned %s (%u), expected %s: %s\n", line, expr,
                sqlpool_status_name(got), (unsigned)got, sqlpool_status_name(want),
                got == SQLPOOL_OK ? "" : sqlpool_last_error_message());
        failures++;
        return;
    }
    if (want != SQLPOOL_OK) {
        if (sqlpool_last_error_status() != want || sqlpool_last_error_message()[0] == '\0') {
            fprintf(stderr, "misuse.c:%d: %s\n    last error not recorded (status %s, \"%s\")\n",
                    line, expr, sqlpool_status_name(sqlpool_last_error_status()),
                    sqlpool_last_error_message());
            failures++;
        }
    }
}

#define EXPECT(call, want) check((call), (want), #call, __LINE__)
#define OK(call) EXPECT(call, SQLPOOL_OK)
#define TRUE(cond)                                                                  \
    do {                                                                            \
        checks++;                                                                   \
        if (!(cond)) {                                                              \
            fprintf(stderr, "misuse.c:%d: expected %s\n", __LINE__, #cond);        \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* A pointer value that no call may write into an out-parameter. */
#define SENTINEL ((void *)(uintptr_t)0x5a5a5a50u)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static sqlpool_pool *open_pool(uint32_t min_size, uint32_t max_size)
{
    sqlpool_options *o = NULL;
    sqlpool_pool *p = NULL;
    OK(sqlpool_options_new(&o));
    OK(sqlpool_options_set_min_size(o, min_size));
    OK(sqlpool_options_set_max_size(o, max_size));
    OK(sqlpool_options_set_acquire_timeout_ms(o, 20000));
    if (!is_pg)
        OK(sqlpool_options_set(o, "busy_timeout", "3s"));
    OK(sqlpool_pool_open(uri, o, &p));
    OK(sqlpool_options_free(o));
    if (p == NULL) {
        fprintf(stderr, "cannot open %s; giving up\n", uri);
        exit(1);
    }
    return p;
}

/* ------------------------------------------------------------------ */

static void *fresh_thread_last_error(void *arg)
{
    int *ok = arg;
    /* Nothing failed on this thread yet, whatever other threads did. */
    *ok = sqlpool_last_error_status() == SQLPOOL_OK && sqlpool_last_error_message()[0] == '\0' &&
          sqlpool_last_error_sqlstate()[0] == '\0' && sqlpool_last_error_native_code() == 0 &&
          strcmp(sqlpool_last_error_json(), "{}") == 0;
    /* A failure here stays here. */
    *ok = *ok && sqlpool_params_new(NULL) == SQLPOOL_INVALID_ARGUMENT &&
          sqlpool_last_error_status() == SQLPOOL_INVALID_ARGUMENT;
    return NULL;
}

static void test_library(void)
{
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", SQLPOOL_VERSION_MAJOR, SQLPOOL_VERSION_MINOR,
             SQLPOOL_VERSION_PATCH);
    TRUE(sqlpool_version() != NULL && strcmp(sqlpool_version(), v) == 0);
    TRUE(strcmp(sqlpool_status_name(SQLPOOL_OK), "SQLPOOL_OK") == 0);
    TRUE(strcmp(sqlpool_status_name(SQLPOOL_MISUSE), "SQLPOOL_MISUSE") == 0);
    TRUE(strcmp(sqlpool_status_name(SQLPOOL_PANIC), "SQLPOOL_PANIC") == 0);
    TRUE(strcmp(sqlpool_status_name(SQLPOOL_QUERY_TIMEOUT), "SQLPOOL_QUERY_TIMEOUT") == 0);
    TRUE(strcmp(sqlpool_status_name(97), "SQLPOOL_UNKNOWN") == 0);
    TRUE(strcmp(sqlpool_status_name(0xffffffffu), "SQLPOOL_UNKNOWN") == 0);

    /* The last error is per thread: fail here, look from another thread. */
    EXPECT(sqlpool_options_new(NULL), SQLPOOL_INVALID_ARGUMENT);
    int fresh_ok = 0;
    pthread_t t;
    TRUE(pthread_create(&t, NULL, fresh_thread_last_error, &fresh_ok) == 0);
    pthread_join(t, NULL);
    TRUE(fresh_ok);
    /* ... and ours is unchanged by the other thread's failure and by
     * successful calls. */
    sqlpool_params *p = NULL;
    OK(sqlpool_params_new(&p));
    OK(sqlpool_params_free(p));
    TRUE(sqlpool_last_error_status() == SQLPOOL_INVALID_ARGUMENT);
    TRUE(strstr(sqlpool_last_error_json(), "SQLPOOL_INVALID_ARGUMENT") != NULL);

    EXPECT(sqlpool_set_logger(NULL, 0, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_set_logger(NULL, 6, NULL), SQLPOOL_INVALID_ARGUMENT);
    OK(sqlpool_set_logger(NULL, SQLPOOL_LOG_WARN, NULL));
}

static void test_null_frees(void)
{
    /* Every free/release/close accepts NULL. */
    OK(sqlpool_pool_close(NULL));
    OK(sqlpool_conn_release(NULL));
    OK(sqlpool_result_free(NULL));
    OK(sqlpool_params_free(NULL));
    OK(sqlpool_options_free(NULL));
}

static void test_options(void)
{
    sqlpool_options *o = NULL;
    EXPECT(sqlpool_options_new(NULL), SQLPOOL_INVALID_ARGUMENT);
    OK(sqlpool_options_new(&o));
    EXPECT(sqlpool_options_set(NULL, "max_size", "3"), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_options_set(o, NULL, "3"), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_options_set(o, "max_size", NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_options_set(o, "no_such_option", "1"), SQLPOOL_INVALID_OPTION);
    TRUE(strstr(sqlpool_last_error_message(), "no_such_option") != NULL);
    EXPECT(sqlpool_options_set(o, "max_size", "lots"), SQLPOOL_INVALID_OPTION);
    EXPECT(sqlpool_options_set(o, "acquire_timeout", "soon"), SQLPOOL_INVALID_OPTION);
    EXPECT(sqlpool_options_set(o, "max\xff", "1"), SQLPOOL_INVALID_UTF8);
    OK(sqlpool_options_set(o, "acquire_timeout", "1.5s"));
    EXPECT(sqlpool_options_set_max_size(NULL, 3), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_options_set_recycling(o, 7), SQLPOOL_INVALID_OPTION);
    EXPECT(sqlpool_options_set_port(o, 0), SQLPOOL_INVALID_OPTION);
    EXPECT(sqlpool_options_set_user(o, NULL), SQLPOOL_INVALID_ARGUMENT);

    /* min > max is refused when the pool opens. */
    OK(sqlpool_options_set_min_size(o, 5));
    OK(sqlpool_options_set_max_size(o, 2));
    sqlpool_pool *pool = SENTINEL;
    EXPECT(sqlpool_pool_open(uri, o, &pool), SQLPOOL_INVALID_OPTION);
    TRUE(pool == SENTINEL);

    /* Double free, then use after free. */
    OK(sqlpool_options_free(o));
    EXPECT(sqlpool_options_free(o), SQLPOOL_MISUSE);
    EXPECT(sqlpool_options_set_max_size(o, 3), SQLPOOL_MISUSE);
    EXPECT(sqlpool_options_set(o, "max_size", "3"), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_open(uri, o, &pool), SQLPOOL_MISUSE);
    TRUE(pool == SENTINEL);
}

static void test_open_errors(void)
{
    sqlpool_pool *pool = SENTINEL;
    EXPECT(sqlpool_pool_open(uri, NULL, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_open(NULL, NULL, &pool), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_open("nosuchdb://x", NULL, &pool), SQLPOOL_INVALID_URI);
    EXPECT(sqlpool_pool_open("sqlite:x.db?max_size=zero", NULL, &pool), SQLPOOL_INVALID_OPTION);
    EXPECT(sqlpool_pool_open("sqlite:\xff.db", NULL, &pool), SQLPOOL_INVALID_UTF8);
    TRUE(pool == SENTINEL);

    if (is_pg) {
        /* Wrong password: AUTH_ERROR, and the password is not in the message. */
        sqlpool_options *o = NULL;
        OK(sqlpool_options_new(&o));
        OK(sqlpool_options_set_password(o, "not-the-password-x9"));
        EXPECT(sqlpool_pool_open(uri, o, &pool), SQLPOOL_AUTH_ERROR);
        TRUE(strstr(sqlpool_last_error_message(), "not-the-password-x9") == NULL);
        TRUE(strstr(sqlpool_last_error_json(), "not-the-password-x9") == NULL);
        /* Nothing listens on port 1: CONNECTION_ERROR. */
        OK(sqlpool_options_set_password(o, "x"));
        OK(sqlpool_options_set_host(o, "127.0.0.1"));
        OK(sqlpool_options_set_port(o, 1));
        OK(sqlpool_options_set_connect_timeout_ms(o, 2000));
        EXPECT(sqlpool_pool_open(uri, o, &pool), SQLPOOL_CONNECTION_ERROR);
        TRUE(pool == SENTINEL);
        OK(sqlpool_options_free(o));
    }
}

static void test_params(sqlpool_pool *pool)
{
    sqlpool_params *p = NULL, *named = NULL;
    EXPECT(sqlpool_params_new(NULL), SQLPOOL_INVALID_ARGUMENT);
    OK(sqlpool_params_new(&p));
    EXPECT(sqlpool_params_add_int64(NULL, NULL, 1), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_params_add_text(p, NULL, NULL, 3), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_params_add_blob(p, NULL, NULL, 3), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_params_add_text(p, NULL, "\xc3\x28", 2), SQLPOOL_INVALID_UTF8);
    EXPECT(sqlpool_params_add_null(p, ""), SQLPOOL_PARAMETER_ERROR);
    EXPECT(sqlpool_params_add_null(p, "bad\xff"), SQLPOOL_INVALID_UTF8);
    /* NULL with length 0 is the empty string / empty blob. */
    OK(sqlpool_params_add_text(p, NULL, NULL, 0));
    OK(sqlpool_params_add_blob(p, NULL, NULL, 0));
    OK(sqlpool_params_clear(p));
    EXPECT(sqlpool_params_clear(NULL), SQLPOOL_INVALID_ARGUMENT);

    /* A list mixing positional and named values is refused when used. */
    sqlpool_result *res = SENTINEL;
    OK(sqlpool_params_add_int64(p, NULL, 1));
    OK(sqlpool_params_add_int64(p, "x", 2));
    EXPECT(sqlpool_pool_query(pool, "SELECT $1 AS a, :x AS b", p, &res), SQLPOOL_PARAMETER_ERROR);
    EXPECT(sqlpool_pool_query(pool, "SELECT :x AS b", p, &res), SQLPOOL_PARAMETER_ERROR);
    OK(sqlpool_params_clear(p));
    OK(sqlpool_params_add_int64(p, NULL, 1));

    /* Count and name mismatches: PARAMETER_ERROR, nothing sent. */
    EXPECT(sqlpool_pool_query(pool, "SELECT $1 AS a, $2 AS b", p, &res), SQLPOOL_PARAMETER_ERROR);
    EXPECT(sqlpool_pool_query(pool, "SELECT 1 AS a", p, &res), SQLPOOL_PARAMETER_ERROR);
    OK(sqlpool_params_new(&named));
    OK(sqlpool_params_add_int64(named, "a", 1));
    EXPECT(sqlpool_pool_query(pool, "SELECT :b AS b", named, &res), SQLPOOL_PARAMETER_ERROR);
    TRUE(res == SENTINEL);
    OK(sqlpool_pool_query(pool, "SELECT :a AS a", named, &res));
    OK(sqlpool_result_free(res));

    /* Double free, then use after free. */
    OK(sqlpool_params_free(p));
    EXPECT(sqlpool_params_free(p), SQLPOOL_MISUSE);
    EXPECT(sqlpool_params_add_int64(p, NULL, 1), SQLPOOL_MISUSE);
    EXPECT(sqlpool_params_clear(p), SQLPOOL_MISUSE);
    res = SENTINEL;
    EXPECT(sqlpool_pool_query(pool, "SELECT 1 AS a", p, &res), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_execute(pool, "SELECT 1", p, NULL), SQLPOOL_MISUSE);
    TRUE(res == SENTINEL);
    OK(sqlpool_params_free(named));
}

static void test_results(sqlpool_pool *pool)
{
    sqlpool_result *res = NULL;
    OK(sqlpool_pool_query(pool, "SELECT 1 AS i, 'x' AS t, NULL AS n, 2.5 AS d", NULL, &res));
    size_t n = 77;
    EXPECT(sqlpool_result_row_count(NULL, &n), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_result_row_count(res, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_result_column_count(NULL, &n), SQLPOOL_INVALID_ARGUMENT);
    TRUE(n == 77);
    OK(sqlpool_result_row_count(res, &n));
    TRUE(n == 1);

    /* Out of range, type mismatch, NULL cell: out-parameters untouched. */
    int64_t i = 42;
    double d = 4.5;
    const char *s = SENTINEL;
    size_t len = 99;
    uint32_t kind = 77;
    EXPECT(sqlpool_result_get_int64(res, 1, 0, &i), SQLPOOL_OUT_OF_RANGE);
    EXPECT(sqlpool_result_get_int64(res, 0, 4, &i), SQLPOOL_OUT_OF_RANGE);
    EXPECT(sqlpool_result_get_int64(res, SIZE_MAX, SIZE_MAX, &i), SQLPOOL_OUT_OF_RANGE);
    EXPECT(sqlpool_result_kind(res, 0, 9, &kind), SQLPOOL_OUT_OF_RANGE);
    EXPECT(sqlpool_result_get_int64(res, 0, 1, &i), SQLPOOL_TYPE_MISMATCH);
    EXPECT(sqlpool_result_get_int64(res, 0, 2, &i), SQLPOOL_NULL_VALUE);
    EXPECT(sqlpool_result_get_text(res, 0, 0, &s, &len), SQLPOOL_TYPE_MISMATCH);
    EXPECT(sqlpool_result_get_text(res, 0, 2, &s, &len), SQLPOOL_NULL_VALUE);
    EXPECT(sqlpool_result_get_double(res, 0, 1, &d), SQLPOOL_TYPE_MISMATCH);
    EXPECT(sqlpool_result_get_text(res, 0, 1, NULL, &len), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_result_get_int64(res, 0, 0, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_result_column_name(res, 4, &s, &len), SQLPOOL_OUT_OF_RANGE);
    EXPECT(sqlpool_result_column_index(res, NULL, &n), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_result_column_index(res, "nope", &n), SQLPOOL_OUT_OF_RANGE);
    EXPECT(sqlpool_result_column_data(res, 0, NULL), SQLPOOL_INVALID_ARGUMENT);
    TRUE(i == 42 && d == 4.5 && s == SENTINEL && len == 99 && kind == 77 && n == 1);
    /* `len` may be NULL for names and text. */
    OK(sqlpool_result_column_name(res, 1, &s, NULL));
    TRUE(s != SENTINEL && s[0] == 't');
    OK(sqlpool_result_get_text(res, 0, 1, &s, &len));
    TRUE(len == 1 && s[0] == 'x');

    /* Free twice; use after free. */
    OK(sqlpool_result_free(res));
    EXPECT(sqlpool_result_free(res), SQLPOOL_MISUSE);
    n = 77;
    EXPECT(sqlpool_result_row_count(res, &n), SQLPOOL_MISUSE);
    EXPECT(sqlpool_result_get_int64(res, 0, 0, &i), SQLPOOL_MISUSE);
    EXPECT(sqlpool_result_get_text(res, 0, 1, &s, &len), SQLPOOL_MISUSE);
    EXPECT(sqlpool_result_column_index(res, "i", &n), SQLPOOL_MISUSE);
    TRUE(n == 77);

    /* The freed handle stays dead after its slot is reused. */
    sqlpool_result *again = NULL;
    OK(sqlpool_pool_query(pool, "SELECT 7 AS i", NULL, &again));
    EXPECT(sqlpool_result_get_int64(res, 0, 0, &i), SQLPOOL_MISUSE);
    OK(sqlpool_result_get_int64(again, 0, 0, &i));
    TRUE(i == 7);
    OK(sqlpool_result_free(again));
}

static void test_connections(sqlpool_pool *pool)
{
    sqlpool_conn *c = SENTINEL;
    sqlpool_result *res = SENTINEL;
    EXPECT(sqlpool_pool_acquire(NULL, 0, &c), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_acquire(pool, 0, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_execute(NULL, "SELECT 1", NULL, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_execute(pool, NULL, NULL, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_query(pool, "SELECT 1", NULL, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_query(pool, "SELECT nonsense FROM nowhere", NULL, &res),
           SQLPOOL_DATABASE_ERROR);
    TRUE(sqlpool_last_error_sqlstate()[0] != '\0');
    TRUE(res == SENTINEL && c == SENTINEL);
    EXPECT(sqlpool_pool_stats(NULL, NULL, 0), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_resize(NULL, 1, 2), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_drain(NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_pool_resize(pool, 5, 2), SQLPOOL_INVALID_OPTION);
    EXPECT(sqlpool_pool_resize(pool, 0, 0), SQLPOOL_INVALID_OPTION);

    OK(sqlpool_pool_acquire(pool, -1, &c));
    EXPECT(sqlpool_conn_execute(NULL, "SELECT 1", NULL, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_execute(c, NULL, NULL, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_execute(c, "SELECT \xff", NULL, NULL), SQLPOOL_INVALID_UTF8);
    EXPECT(sqlpool_conn_query(c, "SELECT 1", NULL, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_execute_script(c, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_execute_batch(c, "SELECT 1", NULL, 2, NULL), SQLPOOL_INVALID_ARGUMENT);
    const sqlpool_params *sets[2] = {NULL, NULL};
    EXPECT(sqlpool_conn_execute_batch(c, "SELECT 1", sets, 2, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_begin(NULL, 0, 0), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_begin(c, 0, 0x80), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_begin(c, 9, 0), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_commit(NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_rollback(NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_savepoint(c, NULL), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_savepoint(c, "x; DROP TABLE t"), SQLPOOL_INVALID_ARGUMENT);
    EXPECT(sqlpool_conn_rollback_to_savepoint(c, ""), SQLPOOL_INVALID_ARGUMENT);
    if (!is_pg) {
        EXPECT(sqlpool_conn_commit(c), SQLPOOL_TRANSACTION_STATE);
        EXPECT(sqlpool_conn_rollback(c), SQLPOOL_TRANSACTION_STATE);
        OK(sqlpool_conn_begin(c, 0, 0));
        EXPECT(sqlpool_conn_begin(c, 0, 0), SQLPOOL_TRANSACTION_STATE);
        OK(sqlpool_conn_rollback(c));
    }
    /* The connection still works after all that. */
    OK(sqlpool_conn_execute(c, "SELECT 1", NULL, NULL));

    /* Stats write at most `size` bytes. */
    unsigned char buf[sizeof(sqlpool_stats) + 8];
    memset(buf, 0xee, sizeof buf);
    OK(sqlpool_pool_stats(pool, (sqlpool_stats *)(void *)buf, 8));
    TRUE(buf[8] == 0xee && buf[sizeof buf - 1] == 0xee);
    sqlpool_stats st;
    OK(sqlpool_pool_stats(pool, &st, sizeof st));
    TRUE(st.in_use == 1);

    /* Release twice; use after release. */
    OK(sqlpool_conn_release(c));
    EXPECT(sqlpool_conn_release(c), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_execute(c, "SELECT 1", NULL, NULL), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_query(c, "SELECT 1", NULL, &res), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_begin(c, 0, 0), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_commit(c), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_savepoint(c, "sp"), SQLPOOL_MISUSE);
    TRUE(res == SENTINEL);
    OK(sqlpool_pool_stats(pool, &st, sizeof st));
    TRUE(st.in_use == 0);

    /* Timeout 0 on an exhausted pool: POOL_TIMEOUT at once. */
    sqlpool_conn *held[3] = {NULL, NULL, NULL};
    OK(sqlpool_pool_stats(pool, &st, sizeof st));
    TRUE(st.max_size == 3);
    for (int k = 0; k < 3; k++)
        OK(sqlpool_pool_acquire(pool, -1, &held[k]));
    c = SENTINEL;
    EXPECT(sqlpool_pool_acquire(pool, 0, &c), SQLPOOL_POOL_TIMEOUT);
    EXPECT(sqlpool_pool_acquire(pool, 50, &c), SQLPOOL_POOL_TIMEOUT);
    TRUE(c == SENTINEL);
    for (int k = 0; k < 3; k++)
        OK(sqlpool_conn_release(held[k]));
}

static void test_wrong_kinds(sqlpool_pool *pool)
{
    sqlpool_conn *c = NULL;
    sqlpool_result *res = NULL;
    sqlpool_params *p = NULL;
    sqlpool_options *o = NULL;
    OK(sqlpool_pool_acquire(pool, -1, &c));
    OK(sqlpool_pool_query(pool, "SELECT 1 AS a", NULL, &res));
    OK(sqlpool_params_new(&p));
    OK(sqlpool_options_new(&o));

    /* Each handle passed where another kind is expected. */
    sqlpool_conn *c2 = SENTINEL;
    sqlpool_stats st;
    size_t n = 0;
    EXPECT(sqlpool_pool_acquire((sqlpool_pool *)c, 0, &c2), SQLPOOL_MISUSE);
    TRUE(strstr(sqlpool_last_error_message(), "connection") != NULL);
    EXPECT(sqlpool_pool_stats((sqlpool_pool *)res, &st, sizeof st), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_close((sqlpool_pool *)c), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_execute((sqlpool_conn *)pool, "SELECT 1", NULL, NULL), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_release((sqlpool_conn *)res), SQLPOOL_MISUSE);
    EXPECT(sqlpool_result_row_count((sqlpool_result *)p, &n), SQLPOOL_MISUSE);
    EXPECT(sqlpool_result_free((sqlpool_result *)pool), SQLPOOL_MISUSE);
    EXPECT(sqlpool_params_free((sqlpool_params *)o), SQLPOOL_MISUSE);
    EXPECT(sqlpool_params_add_null((sqlpool_params *)c, NULL), SQLPOOL_MISUSE);
    EXPECT(sqlpool_options_free((sqlpool_options *)p), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_open(uri, (sqlpool_options *)p, (sqlpool_pool **)&c2), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_query(c, "SELECT 1", (sqlpool_params *)res, &res), SQLPOOL_MISUSE);
    TRUE(c2 == SENTINEL);

    /* Forged handles (never dereferenced by the library). */
    EXPECT(sqlpool_pool_acquire((sqlpool_pool *)(uintptr_t)0x10, 0, &c2), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_close((sqlpool_pool *)(uintptr_t)0x7ffffff1u), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_release((sqlpool_conn *)(uintptr_t)0x12345673u), SQLPOOL_MISUSE);
    EXPECT(sqlpool_result_free((sqlpool_result *)(uintptr_t)0xdeadbeefu), SQLPOOL_MISUSE);
    TRUE(c2 == SENTINEL);

    /* None of that freed or broke anything. */
    OK(sqlpool_conn_execute(c, "SELECT 1", NULL, NULL));
    OK(sqlpool_result_row_count(res, &n));
    TRUE(n == 1);
    OK(sqlpool_params_add_int64(p, NULL, 1));
    OK(sqlpool_options_set_max_size(o, 3));
    OK(sqlpool_pool_stats(pool, &st, sizeof st));

    OK(sqlpool_conn_release(c));
    OK(sqlpool_result_free(res));
    OK(sqlpool_params_free(p));
    OK(sqlpool_options_free(o));
}

/* ------------------------------------------------------------------ */
/* One call at a time per connection. */

struct busy_arg {
    sqlpool_conn *conn;
    atomic_int state; /* 0 = starting, 1 = about to call, 2 = returned */
    sqlpool_status status;
};

static void *slow_call(void *p)
{
    struct busy_arg *a = p;
    atomic_store(&a->state, 1);
    /* Blocks until the main thread lets go of a lock another connection
     * holds: PostgreSQL an advisory lock, SQLite the write lock. */
    a->status = is_pg ? sqlpool_conn_execute(a->conn, "SELECT pg_advisory_xact_lock(4242)", NULL,
                                             NULL)
                      : sqlpool_conn_execute(a->conn, "BEGIN IMMEDIATE", NULL, NULL);
    atomic_store(&a->state, 2);
    return NULL;
}

static void test_busy(sqlpool_pool *pool)
{
    sqlpool_conn *locker = NULL;
    struct busy_arg a = {NULL, 0, SQLPOOL_OK};
    OK(sqlpool_pool_acquire(pool, -1, &a.conn));
    OK(sqlpool_pool_acquire(pool, -1, &locker));
    OK(sqlpool_conn_begin(locker, 0, 0));
    if (is_pg)
        OK(sqlpool_conn_execute(locker, "SELECT pg_advisory_xact_lock(4242)", NULL, NULL));

    pthread_t t;
    TRUE(pthread_create(&t, NULL, slow_call, &a) == 0);
    while (atomic_load(&a.state) == 0)
        sleep_ms(1);
    /* The other thread is inside (or about to enter) its call: this one
     * must get SQLPOOL_BUSY, and releasing the connection too. */
    int saw_busy = 0, saw_release_busy = 0;
    for (int i = 0; i < 400 && atomic_load(&a.state) != 2 && !(saw_busy && saw_release_busy); i++) {
        sleep_ms(5);
        sqlpool_status s = sqlpool_conn_execute(a.conn, "SELECT 1", NULL, NULL);
        if (s == SQLPOOL_BUSY)
            saw_busy = 1;
        else if (s != SQLPOOL_OK)
            check(s, SQLPOOL_BUSY, "sqlpool_conn_execute while busy", __LINE__);
        s = sqlpool_conn_release(a.conn);
        if (s == SQLPOOL_BUSY) {
            saw_release_busy = 1;
        } else {
            check(s, SQLPOOL_BUSY, "sqlpool_conn_release while busy", __LINE__);
            break;
        }
    }
    TRUE(saw_busy);
    TRUE(saw_release_busy);
    TRUE(atomic_load(&a.state) == 1); /* still blocked */
    OK(sqlpool_conn_rollback(locker)); /* lets the other thread's call finish */
    pthread_join(t, NULL);
    OK(a.status);
    if (!is_pg)
        OK(sqlpool_conn_rollback(a.conn));
    OK(sqlpool_conn_release(locker));
    OK(sqlpool_conn_release(a.conn));
}

/* ------------------------------------------------------------------ */
/* Closing a pool with connections out, and with a caller waiting. */

struct waiter_arg {
    sqlpool_pool *pool;
    sqlpool_status status;
    sqlpool_status last_error;
    sqlpool_conn *conn;
};

static void *waiter(void *p)
{
    struct waiter_arg *a = p;
    a->status = sqlpool_pool_acquire(a->pool, -1, &a->conn);
    a->last_error = sqlpool_last_error_status();
    return NULL;
}

static void test_close_with_connections_out(void)
{
    sqlpool_pool *pool = open_pool(1, 2);
    sqlpool_conn *c1 = NULL, *c2 = NULL;
    OK(sqlpool_pool_acquire(pool, -1, &c1));
    OK(sqlpool_pool_acquire(pool, -1, &c2));

    /* A third caller waits (max_size 2) until the pool closes. */
    struct waiter_arg w = {pool, SQLPOOL_OK, SQLPOOL_OK, SENTINEL};
    pthread_t t;
    TRUE(pthread_create(&t, NULL, waiter, &w) == 0);
    sqlpool_stats st;
    for (int i = 0; i < 2000; i++) {
        OK(sqlpool_pool_stats(pool, &st, sizeof st));
        if (st.waiting > 0)
            break;
        sleep_ms(2);
    }
    TRUE(st.waiting == 1);

    OK(sqlpool_pool_close(pool));
    pthread_join(t, NULL);
    TRUE(w.status == SQLPOOL_POOL_CLOSED);
    TRUE(w.last_error == SQLPOOL_POOL_CLOSED);
    TRUE(w.conn == SENTINEL);

    /* The pool handle is dead... */
    sqlpool_conn *c3 = SENTINEL;
    EXPECT(sqlpool_pool_close(pool), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_acquire(pool, 0, &c3), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_stats(pool, &st, sizeof st), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_execute(pool, "SELECT 1", NULL, NULL), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_resize(pool, 1, 3), SQLPOOL_MISUSE);
    EXPECT(sqlpool_pool_drain(pool), SQLPOOL_MISUSE);
    TRUE(c3 == SENTINEL);

    /* ...but borrowed connections stay usable until released. */
    sqlpool_result *res = NULL;
    int64_t v = 0;
    OK(sqlpool_conn_query(c1, "SELECT 41 + 1 AS v", NULL, &res));
    OK(sqlpool_result_get_int64(res, 0, 0, &v));
    TRUE(v == 42);
    OK(sqlpool_result_free(res));
    OK(sqlpool_conn_begin(c2, 0, 0));
    OK(sqlpool_conn_rollback(c2));
    OK(sqlpool_conn_release(c1));
    OK(sqlpool_conn_release(c2));
    EXPECT(sqlpool_conn_release(c1), SQLPOOL_MISUSE);
    EXPECT(sqlpool_conn_execute(c2, "SELECT 1", NULL, NULL), SQLPOOL_MISUSE);
}

int main(int argc, char **argv)
{
    char tmp_db[64] = "";
    char uri_buf[96];
    uri = argc > 1 ? argv[1] : getenv("SQLPOOL_URL");
    if (uri == NULL || *uri == '\0') {
        snprintf(tmp_db, sizeof tmp_db, "/tmp/sqlpool_misuse_%ld.db", (long)getpid());
        snprintf(uri_buf, sizeof uri_buf, "sqlite:%s", tmp_db);
        uri = uri_buf;
    }
    is_pg = strncmp(uri, "postgres", 8) == 0;

    test_library();
    test_null_frees();
    test_options();
    test_open_errors();

    sqlpool_pool *pool = open_pool(1, 3);
    test_params(pool);
    test_results(pool);
    test_connections(pool);
    test_wrong_kinds(pool);
    test_busy(pool);
    OK(sqlpool_pool_close(pool));
    test_close_with_connections_out();

    if (tmp_db[0]) {
        char path[80];
        remove(tmp_db);
        snprintf(path, sizeof path, "%s-wal", tmp_db);
        remove(path);
        snprintf(path, sizeof path, "%s-shm", tmp_db);
        remove(path);
    }
    printf("misuse (%s): %d checks, %d failed\n", is_pg ? "PostgreSQL" : "SQLite", checks,
           failures);
    /* Everything was given back: no handle is still live (a forgotten one
       would be invisible to valgrind, handles live in a table). */
    if (sqlpool_live_handles() != 0) {
        fprintf(stderr, "leak: %zu sqlpool handles still live at exit\n", sqlpool_live_handles());
        return 1;
    }
    return failures ? 1 : 0;
}
