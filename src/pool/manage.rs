//! The backend trait the pool engine drives.
//!
//! The engine knows nothing about databases: it opens, checks, recycles and
//! closes connections only through [`Manage`]. `crate::backend::Manager`
//! implements it for SQLite and PostgreSQL; the engine's unit tests
//! implement it with a fake that fails, stalls and breaks on demand.

use std::time::{Duration, Instant};

use crate::error::Result;

/// Opens and looks after one kind of connection. Every method may block
/// (it may talk to the database) unless its documentation says otherwise;
/// the pool never calls one with a pool lock held.
pub trait Manage: Send + Sync + 'static {
    /// A live connection.
    type Conn: Send + 'static;

    /// Opens connection number `id`, with its set-up done (pragmas,
    /// `init_sql`, hooks): the pool hands it out as it comes.
    fn connect(&self, id: u64) -> Result<Self::Conn>;

    /// The checkout check (the `recycling` option), bounded by the caller's
    /// acquire deadline, which `deadline` returns (ask it only for I/O: it
    /// reads the clock). An error: the connection is discarded and the
    /// acquire goes on with another one.
    fn check(
        &self,
        conn: &mut Self::Conn,
        deadline: &mut dyn FnMut() -> Option<Instant>,
    ) -> Result<()>;

    /// Whether [`Manage::check`] takes a round trip, so an asynchronous
    /// acquire runs it on a blocking thread. Must not block.
    fn check_blocks(&self, conn: &Self::Conn) -> bool;

    /// The periodic health check of an idle connection.
    fn health_check(&self, conn: &mut Self::Conn, deadline: Option<Instant>) -> Result<()>;

    /// At release: makes the connection fit for the next borrower (rolls
    /// back, resets the session). False: discard it.
    fn recycle(&self, conn: &mut Self::Conn) -> bool;

    /// Whether an error has marked the connection broken (so a discard
    /// counts as "broken"). Must not block.
    fn is_broken(&self, conn: &Self::Conn) -> bool;

    /// What the pool connects to, for logs (no password). Must not block.
    fn describe(&self) -> String;

    /// The longest pause between connection attempts while they fail (the
    /// pause doubles from 100 ms up to this). A target that can fail over
    /// to another host keeps it short, so waiters are served soon after a
    /// new primary accepts. Must not block.
    fn max_backoff(&self) -> Duration {
        Duration::from_secs(10)
    }
}
