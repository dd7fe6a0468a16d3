//! Issue 3's faults, each on a throwaway PostgreSQL cluster of its own
//! (stopped, restarted and killed without touching anything shared), plus
//! the seed's sync stress scenario on SQLite and PostgreSQL.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

fn backends(pg: &PgServer, tag: &str) -> usize {
    pg.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{tag}'"
    ))
    .parse()
    .unwrap()
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn terminating_every_pooled_connection_is_survived() {
    let Some(pg) = PgServer::private() else {
        return;
    };
    let pool = open(&format!(
        "{}?application_name=victims&min_size=5&max_size=5",
        pg.url()
    ));
    let started = Instant::now();
    while backends(&pg, "victims") < 5 {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    // One statement is running on a connection when the kill comes.
    let running = Send(acquire(pool));
    let runner = std::thread::spawn(move || {
        let conn = running;
        let r = exec(conn.0, "SELECT pg_sleep(5)", &[]);
        release(conn.0);
        r
    });
    std::thread::sleep(Duration::from_millis(200));
    pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victims'",
    );
    let err = runner.join().unwrap().unwrap_err();
    assert_eq!(err.status, Status::ConnectionError, "{}", err.message);
    // Past the checkout window (a connection the server answered on within
    // it is checked by a look at its socket, which may race the server's
    // goodbye), every idle connection gets a real check.
    std::thread::sleep(sqlpool::backend::VERIFY_WINDOW + Duration::from_millis(100));
    // Every later acquire gets a working connection.
    for _ in 0..10 {
        let conn = acquire(pool);
        assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
        release(conn);
    }
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn a_stopped_server_fails_acquire_in_time_and_the_pool_recovers() {
    let Some(pg) = PgServer::private() else {
        return;
    };
    let pool = open(&format!(
        "{}?max_size=3&acquire_timeout=1s&connect_timeout=1",
        pg.url()
    ));
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    pg.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = try_acquire(pool, -1).unwrap_err();
        assert!(
            matches!(err.status, Status::PoolTimeout | Status::ConnectionError),
            "{:?} {}",
            err.status,
            err.message
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    pg.start();
    let started = Instant::now();
    loop {
        match try_acquire(pool, -1) {
            Ok(conn) => {
                assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
                release(conn);
                break;
            }
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(20),
                "never recovered: {}",
                e.message
            ),
        }
    }
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn a_killed_server_is_survived_too() {
    let Some(pg) = PgServer::private() else {
        return;
    };
    let pool = open(&format!(
        "{}?max_size=2&acquire_timeout=1s&check_interval=100ms",
        pg.url()
    ));
    pg.kill();
    std::thread::sleep(Duration::from_millis(300));
    assert!(try_acquire(pool, -1).is_err());
    pg.start();
    let started = Instant::now();
    let conn = loop {
        if let Ok(c) = try_acquire(pool, -1) {
            break c;
        }
        assert!(started.elapsed() < Duration::from_secs(20));
    };
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn releasing_inside_a_failed_transaction_then_acquiring_works() {
    let Some(pg) = PgServer::private() else {
        return;
    };
    let pool = open(&format!("{}?max_size=1", pg.url()));
    let conn = acquire(pool);
    ok(sqlpool_conn_begin(conn, 0, 0));
    assert!(exec(conn, "SELECT 1/0", &[]).is_err());
    let err = exec(conn, "SELECT 1", &[]).unwrap_err();
    assert_eq!(
        err.sqlstate, "25P02",
        "the transaction is aborted: {}",
        err.message
    );
    release(conn);
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    assert_eq!(stats(pool).broken, 0);
    close(pool);
}

/// The seed's sync scenario: 1,000 jobs, 50 workers, pool 5..30, each job
/// acquires, runs `SELECT 1 AS a`, checks it, holds briefly, releases.
fn seed_stress(uri: &str, monitor: Option<&PgServer>) {
    let pool = Send(open(&format!(
        "{uri}min_size=5&max_size=30&acquire_timeout=60s"
    )));
    let next_job = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let max_in_use = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..50)
        .map(|w| {
            let (next_job, errors, max_in_use) =
                (next_job.clone(), errors.clone(), max_in_use.clone());
            std::thread::spawn(move || {
                let pool = pool;
                while next_job.fetch_add(1, Ordering::Relaxed) < 1000 {
                    let conn = match try_acquire(pool.0, -1) {
                        Ok(c) => c,
                        Err(e) => {
                            eprintln!("worker {w}: {}", e.message);
                            errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    match query(conn, "SELECT 1 AS a", &[]) {
                        Ok(rows) if rows == vec![vec![V::I(1)]] => {}
                        other => {
                            eprintln!("worker {w}: {other:?}");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    max_in_use.fetch_max(stats(pool.0).in_use as usize, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2 + (w % 5) as u64));
                    release(conn);
                }
            })
        })
        .collect();
    let sampler = monitor.map(|pg| {
        let mut peak = 0;
        while !workers.iter().all(|w| w.is_finished()) {
            peak = peak.max(backends(pg, "stress"));
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    });
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    let s = stats(pool.0);
    assert!(
        s.total <= 30 && max_in_use.load(Ordering::Relaxed) <= 30,
        "{s:?}"
    );
    assert_eq!(s.acquires, 1000);
    if let Some(peak) = sampler {
        assert!(peak <= 30, "at most 30 server connections, saw {peak}");
        assert!(peak >= 5, "the sampler saw the pool ({peak})");
    }
    close(pool.0);
}

#[test]
fn seed_sync_stress_on_sqlite() {
    let (_d, uri) = sqlite_file();
    seed_stress(&format!("{uri}?"), None);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn seed_sync_stress_on_postgresql() {
    let Some(pg) = PgServer::private() else {
        return;
    };
    seed_stress(&format!("{}?application_name=stress&", pg.url()), Some(&pg));
}
