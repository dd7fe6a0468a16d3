//! Issue 13: SQLite streams step their statement chunk by chunk — bounded
//! memory (2,000,000 rows from the C ABI under 64 MiB of peak RSS, in a
//! child process), and a stream given up half-way leaves its connection
//! clean (statement reset: no read transaction pins the WAL, the next
//! `BEGIN IMMEDIATE` works, an explicit transaction survives).

mod common;

use std::process::Command;
use std::ptr;

use common::capi::*;
use sqlpool::ffi::*;
use sqlpool::Status;

fn stream(conn: *mut sqlpool_conn, sql: &str) -> *mut sqlpool_stream {
    let s = cstr(sql);
    let mut out = ptr::null_mut();
    ok(unsafe { sqlpool_conn_query_stream(conn, s.as_ptr(), ptr::null(), &mut out) });
    out
}

/// The next chunk as a result the caller frees; `None` at the end.
fn next(s: *mut sqlpool_stream, max: usize) -> Option<*mut sqlpool_result> {
    let mut res = ptr::null_mut();
    match sqlpool_stream_next(s, max, &mut res) {
        Status::Empty => None,
        st => {
            ok(st);
            Some(res)
        }
    }
}

fn row_count(res: *mut sqlpool_result) -> usize {
    let mut n = 0;
    ok(sqlpool_result_row_count(res, &mut n));
    n
}

/// Streams `sql` to its end in chunks of `max` rows; the row count.
fn read_all(conn: *mut sqlpool_conn, sql: &str, max: usize) -> usize {
    let s = stream(conn, sql);
    let mut total = 0;
    while let Some(res) = next(s, max) {
        total += row_count(res);
        ok(sqlpool_result_free(res));
    }
    ok(sqlpool_stream_free(s));
    total
}

const ROWS_SQL: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
                        SELECT x, 'name-' || x AS name, x * 0.5 AS value FROM c";

fn rows_sql(n: u64) -> String {
    ROWS_SQL.replace('?', &n.to_string())
}

#[test]
fn sqlite_stream_given_up_leaves_the_connection_clean() {
    let (_dir, uri) = sqlite_file();
    // A short busy timeout: a reader still pinning the WAL shows at once.
    let pool = open(&format!("{uri}?busy_timeout=200&max_size=2"));
    let conn = acquire(pool);
    let other = acquire(pool);
    script(
        conn,
        "CREATE TABLE t (n INTEGER); \
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) \
         INSERT INTO t SELECT x FROM c",
    )
    .unwrap();

    let s = stream(conn, "SELECT n FROM t ORDER BY n");
    let chunk = next(s, 100).unwrap();
    assert_eq!(row_count(chunk), 100);
    ok(sqlpool_result_free(chunk));
    // A write on another connection while the stream reads its snapshot.
    exec(other, "INSERT INTO t VALUES (0)", &[]).unwrap();
    ok(sqlpool_stream_free(s));

    // No read transaction left behind: a full checkpoint is not blocked
    // (busy = 0) and the WAL can be truncated.
    let r = query(other, "PRAGMA wal_checkpoint(TRUNCATE)", &[]).unwrap();
    assert_eq!(r[0][0], V::I(0), "checkpoint blocked by a reader: {r:?}");
    // The same connection writes at once, and sees the other's write.
    script(conn, "BEGIN IMMEDIATE; INSERT INTO t VALUES (-1); COMMIT").unwrap();
    assert_eq!(scalar(conn, "SELECT count(*) FROM t"), V::I(5002));

    // Given up inside an explicit transaction: the transaction survives.
    script(conn, "BEGIN IMMEDIATE; INSERT INTO t VALUES (-2)").unwrap();
    let s = stream(conn, "SELECT n FROM t");
    ok(sqlpool_result_free(next(s, 10).unwrap()));
    ok(sqlpool_stream_free(s));
    script(conn, "COMMIT").unwrap();
    assert_eq!(scalar(other, "SELECT count(*) FROM t"), V::I(5003));

    // A stream read to its end gives the connection back as well.
    assert_eq!(read_all(conn, "SELECT n FROM t", 2000), 5003);
    script(conn, "BEGIN IMMEDIATE; DELETE FROM t WHERE n < 0; COMMIT").unwrap();

    // A statement that fails while stepping ends the stream with its error
    // and leaves a usable connection.
    let s = stream(
        conn,
        "SELECT CASE WHEN n = 3000 THEN abs(-9223372036854775807 - 1) ELSE n END FROM t",
    );
    ok(sqlpool_result_free(next(s, 1000).unwrap()));
    ok(sqlpool_result_free(next(s, 1000).unwrap()));
    let mut res = ptr::null_mut();
    assert_eq!(
        sqlpool_stream_next(s, 1000, &mut res),
        Status::DatabaseError
    );
    assert!(last_message().contains("overflow"), "{}", last_message());
    ok(sqlpool_stream_free(s));
    assert_eq!(scalar(conn, "SELECT count(*) FROM t"), V::I(5001));

    // A write with RETURNING streams too, and gives the process's write
    // gate back when it ends: the other connection writes at once.
    let sql = "INSERT INTO t SELECT n + 10000 FROM t RETURNING n";
    assert_eq!(read_all(conn, sql, 1500), 5001);
    exec(other, "INSERT INTO t VALUES (-3)", &[]).unwrap();
    assert_eq!(scalar(conn, "SELECT count(*) FROM t"), V::I(10003));

    release(other);
    release(conn);
    let st = stats(pool);
    assert_eq!(st.broken, 0);
    close(pool);
}

/// The child of `sqlite_stream_of_2m_rows_stays_under_64_mib`: streams
/// the rows and prints its peak RSS (does nothing in a normal test run).
#[test]
fn sqlite_stream_child() {
    let Ok(rows) = std::env::var("SQLPOOL_STREAM_CHILD_ROWS") else {
        return;
    };
    let rows: u64 = rows.parse().unwrap();
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    let s = stream(conn, &rows_sql(rows));
    let (mut n, mut sum) = (0u64, 0i64);
    while let Some(res) = next(s, 10_000) {
        let mut col = unsafe { std::mem::zeroed::<sqlpool_column_data>() };
        ok(sqlpool_result_column_data(res, 0, &mut col));
        let len = row_count(res);
        n += len as u64;
        sum += unsafe { std::slice::from_raw_parts(col.ints, len) }
            .iter()
            .sum::<i64>();
        ok(sqlpool_result_free(res));
    }
    ok(sqlpool_stream_free(s));
    release(conn);
    close(pool);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .to_owned();
    println!("STREAMED rows={n} sum={sum} vmhwm_kb={hwm}");
}

#[test]
fn sqlite_stream_of_2m_rows_stays_under_64_mib() {
    const ROWS: u64 = 2_000_000;
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "sqlite_stream_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SQLPOOL_STREAM_CHILD_ROWS", ROWS.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("STREAMED ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(field("rows="), ROWS);
    assert_eq!(
        field("sum=") as u128,
        (ROWS as u128) * (ROWS as u128 + 1) / 2
    );
    let peak_kb = field("vmhwm_kb=");
    eprintln!(
        "2,000,000 SQLite rows streamed from C: peak RSS {} KiB",
        peak_kb
    );
    assert!(
        peak_kb < 64 * 1024,
        "peak RSS {peak_kb} KiB is not under 64 MiB"
    );
}
