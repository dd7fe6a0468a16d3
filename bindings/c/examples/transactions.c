/*
 * transactions.c: commit, rollback, savepoints, and what a failed statement
 * does inside a transaction.
 *
 *   transactions [URI]
 *
 * URI: the argument, else SQLPOOL_URL, else "sqlite:sqlpool_tx_demo.db" in
 * the current directory. Runs on SQLite and PostgreSQL; where they differ
 * (a failed statement inside a transaction) it shows both behaviours and
 * checks the one of the database it runs on. Every result is verified by
 * querying; exits 1 if anything is not as described.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlpool.h"

static int is_pg;
static int failures;

/* Reports an unexpected status; returns 1 if `st` is not `want`. */
static int expect(sqlpool_status st, sqlpool_status want, const char *what)
{
    if (st == want)
        return 0;
    const char *sqlstate = sqlpool_last_error_sqlstate();
    fprintf(stderr, "FAIL: %s: got %s, expected %s", what, sqlpool_status_name(st),
            sqlpool_status_name(want));
    if (st != SQLPOOL_OK)
        fprintf(stderr, ": %s%s%s", sqlpool_last_error_message(), *sqlstate ? " SQLSTATE " : "",
                sqlstate);
    fputc('\n', stderr);
    failures++;
    return 1;
}

#define OK(call) expect((call), SQLPOOL_OK, #call)

/* Prints the last error as "STATUS [SQLSTATE]: message". */
static void show_error(sqlpool_status st)
{
    printf("      -> %s, SQLSTATE %s: %s\n", sqlpool_status_name(st),
           *sqlpool_last_error_sqlstate() ? sqlpool_last_error_sqlstate() : "(none)",
           sqlpool_last_error_message());
}

/* Inserts an account; returns the status of the INSERT. */
static sqlpool_status insert(sqlpool_conn *conn, int64_t id, const char *owner, int64_t balance)
{
    sqlpool_params *p = NULL;
    sqlpool_status st = sqlpool_params_new(&p);
    if (st == SQLPOOL_OK)
        st = sqlpool_params_add_int64(p, NULL, id);
    if (st == SQLPOOL_OK)
        st = sqlpool_params_add_text(p, NULL, owner, strlen(owner));
    if (st == SQLPOOL_OK)
        st = sqlpool_params_add_int64(p, NULL, balance);
    if (st == SQLPOOL_OK)
        st = sqlpool_conn_execute(
            conn, "INSERT INTO tx_accounts (id, owner, balance) VALUES ($1, $2, $3)", p, NULL);
    /* The error detail is per thread and only replaced by another failure,
     * so freeing the parameters here does not lose it. */
    sqlpool_params_free(p);
    return st;
}

/* Sets `*out` to the single int64 that `sql` returns (-1 for NULL). */
static sqlpool_status query_int(sqlpool_conn *conn, const char *sql, int64_t *out)
{
    sqlpool_result *res = NULL;
    sqlpool_status st = sqlpool_conn_query(conn, sql, NULL, &res);
    if (st != SQLPOOL_OK)
        return st;
    int32_t is_null = 0;
    st = sqlpool_result_is_null(res, 0, 0, &is_null);
    if (st == SQLPOOL_OK && is_null)
        *out = -1;
    else if (st == SQLPOOL_OK)
        st = sqlpool_result_get_int64(res, 0, 0, out);
    sqlpool_result_free(res);
    return st;
}

/* Checks that `sql` returns `want`; prints what it found. */
static void check_int(sqlpool_conn *conn, const char *label, const char *sql, int64_t want)
{
    int64_t got = 0;
    if (OK(query_int(conn, sql, &got)))
        return;
    printf("      %s = %" PRId64 "%s\n", label, got, got == want ? "" : "   <-- WRONG");
    if (got != want) {
        fprintf(stderr, "FAIL: %s: got %" PRId64 ", expected %" PRId64 "\n", label, got, want);
        failures++;
    }
}

#define BALANCE(id) "SELECT balance FROM tx_accounts WHERE id = " #id
#define EXISTS(id) "SELECT count(*) FROM tx_accounts WHERE id = " #id

int main(int argc, char **argv)
{
    const char *uri = argc > 1 ? argv[1] : getenv("SQLPOOL_URL");
    if (uri == NULL || *uri == '\0')
        uri = "sqlite:sqlpool_tx_demo.db";
    is_pg = strncmp(uri, "postgres", 8) == 0;

    sqlpool_pool *pool = NULL;
    sqlpool_conn *conn = NULL;
    sqlpool_status st = sqlpool_pool_open(uri, NULL, &pool);
    if (st != SQLPOOL_OK) {
        fprintf(stderr, "cannot open %s: %s: %s\n", is_pg ? "PostgreSQL" : "SQLite",
                sqlpool_status_name(st), sqlpool_last_error_message());
        return 1;
    }
    if (OK(sqlpool_pool_acquire(pool, -1, &conn)))
        goto done;
    printf("transactions on %s\n", is_pg ? "PostgreSQL" : "SQLite");

    if (OK(sqlpool_conn_execute_script(conn, "DROP TABLE IF EXISTS tx_accounts;"
                                             "CREATE TABLE tx_accounts ("
                                             "  id BIGINT PRIMARY KEY,"
                                             "  owner TEXT NOT NULL,"
                                             "  balance BIGINT NOT NULL)")) ||
        OK(insert(conn, 1, "alice", 100)) || OK(insert(conn, 2, "bob", 50)))
        goto done;
    printf("setup: alice has 100, bob has 50\n");

    /* 1. Commit: both updates become visible together. */
    printf("1. transfer 30 from alice to bob, then COMMIT\n");
    OK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, 0));
    OK(sqlpool_conn_execute(conn, "UPDATE tx_accounts SET balance = balance - 30 WHERE id = 1",
                            NULL, NULL));
    OK(sqlpool_conn_execute(conn, "UPDATE tx_accounts SET balance = balance + 30 WHERE id = 2",
                            NULL, NULL));
    OK(sqlpool_conn_commit(conn));
    check_int(conn, "alice", BALANCE(1), 70);
    check_int(conn, "bob", BALANCE(2), 80);

    /* 2. Rollback: the change is visible inside, gone afterwards. */
    printf("2. set alice to 0, look, then ROLLBACK\n");
    OK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, 0));
    OK(sqlpool_conn_execute(conn, "UPDATE tx_accounts SET balance = 0 WHERE id = 1", NULL, NULL));
    check_int(conn, "alice inside the transaction", BALANCE(1), 0);
    OK(sqlpool_conn_rollback(conn));
    check_int(conn, "alice after rollback", BALANCE(1), 70);

    /* 3. Savepoint: undo part of a transaction, keep the rest. */
    printf("3. insert carol, SAVEPOINT sp1, insert dave, ROLLBACK TO sp1, COMMIT\n");
    OK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, 0));
    OK(insert(conn, 3, "carol", 10));
    OK(sqlpool_conn_savepoint(conn, "sp1"));
    OK(insert(conn, 4, "dave", 20));
    check_int(conn, "dave rows before ROLLBACK TO", EXISTS(4), 1);
    OK(sqlpool_conn_rollback_to_savepoint(conn, "sp1"));
    OK(sqlpool_conn_release_savepoint(conn, "sp1"));
    OK(sqlpool_conn_commit(conn));
    check_int(conn, "carol rows", EXISTS(3), 1);
    check_int(conn, "dave rows", EXISTS(4), 0);

    /* 4. A failing statement inside a transaction. */
    printf("4. insert erin, then a duplicate id inside the same transaction\n");
    OK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, 0));
    OK(insert(conn, 5, "erin", 5));
    st = insert(conn, 1, "alice again", 1);
    expect(st, SQLPOOL_CONSTRAINT_VIOLATION, "duplicate insert");
    show_error(st);
    if (strcmp(sqlpool_last_error_sqlstate(), "23505") != 0) {
        fprintf(stderr, "FAIL: duplicate key SQLSTATE %s, expected 23505\n",
                sqlpool_last_error_sqlstate());
        failures++;
    }
    int64_t n = 0;
    st = query_int(conn, EXISTS(5), &n);
    if (is_pg) {
        /* PostgreSQL aborts the whole transaction: every further statement
         * fails with 25P02 until ROLLBACK (or ROLLBACK TO SAVEPOINT). */
        printf("   PostgreSQL: the transaction is now aborted; the next SELECT fails:\n");
        show_error(st);
        expect(st, SQLPOOL_DATABASE_ERROR, "SELECT in an aborted transaction");
        if (strcmp(sqlpool_last_error_sqlstate(), "25P02") != 0) {
            fprintf(stderr, "FAIL: SQLSTATE %s, expected 25P02\n", sqlpool_last_error_sqlstate());
            failures++;
        }
    } else {
        /* SQLite undoes only the failed statement; the transaction stays
         * open with erin's row in it. */
        printf("   SQLite: only the failed statement is undone; the transaction goes on\n");
        expect(st, SQLPOOL_OK, "SELECT after a failed statement (SQLite)");
        printf("      erin rows inside the transaction = %" PRId64 "\n", n);
        if (n != 1) {
            fprintf(stderr, "FAIL: erin rows %" PRId64 ", expected 1\n", n);
            failures++;
        }
    }
    printf("   ROLLBACK\n");
    OK(sqlpool_conn_rollback(conn));
    check_int(conn, "erin rows after rollback", EXISTS(5), 0);

    /* 5. A savepoint as a guard around a risky statement: after the error,
     *    ROLLBACK TO SAVEPOINT recovers (also PostgreSQL's aborted state)
     *    and the transaction can still commit. */
    printf("5. insert frank, SAVEPOINT guard, duplicate id fails, ROLLBACK TO guard, COMMIT\n");
    OK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, 0));
    OK(insert(conn, 6, "frank", 60));
    OK(sqlpool_conn_savepoint(conn, "guard"));
    st = insert(conn, 2, "bob again", 1);
    expect(st, SQLPOOL_CONSTRAINT_VIOLATION, "duplicate insert after savepoint");
    show_error(st);
    OK(sqlpool_conn_rollback_to_savepoint(conn, "guard"));
    check_int(conn, "frank rows inside the transaction", EXISTS(6), 1);
    OK(sqlpool_conn_commit(conn));
    check_int(conn, "frank rows after commit", EXISTS(6), 1);

    /* 6. COMMIT of an aborted transaction. */
    printf("6. a failed statement, then COMMIT anyway\n");
    OK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, 0));
    OK(insert(conn, 7, "grace", 7));
    expect(insert(conn, 1, "alice again", 1), SQLPOOL_CONSTRAINT_VIOLATION, "duplicate insert");
    st = sqlpool_conn_commit(conn);
    if (is_pg) {
        /* PostgreSQL answers COMMIT in an aborted transaction with ROLLBACK;
         * sqlpool reports that as SQLPOOL_TRANSACTION_STATE (SQLSTATE 25P02)
         * and nothing of the transaction remains. */
        printf("   PostgreSQL rolls the whole transaction back; COMMIT returned %s\n",
               sqlpool_status_name(st));
        expect(st, SQLPOOL_TRANSACTION_STATE, "COMMIT of an aborted transaction (PostgreSQL)");
        show_error(st);
        check_int(conn, "grace rows", EXISTS(7), 0);
    } else {
        /* SQLite undid only the failed statement: grace's row commits. */
        printf("   SQLite commits what succeeded: COMMIT returned %s\n", sqlpool_status_name(st));
        expect(st, SQLPOOL_OK, "COMMIT after a failed statement (SQLite)");
        check_int(conn, "grace rows", EXISTS(7), 1);
    }

    /* 7. COMMIT without a transaction. */
    printf("7. COMMIT with no transaction open\n");
    st = sqlpool_conn_commit(conn);
    if (st == SQLPOOL_OK)
        printf("      -> SQLPOOL_OK (the database only warns)\n");
    else
        show_error(st);
    if (!is_pg)
        expect(st, SQLPOOL_TRANSACTION_STATE, "COMMIT without a transaction (SQLite)");

    /* 8. Releasing a connection rolls back its open transaction. */
    printf("8. begin, insert heidi, release the connection without COMMIT\n");
    OK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, 0));
    OK(insert(conn, 8, "heidi", 8));
    OK(sqlpool_conn_release(conn));
    conn = NULL;
    if (OK(sqlpool_pool_acquire(pool, -1, &conn)))
        goto done;
    check_int(conn, "heidi rows (seen from the next checkout)", EXISTS(8), 0);

    /* 9. A read-only transaction. PostgreSQL refuses writes in it (25006).
     *    On SQLite the flag starts a DEFERRED transaction (no write lock
     *    taken up front); see docs/c.md for whether writes are refused. */
    printf("9. a write inside a read-only transaction\n");
    OK(sqlpool_conn_begin(conn, SQLPOOL_ISOLATION_DEFAULT, SQLPOOL_TX_READ_ONLY));
    st = insert(conn, 9, "ivan", 9);
    if (st == SQLPOOL_OK)
        printf("      -> SQLPOOL_OK: the write was accepted\n");
    else
        show_error(st);
    if (is_pg && st == SQLPOOL_OK) {
        fprintf(stderr, "FAIL: write in a read-only transaction succeeded\n");
        failures++;
    }
    OK(sqlpool_conn_rollback(conn));
    check_int(conn, "ivan rows", EXISTS(9), 0);

    OK(sqlpool_conn_execute(conn, "DROP TABLE tx_accounts", NULL, NULL));

done:
    sqlpool_conn_release(conn);
    sqlpool_pool_close(pool);
    if (failures) {
        fprintf(stderr, "transactions: %d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    /* Everything was given back: no handle is still live (a forgotten one
       would be invisible to valgrind, handles live in a table). */
    if (sqlpool_live_handles() != 0) {
        fprintf(stderr, "leak: %zu sqlpool handles still live at exit\n", sqlpool_live_handles());
        return 1;
    }
    return 0;
}
