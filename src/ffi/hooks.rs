//! Connection callbacks: C code the pool runs on each new connection and
//! on each connection going back to the pool (psycopg_pool's `configure`
//! and `reset`, pgx's `AfterConnect` and `AfterRelease`).

use std::ffi::c_void;
use std::sync::Arc;

use super::{
    boundary, handle, lock_ok, sqlpool_conn, sqlpool_options, sqlpool_status, take_last_error,
    ConnSlot, Holding, CONNS, OPTIONS,
};
use crate::backend::{Conn, ConnHook};
use crate::error::{Error, Result, Status};

/// A connection callback: called with `user_data` and a connection it may
/// run blocking statements on (`sqlpool_conn_execute`, `_query`, `_begin`,
/// ...) until it returns; the handle is invalid afterwards
/// (`SQLPOOL_MISUSE`), and it must not be released. Return `SQLPOOL_OK` (0)
/// to keep the connection; any other status discards it: set with
/// `sqlpool_options_set_connect_callback`, the failure is reported as the
/// pool's connect error (the calling thread's last error is used when its
/// status is the one returned).
///
/// It runs on whichever thread opens or releases the connection (the
/// caller of `sqlpool_pool_open`/`_acquire`/`sqlpool_conn_release`, or a
/// pool thread), possibly on several threads at once. It must not acquire
/// from the same pool (that waits for itself, up to the acquire timeout).
pub type sqlpool_conn_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, conn: *mut sqlpool_conn) -> u32>;

/// A C callback and its `user_data`.
struct CCallback {
    call: unsafe extern "C" fn(*mut c_void, *mut sqlpool_conn) -> u32,
    user_data: *mut c_void,
}

// SAFETY: the header asks for a callback and `user_data` usable from any
// thread, for as long as the pool may call it.
unsafe impl Send for CCallback {}
unsafe impl Sync for CCallback {}

impl CCallback {
    /// Calls the callback with `conn` behind a handle that lives for the
    /// call only.
    fn run(&self, conn: &mut Conn) -> Result<()> {
        let slot = Arc::new(ConnSlot {
            held: std::sync::Mutex::new(Holding::Callback(conn as *mut Conn)),
        });
        let h = CONNS.insert(slot.clone())?;
        // SAFETY: the caller of `sqlpool_options_set_*_callback` vouched for
        // the function and its `user_data`.
        let code = unsafe { (self.call)(self.user_data, h as *mut sqlpool_conn) };
        let _ = CONNS.remove(h);
        // A call on the handle another thread may still be making ends
        // before the connection's borrow does; later ones see it ended.
        *lock_ok(&slot.held) = Holding::CallbackEnded;
        if code == Status::Ok as u32 {
            return Ok(());
        }
        Err(take_last_error()
            .filter(|e| e.status as u32 == code)
            .unwrap_or_else(|| {
                Error::new(
                    Status::ConnectionError,
                    format!("it returned status {code}"),
                )
            }))
    }
}

fn set_hook(
    options: *mut sqlpool_options,
    callback: sqlpool_conn_callback,
    user_data: *mut c_void,
    slot: impl FnOnce(&mut crate::backend::Hooks) -> &mut Option<ConnHook>,
) -> sqlpool_status {
    boundary(|| {
        let hook = callback.map(|call| {
            let c = CCallback { call, user_data };
            Arc::new(move |conn: &mut Conn| c.run(conn)) as ConnHook
        });
        OPTIONS.with(handle(options, "options")?, |o| {
            *slot(&mut lock_ok(o).hooks) = hook;
            Ok(())
        })
    })
}

/// Sets the callback run on each new connection, after `init_sql`, before
/// it is first handed out (e.g. `SET search_path`, registering types,
/// checking the server); NULL removes it. What it sets is the baseline the
/// session reset returns to. A failing callback discards the connection
/// and is reported as the connect error (`sqlpool_pool_open` unless
/// `lazy`, or the acquire that waited for it). See `sqlpool_conn_callback`.
///
/// `user_data` is passed back as it is; it must stay valid until the pool
/// is closed and its last connection released.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_connect_callback(
    options: *mut sqlpool_options,
    callback: sqlpool_conn_callback,
    user_data: *mut c_void,
) -> sqlpool_status {
    set_hook(options, callback, user_data, |h| &mut h.on_connect)
}

/// Sets the callback run on each connection given back to the pool, after
/// its open transaction is rolled back and before its session is reset
/// (it sees the borrower's session); NULL removes it. Returning anything
/// but `SQLPOOL_OK` discards the connection. See `sqlpool_conn_callback`;
/// `user_data` as for `sqlpool_options_set_connect_callback`.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_release_callback(
    options: *mut sqlpool_options,
    callback: sqlpool_conn_callback,
    user_data: *mut c_void,
) -> sqlpool_status {
    set_hook(options, callback, user_data, |h| &mut h.on_release)
}
