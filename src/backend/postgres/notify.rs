//! LISTEN/NOTIFY: the driver keeps the notifications it reads (in any
//! operation, oldest first); waiting for one drives the idle connection
//! until one arrives, the deadline passes, the caller cancels, or the
//! connection is lost — which is an error, never a silent "nothing came".

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Instant;

use super::net::Deadline;
use super::PgConn;
use crate::error::{Error, Result, Status};

/// One notification: the sending backend's pid, the channel, the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub pid: i32,
    pub channel: String,
    pub payload: String,
}

impl From<tokio_postgres::Notification> for Notification {
    fn from(n: tokio_postgres::Notification) -> Notification {
        Notification {
            pid: n.process_id(),
            channel: n.channel().to_owned(),
            payload: n.payload().to_owned(),
        }
    }
}

impl PgConn {
    /// The oldest notification received, waiting until `deadline` (`None`:
    /// no bound) for one. `Ok(None)` when the deadline passed first.
    pub async fn next_notification(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Notification>> {
        let mut timer = deadline.map(Deadline::at);
        let interrupt = self.interrupt.clone();
        let mut cancelled = pin!(async {
            match interrupt.as_deref() {
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
        let driver = &mut self.driver;
        std::future::poll_fn(|cx| {
            driver.poll_connection(cx);
            if let Some(n) = driver.notifications.pop_front() {
                return Poll::Ready(Ok(Some(n.into())));
            }
            if driver.is_closed() {
                let why = driver
                    .lost
                    .clone()
                    .unwrap_or_else(|| "the connection was closed".to_owned());
                return Poll::Ready(Err(Error::new(
                    Status::ConnectionError,
                    format!("the connection to the server was lost while listening: {why}"),
                )
                .with_sqlstate("08006")));
            }
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Error::new(
                    Status::Cancelled,
                    "the operation was cancelled",
                )
                .with_sqlstate("57014")));
            }
            if let Some(t) = timer.as_mut() {
                if Pin::new(t).poll(cx).is_ready() {
                    return Poll::Ready(Ok(None));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Forgets notifications not yet taken (at release: the next borrower
    /// must not see them).
    pub fn discard_notifications(&mut self) {
        self.driver.notifications.clear();
    }
}
