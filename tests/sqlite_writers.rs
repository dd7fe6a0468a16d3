//! Issue 14 (7): 50 writer threads on one SQLite file (WAL, default
//! busy_timeout), each job an insert and a read-back in a read-write
//! transaction, see no "database is locked". Through the C functions.
//!
//! `SQLPOOL_WRITER_JOBS` (default 1000 per thread) scales it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::capi::*;
use sqlpool::ffi::*;

#[test]
fn fifty_writer_threads_never_see_database_is_locked() {
    let threads = 50;
    let jobs: usize = std::env::var("SQLPOOL_WRITER_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (_d, uri) = sqlite_file();
    let pool = Send(open(&format!("{uri}?min_size=5&max_size=30")));
    let c = acquire(pool.0);
    exec(
        c,
        "CREATE TABLE w (id INTEGER PRIMARY KEY, thread INTEGER, job INTEGER)",
        &[],
    )
    .unwrap();
    release(c);
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (errors, first_error) = (errors.clone(), first_error.clone());
            std::thread::spawn(move || {
                let pool = pool;
                for j in 0..jobs {
                    let c = acquire(pool.0);
                    let r = (|| {
                        check(sqlpool_conn_begin(c, 0, 0))?;
                        exec(
                            c,
                            "INSERT INTO w (thread, job) VALUES ($1, $2)",
                            &[P::I(t as i64), P::I(j as i64)],
                        )?;
                        let rows = query(
                            c,
                            "SELECT job FROM w WHERE thread = $1 AND job = $2",
                            &[P::I(t as i64), P::I(j as i64)],
                        )?;
                        assert_eq!(rows.len(), 1);
                        check(sqlpool_conn_commit(c))
                    })();
                    if let Err(f) = r {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap()
                            .get_or_insert(format!("{:?}: {}", f.status, f.message));
                    }
                    release(c);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let c = acquire(pool.0);
    let n = scalar(c, "SELECT count(*) FROM w");
    release(c);
    close(pool.0);
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "{} of {} jobs failed; first: {:?}",
        errors.load(Ordering::Relaxed),
        threads * jobs,
        first_error.lock().unwrap()
    );
    assert!(
        matches!(n, V::I(x) if x as usize == threads * jobs),
        "{n:?}"
    );
}
