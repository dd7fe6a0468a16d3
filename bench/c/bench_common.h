/* Shared helpers of the C programs of `make bench` (bench_sqlpool.c,
 * bench_floor.c): a monotonic clock, the pseudo-random key sequence of the
 * point queries, and the rows the insert scenario writes. Both programs
 * print one JSON object per run on stdout; bench/run.py reads it. */
#ifndef SQLPOOL_BENCH_COMMON_H
#define SQLPOOL_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Keys 1..rows visited in the same scattered order by every program. */
static inline int64_t bench_key(uint64_t i, int64_t rows) {
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 29;
    return (int64_t)(x % (uint64_t)rows) + 1;
}

/* Row i of the insert scenario: (i, "name-<i>", i * 0.5). */
static inline int bench_insert_name(char *buf, size_t cap, int64_t i) {
    return snprintf(buf, cap, "name-%lld", (long long)i);
}

static inline long bench_arg_long(const char *s, const char *what) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0) {
        fprintf(stderr, "bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

/* The query of the fetch scenario and the table both sides read. */
#define BENCH_FETCH_SQL "SELECT id, name, value, ts, data FROM bench_fetch"
#define BENCH_POINT_SQL "SELECT id, name, value FROM bench_point WHERE id = ?1"
#define BENCH_INSERT_PG_SQL "INSERT INTO bench_insert (id, name, value) VALUES ($1, $2, $3)"
#define BENCH_INSERT_SQLITE_SQL "INSERT INTO bench_insert (id, name, value) VALUES (?1, ?2, ?3)"

#endif
