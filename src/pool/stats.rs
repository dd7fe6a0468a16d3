//! The pool's counters and the statistics it reports.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Monotonic counters, owned by the pool.
#[derive(Default)]
pub struct Counters {
    pub created: AtomicU64,
    pub closed: AtomicU64,
    pub broken: AtomicU64,
    /// Bumped by every acquire: striped.
    pub acquires: StripedCounter,
    pub timeouts: AtomicU64,
    pub refused: AtomicU64,
    pub wait_total_us: AtomicU64,
    pub wait_max_us: AtomicU64,
    pub leaks: AtomicU64,
    pub connect_errors: AtomicU64,
}

impl Counters {
    pub(super) fn on_wait(&self, waited: Duration) {
        let us = waited.as_micros() as u64;
        self.wait_total_us.fetch_add(us, Ordering::Relaxed);
        self.wait_max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub(super) fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

const STRIPES: usize = 8;

/// A counter that threads bump at once without passing one cache line
/// back and forth: each thread adds to a stripe of its own (chosen at its
/// first use, round-robin), and reading sums the stripes. A read sees
/// every addition that happened before it.
#[derive(Default)]
pub struct StripedCounter {
    stripes: [Stripe; STRIPES],
}

#[derive(Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

thread_local! {
    static THREAD_NUMBER: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A number of the calling thread's own (handed out in order at its first
/// use): picks its counter stripe, its parking spot and its lane.
pub(super) fn thread_number() -> usize {
    THREAD_NUMBER.with(|n| {
        if n.get() == usize::MAX {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            n.set(NEXT.fetch_add(1, Ordering::Relaxed) % (usize::MAX - 1));
        }
        n.get()
    })
}

impl StripedCounter {
    /// Adds `n` on the stripe of `thread` ([`thread_number`]).
    pub fn add(&self, thread: usize, n: u64) {
        self.stripes[thread % STRIPES]
            .0
            .fetch_add(n, Ordering::Relaxed);
    }

    pub fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// Pool statistics, filled by `sqlpool_pool_stats`. Fields are only ever
/// appended; pass `sizeof(sqlpool_stats)` so an older program keeps
/// working with a newer library.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Open connections (idle + in use + being health-checked or handed
    /// over).
    pub total: u32,
    pub idle: u32,
    /// Connections held by callers (not those being health-checked, nor
    /// those handed to a waiter that has not taken them yet).
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
