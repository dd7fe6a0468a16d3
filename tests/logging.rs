//! Issue 8: logging from C — callback, levels, SQL log, redaction, stderr
//! via SQLPOOL_LOG, and the last error as JSON.

mod common;

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::Mutex;

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;

static LINES: Mutex<Vec<(u32, String, String)>> = Mutex::new(Vec::new());
/// Tests in this file share the global logger; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

unsafe extern "C" fn collect(
    user: *mut c_void,
    level: u32,
    target: *const c_char,
    message: *const c_char,
) {
    assert_eq!(user as usize, 0xfeed, "user_data is passed through");
    let target = unsafe { CStr::from_ptr(target) }
        .to_string_lossy()
        .into_owned();
    let message = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    LINES.lock().unwrap().push((level, target, message));
}

fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<(u32, String, String)>) {
    LINES.lock().unwrap().clear();
    ok(sqlpool_set_logger(
        Some(collect),
        SQLPOOL_LOG_TRACE,
        0xfeed as *mut c_void,
    ));
    let r = f();
    ok(sqlpool_set_logger(None, SQLPOOL_LOG_INFO, ptr::null_mut()));
    ok(sqlpool_set_sql_logging(0, 0));
    (r, std::mem::take(&mut *LINES.lock().unwrap()))
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn pool_events_and_sql_are_logged_with_values_redacted() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut uris = vec!["sqlite::memory:".to_owned()];
    if let Some(pg) = PgServer::shared() {
        uris.push(pg.url());
    }
    for uri in uris {
        let ((), lines) = capture(|| {
            ok(sqlpool_set_sql_logging(1, 0));
            let pool = open(&uri);
            let conn = acquire(pool);
            let ph = if uri.starts_with("sqlite") { "?" } else { "$1" };
            query(
                conn,
                &format!("SELECT {ph}::text AS s").replace("?::text", "CAST(? AS TEXT)"),
                &[P::T("top-secret-value")],
            )
            .unwrap();
            ok(sqlpool_set_sql_logging(1, 1));
            query(
                conn,
                &format!("SELECT {ph}::text AS s").replace("?::text", "CAST(? AS TEXT)"),
                &[P::T("visible-value")],
            )
            .unwrap();
            release(conn);
            close(pool);
        });
        let text: Vec<String> = lines
            .iter()
            .map(|(l, t, m)| format!("{l} {t}: {m}"))
            .collect();
        let all = text.join("\n");
        assert!(all.contains("sqlpool::pool: pool started"), "{all}");
        assert!(all.contains("sqlpool::pool: opened"), "{all}");
        assert!(all.contains("sqlpool::pool: pool stopped"), "{all}");
        assert!(all.contains("sqlpool::sql: conn #"), "{all}");
        assert!(all.contains("params=<1 values redacted>"), "{all}");
        assert!(!all.contains("top-secret-value"), "{all}");
        assert!(
            all.contains("visible-value"),
            "values shown when asked for: {all}"
        );
        assert!(lines
            .iter()
            .any(|(l, t, _)| *l == SQLPOOL_LOG_INFO && t == "sqlpool::sql"));
    }
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn passwords_appear_in_no_log_line() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(pg) = PgServer::shared() else { return };
    let ((), lines) = capture(|| {
        ok(sqlpool_set_sql_logging(1, 1));
        // A good password, in the URI.
        let url = pg.url();
        let sep = if url.contains('?') { '&' } else { '?' };
        let pool = open(&format!("{url}{sep}max_size=2"));
        let conn = acquire(pool);
        scalar(conn, "SELECT 1");
        release(conn);
        ok(sqlpool_pool_drain(pool));
        close(pool);
        // A wrong one, lazily, so the failure is logged by the pool.
        let pool = open_with(
            &pg.url_with_password("WrongPw-123"),
            &[("lazy", "1"), ("acquire_timeout", "300ms")],
        )
        .unwrap();
        assert!(try_acquire(pool, -1).is_err());
        close(pool);
        // And a bad URI.
        assert!(open_with("postgresql://u:UriPw-456@host:x/db", &[]).is_err());
    });
    assert!(lines.len() > 5, "{lines:?}");
    for (_, target, message) in &lines {
        for secret in [pg.password().as_str(), "WrongPw-123", "UriPw-456"] {
            assert!(!message.contains(secret), "{target}: {message}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|(_, _, m)| m.contains("password authentication failed")),
        "{lines:?}"
    );
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn last_error_json_has_detail_hint_and_position() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(pg) = PgServer::shared() else { return };
    let pool = open(&pg.url());
    let conn = acquire(pool);
    assert!(exec(conn, "SELECT nope FROM pg_class", &[]).is_err());
    let json: serde_json::Value = serde_json::from_str(&last_json()).unwrap();
    assert_eq!(json["status"], "SQLPOOL_DATABASE_ERROR");
    assert_eq!(json["sqlstate"], "42703");
    assert_eq!(json["position"], 8);
    assert!(json["message"].as_str().unwrap().contains("nope"));
    assert!(exec(conn, "SELECT * FROM pg_clas", &[]).is_err());
    release(conn);
    close(pool);
}

/// With no callback, SQLPOOL_LOG=debug writes to stderr (checked in a child
/// process, since the variable is read once per process).
#[test]
fn sqlpool_log_env_writes_to_stderr() {
    if std::env::var_os("SQLPOOL_LOG_CHILD").is_some() {
        let pool = open("sqlite::memory:");
        close(pool);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sqlpool_log_env_writes_to_stderr",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SQLPOOL_LOG_CHILD", "1")
        .env("SQLPOOL_LOG", "debug")
        .env("SQLPOOL_LOG_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("sqlpool::pool: pool started"), "{stderr}");
    assert!(stderr.contains("\x1b["), "colored: {stderr}");
}
