//! Issue 2: the core C ABI on SQLite (file and memory) and PostgreSQL,
//! driven only through the exported C functions.

mod common;

use std::ptr;

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

/// (label, uri, guard keeping temp files alive) for every database.
fn databases() -> Vec<(&'static str, String, Option<tempfile::TempDir>)> {
    let (dir, file_uri) = sqlite_file();
    let mut dbs = vec![
        ("sqlite-file", file_uri, Some(dir)),
        (
            "sqlite-memory",
            "sqlite::memory:?max_size=1".to_owned(),
            None,
        ),
    ];
    if let Some(pg) = (!cfg!(sqlpool_no_pg)).then(PgServer::shared).flatten() {
        dbs.push(("postgresql", pg.url(), None));
    }
    dbs
}

fn is_pg(uri: &str) -> bool {
    uri.starts_with("postgres")
}

#[test]
fn open_execute_query_release_close_everywhere() {
    for (label, uri, _guard) in databases() {
        let pool = open(&uri);
        let conn = acquire(pool);
        let table = format!("core_{}", std::process::id());
        let (int_t, real_t, blob_t, bool_t) = if is_pg(&uri) {
            ("bigint", "double precision", "bytea", "boolean")
        } else {
            ("INTEGER", "REAL", "BLOB", "BOOLEAN")
        };
        script(conn, &format!("DROP TABLE IF EXISTS {table}")).unwrap();
        script(
            conn,
            &format!("CREATE TABLE {table} (i {int_t}, d {real_t}, t text, b {blob_t}, f {bool_t}, n text)"),
        )
        .unwrap();
        let ph = if is_pg(&uri) {
            "$1, $2, $3, $4, $5, $6"
        } else {
            "?, ?, ?, ?, ?, ?"
        };
        let n = exec(
            conn,
            &format!("INSERT INTO {table} VALUES ({ph})"),
            &[
                P::I(i64::MAX),
                P::D(0.1),
                P::T("héllo"),
                P::B(&[0, 1, 2, 255]),
                P::Bool(true),
                P::Null,
            ],
        )
        .unwrap_or_else(|f| panic!("{label}: {f:?}"));
        assert_eq!(n, 1, "{label}");
        let numbered = if is_pg(&uri) { "$1" } else { "?1" };
        exec(
            conn,
            &format!("INSERT INTO {table} (i, t) VALUES ({numbered}, 'x')"),
            &[P::I(i64::MIN)],
        )
        .unwrap();
        let result = query_raw(
            conn,
            &format!("SELECT i, d, t, b, f, n FROM {table} ORDER BY i DESC"),
            &[],
        )
        .unwrap();
        assert_eq!(
            column_names(result),
            ["i", "d", "t", "b", "f", "n"],
            "{label}"
        );
        let types = decl_types(result);
        if is_pg(&uri) {
            assert_eq!(types, ["int8", "float8", "text", "bytea", "bool", "text"]);
        } else {
            assert_eq!(
                types,
                ["INTEGER", "REAL", "TEXT", "BLOB", "BOOLEAN", "TEXT"]
            );
        }
        let rows = rows_of(result);
        assert_eq!(rows.len(), 2, "{label}");
        assert_eq!(
            rows[0],
            vec![
                V::I(i64::MAX),
                V::D(0.1),
                V::T("héllo".into()),
                V::B(vec![0, 1, 2, 255]),
                V::Bool(true),
                V::Null
            ],
            "{label}"
        );
        assert_eq!(rows[1][0], V::I(i64::MIN));
        let mut is_null = 0;
        ok(sqlpool_result_is_null(result, 0, 5, &mut is_null));
        assert_eq!(is_null, 1);
        let mut col = 0usize;
        ok(unsafe { sqlpool_result_column_index(result, cstr("t").as_ptr(), &mut col) });
        assert_eq!(col, 2);
        ok(sqlpool_result_free(result));
        script(conn, &format!("DROP TABLE {table}")).unwrap();
        release(conn);
        close(pool);
    }
}

#[test]
fn pool_level_execute_and_query() {
    for (label, uri, _guard) in databases() {
        let pool = open(&uri);
        let sql = cstr("SELECT 40 + 2 AS answer");
        let mut result = ptr::null_mut();
        ok(unsafe { sqlpool_pool_query(pool, sql.as_ptr(), ptr::null(), &mut result) });
        assert_eq!(rows_of(result), vec![vec![V::I(42)]], "{label}");
        ok(sqlpool_result_free(result));
        let mut n = 99u64;
        ok(unsafe { sqlpool_pool_execute(pool, cstr("SELECT 1").as_ptr(), ptr::null(), &mut n) });
        assert_eq!(
            n, 1,
            "{label}: like PostgreSQL's command tag, a SELECT reports the rows it returned"
        );
        assert_eq!(stats(pool).in_use, 0);
        close(pool);
    }
}

#[test]
fn sqlite_uri_forms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forms.db");
    let p = path.display();
    for uri in [
        format!("sqlite:{p}"),
        format!("sqlite://{p}"),
        format!("file:{p}"),
    ] {
        let pool = open(&uri);
        let conn = acquire(pool);
        script(
            conn,
            "CREATE TABLE IF NOT EXISTS t (x INTEGER); INSERT INTO t VALUES (1)",
        )
        .unwrap();
        release(conn);
        close(pool);
    }
    // All three named the same file.
    let pool = open(&format!("file:{p}?mode=ro"));
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT count(*) FROM t"), V::I(3));
    let err = exec(conn, "INSERT INTO t VALUES (2)", &[]).unwrap_err();
    assert_eq!(err.status, Status::DatabaseError);
    assert_eq!(
        err.sqlstate, "25006",
        "read-only maps to SQLSTATE 25006: {}",
        err.message
    );
    release(conn);
    close(pool);
    // Relative sqlite:PATH works too (seed: sqlite:./dev.db).
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT 1"), V::I(1));
    release(conn);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn postgres_uri_forms_and_separate_parameters() {
    let Some(pg) = PgServer::shared() else { return };
    // postgres:// scheme, percent-encoded password, connect_timeout.
    let uri = format!(
        "postgres://{}:{}@{}:{}/{}?connect_timeout=5&application_name=sqlpool%20test",
        pg.user(),
        pg.password().replace('_', "%5F"),
        pg.host(),
        pg.port(),
        pg.dbname()
    );
    let pool = open(&uri);
    let conn = acquire(pool);
    assert_eq!(
        scalar(conn, "SELECT current_setting('application_name')"),
        V::T("sqlpool test".into())
    );
    release(conn);
    close(pool);

    // psqlpy-style separate parameters, no URI at all.
    let mut opts = ptr::null_mut();
    ok(sqlpool_options_new(&mut opts));
    unsafe {
        ok(sqlpool_options_set_user(opts, cstr(&pg.user()).as_ptr()));
        ok(sqlpool_options_set_password(
            opts,
            cstr(&pg.password()).as_ptr(),
        ));
        ok(sqlpool_options_set_host(opts, cstr(&pg.host()).as_ptr()));
        ok(sqlpool_options_set_dbname(
            opts,
            cstr(&pg.dbname()).as_ptr(),
        ));
    }
    ok(sqlpool_options_set_port(opts, pg.port()));
    ok(sqlpool_options_set_max_size(opts, 2));
    let mut pool = ptr::null_mut();
    ok(unsafe { sqlpool_pool_open(ptr::null(), opts, &mut pool) });
    ok(sqlpool_options_free(opts));
    let conn = acquire(pool);
    assert_eq!(scalar(conn, "SELECT current_database()"), V::T(pg.dbname()));
    release(conn);
    assert_eq!(stats(pool).max_size, 2);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn wrong_password_is_a_clear_auth_error_without_the_secret() {
    let Some(pg) = PgServer::shared() else { return };
    let secret = "Wr0ngSecret!";
    let err = open_with(&pg.url_with_password(secret), &[]).unwrap_err();
    assert_eq!(err.status, Status::AuthError, "{}", err.message);
    assert_eq!(err.sqlstate, "28P01");
    assert!(
        err.message.contains("password authentication failed"),
        "{}",
        err.message
    );
    assert!(!err.message.contains(secret));
    assert!(!last_json().contains(secret));
}

#[test]
fn bad_uris_and_options_are_rejected_with_names_and_no_secrets() {
    let err = open_with("postgresql://bob:hunter2@localhost:notaport/db", &[]).unwrap_err();
    assert_eq!(err.status, Status::InvalidUri);
    assert!(!err.message.contains("hunter2"), "{}", err.message);
    assert!(err.message.contains("bob:***"), "{}", err.message);
    assert_eq!(
        open_with("mysql://x/y", &[]).unwrap_err().status,
        Status::InvalidUri
    );
    assert_eq!(open_with("", &[]).unwrap_err().status, Status::InvalidUri);
    let err = open_with("sqlite::memory:?max_size=many", &[]).unwrap_err();
    assert_eq!(err.status, Status::InvalidOption);
    assert!(err.message.contains("max_size"), "{}", err.message);
    let err = open_with("sqlite::memory:?min_size=5&max_size=2", &[]).unwrap_err();
    assert_eq!(err.status, Status::InvalidOption);
    let err = open_with("sqlite::memory:?acquire_timeout=soon", &[]).unwrap_err();
    assert!(err.message.contains("acquire_timeout"), "{}", err.message);
    let mut opts = ptr::null_mut();
    ok(sqlpool_options_new(&mut opts));
    let err = check(unsafe {
        sqlpool_options_set(opts, cstr("no_such_option").as_ptr(), cstr("1").as_ptr())
    })
    .unwrap_err();
    assert_eq!(err.status, Status::InvalidOption);
    assert!(err.message.contains("no_such_option"));
    assert_eq!(
        sqlpool_options_set_recycling(opts, 7),
        Status::InvalidOption
    );
    ok(sqlpool_options_free(opts));
}

#[test]
fn acquire_times_out_with_its_own_status() {
    let pool = open_with(
        "sqlite::memory:",
        &[("max_size", "1"), ("acquire_timeout", "150ms")],
    )
    .unwrap();
    let held = acquire(pool);
    let started = std::time::Instant::now();
    let err = try_acquire(pool, -1).unwrap_err();
    assert_eq!(err.status, Status::PoolTimeout);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(140)
            && waited < std::time::Duration::from_secs(5),
        "{waited:?}"
    );
    let err = try_acquire(pool, 0).unwrap_err();
    assert_eq!(err.status, Status::PoolTimeout);
    release(held);
    release(try_acquire(pool, 0).unwrap());
    assert_eq!(stats(pool).acquire_timeouts, 2);
    close(pool);
}

#[test]
fn errors_carry_sqlstate_native_code_and_json() {
    for (label, uri, _guard) in databases() {
        let pool = open(&uri);
        let conn = acquire(pool);
        let err = exec(conn, "SELEC 1", &[]).unwrap_err();
        assert_eq!(err.status, Status::DatabaseError, "{label}");
        assert_eq!(err.sqlstate, "42601", "{label}: {}", err.message);
        assert!(
            last_json().contains("\"sqlstate\":\"42601\""),
            "{label}: {}",
            last_json()
        );
        let t = format!("uniq_{}", std::process::id());
        script(
            conn,
            &format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id integer PRIMARY KEY)"),
        )
        .unwrap();
        exec(conn, &format!("INSERT INTO {t} VALUES (1)"), &[]).unwrap();
        let err = exec(conn, &format!("INSERT INTO {t} VALUES (1)"), &[]).unwrap_err();
        assert_eq!(err.status, Status::ConstraintViolation, "{label}");
        assert_eq!(err.sqlstate, "23505", "{label}");
        if is_pg(&uri) {
            assert_eq!(err.native, 0);
            assert!(
                last_json().contains("\"detail\""),
                "PostgreSQL gives a detail: {}",
                last_json()
            );
        } else {
            assert_eq!(err.native, 1555, "SQLITE_CONSTRAINT_PRIMARYKEY");
        }
        let err = exec(conn, "SELECT * FROM no_such_table_here", &[]).unwrap_err();
        assert_eq!(err.sqlstate, "42P01", "{label}: {}", err.message);
        script(conn, &format!("DROP TABLE {t}")).unwrap();
        release(conn);
        close(pool);
    }
}

#[test]
fn last_error_is_per_thread() {
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    assert!(exec(conn, "SELEC 1", &[]).is_err());
    let here = last_message();
    assert!(here.contains("syntax"), "{here}");
    let other = std::thread::spawn(|| (last_message(), sqlpool_last_error_status()))
        .join()
        .unwrap();
    assert_eq!(
        other,
        (String::new(), Status::Ok),
        "another thread sees no error"
    );
    release(conn);
    close(pool);
}

#[test]
fn version_and_status_names() {
    let v = unsafe { std::ffi::CStr::from_ptr(sqlpool_version()) }
        .to_str()
        .unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        format!("{SQLPOOL_VERSION_MAJOR}.{SQLPOOL_VERSION_MINOR}.{SQLPOOL_VERSION_PATCH}"),
        v
    );
    let name = |s: u32| {
        unsafe { std::ffi::CStr::from_ptr(sqlpool_status_name(s)) }
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(name(0), "SQLPOOL_OK");
    assert_eq!(name(Status::PoolTimeout as u32), "SQLPOOL_POOL_TIMEOUT");
    assert_eq!(name(12345), "SQLPOOL_UNKNOWN");
}

#[test]
fn more_than_one_statement_needs_the_script_call() {
    for (label, uri, _guard) in databases() {
        let pool = open(&uri);
        let conn = acquire(pool);
        let err = exec(conn, "SELECT 1; SELECT 2", &[]).unwrap_err();
        assert_eq!(err.sqlstate, "42601", "{label}: {}", err.message);
        assert!(
            query(conn, "SELECT 1 AS a; SELECT 2 AS b", &[]).is_err(),
            "{label}"
        );
        assert_eq!(
            exec(conn, "SELECT ';' ; ", &[]).unwrap(),
            1,
            "{label}: a trailing ; is fine"
        );
        script(conn, "SELECT 1; SELECT 2").unwrap();
        release(conn);
        close(pool);
    }
}

#[test]
fn execute_many_runs_every_set_of_one_parameter_list() {
    for (label, uri, _guard) in databases() {
        let pool = open(&uri);
        let conn = acquire(pool);
        let t = format!("many_{}", std::process::id());
        script(
            conn,
            &format!(
                "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id integer PRIMARY KEY, name text)"
            ),
        )
        .unwrap();
        let list = params(&[]);
        for i in 0..1000i64 {
            let name = format!("n{i}");
            unsafe {
                ok(sqlpool_params_add_int64(list, cstr("id").as_ptr(), i));
                ok(sqlpool_params_add_text(
                    list,
                    cstr("name").as_ptr(),
                    name.as_ptr().cast(),
                    name.len(),
                ));
            }
            ok(sqlpool_params_next_set(list));
        }
        let sql = cstr(&format!("INSERT INTO {t} VALUES (:id, :name)"));
        let mut n = 0u64;
        ok(unsafe { sqlpool_conn_execute_many(conn, sql.as_ptr(), list, &mut n) });
        assert_eq!(n, 1000, "{label}");
        assert_eq!(
            scalar(conn, &format!("SELECT count(*) FROM {t}")),
            V::I(1000),
            "{label}"
        );
        // A list with several sets is refused by the single-statement calls.
        let err = check(unsafe { sqlpool_conn_execute(conn, sql.as_ptr(), list, ptr::null_mut()) })
            .unwrap_err();
        assert_eq!(err.status, Status::ParameterError, "{label}");
        assert!(
            err.message.contains("1000 parameter sets"),
            "{label}: {}",
            err.message
        );
        // All or nothing: a duplicate in the last set undoes the batch.
        ok(sqlpool_params_clear(list));
        for i in [2000i64, 2001, 5] {
            unsafe {
                ok(sqlpool_params_add_int64(list, cstr("id").as_ptr(), i));
                ok(sqlpool_params_add_null(list, cstr("name").as_ptr()));
            }
            ok(sqlpool_params_next_set(list));
        }
        let err = check(unsafe { sqlpool_conn_execute_many(conn, sql.as_ptr(), list, &mut n) })
            .unwrap_err();
        assert_eq!(err.status, Status::ConstraintViolation, "{label}");
        assert!(
            err.message.starts_with("parameter set #3: "),
            "{label}: the failing set is named: {}",
            err.message
        );
        assert_eq!(
            scalar(conn, &format!("SELECT count(*) FROM {t}")),
            V::I(1000),
            "{label}"
        );
        ok(sqlpool_params_free(list));
        script(conn, &format!("DROP TABLE {t}")).unwrap();
        release(conn);
        close(pool);
    }
}
