// C side of the Go binding's completions: the library calls sp_complete on
// one of its threads, and that thread's last error is the operation's, so
// it is read here, before Go sees the completion.
#include "sqlpool.h"
#include "_cgo_export.h"

void sp_complete(void *user_data, const sqlpool_completion *c) {
    goComplete((uintptr_t)user_data, (sqlpool_completion *)c,
               c->status != SQLPOOL_OK ? (char *)sqlpool_last_error_json() : NULL);
}

sqlpool_status sp_acquire_async(sqlpool_pool *pool, int64_t timeout_ms, uintptr_t token, uint64_t *op_id) {
    return sqlpool_pool_acquire_async(pool, timeout_ms, NULL, sp_complete, (void *)token, op_id);
}

sqlpool_status sp_query_async(sqlpool_conn *conn, const char *sql, const sqlpool_params *params,
                              uintptr_t token, uint64_t *op_id) {
    return sqlpool_conn_query_async(conn, sql, params, NULL, sp_complete, (void *)token, op_id);
}

sqlpool_status sp_execute_async(sqlpool_conn *conn, const char *sql, const sqlpool_params *params,
                                uintptr_t token, uint64_t *op_id) {
    return sqlpool_conn_execute_async(conn, sql, params, NULL, sp_complete, (void *)token, op_id);
}
