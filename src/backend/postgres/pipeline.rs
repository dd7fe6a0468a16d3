//! Pipelined batches below tokio-postgres.
//!
//! tokio-postgres ends every request with its own Sync, so a batch sent
//! through it makes the server answer, and flush, one ReadyForQuery per
//! parameter set. A batch here is written as libpq's pipeline mode writes
//! it: the statement parsed once (unnamed, with the parameter types the
//! cached statement has), then Bind/Execute per set and one Sync per chunk
//! of sets. The unnamed statement lives until the next Parse of one, and
//! needs no Close; a `DISCARD ALL` cannot make it stale. The protocol tap ([`super::net::Tapped`]) sends those
//! bytes on the connection's stream while the connection is idle and
//! takes the answers out of it before tokio-postgres reads on; messages
//! the server may send at any time (notices, notifications, parameter
//! changes) still reach tokio-postgres.
//!
//! The stream is the batch's from its first byte to its last answer:
//! tokio-postgres's own writes wait until then (a Close its statement
//! cache queued), the batch starts only between two of tokio-postgres's
//! messages, and the answers still owed to tokio-postgres's earlier
//! requests pass before the batch's are taken.
//!
//! The caller runs a batch inside a transaction (its own, or a savepoint
//! of the caller's): after an error the server skips to the chunk's Sync
//! and every later chunk fails in the aborted transaction, so the first
//! error is the batch's outcome and nothing of it stays.

use std::task::Waker;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use tokio_postgres::types::{ToSql, Type};

use super::db_error;
use crate::backend::pgtypes::PgParam;
use crate::error::{Error, Result, Status};
use crate::value::Value;

/// Parameter sets per Sync: the server flushes its answers at each Sync,
/// so they come back in a few large reads.
const SETS_PER_SYNC: usize = 1024;

/// A batch written past tokio-postgres, and what the server answered.
#[derive(Default)]
pub struct Exchange {
    out: Vec<u8>,
    written: usize,
    /// The first byte was sent.
    started: bool,
    /// ReadyForQuery messages owed to tokio-postgres's requests when the
    /// batch started: their answers come first, and pass.
    ahead: u64,
    /// Syncs in `out` whose ReadyForQuery has not been read yet.
    syncs_left: usize,
    /// Parameter sets that completed, and the rows they affected.
    completed: u64,
    rows: u64,
    /// The first error, naming its parameter set.
    error: Option<Error>,
    /// The connection ended before the last ReadyForQuery.
    lost: Option<String>,
    waker: Option<Waker>,
}

impl Exchange {
    /// Encodes `sql` with parameters of `types` and one Bind/Execute per
    /// set of `values`, a Sync after each chunk. A value its parameter
    /// cannot take fails here, before anything is sent, naming its set and
    /// its parameter (`name(i)`).
    pub fn encode(
        sql: &str,
        types: &[Type],
        sets: &[Vec<&Value>],
        name: impl Fn(usize) -> String,
    ) -> Result<Exchange> {
        let internal = |e: std::io::Error| Error::new(Status::Misuse, e.to_string());
        let formats: Vec<i16> = types
            .iter()
            .map(
                |ty| match ToSql::encode_format(&PgParam(&Value::Null), ty) {
                    tokio_postgres::types::Format::Text => 0,
                    tokio_postgres::types::Format::Binary => 1,
                },
            )
            .collect();
        let mut buf = BytesMut::with_capacity(sets.len().saturating_mul(32).min(1 << 24));
        frontend::parse("", sql, types.iter().map(Type::oid), &mut buf).map_err(internal)?;
        let mut syncs = 0;
        for (chunk_no, chunk) in sets.chunks(SETS_PER_SYNC).enumerate() {
            for (i, values) in chunk.iter().enumerate() {
                let set = chunk_no * SETS_PER_SYNC + i;
                let mut failed: Option<(usize, String)> = None;
                let bound = frontend::bind(
                    "",
                    "",
                    formats.iter().copied(),
                    values.iter().zip(types).enumerate(),
                    |(p, (value, ty)), out| match PgParam(value).to_sql(ty, out) {
                        Ok(tokio_postgres::types::IsNull::Yes) => Ok(IsNull::Yes),
                        Ok(tokio_postgres::types::IsNull::No) => Ok(IsNull::No),
                        Err(e) => {
                            failed = Some((p, e.to_string()));
                            Err(e)
                        }
                    },
                    Some(0),
                    &mut buf,
                );
                if let Err(e) = bound {
                    let message = match failed {
                        Some((p, why)) => format!("parameter {}: {why}", name(p)),
                        None => match e {
                            frontend::BindError::Conversion(e) => e.to_string(),
                            frontend::BindError::Serialization(e) => e.to_string(),
                        },
                    };
                    return Err(Error::parameter(message).in_set(set));
                }
                frontend::execute("", 0, &mut buf).map_err(internal)?;
            }
            frontend::sync(&mut buf);
            syncs += 1;
        }
        Ok(Exchange {
            out: buf.to_vec(),
            syncs_left: syncs,
            ..Exchange::default()
        })
    }

    /// A batch that ended before it started.
    pub fn lost(why: &str) -> Exchange {
        Exchange {
            lost: Some(why.to_owned()),
            ..Exchange::default()
        }
    }

    /// Starts sending, with `owed` ReadyForQuery messages still to come
    /// for tokio-postgres's requests.
    pub fn begin(&mut self, owed: u64) {
        self.started = true;
        self.ahead = owed;
    }

    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Messages read now are the batch's answers.
    pub fn is_taking(&self) -> bool {
        self.started && self.ahead == 0 && !self.is_finished()
    }

    /// A ReadyForQuery went by to tokio-postgres.
    pub fn passed_ready(&mut self) {
        self.ahead = self.ahead.saturating_sub(1);
    }

    /// tokio-postgres may not write while the batch holds the stream.
    pub fn holds_writes(&self) -> bool {
        self.started && !self.is_finished()
    }

    /// What is left to send.
    pub fn unsent(&self) -> &[u8] {
        &self.out[self.written..]
    }

    pub fn sent(&mut self, n: usize) {
        self.written += n;
    }

    pub fn is_finished(&self) -> bool {
        self.syncs_left == 0 || self.lost.is_some()
    }

    /// Takes one answer of the server (any message but the ones it may
    /// send at any time).
    pub fn answer(&mut self, kind: u8, body: &[u8]) {
        match kind {
            b'C' => {
                self.completed += 1;
                self.rows += rows_of_tag(body);
            }
            b'E' if self.error.is_none() => {
                self.error = Some(error_of(body).in_set(self.completed as usize));
            }
            b'Z' => {
                self.syncs_left = self.syncs_left.saturating_sub(1);
                if self.syncs_left == 0 {
                    self.wake();
                }
            }
            // ParseComplete, BindComplete, DataRow, EmptyQueryResponse,
            // PortalSuspended, COPY TO's messages: nothing to keep.
            _ => {}
        }
    }

    /// Whether an answer of this kind is read for its body.
    pub fn wants_body(kind: u8) -> bool {
        matches!(kind, b'C' | b'E')
    }

    /// The connection ended (or failed) before the batch's end.
    pub fn lose(&mut self, why: &str) {
        if !self.is_finished() {
            self.lost = Some(why.to_owned());
            self.wake();
        }
    }

    pub fn wait(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The rows affected, or the first error.
    pub fn outcome(self) -> Result<u64> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.lost {
            Some(why) => Err(Error::new(
                Status::ConnectionError,
                format!("the connection to the server was lost: {why}"),
            )
            .with_sqlstate("08006")),
            None => Ok(self.rows),
        }
    }
}

/// The row count at the end of a CommandComplete tag ("INSERT 0 5").
fn rows_of_tag(body: &[u8]) -> u64 {
    let tag = body.strip_suffix(&[0]).unwrap_or(body);
    let last = tag.rsplit(|&b| b == b' ').next().unwrap_or_default();
    std::str::from_utf8(last)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// An ErrorResponse's fields, as tokio-postgres's errors are mapped.
fn error_of(body: &[u8]) -> Error {
    let mut fields = body.split(|&b| b == 0);
    let (mut code, mut message, mut detail, mut hint, mut position, mut where_) =
        ("", "", None, None, None, None);
    while let Some(field) = fields.next().filter(|f| !f.is_empty()) {
        let text = std::str::from_utf8(&field[1..]).unwrap_or("");
        match field[0] {
            b'C' => code = text,
            b'M' => message = text,
            b'D' => detail = Some(text),
            b'H' => hint = Some(text),
            b'P' => position = text.parse().ok(),
            b'W' => where_ = Some(text),
            _ => {}
        }
    }
    db_error(code, message, detail, hint, position, where_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_give_their_row_counts() {
        assert_eq!(rows_of_tag(b"INSERT 0 5\0"), 5);
        assert_eq!(rows_of_tag(b"UPDATE 12\0"), 12);
        assert_eq!(rows_of_tag(b"CREATE TABLE\0"), 0);
    }

    #[test]
    fn error_fields_are_read() {
        let body = b"SERROR\0VERROR\0C23505\0Mduplicate key value\0Dkey (id)=(1) exists\0\0";
        let e = error_of(body);
        assert_eq!(e.sqlstate.as_deref(), Some("23505"));
        assert_eq!(e.message, "duplicate key value");
        assert_eq!(e.detail.as_deref(), Some("key (id)=(1) exists"));
    }
}
