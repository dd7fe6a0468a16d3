//! Generational handle tables.
//!
//! Every object handed to C is stored here and C receives an opaque pointer
//! that *encodes* (kind, slot index, generation) and is never dereferenced.
//! A released handle's slot gets a new generation, so a stale, double
//! released or forged handle, or one of the wrong kind, is detected and
//! reported instead of touching freed memory — even after the slot has
//! been reused for a new object.

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
}

impl HandleKind {
    fn from_bits(bits: usize) -> Option<HandleKind> {
        Some(match bits {
            1 => HandleKind::Pool,
            2 => HandleKind::Options,
            3 => HandleKind::Conn,
            4 => HandleKind::Result,
            5 => HandleKind::Params,
            6 => HandleKind::Queue,
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
                    value: None,
                });
                slots.entries.len() - 1
            }
        };
        let slot = &mut slots.entries[index];
        slot.value = Some(value);
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
                value: Some(v),
            }) if g & GEN_MASK == generation => f(v),
            Some(_) => Err(self.stale()),
            None => Err(Error::misuse(format!(
                "not a {} handle issued by this library",
                self.kind.noun()
            ))),
        }
    }

    /// Invalidates the handle and returns its object. A second call with the
    /// same handle fails as misuse.
    pub fn remove(&self, raw: usize) -> Result<Arc<T>> {
        let (index, generation) = self.check(raw)?;
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let value = match slots.entries.get_mut(index) {
            Some(slot) if slot.generation & GEN_MASK == generation && slot.value.is_some() => {
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
        slots.free.push(index);
        Ok(value.expect("checked above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
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
}
