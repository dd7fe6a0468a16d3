//! Issue 17 §3: configuration as a libpq user expects it — errors that name
//! key and value, options refused on the wrong database, `host`/`port`
//! replacing the URI's, key=value conninfo strings, libpq's environment
//! variables and the password file with libpq's permission rule.

use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::time::Duration;

use sqlpool::config::{apply_connection_options, parse_uri, PoolOptions, Target};
use sqlpool::Status;
use tokio_postgres::config::Host;

/// The environment is process-wide: tests that set it run one at a time.
static ENV: Mutex<()> = Mutex::new(());

const PG_VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGPASSFILE",
    "PGSSLMODE",
];

fn clean_env() -> std::sync::MutexGuard<'static, ()> {
    let g = ENV.lock().unwrap_or_else(|p| p.into_inner());
    for v in PG_VARS {
        std::env::remove_var(v);
    }
    // No ~/.pgpass of the machine's user.
    std::env::set_var("PGPASSFILE", "/nonexistent/sqlpool-test-pgpass");
    g
}

fn open(
    uri: &str,
    explicit: &PoolOptions,
) -> sqlpool::Result<(tokio_postgres::Config, PoolOptions)> {
    let (mut target, mut options) = parse_uri(uri)?;
    options.overlay(explicit);
    apply_connection_options(&mut target, &mut options)?;
    match target {
        Target::Postgres(t) => Ok((t.config.clone(), options)),
        Target::Sqlite(_) => panic!("expected PostgreSQL"),
    }
}

fn err(uri: &str) -> sqlpool::Error {
    let _g = clean_env();
    match open(uri, &PoolOptions::default()) {
        Ok(_) => panic!("{uri}: accepted"),
        Err(e) => e,
    }
}

fn hosts(c: &tokio_postgres::Config) -> Vec<String> {
    c.get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect()
}

#[test]
fn errors_name_key_and_value() {
    for (uri, status, want) in [
        (
            "postgresql://h/db?foo=bar",
            Status::InvalidOption,
            "\"foo\"",
        ),
        (
            "postgresql://h/db?max_sise=3",
            Status::InvalidOption,
            "\"max_sise\"",
        ),
        (
            "postgresql://h/db?sslmode=bogus",
            Status::InvalidOption,
            "\"bogus\" for option sslmode",
        ),
        (
            "postgresql://h:notaport/db",
            Status::InvalidUri,
            "\"notaport\" for option port",
        ),
        (
            "postgresql://h:99999/db",
            Status::InvalidUri,
            "\"99999\" for option port: out of range",
        ),
        (
            "postgresql://h/db?application_name=p%zz",
            Status::InvalidUri,
            "\"p%zz\" of option application_name",
        ),
        (
            "postgresql://h/db?port=notaport",
            Status::InvalidOption,
            "\"notaport\" for option port",
        ),
        (
            "postgresql://h/db?busy_timeout=5",
            Status::InvalidOption,
            "busy_timeout applies to SQLite only",
        ),
        (
            "postgresql://h/db?journal_mode=WAL",
            Status::InvalidOption,
            "journal_mode applies to SQLite only",
        ),
        (
            "postgresql://h/db?pragma.foreign_keys=1",
            Status::InvalidOption,
            "pragma.* applies to SQLite only",
        ),
        (
            "postgresql://h/db?mode=ro",
            Status::InvalidOption,
            "mode applies to SQLite only",
        ),
        (
            "host=h dbname",
            Status::InvalidUri,
            "missing \"=\" after \"dbname\"",
        ),
        (
            "host=h application_name='x",
            Status::InvalidUri,
            "unterminated quoted value of application_name",
        ),
    ] {
        let e = err(uri);
        assert_eq!(e.status, status, "{uri}: {}", e.message);
        assert!(e.message.contains(want), "{uri}: {}", e.message);
    }
    // PostgreSQL-only options on SQLite.
    for uri in [
        "sqlite::memory:?sslmode=require",
        "sqlite:x.db?target_session_attrs=any",
    ] {
        let e = parse_uri(uri).unwrap_err();
        assert_eq!(e.status, Status::InvalidOption, "{uri}");
        assert!(
            e.message.contains("applies to PostgreSQL only"),
            "{}",
            e.message
        );
    }
}

#[test]
fn password_with_slash_and_percent_encoded_key() {
    let _g = clean_env();
    let (c, _) = open(
        "postgresql://app:Xy9/Tq+Pw8zK==@db.example/app",
        &PoolOptions::default(),
    )
    .unwrap();
    assert_eq!(c.get_password(), Some(&b"Xy9/Tq+Pw8zK=="[..]));
    assert_eq!(hosts(&c), ["db.example"]);
    assert_eq!(c.get_dbname(), Some("app"));
    let (c, _) = open(
        "postgresql://app@h/db?pass%77ord=S3cret",
        &PoolOptions::default(),
    )
    .unwrap();
    assert_eq!(c.get_password(), Some(&b"S3cret"[..]));
}

#[test]
fn host_and_port_options_replace_the_uris() {
    let _g = clean_env();
    let (c, _) = open(
        "postgresql://u@urihost:5433/db?host=opthost",
        &PoolOptions::default(),
    )
    .unwrap();
    assert_eq!(hosts(&c), ["opthost"]);
    let (c, _) = open(
        "postgresql://u@urihost:5433/db?port=6000",
        &PoolOptions::default(),
    )
    .unwrap();
    assert_eq!(hosts(&c), ["urihost"]);
    assert_eq!(c.get_ports(), [6000]);
    let explicit = PoolOptions {
        host: Some("explicit".into()),
        port: Some(7000),
        ..PoolOptions::default()
    };
    let (c, _) = open("postgresql://u@a:1,b:2/db", &explicit).unwrap();
    assert_eq!(hosts(&c), ["explicit"]);
    assert_eq!(c.get_ports(), [7000]);
}

#[test]
fn conninfo_strings() {
    let _g = clean_env();
    let (c, o) = open(
        "host=/var/run/postgresql port=5433 dbname=app user=me password='its \\' ok' application_name = tool max_size=3 sslmode=disable",
        &PoolOptions::default(),
    )
    .unwrap();
    assert!(matches!(c.get_hosts()[0], Host::Unix(_)));
    assert_eq!(c.get_ports(), [5433]);
    assert_eq!(c.get_dbname(), Some("app"));
    assert_eq!(c.get_user(), Some("me"));
    assert_eq!(c.get_password(), Some(&b"its ' ok"[..]));
    assert_eq!(c.get_application_name(), Some("tool"));
    assert_eq!(o.max_size, Some(3));
}

#[test]
fn environment_fills_what_is_unset() {
    let _g = clean_env();
    std::env::set_var("PGHOST", "envhost");
    std::env::set_var("PGPORT", "6543");
    std::env::set_var("PGUSER", "envuser");
    std::env::set_var("PGPASSWORD", "envpw");
    std::env::set_var("PGDATABASE", "envdb");
    std::env::set_var("PGAPPNAME", "envapp");
    std::env::set_var("PGCONNECT_TIMEOUT", "7");
    let (c, o) = open("postgresql://", &PoolOptions::default()).unwrap();
    assert_eq!(hosts(&c), ["envhost"]);
    assert_eq!(c.get_ports(), [6543]);
    assert_eq!(c.get_user(), Some("envuser"));
    assert_eq!(c.get_password(), Some(&b"envpw"[..]));
    assert_eq!(c.get_dbname(), Some("envdb"));
    assert_eq!(c.get_application_name(), Some("envapp"));
    assert_eq!(o.connect_timeout, Some(Duration::from_secs(7)));
    // The URI wins over the environment.
    let (c, o) = open(
        "postgresql://u:p@h:1/d?application_name=a&connect_timeout=3",
        &PoolOptions::default(),
    )
    .unwrap();
    assert_eq!(hosts(&c), ["h"]);
    assert_eq!(c.get_ports(), [1]);
    assert_eq!(c.get_user(), Some("u"));
    assert_eq!(c.get_password(), Some(&b"p"[..]));
    assert_eq!(c.get_dbname(), Some("d"));
    assert_eq!(c.get_application_name(), Some("a"));
    assert_eq!(o.connect_timeout, Some(Duration::from_secs(3)));
    // A conninfo string too.
    let (c, _) = open("dbname=x", &PoolOptions::default()).unwrap();
    assert_eq!(hosts(&c), ["envhost"]);
    assert_eq!(c.get_dbname(), Some("x"));
    std::env::set_var("PGPORT", "notaport");
    let e = open("postgresql://", &PoolOptions::default()).unwrap_err();
    assert!(e.message.contains("PGPORT"), "{}", e.message);
}

#[test]
fn password_file_with_libpqs_permission_rule() {
    let _g = clean_env();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    std::fs::write(
        &file,
        "# comment\nother:5432:*:u:wrong\nh:5432:db:u:from\\:file\n*:*:*:*:fallback\n",
    )
    .unwrap();
    std::env::set_var("PGPASSFILE", &file);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (c, _) = open("postgresql://u@h/db", &PoolOptions::default()).unwrap();
    assert_eq!(c.get_password(), Some(&b"from:file"[..]));
    let (c, _) = open("postgresql://x@y:1/z", &PoolOptions::default()).unwrap();
    assert_eq!(c.get_password(), Some(&b"fallback"[..]));
    // PGPASSWORD wins over the file.
    std::env::set_var("PGPASSWORD", "env");
    let (c, _) = open("postgresql://u@h/db", &PoolOptions::default()).unwrap();
    assert_eq!(c.get_password(), Some(&b"env"[..]));
    std::env::remove_var("PGPASSWORD");
    // Group or world access: ignored, as libpq does.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (c, _) = open("postgresql://u@h/db", &PoolOptions::default()).unwrap();
    assert_eq!(c.get_password(), None);
}
