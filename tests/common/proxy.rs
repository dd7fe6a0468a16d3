//! A loopback TCP proxy for fault tests: forwards 127.0.0.1:PORT to an
//! upstream address, and can be told to stop forwarding ([`Proxy::stall`]):
//! every socket stays open, new connections are still accepted, but no
//! byte moves in either direction, as through a network path that went
//! dead without a reset (TCP keeps the bytes and retransmits them once
//! the path is back). [`Proxy::resume`] forwards again, what was held
//! included.
//!
//! Plain threads, no async runtime: an accept thread and two pump threads
//! per connection, all polling a shutdown flag every 50 ms. Dropping the
//! proxy stops them and closes every socket.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(50);

struct Shared {
    forwarding: AtomicBool,
    shutdown: AtomicBool,
    /// Every socket of every connection, to close them all on drop.
    sockets: Mutex<Vec<TcpStream>>,
    accepted: AtomicUsize,
    /// Stall ticks during which bytes were waiting (both directions).
    held: AtomicUsize,
}

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            forwarding: AtomicBool::new(true),
            shutdown: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("test-proxy-accept".into())
            .spawn(move || accept_loop(listener, upstream, s))
            .unwrap();
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops forwarding: sockets stay open, bytes wait in the kernel.
    pub fn stall(&self) {
        self.shared.forwarding.store(false, Ordering::SeqCst);
    }

    /// Forwards again.
    pub fn resume(&self) {
        self.shared.forwarding.store(true, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Stall ticks during which bytes were held back.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for s in self
            .shared
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => continue,
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nonblocking(false);
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut all = shared.sockets.lock().unwrap_or_else(|p| p.into_inner());
            all.push(client.try_clone().unwrap());
            all.push(server.try_clone().unwrap());
        }
        for (from, to) in [
            (client.try_clone().unwrap(), server.try_clone().unwrap()),
            (server, client),
        ] {
            let s = shared.clone();
            std::thread::Builder::new()
                .name("test-proxy-pump".into())
                .spawn(move || pump(from, to, s))
                .unwrap();
        }
    }
}

/// Copies `from` to `to` while forwarding, reads nothing while stalled; on
/// end-of-file or error closes both directions.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: Arc<Shared>) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    while !shared.shutdown.load(Ordering::SeqCst) {
        if !shared.forwarding.load(Ordering::SeqCst) {
            // Count what waits, so a test can tell the stall was real.
            if let Ok(n) = from.peek(&mut buf[..1]) {
                if n > 0 {
                    shared.held.fetch_add(1, Ordering::SeqCst);
                }
            }
            std::thread::sleep(TICK);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if shared.forwarding.load(Ordering::SeqCst) {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                } else {
                    shared.held.fetch_add(n, Ordering::SeqCst);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
