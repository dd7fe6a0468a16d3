//! The C ABI. The only module with `extern "C"` and `unsafe`.
//!
//! Every exported function body runs inside [`boundary`], which catches
//! panics and turns errors into a status plus the calling thread's last
//! error. Pointer arguments are checked before any reference is made.
//! Handles are encoded table keys (see `handles.rs`), never dereferenced.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]
// Every pointer is checked (NULL, length) before use and the contract is in
// each doc comment; marking the functions `unsafe` changes nothing for C.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{Checkout, Pool};
use crate::backend::{SavepointAction, TxOptions};
use crate::config::{self, PoolOptions, Recycling};
use crate::error::{panic_message, Error, Result, Status};
use crate::handles::{HandleKind, HandleTable};
use crate::log::{self, Level};
use crate::pool::Stats;
use crate::result::ResultSet;
use crate::value::{Params, Value};

mod async_api;
mod copy;
pub(crate) mod fork;
mod notify;
mod stream;
pub use async_api::*;
pub use copy::*;
pub use notify::*;
pub use stream::*;

/// Status code returned by every fallible function; `SQLPOOL_OK` (0) is
/// success. See `sqlpool_status_name` and `sqlpool_last_error_message`.
pub type sqlpool_status = Status;

/// The version of this header; compare with `sqlpool_version()` at run time.
pub const SQLPOOL_VERSION_MAJOR: u32 = 0;
pub const SQLPOOL_VERSION_MINOR: u32 = 1;
pub const SQLPOOL_VERSION_PATCH: u32 = 0;

/// A pool of connections to one database.
///
/// Thread-safety: share freely across threads; every function may be called
/// on the same pool from many threads at once.
///
/// Created by `sqlpool_pool_open`; closed (exactly once) by
/// `sqlpool_pool_close`. Functions: `sqlpool_pool_open`,
/// `sqlpool_pool_acquire`, `sqlpool_pool_execute`, `sqlpool_pool_query`,
/// `sqlpool_pool_stats`, `sqlpool_pool_resize`, `sqlpool_pool_drain`,
/// `sqlpool_pool_close`.
pub struct sqlpool_pool {
    _private: [u8; 0],
}

/// Pool options: an opaque builder, so new options never change the ABI.
///
/// Thread-safety: may be used from any thread; set options from one thread
/// at a time. The caller owns it and frees it with `sqlpool_options_free`;
/// `sqlpool_pool_open` copies what it needs and does not take it over.
pub struct sqlpool_options {
    _private: [u8; 0],
}

/// A connection borrowed from a pool.
///
/// Thread-safety: may move between threads, one call at a time (a second
/// concurrent call returns `SQLPOOL_BUSY`). Given back, exactly once, with
/// `sqlpool_conn_release`. It stays usable after its pool is closed, and
/// closes when released.
pub struct sqlpool_conn {
    _private: [u8; 0],
}

/// The rows of a query, fully read into memory.
///
/// Thread-safety: immutable; any thread may read it, also at once. The
/// caller owns it and frees it with `sqlpool_result_free`. Pointers from
/// its getters stay valid until then.
pub struct sqlpool_result {
    _private: [u8; 0],
}

/// Statement parameters, positional or named.
///
/// Thread-safety: may move between threads, one call at a time. The caller
/// owns it and frees it with `sqlpool_params_free`; statement functions
/// only read it, so one list can be reused for many calls.
pub struct sqlpool_params {
    _private: [u8; 0],
}

static POOLS: HandleTable<Pool> = HandleTable::new(HandleKind::Pool);
static OPTIONS: HandleTable<Mutex<PoolOptions>> = HandleTable::new(HandleKind::Options);
static CONNS: HandleTable<ConnSlot> = HandleTable::new(HandleKind::Conn);
static RESULTS: HandleTable<ResultSet> = HandleTable::new(HandleKind::Result);
static PARAMS: HandleTable<Mutex<Params>> = HandleTable::new(HandleKind::Params);

/// A borrowed connection's table entry: one call at a time.
struct ConnSlot {
    checkout: Mutex<Checkout>,
}

// ---------------------------------------------------------------------------
// The boundary: panics, errors, the calling thread's last error.

struct LastError {
    error: Error,
    message: CString,
    sqlstate: CString,
    json: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

pub(crate) fn set_last_error(error: Error) -> sqlpool_status {
    let status = error.status;
    let last = LastError {
        message: c_string(&error.message),
        sqlstate: c_string(error.sqlstate.as_deref().unwrap_or("")),
        json: c_string(&error.to_json()),
        error,
    };
    LAST_ERROR.with(|cell| *cell.borrow_mut() = Some(last));
    status
}

/// Runs an exported function's body: errors become a status and the last
/// error; a panic becomes `SQLPOOL_PANIC` instead of unwinding into C.
fn boundary(body: impl FnOnce() -> Result<()>) -> sqlpool_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => Status::Ok,
        Ok(Err(e)) => set_last_error(e),
        Err(payload) => set_last_error(Error::new(
            Status::Panic,
            format!(
                "internal panic caught at the C boundary: {}",
                panic_message(&*payload)
            ),
        )),
    }
}

/// The boundary for the few functions that return a value instead of a
/// status: a panic yields `fallback`.
fn boundary_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn null_arg(name: &str) -> Error {
    Error::invalid_argument(format!("{name} is NULL"))
}

fn handle<T>(ptr: *const T, name: &str) -> Result<usize> {
    if ptr.is_null() {
        Err(null_arg(name))
    } else {
        Ok(ptr as usize)
    }
}

unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(null_arg(name));
    }
    // SAFETY: the caller passes a NUL-terminated string (documented).
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|e| {
        Error::new(
            Status::InvalidUtf8,
            format!("{name} is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

unsafe fn opt_str_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        unsafe { str_arg(ptr, name) }.map(Some)
    }
}

unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::invalid_argument(format!(
            "{name} is NULL but its length is {len}"
        )));
    }
    // SAFETY: the caller passes `len` readable bytes (documented); NULL and
    // zero length were handled above.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes an out-parameter (only on success, per our conventions).
unsafe fn put<T>(out: *mut T, value: T) {
    // SAFETY: checked non-NULL by the caller via `out_arg` first.
    unsafe { out.write(value) }
}

fn out_arg<T>(out: *mut T, name: &str) -> Result<()> {
    if out.is_null() {
        Err(null_arg(name))
    } else {
        Ok(())
    }
}

fn params_of(params: *const sqlpool_params) -> Result<Params> {
    if params.is_null() {
        return Ok(Params::new());
    }
    PARAMS.with(params as usize, |p| Ok(lock_ok(p).clone()))
}

/// Copies an array of `count` parameter lists (a batch's sets).
unsafe fn param_sets_of(
    param_sets: *const *const sqlpool_params,
    count: usize,
) -> Result<Vec<Params>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if param_sets.is_null() {
        return Err(Error::invalid_argument(
            "param_sets is NULL but count is not 0",
        ));
    }
    // SAFETY: non-NULL and the caller passes `count` elements.
    let handles = unsafe { std::slice::from_raw_parts(param_sets, count) };
    handles
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if p.is_null() {
                return Err(Error::invalid_argument(format!("param_sets[{i}] is NULL")));
            }
            params_of(*p)
        })
        .collect()
}

/// Runs `f` with the caller's parameters read in place (no copy); the list's
/// own lock is held for the call, the handle table's is not.
fn with_params<R>(
    params: *const sqlpool_params,
    f: impl FnOnce(&Params) -> Result<R>,
) -> Result<R> {
    if params.is_null() {
        return f(&Params::new());
    }
    let list = PARAMS.get(params as usize)?;
    let guard = lock_ok(&list);
    f(&guard)
}

fn lock_ok<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on a borrowed connection; refuses a concurrent second call.
fn with_conn<R>(conn: *mut sqlpool_conn, f: impl FnOnce(&mut Checkout) -> Result<R>) -> Result<R> {
    let slot = CONNS.get(handle(conn, "conn")?)?;
    let mut guard = slot.checkout.try_lock().map_err(|e| match e {
        std::sync::TryLockError::WouldBlock => Error::new(
            Status::Busy,
            "the connection is in use by another thread (one call at a time)",
        ),
        std::sync::TryLockError::Poisoned(_) => {
            Error::misuse("the connection was poisoned by an earlier panic; release it")
        }
    })?;
    if guard.is_lent() {
        return Err(Error::new(
            Status::Busy,
            "an asynchronous operation, an open stream or a COPY is using this connection (one at a time)",
        ));
    }
    f(&mut guard)
}

fn store_result(result: ResultSet, out: *mut *mut sqlpool_result) -> Result<()> {
    let h = RESULTS.insert(Arc::new(result))?;
    unsafe { put(out, h as *mut sqlpool_result) };
    Ok(())
}

// ---------------------------------------------------------------------------
// Library

/// The library version, e.g. "0.1.0". A static string; never free it.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn sqlpool_version() -> *const c_char {
    boundary_value(std::ptr::null(), || {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

/// The symbolic name of a status code ("SQLPOOL_POOL_TIMEOUT"), or
/// "SQLPOOL_UNKNOWN" for a number that is not one. A static string; never
/// free it. Thread-safe.
#[no_mangle]
pub extern "C" fn sqlpool_status_name(status: u32) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        let name = ALL_STATUSES
            .iter()
            .find(|s| **s as u32 == status)
            .map_or("SQLPOOL_UNKNOWN", |s| s.name());
        // Names are 'static; NUL-terminate them once.
        static NAMES: once_cell::sync::Lazy<std::collections::HashMap<&'static str, CString>> =
            once_cell::sync::Lazy::new(|| {
                ALL_STATUSES
                    .iter()
                    .map(|s| s.name())
                    .chain(["SQLPOOL_UNKNOWN"])
                    .map(|n| (n, CString::new(n).unwrap_or_default()))
                    .collect()
            });
        NAMES.get(name).map_or(std::ptr::null(), |c| c.as_ptr())
    })
}

const ALL_STATUSES: [Status; 26] = [
    Status::Ok,
    Status::InvalidArgument,
    Status::InvalidUtf8,
    Status::InvalidUri,
    Status::InvalidOption,
    Status::Misuse,
    Status::OutOfRange,
    Status::TypeMismatch,
    Status::NullValue,
    Status::PoolTimeout,
    Status::PoolClosed,
    Status::PoolExhausted,
    Status::ConnectionError,
    Status::AuthError,
    Status::DatabaseError,
    Status::ConstraintViolation,
    Status::ParameterError,
    Status::Unsupported,
    Status::Cancelled,
    Status::Busy,
    Status::TransactionState,
    Status::BufferTooSmall,
    Status::Empty,
    Status::QueryTimeout,
    Status::Internal,
    Status::Panic,
];

fn last_error_field(pick: impl Fn(&LastError) -> *const c_char) -> *const c_char {
    boundary_value(c"".as_ptr(), || {
        LAST_ERROR.with(|cell| cell.borrow().as_ref().map_or(c"".as_ptr(), pick))
    })
}

/// The message of the calling thread's most recent failure ("" if none).
///
/// Errors are per thread (as in libgit2): a failing call records its detail
/// for the thread that made it; successful calls leave it alone. The string
/// is owned by the library and valid until the next failing call on this
/// thread; copy it to keep it. Secrets (passwords) never appear in it.
#[no_mangle]
pub extern "C" fn sqlpool_last_error_message() -> *const c_char {
    last_error_field(|e| e.message.as_ptr())
}

/// The SQLSTATE of the calling thread's most recent failure: PostgreSQL's
/// own, or one mapped from SQLite's result code (for example "23505" for a
/// unique violation); "" when there is none. Lifetime as
/// `sqlpool_last_error_message`.
#[no_mangle]
pub extern "C" fn sqlpool_last_error_sqlstate() -> *const c_char {
    last_error_field(|e| e.sqlstate.as_ptr())
}

/// The status of the calling thread's most recent failure (`SQLPOOL_OK` if
/// there was none).
#[no_mangle]
pub extern "C" fn sqlpool_last_error_status() -> sqlpool_status {
    boundary_value(Status::Panic, || {
        LAST_ERROR.with(|cell| {
            cell.borrow()
                .as_ref()
                .map_or(Status::Ok, |e| e.error.status)
        })
    })
}

/// The database's native code of the calling thread's most recent failure:
/// SQLite's extended result code; 0 for PostgreSQL (its code is the
/// SQLSTATE) and for errors raised by the library itself.
#[no_mangle]
pub extern "C" fn sqlpool_last_error_native_code() -> i64 {
    boundary_value(0, || {
        LAST_ERROR.with(|cell| cell.borrow().as_ref().map_or(0, |e| e.error.native_code))
    })
}

/// The calling thread's most recent failure as a JSON object with keys
/// `status`, `code`, `message`, `sqlstate`, `native_code` and, where the
/// database gave them, `detail`, `hint`, `position`; "{}" if none. Lifetime
/// as `sqlpool_last_error_message`.
#[no_mangle]
pub extern "C" fn sqlpool_last_error_json() -> *const c_char {
    boundary_value(c"{}".as_ptr(), || {
        LAST_ERROR.with(|cell| {
            cell.borrow()
                .as_ref()
                .map_or(c"{}".as_ptr(), |e| e.json.as_ptr())
        })
    })
}

// ---------------------------------------------------------------------------
// Options

/// Creates an options object with every option unset (defaults apply).
///
/// On success `*out` owns a new object; free it with `sqlpool_options_free`.
/// Errors: `SQLPOOL_INVALID_ARGUMENT` if `out` is NULL.
#[no_mangle]
pub extern "C" fn sqlpool_options_new(out: *mut *mut sqlpool_options) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let h = OPTIONS.insert(Arc::new(Mutex::new(PoolOptions::default())))?;
        unsafe { put(out, h as *mut sqlpool_options) };
        Ok(())
    })
}

/// Frees an options object. NULL is accepted and ignored. Freeing it twice
/// returns `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_options_free(options: *mut sqlpool_options) -> sqlpool_status {
    boundary(|| {
        if options.is_null() {
            return Ok(());
        }
        OPTIONS.remove(options as usize).map(drop)
    })
}

/// Sets any option by name, from text, exactly as in a URI query:
/// `min_size`, `max_size`, `max_waiting`, `acquire_timeout`,
/// `connect_timeout`, `idle_timeout`, `max_lifetime`, `check_interval`
/// (durations: `30`, `1.5`, `500ms`, `30s`, `2m`), `recycling`
/// (`fast`/`verified`/`clean`), `lazy`, `leak_threshold`,
/// `statement_cache_size`, `busy_timeout`, `journal_mode`, `pragma.NAME`
/// (SQLite), `user`, `password`, `host`, `port`, `dbname`,
/// `application_name` (PostgreSQL). Options set here win over the URI's.
///
/// Errors: `SQLPOOL_INVALID_OPTION` (unknown key or bad value; the message
/// names the option), `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_INVALID_UTF8`,
/// `SQLPOOL_MISUSE`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set(
    options: *mut sqlpool_options,
    key: *const c_char,
    value: *const c_char,
) -> sqlpool_status {
    boundary(|| {
        let key = unsafe { str_arg(key, "key") }?;
        let value = unsafe { str_arg(value, "value") }?;
        OPTIONS.with(handle(options, "options")?, |o| {
            if lock_ok(o).set_from_str(key, value)? {
                Ok(())
            } else {
                Err(Error::new(
                    Status::InvalidOption,
                    format!("unknown option {key:?}"),
                ))
            }
        })
    })
}

fn set_option(
    options: *mut sqlpool_options,
    f: impl FnOnce(&mut PoolOptions) -> Result<()>,
) -> sqlpool_status {
    boundary(|| OPTIONS.with(handle(options, "options")?, |o| f(&mut lock_ok(o))))
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Maximum number of connections (default 10, at least 1). Errors as
/// `sqlpool_options_set`.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_max_size(
    options: *mut sqlpool_options,
    max_size: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        config::check_sizes(0, max_size)?;
        o.max_size = Some(max_size);
        Ok(())
    })
}

/// Connections opened at start and kept open (default 1).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_min_size(
    options: *mut sqlpool_options,
    min_size: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.min_size = Some(min_size);
        Ok(())
    })
}

/// Most callers that may wait for a connection at once; past it acquire
/// fails at once with `SQLPOOL_POOL_EXHAUSTED`. 0 (default) = no limit.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_max_waiting(
    options: *mut sqlpool_options,
    max_waiting: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.max_waiting = Some(max_waiting);
        Ok(())
    })
}

/// How long acquire waits by default, in milliseconds (default 30000).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_acquire_timeout_ms(
    options: *mut sqlpool_options,
    timeout_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.acquire_timeout = Some(ms(timeout_ms));
        Ok(())
    })
}

/// How long opening one connection may take, in milliseconds (default
/// 10000; PostgreSQL): TCP connect, TLS, start-up and authentication, per
/// host tried.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_connect_timeout_ms(
    options: *mut sqlpool_options,
    timeout_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.connect_timeout = Some(ms(timeout_ms));
        Ok(())
    })
}

/// A client-side bound on each PostgreSQL statement, in milliseconds
/// (default 0 = none; URI option `query_timeout`). At the deadline the
/// library asks the server to cancel the statement and the call returns
/// `SQLPOOL_QUERY_TIMEOUT`; if the server does not end it within half a
/// second, the connection is closed instead. Also bounds the rollback at
/// release. Per connection: `sqlpool_conn_set_query_timeout`.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_query_timeout_ms(
    options: *mut sqlpool_options,
    timeout_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.query_timeout = Some(ms(timeout_ms));
        Ok(())
    })
}

/// Idle connections above `min_size` close after this many milliseconds
/// (default 600000; 0 = never).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_idle_timeout_ms(
    options: *mut sqlpool_options,
    timeout_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.idle_timeout = Some(ms(timeout_ms));
        Ok(())
    })
}

/// Connections are replaced after this many milliseconds, minus up to 2.5%
/// at random per connection (default 1800000; 0 = never).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_max_lifetime_ms(
    options: *mut sqlpool_options,
    lifetime_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.max_lifetime = Some(ms(lifetime_ms));
        Ok(())
    })
}

/// Idle connections are verified this often and dead ones replaced, in
/// milliseconds (default 30000; 0 = never).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_check_interval_ms(
    options: *mut sqlpool_options,
    interval_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.check_interval = Some(ms(interval_ms));
        Ok(())
    })
}

/// What checkout does: `SQLPOOL_RECYCLE_FAST` (0, nothing),
/// `SQLPOOL_RECYCLE_VERIFIED` (1, default: a cheap round trip),
/// `SQLPOOL_RECYCLE_CLEAN` (2, PostgreSQL `DISCARD ALL`). Errors:
/// `SQLPOOL_INVALID_OPTION` for another number.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_recycling(
    options: *mut sqlpool_options,
    method: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.recycling = Some(Recycling::from_u32(method).ok_or_else(|| {
            Error::new(
                Status::InvalidOption,
                format!("invalid recycling method {method} (expected 0, 1 or 2)"),
            )
        })?);
        Ok(())
    })
}

/// Nonzero: `sqlpool_pool_open` does not connect first, so it succeeds while
/// the database is unreachable. Zero (default): it fails fast.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_lazy(
    options: *mut sqlpool_options,
    lazy: i32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.lazy = Some(lazy != 0);
        Ok(())
    })
}

/// A connection held longer than this many milliseconds is reported once
/// as a possible leak (log target `sqlpool::pool`, and the stats' leak
/// count). 0 (default) = off.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_leak_threshold_ms(
    options: *mut sqlpool_options,
    threshold_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.leak_threshold = Some(ms(threshold_ms));
        Ok(())
    })
}

/// Prepared statements cached per connection (default 128; 0 = off, for
/// PgBouncer in transaction mode).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_statement_cache_size(
    options: *mut sqlpool_options,
    size: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.statement_cache_size = Some(size);
        Ok(())
    })
}

/// Sets a text option that has no typed setter: as `sqlpool_options_set`.
fn set_text(
    options: *mut sqlpool_options,
    value: *const c_char,
    name: &str,
    f: impl FnOnce(&mut PoolOptions, String),
) -> sqlpool_status {
    boundary(|| {
        let value = unsafe { str_arg(value, name) }?.to_owned();
        OPTIONS.with(handle(options, "options")?, |o| {
            f(&mut lock_ok(o), value);
            Ok(())
        })
    })
}

/// PostgreSQL user name (psqlpy's `username`); overrides the URI's.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set_user(
    options: *mut sqlpool_options,
    user: *const c_char,
) -> sqlpool_status {
    set_text(options, user, "user", |o, v| o.user = Some(v))
}

/// PostgreSQL password; overrides the URI's. Never logged or shown.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set_password(
    options: *mut sqlpool_options,
    password: *const c_char,
) -> sqlpool_status {
    set_text(options, password, "password", |o, v| o.password = Some(v))
}

/// PostgreSQL host name, address or socket directory; overrides the URI's.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set_host(
    options: *mut sqlpool_options,
    host: *const c_char,
) -> sqlpool_status {
    set_text(options, host, "host", |o, v| o.host = Some(v))
}

/// PostgreSQL database name (psqlpy's `db_name`); overrides the URI's.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set_dbname(
    options: *mut sqlpool_options,
    dbname: *const c_char,
) -> sqlpool_status {
    set_text(options, dbname, "dbname", |o, v| o.dbname = Some(v))
}

/// PostgreSQL port; overrides the URI's. Errors: `SQLPOOL_INVALID_OPTION`
/// for 0.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_port(
    options: *mut sqlpool_options,
    port: u16,
) -> sqlpool_status {
    set_option(options, |o| {
        if port == 0 {
            return Err(Error::new(
                Status::InvalidOption,
                "invalid value 0 for option port",
            ));
        }
        o.port = Some(port);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Pool

/// Opens a pool.
///
/// `uri`: `sqlite:PATH`, `sqlite://PATH`, `sqlite::memory:`,
/// `file:PATH?mode=ro`, `postgresql://user:pass@host:port/db?...` or
/// `postgres://...`; pool options may follow as query parameters
/// (`?min_size=5&max_size=30&acquire_timeout=60s`). `uri` may be NULL when
/// `options` sets PostgreSQL's host/user/dbname separately. `options` may
/// be NULL (defaults); it is only read, the caller still frees it.
///
/// Unless the `lazy` option is set, one connection is opened before this
/// returns, so an unreachable database or bad credentials fail here.
///
/// On success `*out` owns the pool; close it with `sqlpool_pool_close`.
/// Errors: `SQLPOOL_INVALID_URI`, `SQLPOOL_INVALID_OPTION`,
/// `SQLPOOL_CONNECTION_ERROR`, `SQLPOOL_AUTH_ERROR`,
/// `SQLPOOL_DATABASE_ERROR`, `SQLPOOL_INVALID_ARGUMENT`,
/// `SQLPOOL_INVALID_UTF8`, `SQLPOOL_MISUSE` (stale options).
#[no_mangle]
pub unsafe extern "C" fn sqlpool_pool_open(
    uri: *const c_char,
    options: *const sqlpool_options,
    out: *mut *mut sqlpool_pool,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let uri = unsafe { opt_str_arg(uri, "uri") }?;
        let explicit = if options.is_null() {
            PoolOptions::default()
        } else {
            OPTIONS.with(options as usize, |o| Ok(lock_ok(o).clone()))?
        };
        let pool = open_pool(uri, &explicit)?;
        let h = POOLS.insert(Arc::new(pool))?;
        unsafe { put(out, h as *mut sqlpool_pool) };
        Ok(())
    })
}

fn open_pool(uri: Option<&str>, explicit: &PoolOptions) -> Result<Pool> {
    let (mut target, mut options) = config::parse_uri(uri.unwrap_or("postgresql://"))?;
    if uri.is_none()
        && explicit.host.is_none()
        && explicit.dbname.is_none()
        && explicit.user.is_none()
    {
        return Err(Error::invalid_argument(
            "uri is NULL and the options name no PostgreSQL host, user or dbname",
        ));
    }
    options.overlay(explicit);
    config::apply_connection_options(&mut target, &options)?;
    crate::backend::open_pool(target, options.settings()?)
}

/// Closes a pool: no acquire succeeds afterwards, callers waiting in acquire
/// wake with `SQLPOOL_POOL_CLOSED`, idle connections close now, connections
/// still borrowed close when released. The handle is invalid afterwards
/// (another close returns `SQLPOOL_MISUSE`). NULL is accepted and ignored.
#[no_mangle]
pub extern "C" fn sqlpool_pool_close(pool: *mut sqlpool_pool) -> sqlpool_status {
    boundary(|| {
        if pool.is_null() {
            return Ok(());
        }
        POOLS.remove(pool as usize)?.close();
        Ok(())
    })
}

/// Borrows a connection, waiting at most `timeout_ms` milliseconds (a
/// negative value: the pool's acquire timeout; 0: do not wait).
///
/// On success `*out` is a connection the caller must give back with
/// `sqlpool_conn_release`. Errors: `SQLPOOL_POOL_TIMEOUT` (the message
/// carries the last connection error, if any), `SQLPOOL_POOL_CLOSED`,
/// `SQLPOOL_POOL_EXHAUSTED` (`max_waiting`); the connection error itself
/// (`SQLPOOL_AUTH_ERROR`, `SQLPOOL_DATABASE_ERROR` for an unknown database,
/// `SQLPOOL_UNSUPPORTED` for `sslmode=require`) when retrying cannot help;
/// `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`. Thread-safe.
#[no_mangle]
pub extern "C" fn sqlpool_pool_acquire(
    pool: *mut sqlpool_pool,
    timeout_ms: i64,
    out: *mut *mut sqlpool_conn,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let pool = POOLS.get(handle(pool, "pool")?)?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let checkout = pool.acquire(timeout)?;
        let h = CONNS.insert(Arc::new(ConnSlot {
            checkout: Mutex::new(checkout),
        }))?;
        unsafe { put(out, h as *mut sqlpool_conn) };
        Ok(())
    })
}

/// Acquires a connection, runs one statement and releases it (psqlpy's
/// `pool.execute`). `params` may be NULL. On success `*rows_affected`
/// (if not NULL) is set. Errors: those of `sqlpool_pool_acquire` and
/// `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_pool_execute(
    pool: *mut sqlpool_pool,
    sql: *const c_char,
    params: *const sqlpool_params,
    rows_affected: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?;
        let pool = POOLS.get(handle(pool, "pool")?)?;
        let n = with_params(params, |p| pool.acquire(None)?.conn().execute(sql, p))?;
        if !rows_affected.is_null() {
            unsafe { put(rows_affected, n) };
        }
        Ok(())
    })
}

/// Acquires a connection, runs one query and releases it. On success
/// `*out` owns the result; free it with `sqlpool_result_free`. Errors: those
/// of `sqlpool_pool_acquire` and `sqlpool_conn_query`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_pool_query(
    pool: *mut sqlpool_pool,
    sql: *const c_char,
    params: *const sqlpool_params,
    out: *mut *mut sqlpool_result,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let sql = unsafe { str_arg(sql, "sql") }?;
        let pool = POOLS.get(handle(pool, "pool")?)?;
        let result = with_params(params, |p| pool.acquire(None)?.conn().query(sql, p))?;
        store_result(result, out)
    })
}

/// Fills `*out` with the pool's statistics. Pass `size` =
/// `sizeof(sqlpool_stats)`: the library writes min(`size`, its own struct
/// size) bytes, so a program built against an older (smaller) header keeps
/// working with a newer library. Thread-safe.
/// Errors: `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_pool_stats(
    pool: *mut sqlpool_pool,
    out: *mut Stats,
    size: usize,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let stats = POOLS.get(handle(pool, "pool")?)?.stats();
        let n = size.min(std::mem::size_of::<Stats>());
        // SAFETY: `out` is non-NULL and the caller provides `size` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&stats as *const Stats).cast::<u8>(),
                out.cast::<u8>(),
                n,
            )
        };
        Ok(())
    })
}

/// Changes the pool's sizes at run time. Surplus idle connections close at
/// once, surplus borrowed ones when released. Errors:
/// `SQLPOOL_INVALID_OPTION` (max 0 or min > max), `SQLPOOL_POOL_CLOSED`,
/// `SQLPOOL_MISUSE`. Thread-safe.
#[no_mangle]
pub extern "C" fn sqlpool_pool_resize(
    pool: *mut sqlpool_pool,
    min_size: u32,
    max_size: u32,
) -> sqlpool_status {
    boundary(|| POOLS.get(handle(pool, "pool")?)?.resize(min_size, max_size))
}

/// Replaces every connection without failing callers (after a failover or a
/// password change): idle ones close now, borrowed ones when released; new
/// ones are opened as needed. Thread-safe. Errors: `SQLPOOL_POOL_CLOSED`,
/// `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_pool_drain(pool: *mut sqlpool_pool) -> sqlpool_status {
    boundary(|| POOLS.get(handle(pool, "pool")?)?.drain())
}

// ---------------------------------------------------------------------------
// Connection

/// Gives a connection back to its pool. An open or failed transaction is
/// rolled back first; a broken connection is discarded and replaced. The
/// handle is invalid afterwards: using or releasing it again returns
/// `SQLPOOL_MISUSE`. NULL is accepted and ignored. Errors: `SQLPOOL_BUSY`
/// while another thread is inside a call on it.
#[no_mangle]
pub extern "C" fn sqlpool_conn_release(conn: *mut sqlpool_conn) -> sqlpool_status {
    boundary(|| {
        if conn.is_null() {
            return Ok(());
        }
        let h = conn as usize;
        let slot = CONNS.get(h)?;
        // Refuse while another thread is inside a call on it, or an
        // asynchronous operation runs on it.
        let lent = slot
            .checkout
            .try_lock()
            .map_err(|_| {
                Error::new(
                    Status::Busy,
                    "the connection is in use by another thread; release it after that call returns",
                )
            })?
            .is_lent();
        if lent {
            return Err(Error::new(
                Status::Busy,
                "an asynchronous operation is running on this connection; release it after its completion",
            ));
        }
        drop(slot);
        // Dropping the last reference returns the connection to the pool.
        drop(CONNS.remove(h)?);
        Ok(())
    })
}

/// Bounds each later statement on this borrowed connection until it is
/// released (PostgreSQL; SQLite ignores it): `timeout_ms` > 0 that many
/// milliseconds, 0 no bound, < 0 back to the pool's `query_timeout`. A
/// statement past its bound returns `SQLPOOL_QUERY_TIMEOUT` (see
/// `sqlpool_options_set_query_timeout_ms`). Errors: `SQLPOOL_BUSY`,
/// `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_conn_set_query_timeout(
    conn: *mut sqlpool_conn,
    timeout_ms: i64,
) -> sqlpool_status {
    boundary(|| {
        let timeout = match timeout_ms {
            t if t < 0 => None,
            t => Some(Duration::from_millis(t as u64)),
        };
        with_conn(conn, |c| {
            c.conn().set_query_timeout(timeout);
            Ok(())
        })
    })
}

/// Runs one statement with bound parameters and reports the rows it
/// changed. Placeholders: `$1..$n` (both databases), `?`/`?NNN` (SQLite),
/// or `:name` with named parameters (both). `params` may be NULL for none;
/// it is only read. `rows_affected` may be NULL.
///
/// Errors: `SQLPOOL_PARAMETER_ERROR` (count, names or a value the parameter
/// cannot take; nothing is sent), `SQLPOOL_DATABASE_ERROR`,
/// `SQLPOOL_CONSTRAINT_VIOLATION`, `SQLPOOL_CONNECTION_ERROR`,
/// `SQLPOOL_INVALID_UTF8`, `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_BUSY`,
/// `SQLPOOL_MISUSE`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    rows_affected: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?;
        let n = with_params(params, |p| with_conn(conn, |c| c.conn().execute(sql, p)))?;
        if !rows_affected.is_null() {
            unsafe { put(rows_affected, n) };
        }
        Ok(())
    })
}

/// Runs one query with bound parameters (as `sqlpool_conn_execute`) and
/// reads all its rows. On success `*out` owns the result; free it with
/// `sqlpool_result_free`. Errors: as `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_query(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    out: *mut *mut sqlpool_result,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let sql = unsafe { str_arg(sql, "sql") }?;
        let result = with_params(params, |p| with_conn(conn, |c| c.conn().query(sql, p)))?;
        store_result(result, out)
    })
}

/// Runs a script of one or more statements separated by `;`, without
/// parameters (schema setup, migrations). Errors: as `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_script(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?;
        with_conn(conn, |c| c.conn().execute_script(sql))
    })
}

/// Runs one statement once per parameter list (executemany), all in one
/// transaction: the connection's open transaction if there is one,
/// otherwise its own, committed at the end. All or nothing: on error
/// nothing of the batch remains. `param_sets` is an array of `count`
/// parameter lists (each only read). `*rows_affected` (if not NULL) gets the
/// total. Errors: as `sqlpool_conn_execute`; a parameter error names the
/// failing set.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_batch(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    param_sets: *const *const sqlpool_params,
    count: usize,
    rows_affected: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?;
        let sets = unsafe { param_sets_of(param_sets, count) }?;
        let refs: Vec<&Params> = sets.iter().collect();
        let n = with_conn(conn, |c| c.conn().execute_many(sql, &refs))?;
        if !rows_affected.is_null() {
            unsafe { put(rows_affected, n) };
        }
        Ok(())
    })
}

/// Runs one statement once per parameter set of `params`: each
/// `sqlpool_params_next_set` ends one set (possibly empty, for a statement
/// without parameters), and values after the last one form a final set; an
/// empty list (or NULL) runs nothing. This is executemany without a
/// parameter list per set: the cheapest way to batch from C and bindings.
/// Transaction and all-or-nothing behaviour as `sqlpool_conn_execute_batch`.
/// `params` is only read. `*rows_affected` (if not NULL) gets the total.
/// Errors: as `sqlpool_conn_execute_batch`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_many(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    rows_affected: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?;
        let sets = with_params(params, |p| Ok(p.sets()))?;
        let refs: Vec<&Params> = sets.iter().collect();
        let n = with_conn(conn, |c| c.conn().execute_many(sql, &refs))?;
        if !rows_affected.is_null() {
            unsafe { put(rows_affected, n) };
        }
        Ok(())
    })
}

/// Transaction flag for `sqlpool_conn_begin`: read-only.
pub const SQLPOOL_TX_READ_ONLY: u32 = 1;
/// Transaction flag for `sqlpool_conn_begin`: deferrable (PostgreSQL,
/// with serializable read-only).
pub const SQLPOOL_TX_DEFERRABLE: u32 = 2;

/// Isolation levels for `sqlpool_conn_begin`.
pub const SQLPOOL_ISOLATION_DEFAULT: u32 = 0;
pub const SQLPOOL_ISOLATION_READ_UNCOMMITTED: u32 = 1;
pub const SQLPOOL_ISOLATION_READ_COMMITTED: u32 = 2;
pub const SQLPOOL_ISOLATION_REPEATABLE_READ: u32 = 3;
pub const SQLPOOL_ISOLATION_SERIALIZABLE: u32 = 4;

/// Recycling methods for `sqlpool_options_set_recycling`.
pub const SQLPOOL_RECYCLE_FAST: u32 = 0;
pub const SQLPOOL_RECYCLE_VERIFIED: u32 = 1;
pub const SQLPOOL_RECYCLE_CLEAN: u32 = 2;

/// Begins a transaction. `isolation` is one of `SQLPOOL_ISOLATION_*`;
/// `flags` combines `SQLPOOL_TX_*`. On SQLite every transaction is
/// serializable; a read-write one starts with `BEGIN IMMEDIATE` so
/// concurrent writers wait on the busy timeout instead of failing later.
/// Errors: `SQLPOOL_TRANSACTION_STATE` (SQLite: one is already open),
/// `SQLPOOL_INVALID_ARGUMENT`, and those of `sqlpool_conn_execute`.
#[no_mangle]
pub extern "C" fn sqlpool_conn_begin(
    conn: *mut sqlpool_conn,
    isolation: u32,
    flags: u32,
) -> sqlpool_status {
    boundary(|| {
        if flags & !(SQLPOOL_TX_READ_ONLY | SQLPOOL_TX_DEFERRABLE) != 0 {
            return Err(Error::invalid_argument(format!(
                "unknown transaction flags {flags:#x}"
            )));
        }
        let opts = TxOptions {
            isolation,
            read_only: flags & SQLPOOL_TX_READ_ONLY != 0,
            deferrable: flags & SQLPOOL_TX_DEFERRABLE != 0,
        };
        with_conn(conn, |c| c.conn().begin(opts))
    })
}

/// Commits the open transaction. Errors: `SQLPOOL_TRANSACTION_STATE` when
/// a statement had failed inside the transaction (PostgreSQL then rolls the
/// whole transaction back; SQLSTATE 25P02) and, on SQLite, when none is
/// open (PostgreSQL only warns about that and returns `SQLPOOL_OK`); and
/// those of `sqlpool_conn_execute`.
#[no_mangle]
pub extern "C" fn sqlpool_conn_commit(conn: *mut sqlpool_conn) -> sqlpool_status {
    boundary(|| with_conn(conn, |c| c.conn().commit()))
}

/// Rolls the open transaction back. Errors: as `sqlpool_conn_commit`.
#[no_mangle]
pub extern "C" fn sqlpool_conn_rollback(conn: *mut sqlpool_conn) -> sqlpool_status {
    boundary(|| with_conn(conn, |c| c.conn().rollback()))
}

fn savepoint(
    conn: *mut sqlpool_conn,
    name: *const c_char,
    action: SavepointAction,
) -> sqlpool_status {
    boundary(|| {
        let name = unsafe { str_arg(name, "name") }?;
        with_conn(conn, |c| c.conn().savepoint(name, action))
    })
}

/// Creates a savepoint (`name`: letters, digits, `_`). Errors:
/// `SQLPOOL_INVALID_ARGUMENT` for a bad name, and those of
/// `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_savepoint(
    conn: *mut sqlpool_conn,
    name: *const c_char,
) -> sqlpool_status {
    savepoint(conn, name, SavepointAction::Create)
}

/// Releases (keeps the work of) a savepoint. Errors: as
/// `sqlpool_conn_savepoint`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_release_savepoint(
    conn: *mut sqlpool_conn,
    name: *const c_char,
) -> sqlpool_status {
    savepoint(conn, name, SavepointAction::Release)
}

/// Rolls back to a savepoint, which stays defined; this also recovers a
/// failed PostgreSQL transaction. Errors: as `sqlpool_conn_savepoint`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_rollback_to_savepoint(
    conn: *mut sqlpool_conn,
    name: *const c_char,
) -> sqlpool_status {
    savepoint(conn, name, SavepointAction::RollbackTo)
}

// ---------------------------------------------------------------------------
// Parameters

/// Creates an empty parameter list. On success `*out` is owned by the
/// caller; free it with `sqlpool_params_free`. Errors:
/// `SQLPOOL_INVALID_ARGUMENT` if `out` is NULL.
#[no_mangle]
pub extern "C" fn sqlpool_params_new(out: *mut *mut sqlpool_params) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let h = PARAMS.insert(Arc::new(Mutex::new(Params::new())))?;
        unsafe { put(out, h as *mut sqlpool_params) };
        Ok(())
    })
}

/// Frees a parameter list. NULL is accepted and ignored; freeing twice
/// returns `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_params_free(params: *mut sqlpool_params) -> sqlpool_status {
    boundary(|| {
        if params.is_null() {
            return Ok(());
        }
        PARAMS.remove(params as usize).map(drop)
    })
}

/// Ends the current parameter set: values added afterwards form the next
/// set, for `sqlpool_conn_execute_many`. A list with more than one set is
/// refused by the single-statement calls. Errors: `SQLPOOL_INVALID_ARGUMENT`,
/// `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_params_next_set(params: *mut sqlpool_params) -> sqlpool_status {
    boundary(|| {
        PARAMS.with(handle(params, "params")?, |p| {
            lock_ok(p).next_set();
            Ok(())
        })
    })
}

/// Empties a parameter list (all its sets) so it can be filled again.
#[no_mangle]
pub extern "C" fn sqlpool_params_clear(params: *mut sqlpool_params) -> sqlpool_status {
    boundary(|| {
        PARAMS.with(handle(params, "params")?, |p| {
            lock_ok(p).clear();
            Ok(())
        })
    })
}

/// Appends one value: positional when `name` is NULL, named (`:name` in the
/// SQL; the leading `:` is optional here) otherwise. All values of one list
/// are positional or all named.
fn add_param(
    params: *mut sqlpool_params,
    name: *const c_char,
    value: impl FnOnce() -> Result<Value>,
) -> sqlpool_status {
    boundary(|| {
        let name = unsafe { opt_str_arg(name, "name") }?;
        let value = value()?;
        PARAMS.with(handle(params, "params")?, |p| lock_ok(p).push(name, value))
    })
}

/// Appends NULL. `name`: NULL for positional, else the parameter's name.
/// Errors: `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_INVALID_UTF8` (name),
/// `SQLPOOL_PARAMETER_ERROR` (empty name), `SQLPOOL_MISUSE`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_params_add_null(
    params: *mut sqlpool_params,
    name: *const c_char,
) -> sqlpool_status {
    add_param(params, name, || Ok(Value::Null))
}

/// Appends a boolean (nonzero = true). `name` as `sqlpool_params_add_null`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_params_add_bool(
    params: *mut sqlpool_params,
    name: *const c_char,
    value: i32,
) -> sqlpool_status {
    add_param(params, name, || Ok(Value::Bool(value != 0)))
}

/// Appends a 64-bit integer. It binds to PostgreSQL int2/int4/int8 (range
/// checked), numeric, float, and to timestamps as microseconds since
/// 1970-01-01 UTC. `name` as `sqlpool_params_add_null`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_params_add_int64(
    params: *mut sqlpool_params,
    name: *const c_char,
    value: i64,
) -> sqlpool_status {
    add_param(params, name, || Ok(Value::Int64(value)))
}

/// Appends a 64-bit float (never narrowed unless the column is float4).
/// `name` as `sqlpool_params_add_null`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_params_add_double(
    params: *mut sqlpool_params,
    name: *const c_char,
    value: f64,
) -> sqlpool_status {
    add_param(params, name, || Ok(Value::Double(value)))
}

/// Appends UTF-8 text of `len` bytes (copied; need not be NUL-terminated).
/// Text also binds to numeric, uuid, date/time, interval, json, inet and
/// array (JSON array text) parameters. Errors: `SQLPOOL_INVALID_UTF8`,
/// `SQLPOOL_INVALID_ARGUMENT` (NULL `value` with nonzero `len`), and as
/// `sqlpool_params_add_null`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_params_add_text(
    params: *mut sqlpool_params,
    name: *const c_char,
    value: *const c_char,
    len: usize,
) -> sqlpool_status {
    add_param(params, name, || {
        let bytes = unsafe { bytes_arg(value.cast(), len, "value") }?;
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::new(
                Status::InvalidUtf8,
                format!(
                    "text value is not valid UTF-8 (at byte {})",
                    e.valid_up_to()
                ),
            )
        })?;
        Ok(Value::Text(text.to_owned()))
    })
}

/// Appends `len` bytes of binary data (copied). Errors: as
/// `sqlpool_params_add_text`, without the UTF-8 check.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_params_add_blob(
    params: *mut sqlpool_params,
    name: *const c_char,
    value: *const u8,
    len: usize,
) -> sqlpool_status {
    add_param(params, name, || {
        Ok(Value::Blob(
            unsafe { bytes_arg(value, len, "value") }?.to_vec(),
        ))
    })
}

// ---------------------------------------------------------------------------
// Results

/// Value kinds of result cells, from `sqlpool_result_kind`.
pub const SQLPOOL_KIND_NULL: u32 = 0;
pub const SQLPOOL_KIND_BOOL: u32 = 1;
pub const SQLPOOL_KIND_INT64: u32 = 2;
pub const SQLPOOL_KIND_DOUBLE: u32 = 3;
/// Text, also for numeric (exact decimal), dates and times (ISO 8601),
/// intervals (ISO 8601 durations), uuid, json, inet and arrays (JSON); the
/// column's declared type tells which.
pub const SQLPOOL_KIND_TEXT: u32 = 4;
pub const SQLPOOL_KIND_BLOB: u32 = 5;

fn with_result<R>(
    result: *const sqlpool_result,
    f: impl FnOnce(&ResultSet) -> Result<R>,
) -> Result<R> {
    RESULTS.with(handle(result, "result")?, f)
}

/// Kind reported by `sqlpool_result_column_data` when a column's non-NULL
/// cells are of different kinds (possible on SQLite); read such a column
/// cell by cell.
pub const SQLPOOL_KIND_MIXED: u32 = 6;

/// A whole result column as arrays, from `sqlpool_result_column_data`.
/// Every pointer is owned by the result and valid until
/// `sqlpool_result_free`; arrays not used by `kind` are NULL.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sqlpool_column_data {
    /// `SQLPOOL_KIND_*` of every non-NULL cell; `SQLPOOL_KIND_NULL` when all
    /// cells are NULL; `SQLPOOL_KIND_MIXED` when kinds differ.
    pub kind: u32,
    pub _reserved: u32,
    /// Number of rows = length of `nulls`, `ints`, `doubles`.
    pub rows: usize,
    /// One byte per row: 1 = NULL.
    pub nulls: *const u8,
    /// INT64 and BOOL columns: one value per row (0 where NULL).
    pub ints: *const i64,
    /// DOUBLE columns: one value per row (0 where NULL).
    pub doubles: *const f64,
    /// TEXT and BLOB columns: `rows + 1` offsets; row r is
    /// `bytes[offsets[r] .. offsets[r + 1]]` (empty where NULL).
    pub offsets: *const u64,
    pub bytes: *const u8,
}

/// Fills `*out` with column `column` as arrays, for reading a result in a
/// few calls instead of one per cell (bindings use this). The arrays are
/// built on first request and kept with the result. Errors:
/// `SQLPOOL_OUT_OF_RANGE`, and as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_column_data(
    result: *const sqlpool_result,
    column: usize,
    out: *mut sqlpool_column_data,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        with_result(result, |r| {
            let d = r.column_data(column)?;
            let ptr_or_null =
                |len: usize, p: *const u8| if len == 0 { std::ptr::null() } else { p };
            let data = sqlpool_column_data {
                kind: d.kind.map_or(SQLPOOL_KIND_MIXED, |k| k as u32),
                _reserved: 0,
                rows: r.row_count(),
                nulls: ptr_or_null(d.nulls.len(), d.nulls.as_ptr()),
                ints: ptr_or_null(d.ints.len(), d.ints.as_ptr().cast()).cast(),
                doubles: ptr_or_null(d.doubles.len(), d.doubles.as_ptr().cast()).cast(),
                offsets: ptr_or_null(d.offsets.len(), d.offsets.as_ptr().cast()).cast(),
                bytes: if d.offsets.is_empty() {
                    std::ptr::null()
                } else {
                    d.bytes.as_ptr()
                },
            };
            unsafe { put(out, data) };
            Ok(())
        })
    })
}

/// The shape of a result in one call, from `sqlpool_result_describe`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sqlpool_result_info {
    pub rows: usize,
    pub columns: usize,
    /// For each column in order: its name, a NUL byte, its declared type
    /// (as `sqlpool_result_column_decltype`), a NUL byte. `names_len` bytes,
    /// owned by the result and valid until `sqlpool_result_free`.
    pub names: *const c_char,
    pub names_len: usize,
}

/// Row count, column count and every column's name and declared type in
/// one call, for bindings that pay per call (ctypes). Thread-safe like
/// every result getter. Errors: as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_describe(
    result: *const sqlpool_result,
    out: *mut sqlpool_result_info,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        with_result(result, |r| {
            let names = r.description();
            let info = sqlpool_result_info {
                rows: r.row_count(),
                columns: r.column_count(),
                names: names.as_ptr().cast(),
                names_len: names.len(),
            };
            unsafe { put(out, info) };
            Ok(())
        })
    })
}

/// Frees a result; pointers obtained from it become invalid. NULL is
/// accepted and ignored; freeing twice returns `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_result_free(result: *mut sqlpool_result) -> sqlpool_status {
    boundary(|| {
        if result.is_null() {
            return Ok(());
        }
        RESULTS.remove(result as usize).map(drop)
    })
}

/// Number of rows. Errors: `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_result_row_count(
    result: *const sqlpool_result,
    out: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let n = with_result(result, |r| Ok(r.row_count()))?;
        unsafe { put(out, n) };
        Ok(())
    })
}

/// Number of columns. Errors: as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_column_count(
    result: *const sqlpool_result,
    out: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let n = with_result(result, |r| Ok(r.column_count()))?;
        unsafe { put(out, n) };
        Ok(())
    })
}

fn put_str(s: &str, ptr: *mut *const c_char, len: *mut usize) {
    unsafe {
        put(ptr, s.as_ptr().cast());
        if !len.is_null() {
            put(len, s.len());
        }
    }
}

/// A column's name: `*ptr` points at `*len` bytes of UTF-8, NOT
/// NUL-terminated, valid until `sqlpool_result_free`. `len` may be NULL.
/// Duplicate names are kept, in column order. Errors:
/// `SQLPOOL_OUT_OF_RANGE`, and as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_column_name(
    result: *const sqlpool_result,
    column: usize,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        out_arg(ptr, "ptr")?;
        with_result(result, |r| {
            put_str(&r.column(column)?.name, ptr, len);
            Ok(())
        })
    })
}

/// A column's declared type as the database names it (`int4`,
/// `timestamptz`, `text[]`; SQLite: the declared type, "" for expressions).
/// Pointer and lifetime as `sqlpool_result_column_name`.
#[no_mangle]
pub extern "C" fn sqlpool_result_column_decltype(
    result: *const sqlpool_result,
    column: usize,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        out_arg(ptr, "ptr")?;
        with_result(result, |r| {
            put_str(&r.column(column)?.decl_type, ptr, len);
            Ok(())
        })
    })
}

/// Index of the first (leftmost) column named `name`. Errors:
/// `SQLPOOL_OUT_OF_RANGE` when there is none, and as
/// `sqlpool_result_row_count`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_result_column_index(
    result: *const sqlpool_result,
    name: *const c_char,
    out: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let name = unsafe { str_arg(name, "name") }?;
        let i = with_result(result, |r| r.column_index(name))?;
        unsafe { put(out, i) };
        Ok(())
    })
}

/// The kind (`SQLPOOL_KIND_*`) of cell (`row`, `column`). Errors:
/// `SQLPOOL_OUT_OF_RANGE`, and as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_kind(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut u32,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let k = with_result(result, |r| Ok(r.cell(row, column)?.kind() as u32))?;
        unsafe { put(out, k) };
        Ok(())
    })
}

/// `*out` = 1 when the cell is NULL, else 0. Errors: as
/// `sqlpool_result_kind`.
#[no_mangle]
pub extern "C" fn sqlpool_result_is_null(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut i32,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let null = with_result(result, |r| Ok(matches!(r.cell(row, column)?, Value::Null)))?;
        unsafe { put(out, i32::from(null)) };
        Ok(())
    })
}

/// A cell as int64 (int64 or bool cells). Errors: `SQLPOOL_NULL_VALUE`,
/// `SQLPOOL_TYPE_MISMATCH`, and as `sqlpool_result_kind`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_int64(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut i64,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let v = with_result(result, |r| r.int64(row, column))?;
        unsafe { put(out, v) };
        Ok(())
    })
}

/// A cell as double (double cells, and int64 cells exactly representable).
/// Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_double(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut f64,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let v = with_result(result, |r| r.double(row, column))?;
        unsafe { put(out, v) };
        Ok(())
    })
}

/// A cell as bool, 1 or 0 (bool cells, and int64 cells holding 0 or 1).
/// Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_bool(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut i32,
) -> sqlpool_status {
    boundary(|| {
        out_arg(out, "out")?;
        let v = with_result(result, |r| r.bool(row, column))?;
        unsafe { put(out, i32::from(v)) };
        Ok(())
    })
}

/// A text cell: `*ptr` points at `*len` bytes of UTF-8, NOT NUL-terminated
/// (print it with `printf("%.*s", (int)len, ptr)`), valid until
/// `sqlpool_result_free`; for empty text `*len` is 0 and `*ptr` is non-NULL.
/// Both `ptr` and `len` are required. Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_text(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        out_arg(ptr, "ptr")?;
        out_arg(len, "len")?;
        with_result(result, |r| {
            put_str(r.text(row, column)?, ptr, len);
            Ok(())
        })
    })
}

/// A blob cell (text cells give their UTF-8 bytes): `*ptr` points at `*len`
/// bytes valid until `sqlpool_result_free` (`*ptr` may be non-NULL with
/// `*len` 0). Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_blob(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    ptr: *mut *const u8,
    len: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        out_arg(ptr, "ptr")?;
        out_arg(len, "len")?;
        with_result(result, |r| {
            let b = r.blob(row, column)?;
            unsafe {
                put(ptr, b.as_ptr());
                put(len, b.len());
            }
            Ok(())
        })
    })
}

// ---------------------------------------------------------------------------
// Logging

/// Log levels for `sqlpool_set_logger`.
pub const SQLPOOL_LOG_ERROR: u32 = 1;
pub const SQLPOOL_LOG_WARN: u32 = 2;
pub const SQLPOOL_LOG_INFO: u32 = 3;
pub const SQLPOOL_LOG_DEBUG: u32 = 4;
pub const SQLPOOL_LOG_TRACE: u32 = 5;

/// A log callback: `user_data` as given to `sqlpool_set_logger`, the level
/// (`SQLPOOL_LOG_*`), the target (`sqlpool::pool`, `sqlpool::sql`) and the
/// message, both NUL-terminated and valid only during the call.
pub type sqlpool_log_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: u32,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct CallbackSink {
    callback: unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_char),
    user_data: usize,
}

impl log::Sink for CallbackSink {
    fn log(&self, level: Level, target: &str, message: &str) {
        let target = c_string(target);
        let message = c_string(message);
        // SAFETY: the host promised a callback valid until replaced.
        unsafe {
            (self.callback)(
                self.user_data as *mut c_void,
                level as u32,
                target.as_ptr(),
                message.as_ptr(),
            )
        }
    }
}

/// Sends the library's log lines to `callback` at `min_level` and more
/// severe; NULL `callback` restores the default (stderr when the
/// `SQLPOOL_LOG` environment variable is set, else nothing).
///
/// The callback may run on any thread: the caller's, a connection thread
/// or a pool's maintenance thread, and on several at once; it is never
/// called with a pool lock held, so it may call back into the library.
/// `user_data` must stay valid until the logger is replaced: when this
/// function returns, no other thread is inside the previous callback any
/// more, so the previous `user_data` may be freed then. Secrets never
/// appear in messages. Errors: `SQLPOOL_INVALID_ARGUMENT` (bad level).
#[no_mangle]
pub extern "C" fn sqlpool_set_logger(
    callback: sqlpool_log_callback,
    min_level: u32,
    user_data: *mut c_void,
) -> sqlpool_status {
    boundary(|| {
        let level = Level::from_u32(min_level).ok_or_else(|| {
            Error::invalid_argument(format!("invalid log level {min_level} (expected 1..5)"))
        })?;
        let sink = callback.map(|callback| {
            Box::new(CallbackSink {
                callback,
                user_data: user_data as usize,
            }) as Box<dyn log::Sink>
        });
        log::set_sink(sink, level);
        Ok(())
    })
}

/// Turns statement logging (target `sqlpool::sql`, level INFO: each
/// statement with its duration and rows) on or off; parameter values are
/// logged only when `with_values` is nonzero, otherwise redacted. Also on
/// when the environment has `SQLPOOL_SQL_LOG=1`.
#[no_mangle]
pub extern "C" fn sqlpool_set_sql_logging(enabled: i32, with_values: i32) -> sqlpool_status {
    boundary(|| {
        log::set_sql_logging(enabled != 0, with_values != 0);
        Ok(())
    })
}
