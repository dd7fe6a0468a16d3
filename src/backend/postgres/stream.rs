//! Streaming results: a query's rows read in chunks while the rest is
//! still arriving.
//!
//! The rows come from tokio-postgres' `RowStream`, whose channel from the
//! connection holds one batch of messages: while the caller does not pull,
//! the driver stops reading the socket and the server waits, so memory
//! stays bounded by the chunk size (plus socket buffers). The connection
//! is driven only while a chunk is being pulled.
//!
//! A stream given up before its end leaves a clean connection: outside a
//! transaction the statement is cancelled (the cancel request is confirmed
//! before anything else is sent, so it cannot reach a later statement),
//! inside one it is drained so the caller's transaction survives; either
//! way the connection is kept only once the server's ReadyForQuery has
//! arrived, else it is closed.

use std::pin::Pin;
use std::time::Instant;

use futures_util::StreamExt;
use tokio_postgres::types::Type;

use super::{is_cache_stale, name_parameter, natural_type, result_set, type_name, PgConn};
use crate::backend::pgtypes::PgParam;
use crate::error::{Error, Result};
use crate::log::{self, Level};
use crate::result::{Column, ResultSet};
use crate::sqltext::{prepare_sql, Dialect};
use crate::value::Params;

/// An open streaming query on a [`PgConn`] (which it does not borrow: the
/// caller passes the connection to every call).
pub struct PgRows {
    rows: Pin<Box<tokio_postgres::RowStream>>,
    /// Known from the prepared statement, or from the first row (an
    /// unnamed statement, with the statement cache off).
    columns: Option<Vec<Column>>,
    done: bool,
    /// The transaction status when the query started.
    in_transaction: bool,
}

impl PgRows {
    /// All rows were read (or the statement failed): the connection is
    /// free again.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

fn columns_of(columns: &[tokio_postgres::Column]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            decl_type: type_name(c.type_()),
        })
        .collect()
}

impl PgConn {
    /// Starts a query whose rows are read with [`PgConn::stream_next`].
    pub async fn stream_start(&mut self, sql: &str, params: &Params) -> Result<PgRows> {
        let in_transaction = self.transaction_status() != b'I';
        if self.one_round_trip() {
            return self.stream_unnamed(sql, params).await;
        }
        let mut retried = false;
        loop {
            let (_, stmt, values) = self.prepare(sql, params).await?;
            let bound: Vec<PgParam<'_>> = values.iter().map(|v| PgParam(v)).collect();
            let columns = columns_of(stmt.columns());
            let r = self
                .start_statement(|client| client.query_raw(&stmt, bound))
                .await;
            match r {
                Ok(rows) => {
                    self.forget_uncached();
                    return Ok(PgRows {
                        rows: Box::pin(rows),
                        columns: Some(columns),
                        done: false,
                        in_transaction,
                    });
                }
                Err(e) => {
                    self.settle_after_error().await;
                    if is_cache_stale(&e) {
                        self.cache.remove(sql);
                        if !retried && self.transaction_status() == b'I' {
                            retried = true;
                            log::emit(
                                Level::Debug,
                                "sqlpool::sql",
                                &format!("statement cache repaired after: {}", e.message),
                            );
                            continue;
                        }
                    }
                    self.forget_uncached();
                    return Err(e);
                }
            }
        }
    }

    /// With the statement cache off, outside a transaction: one unnamed
    /// statement, values typed by their kind (as `unnamed`).
    async fn stream_unnamed(&mut self, sql: &str, params: &Params) -> Result<PgRows> {
        let prepared = prepare_sql(sql, Dialect::Postgres)?;
        let values = params.ordered_for(&prepared)?;
        let typed: Vec<(PgParam<'_>, Type)> = values
            .iter()
            .map(|v| (PgParam(v), natural_type(v)))
            .collect();
        let r = self
            .start_statement(|client| client.query_typed_raw(&prepared.sql, typed))
            .await;
        match r {
            Ok(rows) => Ok(PgRows {
                rows: Box::pin(rows),
                columns: None,
                done: false,
                in_transaction: false,
            }),
            Err(e) => {
                self.settle_after_error().await;
                Err(name_parameter(e, &prepared))
            }
        }
    }

    /// Waits (bounded) for the ReadyForQuery that follows a failed
    /// statement, so the transaction status is exact; closes the
    /// connection if it does not come.
    pub(super) async fn settle_after_error(&mut self) {
        let bound = Instant::now() + self.housekeeping;
        if !self.driver.settle(Some(bound)).await {
            self.driver.close("the server stopped answering");
        }
    }

    /// The next chunk of at most `max_rows` rows (at least 1). An empty
    /// result means the rows are over; the stream is then done and the
    /// connection free. An error also ends the stream.
    pub async fn stream_next(&mut self, rows: &mut PgRows, max_rows: usize) -> Result<ResultSet> {
        if rows.done {
            return Ok(ResultSet::new(rows.columns.clone().unwrap_or_default()));
        }
        let max_rows = max_rows.max(1);
        let stream = &mut rows.rows;
        let mut finished = false;
        let r = self
            .start_statement(|_| async {
                let mut out = Vec::with_capacity(max_rows.min(4096));
                while out.len() < max_rows {
                    match stream.next().await {
                        Some(Ok(row)) => out.push(row),
                        Some(Err(e)) => return Err(e),
                        None => {
                            finished = true;
                            break;
                        }
                    }
                }
                Ok(out)
            })
            .await;
        let chunk = match r {
            Ok(chunk) => chunk,
            Err(e) => {
                rows.done = true;
                self.settle_after_error().await;
                return Err(e);
            }
        };
        if rows.columns.is_none() {
            if let Some(first) = chunk.first() {
                rows.columns = Some(columns_of(first.columns()));
            }
        }
        if finished {
            rows.done = true;
            // The ReadyForQuery right behind CommandComplete.
            self.settle_after_error().await;
        }
        match chunk.first() {
            Some(first) => result_set(first.columns(), &chunk),
            None => Ok(ResultSet::new(rows.columns.clone().unwrap_or_default())),
        }
    }

    /// Gives up a stream before its end (see the module's doc). An error
    /// means the connection was closed (the caller discards it).
    pub async fn stream_abandon(&mut self, rows: PgRows) -> Result<()> {
        if rows.done {
            return Ok(());
        }
        let in_transaction = rows.in_transaction;
        // The connection discards what still arrives for a dropped stream.
        drop(rows);
        self.abandon_statement(in_transaction).await
    }

    /// Ends the statement running on the connection whose reader was
    /// dropped: cancelled outside a transaction, drained inside one.
    pub(super) async fn abandon_statement(&mut self, in_transaction: bool) -> Result<()> {
        let bound = Instant::now() + self.housekeeping.max(super::CANCEL_GRACE);
        if !in_transaction {
            let Self { driver, cancel, .. } = self;
            let sent = driver.drive(cancel.send()).await;
            if sent.is_err() {
                self.driver
                    .close("a cancel request could not be confirmed; the connection was closed");
            }
        }
        if !self.driver.settle(Some(bound)).await || self.is_closed() {
            self.driver
                .close("an abandoned statement did not end in time; the connection was closed");
            return Err(Error::new(
                crate::error::Status::ConnectionError,
                "an abandoned statement did not end in time; the connection was closed",
            )
            .with_sqlstate("08006"));
        }
        Ok(())
    }
}
