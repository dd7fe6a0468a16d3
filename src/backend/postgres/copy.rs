//! `COPY … FROM STDIN` and `COPY … TO STDOUT`: bytes in and out as the
//! server speaks them (text, CSV or binary format, whatever the statement
//! says).
//!
//! COPY IN: the caller's chunks go into tokio-postgres' `CopyInSink`
//! (CopyData messages of about 4 KiB), then `finish` ends it (CopyDone) and
//! the server answers with the row count, or with the error of a bad row
//! (its SQLSTATE kept). Giving up sends CopyFail: the server rolls the
//! COPY back and the connection stays usable.
//!
//! COPY OUT: the server's CopyData messages are read one at a time while
//! the caller pulls (the channel from the connection holds one batch, so
//! memory stays bounded); giving up early cancels or drains as a stream
//! does.

use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};

use super::PgConn;
use crate::error::{Error, Result, Status};

pub struct PgCopyIn {
    sink: Pin<Box<tokio_postgres::CopyInSink<Bytes>>>,
}

pub struct PgCopyOut {
    stream: Pin<Box<tokio_postgres::CopyOutStream>>,
    done: bool,
    in_transaction: bool,
}

impl PgCopyOut {
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// Refuses, before anything is sent, a statement that is not a COPY in the
/// wanted direction: tokio-postgres would leave the protocol out of step
/// (an answer it did not expect, a Sync too many).
fn check_copy(sql: &str, want: &str) -> Result<()> {
    let words: Vec<String> = sql
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| c == ';' || c == '(' || c == ')')
                .to_ascii_uppercase()
        })
        .collect();
    let is_copy = crate::backend::leading_keyword(sql) == "COPY";
    let (a, b) = want.split_once(' ').expect("two words");
    let direction = words.windows(2).any(|w| w[0] == a && w[1] == b);
    if is_copy && direction {
        return Ok(());
    }
    Err(Error::invalid_argument(format!(
        "not a COPY … {want} statement (the other direction, or another statement, has its own call)"
    ))
    .with_sqlstate("42601"))
}

/// A COPY that failed to start without a word from the server (an answer
/// tokio-postgres did not expect) may have left the protocol out of step:
/// the connection is closed rather than trusted.
fn distrust(conn: &mut PgConn, e: &Error) {
    if e.sqlstate.is_none() && e.status != Status::InvalidArgument {
        conn.driver
            .close("a COPY ended outside the protocol; the connection was closed");
    }
}

impl PgConn {
    /// Starts `COPY … FROM STDIN` (`sql` as the server takes it, no
    /// parameters).
    pub async fn copy_in_start(&mut self, sql: &str) -> Result<PgCopyIn> {
        check_copy(sql, "FROM STDIN")?;
        // Prepared first, so a statement the server cannot parse fails
        // cleanly; a COPY refused when it runs (a missing table) leaves
        // tokio-postgres a ReadyForQuery out of step (its CopyFail's), so
        // the connection is closed then — the error keeps its SQLSTATE.
        let prepared = self.start_statement(|client| client.prepare(sql)).await;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.settle_after_error().await;
                return Err(e);
            }
        };
        let r = self
            .start_statement(|client| client.copy_in::<_, Bytes>(&prepared))
            .await;
        match r {
            Ok(sink) => Ok(PgCopyIn {
                sink: Box::pin(sink),
            }),
            Err(mut e) => {
                self.driver.close(
                    "the server refused a COPY FROM STDIN as it started; the connection was closed",
                );
                e.message.push_str(
                    " (the connection was closed: a COPY FROM STDIN refused as it starts leaves the protocol out of step)",
                );
                Err(e)
            }
        }
    }

    /// Sends `data` (any split of the COPY data: rows may span calls).
    pub async fn copy_in_write(&mut self, copy: &mut PgCopyIn, data: &[u8]) -> Result<()> {
        let bytes = Bytes::copy_from_slice(data);
        let r = self.driver.drive(copy.sink.as_mut().feed(bytes)).await;
        r.map_err(|e| self.driver.map(e))
    }

    /// Ends the COPY: the rows copied, or the server's error (a bad row).
    pub async fn copy_in_finish(&mut self, mut copy: PgCopyIn) -> Result<u64> {
        let r = self.start_statement(|_| copy.sink.as_mut().finish()).await;
        drop(copy);
        self.settle_after_error().await;
        r
    }

    /// Gives the COPY up: CopyFail, the server rolls it back.
    pub async fn copy_in_abort(&mut self, copy: PgCopyIn) -> Result<()> {
        drop(copy);
        let bound = Instant::now() + self.housekeeping;
        if !self.driver.settle(Some(bound)).await || self.is_closed() {
            self.driver
                .close("an aborted COPY did not end in time; the connection was closed");
            return Err(crate::error::Error::new(
                crate::error::Status::ConnectionError,
                "an aborted COPY did not end in time; the connection was closed",
            )
            .with_sqlstate("08006"));
        }
        Ok(())
    }

    /// Starts `COPY … TO STDOUT`.
    pub async fn copy_out_start(&mut self, sql: &str) -> Result<PgCopyOut> {
        check_copy(sql, "TO STDOUT")?;
        let in_transaction = self.transaction_status() != b'I';
        let r = self
            .start_statement(|client| client.copy_out::<str>(sql))
            .await;
        match r {
            Ok(stream) => Ok(PgCopyOut {
                stream: Box::pin(stream),
                done: false,
                in_transaction,
            }),
            Err(e) => {
                distrust(self, &e);
                self.settle_after_error().await;
                Err(e)
            }
        }
    }

    /// The next CopyData message's bytes; `None` at the end (the COPY is
    /// then done and the connection free).
    pub async fn copy_out_next(&mut self, copy: &mut PgCopyOut) -> Result<Option<Bytes>> {
        if copy.done {
            return Ok(None);
        }
        let stream = &mut copy.stream;
        let r = self
            .start_statement(|_| async {
                match stream.next().await {
                    Some(Ok(b)) => Ok(Some(b)),
                    Some(Err(e)) => Err(e),
                    None => Ok(None),
                }
            })
            .await;
        match r {
            Ok(Some(b)) => Ok(Some(b)),
            Ok(None) => {
                copy.done = true;
                self.settle_after_error().await;
                Ok(None)
            }
            Err(e) => {
                copy.done = true;
                self.settle_after_error().await;
                Err(e)
            }
        }
    }

    /// Gives a COPY OUT up before its end: cancelled or drained, as a
    /// stream.
    pub async fn copy_out_abandon(&mut self, copy: PgCopyOut) -> Result<()> {
        if copy.done {
            return Ok(());
        }
        let in_transaction = copy.in_transaction;
        drop(copy);
        self.abandon_statement(in_transaction).await
    }
}
