//! COPY from C: `sqlpool_conn_copy_in` / `sqlpool_conn_copy_out` and the
//! `sqlpool_copy_*` functions.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::stream::{try_lock, Held};
use super::{boundary, bytes_arg, handle, out_arg, sqlpool_conn, sqlpool_status, str_arg, Out};
use crate::backend::postgres::block;
use crate::backend::postgres::copy::{PgCopyIn, PgCopyOut};
use crate::error::{Error, Result, Status};
use crate::handles::{HandleKind, HandleTable};

/// A running `COPY … FROM STDIN` (written with `sqlpool_copy_write`, ended
/// with `sqlpool_copy_finish`) or `COPY … TO STDOUT` (read with
/// `sqlpool_copy_read`). The data is the server's COPY format, passed
/// through as bytes: text, CSV or binary, as the statement says.
///
/// A COPY holds its connection as a stream does: until it is finished
/// (`sqlpool_copy_finish`, `sqlpool_copy_read` returning `SQLPOOL_EMPTY`,
/// or an error) or freed, calls on the connection return `SQLPOOL_BUSY`.
/// Freeing an unfinished COPY IN aborts it (the server rolls the COPY
/// back); an unfinished COPY OUT is cancelled or drained as a stream. An
/// error in the middle (a bad row, a lost server) finishes the COPY with
/// the server's SQLSTATE and leaves the connection usable, or broken
/// (discarded at release).
///
/// PostgreSQL only: on SQLite `sqlpool_conn_copy_in`/`_out` return
/// `SQLPOOL_UNSUPPORTED`.
///
/// Thread-safety: may move between threads, one call at a time (else
/// `SQLPOOL_BUSY`). The caller owns it and frees it with
/// `sqlpool_copy_free`, also after it finished. Functions:
/// `sqlpool_conn_copy_in`, `sqlpool_conn_copy_out`, `sqlpool_copy_write`,
/// `sqlpool_copy_finish`, `sqlpool_copy_read`, `sqlpool_copy_free`.
pub struct sqlpool_copy {
    _private: [u8; 0],
}

static COPIES: HandleTable<CopySlot> = HandleTable::new(HandleKind::Copy);

struct CopySlot {
    state: Mutex<CopyState>,
}

enum CopyState {
    In(Option<(Held, PgCopyIn)>),
    Out {
        open: Option<(Held, PgCopyOut)>,
        /// Bytes of the last CopyData message not yet handed out.
        pending: Bytes,
    },
}

fn start(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    out: *mut *mut sqlpool_copy,
    copy_in: bool,
) -> Result<()> {
    let out = out_arg(out, "out")?;
    let sql = unsafe { str_arg(sql, "sql") }?;
    let mut held = Held::take(conn)?;
    let state = if copy_in {
        let copy = block(held.conn().copy_in_start_async(sql))?;
        CopyState::In(Some((held, copy)))
    } else {
        let copy = block(held.conn().copy_out_start_async(sql))?;
        CopyState::Out {
            open: Some((held, copy)),
            pending: Bytes::new(),
        }
    };
    let h = COPIES.insert(Arc::new(CopySlot {
        state: Mutex::new(state),
    }))?;
    out.put(h as *mut sqlpool_copy);
    Ok(())
}

/// Starts `COPY … FROM STDIN` (`sql`, e.g. `COPY t (a, b) FROM STDIN
/// (FORMAT csv)`; no parameters). On success `*out` owns the COPY; write
/// with `sqlpool_copy_write`, end with `sqlpool_copy_finish`, free with
/// `sqlpool_copy_free`. The connection is busy until then (see
/// `sqlpool_copy`). Errors: `SQLPOOL_UNSUPPORTED` (SQLite), the server's
/// (`SQLPOOL_DATABASE_ERROR` for a statement that is not a COPY FROM
/// STDIN, ...), `SQLPOOL_BUSY`, `SQLPOOL_INVALID_ARGUMENT`,
/// `SQLPOOL_INVALID_UTF8`, `SQLPOOL_MISUSE`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_copy_in(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    out: *mut *mut sqlpool_copy,
) -> sqlpool_status {
    boundary(|| start(conn, sql, out, true))
}

/// Starts `COPY … TO STDOUT` (`sql`, e.g. `COPY (SELECT ...) TO STDOUT
/// (FORMAT binary)`). On success `*out` owns the COPY; read it with
/// `sqlpool_copy_read`, free it with `sqlpool_copy_free`. Errors: as
/// `sqlpool_conn_copy_in`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_copy_out(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    out: *mut *mut sqlpool_copy,
) -> sqlpool_status {
    boundary(|| start(conn, sql, out, false))
}

fn finished() -> Error {
    Error::misuse("this COPY has already finished")
}

fn wrong_direction(want: &str) -> Error {
    Error::misuse(format!("this COPY does not {want}"))
}

/// Sends `len` bytes of COPY data (any split: a row may span calls; the
/// library batches small writes into messages of about 4 KiB). A bad row
/// is usually reported by `sqlpool_copy_finish` (the server checks as it
/// goes). Errors: `SQLPOOL_CONNECTION_ERROR` (the COPY then finished),
/// `SQLPOOL_MISUSE` (a COPY OUT, a finished or freed COPY), `SQLPOOL_BUSY`,
/// `SQLPOOL_INVALID_ARGUMENT` (NULL `data` with nonzero `len`).
#[no_mangle]
pub unsafe extern "C" fn sqlpool_copy_write(
    copy: *mut sqlpool_copy,
    data: *const u8,
    len: usize,
) -> sqlpool_status {
    boundary(|| {
        let data = unsafe { bytes_arg(data, len, "data") }?;
        let slot = COPIES.get(handle(copy, "copy")?)?;
        let mut st = try_lock(&slot.state)?;
        let CopyState::In(open) = &mut *st else {
            return Err(wrong_direction("write (it is a COPY TO STDOUT)"));
        };
        let Some((held, sink)) = open.as_mut() else {
            return Err(finished());
        };
        let r = block(held.conn().copy_in_write_async(sink, data));
        if r.is_err() {
            if let Some((mut held, sink)) = open.take() {
                let conn = held.conn();
                let _ = block(async {
                    conn.copy_in_abort_async(sink).await;
                    Ok(())
                });
            }
        }
        r
    })
}

/// Ends a COPY FROM STDIN: the server commits the rows (inside the
/// connection's transaction, if one is open) and `*rows` (if not NULL) gets
/// their count. The connection is free again afterwards, also on failure.
/// Errors: the server's for a bad row (`SQLPOOL_DATABASE_ERROR` with its
/// SQLSTATE, e.g. 22P02; nothing of the COPY remains),
/// `SQLPOOL_CONNECTION_ERROR`, `SQLPOOL_MISUSE` (COPY OUT, finished or
/// freed), `SQLPOOL_BUSY`.
#[no_mangle]
pub extern "C" fn sqlpool_copy_finish(copy: *mut sqlpool_copy, rows: *mut u64) -> sqlpool_status {
    boundary(|| {
        let slot = COPIES.get(handle(copy, "copy")?)?;
        let mut st = try_lock(&slot.state)?;
        let CopyState::In(open) = &mut *st else {
            return Err(wrong_direction("take writes (it is a COPY TO STDOUT)"));
        };
        let Some((mut held, sink)) = open.take() else {
            return Err(finished());
        };
        let n = block(held.conn().copy_in_finish_async(sink))?;
        drop(held);
        if let Some(rows) = Out::optional(rows) {
            rows.put(n);
        }
        Ok(())
    })
}

/// Reads COPY TO STDOUT data into `buf` (`cap` bytes): `SQLPOOL_OK` with
/// `*written` (1..`cap`) bytes, or `SQLPOOL_EMPTY` when the data is over
/// (`*written` untouched, the last error unchanged; the connection is free
/// again). Fills the buffer from as many server messages as fit (text and
/// CSV rows may be split across calls), waiting while they arrive. Errors:
/// the server's (which also finish the COPY), `SQLPOOL_INVALID_ARGUMENT`
/// (NULL `buf` or `written`, `cap` 0), `SQLPOOL_MISUSE` (a COPY IN, a
/// freed COPY), `SQLPOOL_BUSY`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_copy_read(
    copy: *mut sqlpool_copy,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> sqlpool_status {
    let mut empty = false;
    let status = boundary(|| {
        out_arg(buf, "buf")?;
        let written = out_arg(written, "written")?;
        if cap == 0 {
            return Err(Error::invalid_argument("cap is 0"));
        }
        let slot = COPIES.get(handle(copy, "copy")?)?;
        let mut st = try_lock(&slot.state)?;
        let CopyState::Out { open, pending } = &mut *st else {
            return Err(wrong_direction("read (it is a COPY FROM STDIN)"));
        };
        // SAFETY: non-NULL, and the caller passes `cap` writable bytes.
        let dest = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
        let mut n = 0;
        loop {
            if !pending.is_empty() {
                let take = pending.len().min(cap - n);
                dest[n..n + take].copy_from_slice(&pending.split_to(take));
                n += take;
            }
            if n == cap {
                break;
            }
            let Some((held, stream)) = open.as_mut() else {
                break;
            };
            match block(held.conn().copy_out_next_async(stream)) {
                Ok(Some(b)) => *pending = b,
                Ok(None) => {
                    *open = None;
                    break;
                }
                Err(e) => {
                    *open = None;
                    *pending = Bytes::new();
                    // Bytes already copied are lost with the error: the
                    // COPY failed as a whole.
                    return Err(e);
                }
            }
        }
        if n == 0 {
            empty = true;
            return Ok(());
        }
        written.put(n);
        Ok(())
    });
    if status == Status::Ok && empty {
        Status::Empty
    } else {
        status
    }
}

/// Frees a COPY; an unfinished one is given up first (see `sqlpool_copy`)
/// and its connection is free again when this returns. NULL is accepted
/// and ignored; freeing twice returns `SQLPOOL_MISUSE`. Errors:
/// `SQLPOOL_BUSY` while another thread is in a call on it (nothing freed).
#[no_mangle]
pub extern "C" fn sqlpool_copy_free(copy: *mut sqlpool_copy) -> sqlpool_status {
    boundary(|| {
        if copy.is_null() {
            return Ok(());
        }
        let h = copy as usize;
        let slot = COPIES.get(h)?;
        let state = {
            let mut st = try_lock(&slot.state)?;
            std::mem::replace(&mut *st, CopyState::In(None))
        };
        drop(COPIES.remove(h)?);
        match state {
            CopyState::In(Some((mut held, sink))) => {
                let conn = held.conn();
                let _ = block(async {
                    conn.copy_in_abort_async(sink).await;
                    Ok(())
                });
            }
            CopyState::Out {
                open: Some((mut held, stream)),
                ..
            } => {
                let conn = held.conn();
                let _ = block(async {
                    conn.copy_out_abandon_async(stream).await;
                    Ok(())
                });
            }
            _ => {}
        }
        Ok(())
    })
}
