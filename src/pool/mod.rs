//! The connection pool engine.
//!
//! The engine drives any backend through the [`Manage`] trait (connect,
//! check, recycle), so it is unit-tested against a fake (`tests.rs`) and
//! never imports a database backend. Waiters queue FIFO and released
//! connections are handed to the first waiter directly. One acquire state
//! machine ([`Acquire`]) serves blocking threads and async tasks: they
//! differ only in how they wait (a condvar or a waker) and where the
//! checkout check runs.
//!
//! A thread that gives a connection back while nobody waits parks it in a
//! spot of its own ([`ParkingSpot`]) and takes it back from there, and a
//! checkout refers to the pool through its thread's [`Lane`]: two threads
//! that each borrow and return a connection write no cache line the other
//! uses (no pool lock, no shared reference count). Parked connections
//! count as idle; a thread that finds no idle one steals a parked one, and
//! a caller that queues takes every parked one to the queue first (see
//! [`Shared::park`] for why none is missed).

mod manage;
mod stats;
#[cfg(test)]
mod tests;

pub use manage::Manage;
pub use stats::{Counters, Stats};

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::config::Settings;
use crate::error::{Error, Result, Status};
use crate::log::{self, Level};

/// A connection with what the pool knows about it.
struct Pooled<M: Manage> {
    /// Boxed: connections are large and move through the pool often.
    conn: Box<M::Conn>,
    id: u64,
    /// Max lifetime minus a per-connection random amount.
    expires_at: Option<Instant>,
    generation: u64,
}

impl<M: Manage> Pooled<M> {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

struct Idle<M: Manage> {
    pooled: Pooled<M>,
    /// When it was last given back: the idle clock. Only a caller's use
    /// resets it, never the health check.
    since: Instant,
}

/// Threads park in spot `thread_number % PARKING_SPOTS` and use the lane
/// of the same number.
const PARKING_SPOTS: usize = 16;

fn my_spot() -> usize {
    stats::thread_number() % PARKING_SPOTS
}

/// The pool as the checkouts of one spot's threads refer to it: each
/// thread bumps the reference count of its own lane (on a cache line of
/// its own) instead of one count that every thread writes.
#[repr(align(128))]
struct Lane<M: Manage> {
    shared: Arc<Shared<M>>,
}

/// One thread's parking spot (threads whose numbers collide share it), on
/// cache lines of its own.
#[repr(align(128))]
struct ParkingSpot<M: Manage> {
    /// Whether `parked` holds a connection, changed only under its lock:
    /// other threads read it (and take no lock) to find one to steal.
    occupied: AtomicBool,
    parked: Mutex<Option<Idle<M>>>,
}

impl<M: Manage> ParkingSpot<M> {
    /// Empties the spot if it holds a connection.
    fn take(&self) -> Option<Idle<M>> {
        if !self.occupied.load(Ordering::SeqCst) {
            return None;
        }
        let mut parked = lock(&self.parked);
        // Under the lock, as every change to the flag: a thread parking
        // right after must not find its flag cleared.
        self.occupied.store(false, Ordering::SeqCst);
        parked.take()
    }
}

/// What a release reads to decide whether it may park (written under the
/// state lock, read without it), on a line the hot path only reads.
#[repr(align(128))]
struct ParkingRules {
    /// How many callers are queued (`State::waiters`' length): parked
    /// connections would pass them by.
    waiting: AtomicUsize,
    /// The generation a connection must be of to be parked; `NO_PARKING`
    /// while the pool is closed or holds more than `max_size` (a released
    /// connection may have to close).
    parkable: AtomicU64,
}

const NO_PARKING: u64 = u64::MAX;

enum Handoff<M: Manage> {
    Conn(Idle<M>),
    Failed(Error),
}

/// One caller waiting for a connection: a blocking thread (condvar) or an
/// async task (waker).
struct Waiter<M: Manage> {
    slot: Mutex<WaitSlot<M>>,
    cond: Condvar,
}

struct WaitSlot<M: Manage> {
    handoff: Option<Handoff<M>>,
    waker: Option<Waker>,
}

impl<M: Manage> Waiter<M> {
    fn deliver(&self, handoff: Handoff<M>) {
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
    holder: String,
    reported: bool,
}

/// In declaration order (`repr(C)`): what every acquire and release that
/// does not use a parking spot writes comes first, on the cache line of the lock word (see [`Shared`]),
/// so the two threads that pass the lock back and forth pass one line, not
/// several.
#[repr(C)]
struct State<M: Manage> {
    /// Least recently used at the bottom, taken from the top. (Parked
    /// connections are idle too; those held by callers are the open ones
    /// counted nowhere else.)
    idle: Vec<Idle<M>>,
    /// Open connections plus those being opened.
    total: u32,
    pending: u32,
    /// Out for the health check.
    checking: u32,
    /// Handed to a waiter that has not taken it yet.
    handing: u32,
    closed: bool,
    /// Bumped by `drain`: connections of an older generation are replaced.
    generation: u64,
    waiters: VecDeque<Arc<Waiter<M>>>,
    settings: Settings,
    last_error: Option<Error>,
    /// The last connection attempt failed (logged once, until one succeeds).
    down: bool,
    backoff: Duration,
    next_attempt: Instant,
    next_check: Instant,
    checked_out: HashMap<u64, CheckoutInfo>,
}

/// `repr(C)`, the state first: its lock word and the start of [`State`]
/// open a cache line (the counters' stripes align it to 128 bytes).
#[repr(C)]
struct Shared<M: Manage> {
    state: Mutex<State<M>>,
    /// Wakes the maintenance thread early (close, resize).
    maintenance: Condvar,
    manager: M,
    counters: Counters,
    next_id: AtomicU64,
    name: String,
    /// Fixed at open, so the hot path reads it without the state lock.
    tracks_leaks: bool,
    max_lifetime: Duration,
    rules: ParkingRules,
    spots: [ParkingSpot<M>; PARKING_SPOTS],
}

/// A pool of connections. Share it freely across threads.
pub struct Pool<M: Manage> {
    shared: Arc<Shared<M>>,
    /// One per parking spot.
    lanes: Vec<Arc<Lane<M>>>,
}

/// A borrowed connection; dropping it gives it back to the pool.
pub struct Checkout<M: Manage> {
    pooled: Option<Pooled<M>>,
    lane: Arc<Lane<M>>,
    /// Failed the checkout check: close it when dropped.
    discard: bool,
    /// The thread that took it ([`stats::thread_number`], read once per
    /// acquire): its counter stripe.
    thread: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a pool lock must not poison the pool for good.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);

impl<M: Manage> Pool<M> {
    /// Opens a pool. Unless `settings.lazy`, one connection is made first so
    /// an unreachable database or bad credentials fail here, with the
    /// database's own error; the rest of `min_size` opens at once in the
    /// background.
    pub fn open(manager: M, settings: Settings) -> Result<Pool<M>> {
        let pool = Self::open_manual(manager, settings)?;
        let weak = Arc::downgrade(&pool.shared);
        std::thread::Builder::new()
            .name("sqlpool-maint".into())
            .spawn(move || maintenance_loop(weak))
            .map_err(|e| {
                Error::new(
                    Status::Internal,
                    format!("cannot start the pool's maintenance thread: {e}"),
                )
            })?;
        Ok(pool)
    }

    /// [`Pool::open`] without the maintenance thread: maintenance runs
    /// only when [`Pool::maintain`] is called (tests drive the clock).
    pub(crate) fn open_manual(manager: M, settings: Settings) -> Result<Pool<M>> {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            tracks_leaks: !settings.leak_threshold.is_zero(),
            max_lifetime: settings.max_lifetime,
            name: manager.describe(),
            state: Mutex::new(State {
                idle: Vec::new(),
                total: 0,
                pending: 0,
                checking: 0,
                handing: 0,
                waiters: VecDeque::new(),
                closed: false,
                generation: 0,
                last_error: None,
                down: false,
                backoff: MIN_BACKOFF,
                next_attempt: now,
                next_check: now + settings.check_interval,
                checked_out: HashMap::new(),
                settings,
            }),
            maintenance: Condvar::new(),
            manager,
            counters: Counters::default(),
            next_id: AtomicU64::new(1),
            rules: ParkingRules {
                waiting: AtomicUsize::new(0),
                parkable: AtomicU64::new(0),
            },
            spots: std::array::from_fn(|_| ParkingSpot {
                occupied: AtomicBool::new(false),
                parked: Mutex::new(None),
            }),
        });
        let lazy = lock(&shared.state).settings.lazy;
        let first = if lazy { None } else { Some(shared.connect()?) };
        {
            let mut st = lock(&shared.state);
            if let Some(pooled) = first {
                st.total = 1;
                st.idle.push(Idle {
                    pooled,
                    since: Instant::now(),
                });
            }
            refill(&shared, &mut st);
            shared.update_parking(&st);
        }
        log::emit(
            Level::Info,
            "sqlpool::pool",
            &format!("pool started for {}", shared.name),
        );
        let lanes = (0..PARKING_SPOTS)
            .map(|_| {
                Arc::new(Lane {
                    shared: shared.clone(),
                })
            })
            .collect();
        Ok(Pool { shared, lanes })
    }

    /// The calling thread's lane.
    fn lane(&self) -> &Arc<Lane<M>> {
        &self.lanes[my_spot()]
    }

    pub fn settings(&self) -> Settings {
        lock(&self.shared.state).settings.clone()
    }

    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }

    /// Borrows a connection, waiting at most `timeout` (`None`: the pool's
    /// acquire timeout) in all: retries after a failed checkout check keep
    /// the same deadline.
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<Checkout<M>> {
        // The common case first: an idle connection, taken at once (no
        // waiter, no clock read unless the check does I/O).
        let mut started = None;
        if let Some(checkout) = self.take_idle()? {
            if let Some(checkout) = checkout.checked(timeout, &mut started) {
                return Ok(checkout);
            }
        }
        self.acquire_waiting(timeout, started)
    }

    /// The first step of [`Pool::acquire`], which never waits: an idle
    /// connection if there is one now, not yet checked (finish with
    /// [`Checkout::checked`]; else go on with [`Pool::acquire_waiting`]).
    pub fn take_idle(&self) -> Result<Option<Checkout<M>>> {
        self.shared.take_idle(self.lane())
    }

    /// The rest of [`Pool::acquire`]: queues for a connection. `started`:
    /// when the caller's clock started (a failed check of an idle one).
    pub fn acquire_waiting(
        &self,
        timeout: Option<Duration>,
        started: Option<Instant>,
    ) -> Result<Checkout<M>> {
        let mut acquire = self.start_acquire(timeout);
        // A retry after a failed check keeps the caller's deadline.
        acquire.started = started;
        loop {
            let Some(mut checkout) = acquire.poll(None)? else {
                acquire.wait_blocking();
                continue;
            };
            if self.check(&mut checkout, &mut || acquire.deadline()) {
                return Ok(acquire.accept(checkout, thread_name));
            }
            drop(checkout);
        }
    }

    /// Starts an acquire, to be driven by a blocking thread or an async
    /// task (see [`Acquire`]).
    pub fn start_acquire(&self, timeout: Option<Duration>) -> Acquire<M> {
        Acquire {
            lane: self.lane().clone(),
            started: None,
            timeout,
            waiter: None,
        }
    }

    /// The checkout check, bounded by what `deadline` returns, asked only
    /// when the check does I/O (may block: on an async path, run it where
    /// blocking is allowed when [`Pool::check_blocks`] says so). False: the
    /// connection failed it and is marked to be discarded; drop the
    /// checkout and poll the acquire again.
    pub fn check(
        &self,
        checkout: &mut Checkout<M>,
        deadline: &mut dyn FnMut() -> Option<Instant>,
    ) -> bool {
        self.shared.check(checkout, deadline)
    }

    /// Whether [`Pool::check`] takes a round trip for this checkout.
    pub fn check_blocks(&self, checkout: &Checkout<M>) -> bool {
        let pooled = checkout.pooled.as_ref().expect("a live checkout");
        self.shared.manager.check_blocks(&pooled.conn)
    }

    pub fn stats(&self) -> Stats {
        let st = lock(&self.shared.state);
        let c = &self.shared.counters;
        let parked = self
            .shared
            .spots
            .iter()
            .filter(|s| s.occupied.load(Ordering::SeqCst))
            .count() as u32;
        let open = st.total - st.pending;
        let idle = st.idle.len() as u32 + parked;
        Stats {
            total: open,
            idle,
            // The rest (a connection moving between a spot and a caller
            // meanwhile can make a snapshot one off).
            in_use: open.saturating_sub(idle + st.checking + st.handing),
            waiting: st.waiters.len() as u32,
            pending: st.pending,
            min_size: st.settings.min_size,
            max_size: st.settings.max_size,
            _reserved: 0,
            created: c.created.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            broken: c.broken.load(Ordering::Relaxed),
            acquires: c.acquires.sum(),
            acquire_timeouts: c.timeouts.load(Ordering::Relaxed),
            acquires_refused: c.refused.load(Ordering::Relaxed),
            wait_total_us: c.wait_total_us.load(Ordering::Relaxed),
            wait_max_us: c.wait_max_us.load(Ordering::Relaxed),
            leaks_reported: c.leaks.load(Ordering::Relaxed),
            connect_errors: c.connect_errors.load(Ordering::Relaxed),
        }
    }

    /// Changes the sizes at run time. Surplus idle connections close now,
    /// surplus busy ones when released; a larger `min_size` is filled at
    /// once.
    pub fn resize(&self, min_size: u32, max_size: u32) -> Result<()> {
        crate::config::check_sizes(min_size, max_size)?;
        let mut st = lock(&self.shared.state);
        if st.closed {
            return Err(closed_error());
        }
        st.settings.min_size = min_size;
        st.settings.max_size = max_size;
        // No parking while over the new size, then what is parked joins the
        // idle ones, which close first.
        self.shared.update_parking(&st);
        self.shared.unpark_all(&mut st);
        let mut surplus = Vec::new();
        while st.total > max_size && !st.idle.is_empty() {
            surplus.push(st.idle.remove(0));
            st.total -= 1;
        }
        refill(&self.shared, &mut st);
        self.shared.update_parking(&st);
        drop(st);
        self.shared.maintenance.notify_all();
        self.shared.close_idle(surplus, "pool resized");
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
        self.shared.update_parking(&st);
        self.shared.unpark_all(&mut st);
        let old: Vec<Idle<M>> = st.idle.drain(..).collect();
        st.total -= old.len() as u32;
        refill(&self.shared, &mut st);
        drop(st);
        self.shared.close_idle(old, "pool drained");
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
        self.shared.update_parking(&st);
        self.shared.unpark_all(&mut st);
        let idle: Vec<Idle<M>> = st.idle.drain(..).collect();
        st.total -= idle.len() as u32;
        let waiters: Vec<Arc<Waiter<M>>> = st.waiters.drain(..).collect();
        self.shared.note_waiters(&st);
        drop(st);
        for w in waiters {
            w.deliver(Handoff::Failed(closed_error()));
        }
        self.shared.maintenance.notify_all();
        self.shared.close_idle(idle, "pool closed");
        log::emit(
            Level::Info,
            "sqlpool::pool",
            &format!("pool stopped for {}", self.shared.name),
        );
    }

    /// One maintenance pass as of `now` (the maintenance thread calls it;
    /// tests call it with a clock of their own). Returns how long to sleep
    /// until the next pass.
    #[cfg(test)]
    pub(crate) fn maintain(&self, now: Instant) -> Duration {
        maintain(&self.shared, now)
    }
}

impl<M: Manage> Drop for Pool<M> {
    fn drop(&mut self) {
        self.close();
    }
}

/// One acquire in progress: the steps are the same for a blocking thread
/// ([`Pool::acquire`]) and an async task (`crate::asyncops`).
///
/// Drive it with [`Acquire::poll`] until it yields a checkout, waiting in
/// between ([`Acquire::wait_blocking`], or the waker given to `poll`);
/// check the checkout ([`Pool::check`], bounded by [`Acquire::deadline`]);
/// then [`Acquire::accept`] it, or drop it and poll again: the deadline
/// stays the caller's. Dropping the `Acquire` withdraws its waiter; a
/// connection handed over in the meantime goes back to the pool without
/// any I/O.
pub struct Acquire<M: Manage> {
    /// The acquiring thread's, for the checkout.
    lane: Arc<Lane<M>>,
    /// When the clock started: first asked for when the acquire has to
    /// wait or check with I/O, so an acquire served at once reads no clock
    /// (a clock read costs as much as the rest of a fast acquire).
    started: Option<Instant>,
    /// The caller's timeout; `None`: the pool's, looked up with the clock.
    timeout: Option<Duration>,
    waiter: Option<Arc<Waiter<M>>>,
}

impl<M: Manage> Acquire<M> {
    /// The caller's deadline (`None`: no bound); starts the clock.
    pub fn deadline(&mut self) -> Option<Instant> {
        let started = *self.started.get_or_insert_with(Instant::now);
        // An absurdly long timeout (beyond Instant's range) means none.
        started.checked_add(self.timeout())
    }

    fn timeout(&mut self) -> Duration {
        *self
            .timeout
            .get_or_insert_with(|| lock(&self.lane.shared.state).settings.acquire_timeout)
    }

    /// The next step: `Some` connection (an idle one, or one handed over),
    /// `None` to wait (with `waker` registered, if given), or the error
    /// that ends the acquire (closed, `max_waiting`, a connect error that
    /// retrying cannot fix, or the deadline).
    pub fn poll(&mut self, waker: Option<&Waker>) -> Result<Option<Checkout<M>>> {
        let Some(waiter) = self.waiter.clone() else {
            return self.take_or_enqueue(waker);
        };
        let mut slot = lock(&waiter.slot);
        if let Some(handoff) = slot.handoff.take() {
            drop(slot);
            self.waiter = None;
            return self.take_handoff(handoff).map(Some);
        }
        if self.deadline().is_some_and(|d| Instant::now() >= d) {
            drop(slot);
            // Handed a connection just as the deadline passed: take it.
            return match self.withdraw() {
                Some(handoff) => self.take_handoff(handoff).map(Some),
                None => Err(self.timeout_error()),
            };
        }
        if let Some(w) = waker {
            if !slot.waker.as_ref().is_some_and(|old| old.will_wake(w)) {
                slot.waker = Some(w.clone());
            }
        }
        Ok(None)
    }

    /// Blocks the calling thread until a handoff or the deadline (after a
    /// `poll` that returned `None`).
    pub fn wait_blocking(&mut self) {
        let deadline = self.deadline();
        let Some(waiter) = &self.waiter else { return };
        let mut slot = lock(&waiter.slot);
        while slot.handoff.is_none() {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                },
                None => Duration::from_secs(3600),
            };
            slot = waiter
                .cond
                .wait_timeout(slot, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Records a checked connection as borrowed (counters, time waited,
    /// leak tracking under the name `holder` gives) and returns it.
    pub fn accept(
        &mut self,
        checkout: Checkout<M>,
        holder: impl FnOnce() -> String,
    ) -> Checkout<M> {
        self.lane.shared.accepted(&checkout, self.started, holder);
        checkout
    }

    /// Queues with `waker` already in the slot: a handoff may come as soon
    /// as the state lock is released, before the next `poll`.
    fn take_or_enqueue(&mut self, waker: Option<&Waker>) -> Result<Option<Checkout<M>>> {
        let shared = &self.lane.shared;
        if let Some(checkout) = shared.take_own_parked(&self.lane) {
            return Ok(Some(checkout));
        }
        let mut st = lock(&shared.state);
        if st.closed {
            return Err(closed_error());
        }
        if let Some(checkout) = shared.take_idle_locked(&mut st, &self.lane) {
            return Ok(Some(checkout));
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
            slot: Mutex::new(WaitSlot {
                handoff: None,
                waker: waker.cloned(),
            }),
            cond: Condvar::new(),
        });
        st.waiters.push_back(waiter.clone());
        shared.note_waiters(&st);
        // What was parked before this waiter counted goes to the queue
        // (first in line: this waiter, unless others wait).
        shared.unpark_to_waiters(&mut st);
        // Grow at once to what the waiters need, up to max_size.
        refill(shared, &mut st);
        drop(st);
        self.waiter = Some(waiter);
        // Waiting: the clock runs from here at the latest.
        self.deadline();
        Ok(None)
    }

    fn take_handoff(&self, handoff: Handoff<M>) -> Result<Checkout<M>> {
        match handoff {
            Handoff::Conn(idle) => {
                lock(&self.lane.shared.state).handing -= 1;
                Ok(checkout(&self.lane, idle.pooled))
            }
            Handoff::Failed(e) => Err(e),
        }
    }

    /// Leaves the queue; returns what was handed over in the meantime.
    fn withdraw(&mut self) -> Option<Handoff<M>> {
        let waiter = self.waiter.take()?;
        let mut st = lock(&self.lane.shared.state);
        st.waiters.retain(|w| !Arc::ptr_eq(w, &waiter));
        self.lane.shared.note_waiters(&st);
        drop(st);
        let handoff = lock(&waiter.slot).handoff.take();
        handoff
    }

    /// Counts and logs an acquire that waited in vain; the error carries
    /// the last connection error.
    fn timeout_error(&mut self) -> Error {
        let last_error = lock(&self.lane.shared.state).last_error.clone();
        self.lane
            .shared
            .counters
            .timeouts
            .fetch_add(1, Ordering::Relaxed);
        let mut msg = format!(
            "no connection became available within {} ms",
            self.timeout().as_millis()
        );
        if let Some(e) = &last_error {
            msg.push_str(&format!(" (last connection error: {e})"));
        }
        log::emit(Level::Warn, "sqlpool::pool", &msg);
        Error::new(Status::PoolTimeout, msg)
    }
}

impl<M: Manage> Drop for Acquire<M> {
    fn drop(&mut self) {
        if let Some(Handoff::Conn(idle)) = self.withdraw() {
            // Fresh from the pool: back to it as it is, no I/O.
            let shared = &self.lane.shared;
            let mut st = lock(&shared.state);
            st.handing -= 1;
            let retired = shared.give_back_idle(&mut st, idle);
            drop(st);
            shared.close_idle(
                retired.into_iter().collect(),
                "retired (closed, drained or resized pool)",
            );
        }
    }
}

/// A connection borrowed by the calling thread through `lane`.
fn checkout<M: Manage>(lane: &Arc<Lane<M>>, pooled: Pooled<M>) -> Checkout<M> {
    Checkout {
        pooled: Some(pooled),
        lane: lane.clone(),
        discard: false,
        thread: stats::thread_number(),
    }
}

fn closed_error() -> Error {
    Error::new(Status::PoolClosed, "the pool is closed")
}

/// The calling thread's name (or id), for leak reports.
fn thread_name() -> String {
    let thread = std::thread::current();
    thread
        .name()
        .map_or_else(|| format!("{:?}", thread.id()), str::to_owned)
}

impl<M: Manage> Shared<M> {
    /// An idle connection, if one is there now (the acquire fast path);
    /// `PoolClosed` when the pool is closed.
    fn take_idle(self: &Arc<Self>, lane: &Arc<Lane<M>>) -> Result<Option<Checkout<M>>> {
        if let Some(checkout) = self.take_own_parked(lane) {
            return Ok(Some(checkout));
        }
        let mut st = lock(&self.state);
        if st.closed {
            return Err(closed_error());
        }
        Ok(self.take_idle_locked(&mut st, lane))
    }

    /// The connection the calling thread parked, if it is still there and
    /// nobody waits; no pool lock taken.
    fn take_own_parked(self: &Arc<Self>, lane: &Arc<Lane<M>>) -> Option<Checkout<M>> {
        let spot = &self.spots[my_spot()];
        if !spot.occupied.load(Ordering::Relaxed) || self.rules.waiting.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let idle = {
            let mut parked = match spot.parked.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                // Being stolen or swept: leave it.
                Err(TryLockError::WouldBlock) => return None,
            };
            let idle = parked.take()?;
            spot.occupied.store(false, Ordering::SeqCst);
            idle
        };
        // A caller that queued meanwhile may have looked at the spot
        // before it was emptied (see `park`): it comes first.
        if self.rules.waiting.load(Ordering::SeqCst) > 0 {
            let mut st = lock(&self.state);
            let retired = self.give_back_idle(&mut st, idle);
            drop(st);
            self.close_idle(
                retired.into_iter().collect(),
                "retired (closed, drained or resized pool)",
            );
            return None;
        }
        Some(checkout(lane, idle.pooled))
    }

    /// An idle connection from the stack, else (when nobody waits, who
    /// would have had it first) one another thread parked.
    fn take_idle_locked(&self, st: &mut State<M>, lane: &Arc<Lane<M>>) -> Option<Checkout<M>> {
        let idle = match st.idle.pop() {
            Some(idle) => idle,
            None if st.waiters.is_empty() => self.spots.iter().find_map(ParkingSpot::take)?,
            None => return None,
        };
        Some(checkout(lane, idle.pooled))
    }

    /// Parks a connection given back by the calling thread in its spot,
    /// unless callers wait, the spot is taken, or a rule forbids it (then
    /// it is handed back for the shared way).
    ///
    /// Why a queued caller never misses a parked connection: a caller
    /// that queues counts itself in `waiting` and then reads every spot's
    /// `occupied`; this marks the spot `occupied` and then reads `waiting`
    /// (all `SeqCst`). One of the two sees the other's write: either the
    /// caller takes the connection from the spot to the queue, or this
    /// does not park it. Closing and draining pair with `parkable` the
    /// same way.
    fn park(&self, idle: Idle<M>) -> std::result::Result<(), Idle<M>> {
        let spot = &self.spots[my_spot()];
        if spot.occupied.load(Ordering::Relaxed) {
            return Err(idle);
        }
        let mut parked = match spot.parked.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(idle),
        };
        if parked.is_some() {
            return Err(idle);
        }
        spot.occupied.store(true, Ordering::SeqCst);
        if self.rules.waiting.load(Ordering::SeqCst) > 0
            || self.rules.parkable.load(Ordering::SeqCst) != idle.pooled.generation
        {
            spot.occupied.store(false, Ordering::SeqCst);
            return Err(idle);
        }
        *parked = Some(idle);
        Ok(())
    }

    /// Moves every parked connection to the idle stack, in the order they
    /// were given back. Called with the state locked.
    fn unpark_all(&self, st: &mut State<M>) {
        for idle in self.spots.iter().filter_map(ParkingSpot::take) {
            let at = st.idle.partition_point(|i| i.since <= idle.since);
            st.idle.insert(at, idle);
        }
    }

    /// Hands every parked connection to the queued callers (or, if they
    /// are served, to the idle stack). Called with the state locked.
    fn unpark_to_waiters(&self, st: &mut State<M>) {
        for idle in self.spots.iter().filter_map(ParkingSpot::take) {
            self.put_back(st, idle);
        }
    }

    /// Publishes the number of queued callers for `park`. Called with the
    /// state locked, after every change to the queue.
    fn note_waiters(&self, st: &State<M>) {
        self.rules.waiting.store(st.waiters.len(), Ordering::SeqCst);
    }

    /// Publishes which connections may be parked. Called with the state
    /// locked, after a change to `closed`, the generation, the size
    /// limit, or (while over it) the number of connections.
    fn update_parking(&self, st: &State<M>) {
        let parkable = if st.closed || st.total > st.settings.max_size {
            NO_PARKING
        } else {
            st.generation
        };
        self.rules.parkable.store(parkable, Ordering::SeqCst);
    }

    /// Puts an idle connection that left the pool for a moment back, or
    /// returns it to be closed (outside the lock) if the pool was closed,
    /// drained or shrunk below what it holds meanwhile. Called with the
    /// state locked.
    fn give_back_idle(self: &Arc<Self>, st: &mut State<M>, idle: Idle<M>) -> Option<Idle<M>> {
        if st.closed || idle.pooled.generation != st.generation || st.total > st.settings.max_size {
            st.total -= 1;
            refill(self, st);
            self.update_parking(st);
            return Some(idle);
        }
        self.put_back(st, idle);
        None
    }

    /// See [`Pool::check`].
    fn check(
        &self,
        checkout: &mut Checkout<M>,
        deadline: &mut dyn FnMut() -> Option<Instant>,
    ) -> bool {
        let pooled = checkout.pooled.as_mut().expect("a live checkout");
        let ok = self.check_conn(pooled, deadline);
        checkout.discard |= !ok;
        ok
    }

    /// The checkout check of one connection; false (logged): discard it.
    fn check_conn(
        &self,
        pooled: &mut Pooled<M>,
        deadline: &mut dyn FnMut() -> Option<Instant>,
    ) -> bool {
        match self.manager.check(&mut pooled.conn, deadline) {
            Ok(()) => true,
            Err(e) => {
                log::emit(
                    Level::Info,
                    "sqlpool::pool",
                    &format!(
                        "discarding connection #{}: failed the checkout check ({e})",
                        pooled.id
                    ),
                );
                false
            }
        }
    }

    /// Records a checked connection as borrowed: counters, the time waited
    /// since `started` (`None`: served at once, no wait to count), leak
    /// tracking under the name `holder` gives.
    fn accepted(
        &self,
        checkout: &Checkout<M>,
        started: Option<Instant>,
        holder: impl FnOnce() -> String,
    ) {
        self.counters.acquires.add(checkout.thread, 1);
        if let Some(started) = started {
            self.counters.on_wait(started.elapsed());
        }
        if self.tracks_leaks {
            lock(&self.state).checked_out.insert(
                checkout.id(),
                CheckoutInfo {
                    since: Instant::now(),
                    holder: holder(),
                    reported: false,
                },
            );
        }
    }

    /// Opens one connection (no lock held) and counts it.
    fn connect(&self) -> Result<Pooled<M>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        match self.manager.connect(id) {
            Ok(conn) => {
                self.counters.created.fetch_add(1, Ordering::Relaxed);
                log::emit(
                    Level::Debug,
                    "sqlpool::pool",
                    &format!("opened connection #{id} to {}", self.name),
                );
                let lifetime = self.max_lifetime;
                let expires_at = (!lifetime.is_zero()).then(|| {
                    // Up to 2.5% earlier, so connections made together do not
                    // all expire together (HikariCP does the same).
                    let jitter_ms = (lifetime.as_millis() as u64 / 40).max(1);
                    let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..=jitter_ms));
                    Instant::now() + lifetime.saturating_sub(jitter)
                });
                Ok(Pooled {
                    conn: Box::new(conn),
                    id,
                    expires_at,
                    generation: 0,
                })
            }
            Err(e) => {
                self.counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn close_idle(&self, conns: Vec<Idle<M>>, why: &str) {
        if conns.is_empty() {
            return;
        }
        Counters::bump(&self.counters.closed, conns.len() as u64);
        for c in &conns {
            log::emit(
                Level::Debug,
                "sqlpool::pool",
                &format!("closing connection #{}: {why}", c.pooled.id),
            );
        }
        drop(conns);
    }

    /// Gives an idle connection to the first waiter, else to the idle stack.
    /// Called with the state locked.
    fn put_back(&self, st: &mut State<M>, idle: Idle<M>) {
        match st.waiters.pop_front() {
            Some(w) => {
                self.note_waiters(st);
                st.handing += 1;
                w.deliver(Handoff::Conn(idle));
            }
            None => st.idle.push(idle),
        }
    }

    /// Records the outcome of a connection attempt; logs a failure once per
    /// state change (down, then back up), not once per attempt.
    fn note_attempt(&self, st: &mut State<M>, outcome: std::result::Result<(), &Error>) {
        match outcome {
            Ok(()) => {
                st.last_error = None;
                st.backoff = MIN_BACKOFF;
                st.next_attempt = Instant::now();
                if std::mem::take(&mut st.down) {
                    log::emit(
                        Level::Info,
                        "sqlpool::pool",
                        &format!("connections to {} work again", self.name),
                    );
                }
            }
            Err(e) => {
                let next = (st.backoff * 2).min(self.manager.max_backoff().max(MIN_BACKOFF));
                st.next_attempt = Instant::now() + st.backoff;
                st.backoff = next;
                st.last_error = Some(e.clone());
                let (level, what) = if std::mem::replace(&mut st.down, true) {
                    (Level::Debug, "failed again")
                } else {
                    (
                        Level::Warn,
                        "failed (retrying with backoff; logged again when connections work)",
                    )
                };
                log::emit(
                    level,
                    "sqlpool::pool",
                    &format!("connection attempt to {} {what}: {e}", self.name),
                );
            }
        }
    }
}

/// Starts what connections the pool lacks: all of `min_size` and what the
/// waiters need, at once; only one attempt at a time while the database is
/// down (with backoff). Called with the state locked.
fn refill<M: Manage>(shared: &Arc<Shared<M>>, st: &mut State<M>) {
    if st.closed {
        return;
    }
    loop {
        // (A waiter handed a connection has left the queue already.)
        let wanted = st.total < st.settings.min_size || st.pending < st.waiters.len() as u32;
        if !wanted || st.total >= st.settings.max_size || (st.down && st.pending > 0) {
            return;
        }
        if !spawn_connector(shared, st) {
            return;
        }
    }
}

/// Opens one connection on a short-lived thread and hands it to a waiter or
/// the idle stack. Called with the state locked; counts it as pending.
fn spawn_connector<M: Manage>(shared: &Arc<Shared<M>>, st: &mut State<M>) -> bool {
    st.total += 1;
    st.pending += 1;
    // A drain before the connection is made replaces it too (it may
    // reach the old primary, or use the old password).
    let generation = st.generation;
    let delay = st.next_attempt.saturating_duration_since(Instant::now());
    let weak = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new()
        .name("sqlpool-connect".into())
        .spawn(move || {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let Some(shared) = weak.upgrade() else { return };
            let result = shared.connect();
            let mut st = lock(&shared.state);
            st.pending -= 1;
            match result {
                Ok(mut pooled) => {
                    shared.note_attempt(&mut st, Ok(()));
                    if st.closed || st.total > st.settings.max_size || st.generation != generation {
                        st.total -= 1;
                        // Back within a shrunk size: parking resumes.
                        shared.update_parking(&st);
                        // Drained: a new one in its place.
                        refill(&shared, &mut st);
                        drop(st);
                        shared.counters.closed.fetch_add(1, Ordering::Relaxed);
                        drop(pooled);
                        return;
                    }
                    pooled.generation = generation;
                    shared.put_back(
                        &mut st,
                        Idle {
                            pooled,
                            since: Instant::now(),
                        },
                    );
                    // Back up after an outage: open the rest at once.
                    refill(&shared, &mut st);
                }
                Err(e) => {
                    st.total -= 1;
                    shared.update_parking(&st);
                    shared.note_attempt(&mut st, Err(&e));
                    if matches!(
                        e.status,
                        Status::AuthError
                            | Status::InvalidOption
                            | Status::InvalidUri
                            | Status::Unsupported
                    ) || matches!(e.sqlstate.as_deref(), Some("3D000"))
                    {
                        // Retrying cannot help: tell the waiters now.
                        let waiters: Vec<Arc<Waiter<M>>> = st.waiters.drain(..).collect();
                        shared.note_waiters(&st);
                        drop(st);
                        for w in waiters {
                            w.deliver(Handoff::Failed(e.clone()));
                        }
                        return;
                    }
                    // Keep trying (with backoff) while callers wait or
                    // min_size is short.
                    refill(&shared, &mut st);
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
        return false;
    }
    true
}

impl<M: Manage> Checkout<M> {
    /// Finishes an acquire begun by [`Pool::take_idle`]: the checkout
    /// check (bounded by `timeout`, `None`: the pool's acquire timeout,
    /// counted from `started`, which it sets if the check needs the
    /// clock), then recorded as borrowed. `None`: the connection failed the
    /// check and is discarded; go on with [`Pool::acquire_waiting`].
    pub fn checked(
        mut self,
        timeout: Option<Duration>,
        started: &mut Option<Instant>,
    ) -> Option<Checkout<M>> {
        let Checkout {
            pooled,
            lane,
            discard,
            ..
        } = &mut self;
        let shared = &lane.shared;
        let pooled = pooled.as_mut().expect("a live checkout");
        let mut deadline = || {
            let at = *started.get_or_insert_with(Instant::now);
            at.checked_add(timeout.unwrap_or_else(|| lock(&shared.state).settings.acquire_timeout))
        };
        if !shared.check_conn(pooled, &mut deadline) {
            *discard = true;
            return None;
        }
        self.lane.shared.accepted(&self, *started, thread_name);
        Some(self)
    }

    pub fn id(&self) -> u64 {
        self.pooled.as_ref().map_or(0, |p| p.id)
    }

    pub fn conn(&mut self) -> &mut M::Conn {
        &mut self
            .pooled
            .as_mut()
            .expect("a checkout holds its connection until dropped")
            .conn
    }

    /// Lends the connection to an asynchronous operation; [`Checkout::restore`]
    /// gives it back. While lent the checkout holds no connection (callers
    /// check [`Checkout::is_lent`] first, and must not drop it meanwhile).
    pub fn lend(&mut self) -> Option<LentConn<M>> {
        self.pooled.take().map(LentConn)
    }

    pub fn restore(&mut self, lent: LentConn<M>) {
        self.pooled = Some(lent.0);
    }

    pub fn is_lent(&self) -> bool {
        self.pooled.is_none()
    }
}

/// A checked-out connection lent to an asynchronous operation.
pub struct LentConn<M: Manage>(Pooled<M>);

impl<M: Manage> LentConn<M> {
    pub fn conn(&mut self) -> &mut M::Conn {
        &mut self.0.conn
    }
}

impl<M: Manage> Drop for Checkout<M> {
    fn drop(&mut self) {
        let Some(mut pooled) = self.pooled.take() else {
            return;
        };
        let shared = &self.lane.shared;
        let recycled = !self.discard && shared.manager.recycle(&mut pooled.conn);
        let now = Instant::now();
        let reusable = recycled && !pooled.is_expired(now);
        if reusable && !shared.tracks_leaks {
            match shared.park(Idle { pooled, since: now }) {
                Ok(()) => return,
                Err(idle) => pooled = idle.pooled,
            }
        }
        let mut st = lock(&shared.state);
        if shared.tracks_leaks {
            st.checked_out.remove(&pooled.id);
        }
        let keep = reusable
            && !st.closed
            && pooled.generation == st.generation
            && st.total <= st.settings.max_size;
        if keep {
            shared.put_back(&mut st, Idle { pooled, since: now });
            return;
        }
        st.total -= 1;
        refill(shared, &mut st);
        shared.update_parking(&st);
        drop(st);
        let broken = self.discard || shared.manager.is_broken(&pooled.conn);
        if broken {
            shared.counters.broken.fetch_add(1, Ordering::Relaxed);
        }
        let why = if broken {
            "broken"
        } else if !recycled {
            "its session could not be reset"
        } else if reusable {
            "retired (closed, drained or resized pool)"
        } else {
            "expired"
        };
        shared.counters.closed.fetch_add(1, Ordering::Relaxed);
        log::emit(
            Level::Info,
            "sqlpool::pool",
            &format!("discarding connection #{}: {why}", pooled.id),
        );
        drop(pooled);
    }
}

/// One maintenance pass: reports leaks, closes idle (above `min_size`) and
/// expired connections, health-checks connections idle for a whole
/// `check_interval`, and refills. Returns the time to the next pass.
fn maintain<M: Manage>(shared: &Arc<Shared<M>>, now: Instant) -> Duration {
    let mut st = lock(&shared.state);
    if st.closed {
        return Duration::ZERO;
    }
    let s = st.settings.clone();
    // Parked connections are idle ones like the rest here (their threads
    // take them from the stack next time).
    shared.unpark_all(&mut st);
    // Leaks.
    if !s.leak_threshold.is_zero() {
        for (id, info) in st.checked_out.iter_mut() {
            if !info.reported && now.saturating_duration_since(info.since) >= s.leak_threshold {
                info.reported = true;
                shared.counters.leaks.fetch_add(1, Ordering::Relaxed);
                log::emit(
                    Level::Warn,
                    "sqlpool::pool",
                    &format!(
                        "possible connection leak: connection #{id} has been held by {} for more than {} ms",
                        info.holder,
                        s.leak_threshold.as_millis()
                    ),
                );
            }
        }
    }
    // Idle timeout (above min_size; the least recently used first) and max
    // lifetime.
    let mut to_close = Vec::new();
    let mut i = 0;
    while i < st.idle.len() {
        let c = &st.idle[i];
        let idle_too_long = !s.idle_timeout.is_zero()
            && now.saturating_duration_since(c.since) >= s.idle_timeout
            && st.total > s.min_size;
        if idle_too_long || c.pooled.is_expired(now) || c.pooled.generation != st.generation {
            to_close.push(st.idle.remove(i));
            st.total -= 1;
        } else {
            i += 1;
        }
    }
    // Health check of connections idle for a whole interval (a connection
    // used since then has just proved itself); the idle clock is kept.
    let mut to_check = Vec::new();
    if !s.check_interval.is_zero() && now >= st.next_check {
        st.next_check = now + s.check_interval;
        let mut i = 0;
        while i < st.idle.len() {
            if now.saturating_duration_since(st.idle[i].since) >= s.check_interval {
                to_check.push(st.idle.remove(i));
            } else {
                i += 1;
            }
        }
        st.checking += to_check.len() as u32;
    }
    refill(shared, &mut st);
    shared.update_parking(&st);
    drop(st);
    shared.close_idle(to_close, "idle timeout or max lifetime");
    let mut checked = Vec::with_capacity(to_check.len());
    for mut idle in to_check {
        let deadline = Instant::now().checked_add(s.connect_timeout);
        let ok = shared
            .manager
            .health_check(&mut idle.pooled.conn, deadline)
            .is_ok();
        checked.push((idle, ok));
    }
    if !checked.is_empty() {
        let mut st = lock(&shared.state);
        let mut discard = Vec::new();
        // Back under the others, oldest first: the idle order is kept.
        let mut back = Vec::new();
        for (idle, ok) in checked {
            st.checking -= 1;
            // (Over a max_size shrunk meanwhile: closed, as resize closes
            // the idle ones it finds.)
            if ok
                && !st.closed
                && idle.pooled.generation == st.generation
                && st.total <= st.settings.max_size
            {
                back.push(idle);
            } else {
                st.total -= 1;
                if !ok {
                    shared.counters.broken.fetch_add(1, Ordering::Relaxed);
                    log::emit(
                        Level::Warn,
                        "sqlpool::pool",
                        &format!(
                            "health check failed; discarding connection #{}",
                            idle.pooled.id
                        ),
                    );
                }
                discard.push(idle);
            }
        }
        back.sort_by_key(|i| i.since);
        for idle in back.into_iter().rev() {
            if st.waiters.is_empty() {
                st.idle.insert(0, idle);
            } else {
                shared.put_back(&mut st, idle);
            }
        }
        refill(shared, &mut st);
        shared.update_parking(&st);
        drop(st);
        shared.close_idle(discard, "health check");
    }
    [
        s.check_interval,
        s.leak_threshold / 4,
        s.idle_timeout / 4,
        Duration::from_secs(1),
    ]
    .into_iter()
    .filter(|d| !d.is_zero())
    .min()
    .unwrap_or(Duration::from_secs(1))
    .max(Duration::from_millis(10))
}

/// Runs maintenance until the pool is closed or dropped.
fn maintenance_loop<M: Manage>(weak: Weak<Shared<M>>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let tick = maintain(&shared, Instant::now());
        let st = lock(&shared.state);
        if st.closed {
            return;
        }
        let _ = shared.maintenance.wait_timeout(st, tick);
    }
}
