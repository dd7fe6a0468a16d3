//! The PostgreSQL engine, on tokio-postgres.
//!
//! One [`PgConn`] is a tokio-postgres `Client` plus the [`Driver`] that
//! owns its `Connection` (the socket). Every operation is an `async fn`
//! that drives the connection while it waits, so the same code serves
//! both kinds of caller: a blocking call runs it on the calling thread
//! ([`net::block_on`], poll(2) on the socket), an asynchronous operation
//! runs it as a task on the library's runtime. Every wait is bounded:
//! statements by `query_timeout` (cancel, a short grace, then the
//! connection is closed), housekeeping (checkout check, rollback at
//! release) by the caller's deadline, start-up by `connect_timeout`.
//!
//! Transaction state is what the server said: the protocol tap
//! ([`net::Tap`]) reads ReadyForQuery's status and COMMIT's tag.

mod connect;
pub mod copy;
pub mod net;
pub mod notify;
mod pipeline;
pub mod stream;
mod tls;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, Client, Statement};

use super::pgtypes::{check_bind, BindError, ColumnDecoder, PgParam, RawCell};
use crate::config::{PgTarget, Settings};
use crate::error::{redact_secrets, status_for_sqlstate, Error, Result, Status};
use crate::log::{self, Level};
use crate::result::{Column, ResultSet};
use crate::sqltext::{prepare_sql, Dialect, ParamSlots, PreparedSql};
use crate::value::{Params, Value};
use connect::Endpoint;
use net::{Deadline, PgSocket, Tap, Tapped};
use pipeline::Exchange;

pub type PgConnection = tokio_postgres::Connection<Tapped<PgSocket>, tls::TlsStream>;

/// How long a statement may take to end after its cancel request (timeout
/// or a caller's cancel) before the connection is closed instead.
const TIMEOUT_GRACE: Duration = Duration::from_millis(500);
const CANCEL_GRACE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// The driver

/// Owns the connection's socket side and drives it while a caller waits.
pub struct Driver {
    connection: Option<PgConnection>,
    tap: Arc<Tap>,
    /// Why the connection ended, for the errors of calls made afterwards.
    lost: Option<String>,
    /// LISTEN notifications received, oldest first.
    pub notifications: VecDeque<tokio_postgres::Notification>,
}

impl Driver {
    fn new(connection: PgConnection, tap: Arc<Tap>) -> Driver {
        Driver {
            connection: Some(connection),
            tap,
            lost: None,
            notifications: VecDeque::new(),
        }
    }

    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.connection.as_ref()?.parameter(name)
    }

    pub fn is_closed(&self) -> bool {
        self.connection.is_none()
    }

    /// Drops the connection (the socket closes); calls waiting on it fail.
    fn close(&mut self, why: &str) {
        if self.connection.take().is_some() {
            self.lost.get_or_insert_with(|| why.to_owned());
        }
    }

    /// Reads and writes what the connection can without waiting.
    fn poll_connection(&mut self, cx: &mut Context<'_>) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        loop {
            match connection.poll_message(cx) {
                Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => {
                    self.notifications.push_back(n)
                }
                Poll::Ready(Some(Ok(AsyncMessage::Notice(notice)))) => log::emit(
                    Level::Debug,
                    "sqlpool::sql",
                    &format!(
                        "server {}: {}",
                        notice.severity(),
                        redact_secrets(notice.message())
                    ),
                ),
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => {
                    let why = map_error(e).message;
                    self.close(&why);
                    return;
                }
                Poll::Ready(None) => {
                    self.close("the server closed the connection");
                    return;
                }
                Poll::Pending => return,
            }
        }
    }

    /// Awaits `fut` while driving the connection.
    pub async fn drive<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
            self.poll_connection(cx);
            fut.as_mut().poll(cx)
        })
        .await
    }

    /// Reads until every request sent has its ReadyForQuery, so the tap's
    /// transaction status is current. False if `deadline` passed first.
    async fn settle(&mut self, deadline: Option<Instant>) -> bool {
        if self.tap.settled() || self.is_closed() {
            return true;
        }
        let tap = self.tap.clone();
        let mut timer = deadline.map(Deadline::at);
        let settled = self
            .drive(std::future::poll_fn(|cx| {
                if tap.settled() {
                    return Poll::Ready(true);
                }
                match timer.as_mut() {
                    Some(t) => Pin::new(t).poll(cx).map(|()| tap.settled()),
                    None => Poll::Pending,
                }
            }))
            .await;
        settled || self.is_closed()
    }

    fn map(&self, e: tokio_postgres::Error) -> Error {
        let closed = e.is_closed();
        let mut err = map_error(e);
        if closed {
            if let Some(why) = &self.lost {
                err.message = format!("the connection to the server was lost: {why}");
            }
        }
        err
    }
}

// ---------------------------------------------------------------------------
// Cancellation

/// A caller's cancel request for the operation running on a connection
/// (the asynchronous API's `sqlpool_cancel`).
#[derive(Default)]
pub struct Interrupt {
    requested: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Interrupt {
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// What a cancel request needs: where the server is and the key it gave.
struct CancelTarget {
    token: tokio_postgres::CancelToken,
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl CancelTarget {
    /// Sends the cancel request and waits until the server has acted on
    /// it (closed the request's connection).
    async fn send(&self) -> std::io::Result<()> {
        let (socket, host) = match &self.endpoint {
            Endpoint::Tcp { addr, host } => {
                let socket = connect::tcp_connect(&plain_target(), *addr).await?;
                (socket, host.clone())
            }
            Endpoint::Unix(path) => (
                PgSocket::unix(std::os::unix::net::UnixStream::connect(path)?)?,
                String::new(),
            ),
        };
        let stream = Tapped::new(socket, Tap::new(), net::TAP_RAW);
        self.token
            .cancel_query_raw(stream, tls::Connector::new(self.tls.clone(), &host))
            .await
            .map_err(std::io::Error::other)
    }
}

/// Keepalive-less settings for the short-lived cancel connections.
fn plain_target() -> PgTarget {
    PgTarget {
        config: tokio_postgres::Config::new(),
        ssl_mode: crate::config::SslMode::Disable,
        ssl_root_cert: None,
        ssl_cert: None,
        ssl_key: None,
        target_session_attrs: crate::config::SessionAttrs::Any,
        load_balance_hosts: false,
        keepalives: crate::config::Keepalives {
            enabled: false,
            idle: None,
            interval: None,
            count: None,
        },
        tcp_user_timeout: None,
    }
}

/// The error of a statement's future: tokio-postgres's, or the library's
/// own (a pipelined batch).
trait StatementError {
    /// The server cancelled the statement (57014).
    fn is_cancel(&self) -> bool;
    fn into_error(self, driver: &Driver) -> Error;
}

impl StatementError for tokio_postgres::Error {
    fn is_cancel(&self) -> bool {
        self.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
    }

    fn into_error(self, driver: &Driver) -> Error {
        driver.map(self)
    }
}

impl StatementError for Error {
    fn is_cancel(&self) -> bool {
        self.sqlstate.as_deref() == Some("57014")
    }

    fn into_error(self, _: &Driver) -> Error {
        self
    }
}

/// Why a statement was stopped before it answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout(Duration),
    Cancelled,
}

/// Runs one statement: bounded by `timeout`, interruptible by `interrupt`.
/// A statement stopped either way gets a cancel request — only while it
/// is still running, and the connection is kept only once the server has
/// acted on the request and ended the statement, so a cancel can never
/// reach a later statement; otherwise the connection is closed.
async fn statement<T, E: StatementError>(
    driver: &mut Driver,
    cancel: &CancelTarget,
    interrupt: Option<&Interrupt>,
    timeout: Option<Duration>,
    fut: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    if interrupt.is_some_and(Interrupt::is_requested) {
        // Cancelled before it started: nothing reached the server.
        return Err(
            Error::new(Status::Cancelled, "the operation was cancelled").with_sqlstate("57014")
        );
    }
    let mut fut = pin!(fut);
    let mut timer = timeout.map(|t| (t, Deadline::at(Instant::now() + t)));
    let mut notified = pin!(async {
        match interrupt {
            Some(i) => {
                let mut wait = pin!(i.notify.notified());
                wait.as_mut().enable();
                if !i.is_requested() {
                    wait.await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    });
    let first = driver
        .drive(std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            if notified.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Stop::Cancelled));
            }
            if let Some((t, deadline)) = timer.as_mut() {
                if Pin::new(deadline).poll(cx).is_ready() {
                    return Poll::Ready(Err(Stop::Timeout(*t)));
                }
            }
            Poll::Pending
        }))
        .await;
    let stop = match first {
        Ok(r) => return r.map_err(|e| e.into_error(driver)),
        Err(stop) => stop,
    };
    let grace = match stop {
        Stop::Timeout(_) => TIMEOUT_GRACE,
        Stop::Cancelled => CANCEL_GRACE,
    };
    let mut grace_timer = Deadline::at(Instant::now() + grace);
    let mut request = pin!(cancel.send());
    let mut delivered: Option<bool> = None;
    let mut finished = None;
    driver
        .drive(std::future::poll_fn(|cx| {
            if delivered.is_none() {
                if let Poll::Ready(r) = request.as_mut().poll(cx) {
                    delivered = Some(r.is_ok());
                }
            }
            if finished.is_none() {
                if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                    finished = Some(v);
                }
            }
            if finished.is_some() && delivered.is_some() {
                return Poll::Ready(());
            }
            Pin::new(&mut grace_timer).poll(cx)
        }))
        .await;
    if delivered != Some(true) {
        driver.close("a cancel request could not be confirmed; the connection was closed");
    }
    let stopped_error = |answered: bool| -> Error {
        let (status, what) = match stop {
            Stop::Timeout(t) => (
                Status::QueryTimeout,
                format!(
                    "the statement exceeded query_timeout ({} ms) and was cancelled",
                    t.as_millis()
                ),
            ),
            Stop::Cancelled => (Status::Cancelled, "the operation was cancelled".to_owned()),
        };
        let mut err = Error::new(status, what).with_sqlstate("57014");
        if !answered {
            err.message
                .push_str("; the server did not answer in time, so the connection was closed");
        }
        err
    };
    match finished {
        None => {
            driver.close("the server did not answer a cancelled statement");
            Err(stopped_error(false))
        }
        // It finished before the cancel took effect: that is the outcome.
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) if e.is_cancel() => Err(stopped_error(true)),
        Some(Err(e)) => Err(e.into_error(driver)),
    }
}

// ---------------------------------------------------------------------------
// The statement cache

/// A statement prepared on the server, with the rewritten SQL.
struct Prepared {
    sql: PreparedSql,
    statement: Statement,
    /// Variants prepared with the natural types of values the server could
    /// only type as text (`SELECT :x`): `None` when the server refused them.
    typed: Vec<(Vec<Type>, Option<Statement>)>,
}

struct StatementCache {
    capacity: usize,
    entries: HashMap<Arc<str>, Prepared>,
    order: VecDeque<Arc<str>>,
}

impl StatementCache {
    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    fn remove(&mut self, sql: &str) {
        self.entries.remove(sql);
        self.order.retain(|k| &**k != sql);
    }

    fn insert(&mut self, sql: &str, entry: Prepared) {
        if self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
        let key: Arc<str> = Arc::from(sql);
        self.order.push_back(key.clone());
        self.entries.insert(key, entry);
    }
}

/// The type a value is sent with when the server cannot infer one:
/// integers as the smallest integer type that holds them (so `substr(s,
/// :n)` still resolves), doubles as float8, text and NULL left for the
/// server to infer.
fn natural_type(value: &Value) -> Type {
    match value {
        Value::Int64(i) if i16::try_from(*i).is_ok() => Type::INT2,
        Value::Int64(i) if i32::try_from(*i).is_ok() => Type::INT4,
        Value::Int64(_) => Type::INT8,
        Value::Double(_) => Type::FLOAT8,
        Value::Bool(_) => Type::BOOL,
        Value::Blob(_) => Type::BYTEA,
        Value::Text(_) | Value::Null => Type::UNKNOWN,
    }
}

/// The server forgot a cached statement (`DISCARD ALL`, `DEALLOCATE`) or
/// its plan no longer fits (a changed table).
pub fn is_cache_stale(e: &Error) -> bool {
    match e.sqlstate.as_deref() {
        Some("26000") => true,
        Some("0A000") => e
            .message
            .contains("cached plan must not change result type"),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// The connection

pub struct PgConn {
    client: Client,
    driver: Driver,
    cache: StatementCache,
    cancel: CancelTarget,
    /// The pool's `query_timeout` (zero: none).
    pool_query_timeout: Duration,
    /// The borrower's override (`sqlpool_conn_set_query_timeout`), until
    /// release: `Some(ZERO)` = no bound.
    pub query_timeout_override: Option<Duration>,
    /// Bound on housekeeping round trips (rollback at release, `DISCARD
    /// ALL`) when no caller deadline applies.
    housekeeping: Duration,
    /// Set by an asynchronous operation while it runs.
    pub interrupt: Option<Arc<Interrupt>>,
    pub tls_used: bool,
}

/// Opens a connection (blocking, on the calling thread).
pub fn connect(target: &PgTarget, settings: &Settings) -> Result<PgConn> {
    let tls = tls::client_config(target)?;
    let opened = net::block_on(connect::connect(target, tls, settings.connect_timeout))
        .map_err(|_| Error::new(Status::Internal, "the connection start-up stalled"))??;
    let token = opened.client.cancel_token();
    let housekeeping = if settings.query_timeout.is_zero() {
        settings.connect_timeout.max(Duration::from_secs(1))
    } else {
        settings.query_timeout
    };
    Ok(PgConn {
        client: opened.client,
        driver: opened.driver,
        cache: StatementCache {
            capacity: settings.statement_cache_size as usize,
            entries: HashMap::new(),
            order: VecDeque::new(),
        },
        cancel: CancelTarget {
            token,
            endpoint: opened.endpoint,
            tls: opened.tls,
        },
        pool_query_timeout: settings.query_timeout,
        query_timeout_override: None,
        housekeeping,
        interrupt: None,
        tls_used: opened.tls_used,
    })
}

/// Runs an engine operation to completion on the calling thread.
pub fn block<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    net::block_on(fut).unwrap_or_else(|_| {
        Err(Error::new(
            Status::Internal,
            "internal: a PostgreSQL operation stalled with nothing to wait for",
        ))
    })
}

impl PgConn {
    pub fn is_closed(&self) -> bool {
        self.driver.is_closed() || self.client.is_closed()
    }

    /// The server's transaction status from its last ReadyForQuery: `I`
    /// idle, `T` in a transaction, `E` in a failed transaction.
    pub fn transaction_status(&self) -> u8 {
        if self.is_closed() {
            return b'I';
        }
        self.driver.tap.status()
    }

    /// Reads, without waiting, what the server may have sent while the
    /// connection was idle; false when that closed it.
    pub fn looks_alive(&mut self) -> bool {
        if self.is_closed() {
            return false;
        }
        net::poll_now(|cx| self.driver.poll_connection(cx));
        !self.is_closed()
    }

    /// The tag of the last completed command ("COMMIT", "ROLLBACK", ...).
    pub fn last_command_tag(&self) -> String {
        self.driver.tap.last_tag()
    }

    pub fn take_notifications(&mut self) -> Vec<tokio_postgres::Notification> {
        self.driver.notifications.drain(..).collect()
    }

    fn query_timeout(&self) -> Option<Duration> {
        let t = self
            .query_timeout_override
            .unwrap_or(self.pool_query_timeout);
        (!t.is_zero()).then_some(t)
    }

    /// Runs `fut` as a statement (query timeout, cancellable), then waits
    /// for its ReadyForQuery so the transaction status is exact.
    async fn run<T, E: StatementError>(
        driver: &mut Driver,
        cancel: &CancelTarget,
        interrupt: Option<&Interrupt>,
        timeout: Option<Duration>,
        fut: impl Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        let r = statement(driver, cancel, interrupt, timeout, fut).await;
        let grace = Some(Instant::now() + TIMEOUT_GRACE + timeout.unwrap_or(Duration::ZERO));
        if !driver.settle(grace).await {
            driver.close("the server stopped answering");
        }
        r
    }

    /// A cheap round trip, bounded by `deadline` (and the housekeeping
    /// bound); a connection that does not answer in time is closed.
    pub async fn ping(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.housekeeping("", deadline).await
    }

    /// A statement of the library's own (rollback at release, `DISCARD
    /// ALL`): bounded, never cancelled, the connection closed on timeout.
    pub async fn housekeeping(&mut self, sql: &str, deadline: Option<Instant>) -> Result<()> {
        let bound = Instant::now() + self.housekeeping;
        let deadline = deadline.map_or(bound, |d| d.min(bound));
        let Self { client, driver, .. } = self;
        let work = async {
            let r = driver.drive(client.simple_query(sql)).await;
            let r = r.map(|_| ()).map_err(|e| driver.map(e));
            driver.settle(None).await;
            r
        };
        let r = connect::with_deadline(work, Some(deadline), || {
            Error::new(
                Status::ConnectionError,
                "the server did not answer in time; the connection was closed",
            )
            .with_sqlstate("08006")
        })
        .await;
        if r.as_ref()
            .is_err_and(|e| e.status == Status::ConnectionError)
        {
            self.driver.close("the server did not answer in time");
        }
        if sql.starts_with("DISCARD") {
            self.cache.clear();
        }
        r
    }

    /// Runs the statement `make` starts (on the client, or on a COPY or
    /// stream of it) through [`Self::run`]: this connection's query timeout
    /// and interrupt, then its ReadyForQuery.
    async fn run_statement<'a, T, E, F>(
        &'a mut self,
        make: impl FnOnce(&'a Client) -> F,
    ) -> Result<T>
    where
        E: StatementError,
        F: Future<Output = std::result::Result<T, E>> + 'a,
    {
        self.client_statement(true, make).await
    }

    /// Runs it the same way without waiting for the statement's end
    /// (streams and COPY go on reading or writing).
    async fn start_statement<'a, T, E, F>(
        &'a mut self,
        make: impl FnOnce(&'a Client) -> F,
    ) -> Result<T>
    where
        E: StatementError,
        F: Future<Output = std::result::Result<T, E>> + 'a,
    {
        self.client_statement(false, make).await
    }

    async fn client_statement<'a, T, E, F>(
        &'a mut self,
        to_the_end: bool,
        make: impl FnOnce(&'a Client) -> F,
    ) -> Result<T>
    where
        E: StatementError,
        F: Future<Output = std::result::Result<T, E>> + 'a,
    {
        let timeout = self.query_timeout();
        let Self {
            client,
            driver,
            cancel,
            interrupt,
            ..
        } = self;
        let interrupt = interrupt.as_deref();
        if to_the_end {
            Self::run(driver, cancel, interrupt, timeout, make(client)).await
        } else {
            statement(driver, cancel, interrupt, timeout, make(client)).await
        }
    }

    pub async fn execute_script(&mut self, sql: &str) -> Result<()> {
        self.run_statement(|client| client.batch_execute(sql)).await
    }

    /// Forgets every cached statement (after `DISCARD ALL`, `DEALLOCATE`).
    pub fn clear_statement_cache(&mut self) {
        self.cache.clear();
    }

    /// Prepares `sql` (or finds it cached): the statement to run and the
    /// parameter values in its order.
    async fn prepare<'p>(
        &mut self,
        sql: &str,
        params: &'p Params,
    ) -> Result<(PreparedSql, Statement, Vec<&'p Value>)> {
        if !self.cache.entries.contains_key(sql) {
            let prepared_sql = prepare_sql(sql, Dialect::Postgres)?;
            let statement = self
                .run_statement(|client| client.prepare(&prepared_sql.sql))
                .await?;
            self.cache.insert(
                sql,
                Prepared {
                    sql: prepared_sql,
                    statement,
                    typed: Vec::new(),
                },
            );
        }
        let entry = &self.cache.entries[sql];
        let prepared_sql = entry.sql.clone();
        let base = entry.statement.clone();
        let values = params.ordered_for(&prepared_sql)?;
        check_count(&base, &values)?;
        // Values the server could only type as text get their own type.
        let wanted: Vec<Type> = base
            .params()
            .iter()
            .zip(&values)
            .map(|(ty, v)| {
                if *ty == Type::TEXT && !matches!(v, Value::Text(_) | Value::Null) {
                    natural_type(v)
                } else {
                    ty.clone()
                }
            })
            .collect();
        if wanted == base.params() {
            bind_check(&base, &prepared_sql, &values)?;
            return Ok((prepared_sql, base, values));
        }
        let known = self.cache.entries[sql]
            .typed
            .iter()
            .find(|(types, _)| *types == wanted)
            .map(|(_, s)| s.clone());
        let statement = match known {
            Some(Some(typed)) => typed,
            Some(None) => base,
            // Try the typed variant; inside a transaction under a savepoint,
            // so a refusal cannot abort the caller's transaction. (In a
            // failed transaction the statement fails anyway.)
            None if self.transaction_status() != b'E' => {
                let text = prepared_sql.sql.clone();
                let in_tx = self.transaction_status() == b'T';
                let typed = self.prepare_typed_guarded(&text, &wanted, in_tx).await?;
                if let Some(entry) = self.cache.entries.get_mut(sql) {
                    entry.typed.push((wanted, typed.clone()));
                }
                typed.unwrap_or(base)
            }
            None => base,
        };
        bind_check(&statement, &prepared_sql, &values)?;
        Ok((prepared_sql, statement, values))
    }

    /// Prepares `sql` with parameter `types`; `None` when the server refuses
    /// them. Inside a transaction the attempt runs under a savepoint.
    async fn prepare_typed_guarded(
        &mut self,
        sql: &str,
        types: &[Type],
        in_tx: bool,
    ) -> Result<Option<Statement>> {
        const SAVEPOINT: &str = "sqlpool_typed_parameters";
        if in_tx {
            self.execute_script(&format!("SAVEPOINT {SAVEPOINT}"))
                .await?;
        }
        let typed = self
            .run_statement(|client| client.prepare_typed(sql, types))
            .await;
        let typed = match typed {
            Ok(s) => Some(s),
            Err(e) if e.sqlstate.is_some() && !e.breaks_connection() => None,
            Err(e) => return Err(e),
        };
        if in_tx {
            let undo = if typed.is_some() {
                format!("RELEASE SAVEPOINT {SAVEPOINT}")
            } else {
                format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}")
            };
            self.execute_script(&undo).await?;
        }
        Ok(typed)
    }

    /// Runs a prepared statement (rows wanted or not); a stale cache entry
    /// (`DISCARD ALL` by someone, a changed table) is dropped and, outside
    /// a transaction, the statement prepared and run once more.
    async fn run_prepared(
        &mut self,
        sql: &str,
        params: &Params,
        want_rows: bool,
    ) -> Result<(Option<Result<ResultSet>>, u64)> {
        let mut retried = false;
        loop {
            let (_, statement, values) = self.prepare(sql, params).await?;
            let bound: Vec<PgParam<'_>> = values.iter().map(|v| PgParam(v)).collect();
            let r = if want_rows {
                self.run_statement(|client| async move {
                    let stream = client.query_raw(&statement, bound).await?;
                    decode_rows(RowDecoder::new(statement.columns()), stream).await
                })
                .await
                .map(|decoded| (Some(decoded), 0))
            } else {
                self.run_statement(
                    |client| async move { client.execute_raw(&statement, bound).await },
                )
                .await
                .map(|n| (None, n))
            };
            match r {
                Err(e) if is_cache_stale(&e) => {
                    self.cache.remove(sql);
                    if retried || self.transaction_status() != b'I' {
                        return Err(e);
                    }
                    retried = true;
                    log::emit(
                        Level::Debug,
                        "sqlpool::sql",
                        &format!("statement cache repaired after: {}", e.message),
                    );
                }
                other => return other,
            }
        }
    }

    /// With the statement cache off (PgBouncer), outside a transaction: one
    /// round trip, the server checks the values. Inside one (PgBouncer keeps
    /// its server for the whole transaction) the statement is prepared
    /// first, so a value a parameter cannot take fails here, before
    /// anything runs, and cannot abort the caller's transaction; it is
    /// closed right after.
    fn one_round_trip(&self) -> bool {
        self.cache.capacity == 0 && self.transaction_status() == b'I'
    }

    pub async fn execute(&mut self, sql: &str, params: &Params) -> Result<u64> {
        if self.one_round_trip() {
            return self.unnamed(sql, params).await.map(|(_, n)| n);
        }
        let r = self.run_prepared(sql, params, false).await.map(|(_, n)| n);
        self.forget_uncached();
        r
    }

    pub async fn query(&mut self, sql: &str, params: &Params) -> Result<ResultSet> {
        if self.one_round_trip() {
            return self.unnamed(sql, params).await.map(|(rs, _)| rs);
        }
        let r = self.run_prepared(sql, params, true).await;
        self.forget_uncached();
        r?.0.expect("rows were asked for")
    }

    /// With the cache off, statements prepared for one call are closed now
    /// (the Close goes out before anything else, inside the transaction).
    fn forget_uncached(&mut self) {
        if self.cache.capacity == 0 {
            self.cache.clear();
        }
    }

    /// With the statement cache off (PgBouncer in transaction mode): one
    /// round trip with an unnamed statement, values typed by their kind.
    async fn unnamed(&mut self, sql: &str, params: &Params) -> Result<(ResultSet, u64)> {
        let prepared = prepare_sql(sql, Dialect::Postgres)?;
        let values = params.ordered_for(&prepared)?;
        let typed: Vec<(PgParam<'_>, Type)> = values
            .iter()
            .map(|v| (PgParam(v), natural_type(v)))
            .collect();
        let sql = &prepared.sql;
        let run = self.run_statement(|client| async move {
            use futures_util::StreamExt;
            let stream = client.query_typed_raw(sql, typed).await?;
            let mut stream = pin!(stream);
            // The columns are known with the first row (none: no columns).
            let mut decoder: Option<RowDecoder> = None;
            let mut failed = None;
            while let Some(row) = stream.next().await {
                let row = row?;
                if failed.is_some() {
                    continue; // drained, so the connection stays in step
                }
                let d = decoder.get_or_insert_with(|| RowDecoder::new(row.columns()));
                if let Err(e) = d.push(&row) {
                    failed = Some(e);
                }
            }
            let affected = stream.rows_affected().unwrap_or(0);
            let decoded = match failed {
                Some(e) => Err(e),
                None => Ok(decoder.map_or_else(|| ResultSet::new(Vec::new()), RowDecoder::finish)),
            };
            Ok::<_, tokio_postgres::Error>((decoded, affected))
        });
        let (decoded, affected) = run.await.map_err(|e| name_parameter(e, &prepared))?;
        Ok((decoded?, affected))
    }

    /// Runs one statement once per parameter set, pipelined as libpq's
    /// pipeline mode does (see [`pipeline`]): Bind/Execute per set over one
    /// prepared statement, one Sync per chunk. The caller provides the
    /// transaction (all or nothing), which also keeps PgBouncer on one
    /// server when the cache is off.
    pub async fn execute_many(&mut self, sql: &str, sets: &[&Params]) -> Result<u64> {
        let Some(first) = sets.first() else {
            return Ok(0);
        };
        if crate::backend::leading_keyword(sql) == "COPY" {
            return Err(Error::new(
                Status::Unsupported,
                "COPY cannot run as a batch: use the COPY functions (sqlpool_conn_copy_in, conn.copy())",
            ));
        }
        let (prepared_sql, statement, _) =
            self.prepare(sql, first).await.map_err(|e| e.in_set(0))?;
        // Every set is checked and encoded before anything is sent.
        let mut all: Vec<Vec<&Value>> = Vec::with_capacity(sets.len());
        for (i, params) in sets.iter().enumerate() {
            let values = params.ordered_for(&prepared_sql).map_err(|e| e.in_set(i))?;
            check_count(&statement, &values).map_err(|e| e.in_set(i))?;
            all.push(values);
        }
        let exchange = Exchange::encode(&prepared_sql.sql, statement.params(), &all, |p| {
            parameter_name(&prepared_sql, p)
        })?;
        drop(all);
        // The stream is the batch's from its first byte to its last answer.
        let tap = self.driver.tap.clone();
        let r = self
            .run_statement(|_| async {
                tap.start_exchange(exchange);
                let outcome = std::future::poll_fn(|cx| tap.poll_exchange(cx))
                    .await
                    .outcome();
                match outcome {
                    // Stopped (timeout, cancel) or lost: the statement's error.
                    Err(e) if e.is_cancel() || e.breaks_connection() => Err(e),
                    other => Ok(other),
                }
            })
            .await?;
        if r.as_ref().is_err_and(is_cache_stale) {
            // The caller's transaction is aborted now; the caller may retry.
            self.cache.remove(sql);
        }
        self.forget_uncached();
        r
    }
}

fn check_count(statement: &Statement, values: &[&Value]) -> Result<()> {
    let expected = statement.params().len();
    if values.len() != expected {
        return Err(Error::parameter(format!(
            "statement expects {expected} parameters, {} were given",
            values.len()
        )));
    }
    Ok(())
}

/// Checks every value against the type the server expects for it, so a
/// value a parameter cannot take fails here, naming the parameter (`$2`,
/// `:name`), before anything is sent.
fn bind_check(statement: &Statement, prepared: &PreparedSql, values: &[&Value]) -> Result<()> {
    for (i, (value, ty)) in values.iter().zip(statement.params()).enumerate() {
        if let Err(why) = check_bind(value, ty) {
            return Err(Error::parameter(format!(
                "parameter {}: {why}",
                parameter_name(prepared, i)
            )));
        }
    }
    Ok(())
}

fn parameter_name(prepared: &PreparedSql, i: usize) -> String {
    match &prepared.slots {
        ParamSlots::Named { names } if i < names.len() => format!(":{}", names[i]),
        _ => format!("${}", i + 1),
    }
}

/// "parameter $2: ..." (the server's words) → the parameter's own name.
fn name_parameter(mut e: Error, prepared: &PreparedSql) -> Error {
    {
        if let Some(rest) = e.message.strip_prefix("parameter $") {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(i) = n.parse::<usize>() {
                e.message = format!(
                    "parameter {}{}",
                    parameter_name(prepared, i.saturating_sub(1)),
                    &rest[n.len()..]
                );
            }
        }
    }
    e
}

/// The parameter number in a Bind error's context ("unnamed portal
/// parameter $2 = '...'").
fn bind_parameter_of(context: &str) -> Option<usize> {
    let at = context.find("portal parameter $")? + "portal parameter $".len();
    let digits: String = context[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Decodes rows into a result's columns as they arrive: no row is kept,
/// and the common types go straight into the column arrays.
pub(super) struct RowDecoder {
    result: ResultSet,
    decoders: Vec<ColumnDecoder>,
}

impl RowDecoder {
    pub(super) fn new(columns: &[tokio_postgres::Column]) -> RowDecoder {
        RowDecoder {
            result: ResultSet::new(
                columns
                    .iter()
                    .map(|c| Column {
                        name: c.name().to_owned(),
                        decl_type: type_name(c.type_()),
                    })
                    .collect::<Vec<_>>(),
            ),
            decoders: columns
                .iter()
                .map(|c| ColumnDecoder::for_type(c.type_()))
                .collect(),
        }
    }

    pub(super) fn push(&mut self, row: &tokio_postgres::Row) -> Result<()> {
        for (c, (decoder, column)) in self
            .decoders
            .iter_mut()
            .zip(self.result.row_sink())
            .enumerate()
        {
            let RawCell(raw) = row.try_get::<_, RawCell>(c).map_err(map_error)?;
            if let Err(e) = decoder.decode_into(raw, column) {
                // The result is given up (its last row is incomplete).
                return Err(Error::new(
                    Status::DatabaseError,
                    format!("error deserializing column {c}: {e}"),
                ));
            }
        }
        self.result.end_row();
        Ok(())
    }

    pub(super) fn finish(self) -> ResultSet {
        self.result
    }
}

/// Reads every row of `stream` into `decoder`: the server's errors fail
/// the statement (outer error); a row that cannot be decoded fails only
/// the result (inner error), and the rest are still read and dropped, so
/// the statement ends normally and the connection stays in step.
async fn decode_rows(
    mut decoder: RowDecoder,
    stream: tokio_postgres::RowStream,
) -> std::result::Result<Result<ResultSet>, tokio_postgres::Error> {
    use futures_util::StreamExt;
    let mut stream = pin!(stream);
    let mut failed = None;
    while let Some(row) = stream.next().await {
        let row = row?;
        if failed.is_none() {
            if let Err(e) = decoder.push(&row) {
                failed = Some(e);
            }
        }
    }
    Ok(match failed {
        Some(e) => Err(e),
        None => Ok(decoder.finish()),
    })
}

fn result_set(
    columns: &[tokio_postgres::Column],
    rows: &[tokio_postgres::Row],
) -> Result<ResultSet> {
    let mut decoder = RowDecoder::new(columns);
    for row in rows {
        decoder.push(row)?;
    }
    Ok(decoder.finish())
}

/// `int4`, `text[]`, `my_enum`: arrays as `element[]`.
fn type_name(ty: &Type) -> String {
    match ty.kind() {
        tokio_postgres::types::Kind::Array(element) => format!("{}[]", element.name()),
        _ => ty.name().to_owned(),
    }
}

/// A server's error (ErrorResponse fields): secrets redacted, and a value
/// the server could not take for a parameter names it.
fn db_error(
    sqlstate: &str,
    message: &str,
    detail: Option<&str>,
    hint: Option<&str>,
    position: Option<u32>,
    where_: Option<&str>,
) -> Error {
    let mut err =
        Error::new(status_for_sqlstate(sqlstate), redact_secrets(message)).with_sqlstate(sqlstate);
    err.detail = detail.map(redact_secrets);
    err.hint = hint.map(str::to_owned);
    err.position = position;
    if let Some(n) = where_.and_then(bind_parameter_of) {
        err.message = format!("parameter ${n}: {}", err.message);
    }
    err
}

pub fn map_error(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let position = match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p),
            _ => None,
        };
        return db_error(
            db.code().code(),
            db.message(),
            db.detail(),
            db.hint(),
            position,
            db.where_(),
        );
    }
    if let Some(bind) = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<BindError>()) {
        return Error::parameter(format!("{e}: {bind}"));
    }
    // The crate's Display leaves out the cause ("error connecting to
    // server" without "Connection refused"): add the whole chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let text = redact_secrets(&text);
    if e.is_closed() {
        return Error::new(
            Status::ConnectionError,
            format!("the connection to the server was lost: {text}"),
        )
        .with_sqlstate("08006");
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("authentication") || lower.contains("sasl") {
        return Error::new(Status::AuthError, text).with_sqlstate("28000");
    }
    if lower.contains("error connecting")
        || lower.contains("connection refused")
        || lower.contains("timeout")
        || lower.contains("timed out")
        || lower.contains("error communicating")
        || lower.contains("unexpected eof")
        || lower.contains("broken pipe")
        || lower.contains("connection reset")
        || lower.contains("tls")
        || lower.contains("certificate")
        || lower.contains("error performing")
    {
        return Error::new(Status::ConnectionError, text).with_sqlstate("08001");
    }
    Error::new(Status::DatabaseError, text)
}
