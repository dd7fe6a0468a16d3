//! Real PgBouncer (Debian's package) in transaction mode in front of a
//! throwaway cluster: with `statement_cache_size=0` the engine's unnamed
//! statements (Parse/Bind/Execute/Sync in one round trip) must work for
//! every query, whichever server connection PgBouncer picks.

mod common;

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;

/// PgBouncer's binary (Debian's `pgbouncer` package; `.ci/run` installs
/// it, `make test` installs nothing). `None` (skip) only outside CI.
fn pgbouncer() -> Option<PathBuf> {
    let found = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pgbouncer is not installed (CI=true: failing; .ci/run installs it)"
        );
        // Straight to stderr: libtest would swallow eprintln! of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: pgbouncer not found (install the pgbouncer package)"
        );
    }
    found
}

struct Bouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `postgres` OS user's ids when running as root (PgBouncer refuses
/// to run as root).
fn postgres_ids() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "running as root without a postgres user");
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn start_bouncer(binary: &Path, pg: &PgServer) -> Bouncer {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::write(
        d.join("userlist.txt"),
        format!("\"{}\" \"{}\"\n", pg.user(), pg.password()),
    )
    .unwrap();
    std::fs::write(
        d.join("pgbouncer.ini"),
        format!(
            "[databases]\n{db} = host=127.0.0.1 port={pgport} dbname={db}\n\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 3\n\
             server_reset_query =\nlogfile = {dir}/pgbouncer.log\n",
            db = pg.dbname(),
            pgport = pg.port(),
            dir = d.display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(binary);
    cmd.arg(d.join("pgbouncer.ini"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = postgres_ids() {
        for f in ["", "userlist.txt", "pgbouncer.ini"] {
            let path = d.join(f);
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        cmd.uid(uid).gid(gid);
    }
    let child = cmd.spawn().expect("start pgbouncer");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pgbouncer did not start: {}",
            std::fs::read_to_string(d.join("pgbouncer.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Bouncer {
        child,
        port,
        _dir: dir,
    }
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn transaction_mode_pgbouncer_with_the_cache_off() {
    let Some(binary) = pgbouncer() else { return };
    let Some(pg) = PgServer::private() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    pg.psql("CREATE TABLE bounced (id int PRIMARY KEY, n int NOT NULL, note text)");
    let bouncer = start_bouncer(&binary, &pg);
    let uri = format!(
        "postgresql://{}:{}@127.0.0.1:{}/{}?statement_cache_size=0&max_size=8&sslmode=disable",
        pg.user(),
        pg.password(),
        bouncer.port,
        pg.dbname()
    );
    let pool = Send(open(&uri));
    let pool = Arc::new(pool);
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            let errors = errors.clone();
            let first_error = first_error.clone();
            std::thread::spawn(move || {
                let fail = |what: &str, e: Failure| {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| format!("{what}: {}", e.message));
                };
                for i in 0..1000i64 {
                    let conn = acquire(pool.0);
                    let id = t * 1000 + i;
                    match i % 4 {
                        0 => {
                            if let Err(e) = exec(
                                conn,
                                "INSERT INTO bounced (id, n, note) VALUES (:id, :n, :note)",
                                &[
                                    named("id", P::I(id)),
                                    named("n", P::I(i)),
                                    named("note", P::T("x")),
                                ],
                            ) {
                                fail("insert", e);
                            }
                        }
                        1 => match query(conn, "SELECT :a::int + :b AS s", &[named("a", P::I(i)), named("b", P::I(1))]) {
                            Ok(rows) if rows == vec![vec![V::I(i + 1)]] => {}
                            Ok(rows) => fail("select", Failure {
                                status: sqlpool::Status::Internal,
                                message: format!("wrong rows {rows:?}"),
                                sqlstate: String::new(),
                                native: 0,
                            }),
                            Err(e) => fail("select", e),
                        },
                        2 => {
                            // A transaction: PgBouncer pins one server to it.
                            let r = check(sqlpool_conn_begin(conn, 0, 0))
                                .and_then(|()| {
                                    exec(conn, "UPDATE bounced SET n = n + 1 WHERE id = $1", &[P::I(id - 2)])
                                })
                                .and_then(|_| query(conn, "SELECT n FROM bounced WHERE id = $1", &[P::I(id - 2)]))
                                .and_then(|_| check(sqlpool_conn_commit(conn)));
                            if let Err(e) = r {
                                fail("transaction", e);
                            }
                        }
                        _ => {
                            if let Err(e) = query(conn, "SELECT id, note FROM bounced WHERE id <= $1 ORDER BY id DESC LIMIT 3", &[P::I(id)]) {
                                fail("range", e);
                            }
                        }
                    }
                    release(conn);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "first error: {:?}",
        first_error.lock().unwrap()
    );
    let conn = acquire(pool.0);
    assert_eq!(scalar(conn, "SELECT count(*) FROM bounced"), V::I(2000));
    assert_eq!(
        scalar(
            conn,
            "SELECT count(*) FROM bounced WHERE n = (id % 1000) + 1"
        ),
        V::I(2000),
        "every row updated exactly once"
    );
    release(conn);
    close(pool.0);
    drop(bouncer);
}
