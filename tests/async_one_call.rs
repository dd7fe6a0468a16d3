//! The one-call forms of the asynchronous API, through the exported C
//! functions: `sqlpool_pool_acquire_now_or_async` (an idle connection at
//! once, else an operation on the queue, never ahead of queued waiters)
//! and `sqlpool_conn_query_into_start` (a query started and polled once,
//! its result in the caller's buffer when it completed in the call).

mod common;

use std::ptr;
use std::time::{Duration, Instant};

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

const LIMIT: Duration = Duration::from_secs(30);

fn new_queue() -> *mut sqlpool_queue {
    let mut q = ptr::null_mut();
    ok(unsafe { sqlpool_queue_new(&mut q) });
    q
}

/// What `sqlpool_pool_acquire_now_or_async` did.
enum Acquired {
    Now(*mut sqlpool_conn),
    Started(u64),
}

fn acquire_now_or_async(pool: *mut sqlpool_pool, q: *mut sqlpool_queue) -> Acquired {
    let mut conn = ptr::null_mut();
    let mut op_id = 0;
    match unsafe {
        sqlpool_pool_acquire_now_or_async(pool, 10_000, q, ptr::null_mut(), &mut conn, &mut op_id)
    } {
        Status::Ok => {
            assert!(!conn.is_null());
            assert_eq!(op_id, 0, "no operation when taken at once");
            Acquired::Now(conn)
        }
        Status::Empty => {
            assert!(conn.is_null(), "no connection when started");
            assert_ne!(op_id, 0);
            Acquired::Started(op_id)
        }
        s => panic!("acquire_now_or_async: {s:?} {}", last_message()),
    }
}

/// Waits for the next completion on `q`.
fn next_completion(q: *mut sqlpool_queue) -> sqlpool_completion {
    let until = Instant::now() + LIMIT;
    loop {
        let mut c = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
        match unsafe { sqlpool_queue_pop(q, c.as_mut_ptr()) } {
            Status::Ok => return unsafe { c.assume_init() },
            Status::Empty => {
                assert!(Instant::now() < until, "no completion");
                std::thread::sleep(Duration::from_millis(1));
            }
            s => panic!("pop: {s:?} {}", last_message()),
        }
    }
}

fn no_completion(q: *mut sqlpool_queue) {
    let mut c = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
    assert_eq!(
        unsafe { sqlpool_queue_pop(q, c.as_mut_ptr()) },
        Status::Empty
    );
}

fn acquire_in_order(uri: &str) {
    let pool = open_with(uri, &[("max_size", "1"), ("min_size", "1")]).unwrap();
    let q = new_queue();
    // Idle connection, nobody waiting: taken in the call, no completion.
    let Acquired::Now(first) = acquire_now_or_async(pool, q) else {
        panic!("an idle connection was not taken at once")
    };
    no_completion(q);
    // Busy: the second caller queues (an operation), and so does a third.
    let Acquired::Started(second) = acquire_now_or_async(pool, q) else {
        panic!("a busy pool handed a connection over")
    };
    let Acquired::Started(third) = acquire_now_or_async(pool, q) else {
        panic!("a busy pool handed a connection over")
    };
    // Released with waiters queued: the first waiter gets it; a new caller
    // does not jump the queue.
    release(first);
    let Acquired::Started(fourth) = acquire_now_or_async(pool, q) else {
        panic!("a new caller was served ahead of queued waiters")
    };
    let c = next_completion(q);
    assert_eq!((c.op_id, c.status), (second, Status::Ok));
    release(c.handle.cast());
    let c = next_completion(q);
    assert_eq!((c.op_id, c.status), (third, Status::Ok));
    // A cancelled waiter never keeps a connection.
    ok(sqlpool_cancel(fourth));
    release(c.handle.cast());
    let c = next_completion(q);
    assert_eq!((c.op_id, c.status), (fourth, Status::Cancelled));
    assert!(c.handle.is_null());
    ok(sqlpool_error_free(c.error));
    // Queue empty again: the connection is idle and taken at once.
    let Acquired::Now(again) = acquire_now_or_async(pool, q) else {
        panic!("the idle connection was not taken at once")
    };
    release(again);
    assert_eq!(stats(pool).idle, 1);
    ok(sqlpool_queue_free(q));
    close(pool);
}

#[test]
fn sqlite_acquire_now_never_jumps_queued_waiters() {
    let (_dir, uri) = sqlite_file();
    acquire_in_order(&uri);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_acquire_now_never_jumps_queued_waiters() {
    let Some(pg) = PgServer::shared() else {
        eprintln!("skipped (no PostgreSQL server available)");
        return;
    };
    acquire_in_order(&pg.url());
}

#[test]
fn acquire_now_or_async_refuses_bad_arguments_and_closed_pools() {
    let (_dir, uri) = sqlite_file();
    let pool = open(&uri);
    let q = new_queue();
    let mut conn = ptr::null_mut();
    let mut op_id = 0;
    let call = |pool, q, conn: *mut *mut sqlpool_conn, op_id: *mut u64| unsafe {
        sqlpool_pool_acquire_now_or_async(pool, -1, q, ptr::null_mut(), conn, op_id)
    };
    assert_eq!(
        call(ptr::null_mut(), q, &mut conn, &mut op_id),
        Status::InvalidArgument
    );
    assert_eq!(
        call(pool, ptr::null_mut(), &mut conn, &mut op_id),
        Status::InvalidArgument
    );
    assert_eq!(
        call(pool, q, ptr::null_mut(), &mut op_id),
        Status::InvalidArgument
    );
    assert_eq!(
        call(pool, q, &mut conn, ptr::null_mut()),
        Status::InvalidArgument
    );
    let stale = new_queue();
    ok(sqlpool_queue_free(stale));
    assert_eq!(call(pool, stale, &mut conn, &mut op_id), Status::Misuse);
    assert!(conn.is_null() && op_id == 0, "outputs untouched on failure");
    assert_eq!(stats(pool).in_use, 0);
    // A closed pool fails in the call: no operation, no completion.
    let mut closing = ptr::null_mut();
    let u = cstr(&uri);
    ok(unsafe { sqlpool_pool_open(u.as_ptr(), ptr::null_mut(), &mut closing) });
    ok(sqlpool_pool_close(closing));
    assert_eq!(call(closing, q, &mut conn, &mut op_id), Status::Misuse);
    no_completion(q);
    ok(sqlpool_queue_free(q));
    close(pool);
}

const HEADER: usize = SQLPOOL_QUERY_HEADER_SIZE;

fn header_word(buf: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap())
}

/// `sqlpool_conn_query_into_start`, then polls until completion when it
/// did not complete in the call. Returns (completed in the call, rows).
fn query_into_start(conn: *mut sqlpool_conn, sql: &str, wait_us: u64) -> (bool, u64) {
    let s = cstr(sql);
    let mut buf = vec![0u8; 4096];
    let mut out = ptr::null_mut();
    let mut task = ptr::null_mut();
    let mut wait = empty_wait();
    let st = unsafe {
        sqlpool_conn_query_into_start(
            conn,
            s.as_ptr(),
            ptr::null(),
            0,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
            wait_us,
            -1,
            &mut task,
            &mut wait,
        )
    };
    match st {
        Status::Ok => {
            assert!(task.is_null(), "no task left when completed in the call");
            if !out.is_null() {
                ok(sqlpool_result_free(out));
            }
            (true, header_word(&buf, 0))
        }
        Status::Empty => {
            assert!(!task.is_null());
            assert_eq!(header_word(&buf, 0), 0, "buf untouched while unfinished");
            let until = Instant::now() + LIMIT;
            loop {
                let mut c = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
                let st = unsafe {
                    sqlpool_task_poll(task, 10_000, -1, &mut wait, c.as_mut_ptr(), ptr::null_mut())
                };
                if st == Status::Ok {
                    let c = unsafe { c.assume_init() };
                    assert_eq!(c.status, Status::Ok, "{}", last_message());
                    let mut rows = 0usize;
                    ok(sqlpool_result_row_count(c.handle.cast(), &mut rows));
                    ok(sqlpool_result_free(c.handle.cast()));
                    ok(sqlpool_task_free(task));
                    return (false, rows as u64);
                }
                assert_eq!(st, Status::Empty, "{}", last_message());
                assert!(Instant::now() < until, "the task never completed");
            }
        }
        s => panic!("query_into_start: {s:?} {}", last_message()),
    }
}

fn query_into_start_behaves(uri: &str) {
    let pool = open(uri);
    let conn = acquire(pool);
    // With time to wait, a quick query completes in the call, its row in
    // the buffer.
    let mut completed = 0;
    for _ in 0..20 {
        let (now, rows) = query_into_start(conn, "SELECT 1 AS a", 1_000_000);
        assert_eq!(rows, 1);
        completed += now as u32;
    }
    assert!(completed > 0, "no query completed in its first call");
    // Without waiting, a statement handed to the server or a thread does
    // not complete in the call, and its task completes when polled.
    let (now, rows) = query_into_start(conn, "SELECT 1 AS a UNION ALL SELECT 2", 0);
    assert_eq!(rows, 2);
    let _ = now; // (may complete at once when answered meanwhile)
                 // The connection is usable afterwards: not busy.
    assert_eq!(scalar(conn, "SELECT 41 + 1"), V::I(42));
    // A failing query reports its error as the status: nothing to free.
    let s = cstr("SELECT * FROM no_such_table");
    let mut buf = vec![0u8; 4096];
    let mut out = ptr::null_mut();
    let mut task = ptr::null_mut();
    let mut wait = empty_wait();
    let st = unsafe {
        sqlpool_conn_query_into_start(
            conn,
            s.as_ptr(),
            ptr::null(),
            0,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
            1_000_000,
            -1,
            &mut task,
            &mut wait,
        )
    };
    assert!(!matches!(st, Status::Ok | Status::Empty), "{st:?}");
    assert!(
        last_message().contains("no_such_table"),
        "{}",
        last_message()
    );
    assert!(out.is_null() && task.is_null());
    assert_eq!(scalar(conn, "SELECT 7"), V::I(7));
    release(conn);
    close(pool);
}

#[test]
fn sqlite_query_into_start() {
    let (_dir, uri) = sqlite_file();
    query_into_start_behaves(&uri);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_query_into_start() {
    let Some(pg) = PgServer::shared() else {
        eprintln!("skipped (no PostgreSQL server available)");
        return;
    };
    query_into_start_behaves(&pg.url());
}

#[test]
fn query_into_start_refuses_bad_arguments() {
    let (_dir, uri) = sqlite_file();
    let pool = open(&uri);
    let conn = acquire(pool);
    let s = cstr("SELECT 1");
    let mut buf = vec![0u8; HEADER];
    let mut out = ptr::null_mut();
    let mut task = ptr::null_mut();
    let mut wait = empty_wait();
    let call = |conn, buf: *mut u8, len, out, task, wait| unsafe {
        sqlpool_conn_query_into_start(
            conn,
            s.as_ptr(),
            ptr::null(),
            0,
            buf,
            len,
            out,
            0,
            -1,
            task,
            wait,
        )
    };
    let b = buf.as_mut_ptr();
    assert_eq!(
        call(conn, b, HEADER - 1, &mut out, &mut task, &mut wait),
        Status::BufferTooSmall
    );
    assert_eq!(
        call(
            conn,
            ptr::null_mut(),
            HEADER,
            &mut out,
            &mut task,
            &mut wait
        ),
        Status::InvalidArgument
    );
    assert_eq!(
        call(conn, b, HEADER, ptr::null_mut(), &mut task, &mut wait),
        Status::InvalidArgument
    );
    assert_eq!(
        call(conn, b, HEADER, &mut out, ptr::null_mut(), &mut wait),
        Status::InvalidArgument
    );
    assert_eq!(
        call(conn, b, HEADER, &mut out, &mut task, ptr::null_mut()),
        Status::InvalidArgument
    );
    assert_eq!(
        call(ptr::null_mut(), b, HEADER, &mut out, &mut task, &mut wait),
        Status::InvalidArgument
    );
    let bad_params = [0xffu8; 3];
    let st = unsafe {
        sqlpool_conn_query_into_start(
            conn,
            s.as_ptr(),
            bad_params.as_ptr(),
            bad_params.len(),
            b,
            HEADER,
            &mut out,
            10_000_000,
            -1,
            &mut task,
            &mut wait,
        )
    };
    assert_eq!(st, Status::ParameterError, "{}", last_message());
    assert!(
        out.is_null() && task.is_null(),
        "outputs untouched on failure"
    );
    // A connection with an operation in flight is busy.
    let mut first = ptr::null_mut();
    let st =
        unsafe { sqlpool_conn_query_packed_start(conn, s.as_ptr(), ptr::null(), 0, &mut first) };
    assert_eq!(st, Status::Ok);
    assert_eq!(
        call(conn, b, HEADER, &mut out, &mut task, &mut wait),
        Status::Busy
    );
    ok(sqlpool_task_free(first));
    // Freed unfinished, the task marked the connection broken: release
    // closes it.
    release(conn);
    // A released connection is stale.
    assert_eq!(
        call(conn, b, HEADER, &mut out, &mut task, &mut wait),
        Status::Misuse
    );
    close(pool);
}
