//! Parameter sets given column by column (`sqlpool_conn_execute_many_columns`):
//! row `i` of every column is parameter set `#i+1`. SQLite binds each cell
//! straight from here; PostgreSQL's pipeline takes them as [`Params`].

use crate::error::{Error, Result};
use crate::result::CellRef;
use crate::value::Params;

/// One column's values, one per row (checked: text is UTF-8).
pub enum ColumnValues<'a> {
    /// Every row's value is NULL.
    Null,
    Bool(Vec<bool>),
    Int64(Vec<i64>),
    Double(Vec<f64>),
    Text(Vec<&'a str>),
    Blob(Vec<&'a [u8]>),
}

impl ColumnValues<'_> {
    fn len(&self) -> Option<usize> {
        Some(match self {
            ColumnValues::Null => return None,
            ColumnValues::Bool(v) => v.len(),
            ColumnValues::Int64(v) => v.len(),
            ColumnValues::Double(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
            ColumnValues::Blob(v) => v.len(),
        })
    }
}

struct ParamColumn<'a> {
    values: ColumnValues<'a>,
    /// Nonzero: that row's value is NULL whatever `values` holds.
    nulls: Option<&'a [u8]>,
}

impl<'a> ParamColumn<'a> {
    fn cell(&self, row: usize) -> CellRef<'a> {
        if self.nulls.is_some_and(|n| n[row] != 0) {
            return CellRef::Null;
        }
        match &self.values {
            ColumnValues::Null => CellRef::Null,
            ColumnValues::Bool(v) => CellRef::Bool(v[row]),
            ColumnValues::Int64(v) => CellRef::Int64(v[row]),
            ColumnValues::Double(v) => CellRef::Double(v[row]),
            ColumnValues::Text(v) => CellRef::Text(v[row].as_bytes()),
            ColumnValues::Blob(v) => CellRef::Blob(v[row]),
        }
    }
}

/// Positional parameter sets as columns of equal length.
pub struct ParamColumns<'a> {
    rows: usize,
    columns: Vec<ParamColumn<'a>>,
}

impl<'a> ParamColumns<'a> {
    /// No columns yet; every column added holds `rows` values.
    pub fn new(rows: usize) -> ParamColumns<'a> {
        ParamColumns {
            rows,
            columns: Vec::new(),
        }
    }

    /// Appends the next parameter's column.
    pub fn push(&mut self, values: ColumnValues<'a>, nulls: Option<&'a [u8]>) -> Result<()> {
        let column = self.columns.len() + 1;
        for len in values.len().into_iter().chain(nulls.map(<[u8]>::len)) {
            if len != self.rows {
                return Err(Error::invalid_argument(format!(
                    "column {column} holds {len} values, not one per row ({})",
                    self.rows
                )));
            }
        }
        self.columns.push(ParamColumn { values, nulls });
        Ok(())
    }

    /// The number of parameter sets.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of parameters in each set.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Parameter set `row`'s values, in order.
    pub fn row(&self, row: usize) -> impl Iterator<Item = CellRef<'a>> + '_ {
        self.columns.iter().map(move |c| c.cell(row))
    }

    /// Every set as a parameter list (PostgreSQL's pipeline, the SQL log).
    pub fn to_params(&self) -> Vec<Params> {
        (0..self.rows)
            .map(|row| Params::positional(self.row(row).map(|c| c.to_value()).collect()))
            .collect()
    }
}
