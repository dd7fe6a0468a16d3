//! `sqlpool_conn`: a borrowed connection; statements and transactions.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::params::{unpack_param_sets, unpack_params};
use super::result::store_result_with;
use super::{
    boundary, bytes_arg, handle, out_arg, param_sets_of, sqlpool_params, sqlpool_query_info,
    sqlpool_result, sqlpool_status, store_result, str_arg, with_params, Out,
};
use crate::backend::{Checkout, Conn, LentConn};
use crate::backend::{SavepointAction, TxOptions};
use crate::error::{Error, Result, Status};
use crate::handles::{HandleKind, HandleTable};
use crate::result::{CellRef, Column, ResultSet};
use crate::value::Params;

/// A connection borrowed from a pool.
///
/// Thread-safety: may move between threads, one call at a time (a second
/// concurrent call returns `SQLPOOL_BUSY`). Given back, exactly once, with
/// `sqlpool_conn_release`. It stays usable after its pool is closed, and
/// closes when released.
///
/// Functions: `sqlpool_pool_acquire`, `sqlpool_conn_release`,
/// `sqlpool_conn_set_query_timeout`, `sqlpool_conn_execute`,
/// `sqlpool_conn_query`, `sqlpool_conn_query_packed`,
/// `sqlpool_conn_execute_script`,
/// `sqlpool_conn_execute_batch`, `sqlpool_conn_execute_many`,
/// `sqlpool_conn_execute_many_packed`, `sqlpool_conn_execute_many_columns`,
/// `sqlpool_conn_begin`, `sqlpool_conn_commit`, `sqlpool_conn_rollback`,
/// `sqlpool_conn_savepoint`, `sqlpool_conn_release_savepoint`,
/// `sqlpool_conn_rollback_to_savepoint`.
pub struct sqlpool_conn {
    _private: [u8; 0],
}

pub(crate) static CONNS: HandleTable<ConnSlot> = HandleTable::new(HandleKind::Conn);

/// A borrowed connection's table entry: one call at a time.
pub(crate) struct ConnSlot {
    pub(crate) held: Mutex<Holding>,
}

impl ConnSlot {
    pub(crate) fn pooled(checkout: Checkout) -> Arc<ConnSlot> {
        Arc::new(ConnSlot {
            held: Mutex::new(Holding::Pooled(checkout)),
        })
    }
}

/// How a handle holds its connection.
pub(crate) enum Holding {
    /// Borrowed from a pool; `sqlpool_conn_release` gives it back.
    Pooled(Checkout),
    /// Lent to a connection callback for the callback's duration only
    /// (`hooks.rs`): the pointer is valid while this variant is in the
    /// slot, and the callback's runner replaces it with `CallbackEnded`
    /// (under the slot's lock) before the borrow it came from ends.
    Callback(*mut Conn),
    CallbackEnded,
}

// SAFETY: the pointer is only dereferenced under the slot's mutex, while
// the callback that lent it runs (see `Holding::Callback`); `Conn` is Send.
unsafe impl Send for Holding {}

impl Holding {
    /// The connection; callers have checked [`Holding::usable`].
    pub(crate) fn conn(&mut self) -> &mut Conn {
        match self {
            Holding::Pooled(checkout) => checkout.conn(),
            // SAFETY: see `Holding::Callback`; `usable` refused the ended case.
            Holding::Callback(conn) => unsafe { &mut **conn },
            Holding::CallbackEnded => unreachable!("checked by Holding::usable"),
        }
    }

    /// Whether a call may run on the connection now.
    fn usable(&self) -> Result<()> {
        match self {
            Holding::Pooled(checkout) if checkout.is_lent() => Err(Error::new(
                Status::Busy,
                "an asynchronous operation, an open stream or a COPY is using this connection (one at a time)",
            )),
            Holding::CallbackEnded => Err(callback_ended()),
            _ => Ok(()),
        }
    }

    /// The pool's checkout: refused on a connection lent to a callback,
    /// which may make blocking calls only.
    pub(crate) fn pooled(&mut self) -> Result<&mut Checkout> {
        self.usable()?;
        match self {
            Holding::Pooled(checkout) => Ok(checkout),
            _ => Err(Error::misuse(
                "a connection callback may make blocking calls only (no asynchronous operation, stream or COPY)",
            )),
        }
    }

    /// Takes the connection out for an asynchronous operation, a stream or
    /// a COPY; [`Holding::restore`] puts it back.
    pub(crate) fn lend(&mut self) -> Result<LentConn> {
        self.pooled()?
            .lend()
            .ok_or_else(|| Error::new(Status::Busy, "the connection is already lent"))
    }

    pub(crate) fn restore(&mut self, lent: LentConn) {
        if let Holding::Pooled(checkout) = self {
            checkout.restore(lent);
        }
    }
}

fn callback_ended() -> Error {
    Error::misuse("this connection was lent to a callback that has returned; it is no longer valid")
}

/// Runs `f` on a borrowed connection; refuses a concurrent second call.
pub(crate) fn with_conn<R>(
    conn: *mut sqlpool_conn,
    f: impl FnOnce(&mut Holding) -> Result<R>,
) -> Result<R> {
    let slot = CONNS.get(handle(conn, "conn")?)?;
    let mut guard = lock_slot(&slot)?;
    guard.usable()?;
    f(&mut guard)
}

/// The slot's lock, refused while another thread holds it.
pub(crate) fn lock_slot(slot: &ConnSlot) -> Result<std::sync::MutexGuard<'_, Holding>> {
    slot.held.try_lock().map_err(|e| match e {
        std::sync::TryLockError::WouldBlock => Error::new(
            Status::Busy,
            "the connection is in use by another thread (one call at a time)",
        ),
        std::sync::TryLockError::Poisoned(_) => {
            Error::misuse("the connection was poisoned by an earlier panic; release it")
        }
    })
}

// ---------------------------------------------------------------------------
// Connection

/// Gives a connection back to its pool. An open or failed transaction is
/// rolled back first; a broken connection is discarded and replaced. The
/// handle is invalid afterwards: using or releasing it again returns
/// `SQLPOOL_MISUSE`. NULL is accepted and ignored. Errors: `SQLPOOL_BUSY`
/// while another thread is inside a call on it.
///
/// Blocks while an open transaction is rolled back: bounded by
/// `query_timeout` when set (PostgreSQL).
#[no_mangle]
pub extern "C" fn sqlpool_conn_release(conn: *mut sqlpool_conn) -> sqlpool_status {
    boundary(|| {
        if conn.is_null() {
            return Ok(());
        }
        // Checked and removed under the table's lock in one step.
        let slot = CONNS.remove_if(conn as usize, |slot| {
            // Refuse while another thread is inside a call on it, or an
            // asynchronous operation runs on it.
            let held = lock_slot(slot).map_err(|_| {
                Error::new(
                    Status::Busy,
                    "the connection is in use by another thread; release it after that call returns",
                )
            })?;
            match &*held {
                Holding::Pooled(checkout) if checkout.is_lent() => Err(Error::new(
                    Status::Busy,
                    "an asynchronous operation is running on this connection; release it after its completion",
                )),
                Holding::Pooled(_) => Ok(()),
                Holding::Callback(_) => Err(Error::misuse(
                    "this connection was lent to a callback: the pool takes it back when the callback returns",
                )),
                Holding::CallbackEnded => Err(callback_ended()),
            }
        })?;
        // Dropping the last reference returns the connection to the pool
        // (outside the table's lock).
        drop(slot);
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
///
/// Blocks until the database answers: bounded by `query_timeout` /
/// `sqlpool_conn_set_query_timeout` on PostgreSQL (none by default), by
/// `busy_timeout` for SQLite locks; `sqlpool_cancel` or a dead connection
/// also end it.
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
        if let Some(out) = Out::optional(rows_affected) {
            out.put(n);
        }
        Ok(())
    })
}

/// Runs one query with bound parameters (as `sqlpool_conn_execute`) and
/// reads all its rows. On success `*out` owns the result; free it with
/// `sqlpool_result_free`. Errors: as `sqlpool_conn_execute`.
///
/// Blocks as `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_query(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    out: *mut *mut sqlpool_result,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let sql = unsafe { str_arg(sql, "sql") }?;
        let result = with_params(params, |p| with_conn(conn, |c| c.conn().query(sql, p)))?;
        store_result(result, out)
    })
}

/// `sqlpool_conn_query` in one call for bindings that pay per call
/// (ctypes): positional parameters packed in one buffer instead of a
/// parameter list, and the result's shape and first row (packed) written
/// to `*info` with the result. `params` holds `params_len` bytes (NULL
/// with 0: no parameters; at most `SQLPOOL_MAX_VALUE_SIZE`): each value a
/// `SQLPOOL_KIND_*` byte, then NULL: nothing; BOOL: 1 byte 0/1; INT64,
/// DOUBLE: 8 bytes little-endian; TEXT (UTF-8), BLOB: an 8-byte
/// little-endian length and the bytes. On success `*out` owns the result
/// (free it with `sqlpool_result_free`) and `*info` points into it.
/// Errors: `SQLPOOL_INVALID_ARGUMENT` (a malformed buffer),
/// `SQLPOOL_INVALID_UTF8`, and as `sqlpool_conn_query`.
///
/// Blocks as `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_query_packed(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const u8,
    params_len: usize,
    out: *mut *mut sqlpool_result,
    info: *mut sqlpool_query_info,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let info = out_arg(info, "info")?;
        let sql = unsafe { str_arg(sql, "sql") }?;
        let params = unpack_params(unsafe { bytes_arg(params, params_len, "params") }?)?;
        let result = with_conn(conn, |c| c.conn().query(sql, &params))?;
        let shape = store_result_with(result, out, sqlpool_query_info::of)?;
        info.put(shape);
        Ok(())
    })
}

/// Bytes of the header `sqlpool_conn_query_into` writes at the start of its
/// buffer: seven little-endian 64-bit words, `rows`, `columns`,
/// `names_len`, `format_len`, `data_len`, `text_cells`, `null_cells`.
pub const SQLPOOL_QUERY_HEADER_SIZE: usize = 56;

/// `sqlpool_conn_query_packed` without a result to free when the result is
/// small, for bindings that pay per call (a single-row query is one call):
/// the result's shape and first row are written into the caller's buffer
/// `buf` (`buf_len` bytes, at least `SQLPOOL_QUERY_HEADER_SIZE`), as the
/// header (see `SQLPOOL_QUERY_HEADER_SIZE`; the words mean what the
/// `sqlpool_query_info` fields of the same names do) followed by
/// `names_len` bytes of names (as `sqlpool_result_info.names`),
/// `format_len` bytes of row format and `data_len` bytes of row data (as
/// `sqlpool_query_info.row_format` and `row_data`). `names_len` is 0 when
/// the names do not fit (with columns), `format_len` 0 when the first row
/// does not fit (with rows) or has more than 64 columns. `params` as
/// `sqlpool_conn_query_packed`'s.
///
/// `*out` is NULL when the buffer holds the whole result (no row, or one
/// row whose names and values fit); otherwise it receives the result,
/// which the caller owns and frees with `sqlpool_result_free`, and reads
/// what the buffer lacks from it. The header's lengths say how much of
/// `buf` was written (no separate count: each argument costs a ctypes
/// caller). On failure `*out` is not written (and `buf` holds nothing
/// meaningful). Errors: `SQLPOOL_BUFFER_TOO_SMALL` (`buf_len` below the
/// header's size, checked before the query runs), and as
/// `sqlpool_conn_query_packed`.
///
/// Blocks as `sqlpool_conn_execute`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sqlpool_conn_query_into(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const u8,
    params_len: usize,
    buf: *mut u8,
    buf_len: usize,
    out: *mut *mut sqlpool_result,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let buf = unsafe { into_buf(buf, buf_len) }?;
        let sql = unsafe { str_arg(sql, "sql") }?;
        let params = unpack_params(unsafe { bytes_arg(params, params_len, "params") }?)?;
        let result = with_conn(conn, |c| c.conn().query(sql, &params))?;
        result_into(result, buf, out)
    })
}

/// The buffer of `sqlpool_conn_query_into` (and its loop-driven form),
/// checked: not NULL, at least `SQLPOOL_QUERY_HEADER_SIZE` bytes.
///
/// # Safety
/// `buf` points to `buf_len` writable bytes nothing else uses meanwhile.
pub(super) unsafe fn into_buf<'a>(buf: *mut u8, buf_len: usize) -> Result<&'a mut [u8]> {
    if buf.is_null() {
        return Err(Error::invalid_argument("buf is NULL"));
    }
    if buf_len < SQLPOOL_QUERY_HEADER_SIZE {
        return Err(Error::new(
            Status::BufferTooSmall,
            format!("buf_len {buf_len} is below SQLPOOL_QUERY_HEADER_SIZE ({SQLPOOL_QUERY_HEADER_SIZE})"),
        ));
    }
    // SAFETY: checked non-NULL above; the caller provides `buf_len`
    // writable bytes (documented), not used by anything else meanwhile.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf, buf_len) })
}

/// A query's result as `sqlpool_conn_query_into` hands it over: in `buf`
/// when it fits (`*out` NULL), else also through `*out`.
pub(super) fn result_into(
    result: ResultSet,
    buf: &mut [u8],
    out: Out<*mut sqlpool_result>,
) -> Result<()> {
    if packed_into(&result, buf) {
        out.put(std::ptr::null_mut());
        Ok(())
    } else {
        store_result(result, out)
    }
}

/// Writes `result`'s header, names and packed first row into `buf` (at
/// least `SQLPOOL_QUERY_HEADER_SIZE` bytes); returns whether they hold the
/// whole result.
fn packed_into(result: &ResultSet, buf: &mut [u8]) -> bool {
    let rows = result.row_count();
    let columns = result.columns();
    let names_len = put_names(columns, &mut buf[SQLPOOL_QUERY_HEADER_SIZE..]);
    let at = SQLPOOL_QUERY_HEADER_SIZE + names_len;
    let names_fit = names_len > 0 || columns.is_empty();
    let mut row = (0, 0, 0u64, 0u64);
    if rows > 0 && names_fit && columns.len() <= 64 {
        if let Some(r) = put_first_row(result, &mut buf[at..]) {
            row = r;
        }
    }
    let (format_len, data_len, text_cells, null_cells) = row;
    let header = [
        rows as u64,
        columns.len() as u64,
        names_len as u64,
        format_len as u64,
        data_len as u64,
        text_cells,
        null_cells,
    ];
    for (i, word) in header.iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    names_fit && (rows == 0 || (rows == 1 && format_len > 0))
}

/// `name\0decltype\0` per column (`sqlpool_result_info.names`) into `buf`;
/// the length, 0 when it does not fit.
fn put_names(columns: &[Column], buf: &mut [u8]) -> usize {
    let need: usize = columns
        .iter()
        .map(|c| c.name.len() + c.decl_type.len() + 2)
        .sum();
    if need > buf.len() {
        return 0;
    }
    let mut at = 0;
    for c in columns {
        for part in [c.name.as_bytes(), c.decl_type.as_bytes()] {
            buf[at..at + part.len()].copy_from_slice(part);
            buf[at + part.len()] = 0;
            at += part.len() + 1;
        }
    }
    at
}

/// The first row in `sqlpool_query_info`'s packed form: the format, then
/// the data, into `buf`; (format length, data length, text cells, NULL
/// cells), or None when it does not fit. At most 64 columns.
fn put_first_row(result: &ResultSet, buf: &mut [u8]) -> Option<(usize, usize, u64, u64)> {
    let ncols = result.column_count();
    let cells = (0..ncols).map(|c| result.cell(0, c).unwrap_or(CellRef::Null));
    // The format first (its length decides where the data starts).
    let mut format_len = 1;
    let mut data_len = 0;
    for cell in cells.clone() {
        let (f, d) = match cell {
            CellRef::Null => (0, 0),
            CellRef::Bool(_) => (1, 1),
            CellRef::Int64(_) | CellRef::Double(_) => (1, 8),
            CellRef::Text(b) | CellRef::Blob(b) => (decimal_len(b.len()) + 1, b.len()),
        };
        format_len += f;
        data_len += d;
    }
    if format_len + data_len > buf.len() {
        return None;
    }
    let (format, data) = buf.split_at_mut(format_len);
    format[0] = b'<';
    let (mut f, mut d) = (1, 0);
    let (mut text_cells, mut null_cells) = (0u64, 0u64);
    for (c, cell) in cells.enumerate() {
        match cell {
            CellRef::Null => null_cells |= 1 << c,
            CellRef::Bool(b) => {
                format[f] = b'?';
                data[d] = u8::from(b);
                f += 1;
                d += 1;
            }
            CellRef::Int64(i) => {
                format[f] = b'q';
                data[d..d + 8].copy_from_slice(&i.to_le_bytes());
                f += 1;
                d += 8;
            }
            CellRef::Double(x) => {
                format[f] = b'd';
                data[d..d + 8].copy_from_slice(&x.to_le_bytes());
                f += 1;
                d += 8;
            }
            CellRef::Text(b) | CellRef::Blob(b) => {
                if matches!(cell, CellRef::Text(_)) {
                    text_cells |= 1 << c;
                }
                let digits = decimal_len(b.len());
                let mut n = b.len();
                for i in (0..digits).rev() {
                    format[f + i] = b'0' + (n % 10) as u8;
                    n /= 10;
                }
                format[f + digits] = b's';
                f += digits + 1;
                data[d..d + b.len()].copy_from_slice(b);
                d += b.len();
            }
        }
    }
    Some((format_len, data_len, text_cells, null_cells))
}

fn decimal_len(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// Runs a script of one or more statements separated by `;`, without
/// parameters (schema setup, migrations). Errors: as `sqlpool_conn_execute`.
///
/// Blocks as `sqlpool_conn_execute`, per statement.
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
///
/// Blocks as `sqlpool_conn_execute`, per statement of the batch.
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
        run_many(conn, sql, &sets, rows_affected)
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
///
/// Blocks as `sqlpool_conn_execute_batch`.
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
        run_many(conn, sql, &sets, rows_affected)
    })
}

/// `sqlpool_conn_execute_many` with the parameter sets packed in one
/// buffer (as `sqlpool_conn_query_packed`'s), each set ended by
/// `SQLPOOL_PACKED_END_SET` (as `sqlpool_params_next_set`), for bindings
/// that pay per call. Errors: as `sqlpool_conn_query_packed` and
/// `sqlpool_conn_execute_many`.
///
/// Blocks as `sqlpool_conn_execute_batch`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_many_packed(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const u8,
    params_len: usize,
    rows_affected: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?;
        let sets = unpack_param_sets(unsafe { bytes_arg(params, params_len, "params") }?)?;
        run_many(conn, sql, &sets, rows_affected)
    })
}

fn run_many(
    conn: *mut sqlpool_conn,
    sql: &str,
    sets: &[Params],
    rows_affected: *mut u64,
) -> Result<()> {
    let refs: Vec<&Params> = sets.iter().collect();
    let n = with_conn(conn, |c| c.conn().execute_many(sql, &refs))?;
    if let Some(out) = Out::optional(rows_affected) {
        out.put(n);
    }
    Ok(())
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

/// Begins a transaction. `isolation` is one of `SQLPOOL_ISOLATION_*`;
/// `flags` combines `SQLPOOL_TX_*`. On SQLite every transaction is
/// serializable; a read-write one starts with `BEGIN IMMEDIATE` so
/// concurrent writers wait on the busy timeout instead of failing later.
/// Errors: `SQLPOOL_TRANSACTION_STATE` (SQLite: one is already open),
/// `SQLPOOL_INVALID_ARGUMENT`, and those of `sqlpool_conn_execute`.
///
/// Blocks as `sqlpool_conn_execute` (SQLite `BEGIN IMMEDIATE` waits up to
/// `busy_timeout` for the write lock).
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
///
/// Blocks as `sqlpool_conn_execute`.
#[no_mangle]
pub extern "C" fn sqlpool_conn_commit(conn: *mut sqlpool_conn) -> sqlpool_status {
    boundary(|| with_conn(conn, |c| c.conn().commit()))
}

/// Rolls the open transaction back. Errors: as `sqlpool_conn_commit`.
///
/// Blocks as `sqlpool_conn_execute`.
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
///
/// Blocks as `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_savepoint(
    conn: *mut sqlpool_conn,
    name: *const c_char,
) -> sqlpool_status {
    savepoint(conn, name, SavepointAction::Create)
}

/// Releases (keeps the work of) a savepoint. Errors: as
/// `sqlpool_conn_savepoint`.
///
/// Blocks as `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_release_savepoint(
    conn: *mut sqlpool_conn,
    name: *const c_char,
) -> sqlpool_status {
    savepoint(conn, name, SavepointAction::Release)
}

/// Rolls back to a savepoint, which stays defined; this also recovers a
/// failed PostgreSQL transaction. Errors: as `sqlpool_conn_savepoint`.
///
/// Blocks as `sqlpool_conn_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_rollback_to_savepoint(
    conn: *mut sqlpool_conn,
    name: *const c_char,
) -> sqlpool_status {
    savepoint(conn, name, SavepointAction::RollbackTo)
}
