//! `sqlpool_pool`: open, acquire, one-shot statements, stats, close.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use super::{
    boundary, handle, lock_ok, null_arg, opt_str_arg, out_arg, sqlpool_conn, sqlpool_options,
    sqlpool_params, sqlpool_result, sqlpool_status, store_result, str_arg, with_params, ConnSlot,
    OptionsSlot, Out, CONNS, OPTIONS,
};
use crate::backend::{Hooks, Pool};
use crate::config::{self, PoolOptions};
use crate::error::{Error, Result, Status};
use crate::handles::{HandleKind, HandleTable};
use crate::pool::Stats;

/// A pool of connections to one database.
///
/// Thread-safety: share freely across threads; every function may be called
/// on the same pool from many threads at once.
///
/// Created by `sqlpool_pool_open`; closed (exactly once) by
/// `sqlpool_pool_close`. Functions: `sqlpool_pool_open`,
/// `sqlpool_pool_acquire`, `sqlpool_pool_execute`, `sqlpool_pool_query`,
/// `sqlpool_pool_stats`, `sqlpool_pool_host_stats`, `sqlpool_pool_resize`,
/// `sqlpool_pool_drain`, `sqlpool_pool_close`.
pub struct sqlpool_pool {
    _private: [u8; 0],
}

pub(crate) static POOLS: HandleTable<Pool> = HandleTable::new(HandleKind::Pool);

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
///
/// Blocks (unless `lazy`) while the first connection opens: bounded by
/// `connect_timeout` per host tried (default 10 s).
#[no_mangle]
pub unsafe extern "C" fn sqlpool_pool_open(
    uri: *const c_char,
    options: *const sqlpool_options,
    out: *mut *mut sqlpool_pool,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let uri = unsafe { opt_str_arg(uri, "uri") }?;
        let explicit = if options.is_null() {
            OptionsSlot::default()
        } else {
            OPTIONS.with(options as usize, |o| Ok(lock_ok(o).clone()))?
        };
        let pool = open_pool(uri, &explicit.options, explicit.hooks)?;
        let h = POOLS.insert(Arc::new(pool))?;
        out.put(h as *mut sqlpool_pool);
        Ok(())
    })
}

fn open_pool(uri: Option<&str>, explicit: &PoolOptions, hooks: Hooks) -> Result<Pool> {
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
    config::apply_connection_options(&mut target, &mut options)?;
    crate::backend::open_pool(target, options.settings()?, hooks)
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
/// `SQLPOOL_INVALID_OPTION` for TLS settings that cannot work) when
/// retrying cannot help;
/// `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`. Thread-safe.
///
/// Blocks until a connection is free or opened: bounded by `timeout_ms` (or
/// the pool's `acquire_timeout`, default 30 s).
#[no_mangle]
pub extern "C" fn sqlpool_pool_acquire(
    pool: *mut sqlpool_pool,
    timeout_ms: i64,
    out: *mut *mut sqlpool_conn,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let pool = handle(pool, "pool")?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        // An idle connection is taken under the table's read lock, which
        // nothing waits under; the check and any waiting happen outside it.
        let mut started = None;
        let checkout = match POOLS
            .with(pool, |p| p.take_idle())?
            .and_then(|checkout| checkout.checked(timeout, &mut started))
        {
            Some(checkout) => checkout,
            None => POOLS.get(pool)?.acquire_waiting(timeout, started)?,
        };
        let h = CONNS.insert(ConnSlot::pooled(checkout))?;
        out.put(h as *mut sqlpool_conn);
        Ok(())
    })
}

/// Acquires a connection, runs one statement and releases it (psqlpy's
/// `pool.execute`). `params` may be NULL. On success `*rows_affected`
/// (if not NULL) is set. Errors: those of `sqlpool_pool_acquire` and
/// `sqlpool_conn_execute`.
///
/// Blocks: the acquire (bounded by `acquire_timeout`) and the statement
/// (bounded by `query_timeout` on PostgreSQL when set; SQLite: `busy_timeout`
/// for locks).
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
        if let Some(out) = Out::optional(rows_affected) {
            out.put(n);
        }
        Ok(())
    })
}

/// Acquires a connection, runs one query and releases it. On success
/// `*out` owns the result; free it with `sqlpool_result_free`. Errors: those
/// of `sqlpool_pool_acquire` and `sqlpool_conn_query`.
///
/// Blocks as `sqlpool_pool_execute`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_pool_query(
    pool: *mut sqlpool_pool,
    sql: *const c_char,
    params: *const sqlpool_params,
    out: *mut *mut sqlpool_result,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
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
        let out = out_arg(out, "out")?;
        let stats = POOLS.get(handle(pool, "pool")?)?.stats();
        out.put_prefix(&stats, size);
        Ok(())
    })
}

/// Writes the pool's connections per server as JSON into `buf`: an array,
/// one object per host the pool has connected to (in order of first use),
/// `[{"host": "10.0.0.1:5432", "open": 3, "opened": 12}, ...]` — `open`:
/// connections on it now, `opened`: connections made to it since the pool
/// started. A multi-host PostgreSQL target shows where its connections went
/// (after a failover, to the new primary); SQLite pools write `[]`.
///
/// `buf` receives the text and a terminating NUL; `*written` the text's
/// length without the NUL. Pass `buf` = NULL and `len` = 0 to learn the
/// length only (success, nothing else written). Errors:
/// `SQLPOOL_BUFFER_TOO_SMALL` (`len` is not more than the length; nothing
/// written — ask for the length and try again, it may have grown),
/// `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`. Thread-safe.
///
/// # Safety
/// `buf` must be NULL (with `len` 0) or point at `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_pool_host_stats(
    pool: *mut sqlpool_pool,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        let written = out_arg(written, "written")?;
        let hosts = POOLS.get(handle(pool, "pool")?)?.manager().host_stats();
        let list: Vec<serde_json::Value> = hosts
            .iter()
            .map(|h| serde_json::json!({"host": h.host, "open": h.open, "opened": h.opened}))
            .collect();
        let text = serde_json::Value::Array(list).to_string();
        if buf.is_null() {
            if len != 0 {
                return Err(null_arg("buf"));
            }
            written.put(text.len());
            return Ok(());
        }
        if len <= text.len() {
            return Err(Error::new(
                Status::BufferTooSmall,
                format!(
                    "the host statistics take {} bytes and a NUL; the buffer has {len}",
                    text.len()
                ),
            ));
        }
        // SAFETY: `buf` is non-NULL and the caller provides `len` bytes,
        // more than the text.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            buf.add(text.len()).write(0);
        }
        written.put(text.len());
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
