//! Issue 14 (9): C callbacks on each new connection and before a connection
//! goes back to the pool. Through the C functions, on an SQLite file and a
//! real PostgreSQL server.

mod common;

use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

/// What a callback does and what it saw; passed as `user_data`.
#[derive(Default)]
struct Probe {
    /// Run on the callback's connection, if set.
    sql: Option<CString>,
    /// Returned instead of the statement's status when non-zero.
    fail_with: AtomicU32,
    calls: AtomicU32,
    /// The handle the callback was given (to try it after it returned).
    last_handle: AtomicUsize,
    /// Statuses of calls the callback must not be allowed to make.
    refused: Mutex<Vec<Status>>,
    /// `sql`'s first cell, when it returns rows.
    seen: Mutex<Vec<String>>,
}

impl Probe {
    fn running(sql: &str) -> Probe {
        Probe {
            sql: Some(CString::new(sql).unwrap()),
            ..Probe::default()
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

unsafe extern "C" fn probe_callback(user_data: *mut c_void, conn: *mut sqlpool_conn) -> u32 {
    let probe = &*(user_data as *const Probe);
    probe.calls.fetch_add(1, Ordering::SeqCst);
    probe.last_handle.store(conn as usize, Ordering::SeqCst);
    // The pool takes the connection back itself, and asynchronous work
    // cannot outlive the callback.
    let mut refused = vec![sqlpool_conn_release(conn)];
    let mut op = 0u64;
    let sql = CString::new("SELECT 1").unwrap();
    let mut queue = ptr::null_mut();
    ok(sqlpool_queue_new(&mut queue));
    refused.push(sqlpool_conn_query_async(
        conn,
        sql.as_ptr(),
        ptr::null(),
        queue,
        None,
        ptr::null_mut(),
        &mut op,
    ));
    ok(sqlpool_queue_free(queue));
    probe.refused.lock().unwrap().extend(refused);
    let mut status = Status::Ok;
    if let Some(sql) = &probe.sql {
        let mut result = ptr::null_mut();
        status = sqlpool_conn_query(conn, sql.as_ptr(), ptr::null(), &mut result);
        if status == Status::Ok {
            let rows = rows_of(result);
            ok(sqlpool_result_free(result));
            if let Some(v) = rows.first().and_then(|r| r.first()) {
                probe.seen.lock().unwrap().push(match v {
                    V::I(i) => i.to_string(),
                    V::T(t) => t.clone(),
                    other => format!("{other:?}"),
                });
            }
        }
    }
    match probe.fail_with.load(Ordering::SeqCst) {
        0 => status as u32,
        code => code,
    }
}

fn open_hooked(
    uri: &str,
    on_connect: Option<&Probe>,
    on_release: Option<&Probe>,
) -> Result<*mut sqlpool_pool, Failure> {
    let mut opts = ptr::null_mut();
    ok(sqlpool_options_new(&mut opts));
    let as_data = |p: &Probe| p as *const Probe as *mut c_void;
    if let Some(p) = on_connect {
        ok(sqlpool_options_set_connect_callback(
            opts,
            Some(probe_callback),
            as_data(p),
        ));
    }
    if let Some(p) = on_release {
        ok(sqlpool_options_set_release_callback(
            opts,
            Some(probe_callback),
            as_data(p),
        ));
    }
    let mut pool = ptr::null_mut();
    let u = cstr(uri);
    let r = check(unsafe { sqlpool_pool_open(u.as_ptr(), opts, &mut pool) });
    ok(sqlpool_options_free(opts));
    r.map(|_| pool)
}

fn one_conn(uri: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}min_size=1&max_size=1")
}

fn show(conn: *mut sqlpool_conn, sql: &str) -> String {
    match scalar(conn, sql) {
        V::I(i) => i.to_string(),
        V::T(t) => t,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn sqlite_callbacks_prepare_new_connections_and_may_discard_at_release() {
    let (_dir, uri) = sqlite_file();
    let on_connect = Probe::running("PRAGMA cache_size = -4321");
    let on_release = Probe::running("SELECT cache_size FROM pragma_cache_size");
    let pool = open_hooked(&one_conn(&uri), Some(&on_connect), Some(&on_release)).unwrap();
    assert_eq!(on_connect.calls(), 1, "the eager first connection");

    let c = acquire(pool);
    assert_eq!(show(c, "SELECT cache_size FROM pragma_cache_size"), "-4321");
    release(c);
    assert_eq!(on_release.calls(), 1);
    assert_eq!(*on_release.seen.lock().unwrap(), ["-4321"]);

    // Inside a callback: no release, no asynchronous work.
    for probe in [&on_connect, &on_release] {
        let refused = probe.refused.lock().unwrap().clone();
        assert_eq!(
            refused,
            [Status::Misuse, Status::Misuse],
            "{refused:?} after {} calls, {} created",
            probe.calls(),
            stats(pool).created
        );
    }
    // The handle a callback was given dies with the callback.
    let stale = on_release.last_handle.load(Ordering::SeqCst) as *mut sqlpool_conn;
    let e = script(stale, "SELECT 1").unwrap_err();
    assert_eq!(e.status, Status::Misuse, "{}", e.message);

    // Kept: the same connection comes back, set up once.
    let c = acquire(pool);
    release(c);
    assert_eq!((stats(pool).created, on_connect.calls()), (1, 1));

    // Discarded when the release callback fails; the next one is set up.
    on_release
        .fail_with
        .store(Status::DatabaseError as u32, Ordering::SeqCst);
    let c = acquire(pool);
    release(c);
    on_release.fail_with.store(0, Ordering::SeqCst);
    let c = acquire(pool);
    assert_eq!(show(c, "SELECT cache_size FROM pragma_cache_size"), "-4321");
    release(c);
    assert_eq!((stats(pool).created, on_connect.calls()), (2, 2));
    close(pool);
}

#[test]
fn sqlite_a_transaction_a_release_callback_leaves_open_is_rolled_back() {
    let (_dir, uri) = sqlite_file();
    let on_release = Probe::running("BEGIN");
    let pool = open_hooked(&one_conn(&uri), None, Some(&on_release)).unwrap();
    let c = acquire(pool);
    release(c);
    let c = acquire(pool);
    script(c, "BEGIN; COMMIT").expect("no transaction left open");
    release(c);
    close(pool);
}

#[test]
fn sqlite_failing_connect_callback_is_the_connect_error() {
    let (_dir, uri) = sqlite_file();
    // The statement's own error, as the callback returned its status.
    let bad = Probe::running("NOT SQL");
    let e = open_hooked(&uri, Some(&bad), None).unwrap_err();
    assert_eq!(e.status, Status::DatabaseError, "{}", e.message);
    assert!(e.message.contains("connect callback"), "{}", e.message);
    assert!(e.message.contains("syntax error"), "{}", e.message);

    // A status of the callback's own, with nothing behind it.
    let refuses = Probe::default();
    refuses.fail_with.store(77, Ordering::SeqCst);
    let e = open_hooked(&uri, Some(&refuses), None).unwrap_err();
    assert_eq!(e.status, Status::ConnectionError, "{}", e.message);
    assert!(e.message.contains("returned status 77"), "{}", e.message);

    // Lazy: the acquire that waited reports it.
    let lazy = format!("{uri}?lazy=true");
    let pool = open_hooked(&lazy, Some(&refuses), None).unwrap();
    let e = try_acquire(pool, 300).unwrap_err();
    assert!(e.message.contains("returned status 77"), "{}", e.message);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_connect_callback_is_what_a_reset_restores() {
    let Some(pg) = PgServer::shared() else { return };
    let on_connect = Probe::running("SET application_name = 'from_callback'");
    let on_release = Probe::running("SHOW application_name");
    let pool = open_hooked(&one_conn(&pg.url()), Some(&on_connect), Some(&on_release)).unwrap();
    let c = acquire(pool);
    assert_eq!(show(c, "SHOW application_name"), "from_callback");
    script(c, "SET application_name = 'borrower'").unwrap();
    release(c);
    // The release callback saw the borrower's session; the next borrower
    // gets the callback's, on the same connection.
    assert_eq!(*on_release.seen.lock().unwrap(), ["borrower"]);
    let c = acquire(pool);
    assert_eq!(show(c, "SHOW application_name"), "from_callback");
    release(c);
    assert_eq!(stats(pool).created, 1, "reset, not replaced");
    close(pool);
}
