//! Issue 2's safety contract: bad input and misuse get a status and a
//! message, never a crash or undefined behaviour.

mod common;

use std::ptr;
use std::sync::{Arc, Barrier};

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

#[test]
fn null_pointers_are_invalid_arguments() {
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    let result = query_raw(conn, "SELECT 1 AS a", &[]).unwrap();
    let sql = cstr("SELECT 1");
    let mut out_conn = ptr::null_mut();
    let mut out_result = ptr::null_mut();
    let mut n = 0usize;
    let mut i = 0i64;
    let (mut p, mut len) = (ptr::null(), 0usize);
    unsafe {
        let cases: Vec<(&str, Status)> = vec![
            (
                "open uri out",
                sqlpool_pool_open(sql.as_ptr(), ptr::null(), ptr::null_mut()),
            ),
            (
                "acquire pool",
                sqlpool_pool_acquire(ptr::null_mut(), 0, &mut out_conn),
            ),
            (
                "acquire out",
                sqlpool_pool_acquire(pool, 0, ptr::null_mut()),
            ),
            (
                "execute conn",
                sqlpool_conn_execute(ptr::null_mut(), sql.as_ptr(), ptr::null(), ptr::null_mut()),
            ),
            (
                "execute sql",
                sqlpool_conn_execute(conn, ptr::null(), ptr::null(), ptr::null_mut()),
            ),
            (
                "query out",
                sqlpool_conn_query(conn, sql.as_ptr(), ptr::null(), ptr::null_mut()),
            ),
            (
                "query conn",
                sqlpool_conn_query(ptr::null_mut(), sql.as_ptr(), ptr::null(), &mut out_result),
            ),
            ("script sql", sqlpool_conn_execute_script(conn, ptr::null())),
            (
                "batch sets",
                sqlpool_conn_execute_batch(conn, sql.as_ptr(), ptr::null(), 3, ptr::null_mut()),
            ),
            ("begin", sqlpool_conn_begin(ptr::null_mut(), 0, 0)),
            ("savepoint name", sqlpool_conn_savepoint(conn, ptr::null())),
            (
                "row_count out",
                sqlpool_result_row_count(result, ptr::null_mut()),
            ),
            (
                "row_count result",
                sqlpool_result_row_count(ptr::null(), &mut n),
            ),
            (
                "get_int64 out",
                sqlpool_result_get_int64(result, 0, 0, ptr::null_mut()),
            ),
            (
                "get_int64 result",
                sqlpool_result_get_int64(ptr::null(), 0, 0, &mut i),
            ),
            (
                "get_text len",
                sqlpool_result_get_text(result, 0, 0, &mut p, ptr::null_mut()),
            ),
            (
                "column_name ptr",
                sqlpool_result_column_name(result, 0, ptr::null_mut(), &mut len),
            ),
            (
                "column_index name",
                sqlpool_result_column_index(result, ptr::null(), &mut n),
            ),
            ("params_new out", sqlpool_params_new(ptr::null_mut())),
            (
                "params_add params",
                sqlpool_params_add_int64(ptr::null_mut(), ptr::null(), 1),
            ),
            (
                "params_add_text value",
                sqlpool_params_add_text(ptr::null_mut(), ptr::null(), ptr::null(), 3),
            ),
            ("options_new out", sqlpool_options_new(ptr::null_mut())),
            (
                "options_set options",
                sqlpool_options_set(ptr::null_mut(), sql.as_ptr(), sql.as_ptr()),
            ),
            ("stats out", sqlpool_pool_stats(pool, ptr::null_mut(), 8)),
            ("resize pool", sqlpool_pool_resize(ptr::null_mut(), 1, 2)),
        ];
        for (what, status) in cases {
            assert_eq!(
                status,
                Status::InvalidArgument,
                "{what}: {}",
                last_message()
            );
            assert!(
                last_message().contains("NULL"),
                "{what}: {}",
                last_message()
            );
        }
        // Every free/release/close accepts NULL.
        ok(sqlpool_conn_release(ptr::null_mut()));
        ok(sqlpool_result_free(ptr::null_mut()));
        ok(sqlpool_params_free(ptr::null_mut()));
        ok(sqlpool_options_free(ptr::null_mut()));
        ok(sqlpool_pool_close(ptr::null_mut()));
    }
    ok(sqlpool_result_free(result));
    release(conn);
    close(pool);
}

#[test]
fn invalid_utf8_is_rejected() {
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    let bad = [b'S', b'E', 0xff, 0xfe, 0];
    let mut n = 0;
    let status = unsafe { sqlpool_conn_execute(conn, bad.as_ptr().cast(), ptr::null(), &mut n) };
    assert_eq!(status, Status::InvalidUtf8);
    assert!(
        last_message().contains("sql is not valid UTF-8"),
        "{}",
        last_message()
    );
    let list = params(&[]);
    let status = unsafe { sqlpool_params_add_text(list, ptr::null(), bad.as_ptr().cast(), 4) };
    assert_eq!(status, Status::InvalidUtf8);
    let status = unsafe { sqlpool_params_add_int64(list, bad.as_ptr().cast(), 1) };
    assert_eq!(status, Status::InvalidUtf8);
    let status =
        unsafe { sqlpool_pool_open(bad.as_ptr().cast(), ptr::null(), &mut ptr::null_mut()) };
    assert_eq!(status, Status::InvalidUtf8);
    ok(sqlpool_params_free(list));
    release(conn);
    close(pool);
}

#[test]
fn out_of_range_wrong_type_and_null_cells() {
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    let result = query_raw(conn, "SELECT 1 AS a, 'x' AS b, NULL AS c", &[]).unwrap();
    let mut i = 0i64;
    let mut d = 0.0;
    let (mut p, mut len) = (ptr::null(), 0usize);
    assert_eq!(
        sqlpool_result_get_int64(result, 1, 0, &mut i),
        Status::OutOfRange
    );
    assert!(last_message().contains("row index 1"), "{}", last_message());
    assert_eq!(
        sqlpool_result_get_int64(result, 0, 3, &mut i),
        Status::OutOfRange
    );
    assert_eq!(
        sqlpool_result_get_int64(result, usize::MAX, usize::MAX, &mut i),
        Status::OutOfRange
    );
    assert_eq!(
        sqlpool_result_get_int64(result, 0, 1, &mut i),
        Status::TypeMismatch
    );
    assert!(
        last_message().contains("holds text, not int64"),
        "{}",
        last_message()
    );
    assert_eq!(
        sqlpool_result_get_text(result, 0, 0, &mut p, &mut len),
        Status::TypeMismatch
    );
    assert_eq!(
        sqlpool_result_get_double(result, 0, 2, &mut d),
        Status::NullValue
    );
    assert_eq!(
        sqlpool_result_column_name(result, 9, &mut p, &mut len),
        Status::OutOfRange
    );
    let mut col = 0usize;
    assert_eq!(
        unsafe { sqlpool_result_column_index(result, cstr("zz").as_ptr(), &mut col) },
        Status::OutOfRange
    );
    // Outputs are untouched on failure.
    assert_eq!(i, 0);
    ok(sqlpool_result_free(result));
    release(conn);
    close(pool);
}

#[test]
fn stale_double_released_and_wrong_kind_handles_are_misuse() {
    let pool = open("sqlite::memory:?max_size=2");
    let a = acquire(pool);
    release(a);
    assert_eq!(sqlpool_conn_release(a), Status::Misuse);
    assert!(
        last_message().contains("already released"),
        "{}",
        last_message()
    );
    // A new handle may reuse the slot; the stale one must still be refused.
    let b = acquire(pool);
    assert_ne!(a, b);
    assert_eq!(exec(a, "SELECT 1", &[]).unwrap_err().status, Status::Misuse);
    assert_eq!(
        scalar(b, "SELECT 7"),
        V::I(7),
        "the new handle is unaffected"
    );

    let result = query_raw(b, "SELECT 1", &[]).unwrap();
    ok(sqlpool_result_free(result));
    let mut n = 0usize;
    assert_eq!(sqlpool_result_row_count(result, &mut n), Status::Misuse);
    assert!(last_message().contains("already freed"));
    assert_eq!(sqlpool_result_free(result), Status::Misuse);

    let list = params(&[P::I(1)]);
    ok(sqlpool_params_free(list));
    assert_eq!(sqlpool_params_free(list), Status::Misuse);
    assert_eq!(
        unsafe { sqlpool_conn_execute(b, cstr("SELECT ?").as_ptr(), list, ptr::null_mut()) },
        Status::Misuse
    );

    // A connection where a pool is expected, a pool where a result is.
    let mut c = ptr::null_mut();
    assert_eq!(sqlpool_pool_acquire(b.cast(), 0, &mut c), Status::Misuse);
    assert!(
        last_message().contains("expected a pool handle but got a connection handle"),
        "{}",
        last_message()
    );
    assert_eq!(
        sqlpool_result_row_count(pool.cast(), &mut n),
        Status::Misuse
    );
    // Garbage that was never a handle.
    assert_eq!(
        sqlpool_pool_acquire(0x1234_5670 as *mut _, 0, &mut c),
        Status::Misuse
    );
    assert_eq!(sqlpool_conn_release(usize::MAX as *mut _), Status::Misuse);

    // Close with a connection still out: it works until released.
    close(pool);
    assert_eq!(
        sqlpool_pool_close(pool),
        Status::Misuse,
        "closing twice is reported, harmlessly"
    );
    assert_eq!(try_acquire(pool, 0).unwrap_err().status, Status::Misuse);
    assert_eq!(scalar(b, "SELECT 8"), V::I(8));
    release(b);
    assert_eq!(sqlpool_conn_release(b), Status::Misuse);
}

#[test]
fn a_connection_serves_one_call_at_a_time() {
    let pool = open("sqlite::memory:?max_size=1");
    let conn = Send(acquire(pool));
    let barrier = Arc::new(Barrier::new(2));
    let b2 = barrier.clone();
    let busy = std::thread::spawn(move || {
        let conn = conn;
        b2.wait();
        // A slow statement: a recursive CTE counting to a few million.
        exec(
            conn.0,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c",
            &[],
        )
    });
    barrier.wait();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let err = exec(conn.0, "SELECT 1", &[]).unwrap_err();
    assert_eq!(err.status, Status::Busy, "{}", err.message);
    assert_eq!(sqlpool_conn_release(conn.0), Status::Busy);
    busy.join().unwrap().unwrap();
    // Then it moves to another thread and works there.
    std::thread::spawn(move || {
        let conn = conn;
        assert_eq!(scalar(conn.0, "SELECT 2"), V::I(2));
        release(conn.0);
    })
    .join()
    .unwrap();
    close(pool);
}

#[test]
fn the_pool_is_shared_by_many_threads() {
    let pool = Send(open("sqlite::memory:?max_size=4"));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let pool = pool;
                for _ in 0..50 {
                    let conn = acquire(pool.0);
                    assert_eq!(
                        query(conn, "SELECT ?", &[P::I(i)]).unwrap(),
                        vec![vec![V::I(i)]]
                    );
                    release(conn);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(stats(pool.0).acquires, 400);
    close(pool.0);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn passwords_never_appear_in_errors() {
    let Some(pg) = PgServer::shared() else { return };
    let secret = "s3cr3t-Pa55";
    // Unreachable server with a password in the URI.
    let uri = format!("postgresql://who:{secret}@127.0.0.1:1/db?connect_timeout=2");
    let err = open_with(&uri, &[]).unwrap_err();
    assert_eq!(err.status, Status::ConnectionError, "{}", err.message);
    assert!(
        !err.message.contains(secret) && !last_json().contains(secret),
        "{}",
        err.message
    );
    // Wrong password set through the options object.
    let err = open_with(&pg.url(), &[("password", secret)]).unwrap_err();
    assert_eq!(err.status, Status::AuthError);
    assert!(!err.message.contains(secret));
}

/// Every exported function's body runs inside the panic boundary.
#[test]
fn every_exported_function_is_wrapped_in_the_panic_boundary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let wrappers = [
        "boundary(",
        "boundary_value(",
        "set_option(",
        "set_text(",
        "set_hook(",
        "add_param(",
        "savepoint(",
        "last_error_field(",
        "error_field(",
    ];
    let mut exported = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for (at, _) in source.match_indices("extern \"C\" fn sqlpool_") {
            exported += 1;
            let body_start = at + source[at..].find('{').unwrap();
            let first_lines: String = source[body_start..].lines().take(3).collect();
            let name: String = source[at + 11..]
                .chars()
                .take_while(|c| *c != '(')
                .collect();
            assert!(
                wrappers.iter().any(|w| first_lines.contains(w)),
                "{} in {} does not start with the panic boundary",
                name,
                path.display()
            );
        }
    }
    assert!(exported >= 50, "found only {exported} exported functions");
}
