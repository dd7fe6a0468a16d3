//! Issue 14 (5, 9): session state never leaks between borrowers, and an
//! unchanged session costs nothing; `init_sql` prepares each connection and
//! is what a reset restores. Through the C functions, on SQLite and a real
//! PostgreSQL server.

mod common;

use common::capi::*;
use common::pg::PgServer;

/// One connection, so the next borrower gets the same one unless the pool
/// replaced it.
fn one_conn(uri: &str, extra: &str) -> *mut sqlpool::ffi::sqlpool_pool {
    let sep = if uri.contains('?') { '&' } else { '?' };
    open(&format!("{uri}{sep}min_size=1&max_size=1{extra}"))
}

fn with_query(uri: &str, query: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

fn int(v: V) -> i64 {
    match v {
        V::I(i) => i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn text(v: V) -> String {
    match v {
        V::T(t) => t,
        V::Null => String::new(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// (what one borrower runs, what the next one checks, the value it must
/// not see).
type Case = (&'static str, &'static str, &'static str);

const SQLITE_CASES: &[Case] = &[
    // (This build's SQLite turns foreign keys on by default.)
    ("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys", "0"),
    ("PRAGMA cache_size = -1234", "PRAGMA cache_size", "-1234"),
    (
        "CREATE TEMP TABLE sess_tmp (a)",
        "SELECT count(*) FROM sqlite_temp_master WHERE name = 'sess_tmp'",
        "1",
    ),
    (
        "CREATE TABLE temp.sess_tmp2 (a)",
        "SELECT count(*) FROM sqlite_temp_master WHERE name = 'sess_tmp2'",
        "1",
    ),
    (
        "ATTACH DATABASE ':memory:' AS sess_aux",
        "SELECT count(*) FROM pragma_database_list WHERE name = 'sess_aux'",
        "1",
    ),
];

fn show(conn: *mut sqlpool::ffi::sqlpool_conn, sql: &str) -> String {
    match scalar(conn, sql) {
        V::I(i) => i.to_string(),
        v => text(v),
    }
}

#[test]
fn sqlite_session_changes_do_not_reach_the_next_borrower() {
    let (_d, uri) = sqlite_file();
    for (change, probe, leaked) in SQLITE_CASES {
        let pool = one_conn(&uri, "");
        let c = acquire(pool);
        script(c, change).unwrap();
        assert_eq!(show(c, probe), *leaked, "{change} took effect");
        release(c);
        let c = acquire(pool);
        assert_ne!(
            show(c, probe),
            *leaked,
            "{change} leaked to the next borrower"
        );
        release(c);
        close(pool);
        // With the reset off, it does leak (the test sees the state).
        let pool = one_conn(&uri, "&session_reset=off");
        let c = acquire(pool);
        script(c, change).unwrap();
        release(c);
        let c = acquire(pool);
        assert_eq!(show(c, probe), *leaked, "session_reset=off keeps {change}");
        release(c);
        close(pool);
    }
}

#[test]
fn sqlite_unchanged_sessions_are_kept_and_always_replaces_every_time() {
    let (_d, uri) = sqlite_file();
    let pool = one_conn(&uri, "");
    for _ in 0..5 {
        let c = acquire(pool);
        exec(c, "CREATE TABLE IF NOT EXISTS t (a)", &[]).unwrap();
        exec(c, "INSERT INTO t VALUES (1)", &[]).unwrap();
        exec(c, "UPDATE t SET a = 2", &[]).unwrap();
        query(c, "SELECT * FROM t", &[]).unwrap();
        release(c);
    }
    assert_eq!(stats(pool).created, 1, "no reset for unchanged sessions");
    // A read-only transaction's own query_only pragma is not a change.
    let c = acquire(pool);
    ok(sqlpool::ffi::sqlpool_conn_begin(c, 0, 1));
    ok(sqlpool::ffi::sqlpool_conn_commit(c));
    release(c);
    assert_eq!(stats(pool).created, 1, "read-only transaction");
    close(pool);
    let pool = one_conn(&uri, "&session_reset=always");
    for _ in 0..3 {
        release(acquire(pool));
    }
    // Each release closes its connection (the replacement opens in the
    // background).
    assert_eq!(
        stats(pool).closed,
        3,
        "always: a fresh connection each time"
    );
    close(pool);
}

#[test]
fn sqlite_init_sql_runs_on_every_new_connection() {
    let (_d, uri) = sqlite_file();
    let pool = one_conn(&uri, "&init_sql=PRAGMA%20cache_size%20%3D%20-4321");
    let c = acquire(pool);
    assert_eq!(show(c, "PRAGMA cache_size"), "-4321");
    // Changing the session replaces the connection; init_sql runs again.
    script(c, "PRAGMA cache_size = -1000").unwrap();
    release(c);
    let c = acquire(pool);
    assert_eq!(show(c, "PRAGMA cache_size"), "-4321");
    release(c);
    assert_eq!(stats(pool).created, 2);
    close(pool);
    // A failing init_sql is a connect error.
    let f = open_with(&format!("{uri}?init_sql=NOT%20SQL"), &[]).unwrap_err();
    assert!(f.message.contains("init_sql"), "{}", f.message);
}

const PG_CASES: &[Case] = &[
    ("SET search_path TO sess_schema, public", "SHOW search_path", "sess_schema, public"),
    ("SET TIME ZONE 'Asia/Tokyo'", "SHOW TimeZone", "Asia/Tokyo"),
    ("SET statement_timeout = 1234", "SHOW statement_timeout", "1234ms"),
    (
        "SELECT set_config('sess.custom', 'yes', false)",
        "SELECT coalesce(current_setting('sess.custom', true), '')",
        "yes",
    ),
    (
        "CREATE TEMP TABLE sess_tmp (a int)",
        "SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relname = 'sess_tmp'",
        "1",
    ),
    (
        "PREPARE sess_stmt AS SELECT 1",
        "SELECT count(*) FROM pg_prepared_statements WHERE name = 'sess_stmt'",
        "1",
    ),
    (
        "SELECT pg_advisory_lock(4242)",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        "1",
    ),
    (
        "LISTEN sess_channel",
        "SELECT count(*) FROM pg_listening_channels() AS c WHERE c = 'sess_channel'",
        "1",
    ),
];

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_session_changes_do_not_reach_the_next_borrower() {
    let Some(pg) = PgServer::shared() else { return };
    for recycling in ["verified", "fast"] {
        let pool = one_conn(&pg.url(), &format!("&recycling={recycling}"));
        for (change, probe, leaked) in PG_CASES {
            let c = acquire(pool);
            let pid = int(scalar(c, "SELECT pg_backend_pid()"));
            script(c, change).unwrap();
            assert_eq!(show(c, probe), *leaked, "{change} took effect");
            release(c);
            let c = acquire(pool);
            assert_eq!(
                int(scalar(c, "SELECT pg_backend_pid()")),
                pid,
                "the same connection, reset"
            );
            assert_ne!(
                show(c, probe),
                *leaked,
                "{change} leaked to the next borrower ({recycling})"
            );
            release(c);
        }
        close(pool);
    }
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_unchanged_sessions_cost_no_reset_and_off_leaks() {
    let Some(pg) = PgServer::shared() else { return };
    let pool = one_conn(&pg.url(), "");
    let c = acquire(pool);
    // A cached (server-prepared) statement survives only without DISCARD ALL.
    exec(c, "SELECT 1 WHERE $1::int = 1", &[P::I(1)]).unwrap();
    release(c);
    let c = acquire(pool);
    let prepared = int(scalar(c, "SELECT count(*) FROM pg_prepared_statements"));
    assert!(prepared >= 1, "an unchanged session was reset");
    release(c);
    close(pool);
    let pool = one_conn(&pg.url(), "&session_reset=off");
    let c = acquire(pool);
    script(c, "SET statement_timeout = 4321").unwrap();
    release(c);
    let c = acquire(pool);
    assert_eq!(show(c, "SHOW statement_timeout"), "4321ms");
    release(c);
    close(pool);
    let pool = one_conn(&pg.url(), "&session_reset=always");
    let c = acquire(pool);
    exec(c, "SELECT 1 WHERE $1::int = 1", &[P::I(1)]).unwrap();
    release(c);
    let c = acquire(pool);
    let prepared = int(scalar(
        c,
        "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql",
    ));
    // (The probe itself is the only statement prepared since the reset.)
    assert!(prepared <= 1, "always: reset at every release ({prepared})");
    release(c);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_init_sql_is_what_a_reset_restores() {
    let Some(pg) = PgServer::shared() else { return };
    let pool = one_conn(&pg.url(), "&init_sql=SET%20statement_timeout%20%3D%204321");
    let c = acquire(pool);
    assert_eq!(show(c, "SHOW statement_timeout"), "4321ms");
    script(c, "SET statement_timeout = 5000").unwrap();
    release(c);
    let c = acquire(pool);
    assert_eq!(show(c, "SHOW statement_timeout"), "4321ms");
    release(c);
    assert_eq!(stats(pool).created, 1, "reset, not replaced");
    close(pool);
    let f = open_with(&with_query(&pg.url(), "init_sql=NOT%20SQL"), &[]).unwrap_err();
    assert!(f.message.contains("init_sql"), "{}", f.message);
}
