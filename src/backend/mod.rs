//! One pooled connection, whatever the database, and the r2d2 manager that
//! makes them. Backends differ only in how they talk to their database; the
//! pool, parameters, results and transaction bookkeeping are shared here.

pub mod bulk;
pub mod hosts;
pub mod param_columns;
pub mod pgtypes;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Recycling, SessionAttrs, SessionReset, Settings, Target};
use crate::error::{Error, Result, Status};
use crate::pool::Manage;
use crate::result::ResultSet;
use crate::value::Params;
use param_columns::ParamColumns;

// One connection lives per pool slot; boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Db {
    Sqlite(sqlite::SqliteConn),
    Postgres(postgres::PgConn),
}

/// Transaction options for [`Conn::begin`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOptions {
    /// 0 = database default, 1 = read uncommitted, 2 = read committed,
    /// 3 = repeatable read, 4 = serializable.
    pub isolation: u32,
    pub read_only: bool,
    pub deferrable: bool,
}

/// A live connection plus the bookkeeping the pool needs.
pub struct Conn {
    pub db: Db,
    /// Set when an error said the connection is gone; the pool discards it.
    pub broken: bool,
    /// SQLite: the open transaction was begun read-only (`query_only` on).
    read_only_tx: bool,
    /// A statement changed the session (see `sqltext::changes_session`):
    /// reset it at release.
    session_dirty: bool,
    /// When the server last answered on this connection.
    answered_at: Instant,
    /// A statement was cancelled or timed out since: check it properly.
    suspect: bool,
    /// A statement may have run LISTEN: unlisten at release (see
    /// `bulk::Conn::end_listening`).
    listening: bool,
    pub created: Instant,
    pub id: u64,
    /// The server refused a write as read-only (SQLSTATE 25006): a pool
    /// that wants a read-write server or a primary discards it (failover).
    read_only_refused: bool,
    /// Counts the connection on its host (PostgreSQL) while it lives.
    host: Option<hosts::HostTicket>,
    /// The last statement found to change nothing in the session (and not
    /// to mention LISTEN).
    last_plain_sql: Box<str>,
}

/// A connection the server answered on within this window skips the
/// checkout round trip of `recycling=verified`: a look at its socket (has
/// the server closed it, or sent a fatal error?) costs no round trip.
/// (HikariCP uses the same window.)
pub const VERIFY_WINDOW: Duration = Duration::from_millis(500);
/// The least time a checkout check gets, even for a caller that will not
/// wait (`timeout 0`): a healthy connection is not discarded for want of it.
const CHECK_FLOOR: Duration = Duration::from_millis(250);

/// Runs a connection operation to completion on the calling thread (a
/// PostgreSQL operation drives its socket here; SQLite's are synchronous).
fn block<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    postgres::block(fut)
}

impl Conn {
    fn track<T>(&mut self, result: Result<T>) -> Result<T> {
        match &result {
            Ok(_) => {
                self.answered_at = Instant::now();
                self.suspect = false;
            }
            Err(e) => {
                if e.breaks_connection() && e.status != Status::Cancelled {
                    self.broken = true;
                }
                if matches!(e.status, Status::Cancelled | Status::QueryTimeout) {
                    self.suspect = true;
                } else if e.sqlstate.is_some() {
                    self.answered_at = Instant::now();
                }
                // A write refused as read-only: the server is (now) a standby.
                if e.sqlstate.as_deref() == Some("25006") {
                    self.read_only_refused = true;
                }
            }
        }
        if let Db::Postgres(c) = &self.db {
            if c.is_closed() {
                self.broken = true;
            }
        }
        result
    }

    /// After a statement the user ran: `DISCARD ALL` and `DEALLOCATE`
    /// remove server-side prepared statements, so the cache forgets them.
    fn after_statement(&mut self, sql: &str) {
        if let Db::Postgres(c) = &mut self.db {
            let upper = sql.to_ascii_uppercase();
            if upper.contains("DISCARD") || upper.contains("DEALLOCATE") {
                c.clear_statement_cache();
            }
        }
    }

    pub fn execute(&mut self, sql: &str, params: &Params) -> Result<u64> {
        match self.run_sqlite(sql, params, |c| c.execute(sql, params), |n| *n) {
            Some(r) => r,
            None => block(self.execute_async(sql, params)),
        }
    }

    pub async fn execute_async(&mut self, sql: &str, params: &Params) -> Result<u64> {
        self.note_session(sql);
        let started = Instant::now();
        let r = match &mut self.db {
            Db::Sqlite(c) => c.execute(sql, params),
            Db::Postgres(c) => c.execute(sql, params).await,
        };
        self.statement_ended(sql, params, started, r, |n| *n)
    }

    pub fn query(&mut self, sql: &str, params: &Params) -> Result<ResultSet> {
        let rows = |rs: &ResultSet| rs.row_count() as u64;
        match self.run_sqlite(sql, params, |c| c.query(sql, params), rows) {
            Some(r) => r,
            None => block(self.query_async(sql, params)),
        }
    }

    pub async fn query_async(&mut self, sql: &str, params: &Params) -> Result<ResultSet> {
        self.note_session(sql);
        let started = Instant::now();
        let r = match &mut self.db {
            Db::Sqlite(c) => c.query(sql, params),
            Db::Postgres(c) => c.query(sql, params).await,
        };
        self.statement_ended(sql, params, started, r, |rs| rs.row_count() as u64)
    }

    /// Runs a caller's statement on SQLite, which is synchronous: here, with
    /// no future to drive (a future sized for PostgreSQL is moved on every
    /// poll). `None` on PostgreSQL.
    fn run_sqlite<T>(
        &mut self,
        sql: &str,
        params: &Params,
        run: impl FnOnce(&mut sqlite::SqliteConn) -> Result<T>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Option<Result<T>> {
        if !matches!(self.db, Db::Sqlite(_)) {
            return None;
        }
        self.note_session(sql);
        let started = Instant::now();
        let Db::Sqlite(c) = &mut self.db else {
            return None;
        };
        let r = run(c);
        Some(self.statement_ended(sql, params, started, r, rows))
    }

    /// The bookkeeping after one statement of a caller's: error hint, cache
    /// invalidation, the SQL log (`rows` counts what it logs), tracking.
    fn statement_ended<T>(
        &mut self,
        sql: &str,
        params: &Params,
        started: Instant,
        r: Result<T>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Result<T> {
        let r = r.map_err(|e| self.placeholder_hint(e, sql));
        self.after_statement(sql);
        log_statement(self.id, sql, &[params], started, r.as_ref().map(rows));
        self.track(r)
    }

    pub fn execute_script(&mut self, sql: &str) -> Result<()> {
        block(self.execute_script_async(sql))
    }

    pub async fn execute_script_async(&mut self, sql: &str) -> Result<()> {
        self.note_session(sql);
        let started = Instant::now();
        let r = match &mut self.db {
            Db::Sqlite(c) => c.execute_script(sql),
            Db::Postgres(c) => c.execute_script(sql).await,
        };
        self.after_statement(sql);
        log_statement(self.id, sql, &[], started, r.as_ref().map(|_| 0));
        self.track(r)
    }

    /// A syntax error from another driver's placeholder habit (`%s`, or `?`
    /// on PostgreSQL) gets a hint naming the styles that work.
    fn placeholder_hint(&self, mut e: Error, sql: &str) -> Error {
        let foreign = sql.contains("%s")
            || sql.contains("%(")
            || (matches!(self.db, Db::Postgres(_)) && sql.contains('?'));
        if e.sqlstate.as_deref() == Some("42601") && foreign && e.hint.is_none() {
            let styles = match self.db {
                Db::Postgres(_) => "$1..$n or :name",
                Db::Sqlite(_) => "?, ?NNN, $1..$n or :name",
            };
            e.hint = Some(format!(
                "placeholders here are {styles} (not %s or %(name)s)"
            ));
        }
        e
    }

    /// Runs `sql` once per parameter set, all or nothing: inside its own
    /// transaction, or inside a savepoint of the caller's open transaction
    /// (so a failure undoes the batch and leaves the transaction usable).
    /// On PostgreSQL the sets are pipelined.
    pub fn execute_many(&mut self, sql: &str, sets: &[&Params]) -> Result<u64> {
        block(self.execute_many_async(sql, sets))
    }

    pub async fn execute_many_async(&mut self, sql: &str, sets: &[&Params]) -> Result<u64> {
        self.execute_batch_retried(sql, Batch::Sets(sets)).await
    }

    /// [`Conn::execute_many`] with the sets given column by column.
    pub fn execute_many_columns(&mut self, sql: &str, columns: &ParamColumns<'_>) -> Result<u64> {
        block(self.execute_batch_retried(sql, Batch::Columns(columns)))
    }

    async fn execute_batch_retried(&mut self, sql: &str, batch: Batch<'_>) -> Result<u64> {
        self.note_session(sql);
        let first = self.execute_many_once(sql, batch).await;
        match first {
            // The server forgot a cached statement: the batch was undone, so
            // running it once more is safe.
            Err(e) if postgres::is_cache_stale(&e) && matches!(self.db, Db::Postgres(_)) => {
                self.execute_many_once(sql, batch).await
            }
            other => other,
        }
    }

    async fn execute_many_once(&mut self, sql: &str, batch: Batch<'_>) -> Result<u64> {
        const SAVEPOINT: &str = "sqlpool_batch";
        let nested = self.in_transaction();
        if nested {
            self.savepoint_async(SAVEPOINT, SavepointAction::Create)
                .await?;
        } else {
            self.begin_async(TxOptions::default()).await?;
        }
        let started = Instant::now();
        let r = match (&mut self.db, batch) {
            (Db::Sqlite(c), Batch::Sets(sets)) => c.execute_many(sql, sets),
            (Db::Sqlite(c), Batch::Columns(columns)) => c.execute_many_columns(sql, columns),
            (Db::Postgres(c), Batch::Sets(sets)) => c.execute_many(sql, sets).await,
            (Db::Postgres(c), Batch::Columns(columns)) => {
                let sets = columns.to_params();
                c.execute_many(sql, &sets.iter().collect::<Vec<_>>()).await
            }
        };
        let outcome = r.as_ref().map(|n| *n);
        match batch {
            Batch::Sets(sets) => log_statement(self.id, sql, sets, started, outcome),
            Batch::Columns(columns) if crate::log::sql_logging().0 => {
                let sets = columns.to_params();
                let refs: Vec<&Params> = sets.iter().collect();
                log_statement(self.id, sql, &refs, started, outcome)
            }
            Batch::Columns(_) => {}
        }
        let r = self.track(r);
        match (&r, nested) {
            (Ok(_), true) => {
                self.savepoint_async(SAVEPOINT, SavepointAction::Release)
                    .await?
            }
            (Ok(_), false) => self.end_transaction("COMMIT").await?,
            // The batch's error is the one to report.
            (Err(_), true) => {
                let _ = self
                    .savepoint_async(SAVEPOINT, SavepointAction::RollbackTo)
                    .await;
                let _ = self
                    .savepoint_async(SAVEPOINT, SavepointAction::Release)
                    .await;
            }
            (Err(_), false) => {
                let _ = self.end_transaction("ROLLBACK").await;
            }
        }
        r
    }

    /// Whether a transaction is open: exact on both databases (PostgreSQL:
    /// the status of the server's last ReadyForQuery).
    pub fn in_transaction(&self) -> bool {
        match &self.db {
            Db::Sqlite(c) => c.in_transaction(),
            Db::Postgres(c) => c.transaction_status() != b'I',
        }
    }

    pub fn begin(&mut self, opts: TxOptions) -> Result<()> {
        block(self.begin_async(opts))
    }

    pub async fn begin_async(&mut self, opts: TxOptions) -> Result<()> {
        if self.in_transaction() && matches!(self.db, Db::Sqlite(_)) {
            return Err(Error::new(
                Status::TransactionState,
                "a transaction is already open on this connection",
            ));
        }
        if opts.isolation > 4 {
            return Err(Error::invalid_argument(format!(
                "unknown isolation level {} (expected 0..4)",
                opts.isolation
            )));
        }
        let sql = match self.db {
            Db::Sqlite(_) => {
                // IMMEDIATE takes the write lock up front, so two writers wait
                // on the busy timeout instead of failing to upgrade later.
                if opts.read_only {
                    "BEGIN DEFERRED".to_owned()
                } else {
                    "BEGIN IMMEDIATE".to_owned()
                }
            }
            Db::Postgres(_) => {
                let mut sql = String::from("BEGIN");
                match opts.isolation {
                    1 => sql.push_str(" ISOLATION LEVEL READ UNCOMMITTED"),
                    2 => sql.push_str(" ISOLATION LEVEL READ COMMITTED"),
                    3 => sql.push_str(" ISOLATION LEVEL REPEATABLE READ"),
                    4 => sql.push_str(" ISOLATION LEVEL SERIALIZABLE"),
                    _ => {}
                }
                if opts.read_only {
                    sql.push_str(" READ ONLY");
                }
                if opts.deferrable {
                    sql.push_str(" DEFERRABLE");
                }
                sql
            }
        };
        self.execute_script_async(&sql).await?;
        if opts.read_only && matches!(self.db, Db::Sqlite(_)) {
            // SQLite has no read-only transactions; query_only refuses writes
            // until the transaction ends.
            self.read_only_tx = true;
            let r = self.execute_script_async("PRAGMA query_only = ON").await;
            if r.is_err() {
                let _ = self.end_transaction("ROLLBACK").await;
            }
            r?;
        }
        Ok(())
    }

    pub fn commit(&mut self) -> Result<()> {
        block(self.end_transaction("COMMIT"))
    }

    pub fn rollback(&mut self) -> Result<()> {
        block(self.end_transaction("ROLLBACK"))
    }

    async fn end_transaction(&mut self, sql: &str) -> Result<()> {
        if let Db::Sqlite(c) = &self.db {
            if !c.in_transaction() {
                return Err(Error::new(
                    Status::TransactionState,
                    format!("{sql} without an open transaction"),
                ));
            }
        }
        let r = match &mut self.db {
            Db::Sqlite(c) => c.execute_script(sql),
            Db::Postgres(c) => c.execute_script(sql).await,
        };
        let r = self.track(r);
        self.end_read_only();
        r?;
        if let Db::Postgres(c) = &self.db {
            // The server answers COMMIT of a failed transaction with a
            // ROLLBACK tag: that is the outcome, so say it.
            if sql == "COMMIT" && c.last_command_tag() == "ROLLBACK" {
                return Err(Error::new(
                    Status::TransactionState,
                    "the transaction had failed, so the server rolled it back instead of committing",
                )
                .with_sqlstate("25P02"));
            }
        }
        Ok(())
    }

    fn end_read_only(&mut self) {
        if std::mem::take(&mut self.read_only_tx) {
            if let Db::Sqlite(c) = &mut self.db {
                if c.execute_script("PRAGMA query_only = OFF").is_err() {
                    self.broken = true;
                }
            }
        }
    }

    pub fn savepoint(&mut self, name: &str, action: SavepointAction) -> Result<()> {
        block(self.savepoint_async(name, action))
    }

    pub async fn savepoint_async(&mut self, name: &str, action: SavepointAction) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::invalid_argument(format!(
                "invalid savepoint name {name:?} (letters, digits and _ only)"
            )));
        }
        let sql = match action {
            SavepointAction::Create => format!("SAVEPOINT \"{name}\""),
            SavepointAction::Release => format!("RELEASE SAVEPOINT \"{name}\""),
            SavepointAction::RollbackTo => format!("ROLLBACK TO SAVEPOINT \"{name}\""),
        };
        let r = match &mut self.db {
            Db::Sqlite(c) => c.execute_script(&sql),
            Db::Postgres(c) => c.execute_script(&sql).await,
        };
        self.track(r)
    }

    /// Makes the connection fit for the next borrower: an open or failed
    /// transaction is rolled back (bounded; a server that does not answer
    /// loses the connection). Returns false when it is not reusable.
    pub fn reset_for_reuse(&mut self) -> bool {
        if self.broken {
            return false;
        }
        if let Db::Postgres(c) = &mut self.db {
            c.query_timeout_override = None;
            c.interrupt = None;
        }
        if self.in_transaction() {
            crate::log::emit(
                crate::log::Level::Debug,
                "sqlpool::pool",
                &format!(
                    "connection #{}: rolling back a transaction left open at release",
                    self.id
                ),
            );
            let r = match &mut self.db {
                Db::Sqlite(c) => c.execute_script("ROLLBACK"),
                Db::Postgres(c) => block(c.housekeeping("ROLLBACK", None)),
            };
            if self.track(r).is_err() {
                self.broken = true;
            }
        }
        self.end_read_only();
        !self.broken
    }

    /// Checks the connection works (a round trip on PostgreSQL), within
    /// `deadline` (the caller's acquire deadline); a connection that does
    /// not answer in time is closed.
    pub fn ping(&mut self, deadline: Option<Instant>) -> Result<()> {
        let r = match &mut self.db {
            Db::Sqlite(_) => Ok(()),
            Db::Postgres(c) => block(c.ping(deadline)),
        };
        self.track(r)
    }

    /// Resets the session (`DISCARD ALL`), for the `clean` recycling.
    pub fn discard_all(&mut self, deadline: Option<Instant>) -> Result<()> {
        let r = match &mut self.db {
            Db::Sqlite(_) => Ok(()),
            Db::Postgres(c) => block(c.housekeeping("DISCARD ALL", deadline)),
        };
        self.track(r)
    }

    /// Notes whether `sql` changes the session beyond the transaction, so
    /// the release resets it (the `session_reset` option).
    fn note_session(&mut self, sql: &str) {
        // A statement run again is not lexed again.
        if *self.last_plain_sql == *sql {
            return;
        }
        let mentions_listen = sql
            .as_bytes()
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"LISTEN"));
        if mentions_listen && matches!(self.db, Db::Postgres(_)) {
            self.listening = true;
        }
        if self.session_dirty {
            return;
        }
        let dialect = match self.db {
            Db::Sqlite(_) => crate::sqltext::Dialect::Sqlite,
            Db::Postgres(_) => crate::sqltext::Dialect::Postgres,
        };
        // `begin` turns SQLite's query_only on for a read-only transaction
        // and the transaction's end turns it off: not a session change.
        if self.read_only_tx && sql.starts_with("PRAGMA query_only") {
            return;
        }
        self.session_dirty = crate::sqltext::changes_session(sql, dialect);
        if !self.session_dirty && !mentions_listen {
            self.last_plain_sql = sql.into();
        }
    }

    /// Whether the session has changed since it was opened or reset.
    pub fn session_changed(&self) -> bool {
        self.session_dirty
    }

    /// Whether the checkout check of `recycling=verified` needs a round
    /// trip: the server has not answered within [`VERIFY_WINDOW`], or a
    /// statement was cancelled since.
    pub fn needs_verification(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
            && (self.suspect || self.answered_at.elapsed() >= VERIFY_WINDOW)
    }

    /// Without a round trip: reads what the server may have sent an idle
    /// connection (a fatal error, end of file). False when it is gone.
    pub fn looks_alive(&mut self) -> bool {
        match &mut self.db {
            Db::Sqlite(_) => true,
            Db::Postgres(c) => c.looks_alive(),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgresql",
        }
    }

    /// Bounds later statements on this connection until it is released:
    /// `None` = the pool's `query_timeout`, `Some(ZERO)` = no bound.
    pub fn set_query_timeout(&mut self, timeout: Option<Duration>) {
        if let Db::Postgres(c) = &mut self.db {
            c.query_timeout_override = timeout;
        }
    }

    /// Something another thread can use to interrupt the next operation on
    /// this connection (until [`Conn::clear_canceller`]).
    pub fn canceller(&mut self) -> Canceller {
        match &mut self.db {
            Db::Sqlite(c) => Canceller::Sqlite(c.interrupt_handle()),
            Db::Postgres(c) => {
                let interrupt = std::sync::Arc::new(postgres::Interrupt::default());
                c.interrupt = Some(interrupt.clone());
                Canceller::Postgres(interrupt)
            }
        }
    }

    pub fn clear_canceller(&mut self) {
        if let Db::Postgres(c) = &mut self.db {
            c.interrupt = None;
        }
    }
}

/// With statement logging on (`sqlpool_set_sql_logging`), one INFO line on
/// target `sqlpool::sql` per statement: duration, rows, outcome, the SQL, and
/// the parameter values only when explicitly enabled.
/// The parameter sets of one `execute_many`.
#[derive(Clone, Copy)]
enum Batch<'a> {
    Sets(&'a [&'a Params]),
    Columns(&'a ParamColumns<'a>),
}

fn log_statement(
    conn_id: u64,
    sql: &str,
    params: &[&Params],
    started: Instant,
    outcome: std::result::Result<u64, &Error>,
) {
    use crate::log::{self, Level};
    let (on, with_values) = log::sql_logging();
    if !on || !log::enabled(Level::Info) {
        return;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let result = match outcome {
        Ok(rows) => format!("{rows} rows"),
        Err(e) => format!("failed: {e}"),
    };
    let count: usize = params.iter().map(|p| p.len()).sum();
    let values = if count == 0 {
        String::new()
    } else if with_values {
        let shown: Vec<String> = params.iter().map(|p| format!("{:?}", p.values())).collect();
        format!(" params={}", shown.join(", "))
    } else {
        format!(" params=<{count} values redacted>")
    };
    log::emit(
        Level::Info,
        "sqlpool::sql",
        &format!(
            "conn #{conn_id} {ms:.3} ms, {result}: {}{values}",
            crate::sqltext::mask_password_literals(sql.trim())
        ),
    );
}

pub enum Canceller {
    Sqlite(rusqlite::InterruptHandle),
    /// The engine sends the server's cancel request itself, only while the
    /// statement runs, and keeps the connection only once it has ended.
    Postgres(std::sync::Arc<postgres::Interrupt>),
}

impl Canceller {
    pub fn cancel(&self) {
        match self {
            Canceller::Sqlite(h) => h.interrupt(),
            Canceller::Postgres(i) => i.request(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SavepointAction {
    Create,
    Release,
    RollbackTo,
}

/// First keyword of a statement, upper-cased, skipping blanks and comments.
pub fn leading_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// The pool engine driving this crate's backends.
pub type Pool = crate::pool::Pool<Manager>;
/// A connection borrowed from a [`Pool`].
pub type Checkout = crate::pool::Checkout<Manager>;
pub type LentConn = crate::pool::LentConn<Manager>;

/// Opens a pool on `target`.
pub fn open_pool(target: Target, settings: Settings, hooks: Hooks) -> Result<Pool> {
    Pool::open(Manager::new(target, settings.clone(), hooks), settings)
}

/// User code run on a connection the pool looks after (psycopg_pool's
/// `configure`/`reset`, pgx's `AfterConnect`/`AfterRelease`). It may run
/// statements on the connection; an error discards the connection.
pub type ConnHook = Arc<dyn Fn(&mut Conn) -> Result<()> + Send + Sync>;

/// The pool's connection hooks; both optional.
#[derive(Clone, Default)]
pub struct Hooks {
    /// On each new connection, after `init_sql`, before it is first handed
    /// out. An error is reported as the connect error.
    pub on_connect: Option<ConnHook>,
    /// At release, once the connection is rolled back and its session
    /// reset, before it goes back to the pool. An error discards it.
    pub on_release: Option<ConnHook>,
}

/// Makes connections for the pool and looks after them (the pool engine's
/// [`Manage`] trait).
pub struct Manager {
    target: Target,
    settings: Settings,
    hosts: hosts::Hosts,
    hooks: Hooks,
}

impl Manager {
    pub fn new(target: Target, settings: Settings, hooks: Hooks) -> Manager {
        Manager {
            target,
            settings,
            hosts: hosts::Hosts::default(),
            hooks,
        }
    }

    /// Connections per host (PostgreSQL; empty for SQLite).
    pub fn host_stats(&self) -> Vec<hosts::HostStats> {
        self.hosts.stats()
    }

    /// Whether a PostgreSQL connection is still on the kind of server
    /// `target_session_attrs` asks for, without a round trip: after a
    /// failover a server may have been promoted (no longer a standby) or
    /// turned read-only (a refused write, or what the server reported).
    fn still_fits(&self, conn: &Conn) -> bool {
        let (Target::Postgres(target), Db::Postgres(c)) = (&self.target, &conn.db) else {
            return true;
        };
        let wanted = target.target_session_attrs;
        // Any server fits (the default): nothing to look up.
        if matches!(wanted, SessionAttrs::Any | SessionAttrs::PreferStandby) {
            return true;
        }
        if conn.read_only_refused
            && matches!(wanted, SessionAttrs::ReadWrite | SessionAttrs::Primary)
        {
            return false;
        }
        c.still_fits(wanted) != Some(false)
    }

    fn fits_or_broken(&self, conn: &mut Conn) -> Result<()> {
        if self.still_fits(conn) {
            return Ok(());
        }
        conn.broken = true;
        Err(self.wrong_server())
    }

    fn wrong_server(&self) -> Error {
        let wanted = match &self.target {
            Target::Postgres(t) => t.target_session_attrs.name(),
            Target::Sqlite(_) => "any",
        };
        Error::new(
            Status::ConnectionError,
            format!("the server no longer fits target_session_attrs={wanted} (failover?)"),
        )
        .with_sqlstate("08000")
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn open(&self, id: u64) -> Result<Conn> {
        let db = match &self.target {
            Target::Sqlite(t) => Db::Sqlite(sqlite::connect(t, &self.settings)?),
            Target::Postgres(target) => Db::Postgres(postgres::connect(target, &self.settings)?),
        };
        let mut conn = Conn {
            db,
            broken: false,
            read_only_tx: false,
            session_dirty: false,
            answered_at: Instant::now(),
            suspect: false,
            listening: false,
            created: Instant::now(),
            id,
            read_only_refused: false,
            host: None,
            last_plain_sql: Box::default(),
        };
        if let Db::Postgres(c) = &conn.db {
            conn.host = Some(self.hosts.opened(c.endpoint().host_label()));
        }
        self.set_up_session(&mut conn)?;
        Ok(conn)
    }

    /// Runs the on-release callback; false: discard the connection.
    fn run_release_hook(&self, conn: &mut Conn) -> bool {
        let Some(hook) = &self.hooks.on_release else {
            return true;
        };
        match hook(conn) {
            Ok(()) => true,
            Err(e) => {
                crate::log::emit(
                    crate::log::Level::Info,
                    "sqlpool::pool",
                    &format!(
                        "connection #{}: discarded: the release callback failed: {}",
                        conn.id, e.message
                    ),
                );
                false
            }
        }
    }

    /// Runs `init_sql` and the on-connect callback (a new connection, or
    /// one whose session was reset): the state they set is the session's
    /// baseline, not a change.
    fn set_up_session(&self, conn: &mut Conn) -> Result<()> {
        if !self.settings.init_sql.trim().is_empty() {
            conn.execute_script(&self.settings.init_sql)
                .map_err(|e| hook_failed(e, "init_sql"))?;
        }
        if let Some(hook) = &self.hooks.on_connect {
            hook(conn).map_err(|e| hook_failed(e, "the connect callback"))?;
        }
        conn.session_dirty = false;
        Ok(())
    }

    /// Resets a session a borrower changed, per the `session_reset` option.
    /// False: the connection cannot be reset (SQLite) or the reset failed;
    /// the pool closes it.
    fn reset_session(&self, conn: &mut Conn) -> bool {
        let changed = std::mem::take(&mut conn.session_dirty);
        match self.settings.session_reset {
            SessionReset::Off => return true,
            SessionReset::Auto if !changed => return true,
            _ => {}
        }
        let id = conn.id;
        let ok = match &mut conn.db {
            // SQLite has no session reset: a fresh connection is the reset.
            Db::Sqlite(_) => false,
            Db::Postgres(_) => conn.discard_all(None).is_ok() && self.set_up_session(conn).is_ok(),
        };
        crate::log::emit(
            crate::log::Level::Debug,
            "sqlpool::pool",
            &format!(
                "connection #{id}: {}",
                match (&conn.db, ok) {
                    (Db::Sqlite(_), _) =>
                        "session changed; closing it (SQLite has no session reset)",
                    (_, true) => "session reset with DISCARD ALL",
                    (_, false) => "session reset failed; closing it",
                }
            ),
        );
        ok
    }
}

/// An error of the connection's set-up (`init_sql`, a callback), kept as
/// it is, saying where it came from.
fn hook_failed(mut e: Error, which: &str) -> Error {
    e.message = format!("{which} failed on a new connection: {}", e.message);
    e
}

impl Manage for Manager {
    type Conn = Conn;

    fn connect(&self, id: u64) -> Result<Conn> {
        self.open(id)
    }

    fn check(&self, conn: &mut Conn, deadline: &mut dyn FnMut() -> Option<Instant>) -> Result<()> {
        let mut deadline = || deadline().map(|d| d.max(Instant::now() + CHECK_FLOOR));
        self.fits_or_broken(conn)?;
        match self.settings.recycling {
            Recycling::Fast => Ok(()),
            Recycling::Verified if !conn.needs_verification() => {
                if conn.looks_alive() {
                    // (What the look read may say the server changed role.)
                    self.fits_or_broken(conn)
                } else {
                    conn.broken = true;
                    Err(Error::new(
                        Status::ConnectionError,
                        "the server closed the connection while it was idle",
                    )
                    .with_sqlstate("08006"))
                }
            }
            Recycling::Verified => {
                conn.ping(deadline())?;
                self.fits_or_broken(conn)
            }
            Recycling::Clean => match conn.db {
                Db::Postgres(_) => {
                    conn.discard_all(deadline())?;
                    self.set_up_session(conn)
                }
                Db::Sqlite(_) => Ok(()),
            },
        }
    }

    fn check_blocks(&self, conn: &Conn) -> bool {
        match self.settings.recycling {
            Recycling::Fast => false,
            Recycling::Verified => conn.needs_verification(),
            Recycling::Clean => matches!(conn.db, Db::Postgres(_)),
        }
    }

    fn health_check(&self, conn: &mut Conn, deadline: Option<Instant>) -> Result<()> {
        conn.ping(deadline)?;
        // (The ping's answer brings what the server reports changed.)
        self.fits_or_broken(conn)
    }

    fn recycle(&self, conn: &mut Conn) -> bool {
        if !self.still_fits(conn) {
            crate::log::emit(
                crate::log::Level::Info,
                "sqlpool::pool",
                &format!("connection #{}: {}", conn.id, self.wrong_server()),
            );
            conn.broken = true;
            return false;
        }
        if !conn.reset_for_reuse() {
            return false;
        }
        if let Db::Postgres(c) = &conn.db {
            if c.is_closed() {
                return false;
            }
        }
        // The callback sees the borrower's session; what it leaves (an open
        // transaction, session changes) is undone with the borrower's.
        self.run_release_hook(conn)
            && conn.reset_for_reuse()
            && self.reset_session(conn)
            && conn.end_listening(self.settings.session_reset != SessionReset::Off)
    }

    fn is_broken(&self, conn: &Conn) -> bool {
        let closed = match &conn.db {
            Db::Postgres(c) => c.is_closed(),
            Db::Sqlite(_) => false,
        };
        conn.broken || closed
    }

    fn describe(&self) -> String {
        self.target.display_name()
    }

    fn max_backoff(&self) -> Duration {
        match &self.target {
            // Another host may take over at any moment: look again soon.
            Target::Postgres(t) if t.host_count() > 1 => Duration::from_millis(500),
            _ => Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::leading_keyword;

    #[test]
    fn keywords() {
        assert_eq!(leading_keyword("  begin;"), "BEGIN");
        assert_eq!(leading_keyword("-- c\n /* x */ START TRANSACTION"), "START");
        assert_eq!(leading_keyword("select 1"), "SELECT");
    }
}
