//! `sqlpool_options`: the opaque builder of pool options.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{boundary, handle, lock_ok, out_arg, sqlpool_status, str_arg};
use crate::backend::Hooks;
use crate::config::{self, PoolOptions, Recycling};
use crate::error::{Error, Result, Status};
use crate::handles::{HandleKind, HandleTable};

/// Pool options: an opaque builder, so new options never change the ABI.
///
/// Thread-safety: may be used from any thread; set options from one thread
/// at a time. The caller owns it and frees it with `sqlpool_options_free`;
/// `sqlpool_pool_open` copies what it needs and does not take it over.
///
/// Functions: `sqlpool_options_new`, `sqlpool_options_free`,
/// `sqlpool_options_set`, `sqlpool_options_set_max_size`,
/// `sqlpool_options_set_min_size`, `sqlpool_options_set_max_waiting`,
/// `sqlpool_options_set_acquire_timeout_ms`,
/// `sqlpool_options_set_connect_timeout_ms`,
/// `sqlpool_options_set_query_timeout_ms`,
/// `sqlpool_options_set_idle_timeout_ms`,
/// `sqlpool_options_set_max_lifetime_ms`,
/// `sqlpool_options_set_check_interval_ms`, `sqlpool_options_set_recycling`,
/// `sqlpool_options_set_lazy`, `sqlpool_options_set_leak_threshold_ms`,
/// `sqlpool_options_set_statement_cache_size`, `sqlpool_options_set_user`,
/// `sqlpool_options_set_password`, `sqlpool_options_set_host`,
/// `sqlpool_options_set_dbname`, `sqlpool_options_set_port`,
/// `sqlpool_options_set_connect_callback`,
/// `sqlpool_options_set_release_callback`.
pub struct sqlpool_options {
    _private: [u8; 0],
}

pub(crate) static OPTIONS: HandleTable<Mutex<OptionsSlot>> = HandleTable::new(HandleKind::Options);

/// What an options object holds: the options, and the connection
/// callbacks (`hooks.rs`), which have no text form.
#[derive(Clone, Default)]
pub(crate) struct OptionsSlot {
    pub(crate) options: PoolOptions,
    pub(crate) hooks: Hooks,
}

impl std::ops::Deref for OptionsSlot {
    type Target = PoolOptions;
    fn deref(&self) -> &PoolOptions {
        &self.options
    }
}

impl std::ops::DerefMut for OptionsSlot {
    fn deref_mut(&mut self) -> &mut PoolOptions {
        &mut self.options
    }
}

// ---------------------------------------------------------------------------
// Options

/// Creates an options object with every option unset (defaults apply).
///
/// On success `*out` owns a new object; free it with `sqlpool_options_free`.
/// Errors: `SQLPOOL_INVALID_ARGUMENT` if `out` is NULL.
#[no_mangle]
pub extern "C" fn sqlpool_options_new(out: *mut *mut sqlpool_options) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let h = OPTIONS.insert(Arc::new(Mutex::new(OptionsSlot::default())))?;
        out.put(h as *mut sqlpool_options);
        Ok(())
    })
}

/// Frees an options object. NULL is accepted and ignored. Freeing it twice
/// returns `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_options_free(options: *mut sqlpool_options) -> sqlpool_status {
    boundary(|| {
        if options.is_null() {
            return Ok(());
        }
        OPTIONS.remove(options as usize).map(drop)
    })
}

/// Sets any option by name, from text, exactly as in a URI query:
/// `min_size`, `max_size`, `max_waiting`, `acquire_timeout`,
/// `connect_timeout`, `idle_timeout`, `max_lifetime`, `check_interval`
/// (durations: `30`, `1.5`, `500ms`, `30s`, `2m`), `recycling`
/// (`fast`/`verified`/`clean`), `lazy`, `leak_threshold`,
/// `statement_cache_size`, `busy_timeout`, `journal_mode`, `pragma.NAME`
/// (SQLite), `user`, `password`, `host`, `port`, `dbname`,
/// `application_name` (PostgreSQL). Options set here win over the URI's.
///
/// Errors: `SQLPOOL_INVALID_OPTION` (unknown key or bad value; the message
/// names the option), `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_INVALID_UTF8`,
/// `SQLPOOL_MISUSE`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set(
    options: *mut sqlpool_options,
    key: *const c_char,
    value: *const c_char,
) -> sqlpool_status {
    boundary(|| {
        let key = unsafe { str_arg(key, "key") }?;
        let value = unsafe { str_arg(value, "value") }?;
        OPTIONS.with(handle(options, "options")?, |o| {
            if lock_ok(o).set_from_str(key, value)? {
                Ok(())
            } else {
                Err(Error::new(
                    Status::InvalidOption,
                    format!("unknown option {key:?}"),
                ))
            }
        })
    })
}

fn set_option(
    options: *mut sqlpool_options,
    f: impl FnOnce(&mut PoolOptions) -> Result<()>,
) -> sqlpool_status {
    boundary(|| OPTIONS.with(handle(options, "options")?, |o| f(&mut lock_ok(o))))
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Maximum number of connections (default 10, at least 1). Errors as
/// `sqlpool_options_set`.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_max_size(
    options: *mut sqlpool_options,
    max_size: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        config::check_sizes(0, max_size)?;
        o.max_size = Some(max_size);
        Ok(())
    })
}

/// Connections opened at start and kept open (default 1).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_min_size(
    options: *mut sqlpool_options,
    min_size: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.min_size = Some(min_size);
        Ok(())
    })
}

/// Most callers that may wait for a connection at once; past it acquire
/// fails at once with `SQLPOOL_POOL_EXHAUSTED`. 0 (default) = no limit.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_max_waiting(
    options: *mut sqlpool_options,
    max_waiting: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.max_waiting = Some(max_waiting);
        Ok(())
    })
}

/// How long acquire waits by default, in milliseconds (default 30000).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_acquire_timeout_ms(
    options: *mut sqlpool_options,
    timeout_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.acquire_timeout = Some(ms(timeout_ms));
        Ok(())
    })
}

/// How long opening one connection may take, in milliseconds (default
/// 10000; PostgreSQL): TCP connect, TLS, start-up and authentication, per
/// host tried.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_connect_timeout_ms(
    options: *mut sqlpool_options,
    timeout_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.connect_timeout = Some(ms(timeout_ms));
        Ok(())
    })
}

/// A client-side bound on each PostgreSQL statement, in milliseconds
/// (default 0 = none; URI option `query_timeout`). At the deadline the
/// library asks the server to cancel the statement and the call returns
/// `SQLPOOL_QUERY_TIMEOUT`; if the server does not end it within half a
/// second, the connection is closed instead. Also bounds the rollback at
/// release. Per connection: `sqlpool_conn_set_query_timeout`.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_query_timeout_ms(
    options: *mut sqlpool_options,
    timeout_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.query_timeout = Some(ms(timeout_ms));
        Ok(())
    })
}

/// Idle connections above `min_size` close after this many milliseconds
/// (default 600000; 0 = never).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_idle_timeout_ms(
    options: *mut sqlpool_options,
    timeout_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.idle_timeout = Some(ms(timeout_ms));
        Ok(())
    })
}

/// Connections are replaced after this many milliseconds, minus up to 2.5%
/// at random per connection (default 1800000; 0 = never).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_max_lifetime_ms(
    options: *mut sqlpool_options,
    lifetime_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.max_lifetime = Some(ms(lifetime_ms));
        Ok(())
    })
}

/// Idle connections are verified this often and dead ones replaced, in
/// milliseconds (default 30000; 0 = never).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_check_interval_ms(
    options: *mut sqlpool_options,
    interval_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.check_interval = Some(ms(interval_ms));
        Ok(())
    })
}

/// What checkout does: `SQLPOOL_RECYCLE_FAST` (0, nothing),
/// `SQLPOOL_RECYCLE_VERIFIED` (1, default: a cheap round trip),
/// `SQLPOOL_RECYCLE_CLEAN` (2, PostgreSQL `DISCARD ALL`). Errors:
/// `SQLPOOL_INVALID_OPTION` for another number.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_recycling(
    options: *mut sqlpool_options,
    method: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.recycling = Some(Recycling::from_u32(method).ok_or_else(|| {
            Error::new(
                Status::InvalidOption,
                format!("invalid recycling method {method} (expected 0, 1 or 2)"),
            )
        })?);
        Ok(())
    })
}

/// Nonzero: `sqlpool_pool_open` does not connect first, so it succeeds while
/// the database is unreachable. Zero (default): it fails fast.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_lazy(
    options: *mut sqlpool_options,
    lazy: i32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.lazy = Some(lazy != 0);
        Ok(())
    })
}

/// A connection held longer than this many milliseconds is reported once
/// as a possible leak (log target `sqlpool::pool`, and the stats' leak
/// count). 0 (default) = off.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_leak_threshold_ms(
    options: *mut sqlpool_options,
    threshold_ms: u64,
) -> sqlpool_status {
    set_option(options, |o| {
        o.leak_threshold = Some(ms(threshold_ms));
        Ok(())
    })
}

/// Prepared statements cached per connection (default 128; 0 = off, for
/// PgBouncer in transaction mode).
#[no_mangle]
pub extern "C" fn sqlpool_options_set_statement_cache_size(
    options: *mut sqlpool_options,
    size: u32,
) -> sqlpool_status {
    set_option(options, |o| {
        o.statement_cache_size = Some(size);
        Ok(())
    })
}

/// Sets a text option that has no typed setter: as `sqlpool_options_set`.
fn set_text(
    options: *mut sqlpool_options,
    value: *const c_char,
    name: &str,
    f: impl FnOnce(&mut PoolOptions, String),
) -> sqlpool_status {
    boundary(|| {
        let value = unsafe { str_arg(value, name) }?.to_owned();
        OPTIONS.with(handle(options, "options")?, |o| {
            f(&mut lock_ok(o), value);
            Ok(())
        })
    })
}

/// PostgreSQL user name (psqlpy's `username`); overrides the URI's.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set_user(
    options: *mut sqlpool_options,
    user: *const c_char,
) -> sqlpool_status {
    set_text(options, user, "user", |o, v| o.user = Some(v))
}

/// PostgreSQL password; overrides the URI's. Never logged or shown.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set_password(
    options: *mut sqlpool_options,
    password: *const c_char,
) -> sqlpool_status {
    set_text(options, password, "password", |o, v| o.password = Some(v))
}

/// PostgreSQL host name, address or socket directory; overrides the URI's.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set_host(
    options: *mut sqlpool_options,
    host: *const c_char,
) -> sqlpool_status {
    set_text(options, host, "host", |o, v| o.host = Some(v))
}

/// PostgreSQL database name (psqlpy's `db_name`); overrides the URI's.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_options_set_dbname(
    options: *mut sqlpool_options,
    dbname: *const c_char,
) -> sqlpool_status {
    set_text(options, dbname, "dbname", |o, v| o.dbname = Some(v))
}

/// PostgreSQL port; overrides the URI's. Errors: `SQLPOOL_INVALID_OPTION`
/// for 0.
#[no_mangle]
pub extern "C" fn sqlpool_options_set_port(
    options: *mut sqlpool_options,
    port: u16,
) -> sqlpool_status {
    set_option(options, |o| {
        if port == 0 {
            return Err(Error::new(
                Status::InvalidOption,
                "invalid value 0 for option port",
            ));
        }
        o.port = Some(port);
        Ok(())
    })
}

/// Recycling methods for `sqlpool_options_set_recycling`.
pub const SQLPOOL_RECYCLE_FAST: u32 = 0;
pub const SQLPOOL_RECYCLE_VERIFIED: u32 = 1;
pub const SQLPOOL_RECYCLE_CLEAN: u32 = 2;
