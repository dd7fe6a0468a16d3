//! Issue 18: multi-host targets on real replication. Each test makes its own
//! throwaway primary and streaming standbys (`pg_basebackup -R`, free
//! loopback ports, removed afterwards), then stops, promotes and
//! reconfigures them under running pools.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::capi::*;
use common::pg::PgServer;
use sqlpool::Status;

/// `postgresql://user:pw@h1:p1,h2:p2/db?query`.
fn multi_url(servers: &[&PgServer], query: &str) -> String {
    let first = servers[0];
    let hosts: Vec<String> = servers
        .iter()
        .map(|s| format!("{}:{}", s.host(), s.port()))
        .collect();
    format!(
        "postgresql://{}:{}@{}/{}?{query}",
        first.user(),
        first.password(),
        hosts.join(","),
        first.dbname()
    )
}

/// The port of the server a connection is on.
fn server_port(conn: *mut sqlpool::ffi::sqlpool_conn) -> u16 {
    match scalar(conn, "SELECT inet_server_port()") {
        V::I(p) => p as u16,
        other => panic!("inet_server_port: {other:?}"),
    }
}

fn in_recovery(conn: *mut sqlpool::ffi::sqlpool_conn) -> bool {
    scalar(conn, "SELECT pg_is_in_recovery()") == V::Bool(true)
}

/// A primary and one streaming standby, or `None` (skipped visibly; a
/// failure with `CI=true`).
fn pair() -> Option<(PgServer, PgServer)> {
    let primary = PgServer::private()?;
    let standby = PgServer::standby_of(&primary)?;
    Some((primary, standby))
}

/// One write of the failover test, as its thread saw it.
enum Outcome {
    Committed {
        id: i64,
        at: Instant,
    },
    Failed {
        status: Status,
        sqlstate: String,
        message: String,
        took: Duration,
    },
}

#[test]
fn writer_pool_follows_the_promoted_standby() {
    let Some((primary, standby)) = pair() else {
        return;
    };
    primary.psql("CREATE TABLE writes (id bigint PRIMARY KEY, writer int NOT NULL)");
    // Synchronous replication: a COMMIT that returned OK is on the standby,
    // so a failover loses none (with asynchronous replication the last
    // commits before a crash may be lost — the server's rule, not the
    // pool's).
    primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'");
    primary.psql("SELECT pg_reload_conf()");
    const THREADS: i64 = 8;
    let query_timeout = Duration::from_secs(3);
    let acquire_timeout = Duration::from_secs(5);
    let pool = Send(open(&multi_url(
        &[&primary, &standby],
        &format!(
            "target_session_attrs=read-write&min_size=2&max_size={THREADS}&connect_timeout=2\
             &query_timeout={}s&acquire_timeout={}s\
             &options=-c%20synchronous_commit%3Don",
            query_timeout.as_secs(),
            acquire_timeout.as_secs()
        ),
    )));
    // Every connection is on the primary.
    let conn = acquire(pool.0);
    assert_eq!(server_port(conn), primary.port());
    release(conn);

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            std::thread::spawn(move || {
                let pool = pool;
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let id = t * 1_000_000 + n;
                    let started = Instant::now();
                    let r = try_acquire(pool.0, -1).and_then(|conn| {
                        let r = exec(
                            conn,
                            "INSERT INTO writes (id, writer) VALUES ($1, $2)",
                            &[P::I(id), P::I(t)],
                        );
                        release(conn);
                        r
                    });
                    let outcome = match r {
                        Ok(_) => Outcome::Committed {
                            id,
                            at: Instant::now(),
                        },
                        Err(f) => Outcome::Failed {
                            status: f.status,
                            sqlstate: f.sqlstate,
                            message: f.message,
                            took: started.elapsed(),
                        },
                    };
                    outcomes.lock().unwrap().push(outcome);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(1));
    primary.stop_immediate();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let promoting = Instant::now();
    standby.promote();
    let promoted = Instant::now();
    // Writes go on for a while on the new primary.
    let deadline = promoted + Duration::from_secs(10);
    let first_after = loop {
        let first = outcomes.lock().unwrap().iter().find_map(|o| match o {
            Outcome::Committed { at, .. } if *at > promoting => Some(*at),
            _ => None,
        });
        if let Some(at) = first {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "no write succeeded after the promotion"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());

    let to_first_write = first_after.saturating_duration_since(promoted);
    eprintln!(
        "failover: primary stopped, promotion {:?} later took {:?}; first write {:?} after \
         pg_ctl promote returned ({:?} after it was called)",
        promoting - stopped,
        promoted - promoting,
        to_first_write,
        first_after - promoting
    );
    assert!(
        to_first_write < Duration::from_secs(5),
        "writes resumed {to_first_write:?} after the promotion"
    );

    // Failures: connection errors or acquire timeouts, each within its
    // bound; none from a standby refusing a write.
    let bound = query_timeout + acquire_timeout + Duration::from_secs(2);
    let mut failed = 0;
    for o in &outcomes {
        if let Outcome::Failed {
            status,
            sqlstate,
            message,
            took,
        } = o
        {
            failed += 1;
            assert_ne!(sqlstate, "25006", "a write went to a standby: {message}");
            assert!(
                matches!(
                    status,
                    Status::ConnectionError | Status::PoolTimeout | Status::QueryTimeout
                ),
                "{status:?} {sqlstate} {message}"
            );
            assert!(*took < bound, "a write hung for {took:?}: {message}");
        }
    }
    // No committed row is lost: each is on the new primary.
    let committed: BTreeSet<i64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Committed { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let on_new_primary: BTreeSet<i64> = standby
        .psql("SELECT id FROM writes")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let lost: Vec<_> = committed.difference(&on_new_primary).collect();
    assert!(
        lost.is_empty(),
        "{} committed rows lost: {lost:?}",
        lost.len()
    );
    eprintln!(
        "failover: {} writes committed, {failed} failed during the failover",
        committed.len()
    );
    assert!(!standby.in_recovery());
    let conn = acquire(pool.0);
    assert_eq!(server_port(conn), standby.port());
    release(conn);
    // Per-host counts: every open connection is on the new primary.
    let stats = host_stats(pool.0);
    eprintln!("failover: connections per host {stats:?}");
    let of = |s: &PgServer| stats.iter().find(|h| h.0 == label(s)).cloned();
    let (_, open_old, opened_old) = of(&primary).expect("connections were made to the primary");
    let (_, open_new, _) = of(&standby).expect("connections were made to the new primary");
    assert_eq!(open_old, 0);
    assert!(opened_old >= 2 && open_new >= 1, "{stats:?}");
    close(pool.0);
}

#[test]
fn session_attrs_pick_the_server_libpq_would() {
    let Some((primary, standby)) = pair() else {
        return;
    };
    let lands_on = |servers: &[&PgServer], attrs: &str| -> Result<u16, String> {
        let url = multi_url(
            servers,
            &format!("target_session_attrs={attrs}&min_size=0&max_size=1&connect_timeout=2"),
        );
        let pool = open_with(&url, &[]).map_err(|f| f.message)?;
        let port = try_acquire(pool, 5_000).map(|conn| {
            let p = server_port(conn);
            release(conn);
            p
        });
        close(pool);
        port.map_err(|f| f.message)
    };
    let (p, s) = (primary.port(), standby.port());
    for order in [[&primary, &standby], [&standby, &primary]] {
        let first = order[0].port();
        assert_eq!(lands_on(&order, "any"), Ok(first));
        assert_eq!(lands_on(&order, "read-write"), Ok(p));
        assert_eq!(lands_on(&order, "primary"), Ok(p));
        assert_eq!(lands_on(&order, "read-only"), Ok(s));
        assert_eq!(lands_on(&order, "standby"), Ok(s));
        assert_eq!(lands_on(&order, "prefer-standby"), Ok(s));
    }
    // libpq's other spellings of a host list: host= and port= lists in the
    // query, and a conninfo string.
    let attrs_of = |url: &str| {
        let pool = open(url);
        let conn = acquire(pool);
        let port = server_port(conn);
        release(conn);
        close(pool);
        port
    };
    assert_eq!(
        attrs_of(&format!(
            "postgresql://sqlpool:sqlpool_pw@/sqlpool_test?host=127.0.0.1,127.0.0.1\
             &port={s},{p}&target_session_attrs=primary"
        )),
        p
    );
    assert_eq!(
        attrs_of(&format!(
            "host=127.0.0.1,127.0.0.1 port={p},{s} user=sqlpool password='sqlpool_pw' \
             dbname=sqlpool_test target_session_attrs=standby"
        )),
        s
    );
    // Alone, each server fits only its kind; prefer-standby takes the
    // primary when there is no standby.
    assert_eq!(lands_on(&[&primary], "prefer-standby"), Ok(p));
    let e = lands_on(&[&primary], "standby").unwrap_err();
    assert!(e.contains("not a standby"), "{e}");
    let e = lands_on(&[&primary], "read-only").unwrap_err();
    assert!(e.contains("not a read-only server"), "{e}");
    let e = lands_on(&[&standby], "read-write").unwrap_err();
    assert!(e.contains("not a read-write server"), "{e}");
    let e = lands_on(&[&standby], "primary").unwrap_err();
    assert!(e.contains("not a primary"), "{e}");
    // read-only is not standby: a primary whose sessions default to
    // read-only is read-only, and still a primary.
    primary.psql("ALTER DATABASE sqlpool_test SET default_transaction_read_only = on");
    assert_eq!(lands_on(&[&primary, &standby], "read-only"), Ok(p));
    assert_eq!(lands_on(&[&primary, &standby], "primary"), Ok(p));
    assert_eq!(lands_on(&[&primary, &standby], "standby"), Ok(s));
    let e = lands_on(&[&primary], "read-write").unwrap_err();
    assert!(e.contains("not a read-write server"), "{e}");
    primary.psql(
        "SET TRANSACTION READ WRITE; ALTER DATABASE sqlpool_test RESET default_transaction_read_only",
    );
    assert_eq!(lands_on(&[&primary], "read-write"), Ok(p));
}

#[test]
fn reader_pool_prefers_the_standby_and_falls_back_to_the_primary() {
    let Some((primary, standby)) = pair() else {
        return;
    };
    let pool = open(&multi_url(
        &[&primary, &standby],
        "target_session_attrs=prefer-standby&load_balance_hosts=random\
         &min_size=3&max_size=3&connect_timeout=2&acquire_timeout=5s",
    ));
    for _ in 0..20 {
        let conn = acquire(pool);
        assert!(in_recovery(conn), "a read went to the primary");
        release(conn);
    }
    standby.stop_immediate();
    // Reads work again at once (a connection found dead is replaced on a
    // server that answers).
    let started = Instant::now();
    let mut served = 0;
    while served < 20 {
        let conn = try_acquire(pool, 5_000)
            .unwrap_or_else(|f| panic!("no connection without the standby: {}", f.message));
        match query(conn, "SELECT pg_is_in_recovery()", &[]) {
            Ok(rows) => {
                assert_eq!(rows[0][0], V::Bool(false));
                served += 1;
            }
            Err(f) => assert_eq!(f.status, Status::ConnectionError, "{}", f.message),
        }
        release(conn);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(!standby.is_running());
    close(pool);
}

#[test]
fn load_balancing_spreads_connections_over_two_standbys() {
    let Some(primary) = PgServer::private() else {
        return;
    };
    let (Some(a), Some(b)) = (
        PgServer::standby_of(&primary),
        PgServer::standby_of(&primary),
    ) else {
        return;
    };
    let url = multi_url(
        &[&a, &b],
        "load_balance_hosts=random&target_session_attrs=standby&min_size=1&max_size=1",
    );
    let mut counts: HashMap<u16, u32> = HashMap::new();
    const CONNECTIONS: u32 = 200;
    for _ in 0..CONNECTIONS {
        let pool = open(&url);
        let conn = acquire(pool);
        *counts.entry(server_port(conn)).or_default() += 1;
        release(conn);
        close(pool);
    }
    eprintln!("load_balance_hosts=random: {counts:?}");
    for s in [&a, &b] {
        let n = counts.get(&s.port()).copied().unwrap_or(0);
        assert!(
            (CONNECTIONS * 3 / 10..=CONNECTIONS * 7 / 10).contains(&n),
            "{n} of {CONNECTIONS} connections went to port {}: {counts:?}",
            s.port()
        );
    }
}

/// `sqlpool_pool_host_stats` parsed: host → (open, opened).
fn host_stats(pool: *mut sqlpool::ffi::sqlpool_pool) -> Vec<(String, u64, u64)> {
    use sqlpool::ffi::sqlpool_pool_host_stats;
    let mut len = 0usize;
    ok(unsafe { sqlpool_pool_host_stats(pool, std::ptr::null_mut(), 0, &mut len) });
    let mut buf = vec![0u8; len + 256];
    let mut written = 0usize;
    ok(unsafe { sqlpool_pool_host_stats(pool, buf.as_mut_ptr().cast(), buf.len(), &mut written) });
    assert_eq!(buf[written], 0);
    let json: serde_json::Value = serde_json::from_slice(&buf[..written]).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_owned(),
                h["open"].as_u64().unwrap(),
                h["opened"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn label(s: &PgServer) -> String {
    format!("{}:{}", s.host(), s.port())
}

#[test]
fn a_server_turned_read_only_loses_the_writer_pool_to_the_next_host() {
    // Two independent primaries: the first turns read-only (as an old
    // primary fenced off by a failover tool does).
    let (Some(a), Some(b)) = (PgServer::private(), PgServer::private()) else {
        return;
    };
    for s in [&a, &b] {
        s.psql("CREATE TABLE t (id int)");
    }
    let pool = open(&multi_url(
        &[&a, &b],
        "target_session_attrs=read-write&min_size=2&max_size=2&acquire_timeout=5s",
    ));
    let conn = acquire(pool);
    assert_eq!(server_port(conn), a.port());
    release(conn);
    let stats = host_stats(pool);
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0].0, label(&a));
    a.psql("ALTER SYSTEM SET default_transaction_read_only = on");
    a.psql("SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(200));
    // A write reaching the read-only server is refused (25006) and costs
    // its connection; later writes go to `b`.
    let mut refused = 0;
    for i in 0..10 {
        let conn = acquire(pool);
        match exec(conn, "INSERT INTO t VALUES ($1)", &[P::I(i)]) {
            Ok(_) => assert_eq!(server_port(conn), b.port()),
            Err(f) => {
                assert_eq!(f.sqlstate, "25006", "{}", f.message);
                refused += 1;
            }
        }
        release(conn);
    }
    assert!(refused <= 2, "{refused} writes refused");
    assert_eq!(a.psql("SELECT count(*) FROM t"), "0");
    assert_eq!(b.psql("SELECT count(*) FROM t"), (10 - refused).to_string());
    let stats = host_stats(pool);
    let on = |s: &PgServer| stats.iter().find(|h| h.0 == label(s)).map(|h| h.1);
    assert_eq!(on(&a), Some(0), "{stats:?}");
    assert_eq!(on(&b), Some(2), "{stats:?}");
    close(pool);
}

#[test]
fn a_standby_pool_leaves_a_promoted_standby() {
    let Some(primary) = PgServer::private() else {
        return;
    };
    let (Some(s1), Some(s2)) = (
        PgServer::standby_of(&primary),
        PgServer::standby_of(&primary),
    ) else {
        return;
    };
    let pool = open(&multi_url(
        &[&s1, &s2],
        "target_session_attrs=standby&min_size=2&max_size=2&acquire_timeout=5s",
    ));
    let conn = acquire(pool);
    assert_eq!(server_port(conn), s1.port());
    release(conn);
    s1.promote();
    // The promotion reaches each session as a parameter change at its next
    // round trip; from then on the pool reads from `s2`.
    let started = Instant::now();
    let mut on_s2 = 0;
    while on_s2 < 10 {
        let conn = acquire(pool);
        match query(conn, "SELECT pg_is_in_recovery(), inet_server_port()", &[]) {
            Ok(rows) if rows[0][0] == V::Bool(true) => {
                assert_eq!(rows[0][1], V::I(s2.port() as i64));
                on_s2 += 1;
            }
            Ok(_) => {}
            Err(f) => panic!("{:?} {}", f.status, f.message),
        }
        release(conn);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the pool stayed on the promoted server"
        );
    }
    let stats = host_stats(pool);
    let open_on = |s: &PgServer| stats.iter().find(|h| h.0 == label(s)).map_or(0, |h| h.1);
    assert_eq!(open_on(&s1), 0, "{stats:?}");
    assert!(open_on(&s2) >= 1, "{stats:?}");
    close(pool);
}
