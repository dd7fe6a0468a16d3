//! The asynchronous C API: start an operation, learn of its end through a
//! completion queue (with a pollable file descriptor) or a callback (the
//! work runs on the library's own tokio runtime, `crate::asyncops`); or
//! start it as a task (`sqlpool_task`) that the caller's own event loop
//! polls, waiting on the descriptors each poll reports.

use std::collections::{HashSet, VecDeque};
use std::ffi::{c_char, c_int, c_void};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use once_cell::sync::Lazy;

use super::{
    boundary, handle, insert_result, lock_ok, lock_slot, param_sets_of, params_of, set_last_error,
    sqlpool_conn, sqlpool_params, sqlpool_pool, sqlpool_status, str_arg, with_conn, ConnSlot, Out,
    CONNS, POOLS,
};
use crate::asyncops::{self, Completion, Op, OpKind, Output, Sink};
use crate::error::{Error, Result, Status};
use crate::handles::{HandleKind, HandleTable};
use crate::value::Params;

/// Operation kinds in `sqlpool_completion.kind`.
pub const SQLPOOL_OP_ACQUIRE: u32 = 1;
pub const SQLPOOL_OP_EXECUTE: u32 = 2;
pub const SQLPOOL_OP_QUERY: u32 = 3;
pub const SQLPOOL_OP_BATCH: u32 = 4;

/// A completion queue: finished asynchronous operations wait here until
/// popped, and a file descriptor is readable while any wait, so an event
/// loop (asyncio, libuv, poll/epoll) can watch it.
///
/// Thread-safety: share freely across threads; any thread may pop.
/// Completions arrive in the order operations finish.
///
/// Created by `sqlpool_queue_new`; freed (exactly once) by
/// `sqlpool_queue_free`. Functions: `sqlpool_queue_new`, `sqlpool_queue_fd`,
/// `sqlpool_queue_pop`, `sqlpool_queue_free`, and the `queue` argument of
/// `sqlpool_pool_acquire_async`, `sqlpool_conn_execute_async`,
/// `sqlpool_conn_query_async`, `sqlpool_conn_execute_batch_async`.
pub struct sqlpool_queue {
    _private: [u8; 0],
}

/// The end of an asynchronous operation, from `sqlpool_queue_pop` or passed
/// to a `sqlpool_completion_callback`.
///
/// Ownership: `handle` belongs to the receiver; `error` see below. For `SQLPOOL_OP_ACQUIRE` it
/// is a `sqlpool_conn *` the receiver must give back with
/// `sqlpool_conn_release`; for `SQLPOOL_OP_QUERY` a `sqlpool_result *` the
/// receiver must free with `sqlpool_result_free`; otherwise, and whenever
/// `status` is not `SQLPOOL_OK`, it is NULL.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sqlpool_completion {
    /// The id the starting function wrote to `*op_id`.
    pub op_id: u64,
    /// As passed when the operation started.
    pub user_data: *mut c_void,
    /// `SQLPOOL_OK`, `SQLPOOL_CANCELLED`, or the operation's error; the
    /// detail is the thread's last error (see `sqlpool_queue_pop` and
    /// `sqlpool_completion_callback`).
    pub status: sqlpool_status,
    /// `SQLPOOL_OP_ACQUIRE`, `SQLPOOL_OP_EXECUTE`, `SQLPOOL_OP_QUERY` or
    /// `SQLPOOL_OP_BATCH`.
    pub kind: u32,
    /// ACQUIRE: a `sqlpool_conn *` (release it); QUERY: a
    /// `sqlpool_result *` (free it); otherwise NULL.
    pub handle: *mut c_void,
    /// EXECUTE and BATCH: the rows changed; otherwise 0.
    pub rows_affected: u64,
    /// When `status` is not `SQLPOOL_OK`: this operation's own error
    /// (status, SQLSTATE, message, detail), whichever thread pops it and
    /// whatever it does next; otherwise NULL. From `sqlpool_queue_pop` it
    /// is the caller's, to free with `sqlpool_error_free`; passed to a
    /// callback it is valid during the call and freed by the library.
    pub error: *mut super::sqlpool_error,
}

/// Called once per operation started with a callback: `user_data` as
/// passed when it started, and the completion, valid only during the call
/// (its `handle` is the receiver's: release or free it, now or later).
///
/// Runs on a library thread (never the starting thread, never a
/// runtime worker, never with a library lock held), possibly on several
/// threads at once for different operations, and possibly before the
/// starting function has returned. Inside it, the thread's last error is
/// the operation's error when `status` is not `SQLPOOL_OK`. It may call
/// any sqlpool function, including starting further operations; it should
/// return quickly (it holds one of the library's blocking threads).
pub type sqlpool_completion_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, completion: *const sqlpool_completion)>;

static QUEUES: HandleTable<Queue> = HandleTable::new(HandleKind::Queue);

/// Connections with an asynchronous operation started and not yet
/// completed (their handles): a second one is refused at once.
static CONNS_IN_FLIGHT: Lazy<Mutex<HashSet<usize>>> = Lazy::new(|| Mutex::new(HashSet::new()));

// ---------------------------------------------------------------------------
// The wake-up file descriptor

/// An eventfd (Linux) or a pipe: readable while signalled.
struct Notifier {
    read: c_int,
    write: c_int,
}

impl Notifier {
    #[cfg(target_os = "linux")]
    fn new() -> Result<Notifier> {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(os_error("eventfd"));
        }
        Ok(Notifier {
            read: fd,
            write: fd,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> Result<Notifier> {
        let mut fds = [0 as c_int; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(os_error("pipe"));
        }
        for fd in fds {
            // SAFETY: descriptors we just created.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
            }
        }
        Ok(Notifier {
            read: fds[0],
            write: fds[1],
        })
    }

    /// Makes the descriptor readable. Called with the queue locked.
    fn signal(&self) {
        if self.write < 0 {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes (eventfd) or 1 byte (pipe) from `one`.
        // Failure (a full pipe) leaves it readable anyway.
        unsafe {
            libc::write(
                self.write,
                (&one as *const u64).cast(),
                if self.read == self.write { 8 } else { 1 },
            );
        }
    }

    /// Makes the descriptor unreadable again. Called with the queue locked.
    fn drain(&self) {
        if self.read < 0 {
            return;
        }
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) };
            // eventfd: one read resets it; pipe: read until empty.
            if n <= 0 || self.read == self.write {
                break;
            }
        }
    }

    fn close(&mut self) {
        for fd in [self.read, self.write] {
            if fd >= 0 {
                // SAFETY: our own descriptor, closed once (then set to -1).
                unsafe { libc::close(fd) };
            }
            if self.read == self.write {
                break;
            }
        }
        self.read = -1;
        self.write = -1;
    }
}

fn os_error(what: &str) -> Error {
    Error::new(
        Status::Internal,
        format!(
            "cannot create the queue's {what}: {}",
            std::io::Error::last_os_error()
        ),
    )
}

// ---------------------------------------------------------------------------
// The queue

struct Queued {
    completion: Completion,
    user_data: usize,
}

struct QueueState {
    items: VecDeque<Queued>,
    /// Operations started on this queue that have not completed.
    pending: HashSet<u64>,
    /// The descriptor is readable (exactly while `items` is not empty).
    signalled: bool,
    notifier: Notifier,
    freed: bool,
}

struct Queue {
    state: Mutex<QueueState>,
}

impl Queue {
    fn add_pending(&self, op_id: u64) -> Result<()> {
        let mut st = lock_ok(&self.state);
        if st.freed {
            return Err(Error::misuse("this completion queue was already freed"));
        }
        st.pending.insert(op_id);
        Ok(())
    }

    /// Called on a library thread (a worker, for acquires).
    fn push(&self, completion: Completion, user_data: usize) {
        let mut st = lock_ok(&self.state);
        st.pending.remove(&completion.op_id);
        if st.freed {
            drop(st);
            // Nobody will pop it: give the connection back, free the result.
            asyncops::dispose(completion);
            return;
        }
        st.items.push_back(Queued {
            completion,
            user_data,
        });
        if !st.signalled {
            st.notifier.signal();
            st.signalled = true;
        }
    }

    fn pop(&self) -> Option<Queued> {
        let mut st = lock_ok(&self.state);
        let item = st.items.pop_front();
        if st.items.is_empty() && st.signalled {
            st.notifier.drain();
            st.signalled = false;
        }
        item
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        st.notifier.close();
    }
}

/// Turns a completion into its C form, moving a connection or result into
/// the handle tables; the error (if any) is returned for the last error.
fn to_c(completion: Completion, user_data: usize) -> (sqlpool_completion, Option<Error>) {
    let mut c = sqlpool_completion {
        op_id: completion.op_id,
        user_data: user_data as *mut c_void,
        status: Status::Ok,
        kind: completion.kind as u32,
        handle: std::ptr::null_mut(),
        rows_affected: 0,
        error: std::ptr::null_mut(),
    };
    let registered = completion.outcome.and_then(|output| match output {
        Output::Conn(checkout) => CONNS.insert(ConnSlot::pooled(checkout)).map(|h| (h, 0)),
        Output::Result(result) => insert_result(result).map(|h| (h, 0)),
        Output::Rows(n) => Ok((0, n)),
        Output::Notification(Some(n)) => super::notify::store_notification(n).map(|h| (h, 0)),
        Output::Notification(None) => Ok((0, 0)),
    });
    match registered {
        Ok((h, rows)) => {
            c.handle = h as *mut c_void;
            c.rows_affected = rows;
            (c, None)
        }
        Err(e) => {
            c.status = e.status;
            c.error = super::new_error(&e);
            (c, Some(e))
        }
    }
}

// ---------------------------------------------------------------------------
// Where completions go

enum Target {
    Queue(Arc<Queue>),
    Callback(unsafe extern "C" fn(*mut c_void, *const sqlpool_completion)),
}

fn target_of(queue: *mut sqlpool_queue, callback: sqlpool_completion_callback) -> Result<Target> {
    match (queue.is_null(), callback) {
        (false, None) => Ok(Target::Queue(QUEUES.get(queue as usize)?)),
        (true, Some(cb)) => Ok(Target::Callback(cb)),
        (true, None) => Err(Error::invalid_argument(
            "queue and callback are both NULL (pass exactly one)",
        )),
        (false, Some(_)) => Err(Error::invalid_argument(
            "queue and callback are both set (pass exactly one)",
        )),
    }
}

/// Registers the operation with its target and writes `*op_id`; the
/// returned sink delivers its completion.
fn bind(target: Target, op: &Op, user_data: *mut c_void, op_id: *mut u64) -> Result<Sink> {
    let user_data = user_data as usize;
    let sink = match target {
        Target::Queue(q) => {
            q.add_pending(op.id())?;
            Sink::new(false, move |c| q.push(c, user_data))
        }
        Target::Callback(cb) => Sink::new(true, move |c| {
            let (raw, error) = to_c(c, user_data);
            if let Some(e) = error {
                set_last_error(e);
            }
            // SAFETY: the host promised a callback valid until its
            // operations complete (documented on the starting functions).
            unsafe { cb(user_data as *mut c_void, &raw) };
            // In a callback the error, like the completion, is valid only
            // during the call: the library frees it (a second free by the
            // callback is harmless: SQLPOOL_MISUSE).
            if !raw.error.is_null() {
                let _ = super::sqlpool_error_free(raw.error);
            }
        }),
    };
    if let Some(out) = Out::optional(op_id) {
        out.put(op.id());
    }
    Ok(sink)
}

/// Marks a connection as having an asynchronous operation in flight until
/// dropped.
struct InFlight(usize);

impl InFlight {
    fn claim(conn: usize) -> Result<InFlight> {
        if lock_ok(&CONNS_IN_FLIGHT).insert(conn) {
            Ok(InFlight(conn))
        } else {
            Err(Error::new(
                Status::Busy,
                "the connection already has an asynchronous operation in flight (one at a time)",
            ))
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock_ok(&CONNS_IN_FLIGHT).remove(&self.0);
    }
}

/// What an operation on a borrowed connection does (its inputs copied).
pub(super) enum Work {
    Execute(String, Params),
    /// Waits for a notification, at most this long (`None`: no bound).
    Notify(Option<Duration>),
    Query(String, Params),
    Batch(String, Vec<Params>),
}

impl Work {
    fn kind(&self) -> OpKind {
        match self {
            Work::Execute(..) => OpKind::Execute,
            Work::Query(..) => OpKind::Query,
            Work::Batch(..) => OpKind::Batch,
            Work::Notify(..) => OpKind::Notify,
        }
    }

    async fn run(&self, c: &mut crate::backend::Conn) -> Result<Output> {
        match self {
            Work::Execute(sql, params) => c.execute_async(sql, params).await.map(Output::Rows),
            Work::Query(sql, params) => c.query_async(sql, params).await.map(Output::Result),
            Work::Batch(sql, sets) => {
                let refs: Vec<&Params> = sets.iter().collect();
                c.execute_many_async(sql, &refs).await.map(Output::Rows)
            }
            Work::Notify(wait) => {
                let deadline = wait.map(|w| std::time::Instant::now() + w);
                c.next_notification_async(deadline)
                    .await
                    .map(Output::Notification)
            }
        }
    }
}

/// A connection lent to an asynchronous operation; it goes back into its
/// handle's slot when the operation ends, whatever way it ends.
struct Lent {
    slot: Arc<ConnSlot>,
    conn: Option<crate::backend::LentConn>,
    /// The operation ran to its end. A connection given back before (its
    /// operation abandoned midway, the protocol possibly mid-exchange) is
    /// marked broken, so it is closed at release instead of reused.
    finished: bool,
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(mut lent) = self.conn.take() {
            let conn = lent.conn();
            conn.clear_canceller();
            if !self.finished {
                conn.broken = true;
            }
            lock_ok(&self.slot.held).restore(lent);
        }
    }
}

/// Starts `work` on the connection: a PostgreSQL connection is lent to a
/// task of the runtime (its I/O is asynchronous: no thread is handed the
/// operation); SQLite's synchronous work runs on a blocking thread.
pub(super) fn start_conn_op(
    conn: *mut sqlpool_conn,
    queue: *mut sqlpool_queue,
    callback: sqlpool_completion_callback,
    user_data: *mut c_void,
    op_id: *mut u64,
    work: Work,
) -> Result<()> {
    let target = target_of(queue, callback)?;
    let h = handle(conn, "conn")?;
    // A stale handle, or a call in progress on it, fails now.
    let postgres = with_conn(conn, |c| {
        Ok(c.pooled()?.conn().backend_name() == "postgresql")
    })?;
    let op = Op::new()?;
    let in_flight = InFlight::claim(h)?;
    let kind = work.kind();
    if postgres {
        let slot = CONNS.get(h)?;
        let mut lent_conn = lock_slot(&slot)?.lend()?;
        let canceller = lent_conn.conn().canceller();
        let mut lent = Lent {
            slot,
            conn: Some(lent_conn),
            finished: true,
        };
        // On failure `lent` puts the connection back as it drops.
        let sink = bind(target, &op, user_data, op_id)?;
        asyncops::start_task(op, kind, sink, canceller, async move {
            let _in_flight = in_flight;
            lent.finished = false;
            let conn = lent.conn.as_mut().expect("lent until the end").conn();
            let outcome = work.run(conn).await;
            lent.finished = true;
            drop(lent);
            outcome
        });
        return Ok(());
    }
    let sink = bind(target, &op, user_data, op_id)?;
    asyncops::start_blocking(op, kind, sink, move |scope| {
        let _in_flight = in_flight;
        with_conn(h as *mut sqlpool_conn, |c| {
            let conn = c.conn();
            let canceller = conn.canceller();
            let outcome = scope.cancellable(canceller, || {
                crate::backend::postgres::block(work.run(&mut *conn))
            });
            conn.clear_canceller();
            outcome
        })
    });
    Ok(())
}

// ---------------------------------------------------------------------------
// Queue functions

/// Creates a completion queue. On success `*out` owns it; free it with
/// `sqlpool_queue_free`. One queue may serve any number of operations on
/// any pools. Thread-safe. Errors: `SQLPOOL_INVALID_ARGUMENT` (`out` NULL),
/// `SQLPOOL_INTERNAL` (no file descriptor available).
#[no_mangle]
pub unsafe extern "C" fn sqlpool_queue_new(out: *mut *mut sqlpool_queue) -> sqlpool_status {
    boundary(|| {
        let out = super::out_arg(out, "out")?;
        let queue = Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                pending: HashSet::new(),
                signalled: false,
                notifier: Notifier::new()?,
                freed: false,
            }),
        };
        let h = QUEUES.insert(Arc::new(queue))?;
        out.put(h as *mut sqlpool_queue);
        Ok(())
    })
}

/// The queue's file descriptor: readable exactly while completions wait
/// (level-triggered; with edge-triggered polling, pop until
/// `SQLPOOL_EMPTY` after each wake-up). An eventfd on Linux, the read end
/// of a pipe elsewhere. Only poll it: never read, write or close it (the
/// library closes it in `sqlpool_queue_free`). Thread-safe. Errors:
/// `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE` (freed queue).
#[no_mangle]
pub unsafe extern "C" fn sqlpool_queue_fd(
    queue: *mut sqlpool_queue,
    fd: *mut c_int,
) -> sqlpool_status {
    boundary(|| {
        let fd = super::out_arg(fd, "fd")?;
        let read = QUEUES.with(handle(queue, "queue")?, |q| {
            Ok(lock_ok(&q.state).notifier.read)
        })?;
        fd.put(read);
        Ok(())
    })
}

/// Takes the oldest completion off the queue without waiting.
///
/// Returns `SQLPOOL_OK` with `*out` filled when there was one (whatever the
/// operation's own `out->status`), `SQLPOOL_EMPTY` when there was none
/// (`*out` untouched, the last error unchanged). When `out->status` is not
/// `SQLPOOL_OK`, the calling thread's last error is set to the operation's
/// error, so `sqlpool_last_error_message` etc. describe it right after;
/// `out->error` carries the same error, owned by the caller until
/// `sqlpool_error_free`, so that no later call can lose it.
/// The descriptor of `sqlpool_queue_fd` stops being readable once the queue
/// is empty. `out->handle` is the caller's (see `sqlpool_completion`).
/// Thread-safe. Errors: `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_queue_pop(
    queue: *mut sqlpool_queue,
    out: *mut sqlpool_completion,
) -> sqlpool_status {
    let mut empty = false;
    let status = boundary(|| {
        let out = super::out_arg(out, "out")?;
        let item = QUEUES.with(handle(queue, "queue")?, |q| Ok(q.pop()))?;
        let Some(item) = item else {
            empty = true;
            return Ok(());
        };
        let (raw, error) = to_c(item.completion, item.user_data);
        if let Some(e) = error {
            set_last_error(e);
        }
        out.put(raw);
        Ok(())
    });
    if status == Status::Ok && empty {
        Status::Empty
    } else {
        status
    }
}

/// Frees a queue and closes its descriptor. Completions still in it are
/// discarded: their connections go back to their pools and their results
/// are freed. Operations still pending on it are cancelled and their
/// completions discarded the same way when they end (nothing leaks).
/// NULL is accepted and ignored; freeing twice returns `SQLPOOL_MISUSE`.
/// Remove its descriptor from your poll set (epoll, libuv, asyncio) first.
/// Thread-safe, but no other thread may still be using the queue.
#[no_mangle]
pub extern "C" fn sqlpool_queue_free(queue: *mut sqlpool_queue) -> sqlpool_status {
    boundary(|| {
        if queue.is_null() {
            return Ok(());
        }
        let q = QUEUES.remove(queue as usize)?;
        let (items, pending) = {
            let mut st = lock_ok(&q.state);
            st.freed = true;
            st.notifier.close();
            st.signalled = false;
            (
                std::mem::take(&mut st.items),
                std::mem::take(&mut st.pending),
            )
        };
        // Gives connections back and frees results (this thread may block).
        drop(items);
        for id in pending {
            let _ = asyncops::cancel(id);
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Operations

/// Starts borrowing a connection: like `sqlpool_pool_acquire` (same
/// `timeout_ms`: negative for the pool's acquire timeout, 0 not to wait),
/// but returns at once; the wait costs no thread (it is a task in the
/// library's runtime, in the pool's first-come first-served queue of
/// waiters, ahead of or behind blocking callers).
///
/// Exactly one of `queue` and `callback` is non-NULL: the completion (kind
/// `SQLPOOL_OP_ACQUIRE`) is pushed to `queue` or passed to `callback` with
/// `user_data`. On `SQLPOOL_OK` its `handle` is a `sqlpool_conn *` the
/// receiver must release with `sqlpool_conn_release`; its status may also be
/// `SQLPOOL_POOL_TIMEOUT`, `SQLPOOL_POOL_CLOSED`, `SQLPOOL_POOL_EXHAUSTED`,
/// `SQLPOOL_AUTH_ERROR`, `SQLPOOL_CONNECTION_ERROR` or `SQLPOOL_CANCELLED`
/// (a cancelled acquire never keeps a connection: one handed over meanwhile
/// goes back to the pool).
///
/// On success `*op_id` (if `op_id` is not NULL) is the operation's id for
/// `sqlpool_cancel`, written before the operation starts; exactly one
/// completion follows, possibly before this function returns (callback
/// form). On failure no operation started and no completion follows.
/// `user_data` is passed through untouched; `callback` and `user_data`
/// must stay valid until the completion. Thread-safe.
///
/// Errors: `SQLPOOL_INVALID_ARGUMENT` (NULL pool, both or neither of
/// `queue` and `callback`), `SQLPOOL_MISUSE` (stale pool or queue),
/// `SQLPOOL_INTERNAL` (the runtime could not start).
#[no_mangle]
pub unsafe extern "C" fn sqlpool_pool_acquire_async(
    pool: *mut sqlpool_pool,
    timeout_ms: i64,
    queue: *mut sqlpool_queue,
    callback: sqlpool_completion_callback,
    user_data: *mut c_void,
    op_id: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let pool = POOLS.get(handle(pool, "pool")?)?;
        let target = target_of(queue, callback)?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let op = Op::new()?;
        let sink = bind(target, &op, user_data, op_id)?;
        asyncops::start_acquire(op, pool, timeout, sink);
        Ok(())
    })
}

/// `sqlpool_pool_acquire_async` on a queue that skips the queue when it
/// can: when an idle connection is free now (the pool gives released
/// connections to queued waiters first, so none is taken ahead of them)
/// and checking it needs no round trip, it is taken in this call and
/// `SQLPOOL_OK` returned with `*conn` set (the caller releases it with
/// `sqlpool_conn_release`): no operation starts and no completion follows
/// (`*op_id` untouched). Otherwise the acquire starts as
/// `sqlpool_pool_acquire_async(pool, timeout_ms, queue, NULL, user_data,
/// op_id)` would start it, and `SQLPOOL_EMPTY` is returned with `*op_id`
/// set: exactly one completion follows on `queue` (`*conn` untouched).
///
/// Errors (no connection, no operation, no completion): those of
/// `sqlpool_pool_acquire_async` (`conn`, `queue` or `op_id` NULL:
/// `SQLPOOL_INVALID_ARGUMENT`), and an acquire that fails at once
/// (`SQLPOOL_POOL_CLOSED`, `SQLPOOL_POOL_EXHAUSTED`). Never blocks.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_pool_acquire_now_or_async(
    pool: *mut sqlpool_pool,
    timeout_ms: i64,
    queue: *mut sqlpool_queue,
    user_data: *mut c_void,
    conn: *mut *mut sqlpool_conn,
    op_id: *mut u64,
) -> sqlpool_status {
    let mut pending = false;
    let status = boundary(|| {
        let conn = super::out_arg(conn, "conn")?;
        // Checked here; written by `bind` only if an operation starts.
        super::out_arg(op_id, "op_id")?;
        let pool = POOLS.get(handle(pool, "pool")?)?;
        let queue = QUEUES.get(handle(queue, "queue")?)?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let start = || {
            let op = Op::new()?;
            let sink = bind(Target::Queue(queue), &op, user_data, op_id)?;
            Ok((op, sink))
        };
        match asyncops::acquire_now_or_start(pool, timeout, start)? {
            asyncops::AcquiredNow::Conn(checkout) => {
                let h = CONNS.insert(ConnSlot::pooled(checkout))?;
                conn.put(h as *mut sqlpool_conn);
            }
            asyncops::AcquiredNow::Started => pending = true,
        }
        Ok(())
    });
    if status == Status::Ok && pending {
        Status::Empty
    } else {
        status
    }
}

/// Starts `sqlpool_conn_execute` on a blocking thread of the library: `sql`
/// and `params` (NULL for none) are copied now, so the caller may free or
/// reuse them at once. Completion kind `SQLPOOL_OP_EXECUTE`, with
/// `rows_affected` on success; errors as `sqlpool_conn_execute`, or
/// `SQLPOOL_CANCELLED` (a cancel interrupts the running statement: SQLite
/// interrupt, PostgreSQL cancel request).
///
/// The connection is busy until the completion: another call on it
/// returns `SQLPOOL_BUSY` (another asynchronous operation on it fails at
/// once with `SQLPOOL_BUSY`; a blocking call made while the operation runs
/// returns `SQLPOOL_BUSY`, and if one is still in progress when the
/// operation gets to run, the operation completes with `SQLPOOL_BUSY`).
/// Do not release the connection before the completion: release returns
/// `SQLPOOL_BUSY` while the operation runs, and an operation whose
/// connection was released before it ran completes with `SQLPOOL_MISUSE`.
///
/// `queue`, `callback`, `user_data` and `op_id` as in
/// `sqlpool_pool_acquire_async`. Errors (nothing started):
/// `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_INVALID_UTF8`, `SQLPOOL_MISUSE`
/// (stale connection, queue or params), `SQLPOOL_BUSY`,
/// `SQLPOOL_INTERNAL`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_async(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    queue: *mut sqlpool_queue,
    callback: sqlpool_completion_callback,
    user_data: *mut c_void,
    op_id: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let params = params_of(params)?;
        start_conn_op(
            conn,
            queue,
            callback,
            user_data,
            op_id,
            Work::Execute(sql, params),
        )
    })
}

/// Starts `sqlpool_conn_query` as `sqlpool_conn_execute_async` starts
/// `sqlpool_conn_execute`. Completion kind `SQLPOOL_OP_QUERY`; on success
/// its `handle` is a `sqlpool_result *` the receiver must free with
/// `sqlpool_result_free`. Errors and busy rules as
/// `sqlpool_conn_execute_async`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_query_async(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    queue: *mut sqlpool_queue,
    callback: sqlpool_completion_callback,
    user_data: *mut c_void,
    op_id: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let params = params_of(params)?;
        start_conn_op(
            conn,
            queue,
            callback,
            user_data,
            op_id,
            Work::Query(sql, params),
        )
    })
}

/// Starts `sqlpool_conn_execute_batch` (all `count` parameter lists are
/// copied now). Completion kind `SQLPOOL_OP_BATCH`, with the total
/// `rows_affected` on success; all or nothing, also when cancelled. Errors
/// and busy rules as `sqlpool_conn_execute_async`, plus
/// `SQLPOOL_INVALID_ARGUMENT` for a NULL `param_sets` with nonzero `count`
/// or a NULL element.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sqlpool_conn_execute_batch_async(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    param_sets: *const *const sqlpool_params,
    count: usize,
    queue: *mut sqlpool_queue,
    callback: sqlpool_completion_callback,
    user_data: *mut c_void,
    op_id: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let sets = unsafe { param_sets_of(param_sets, count) }?;
        start_conn_op(
            conn,
            queue,
            callback,
            user_data,
            op_id,
            Work::Batch(sql, sets),
        )
    })
}

/// Requests cancellation of an asynchronous operation. Returns
/// `SQLPOOL_OK` when a cancel was requested and also when the operation
/// had already finished; its completion still arrives, with status
/// `SQLPOOL_CANCELLED` if the cancel came in time (a waiting acquire stops
/// waiting; a running statement is interrupted: SQLite interrupt,
/// PostgreSQL cancel request), else with its normal outcome. A PostgreSQL
/// cancel request is sent from a library thread; like every PostgreSQL
/// cancel it is racy: one that reaches the server after the statement
/// ended has no effect on it. Never blocks. Thread-safe, also from inside
/// a callback. Errors: `SQLPOOL_INVALID_ARGUMENT` for an id never issued.
#[no_mangle]
pub extern "C" fn sqlpool_cancel(op_id: u64) -> sqlpool_status {
    boundary(|| asyncops::cancel(op_id))
}

/// Sets the number of worker threads of the library's async runtime (they
/// run waiting acquires and completions; statements run on separate
/// blocking threads, one per statement in flight). Only before the first
/// asynchronous operation starts the runtime, else `SQLPOOL_MISUSE`.
/// Default: the `SQLPOOL_ASYNC_THREADS` environment variable, else 2.
/// Errors: `SQLPOOL_INVALID_ARGUMENT` (0 or more than 256),
/// `SQLPOOL_MISUSE`. Thread-safe.
#[no_mangle]
pub extern "C" fn sqlpool_set_async_threads(n: u32) -> sqlpool_status {
    boundary(|| asyncops::set_threads(n))
}

// ---------------------------------------------------------------------------
// Operations driven by the caller's event loop

/// `sqlpool_wait.events` bit: wait until the descriptor is readable.
pub const SQLPOOL_WAIT_READ: u32 = 1;
/// `sqlpool_wait.events` bit: wait until the descriptor is writable.
pub const SQLPOOL_WAIT_WRITE: u32 = 2;

/// An operation on a connection that the caller's own event loop drives.
/// On PostgreSQL it is driven the way a non-blocking libpq connection is:
/// each poll does the I/O the statement can do on the calling thread, no
/// library thread takes part, and the loop is woken by the connection's
/// socket itself (one wake-up per round trip). On SQLite the statement
/// runs on a library thread, which wakes the task's own descriptor (an
/// eventfd) when it is done.
///
/// Started by `sqlpool_conn_execute_start`, `sqlpool_conn_query_start`,
/// their `_packed_start` forms, `sqlpool_conn_execute_batch_start` or
/// `sqlpool_conn_query_into_start` (when the query does not complete in
/// that call); then call `sqlpool_task_poll` until
/// it returns `SQLPOOL_OK` (the completion), each time after what it last
/// reported in its `sqlpool_wait` happened: a descriptor became ready, or
/// the timeout passed (calling it earlier is harmless). Each poll does
/// what can be done without waiting and returns: it never blocks. Every
/// bound of the blocking call applies (`query_timeout`, with its cancel
/// request and grace; a lost connection): they are part of the timeout
/// reported, so a loop that honours it needs no timer of its own.
///
/// The connection is busy until the completion, exactly as with
/// `sqlpool_conn_execute_async`. Freeing an unfinished task abandons its
/// operation: the connection, possibly mid-exchange with the server, is
/// marked broken and is closed when released, never reused.
///
/// Thread-safety: a task may move between threads, one call at a time
/// (`SQLPOOL_BUSY` otherwise); `sqlpool_task_cancel` may come from any
/// thread, and takes effect at the next `sqlpool_task_poll`.
///
/// Functions: `sqlpool_conn_execute_start`, `sqlpool_conn_query_start`,
/// `sqlpool_conn_execute_packed_start`, `sqlpool_conn_query_packed_start`,
/// `sqlpool_conn_execute_batch_start`,
/// `sqlpool_conn_execute_many_columns_start`,
/// `sqlpool_conn_query_into_start`, `sqlpool_task_poll`,
/// `sqlpool_task_cancel`, `sqlpool_task_free`.
pub struct sqlpool_task {
    _private: [u8; 0],
}

/// What an unfinished task waits for, from `sqlpool_task_poll`: poll
/// again when any of the `count` descriptors `fds[i]` is ready for
/// `events[i]` (`SQLPOOL_WAIT_READ` and/or `SQLPOOL_WAIT_WRITE`), or once
/// `timeout_us` microseconds have passed (-1: no timeout; 0: at once).
/// The descriptors belong to the library: only watch them, and stop
/// watching a descriptor as soon as a poll no longer lists it (it may be
/// closed by then).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sqlpool_wait {
    /// How many entries of `fds` and `events` are valid (0 to 4).
    pub count: u32,
    pub fds: [c_int; 4],
    pub events: [u32; 4],
    pub timeout_us: i64,
}

struct Task {
    /// The operation (None once it has completed).
    state: Mutex<TaskState>,
    canceller: crate::backend::Canceller,
    /// SQLite: set by a cancel, checked before the work starts (an
    /// interrupt before the statement runs would be lost).
    cancelled: Option<Arc<std::sync::atomic::AtomicBool>>,
}

struct TaskState {
    future: Option<Pin<Box<dyn Future<Output = Result<Output>> + Send>>>,
    stepper: crate::backend::postgres::net::Stepper,
    kind: OpKind,
}

static TASKS: HandleTable<Task> = HandleTable::new(HandleKind::Task);

/// Where one `Task::advance` left the task.
enum Advanced {
    /// Unfinished: what to wait for before the next poll.
    Waiting(sqlpool_wait),
    /// Completed (the connection is no longer busy).
    Done(OpKind, Result<Output>),
}

impl Task {
    /// Advances the operation as far as it goes, waiting at most `wait_us`
    /// (see `sqlpool_task_poll`); `Err` when the task cannot be polled.
    fn advance(&self, wait_us: u64, stop_fd: c_int) -> Result<Advanced> {
        let mut st = self.state.try_lock().map_err(|e| match e {
            std::sync::TryLockError::WouldBlock => Error::new(
                Status::Busy,
                "the task is being polled by another thread (one call at a time)",
            ),
            std::sync::TryLockError::Poisoned(_) => {
                Error::misuse("the task was poisoned by an earlier panic; free it")
            }
        })?;
        let TaskState {
            future,
            stepper,
            kind,
        } = &mut *st;
        let kind = *kind;
        let Some(fut) = future.as_mut() else {
            return Err(Error::misuse("this task has already completed; free it"));
        };
        use crate::backend::postgres::net::Step;
        let step = catch_unwind(AssertUnwindSafe(|| {
            if wait_us == 0 {
                stepper.step(fut.as_mut())
            } else {
                // At most an hour: `Instant` arithmetic cannot overflow.
                let budget = Duration::from_micros(wait_us.min(3_600_000_000));
                let until = std::time::Instant::now() + budget;
                let stop = (stop_fd >= 0).then_some(stop_fd);
                stepper.step_until(fut.as_mut(), until, stop)
            }
        }));
        let outcome = match step {
            Ok(Step::Waiting) => return Ok(Advanced::Waiting(wait_of(stepper))),
            Ok(Step::Ready(outcome)) => outcome,
            Ok(Step::Stuck) => Err(Error::new(
                Status::Internal,
                "internal: a PostgreSQL operation stalled with nothing to wait for",
            )),
            Err(p) => Err(Error::new(
                Status::Panic,
                format!(
                    "internal panic in a loop-driven operation: {}",
                    crate::error::panic_message(&*p)
                ),
            )),
        };
        // Ends the operation; a connection still lent (stuck, panicked)
        // goes back marked broken.
        *future = None;
        Ok(Advanced::Done(kind, outcome))
    }
}

/// Lends the connection to a task the caller's loop will drive.
fn start_loop_task(conn: *mut sqlpool_conn, work: Work, out: *mut *mut sqlpool_task) -> Result<()> {
    let out: Out<*mut sqlpool_task> = super::out_arg(out, "task")?;
    let task = new_loop_task(conn, work)?;
    let th = TASKS.insert(Arc::new(task))?;
    out.put(th as *mut sqlpool_task);
    Ok(())
}

/// A task for `work` on the connection, not yet registered (nothing runs
/// before its first poll).
fn new_loop_task(conn: *mut sqlpool_conn, work: Work) -> Result<Task> {
    let h = handle(conn, "conn")?;
    // A stale handle, or a call in progress on it, fails now.
    let postgres = with_conn(conn, |c| {
        Ok(c.pooled()?.conn().backend_name() == "postgresql")
    })?;
    if !postgres {
        return new_sqlite_task(h, work);
    }
    let in_flight = InFlight::claim(h)?;
    let slot = CONNS.get(h)?;
    let mut lent_conn = lock_slot(&slot)?.lend()?;
    let canceller = lent_conn.conn().canceller();
    let mut lent = Lent {
        slot,
        conn: Some(lent_conn),
        finished: true,
    };
    let kind = work.kind();
    let future = Box::pin(async move {
        let _in_flight = in_flight;
        lent.finished = false;
        let conn = lent.conn.as_mut().expect("lent until the end").conn();
        let outcome = work.run(conn).await;
        lent.finished = true;
        drop(lent);
        outcome
    });
    // Dropped unpolled, the future gives the connection back as it was.
    Ok(Task {
        state: Mutex::new(TaskState {
            future: Some(future),
            stepper: crate::backend::postgres::net::Stepper::new(),
            kind,
        }),
        canceller,
        cancelled: None,
    })
}

/// SQLite's statements are synchronous: the task hands the work to one
/// of the library's blocking threads, and that thread's completion wakes
/// the task's own descriptor.
fn new_sqlite_task(h: usize, work: Work) -> Result<Task> {
    asyncops::runtime()?; // the blocking threads
    let stepper = crate::backend::postgres::net::Stepper::with_wakeups().map_err(|e| {
        Error::new(
            Status::Internal,
            format!("cannot create the task's eventfd: {e}"),
        )
    })?;
    let in_flight = InFlight::claim(h)?;
    let canceller = with_conn(h as *mut sqlpool_conn, |c| Ok(c.conn().canceller()))?;
    let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = cancelled.clone();
    let kind = work.kind();
    let future = Box::pin(async move {
        let job = move || {
            // Held until the work is over, even if the task is dropped.
            let _in_flight = in_flight;
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::new(Status::Cancelled, "the operation was cancelled")
                    .with_sqlstate("57014"));
            }
            with_conn(h as *mut sqlpool_conn, |c| {
                let conn = c.conn();
                let outcome = crate::backend::postgres::block(work.run(&mut *conn));
                conn.clear_canceller();
                outcome
            })
        };
        asyncops::blocking::run_async(move || catch_unwind(AssertUnwindSafe(job)))
            .await
            .and_then(|r| r.ok())
            .unwrap_or_else(|| {
                Err(Error::new(
                    Status::Panic,
                    "internal panic in an asynchronous SQLite operation",
                ))
            })
    });
    Ok(Task {
        state: Mutex::new(TaskState {
            future: Some(future),
            stepper,
            kind,
        }),
        canceller,
        cancelled: Some(cancelled),
    })
}

fn wait_of(stepper: &crate::backend::postgres::net::Stepper) -> sqlpool_wait {
    let mut w = sqlpool_wait {
        count: 0,
        fds: [-1; 4],
        events: [0; 4],
        timeout_us: -1,
    };
    let mut overflow = false;
    for (fd, events) in stepper.fds() {
        let i = w.count as usize;
        if i == w.fds.len() {
            overflow = true;
            continue;
        }
        w.fds[i] = fd;
        w.events[i] = if events & libc::POLLIN != 0 {
            SQLPOOL_WAIT_READ
        } else {
            0
        } | if events & libc::POLLOUT != 0 {
            SQLPOOL_WAIT_WRITE
        } else {
            0
        };
        w.count += 1;
    }
    if let Some(at) = stepper.wake_at() {
        let left = at.saturating_duration_since(std::time::Instant::now());
        w.timeout_us = left.as_micros().min(i64::MAX as u128) as i64;
    }
    if overflow {
        // More descriptors than fit (never expected): look again soon.
        w.timeout_us = if w.timeout_us < 0 {
            1000
        } else {
            w.timeout_us.min(1000)
        };
    }
    w
}

/// Starts `sqlpool_conn_execute` as a task the caller's event loop drives
/// (see `sqlpool_task`); nothing runs before the first
/// `sqlpool_task_poll`. `sql` and `params` are copied now. On success `*task` is the caller's, to poll until it
/// completes and then free with `sqlpool_task_free`; its completion has
/// kind `SQLPOOL_OP_EXECUTE` and `rows_affected`.
///
/// Errors (nothing started, `*task` untouched): `SQLPOOL_INVALID_ARGUMENT`,
/// `SQLPOOL_INVALID_UTF8`, `SQLPOOL_MISUSE` (stale connection or params),
/// `SQLPOOL_BUSY` (an operation in flight or a call in progress on it),
/// `SQLPOOL_INTERNAL` (no descriptor or thread available). Never blocks.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_start(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    task: *mut *mut sqlpool_task,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let params = params_of(params)?;
        start_loop_task(conn, Work::Execute(sql, params), task)
    })
}

/// Starts `sqlpool_conn_query` as `sqlpool_conn_execute_start` starts
/// `sqlpool_conn_execute`. Its completion has kind `SQLPOOL_OP_QUERY`; on
/// success its `handle` is a `sqlpool_result *` the caller must free with
/// `sqlpool_result_free`. Errors as `sqlpool_conn_execute_start`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_query_start(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    task: *mut *mut sqlpool_task,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let params = params_of(params)?;
        start_loop_task(conn, Work::Query(sql, params), task)
    })
}

/// `sqlpool_conn_query_start` with its positional parameters packed in
/// one buffer, as `sqlpool_conn_query_packed` takes them (`params_len`
/// bytes; NULL with 0: none), for bindings that pay per call. Errors as
/// `sqlpool_conn_execute_start`, plus `SQLPOOL_INVALID_ARGUMENT` for a
/// malformed buffer.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_query_packed_start(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const u8,
    params_len: usize,
    task: *mut *mut sqlpool_task,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let params = super::params::unpack_params(unsafe {
            super::bytes_arg(params, params_len, "params")
        }?)?;
        start_loop_task(conn, Work::Query(sql, params), task)
    })
}

/// `sqlpool_conn_execute_start` with its positional parameters packed in
/// one buffer, as `sqlpool_conn_query_packed_start` takes them. Errors as
/// `sqlpool_conn_query_packed_start`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_packed_start(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const u8,
    params_len: usize,
    task: *mut *mut sqlpool_task,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let params = super::params::unpack_params(unsafe {
            super::bytes_arg(params, params_len, "params")
        }?)?;
        start_loop_task(conn, Work::Execute(sql, params), task)
    })
}

/// Starts `sqlpool_conn_execute_batch` as `sqlpool_conn_execute_start`
/// starts `sqlpool_conn_execute` (all `count` parameter lists are copied
/// now). Its completion has kind `SQLPOOL_OP_BATCH`, with the total
/// `rows_affected`. Errors as `sqlpool_conn_execute_start`, plus
/// `SQLPOOL_INVALID_ARGUMENT` for a NULL `param_sets` with nonzero `count`
/// or a NULL element.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_batch_start(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    param_sets: *const *const sqlpool_params,
    count: usize,
    task: *mut *mut sqlpool_task,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let sets = unsafe { param_sets_of(param_sets, count) }?;
        start_loop_task(conn, Work::Batch(sql, sets), task)
    })
}

/// Starts `sqlpool_conn_execute_many_columns` as
/// `sqlpool_conn_execute_batch_start` starts a batch: the columns are
/// read (and checked) now, so the caller's buffers may go as soon as this
/// returns. Its completion has kind `SQLPOOL_OP_BATCH`, with the total
/// `rows_affected`. Errors as `sqlpool_conn_execute_start`, and those of
/// `sqlpool_conn_execute_many_columns` for the columns.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_many_columns_start(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    columns: *const super::param_columns::sqlpool_param_column,
    column_count: usize,
    row_count: usize,
    task: *mut *mut sqlpool_task,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let columns =
            unsafe { super::param_columns::param_columns_of(columns, column_count, row_count) }?;
        start_loop_task(conn, Work::Batch(sql, columns.to_params()), task)
    })
}

/// `sqlpool_conn_query_into` as a loop-driven operation, started and
/// polled once in one call (for bindings that pay per call): starts the
/// query as `sqlpool_conn_query_packed_start` does, then polls it as
/// `sqlpool_task_poll(task, wait_us, stop_fd, ...)` would.
///
/// Returns `SQLPOOL_OK` when the query completed in this call: its result
/// is in `buf` and `*out` exactly as `sqlpool_conn_query_into` leaves them
/// (`*out` NULL, or a result the caller frees with `sqlpool_result_free`),
/// no task remains and `*task` and `*wait` are untouched. Returns
/// `SQLPOOL_EMPTY` while it is unfinished: `*task` is the caller's task, to
/// poll with `sqlpool_task_poll` (its completion then comes as
/// `sqlpool_conn_query_packed_start`'s does, not in `buf`) and free with
/// `sqlpool_task_free`; `*wait` says what to wait for; `buf` and `*out` are
/// untouched. Any other status is the query's error (as
/// `sqlpool_conn_query_into`'s, the thread's last error describes it) or
/// one of `sqlpool_conn_query_packed_start`'s: nothing remains to free.
///
/// Errors as `sqlpool_conn_query_packed_start` and
/// `sqlpool_conn_query_into` (`SQLPOOL_BUFFER_TOO_SMALL` for `buf_len`
/// below `SQLPOOL_QUERY_HEADER_SIZE`, checked before the query starts).
/// Waits at most `wait_us` microseconds, as `sqlpool_task_poll` does.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sqlpool_conn_query_into_start(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const u8,
    params_len: usize,
    buf: *mut u8,
    buf_len: usize,
    out: *mut *mut super::sqlpool_result,
    wait_us: u64,
    stop_fd: c_int,
    task: *mut *mut sqlpool_task,
    wait: *mut sqlpool_wait,
) -> sqlpool_status {
    let mut pending = false;
    let status = boundary(|| {
        let out = super::out_arg(out, "out")?;
        let task_out: Out<*mut sqlpool_task> = super::out_arg(task, "task")?;
        let wait = super::out_arg(wait, "wait")?;
        let buf = unsafe { super::conn::into_buf(buf, buf_len) }?;
        let sql = unsafe { str_arg(sql, "sql") }?.to_owned();
        let params = super::params::unpack_params(unsafe {
            super::bytes_arg(params, params_len, "params")
        }?)?;
        let started = new_loop_task(conn, Work::Query(sql, params))?;
        match started.advance(wait_us, stop_fd)? {
            Advanced::Waiting(w) => {
                // On failure the task drops unfinished: its connection is
                // marked broken, nothing leaks.
                let th = TASKS.insert(Arc::new(started))?;
                task_out.put(th as *mut sqlpool_task);
                wait.put(w);
                pending = true;
                Ok(())
            }
            Advanced::Done(_, Ok(Output::Result(result))) => {
                super::conn::result_into(result, buf, out)
            }
            Advanced::Done(_, Ok(_)) => Err(Error::new(
                Status::Internal,
                "internal: a query completed without a result",
            )),
            Advanced::Done(_, Err(e)) => Err(e),
        }
    });
    if status == Status::Ok && pending {
        Status::Empty
    } else {
        status
    }
}

/// Advances a task as far as it goes; waits at most `wait_us`
/// microseconds (0: never blocks).
///
/// With `wait_us` > 0, a task that must wait for the server sleeps on its
/// descriptors in this call, at most `wait_us` in all, and returns early
/// (unfinished) when `stop_fd` (-1: none) becomes readable or a signal
/// arrives: an event loop with nothing else to do passes its own
/// descriptor (an epoll fd) and a bound before its next timer, so that
/// a quick answer completes in this call, without a round of the loop.
///
/// Returns `SQLPOOL_EMPTY` while it is unfinished, with `*wait` set to
/// what to wait for before the next call (`*out` and `*info` untouched),
/// or `SQLPOOL_OK` once it has completed, with `*out` set as a
/// `sqlpool_queue_pop` completion would be (`op_id` 0, `user_data` NULL;
/// `out->handle` and `out->error` are the caller's; when `out->status` is
/// not `SQLPOOL_OK` the thread's last error describes it too) and
/// `*wait` untouched. `info` may be NULL; otherwise a query that
/// succeeded also writes its result's shape and first row there, as
/// `sqlpool_conn_query_packed` does (pointers valid until
/// `sqlpool_result_free` of `out->handle`), and any other completion
/// leaves it untouched. By then the connection is no longer busy. After
/// the completion, further polls return `SQLPOOL_MISUSE`; free the task.
///
/// Errors: `SQLPOOL_INVALID_ARGUMENT` (NULL `task`, `wait` or `out`),
/// `SQLPOOL_MISUSE` (freed or completed task), `SQLPOOL_BUSY` (another
/// thread is polling it).
#[no_mangle]
pub unsafe extern "C" fn sqlpool_task_poll(
    task: *mut sqlpool_task,
    wait_us: u64,
    stop_fd: c_int,
    wait: *mut sqlpool_wait,
    out: *mut sqlpool_completion,
    info: *mut super::result::sqlpool_query_info,
) -> sqlpool_status {
    let mut pending = false;
    let status = boundary(|| {
        let wait = super::out_arg(wait, "wait")?;
        let out = super::out_arg(out, "out")?;
        let info = Out::optional(info);
        let task = TASKS.get(handle(task, "task")?)?;
        let (kind, outcome) = match task.advance(wait_us, stop_fd)? {
            Advanced::Waiting(w) => {
                wait.put(w);
                pending = true;
                return Ok(());
            }
            Advanced::Done(kind, outcome) => (kind, outcome),
        };
        drop(task);
        if let (Ok(Output::Result(_)), Some(info)) = (&outcome, info) {
            let Ok(Output::Result(rs)) = outcome else {
                unreachable!("matched above")
            };
            let (h, shape) =
                super::result::insert_result_with(rs, super::result::sqlpool_query_info::of)?;
            out.put(sqlpool_completion {
                op_id: 0,
                user_data: std::ptr::null_mut(),
                status: Status::Ok,
                kind: kind as u32,
                handle: h as *mut c_void,
                rows_affected: 0,
                error: std::ptr::null_mut(),
            });
            info.put(shape);
            return Ok(());
        }
        let (raw, error) = to_c(
            Completion {
                op_id: 0,
                kind,
                outcome,
            },
            0,
        );
        if let Some(e) = error {
            set_last_error(e);
        }
        out.put(raw);
        Ok(())
    });
    if status == Status::Ok && pending {
        Status::Empty
    } else {
        status
    }
}

/// Requests cancellation of a task's operation, as `sqlpool_cancel` does
/// for an asynchronous one: a PostgreSQL statement running on the server
/// gets a cancel request (sent by the task's own following polls, which
/// also wait for the server to end the statement, within a grace period
/// after which the connection is closed instead); a SQLite statement is
/// interrupted, or not started. Poll the task again after
/// this call; its completion then has status `SQLPOOL_CANCELLED`, or its
/// normal outcome if the operation ended first. Harmless on a completed
/// task. Never blocks; any thread. Errors: `SQLPOOL_INVALID_ARGUMENT`,
/// `SQLPOOL_MISUSE` (freed task).
#[no_mangle]
pub extern "C" fn sqlpool_task_cancel(task: *mut sqlpool_task) -> sqlpool_status {
    boundary(|| {
        TASKS.with(handle(task, "task")?, |t| {
            if let Some(flag) = &t.cancelled {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            t.canceller.cancel();
            Ok(())
        })
    })
}

/// Frees a task. An unfinished one is abandoned: its connection stops
/// being busy but is marked broken (it may be mid-exchange with the
/// server), so releasing it closes it; nothing else leaks. Stop watching
/// the task's descriptors first. NULL is accepted and ignored; freeing
/// twice returns `SQLPOOL_MISUSE`. Never blocks.
#[no_mangle]
pub extern "C" fn sqlpool_task_free(task: *mut sqlpool_task) -> sqlpool_status {
    boundary(|| {
        if task.is_null() {
            return Ok(());
        }
        drop(TASKS.remove(task as usize)?);
        Ok(())
    })
}
