/* A deliberate leak is reported: a result and a parameter list the program
 * forgets to free are counted by sqlpool_live_handles(), which valgrind
 * cannot see (handles live in the library's table). */
#include <stdio.h>
#include <stdlib.h>

#include "sqlpool.h"

#define CHECK(expr)                                                             \
    do {                                                                        \
        sqlpool_status st_ = (expr);                                            \
        if (st_ != SQLPOOL_OK) {                                                \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__,             \
                    sqlpool_status_name(st_), sqlpool_last_error_message());    \
            return 1;                                                           \
        }                                                                       \
    } while (0)

int main(void) {
    const char *uri = getenv("SQLPOOL_URL");
    sqlpool_pool *pool = NULL;
    sqlpool_params *params = NULL;
    sqlpool_result *res = NULL;
    if (sqlpool_live_handles() != 0) {
        fprintf(stderr, "live handles before any call: %zu\n", sqlpool_live_handles());
        return 1;
    }
    CHECK(sqlpool_pool_open(uri && *uri ? uri : "sqlite::memory:", NULL, &pool));
    CHECK(sqlpool_params_new(&params));
    CHECK(sqlpool_params_add_int64(params, NULL, 1));
    CHECK(sqlpool_pool_query(pool, "SELECT $1", params, &res));
    CHECK(sqlpool_pool_close(pool));
    /* "Forget" the result and the parameters: exactly these two are reported. */
    size_t live = sqlpool_live_handles();
    if (live != 2) {
        fprintf(stderr, "leak not reported: %zu live handles, expected 2\n", live);
        return 1;
    }
    printf("leak_report: a forgotten result and parameter list are reported (%zu live handles)\n", live);
    CHECK(sqlpool_result_free(res));
    CHECK(sqlpool_params_free(params));
    if (sqlpool_live_handles() != 0) {
        fprintf(stderr, "live handles after freeing: %zu\n", sqlpool_live_handles());
        return 1;
    }
    return 0;
}
