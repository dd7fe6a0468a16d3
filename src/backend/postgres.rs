//! PostgreSQL backend on the blocking `postgres` crate, with a bounded
//! per-connection statement cache so a repeated query costs one round trip.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use postgres::types::ToSql;
use postgres::{Client, Statement};

use super::pgtypes::{check_bind, BindError, Cell, PgParam};
use crate::error::{redact_secrets, status_for_sqlstate, Error, Result, Status};
use crate::result::{Column, ResultSet};
use crate::sqltext::{prepare_sql, Dialect, ParamSlots, PreparedSql};
use crate::value::{Params, Value};

pub struct PgConn {
    client: Client,
    cache: StatementCache,
}

struct StatementCache {
    capacity: usize,
    entries: HashMap<Arc<str>, Arc<(PreparedSql, Statement)>>,
    order: VecDeque<Arc<str>>,
}

pub fn connect(config: &postgres::Config, statement_cache_size: u32) -> Result<PgConn> {
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        return Err(Error::new(
            Status::Unsupported,
            "sslmode=require: this build of sqlpool has no TLS support; use sslmode=disable or prefer \
             (plain TCP), a Unix socket, or a TLS-terminating proxy",
        ));
    }
    let manager = r2d2_postgres::PostgresConnectionManager::new(config.clone(), postgres::NoTls);
    let client = r2d2::ManageConnection::connect(&manager).map_err(|e| {
        let mut err = map_error(e);
        if err.status == Status::ConnectionError {
            err.message = format!(
                "cannot connect to {}: {}",
                describe_hosts(config),
                err.message
            );
        }
        err
    })?;
    Ok(PgConn {
        client,
        cache: StatementCache {
            capacity: statement_cache_size as usize,
            entries: HashMap::new(),
            order: VecDeque::new(),
        },
    })
}

impl PgConn {
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub fn cancel_token(&self) -> postgres::CancelToken {
        self.client.cancel_token()
    }

    pub fn ping(&mut self) -> Result<()> {
        self.client.simple_query("").map(|_| ()).map_err(map_error)
    }

    /// Resets all session state. Server-side prepared statements go too, so
    /// the cache is emptied.
    pub fn discard_all(&mut self) -> Result<()> {
        self.cache.entries.clear();
        self.cache.order.clear();
        self.client.batch_execute("DISCARD ALL").map_err(map_error)
    }

    pub fn execute_script(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(map_error)
    }

    /// The rewritten statement, prepared on the server (cached when the
    /// cache is on).
    fn statement(&mut self, sql: &str) -> Result<Arc<(PreparedSql, Statement)>> {
        if let Some(entry) = self.cache.entries.get(sql) {
            return Ok(entry.clone());
        }
        let prepared = prepare_sql(sql, Dialect::Postgres)?;
        let statement = self.client.prepare(&prepared.sql).map_err(map_error)?;
        let entry = Arc::new((prepared, statement));
        if self.cache.capacity > 0 {
            if self.cache.order.len() >= self.cache.capacity {
                if let Some(oldest) = self.cache.order.pop_front() {
                    self.cache.entries.remove(&oldest);
                }
            }
            let key: Arc<str> = Arc::from(sql);
            self.cache.order.push_back(key.clone());
            self.cache.entries.insert(key, entry.clone());
        }
        Ok(entry)
    }

    pub fn execute(&mut self, sql: &str, params: &Params) -> Result<u64> {
        let entry = self.statement(sql)?;
        let (prepared, statement) = (&entry.0, &entry.1);
        let values = params.ordered_for(prepared)?;
        let bound = bind(statement, prepared, &values)?;
        self.client
            .execute(statement, &refs(&bound))
            .map_err(map_error)
    }

    /// Runs one statement once per parameter set, pipelined over one
    /// prepared statement; the caller provides the transaction.
    pub fn execute_many(&mut self, sql: &str, sets: &[&Params]) -> Result<u64> {
        let entry = self.statement(sql)?;
        let (prepared, statement) = (&entry.0, &entry.1);
        let mut total = 0;
        for (i, params) in sets.iter().enumerate() {
            let values = params.ordered_for(prepared).map_err(|mut e| {
                e.message = format!("parameter set #{}: {}", i + 1, e.message);
                e
            })?;
            let bound = bind(statement, prepared, &values).map_err(|mut e| {
                e.message = format!("parameter set #{}: {}", i + 1, e.message);
                e
            })?;
            total += self
                .client
                .execute(statement, &refs(&bound))
                .map_err(map_error)?;
        }
        Ok(total)
    }

    pub fn query(&mut self, sql: &str, params: &Params) -> Result<ResultSet> {
        let entry = self.statement(sql)?;
        let (prepared, statement) = (&entry.0, &entry.1);
        let values = params.ordered_for(prepared)?;
        let bound = bind(statement, prepared, &values)?;
        let rows = self
            .client
            .query(statement, &refs(&bound))
            .map_err(map_error)?;
        let columns: Vec<Column> = statement
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                decl_type: type_name(c.type_()),
            })
            .collect();
        let ncols = columns.len();
        let mut result = ResultSet::new(columns);
        result.reserve_rows(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(ncols);
            for c in 0..ncols {
                let Cell(value) = row.try_get::<_, Cell>(c).map_err(map_error)?;
                cells.push(value);
            }
            result.push_row(cells);
        }
        Ok(result)
    }
}

/// `int4`, `text[]`, `my_enum`: arrays as `element[]`.
fn type_name(ty: &postgres::types::Type) -> String {
    match ty.kind() {
        postgres::types::Kind::Array(element) => format!("{}[]", element.name()),
        _ => ty.name().to_owned(),
    }
}

/// Checks every value against the type the server expects for it, so a
/// value a parameter cannot take fails here, naming the parameter (`$2`,
/// `:name`), before anything is sent.
fn bind<'v>(
    statement: &Statement,
    prepared: &PreparedSql,
    values: &[&'v Value],
) -> Result<Vec<PgParam<'v>>> {
    let expected = statement.params().len();
    if values.len() != expected {
        return Err(Error::parameter(format!(
            "statement expects {expected} parameters, {} were given",
            values.len()
        )));
    }
    for (i, (value, ty)) in values.iter().zip(statement.params()).enumerate() {
        if let Err(why) = check_bind(value, ty) {
            let name = match &prepared.slots {
                ParamSlots::Named { names } if i < names.len() => format!(":{}", names[i]),
                _ => format!("${}", i + 1),
            };
            return Err(Error::parameter(format!("parameter {name}: {why}")));
        }
    }
    Ok(values.iter().map(|v| PgParam(v)).collect())
}

fn refs<'a>(bound: &'a [PgParam<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// `host:port` for each host of the configuration, for messages.
fn describe_hosts(config: &postgres::Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                postgres::config::Host::Unix(dir) => {
                    format!("socket {}/.s.PGSQL.{port}", dir.display())
                }
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn map_error(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let sqlstate = db.code().code();
        let mut err = Error::new(status_for_sqlstate(sqlstate), redact_secrets(db.message()))
            .with_sqlstate(sqlstate);
        err.detail = db.detail().map(redact_secrets);
        err.hint = db.hint().map(str::to_owned);
        err.position = match db.position() {
            Some(postgres::error::ErrorPosition::Original(p)) => Some(*p),
            _ => None,
        };
        return err;
    }
    if let Some(bind) = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<BindError>()) {
        // "error serializing parameter N" (N counts from 0) has no cause in
        // its text; `bind` normally reports these first, with the name.
        return Error::parameter(format!("{e}: {bind}"));
    }
    // postgres' Display leaves out the cause ("error connecting to server"
    // without "Connection refused"): add the whole chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let text = redact_secrets(&text);
    if e.is_closed() {
        return Error::new(
            Status::ConnectionError,
            format!("the connection to the server was lost: {text}"),
        )
        .with_sqlstate("08006");
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("error connecting")
        || lower.contains("connection refused")
        || lower.contains("timeout")
        || lower.contains("timed out")
        || lower.contains("error communicating")
        || lower.contains("unexpected eof")
        || lower.contains("broken pipe")
        || lower.contains("connection reset")
    {
        return Error::new(Status::ConnectionError, text).with_sqlstate("08001");
    }
    if lower.contains("password") || lower.contains("authentication") {
        return Error::new(Status::AuthError, text).with_sqlstate("28000");
    }
    Error::new(Status::DatabaseError, text)
}
