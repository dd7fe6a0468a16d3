//! r2d2 used directly from Rust: the floor of `make bench` scenario 1.
//!
//!   r2d2_floor acquire pg|sqlite TARGET THREADS ITERS TEST_ON_CHECK_OUT
//!
//! TARGET is a PostgreSQL URL or an SQLite file path. Every thread runs
//! ITERS rounds of `pool.get()` + drop (no query) after a warm-up, all
//! threads starting together; prints one JSON line with the wall time per
//! acquire + release over all threads (`ns_per_op` = elapsed / (THREADS *
//! ITERS)), as the C program bench_sqlpool does for sqlpool.

use std::str::FromStr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use r2d2::{ManageConnection, Pool};
use r2d2_postgres::postgres::{Config, NoTls};
use r2d2_postgres::PostgresConnectionManager;
use r2d2_sqlite::SqliteConnectionManager;

fn run<M: ManageConnection>(manager: M, threads: usize, iters: u64, test: bool) -> f64 {
    let pool = Pool::builder()
        .max_size(threads as u32)
        .min_idle(Some(threads as u32))
        .test_on_check_out(test)
        .connection_timeout(Duration::from_secs(30))
        .build(manager)
        .expect("r2d2 pool");
    // Warm-up: every connection open and used once.
    {
        let held: Vec<_> = (0..threads).map(|_| pool.get().expect("get")).collect();
        drop(held);
    }
    for _ in 0..(iters / 10).max(10) {
        drop(pool.get().expect("get"));
    }
    // Elapsed: from the first thread's start to the last thread's end.
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let pool = pool.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    let conn = pool.get().expect("get");
                    std::hint::black_box(&conn);
                    drop(conn);
                }
                (start, Instant::now())
            })
        })
        .collect();
    let spans: Vec<(Instant, Instant)> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let start = spans.iter().map(|s| s.0).min().expect("threads");
    let end = spans.iter().map(|s| s.1).max().expect("threads");
    (end - start).as_nanos() as f64 / (threads as f64 * iters as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 || args[1] != "acquire" {
        eprintln!(
            "usage: r2d2_floor acquire pg|sqlite TARGET THREADS ITERS TEST_ON_CHECK_OUT(0|1)"
        );
        std::process::exit(2);
    }
    let threads: usize = args[4].parse().expect("THREADS");
    let iters: u64 = args[5].parse().expect("ITERS");
    let test = args[6] == "1";
    let ns = match args[2].as_str() {
        "pg" => {
            let config = Config::from_str(&args[3]).expect("PostgreSQL URL");
            run(
                PostgresConnectionManager::new(config, NoTls),
                threads,
                iters,
                test,
            )
        }
        "sqlite" => run(
            SqliteConnectionManager::file(&args[3]),
            threads,
            iters,
            test,
        ),
        other => {
            eprintln!("unknown database {other}");
            std::process::exit(2);
        }
    };
    println!("{{\"ns_per_op\": {ns:.1}}}");
}
