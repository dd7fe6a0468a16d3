//! Streaming results from C: `sqlpool_conn_query_stream` and the
//! `sqlpool_stream_*` functions. Also the [`Held`] connection that streams
//! and COPYs keep while they are open.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};

use super::{
    boundary, handle, lock_ok, lock_slot, out_arg, sqlpool_conn, sqlpool_params, sqlpool_result,
    sqlpool_status, store_result, str_arg, with_params, ConnSlot, CONNS,
};
use crate::backend::bulk::RowStream;
use crate::backend::postgres::block;
use crate::backend::{Conn, LentConn};
use crate::error::{Error, Result, Status};
use crate::handles::{HandleKind, HandleTable};

/// A connection taken out of its handle while a stream or a COPY uses it:
/// calls on the handle answer `SQLPOOL_BUSY` (and release refuses) until
/// it goes back, which dropping this does.
pub(super) struct Held {
    slot: Arc<ConnSlot>,
    conn: Option<LentConn>,
}

impl Held {
    pub(super) fn take(conn: *mut sqlpool_conn) -> Result<Held> {
        let slot = CONNS.get(handle(conn, "conn")?)?;
        let lent = lock_slot(&slot)?.lend()?;
        Ok(Held {
            slot,
            conn: Some(lent),
        })
    }

    pub(super) fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("held until dropped").conn()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(lent) = self.conn.take() {
            lock_ok(&self.slot.held).restore(lent);
        }
    }
}

/// A query whose rows are read in chunks while the rest is still arriving,
/// with bounded memory (PostgreSQL: the server waits while the caller does
/// not read; SQLite: read whole, handed out in chunks).
///
/// The stream holds its connection: until it is finished (`sqlpool_stream_next`
/// returned `SQLPOOL_EMPTY` or an error) or freed, every call on the
/// connection returns `SQLPOOL_BUSY` and `sqlpool_conn_release` refuses.
/// Freeing a stream early leaves the connection clean: outside a
/// transaction the statement is cancelled, inside one the rest is read and
/// dropped (the transaction survives); a server that does not end it in
/// time loses the connection (discarded at release).
///
/// Thread-safety: may move between threads, one call at a time (else
/// `SQLPOOL_BUSY`). The caller owns it and frees it with
/// `sqlpool_stream_free`, also after it finished. Functions:
/// `sqlpool_conn_query_stream`, `sqlpool_stream_next`, `sqlpool_stream_free`.
pub struct sqlpool_stream {
    _private: [u8; 0],
}

static STREAMS: HandleTable<StreamSlot> = HandleTable::new(HandleKind::Stream);

struct StreamSlot {
    state: Mutex<StreamState>,
}

struct StreamState {
    /// `None` once the stream finished (the connection went back).
    open: Option<(Held, RowStream)>,
}

pub(super) fn try_lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Ok(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => Err(Error::new(
            Status::Busy,
            "in use by another thread (one call at a time)",
        )),
    }
}

/// Runs a query whose rows are read in chunks with `sqlpool_stream_next`
/// (psycopg's `cursor.stream()`, libpq's chunked rows). Placeholders and
/// `params` as `sqlpool_conn_query` (`params` may be NULL; only read, and
/// not needed after this returns).
///
/// On success `*out` owns a stream; free it with `sqlpool_stream_free`.
/// From now until the stream finishes or is freed the connection is busy
/// (see `sqlpool_stream`). Errors: as `sqlpool_conn_query` (then no stream
/// exists and the connection is free); `SQLPOOL_BUSY` when the connection
/// is in use.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_query_stream(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    params: *const sqlpool_params,
    out: *mut *mut sqlpool_stream,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let sql = unsafe { str_arg(sql, "sql") }?;
        let mut held = Held::take(conn)?;
        // On failure `held` gives the connection back as it drops.
        let rows = with_params(params, |p| block(held.conn().stream_start_async(sql, p)))?;
        let done = rows.is_done();
        let slot = StreamSlot {
            state: Mutex::new(StreamState {
                open: (!done).then_some((held, rows)),
            }),
        };
        let h = STREAMS.insert(Arc::new(slot))?;
        out.put(h as *mut sqlpool_stream);
        Ok(())
    })
}

/// Reads the next chunk of at most `max_rows` rows (at least 1) into a new
/// result: `SQLPOOL_OK` with `*out` owning a result of 1..`max_rows` rows
/// (free it with `sqlpool_result_free`; results of a stream are independent
/// of it and of each other), or `SQLPOOL_EMPTY` when no rows remain (`*out`
/// untouched, the last error unchanged). Blocks while the rows arrive,
/// bounded by the query timeout per chunk.
///
/// The stream finishes (and its connection is free again) when this
/// returns `SQLPOOL_EMPTY` or an error — possibly already on the call that
/// returns the last rows. Errors: the statement's (`SQLPOOL_DATABASE_ERROR`,
/// `SQLPOOL_QUERY_TIMEOUT`, `SQLPOOL_CONNECTION_ERROR`, ...), which also
/// finish it; `SQLPOOL_INVALID_ARGUMENT` (`max_rows` 0, NULL `out`),
/// `SQLPOOL_BUSY` (another thread is in a call on it), `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_stream_next(
    stream: *mut sqlpool_stream,
    max_rows: usize,
    out: *mut *mut sqlpool_result,
) -> sqlpool_status {
    let mut empty = false;
    let status = boundary(|| {
        let out = out_arg(out, "out")?;
        if max_rows == 0 {
            return Err(Error::invalid_argument("max_rows is 0"));
        }
        let slot = STREAMS.get(handle(stream, "stream")?)?;
        let mut st = try_lock(&slot.state)?;
        let Some((held, rows)) = st.open.as_mut() else {
            empty = true;
            return Ok(());
        };
        let r = block(held.conn().stream_next_async(rows, max_rows));
        let finished = r.is_err() || rows.is_done();
        if finished {
            // The connection goes back now.
            st.open = None;
        }
        let result = r?;
        if result.row_count() == 0 {
            empty = true;
            return Ok(());
        }
        store_result(result, out)
    });
    if status == Status::Ok && empty {
        Status::Empty
    } else {
        status
    }
}

/// Frees a stream. One not yet finished is given up first (see
/// `sqlpool_stream`; this may wait for the server, bounded), and its
/// connection is free again when this returns. Results read from it stay
/// valid. NULL is accepted and ignored; freeing twice returns
/// `SQLPOOL_MISUSE`. Errors: `SQLPOOL_BUSY` while another thread is in a
/// call on it (nothing freed).
#[no_mangle]
pub extern "C" fn sqlpool_stream_free(stream: *mut sqlpool_stream) -> sqlpool_status {
    boundary(|| {
        if stream.is_null() {
            return Ok(());
        }
        let h = stream as usize;
        let slot = STREAMS.get(h)?;
        let open = try_lock(&slot.state)?.open.take();
        drop(STREAMS.remove(h)?);
        if let Some((mut held, rows)) = open {
            let conn = held.conn();
            let _ = block(async {
                conn.stream_abandon_async(rows).await;
                Ok(())
            });
        }
        Ok(())
    })
}
