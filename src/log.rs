//! Library logging: a host callback when one is set, otherwise stderr when
//! `SQLPOOL_LOG` asks for it (`error`, `warn`, `info`, `debug`, `trace`),
//! colored when `SQLPOOL_LOG_COLOR` is set (`1`/`always`) or stderr is a
//! terminal and `SQLPOOL_LOG_COLOR` is not `0`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use once_cell::sync::Lazy;

use crate::error::redact_secrets;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    pub fn from_u32(v: u32) -> Option<Level> {
        match v {
            1 => Some(Level::Error),
            2 => Some(Level::Warn),
            3 => Some(Level::Info),
            4 => Some(Level::Debug),
            5 => Some(Level::Trace),
            _ => None,
        }
    }

    fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "trace" => Some(Level::Trace),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

/// A host's log sink. It is called on whatever thread logs (a caller's
/// thread, a connection thread or the maintenance thread), never while the
/// library holds a pool lock.
pub trait Sink: Send + Sync {
    fn log(&self, level: Level, target: &str, message: &str);
}

struct Logger {
    sink: Option<Arc<dyn Sink>>,
    env_level: Option<Level>,
    color: bool,
}

static LOGGER: Lazy<RwLock<Logger>> = Lazy::new(|| {
    let env_level = std::env::var("SQLPOOL_LOG")
        .ok()
        .and_then(|v| Level::parse(&v));
    let color = match std::env::var("SQLPOOL_LOG_COLOR").ok().as_deref() {
        Some("1" | "always" | "true") => true,
        Some(_) => false,
        None => false,
    };
    if let Some(l) = env_level {
        MAX_LEVEL.store(l as u32, Ordering::Relaxed);
    }
    SQL_LOG.store(
        std::env::var("SQLPOOL_SQL_LOG").is_ok_and(|v| v == "1" || v == "true"),
        Ordering::Relaxed,
    );
    RwLock::new(Logger {
        sink: None,
        env_level,
        color,
    })
});

/// Highest level anybody listens to; 0 = nobody. Checked before formatting.
static MAX_LEVEL: AtomicU32 = AtomicU32::new(0);
static SQL_LOG: AtomicBool = AtomicBool::new(false);
static SQL_LOG_VALUES: AtomicBool = AtomicBool::new(false);

pub fn enabled(level: Level) -> bool {
    Lazy::force(&LOGGER);
    level as u32 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Installs (or with `None` removes) the host sink. Returns once no other
/// thread is still inside the old sink, so the host may free what it used
/// (a call from inside the sink itself cannot wait for itself).
pub fn set_sink(sink: Option<Box<dyn Sink>>, min_level: Level) {
    let mut logger = LOGGER.write().unwrap_or_else(|p| p.into_inner());
    let level = match (&sink, logger.env_level) {
        (Some(_), _) => min_level as u32,
        (None, Some(env)) => env as u32,
        (None, None) => 0,
    };
    let old = std::mem::replace(&mut logger.sink, sink.map(Arc::from));
    MAX_LEVEL.store(level, Ordering::Relaxed);
    drop(logger);
    if let Some(old) = old {
        let mine = IN_SINK.with(|n| n.get());
        // Calls in flight each hold a reference.
        while Arc::strong_count(&old) > 1 + mine {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

thread_local! {
    /// How many sink calls this thread is inside (a sink may log again).
    static IN_SINK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Statement logging (target `sqlpool::sql`), with parameter values only
/// when `with_values`.
pub fn set_sql_logging(on: bool, with_values: bool) {
    Lazy::force(&LOGGER);
    SQL_LOG.store(on, Ordering::Relaxed);
    SQL_LOG_VALUES.store(with_values, Ordering::Relaxed);
}

pub fn sql_logging() -> (bool, bool) {
    Lazy::force(&LOGGER);
    (
        SQL_LOG.load(Ordering::Relaxed),
        SQL_LOG_VALUES.load(Ordering::Relaxed),
    )
}

/// Logs one line. Secrets are removed before the line leaves the library.
pub fn emit(level: Level, target: &str, message: &str) {
    if !enabled(level) {
        return;
    }
    let message = redact_secrets(message);
    let logger = LOGGER.read().unwrap_or_else(|p| p.into_inner());
    if let Some(sink) = logger.sink.clone() {
        // Call without the lock, so the sink may itself call the library
        // (even replace the logger).
        drop(logger);
        IN_SINK.with(|n| n.set(n.get() + 1));
        sink.log(level, target, &message);
        IN_SINK.with(|n| n.set(n.get() - 1));
        return;
    }
    if logger.env_level.is_some_and(|l| level <= l) {
        let (on, off) = if logger.color {
            let c = match level {
                Level::Error => "\x1b[31m",
                Level::Warn => "\x1b[33m",
                Level::Info => "\x1b[32m",
                Level::Debug => "\x1b[36m",
                Level::Trace => "\x1b[90m",
            };
            (c, "\x1b[0m")
        } else {
            ("", "")
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{on}{:<5}{off} {target}: {message}",
            level.name()
        );
    }
}
