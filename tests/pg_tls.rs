//! TLS on a throwaway cluster with `ssl=on`, certificates made here with
//! `openssl`: libpq's meaning of every `sslmode`, root certificates, host
//! name checks, client certificates, channel binding, `PGSSLMODE`.
//!
//! One test function: it sets process environment variables, which other
//! threads of this binary must not see half-way.

mod common;

use std::path::Path;
use std::process::Command;

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate it signs for `subject` with extension `ext`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn make_cert(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

/// Whether this session is encrypted, per the server.
fn uses_tls(uri: &str) -> Result<bool, Failure> {
    let pool = open_with(uri, &[("max_size", "1")])?;
    let conn = acquire(pool);
    let v = scalar(
        conn,
        "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    release(conn);
    close(pool);
    Ok(v == V::T("true".into()))
}

/// A pipelined batch of megabytes crosses many TLS records both ways.
fn batch_over_tls(uri: &str) {
    let pool = open(uri);
    let conn = acquire(pool);
    script(conn, "CREATE TEMP TABLE tls_batch (id int, pad text)").unwrap();
    let pad = "t".repeat(300);
    let list = params(&[]);
    for i in 0..10_000 {
        add_set(list, &[P::I(i), P::T(&pad)]);
    }
    let sql = cstr("INSERT INTO tls_batch VALUES ($1, $2)");
    let mut n = 0u64;
    ok(unsafe { sqlpool_conn_execute_many(conn, sql.as_ptr(), list, &mut n) });
    ok(sqlpool_params_free(list));
    assert_eq!(n, 10_000);
    assert_eq!(
        scalar(
            conn,
            "SELECT count(*) FROM tls_batch WHERE length(pad) = 300"
        ),
        V::I(10_000)
    );
    release(conn);
    close(pool);
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn tls_modes_certificates_and_channel_binding() {
    let Some(pg) = PgServer::private() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_ca(d, "otherca");
    make_cert(
        d,
        "ca",
        "server",
        "localhost",
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    make_cert(
        d,
        "ca",
        "client",
        "certuser",
        "extendedKeyUsage=clientAuth\n",
    );
    pg.enable_tls(
        &read(d, "server.crt"),
        &read(d, "server.key"),
        Some(&read(d, "ca.crt")),
        &[
            "hostssl all certuser 127.0.0.1/32 cert",
            "host all certuser 127.0.0.1/32 reject",
            "hostnossl all tlsonly 127.0.0.1/32 reject",
        ],
    );
    pg.psql("CREATE ROLE certuser LOGIN; CREATE ROLE tlsonly LOGIN PASSWORD 'tls_pw'");
    let ca = d.join("ca.crt").display().to_string();
    let other = d.join("otherca.crt").display().to_string();
    let port = pg.port();
    let db = pg.dbname();
    let base = |host: &str| {
        format!(
            "postgresql://{}:{}@{host}:{port}/{db}",
            pg.user(),
            pg.password()
        )
    };

    // verify-full with the right CA and name: encrypted.
    let full = format!("{}?sslmode=verify-full&sslrootcert={ca}", base("localhost"));
    assert!(uses_tls(&full).unwrap(), "verify-full must encrypt");
    batch_over_tls(&full);

    // The certificate names localhost, not 127.0.0.1: verify-full refuses,
    // verify-ca (chain only) accepts.
    let e = uses_tls(&format!(
        "{}?sslmode=verify-full&sslrootcert={ca}",
        base("127.0.0.1")
    ))
    .unwrap_err();
    assert_eq!(e.status, Status::ConnectionError, "{}", e.message);
    assert!(e.message.contains("host name"), "{}", e.message);
    assert!(uses_tls(&format!(
        "{}?sslmode=verify-ca&sslrootcert={ca}",
        base("127.0.0.1")
    ))
    .unwrap());

    // A CA that did not sign the server's certificate.
    for mode in ["verify-ca", "verify-full"] {
        let e = uses_tls(&format!(
            "{}?sslmode={mode}&sslrootcert={other}",
            base("localhost")
        ))
        .unwrap_err();
        assert_eq!(e.status, Status::ConnectionError, "{mode}: {}", e.message);
        assert!(e.message.contains("trusted CA"), "{mode}: {}", e.message);
    }
    // verify-* without any root certificate is a clear configuration error.
    let e = uses_tls(&format!("{}?sslmode=verify-full", base("localhost"))).unwrap_err();
    assert_eq!(e.status, Status::InvalidOption, "{}", e.message);
    assert!(e.message.contains("sslrootcert"), "{}", e.message);

    // require: encrypted, nothing verified (any CA, any name).
    assert!(uses_tls(&format!("{}?sslmode=require", base("127.0.0.1"))).unwrap());
    // require with a root certificate checks the chain (libpq).
    assert!(uses_tls(&format!(
        "{}?sslmode=require&sslrootcert={other}",
        base("127.0.0.1")
    ))
    .is_err());
    // prefer (the default): TLS when the server offers it.
    assert!(uses_tls(&format!("{}?sslmode=prefer", base("127.0.0.1"))).unwrap());
    assert!(
        uses_tls(&base("127.0.0.1")).unwrap(),
        "prefer is the default"
    );
    // disable: plain.
    assert!(!uses_tls(&format!("{}?sslmode=disable", base("127.0.0.1"))).unwrap());
    // allow: plain first, TLS when the server insists (tlsonly rejects plain).
    let tlsonly =
        |mode: &str| format!("postgresql://tlsonly:tls_pw@127.0.0.1:{port}/{db}?sslmode={mode}");
    assert!(
        uses_tls(&tlsonly("allow")).unwrap(),
        "allow falls back to TLS"
    );
    assert!(uses_tls(&tlsonly("disable")).is_err());
    // An invalid mode names itself.
    let e = uses_tls(&format!("{}?sslmode=bogus", base("127.0.0.1"))).unwrap_err();
    assert_eq!(e.status, Status::InvalidOption, "{}", e.message);
    assert!(e.message.contains("sslmode"), "{}", e.message);

    // SCRAM channel binding over TLS.
    assert!(uses_tls(&format!(
        "{}?sslmode=require&channel_binding=require",
        base("127.0.0.1")
    ))
    .unwrap());
    assert!(
        uses_tls(&format!(
            "{}?sslmode=disable&channel_binding=require",
            base("127.0.0.1")
        ))
        .is_err(),
        "channel_binding=require cannot work without TLS"
    );

    // A client certificate (clientcert=verify-full through `cert` auth).
    let client = format!(
        "postgresql://certuser@localhost:{port}/{db}?sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
        d.join("client.crt").display(),
        d.join("client.key").display()
    );
    assert!(uses_tls(&client).unwrap(), "client certificate accepted");
    let e = uses_tls(&format!(
        "postgresql://certuser@localhost:{port}/{db}?sslmode=verify-full&sslrootcert={ca}"
    ))
    .unwrap_err();
    assert!(
        matches!(e.status, Status::AuthError | Status::ConnectionError),
        "{}",
        e.message
    );
    let e = uses_tls(&format!(
        "{}&sslcert={}",
        full,
        d.join("client.crt").display()
    ))
    .unwrap_err();
    assert_eq!(
        e.status,
        Status::InvalidOption,
        "sslcert without sslkey: {}",
        e.message
    );

    // PGSSLMODE and PGSSLROOTCERT apply when the URI says nothing.
    std::env::set_var("PGSSLMODE", "verify-full");
    std::env::set_var("PGSSLROOTCERT", &other);
    let e = uses_tls(&base("localhost")).unwrap_err();
    assert!(e.message.contains("trusted CA"), "{}", e.message);
    std::env::set_var("PGSSLROOTCERT", &ca);
    assert!(uses_tls(&base("localhost")).unwrap());
    std::env::set_var("PGSSLMODE", "disable");
    assert!(!uses_tls(&base("localhost")).unwrap());
    // The URI wins over the environment.
    assert!(uses_tls(&format!("{}?sslmode=require", base("localhost"))).unwrap());
    std::env::remove_var("PGSSLMODE");
    std::env::remove_var("PGSSLROOTCERT");
}
