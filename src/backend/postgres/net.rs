//! Sockets of the PostgreSQL engine, the protocol tap, and the loop that
//! drives a connection.
//!
//! Whoever waits for a connection drives its I/O:
//! * a blocking call polls the statement and the connection on the calling
//!   thread and sleeps in poll(2) on the socket until its deadline: one
//!   wake-up per round trip, no other thread involved, and every wait is
//!   bounded;
//! * an asynchronous operation is polled by the library's tokio runtime:
//!   the socket registers with tokio's reactor the first time it is polled
//!   there, and waiting costs no thread;
//! * a task of the host's event loop ([`Stepper`]) is polled on the loop's
//!   thread, which then waits on the sockets and deadline it reports.
//!
//! The tap reads the protocol's framing as bytes pass (ReadyForQuery's
//! transaction status, CommandComplete tags, Syncs sent), so transaction
//! state and COMMIT outcomes are what the server said, never a guess.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::pipeline::Exchange;

// ---------------------------------------------------------------------------
// Blocking mode

/// What a blocking driver waits for after a round of polling.
#[derive(Default)]
struct Waits {
    fds: Vec<libc::pollfd>,
    wake_at: Option<Instant>,
}

thread_local! {
    /// Set while a blocking driver polls on this thread: sockets that would
    /// block and timers that are not due record what they wait for here
    /// instead of registering with tokio.
    static BLOCKING: RefCell<Option<Waits>> = const { RefCell::new(None) };
}

/// Records that `fd` waits for `events`; false when no blocking driver runs
/// on this thread.
fn wait_blocking(fd: RawFd, events: i16) -> bool {
    BLOCKING.with(|b| match b.borrow_mut().as_mut() {
        Some(waits) => {
            match waits.fds.iter_mut().find(|p| p.fd == fd) {
                Some(p) => p.events |= events,
                None => waits.fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                }),
            }
            true
        }
        None => false,
    })
}

/// Records a timer for the blocking driver; false when none runs here.
fn wake_blocking_at(at: Instant) -> bool {
    BLOCKING.with(|b| match b.borrow_mut().as_mut() {
        Some(waits) => {
            waits.wake_at = Some(waits.wake_at.map_or(at, |w| w.min(at)));
            true
        }
        None => false,
    })
}

/// A deadline that works under both drivers: the blocking one sleeps in
/// poll(2) until it, tokio's timer wakes an async task.
pub struct Deadline {
    at: Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    pub fn at(at: Instant) -> Deadline {
        Deadline { at, sleep: None }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.at {
            return Poll::Ready(());
        }
        if wake_blocking_at(this.at) {
            return Poll::Pending;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            // No driver to wake us: report the deadline as passed rather
            // than wait forever.
            return Poll::Ready(());
        }
        this.sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(this.at.into())))
            .as_mut()
            .poll(cx)
    }
}

/// A blocking drive found nothing to wait for (no socket, no timer): the
/// future can never finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stuck;

/// The blocking driver's waker: a flag, plus an eventfd that interrupts
/// its poll(2) when the wake comes from another thread (a cancel).
struct Flag {
    woken: AtomicBool,
    sleeping: AtomicBool,
    /// The eventfd was written since it was last drained (draining an
    /// unwritten one would be a wasted system call).
    written: AtomicBool,
    /// The thread's eventfd, shared by its drivers' flags (a waker kept
    /// past its call keeps the descriptor open; a late wake through it is
    /// a spurious, harmless wake-up of a later call).
    event: Option<Arc<std::os::fd::OwnedFd>>,
}

thread_local! {
    static THREAD_EVENT: Option<Arc<std::os::fd::OwnedFd>> = {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        // SAFETY: a new, valid descriptor that nothing else owns.
        (fd >= 0).then(|| Arc::new(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    };
}

impl Flag {
    fn new() -> Flag {
        Flag {
            woken: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            written: AtomicBool::new(false),
            event: THREAD_EVENT.with(Clone::clone),
        }
    }

    fn event_fd(&self) -> Option<RawFd> {
        self.raw_event_fd()
    }

    fn raw_event_fd(&self) -> Option<RawFd> {
        self.event.as_deref().map(AsRawFd::as_raw_fd)
    }

    /// Drains the eventfd if this flag wrote it (a stepper's eventfd is its
    /// own: nothing else writes it).
    fn drain_if_written(&self) {
        if self.written.load(Ordering::SeqCst) {
            self.drain();
        }
    }

    fn drain(&self) {
        self.written.store(false, Ordering::SeqCst);
        if let Some(fd) = self.raw_event_fd() {
            let mut buf = [0u8; 8];
            // SAFETY: reads at most 8 bytes into `buf`.
            unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 8) };
        }
    }

    fn signal(&self) {
        self.woken.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            if let Some(fd) = self.raw_event_fd() {
                let one: u64 = 1;
                // SAFETY: writes 8 bytes from `one`.
                unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
                // After the write: a drain that misses it leaves the
                // descriptor readable, and the next one reads it.
                self.written.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.signal();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.signal();
    }
}

thread_local! {
    /// The last blocking driver's waker, reused when nobody else holds it.
    static IDLE_FLAG: RefCell<Option<Arc<Flag>>> = const { RefCell::new(None) };
}

/// Runs `fut` to completion on this thread, sleeping in poll(2) on the
/// sockets it waits for (until the earliest [`Deadline`] it waits for).
pub fn block_on<F: Future>(fut: F) -> Result<F::Output, Stuck> {
    let mut fut = std::pin::pin!(fut);
    let flag = IDLE_FLAG
        .with(|f| f.borrow_mut().take())
        .filter(|f| Arc::strong_count(f) == 1)
        .unwrap_or_else(|| Arc::new(Flag::new()));
    flag.woken.store(false, Ordering::SeqCst);
    let result = drive_blocking(fut.as_mut(), &flag);
    IDLE_FLAG.with(|f| *f.borrow_mut() = Some(flag));
    result
}

fn drive_blocking<F: Future>(mut fut: Pin<&mut F>, flag: &Arc<Flag>) -> Result<F::Output, Stuck> {
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut waits = Waits::default();
    loop {
        waits.fds.clear();
        waits.wake_at = None;
        let previous = BLOCKING.with(|b| b.borrow_mut().replace(std::mem::take(&mut waits)));
        let outcome = fut.as_mut().poll(&mut cx);
        waits = BLOCKING
            .with(|b| std::mem::replace(&mut *b.borrow_mut(), previous))
            .unwrap_or_default();
        if let Poll::Ready(v) = outcome {
            return Ok(v);
        }
        if flag.woken.swap(false, Ordering::SeqCst) {
            continue;
        }
        let timeout_ms = match waits.wake_at {
            None if waits.fds.is_empty() => return Err(Stuck),
            None => -1,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    continue;
                }
                // Round up: waking a little late beats spinning.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            }
        };
        // A wake from another thread (a cancel) interrupts the sleep.
        let event = flag.event_fd();
        if let Some(fd) = event {
            waits.fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        flag.sleeping.store(true, Ordering::SeqCst);
        if !flag.woken.load(Ordering::SeqCst) {
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
            // A failure (EINTR) just means: poll the future again.
            unsafe {
                libc::poll(
                    waits.fds.as_mut_ptr(),
                    waits.fds.len() as libc::nfds_t,
                    timeout_ms,
                )
            };
        }
        flag.sleeping.store(false, Ordering::SeqCst);
        if event.is_some() && waits.fds.last().is_some_and(|p| p.revents != 0) {
            flag.drain();
        }
    }
}

/// Drives a future for a host's event loop, one step per call: each step
/// polls it on the calling thread the way the blocking driver does, but
/// instead of sleeping in poll(2) it reports what the future waits for
/// (descriptors and a deadline), so the host's loop watches them and calls
/// [`Stepper::step`] again when one is ready. No library thread is
/// involved, and waking the host is the socket's own readiness.
pub struct Stepper {
    flag: Arc<Flag>,
    waits: Waits,
}

/// The outcome of one [`Stepper::step`].
pub enum Step<T> {
    Ready(T),
    /// Waiting: see [`Stepper::fds`] and [`Stepper::wake_at`].
    Waiting,
    /// Nothing to wait for: the future can never finish.
    Stuck,
}

/// Rounds of polling one step makes while the future keeps waking itself
/// before it reports "poll again now" (a deadline already due).
const STEP_ROUNDS: u32 = 16;

impl Stepper {
    /// For futures woken only by what they record (sockets, deadlines).
    pub fn new() -> Stepper {
        Stepper {
            flag: Arc::new(Flag {
                woken: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
                written: AtomicBool::new(false),
                event: None,
            }),
            waits: Waits::default(),
        }
    }

    /// For futures woken from other threads (work handed to a library
    /// thread): a wake makes the stepper's own eventfd readable, and a
    /// step that records nothing else waits on it.
    pub fn with_wakeups() -> io::Result<Stepper> {
        let spare = {
            let mut spare = SPARE_EVENTS.lock().unwrap_or_else(|p| p.into_inner());
            let pid = std::process::id();
            if spare.0 != pid {
                // Inherited across fork(2): shared with the parent, which
                // may still use them; this process makes its own.
                spare.0 = pid;
                spare.1.clear();
            }
            spare.1.pop()
        };
        let event = match spare {
            Some(event) => event,
            None => {
                // SAFETY: plain system call; the result is checked.
                let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: a new, valid descriptor that nothing else owns.
                Arc::new(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
            }
        };
        Ok(Stepper {
            flag: Arc::new(Flag {
                woken: AtomicBool::new(false),
                // Always signal the descriptor: the host's loop, not this
                // stepper, does the sleeping.
                sleeping: AtomicBool::new(true),
                // (Spare descriptors were drained.)
                written: AtomicBool::new(false),
                event: Some(event),
            }),
            waits: Waits::default(),
        })
    }

    /// Polls `fut` until it finishes or waits for something outside it.
    pub fn step<F: Future + ?Sized>(&mut self, mut fut: Pin<&mut F>) -> Step<F::Output> {
        let waker = Waker::from(self.flag.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..STEP_ROUNDS {
            self.waits.fds.clear();
            self.waits.wake_at = None;
            self.flag.woken.store(false, Ordering::SeqCst);
            // Before polling: a wake during the poll leaves it readable.
            self.flag.drain_if_written();
            let previous =
                BLOCKING.with(|b| b.borrow_mut().replace(std::mem::take(&mut self.waits)));
            let outcome = fut.as_mut().poll(&mut cx);
            self.waits = BLOCKING
                .with(|b| std::mem::replace(&mut *b.borrow_mut(), previous))
                .unwrap_or_default();
            if let Poll::Ready(v) = outcome {
                return Step::Ready(v);
            }
            if self.flag.woken.load(Ordering::SeqCst) {
                continue;
            }
            if self.waits.fds.is_empty() {
                if let Some(fd) = self.flag.event_fd() {
                    self.waits.fds.push(libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
            match self.waits.wake_at {
                None if self.waits.fds.is_empty() => return Step::Stuck,
                Some(at) if at <= Instant::now() => continue,
                _ => return Step::Waiting,
            }
        }
        // Still waking itself: the host polls again at once.
        self.waits.fds.clear();
        self.waits.wake_at = Some(Instant::now());
        Step::Waiting
    }

    /// [`Stepper::step`], and while the future waits, sleeps in poll(2) on
    /// what it waits for (and steps again) until `until`; returns early,
    /// still waiting, once `stop_fd` is readable or a signal interrupts.
    /// For a host loop with nothing else to do: waiting here instead of in
    /// the loop saves the loop's round of bookkeeping.
    pub fn step_until<F: Future + ?Sized>(
        &mut self,
        mut fut: Pin<&mut F>,
        until: Instant,
        stop_fd: Option<RawFd>,
    ) -> Step<F::Output> {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        loop {
            let step = self.step(fut.as_mut());
            if !matches!(step, Step::Waiting) {
                return step;
            }
            let now = Instant::now();
            let end = self.waits.wake_at.map_or(until, |w| w.min(until));
            if now >= until || self.waits.fds.is_empty() {
                return step;
            }
            if end <= now {
                continue;
            }
            if self.waits_only_for_wakes() && spin_until_woken(&self.flag, end.min(now + WAKE_SPIN))
            {
                continue;
            }
            fds.clear();
            fds.extend_from_slice(&self.waits.fds);
            if let Some(fd) = stop_fd {
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let n = sleep_in_poll(&mut fds, end - now);
            if n < 0 || (stop_fd.is_some() && fds.last().is_some_and(|p| p.revents != 0)) {
                return step;
            }
        }
    }

    /// Whether the future waits only for a wake from another thread (work
    /// handed to a library thread), not for a socket or a deadline.
    fn waits_only_for_wakes(&self) -> bool {
        self.waits.wake_at.is_none()
            && self.waits.fds.len() == 1
            && self.flag.event_fd() == Some(self.waits.fds[0].fd)
    }

    /// After [`Step::Waiting`]: the descriptors and `poll(2)` events waited for.
    pub fn fds(&self) -> impl Iterator<Item = (RawFd, i16)> + '_ {
        self.waits.fds.iter().map(|p| (p.fd, p.events))
    }

    /// After [`Step::Waiting`]: when to step again at the latest.
    pub fn wake_at(&self) -> Option<Instant> {
        self.waits.wake_at
    }
}

/// How long [`Stepper::step_until`] spins for a wake from a library thread
/// before it sleeps: a quick statement handed to one (SQLite) then
/// completes with no sleep and wake-up of the waiting thread.
const WAKE_SPIN: std::time::Duration = std::time::Duration::from_micros(40);

/// Spins until `flag` is woken (true) or `until` (false); at once false on
/// a single CPU, where the waker cannot run meanwhile. A wake while it
/// spins writes no eventfd (the spinner sees the flag).
fn spin_until_woken(flag: &Flag, until: Instant) -> bool {
    static SPIN_PAYS: once_cell::sync::Lazy<bool> = once_cell::sync::Lazy::new(|| {
        std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
    });
    if !*SPIN_PAYS {
        return false;
    }
    let was_sleeping = flag.sleeping.swap(false, Ordering::SeqCst);
    let mut spins = 0u32;
    while !flag.woken.load(Ordering::SeqCst) {
        spins += 1;
        if spins % 32 == 0 {
            if Instant::now() >= until {
                break;
            }
            // The library thread may be queued behind this one on its CPU.
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    flag.sleeping.store(was_sleeping, Ordering::SeqCst);
    // Looked at after `sleeping` is back: a wake after this writes the
    // eventfd, one before it is seen here.
    flag.woken.load(Ordering::SeqCst)
}

/// poll(2) with a timeout in microseconds (ppoll where available); the
/// result of the call (-1 on EINTR).
fn sleep_in_poll(fds: &mut [libc::pollfd], timeout: std::time::Duration) -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs; no
        // signal mask is changed.
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: as above.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) }
    }
}

/// Eventfds of finished steppers, kept for the next ones (creating and
/// closing one per operation costs two system calls).
/// The process they belong to comes first.
#[allow(clippy::type_complexity)]
static SPARE_EVENTS: Mutex<(u32, Vec<Arc<std::os::fd::OwnedFd>>)> = Mutex::new((0, Vec::new()));
const SPARE_EVENTS_KEPT: usize = 64;

impl Drop for Stepper {
    fn drop(&mut self) {
        // Only when no waker outlives the stepper: a late wake into a
        // reused descriptor would be a spurious (harmless) wake-up, but
        // none can come then.
        if Arc::strong_count(&self.flag) != 1 {
            return;
        }
        let Some(event) = self.flag.event.clone() else {
            return;
        };
        self.flag.drain_if_written();
        // (After a fork, the next `with_wakeups` finds the pool stale.)
        let mut spare = SPARE_EVENTS.lock().unwrap_or_else(|p| p.into_inner());
        if spare.1.len() < SPARE_EVENTS_KEPT {
            spare.1.push(event);
        }
    }
}

impl Default for Stepper {
    fn default() -> Stepper {
        Stepper::new()
    }
}

/// Polls once on this thread without waiting for anything (sockets that
/// would block just say so).
pub fn poll_now(f: impl FnOnce(&mut Context<'_>)) {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let previous = BLOCKING.with(|b| b.borrow_mut().replace(Waits::default()));
    f(&mut cx);
    BLOCKING.with(|b| *b.borrow_mut() = previous);
}

/// A waker that does nothing (`Waker::noop` needs a newer Rust than the
/// crate's minimum).
pub fn noop_waker() -> Waker {
    struct Nothing;
    impl Wake for Nothing {
        fn wake(self: Arc<Self>) {}
    }
    Waker::from(Arc::new(Nothing))
}

/// Whether a blocking driver runs on this thread (vs. an async task).
pub fn in_blocking_driver() -> bool {
    BLOCKING.with(|b| b.borrow().is_some())
}

// ---------------------------------------------------------------------------
// The socket

enum Stream {
    Tcp(std::net::TcpStream),
    Unix(UnixStream),
}

/// A non-blocking TCP or Unix socket that waits in blocking mode (poll(2)
/// on the calling thread) or through tokio's reactor, whichever is driving.
pub struct PgSocket {
    /// Declared before `stream` so it deregisters before the fd closes.
    registration: Option<AsyncFd<RawFd>>,
    stream: Stream,
    fd: RawFd,
    /// Write side shut down (cancel requests: then wait for the server's EOF).
    shut: bool,
}

impl PgSocket {
    pub fn tcp(stream: std::net::TcpStream) -> io::Result<PgSocket> {
        stream.set_nonblocking(true)?;
        let fd = stream.as_raw_fd();
        Ok(PgSocket {
            registration: None,
            stream: Stream::Tcp(stream),
            fd,
            shut: false,
        })
    }

    pub fn unix(stream: UnixStream) -> io::Result<PgSocket> {
        stream.set_nonblocking(true)?;
        let fd = stream.as_raw_fd();
        Ok(PgSocket {
            registration: None,
            stream: Stream::Unix(stream),
            fd,
            shut: false,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn tcp_stream(&self) -> Option<&std::net::TcpStream> {
        match &self.stream {
            Stream::Tcp(t) => Some(t),
            Stream::Unix(_) => None,
        }
    }

    /// Waits until the socket is writable (a non-blocking connect has
    /// finished, one way or the other).
    pub async fn writable(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| loop {
            let mut p = libc::pollfd {
                fd: self.fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd; zero timeout.
            if unsafe { libc::poll(&mut p, 1, 0) } > 0 {
                return Poll::Ready(Ok(()));
            }
            match self.poll_ready(cx, Interest::WRITABLE) {
                Poll::Ready(Ok(())) => continue,
                other => return other,
            }
        })
        .await
    }

    fn io<R>(&mut self, f: impl FnOnce(&mut Stream) -> io::Result<R>) -> io::Result<R> {
        f(&mut self.stream)
    }

    /// Waits (or arranges to be woken) until `interest` may be ready.
    fn poll_ready(&mut self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
        let events = if interest.is_readable() {
            libc::POLLIN
        } else {
            libc::POLLOUT
        };
        if wait_blocking(self.fd, events) {
            return Poll::Pending;
        }
        if self.registration.is_none() {
            if tokio::runtime::Handle::try_current().is_err() {
                return Poll::Ready(Err(io::Error::other(
                    "internal: a PostgreSQL socket was polled outside any driver",
                )));
            }
            // SAFETY: `self.fd` belongs to `self.stream`, which is never
            // replaced and is dropped after the registration (field order).
            let registered = unsafe {
                AsyncFd::register_with_interest(self.fd, Interest::READABLE | Interest::WRITABLE)
            };
            self.registration = Some(registered.map_err(io::Error::from)?);
        }
        let registration = self.registration.as_ref().expect("registered above");
        let ready = if interest.is_readable() {
            registration.poll_read_ready(cx)
        } else {
            registration.poll_write_ready(cx)
        };
        match ready {
            Poll::Ready(Ok(mut guard)) => {
                // The caller retries the I/O; a WouldBlock then waits again.
                guard.clear_ready();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Bytes one socket read takes at most.
const READ_SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    /// Where a socket read lands before it is copied to the caller: zeroed
    /// once per thread. Reading into the caller's buffer would zero all of
    /// its spare capacity on every read (`ReadBuf::initialize_unfilled`:
    /// tokio-postgres's codec passes it uninitialised), a memset of 8 KiB
    /// or more for a 20-byte answer.
    static READ_SCRATCH: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; READ_SCRATCH_SIZE].into_boxed_slice());
}

impl AsyncRead for PgSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let read: io::Result<usize> = READ_SCRATCH.with_borrow_mut(|scratch| {
                let scratch = &mut scratch[..buf.remaining().min(READ_SCRATCH_SIZE)];
                let n = this.io(|s| match s {
                    Stream::Tcp(t) => t.read(scratch),
                    Stream::Unix(u) => u.read(scratch),
                })?;
                buf.put_slice(&scratch[..n]);
                Ok(n)
            });
            match read {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
            match this.poll_ready(cx, Interest::READABLE) {
                Poll::Ready(Ok(())) => continue,
                other => return other,
            }
        }
    }
}

impl AsyncWrite for PgSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.io(|s| match s {
                Stream::Tcp(t) => t.write(data),
                Stream::Unix(u) => u.write(data),
            }) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
            match this.poll_ready(cx, Interest::WRITABLE) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts the write side, then waits for the server to close its side:
    /// for a cancel request, the server has acted on it once it closes.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut {
            let r = this.io(|s| match s {
                Stream::Tcp(t) => t.shutdown(std::net::Shutdown::Write),
                Stream::Unix(u) => u.shutdown(std::net::Shutdown::Write),
            });
            if let Err(e) = r {
                if e.kind() != io::ErrorKind::NotConnected {
                    return Poll::Ready(Err(e));
                }
            }
            this.shut = true;
        }
        let mut scratch = [0u8; 64];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *this).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                // A reset after our request is as good as a close.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The protocol tap

/// Which stream layer the tap reads: none until the connection has
/// started, then the plain socket or the TLS plaintext.
pub const TAP_OFF: u8 = 0;
pub const TAP_RAW: u8 = 1;
pub const TAP_TLS: u8 = 2;

/// What the tap has seen of the protocol. Written by whichever thread
/// drives the connection, read by the connection's owner afterwards.
pub struct Tap {
    level: AtomicU8,
    /// The transaction status of the last ReadyForQuery: `I`, `T` or `E`.
    status: AtomicU8,
    /// Messages sent that the server answers with one ReadyForQuery each
    /// (Sync, Query), and ReadyForQuery messages received.
    syncs_sent: AtomicU64,
    ready_seen: AtomicU64,
    /// The tag of the last CommandComplete ("COMMIT", "ROLLBACK", ...).
    last_tag: Mutex<String>,
    /// TLS was negotiated (set by the TLS connector).
    tls: AtomicBool,
    /// A pipelined batch is being written past tokio-postgres: the reading
    /// layer sends it and takes its answers out of the stream.
    exchanging: AtomicBool,
    exchange: Mutex<Option<Exchange>>,
}

impl Tap {
    pub fn new() -> Arc<Tap> {
        Arc::new(Tap {
            level: AtomicU8::new(TAP_OFF),
            status: AtomicU8::new(b'I'),
            syncs_sent: AtomicU64::new(0),
            ready_seen: AtomicU64::new(0),
            last_tag: Mutex::new(String::new()),
            tls: AtomicBool::new(false),
            exchanging: AtomicBool::new(false),
            exchange: Mutex::new(None),
        })
    }

    pub fn mark_tls(&self) {
        self.tls.store(true, Ordering::Release);
    }

    pub fn tls_started(&self) -> bool {
        self.tls.load(Ordering::Acquire)
    }

    /// Starts reading at `level`, once the connection is ready for queries.
    pub fn start(&self, level: u8) {
        self.status.store(b'I', Ordering::Release);
        self.level.store(level, Ordering::Release);
    }

    pub fn status(&self) -> u8 {
        self.status.load(Ordering::Acquire)
    }

    /// Every request sent has been answered up to its ReadyForQuery.
    pub fn settled(&self) -> bool {
        self.ready_seen.load(Ordering::Acquire) >= self.syncs_sent.load(Ordering::Acquire)
    }

    pub fn last_tag(&self) -> String {
        self.last_tag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn exchange(&self) -> std::sync::MutexGuard<'_, Option<Exchange>> {
        self.exchange.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a batch to the stream, to be sent while the connection is
    /// driven; only while no request of tokio-postgres is in flight.
    pub fn start_exchange(&self, exchange: Exchange) {
        *self.exchange() = Some(exchange);
        self.exchanging.store(true, Ordering::Release);
    }

    /// The batch, once every chunk is answered (or the connection ended).
    pub fn poll_exchange(&self, cx: &mut Context<'_>) -> Poll<Exchange> {
        let mut slot = self.exchange();
        match slot.as_mut() {
            Some(e) if e.is_finished() => {
                self.exchanging.store(false, Ordering::Release);
                Poll::Ready(slot.take().expect("checked above"))
            }
            Some(e) => {
                e.wait(cx.waker());
                Poll::Pending
            }
            None => Poll::Ready(Exchange::lost("internal: no batch was in flight")),
        }
    }

    fn lose_exchange(&self, why: &str) {
        if self.exchanging.load(Ordering::Acquire) {
            if let Some(e) = self.exchange().as_mut() {
                e.lose(why);
            }
        }
    }
}

/// Splits a byte stream into protocol messages (type byte, length, body)
/// as it passes, keeping the bodies of the few messages the tap reads.
#[derive(Default)]
struct Framer {
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
    body: Vec<u8>,
    keep: bool,
    /// The current message is taken out of the stream.
    taken: bool,
}

/// What a framer's reader does with each message.
trait Route {
    /// Called at a message's first byte: whether it is taken out of the
    /// stream (not passed on to the reader above).
    fn takes(&mut self, _kind: u8) -> bool {
        false
    }
    /// Whether the message's body is wanted.
    fn keeps(&self, kind: u8, taken: bool) -> bool;
    fn message(&mut self, kind: u8, body: &[u8], taken: bool);
}

impl Framer {
    /// Frames `data`; returns the byte ranges of messages taken out.
    fn walk(&mut self, data: &[u8], route: &mut impl Route, taken: &mut Vec<(usize, usize)>) {
        let mut pos = 0;
        while pos < data.len() {
            let start = pos;
            if self.header_len == 0 {
                self.taken = route.takes(data[pos]);
            }
            if self.header_len < 5 {
                let take = (5 - self.header_len).min(data.len() - pos);
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&data[pos..pos + take]);
                self.header_len += take;
                pos += take;
                if self.header_len == 5 {
                    let len = u32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]) as usize;
                    self.body_left = len.saturating_sub(4);
                    self.keep = route.keeps(self.header[0], self.taken);
                    self.body.clear();
                }
            }
            if self.header_len == 5 {
                let take = self.body_left.min(data.len() - pos);
                if self.keep {
                    self.body.extend_from_slice(&data[pos..pos + take]);
                }
                self.body_left -= take;
                pos += take;
                if self.body_left == 0 {
                    route.message(self.header[0], &self.body, self.taken);
                    self.header_len = 0;
                }
            }
            if self.taken {
                match taken.last_mut() {
                    Some(last) if last.1 == start => last.1 = pos,
                    _ => taken.push((start, pos)),
                }
            }
        }
    }

    /// Between two messages.
    fn at_boundary(&self) -> bool {
        self.header_len == 0
    }

    /// Frames `data` (nothing taken out).
    fn feed(&mut self, data: &[u8], route: &mut impl Route) {
        self.walk(data, route, &mut Vec::new());
    }
}

/// Removes the `taken` ranges (ascending, disjoint) from `data`; returns
/// the length of what is left, moved to the front.
fn cut(data: &mut [u8], taken: &[(usize, usize)]) -> usize {
    let mut kept = 0;
    let mut from = 0;
    for &(start, end) in taken
        .iter()
        .chain(std::iter::once(&(data.len(), data.len())))
    {
        if from < start {
            data.copy_within(from..start, kept);
            kept += start - from;
        }
        from = end;
    }
    kept
}

/// The tap's reading of what the server sends: transaction status, tags,
/// and the answers of a pipelined batch, which it takes out of the stream.
struct ReadRoute<'a> {
    tap: &'a Tap,
    exchange: Option<std::sync::MutexGuard<'a, Option<Exchange>>>,
}

impl ReadRoute<'_> {
    fn exchange(&mut self) -> Option<&mut Exchange> {
        self.exchange.as_mut()?.as_mut()
    }
}

impl Route for ReadRoute<'_> {
    fn takes(&mut self, kind: u8) -> bool {
        // Notices, notifications and parameter changes may come at any
        // time: they are tokio-postgres's.
        !matches!(kind, b'A' | b'N' | b'S') && self.exchange().is_some_and(|e| e.is_taking())
    }

    fn keeps(&self, kind: u8, taken: bool) -> bool {
        matches!(kind, b'Z' | b'C') || (taken && Exchange::wants_body(kind))
    }

    fn message(&mut self, kind: u8, body: &[u8], taken: bool) {
        let tap = self.tap;
        match kind {
            b'Z' => {
                if let Some(&s) = body.first() {
                    tap.status.store(s, Ordering::Release);
                }
                tap.ready_seen.fetch_add(1, Ordering::AcqRel);
            }
            // CopyInResponse: the server ignores Sync messages while in
            // copy-in mode, so the Sync that followed the COPY's Execute
            // gets no ReadyForQuery of its own (CopyDone/CopyFail's does).
            b'G' => {
                tap.ready_seen.fetch_add(1, Ordering::AcqRel);
            }
            b'C' => {
                let tag = body.strip_suffix(&[0]).unwrap_or(body);
                let mut last = tap.last_tag.lock().unwrap_or_else(|p| p.into_inner());
                last.clear();
                last.push_str(&String::from_utf8_lossy(tag));
            }
            _ => {}
        }
        if let Some(e) = self.exchange() {
            if taken {
                e.answer(kind, body);
            } else if kind == b'Z' {
                e.passed_ready();
            }
        }
    }
}

/// The tap's reading of what the client sends: the requests that get a
/// ReadyForQuery each.
struct WriteRoute<'a>(&'a Tap);

impl Route for WriteRoute<'_> {
    fn keeps(&self, _: u8, _: bool) -> bool {
        false
    }

    fn message(&mut self, kind: u8, _: &[u8], _: bool) {
        if matches!(kind, b'S' | b'Q') {
            self.0.syncs_sent.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// A stream with the tap on it at one layer.
pub struct Tapped<S> {
    inner: S,
    tap: Arc<Tap>,
    level: u8,
    read: Framer,
    write: Framer,
    /// Scratch: the byte ranges of a read taken out for a batch.
    taken: Vec<(usize, usize)>,
}

impl<S> Tapped<S> {
    pub fn new(inner: S, tap: Arc<Tap>, level: u8) -> Tapped<S> {
        Tapped {
            inner,
            tap,
            level,
            read: Framer::default(),
            write: Framer::default(),
            taken: Vec::new(),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn tap(&self) -> Arc<Tap> {
        self.tap.clone()
    }

    fn active(&self) -> bool {
        self.tap.level.load(Ordering::Acquire) == self.level
    }

    /// Reads the protocol in `data`, just read; returns how much of it is
    /// left for the reader above (moved to the front) once a batch's
    /// answers are taken out.
    fn saw_read(&mut self, data: &mut [u8]) -> usize {
        let tap = &*self.tap;
        let exchange = tap
            .exchanging
            .load(Ordering::Acquire)
            .then(|| tap.exchange());
        let mut route = ReadRoute { tap, exchange };
        self.taken.clear();
        self.read.walk(data, &mut route, &mut self.taken);
        if self.taken.is_empty() {
            data.len()
        } else {
            cut(data, &self.taken)
        }
    }

    fn holds_writes(&self) -> bool {
        self.tap.exchanging.load(Ordering::Acquire)
            && self
                .tap
                .exchange()
                .as_ref()
                .is_some_and(Exchange::holds_writes)
    }

    fn saw_write(&mut self, data: &[u8]) {
        self.write.feed(data, &mut WriteRoute(&self.tap));
    }
}

impl<S: AsyncWrite + Unpin> Tapped<S> {
    /// Sends what it can of a pipelined batch (reads go on meanwhile, so
    /// the server never waits on a full socket buffer of its answers).
    fn send_exchange(&mut self, cx: &mut Context<'_>) {
        let tap = self.tap.clone();
        let mut slot = tap.exchange();
        let Some(exchange) = slot.as_mut() else {
            return;
        };
        if !exchange.is_started() {
            if !self.write.at_boundary() {
                // tokio-postgres is half-way through a message: it goes on.
                return;
            }
            let owed = tap
                .syncs_sent
                .load(Ordering::Acquire)
                .saturating_sub(tap.ready_seen.load(Ordering::Acquire));
            exchange.begin(owed);
        }
        while !exchange.unsent().is_empty() && !exchange.is_finished() {
            match Pin::new(&mut self.inner).poll_write(cx, exchange.unsent()) {
                Poll::Ready(Ok(0)) => exchange.lose("the connection closed while a batch was sent"),
                Poll::Ready(Ok(n)) => {
                    self.write
                        .feed(&exchange.unsent()[..n], &mut WriteRoute(&tap));
                    exchange.sent(n);
                }
                Poll::Ready(Err(e)) => exchange.lose(&e.to_string()),
                Poll::Pending => break,
            }
        }
        // A TLS layer sends what it buffered.
        if let Poll::Ready(Err(e)) = Pin::new(&mut self.inner).poll_flush(cx) {
            exchange.lose(&e.to_string());
        }
    }
}

impl<S> Drop for Tapped<S> {
    fn drop(&mut self) {
        if self.active() {
            self.tap.lose_exchange("the connection was closed");
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.active() || buf.remaining() == 0 {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.tap.exchanging.load(Ordering::Acquire) {
            this.send_exchange(cx);
        }
        loop {
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() == before => {
                    this.tap.lose_exchange("the server closed the connection");
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => {
                    let kept = this.saw_read(&mut buf.filled_mut()[before..]);
                    buf.set_filled(before + kept);
                    // A read that was all the batch's answers is no read
                    // (an empty one would mean end of stream): read on.
                    if kept > 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(e)) => {
                    this.tap.lose_exchange(&e.to_string());
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.active() && this.holds_writes() {
            // A batch has the stream; the request is sent after it (the
            // batch's end wakes whoever drives the connection).
            return Poll::Pending;
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            if this.active() {
                this.saw_write(&data[..n]);
            }
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn framer_splits_messages_across_reads() {
        let mut f = Framer::default();
        let mut seen = Vec::new();
        // CommandComplete "COMMIT", then ReadyForQuery 'I', fed byte by byte.
        let mut bytes = vec![b'C', 0, 0, 0, 11];
        bytes.extend_from_slice(b"COMMIT\0");
        bytes.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
        struct Collect<'a>(&'a mut Vec<(u8, Vec<u8>)>);
        impl Route for Collect<'_> {
            fn keeps(&self, _: u8, _: bool) -> bool {
                true
            }
            fn message(&mut self, kind: u8, body: &[u8], _: bool) {
                self.0.push((kind, body.to_vec()));
            }
        }
        for b in &bytes {
            f.feed(std::slice::from_ref(b), &mut Collect(&mut seen));
        }
        assert_eq!(
            seen,
            vec![(b'C', b"COMMIT\0".to_vec()), (b'Z', b"I".to_vec())]
        );
    }

    /// A socket in memory: what the server sends, what was written, and
    /// how much more the send buffer takes.
    #[derive(Default)]
    struct Wire {
        incoming: std::collections::VecDeque<u8>,
        written: Vec<u8>,
        room: usize,
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Wire>>);

    impl AsyncRead for Shared {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let mut w = self.0.lock().unwrap();
            if w.incoming.is_empty() {
                return Poll::Pending;
            }
            let n = w.incoming.len().min(buf.remaining());
            let bytes: Vec<u8> = w.incoming.drain(..n).collect();
            buf.put_slice(&bytes);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Shared {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut w = self.0.lock().unwrap();
            if w.room == 0 {
                return Poll::Pending;
            }
            let n = w.room.min(data.len());
            w.written.extend_from_slice(&data[..n]);
            w.room -= n;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn a_batch_holds_the_stream_and_takes_only_its_own_answers() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let wire = Shared::default();
        wire.0.lock().unwrap().room = 12;
        let tap = Tap::new();
        tap.start(TAP_RAW);
        let mut stream = Tapped::new(wire.clone(), tap.clone(), TAP_RAW);
        // tokio-postgres's request in flight: a Sync, answer still owed.
        let sync = message(b'S', b"");
        assert!(matches!(
            Pin::new(&mut stream).poll_write(&mut cx, &sync),
            Poll::Ready(Ok(5))
        ));
        let one = Value::Int64(1);
        let sets = vec![vec![&one], vec![&one]];
        let batch = Exchange::encode(
            "INSERT INTO t VALUES ($1)",
            &[tokio_postgres::types::Type::INT8],
            &sets,
            |_| "$1".into(),
        )
        .unwrap();
        let batch_len = batch.unsent().len();
        tap.start_exchange(batch);
        let mut space = [0u8; 256];
        let mut buf = ReadBuf::new(&mut space);
        // The batch starts (7 bytes fit), nothing to read yet.
        assert!(Pin::new(&mut stream)
            .poll_read(&mut cx, &mut buf)
            .is_pending());
        assert_eq!(wire.0.lock().unwrap().written.len(), 12);
        // tokio-postgres's next request (a Close its cache queued) waits,
        // even once there is room: the batch has the stream.
        wire.0.lock().unwrap().room = 1 << 20;
        let close = message(b'C', b"Ss1\0");
        assert!(Pin::new(&mut stream)
            .poll_write(&mut cx, &close)
            .is_pending());
        // The owed answer, a notice, then the batch's answers.
        let mut answers = message(b'Z', b"T");
        let notice = message(b'N', b"SNOTICE\0Mhello\0\0");
        answers.extend_from_slice(&notice);
        answers.extend(message(b'1', b""));
        for _ in 0..2 {
            answers.extend(message(b'2', b""));
            answers.extend(message(b'C', b"INSERT 0 1\0"));
        }
        answers.extend(message(b'Z', b"T"));
        wire.0.lock().unwrap().incoming.extend(answers);
        assert!(matches!(
            Pin::new(&mut stream).poll_read(&mut cx, &mut buf),
            Poll::Ready(Ok(()))
        ));
        // Only what is tokio-postgres's reached the reader above.
        let mut passed = message(b'Z', b"T");
        passed.extend_from_slice(&notice);
        assert_eq!(buf.filled(), &passed[..]);
        assert_eq!(wire.0.lock().unwrap().written.len(), 5 + batch_len);
        let Poll::Ready(done) = tap.poll_exchange(&mut cx) else {
            panic!("the batch is answered");
        };
        assert_eq!(done.outcome().unwrap(), 2);
        assert!(tap.settled());
        // Now tokio-postgres writes again.
        assert!(matches!(
            Pin::new(&mut stream).poll_write(&mut cx, &close),
            Poll::Ready(Ok(9))
        ));
    }
}
