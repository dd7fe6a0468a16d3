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

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

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
}

/// Handles of every table not yet removed (`sqlpool_live_handles`).
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many handles (of every kind) are live in this process.
pub fn live_handles() -> usize {
    LIVE.load(Ordering::Relaxed)
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
        )
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

pub struct HandleTable<T> {
    kind: HandleKind,
    slots: RwLock<Slots<T>>,
}

impl<T> HandleTable<T> {
    pub const fn new(kind: HandleKind) -> HandleTable<T> {
        HandleTable {
            kind,
            slots: RwLock::new(Slots {
                entries: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn encode(&self, index: usize, generation: u64) -> usize {
        (((generation & GEN_MASK) as usize) << (KIND_BITS + INDEX_BITS))
            | (index << KIND_BITS)
            | self.kind as usize
    }

    /// Stores `value` and returns its handle.
    pub fn insert(&self, value: Arc<T>) -> Result<usize> {
        if self.kind.owns_process_resources() {
            crate::ffi::fork::install();
        }
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let index = match slots.free.pop() {
            Some(i) => i,
            None => {
                if slots.entries.len() > INDEX_MASK {
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
        LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(self.encode(index, slot.generation))
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
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        match slots.entries.get(index) {
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
            None => Err(Error::misuse(format!(
                "not a {} handle issued by this library",
                self.kind.noun()
            ))),
        }
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
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
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
                slot.value.take()
            }
            Some(_) => return Err(self.stale()),
            None => {
                return Err(Error::misuse(format!(
                    "not a {} handle issued by this library",
                    self.kind.noun()
                )))
            }
        };
        let inherited = self.is_inherited(slots.entries[index].epoch);
        slots.free.push(index);
        LIVE.fetch_sub(1, Ordering::Relaxed);
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
        objects_from_before_a_fork_are_refused_and_never_dropped();
    }

    fn stale_and_wrong_kind_handles_are_detected() {
        let pools: HandleTable<u32> = HandleTable::new(HandleKind::Pool);
        let conns: HandleTable<u32> = HandleTable::new(HandleKind::Conn);
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
        let queues: HandleTable<Loud> = HandleTable::new(HandleKind::Queue);
        let results: HandleTable<u32> = HandleTable::new(HandleKind::Result);
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
