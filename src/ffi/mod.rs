//! The C ABI. The only module with `extern "C"` and `unsafe`.
//!
//! Every exported function body runs inside [`boundary`], which catches
//! panics and turns errors into a status plus the calling thread's last
//! error. Pointer arguments are checked before any reference is made.
//! Handles are encoded table keys (see `handles.rs`), never dereferenced.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use crate::error::{panic_message, Error, Result, Status};

mod async_api;
mod columns;
mod conn;
mod copy;
mod error;
pub(crate) mod fork;
mod hooks;
mod log;
mod notify;
mod options;
mod param_columns;
mod params;
mod pool;
mod result;
mod stream;
pub use async_api::*;
pub use columns::*;
pub use conn::*;
pub use copy::*;
pub use error::*;
pub use hooks::*;
pub use log::*;
pub use notify::*;
pub use options::*;
pub use param_columns::*;
pub use params::*;
pub use pool::*;
pub use result::*;
pub use stream::*;
// The handle tables and helpers the other modules (async_api) reach through
// `super::`.
pub(crate) use conn::{lock_slot, with_conn, ConnSlot, Holding, CONNS};
pub(crate) use error::new_error;
pub(crate) use options::{OptionsSlot, OPTIONS};
pub(crate) use params::{param_sets_of, params_of, with_params};
pub(crate) use pool::POOLS;
pub(crate) use result::{insert_result, store_result};

/// Status code returned by every fallible function; `SQLPOOL_OK` (0) is
/// success. See `sqlpool_status_name` and `sqlpool_last_error_message`.
pub type sqlpool_status = Status;

/// The version of this header; compare with `sqlpool_version()` at run time.
pub const SQLPOOL_VERSION_MAJOR: u32 = 0;
pub const SQLPOOL_VERSION_MINOR: u32 = 1;
pub const SQLPOOL_VERSION_PATCH: u32 = 0;

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

/// Takes the calling thread's last error (a callback's, say) out.
pub(crate) fn take_last_error() -> Option<Error> {
    LAST_ERROR.with(|cell| cell.borrow_mut().take().map(|last| last.error))
}

thread_local! {
    /// How many exported functions this thread is inside (a callback may
    /// call the library again).
    static IN_BOUNDARY: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Installs, once, a panic hook that keeps the library quiet: a panic
/// inside an exported function (it becomes `SQLPOOL_PANIC` and the last
/// error) or on one of the library's own threads (`sqlpool-*`; it is
/// logged through the library's logger instead) prints nothing to the
/// host's stderr. Every other panic goes to the hook that was installed
/// before, so the host's own panics print as they always did.
fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_BOUNDARY.with(|d| d.get()) > 0 {
                return;
            }
            let library_thread = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("sqlpool-"));
            if library_thread {
                let what = panic_message(info.payload());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                crate::log::emit(
                    crate::log::Level::Error,
                    "sqlpool::pool",
                    &format!("internal panic on a library thread{at}: {what}"),
                );
                return;
            }
            previous(info)
        }));
    });
}

/// Runs `f` inside the panic boundary: panics are caught, and the panic
/// hook stays silent.
fn catch<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    install_quiet_panic_hook();
    IN_BOUNDARY.with(|d| d.set(d.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_BOUNDARY.with(|d| d.set(d.get() - 1));
    r
}

/// Runs an exported function's body: errors become a status and the last
/// error; a panic becomes `SQLPOOL_PANIC` instead of unwinding into C.
fn boundary(body: impl FnOnce() -> Result<()>) -> sqlpool_status {
    match catch(body) {
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
    catch(body).unwrap_or(fallback)
}

pub(crate) fn null_arg(name: &str) -> Error {
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

/// The largest text or blob value the library accepts, in bytes (1 GiB:
/// PostgreSQL's limit for one field; SQLite's default `SQLITE_MAX_LENGTH`
/// is just below it). A longer value is refused with
/// `SQLPOOL_INVALID_ARGUMENT` before its pointer is read.
pub const SQLPOOL_MAX_VALUE_SIZE: usize = 1 << 30;

/// `len` bytes at `ptr`, for a value: a length above
/// `SQLPOOL_MAX_VALUE_SIZE` (which also rules out any above `isize::MAX`)
/// is refused before the pointer is touched.
unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8]> {
    if len > SQLPOOL_MAX_VALUE_SIZE {
        return Err(Error::invalid_argument(format!(
            "{name}: length {len} exceeds the maximum value size ({SQLPOOL_MAX_VALUE_SIZE} bytes, SQLPOOL_MAX_VALUE_SIZE)"
        )));
    }
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

/// An out-parameter, checked (non-NULL) once by `out_arg` or
/// `Out::optional`; the only place that writes through a caller's pointer.
/// Written only on success, per our conventions.
pub(crate) struct Out<T>(std::ptr::NonNull<T>);

impl<T> Out<T> {
    /// A pointer the caller may pass as NULL ("not wanted").
    pub(crate) fn optional(ptr: *mut T) -> Option<Out<T>> {
        std::ptr::NonNull::new(ptr).map(Out)
    }

    pub(crate) fn put(self, value: T) {
        // SAFETY: non-NULL (checked when made); the C contract of every
        // exported function is that an out-parameter points at a writable,
        // aligned `T`.
        unsafe { self.0.as_ptr().write(value) }
    }

    /// Writes the first `n` bytes of `value` (at most its size): a struct
    /// given with its size, so an older, smaller caller struct still fits.
    pub(crate) fn put_prefix(self, value: &T, n: usize) {
        let n = n.min(std::mem::size_of::<T>());
        // SAFETY: non-NULL; the caller provides `n` writable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (value as *const T).cast::<u8>(),
                self.0.as_ptr().cast::<u8>(),
                n,
            )
        }
    }
}

/// Checks a required out-parameter: NULL is `SQLPOOL_INVALID_ARGUMENT`.
pub(crate) fn out_arg<T>(out: *mut T, name: &str) -> Result<Out<T>> {
    Out::optional(out).ok_or_else(|| null_arg(name))
}

fn lock_ok<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

/// How many handles are live in this process: pools not closed, options,
/// parameter lists, results and queues not freed, connections not released
/// (also those delivered by completions). A program that gives everything
/// back sees 0 (check it at exit: handles live in a table, so a forgotten
/// one is not a leak a memory checker can see). Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn sqlpool_live_handles() -> usize {
    boundary_value(0, crate::handles::live_handles)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic inside an exported function prints nothing to stderr (it
    /// becomes `SQLPOOL_PANIC`); a panic of the host's own code still
    /// prints through the hook that was there before. Runs itself again in
    /// a child process to see that process's stderr.
    #[test]
    fn panics_inside_the_boundary_print_nothing() {
        if std::env::var_os("SQLPOOL_PANIC_CHILD").is_some() {
            let status = boundary(|| panic!("boom-inside-the-library"));
            assert_eq!(status, Status::Panic);
            let message = LAST_ERROR.with(|e| e.borrow().as_ref().unwrap().error.message.clone());
            assert!(message.contains("boom-inside-the-library"), "{message}");
            let host = std::thread::spawn(|| panic!("host-panic-still-printed"));
            assert!(host.join().is_err());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ffi::tests::panics_inside_the_boundary_print_nothing",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SQLPOOL_PANIC_CHILD", "1")
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(!stderr.contains("boom-inside"), "printed: {stderr}");
        assert!(!stdout.contains("boom-inside"), "printed: {stdout}");
        assert!(stderr.contains("host-panic-still-printed"), "{stderr}");
    }
}
