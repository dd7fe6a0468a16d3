//! `sqlpool_params`: statement parameters, positional or named.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};

use super::{
    boundary, bytes_arg, handle, lock_ok, opt_str_arg, out_arg, sqlpool_status, SQLPOOL_KIND_BLOB,
    SQLPOOL_KIND_BOOL, SQLPOOL_KIND_DOUBLE, SQLPOOL_KIND_INT64, SQLPOOL_KIND_NULL,
    SQLPOOL_KIND_TEXT,
};
use crate::error::{Error, Result, Status};
use crate::handles::{HandleKind, HandleTable};
use crate::value::{Params, Value};

/// Statement parameters, positional or named.
///
/// Thread-safety: may move between threads, one call at a time. The caller
/// owns it and frees it with `sqlpool_params_free`; statement functions
/// only read it, so one list can be reused for many calls.
///
/// Functions: `sqlpool_params_new`, `sqlpool_params_free`,
/// `sqlpool_params_next_set`, `sqlpool_params_clear`,
/// `sqlpool_params_add_null`, `sqlpool_params_add_bool`,
/// `sqlpool_params_add_int64`, `sqlpool_params_add_double`,
/// `sqlpool_params_add_text`, `sqlpool_params_add_blob`.
pub struct sqlpool_params {
    _private: [u8; 0],
}

pub(crate) static PARAMS: HandleTable<Mutex<Params>> = HandleTable::new(HandleKind::Params);

pub(crate) fn params_of(params: *const sqlpool_params) -> Result<Params> {
    if params.is_null() {
        return Ok(Params::new());
    }
    PARAMS.with(params as usize, |p| Ok(lock_ok(p).clone()))
}

/// Copies an array of `count` parameter lists (a batch's sets).
pub(crate) unsafe fn param_sets_of(
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
    if count > isize::MAX as usize / std::mem::size_of::<*const sqlpool_params>() {
        return Err(Error::invalid_argument(format!(
            "count {count} is larger than any array of parameter lists can be"
        )));
    }
    // SAFETY: non-NULL, a length an array can have, and the caller passes
    // `count` elements.
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
pub(crate) fn with_params<R>(
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

// ---------------------------------------------------------------------------
// Parameters

/// Creates an empty parameter list. On success `*out` is owned by the
/// caller; free it with `sqlpool_params_free`. Errors:
/// `SQLPOOL_INVALID_ARGUMENT` if `out` is NULL.
#[no_mangle]
pub extern "C" fn sqlpool_params_new(out: *mut *mut sqlpool_params) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let h = PARAMS.insert(Arc::new(Mutex::new(Params::new())))?;
        out.put(h as *mut sqlpool_params);
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

/// Appends UTF-8 text of `len` bytes (copied; need not be NUL-terminated;
/// at most `SQLPOOL_MAX_VALUE_SIZE` bytes: a larger `len` is refused with
/// `SQLPOOL_INVALID_ARGUMENT` before `value` is read).
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
        text_value(unsafe { bytes_arg(value.cast(), len, "value") }?)
    })
}

/// A text parameter from its bytes, which must be UTF-8.
fn text_value(bytes: &[u8]) -> Result<Value> {
    Ok(Value::Text(utf8_text(bytes)?.to_owned()))
}

/// A text parameter's bytes as text: `SQLPOOL_INVALID_UTF8` unless UTF-8.
pub(crate) fn utf8_text(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            Status::InvalidUtf8,
            format!(
                "text value is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Marks the end of a parameter set in a packed buffer
/// (`sqlpool_conn_execute_many_packed`), as `sqlpool_params_next_set` does.
pub const SQLPOOL_PACKED_END_SET: u8 = 255;

/// Positional parameters packed in one buffer (`sqlpool_conn_query_packed`):
/// each value is a `SQLPOOL_KIND_*` byte, then NULL: nothing; BOOL: one
/// byte 0/1; INT64, DOUBLE: 8 bytes little-endian; TEXT (UTF-8), BLOB: an
/// 8-byte little-endian length, then the bytes. `SQLPOOL_PACKED_END_SET`
/// ends a parameter set.
pub(crate) fn unpack_params(buf: &[u8]) -> Result<Params> {
    let mut params = Params::new();
    unpack_into(buf, &mut params, |p| p.next_set())?;
    Ok(params)
}

/// Packed parameter sets (`sqlpool_conn_execute_many_packed`), one
/// [`Params`] per set as [`Params::sets`] splits them, built directly (no
/// copy of every value per set).
pub(crate) fn unpack_param_sets(buf: &[u8]) -> Result<Vec<Params>> {
    let mut sets = Vec::new();
    let mut current = Params::new();
    unpack_into(buf, &mut current, |p| sets.push(std::mem::take(p)))?;
    if !current.is_empty() {
        sets.push(current);
    }
    Ok(sets)
}

/// Appends the values of `buf` to `params`, calling `end_set` at each
/// `SQLPOOL_PACKED_END_SET`.
fn unpack_into(
    mut buf: &[u8],
    params: &mut Params,
    mut end_set: impl FnMut(&mut Params),
) -> Result<()> {
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if buf.len() < n {
            return Err(Error::invalid_argument(
                "packed parameters end in the middle of a value",
            ));
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Ok(head)
    }
    fn word(buf: &mut &[u8]) -> Result<[u8; 8]> {
        let mut w = [0u8; 8];
        w.copy_from_slice(take(buf, 8)?);
        Ok(w)
    }
    while let Some((&tag, rest)) = buf.split_first() {
        buf = rest;
        if tag == SQLPOOL_PACKED_END_SET {
            end_set(params);
            continue;
        }
        let value = match u32::from(tag) {
            SQLPOOL_KIND_NULL => Value::Null,
            SQLPOOL_KIND_BOOL => Value::Bool(take(&mut buf, 1)?[0] != 0),
            SQLPOOL_KIND_INT64 => Value::Int64(i64::from_le_bytes(word(&mut buf)?)),
            SQLPOOL_KIND_DOUBLE => Value::Double(f64::from_le_bytes(word(&mut buf)?)),
            kind @ (SQLPOOL_KIND_TEXT | SQLPOOL_KIND_BLOB) => {
                let len = u64::from_le_bytes(word(&mut buf)?);
                let bytes = take(&mut buf, usize::try_from(len).unwrap_or(usize::MAX))?;
                if kind == SQLPOOL_KIND_TEXT {
                    text_value(bytes)?
                } else {
                    Value::Blob(bytes.to_vec())
                }
            }
            other => {
                return Err(Error::invalid_argument(format!(
                    "packed parameters: unknown kind {other} (value #{})",
                    params.len() + 1
                )))
            }
        };
        params.push(None, value)?;
    }
    Ok(())
}

/// Appends `len` bytes of binary data (copied; at most
/// `SQLPOOL_MAX_VALUE_SIZE` bytes, as `sqlpool_params_add_text`). Errors: as
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_parameters_unpack_and_refuse_short_buffers() {
        let mut buf = vec![SQLPOOL_KIND_INT64 as u8];
        buf.extend_from_slice(&(-7i64).to_le_bytes());
        buf.push(SQLPOOL_KIND_NULL as u8);
        buf.push(SQLPOOL_KIND_TEXT as u8);
        buf.extend_from_slice(&2u64.to_le_bytes());
        buf.extend_from_slice(b"hi");
        buf.extend_from_slice(&[SQLPOOL_KIND_BOOL as u8, 1]);
        let p = unpack_params(&buf).unwrap();
        assert_eq!(
            p.values(),
            [
                Value::Int64(-7),
                Value::Null,
                Value::Text("hi".into()),
                Value::Bool(true)
            ]
        );
        for cut in 1..buf.len() {
            if let Ok(p) = unpack_params(&buf[..cut]) {
                assert!(p.len() < 4, "cut at {cut}");
            }
        }
        let mut huge = vec![SQLPOOL_KIND_BLOB as u8];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            unpack_params(&huge).unwrap_err().status,
            Status::InvalidArgument
        );
        assert_eq!(
            unpack_params(&[9]).unwrap_err().status,
            Status::InvalidArgument
        );
        let bad_text = [SQLPOOL_KIND_TEXT as u8, 1, 0, 0, 0, 0, 0, 0, 0, 0xff];
        assert_eq!(
            unpack_params(&bad_text).unwrap_err().status,
            Status::InvalidUtf8
        );
    }

    #[test]
    fn packed_sets_split_as_params_sets_does() {
        let int = |i: i64| {
            let mut v = vec![SQLPOOL_KIND_INT64 as u8];
            v.extend_from_slice(&i.to_le_bytes());
            v
        };
        let end = vec![SQLPOOL_PACKED_END_SET];
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            end.clone(),
            [end.clone(), end.clone()].concat(),
            int(1),
            [int(1), end.clone()].concat(),
            [int(1), int(2), end.clone(), int(3), end.clone()].concat(),
            [int(1), end.clone(), end.clone(), int(4)].concat(),
        ];
        for buf in cases {
            let direct = unpack_param_sets(&buf).unwrap();
            let split = unpack_params(&buf).unwrap().sets();
            assert_eq!(direct, split, "{buf:?}");
        }
        assert_eq!(
            unpack_param_sets(&[SQLPOOL_KIND_INT64 as u8, 1])
                .unwrap_err()
                .status,
            Status::InvalidArgument
        );
    }
}
