//! PostgreSQL test harness for the integration tests.
//!
//! Use from an integration test with `mod common;` and
//! `use common::pg::PgServer;`.
//!
//! * [`PgServer::shared`] returns a server shared by all tests in the test
//!   process: the one named by `SQLPOOL_TEST_PG_URL` if that is set,
//!   otherwise one throwaway cluster started lazily on first use.
//! * [`PgServer::private`] returns a throwaway cluster owned by the caller,
//!   for fault tests that stop, restart or kill the server.
//!
//! Both return `None` (after printing why on stderr) when no PostgreSQL
//! server can be had, so tests can skip themselves; when the environment
//! variable `CI` is `"true"` they panic instead, so a broken CI setup never
//! turns into silently skipped tests.
//!
//! # Throwaway clusters
//!
//! The server binaries are taken from the highest-versioned
//! `/usr/lib/postgresql/*/bin` (or `pg_config --bindir`; `SQLPOOL_PG_BINDIR`
//! overrides both). A fresh cluster is made in a new directory under the temp
//! dir with `initdb --no-sync`, superuser `sqlpool` / password `sqlpool_pw`,
//! `trust` on the unix socket and `scram-sha-256` over TCP, and started with
//! `pg_ctl` on a free 127.0.0.1 port with `fsync=off`; then the database
//! `sqlpool_test` is created. When the test process runs as root, every
//! PostgreSQL binary is run as the `postgres` OS user (via `runuser`) and the
//! cluster directory (under `/tmp`) is owned by `postgres`.
//!
//! # Cleanup
//!
//! Cleanup of a cluster (`pg_ctl stop -m immediate`, then removing its
//! directory) happens on three paths:
//!
//! 1. A private cluster is cleaned up when its `PgServer` is dropped (the
//!    inner `Cluster`'s `Drop`).
//! 2. The shared cluster lives in a `static`, whose destructor never runs, so
//!    creating it registers a `libc::atexit` handler that cleans it up. The
//!    test harness's `main` returning, and `std::process::exit` (which libtest
//!    uses when a test failed), both go through `exit(3)`, which runs
//!    `atexit` handlers.
//! 3. As a fallback for deaths that skip both (SIGKILL, SIGINT from Ctrl-C,
//!    abort, a leaked `PgServer`), every cluster gets a small watchdog
//!    `sh` process, in its own process group so Ctrl-C does not reach it,
//!    that blocks reading a pipe whose only write end is held by the test
//!    process. When the test process dies the pipe reaches end-of-file and the
//!    watchdog stops the cluster and removes its directory. (Note that
//!    `pg_ctl` puts the postmaster in its own session, so without this a
//!    Ctrl-C'd test run would leave the server running.) After paths 1 and 2
//!    have done the cleanup they kill and reap the watchdog.
#![allow(dead_code)]

use std::ffi::CString;
use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable naming an existing server for [`PgServer::shared`].
pub const URL_ENV: &str = "SQLPOOL_TEST_PG_URL";
const USER: &str = "sqlpool";
const PASSWORD: &str = "sqlpool_pw";
const DBNAME: &str = "sqlpool_test";
const HOST: &str = "127.0.0.1";
/// Attempts at starting a new cluster, each on a newly picked port.
const START_ATTEMPTS: usize = 5;

/// A PostgreSQL server for tests.
pub struct PgServer {
    host: String,
    port: u16,
    user: String,
    password: String,
    dbname: String,
    /// Query string (including the leading `?`) of an external URL.
    query: String,
    kind: Kind,
}

enum Kind {
    /// A server named by `SQLPOOL_TEST_PG_URL`; holds that URL verbatim.
    External(String),
    /// A throwaway cluster made by this harness.
    Cluster { cluster: Cluster, private: bool },
}

static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();

impl PgServer {
    /// Shared server for ordinary tests.
    ///
    /// If `SQLPOOL_TEST_PG_URL` is set (and not empty) that server is used.
    /// Otherwise one throwaway cluster is started on first call and reused
    /// for the rest of the test process; an `atexit` handler stops it and
    /// removes its directory when the process exits (see the module docs).
    ///
    /// Returns `None` when no server is available, unless `CI` is `"true"`,
    /// in which case it panics.
    pub fn shared() -> Option<&'static PgServer> {
        let result = SHARED.get_or_init(|| match std::env::var(URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Ok(PgServer::external(url.trim())),
            _ => {
                let server = PgServer::new_cluster(false)?;
                // SAFETY: registering a plain `extern "C" fn()` is sound.
                unsafe { libc::atexit(shared_atexit) };
                Ok(server)
            }
        });
        match result {
            Ok(server) => Some(server),
            Err(why) => unavailable(why),
        }
    }

    /// A private throwaway cluster, for tests that stop, restart or kill the
    /// server. Never uses `SQLPOOL_TEST_PG_URL`. The cluster is stopped and
    /// its directory removed when the returned value is dropped.
    ///
    /// Returns `None` when no cluster can be made, unless `CI` is `"true"`,
    /// in which case it panics.
    pub fn private() -> Option<PgServer> {
        match PgServer::new_cluster(true) {
            Ok(server) => Some(server),
            Err(why) => unavailable(&why),
        }
    }

    /// Connection URL including user and password, e.g.
    /// `postgresql://sqlpool:sqlpool_pw@127.0.0.1:PORT/sqlpool_test`.
    pub fn url(&self) -> String {
        match &self.kind {
            Kind::External(url) => url.clone(),
            Kind::Cluster { .. } => self.url_with_password(&self.password),
        }
    }

    /// Host name or address to connect to over TCP.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// TCP port of the server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// User name (a superuser for throwaway clusters).
    pub fn user(&self) -> String {
        self.user.clone()
    }

    /// The user's password.
    pub fn password(&self) -> String {
        self.password.clone()
    }

    /// Name of the test database.
    pub fn dbname(&self) -> String {
        self.dbname.clone()
    }

    /// Like [`url`](Self::url) but with password `pw`, e.g. a wrong one
    /// for authentication-failure tests (SQLSTATE 28P01).
    pub fn url_with_password(&self, pw: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "postgresql://{}:{}@{}:{}/{}{}",
            pct_encode(&self.user),
            pct_encode(pw),
            host,
            self.port,
            pct_encode(&self.dbname),
            self.query
        )
    }

    /// Stops a private cluster (`pg_ctl stop -m fast`). Panics for shared
    /// servers. Stopping an already stopped cluster is a no-op.
    pub fn stop(&self) {
        let c = self.private_cluster("stop");
        let Some(pid) = c.postmaster_pid() else {
            return;
        };
        let out = c.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
        if !out.status.success() {
            panic!("pg_ctl stop failed: {}", c.describe_failure(&out));
        }
        wait_gone(&[pid], Duration::from_secs(10));
    }

    /// Starts a stopped (or killed) private cluster again on the same port.
    /// Panics for shared servers, or if the server does not come up within
    /// about 30 seconds. Starting a running cluster is a no-op.
    pub fn start(&self) {
        let c = self.private_cluster("start");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match c.start_once(c.port()) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("could not restart PostgreSQL on port {}: {e}", c.port())
                }
                // e.g. the port briefly still held, or lingering children of
                // a killed postmaster still attached to shared memory.
                Err(_) => sleep(Duration::from_millis(250)),
            }
        }
    }

    /// Kills the postmaster of a private cluster with SIGKILL, simulating a
    /// crash, and waits until it and all of its child processes are gone
    /// (children left running are SIGKILLed after 5 seconds), so that
    /// connections are dead and [`start`](Self::start) can follow at once.
    /// Panics for shared servers or when the server is not running.
    pub fn kill(&self) {
        let c = self.private_cluster("kill");
        let pid = c
            .postmaster_pid()
            .expect("PgServer::kill: the server is not running");
        // Freeze the postmaster so it cannot fork while its children are
        // collected, then kill it.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let children = children_of(pid);
        unsafe { libc::kill(pid, libc::SIGKILL) };
        if !wait_gone(&[pid], Duration::from_secs(10)) {
            panic!("PgServer::kill: postmaster {pid} did not die");
        }
        if !wait_gone(&children, Duration::from_secs(5)) {
            for &child in &children {
                unsafe { libc::kill(child, libc::SIGKILL) };
            }
            wait_gone(&children, Duration::from_secs(10));
        }
    }

    /// Runs `sql` with `psql` (as the superuser, over the unix socket, for
    /// throwaway clusters; with [`url`](Self::url) for an external server)
    /// and returns its standard output, trimmed. Output is unaligned and
    /// without headers: one line per row, columns separated by `|`.
    /// Panics if psql fails.
    pub fn psql(&self, sql: &str) -> String {
        let out = match &self.kind {
            Kind::External(url) => {
                let mut cmd = Command::new("psql");
                clear_pg_env(&mut cmd);
                cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
                    .arg(url)
                    .arg("-c")
                    .arg(sql);
                run(&mut cmd)
            }
            Kind::Cluster { cluster, .. } => cluster.psql(DBNAME, sql),
        };
        match out {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
            Ok(out) => panic!(
                "psql failed ({}) for {sql:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("could not run psql: {e}"),
        }
    }

    // ---------------------------------------------------------------------

    fn external(url: &str) -> PgServer {
        let p = parse_url(url).unwrap_or_else(|e| panic!("{URL_ENV}={url:?} is not usable: {e}"));
        PgServer {
            host: p.host,
            port: p.port,
            user: p.user,
            password: p.password,
            dbname: p.dbname,
            query: p.query,
            kind: Kind::External(url.to_string()),
        }
    }

    fn new_cluster(private: bool) -> Result<PgServer, String> {
        let cluster = Cluster::create()?;
        Ok(PgServer {
            host: HOST.to_string(),
            port: cluster.port(),
            user: USER.to_string(),
            password: PASSWORD.to_string(),
            dbname: DBNAME.to_string(),
            query: String::new(),
            kind: Kind::Cluster { cluster, private },
        })
    }

    /// Freezes every process of a private cluster with SIGSTOP: the server
    /// stops answering while its sockets stay open (a hung host).
    pub fn freeze(&self) {
        self.signal_all("freeze", libc::SIGSTOP);
    }

    /// Undoes [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        self.signal_all("thaw", libc::SIGCONT);
    }

    fn signal_all(&self, what: &str, signal: libc::c_int) {
        let c = self.private_cluster(what);
        let pid = c.postmaster_pid().expect("the server is not running");
        // The postmaster first, so it forks nothing new meanwhile.
        unsafe { libc::kill(pid, signal) };
        for child in children_of(pid) {
            unsafe { libc::kill(child, signal) };
        }
    }

    /// Turns TLS on in a private cluster and restarts it: `server.crt` and
    /// `server.key` (PEM) go into the data directory, `ca_pem` (if any)
    /// becomes `ssl_ca_file` (for client certificates), and `hba_lines`
    /// are put first in `pg_hba.conf`.
    pub fn enable_tls(
        &self,
        cert_pem: &str,
        key_pem: &str,
        ca_pem: Option<&str>,
        hba_lines: &[&str],
    ) {
        let c = self.private_cluster("enable_tls");
        let write = |name: &str, text: &str, mode: u32| {
            let path = c.data.join(name);
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            c.give_to_pg(&path).unwrap();
        };
        write("server.crt", cert_pem, 0o644);
        write("server.key", key_pem, 0o600);
        let mut conf =
            String::from("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        if let Some(ca) = ca_pem {
            write("root.crt", ca, 0o644);
            conf.push_str("ssl_ca_file = 'root.crt'\n");
        }
        let conf_path = c.data.join("postgresql.conf");
        let mut all = fs::read_to_string(&conf_path).unwrap();
        all.push_str(&conf);
        fs::write(&conf_path, all).unwrap();
        let hba_path = c.data.join("pg_hba.conf");
        let old = fs::read_to_string(&hba_path).unwrap();
        fs::write(&hba_path, format!("{}\n{old}", hba_lines.join("\n"))).unwrap();
        self.stop();
        self.start();
    }

    // ---------------------------------------------------------------------
    // Replication

    /// A streaming standby of the private cluster `primary`: a new private
    /// cluster made with `pg_basebackup -R -X stream` (over the primary's
    /// unix socket, which the default `pg_hba.conf` trusts for replication),
    /// started on a free 127.0.0.1 port, returned once it streams from the
    /// primary. Dropped like any private cluster (stopped, directory
    /// removed). `primary` must use the default `wal_level=replica`.
    ///
    /// Returns `None` when it cannot be made, unless `CI` is `"true"`, in
    /// which case it panics.
    pub fn standby_of(primary: &PgServer) -> Option<PgServer> {
        match PgServer::new_standby(primary) {
            Ok(server) => Some(server),
            Err(why) => unavailable(&why),
        }
    }

    fn new_standby(primary: &PgServer) -> Result<PgServer, String> {
        let p = primary.private_cluster("standby_of");
        let cluster = Cluster::create_empty()?;
        cluster.make_owned_dir(&cluster.sock)?;
        let out = cluster
            .pg_command("pg_basebackup")
            .arg("-D")
            .arg(&cluster.data)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-h"])
            .arg(&p.sock)
            .args(["-p", &p.port().to_string(), "-U", USER])
            .output()
            .map_err(|e| format!("could not run pg_basebackup: {e}"))?;
        if !out.status.success() {
            return Err(format!("pg_basebackup failed: {}", output_text(&out)));
        }
        cluster.start_on_free_port()?;
        let server = PgServer {
            host: HOST.to_string(),
            port: cluster.port(),
            user: USER.to_string(),
            password: PASSWORD.to_string(),
            dbname: DBNAME.to_string(),
            query: String::new(),
            kind: Kind::Cluster {
                cluster,
                private: true,
            },
        };
        server.wait_streaming(Duration::from_secs(30))?;
        Ok(server)
    }

    /// Waits until this standby's WAL receiver streams from its primary.
    pub fn wait_streaming(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let status =
                self.psql("SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), '')");
            if status == "streaming" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the standby is not streaming (status {status:?})"));
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server is in recovery (a standby).
    pub fn in_recovery(&self) -> bool {
        self.psql("SELECT pg_catalog.pg_is_in_recovery()") == "t"
    }

    /// Promotes a standby (`pg_ctl promote -w`): returns once it accepts
    /// writes.
    pub fn promote(&self) {
        let c = self.private_cluster("promote");
        let out = c.pg_ctl(&["-w", "-t", "60", "promote"]);
        if !out.status.success() {
            panic!("pg_ctl promote failed: {}", c.describe_failure(&out));
        }
    }

    /// Stops a private cluster the hard way (`pg_ctl stop -m immediate`):
    /// no checkpoint, clients see their connections drop — a crashed
    /// primary, for failover tests. A no-op when it is not running.
    pub fn stop_immediate(&self) {
        let c = self.private_cluster("stop_immediate");
        let Some(pid) = c.postmaster_pid() else {
            return;
        };
        let out = c.pg_ctl(&["-m", "immediate", "-w", "-t", "60", "stop"]);
        if !out.status.success() {
            panic!("pg_ctl stop failed: {}", c.describe_failure(&out));
        }
        wait_gone(&[pid], Duration::from_secs(10));
    }

    /// Whether the postmaster of a throwaway cluster runs.
    pub fn is_running(&self) -> bool {
        self.private_cluster("is_running")
            .postmaster_pid()
            .is_some()
    }

    fn private_cluster(&self, what: &str) -> &Cluster {
        match &self.kind {
            Kind::Cluster {
                cluster,
                private: true,
            } => cluster,
            _ => panic!("PgServer::{what} is only allowed on a PgServer::private() cluster"),
        }
    }
}

extern "C" fn shared_atexit() {
    // Never unwind out of an `extern "C"` function.
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(PgServer {
            kind: Kind::Cluster { cluster, .. },
            ..
        })) = SHARED.get()
        {
            cluster.teardown();
        }
    });
}

/// No server: the test fails, visibly (it never returns early as passed).
/// Without PostgreSQL, build the tests with `RUSTFLAGS="--cfg sqlpool_no_pg"`:
/// every PostgreSQL test is then reported as ignored.
fn unavailable<T>(why: &str) -> Option<T> {
    panic!(
        "no PostgreSQL server is available for this test: {why}. Install PostgreSQL \
         (initdb in /usr/lib/postgresql/*/bin), set SQLPOOL_TEST_PG_URL, or run the tests with \
         RUSTFLAGS=\"--cfg sqlpool_no_pg\" to report the PostgreSQL tests as ignored"
    )
}

// -------------------------------------------------------------------------
// Throwaway clusters

struct Cluster {
    bindir: PathBuf,
    /// Directory holding everything; removed on teardown.
    base: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    port: AtomicU16,
    /// `Some` when running as root: PostgreSQL binaries run as this user.
    as_user: Option<OsUser>,
    watchdog: Mutex<Option<Child>>,
    torn_down: AtomicBool,
}

struct OsUser {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl Cluster {
    fn create() -> Result<Cluster, String> {
        let cluster = Cluster::create_empty()?;
        cluster.init()?;
        Ok(cluster)
    }

    /// A cluster with its directory and watchdog but no data directory yet
    /// (`init` or a base backup makes it).
    fn create_empty() -> Result<Cluster, String> {
        become_subreaper();
        let bindir = find_bindir()?;
        let as_user = if unsafe { libc::geteuid() } == 0 {
            Some(lookup_user("postgres").ok_or(
                "running as root, but there is no `postgres` OS user to run PostgreSQL as",
            )?)
        } else {
            None
        };
        let base = make_base_dir(as_user.as_ref())?;
        let cluster = Cluster {
            data: base.join("data"),
            sock: base.join("sock"),
            log: base.join("postgres.log"),
            bindir,
            base,
            port: AtomicU16::new(0),
            as_user,
            watchdog: Mutex::new(None),
            torn_down: AtomicBool::new(false),
        };
        // From here on, dropping `cluster` (also on error) cleans up.
        cluster.spawn_watchdog()?;
        Ok(cluster)
    }

    fn init(&self) -> Result<(), String> {
        let base_s = self.base.to_str().ok_or("temp dir path is not UTF-8")?;
        if base_s.contains('\'') {
            return Err(format!("temp dir path {base_s:?} contains a quote"));
        }
        self.make_owned_dir(&self.sock)?;
        let pwfile = self.base.join("pwfile");
        fs::write(&pwfile, format!("{PASSWORD}\n")).map_err(|e| format!("write pwfile: {e}"))?;
        self.give_to_pg(&pwfile)?;

        let mut pwarg = std::ffi::OsString::from("--pwfile=");
        pwarg.push(&pwfile);
        let out = self
            .pg_command("initdb")
            .arg("-D")
            .arg(&self.data)
            .args([
                "-U",
                USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["--no-sync", "-E", "UTF8", "--locale=C"])
            .arg(&pwarg)
            .output()
            .map_err(|e| format!("could not run initdb: {e}"))?;
        let _ = fs::remove_file(&pwfile);
        if !out.status.success() {
            return Err(format!("initdb failed: {}", output_text(&out)));
        }

        self.start_on_free_port()?;

        let out = self
            .psql("postgres", &format!("CREATE DATABASE {DBNAME}"))
            .map_err(|e| format!("could not run psql: {e}"))?;
        if !out.status.success() {
            return Err(format!("CREATE DATABASE failed: {}", output_text(&out)));
        }
        Ok(())
    }

    /// Starts the server on a newly picked free port (a few attempts).
    fn start_on_free_port(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match self.start_once(port) {
                Ok(()) => {
                    self.port.store(port, Ordering::SeqCst);
                    break;
                }
                Err(e) => errors.push(format!("port {port}: {e}")),
            }
        }
        if self.port() == 0 {
            return Err(format!(
                "could not start PostgreSQL in {START_ATTEMPTS} attempts: {}",
                errors.join("; ")
            ));
        }
        Ok(())
    }

    fn port(&self) -> u16 {
        self.port.load(Ordering::SeqCst)
    }

    /// One `pg_ctl start` on `port`, waiting until the server accepts
    /// connections.
    fn start_once(&self, port: u16) -> Result<(), String> {
        if self.postmaster_pid().is_some() {
            return Ok(());
        }
        self.remove_stale_lock_files();
        let opts = format!(
            "-p {port} -k '{}' -c listen_addresses={HOST} -c max_connections=200 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.sock.display()
        );
        let out = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .map_err(|e| format!("could not run pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.describe_failure(&out))
        }
    }

    /// PID of the running postmaster, if any.
    fn postmaster_pid(&self) -> Option<libc::pid_t> {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let pid: libc::pid_t = text.lines().next()?.trim().parse().ok()?;
        // Guard against a stale pid file whose pid was reused.
        let is_postgres = match fs::read_to_string(format!("/proc/{pid}/comm")) {
            Ok(comm) => matches!(comm.trim(), "postgres" | "postmaster"),
            Err(_) => true,
        };
        (pid > 0 && alive(pid) && is_postgres).then_some(pid)
    }

    /// After a kill -9 the lock files stay behind. PostgreSQL normally copes
    /// with that, but not when the dead postmaster is an unreaped zombie
    /// (containers whose init does not reap), so remove them if stale.
    fn remove_stale_lock_files(&self) {
        let pidfile = self.data.join("postmaster.pid");
        if let Ok(text) = fs::read_to_string(&pidfile) {
            let pid: Option<libc::pid_t> = text.lines().next().and_then(|l| l.trim().parse().ok());
            if pid.map_or(true, |p| !alive(p)) {
                let _ = fs::remove_file(&pidfile);
                if let Ok(entries) = fs::read_dir(&self.sock) {
                    for e in entries.flatten() {
                        if e.file_name().to_string_lossy().ends_with(".lock") {
                            let _ = fs::remove_file(e.path());
                        }
                    }
                }
            }
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        self.pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("could not run pg_ctl: {e}"))
    }

    fn psql(&self, db: &str, sql: &str) -> std::io::Result<Output> {
        let mut cmd = self.pg_command("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.sock)
            .args([
                "-p",
                &self.port().to_string(),
                "-U",
                USER,
                "-d",
                db,
                "-c",
                sql,
            ]);
        run(&mut cmd)
    }

    /// A command for PostgreSQL binary `name`, run as `postgres` when root.
    fn pg_command(&self, name: &str) -> Command {
        let mut path = self.bindir.join(name);
        if name == "psql" && !path.exists() {
            path = PathBuf::from("psql");
        }
        let mut cmd = match &self.as_user {
            Some(u)
                if Path::new("/usr/sbin/runuser").exists()
                    || Path::new("/sbin/runuser").exists() =>
            {
                let mut c = Command::new("runuser");
                c.args(["-u", &u.name, "--"]).arg(&path);
                c
            }
            Some(u) => {
                // No runuser: switch user in the child directly (std also
                // drops root's supplementary groups then).
                let mut c = Command::new(&path);
                c.uid(u.uid).gid(u.gid);
                c
            }
            None => Command::new(&path),
        };
        clear_pg_env(&mut cmd);
        cmd.current_dir("/").stdin(Stdio::null());
        cmd
    }

    fn spawn_watchdog(&self) -> Result<(), String> {
        // $1 bindir, $2 data dir, $3 base dir, $4 user to run pg_ctl as.
        const SCRIPT: &str = r#"
trap '' HUP INT
while read -r _; do :; done
if [ -n "$4" ]; then
  runuser -u "$4" -- "$1/pg_ctl" -D "$2" -m immediate -w stop
else
  "$1/pg_ctl" -D "$2" -m immediate -w stop
fi
rm -rf "$3"
"#;
        let user = self
            .as_user
            .as_ref()
            .map_or(String::new(), |u| u.name.clone());
        let child = Command::new("/bin/sh")
            .args(["-c", SCRIPT, "sqlpool-pg-watchdog"])
            .arg(&self.bindir)
            .arg(&self.data)
            .arg(&self.base)
            .arg(user)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("could not spawn watchdog: {e}"))?;
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }

    /// Stops the server, removes the directory, disposes of the watchdog.
    /// Idempotent.
    fn teardown(&self) {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(pid) = self.postmaster_pid() {
            let _ = self
                .pg_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !wait_gone(&[pid], Duration::from_secs(5)) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                wait_gone(&[pid], Duration::from_secs(5));
            }
        }
        let _ = fs::remove_dir_all(&self.base);
        if let Some(mut child) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // The watchdog leads its own process group (blocked in the
            // `read` builtin, so it has no children); kill just that group.
            if let Ok(None) = child.try_wait() {
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            }
            let _ = child.wait();
        }
    }

    fn make_owned_dir(&self, dir: &Path) -> Result<(), String> {
        fs::create_dir(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
        self.give_to_pg(dir)
    }

    fn give_to_pg(&self, path: &Path) -> Result<(), String> {
        if let Some(u) = &self.as_user {
            chown(path, u)?;
        }
        Ok(())
    }

    fn describe_failure(&self, out: &Output) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "{}; server log tail:\n{}",
            output_text(out),
            tail.join("\n")
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

// -------------------------------------------------------------------------
// Helpers

fn find_bindir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("SQLPOOL_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if !dir.join("initdb").exists() {
            return Err(format!("SQLPOOL_PG_BINDIR={} has no initdb", dir.display()));
        }
        return Ok(dir);
    }
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let bin = e.path().join("bin");
            if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let version: Vec<u64> = name.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            if best.as_ref().map_or(true, |(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
    }
    if let Some((_, bin)) = best {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    Err("no PostgreSQL server binaries (initdb, pg_ctl) found in /usr/lib/postgresql/*/bin".into())
}

fn lookup_user(name: &str) -> Option<OsUser> {
    let cname = CString::new(name).ok()?;
    // SAFETY: getpwnam returns NULL or a pointer to a static passwd struct;
    // the fields are copied out at once. (Racy only against concurrent
    // getpw* calls, which tests do not make.)
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(OsUser {
            name: name.to_string(),
            uid: (*pw).pw_uid,
            gid: (*pw).pw_gid,
        })
    }
}

fn chown(path: &Path, u: &OsUser) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

/// A new, empty, mode-0700 directory for a cluster. As root it is made in
/// `/tmp` (every user can reach it, whatever TMPDIR says) and owned by
/// `postgres`.
fn make_base_dir(as_user: Option<&OsUser>) -> Result<PathBuf, String> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let parent = if as_user.is_some() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    for _ in 0..100 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "sqlpool-pg-{}-{}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = parent.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
                if let Some(u) = as_user {
                    if let Err(e) = chown(&dir, u) {
                        let _ = fs::remove_dir(&dir);
                        return Err(e);
                    }
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("create {}: {e}", dir.display())),
        }
    }
    Err("could not create a unique temp dir".into())
}

/// A port that was free a moment ago (bound and released).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((HOST, 0)).map_err(|e| format!("bind {HOST}:0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn clear_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

fn run(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null()).output()
}

fn output_text(out: &Output) -> String {
    let mut s = format!("{}", out.status);
    for stream in [&out.stderr, &out.stdout] {
        let text = String::from_utf8_lossy(stream);
        if !text.trim().is_empty() {
            let _ = write!(s, "; {}", text.trim());
        }
    }
    s
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: libc::pid_t) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ppid ..."; comm may contain spaces and parens.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) if Path::new("/proc/self/stat").exists() => false,
        // No procfs: fall back to kill(pid, 0).
        Err(_) => {
            let r = unsafe { libc::kill(pid, 0) };
            r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
    }
}

/// PIDs of the live children of `parent`.
fn children_of(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<libc::pid_t>().ok());
            if ppid == Some(parent) {
                out.push(pid);
            }
        }
    }
    out
}

/// Makes this process the reaper of its orphaned descendants (Linux
/// `PR_SET_CHILD_SUBREAPER`), once. `pg_ctl` daemonizes the postmaster, and
/// a postmaster killed with SIGKILL orphans its children; with this they are
/// reparented to the test process, so [`wait_gone`] can reap them at once
/// instead of leaving `<defunct>` zombies behind until init (which in some
/// containers never reaps) gets to them.
fn become_subreaper() {
    #[cfg(target_os = "linux")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0);
        });
    }
}

/// Waits until none of `pids` is alive, reaping those that are our
/// children (see [`become_subreaper`]); false on timeout.
fn wait_gone(pids: &[libc::pid_t], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // Still-running pids; each is waited for only until it has been reaped
    // or turns out not to be our child, so a recycled pid is never reaped.
    let mut pending: Vec<(libc::pid_t, bool)> = pids.iter().map(|&p| (p, true)).collect();
    loop {
        pending.retain_mut(|(pid, ours)| {
            if *ours {
                let mut status = 0;
                match unsafe { libc::waitpid(*pid, &mut status, libc::WNOHANG) } {
                    0 => return true,               // our child, still running
                    r if r == *pid => return false, // reaped
                    _ => *ours = false,             // not our child
                }
            }
            alive(*pid)
        });
        if pending.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
}

struct ParsedUrl {
    host: String,
    port: u16,
    user: String,
    password: String,
    dbname: String,
    query: String,
}

/// Parses `postgres[ql]://[user[:password]@][host][:port][/dbname][?query]`.
fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or("expected a postgresql:// URL")?;
    let (rest, query) = match rest.find('?') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, String::new()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..i], &authority[i + 1..]),
        None => ("", authority),
    };
    let (user, password) = match userinfo.find(':') {
        Some(i) => (pct_decode(&userinfo[..i])?, pct_decode(&userinfo[i + 1..])?),
        None => (pct_decode(userinfo)?, String::new()),
    };
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let end = h.find(']').ok_or("unterminated [ in host")?;
        (
            h[..end].to_string(),
            h[end + 1..].strip_prefix(':').unwrap_or(""),
        )
    } else {
        match hostport.rfind(':') {
            Some(i) => (hostport[..i].to_string(), &hostport[i + 1..]),
            None => (hostport.to_string(), ""),
        }
    };
    if host.contains(',') {
        return Err("multiple hosts are not supported".into());
    }
    let port = if port.is_empty() {
        5432
    } else {
        port.parse().map_err(|_| format!("bad port {port:?}"))?
    };
    let user = if user.is_empty() {
        std::env::var("USER").unwrap_or_else(|_| "postgres".into())
    } else {
        user
    };
    let dbname = if path.is_empty() {
        user.clone()
    } else {
        pct_decode(path)?
    };
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        pct_decode(&host)?
    };
    Ok(ParsedUrl {
        host,
        port,
        user,
        password,
        dbname,
        query,
    })
}

fn pct_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("bad escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
