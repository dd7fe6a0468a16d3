//! `sqlpool_error`: an error object the caller owns — what an asynchronous
//! completion carries, so that its error never depends on which thread pops
//! it or on what that thread does next (wasmtime's `wasmtime_error_t`).

use std::ffi::{c_char, CString};
use std::sync::Arc;

use super::{boundary, boundary_value, c_string, sqlpool_status};
use crate::error::{Error, Status};
use crate::handles::{HandleKind, HandleTable};

/// One failure: status, SQLSTATE, message, detail, as JSON too.
///
/// Thread-safety: immutable; any thread may read it. The receiver owns it
/// and frees it with `sqlpool_error_free`; the strings its getters return
/// stay valid until then.
///
/// Functions: `sqlpool_error_status`, `sqlpool_error_message`,
/// `sqlpool_error_sqlstate`, `sqlpool_error_detail`, `sqlpool_error_json`,
/// `sqlpool_error_free`; made by the asynchronous API
/// (`sqlpool_completion.error`).
pub struct sqlpool_error {
    _private: [u8; 0],
}

pub(crate) struct OwnedError {
    status: Status,
    message: CString,
    sqlstate: CString,
    detail: CString,
    json: CString,
}

pub(crate) static ERRORS: HandleTable<OwnedError> = HandleTable::new(HandleKind::Error);

/// Stores `error` as a new `sqlpool_error` handle (NULL if the table is full).
pub(crate) fn new_error(error: &Error) -> *mut sqlpool_error {
    let owned = OwnedError {
        status: error.status,
        message: c_string(&error.message),
        sqlstate: c_string(error.sqlstate.as_deref().unwrap_or("")),
        detail: c_string(error.detail.as_deref().unwrap_or("")),
        json: c_string(&error.to_json()),
    };
    ERRORS
        .insert(Arc::new(owned))
        .map_or(std::ptr::null_mut(), |h| h as *mut sqlpool_error)
}

fn error_field(
    error: *const sqlpool_error,
    pick: impl Fn(&OwnedError) -> *const c_char,
) -> *const c_char {
    boundary_value(c"".as_ptr(), || {
        if error.is_null() {
            return c"".as_ptr();
        }
        ERRORS
            .with(error as usize, |e| Ok(pick(e)))
            .unwrap_or(c"".as_ptr())
    })
}

/// The error's status (`SQLPOOL_MISUSE` for NULL or a freed error).
#[no_mangle]
pub extern "C" fn sqlpool_error_status(error: *const sqlpool_error) -> sqlpool_status {
    boundary_value(Status::Panic, || {
        ERRORS
            .with(error as usize, |e| Ok(e.status))
            .unwrap_or(Status::Misuse)
    })
}

/// The error's message, NUL-terminated, valid until `sqlpool_error_free`
/// ("" for NULL or a freed error). Never holds a password.
#[no_mangle]
pub extern "C" fn sqlpool_error_message(error: *const sqlpool_error) -> *const c_char {
    error_field(error, |e| e.message.as_ptr())
}

/// The error's SQLSTATE ("" if none). Lifetime as `sqlpool_error_message`.
#[no_mangle]
pub extern "C" fn sqlpool_error_sqlstate(error: *const sqlpool_error) -> *const c_char {
    error_field(error, |e| e.sqlstate.as_ptr())
}

/// The server's DETAIL line ("" if none). Lifetime as `sqlpool_error_message`.
#[no_mangle]
pub extern "C" fn sqlpool_error_detail(error: *const sqlpool_error) -> *const c_char {
    error_field(error, |e| e.detail.as_ptr())
}

/// The error as JSON, with the keys of `sqlpool_last_error_json`. Lifetime
/// as `sqlpool_error_message`.
#[no_mangle]
pub extern "C" fn sqlpool_error_json(error: *const sqlpool_error) -> *const c_char {
    error_field(error, |e| e.json.as_ptr())
}

/// Frees an error. NULL is accepted and ignored; freeing twice returns
/// `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_error_free(error: *mut sqlpool_error) -> sqlpool_status {
    boundary(|| {
        if error.is_null() {
            return Ok(());
        }
        ERRORS.remove(error as usize).map(drop)
    })
}
