//! Pool options and connection-URI parsing.
//!
//! A URI names the database and may carry pool options as query parameters
//! (`?min_size=5&max_size=30&acquire_timeout=60s`). Options set explicitly on
//! an options object win over the URI's.

use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result, Status};

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

/// Parses a URI into the database target and the pool options it carries.
///
/// PostgreSQL targets come as a `postgresql://` (or `postgres://`) URI or
/// as a libpq key=value conninfo string (`host=db1 dbname=app user=me`);
/// pool options may appear in either. Errors name the key and value at
/// fault, but never a password: messages are built from the parsed parts,
/// never by echoing (or pattern-redacting) the input.
pub fn parse_uri(uri: &str) -> Result<(Target, PoolOptions)> {
    let lower = uri.trim_start().to_ascii_lowercase();
    if lower.starts_with("postgresql:") || lower.starts_with("postgres:") {
        return parse_postgres(uri_params(uri.trim())?);
    }
    if looks_like_conninfo(uri) {
        return parse_postgres(conninfo_params(uri)?);
    }
    let (base, query) = match uri.find('?') {
        Some(q) => (&uri[..q], &uri[q + 1..]),
        None => (uri, ""),
    };
    // SQLite URIs carry no secret in their path; the query is never shown.
    let bad = |why: &str| {
        Error::new(
            Status::InvalidUri,
            format!("invalid connection URI {base:?}: {why}"),
        )
    };
    let mut options = PoolOptions::default();
    let mut passthrough: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_strict(k).map_err(|why| bad(&format!("query key {k:?}: {why}")))?;
        let value = decode_strict(v).map_err(|why| {
            if is_secret_key(&key) {
                bad(&format!("the value of {key}: {why}"))
            } else {
                bad(&format!("the value {v:?} of {key}: {why}"))
            }
        })?;
        if !options.set_from_str(&key, &value)? {
            passthrough.push((key, value));
        }
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
    let path = decode_strict(path).map_err(|why| bad(&format!("the path: {why}")))?;
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
            _ if is_postgres_key(k) => {
                return Err(Error::new(
                    Status::InvalidOption,
                    format!("option {k} applies to PostgreSQL only, not to an SQLite URI"),
                ))
            }
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

/// Applies the psqlpy-style separate connection parameters to a PostgreSQL
/// target; they are an error for SQLite.
/// Then, for PostgreSQL, libpq's environment variables fill what is still
/// unset. SQLite-only options are refused on PostgreSQL and vice versa.
pub fn apply_connection_options(target: &mut Target, options: &mut PoolOptions) -> Result<()> {
    let any = options.user.is_some()
        || options.password.is_some()
        || options.host.is_some()
        || options.port.is_some()
        || options.dbname.is_some()
        || options.application_name.is_some();
    match target {
        Target::Postgres(target) => {
            let sqlite_only = [
                ("busy_timeout", options.busy_timeout.is_some()),
                ("journal_mode", options.journal_mode.is_some()),
                ("pragma.*", !options.sqlite_pragmas.is_empty()),
            ];
            if let Some((name, _)) = sqlite_only.iter().find(|(_, set)| *set) {
                return Err(Error::new(
                    Status::InvalidOption,
                    format!("option {name} applies to SQLite only, not to PostgreSQL"),
                ));
            }
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
            apply_environment(config, options)?;
            if let Some(t) = options.connect_timeout {
                config.connect_timeout(t);
            }
            if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
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

/// Keys whose values are secrets: never shown in a message.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("passwd") || k == "pass" || k == "sslpassword"
}

/// Connection parameters of PostgreSQL (ours and the postgres crate's):
/// refused on SQLite with a message that says so.
fn is_postgres_key(key: &str) -> bool {
    PG_OWN_KEYS.contains(&key) || PG_DRIVER_KEYS.contains(&key)
}

/// Taken out by `PgTarget::take_own_params`.
const PG_OWN_KEYS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Handed to the postgres crate (the authority's parts and these).
const PG_DRIVER_KEYS: &[&str] = &["options", "hostaddr", "channel_binding"];

/// Parameters of an SQLite `file:` URI: refused on PostgreSQL.
const SQLITE_URI_KEYS: &[&str] = &[
    "mode",
    "cache",
    "immutable",
    "vfs",
    "nolock",
    "psow",
    "modeof",
];

/// A PostgreSQL target as parsed, before it is applied: the authority's
/// parts (URI) and every other key=value, in order.
struct PgParams {
    user: Option<String>,
    password: Option<String>,
    /// Comma-separated, as written (host names, socket directories).
    hosts: Vec<String>,
    ports: Vec<String>,
    dbname: Option<String>,
    rest: Vec<(String, String)>,
    /// For messages: the URI with its password replaced by `***`, built
    /// from the parsed parts.
    display: String,
}

/// Percent-decoding that refuses what is not `%XX` and what is not UTF-8.
fn decode_strict(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err("invalid percent-encoding (expected %XX)".into());
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "not valid UTF-8".into())
}

/// `postgresql://[user[:password]@][host[:port][,...]][/dbname][?k=v&...]`.
/// The user info ends at the last `@` before the query, so a password may
/// hold a raw `/` or `@` (percent-encode `?`, `#` and `%`).
fn uri_params(uri: &str) -> Result<PgParams> {
    let scheme_end = uri.find("://").ok_or_else(|| {
        Error::new(
            Status::InvalidUri,
            "invalid connection URI: expected postgresql://[user[:password]@][host][:port][/dbname][?option=value...]",
        )
    })?;
    let scheme = &uri[..scheme_end];
    let rest = &uri[scheme_end + 3..];
    let (main, query) = match rest.find('?') {
        Some(q) => (&rest[..q], &rest[q + 1..]),
        None => (rest, ""),
    };
    let (userinfo, hostpart) = match main.rfind('@') {
        Some(at) => (Some(&main[..at]), &main[at + 1..]),
        None => (None, main),
    };
    let (user_raw, password_raw) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (Some(user), Some(pw)),
            None => (Some(u), None),
        },
        None => (None, None),
    };
    let (hostspec, db_raw) = match hostpart.find('/') {
        Some(slash) => (&hostpart[..slash], Some(&hostpart[slash + 1..])),
        None => (hostpart, None),
    };
    let display = format!(
        "{scheme}://{}{}{}{hostspec}{}",
        user_raw.unwrap_or(""),
        if password_raw.is_some() { ":***" } else { "" },
        if userinfo.is_some() { "@" } else { "" },
        db_raw.map(|d| format!("/{d}")).unwrap_or_default(),
    );
    let bad = |why: String| {
        Error::new(
            Status::InvalidUri,
            format!("invalid connection URI {display:?}: {why}"),
        )
    };
    let user = user_raw
        .filter(|u| !u.is_empty())
        .map(|u| decode_strict(u).map_err(|why| bad(format!("the user name {u:?}: {why}"))))
        .transpose()?;
    let password = password_raw
        .map(|p| decode_strict(p).map_err(|why| bad(format!("the password: {why}"))))
        .transpose()?;
    let dbname = db_raw
        .filter(|d| !d.is_empty())
        .map(|d| decode_strict(d).map_err(|why| bad(format!("the database name {d:?}: {why}"))))
        .transpose()?;
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    if !hostspec.is_empty() {
        for part in hostspec.split(',') {
            let (host, port) = if let Some(inner) = part.strip_prefix('[') {
                // [IPv6]:port
                let close = inner
                    .find(']')
                    .ok_or_else(|| bad(format!("unclosed '[' in host {part:?}")))?;
                let after = &inner[close + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => return Err(bad(format!("unexpected {after:?} after host {part:?}"))),
                };
                (&inner[..close], port)
            } else {
                match part.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (part, None),
                }
            };
            let host =
                decode_strict(host).map_err(|why| bad(format!("the host {host:?}: {why}")))?;
            hosts.push(host);
            if let Some(p) = port {
                check_port(p)
                    .map_err(|why| bad(format!("invalid value {p:?} for option port: {why}")))?;
                ports.push(p.to_owned());
            } else {
                ports.push(String::new());
            }
        }
        if ports.iter().all(String::is_empty) {
            ports.clear();
        }
    }
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_strict(k).map_err(|why| bad(format!("the option name {k:?}: {why}")))?;
        let value = decode_strict(v).map_err(|why| {
            if is_secret_key(&key) {
                bad(format!("the value of option {key}: {why}"))
            } else {
                bad(format!("the value {v:?} of option {key}: {why}"))
            }
        })?;
        rest.push((key, value));
    }
    Ok(PgParams {
        user,
        password,
        hosts,
        ports,
        dbname,
        rest,
        display,
    })
}

fn check_port(p: &str) -> std::result::Result<u16, &'static str> {
    match p.trim().parse::<u64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(_) => Err("out of range (expected a port number from 1 to 65535)"),
        Err(_) => Err("expected a port number from 1 to 65535"),
    }
}

/// A libpq key=value connection string, `host=db1 port=5432 dbname=app`?
fn looks_like_conninfo(s: &str) -> bool {
    let t = s.trim_start();
    let key_len = t
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
        .count();
    key_len > 0 && t[key_len..].trim_start().starts_with('=')
}

/// Parses a libpq conninfo string: `key = value` pairs separated by
/// whitespace; a value may be single-quoted; `\` escapes the next character.
fn conninfo_params(s: &str) -> Result<PgParams> {
    let bad = |why: String| {
        Error::new(
            Status::InvalidUri,
            format!("invalid connection string: {why}"),
        )
    };
    let mut rest = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = it.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            it.next();
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.next() != Some('=') {
            return Err(bad(format!("missing \"=\" after {key:?}")));
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        let mut value = String::new();
        if it.peek() == Some(&'\'') {
            it.next();
            loop {
                match it.next() {
                    None => return Err(bad(format!("unterminated quoted value of {key}"))),
                    Some('\'') => break,
                    Some('\\') => value.extend(it.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = it.peek() {
                if c.is_whitespace() {
                    break;
                }
                it.next();
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
        }
        rest.push((key, value));
    }
    Ok(PgParams {
        user: None,
        password: None,
        hosts: Vec::new(),
        ports: Vec::new(),
        dbname: None,
        rest,
        display: "connection string".into(),
    })
}

/// Quotes a value for the postgres crate's key=value parser.
fn conninfo_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn parse_postgres(mut p: PgParams) -> Result<(Target, PoolOptions)> {
    let mut options = PoolOptions::default();
    let mut passthrough: Vec<(String, String)> = Vec::new();
    for (key, value) in &p.rest {
        // `host` and `port` lists replace the address part's (libpq).
        match key.as_str() {
            "host" => {
                p.hosts = value.split(',').map(|h| h.trim().to_owned()).collect();
                continue;
            }
            "port" => {
                for port in value.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                    check_port(port).map_err(|why| {
                        Error::new(
                            Status::InvalidOption,
                            format!("invalid value {port:?} for option port: {why}"),
                        )
                    })?;
                }
                p.ports = value.split(',').map(|x| x.trim().to_owned()).collect();
                continue;
            }
            _ => {}
        }
        if !options.set_from_str(key, value)? {
            passthrough.push((key.clone(), value.clone()));
        }
    }
    if let Some((_, addrs)) = passthrough.iter().find(|(k, _)| k == "hostaddr") {
        let n = addrs.split(',').count();
        if !p.hosts.is_empty() && n != p.hosts.len() {
            return Err(Error::new(
                Status::InvalidOption,
                format!(
                    "{n} hostaddr entries for {} hosts: give one address per host",
                    p.hosts.len()
                ),
            ));
        }
    }
    if p.ports.len() > 1 && p.ports.len() != p.hosts.len().max(1) {
        return Err(Error::new(
            Status::InvalidOption,
            format!(
                "{} ports for {} hosts: give one port for all hosts or one per host",
                p.ports.len(),
                p.hosts.len().max(1)
            ),
        ));
    }
    let bad_value = |key: &str, value: &str, expected: &str| {
        Error::new(
            Status::InvalidOption,
            format!("invalid value {value:?} for option {key}: expected {expected}"),
        )
    };
    let mut target = PgTarget::take_own_params(&mut passthrough, bad_value)?;
    let mut conninfo = Vec::new();
    for (key, value) in &passthrough {
        let k = key.as_str();
        if SQLITE_URI_KEYS.contains(&k) {
            return Err(Error::new(
                Status::InvalidOption,
                format!("option {k} applies to SQLite only, not to a PostgreSQL URI"),
            ));
        }
        match k {
            "options" => {}
            "hostaddr" => {
                for a in value.split(',') {
                    a.trim().parse::<std::net::IpAddr>().map_err(|_| {
                        bad_value(k, value, "a comma-separated list of IP addresses")
                    })?;
                }
            }
            "channel_binding" => {
                if !matches!(value.as_str(), "disable" | "prefer" | "require") {
                    return Err(bad_value(k, value, "disable, prefer or require"));
                }
            }
            _ => {
                return Err(Error::new(
                    Status::InvalidOption,
                    format!(
                        "unknown option {k:?} in PostgreSQL connection parameters ({})",
                        p.display
                    ),
                ))
            }
        }
        conninfo.push(format!("{k}={}", conninfo_quote(value)));
    }
    if let Some(v) = &p.user {
        conninfo.push(format!("user={}", conninfo_quote(v)));
    }
    if let Some(v) = &p.password {
        conninfo.push(format!("password={}", conninfo_quote(v)));
    }
    if let Some(v) = &p.dbname {
        conninfo.push(format!("dbname={}", conninfo_quote(v)));
    }
    if !p.hosts.is_empty() {
        conninfo.push(format!("host={}", conninfo_quote(&p.hosts.join(","))));
    }
    if !p.ports.is_empty() {
        let ports: Vec<&str> = p
            .ports
            .iter()
            .map(|s| if s.is_empty() { "5432" } else { s.as_str() })
            .collect();
        conninfo.push(format!("port={}", ports.join(",")));
    }
    target.config = conninfo.join(" ").parse().map_err(|_| {
        // Checked above; the crate's message could name a value, so only
        // the (redacted) display form is shown.
        Error::new(
            Status::InvalidUri,
            format!("invalid PostgreSQL connection parameters ({})", p.display),
        )
    })?;
    Ok((Target::Postgres(Box::new(target)), options))
}

/// libpq's environment variables, for what the URI and the options leave
/// unset (see the README for the order).
fn apply_environment(config: &mut tokio_postgres::Config, options: &mut PoolOptions) -> Result<()> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let bad = |name: &str, value: &str, expected: &str| {
        Error::new(
            Status::InvalidOption,
            format!("invalid value {value:?} for environment variable {name}: expected {expected}"),
        )
    };
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        if let Some(v) = env("PGHOST") {
            for h in v.split(',') {
                config.host(h.trim());
            }
        }
    }
    if config.get_hostaddrs().is_empty() {
        if let Some(v) = env("PGHOSTADDR") {
            for a in v.split(',') {
                let addr = a
                    .trim()
                    .parse()
                    .map_err(|_| bad("PGHOSTADDR", &v, "IP addresses"))?;
                config.hostaddr(addr);
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(v) = env("PGPORT") {
            for p in v.split(',') {
                let port = check_port(p).map_err(|why| bad("PGPORT", &v, why))?;
                config.port(port);
            }
        }
    }
    if config.get_user().is_none() {
        if let Some(v) = env("PGUSER").or_else(os_user) {
            config.user(&v);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(v) = env("PGDATABASE") {
            config.dbname(&v);
        }
    }
    if config.get_application_name().is_none() {
        if let Some(v) = env("PGAPPNAME") {
            config.application_name(&v);
        }
    }
    if options.connect_timeout.is_none() {
        if let Some(v) = env("PGCONNECT_TIMEOUT") {
            let secs = v
                .trim()
                .parse::<u64>()
                .map_err(|_| bad("PGCONNECT_TIMEOUT", &v, "a whole number of seconds"))?;
            if secs > 0 {
                options.connect_timeout = Some(Duration::from_secs(secs.max(2)));
            }
        }
    }
    if config.get_password().is_none() {
        if let Some(v) = env("PGPASSWORD") {
            config.password(v);
        } else if let Some(v) = password_from_file(config) {
            config.password(v);
        }
    }
    Ok(())
}

/// The login name of the process's user (libpq's default user).
fn os_user() -> Option<String> {
    if let Some(u) = std::env::var("USER").ok().filter(|v| !v.is_empty()) {
        return Some(u);
    }
    // SAFETY: getpwuid returns NULL or a pointer to a static passwd entry,
    // read at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_str()
            .ok()
            .map(str::to_owned)
    }
}

/// The password file: `PGPASSFILE`, else `~/.pgpass`.
fn password_file_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|v| !v.is_empty()) {
        return Some(p.into());
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| std::path::Path::new(&h).join(".pgpass"))
}

/// libpq's password file lookup: `host:port:dbname:user:password` lines,
/// `*` matching anything, `\` escaping `:` and `\`; the first match wins.
/// Like libpq, a file with any group or world permission is ignored (with a
/// warning). Matched against the first host (a socket directory counts as
/// `localhost`).
fn password_from_file(config: &tokio_postgres::Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = password_file_path()?;
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        crate::log::emit(
            crate::log::Level::Warn,
            "sqlpool::pool",
            &format!(
                "password file {:?} has group or world access; permissions should be u=rw (0600) or less: ignored",
                path.display().to_string()
            ),
        );
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("").to_owned();
    let dbname = config.get_dbname().unwrap_or(&user).to_owned();
    pgpass_lookup(&text, [&host, &port, &dbname, &user])
}

pub(crate) fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields.pop().unwrap_or_default());
        }
    }
    None
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
                let port = match ports.len() {
                    0 => 5432,
                    1 => ports[0],
                    _ => ports[i],
                };
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
        .map(|(mut t, mut o)| {
            // (user, password, dbname are pool-level settings applied at open.)
            apply_connection_options(&mut t, &mut o).unwrap();
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
