//! Issue 9: the asynchronous completion API (queue and callback forms), on
//! SQLite and PostgreSQL, through the exported C functions only.

mod common;

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

/// Most tests run side by side; the thread-count test runs alone.
static SERIAL: RwLock<()> = RwLock::new(());

fn shared_lock() -> std::sync::RwLockReadGuard<'static, ()> {
    SERIAL.read().unwrap_or_else(|p| p.into_inner())
}

const WAIT: Duration = Duration::from_secs(30);

/// One completion as a test sees it, with the thread's last error read
/// right after it arrived.
#[derive(Clone, Debug)]
struct Done {
    op_id: u64,
    status: Status,
    kind: u32,
    handle: usize,
    rows: u64,
    message: String,
    sqlstate: String,
}

impl Done {
    fn from_c(c: &sqlpool_completion) -> Done {
        let failed = c.status != Status::Ok;
        Done {
            op_id: c.op_id,
            status: c.status,
            kind: c.kind,
            handle: c.handle as usize,
            rows: c.rows_affected,
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
        }
    }

    #[track_caller]
    fn ok(&self) -> &Done {
        assert_eq!(
            self.status,
            Status::Ok,
            "op {} failed: {}",
            self.op_id,
            self.message
        );
        self
    }

    fn conn(&self) -> *mut sqlpool_conn {
        assert_eq!(self.kind, SQLPOOL_OP_ACQUIRE);
        self.ok();
        self.handle as *mut sqlpool_conn
    }

    fn result(&self) -> *mut sqlpool_result {
        assert_eq!(self.kind, SQLPOOL_OP_QUERY);
        self.ok();
        self.handle as *mut sqlpool_result
    }
}

/// Callback form: completions collected here.
struct Collector {
    items: Mutex<Vec<Done>>,
    cond: Condvar,
}

unsafe extern "C" fn collect(user_data: *mut c_void, c: *const sqlpool_completion) {
    let collector = unsafe { &*(user_data as *const Collector) };
    let done = Done::from_c(unsafe { &*c });
    collector.items.lock().unwrap().push(done);
    collector.cond.notify_all();
}

/// Where a test's completions go.
enum Mode {
    Queue(*mut sqlpool_queue),
    Callback(&'static Collector),
}

impl Mode {
    fn queue() -> Mode {
        let mut q = ptr::null_mut();
        ok(unsafe { sqlpool_queue_new(&mut q) });
        Mode::Queue(q)
    }

    fn callback() -> Mode {
        Mode::Callback(Box::leak(Box::new(Collector {
            items: Mutex::new(Vec::new()),
            cond: Condvar::new(),
        })))
    }

    fn both() -> [Mode; 2] {
        [Mode::queue(), Mode::callback()]
    }

    fn name(&self) -> &'static str {
        match self {
            Mode::Queue(_) => "queue",
            Mode::Callback(_) => "callback",
        }
    }

    /// (queue, callback, user_data) for a starting function.
    fn target(&self) -> (*mut sqlpool_queue, sqlpool_completion_callback, *mut c_void) {
        match self {
            Mode::Queue(q) => (*q, None, ptr::null_mut()),
            Mode::Callback(c) => (
                ptr::null_mut(),
                Some(collect),
                *c as *const Collector as *mut c_void,
            ),
        }
    }

    /// Waits for `n` completions.
    fn wait(&self, n: usize) -> Vec<Done> {
        let deadline = Instant::now() + WAIT;
        match self {
            Mode::Queue(q) => {
                let mut fd = -1;
                ok(unsafe { sqlpool_queue_fd(*q, &mut fd) });
                let mut got = Vec::new();
                while got.len() < n {
                    let left = deadline.saturating_duration_since(Instant::now());
                    assert!(
                        !left.is_zero(),
                        "timed out with {} of {n} completions",
                        got.len()
                    );
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
                    got.extend(pop_all(*q));
                }
                got
            }
            Mode::Callback(c) => {
                let mut items = c.items.lock().unwrap();
                while items.len() < n {
                    let left = deadline.saturating_duration_since(Instant::now());
                    assert!(
                        !left.is_zero(),
                        "timed out with {} of {n} completions",
                        items.len()
                    );
                    items = c.cond.wait_timeout(items, left).unwrap().0;
                }
                items.drain(..n).collect()
            }
        }
    }

    fn wait_one(&self) -> Done {
        self.wait(1).pop().unwrap()
    }

    fn free(self) {
        if let Mode::Queue(q) = self {
            ok(sqlpool_queue_free(q));
        }
    }
}

fn pop_all(q: *mut sqlpool_queue) -> Vec<Done> {
    let mut got = Vec::new();
    loop {
        let mut c = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
        match unsafe { sqlpool_queue_pop(q, c.as_mut_ptr()) } {
            Status::Ok => got.push(Done::from_c(unsafe { &c.assume_init() })),
            Status::Empty => return got,
            s => panic!("pop: {s:?} {}", last_message()),
        }
    }
}

fn acquire_async(pool: *mut sqlpool_pool, timeout_ms: i64, mode: &Mode) -> u64 {
    let (q, cb, ud) = mode.target();
    let mut id = 0;
    ok(unsafe { sqlpool_pool_acquire_async(pool, timeout_ms, q, cb, ud, &mut id) });
    assert_ne!(id, 0);
    id
}

fn execute_async(
    conn: *mut sqlpool_conn,
    sql: &str,
    values: &[P],
    mode: &Mode,
) -> Result<u64, Failure> {
    let (q, cb, ud) = mode.target();
    let list = params(values);
    let s = cstr(sql);
    let mut id = 0;
    let r =
        check(unsafe { sqlpool_conn_execute_async(conn, s.as_ptr(), list, q, cb, ud, &mut id) });
    ok(sqlpool_params_free(list));
    r.map(|_| id)
}

fn query_async(
    conn: *mut sqlpool_conn,
    sql: &str,
    values: &[P],
    mode: &Mode,
) -> Result<u64, Failure> {
    let (q, cb, ud) = mode.target();
    let list = params(values);
    let s = cstr(sql);
    let mut id = 0;
    let r = check(unsafe { sqlpool_conn_query_async(conn, s.as_ptr(), list, q, cb, ud, &mut id) });
    ok(sqlpool_params_free(list));
    r.map(|_| id)
}

fn batch_async(
    conn: *mut sqlpool_conn,
    sql: &str,
    sets: &[&[P]],
    mode: &Mode,
) -> Result<u64, Failure> {
    let (q, cb, ud) = mode.target();
    let lists: Vec<*mut sqlpool_params> = sets.iter().map(|s| params(s)).collect();
    let consts: Vec<*const sqlpool_params> = lists.iter().map(|p| p.cast_const()).collect();
    let s = cstr(sql);
    let mut id = 0;
    let r = check(unsafe {
        sqlpool_conn_execute_batch_async(
            conn,
            s.as_ptr(),
            consts.as_ptr(),
            consts.len(),
            q,
            cb,
            ud,
            &mut id,
        )
    });
    for l in lists {
        ok(sqlpool_params_free(l));
    }
    r.map(|_| id)
}

/// Waits until the pool is back at rest: nothing borrowed, nobody waiting.
#[track_caller]
fn assert_all_idle(pool: *mut sqlpool_pool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(pool);
        if s.in_use == 0 && s.waiting == 0 && s.idle == s.total {
            return;
        }
        assert!(Instant::now() < deadline, "pool not at rest: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

static TABLE_SEQ: AtomicUsize = AtomicUsize::new(0);

fn table_name() -> String {
    format!(
        "async_t_{}_{}",
        std::process::id(),
        TABLE_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------
// Every operation, both forms, both databases

fn all_operations(uri: &str) {
    let pool = open(uri);
    for mode in Mode::both() {
        let table = table_name();
        let id = acquire_async(pool, 10_000, &mode);
        let done = mode.wait_one();
        assert_eq!(done.op_id, id);
        let conn = done.conn();

        let create = format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
        let id = execute_async(conn, &create, &[], &mode).unwrap();
        let done = mode.wait_one();
        assert_eq!((done.op_id, done.kind), (id, SQLPOOL_OP_EXECUTE));
        done.ok();

        let insert = format!("INSERT INTO {table} (id, name) VALUES ($1, $2)");
        execute_async(conn, &insert, &[P::I(1), P::T("one")], &mode).unwrap();
        let done = mode.wait_one();
        assert_eq!((done.ok().rows, done.handle), (1, 0));

        let sets: [&[P]; 3] = [
            &[P::I(2), P::T("two")],
            &[P::I(3), P::T("three")],
            &[P::I(4), P::T("four")],
        ];
        let id = batch_async(conn, &insert, &sets, &mode).unwrap();
        let done = mode.wait_one();
        assert_eq!(
            (done.op_id, done.kind, done.ok().rows),
            (id, SQLPOOL_OP_BATCH, 3)
        );

        let select = format!("SELECT count(*), max(name) FROM {table} WHERE id >= $1");
        let id = query_async(conn, &select, &[P::I(2)], &mode).unwrap();
        let done = mode.wait_one();
        assert_eq!(done.op_id, id);
        let result = done.result();
        assert_eq!(
            rows_of(result),
            vec![vec![V::I(3), V::T("two".into())]],
            "{}",
            mode.name()
        );
        ok(sqlpool_result_free(result));

        // Errors arrive as the completion's status, with the last error set.
        query_async(conn, "SELEC 1", &[], &mode).unwrap();
        let done = mode.wait_one();
        assert_eq!(done.status, Status::DatabaseError, "{}", mode.name());
        assert_eq!(done.handle, 0);
        assert_eq!(done.sqlstate, "42601", "{}", done.message);
        assert!(done.message.contains("syntax"), "{}", done.message);

        execute_async(conn, &insert, &[P::I(1), P::T("dup")], &mode).unwrap();
        let done = mode.wait_one();
        assert_eq!(done.status, Status::ConstraintViolation, "{}", done.message);
        assert_eq!(done.sqlstate, "23505");

        // A failing batch leaves nothing behind.
        let bad: [&[P]; 2] = [&[P::I(10), P::T("ten")], &[P::I(10), P::T("again")]];
        batch_async(conn, &insert, &bad, &mode).unwrap();
        let done = mode.wait_one();
        assert_eq!(done.status, Status::ConstraintViolation, "{}", done.message);
        assert_eq!(
            query(conn, &format!("SELECT count(*) FROM {table}"), &[]).unwrap(),
            vec![vec![V::I(4)]]
        );

        // Parameter errors too.
        execute_async(conn, &insert, &[P::I(5)], &mode).unwrap();
        let done = mode.wait_one();
        assert_eq!(done.status, Status::ParameterError, "{}", done.message);

        exec(conn, &format!("DROP TABLE {table}"), &[]).unwrap();
        release(conn);
        mode.free();
    }
    assert_all_idle(pool);
    close(pool);
}

#[test]
fn sqlite_operations_queue_and_callback() {
    let _g = shared_lock();
    let (_dir, uri) = sqlite_file();
    all_operations(&uri);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_operations_queue_and_callback() {
    let _g = shared_lock();
    let Some(pg) = PgServer::shared() else { return };
    all_operations(&pg.url());
}

// ---------------------------------------------------------------------------
// Acquire: timeout, closed pool, cancellation

fn acquire_failures(uri: &str) {
    let pool = open_with(uri, &[("max_size", "1"), ("min_size", "1")]).unwrap();
    for mode in Mode::both() {
        let held = acquire(pool);

        // Timeout, with the last error set.
        let started = Instant::now();
        acquire_async(pool, 100, &mode);
        let done = mode.wait_one();
        assert_eq!(done.status, Status::PoolTimeout, "{}", mode.name());
        assert!(done.message.contains("within 100 ms"), "{}", done.message);
        assert!(started.elapsed() < Duration::from_secs(5));

        // A waiting acquire, cancelled: it stops waiting, nothing leaks.
        let id = acquire_async(pool, 60_000, &mode);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(stats(pool).waiting, 1);
        ok(sqlpool_cancel(id));
        let done = mode.wait_one();
        assert_eq!(
            (done.op_id, done.status),
            (id, Status::Cancelled),
            "{}",
            done.message
        );
        assert_eq!(done.handle, 0);
        assert_eq!(stats(pool).waiting, 0);
        // Cancelling a finished operation is fine.
        ok(sqlpool_cancel(id));

        // A waiter is served when the connection comes back.
        acquire_async(pool, 60_000, &mode);
        std::thread::sleep(Duration::from_millis(20));
        release(held);
        let conn = mode.wait_one().conn();
        release(conn);
        assert_all_idle(pool);
        mode.free();
    }

    // Many waiters cancelled at once, while connections come and go.
    let mode = Mode::queue();
    let ids: Vec<u64> = (0..300)
        .map(|_| acquire_async(pool, 60_000, &mode))
        .collect();
    let churn = {
        let pool = common::capi::Send(pool);
        std::thread::spawn(move || {
            let pool = pool;
            for _ in 0..200 {
                if let Ok(c) = try_acquire(pool.0, 5) {
                    release(c);
                }
            }
        })
    };
    for id in &ids {
        ok(sqlpool_cancel(*id));
    }
    let mut handed = 0;
    let mut got = 0;
    while got < ids.len() {
        for done in mode.wait(1) {
            got += 1;
            match done.status {
                Status::Ok => {
                    handed += 1;
                    release(done.conn());
                }
                Status::Cancelled => {}
                s => panic!("unexpected {s:?}: {}", done.message),
            }
        }
    }
    churn.join().unwrap();
    eprintln!(
        "cancelled {} of {} waiting acquires",
        ids.len() - handed,
        ids.len()
    );
    assert_all_idle(pool);
    mode.free();

    // A closed pool fails its waiters.
    let mode = Mode::callback();
    let held = acquire(pool);
    acquire_async(pool, 60_000, &mode);
    std::thread::sleep(Duration::from_millis(20));
    close(pool);
    let done = mode.wait_one();
    assert_eq!(done.status, Status::PoolClosed, "{}", done.message);
    release(held);
}

#[test]
fn sqlite_acquire_timeout_cancel_close() {
    let _g = shared_lock();
    acquire_failures("sqlite::memory:");
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_acquire_timeout_cancel_close() {
    let _g = shared_lock();
    let Some(pg) = PgServer::shared() else { return };
    acquire_failures(&pg.url());
}

// ---------------------------------------------------------------------------
// Cancelling running statements; busy connections

fn cancel_running(uri: &str, slow_sql: &str) {
    let pool = open(uri);
    for mode in Mode::both() {
        let conn = acquire(pool);
        let id = query_async(conn, slow_sql, &[], &mode).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        if let Mode::Queue(q) = mode {
            let early = pop_all(q);
            assert!(early.is_empty(), "{early:?}");
        }

        // Busy meanwhile: a second async op fails at once, blocking calls too.
        let second = query_async(conn, "SELECT 1", &[], &mode).unwrap_err();
        assert_eq!(second.status, Status::Busy, "{}", second.message);
        let blocking = query_raw(conn, "SELECT 1", &[]).unwrap_err();
        assert_eq!(blocking.status, Status::Busy, "{}", blocking.message);
        assert_eq!(
            check(sqlpool_conn_release(conn)).unwrap_err().status,
            Status::Busy
        );

        let started = Instant::now();
        ok(sqlpool_cancel(id));
        let done = mode.wait_one();
        let took = started.elapsed();
        assert_eq!(
            (done.op_id, done.status),
            (id, Status::Cancelled),
            "{}",
            done.message
        );
        assert_eq!(done.sqlstate, "57014");
        assert_eq!(done.handle, 0);
        assert!(took < Duration::from_secs(3), "cancel took {took:?}");
        eprintln!("{}: cancelled a running statement in {took:?}", mode.name());

        // The connection is fine afterwards.
        assert_eq!(scalar(conn, "SELECT 41 + 1"), V::I(42));
        query_async(conn, "SELECT 7", &[], &mode).unwrap();
        let result = mode.wait_one().result();
        assert_eq!(rows_of(result), vec![vec![V::I(7)]]);
        ok(sqlpool_result_free(result));
        release(conn);
        mode.free();
    }
    assert_all_idle(pool);
    close(pool);
}

#[test]
fn sqlite_cancel_running_query() {
    let _g = shared_lock();
    cancel_running(
        "sqlite::memory:",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) \
         SELECT count(*) FROM c",
    );
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_cancel_running_query() {
    let _g = shared_lock();
    let Some(pg) = PgServer::shared() else { return };
    cancel_running(&pg.url(), "SELECT pg_sleep(10)");
}

/// A cancel that comes too late leaves the outcome alone.
#[test]
fn late_cancel_keeps_the_result() {
    let _g = shared_lock();
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    let mode = Mode::queue();
    let id = query_async(conn, "SELECT 5", &[], &mode).unwrap();
    let done = mode.wait_one();
    ok(sqlpool_cancel(id));
    let result = done.result();
    assert_eq!(rows_of(result), vec![vec![V::I(5)]]);
    ok(sqlpool_result_free(result));
    release(conn);
    mode.free();
    close(pool);
}

// ---------------------------------------------------------------------------
// Freeing a queue with work pending

#[test]
fn queue_free_with_pending_operations_leaks_nothing() {
    let _g = shared_lock();
    let (_dir, uri) = sqlite_file();
    let pool = open_with(&uri, &[("max_size", "3"), ("min_size", "3")]).unwrap();
    let mode = Mode::queue();
    // Two acquires complete into the queue and are never popped.
    acquire_async(pool, 10_000, &mode);
    acquire_async(pool, 10_000, &mode);
    // The third connection runs a slow query whose completion targets the queue.
    let conn = acquire(pool);
    query_async(
        conn,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
         SELECT count(*) FROM c",
        &[],
        &mode,
    )
    .unwrap();
    // And 50 acquires wait.
    for _ in 0..50 {
        acquire_async(pool, 60_000, &mode);
    }
    let deadline = Instant::now() + WAIT;
    while stats(pool).waiting < 50 || stats(pool).in_use < 3 {
        assert!(Instant::now() < deadline, "{:?}", stats(pool));
        std::thread::sleep(Duration::from_millis(5));
    }
    let Mode::Queue(q) = mode else { unreachable!() };
    ok(sqlpool_queue_free(q));
    // Stale afterwards.
    let mut fd = 0;
    assert_eq!(unsafe { sqlpool_queue_fd(q, &mut fd) }, Status::Misuse);
    assert_eq!(sqlpool_queue_free(q), Status::Misuse);
    // The query's connection is ours; once the query ends, release it.
    let deadline = Instant::now() + WAIT;
    loop {
        match check(sqlpool_conn_release(conn)) {
            Ok(()) => break,
            Err(f) if f.status == Status::Busy => {
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(f) => panic!("{f:?}"),
        }
    }
    assert_all_idle(pool);
    assert_eq!(stats(pool).total, 3);
    close(pool);
}

// ---------------------------------------------------------------------------
// Arguments and misuse

#[test]
fn bad_arguments_start_nothing() {
    let _g = shared_lock();
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    let mode = Mode::queue();
    let Mode::Queue(q) = mode else { unreachable!() };
    let sql = cstr("SELECT 1");
    let mut id = 0u64;
    let cb: sqlpool_completion_callback = Some(collect);
    unsafe {
        // Exactly one of queue and callback.
        assert_eq!(
            sqlpool_pool_acquire_async(pool, 0, ptr::null_mut(), None, ptr::null_mut(), &mut id),
            Status::InvalidArgument
        );
        assert_eq!(
            sqlpool_pool_acquire_async(pool, 0, q, cb, ptr::null_mut(), &mut id),
            Status::InvalidArgument
        );
        assert_eq!(
            sqlpool_conn_query_async(
                conn,
                sql.as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                &mut id
            ),
            Status::InvalidArgument
        );
        assert_eq!(
            sqlpool_pool_acquire_async(ptr::null_mut(), 0, q, None, ptr::null_mut(), &mut id),
            Status::InvalidArgument
        );
        assert_eq!(
            sqlpool_conn_execute_async(
                conn,
                ptr::null(),
                ptr::null(),
                q,
                None,
                ptr::null_mut(),
                &mut id
            ),
            Status::InvalidArgument
        );
        let bad_utf8 = b"SELECT '\xff'\0";
        assert_eq!(
            sqlpool_conn_execute_async(
                conn,
                bad_utf8.as_ptr().cast(),
                ptr::null(),
                q,
                None,
                ptr::null_mut(),
                &mut id
            ),
            Status::InvalidUtf8
        );
        assert_eq!(
            sqlpool_conn_execute_batch_async(
                conn,
                sql.as_ptr(),
                ptr::null(),
                2,
                q,
                None,
                ptr::null_mut(),
                &mut id
            ),
            Status::InvalidArgument
        );
        let sets = [ptr::null::<sqlpool_params>()];
        assert_eq!(
            sqlpool_conn_execute_batch_async(
                conn,
                sql.as_ptr(),
                sets.as_ptr(),
                1,
                q,
                None,
                ptr::null_mut(),
                &mut id
            ),
            Status::InvalidArgument
        );
        // Wrong handle kinds.
        assert_eq!(
            sqlpool_pool_acquire_async(conn.cast(), 0, q, None, ptr::null_mut(), &mut id),
            Status::Misuse
        );
        assert_eq!(
            sqlpool_conn_query_async(
                conn,
                sql.as_ptr(),
                ptr::null(),
                pool.cast(),
                None,
                ptr::null_mut(),
                &mut id
            ),
            Status::Misuse
        );
        // Queue calls.
        let mut out = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
        assert_eq!(
            sqlpool_queue_pop(q, ptr::null_mut()),
            Status::InvalidArgument
        );
        assert_eq!(
            sqlpool_queue_pop(ptr::null_mut(), out.as_mut_ptr()),
            Status::InvalidArgument
        );
        assert_eq!(
            sqlpool_queue_fd(q, ptr::null_mut()),
            Status::InvalidArgument
        );
        assert_eq!(sqlpool_queue_new(ptr::null_mut()), Status::InvalidArgument);
        // Popping an empty queue leaves the last error alone.
        let before = last_message();
        assert_eq!(sqlpool_queue_pop(q, out.as_mut_ptr()), Status::Empty);
        assert_eq!(last_message(), before);
    }
    assert_eq!(id, 0, "no op id written on failure");
    // Nothing was started: nothing arrives.
    std::thread::sleep(Duration::from_millis(50));
    assert!(pop_all(q).is_empty());

    // A released connection.
    release(conn);
    let f = query_async(conn, "SELECT 1", &[], &Mode::Queue(q)).unwrap_err();
    assert_eq!(f.status, Status::Misuse, "{}", f.message);

    // Cancel ids never issued.
    assert_eq!(sqlpool_cancel(0), Status::InvalidArgument);
    assert_eq!(sqlpool_cancel(u64::MAX), Status::InvalidArgument);

    // Threads: validated, and fixed once the runtime runs.
    assert_eq!(sqlpool_set_async_threads(0), Status::InvalidArgument);
    acquire_async(pool, 1000, &Mode::Queue(q));
    release(Mode::Queue(q).wait_one().conn());
    assert_eq!(sqlpool_set_async_threads(2), Status::Misuse);

    ok(sqlpool_queue_free(q));
    ok(sqlpool_queue_free(ptr::null_mut()));
    close(pool);
}

/// Callbacks may start further operations and release what they got.
#[test]
fn callback_can_chain_and_release() {
    let _g = shared_lock();
    static DONE: Mutex<Vec<(u32, Status)>> = Mutex::new(Vec::new());
    static CV: Condvar = Condvar::new();
    // Acquire → (in the callback) query → (in the callback) release.
    unsafe extern "C" fn step(_ud: *mut c_void, c: *const sqlpool_completion) {
        let c = unsafe { &*c };
        DONE.lock().unwrap().push((c.kind, c.status));
        if c.status == Status::Ok && c.kind == SQLPOOL_OP_ACQUIRE {
            let conn = c.handle as *mut sqlpool_conn;
            let sql = cstr("SELECT 1");
            let s = unsafe {
                sqlpool_conn_query_async(
                    conn,
                    sql.as_ptr(),
                    ptr::null(),
                    ptr::null_mut(),
                    Some(step),
                    conn.cast(),
                    ptr::null_mut(),
                )
            };
            assert_eq!(s, Status::Ok);
        } else if c.kind == SQLPOOL_OP_QUERY {
            ok(sqlpool_result_free(c.handle.cast()));
            ok(sqlpool_conn_release(c.user_data.cast()));
        }
        CV.notify_all();
    }
    let pool = open_with("sqlite::memory:", &[("max_size", "2")]).unwrap();
    for _ in 0..50 {
        ok(unsafe {
            sqlpool_pool_acquire_async(
                pool,
                10_000,
                ptr::null_mut(),
                Some(step),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        });
    }
    let deadline = Instant::now() + WAIT;
    let mut done = DONE.lock().unwrap();
    while done.len() < 100 {
        assert!(Instant::now() < deadline, "{} of 100", done.len());
        done = CV.wait_timeout(done, Duration::from_secs(1)).unwrap().0;
    }
    assert!(done.iter().all(|(_, s)| *s == Status::Ok), "{done:?}");
    drop(done);
    assert_all_idle(pool);
    close(pool);
}

// ---------------------------------------------------------------------------
// Waiting costs no thread

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn thread_names() -> String {
    let mut names: std::collections::BTreeMap<String, usize> = Default::default();
    for e in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = std::fs::read_to_string(e.unwrap().path().join("comm")).unwrap_or_default();
        *names.entry(comm.trim().to_owned()).or_default() += 1;
    }
    format!("{names:?}")
}

fn wait_until_waiting(pool: *mut sqlpool_pool, n: usize) {
    let deadline = Instant::now() + WAIT;
    while (stats(pool).waiting as usize) < n {
        assert!(Instant::now() < deadline, "{:?}", stats(pool));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn ten_thousand_waiting_acquires_use_few_threads() {
    let _g = SERIAL.write().unwrap_or_else(|p| p.into_inner());
    const N: usize = 10_000;
    let pool = open_with("sqlite::memory:", &[("max_size", "10"), ("min_size", "10")]).unwrap();
    let held: Vec<_> = (0..10).map(|_| acquire(pool)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let before = thread_count();

    // Queue form.
    let mode = Mode::queue();
    let started = Instant::now();
    for _ in 0..N {
        acquire_async(pool, 120_000, &mode);
    }
    wait_until_waiting(pool, N);
    let started_in = started.elapsed();
    let during = thread_count();
    eprintln!(
        "threads: {before} before, {during} with {N} acquires waiting (queue form, started in \
         {started_in:?}): {}",
        thread_names()
    );
    assert!(during < 64, "{during} threads while {N} acquires wait");
    assert!(during <= before + 4, "{before} -> {during}");

    // Serve them all through the pool's ten connections.
    for c in held {
        release(c);
    }
    let started = Instant::now();
    let mut served = 0;
    let Mode::Queue(q) = mode else { unreachable!() };
    let mut fd = -1;
    ok(unsafe { sqlpool_queue_fd(q, &mut fd) });
    while served < N {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        assert_eq!(
            unsafe { libc::poll(&mut pfd, 1, 10_000) },
            1,
            "served {served}"
        );
        for done in pop_all(q) {
            release(done.conn());
            served += 1;
        }
    }
    eprintln!("served {N} queued acquires in {:?}", started.elapsed());
    assert_all_idle(pool);
    assert_eq!(stats(pool).total, 10);
    ok(sqlpool_queue_free(q));

    // Callback form; then the pool closes under them: 10,000 callbacks.
    let held: Vec<_> = (0..10).map(|_| acquire(pool)).collect();
    let mode = Mode::callback();
    for _ in 0..N {
        acquire_async(pool, 120_000, &mode);
    }
    wait_until_waiting(pool, N);
    let during = thread_count();
    assert!(during <= before + 4, "{before} -> {during}");
    close(pool);
    let done = mode.wait(N);
    assert!(done.iter().all(|d| d.status == Status::PoolClosed));
    let after = thread_count();
    eprintln!(
        "threads: {during} with {N} callback acquires waiting, {after} after their 10,000 \
         callbacks (pool closed): {}",
        thread_names()
    );
    assert!(after < 64, "{after} threads after {N} callbacks");
    for c in held {
        release(c);
    }
}

// ---------------------------------------------------------------------------
// Overhead over the blocking call

#[test]
fn overhead_of_async_select_1() {
    let _g = shared_lock();
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    let sql = cstr("SELECT 1");
    let n = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    let warm = n / 10;

    let blocking = {
        let run = || {
            let mut r = ptr::null_mut();
            ok(unsafe { sqlpool_conn_query(conn, sql.as_ptr(), ptr::null(), &mut r) });
            ok(sqlpool_result_free(r));
        };
        (0..warm).for_each(|_| run());
        let t = Instant::now();
        (0..n).for_each(|_| run());
        t.elapsed() / n as u32
    };

    let mode = Mode::queue();
    let Mode::Queue(q) = mode else { unreachable!() };
    let mut fd = -1;
    ok(unsafe { sqlpool_queue_fd(q, &mut fd) });
    let queued = {
        let run = || {
            ok(unsafe {
                sqlpool_conn_query_async(
                    conn,
                    sql.as_ptr(),
                    ptr::null(),
                    q,
                    None,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            });
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            unsafe { libc::poll(&mut pfd, 1, 10_000) };
            let mut c = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
            ok(unsafe { sqlpool_queue_pop(q, c.as_mut_ptr()) });
            ok(sqlpool_result_free(
                unsafe { c.assume_init() }.handle.cast(),
            ));
        };
        (0..warm).for_each(|_| run());
        let t = Instant::now();
        (0..n).for_each(|_| run());
        t.elapsed() / n as u32
    };

    // The same, popping in a loop instead of sleeping in poll: the library's
    // own cost, without the host thread's wake-up.
    let queued_spin = {
        let run = || {
            ok(unsafe {
                sqlpool_conn_query_async(
                    conn,
                    sql.as_ptr(),
                    ptr::null(),
                    q,
                    None,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            });
            let mut c = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
            while unsafe { sqlpool_queue_pop(q, c.as_mut_ptr()) } == Status::Empty {
                std::thread::yield_now();
            }
            ok(sqlpool_result_free(
                unsafe { c.assume_init() }.handle.cast(),
            ));
        };
        (0..warm).for_each(|_| run());
        let t = Instant::now();
        (0..n).for_each(|_| run());
        t.elapsed() / n as u32
    };

    let collector = Mode::callback();
    let Mode::Callback(col) = collector else {
        unreachable!()
    };
    let ud = col as *const Collector as *mut c_void;
    let called_back = {
        let run = || {
            ok(unsafe {
                sqlpool_conn_query_async(
                    conn,
                    sql.as_ptr(),
                    ptr::null(),
                    ptr::null_mut(),
                    Some(collect),
                    ud,
                    ptr::null_mut(),
                )
            });
            let mut items = col.items.lock().unwrap();
            while items.is_empty() {
                items = col.cond.wait(items).unwrap();
            }
            let done = items.pop().unwrap();
            drop(items);
            ok(sqlpool_result_free(done.result()));
        };
        (0..warm).for_each(|_| run());
        let t = Instant::now();
        (0..n).for_each(|_| run());
        t.elapsed() / n as u32
    };
    eprintln!(
        "SELECT 1 on SQLite memory ({} build, {n} runs): blocking {blocking:?}/query, \
         queue+poll {queued:?}/query (+{:?}), queue+busy pop {queued_spin:?}/query \
         (+{:?}), callback {called_back:?}/query (+{:?})",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        queued.saturating_sub(blocking),
        queued_spin.saturating_sub(blocking),
        called_back.saturating_sub(blocking),
    );
    eprintln!("threads after the overhead test: {}", thread_count());
    ok(sqlpool_queue_free(q));
    release(conn);
    close(pool);
}
