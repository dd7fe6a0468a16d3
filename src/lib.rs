//! sqlpool: pooled, blocking SQLite and PostgreSQL connections behind a
//! stable C ABI.
//!
//! The safe core (configuration, pool, backends, values, results, errors)
//! is usable from Rust; [`ffi`] is the C boundary and the only place with
//! `extern "C"` and `unsafe`.

pub mod asyncops;
pub mod backend;
pub mod config;
pub mod error;
pub mod ffi;
pub mod handles;
pub mod log;
pub mod pool;
pub mod result;
pub mod sqltext;
pub mod value;

pub use error::{Error, Result, Status};
