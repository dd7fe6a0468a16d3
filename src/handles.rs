//! Generational handle tables.
//!
//! Every object handed to C is stored here and C receives an opaque pointer
//! that *encodes* (kind, slot index, generation) and is never dereferenced.
//! A released handle's slot gets a new generation, so a stale, double
//! released or forged handle, or one of the wrong kind, is detected and
//! reported instead of touching freed memory — even after the slot has
//! been reused for a new object.
//!
//! Fork: pools, connections and queues hold sockets, threads and locks of
//! the process that made them. A child process (after `fork()`) must not
//! touch them: each handle remembers the fork epoch it was made in (the
//! epoch moves on in every child, see `ffi::fork`), and a handle from an
//! earlier epoch is refused as misuse; freeing it in the child forgets the
//! object without closing anything the parent still uses.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};

use crate::error::{Error, Result};

/// What a handle points at. Encoded in the low 4 bits; never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum HandleKind {
    Pool = 1,
    Options = 2,
    Conn = 3,
    Result = 4,
    Params = 5,
    Queue = 6,
    Stream = 7,
    Copy = 8,
    Notification = 9,
    Error = 10,
    Task = 11,
}

/// A table's count of live handles, for [`live_handles`].
trait LiveCount: Sync {
    fn live(&self) -> usize;
}

/// Every table that has issued a handle (registered at its first insert).
static TABLES: Mutex<Vec<&'static dyn LiveCount>> = Mutex::new(Vec::new());

/// How many handles (of every kind) are live in this process.
pub fn live_handles() -> usize {
    let tables = TABLES.lock().unwrap_or_else(|p| p.into_inner());
    tables.iter().map(|t| t.live()).sum()
}

/// Bumped in the child after every `fork()`.
static FORK_EPOCH: AtomicU32 = AtomicU32::new(0);

/// Called (only) by the `pthread_atfork` child handler: async-signal-safe.
pub fn note_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::SeqCst);
}

fn fork_epoch() -> u32 {
    FORK_EPOCH.load(Ordering::Relaxed)
}

impl HandleKind {
    /// Objects that own connections, threads or file descriptors: unusable
    /// in a child process.
    fn owns_process_resources(self) -> bool {
        matches!(
            self,
            HandleKind::Pool
                | HandleKind::Conn
                | HandleKind::Queue
                | HandleKind::Stream
                | HandleKind::Copy
                | HandleKind::Task
        )
    }

    /// Read by every thread, written rarely: stored in every shard (see
    /// [`HandleTable`]).
    fn is_replicated(self) -> bool {
        self == HandleKind::Pool
    }

    fn from_bits(bits: usize) -> Option<HandleKind> {
        Some(match bits {
            1 => HandleKind::Pool,
            2 => HandleKind::Options,
            3 => HandleKind::Conn,
            4 => HandleKind::Result,
            5 => HandleKind::Params,
            6 => HandleKind::Queue,
            7 => HandleKind::Stream,
            8 => HandleKind::Copy,
            9 => HandleKind::Notification,
            10 => HandleKind::Error,
            11 => HandleKind::Task,
            _ => return None,
        })
    }

    pub fn noun(self) -> &'static str {
        match self {
            HandleKind::Pool => "pool",
            HandleKind::Options => "options object",
            HandleKind::Conn => "connection",
            HandleKind::Result => "result",
            HandleKind::Params => "parameter list",
            HandleKind::Queue => "completion queue",
            HandleKind::Stream => "stream",
            HandleKind::Copy => "COPY",
            HandleKind::Notification => "notification",
            HandleKind::Error => "error",
            HandleKind::Task => "task",
        }
    }

    fn gone(self) -> &'static str {
        match self {
            HandleKind::Pool => "was already closed",
            HandleKind::Conn => "was already released",
            _ => "was already freed",
        }
    }
}

const KIND_BITS: u32 = 4;
const INDEX_BITS: u32 = 28;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// The low bits of an index choose its shard.
const SHARD_BITS: u32 = 3;
const SHARDS: usize = 1 << SHARD_BITS;
/// Slots per shard.
const SLOT_MASK: usize = INDEX_MASK >> SHARD_BITS;
/// Generation bits left in a pointer-sized handle.
const GEN_BITS: u32 = usize::BITS - KIND_BITS - INDEX_BITS;
const GEN_MASK: u64 = if GEN_BITS >= 64 {
    u64::MAX
} else {
    (1u64 << GEN_BITS) - 1
};

struct Slot<T> {
    generation: u64,
    /// The fork epoch the value was made in.
    epoch: u32,
    value: Option<Arc<T>>,
}

struct Slots<T> {
    entries: Vec<Slot<T>>,
    free: Vec<usize>,
}

/// One shard's slots and its count of live handles, on cache lines of
/// their own: a thread that makes and drops handles in its shard writes no
/// line another thread's shard uses.
#[repr(align(128))]
struct Shard<T> {
    slots: RwLock<Slots<T>>,
    /// Changed under the shard's write lock.
    live: AtomicUsize,
}

/// A table of handles of one kind. Its slots are split into shards, each
/// with its own lock; a thread stores its objects in one shard (chosen
/// when it first stores one), so threads that each make and drop their
/// own handles (connections, results) do not contend for a lock.
///
/// Pools are the other way round: few, made and closed rarely, read by
/// every thread on every acquire. Every shard holds all of them (shard 0
/// issues and removes them and copies each change to the others before it
/// returns), so a reader takes only its own thread's shard lock, and
/// threads acquiring from one pool do not pass a lock's cache line back
/// and forth.
pub struct HandleTable<T> {
    kind: HandleKind,
    shards: [Shard<T>; SHARDS],
    registered: AtomicBool,
}

thread_local! {
    /// The shard this thread stores its handles in.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's shard, assigned round-robin at its first use.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}

impl<T: Send + Sync> LiveCount for HandleTable<T> {
    fn live(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.live.load(Ordering::Relaxed))
            .sum()
    }
}

impl<T: Send + Sync + 'static> HandleTable<T> {
    pub const fn new(kind: HandleKind) -> HandleTable<T> {
        HandleTable {
            kind,
            shards: [const {
                Shard {
                    slots: RwLock::new(Slots {
                        entries: Vec::new(),
                        free: Vec::new(),
                    }),
                    live: AtomicUsize::new(0),
                }
            }; SHARDS],
            registered: AtomicBool::new(false),
        }
    }

    fn encode(&self, index: usize, generation: u64) -> usize {
        (((generation & GEN_MASK) as usize) << (KIND_BITS + INDEX_BITS))
            | (index << KIND_BITS)
            | self.kind as usize
    }

    /// The shard that holds a (checked) index: the one the index names, or
    /// for a replicated table the calling thread's own.
    fn shard_to_read(&self, index: usize) -> &RwLock<Slots<T>> {
        let shard = if self.kind.is_replicated() {
            my_shard()
        } else {
            index & (SHARDS - 1)
        };
        &self.shards[shard].slots
    }

    fn lock_shard(&self, shard: usize) -> RwLockWriteGuard<'_, Slots<T>> {
        self.shards[shard]
            .slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A replicated table keeps its free list and generations in shard 0;
    /// this copies slot `index` from there to every other shard. Called
    /// with shard 0 write-locked (which orders the writers).
    fn mirror(&self, index: usize, slot: &Slot<T>) {
        for shard in 1..SHARDS {
            let mut slots = self.lock_shard(shard);
            if slots.entries.len() <= index {
                slots.entries.resize_with(index + 1, || Slot {
                    generation: 0,
                    epoch: 0,
                    value: None,
                });
            }
            slots.entries[index] = Slot {
                generation: slot.generation,
                epoch: slot.epoch,
                value: slot.value.clone(),
            };
        }
    }

    fn count(&self, shard: usize, delta: isize) {
        // Under the shard's write lock: never contended by another writer.
        let n = &self.shards[shard].live;
        n.store(
            n.load(Ordering::Relaxed).wrapping_add_signed(delta),
            Ordering::Relaxed,
        );
    }

    /// Stores `value` and returns its handle.
    pub fn insert(&'static self, value: Arc<T>) -> Result<usize> {
        if self.kind.owns_process_resources() {
            crate::ffi::fork::install();
        }
        if !self.registered.load(Ordering::Acquire) {
            let mut tables = TABLES.lock().unwrap_or_else(|p| p.into_inner());
            if !self.registered.load(Ordering::Relaxed) {
                tables.push(self);
                self.registered.store(true, Ordering::Release);
            }
        }
        let shard = if self.kind.is_replicated() {
            0
        } else {
            my_shard()
        };
        let mut slots = self.lock_shard(shard);
        let index = match slots.free.pop() {
            Some(i) => i,
            None => {
                if slots.entries.len() > SLOT_MASK {
                    return Err(Error::new(
                        crate::error::Status::Internal,
                        "too many live handles",
                    ));
                }
                slots.entries.push(Slot {
                    generation: 1,
                    epoch: 0,
                    value: None,
                });
                slots.entries.len() - 1
            }
        };
        let slot = &mut slots.entries[index];
        slot.value = Some(value);
        slot.epoch = fork_epoch();
        let generation = slot.generation;
        if self.kind.is_replicated() {
            self.mirror(index, slot);
        }
        self.count(shard, 1);
        Ok(self.encode(index << SHARD_BITS | shard, generation))
    }

    fn check(&self, raw: usize) -> Result<(usize, u64)> {
        let bits = raw & ((1 << KIND_BITS) - 1);
        match HandleKind::from_bits(bits) {
            Some(k) if k == self.kind => {}
            Some(k) => {
                return Err(Error::misuse(format!(
                    "expected a {} handle but got a {} handle",
                    self.kind.noun(),
                    k.noun()
                )))
            }
            None => {
                return Err(Error::misuse(format!(
                    "not a {} handle issued by this library",
                    self.kind.noun()
                )))
            }
        }
        let index = (raw >> KIND_BITS) & INDEX_MASK;
        if self.kind.is_replicated() && index & (SHARDS - 1) != 0 {
            // (Issued from shard 0 only.)
            return Err(self.foreign());
        }
        let generation = ((raw >> (KIND_BITS + INDEX_BITS)) as u64) & GEN_MASK;
        Ok((index, generation))
    }

    fn inherited(&self) -> Error {
        Error::misuse(format!(
            "this {} was used in a child process after fork; open a new pool in the child",
            self.kind.noun()
        ))
    }

    /// Whether a slot's value was made before this process forked.
    fn is_inherited(&self, epoch: u32) -> bool {
        self.kind.owns_process_resources() && epoch != fork_epoch()
    }

    fn stale(&self) -> Error {
        Error::misuse(format!("this {} {}", self.kind.noun(), self.kind.gone()))
    }

    /// The object behind a live handle.
    pub fn get(&self, raw: usize) -> Result<Arc<T>> {
        self.with_arc(raw, |v| Ok(v.clone()))
    }

    /// Runs `f` on the object without touching its reference count (the
    /// read lock keeps it alive); for hot getters.
    pub fn with<R>(&self, raw: usize, f: impl FnOnce(&T) -> Result<R>) -> Result<R> {
        self.with_arc(raw, |v| f(v))
    }

    fn with_arc<R>(&self, raw: usize, f: impl FnOnce(&Arc<T>) -> Result<R>) -> Result<R> {
        let (index, generation) = self.check(raw)?;
        let slots = self
            .shard_to_read(index)
            .read()
            .unwrap_or_else(|p| p.into_inner());
        match slots.entries.get(index >> SHARD_BITS) {
            Some(Slot {
                generation: g,
                epoch,
                value: Some(v),
            }) if g & GEN_MASK == generation => {
                if self.is_inherited(*epoch) {
                    return Err(self.inherited());
                }
                f(v)
            }
            Some(_) => Err(self.stale()),
            None => Err(self.foreign()),
        }
    }

    fn foreign(&self) -> Error {
        Error::misuse(format!(
            "not a {} handle issued by this library",
            self.kind.noun()
        ))
    }

    /// Invalidates the handle and returns its object. A second call with the
    /// same handle fails as misuse. An object inherited across `fork()` is
    /// forgotten, not dropped (dropping would close the parent's
    /// connections), and the call fails as misuse.
    pub fn remove(&self, raw: usize) -> Result<Arc<T>> {
        self.remove_if(raw, |_| Ok(()))
    }

    /// [`HandleTable::remove`] if `allow` agrees: it sees the object under
    /// the table's lock (so it must not block), and its error leaves the
    /// handle valid.
    pub fn remove_if(&self, raw: usize, allow: impl FnOnce(&T) -> Result<()>) -> Result<Arc<T>> {
        let (index, generation) = self.check(raw)?;
        let shard = index & (SHARDS - 1);
        let index = index >> SHARD_BITS;
        let mut slots = self.lock_shard(shard);
        let value = match slots.entries.get_mut(index) {
            Some(slot) if slot.generation & GEN_MASK == generation && slot.value.is_some() => {
                // (An object inherited across fork is only forgotten.)
                if let Some(v) = &slot.value {
                    if !self.is_inherited(slot.epoch) {
                        allow(v)?;
                    }
                }
                slot.generation = slot.generation.wrapping_add(1);
                if slot.generation & GEN_MASK == 0 {
                    slot.generation = slot.generation.wrapping_add(1);
                }
                let value = slot.value.take();
                if self.kind.is_replicated() {
                    self.mirror(index, slot);
                }
                value
            }
            Some(_) => return Err(self.stale()),
            None => return Err(self.foreign()),
        };
        let inherited = self.is_inherited(slots.entries[index].epoch);
        slots.free.push(index);
        self.count(shard, -1);
        drop(slots);
        let value = value.expect("checked above");
        if inherited {
            std::mem::forget(value);
            return Err(self.inherited());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the fork check moves a process-wide epoch, which would
    // refuse the pool handles of a test running alongside.
    #[test]
    fn handle_checks() {
        stale_and_wrong_kind_handles_are_detected();
        replicated_pools_are_the_same_on_every_thread();
        objects_from_before_a_fork_are_refused_and_never_dropped();
    }

    /// Threads store their handles in shards of their own; any thread
    /// reads and removes any handle, and the live count sums the shards.
    #[test]
    fn handles_of_many_threads_are_shared_by_all() {
        static TABLE: HandleTable<usize> = HandleTable::new(HandleKind::Params);
        let made: Vec<Vec<usize>> = (0..SHARDS + 3)
            .map(|t| {
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| TABLE.insert(Arc::new(t * 1000 + i)).unwrap())
                        .collect()
                })
                .join()
                .unwrap()
            })
            .collect();
        let shards: std::collections::HashSet<usize> = made
            .iter()
            .map(|h| (h[0] >> KIND_BITS) & (SHARDS - 1))
            .collect();
        assert!(shards.len() > 1, "threads use shards of their own");
        assert_eq!(TABLE.live(), (SHARDS + 3) * 50);
        for (t, handles) in made.iter().enumerate() {
            for (i, h) in handles.iter().enumerate() {
                assert_eq!(*TABLE.get(*h).unwrap(), t * 1000 + i);
            }
        }
        // Removed on another thread than the one that made them.
        let all: Vec<usize> = made.concat();
        let removed = all.clone();
        std::thread::spawn(move || {
            for h in removed {
                TABLE.remove(h).unwrap();
            }
        })
        .join()
        .unwrap();
        assert_eq!(TABLE.live(), 0);
        assert!(all.iter().all(|h| TABLE.get(*h).is_err()));
        // Slots are reused with new generations.
        let again = TABLE.insert(Arc::new(1)).unwrap();
        assert!(!all.contains(&again));
        TABLE.remove(again).unwrap();
    }

    /// A pool is stored in every shard: threads of every shard read the
    /// same object, a handle removed on any thread is stale on all of them,
    /// and nothing is counted, kept or dropped twice.
    fn replicated_pools_are_the_same_on_every_thread() {
        static TABLE: HandleTable<usize> = HandleTable::new(HandleKind::Pool);
        let made: Vec<(usize, Arc<usize>)> = (0..SHARDS + 3)
            .map(|t| {
                std::thread::spawn(move || {
                    let value = Arc::new(t);
                    (TABLE.insert(value.clone()).unwrap(), value)
                })
                .join()
                .unwrap()
            })
            .collect();
        assert_eq!(TABLE.live(), SHARDS + 3, "counted once, not per replica");
        let handles: Vec<usize> = made.iter().map(|(h, _)| *h).collect();
        // Every thread (one per shard and more) sees every pool.
        let readers: Vec<_> = (0..SHARDS + 3)
            .map(|_| {
                let handles = handles.clone();
                std::thread::spawn(move || {
                    for (t, h) in handles.iter().enumerate() {
                        assert_eq!(*TABLE.get(*h).unwrap(), t);
                        assert_eq!(TABLE.with(*h, |v| Ok(*v)).unwrap(), t);
                    }
                })
            })
            .collect();
        readers.into_iter().for_each(|r| r.join().unwrap());
        // Removed on other threads: gone for all, and the caller gets the
        // last table reference.
        let removers: Vec<_> = handles
            .iter()
            .map(|h| {
                let h = *h;
                std::thread::spawn(move || Arc::strong_count(&TABLE.remove(h).unwrap()))
            })
            .collect();
        for r in removers {
            assert_eq!(r.join().unwrap(), 2, "the test's and the returned one");
        }
        assert_eq!(TABLE.live(), 0);
        for h in &handles {
            for _ in 0..SHARDS {
                std::thread::spawn({
                    let h = *h;
                    move || assert!(TABLE.get(h).unwrap_err().message.contains("already closed"))
                })
                .join()
                .unwrap();
            }
            assert!(TABLE.remove(*h).is_err(), "removed once only");
        }
        assert!(made.iter().all(|(_, v)| Arc::strong_count(v) == 1));
        // A live pool's handle pointing at another shard is forged.
        let live = TABLE.insert(Arc::new(9)).unwrap();
        let forged = live | (1 << KIND_BITS);
        assert!(TABLE
            .get(forged)
            .unwrap_err()
            .message
            .contains("not a pool handle"));
        assert!(TABLE.remove(forged).is_err());
        assert_eq!(*TABLE.remove(live).unwrap(), 9);
        // Slots are reused with new generations.
        let again = TABLE.insert(Arc::new(1)).unwrap();
        assert!(!handles.contains(&again));
        assert_eq!(*TABLE.get(again).unwrap(), 1);
        TABLE.remove(again).unwrap();
    }

    fn stale_and_wrong_kind_handles_are_detected() {
        static POOLS: HandleTable<u32> = HandleTable::new(HandleKind::Pool);
        static CONNS: HandleTable<u32> = HandleTable::new(HandleKind::Conn);
        let (pools, conns) = (&POOLS, &CONNS);
        let a = pools.insert(Arc::new(1)).unwrap();
        assert_eq!(*pools.get(a).unwrap(), 1);
        pools.remove(a).unwrap();
        let b = pools.insert(Arc::new(2)).unwrap();
        assert_ne!(a, b, "a reused slot gets a new generation");
        assert!(pools.get(a).unwrap_err().message.contains("already closed"));
        assert!(pools.remove(a).is_err());
        assert_eq!(*pools.get(b).unwrap(), 2);
        assert!(conns
            .get(b)
            .unwrap_err()
            .message
            .contains("got a pool handle"));
        assert!(pools.get(0xdead_0000).is_err());
    }

    fn objects_from_before_a_fork_are_refused_and_never_dropped() {
        #[derive(Debug)]
        struct Loud(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Loud {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        static QUEUES: HandleTable<Loud> = HandleTable::new(HandleKind::Queue);
        static RESULTS: HandleTable<u32> = HandleTable::new(HandleKind::Result);
        let (queues, results) = (&QUEUES, &RESULTS);
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let q = queues.insert(Arc::new(Loud(dropped.clone()))).unwrap();
        let r = results.insert(Arc::new(7)).unwrap();
        note_fork_in_child(); // as the child handler does
        let e = queues.get(q).unwrap_err();
        assert!(e.message.contains("after fork"), "{}", e.message);
        assert!(queues.remove(q).unwrap_err().message.contains("after fork"));
        assert!(!dropped.load(Ordering::SeqCst), "nothing closed");
        assert!(queues.get(q).unwrap_err().message.contains("already freed"));
        // Plain data stays usable; new objects work.
        assert_eq!(*results.get(r).unwrap(), 7);
        let q2 = queues.insert(Arc::new(Loud(Arc::default()))).unwrap();
        assert!(queues.get(q2).is_ok());
        // (FORK_EPOCH is per process: other tests' handles made before this
        // line would now be refused, so this test owns its tables.)
    }
}
