//! Issue 12: adversarial tests of the PostgreSQL engine on real throwaway
//! servers — deadlines against a frozen server and a dead network path,
//! exact transaction outcomes, cancels that belong to their operation, a
//! self-repairing statement cache, typed parameters. Through the exported
//! C functions only.
//!
//! Without PostgreSQL every test prints "skipped" (and with `CI=true` the
//! harness panics instead).

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::net::{SocketAddr, ToSocketAddrs};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::capi::*;
use common::pg::PgServer;
use proxy::Proxy;
use sqlpool::ffi::*;
use sqlpool::Status;

// ---------------------------------------------------------------------------
// Helpers

fn skipped(test: &str) {
    eprintln!("{test}: skipped (no PostgreSQL server available)");
    println!("{test}: skipped");
}

macro_rules! private_or_skip {
    ($name:expr) => {
        match PgServer::private() {
            Some(pg) => pg,
            None => {
                skipped($name);
                return;
            }
        }
    };
}

macro_rules! shared_or_skip {
    ($name:expr) => {
        match PgServer::shared() {
            Some(pg) => pg,
            None => {
                skipped($name);
                return;
            }
        }
    };
}

/// Runs `f` on its own thread and waits at most `limit` for it: a call
/// that hangs fails the test instead of hanging it. Returns the value and
/// how long the call took.
#[track_caller]
fn within<T: std::marker::Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + std::marker::Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let v = f();
        let _ = tx.send((v, started.elapsed()));
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not return within {limit:?} (still hanging)"),
    }
}

/// Thaws a frozen cluster when dropped, also when the test panics (a
/// frozen postmaster would stall the harness's teardown).
struct Frozen<'a>(&'a PgServer);

impl<'a> Frozen<'a> {
    fn new(pg: &'a PgServer) -> Frozen<'a> {
        pg.freeze();
        Frozen(pg)
    }
    fn thaw(self) {}
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.thaw();
    }
}

/// A failure's status, SQLSTATE and message, as a short string.
fn describe(f: &Failure) -> String {
    format!("{:?} [{}] {}", f.status, f.sqlstate, f.message)
}

fn last_sqlstate() -> String {
    unsafe { std::ffi::CStr::from_ptr(sqlpool_last_error_sqlstate()) }
        .to_string_lossy()
        .into_owned()
}

fn upstream(pg: &PgServer) -> SocketAddr {
    (pg.host().as_str(), pg.port())
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
}

/// The URL of `pg` reached through `proxy` (password auth over TCP).
fn proxied_url(pg: &PgServer, proxy: &Proxy) -> String {
    format!(
        "postgresql://{}:{}@127.0.0.1:{}/{}",
        pg.user(),
        pg.password(),
        proxy.port(),
        pg.dbname()
    )
}

/// `uri` plus query options (`a=1&b=2`), whether or not it has a query.
fn with_opts(uri: &str, opts: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{opts}")
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A table name unique in this test process (tests share a server).
fn table(tag: &str) -> String {
    format!(
        "pge_{tag}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn set_query_timeout(conn: *mut sqlpool_conn, ms: i64) {
    ok(sqlpool_conn_set_query_timeout(conn, ms));
}

fn begin(conn: *mut sqlpool_conn) {
    ok(sqlpool_conn_begin(conn, 0, 0));
}

fn commit(conn: *mut sqlpool_conn) -> Result<(), Failure> {
    check(sqlpool_conn_commit(conn))
}

fn count(conn: *mut sqlpool_conn, sql: &str) -> i64 {
    match scalar(conn, sql) {
        V::I(n) => n,
        v => panic!("{sql}: expected an integer, got {v:?}"),
    }
}

fn pool_query(pool: *mut sqlpool_pool, sql: &str) -> Result<Vec<Vec<V>>, Failure> {
    let s = cstr(sql);
    let mut result = ptr::null_mut();
    check(unsafe { sqlpool_pool_query(pool, s.as_ptr(), ptr::null(), &mut result) })?;
    let rows = rows_of(result);
    ok(sqlpool_result_free(result));
    Ok(rows)
}

/// Polls until the pool hands out a connection that answers `SELECT 1`;
/// returns how long that took. Panics after `limit`.
#[track_caller]
fn serves_again(pool: *mut sqlpool_pool, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        match try_acquire(pool, 1000) {
            Ok(conn) => {
                let r = query(conn, "SELECT 1", &[]);
                release(conn);
                match r {
                    Ok(rows) if rows == vec![vec![V::I(1)]] => return started.elapsed(),
                    Ok(rows) => last = format!("SELECT 1 returned {rows:?}"),
                    Err(e) => last = describe(&e),
                }
            }
            Err(e) => last = describe(&e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the pool did not serve again within {limit:?}; last error: {last}");
}

// ---------------------------------------------------------------------------
// 1. Deadlines

/// What a dead server is, for the three deadline checks: frozen processes
/// or a proxy that stopped forwarding.
trait Outage {
    fn begin_outage(&self);
    fn end_outage(&self);
}

struct FreezeOutage<'a>(&'a PgServer, Mutex<Option<Frozen<'a>>>);

impl Outage for FreezeOutage<'_> {
    fn begin_outage(&self) {
        *self.1.lock().unwrap() = Some(Frozen::new(self.0));
    }
    fn end_outage(&self) {
        if let Some(f) = self.1.lock().unwrap().take() {
            f.thaw();
        }
    }
}

impl Outage for Proxy {
    fn begin_outage(&self) {
        self.stall();
    }
    fn end_outage(&self) {
        self.resume();
    }
}

/// (a) a query on a held connection with `query_timeout=500ms` returns
/// QUERY_TIMEOUT within deadline + 1 s; the connection can be released at
/// once; the pool serves again within seconds of the server's return.
fn held_query_is_bounded(url: &str, outage: &dyn Outage) {
    let pool = Send(open(&with_opts(
        url,
        "min_size=1&max_size=2&query_timeout=500ms&acquire_timeout=2s&connect_timeout=1",
    )));
    let conn = Send(acquire(pool.0));
    assert_eq!(scalar(conn.0, "SELECT 1"), V::I(1));
    outage.begin_outage();
    let (r, took) = within(Duration::from_secs(20), "query on a dead server", move || {
        let conn = conn;
        exec(conn.0, "SELECT 1", &[]).map_err(|e| describe(&e))
    });
    let err = r.expect_err("a query against a dead server succeeded");
    assert!(
        err.starts_with("QueryTimeout"),
        "expected SQLPOOL_QUERY_TIMEOUT, got {err}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "query_timeout=500ms but the call took {took:?}"
    );
    let (r, took) = within(Duration::from_secs(20), "release after a timeout", move || {
        let conn = conn;
        check(sqlpool_conn_release(conn.0)).map_err(|e| describe(&e))
    });
    assert_eq!(r, Ok(()), "release after a timed-out query");
    assert!(took < Duration::from_secs(1), "release took {took:?}");
    outage.end_outage();
    let took = serves_again(pool.0, Duration::from_secs(5));
    eprintln!("held query: pool served again {took:?} after the outage ended");
    close(pool.0);
}

/// (b) acquire (default `recycling=verified`) while the idle connection's
/// checkout check cannot get an answer returns within the acquire timeout
/// + 1 s — blocking, via `sqlpool_pool_query` and asynchronously.
fn checkout_check_is_bounded(url: &str, outage: &dyn Outage) {
    // No query_timeout and the default connect_timeout (10 s): only the
    // caller's acquire deadline can bound the checkout check.
    let pool = Send(open(&with_opts(
        url,
        "min_size=1&max_size=1&acquire_timeout=1s",
    )));
    let conn = acquire(pool.0);
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    // Long enough that no "just used, skip the check" window applies.
    std::thread::sleep(Duration::from_millis(1200));
    outage.begin_outage();

    // The caller's own timeout, shorter than the pool's.
    let (r, took) = within(Duration::from_secs(40), "acquire(700 ms)", move || {
        let pool = pool;
        try_acquire(pool.0, 700).map(Send).map_err(|e| describe(&e))
    });
    match r {
        Ok(c) => panic!(
            "acquire handed out a connection to a dead server (recycling=verified) after {took:?}: {:?}",
            c.0
        ),
        Err(e) => assert!(
            took < Duration::from_millis(1700),
            "acquire(700 ms) took {took:?} against a dead server ({e})"
        ),
    }
    // The pool's acquire timeout (1 s), through acquire(-1) and pool_query.
    let (r, took) = within(Duration::from_secs(40), "acquire(-1)", move || {
        let pool = pool;
        try_acquire(pool.0, -1).map(Send).map_err(|e| describe(&e))
    });
    assert!(r.is_err(), "acquire(-1) succeeded against a dead server");
    assert!(
        took < Duration::from_secs(2),
        "acquire(-1) with acquire_timeout=1s took {took:?}: {:?}",
        r.err()
    );
    let (r, took) = within(Duration::from_secs(40), "sqlpool_pool_query", move || {
        let pool = pool;
        pool_query(pool.0, "SELECT 1").map_err(|e| describe(&e))
    });
    assert!(r.is_err(), "pool_query succeeded against a dead server");
    assert!(
        took < Duration::from_secs(2),
        "sqlpool_pool_query with acquire_timeout=1s took {took:?}: {:?}",
        r.err()
    );
    // Asynchronously: the completion arrives within the timeout + 1 s.
    let mut queue = ptr::null_mut();
    ok(unsafe { sqlpool_queue_new(&mut queue) });
    let mut id = 0;
    let started = Instant::now();
    ok(unsafe {
        sqlpool_pool_acquire_async(pool.0, 700, queue, None, ptr::null_mut(), &mut id)
    });
    let done = wait_completion(queue, Duration::from_secs(40));
    let took = started.elapsed();
    if done.status == Status::Ok {
        release(done.handle as *mut sqlpool_conn);
        panic!("async acquire handed out a connection to a dead server");
    }
    assert!(
        took < Duration::from_millis(1700),
        "async acquire(700 ms) completed after {took:?} ({:?})",
        done.status
    );

    outage.end_outage();
    let took = serves_again(pool.0, Duration::from_secs(8));
    eprintln!("checkout check: pool served again {took:?} after the outage ended");
    ok(sqlpool_queue_free(queue));
    close(pool.0);
}

/// (c) an eager open with `connect_timeout=1` against a dead server fails
/// within about 2 s (TCP connects; TLS/startup/auth get no answer).
fn eager_open_is_bounded(url: &str, outage: &dyn Outage) {
    outage.begin_outage();
    let uri = with_opts(url, "connect_timeout=1&min_size=1");
    let (r, took) = within(Duration::from_secs(40), "eager open", move || {
        open_with(&uri, &[]).map(Send).map_err(|e| describe(&e))
    });
    outage.end_outage();
    match r {
        Ok(p) => {
            close(p.0);
            panic!("an eager open against a dead server succeeded");
        }
        Err(e) => {
            assert!(
                took < Duration::from_secs(2),
                "open with connect_timeout=1 took {took:?} ({e})"
            );
            assert!(
                e.starts_with("ConnectionError") || e.starts_with("PoolTimeout"),
                "open failed with an unexpected status: {e}"
            );
        }
    }
}

struct Completion {
    status: Status,
    handle: *mut std::ffi::c_void,
    sqlstate: String,
    message: String,
}

fn wait_completion(queue: *mut sqlpool_queue, limit: Duration) -> Completion {
    let deadline = Instant::now() + limit;
    loop {
        let mut c = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
        match unsafe { sqlpool_queue_pop(queue, c.as_mut_ptr()) } {
            Status::Ok => {
                let c = unsafe { c.assume_init() };
                let (sqlstate, message) = if c.status == Status::Ok {
                    (String::new(), String::new())
                } else {
                    (last_sqlstate(), last_message())
                };
                return Completion {
                    status: c.status,
                    handle: c.handle,
                    sqlstate,
                    message,
                };
            }
            Status::Empty => {}
            s => panic!("queue pop: {s:?} {}", last_message()),
        }
        assert!(
            Instant::now() < deadline,
            "no completion within {limit:?} (the operation hangs)"
        );
        let mut fd = -1;
        ok(unsafe { sqlpool_queue_fd(queue, &mut fd) });
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut pfd, 1, 20) };
    }
}

#[test]
fn frozen_server_query_on_held_connection_times_out_and_releases() {
    let pg = private_or_skip!("frozen_server_query_on_held_connection_times_out_and_releases");
    held_query_is_bounded(&pg.url(), &FreezeOutage(&pg, Mutex::new(None)));
}

#[test]
fn frozen_server_checkout_check_respects_acquire_deadline() {
    let pg = private_or_skip!("frozen_server_checkout_check_respects_acquire_deadline");
    checkout_check_is_bounded(&pg.url(), &FreezeOutage(&pg, Mutex::new(None)));
}

#[test]
fn frozen_server_eager_open_respects_connect_timeout() {
    let pg = private_or_skip!("frozen_server_eager_open_respects_connect_timeout");
    eager_open_is_bounded(&pg.url(), &FreezeOutage(&pg, Mutex::new(None)));
    // And the server is fine afterwards (the outage really ended).
    let pool = open(&pg.url());
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    close(pool);
}

#[test]
fn stalled_proxy_query_on_held_connection_times_out_and_releases() {
    let pg = shared_or_skip!("stalled_proxy_query_on_held_connection_times_out_and_releases");
    let proxy = Proxy::start(upstream(pg));
    held_query_is_bounded(&proxied_url(pg, &proxy), &proxy);
    assert!(proxy.dropped() > 0, "the proxy never dropped a byte");
}

#[test]
fn stalled_proxy_checkout_check_respects_acquire_deadline() {
    let pg = shared_or_skip!("stalled_proxy_checkout_check_respects_acquire_deadline");
    let proxy = Proxy::start(upstream(pg));
    checkout_check_is_bounded(&proxied_url(pg, &proxy), &proxy);
    assert!(proxy.dropped() > 0, "the proxy never dropped a byte");
}

#[test]
fn stalled_proxy_eager_open_respects_connect_timeout() {
    let pg = shared_or_skip!("stalled_proxy_eager_open_respects_connect_timeout");
    let proxy = Proxy::start(upstream(pg));
    eager_open_is_bounded(&proxied_url(pg, &proxy), &proxy);
    assert!(proxy.accepted() > 0, "the open never reached the proxy");
    assert!(proxy.dropped() > 0, "the proxy never dropped a byte");
    // Forwarding again, the same proxy carries a working pool.
    let pool = open(&proxied_url(pg, &proxy));
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    close(pool);
}

#[test]
fn slow_statement_on_healthy_server_times_out_and_connection_survives() {
    let pg = shared_or_skip!("slow_statement_on_healthy_server_times_out_and_connection_survives");
    let pool = open(&with_opts(
        &pg.url(),
        "min_size=1&max_size=1&query_timeout=300ms",
    ));
    let conn = acquire(pool);
    let pid = scalar(conn, "SELECT pg_backend_pid()");
    for sql in ["SELECT pg_sleep(5)", "SELECT count(*) FROM pg_sleep(5)"] {
        let started = Instant::now();
        let err = query(conn, sql, &[]).expect_err("pg_sleep(5) beat query_timeout=300ms");
        let took = started.elapsed();
        assert_eq!(err.status, Status::QueryTimeout, "{sql}: {}", describe(&err));
        assert_eq!(err.sqlstate, "57014", "{sql}: {}", describe(&err));
        assert!(took < Duration::from_millis(1300), "{sql}: took {took:?}");
        // The same connection (the server ended the statement) works.
        assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
        assert_eq!(scalar(conn, "SELECT pg_backend_pid()"), pid);
    }
    // execute (no rows) is bounded the same way.
    let started = Instant::now();
    let err = exec(conn, "SELECT pg_sleep(5)", &[]).unwrap_err();
    assert_eq!(err.status, Status::QueryTimeout, "{}", describe(&err));
    assert!(started.elapsed() < Duration::from_millis(1300));
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));

    // Inside a transaction: the timeout fails the transaction (the server
    // cancelled a statement in it), COMMIT says so, ROLLBACK recovers.
    let t = table("qt");
    exec(conn, &format!("CREATE TABLE {t} (id int)"), &[]).unwrap();
    begin(conn);
    exec(conn, &format!("INSERT INTO {t} VALUES (1)"), &[]).unwrap();
    let err = exec(conn, "SELECT pg_sleep(5)", &[]).unwrap_err();
    assert_eq!(err.status, Status::QueryTimeout, "{}", describe(&err));
    let err = commit(conn).expect_err("COMMIT after a cancelled statement succeeded");
    assert_eq!(
        (err.status, err.sqlstate.as_str()),
        (Status::TransactionState, "25P02"),
        "{}",
        describe(&err)
    );
    assert_eq!(count(conn, &format!("SELECT count(*) FROM {t}")), 0);
    exec(conn, &format!("DROP TABLE {t}"), &[]).unwrap();
    release(conn);
    close(pool);
}

#[test]
fn per_connection_query_timeout_overrides_the_pool() {
    let pg = shared_or_skip!("per_connection_query_timeout_overrides_the_pool");
    // Pool bound 300 ms; min=max=1 so every borrower gets the same
    // connection and an override must not outlive its release.
    let pool = open(&with_opts(
        &pg.url(),
        "min_size=1&max_size=1&query_timeout=300ms",
    ));
    let conn = acquire(pool);
    set_query_timeout(conn, 0); // no bound
    let started = Instant::now();
    exec(conn, "SELECT pg_sleep(0.8)", &[]).expect("query_timeout 0 = no bound");
    assert!(started.elapsed() >= Duration::from_millis(750));
    set_query_timeout(conn, 2000); // longer than the pool's
    exec(conn, "SELECT pg_sleep(0.8)", &[]).expect("a 2 s bound lets 0.8 s pass");
    set_query_timeout(conn, 100); // shorter than the pool's
    let started = Instant::now();
    let err = exec(conn, "SELECT pg_sleep(0.25)", &[]).unwrap_err();
    assert_eq!(err.status, Status::QueryTimeout, "{}", describe(&err));
    assert!(started.elapsed() < Duration::from_millis(900));
    set_query_timeout(conn, -1); // back to the pool's 300 ms
    exec(conn, "SELECT pg_sleep(0.1)", &[]).expect("0.1 s within the pool's 300 ms");
    let err = exec(conn, "SELECT pg_sleep(2)", &[]).unwrap_err();
    assert_eq!(err.status, Status::QueryTimeout, "{}", describe(&err));
    set_query_timeout(conn, 0);
    release(conn);
    // The next borrower of the same connection has the pool's bound again.
    let conn = acquire(pool);
    let started = Instant::now();
    let err = exec(conn, "SELECT pg_sleep(2)", &[])
        .expect_err("the previous borrower's override outlived its release");
    assert_eq!(err.status, Status::QueryTimeout, "{}", describe(&err));
    assert!(started.elapsed() < Duration::from_millis(1300));
    release(conn);
    close(pool);

    // A pool without query_timeout: the per-connection bound alone.
    let pool = open(&with_opts(&pg.url(), "min_size=1&max_size=1"));
    let conn = acquire(pool);
    set_query_timeout(conn, 200);
    let started = Instant::now();
    let err = exec(conn, "SELECT pg_sleep(5)", &[]).unwrap_err();
    assert_eq!(
        (err.status, err.sqlstate.as_str()),
        (Status::QueryTimeout, "57014"),
        "{}",
        describe(&err)
    );
    assert!(started.elapsed() < Duration::from_millis(1200));
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    close(pool);
}

// ---------------------------------------------------------------------------
// 2. Exact outcomes

/// Inside a transaction, each client-side error (nothing reaches the
/// server) leaves the transaction as it was: COMMIT returns OK and every
/// row inserted is there.
fn client_errors_leave_the_transaction_alone(opts: &str) {
    let pg = PgServer::shared().expect("checked by the caller");
    let pool = open(&with_opts(&pg.url(), opts));
    let conn = acquire(pool);
    let t = table("exact");
    exec(
        conn,
        &format!("CREATE TABLE {t} (id int PRIMARY KEY, n int4, s text)"),
        &[],
    )
    .unwrap();
    let insert = format!("INSERT INTO {t} (id, n) VALUES ($1, $2)");
    let insert_named = format!("INSERT INTO {t} (id, n) VALUES (:id, :n)");
    // Warm the statement cache (when on) so a cached statement is used too.
    exec(conn, &insert, &[P::I(-1), P::I(-1)]).unwrap();
    exec(conn, &format!("DELETE FROM {t}"), &[]).unwrap();

    begin(conn);
    exec(conn, &insert, &[P::I(1), P::I(10)]).unwrap();
    let mut next = 2;
    let provocations: Vec<(&str, &str, Vec<P>)> = vec![
        ("wrong parameter count", &insert, vec![P::I(100)]),
        (
            "too many parameters",
            &insert,
            vec![P::I(100), P::I(1), P::I(2)],
        ),
        (
            "a missing :name",
            &insert_named,
            vec![named("id", P::I(101))],
        ),
        (
            "text 'abc' for an int4 column",
            &insert,
            vec![P::I(102), P::T("abc")],
        ),
        (
            "2^40 into an int4 column",
            &insert,
            vec![P::I(103), P::I(1 << 40)],
        ),
        (
            "2^40 into an int4 column, named",
            &insert_named,
            vec![named("id", P::I(104)), named("n", P::I(1 << 40))],
        ),
    ];
    let mut seen = Vec::new();
    for (what, sql, values) in &provocations {
        let err = exec(conn, sql, values).expect_err(what);
        seen.push(format!("{what}: {}", describe(&err)));
        // More inserts after each error, also through the named form.
        exec(conn, &insert, &[P::I(next), P::I(next * 10)]).unwrap_or_else(|e| {
            panic!(
                "an insert after the client-side error ({what}) failed: {}\nerrors so far:\n{}",
                describe(&e),
                seen.join("\n")
            )
        });
        next += 1;
        exec(
            conn,
            &insert_named,
            &[named("id", P::I(next)), named("n", P::I(next * 10))],
        )
        .unwrap();
        next += 1;
        assert_eq!(
            err.status,
            Status::ParameterError,
            "{what}: expected a client-side SQLPOOL_PARAMETER_ERROR, got {}",
            describe(&err)
        );
    }
    let committed = commit(conn);
    let rows = count(conn, &format!("SELECT count(*) FROM {t}"));
    let expected = next - 1; // ids 1..next-1
    assert!(
        committed.is_ok() && rows == expected,
        "after only client-side errors: COMMIT = {:?}, rows in the table = {rows} (expected OK and {expected})\nerrors:\n{}",
        committed.as_ref().map_err(describe),
        seen.join("\n")
    );
    exec(conn, &format!("DROP TABLE {t}"), &[]).unwrap();
    release(conn);
    close(pool);
}

/// A server error inside a transaction: COMMIT returns TRANSACTION_STATE
/// / 25P02 and none of the transaction's rows remain; after ROLLBACK TO
/// SAVEPOINT the transaction is healthy again and COMMIT keeps its rows.
fn server_errors_fail_the_transaction(opts: &str) {
    let pg = PgServer::shared().expect("checked by the caller");
    let pool = open(&with_opts(&pg.url(), opts));
    let conn = acquire(pool);
    let t = table("exact_srv");
    exec(conn, &format!("CREATE TABLE {t} (id int PRIMARY KEY)"), &[]).unwrap();
    let insert = format!("INSERT INTO {t} (id) VALUES ($1)");

    begin(conn);
    exec(conn, &insert, &[P::I(1)]).unwrap();
    exec(conn, &insert, &[P::I(2)]).unwrap();
    let dup = exec(conn, &insert, &[P::I(1)]).unwrap_err();
    assert_eq!(
        (dup.status, dup.sqlstate.as_str()),
        (Status::ConstraintViolation, "23505"),
        "{}",
        describe(&dup)
    );
    let after = exec(conn, &insert, &[P::I(3)]).unwrap_err();
    assert_eq!(after.sqlstate, "25P02", "{}", describe(&after));
    let err = commit(conn).expect_err("COMMIT of a failed transaction returned OK");
    assert_eq!(
        (err.status, err.sqlstate.as_str()),
        (Status::TransactionState, "25P02"),
        "{}",
        describe(&err)
    );
    assert_eq!(count(conn, &format!("SELECT count(*) FROM {t}")), 0);
    // The connection is out of the transaction and fine.
    exec(conn, &insert, &[P::I(50)]).unwrap();
    assert_eq!(count(conn, &format!("SELECT count(*) FROM {t}")), 1);

    // A failed statement recovered with ROLLBACK TO SAVEPOINT: the server
    // says the transaction is fine again, so COMMIT commits.
    begin(conn);
    exec(conn, &insert, &[P::I(10)]).unwrap();
    ok(unsafe { sqlpool_conn_savepoint(conn, cstr("sp").as_ptr()) });
    exec(conn, &insert, &[P::I(10)]).unwrap_err();
    ok(unsafe { sqlpool_conn_rollback_to_savepoint(conn, cstr("sp").as_ptr()) });
    exec(conn, &insert, &[P::I(11)]).unwrap();
    commit(conn).unwrap_or_else(|e| {
        panic!(
            "COMMIT after ROLLBACK TO SAVEPOINT recovered the transaction: {}",
            describe(&e)
        )
    });
    assert_eq!(count(conn, &format!("SELECT count(*) FROM {t}")), 3);

    // A server error in a script (no parameters) fails it the same way.
    begin(conn);
    exec(conn, &insert, &[P::I(20)]).unwrap();
    assert!(script(conn, "SELECT 1/0").is_err());
    let err = commit(conn).expect_err("COMMIT after 1/0 returned OK");
    assert_eq!(
        (err.status, err.sqlstate.as_str()),
        (Status::TransactionState, "25P02"),
        "{}",
        describe(&err)
    );
    assert_eq!(count(conn, &format!("SELECT count(*) FROM {t}")), 3);
    exec(conn, &format!("DROP TABLE {t}"), &[]).unwrap();
    release(conn);
    close(pool);
}

#[test]
fn client_side_errors_in_a_transaction_commit_everything() {
    if PgServer::shared().is_none() {
        return skipped("client_side_errors_in_a_transaction_commit_everything");
    }
    client_errors_leave_the_transaction_alone("max_size=1");
}

#[test]
fn client_side_errors_in_a_transaction_commit_everything_without_cache() {
    if PgServer::shared().is_none() {
        return skipped("client_side_errors_in_a_transaction_commit_everything_without_cache");
    }
    client_errors_leave_the_transaction_alone("max_size=1&statement_cache_size=0");
}

#[test]
fn server_error_in_a_transaction_rolls_it_back() {
    if PgServer::shared().is_none() {
        return skipped("server_error_in_a_transaction_rolls_it_back");
    }
    server_errors_fail_the_transaction("max_size=1");
}

#[test]
fn server_error_in_a_transaction_rolls_it_back_without_cache() {
    if PgServer::shared().is_none() {
        return skipped("server_error_in_a_transaction_rolls_it_back_without_cache");
    }
    server_errors_fail_the_transaction("max_size=1&statement_cache_size=0");
}
