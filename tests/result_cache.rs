//! Reading a result cell by cell takes no lock per call (the last result
//! read is kept per thread), yet a freed result is still refused at once,
//! on this thread and on any other.

mod common;

use std::ptr;

use common::typed::*;
use sqlpool::ffi::*;
use sqlpool::Status;

fn one_row(db: &Db, sql: &str) -> *mut sqlpool_result {
    let s = cstr(sql);
    let mut res = ptr::null_mut();
    check(
        unsafe { sqlpool_conn_query(db.conn, s.as_ptr(), ptr::null(), &mut res) },
        "query",
    );
    res
}

#[test]
fn a_freed_result_is_refused_after_cached_reads() {
    let db = Db::open("sqlite::memory:");
    let a = one_row(&db, "SELECT 1");
    let b = one_row(&db, "SELECT 2");
    let mut v = 0i64;
    check(sqlpool_result_get_int64(a, 0, 0, &mut v), "read a");
    check(sqlpool_result_get_int64(a, 0, 0, &mut v), "read a again");
    assert_eq!(v, 1);
    check(sqlpool_result_free(a), "free a");
    assert_eq!(sqlpool_result_get_int64(a, 0, 0, &mut v), Status::Misuse);

    // Cached on another thread, freed here: that thread is refused too.
    let handle = b as usize;
    let (to_reader, reads) = std::sync::mpsc::channel::<()>();
    let (to_main, done) = std::sync::mpsc::channel::<Status>();
    let reader = std::thread::spawn(move || {
        let b = handle as *const sqlpool_result;
        let mut v = 0i64;
        to_main
            .send(sqlpool_result_get_int64(b, 0, 0, &mut v))
            .unwrap();
        reads.recv().unwrap();
        to_main
            .send(sqlpool_result_get_int64(b, 0, 0, &mut v))
            .unwrap();
    });
    assert_eq!(done.recv().unwrap(), Status::Ok);
    check(sqlpool_result_free(b), "free b");
    to_reader.send(()).unwrap();
    assert_eq!(done.recv().unwrap(), Status::Misuse);
    reader.join().unwrap();
}
