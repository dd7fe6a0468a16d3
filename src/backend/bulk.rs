//! Bulk data on a pooled connection: streaming results, COPY, LISTEN/NOTIFY
//! (the database-independent layer over `postgres::{stream, copy,
//! notify}`; SQLite streams, and has no COPY or notifications).

use std::time::Instant;

use super::postgres::copy::{PgCopyIn, PgCopyOut};
use super::postgres::notify::Notification;
use super::postgres::stream::PgRows;
use super::sqlite::SqliteRows;
use super::{log_statement, Conn, Db};
use crate::error::{Error, Result, Status};
use crate::result::ResultSet;
use crate::value::Params;

/// An open streaming query (see [`Conn::stream_start_async`]).
pub enum RowStream {
    Postgres(PgRows),
    /// SQLite: the statement stepped chunk by chunk; it owns the
    /// connection's `rusqlite::Connection` until it ends.
    Sqlite {
        rows: SqliteRows,
        /// The connection's `broken` before the stream: while the stream
        /// owns the SQLite connection the `Conn` counts as broken, so if
        /// the stream were lost without ending (a panic) the pool discards
        /// the stand-in instead of lending it.
        was_broken: bool,
    },
}

impl RowStream {
    pub fn is_done(&self) -> bool {
        match self {
            RowStream::Postgres(r) => r.is_done(),
            RowStream::Sqlite { rows, .. } => rows.is_done(),
        }
    }
}

fn no_copy_on_sqlite() -> Error {
    Error::new(
        Status::Unsupported,
        "COPY is PostgreSQL's; SQLite has no COPY (load rows with execute_many in a transaction)",
    )
    .with_sqlstate("0A000")
}

fn no_notify_on_sqlite() -> Error {
    Error::new(
        Status::Unsupported,
        "LISTEN/NOTIFY is PostgreSQL's; SQLite has no notifications",
    )
    .with_sqlstate("0A000")
}

impl Conn {
    /// Starts a query whose rows are read in chunks with
    /// [`Conn::stream_next_async`]. Until the stream is done or abandoned
    /// the connection must run nothing else.
    pub async fn stream_start_async(&mut self, sql: &str, params: &Params) -> Result<RowStream> {
        self.note_session(sql);
        let started = Instant::now();
        let r = match &mut self.db {
            Db::Sqlite(c) => c.stream_start(sql, params).map(|rows| {
                let was_broken = std::mem::replace(&mut self.broken, true);
                RowStream::Sqlite { rows, was_broken }
            }),
            Db::Postgres(c) => c.stream_start(sql, params).await.map(RowStream::Postgres),
        }
        .map_err(|e| self.placeholder_hint(e, sql));
        self.after_statement(sql);
        log_statement(self.id, sql, &[params], started, r.as_ref().map(|_| 0));
        self.track(r)
    }

    /// The next chunk of at most `max_rows` rows; an empty result when the
    /// rows are over.
    pub async fn stream_next_async(
        &mut self,
        stream: &mut RowStream,
        max_rows: usize,
    ) -> Result<ResultSet> {
        let r = match (&mut self.db, stream) {
            (Db::Postgres(c), RowStream::Postgres(rows)) => c.stream_next(rows, max_rows).await,
            (Db::Sqlite(c), RowStream::Sqlite { rows, was_broken }) => {
                let chunk = c.stream_next(rows, max_rows);
                if rows.gave_back() {
                    self.broken = *was_broken;
                }
                chunk
            }
            _ => Err(Error::misuse(
                "the stream belongs to another kind of connection",
            )),
        };
        self.track(r)
    }

    /// Gives a stream up before its end: the connection is left clean
    /// (cancelled or drained), or marked broken so the pool discards it.
    pub async fn stream_abandon_async(&mut self, stream: RowStream) {
        match (&mut self.db, stream) {
            (Db::Postgres(c), RowStream::Postgres(rows)) => {
                self.broken |= c.stream_abandon(rows).await.is_err();
            }
            (
                Db::Sqlite(c),
                RowStream::Sqlite {
                    mut rows,
                    was_broken,
                },
            ) if !rows.is_done() => {
                let back = c.stream_end(&mut rows);
                self.broken = was_broken || !back;
            }
            _ => {}
        }
    }

    pub async fn copy_in_start_async(&mut self, sql: &str) -> Result<PgCopyIn> {
        self.note_session(sql);
        let r = match &mut self.db {
            Db::Sqlite(_) => Err(no_copy_on_sqlite()),
            Db::Postgres(c) => c.copy_in_start(sql).await,
        };
        self.track(r)
    }

    pub async fn copy_in_write_async(&mut self, copy: &mut PgCopyIn, data: &[u8]) -> Result<()> {
        let r = match &mut self.db {
            Db::Sqlite(_) => Err(no_copy_on_sqlite()),
            Db::Postgres(c) => c.copy_in_write(copy, data).await,
        };
        self.track(r)
    }

    pub async fn copy_in_finish_async(&mut self, copy: PgCopyIn) -> Result<u64> {
        let r = match &mut self.db {
            Db::Sqlite(_) => Err(no_copy_on_sqlite()),
            Db::Postgres(c) => c.copy_in_finish(copy).await,
        };
        self.track(r)
    }

    pub async fn copy_in_abort_async(&mut self, copy: PgCopyIn) {
        if let Db::Postgres(c) = &mut self.db {
            if c.copy_in_abort(copy).await.is_err() {
                self.broken = true;
            }
        }
    }

    pub async fn copy_out_start_async(&mut self, sql: &str) -> Result<PgCopyOut> {
        self.note_session(sql);
        let r = match &mut self.db {
            Db::Sqlite(_) => Err(no_copy_on_sqlite()),
            Db::Postgres(c) => c.copy_out_start(sql).await,
        };
        self.track(r)
    }

    pub async fn copy_out_next_async(
        &mut self,
        copy: &mut PgCopyOut,
    ) -> Result<Option<bytes::Bytes>> {
        let r = match &mut self.db {
            Db::Sqlite(_) => Err(no_copy_on_sqlite()),
            Db::Postgres(c) => c.copy_out_next(copy).await,
        };
        self.track(r)
    }

    pub async fn copy_out_abandon_async(&mut self, copy: PgCopyOut) {
        if let Db::Postgres(c) = &mut self.db {
            if c.copy_out_abandon(copy).await.is_err() {
                self.broken = true;
            }
        }
    }

    /// The oldest notification for this connection's LISTENs, waiting until
    /// `deadline` (`None`: no bound); `Ok(None)` when none came in time. A
    /// lost connection is an error (`SQLPOOL_CONNECTION_ERROR`).
    pub async fn next_notification_async(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Notification>> {
        let r = match &mut self.db {
            Db::Sqlite(_) => Err(no_notify_on_sqlite()),
            Db::Postgres(c) => c.next_notification(deadline).await,
        };
        self.track(r)
    }

    /// At release: a connection that ran LISTEN stops listening (`UNLISTEN
    /// *` when the session is not reset anyway) and forgets notifications
    /// not taken, so the next borrower neither gets them nor keeps the
    /// subscriptions. False: the connection cannot be cleaned (discard it).
    pub(crate) fn end_listening(&mut self, session_was_reset: bool) -> bool {
        let listened = std::mem::take(&mut self.listening);
        let Db::Postgres(c) = &mut self.db else {
            return true;
        };
        if listened
            && !session_was_reset
            && super::block(c.housekeeping("UNLISTEN *", None)).is_err()
        {
            return false;
        }
        c.discard_notifications();
        true
    }
}
