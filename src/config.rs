//! Pool options and connection-URI parsing.
//!
//! A URI names the database and may carry pool options as query parameters
//! (`?min_size=5&max_size=30&acquire_timeout=60s`). Options set explicitly on
//! an options object win over the URI's.

use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::error::{redact_secrets, Error, Result, Status};

/// What a pool does with a connection when it is checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Recycling {
    /// Hand it out as is.
    Fast = 0,
    /// A cheap round trip first; a dead connection is replaced.
    Verified = 1,
    /// Reset the session first (PostgreSQL `DISCARD ALL`).
    Clean = 2,
}

impl Recycling {
    pub fn from_u32(v: u32) -> Option<Recycling> {
        match v {
            0 => Some(Recycling::Fast),
            1 => Some(Recycling::Verified),
            2 => Some(Recycling::Clean),
            _ => None,
        }
    }

    fn parse(v: &str) -> Option<Recycling> {
        match v.to_ascii_lowercase().as_str() {
            "fast" => Some(Recycling::Fast),
            "verified" => Some(Recycling::Verified),
            "clean" => Some(Recycling::Clean),
            _ => None,
        }
    }
}

/// What the pool does at release with a session a borrower changed
/// (`SET`, temporary tables, `PREPARE`, `LISTEN`, advisory locks, SQLite
/// `PRAGMA`/`ATTACH`/temporary objects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionReset {
    /// Reset only sessions a borrower changed (PostgreSQL `DISCARD ALL`;
    /// SQLite has no reset, so the connection is closed). Unchanged
    /// sessions cost nothing.
    Auto,
    /// Never reset: session state passes to the next borrower.
    Off,
    /// Reset at every release (SQLite: close every released connection).
    Always,
}

impl SessionReset {
    fn parse(v: &str) -> Option<SessionReset> {
        match v.to_ascii_lowercase().as_str() {
            "auto" | "on" | "true" | "1" => Some(SessionReset::Auto),
            "off" | "false" | "0" | "never" => Some(SessionReset::Off),
            "always" => Some(SessionReset::Always),
            _ => None,
        }
    }
}

/// Largest `max_size` (and `min_size`) accepted: far above what a database
/// serves, far below what would exhaust memory or handles.
pub const MAX_POOL_SIZE: u32 = 100_000;

/// Checks pool sizes (at option parsing and at resize).
pub fn check_sizes(min_size: u32, max_size: u32) -> Result<()> {
    if max_size == 0 || max_size > MAX_POOL_SIZE {
        return Err(Error::new(
            Status::InvalidOption,
            format!("max_size must be 1..={MAX_POOL_SIZE} (got {max_size})"),
        ));
    }
    if min_size > max_size {
        return Err(Error::new(
            Status::InvalidOption,
            format!("min_size ({min_size}) must not exceed max_size ({max_size})"),
        ));
    }
    Ok(())
}

/// Every pool option. `None` means "not set here": the URI's value or the
/// default applies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolOptions {
    pub min_size: Option<u32>,
    pub max_size: Option<u32>,
    pub max_waiting: Option<u32>,
    pub acquire_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub check_interval: Option<Duration>,
    pub recycling: Option<Recycling>,
    pub lazy: Option<bool>,
    pub leak_threshold: Option<Duration>,
    pub statement_cache_size: Option<u32>,
    pub query_timeout: Option<Duration>,
    pub busy_timeout: Option<Duration>,
    pub journal_mode: Option<String>,
    pub sqlite_pragmas: Vec<(String, String)>,
    pub session_reset: Option<SessionReset>,
    pub init_sql: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub application_name: Option<String>,
}

/// Options with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub min_size: u32,
    pub max_size: u32,
    /// 0 = unlimited.
    pub max_waiting: u32,
    pub acquire_timeout: Duration,
    pub connect_timeout: Duration,
    /// Zero disables.
    pub idle_timeout: Duration,
    /// Zero disables.
    pub max_lifetime: Duration,
    /// Zero disables.
    pub check_interval: Duration,
    pub recycling: Recycling,
    pub lazy: bool,
    /// Zero disables.
    pub leak_threshold: Duration,
    pub statement_cache_size: u32,
    /// Client-side bound on each statement; zero disables.
    pub query_timeout: Duration,
    pub busy_timeout: Duration,
    pub journal_mode: String,
    pub sqlite_pragmas: Vec<(String, String)>,
    pub session_reset: SessionReset,
    /// Statements run on each new connection (and again after a session
    /// reset); empty: none.
    pub init_sql: String,
}

pub(crate) const DEFAULT_MIN_SIZE: u32 = 1;
pub(crate) const DEFAULT_MAX_SIZE: u32 = 10;
pub(crate) const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
pub(crate) const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(1800);
pub(crate) const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_STATEMENT_CACHE_SIZE: u32 = 128;
pub(crate) const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl PoolOptions {
    /// Applies `other` on top of `self`: every option `other` sets wins.
    pub fn overlay(&mut self, other: &PoolOptions) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(
            min_size,
            max_size,
            max_waiting,
            acquire_timeout,
            connect_timeout,
            idle_timeout,
            max_lifetime,
            check_interval,
            recycling,
            lazy,
            leak_threshold,
            statement_cache_size,
            query_timeout,
            busy_timeout,
            journal_mode,
            session_reset,
            init_sql,
            user,
            password,
            host,
            port,
            dbname,
            application_name
        );
        self.sqlite_pragmas
            .extend(other.sqlite_pragmas.iter().cloned());
    }

    /// Sets one option from its textual form, as found in a URI query or
    /// given to `sqlpool_options_set`. Returns `Ok(false)` for a key that is
    /// not a pool option (so the caller can hand it to the database).
    pub fn set_from_str(&mut self, key: &str, value: &str) -> Result<bool> {
        let bad = |what: &str| {
            Error::new(
                Status::InvalidOption,
                format!("invalid value {value:?} for option {key}: expected {what}"),
            )
        };
        let count = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| bad("a non-negative integer"))
        };
        let size = || {
            value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_POOL_SIZE)
                .ok_or_else(|| bad(&format!("an integer from 0 to {MAX_POOL_SIZE}")))
        };
        let duration = || {
            parse_duration(value).ok_or_else(|| bad("a duration such as 30, 1.5, 500ms, 30s or 2m"))
        };
        match key {
            "min_size" => self.min_size = Some(size()?),
            "max_size" | "max_connections" | "max_db_pool_size" => self.max_size = Some(size()?),
            "max_waiting" => self.max_waiting = Some(count()?),
            "acquire_timeout" | "conn_timeout" | "pool_timeout" => {
                self.acquire_timeout = Some(duration()?)
            }
            "connect_timeout" => self.connect_timeout = Some(duration()?),
            "idle_timeout" | "max_idle" => self.idle_timeout = Some(duration()?),
            "max_lifetime" => self.max_lifetime = Some(duration()?),
            "check_interval" | "health_check_interval" => self.check_interval = Some(duration()?),
            "recycling" | "conn_recycling_method" => {
                self.recycling =
                    Some(Recycling::parse(value).ok_or_else(|| bad("fast, verified or clean"))?)
            }
            "lazy" => self.lazy = Some(parse_bool(value).ok_or_else(|| bad("true or false"))?),
            "leak_threshold" | "leak_detection_threshold" => {
                self.leak_threshold = Some(duration()?)
            }
            "statement_cache_size" => self.statement_cache_size = Some(count()?),
            "query_timeout" => self.query_timeout = Some(duration()?),
            "busy_timeout" => self.busy_timeout = Some(duration()?),
            "session_reset" | "reset_session" => {
                self.session_reset =
                    Some(SessionReset::parse(value).ok_or_else(|| bad("auto, off or always"))?)
            }
            "init_sql" | "connection_init_sql" => self.init_sql = Some(value.to_owned()),
            "journal_mode" => {
                let mode = value.to_ascii_uppercase();
                if !matches!(
                    mode.as_str(),
                    "WAL" | "DELETE" | "TRUNCATE" | "PERSIST" | "MEMORY" | "OFF"
                ) {
                    return Err(bad("WAL, DELETE, TRUNCATE, PERSIST, MEMORY or OFF"));
                }
                self.journal_mode = Some(mode)
            }
            "user" | "username" => self.user = Some(value.to_owned()),
            "password" => self.password = Some(value.to_owned()),
            "host" => self.host = Some(value.to_owned()),
            "port" => self.port = Some(value.trim().parse().map_err(|_| bad("a port number"))?),
            "dbname" | "db_name" => self.dbname = Some(value.to_owned()),
            "application_name" => self.application_name = Some(value.to_owned()),
            _ => {
                if let Some(pragma) = key.strip_prefix("pragma.") {
                    if pragma.is_empty()
                        || !pragma
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(Error::new(
                            Status::InvalidOption,
                            format!("invalid SQLite pragma name {pragma:?}"),
                        ));
                    }
                    if !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.'".contains(c))
                    {
                        return Err(bad("a plain pragma value (letters, digits, _ - .)"));
                    }
                    self.sqlite_pragmas
                        .push((pragma.to_owned(), value.to_owned()));
                } else {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    pub fn settings(&self) -> Result<Settings> {
        let max_size = self.max_size.unwrap_or(DEFAULT_MAX_SIZE);
        let min_size = self.min_size.unwrap_or(DEFAULT_MIN_SIZE.min(max_size));
        check_sizes(min_size, max_size)?;
        Ok(Settings {
            min_size,
            max_size,
            max_waiting: self.max_waiting.unwrap_or(0),
            acquire_timeout: self.acquire_timeout.unwrap_or(DEFAULT_ACQUIRE_TIMEOUT),
            connect_timeout: self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            idle_timeout: self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            max_lifetime: self.max_lifetime.unwrap_or(DEFAULT_MAX_LIFETIME),
            check_interval: self.check_interval.unwrap_or(DEFAULT_CHECK_INTERVAL),
            recycling: self.recycling.unwrap_or(Recycling::Verified),
            lazy: self.lazy.unwrap_or(false),
            leak_threshold: self.leak_threshold.unwrap_or(Duration::ZERO),
            statement_cache_size: self
                .statement_cache_size
                .unwrap_or(DEFAULT_STATEMENT_CACHE_SIZE),
            query_timeout: self.query_timeout.unwrap_or(Duration::ZERO),
            busy_timeout: self.busy_timeout.unwrap_or(DEFAULT_BUSY_TIMEOUT),
            journal_mode: self.journal_mode.clone().unwrap_or_else(|| "WAL".into()),
            sqlite_pragmas: self.sqlite_pragmas.clone(),
            session_reset: self.session_reset.unwrap_or(SessionReset::Auto),
            init_sql: self.init_sql.clone().unwrap_or_default(),
        })
    }
}

/// `30` and `1.5` are seconds; `500ms`, `30s`, `2m`, `1h` carry a unit.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 || value * scale > 1e9 {
        return None;
    }
    Some(Duration::from_secs_f64(value * scale))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Where connections go.
#[derive(Clone, Debug)]
pub enum Target {
    Sqlite(SqliteTarget),
    Postgres(Box<PgTarget>),
}

impl Target {
    /// For messages and logs: no password, ever.
    pub fn display_name(&self) -> String {
        match self {
            Target::Sqlite(t) => format!("sqlite:{}", t.display),
            Target::Postgres(t) => format!(
                "postgresql://{}@{}/{}",
                t.config.get_user().unwrap_or(""),
                t.config
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(h) => h.clone(),
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .unwrap_or_default(),
                t.config.get_dbname().unwrap_or("")
            ),
        }
    }
}

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Option<SslMode> {
        Some(match v {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// libpq's `target_session_attrs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

impl SessionAttrs {
    fn parse(v: &str) -> Option<SessionAttrs> {
        Some(match v {
            "any" => SessionAttrs::Any,
            "read-write" => SessionAttrs::ReadWrite,
            "read-only" => SessionAttrs::ReadOnly,
            "primary" => SessionAttrs::Primary,
            "standby" => SessionAttrs::Standby,
            "prefer-standby" => SessionAttrs::PreferStandby,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SessionAttrs::Any => "any",
            SessionAttrs::ReadWrite => "read-write",
            SessionAttrs::ReadOnly => "read-only",
            SessionAttrs::Primary => "primary",
            SessionAttrs::Standby => "standby",
            SessionAttrs::PreferStandby => "prefer-standby",
        }
    }
}

/// TCP keepalive settings (libpq's `keepalives*`); on by default, with the
/// system's timings unless set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keepalives {
    pub enabled: bool,
    pub idle: Option<Duration>,
    pub interval: Option<Duration>,
    pub count: Option<u32>,
}

/// A PostgreSQL server (or list of servers) and how to reach it. Hosts,
/// ports, credentials and startup parameters live in `config`; the rest
/// is what this library does itself: TLS, keepalives, host selection.
#[derive(Clone, Debug)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    /// A PEM file, or `system` for the platform's roots.
    pub ssl_root_cert: Option<String>,
    pub ssl_cert: Option<String>,
    pub ssl_key: Option<String>,
    pub target_session_attrs: SessionAttrs,
    pub load_balance_hosts: bool,
    pub keepalives: Keepalives,
    pub tcp_user_timeout: Option<Duration>,
}

impl PgTarget {
    /// Takes this library's own connection parameters out of `params`
    /// (leaving the rest for the postgres crate's parser) and the `PG*`
    /// environment variables for what they leave unset.
    fn take_own_params(
        params: &mut Vec<(String, String)>,
        bad: impl Fn(&str, &str, &str) -> Error,
    ) -> Result<PgTarget> {
        let mut take = |key: &str| {
            let found = params.iter().rposition(|(k, _)| k == key);
            let value = found.map(|i| params[i].1.clone());
            params.retain(|(k, _)| k != key);
            value
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let ssl_mode_text = take("sslmode").or_else(|| env("PGSSLMODE"));
        let ssl_mode = match ssl_mode_text.as_deref() {
            None => SslMode::Prefer,
            Some(v) => SslMode::parse(v).ok_or_else(|| {
                bad(
                    "sslmode",
                    v,
                    "disable, allow, prefer, require, verify-ca or verify-full",
                )
            })?,
        };
        let duration = |key: &str, v: Option<String>| -> Result<Option<Duration>> {
            v.map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| bad(key, &v, "a whole number of seconds"))
            })
            .transpose()
        };
        let keepalives = Keepalives {
            enabled: match take("keepalives").as_deref() {
                None => true,
                Some("1") => true,
                Some("0") => false,
                Some(v) => return Err(bad("keepalives", v, "0 or 1")),
            },
            idle: duration("keepalives_idle", take("keepalives_idle"))?,
            interval: duration("keepalives_interval", take("keepalives_interval"))?,
            count: take("keepalives_count")
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .map_err(|_| bad("keepalives_count", &v, "a non-negative integer"))
                })
                .transpose()?,
        };
        let tcp_user_timeout = take("tcp_user_timeout")
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| bad("tcp_user_timeout", &v, "milliseconds"))
            })
            .transpose()?
            .filter(|d| !d.is_zero());
        let target_session_attrs = match take("target_session_attrs").as_deref() {
            None => SessionAttrs::Any,
            Some(v) => SessionAttrs::parse(v).ok_or_else(|| {
                bad(
                    "target_session_attrs",
                    v,
                    "any, read-write, read-only, primary, standby or prefer-standby",
                )
            })?,
        };
        let load_balance_hosts = match take("load_balance_hosts").as_deref() {
            None | Some("disable") => false,
            Some("random") => true,
            Some(v) => return Err(bad("load_balance_hosts", v, "disable or random")),
        };
        Ok(PgTarget {
            config: tokio_postgres::Config::new(),
            ssl_mode,
            ssl_root_cert: take("sslrootcert").or_else(|| env("PGSSLROOTCERT")),
            ssl_cert: take("sslcert"),
            ssl_key: take("sslkey"),
            target_session_attrs,
            load_balance_hosts,
            keepalives,
            tcp_user_timeout,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SqliteTarget {
    /// What `sqlite3_open_v2` receives: always a `file:` URI.
    pub open_uri: String,
    /// A display name for messages and logs.
    pub display: String,
    pub read_only: bool,
    /// `:memory:` without shared cache: every connection is its own database.
    pub private_memory: bool,
}

/// Parses a URI (or a libpq conninfo string, `host=a,b port=5432
/// dbname=app`) into the database target and the pool options it carries.
pub fn parse_uri(uri: &str) -> Result<(Target, PoolOptions)> {
    if let Some(pairs) = conninfo_pairs(uri)? {
        // As a URI with every setting a query parameter.
        let mut options = PoolOptions::default();
        let mut passthrough = Vec::new();
        for (key, value) in pairs {
            if is_host_list_key(&key) || !options.set_from_str(&key, &value)? {
                passthrough.push((key, value));
            }
        }
        let bad = |why: &str| {
            Error::new(
                Status::InvalidUri,
                format!("invalid connection string: {why}"),
            )
        };
        return parse_postgres("postgresql://", passthrough, options, &bad);
    }
    let bad = |why: &str| {
        Error::new(
            Status::InvalidUri,
            format!("invalid connection URI {:?}: {why}", redact_secrets(uri)),
        )
    };
    let (base, query) = match uri.find('?') {
        Some(q) => (&uri[..q], &uri[q + 1..]),
        None => (uri, ""),
    };
    let mut options = PoolOptions::default();
    let mut passthrough: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k).map_err(|_| bad("a query parameter is not valid UTF-8"))?;
        let value = decode(v).map_err(|_| bad("a query parameter is not valid UTF-8"))?;
        // A PostgreSQL URI's host lists are the target's, not pool options.
        let postgres = base.to_ascii_lowercase().starts_with("postgres");
        if (postgres && is_host_list_key(&key)) || !options.set_from_str(&key, &value)? {
            passthrough.push((key, value));
        }
    }
    let lower = base.to_ascii_lowercase();
    if lower.starts_with("postgresql:") || lower.starts_with("postgres:") {
        return parse_postgres(base, passthrough, options, &bad);
    }
    let path = if let Some(rest) = base.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = base.strip_prefix("sqlite:") {
        rest
    } else if let Some(rest) = base.strip_prefix("file:") {
        rest
    } else if base.contains("://") || base.is_empty() {
        return Err(bad(
            "expected sqlite:PATH, sqlite::memory:, file:PATH or postgresql://...",
        ));
    } else {
        return Err(bad(
            "unknown scheme (expected sqlite:, file:, postgresql: or postgres:)",
        ));
    };
    let path = decode(path).map_err(|_| bad("the path is not valid UTF-8"))?;
    if path.is_empty() {
        return Err(bad(
            "the SQLite path is empty (use sqlite::memory: for an in-memory database)",
        ));
    }
    let mut read_only = false;
    let mut shared_cache = false;
    let mut sqlite_params = Vec::new();
    for (k, v) in &passthrough {
        match k.as_str() {
            "mode" => {
                if !matches!(v.as_str(), "ro" | "rw" | "rwc" | "memory") {
                    return Err(Error::new(
                        Status::InvalidOption,
                        format!(
                            "invalid value {v:?} for option mode: expected ro, rw, rwc or memory"
                        ),
                    ));
                }
                read_only = v == "ro";
            }
            "cache" => shared_cache = v == "shared",
            "immutable" | "vfs" | "nolock" | "psow" | "modeof" => {}
            _ => {
                return Err(Error::new(
                    Status::InvalidOption,
                    format!("unknown option {k:?} in SQLite URI"),
                ))
            }
        }
        sqlite_params.push(format!("{}={}", encode(k), encode(v)));
    }
    let memory = path == ":memory:";
    let mut open_uri = if memory && shared_cache {
        // One named in-memory database shared by every connection of this pool.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sqlite_params.retain(|p| !p.starts_with("mode="));
        sqlite_params.push("mode=memory".into());
        format!("file:sqlpool-memory-{}-{n}", std::process::id())
    } else if memory {
        "file::memory:".to_owned()
    } else {
        format!("file:{}", encode_path(&path))
    };
    if !sqlite_params.is_empty() {
        open_uri.push('?');
        open_uri.push_str(&sqlite_params.join("&"));
    }
    Ok((
        Target::Sqlite(SqliteTarget {
            open_uri,
            display: path,
            read_only,
            private_memory: memory && !shared_cache,
        }),
        options,
    ))
}

/// A PostgreSQL target from a URI's scheme and authority (`base`) and its
/// parameters (query or conninfo, pool options already taken out).
fn parse_postgres(
    base: &str,
    mut passthrough: Vec<(String, String)>,
    mut options: PoolOptions,
    bad: &dyn Fn(&str) -> Error,
) -> Result<(Target, PoolOptions)> {
    let bad_value = |key: &str, value: &str, expected: &str| {
        Error::new(
            Status::InvalidOption,
            format!("invalid value {value:?} for option {key}: expected {expected}"),
        )
    };
    let mut target = PgTarget::take_own_params(&mut passthrough, bad_value)?;
    // libpq's host lists: `host`, `hostaddr` and `port` parameters (each a
    // comma-separated list) replace what the authority says.
    let lists = HostLists::take(&mut passthrough)?;
    // Hand the database's own parameters to the postgres crate's parser,
    // which handles percent-encoding, socket directories and the
    // authority's host list.
    let mut pg_uri = base.to_owned();
    if !passthrough.is_empty() {
        pg_uri.push('?');
        let encoded: Vec<String> = passthrough
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        pg_uri.push_str(&encoded.join("&"));
    }
    let config: tokio_postgres::Config = pg_uri
        .parse()
        .map_err(|e: tokio_postgres::Error| bad(&redact_secrets(&e.to_string())))?;
    target.config = lists.apply(&config)?;
    if options.connect_timeout.is_none() {
        options.connect_timeout = target.config.get_connect_timeout().copied();
    }
    Ok((Target::Postgres(Box::new(target)), options))
}

fn is_host_list_key(key: &str) -> bool {
    matches!(key, "host" | "hostaddr" | "port")
}

/// The `host`, `hostaddr` and `port` parameters (libpq: comma-separated
/// lists; a `port` list has one entry for all hosts or one per host, an
/// empty entry meaning 5432; a `hostaddr` list one per host).
#[derive(Default)]
struct HostLists {
    hosts: Option<Vec<String>>,
    addrs: Option<Vec<std::net::IpAddr>>,
    ports: Option<Vec<u16>>,
}

impl HostLists {
    fn take(params: &mut Vec<(String, String)>) -> Result<HostLists> {
        let mut take = |key: &str| {
            let found = params.iter().rposition(|(k, _)| k == key);
            let value = found.map(|i| params[i].1.clone());
            params.retain(|(k, _)| k != key);
            value
        };
        let split =
            |v: &str| -> Vec<String> { v.split(',').map(|p| p.trim().to_owned()).collect() };
        let bad = |key: &str, entry: &str, expected: &str| {
            Error::new(
                Status::InvalidOption,
                format!("invalid entry {entry:?} in option {key}: expected {expected}"),
            )
        };
        let hosts = take("host").map(|v| split(&v));
        let addrs = take("hostaddr")
            .map(|v| {
                split(&v)
                    .iter()
                    .map(|a| a.parse().map_err(|_| bad("hostaddr", a, "an IP address")))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let ports = take("port")
            .map(|v| {
                split(&v)
                    .iter()
                    .map(|p| match p.as_str() {
                        "" => Ok(5432),
                        p => p
                            .parse::<u16>()
                            .ok()
                            .filter(|&n| n != 0)
                            .ok_or_else(|| bad("port", p, "a port number 1..65535")),
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(HostLists {
            hosts,
            addrs,
            ports,
        })
    }

    /// `config` with these lists in place of its own; checks the lists
    /// match (as libpq does).
    fn apply(&self, config: &tokio_postgres::Config) -> Result<tokio_postgres::Config> {
        use tokio_postgres::config::Host;
        let hosts: Vec<Host> = match &self.hosts {
            Some(list) => list.iter().map(|h| host_entry(h)).collect(),
            None => config.get_hosts().to_vec(),
        };
        let addrs = self
            .addrs
            .clone()
            .unwrap_or_else(|| config.get_hostaddrs().to_vec());
        let mut ports = self
            .ports
            .clone()
            .unwrap_or_else(|| config.get_ports().to_vec());
        let count = hosts.len().max(addrs.len());
        if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
            return Err(Error::new(
                Status::InvalidOption,
                format!(
                    "{} hostaddr entries do not match {} hosts",
                    addrs.len(),
                    hosts.len()
                ),
            ));
        }
        if ports.len() > 1 && ports.len() != count.max(1) {
            return Err(Error::new(
                Status::InvalidOption,
                format!(
                    "{} ports do not match {} hosts (give one port for all, or one per host)",
                    ports.len(),
                    count.max(1)
                ),
            ));
        }
        if ports.is_empty() && count > 0 {
            ports.push(5432);
        }
        Ok(rebuild(config, &hosts, &addrs, &ports))
    }
}

/// One entry of a `host` list: a socket directory if it starts with `/`,
/// `localhost` if empty.
fn host_entry(h: &str) -> tokio_postgres::config::Host {
    use tokio_postgres::config::Host;
    match h {
        "" => Host::Tcp("localhost".to_owned()),
        h if h.starts_with('/') => Host::Unix(h.into()),
        h => Host::Tcp(h.to_owned()),
    }
}

/// Splits a libpq conninfo string (`key=value key='quoted \' value'`) into
/// pairs; `None` when `text` is not one (a URI or a path).
fn conninfo_pairs(text: &str) -> Result<Option<Vec<(String, String)>>> {
    let trimmed = text.trim_start();
    let key_len = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    if key_len == 0 || !trimmed[key_len..].trim_start().starts_with('=') {
        return Ok(None);
    }
    let bad = |why: &str| {
        Error::new(
            Status::InvalidUri,
            format!("invalid connection string: {why}"),
        )
    };
    let mut pairs = Vec::new();
    let mut chars = trimmed.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(bad(&format!("missing \"=\" after {key:?}")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    // (No value in the message: it may be a password.)
                    None => return Err(bad(&format!("unterminated quoted value for {key:?}"))),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(Some(pairs))
}

/// Applies the psqlpy-style separate connection parameters to a PostgreSQL
/// target; they are an error for SQLite.
pub fn apply_connection_options(target: &mut Target, options: &PoolOptions) -> Result<()> {
    let any = options.user.is_some()
        || options.password.is_some()
        || options.host.is_some()
        || options.port.is_some()
        || options.dbname.is_some()
        || options.application_name.is_some();
    match target {
        Target::Postgres(target) => {
            let config = &mut target.config;
            if let Some(v) = &options.user {
                config.user(v);
            }
            if let Some(v) = &options.password {
                config.password(v);
            }
            // `host` and `port` replace the URI's (as libpq's keywords do).
            if options.host.is_some() || options.port.is_some() {
                *config = with_hosts(config, options.host.as_deref(), options.port);
            }
            if let Some(v) = &options.dbname {
                config.dbname(v);
            }
            if let Some(v) = &options.application_name {
                config.application_name(v);
            }
            if let Some(t) = options.connect_timeout {
                config.connect_timeout(t);
            }
            if config.get_hosts().is_empty() {
                config.host("localhost");
            }
            Ok(())
        }
        Target::Sqlite(_) if any => Err(Error::new(
            Status::InvalidOption,
            "user, password, host, port, dbname and application_name apply to PostgreSQL only",
        )),
        Target::Sqlite(_) => Ok(()),
    }
}

/// A copy of `config` whose host list (if `host` is given: a comma-separated
/// list) and port list (if `port` is given) are replaced.
fn with_hosts(
    config: &tokio_postgres::Config,
    host: Option<&str>,
    port: Option<u16>,
) -> tokio_postgres::Config {
    let (hosts, addrs) = match host {
        Some(list) => (
            list.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(host_entry)
                .collect(),
            Vec::new(),
        ),
        None => (config.get_hosts().to_vec(), config.get_hostaddrs().to_vec()),
    };
    let ports = match port {
        Some(p) => vec![p],
        None => config.get_ports().to_vec(),
    };
    rebuild(config, &hosts, &addrs, &ports)
}

/// A copy of `config` with these hosts, host addresses and ports.
fn rebuild(
    config: &tokio_postgres::Config,
    hosts: &[tokio_postgres::config::Host],
    addrs: &[std::net::IpAddr],
    ports: &[u16],
) -> tokio_postgres::Config {
    use tokio_postgres::config::Host;
    let mut out = tokio_postgres::Config::new();
    if let Some(v) = config.get_user() {
        out.user(v);
    }
    if let Some(v) = config.get_password() {
        out.password(v);
    }
    if let Some(v) = config.get_dbname() {
        out.dbname(v);
    }
    if let Some(v) = config.get_options() {
        out.options(v);
    }
    if let Some(v) = config.get_application_name() {
        out.application_name(v);
    }
    if let Some(v) = config.get_connect_timeout() {
        out.connect_timeout(*v);
    }
    out.channel_binding(config.get_channel_binding());
    for h in hosts {
        match h {
            Host::Tcp(name) => out.host(name),
            Host::Unix(path) => out.host_path(path),
        };
    }
    for a in addrs {
        out.hostaddr(*a);
    }
    for p in ports {
        out.port(*p);
    }
    out
}

fn decode(s: &str) -> std::result::Result<String, std::str::Utf8Error> {
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned())
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Percent-encodes what SQLite's URI parser would misread in a path.
fn encode_path(path: &str) -> String {
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b'?')
        .add(b'#')
        .add(b'%')
        .add(b' ');
    percent_encoding::utf8_percent_encode(path, PATH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(uri: &str) -> SqliteTarget {
        match parse_uri(uri).unwrap().0 {
            Target::Sqlite(t) => t,
            Target::Postgres(_) => panic!("expected sqlite"),
        }
    }

    #[test]
    fn sqlite_forms() {
        assert_eq!(sqlite("sqlite:./dev.db").open_uri, "file:./dev.db");
        assert_eq!(
            sqlite("sqlite:///tmp/a b.db").open_uri,
            "file:/tmp/a%20b.db"
        );
        assert_eq!(sqlite("sqlite://rel.db").open_uri, "file:rel.db");
        assert!(sqlite("sqlite::memory:").private_memory);
        let ro = sqlite("file:/tmp/x.db?mode=ro");
        assert!(ro.read_only);
        assert_eq!(ro.open_uri, "file:/tmp/x.db?mode=ro");
        let shared = sqlite("sqlite::memory:?cache=shared");
        assert!(!shared.private_memory);
        assert!(shared.open_uri.contains("mode=memory"));
    }

    #[test]
    fn pool_options_in_query() {
        let (_, o) = parse_uri("sqlite:x.db?min_size=5&max_size=30&acquire_timeout=60s").unwrap();
        assert_eq!(o.min_size, Some(5));
        assert_eq!(o.max_size, Some(30));
        assert_eq!(o.acquire_timeout, Some(Duration::from_secs(60)));
        let e = parse_uri("sqlite:x.db?max_size=lots").unwrap_err();
        assert_eq!(e.status, Status::InvalidOption);
        assert!(e.message.contains("max_size"), "{}", e.message);
        // Limits are checked when the options are parsed.
        let e = parse_uri("sqlite:x.db?max_size=1000000000").unwrap_err();
        assert_eq!(e.status, Status::InvalidOption);
        assert!(e.message.contains("max_size"), "{}", e.message);
        let o = PoolOptions {
            max_size: Some(1_000_000_000),
            ..PoolOptions::default()
        };
        assert_eq!(o.settings().unwrap_err().status, Status::InvalidOption);
        let (_, o) = parse_uri("sqlite:x.db?session_reset=always&init_sql=PRAGMA%20x%3D1").unwrap();
        assert_eq!(o.session_reset, Some(SessionReset::Always));
        assert_eq!(o.init_sql.as_deref(), Some("PRAGMA x=1"));
    }

    #[test]
    fn postgres_forms() {
        let (t, o) = parse_uri(
            "postgresql://user:p%40ss@%2Fvar%2Frun%2Fpostgresql/mydb?connect_timeout=10&max_size=4",
        )
        .unwrap();
        let Target::Postgres(t) = t else { panic!() };
        let c = &t.config;
        assert_eq!(c.get_user(), Some("user"));
        assert_eq!(c.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(c.get_dbname(), Some("mydb"));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(10)));
        assert_eq!(o.max_size, Some(4));
        assert!(matches!(
            c.get_hosts()[0],
            tokio_postgres::config::Host::Unix(_)
        ));
    }

    fn pg(uri: &str) -> PgTarget {
        match parse_uri(uri)
            .unwrap_or_else(|e| panic!("{uri}: {}", e.message))
            .0
        {
            Target::Postgres(t) => *t,
            Target::Sqlite(_) => panic!("expected postgres"),
        }
    }

    /// (host, port) pairs as the connector will try them.
    fn endpoints(t: &PgTarget) -> Vec<(String, u16)> {
        use tokio_postgres::config::Host;
        let c = &t.config;
        let ports = c.get_ports();
        let n = c.get_hosts().len().max(c.get_hostaddrs().len());
        (0..n)
            .map(|i| {
                let host = match c.get_hosts().get(i) {
                    Some(Host::Tcp(h)) => h.clone(),
                    Some(Host::Unix(p)) => p.display().to_string(),
                    None => c.get_hostaddrs()[i].to_string(),
                };
                let port = if ports.len() == 1 { ports[0] } else { ports[i] };
                (host, port)
            })
            .collect()
    }

    fn hp(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(h, p)| (h.to_string(), *p)).collect()
    }

    #[test]
    fn libpq_multi_host_grammar() {
        // Host lists in the authority, ports per host or defaulted.
        let t = pg("postgresql://u@a:5433,b/db");
        assert_eq!(endpoints(&t), hp(&[("a", 5433), ("b", 5432)]));
        let t = pg("postgresql://u@[::1]:6000,b:6001/db");
        assert_eq!(endpoints(&t), hp(&[("::1", 6000), ("b", 6001)]));
        // host= and port= query parameters: one port for all or one each.
        let t = pg("postgresql:///db?host=a,b&port=5433,5434");
        assert_eq!(endpoints(&t), hp(&[("a", 5433), ("b", 5434)]));
        let t = pg("postgresql:///db?host=a,b,c&port=6000");
        assert_eq!(endpoints(&t), hp(&[("a", 6000), ("b", 6000), ("c", 6000)]));
        let t = pg("postgresql:///db?host=a,b&port=,5434");
        assert_eq!(endpoints(&t), hp(&[("a", 5432), ("b", 5434)]));
        let t = pg("postgresql:///db?host=a,b");
        assert_eq!(endpoints(&t), hp(&[("a", 5432), ("b", 5432)]));
        // The query's lists replace the authority's.
        let t = pg("postgresql://u@x:1/db?host=a,b");
        assert_eq!(endpoints(&t), hp(&[("a", 1), ("b", 1)]));
        let t = pg("postgresql://u@a,b/db?port=7000,7001");
        assert_eq!(endpoints(&t), hp(&[("a", 7000), ("b", 7001)]));
        // hostaddr: one address per host, or addresses alone.
        let t = pg("postgresql:///db?host=db1,db2&hostaddr=10.0.0.1,10.0.0.2&port=5433");
        assert_eq!(endpoints(&t), hp(&[("db1", 5433), ("db2", 5433)]));
        assert_eq!(t.config.get_hostaddrs().len(), 2);
        let t = pg("postgresql:///db?hostaddr=10.0.0.1,10.0.0.2");
        assert_eq!(endpoints(&t), hp(&[("10.0.0.1", 5432), ("10.0.0.2", 5432)]));
        // Socket directories in a list.
        let t = pg("postgresql:///db?host=%2Ftmp,b&port=5433");
        assert_eq!(endpoints(&t), hp(&[("/tmp", 5433), ("b", 5433)]));
        // Mismatched lists are errors naming the option, as in libpq.
        for bad in [
            "postgresql:///db?host=a,b,c&port=1,2",
            "postgresql://u@a,b,c/db?port=1,2",
            "postgresql:///db?host=a,b&hostaddr=10.0.0.1",
            "postgresql:///db?host=a&port=http",
            "postgresql:///db?hostaddr=not-an-ip",
        ] {
            let e = parse_uri(bad).unwrap_err();
            assert_eq!(e.status, Status::InvalidOption, "{bad}: {}", e.message);
        }
        // Every target_session_attrs value of libpq, and load balancing.
        for (v, want) in [
            ("any", SessionAttrs::Any),
            ("read-write", SessionAttrs::ReadWrite),
            ("read-only", SessionAttrs::ReadOnly),
            ("primary", SessionAttrs::Primary),
            ("standby", SessionAttrs::Standby),
            ("prefer-standby", SessionAttrs::PreferStandby),
        ] {
            let t = pg(&format!("postgresql://a,b/db?target_session_attrs={v}"));
            assert_eq!(t.target_session_attrs, want);
            assert_eq!(want.name(), v);
        }
        assert!(pg("postgresql://a,b/db?load_balance_hosts=random").load_balance_hosts);
        assert!(!pg("postgresql://a,b/db?load_balance_hosts=disable").load_balance_hosts);
        assert!(parse_uri("postgresql://a/db?target_session_attrs=master").is_err());
    }

    #[test]
    fn libpq_conninfo_strings() {
        let (t, o) = parse_uri(
            "host=a,b port=5433,5434 dbname=app user=me password='it\\'s a \\\\ secret' \
             target_session_attrs=read-write load_balance_hosts=random max_size=7",
        )
        .map(|(mut t, o)| {
            // (user, password, dbname are pool-level settings applied at open.)
            apply_connection_options(&mut t, &o).unwrap();
            match t {
                Target::Postgres(t) => (*t, o),
                Target::Sqlite(_) => panic!(),
            }
        })
        .unwrap();
        assert_eq!(endpoints(&t), hp(&[("a", 5433), ("b", 5434)]));
        assert_eq!(t.config.get_dbname(), Some("app"));
        assert_eq!(t.config.get_user(), Some("me"));
        assert_eq!(t.config.get_password(), Some(&b"it's a \\ secret"[..]));
        assert_eq!(t.target_session_attrs, SessionAttrs::ReadWrite);
        assert!(t.load_balance_hosts);
        assert_eq!(o.max_size, Some(7));
        let t = pg("  host = /tmp  dbname=x ");
        assert_eq!(endpoints(&t), hp(&[("/tmp", 5432)]));
        // A broken one fails without echoing a value (it may be a password).
        let e = parse_uri("host=a password='secret").unwrap_err();
        assert!(!e.message.contains("secret"), "{}", e.message);
        assert_eq!(e.status, Status::InvalidUri);
        // Not conninfo: unchanged errors.
        assert!(parse_uri("nothing here").is_err());
    }

    #[test]
    fn bad_uris_are_redacted() {
        let e = parse_uri("postgresql://u:topsecret@host:notaport/db").unwrap_err();
        assert_eq!(e.status, Status::InvalidUri);
        assert!(!e.message.contains("topsecret"), "{}", e.message);
        assert!(parse_uri("mysql://x").is_err());
        assert!(parse_uri("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("abc"), None);
    }
}
