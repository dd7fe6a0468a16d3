//! The pool engine against a fake backend: connects that fail or stall,
//! connections that break on check, a clock the test drives. No database,
//! no sleeps where a wait on the pool's own state does.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::config::PoolOptions;

#[derive(Default)]
struct Fake {
    name: String,
    connects: AtomicU64,
    /// Connects fail while set.
    fail: AtomicBool,
    /// Connects block while set (until `release_connects`).
    stall: Mutex<bool>,
    stall_cond: Condvar,
    /// Every checkout check fails while set.
    break_on_check: AtomicBool,
    checks: AtomicU32,
    /// Health checks block while set.
    stall_health: Mutex<bool>,
    health_checks: AtomicU32,
    recycles: AtomicU32,
}

struct FakeConn {
    broken: bool,
}

impl Fake {
    fn new(name: &str) -> Fake {
        Fake {
            name: name.into(),
            ..Fake::default()
        }
    }

    fn set_stall(&self, on: bool) {
        *self.stall.lock().unwrap() = on;
        self.stall_cond.notify_all();
    }

    fn set_stall_health(&self, on: bool) {
        *self.stall_health.lock().unwrap() = on;
        self.stall_cond.notify_all();
    }

    fn wait_while(&self, flag: &Mutex<bool>) {
        let mut g = flag.lock().unwrap();
        while *g {
            g = self.stall_cond.wait(g).unwrap();
        }
    }
}

impl Manage for Arc<Fake> {
    type Conn = FakeConn;

    fn connect(&self, _id: u64) -> Result<FakeConn> {
        self.wait_while(&self.stall);
        self.connects.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::new(Status::ConnectionError, "connection refused"));
        }
        Ok(FakeConn { broken: false })
    }

    fn check(
        &self,
        conn: &mut FakeConn,
        _deadline: &mut dyn FnMut() -> Option<Instant>,
    ) -> Result<()> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if self.break_on_check.load(Ordering::SeqCst) {
            conn.broken = true;
            return Err(Error::new(Status::ConnectionError, "broken on check"));
        }
        Ok(())
    }

    fn check_blocks(&self, _conn: &FakeConn) -> bool {
        false
    }

    fn health_check(&self, conn: &mut FakeConn, _deadline: Option<Instant>) -> Result<()> {
        self.wait_while(&self.stall_health);
        self.health_checks.fetch_add(1, Ordering::SeqCst);
        if conn.broken {
            return Err(Error::new(Status::ConnectionError, "broken"));
        }
        Ok(())
    }

    fn recycle(&self, conn: &mut FakeConn) -> bool {
        self.recycles.fetch_add(1, Ordering::SeqCst);
        !conn.broken
    }

    fn is_broken(&self, conn: &FakeConn) -> bool {
        conn.broken
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

fn settings(opts: &[(&str, &str)]) -> Settings {
    let mut o = PoolOptions::default();
    // Nothing in the background unless a test asks for it.
    o.set_from_str("check_interval", "0").unwrap();
    o.set_from_str("max_lifetime", "0").unwrap();
    o.set_from_str("idle_timeout", "0").unwrap();
    for (k, v) in opts {
        assert!(o.set_from_str(k, v).unwrap(), "{k}");
    }
    o.settings().unwrap()
}

fn pool(name: &str, opts: &[(&str, &str)]) -> (Arc<Fake>, Pool<Arc<Fake>>) {
    let fake = Arc::new(Fake::new(name));
    let pool = Pool::open_manual(fake.clone(), settings(opts)).unwrap();
    (fake, pool)
}

/// Waits (bounded) until the pool's stats satisfy `cond`: connects run on
/// the pool's own threads.
fn settle(pool: &Pool<Arc<Fake>>, what: &str, cond: impl Fn(&Stats) -> bool) -> Duration {
    let started = Instant::now();
    while !cond(&pool.stats()) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            pool.stats()
        );
        std::thread::yield_now();
        std::thread::sleep(Duration::from_micros(200));
    }
    started.elapsed()
}

fn waiting(pool: &Pool<Arc<Fake>>, n: u32) {
    settle(pool, "waiters", |s| s.waiting == n);
}

#[test]
fn open_fills_min_size_and_acquire_grows_to_max_and_never_past_it() {
    let (fake, pool) = pool("sizing", &[("min_size", "3"), ("max_size", "5")]);
    settle(&pool, "min_size", |s| s.total == 3 && s.idle == 3);
    let held: Vec<_> = (0..5).map(|_| pool.acquire(None).unwrap()).collect();
    let s = pool.stats();
    assert_eq!((s.total, s.in_use, s.idle), (5, 5, 0));
    let e = pool.acquire(Some(Duration::from_millis(20))).err().unwrap();
    assert_eq!(e.status, Status::PoolTimeout);
    drop(held);
    let s = pool.stats();
    assert_eq!((s.total, s.in_use, s.idle), (5, 0, 5));
    assert_eq!(fake.connects.load(Ordering::SeqCst), 5);
}

#[test]
fn waiters_are_served_first_in_first_out() {
    let (_fake, pool) = pool("fifo", &[("min_size", "1"), ("max_size", "1")]);
    let pool = Arc::new(pool);
    let held = pool.acquire(None).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..3 {
        let (p, o) = (pool.clone(), order.clone());
        threads.push(std::thread::spawn(move || {
            let c = p.acquire(None).unwrap();
            o.lock().unwrap().push(i);
            drop(c);
        }));
        waiting(&pool, i + 1);
    }
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
}

#[test]
fn a_retry_after_a_failed_check_keeps_the_callers_deadline() {
    // The pool's own timeout is long; the caller's is short. The idle
    // connection fails its check and the replacement never comes.
    let (fake, pool) = pool("retry", &[("min_size", "1"), ("acquire_timeout", "30s")]);
    fake.break_on_check.store(true, Ordering::SeqCst);
    fake.set_stall(true);
    let started = Instant::now();
    let e = pool
        .acquire(Some(Duration::from_millis(150)))
        .err()
        .unwrap();
    let took = started.elapsed();
    fake.set_stall(false);
    assert_eq!(e.status, Status::PoolTimeout, "{e}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(fake.checks.load(Ordering::SeqCst), 1);
    assert_eq!(pool.stats().broken, 1);
}

#[test]
fn the_async_driver_keeps_the_deadline_too() {
    let (fake, pool) = pool(
        "retry-async",
        &[("min_size", "1"), ("acquire_timeout", "30s")],
    );
    fake.break_on_check.store(true, Ordering::SeqCst);
    fake.set_stall(true);
    let mut acquire = pool.start_acquire(Some(Duration::from_millis(100)));
    let mut checkout = acquire.poll(None).unwrap().expect("the idle connection");
    assert!(!pool.check(&mut checkout, &mut || acquire.deadline()));
    drop(checkout);
    assert!(acquire.poll(None).unwrap().is_none(), "queued");
    let deadline = acquire.deadline().expect("a bounded acquire");
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = acquire.poll(None).err().unwrap();
    fake.set_stall(false);
    assert_eq!(e.status, Status::PoolTimeout);
}

#[test]
fn idle_connections_expire_although_health_checks_run() {
    let (fake, pool) = pool(
        "idle",
        &[
            ("min_size", "1"),
            ("max_size", "4"),
            ("idle_timeout", "6s"),
            ("check_interval", "300ms"),
        ],
    );
    let held: Vec<_> = (0..4).map(|_| pool.acquire(None).unwrap()).collect();
    drop(held);
    let t0 = Instant::now();
    // Health checks every 300 ms of the test's clock, for 5.7 s.
    for i in 1..20u64 {
        pool.maintain(t0 + Duration::from_millis(300 * i));
        assert_eq!(pool.stats().total, 4, "not idle for 6 s yet");
    }
    assert!(fake.health_checks.load(Ordering::SeqCst) > 4);
    pool.maintain(t0 + Duration::from_millis(6100));
    let s = pool.stats();
    assert_eq!((s.total, s.idle), (1, 1), "{s:?}");
    assert_eq!(s.closed, 3);
}

#[test]
fn the_health_check_skips_recently_used_connections_and_replaces_dead_ones() {
    let (fake, pool) = pool(
        "health",
        &[
            ("min_size", "2"),
            ("max_size", "2"),
            ("check_interval", "1s"),
        ],
    );
    settle(&pool, "min_size", |s| s.idle == 2);
    let t0 = Instant::now();
    pool.maintain(t0 + Duration::from_millis(500));
    assert_eq!(fake.health_checks.load(Ordering::SeqCst), 0);
    // Break one idle connection behind the pool's back.
    {
        let mut c = pool.acquire(None).unwrap();
        c.conn().broken = true;
        // (Recycle refuses it: discarded and replaced at once.)
    }
    settle(&pool, "replaced", |s| s.idle == 2 && s.pending == 0);
    assert_eq!(pool.stats().broken, 1);
    pool.maintain(t0 + Duration::from_secs(5));
    assert_eq!(fake.health_checks.load(Ordering::SeqCst), 2);
}

#[test]
fn connections_past_their_lifetime_are_replaced() {
    let (fake, pool) = pool("lifetime", &[("min_size", "2"), ("max_lifetime", "10s")]);
    settle(&pool, "min_size", |s| s.idle == 2);
    pool.maintain(Instant::now() + Duration::from_secs(11));
    settle(&pool, "refilled", |s| s.idle == 2 && s.pending == 0);
    assert_eq!(pool.stats().closed, 2);
    assert_eq!(fake.connects.load(Ordering::SeqCst), 4);
}

#[test]
fn resize_and_losses_refill_at_once() {
    let (_fake, pool) = pool("refill", &[("min_size", "1"), ("max_size", "20")]);
    pool.resize(10, 20).unwrap();
    // All at once, not one per maintenance pass: no maintain() here.
    settle(&pool, "resized", |s| s.total == 10 && s.pending == 0);
    // Lose five: each is replaced at release.
    let mut held: Vec<_> = (0..10).map(|_| pool.acquire(None).unwrap()).collect();
    for c in held.iter_mut().take(5) {
        c.conn().broken = true;
    }
    drop(held);
    settle(&pool, "losses", |s| s.idle == 10 && s.pending == 0);
    assert_eq!(pool.stats().broken, 5);
    pool.resize(1, 2).unwrap();
    assert_eq!(pool.stats().total, 2);
    assert!(pool.resize(3, 2).is_err());
    assert!(pool.resize(0, 1_000_000_000).is_err());
}

#[test]
fn a_huge_max_size_allocates_nothing_up_front() {
    let mut s = settings(&[("min_size", "0")]);
    s.max_size = u32::MAX;
    let pool = Pool::open_manual(Arc::new(Fake::new("huge")), s).unwrap();
    drop(pool.acquire(None).unwrap());
    // And the options refuse it before any pool exists.
    let mut o = PoolOptions::default();
    assert!(o.set_from_str("max_size", "1000000000").is_err());
}

#[test]
fn drain_replaces_idle_connections_now_and_busy_ones_at_release() {
    let (fake, pool) = pool("drain", &[("min_size", "2"), ("max_size", "3")]);
    settle(&pool, "min_size", |s| s.idle == 2);
    let busy = pool.acquire(None).unwrap();
    pool.drain().unwrap();
    settle(&pool, "drained", |s| {
        s.pending == 0 && s.total == 2 && s.idle == 1
    });
    drop(busy);
    settle(&pool, "released", |s| s.idle == 2 && s.pending == 0);
    let s = pool.stats();
    assert_eq!(s.closed, 2, "{s:?}");
    assert_eq!(fake.connects.load(Ordering::SeqCst), 4);
}

#[test]
fn close_wakes_waiters_and_busy_connections_close_at_release() {
    let (_fake, pool) = pool("close", &[("min_size", "1"), ("max_size", "1")]);
    let pool = Arc::new(pool);
    let held = pool.acquire(None).unwrap();
    let p = pool.clone();
    let waiter = std::thread::spawn(move || p.acquire(None).err().unwrap().status);
    waiting(&pool, 1);
    pool.close();
    assert_eq!(waiter.join().unwrap(), Status::PoolClosed);
    assert_eq!(pool.acquire(None).err().unwrap().status, Status::PoolClosed);
    drop(held);
    assert_eq!(pool.stats().total, 0);
}

#[test]
fn in_use_counts_only_what_callers_hold() {
    let (fake, pool) = pool(
        "in-use",
        &[
            ("min_size", "1"),
            ("max_size", "1"),
            ("check_interval", "1s"),
        ],
    );
    let pool = Arc::new(pool);
    settle(&pool, "min_size", |s| s.idle == 1);
    // Being health-checked is not in use.
    fake.set_stall_health(true);
    let p = pool.clone();
    let maint = std::thread::spawn(move || {
        p.maintain(Instant::now() + Duration::from_secs(2));
    });
    settle(&pool, "checking", |s| s.idle == 0);
    assert_eq!(pool.stats().in_use, 0);
    fake.set_stall_health(false);
    maint.join().unwrap();
    // Handed to a waiter that has not taken it yet is not in use.
    let held = pool.acquire(None).unwrap();
    let mut acquire = pool.start_acquire(None);
    assert!(acquire.poll(None).unwrap().is_none());
    assert_eq!(pool.stats().in_use, 1);
    drop(held);
    let s = pool.stats();
    assert_eq!((s.in_use, s.idle, s.total), (0, 0, 1), "{s:?}");
    let taken = acquire.poll(None).unwrap().expect("handed over");
    assert_eq!(pool.stats().in_use, 1);
    drop(taken);
    // A handoff never taken goes back when the acquire is dropped.
    let held = pool.acquire(None).unwrap();
    let mut acquire = pool.start_acquire(None);
    assert!(acquire.poll(None).unwrap().is_none());
    drop(held);
    drop(acquire);
    let s = pool.stats();
    assert_eq!((s.in_use, s.idle, s.waiting), (0, 1, 0), "{s:?}");
}

#[test]
fn failing_connects_back_off_and_the_timeout_names_the_cause() {
    let (fake, pool) = pool("down", &[("min_size", "0"), ("lazy", "true")]);
    fake.fail.store(true, Ordering::SeqCst);
    let e = pool
        .acquire(Some(Duration::from_millis(250)))
        .err()
        .unwrap();
    assert_eq!(e.status, Status::PoolTimeout);
    assert!(e.message.contains("connection refused"), "{}", e.message);
    // Backoff: 100 ms, then 200 ms... a handful of attempts, not a storm.
    let attempts = fake.connects.load(Ordering::SeqCst);
    assert!((1..=4).contains(&attempts), "{attempts} attempts");
    fake.fail.store(false, Ordering::SeqCst);
    drop(pool.acquire(Some(Duration::from_secs(5))).unwrap());
}

#[test]
fn a_connection_failure_is_logged_once_per_state_change() {
    struct Capture(Arc<Mutex<Vec<(crate::log::Level, String)>>>);
    impl crate::log::Sink for Capture {
        fn log(&self, level: crate::log::Level, _target: &str, message: &str) {
            if message.contains("log-once-pool") {
                self.0.lock().unwrap().push((level, message.to_owned()));
            }
        }
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    crate::log::set_sink(
        Some(Box::new(Capture(lines.clone()))),
        crate::log::Level::Info,
    );
    let (fake, pool) = pool("log-once-pool", &[("min_size", "0"), ("lazy", "true")]);
    fake.fail.store(true, Ordering::SeqCst);
    let _ = pool.acquire(Some(Duration::from_millis(400)));
    let attempts = fake.connects.load(Ordering::SeqCst);
    fake.fail.store(false, Ordering::SeqCst);
    drop(pool.acquire(Some(Duration::from_secs(5))).unwrap());
    crate::log::set_sink(None, crate::log::Level::Warn);
    let lines = lines.lock().unwrap();
    let failures = lines.iter().filter(|(_, m)| m.contains("failed")).count();
    let recovered = lines
        .iter()
        .filter(|(_, m)| m.contains("work again"))
        .count();
    assert!(attempts >= 2, "{attempts}");
    assert_eq!((failures, recovered), (1, 1), "{lines:?}");
}

/// Acquires are counted on stripes of their threads' own; the stats sum
/// them exactly, also while other threads acquire and release (never more
/// than have succeeded, never fewer than have returned).
#[test]
fn acquires_from_many_threads_are_counted_exactly() {
    const THREADS: u64 = 12;
    const EACH: u64 = 500;
    let (_fake, pool) = pool("striped", &[("min_size", "2"), ("max_size", "3")]);
    let pool = Arc::new(pool);
    let returned = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (pool, returned) = (pool.clone(), returned.clone());
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    drop(pool.acquire(None).unwrap());
                    returned.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while !workers.iter().all(|w| w.is_finished()) {
        let before = returned.load(Ordering::SeqCst);
        let counted = pool.stats().acquires;
        assert!(counted >= before, "{counted} < {before}");
        assert!(counted <= THREADS * EACH);
        std::thread::yield_now();
    }
    workers.into_iter().for_each(|w| w.join().unwrap());
    let s = pool.stats();
    assert_eq!(s.acquires, THREADS * EACH);
    assert_eq!((s.in_use, s.waiting), (0, 0));
    assert_eq!(s.idle, s.total);
}

/// A thread of its own for a test, parking in a spot other than the
/// calling thread's (threads whose numbers collide share a spot).
struct OtherSpot {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl OtherSpot {
    fn new() -> OtherSpot {
        let mine = my_spot();
        loop {
            let (jobs, inbox) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
            let (spot_tx, spot_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                spot_tx.send(my_spot()).unwrap();
                for job in inbox {
                    job();
                }
            });
            if spot_rx.recv().unwrap() != mine {
                return OtherSpot { jobs };
            }
        }
    }

    /// Runs `f` on the thread; waits at most 5 s for it.
    fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the job finished (no deadlock)")
    }
}

/// A connection given back while nobody waits stays in its thread's spot:
/// the thread takes it back without the pool's lock, and another thread
/// that finds no idle one steals it.
#[test]
fn a_thread_takes_back_the_connection_it_parked_without_the_pool_lock() {
    let (_fake, pool) = pool("parking", &[("min_size", "1"), ("max_size", "2")]);
    let pool = Arc::new(pool);
    settle(&pool, "min_size", |s| s.idle == 1);
    let other = OtherSpot::new();
    let first = pool.acquire(None).unwrap().id();
    let p = pool.clone();
    let (a, b) = other.run(move || {
        // Both of this thread's: one parks, the other goes on the stack.
        let (x, y) = (p.acquire(None).unwrap(), p.acquire(None).unwrap());
        let ids = (x.id(), y.id());
        drop(x);
        drop(y);
        ids
    });
    let s = pool.stats();
    assert_eq!(
        (s.idle, s.in_use, s.total),
        (2, 0, 2),
        "parked counts as idle"
    );
    assert!([a, b].contains(&first));
    // The pool's lock held elsewhere: the parked one is taken all the same,
    // and with no new reference to the pool's shared state.
    let refs = Arc::strong_count(&pool.shared);
    let state = lock(&pool.shared.state);
    let p = pool.clone();
    let (again, refs_held) = other.run(move || {
        let c = p.acquire(None).unwrap();
        (c.id(), Arc::strong_count(&p.shared))
    });
    drop(state);
    assert_eq!(again, a, "the parked one, not the top of the stack");
    assert_eq!(refs_held, refs);
    // This thread finds the stack's one, then steals the parked one.
    let (c1, c2) = (pool.acquire(None).unwrap(), pool.acquire(None).unwrap());
    assert_eq!([c1.id(), c2.id()], [b, a]);
    assert_eq!(pool.stats().in_use, 2);
}

/// A release that races a caller queueing on an empty pool never leaves
/// the connection parked while the caller waits (see `Shared::park`).
#[test]
fn a_release_racing_a_queueing_caller_never_strands_the_connection() {
    let (_fake, pool) = pool("park-race", &[("min_size", "1"), ("max_size", "1")]);
    let pool = Arc::new(pool);
    settle(&pool, "min_size", |s| s.idle == 1);
    let other = OtherSpot::new();
    for round in 0..2_000 {
        let held = pool.acquire(None).unwrap();
        let p = pool.clone();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let queued = std::thread::spawn(move || {
            go_rx.recv().unwrap();
            // Parks in the other thread's spot once served.
            let c = p.acquire(Some(Duration::from_secs(5)));
            c.map(|c| c.id())
        });
        go_tx.send(()).unwrap();
        // Given back by a third thread while the caller queues (or not yet).
        other.run(move || drop(held));
        let got = queued.join().unwrap();
        assert!(got.is_ok(), "round {round}: {:?}", got.err());
    }
    let s = pool.stats();
    assert_eq!((s.idle, s.total, s.waiting), (1, 1, 0), "{s:?}");
}

/// Draining, closing and shrinking reach parked connections too, and no
/// connection of an older generation or of a closed pool is parked.
#[test]
fn drain_close_and_resize_reach_parked_connections() {
    let (fake, pool) = pool("park-drain", &[("min_size", "1"), ("max_size", "2")]);
    settle(&pool, "min_size", |s| s.idle == 1);
    let old = pool.acquire(None).unwrap();
    let old_id = old.id();
    drop(old);
    pool.drain().unwrap();
    settle(&pool, "refilled", |s| s.idle == 1 && s.total == 1);
    assert_ne!(
        pool.acquire(None).unwrap().id(),
        old_id,
        "the parked one was drained"
    );
    // Held across a drain: closed at release, never parked.
    let busy = pool.acquire(None).unwrap();
    let busy_id = busy.id();
    pool.drain().unwrap();
    drop(busy);
    settle(&pool, "refilled", |s| s.idle == 1 && s.total == 1);
    assert_ne!(pool.acquire(None).unwrap().id(), busy_id);
    // Shrinking below what is open closes the parked one.
    let (x, y) = (pool.acquire(None).unwrap(), pool.acquire(None).unwrap());
    drop(x);
    pool.resize(0, 1).unwrap();
    drop(y);
    let s = pool.stats();
    assert_eq!((s.total, s.idle), (1, 1), "{s:?}");
    // Closing closes it too, and a later release does not park.
    let held = pool.acquire(None).unwrap();
    let connects = fake.connects.load(Ordering::SeqCst);
    pool.close();
    drop(held);
    let s = pool.stats();
    assert_eq!((s.total, s.idle), (0, 0), "{s:?}");
    assert_eq!(pool.acquire(None).err().unwrap().status, Status::PoolClosed);
    assert_eq!(fake.connects.load(Ordering::SeqCst), connects);
}

/// A thread that parks into its spot while another thread steals from
/// it loses no connection: after each round both are idle again and one
/// thread can hold them both.
#[test]
fn parking_while_another_thread_steals_loses_no_connection() {
    let (_fake, pool) = pool("park-steal", &[("min_size", "2"), ("max_size", "2")]);
    let pool = Arc::new(pool);
    settle(&pool, "min_size", |s| s.idle == 2);
    let other = OtherSpot::new();
    for round in 0..2_000 {
        let (x, y) = (
            pool.acquire(Some(Duration::from_secs(1))).unwrap(),
            pool.acquire(Some(Duration::from_secs(1))).unwrap(),
        );
        let p = pool.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        // Steals `x` from this thread's spot (or waits for it), while
        // this thread parks `y` there.
        other
            .jobs
            .send(Box::new(move || {
                let got = p.acquire(Some(Duration::from_secs(1))).map(drop);
                let _ = done_tx.send(got);
            }))
            .unwrap();
        drop(x);
        drop(y);
        let stolen = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(stolen.is_ok(), "round {round}: {:?}", stolen.err());
        let s = pool.stats();
        assert_eq!(
            (s.idle, s.in_use, s.total),
            (2, 0, 2),
            "round {round}: {s:?}"
        );
    }
}

/// Counts the wakes of an async task.
#[derive(Default)]
struct CountWakes(AtomicU32);

impl std::task::Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An async acquire whose idle connection failed its check polls again
/// with its waker and queues on that poll (as `asyncops` does): the
/// handoff of the replacement must wake it, not leave it in its slot
/// until the deadline.
#[test]
fn an_async_acquire_that_queues_on_a_poll_is_woken_by_its_handoff() {
    let (fake, pool) = pool("async-wake", &[("min_size", "1"), ("max_size", "1")]);
    settle(&pool, "min_size", |s| s.idle == 1);
    let wakes = Arc::new(CountWakes::default());
    let waker = std::task::Waker::from(wakes.clone());
    fake.break_on_check.store(true, Ordering::SeqCst);
    fake.set_stall(true);
    let mut acquire = pool.start_acquire(Some(Duration::from_secs(30)));
    let mut checkout = acquire
        .poll(Some(&waker))
        .unwrap()
        .expect("the idle connection");
    assert!(!pool.check(&mut checkout, &mut || acquire.deadline()));
    drop(checkout);
    fake.break_on_check.store(false, Ordering::SeqCst);
    assert!(acquire.poll(Some(&waker)).unwrap().is_none(), "queued");
    // The replacement connects and is handed to the queued acquire.
    fake.set_stall(false);
    settle(&pool, "handed over", |s| s.waiting == 0 && s.pending == 0);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken by the handoff");
    assert!(acquire.poll(Some(&waker)).unwrap().is_some());
}

/// Threads (more than there are parking spots, so some share one) borrow
/// and give back while another drains, shrinks, grows and maintains the
/// pool: no caller waits out its timeout, none started after a drain
/// returned gets a connection of an older generation, and once all are
/// done every connection is idle, one thread can hold `max_size` of them,
/// and a shrink leaves no more than the new `max_size`.
#[test]
fn churn_across_drains_resizes_and_maintenance_loses_and_strands_nothing() {
    const WORKERS: usize = 20;
    let (_fake, pool) = pool("churn", &[("min_size", "1"), ("max_size", "4")]);
    let pool = Arc::new(pool);
    let drains_done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (pool, drains_done, stop) = (pool.clone(), drains_done.clone(), stop.clone());
            std::thread::spawn(move || -> std::result::Result<u32, String> {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let drained = drains_done.load(Ordering::SeqCst);
                    let c = pool
                        .acquire(Some(Duration::from_secs(2)))
                        .map_err(|e| format!("worker {i}: {e} ({:?})", pool.stats()))?;
                    let generation = c.pooled.as_ref().unwrap().generation;
                    if generation < drained {
                        return Err(format!(
                            "worker {i}: generation {generation} after {drained} drains"
                        ));
                    }
                    if n % 3 == 0 {
                        std::thread::yield_now();
                    }
                    drop(c);
                    n += 1;
                    // Mostly fewer callers than connections: releases park.
                    std::thread::sleep(Duration::from_micros(100 * (i as u64 % 4)));
                }
                Ok(n)
            })
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(700) {
        pool.drain().unwrap();
        drains_done.fetch_add(1, Ordering::SeqCst);
        pool.resize(1, 2).unwrap();
        std::thread::yield_now();
        pool.resize(2, 4).unwrap();
        pool.maintain(Instant::now());
        std::thread::sleep(Duration::from_micros(300));
    }
    stop.store(true, Ordering::SeqCst);
    let mut served = 0;
    for w in workers {
        served += w.join().unwrap().unwrap();
    }
    assert!(served > WORKERS as u32, "{served}");
    settle(&pool, "quiescent", |s| s.pending == 0);
    let s = pool.stats();
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
    assert_eq!(s.idle, s.total, "{s:?}");
    assert!((2..=4).contains(&s.total), "{s:?}");
    let held: Vec<_> = (0..4)
        .map(|_| pool.acquire(Some(Duration::from_secs(2))).unwrap())
        .collect();
    assert_eq!(pool.stats().in_use, 4);
    drop(held);
    pool.resize(0, 1).unwrap();
    let s = pool.stats();
    assert_eq!((s.total, s.idle, s.in_use), (1, 1, 0), "{s:?}");
}

/// Closing while threads borrow and give back: a caller that starts after
/// `close` returned is refused, nothing stays parked, and once the last
/// holder gives back no connection is left.
#[test]
fn close_racing_releases_parks_nothing_and_hands_out_nothing() {
    for round in 0..30 {
        let (_fake, pool) = pool("close-race", &[("min_size", "2"), ("max_size", "3")]);
        let pool = Arc::new(pool);
        let closed = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let (pool, closed) = (pool.clone(), closed.clone());
                std::thread::spawn(move || -> std::result::Result<(), String> {
                    loop {
                        let after_close = closed.load(Ordering::SeqCst);
                        match pool.acquire(Some(Duration::from_secs(2))) {
                            Ok(c) if after_close => {
                                return Err(format!("worker {i}: #{} after close", c.id()))
                            }
                            Ok(c) => drop(c),
                            Err(e) if e.status == Status::PoolClosed => return Ok(()),
                            Err(e) => return Err(format!("worker {i}: {e}")),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(200 * (round % 10)));
        pool.close();
        closed.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap().unwrap();
        }
        let s = pool.stats();
        assert_eq!(
            (s.total, s.idle, s.in_use),
            (0, 0, 0),
            "round {round}: {s:?}"
        );
        assert!(
            pool.shared.spots.iter().all(|s| lock(&s.parked).is_none()),
            "round {round}: parked after close"
        );
    }
}

/// A thread that gives its connection back to a queued caller and asks
/// again at once queues behind it: it does not take the connection back
/// from its own spot or the idle stack.
#[test]
fn a_releaser_asking_again_at_once_does_not_overtake_a_queued_caller() {
    let (_fake, pool) = pool("barging", &[("min_size", "1"), ("max_size", "1")]);
    let pool = Arc::new(pool);
    let mut held = pool.acquire(None).unwrap();
    for round in 0..40 {
        let first = held.id();
        let p = pool.clone();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let queued = std::thread::spawn(move || {
            // Held until the test has tried to overtake it.
            let c = p.acquire(Some(Duration::from_secs(5)));
            release_rx.recv().unwrap();
            c.map(|c| c.id())
        });
        waiting(&pool, 1);
        drop(held);
        let e = pool.acquire(Some(Duration::from_millis(3))).err();
        assert_eq!(
            e.map(|e| e.status),
            Some(Status::PoolTimeout),
            "round {round}: overtook the queued caller"
        );
        release_tx.send(()).unwrap();
        assert_eq!(queued.join().unwrap().unwrap(), first, "round {round}");
        held = pool.acquire(Some(Duration::from_secs(1))).unwrap();
    }
}

/// Nothing keeps the pool's shared state alive once the pool, its
/// checkouts and its acquires are gone: not a parked connection, not a
/// queued async acquire's waker, not a checkout given back after the pool
/// was dropped.
#[test]
fn nothing_keeps_the_pool_alive_after_it_and_its_checkouts_are_dropped() {
    let (_fake, pool) = pool("no-cycle", &[("min_size", "2"), ("max_size", "2")]);
    settle(&pool, "min_size", |s| s.idle == 2);
    let weak = Arc::downgrade(&pool.shared);
    let pool = Arc::new(pool);
    let other = OtherSpot::new();
    let p = pool.clone();
    // Parked in the other thread's spot.
    other.run(move || drop(p.acquire(None).unwrap()));
    let held = pool.acquire(None).unwrap();
    let held2 = pool.acquire(None).unwrap();
    let wakes = Arc::new(CountWakes::default());
    let waker = std::task::Waker::from(wakes.clone());
    let mut acquire = pool.start_acquire(Some(Duration::from_secs(30)));
    assert!(acquire.poll(Some(&waker)).unwrap().is_none(), "queued");
    drop(held2);
    // Handed to the acquire, never taken.
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    drop(Arc::try_unwrap(pool).ok().expect("the only pool reference"));
    assert!(weak.upgrade().is_some(), "the checkout still refers to it");
    drop(acquire);
    drop(held);
    let started = Instant::now();
    while weak.upgrade().is_some() {
        assert!(started.elapsed() < Duration::from_secs(5), "kept alive");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A shrink below what is open and being opened forbids parking until the
/// pool fits again; a connect that finishes (or fails) over the new size
/// is what makes it fit, and releases park again from then on (not only
/// after the next maintenance pass).
#[test]
fn parking_resumes_once_a_connect_over_a_shrink_is_dropped() {
    for fail in [false, true] {
        let (fake, pool) = pool("shrink-pending", &[("min_size", "1"), ("max_size", "2")]);
        settle(&pool, "min_size", |s| s.idle == 1);
        let held = pool.acquire(None).unwrap();
        fake.set_stall(true);
        pool.resize(2, 2).unwrap();
        assert_eq!(pool.stats().pending, 1);
        pool.resize(1, 1).unwrap();
        fake.fail.store(fail, Ordering::SeqCst);
        fake.set_stall(false);
        settle(&pool, "connect dropped", |s| s.pending == 0 && s.total == 1);
        fake.fail.store(false, Ordering::SeqCst);
        drop(held);
        assert!(
            lock(&pool.shared.spots[my_spot()].parked).is_some(),
            "fail = {fail}: not parked ({:?})",
            pool.stats()
        );
        let s = pool.stats();
        assert_eq!((s.total, s.idle, s.in_use), (1, 1, 0), "{s:?}");
    }
}

/// A shrink while idle connections are out for their health check: those
/// that come back over the new `max_size` close, and releases park again.
#[test]
fn a_shrink_during_health_checks_leaves_no_more_than_max_size() {
    let (fake, pool) = pool(
        "shrink-checking",
        &[
            ("min_size", "2"),
            ("max_size", "2"),
            ("check_interval", "1s"),
        ],
    );
    let pool = Arc::new(pool);
    settle(&pool, "min_size", |s| s.idle == 2);
    fake.set_stall_health(true);
    let p = pool.clone();
    let maint = std::thread::spawn(move || {
        p.maintain(Instant::now() + Duration::from_secs(2));
    });
    settle(&pool, "checking", |s| s.idle == 0);
    pool.resize(0, 1).unwrap();
    fake.set_stall_health(false);
    maint.join().unwrap();
    let s = pool.stats();
    assert_eq!((s.total, s.idle, s.in_use), (1, 1, 0), "{s:?}");
    drop(pool.acquire(None).unwrap());
    assert!(
        lock(&pool.shared.spots[my_spot()].parked).is_some(),
        "not parked ({:?})",
        pool.stats()
    );
}

/// Connections handed to queued acquires that are dropped before taking
/// them go back to the pool; after a shrink meanwhile, not over the new
/// `max_size`.
#[test]
fn handoffs_never_taken_close_over_a_shrunk_max_size() {
    let (_fake, pool) = pool("shrink-handoff", &[("min_size", "2"), ("max_size", "2")]);
    settle(&pool, "min_size", |s| s.idle == 2);
    let held: Vec<_> = (0..2).map(|_| pool.acquire(None).unwrap()).collect();
    let mut acquires: Vec<_> = (0..2).map(|_| pool.start_acquire(None)).collect();
    for a in &mut acquires {
        assert!(a.poll(None).unwrap().is_none(), "queued");
    }
    drop(held);
    assert_eq!(pool.stats().waiting, 0, "both handed over");
    pool.resize(0, 1).unwrap();
    drop(acquires);
    let s = pool.stats();
    assert_eq!((s.total, s.idle, s.in_use), (1, 1, 0), "{s:?}");
}

/// A connect under way when the pool is drained (it may reach the old
/// primary, with the old password) is replaced too: an acquire that
/// starts after `drain` returned gets a connection opened after it.
#[test]
fn drain_replaces_a_connection_being_opened_too() {
    let fake = Arc::new(Fake::new("drain-pending"));
    fake.set_stall(true);
    let pool = Pool::open_manual(
        fake.clone(),
        settings(&[("min_size", "1"), ("max_size", "1"), ("lazy", "true")]),
    )
    .unwrap();
    assert_eq!(pool.stats().pending, 1);
    // The connect has begun (its id is taken first).
    let started = Instant::now();
    while pool.shared.next_id.load(Ordering::SeqCst) == 1 {
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(1));
    }
    let opening = pool.shared.next_id.load(Ordering::SeqCst) - 1;
    pool.drain().unwrap();
    let drained_at = pool.shared.next_id.load(Ordering::SeqCst);
    fake.set_stall(false);
    let c = pool.acquire(Some(Duration::from_secs(2))).unwrap();
    assert!(
        c.id() >= drained_at,
        "#{} was being opened (#{opening}) when the pool was drained",
        c.id()
    );
    drop(c);
    settle(&pool, "replaced", |s| s.pending == 0 && s.idle == 1);
    assert_eq!(pool.stats().total, 1);
}

/// Wakes a thread that drives an acquire as an async task would.
struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Acquires driven like async tasks (poll with a waker, sleep until woken)
/// from more threads than connections, while the pool is drained now and
/// then: each is woken by its handoff soon, none waits for its deadline.
#[test]
fn async_acquires_under_contention_are_woken_by_their_handoffs() {
    let (_fake, pool) = pool("async-churn", &[("min_size", "2"), ("max_size", "2")]);
    let pool = Arc::new(pool);
    settle(&pool, "min_size", |s| s.idle == 2);
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let pool = pool.clone();
            std::thread::spawn(move || -> std::result::Result<(), String> {
                let waker = std::task::Waker::from(Arc::new(ThreadWaker(std::thread::current())));
                for n in 0..1000 {
                    let started = Instant::now();
                    let mut acquire = pool.start_acquire(Some(Duration::from_secs(10)));
                    let c = loop {
                        match acquire.poll(Some(&waker)) {
                            Ok(Some(c)) => break acquire.accept(c, || "task".into()),
                            Ok(None) => std::thread::park_timeout(Duration::from_secs(2)),
                            Err(e) => return Err(format!("worker {i}, {n}: {e}")),
                        }
                    };
                    let took = started.elapsed();
                    if took > Duration::from_secs(1) {
                        return Err(format!("worker {i}, {n}: woken after {took:?}"));
                    }
                    std::thread::yield_now();
                    drop(c);
                }
                Ok(())
            })
        })
        .collect();
    while !workers.iter().all(|w| w.is_finished()) {
        pool.drain().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    for w in workers {
        w.join().unwrap().unwrap();
    }
    settle(&pool, "quiescent", |s| s.pending == 0);
    let s = pool.stats();
    assert_eq!(
        (s.total, s.idle, s.in_use, s.waiting),
        (2, 2, 0, 0),
        "{s:?}"
    );
}

/// Shrinking while threads borrow, give back, and abandon acquires that
/// were handed a connection: once all are done, the pool holds no more
/// than the new `max_size`, all idle, and releases park again.
#[test]
fn a_shrink_racing_releases_and_abandoned_handoffs_leaves_max_size() {
    let (_fake, pool) = pool("shrink-race", &[("min_size", "0"), ("max_size", "4")]);
    let pool = Arc::new(pool);
    for round in 0..20u64 {
        pool.resize(2, 4).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..5)
            .map(|i| {
                let (pool, stop) = (pool.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        if (n + i) % 4 == 0 {
                            // Queues (or is served), then gives up.
                            let mut a = pool.start_acquire(Some(Duration::from_secs(2)));
                            let got = a.poll(None).unwrap();
                            std::thread::yield_now();
                            drop(got);
                            drop(a);
                        } else {
                            let c = pool.acquire(Some(Duration::from_secs(2))).unwrap();
                            std::thread::yield_now();
                            drop(c);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(500 + 300 * (round % 7)));
        pool.resize(0, 1).unwrap();
        std::thread::sleep(Duration::from_micros(300));
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
        settle(&pool, "quiescent", |s| s.pending == 0 && s.waiting == 0);
        let s = pool.stats();
        assert!(s.total <= 1, "round {round}: {s:?}");
        assert_eq!((s.idle, s.in_use), (s.total, 0), "round {round}: {s:?}");
        drop(pool.acquire(Some(Duration::from_secs(1))).unwrap());
        assert_eq!(
            pool.shared.rules.parkable.load(Ordering::SeqCst),
            lock(&pool.shared.state).generation,
            "round {round}: parking stays off"
        );
    }
}

/// The maintenance thread does not keep a dropped pool's shared state
/// (and its parked connections) alive.
#[test]
fn the_maintenance_thread_lets_a_dropped_pool_go() {
    let fake = Arc::new(Fake::new("maint-drop"));
    let pool = Pool::open(fake, settings(&[("min_size", "1"), ("max_size", "2")])).unwrap();
    settle(&pool, "min_size", |s| s.idle == 1);
    drop(pool.acquire(None).unwrap());
    let weak = Arc::downgrade(&pool.shared);
    drop(pool);
    let started = Instant::now();
    while weak.upgrade().is_some() {
        assert!(started.elapsed() < Duration::from_secs(2), "kept alive");
        std::thread::sleep(Duration::from_millis(1));
    }
}
