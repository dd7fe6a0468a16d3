//! Thin test helpers over the exported C functions (nothing else).
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use sqlpool::ffi::*;
use sqlpool::Status;

/// A C-level failure: status and the thread's last error.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: Status,
    pub message: String,
    pub sqlstate: String,
    pub native: i64,
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn text(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

pub fn last_message() -> String {
    text(sqlpool_last_error_message())
}

pub fn last_json() -> String {
    text(sqlpool_last_error_json())
}

pub fn check(status: Status) -> Result<(), Failure> {
    if status == Status::Ok {
        return Ok(());
    }
    Err(Failure {
        status,
        message: last_message(),
        sqlstate: text(sqlpool_last_error_sqlstate()),
        native: sqlpool_last_error_native_code(),
    })
}

#[track_caller]
pub fn ok(status: Status) {
    if let Err(f) = check(status) {
        panic!("expected SQLPOOL_OK, got {:?}: {}", f.status, f.message);
    }
}

/// A parameter for [`params`].
#[derive(Clone, Debug)]
pub enum P<'a> {
    Null,
    Bool(bool),
    I(i64),
    D(f64),
    T(&'a str),
    B(&'a [u8]),
    Named(&'a str, Box<P<'a>>),
}

pub fn named<'a>(name: &'a str, p: P<'a>) -> P<'a> {
    P::Named(name, Box::new(p))
}

/// Builds a parameter list (caller frees with sqlpool_params_free).
pub fn params(values: &[P]) -> *mut sqlpool_params {
    let mut list = ptr::null_mut();
    ok(sqlpool_params_new(&mut list));
    for v in values {
        add(list, None, v);
    }
    list
}

/// Adds `set` to `list` as one parameter set (then starts the next).
pub fn add_set(list: *mut sqlpool_params, set: &[P]) {
    for v in set {
        add(list, None, v);
    }
    ok(sqlpool_params_next_set(list));
}

fn add(list: *mut sqlpool_params, name: Option<&CString>, v: &P) {
    let n = name.map_or(ptr::null(), |c| c.as_ptr());
    unsafe {
        ok(match v {
            P::Null => sqlpool_params_add_null(list, n),
            P::Bool(b) => sqlpool_params_add_bool(list, n, i32::from(*b)),
            P::I(i) => sqlpool_params_add_int64(list, n, *i),
            P::D(d) => sqlpool_params_add_double(list, n, *d),
            P::T(t) => sqlpool_params_add_text(list, n, t.as_ptr().cast(), t.len()),
            P::B(b) => sqlpool_params_add_blob(list, n, b.as_ptr(), b.len()),
            P::Named(name, inner) => {
                add(list, Some(&cstr(name)), inner);
                Status::Ok
            }
        });
    }
}

pub fn open(uri: &str) -> *mut sqlpool_pool {
    open_with(uri, &[]).unwrap_or_else(|f| panic!("open {uri}: {:?} {}", f.status, f.message))
}

/// Opens with options given as `sqlpool_options_set` key/value pairs.
pub fn open_with(uri: &str, options: &[(&str, &str)]) -> Result<*mut sqlpool_pool, Failure> {
    let mut opts = ptr::null_mut();
    ok(sqlpool_options_new(&mut opts));
    for (k, v) in options {
        let (k, v) = (cstr(k), cstr(v));
        ok(unsafe { sqlpool_options_set(opts, k.as_ptr(), v.as_ptr()) });
    }
    let mut pool = ptr::null_mut();
    let u = cstr(uri);
    let r = check(unsafe { sqlpool_pool_open(u.as_ptr(), opts, &mut pool) });
    ok(sqlpool_options_free(opts));
    r.map(|_| pool)
}

pub fn acquire(pool: *mut sqlpool_pool) -> *mut sqlpool_conn {
    try_acquire(pool, 10_000).unwrap_or_else(|f| panic!("acquire: {:?} {}", f.status, f.message))
}

pub fn try_acquire(pool: *mut sqlpool_pool, timeout_ms: i64) -> Result<*mut sqlpool_conn, Failure> {
    let mut conn = ptr::null_mut();
    check(sqlpool_pool_acquire(pool, timeout_ms, &mut conn)).map(|_| conn)
}

pub fn release(conn: *mut sqlpool_conn) {
    ok(sqlpool_conn_release(conn));
}

pub fn exec(conn: *mut sqlpool_conn, sql: &str, values: &[P]) -> Result<u64, Failure> {
    let list = params(values);
    let s = cstr(sql);
    let mut n = 0u64;
    let r = check(unsafe { sqlpool_conn_execute(conn, s.as_ptr(), list, &mut n) });
    ok(sqlpool_params_free(list));
    r.map(|_| n)
}

pub fn script(conn: *mut sqlpool_conn, sql: &str) -> Result<(), Failure> {
    let s = cstr(sql);
    check(unsafe { sqlpool_conn_execute_script(conn, s.as_ptr()) })
}

/// A cell read back through the typed getters.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Null,
    Bool(bool),
    I(i64),
    D(f64),
    T(String),
    B(Vec<u8>),
}

pub fn query_raw(
    conn: *mut sqlpool_conn,
    sql: &str,
    values: &[P],
) -> Result<*mut sqlpool_result, Failure> {
    let list = params(values);
    let s = cstr(sql);
    let mut result = ptr::null_mut();
    let r = check(unsafe { sqlpool_conn_query(conn, s.as_ptr(), list, &mut result) });
    ok(sqlpool_params_free(list));
    r.map(|_| result)
}

pub fn read_cell(result: *mut sqlpool_result, row: usize, col: usize) -> V {
    let mut kind = 0u32;
    ok(sqlpool_result_kind(result, row, col, &mut kind));
    match kind {
        SQLPOOL_KIND_NULL => V::Null,
        SQLPOOL_KIND_BOOL => {
            let mut b = 0;
            ok(sqlpool_result_get_bool(result, row, col, &mut b));
            V::Bool(b != 0)
        }
        SQLPOOL_KIND_INT64 => {
            let mut i = 0;
            ok(sqlpool_result_get_int64(result, row, col, &mut i));
            V::I(i)
        }
        SQLPOOL_KIND_DOUBLE => {
            let mut d = 0.0;
            ok(sqlpool_result_get_double(result, row, col, &mut d));
            V::D(d)
        }
        SQLPOOL_KIND_TEXT => {
            let (mut p, mut n) = (ptr::null(), 0usize);
            ok(sqlpool_result_get_text(result, row, col, &mut p, &mut n));
            let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) };
            V::T(String::from_utf8(bytes.to_vec()).unwrap())
        }
        SQLPOOL_KIND_BLOB => {
            let (mut p, mut n) = (ptr::null(), 0usize);
            ok(sqlpool_result_get_blob(result, row, col, &mut p, &mut n));
            V::B(if n == 0 {
                Vec::new()
            } else {
                unsafe { std::slice::from_raw_parts(p, n) }.to_vec()
            })
        }
        k => panic!("unknown kind {k}"),
    }
}

pub fn rows_of(result: *mut sqlpool_result) -> Vec<Vec<V>> {
    let (mut nrows, mut ncols) = (0usize, 0usize);
    ok(sqlpool_result_row_count(result, &mut nrows));
    ok(sqlpool_result_column_count(result, &mut ncols));
    (0..nrows)
        .map(|r| (0..ncols).map(|c| read_cell(result, r, c)).collect())
        .collect()
}

pub fn column_names(result: *mut sqlpool_result) -> Vec<String> {
    let mut ncols = 0usize;
    ok(sqlpool_result_column_count(result, &mut ncols));
    (0..ncols)
        .map(|c| {
            let (mut p, mut n) = (ptr::null(), 0usize);
            ok(sqlpool_result_column_name(result, c, &mut p, &mut n));
            String::from_utf8(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) }.to_vec())
                .unwrap()
        })
        .collect()
}

pub fn decl_types(result: *mut sqlpool_result) -> Vec<String> {
    let mut ncols = 0usize;
    ok(sqlpool_result_column_count(result, &mut ncols));
    (0..ncols)
        .map(|c| {
            let (mut p, mut n) = (ptr::null(), 0usize);
            ok(sqlpool_result_column_decltype(result, c, &mut p, &mut n));
            String::from_utf8(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) }.to_vec())
                .unwrap()
        })
        .collect()
}

/// Runs a query and returns its rows (the result is freed).
pub fn query(conn: *mut sqlpool_conn, sql: &str, values: &[P]) -> Result<Vec<Vec<V>>, Failure> {
    let result = query_raw(conn, sql, values)?;
    let rows = rows_of(result);
    ok(sqlpool_result_free(result));
    Ok(rows)
}

/// The single value of a one-row, one-column query.
pub fn scalar(conn: *mut sqlpool_conn, sql: &str) -> V {
    let rows =
        query(conn, sql, &[]).unwrap_or_else(|f| panic!("{sql}: {:?} {}", f.status, f.message));
    rows[0][0].clone()
}

pub fn stats(pool: *mut sqlpool_pool) -> sqlpool::pool::Stats {
    let mut s = sqlpool::pool::Stats::default();
    ok(sqlpool_pool_stats(
        pool,
        &mut s,
        std::mem::size_of::<sqlpool::pool::Stats>(),
    ));
    s
}

pub fn close(pool: *mut sqlpool_pool) {
    ok(sqlpool_pool_close(pool));
}

/// A fresh SQLite file URI in a temp dir that lives as long as the guard.
pub fn sqlite_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:{}", dir.path().join("test.db").display());
    (dir, uri)
}

/// Handles are plain pointers; tests move them between threads.
pub struct Send<T>(pub *mut T);
impl<T> Clone for Send<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Send<T> {}
unsafe impl<T> std::marker::Send for Send<T> {}
unsafe impl<T> Sync for Send<T> {}

/// A `sqlpool_completion` with nothing in it, for a poll to fill.
pub fn empty_completion() -> sqlpool_completion {
    sqlpool_completion {
        op_id: 0,
        user_data: ptr::null_mut(),
        status: Status::Ok,
        kind: 0,
        handle: ptr::null_mut(),
        rows_affected: 0,
        error: ptr::null_mut(),
    }
}

/// A `sqlpool_wait` with nothing in it, for `sqlpool_task_poll` to fill.
pub fn empty_wait() -> sqlpool_wait {
    sqlpool_wait {
        count: 0,
        fds: [-1; 4],
        events: [0; 4],
        timeout_us: -1,
    }
}
