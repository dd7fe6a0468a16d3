//! Values crossing the library boundary: statement parameters and result cells.

use crate::error::{Error, Result};

/// The kind of a value, as C sees it (`SQLPOOL_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    Null = 0,
    Bool = 1,
    Int64 = 2,
    Double = 3,
    Text = 4,
    Blob = 5,
}

/// One parameter or result value.
///
/// Database types without a native C representation (numeric, dates, uuid,
/// json, inet, arrays, ...) travel as [`Value::Text`]; the column's declared
/// type tells the reader how to interpret it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int64(i64),
    Double(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Int64(_) => Kind::Int64,
            Value::Double(_) => Kind::Double,
            Value::Text(_) => Kind::Text,
            Value::Blob(_) => Kind::Blob,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind())
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Null => "null",
        Kind::Bool => "bool",
        Kind::Int64 => "int64",
        Kind::Double => "double",
        Kind::Text => "text",
        Kind::Blob => "blob",
    }
}

/// Statement parameters: all positional, or all named.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    values: Vec<Value>,
    /// Parallel to `values` when any parameter was added with a name.
    names: Vec<Option<String>>,
    /// Where each parameter set after the first begins (`next_set`), for
    /// running one statement over many sets.
    set_starts: Vec<usize>,
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    pub fn positional(values: Vec<Value>) -> Params {
        let names = vec![None; values.len()];
        Params {
            values,
            names,
            set_starts: Vec::new(),
        }
    }

    pub fn push(&mut self, name: Option<&str>, value: Value) -> Result<()> {
        if let Some(n) = name {
            let n = n.strip_prefix(':').unwrap_or(n);
            if n.is_empty() {
                return Err(Error::parameter("a parameter name must not be empty"));
            }
            self.names.push(Some(n.to_owned()));
        } else {
            self.names.push(None);
        }
        self.values.push(value);
        Ok(())
    }

    pub fn clear(&mut self) {
        self.values.clear();
        self.names.clear();
        self.set_starts.clear();
    }

    /// Ends the current parameter set; later values form the next one.
    pub fn next_set(&mut self) {
        self.set_starts.push(self.values.len());
    }

    /// The parameter sets, in order: each `next_set` ends one (possibly
    /// empty) set, and values after the last `next_set` form a final set.
    /// An empty list holds no sets.
    pub fn sets(&self) -> Vec<Params> {
        let mut bounds = Vec::with_capacity(self.set_starts.len() + 2);
        bounds.push(0);
        bounds.extend(self.set_starts.iter().copied());
        if self.values.len() > bounds[bounds.len() - 1] {
            bounds.push(self.values.len());
        }
        bounds
            .windows(2)
            .map(|w| Params {
                values: self.values[w[0]..w[1]].to_vec(),
                names: self.names[w[0]..w[1]].to_vec(),
                set_starts: Vec::new(),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The names when every parameter is named, `None` when every one is
    /// positional; mixing is an error that names the first offender.
    pub fn names(&self) -> Result<Option<Vec<&str>>> {
        let named = self.names.iter().filter(|n| n.is_some()).count();
        if named == 0 {
            return Ok(None);
        }
        if named != self.names.len() {
            let first_positional = self.names.iter().position(Option::is_none).unwrap_or(0);
            return Err(Error::parameter(format!(
                "parameters mix named and positional values (value #{} has no name)",
                first_positional + 1
            )));
        }
        Ok(Some(
            self.names.iter().flatten().map(String::as_str).collect(),
        ))
    }

    /// Values in the order the rewritten statement binds them.
    pub fn ordered_for(&self, sql: &crate::sqltext::PreparedSql) -> Result<Vec<&Value>> {
        if !self.set_starts.is_empty() {
            return Err(Error::parameter(format!(
                "this parameter list holds {} parameter sets; run it with sqlpool_conn_execute_many",
                self.sets().len()
            )));
        }
        match self.names()? {
            None => {
                sql.check_positional(self.values.len())?;
                Ok(self.values.iter().collect())
            }
            Some(names) => {
                let order = sql.order_named(&names)?;
                Ok(order.into_iter().map(|i| &self.values[i]).collect())
            }
        }
    }
}
