//! Opening a PostgreSQL connection: host selection (libpq's host lists,
//! `target_session_attrs`, `load_balance_hosts`), TCP with keepalives, TLS
//! negotiation and startup — all of it bounded by `connect_timeout` per
//! host tried.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rustls::ClientConfig;
use tokio_postgres::config::{Host, SslMode as CrateSslMode};

use super::net::{Deadline, PgSocket, Tap, Tapped, TAP_RAW, TAP_TLS};
use super::tls::Connector;
use super::{map_error, Driver, PgConnection};
use crate::config::{PgTarget, SessionAttrs, SslMode};
use crate::error::{redact_secrets, Error, Result, Status};

/// Where a connection (and its cancel requests) go.
#[derive(Clone, Debug)]
pub enum Endpoint {
    Tcp { addr: SocketAddr, host: String },
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { addr, host } if host == &addr.ip().to_string() => {
                write!(f, "{addr}")
            }
            Endpoint::Tcp { addr, host } => write!(f, "{host}:{} ({})", addr.port(), addr.ip()),
            Endpoint::Unix(path) => write!(f, "socket {}", path.display()),
        }
    }
}

impl Endpoint {
    /// The server as the host list names it (`host:port`, or the socket
    /// path): the key of the pool's per-host counts.
    pub fn host_label(&self) -> String {
        match self {
            Endpoint::Tcp { addr, host } if host.contains(':') => {
                format!("[{host}]:{}", addr.port())
            }
            Endpoint::Tcp { addr, host } => format!("{host}:{}", addr.port()),
            Endpoint::Unix(path) => path.display().to_string(),
        }
    }
}

impl super::PgConn {
    /// The server this connection is on.
    pub fn endpoint(&self) -> &Endpoint {
        &self.cancel.endpoint
    }

    /// Whether the server still fits `wanted`, from what it last reported
    /// (PostgreSQL 14+ reports `in_hot_standby` and
    /// `default_transaction_read_only` whenever they change, e.g. on
    /// promotion or a reload): no round trip. `None` when the server does
    /// not report them.
    pub fn still_fits(&self, wanted: SessionAttrs) -> Option<bool> {
        let reported = |name: &str| self.driver.parameter(name).map(|v| v == "on");
        let in_recovery = reported("in_hot_standby")?;
        let read_only = reported("default_transaction_read_only").unwrap_or(false) || in_recovery;
        Some(fits(wanted, read_only, in_recovery))
    }
}

/// libpq's rule for `target_session_attrs`.
fn fits(wanted: SessionAttrs, read_only: bool, in_recovery: bool) -> bool {
    match wanted {
        SessionAttrs::Any | SessionAttrs::PreferStandby => true,
        SessionAttrs::ReadWrite => !read_only,
        SessionAttrs::ReadOnly => read_only,
        SessionAttrs::Primary => !in_recovery,
        SessionAttrs::Standby => in_recovery,
    }
}

impl PgTarget {
    /// How many hosts the target lists (more than one: it can fail over).
    pub fn host_count(&self) -> usize {
        host_list(self).len()
    }
}

/// A started connection, before the engine wraps it.
pub struct Opened {
    pub client: tokio_postgres::Client,
    pub driver: Driver,
    pub endpoint: Endpoint,
    pub tls: Option<Arc<ClientConfig>>,
    pub tls_used: bool,
}

/// One host of the target's list, with its port.
struct HostPort {
    host: Host,
    /// `hostaddr`: connect here, keep `host` for TLS names and messages.
    addr: Option<IpAddr>,
    port: u16,
}

fn host_list(target: &PgTarget) -> Vec<HostPort> {
    let config = &target.config;
    let ports = config.get_ports();
    let port_for = |i: usize| match ports.len() {
        0 => 5432,
        1 => ports[0],
        _ => ports.get(i).copied().unwrap_or(5432),
    };
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let count = hosts.len().max(addrs.len()).max(1);
    (0..count)
        .map(|i| HostPort {
            host: hosts.get(i).cloned().unwrap_or_else(|| {
                Host::Tcp(
                    addrs
                        .get(i)
                        .map_or_else(|| "localhost".to_owned(), IpAddr::to_string),
                )
            }),
            addr: addrs.get(i).copied(),
            port: port_for(i),
        })
        .collect()
}

fn describe(hp: &HostPort) -> String {
    match &hp.host {
        Host::Tcp(name) => format!("{name}:{}", hp.port),
        Host::Unix(dir) => format!("socket {}/.s.PGSQL.{}", dir.display(), hp.port),
    }
}

/// Connects to the first host of the list that answers and fits
/// `target_session_attrs`, each attempt bounded by `connect_timeout`.
pub async fn connect(
    target: &PgTarget,
    tls: Option<Arc<ClientConfig>>,
    connect_timeout: Duration,
) -> Result<Opened> {
    let mut hosts = host_list(target);
    if target.load_balance_hosts {
        hosts.shuffle(&mut rand::thread_rng());
    }
    let passes: &[Option<SessionAttrs>] = match target.target_session_attrs {
        // First a standby; failing that, any server.
        SessionAttrs::PreferStandby => &[Some(SessionAttrs::Standby), Some(SessionAttrs::Any)],
        other => &[Some(other)],
    };
    let mut failures: Vec<String> = Vec::new();
    let mut last: Option<Error> = None;
    for wanted in passes.iter().flatten() {
        for hp in &hosts {
            let started = Instant::now();
            let deadline = (!connect_timeout.is_zero()).then(|| started + connect_timeout);
            match connect_host(target, tls.clone(), hp, *wanted, deadline).await {
                Ok(opened) => return Ok(opened),
                Err(e) => {
                    failures.push(format!("{}: {}", describe(hp), e.message));
                    // Credentials or a missing database are the same on
                    // every host: say so at once.
                    let fatal = matches!(e.status, Status::AuthError | Status::InvalidOption)
                        || matches!(e.sqlstate.as_deref(), Some("3D000"));
                    last = Some(e);
                    if fatal {
                        break;
                    }
                }
            }
        }
        if last
            .as_ref()
            .is_some_and(|e| matches!(e.status, Status::AuthError | Status::InvalidOption))
        {
            break;
        }
    }
    let mut err = last.unwrap_or_else(|| Error::new(Status::ConnectionError, "no host to try"));
    err.message = if failures.len() == 1 {
        format!("cannot connect to {}", failures[0])
    } else {
        format!("cannot connect to any host: {}", failures.join("; "))
    };
    Err(err)
}

async fn connect_host(
    target: &PgTarget,
    tls: Option<Arc<ClientConfig>>,
    hp: &HostPort,
    wanted: SessionAttrs,
    deadline: Option<Instant>,
) -> Result<Opened> {
    let attempt = async {
        let (socket, endpoint) = open_socket(target, hp).await?;
        let tls_allowed = tls.is_some() && !matches!(endpoint, Endpoint::Unix(_));
        let first_mode = match target.ssl_mode {
            _ if !tls_allowed => CrateSslMode::Disable,
            SslMode::Disable | SslMode::Allow => CrateSslMode::Disable,
            SslMode::Prefer => CrateSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => CrateSslMode::Require,
        };
        if !tls_allowed
            && matches!(
                target.ssl_mode,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
            )
        {
            return Err(Error::new(
                Status::ConnectionError,
                format!(
                    "sslmode={} needs TLS, which a Unix socket does not offer; connect over TCP",
                    target.ssl_mode.name()
                ),
            ));
        }
        match start(target, &tls, hp, socket, endpoint.clone(), first_mode).await {
            // `allow`: plain first; TLS if the server insists.
            Err(_) if target.ssl_mode == SslMode::Allow && tls_allowed => {
                let (socket, endpoint) = open_socket(target, hp).await?;
                start(target, &tls, hp, socket, endpoint, CrateSslMode::Require).await
            }
            other => other,
        }
    };
    let mut opened = with_deadline(attempt, deadline, || {
        Error::new(
            Status::ConnectionError,
            "timed out (connect_timeout) before the server finished the connection start-up",
        )
        .with_sqlstate("08001")
    })
    .await?;
    if wanted != SessionAttrs::Any {
        let check = session_fits(&mut opened, wanted);
        with_deadline(check, deadline, || {
            Error::new(
                Status::ConnectionError,
                "timed out (connect_timeout) checking target_session_attrs",
            )
        })
        .await?;
    }
    Ok(opened)
}

/// Runs `fut`, failing with `timeout()` at `deadline`.
pub async fn with_deadline<T>(
    fut: impl Future<Output = Result<T>>,
    deadline: Option<Instant>,
    timeout: impl FnOnce() -> Error,
) -> Result<T> {
    let mut fut = std::pin::pin!(fut);
    let Some(at) = deadline else {
        return fut.await;
    };
    let mut timer = std::pin::pin!(Deadline::at(at));
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(v));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
    .unwrap_or_else(|| Err(timeout()))
}

async fn open_socket(target: &PgTarget, hp: &HostPort) -> Result<(PgSocket, Endpoint)> {
    let host_name = match &hp.host {
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", hp.port));
            let stream = std::os::unix::net::UnixStream::connect(&path)
                .map_err(|e| connect_error(&e.to_string()))?;
            let socket = PgSocket::unix(stream).map_err(|e| connect_error(&e.to_string()))?;
            return Ok((socket, Endpoint::Unix(path)));
        }
        Host::Tcp(name) => name.clone(),
    };
    let addrs: Vec<SocketAddr> = match hp.addr {
        Some(ip) => vec![SocketAddr::new(ip, hp.port)],
        // Name resolution blocks; it runs where connections are opened
        // (a connector thread or the opening call), never on a runtime
        // worker.
        None => (host_name.as_str(), hp.port)
            .to_socket_addrs()
            .map_err(|e| connect_error(&format!("cannot resolve host name: {e}")))?
            .collect(),
    };
    let mut last = None;
    for addr in addrs {
        match tcp_connect(target, addr).await {
            Ok(socket) => {
                return Ok((
                    socket,
                    Endpoint::Tcp {
                        addr,
                        host: host_name,
                    },
                ))
            }
            Err(e) => last = Some(e),
        }
    }
    Err(connect_error(
        &last.map_or_else(|| "no address".to_owned(), |e| e.to_string()),
    ))
}

fn connect_error(text: &str) -> Error {
    Error::new(Status::ConnectionError, text.to_owned()).with_sqlstate("08001")
}

/// A non-blocking TCP connect with the target's keepalive settings.
pub async fn tcp_connect(target: &PgTarget, addr: SocketAddr) -> std::io::Result<PgSocket> {
    use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if target.keepalives.enabled {
        let mut ka = TcpKeepalive::new();
        if let Some(idle) = target.keepalives.idle {
            ka = ka.with_time(idle);
        }
        if let Some(interval) = target.keepalives.interval {
            ka = ka.with_interval(interval);
        }
        if let Some(count) = target.keepalives.count {
            ka = ka.with_retries(count);
        }
        socket.set_tcp_keepalive(&ka)?;
    }
    #[cfg(target_os = "linux")]
    if let Some(t) = target.tcp_user_timeout {
        socket.set_tcp_user_timeout(Some(t))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream: std::net::TcpStream = socket.into();
    let mut pg = PgSocket::tcp(stream)?;
    pg.writable().await?;
    let stream = pg.tcp_stream().expect("a TCP socket");
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    Ok(pg)
}

async fn start(
    target: &PgTarget,
    tls: &Option<Arc<ClientConfig>>,
    hp: &HostPort,
    socket: PgSocket,
    endpoint: Endpoint,
    ssl_mode: CrateSslMode,
) -> Result<Opened> {
    let tls_name = match &hp.host {
        Host::Tcp(name) => name.clone(),
        Host::Unix(_) => String::new(),
    };
    let mut config = target.config.clone();
    config.ssl_mode(ssl_mode);
    let tap = Tap::new();
    let stream = Tapped::new(socket, tap.clone(), TAP_RAW);
    let connector = Connector::new(tls.clone(), &tls_name);
    let (client, connection): (tokio_postgres::Client, PgConnection) = config
        .connect_raw(stream, connector)
        .await
        .map_err(|e| start_error(e, target))?;
    let tls_used = tap.tls_started();
    tap.start(if tls_used { TAP_TLS } else { TAP_RAW });
    Ok(Opened {
        client,
        driver: Driver::new(connection, tap),
        endpoint,
        tls: tls.clone(),
        tls_used,
    })
}

fn start_error(e: tokio_postgres::Error, target: &PgTarget) -> Error {
    let mut err = map_error(e);
    if err.status == Status::DatabaseError && err.sqlstate.is_none() {
        err.status = Status::ConnectionError;
        err.sqlstate = Some("08001".into());
    }
    let lower = err.message.to_ascii_lowercase();
    if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        err.message = format!(
            "the server's TLS certificate is not signed by a trusted CA (sslrootcert {}): {}",
            target.ssl_root_cert.as_deref().unwrap_or("not set"),
            err.message
        );
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        err.message = format!(
            "the server's TLS certificate does not match the host name (sslmode=verify-full): {}",
            err.message
        );
    } else if lower.contains("server does not support tls") {
        err.message = format!(
            "sslmode={}: the server does not offer TLS",
            target.ssl_mode.name()
        );
    }
    err.message = redact_secrets(&err.message);
    err
}

/// Checks the server fits `wanted` (libpq's rules), preferring what the
/// server reported at start-up (PostgreSQL 14+) over a round trip.
async fn session_fits(opened: &mut Opened, wanted: SessionAttrs) -> Result<()> {
    let reported = |name: &str| opened.driver.parameter(name).map(|v| v == "on");
    let read_only = match reported("default_transaction_read_only") {
        Some(true) => Some(true),
        _ => None,
    };
    let in_recovery = reported("in_hot_standby");
    let (read_only, in_recovery) = match (read_only, in_recovery) {
        (r, Some(h)) => (r.unwrap_or(false) || h, h),
        _ => {
            let rows = opened
                .driver
                .drive(opened.client.simple_query(
                    "SHOW transaction_read_only; SELECT pg_catalog.pg_is_in_recovery()",
                ))
                .await
                .map_err(map_error)?;
            let mut values = rows.iter().filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            });
            let ro = values.next().as_deref() == Some("on");
            let rec = values.next().as_deref() == Some("t");
            (ro, rec)
        }
    };
    // (prefer-standby's first pass asks for `Standby`, its second for `Any`.)
    if fits(wanted, read_only, in_recovery) {
        return Ok(());
    }
    let what = match wanted {
        SessionAttrs::ReadWrite => "a read-write server (target_session_attrs=read-write)",
        SessionAttrs::ReadOnly => "a read-only server (target_session_attrs=read-only)",
        SessionAttrs::Primary => "a primary (target_session_attrs=primary)",
        _ => "a standby (target_session_attrs=standby)",
    };
    Err(
        Error::new(Status::ConnectionError, format!("the server is not {what}"))
            .with_sqlstate("08001"),
    )
}
