//! Logging: the host's log callback and statement logging.

use std::ffi::{c_char, c_void};

use super::{boundary, c_string, sqlpool_status};
use crate::error::Error;
use crate::log::{self, Level};

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
