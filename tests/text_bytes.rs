//! SQLite TEXT that is not UTF-8 comes back byte for byte through every C
//! getter, and the library says it is not UTF-8 (issue 17 §4).

mod common;

use std::ptr;

use common::typed::*;
use sqlpool::ffi::*;

fn bytes_at(p: *const u8, len: usize) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    unsafe { std::slice::from_raw_parts(p, len) }.to_vec()
}

#[test]
fn sqlite_text_that_is_not_utf8_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&format!("sqlite:{}", dir.path().join("t.db").display()));
    let sql = cstr("SELECT CAST(x'41ff42' AS TEXT) UNION ALL SELECT 'héllo'");
    let mut res = ptr::null_mut();
    check(
        unsafe { sqlpool_conn_query(db.conn, sql.as_ptr(), ptr::null(), &mut res) },
        "query",
    );

    let mut kind = 0u32;
    check(sqlpool_result_kind(res, 0, 0, &mut kind), "kind");
    assert_eq!(kind, SQLPOOL_KIND_TEXT);
    for (row, want, utf8) in [(0, &b"A\xffB"[..], 0), (1, "héllo".as_bytes(), 1)] {
        let (mut p, mut len) = (ptr::null(), 0usize);
        check(
            sqlpool_result_get_text(res, row, 0, &mut p, &mut len),
            "get_text",
        );
        assert_eq!(bytes_at(p.cast(), len), want, "get_text row {row}");
        let mut is_utf8 = -1;
        check(
            sqlpool_result_text_is_utf8(res, row, 0, &mut is_utf8),
            "text_is_utf8",
        );
        assert_eq!(is_utf8, utf8, "text_is_utf8 row {row}");
        let (mut b, mut blen) = (ptr::null(), 0usize);
        check(
            sqlpool_result_get_blob(res, row, 0, &mut b, &mut blen),
            "get_blob",
        );
        assert_eq!(bytes_at(b, blen), want, "get_blob row {row}");
    }

    let mut d = std::mem::MaybeUninit::<sqlpool_column_data>::uninit();
    check(
        sqlpool_result_column_data(res, 0, d.as_mut_ptr()),
        "column_data",
    );
    let d = unsafe { d.assume_init() };
    assert_eq!(d.kind, SQLPOOL_KIND_TEXT);
    assert_eq!(d.flags & SQLPOOL_COLUMN_NOT_UTF8, SQLPOOL_COLUMN_NOT_UTF8);
    let offsets = unsafe { std::slice::from_raw_parts(d.offsets, 3) };
    let all = bytes_at(d.bytes, offsets[2] as usize);
    assert_eq!(&all[..offsets[1] as usize], b"A\xffB");
    assert_eq!(&all[offsets[1] as usize..], "héllo".as_bytes());
    check(sqlpool_result_free(res), "free");
}

#[test]
fn valid_text_has_no_flag() {
    let db = Db::open("sqlite::memory:");
    let sql = cstr("SELECT 'plain', CAST(x'41ff42' AS BLOB)");
    let mut res = ptr::null_mut();
    check(
        unsafe { sqlpool_conn_query(db.conn, sql.as_ptr(), ptr::null(), &mut res) },
        "query",
    );
    for c in 0..2 {
        let mut d = std::mem::MaybeUninit::<sqlpool_column_data>::uninit();
        check(
            sqlpool_result_column_data(res, c, d.as_mut_ptr()),
            "column_data",
        );
        assert_eq!(unsafe { d.assume_init() }.flags, 0, "column {c}");
    }
    // A blob is not text: the UTF-8 question is a type mismatch.
    let mut is_utf8 = -1;
    assert_eq!(
        sqlpool_result_text_is_utf8(res, 0, 1, &mut is_utf8),
        sqlpool::Status::TypeMismatch
    );
    check(sqlpool_result_free(res), "free");
}

/// Starts a stream of `sql` and reads its first chunk (at most 10 rows).
fn first_chunk(db: &Db, sql: &str) -> (*mut sqlpool_stream, *mut sqlpool_result) {
    let s = cstr(sql);
    let mut stream = ptr::null_mut();
    check(
        unsafe { sqlpool_conn_query_stream(db.conn, s.as_ptr(), ptr::null(), &mut stream) },
        "query_stream",
    );
    let mut res = ptr::null_mut();
    check(sqlpool_stream_next(stream, 10, &mut res), "stream_next");
    (stream, res)
}

fn run_script(db: &Db, sql: &str) {
    let s = cstr(sql);
    check(
        unsafe { sqlpool_conn_execute_script(db.conn, s.as_ptr()) },
        "script",
    );
}

#[test]
fn a_streamed_sqlite_text_keeps_its_bytes_too() {
    let db = Db::open("sqlite::memory:");
    let (stream, res) = first_chunk(&db, "SELECT CAST(x'41ff42' AS TEXT) AS t");
    let (mut p, mut len) = (ptr::null(), 0usize);
    check(
        sqlpool_result_get_text(res, 0, 0, &mut p, &mut len),
        "get_text",
    );
    assert_eq!(bytes_at(p.cast(), len), b"A\xffB");
    let mut is_utf8 = -1;
    check(
        sqlpool_result_text_is_utf8(res, 0, 0, &mut is_utf8),
        "text_is_utf8",
    );
    assert_eq!(is_utf8, 0);
    check(sqlpool_result_free(res), "free");
    check(sqlpool_stream_free(stream), "stream_free");
}

/// The columns of a statement are cached with it; a schema change that
/// gives `SELECT *` other columns is seen.
#[test]
fn a_schema_change_under_a_cached_statement_shows_the_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&format!("sqlite:{}", dir.path().join("s.db").display()));
    let names = |sql: &str| {
        let s = cstr(sql);
        let mut res = ptr::null_mut();
        check(
            unsafe { sqlpool_conn_query(db.conn, s.as_ptr(), ptr::null(), &mut res) },
            "query",
        );
        let mut n = 0usize;
        check(sqlpool_result_column_count(res, &mut n), "column_count");
        let names: Vec<String> = (0..n)
            .map(|c| {
                let (mut p, mut len) = (ptr::null(), 0usize);
                check(
                    sqlpool_result_column_name(res, c, &mut p, &mut len),
                    "column_name",
                );
                String::from_utf8(bytes_at(p.cast(), len)).unwrap()
            })
            .collect();
        check(sqlpool_result_free(res), "free");
        names
    };
    run_script(&db, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)");
    assert_eq!(names("SELECT * FROM t"), ["a"]);
    run_script(&db, "ALTER TABLE t ADD COLUMN b TEXT");
    assert_eq!(names("SELECT * FROM t"), ["a", "b"]);
    run_script(&db, "ALTER TABLE t RENAME COLUMN b TO c");
    assert_eq!(names("SELECT * FROM t"), ["a", "c"]);
}

/// A stream of a cached `SELECT *` sees a schema change too.
#[test]
fn a_schema_change_under_a_streamed_statement_shows_the_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&format!("sqlite:{}", dir.path().join("s.db").display()));
    let streamed_names = || {
        let (stream, res) = first_chunk(&db, "SELECT * FROM t");
        let mut n = 0usize;
        check(sqlpool_result_column_count(res, &mut n), "column_count");
        let mut values = 0usize;
        let mut kind = 0u32;
        for c in 0..n {
            check(sqlpool_result_kind(res, 0, c, &mut kind), "kind");
            values += usize::from(kind != SQLPOOL_KIND_NULL);
        }
        check(sqlpool_result_free(res), "free");
        check(sqlpool_stream_free(stream), "stream_free");
        (n, values)
    };
    run_script(&db, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)");
    assert_eq!(streamed_names(), (1, 1));
    run_script(&db, "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'");
    assert_eq!(streamed_names(), (2, 2));
}
