//! `sqlpool_conn_query_packed`: packed parameters in, the result's shape
//! and first row (Python `struct` form) out, in one call.

mod common;

use std::ptr;

use common::typed::*;
use sqlpool::ffi::*;
use sqlpool::Status;

fn bytes_at(p: *const u8, len: usize) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    unsafe { std::slice::from_raw_parts(p, len) }.to_vec()
}

fn query(
    db: &Db,
    sql: &str,
    packed: &[u8],
) -> Result<(*mut sqlpool_result, sqlpool_query_info), Status> {
    let s = cstr(sql);
    let mut res = ptr::null_mut();
    let mut info = std::mem::MaybeUninit::<sqlpool_query_info>::uninit();
    let st = unsafe {
        sqlpool_conn_query_packed(
            db.conn,
            s.as_ptr(),
            packed.as_ptr(),
            packed.len(),
            &mut res,
            info.as_mut_ptr(),
        )
    };
    if st == Status::Ok {
        Ok((res, unsafe { info.assume_init() }))
    } else {
        assert!(res.is_null(), "no result on failure");
        Err(st)
    }
}

#[test]
fn one_call_gives_the_shape_and_the_packed_first_row() {
    let db = Db::open("sqlite::memory:");
    let mut packed = vec![SQLPOOL_KIND_INT64 as u8];
    packed.extend_from_slice(&42i64.to_le_bytes());
    packed.push(SQLPOOL_KIND_TEXT as u8);
    packed.extend_from_slice(&3u64.to_le_bytes());
    packed.extend_from_slice(&"héy".as_bytes()[..3]);
    let (res, info) = query(
        &db,
        "SELECT ?1 AS a, NULL AS b, ?2 AS c, 0.5 AS d",
        &packed[..packed.len()],
    )
    .unwrap();
    assert_eq!((info.rows, info.columns), (1, 4));
    assert_eq!(
        bytes_at(info.names.cast(), info.names_len),
        b"a\0\0b\0\0c\0\0d\0\0"
    );
    assert_eq!(
        bytes_at(info.row_format.cast(), info.row_format_len),
        b"<q3sd"
    );
    let mut data = 42i64.to_le_bytes().to_vec();
    data.extend_from_slice(&"héy".as_bytes()[..3]);
    data.extend_from_slice(&0.5f64.to_le_bytes());
    assert_eq!(bytes_at(info.row_data, info.row_data_len), data);
    assert_eq!((info.text_cells, info.null_cells), (0b100, 0b10));
    // The result is an ordinary one.
    let mut v = 0i64;
    check(sqlpool_result_get_int64(res, 0, 0, &mut v), "get_int64");
    assert_eq!(v, 42);
    check(sqlpool_result_free(res), "free");
}

#[test]
fn malformed_buffers_are_refused() {
    let db = Db::open("sqlite::memory:");
    // "hé" cut inside the é: not UTF-8.
    let mut bad_text = vec![SQLPOOL_KIND_TEXT as u8];
    bad_text.extend_from_slice(&2u64.to_le_bytes());
    bad_text.extend_from_slice(&"hé".as_bytes()[..2]);
    assert_eq!(
        query(&db, "SELECT ?1", &bad_text).unwrap_err(),
        Status::InvalidUtf8
    );
    assert_eq!(
        query(&db, "SELECT ?1", &[SQLPOOL_KIND_INT64 as u8, 1]).unwrap_err(),
        Status::InvalidArgument
    );
    assert_eq!(
        query(&db, "SELECT ?1", &[77]).unwrap_err(),
        Status::InvalidArgument
    );
    // No parameters, no rows: empty packed row.
    let (res, info) = query(&db, "SELECT 1 AS x WHERE 0", &[]).unwrap();
    assert_eq!((info.rows, info.row_format_len), (0, 0));
    check(sqlpool_result_free(res), "free");
    // NULL info is refused before anything runs.
    let s = cstr("SELECT 1");
    let mut res = ptr::null_mut();
    let st = unsafe {
        sqlpool_conn_query_packed(
            db.conn,
            s.as_ptr(),
            ptr::null(),
            0,
            &mut res,
            ptr::null_mut(),
        )
    };
    assert_eq!(st, Status::InvalidArgument);
}

#[test]
fn packed_parameter_sets_run_as_execute_many() {
    let db = Db::open("sqlite::memory:");
    db.script("CREATE TABLE t (i INTEGER, s TEXT)");
    let mut packed = Vec::new();
    for i in 0..3i64 {
        packed.push(SQLPOOL_KIND_INT64 as u8);
        packed.extend_from_slice(&i.to_le_bytes());
        packed.push(SQLPOOL_KIND_NULL as u8);
        packed.push(SQLPOOL_PACKED_END_SET);
    }
    let s = cstr("INSERT INTO t VALUES (?1, ?2)");
    let mut n = 0u64;
    check(
        unsafe {
            sqlpool_conn_execute_many_packed(
                db.conn,
                s.as_ptr(),
                packed.as_ptr(),
                packed.len(),
                &mut n,
            )
        },
        "execute_many_packed",
    );
    assert_eq!(n, 3);
    assert_eq!(db.one("SELECT sum(i) FROM t WHERE s IS NULL", &[]), V::I(3));
}

/// `sqlpool_conn_query_into`: (header words, bytes after the header, result
/// handle or NULL).
fn query_into(
    db: &Db,
    sql: &str,
    packed: &[u8],
    buf: &mut [u8],
) -> Result<([u64; 7], *mut sqlpool_result), Status> {
    let s = cstr(sql);
    let mut res = 7usize as *mut sqlpool_result; // must be overwritten
    let st = unsafe {
        sqlpool_conn_query_into(
            db.conn,
            s.as_ptr(),
            packed.as_ptr(),
            packed.len(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut res,
        )
    };
    if st != Status::Ok {
        assert_eq!(res as usize, 7, "*out untouched on failure");
        return Err(st);
    }
    let mut header = [0u64; 7];
    for (i, w) in header.iter_mut().enumerate() {
        *w = u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap());
    }
    Ok((header, res))
}

#[test]
fn query_into_holds_a_one_row_result_without_a_handle() {
    let db = Db::open("sqlite::memory:");
    let mut packed = vec![SQLPOOL_KIND_INT64 as u8];
    packed.extend_from_slice(&42i64.to_le_bytes());
    let mut buf = vec![0u8; 256];
    let sql = "SELECT ?1 AS a, NULL AS b, 'héy' AS c, 0.5 AS d, x'00ff' AS e";
    let (h, res) = query_into(&db, sql, &packed, &mut buf).unwrap();
    assert!(res.is_null(), "the buffer holds it all");
    let names = b"a\0\0b\0\0c\0\0d\0\0e\0\0";
    let format = b"<q4sd2s";
    let mut data = 42i64.to_le_bytes().to_vec();
    data.extend_from_slice("héy".as_bytes());
    data.extend_from_slice(&0.5f64.to_le_bytes());
    data.extend_from_slice(&[0, 0xff]);
    assert_eq!(
        h,
        [
            1,
            5,
            names.len() as u64,
            format.len() as u64,
            data.len() as u64,
            0b100,
            0b10
        ]
    );
    let mut at = SQLPOOL_QUERY_HEADER_SIZE;
    for part in [&names[..], &format[..], &data[..]] {
        assert_eq!(&buf[at..at + part.len()], part);
        at += part.len();
    }
    // No row: the names only, no handle.
    let (h, res) = query_into(&db, "SELECT 1 AS x WHERE 0", &[], &mut buf).unwrap();
    assert!(res.is_null());
    assert_eq!(h[..5], [0, 1, 3, 0, 0]);
    // A value of 10 or more bytes: a longer length in the format.
    let (h, _) = query_into(&db, "SELECT 'abcdefghijkl' AS s", &[], &mut buf).unwrap();
    let at = SQLPOOL_QUERY_HEADER_SIZE + h[2] as usize;
    assert_eq!(&buf[at..at + h[3] as usize], b"<12s");
}

#[test]
fn query_into_hands_over_what_the_buffer_cannot_hold() {
    let db = Db::open("sqlite::memory:");
    let mut buf = vec![0u8; 128];
    // Two rows: the first is packed, the result comes as a handle.
    let (h, res) = query_into(&db, "SELECT 1 AS n UNION ALL SELECT 2", &[], &mut buf).unwrap();
    assert_eq!(h[..4], [2, 1, 3, 2]);
    assert!(!res.is_null());
    let mut v = 0i64;
    check(sqlpool_result_get_int64(res, 1, 0, &mut v), "get_int64");
    assert_eq!(v, 2);
    check(sqlpool_result_free(res), "free");
    // A row too long for the buffer: names written, no row, a handle.
    let sql = format!("SELECT '{}' AS long", "x".repeat(200));
    let (h, res) = query_into(&db, &sql, &[], &mut buf).unwrap();
    assert_eq!(h[..4], [1, 1, 6, 0]);
    assert!(!res.is_null());
    check(sqlpool_result_free(res), "free");
    // Names too long: no names, no row, a handle.
    let sql = format!("SELECT 1 AS {}", "n".repeat(100));
    let (h, res) = query_into(&db, &sql, &[], &mut buf).unwrap();
    assert_eq!(h[..4], [1, 1, 0, 0]);
    assert!(!res.is_null());
    check(sqlpool_result_free(res), "free");
}

#[test]
fn query_into_refuses_small_buffers_and_bad_arguments() {
    let db = Db::open("sqlite::memory:");
    let mut small = vec![0u8; SQLPOOL_QUERY_HEADER_SIZE - 1];
    assert_eq!(
        query_into(&db, "SELECT 1", &[], &mut small).unwrap_err(),
        Status::BufferTooSmall
    );
    let mut buf = vec![0u8; 256];
    assert_eq!(
        query_into(&db, "SELECT ?1", &[77], &mut buf).unwrap_err(),
        Status::InvalidArgument
    );
    assert_eq!(
        query_into(&db, "SELECT * FROM missing", &[], &mut buf).unwrap_err(),
        Status::DatabaseError
    );
    let s = cstr("SELECT 1");
    let mut res = ptr::null_mut();
    let st = unsafe {
        sqlpool_conn_query_into(
            db.conn,
            s.as_ptr(),
            ptr::null(),
            0,
            ptr::null_mut(),
            256,
            &mut res,
        )
    };
    assert_eq!(st, Status::InvalidArgument);
    let st = unsafe {
        sqlpool_conn_query_into(
            db.conn,
            s.as_ptr(),
            ptr::null(),
            0,
            buf.as_mut_ptr(),
            buf.len(),
            ptr::null_mut(),
        )
    };
    assert_eq!(st, Status::InvalidArgument);
}

fn joined(res: *mut sqlpool_result, column: usize, sep: u32) -> Result<Vec<u8>, Status> {
    let mut need = 0usize;
    let st =
        unsafe { sqlpool_result_column_joined(res, column, sep, ptr::null_mut(), 0, &mut need) };
    if st != Status::Ok {
        return Err(st);
    }
    let mut buf = vec![0u8; need];
    let mut written = 0usize;
    let st = unsafe {
        sqlpool_result_column_joined(res, column, sep, buf.as_mut_ptr(), buf.len(), &mut written)
    };
    if st != Status::Ok {
        return Err(st);
    }
    assert_eq!(written, need);
    Ok(buf)
}

#[test]
fn column_joined_separates_every_value() {
    let db = Db::open("sqlite::memory:");
    let mut buf = vec![0u8; 64];
    let sql = "SELECT 'a' AS t, x'0001' AS b UNION ALL SELECT NULL, NULL \
               UNION ALL SELECT 'héllo', x'ff' UNION ALL SELECT '', x''";
    let (_, res) = query_into(&db, sql, &[], &mut buf).unwrap();
    assert!(!res.is_null());
    assert_eq!(joined(res, 0, 0).unwrap(), b"a\0\0h\xc3\xa9llo\0\0");
    assert_eq!(joined(res, 1, 9).unwrap(), b"\x00\x01\x09\x09\xff\x09\x09");
    // The separator inside a value, a byte out of range, a wrong column.
    assert_eq!(joined(res, 1, 0).unwrap_err(), Status::InvalidArgument);
    assert_eq!(joined(res, 0, 256).unwrap_err(), Status::InvalidArgument);
    assert_eq!(joined(res, 2, 0).unwrap_err(), Status::OutOfRange);
    let mut small = [0u8; 3];
    let mut written = 0usize;
    let st = unsafe {
        sqlpool_result_column_joined(res, 0, 0, small.as_mut_ptr(), small.len(), &mut written)
    };
    assert_eq!((st, written), (Status::BufferTooSmall, 0));
    check(sqlpool_result_free(res), "free");
    // Other kinds are refused.
    let (_, res) = query_into(&db, "SELECT 1 AS n UNION ALL SELECT 'x'", &[], &mut buf).unwrap();
    assert_eq!(joined(res, 0, 0).unwrap_err(), Status::TypeMismatch);
    check(sqlpool_result_free(res), "free");
    let (_, res) = query_into(&db, "SELECT 1 AS n UNION ALL SELECT 2", &[], &mut buf).unwrap();
    assert_eq!(joined(res, 0, 0).unwrap_err(), Status::TypeMismatch);
    check(sqlpool_result_free(res), "free");
}
