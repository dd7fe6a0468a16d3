//! Which server each pooled connection is on: per-host counts for the
//! pool's statistics (a multi-host target spreads or moves its
//! connections between hosts).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One host's counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStats {
    /// `host:port` as the host list names it (or a socket path).
    pub host: String,
    /// Connections open to it now.
    pub open: u64,
    /// Connections opened to it since the pool started.
    pub opened: u64,
}

#[derive(Debug)]
struct Counts {
    host: String,
    open: AtomicU64,
    opened: AtomicU64,
}

/// The hosts a pool's connections have gone to, in order of first use.
#[derive(Default)]
pub struct Hosts {
    hosts: Mutex<Vec<Arc<Counts>>>,
}

/// Held by a connection: counts it as open on its host until dropped.
#[derive(Debug)]
pub struct HostTicket(Arc<Counts>);

impl HostTicket {
    pub fn host(&self) -> &str {
        &self.0.host
    }
}

impl Drop for HostTicket {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hosts {
    /// Counts a new connection to `host`.
    pub fn opened(&self, host: String) -> HostTicket {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let counts = match hosts.iter().find(|c| c.host == host) {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(Counts {
                    host,
                    open: AtomicU64::new(0),
                    opened: AtomicU64::new(0),
                });
                hosts.push(c.clone());
                c
            }
        };
        counts.open.fetch_add(1, Ordering::Relaxed);
        counts.opened.fetch_add(1, Ordering::Relaxed);
        HostTicket(counts)
    }

    /// Every host a connection has gone to, in order of first use.
    pub fn stats(&self) -> Vec<HostStats> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .iter()
            .map(|c| HostStats {
                host: c.host.clone(),
                open: c.open.load(Ordering::Relaxed),
                opened: c.opened.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_count_open_connections() {
        let hosts = Hosts::default();
        let a1 = hosts.opened("a:1".into());
        let b = hosts.opened("b:2".into());
        let a2 = hosts.opened("a:1".into());
        drop(a1);
        drop(b);
        let s = hosts.stats();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].host.as_str(), s[0].open, s[0].opened), ("a:1", 1, 2));
        assert_eq!((s[1].host.as_str(), s[1].open, s[1].opened), ("b:2", 0, 1));
        drop(a2);
        assert_eq!(hosts.stats()[0].open, 0);
    }
}
