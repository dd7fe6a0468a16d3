//! LISTEN/NOTIFY from C: `sqlpool_conn_next_notification` (blocking, with
//! a timeout) and the `sqlpool_notification_*` getters.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::async_api::{start_conn_op, Work};
use super::{
    boundary, handle, out_arg, sqlpool_completion_callback, sqlpool_conn, sqlpool_queue,
    sqlpool_status, with_conn,
};
use crate::backend::postgres::block;
use crate::backend::postgres::notify::Notification;
use crate::error::{Result, Status};
use crate::handles::{HandleKind, HandleTable};

/// One notification received on a connection that ran `LISTEN channel`:
/// the sending server process's pid, the channel and the payload.
///
/// Notifications arrive on the connection whatever it is doing; they wait
/// in the connection, oldest first, until taken with
/// `sqlpool_conn_next_notification`. At release the connection stops
/// listening (the session reset's `DISCARD ALL`, or `UNLISTEN *` with
/// `session_reset=off`) and its untaken notifications are dropped: the next
/// borrower never gets the previous one's subscriptions or notifications.
/// To keep listening, keep the connection.
///
/// Thread-safety: immutable, any thread. The caller owns it and frees it
/// with `sqlpool_notification_free`. Functions:
/// `sqlpool_conn_next_notification`, `sqlpool_notification_get`,
/// `sqlpool_notification_free`.
pub struct sqlpool_notification {
    _private: [u8; 0],
}

/// A notification's fields, from `sqlpool_notification_get`. The strings
/// are UTF-8, NOT NUL-terminated, owned by the notification and valid until
/// `sqlpool_notification_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sqlpool_notification_info {
    /// The pid of the server process that sent it (`pg_backend_pid()`).
    pub pid: i32,
    pub _reserved: u32,
    pub channel: *const c_char,
    pub channel_len: usize,
    pub payload: *const c_char,
    pub payload_len: usize,
}

pub(super) static NOTIFICATIONS: HandleTable<Notification> =
    HandleTable::new(HandleKind::Notification);

pub(super) fn store_notification(n: Notification) -> Result<usize> {
    NOTIFICATIONS.insert(Arc::new(n))
}

fn deadline_of(timeout_ms: i64) -> Option<Instant> {
    u64::try_from(timeout_ms)
        .ok()
        .map(|ms| Instant::now() + Duration::from_millis(ms))
}

/// Takes the oldest notification for this connection's `LISTEN`s, waiting
/// up to `timeout_ms` milliseconds for one (0: only what has arrived
/// already; negative: no bound). Run `LISTEN channel` first with
/// `sqlpool_conn_execute`.
///
/// `SQLPOOL_OK` with `*out` owning a notification (free it with
/// `sqlpool_notification_free`), or `SQLPOOL_EMPTY` when none came in time
/// (`*out` untouched, the last error unchanged). A connection lost while
/// listening (server shut down, backend terminated) is
/// `SQLPOOL_CONNECTION_ERROR` — notifications sent meanwhile are lost, and
/// this says so rather than waiting on. Errors: `SQLPOOL_UNSUPPORTED`
/// (SQLite), `SQLPOOL_CONNECTION_ERROR`, `SQLPOOL_BUSY`,
/// `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_conn_next_notification(
    conn: *mut sqlpool_conn,
    timeout_ms: i64,
    out: *mut *mut sqlpool_notification,
) -> sqlpool_status {
    let mut empty = false;
    let status = boundary(|| {
        let out = out_arg(out, "out")?;
        let deadline = deadline_of(timeout_ms);
        let n = with_conn(conn, |c| block(c.conn().next_notification_async(deadline)))?;
        let Some(n) = n else {
            empty = true;
            return Ok(());
        };
        let h = store_notification(n)?;
        out.put(h as *mut sqlpool_notification);
        Ok(())
    });
    if status == Status::Ok && empty {
        Status::Empty
    } else {
        status
    }
}

/// Fills `*out` with the notification's pid, channel and payload (pointers
/// valid until `sqlpool_notification_free`). Errors:
/// `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_notification_get(
    notification: *const sqlpool_notification,
    out: *mut sqlpool_notification_info,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        NOTIFICATIONS.with(handle(notification, "notification")?, |n| {
            let info = sqlpool_notification_info {
                pid: n.pid,
                _reserved: 0,
                channel: n.channel.as_ptr().cast(),
                channel_len: n.channel.len(),
                payload: n.payload.as_ptr().cast(),
                payload_len: n.payload.len(),
            };
            out.put(info);
            Ok(())
        })
    })
}

/// Frees a notification. NULL is accepted and ignored; freeing twice
/// returns `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_notification_free(
    notification: *mut sqlpool_notification,
) -> sqlpool_status {
    boundary(|| {
        if notification.is_null() {
            return Ok(());
        }
        NOTIFICATIONS.remove(notification as usize).map(drop)
    })
}

/// Operation kind in `sqlpool_completion.kind` of
/// `sqlpool_conn_next_notification_async`.
pub const SQLPOOL_OP_NOTIFY: u32 = 5;

/// Starts waiting for the oldest notification, as
/// `sqlpool_conn_next_notification` but without blocking: an event loop
/// watching the completion queue's descriptor (or a callback) is woken by
/// the notification itself, and the wait costs no thread (PostgreSQL
/// connections wait as tasks of the library's runtime). Completion kind
/// `SQLPOOL_OP_NOTIFY`: on `SQLPOOL_OK` its `handle` is a
/// `sqlpool_notification *` the receiver must free with
/// `sqlpool_notification_free`, or NULL when `timeout_ms` passed first
/// (negative: no bound; cancel the wait with `sqlpool_cancel`, the
/// completion then has `SQLPOOL_CANCELLED`). After one arrives, take the
/// others already received with `sqlpool_conn_next_notification(conn, 0,
/// ...)` before starting the next wait. Other statuses:
/// `SQLPOOL_CONNECTION_ERROR` (the connection was lost while listening),
/// `SQLPOOL_UNSUPPORTED` (SQLite). The connection is busy until the
/// completion; `queue`, `callback`, `user_data`, `op_id` and the busy rules
/// as `sqlpool_conn_execute_async`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_next_notification_async(
    conn: *mut sqlpool_conn,
    timeout_ms: i64,
    queue: *mut sqlpool_queue,
    callback: sqlpool_completion_callback,
    user_data: *mut c_void,
    op_id: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let wait = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        start_conn_op(conn, queue, callback, user_data, op_id, Work::Notify(wait))
    })
}
