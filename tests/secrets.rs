//! Issue 17 §1: a password never leaves the library — not in error
//! messages, not in the last error's JSON, not in any log line (TRACE, SQL
//! log with values) — whatever characters it holds and however it was
//! given. Every configuration error the parser raises and a connect failure
//! are tried with every password of the corpus, in every form.

mod common;

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::Mutex;

use common::capi::*;
use sqlpool::ffi::*;

/// Marks each password's two ends; neither may appear anywhere.
const HEAD: &str = "QmP7ab";
const TAIL: &str = "ZxW9cd";

fn corpus() -> Vec<String> {
    let specials = [
        "/", "?", "#", "@", ":", "%", "+", "=", "&", "'", "\"", " ", "/@:", "%2F", "==",
    ];
    specials
        .iter()
        .map(|s| format!("{HEAD}{s}{TAIL}"))
        .collect()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Configuration errors as URI query parameters (each alone is an error).
const ERRORS: &[&str] = &[
    "aplication_name=x",
    "typo=1",
    "foo=bar",
    "max_sise=3",
    "max_size=lots",
    "sslmode=bogus",
    "busy_timeout=5",
    "journal_mode=WAL",
    "pragma.foreign_keys=1",
    "application_name=p%zz",
    "mode=ro",
    "hostaddr=nope",
    "keepalives=7",
    "port=notaport",
    "port=99999",
];

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn collect(
    _user: *mut c_void,
    _level: u32,
    target: *const c_char,
    message: *const c_char,
) {
    let target = unsafe { CStr::from_ptr(target) }
        .to_string_lossy()
        .into_owned();
    let message = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    LINES.lock().unwrap().push(format!("{target}: {message}"));
}

fn assert_clean(what: &str, text: &str) {
    for marker in [HEAD, TAIL] {
        assert!(
            !text.contains(marker),
            "{what}: the password leaked: {text}"
        );
    }
}

/// Opens and expects failure; checks the message and JSON.
fn expect_clean_failure(label: &str, uri: &str, options: &[(&str, &str)]) {
    let mut opts = ptr::null_mut();
    ok(sqlpool_options_new(&mut opts));
    for (k, v) in options {
        let (k, v) = (cstr(k), cstr(v));
        if let Err(e) = check(unsafe { sqlpool_options_set(opts, k.as_ptr(), v.as_ptr()) }) {
            assert_clean(label, &e.message);
            assert_clean(label, &last_json());
        }
    }
    let mut pool = ptr::null_mut();
    let u = cstr(uri);
    let r = check(unsafe { sqlpool_pool_open(u.as_ptr(), opts, &mut pool) });
    ok(sqlpool_options_free(opts));
    match r.map(|_| pool) {
        Ok(pool) => {
            close(pool);
            panic!("{label}: opened, expected an error");
        }
        Err(e) => {
            assert_clean(label, &e.message);
            assert_clean(label, &last_json());
        }
    }
}

#[test]
fn no_password_in_errors_or_logs() {
    LINES.lock().unwrap().clear();
    ok(sqlpool_set_logger(
        Some(collect),
        SQLPOOL_LOG_TRACE,
        ptr::null_mut(),
    ));
    ok(sqlpool_set_sql_logging(1, 1));
    let mut tried = 0;
    for pw in corpus() {
        let e = enc(&pw);
        let conninfo_pw = format!("'{}'", pw.replace('\\', "\\\\").replace('\'', "\\'"));
        // Raw in the user info: RFC 3986 wants `?` and `#` encoded; the
        // rest is accepted (a `%` not followed by hex digits is an error).
        let raw_ok = !pw.contains('?');
        for err in ERRORS {
            let (key, value) = err.split_once('=').unwrap();
            let mut forms: Vec<(String, Vec<(&str, &str)>)> = vec![
                (format!("postgresql://app:{e}@127.0.0.1:1/db?{err}"), vec![]),
                (
                    format!("postgresql://app@127.0.0.1:1/db?password={e}&{err}"),
                    vec![],
                ),
                (
                    format!("postgresql://app@127.0.0.1:1/db?{err}&pass%77ord={e}"),
                    vec![],
                ),
                (
                    format!("postgres://app@127.0.0.1:1/db?{err}"),
                    vec![("password", pw.as_str())],
                ),
                (
                    format!("host=127.0.0.1 port=1 user=app password={conninfo_pw} {key}={value}"),
                    vec![],
                ),
            ];
            if raw_ok {
                forms.push((
                    format!("postgresql://app:{pw}@127.0.0.1:1/db?{err}"),
                    vec![],
                ));
            }
            for (uri, options) in &forms {
                expect_clean_failure(&format!("{err} via {options:?}"), uri, options);
                tried += 1;
            }
            // The same error given as an option, the password in the URI.
            expect_clean_failure(
                err,
                &format!("postgresql://app:{e}@127.0.0.1:1/db"),
                &[(key, value)],
            );
        }
        // Authority errors: bad ports, bad percent-encoding.
        for authority in ["127.0.0.1:notaport", "127.0.0.1:99999", "h%zz"] {
            expect_clean_failure(
                authority,
                &format!("postgresql://app:{e}@{authority}/db"),
                &[],
            );
        }
        expect_clean_failure(
            "bad encoding in password",
            &format!("postgresql://app:{HEAD}%zz{TAIL}@h/db"),
            &[],
        );
        // A connect failure (nothing listens on port 1).
        expect_clean_failure(
            "connect failure",
            &format!("postgresql://app:{e}@127.0.0.1:1/db?connect_timeout=1s"),
            &[],
        );
        expect_clean_failure(
            "connect failure (lazy, acquire)",
            &format!("host=127.0.0.1 port=1 user=app password={conninfo_pw} connect_timeout=1"),
            &[],
        );
    }
    assert!(tried > 400, "{tried}");
    // The SQL log: a PASSWORD literal is masked, also with values logged.
    let pool = open("sqlite::memory:?max_size=1");
    let conn = acquire(pool);
    for pw in corpus() {
        let lit = pw.replace('\'', "''");
        for sql in [
            format!("ALTER ROLE app PASSWORD '{lit}'"),
            format!("CREATE ROLE app LOGIN PASSWORD '{lit}' VALID UNTIL 'infinity'"),
            format!(
                "CREATE USER app WITH ENCRYPTED PASSWORD E'{}'",
                lit.replace('\\', "\\\\")
            ),
            format!("alter user app password $pw${pw}$pw$"),
            format!("CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password '{lit}')"),
        ] {
            let _ = exec(conn, &sql, &[]);
            assert_clean(&sql, &last_message());
        }
    }
    release(conn);
    close(pool);
    ok(sqlpool_set_logger(None, SQLPOOL_LOG_INFO, ptr::null_mut()));
    ok(sqlpool_set_sql_logging(0, 0));
    let lines = std::mem::take(&mut *LINES.lock().unwrap());
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("sqlpool::sql") && l.contains("'***'"))
            .count()
            >= 60,
        "the SQL log shows the masked statements: {lines:#?}"
    );
    for line in &lines {
        assert_clean("log line", line);
    }
}
