/* The C floors of `make bench`: the same work as bench_sqlpool, done with
 * libpq and the sqlite3 C API directly, the way a careful C programmer
 * would (binary results and parameters, prepared statements).
 *
 *   bench_floor info PG_URL SQLITE_PATH     {"libpq": v, "sqlite": v}
 *   bench_floor select1 PG_URL ITERS        PQexecParams("SELECT 1"), binary result
 *   bench_floor select1-prepared PG_URL ITERS
 *                                           PQprepare once, then PQexecPrepared
 *   bench_floor point SQLITE_PATH ITERS ROWS
 *                                           prepared SELECT by primary key
 *   bench_floor fetch PG_URL                bench_fetch, binary, every cell read
 *   bench_floor insert PG_URL ROWS          PQprepare + PQexecPrepared per row
 *   bench_floor insert-pipeline PG_URL ROWS the same in pipeline mode
 *   bench_floor insert-sqlite SQLITE_PATH ROWS
 *                                           prepared INSERT per row
 *   bench_floor copy PG_URL ROWS            COPY FROM STDIN, PQputCopyData of 64 KiB blocks
 *
 * Output: one JSON line, as bench_sqlpool.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "bench_common.h"

static void pg_fail(PGconn *c, const char *what) {
    fprintf(stderr, "bench_floor: %s: %s", what, PQerrorMessage(c));
    exit(1);
}

static PGconn *pg_connect(const char *url) {
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) pg_fail(c, "connect");
    return c;
}

static void pg_command(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_fail(c, sql);
    PQclear(r);
}

static uint64_t be64(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return ((uint64_t)ntohl((uint32_t)v) << 32) | ntohl((uint32_t)(v >> 32));
}

static uint32_t be32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static void put_be64(char *p, uint64_t v) {
    uint32_t hi = htonl((uint32_t)(v >> 32)), lo = htonl((uint32_t)v);
    memcpy(p, &hi, 4);
    memcpy(p + 4, &lo, 4);
}

static void sqlite_fail(sqlite3 *db, const char *what) {
    fprintf(stderr, "bench_floor: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
}

/* Opened as sqlpool opens its SQLite connections: read-write, no
 * per-connection mutex (one thread at a time), WAL, a busy timeout. */
static sqlite3 *sqlite_open(const char *path) {
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        sqlite_fail(db, "open");
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK) sqlite_fail(db, "WAL");
    return db;
}

static int cmd_info(const char *url, const char *path) {
    (void)url;
    (void)path;
    int v = PQlibVersion();
    printf("{\"libpq\": \"%d.%d\", \"sqlite\": \"%s\"}\n", v / 10000, v % 10000, sqlite3_libversion());
    return 0;
}

static int cmd_select1(const char *url, long iters, int prepared) {
    PGconn *c = pg_connect(url);
    if (prepared) {
        PGresult *p = PQprepare(c, "s1", "SELECT 1", 0, NULL);
        if (PQresultStatus(p) != PGRES_COMMAND_OK) pg_fail(c, "prepare");
        PQclear(p);
    }
    long warm = iters / 10 > 100 ? iters / 10 : 100;
    int64_t sum = 0;
    double start = 0;
    for (long i = -warm; i < iters; i++) {
        if (i == 0) start = bench_now_ns();
        PGresult *r = prepared ? PQexecPrepared(c, "s1", 0, NULL, NULL, NULL, 1)
                               : PQexecParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) pg_fail(c, "SELECT 1");
        sum += (int32_t)be32(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    double elapsed = bench_now_ns() - start;
    PQfinish(c);
    if (sum != warm + iters) return 1;
    printf("{\"ns_per_op\": %.1f}\n", elapsed / (double)iters);
    return 0;
}

static int cmd_point(const char *path, long iters, long rows) {
    sqlite3 *db = sqlite_open(path);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, BENCH_POINT_SQL, -1, &st, NULL) != SQLITE_OK) sqlite_fail(db, "prepare");
    uint64_t check = 0;
    long warm = iters / 10 > 100 ? iters / 10 : 100;
    double start = 0;
    for (long i = -warm; i < iters; i++) {
        if (i == 0) start = bench_now_ns();
        int64_t key = bench_key((uint64_t)(i + warm), rows);
        sqlite3_bind_int64(st, 1, key);
        if (sqlite3_step(st) != SQLITE_ROW) sqlite_fail(db, "step");
        int64_t id = sqlite3_column_int64(st, 0);
        const unsigned char *name = sqlite3_column_text(st, 1);
        int name_len = sqlite3_column_bytes(st, 1);
        double value = sqlite3_column_double(st, 2);
        (void)name;
        check += (uint64_t)id + (uint64_t)name_len + (uint64_t)value;
        sqlite3_reset(st);
    }
    double elapsed = bench_now_ns() - start;
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("{\"ns_per_op\": %.1f, \"check\": %llu}\n", elapsed / (double)iters, (unsigned long long)check);
    return 0;
}

static int cmd_fetch(const char *url) {
    PGconn *c = pg_connect(url);
    PGresult *r = PQexecParams(c, BENCH_FETCH_SQL, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) pg_fail(c, "warm-up fetch");
    PQclear(r);

    double start = bench_now_ns();
    r = PQexecParams(c, BENCH_FETCH_SQL, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) pg_fail(c, "fetch");
    int rows = PQntuples(r);
    uint64_t check = 0;
    for (int i = 0; i < rows; i++) {
        int64_t id = (int32_t)be32(PQgetvalue(r, i, 0));
        int name_len = PQgetlength(r, i, 1);
        const char *name = PQgetvalue(r, i, 1);
        uint64_t bits = be64(PQgetvalue(r, i, 2));
        double value;
        memcpy(&value, &bits, 8);
        int64_t ts = (int64_t)be64(PQgetvalue(r, i, 3));
        int data_len = PQgetlength(r, i, 4);
        const unsigned char *data = (const unsigned char *)PQgetvalue(r, i, 4);
        (void)name;
        check += (uint64_t)id + (uint64_t)name_len + (uint64_t)(value * 4) + (uint64_t)(ts & 0xff) +
                 (uint64_t)data_len + data[0];
    }
    PQclear(r);
    double elapsed = bench_now_ns() - start;
    PQfinish(c);
    printf("{\"ms\": %.3f, \"rows\": %d, \"check\": %llu}\n", elapsed / 1e6, rows, (unsigned long long)check);
    return 0;
}

/* Parameters of insert row i in binary form: int4, text, float8. */
struct insert_row {
    char id[4];
    char name[32];
    char value[8];
    const char *values[3];
    int lengths[3];
};

static void insert_row_fill(struct insert_row *row, int64_t i) {
    uint32_t id = htonl((uint32_t)i);
    double v = (double)i * 0.5;
    uint64_t bits;
    memcpy(row->id, &id, 4);
    int n = bench_insert_name(row->name, sizeof row->name, i);
    memcpy(&bits, &v, 8);
    put_be64(row->value, bits);
    row->values[0] = row->id;
    row->values[1] = row->name;
    row->values[2] = row->value;
    row->lengths[0] = 4;
    row->lengths[1] = n;
    row->lengths[2] = 8;
}

static const int insert_formats[3] = {1, 0, 1};
static const Oid insert_types[3] = {23, 25, 701}; /* int4, text, float8 */

static int cmd_insert(const char *url, long rows, int pipeline) {
    PGconn *c = pg_connect(url);
    pg_command(c, "TRUNCATE bench_insert");
    struct insert_row row;
    long done = 0;
    double start = bench_now_ns();
    PGresult *r = PQprepare(c, "ins", BENCH_INSERT_PG_SQL, 3, insert_types);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_fail(c, "prepare");
    PQclear(r);
    pg_command(c, "BEGIN");
    if (!pipeline) {
        for (long i = 0; i < rows; i++) {
            insert_row_fill(&row, i);
            r = PQexecPrepared(c, "ins", 3, row.values, row.lengths, insert_formats, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_fail(c, "insert");
            done += atol(PQcmdTuples(r));
            PQclear(r);
        }
    } else {
        /* Pipeline mode, a sync every CHUNK statements so neither side's
         * socket buffer fills while the other waits (still one transaction:
         * a Sync inside BEGIN does not commit). */
        const long CHUNK = 1000;
        if (!PQenterPipelineMode(c)) pg_fail(c, "pipeline");
        for (long base = 0; base < rows; base += CHUNK) {
            long end = base + CHUNK < rows ? base + CHUNK : rows;
            for (long i = base; i < end; i++) {
                insert_row_fill(&row, i);
                if (!PQsendQueryPrepared(c, "ins", 3, row.values, row.lengths, insert_formats, 0))
                    pg_fail(c, "send");
            }
            if (!PQpipelineSync(c)) pg_fail(c, "sync");
            for (long i = base; i < end; i++) {
                r = PQgetResult(c);
                if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_fail(c, "pipelined insert");
                done += atol(PQcmdTuples(r));
                PQclear(r);
                r = PQgetResult(c); /* NULL: end of this query's results */
                if (r) pg_fail(c, "unexpected result");
            }
            r = PQgetResult(c);
            if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) pg_fail(c, "pipeline sync");
            PQclear(r);
        }
        if (!PQexitPipelineMode(c)) pg_fail(c, "exit pipeline");
    }
    pg_command(c, "COMMIT");
    double elapsed = bench_now_ns() - start;
    PQfinish(c);
    if (done != rows) return 1;
    printf("{\"ms\": %.3f, \"rows\": %ld}\n", elapsed / 1e6, done);
    return 0;
}

static int cmd_insert_sqlite(const char *path, long rows) {
    sqlite3 *db = sqlite_open(path);
    if (sqlite3_exec(db, "DELETE FROM bench_insert", NULL, NULL, NULL) != SQLITE_OK) sqlite_fail(db, "delete");
    long done = 0;
    char name[32];
    double start = bench_now_ns();
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, BENCH_INSERT_SQLITE_SQL, -1, &st, NULL) != SQLITE_OK) sqlite_fail(db, "prepare");
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) sqlite_fail(db, "begin");
    for (long i = 0; i < rows; i++) {
        int n = bench_insert_name(name, sizeof name, i);
        sqlite3_bind_int64(st, 1, i);
        sqlite3_bind_text(st, 2, name, n, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 3, (double)i * 0.5);
        if (sqlite3_step(st) != SQLITE_DONE) sqlite_fail(db, "insert");
        done += sqlite3_changes(db);
        sqlite3_reset(st);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) sqlite_fail(db, "commit");
    sqlite3_finalize(st);
    double elapsed = bench_now_ns() - start;
    sqlite3_close(db);
    if (done != rows) return 1;
    printf("{\"ms\": %.3f, \"rows\": %ld}\n", elapsed / 1e6, done);
    return 0;
}

static int cmd_copy(const char *url, long rows) {
    PGconn *c = pg_connect(url);
    pg_command(c, "TRUNCATE bench_insert");
    static char buf[65536];
    size_t used = 0;
    double start = bench_now_ns();
    PGresult *r = PQexec(c, "COPY bench_insert (id, name, value) FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) pg_fail(c, "copy");
    PQclear(r);
    for (long i = 0; i < rows; i++) {
        if (sizeof buf - used < 64) {
            if (PQputCopyData(c, buf, (int)used) != 1) pg_fail(c, "put");
            used = 0;
        }
        char name[32];
        bench_insert_name(name, sizeof name, i);
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%ld\t%s\t%.17g\n", i, name, (double)i * 0.5);
    }
    if (PQputCopyData(c, buf, (int)used) != 1 || PQputCopyEnd(c, NULL) != 1) pg_fail(c, "put");
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_fail(c, "copy end");
    long done = atol(PQcmdTuples(r));
    PQclear(r);
    double elapsed = bench_now_ns() - start;
    PQfinish(c);
    if (done != rows) return 1;
    printf("{\"ms\": %.3f, \"rows\": %ld}\n", elapsed / 1e6, done);
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_floor info PG_URL SQLITE_PATH | select1[-prepared] PG_URL ITERS |\n"
            "       point SQLITE_PATH ITERS ROWS | fetch PG_URL | insert PG_URL ROWS |\n"
            "       insert-pipeline PG_URL ROWS | insert-sqlite SQLITE_PATH ROWS | copy PG_URL ROWS\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 3) usage();
    const char *cmd = argv[1], *target = argv[2];
    if (strcmp(cmd, "info") == 0 && argc == 4) return cmd_info(target, argv[3]);
    if (strcmp(cmd, "select1") == 0 && argc == 4) return cmd_select1(target, bench_arg_long(argv[3], "ITERS"), 0);
    if (strcmp(cmd, "select1-prepared") == 0 && argc == 4)
        return cmd_select1(target, bench_arg_long(argv[3], "ITERS"), 1);
    if (strcmp(cmd, "point") == 0 && argc == 5)
        return cmd_point(target, bench_arg_long(argv[3], "ITERS"), bench_arg_long(argv[4], "ROWS"));
    if (strcmp(cmd, "fetch") == 0 && argc == 3) return cmd_fetch(target);
    if (strcmp(cmd, "insert") == 0 && argc == 4) return cmd_insert(target, bench_arg_long(argv[3], "ROWS"), 0);
    if (strcmp(cmd, "insert-pipeline") == 0 && argc == 4)
        return cmd_insert(target, bench_arg_long(argv[3], "ROWS"), 1);
    if (strcmp(cmd, "copy") == 0 && argc == 4) return cmd_copy(target, bench_arg_long(argv[3], "ROWS"));
    if (strcmp(cmd, "insert-sqlite") == 0 && argc == 4)
        return cmd_insert_sqlite(target, bench_arg_long(argv[3], "ROWS"));
    usage();
    return 2;
}
