//! Status codes and the error type shared by the whole crate.
//!
//! Every fallible core function returns [`Result<T>`]; the FFI layer turns the
//! [`Error`] into a [`Status`] return value plus the calling thread's
//! "last error" detail.

use std::fmt;

/// Status code returned by every fallible `sqlpool_*` function;
/// `SQLPOOL_OK` (0) is success. See `sqlpool_status_name` and
/// `sqlpool_last_error_message`.
///
/// The numbers are part of the ABI: they are explicit and never reused.
/// C callers receive them as `uint32_t`-sized enum values; the library never
/// accepts this enum *from* C.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// An argument was invalid: a NULL pointer where one is required, an
    /// out-of-range number, or an unknown enumeration value.
    InvalidArgument = 1,
    /// A string argument (SQL, text value, option) was not valid UTF-8.
    InvalidUtf8 = 2,
    /// The connection URI could not be parsed or names an unknown scheme.
    InvalidUri = 3,
    /// A pool option (from the options object or the URI) had an invalid value.
    InvalidOption = 4,
    /// A handle was used wrongly: it was already released or freed, its pool
    /// was closed, it is of another kind than the function expects, or it was
    /// never issued by this library.
    Misuse = 5,
    /// A row or column index was out of range.
    OutOfRange = 6,
    /// A typed getter was called on a cell of another type.
    TypeMismatch = 7,
    /// A typed getter was called on a NULL cell.
    NullValue = 8,
    /// No connection became available within the acquire timeout.
    PoolTimeout = 9,
    /// The pool is closed (or closing); no new connection is handed out.
    PoolClosed = 10,
    /// Too many callers are already waiting for a connection (`max_waiting`).
    PoolExhausted = 11,
    /// The database could not be reached or the connection was lost.
    ConnectionError = 12,
    /// The database rejected the credentials.
    AuthError = 13,
    /// The database reported an error for a statement; see the SQLSTATE.
    DatabaseError = 14,
    /// A constraint (unique, foreign key, not null, check) was violated
    /// (SQLSTATE class 23).
    ConstraintViolation = 15,
    /// Statement parameters did not match the statement: wrong count, a
    /// missing or unknown name, mixed styles, or a value of a kind the
    /// parameter cannot take.
    ParameterError = 16,
    /// The operation is not supported by this database or build.
    Unsupported = 17,
    /// The operation was cancelled.
    Cancelled = 18,
    /// A connection handle is in use by another thread (one call at a time).
    Busy = 19,
    /// The call was refused because of the transaction state (for example
    /// commit without a transaction).
    TransactionState = 20,
    /// A caller-supplied buffer is too small.
    BufferTooSmall = 21,
    /// Nothing to return right now (for example an empty completion queue).
    Empty = 22,
    /// A statement ran past its `query_timeout` and was cancelled (or its
    /// connection closed when the server did not answer).
    QueryTimeout = 23,
    /// An internal error; please report it.
    Internal = 98,
    /// A Rust panic was caught at the C boundary; please report it.
    Panic = 99,
}

impl Status {
    /// Stable upper-case name as it appears in the header.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "SQLPOOL_OK",
            Status::InvalidArgument => "SQLPOOL_INVALID_ARGUMENT",
            Status::InvalidUtf8 => "SQLPOOL_INVALID_UTF8",
            Status::InvalidUri => "SQLPOOL_INVALID_URI",
            Status::InvalidOption => "SQLPOOL_INVALID_OPTION",
            Status::Misuse => "SQLPOOL_MISUSE",
            Status::OutOfRange => "SQLPOOL_OUT_OF_RANGE",
            Status::TypeMismatch => "SQLPOOL_TYPE_MISMATCH",
            Status::NullValue => "SQLPOOL_NULL_VALUE",
            Status::PoolTimeout => "SQLPOOL_POOL_TIMEOUT",
            Status::PoolClosed => "SQLPOOL_POOL_CLOSED",
            Status::PoolExhausted => "SQLPOOL_POOL_EXHAUSTED",
            Status::ConnectionError => "SQLPOOL_CONNECTION_ERROR",
            Status::AuthError => "SQLPOOL_AUTH_ERROR",
            Status::DatabaseError => "SQLPOOL_DATABASE_ERROR",
            Status::ConstraintViolation => "SQLPOOL_CONSTRAINT_VIOLATION",
            Status::ParameterError => "SQLPOOL_PARAMETER_ERROR",
            Status::Unsupported => "SQLPOOL_UNSUPPORTED",
            Status::Cancelled => "SQLPOOL_CANCELLED",
            Status::Busy => "SQLPOOL_BUSY",
            Status::TransactionState => "SQLPOOL_TRANSACTION_STATE",
            Status::BufferTooSmall => "SQLPOOL_BUFFER_TOO_SMALL",
            Status::Empty => "SQLPOOL_EMPTY",
            Status::QueryTimeout => "SQLPOOL_QUERY_TIMEOUT",
            Status::Internal => "SQLPOOL_INTERNAL",
            Status::Panic => "SQLPOOL_PANIC",
        }
    }
}

/// A failure with everything a caller may want to know about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub status: Status,
    pub message: String,
    /// Five-character SQLSTATE: PostgreSQL's own, or one mapped from SQLite's
    /// result code.
    pub sqlstate: Option<String>,
    /// The database's native code: SQLite's extended result code; 0 otherwise.
    pub native_code: i64,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// 1-based character position in the statement, where the server gave one.
    pub position: Option<u32>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
            sqlstate: None,
            native_code: 0,
            detail: None,
            hint: None,
            position: None,
        }
    }

    pub fn with_sqlstate(mut self, sqlstate: &str) -> Error {
        self.sqlstate = Some(sqlstate.to_owned());
        self
    }

    /// Names the parameter set (0-based `i`) of a batch that failed.
    pub fn in_set(mut self, i: usize) -> Error {
        self.message = format!("parameter set #{}: {}", i + 1, self.message);
        self
    }

    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidArgument, message)
    }

    pub fn misuse(message: impl Into<String>) -> Error {
        Error::new(Status::Misuse, message)
    }

    pub fn parameter(message: impl Into<String>) -> Error {
        Error::new(Status::ParameterError, message)
    }

    /// True when the error means the connection it happened on is unusable
    /// (SQLSTATE class 08, `57P01`..`57P03`, or a lost socket).
    pub fn breaks_connection(&self) -> bool {
        if self.status == Status::ConnectionError {
            return true;
        }
        match self.sqlstate.as_deref() {
            Some(s) => s.starts_with("08") || matches!(s, "57P01" | "57P02" | "57P03"),
            None => false,
        }
    }

    /// The error as a JSON object (status, SQLSTATE, message, detail, hint,
    /// position), for `sqlpool_last_error_json`.
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        map.insert("status".into(), self.status.name().into());
        map.insert("code".into(), (self.status as u32).into());
        map.insert("message".into(), self.message.clone().into());
        map.insert(
            "sqlstate".into(),
            self.sqlstate
                .clone()
                .map_or(serde_json::Value::Null, Into::into),
        );
        map.insert("native_code".into(), self.native_code.into());
        for (key, value) in [("detail", &self.detail), ("hint", &self.hint)] {
            if let Some(v) = value {
                map.insert(key.into(), v.clone().into());
            }
        }
        if let Some(p) = self.position {
            map.insert("position".into(), p.into());
        }
        serde_json::Value::Object(map).to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(state) => write!(f, "{} (SQLSTATE {})", self.message, state),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// The text of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Status for a server-reported SQLSTATE.
pub fn status_for_sqlstate(sqlstate: &str) -> Status {
    if sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03") {
        Status::ConnectionError
    } else if sqlstate.starts_with("28") {
        Status::AuthError
    } else if sqlstate.starts_with("23") {
        Status::ConstraintViolation
    } else if sqlstate == "57014" {
        Status::Cancelled
    } else {
        Status::DatabaseError
    }
}

impl From<crate::sqltext::SqlParamError> for Error {
    fn from(e: crate::sqltext::SqlParamError) -> Error {
        Error::parameter(e.message)
    }
}

/// Removes a password from anything that looks like a connection string:
/// `scheme://user:secret@host` and `password=secret` both become `***`.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // `user:password@` inside URLs.
    while let Some(scheme_at) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', ' ', '"', '\'']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    redact_key_values(&out)
}

fn redact_key_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("password=") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password=") {
        let value_start = i + found + "password=".len();
        out.push_str(&text[i..value_start]);
        out.push_str("***");
        let value_len = text[value_start..]
            .find(['&', ' ', '"', '\''])
            .unwrap_or(text.len() - value_start);
        i = value_start + value_len;
    }
    out.push_str(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_passwords() {
        assert_eq!(
            redact_secrets("postgresql://bob:s3cret@host:5432/db?x=1"),
            "postgresql://bob:***@host:5432/db?x=1"
        );
        assert_eq!(
            redact_secrets("bad uri postgres://u:p%40ss@h/db"),
            "bad uri postgres://u:***@h/db"
        );
        assert_eq!(redact_secrets("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(
            redact_secrets("postgresql://h/db?password=abc&user=x"),
            "postgresql://h/db?password=***&user=x"
        );
    }

    #[test]
    fn connection_breaking_states() {
        let e = Error::new(Status::DatabaseError, "x").with_sqlstate("57P01");
        assert!(e.breaks_connection());
        let e = Error::new(Status::DatabaseError, "x").with_sqlstate("23505");
        assert!(!e.breaks_connection());
    }
}
