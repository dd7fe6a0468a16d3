//! Asynchronous operations: the safe core behind `sqlpool_*_async`.
//!
//! A tokio runtime inside the library (started on first use, never shut
//! down) runs the waiting: an acquire that finds no idle connection is an
//! async task parked on the pool's FIFO waiter queue ([`Pool::enqueue`] /
//! [`Pool::poll_waiter`]), so any number of waiting acquires costs no
//! thread. Database work runs on the library's blocking threads
//! ([`blocking`]): one per statement in flight, created on demand, reused,
//! and briefly spinning for the next job before they sleep, so a host that
//! starts the next statement from a completion does not pay a thread
//! wake-up for it.
//!
//! Each operation has an id ([`Op`]) under which it can be cancelled until
//! it completes; exactly one [`Completion`] is handed to its [`Sink`].
//!
//! Two rules keep it sound:
//! * Nothing that may block runs on a runtime worker thread: dropping a
//!   checkout may roll back or close a PostgreSQL connection, and the
//!   `postgres` crate blocks on its own runtime, which panics inside ours.
//!   Workers hand such values to [`dispose`].
//! * A sink that runs user code (a C callback) is only called on a blocking
//!   thread, with no library lock held.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use once_cell::sync::{Lazy, OnceCell};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::backend::{Canceller, Checkout, Manager, Pool};
use crate::error::{panic_message, Error, Result, Status};
use crate::log::{self, Level};
use crate::result::ResultSet;

/// Worker threads when neither `set_threads` nor `SQLPOOL_ASYNC_THREADS`
/// says otherwise.
const DEFAULT_WORKERS: u32 = 2;
/// Most worker threads `set_threads` accepts.
const MAX_WORKERS: u32 = 256;

/// How often a SQLite interrupt is repeated while the statement still runs
/// (an interrupt that lands just before the statement starts is lost).
const SQLITE_INTERRUPT_RETRY: Duration = Duration::from_millis(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// The runtime

static RUNTIME: OnceCell<Runtime> = OnceCell::new();
/// Worker threads chosen by `set_threads`, and whether the runtime has
/// started (read its choice): serialises the two.
static CONFIG: Mutex<(Option<u32>, bool)> = Mutex::new((None, false));

/// Sets the runtime's worker threads. Only before the runtime has started
/// (`Status::Misuse` afterwards); `n` in `1..=MAX_WORKERS`.
pub fn set_threads(n: u32) -> Result<()> {
    if n == 0 || n > MAX_WORKERS {
        return Err(Error::invalid_argument(format!(
            "invalid number of async threads {n} (expected 1..={MAX_WORKERS})"
        )));
    }
    let mut config = lock(&CONFIG);
    if config.1 {
        return Err(Error::misuse(
            "the async runtime has already started; set its threads before the first async call",
        ));
    }
    config.0 = Some(n);
    Ok(())
}

fn threads_from_env() -> u32 {
    let Ok(text) = std::env::var("SQLPOOL_ASYNC_THREADS") else {
        return DEFAULT_WORKERS;
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => n,
        _ => {
            log::emit(
                Level::Warn,
                "sqlpool::async",
                &format!(
                    "ignoring SQLPOOL_ASYNC_THREADS={text:?} (expected 1..={MAX_WORKERS}); using {DEFAULT_WORKERS}"
                ),
            );
            DEFAULT_WORKERS
        }
    }
}

/// The runtime, started on first use.
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_try_init(|| {
        let chosen = {
            let mut config = lock(&CONFIG);
            config.1 = true;
            config.0
        };
        // (Outside the lock: a bad value is logged, and a logger may call in.)
        let threads = chosen.unwrap_or_else(threads_from_env);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads as usize)
            .thread_name("sqlpool-async")
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| {
                Error::new(
                    Status::Internal,
                    format!("cannot start the async runtime: {e}"),
                )
            })?;
        blocking::start()?;
        log::emit(
            Level::Debug,
            "sqlpool::async",
            &format!("async runtime started with {threads} worker threads"),
        );
        Ok(rt)
    })
}

/// Drops `value` on a blocking thread: for checkouts (and anything holding
/// one) that become garbage on a worker thread.
pub fn dispose<T: Send + 'static>(value: T) {
    if blocking::started() {
        blocking::submit_light(move || drop(value));
    } else {
        drop(value);
    }
}

/// The library's blocking threads: a plain thread pool (no tokio context,
/// so the `postgres` crate may block on its own runtime there).
///
/// Database work ([`blocking::submit`]) never waits for a thread while
/// fewer than `MAX_THREADS` (512) exist: when every thread is busy, a new
/// one starts, so statements in flight are bounded by the pools'
/// connections, not by this pool. Short jobs ([`blocking::submit_light`]:
/// completions to deliver, connections to give back) start no threads in
/// bursts (closing a pool with 10,000 callback acquires waiting must not
/// start 512 threads): they wait for a free thread, and only when no job
/// has started for `STALL` (5 ms; every thread stuck, say in host
/// callbacks) is a thread added, one per such interval. A thread that runs
/// out of work spins for a few microseconds (one spinner at a time) before
/// it sleeps, and exits after `KEEP_ALIVE` (10 s) asleep; one always stays.
pub mod blocking {
    use super::*;

    /// Most blocking threads.
    const MAX_THREADS: usize = 512;
    /// How long an idle thread sleeps before it exits.
    const KEEP_ALIVE: Duration = Duration::from_secs(10);
    /// How long an idle thread spins for new work before it sleeps.
    const SPIN: Duration = Duration::from_micros(50);
    static SPIN_PAYS: once_cell::sync::Lazy<bool> = once_cell::sync::Lazy::new(|| {
        std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
    });
    /// How long short jobs wait with no job starting before threads are
    /// added for them.
    const STALL: Duration = Duration::from_millis(5);

    type Job = Box<dyn FnOnce() + Send>;

    struct State {
        jobs: VecDeque<Job>,
        threads: usize,
        /// Threads not running a job (spinning, asleep, or between jobs).
        idle: usize,
        asleep: usize,
        spinning: bool,
        /// Jobs started so far: progress, for the stall check.
        taken: u64,
        stall_check: bool,
    }

    struct Threads {
        state: Mutex<State>,
        wake: Condvar,
        /// `state.jobs.len()`, readable without the lock (for spinners).
        queued: AtomicUsize,
    }

    static THREADS: Threads = Threads {
        state: Mutex::new(State {
            jobs: VecDeque::new(),
            threads: 0,
            idle: 0,
            asleep: 0,
            spinning: false,
            taken: 0,
            stall_check: false,
        }),
        wake: Condvar::new(),
        queued: AtomicUsize::new(0),
    };
    static STARTED: AtomicBool = AtomicBool::new(false);

    /// Starts the first thread (once); afterwards [`submit`] cannot fail.
    pub(super) fn start() -> Result<()> {
        let mut st = lock(&THREADS.state);
        if st.threads == 0 {
            spawn_thread(&mut st).map_err(|e| {
                Error::new(
                    Status::Internal,
                    format!("cannot start a blocking thread: {e}"),
                )
            })?;
        }
        STARTED.store(true, Ordering::Release);
        Ok(())
    }

    pub fn started() -> bool {
        STARTED.load(Ordering::Acquire)
    }

    fn spawn_thread(st: &mut State) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("sqlpool-db".into())
            .spawn(run)?;
        st.threads += 1;
        st.idle += 1;
        Ok(())
    }

    /// Runs database work on a blocking thread (after [`start`]), starting
    /// a thread for it if every thread is busy.
    pub fn submit(job: impl FnOnce() + Send + 'static) {
        enqueue(Box::new(job), true);
    }

    /// Runs a short job on a blocking thread (after [`start`]) without
    /// starting a thread for it unless the pool is stuck.
    pub fn submit_light(job: impl FnOnce() + Send + 'static) {
        enqueue(Box::new(job), false);
    }

    fn enqueue(job: Job, eager: bool) {
        let mut st = lock(&THREADS.state);
        st.jobs.push_back(job);
        THREADS.queued.store(st.jobs.len(), Ordering::Release);
        let waiting = st.jobs.len();
        if waiting > st.idle {
            // Every thread is busy: add one for database work. (If that
            // fails, or for a short job, the stall check adds one later if
            // nothing moves.)
            if eager && st.threads < MAX_THREADS && spawn_thread(&mut st).is_ok() {
                return;
            }
            schedule_stall_check(&mut st);
        }
        if st.asleep > 0 && !(st.spinning && waiting <= 1) {
            THREADS.wake.notify_one();
        }
    }

    fn schedule_stall_check(st: &mut State) {
        if st.stall_check {
            return;
        }
        let Some(rt) = RUNTIME.get() else {
            let _ = spawn_thread(st);
            return;
        };
        st.stall_check = true;
        let taken = st.taken;
        rt.spawn(async move {
            tokio::time::sleep(STALL).await;
            stall_check(taken);
        });
    }

    fn stall_check(taken_before: u64) {
        let mut st = lock(&THREADS.state);
        st.stall_check = false;
        if st.jobs.is_empty() {
            return;
        }
        if st.taken == taken_before && st.threads < MAX_THREADS {
            // Nothing started for a while: every thread is stuck (or
            // starved of CPU). Add one, and look again later.
            let _ = spawn_thread(&mut st);
        }
        if st.jobs.len() > st.idle {
            schedule_stall_check(&mut st);
        }
    }

    fn run() {
        let t = &THREADS;
        let mut st = lock(&t.state);
        loop {
            if let Some(job) = st.jobs.pop_front() {
                t.queued.store(st.jobs.len(), Ordering::Release);
                st.idle -= 1;
                st.taken += 1;
                drop(st);
                // Jobs catch their own panics; this is a last resort that
                // keeps the thread (and the accounting) alive.
                let _ = catch_unwind(AssertUnwindSafe(job));
                st = lock(&t.state);
                st.idle += 1;
                continue;
            }
            // Spinning only pays with a second core: on one it keeps the
            // thread that would submit the next job from running. On two,
            // the host's loop runs on the other one and its next statement
            // (SQLite) is taken with no sleep and wake-up on either side.
            if !st.spinning && *SPIN_PAYS {
                st.spinning = true;
                drop(st);
                let until = Instant::now() + SPIN;
                let mut spins = 0u32;
                while t.queued.load(Ordering::Acquire) == 0 && Instant::now() < until {
                    spins += 1;
                    if spins % 64 == 0 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                st = lock(&t.state);
                st.spinning = false;
                if !st.jobs.is_empty() {
                    continue;
                }
            }
            st.asleep += 1;
            let (guard, waited) = t
                .wake
                .wait_timeout(st, KEEP_ALIVE)
                .unwrap_or_else(|p| p.into_inner());
            st = guard;
            st.asleep -= 1;
            if waited.timed_out() && st.jobs.is_empty() && st.threads > 1 {
                st.threads -= 1;
                st.idle -= 1;
                return;
            }
        }
    }

    /// Runs `job` on a blocking thread and awaits its result (`None` if it
    /// panicked).
    pub async fn run_async<R: Send + 'static>(
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        submit(move || {
            let _ = tx.send(job());
        });
        rx.await.ok()
    }
}

// ---------------------------------------------------------------------------
// Operations and completions

/// What an operation does; the numbers are the C API's `SQLPOOL_OP_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum OpKind {
    Acquire = 1,
    Execute = 2,
    Query = 3,
    Batch = 4,
    /// Waiting for a LISTEN notification (`crate::backend::bulk`).
    Notify = 5,
}

/// What a successful operation produced.
// A checkout is a few hundred bytes, moved a couple of times per operation:
// cheaper than boxing it.
#[allow(clippy::large_enum_variant)]
pub enum Output {
    /// A borrowed connection (acquire).
    Conn(Checkout),
    /// Rows (query).
    Result(ResultSet),
    /// Rows affected (execute, batch).
    Rows(u64),
    /// A notification, or none before the wait's deadline.
    Notification(Option<crate::backend::postgres::notify::Notification>),
}

/// The end of one operation. Owns what the operation produced: dropping it
/// gives a connection back to its pool and frees a result (drop it where
/// blocking is allowed, see [`dispose`]).
pub struct Completion {
    pub op_id: u64,
    pub kind: OpKind,
    pub outcome: Result<Output>,
}

/// Where an operation's completion goes.
pub struct Sink {
    deliver: Box<dyn FnOnce(Completion) + Send>,
    runs_user_code: bool,
}

impl Sink {
    /// `runs_user_code`: `deliver` calls into the host (a callback), so it
    /// is only ever called on a blocking thread, never on a worker.
    pub fn new(runs_user_code: bool, deliver: impl FnOnce(Completion) + Send + 'static) -> Sink {
        Sink {
            deliver: Box::new(deliver),
            runs_user_code,
        }
    }

    fn deliver(self, completion: Completion) {
        let deliver = self.deliver;
        // A panic while delivering loses the completion but must not take
        // a library thread down.
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || deliver(completion))) {
            log::emit(
                Level::Error,
                "sqlpool::async",
                &format!(
                    "internal panic while delivering a completion: {}",
                    panic_message(&*p)
                ),
            );
        }
    }
}

enum RunState {
    NotStarted,
    /// Database work is running; the canceller interrupts it.
    Running(Arc<Canceller>),
    Finished,
}

struct OpCtl {
    id: u64,
    cancelled: AtomicBool,
    /// Wakes a waiting acquire when a cancel is requested.
    notify: Notify,
    run: Mutex<RunState>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Operations that have not completed yet, by id.
static OPS: Lazy<Mutex<HashMap<u64, Arc<OpCtl>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// A started operation, registered under its id until dropped (dropping it
/// is what makes the operation "finished" for [`cancel`]).
pub struct Op {
    ctl: Arc<OpCtl>,
    rt: &'static Runtime,
}

impl Op {
    /// Registers a new operation (starting the runtime if needed).
    pub fn new() -> Result<Op> {
        let rt = runtime()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let ctl = Arc::new(OpCtl {
            id,
            cancelled: AtomicBool::new(false),
            notify: Notify::new(),
            run: Mutex::new(RunState::NotStarted),
        });
        lock(&OPS).insert(id, ctl.clone());
        Ok(Op { ctl, rt })
    }

    pub fn id(&self) -> u64 {
        self.ctl.id
    }

    /// Whether a cancel has been requested.
    pub fn is_cancelled(&self) -> bool {
        self.ctl.cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        lock(&OPS).remove(&self.ctl.id);
    }
}

/// Requests cancellation of operation `id`. Ok when requested, and when the
/// operation has already completed; `InvalidArgument` for an id never
/// issued.
pub fn cancel(id: u64) -> Result<()> {
    if id == 0 || id >= NEXT_ID.load(Ordering::Relaxed) {
        return Err(Error::invalid_argument(format!("no operation has id {id}")));
    }
    let ctl = lock(&OPS).get(&id).cloned();
    if let Some(ctl) = ctl {
        ctl.request_cancel();
    }
    Ok(())
}

impl OpCtl {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn request_cancel(self: &Arc<Self>) {
        if self.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        self.notify.notify_one();
        let running = match &*lock(&self.run) {
            RunState::Running(c) => Some(c.clone()),
            _ => None,
        };
        if let Some(canceller) = running {
            self.interrupt(canceller);
        }
    }

    /// Interrupts the running statement, and again while it still runs.
    fn interrupt(self: &Arc<Self>, canceller: Arc<Canceller>) {
        let Some(rt) = RUNTIME.get() else { return };
        let ctl = self.clone();
        match *canceller {
            Canceller::Sqlite(_) => {
                // Cheap: interrupt now, under the run lock, so it can only
                // hit this operation's statement.
                if !ctl.interrupt_sqlite(&canceller) {
                    return;
                }
                rt.spawn(async move {
                    loop {
                        tokio::time::sleep(SQLITE_INTERRUPT_RETRY).await;
                        if !ctl.interrupt_sqlite(&canceller) {
                            break;
                        }
                    }
                });
            }
            Canceller::Postgres(_) => {
                // The engine sends the server's cancel request itself, only
                // while the statement runs; this just tells it.
                if ctl.still_running(&canceller) {
                    canceller.cancel();
                }
            }
        }
    }

    fn still_running(&self, canceller: &Arc<Canceller>) -> bool {
        matches!(&*lock(&self.run), RunState::Running(c) if Arc::ptr_eq(c, canceller))
    }

    fn interrupt_sqlite(&self, canceller: &Arc<Canceller>) -> bool {
        let run = lock(&self.run);
        match &*run {
            RunState::Running(c) if Arc::ptr_eq(c, canceller) => {
                c.cancel();
                true
            }
            _ => false,
        }
    }
}

fn cancelled_error() -> Error {
    Error::new(Status::Cancelled, "the operation was cancelled").with_sqlstate("57014")
}

fn panic_error(payload: &(dyn std::any::Any + Send)) -> Error {
    Error::new(
        Status::Panic,
        format!(
            "internal panic in an async operation: {}",
            panic_message(payload)
        ),
    )
}

/// Handed to an operation's database work: makes it cancellable.
pub struct Scope<'a> {
    ctl: &'a OpCtl,
}

impl Scope<'_> {
    /// Runs `work` so that a cancel request interrupts it through
    /// `canceller`; fails with `Status::Cancelled` without running it when
    /// a cancel came first. Call it once per operation.
    pub fn cancellable<R>(
        &self,
        canceller: Canceller,
        work: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        {
            let mut run = lock(&self.ctl.run);
            if self.ctl.is_cancelled() {
                *run = RunState::Finished;
                return Err(cancelled_error());
            }
            *run = RunState::Running(Arc::new(canceller));
        }
        // Leaves the running state even if `work` panics.
        struct Finish<'a>(&'a OpCtl);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                *lock(&self.0.run) = RunState::Finished;
            }
        }
        let _finish = Finish(self.ctl);
        work()
    }

    /// Whether a cancel has been requested.
    pub fn is_cancelled(&self) -> bool {
        self.ctl.is_cancelled()
    }
}

/// Runs `work` on a blocking thread, then hands its outcome to `sink` (on
/// that thread).
pub fn start_blocking<F>(op: Op, kind: OpKind, sink: Sink, work: F)
where
    F: FnOnce(&Scope<'_>) -> Result<Output> + Send + 'static,
{
    blocking::submit(move || {
        let outcome = catch_unwind(AssertUnwindSafe(|| work(&Scope { ctl: &op.ctl })))
            .unwrap_or_else(|p| Err(panic_error(&*p)));
        let op_id = op.id();
        drop(op);
        sink.deliver(Completion {
            op_id,
            kind,
            outcome,
        });
    });
}

/// Runs `work` as a task on the runtime, cancellable through `canceller`,
/// then hands its outcome to `sink`: for work whose waiting is
/// asynchronous (the PostgreSQL engine), so no thread is handed the
/// operation and waiting costs none.
pub fn start_task<F>(op: Op, kind: OpKind, sink: Sink, canceller: Canceller, work: F)
where
    F: Future<Output = Result<Output>> + Send + 'static,
{
    {
        let mut run = lock(&op.ctl.run);
        if op.ctl.is_cancelled() {
            *run = RunState::Finished;
            drop(run);
            drop(work);
            finish(op, kind, Err(cancelled_error()), sink);
            return;
        }
        *run = RunState::Running(Arc::new(canceller));
    }
    let rt = op.rt;
    let mut task = Box::pin(async move {
        let outcome = match CatchUnwind(Box::pin(work)).await {
            Ok(outcome) => outcome,
            Err(p) => Err(panic_error(&*p)),
        };
        *lock(&op.ctl.run) = RunState::Finished;
        finish(op, kind, outcome, sink);
    });
    // The first step on the calling thread: the request goes out now
    // instead of after a worker has woken up for it. The task polls again
    // when spawned, registering its own waker wherever this poll waited.
    let first = {
        let _runtime = rt.enter();
        let waker = crate::backend::postgres::net::noop_waker();
        task.as_mut().poll(&mut Context::from_waker(&waker))
    };
    if first.is_pending() {
        rt.spawn(task);
    }
}

/// Starts an asynchronous acquire: waits (without a thread) at most
/// `timeout` (`None`: the pool's acquire timeout) for a connection, the
/// same acquire as a blocking one (`crate::pool::Acquire`) driven by a task.
///
/// An idle connection that needs no round trip to check is taken on the
/// calling thread and completed at once (a queue sink gets it before this
/// returns); otherwise a runtime task goes on with the same acquire.
pub fn start_acquire(op: Op, pool: Arc<Pool>, timeout: Option<Duration>, sink: Sink) {
    let mut acquiring = pool.start_acquire(timeout);
    match first_step(&pool, &mut acquiring) {
        FirstStep::Done(outcome) => {
            let outcome = outcome.and_then(|c| accept(&op.ctl, &mut acquiring, c));
            finish(op, OpKind::Acquire, outcome.map(Output::Conn), sink);
        }
        FirstStep::Continue(first) => continue_acquire(op, pool, acquiring, first, sink),
    }
}

/// What [`acquire_now_or_start`] did.
#[allow(clippy::large_enum_variant)] // returned once, moved at once
pub enum AcquiredNow {
    /// A connection taken on the calling thread: no operation started.
    Conn(Checkout),
    /// The acquire goes on as an operation (`start` was called).
    Started,
}

/// An acquire that completes on the calling thread when it can (an idle
/// connection, no waiter ahead, no round trip to check it): no operation,
/// no completion. Otherwise `start` registers an operation and the acquire
/// goes on as [`start_acquire`]'s does, with what this step found.
pub fn acquire_now_or_start(
    pool: Arc<Pool>,
    timeout: Option<Duration>,
    start: impl FnOnce() -> Result<(Op, Sink)>,
) -> Result<AcquiredNow> {
    let mut acquiring = pool.start_acquire(timeout);
    match first_step(&pool, &mut acquiring) {
        FirstStep::Done(outcome) => {
            let checkout = outcome?;
            Ok(AcquiredNow::Conn(
                acquiring.accept(checkout, || "async acquire".to_owned()),
            ))
        }
        FirstStep::Continue(first) => {
            // (A failure drops `first`: dropping an unchecked checkout gives
            // it back to the pool; this thread may block for that.)
            let (op, sink) = start()?;
            continue_acquire(op, pool, acquiring, first, sink);
            Ok(AcquiredNow::Started)
        }
    }
}

/// What an acquire's calling thread could do.
enum FirstStep {
    /// Done: a checked connection (not yet accepted), or the error.
    Done(Result<Checkout>),
    /// A task goes on: to wait, or to check this connection with a round
    /// trip.
    Continue(Option<Checkout>),
}

/// The part of an acquire done on the calling thread: an idle connection
/// (the pool hands idle ones to queued waiters first, so none is taken
/// ahead of them) checked when that needs no round trip.
fn first_step(pool: &Arc<Pool>, acquiring: &mut Acquiring) -> FirstStep {
    catch_unwind(AssertUnwindSafe(|| {
        let mut checkout = match acquiring.poll(None) {
            Ok(Some(checkout)) => checkout,
            Ok(None) => return FirstStep::Continue(None),
            Err(e) => return FirstStep::Done(Err(e)),
        };
        if pool.check_blocks(&checkout) {
            return FirstStep::Continue(Some(checkout));
        }
        if !pool.check(&mut checkout, &mut || acquiring.deadline()) {
            // Failed its check (dropping a SQLite connection here is
            // fine): the task tries again.
            return FirstStep::Continue(None);
        }
        FirstStep::Done(Ok(checkout))
    }))
    .unwrap_or_else(|p| FirstStep::Done(Err(panic_error(&*p))))
}

/// The rest of an acquire, as a runtime task.
fn continue_acquire(
    op: Op,
    pool: Arc<Pool>,
    acquiring: Acquiring,
    first: Option<Checkout>,
    sink: Sink,
) {
    let rt = op.rt;
    rt.spawn(async move {
        let acquiring = acquire(&op.ctl, &pool, acquiring, first);
        let outcome = match CatchUnwind(Box::pin(acquiring)).await {
            Ok(outcome) => outcome.map(Output::Conn),
            Err(p) => Err(panic_error(&*p)),
        };
        finish(op, OpKind::Acquire, outcome, sink);
    });
}

/// Ends an operation: unregisters it, then delivers its completion (on a
/// blocking thread when the sink runs user code).
fn finish(op: Op, kind: OpKind, outcome: Result<Output>, sink: Sink) {
    let op_id = op.id();
    drop(op);
    let completion = Completion {
        op_id,
        kind,
        outcome,
    };
    if sink.runs_user_code {
        // Never on the starting thread, never on a worker.
        blocking::submit_light(move || sink.deliver(completion));
    } else {
        sink.deliver(completion);
    }
}

/// The last step of a successful acquire: a cancel that came in time gives
/// the connection back; otherwise it is recorded as borrowed.
fn accept(ctl: &OpCtl, acquiring: &mut Acquiring, checkout: Checkout) -> Result<Checkout> {
    if ctl.is_cancelled() {
        dispose(checkout);
        return Err(cancelled_error());
    }
    Ok(acquiring.accept(checkout, || format!("async acquire #{}", ctl.id)))
}

/// Polls a future inside `catch_unwind`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

type Acquiring = crate::pool::Acquire<Manager>;

/// The task's part of an acquire: wait (parked on the pool's FIFO queue,
/// no thread), check (on a blocking thread when that takes a round trip),
/// accept; a connection that fails its check is discarded and the acquire
/// goes on within the caller's deadline.
async fn acquire(
    ctl: &OpCtl,
    pool: &Arc<Pool>,
    mut acquiring: Acquiring,
    mut first: Option<Checkout>,
) -> Result<Checkout> {
    loop {
        let mut checkout = match first.take() {
            Some(found) => found,
            None => wait_for_handoff(ctl, &mut acquiring).await?,
        };
        let deadline = acquiring.deadline();
        let checked = if pool.check_blocks(&checkout) {
            let p = pool.clone();
            // A connection that fails is dropped there, where closing it
            // may block.
            blocking::run_async(move || {
                let mut checkout = checkout;
                p.check(&mut checkout, &mut || deadline).then_some(checkout)
            })
            .await
            .ok_or_else(|| Error::new(Status::Panic, "internal panic in the checkout check"))?
        } else if pool.check(&mut checkout, &mut || deadline) {
            Some(checkout)
        } else {
            dispose(checkout);
            None
        };
        if let Some(checkout) = checked {
            return accept(ctl, &mut acquiring, checkout);
        }
    }
}

/// Waits for the acquire's next connection: an idle one, a handoff, or
/// the end (cancel, timeout, closed pool). Dropping the acquire withdraws
/// its waiter, so nothing leaks.
async fn wait_for_handoff(ctl: &OpCtl, acquiring: &mut Acquiring) -> Result<Checkout> {
    if ctl.is_cancelled() {
        return Err(cancelled_error());
    }
    let mut sleep = acquiring
        .deadline()
        .map(|d| Box::pin(tokio::time::sleep_until(d.into())));
    let mut cancelled = std::pin::pin!(ctl.notify.notified());
    std::future::poll_fn(move |cx| {
        if cancelled.as_mut().poll(cx).is_ready() || ctl.is_cancelled() {
            return Poll::Ready(Err(cancelled_error()));
        }
        match acquiring.poll(Some(cx.waker())) {
            Ok(Some(checkout)) => return Poll::Ready(Ok(checkout)),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
        // The timer only wakes the task; `poll` itself notices the
        // deadline (a timer that fires a hair early is set again).
        if let Some(sleep) = sleep.as_mut() {
            while sleep.as_mut().poll(cx).is_ready() {
                let again = Instant::now() + Duration::from_millis(1);
                sleep.as_mut().reset(again.into());
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ids_are_refused_and_finished_ones_accepted() {
        assert_eq!(cancel(0).unwrap_err().status, Status::InvalidArgument);
        assert_eq!(
            cancel(u64::MAX).unwrap_err().status,
            Status::InvalidArgument
        );
        let op = Op::new().unwrap();
        let id = op.id();
        assert!(cancel(id).is_ok());
        assert!(op.is_cancelled());
        drop(op);
        assert!(cancel(id).is_ok(), "a finished operation");
    }
}
