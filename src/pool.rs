//! The connection pool.
//!
//! Connections come from [`Manager`], which implements r2d2's
//! `ManageConnection` contract (connect / validate / has_broken). The pool
//! engine itself is ours, because r2d2 cannot resize at run time, cap its
//! waiters, wake waiters on close, keep `min_size` *total* connections,
//! reap idle connections faster than every 30 s, or hand a connection to an
//! asynchronous waiter without a thread. Waiters queue FIFO and released
//! connections are handed to the first waiter directly, so a blocking thread
//! and an async task wait the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use r2d2::ManageConnection;

use crate::backend::{Conn, Manager};
use crate::config::{Recycling, Settings, Target};
use crate::error::{Error, Result, Status};
use crate::log::{self, Level};

/// Monotonic counters, shared with the connection manager.
#[derive(Default)]
pub struct Counters {
    pub created: AtomicU64,
    pub closed: AtomicU64,
    pub broken: AtomicU64,
    pub acquires: AtomicU64,
    pub timeouts: AtomicU64,
    pub refused: AtomicU64,
    pub wait_total_us: AtomicU64,
    pub wait_max_us: AtomicU64,
    pub leaks: AtomicU64,
    pub connect_errors: AtomicU64,
}

impl Counters {
    pub fn on_open(&self, id: u64, backend: &str) {
        self.created.fetch_add(1, Ordering::Relaxed);
        log::emit(
            Level::Debug,
            "sqlpool::pool",
            &format!("opened {backend} connection #{id}"),
        );
    }

    pub fn on_connect_error(&self, e: &Error) {
        self.connect_errors.fetch_add(1, Ordering::Relaxed);
        log::emit(
            Level::Warn,
            "sqlpool::pool",
            &format!("connection attempt failed: {e}"),
        );
    }

    fn on_wait(&self, waited: Duration) {
        let us = waited.as_micros() as u64;
        self.wait_total_us.fetch_add(us, Ordering::Relaxed);
        self.wait_max_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// Pool statistics, filled by `sqlpool_pool_stats`. Fields are only ever
/// appended; pass `sizeof(sqlpool_stats)` so an older program keeps
/// working with a newer library.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Open connections (idle + in use).
    pub total: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Callers waiting for a connection right now.
    pub waiting: u32,
    /// Connections being opened right now.
    pub pending: u32,
    pub min_size: u32,
    pub max_size: u32,
    pub _reserved: u32,
    /// Connections opened since the pool started.
    pub created: u64,
    /// Connections closed since the pool started (any reason).
    pub closed: u64,
    /// Connections discarded because they were broken.
    pub broken: u64,
    /// Successful acquires.
    pub acquires: u64,
    /// Acquires that timed out.
    pub acquire_timeouts: u64,
    /// Acquires refused at once because `max_waiting` callers were waiting.
    pub acquires_refused: u64,
    /// Total and longest time callers waited in acquire, in microseconds.
    pub wait_total_us: u64,
    pub wait_max_us: u64,
    /// Connections reported as possibly leaked (held past the threshold).
    pub leaks_reported: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
}

struct IdleConn {
    /// Boxed: connections are large and move through the pool often.
    conn: Box<Conn>,
    since: Instant,
    generation: u64,
}

// Moved once per waiter; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Handoff {
    Conn(IdleConn),
    Failed(Error),
}

/// One caller waiting for a connection: a blocking thread (condvar) or an
/// async task (waker).
pub struct Waiter {
    slot: Mutex<WaitSlot>,
    cond: Condvar,
}

#[derive(Default)]
struct WaitSlot {
    handoff: Option<Handoff>,
    waker: Option<Waker>,
}

impl Waiter {
    fn deliver(&self, handoff: Handoff) {
        let mut slot = lock(&self.slot);
        slot.handoff = Some(handoff);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
        drop(slot);
        self.cond.notify_one();
    }
}

struct CheckoutInfo {
    since: Instant,
    thread: String,
    reported: bool,
}

struct State {
    settings: Settings,
    idle: Vec<IdleConn>,
    /// Open connections plus those being opened.
    total: u32,
    pending: u32,
    in_use: u32,
    waiters: VecDeque<Arc<Waiter>>,
    closed: bool,
    /// Bumped by `drain`: connections of an older generation are replaced.
    generation: u64,
    last_error: Option<Error>,
    backoff: Duration,
    next_attempt: Instant,
    checked_out: HashMap<u64, CheckoutInfo>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the maintenance thread early (close, resize).
    maintenance: Condvar,
    manager: Manager,
    counters: Arc<Counters>,
    name: String,
    /// Fixed at open (only sizes change at run time), so the hot path reads
    /// them without the state lock.
    recycling: Recycling,
    tracks_leaks: bool,
}

/// A pool of connections to one database. Share it freely across threads.
pub struct Pool {
    shared: Arc<Shared>,
}

/// A borrowed connection; dropping it gives it back to the pool.
pub struct Checkout {
    conn: Option<Box<Conn>>,
    generation: u64,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a pool lock must not poison the pool for good.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Pool {
    /// Opens a pool. Unless `settings.lazy`, one connection is made first so
    /// an unreachable database or bad credentials fail here, with the
    /// database's own error.
    pub fn open(target: Target, settings: Settings) -> Result<Pool> {
        let name = target.display_name();
        let counters = Arc::new(Counters::default());
        let manager = Manager::new(target, settings.clone(), counters.clone());
        let first = if settings.lazy {
            None
        } else {
            Some(manager.connect()?)
        };
        let shared = Arc::new(Shared {
            recycling: settings.recycling,
            tracks_leaks: !settings.leak_threshold.is_zero(),
            state: Mutex::new(State {
                idle: Vec::with_capacity(settings.max_size as usize),
                total: 0,
                pending: 0,
                in_use: 0,
                waiters: VecDeque::new(),
                closed: false,
                generation: 0,
                last_error: None,
                backoff: MIN_BACKOFF,
                next_attempt: Instant::now(),
                checked_out: HashMap::new(),
                settings,
            }),
            maintenance: Condvar::new(),
            manager,
            counters,
            name,
        });
        {
            let mut st = lock(&shared.state);
            if let Some(conn) = first {
                st.total = 1;
                st.idle.push(IdleConn {
                    conn: Box::new(conn),
                    since: Instant::now(),
                    generation: 0,
                });
            }
            // Open the rest of min_size in the background.
            let missing = st.settings.min_size.saturating_sub(st.total);
            for _ in 0..missing {
                spawn_connector(&shared, &mut st);
            }
        }
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("sqlpool-maint".into())
            .spawn(move || maintenance_loop(weak))
            .map_err(|e| {
                Error::new(
                    Status::Internal,
                    format!("cannot start the pool's maintenance thread: {e}"),
                )
            })?;
        log::emit(
            Level::Info,
            "sqlpool::pool",
            &format!("pool started for {}", shared.name),
        );
        Ok(Pool { shared })
    }

    pub fn settings(&self) -> Settings {
        lock(&self.shared.state).settings.clone()
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }

    /// Borrows a connection, waiting at most `timeout` (`None`: the pool's
    /// acquire timeout).
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<Checkout> {
        let started = Instant::now();
        let waiter = match self.try_acquire_or_enqueue()? {
            Ok(checkout) => return self.finish_acquire(checkout, started),
            Err(waiter) => waiter,
        };
        let timeout = timeout.unwrap_or_else(|| lock(&self.shared.state).settings.acquire_timeout);
        let deadline = started + timeout;
        let mut slot = lock(&waiter.slot);
        loop {
            if let Some(handoff) = slot.handoff.take() {
                drop(slot);
                return match handoff {
                    Handoff::Conn(idle) => {
                        let checkout = self.checkout_from(idle);
                        self.finish_acquire(checkout, started)
                    }
                    Handoff::Failed(e) => Err(e),
                };
            }
            let now = Instant::now();
            if now >= deadline {
                drop(slot);
                return self.give_up(&waiter, timeout, started);
            }
            slot = self.shared.cond_wait(&waiter.cond, slot, deadline - now);
        }
    }

    /// Takes an idle connection if there is one; otherwise queues a waiter
    /// (starting a new connection when there is room).
    fn try_acquire_or_enqueue(&self) -> Result<std::result::Result<Checkout, Arc<Waiter>>> {
        let shared = &self.shared;
        let mut st = lock(&shared.state);
        if st.closed {
            return Err(closed_error());
        }
        if let Some(idle) = st.idle.pop() {
            st.in_use += 1;
            drop(st);
            return Ok(Ok(self.checkout_from(idle)));
        }
        let max_waiting = st.settings.max_waiting;
        if max_waiting > 0 && st.waiters.len() as u32 >= max_waiting {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                Status::PoolExhausted,
                format!(
                    "{} callers are already waiting for a connection (max_waiting = {max_waiting})",
                    st.waiters.len()
                ),
            ));
        }
        let waiter = Arc::new(Waiter {
            slot: Mutex::new(WaitSlot::default()),
            cond: Condvar::new(),
        });
        st.waiters.push_back(waiter.clone());
        // Grow at once to what the waiters need, up to max_size.
        while st.pending < st.waiters.len() as u32 && st.total < st.settings.max_size {
            spawn_connector(shared, &mut st);
        }
        Ok(Err(waiter))
    }

    /// Registers a waiter for an async caller; `poll_waiter` completes it.
    pub fn enqueue(&self) -> Result<std::result::Result<Checkout, Arc<Waiter>>> {
        self.try_acquire_or_enqueue()
    }

    /// Async side of waiting: the checkout once handed over, or registers
    /// the waker.
    pub fn poll_waiter(&self, waiter: &Arc<Waiter>, waker: &Waker) -> Option<Result<Checkout>> {
        let mut slot = lock(&waiter.slot);
        match slot.handoff.take() {
            Some(Handoff::Conn(idle)) => {
                drop(slot);
                Some(Ok(self.checkout_from(idle)))
            }
            Some(Handoff::Failed(e)) => Some(Err(e)),
            None => {
                slot.waker = Some(waker.clone());
                None
            }
        }
    }

    /// Withdraws a waiter (timeout or cancellation). A connection handed
    /// over in the meantime goes back to the pool: nothing leaks.
    pub fn withdraw(&self, waiter: &Arc<Waiter>) {
        let mut st = lock(&self.shared.state);
        st.waiters.retain(|w| !Arc::ptr_eq(w, waiter));
        drop(st);
        let handoff = lock(&waiter.slot).handoff.take();
        if let Some(Handoff::Conn(idle)) = handoff {
            drop(self.checkout_from(idle));
        }
    }

    fn give_up(
        &self,
        waiter: &Arc<Waiter>,
        timeout: Duration,
        started: Instant,
    ) -> Result<Checkout> {
        lock(&self.shared.state)
            .waiters
            .retain(|w| !Arc::ptr_eq(w, waiter));
        // Handed a connection just as the deadline passed: take it.
        if let Some(handoff) = lock(&waiter.slot).handoff.take() {
            return match handoff {
                Handoff::Conn(idle) => {
                    let checkout = self.checkout_from(idle);
                    self.finish_acquire(checkout, started)
                }
                Handoff::Failed(e) => Err(e),
            };
        }
        Err(self.timeout_error(timeout))
    }

    fn checkout_from(&self, idle: IdleConn) -> Checkout {
        Checkout {
            conn: Some(idle.conn),
            generation: idle.generation,
            shared: self.shared.clone(),
        }
    }

    /// Verifies the connection per the recycling method and records the
    /// checkout; a dead connection is replaced and the acquire retried.
    fn finish_acquire(&self, mut checkout: Checkout, started: Instant) -> Result<Checkout> {
        if !self.verify_checkout(&mut checkout) {
            drop(checkout);
            let remaining = self.acquire_timeout().saturating_sub(started.elapsed());
            return self.acquire(Some(remaining));
        }
        self.record_acquire(&checkout, started, || {
            let thread = std::thread::current();
            thread
                .name()
                .map_or_else(|| format!("{:?}", thread.id()), str::to_owned)
        });
        Ok(checkout)
    }

    pub fn stats(&self) -> Stats {
        let st = lock(&self.shared.state);
        let c = &self.shared.counters;
        Stats {
            total: st.total - st.pending,
            idle: st.idle.len() as u32,
            in_use: st.in_use,
            waiting: st.waiters.len() as u32,
            pending: st.pending,
            min_size: st.settings.min_size,
            max_size: st.settings.max_size,
            _reserved: 0,
            created: c.created.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            broken: c.broken.load(Ordering::Relaxed),
            acquires: c.acquires.load(Ordering::Relaxed),
            acquire_timeouts: c.timeouts.load(Ordering::Relaxed),
            acquires_refused: c.refused.load(Ordering::Relaxed),
            wait_total_us: c.wait_total_us.load(Ordering::Relaxed),
            wait_max_us: c.wait_max_us.load(Ordering::Relaxed),
            leaks_reported: c.leaks.load(Ordering::Relaxed),
            connect_errors: c.connect_errors.load(Ordering::Relaxed),
        }
    }

    /// Changes the sizes at run time. Surplus idle connections close now;
    /// surplus busy ones close when released.
    pub fn resize(&self, min_size: u32, max_size: u32) -> Result<()> {
        if max_size == 0 || min_size > max_size {
            return Err(Error::new(
                Status::InvalidOption,
                format!("invalid sizes: min_size {min_size}, max_size {max_size} (need 0 <= min_size <= max_size, max_size >= 1)"),
            ));
        }
        let mut st = lock(&self.shared.state);
        if st.closed {
            return Err(closed_error());
        }
        st.settings.min_size = min_size;
        st.settings.max_size = max_size;
        let mut surplus = Vec::new();
        while st.total > max_size && !st.idle.is_empty() {
            surplus.push(st.idle.remove(0));
            st.total -= 1;
        }
        while st.pending < st.waiters.len() as u32 && st.total < max_size {
            spawn_connector(&self.shared, &mut st);
        }
        drop(st);
        self.shared.maintenance.notify_all();
        self.shared.close_conns(surplus, "pool resized");
        Ok(())
    }

    /// Replaces every connection (after a failover or a password change)
    /// without failing callers: idle ones now, busy ones when released.
    pub fn drain(&self) -> Result<()> {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return Err(closed_error());
        }
        st.generation += 1;
        let old: Vec<IdleConn> = st.idle.drain(..).collect();
        st.total -= old.len() as u32;
        let want = st.settings.min_size.max(st.waiters.len() as u32);
        while st.total < want && st.total < st.settings.max_size {
            spawn_connector(&self.shared, &mut st);
        }
        drop(st);
        self.shared.close_conns(old, "pool drained");
        Ok(())
    }

    /// Closes the pool: waiters fail with `PoolClosed`, idle connections
    /// close now, busy ones when released. Closing twice is harmless.
    pub fn close(&self) {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return;
        }
        st.closed = true;
        let idle: Vec<IdleConn> = st.idle.drain(..).collect();
        st.total -= idle.len() as u32;
        let waiters: Vec<Arc<Waiter>> = st.waiters.drain(..).collect();
        drop(st);
        for w in waiters {
            w.deliver(Handoff::Failed(closed_error()));
        }
        self.shared.maintenance.notify_all();
        self.shared.close_conns(idle, "pool closed");
        log::emit(
            Level::Info,
            "sqlpool::pool",
            &format!("pool stopped for {}", self.shared.name),
        );
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

/// Support for asynchronous acquires (`crate::asyncops`): a task queues a
/// waiter with [`Pool::enqueue`], awaits it with [`Pool::poll_waiter`], and
/// finishes the acquire with these instead of a thread blocking in
/// [`Pool::acquire`]. Nothing here drops a connection: dropping one may talk
/// to the database, which an async worker thread must not do, so
/// connections come back to the caller to drop where blocking is allowed.
impl Pool {
    /// The default acquire timeout (the `acquire_timeout` option).
    pub fn acquire_timeout(&self) -> Duration {
        lock(&self.shared.state).settings.acquire_timeout
    }

    /// The checkout check the pool applies (the `recycling` option).
    pub fn recycling(&self) -> Recycling {
        self.shared.recycling
    }

    /// Withdraws a waiter (timeout or cancellation) like [`Pool::withdraw`],
    /// but returns what was handed over in the meantime instead of giving it
    /// back: a connection (the caller takes it, or drops it where blocking is
    /// allowed, which gives it back) or a failure.
    pub fn withdraw_keep(&self, waiter: &Arc<Waiter>) -> Option<Result<Checkout>> {
        let mut st = lock(&self.shared.state);
        st.waiters.retain(|w| !Arc::ptr_eq(w, waiter));
        drop(st);
        let handoff = lock(&waiter.slot).handoff.take();
        match handoff? {
            Handoff::Conn(idle) => Some(Ok(self.checkout_from(idle))),
            Handoff::Failed(e) => Some(Err(e)),
        }
    }

    /// Counts and logs an acquire that waited `timeout` in vain, and returns
    /// the error a blocking acquire gives (with the last connection error).
    pub fn timeout_error(&self, timeout: Duration) -> Error {
        let last_error = lock(&self.shared.state).last_error.clone();
        self.shared
            .counters
            .timeouts
            .fetch_add(1, Ordering::Relaxed);
        let mut msg = format!(
            "no connection became available within {} ms",
            timeout.as_millis()
        );
        if let Some(e) = &last_error {
            msg.push_str(&format!(" (last connection error: {e})"));
        }
        log::emit(Level::Warn, "sqlpool::pool", &msg);
        Error::new(Status::PoolTimeout, msg)
    }

    /// The checkout check of the recycling method, as a blocking acquire
    /// does it (PostgreSQL: a round trip, so call it where blocking is
    /// allowed). False: the connection failed it and is marked broken; drop
    /// the checkout (where blocking is allowed) and acquire again.
    pub fn verify_checkout(&self, checkout: &mut Checkout) -> bool {
        if self.recycling() == Recycling::Fast {
            return true;
        }
        let conn = checkout.conn();
        if self.shared.manager.is_valid(conn).is_ok() {
            return true;
        }
        conn.broken = true;
        log::emit(
            Level::Info,
            "sqlpool::pool",
            &format!(
                "discarding connection #{}: failed the checkout check",
                conn.id
            ),
        );
        false
    }

    /// Records a successful acquire as a blocking one does: counters, the
    /// time waited since `started`, and leak tracking under the name
    /// `holder` gives.
    pub fn record_acquire(
        &self,
        checkout: &Checkout,
        started: Instant,
        holder: impl FnOnce() -> String,
    ) {
        let counters = &self.shared.counters;
        counters.acquires.fetch_add(1, Ordering::Relaxed);
        counters.on_wait(started.elapsed());
        if self.shared.tracks_leaks {
            let id = checkout.id();
            lock(&self.shared.state).checked_out.insert(
                id,
                CheckoutInfo {
                    since: Instant::now(),
                    thread: holder(),
                    reported: false,
                },
            );
        }
    }
}

fn closed_error() -> Error {
    Error::new(Status::PoolClosed, "the pool is closed")
}

impl Shared {
    fn cond_wait<'a>(
        &self,
        cond: &Condvar,
        guard: MutexGuard<'a, WaitSlot>,
        timeout: Duration,
    ) -> MutexGuard<'a, WaitSlot> {
        cond.wait_timeout(guard, timeout)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0)
    }

    fn close_conns(&self, conns: Vec<IdleConn>, why: &str) {
        if conns.is_empty() {
            return;
        }
        self.counters
            .closed
            .fetch_add(conns.len() as u64, Ordering::Relaxed);
        for c in &conns {
            log::emit(
                Level::Debug,
                "sqlpool::pool",
                &format!("closing connection #{}: {why}", c.conn.id),
            );
        }
        drop(conns);
    }

    /// Returns a connection: to the first waiter, else to the idle stack.
    /// Called with the state locked.
    fn put_back(&self, st: &mut State, conn: Box<Conn>, generation: u64) {
        let idle = IdleConn {
            conn,
            since: Instant::now(),
            generation,
        };
        match st.waiters.pop_front() {
            Some(w) => {
                st.in_use += 1;
                w.deliver(Handoff::Conn(idle));
            }
            None => st.idle.push(idle),
        }
    }
}

/// Opens one connection on a short-lived thread and hands it to a waiter or
/// the idle stack. Called with the state locked; counts it as pending.
fn spawn_connector(shared: &Arc<Shared>, st: &mut State) {
    st.total += 1;
    st.pending += 1;
    let delay = st.next_attempt.saturating_duration_since(Instant::now());
    let weak = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new()
        .name("sqlpool-connect".into())
        .spawn(move || {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let Some(shared) = weak.upgrade() else { return };
            let result = shared.manager.connect().map(Box::new);
            let mut st = lock(&shared.state);
            st.pending -= 1;
            match result {
                Ok(conn) => {
                    st.last_error = None;
                    st.backoff = MIN_BACKOFF;
                    st.next_attempt = Instant::now();
                    if st.closed || st.total > st.settings.max_size {
                        st.total -= 1;
                        drop(st);
                        shared.counters.closed.fetch_add(1, Ordering::Relaxed);
                        drop(conn);
                        return;
                    }
                    let generation = st.generation;
                    shared.put_back(&mut st, conn, generation);
                }
                Err(e) => {
                    st.total -= 1;
                    let next = (st.backoff * 2).min(MAX_BACKOFF);
                    st.next_attempt = Instant::now() + st.backoff;
                    st.backoff = next;
                    if matches!(
                        e.status,
                        Status::AuthError
                            | Status::InvalidOption
                            | Status::InvalidUri
                            | Status::Unsupported
                    ) || matches!(e.sqlstate.as_deref(), Some("3D000"))
                    {
                        // Retrying cannot help: tell the waiters now.
                        let waiters: Vec<Arc<Waiter>> = st.waiters.drain(..).collect();
                        st.last_error = Some(e.clone());
                        drop(st);
                        for w in waiters {
                            w.deliver(Handoff::Failed(e.clone()));
                        }
                        return;
                    }
                    st.last_error = Some(e);
                    // Keep trying (with backoff) while callers wait.
                    if !st.closed
                        && st.pending < st.waiters.len() as u32
                        && st.total < st.settings.max_size
                    {
                        spawn_connector(&shared, &mut st);
                    }
                }
            }
        });
    if spawned.is_err() {
        st.total -= 1;
        st.pending -= 1;
        st.last_error = Some(Error::new(
            Status::Internal,
            "cannot start a connection thread",
        ));
    }
}

impl Checkout {
    pub fn id(&self) -> u64 {
        self.conn.as_ref().map_or(0, |c| c.id)
    }

    pub fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a checkout holds its connection until dropped")
    }

    /// Lends the connection to an asynchronous operation; [`Checkout::restore`]
    /// gives it back. While lent the checkout holds no connection (callers
    /// check [`Checkout::is_lent`] first).
    pub fn lend(&mut self) -> Option<Box<Conn>> {
        self.conn.take()
    }

    pub fn restore(&mut self, conn: Box<Conn>) {
        self.conn = Some(conn);
    }

    pub fn is_lent(&self) -> bool {
        self.conn.is_none()
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let reusable = conn.reset_for_reuse() && !conn.is_expired(Instant::now());
        let shared = &self.shared;
        let mut st = lock(&shared.state);
        st.in_use -= 1;
        if shared.tracks_leaks {
            st.checked_out.remove(&conn.id);
        }
        let keep = reusable
            && !st.closed
            && self.generation == st.generation
            && st.total <= st.settings.max_size;
        if keep {
            shared.put_back(&mut st, conn, self.generation);
            return;
        }
        st.total -= 1;
        if !st.closed {
            while st.pending < st.waiters.len() as u32 && st.total < st.settings.max_size {
                spawn_connector(shared, &mut st);
            }
        }
        drop(st);
        if conn.broken {
            shared.counters.broken.fetch_add(1, Ordering::Relaxed);
        }
        let why = if conn.broken {
            "broken"
        } else if reusable {
            "retired (closed, drained or resized pool)"
        } else {
            "expired"
        };
        shared.counters.closed.fetch_add(1, Ordering::Relaxed);
        log::emit(
            Level::Info,
            "sqlpool::pool",
            &format!("discarding connection #{}: {why}", conn.id),
        );
        shared.maintenance.notify_all();
        drop(conn);
    }
}

/// Keeps min_size, closes idle and expired connections, runs the health
/// check and reports leaks. Exits when the pool is closed or dropped.
fn maintenance_loop(weak: Weak<Shared>) {
    let mut last_check = Instant::now();
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let mut st = lock(&shared.state);
        if st.closed {
            return;
        }
        let now = Instant::now();
        let s = st.settings.clone();
        // Leaks.
        if !s.leak_threshold.is_zero() {
            for (id, info) in st.checked_out.iter_mut() {
                if !info.reported && now.duration_since(info.since) >= s.leak_threshold {
                    info.reported = true;
                    shared.counters.leaks.fetch_add(1, Ordering::Relaxed);
                    log::emit(
                        Level::Warn,
                        "sqlpool::pool",
                        &format!(
                            "possible connection leak: connection #{id} has been held by thread {} for more than {} ms",
                            info.thread,
                            s.leak_threshold.as_millis()
                        ),
                    );
                }
            }
        }
        // Idle timeout (above min_size) and max lifetime.
        let mut to_close = Vec::new();
        let mut i = 0;
        while i < st.idle.len() {
            let c = &st.idle[i];
            let idle_too_long = !s.idle_timeout.is_zero()
                && now.duration_since(c.since) >= s.idle_timeout
                && st.total > s.min_size;
            if idle_too_long || c.conn.is_expired(now) {
                to_close.push(st.idle.remove(i));
                st.total -= 1;
            } else {
                i += 1;
            }
        }
        // Health check: take the idle connections out, verify them unlocked.
        let check_due =
            !s.check_interval.is_zero() && now.duration_since(last_check) >= s.check_interval;
        let to_check: Vec<IdleConn> = if check_due {
            last_check = now;
            st.in_use += st.idle.len() as u32;
            st.idle.drain(..).collect()
        } else {
            Vec::new()
        };
        // Keep min_size (connectors back off while the server is down).
        while st.total < s.min_size && now >= st.next_attempt && st.pending == 0 {
            spawn_connector(&shared, &mut st);
            if st.pending == 0 {
                break;
            }
        }
        drop(st);
        shared.close_conns(to_close, "idle timeout or max lifetime");
        for mut idle in to_check {
            let ok = idle.conn.ping(None).is_ok();
            let mut st = lock(&shared.state);
            st.in_use -= 1;
            if ok && !st.closed && idle.generation == st.generation {
                shared.put_back(&mut st, idle.conn, idle.generation);
            } else {
                st.total -= 1;
                drop(st);
                if !ok {
                    shared.counters.broken.fetch_add(1, Ordering::Relaxed);
                    log::emit(
                        Level::Warn,
                        "sqlpool::pool",
                        &format!(
                            "health check failed; discarding connection #{}",
                            idle.conn.id
                        ),
                    );
                }
                shared.close_conns(vec![idle], "health check");
            }
        }
        // Sleep until the next thing to do, or until woken.
        let tick = [
            s.check_interval,
            s.leak_threshold / 4,
            s.idle_timeout / 4,
            Duration::from_secs(1),
        ]
        .into_iter()
        .filter(|d| !d.is_zero())
        .min()
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(10));
        let st = lock(&shared.state);
        let _ = shared.maintenance.wait_timeout(st, tick);
    }
}
