//! A typed wrapper over the C functions shared by the type and parameter
//! tests: values compared exactly (64-bit doubles, NaN), results read
//! through every getter and checked against `sqlpool_result_column_data`.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use sqlpool::ffi::*;
use sqlpool::Status;

// ---------------------------------------------------------------------------
// A thin, test-only wrapper over the C functions.

/// A parameter or cell value as the C side sees it.
#[derive(Clone, Debug)]
pub enum V {
    Null,
    Bool(bool),
    I(i64),
    D(f64),
    T(String),
    B(Vec<u8>),
}

impl PartialEq for V {
    fn eq(&self, other: &V) -> bool {
        match (self, other) {
            (V::Null, V::Null) => true,
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::I(a), V::I(b)) => a == b,
            // Exact, 64-bit: NaN equals NaN, 0.0 and -0.0 differ.
            (V::D(a), V::D(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (V::T(a), V::T(b)) => a == b,
            (V::B(a), V::B(b)) => a == b,
            _ => false,
        }
    }
}

pub fn t(s: &str) -> V {
    V::T(s.to_owned())
}

pub fn kind_of(v: &V) -> u32 {
    match v {
        V::Null => SQLPOOL_KIND_NULL,
        V::Bool(_) => SQLPOOL_KIND_BOOL,
        V::I(_) => SQLPOOL_KIND_INT64,
        V::D(_) => SQLPOOL_KIND_DOUBLE,
        V::T(_) => SQLPOOL_KIND_TEXT,
        V::B(_) => SQLPOOL_KIND_BLOB,
    }
}

#[derive(Debug)]
pub struct Failure {
    pub status: Status,
    pub message: String,
}

pub fn last_error(status: Status) -> Failure {
    let message = unsafe { CStr::from_ptr(sqlpool_last_error_message()) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(sqlpool_last_error_status(), status);
    Failure { status, message }
}

pub fn check(status: Status, what: &str) {
    if status != Status::Ok {
        let e = last_error(status);
        panic!("{what}: {:?}: {}", e.status, e.message);
    }
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in test SQL")
}

/// A parameter list, freed on drop.
pub struct Params(pub *mut sqlpool_params);

impl Params {
    pub fn new() -> Params {
        let mut p = ptr::null_mut();
        check(sqlpool_params_new(&mut p), "params_new");
        Params(p)
    }

    pub fn positional(values: &[V]) -> Params {
        let p = Params::new();
        for v in values {
            p.add(None, v);
        }
        p
    }

    pub fn named(values: &[(&str, V)]) -> Params {
        let p = Params::new();
        for (name, v) in values {
            p.add(Some(name), v);
        }
        p
    }

    pub fn add(&self, name: Option<&str>, v: &V) {
        let name = name.map(cstr);
        let n = name.as_ref().map_or(ptr::null(), |n| n.as_ptr());
        let st = unsafe {
            match v {
                V::Null => sqlpool_params_add_null(self.0, n),
                V::Bool(b) => sqlpool_params_add_bool(self.0, n, i32::from(*b)),
                V::I(i) => sqlpool_params_add_int64(self.0, n, *i),
                V::D(d) => sqlpool_params_add_double(self.0, n, *d),
                V::T(s) => sqlpool_params_add_text(self.0, n, s.as_ptr().cast(), s.len()),
                V::B(b) => sqlpool_params_add_blob(self.0, n, b.as_ptr(), b.len()),
            }
        };
        check(st, "params_add");
    }
}

impl Drop for Params {
    fn drop(&mut self) {
        sqlpool_params_free(self.0);
    }
}

/// A query result read completely through the C getters (cell by cell,
/// and cross-checked against `sqlpool_result_column_data`).
#[derive(Debug)]
pub struct Rows {
    pub names: Vec<String>,
    pub types: Vec<String>,
    pub rows: Vec<Vec<V>>,
}

impl Rows {
    pub fn column(&self, c: usize) -> Vec<V> {
        self.rows.iter().map(|r| r[c].clone()).collect()
    }
}

pub fn borrowed_str(p: *const c_char, len: usize) -> String {
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    String::from_utf8(bytes.to_vec()).expect("UTF-8 from the library")
}

pub fn read_result(res: *const sqlpool_result) -> Rows {
    let (mut nrows, mut ncols) = (0usize, 0usize);
    check(sqlpool_result_row_count(res, &mut nrows), "row_count");
    check(sqlpool_result_column_count(res, &mut ncols), "column_count");
    let mut names = Vec::new();
    let mut types = Vec::new();
    for c in 0..ncols {
        let (mut p, mut len) = (ptr::null(), 0usize);
        check(sqlpool_result_column_name(res, c, &mut p, &mut len), "name");
        names.push(borrowed_str(p, len));
        check(
            sqlpool_result_column_decltype(res, c, &mut p, &mut len),
            "decltype",
        );
        types.push(borrowed_str(p, len));
    }
    let mut rows = Vec::new();
    for r in 0..nrows {
        let mut row = Vec::new();
        for c in 0..ncols {
            let mut kind = 99u32;
            check(sqlpool_result_kind(res, r, c, &mut kind), "kind");
            let mut is_null = -1;
            check(sqlpool_result_is_null(res, r, c, &mut is_null), "is_null");
            assert_eq!(is_null == 1, kind == SQLPOOL_KIND_NULL);
            let v = match kind {
                SQLPOOL_KIND_NULL => {
                    let mut i = 0i64;
                    assert_eq!(
                        sqlpool_result_get_int64(res, r, c, &mut i),
                        Status::NullValue
                    );
                    V::Null
                }
                SQLPOOL_KIND_BOOL => {
                    let mut b = -1;
                    check(sqlpool_result_get_bool(res, r, c, &mut b), "get_bool");
                    assert!(b == 0 || b == 1);
                    V::Bool(b == 1)
                }
                SQLPOOL_KIND_INT64 => {
                    let mut i = 0i64;
                    check(sqlpool_result_get_int64(res, r, c, &mut i), "get_int64");
                    V::I(i)
                }
                SQLPOOL_KIND_DOUBLE => {
                    let mut d = 0f64;
                    check(sqlpool_result_get_double(res, r, c, &mut d), "get_double");
                    V::D(d)
                }
                SQLPOOL_KIND_TEXT => {
                    let (mut p, mut len) = (ptr::null(), 0usize);
                    check(
                        sqlpool_result_get_text(res, r, c, &mut p, &mut len),
                        "get_text",
                    );
                    V::T(borrowed_str(p, len))
                }
                SQLPOOL_KIND_BLOB => {
                    let (mut p, mut len) = (ptr::null(), 0usize);
                    check(
                        sqlpool_result_get_blob(res, r, c, &mut p, &mut len),
                        "get_blob",
                    );
                    let bytes = if len == 0 {
                        Vec::new()
                    } else {
                        unsafe { std::slice::from_raw_parts(p, len) }.to_vec()
                    };
                    V::B(bytes)
                }
                other => panic!("unexpected kind {other}"),
            };
            row.push(v);
        }
        rows.push(row);
    }
    let out = Rows { names, types, rows };
    for c in 0..ncols {
        check_column_data(res, c, &out);
    }
    out
}

/// The bulk column reader agrees with the cell getters.
pub fn check_column_data(res: *const sqlpool_result, c: usize, rows: &Rows) {
    let mut d = std::mem::MaybeUninit::<sqlpool_column_data>::uninit();
    check(
        sqlpool_result_column_data(res, c, d.as_mut_ptr()),
        "column_data",
    );
    let d = unsafe { d.assume_init() };
    let cells = rows.column(c);
    assert_eq!(d.rows, cells.len());
    let kinds: Vec<u32> = cells
        .iter()
        .filter(|v| !matches!(v, V::Null))
        .map(kind_of)
        .collect();
    let expect_kind = match kinds.first() {
        None => SQLPOOL_KIND_NULL,
        Some(k) if kinds.iter().all(|x| x == k) => *k,
        Some(_) => SQLPOOL_KIND_MIXED,
    };
    assert_eq!(d.kind, expect_kind, "column {c} kind");
    if cells.is_empty() || d.kind == SQLPOOL_KIND_MIXED {
        return;
    }
    for (r, v) in cells.iter().enumerate() {
        let null = unsafe { *d.nulls.add(r) } == 1;
        assert_eq!(null, matches!(v, V::Null), "column {c} row {r} null flag");
        match v {
            V::Null => {}
            V::Bool(b) => assert_eq!(unsafe { *d.ints.add(r) }, i64::from(*b)),
            V::I(i) => assert_eq!(unsafe { *d.ints.add(r) }, *i),
            V::D(x) => assert_eq!(V::D(unsafe { *d.doubles.add(r) }), V::D(*x)),
            V::T(_) | V::B(_) => {
                let (start, end) = unsafe { (*d.offsets.add(r), *d.offsets.add(r + 1)) };
                let got = if end == start {
                    Vec::new()
                } else {
                    unsafe {
                        std::slice::from_raw_parts(
                            d.bytes.add(start as usize),
                            (end - start) as usize,
                        )
                    }
                    .to_vec()
                };
                let want = match v {
                    V::T(s) => s.as_bytes().to_vec(),
                    V::B(b) => b.clone(),
                    _ => unreachable!(),
                };
                assert_eq!(got, want, "column {c} row {r} bytes");
            }
        }
    }
}

/// A pool with one borrowed connection; both go on drop.
pub struct Db {
    pub pool: *mut sqlpool_pool,
    pub conn: *mut sqlpool_conn,
}

impl Db {
    pub fn open(uri: &str) -> Db {
        Db::open_with(uri, ptr::null())
    }

    pub fn open_with(uri: &str, options: *const sqlpool_options) -> Db {
        let mut pool = ptr::null_mut();
        let u = cstr(uri);
        check(
            unsafe { sqlpool_pool_open(u.as_ptr(), options, &mut pool) },
            "pool_open",
        );
        let mut conn = ptr::null_mut();
        check(sqlpool_pool_acquire(pool, -1, &mut conn), "acquire");
        Db { pool, conn }
    }

    pub fn script(&self, sql: &str) {
        let s = cstr(sql);
        check(
            unsafe { sqlpool_conn_execute_script(self.conn, s.as_ptr()) },
            sql,
        );
    }

    pub fn try_exec(&self, sql: &str, p: &Params) -> Result<u64, Failure> {
        let s = cstr(sql);
        let mut n = u64::MAX;
        let st = unsafe { sqlpool_conn_execute(self.conn, s.as_ptr(), p.0, &mut n) };
        if st == Status::Ok {
            Ok(n)
        } else {
            Err(last_error(st))
        }
    }

    pub fn exec(&self, sql: &str, values: &[V]) -> u64 {
        self.try_exec(sql, &Params::positional(values))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    pub fn try_query(&self, sql: &str, p: &Params) -> Result<Rows, Failure> {
        let s = cstr(sql);
        let mut res = ptr::null_mut();
        let st = unsafe { sqlpool_conn_query(self.conn, s.as_ptr(), p.0, &mut res) };
        if st != Status::Ok {
            return Err(last_error(st));
        }
        let rows = read_result(res);
        check(sqlpool_result_free(res), "result_free");
        Ok(rows)
    }

    pub fn query(&self, sql: &str, values: &[V]) -> Rows {
        self.try_query(sql, &Params::positional(values))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    /// The single value of a one-row, one-column query.
    pub fn one(&self, sql: &str, values: &[V]) -> V {
        let rows = self.query(sql, values);
        assert_eq!(rows.rows.len(), 1, "{sql}");
        assert_eq!(rows.rows[0].len(), 1, "{sql}");
        rows.rows[0][0].clone()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        sqlpool_conn_release(self.conn);
        sqlpool_pool_close(self.pool);
    }
}
