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

/// Results freed while other threads read them, their slots reused at
/// once: every read gives the right value or `SQLPOOL_MISUSE` (never
/// another result's cells, never freed memory), and a read that starts
/// after the free has returned is refused.
#[test]
fn reads_racing_with_frees_are_right_or_refused() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let db = Db::open("sqlite::memory:");
    // The result being raced over (handle, its value), and the last one
    // freed.
    let current = Arc::new(Mutex::new((0usize, 0i64)));
    let freed = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (current, freed, stop) = (current.clone(), freed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut ok = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let gone = *freed.lock().unwrap();
                    let mut v = 0i64;
                    if gone != 0 {
                        let st =
                            sqlpool_result_get_int64(gone as *const sqlpool_result, 0, 0, &mut v);
                        assert_eq!(st, Status::Misuse, "a freed result was read");
                    }
                    let (h, want) = *current.lock().unwrap();
                    if h == 0 {
                        continue;
                    }
                    match sqlpool_result_get_int64(h as *const sqlpool_result, 0, 0, &mut v) {
                        Status::Ok => {
                            assert_eq!(v, want, "another result's cell");
                            ok += 1;
                        }
                        Status::Misuse => {}
                        other => panic!("unexpected status {other:?}"),
                    }
                }
                ok
            })
        })
        .collect();
    for round in 1..=3000i64 {
        let r = one_row(&db, &format!("SELECT {round}"));
        *current.lock().unwrap() = (r as usize, round);
        std::thread::yield_now();
        // Freed while the readers may still be reading it.
        check(sqlpool_result_free(r), "free");
        *freed.lock().unwrap() = r as usize;
    }
    stop.store(true, Ordering::Release);
    let read: u64 = readers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(read > 0, "the readers read something");
}

/// A read made by a thread-local destructor, after the thread's result
/// cache has gone (the result was freed meanwhile by another thread): it
/// is refused, it does not reach the freed result.
#[test]
fn a_read_from_a_thread_local_destructor_after_the_cache_is_gone() {
    use std::sync::mpsc;

    struct ReadAtExit(usize, mpsc::Sender<Status>);
    impl Drop for ReadAtExit {
        fn drop(&mut self) {
            let mut v = 0i64;
            let st = sqlpool_result_get_int64(self.0 as *const sqlpool_result, 0, 0, &mut v);
            let _ = self.1.send(st);
        }
    }
    thread_local! {
        static AT_EXIT: std::cell::RefCell<Option<ReadAtExit>> = const { std::cell::RefCell::new(None) };
    }

    let db = Db::open("sqlite::memory:");
    let r = one_row(&db, "SELECT 42");
    let handle = r as usize;
    let (to_main, statuses) = mpsc::channel();
    let (to_reader, go) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        // Registered before the result cache: destroyed after it.
        AT_EXIT.with(|a| *a.borrow_mut() = Some(ReadAtExit(handle, to_main.clone())));
        let mut v = 0i64;
        to_main
            .send(sqlpool_result_get_int64(
                handle as *const sqlpool_result,
                0,
                0,
                &mut v,
            ))
            .unwrap();
        go.recv().unwrap();
    });
    assert_eq!(statuses.recv().unwrap(), Status::Ok);
    check(sqlpool_result_free(r), "free");
    to_reader.send(()).unwrap();
    reader.join().unwrap();
    assert_eq!(statuses.recv().unwrap(), Status::Misuse);
}
