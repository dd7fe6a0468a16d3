//! SQLite backend on `rusqlite` (bundled SQLite; no system library needed).
//!
//! Writers: SQLite lets one writer in at a time and makes the others poll
//! (the busy handler sleeps up to 100 ms between tries), which is not fair:
//! a writer that has waited long polls least often, and under load it can
//! lose every race for the whole `busy_timeout` and fail with "database is
//! locked" while newer writers get in. So writers of one process queue
//! first-come, first-served on a [`WriteGate`] per database file before
//! they take SQLite's write lock (`BEGIN IMMEDIATE`, or a write outside a
//! transaction) and leave it when their transaction ends; SQLite's busy
//! handler then only arbitrates between processes.

use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ffi, OpenFlags};

use super::param_columns::ParamColumns;
use crate::config::{Settings, SqliteTarget};
use crate::error::{Error, Result, Status};
use crate::result::{CellRef, Column, ResultSet};
use crate::sqltext::{prepare_sql, sqlite_has_multiple_statements, Dialect, PreparedSql};
use crate::value::{Params, Value};

pub struct SqliteConn {
    conn: rusqlite::Connection,
    /// The file's write gate (none for read-only and memory databases).
    gate: Option<Arc<WriteGate>>,
    /// This connection holds the gate.
    holds_gate: bool,
    busy_timeout: Duration,
    /// What is known of each SQL text run here (SQLite's own cache holds
    /// the parse).
    sql_cache: SqlCache,
}

/// Per SQL text: its placeholder rewrite, whether it writes, and its
/// result's columns, so a repeated statement is neither lexed nor asked
/// about again.
struct SqlCache {
    entries: Vec<CachedSql>,
    /// Each SQL text's entry.
    index: HashMap<Box<str>, usize>,
    /// The entry used last: a repeated statement is found by comparing its
    /// text, without hashing it.
    last: Option<usize>,
    capacity: usize,
    /// The entry of the last statement when the cache is off.
    uncached: Option<CachedSql>,
}

struct CachedSql {
    /// The SQL text as the caller gave it.
    text: Box<str>,
    prepared: Arc<PreparedSql>,
    writes: bool,
    shape: Option<Shape>,
}

impl CachedSql {
    /// The columns of `stmt` (stepped already), from the cache while they
    /// are the same.
    fn shape_for(&mut self, stmt: &rusqlite::Statement<'_>) -> Shape {
        match &self.shape {
            Some(shape) if shape.fits(stmt) => shape.clone(),
            _ => self.shape.insert(Shape::of(stmt)).clone(),
        }
    }
}

/// A result's columns, and which of them are declared boolean.
#[derive(Clone)]
struct Shape {
    columns: Arc<[Column]>,
    bools: Arc<[bool]>,
    /// The statement's re-prepare count when these were read.
    reprepared: i32,
}

impl Shape {
    fn of(stmt: &rusqlite::Statement<'_>) -> Shape {
        let columns: Arc<[Column]> = stmt
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                decl_type: c.decl_type().unwrap_or("").to_owned(),
            })
            .collect();
        let bools = columns.iter().map(|c| is_bool_decl(&c.decl_type)).collect();
        Shape {
            columns,
            bools,
            reprepared: stmt.get_status(rusqlite::StatementStatus::RePrepare),
        }
    }

    /// An empty result with these columns, and the boolean ones.
    fn into_result(self) -> (ResultSet, Arc<[bool]>) {
        (ResultSet::new(self.columns), self.bools)
    }

    /// Whether `stmt` still has these columns: not re-prepared since (a
    /// schema change re-prepares it, and `SELECT *` may then answer with
    /// others), and the same names.
    fn fits(&self, stmt: &rusqlite::Statement<'_>) -> bool {
        stmt.get_status(rusqlite::StatementStatus::RePrepare) == self.reprepared
            && stmt.column_count() == self.columns.len()
            && self
                .columns
                .iter()
                .enumerate()
                .all(|(i, c)| stmt.column_name(i).is_ok_and(|n| n == c.name))
    }
}

impl SqlCache {
    /// The index of `sql`'s entry, if it has one.
    fn find(&mut self, sql: &str) -> Option<usize> {
        if let Some(i) = self.last {
            if *self.entries[i].text == *sql {
                return Some(i);
            }
        }
        let i = *self.index.get(sql)?;
        self.last = Some(i);
        Some(i)
    }

    /// The cached statement for `sql` and what is known of it.
    fn prepare<'c>(
        &mut self,
        conn: &'c rusqlite::Connection,
        sql: &str,
    ) -> Result<(rusqlite::CachedStatement<'c>, &mut CachedSql)> {
        if self.capacity > 0 {
            if let Some(i) = self.find(sql) {
                let entry = &mut self.entries[i];
                let stmt = conn
                    .prepare_cached(&entry.prepared.sql)
                    .map_err(map_error)?;
                return Ok((stmt, entry));
            }
        }
        if sqlite_has_multiple_statements(sql) {
            return Err(Error::new(
                Status::InvalidArgument,
                "the SQL holds more than one statement; run scripts with the execute-script call (sqlpool_conn_execute_script)",
            )
            .with_sqlstate("42601"));
        }
        let prepared = Arc::new(prepare_sql(sql, Dialect::Sqlite)?);
        let stmt = conn.prepare_cached(&prepared.sql).map_err(map_error)?;
        let entry = CachedSql {
            text: sql.into(),
            writes: !stmt.readonly(),
            prepared,
            shape: None,
        };
        let entry = if self.capacity > 0 {
            if self.entries.len() >= self.capacity {
                // Rare: start over rather than track recency.
                self.entries.clear();
                self.index.clear();
            }
            let i = self.entries.len();
            self.index.insert(sql.into(), i);
            self.entries.push(entry);
            self.last = Some(i);
            &mut self.entries[i]
        } else {
            self.uncached.insert(entry)
        };
        Ok((stmt, entry))
    }

    /// Whether `sql` writes, from the cache when it is known.
    fn writes(&mut self, conn: &rusqlite::Connection, sql: &str) -> bool {
        match self.find(sql) {
            Some(i) => self.entries[i].writes,
            None => self.prepare(conn, sql).is_ok_and(|(_, entry)| entry.writes),
        }
    }
}

/// Opens one connection and applies the pool's per-connection settings.
pub fn connect(target: &SqliteTarget, settings: &Settings) -> Result<SqliteConn> {
    let mut flags = OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if target.read_only {
        flags |= OpenFlags::SQLITE_OPEN_READ_ONLY;
    } else {
        flags |= OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = rusqlite::Connection::open_with_flags(&target.open_uri, flags).map_err(|e| {
        let mut err = map_error(e);
        err.status = Status::ConnectionError;
        err.message = format!(
            "cannot open SQLite database {:?}: {}",
            target.display, err.message
        );
        err
    })?;
    conn.busy_timeout(settings.busy_timeout)
        .map_err(map_error)?;
    conn.set_prepared_statement_cache_capacity(settings.statement_cache_size as usize);
    let in_memory =
        target.open_uri.starts_with("file::memory:") || target.open_uri.contains("mode=memory");
    if !target.read_only && !in_memory {
        // WAL lets readers and one writer work at once; with the busy timeout
        // a pool of writers waits instead of failing with "database is locked".
        conn.query_row(
            &format!("PRAGMA journal_mode = {}", settings.journal_mode),
            [],
            |_| Ok(()),
        )
        .map_err(map_error)?;
    }
    for (name, value) in &settings.sqlite_pragmas {
        // Names and values were restricted to plain characters when set.
        let sql = format!("PRAGMA {name} = {value}");
        let mut stmt = conn.prepare(&sql).map_err(map_error)?;
        let mut rows = stmt.raw_query();
        while rows.next().map_err(map_error)?.is_some() {}
    }
    let gate = (!target.read_only && !in_memory).then(|| WriteGate::for_file(&target.open_uri));
    Ok(SqliteConn {
        conn,
        gate,
        holds_gate: false,
        busy_timeout: settings.busy_timeout,
        sql_cache: SqlCache {
            entries: Vec::new(),
            index: HashMap::new(),
            last: None,
            capacity: settings.statement_cache_size as usize,
            uncached: None,
        },
    })
}

impl SqliteConn {
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    pub fn execute_script(&mut self, sql: &str) -> Result<()> {
        if script_writes(sql) {
            self.enter_gate()?;
        }
        let r = self.conn.execute_batch(sql).map_err(map_error);
        self.leave_gate_after_transaction();
        r
    }

    /// Queues for the file's write gate (FIFO among this process's
    /// connections), at most `busy_timeout`.
    fn enter_gate(&mut self) -> Result<()> {
        if self.holds_gate {
            return Ok(());
        }
        let Some(gate) = &self.gate else {
            return Ok(());
        };
        if !gate.enter(self.busy_timeout) {
            return Err(Error::new(
                Status::DatabaseError,
                format!(
                    "database is locked: other writers of this process held it for more than the busy timeout ({} ms)",
                    self.busy_timeout.as_millis()
                ),
            )
            .with_sqlstate("55P03"));
        }
        self.holds_gate = true;
        Ok(())
    }

    /// Leaves the write gate once no transaction is open any more.
    fn leave_gate_after_transaction(&mut self) {
        if self.holds_gate && self.conn.is_autocommit() {
            self.holds_gate = false;
            if let Some(gate) = &self.gate {
                gate.leave();
            }
        }
    }

    /// Runs `f` (one statement) inside the write gate when `writes`.
    fn gated<R>(&mut self, writes: bool, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        if writes {
            self.enter_gate()?;
        }
        let r = f(self);
        self.leave_gate_after_transaction();
        r
    }

    /// Whether `sql` would write (cheaply: SQLite's own verdict on the
    /// statement, cached).
    fn statement_writes(&mut self, sql: &str) -> bool {
        self.gate.is_some() && !self.holds_gate && self.sql_cache.writes(&self.conn, sql)
    }

    /// The cached statement, its placeholder rewrite, and the connection.
    fn prepared(
        &mut self,
        sql: &str,
    ) -> Result<(
        rusqlite::CachedStatement<'_>,
        Arc<PreparedSql>,
        &rusqlite::Connection,
    )> {
        let (stmt, entry) = self.sql_cache.prepare(&self.conn, sql)?;
        Ok((stmt, entry.prepared.clone(), &self.conn))
    }

    pub fn execute(&mut self, sql: &str, params: &Params) -> Result<u64> {
        let writes = self.statement_writes(sql);
        self.gated(writes, |this| {
            let (mut stmt, prepared, conn) = this.prepared(sql)?;
            bind(&mut stmt, params.ordered_for(&prepared)?)?;
            run_to_completion(&mut stmt, conn)
        })
    }

    /// Runs one statement once per parameter set; the caller provides the
    /// transaction.
    pub fn execute_many(&mut self, sql: &str, sets: &[&Params]) -> Result<u64> {
        let writes = self.statement_writes(sql);
        self.gated(writes, |this| this.execute_many_ungated(sql, sets))
    }

    fn execute_many_ungated(&mut self, sql: &str, sets: &[&Params]) -> Result<u64> {
        let (mut stmt, prepared, conn) = self.prepared(sql)?;
        run_sets(&mut stmt, conn, sets.len(), |stmt, i| {
            // `bind` sets every parameter (it checks the count), so the
            // previous set's values need no clearing first.
            bind(stmt, sets[i].ordered_for(&prepared)?)
        })
    }

    /// [`SqliteConn::execute_many`] with the sets given column by column:
    /// each cell is bound straight from its column.
    pub fn execute_many_columns(&mut self, sql: &str, columns: &ParamColumns<'_>) -> Result<u64> {
        let writes = self.statement_writes(sql);
        self.gated(writes, |this| {
            let (mut stmt, prepared, conn) = this.prepared(sql)?;
            let width = columns.width();
            let counted = prepared
                .check_positional(width)
                .map_err(Error::from)
                .and_then(|()| check_parameter_count(&stmt, width));
            if let (Err(e), true) = (counted, columns.rows() > 0) {
                return Err(e.in_set(0));
            }
            run_sets(&mut stmt, conn, columns.rows(), |stmt, row| {
                for (i, cell) in columns.row(row).enumerate() {
                    stmt.raw_bind_parameter(i + 1, SqliteCell(cell))
                        .map_err(map_error)?;
                }
                Ok(())
            })
        })
    }

    pub fn query(&mut self, sql: &str, params: &Params) -> Result<ResultSet> {
        let writes = self.statement_writes(sql);
        self.gated(writes, |this| this.query_ungated(sql, params))
    }

    fn query_ungated(&mut self, sql: &str, params: &Params) -> Result<ResultSet> {
        let (mut stmt, entry) = self.sql_cache.prepare(&self.conn, sql)?;
        bind(&mut stmt, params.ordered_for(&entry.prepared)?)?;
        // The columns are read once the statement has stepped: a schema
        // change re-prepares it then, and `SELECT *` may answer with others.
        let mut shaped: Option<(ResultSet, Arc<[bool]>)> = None;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(map_error)? {
            let (result, bools) =
                shaped.get_or_insert_with(|| entry.shape_for(row.as_ref()).into_result());
            append_row(result, row, bools)?;
        }
        drop(rows);
        Ok(match shaped {
            Some((result, _)) => result,
            None => entry.shape_for(&stmt).into_result().0,
        })
    }

    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        if std::mem::take(&mut self.holds_gate) {
            if let Some(gate) = &self.gate {
                gate.leave();
            }
        }
    }
}

/// Whether a script takes SQLite's write lock up front: `BEGIN IMMEDIATE`
/// or `EXCLUSIVE`, or a write statement first (a deferred `BEGIN`,
/// `COMMIT`, `ROLLBACK`, savepoints and reads do not).
fn script_writes(sql: &str) -> bool {
    let mut words = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return false;
    };
    let first = first.to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" => words.next().is_some_and(|w| {
            w.eq_ignore_ascii_case("IMMEDIATE") || w.eq_ignore_ascii_case("EXCLUSIVE")
        }),
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "CREATE" | "DROP" | "ALTER" | "VACUUM"
        | "REINDEX" => true,
        _ => false,
    }
}

/// A first-come, first-served queue of this process's writers to one
/// database file.
pub struct WriteGate {
    state: Mutex<GateState>,
    turn: Condvar,
}

#[derive(Default)]
struct GateState {
    held: bool,
    queue: VecDeque<u64>,
    next_ticket: u64,
}

impl WriteGate {
    fn for_file(open_uri: &str) -> Arc<WriteGate> {
        static GATES: Mutex<Option<HashMap<String, std::sync::Weak<WriteGate>>>> = Mutex::new(None);
        let mut gates = GATES.lock().unwrap_or_else(|p| p.into_inner());
        let gates = gates.get_or_insert_with(HashMap::new);
        let key = open_uri.split('?').next().unwrap_or(open_uri).to_owned();
        if let Some(gate) = gates.get(&key).and_then(|w| w.upgrade()) {
            return gate;
        }
        gates.retain(|_, w| w.strong_count() > 0);
        let gate = Arc::new(WriteGate {
            state: Mutex::new(GateState::default()),
            turn: Condvar::new(),
        });
        gates.insert(key, Arc::downgrade(&gate));
        gate
    }

    /// Waits for this writer's turn, at most `timeout`; false on timeout.
    fn enter(&self, timeout: Duration) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.held && st.queue.is_empty() {
            st.held = true;
            return true;
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push_back(ticket);
        let deadline = Instant::now() + timeout;
        loop {
            if !st.held && st.queue.front() == Some(&ticket) {
                st.queue.pop_front();
                st.held = true;
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                st.queue.retain(|t| *t != ticket);
                drop(st);
                self.turn.notify_all();
                return false;
            }
            st = self
                .turn
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn leave(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.held = false;
        drop(st);
        self.turn.notify_all();
    }
}

fn is_bool_decl(decl: &str) -> bool {
    decl.eq_ignore_ascii_case("bool") || decl.eq_ignore_ascii_case("boolean")
}

/// Runs `stmt` once per parameter set, `bind_set` binding set `i` first;
/// an error names the set it came from.
fn run_sets(
    stmt: &mut rusqlite::Statement<'_>,
    conn: &rusqlite::Connection,
    count: usize,
    mut bind_set: impl FnMut(&mut rusqlite::Statement<'_>, usize) -> Result<()>,
) -> Result<u64> {
    let mut total = 0;
    for i in 0..count {
        bind_set(stmt, i).map_err(|e| e.in_set(i))?;
        total += run_to_completion(stmt, conn).map_err(|e| e.in_set(i))?;
    }
    Ok(total)
}

fn check_parameter_count(stmt: &rusqlite::Statement<'_>, given: usize) -> Result<()> {
    let expected = stmt.parameter_count();
    if given != expected {
        return Err(Error::parameter(format!(
            "statement expects {expected} parameters, {given} were given"
        )));
    }
    Ok(())
}

fn bind(stmt: &mut rusqlite::Statement<'_>, values: Vec<&Value>) -> Result<()> {
    check_parameter_count(stmt, values.len())?;
    for (i, value) in values.into_iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, SqliteCell(CellRef::from(value)))
            .map_err(map_error)?;
    }
    Ok(())
}

fn run_to_completion(
    stmt: &mut rusqlite::Statement<'_>,
    conn: &rusqlite::Connection,
) -> Result<u64> {
    if stmt.column_count() == 0 {
        return stmt.raw_execute().map(|n| n as u64).map_err(map_error);
    }
    // A statement that returns rows (SELECT, RETURNING, PRAGMA): run it to
    // the end and
    // report the rows it changed, or (like PostgreSQL's command tag) the
    // rows a read-only statement returned.
    let read_only = stmt.readonly();
    let mut rows = stmt.raw_query();
    let mut returned = 0u64;
    while rows.next().map_err(map_error)?.is_some() {
        returned += 1;
    }
    Ok(if read_only { returned } else { conn.changes() })
}

/// A parameter as SQLite binds it (booleans as 0 and 1).
struct SqliteCell<'a>(CellRef<'a>);

impl rusqlite::ToSql for SqliteCell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            CellRef::Null => ValueRef::Null,
            CellRef::Bool(b) => ValueRef::Integer(i64::from(b)),
            CellRef::Int64(i) => ValueRef::Integer(i),
            CellRef::Double(f) => ValueRef::Real(f),
            CellRef::Text(t) => ValueRef::Text(t),
            CellRef::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Maps a rusqlite error to ours, with a SQLSTATE derived from SQLite's
/// extended result code (SQLite has no SQLSTATEs of its own).
pub fn map_error(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            let text = message.unwrap_or_else(|| code.to_string());
            let sqlstate = sqlstate_for(code.extended_code, &text);
            let status = match code.code {
                rusqlite::ErrorCode::ConstraintViolation => Status::ConstraintViolation,
                rusqlite::ErrorCode::OperationInterrupted => Status::Cancelled,
                rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::NotADatabase => {
                    Status::ConnectionError
                }
                rusqlite::ErrorCode::ParameterOutOfRange => Status::ParameterError,
                _ => Status::DatabaseError,
            };
            let mut err = Error::new(status, text).with_sqlstate(sqlstate);
            err.native_code = i64::from(code.extended_code);
            err
        }
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => {
            let mut err = map_error(rusqlite::Error::SqliteFailure(error, Some(msg)));
            err.position = u32::try_from(offset + 1).ok();
            err
        }
        rusqlite::Error::Utf8Error(_) => Error::new(Status::InvalidUtf8, e.to_string()),
        rusqlite::Error::InvalidParameterCount(given, expected) => Error::parameter(format!(
            "statement expects {expected} parameters, {given} were given"
        )),
        rusqlite::Error::MultipleStatement => Error::new(
            Status::InvalidArgument,
            "the SQL holds more than one statement; run scripts with the execute-script call (sqlpool_conn_execute_script)",
        )
        .with_sqlstate("42601"),
        other => Error::new(Status::DatabaseError, other.to_string()),
    }
}

fn sqlstate_for(extended: i32, message: &str) -> &'static str {
    match extended {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "23505",
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "23503",
        ffi::SQLITE_CONSTRAINT_NOTNULL => "23502",
        ffi::SQLITE_CONSTRAINT_CHECK => "23514",
        _ => match extended & 0xff {
            ffi::SQLITE_CONSTRAINT => "23000",
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => "55P03",
            ffi::SQLITE_READONLY => "25006",
            ffi::SQLITE_INTERRUPT => "57014",
            ffi::SQLITE_NOMEM => "53200",
            ffi::SQLITE_FULL => "53100",
            ffi::SQLITE_TOOBIG => "54000",
            ffi::SQLITE_MISMATCH => "42804",
            ffi::SQLITE_AUTH | ffi::SQLITE_PERM => "42501",
            ffi::SQLITE_RANGE => "22023",
            ffi::SQLITE_CANTOPEN => "08001",
            ffi::SQLITE_IOERR => "58030",
            ffi::SQLITE_CORRUPT | ffi::SQLITE_NOTADB => "XX001",
            ffi::SQLITE_ERROR => {
                if message.contains("syntax error") || message.contains("incomplete input") {
                    "42601"
                } else if message.starts_with("no such table") {
                    "42P01"
                } else if message.starts_with("no such column") {
                    "42703"
                } else if message.contains("already exists") {
                    "42P07"
                } else if message.starts_with("no such function") {
                    "42883"
                } else {
                    "HY000"
                }
            }
            _ => "HY000",
        },
    }
}

/// An open streaming query on SQLite (see [`SqliteConn::stream_start`]):
/// the statement is stepped one chunk at a time, so memory holds one chunk.
///
/// rusqlite's `Rows` borrows its `Statement`, which borrows the
/// `Connection`, and dropping `Rows` resets the statement; a borrowed
/// statement cannot move between threads, as a C stream may. So while the
/// stream is open a worker thread owns the connection and keeps the rows
/// on its stack, stepping a chunk when asked; the [`SqliteConn`] holds a
/// read-only in-memory stand-in until [`SqliteConn::stream_end`] takes the
/// connection back from the finished worker.
pub struct SqliteRows {
    /// `None` once the rows are over (the connection went back).
    worker: Option<Worker>,
    columns: Arc<[Column]>,
    /// The worker failed to give the connection back.
    lost: bool,
}

struct Worker {
    /// A chunk size per request; dropped, it ends the worker.
    requests: mpsc::Sender<usize>,
    /// One answer per request: the chunk, and whether the rows are over.
    chunks: mpsc::Receiver<Result<(ResultSet, bool)>>,
    thread: std::thread::JoinHandle<Option<rusqlite::Connection>>,
}

impl SqliteRows {
    /// The rows are over (or failed): the connection is back.
    pub fn is_done(&self) -> bool {
        self.worker.is_none()
    }

    /// Done, and the connection went back to its [`SqliteConn`].
    pub fn gave_back(&self) -> bool {
        self.worker.is_none() && !self.lost
    }
}

/// One SQLite value as ours (`BOOL`/`BOOLEAN` columns' 0 and 1 as booleans).
/// Appends one row to `result`; TEXT keeps its bytes as stored, UTF-8 or
/// not.
fn append_row(result: &mut ResultSet, row: &rusqlite::Row<'_>, bools: &[bool]) -> Result<()> {
    for ((c, is_bool), column) in bools.iter().enumerate().zip(result.row_sink()) {
        column.push(match row.get_ref(c).map_err(map_error)? {
            ValueRef::Null => CellRef::Null,
            ValueRef::Integer(i) if *is_bool && (i == 0 || i == 1) => CellRef::Bool(i == 1),
            ValueRef::Integer(i) => CellRef::Int64(i),
            ValueRef::Real(f) => CellRef::Double(f),
            ValueRef::Text(t) => CellRef::Text(t),
            ValueRef::Blob(b) => CellRef::Blob(b),
        });
    }
    result.end_row();
    Ok(())
}

impl SqliteConn {
    /// Starts a query whose rows are read with [`SqliteConn::stream_next`].
    /// Until the stream ends ([`SqliteRows::is_done`]) or is given to
    /// [`SqliteConn::stream_end`], this connection runs nothing else.
    pub fn stream_start(&mut self, sql: &str, params: &Params) -> Result<SqliteRows> {
        let writes = self.statement_writes(sql);
        // Checks the SQL and the parameters here, so that only the
        // statement's own errors come from the worker.
        let (sql, values, columns) = {
            let (mut stmt, prepared, _) = self.prepared(sql)?;
            let values = params.ordered_for(&prepared)?;
            bind(&mut stmt, values.clone())?;
            stmt.clear_bindings();
            let owned: Vec<Value> = values.into_iter().cloned().collect();
            (prepared.sql.clone(), owned, Shape::of(&stmt))
        };
        let stand_in = stand_in()?;
        let (conn_tx, conn_rx) = mpsc::channel::<rusqlite::Connection>();
        let (req_tx, req_rx) = mpsc::channel::<usize>();
        let (chunk_tx, chunk_rx) = mpsc::channel();
        let shape = columns.clone();
        let thread = std::thread::Builder::new()
            .name("sqlpool-sqlite-stream".into())
            .spawn(move || {
                let conn = conn_rx.recv().ok()?;
                step_rows(&conn, &sql, &values, &shape, &req_rx, &chunk_tx);
                Some(conn)
            })
            .map_err(|e| {
                Error::new(
                    Status::Internal,
                    format!("cannot start a stream thread: {e}"),
                )
            })?;
        if writes {
            if let Err(e) = self.enter_gate() {
                drop(conn_tx);
                let _ = thread.join();
                return Err(e);
            }
        }
        let conn = std::mem::replace(&mut self.conn, stand_in);
        if let Err(mpsc::SendError(conn)) = conn_tx.send(conn) {
            self.conn = conn;
            self.leave_gate_after_transaction();
            return Err(Error::new(
                Status::Internal,
                "the stream thread ended early",
            ));
        }
        Ok(SqliteRows {
            worker: Some(Worker {
                requests: req_tx,
                chunks: chunk_rx,
                thread,
            }),
            columns: columns.columns,
            lost: false,
        })
    }

    /// The next chunk of at most `max_rows` rows (at least 1); an empty
    /// result when the rows are over. The stream ends (and the connection
    /// comes back) on the chunk that reaches the last row, or on an error.
    pub fn stream_next(&mut self, rows: &mut SqliteRows, max_rows: usize) -> Result<ResultSet> {
        let Some(worker) = rows.worker.as_mut() else {
            return Ok(ResultSet::new(rows.columns.clone()));
        };
        let answer = match worker.requests.send(max_rows.max(1)) {
            Ok(()) => worker.chunks.recv().ok(),
            Err(_) => None,
        };
        let answer = answer.unwrap_or_else(|| {
            Err(Error::new(
                Status::Internal,
                "the stream thread ended early",
            ))
        });
        if let Ok((chunk, _)) = &answer {
            // (The first chunk may have found other columns: see next_chunk.)
            rows.columns = chunk.shared_columns();
        }
        if !matches!(answer, Ok((_, false))) {
            self.stream_end(rows);
        }
        answer.map(|(chunk, _)| chunk)
    }

    /// Ends a stream, at its end or before: the worker resets the statement
    /// (which ends its read transaction outside an explicit one, so the WAL
    /// can be checkpointed) and gives the connection back. False: it could
    /// not (the worker panicked); this connection must then be discarded.
    pub fn stream_end(&mut self, rows: &mut SqliteRows) -> bool {
        let Some(worker) = rows.worker.take() else {
            return !rows.lost;
        };
        drop(worker.requests);
        match worker.thread.join() {
            Ok(Some(conn)) => {
                self.conn = conn;
                self.leave_gate_after_transaction();
            }
            _ => rows.lost = true,
        }
        !rows.lost
    }
}

/// The worker of a [`SqliteRows`]: runs the statement and answers each
/// request with the next chunk, until the rows are over, an error, or no
/// more requests; then the rows and the statement drop (resetting it).
fn step_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[Value],
    shape: &Shape,
    requests: &mpsc::Receiver<usize>,
    chunks: &mpsc::Sender<Result<(ResultSet, bool)>>,
) {
    let mut stmt = match conn.prepare_cached(sql).map_err(map_error) {
        Ok(stmt) => stmt,
        Err(e) => {
            if requests.recv().is_ok() {
                let _ = chunks.send(Err(e));
            }
            return;
        }
    };
    let bound = bind(&mut stmt, values.iter().collect());
    let mut rows = stmt.raw_query();
    let mut failed = bound.err();
    let mut shape = shape.clone();
    let mut first = true;
    while let Ok(max_rows) = requests.recv() {
        let answer = match failed.take() {
            Some(e) => Err(e),
            None => next_chunk(&mut rows, &mut shape, &mut first, max_rows),
        };
        let end = !matches!(answer, Ok((_, false)));
        if chunks.send(answer).is_err() || end {
            return;
        }
    }
}

/// Up to `max_rows` rows as a result, and whether the rows are over.
fn next_chunk(
    rows: &mut rusqlite::Rows<'_>,
    shape: &mut Shape,
    first: &mut bool,
    max_rows: usize,
) -> Result<(ResultSet, bool)> {
    let mut result = ResultSet::new(shape.columns.clone());
    while result.row_count() < max_rows {
        let Some(row) = rows.next().map_err(map_error)? else {
            return Ok((result, true));
        };
        // The columns as the stepped statement has them (a schema change
        // since the stream started re-prepares it).
        if std::mem::take(first) && !shape.fits(row.as_ref()) {
            *shape = Shape::of(row.as_ref());
            result = ResultSet::new(shape.columns.clone());
        }
        append_row(&mut result, row, &shape.bools)?;
    }
    Ok((result, false))
}

/// What a [`SqliteConn`] holds while a stream owns its connection: an
/// in-memory database that refuses writes, in case it were ever used.
fn stand_in() -> Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(
        ":memory:",
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_error)
}
