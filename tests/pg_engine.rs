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
        "min_size=1&max_size=3&query_timeout=500ms&acquire_timeout=2s&connect_timeout=1",
    )));
    let conn = Send(acquire(pool.0));
    assert_eq!(scalar(conn.0, "SELECT 1"), V::I(1));
    // A second borrower inside an open transaction (its release must roll
    // back), a third for an asynchronous query.
    let in_tx = Send(acquire(pool.0));
    begin(in_tx.0);
    exec(in_tx.0, "SELECT 1", &[]).unwrap();
    let async_conn = acquire(pool.0);
    assert_eq!(scalar(async_conn, "SELECT 1"), V::I(1));
    outage.begin_outage();
    let (r, took) = within(
        Duration::from_secs(20),
        "query on a dead server",
        move || {
            let conn = conn;
            exec(conn.0, "SELECT 1", &[]).map_err(|e| describe(&e))
        },
    );
    let err = r.expect_err("a query against a dead server succeeded");
    assert!(
        err.starts_with("QueryTimeout"),
        "expected SQLPOOL_QUERY_TIMEOUT, got {err}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "query_timeout=500ms but the call took {took:?}"
    );
    let (r, took) = within(
        Duration::from_secs(20),
        "release after a timeout",
        move || {
            let conn = conn;
            check(sqlpool_conn_release(conn.0)).map_err(|e| describe(&e))
        },
    );
    assert_eq!(r, Ok(()), "release after a timed-out query");
    assert!(took < Duration::from_secs(1), "release took {took:?}");
    // Release inside a transaction: the rollback is bounded (query_timeout).
    let (r, took) = within(
        Duration::from_secs(20),
        "release in a transaction",
        move || {
            let conn = in_tx;
            check(sqlpool_conn_release(conn.0)).map_err(|e| describe(&e))
        },
    );
    assert_eq!(r, Ok(()), "release of a connection in a transaction");
    assert!(
        took < Duration::from_millis(1500),
        "release in a transaction (rollback against a dead server) took {took:?}"
    );
    // Asynchronously: the completion arrives within the deadline + 1 s.
    let mut queue = ptr::null_mut();
    ok(unsafe { sqlpool_queue_new(&mut queue) });
    let started = Instant::now();
    query_async(async_conn, "SELECT 1", queue).expect("start an async query");
    let done = wait_completion(queue, Duration::from_secs(20));
    let took = started.elapsed();
    assert_eq!(
        done.status,
        Status::QueryTimeout,
        "async query on a dead server: [{}] {}",
        done.sqlstate,
        done.message
    );
    assert!(
        took < Duration::from_millis(1500),
        "async query took {took:?}"
    );
    let async_conn = Send(async_conn);
    let (r, _) = within(
        Duration::from_secs(20),
        "release after async timeout",
        move || {
            let conn = async_conn;
            check(sqlpool_conn_release(conn.0)).map_err(|e| describe(&e))
        },
    );
    assert_eq!(r, Ok(()), "release after an asynchronous timeout");
    ok(sqlpool_queue_free(queue));
    outage.end_outage();
    let took = serves_again(pool.0, Duration::from_secs(5));
    eprintln!("held query: pool served again {took:?} after the outage ended");
    close(pool.0);
}

/// (b) acquire (default `recycling=verified`) while the idle connection's
/// checkout check cannot get an answer returns within the acquire timeout
/// plus 1 s — `sqlpool_pool_acquire` with its own timeout and with the pool's,
/// `sqlpool_pool_query`, and `sqlpool_pool_acquire_async`, each on a pool
/// of its own whose one idle connection must be checked, all at once.
fn checkout_check_is_bounded(url: &str, outage: &dyn Outage) {
    // No query_timeout and the default connect_timeout (10 s): only the
    // caller's acquire deadline can bound the checkout check.
    let pools: Vec<Send<sqlpool_pool>> = (0..4)
        .map(|_| {
            let pool = open(&with_opts(url, "min_size=1&max_size=1&acquire_timeout=1s"));
            let conn = acquire(pool);
            assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
            release(conn);
            Send(pool)
        })
        .collect();
    // Long enough that no "just used, skip the check" window applies.
    std::thread::sleep(Duration::from_millis(1200));
    outage.begin_outage();

    type Call = Box<dyn FnOnce(*mut sqlpool_pool) -> Result<(), String> + std::marker::Send>;
    let calls: Vec<(&str, Duration, Call)> = vec![
        (
            "sqlpool_pool_acquire(timeout 700 ms)",
            Duration::from_millis(700),
            Box::new(|pool| {
                try_acquire(pool, 700)
                    .map(|c| {
                        release(c);
                    })
                    .map_err(|e| describe(&e))
            }),
        ),
        (
            "sqlpool_pool_acquire(-1), acquire_timeout=1s",
            Duration::from_secs(1),
            Box::new(|pool| {
                try_acquire(pool, -1)
                    .map(|c| {
                        release(c);
                    })
                    .map_err(|e| describe(&e))
            }),
        ),
        (
            "sqlpool_pool_query, acquire_timeout=1s",
            Duration::from_secs(1),
            Box::new(|pool| {
                pool_query(pool, "SELECT 1")
                    .map(|_| ())
                    .map_err(|e| describe(&e))
            }),
        ),
        (
            "sqlpool_pool_acquire_async(timeout 700 ms)",
            Duration::from_millis(700),
            Box::new(|pool| {
                let mut queue = ptr::null_mut();
                ok(unsafe { sqlpool_queue_new(&mut queue) });
                let mut id = 0;
                ok(unsafe {
                    sqlpool_pool_acquire_async(pool, 700, queue, None, ptr::null_mut(), &mut id)
                });
                let done = wait_completion(queue, Duration::from_secs(60));
                ok(sqlpool_queue_free(queue));
                if done.status == Status::Ok {
                    release(done.handle.cast());
                    Ok(())
                } else {
                    Err(format!(
                        "{:?} [{}] {}",
                        done.status, done.sqlstate, done.message
                    ))
                }
            }),
        ),
    ];
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let n = calls.len();
    for ((what, bound, call), pool) in calls.into_iter().zip(pools.iter().copied()) {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let pool = pool;
            let started = Instant::now();
            let r = call(pool.0);
            let _ = tx.send((what, bound, r, started.elapsed()));
        });
    }
    // Every violation is collected, so one run shows all of them.
    let mut late = Vec::new();
    for _ in 0..n {
        let Ok((what, bound, r, took)) = rx.recv_timeout(Duration::from_secs(60)) else {
            late.push("a call did not return within 60 s (still hanging)".to_string());
            break;
        };
        match r {
            Ok(()) => late.push(format!(
                "{what} handed out a connection to a dead server (recycling=verified) after {took:?}"
            )),
            Err(e) if took >= bound + Duration::from_secs(1) => {
                late.push(format!("{what} took {took:?} (bound {bound:?} + 1 s): {e}"))
            }
            Err(_) => {}
        }
    }
    eprintln!(
        "checkout checks: all returned after {:?}",
        started.elapsed()
    );
    outage.end_outage();
    for pool in &pools {
        let took = serves_again(pool.0, Duration::from_secs(8));
        eprintln!("checkout check: pool served again {took:?} after the outage ended");
    }
    for pool in pools {
        close(pool.0);
    }
    assert!(
        late.is_empty(),
        "calls against a dead server overran their deadline + 1 s:\n{}",
        late.join("\n")
    );
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
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn frozen_server_query_on_held_connection_times_out_and_releases() {
    let pg = private_or_skip!("frozen_server_query_on_held_connection_times_out_and_releases");
    held_query_is_bounded(&pg.url(), &FreezeOutage(&pg, Mutex::new(None)));
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn frozen_server_checkout_check_respects_acquire_deadline() {
    let pg = private_or_skip!("frozen_server_checkout_check_respects_acquire_deadline");
    checkout_check_is_bounded(&pg.url(), &FreezeOutage(&pg, Mutex::new(None)));
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
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
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn stalled_proxy_query_on_held_connection_times_out_and_releases() {
    let pg = shared_or_skip!("stalled_proxy_query_on_held_connection_times_out_and_releases");
    let proxy = Proxy::start(upstream(pg));
    held_query_is_bounded(&proxied_url(pg, &proxy), &proxy);
    assert!(proxy.held() > 0, "the proxy never held a byte back");
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn stalled_proxy_checkout_check_respects_acquire_deadline() {
    let pg = shared_or_skip!("stalled_proxy_checkout_check_respects_acquire_deadline");
    let proxy = Proxy::start(upstream(pg));
    checkout_check_is_bounded(&proxied_url(pg, &proxy), &proxy);
    assert!(proxy.held() > 0, "the proxy never held a byte back");
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn stalled_proxy_eager_open_respects_connect_timeout() {
    let pg = shared_or_skip!("stalled_proxy_eager_open_respects_connect_timeout");
    let proxy = Proxy::start(upstream(pg));
    eager_open_is_bounded(&proxied_url(pg, &proxy), &proxy);
    assert!(proxy.accepted() > 0, "the open never reached the proxy");
    assert!(proxy.held() > 0, "the proxy never held a byte back");
    // Forwarding again, the same proxy carries a working pool.
    let pool = open(&proxied_url(pg, &proxy));
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
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
        assert_eq!(
            err.status,
            Status::QueryTimeout,
            "{sql}: {}",
            describe(&err)
        );
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
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
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
    let mut next = 1i64;
    let mut insert_one = |conn| -> Result<u64, Failure> {
        next += 1;
        exec(conn, &insert, &[P::I(next), P::I(next * 10)])
    };
    // Each error alone in its own transaction (so one run shows every
    // case), then all of them in one transaction.
    let mut bad = Vec::new();
    let mut run = |cases: &[(&str, &str, Vec<P>)], label: &str| {
        let before = count(conn, &format!("SELECT count(*) FROM {t}"));
        begin(conn);
        let mut inserted = 0;
        let mut log = Vec::new();
        insert_one(conn).unwrap();
        inserted += 1;
        for (what, sql, values) in cases {
            let err = exec(conn, sql, values).expect_err(what);
            log.push(format!("{what}: {}", describe(&err)));
            if err.status != Status::ParameterError {
                bad.push(format!(
                    "{label}: {what}: expected a client-side SQLPOOL_PARAMETER_ERROR, got {}",
                    describe(&err)
                ));
            }
            for _ in 0..2 {
                match insert_one(conn) {
                    Ok(_) => inserted += 1,
                    Err(e) => log.push(format!("  insert after it: {}", describe(&e))),
                }
            }
        }
        let committed = commit(conn);
        let rows = count(conn, &format!("SELECT count(*) FROM {t}")) - before;
        if committed.is_err() || rows != inserted {
            bad.push(format!(
                "{label}: COMMIT = {:?}, rows added = {rows} (expected OK and {inserted}); {}",
                committed.as_ref().map_err(describe),
                log.join("; ")
            ));
        }
        // Whatever happened, COMMIT's answer and the table must agree.
        let agree = match &committed {
            Ok(()) => rows == inserted,
            Err(e) => e.status == Status::TransactionState && e.sqlstate == "25P02" && rows == 0,
        };
        if !agree {
            bad.push(format!(
                "{label}: COMMIT's status and the table DISAGREE: {:?} with {rows} of {inserted} rows",
                committed.as_ref().map_err(describe)
            ));
        }
    };
    for case in &provocations {
        run(std::slice::from_ref(case), case.0);
    }
    run(&provocations, "all in one transaction");
    assert!(
        bad.is_empty(),
        "client-side errors inside a transaction ({opts}):\n{}",
        bad.join("\n")
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
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn client_side_errors_in_a_transaction_commit_everything() {
    if PgServer::shared().is_none() {
        return skipped("client_side_errors_in_a_transaction_commit_everything");
    }
    client_errors_leave_the_transaction_alone("max_size=1");
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn client_side_errors_in_a_transaction_commit_everything_without_cache() {
    if PgServer::shared().is_none() {
        return skipped("client_side_errors_in_a_transaction_commit_everything_without_cache");
    }
    client_errors_leave_the_transaction_alone("max_size=1&statement_cache_size=0");
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn server_error_in_a_transaction_rolls_it_back() {
    if PgServer::shared().is_none() {
        return skipped("server_error_in_a_transaction_rolls_it_back");
    }
    server_errors_fail_the_transaction("max_size=1");
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn server_error_in_a_transaction_rolls_it_back_without_cache() {
    if PgServer::shared().is_none() {
        return skipped("server_error_in_a_transaction_rolls_it_back_without_cache");
    }
    server_errors_fail_the_transaction("max_size=1&statement_cache_size=0");
}

// ---------------------------------------------------------------------------
// 3. A cancel belongs to its operation

fn query_async(
    conn: *mut sqlpool_conn,
    sql: &str,
    queue: *mut sqlpool_queue,
) -> Result<u64, Failure> {
    let list = params(&[]);
    let s = cstr(sql);
    let mut id = 0;
    let r = check(unsafe {
        sqlpool_conn_query_async(
            conn,
            s.as_ptr(),
            list,
            queue,
            None,
            ptr::null_mut(),
            &mut id,
        )
    });
    ok(sqlpool_params_free(list));
    r.map(|_| id)
}

/// A small xorshift generator (no extra dependency), seeded per run; the
/// seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("PGE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("random seed: PGE_SEED={seed}");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn is_cancel(f: &Failure) -> bool {
    f.sqlstate == "57014" || matches!(f.status, Status::Cancelled | Status::QueryTimeout)
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn a_cancel_never_reaches_another_statement() {
    let pg = shared_or_skip!("a_cancel_never_reaches_another_statement");
    const ROUNDS: usize = 300;
    let pool = Send(open(&with_opts(
        &pg.url(),
        "min_size=2&max_size=2&acquire_timeout=30s",
    )));
    let stop = Arc::new(AtomicBool::new(false));
    // 57014 (or CANCELLED) seen by anything but the cancelled operation.
    let stray = Arc::new(Mutex::new(Vec::<String>::new()));
    // Any other failure (BUSY right after the completion, lost connections).
    let other = Arc::new(Mutex::new(Vec::<String>::new()));
    let others_ran = Arc::new(AtomicUsize::new(0));
    let mut borrowers = Vec::new();
    for b in 0..2 {
        let (stop, stray, other, ran) = (
            stop.clone(),
            stray.clone(),
            other.clone(),
            others_ran.clone(),
        );
        borrowers.push(std::thread::spawn(move || {
            let pool = pool;
            while !stop.load(Ordering::SeqCst) {
                let conn = match try_acquire(pool.0, 30_000) {
                    Ok(c) => c,
                    Err(e) => {
                        other
                            .lock()
                            .unwrap()
                            .push(format!("borrower {b}: acquire: {}", describe(&e)));
                        continue;
                    }
                };
                for sql in ["SELECT pg_sleep(0.002)", "SELECT 1", "SELECT 2"] {
                    match query(conn, sql, &[]) {
                        Ok(_) => {}
                        Err(e) if is_cancel(&e) => stray
                            .lock()
                            .unwrap()
                            .push(format!("borrower {b}: {sql}: {}", describe(&e))),
                        Err(e) => other
                            .lock()
                            .unwrap()
                            .push(format!("borrower {b}: {sql}: {}", describe(&e))),
                    }
                    ran.fetch_add(1, Ordering::Relaxed);
                }
                release(conn);
            }
        }));
    }

    let mut queue = ptr::null_mut();
    ok(unsafe { sqlpool_queue_new(&mut queue) });
    let mut rng = Rng::new();
    let (mut finished, mut cancelled) = (0, 0);
    for round in 0..ROUNDS {
        let conn = acquire(pool.0);
        let id = query_async(conn, "SELECT pg_sleep(0.01)", queue).unwrap();
        std::thread::sleep(Duration::from_micros(rng.next() % 20_000));
        ok(sqlpool_cancel(id));
        let done = wait_completion(queue, Duration::from_secs(30));
        match done.status {
            Status::Ok => {
                finished += 1;
                ok(sqlpool_result_free(done.handle.cast()));
            }
            Status::Cancelled => cancelled += 1,
            s => other.lock().unwrap().push(format!(
                "round {round}: the cancelled operation ended with {s:?} [{}] {}",
                done.sqlstate, done.message
            )),
        }
        // At once, more statements on the same connection.
        for sql in ["SELECT 1", "SELECT pg_sleep(0.002)", "SELECT 3"] {
            match query(conn, sql, &[]) {
                Ok(_) => {}
                Err(e) if is_cancel(&e) => stray.lock().unwrap().push(format!(
                    "round {round}: same connection: {sql}: {}",
                    describe(&e)
                )),
                Err(e) => other.lock().unwrap().push(format!(
                    "round {round}: same connection: {sql}: {}",
                    describe(&e)
                )),
            }
        }
        release(conn);
    }
    stop.store(true, Ordering::SeqCst);
    for b in borrowers {
        b.join().unwrap();
    }
    ok(sqlpool_queue_free(queue));
    close(pool.0);
    let stray = stray.lock().unwrap();
    let other = other.lock().unwrap();
    eprintln!(
        "{ROUNDS} rounds: {finished} finished, {cancelled} cancelled; other borrowers ran {} statements",
        others_ran.load(Ordering::Relaxed)
    );
    assert!(
        stray.is_empty(),
        "{} stray cancels hit statements they were not meant for (first 10):\n{}",
        stray.len(),
        stray
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        other.is_empty(),
        "{} other failures (first 10):\n{}",
        other.len(),
        other
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The race was really run: some cancels came in time, some too late.
    assert!(
        cancelled > 0 && finished > 0,
        "{finished} finished, {cancelled} cancelled: the cancels did not land around completion"
    );
    assert!(others_ran.load(Ordering::Relaxed) > 0);
}

// ---------------------------------------------------------------------------
// 4. A self-repairing statement cache

/// Creates a function that deallocates every prepared statement of the
/// session from inside the server, behind a name and SQL text that never
/// say DEALLOCATE or DISCARD: the client cannot see it coming.
fn hidden_forget(conn: *mut sqlpool_conn) -> String {
    let f = table("forget");
    script(
        conn,
        &format!(
            "CREATE FUNCTION {f}() RETURNS int LANGUAGE plpgsql AS $f$ \
             BEGIN EXECUTE 'DEALL' || 'OCATE ALL'; RETURN 1; END $f$"
        ),
    )
    .unwrap();
    format!("SELECT {f}()")
}

/// How many server-side prepared statements have exactly this text.
fn prepared_with_text(conn: *mut sqlpool_conn, text: &str) -> i64 {
    match query(
        conn,
        "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
        &[P::T(text)],
    )
    .unwrap()[0][0]
    {
        V::I(n) => n,
        ref v => panic!("{v:?}"),
    }
}

struct CacheFixture {
    pool: *mut sqlpool_pool,
    t: String,
    select: String,
    insert: String,
    forget: String,
    pid: V,
}

fn cache_fixture() -> Option<CacheFixture> {
    let pg = PgServer::shared()?;
    // One connection: every borrower gets the same one (and its cache).
    let pool = open(&with_opts(&pg.url(), "min_size=1&max_size=1"));
    let conn = acquire(pool);
    let t = table("cache");
    exec(
        conn,
        &format!("CREATE TABLE {t} (id int PRIMARY KEY, v text)"),
        &[],
    )
    .unwrap();
    exec(
        conn,
        &format!("INSERT INTO {t} VALUES (1, 'one'), (2, 'two')"),
        &[],
    )
    .unwrap();
    let forget = hidden_forget(conn);
    let pid = scalar(conn, "SELECT pg_backend_pid()");
    release(conn);
    Some(CacheFixture {
        pool,
        select: format!("SELECT v FROM {t} WHERE id = $1"),
        insert: format!("INSERT INTO {t} (id, v) VALUES ($1, $2)"),
        t,
        forget,
        pid,
    })
}

impl CacheFixture {
    fn acquire(&self) -> *mut sqlpool_conn {
        let conn = acquire(self.pool);
        assert_eq!(
            scalar(conn, "SELECT pg_backend_pid()"),
            self.pid,
            "not the same connection"
        );
        conn
    }

    #[track_caller]
    fn lookup(&self, conn: *mut sqlpool_conn, id: i64, when: &str) {
        let want = if id == 1 { "one" } else { "two" };
        match query(conn, &self.select, &[P::I(id)]) {
            Ok(rows) => assert_eq!(rows, vec![vec![V::T(want.into())]], "{when}"),
            Err(e) => panic!("{when}: the cached statement failed: {}", describe(&e)),
        }
    }

    fn done(self) {
        let conn = acquire(self.pool);
        exec(conn, &format!("DROP TABLE {}", self.t), &[]).unwrap();
        release(conn);
        close(self.pool);
    }
}

/// `DEALLOCATE ALL` / `DISCARD ALL` run through execute, then the cached
/// statement again: on the same borrower and on the next one.
fn cache_survives_user_reset(test: &str, reset: &str) {
    let Some(f) = cache_fixture() else {
        return skipped(test);
    };
    let conn = f.acquire();
    f.lookup(conn, 1, "warm-up");
    exec(conn, &f.insert, &[P::I(10), P::T("ten")]).unwrap();
    exec(conn, reset, &[]).unwrap_or_else(|e| panic!("{reset}: {}", describe(&e)));
    f.lookup(conn, 1, &format!("same borrower, after {reset}"));
    f.lookup(
        conn,
        2,
        &format!("same borrower, after {reset}, other value"),
    );
    exec(conn, &f.insert, &[P::I(11), P::T("eleven")])
        .unwrap_or_else(|e| panic!("cached insert after {reset}: {}", describe(&e)));
    release(conn);
    let conn = f.acquire();
    f.lookup(conn, 1, &format!("next borrower, after {reset}"));
    // Reset on one borrower, cached statement first used by the next.
    f.lookup(conn, 2, "warm-up 2");
    exec(conn, reset, &[]).unwrap();
    release(conn);
    let conn = f.acquire();
    f.lookup(
        conn,
        2,
        &format!("next borrower, right after {reset} by the previous one"),
    );
    exec(conn, &f.insert, &[P::I(12), P::T("twelve")]).unwrap();
    // Twice in a row, and through execute_script too.
    script(conn, reset).unwrap();
    f.lookup(conn, 1, &format!("after {reset} as a script"));
    release(conn);
    f.done();
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn cache_survives_deallocate_all() {
    cache_survives_user_reset("cache_survives_deallocate_all", "DEALLOCATE ALL");
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn cache_survives_discard_all() {
    cache_survives_user_reset("cache_survives_discard_all", "DISCARD ALL");
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn cache_repairs_itself_when_the_server_forgets_behind_its_back() {
    let Some(f) = cache_fixture() else {
        return skipped("cache_repairs_itself_when_the_server_forgets_behind_its_back");
    };
    let conn = f.acquire();
    f.lookup(conn, 1, "warm-up");
    exec(conn, &f.insert, &[P::I(20), P::T("x")]).unwrap();
    let select_text = f.select.clone();
    assert!(prepared_with_text(conn, &select_text) >= 1, "not cached");
    query(conn, &f.forget, &[]).unwrap();
    assert_eq!(
        prepared_with_text(conn, &select_text),
        0,
        "the hidden DEALLOCATE did not take"
    );
    f.lookup(conn, 1, "after a DEALLOCATE the client did not see (query)");
    exec(conn, &f.insert, &[P::I(21), P::T("y")])
        .unwrap_or_else(|e| panic!("after a hidden DEALLOCATE (execute): {}", describe(&e)));
    // On the next borrower.
    query(conn, &f.forget, &[]).unwrap();
    release(conn);
    let conn = f.acquire();
    f.lookup(conn, 2, "next borrower after a hidden DEALLOCATE");
    release(conn);
    f.done();
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn cache_error_inside_a_transaction_is_repaired_after_rollback() {
    let Some(f) = cache_fixture() else {
        return skipped("cache_error_inside_a_transaction_is_repaired_after_rollback");
    };
    let conn = f.acquire();
    // DEALLOCATE ALL inside a transaction, through execute.
    begin(conn);
    f.lookup(conn, 1, "in transaction, warm-up");
    exec(conn, "DEALLOCATE ALL", &[]).unwrap();
    let inside = query(conn, &f.select, &[P::I(1)]);
    ok(sqlpool_conn_rollback(conn));
    f.lookup(
        conn,
        1,
        &format!(
            "after ROLLBACK (inside the transaction: {:?})",
            inside.map_err(|e| describe(&e))
        ),
    );
    // A DEALLOCATE the client did not see, inside a transaction: the error
    // may be returned, but after ROLLBACK everything works.
    begin(conn);
    f.lookup(conn, 2, "in transaction, warm-up 2");
    query(conn, &f.forget, &[]).unwrap();
    let inside = query(conn, &f.select, &[P::I(2)]);
    let inside_insert = exec(conn, &f.insert, &[P::I(30), P::T("z")]);
    ok(sqlpool_conn_rollback(conn));
    let when = format!(
        "after ROLLBACK (inside: select {:?}, insert {:?})",
        inside.map_err(|e| describe(&e)),
        inside_insert.map_err(|e| describe(&e))
    );
    f.lookup(conn, 2, &when);
    exec(conn, &f.insert, &[P::I(31), P::T("w")])
        .unwrap_or_else(|e| panic!("insert {when}: {}", describe(&e)));
    release(conn);
    let conn = f.acquire();
    f.lookup(conn, 1, "next borrower");
    release(conn);
    f.done();
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn cache_repairs_batches_after_a_hidden_deallocate() {
    let Some(f) = cache_fixture() else {
        return skipped("cache_repairs_batches_after_a_hidden_deallocate");
    };
    let conn = f.acquire();
    let batch = |base: i64| -> Result<u64, Failure> {
        let sets: Vec<*mut sqlpool_params> = (0..3)
            .map(|i| params(&[P::I(base + i), P::T("b")]))
            .collect();
        let consts: Vec<*const sqlpool_params> = sets.iter().map(|p| p.cast_const()).collect();
        let sql = cstr(&f.insert);
        let mut n = 0u64;
        let r = check(unsafe {
            sqlpool_conn_execute_batch(conn, sql.as_ptr(), consts.as_ptr(), consts.len(), &mut n)
        });
        for s in sets {
            ok(sqlpool_params_free(s));
        }
        r.map(|_| n)
    };
    assert_eq!(batch(100).unwrap(), 3);
    query(conn, &f.forget, &[]).unwrap();
    // The first batch after it may fail (it runs in a transaction)...
    let first = batch(200);
    // ...but the cache must be repaired: the next one works.
    match batch(300) {
        Ok(n) => assert_eq!(n, 3),
        Err(e) => panic!(
            "execute_batch keeps failing after a hidden DEALLOCATE: first {:?}, then {}",
            first.map_err(|e| describe(&e)),
            describe(&e)
        ),
    }
    release(conn);
    f.done();
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn cache_survives_a_changed_result_type() {
    let pg = shared_or_skip!("cache_survives_a_changed_result_type");
    let pool = open(&with_opts(&pg.url(), "min_size=1&max_size=1"));
    let conn = acquire(pool);
    let t = table("alter");
    exec(conn, &format!("CREATE TABLE {t} (a int)"), &[]).unwrap();
    exec(conn, &format!("INSERT INTO {t} VALUES (1)"), &[]).unwrap();
    let select = format!("SELECT * FROM {t}");
    let r = query_raw(conn, &select, &[]).unwrap();
    assert_eq!(column_names(r), vec!["a"]);
    ok(sqlpool_result_free(r));
    // Through the same connection.
    exec(conn, &format!("ALTER TABLE {t} ADD COLUMN b int"), &[]).unwrap();
    let r = query_raw(conn, &select, &[])
        .unwrap_or_else(|e| panic!("SELECT * after ADD COLUMN: {}", describe(&e)));
    assert_eq!(column_names(r), vec!["a", "b"]);
    assert_eq!(rows_of(r), vec![vec![V::I(1), V::Null]]);
    ok(sqlpool_result_free(r));
    // By another session, while this borrower holds the cached statement.
    pg.psql(&format!("ALTER TABLE {t} ADD COLUMN c text DEFAULT 'x'"));
    let r = query_raw(conn, &select, &[]).unwrap_or_else(|e| {
        panic!(
            "SELECT * after another session's ADD COLUMN: {}",
            describe(&e)
        )
    });
    assert_eq!(column_names(r), vec!["a", "b", "c"]);
    assert_eq!(rows_of(r), vec![vec![V::I(1), V::Null, V::T("x".into())]]);
    ok(sqlpool_result_free(r));
    release(conn);
    // A column type change seen first by the next borrower.
    pg.psql(&format!("ALTER TABLE {t} ALTER COLUMN a TYPE text"));
    let conn = acquire(pool);
    let r = query_raw(conn, &select, &[])
        .unwrap_or_else(|e| panic!("SELECT * after ALTER COLUMN TYPE: {}", describe(&e)));
    assert_eq!(
        rows_of(r),
        vec![vec![V::T("1".into()), V::Null, V::T("x".into())]]
    );
    ok(sqlpool_result_free(r));
    exec(conn, &format!("DROP TABLE {t}"), &[]).unwrap();
    release(conn);
    close(pool);
}

// ---------------------------------------------------------------------------
// 5. Typed parameters

/// `SELECT :x AS v` returns each value with its own type, as psycopg does.
fn select_untyped(conn: *mut sqlpool_conn, sql: &str, when: &str) -> Vec<String> {
    let cases: Vec<(P, V)> = vec![
        (P::I(7), V::I(7)),
        (P::I(40_000), V::I(40_000)),
        (P::I(1 << 40), V::I(1 << 40)),
        (P::I(-5), V::I(-5)),
        (P::D(2.5), V::D(2.5)),
        (P::Bool(true), V::Bool(true)),
        (P::T("hello"), V::T("hello".into())),
        (P::T("7"), V::T("7".into())),
        (P::Null, V::Null),
        (P::B(b"\x00\x01bin"), V::B(b"\x00\x01bin".to_vec())),
    ];
    let mut bad = Vec::new();
    // Twice: the second round meets whatever the first one cached.
    for round in 0..2 {
        for (value, want) in &cases {
            match query(conn, sql, &[named("x", value.clone())]) {
                Ok(rows) if rows == vec![vec![want.clone()]] => {}
                Ok(rows) => bad.push(format!(
                    "{when}, round {round}: {sql} with {value:?} returned {rows:?}, expected {want:?}"
                )),
                Err(e) => bad.push(format!(
                    "{when}, round {round}: {sql} with {value:?} failed: {}",
                    describe(&e)
                )),
            }
        }
    }
    bad
}

fn typed_parameters(opts: &str) -> Vec<String> {
    let pg = PgServer::shared().expect("checked by the caller");
    let pool = open(&with_opts(&pg.url(), opts));
    let conn = acquire(pool);
    let mut bad = select_untyped(conn, "SELECT :x AS v", opts);
    let mut insert_errors = Vec::new();
    // Where the server infers a type, it is used.
    let t = table("typed");
    exec(
        conn,
        &format!(
            "CREATE TABLE {t} (id int4, small int2, big int8, name text, amount numeric, d float4)"
        ),
        &[],
    )
    .unwrap();
    let mut expect = |sql: &str, values: &[P], want: Vec<Vec<V>>| match query(conn, sql, values) {
        Ok(rows) if rows == want => {}
        Ok(rows) => bad.push(format!(
            "{opts}: {sql} with {values:?} returned {rows:?}, expected {want:?}"
        )),
        Err(e) => bad.push(format!(
            "{opts}: {sql} with {values:?} failed: {}",
            describe(&e)
        )),
    };
    expect(
        "SELECT substr('abcdef', :n)",
        &[named("n", P::I(3))],
        vec![vec![V::T("cdef".into())]],
    );
    expect(
        "SELECT substr('abcdef', :n, :len)",
        &[named("n", P::I(2)), named("len", P::I(2))],
        vec![vec![V::T("bc".into())]],
    );
    expect(
        "SELECT x FROM generate_series(1, 10) x ORDER BY x LIMIT :n",
        &[named("n", P::I(2))],
        vec![vec![V::I(1)], vec![V::I(2)]],
    );
    expect(
        "SELECT :a::int8 + 1",
        &[named("a", P::I(41))],
        vec![vec![V::I(42)]],
    );
    expect(
        "SELECT :a + 1",
        &[named("a", P::I(41))],
        vec![vec![V::I(42)]],
    );
    expect(
        "SELECT :s || 'x'",
        &[named("s", P::T("ab"))],
        vec![vec![V::T("abx".into())]],
    );
    let insert = format!(
        "INSERT INTO {t} (id, small, big, name, amount, d) VALUES (:id, :small, :big, :name, :amount, :d)"
    );
    let row = |id: i64| {
        vec![
            named("id", P::I(id)),
            named("small", P::I(12)),
            named("big", P::I(1 << 40)),
            named("name", P::T("alice")),
            named("amount", P::D(1.5)),
            named("d", P::D(0.25)),
        ]
    };
    for id in [1, 100_000] {
        if let Err(e) = exec(conn, &insert, &row(id)) {
            insert_errors.push(format!("{opts}: {insert} (id {id}): {}", describe(&e)));
        }
    }
    expect(
        &format!("SELECT id FROM {t} WHERE name = :x ORDER BY id"),
        &[named("x", P::T("alice"))],
        vec![vec![V::I(1)], vec![V::I(100_000)]],
    );
    expect(
        &format!("SELECT count(*) FROM {t} WHERE big = :x"),
        &[named("x", P::I(1 << 40))],
        vec![vec![V::I(2)]],
    );
    expect(
        &format!("SELECT count(*) FROM {t} WHERE id = :x"),
        &[named("x", P::I(100_000))],
        vec![vec![V::I(1)]],
    );
    expect(
        &format!("SELECT count(*) FROM {t} WHERE small = :x"),
        &[named("x", P::I(12))],
        vec![vec![V::I(1 + 1)]],
    );
    expect(
        &format!("SELECT amount::text FROM {t} WHERE id = $1"),
        &[P::I(1)],
        vec![vec![V::T("1.5".into())]],
    );
    exec(conn, &format!("DROP TABLE {t}"), &[]).unwrap();
    release(conn);
    close(pool);
    bad.extend(insert_errors);
    bad
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn untyped_parameters_keep_their_type() {
    if PgServer::shared().is_none() {
        return skipped("untyped_parameters_keep_their_type");
    }
    let bad = typed_parameters("max_size=1");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn untyped_parameters_keep_their_type_without_cache() {
    if PgServer::shared().is_none() {
        return skipped("untyped_parameters_keep_their_type_without_cache");
    }
    let bad = typed_parameters("max_size=1&statement_cache_size=0");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The same inside a transaction, on SQL the connection has not seen yet:
/// the type of a result must not depend on whether a transaction is open.
#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn untyped_parameters_keep_their_type_inside_a_transaction() {
    let pg = shared_or_skip!("untyped_parameters_keep_their_type_inside_a_transaction");
    let mut bad = Vec::new();
    for opts in ["max_size=1", "max_size=1&statement_cache_size=0"] {
        let pool = open(&with_opts(&pg.url(), opts));
        let conn = acquire(pool);
        begin(conn);
        let sql = format!("SELECT :x AS v_{}", SEQ.fetch_add(1, Ordering::Relaxed));
        bad.extend(select_untyped(
            conn,
            &sql,
            &format!("{opts}, in a transaction"),
        ));
        // Nothing above may have failed the transaction.
        if let Err(e) = commit(conn) {
            bad.push(format!("{opts}: COMMIT: {}", describe(&e)));
        }
        release(conn);
        close(pool);
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
