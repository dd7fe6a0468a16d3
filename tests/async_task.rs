//! Loop-driven operations (`sqlpool_task`): started on a connection, then
//! polled by the caller's own loop (here a plain poll(2) loop) until they
//! complete; cancelled, timed out against a frozen server, broken by a
//! lost connection, abandoned midway. Through the exported C functions.

mod common;

use std::ffi::c_void;
use std::ptr;
use std::time::{Duration, Instant};

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

const LIMIT: Duration = Duration::from_secs(30);

fn skipped(test: &str) {
    eprintln!("{test}: skipped (no PostgreSQL server available)");
    println!("{test}: skipped");
}

/// A completion with the thread's error read right after it.
struct Done {
    status: Status,
    kind: u32,
    handle: *mut c_void,
    rows: u64,
    message: String,
    sqlstate: String,
}

/// One poll; `None` while unfinished (with what it waits for).
fn poll_once(task: *mut sqlpool_task, wait_us: u64, wait: &mut sqlpool_wait) -> Option<Done> {
    let mut out = empty_completion();
    let st = unsafe { sqlpool_task_poll(task, wait_us, -1, wait, &mut out, ptr::null_mut()) };
    if st == Status::Empty {
        return None;
    }
    assert_eq!(st, Status::Ok, "poll failed: {}", last_message());
    let failed = out.status != Status::Ok;
    let done = Done {
        status: out.status,
        kind: out.kind,
        handle: out.handle,
        rows: out.rows_affected,
        message: if failed {
            last_message()
        } else {
            String::new()
        },
        sqlstate: if failed {
            unsafe { std::ffi::CStr::from_ptr(sqlpool_last_error_sqlstate()) }
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        },
    };
    if !out.error.is_null() {
        ok(sqlpool_error_free(out.error));
    }
    Some(done)
}

/// Sleeps in poll(2) on what the task waits for, as an event loop would.
fn wait_for(wait: &sqlpool_wait) {
    assert!(wait.count <= 4);
    let mut fds: Vec<libc::pollfd> = (0..wait.count as usize)
        .map(|i| libc::pollfd {
            fd: wait.fds[i],
            events: (if wait.events[i] & SQLPOOL_WAIT_READ != 0 {
                libc::POLLIN
            } else {
                0
            }) | (if wait.events[i] & SQLPOOL_WAIT_WRITE != 0 {
                libc::POLLOUT
            } else {
                0
            }),
            revents: 0,
        })
        .collect();
    assert!(
        !fds.is_empty() || wait.timeout_us >= 0,
        "a task waits for nothing"
    );
    let ms = if wait.timeout_us < 0 {
        1000 // (a loop would wait forever; the test looks again each second)
    } else {
        (wait.timeout_us as u64).div_ceil(1000).min(1000) as i32
    };
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

/// Drives `task` to its completion (failing the test after `LIMIT`), with
/// `on_wait` called after each unfinished poll.
fn drive(task: *mut sqlpool_task, mut on_wait: impl FnMut(usize)) -> (Done, Duration) {
    let started = Instant::now();
    let mut wait = empty_wait();
    for polls in 0.. {
        if let Some(done) = poll_once(task, 0, &mut wait) {
            return (done, started.elapsed());
        }
        assert!(started.elapsed() < LIMIT, "the task did not complete");
        on_wait(polls);
        wait_for(&wait);
    }
    unreachable!()
}

fn start_query(conn: *mut sqlpool_conn, sql: &str) -> *mut sqlpool_task {
    let sql = cstr(sql);
    let mut task = ptr::null_mut();
    ok(unsafe { sqlpool_conn_query_start(conn, sql.as_ptr(), ptr::null(), &mut task) });
    assert!(!task.is_null());
    task
}

fn start_execute(conn: *mut sqlpool_conn, sql: &str) -> *mut sqlpool_task {
    let sql = cstr(sql);
    let mut task = ptr::null_mut();
    ok(unsafe { sqlpool_conn_execute_start(conn, sql.as_ptr(), ptr::null(), &mut task) });
    task
}

fn free(task: *mut sqlpool_task) {
    ok(sqlpool_task_free(task));
}

/// Runs the query as a task and returns its rows.
fn task_rows(conn: *mut sqlpool_conn, sql: &str) -> Vec<Vec<V>> {
    let task = start_query(conn, sql);
    let (done, _) = drive(task, |_| {});
    free(task);
    assert_eq!(done.status, Status::Ok, "{}", done.message);
    assert_eq!(done.kind, SQLPOOL_OP_QUERY);
    let result = done.handle as *mut sqlpool_result;
    let rows = rows_of(result);
    ok(sqlpool_result_free(result));
    rows
}

fn pg_or_skip(test: &str) -> Option<&'static PgServer> {
    let pg = PgServer::shared();
    if pg.is_none() {
        skipped(test);
    }
    pg
}

// ---------------------------------------------------------------------------

#[test]
fn sqlite_tasks_run_statements_and_refuse_misuse() {
    let (_dir, uri) = sqlite_file();
    let pool = open(&uri);
    let conn = acquire(pool);
    let task = start_execute(conn, "CREATE TABLE t (x INTEGER)");
    let (done, _) = drive(task, |_| {});
    assert_eq!(done.status, Status::Ok, "{}", done.message);
    // Polled again after its completion, freed twice.
    let mut wait = empty_wait();
    let mut out = empty_completion();
    assert_eq!(
        unsafe { sqlpool_task_poll(task, 0, -1, &mut wait, &mut out, ptr::null_mut()) },
        Status::Misuse
    );
    free(task);
    assert_eq!(sqlpool_task_free(task), Status::Misuse);
    ok(sqlpool_task_free(ptr::null_mut()));

    let task = start_execute(conn, "INSERT INTO t VALUES (1), (2), (3)");
    let (done, _) = drive(task, |_| {});
    free(task);
    assert_eq!(
        (done.status, done.kind, done.rows),
        (Status::Ok, SQLPOOL_OP_EXECUTE, 3)
    );
    assert_eq!(task_rows(conn, "SELECT sum(x) FROM t"), vec![vec![V::I(6)]]);
    // An error is the completion's, with the thread's last error.
    let task = start_query(conn, "SELECT * FROM missing_table");
    let (done, _) = drive(task, |_| {});
    free(task);
    assert_eq!(done.status, Status::DatabaseError);
    assert!(done.message.contains("missing_table"), "{}", done.message);
    // NULL arguments.
    let mut task = ptr::null_mut();
    let sql = cstr("SELECT 1");
    assert_eq!(
        unsafe { sqlpool_conn_query_start(ptr::null_mut(), sql.as_ptr(), ptr::null(), &mut task) },
        Status::InvalidArgument
    );
    assert_eq!(
        unsafe { sqlpool_conn_query_start(conn, sql.as_ptr(), ptr::null(), ptr::null_mut()) },
        Status::InvalidArgument
    );
    assert_eq!(
        unsafe { sqlpool_task_poll(ptr::null_mut(), 0, -1, &mut wait, &mut out, ptr::null_mut()) },
        Status::InvalidArgument
    );
    release(conn);
    close(pool);
}

#[test]
fn sqlite_task_busy_and_cancelled() {
    let (_dir, uri) = sqlite_file();
    let pool = open(&uri);
    let conn = acquire(pool);
    // Long enough to be running when the second start and the cancel come.
    let slow = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000000) SELECT count(*) FROM c";
    let task = start_query(conn, slow);
    let sql = cstr("SELECT 1");
    let mut second = ptr::null_mut();
    assert_eq!(
        unsafe { sqlpool_conn_query_start(conn, sql.as_ptr(), ptr::null(), &mut second) },
        Status::Busy
    );
    let (done, took) = drive(task, |polls| {
        if polls == 0 {
            std::thread::sleep(Duration::from_millis(50));
            ok(sqlpool_task_cancel(task));
        }
    });
    free(task);
    assert_eq!(done.status, Status::Cancelled, "{}", done.message);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The connection is fine afterwards.
    assert_eq!(task_rows(conn, "SELECT 7"), vec![vec![V::I(7)]]);
    release(conn);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn pg_task_quick_answer_completes_within_the_first_poll() {
    let Some(pg) = pg_or_skip("pg_task_quick_answer_completes_within_the_first_poll") else {
        return;
    };
    let pool = open(&pg.url());
    let conn = acquire(pool);
    assert_eq!(task_rows(conn, "SELECT 1"), vec![vec![V::I(1)]]);
    // With a wait budget the answer arrives inside the call.
    let mut completed = 0;
    for _ in 0..20 {
        let task = start_query(conn, "SELECT 2");
        let mut wait = empty_wait();
        match poll_once(task, 2_000_000, &mut wait) {
            Some(done) => {
                assert_eq!(done.status, Status::Ok);
                ok(sqlpool_result_free(done.handle as *mut sqlpool_result));
                completed += 1;
            }
            None => {
                let (done, _) = drive(task, |_| {});
                ok(sqlpool_result_free(done.handle as *mut sqlpool_result));
            }
        }
        free(task);
    }
    assert!(
        completed >= 15,
        "only {completed} of 20 completed in the first poll"
    );
    // And the connection works for blocking calls in between.
    assert_eq!(scalar(conn, "SELECT 3"), V::I(3));
    release(conn);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn pg_task_cancel_mid_statement_keeps_the_connection() {
    let Some(pg) = pg_or_skip("pg_task_cancel_mid_statement_keeps_the_connection") else {
        return;
    };
    let pool = open(&pg.url());
    let conn = acquire(pool);
    let task = start_query(conn, "SELECT pg_sleep(20)");
    let mut cancelled_at = None;
    let (done, _) = drive(task, |polls| {
        if polls == 0 {
            std::thread::sleep(Duration::from_millis(200));
            ok(sqlpool_task_cancel(task));
            cancelled_at = Some(Instant::now());
        }
    });
    free(task);
    assert_eq!(done.status, Status::Cancelled, "{}", done.message);
    assert_eq!(done.sqlstate, "57014");
    let took = cancelled_at.unwrap().elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The server ended the statement: the connection is reusable.
    assert_eq!(task_rows(conn, "SELECT 5"), vec![vec![V::I(5)]]);
    release(conn);
    let s = stats(pool);
    assert_eq!((s.in_use, s.broken), (0, 0));
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn pg_task_abandoned_midway_discards_its_connection() {
    let Some(pg) = pg_or_skip("pg_task_abandoned_midway_discards_its_connection") else {
        return;
    };
    let pool = open(&pg.url());
    let conn = acquire(pool);
    let task = start_query(conn, "SELECT pg_sleep(20)");
    let mut wait = empty_wait();
    assert!(poll_once(task, 0, &mut wait).is_none());
    assert_eq!(wait.count, 1);
    free(task); // mid-statement
    let before = stats(pool);
    release(conn);
    let after = stats(pool);
    assert_eq!(after.in_use, 0);
    assert_eq!(after.closed, before.closed + 1, "the connection was reused");
    // The pool goes on with a new connection.
    let conn = acquire(pool);
    assert_eq!(task_rows(conn, "SELECT 1"), vec![vec![V::I(1)]]);
    release(conn);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn pg_task_connection_lost_midway_fails_promptly() {
    let Some(pg) = pg_or_skip("pg_task_connection_lost_midway_fails_promptly") else {
        return;
    };
    let pool = open(&pg.url());
    let conn = acquire(pool);
    let pid = match scalar(conn, "SELECT pg_backend_pid()") {
        V::I(p) => p,
        other => panic!("{other:?}"),
    };
    let task = start_query(conn, "SELECT pg_sleep(20)");
    let killer = acquire(pool);
    let (done, took) = drive(task, |polls| {
        if polls == 0 {
            std::thread::sleep(Duration::from_millis(100));
            exec(killer, &format!("SELECT pg_terminate_backend({pid})"), &[]).unwrap();
        }
    });
    free(task);
    assert_ne!(done.status, Status::Ok);
    assert!(took < Duration::from_secs(5), "{took:?}");
    release(killer);
    release(conn);
    let conn = acquire(pool);
    assert_eq!(task_rows(conn, "SELECT 1"), vec![vec![V::I(1)]]);
    release(conn);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn pg_task_query_timeout_bounds_a_frozen_server() {
    let Some(pg) = PgServer::private() else {
        skipped("pg_task_query_timeout_bounds_a_frozen_server");
        return;
    };
    let uri = format!(
        "{}{}query_timeout=300ms",
        pg.url(),
        if pg.url().contains('?') { "&" } else { "?" }
    );
    let pool = open(&uri);
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    pg.freeze();
    struct Thaw<'a>(&'a PgServer);
    impl Drop for Thaw<'_> {
        fn drop(&mut self) {
            self.0.thaw();
        }
    }
    let thaw = Thaw(&pg);
    let task = start_query(conn, "SELECT 1");
    let mut timers = 0;
    let mut wait = empty_wait();
    let started = Instant::now();
    let done = loop {
        if let Some(done) = poll_once(task, 0, &mut wait) {
            break done;
        }
        assert!(started.elapsed() < LIMIT, "the task did not complete");
        // The bound is part of what the task waits for.
        if wait.timeout_us >= 0 {
            timers += 1;
        }
        wait_for(&wait);
    };
    let took = started.elapsed();
    free(task);
    drop(thaw);
    assert_eq!(done.status, Status::QueryTimeout, "{}", done.message);
    assert!(timers > 0, "no deadline was reported");
    assert!(took < Duration::from_secs(5), "{took:?}");
    release(conn);
    let conn = acquire(pool);
    assert_eq!(task_rows(conn, "SELECT 1"), vec![vec![V::I(1)]]);
    release(conn);
    close(pool);
}
