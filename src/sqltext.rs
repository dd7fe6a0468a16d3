//! Placeholder lexing and rewriting for SQL text.
//!
//! Users write SQL with one of three placeholder styles:
//!
//! * named `:name` (`[A-Za-z_][A-Za-z0-9_]*`, may repeat) — the same text runs
//!   on both databases;
//! * positional `$1..$n` (PostgreSQL style, also accepted for SQLite);
//! * SQLite `?` / `?NNN` (SQLite only: on PostgreSQL `?` is a jsonb operator).
//!
//! [`prepare_sql`] lexes the statement in a single pass, copying byte-for-byte
//! everything a placeholder can never appear in (string literals, `E'…'`
//! strings, quoted identifiers, comments, dollar-quoted bodies, `::` casts,
//! array subscripts) and rewrites placeholders into the target's native form,
//! so values are always bound and never interpolated.

use std::collections::HashMap;
use std::fmt;

/// Highest parameter number accepted (PostgreSQL's wire-protocol limit).
const MAX_PARAM: usize = 65_535;
/// Up to this many distinct names, name look-ups use a linear scan.
const LINEAR_LOOKUP_LIMIT: usize = 8;
/// How many names an error message lists before eliding the rest.
const NAMES_IN_MESSAGES: usize = 10;

/// Target database of a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: placeholders are emitted as `$n`.
    Postgres,
    /// SQLite: placeholders are emitted as `?n`.
    Sqlite,
}

/// What a prepared statement expects to be bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamSlots {
    /// No placeholders.
    None,
    /// `$n`, `?`, `?NNN`: `count` = highest parameter number.
    Positional {
        /// Highest parameter number used; values bind to `1..=count`.
        count: usize,
    },
    /// `:name`: `names[i]` is bound to target placeholder number `i + 1`.
    Named {
        /// Distinct names (without the colon) in order of first appearance.
        names: Vec<String>,
    },
}

/// SQL rewritten for its target dialect, plus what it expects to be bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedSql {
    /// The rewritten SQL text, ready for the target database.
    pub sql: String,
    /// The parameter slots of `sql`.
    pub slots: ParamSlots,
}

/// A placeholder or parameter-binding error with a user-facing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlParamError {
    /// Human-readable description, naming the offending parameter.
    pub message: String,
}

impl SqlParamError {
    /// Builds an error from its message.
    fn new(message: impl Into<String>) -> Self {
        SqlParamError {
            message: message.into(),
        }
    }
}

impl fmt::Display for SqlParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqlParamError {}

/// Lexes `sql` and rewrites its placeholders for `dialect`.
///
/// PostgreSQL: `:name` -> `$k` (k = 1-based index of the distinct name in
/// order of first appearance), `$n` unchanged, `?` left alone (operator).
/// SQLite: `:name` -> `?k`, `$n` -> `?n`, `?`/`?NNN` unchanged.
///
/// Errors: named and positional placeholders mixed in one statement, `$0` /
/// `?0`, numbers above 65535, malformed placeholders, and (SQLite only)
/// SQLite-native forms this crate cannot bind (`@name`, `$name`, `:1`).
pub fn prepare_sql(sql: &str, dialect: Dialect) -> Result<PreparedSql, SqlParamError> {
    if !may_have_placeholders(sql.as_bytes(), dialect) {
        return Ok(PreparedSql {
            sql: sql.to_owned(),
            slots: ParamSlots::None,
        });
    }
    Rewriter::new(sql, dialect).run()
}

/// True when SQLite `sql` holds more than one statement: a `;` outside
/// literals, identifiers and comments followed by anything but blanks,
/// comments and more `;`. (SQLite would silently run only the first.)
pub fn sqlite_has_multiple_statements(sql: &str) -> bool {
    let b = sql.as_bytes();
    let mut ended = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let significant = !(c.is_ascii_whitespace()
            || c == b';'
            || (c == b'-' && next == Some(b'-'))
            || (c == b'/' && next == Some(b'*')));
        if ended && significant {
            return true;
        }
        i = match c {
            b'\'' | b'"' | b'`' => skip_quoted(b, i + 1, c),
            b'[' => find_byte(b, i + 1, b']').map_or(b.len(), |p| p + 1),
            b'-' if next == Some(b'-') => skip_line_comment(b, i + 2, false),
            b'/' if next == Some(b'*') => skip_block_comment(b, i + 2, false),
            b';' => {
                ended = true;
                i + 1
            }
            _ => i + 1,
        };
    }
    false
}

/// True when `sql` may change the session beyond its transaction, so a
/// pool must reset the session before the next borrower gets it:
/// `SET` (not `SET LOCAL`/`SET TRANSACTION`), `RESET`, `set_config(...)`,
/// `CREATE TEMP`/`TEMPORARY` objects (also SQLite's `temp.` schema),
/// `PREPARE`, `LISTEN`, `DECLARE`, `LOAD`, session advisory locks
/// (`pg_advisory_lock`, `pg_try_advisory_lock` and their `_shared` forms),
/// `SET SESSION AUTHORIZATION`/`SET ROLE`, and SQLite `PRAGMA`, `ATTACH`,
/// `DETACH`. Words inside literals, quoted identifiers, comments and
/// dollar-quoted bodies are never looked at.
pub fn changes_session(sql: &str, dialect: Dialect) -> bool {
    let b = sql.as_bytes();
    let pg = dialect == Dialect::Postgres;
    // Position of the word within its statement (0 = the leading keyword),
    // the leading keyword, and the one after it.
    let mut index = 0usize;
    let mut first: &[u8] = b"";
    // Only CREATE [OR REPLACE] [GLOBAL | LOCAL] so far.
    let mut create_prefix = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if is_ident_start(c) && !(pg && (c == b'E' || c == b'e') && next == Some(b'\'')) {
            let end = scan(b, i, is_ident_char);
            let word = &b[i..end];
            let followed_by_paren = b[end..]
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|&c| c == b'(');
            let followed_by_dot = b.get(end) == Some(&b'.');
            let is = |w: &str| word.eq_ignore_ascii_case(w.as_bytes());
            if index == 0 {
                first = word;
                create_prefix = is("CREATE");
                let lead = |w: &str| word.eq_ignore_ascii_case(w.as_bytes());
                if lead("RESET")
                    || lead("PREPARE")
                    || lead("LISTEN")
                    || lead("DECLARE")
                    || lead("LOAD")
                    || lead("PRAGMA")
                    || lead("ATTACH")
                    || lead("DETACH")
                {
                    return true;
                }
            } else if first.eq_ignore_ascii_case(b"SET") && index == 1 {
                if !(is("LOCAL") || is("TRANSACTION") || is("CONSTRAINTS")) {
                    return true;
                }
            } else if first.eq_ignore_ascii_case(b"CREATE") {
                if (is("TEMP") || is("TEMPORARY")) && (create_prefix || followed_by_dot) {
                    return true;
                }
                create_prefix &= is("OR") || is("REPLACE") || is("GLOBAL") || is("LOCAL");
            }
            if followed_by_paren {
                let lower = word.to_ascii_lowercase();
                if lower == b"set_config"
                    || lower.starts_with(b"pg_advisory_lock")
                    || lower.starts_with(b"pg_try_advisory_lock")
                {
                    return true;
                }
            }
            index += 1;
            i = end;
            continue;
        }
        i = match c {
            b';' => {
                index = 0;
                first = b"";
                create_prefix = false;
                i + 1
            }
            b'\'' => skip_quoted(b, i + 1, b'\''),
            b'"' => skip_quoted(b, i + 1, b'"'),
            b'`' if !pg => skip_quoted(b, i + 1, b'`'),
            b'[' if !pg => find_byte(b, i + 1, b']').map_or(b.len(), |p| p + 1),
            b'E' | b'e' if pg => skip_escape_string(b, i + 2),
            b'-' if next == Some(b'-') => skip_line_comment(b, i + 2, pg),
            b'/' if next == Some(b'*') => skip_block_comment(b, i + 2, pg),
            b'$' if pg => {
                // A dollar-quoted body: $$ or $tag$.
                let tag_end = scan(b, i + 1, |c| c.is_ascii_alphanumeric() || c == b'_');
                if b.get(tag_end) == Some(&b'$')
                    && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit())
                {
                    skip_dollar_body(sql, i, tag_end + 1)
                } else {
                    tag_end.max(i + 1)
                }
            }
            b'0'..=b'9' => scan(b, i, |c| {
                c.is_ascii_alphanumeric() || c == b'.' || c == b'_'
            }),
            _ => i + 1,
        };
    }
    false
}

/// Fast pre-check: `false` when `sql` contains no byte that can start a
/// placeholder for `dialect`, so lexing can be skipped entirely.
fn may_have_placeholders(sql: &[u8], dialect: Dialect) -> bool {
    match dialect {
        Dialect::Postgres => sql.iter().any(|&c| c == b':' || c == b'$'),
        Dialect::Sqlite => sql.iter().any(|&c| matches!(c, b':' | b'$' | b'?' | b'@')),
    }
}

impl PreparedSql {
    /// Checks `supplied` positional values against the slots.
    ///
    /// Errors: "statement expects 2 parameters, 3 were given"; a named
    /// statement given positional values: "statement uses named parameters
    /// (:x, :y) but positional values were given".
    pub fn check_positional(&self, supplied: usize) -> Result<(), SqlParamError> {
        match &self.slots {
            ParamSlots::None => expect_count(0, supplied),
            ParamSlots::Positional { count } => expect_count(*count, supplied),
            ParamSlots::Named { names } if supplied == 0 => Err(SqlParamError::new(format!(
                "missing value for parameter :{}",
                names[0]
            ))),
            ParamSlots::Named { names } => Err(SqlParamError::new(format!(
                "statement uses named parameters ({}) but positional values were given",
                name_list(names)
            ))),
        }
    }

    /// For named values: given the supplied names in order, returns for each
    /// target slot the index into `supplied`.
    ///
    /// A supplied name may carry a leading `:`. Errors name the parameter:
    /// "missing value for parameter :y", "unknown parameter :z (the statement
    /// has :x, :y)", "parameter :x given twice"; a positional statement given
    /// named values is an error too.
    pub fn order_named(&self, supplied: &[&str]) -> Result<Vec<usize>, SqlParamError> {
        let names = match &self.slots {
            ParamSlots::None => {
                return match supplied.first() {
                    None => Ok(Vec::new()),
                    Some(name) => Err(SqlParamError::new(format!(
                        "unknown parameter :{} (the statement has no parameters)",
                        strip_colon(name)
                    ))),
                };
            }
            ParamSlots::Positional { count } => {
                if supplied.is_empty() {
                    expect_count(*count, 0)?;
                }
                return Err(SqlParamError::new(format!(
                    "statement uses positional parameters (expects {}) but named values were given",
                    count
                )));
            }
            ParamSlots::Named { names } => names,
        };
        let index: Option<HashMap<&str, usize>> = if names.len() > LINEAR_LOOKUP_LIMIT {
            Some(
                names
                    .iter()
                    .enumerate()
                    .map(|(k, n)| (n.as_str(), k))
                    .collect(),
            )
        } else {
            None
        };
        let mut order = vec![usize::MAX; names.len()];
        for (j, raw) in supplied.iter().enumerate() {
            let key = strip_colon(raw);
            let slot = match &index {
                Some(map) => map.get(key).copied(),
                None => names.iter().position(|n| n == key),
            };
            match slot {
                None => {
                    return Err(SqlParamError::new(format!(
                        "unknown parameter :{} (the statement has {})",
                        key,
                        name_list(names)
                    )))
                }
                Some(k) if order[k] != usize::MAX => {
                    return Err(SqlParamError::new(format!(
                        "parameter :{} given twice",
                        key
                    )))
                }
                Some(k) => order[k] = j,
            }
        }
        if let Some(k) = order.iter().position(|&j| j == usize::MAX) {
            return Err(SqlParamError::new(format!(
                "missing value for parameter :{}",
                names[k]
            )));
        }
        Ok(order)
    }
}

/// Removes one leading `:` from a supplied parameter name.
fn strip_colon(name: &str) -> &str {
    name.strip_prefix(':').unwrap_or(name)
}

/// `Ok` when `supplied == expected`, else the "expects N parameters" error.
fn expect_count(expected: usize, supplied: usize) -> Result<(), SqlParamError> {
    if expected == supplied {
        return Ok(());
    }
    Err(SqlParamError::new(format!(
        "statement expects {} parameter{}, {} {} given",
        expected,
        if expected == 1 { "" } else { "s" },
        supplied,
        if supplied == 1 { "was" } else { "were" }
    )))
}

/// Formats names as `:x, :y`, eliding all but the first few.
fn name_list(names: &[String]) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().take(NAMES_IN_MESSAGES).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push(':');
        out.push_str(name);
    }
    if names.len() > NAMES_IN_MESSAGES {
        out.push_str(&format!(", ... ({} in total)", names.len()));
    }
    out
}

/// Placeholder style, for detecting mixed styles.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `:name`.
    Named,
    /// `$n`, `?`, `?NNN`.
    Positional,
}

/// The previous significant token (whitespace and comments are skipped);
/// PostgreSQL uses it to tell `ARRAY[...]` constructors from subscripts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// The keyword `ARRAY`.
    Array,
    /// An opening `[`.
    OpenBracket,
    /// A `,`.
    Comma,
    /// Anything else.
    Other,
}

/// Distinct parameter names in order of first appearance, with a hash index
/// once there are too many for a linear scan.
struct NameTable<'a> {
    /// Names in order of first appearance.
    list: Vec<&'a str>,
    /// Name -> position in `list`, built once `list` outgrows the limit.
    index: Option<HashMap<&'a str, usize>>,
}

impl<'a> NameTable<'a> {
    /// Returns the 0-based slot of `name`, if already seen.
    fn get(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(map) => map.get(name).copied(),
            None => self.list.iter().position(|n| *n == name),
        }
    }

    /// Appends a new `name` and returns its 0-based slot.
    fn insert(&mut self, name: &'a str) -> usize {
        let slot = self.list.len();
        self.list.push(name);
        if let Some(map) = &mut self.index {
            map.insert(name, slot);
        } else if self.list.len() > LINEAR_LOOKUP_LIMIT {
            self.index = Some(self.list.iter().enumerate().map(|(k, n)| (*n, k)).collect());
        }
        slot
    }
}

/// Single-pass lexer/rewriter state. Works on bytes, but only ever slices
/// `sql` next to ASCII delimiters, i.e. on char boundaries.
struct Rewriter<'a> {
    /// The input statement.
    sql: &'a str,
    /// Target database.
    dialect: Dialect,
    /// Output, allocated on the first rewrite.
    out: String,
    /// Bytes of `sql` already copied into `out`.
    copied: usize,
    /// Named parameters seen so far.
    names: NameTable<'a>,
    /// Highest positional parameter number seen so far.
    max_number: usize,
    /// Style and byte span of the first placeholder.
    first: Option<(Style, usize, usize)>,
    /// PostgreSQL open `[`: `true` for an `ARRAY[...]` constructor.
    brackets: Vec<bool>,
    /// Previous significant token.
    prev: Prev,
}

impl<'a> Rewriter<'a> {
    /// Fresh state for lexing `sql`.
    fn new(sql: &'a str, dialect: Dialect) -> Self {
        Rewriter {
            sql,
            dialect,
            out: String::new(),
            copied: 0,
            names: NameTable {
                list: Vec::new(),
                index: None,
            },
            max_number: 0,
            first: None,
            brackets: Vec::new(),
            prev: Prev::Other,
        }
    }

    /// Lexes the whole statement and builds the result.
    fn run(mut self) -> Result<PreparedSql, SqlParamError> {
        let b = self.sql.as_bytes();
        let pg = self.dialect == Dialect::Postgres;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let next = b.get(i + 1).copied();
            i = match c {
                b'\'' | b'"' | b'`' => {
                    self.prev = Prev::Other;
                    skip_quoted(b, i + 1, c)
                }
                b'E' | b'e' if next == Some(b'\'') => {
                    self.prev = Prev::Other;
                    skip_escape_string(b, i + 2)
                }
                b'-' if next == Some(b'-') => skip_line_comment(b, i + 2, pg),
                b'/' if next == Some(b'*') => skip_block_comment(b, i + 2, pg),
                b'[' if pg => self.open_bracket(i),
                b'[' => {
                    // SQLite: `[...]` is a quoted identifier.
                    self.prev = Prev::Other;
                    find_byte(b, i + 1, b']').map_or(b.len(), |p| p + 1)
                }
                b']' => {
                    self.brackets.pop();
                    self.prev = Prev::Other;
                    i + 1
                }
                b',' => {
                    self.prev = Prev::Comma;
                    i + 1
                }
                b':' => self.colon(i)?,
                b'$' => self.dollar(i)?,
                b'?' if !pg => self.question(i)?,
                b'@' if !pg => {
                    self.prev = Prev::Other;
                    if next.is_some_and(is_ident_char) {
                        return Err(self.unsupported(i));
                    }
                    i + 1
                }
                c if is_ident_start(c) => {
                    let end = scan(b, i + 1, is_ident_char);
                    self.prev = if b[i..end].eq_ignore_ascii_case(b"array") {
                        Prev::Array
                    } else {
                        Prev::Other
                    };
                    end
                }
                c if c.is_ascii_whitespace() => i + 1,
                _ => {
                    self.prev = Prev::Other;
                    i + 1
                }
            };
        }
        Ok(self.finish())
    }

    /// Copies the unrewritten tail and assembles the result.
    fn finish(mut self) -> PreparedSql {
        let slots = if !self.names.list.is_empty() {
            ParamSlots::Named {
                names: self.names.list.iter().map(|n| (*n).to_owned()).collect(),
            }
        } else if self.max_number > 0 {
            ParamSlots::Positional {
                count: self.max_number,
            }
        } else {
            ParamSlots::None
        };
        let sql = if self.copied == 0 {
            self.sql.to_owned()
        } else {
            self.out.push_str(&self.sql[self.copied..]);
            self.out
        };
        PreparedSql { sql, slots }
    }

    /// Replaces `sql[start..end]` in the output by `prefix` + `number`.
    fn replace(&mut self, start: usize, end: usize, prefix: char, number: usize) {
        if self.out.capacity() == 0 {
            self.out.reserve(self.sql.len() + 16);
        }
        self.out.push_str(&self.sql[self.copied..start]);
        self.out.push(prefix);
        push_number(&mut self.out, number);
        self.copied = end;
    }

    /// The dialect's placeholder prefix.
    fn prefix(&self) -> char {
        match self.dialect {
            Dialect::Postgres => '$',
            Dialect::Sqlite => '?',
        }
    }

    /// PostgreSQL `[`: an `ARRAY[` constructor (or a nested `[` directly in
    /// one) lets placeholders through; any other `[` is a subscript/slice.
    fn open_bracket(&mut self, i: usize) -> usize {
        let constructor = self.prev == Prev::Array
            || (self.brackets.last() == Some(&true)
                && matches!(self.prev, Prev::OpenBracket | Prev::Comma));
        self.brackets.push(constructor);
        self.prev = Prev::OpenBracket;
        i + 1
    }

    /// Handles `:` at `i`: cast, slice colon, `:=`, or a named placeholder.
    fn colon(&mut self, i: usize) -> Result<usize, SqlParamError> {
        let b = self.sql.as_bytes();
        self.prev = Prev::Other;
        let next = match b.get(i + 1) {
            Some(&c) => c,
            None => return Ok(i + 1),
        };
        if next == b':' {
            return Ok(i + 2); // `::type` cast
        }
        if self.brackets.last() == Some(&false) {
            return Ok(i + 1); // slice bound separator inside a subscript
        }
        if next.is_ascii_alphabetic() || next == b'_' {
            let end = scan(b, i + 1, |c| c.is_ascii_alphanumeric() || c == b'_');
            if b.get(end).is_some_and(|&c| c == b'$' || c >= 0x80) {
                let full = scan(b, end, is_ident_char);
                return Err(SqlParamError::new(format!(
                    "invalid parameter name {}: names may only contain ASCII letters, digits and underscores",
                    &self.sql[i..full]
                )));
            }
            self.note_style(Style::Named, i, end)?;
            let name = &self.sql[i + 1..end];
            let slot = match self.names.get(name) {
                Some(slot) => slot,
                None if self.names.list.len() >= MAX_PARAM => {
                    return Err(too_many_parameters());
                }
                None => self.names.insert(name),
            };
            self.replace(i, end, self.prefix(), slot + 1);
            return Ok(end);
        }
        if self.dialect == Dialect::Sqlite && is_ident_char(next) {
            return Err(self.unsupported(i)); // SQLite would read `:1` as a name
        }
        Ok(i + 1)
    }

    /// Handles `$` at `i`: `$n` placeholder or `$tag$` dollar quote.
    fn dollar(&mut self, i: usize) -> Result<usize, SqlParamError> {
        let b = self.sql.as_bytes();
        self.prev = Prev::Other;
        match b.get(i + 1) {
            Some(c) if c.is_ascii_digit() => {
                let (number, end) = parse_number(b, i + 1);
                if b.get(end).is_some_and(|&c| is_ident_char(c)) {
                    let full = scan(b, end, is_ident_char);
                    return Err(SqlParamError::new(format!(
                        "invalid parameter {}: a parameter number must not be followed by letters",
                        &self.sql[i..full]
                    )));
                }
                self.positional(i, end, number)?;
                if self.dialect == Dialect::Sqlite {
                    self.replace(i, end, '?', number);
                }
                Ok(end)
            }
            Some(b'$') => Ok(skip_dollar_body(self.sql, i, i + 2)),
            Some(&c) if is_ident_start(c) => {
                let tag_end = scan(b, i + 1, |c| {
                    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
                });
                if b.get(tag_end) == Some(&b'$') {
                    Ok(skip_dollar_body(self.sql, i, tag_end + 1))
                } else if self.dialect == Dialect::Sqlite {
                    Err(self.unsupported(i)) // SQLite's own `$name` parameter
                } else {
                    Ok(i + 1)
                }
            }
            _ => Ok(i + 1),
        }
    }

    /// Handles SQLite `?` / `?NNN` at `i` (never called for PostgreSQL).
    fn question(&mut self, i: usize) -> Result<usize, SqlParamError> {
        let b = self.sql.as_bytes();
        self.prev = Prev::Other;
        if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let (number, end) = parse_number(b, i + 1);
            self.positional(i, end, number)?;
            return Ok(end);
        }
        if self.max_number >= MAX_PARAM {
            return Err(too_many_parameters());
        }
        self.positional(i, i + 1, self.max_number + 1)?;
        Ok(i + 1)
    }

    /// Validates and records positional parameter `number` spanning
    /// `start..end`.
    fn positional(&mut self, start: usize, end: usize, number: usize) -> Result<(), SqlParamError> {
        let text = &self.sql[start..end];
        if number == 0 {
            return Err(SqlParamError::new(format!(
                "invalid parameter {}: parameter numbers start at 1",
                text
            )));
        }
        if number > MAX_PARAM {
            return Err(SqlParamError::new(format!(
                "invalid parameter {}: parameter numbers must not exceed {}",
                text, MAX_PARAM
            )));
        }
        self.note_style(Style::Positional, start, end)?;
        self.max_number = self.max_number.max(number);
        Ok(())
    }

    /// Records the first placeholder's style; errors on a different style.
    fn note_style(&mut self, style: Style, start: usize, end: usize) -> Result<(), SqlParamError> {
        match self.first {
            None => {
                self.first = Some((style, start, end));
                Ok(())
            }
            Some((first, first_start, first_end)) if first != style => {
                Err(SqlParamError::new(format!(
                    "cannot mix named and positional parameters in one statement: {} follows {}",
                    &self.sql[start..end],
                    &self.sql[first_start..first_end]
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// Error for a SQLite-native placeholder form this crate cannot bind.
    fn unsupported(&self, start: usize) -> SqlParamError {
        let end = scan(self.sql.as_bytes(), start + 1, is_ident_char);
        SqlParamError::new(format!(
            "unsupported parameter syntax {}: use :name, $1 or ?",
            &self.sql[start..end]
        ))
    }
}

/// Error for more than [`MAX_PARAM`] parameters.
fn too_many_parameters() -> SqlParamError {
    SqlParamError::new(format!(
        "too many parameters (the maximum is {})",
        MAX_PARAM
    ))
}

/// Appends the decimal digits of `n`.
fn push_number(out: &mut String, mut n: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(char::from(d));
    }
}

/// Byte that may start an identifier (non-ASCII bytes count as letters).
/// For the statement log: the string literal after each `PASSWORD` keyword
/// (`CREATE ROLE … PASSWORD '…'`, `ALTER USER … ENCRYPTED PASSWORD E'…'`,
/// `$$…$$`, `OPTIONS (password '…')`) replaced by `'***'`. Literals, quoted
/// identifiers and comments are found by the same lexer rules as
/// placeholders, so a `PASSWORD` inside a literal or comment is left alone.
pub fn mask_password_literals(sql: &str) -> std::borrow::Cow<'_, str> {
    let b = sql.as_bytes();
    if !sql.to_ascii_lowercase().contains("password") {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut after_password = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        // The span of a literal starting at `i`, if one does.
        let literal_end = match c {
            b'\'' => Some(skip_quoted(b, i + 1, b'\'')),
            b'E' | b'e' if next == Some(b'\'') => Some(skip_escape_string(b, i + 2)),
            b'U' | b'u' if next == Some(b'&') && b.get(i + 2) == Some(&b'\'') => {
                Some(skip_quoted(b, i + 3, b'\''))
            }
            b'$' => {
                let tag_end = if next == Some(b'$') {
                    Some(i + 2)
                } else if next.is_some_and(is_ident_start) {
                    let e = scan(b, i + 1, |c| {
                        c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
                    });
                    (b.get(e) == Some(&b'$')).then_some(e + 1)
                } else {
                    None
                };
                tag_end.map(|t| skip_dollar_body(sql, i, t))
            }
            _ => None,
        };
        if let Some(end) = literal_end {
            if after_password {
                out.push_str(&sql[copied..i]);
                out.push_str("'***'");
                copied = end;
            }
            after_password = false;
            i = end;
            continue;
        }
        i = match c {
            b'"' | b'`' => {
                after_password = false;
                skip_quoted(b, i + 1, c)
            }
            b'-' if next == Some(b'-') => skip_line_comment(b, i + 2, true),
            b'/' if next == Some(b'*') => skip_block_comment(b, i + 2, true),
            c if is_ident_start(c) => {
                let end = scan(b, i + 1, is_ident_char);
                after_password = b[i..end].eq_ignore_ascii_case(b"password");
                end
            }
            c if c.is_ascii_whitespace() => i + 1,
            b'=' => i + 1,
            _ => {
                after_password = false;
                i + 1
            }
        };
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    std::borrow::Cow::Owned(out)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// Byte that may continue an identifier (both databases allow `$`).
fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Index of the first byte at or after `i` that fails `keep`.
fn scan(b: &[u8], i: usize, keep: impl Fn(u8) -> bool) -> usize {
    b[i..]
        .iter()
        .position(|&c| !keep(c))
        .map_or(b.len(), |p| i + p)
}

/// Index of the first `needle` at or after `i`.
fn find_byte(b: &[u8], i: usize, needle: u8) -> Option<usize> {
    b[i..].iter().position(|&c| c == needle).map(|p| i + p)
}

/// Parses the ASCII digits starting at `i` (saturating on overflow);
/// returns the value and the index after the digits.
fn parse_number(b: &[u8], i: usize) -> (usize, usize) {
    let end = scan(b, i, |c| c.is_ascii_digit());
    let value = b[i..end].iter().fold(0usize, |n, &d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    });
    (value, end)
}

/// Skips a `quote`-delimited token whose body starts at `i` (a doubled quote
/// is an escape); returns the index after the closing quote, or the end.
fn skip_quoted(b: &[u8], mut i: usize, quote: u8) -> usize {
    while let Some(at) = find_byte(b, i, quote) {
        if b.get(at + 1) == Some(&quote) {
            i = at + 2;
        } else {
            return at + 1;
        }
    }
    b.len()
}

/// Skips an `E'...'` body starting at `i` (backslash and `''` escapes).
fn skip_escape_string(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Skips a `--` comment body starting at `i`, up to (not including) the line
/// end: `\n`, or also `\r` for PostgreSQL.
fn skip_line_comment(b: &[u8], i: usize, pg: bool) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n' || (pg && c == b'\r'))
        .map_or(b.len(), |p| i + p)
}

/// Skips a `/*` comment body starting at `i`; PostgreSQL comments nest,
/// SQLite's end at the first `*/`.
fn skip_block_comment(b: &[u8], mut i: usize, nested: bool) -> usize {
    let mut depth = 1usize;
    while i + 1 < b.len() {
        if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else if nested && b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// Skips a dollar-quoted body: `sql[open..body]` is the `$tag$` opener;
/// returns the index after the matching closer, or the end.
fn skip_dollar_body(sql: &str, open: usize, body: usize) -> usize {
    let delimiter = &sql[open..body];
    sql[body..]
        .find(delimiter)
        .map_or(sql.len(), |p| body + p + delimiter.len())
}

#[cfg(test)]
mod session_tests {
    use super::changes_session;
    use super::Dialect::{Postgres as PG, Sqlite as LITE};

    #[test]
    fn session_changing_statements() {
        for sql in [
            "SET search_path TO app",
            "set TIME ZONE 'UTC'",
            "SET statement_timeout = 100",
            "RESET ALL",
            "SELECT set_config('app.user', 'x', false)",
            "CREATE TEMP TABLE t (a int)",
            "create temporary table t (a int)",
            "CREATE GLOBAL TEMPORARY TABLE t (a int)",
            "PREPARE s1 AS SELECT 1",
            "LISTEN chan",
            "SELECT pg_advisory_lock(42)",
            "SELECT pg_try_advisory_lock_shared(1, 2)",
            "/* c */ SET ROLE x",
            "SELECT 1; SET search_path TO x",
        ] {
            assert!(changes_session(sql, PG), "{sql}");
        }
        for sql in [
            "PRAGMA foreign_keys = ON",
            "ATTACH DATABASE 'x.db' AS x",
            "CREATE TEMP TABLE t (a)",
            "CREATE TABLE temp.t (a)",
            "CREATE TEMP VIEW v AS SELECT 1",
        ] {
            assert!(changes_session(sql, LITE), "{sql}");
        }
    }

    #[test]
    fn ordinary_statements_change_nothing() {
        for sql in [
            "SELECT 1",
            "UPDATE t SET a = 1 WHERE b = 2",
            "INSERT INTO t (temp) VALUES ('SET x')",
            "SELECT 'pg_advisory_lock(1)', \"set_config\"",
            "-- SET search_path\nSELECT 1",
            "SELECT $$ SET x $$",
            "SET LOCAL statement_timeout = 5",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "BEGIN; SELECT pg_advisory_xact_lock(1); COMMIT",
            "CREATE TABLE temps (temp int)",
            "SELECT E'\\' SET'",
        ] {
            assert!(!changes_session(sql, PG), "{sql}");
        }
        assert!(!changes_session("SELECT * FROM [SET]", LITE));
        assert!(!changes_session("UPDATE t SET a = 1", LITE));
    }
}

#[cfg(test)]
mod multiple_statement_tests {
    use super::sqlite_has_multiple_statements as multi;

    #[test]
    fn detects_a_second_statement_only() {
        assert!(!multi("SELECT 1"));
        assert!(!multi("SELECT 1;"));
        assert!(!multi("SELECT 1; -- done\n ; /* end */ "));
        assert!(!multi("SELECT ';x', \"a;b\", [c;d] -- ; SELECT 2"));
        assert!(multi("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)"));
        assert!(multi("SELECT 1;SELECT 2"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PG: Dialect = Dialect::Postgres;
    const LITE: Dialect = Dialect::Sqlite;
    const BOTH: [Dialect; 2] = [PG, LITE];

    fn prep(sql: &str, d: Dialect) -> PreparedSql {
        prepare_sql(sql, d).unwrap_or_else(|e| panic!("{:?} failed for {:?}: {}", d, sql, e))
    }

    fn err(sql: &str, d: Dialect) -> String {
        match prepare_sql(sql, d) {
            Ok(p) => panic!("{:?} accepted {:?} as {:?}", d, sql, p),
            Err(e) => e.message,
        }
    }

    fn named(names: &[&str]) -> ParamSlots {
        ParamSlots::Named {
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn positional(count: usize) -> ParamSlots {
        ParamSlots::Positional { count }
    }

    /// Asserts `sql` passes through unchanged with no placeholders.
    fn untouched(sql: &str, d: Dialect) {
        assert_eq!(
            prep(sql, d),
            PreparedSql {
                sql: sql.to_owned(),
                slots: ParamSlots::None
            },
            "{:?}",
            d
        );
    }

    #[test]
    fn no_placeholders_fast_path() {
        for d in BOTH {
            untouched("", d);
            untouched("SELECT 1", d);
            untouched("SELECT 'héllo' FROM t WHERE a = 'ü'", d);
        }
        assert!(!may_have_placeholders(b"SELECT a ? b", PG));
        assert!(may_have_placeholders(b"SELECT a ? b", LITE));
        untouched("SELECT data ? 'k', data @> '{}' FROM t", PG);
    }

    #[test]
    fn named_rewritten_and_repeated_names_reuse_numbers() {
        let sql = "SELECT * FROM t WHERE a = :a AND b = :b OR a = :a AND c = :_c1";
        let p = prep(sql, PG);
        assert_eq!(
            p.sql,
            "SELECT * FROM t WHERE a = $1 AND b = $2 OR a = $1 AND c = $3"
        );
        assert_eq!(p.slots, named(&["a", "b", "_c1"]));
        let s = prep(sql, LITE);
        assert_eq!(
            s.sql,
            "SELECT * FROM t WHERE a = ?1 AND b = ?2 OR a = ?1 AND c = ?3"
        );
        assert_eq!(s.slots, named(&["a", "b", "_c1"]));
    }

    #[test]
    fn named_edges() {
        for d in BOTH {
            let p = prep(":x", d);
            assert_eq!(p.slots, named(&["x"]));
            let p = prep("(:x,:y)", d);
            assert_eq!(p.slots, named(&["x", "y"]));
            // case-sensitive names
            assert_eq!(prep(":a :A", d).slots, named(&["a", "A"]));
            // trailing lone colon / colon before non-identifier
            untouched("SELECT 1:", d);
            untouched("SELECT x : 1", d);
        }
        assert_eq!(prep("(:x,:y)", PG).sql, "($1,$2)");
        assert_eq!(prep("f(:x)+:y2", LITE).sql, "f(?1)+?2");
        // a name adjacent to a word is still a placeholder
        assert_eq!(prep("SELECT a:b", PG).sql, "SELECT a$1");
    }

    #[test]
    fn many_distinct_names_use_the_index() {
        let names: Vec<String> = (0..40).map(|i| format!("p{}", i)).collect();
        let mut sql = String::from("VALUES (");
        for round in 0..2 {
            for (i, n) in names.iter().enumerate() {
                if round + i > 0 {
                    sql.push_str(", ");
                }
                sql.push(':');
                sql.push_str(n);
            }
        }
        sql.push(')');
        let p = prep(&sql, PG);
        assert_eq!(
            p.slots,
            ParamSlots::Named {
                names: names.clone()
            }
        );
        assert!(p.sql.ends_with(", $39, $40)"));
        assert!(p.sql.starts_with("VALUES ($1, $2, "));
        let refs: Vec<&str> = names.iter().rev().map(String::as_str).collect();
        let order = p.order_named(&refs).unwrap();
        assert_eq!(order, (0..40).rev().collect::<Vec<_>>());
    }

    #[test]
    fn positional_dollar() {
        let p = prep("SELECT $1, $2, $1", PG);
        assert_eq!(p.sql, "SELECT $1, $2, $1");
        assert_eq!(p.slots, positional(2));
        let s = prep("SELECT $1, $2, $1", LITE);
        assert_eq!(s.sql, "SELECT ?1, ?2, ?1");
        assert_eq!(s.slots, positional(2));
        // gaps: count is the highest number
        assert_eq!(prep("SELECT $3", PG).slots, positional(3));
        assert_eq!(prep("$12+$3", LITE).sql, "?12+?3");
        assert_eq!(prep("$65535", LITE).slots, positional(65535));
        assert_eq!(prep("$01", LITE).sql, "?1");
        assert_eq!(prep("$1::int", LITE).sql, "?1::int");
    }

    #[test]
    fn sqlite_question_marks() {
        let s = prep("SELECT ?, ?, ?", LITE);
        assert_eq!(s.sql, "SELECT ?, ?, ?");
        assert_eq!(s.slots, positional(3));
        // bare `?` takes largest so far + 1
        assert_eq!(prep("?5, ?, ?2", LITE).slots, positional(6));
        assert_eq!(prep("?, ?1", LITE).slots, positional(1));
        assert_eq!(prep("?3", LITE).slots, positional(3));
        // `$n` and `?` are both positional, numbered like SQLite does
        let s = prep("$2, ?", LITE);
        assert_eq!(s.sql, "?2, ?");
        assert_eq!(s.slots, positional(3));
    }

    #[test]
    fn question_mark_left_alone_on_postgres() {
        untouched("SELECT data ? 'key', data ?| array['a'], data ?& '{b}'", PG);
        untouched("SELECT ?, ?1", PG);
        let p = prep("SELECT * FROM t WHERE j ? :k", PG);
        assert_eq!(p.sql, "SELECT * FROM t WHERE j ? $1");
        assert_eq!(p.slots, named(&["k"]));
        assert_eq!(
            err("SELECT j ? :k", LITE),
            "cannot mix named and positional parameters in one statement: :k follows ?"
        );
    }

    #[test]
    fn mixing_styles_is_an_error() {
        for d in BOTH {
            assert_eq!(
                err("SELECT :a, $1", d),
                "cannot mix named and positional parameters in one statement: $1 follows :a"
            );
            assert_eq!(
                err("SELECT $2, :b, :c", d),
                "cannot mix named and positional parameters in one statement: :b follows $2"
            );
        }
        assert!(err("SELECT ?, :b", LITE).contains(":b follows ?"));
        assert!(err("SELECT :b, ?7", LITE).contains("?7 follows :b"));
    }

    #[test]
    fn bad_numbers() {
        for d in BOTH {
            assert_eq!(
                err("SELECT $0", d),
                "invalid parameter $0: parameter numbers start at 1"
            );
            assert!(err("SELECT $00", d).contains("parameter numbers start at 1"));
            assert!(err("SELECT $65536", d).contains("must not exceed 65535"));
            assert!(err("SELECT $99999999999999999999999999", d).contains("must not exceed"));
            assert!(err("SELECT $1abc", d).contains("$1abc"));
            assert!(err("SELECT $1é", d).contains("$1é"));
        }
        assert!(err("SELECT ?0", LITE).contains("parameter numbers start at 1"));
        assert!(err("SELECT ?70000", LITE).contains("?70000"));
        let mut many = String::from("?65535");
        many.push_str(", ?");
        assert!(err(&many, LITE).contains("too many parameters"));
        untouched("SELECT ?0, ?70000", PG);
    }

    #[test]
    fn invalid_names() {
        for d in BOTH {
            assert!(err("SELECT :naïve", d).contains(":naïve"));
            assert!(err("SELECT :a$b", d).contains(":a$b"));
        }
        // not identifiers: left alone on PostgreSQL, unbindable on SQLite
        untouched("SELECT :1, :é", PG);
        assert!(err("SELECT :1", LITE).contains("unsupported parameter syntax :1"));
        assert!(err("SELECT :é", LITE).contains(":é"));
        assert!(err("SELECT @p", LITE).contains("@p"));
        assert!(err("SELECT $name", LITE).contains("$name"));
        untouched("SELECT @p, @ 1, $name", PG);
        untouched("SELECT 1 @ 2, '$' || $", LITE);
    }

    #[test]
    fn single_quoted_strings() {
        for d in BOTH {
            untouched("SELECT ':x', '$1', '?', 'it''s :y', '''', ''", d);
            let p = prep("SELECT 'a:b''c:d', :e, 'x'':f'", d);
            assert_eq!(p.slots, named(&["e"]));
            assert!(p.sql.starts_with("SELECT 'a:b''c:d', "));
            assert!(p.sql.ends_with(", 'x'':f'"));
            // backslash is not an escape in standard strings
            let p = prep(r"SELECT 'a\', :x", d);
            assert_eq!(p.slots, named(&["x"]));
        }
    }

    #[test]
    fn escape_strings() {
        for d in BOTH {
            untouched(r"SELECT E'it\'s :x', e'\\', E'a''b $1', E'\\\' ?'", d);
            let p = prep(r"SELECT E'it\'s :x' || :y", d);
            assert_eq!(p.slots, named(&["y"]));
            assert!(p.sql.starts_with(r"SELECT E'it\'s :x' || "));
            // `E` inside a word is not an E-string prefix
            let p = prep(r"SELECT name'\', :z", d);
            assert_eq!(p.slots, named(&["z"]));
        }
    }

    #[test]
    fn quoted_identifiers() {
        for d in BOTH {
            untouched(r#"SELECT ":x", "a""$1""?", "é:ü" FROM "t:1""#, d);
            untouched("SELECT `:x`, `a``:y` FROM `$1`", d);
            let p = prep(r#"SELECT "a"":b", :c"#, d);
            assert_eq!(p.slots, named(&["c"]));
        }
    }

    #[test]
    fn line_comments() {
        for d in BOTH {
            untouched("SELECT 1 -- :x $1 ? 'oops\n", d);
            untouched("SELECT 1 -- :x", d);
            let p = prep("SELECT :a -- :b $1\n, :c", d);
            assert_eq!(p.slots, named(&["a", "c"]));
        }
        assert_eq!(
            prep("SELECT :a -- :b\n, :c", PG).sql,
            "SELECT $1 -- :b\n, $2"
        );
        // a single `-` is an operator
        assert_eq!(prep("SELECT 1-:a", LITE).sql, "SELECT 1-?1");
    }

    #[test]
    fn block_comments() {
        for d in BOTH {
            untouched("SELECT /* :x $1 ? ' \" */ 1", d);
            untouched("SELECT /* /* :x */ */ 1", d);
            untouched("SELECT 1 /* unterminated :x", d);
            untouched("SELECT /*/ :x */ 1", d);
            let p = prep("SELECT /* a */ :b /* c */", d);
            assert_eq!(p.slots, named(&["b"]));
        }
        // PostgreSQL comments nest; SQLite's end at the first `*/`.
        untouched("/* a /* b */ :x */ SELECT 1", PG);
        let s = prep("/* a /* b */ :x */ SELECT 1", LITE);
        assert_eq!(s.sql, "/* a /* b */ ?1 */ SELECT 1");
        let p = prep("/* /* */ SELECT :x", PG);
        assert_eq!(p.slots, ParamSlots::None);
        let s = prep("/* /* */ SELECT :x", LITE);
        assert_eq!(s.sql, "/* /* */ SELECT ?1");
    }

    #[test]
    fn casts_and_assignment() {
        for d in BOTH {
            untouched("SELECT x::int, '1'::text, (y)::numeric(10,2)", d);
            untouched("v := 1; w:=2", d);
        }
        let p = prep("SELECT :x::int, :y::text[]", PG);
        assert_eq!(p.sql, "SELECT $1::int, $2::text[]");
        assert_eq!(p.slots, named(&["x", "y"]));
        let p = prep("SELECT $1::int", PG);
        assert_eq!(p.sql, "SELECT $1::int");
        let s = prep("SELECT :x::int", LITE);
        assert_eq!(s.sql, "SELECT ?1::int");
    }

    #[test]
    fn dollar_quotes() {
        for d in BOTH {
            untouched("SELECT $$ :x $1 ? ' $$", d);
            untouched("DO $body$ BEGIN v := :x; PERFORM $1; END $body$", d);
            untouched("SELECT $a$ $b$ :x $b$ $$ $a$", d);
            untouched("SELECT $_t1$ :x $_t1$", d);
            untouched("SELECT $é$ :x $é$", d);
            untouched("SELECT $fn$ unterminated :x $1", d);
            untouched("SELECT $$ unterminated", d);
            let p = prep("SELECT $q$ :x $q$, :y, $$ :z $$", d);
            assert_eq!(p.slots, named(&["y"]));
            let p = prep("SELECT $1, $t$ $2 $t$", d);
            assert_eq!(p.slots, positional(1));
        }
        assert_eq!(
            prep("SELECT $q$ :x $q$ || :y", PG).sql,
            "SELECT $q$ :x $q$ || $1"
        );
        assert_eq!(
            prep("SELECT $1 || $$ $2 $$", LITE).sql,
            "SELECT ?1 || $$ $2 $$"
        );
        // `$` inside an identifier is not a dollar quote nor a parameter
        untouched("SELECT a$b$, a$1 FROM t$$", PG);
    }

    #[test]
    fn array_slices() {
        for d in BOTH {
            untouched("SELECT a[1:2], a[lo:hi], a[:n], a[n:], a[:], b[1][2:3]", d);
            let p = prep("SELECT a[lo:hi], :lo", d);
            assert_eq!(p.slots, named(&["lo"]));
        }
        assert_eq!(prep("SELECT a[lo:hi] + :x", PG).sql, "SELECT a[lo:hi] + $1");
        // nested and unbalanced brackets never panic
        untouched("SELECT a[b[1]:c[:d]]", PG);
        untouched("SELECT a]] [:x", PG);
        untouched("SELECT [:x", LITE);
        // positional placeholders inside a PostgreSQL subscript still count
        assert_eq!(prep("SELECT a[$1:$2]", PG).slots, positional(2));
    }

    #[test]
    fn array_constructor_takes_named_placeholders() {
        let p = prep("SELECT ARRAY[:a, :b], array [[:c], [:a]] FROM t", PG);
        assert_eq!(p.sql, "SELECT ARRAY[$1, $2], array [[$3], [$1]] FROM t");
        assert_eq!(p.slots, named(&["a", "b", "c"]));
        let p = prep("SELECT ARRAY[x[1:2], :y][1:2], ARRAY /* c */ [:z]", PG);
        assert_eq!(p.sql, "SELECT ARRAY[x[1:2], $1][1:2], ARRAY /* c */ [$2]");
        // SQLite has no arrays: `[...]` is a quoted identifier there.
        untouched("SELECT ARRAY[:a]", LITE);
    }

    #[test]
    fn unicode_is_preserved() {
        for d in BOTH {
            let p = prep(
                "SELECT 'ça' AS «x», :nom, \"日本\" FROM 表 WHERE ё = :nom -- 🦀 :z\n",
                d,
            );
            assert_eq!(p.slots, named(&["nom"]));
            let q = if d == PG { "$1" } else { "?1" };
            assert_eq!(
                p.sql,
                format!(
                    "SELECT 'ça' AS «x», {q}, \"日本\" FROM 表 WHERE ё = {q} -- 🦀 :z\n",
                    q = q
                )
            );
            untouched("🦀:", d);
            untouched("'🦀", d);
            untouched("E'🦀\\", d);
        }
    }

    #[test]
    fn unterminated_tokens_copy_the_rest() {
        for d in BOTH {
            untouched("SELECT ':x", d);
            untouched("SELECT E':x\\'", d);
            untouched("SELECT \":x", d);
            untouched("SELECT `:x", d);
            untouched("SELECT 1 -- :x", d);
            untouched("SELECT /* /* :x */", d);
            untouched("SELECT $tag$ :x", d);
            untouched("$", d);
            untouched("E'", d);
            untouched("E'\\", d);
        }
    }

    #[test]
    fn check_positional_messages() {
        let p = prep("SELECT $1, $2", PG);
        assert!(p.check_positional(2).is_ok());
        assert_eq!(
            p.check_positional(3).unwrap_err().message,
            "statement expects 2 parameters, 3 were given"
        );
        assert_eq!(
            prep("SELECT ?", LITE)
                .check_positional(0)
                .unwrap_err()
                .to_string(),
            "statement expects 1 parameter, 0 were given"
        );
        let none = prep("SELECT 1", PG);
        assert!(none.check_positional(0).is_ok());
        assert_eq!(
            none.check_positional(1).unwrap_err().message,
            "statement expects 0 parameters, 1 was given"
        );
        let n = prep("SELECT :x, :y", PG);
        assert_eq!(
            n.check_positional(2).unwrap_err().message,
            "statement uses named parameters (:x, :y) but positional values were given"
        );
        assert_eq!(
            n.check_positional(0).unwrap_err().message,
            "missing value for parameter :x"
        );
    }

    #[test]
    fn order_named_maps_and_reports() {
        let p = prep("SELECT :x, :y, :x", LITE);
        assert_eq!(p.order_named(&["y", "x"]).unwrap(), vec![1, 0]);
        assert_eq!(p.order_named(&["x", ":y"]).unwrap(), vec![0, 1]);
        assert_eq!(
            p.order_named(&["x"]).unwrap_err().message,
            "missing value for parameter :y"
        );
        assert_eq!(
            p.order_named(&["x", "y", "z"]).unwrap_err().message,
            "unknown parameter :z (the statement has :x, :y)"
        );
        assert_eq!(
            p.order_named(&["x", "y", "x"]).unwrap_err().message,
            "parameter :x given twice"
        );
        let pos = prep("SELECT $1", PG);
        assert_eq!(
            pos.order_named(&["x"]).unwrap_err().message,
            "statement uses positional parameters (expects 1) but named values were given"
        );
        assert!(pos.order_named(&[]).is_err());
        let none = prep("SELECT 1", PG);
        assert_eq!(none.order_named(&[]).unwrap(), Vec::<usize>::new());
        assert_eq!(
            none.order_named(&["a"]).unwrap_err().message,
            "unknown parameter :a (the statement has no parameters)"
        );
        let names: Vec<String> = (0..12).map(|i| format!("n{}", i)).collect();
        let many = PreparedSql {
            sql: String::new(),
            slots: ParamSlots::Named { names },
        };
        assert_eq!(
            many.order_named(&["q"]).unwrap_err().message,
            "unknown parameter :q (the statement has :n0, :n1, :n2, :n3, :n4, :n5, :n6, :n7, :n8, :n9, ... (12 in total))"
        );
    }

    #[test]
    fn error_type_is_std_error() {
        let e: Box<dyn std::error::Error> = Box::new(SqlParamError::new("boom"));
        assert_eq!(e.to_string(), "boom");
    }

    // ---- property tests -------------------------------------------------

    /// One generated fragment of SQL.
    #[derive(Clone, Debug)]
    enum Piece {
        /// Keywords, operators, plain and non-ASCII words.
        Plain(&'static str),
        /// `:name`, optionally followed by a `::type` cast.
        Named(&'static str, bool),
        /// `$n`.
        Dollar(usize),
        /// `?` (a placeholder on SQLite only).
        Question,
        /// Text that must come out byte-for-byte unchanged.
        Protected(String),
    }

    fn vocab(words: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(words), 0..max).prop_map(|w| w.join(" "))
    }

    const INSIDE: &[&str] = &[
        ":x", "$1", "?", "abc", "é", "日本", "🦀", "--", ":=", "::int", "[1:2]", "@p", "$name",
    ];

    fn protected() -> impl Strategy<Value = String> {
        prop_oneof![
            vocab(
                &[":x", "$1", "''", "?", "\"", "é", "/*", "--", "$$", "abc"],
                5
            )
            .prop_map(|s| format!("'{}'", s)),
            vocab(&[":x", "$1", r"\'", r"\\", "''", "?", "é", "abc"], 5)
                .prop_map(|s| format!("E'{}'", s)),
            vocab(&[":x", "$1", "\"\"", "'", "?", "ü", "a b"], 4)
                .prop_map(|s| format!("\"{}\"", s)),
            vocab(&[":x", "$1", "``", "'", "?", "ü"], 4).prop_map(|s| format!("`{}`", s)),
            vocab(INSIDE, 5).prop_map(|s| format!("-- {}\n", s)),
            (
                vocab(INSIDE, 4),
                vocab(INSIDE, 4),
                vocab(&["b", "é", "1"], 3)
            )
                .prop_map(|(a, inner, tail)| format!("/* {} /* {} */ {} */", a, inner, tail)),
            prop::sample::select(vec!["x::int", "'1'::text", "(y)::numeric", "z::text[]"])
                .prop_map(str::to_owned),
            (
                prop::sample::select(vec!["", "fn", "body_1", "T"]),
                vocab(
                    &[":x", "$1", "?", "'", "\"", ":=", "$q$", "é", "--", "/*"],
                    6
                )
            )
                .prop_map(|(tag, body)| format!("${t}$ {b} ${t}$", t = tag, b = body)),
            prop::sample::select(vec!["a[1:2]", "a[lo:hi]", "a[:n]", "a[n:]", "m[1][i:j]"])
                .prop_map(str::to_owned),
            prop::sample::select(vec!["v := 1", "'ça'", "\"naïve\""]).prop_map(str::to_owned),
        ]
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            3 => prop::sample::select(vec![
                "SELECT", "FROM", "WHERE", "AND", "=", ",", "(", ")", "+", "-", "*", "/",
                "1", "42", "t", "naïve", "日本語", "🦀", "ё",
            ])
            .prop_map(Piece::Plain),
            2 => (
                prop::sample::select(vec!["x", "y", "id", "user_name", "_p1", "X"]),
                any::<bool>()
            )
                .prop_map(|(n, cast)| Piece::Named(n, cast)),
            1 => (1usize..6).prop_map(Piece::Dollar),
            1 => Just(Piece::Question),
            3 => protected().prop_map(Piece::Protected),
        ]
    }

    /// What `prepare_sql` should produce, computed independently; `None`
    /// when styles are mixed.
    fn model(pieces: &[Piece], d: Dialect) -> Option<PreparedSql> {
        let prefix = if d == PG { "$" } else { "?" };
        let mut names: Vec<String> = Vec::new();
        let mut max = 0;
        let (mut has_named, mut has_positional) = (false, false);
        let mut out = Vec::new();
        for p in pieces {
            out.push(match p {
                Piece::Plain(s) => s.to_string(),
                Piece::Protected(s) => s.clone(),
                Piece::Named(n, cast) => {
                    has_named = true;
                    let k = match names.iter().position(|x| x == n) {
                        Some(k) => k + 1,
                        None => {
                            names.push(n.to_string());
                            names.len()
                        }
                    };
                    format!("{}{}{}", prefix, k, if *cast { "::int" } else { "" })
                }
                Piece::Dollar(n) => {
                    has_positional = true;
                    max = max.max(*n);
                    format!("{}{}", prefix, n)
                }
                Piece::Question if d == PG => "?".to_owned(),
                Piece::Question => {
                    has_positional = true;
                    max += 1;
                    "?".to_owned()
                }
            });
        }
        if has_named && has_positional {
            return None;
        }
        let slots = if has_named {
            ParamSlots::Named { names }
        } else if has_positional {
            ParamSlots::Positional { count: max }
        } else {
            ParamSlots::None
        };
        Some(PreparedSql {
            sql: out.join(" "),
            slots,
        })
    }

    fn source(p: &Piece) -> String {
        match p {
            Piece::Plain(s) => s.to_string(),
            Piece::Protected(s) => s.clone(),
            Piece::Named(n, cast) => format!(":{}{}", n, if *cast { "::int" } else { "" }),
            Piece::Dollar(n) => format!("${}", n),
            Piece::Question => "?".to_owned(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn generated_sql_rewrites_as_modelled(pieces in prop::collection::vec(piece(), 0..24)) {
            let sql = pieces.iter().map(source).collect::<Vec<_>>().join(" ");
            for d in BOTH {
                let got = prepare_sql(&sql, d);
                match model(&pieces, d) {
                    None => {
                        let e = got.expect_err("mixed styles must fail");
                        prop_assert!(e.message.starts_with("cannot mix"), "{}", e);
                    }
                    Some(expected) => {
                        let got = got.map_err(|e| TestCaseError::fail(format!("{:?}: {}", d, e)))?;
                        for p in &pieces {
                            if let Piece::Protected(s) = p {
                                prop_assert!(got.sql.contains(s.as_str()), "{:?} lost {:?}", d, s);
                            }
                        }
                        if let ParamSlots::Named { names } = &got.slots {
                            let mut distinct: Vec<&str> = pieces
                                .iter()
                                .filter_map(|p| match p { Piece::Named(n, _) => Some(*n), _ => None })
                                .collect();
                            distinct.sort_unstable();
                            distinct.dedup();
                            prop_assert_eq!(names.len(), distinct.len());
                        }
                        prop_assert_eq!(got, expected);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(
            parts in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec![
                        "'", "\"", "`", "E'", "\\", "-", "--", "/", "*", "/*", "*/", "[", "]",
                        ":", "::", ":x", "$", "$$", "$1", "$0", "$t$", "?", "?0", "?9", "@", "@a",
                        ",", "ARRAY", " ", "\n", "\r", "x", "1", "é", "🦀", "$é",
                    ]).prop_map(str::to_owned),
                    "\\PC{0,3}",
                ],
                0..32,
            )
        ) {
            let sql = parts.concat();
            for d in BOTH {
                if let Ok(p) = prepare_sql(&sql, d) {
                    let rewrites = matches!(p.slots, ParamSlots::Named { .. })
                        || (d == LITE && sql.contains('$') && p.slots != ParamSlots::None);
                    if !rewrites {
                        prop_assert_eq!(&p.sql, &sql);
                    }
                    if let ParamSlots::Positional { count } = p.slots {
                        prop_assert!((1..=MAX_PARAM).contains(&count));
                    }
                }
            }
        }
    }
}
